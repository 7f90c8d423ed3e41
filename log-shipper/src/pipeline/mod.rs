//! Pipeline stages with promtail's semantics. Each entry gets an
//! "extracted" map, first filled with the entry's labels; stages run in
//! order, parse into it and act on it. A stage that drops an entry counts it
//! (`logentry_dropped_lines_total{reason}`) and the pipeline completes the
//! entry's ack, so its position may advance: dropped on purpose, never lost.
//!
//! One module per stage under `stages/`. A new stage adds a variant to
//! [`StageConfig`], its config struct and a [`Stage`] implementation.

pub mod extracted;
pub mod gotime;
pub mod selector;
pub mod stages;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::config::{ConfigError, Opaque};
use crate::entry::Entry;
pub use extracted::{Extracted, Kind};
pub use stages::*;

/// One `pipeline_stages` item: a map with exactly one key, the stage type.
#[derive(Debug, Clone)]
pub enum StageConfig {
    Regex(RegexConfig),
    Json(JsonConfig),
    Logfmt(LogfmtConfig),
    Labels(LabelsConfig),
    StaticLabels(StaticLabelsConfig),
    LabelDrop(Vec<String>),
    LabelAllow(Vec<String>),
    Timestamp(TimestampConfig),
    Output(OutputConfig),
    Drop(DropConfig),
    Match(MatchConfig),
    /// A stage promtail has that is not built yet (issue 6): kept so the
    /// config loads and prints; building a pipeline with it is an error.
    Unimplemented {
        kind: String,
        config: Opaque,
    },
}

/// promtail's stage names that we parse but do not run yet.
const LATER_STAGES: &[&str] = &[
    "docker",
    "cri",
    "multiline",
    "replace",
    "template",
    "metrics",
    "limit",
    "tenant",
    "structured_metadata",
    "pack",
    "decolorize",
    "sampling",
    "geoip",
    "eventlogmessage",
    "luhn",
    "non_indexed_labels",
];

const STAGE_NAMES: &[&str] = &[
    "regex",
    "json",
    "logfmt",
    "labels",
    "static_labels",
    "labeldrop",
    "labelallow",
    "timestamp",
    "output",
    "drop",
    "match",
];

impl StageConfig {
    pub fn kind(&self) -> &str {
        match self {
            StageConfig::Regex(_) => "regex",
            StageConfig::Json(_) => "json",
            StageConfig::Logfmt(_) => "logfmt",
            StageConfig::Labels(_) => "labels",
            StageConfig::StaticLabels(_) => "static_labels",
            StageConfig::LabelDrop(_) => "labeldrop",
            StageConfig::LabelAllow(_) => "labelallow",
            StageConfig::Timestamp(_) => "timestamp",
            StageConfig::Output(_) => "output",
            StageConfig::Drop(_) => "drop",
            StageConfig::Match(_) => "match",
            StageConfig::Unimplemented { kind, .. } => kind,
        }
    }
}

impl<'de> Deserialize<'de> for StageConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StageConfig;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a pipeline stage: a map with one key, the stage type (regex, json, labels, ...)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StageConfig, A::Error> {
                let Some(kind) = map.next_key::<String>()? else {
                    return Err(de::Error::custom("empty pipeline stage"));
                };
                let stage = match kind.as_str() {
                    "regex" => StageConfig::Regex(map.next_value()?),
                    "json" => StageConfig::Json(map.next_value()?),
                    "logfmt" => StageConfig::Logfmt(map.next_value()?),
                    "labels" => StageConfig::Labels(map.next_value()?),
                    "static_labels" => StageConfig::StaticLabels(map.next_value()?),
                    "labeldrop" => StageConfig::LabelDrop(map.next_value()?),
                    "labelallow" => StageConfig::LabelAllow(map.next_value()?),
                    "timestamp" => StageConfig::Timestamp(map.next_value()?),
                    "output" => StageConfig::Output(map.next_value()?),
                    "drop" => StageConfig::Drop(map.next_value()?),
                    "match" => StageConfig::Match(map.next_value()?),
                    k if LATER_STAGES.contains(&k) => StageConfig::Unimplemented {
                        kind: kind.clone(),
                        config: map.next_value()?,
                    },
                    _ => {
                        let mut all: Vec<&str> = STAGE_NAMES.to_vec();
                        all.extend_from_slice(LATER_STAGES);
                        return Err(de::Error::unknown_variant(&kind, leak_names(&all)));
                    }
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format!(
                        "pipeline stage must contain only one key, found `{kind}` and `{extra}` (start a new list item with `-`)"
                    )));
                }
                Ok(stage)
            }
        }
        d.deserialize_map(V)
    }
}

