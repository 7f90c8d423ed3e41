//! The textfile collector: metrics from `*.prom` files in the directories
//! given by `--collector.textfile.directory` (repeatable, glob patterns
//! allowed), in the Prometheus text format, plus
//! `node_textfile_mtime_seconds{file}` for every file read and
//! `node_textfile_scrape_error`.
//!
//! As node_exporter: a file that cannot be read or parsed, or that has
//! samples with timestamps, is skipped whole and logged with its path (and
//! line); that sets `node_textfile_scrape_error` to 1 but never fails the
//! collector. The same metric in several files is merged when the files
//! agree on its help text (and type); otherwise the later file's copy is
//! dropped and counted as an error. Series repeated with the same labels
//! are dropped and counted as errors too, so that one bad file cannot make
//! the whole scrape fail.
//!
//! Parsed files are cached by (device, inode, size, mtime, ctime), so an
//! unchanged file is not parsed again on every scrape.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::anyhow;
use exporter_toolkit::exposition::{
    valid_label_name, valid_metric_name, Family, MetricSet, MetricType, Value,
};

use super::CollectorSpec;
use crate::collector::Collector;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "textfile",
    default_enabled: true,
    flags: || {
        vec![crate::cli::repeated_flag(
            "collector.textfile.directory",
            "",
            "Directory to read text files with metrics from. Repeatable.",
        )]
    },
    build: |f| {
        Ok(Box::new(Textfile {
            dirs: f
                .strings("collector.textfile.directory")
                .into_iter()
                .filter(|d| !d.is_empty())
                .collect(),
            cache: Mutex::new(HashMap::new()),
        }))
    },
};

// ---------------------------------------------------------------------------
// The text format parser.

/// One series of a parsed family. Labels are in the order of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSeries {
    pub labels: Vec<(String, String)>,
    pub value: Value,
    /// Line of the series' first sample, for error messages.
    pub line: usize,
}

/// One metric family of a parsed file.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedFamily {
    pub name: String,
    pub help: Option<String>,
    pub kind: MetricType,
    pub series: Vec<ParsedSeries>,
}

/// A parsed file: its families (those with at least one sample), and the
/// line of the first sample with a timestamp, if any.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedText {
    pub families: Vec<ParsedFamily>,
    pub first_timestamp_line: Option<usize>,
}

struct Builder {
    name: String,
    help: Option<String>,
    kind: Option<MetricType>,
    series: Vec<ParsedSeries>,
    /// Summary/histogram series by their labels (without quantile/le).
    groups: HashMap<Vec<(String, String)>, usize>,
}

/// Which part of a summary or histogram a sample is.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    Plain,
    Sum,
    Count,
    Bucket,
}

struct LineParser<'a> {
    line: &'a str,
    pos: usize,
}

impl<'a> LineParser<'a> {
    fn peek(&self) -> Option<u8> {
        self.line.as_bytes().get(self.pos).copied()
    }
    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }
    fn at_end(&self) -> bool {
        self.pos >= self.line.len()
    }
    /// Up to the next blank (or end).
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while !matches!(self.peek(), None | Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.line.get(start..self.pos).unwrap_or("")
    }
    /// A metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    fn metric_name(&mut self) -> &'a str {
        let start = self.pos;
        while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || b == b'_' || b == b':')
        {
            self.pos += 1;
        }
        self.line.get(start..self.pos).unwrap_or("")
    }
    fn label_name(&mut self) -> &'a str {
        let start = self.pos;
        while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || b == b'_') {
            self.pos += 1;
        }
        self.line.get(start..self.pos).unwrap_or("")
    }
    /// A quoted label value after its opening quote, unescaping `\\`, `\"`
    /// and `\n`.
    fn label_value(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let rest = self.line.get(self.pos..).unwrap_or("");
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, '\\')) => out.push('\\'),
                    Some((_, '"')) => out.push('"'),
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, other)) => {
                        return Err(format!(
                            "invalid escape sequence '\\{other}' in label value"
                        ))
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err("unterminated label value".into())
    }
}

/// Unescapes a HELP text (`\\` and `\n`).
fn unescape_help(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some(other) => return Err(format!("invalid escape sequence '\\{other}' in HELP")),
            None => return Err("HELP ends with a lone backslash".into()),
        }
    }
    Ok(out)
}

/// Parses a float as Go's strconv.ParseFloat does for the text format
/// (`+Inf`, `-Inf`, `NaN` and friends included).
fn parse_float(s: &str) -> Option<f64> {
    if s.is_empty() || s.contains('_') {
        return None;
    }
    s.parse().ok()
}

