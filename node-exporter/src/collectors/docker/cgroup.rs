//! A container's resource usage read straight from its cgroup files, v1 and
//! v2, as cAdvisor does (the Engine's stats call takes a second or more per
//! container; these are a few small file reads).

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};

use crate::helpers::{read_to_string, USER_HZ};

/// Which cgroup hierarchy the host uses. Hybrid hosts (v1 controllers plus
/// an empty unified mount) count as v1: memory and cpu live in v1 there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// The cgroup filesystem root (`<sysfs>/fs/cgroup`) and its version.
#[derive(Clone, Debug)]
pub struct Hierarchy {
    pub root: PathBuf,
    pub version: Version,
}

impl Hierarchy {
    pub fn detect(root: PathBuf) -> Hierarchy {
        let version = if root.join("cgroup.controllers").exists() {
            Version::V2
        } else {
            Version::V1
        };
        Hierarchy { root, version }
    }

    /// The directory of `controller` (v1) for cgroup `path`; v2 ignores the
    /// controller. v1 hosts mount cpu and cpuacct either apart or together
    /// as `cpu,cpuacct`.
    fn dir(&self, controller: &str, path: &str) -> PathBuf {
        let rel = path.trim_start_matches('/');
        match self.version {
            Version::V2 => self.root.join(rel),
            Version::V1 => {
                let apart = self.root.join(controller);
                if apart.exists() {
                    return apart.join(rel);
                }
                self.root.join("cpu,cpuacct").join(rel)
            }
        }
    }

    /// The cgroup a container lives in, as cAdvisor names it (its `id`
    /// label): from the init process' `/proc/<pid>/cgroup` when that is
    /// readable, else the first of Docker's two layouts (cgroupfs driver:
    /// `<parent or /docker>/<id>`, systemd driver:
    /// `/system.slice/docker-<id>.scope`) that exists.
    pub fn locate(
        &self,
        procfs: &Path,
        pid: Option<i64>,
        id: &str,
        parent: Option<&str>,
    ) -> Option<String> {
        if let Some(pid) = pid.filter(|p| *p > 0) {
            if let Ok(text) = read_to_string(procfs.join(pid.to_string()).join("cgroup")) {
                if let Some(p) = self.path_in_proc_cgroup(&text) {
                    if let Some(p) = container_level(&p, id) {
                        if self.dir("memory", &p).exists() {
                            return Some(p);
                        }
                    }
                }
            }
        }
        let parent = parent.filter(|p| !p.is_empty()).unwrap_or("/docker");
        let candidates = [
            format!("/{}/{id}", parent.trim_matches('/')),
            format!("/system.slice/docker-{id}.scope"),
        ];
        candidates
            .into_iter()
            .find(|c| self.dir("memory", c).exists())
    }

