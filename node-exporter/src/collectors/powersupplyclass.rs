//! PLACEHOLDER: to be written (the powersupplyclass collector).

use super::{no_flags, CollectorSpec};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "powersupplyclass",
    default_enabled: true,
    flags: no_flags,
    build: |_| anyhow::bail!("the powersupplyclass collector is not written yet"),
};
