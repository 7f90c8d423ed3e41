//! `node_btrfs_*` per Btrfs filesystem from /sys/fs/btrfs/<uuid>, as
//! node_exporter's btrfs collector reads sysfs: label, commit statistics,
//! global reserve, allocation per block group type and layout, and device
//! sizes. No Btrfs (no /sys/fs/btrfs, or only its `features`) is an empty
//! success as in node_exporter, after one directory listing a scrape.
//!
//! Like node_exporter, it also asks each mounted Btrfs filesystem (from
//! PID 1's mount table, under `--path.rootfs`) for its devices over ioctl:
//! where that works, devices are reported with their `btrfs_dev_uuid`,
//! unused bytes and error counters instead of the sysfs sizes. The mount
//! table is read only when sysfs lists a filesystem.

use std::collections::HashMap;
use std::path::Path;

use anyhow::anyhow;
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

impl Btrfs {
    /// Devices of each mounted Btrfs filesystem by ioctl, by filesystem id
    /// (hex, no dashes). Failures leave a filesystem out, logged at debug
    /// level: node_exporter then falls back to the sysfs sizes too.
    fn ioctl_stats(&self) -> HashMap<String, Vec<ioctl::Device>> {
        let mut out = HashMap::new();
        let mounts = match self.mounts() {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "Error querying btrfs device stats with ioctl");
                return out;
            }
        };
        let mut devices_done = std::collections::HashSet::new();
        for m in mounts.iter().filter(|m| m.fs_type == "btrfs") {
            if devices_done.contains(&m.device) {
                continue;
            }
            let path = self.paths.root(&m.mount_point);
            match ioctl::filesystem_devices(&path) {
                Ok((fsid, devices)) => {
                    devices_done.insert(m.device.clone());
                    out.entry(fsid).or_insert(devices);
                }
                Err(e) => {
                    tracing::debug!(mount_point = %path.display(), error = %e, "Error inspecting btrfs mountpoint");
                }
            }
        }
        out
    }

    /// PID 1's mount table, else ours (hidepid), as node_exporter reads it.
    fn mounts(&self) -> anyhow::Result<Vec<super::filesystem::Mount>> {
        let first = self.paths.proc("1/mountinfo");
        let path = if first.exists() {
            first
        } else {
            self.paths.proc("self/mountinfo")
        };
        let text = crate::helpers::read_to_string(&path)
            .map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
        super::filesystem::parse_mountinfo(&text, &path)
    }
}

/// The Btrfs ioctls node_exporter uses (linux/btrfs.h): FS_INFO for the
/// filesystem id and device ids, DEV_INFO and GET_DEV_STATS per device.
mod ioctl {
    use std::os::fd::AsRawFd;
    use std::path::Path;

    const MAGIC: u32 = 0x94;

    #[repr(C)]
    struct FsInfoArgs {
        max_id: u64,
        num_devices: u64,
        fsid: [u8; 16],
        nodesize: u32,
        sectorsize: u32,
        clone_alignment: u32,
        csum_type: u16,
        csum_size: u16,
        flags: u64,
        generation: u64,
        metadata_uuid: [u8; 16],
        reserved: [u8; 944],
    }

    #[repr(C)]
    struct DevInfoArgs {
        devid: u64,
        uuid: [u8; 16],
        bytes_used: u64,
        total_bytes: u64,
        fsid: [u8; 16],
        unused: [u64; 377],
        path: [u8; 1024],
    }

    #[repr(C)]
    struct GetDevStats {
        devid: u64,
        nr_items: u64,
        flags: u64,
        values: [u64; 5],
        unused: [u64; 121],
    }

    // The kernel's sizes; the request numbers encode them.
    const _: () = assert!(std::mem::size_of::<FsInfoArgs>() == 1024);
    const _: () = assert!(std::mem::size_of::<DevInfoArgs>() == 4096);
    const _: () = assert!(std::mem::size_of::<GetDevStats>() == 1032);

    const FS_INFO: libc::Ioctl = libc::_IOR::<FsInfoArgs>(MAGIC, 31);
    const DEV_INFO: libc::Ioctl = libc::_IOWR::<DevInfoArgs>(MAGIC, 30);
    const GET_DEV_STATS: libc::Ioctl = libc::_IOWR::<GetDevStats>(MAGIC, 52);

    #[derive(Debug, PartialEq)]
    pub struct Device {
        pub path: String,
        pub uuid: String,
        pub bytes_used: u64,
        pub total_bytes: u64,
        /// write, read, flush, corruption, generation
        pub errors: [u64; 5],
    }