    /// The memory controller's path (v1) or the unified path (v2) in a
    /// `/proc/<pid>/cgroup` file.
    fn path_in_proc_cgroup(&self, text: &str) -> Option<String> {
        text.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let wanted = match self.version {
                Version::V2 => controllers.is_empty(),
                Version::V1 => controllers.split(',').any(|c| c == "memory"),
            };
            wanted.then(|| path.to_string())
        })
    }

    /// Reads the usage of cgroup `path`. `Ok(None)` when the cgroup is gone
    /// (the container stopped between listing and reading).
    pub fn read(&self, path: &str) -> anyhow::Result<Option<Usage>> {
        let usage = match self.version {
            Version::V1 => self.read_v1(path),
            Version::V2 => self.read_v2(path),
        };
        match usage {
            Ok(u) => Ok(Some(u)),
            Err(e) if is_gone(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read_v1(&self, path: &str) -> anyhow::Result<Usage> {
        let mut u = Usage::default();
        let mem = self.dir("memory", path);
        let usage = read_u64(&mem.join("memory.usage_in_bytes"))?;
        let stat = read_flat_keyed(&mem.join("memory.stat"))?;
        u.memory_usage = Some(usage);
        u.memory_rss = stat.get("total_rss").copied();
        u.memory_cache = stat.get("total_cache").copied();
        u.memory_swap = stat.get("total_swap").copied();
        u.memory_working_set = Some(working_set(usage, stat.get("total_inactive_file")));
        u.memory_failcnt = optional(read_u64(&mem.join("memory.failcnt")))?;
        u.memory_limit = optional(read_u64(&mem.join("memory.limit_in_bytes")))?;
        u.oom_kills = optional(read_flat_keyed(&mem.join("memory.oom_control")))?
            .and_then(|m| m.get("oom_kill").copied());

        let cpuacct = self.dir("cpuacct", path);
        u.cpu_usage_seconds =
            optional(read_u64(&cpuacct.join("cpuacct.usage")))?.map(|ns| ns as f64 / 1e9);
        if let Some(stat) = optional(read_flat_keyed(&cpuacct.join("cpuacct.stat")))? {
            u.cpu_user_seconds = stat.get("user").map(|t| *t as f64 / USER_HZ);
            u.cpu_system_seconds = stat.get("system").map(|t| *t as f64 / USER_HZ);
        }
        let cpu = self.dir("cpu", path);
        if let Some(stat) = optional(read_flat_keyed(&cpu.join("cpu.stat")))? {
            u.cfs_periods = stat.get("nr_periods").copied();
            u.cfs_throttled_periods = stat.get("nr_throttled").copied();
            u.cfs_throttled_seconds = stat.get("throttled_time").map(|ns| *ns as f64 / 1e9);
        }
        // -1 is "no quota".
        u.cpu_quota = optional(read_i64(&cpu.join("cpu.cfs_quota_us")))?
            .filter(|q| *q > 0)
            .map(|q| q as u64);
        u.cpu_period = optional(read_u64(&cpu.join("cpu.cfs_period_us")))?;

        let blkio = self.dir("blkio", path);
        let bytes = first_present(&[
            blkio.join("blkio.throttle.io_service_bytes_recursive"),
            blkio.join("blkio.throttle.io_service_bytes"),
        ])?;
        let ops = first_present(&[
            blkio.join("blkio.throttle.io_serviced_recursive"),
            blkio.join("blkio.throttle.io_serviced"),
        ])?;
        u.io = parse_blkio_v1(bytes.as_deref().unwrap_or(""), ops.as_deref().unwrap_or(""));
        Ok(u)
    }

    fn read_v2(&self, path: &str) -> anyhow::Result<Usage> {
        let mut u = Usage::default();
        let dir = self.dir("", path);
        let usage = read_u64(&dir.join("memory.current"))?;
        let stat = read_flat_keyed(&dir.join("memory.stat"))?;
        u.memory_usage = Some(usage);
        u.memory_rss = stat.get("anon").copied();
        u.memory_cache = stat.get("file").copied();
        u.memory_working_set = Some(working_set(usage, stat.get("inactive_file")));
        u.memory_swap = optional(read_u64(&dir.join("memory.swap.current")))?;
        u.memory_limit = optional(read_limit(&dir.join("memory.max")))?.flatten();
        if let Some(events) = optional(read_flat_keyed(&dir.join("memory.events")))? {
            // libcontainer reports v2's "max" events (hits of the limit) as
            // the failcnt v1 has.
            u.memory_failcnt = events.get("max").copied();
            u.oom_kills = events.get("oom_kill").copied();
        }
        if let Some(stat) = optional(read_flat_keyed(&dir.join("cpu.stat")))? {
            u.cpu_usage_seconds = stat.get("usage_usec").map(|us| *us as f64 / 1e6);
            u.cpu_user_seconds = stat.get("user_usec").map(|us| *us as f64 / 1e6);
            u.cpu_system_seconds = stat.get("system_usec").map(|us| *us as f64 / 1e6);
            u.cfs_periods = stat.get("nr_periods").copied();
            u.cfs_throttled_periods = stat.get("nr_throttled").copied();
            u.cfs_throttled_seconds = stat.get("throttled_usec").map(|us| *us as f64 / 1e6);
        }
        if let Some(max) = optional(read_file(&dir.join("cpu.max")))? {
            let (quota, period) = parse_cpu_max(&max, &dir.join("cpu.max"))?;
            u.cpu_quota = quota;
            u.cpu_period = Some(period);
        }
        let io = optional(read_file(&dir.join("io.stat")))?;
        u.io = parse_io_stat_v2(io.as_deref().unwrap_or(""));
        Ok(u)
    }
}

/// One scrape's reading of a container cgroup. `None` is "this host's
/// kernel does not account it" (e.g. swap without swapaccount=1).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    pub cpu_usage_seconds: Option<f64>,
    pub cpu_user_seconds: Option<f64>,
    pub cpu_system_seconds: Option<f64>,
    pub cfs_periods: Option<u64>,
    pub cfs_throttled_periods: Option<u64>,
    pub cfs_throttled_seconds: Option<f64>,
    /// Microseconds per period; `None` when unlimited.
    pub cpu_quota: Option<u64>,
    pub cpu_period: Option<u64>,
    pub memory_usage: Option<u64>,
    pub memory_working_set: Option<u64>,
    pub memory_rss: Option<u64>,
    pub memory_cache: Option<u64>,
    pub memory_swap: Option<u64>,
    pub memory_failcnt: Option<u64>,
    /// `None` when unlimited (v2 "max"); v1's "unlimited" is a huge number
    /// the caller reports as 0, as cAdvisor does.
    pub memory_limit: Option<u64>,
    pub oom_kills: Option<u64>,
    pub io: Vec<DeviceIo>,
}

/// Block I/O of one device, keyed by `major:minor`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceIo {
    pub device: String,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub reads: u64,
    pub writes: u64,
}

