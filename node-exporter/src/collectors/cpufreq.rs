//! PLACEHOLDER: to be written (the cpufreq collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "cpufreq",
    default_enabled: true,
    flags: no_flags,
    build: |_| anyhow::bail!("the cpufreq collector is not written yet"),
};
