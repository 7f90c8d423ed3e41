//! `output`: replaces the line with a value from the extracted map.

use serde::{Deserialize, Serialize};

use super::StageSpec;
use crate::entry::Entry;
use crate::pipeline::{Extracted, Flow, Stage};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    pub source: String,
}

pub struct OutputStage {
    source: String,
}

impl StageSpec for OutputStage {
    const NAME: &'static str = "output";
    const EXAMPLE: &'static str = "{source: message}";
    type Config = OutputConfig;

    fn new(c: &OutputConfig) -> Result<Self, String> {
        if c.source.is_empty() {
            return Err("output source value is required".into());
        }
        Ok(OutputStage {
            source: c.source.clone(),
        })
    }
}

impl Stage for OutputStage {
    fn process(&mut self, entry: &mut Entry, x: &mut Extracted) -> Flow {
        if let Some(v) = x.get_str(&self.source) {
            entry.line.clear();
            entry.line.push_str(v);
        }
        Flow::Keep
    }
}
