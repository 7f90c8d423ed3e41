//! `cri`: parses CRI (containerd, CRI-O) log lines
//! `<time> <stream> <flags> <content>` as promtail does: `content` becomes
//! the line, `stream` a label, `time` the timestamp. Partial lines (flag
//! `P`) are held per stream and joined (without separator) with the lines
//! that follow until the full line (`F`); the joined entry carries the
//! acks of all its parts. When more than `max_partial_lines` streams hold
//! partial lines, they are all let go as they are (promtail's bound).

use std::collections::HashMap;
use std::time::Instant;

use serde::{Deserialize, Deserializer, Serialize};

use super::docker::fixed_stages;
use super::{null_as_default, StageSpec};
use crate::config::ByteSize;
use crate::entry::{Entry, Labels};
use crate::pipeline::{join_acks, run_stages, take_entry, Extracted, Flow, Named, Released, Stage};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CriConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_partial_lines: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_partial_line_size: Option<ByteSize>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub max_partial_line_size_truncate: bool,
}

const STAGES: &str = r#"
- regex:
    expression: '^(?s)(?P<time>\S+?) (?P<stream>stdout|stderr) (?P<flags>\S+?) (?P<content>.*)$'
- labels:
    stream:
- timestamp:
    source: time
    format: RFC3339Nano
- output:
    source: content
"#;

/// promtail's default `max_partial_lines`.
const MAX_PARTIAL_LINES: usize = 100;

pub struct CriStage {
    inner: Vec<Named>,
    max_partial_lines: usize,
    /// Truncate held partial lines to this many bytes (when configured).
    truncate_at: Option<usize>,
    /// The partial line held per stream (label set).
    partial: HashMap<Labels, Released>,
    released: Vec<Released>,
}

impl StageSpec for CriStage {
    const NAME: &'static str = "cri";
    const EXAMPLE: &'static str = "{}";
    type Config = CriConfig;

    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<CriConfig, D::Error> {
        null_as_default(d)
    }

    fn new(c: &CriConfig) -> Result<Self, String> {
        let truncate_at = match (c.max_partial_line_size_truncate, c.max_partial_line_size) {
            (true, Some(size)) if size.bytes() > 0 => Some(size.bytes() as usize),
            (true, _) => {
                return Err("max_partial_line_size_truncate needs max_partial_line_size > 0".into())
            }
            _ => None,
        };
        Ok(CriStage {
            inner: fixed_stages(STAGES)?,
            max_partial_lines: c
                .max_partial_lines
                .filter(|n| *n > 0)
                .unwrap_or(MAX_PARTIAL_LINES),
            truncate_at,
            partial: HashMap::new(),
            released: Vec::new(),
        })
    }
}

impl CriStage {
    fn truncate(&self, line: &mut String) {
        if let Some(max) = self.truncate_at {
            if line.len() > max {
                let mut at = max;
                while !line.is_char_boundary(at) {
                    at -= 1;
                }
                line.truncate(at);
            }
        }
    }
}

/// Puts `prev`'s line in front of `entry`'s and takes over its ack.
fn prepend(prev: Released, entry: &mut Entry) {
    let mut line = prev.entry.line;
    line.push_str(&entry.line);
    entry.line = line;
    entry.ack = join_acks(prev.entry.ack, entry.ack.take());
}

