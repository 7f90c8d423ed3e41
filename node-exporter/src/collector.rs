//! What a collector is, and what it is given.

use std::path::{Path, PathBuf};

use exporter_toolkit::exposition::MetricSet;

/// One collector, as node_exporter's `Collector` interface: it reads the
/// system and adds this scrape's metrics to `out`. Collectors are shared
/// between concurrent scrapes, so any state they keep is behind a lock.
pub trait Collector: Send + Sync {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()>;
}

/// Returned (through anyhow) when a collector has nothing to report on this
/// system, e.g. no /proc/pressure on an old kernel. The scrape still marks the
/// collector failed, as node_exporter does, but logs it at debug level only.
#[derive(Debug)]
pub struct NoData(pub String);

impl std::fmt::Display for NoData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoData {}

/// A [`NoData`] for a collector whose whole source is missing on this host
/// (no /sys/class/nvme, no /proc/mdstat): the scraper remembers it and
/// reports the collector failed without running it again until the
/// kernel's device list changes (see `crate::scrape::DeviceList`). Only for
/// what appears with a device or a kernel module, never for a file a user
/// may create (a textfile directory).
#[derive(Debug)]
pub struct Absent(pub String);

impl std::fmt::Display for Absent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Absent {}

impl Absent {
    /// "`path` does not exist", as [`NoData`] says it.
    pub fn missing(path: &Path) -> anyhow::Error {
        Absent(format!("{} does not exist", path.display())).into()
    }
}

/// Returned (through anyhow) by a collector that found none of its devices
/// (no thermal zone, no watchdog, no power supply, no XFS mounted): a
/// success with nothing to report, as node_exporter says it, which the
/// scraper remembers like [`Absent`] and answers without running the
/// collector until the kernel's device list or the host's mounts change.
/// Only for output that comes and goes with devices or mounts.
#[derive(Debug)]
pub struct NoDevices;

impl std::fmt::Display for NoDevices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no devices")
    }
}

impl std::error::Error for NoDevices {}

/// `Err(NoDevices)` when `found` is false, else `Ok`.
pub fn devices_found(found: bool) -> anyhow::Result<()> {
    if found {
        Ok(())
    } else {
        Err(NoDevices.into())
    }
}

/// Where the host's pseudo-filesystems are: `--path.procfs`, `--path.sysfs`,
/// `--path.rootfs`, `--path.udev.data`. Fixture trees in tests swap these.
#[derive(Clone, Debug)]
pub struct Paths {
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub rootfs: PathBuf,
    pub udev_data: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            procfs: "/proc".into(),
            sysfs: "/sys".into(),
            rootfs: "/".into(),
            udev_data: "/run/udev/data".into(),
        }
    }
}

impl Paths {
    pub fn proc(&self, rel: &str) -> PathBuf {
        self.procfs.join(rel)
    }
    pub fn sys(&self, rel: &str) -> PathBuf {
        self.sysfs.join(rel)
    }
    /// A path on the host's root filesystem, e.g. `/etc/os-release`.
    pub fn root(&self, abs: &str) -> PathBuf {
        self.rootfs.join(abs.trim_start_matches('/'))
    }
    /// Removes the `--path.rootfs` prefix from a mount point, so labels show
    /// the host's view (node_exporter's `rootfsStripPrefix`).
    pub fn strip_rootfs(&self, mount_point: &str) -> String {
        if self.rootfs == Path::new("/") {
            return mount_point.to_string();
        }
        let prefix = self.rootfs.to_string_lossy();
        let prefix = prefix.trim_end_matches('/');
        match mount_point.strip_prefix(prefix) {
            Some("") => "/".to_string(),
            Some(rest) if rest.starts_with('/') => rest.to_string(),
            _ => mount_point.to_string(),
        }
    }
}
