//! The log-shipper binary of this workspace, for the tests that run it.

use std::path::PathBuf;

use crate::process::{find_program, workspace_root};

/// `$LOG_SHIPPER_BIN`, else `<workspace>/target/debug/log-shipper`.
pub fn binary() -> PathBuf {
    find_program(
        "LOG_SHIPPER_BIN",
        &[workspace_root().join("target/debug/log-shipper")],
        "build it with `cargo build -p log-shipper` (`make test` does)",
    )
}
