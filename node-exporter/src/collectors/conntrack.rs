//! PLACEHOLDER: to be written (the conntrack collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "conntrack",
    default_enabled: true,
    flags: no_flags,
    build: |_| anyhow::bail!("the conntrack collector is not written yet"),
};
