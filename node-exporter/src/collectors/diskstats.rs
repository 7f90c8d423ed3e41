//! PLACEHOLDER: to be written (the diskstats collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "diskstats",
    default_enabled: true,
    flags: no_flags,
    build: |_| anyhow::bail!("the diskstats collector is not written yet"),
};