fn parse_type(token: &str) -> Option<MetricType> {
    match token.to_ascii_lowercase().as_str() {
        "counter" => Some(MetricType::Counter),
        "gauge" => Some(MetricType::Gauge),
        "untyped" => Some(MetricType::Untyped),
        "histogram" => Some(MetricType::Histogram),
        "summary" => Some(MetricType::Summary),
        _ => None,
    }
}

struct Parser {
    builders: Vec<Builder>,
    index: HashMap<String, usize>,
    first_timestamp_line: Option<usize>,
}

impl Parser {
    fn family(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.builders.push(Builder {
            name: name.to_string(),
            help: None,
            kind: None,
            series: Vec::new(),
            groups: HashMap::new(),
        });
        let i = self.builders.len() - 1;
        self.index.insert(name.to_string(), i);
        i
    }

    /// The family a sample name belongs to, and which part of it the sample
    /// is: `x_sum`/`x_count` of a summary `x`, `x_bucket`/`x_sum`/`x_count`
    /// of a histogram `x`, else the family named exactly so.
    fn family_of_sample(&mut self, name: &str) -> (usize, Part) {
        if let Some(&i) = self.index.get(name) {
            return (i, Part::Plain);
        }
        for (suffix, part) in [
            ("_sum", Part::Sum),
            ("_count", Part::Count),
            ("_bucket", Part::Bucket),
        ] {
            let Some(base) = name.strip_suffix(suffix) else {
                continue;
            };
            if let Some(&i) = self.index.get(base) {
                let kind = self.builders.get(i).and_then(|b| b.kind);
                let fits = match kind {
                    Some(MetricType::Summary) => part != Part::Bucket,
                    Some(MetricType::Histogram) => true,
                    _ => false,
                };
                if fits {
                    return (i, part);
                }
            }
        }
        (self.family(name), Part::Plain)
    }

    fn comment(&mut self, p: &mut LineParser) -> Result<(), String> {
        p.skip_blanks();
        let keyword = p.token();
        if keyword != "HELP" && keyword != "TYPE" {
            return Ok(());
        }
        p.skip_blanks();
        let name = p.metric_name();
        if name.is_empty()
            || !valid_metric_name(name)
            || !matches!(p.peek(), None | Some(b' ' | b'\t'))
        {
            return Err(format!("invalid metric name in {keyword} comment"));
        }
        p.skip_blanks();
        let i = self.family(name);
        let b = self
            .builders
            .get_mut(i)
            .ok_or("internal error: no family")?;
        if keyword == "HELP" {
            if b.help.is_some() {
                return Err(format!("second HELP line for metric name {name:?}"));
            }
            b.help = Some(unescape_help(p.line.get(p.pos..).unwrap_or(""))?);
        } else {
            let token = p.token();
            let kind = parse_type(token).ok_or_else(|| format!("unknown metric type {token:?}"))?;
            p.skip_blanks();
            if !p.at_end() {
                return Err(format!("unexpected text after TYPE {token}"));
            }
            if b.kind.is_some() || !b.series.is_empty() {
                return Err(format!(
                    "second TYPE line for metric name {name:?}, or TYPE reported after samples"
                ));
            }
            b.kind = Some(kind);
        }
        Ok(())
    }

    fn sample(&mut self, p: &mut LineParser, line_no: usize) -> Result<(), String> {
        let name = p.metric_name();
        if name.is_empty() || !valid_metric_name(name) {
            return Err("invalid metric name".into());
        }
        p.skip_blanks();
        let mut labels: Vec<(String, String)> = Vec::new();
        if p.peek() == Some(b'{') {
            p.pos += 1;
            loop {
                p.skip_blanks();
                if p.peek() == Some(b'}') {
                    p.pos += 1;
                    break;
                }
                let label = p.label_name();
                if label.is_empty() || !valid_label_name(label) {
                    return Err(format!("invalid label name for metric {name:?}"));
                }
                if label == "__name__" {
                    return Err("label name \"__name__\" is reserved".into());
                }
                p.skip_blanks();
                if p.peek() != Some(b'=') {
                    return Err(format!("expected '=' after label name {label:?}"));
                }
                p.pos += 1;
                p.skip_blanks();
                if p.peek() != Some(b'"') {
                    return Err(format!(
                        "expected '\"' at start of label value for {label:?}"
                    ));
                }
                p.pos += 1;
                let value = p.label_value()?;
                if labels.iter().any(|(k, _)| k == label) {
                    return Err(format!(
                        "duplicate label name {label:?} for metric {name:?}"
                    ));
                }
                labels.push((label.to_string(), value));
                p.skip_blanks();
                match p.peek() {
                    Some(b',') => p.pos += 1,
                    Some(b'}') => {
                        p.pos += 1;
                        break;
                    }
                    _ => return Err(format!("expected ',' or '}}' after label {label:?}")),
                }
            }
            p.skip_blanks();
        }
        let raw_value = p.token();
        let value = parse_float(raw_value)
            .ok_or_else(|| format!("expected float as value, got {raw_value:?}"))?;
        p.skip_blanks();
        if !p.at_end() {
            let ts = p.token();
            if ts.parse::<i64>().is_err() {
                return Err(format!("expected integer as timestamp, got {ts:?}"));
            }
            self.first_timestamp_line.get_or_insert(line_no);
            p.skip_blanks();
            if !p.at_end() {
                return Err("unexpected text after timestamp".into());
            }
        }
        self.add_sample(name, labels, value, line_no)
    }