impl Stage for CriStage {
    fn process(&mut self, entry: &mut Entry, x: &mut Extracted) -> Flow {
        let flow = run_stages(&mut self.inner, None, entry, x, &mut Vec::new());
        if flow != Flow::Keep {
            return flow;
        }
        let partial = x.get_str("flags") == Some("P");
        if partial {
            if self.partial.len() >= self.max_partial_lines
                && !self.partial.contains_key(&entry.labels)
            {
                tracing::warn!(
                    threshold = self.max_partial_lines,
                    "cri stage: partial lines upperbound exceeded, sending them as they are"
                );
                self.released.extend(self.partial.drain().map(|(_, r)| r));
            }
            if let Some(prev) = self.partial.remove(&entry.labels) {
                prepend(prev, entry);
            }
            self.truncate(&mut entry.line);
            let held = take_entry(entry);
            self.partial.insert(
                held.labels.clone(),
                Released {
                    entry: held,
                    extracted: x.clone(),
                },
            );
            return Flow::Held;
        }
        if let Some(prev) = self.partial.remove(&entry.labels) {
            prepend(prev, entry);
            self.truncate(&mut entry.line);
        }
        Flow::Keep
    }

    fn buffers(&self) -> bool {
        true
    }

    fn drain_released(&mut self, out: &mut Vec<Released>) {
        out.append(&mut self.released);
    }

    /// promtail has no timeout for partial lines; on stop they are sent as
    /// they are rather than lost.
    fn flush(&mut self, _now: Instant, all: bool) {
        if all {
            self.released.extend(self.partial.drain().map(|(_, r)| r));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use crate::ack::Progress;
    use crate::entry::Entry;
    use crate::pipeline::stages::testutil::*;
    use crate::relabel::labels;

    #[test]
    fn promtail_documented_example() {
        let mut p = pipeline("- cri: {}\n");
        let e = run(
            &mut p,
            labels([("job", "k")]),
            "2019-04-30T02:12:41.8443515Z stdout F message",
        )
        .unwrap();
        assert_eq!(e.line, "message");
        assert_eq!(e.labels, labels([("job", "k"), ("stream", "stdout")]));
        assert_eq!(
            e.timestamp,
            UNIX_EPOCH + Duration::new(1_556_590_361, 844_351_500)
        );
    }

    #[test]
    fn partial_lines_are_joined_per_stream_and_keep_every_ack() {
        let mut p = pipeline("- cri: {}\n");
        let progress = Progress::new(0);
        let lines = [
            "2019-05-07T18:57:50.904275087+00:00 stdout P i'm",
            "2019-05-07T18:57:50.904275087+00:00 stderr P other ",
            "2019-05-07T18:57:51.904275087+00:00 stdout P  a very long log line",
            "2019-05-07T18:57:52.904275087+00:00 stdout F  split in three",
            "2019-05-07T18:57:53.904275087+00:00 stderr F stream",
        ];
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            let mut e = Entry::new(labels([("job", "k")]), l.to_string());
            e.ack = Some(progress.track(10 * (i as u64 + 1)));
            p.process(e, &mut out);
        }
        let got: Vec<(&str, &str)> = out
            .iter()
            .map(|e| (e.labels["stream"].as_str(), e.line.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("stdout", "i'm a very long log line split in three"),
                ("stderr", "other stream"),
            ]
        );
        let first = out.remove(0);
        first.complete();
        assert_eq!(
            progress.committed(),
            10,
            "the stderr part is still in flight"
        );
        out.remove(0).complete();
        assert_eq!(progress.committed(), 50);
    }

    #[test]
    fn max_partial_lines_and_truncation() {
        let mut p = pipeline(
            "- cri:\n    max_partial_lines: 1\n    max_partial_line_size: 4\n    max_partial_line_size_truncate: true\n",
        );
        let mut out = Vec::new();
        for l in [
            "2019-05-07T18:57:50Z stdout P abcdefgh",
            "2019-05-07T18:57:50Z stderr P 12",
            "2019-05-07T18:57:50Z stderr F 34567",
        ] {
            p.process(Entry::new(labels([("job", "k")]), l.to_string()), &mut out);
        }
        let got: Vec<&str> = out.iter().map(|e| e.line.as_str()).collect();
        assert_eq!(got, ["abcd", "1234"]);
        assert!(
            build_err("- cri:\n    max_partial_line_size_truncate: true\n")
                .contains("max_partial_line_size")
        );
    }
}
