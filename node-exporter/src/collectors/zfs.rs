//! `node_zfs_*` from the ZFS kstats under /proc/spl/kstat/zfs, as
//! node_exporter's zfs collector: every 64-bit counter of the module-wide
//! kstat files (arcstats, dbufstats, ...), each pool's `io`, each dataset's
//! `objset-*` and each pool's `state`. No /proc/spl/kstat/zfs (no ZFS
//! module) is "no data", as in node_exporter, found with one failed
//! directory open a scrape.

use std::path::Path;

use anyhow::{anyhow, bail};
use exporter_toolkit::exposition::{valid_metric_name, MetricSet};

use super::{no_flags, CollectorSpec};
use crate::collector::{Absent, Collector, Paths};
use crate::helpers::KeyNames;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "zfs",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Zfs {
            paths: f.paths.clone(),
            names: KeyNames::default(),
        }))
    },
};

struct Zfs {
    paths: Paths,
    /// Metric names and helps of kstat keys, made once.
    names: KeyNames,
}

/// (kstat file, metric subsystem) of the module-wide files; a file this
/// ZFS version lacks is skipped.
const FILES: &[(&str, &str)] = &[
    ("abdstats", "zfs_abd"),
    ("arcstats", "zfs_arc"),
    ("dbufstats", "zfs_dbuf"),
    ("dmu_tx", "zfs_dmu_tx"),
    ("dnodestats", "zfs_dnode"),
    ("fm", "zfs_fm"),
    ("vdev_cache_stats", "zfs_vdev_cache"),
    ("vdev_mirror_stats", "zfs_vdev_mirror"),
    ("xuio_stats", "zfs_xuio"),
    ("zfetchstats", "zfs_zfetch"),
    ("zil", "zfs_zil"),
];

const POOL_STATES: &[&str] = &[
    "online",
    "degraded",
    "faulted",
    "offline",
    "removed",
    "unavail",
    "suspended",
];

/// kstat data types with numbers node_exporter reports.
const KSTAT_INT64: &str = "3";
const KSTAT_UINT64: &str = "4";

/// The numeric rows of a named kstat (`name type data` header, then one
/// row a value): (name, value). Types other than int64 and uint64 are
/// skipped; `signed` says whether int64 rows are taken too.
pub fn parse_kstat<'a>(
    text: &'a str,
    path: &Path,
    signed: bool,
) -> anyhow::Result<Vec<(&'a str, f64)>> {
    let mut out = Vec::new();
    let mut in_data = false;
    for (i, line) in text.lines().enumerate() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if !in_data {
            in_data = parts == ["name", "type", "data"];
            continue;
        }
        let [name, kind, value, ..] = parts[..] else {
            continue;
        };
        let bad = || {
            anyhow!(
                "parsing {} line {}: {name}: {value:?} is not an integer",
                path.display(),
                i + 1
            )
        };
        let v = match kind {
            KSTAT_UINT64 => value.parse::<u64>().map_err(|_| bad())? as f64,
            KSTAT_INT64 if signed => value.parse::<i64>().map_err(|_| bad())? as f64,
            _ => continue,
        };
        out.push((name, v));
    }
    if !in_data {
        bail!("parsing {}: no \"name type data\" header", path.display());
    }
    Ok(out)
}

/// A pool's `io` kstat: a header row of names (starting `nread`) and rows
/// of as many numbers.
pub fn parse_pool_io<'a>(text: &'a str, path: &Path) -> anyhow::Result<Vec<(&'a str, f64)>> {
    let mut out = Vec::new();
    let mut header: Option<Vec<&str>> = None;
    for (i, line) in text.lines().enumerate() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let Some(names) = &header else {
            if parts.len() >= 12 && parts[0] == "nread" {
                header = Some(parts);
            }
            continue;
        };
        if parts.len() < names.len() {
            bail!(
                "parsing {} line {}: {} values for {} names",
                path.display(),
                i + 1,
                parts.len(),
                names.len()
            );
        }
        for (name, value) in names.iter().zip(&parts) {
            let v: u64 = value.parse().map_err(|_| {
                anyhow!(
                    "parsing {} line {}: {name}: {value:?} is not an unsigned integer",
                    path.display(),
                    i + 1
                )
            })?;
            out.push((*name, v as f64));
        }
    }
    Ok(out)
}