/// cAdvisor's working set: usage less the inactive file cache (which the
/// kernel can take back at once), never below 0.
fn working_set(usage: u64, inactive_file: Option<&u64>) -> u64 {
    usage.saturating_sub(inactive_file.copied().unwrap_or(0))
}

/// Missing-file errors, the sign that the cgroup was removed under us.
fn is_gone(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(io.kind(), ErrorKind::NotFound) || io.raw_os_error() == Some(libc::ENODEV)
        })
    })
}

/// A missing optional file is `None`; other errors stay errors.
fn optional<T>(r: anyhow::Result<T>) -> anyhow::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_gone(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

fn first_present(paths: &[PathBuf]) -> anyhow::Result<Option<String>> {
    for p in paths {
        if let Some(text) = optional(read_file(p))? {
            return Ok(Some(text));
        }
    }
    Ok(None)
}

fn read_file(path: &Path) -> anyhow::Result<String> {
    read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn read_u64(path: &Path) -> anyhow::Result<u64> {
    let s = read_file(path)?;
    s.trim().parse().map_err(|_| {
        anyhow!(
            "parsing {}: {:?} is not an unsigned integer",
            path.display(),
            s.trim()
        )
    })
}

fn read_i64(path: &Path) -> anyhow::Result<i64> {
    let s = read_file(path)?;
    s.trim().parse().map_err(|_| {
        anyhow!(
            "parsing {}: {:?} is not an integer",
            path.display(),
            s.trim()
        )
    })
}

/// A v2 limit file: a number, or "max" for none.
fn read_limit(path: &Path) -> anyhow::Result<Option<u64>> {
    let s = read_file(path)?;
    match s.trim() {
        "max" => Ok(None),
        v => v.parse().map(Some).map_err(|_| {
            anyhow!(
                "parsing {}: {v:?} is neither a number nor \"max\"",
                path.display()
            )
        }),
    }
}

/// `key value` lines (memory.stat, cpu.stat, memory.events, oom_control).
/// Lines whose value is not a number are skipped: the kernel adds keys.
fn read_flat_keyed(path: &Path) -> anyhow::Result<HashMap<String, u64>> {
    let text = read_file(path)?;
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let mut f = line.split_whitespace();
        let (Some(k), Some(v)) = (f.next(), f.next()) else {
            if line.trim().is_empty() {
                continue;
            }
            anyhow::bail!(
                "parsing {} line {}: expected \"key value\", got {line:?}",
                path.display(),
                n + 1
            );
        };
        if let Ok(v) = v.parse() {
            out.insert(k.to_string(), v);
        }
    }
    Ok(out)
}

/// v2 `cpu.max`: `<quota|max> <period>`.
fn parse_cpu_max(text: &str, path: &Path) -> anyhow::Result<(Option<u64>, u64)> {
    let mut f = text.split_whitespace();
    let bad = || {
        anyhow!(
            "parsing {}: expected \"<quota|max> <period>\", got {:?}",
            path.display(),
            text.trim()
        )
    };
    let quota = match f.next().ok_or_else(bad)? {
        "max" => None,
        q => Some(q.parse().map_err(|_| bad())?),
    };
    let period = f.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
    Ok((quota, period))
}

/// v1 blkio: `8:0 Read 4096` lines (and a `Total` line, ignored).
fn parse_blkio_v1(bytes: &str, ops: &str) -> Vec<DeviceIo> {
    let mut devices: Vec<DeviceIo> = Vec::new();
    for (text, is_bytes) in [(bytes, true), (ops, false)] {
        for line in text.lines() {
            let mut f = line.split_whitespace();
            let (Some(dev), Some(op), Some(v)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let Ok(v) = v.parse::<u64>() else { continue };
            let d = device_entry(&mut devices, dev);
            match (op, is_bytes) {
                ("Read", true) => d.read_bytes = v,
                ("Write", true) => d.write_bytes = v,
                ("Read", false) => d.reads = v,
                ("Write", false) => d.writes = v,
                _ => {}
            }
        }
    }
    devices
}

/// v2 `io.stat`: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0`.
fn parse_io_stat_v2(text: &str) -> Vec<DeviceIo> {
    let mut devices = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some(dev) = f.next() else { continue };
        let d = device_entry(&mut devices, dev);
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(v) = v.parse::<u64>() else { continue };
            match k {
                "rbytes" => d.read_bytes = v,
                "wbytes" => d.write_bytes = v,
                "rios" => d.reads = v,
                "wios" => d.writes = v,
                _ => {}
            }
        }
    }
    devices
}

