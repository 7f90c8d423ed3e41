//! PLACEHOLDER: to be written (the schedstat collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "schedstat",
    default_enabled: true,
    flags: no_flags,
    build: |_| anyhow::bail!("the schedstat collector is not written yet"),
};
