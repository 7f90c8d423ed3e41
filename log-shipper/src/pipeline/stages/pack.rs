//! `pack`: wraps the line in a JSON object together with chosen labels or
//! extracted values (`{"container":"web","_entry":"<line>"}`, keys sorted,
//! `_entry` last), removing those labels from the stream, so many streams
//! can become one and be unpacked at query time with LogQL's `| unpack`.
//! With `ingest_timestamp` (the default) the entry gets the time it was
//! packed, as promtail, to keep the merged stream in order.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::StageSpec;
use crate::entry::Entry;
use crate::pipeline::{Extracted, Flow, Kind, Stage};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PackConfig {
    pub labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_timestamp: Option<bool>,
}

pub struct PackStage {
    /// Sorted, so the JSON keys come out sorted.
    keys: Vec<String>,
    ingest_timestamp: bool,
}

impl StageSpec for PackStage {
    const NAME: &'static str = "pack";
    const EXAMPLE: &'static str = "{labels: [level]}";
    type Config = PackConfig;

    fn new(c: &PackConfig) -> Result<Self, String> {
        if c.labels.is_empty() {
            return Err("pack stage requires at least one label".into());
        }
        let mut keys = c.labels.clone();
        keys.sort();
        keys.dedup();
        Ok(PackStage {
            keys,
            ingest_timestamp: c.ingest_timestamp.unwrap_or(true),
        })
    }
}

fn push_json_str(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

impl Stage for PackStage {
    fn process(&mut self, entry: &mut Entry, x: &mut Extracted) -> Flow {
        let mut out = String::with_capacity(entry.line.len() + 64);
        out.push('{');
        for k in &self.keys {
            // The extracted map holds the labels too.
            let v = match x.get(k) {
                Some((_, Kind::Json)) | None => continue,
                Some((_, Kind::Null)) => "",
                Some((v, _)) => v,
            };
            push_json_str(&mut out, k);
            out.push(':');
            push_json_str(&mut out, v);
            out.push(',');
            entry.labels.remove(k);
        }
        out.push_str("\"_entry\":");
        push_json_str(&mut out, &entry.line);
        out.push('}');
        entry.line = out;
        if self.ingest_timestamp {
            entry.timestamp = SystemTime::now();
        }
        Flow::Keep
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use crate::entry::Entry;
    use crate::pipeline::stages::testutil::*;
    use crate::relabel::labels;

    #[test]
    fn promtail_documented_example() {
        let mut p =
            pipeline("- pack:\n    labels: [pod, container]\n    ingest_timestamp: false\n");
        let mut out = Vec::new();
        let mut e = Entry::new(
            labels([("pod", "myapp-abc"), ("container", "myapp"), ("job", "k")]),
            r#"something "quoted""#.to_string(),
        );
        let ts = SystemTime::UNIX_EPOCH + Duration::from_secs(5);
        e.timestamp = ts;
        p.process(e, &mut out);
        let e = out.pop().unwrap();
        assert_eq!(
            e.line,
            r#"{"container":"myapp","pod":"myapp-abc","_entry":"something \"quoted\""}"#
        );
        assert_eq!(e.labels, labels([("job", "k")]));
        assert_eq!(e.timestamp, ts);
        // Default: the packed entry gets the time it was packed.
        let mut p = pipeline("- pack:\n    labels: [missing]\n");
        let mut e = Entry::new(labels([]), "x".into());
        e.timestamp = ts;
        p.process(e, &mut out);
        let e = out.pop().unwrap();
        assert_eq!(e.line, r#"{"_entry":"x"}"#);
        assert!(e.timestamp > ts);
    }
}
