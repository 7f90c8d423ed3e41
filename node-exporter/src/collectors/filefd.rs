//! PLACEHOLDER: to be written (the filefd collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "filefd",
    default_enabled: true,
    flags: no_flags,
    build: |_| anyhow::bail!("the filefd collector is not written yet"),
};