    fn add_sample(
        &mut self,
        name: &str,
        mut labels: Vec<(String, String)>,
        value: f64,
        line_no: usize,
    ) -> Result<(), String> {
        let (i, part) = self.family_of_sample(name);
        let b = self
            .builders
            .get_mut(i)
            .ok_or("internal error: no family")?;
        let kind = *b.kind.get_or_insert(MetricType::Untyped);
        match kind {
            MetricType::Counter | MetricType::Gauge | MetricType::Untyped => {
                b.series.push(ParsedSeries {
                    labels,
                    value: Value::Single(value),
                    line: line_no,
                });
                return Ok(());
            }
            MetricType::Summary | MetricType::Histogram => {}
        }
        // Pull out quantile (summaries) or le (histogram buckets).
        let special = if kind == MetricType::Summary {
            "quantile"
        } else {
            "le"
        };
        let mut bound = None;
        if part == Part::Plain || part == Part::Bucket {
            let pos = labels
                .iter()
                .position(|(k, _)| k == special)
                .ok_or_else(|| format!("{name:?} sample without {special:?} label"))?;
            let (_, raw) = labels.remove(pos);
            bound = Some(parse_float(&raw).ok_or_else(|| {
                format!("expected float as value for {special:?} label, got {raw:?}")
            })?);
        }
        if kind == MetricType::Histogram && part == Part::Plain {
            return Err(format!(
                "histogram sample {name:?} must be {name}_bucket, {name}_sum or {name}_count"
            ));
        }
        let idx = match b.groups.get(&labels) {
            Some(&idx) => idx,
            None => {
                let empty = if kind == MetricType::Summary {
                    Value::Summary {
                        quantiles: Vec::new(),
                        sum: 0.0,
                        count: 0,
                    }
                } else {
                    Value::Histogram {
                        buckets: Vec::new(),
                        sum: 0.0,
                        count: 0,
                    }
                };
                b.series.push(ParsedSeries {
                    labels: labels.clone(),
                    value: empty,
                    line: line_no,
                });
                b.groups.insert(labels, b.series.len() - 1);
                b.series.len() - 1
            }
        };
        let s = b.series.get_mut(idx).ok_or("internal error: no series")?;
        match (&mut s.value, part, bound) {
            (Value::Summary { quantiles, .. }, Part::Plain, Some(q)) => quantiles.push((q, value)),
            (Value::Histogram { buckets, .. }, Part::Bucket, Some(le)) => {
                buckets.push((le, value as u64))
            }
            (Value::Summary { sum, .. } | Value::Histogram { sum, .. }, Part::Sum, _) => {
                *sum = value
            }
            (Value::Summary { count, .. } | Value::Histogram { count, .. }, Part::Count, _) => {
                *count = value as u64
            }
            _ => return Err(format!("unexpected sample {name:?}")),
        }
        Ok(())
    }
}