/// A dataset's `objset-*` kstat: its name (the whole rest of the
/// `dataset_name` row: names may hold spaces) and its uint64 rows.
pub fn parse_objset<'a>(
    text: &'a str,
    path: &Path,
) -> anyhow::Result<(String, Vec<(&'a str, f64)>)> {
    let mut dataset = String::new();
    for line in text.lines() {
        if let Some(rest) = line.trim_start().strip_prefix("dataset_name") {
            let rest = rest.trim_start();
            if let Some(name) = rest.strip_prefix(|c: char| c.is_ascii_digit()) {
                dataset = name.trim().to_string();
            }
        }
    }
    let rows = parse_kstat(text, path, false)?;
    Ok((dataset, rows))
}

/// Files of `dir/<pool>/` named by `matches`, sorted, as (pool, file path).
fn pool_files(
    pools: &[String],
    dir: &Path,
    matches: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<(String, std::path::PathBuf)>> {
    let mut out = Vec::new();
    for pool in pools {
        let pool_dir = dir.join(pool);
        let rd = match std::fs::read_dir(&pool_dir) {
            Ok(rd) => rd,
            // Module-wide files, and pools exported meanwhile.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                continue
            }
            Err(e) => bail!("listing {}: {e}", pool_dir.display()),
        };
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| matches(n))
            .collect();
        names.sort();
        out.extend(names.into_iter().map(|n| (pool.clone(), pool_dir.join(n))));
    }
    Ok(out)
}

fn read(path: &Path) -> anyhow::Result<String> {
    crate::helpers::read_to_string(path).map_err(|e| anyhow!("reading {}: {e}", path.display()))
}

impl Zfs {
    /// The name and help of `metric` in `subsystem` for kstat `key`; `None`
    /// for a key that makes no valid metric name.
    fn name(
        &self,
        subsystem: &str,
        help: String,
        key: &str,
    ) -> Option<(
        exporter_toolkit::exposition::Str,
        exporter_toolkit::exposition::Str,
    )> {
        self.names.get(&help, || {
            // node_exporter's name: the key's last dotted part, '-' as '_'.
            let last = key.rsplit('.').next().unwrap_or(key).replace('-', "_");
            let name = format!("node_{subsystem}_{last}");
            valid_metric_name(&name).then(|| (name, help.clone()))
        })
    }
}

