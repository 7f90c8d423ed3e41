//! Pipeline stages with promtail's semantics. Each entry gets an
//! "extracted" map, first filled with the entry's labels; stages run in
//! order, parse into it and act on it. A stage that drops an entry counts it
//! (`logentry_dropped_lines_total{reason}`) and the pipeline completes the
//! entry's ack, so its position may advance: dropped on purpose, never lost.
//!
//! One module per stage under `stages/`. A new stage adds a variant to
//! [`StageConfig`], its config struct and a [`Stage`] implementation.

pub mod extracted;
pub mod fastcap;
pub mod gotime;
pub mod selector;
pub mod stages;
pub mod template;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::ack::Ack;
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
    Docker(DockerConfig),
    Cri(CriConfig),
    Multiline(MultilineConfig),
    Replace(ReplaceConfig),
    Template(TemplateConfig),
    Metrics(MetricsConfig),
    Limit(LimitConfig),
    Tenant(TenantConfig),
    StructuredMetadata(StructuredMetadataConfig),
    Pack(PackConfig),
    Decolorize(DecolorizeConfig),
    Sampling(SamplingConfig),
    /// A stage promtail has that is not built yet (issue 6): kept so the
    /// config loads and prints; building a pipeline with it is an error.
    Unimplemented {
        kind: String,
        config: Opaque,
    },
}

/// promtail's stage names that we parse but do not run yet.
const LATER_STAGES: &[&str] = &["geoip", "eventlogmessage", "luhn", "non_indexed_labels"];

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
            StageConfig::Docker(_) => "docker",
            StageConfig::Cri(_) => "cri",
            StageConfig::Multiline(_) => "multiline",
            StageConfig::Replace(_) => "replace",
            StageConfig::Template(_) => "template",
            StageConfig::Metrics(_) => "metrics",
            StageConfig::Limit(_) => "limit",
            StageConfig::Tenant(_) => "tenant",
            StageConfig::StructuredMetadata(_) => "structured_metadata",
            StageConfig::Pack(_) => "pack",
            StageConfig::Decolorize(_) => "decolorize",
            StageConfig::Sampling(_) => "sampling",
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
                    "docker" => StageConfig::Docker(
                        map.next_value::<Option<DockerConfig>>()?
                            .unwrap_or_default(),
                    ),
                    "cri" => {
                        StageConfig::Cri(map.next_value::<Option<CriConfig>>()?.unwrap_or_default())
                    }
                    "multiline" => StageConfig::Multiline(map.next_value()?),
                    "replace" => StageConfig::Replace(map.next_value()?),
                    "template" => StageConfig::Template(map.next_value()?),
                    "metrics" => StageConfig::Metrics(map.next_value()?),
                    "limit" => StageConfig::Limit(map.next_value()?),
                    "tenant" => StageConfig::Tenant(map.next_value()?),
                    "structured_metadata" => StageConfig::StructuredMetadata(map.next_value()?),
                    "pack" => StageConfig::Pack(map.next_value()?),
                    "decolorize" => StageConfig::Decolorize(
                        map.next_value::<Option<DecolorizeConfig>>()?
                            .unwrap_or_default(),
                    ),
                    "sampling" => StageConfig::Sampling(map.next_value()?),
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
            StageConfig::Docker(c) => m.serialize_entry("docker", c)?,
            StageConfig::Cri(c) => m.serialize_entry("cri", c)?,
            StageConfig::Multiline(c) => m.serialize_entry("multiline", c)?,
            StageConfig::Replace(c) => m.serialize_entry("replace", c)?,
            StageConfig::Template(c) => m.serialize_entry("template", c)?,
            StageConfig::Metrics(c) => m.serialize_entry("metrics", c)?,
            StageConfig::Limit(c) => m.serialize_entry("limit", c)?,
            StageConfig::Tenant(c) => m.serialize_entry("tenant", c)?,
            StageConfig::StructuredMetadata(c) => m.serialize_entry("structured_metadata", c)?,
            StageConfig::Pack(c) => m.serialize_entry("pack", c)?,
            StageConfig::Decolorize(c) => m.serialize_entry("decolorize", c)?,
            StageConfig::Sampling(c) => m.serialize_entry("sampling", c)?,
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
    /// A buffering stage took the entry (its line, labels and ack) to hand
    /// it on later, joined with others, from [`Stage::drain_released`].
    Held,
}

/// An entry a buffering stage hands on, with the extracted map it had.
#[derive(Debug)]
pub struct Released {
    pub entry: Entry,
    pub extracted: Extracted,
}

/// One running stage. `process` is called once per entry, in order.
/// Buffering stages (multiline, cri) return [`Flow::Held`], hand out what
/// they finished holding through `drain_released`, and are flushed by time
/// (`flush`, at `next_deadline`) and when the pipeline stops.
pub trait Stage: Send {
    fn name(&self) -> &'static str;
    fn process(&mut self, entry: &mut Entry, extracted: &mut Extracted) -> Flow;

