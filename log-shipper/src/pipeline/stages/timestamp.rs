//! `timestamp`: sets the entry's time from an extracted value, parsed with
//! a Go layout or one of the named formats (RFC3339, Unix, UnixMs, ...).
//! On failure, `fudge` (the default) uses the stream's last parsed time
//! plus 1ns, and `skip` keeps the read time, as promtail.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Datelike, FixedOffset, Utc};
// Per-entry lookups by label-set hash and address: FxHash, not SipHash.
use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};

use super::StageSpec;
use crate::entry::{Entry, LabelSet, Labels};
use crate::pipeline::gotime::{self, Layout, Location};
use crate::pipeline::{Extracted, Flow, Stage};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampConfig {
    pub source: String,
    pub format: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback_formats: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_on_failure: Option<String>,
}

/// A compiled format.
#[derive(Debug, Clone)]
pub enum Format {
    Unix,
    UnixMs,
    UnixUs,
    UnixNs,
    /// A named layout: parsed as time.Parse, without the location.
    Named(Layout),
    Custom(Layout, Location),
}

impl Format {
    pub fn new(format: &str, loc: Location) -> Format {
        let named = match format {
            "ANSIC" => "Mon Jan _2 15:04:05 2006",
            "UnixDate" => "Mon Jan _2 15:04:05 MST 2006",
            "RubyDate" => "Mon Jan 02 15:04:05 -0700 2006",
            "RFC822" => "02 Jan 06 15:04 MST",
            "RFC822Z" => "02 Jan 06 15:04 -0700",
            "RFC850" => "Monday, 02-Jan-06 15:04:05 MST",
            "RFC1123" => "Mon, 02 Jan 2006 15:04:05 MST",
            "RFC1123Z" => "Mon, 02 Jan 2006 15:04:05 -0700",
            "RFC3339" => "2006-01-02T15:04:05Z07:00",
            "RFC3339Nano" => "2006-01-02T15:04:05.999999999Z07:00",
            "Unix" => return Format::Unix,
            "UnixMs" => return Format::UnixMs,
            "UnixUs" => return Format::UnixUs,
            "UnixNs" => return Format::UnixNs,
            _ => return Format::Custom(Layout::new(format), loc),
        };
        Format::Named(Layout::new(named))
    }

    /// Parses `v`; `now` places year-less layouts (syslog's `Jan _2 15:04:05`).
    pub fn parse(&self, v: &str, now: DateTime<Utc>) -> Option<SystemTime> {
        match self {
            Format::Unix => {
                if let Some((s, f)) = v.split_once('.') {
                    if f.len() > 9 || f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    let secs: i64 = s.parse().ok()?;
                    let frac: u64 = f.parse().ok()?;
                    let nanos = frac * 10u64.pow(9 - f.len() as u32);
                    return from_nanos(secs as i128 * 1_000_000_000 + nanos as i128);
                }
                from_nanos(v.parse::<i64>().ok()? as i128 * 1_000_000_000)
            }
            Format::UnixMs => from_nanos(v.parse::<i64>().ok()? as i128 * 1_000_000),
            Format::UnixUs => from_nanos(v.parse::<i64>().ok()? as i128 * 1_000),
            Format::UnixNs => from_nanos(v.parse::<i64>().ok()? as i128),
            Format::Named(l) => to_system(gotime::parse(l, v, Location::Utc, None)?),
            Format::Custom(l, loc) => {
                // promtail: a year-less time is in the current year, except
                // across new year (December lines read in January and back).
                to_system(gotime::parse(l, v, *loc, Some((now.year(), now.month())))?)
            }
        }
    }

    /// Whether `parse` needs `now` (a custom layout without a year).
    fn uses_now(&self) -> bool {
        matches!(self, Format::Custom(l, _) if !l.has_year)
    }
}

fn from_nanos(n: i128) -> Option<SystemTime> {
    if n >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_nanos(u64::try_from(n).ok()?))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_nanos(u64::try_from(-n).ok()?))
    }
}

fn to_system(t: DateTime<FixedOffset>) -> Option<SystemTime> {
    from_nanos(t.timestamp() as i128 * 1_000_000_000 + t.timestamp_subsec_nanos() as i128)
}

/// Streams whose last time the fudge action remembers (as promtail's LRU).
const MAX_LAST_KNOWN: usize = 10_000;

pub struct TimestampStage {
    source: String,
    formats: Vec<Format>,
    fudge: bool,
    last_known: HashMap<u64, SystemTime>,
    /// Hashes of the label sets seen lately, by the set's address (the
    /// entries of a stream share one set): hashing a whole set per entry
    /// was a tenth of a parsed line's cost.
    hashes: HashMap<usize, (Labels, u64)>,
    /// The last value parsed and its time, when no format depends on the
    /// current date: a busy log has many lines in the same second, and
    /// comparing the value is a fraction of parsing it again.
    last_parsed: Option<(String, SystemTime)>,
    /// Whether some format needs the current date (no `last_parsed` then).
    uses_now: bool,
}

