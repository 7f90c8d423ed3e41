//! `node_zoneinfo_*{node,zone}`: per memory zone of /proc/zoneinfo its
//! page counts, watermarks and protection array, as node_exporter reads
//! them through procfs: a block per `Node <N>, zone <Z>` line, and a
//! node's "per-node stats" counted with the zone they are printed in (the
//! node's first). A known field whose value is not a number fails the
//! collector naming the file, where procfs leaves the field out.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::read_kept;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "zoneinfo",
    default_enabled: false,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Zoneinfo {
            paths: f.paths.clone(),
        }))
    },
};

struct Zoneinfo {
    paths: Paths,
}

/// (key in zoneinfo, metric name, help, counter), in procfs' field order.
const FIELDS: [(&str, &str, &str, bool); 34] = [
    (
        "nr_free_pages",
        "node_zoneinfo_nr_free_pages",
        "Total number of free pages in the zone",
        false,
    ),
    (
        "min",
        "node_zoneinfo_min_pages",
        "Zone watermark pages_min",
        false,
    ),
    (
        "low",
        "node_zoneinfo_low_pages",
        "Zone watermark pages_low",
        false,
    ),
    (
        "high",
        "node_zoneinfo_high_pages",
        "Zone watermark pages_high",
        false,
    ),
    (
        "scanned",
        "node_zoneinfo_scanned_pages",
        "Pages scanned since last reclaim",
        false,
    ),
    (
        "spanned",
        "node_zoneinfo_spanned_pages",
        "Total pages spanned by the zone, including holes",
        false,
    ),
    (
        "present",
        "node_zoneinfo_present_pages",
        "Physical pages existing within the zone",
        false,
    ),
    (
        "managed",
        "node_zoneinfo_managed_pages",
        "Present pages managed by the buddy system",
        false,
    ),
    (
        "nr_active_anon",
        "node_zoneinfo_nr_active_anon_pages",
        "Number of anonymous pages recently more used",
        false,
    ),
    (
        "nr_inactive_anon",
        "node_zoneinfo_nr_inactive_anon_pages",
        "Number of anonymous pages recently less used",
        false,
    ),
    (
        "nr_isolated_anon",
        "node_zoneinfo_nr_isolated_anon_pages",
        "Temporary isolated pages from anon lru",
        false,
    ),
    (
        "nr_anon_pages",
        "node_zoneinfo_nr_anon_pages",
        "Number of anonymous pages currently used by the system",
        false,
    ),
    (
        "nr_anon_transparent_hugepages",
        "node_zoneinfo_nr_anon_transparent_hugepages",
        "Number of anonymous transparent huge pages currently used by the system",
        false,
    ),
    (
        "nr_active_file",
        "node_zoneinfo_nr_active_file_pages",
        "Number of active pages with file-backing",
        false,
    ),
    (
        "nr_inactive_file",
        "node_zoneinfo_nr_inactive_file_pages",
        "Number of inactive pages with file-backing",
        false,
    ),
    (
        "nr_isolated_file",
        "node_zoneinfo_nr_isolated_file_pages",
        "Temporary isolated pages from file lru",
        false,
    ),
    (
        "nr_file_pages",
        "node_zoneinfo_nr_file_pages",
        "Number of file pages",
        false,
    ),
    (
        "nr_slab_reclaimable",
        "node_zoneinfo_nr_slab_reclaimable_pages",
        "Number of reclaimable slab pages",
        false,
    ),
    (
        "nr_slab_unreclaimable",
        "node_zoneinfo_nr_slab_unreclaimable_pages",
        "Number of unreclaimable slab pages",
        false,
    ),
    (
        "nr_mlock_stack",
        "node_zoneinfo_nr_mlock_stack_pages",
        "mlock()ed pages found and moved off LRU",
        false,
    ),
    (
        "nr_kernel_stack",
        "node_zoneinfo_nr_kernel_stacks",
        "Number of kernel stacks",
        false,
    ),
    (
        "nr_mapped",
        "node_zoneinfo_nr_mapped_pages",
        "Number of mapped pages",
        false,
    ),
    (
        "nr_dirty",
        "node_zoneinfo_nr_dirty_pages",
        "Number of dirty pages",
        false,
    ),
    (
        "nr_writeback",
        "node_zoneinfo_nr_writeback_pages",
        "Number of writeback pages",
        false,
    ),
    (
        "nr_unevictable",
        "node_zoneinfo_nr_unevictable_pages",
        "Number of unevictable pages",
        false,
    ),
    (
        "nr_shmem",
        "node_zoneinfo_nr_shmem_pages",
        "Number of shmem pages (included tmpfs/GEM pages)",
        false,
    ),
    (
        "nr_dirtied",
        "node_zoneinfo_nr_dirtied_total",
        "Page dirtyings since bootup",
        true,
    ),
    (
        "nr_written",
        "node_zoneinfo_nr_written_total",
        "Page writings since bootup",
        true,
    ),
    (
        "numa_hit",
        "node_zoneinfo_numa_hit_total",
        "Allocated in intended node",
        true,
    ),
    (
        "numa_miss",
        "node_zoneinfo_numa_miss_total",
        "Allocated in non intended node",
        true,
    ),
    (
        "numa_foreign",
        "node_zoneinfo_numa_foreign_total",
        "Was intended here, hit elsewhere",
        true,
    ),
    (
        "numa_interleave",
        "node_zoneinfo_numa_interleave_total",
        "Interleaver preferred this zone",
        true,
    ),
    (
        "numa_local",
        "node_zoneinfo_numa_local_total",
        "Allocation from local node",
        true,
    ),
    (
        "numa_other",
        "node_zoneinfo_numa_other_total",
        "Allocation from other node",
        true,
    ),
];

