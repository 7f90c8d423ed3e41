//! Per-container disk use (cAdvisor's `container_fs_usage_bytes`,
//! `container_fs_limit_bytes`, `container_fs_inodes_{free,total}`): the
//! container's writable layer (the storage driver's `UpperDir`, overlay2 or
//! fuse-overlayfs) is walked by a background thread once per interval, as
//! cAdvisor's fsHandler does with `du`; scrapes serve the last pass, so a
//! container with a big tree costs the scrape nothing.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::cgroup::device_name;
use super::engine::Engine;

/// One container's disk use as of the last pass.
#[derive(Clone, Debug, PartialEq)]
pub struct FsUsage {
    /// `/dev/<name>` of the filesystem holding the layer.
    pub device: String,
    /// Bytes allocated to the layer's files (du's count: blocks * 512).
    pub usage_bytes: u64,
    /// Inodes used by the layer: cAdvisor's `container_fs_inodes_total`
    /// for a Docker container is this count.
    pub inodes_used: u64,
    /// Size of the filesystem holding the layer.
    pub limit_bytes: u64,
    pub inodes_free: u64,
}

/// Results of the background passes, by container ID.
#[derive(Default)]
pub struct DiskUsage {
    results: Mutex<HashMap<String, FsUsage>>,
    /// The last pass' failures (an unreadable layer), by container ID.
    errors: Mutex<HashMap<String, String>>,
}

impl DiskUsage {
    pub fn get(&self, id: &str) -> Option<FsUsage> {
        lock(&self.results).get(id).cloned()
    }

    pub fn error(&self, id: &str) -> Option<String> {
        lock(&self.errors).get(id).cloned()
    }

    /// Starts the thread that measures every running container's writable
    /// layer each `interval`.
    pub fn start(
        engine: Arc<Engine>,
        rootfs: PathBuf,
        sysfs: PathBuf,
        interval: Duration,
    ) -> anyhow::Result<Arc<DiskUsage>> {
        let du = Arc::new(DiskUsage::default());
        let d = du.clone();
        std::thread::Builder::new()
            .name("docker-disk-usage".into())
            .spawn(move || loop {
                let started = Instant::now();
                let layers: Vec<(String, String)> = {
                    let s = engine.lock();
                    s.containers
                        .values()
                        .filter(|c| c.state == "running" || c.state == "paused")
                        .filter_map(|c| Some((c.id.clone(), c.rw_dir.clone()?)))
                        .collect()
                };
                d.pass(&layers, &rootfs, &sysfs);
                // A pass longer than the interval is followed by one
                // interval of rest, so a huge layer cannot keep a core busy.
                let took = started.elapsed();
                std::thread::sleep(if took > interval {
                    interval
                } else {
                    interval - took
                });
            })?;
        Ok(du)
    }

    /// Measures `layers` (container ID, host path of its writable layer)
    /// and replaces the results; containers not in `layers` are dropped.
    pub fn pass(&self, layers: &[(String, String)], rootfs: &Path, sysfs: &Path) {
        self.pass_with(layers, rootfs, |p| measure(p, sysfs))
    }

