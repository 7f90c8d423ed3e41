//! `node_buddyinfo_blocks` from /proc/buddyinfo (off by default, as in
//! node_exporter): free blocks per NUMA node, zone and order (`size`).
//! Lines of different widths, or counts that are not numbers, fail the
//! collector naming the file and line, as procfs' parser does.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::{parse_f64, read_file};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "buddyinfo",
    default_enabled: false,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Buddyinfo {
            paths: f.paths.clone(),
        }))
    },
};

struct Buddyinfo {
    paths: Paths,
}

#[derive(Debug, PartialEq)]
pub struct Zone {
    pub node: String,
    pub zone: String,
    pub blocks: Vec<f64>,
}

/// Parses /proc/buddyinfo: `Node 0, zone   Normal   4381   1093 ...`.
pub fn parse_buddyinfo(text: &str, path: &Path) -> anyhow::Result<Vec<Zone>> {
    let mut out: Vec<Zone> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let (["Node", node, "zone", zone], counts) = fields.split_at(fields.len().min(4)) else {
            return Err(anyhow!(
                "parsing {} line {n}: expected \"Node <n>, zone <name> <counts>...\"",
                path.display()
            ));
        };
        if counts.is_empty() {
            return Err(anyhow!("parsing {} line {n}: no counts", path.display()));
        }
        if let Some(first) = out.first() {
            if first.blocks.len() != counts.len() {
                return Err(anyhow!(
                    "parsing {} line {n}: {} counts, the first line has {}",
                    path.display(),
                    counts.len(),
                    first.blocks.len()
                ));
            }
        }
        let blocks = counts
            .iter()
            .enumerate()
            .map(|(k, c)| parse_f64(c, path, n, &k.to_string()))
            .collect::<anyhow::Result<Vec<f64>>>()?;
        out.push(Zone {
            node: node.trim_end_matches(',').to_string(),
            zone: zone.to_string(),
            blocks,
        });
    }
    Ok(out)
}

impl Collector for Buddyinfo {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("buddyinfo");
        for zone in parse_buddyinfo(&read_file(&path)?, &path)? {
            for (size, blocks) in zone.blocks.iter().enumerate() {
                let size = size.to_string();
                out.gauge(
                    "node_buddyinfo_blocks",
                    "Count of free blocks according to size.",
                    &[("node", &zone.node), ("size", &size), ("zone", &zone.zone)],
                    *blocks,
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
    fn zones_and_sizes() {
        let p = Path::new("buddyinfo");
        let z = parse_buddyinfo(
            "Node 0, zone      DMA      1      0      1 \nNode 1, zone   Normal   4381   1093    185\n",
            p,
        )
        .unwrap();
        assert_eq!(
            z[1],
            Zone {
                node: "1".into(),
                zone: "Normal".into(),
                blocks: vec![4381.0, 1093.0, 185.0]
            }
        );
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let p = Path::new("/proc/buddyinfo");
        for bad in [
            "Node 0, zone DMA 1 2\nNode 0, zone DMA32 1\n",
            "Node 0, zone DMA 1 x\n",
            "Node 0, zone DMA\n",
            "garbage\n",
        ] {
            let err = parse_buddyinfo(bad, p).unwrap_err().to_string();
            assert!(err.contains("/proc/buddyinfo line"), "{bad:?}: {err}");
        }
    }
}
