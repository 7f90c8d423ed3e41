//! `match`: runs nested stages (or drops the entry with `action: drop`) for
//! entries whose labels and line match a LogQL selector.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use crate::entry::Entry;
use crate::pipeline::selector::Selector;
use std::time::Instant;

use super::StageSpec;
use crate::pipeline::{
    build_stages, flush_stages, inspect, inspect_stages, next_deadline, run_stages, DropCounter,
    Extracted, Flow, Named, Released, Stage, StageConfig,
};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    pub selector: SelectorText,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_counter_reason: Option<String>,
}

/// A LogQL selector, parsed when the config is read.
#[derive(Debug, Clone)]
pub struct SelectorText {
    pub text: String,
    pub parsed: Selector,
}

impl<'de> Deserialize<'de> for SelectorText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let parsed = Selector::parse(&text).map_err(de::Error::custom)?;
        Ok(SelectorText { text, parsed })
    }
}

impl Serialize for SelectorText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

enum Action {
    Run(Vec<Named>),
    Drop(DropCounter),
}

pub struct MatchStage {
    selector: Selector,
    action: Action,
    /// Nested buffering stages (multiline under a selector) make this one.
    buffers: bool,
    released: Vec<Released>,
    /// `-inspect`: the nested stages print their changes.
    inspector: Option<inspect::Inspector>,
}

impl StageSpec for MatchStage {
    const NAME: &'static str = "match";
    const EXAMPLE: &'static str =
        r#"{selector: '{job="app"}', stages: [{static_labels: {env: prod}}]}"#;
    type Config = MatchConfig;

    fn new(c: &MatchConfig) -> Result<Self, String> {
        let action = match c.action.as_deref().unwrap_or("keep") {
            "keep" => {
                if c.stages.is_empty() {
                    return Err(
                        "match stage requires at least one nested stage when action is keep".into(),
                    );
                }
                Action::Run(build_stages(&c.stages, "stages").map_err(|e| e.message)?)
            }
            "drop" => {
                if !c.stages.is_empty() {
                    return Err("match stage with action drop cannot have nested stages".into());
                }
                let reason = c
                    .drop_counter_reason
                    .as_deref()
                    .filter(|r| !r.is_empty())
                    .unwrap_or("match_stage");
                Action::Drop(DropCounter::for_reason(reason))
            }
            other => {
                return Err(format!(
                    "match stage action should be 'keep' or 'drop', not {other:?}"
                ))
            }
        };
        let buffers = matches!(&action, Action::Run(st) if st.iter().any(|s| s.stage.buffers()));
        Ok(MatchStage {
            selector: c.selector.parsed.clone(),
            action,
            buffers,
            released: Vec::new(),
            inspector: None,
        })
    }
}

impl Stage for MatchStage {
    fn process(&mut self, entry: &mut Entry, x: &mut Extracted) -> Flow {
        if !self.selector.matches(&entry.labels, &entry.line) {
            return Flow::Keep;
        }
        match &mut self.action {
            Action::Drop(c) => {
                c.inc();
                Flow::Drop
            }
            Action::Run(stages) => run_stages(
                stages,
                self.inspector.as_ref(),
                entry,
                x,
                &mut self.released,
            ),
        }
    }

    fn buffers(&self) -> bool {
        self.buffers
    }

    fn drain_released(&mut self, out: &mut Vec<Released>) {
        out.append(&mut self.released);
    }

    fn flush(&mut self, now: Instant, all: bool) {
        if let Action::Run(stages) = &mut self.action {
            flush_stages(
                stages,
                now,
                all,
                self.inspector.as_ref(),
                &mut self.released,
            );
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        match &self.action {
            Action::Run(stages) => next_deadline(stages),
            Action::Drop(_) => None,
        }
    }

    /// promtail inspects the stages a `match` runs, not the `match` itself
    /// (with `action: drop` it has none and is reported as one stage).
    fn inspect_nested(&mut self, inspector: &inspect::Inspector) -> bool {
        match &mut self.action {
            Action::Run(stages) => {
                inspect_stages(stages, inspector);
                self.inspector = Some(inspector.clone());
                true
            }
            Action::Drop(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::pipeline::stages::testutil::*;
    use crate::relabel::labels;

    #[test]
    fn nested_stages_only_for_matching_streams() {
        let mut p = pipeline(
            r#"
- match:
    selector: '{job="nginx"} |= "GET"'
    pipeline_name: nginx_get
    stages:
      - static_labels:
          method: GET
- match:
    selector: '{job=~"nginx|apache"} |~ "bot|crawler"'
    action: drop
    drop_counter_reason: bots
"#,
        );
        let e = run(&mut p, labels([("job", "nginx")]), "GET /").unwrap();
        assert_eq!(e.labels["method"], "GET");
        let e = run(&mut p, labels([("job", "nginx")]), "POST /").unwrap();
        assert!(!e.labels.contains_key("method"));
        let e = run(&mut p, labels([("job", "mysql")]), "GET /").unwrap();
        assert!(!e.labels.contains_key("method"));
        assert!(run(&mut p, labels([("job", "apache")]), "GET / googlebot").is_none());
        assert!(run(&mut p, labels([("job", "mysql")]), "googlebot").is_some());
    }

    #[test]
    fn errors() {
        let e = build_err("- match:\n    selector: '{job=\"a\"'\n    action: drop\n");
        assert!(
            e.contains("invalid selector") && e.contains("line 2"),
            "{e}"
        );
        assert!(build_err("- match:\n    selector: '{job=\"a\"}'\n")
            .contains("at least one nested stage"));
        assert!(
            build_err("- match:\n    selector: '{job=\"a\"}'\n    action: skip\n")
                .contains("'keep' or 'drop'")
        );
        let e = build_err("- match:\n    selector: '{job=\"a\"}'\n    stages:\n      - regex:\n          expression: '('\n");
        assert!(e.contains("line 5"), "{e}");
    }
}
