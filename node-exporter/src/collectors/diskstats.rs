//! `node_disk_*` from /proc/diskstats, with `node_disk_info` and the
//! filesystem / device-mapper / ATA info from udev's database
//! (`--path.udev.data`, files `b<major>:<minor>`) and `rotational` from
//! /sys/block/<dev>/queue. Kernels write 14 (up to 4.18), 18 (4.18+, discards)
//! or 20 (5.5+, flushes) fields per line; a metric is emitted only when its
//! field is there, as node_exporter does.

use std::collections::HashMap;
use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::CollectorSpec;
use crate::cli::{string_flag, Flags};
use crate::collector::{Collector, Paths};
use crate::device_filter::DeviceFilter;
use crate::helpers::read_kept;

pub const DEFAULT_DEVICE_EXCLUDE: &str = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "diskstats",
    default_enabled: true,
    flags: || {
        vec![
            string_flag(
                "collector.diskstats.device-exclude",
                DEFAULT_DEVICE_EXCLUDE,
                "Regexp of diskstats devices to exclude (mutually exclusive to device-include).",
            ),
            string_flag(
                "collector.diskstats.ignored-devices",
                "",
                "DEPRECATED: Use collector.diskstats.device-exclude",
            )
            .hide(true),
            string_flag(
                "collector.diskstats.device-include",
                "",
                "Regexp of diskstats devices to include (mutually exclusive to device-exclude).",
            ),
        ]
    },
    build: |f| Ok(Box::new(Diskstats::new(f)?)),
};

/// Read and written sectors are 512-byte units whatever the device's own
/// sector size (Documentation/block/stat.rst).
const SECTOR_BYTES: f64 = 512.0;
/// Times are in milliseconds. Multiplying (not dividing) keeps the float
/// results bit-identical to node_exporter's.
const SECONDS_PER_TICK: f64 = 1.0 / 1000.0;

/// Each stat field after major, minor and name: (metric, help, is counter,
/// scale).
const FIELDS: [(&str, &str, bool, f64); 17] = [
    (
        "node_disk_reads_completed_total",
        "The total number of reads completed successfully.",
        true,
        1.0,
    ),
    (
        "node_disk_reads_merged_total",
        "The total number of reads merged.",
        true,
        1.0,
    ),
    (
        "node_disk_read_bytes_total",
        "The total number of bytes read successfully.",
        true,
        SECTOR_BYTES,
    ),
    (
        "node_disk_read_time_seconds_total",
        "The total number of seconds spent by all reads.",
        true,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_writes_completed_total",
        "The total number of writes completed successfully.",
        true,
        1.0,
    ),
    (
        "node_disk_writes_merged_total",
        "The number of writes merged.",
        true,
        1.0,
    ),
    (
        "node_disk_written_bytes_total",
        "The total number of bytes written successfully.",
        true,
        SECTOR_BYTES,
    ),
    (
        "node_disk_write_time_seconds_total",
        "This is the total number of seconds spent by all writes.",
        true,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_io_now",
        "The number of I/Os currently in progress.",
        false,
        1.0,
    ),
    (
        "node_disk_io_time_seconds_total",
        "Total seconds spent doing I/Os.",
        true,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_io_time_weighted_seconds_total",
        "The weighted # of seconds spent doing I/Os.",
        true,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_discards_completed_total",
        "The total number of discards completed successfully.",
        true,
        1.0,
    ),
    (
        "node_disk_discards_merged_total",
        "The total number of discards merged.",
        true,
        1.0,
    ),
    (
        "node_disk_discarded_sectors_total",
        "The total number of sectors discarded successfully.",
        true,
        1.0,
    ),
    (
        "node_disk_discard_time_seconds_total",
        "This is the total number of seconds spent by all discards.",
        true,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_flush_requests_total",
        "The total number of flush requests completed successfully",
        true,
        1.0,
    ),
    (
        "node_disk_flush_requests_time_seconds_total",
        "This is the total number of seconds spent by all flush requests.",
        true,
        SECONDS_PER_TICK,
    ),
];

/// The udev properties that become ATA gauges: (property, metric, help).
const ATA: [(&str, &str, &str); 3] = [
    (
        "ID_ATA_WRITE_CACHE",
        "node_disk_ata_write_cache",
        "ATA disk has a write cache.",
    ),
    (
        "ID_ATA_WRITE_CACHE_ENABLED",
        "node_disk_ata_write_cache_enabled",
        "ATA disk has its write cache enabled.",
    ),
    (
        "ID_ATA_ROTATION_RATE_RPM",
        "node_disk_ata_rotation_rate_rpm",
        "ATA disk rotation rate in RPMs (0 for SSDs).",
    ),
];

/// One line of /proc/diskstats.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskStat {
    pub major: u32,
    pub minor: u32,
    pub device: String,
    /// The stat fields present on this kernel (11, 15 or 17 of them).
    pub values: Vec<u64>,
}

