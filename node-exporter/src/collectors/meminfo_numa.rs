//! `node_memory_numa_*{node}`: per NUMA node, the fields of
//! /sys/devices/system/node/node<N>/meminfo as gauges (kB in bytes,
//! `Active(anon)` as `Active_anon`) and those of its numastat as
//! `<field>_total` counters, as node_exporter. A machine without NUMA
//! nodes in sysfs gives no series and success, as node_exporter's glob.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::{valid_metric_name, MetricSet};

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::{numbered_entries, read_kept, KeyNames};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "meminfo_numa",
    default_enabled: false,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(MeminfoNuma {
            paths: f.paths.clone(),
            names: KeyNames::default(),
        }))
    },
};

struct MeminfoNuma {
    paths: Paths,
    names: KeyNames,
}

/// One value of a node: (field as named in the metric, node label, value).
pub type NodeValue = (String, String, f64);

fn bad(path: &Path, n: usize, line: &str) -> anyhow::Error {
    anyhow!("parsing {} line {}: {line:?}", path.display(), n + 1)
}

/// A node's meminfo: `Node <N> <Field>: <value> [kB]`. The node label is
/// the line's own `<N>`, as node_exporter takes it.
pub fn parse_node_meminfo(text: &str, path: &Path) -> anyhow::Result<Vec<NodeValue>> {
    static PAREN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let paren = PAREN.get_or_init(|| regex::Regex::new(r"\((.*)\)").expect("valid regex"));
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.is_empty() {
            continue;
        }
        let value: f64 = match parts.get(3).map(|v| v.parse()) {
            Some(Ok(v)) => v,
            _ => return Err(bad(path, n, line)),
        };
        let value = match parts[4..] {
            [] => value,
            ["kB"] => value * 1024.0,
            _ => return Err(bad(path, n, line)),
        };
        let field = paren
            .replace_all(parts[2].trim_end_matches(':'), "_${1}")
            .into_owned();
        out.push((field, parts[1].to_string(), value));
    }
    Ok(out)
}

/// A node's numastat: `<field> <count>` lines, as `<field>_total`.
pub fn parse_numastat(text: &str, node: &str, path: &Path) -> anyhow::Result<Vec<NodeValue>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        match line.split_whitespace().collect::<Vec<_>>()[..] {
            [] => {}
            [field, value] => {
                let v: f64 = value.parse().map_err(|_| bad(path, n, line))?;
                out.push((format!("{field}_total"), node.to_string(), v));
            }
            _ => return Err(bad(path, n, line)),
        }
    }
    Ok(out)
}

impl MeminfoNuma {
    fn push(
        &self,
        out: &mut MetricSet,
        values: Vec<NodeValue>,
        counter: bool,
        path: &Path,
        seen: &mut std::collections::HashSet<(String, String)>,
    ) -> anyhow::Result<()> {
        for (field, node, v) in values {
            // A field twice for a node (or a meminfo naming another node)
            // would be one series twice: the scrape's end.
            if !seen.insert((field.clone(), node.clone())) {
                return Err(anyhow!(
                    "parsing {}: {field} of node {node} given twice",
                    path.display()
                ));
            }
            let (name, help) = self
                .names
                .get(&field, || {
                    let name = format!("node_memory_numa_{field}");
                    valid_metric_name(&name)
                        .then(|| (name, format!("Memory information field {field}.")))
                })
                .ok_or_else(|| {
                    anyhow!("parsing {}: {field:?} is not a metric name", path.display())
                })?;
            let labels = [("node", node.as_str())];
            if counter {
                out.counter(name, help, &labels, v);
            } else {
                out.gauge(name, help, &labels, v);
            }
        }
        Ok(())
    }
}

impl Collector for MeminfoNuma {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let dir = self.paths.sys("devices/system/node");
        let mut seen = std::collections::HashSet::new();
        for (name, rest) in numbered_entries(&dir, "node")? {
            let node_dir = dir.join(&name);
            let path = node_dir.join("meminfo");
            let meminfo = parse_node_meminfo(&read_kept(&path)?, &path)?;
            self.push(out, meminfo, false, &path, &mut seen)?;
            // The node number as node_exporter's regexp takes it: the digits.
            let number: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let path = node_dir.join("numastat");
            let numastat = parse_numastat(&read_kept(&path)?, &number, &path)?;
            self.push(out, numastat, true, &path, &mut seen)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{collect, sysfs_at, write};

    fn run(root: &Path) -> anyhow::Result<String> {
        collect(&MeminfoNuma {
            paths: sysfs_at(root),
            names: KeyNames::default(),
        })
    }

    fn node(root: &Path) {
        write(
            root,
            "devices/system/node/node1/meminfo",
            "Node 1 MemTotal:       134182340 kB\nNode 1 Active(anon):     691324 kB\n\nNode 1 HugePages_Free:      3\n",
        );
        write(
            root,
            "devices/system/node/node1/numastat",
            "numa_hit 193460335812\nnuma_miss 12\n",
        );
    }

    #[test]
    fn meminfo_gauges_and_numastat_counters() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(run(dir.path()).unwrap(), "");
        node(dir.path());
        let text = run(dir.path()).unwrap();
        for want in [
            "# HELP node_memory_numa_Active_anon Memory information field Active_anon.\n",
            "node_memory_numa_Active_anon{node=\"1\"} 7.07915776e+08\n",
            "node_memory_numa_HugePages_Free{node=\"1\"} 3\n",
            "# TYPE node_memory_numa_numa_hit_total counter\n",
            "node_memory_numa_numa_miss_total{node=\"1\"} 12\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
    }

    #[test]
    fn truncated_and_garbage_files_name_the_file() {
        for (file, text) in [
            ("meminfo", "Node 1 MemTotal:\n"),
            ("meminfo", "Node 1 MemTotal: 12 MB\n"),
            ("meminfo", "Node 1 MemTotal: lots kB\n"),
            ("meminfo", "Node 1 Mem-Total: 1 kB\n"),
            ("numastat", "numa_hit\n"),
            ("numastat", "numa_hit x\n"),
            ("numastat", "numa_hit 1\nnuma_hit 2\n"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            node(dir.path());
            write(
                dir.path(),
                &format!("devices/system/node/node1/{file}"),
                text,
            );
            let err = run(dir.path()).unwrap_err().to_string();
            assert!(err.contains(&format!("node1/{file}")), "{text:?}: {err}");
        }
    }
}
