//! PLACEHOLDER: to be written (the os collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "os",
    default_enabled: true,
    flags: no_flags,
    build: |_| anyhow::bail!("the os collector is not written yet"),
};
