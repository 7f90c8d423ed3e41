//! `node_kernel_hung_tasks_total`: tasks the kernel's hung task detector has
//! found blocked in D state past `hung_task_timeout_secs` since boot, from
//! /proc/sys/kernel/hung_task_detect_count (Linux 6.13+ with
//! CONFIG_DETECT_HUNG_TASK). As in node_exporter 1.11.1 and later, the
//! collector is on by default and a kernel without the file gives "no data".

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::read_kept;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "kernel_hung",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(KernelHung {
            paths: f.paths.clone(),
        }))
    },
};

/// Parses the single unsigned integer of hung_task_detect_count.
pub fn parse_hung_task_detect_count(text: &str, path: &Path) -> anyhow::Result<u64> {
    let s = text.trim();
    s.parse().map_err(|_| {
        anyhow!(
            "parsing {}: {s:?} is not an unsigned integer",
            path.display()
        )
    })
}

struct KernelHung {
    paths: Paths,
}

impl Collector for KernelHung {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("sys/kernel/hung_task_detect_count");
        let n = parse_hung_task_detect_count(&read_kept(&path)?, &path)?;
        out.counter(
            "node_kernel_hung_tasks_total",
            "Total number of tasks that have been detected as hung since the system booted.",
            &[],
            n as f64,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_count() {
        let p = Path::new("/proc/sys/kernel/hung_task_detect_count");
        assert_eq!(parse_hung_task_detect_count("3\n", p).unwrap(), 3);
        let err = parse_hung_task_detect_count("", p).unwrap_err().to_string();
        assert!(err.contains("hung_task_detect_count"), "{err}");
        assert!(parse_hung_task_detect_count("-1\n", p).is_err());
    }
}
