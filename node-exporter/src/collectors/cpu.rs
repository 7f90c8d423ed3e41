//! `node_cpu_seconds_total` and `node_cpu_guest_seconds_total` from the
//! per-CPU lines of /proc/stat. Like node_exporter, a counter that the kernel
//! reports going backwards (seen with idle/iowait on some kernels) keeps its
//! previous value, so rate() never sees a reset that did not happen.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::CollectorSpec;
use crate::cli::bool_flag;
use crate::collector::{Collector, Paths};
use crate::helpers::{parse_f64, read_file, USER_HZ};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "cpu",
    default_enabled: true,
    flags: || {
        bool_flag(
            "collector.cpu.guest",
            true,
            "Enables metric node_cpu_guest_seconds_total",
        )
        .to_vec()
    },
    build: |f| {
        Ok(Box::new(Cpu {
            paths: f.paths.clone(),
            guest: f.bool("collector.cpu.guest", true),
            last: Mutex::new(HashMap::new()),
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
}

impl Collector for Cpu {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("stat");
        let text = read_file(&path)?;
        let mut last = self
            .last
            .lock()
            .map_err(|_| anyhow!("cpu state lock poisoned"))?;
        let mut cpus = 0;
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
                .map(|(j, v)| parse_f64(v, &path, i + 1, &format!("{label} field {}", j + 1)))
                .collect::<anyhow::Result<_>>()?;
            if values.len() < 4 {
                return Err(anyhow!(
                    "parsing {} line {}: {label} has {} fields, expected at least 4",
                    path.display(),
                    i + 1,
                    values.len()
                ));
            }
            cpus += 1;
            let mut seconds = |idx: usize| -> Option<f64> {
                let v = values.get(idx)? / USER_HZ;
                let prev = last.entry((cpu.to_string(), idx)).or_insert(v);
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
        if cpus == 0 {
            return Err(anyhow!(
                "parsing {}: no per-CPU lines found",
                path.display()
            ));
        }
        Ok(())
    }
}
