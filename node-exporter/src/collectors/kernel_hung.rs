//! PLACEHOLDER: to be written (the kernel_hung collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "kernel_hung",
    default_enabled: false,
    flags: no_flags,
    build: |_| anyhow::bail!("the kernel_hung collector is not written yet"),
};
