//! `node_softirqs_functions_total` from /proc/softirqs (off by default, as
//! in node_exporter): softirq counts per softirq type and CPU. A row whose
//! width is not the header's, or a count that is not a number, fails the
//! collector naming the file and line.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::{parse_f64, read_file};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "softirqs",
    default_enabled: false,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Softirqs {
            paths: f.paths.clone(),
        }))
    },
};

struct Softirqs {
    paths: Paths,
}

/// (type, counts per CPU in the header's order), and the CPU numbers.
pub type Table = (Vec<String>, Vec<(String, Vec<f64>)>);

/// Parses /proc/softirqs: a `CPU0 CPU1 ...` header, then `TYPE: n n ...`.
pub fn parse_softirqs(text: &str, path: &Path) -> anyhow::Result<Table> {
    let mut lines = text.lines().enumerate();
    let header = lines
        .next()
        .map(|(_, l)| l)
        .ok_or_else(|| anyhow!("parsing {}: empty file", path.display()))?;
    let cpus = header
        .split_whitespace()
        .map(|c| {
            c.strip_prefix("CPU")
                .filter(|n| !n.is_empty() && n.chars().all(|d| d.is_ascii_digit()))
                .map(str::to_string)
                .ok_or_else(|| anyhow!("parsing {} line 1: {c:?} is not CPU<n>", path.display()))
        })
        .collect::<anyhow::Result<Vec<String>>>()?;
    if cpus.is_empty() {
        return Err(anyhow!("parsing {} line 1: no CPUs", path.display()));
    }
    let mut rows = Vec::new();
    for (i, line) in lines {
        let n = i + 1;
        let mut fields = line.split_whitespace();
        let Some(name) = fields.next() else {
            continue;
        };
        let name = name
            .strip_suffix(':')
            .filter(|s| !s.is_empty())
            .ok_or_else(|| anyhow!("parsing {} line {n}: {name:?} is not TYPE:", path.display()))?;
        let counts = fields
            .enumerate()
            .map(|(k, v)| parse_f64(v, path, n, &format!("CPU{}", k)))
            .collect::<anyhow::Result<Vec<f64>>>()?;
        if counts.len() != cpus.len() {
            return Err(anyhow!(
                "parsing {} line {n}: {} counts for {} CPUs",
                path.display(),
                counts.len(),
                cpus.len()
            ));
        }
        rows.push((name.to_string(), counts));
    }
    Ok((cpus, rows))
}

impl Collector for Softirqs {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("softirqs");
        let (cpus, rows) = parse_softirqs(&read_file(&path)?, &path)?;
        for (kind, counts) in &rows {
            for (cpu, v) in cpus.iter().zip(counts) {
                out.counter(
                    "node_softirqs_functions_total",
                    "Softirq counts per CPU.",
                    &[("cpu", cpu), ("type", kind)],
                    *v,
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_per_cpu() {
        let p = Path::new("softirqs");
        let (cpus, rows) = parse_softirqs(
            "                    CPU0       CPU1       \n          HI:          7          1\n       TIMER:     424191     108342\n",
            p,
        )
        .unwrap();
        assert_eq!(cpus, ["0", "1"]);
        assert_eq!(rows[1], ("TIMER".to_string(), vec![424191.0, 108342.0]));
    }

    #[test]
    fn bad_input_names_file_and_line() {
        let p = Path::new("/proc/softirqs");
        for bad in [
            "",
            "CPU0 X\n",
            "CPU0 CPU1\nHI: 1\n",
            "CPU0\nHI: x\n",
            "CPU0\nHI 1\n",
        ] {
            let err = parse_softirqs(bad, p).unwrap_err().to_string();
            assert!(err.contains("/proc/softirqs"), "{bad:?}: {err}");
        }
    }
}