/// `unknown_variant` wants `&'static [&'static str]`; the list is fixed.
fn leak_names(names: &[&'static str]) -> &'static [&'static str] {
    static ALL: OnceLock<Vec<&'static str>> = OnceLock::new();
    ALL.get_or_init(|| names.to_vec())
}

impl Serialize for StageConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        match self {
            StageConfig::Regex(c) => m.serialize_entry("regex", c)?,
            StageConfig::Json(c) => m.serialize_entry("json", c)?,
            StageConfig::Logfmt(c) => m.serialize_entry("logfmt", c)?,
            StageConfig::Labels(c) => m.serialize_entry("labels", c)?,
            StageConfig::StaticLabels(c) => m.serialize_entry("static_labels", c)?,
            StageConfig::LabelDrop(c) => m.serialize_entry("labeldrop", c)?,
            StageConfig::LabelAllow(c) => m.serialize_entry("labelallow", c)?,
            StageConfig::Timestamp(c) => m.serialize_entry("timestamp", c)?,
            StageConfig::Output(c) => m.serialize_entry("output", c)?,
            StageConfig::Drop(c) => m.serialize_entry("drop", c)?,
            StageConfig::Match(c) => m.serialize_entry("match", c)?,
            StageConfig::Unimplemented { kind, config } => m.serialize_entry(kind, config)?,
        }
        m.end()
    }
}

/// What a stage decided for an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Keep,
    /// The stage counted the drop; the pipeline completes the entry.
    Drop,
}

/// One running stage. `process` is called once per entry, in order.
/// (Buffering stages such as multiline will add a flush hook here.)
pub trait Stage: Send {
    fn name(&self) -> &'static str;
    fn process(&mut self, entry: &mut Entry, extracted: &mut Extracted) -> Flow;
}

/// The running pipeline of one scrape config.
pub struct Pipeline {
    job: String,
    stages: Vec<Box<dyn Stage>>,
    extracted: Extracted,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.stages.iter().map(|s| s.name()).collect();
        f.debug_struct("Pipeline")
            .field("job", &self.job)
            .field("stages", &names)
            .finish()
    }
}

impl Pipeline {
    /// Builds the stages; errors name the stage (`pipeline_stages[2].regex`).
    pub fn new(stages: &[StageConfig], job: &str) -> Result<Pipeline, ConfigError> {
        Ok(Pipeline {
            job: job.to_string(),
            stages: build_stages(stages, "pipeline_stages")
                .map_err(|e| e.at(&format!("scrape_configs (job {job:?})")))?,
            extracted: Extracted::default(),
        })
    }

    pub fn job(&self) -> &str {
        &self.job
    }

    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Runs `entry` through every stage; pushes it to `out` unless a stage
    /// dropped it, in which case its ack is completed here.
    pub fn process(&mut self, mut entry: Entry, out: &mut Vec<Entry>) {
        if self.stages.is_empty() {
            out.push(entry);
            return;
        }
        self.extracted.reset_from_labels(&entry.labels);
        if run_stages(&mut self.stages, &mut entry, &mut self.extracted) == Flow::Drop {
            entry.complete();
            return;
        }
        out.push(entry);
    }
}

pub(crate) fn run_stages(
    stages: &mut [Box<dyn Stage>],
    entry: &mut Entry,
    x: &mut Extracted,
) -> Flow {
    for stage in stages {
        if stage.process(entry, x) == Flow::Drop {
            return Flow::Drop;
        }
    }
    Flow::Keep
}

pub(crate) fn build_stages(
    configs: &[StageConfig],
    path: &str,
) -> Result<Vec<Box<dyn Stage>>, ConfigError> {
    configs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            stages::build(c).map_err(|e| ConfigError::new(format!("{path}[{i}].{}: {e}", c.kind())))
        })
        .collect()
}

// ---------------------------------------------------------------- metrics

/// `logentry_dropped_lines_total{reason}`: a counter per reason, handed to
/// stages when they are built, so counting a drop is one atomic add.
#[derive(Debug, Clone)]
pub struct DropCounter(Arc<AtomicU64>);

impl DropCounter {
    pub fn for_reason(reason: &str) -> DropCounter {
        let mut reg = dropped_registry().lock().unwrap_or_else(|e| e.into_inner());
        DropCounter(Arc::clone(reg.entry(reason.to_string()).or_default()))
    }

    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

fn dropped_registry() -> &'static Mutex<BTreeMap<String, Arc<AtomicU64>>> {
    static REG: OnceLock<Mutex<BTreeMap<String, Arc<AtomicU64>>>> = OnceLock::new();
    REG.get_or_init(Default::default)
}

/// Adds the pipeline's self-metrics to `set`.
pub fn collect(set: &mut exporter_toolkit::exposition::MetricSet) {
    let reg = dropped_registry().lock().unwrap_or_else(|e| e.into_inner());
    for (reason, count) in reg.iter() {
        set.counter(
            "logentry_dropped_lines_total",
            "A count of all log lines dropped as a result of a pipeline stage",
            &[("reason", reason.as_str())],
            count.load(Ordering::Relaxed) as f64,
        );
    }
}
