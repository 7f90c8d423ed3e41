//! PLACEHOLDER: to be written (the timex collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "timex",
    default_enabled: true,
    flags: no_flags,
    build: |_| anyhow::bail!("the timex collector is not written yet"),
};
