//! `node_lnstat_<field>_total{subsystem,cpu}`: the per-CPU network cache
//! statistics of the files in /proc/net/stat (arp_cache, ndisc_cache,
//! nf_conntrack, ...), a header line of field names then one line of
//! hexadecimal counters per CPU, as node_exporter reads them through
//! procfs. No /proc/net/stat gives no series and success, as node_exporter's
//! glob finds nothing.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::{valid_metric_name, MetricSet};

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::{read_kept, KeyNames};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "lnstat",
    default_enabled: false,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Lnstat {
            paths: f.paths.clone(),
            names: KeyNames::default(),
        }))
    },
};

struct Lnstat {
    paths: Paths,
    names: KeyNames,
}

/// A /proc/net/stat file as (field, value per CPU), fields in header order.
/// A field named twice in the header collects both columns' values, as
/// procfs' map of fields does (so its "CPU" numbers run on).
pub fn parse_net_stat(text: &str, path: &Path) -> anyhow::Result<Vec<(String, Vec<u64>)>> {
    let mut lines = text.lines();
    let mut fields: Vec<(String, Vec<u64>)> = Vec::new();
    // Column -> index into `fields`.
    let mut columns = Vec::new();
    for h in lines.next().unwrap_or("").split_whitespace() {
        let i = match fields.iter().position(|(name, _)| name == h) {
            Some(i) => i,
            None => {
                fields.push((h.to_string(), Vec::new()));
                fields.len() - 1
            }
        };
        columns.push(i);
    }
    for (n, line) in lines.enumerate() {
        for (i, v) in line.split_whitespace().enumerate() {
            let bad = |what: &str| anyhow!("parsing {} line {}: {what}", path.display(), n + 2);
            let value = u64::from_str_radix(v, 16)
                .map_err(|_| bad(&format!("{v:?} is not a hexadecimal counter")))?;
            let field = columns
                .get(i)
                .ok_or_else(|| bad("more values than the header has fields"))?;
            fields[*field].1.push(value);
        }
    }
    Ok(fields)
}

impl Collector for Lnstat {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let dir = self.paths.proc("net/stat");
        let files = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(anyhow!("listing {}: {e}", dir.display())),
        };
        let mut names: Vec<String> = files
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for subsystem in names {
            let path = dir.join(&subsystem);
            for (field, values) in parse_net_stat(&read_kept(&path)?, &path)? {
                let Some((name, help)) = self.names.get(&field, || {
                    let name = format!("node_lnstat_{field}_total");
                    valid_metric_name(&name)
                        .then(|| (name, "linux network cache stats".to_string()))
                }) else {
                    continue;
                };
                for (cpu, v) in values.iter().enumerate() {
                    out.counter(
                        name.clone(),
                        help.clone(),
                        &[("subsystem", &subsystem), ("cpu", &cpu.to_string())],
                        *v as f64,
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{collect, write};

    fn run(root: &Path) -> anyhow::Result<String> {
        collect(&Lnstat {
            paths: Paths {
                procfs: root.into(),
                ..Paths::default()
            },
            names: KeyNames::default(),
        })
    }

    #[test]
    fn per_cpu_hexadecimal_counters() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(run(dir.path()).unwrap(), "");
        write(
            dir.path(),
            "net/stat/arp_cache",
            "entries  allocs destroys\n00000014  00000001 00000002\n00000014  0000000d 0000000e\n",
        );
        let text = run(dir.path()).unwrap();
        for want in [
            "# HELP node_lnstat_allocs_total linux network cache stats\n",
            "node_lnstat_allocs_total{cpu=\"1\",subsystem=\"arp_cache\"} 13\n",
            "node_lnstat_entries_total{cpu=\"0\",subsystem=\"arp_cache\"} 20\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
    }

    #[test]
    fn garbage_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let twice = parse_net_stat("a b a\n1 2 3\n", Path::new("x")).unwrap();
        assert_eq!(twice, vec![("a".into(), vec![1, 3]), ("b".into(), vec![2])]);
        for text in ["entries allocs\n00000014 zz\n", "entries\n1 2\n"] {
            write(dir.path(), "net/stat/arp_cache", text);
            let err = run(dir.path()).unwrap_err().to_string();
            assert!(err.contains("net/stat/arp_cache line 2"), "{text:?}: {err}");
        }
    }
}
