//! `node_cpu_seconds_total` and `node_cpu_guest_seconds_total` from the
//! per-CPU lines of /proc/stat, and with them what [`super::cpu_info`] reads
//! (/proc/cpuinfo with `--collector.cpu.info`, thermal throttles, isolated
//! CPUs), in node_exporter's order. Like node_exporter, a counter that the kernel
//! reports going backwards (seen with idle/iowait on some kernels) keeps its
//! previous value, so rate() never sees a reset that did not happen.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::cpu_info::{self, InfoOptions, Throttles};
use super::CollectorSpec;
use crate::cli::{bool_flag, string_flag};
use crate::collector::{Collector, Paths};
use crate::helpers::{parse_f64, read_kept, USER_HZ};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "cpu",
    default_enabled: true,
    flags: || {
        let mut flags = bool_flag(
            "collector.cpu.guest",
            true,
            "Enables metric node_cpu_guest_seconds_total",
        )
        .to_vec();
        flags.extend(bool_flag(
            "collector.cpu.info",
            false,
            "Enables metric cpu_info",
        ));
        flags.push(string_flag(
            "collector.cpu.info.flags-include",
            "",
            "Filter the `flags` field in cpuInfo with a value that must be a regular expression",
        ));
        flags.push(string_flag(
            "collector.cpu.info.bugs-include",
            "",
            "Filter the `bugs` field in cpuInfo with a value that must be a regular expression",
        ));
        flags
    },
    build: |f| {
        let flags_include = f.regex("collector.cpu.info.flags-include")?;
        let bugs_include = f.regex("collector.cpu.info.bugs-include")?;
        // As node_exporter: either filter turns --collector.cpu.info on.
        let info = f.bool("collector.cpu.info", false)
            || flags_include.is_some()
            || bugs_include.is_some();
        let frequency = crate::cli::enabled_collectors(f)
            .iter()
            .any(|s| s.name == "cpufreq");
        Ok(Box::new(Cpu {
            paths: f.paths.clone(),
            guest: f.bool("collector.cpu.guest", true),
            last: Mutex::new(HashMap::new()),
            info: info.then_some(InfoOptions {
                flags_include,
                bugs_include,
                frequency,
            }),
            isolated: cpu_info::read_isolated(&f.paths).map_err(|e| e.to_string()),
            throttles: Throttles::default(),
        }))
    },
};

const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

struct Cpu {
    paths: Paths,
    guest: bool,
    /// Last reported seconds per (cpu, field index), to hide backwards jumps.
    last: Mutex<HashMap<(String, usize), f64>>,
    /// `--collector.cpu.info` (or one of its filters) given.
    info: Option<InfoOptions>,
    /// Read once at start, as node_exporter; `None` without the file. A
    /// file that does not parse fails every scrape of the collector (where
    /// node_exporter refuses to start): the exporter's other collectors go on.
    isolated: Result<Option<Vec<u16>>, String>,
    throttles: Throttles,
}

impl Collector for Cpu {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        if let Some(opts) = &self.info {
            cpu_info::update_info(&self.paths, opts, out)?;
        }
        self.update_stat(out)?;
        match &self.isolated {
            Ok(Some(isolated)) => cpu_info::update_isolated(isolated, out),
            Ok(None) => {}
            Err(e) => return Err(anyhow!("{e}")),
        }
        self.throttles.update(&self.paths, out)
    }
}

