//! Helpers for the collectors' unit tests.

use std::path::Path;

use exporter_toolkit::exposition::{encode, Format, MetricSet};

use crate::collector::{Collector, Paths};

/// Writes `text` to `root/rel`, creating directories.
pub fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("a file path has a parent"))
        .expect("creating fixture dirs");
    std::fs::write(p, text).expect("writing fixture file");
}

/// The text exposition of a set, as a scrape would show it.
pub fn render(set: MetricSet) -> String {
    encode(&set.finish().expect("consistent metric set"), Format::Text)
}

/// The default paths with /sys at `root`.
pub fn sysfs_at(root: &Path) -> Paths {
    Paths {
        sysfs: root.into(),
        ..Paths::default()
    }
}

/// One update of `c`, rendered as a scrape would show it.
pub fn collect(c: &dyn Collector) -> anyhow::Result<String> {
    let mut set = MetricSet::new();
    // As the scraper: no devices is a success with nothing.
    match c.update(&mut set) {
        Err(e) if e.downcast_ref::<crate::collector::NoDevices>().is_none() => return Err(e),
        _ => {}
    }
    Ok(render(set))
}

/// A shell in a mount namespace of its own (`unshare --mount`), run one step
/// per line the test sends: `script` reads a line before each step and
/// echoes a word after it. `proc_dir` gets a `1` and a `self` pointing at
/// the shell's /proc entry, so that a collector with
/// `--path.procfs=proc_dir` reads that namespace's `1/mountinfo`, a real
/// procfs file, as if it ran in that namespace itself. Needs root, or
/// unprivileged user namespaces.
pub struct MountNamespace {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl MountNamespace {
    /// Starts `script` (`$1` is `arg`); it must `echo up` first.
    pub fn start(script: &str, arg: &Path, proc_dir: &Path) -> MountNamespace {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new("unshare");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            cmd.args(["--user", "--map-root-user"]);
        }
        let mut child = cmd
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(arg)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("running unshare");
        let stdin = child.stdin.take().expect("piped stdin");
        let lines = std::io::BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut ns = MountNamespace {
            child,
            stdin,
            lines,
        };
        ns.expect("up");
        std::fs::create_dir_all(proc_dir).expect("creating the fake procfs");
        for name in ["1", "self"] {
            std::os::unix::fs::symlink(format!("/proc/{}", ns.child.id()), proc_dir.join(name))
                .expect("linking into the fake procfs");
        }
        ns
    }

    fn expect(&mut self, want: &str) {
        let line = self.lines.next().and_then(Result::ok);
        assert_eq!(
            line.as_deref(),
            Some(want),
            "unshare --mount (needs root or user namespaces)"
        );
    }

    /// Sends a line and waits for the step's word.
    pub fn step(&mut self, want: &str) {
        use std::io::Write;
        writeln!(self.stdin, "{want}").expect("writing to the shell");
        self.expect(want);
    }
}

impl Drop for MountNamespace {
    fn drop(&mut self) {
        drop(self.child.kill());
        drop(self.child.wait());
    }
}
