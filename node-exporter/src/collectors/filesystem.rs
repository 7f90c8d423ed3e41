//! PLACEHOLDER: to be written (the filesystem collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "filesystem",
    default_enabled: true,
    flags: no_flags,
    build: |_| anyhow::bail!("the filesystem collector is not written yet"),
};
