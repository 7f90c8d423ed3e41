//! The one metric model and exposition encoder of the project.
//!
//! We do not use `prometheus-client` here on purpose: it writes OpenMetrics
//! only (a counter's `# TYPE` line loses `_total`), while node_exporter users
//! and `promtool check metrics` expect the Prometheus text format 0.0.4 exactly
//! as client_golang writes it. Collectors build a fresh [`MetricSet`] on every
//! scrape (node_exporter's "const metrics" model), and the encoders write it in
//! client_golang's order: families by name, labels by name, series by label
//! values, floats in Go's shortest `%g` form.

use std::borrow::Cow;
use std::fmt::Write as _;

pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub type Str = Cow<'static, str>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Untyped,
    Histogram,
    Summary,
}

impl MetricType {
    fn text_name(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Untyped => "untyped",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
        }
    }
    fn openmetrics_name(self) -> &'static str {
        match self {
            MetricType::Untyped => "unknown",
            other => other.text_name(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Single(f64),
    /// Cumulative buckets as (upper bound, count); `+Inf` is added by the encoder.
    Histogram {
        buckets: Vec<(f64, u64)>,
        sum: f64,
        count: u64,
    },
    /// Quantiles as (quantile, value).
    Summary {
        quantiles: Vec<(f64, f64)>,
        sum: f64,
        count: u64,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Kept sorted by label name (see [`MetricSet::push`]).
    pub labels: Vec<(Str, String)>,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    pub name: Str,
    pub help: Str,
    pub kind: MetricType,
    pub series: Vec<Series>,
}

/// Why a family could not be added to a set.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConsistencyError {
    #[error("metric {name} was already registered as {existing} and is now given as {new}")]
    TypeMismatch {
        name: String,
        existing: &'static str,
        new: &'static str,
    },
    #[error("invalid metric name {0:?}")]
    InvalidName(String),
    #[error("invalid label name {label:?} on metric {name}")]
    InvalidLabel { name: String, label: String },
    #[error("duplicate series {name}{labels} (collected more than once with the same labels)")]
    Duplicate { name: String, labels: String },
}

/// A set of metric families being built by collectors during one scrape.
#[derive(Default, Debug, Clone)]
pub struct MetricSet {
    families: Vec<Family>,
    index: rustc_hash::FxHashMap<Name, usize>,
}

/// A family name as a map key. Names are mostly `&'static` literals or
/// names made once and kept, so the same name comes back at the same
/// address: equal addresses spare the byte compare (musl's `memcmp` walks
/// byte by byte, and the map compares on every series pushed).
#[derive(Debug, Clone)]
struct Name(Str);

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        let (a, b) = (self.0.as_ref(), other.0.as_ref());
        (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || cmp_str(a, b).is_eq()
    }
}

impl Eq for Name {}

impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.as_ref().hash(state)
    }
}