    /// Runs one ioctl whose argument is `T`.
    fn call<T>(fd: i32, request: libc::Ioctl, arg: &mut T) -> std::io::Result<()> {
        // SAFETY: `arg` is a live, exclusively borrowed `T` of the size
        // encoded in `request`, all of whose bit patterns are valid.
        let rc = unsafe { libc::ioctl(fd, request, arg as *mut T) };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// All-integer argument structs start zeroed, as the kernel expects.
    fn zeroed<T>() -> Box<T> {
        // SAFETY: only used for the `repr(C)` integer structs above, for
        // which all-zero bytes are a valid value.
        unsafe { Box::new(std::mem::zeroed()) }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// `8-4-4-4-12` hex, as a device UUID is written.
    pub fn uuid_string(b: &[u8; 16]) -> String {
        format!(
            "{}-{}-{}-{}-{}",
            hex(&b[..4]),
            hex(&b[4..6]),
            hex(&b[6..8]),
            hex(&b[8..10]),
            hex(&b[10..])
        )
    }

    /// The filesystem mounted at `mount_point`: its id (hex, no dashes)
    /// and devices.
    pub fn filesystem_devices(mount_point: &Path) -> std::io::Result<(String, Vec<Device>)> {
        let dir = std::fs::File::open(mount_point)?;
        let fd = dir.as_raw_fd();
        let mut info = zeroed::<FsInfoArgs>();
        call(fd, FS_INFO, &mut *info)?;
        let mut devices = Vec::new();
        // Device ids need not start at 0 nor be contiguous.
        for id in 0..=info.max_id {
            let mut dev = zeroed::<DevInfoArgs>();
            dev.devid = id;
            match call(fd, DEV_INFO, &mut *dev) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENODEV) => continue,
                Err(e) => return Err(e),
            }
            let mut stats = zeroed::<GetDevStats>();
            stats.devid = id;
            stats.nr_items = 5;
            call(fd, GET_DEV_STATS, &mut *stats)?;
            let end = dev
                .path
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(dev.path.len());
            devices.push(Device {
                path: String::from_utf8_lossy(&dev.path[..end]).into_owned(),
                uuid: uuid_string(&dev.uuid),
                bytes_used: dev.bytes_used,
                total_bytes: dev.total_bytes,
                errors: stats.values,
            });
            if devices.len() as u64 == info.num_devices {
                break;
            }
        }
        Ok((hex(&info.fsid), devices))
    }
}

impl Collector for Btrfs {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let root = self.paths.sys("fs/btrfs");
        // Filesystems are named by UUID; `features` is not one.
        let names: Vec<String> = crate::helpers::dir_names_if_any(&root)?
            .into_iter()
            .filter(|n| n.contains('-'))
            .collect();
        // None mounted: remembered until a mount or a device changes.
        crate::collector::devices_found(!names.is_empty())?;
        let ioctl = self.ioctl_stats();
        for name in names {
            let fs = read_filesystem(&root.join(&name))?;
            let by_ioctl = ioctl.get(&fs.uuid.replace('-', ""));
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
            let Some(devices) = by_ioctl else {
                for (device, bytes) in &fs.devices {
                    out.gauge(
                        "node_btrfs_device_size_bytes",
                        "Size of a device that is part of the filesystem.",
                        &[("uuid", uuid), ("device", device.as_str())],
                        *bytes as f64,
                    );
                }
                continue;
            };
            for dev in devices {
                // `/dev/sda` -> `sda`, as the sysfs names are.
                let name = dev.path.rsplit('/').next().unwrap_or(&dev.path);
                let labels = [
                    ("uuid", uuid),
                    ("device", name),
                    ("btrfs_dev_uuid", dev.uuid.as_str()),
                ];
                out.gauge(
                    "node_btrfs_device_size_bytes",
                    "Size of a device that is part of the filesystem.",
                    &labels,
                    dev.total_bytes as f64,
                );
                out.gauge(
                    "node_btrfs_device_unused_bytes",
                    "Unused bytes unused on a device that is part of the filesystem.",
                    &labels,
                    dev.total_bytes.wrapping_sub(dev.bytes_used) as f64,
                );
                for (kind, n) in ["write", "read", "flush", "corruption", "generation"]
                    .iter()
                    .zip(dev.errors)
                {
                    out.counter(
                        "node_btrfs_device_errors_total",
                        "Errors reported for the device",
                        &[
                            ("uuid", uuid),
                            ("type", kind),
                            ("device", name),
                            ("btrfs_dev_uuid", dev.uuid.as_str()),
                        ],
                        n as f64,
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
    fn ioctl_ids_are_written_as_node_exporter_writes_them() {
        let id: [u8; 16] = [
            0x12, 0x27, 0xbb, 0xba, 0x59, 0x9c, 0x41, 0xe0, 0x9e, 0xda, 0xd7, 0xd2, 0xc2, 0xd3,
            0xf3, 0x2a,
        ];
        assert_eq!(
            ioctl::uuid_string(&id),
            "1227bbba-599c-41e0-9eda-d7d2c2d3f32a"
        );
        // Not a Btrfs mount: the ioctl fails, and the sysfs sizes are used.
        let dir = tempfile::tempdir().unwrap();
        assert!(ioctl::filesystem_devices(dir.path()).is_err());
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
