//! PLACEHOLDER: to be written (the udp_queues collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "udp_queues",
    default_enabled: true,
    flags: no_flags,
    build: |_| anyhow::bail!("the udp_queues collector is not written yet"),
};