/// Parses /proc/diskstats. Lines of pre-2.6.25 partitions (4 stat fields)
/// are skipped as node_exporter skips them; fields past the 17 known are
/// ignored so that a newer kernel's additions do not break the collector.
pub fn parse_diskstats(text: &str, path: &Path) -> anyhow::Result<Vec<DiskStat>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() || fields.len() == 7 {
            continue;
        }
        if fields.len() < 14 {
            return Err(anyhow!(
                "parsing {} line {}: {} fields, expected at least 14",
                path.display(),
                i + 1,
                fields.len()
            ));
        }
        let num = |idx: usize, what: &str| -> anyhow::Result<u64> {
            let v = fields.get(idx).copied().unwrap_or("");
            v.parse::<u64>().map_err(|_| {
                anyhow!(
                    "parsing {} line {}: field {what}: {v:?} is not an unsigned integer",
                    path.display(),
                    i + 1
                )
            })
        };
        let major = num(0, "major")?;
        let minor = num(1, "minor")?;
        let values = FIELDS
            .iter()
            .take(fields.len() - 3)
            .enumerate()
            .map(|(j, field)| num(j + 3, field.0))
            .collect::<anyhow::Result<Vec<u64>>>()?;
        out.push(DiskStat {
            major: u32::try_from(major)
                .map_err(|_| anyhow!("parsing {} line {}: bad major", path.display(), i + 1))?,
            minor: u32::try_from(minor)
                .map_err(|_| anyhow!("parsing {} line {}: bad minor", path.display(), i + 1))?,
            device: fields.get(2).copied().unwrap_or_default().to_string(),
            values,
        });
    }
    Ok(out)
}

/// The `E:KEY=value` properties of a udev database file; other records
/// (symlinks, tags, ...) are ignored.
pub fn parse_udev_properties(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("E:"))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

struct Diskstats {
    paths: Paths,
    filter: DeviceFilter,
}

impl Diskstats {
    fn new(f: &Flags) -> anyhow::Result<Self> {
        Ok(Diskstats {
            paths: f.paths.clone(),
            filter: DeviceFilter::from_flags(
                f,
                "collector.diskstats.device-exclude",
                DEFAULT_DEVICE_EXCLUDE,
                "collector.diskstats.ignored-devices",
                "collector.diskstats.device-include",
            )?,
        })
    }

    fn udev_properties(&self, major: u32, minor: u32) -> HashMap<String, String> {
        let path = self.paths.udev_data.join(format!("b{major}:{minor}"));
        match crate::helpers::read_to_string(&path) {
            Ok(text) => parse_udev_properties(&text),
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "Failed to parse udev info");
                HashMap::new()
            }
        }
    }

    fn rotational(&self, device: &str) -> &'static str {
        let path = self
            .paths
            .sysfs
            .join("block")
            .join(device)
            .join("queue/rotational");
        match crate::helpers::read_to_string(path) {
            Ok(s) if s.trim() == "1" => "1",
            _ => "0",
        }
    }
}

