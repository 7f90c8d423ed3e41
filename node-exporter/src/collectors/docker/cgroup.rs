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

    /// Every cgroup of the hierarchy (v1: the memory controller's) as
    /// cAdvisor's raw handler names them, `/` first, leaving out the
    /// subtrees of `skip` (containers, reported under their names). At most
    /// `limit` entries, so that a host with runaway cgroups cannot make
    /// scrapes unbounded.
    pub fn list(&self, skip: &std::collections::HashSet<String>, limit: usize) -> Vec<String> {
        let base = self.dir("memory", "/");
        let mut out = vec!["/".to_string()];
        let mut stack = vec![(base, String::new())];
        while let Some((dir, name)) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut children: Vec<(PathBuf, String)> = entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| {
                    let child = format!("{name}/{}", e.file_name().to_string_lossy());
                    (e.path(), child)
                })
                .filter(|(_, child)| !skip.contains(child))
                .collect();
            children.sort_by(|a, b| a.1.cmp(&b.1));
            for (path, child) in children {
                if out.len() >= limit {
                    out.sort();
                    return out;
                }
                out.push(child.clone());
                stack.push((path, child));
            }
        }
        out.sort();
        out
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
        u.memory_mapped_file = stat.get("total_mapped_file").copied();
        // v1 splits the cgroup's own faults from its subtree's (total_*).
        u.failures = Failures {
            pgfault_container: stat.get("pgfault").copied(),
            pgmajfault_container: stat.get("pgmajfault").copied(),
            pgfault_hierarchy: stat.get("total_pgfault").copied(),
            pgmajfault_hierarchy: stat.get("total_pgmajfault").copied(),
        };
        u.memory_failcnt = optional(read_u64(&mem.join("memory.failcnt")))?;
        u.memory_max_usage = optional(read_u64(&mem.join("memory.max_usage_in_bytes")))?;
        u.memory_limit = optional(read_u64(&mem.join("memory.limit_in_bytes")))?;
        u.memory_reservation = optional(read_u64(&mem.join("memory.soft_limit_in_bytes")))?;
        // memory+swap (absent without swapaccount=1), as cAdvisor reports it.
        u.memory_swap_limit = optional(read_u64(&mem.join("memory.memsw.limit_in_bytes")))?;
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
        u.cpu_shares = optional(read_u64(&cpu.join("cpu.shares")))?;

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
        // The root cgroup has no memory.current (nor limits): its usage is
        // the host's, which the meminfo collector has.
        let root = path.trim_matches('/').is_empty();
        let usage = if root {
            optional(read_u64(&dir.join("memory.current")))?
        } else {
            Some(read_u64(&dir.join("memory.current"))?)
        };
        let stat = if root {
            optional(read_flat_keyed(&dir.join("memory.stat")))?.unwrap_or_default()
        } else {
            read_flat_keyed(&dir.join("memory.stat"))?
        };
        u.memory_usage = usage;
        u.memory_rss = stat.get("anon").copied();
        u.memory_cache = stat.get("file").copied();
        u.memory_mapped_file = stat.get("file_mapped").copied();
        u.memory_working_set = usage.map(|usage| working_set(usage, stat.get("inactive_file")));
        // v2's memory.stat is recursive: both scopes are the same numbers.
        u.failures = Failures {
            pgfault_container: stat.get("pgfault").copied(),
            pgmajfault_container: stat.get("pgmajfault").copied(),
            pgfault_hierarchy: stat.get("pgfault").copied(),
            pgmajfault_hierarchy: stat.get("pgmajfault").copied(),
        };
        u.memory_swap = optional(read_u64(&dir.join("memory.swap.current")))?;
        // memory.peak exists from Linux 5.19.
        u.memory_max_usage = optional(read_u64(&dir.join("memory.peak")))?;
        u.memory_limit = optional(read_limit(&dir.join("memory.max")))?.flatten();
        u.memory_swap_limit = optional(read_limit(&dir.join("memory.swap.max")))?.flatten();
        // cAdvisor reads memory.min; Docker writes --memory-reservation to
        // memory.low, so that is the fallback when min is unset.
        let min = optional(read_limit(&dir.join("memory.min")))?.flatten();
        let low = optional(read_limit(&dir.join("memory.low")))?.flatten();
        u.memory_reservation = min.filter(|m| *m > 0).or(low).or(min);
        if let Some(w) = optional(read_u64(&dir.join("cpu.weight")))? {
            u.cpu_shares = Some(weight_to_shares(w));
        }
        if let Some(events) = optional(read_flat_keyed(&dir.join("memory.events")))? {
            // libcontainer reports v2's "max" events (hits of the limit) as
            // the failcnt v1 has.
            u.memory_failcnt = events.get("max").copied();
            u.oom_kills = events.get("oom_kill").copied();
        }
        // v2's memory.events counts the subtree's kills; a host cgroup
        // reports only its own (v1's oom_control is local already), so that
        // one kill is not counted again by every parent.
        u.oom_kills_local = optional(read_flat_keyed(&dir.join("memory.events.local")))?
            .and_then(|m| m.get("oom_kill").copied());
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
    /// v1 cpu.shares, or v2 cpu.weight converted back to shares.
    pub cpu_shares: Option<u64>,
    pub memory_usage: Option<u64>,
    pub memory_working_set: Option<u64>,
    pub memory_rss: Option<u64>,
    pub memory_cache: Option<u64>,
    pub memory_swap: Option<u64>,
    pub memory_failcnt: Option<u64>,
    pub memory_max_usage: Option<u64>,
    pub memory_mapped_file: Option<u64>,
    pub failures: Failures,
    /// Soft limit (v1) / memory.min or memory.low (v2); huge = none.
    pub memory_reservation: Option<u64>,
    /// v1: memory+swap limit; v2: swap limit; `None` when unlimited.
    pub memory_swap_limit: Option<u64>,
    /// `None` when unlimited (v2 "max"); v1's "unlimited" is a huge number
    /// the caller reports as 0, as cAdvisor does.
    pub memory_limit: Option<u64>,
    pub oom_kills: Option<u64>,
    /// v2 `memory.events.local`: kills in this cgroup itself.
    pub oom_kills_local: Option<u64>,
    pub io: Vec<DeviceIo>,
}

