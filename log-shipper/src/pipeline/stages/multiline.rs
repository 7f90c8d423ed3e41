//! `multiline`: joins the lines of a block (a stack trace) into one entry,
//! per stream, as promtail does: a line matching `firstline` starts a new
//! block and sends the previous one on; lines are joined with `\n`; a block
//! is sent when it reaches `max_lines` or when its stream was quiet for
//! `max_wait_time`. The block keeps the labels, timestamp and extracted
//! values of its first line, and the acks of every line in it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{GoRegex, StageSpec};
use crate::config::GoDuration;
use crate::entry::{Entry, Labels};
use crate::pipeline::{join_acks, take_entry, Extracted, Flow, Released, Stage};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    pub firstline: GoRegex,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait_time: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lines: Option<u64>,
}

/// promtail's defaults.
const MAX_WAIT_TIME: Duration = Duration::from_secs(3);
const MAX_LINES: u64 = 128;

struct Block {
    first: Released,
    lines: u64,
    /// When the stream's last line arrived.
    last: Instant,
}

pub struct MultilineStage {
    firstline: ::regex::Regex,
    max_wait: Duration,
    max_lines: u64,
    blocks: HashMap<Labels, Block>,
    released: Vec<Released>,
}

impl StageSpec for MultilineStage {
    const NAME: &'static str = "multiline";
    const EXAMPLE: &'static str = r#"{firstline: '^\d'}"#;
    type Config = MultilineConfig;

    fn new(c: &MultilineConfig) -> Result<Self, String> {
        if c.firstline.source.is_empty() {
            return Err("firstline is required".into());
        }
        let max_wait = c.max_wait_time.map_or(MAX_WAIT_TIME, GoDuration::get);
        if max_wait.is_zero() {
            return Err("max_wait_time must be greater than 0".into());
        }
        Ok(MultilineStage {
            firstline: c.firstline.re.clone(),
            max_wait,
            max_lines: c.max_lines.filter(|n| *n > 0).unwrap_or(MAX_LINES),
            blocks: HashMap::new(),
            released: Vec::new(),
        })
    }
}

impl Stage for MultilineStage {
    fn process(&mut self, entry: &mut Entry, x: &mut Extracted) -> Flow {
        let now = Instant::now();
        let starts = self.firstline.is_match(&entry.line);
        if starts {
            if let Some(prev) = self.blocks.remove(&entry.labels) {
                self.released.push(prev.first);
            }
        }
        let block = match self.blocks.get_mut(&entry.labels) {
            Some(b) => {
                b.first.entry.line.push('\n');
                b.first.entry.line.push_str(&entry.line);
                b.first.entry.ack = join_acks(b.first.entry.ack.take(), entry.ack.take());
                b.lines += 1;
                b.last = now;
                b
            }
            None => {
                // A first line, or a line before any first line (promtail
                // then starts the block with it too).
                let held = take_entry(entry);
                let key = held.labels.clone();
                self.blocks.entry(key).or_insert(Block {
                    first: Released {
                        entry: held,
                        extracted: x.clone(),
                    },
                    lines: 1,
                    last: now,
                })
            }
        };
        if block.lines >= self.max_lines {
            let key = block.first.entry.labels.clone();
            if let Some(b) = self.blocks.remove(&key) {
                self.released.push(b.first);
            }
        }
        Flow::Held
    }

    fn buffers(&self) -> bool {
        true
    }

    fn drain_released(&mut self, out: &mut Vec<Released>) {
        out.append(&mut self.released);
    }

