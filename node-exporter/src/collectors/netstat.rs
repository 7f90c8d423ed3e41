//! PLACEHOLDER: to be written (the netstat collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "netstat",
    default_enabled: true,
    flags: no_flags,
    build: |_| anyhow::bail!("the netstat collector is not written yet"),
};
