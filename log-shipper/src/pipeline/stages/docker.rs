//! `docker`: parses Docker's json-file log lines
//! (`{"log":"...","stream":"stdout","time":"..."}`) as promtail does, by
//! running a fixed json + labels + timestamp + output pipeline: the line
//! becomes `log` (trailing newline kept, as promtail), `stream` a label and
//! `time` the timestamp. A line that is not such JSON passes unchanged.

use serde::{Deserialize, Deserializer, Serialize};

use super::{null_as_default, StageSpec};
use crate::entry::Entry;
use crate::pipeline::{build_stages, run_stages, Extracted, Flow, Named, Stage, StageConfig};

/// `docker: {}` takes no options.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DockerConfig {}

const STAGES: &str = r#"
- json:
    expressions:
      output: log
      stream: stream
      timestamp: time
- labels:
    stream:
- timestamp:
    source: timestamp
    format: RFC3339Nano
- output:
    source: output
"#;

pub struct DockerStage {
    inner: Vec<Named>,
}

impl StageSpec for DockerStage {
    const NAME: &'static str = "docker";
    const EXAMPLE: &'static str = "{}";
    type Config = DockerConfig;

    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<DockerConfig, D::Error> {
        null_as_default(d)
    }

    fn new(_c: &DockerConfig) -> Result<Self, String> {
        Ok(DockerStage {
            inner: fixed_stages(STAGES)?,
        })
    }
}

/// Builds one of the fixed pipelines the docker and cri stages are made of.
pub(crate) fn fixed_stages(yaml: &str) -> Result<Vec<Named>, String> {
    let configs: Vec<StageConfig> =
        serde_yaml_ng::from_str(yaml).map_err(|e| format!("built-in stages: {e}"))?;
    build_stages(&configs, "stages").map_err(|e| e.message)
}

impl Stage for DockerStage {
    fn process(&mut self, entry: &mut Entry, x: &mut Extracted) -> Flow {
        // None of the inner stages buffers, so nothing is released.
        run_stages(&mut self.inner, None, entry, x, &mut Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use crate::pipeline::stages::testutil::*;
    use crate::relabel::labels;

    #[test]
    fn promtail_documented_example() {
        // promtail docs, docker stage.
        let mut p = pipeline("- docker: {}\n");
        let e = run(
            &mut p,
            labels([("job", "c")]),
            r#"{"log":"log message\n","stream":"stderr","time":"2019-04-30T02:12:41.8443515Z"}"#,
        )
        .unwrap();
        assert_eq!(e.line, "log message\n");
        assert_eq!(e.labels, labels([("job", "c"), ("stream", "stderr")]));
        assert_eq!(
            e.timestamp,
            UNIX_EPOCH + Duration::new(1_556_590_361, 844_351_500)
        );
    }

    #[test]
    fn other_lines_pass_unchanged_and_null_config_is_accepted() {
        let mut p = pipeline("- docker:\n");
        let e = run(&mut p, labels([("job", "c")]), "plain text").unwrap();
        assert_eq!(e.line, "plain text");
        assert_eq!(e.labels, labels([("job", "c")]));
        assert!(build_err("- docker:\n    foo: 1\n").contains("unknown field `foo`"));
    }
}
