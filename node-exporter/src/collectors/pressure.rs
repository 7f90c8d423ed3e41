//! PLACEHOLDER: to be written (the pressure collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "pressure",
    default_enabled: true,
    flags: no_flags,
    build: |_| anyhow::bail!("the pressure collector is not written yet"),
};
