//! PLACEHOLDER: to be written (the netdev collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "netdev",
    default_enabled: true,
    flags: no_flags,
    build: |_| anyhow::bail!("the netdev collector is not written yet"),
};
