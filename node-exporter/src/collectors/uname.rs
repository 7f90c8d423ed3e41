//! PLACEHOLDER: to be written (the uname collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "uname",
    default_enabled: true,
    flags: no_flags,
    build: |_| anyhow::bail!("the uname collector is not written yet"),
};