/// One zone: node, zone, the value of each of [`FIELDS`] it has (the last
/// one printed), and its protection array.
#[derive(Debug, Default, PartialEq)]
pub struct Zone {
    pub node: String,
    pub zone: String,
    pub values: Vec<Option<i64>>,
    pub protection: Vec<i64>,
}

pub fn parse_zoneinfo(text: &str, path: &Path) -> anyhow::Result<Vec<Zone>> {
    static NODE_ZONE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let node_zone =
        NODE_ZONE.get_or_init(|| regex::Regex::new(r"(\d+), zone\s+(\w+)").expect("valid regex"));
    let mut zones = Vec::new();
    let mut line_no = 0;
    // procfs splits the file at each "\nNode": a block per zone.
    for block in text.split("\nNode") {
        let mut zone = Zone {
            values: vec![None; FIELDS.len()],
            ..Zone::default()
        };
        for line in block.split('\n') {
            line_no += 1;
            if let Some(c) = node_zone.captures(line) {
                zone.node = c[1].to_string();
                zone.zone = c[2].to_string();
                continue;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [key, value, ..] = parts[..] else {
                continue;
            };
            if key == "protection:" {
                zone.protection = parse_protection(line).unwrap_or_default();
                continue;
            }
            let Some(i) = FIELDS.iter().position(|f| f.0 == key) else {
                continue;
            };
            // procfs parses these as Go's base-0 ParseInt.
            let v = crate::collectors::sysctl::parse_int(value).ok_or_else(|| {
                anyhow!(
                    "parsing {} line {line_no}: {key} {value:?} is not a number",
                    path.display()
                )
            })?;
            zone.values[i] = Some(v);
        }
        // One zone twice would be one series twice: the scrape's end.
        if zones
            .iter()
            .any(|z: &Zone| z.node == zone.node && z.zone == zone.zone)
        {
            return Err(anyhow!(
                "parsing {}: node {} zone {} listed twice",
                path.display(),
                zone.node,
                zone.zone
            ));
        }
        zones.push(zone);
    }
    Ok(zones)
}

/// `protection: (0, 2039, 31932)`; `None` (no array) when one is not a
/// number, as procfs.
fn parse_protection(line: &str) -> Option<Vec<i64>> {
    let values = line
        .split(':')
        .nth(1)?
        .replacen('(', "", 1)
        .replacen(')', "", 1);
    values.trim().split(", ").map(|v| v.parse().ok()).collect()
}

impl Collector for Zoneinfo {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("zoneinfo");
        for zone in parse_zoneinfo(&read_kept(&path)?, &path)? {
            let labels = [("node", zone.node.as_str()), ("zone", zone.zone.as_str())];
            for ((_, name, help, counter), v) in FIELDS.iter().zip(&zone.values) {
                let Some(v) = v else { continue };
                if *counter {
                    out.counter(*name, *help, &labels, *v as f64);
                } else {
                    out.gauge(*name, *help, &labels, *v as f64);
                }
            }
            for (i, v) in zone.protection.iter().enumerate() {
                out.gauge(
                    format!("node_zoneinfo_protection_{i}"),
                    format!("Protection array {i}. field"),
                    &labels,
                    *v as f64,
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{collect, write};

    const ZONEINFO: &str = "Node 0, zone      DMA
  per-node stats
      nr_inactive_anon 95612
      nr_dirtied   1189097
  pages free     2949
        min      8
        spanned  4095
        protection: (0, 2039, 31932)
      nr_free_pages 2949
      numa_hit     3
  pagesets
    cpu: 0
              count: 0
              high:  0
Node 0, zone   Normal
  pages free     4539739
        min      5893
        protection: (0, 0, x)
      nr_free_pages 4539739
";

    fn run(root: &Path) -> anyhow::Result<String> {
        collect(&Zoneinfo {
            paths: Paths {
                procfs: root.into(),
                ..Paths::default()
            },
        })
    }

    #[test]
    fn zones_fields_and_protection() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "zoneinfo", ZONEINFO);
        let text = run(dir.path()).unwrap();
        for want in [
            "node_zoneinfo_nr_inactive_anon_pages{node=\"0\",zone=\"DMA\"} 95612\n",
            "# TYPE node_zoneinfo_nr_dirtied_total counter\n",
            "node_zoneinfo_min_pages{node=\"0\",zone=\"Normal\"} 5893\n",
            "node_zoneinfo_protection_2{node=\"0\",zone=\"DMA\"} 31932\n",
            "# HELP node_zoneinfo_protection_1 Protection array 1. field\n",
            "node_zoneinfo_numa_hit_total{node=\"0\",zone=\"DMA\"} 3\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        // Normal's protection array has a non-number: left out, as procfs.
        assert!(
            !text.contains("protection_0{node=\"0\",zone=\"Normal\"}"),
            "{text}"
        );
        assert!(
            !text.contains("nr_inactive_anon_pages{node=\"0\",zone=\"Normal\"}"),
            "{text}"
        );
    }

    #[test]
    fn garbage_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(crate::helpers::is_no_data(&run(dir.path()).unwrap_err()));
        write(
            dir.path(),
            "zoneinfo",
            "Node 0, zone      DMA\n        min      8x\n",
        );
        let err = run(dir.path()).unwrap_err().to_string();
        assert!(err.contains("zoneinfo line 2"), "{err}");
        let twice = "Node 0, zone      DMA\n min 1\nNode 0, zone      DMA\n min 2\n";
        let err = parse_zoneinfo(twice, Path::new("zoneinfo")).unwrap_err();
        assert!(err.to_string().contains("listed twice"), "{err}");
    }
}
