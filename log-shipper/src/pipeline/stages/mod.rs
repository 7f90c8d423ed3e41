//! One module per stage. Configs validate what they can while the YAML is
//! read (regexes, JMESPath, selectors), so those errors carry a line number.

pub mod cri;
pub mod decolorize;
pub mod docker;
pub mod drop;
pub mod json;
pub mod labels;
pub mod limit;
pub mod logfmt;
pub mod matcher;
pub mod metrics;
pub mod multiline;
pub mod output;
pub mod pack;
pub mod regex;
pub mod replace;
pub mod sampling;
pub mod structured_metadata;
pub mod template;
pub mod tenant;
pub mod timestamp;

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

pub use self::cri::CriConfig;
pub use self::decolorize::DecolorizeConfig;
pub use self::docker::DockerConfig;
pub use self::drop::DropConfig;
pub use self::json::JsonConfig;
pub use self::labels::{LabelsConfig, StaticLabelsConfig};
pub use self::limit::LimitConfig;
pub use self::logfmt::LogfmtConfig;
pub use self::matcher::MatchConfig;
pub use self::metrics::MetricsConfig;
pub use self::multiline::MultilineConfig;
pub use self::output::OutputConfig;
pub use self::pack::PackConfig;
pub use self::regex::RegexConfig;
pub use self::replace::ReplaceConfig;
pub use self::sampling::SamplingConfig;
pub use self::structured_metadata::StructuredMetadataConfig;
pub use self::template::TemplateConfig;
pub use self::tenant::TenantConfig;
pub use self::timestamp::TimestampConfig;
use super::{Stage, StageConfig};

/// Builds the running stage for one config.
pub fn build(config: &StageConfig) -> Result<Box<dyn Stage>, String> {
    Ok(match config {
        StageConfig::Regex(c) => Box::new(self::regex::RegexStage::new(c)?),
        StageConfig::Json(c) => Box::new(self::json::JsonStage::new(c)?),
        StageConfig::Logfmt(c) => Box::new(self::logfmt::LogfmtStage::new(c)?),
        StageConfig::Labels(c) => Box::new(self::labels::LabelsStage::new(c)?),
        StageConfig::StaticLabels(c) => Box::new(self::labels::StaticLabelsStage::new(c)?),
        StageConfig::LabelDrop(c) => Box::new(self::labels::LabelDropStage::new(c)?),
        StageConfig::LabelAllow(c) => Box::new(self::labels::LabelAllowStage::new(c)?),
        StageConfig::Timestamp(c) => Box::new(self::timestamp::TimestampStage::new(c)?),
        StageConfig::Output(c) => Box::new(self::output::OutputStage::new(c)?),
        StageConfig::Drop(c) => Box::new(self::drop::DropStage::new(c)?),
        StageConfig::Match(c) => Box::new(self::matcher::MatchStage::new(c)?),
        StageConfig::Docker(c) => Box::new(self::docker::DockerStage::new(c)?),
        StageConfig::Cri(c) => Box::new(self::cri::CriStage::new(c)?),
        StageConfig::Multiline(c) => Box::new(self::multiline::MultilineStage::new(c)?),
        StageConfig::Replace(c) => Box::new(self::replace::ReplaceStage::new(c)?),
        StageConfig::Template(c) => Box::new(self::template::TemplateStage::new(c)?),
        StageConfig::Metrics(c) => Box::new(self::metrics::MetricsStage::new(c)?),
        StageConfig::Limit(c) => Box::new(self::limit::LimitStage::new(c)?),
        StageConfig::Tenant(c) => Box::new(self::tenant::TenantStage::new(c)?),
        StageConfig::StructuredMetadata(c) => {
            Box::new(self::structured_metadata::StructuredMetadataStage::new(c)?)
        }
        StageConfig::Pack(c) => Box::new(self::pack::PackStage::new(c)?),
        StageConfig::Decolorize(c) => Box::new(self::decolorize::DecolorizeStage::new(c)?),
        StageConfig::Sampling(c) => Box::new(self::sampling::SamplingStage::new(c)?),
        StageConfig::Unimplemented { kind, .. } => {
            return Err(format!("the {kind} stage is not supported yet"))
        }
    })
}

/// A Go-syntax regex, compiled when the config is read (unanchored, as
/// promtail's stages use `FindStringSubmatch`).
#[derive(Clone)]
pub struct GoRegex {
    pub source: String,
    pub re: ::regex::Regex,
}

impl fmt::Debug for GoRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl GoRegex {
    pub fn new(source: &str) -> Result<GoRegex, String> {
        ::regex::Regex::new(&crate::relabel::go_regex_syntax(source))
            .map(|re| GoRegex {
                source: source.to_string(),
                re,
            })
            .map_err(|e| format!("invalid regular expression {source:?}: {e}"))
    }
}

impl<'de> Deserialize<'de> for GoRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GoRegex::new(&s).map_err(de::Error::custom)
    }
}

impl Serialize for GoRegex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

/// A string or a list of strings (promtail accepts both for `source`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

pub(crate) use crate::relabel::valid_label_name;

/// (group index, name) of a regex's named groups.
pub(crate) fn named_groups(re: &::regex::Regex) -> Vec<(usize, String)> {
    re.capture_names()
        .enumerate()
        .filter_map(|(i, n)| n.map(|n| (i, n.to_string())))
        .collect()
}

#[cfg(test)]
pub(crate) mod testutil {
    use crate::entry::{Entry, LabelSet};
    use crate::pipeline::{Pipeline, StageConfig};

    pub fn pipeline(yaml: &str) -> Pipeline {
        let stages: Vec<StageConfig> = serde_yaml_ng::from_str(yaml).unwrap();
        Pipeline::new(&stages, "test").unwrap()
    }

    pub fn build_err(yaml: &str) -> String {
        match serde_yaml_ng::from_str::<Vec<StageConfig>>(yaml) {
            Err(e) => e.to_string(),
            Ok(stages) => Pipeline::new(&stages, "test").unwrap_err().to_string(),
        }
    }

    /// Runs one line; `None` when dropped.
    pub fn run(p: &mut Pipeline, labels: LabelSet, line: &str) -> Option<Entry> {
        let mut out = Vec::new();
        p.process(Entry::new(labels, line.to_string()), &mut out);
        out.pop()
    }
}
