//! `node_xfs_*`, per XFS filesystem from /sys/fs/xfs/<device>/stats/stats,
//! as node_exporter's xfs collector. No XFS mounted (no /sys/fs/xfs) is
//! no filesystems, a success as in node_exporter, after one failed
//! directory open a scrape.

use std::path::Path;

use anyhow::{anyhow, bail};
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "xfs",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Xfs {
            paths: f.paths.clone(),
        }))
    },
};

struct Xfs {
    paths: Paths,
}

/// (stats line, value index, metric, help) of every metric reported.
const METRICS: &[(&str, usize, &str, &str)] = &[
    ("abt", 1, "node_xfs_allocation_btree_compares_total", "Number of allocation B-tree compares for a filesystem."),
    ("abt", 0, "node_xfs_allocation_btree_lookups_total", "Number of allocation B-tree lookups for a filesystem."),
    ("abt", 3, "node_xfs_allocation_btree_records_deleted_total", "Number of allocation B-tree records deleted for a filesystem."),
    ("abt", 2, "node_xfs_allocation_btree_records_inserted_total", "Number of allocation B-tree records inserted for a filesystem."),
    ("bmbt", 1, "node_xfs_block_map_btree_compares_total", "Number of block map B-tree compares for a filesystem."),
    ("bmbt", 0, "node_xfs_block_map_btree_lookups_total", "Number of block map B-tree lookups for a filesystem."),
    ("bmbt", 3, "node_xfs_block_map_btree_records_deleted_total", "Number of block map B-tree records deleted for a filesystem."),
    ("bmbt", 2, "node_xfs_block_map_btree_records_inserted_total", "Number of block map B-tree records inserted for a filesystem."),
    ("blk_map", 6, "node_xfs_block_mapping_extent_list_compares_total", "Number of extent list compares for a filesystem."),
    ("blk_map", 4, "node_xfs_block_mapping_extent_list_deletions_total", "Number of extent list deletions for a filesystem."),
    ("blk_map", 3, "node_xfs_block_mapping_extent_list_insertions_total", "Number of extent list insertions for a filesystem."),
    ("blk_map", 5, "node_xfs_block_mapping_extent_list_lookups_total", "Number of extent list lookups for a filesystem."),
    ("blk_map", 0, "node_xfs_block_mapping_reads_total", "Number of block map for read operations for a filesystem."),
    ("blk_map", 2, "node_xfs_block_mapping_unmaps_total", "Number of block unmaps (deletes) for a filesystem."),
    ("blk_map", 1, "node_xfs_block_mapping_writes_total", "Number of block map for write operations for a filesystem."),
    ("dir", 1, "node_xfs_directory_operation_create_total", "Number of times a new directory entry was created for a filesystem."),
    ("dir", 3, "node_xfs_directory_operation_getdents_total", "Number of times the directory getdents operation was performed for a filesystem."),
    ("dir", 0, "node_xfs_directory_operation_lookup_total", "Number of file name directory lookups which miss the operating systems directory name lookup cache."),
    ("dir", 2, "node_xfs_directory_operation_remove_total", "Number of times an existing directory entry was created for a filesystem."),
    ("extent_alloc", 1, "node_xfs_extent_allocation_blocks_allocated_total", "Number of blocks allocated for a filesystem."),
    ("extent_alloc", 3, "node_xfs_extent_allocation_blocks_freed_total", "Number of blocks freed for a filesystem."),
    ("extent_alloc", 0, "node_xfs_extent_allocation_extents_allocated_total", "Number of extents allocated for a filesystem."),
    ("extent_alloc", 2, "node_xfs_extent_allocation_extents_freed_total", "Number of extents freed for a filesystem."),
    ("ig", 0, "node_xfs_inode_operation_attempts_total", "Number of times the OS looked for an XFS inode in the inode cache."),
    ("ig", 6, "node_xfs_inode_operation_attribute_changes_total", "Number of times the OS explicitly changed the attributes of an XFS inode."),
    ("ig", 4, "node_xfs_inode_operation_duplicates_total", "Number of times the OS tried to add a missing XFS inode to the inode cache, but found it had already been added by another process."),
    ("ig", 1, "node_xfs_inode_operation_found_total", "Number of times the OS looked for and found an XFS inode in the inode cache."),
    ("ig", 3, "node_xfs_inode_operation_missed_total", "Number of times the OS looked for an XFS inode in the cache, but did not find it."),
    ("ig", 5, "node_xfs_inode_operation_reclaims_total", "Number of times the OS reclaimed an XFS inode from the inode cache to free memory for another purpose."),
    ("ig", 2, "node_xfs_inode_operation_recycled_total", "Number of times the OS found an XFS inode in the cache, but could not use it as it was being recycled."),
    ("rw", 1, "node_xfs_read_calls_total", "Number of read(2) system calls made to files in a filesystem."),
    ("vnodes", 0, "node_xfs_vnode_active_total", "Number of vnodes not on free lists for a filesystem."),
    ("vnodes", 1, "node_xfs_vnode_allocate_total", "Number of times vn_alloc called for a filesystem."),
    ("vnodes", 2, "node_xfs_vnode_get_total", "Number of times vn_get called for a filesystem."),
    ("vnodes", 3, "node_xfs_vnode_hold_total", "Number of times vn_hold called for a filesystem."),
    ("vnodes", 5, "node_xfs_vnode_reclaim_total", "Number of times vn_reclaim called for a filesystem."),
    ("vnodes", 4, "node_xfs_vnode_release_total", "Number of times vn_rele called for a filesystem."),
    ("vnodes", 6, "node_xfs_vnode_remove_total", "Number of times vn_remove called for a filesystem."),
    ("rw", 0, "node_xfs_write_calls_total", "Number of write(2) system calls made to files in a filesystem."),
];

