//! The file target's self-metrics with promtail's names. Counters are per
//! path (promtail's `path` label) and updated once per chunk read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use exporter_toolkit::exposition::MetricSet;

#[derive(Debug, Default)]
pub struct FileMetrics {
    pub read_bytes: AtomicU64,
    pub read_lines: AtomicU64,
    pub file_bytes: AtomicU64,
    pub truncated_lines: AtomicU64,
    pub truncated_bytes: AtomicU64,
    pub dropped_lines: AtomicU64,
    pub dropped_bytes: AtomicU64,
    /// Bytes of a truncated file that were never read and whose copy was
    /// not found (`reason="truncated_unread"`).
    pub truncated_unread_bytes: AtomicU64,
    /// Looks at an idle file for new lines (fewer as its polling backs off).
    pub idle_polls: AtomicU64,
    /// How many tailers use it (a file is tailed once per job).
    active: AtomicU64,
}

#[derive(Default)]
struct Registry {
    files: BTreeMap<String, Arc<FileMetrics>>,
}

fn registry() -> &'static Mutex<Registry> {
    static R: OnceLock<Mutex<Registry>> = OnceLock::new();
    R.get_or_init(Default::default)
}

static TARGETS_ACTIVE: AtomicU64 = AtomicU64::new(0);

/// The metrics of `path`, counted as active until the guard is dropped.
pub fn file(path: &str) -> ActiveFile {
    let mut r = registry().lock().unwrap_or_else(|e| e.into_inner());
    let m = Arc::clone(r.files.entry(path.to_string()).or_default());
    m.active.fetch_add(1, Ordering::Relaxed);
    ActiveFile(m)
}

pub struct ActiveFile(pub Arc<FileMetrics>);

impl Drop for ActiveFile {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

pub fn set_targets_active(n: u64) {
    TARGETS_ACTIVE.store(n, Ordering::Relaxed);
}

pub fn collect(set: &mut MetricSet) {
    let r = registry().lock().unwrap_or_else(|e| e.into_inner());
    let active = r
        .files
        .values()
        .filter(|m| m.active.load(Ordering::Relaxed) > 0)
        .count();
    set.gauge(
        "promtail_files_active_total",
        "Number of active files.",
        &[],
        active as f64,
    );
    set.gauge(
        "promtail_targets_active_total",
        "Number of active total.",
        &[],
        TARGETS_ACTIVE.load(Ordering::Relaxed) as f64,
    );
    for (path, m) in &r.files {
        let p: &str = path;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        set.counter(
            "promtail_read_bytes_total",
            "Number of bytes read.",
            &[("path", p)],
            load(&m.read_bytes),
        );
        set.counter(
            "promtail_read_lines_total",
            "Number of lines read.",
            &[("path", p)],
            load(&m.read_lines),
        );
        set.gauge(
            "promtail_file_bytes_total",
            "Number of bytes total.",
            &[("path", p)],
            load(&m.file_bytes),
        );
        let truncated = load(&m.truncated_lines);
        if truncated > 0.0 {
            set.counter(
                "promtail_mutated_entries_total",
                "The total number of log entries that have been mutated.",
                &[("path", p), ("reason", "line_too_long")],
                truncated,
            );
            set.counter(
                "promtail_mutated_bytes_total",
                "The total number of bytes that have been mutated.",
                &[("path", p), ("reason", "line_too_long")],
                load(&m.truncated_bytes),
            );
        }
        let dropped = load(&m.dropped_lines);
        if dropped > 0.0 {
            set.counter(
                "promtail_dropped_lines_total",
                "Lines read but not sent because they were longer than max_line_size.",
                &[("path", p), ("reason", "line_too_long")],
                dropped,
            );
            set.counter(
                "promtail_dropped_line_bytes_total",
                "Bytes of lines not sent because they were longer than max_line_size.",
                &[("path", p), ("reason", "line_too_long")],
                load(&m.dropped_bytes),
            );
        }
        set.counter(
            "log_shipper_file_idle_polls_total",
            "Times a file with nothing new was polled again (file_watch_config backs this off).",
            &[("path", p)],
            load(&m.idle_polls),
        );
        let unread = load(&m.truncated_unread_bytes);
        if unread > 0.0 {
            // promtail's family (the client's, by host) with our reason: a
            // file truncated before it was read, its copy not found.
            set.counter(
                "promtail_dropped_bytes_total",
                "Number of bytes dropped because failed to be sent to the ingester after all retries.",
                &[("path", p), ("reason", "truncated_unread")],
                unread,
            );
        }
    }
}
