//! `limit`: a token bucket (`rate` entries per second, `burst` at once),
//! for the whole job or per value of the label `by_label_name` (at most
//! `max_distinct_labels` buckets; past that they start over). Over the
//! limit an entry is dropped and counted (reason `ratelimit`) when `drop`
//! is true, else the pipeline waits for a token, which slows the tailers
//! down instead of losing lines (promtail's default).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::StageSpec;
use crate::entry::Entry;
use crate::pipeline::{DropCounter, Extracted, Flow, Stage};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    pub rate: f64,
    pub burst: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drop: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_label_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_distinct_labels: Option<usize>,
}

/// promtail raises smaller values to this (a bucket is a few bytes).
const MIN_MAX_DISTINCT_LABELS: usize = 10_000;

/// golang.org/x/time/rate's limiter: starts full; a wait reserves a token
/// ahead, so waiters queue in order.
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(burst: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
    }

    fn allow(&mut self, rate: f64, burst: f64, now: Instant) -> bool {
        self.refill(rate, burst, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes a token, possibly in advance; returns how long to wait for it.
    fn reserve(&mut self, rate: f64, burst: f64, now: Instant) -> Duration {
        self.refill(rate, burst, now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 || rate <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        }
    }
}

pub struct LimitStage {
    rate: f64,
    burst: f64,
    drop: bool,
    by_label: Option<String>,
    max_distinct: usize,
    global: Bucket,
    per_value: HashMap<String, Bucket>,
    counter: DropCounter,
}

impl StageSpec for LimitStage {
    const NAME: &'static str = "limit";
    const EXAMPLE: &'static str = "{rate: 10, burst: 10}";
    type Config = LimitConfig;

    fn new(c: &LimitConfig) -> Result<Self, String> {
        if !(c.rate > 0.0 && c.rate.is_finite()) {
            return Err(format!("rate must be greater than 0, not {}", c.rate));
        }
        if c.burst == 0 {
            return Err("burst must be greater than 0".into());
        }
        let by_label = c.by_label_name.clone().filter(|l| !l.is_empty());
        let max_distinct = c
            .max_distinct_labels
            .unwrap_or(MIN_MAX_DISTINCT_LABELS)
            .max(MIN_MAX_DISTINCT_LABELS);
        Ok(LimitStage {
            rate: c.rate,
            burst: c.burst as f64,
            drop: c.drop,
            by_label,
            max_distinct,
            global: Bucket::new(c.burst as f64, Instant::now()),
            per_value: HashMap::new(),
            counter: DropCounter::for_reason("ratelimit"),
        })
    }
}

/// Blocks this pipeline task; on tokio's multi-threaded runtime through
/// `block_in_place` so the other tasks keep running.
fn wait(d: Duration) {
    if d.is_zero() {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| std::thread::sleep(d))
        }
        _ => std::thread::sleep(d),
    }
}

impl Stage for LimitStage {
    fn process(&mut self, entry: &mut Entry, _x: &mut Extracted) -> Flow {
        let now = Instant::now();
        let bucket = match &self.by_label {
            None => &mut self.global,
            Some(l) => {
                // Entries without the label are not limited.
                let Some(v) = entry.labels.get(l) else {
                    return Flow::Keep;
                };
                if !self.per_value.contains_key(v) && self.per_value.len() >= self.max_distinct {
                    self.per_value.clear();
                }
                self.per_value
                    .entry(v.clone())
                    .or_insert_with(|| Bucket::new(self.burst, now))
            }
        };
        if self.drop {
            if bucket.allow(self.rate, self.burst, now) {
                return Flow::Keep;
            }
            self.counter.inc();
            return Flow::Drop;
        }
        wait(bucket.reserve(self.rate, self.burst, now));
        Flow::Keep
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::Bucket;
    use crate::pipeline::stages::testutil::*;
    use crate::relabel::labels;

    #[test]
    fn drop_mode_keeps_the_burst_then_the_rate() {
        let mut p = pipeline("- limit:\n    rate: 10\n    burst: 5\n    drop: true\n");
        let kept = (0..50)
            .filter(|_| run(&mut p, labels([]), "x").is_some())
            .count();
        assert!((5..=6).contains(&kept), "kept {kept}");
    }

    #[test]
    fn by_label_name_limits_each_value_apart() {
        let mut p = pipeline(
            "- limit:\n    rate: 1\n    burst: 2\n    drop: true\n    by_label_name: app\n",
        );
        let mut kept = |app: Option<&str>| {
            (0..10)
                .filter(|_| {
                    let l = match app {
                        Some(a) => labels([("app", a)]),
                        None => labels([]),
                    };
                    run(&mut p, l, "x").is_some()
                })
                .count()
        };
        assert_eq!(kept(Some("a")), 2);
        assert_eq!(kept(Some("b")), 2);
        assert_eq!(kept(None), 10, "no label, no limit");
    }

    #[test]
    fn wait_mode_slows_down_and_keeps_everything() {
        let mut p = pipeline("- limit:\n    rate: 50\n    burst: 1\n");
        let start = Instant::now();
        let kept = (0..6)
            .filter(|_| run(&mut p, labels([]), "x").is_some())
            .count();
        assert_eq!(kept, 6);
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(90), "took {took:?}");
    }

    #[test]
    fn bucket_refills_at_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(2.0, t0);
        assert!(b.allow(1.0, 2.0, t0));
        assert!(b.allow(1.0, 2.0, t0));
        assert!(!b.allow(1.0, 2.0, t0));
        assert!(b.allow(1.0, 2.0, t0 + Duration::from_secs(1)));
        assert_eq!(
            b.reserve(1.0, 2.0, t0 + Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert!(build_err("- limit:\n    rate: 0\n    burst: 1\n").contains("rate"));
    }
}