    /// True for stages that hold entries; only these are asked to release.
    fn buffers(&self) -> bool {
        false
    }
    /// Moves the entries this stage finished holding to `out`, oldest first.
    fn drain_released(&mut self, _out: &mut Vec<Released>) {}
    /// Releases what is due at `now` (everything when `all`).
    fn flush(&mut self, _now: Instant, _all: bool) {}
    /// When `flush` next has something to release.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }
}

/// Moves an entry's contents out, leaving an empty shell without ack (for
/// stages that hold entries).
pub fn take_entry(entry: &mut Entry) -> Entry {
    Entry {
        labels: std::mem::take(&mut entry.labels),
        timestamp: entry.timestamp,
        line: std::mem::take(&mut entry.line),
        structured_metadata: std::mem::take(&mut entry.structured_metadata),
        ack: entry.ack.take(),
    }
}

/// The ack of an entry joined from two: completing it completes both.
pub fn join_acks(a: Option<Ack>, b: Option<Ack>) -> Option<Ack> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.merge(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// The running pipeline of one scrape config.
pub struct Pipeline {
    job: String,
    stages: Vec<Box<dyn Stage>>,
    extracted: Extracted,
    released: Vec<Released>,
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
            released: Vec::new(),
        })
    }

    pub fn job(&self) -> &str {
        &self.job
    }

    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Runs `entry` through every stage; pushes what comes out to `out`
    /// (nothing when a stage dropped or holds it; a dropped entry's ack is
    /// completed here; entries a buffering stage let go come first).
    pub fn process(&mut self, mut entry: Entry, out: &mut Vec<Entry>) {
        if self.stages.is_empty() {
            out.push(entry);
            return;
        }
        self.extracted.reset_from_labels(&entry.labels);
        let flow = run_stages(
            &mut self.stages,
            &mut entry,
            &mut self.extracted,
            &mut self.released,
        );
        out.extend(self.released.drain(..).map(|r| r.entry));
        match flow {
            Flow::Keep => out.push(entry),
            Flow::Drop => entry.complete(),
            Flow::Held => {}
        }
    }

    /// Lets buffering stages release what is due at `now` (a multiline
    /// block whose `max_wait_time` passed) and runs it through the rest.
    pub fn flush_due(&mut self, now: Instant, out: &mut Vec<Entry>) {
        flush_stages(&mut self.stages, now, false, &mut self.released);
        out.extend(self.released.drain(..).map(|r| r.entry));
    }

    /// Releases everything held (the pipeline is stopping).
    pub fn flush_all(&mut self, out: &mut Vec<Entry>) {
        flush_stages(&mut self.stages, Instant::now(), true, &mut self.released);
        out.extend(self.released.drain(..).map(|r| r.entry));
    }

    /// When [`Pipeline::flush_due`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        next_deadline(&self.stages)
    }
}

/// Runs one entry through `stages`. Entries that buffering stages release
/// on the way and that pass every later stage are pushed to `done`.
pub(crate) fn run_stages(
    stages: &mut [Box<dyn Stage>],
    entry: &mut Entry,
    x: &mut Extracted,
    done: &mut Vec<Released>,
) -> Flow {
    for i in 0..stages.len() {
        let flow = stages[i].process(entry, x);
        if stages[i].buffers() {
            continue_released(stages, i, done);
        }
        if flow != Flow::Keep {
            return flow;
        }
    }
    Flow::Keep
}

/// Runs what stage `i` released through the stages after it.
fn continue_released(stages: &mut [Box<dyn Stage>], i: usize, done: &mut Vec<Released>) {
    let mut released = Vec::new();
    stages[i].drain_released(&mut released);
    let rest = &mut stages[i + 1..];
    for mut r in released {
        match run_stages(rest, &mut r.entry, &mut r.extracted, done) {
            Flow::Keep => done.push(r),
            Flow::Drop => r.entry.complete(),
            Flow::Held => {}
        }
    }
}

pub(crate) fn flush_stages(
    stages: &mut [Box<dyn Stage>],
    now: Instant,
    all: bool,
    done: &mut Vec<Released>,
) {
    for i in 0..stages.len() {
        if stages[i].buffers() {
            stages[i].flush(now, all);
            continue_released(stages, i, done);
        }
    }
}

pub(crate) fn next_deadline(stages: &[Box<dyn Stage>]) -> Option<Instant> {
    stages.iter().filter_map(|s| s.next_deadline()).min()
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

/// Adds the pipeline's self-metrics and the `metrics` stages' metrics to `set`.
pub fn collect(set: &mut exporter_toolkit::exposition::MetricSet) {
    stages::metrics::collect(set);
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