fn device_entry<'a>(devices: &'a mut Vec<DeviceIo>, dev: &str) -> &'a mut DeviceIo {
    let i = match devices.iter().position(|d| d.device == dev) {
        Some(i) => i,
        None => {
            devices.push(DeviceIo {
                device: dev.to_string(),
                ..DeviceIo::default()
            });
            devices.len() - 1
        }
    };
    &mut devices[i]
}

/// The `/dev/...` name of block device `major:minor`, from sysfs (cAdvisor
/// labels its fs metrics with it); the number itself when sysfs has none.
pub fn device_name(sysfs: &Path, dev: &str) -> String {
    let uevent = sysfs.join("dev/block").join(dev).join("uevent");
    read_to_string(uevent)
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("DEVNAME=").map(|n| format!("/dev/{n}")))
        })
        .unwrap_or_else(|| dev.to_string())
}

/// The container's own cgroup from its init process' cgroup: the path up
/// to the component naming the container. A container running systemd puts
/// its init in a child (`/docker/<id>/init.scope`), which holds almost none
/// of the container's usage; cAdvisor reports the container's cgroup.
fn container_level(path: &str, id: &str) -> Option<String> {
    let mut end = 0;
    for component in path.split('/').filter(|c| !c.is_empty()) {
        end = path[end..]
            .find(component)
            .map(|i| end + i + component.len())?;
        if component.contains(id) {
            return Some(path[..end].to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_systemd_container_is_read_at_its_own_cgroup_not_init_scope() {
        let id = "0123abcd";
        assert_eq!(
            container_level("/docker/0123abcd/init.scope", id).as_deref(),
            Some("/docker/0123abcd")
        );
        assert_eq!(
            container_level("/system.slice/docker-0123abcd.scope", id).as_deref(),
            Some("/system.slice/docker-0123abcd.scope")
        );
        assert_eq!(container_level("/user.slice", id), None);
    }
    use super::*;

    fn fixture(version: &str) -> Hierarchy {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/cgroup")
            .join(version)
            .join("sys/fs/cgroup");
        Hierarchy::detect(root)
    }

    const ID: &str = "4f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";

    #[test]
    fn v1_tree_is_read_like_cadvisor() {
        let h = fixture("v1");
        assert_eq!(h.version, Version::V1);
        let path = format!("/docker/{ID}");
        let u = h.read(&path).unwrap().unwrap();
        assert_eq!(u.cpu_usage_seconds, Some(12.5));
        assert_eq!(u.cpu_user_seconds, Some(10.0));
        assert_eq!(u.cpu_system_seconds, Some(2.25));
        assert_eq!(u.cfs_periods, Some(400));
        assert_eq!(u.cfs_throttled_periods, Some(37));
        assert_eq!(u.cfs_throttled_seconds, Some(1.5));
        assert_eq!(u.cpu_quota, Some(50000));
        assert_eq!(u.cpu_period, Some(100000));
        assert_eq!(u.memory_usage, Some(104857600));
        // usage - total_inactive_file
        assert_eq!(u.memory_working_set, Some(104857600 - 20971520));
        assert_eq!(u.memory_rss, Some(73400320));
        assert_eq!(u.memory_cache, Some(31457280));
        assert_eq!(u.memory_swap, Some(4096));
        assert_eq!(u.memory_failcnt, Some(3));
        assert_eq!(u.memory_limit, Some(134217728));
        assert_eq!(u.oom_kills, Some(2));
        assert_eq!(
            u.io,
            vec![DeviceIo {
                device: "8:0".into(),
                read_bytes: 1048576,
                write_bytes: 2097152,
                reads: 256,
                writes: 512
            }]
        );
    }

    #[test]
    fn v2_tree_is_read_like_cadvisor() {
        let h = fixture("v2");
        assert_eq!(h.version, Version::V2);
        let path = format!("/system.slice/docker-{ID}.scope");
        let u = h.read(&path).unwrap().unwrap();
        assert_eq!(u.cpu_usage_seconds, Some(7.25));
        assert_eq!(u.cpu_user_seconds, Some(5.0));
        assert_eq!(u.cpu_system_seconds, Some(2.25));
        assert_eq!(u.cfs_periods, Some(80));
        assert_eq!(u.cfs_throttled_periods, Some(8));
        assert_eq!(u.cfs_throttled_seconds, Some(0.5));
        assert_eq!(u.cpu_quota, None);
        assert_eq!(u.cpu_period, Some(100000));
        assert_eq!(u.memory_usage, Some(52428800));
        assert_eq!(u.memory_working_set, Some(52428800 - 10485760));
        assert_eq!(u.memory_rss, Some(31457280));
        assert_eq!(u.memory_cache, Some(20971520));
        assert_eq!(u.memory_swap, Some(0));
        assert_eq!(u.memory_failcnt, Some(5));
        assert_eq!(u.memory_limit, None);
        assert_eq!(u.oom_kills, Some(1));
        assert_eq!(u.io.len(), 1);
        assert_eq!(u.io[0].read_bytes, 4096);
        assert_eq!(u.io[0].writes, 9);
    }

    #[test]
    fn cgroup_is_found_from_proc_or_by_docker_layout() {
        let h = fixture("v1");
        let procfs = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cgroup/v1/proc");
        // The init process' /proc/<pid>/cgroup names the cgroup.
        assert_eq!(
            h.locate(&procfs, Some(4242), ID, None),
            Some(format!("/docker/{ID}"))
        );
        // No process: Docker's cgroupfs layout.
        assert_eq!(
            h.locate(&procfs, None, ID, None),
            Some(format!("/docker/{ID}"))
        );
        assert_eq!(h.locate(&procfs, None, "gone", None), None);
        let v2 = fixture("v2");
        assert_eq!(
            v2.locate(&procfs, None, ID, None),
            Some(format!("/system.slice/docker-{ID}.scope"))
        );
    }

    #[test]
    fn a_removed_cgroup_is_none_and_garbage_is_an_error_naming_the_file() {
        let h = fixture("v1");
        assert_eq!(h.read("/docker/not-there").unwrap(), None);
        let dir = tempfile::tempdir().unwrap();
        let mem = dir.path().join("memory/docker/x");
        std::fs::create_dir_all(&mem).unwrap();
        std::fs::write(mem.join("memory.usage_in_bytes"), "lots\n").unwrap();
        let h = Hierarchy::detect(dir.path().to_path_buf());
        let err = format!("{:#}", h.read("/docker/x").unwrap_err());
        assert!(err.contains("memory.usage_in_bytes"), "{err}");
        assert!(parse_cpu_max("50000", Path::new("cpu.max")).is_err());
    }
}
