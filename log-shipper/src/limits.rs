//! `limits_config.readline_rate*`: one token bucket for every line the
//! shipper reads, as promtail applies it before the pipelines. Over the
//! rate a line is either dropped (counted, its position moves on) or
//! waited for, which slows the readers down (backpressure).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::LimitsConfig;
use crate::pipeline::DropCounter;

pub struct ReadlineLimit {
    bucket: Mutex<Bucket>,
    /// Drop lines over the rate (true) or wait for a token (false).
    pub drop: bool,
    pub dropped: DropCounter,
}

struct Bucket {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
}

impl ReadlineLimit {
    /// The shared limit, or `None` when `readline_rate_enabled` is off.
    pub fn from_config(c: &LimitsConfig) -> Option<Arc<ReadlineLimit>> {
        if !c.readline_rate_enabled || c.readline_rate <= 0.0 {
            return None;
        }
        let burst = (c.readline_burst as f64).max(1.0);
        Some(Arc::new(ReadlineLimit {
            bucket: Mutex::new(Bucket {
                tokens: burst,
                last: Instant::now(),
                rate: c.readline_rate,
                burst,
            }),
            drop: c.readline_rate_drop,
            dropped: DropCounter::for_reason("readline_rate_limited"),
        }))
    }

    /// Takes a token: `None` when the line may go now, else how long until
    /// the next token.
    pub fn take(&self) -> Option<Duration> {
        self.take_at(Instant::now())
    }

    fn take_at(&self, now: Instant) -> Option<Duration> {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.last = now;
        b.tokens = (b.tokens + elapsed * b.rate).min(b.burst);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - b.tokens) / b.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(rate: f64, burst: u64) -> Arc<ReadlineLimit> {
        ReadlineLimit::from_config(&LimitsConfig {
            readline_rate_enabled: true,
            readline_rate: rate,
            readline_burst: burst,
            ..LimitsConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn off_unless_enabled() {
        assert!(ReadlineLimit::from_config(&LimitsConfig::default()).is_none());
    }

    #[test]
    fn burst_then_rate() {
        let l = limit(10.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.take_at(t0), None);
        }
        let wait = l.take_at(t0).expect("the burst is spent");
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        // A tenth of a second later one token has come back.
        assert_eq!(l.take_at(t0 + Duration::from_millis(100)), None);
        assert!(l.take_at(t0 + Duration::from_millis(100)).is_some());
        // Idle time refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(l.take_at(later), None);
        }
        assert!(l.take_at(later).is_some());
    }
}
