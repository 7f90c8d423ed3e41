//! `node_cgroups_cgroups` and `node_cgroups_enabled` per cgroup v1
//! subsystem of /proc/cgroups, as node_exporter (whose two help texts are
//! the same, kept so). Every line but `#` comments must have at least the
//! four numbers' columns.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::read_kept;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "cgroups",
    default_enabled: false,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Cgroups {
            paths: f.paths.clone(),
        }))
    },
};

struct Cgroups {
    paths: Paths,
}

/// (subsystem, number of cgroups, enabled) per line of /proc/cgroups.
pub fn parse_cgroups(text: &str, path: &Path) -> anyhow::Result<Vec<(String, i64, i64)>> {
    let mut out: Vec<(String, i64, i64)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| anyhow!("parsing {} line {}: {what}", path.display(), n + 1);
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            return Err(bad(&format!("{line:?} has fewer than 4 fields")));
        }
        let num = |s: &str| {
            s.parse::<i64>()
                .map_err(|_| bad(&format!("{s:?} is not a number")))
        };
        num(f[1])?;
        let (cgroups, enabled) = (num(f[2])?, num(f[3])?);
        // Two lines of one subsystem would be one series twice.
        if out.iter().any(|(s, _, _)| s == f[0]) {
            return Err(bad(&format!("subsystem {:?} listed twice", f[0])));
        }
        out.push((f[0].to_string(), cgroups, enabled));
    }
    Ok(out)
}

impl Collector for Cgroups {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("cgroups");
        for (subsys, cgroups, enabled) in parse_cgroups(&read_kept(&path)?, &path)? {
            let labels = [("subsys_name", subsys.as_str())];
            out.gauge(
                "node_cgroups_cgroups",
                "Current cgroup number of the subsystem.",
                &labels,
                cgroups as f64,
            );
            out.gauge(
                "node_cgroups_enabled",
                "Current cgroup number of the subsystem.",
                &labels,
                enabled as f64,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{collect, write};

    #[test]
    fn subsystems_and_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "cgroups",
            "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t5\t47\t1\nrdma\t4\t1\t0\n",
        );
        let c = Cgroups {
            paths: Paths {
                procfs: dir.path().into(),
                ..Paths::default()
            },
        };
        let text = collect(&c).unwrap();
        assert!(
            text.contains("node_cgroups_cgroups{subsys_name=\"cpuset\"} 47\n"),
            "{text}"
        );
        assert!(
            text.contains("node_cgroups_enabled{subsys_name=\"rdma\"} 0\n"),
            "{text}"
        );
        let p = Path::new("/proc/cgroups");
        for bad in [
            "cpuset\t5\t47\n",
            "cpuset 5 x 1\n",
            "\n",
            "cpu 1 1 1\ncpu 2 2 2\n",
        ] {
            let err = parse_cgroups(bad, p).unwrap_err().to_string();
            assert!(err.contains("/proc/cgroups line"), "{bad:?}: {err}");
        }
    }
}
