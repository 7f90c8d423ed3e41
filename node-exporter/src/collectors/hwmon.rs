//! PLACEHOLDER: to be written (the hwmon collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "hwmon",
    default_enabled: true,
    flags: no_flags,
    build: |_| anyhow::bail!("the hwmon collector is not written yet"),
};
