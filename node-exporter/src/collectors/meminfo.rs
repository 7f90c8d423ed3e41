//! `node_memory_*` from /proc/meminfo: one gauge per line, named as
//! node_exporter names them (`Active(anon)` becomes `Active_anon`, values in
//! kB become `_bytes`), so lines added by future kernels appear by themselves.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::{sanitize_name, MetricSet};

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::{parse_f64, read_kept};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "meminfo",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Meminfo {
            paths: f.paths.clone(),
            names_kb: Default::default(),
            names: Default::default(),
        }))
    },
};

struct Meminfo {
    paths: Paths,
    /// Per line with a unit (kB) and per line without: the metric name and
    /// help.
    names_kb: crate::helpers::KeyNames,
    names: crate::helpers::KeyNames,
}

impl Collector for Meminfo {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("meminfo");
        let text = read_kept(&path)?;
        let (mut names_kb, mut names) = (self.names_kb.in_order(), self.names.in_order());
        for line in parse_meminfo(&text, &path)? {
            let names = if line.in_kb {
                &mut names_kb
            } else {
                &mut names
            };
            if let Some((name, help)) = names.get(line.key, || {
                let suffix = metric_suffix(line.key, line.in_kb);
                Some((
                    format!("node_memory_{suffix}"),
                    format!("Memory information field {suffix}."),
                ))
            }) {
                out.gauge(name, help, &[], line.value);
            }
        }
        Ok(())
    }
}

/// One line of /proc/meminfo.
#[derive(Debug, PartialEq)]
pub struct MeminfoLine<'a> {
    /// As the kernel writes it: `Active(anon)`.
    pub key: &'a str,
    /// Given in kB (and converted to bytes in `value`).
    pub in_kb: bool,
    pub value: f64,
}

/// The metric name suffix of a line, as node_exporter makes it:
/// `Active(anon)` -> `Active_anon`, plus `_bytes` for values given in kB.
pub fn metric_suffix(key: &str, in_kb: bool) -> String {
    let key = key.replace('(', "_").replace(')', "");
    if in_kb {
        sanitize_name(&format!("{key}_bytes"))
    } else {
        sanitize_name(&key)
    }
}

/// Every line, values in bytes where given in kB.
pub fn parse_meminfo<'a>(text: &'a str, path: &Path) -> anyhow::Result<Vec<MeminfoLine<'a>>> {
    let mut fields = Vec::with_capacity(64);
    for (i, line) in crate::helpers::lines(text).enumerate() {
        let mut parts = line.split_ascii_whitespace();
        let Some(first) = parts.next() else { continue };
        let key = first.strip_suffix(':').ok_or_else(|| {
            anyhow!(
                "parsing {} line {}: no ':' after {first:?}",
                path.display(),
                i + 1
            )
        })?;
        let (value, in_kb) = match (parts.next(), parts.next(), parts.next()) {
            (Some(v), None, None) => (parse_f64(v, path, i + 1, key)?, false),
            (Some(v), Some(_unit), None) => (parse_f64(v, path, i + 1, key)? * 1024.0, true),
            _ => {
                return Err(anyhow!(
                    "parsing {} line {}: unexpected format {line:?}",
                    path.display(),
                    i + 1
                ))
            }
        };
        fields.push(MeminfoLine { key, in_kb, value });
    }
    if fields.is_empty() {
        return Err(anyhow!("parsing {}: no fields found", path.display()));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_names_as_node_exporter_makes_them() {
        let text = "MemTotal:       16384 kB\nActive(anon):     100 kB\nHugePages_Total:       0\n";
        let lines = parse_meminfo(text, Path::new("meminfo")).unwrap();
        let names: Vec<(String, f64)> = lines
            .iter()
            .map(|l| (metric_suffix(l.key, l.in_kb), l.value))
            .collect();
        assert_eq!(
            names,
            [
                ("MemTotal_bytes".to_string(), 16384.0 * 1024.0),
                ("Active_anon_bytes".to_string(), 102400.0),
                ("HugePages_Total".to_string(), 0.0)
            ]
        );
        let err = parse_meminfo("MemTotal: 1 kB extra\n", Path::new("meminfo")).unwrap_err();
        assert!(err.to_string().contains("meminfo line 1"), "{err}");
    }
}
