//! PLACEHOLDER: to be written (the ksmd collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "ksmd",
    default_enabled: false,
    flags: no_flags,
    build: |_| anyhow::bail!("the ksmd collector is not written yet"),
};
