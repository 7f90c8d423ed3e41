//! `node_selinux_*`: whether SELinux is enabled, its configured and current
//! enforcement modes and the AVC cache statistics of selinuxfs, as
//! node_exporter (through go-selinux) reports them. SELinux is enabled when
//! selinuxfs is there and writable (a container gets it read-only to say
//! "disabled here") and the process' label is not `kernel`. That cannot
//! change without a reboot, so it is found out once, as go-selinux does:
//! a host without SELinux pays nothing per scrape but `node_selinux_enabled 0`.
//! Unlike go-selinux, which looks at the process' own /sys and /proc, the
//! check is made under `--path.sysfs` / `--path.procfs` like the AVC files:
//! in a container given the host's trees it reports the host's SELinux.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::read_sysfs_attr;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "selinux",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Selinux {
            paths: f.paths.clone(),
            enabled: OnceLock::new(),
        }))
    },
};

struct Selinux {
    paths: Paths,
    enabled: OnceLock<bool>,
}

/// Go's `strconv.ParseUint(s, 0, 64)` for the digit runs these files hold:
/// a leading 0 makes the number octal.
fn parse_uint(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).ok();
    }
    if s.len() > 1 && s.starts_with('0') {
        return u64::from_str_radix(&s[1..], 8).ok();
    }
    if s.starts_with('+') {
        return None;
    }
    s.parse().ok()
}

/// avc/cache_stats: a header, then one line of six numbers per CPU, summed.
pub fn parse_cache_stats(text: &str, path: &Path) -> anyhow::Result<[u64; 6]> {
    let mut sums = [0u64; 6];
    for (n, line) in text.lines().enumerate().skip(1) {
        let values: Vec<&str> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .collect();
        if values.len() != 6 {
            return Err(anyhow!(
                "parsing {} line {}: {line:?} is not six AVC counters",
                path.display(),
                n + 1
            ));
        }
        for (sum, v) in sums.iter_mut().zip(&values) {
            let v = parse_uint(v).ok_or_else(|| {
                anyhow!(
                    "parsing {} line {}: {v:?} is not a number",
                    path.display(),
                    n + 1
                )
            })?;
            *sum = sum.wrapping_add(v);
        }
    }
    Ok(sums)
}

/// avc/hash_stats: `entries: N`, `buckets used: U/A`, `longest chain: L`
/// as (entries, used, available, longest chain).
pub fn parse_hash_stats(text: &str, path: &Path) -> anyhow::Result<[u64; 4]> {
    let bad = |what: &str| anyhow!("parsing {}: no {what} number", path.display());
    let mut lines = text.lines();
    let entries = lines.next().unwrap_or("");
    let entries = entries.strip_prefix("entries: ").unwrap_or(entries);
    let buckets = lines.next().unwrap_or("");
    let (_, buckets) = buckets
        .split_once("buckets used: ")
        .ok_or_else(|| bad("buckets used"))?;
    let (used, available) = buckets.split_once('/').ok_or_else(|| bad("buckets"))?;
    let chain = lines.next().unwrap_or("");
    let chain = chain.strip_prefix("longest chain: ").unwrap_or(chain);
    Ok([
        parse_uint(entries).ok_or_else(|| bad("entries"))?,
        parse_uint(used).ok_or_else(|| bad("buckets used"))?,
        parse_uint(available.split('/').next().unwrap_or(""))
            .ok_or_else(|| bad("buckets available"))?,
        parse_uint(chain).ok_or_else(|| bad("longest chain"))?,
    ])
}

/// The `SELINUX=` mode of /etc/selinux/config: 1 enforcing, 0 permissive,
/// -1 anything else or no file, as go-selinux's `DefaultEnforceMode`.
pub fn config_mode(text: &str) -> i32 {
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(("SELINUX", v)) = line.split_once('=') {
            return match v.trim_matches('"') {
                "enforcing" => 1,
                "permissive" => 0,
                _ => -1,
            };
        }
    }
    -1
}

