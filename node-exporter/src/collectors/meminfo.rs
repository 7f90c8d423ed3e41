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
            names: Default::default(),
        }))
    },
};

struct Meminfo {
    paths: Paths,
    /// Per line: its metric name and help.
    names: crate::helpers::KeyNames,
}

impl Collector for Meminfo {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("meminfo");
        for (key, value) in parse_meminfo(&read_kept(&path)?, &path)? {
            if let Some((name, help)) = self.names.get(&key, || {
                Some((
                    format!("node_memory_{key}"),
                    format!("Memory information field {key}."),
                ))
            }) {
                out.gauge(name, help, &[], value);
            }
        }
        Ok(())
    }
}

/// Every line as (metric name suffix, value in bytes or as given).
pub fn parse_meminfo(text: &str, path: &Path) -> anyhow::Result<Vec<(String, f64)>> {
    let mut fields = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let Some(first) = parts.first() else { continue };
        let key = first.strip_suffix(':').ok_or_else(|| {
            anyhow!(
                "parsing {} line {}: no ':' after {first:?}",
                path.display(),
                i + 1
            )
        })?;
        // Active(anon) -> Active_anon
        let key = key.replace('(', "_").replace(')', "");
        let (value, key) = match parts.as_slice() {
            [_, v] => (parse_f64(v, path, i + 1, &key)?, key),
            [_, v, _unit] => (
                parse_f64(v, path, i + 1, &key)? * 1024.0,
                format!("{key}_bytes"),
            ),
            _ => {
                return Err(anyhow!(
                    "parsing {} line {}: unexpected format {line:?}",
                    path.display(),
                    i + 1
                ))
            }
        };
        fields.push((sanitize_name(&key), value));
    }
    if fields.is_empty() {
        return Err(anyhow!("parsing {}: no fields found", path.display()));
    }
    Ok(fields)
}
