//! A fast capture matcher for the regexes log pipelines are made of:
//! anchored (`^...`) sequences of literals, character-class runs
//! (`\S+`, `[^"]*`, `\d{3}`), groups, optional parts and alternations.
//!
//! The `regex` crate finds a match quickly, but then resolves capture
//! groups with an NFA backtracker that steps through UTF-8 automaton states
//! byte by byte: about 2 µs for a 200-byte nginx line with ten groups, most
//! of a pipeline's time. This matcher backtracks over the regex's syntax
//! tree instead, scanning class runs with a byte table, in the same
//! priority order (greedy first, alternatives left to right), so it finds
//! the same leftmost-first match and the same groups; a pattern where no
//! run ever has to give back a character is walked once, without
//! backtracking (see `Linear`). Patterns it cannot
//! take (unanchored, classes with only some non-ASCII characters, word
//! boundaries, multi-line anchors, byte mode) and searches that exceed a
//! step budget report `None`, and the caller uses the `regex` crate.

use regex_syntax::hir::{self, Hir, HirKind, Look};

/// One character: ASCII ones from a table; all non-ASCII ones or none.
#[derive(Clone)]
struct CharClass {
    ascii: [bool; 128],
    non_ascii: bool,
}

impl CharClass {
    /// The byte position after the character at `pos`, if it is in the class.
    #[inline]
    fn one(&self, hay: &[u8], pos: usize) -> Option<usize> {
        let b = *hay.get(pos)?;
        if b < 128 {
            self.ascii[b as usize].then_some(pos + 1)
        } else if self.non_ascii {
            Some(pos + utf8_len(b))
        } else {
            None
        }
    }
}

impl CharClass {
    /// Whether a character starting with byte `b` can be in the class.
    fn has_byte(&self, b: u8) -> bool {
        if b < 128 {
            self.ascii[b as usize]
        } else {
            self.non_ascii
        }
    }

    fn disjoint(&self, other: &CharClass) -> bool {
        let shared_ascii = (0..128).any(|b| self.ascii[b] && other.ascii[b]);
        !(shared_ascii || self.non_ascii && other.non_ascii)
    }

    /// The longest run of at most `max` characters of the class from
    /// `pos`: (its end, its length in characters).
    #[inline]
    fn run(&self, hay: &[u8], mut pos: usize, max: u32) -> (usize, u32) {
        let mut n = 0;
        while n < max {
            match self.one(hay, pos) {
                Some(next) => pos = next,
                None => break,
            }
            n += 1;
        }
        (pos, n)
    }
}