impl Collector for Zfs {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let dir = self.paths.proc("spl/kstat/zfs");
        let entries = match std::fs::read_dir(&dir) {
            Ok(rd) => {
                let mut v: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                v.sort();
                v
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Absent::missing(&dir))
            }
            Err(e) => bail!("listing {}: {e}", dir.display()),
        };
        for (file, subsystem) in FILES {
            if !entries.iter().any(|e| e == file) {
                continue;
            }
            let path = dir.join(file);
            let text = match crate::helpers::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => bail!("reading {}: {e}", path.display()),
            };
            for (key, value) in parse_kstat(&text, &path, true)? {
                let help = format!("kstat.zfs.misc.{file}.{key}");
                if let Some((name, help)) = self.name(subsystem, help, key) {
                    out.untyped(name, help, &[], value);
                }
            }
        }
        let pools: Vec<String> = entries
            .into_iter()
            .filter(|e| !FILES.iter().any(|(f, _)| f == e))
            .collect();
        for (pool, path) in pool_files(&pools, &dir, |n| n == "io")? {
            let text = read(&path)?;
            for (key, value) in parse_pool_io(&text, &path)? {
                let help = format!("kstat.zfs.misc.io.{key}");
                if let Some((name, help)) = self.name("zfs_zpool", help, key) {
                    out.untyped(name, help, &[("zpool", pool.as_str())], value);
                }
            }
        }
        for (pool, path) in pool_files(&pools, &dir, |n| n.starts_with("objset-"))? {
            let text = read(&path)?;
            let (dataset, rows) = parse_objset(&text, &path)?;
            for (key, value) in rows {
                let help = format!("kstat.zfs.misc.objset.{key}");
                if let Some((name, help)) = self.name("zfs_zpool_dataset", help, key) {
                    out.untyped(
                        name,
                        help,
                        &[("zpool", pool.as_str()), ("dataset", dataset.as_str())],
                        value,
                    );
                }
            }
        }
        for (pool, path) in pool_files(&pools, &dir, |n| n == "state")? {
            let text = read(&path)?;
            let state = text.lines().next().unwrap_or("").to_lowercase();
            for s in POOL_STATES {
                out.gauge(
                    "node_zfs_zpool_state",
                    "kstat.zfs.misc.state",
                    &[("zpool", pool.as_str()), ("state", s)],
                    if state == *s { 1.0 } else { 0.0 },
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{collect, write};

    fn zfs_at(root: &Path) -> Zfs {
        Zfs {
            paths: Paths {
                procfs: root.into(),
                ..Paths::default()
            },
            names: KeyNames::default(),
        }
    }

    #[test]
    fn reports_kstats_pools_datasets_and_states() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(
            r,
            "spl/kstat/zfs/arcstats",
            "6 1 0x01 91 4368 5266997922 97951858082072\nname type data\n\
             hits 4 8772612\nmemory_available_bytes 3 -5\nsome_string 7 abc\n",
        );
        write(
            r,
            "spl/kstat/zfs/fm",
            "0 1 0x01 4 192 8007255140 354329591145385\nname type data\nerpt-dropped 4 18\n",
        );
        write(
            r,
            "spl/kstat/zfs/tank/io",
            "12 3 0x00 1 80 79205351707403 395818011156865\n\
             nread nwritten reads writes wtime wlentime wupdate rtime rlentime rupdate wcnt rcnt\n\
             1884160 3206144 22 132 7155162 104112268 79210489694949 24168078 104112268 79210489849220 0 0\n",
        );
        write(
            r,
            "spl/kstat/zfs/tank/objset-0x36",
            "23 1 0x01 7 2160 221578688875 6665999035587\nname type data\n\
             dataset_name 7 tank/home  dir\nwrites 4 4\n",
        );
        write(r, "spl/kstat/zfs/tank/state", "DEGRADED\n");
        let got = collect(&zfs_at(r)).unwrap();
        for want in [
            "# HELP node_zfs_arc_hits kstat.zfs.misc.arcstats.hits",
            "# TYPE node_zfs_arc_hits untyped",
            "node_zfs_arc_hits 8.772612e+06",
            "node_zfs_arc_memory_available_bytes -5",
            "node_zfs_fm_erpt_dropped 18",
            "node_zfs_zpool_nread{zpool=\"tank\"} 1.88416e+06",
            "node_zfs_zpool_rcnt{zpool=\"tank\"} 0",
            "node_zfs_zpool_dataset_writes{dataset=\"tank/home  dir\",zpool=\"tank\"} 4",
            "node_zfs_zpool_state{state=\"degraded\",zpool=\"tank\"} 1",
            "node_zfs_zpool_state{state=\"online\",zpool=\"tank\"} 0",
        ] {
            assert!(got.contains(want), "{want} not in\n{got}");
        }
        assert!(!got.contains("some_string"), "{got}");
    }

    #[test]
    fn no_zfs_module_is_no_data() {
        let dir = tempfile::tempdir().unwrap();
        let err = collect(&zfs_at(dir.path())).unwrap_err();
        assert!(crate::helpers::is_no_data(&err), "{err}");
    }

    #[test]
    fn broken_kstats_name_the_file() {
        let p = Path::new("/proc/spl/kstat/zfs/arcstats");
        for bad in ["", "6 1 0x01\nhits 4 1\n", "name type data\nhits 4 -1\n"] {
            let err = parse_kstat(bad, p, true).unwrap_err();
            assert!(err.to_string().contains("arcstats"), "{bad:?}: {err}");
        }
        let io =
            "nread nwritten reads writes wtime wlentime wupdate rtime rlentime rupdate wcnt rcnt\n";
        for bad in [
            format!("{io}1 2 3\n"),
            format!("{io}1 2 3 4 5 6 7 8 9 10 11 x\n"),
        ] {
            let err = parse_pool_io(&bad, Path::new("tank/io")).unwrap_err();
            assert!(err.to_string().contains("tank/io"), "{bad:?}: {err}");
        }
    }
}
