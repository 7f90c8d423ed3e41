//! `node_load1`, `node_load5`, `node_load15` from /proc/loadavg.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::{parse_f64, read_kept};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "loadavg",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Loadavg {
            paths: f.paths.clone(),
        }))
    },
};

struct Loadavg {
    paths: Paths,
}

impl Collector for Loadavg {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("loadavg");
        let loads = parse_loadavg(&read_kept(&path)?, &path)?;
        let names = [
            ("node_load1", "1m load average."),
            ("node_load5", "5m load average."),
            ("node_load15", "15m load average."),
        ];
        for ((name, help), v) in names.into_iter().zip(loads) {
            out.gauge(name, help, &[], v);
        }
        Ok(())
    }
}

/// The 1, 5 and 15 minute load averages: the first three fields.
pub fn parse_loadavg(text: &str, path: &Path) -> anyhow::Result<[f64; 3]> {
    let mut fields = text.split_whitespace();
    let mut loads = [0.0; 3];
    for (i, slot) in loads.iter_mut().enumerate() {
        let field = fields.next().ok_or_else(|| {
            anyhow!(
                "parsing {}: expected at least 3 fields, found {i}",
                path.display()
            )
        })?;
        *slot = parse_f64(field, path, 1, &format!("field {}", i + 1))?;
    }
    Ok(loads)
}
