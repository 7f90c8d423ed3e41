//! PLACEHOLDER: to be written (the stat collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "stat",
    default_enabled: true,
    flags: no_flags,
    build: |_| anyhow::bail!("the stat collector is not written yet"),
};