impl MetricSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// A set with room for `families` families, for a caller that knows
    /// about how many it will add (the same collector as last scrape).
    pub fn with_capacity(families: usize) -> Self {
        MetricSet {
            families: Vec::with_capacity(families),
            index: rustc_hash::FxHashMap::with_capacity_and_hasher(families, Default::default()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.families.is_empty()
    }

    pub fn families(&self) -> &[Family] {
        &self.families
    }

    pub fn gauge(
        &mut self,
        name: impl Into<Str>,
        help: impl Into<Str>,
        labels: &[(&'static str, &str)],
        value: f64,
    ) {
        self.push(name, help, MetricType::Gauge, labels, Value::Single(value));
    }

    pub fn counter(
        &mut self,
        name: impl Into<Str>,
        help: impl Into<Str>,
        labels: &[(&'static str, &str)],
        value: f64,
    ) {
        self.push(
            name,
            help,
            MetricType::Counter,
            labels,
            Value::Single(value),
        );
    }

    pub fn untyped(
        &mut self,
        name: impl Into<Str>,
        help: impl Into<Str>,
        labels: &[(&'static str, &str)],
        value: f64,
    ) {
        self.push(
            name,
            help,
            MetricType::Untyped,
            labels,
            Value::Single(value),
        );
    }

    /// Adds one series. The first call for a name fixes its help and type;
    /// collectors are written so that later calls agree.
    pub fn push(
        &mut self,
        name: impl Into<Str>,
        help: impl Into<Str>,
        kind: MetricType,
        labels: &[(&'static str, &str)],
        value: Value,
    ) {
        let mut owned: Vec<(Str, String)> = labels
            .iter()
            .map(|(k, v)| (Cow::Borrowed(*k), (*v).to_string()))
            .collect();
        owned.sort_by(|a, b| a.0.cmp(&b.0));
        let series = Series {
            labels: owned,
            value,
        };
        let name = Name(name.into());
        match self.index.get(&name) {
            Some(&i) => self.families[i].series.push(series),
            None => {
                self.index.insert(name.clone(), self.families.len());
                let name = name.0;
                self.families.push(Family {
                    name,
                    help: help.into(),
                    kind,
                    series: vec![series],
                });
            }
        }
    }

    /// Adds a whole family (used by the textfile collector and for merging).
    /// Families already present must have the same type; their series are
    /// appended, and a repeated label set is an error.
    pub fn add_family(&mut self, mut family: Family) -> Result<(), ConsistencyError> {
        for s in &mut family.series {
            for (k, _) in &s.labels {
                if !valid_label_name(k) {
                    return Err(ConsistencyError::InvalidLabel {
                        name: family.name.to_string(),
                        label: k.to_string(),
                    });
                }
            }
            s.labels.sort_by(|a, b| a.0.cmp(&b.0));
        }
        self.insert_family(family)
    }

    /// Moves every family of `other` into this set. Series added with
    /// [`push`](Self::push) already have sorted, static label names, so only
    /// the family names (built from /proc keys by some collectors) are
    /// checked. Collectors own disjoint metric names, so a conflict cannot
    /// happen in practice; it is reported rather than hidden.
    pub fn merge(&mut self, other: MetricSet) -> Result<(), ConsistencyError> {
        for family in other.families {
            self.insert_family(family)?;
        }
        Ok(())
    }

    fn insert_family(&mut self, mut family: Family) -> Result<(), ConsistencyError> {
        if !valid_metric_name(&family.name) {
            return Err(ConsistencyError::InvalidName(family.name.into_owned()));
        }
        let name = Name(family.name);
        let found = self.index.get(&name).copied();
        family.name = name.0;
        match found {
            Some(i) => {
                let existing = &mut self.families[i];
                if existing.kind != family.kind {
                    return Err(ConsistencyError::TypeMismatch {
                        name: family.name.into_owned(),
                        existing: existing.kind.text_name(),
                        new: family.kind.text_name(),
                    });
                }
                existing.series.append(&mut family.series);
            }
            None => {
                self.index
                    .insert(Name(family.name.clone()), self.families.len());
                self.families.push(family);
            }
        }
        Ok(())
    }

    /// Sorts as client_golang's gatherer does and rejects duplicate series.
    pub fn finish(mut self) -> Result<Vec<Family>, ConsistencyError> {
        // Names are unique in a set, so an unstable sort orders them as a
        // stable one would, without moving every family through a scratch
        // buffer at each level.
        self.families
            .sort_unstable_by(|a, b| cmp_str(&a.name, &b.name));
        for f in &mut self.families {
            sort_series(&mut f.series);
            for pair in f.series.windows(2) {
                if pair[0].labels == pair[1].labels {
                    return Err(ConsistencyError::Duplicate {
                        name: f.name.to_string(),
                        labels: format_labels(&pair[0].labels),
                    });
                }
            }
        }
        Ok(self.families)
    }
}

/// `series` in label-value order, equal ones kept in the order they came (a
/// stable sort), but moving each series at most twice: the sort is of
/// indices, and most families are one series or already in order.
fn sort_series(series: &mut Vec<Series>) {
    if series
        .windows(2)
        .all(|p| compare_label_values(&p[0].labels, &p[1].labels).is_le())
    {
        return;
    }
    let mut order: Vec<usize> = (0..series.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        compare_label_values(&series[a].labels, &series[b].labels).then(a.cmp(&b))
    });
    let mut taken: Vec<Option<Series>> = series.drain(..).map(Some).collect();
    series.extend(order.into_iter().filter_map(|i| taken[i].take()));
}

/// `a.cmp(b)`, eight bytes at a time: `str::cmp` ends in musl's `memcmp`,
/// a loop of one byte per turn, and a scrape compares thousands of metric
/// names (`node_...`) and label values while sorting. Big-endian words
/// order as their bytes do.
pub fn cmp_str(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut x = a.chunks_exact(8);
    let mut y = b.chunks_exact(8);
    for (p, q) in (&mut x).zip(&mut y) {
        let (p, q) = (word(p), word(q));
        if p != q {
            return p.cmp(&q);
        }
    }
    let done = a.len().min(b.len()) / 8 * 8;
    for (p, q) in a[done..].iter().zip(&b[done..]) {
        if p != q {
            return p.cmp(q);
        }
    }
    a.len().cmp(&b.len())
}

fn word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(bytes);
    u64::from_be_bytes(w)
}

fn compare_label_values(a: &[(Str, String)], b: &[(Str, String)]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b.iter()) {
        let ord = cmp_str(&x.1, &y.1);
        if ord != std::cmp::Ordering::Equal {
            return ord;
        }
    }
    a.len().cmp(&b.len())
}

fn format_labels(labels: &[(Str, String)]) -> String {
    let mut out = String::new();
    write_labels(&mut out, labels, None);
    out
}

pub fn valid_metric_name(name: &str) -> bool {
    // Bytes, not chars: every valid character is ASCII, and any byte of a
    // multi-byte character is not.
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {}
        _ => return false,
    }
    bytes.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Replaces every character that is not valid in a metric name with `_`, as
/// node_exporter does for names built from /proc keys (`Active(anon)`).
pub fn sanitize_name(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Which of the two exposition formats to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    OpenMetrics,
}

impl Format {
    /// Picks the format from an `Accept` header as client_golang's
    /// `expfmt.Negotiate` does for the formats we offer: the supported media
    /// type with the highest q-value wins, the first listed on a tie, and
    /// text 0.0.4 when nothing we offer is asked for.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let mut best: Option<(f32, Format)> = None;
        for part in accept.split(',') {
            let mut params = part.split(';');
            let media = params.next().unwrap_or("").trim();
            let format = if media.eq_ignore_ascii_case("application/openmetrics-text") {
                Format::OpenMetrics
            } else if media.eq_ignore_ascii_case("text/plain") {
                Format::Text
            } else {
                continue;
            };
            let q = params
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, format));
            }
        }
        best.map_or(Format::Text, |(_, f)| f)
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => TEXT_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// The length of the last body encoded: the next one is about as long, so
/// it is allocated once at that size instead of grown by doubling (a copy
/// of the body each time).
static LAST_LEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub fn encode(families: &[Family], format: Format) -> String {
    let last = LAST_LEN.load(std::sync::atomic::Ordering::Relaxed);
    let mut out = String::with_capacity((families.len() * 256).max(last + last / 32));
    match format {
        Format::Text => encode_text(&mut out, families),
        Format::OpenMetrics => encode_openmetrics(&mut out, families),
    }
    LAST_LEN.store(out.len(), std::sync::atomic::Ordering::Relaxed);
    out
}

fn encode_text(out: &mut String, families: &[Family]) {
    for f in families {
        if f.series.is_empty() {
            continue;
        }
        out.push_str("# HELP ");
        out.push_str(&f.name);
        out.push(' ');
        escape_help(out, &f.help);
        out.push_str("\n# TYPE ");
        out.push_str(&f.name);
        out.push(' ');
        out.push_str(f.kind.text_name());
        out.push('\n');
        for s in &f.series {
            write_series(out, &f.name, s, false);
        }
    }
}

fn encode_openmetrics(out: &mut String, families: &[Family]) {
    for f in families {
        if f.series.is_empty() {
            continue;
        }
        let is_counter = f.kind == MetricType::Counter;
        let base: &str = if is_counter {
            f.name.strip_suffix("_total").unwrap_or(&f.name)
        } else {
            &f.name
        };
        out.push_str("# HELP ");
        out.push_str(base);
        out.push(' ');
        escape_help_openmetrics(out, &f.help);
        out.push_str("\n# TYPE ");
        out.push_str(base);
        out.push(' ');
        out.push_str(f.kind.openmetrics_name());
        out.push('\n');
        let counter_name = is_counter.then(|| format!("{base}_total"));
        let name = counter_name.as_deref().unwrap_or(&f.name);
        for s in &f.series {
            write_series(out, name, s, true);
        }
    }
    out.push_str("# EOF\n");
}

fn write_series(out: &mut String, name: &str, s: &Series, om: bool) {
    let fmt = if om { format_float_om } else { format_float };
    match &s.value {
        Value::Single(v) => {
            out.push_str(name);
            write_labels(out, &s.labels, None);
            out.push(' ');
            // The hot path: integers (most counters) skip the general
            // formatter and its allocation.
            if v.fract() == 0.0 && v.abs() < 1e6 {
                push_int(out, *v as i64);
                if om {
                    out.push_str(".0");
                }
            } else if om {
                write_float_om(out, *v);
            } else {
                write_float(out, *v);
            }
            out.push('\n');
        }
        Value::Histogram {
            buckets,
            sum,
            count,
        } => {
            let bucket_name = format!("{name}_bucket");
            let mut saw_inf = false;
            for (le, c) in buckets {
                saw_inf |= le.is_infinite() && *le > 0.0;
                out.push_str(&bucket_name);
                write_labels(out, &s.labels, Some(("le", &fmt(*le))));
                out.push(' ');
                out.push_str(&fmt(*c as f64));
                out.push('\n');
            }
            if !saw_inf {
                out.push_str(&bucket_name);
                write_labels(out, &s.labels, Some(("le", "+Inf")));
                out.push(' ');
                out.push_str(&fmt(*count as f64));
                out.push('\n');
            }
            write_sum_count(out, name, &s.labels, *sum, *count, fmt);
        }
        Value::Summary {
            quantiles,
            sum,
            count,
        } => {
            for (q, v) in quantiles {
                out.push_str(name);
                write_labels(out, &s.labels, Some(("quantile", &fmt(*q))));
                out.push(' ');
                out.push_str(&fmt(*v));
                out.push('\n');
            }
            write_sum_count(out, name, &s.labels, *sum, *count, fmt);
        }
    }
}

fn write_sum_count(
    out: &mut String,
    name: &str,
    labels: &[(Str, String)],
    sum: f64,
    count: u64,
    fmt: fn(f64) -> String,
) {
    for (suffix, v) in [("_sum", sum), ("_count", count as f64)] {
        out.push_str(name);
        out.push_str(suffix);
        write_labels(out, labels, None);
        out.push(' ');
        out.push_str(&fmt(v));
        out.push('\n');
    }
}

fn write_labels(out: &mut String, labels: &[(Str, String)], extra: Option<(&str, &str)>) {
    if labels.is_empty() && extra.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (k, v) in labels
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_str()))
        .chain(extra)
    {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        // memchr: `str::contains` of a char set walks char by char, and
        // every label value of a scrape goes through here.
        if memchr::memchr3(b'\\', b'"', b'\n', v.as_bytes()).is_none() {
            out.push_str(v);
        } else {
            for c in v.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
        }
        out.push('"');
    }
    out.push('}');
}

fn escape_help(out: &mut String, help: &str) {
    if memchr::memchr2(b'\\', b'\n', help.as_bytes()).is_none() {
        out.push_str(help);
        return;
    }
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help_openmetrics(out: &mut String, help: &str) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// Formats a float as Go's `strconv.FormatFloat(v, 'g', -1, 64)`, which is
/// what client_golang writes: shortest round-trip digits, and the exponent
/// form when the decimal exponent is < -4 or >= 6 (Go fixes the threshold at
/// 6 for shortest output, hence `8.253652992e+09` for 8 GiB of memory).
pub fn format_float(v: f64) -> String {
    let mut out = String::with_capacity(24);
    write_float(&mut out, v);
    out
}

/// [`format_float`] written onto `out`, without allocating: a scrape
/// writes hundreds of non-integer samples.
pub fn write_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    if v == 0.0 {
        // client_golang special-cases zero, so -0 is written "0" too.
        out.push('0');
        return;
    }
    let mut digits = StackStr::<32>::new();
    let exp: i32 = if v.fract() == 0.0 && v.abs() < EXACT_INTEGERS {
        // Below 2^53 an integer's own digits (trailing zeros dropped) are
        // its shortest round-trip form: every shorter rounding is at least
        // 1, a whole ulp or more, away. Byte counters are mostly these.
        let mut n = v.abs() as u64;
        let mut len: i32 = 0;
        let mut t = n;
        while t > 0 {
            len += 1;
            t /= 10;
        }
        while n % 10 == 0 {
            n /= 10;
        }
        push_u64(&mut digits, n);
        len - 1
    } else {
        // Rust's `{:e}` gives the same shortest round-trip digits:
        // "-d.dddde-x" (at most 17 digits and a 3-digit exponent).
        let mut sci = StackStr::<40>::new();
        let _ = write!(sci, "{v:e}");
        let sci = sci.as_str();
        let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
        for c in mantissa.chars().filter(char::is_ascii_digit) {
            let _ = digits.write_char(c);
        }
        exp.parse().unwrap_or(0)
    };
    let digits = digits.as_str();
    if v < 0.0 {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        if exp.abs() < 10 {
            out.push('0');
        }
        push_u64(out, u64::from(exp.unsigned_abs()));
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(digits);
    } else {
        let int_len = (exp + 1) as usize;
        if digits.len() <= int_len {
            out.push_str(digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
}

/// [`format_float_om`] written onto `out`.
fn write_float_om(out: &mut String, v: f64) {
    let start = out.len();
    write_float(out, v);
    if out[start..]
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'-')
    {
        out.push_str(".0");
    }
}

/// 2^53: integers below it are exact in an f64.
const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;

/// Writes `n` in decimal, without the `fmt` machinery (a scrape writes
/// hundreds of integers).
fn push_u64(out: &mut impl std::fmt::Write, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    let _ = out.write_str(std::str::from_utf8(&buf[i..]).unwrap_or("0"));
}

fn push_int(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    push_u64(out, n.unsigned_abs());
}

/// A string in a fixed buffer on the stack, for formatting numbers
/// without allocating; a write past its end fails.
struct StackStr<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackStr<N> {
    fn new() -> Self {
        StackStr {
            buf: [0; N],
            len: 0,
        }
    }
    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever copied in.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl<const N: usize> std::fmt::Write for StackStr<N> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > N {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// OpenMetrics floats as client_golang writes them: like [`format_float`],
/// but integral values keep a `.0` so that they read as floats.
pub fn format_float_om(v: f64) -> String {
    let s = format_float(v);
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        s + ".0"
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_output_matches_client_golang() {
        let mut set = MetricSet::new();
        set.counter(
            "node_cpu_seconds_total",
            "Seconds the CPUs spent in each mode.",
            &[("mode", "user"), ("cpu", "1")],
            12.5,
        );
        set.counter(
            "node_cpu_seconds_total",
            "Seconds the CPUs spent in each mode.",
            &[("mode", "idle"), ("cpu", "0")],
            100.0,
        );
        set.gauge("node_load1", "1m load average.", &[], 0.21);
        let out = encode(&set.finish().unwrap(), Format::Text);
        assert_eq!(
            out,
            "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n\
             # TYPE node_cpu_seconds_total counter\n\
             node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 100\n\
             node_cpu_seconds_total{cpu=\"1\",mode=\"user\"} 12.5\n\
             # HELP node_load1 1m load average.\n\
             # TYPE node_load1 gauge\n\
             node_load1 0.21\n"
        );
    }

    #[test]
    fn openmetrics_strips_total_and_ends_with_eof() {
        let mut set = MetricSet::new();
        set.counter("node_forks_total", "Total number of forks.", &[], 42.0);
        let out = encode(&set.finish().unwrap(), Format::OpenMetrics);
        assert_eq!(
            out,
            "# HELP node_forks Total number of forks.\n# TYPE node_forks counter\nnode_forks_total 42.0\n# EOF\n"
        );
    }

    #[test]
    fn cmp_str_orders_as_str_cmp() {
        let words = [
            "",
            "a",
            "b",
            "node_",
            "node_a",
            "node_network_up",
            "node_network_upx",
            "node_network_mtu_bytes",
            "node_network_",
            "zz",
            "ä",
            "a\u{0}",
            "aaaaaaaaa",
            "aaaaaaaab",
            "aaaaaaaa",
            "1",
            "10",
            "2",
            "cpu10",
            "cpu9",
        ];
        for a in words {
            for b in words {
                assert_eq!(cmp_str(a, b), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    /// Series come out by label values; ones with equal values (possible
    /// with differing label names, from a textfile) keep the order they
    /// were added in, as a stable sort leaves them.
    #[test]
    fn series_sort_by_values_and_keep_ties_in_order() {
        let mut set = MetricSet::new();
        for (k, v) in [
            ("a", "3"),
            ("b", "1"),
            ("a", "2"),
            ("c", "1"),
            ("a", "1"),
            ("b", "0"),
        ] {
            set.add_family(Family {
                name: "m".into(),
                help: "h".into(),
                kind: MetricType::Gauge,
                series: vec![Series {
                    labels: vec![(Cow::Owned(k.to_string()), v.to_string())],
                    value: Value::Single(1.0),
                }],
            })
            .unwrap();
        }
        let fams = set.finish().unwrap();
        let got: Vec<String> = fams[0]
            .series
            .iter()
            .map(|s| format!("{}={}", s.labels[0].0, s.labels[0].1))
            .collect();
        assert_eq!(got, ["b=0", "b=1", "c=1", "a=1", "a=2", "a=3"]);
    }

    #[test]
    fn floats_match_go_strconv_g_minus_one() {
        let cases = [
            (1.0, "1"),
            (0.21, "0.21"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (8253652992.0, "8.253652992e+09"),
            (1e6, "1e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (1e21, "1e+21"),
            (1.5e-7, "1.5e-07"),
            (100.0, "100"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (0.0, "0"),
            (18446744073709551615.0, "1.8446744073709552e+19"),
            (-1234567.0, "-1.234567e+06"),
            (123000000.0, "1.23e+08"),
            (9007199254740991.0, "9.007199254740991e+15"),
            (9007199254740992.0, "9.007199254740992e+15"),
            (1e15, "1e+15"),
            (999999.0, "999999"),
            (-999999.0, "-999999"),
        ];
        for (v, want) in cases {
            assert_eq!(format_float(v), want, "formatting {v}");
        }
    }

    /// Integers are written from their own digits below 2^53; the general
    /// path (`{:e}`) must agree on every one, here a spread of them.
    #[test]
    fn integers_format_as_the_general_path_does() {
        let general = |v: f64| {
            let sci = format!("{v:e}");
            let (m, e) = sci.split_once('e').unwrap();
            let digits: String = m.chars().filter(char::is_ascii_digit).collect();
            let e: i32 = e.parse().unwrap();
            let mut again = String::new();
            // Only the exponent form differs between fast and general paths
            // here: these are all >= 1e6.
            again.push_str(if v < 0.0 { "-" } else { "" });
            again.push_str(&digits[..1]);
            if digits.len() > 1 {
                again.push('.');
                again.push_str(&digits[1..]);
            }
            again.push_str(&format!("e+{e:02}"));
            again
        };
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            // xorshift: integers of every length from 7 to 16 digits.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = (1_000_000 + x % (EXACT_INTEGERS as u64 - 1_000_000)) as f64;
            let v = v / 10f64.powi((x % 10) as i32);
            let v = v.trunc().max(1e6);
            for v in [v, -v] {
                assert_eq!(format_float(v), general(v), "formatting {v}");
            }
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let mut set = MetricSet::new();
        set.gauge("x", "h\\elp\nline", &[("path", "a\"b\\c\nd")], 1.0);
        let out = encode(&set.finish().unwrap(), Format::Text);
        assert!(out.contains("# HELP x h\\\\elp\\nline\n"));
        assert!(out.contains("x{path=\"a\\\"b\\\\c\\nd\"} 1\n"));
    }

    #[test]
    fn duplicate_series_are_rejected() {
        let mut set = MetricSet::new();
        set.gauge("x", "h", &[("a", "1")], 1.0);
        set.gauge("x", "h", &[("a", "1")], 2.0);
        assert!(matches!(
            set.finish(),
            Err(ConsistencyError::Duplicate { .. })
        ));
    }

    #[test]
    fn merging_a_family_of_another_type_fails() {
        let mut a = MetricSet::new();
        a.gauge("x", "h", &[], 1.0);
        let mut b = MetricSet::new();
        b.counter("x", "h", &[("l", "v")], 1.0);
        assert!(matches!(
            a.merge(b),
            Err(ConsistencyError::TypeMismatch { .. })
        ));
    }

    #[test]
    fn untrusted_families_are_validated() {
        let family = |name: &str, label: &str| Family {
            name: Cow::Owned(name.to_string()),
            help: "h".into(),
            kind: MetricType::Gauge,
            series: vec![Series {
                labels: vec![(Cow::Owned(label.to_string()), "v".into())],
                value: Value::Single(1.0),
            }],
        };
        let mut set = MetricSet::new();
        assert!(matches!(
            set.add_family(family("ok_name", "bad-label")),
            Err(ConsistencyError::InvalidLabel { .. })
        ));
        assert!(matches!(
            set.add_family(family("bad name", "ok")),
            Err(ConsistencyError::InvalidName(_))
        ));
        // A collector's dynamic family name is checked on merge too.
        let mut other = MetricSet::new();
        other.gauge("node_memory_Weird(x)", "h", &[], 1.0);
        assert!(matches!(
            set.merge(other),
            Err(ConsistencyError::InvalidName(_))
        ));
        assert!(set.add_family(family("ok_name", "ok")).is_ok());
    }

    #[test]
    fn histogram_gets_inf_bucket_sum_and_count() {
        let mut set = MetricSet::new();
        set.push(
            "h",
            "help",
            MetricType::Histogram,
            &[],
            Value::Histogram {
                buckets: vec![(0.5, 1), (1.0, 2)],
                sum: 1.25,
                count: 3,
            },
        );
        let out = encode(&set.finish().unwrap(), Format::Text);
        assert!(out.contains("h_bucket{le=\"0.5\"} 1\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 3\nh_sum 1.25\nh_count 3\n"));
    }

    #[test]
    fn negotiation_prefers_what_the_scraper_lists_first() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
            )),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4")),
            Format::Text
        );
        // q-values decide, not the order.
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=1"
            )),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0,*/*;q=0.1")),
            Format::Text
        );
    }
}
