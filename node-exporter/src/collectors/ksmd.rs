//! `node_ksmd_*` from the kernel samepage merging daemon's files in
//! /sys/kernel/mm/ksm, the nine node_exporter reads: `full_scans` becomes the
//! counter `node_ksmd_full_scans_total`, `sleep_millisecs` the gauge
//! `node_ksmd_sleep_seconds`, the others gauges of the same name.

use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::read_u64;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "ksmd",
    default_enabled: false,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Ksmd {
            paths: f.paths.clone(),
        }))
    },
};

enum Kind {
    Gauge,
    Counter,
    /// Milliseconds, written in seconds.
    Millis,
}

/// (file, metric name, help, kind), in node_exporter's order.
const FILES: [(&str, &str, &str, Kind); 9] = [
    (
        "full_scans",
        "node_ksmd_full_scans_total",
        "ksmd 'full_scans' file.",
        Kind::Counter,
    ),
    (
        "merge_across_nodes",
        "node_ksmd_merge_across_nodes",
        "ksmd 'merge_across_nodes' file.",
        Kind::Gauge,
    ),
    (
        "pages_shared",
        "node_ksmd_pages_shared",
        "ksmd 'pages_shared' file.",
        Kind::Gauge,
    ),
    (
        "pages_sharing",
        "node_ksmd_pages_sharing",
        "ksmd 'pages_sharing' file.",
        Kind::Gauge,
    ),
    (
        "pages_to_scan",
        "node_ksmd_pages_to_scan",
        "ksmd 'pages_to_scan' file.",
        Kind::Gauge,
    ),
    (
        "pages_unshared",
        "node_ksmd_pages_unshared",
        "ksmd 'pages_unshared' file.",
        Kind::Gauge,
    ),
    (
        "pages_volatile",
        "node_ksmd_pages_volatile",
        "ksmd 'pages_volatile' file.",
        Kind::Gauge,
    ),
    ("run", "node_ksmd_run", "ksmd 'run' file.", Kind::Gauge),
    (
        "sleep_millisecs",
        "node_ksmd_sleep_seconds",
        "ksmd 'sleep_millisecs' file.",
        Kind::Millis,
    ),
];

struct Ksmd {
    paths: Paths,
}

impl Collector for Ksmd {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let dir = self.paths.sys("kernel/mm/ksm");
        for (file, name, help, kind) in &FILES {
            // A missing directory (kernel without CONFIG_KSM) is NoData; a
            // bad value is an error naming the file.
            let v = read_u64(&dir.join(file))? as f64;
            match kind {
                Kind::Gauge => out.gauge(*name, *help, &[], v),
                Kind::Counter => out.counter(*name, *help, &[], v),
                Kind::Millis => out.gauge(*name, *help, &[], v / 1000.0),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(root: &std::path::Path) -> anyhow::Result<MetricSet> {
        let c = Ksmd {
            paths: Paths {
                sysfs: root.to_path_buf(),
                ..Paths::default()
            },
        };
        let mut out = MetricSet::new();
        c.update(&mut out).map(|_| out)
    }

    #[test]
    fn reads_all_nine_files_and_converts_sleep_to_seconds() {
        let dir = tempfile::tempdir().unwrap();
        let ksm = dir.path().join("kernel/mm/ksm");
        std::fs::create_dir_all(&ksm).unwrap();
        for (f, ..) in &FILES {
            std::fs::write(ksm.join(f), "7\n").unwrap();
        }
        std::fs::write(ksm.join("sleep_millisecs"), "20\n").unwrap();
        let out = collect(dir.path()).unwrap();
        let fams = out.families();
        assert_eq!(fams.len(), 9);
        let sleep = fams
            .iter()
            .find(|f| f.name == "node_ksmd_sleep_seconds")
            .unwrap();
        assert_eq!(
            sleep.series[0].value,
            exporter_toolkit::exposition::Value::Single(0.02)
        );

        std::fs::write(ksm.join("run"), "yes\n").unwrap();
        let err = format!("{:#}", collect(dir.path()).unwrap_err());
        assert!(err.contains("kernel/mm/ksm/run"), "{err}");
    }
}
