//! `drop`: drops entries when every configured condition holds (an AND;
//! several drop stages make an OR), counted under `drop_counter_reason`.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{GoRegex, OneOrMany, StageSpec};
use crate::config::{ByteSize, GoDuration};
use crate::entry::Entry;
use crate::pipeline::{DropCounter, Extracted, Flow, Kind, Stage};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DropConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<OneOrMany>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<GoRegex>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub older_than: Option<GoDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longer_than: Option<ByteSize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_counter_reason: Option<String>,
}

pub struct DropStage {
    sources: Vec<String>,
    separator: String,
    value: Option<String>,
    regex: Option<::regex::Regex>,
    older_than: Option<Duration>,
    longer_than: Option<usize>,
    counter: DropCounter,
    joined: String,
}

impl StageSpec for DropStage {
    const NAME: &'static str = "drop";
    const EXAMPLE: &'static str = "{expression: debug}";
    type Config = DropConfig;

    fn new(c: &DropConfig) -> Result<Self, String> {
        if c.source.is_none()
            && c.expression.is_none()
            && c.older_than.is_none()
            && c.longer_than.is_none()
        {
            return Err(
                "drop stage config must contain at least one of `source`, `expression`, `older_than` or `longer_than`"
                    .into(),
            );
        }
        if c.value.is_some() && c.expression.is_some() {
            return Err("drop stage config error, `value` and `expression` cannot both be defined at the same time.".into());
        }
        let reason = c
            .drop_counter_reason
            .as_deref()
            .filter(|r| !r.is_empty())
            .unwrap_or("drop_stage");
        Ok(DropStage {
            sources: c.source.as_ref().map(OneOrMany::to_vec).unwrap_or_default(),
            separator: c.separator.clone().unwrap_or_else(|| ";".into()),
            value: c.value.clone(),
            regex: c.expression.as_ref().map(|r| r.re.clone()),
            older_than: c.older_than.map(GoDuration::get),
            longer_than: c.longer_than.map(|b| b.bytes() as usize),
            counter: DropCounter::for_reason(reason),
            joined: String::new(),
        })
    }
}

impl DropStage {
    fn should_drop(&mut self, entry: &Entry, x: &Extracted) -> bool {
        if let Some(max) = self.longer_than {
            if entry.line.len() <= max {
                return false;
            }
        }
        if let Some(age) = self.older_than {
            let cutoff = SystemTime::now()
                .checked_sub(age)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            if entry.timestamp >= cutoff {
                return false;
            }
        }
        if !self.sources.is_empty() {
            // Every source must be present; their values joined by `separator`.
            self.joined.clear();
            for (i, src) in self.sources.iter().enumerate() {
                let Some((v, kind)) = x.get(src) else {
                    return false;
                };
                if i > 0 {
                    self.joined.push_str(&self.separator);
                }
                if self.value.is_some() && kind != Kind::Str && self.sources.len() == 1 {
                    // promtail compares the raw value: only strings can equal `value`.
                    return false;
                }
                if kind == Kind::Null && self.regex.is_some() {
                    return false;
                }
                self.joined.push_str(v);
            }
            if let Some(want) = &self.value {
                if *want != self.joined {
                    return false;
                }
            }
            if let Some(re) = &self.regex {
                if !re.is_match(&self.joined) {
                    return false;
                }
            }
        } else if let Some(re) = &self.regex {
            if !re.is_match(&entry.line) {
                return false;
            }
        }
        true
    }
}

impl Stage for DropStage {
    fn process(&mut self, entry: &mut Entry, x: &mut Extracted) -> Flow {
        if self.should_drop(entry, x) {
            self.counter.inc();
            Flow::Drop
        } else {
            Flow::Keep
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use crate::entry::Entry;
    use crate::pipeline::stages::testutil::*;
    use crate::pipeline::DropCounter;
    use crate::relabel::labels;

    #[test]
    fn expression_on_the_line_counts_its_reason() {
        let mut p =
            pipeline("- drop:\n    expression: healthz\n    drop_counter_reason: health_checks\n");
        let before = DropCounter::for_reason("health_checks").get();
        assert!(run(&mut p, labels([]), "GET /healthz 200").is_none());
        assert!(run(&mut p, labels([]), "GET /index 200").is_some());
        assert_eq!(DropCounter::for_reason("health_checks").get(), before + 1);
    }

    #[test]
    fn source_value_and_and_semantics() {
        let mut p = pipeline(
            "- regex:\n    expression: 'level=(?P<level>\\w+)'\n- drop:\n    source: level\n    value: debug\n",
        );
        assert!(run(&mut p, labels([]), "level=debug x").is_none());
        assert!(run(&mut p, labels([]), "level=info x").is_some());
        assert!(run(&mut p, labels([]), "no level").is_some());
        // source alone: drop when present.
        let mut q = pipeline(
            "- drop:\n    source: [app, env]\n    separator: '/'\n    expression: '^web/dev$'\n",
        );
        assert!(run(&mut q, labels([("app", "web"), ("env", "dev")]), "x").is_none());
        assert!(run(&mut q, labels([("app", "web"), ("env", "prod")]), "x").is_some());
        assert!(run(&mut q, labels([("app", "web")]), "x").is_some());
        // AND: long and matching.
        let mut r = pipeline("- drop:\n    longer_than: 8\n    expression: spam\n");
        assert!(run(&mut r, labels([]), "spam").is_some());
        assert!(run(&mut r, labels([]), "spam spam spam").is_none());
    }

    #[test]
    fn older_than_and_acks() {
        let mut p = pipeline("- drop:\n    older_than: 1h\n");
        let progress = crate::ack::Progress::new(0);
        let mut old = Entry::new(labels([]), "old".into());
        old.timestamp = SystemTime::now() - Duration::from_secs(7200);
        old.ack = Some(progress.track(4));
        let mut out = Vec::new();
        p.process(old, &mut out);
        assert!(out.is_empty());
        assert_eq!(progress.committed(), 4, "a dropped entry is completed");
        let new = Entry::new(labels([]), "new".into());
        p.process(new, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn config_errors() {
        assert!(build_err("- drop: {}\n").contains("at least one of"));
        assert!(
            build_err("- drop:\n    source: a\n    value: b\n    expression: c\n")
                .contains("cannot both")
        );
        assert!(build_err("- drop:\n    older_than: soon\n").contains("line 2"));
    }
}
