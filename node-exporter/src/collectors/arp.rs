//! PLACEHOLDER: to be written (the arp collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "arp",
    default_enabled: true,
    flags: no_flags,
    build: |_| anyhow::bail!("the arp collector is not written yet"),
};
