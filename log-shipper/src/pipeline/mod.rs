//! Pipeline stages with promtail's semantics. Each entry gets an
//! "extracted" map, first filled with the entry's labels; stages run in
//! order, parse into it and act on it. A stage that drops an entry counts it
//! (`logentry_dropped_lines_total{reason}`) and the pipeline completes the
//! entry's ack, so its position may advance: dropped on purpose, never lost.
//!
//! One module per stage under `stages/`: a new stage is a module with its
//! settings, a [`Stage`] and a [`StageSpec`] implementation, and one line
//! in the registry, [`stages::each_stage`].

pub mod extracted;
pub mod fastcap;
pub mod gotime;
pub mod inspect;
pub mod selector;
pub mod stages;
pub mod template;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crate::ack::Ack;
use crate::config::ConfigError;
use crate::entry::Entry;
pub use extracted::{Extracted, Kind};
pub use stages::*;

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
    /// `-inspect`: a stage running nested stages (`match`) makes them
    /// report to `inspector` and says so (true); it is then not reported
    /// as one stage itself.
    fn inspect_nested(&mut self, _inspector: &inspect::Inspector) -> bool {
        false
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

/// A built stage with its key in `pipeline_stages` (what `-inspect` prints).
pub struct Named {
    pub kind: &'static str,
    pub stage: Box<dyn Stage>,
    /// Under `-inspect`, the stage reports its nested stages itself
    /// (`match`), so it is not reported as one.
    reports_nested: bool,
}

/// Makes `stages` print their changes to `inspector` (`-inspect`), nested
/// ones included.
pub(crate) fn inspect_stages(stages: &mut [Named], inspector: &inspect::Inspector) {
    for s in stages {
        s.reports_nested = s.stage.inspect_nested(inspector);
    }
}

/// The running pipeline of one scrape config.
pub struct Pipeline {
    job: String,
    stages: Vec<Named>,
    extracted: Extracted,
    released: Vec<Released>,
    /// `-inspect`: each stage's changes printed.
    inspector: Option<inspect::Inspector>,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<&str> = self.stages.iter().map(|s| s.kind).collect();
        f.debug_struct("Pipeline")
            .field("job", &self.job)
            .field("stages", &kinds)
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
            inspector: None,
        })
    }

    /// Prints what each stage changes in each entry (`-inspect`).
    pub fn inspect(&mut self, inspector: inspect::Inspector) {
        inspect_stages(&mut self.stages, &inspector);
        self.inspector = Some(inspector);
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
            self.inspector.as_ref(),
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
        let inspector = self.inspector.as_ref();
        flush_stages(&mut self.stages, now, false, inspector, &mut self.released);
        out.extend(self.released.drain(..).map(|r| r.entry));
    }

    /// Releases everything held (the pipeline is stopping).
    pub fn flush_all(&mut self, out: &mut Vec<Entry>) {
        let inspector = self.inspector.as_ref();
        flush_stages(
            &mut self.stages,
            Instant::now(),
            true,
            inspector,
            &mut self.released,
        );
        out.extend(self.released.drain(..).map(|r| r.entry));
    }

    /// When [`Pipeline::flush_due`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        next_deadline(&self.stages)
    }
}

/// Runs one entry through `stages`, printing each one's changes when
/// `inspector` is given. Entries that buffering stages release on the way
/// and that pass every later stage are pushed to `done`.
pub(crate) fn run_stages(
    stages: &mut [Named],
    inspector: Option<&inspect::Inspector>,
    entry: &mut Entry,
    x: &mut Extracted,
    done: &mut Vec<Released>,
) -> Flow {
    for i in 0..stages.len() {
        let report = inspector.filter(|_| !stages[i].reports_nested);
        let before = report.map(|_| inspect::Snapshot::of(entry, x));
        let flow = stages[i].stage.process(entry, x);
        if let (Some(ins), Some(before)) = (report, &before) {
            ins.report(
                stages[i].kind,
                before,
                &inspect::Snapshot::of(entry, x),
                flow,
            );
        }
        if stages[i].stage.buffers() {
            continue_released(stages, i, inspector, done);
        }
        if flow != Flow::Keep {
            return flow;
        }
    }
    Flow::Keep
}

/// Runs what stage `i` released through the stages after it.
fn continue_released(
    stages: &mut [Named],
    i: usize,
    inspector: Option<&inspect::Inspector>,
    done: &mut Vec<Released>,
) {
    let mut released = Vec::new();
    stages[i].stage.drain_released(&mut released);
    let rest = &mut stages[i + 1..];
    for mut r in released {
        match run_stages(rest, inspector, &mut r.entry, &mut r.extracted, done) {
            Flow::Keep => done.push(r),
            Flow::Drop => r.entry.complete(),
            Flow::Held => {}
        }
    }
}

pub(crate) fn flush_stages(
    stages: &mut [Named],
    now: Instant,
    all: bool,
    inspector: Option<&inspect::Inspector>,
    done: &mut Vec<Released>,
) {
    for i in 0..stages.len() {
        if stages[i].stage.buffers() {
            stages[i].stage.flush(now, all);
            continue_released(stages, i, inspector, done);
        }
    }
}

pub(crate) fn next_deadline(stages: &[Named]) -> Option<Instant> {
    stages.iter().filter_map(|s| s.stage.next_deadline()).min()
}

pub(crate) fn build_stages(configs: &[StageConfig], path: &str) -> Result<Vec<Named>, ConfigError> {
    configs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let stage = c
                .build()
                .map_err(|e| ConfigError::new(format!("{path}[{i}].{}: {e}", c.kind())))?;
            Ok(Named {
                kind: c.kind(),
                stage,
                reports_nested: false,
            })
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
