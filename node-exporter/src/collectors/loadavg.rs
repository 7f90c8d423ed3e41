//! `node_load1`, `node_load5`, `node_load15` from /proc/loadavg.

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::{parse_f64, read_file};

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
        let text = read_file(&path)?;
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() < 3 {
            return Err(anyhow!(
                "parsing {}: expected at least 3 fields, found {}",
                path.display(),
                fields.len()
            ));
        }
        for (i, (name, help)) in [
            ("node_load1", "1m load average."),
            ("node_load5", "5m load average."),
            ("node_load15", "15m load average."),
        ]
        .into_iter()
        .enumerate()
        {
            out.gauge(name, help, &[], parse_f64(fields[i], &path, 1, name)?);
        }
        Ok(())
    }
}