/// Page faults from memory.stat, by cAdvisor's `scope`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Failures {
    pub pgfault_container: Option<u64>,
    pub pgmajfault_container: Option<u64>,
    pub pgfault_hierarchy: Option<u64>,
    pub pgmajfault_hierarchy: Option<u64>,
}

/// Block I/O of one device, keyed by `major:minor`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceIo {
    pub device: String,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub reads: u64,
    pub writes: u64,
    /// Bytes by operation as the kernel names them (v1: Read, Write, Sync,
    /// Async, Discard, Total; v2: Read, Write, Discard), cAdvisor's
    /// `container_blkio_device_usage_total{operation}`.
    pub bytes_by_op: Vec<(String, u64)>,
}

/// cAdvisor's (and runc's) mapping of v2 cpu.weight [1, 10000] back onto
/// v1 shares [2, 262144].
fn weight_to_shares(weight: u64) -> u64 {
    let w = weight.clamp(1, 10000);
    2 + ((w - 1) * 262142) / 9999
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
            if is_bytes {
                d.bytes_by_op.push((op.to_string(), v));
            }
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
                "rbytes" => {
                    d.read_bytes = v;
                    d.bytes_by_op.push(("Read".into(), v));
                }
                "wbytes" => {
                    d.write_bytes = v;
                    d.bytes_by_op.push(("Write".into(), v));
                }
                "dbytes" => d.bytes_by_op.push(("Discard".into(), v)),
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
                writes: 512,
                bytes_by_op: [
                    ("Read", 1048576),
                    ("Write", 2097152),
                    ("Sync", 0),
                    ("Async", 3145728),
                    ("Discard", 0),
                    ("Total", 3145728)
                ]
                .map(|(o, v)| (o.to_string(), v))
                .to_vec(),
            }]
        );
        assert_eq!(u.cpu_shares, Some(512));
        assert_eq!(u.memory_max_usage, Some(115343360));
        // total_mapped_file, the subtree's, as cAdvisor reads it.
        assert_eq!(u.memory_mapped_file, Some(3145728));
        assert_eq!(u.memory_reservation, Some(67108864));
        assert_eq!(u.memory_swap_limit, Some(268435456));
        assert_eq!(
            u.failures,
            Failures {
                pgfault_container: Some(1000),
                pgmajfault_container: Some(10),
                pgfault_hierarchy: Some(1500),
                pgmajfault_hierarchy: Some(12),
            }
        );
    }

    #[test]
    fn v1_root_and_system_cgroups_are_listed_and_read() {
        let h = fixture("v1");
        let skip = [format!("/docker/{ID}")].into_iter().collect();
        assert_eq!(
            h.list(&skip, 100),
            ["/", "/docker", "/system.slice", "/system.slice/ssh.service"]
        );
        assert_eq!(h.list(&skip, 2), ["/", "/docker"]);
        let root = h.read("/").unwrap().unwrap();
        assert_eq!(root.cpu_usage_seconds, Some(1234.5));
        assert_eq!(root.memory_usage, Some(4294967296));
        assert_eq!(root.memory_working_set, Some(4294967296 - 536870912));
        assert_eq!(root.cpu_shares, Some(1024));
        assert_eq!(root.failures.pgfault_hierarchy, Some(900000));
        assert_eq!(root.io[0].read_bytes, 500000000);
        let ssh = h.read("/system.slice/ssh.service").unwrap().unwrap();
        assert_eq!(ssh.cpu_usage_seconds, Some(2.5));
        assert_eq!(ssh.memory_working_set, Some(8388608 - 1048576));
    }

    #[test]
    fn v2_root_has_no_memory_current_and_is_still_read() {
        let h = fixture("v2");
        let skip = [format!("/system.slice/docker-{ID}.scope")]
            .into_iter()
            .collect();
        assert_eq!(
            h.list(&skip, 100),
            ["/", "/system.slice", "/system.slice/ssh.service"]
        );
        let root = h.read("/").unwrap().unwrap();
        assert_eq!(root.cpu_usage_seconds, Some(500.0));
        assert_eq!(root.memory_usage, None);
        assert_eq!(root.memory_working_set, None);
        assert_eq!(root.memory_mapped_file, Some(52428800));
        assert_eq!(
            root.io[0].bytes_by_op,
            [("Read", 1000), ("Write", 2000), ("Discard", 300)]
                .map(|(o, v)| (o.to_string(), v))
                .to_vec()
        );
        let ssh = h.read("/system.slice/ssh.service").unwrap().unwrap();
        assert_eq!(ssh.cpu_shares, Some(2 + 99 * 262142 / 9999));
        // A non-root cgroup without memory.current is an error (gone).
        assert_eq!(h.read("/system.slice/none").unwrap(), None);
    }

    #[test]
    fn weight_maps_back_to_shares_at_both_ends() {
        assert_eq!(weight_to_shares(1), 2);
        assert_eq!(weight_to_shares(10000), 262144);
        // Docker's default 1024 shares are written as weight 39.
        assert_eq!(weight_to_shares(39), 998);
        assert_eq!(weight_to_shares(0), 2);
    }

    /// A copy of the v1 fixture container with `file` replaced by `text`.
    fn broken_v1(controller: &str, file: &str, text: &str) -> (tempfile::TempDir, Hierarchy) {
        let dir = tempfile::tempdir().unwrap();
        let src = fixture("v1").root;
        for c in ["memory", "cpu", "cpuacct", "blkio"] {
            let from = src.join(c).join("docker").join(ID);
            let to = dir.path().join(c).join("docker").join(ID);
            std::fs::create_dir_all(&to).unwrap();
            for e in std::fs::read_dir(&from).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
        std::fs::write(
            dir.path()
                .join(controller)
                .join("docker")
                .join(ID)
                .join(file),
            text,
        )
        .unwrap();
        let h = Hierarchy::detect(dir.path().to_path_buf());
        (dir, h)
    }

    #[test]
    fn garbage_in_the_new_files_is_an_error_naming_the_file() {
        for (controller, file) in [
            ("cpu", "cpu.shares"),
            ("memory", "memory.max_usage_in_bytes"),
            ("memory", "memory.soft_limit_in_bytes"),
            ("memory", "memory.memsw.limit_in_bytes"),
        ] {
            let (_d, h) = broken_v1(controller, file, "\u{0}garbage 12\n");
            let err = format!("{:#}", h.read(&format!("/docker/{ID}")).unwrap_err());
            assert!(err.contains(file), "{file}: {err}");
        }
        // Garbage memory.stat values are skipped keys, not numbers.
        let (_d, h) = broken_v1("memory", "memory.stat", "total_pgfault lots\ntotal_rss 1\n");
        let u = h.read(&format!("/docker/{ID}")).unwrap().unwrap();
        assert_eq!(u.failures.pgfault_hierarchy, None);
        assert_eq!(u.memory_rss, Some(1));
        // v2: a bad weight or swap limit.
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("x");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(dir.path().join("cgroup.controllers"), "cpu memory\n").unwrap();
        std::fs::write(c.join("memory.current"), "1\n").unwrap();
        std::fs::write(c.join("memory.stat"), "anon 1\n").unwrap();
        for (file, text) in [("cpu.weight", "heavy\n"), ("memory.swap.max", "-3\n")] {
            std::fs::write(c.join(file), text).unwrap();
            let h = Hierarchy::detect(dir.path().to_path_buf());
            let err = format!("{:#}", h.read("/x").unwrap_err());
            assert!(err.contains(file), "{file}: {err}");
            std::fs::remove_file(c.join(file)).unwrap();
        }
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
        assert_eq!(u.cpu_shares, Some(2 + 38 * 262142 / 9999));
        assert_eq!(u.memory_max_usage, Some(62914560));
        assert_eq!(u.memory_mapped_file, Some(1048576));
        // memory.min is 0: Docker's reservation is in memory.low.
        assert_eq!(u.memory_reservation, Some(33554432));
        assert_eq!(u.memory_swap_limit, None);
        assert_eq!(u.failures.pgfault_container, Some(2000));
        assert_eq!(u.failures.pgmajfault_hierarchy, Some(20));
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
