//! PLACEHOLDER: to be written (the textfile collector).

use super::CollectorSpec;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "textfile",
    default_enabled: true,
    flags: || {
        vec![crate::cli::repeated_flag(
            "collector.textfile.directory",
            "",
            "Directory to read text files with metrics from. Repeatable.",
        )]
    },
    build: |_| anyhow::bail!("the textfile collector is not written yet"),
};
