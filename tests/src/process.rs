//! Child processes that die with the test: each gets its own temporary
//! directory (config, data, log) and is killed when dropped, so a failing
//! assertion never leaves a Prometheus or an exporter behind.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
    /// Holds the log (and the program's config and data); removed after
    /// the process is killed.
    _dir: tempfile::TempDir,
}

impl Process {
    /// Starts `cmd` with stdout and stderr going to `<dir>/<name>.log`.
    pub fn spawn(name: &str, mut cmd: Command, dir: tempfile::TempDir) -> Process {
        let log = dir.path().join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("creating a log file in a temp dir");
        let err = out.try_clone().expect("cloning a file handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({cmd:?}): {e}"));
        Process {
            name: name.to_string(),
            child,
            log,
            _dir: dir,
        }
    }

    /// The OS process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `Some` once the process has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let start = lines.len().saturating_sub(n);
        format!(
            "--- last lines of {} ({}) ---\n{}",
            self.name,
            self.log.display(),
            lines[start..].join("\n")
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding an ephemeral loopback port")
        .port()
}

/// Polls `check` every 100 ms until it returns `Ok(true)`; on timeout the
/// error names `what` and the last reason `check` gave.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<bool, String>,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check() {
            Ok(true) => return Ok(()),
            Ok(false) => "condition not met yet".to_string(),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(format!("{what}: not within {timeout:?} (last: {last})"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The Cargo workspace this crate belongs to.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives inside the workspace")
        .to_path_buf()
}

/// `$var` if set, else the first of `candidates` that exists, else a panic
/// that says how to get it.
pub fn find_program(var: &str, candidates: &[PathBuf], how_to_get_it: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "${var} points at {}, which is not a file: {how_to_get_it}",
            p.display()
        );
        return p;
    }
    if let Some(p) = candidates.iter().find(|p| p.is_file()) {
        return p.clone();
    }
    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    panic!(
        "program not found (looked at ${var}, {}): {how_to_get_it}",
        looked.join(", ")
    );
}

/// Where `name` would be found on `$PATH`, plus a Debian default.
pub fn on_path(name: &str, debian_default: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect())
        .unwrap_or_default();
    v.push(PathBuf::from(debian_default));
    v
}
