//! `node_memory_*` from /proc/meminfo: one gauge per line, named as
//! node_exporter names them (`Active(anon)` becomes `Active_anon`, values in
//! kB become `_bytes`), so lines added by future kernels appear by themselves.

use anyhow::anyhow;
use exporter_toolkit::exposition::{sanitize_name, MetricSet};

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::{parse_f64, read_file};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "meminfo",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Meminfo {
            paths: f.paths.clone(),
        }))
    },
};

struct Meminfo {
    paths: Paths,
}

impl Collector for Meminfo {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("meminfo");
        let text = read_file(&path)?;
        let mut seen = 0;
        for (i, line) in text.lines().enumerate() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if parts.is_empty() {
                continue;
            }
            let key = parts[0].strip_suffix(':').ok_or_else(|| {
                anyhow!(
                    "parsing {} line {}: no ':' after {:?}",
                    path.display(),
                    i + 1,
                    parts[0]
                )
            })?;
            // Active(anon) -> Active_anon
            let key = key.replace('(', "_").replace(')', "");
            let (value, key) = match parts.len() {
                2 => (parse_f64(parts[1], &path, i + 1, &key)?, key),
                3 => (
                    parse_f64(parts[1], &path, i + 1, &key)? * 1024.0,
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
            let key = sanitize_name(&key);
            out.gauge(
                format!("node_memory_{key}"),
                format!("Memory information field {key}."),
                &[],
                value,
            );
            seen += 1;
        }
        if seen == 0 {
            return Err(anyhow!("parsing {}: no fields found", path.display()));
        }
        Ok(())
    }
}