    fn pass_with(
        &self,
        layers: &[(String, String)],
        rootfs: &Path,
        measure: impl Fn(&Path) -> std::io::Result<FsUsage>,
    ) {
        let mut results = HashMap::new();
        let mut errors = HashMap::new();
        for (id, dir) in layers {
            let path = rootfs.join(dir.trim_start_matches('/'));
            match measure(&path) {
                Ok(u) => {
                    results.insert(id.clone(), u);
                }
                // Removed between listing and walking: simply gone.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                // An exporter neither root nor granted CAP_DAC_READ_SEARCH
                // (Ansible's unit grants it) cannot enter /var/lib/docker:
                // no disk-use series, said once, the rest of the collector
                // unaffected.
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    static SAID: std::sync::Once = std::sync::Once::new();
                    SAID.call_once(|| {
                        tracing::warn!(
                            "container disk use needs root or CAP_DAC_READ_SEARCH: measuring {}: {e}; \
                             no container_fs_usage_bytes (--no-collector.docker.disk-usage silences this)",
                            path.display()
                        )
                    });
                }
                Err(e) => {
                    errors.insert(id.clone(), format!("measuring {}: {e}", path.display()));
                }
            }
        }
        *lock(&self.results) = results;
        *lock(&self.errors) = errors;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Disk use of the tree at `dir` and the size of its filesystem.
pub fn measure(dir: &Path, sysfs: &Path) -> std::io::Result<FsUsage> {
    let meta = std::fs::symlink_metadata(dir)?;
    let (usage_bytes, inodes_used) = walk(dir, meta.dev())?;
    let (limit_bytes, inodes_free) = statvfs(dir)?;
    let dev = format!("{}:{}", libc::major(meta.dev()), libc::minor(meta.dev()));
    Ok(FsUsage {
        device: device_name(sysfs, &dev),
        usage_bytes,
        inodes_used,
        limit_bytes,
        inodes_free,
    })
}

/// du -s and `find -xdev | wc -l` in one walk: allocated bytes and inodes
/// of the tree, each hard-linked inode once, without crossing into other
/// filesystems (volumes mounted inside are not the layer) nor following
/// symlinks. Entries vanishing during the walk are skipped: the container
/// is running.
pub fn walk(root: &Path, dev: u64) -> std::io::Result<(u64, u64)> {
    let meta = std::fs::symlink_metadata(root)?;
    let mut bytes = meta.blocks() * 512;
    let mut inodes = 1u64;
    let mut seen: HashSet<u64> = HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir != root => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let Ok(m) = entry.metadata() else { continue };
            if m.dev() != dev {
                continue;
            }
            if !m.is_dir() && m.nlink() > 1 && !seen.insert(m.ino()) {
                continue;
            }
            bytes += m.blocks() * 512;
            inodes += 1;
            if m.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok((bytes, inodes))
}

/// Size in bytes and free inodes of the filesystem holding `path`.
fn statvfs(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path, s a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((s.f_blocks as u64 * s.f_frsize as u64, s.f_ffree as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_tree_is_counted_like_du_with_hard_links_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("diff");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        let mut f = std::fs::File::create(root.join("a/b/big")).unwrap();
        f.write_all(&vec![7u8; 1 << 20]).unwrap();
        f.sync_all().unwrap();
        std::fs::hard_link(root.join("a/b/big"), root.join("a/link")).unwrap();
        std::os::unix::fs::symlink("/nonexistent", root.join("dangling")).unwrap();
        let dev = std::fs::metadata(&root).unwrap().dev();
        let (bytes, inodes) = walk(&root, dev).unwrap();
        // diff, a, b, big (its link counted once), dangling.
        assert_eq!(inodes, 5);
        assert!(
            (1 << 20..(1 << 20) + 64 * 1024).contains(&bytes),
            "{bytes} bytes for one 1 MiB file and a few directories"
        );
        let u = measure(&root, Path::new("/nonexistent-sys")).unwrap();
        assert_eq!(u.usage_bytes, bytes);
        assert!(u.limit_bytes >= bytes);
        assert!(u.device.contains(':'), "no sysfs: major:minor, {u:?}");
    }

    #[test]
    fn a_pass_keeps_measured_layers_and_drops_gone_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("l1/diff")).unwrap();
        std::fs::write(dir.path().join("l1/diff/f"), vec![1u8; 8192]).unwrap();
        let du = DiskUsage::default();
        let layers = vec![
            ("c1".to_string(), "/l1/diff".to_string()),
            ("gone".to_string(), "/l2/diff".to_string()),
        ];
        du.pass(&layers, dir.path(), Path::new("/sys"));
        assert!(du.get("c1").unwrap().usage_bytes >= 8192);
        assert_eq!(du.get("gone"), None);
        assert_eq!(du.error("gone"), None);
        du.pass(&[], dir.path(), Path::new("/sys"));
        assert_eq!(du.get("c1"), None);
    }

    #[test]
    fn a_layer_denied_to_a_non_root_exporter_has_no_series_and_no_error() {
        // The tests run as root, which reads any mode: the denial is injected.
        let du = DiskUsage::default();
        du.pass_with(
            &[("c".to_string(), "/l/diff".to_string())],
            Path::new("/"),
            |p| {
                assert_eq!(p, Path::new("/l/diff"));
                Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied))
            },
        );
        assert_eq!(du.get("c"), None);
        assert_eq!(du.error("c"), None);
        // Any other failure is the collector's error.
        du.pass_with(
            &[("c".to_string(), "/l/diff".to_string())],
            Path::new("/"),
            |_| Err(std::io::Error::other("Input/output error")),
        );
        assert!(du.error("c").unwrap().contains("/l/diff"));
    }

    #[test]
    fn an_unreadable_layer_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the layer directory should be.
        std::fs::write(dir.path().join("diff"), "x").unwrap();
        let du = DiskUsage::default();
        du.pass(
            &[("c".to_string(), "/diff".to_string())],
            dir.path(),
            Path::new("/sys"),
        );
        let err = du.error("c").unwrap();
        assert!(err.contains("diff"), "{err}");
    }
}
