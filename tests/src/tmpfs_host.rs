//! A "host" whose disk a test can fill: our exporter runs in its own mount
//! and PID namespaces (`unshare`), where a small tmpfs is mounted at a
//! temp directory, and reports only that filesystem. Nothing is mounted in
//! the machine's own namespace, so other tests and programs never see the
//! disk, and it vanishes with the exporter even if the test is killed
//! (`--kill-child`, and the namespace dies with its last process). As root
//! that is all; as another user, a user namespace (`--map-root-user`) lets
//! it mount the tmpfs, where the kernel allows unprivileged user namespaces.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::exporters::our_binary;
use crate::process::{wait_until, Process};

/// Size of the tmpfs, in bytes.
pub const DISK_SIZE: u64 = 4 * 1024 * 1024;

pub struct TmpfsHost {
    /// `127.0.0.1:<port>`: also the `instance` Prometheus gives it.
    pub addr: String,
    /// Where the tmpfs is mounted (inside the namespace).
    pub mountpoint: PathBuf,
    process: Process,
}

impl TmpfsHost {
    /// Starts the exporter on `addr` with a fresh, empty tmpfs at
    /// `mountpoint` (an existing empty directory).
    pub fn start(addr: &str, mountpoint: &Path) -> TmpfsHost {
        let mut cmd = Command::new("unshare");
        if !running_as_root() {
            cmd.args(["--user", "--map-root-user"]);
        }
        cmd.args([
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--propagation",
            "private",
            "sh",
            "-c",
            // The exporter reads /proc/1/mountinfo: exec makes it PID 1 of
            // the namespace, so that is the namespace's mount table.
            r#"mount -t tmpfs -o "size=$1" e2e-disk "$2" && exec "$3" "--web.listen-address=$4" \
               --collector.disable-defaults --collector.filesystem \
               "--collector.filesystem.mount-points-include=^$2\$""#,
            "sh",
        ])
        .arg(DISK_SIZE.to_string())
        .arg(mountpoint)
        .arg(our_binary())
        .arg(addr);
        let dir = tempfile::tempdir().expect("creating a temp dir");
        let mut process = Process::spawn("node-exporter-in-namespace", cmd, dir);
        let up = wait_until(
            &format!("our exporter with a tmpfs listening on {addr}"),
            Duration::from_secs(20),
            || {
                if let Some(status) = process.exit_status() {
                    return Err(format!("exited ({status})"));
                }
                Ok(std::net::TcpStream::connect(addr).is_ok())
            },
        );
        if let Err(e) = up {
            panic!("{e}\n{}", process.log_tail(30));
        }
        TmpfsHost {
            addr: addr.to_string(),
            mountpoint: mountpoint.to_path_buf(),
            process,
        }
    }

    /// PID (in our namespace) of the exporter, the child of `unshare`.
    fn exporter_pid(&self) -> Result<u32, String> {
        let unshare = self.process.id();
        let path = format!("/proc/{unshare}/task/{unshare}/children");
        let children = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("{path}: unshare has no child"))
    }

    /// Writes a file of `bytes` on the tmpfs, through the exporter's view
    /// of the filesystem (`/proc/<pid>/root`).
    pub fn write_file(&self, name: &str, bytes: u64) -> Result<(), String> {
        let pid = self.exporter_pid()?;
        let rel = self
            .mountpoint
            .strip_prefix("/")
            .unwrap_or(&self.mountpoint);
        let path = PathBuf::from(format!("/proc/{pid}/root"))
            .join(rel)
            .join(name);
        std::fs::write(&path, vec![0x55u8; bytes as usize])
            .map_err(|e| format!("writing {}: {e}", path.display()))
    }

    pub fn log_tail(&self, n: usize) -> String {
        self.process.log_tail(n)
    }
}

/// Effective uid 0, from /proc/self/status (`Uid: real effective ...`).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}
