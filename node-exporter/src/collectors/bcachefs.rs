//! `node_bcachefs_*` from /sys/fs/bcachefs/<uuid>/: btree cache size,
//! compression, error and btree write statistics, every file of `counters/`
//! as its own `node_bcachefs_<counter>_total` (the "since filesystem
//! creation" value), and per `dev-<N>` device its information, buckets,
//! durability, IO done and IO errors, as node_exporter reads them through
//! procfs. Sizes like `28.2k` are binary multiples, truncated to whole
//! bytes. No /sys/fs/bcachefs, or no filesystem in it, is "no data" (one
//! failed directory listing a scrape).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, NoData, Paths};
use crate::helpers::KeyNames;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "bcachefs",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Bcachefs {
            paths: f.paths.clone(),
            names: KeyNames::default(),
        }))
    },
};

struct Bcachefs {
    paths: Paths,
    /// Family names and help texts of the counters, made once per counter.
    names: KeyNames,
}

/// `2.05G`, `28.2k`, `720`: a number with an optional binary suffix, as
/// procfs' `parseHumanReadableBytes` (the product truncated to an integer).
pub fn parse_human_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let last = s.chars().last()?;
    let shift = match last.to_ascii_lowercase() {
        'k' => 10,
        'm' => 20,
        'g' => 30,
        't' => 40,
        'p' => 50,
        'e' => 60,
        _ => 0,
    };
    let number = if shift == 0 { s } else { &s[..s.len() - 1] };
    let v: f64 = number.trim().parse().ok()?;
    Some((v * (1u64 << shift) as f64) as u64)
}

fn bad(path: &Path, n: usize, what: &str) -> anyhow::Error {
    anyhow!("parsing {} line {}: {what}", path.display(), n + 1)
}

/// compression_stats: a header, then `<algorithm> <compressed> <uncompressed> [<average extent>]`.
pub fn parse_compression(text: &str, path: &Path) -> anyhow::Result<Vec<(String, u64, u64)>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        let size = |s: &str| {
            parse_human_bytes(s).ok_or_else(|| bad(path, n, &format!("{s:?} is not a size")))
        };
        let (compressed, uncompressed) = (size(f[1])?, size(f[2])?);
        if let Some(avg) = f.get(3) {
            size(avg)?;
        }
        out.push((
            f[0].trim_end_matches(':').to_string(),
            compressed,
            uncompressed,
        ));
    }
    Ok(out)
}

/// errors: `<type> <count> [<timestamp>]` per line.
pub fn parse_errors(text: &str, path: &Path) -> anyhow::Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 2 {
            continue;
        }
        let num = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| bad(path, n, &format!("{s:?} is not a number")))
        };
        let count = num(f[1])?;
        if let Some(ts) = f.get(2) {
            num(ts)?;
        }
        out.push((f[0].to_string(), count));
    }
    Ok(out)
}

/// A counters/ file: `since mount: N` and `since filesystem creation: N`;
/// the latter's value (0 when only the former is there).
pub fn parse_counter(text: &str, path: &Path) -> anyhow::Result<u64> {
    let (mut creation, mut seen) = (0, false);
    for (n, line) in text.lines().enumerate() {
        let (value, is_creation) = if let Some(v) = line.strip_prefix("since mount:") {
            (v, false)
        } else if let Some(v) = line.strip_prefix("since filesystem creation:") {
            (v, true)
        } else {
            continue;
        };
        let v = parse_human_bytes(value)
            .ok_or_else(|| bad(path, n, &format!("{:?} is not a count", value.trim())))?;
        seen = true;
        if is_creation {
            creation = v;
        }
    }
    if !seen {
        return Err(anyhow!(
            "parsing {}: not a bcachefs counter",
            path.display()
        ));
    }
    Ok(creation)
}

/// btree_write_stats: a header, then `<type>: <count> <average size>`.
pub fn parse_btree_writes(text: &str, path: &Path) -> anyhow::Result<Vec<(String, u64, u64)>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        let count = f[1]
            .parse::<u64>()
            .map_err(|_| bad(path, n, &format!("{:?} is not a number", f[1])))?;
        let size = parse_human_bytes(f[2])
            .ok_or_else(|| bad(path, n, &format!("{:?} is not a size", f[2])))?;
        out.push((f[0].trim_end_matches(':').to_string(), count, size));
    }
    Ok(out)
}

/// A device's io_done: `read:` and `write:` sections of `<data type>: <bytes>`.
pub fn parse_io_done(text: &str, path: &Path) -> anyhow::Result<Vec<(String, String, u64)>> {
    let mut out = Vec::new();
    let mut op = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line == "read:" || line == "write:" {
            op = Some(line.trim_end_matches(':'));
            continue;
        }
        let (Some(op), Some((kind, value))) = (op, line.split_once(':')) else {
            continue;
        };
        let v = value
            .trim()
            .parse::<u64>()
            .map_err(|_| bad(path, n, &format!("{:?} is not a number", value.trim())))?;
        out.push((op.to_string(), kind.trim().to_string(), v));
    }
    Ok(out)
}

