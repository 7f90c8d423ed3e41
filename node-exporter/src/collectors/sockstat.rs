//! PLACEHOLDER: to be written (the sockstat collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "sockstat",
    default_enabled: true,
    flags: no_flags,
    build: |_| anyhow::bail!("the sockstat collector is not written yet"),
};
