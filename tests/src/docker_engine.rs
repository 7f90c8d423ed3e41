//! The real Docker Engine of this machine, for tests of the Docker
//! collector and the Docker log sources. No registry is reachable, so the
//! tests build their own image: Debian's busybox-static (installed by
//! `make deps`) in an otherwise empty rootfs, `docker import`ed once and
//! kept under [`IMAGE`]. Containers and networks are named after the test
//! and this process, and removed when the [`Scene`] is dropped.

use std::process::{Command, Stdio};
use std::sync::Mutex;

pub const IMAGE: &str = "e2e-test-busybox:1";

/// Runs the docker CLI; its trimmed stdout, or an error with its stderr.
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

/// Whether the Engine answers; if not, says loudly that `test` is skipped.
pub fn engine_available(test: &str) -> bool {
    match docker(&["info", "--format", "{{.ServerVersion}}"]) {
        Ok(_) => true,
        Err(e) => {
            eprintln!(
                "\n!!!!! SKIPPING {test}: `docker info` failed, no Docker Engine to test against: {e}\n"
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
        .find(|p| std::path::Path::new(p).exists())
        .expect("busybox-static is not installed (make deps installs it)");
    let root = tempfile::tempdir().unwrap();
    for d in ["bin", "tmp", "proc", "sys", "dev", "etc", "www"] {
        std::fs::create_dir_all(root.path().join(d)).unwrap();
    }
    std::fs::copy(busybox, root.path().join("bin/busybox")).unwrap();
    let applets = Command::new(busybox).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&applets.stdout).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", root.path().join("bin").join(applet)).unwrap();
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
        .unwrap();
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
    /// Names start with `<kind>-<pid>-<test>` (e.g. `ne-test`, `ship-test`).
    pub fn new(kind: &str, test: &str) -> Scene {
        ensure_image();
        Scene {
            prefix: format!("{kind}-{}-{test}", std::process::id()),
            containers: Vec::new(),
            networks: Vec::new(),
        }
    }

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
        let id = docker(&args).unwrap();
        self.containers.push(name.clone());
        id
    }

    pub fn network(&mut self, short: &str) -> String {
        let name = self.name(short);
        docker(&["network", "create", &name]).unwrap();
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