/// A device's io_errors: the `<type>: <count>` lines of the "since
/// filesystem creation" section.
pub fn parse_io_errors(text: &str, path: &Path) -> anyhow::Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let mut in_section = false;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("IO errors since filesystem creation") {
            in_section = true;
            continue;
        }
        if line.starts_with("IO errors since ") {
            break;
        }
        let Some((kind, value)) = line.trim().split_once(':').filter(|_| in_section) else {
            continue;
        };
        let v = value
            .trim()
            .parse::<u64>()
            .map_err(|_| bad(path, n, &format!("{:?} is not a number", value.trim())))?;
        out.push((kind.trim().to_string(), v));
    }
    Ok(out)
}

/// A file's trimmed text; `None` when it does not exist.
fn read_optional(path: &Path) -> anyhow::Result<Option<String>> {
    match crate::helpers::read_to_string(path) {
        Ok(t) => Ok(Some(t.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow!("reading {}: {e}", path.display())),
    }
}

fn dir_entries(dir: &Path) -> anyhow::Result<Vec<(String, bool)>> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            NoData(format!("{} does not exist", dir.display())).into()
        } else {
            anyhow!("listing {}: {e}", dir.display())
        }
    })?;
    let mut out: Vec<(String, bool)> = rd
        .filter_map(|e| e.ok())
        .map(|e| {
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            (e.file_name().to_string_lossy().into_owned(), is_dir)
        })
        .collect();
    out.sort();
    Ok(out)
}

impl Bcachefs {
    fn filesystem(&self, out: &mut MetricSet, dir: &Path, uuid: &str) -> anyhow::Result<()> {
        let u = [("uuid", uuid)];
        let path = dir.join("btree_cache_size");
        let cache = match read_optional(&path)?.filter(|t| !t.is_empty()) {
            Some(t) => parse_human_bytes(&t)
                .ok_or_else(|| anyhow!("parsing {}: {t:?} is not a size", path.display()))?,
            None => 0,
        };
        let text = |name: &str| -> anyhow::Result<(std::path::PathBuf, String)> {
            let p = dir.join(name);
            let t = read_optional(&p)?.unwrap_or_default();
            Ok((p, t))
        };
        let (p, t) = text("compression_stats")?;
        // Keyed as procfs' maps: a name listed twice is one series, the last.
        let compression: BTreeMap<String, (u64, u64)> = parse_compression(&t, &p)?
            .into_iter()
            .map(|(a, c, u)| (a, (c, u)))
            .collect();
        let (p, t) = text("errors")?;
        let errors: BTreeMap<String, u64> = parse_errors(&t, &p)?.into_iter().collect();
        let counters_dir = dir.join("counters");
        let mut counters = Vec::new();
        if counters_dir.exists() {
            for (name, is_dir) in dir_entries(&counters_dir)? {
                if is_dir {
                    continue;
                }
                let p = counters_dir.join(&name);
                if let Some(t) = read_optional(&p)? {
                    counters.push((name, parse_counter(&t, &p)?));
                }
            }
        }
        let (p, t) = text("btree_write_stats")?;
        let writes: BTreeMap<String, (u64, u64)> = parse_btree_writes(&t, &p)?
            .into_iter()
            .map(|(w, c, s)| (w, (c, s)))
            .collect();

        out.gauge("node_bcachefs_info", "Filesystem information.", &u, 1.0);
        out.gauge(
            "node_bcachefs_btree_cache_size_bytes",
            "Btree cache memory usage in bytes.",
            &u,
            cache as f64,
        );
        for (algorithm, (compressed, uncompressed)) in &compression {
            let labels = [("uuid", uuid), ("algorithm", algorithm.as_str())];
            out.gauge(
                "node_bcachefs_compression_compressed_bytes",
                "Compressed size by algorithm.",
                &labels,
                *compressed as f64,
            );
            out.gauge(
                "node_bcachefs_compression_uncompressed_bytes",
                "Uncompressed size by algorithm.",
                &labels,
                *uncompressed as f64,
            );
        }
        for (kind, count) in &errors {
            out.counter(
                "node_bcachefs_errors_total",
                "Error count by error type.",
                &[("uuid", uuid), ("error_type", kind)],
                *count as f64,
            );
        }
        // Two counter files may make one name (`a-b`, `a.b`): the last wins.
        let mut by_family = BTreeMap::new();
        for (name, v) in &counters {
            if let Some((family, help)) = self.names.get(name, || {
                Some((
                    format!(
                        "node_bcachefs_{}_total",
                        crate::helpers::go_sanitize_metric_name(name)
                    ),
                    format!("Bcachefs counter {name} since filesystem creation."),
                ))
            }) {
                by_family.insert(family, (help, *v));
            }
        }
        for (family, (help, v)) in by_family {
            out.counter(family, help, &u, v as f64);
        }
        for (kind, (count, size)) in &writes {
            let labels = [("uuid", uuid), ("type", kind.as_str())];
            out.counter(
                "node_bcachefs_btree_writes_total",
                "Number of btree writes by type.",
                &labels,
                *count as f64,
            );
            out.gauge(
                "node_bcachefs_btree_write_average_size_bytes",
                "Average btree write size by type.",
                &labels,
                *size as f64,
            );
        }
        self.devices(out, dir, uuid)
    }

