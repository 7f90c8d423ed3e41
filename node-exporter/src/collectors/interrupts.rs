//! PLACEHOLDER: to be written (the interrupts collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "interrupts",
    default_enabled: false,
    flags: no_flags,
    build: |_| anyhow::bail!("the interrupts collector is not written yet"),
};
