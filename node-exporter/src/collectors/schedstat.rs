//! `node_schedstat_{running,waiting}_seconds_total` and
//! `node_schedstat_timeslices_total` per CPU from /proc/schedstat (kernels
//! with CONFIG_SCHEDSTATS). Only the `cpuN` lines are read; their 7th to 9th
//! fields are the nanoseconds spent running, the nanoseconds tasks waited
//! on this run queue and the number of timeslices run (the same in schedstat
//! versions 15 to 17). `version`, `timestamp` and `domain` lines are skipped.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::read_kept;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "schedstat",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Schedstat {
            paths: f.paths.clone(),
        }))
    },
};

const NS_PER_SEC: f64 = 1e9;

/// One `cpuN` line of /proc/schedstat.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedstatCpu<'a> {
    pub cpu: &'a str,
    pub running_ns: u64,
    pub waiting_ns: u64,
    pub timeslices: u64,
}

/// Parses the per-CPU lines of /proc/schedstat. A `cpuN` line with fewer
/// than 9 numbers, or with something that is not a number, is an error.
pub fn parse_schedstat<'a>(text: &'a str, path: &Path) -> anyhow::Result<Vec<SchedstatCpu<'a>>> {
    let mut cpus = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut fields = line.split_ascii_whitespace();
        let Some(label) = fields.next() else { continue };
        let Some(cpu) = label.strip_prefix("cpu") else {
            continue;
        };
        let lineno = i + 1;
        if cpu.is_empty() || !cpu.bytes().all(|b| b.is_ascii_digit()) {
            return Err(anyhow!(
                "parsing {} line {lineno}: bad cpu name {label:?}",
                path.display()
            ));
        }
        let mut values = [0u64; 9];
        for (n, slot) in values.iter_mut().enumerate() {
            let v = fields.next().ok_or_else(|| {
                anyhow!(
                    "parsing {} line {lineno}: {label} has {n} fields, expected 9",
                    path.display()
                )
            })?;
            *slot = v.parse().map_err(|_| {
                anyhow!(
                    "parsing {} line {lineno}: {label} field {}: {v:?} is not an unsigned integer",
                    path.display(),
                    n + 1
                )
            })?;
        }
        cpus.push(SchedstatCpu {
            cpu,
            running_ns: values[6],
            waiting_ns: values[7],
            timeslices: values[8],
        });
    }
    if cpus.is_empty() {
        return Err(anyhow!("parsing {}: no cpu lines found", path.display()));
    }
    Ok(cpus)
}

struct Schedstat {
    paths: Paths,
}

impl Collector for Schedstat {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("schedstat");
        let text = crate::helpers::absent_if_missing(read_kept(&path))?;
        for c in parse_schedstat(&text, &path)? {
            let labels = [("cpu", c.cpu)];
            out.counter(
                "node_schedstat_running_seconds_total",
                "Number of seconds CPU spent running a process.",
                &labels,
                c.running_ns as f64 / NS_PER_SEC,
            );
            out.counter(
                "node_schedstat_waiting_seconds_total",
                "Number of seconds spent by processing waiting for this CPU.",
                &labels,
                c.waiting_ns as f64 / NS_PER_SEC,
            );
            out.counter(
                "node_schedstat_timeslices_total",
                "Number of timeslices executed by CPU.",
                &labels,
                c.timeslices as f64,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V17: &str = "version 17
timestamp 4296523488
cpu0 0 0 8120937 2997562 4395497 1902447 1759035843968 2378781336969 14373439
domain0 SMT 00000003 81 80 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
cpu1 0 0 7935823 2880497 4306632 1822291 1772862933092 2352944740242 14279248
domain0 SMT 00000003 77 77 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
";

    #[test]
    fn reads_cpu_lines_and_skips_the_rest() {
        let cpus = parse_schedstat(V17, Path::new("schedstat")).unwrap();
        assert_eq!(cpus.len(), 2);
        assert_eq!(
            cpus[1],
            SchedstatCpu {
                cpu: "1",
                running_ns: 1772862933092,
                waiting_ns: 2352944740242,
                timeslices: 14279248,
            }
        );
    }

    #[test]
    fn extra_fields_from_a_newer_kernel_are_ignored() {
        let cpus = parse_schedstat("cpu3 1 2 3 4 5 6 7 8 9 10 11\n", Path::new("s")).unwrap();
        assert_eq!(cpus[0].cpu, "3");
        assert_eq!(cpus[0].timeslices, 9);
    }

    #[test]
    fn truncated_or_garbage_cpu_line_is_an_error_naming_file_and_line() {
        let err = parse_schedstat("version 15\ncpu0 1 2 3\n", Path::new("/p/schedstat"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/p/schedstat line 2"), "{err}");
        assert!(parse_schedstat("cpu0 1 2 3 4 5 6 x 8 9\n", Path::new("s")).is_err());
        assert!(parse_schedstat("cpuX 1 2 3 4 5 6 7 8 9\n", Path::new("s")).is_err());
        assert!(parse_schedstat("version 15\ntimestamp 1\n", Path::new("s")).is_err());
    }
}
