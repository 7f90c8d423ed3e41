//! PLACEHOLDER: to be written (the vmstat collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "vmstat",
    default_enabled: true,
    flags: no_flags,
    build: |_| anyhow::bail!("the vmstat collector is not written yet"),
};