impl Collector for Diskstats {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("diskstats");
        let text = read_kept(&path)?;
        for disk in parse_diskstats(&text, &path)? {
            let dev = disk.device.as_str();
            if self.filter.ignored(dev) {
                continue;
            }
            let info = self.udev_properties(disk.major, disk.minor);
            let prop = |k: &str| info.get(k).map(String::as_str).unwrap_or("");
            // The serial printed on the label, else the short one, else
            // ID_SERIAL (virtio disks).
            let serial = [prop("SCSI_IDENT_SERIAL"), prop("ID_SERIAL_SHORT")]
                .into_iter()
                .find(|s| !s.is_empty())
                .unwrap_or_else(|| prop("ID_SERIAL"));
            let major = disk.major.to_string();
            let minor = disk.minor.to_string();
            out.gauge(
                "node_disk_info",
                "Info of /sys/block/<block_device>.",
                &[
                    ("device", dev),
                    ("major", &major),
                    ("minor", &minor),
                    ("path", prop("ID_PATH")),
                    ("wwn", prop("ID_WWN")),
                    ("model", prop("ID_MODEL")),
                    ("serial", serial),
                    ("revision", prop("ID_REVISION")),
                    ("rotational", self.rotational(dev)),
                ],
                1.0,
            );
            for (&v, &(name, help, counter, scale)) in disk.values.iter().zip(FIELDS.iter()) {
                let v = v as f64 * scale;
                if counter {
                    out.counter(name, help, &[("device", dev)], v);
                } else {
                    out.gauge(name, help, &[("device", dev)], v);
                }
            }
            if !prop("ID_FS_TYPE").is_empty() {
                out.gauge(
                    "node_disk_filesystem_info",
                    "Info about disk filesystem.",
                    &[
                        ("device", dev),
                        ("type", prop("ID_FS_TYPE")),
                        ("usage", prop("ID_FS_USAGE")),
                        ("uuid", prop("ID_FS_UUID")),
                        ("version", prop("ID_FS_VERSION")),
                    ],
                    1.0,
                );
            }
            if !prop("DM_NAME").is_empty() {
                out.gauge(
                    "node_disk_device_mapper_info",
                    "Info about disk device mapper.",
                    &[
                        ("device", dev),
                        ("name", prop("DM_NAME")),
                        ("uuid", prop("DM_UUID")),
                        ("vg_name", prop("DM_VG_NAME")),
                        ("lv_name", prop("DM_LV_NAME")),
                        ("lv_layer", prop("DM_LV_LAYER")),
                    ],
                    1.0,
                );
            }
            if !prop("ID_ATA").is_empty() {
                for (key, name, help) in ATA {
                    let Some(raw) = info.get(key) else {
                        tracing::debug!(
                            attribute = key,
                            device = dev,
                            "Udev attribute does not exist"
                        );
                        continue;
                    };
                    match raw.parse::<f64>() {
                        Ok(v) => out.gauge(name, help, &[("device", dev)], v),
                        Err(_) => tracing::error!(
                            attribute = key,
                            device = dev,
                            value = raw.as_str(),
                            "Failed to parse ATA value"
                        ),
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn p() -> &'static Path {
        Path::new("/proc/diskstats")
    }

    #[test]
    fn field_counts_of_all_kernels() {
        let text = "\
   8       0 sda 1 2 3 4 5 6 7 8 9 10 11
   8       1 sda1 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15
 254       0 vda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17
 254       1 vda1 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19
   3       1 hda1 1 2 3 4
";
        let d = parse_diskstats(text, p()).unwrap();
        assert_eq!(d.len(), 4, "the old 4-field partition line is skipped");
        assert_eq!(d[0].values.len(), 11);
        assert_eq!(d[1].values.len(), 15);
        assert_eq!(d[2].values.len(), 17);
        assert_eq!(d[3].values.len(), 17, "unknown future fields are ignored");
        assert_eq!(
            (d[2].major, d[2].minor, d[2].device.as_str()),
            (254, 0, "vda")
        );
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let e = parse_diskstats("   8 0 sda 1 2 3\n", p()).unwrap_err();
        assert!(e.to_string().contains("/proc/diskstats line 1"), "{e}");
        let e = parse_diskstats("8 0 sda 1 2 3 4 5 6 7 8 9 10 x\n8 0 sdb", p()).unwrap_err();
        assert!(e.to_string().contains("node_disk_io_time_weighted"), "{e}");
    }

    #[test]
    fn udev_properties_only_e_records() {
        let info = parse_udev_properties(
            "S:disk/by-id/ata-X\nE:ID_MODEL=Some_Disk\nE:ID_FS_VERSION=LVM2 001\nE:BROKEN\nG:systemd\n",
        );
        assert_eq!(info.get("ID_MODEL").unwrap(), "Some_Disk");
        assert_eq!(info.get("ID_FS_VERSION").unwrap(), "LVM2 001");
        assert_eq!(info.len(), 2);
    }

    #[test]
    fn default_filter_drops_partitions_not_disks() {
        let f = DeviceFilter::from_regexes(Some(Regex::new(DEFAULT_DEVICE_EXCLUDE).unwrap()), None);
        for dev in [
            "sda1",
            "nvme0n1p2",
            "loop0",
            "ram3",
            "zram0",
            "vdb7",
            "xvda1",
        ] {
            assert!(f.ignored(dev), "{dev}");
        }
        for dev in ["sda", "nvme0n1", "vda", "dm-0", "md0", "mmcblk0p1", "sr0"] {
            assert!(!f.ignored(dev), "{dev}");
        }
    }

    fn filter(args: &[&str]) -> anyhow::Result<DeviceFilter> {
        let f = crate::cli::parse(
            std::iter::once("node-exporter")
                .chain(args.iter().copied())
                .map(String::from),
        )
        .unwrap();
        DeviceFilter::from_flags(
            &f,
            "collector.diskstats.device-exclude",
            DEFAULT_DEVICE_EXCLUDE,
            "collector.diskstats.ignored-devices",
            "collector.diskstats.device-include",
        )
    }

    #[test]
    fn include_replaces_the_default_exclude() {
        let f = filter(&["--collector.diskstats.device-include=^sd"]).unwrap();
        assert!(!f.ignored("sda1"), "the default exclude no longer applies");
        assert!(f.ignored("vda"));
        assert!(filter(&[
            "--collector.diskstats.device-include=^sd",
            "--collector.diskstats.device-exclude=^loop"
        ])
        .is_err());
        let f = filter(&["--collector.diskstats.ignored-devices=^sr"]).unwrap();
        assert!(f.ignored("sr0"));
        assert!(!f.ignored("sda1"), "the old flag replaces the default");
        assert!(filter(&[
            "--collector.diskstats.ignored-devices=^sr",
            "--collector.diskstats.device-exclude=^loop"
        ])
        .is_err());
        assert!(filter(&["--collector.diskstats.device-exclude=("]).is_err());
    }

    #[test]
    fn tick_scaling_matches_go() {
        // node_exporter prints 9653.880000000001 for 9653880 ms.
        assert_eq!(9653880f64 * SECONDS_PER_TICK, 9653.880000000001);
    }
}
