//! Starts the real `node-exporter` binary for integration tests and fetches
//! from it.

#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Running {
    pub child: Child,
    pub addr: String,
    pub stderr_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        match ureq::get(&self.url(path)).call() {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Starts the exporter with `args` on a free loopback port and waits until
/// it answers.
pub fn start(args: &[String]) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let stderr_path = dir.path().join("stderr.log");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_node-exporter"))
        .arg(format!("--web.listen-address={addr}"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("starting node-exporter");
    let mut running = Running {
        child,
        addr,
        stderr_path,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = running.child.try_wait() {
            panic!(
                "node-exporter exited early ({status}): {}",
                running.stderr()
            );
        }
        if std::net::TcpStream::connect(&running.addr).is_ok() {
            return running;
        }
        if Instant::now() > deadline {
            panic!("node-exporter did not listen: {}", running.stderr());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the binary to completion (for startup errors).
pub fn run_to_exit(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_node-exporter"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), err)
}

/// Whether `GOLDEN_ONLY` (if set) selects this collector.
pub fn selected(name: &str) -> bool {
    std::env::var("GOLDEN_ONLY")
        .map(|o| o.split(',').any(|n| n == name))
        .unwrap_or(true)
}

/// The arguments that point every collector at a fixture tree.
pub fn fixture_args(root: &Path) -> Vec<String> {
    let mut args = vec![
        format!("--path.procfs={}", root.join("proc").display()),
        format!("--path.sysfs={}", root.join("sys").display()),
        format!("--path.rootfs={}", root.join("rootfs").display()),
        format!("--path.udev.data={}", root.join("udev").display()),
        format!(
            "--collector.textfile.directory={}",
            root.join("textfile").display()
        ),
        "--web.disable-exporter-metrics".to_string(),
    ];
    // GOLDEN_ONLY=cpu,meminfo runs just those collectors.
    if std::env::var("GOLDEN_ONLY").is_ok() {
        args.push("--collector.disable-defaults".to_string());
    }
    for spec in node_exporter::collectors::REGISTRY {
        if selected(spec.name) {
            args.push(format!("--collector.{}", spec.name));
        }
    }
    args
}