/// Parses a file in the Prometheus text exposition format (0.0.4). Errors
/// name the file and the line.
pub fn parse_text(text: &str, path: &Path) -> anyhow::Result<ParsedText> {
    let mut parser = Parser {
        builders: Vec::new(),
        index: HashMap::new(),
        first_timestamp_line: None,
    };
    for (n, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let mut p = LineParser { line, pos: 0 };
        p.skip_blanks();
        if p.at_end() {
            continue;
        }
        let result = if p.peek() == Some(b'#') {
            p.pos += 1;
            parser.comment(&mut p)
        } else {
            parser.sample(&mut p, n + 1)
        };
        result.map_err(|msg| anyhow!("parsing {} line {}: {msg}", path.display(), n + 1))?;
    }
    let families = parser
        .builders
        .into_iter()
        .filter(|b| !b.series.is_empty())
        .map(|b| {
            let kind = b.kind.unwrap_or(MetricType::Untyped);
            let mut series = b.series;
            for s in &mut series {
                match &mut s.value {
                    Value::Summary { quantiles, .. } => {
                        quantiles.sort_by(|a, b| a.0.total_cmp(&b.0));
                        quantiles.dedup_by(|later, earlier| later.0 == earlier.0);
                    }
                    Value::Histogram { buckets, .. } => {
                        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                        buckets.dedup_by(|later, earlier| later.0 == earlier.0);
                    }
                    Value::Single(_) => {}
                }
            }
            ParsedFamily {
                name: b.name,
                help: b.help,
                kind,
                series,
            }
        })
        .collect();
    Ok(ParsedText {
        families,
        first_timestamp_line: parser.first_timestamp_line,
    })
}

// ---------------------------------------------------------------------------
// Paths: globs and Go's filepath.Join/Clean.

