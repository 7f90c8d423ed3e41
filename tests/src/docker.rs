//! Containers on the real Docker Engine of this machine, for the tests
//! that read container metrics (the exporter's docker collector tests, the
//! dashboards test). No registry is reachable, so the image is built here:
//! Debian's busybox-static (installed by `make deps`) in an otherwise empty
//! rootfs, `docker import`ed once and kept under [`IMAGE`]. Containers and
//! networks are named after the test process and removed when a
//! [`Scene`] is dropped.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The test image: busybox and its applets, `/www` for httpd.
pub const IMAGE: &str = "node-exporter-test-busybox:1";

/// Runs the `docker` CLI; its trimmed stdout, or an error with its stderr.
pub fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running docker: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Whether the Engine answers; if not, says loudly that `what` is skipped.
pub fn engine_available(what: &str) -> bool {
    match docker(&["info", "--format", "{{.ServerVersion}}"]) {
        Ok(_) => true,
        Err(e) => {
            eprintln!(
                "\n!!!!! SKIPPING {what}: `docker info` failed, no Docker Engine to test against: {e}\n"
            );
            false
        }
    }
}

/// Imports the busybox image once (per machine: it is kept by tag).
pub fn ensure_image() {
    static ONCE: Mutex<bool> = Mutex::new(false);
    let mut done = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    if *done || docker(&["image", "inspect", IMAGE]).is_ok() {
        *done = true;
        return;
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static is not installed (make deps installs it)");
    let root = tempfile::tempdir().expect("creating a temp dir");
    for d in ["bin", "tmp", "proc", "sys", "dev", "etc", "www"] {
        std::fs::create_dir_all(root.path().join(d)).expect("creating the rootfs");
    }
    std::fs::copy(busybox, root.path().join("bin/busybox")).expect("copying busybox");
    let applets = Command::new(busybox)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&applets.stdout).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", root.path().join("bin").join(applet))
                .expect("linking a busybox applet");
        }
    }
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C {} -c . | docker import - {IMAGE}",
            root.path().display()
        ))
        .stdout(Stdio::null())
        .status()
        .expect("running tar | docker import");
    assert!(
        status.success(),
        "docker import of the busybox rootfs failed"
    );
    *done = true;
}

/// Containers and networks of one test, removed on drop.
pub struct Scene {
    prefix: String,
    containers: Vec<String>,
    networks: Vec<String>,
}

impl Scene {
    /// A scene whose names start with `<owner>-<pid>-<test>`; imports the
    /// image first if this machine does not have it.
    pub fn new(owner: &str, test: &str) -> Scene {
        ensure_image();
        Scene {
            prefix: format!("{owner}-{}-{test}", std::process::id()),
            containers: Vec::new(),
            networks: Vec::new(),
        }
    }

    /// The full name of the scene's container or network `short`.
    pub fn name(&self, short: &str) -> String {
        format!("{}-{short}", self.prefix)
    }

    /// `docker run -d` with `opts`, running `script` under busybox sh;
    /// returns the container id.
    pub fn run(&mut self, short: &str, opts: &[&str], script: &str) -> String {
        let name = self.name(short);
        let mut args = vec!["run", "-d", "--name", &name];
        args.extend_from_slice(opts);
        args.extend_from_slice(&[IMAGE, "sh", "-c", script]);
        // Removed on drop even if `run` fails half way (created, not started).
        self.containers.push(name.clone());
        docker(&args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `docker network create`; returns its name.
    pub fn network(&mut self, short: &str) -> String {
        let name = self.name(short);
        docker(&["network", "create", &name]).unwrap_or_else(|e| panic!("{e}"));
        self.networks.push(name.clone());
        name
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker(&["rm", "-f", c]);
        }
        for n in &self.networks {
            let _ = docker(&["network", "rm", n]);
        }
    }
}
