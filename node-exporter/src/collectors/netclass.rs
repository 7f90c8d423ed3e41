//! PLACEHOLDER: to be written (the netclass collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "netclass",
    default_enabled: true,
    flags: no_flags,
    build: |_| anyhow::bail!("the netclass collector is not written yet"),
};
