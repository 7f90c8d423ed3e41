//! The log-shipper binary of this workspace, for the tests that run it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{find_program, wait_until, workspace_root, Process};

/// `$LOG_SHIPPER_BIN`, else `<workspace>/target/debug/log-shipper`.
pub fn binary() -> PathBuf {
    find_program(
        "LOG_SHIPPER_BIN",
        &[workspace_root().join("target/debug/log-shipper")],
        "build it with `cargo build -p log-shipper` (`make test` does)",
    )
}

/// Starts the shipper with `-config.file=<config>` and `args`, and waits
/// until it answers `/ready` on `port`.
pub fn start(config: &Path, port: u16, args: &[&str], env: &[(&str, &str)]) -> Process {
    let mut cmd = Command::new(binary());
    cmd.arg(format!("-config.file={}", config.display()))
        .args(args)
        .envs(env.iter().copied());
    let p = Process::spawn("log-shipper", cmd, tempfile::tempdir().unwrap());
    wait_until(
        "the shipper answers /ready",
        Duration::from_secs(20),
        || {
            Ok(ureq::get(&format!("http://127.0.0.1:{port}/ready"))
                .call()
                .is_ok())
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", p.log_tail(30)));
    p
}

/// SIGTERM, then waits for a clean exit (positions saved).
pub fn stop(mut p: Process) {
    let status = Command::new("kill")
        .args(["-TERM", &p.id().to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -TERM failed");
    wait_until("the shipper exits", Duration::from_secs(20), || {
        Ok(p.exit_status().is_some())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", p.log_tail(30)));
    let status = p.exit_status().expect("exited");
    assert!(status.success(), "{status}\n{}", p.log_tail(30));
}
