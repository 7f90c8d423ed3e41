//! A structural LogQL parser for the dashboards' Loki queries (no Loki
//! runs in the tests): log queries (`{stream selector} | pipeline`) and
//! metric queries (range aggregations, vector aggregations, binary
//! operators), with what the label test needs out of them: the stream
//! selectors' label names, the labels filtered on or grouped by, and the
//! labels the pipeline's parsers extract. Anything it does not know is an
//! error naming the offset, so an unsupported construct never passes
//! unchecked.

use std::collections::BTreeSet;

/// Where a label name is used in a query.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum LabelUse {
    /// In a stream selector `{name="..."}`: must be a stream label.
    Stream(String),
    /// In a label filter, `by`/`without`, `unwrap`, `drop`/`keep`: a stream
    /// label or one the pipeline extracted.
    Filter(String),
}

/// What a query uses and extracts.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub uses: BTreeSet<LabelUse>,
    /// Labels the pipelines extract: named groups of `regexp`, `<names>`
    /// of `pattern`, `label_format` targets, `json`/`logfmt` parameters.
    pub extracted: BTreeSet<String>,
    /// Whether a `json`, `logfmt` or `unpack` stage without parameters
    /// extracts every field of the line.
    pub extracts_all_fields: bool,
    /// Whether this is a metric query (else a log query for a logs panel).
    pub is_metric: bool,
    /// Each stream selector of the query, as its matchers.
    pub selectors: Vec<Vec<Matcher>>,
}

/// One matcher of a stream selector: `name op "value"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    pub name: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: String,
    pub value: String,
}

