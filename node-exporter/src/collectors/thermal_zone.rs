//! PLACEHOLDER: to be written (the thermal_zone collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "thermal_zone",
    default_enabled: true,
    flags: no_flags,
    build: |_| anyhow::bail!("the thermal_zone collector is not written yet"),
};
