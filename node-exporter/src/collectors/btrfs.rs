//! `node_btrfs_*` per Btrfs filesystem from /sys/fs/btrfs/<uuid>, as
//! node_exporter's btrfs collector reads sysfs: label, commit statistics,
//! global reserve, allocation per block group type and layout, and device
//! sizes. No Btrfs (no /sys/fs/btrfs, or only its `features`) is an empty
//! success as in node_exporter, after one directory listing a scrape.
//!
//! node_exporter also asks mounted filesystems for per-device error
//! counters and usage over ioctl (`device_errors_total`,
//! `device_unused_bytes`, a `btrfs_dev_uuid` label); that part is not here
//! yet, so device sizes always come from sysfs, as node_exporter does when
//! the ioctls fail.

use std::path::Path;

use anyhow::{anyhow, bail};
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "btrfs",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Btrfs {
            paths: f.paths.clone(),
        }))
    },
};

struct Btrfs {
    paths: Paths,
}

/// Linux counts device sizes in 512-byte sectors, whatever the device.
const SECTOR_SIZE: u64 = 512;

#[derive(Debug, Default, PartialEq)]
pub struct Layout {
    pub mode: String,
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub ratio: f64,
}

#[derive(Debug, Default, PartialEq)]
pub struct Allocation {
    pub reserved_bytes: u64,
    pub layouts: Vec<Layout>,
}

#[derive(Debug, Default, PartialEq)]
pub struct Filesystem {
    pub uuid: String,
    pub label: String,
    pub commits: u64,
    pub last_commit_ms: u64,
    pub max_commit_ms: u64,
    pub total_commit_ms: u64,
    pub global_rsv_size: u64,
    /// data, metadata, system
    pub allocation: [Allocation; 3],
    /// (device, bytes)
    pub devices: Vec<(String, u64)>,
}