/// Lexically cleans a path as Go's `filepath.Clean`.
fn clean_path(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

fn has_glob_meta(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Shell pattern matching of one path element (`*`, `?`, `[a-z]`, `[!x]`,
/// `\` escapes), as Go's `filepath.Match`. `None` for a malformed pattern.
fn glob_match(pattern: &[char], name: &[char]) -> Option<bool> {
    let Some((&first, rest)) = pattern.split_first() else {
        return Some(name.is_empty());
    };
    match first {
        '*' => {
            for skip in 0..=name.len() {
                if glob_match(rest, name.get(skip..)?)? {
                    return Some(true);
                }
            }
            Some(false)
        }
        '?' => match name.split_first() {
            Some((_, tail)) => glob_match(rest, tail),
            None => Some(false),
        },
        '[' => {
            let (&c, tail) = match name.split_first() {
                Some(x) => x,
                None => return Some(false),
            };
            let mut i = 0;
            let negate = matches!(rest.first(), Some('!' | '^'));
            if negate {
                i += 1;
            }
            let mut matched = false;
            let mut first_item = true;
            loop {
                let item = *rest.get(i)?;
                if item == ']' && !first_item {
                    break;
                }
                first_item = false;
                let lo = if item == '\\' {
                    i += 1;
                    *rest.get(i)?
                } else {
                    item
                };
                i += 1;
                let mut hi = lo;
                if rest.get(i) == Some(&'-') && rest.get(i + 1).is_some_and(|&h| h != ']') {
                    hi = *rest.get(i + 1)?;
                    if hi == '\\' {
                        hi = *rest.get(i + 2)?;
                        i += 1;
                    }
                    i += 2;
                }
                if lo <= c && c <= hi {
                    matched = true;
                }
            }
            if matched == negate {
                return Some(false);
            }
            glob_match(rest.get(i + 1..)?, tail)
        }
        '\\' => {
            let (&lit, rest) = rest.split_first()?;
            match name.split_first() {
                Some((&c, tail)) if c == lit => glob_match(rest, tail),
                _ => Some(false),
            }
        }
        lit => match name.split_first() {
            Some((&c, tail)) if c == lit => glob_match(rest, tail),
            _ => Some(false),
        },
    }
}

/// Expands a glob pattern to the sorted list of existing paths, as Go's
/// `filepath.Glob`; an empty result (or a malformed pattern) means "use the
/// pattern as a plain path", as node_exporter does.
fn expand_glob(pattern: &str) -> Vec<String> {
    if !has_glob_meta(pattern) {
        return vec![pattern.to_string()];
    }
    let rooted = pattern.starts_with('/');
    let mut current: Vec<String> = vec![if rooted { "/".into() } else { String::new() }];
    for elem in pattern.split('/').filter(|e| !e.is_empty()) {
        let mut next = Vec::new();
        for base in &current {
            let join = |name: &str| {
                if base.is_empty() {
                    name.to_string()
                } else if base.ends_with('/') {
                    format!("{base}{name}")
                } else {
                    format!("{base}/{name}")
                }
            };
            if !has_glob_meta(elem) {
                let p = join(elem);
                if std::fs::symlink_metadata(&p).is_ok() {
                    next.push(p);
                }
                continue;
            }
            let dir = if base.is_empty() { "." } else { base.as_str() };
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            let pat: Vec<char> = elem.chars().collect();
            let mut names: Vec<String> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for name in names {
                let chars: Vec<char> = name.chars().collect();
                match glob_match(&pat, &chars) {
                    Some(true) => next.push(join(&name)),
                    Some(false) => {}
                    None => return vec![pattern.to_string()],
                }
            }
        }
        current = next;
    }
    if current.is_empty() {
        vec![pattern.to_string()]
    } else {
        current
    }
}

// ---------------------------------------------------------------------------
// The collector.

/// What identifies an unchanged file between scrapes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

struct CachedFile {
    key: FileKey,
    families: Arc<Vec<ParsedFamily>>,
}

struct Textfile {
    dirs: Vec<String>,
    cache: Mutex<HashMap<PathBuf, CachedFile>>,
}

/// The state of one metric name across the files of a scrape.
struct NameState {
    kind: MetricType,
    /// First help text seen, and the first conflicting one.
    help: Option<String>,
    conflict: bool,
    files: Vec<String>,
    series: HashSet<Vec<(String, String)>>,
}

impl Textfile {
    /// Reads and parses one file, from the cache when it has not changed.
    /// Returns the families and the mtime in whole seconds.
    fn process_file(
        &self,
        path: &str,
        cache: &mut HashMap<PathBuf, CachedFile>,
    ) -> anyhow::Result<(Arc<Vec<ParsedFamily>>, i64)> {
        let mut f = std::fs::File::open(path)
            .map_err(|e| anyhow!("failed to open textfile data file {path:?}: {e}"))?;
        let meta = f
            .metadata()
            .map_err(|e| anyhow!("failed to stat {path:?}: {e}"))?;
        let key = FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        };
        let mtime = meta.mtime();
        if let Some(c) = cache.get(Path::new(path)) {
            if c.key == key {
                return Ok((c.families.clone(), mtime));
            }
        }
        let mut bytes = Vec::with_capacity(meta.size() as usize);
        f.read_to_end(&mut bytes)
            .map_err(|e| anyhow!("failed to read textfile data from {path:?}: {e}"))?;
        let text = String::from_utf8(bytes)
            .map_err(|e| anyhow!("failed to parse textfile data from {path:?}: not UTF-8: {e}"))?;
        let parsed = parse_text(&text, Path::new(path))
            .map_err(|e| anyhow!("failed to parse textfile data: {e}"))?;
        if let Some(line) = parsed.first_timestamp_line {
            return Err(anyhow!(
                "textfile {path:?} contains unsupported client-side timestamps (line {line}), \
                 skipping entire file"
            ));
        }
        let families = Arc::new(parsed.families);
        cache.insert(
            PathBuf::from(path),
            CachedFile {
                key,
                families: families.clone(),
            },
        );
        Ok((families, mtime))
    }
}

/// Pads the series of a family with the family's other label names (empty
/// values), as node_exporter does so that all series have the same labels.
fn pad_labels(series: &[ParsedSeries]) -> Vec<Vec<(String, String)>> {
    let mut names: Vec<&str> = Vec::new();
    for s in series {
        for (k, _) in &s.labels {
            if !names.contains(&k.as_str()) {
                names.push(k);
            }
        }
    }
    series
        .iter()
        .map(|s| {
            let mut labels = s.labels.clone();
            for n in &names {
                if !labels.iter().any(|(k, _)| k == n) {
                    labels.push((n.to_string(), String::new()));
                }
            }
            labels.sort();
            labels
        })
        .collect()
}

impl Collector for Textfile {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let mut errored = false;
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| anyhow!("textfile cache lock poisoned"))?;
        let mut seen_files: HashSet<PathBuf> = HashSet::new();
        let mut names: HashMap<String, NameState> = HashMap::new();
        let mut accepted: Vec<(Family, bool)> = Vec::new();
        let mut mtimes: BTreeMap<String, i64> = BTreeMap::new();

        for dir in self.dirs.iter().flat_map(|d| expand_glob(d)) {
            let entries = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) => {
                    errored = true;
                    tracing::error!(path = %dir, error = %e, "failed to read textfile collector directory");
                    continue;
                }
            };
            let mut files: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".prom"))
                .collect();
            files.sort();
            for file in files {
                let path = clean_path(&format!("{dir}/{file}"));
                seen_files.insert(PathBuf::from(&path));
                let (families, mtime) = match self.process_file(&path, &mut cache) {
                    Ok(x) => x,
                    Err(e) => {
                        errored = true;
                        tracing::error!(file = %file, error = %format!("{e:#}"), "failed to collect textfile data");
                        continue;
                    }
                };
                for fam in families.iter() {
                    let state = names.entry(fam.name.clone());
                    let padded = pad_labels(&fam.series);
                    let st = match state {
                        std::collections::hash_map::Entry::Occupied(o) => {
                            let st = o.into_mut();
                            let help_conflict = match (&st.help, &fam.help) {
                                (Some(first), Some(new)) => first != new,
                                _ => false,
                            };
                            if help_conflict || st.conflict {
                                st.conflict = true;
                                errored = true;
                                tracing::error!(
                                    metric = %fam.name,
                                    original_help_text = st.help.as_deref().unwrap_or(""),
                                    new_help_text = fam.help.as_deref().unwrap_or(""),
                                    file = %path,
                                    "inconsistent metric help text"
                                );
                                continue;
                            }
                            if st.kind != fam.kind {
                                errored = true;
                                tracing::error!(
                                    metric = %fam.name,
                                    file = %path,
                                    "metric read from several files with different types; skipping it in this file"
                                );
                                continue;
                            }
                            if st.help.is_none() {
                                st.help = fam.help.clone();
                            }
                            st
                        }
                        std::collections::hash_map::Entry::Vacant(v) => v.insert(NameState {
                            kind: fam.kind,
                            help: fam.help.clone(),
                            conflict: false,
                            files: Vec::new(),
                            series: HashSet::new(),
                        }),
                    };
                    st.files.push(path.clone());
                    let mut series = Vec::with_capacity(fam.series.len());
                    for (s, labels) in fam.series.iter().zip(padded) {
                        if st.series.contains(&labels) {
                            errored = true;
                            tracing::error!(
                                metric = %fam.name,
                                file = %path,
                                line = s.line,
                                "duplicate series (same metric name and labels) in textfile data; dropping it"
                            );
                            continue;
                        }
                        st.series.insert(labels.clone());
                        series.push(exporter_toolkit::exposition::Series {
                            labels: labels.into_iter().map(|(k, v)| (k.into(), v)).collect(),
                            value: s.value.clone(),
                        });
                    }
                    accepted.push((
                        Family {
                            name: fam.name.clone().into(),
                            help: fam.help.clone().unwrap_or_default().into(),
                            kind: fam.kind,
                            series,
                        },
                        fam.help.is_some(),
                    ));
                }
                mtimes.insert(path, mtime);
            }
        }
        cache.retain(|p, _| seen_files.contains(p));
        drop(cache);

        for (mut family, has_help) in accepted {
            if !has_help {
                family.help = match names.get(family.name.as_ref()) {
                    Some(NameState { help: Some(h), .. }) => h.clone().into(),
                    Some(st) => format!("Metric read from {}", st.files.join(", ")).into(),
                    None => family.help,
                };
            }
            if let Err(e) = out.add_family(family) {
                errored = true;
                tracing::error!(error = %e, "invalid textfile metric");
            }
        }
        for (path, mtime) in &mtimes {
            out.gauge(
                "node_textfile_mtime_seconds",
                "Unixtime mtime of textfiles successfully read.",
                &[("file", path)],
                *mtime as f64,
            );
        }
        out.gauge(
            "node_textfile_scrape_error",
            "1 if there was an error opening or reading a file, 0 otherwise",
            &[],
            if errored { 1.0 } else { 0.0 },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exporter_toolkit::exposition::{encode, Format};

    fn parse(text: &str) -> anyhow::Result<ParsedText> {
        parse_text(text, Path::new("/tf/x.prom"))
    }

    #[test]
    fn samples_labels_and_escapes() {
        let p = parse(
            "# HELP a_total Some \\\\ help\\nline.\n\
             # TYPE a_total counter\n\
             a_total{path=\"/a \\\"b\\\" \\\\ \\n\",x=\"1\",} 3\n\
             \t a_total { x = \"2\" } +Inf\n\
             # just a comment\n\
             b -1.5e3\n\
             \n",
        )
        .unwrap();
        assert_eq!(p.first_timestamp_line, None);
        let a = &p.families[0];
        assert_eq!(a.help.as_deref(), Some("Some \\ help\nline."));
        assert_eq!(a.kind, MetricType::Counter);
        assert_eq!(
            a.series[0].labels,
            vec![
                ("path".to_string(), "/a \"b\" \\ \n".to_string()),
                ("x".to_string(), "1".to_string())
            ]
        );
        assert_eq!(a.series[1].value, Value::Single(f64::INFINITY));
        let b = &p.families[1];
        assert_eq!((b.kind, b.help.clone()), (MetricType::Untyped, None));
        assert_eq!(b.series[0].value, Value::Single(-1500.0));
    }

    #[test]
    fn summaries_and_histograms_are_grouped() {
        let p = parse(
            "# TYPE rpc summary\n\
             rpc{quantile=\"0.99\",svc=\"a\"} 9\n\
             rpc{svc=\"a\",quantile=\"0.5\"} 5\n\
             rpc_sum{svc=\"a\"} 100\n\
             rpc_count{svc=\"a\"} 20\n\
             # TYPE lat histogram\n\
             lat_bucket{le=\"1\"} 2\n\
             lat_bucket{le=\"0.5\"} 1\n\
             lat_bucket{le=\"+Inf\"} 3\n\
             lat_sum 2.5\n\
             lat_count 3\n",
        )
        .unwrap();
        assert_eq!(
            p.families[0].series[0].value,
            Value::Summary {
                quantiles: vec![(0.5, 5.0), (0.99, 9.0)],
                sum: 100.0,
                count: 20
            }
        );
        assert_eq!(
            p.families[0].series[0].labels,
            vec![("svc".to_string(), "a".to_string())]
        );
        assert_eq!(
            p.families[1].series[0].value,
            Value::Histogram {
                buckets: vec![(0.5, 1), (1.0, 2), (f64::INFINITY, 3)],
                sum: 2.5,
                count: 3
            }
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        for (text, line, what) in [
            ("ok 1\nbad{x=\"1} 2\n", 2, "unterminated"),
            ("a 1\n# TYPE a gauge\n", 2, "TYPE reported after samples"),
            ("# HELP a x\n# HELP a y\n", 2, "second HELP"),
            ("# TYPE a meter\n", 1, "unknown metric type"),
            ("a{x=\"\\t\"} 1\n", 1, "invalid escape"),
            ("a{x=\"1\",x=\"2\"} 1\n", 1, "duplicate label"),
            ("a one\n", 1, "expected float"),
            ("a 1 soon\n", 1, "expected integer as timestamp"),
            ("1a 1\n", 1, "invalid metric name"),
            ("# TYPE h histogram\nh{le=\"1\"} 1\n", 2, "must be h_bucket"),
            ("# TYPE h histogram\nh_bucket{le=\"x\"} 1\n", 2, "\"le\""),
            ("# TYPE s summary\ns 1\n", 2, "quantile"),
            ("a{__name__=\"b\"} 1\n", 1, "reserved"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("parsing /tf/x.prom line {line}: ")) && err.contains(what),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn timestamps_are_noticed() {
        let p = parse("a 1\nb 2 1700000000000\n").unwrap();
        assert_eq!(p.first_timestamp_line, Some(2));
    }

    #[test]
    fn empty_families_are_dropped() {
        let p = parse("# HELP a x\n# TYPE a gauge\nb 1\n").unwrap();
        assert_eq!(p.families.len(), 1);
        assert_eq!(p.families[0].name, "b");
    }

    #[test]
    fn paths_clean_like_go() {
        assert_eq!(clean_path("./a//b/../c.prom"), "a/c.prom");
        assert_eq!(clean_path("/x/./y/"), "/x/y");
        assert_eq!(clean_path("/../a"), "/a");
        assert_eq!(clean_path("../a"), "../a");
    }

    #[test]
    fn glob_patterns() {
        let m = |p: &str, n: &str| {
            glob_match(
                &p.chars().collect::<Vec<_>>(),
                &n.chars().collect::<Vec<_>>(),
            )
        };
        assert_eq!(m("*.prom", "a.prom"), Some(true));
        assert_eq!(m("*.prom", "a.prom.tmp"), Some(false));
        assert_eq!(m("node?", "node1"), Some(true));
        assert_eq!(m("[a-c]x", "bx"), Some(true));
        assert_eq!(m("[!a-c]x", "bx"), Some(false));
        assert_eq!(m("[a-c", "a"), None);
        let dir = tempfile::tempdir().unwrap();
        for d in ["t1", "t2", "u1"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        let base = dir.path().display().to_string();
        assert_eq!(
            expand_glob(&format!("{base}/t*")),
            vec![format!("{base}/t1"), format!("{base}/t2")]
        );
        assert_eq!(
            expand_glob(&format!("{base}/z*")),
            vec![format!("{base}/z*")]
        );
    }

    fn collect(dirs: &[&Path]) -> String {
        let tf = Textfile {
            dirs: dirs.iter().map(|d| d.display().to_string()).collect(),
            cache: Mutex::new(HashMap::new()),
        };
        let mut set = MetricSet::new();
        tf.update(&mut set).unwrap();
        encode(&set.finish().unwrap(), Format::Text)
    }

    #[test]
    fn files_merge_and_bad_files_only_set_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("a.prom"),
            "# HELP m Shared.\n# TYPE m gauge\nm{f=\"a\"} 1\nonly_a 1\n",
        )
        .unwrap();
        std::fs::write(
            d.join("b.prom"),
            "# HELP m Shared.\n# TYPE m gauge\nm{f=\"b\"} 2\nnohelp{x=\"1\"} 1\nnohelp 2\n",
        )
        .unwrap();
        std::fs::write(d.join("c.txt"), "ignored 1\n").unwrap();
        let out = collect(&[d]);
        assert!(out.contains("m{f=\"a\"} 1\nm{f=\"b\"} 2\n"), "{out}");
        assert!(
            out.contains("nohelp{x=\"\"} 2\nnohelp{x=\"1\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "# HELP nohelp Metric read from {}/b.prom\n",
                d.display()
            )),
            "{out}"
        );
        assert!(out.contains("node_textfile_scrape_error 0\n"), "{out}");
        assert!(!out.contains("ignored"));

        std::fs::write(
            d.join("c.prom"),
            "# HELP m Other help.\n# TYPE m gauge\nm{f=\"c\"} 3\nfrom_c 1\n",
        )
        .unwrap();
        std::fs::write(d.join("d.prom"), "broken{ 1\n").unwrap();
        std::fs::write(d.join("e.prom"), "with_ts 1 1700000000000\n").unwrap();
        std::fs::write(d.join("f.prom"), "# TYPE m gauge\nm{f=\"a\"} 9\n").unwrap();
        let out = collect(&[d]);
        assert!(out.contains("node_textfile_scrape_error 1\n"), "{out}");
        assert!(!out.contains("m{f=\"c\"}"), "{out}");
        assert!(out.contains("from_c 1\n"), "{out}");
        assert!(!out.contains("with_ts"), "{out}");
        assert!(!out.contains(" 9\n"), "{out}");
        assert!(out.contains("c.prom\"}"), "{out}");
        assert!(!out.contains("d.prom\"}"), "{out}");
        assert!(!out.contains("e.prom\"}"), "{out}");
    }

    #[test]
    fn type_conflicts_between_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.prom"), "# TYPE m gauge\nm 1\n").unwrap();
        std::fs::write(d.join("b.prom"), "# TYPE m counter\nm{x=\"1\"} 2\n").unwrap();
        let out = collect(&[d]);
        assert!(out.contains("# TYPE m gauge\nm 1\n"), "{out}");
        assert!(out.contains("node_textfile_scrape_error 1\n"), "{out}");
    }

    #[test]
    fn missing_directory_is_an_error_metric_not_a_failure() {
        let out = collect(&[Path::new("/nonexistent/textfile/dir")]);
        assert!(out.contains("node_textfile_scrape_error 1\n"), "{out}");
        let tf = Textfile {
            dirs: Vec::new(),
            cache: Mutex::new(HashMap::new()),
        };
        let mut set = MetricSet::new();
        tf.update(&mut set).unwrap();
        let out = encode(&set.finish().unwrap(), Format::Text);
        assert!(out.contains("node_textfile_scrape_error 0\n"), "{out}");
    }

    #[test]
    fn changed_files_are_parsed_again() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let tf = Textfile {
            dirs: vec![d.display().to_string()],
            cache: Mutex::new(HashMap::new()),
        };
        let run = |tf: &Textfile| {
            let mut set = MetricSet::new();
            tf.update(&mut set).unwrap();
            encode(&set.finish().unwrap(), Format::Text)
        };
        std::fs::write(d.join("a.prom"), "v 1\n").unwrap();
        assert!(run(&tf).contains("v 1\n"));
        assert!(run(&tf).contains("v 1\n"));
        std::fs::write(d.join("a.prom.tmp"), "v 22\n").unwrap();
        std::fs::rename(d.join("a.prom.tmp"), d.join("a.prom")).unwrap();
        assert!(run(&tf).contains("v 22\n"));
        std::fs::remove_file(d.join("a.prom")).unwrap();
        assert!(!run(&tf).contains("v 22"));
        assert!(tf.cache.lock().unwrap().is_empty());
    }
}
