//! PLACEHOLDER: to be written (the softnet collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "softnet",
    default_enabled: true,
    flags: no_flags,
    build: |_| anyhow::bail!("the softnet collector is not written yet"),
};