/// A sysfs file's trimmed text; a missing one is empty, as procfs reads it.
fn text(path: &Path) -> anyhow::Result<String> {
    match crate::helpers::read_to_string(path) {
        Ok(t) => Ok(t.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(anyhow!("reading {}: {e}", path.display())),
    }
}

/// A number file; missing is 0. Garbage fails, naming the file (procfs
/// would read it as 0, hiding a broken file).
fn value(path: &Path) -> anyhow::Result<u64> {
    let t = text(path)?;
    if t.is_empty() {
        return Ok(0);
    }
    crate::helpers::parse_attr(&t, path, "an unsigned integer")
}

/// Sorted entry names of a directory that must exist.
fn list(path: &Path, dirs_only: bool) -> anyhow::Result<Vec<String>> {
    let rd = std::fs::read_dir(path).map_err(|e| anyhow!("listing {}: {e}", path.display()))?;
    let mut names = Vec::new();
    for e in rd.flatten() {
        // Layout directories are real directories; devices are symlinks.
        if dirs_only && !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// How many bytes of raw space a byte of data takes in a layout.
fn ratio(mode: &str, devices: usize) -> f64 {
    let n = devices as f64;
    match mode {
        "single" | "raid0" => 1.0,
        "dup" | "raid1" | "raid10" => 2.0,
        "raid5" => n / (n - 1.0),
        "raid6" => n / (n - 2.0),
        _ => 0.0,
    }
}

/// `commit_stats`: `name value` lines; names other than the four reported
/// are skipped.
pub fn parse_commit_stats(text: &str, path: &Path) -> anyhow::Result<[u64; 4]> {
    let mut out = [0u64; 4];
    for (i, line) in text.lines().enumerate() {
        let mut f = line.split_whitespace();
        let (Some(key), Some(v)) = (f.next(), f.next()) else {
            continue;
        };
        let slot = match key {
            "commits" => 0,
            "last_commit_ms" => 1,
            "max_commit_ms" => 2,
            "total_commit_ms" => 3,
            _ => continue,
        };
        out[slot] = v.parse().map_err(|_| {
            anyhow!(
                "parsing {} line {}: {key}: {v:?} is not an unsigned integer",
                path.display(),
                i + 1
            )
        })?;
    }
    Ok(out)
}

/// One filesystem's directory, /sys/fs/btrfs/<uuid>.
pub fn read_filesystem(dir: &Path) -> anyhow::Result<Filesystem> {
    let devices: Vec<(String, u64)> = list(&dir.join("devices"), false)?
        .into_iter()
        .map(|d| {
            let size = value(&dir.join("devices").join(&d).join("size"))?;
            Ok((d, size.saturating_mul(SECTOR_SIZE)))
        })
        .collect::<anyhow::Result<_>>()?;
    // procfs requires the features directory too.
    list(&dir.join("features"), false)?;
    let commit_path = dir.join("commit_stats");
    let [commits, last, max, total] = parse_commit_stats(&text(&commit_path)?, &commit_path)?;
    let mut allocation: [Allocation; 3] = Default::default();
    for (slot, kind) in allocation.iter_mut().zip(["data", "metadata", "system"]) {
        let a = dir.join("allocation").join(kind);
        slot.reserved_bytes = value(&a.join("bytes_reserved"))?;
        for mode in list(&a, true)? {
            slot.layouts.push(Layout {
                total_bytes: value(&a.join(&mode).join("total_bytes"))?,
                used_bytes: value(&a.join(&mode).join("used_bytes"))?,
                ratio: ratio(&mode, devices.len()),
                mode,
            });
        }
    }
    let mut uuid = text(&dir.join("metadata_uuid"))?;
    if uuid.is_empty() {
        uuid = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    Ok(Filesystem {
        uuid,
        label: text(&dir.join("label"))?,
        commits,
        last_commit_ms: last,
        max_commit_ms: max,
        total_commit_ms: total,
        global_rsv_size: value(&dir.join("allocation/global_rsv_size"))?,
        allocation,
        devices,
    })
}

impl Collector for Btrfs {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let root = self.paths.sys("fs/btrfs");
        let names = match std::fs::read_dir(&root) {
            Ok(rd) => {
                let mut v: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    // Filesystems are named by UUID; `features` is not one.
                    .filter(|n| n.contains('-'))
                    .collect();
                v.sort();
                v
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => bail!("listing {}: {e}", root.display()),
        };
        for name in names {
            let fs = read_filesystem(&root.join(&name))?;
            let uuid = fs.uuid.as_str();
            out.gauge(
                "node_btrfs_info",
                "Filesystem information",
                &[("uuid", uuid), ("label", fs.label.as_str())],
                1.0,
            );
            out.gauge(
                "node_btrfs_global_rsv_size_bytes",
                "Size of global reserve.",
                &[("uuid", uuid)],
                fs.global_rsv_size as f64,
            );
            out.counter(
                "node_btrfs_commits_total",
                "The total number of commits that have occurred.",
                &[("uuid", uuid)],
                fs.commits as f64,
            );
            out.gauge(
                "node_btrfs_last_commit_seconds",
                "Duration of the most recent commit, in seconds.",
                &[("uuid", uuid)],
                fs.last_commit_ms as f64 / 1000.0,
            );
            out.gauge(
                "node_btrfs_max_commit_seconds",
                "Duration of the slowest commit, in seconds.",
                &[("uuid", uuid)],
                fs.max_commit_ms as f64 / 1000.0,
            );
            out.counter(
                "node_btrfs_commit_seconds_total",
                "Sum of the duration of all commits, in seconds.",
                &[("uuid", uuid)],
                fs.total_commit_ms as f64 / 1000.0,
            );
            for (kind, a) in ["data", "metadata", "system"].iter().zip(&fs.allocation) {
                out.gauge(
                    "node_btrfs_reserved_bytes",
                    "Amount of space reserved for a data type",
                    &[("uuid", uuid), ("block_group_type", kind)],
                    a.reserved_bytes as f64,
                );
                for l in &a.layouts {
                    let labels = [
                        ("uuid", uuid),
                        ("block_group_type", kind),
                        ("mode", l.mode.as_str()),
                    ];
                    out.gauge(
                        "node_btrfs_used_bytes",
                        "Amount of used space by a layout/data type",
                        &labels,
                        l.used_bytes as f64,
                    );
                    out.gauge(
                        "node_btrfs_size_bytes",
                        "Amount of space allocated for a layout/data type",
                        &labels,
                        l.total_bytes as f64,
                    );
                    out.gauge(
                        "node_btrfs_allocation_ratio",
                        "Data allocation ratio for a layout/data type",
                        &labels,
                        l.ratio,
                    );
                }
            }
            for (device, bytes) in &fs.devices {
                out.gauge(
                    "node_btrfs_device_size_bytes",
                    "Size of a device that is part of the filesystem.",
                    &[("uuid", uuid), ("device", device.as_str())],
                    *bytes as f64,
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::write;

    fn fixture(r: &Path) {
        write(r, "devices/sda/size", "20971520\n");
        write(r, "devices/sdb/size", "20971520\n");
        write(r, "devices/sdc/size", "20971520\n");
        write(r, "features/big_metadata", "1\n");
        write(r, "label", "home\n");
        write(
            r,
            "commit_stats",
            "commits 12\ncur_commit_ms 0\nlast_commit_ms 1500\n",
        );
        write(r, "allocation/global_rsv_size", "16777216\n");
        write(r, "allocation/data/bytes_reserved", "4096\n");
        write(r, "allocation/data/raid5/total_bytes", "644087808\n");
        write(r, "allocation/data/raid5/used_bytes", "0\n");
        write(r, "allocation/metadata/raid1/total_bytes", "1073741824\n");
        write(r, "allocation/metadata/raid1/used_bytes", "933888\n");
        write(r, "allocation/system/bytes_reserved", "0\n");
    }

    #[test]
    fn reads_allocation_layouts_commits_and_devices() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path().join("0abb23a9-579b-43e6-ad30-227ef47fcb9d");
        fixture(&r);
        let fs = read_filesystem(&r).unwrap();
        assert_eq!(fs.uuid, "0abb23a9-579b-43e6-ad30-227ef47fcb9d");
        assert_eq!(fs.label, "home");
        assert_eq!(
            (fs.commits, fs.last_commit_ms, fs.total_commit_ms),
            (12, 1500, 0)
        );
        assert_eq!(fs.global_rsv_size, 16777216);
        assert_eq!(fs.devices[0], ("sda".to_string(), 20971520 * 512));
        assert_eq!(fs.allocation[0].reserved_bytes, 4096);
        assert_eq!(fs.allocation[0].layouts[0].mode, "raid5");
        assert_eq!(fs.allocation[0].layouts[0].ratio, 1.5);
        assert_eq!(fs.allocation[1].layouts[0].ratio, 2.0);
        assert!(fs.allocation[2].layouts.is_empty());
    }

    #[test]
    fn garbage_fails_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path().join("fs-1");
        fixture(&r);
        write(&r, "allocation/data/raid5/used_bytes", "lots\n");
        let err = read_filesystem(&r).unwrap_err();
        assert!(err.to_string().contains("raid5/used_bytes"), "{err}");
        write(&r, "allocation/data/raid5/used_bytes", "0\n");
        write(&r, "commit_stats", "commits 1x\n");
        let err = read_filesystem(&r).unwrap_err();
        assert!(err.to_string().contains("commit_stats"), "{err}");
        std::fs::remove_dir_all(r.join("devices")).unwrap();
        let err = read_filesystem(&r).unwrap_err();
        assert!(err.to_string().contains("devices"), "{err}");
    }
}
