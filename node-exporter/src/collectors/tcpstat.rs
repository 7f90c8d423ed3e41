//! PLACEHOLDER: to be written (the tcpstat collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "tcpstat",
    default_enabled: false,
    flags: no_flags,
    build: |_| anyhow::bail!("the tcpstat collector is not written yet"),
};