    fn devices(&self, out: &mut MetricSet, dir: &Path, uuid: &str) -> anyhow::Result<()> {
        for (name, is_dir) in dir_entries(dir)? {
            let Some(device) = name.strip_prefix("dev-").filter(|_| is_dir) else {
                continue;
            };
            let d = dir.join(&name);
            // Label and state are shown as they are, empty when unreadable.
            let string = |f: &str| {
                crate::helpers::read_to_string(d.join(f))
                    .map(|t| t.trim().to_string())
                    .unwrap_or_default()
            };
            let (label, state) = (string("label"), string("state"));
            let path = d.join("bucket_size");
            let bucket = match Some(string("bucket_size")).filter(|t| !t.is_empty()) {
                Some(t) => parse_human_bytes(&t)
                    .ok_or_else(|| anyhow!("parsing {}: {t:?} is not a size", path.display()))?,
                None => 0,
            };
            let number = |f: &str| -> anyhow::Result<u64> {
                let p = d.join(f);
                match read_optional(&p)? {
                    Some(t) => crate::helpers::parse_attr(&t, &p, "a number"),
                    None => Ok(0),
                }
            };
            let (buckets, durability) = (number("nbuckets")?, number("durability")?);
            let p = d.join("io_done");
            let io_done = parse_io_done(&read_optional(&p)?.unwrap_or_default(), &p)?;
            let p = d.join("io_errors");
            let io_errors = parse_io_errors(&read_optional(&p)?.unwrap_or_default(), &p)?;

            let dev = [("uuid", uuid), ("device", device)];
            out.gauge(
                "node_bcachefs_device_info",
                "Device information.",
                &[
                    ("uuid", uuid),
                    ("device", device),
                    ("label", &label),
                    ("state", &state),
                ],
                1.0,
            );
            out.gauge(
                "node_bcachefs_device_bucket_size_bytes",
                "Bucket size in bytes.",
                &dev,
                bucket as f64,
            );
            out.gauge(
                "node_bcachefs_device_buckets",
                "Total number of buckets.",
                &dev,
                buckets as f64,
            );
            out.gauge(
                "node_bcachefs_device_durability",
                "Device durability setting.",
                &dev,
                durability as f64,
            );
            // A data type listed twice in a section counts once, its last value.
            let done: BTreeMap<(&str, &str), u64> = io_done
                .iter()
                .map(|(op, kind, v)| ((op.as_str(), kind.as_str()), *v))
                .collect();
            for ((op, kind), v) in done {
                out.counter(
                    "node_bcachefs_device_io_done_bytes_total",
                    "IO bytes by operation type and data type.",
                    &[
                        ("uuid", uuid),
                        ("device", device),
                        ("operation", op),
                        ("data_type", kind),
                    ],
                    v as f64,
                );
            }
            let errors: BTreeMap<&str, u64> =
                io_errors.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            for (kind, v) in errors {
                out.counter(
                    "node_bcachefs_device_io_errors_total",
                    "IO errors by error type.",
                    &[("uuid", uuid), ("device", device), ("type", kind)],
                    v as f64,
                );
            }
        }
        Ok(())
    }
}