impl Matcher {
    /// Whether a stream with `labels` satisfies this matcher (a missing
    /// label is the empty string, regexes are anchored, as in Loki).
    pub fn matches(
        &self,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<bool, String> {
        let v = labels.get(&self.name).map_or("", String::as_str);
        let re = || {
            regex::Regex::new(&format!("^(?:{})$", self.value))
                .map_err(|e| format!("{}{}{:?}: {e}", self.name, self.op, self.value))
        };
        Ok(match self.op.as_str() {
            "=" => v == self.value,
            "!=" => v != self.value,
            "=~" => re()?.is_match(v),
            "!~" => !re()?.is_match(v),
            op => return Err(format!("unknown matcher operator {op}")),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Op(&'static str),
}

const OPS: &[&str] = &[
    "|=", "|~", "!=", "!~", "=~", "==", ">=", "<=", "|>", "!>", "{", "}", "(", ")", "[", "]", ",",
    "|", "=", ">", "<", "+", "-", "*", "/", "%", "^",
];

fn tokenize(s: &str) -> Result<Vec<(usize, Tok)>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c == '"' || c == '`' {
            let mut v = String::new();
            i += 1;
            loop {
                let Some(&ch) = b.get(i) else {
                    return Err(format!("unterminated string at offset {start}"));
                };
                let ch = ch as char;
                if ch == c {
                    i += 1;
                    break;
                }
                if c == '"' && ch == '\\' {
                    let next = *b
                        .get(i + 1)
                        .ok_or(format!("unterminated string at offset {start}"))?
                        as char;
                    v.push(next);
                    i += 2;
                    continue;
                }
                // Strings may hold any UTF-8; copy whole characters.
                let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
                v.push_str(&s[i..i + ch_len]);
                i += ch_len;
            }
            out.push((start, Tok::Str(v)));
        } else if c.is_ascii_digit() || (c == '.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            // Numbers, durations (5m, 1h30m) and byte sizes (10KB).
            while i < b.len() && ((b[i] as char).is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
            out.push((start, Tok::Num(s[start..i].to_string())));
        } else if c.is_ascii_alphabetic() || c == '_' {
            while i < b.len() && ((b[i] as char).is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((start, Tok::Ident(s[start..i].to_string())));
        } else if let Some(op) = OPS.iter().find(|op| s[i..].starts_with(**op)) {
            i += op.len();
            out.push((start, Tok::Op(op)));
        } else {
            return Err(format!("unexpected character {c:?} at offset {start}"));
        }
    }
    Ok(out)
}

const VECTOR_AGGREGATIONS: &[&str] = &[
    "sum",
    "avg",
    "min",
    "max",
    "stddev",
    "stdvar",
    "count",
    "topk",
    "bottomk",
    "sort",
    "sort_desc",
];
const RANGE_AGGREGATIONS: &[&str] = &[
    "count_over_time",
    "rate",
    "rate_counter",
    "bytes_over_time",
    "bytes_rate",
    "absent_over_time",
    "sum_over_time",
    "avg_over_time",
    "max_over_time",
    "min_over_time",
    "first_over_time",
    "last_over_time",
    "stdvar_over_time",
    "stddev_over_time",
    "quantile_over_time",
];
const BINARY_OPS: &[&str] = &[
    "+", "-", "*", "/", "%", "^", "==", "!=", ">", ">=", "<", "<=",
];
const BINARY_WORDS: &[&str] = &["and", "or", "unless"];

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
    q: Query,
}

/// Parses `text` as LogQL.
pub fn parse(text: &str) -> Result<Query, String> {
    let toks = tokenize(text)?;
    let mut p = Parser {
        toks,
        pos: 0,
        end: text.len(),
        q: Query::default(),
    };
    if matches!(p.peek(), Some(Tok::Op("{"))) {
        p.log_query()?;
    } else {
        p.q.is_metric = true;
        p.metric_expr()?;
    }
    if let Some((at, t)) = p.toks.get(p.pos) {
        return Err(format!("unexpected {t:?} at offset {at}"));
    }
    Ok(p.q)
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.1)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |t| t.0)
    }

    fn next(&mut self) -> Result<Tok, String> {
        let t = self
            .toks
            .get(self.pos)
            .map(|t| t.1.clone())
            .ok_or_else(|| format!("unexpected end of query at offset {}", self.end))?;
        self.pos += 1;
        Ok(t)
    }

    fn expect_op(&mut self, op: &str) -> Result<(), String> {
        let at = self.at();
        match self.next()? {
            Tok::Op(o) if o == op => Ok(()),
            t => Err(format!("expected {op:?} at offset {at}, found {t:?}")),
        }
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_ident(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(w)) if w == word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn ident(&mut self) -> Result<String, String> {
        let at = self.at();
        match self.next()? {
            Tok::Ident(s) => Ok(s),
            t => Err(format!("expected a name at offset {at}, found {t:?}")),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let at = self.at();
        match self.next()? {
            Tok::Str(s) => Ok(s),
            t => Err(format!("expected a string at offset {at}, found {t:?}")),
        }
    }

    /// `{selector} pipeline`.
    fn log_query(&mut self) -> Result<(), String> {
        self.selector()?;
        self.pipeline()
    }

    fn selector(&mut self) -> Result<(), String> {
        let at = self.at();
        self.expect_op("{")?;
        let mut matchers = Vec::new();
        loop {
            if self.eat_op("}") {
                break;
            }
            if !matchers.is_empty() {
                self.expect_op(",")?;
            }
            let name = self.ident()?;
            let op_at = self.at();
            let op = match self.next()? {
                Tok::Op(op @ ("=" | "!=" | "=~" | "!~")) => op,
                t => {
                    return Err(format!(
                        "expected =, !=, =~ or !~ at offset {op_at}, found {t:?}"
                    ))
                }
            };
            let value = self.string()?;
            self.q.uses.insert(LabelUse::Stream(name.clone()));
            matchers.push(Matcher {
                name,
                op: op.to_string(),
                value,
            });
        }
        if matchers.is_empty() {
            return Err(format!("empty stream selector at offset {at}"));
        }
        self.q.selectors.push(matchers);
        Ok(())
    }

    /// Line filters and `| stage`s, until something else.
    fn pipeline(&mut self) -> Result<(), String> {
        loop {
            match self.peek() {
                Some(Tok::Op("|=" | "!=" | "|~" | "!~" | "|>" | "!>")) => {
                    self.pos += 1;
                    self.string()?;
                    // `|= "a" or "b"`
                    while self.eat_ident("or") {
                        self.string()?;
                    }
                }
                Some(Tok::Op("|")) => {
                    self.pos += 1;
                    self.stage()?;
                }
                _ => return Ok(()),
            }
        }
    }

    fn stage(&mut self) -> Result<(), String> {
        let at = self.at();
        let word = self.ident()?;
        match word.as_str() {
            "json" | "logfmt" => {
                // logfmt flags, then optional `name="expression"` params.
                while self.eat_op("-") {
                    self.eat_op("-");
                    self.ident()?;
                }
                let mut params = 0;
                while let Some(Tok::Ident(_)) = self.peek() {
                    let save = self.pos;
                    let name = self.ident()?;
                    if self.eat_op("=") {
                        self.string()?;
                    } else if !matches!(self.peek(), Some(Tok::Op(","))) && params == 0 {
                        // Not a parameter list: `| json and ...` cannot occur; give back.
                        self.pos = save;
                        break;
                    }
                    self.q.extracted.insert(name);
                    params += 1;
                    if !self.eat_op(",") {
                        break;
                    }
                }
                if params == 0 {
                    self.q.extracts_all_fields = true;
                }
            }
            "unpack" => self.q.extracts_all_fields = true,
            "regexp" => {
                let re = self.string()?;
                regex::Regex::new(&re)
                    .map_err(|e| format!("regexp at offset {at}: {e}"))?
                    .capture_names()
                    .flatten()
                    .for_each(|n| {
                        self.q.extracted.insert(n.to_string());
                    });
            }
            "pattern" => {
                let pattern = self.string()?;
                let names = pattern_captures(&pattern)
                    .map_err(|e| format!("pattern at offset {at}: {e}"))?;
                self.q.extracted.extend(names);
            }
            "line_format" => {
                self.string()?;
            }
            "label_format" => loop {
                let name = self.ident()?;
                self.expect_op("=")?;
                match self.next()? {
                    Tok::Str(_) => {}
                    Tok::Ident(source) => {
                        self.q.uses.insert(LabelUse::Filter(source));
                    }
                    t => {
                        return Err(format!(
                            "label_format {name}= takes a string or a label, not {t:?}"
                        ))
                    }
                }
                self.q.extracted.insert(name);
                if !self.eat_op(",") {
                    break;
                }
            },
            "drop" | "keep" => loop {
                let name = self.ident()?;
                if self.eat_op("=") || self.eat_op("!=") || self.eat_op("=~") || self.eat_op("!~") {
                    self.string()?;
                }
                self.q.uses.insert(LabelUse::Filter(name));
                if !self.eat_op(",") {
                    break;
                }
            },
            "decolorize" => {}
            "unwrap" => {
                let mut name = self.ident()?;
                if self.eat_op("(") {
                    // duration(label), bytes(label)
                    name = self.ident()?;
                    self.expect_op(")")?;
                }
                self.q.uses.insert(LabelUse::Filter(name));
            }
            _ => {
                // A label filter expression: `name op value` joined by
                // and / or / `,`, maybe parenthesised.
                self.pos -= 1;
                self.label_filter_expr()?;
            }
        }
        Ok(())
    }

    fn label_filter_expr(&mut self) -> Result<(), String> {
        loop {
            if self.eat_op("(") {
                self.label_filter_expr()?;
                self.expect_op(")")?;
            } else {
                self.label_filter()?;
            }
            if !(self.eat_ident("and") || self.eat_ident("or") || self.eat_op(",")) {
                return Ok(());
            }
        }
    }

    fn label_filter(&mut self) -> Result<(), String> {
        let name = self.ident()?;
        let at = self.at();
        let op = match self.next()? {
            Tok::Op(o @ ("=" | "!=" | "=~" | "!~" | "==" | ">" | ">=" | "<" | "<=")) => o,
            t => {
                return Err(format!(
                    "label filter on {name}: expected a comparison at offset {at}, found {t:?}"
                ))
            }
        };
        let at = self.at();
        match (op, self.next()?) {
            (_, Tok::Str(_)) => {}
            ("==" | "!=" | ">" | ">=" | "<" | "<=", Tok::Num(_)) => {}
            (_, t) => {
                return Err(format!(
                    "label filter on {name}: bad value {t:?} at offset {at}"
                ))
            }
        }
        self.q.uses.insert(LabelUse::Filter(name));
        Ok(())
    }

    /// A metric expression: operands joined by binary operators.
    fn metric_expr(&mut self) -> Result<(), String> {
        loop {
            self.operand()?;
            let is_binary = match self.peek() {
                Some(Tok::Op(o)) => BINARY_OPS.contains(o),
                Some(Tok::Ident(w)) => BINARY_WORDS.contains(&w.as_str()),
                _ => false,
            };
            if !is_binary {
                return Ok(());
            }
            self.pos += 1;
            self.eat_ident("bool");
            if self.eat_ident("on") || self.eat_ident("ignoring") {
                self.label_list()?;
                if (self.eat_ident("group_left") || self.eat_ident("group_right"))
                    && matches!(self.peek(), Some(Tok::Op("(")))
                {
                    self.label_list()?;
                }
            }
        }
    }

    fn operand(&mut self) -> Result<(), String> {
        let at = self.at();
        match self.next()? {
            Tok::Num(_) => Ok(()),
            Tok::Op("-") => self.operand(),
            Tok::Op("(") => {
                self.metric_expr()?;
                self.expect_op(")")
            }
            Tok::Ident(f) if f == "vector" => {
                self.expect_op("(")?;
                match self.next()? {
                    Tok::Num(_) => {}
                    t => return Err(format!("vector() takes a number, not {t:?}")),
                }
                self.expect_op(")")
            }
            Tok::Ident(f) if RANGE_AGGREGATIONS.contains(&f.as_str()) => {
                self.expect_op("(")?;
                if f == "quantile_over_time" {
                    match self.next()? {
                        Tok::Num(_) => {}
                        t => {
                            return Err(format!(
                                "quantile_over_time takes a number first, not {t:?}"
                            ))
                        }
                    }
                    self.expect_op(",")?;
                }
                self.log_range()?;
                self.expect_op(")")?;
                self.grouping()
            }
            Tok::Ident(f) if VECTOR_AGGREGATIONS.contains(&f.as_str()) => {
                self.grouping()?;
                self.expect_op("(")?;
                if f == "topk" || f == "bottomk" {
                    match self.next()? {
                        Tok::Num(_) => {}
                        t => return Err(format!("{f} takes a number first, not {t:?}")),
                    }
                    self.expect_op(",")?;
                }
                self.metric_expr()?;
                self.expect_op(")")?;
                self.grouping()
            }
            t => Err(format!("unexpected {t:?} at offset {at} in a metric query")),
        }
    }

    /// `{selector} pipeline [range]` or `{selector} [range] pipeline`, or
    /// parenthesised.
    fn log_range(&mut self) -> Result<(), String> {
        if self.eat_op("(") {
            self.log_query()?;
            self.expect_op(")")?;
            return self.range();
        }
        self.selector()?;
        if matches!(self.peek(), Some(Tok::Op("["))) {
            self.range()?;
            return self.pipeline();
        }
        self.pipeline()?;
        self.range()?;
        if self.eat_ident("offset") {
            self.duration()?;
        }
        Ok(())
    }

    fn range(&mut self) -> Result<(), String> {
        self.expect_op("[")?;
        self.duration()?;
        self.expect_op("]")
    }

    fn duration(&mut self) -> Result<(), String> {
        let at = self.at();
        match self.next()? {
            Tok::Num(d) if is_duration(&d) => Ok(()),
            t => Err(format!("expected a duration at offset {at}, found {t:?}")),
        }
    }

    fn grouping(&mut self) -> Result<(), String> {
        if self.eat_ident("by") || self.eat_ident("without") {
            self.label_list()?;
        }
        Ok(())
    }

    fn label_list(&mut self) -> Result<(), String> {
        self.expect_op("(")?;
        loop {
            if self.eat_op(")") {
                return Ok(());
            }
            let name = self.ident()?;
            self.q.uses.insert(LabelUse::Filter(name));
            if !self.eat_op(",") {
                return self.expect_op(")");
            }
        }
    }
}

fn is_duration(s: &str) -> bool {
    let re = regex::Regex::new(r"^(\d+(\.\d+)?(ms|s|m|h|d|w|y))+$").unwrap();
    re.is_match(s)
}

/// The `<name>` captures of a `pattern` expression (`<_>` is anonymous).
fn pattern_captures(pattern: &str) -> Result<Vec<String>, String> {
    let re = regex::Regex::new(r"<([A-Za-z_]\w*)>").unwrap();
    let names: Vec<String> = re
        .captures_iter(pattern)
        .map(|c| c[1].to_string())
        .filter(|n| n != "_")
        .collect();
    if names.is_empty() {
        return Err("captures nothing".into());
    }
    let unique: BTreeSet<&String> = names.iter().collect();
    if unique.len() != names.len() {
        return Err("a capture name is repeated".into());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(q: &Query) -> Vec<&str> {
        q.uses
            .iter()
            .filter_map(|u| match u {
                LabelUse::Stream(s) => Some(s.as_str()),
                _ => None,
            })
            .collect()
    }

    fn filters(q: &Query) -> Vec<&str> {
        q.uses
            .iter()
            .filter_map(|u| match u {
                LabelUse::Filter(s) => Some(s.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn reads_a_log_query() {
        let q = parse(r#"{job="nginx", host=~".+"} |= "GET" != "health" |~ `(?i)err` | logfmt | level="error" and status >= 500"#).unwrap();
        assert!(!q.is_metric);
        assert_eq!(stream(&q), ["host", "job"]);
        assert_eq!(filters(&q), ["level", "status"]);
        assert!(q.extracts_all_fields);
    }

    #[test]
    fn reads_metric_queries() {
        let q = parse(
            r#"topk(10, sum by (path) (count_over_time({log_type="access"} | pattern `<ip> - <_> "<method> <path> <_>"` [5m])))"#,
        )
        .unwrap();
        assert!(q.is_metric);
        assert_eq!(filters(&q), ["path"]);
        assert_eq!(
            q.extracted,
            ["ip", "method", "path"].map(String::from).into()
        );
        let q = parse(
            r#"sum(count_over_time({a="b",s="5xx"}[1m])) / sum(count_over_time({a="b"} [1m])) * 100"#,
        )
        .unwrap();
        assert_eq!(stream(&q), ["a", "s"]);
        let q = parse(
            r#"sum by (user, source_ip) (count_over_time({a="b"} | regexp `for (?P<user>\S+) from (?P<source_ip>\S+)` | __error__="" [1h]))"#,
        )
        .unwrap();
        assert_eq!(filters(&q), ["__error__", "source_ip", "user"]);
        assert_eq!(q.extracted, ["source_ip", "user"].map(String::from).into());
        parse(
            r#"quantile_over_time(0.99, {a="b"} | json | unwrap duration(latency) [5m]) by (host)"#,
        )
        .unwrap();
        parse(r#"sum(rate({a="b"}[5m] |= "x")) or vector(0)"#).unwrap();
    }

    #[test]
    fn rejects_broken_queries_naming_where() {
        for (bad, says) in [
            (r#"{job="a""#, "expected"),
            (r#"{job="a"} |= "x"#, "unterminated string"),
            (r#"{job:"a"}"#, "unexpected character"),
            (r#"{job=="a"}"#, "expected =, !=, =~ or !~"),
            (r#"{}"#, "empty stream selector"),
            (r#"sum(count_over_time({a="b"}))"#, "expected \"[\""),
            (
                r#"count_over_time({a="b"}[5 minutes])"#,
                "expected a duration",
            ),
            (r#"sum by (a (count_over_time({a="b"}[1m]))"#, "expected"),
            (r#"{a="b"} | regexp `(?P<x`"#, "regexp"),
            (r#"{a="b"} | pattern "<_> <_>""#, "captures nothing"),
            (r#"{a="b"} | level ~ "x""#, "unexpected character"),
            (r#"foo({a="b"}[1m])"#, "in a metric query"),
            (r#"{a="b"} ) "#, "unexpected"),
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e:?} does not say {says:?}");
        }
    }

    #[test]
    fn keeps_each_selector_and_matches_streams_as_loki_does() {
        let q = parse(
            r#"sum(count_over_time({log_type="access",status_class=~"5.."} [1m])) / sum(count_over_time({log_type="access",host!~"db.*"} [1m]))"#,
        )
        .unwrap();
        assert_eq!(q.selectors.len(), 2);
        let stream = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let web = stream(&[
            ("log_type", "access"),
            ("status_class", "5xx"),
            ("host", "web1"),
        ]);
        let db = stream(&[
            ("log_type", "access"),
            ("status_class", "2xx"),
            ("host", "db1"),
        ]);
        let all = |sel: &[Matcher], s| sel.iter().all(|m| m.matches(s).unwrap());
        assert!(all(&q.selectors[0], &web));
        assert!(
            !all(&q.selectors[0], &db),
            "regexes are anchored: 2xx is not 5.."
        );
        assert!(all(&q.selectors[1], &web));
        assert!(!all(&q.selectors[1], &db));
        // A label a stream lacks is the empty string.
        let m = Matcher {
            name: "container".into(),
            op: "=~".into(),
            value: ".+".into(),
        };
        assert!(!m.matches(&web).unwrap());
    }
}
