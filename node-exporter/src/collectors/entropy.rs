//! PLACEHOLDER: to be written (the entropy collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "entropy",
    default_enabled: true,
    flags: no_flags,
    build: |_| anyhow::bail!("the entropy collector is not written yet"),
};
