//! `node_dmmultipath_*`, as node_exporter's dmmultipath collector: the
//! device-mapper devices of /sys/block whose `dm/uuid` starts `mpath-`,
//! with their size, suspension and the state of each path (`slaves/`).
//! A file missing or unreadable for permissions is "no data", as in
//! node_exporter. A host without multipath costs one listing of
//! /sys/block and one read of `dm/uuid` per device-mapper device.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, NoData, Paths};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "dmmultipath",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(DmMultipath {
            paths: f.paths.clone(),
        }))
    },
};

struct DmMultipath {
    paths: Paths,
}

#[derive(Debug, PartialEq)]
pub struct MultipathDevice {
    pub name: String,
    pub sysfs_name: String,
    pub uuid: String,
    pub suspended: bool,
    pub size_bytes: u64,
    /// (path device, state)
    pub paths: Vec<(String, String)>,
}

/// Not found and permission denied are [`NoData`], as node_exporter
/// treats them; other errors name the file.
fn io_error(path: &Path, e: std::io::Error) -> anyhow::Error {
    use std::io::ErrorKind::{NotFound, PermissionDenied};
    match e.kind() {
        NotFound | PermissionDenied => NoData(format!("{}: {e}", path.display())).into(),
        _ => anyhow!("reading {}: {e}", path.display()),
    }
}

fn attr(path: &Path) -> anyhow::Result<String> {
    crate::helpers::read_sysfs_attr(path).map_err(|e| io_error(path, e))
}

fn attr_u64(path: &Path) -> anyhow::Result<u64> {
    crate::helpers::parse_attr(&attr(path)?, path, "an unsigned integer")
}

fn sorted_names(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut v: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    Ok(v)
}

/// The multipath devices under `block` (/sys/block).
pub fn read_multipath_devices(block: &Path) -> anyhow::Result<Vec<MultipathDevice>> {
    let mut out = Vec::new();
    for dm in sorted_names(block).map_err(|e| io_error(block, e))? {
        if !dm.starts_with("dm-") {
            continue;
        }
        let dir = block.join(&dm);
        let uuid_path = dir.join("dm/uuid");
        let uuid = match crate::helpers::read_sysfs_attr(&uuid_path) {
            Ok(u) => u,
            // Not a device-mapper device after all.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(&uuid_path, e)),
        };
        if !uuid.starts_with("mpath-") {
            continue;
        }
        let name = attr(&dir.join("dm/name"))?;
        let suspended = attr_u64(&dir.join("dm/suspended"))? == 1;
        let sectors = attr_u64(&dir.join("size"))?;
        let slaves = dir.join("slaves");
        let slave_names = match sorted_names(&slaves) {
            Ok(v) => v,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_error(&slaves, e)),
        };
        let mut paths = Vec::new();
        for slave in slave_names {
            let state = attr(&block.join(&slave).join("device/state"))?;
            paths.push((slave, state));
        }
        out.push(MultipathDevice {
            name,
            sysfs_name: dm,
            uuid,
            suspended,
            // Linux counts block device sizes in 512-byte sectors.
            size_bytes: sectors.saturating_mul(512),
            paths,
        });
    }
    Ok(out)
}

impl Collector for DmMultipath {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let devices = read_multipath_devices(&self.paths.sys("block"))?;
        let found = !devices.is_empty();
        for dev in devices {
            let labels = [
                ("device", dev.name.as_str()),
                ("sysfs_name", dev.sysfs_name.as_str()),
            ];
            out.gauge(
                "node_dmmultipath_device_info",
                "Non-numeric information about a DM-multipath device.",
                &[
                    ("device", dev.name.as_str()),
                    ("sysfs_name", dev.sysfs_name.as_str()),
                    ("uuid", dev.uuid.as_str()),
                ],
                1.0,
            );
            out.gauge(
                "node_dmmultipath_device_active",
                "Whether the multipath device-mapper device is active (1) or suspended (0).",
                &labels,
                if dev.suspended { 0.0 } else { 1.0 },
            );
            out.gauge(
                "node_dmmultipath_device_size_bytes",
                "Size of the multipath device in bytes, read from /sys/block/<dm>/size.",
                &labels,
                dev.size_bytes as f64,
            );
            // SCSI paths in use are `running`, NVMe ones `live`.
            let active = dev
                .paths
                .iter()
                .filter(|(_, s)| s == "running" || s == "live")
                .count();
            for (path, state) in &dev.paths {
                out.gauge(
                    "node_dmmultipath_path_state",
                    "Reports the underlying device state for a multipath path, as read from /sys/block/<dev>/device/state.",
                    &[
                        ("device", dev.name.as_str()),
                        ("path", path.as_str()),
                        ("state", state.as_str()),
                    ],
                    1.0,
                );
            }
            out.gauge(
                "node_dmmultipath_device_paths",
                "Number of paths for a multipath device.",
                &labels,
                dev.paths.len() as f64,
            );
            out.gauge(
                "node_dmmultipath_device_paths_active",
                "Number of paths in active state (SCSI running or NVMe live) for a multipath device.",
                &labels,
                active as f64,
            );
            out.gauge(
                "node_dmmultipath_device_paths_failed",
                "Number of paths not in active state for a multipath device.",
                &labels,
                (dev.paths.len() - active) as f64,
            );
        }
        crate::collector::devices_found(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::write;

    #[test]
    fn finds_multipath_maps_and_their_paths() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "dm-5/dm/uuid", "mpath-3600508b1001c1234\n");
        write(r, "dm-5/dm/name", "mpathA\n");
        write(r, "dm-5/dm/suspended", "0\n");
        write(r, "dm-5/size", "104857600\n");
        write(r, "dm-5/slaves/sdi/.keep", "");
        write(r, "dm-5/slaves/sdj/.keep", "");
        write(r, "sdi/device/state", "running\n");
        write(r, "sdj/device/state", "offline\n");
        // An LVM volume: device-mapper, not multipath.
        write(r, "dm-0/dm/uuid", "LVM-abc\n");
        // Not device-mapper at all.
        write(r, "dm-9/size", "1\n");
        let got = read_multipath_devices(r).unwrap();
        assert_eq!(
            got,
            [MultipathDevice {
                name: "mpathA".into(),
                sysfs_name: "dm-5".into(),
                uuid: "mpath-3600508b1001c1234".into(),
                suspended: false,
                size_bytes: 104857600 * 512,
                paths: vec![
                    ("sdi".into(), "running".into()),
                    ("sdj".into(), "offline".into())
                ],
            }]
        );
    }

    #[test]
    fn missing_and_broken_files() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let err = read_multipath_devices(&r.join("nope")).unwrap_err();
        assert!(crate::helpers::is_no_data(&err), "{err}");
        write(r, "dm-5/dm/uuid", "mpath-1\n");
        write(r, "dm-5/dm/name", "mpathA\n");
        write(r, "dm-5/dm/suspended", "x\n");
        write(r, "dm-5/size", "1\n");
        let err = read_multipath_devices(r).unwrap_err();
        assert!(err.to_string().contains("dm-5/dm/suspended"), "{err}");
        write(r, "dm-5/dm/suspended", "1\n");
        write(r, "dm-5/slaves/sdi/.keep", "");
        let err = read_multipath_devices(r).unwrap_err();
        assert!(crate::helpers::is_no_data(&err), "{err}");
        assert!(err.to_string().contains("sdi/device/state"), "{err}");
    }
}
