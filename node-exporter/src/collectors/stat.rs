//! Kernel counters from /proc/stat: `node_intr_total`,
//! `node_context_switches_total`, `node_forks_total`,
//! `node_boot_time_seconds`, `node_procs_running`, `node_procs_blocked`, and
//! with `--collector.stat.softirq` `node_softirqs_total{vector}`. The per-CPU
//! lines belong to the cpu collector and are not looked at here.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::CollectorSpec;
use crate::cli::bool_flag;
use crate::collector::{Collector, Paths};
use crate::helpers::read_kept;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "stat",
    default_enabled: true,
    flags: || {
        bool_flag(
            "collector.stat.softirq",
            false,
            "Export softirq calls per vector",
        )
        .to_vec()
    },
    build: |f| {
        Ok(Box::new(Stat {
            paths: f.paths.clone(),
            softirq: f.bool("collector.stat.softirq", false),
        }))
    },
};

/// The softirq vectors in the order the kernel prints them (`NR_SOFTIRQS`).
pub const SOFTIRQ_VECTORS: [&str; 10] = [
    "hi",
    "timer",
    "net_tx",
    "net_rx",
    "block",
    "block_iopoll",
    "tasklet",
    "sched",
    "hrtimer",
    "rcu",
];

/// The system-wide lines of /proc/stat.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct KernelStat {
    pub intr_total: u64,
    pub context_switches: u64,
    pub forks: u64,
    pub boot_time: u64,
    pub procs_running: u64,
    pub procs_blocked: u64,
    /// Calls per vector, in [`SOFTIRQ_VECTORS`] order; `None` if the kernel
    /// printed no `softirq` line.
    pub softirq: Option<[u64; 10]>,
}

fn parse_u64(value: &str, path: &Path, line: usize, field: &str) -> anyhow::Result<u64> {
    value.parse::<u64>().map_err(|_| {
        anyhow!(
            "parsing {} line {line}: field {field}: {value:?} is not an unsigned integer",
            path.display()
        )
    })
}

/// Parses /proc/stat. Every line node_exporter reports must be there: a
/// file without them is truncated or not /proc/stat at all.
pub fn parse_stat(text: &str, path: &Path) -> anyhow::Result<KernelStat> {
    let mut stat = KernelStat::default();
    // intr, ctxt, processes, btime, procs_running, procs_blocked
    let mut seen = [false; 6];
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let mut fields = line.split_whitespace();
        let Some(key) = fields.next() else { continue };
        let (slot, target) = match key {
            "intr" => (0, &mut stat.intr_total),
            "ctxt" => (1, &mut stat.context_switches),
            "processes" => (2, &mut stat.forks),
            "btime" => (3, &mut stat.boot_time),
            "procs_running" => (4, &mut stat.procs_running),
            "procs_blocked" => (5, &mut stat.procs_blocked),
            "softirq" => {
                let mut vectors = [0u64; 10];
                // The first number is the total over all vectors.
                let _total = fields
                    .next()
                    .map(|v| parse_u64(v, path, lineno, "softirq total"))
                    .transpose()?;
                for (n, slot) in vectors.iter_mut().enumerate() {
                    let v = fields.next().ok_or_else(|| {
                        anyhow!(
                            "parsing {} line {lineno}: softirq has {n} vectors, expected {}",
                            path.display(),
                            SOFTIRQ_VECTORS.len()
                        )
                    })?;
                    *slot = parse_u64(v, path, lineno, SOFTIRQ_VECTORS[n])?;
                }
                stat.softirq = Some(vectors);
                continue;
            }
            _ => continue,
        };
        let value = fields.next().ok_or_else(|| {
            anyhow!(
                "parsing {} line {lineno}: {key} has no value",
                path.display()
            )
        })?;
        *target = parse_u64(value, path, lineno, key)?;
        seen[slot] = true;
    }
    let names = [
        "intr",
        "ctxt",
        "processes",
        "btime",
        "procs_running",
        "procs_blocked",
    ];
    if let Some((name, _)) = names.iter().zip(seen).find(|(_, s)| !s) {
        return Err(anyhow!("parsing {}: no {name} line", path.display()));
    }
    Ok(stat)
}

struct Stat {
    paths: Paths,
    softirq: bool,
}