fn read_file(path: &Path) -> anyhow::Result<String> {
    crate::helpers::read_to_string(path).map_err(|e| anyhow!("reading {}: {e}", path.display()))
}

impl Selinux {
    fn selinuxfs(&self) -> PathBuf {
        self.paths.sys("fs/selinux")
    }

    fn find_enabled(&self) -> bool {
        let fs = self.selinuxfs();
        if !fs.join("enforce").exists() || read_only(&fs) {
            return false;
        }
        // An unreadable label does not say "kernel": enabled, as go-selinux.
        let label = crate::helpers::read_to_string(self.paths.proc("self/attr/current"))
            .unwrap_or_default();
        label.trim_end_matches(['\0', '\n']).trim() != "kernel"
    }
}

fn read_only(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a zeroed statvfs is a valid out-buffer; `c` is a valid C string.
    let mut buf: libc::statvfs = unsafe { std::mem::zeroed() };
    unsafe { libc::statvfs(c.as_ptr(), &mut buf) == 0 && buf.f_flag & libc::ST_RDONLY != 0 }
}

impl Collector for Selinux {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        if !*self.enabled.get_or_init(|| self.find_enabled()) {
            out.gauge(
                "node_selinux_enabled",
                "SELinux is enabled, 1 is true, 0 is false",
                &[],
                0.0,
            );
            return Ok(());
        }
        out.gauge(
            "node_selinux_enabled",
            "SELinux is enabled, 1 is true, 0 is false",
            &[],
            1.0,
        );
        let config = crate::helpers::read_to_string(self.paths.root("/etc/selinux/config"))
            .map(|t| config_mode(&t))
            .unwrap_or(-1);
        out.gauge(
            "node_selinux_config_mode",
            "Configured SELinux enforcement mode",
            &[],
            f64::from(config),
        );
        let fs = self.selinuxfs();
        let current = read_sysfs_attr(&fs.join("enforce"))
            .ok()
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or(-1);
        out.gauge(
            "node_selinux_current_mode",
            "Current SELinux enforcement mode",
            &[],
            f64::from(current),
        );