impl Collector for Bcachefs {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let root = self.paths.sys("fs/bcachefs");
        let mut any = false;
        // No /sys/fs/bcachefs: the module is not loaded (its load is a uevent).
        for (uuid, is_dir) in crate::helpers::absent_if_missing(dir_entries(&root))? {
            if is_dir {
                self.filesystem(out, &root.join(&uuid), &uuid)?;
                any = true;
            }
        }
        if !any {
            return Err(NoData(format!("no bcachefs filesystem in {}", root.display())).into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{collect, sysfs_at, write};

    const FS: &str = "fs/bcachefs/0f0e-uuid";

    fn run(root: &Path) -> anyhow::Result<String> {
        collect(&Bcachefs {
            paths: sysfs_at(root),
            names: KeyNames::default(),
        })
    }

    fn filesystem(root: &Path) {
        for (f, v) in [
            ("btree_cache_size", "2.05G\n"),
            (
                "compression_stats",
                "typetype compressed uncompressed average extent size\nlz4 48.9G 71.2G 62.5k\nnone 0 0 0\n",
            ),
            ("errors", "btree_node_read_error 3 1700000000\n"),
            ("counters/btree_node_read", "since mount: 10\nsince filesystem creation: 70225874\n"),
            ("counters/data-read.x", "since mount: 0\nsince filesystem creation: 1.5k\n"),
            ("btree_write_stats", "  nr size\ninitial: 3298401 100k\ninterior: 3 1.26k\n"),
            ("dev-0/label", "ssd.a\n"),
            ("dev-0/state", "[rw] ro evacuating spare \n"),
            ("dev-0/bucket_size", "512k\n"),
            ("dev-0/nbuckets", "953880\n"),
            (
                "dev-0/io_done",
                "read:\nsb          :       86016\nuser        :102313054208\nwrite:\nsb          :      645120\n",
            ),
            (
                "dev-0/io_errors",
                "IO errors since filesystem creation\n  read:    4\n  checksum:1\nIO errors since 8 y ago\n  read:    9\n",
            ),
        ] {
            write(root, &format!("{FS}/{f}"), v);
        }
    }

    #[test]
    fn filesystem_counters_and_devices() {
        let dir = tempfile::tempdir().unwrap();
        filesystem(dir.path());
        let text = run(dir.path()).unwrap();
        for want in [
            "node_bcachefs_info{uuid=\"0f0e-uuid\"} 1\n",
            "node_bcachefs_btree_cache_size_bytes{uuid=\"0f0e-uuid\"} 2.201170739e+09\n",
            "node_bcachefs_compression_compressed_bytes{algorithm=\"lz4\",uuid=\"0f0e-uuid\"} 5.2505975193e+10\n",
            "node_bcachefs_errors_total{error_type=\"btree_node_read_error\",uuid=\"0f0e-uuid\"} 3\n",
            "# HELP node_bcachefs_btree_node_read_total Bcachefs counter btree_node_read since filesystem creation.\n",
            "node_bcachefs_btree_node_read_total{uuid=\"0f0e-uuid\"} 7.0225874e+07\n",
            "node_bcachefs_data_read_x_total{uuid=\"0f0e-uuid\"} 1536\n",
            "node_bcachefs_btree_write_average_size_bytes{type=\"interior\",uuid=\"0f0e-uuid\"} 1290\n",
            "node_bcachefs_device_info{device=\"0\",label=\"ssd.a\",state=\"[rw] ro evacuating spare\",uuid=\"0f0e-uuid\"} 1\n",
            "node_bcachefs_device_bucket_size_bytes{device=\"0\",uuid=\"0f0e-uuid\"} 524288\n",
            "node_bcachefs_device_io_done_bytes_total{data_type=\"user\",device=\"0\",operation=\"read\",uuid=\"0f0e-uuid\"} 1.02313054208e+11\n",
            "node_bcachefs_device_io_errors_total{device=\"0\",type=\"read\",uuid=\"0f0e-uuid\"} 4\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        assert!(!text.contains("} 9\n"), "{text}");
    }

    #[test]
    fn nothing_mounted_is_no_data_and_garbage_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(crate::helpers::is_no_data(&run(dir.path()).unwrap_err()));
        std::fs::create_dir_all(dir.path().join("fs/bcachefs")).unwrap();
        assert!(crate::helpers::is_no_data(&run(dir.path()).unwrap_err()));
        for (file, text) in [
            ("btree_cache_size", "lots\n"),
            ("compression_stats", "h\nlz4 48.9Q 71.2G\n"),
            ("errors", "x many\n"),
            ("counters/btree_node_read", "since mount 1\n"),
            ("counters/btree_node_read", "since filesystem creation: k\n"),
            ("btree_write_stats", "h\ninitial: x 100k\n"),
            ("dev-0/nbuckets", "-1\n"),
            ("dev-0/io_done", "read:\nsb: 1x\n"),
            (
                "dev-0/io_errors",
                "IO errors since filesystem creation\n read: y\n",
            ),
        ] {
            filesystem(dir.path());
            write(dir.path(), &format!("{FS}/{file}"), text);
            let err = run(dir.path()).unwrap_err().to_string();
            assert!(err.contains(file), "{text:?}: {err}");
        }
        assert_eq!(parse_human_bytes("10.8T"), Some(11_874_725_579_980));
        assert_eq!(parse_human_bytes(""), None);
        assert_eq!(crate::helpers::go_sanitize_metric_name("a-b__.c"), "a_b_c");
    }
}