fn labels_hash(l: &LabelSet) -> u64 {
    let mut h = DefaultHasher::new();
    l.hash(&mut h);
    h.finish()
}

impl StageSpec for TimestampStage {
    const NAME: &'static str = "timestamp";
    const EXAMPLE: &'static str = "{source: time, format: RFC3339}";
    type Config = TimestampConfig;

    fn new(c: &TimestampConfig) -> Result<Self, String> {
        if c.source.is_empty() {
            return Err("timestamp source value is required if timestamp is specified".into());
        }
        if c.format.is_empty() {
            return Err("timestamp format is required".into());
        }
        let loc = match c.location.as_deref() {
            None | Some("UTC") | Some("") => Location::Utc,
            Some(name) => Location::Named(
                name.parse()
                    .map_err(|_| format!("invalid location specified: unknown time zone {name}"))?,
            ),
        };
        let fudge = match c.action_on_failure.as_deref() {
            None | Some("fudge") => true,
            Some("skip") => false,
            Some(other) => {
                return Err(format!(
                    "invalid action on failure {other:?} (supported values are [skip fudge])"
                ))
            }
        };
        let mut formats = vec![Format::new(&c.format, loc)];
        formats.extend(c.fallback_formats.iter().map(|f| Format::new(f, loc)));
        Ok(TimestampStage {
            source: c.source.clone(),
            uses_now: formats.iter().any(Format::uses_now),
            formats,
            fudge,
            last_known: HashMap::default(),
            hashes: HashMap::default(),
            last_parsed: None,
        })
    }
}

impl TimestampStage {
    fn labels_hash(&mut self, labels: &Labels) -> u64 {
        if let Some((_, h)) = self.hashes.get(&labels.address()) {
            return *h;
        }
        let h = labels_hash(labels);
        if labels.is_shared() {
            if self.hashes.len() >= MAX_LAST_KNOWN {
                self.hashes.clear();
            }
            self.hashes.insert(labels.address(), (labels.clone(), h));
        }
        h
    }

    fn parse(&mut self, x: &Extracted) -> Option<SystemTime> {
        let v = x.get_str(&self.source)?;
        if let Some((last, t)) = &self.last_parsed {
            if last == v {
                return Some(*t);
            }
        }
        let now = Utc::now();
        let t = self.formats.iter().find_map(|f| f.parse(v, now))?;
        if !self.uses_now {
            // The buffer is kept: no allocation per new value.
            let (last, time) = self.last_parsed.get_or_insert_with(|| (String::new(), t));
            last.clear();
            last.push_str(v);
            *time = t;
        }
        Some(t)
    }
}