    fn flush(&mut self, now: Instant, all: bool) {
        let due: Vec<Labels> = self
            .blocks
            .iter()
            .filter(|(_, b)| all || b.last + self.max_wait <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut blocks: Vec<Block> = due
            .into_iter()
            .filter_map(|k| self.blocks.remove(&k))
            .collect();
        blocks.sort_by_key(|b| b.last);
        self.released.extend(blocks.into_iter().map(|b| b.first));
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.blocks.values().map(|b| b.last + self.max_wait).min()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::ack::Progress;
    use crate::entry::Entry;
    use crate::pipeline::stages::testutil::*;
    use crate::relabel::labels;

    const CONFIG: &str = r#"
- multiline:
    firstline: '^\[\d{4}-\d{2}-\d{2} \d{1,2}:\d{2}:\d{2}\]'
    max_wait_time: 3s
"#;

    #[test]
    fn promtail_documented_example_with_acks() {
        // promtail docs, multiline stage: a Java-style app log.
        let mut p = pipeline(CONFIG);
        let progress = Progress::new(0);
        let lines = [
            "[2020-12-03 11:36:20] \"GET /hello HTTP/1.1\" 200 -",
            "[2020-12-03 11:36:23] ERROR in app: Exception on /error [GET]",
            "Traceback (most recent call last):",
            "  File \"/home/pallets/.pyenv/versions/3.8.5/lib/python3.8/site-packages/flask/app.py\", line 2447, in wsgi_app",
            "Exception: Sorry, this route always breaks",
            "[2020-12-03 11:36:26] \"GET /error HTTP/1.1\" 500 -",
        ];
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            let mut e = Entry::new(labels([("job", "app")]), l.to_string());
            e.ack = Some(progress.track(i as u64 + 1));
            p.process(e, &mut out);
        }
        assert_eq!(out.len(), 2, "the last block is still open");
        assert_eq!(out[0].line, lines[0]);
        assert_eq!(out[1].line, lines[1..5].join("\n"));
        assert!(p.next_deadline().is_some());
        // Delivering the block completes all four of its lines.
        for e in out.drain(..) {
            e.complete();
        }
        assert_eq!(progress.committed(), 5);
        // Quiet for max_wait_time: the last block goes out.
        p.flush_due(Instant::now(), &mut out);
        assert!(out.is_empty(), "not due yet");
        p.flush_due(Instant::now() + Duration::from_secs(4), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].line, lines[5]);
        out.pop().unwrap().complete();
        assert_eq!(progress.committed(), 6);
        assert!(p.next_deadline().is_none());
    }

    #[test]
    fn max_lines_and_streams_apart() {
        let mut p = pipeline("- multiline:\n    firstline: '^START'\n    max_lines: 2\n");
        let mut out = Vec::new();
        for (stream, l) in [
            ("a", "START a1"),
            ("b", "START b1"),
            ("a", "a2"),
            ("a", "a3"),
            ("b", "b2"),
        ] {
            p.process(Entry::new(labels([("s", stream)]), l.to_string()), &mut out);
        }
        let got: Vec<&str> = out.iter().map(|e| e.line.as_str()).collect();
        assert_eq!(got, ["START a1\na2", "START b1\nb2"]);
        out.clear();
        p.flush_all(&mut out);
        let got: Vec<&str> = out.iter().map(|e| e.line.as_str()).collect();
        assert_eq!(got, ["a3"]);
    }

    #[test]
    fn later_stages_see_the_block_and_first_line_fields() {
        let mut p = pipeline(
            r#"
- regex:
    expression: '^(?P<level>[A-Z]+) '
- multiline:
    firstline: '^[A-Z]+ '
- labels:
    level:
- match:
    selector: '{job="j"} |= "Caused by"'
    stages:
    - static_labels:
        trace: "yes"
"#,
        );
        let mut out = Vec::new();
        for l in [
            "ERROR boom",
            "\tat x.y(Z.java:1)",
            "Caused by: q",
            "INFO ok",
        ] {
            p.process(Entry::new(labels([("job", "j")]), l.to_string()), &mut out);
        }
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].labels,
            labels([("job", "j"), ("level", "ERROR"), ("trace", "yes")])
        );
        p.flush_all(&mut out);
        assert_eq!(out[1].labels, labels([("job", "j"), ("level", "INFO")]));
    }

    #[test]
    fn multiline_inside_match_is_flushed_too() {
        let mut p = pipeline(
            r#"
- match:
    selector: '{app="java"}'
    stages:
    - multiline:
        firstline: '^\d'
        max_wait_time: 1s
"#,
        );
        let mut out = Vec::new();
        for (app, l) in [
            ("java", "1 a"),
            ("java", " b"),
            ("go", "x"),
            ("java", "2 c"),
        ] {
            p.process(Entry::new(labels([("app", app)]), l.to_string()), &mut out);
        }
        let got: Vec<&str> = out.iter().map(|e| e.line.as_str()).collect();
        assert_eq!(got, ["x", "1 a\n b"]);
        p.flush_due(Instant::now() + Duration::from_secs(2), &mut out);
        assert_eq!(out[2].line, "2 c");
    }

    #[test]
    fn config_errors() {
        assert!(build_err("- multiline:\n    max_lines: 3\n").contains("firstline"));
        assert!(
            build_err("- multiline:\n    firstline: '('\n").contains("invalid regular expression")
        );
    }
}
