//! `sampling`: keeps a random `rate` share of the entries (0.1 keeps about
//! one in ten); the rest are dropped and counted under
//! `drop_counter_reason` (default `sampling_stage`).

use serde::{Deserialize, Serialize};

use super::StageSpec;
use crate::entry::Entry;
use crate::pipeline::{DropCounter, Extracted, Flow, Stage};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingConfig {
    pub rate: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_counter_reason: Option<String>,
}

pub struct SamplingStage {
    rate: f64,
    rng: fastrand::Rng,
    counter: DropCounter,
}

impl StageSpec for SamplingStage {
    const NAME: &'static str = "sampling";
    const EXAMPLE: &'static str = "{rate: 0.5}";
    type Config = SamplingConfig;

    fn new(c: &SamplingConfig) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&c.rate) {
            return Err(format!("rate must be between 0 and 1, not {}", c.rate));
        }
        let reason = c
            .drop_counter_reason
            .as_deref()
            .filter(|r| !r.is_empty())
            .unwrap_or("sampling_stage");
        Ok(SamplingStage {
            rate: c.rate,
            rng: fastrand::Rng::new(),
            counter: DropCounter::for_reason(reason),
        })
    }
}

impl Stage for SamplingStage {
    fn process(&mut self, _entry: &mut Entry, _x: &mut Extracted) -> Flow {
        if self.rate >= 1.0 || self.rng.f64() < self.rate {
            return Flow::Keep;
        }
        self.counter.inc();
        Flow::Drop
    }
}

#[cfg(test)]
mod tests {
    use crate::pipeline::stages::testutil::*;
    use crate::pipeline::DropCounter;
    use crate::relabel::labels;

    #[test]
    fn keeps_about_rate_and_counts_the_rest() {
        let mut p =
            pipeline("- sampling:\n    rate: 0.25\n    drop_counter_reason: sampled_out_test\n");
        let before = DropCounter::for_reason("sampled_out_test").get();
        let kept = (0..4000)
            .filter(|_| run(&mut p, labels([]), "x").is_some())
            .count();
        assert!(
            (800..1200).contains(&kept),
            "kept {kept} of 4000 at rate 0.25"
        );
        assert_eq!(
            DropCounter::for_reason("sampled_out_test").get() - before,
            4000 - kept as u64
        );
        assert!(build_err("- sampling:\n    rate: 2\n").contains("between 0 and 1"));
    }
}