        let path = fs.join("avc/cache_stats");
        let [lookups, hits, misses, allocations, reclaims, frees] =
            parse_cache_stats(&read_file(&path)?, &path)?;
        for (name, help, v) in [
            (
                "node_selinux_avc_lookups_total",
                "SELinux AVC lookups",
                lookups,
            ),
            ("node_selinux_avc_hits_total", "SELinux AVC hits", hits),
            (
                "node_selinux_avc_misses_total",
                "SELinux AVC misses",
                misses,
            ),
            (
                "node_selinux_avc_allocations_total",
                "SELinux AVC allocations",
                allocations,
            ),
            (
                "node_selinux_avc_reclaims_total",
                "SELinux AVC reclaims",
                reclaims,
            ),
            ("node_selinux_avc_frees_total", "SELinux AVC frees", frees),
        ] {
            out.counter(name, help, &[], v as f64);
        }
        let path = fs.join("avc/hash_stats");
        let [entries, used, available, chain] = parse_hash_stats(&read_file(&path)?, &path)?;
        for (name, help, v) in [
            (
                "node_selinux_avc_hash_entries",
                "SELinux AVC hash entries",
                entries,
            ),
            (
                "node_selinux_avc_hash_buckets_available",
                "SELinux AVC hash buckets available",
                available,
            ),
            (
                "node_selinux_avc_hash_buckets_used",
                "SELinux AVC hash buckets used",
                used,
            ),
            (
                "node_selinux_avc_hash_longest_chain",
                "SELinux AVC hash longest chain",
                chain,
            ),
        ] {
            out.gauge(name, help, &[], v as f64);
        }
        let path = fs.join("avc/cache_threshold");
        let threshold = crate::helpers::parse_attr::<u64>(&read_file(&path)?, &path, "a number")?;
        out.gauge(
            "node_selinux_avc_threshold",
            "SELinux AVC threshold",
            &[],
            threshold as f64,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{collect, write};

    fn collector(root: &Path) -> Selinux {
        Selinux {
            paths: Paths {
                procfs: root.join("proc"),
                sysfs: root.join("sys"),
                rootfs: root.join("root"),
                ..Paths::default()
            },
            enabled: OnceLock::new(),
        }
    }

    fn selinux(root: &Path) {
        for (f, v) in [
            ("sys/fs/selinux/enforce", "1"),
            (
                "sys/fs/selinux/avc/cache_stats",
                "lookups hits misses allocations reclaims frees\n10 8 2 2 0 1\n5 4 1 1 0 0\n",
            ),
            (
                "sys/fs/selinux/avc/hash_stats",
                "entries: 500\nbuckets used: 300/512\nlongest chain: 5\n",
            ),
            ("sys/fs/selinux/avc/cache_threshold", "512\n"),
            ("proc/self/attr/current", "system_u:system_r:init_t:s0\0"),
            (
                "root/etc/selinux/config",
                "# x\nSELINUX=permissive\nSELINUXTYPE=targeted\n",
            ),
        ] {
            write(root, f, v);
        }
    }

    #[test]
    fn modes_and_avc_statistics() {
        let dir = tempfile::tempdir().unwrap();
        selinux(dir.path());
        let text = collect(&collector(dir.path())).unwrap();
        for want in [
            "node_selinux_enabled 1\n",
            "node_selinux_config_mode 0\n",
            "node_selinux_current_mode 1\n",
            "node_selinux_avc_lookups_total 15\n",
            "node_selinux_avc_frees_total 1\n",
            "node_selinux_avc_hash_buckets_used 300\n",
            "node_selinux_avc_hash_buckets_available 512\n",
            "node_selinux_avc_hash_longest_chain 5\n",
            "node_selinux_avc_threshold 512\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
    }

    #[test]
    fn disabled_is_found_once() {
        let dir = tempfile::tempdir().unwrap();
        let c = collector(dir.path());
        assert_eq!(
            collect(&c).unwrap(),
            "# HELP node_selinux_enabled SELinux is enabled, 1 is true, 0 is false\n\
             # TYPE node_selinux_enabled gauge\nnode_selinux_enabled 0\n"
        );
        // SELinux does not come up without a reboot: not looked for again.
        selinux(dir.path());
        assert!(collect(&c).unwrap().contains("node_selinux_enabled 0\n"));
        // The kernel's own label means disabled.
        write(dir.path(), "proc/self/attr/current", "kernel\0");
        assert!(collect(&collector(dir.path()))
            .unwrap()
            .contains("node_selinux_enabled 0\n"));
    }

    #[test]
    fn config_modes() {
        assert_eq!(config_mode("SELINUX=enforcing\n"), 1);
        assert_eq!(config_mode("SELINUX=\"permissive\"\n"), 0);
        assert_eq!(config_mode("SELINUX=disabled\n"), -1);
        assert_eq!(config_mode(""), -1);
    }

    #[test]
    fn truncated_and_garbage_stats_name_the_file() {
        for (file, text) in [
            ("avc/cache_stats", "lookups hits\n10 8 2\n"),
            ("avc/hash_stats", "entries: 500\n"),
            (
                "avc/hash_stats",
                "entries: x\nbuckets used: 1/2\nlongest chain: 1\n",
            ),
            ("avc/cache_threshold", "many\n"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            selinux(dir.path());
            write(dir.path(), &format!("sys/fs/selinux/{file}"), text);
            let err = collect(&collector(dir.path())).unwrap_err().to_string();
            assert!(err.contains(file), "{text:?}: {err}");
        }
        assert_eq!(parse_uint("010"), Some(8));
        assert_eq!(parse_uint("09"), None);
    }
}