/// The length of a UTF-8 sequence from its first byte.
#[inline]
pub(crate) fn utf8_len(first: u8) -> usize {
    match first {
        0..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

enum Node {
    Empty,
    Lit(Box<[u8]>),
    Class(CharClass),
    Start,
    End,
    Cap(usize, Box<Node>),
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Rep {
        sub: Box<Node>,
        min: u32,
        max: Option<u32>,
        greedy: bool,
    },
}

/// A compiled fast matcher for one regex.
pub struct FastCaptures {
    root: Node,
    groups: usize,
    /// The one-pass form, for the patterns that have one.
    linear: Option<Linear>,
}

/// Search state: the group slots and the step budget.
struct State {
    slots: Vec<Option<(usize, usize)>>,
    steps: usize,
    budget: usize,
    aborted: bool,
}

type Cont<'a> = &'a mut dyn FnMut(usize, &mut State) -> bool;

impl FastCaptures {
    /// Compiles `pattern` (in the `regex` crate's syntax, as the regex it
    /// stands in for was built); `None` when it is not a shape this
    /// matcher takes.
    pub fn new(pattern: &str) -> Option<FastCaptures> {
        let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
        let groups = count_groups(&hir) + 1;
        let root = convert(&hir)?;
        let anchored = match &root {
            Node::Concat(items) => matches!(items.first(), Some(Node::Start)),
            Node::Start => true,
            Node::Cap(_, _) => false,
            _ => false,
        };
        anchored.then(|| FastCaptures {
            linear: Linear::new(&root),
            root,
            groups,
        })
    }

    /// How many slots `captures` fills (group 0 is the whole match).
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// Matches `hay`: `Some(true)` with `slots[i]` set to group `i`'s span
    /// (None when it did not take part), `Some(false)` for no match,
    /// `None` when the search gave up (use the `regex` crate).
    pub fn captures(&self, hay: &str, slots: &mut Vec<Option<(usize, usize)>>) -> Option<bool> {
        if let Some(linear) = &self.linear {
            slots.clear();
            slots.resize(self.groups, None);
            return Some(linear.captures(hay.as_bytes(), slots));
        }
        let mut st = State {
            slots: std::mem::take(slots),
            steps: 0,
            budget: 20_000 + 64 * hay.len(),
            aborted: false,
        };
        st.slots.clear();
        st.slots.resize(self.groups, None);
        let bytes = hay.as_bytes();
        let m = Matcher { hay: bytes };
        let mut end = None;
        let found = m.node(&self.root, 0, &mut st, &mut |p, _| {
            end = Some(p);
            true
        });
        let aborted = st.aborted;
        *slots = st.slots;
        if aborted {
            return None;
        }
        if found {
            slots[0] = Some((0, end.unwrap_or(0)));
        }
        Some(found)
    }
}

/// The common shape of log regexes, matched in one pass: a sequence of
/// literals, class runs and groups in which every run is followed by
/// something the run's class cannot match (`\S+ `, `[^"]*"`, `\d{3} `).
/// Then only one length of each run can let the rest match (a shorter run
/// is followed by a character of its own class), so the longest run is
/// the match's, and nothing needs backtracking: no continuation per node,
/// no step budget.
struct Linear {
    steps: Vec<Step>,
}

enum Step {
    Lit(Box<[u8]>),
    Run {
        class: CharClass,
        min: u32,
        max: u32,
    },
    Open(usize),
    Close(usize),
    End,
}

impl Linear {
    /// `None` unless `root` is an anchored sequence of that shape.
    fn new(root: &Node) -> Option<Linear> {
        let Node::Concat(items) = root else {
            return None;
        };
        let (Node::Start, rest) = items.split_first()? else {
            return None;
        };
        let mut steps = Vec::new();
        for n in rest {
            flatten(n, &mut steps)?;
        }
        for (i, s) in steps.iter().enumerate() {
            let Step::Run { class, min, max } = s else {
                continue;
            };
            let next = steps[i + 1..]
                .iter()
                .find(|s| !matches!(s, Step::Open(_) | Step::Close(_)));
            let deterministic = match next {
                // The end of the pattern: the longest run is the match
                // only when greedy (flatten takes only greedy runs there).
                None => true,
                Some(Step::End) => true,
                Some(Step::Lit(l)) => !class.has_byte(l[0]),
                Some(Step::Run {
                    class: c,
                    min: next_min,
                    ..
                }) => *next_min > 0 && class.disjoint(c),
                Some(Step::Open(_) | Step::Close(_)) => unreachable!(),
            };
            // A run of a fixed number of characters has one length anyway.
            if !(deterministic || min == max) || min > max {
                return None;
            }
        }
        Some(Linear { steps })
    }

    fn captures(&self, hay: &[u8], slots: &mut [Option<(usize, usize)>]) -> bool {
        let mut pos = 0;
        for s in &self.steps {
            match s {
                Step::Lit(l) => {
                    if !hay[pos..].starts_with(l) {
                        return false;
                    }
                    pos += l.len();
                }
                Step::Run { class, min, max } => {
                    let (end, n) = class.run(hay, pos, *max);
                    if n < *min {
                        return false;
                    }
                    pos = end;
                }
                Step::Open(i) => slots[*i] = Some((pos, pos)),
                Step::Close(i) => {
                    if let Some((_, e)) = &mut slots[*i] {
                        *e = pos;
                    }
                }
                Step::End => {
                    if pos != hay.len() {
                        return false;
                    }
                }
            }
        }
        slots[0] = Some((0, pos));
        true
    }
}

/// Appends `n` as steps; `None` for anything but literals, classes,
/// greedy class runs, groups and `$`.
fn flatten(n: &Node, out: &mut Vec<Step>) -> Option<()> {
    match n {
        Node::Empty => {}
        Node::Lit(l) if !l.is_empty() => out.push(Step::Lit(l.clone())),
        Node::Class(c) => out.push(Step::Run {
            class: c.clone(),
            min: 1,
            max: 1,
        }),
        Node::End => out.push(Step::End),
        Node::Cap(i, sub) => {
            out.push(Step::Open(*i));
            flatten(sub, out)?;
            out.push(Step::Close(*i));
        }
        Node::Concat(items) => {
            for n in items {
                flatten(n, out)?;
            }
        }
        Node::Rep {
            sub,
            min,
            max,
            greedy: true,
        } => match &**sub {
            Node::Class(c) => out.push(Step::Run {
                class: c.clone(),
                min: *min,
                max: max.unwrap_or(u32::MAX),
            }),
            _ => return None,
        },
        _ => return None,
    }
    Some(())
}

fn count_groups(h: &Hir) -> usize {
    match h.kind() {
        HirKind::Capture(c) => (c.index as usize).max(count_groups(&c.sub)),
        HirKind::Concat(v) | HirKind::Alternation(v) => {
            v.iter().map(count_groups).max().unwrap_or(0)
        }
        HirKind::Repetition(r) => count_groups(&r.sub),
        _ => 0,
    }
}

fn convert(h: &Hir) -> Option<Node> {
    Some(match h.kind() {
        HirKind::Empty => Node::Empty,
        HirKind::Literal(hir::Literal(bytes)) => Node::Lit(bytes.clone()),
        HirKind::Class(hir::Class::Unicode(u)) => Node::Class(unicode_class(u)?),
        HirKind::Class(hir::Class::Bytes(_)) => return None,
        HirKind::Look(Look::Start) => Node::Start,
        HirKind::Look(Look::End) => Node::End,
        HirKind::Look(_) => return None,
        HirKind::Capture(c) => Node::Cap(c.index as usize, Box::new(convert(&c.sub)?)),
        HirKind::Concat(v) => Node::Concat(v.iter().map(convert).collect::<Option<_>>()?),
        HirKind::Alternation(v) => Node::Alt(v.iter().map(convert).collect::<Option<_>>()?),
        HirKind::Repetition(r) => Node::Rep {
            sub: Box::new(convert(&r.sub)?),
            min: r.min,
            max: r.max,
            greedy: r.greedy,
        },
    })
}

/// A class whose non-ASCII part is all or nothing.
fn unicode_class(u: &hir::ClassUnicode) -> Option<CharClass> {
    let mut ascii = [false; 128];
    let mut non_ascii: Vec<(u32, u32)> = Vec::new();
    for r in u.iter() {
        let (s, e) = (r.start() as u32, r.end() as u32);
        for c in s..=e.min(127) {
            ascii[c as usize] = true;
        }
        if e >= 128 {
            non_ascii.push((s.max(128), e));
        }
    }
    // All of U+0080..=U+10FFFF (the class set skips the surrogates).
    let covers_all = |v: &[(u32, u32)]| {
        let mut next = 0x80;
        for &(s, e) in v {
            if s > next && !(next == 0xD800 && s == 0xE000) {
                return false;
            }
            next = e + 1;
        }
        next > 0x10FFFF
    };
    let non_ascii = match non_ascii.len() {
        0 => false,
        _ if covers_all(&non_ascii) => true,
        _ => return None,
    };
    Some(CharClass { ascii, non_ascii })
}

struct Matcher<'h> {
    hay: &'h [u8],
}

impl Matcher<'_> {
    fn seq(&self, items: &[Node], pos: usize, st: &mut State, k: Cont) -> bool {
        match items.split_first() {
            None => k(pos, st),
            Some((first, rest)) => {
                self.node(first, pos, st, &mut |p, st| self.seq(rest, p, st, &mut *k))
            }
        }
    }

    fn node(&self, n: &Node, pos: usize, st: &mut State, k: Cont) -> bool {
        st.steps += 1;
        if st.steps > st.budget {
            st.aborted = true;
            return false;
        }
        match n {
            Node::Empty => k(pos, st),
            Node::Lit(lit) => self.hay[pos..].starts_with(lit) && k(pos + lit.len(), st),
            Node::Class(c) => match c.one(self.hay, pos) {
                Some(next) => k(next, st),
                None => false,
            },
            Node::Start => pos == 0 && k(pos, st),
            Node::End => pos == self.hay.len() && k(pos, st),
            Node::Cap(i, sub) => {
                let i = *i;
                let start = pos;
                self.node(sub, pos, st, &mut |p, st| {
                    let prev = st.slots[i];
                    st.slots[i] = Some((start, p));
                    if k(p, st) {
                        true
                    } else {
                        st.slots[i] = prev;
                        false
                    }
                })
            }
            Node::Concat(items) => self.seq(items, pos, st, k),
            Node::Alt(alts) => {
                for a in alts {
                    if self.node(a, pos, st, &mut *k) {
                        return true;
                    }
                    if st.aborted {
                        return false;
                    }
                }
                false
            }
            Node::Rep {
                sub,
                min,
                max,
                greedy,
            } => match &**sub {
                Node::Class(c) => self.class_run(c, *min, *max, *greedy, pos, st, k),
                _ => self.rep(sub, *min, *max, *greedy, 0, pos, st, k),
            },
        }
    }

    /// `class{min,max}`: scan the longest run once, then hand the
    /// continuation each length, longest first when greedy.
    #[allow(clippy::too_many_arguments)]
    fn class_run(
        &self,
        c: &CharClass,
        min: u32,
        max: Option<u32>,
        greedy: bool,
        pos: usize,
        st: &mut State,
        k: Cont,
    ) -> bool {
        let (mut end, mut n) = c.run(self.hay, pos, max.unwrap_or(u32::MAX));
        if n < min {
            return false;
        }
        if greedy {
            loop {
                st.steps += 1;
                if st.steps > st.budget {
                    st.aborted = true;
                    return false;
                }
                if k(end, st) {
                    return true;
                }
                if st.aborted || n == min {
                    return false;
                }
                // Back off one character.
                end -= 1;
                while end > pos && (self.hay[end] & 0xC0) == 0x80 {
                    end -= 1;
                }
                n -= 1;
            }
        } else {
            let mut at = pos;
            let mut i = 0;
            while i < min {
                at = c.one(self.hay, at).unwrap_or(at);
                i += 1;
            }
            loop {
                st.steps += 1;
                if st.steps > st.budget {
                    st.aborted = true;
                    return false;
                }
                if k(at, st) {
                    return true;
                }
                if st.aborted || i >= n {
                    return false;
                }
                at = c.one(self.hay, at).unwrap_or(at);
                i += 1;
            }
        }
    }

    /// A repetition of anything else, one iteration at a time.
    #[allow(clippy::too_many_arguments)]
    fn rep(
        &self,
        sub: &Node,
        min: u32,
        max: Option<u32>,
        greedy: bool,
        count: u32,
        pos: usize,
        st: &mut State,
        k: Cont,
    ) -> bool {
        let can_more = max.is_none_or(|m| count < m);
        let more = |st: &mut State, k: Cont| -> bool {
            can_more
                && self.node(sub, pos, st, &mut |p, st| {
                    // An empty iteration: as the regex crate's NFA, taken
                    // once right after the required ones (then the loop
                    // ends), never after a non-empty optional one.
                    if p == pos && count > min {
                        return false;
                    }
                    if p == pos && count == min {
                        return k(p, st);
                    }
                    self.rep(sub, min, max, greedy, count + 1, p, st, &mut *k)
                })
        };
        if count < min {
            return more(st, k);
        }
        if greedy {
            more(st, &mut *k) || (!st.aborted && k(pos, st))
        } else {
            k(pos, st) || (!st.aborted && more(st, k))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast matcher must agree with the `regex` crate on every group.
    fn agree(pattern: &str, hays: &[&str]) {
        let translated = crate::relabel::go_regex_syntax(pattern);
        let re = regex::Regex::new(&translated).unwrap();
        let fast = FastCaptures::new(&translated)
            .unwrap_or_else(|| panic!("{pattern}: not taken by the fast matcher"));
        let mut slots = Vec::new();
        for hay in hays {
            let got = fast.captures(hay, &mut slots);
            let want = re.captures(hay);
            assert_eq!(got, Some(want.is_some()), "{pattern} on {hay:?}");
            if let Some(c) = want {
                for (i, m) in c.iter().enumerate() {
                    assert_eq!(
                        slots[i],
                        m.map(|m| (m.start(), m.end())),
                        "{pattern} group {i} on {hay:?}"
                    );
                }
            }
        }
    }

    const NGINX: &str = r#"^(?P<remote_addr>[\w\.:]+) - (?P<remote_user>\S+) \[(?P<time_local>[^\]]+)\] "(?P<method>\S+) (?P<request_uri>\S+) (?P<protocol>\S+)" (?P<status>\d{3}) (?P<body_bytes_sent>\d+) "(?P<http_referer>[^"]*)" "(?P<http_user_agent>[^"]*)""#;

    #[test]
    fn agrees_with_the_regex_crate_on_log_lines() {
        let lines = [
            r#"203.0.113.9 - - [10/Oct/2023:13:55:36 +0200] "GET /api/v1/products?page=2 HTTP/1.1" 200 5123 "https://shop.example.com/" "Mozilla/5.0 (X11; Linux x86_64) Chrome/118.0""#,
            r#"::1 - bob [10/Oct/2023:13:55:36 +0200] "GET /a"b" HTTP/1.1" 404 0 "-" "ü ñ "quoted" 日本""#,
            r#"1.2.3.4 - - [x] "GET / HTTP/1.1" 20 5 "-" "-""#,
            "",
            "garbage",
            r#"1.2.3.4 - - [x] "GET / HTTP/1.1" 200 5 "-" "-" trailing"#,
        ];
        agree(NGINX, &lines);
        for f in ["nginx.yaml", "apache.yaml", "auth.yaml"] {
            let text = std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("examples")
                    .join(f),
            )
            .unwrap();
            let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
            let mut patterns = Vec::new();
            collect_expressions(&doc, &mut patterns);
            let fixtures =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/examples");
            let mut hays: Vec<String> = Vec::new();
            for dir in ["nginx", "apache2", "auth"] {
                for e in std::fs::read_dir(fixtures.join(dir)).unwrap() {
                    let t = std::fs::read_to_string(e.unwrap().path()).unwrap();
                    for l in t.lines() {
                        hays.push(l.to_string());
                        // Also the message part and truncated lines.
                        if let Some((_, m)) = l.split_once(": ") {
                            hays.push(m.to_string());
                        }
                        hays.push(l[..l.len() / 2].to_string());
                    }
                }
            }
            let refs: Vec<&str> = hays.iter().map(String::as_str).collect();
            for p in patterns.iter().filter(|p| p.starts_with('^')) {
                agree(p, &refs);
            }
        }
    }

    fn collect_expressions(v: &serde_yaml_ng::Value, out: &mut Vec<String>) {
        match v {
            serde_yaml_ng::Value::Mapping(m) => {
                for (k, v) in m {
                    if k.as_str() == Some("expression") {
                        if let Some(s) = v.as_str() {
                            out.push(s.to_string());
                        }
                    } else {
                        collect_expressions(v, out);
                    }
                }
            }
            serde_yaml_ng::Value::Sequence(s) => s.iter().for_each(|v| collect_expressions(v, out)),
            _ => {}
        }
    }

    #[test]
    fn priorities_lazy_alternation_and_repetition() {
        agree(r"^(a|ab)(c|bcd)(d*)$", &["abcd", "abcdd", "acd", "x"]);
        agree(r"^(.*?)=(.*)$", &["a=b=c", "=", "abc"]);
        agree(r"^((?:ab)+?)(b*)c?", &["ababbbc", "ab", "b"]);
        agree(r"^(?:(\d+)-)?(\w+)(?: (x))?", &["12-abc x", "abc", "-"]);
        agree(r"^(a*)*(b)", &["aab", "b", "aaa"]);
        agree(
            r#"^([^"]+)"(.{2,3})(.?)"#,
            &["xü\"abcd", "\"ab", "a\"日本語x", "é\"é"],
        );
    }

    /// 3,000 strings of up to `max_len` characters of `alphabet`.
    fn random_hays(rng: &mut fastrand::Rng, alphabet: &[char], max_len: usize) -> Vec<String> {
        (0..3000)
            .map(|_| {
                let n = rng.usize(0..max_len);
                (0..n)
                    .map(|_| alphabet[rng.usize(..alphabet.len())])
                    .collect()
            })
            .collect()
    }

    #[test]
    fn agrees_on_random_haystacks() {
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet: Vec<char> = "ab -\"[]=:0123é日\t".chars().collect();
        let patterns = [
            NGINX,
            r#"^(\S+) (\S*) \[([^\]]*)\] "(\S+) (\S+)?" (\d{1,3}|-)"#,
            r"^(?P<k>\w+)=(?P<v>.*?)(?: (?P<rest>.*))?$",
            r"^((?:a|b)*?)(b+)?(.)",
            r"^\s*(\S+) : ([^;]+?) ;.*?(?:=(?P<c>.*))?$",
            r"^(?:(a)|(b)|(ab))+(-?)",
        ];
        let hays = random_hays(&mut rng, &alphabet, 24);
        let refs: Vec<&str> = hays.iter().map(String::as_str).collect();
        for p in patterns {
            agree(p, &refs);
        }
    }

    #[test]
    fn one_pass_shapes_agree_and_others_backtrack() {
        let linear = |p: &str| {
            FastCaptures::new(&crate::relabel::go_regex_syntax(p))
                .unwrap()
                .linear
                .is_some()
        };
        let one_pass = [
            // bench/shipper/nginx.yaml's
            r#"^(?P<remote_addr>\S+) - (?P<remote_user>\S+) \[(?P<time_local>[^\]]+)\] "(?P<method>\S+) (?P<request_uri>\S+) (?P<protocol>[^"]+)" (?P<status>\d{3}) (?P<body_bytes_sent>\d+) "(?P<http_referer>[^"]*)" "(?P<http_user_agent>[^"]*)""#,
            r#"^(?P<a>\S+) (\S*) \[(?P<t>[^\]]+)\] "(?P<m>[^"]*)"$"#,
            r"^([a-z]{1,3})([0-9]+)-(\d{2})(.)",
            r"^(\S+)",
            r"^é(\w*)ü",
            r"^(\w+)é",
        ];
        let backtracking = [
            // `(?P<protocol>\S+)"`: a `"` may end the run or be in it.
            NGINX,
            r"^(\S+)(\S)",
            r"^(\d+)(\d{0,2})x",
            r"^(ab|cd)e",
            r"^(\S+?)",
            r"^([^x]+)é",
            r"^(?:é+)(\w*)",
            r"^([^x]*)(?: (y))?",
        ];
        for p in one_pass {
            assert!(linear(p), "{p}: expected the one-pass form");
        }
        for p in backtracking {
            assert!(!linear(p), "{p}: has no one-pass form");
        }
        let mut rng = fastrand::Rng::with_seed(11);
        let alphabet: Vec<char> = "abz09 -\"[]x:é日ü".chars().collect();
        let hays = random_hays(&mut rng, &alphabet, 20);
        let refs: Vec<&str> = hays.iter().map(String::as_str).collect();
        for p in one_pass.iter().chain(&backtracking) {
            agree(p, &refs);
        }
    }

    #[test]
    fn shapes_it_leaves_to_the_regex_crate() {
        assert!(FastCaptures::new(r"(\S+) x").is_none(), "unanchored");
        assert!(FastCaptures::new(r"^\bx").is_none(), "word boundary");
        assert!(
            FastCaptures::new(r"^[а-я]+").is_none(),
            "partial non-ASCII class"
        );
        assert!(
            FastCaptures::new(r"^[^é]+").is_none(),
            "partial non-ASCII class"
        );
        assert!(FastCaptures::new(r"(?m)^x").is_none(), "multi-line anchor");
        // A pathological search gives up instead of taking forever.
        let f = FastCaptures::new(r"^(a*)*(a*)*(a*)*b").unwrap();
        let hay = "a".repeat(200);
        assert_eq!(f.captures(&hay, &mut Vec::new()), None);
    }
}