/// How many values each line the kernel writes must have (as procfs
/// checks them); `vnodes` lacks its last one on old kernels.
fn expected_values(key: &str) -> Option<&'static [usize]> {
    Some(match key {
        "extent_alloc" | "abt" | "bmbt" | "dir" | "attr" => &[4],
        "blk_map" | "ig" => &[7],
        "trans" | "icluster" | "xpc" => &[3],
        "log" => &[5],
        "rw" => &[2],
        "vnodes" => &[7, 8],
        "buf" => &[9],
        _ => return None,
    })
}

/// One filesystem's stats file: the values of each line by key. Every line
/// but `xpc` holds 32-bit counters; lines with a key only are skipped.
pub fn parse_xfs_stats<'a>(text: &'a str, path: &Path) -> anyhow::Result<Vec<(&'a str, Vec<u64>)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [key, values @ ..] = &fields[..] else {
            continue;
        };
        if values.is_empty() {
            continue;
        }
        let err = |what: String| anyhow!("parsing {} line {}: {what}", path.display(), i + 1);
        let parsed = values
            .iter()
            .map(|v| {
                let n: u64 = v
                    .parse()
                    .map_err(|_| err(format!("{v:?} is not an unsigned integer")))?;
                if *key != "xpc" && n > u64::from(u32::MAX) {
                    return Err(err(format!("{v:?} is not a 32-bit counter")));
                }
                Ok(n)
            })
            .collect::<anyhow::Result<Vec<u64>>>()?;
        if let Some(want) = expected_values(key) {
            if !want.contains(&parsed.len()) {
                return Err(err(format!(
                    "{key} has {} values, expected {want:?}",
                    parsed.len()
                )));
            }
        }
        out.push((*key, parsed));
    }
    Ok(out)
}

impl Collector for Xfs {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let dir = self.paths.sys("fs/xfs");
        let mut found = false;
        for device in crate::helpers::dir_names_if_any(&dir)? {
            let path = dir.join(&device).join("stats/stats");
            // Only the per-filesystem directories have stats/stats.
            let text = match crate::helpers::read_to_string(&path) {
                Ok(t) => t,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) =>
                {
                    continue
                }
                Err(e) => bail!("reading {}: {e}", path.display()),
            };
            found = true;
            let lines = parse_xfs_stats(&text, &path)?;
            for (key, index, name, help) in METRICS {
                // A line the kernel did not write counts 0, as in procfs.
                let value = lines
                    .iter()
                    .rev()
                    .find(|(k, _)| k == key)
                    .and_then(|(_, v)| v.get(*index))
                    .copied()
                    .unwrap_or(0);
                out.counter(*name, *help, &[("device", device.as_str())], value as f64);
            }
        }
        // None mounted: remembered until a mount or a device changes.
        crate::collector::devices_found(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{collect, sysfs_at, write};

    #[test]
    fn reports_each_filesystem_and_zero_for_missing_lines() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "fs/xfs/sda1/stats/stats",
            "extent_alloc 1 872 0 0\nrw 28 3\nvnodes 4 0 0 0 1 1 1\nxpc 3571712 3568056 0\n",
        );
        write(dir.path(), "fs/xfs/stats/stats", "rw 9 9\n");
        let got = collect(&Xfs {
            paths: sysfs_at(dir.path()),
        })
        .unwrap();
        for want in [
            "node_xfs_extent_allocation_blocks_allocated_total{device=\"sda1\"} 872",
            "node_xfs_write_calls_total{device=\"sda1\"} 28",
            "node_xfs_read_calls_total{device=\"sda1\"} 3",
            "node_xfs_vnode_remove_total{device=\"sda1\"} 1",
            "node_xfs_directory_operation_lookup_total{device=\"sda1\"} 0",
        ] {
            assert!(got.contains(want), "{want} not in\n{got}");
        }
        assert!(!got.contains("device=\"stats\""), "{got}");
    }

    #[test]
    fn absent_xfs_is_no_filesystems() {
        let dir = tempfile::tempdir().unwrap();
        let got = collect(&Xfs {
            paths: sysfs_at(dir.path()),
        })
        .unwrap();
        assert!(!got.contains("node_xfs"), "{got}");
    }

    #[test]
    fn bad_lines_name_the_file() {
        for bad in [
            "rw 1\n",
            "abt 1 2 3 x\n",
            "ig 1 1 1 1 1 1 4294967296\n",
            "push_ail -1\n",
        ] {
            let err = parse_xfs_stats(bad, Path::new("/sys/fs/xfs/sda1/stats/stats")).unwrap_err();
            assert!(
                err.to_string().contains("sda1/stats/stats"),
                "{bad:?}: {err}"
            );
        }
    }
}
