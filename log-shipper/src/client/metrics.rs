//! The client's self-metrics with promtail's names, one set per Loki host
//! (promtail's `host` label). Counters are atomics updated once per batch,
//! never per line.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use exporter_toolkit::exposition::{MetricSet, MetricType, Value};

/// Why a batch was dropped, promtail's `reason` label values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// A 4xx other than 429, or retries exhausted on 5xx / network errors.
    IngesterError = 0,
    /// Retries exhausted on 429.
    RateLimited = 1,
    /// An entry with no labels left to send (Loki rejects such streams).
    StreamLimited = 2,
}

const REASONS: [&str; 3] = ["ingester_error", "rate_limited", "stream_limited"];

/// Prometheus' default buckets, as promtail's histogram uses.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct ClientMetrics {
    encoded_bytes: AtomicU64,
    sent_bytes: AtomicU64,
    sent_entries: AtomicU64,
    dropped_entries: [AtomicU64; 3],
    dropped_bytes: [AtomicU64; 3],
    batch_retries: AtomicU64,
    /// Entries sent again without their structured metadata because Loki
    /// refused it (and later entries sent without it).
    metadata_stripped: AtomicU64,
    /// status code ("204", "429", "failed") -> durations.
    durations: Mutex<BTreeMap<String, Histogram>>,
}

fn registry() -> &'static Mutex<BTreeMap<String, Arc<ClientMetrics>>> {
    static R: OnceLock<Mutex<BTreeMap<String, Arc<ClientMetrics>>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// The metrics of `host` (shared by clients pushing to the same host, and
/// kept across reloads so counters never go back).
pub fn for_host(host: &str) -> Arc<ClientMetrics> {
    let mut r = registry().lock().unwrap_or_else(|e| e.into_inner());
    Arc::clone(r.entry(host.to_string()).or_default())
}

impl ClientMetrics {
    pub fn encoded(&self, bytes: usize) {
        self.encoded_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }
    pub fn sent(&self, entries: usize, bytes: usize) {
        self.sent_entries
            .fetch_add(entries as u64, Ordering::Relaxed);
        self.sent_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
    pub fn dropped(&self, reason: DropReason, entries: usize, bytes: usize) {
        self.dropped_entries[reason as usize].fetch_add(entries as u64, Ordering::Relaxed);
        self.dropped_bytes[reason as usize].fetch_add(bytes as u64, Ordering::Relaxed);
    }
    pub fn retried(&self) {
        self.batch_retries.fetch_add(1, Ordering::Relaxed);
    }
    pub fn metadata_stripped(&self, entries: usize) {
        self.metadata_stripped
            .fetch_add(entries as u64, Ordering::Relaxed);
    }
    pub fn request(&self, status: Option<u16>, seconds: f64) {
        let key = status.map_or_else(|| "failed".to_string(), |s| s.to_string());
        let mut d = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        let h = d.entry(key).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }
    pub fn sent_entries(&self) -> u64 {
        self.sent_entries.load(Ordering::Relaxed)
    }
    pub fn dropped_entries(&self, reason: DropReason) -> u64 {
        self.dropped_entries[reason as usize].load(Ordering::Relaxed)
    }
    pub fn batch_retries(&self) -> u64 {
        self.batch_retries.load(Ordering::Relaxed)
    }
    pub fn metadata_stripped_entries(&self) -> u64 {
        self.metadata_stripped.load(Ordering::Relaxed)
    }
}

/// Adds every client's metrics to `set`.
pub fn collect(set: &mut MetricSet) {
    let r = registry().lock().unwrap_or_else(|e| e.into_inner());
    for (host, m) in r.iter() {
        let h: &str = host;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        set.counter(
            "promtail_encoded_bytes_total",
            "Number of bytes encoded and ready to send.",
            &[("host", h)],
            load(&m.encoded_bytes),
        );
        set.counter(
            "promtail_sent_bytes_total",
            "Number of bytes sent.",
            &[("host", h)],
            load(&m.sent_bytes),
        );
        set.counter(
            "promtail_sent_entries_total",
            "Number of log entries sent to the ingester.",
            &[("host", h)],
            load(&m.sent_entries),
        );
        set.counter(
            "promtail_batch_retries_total",
            "Number of times batches has had to be retried.",
            &[("host", h)],
            load(&m.batch_retries),
        );
        set.counter(
            "log_shipper_structured_metadata_stripped_entries_total",
            "Entries sent without their structured metadata because Loki refused structured metadata (limits_config.allow_structured_metadata off).",
            &[("host", h)],
            load(&m.metadata_stripped),
        );
        for (i, reason) in REASONS.iter().enumerate() {
            set.counter(
                "promtail_dropped_entries_total",
                "Number of log entries dropped because failed to be sent to the ingester after all retries.",
                &[("host", h), ("reason", reason)],
                load(&m.dropped_entries[i]),
            );
            set.counter(
                "promtail_dropped_bytes_total",
                "Number of bytes dropped because failed to be sent to the ingester after all retries.",
                &[("host", h), ("reason", reason)],
                load(&m.dropped_bytes[i]),
            );
        }
        let d = m.durations.lock().unwrap_or_else(|e| e.into_inner());
        for (code, hist) in d.iter() {
            set.push(
                "promtail_request_duration_seconds",
                "Duration of send requests.",
                MetricType::Histogram,
                &[("host", h), ("status_code", code)],
                Value::Histogram {
                    buckets: BUCKETS.iter().copied().zip(hist.counts).collect(),
                    sum: hist.sum,
                    count: hist.count,
                },
            );
        }
    }
}