impl Cpu {
    fn update_stat(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("stat");
        let cpus = parse_cpu_lines(&read_kept(&path)?, &path)?;
        let mut last = self
            .last
            .lock()
            .map_err(|_| anyhow!("cpu state lock poisoned"))?;
        for (cpu, values) in &cpus {
            let mut seconds = |idx: usize| -> Option<f64> {
                let v = values.get(idx)? / USER_HZ;
                let prev = last.entry((cpu.clone(), idx)).or_insert(v);
                if v >= *prev {
                    *prev = v;
                }
                Some(*prev)
            };
            for (idx, mode) in MODES.iter().enumerate() {
                if let Some(v) = seconds(idx) {
                    out.counter(
                        "node_cpu_seconds_total",
                        "Seconds the CPUs spent in each mode.",
                        &[("cpu", cpu), ("mode", mode)],
                        v,
                    );
                }
            }
            if self.guest {
                for (idx, mode) in [(8, "user"), (9, "nice")] {
                    if let Some(v) = seconds(idx) {
                        out.counter(
                            "node_cpu_guest_seconds_total",
                            "Seconds the CPUs spent in guests (VMs) for each mode.",
                            &[("cpu", cpu), ("mode", mode)],
                            v,
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

/// The per-CPU lines of /proc/stat (`cpu0 ...`, not the `cpu` total) as
/// (cpu number, ticks per field).
pub fn parse_cpu_lines(text: &str, path: &Path) -> anyhow::Result<Vec<(String, Vec<f64>)>> {
    let mut cpus = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut fields = line.split_whitespace();
        let Some(label) = fields.next() else { continue };
        let Some(cpu) = label.strip_prefix("cpu").filter(|n| !n.is_empty()) else {
            continue;
        };
        if !cpu.bytes().all(|b| b.is_ascii_digit()) {
            return Err(anyhow!(
                "parsing {} line {}: bad cpu name {label:?}",
                path.display(),
                i + 1
            ));
        }
        let values: Vec<f64> = fields
            .enumerate()
            .map(|(j, v)| parse_f64(v, path, i + 1, &format!("{label} field {}", j + 1)))
            .collect::<anyhow::Result<_>>()?;
        if values.len() < 4 {
            return Err(anyhow!(
                "parsing {} line {}: {label} has {} fields, expected at least 4",
                path.display(),
                i + 1,
                values.len()
            ));
        }
        cpus.push((cpu.to_string(), values));
    }
    if cpus.is_empty() {
        return Err(anyhow!(
            "parsing {}: no per-CPU lines found",
            path.display()
        ));
    }
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(c: &Cpu) -> String {
        let mut set = MetricSet::new();
        c.update(&mut set).unwrap();
        exporter_toolkit::exposition::encode(
            &set.finish().unwrap(),
            exporter_toolkit::exposition::Format::Text,
        )
    }

    #[test]
    fn counters_never_go_backwards() {
        let dir = tempfile::tempdir().unwrap();
        let stat = dir.path().join("stat");
        std::fs::write(
            &stat,
            "cpu  1 0 1 500 9 0 0 0 0 0\ncpu0 100 0 100 5000 90 0 0 0 0 0\n",
        )
        .unwrap();
        let c = Cpu {
            paths: Paths {
                procfs: dir.path().into(),
                ..Paths::default()
            },
            guest: true,
            last: Mutex::new(HashMap::new()),
            info: None,
            isolated: Ok(None),
            throttles: Throttles::default(),
        };
        assert!(collect(&c).contains("node_cpu_seconds_total{cpu=\"0\",mode=\"iowait\"} 0.9\n"));
        // The kernel reports iowait lower than before: keep the old value.
        std::fs::write(&stat, "cpu0 101 0 100 5001 80 0 0 0 0 0\n").unwrap();
        let out = collect(&c);
        assert!(
            out.contains("node_cpu_seconds_total{cpu=\"0\",mode=\"iowait\"} 0.9\n"),
            "{out}"
        );
        assert!(
            out.contains("node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 1.01\n"),
            "{out}"
        );
    }

    #[test]
    fn a_bad_isolated_file_fails_every_scrape_not_the_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stat"), "cpu0 1 0 1 5 0 0 0 0 0 0\n").unwrap();
        let sys = dir.path().join("sys");
        std::fs::create_dir_all(sys.join("devices/system/cpu")).unwrap();
        std::fs::write(sys.join("devices/system/cpu/isolated"), "1-x\n").unwrap();
        let paths = Paths {
            procfs: dir.path().into(),
            sysfs: sys,
            ..Paths::default()
        };
        let c = Cpu {
            isolated: cpu_info::read_isolated(&paths).map_err(|e| e.to_string()),
            paths,
            guest: true,
            last: Mutex::new(HashMap::new()),
            info: None,
            throttles: Throttles::default(),
        };
        for _ in 0..2 {
            let mut set = MetricSet::new();
            let err = c.update(&mut set).unwrap_err().to_string();
            assert!(err.contains("devices/system/cpu/isolated"), "{err}");
        }
    }

    #[test]
    fn garbage_names_the_file_and_line() {
        let err = parse_cpu_lines("cpu0 1 2 x 4\n", Path::new("/proc/stat")).unwrap_err();
        assert!(err.to_string().contains("/proc/stat line 1"), "{err}");
        assert!(parse_cpu_lines("cpu0 1 2\n", Path::new("/proc/stat")).is_err());
        assert!(parse_cpu_lines("intr 1\n", Path::new("/proc/stat")).is_err());
    }
}
