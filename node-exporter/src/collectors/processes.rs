//! PLACEHOLDER: to be written (the processes collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "processes",
    default_enabled: false,
    flags: no_flags,
    build: |_| anyhow::bail!("the processes collector is not written yet"),
};