impl Collector for Stat {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("stat");
        let stat = parse_stat(&read_kept(&path)?, &path)?;
        out.counter(
            "node_intr_total",
            "Total number of interrupts serviced.",
            &[],
            stat.intr_total as f64,
        );
        out.counter(
            "node_context_switches_total",
            "Total number of context switches.",
            &[],
            stat.context_switches as f64,
        );
        out.counter(
            "node_forks_total",
            "Total number of forks.",
            &[],
            stat.forks as f64,
        );
        out.gauge(
            "node_boot_time_seconds",
            "Node boot time, in unixtime.",
            &[],
            stat.boot_time as f64,
        );
        out.gauge(
            "node_procs_running",
            "Number of processes in runnable state.",
            &[],
            stat.procs_running as f64,
        );
        out.gauge(
            "node_procs_blocked",
            "Number of processes blocked waiting for I/O to complete.",
            &[],
            stat.procs_blocked as f64,
        );
        if self.softirq {
            // node_exporter (procfs) reports zeros when the line is missing;
            // no line means no data, so nothing is reported instead.
            if let Some(vectors) = stat.softirq {
                for (name, v) in SOFTIRQ_VECTORS.iter().zip(vectors) {
                    out.counter(
                        "node_softirqs_total",
                        "Number of softirq calls.",
                        &[("vector", name)],
                        v as f64,
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/proc/stat";

    const GOOD: &str = "cpu  1 2 3 4 5 6 7 8 0 0\n\
        cpu0 1 2 3 4 5 6 7 8 0 0\n\
        intr 225593 0 0 15 0\n\
        ctxt 402282\n\
        btime 1795253038\n\
        processes 7300\n\
        procs_running 3\n\
        procs_blocked 1\n\
        softirq 107025 0 13757 4 5204 36703 0 100 24239 0 27018\n";

    #[test]
    fn parses_all_system_lines() {
        let s = parse_stat(GOOD, Path::new(P)).unwrap();
        assert_eq!(s.intr_total, 225593);
        assert_eq!(s.context_switches, 402282);
        assert_eq!(s.forks, 7300);
        assert_eq!(s.boot_time, 1795253038);
        assert_eq!(s.procs_running, 3);
        assert_eq!(s.procs_blocked, 1);
        assert_eq!(
            s.softirq,
            Some([0, 13757, 4, 5204, 36703, 0, 100, 24239, 0, 27018])
        );
    }

    #[test]
    fn softirq_line_is_optional_but_must_be_complete() {
        let no_softirq: String = GOOD
            .lines()
            .filter(|l| !l.starts_with("softirq"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(parse_stat(&no_softirq, Path::new(P)).unwrap().softirq, None);
        let short = GOOD.replace(
            "softirq 107025 0 13757 4 5204 36703 0 100 24239 0 27018",
            "softirq 5 1 2 3",
        );
        let err = parse_stat(&short, Path::new(P)).unwrap_err().to_string();
        assert!(err.contains("/proc/stat line 9"), "{err}");
        // More vectors than today's kernels have are ignored.
        let long = GOOD.replace(" 0 27018\n", " 0 27018 99\n");
        assert!(parse_stat(&long, Path::new(P)).unwrap().softirq.is_some());
    }

    #[test]
    fn truncated_file_names_the_missing_line() {
        let err = parse_stat("cpu  1 2 3\ncpu0 1 2\n", Path::new(P))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/proc/stat") && err.contains("no intr line"),
            "{err}"
        );
        let err = parse_stat(
            "intr 1\nctxt 2\nbtime 3\nprocesses 4\nprocs_running 5\n",
            Path::new(P),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no procs_blocked line"), "{err}");
    }

    #[test]
    fn garbage_value_names_file_line_and_field() {
        let bad = GOOD.replace("ctxt 402282", "ctxt 40x282");
        let err = parse_stat(&bad, Path::new(P)).unwrap_err().to_string();
        assert!(
            err.contains("/proc/stat line 4") && err.contains("ctxt"),
            "{err}"
        );
        let bad = GOOD.replace("btime 1795253038", "btime");
        assert!(parse_stat(&bad, Path::new(P)).is_err());
        let bad = GOOD.replace("procs_blocked 1", "procs_blocked -1");
        assert!(parse_stat(&bad, Path::new(P)).is_err());
    }

    #[test]
    fn softirqs_only_with_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stat"), GOOD).unwrap();
        let paths = Paths {
            procfs: dir.path().to_path_buf(),
            ..Paths::default()
        };
        for flag in [false, true] {
            let c = Stat {
                paths: paths.clone(),
                softirq: flag,
            };
            let mut out = MetricSet::new();
            c.update(&mut out).unwrap();
            let names: Vec<&str> = out.families().iter().map(|f| &*f.name).collect();
            assert_eq!(names.contains(&"node_softirqs_total"), flag, "{names:?}");
            assert!(names.contains(&"node_boot_time_seconds"));
            if flag {
                let fam = out
                    .families()
                    .iter()
                    .find(|f| f.name == "node_softirqs_total")
                    .unwrap();
                assert_eq!(fam.series.len(), 10);
            }
        }
    }
}