impl Stage for TimestampStage {
    fn process(&mut self, entry: &mut Entry, x: &mut Extracted) -> Flow {
        match self.parse(x) {
            Some(t) => {
                entry.timestamp = t;
                if self.fudge {
                    if self.last_known.len() >= MAX_LAST_KNOWN {
                        self.last_known.clear();
                    }
                    let h = self.labels_hash(&entry.labels);
                    self.last_known.insert(h, t);
                }
            }
            None if self.fudge => {
                let h = self.labels_hash(&entry.labels);
                if let Some(last) = self.last_known.get_mut(&h) {
                    *last += Duration::from_nanos(1);
                    entry.timestamp = *last;
                }
            }
            None => {}
        }
        Flow::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::testutil::*;
    use crate::relabel::labels;

    fn ts(format: &str, v: &str) -> Option<String> {
        let now = "2024-06-15T12:00:00Z".parse::<DateTime<Utc>>().unwrap();
        Format::new(format, Location::Utc)
            .parse(v, now)
            .map(|t| DateTime::<Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }

    #[test]
    fn named_formats() {
        assert_eq!(
            ts("RFC3339", "2023-10-10T13:55:36+02:00").unwrap(),
            "2023-10-10T11:55:36Z"
        );
        assert_eq!(
            ts("RFC3339Nano", "2023-10-10T13:55:36.123456789Z").unwrap(),
            "2023-10-10T13:55:36.123456789Z"
        );
        assert_eq!(
            ts("ANSIC", "Tue Oct 10 13:55:36 2023").unwrap(),
            "2023-10-10T13:55:36Z"
        );
        assert_eq!(
            ts("UnixDate", "Tue Oct 10 13:55:36 UTC 2023").unwrap(),
            "2023-10-10T13:55:36Z"
        );
        assert_eq!(
            ts("RubyDate", "Tue Oct 10 13:55:36 +0100 2023").unwrap(),
            "2023-10-10T12:55:36Z"
        );
        assert_eq!(
            ts("RFC822", "10 Oct 23 13:55 UTC").unwrap(),
            "2023-10-10T13:55:00Z"
        );
        assert_eq!(
            ts("RFC822Z", "10 Oct 23 13:55 -0100").unwrap(),
            "2023-10-10T14:55:00Z"
        );
        assert_eq!(
            ts("RFC850", "Tuesday, 10-Oct-23 13:55:36 UTC").unwrap(),
            "2023-10-10T13:55:36Z"
        );
        assert_eq!(
            ts("RFC1123", "Tue, 10 Oct 2023 13:55:36 GMT").unwrap(),
            "2023-10-10T13:55:36Z"
        );
        assert_eq!(
            ts("RFC1123Z", "Tue, 10 Oct 2023 13:55:36 +0000").unwrap(),
            "2023-10-10T13:55:36Z"
        );
        assert_eq!(ts("Unix", "1696946136").unwrap(), "2023-10-10T13:55:36Z");
        assert_eq!(
            ts("Unix", "1696946136.25").unwrap(),
            "2023-10-10T13:55:36.250Z"
        );
        assert_eq!(
            ts("UnixMs", "1696946136250").unwrap(),
            "2023-10-10T13:55:36.250Z"
        );
        assert_eq!(
            ts("UnixUs", "1696946136250001").unwrap(),
            "2023-10-10T13:55:36.250001Z"
        );
        assert_eq!(
            ts("UnixNs", "1696946136250001002").unwrap(),
            "2023-10-10T13:55:36.250001002Z"
        );
        assert!(ts("RFC3339", "yesterday").is_none());
        assert!(ts("Unix", "12.3456789012").is_none());
    }

    #[test]
    fn year_less_layouts_take_the_current_year() {
        assert_eq!(
            ts("Jan _2 15:04:05", "Jun  1 08:00:00").unwrap(),
            "2024-06-01T08:00:00Z"
        );
        let now_jan = "2024-01-01T00:10:00Z".parse::<DateTime<Utc>>().unwrap();
        let t = Format::new("Jan _2 15:04:05", Location::Utc)
            .parse("Dec 31 23:59:00", now_jan)
            .unwrap();
        assert_eq!(
            DateTime::<Utc>::from(t).to_rfc3339(),
            "2023-12-31T23:59:00+00:00"
        );
    }

    #[test]
    fn stage_with_location_fallback_and_fudge() {
        let mut p = pipeline(
            r#"
- regex:
    expression: '^(?P<time>.+?) hello'
- timestamp:
    source: time
    format: '2006-01-02 15:04:05'
    fallback_formats: ['2006-01-02T15:04:05Z07:00']
    location: America/New_York
"#,
        );
        let e = run(&mut p, labels([("job", "a")]), "2024-01-15 10:00:00 hello").unwrap();
        assert_eq!(
            DateTime::<Utc>::from(e.timestamp).to_rfc3339(),
            "2024-01-15T15:00:00+00:00"
        );
        let e = run(&mut p, labels([("job", "a")]), "2024-01-15T10:00:00Z hello").unwrap();
        assert_eq!(
            DateTime::<Utc>::from(e.timestamp).to_rfc3339(),
            "2024-01-15T10:00:00+00:00"
        );
        // Unparseable: the last good time of the stream plus 1ns.
        let e = run(&mut p, labels([("job", "a")]), "garbage hello").unwrap();
        let expect = "2024-01-15T10:00:00.000000001+00:00";
        assert_eq!(DateTime::<Utc>::from(e.timestamp).to_rfc3339(), expect);
        // Another stream has no last time: the read time stays.
        let before = SystemTime::now();
        let e = run(&mut p, labels([("job", "b")]), "garbage hello").unwrap();
        assert!(e.timestamp >= before);
    }

    #[test]
    fn repeated_and_alternating_values_each_get_their_own_time() {
        let mut p = pipeline("- regex:\n    expression: '^(?P<t>\\S+)'\n- timestamp:\n    source: t\n    format: '2006-01-02T15:04:05'\n");
        for (line, want) in [
            ("2024-01-15T10:00:00 a", "2024-01-15T10:00:00+00:00"),
            ("2024-01-15T10:00:00 b", "2024-01-15T10:00:00+00:00"),
            ("2024-01-15T10:00:01 c", "2024-01-15T10:00:01+00:00"),
            ("2024-01-15T10:00:00 d", "2024-01-15T10:00:00+00:00"),
        ] {
            let e = run(&mut p, labels([("job", "a")]), line).unwrap();
            assert_eq!(
                DateTime::<Utc>::from(e.timestamp).to_rfc3339(),
                want,
                "{line}"
            );
        }
    }

    #[test]
    fn skip_keeps_the_read_time() {
        let mut p = pipeline("- regex:\n    expression: '^(?P<t>\\S+)'\n- timestamp:\n    source: t\n    format: Unix\n    action_on_failure: skip\n");
        run(&mut p, labels([]), "1700000000 ok").unwrap();
        let before = SystemTime::now();
        let e = run(&mut p, labels([]), "nope").unwrap();
        assert!(e.timestamp >= before);
    }

    #[test]
    fn config_errors() {
        assert!(build_err(
            "- timestamp:\n    source: t\n    format: Unix\n    location: Mars/Olympus\n"
        )
        .contains("invalid location"));
        assert!(build_err(
            "- timestamp:\n    source: t\n    format: Unix\n    action_on_failure: panic\n"
        )
        .contains("invalid action on failure"));
        assert!(build_err("- timestamp:\n    source: t\n").contains("missing field `format`"));
    }
}
