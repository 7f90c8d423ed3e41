//! The web config's `rate_limit` (`interval`, `burst`): a token bucket as
//! Go's `rate.NewLimiter(rate.Every(interval), burst)` that exporter-toolkit
//! uses. The bucket starts full with `burst` tokens and gains one per
//! `interval`; a request finding it empty is answered 429.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub interval: Duration,
    pub burst: u32,
}

#[derive(Debug)]
pub struct RateLimiter {
    pub limit: RateLimit,
    /// Tokens left and when they were counted.
    bucket: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> RateLimiter {
        RateLimiter {
            limit,
            bucket: Mutex::new((f64::from(limit.burst), Instant::now())),
        }
    }

    /// Takes a token if there is one.
    pub fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> bool {
        let Ok(mut bucket) = self.bucket.lock() else {
            return true;
        };
        let (tokens, counted) = *bucket;
        let burst = f64::from(self.limit.burst);
        // rate.Every(0) is an infinite rate: never limited.
        let gained = if self.limit.interval.is_zero() {
            f64::INFINITY
        } else {
            now.saturating_duration_since(counted).as_secs_f64() / self.limit.interval.as_secs_f64()
        };
        let tokens = (tokens + gained).min(burst);
        if tokens >= 1.0 {
            *bucket = (tokens - 1.0, now);
            true
        } else {
            *bucket = (tokens, now);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_per_interval() {
        let l = RateLimiter::new(RateLimit {
            interval: Duration::from_secs(1),
            burst: 2,
        });
        let t0 = *l.bucket.lock().unwrap();
        let at = |ms: u64| t0.1 + Duration::from_millis(ms);
        assert!(l.allow_at(at(0)));
        assert!(l.allow_at(at(0)));
        assert!(!l.allow_at(at(10)), "third request within the burst window");
        assert!(!l.allow_at(at(900)));
        assert!(l.allow_at(at(1_000)), "one token back after an interval");
        assert!(!l.allow_at(at(1_010)));
        // A long pause refills only up to the burst.
        assert!(l.allow_at(at(60_000)));
        assert!(l.allow_at(at(60_000)));
        assert!(!l.allow_at(at(60_000)));
    }

    #[test]
    fn zero_interval_never_limits() {
        let l = RateLimiter::new(RateLimit {
            interval: Duration::ZERO,
            burst: 1,
        });
        let now = Instant::now();
        assert!((0..100).all(|_| l.allow_at(now)));
    }
}
