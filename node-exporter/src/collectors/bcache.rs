//! `node_bcache_*` per bcache cache set from /sys/fs/bcache/<uuid>, as
//! node_exporter's bcache collector: the set's btree and journal figures,
//! each backing device's (`bdevN`) totals and writeback controller, each
//! cache device's (`cacheN`) writes and errors, and with
//! `--collector.bcache.priorityStats` the costly `priority_stats`. No
//! bcache (no /sys/fs/bcache) is an empty success as in node_exporter,
//! after one directory listing a scrape.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::CollectorSpec;
use crate::cli::bool_flag;
use crate::collector::{Collector, Paths};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "bcache",
    default_enabled: true,
    flags: || {
        bool_flag(
            "collector.bcache.priorityStats",
            false,
            "Expose expensive priority stats.",
        )
        .into()
    },
    build: |f| {
        Ok(Box::new(Bcache {
            paths: f.paths.clone(),
            priority_stats: f.bool("collector.bcache.priorityStats", false),
        }))
    },
};

struct Bcache {
    paths: Paths,
    priority_stats: bool,
}

/// bcache's `bch_hprint` numbers: plain integers, or a mantissa with a
/// binary-prefix suffix (`20.4G`) whose "fraction" is tenths of 1024ths
/// (`.4` is 4/10.24, as procfs reads it).
pub fn dehumanize(s: &str) -> Option<f64> {
    let last = *s.as_bytes().last()?;
    if last.is_ascii_digit() {
        return s.parse::<f64>().ok().filter(|v| v.is_finite());
    }
    let mul = match last {
        b'k' => 1u64 << 10,
        b'M' => 1 << 20,
        b'G' => 1 << 30,
        b'T' => 1 << 40,
        b'P' => 1 << 50,
        b'E' => 1 << 60,
        _ => return None,
    } as f64;
    let body = &s[..s.len() - 1];
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let mut v: f64 = int.parse().ok()?;
    if let Some(f) = frac {
        v += f.parse::<f64>().ok()? / 10.24;
    }
    let v = v * mul;
    v.is_finite().then_some(v)
}

/// A sysfs value in `bch_hprint` form, truncated to whole units as
/// procfs does; errors name the file.
fn read_value(path: &Path) -> anyhow::Result<f64> {
    let text = crate::helpers::read_to_string(path)
        .map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
    let t = text.strip_suffix('\n').unwrap_or(&text);
    let v = dehumanize(t)
        .ok_or_else(|| anyhow!("parsing {}: {t:?} is not a bcache number", path.display()))?;
    // Go converts to uint64: negative values become 0 there too.
    Ok(v.trunc().max(0.0))
}

/// `writeback_rate_debug`: rate, dirty, target, proportional, integral,
/// change (the last three signed).
#[derive(Debug, Default, PartialEq)]
pub struct Writeback {
    pub rate: f64,
    pub target: f64,
    pub proportional: f64,
    pub integral: f64,
    pub change: f64,
}

pub fn parse_writeback_rate_debug(text: &str, path: &Path) -> anyhow::Result<Writeback> {
    let mut w = Writeback::default();
    for line in text.lines() {
        let Some((key, _)) = line.split_once(':') else {
            continue;
        };
        let raw = line.split_whitespace().last().unwrap_or("");
        let bad = || {
            anyhow!(
                "parsing {}: {key}: {raw:?} is not a bcache number",
                path.display()
            )
        };
        let signed = |s: &str| -> Option<f64> {
            let (neg, s) = match s.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, s),
            };
            let v = dehumanize(s)?.trunc();
            Some(if neg { -v } else { v })
        };
        match key {
            "rate" => {
                w.rate = dehumanize(raw.trim_end_matches("/sec"))
                    .ok_or_else(bad)?
                    .trunc()
            }
            "dirty" => {
                dehumanize(raw).ok_or_else(bad)?;
            }
            "target" => w.target = dehumanize(raw).ok_or_else(bad)?.trunc(),
            "proportional" => w.proportional = signed(raw).ok_or_else(bad)?,
            "integral" => w.integral = signed(raw).ok_or_else(bad)?,
            "change" => w.change = signed(raw.trim_end_matches("/sec")).ok_or_else(bad)?,
            "next io" => {
                raw.trim_end_matches("ms")
                    .parse::<i64>()
                    .map_err(|_| bad())?;
            }
            _ => {}
        }
    }
    Ok(w)
}

/// `priority_stats`: (unused %, metadata %).
pub fn parse_priority_stats(text: &str, path: &Path) -> anyhow::Result<(u64, u64)> {
    let (mut unused, mut metadata) = (0, 0);
    for line in text.lines() {
        let slot = if line.starts_with("Unused:") {
            &mut unused
        } else if line.starts_with("Metadata:") {
            &mut metadata
        } else {
            continue;
        };
        let raw = line.split_whitespace().last().unwrap_or("");
        *slot = raw
            .trim_end_matches('%')
            .parse()
            .map_err(|_| anyhow!("parsing {}: {raw:?} is not a percentage", path.display()))?;
    }
    Ok((unused, metadata))
}

/// Entries `<prefix><digit>...` of a cache set directory, sorted.
fn members(dir: &Path, prefix: &str) -> anyhow::Result<Vec<String>> {
    Ok(crate::helpers::numbered_entries(dir, prefix)?
        .into_iter()
        .map(|(name, _)| name)
        .collect())
}

/// The cache set's own figures: (file, metric, help, is counter, scale).
const SET_VALUES: &[(&str, &str, &str, bool, f64)] = &[
    (
        "average_key_size",
        "node_bcache_average_key_size_sectors",
        "Average data per key in the btree (sectors).",
        false,
        1.0,
    ),
    (
        "btree_cache_size",
        "node_bcache_btree_cache_size_bytes",
        "Amount of memory currently used by the btree cache.",
        false,
        1.0,
    ),
    (
        "cache_available_percent",
        "node_bcache_cache_available_percent",
        "Percentage of cache device without dirty data, usable for writeback (may contain clean cached data).",
        false,
        1.0,
    ),
    ("congested", "node_bcache_congested", "Congestion.", false, 1.0),
    (
        "root_usage_percent",
        "node_bcache_root_usage_percent",
        "Percentage of the root btree node in use (tree depth increases if too high).",
        false,
        1.0,
    ),
    ("tree_depth", "node_bcache_tree_depth", "Depth of the btree.", false, 1.0),
    (
        "internal/active_journal_entries",
        "node_bcache_active_journal_entries",
        "Number of journal entries that are newer than the index.",
        false,
        1.0,
    ),
    (
        "internal/btree_nodes",
        "node_bcache_btree_nodes",
        "Total nodes in the btree.",
        false,
        1.0,
    ),
    (
        "internal/btree_read_average_duration_us",
        "node_bcache_btree_read_average_duration_seconds",
        "Average btree read duration.",
        false,
        // procfs takes this file as nanoseconds, and node_exporter scales by 1e-9.
        1e-9,
    ),
    (
        "internal/cache_read_races",
        "node_bcache_cache_read_races_total",
        "Counts instances where while data was being read from the cache, the bucket was reused and invalidated - i.e. where the pointer was stale after the read completed.",
        true,
        1.0,
    ),
];

/// A backing device's lifetime totals: (file in stats_total, metric, help).
const BDEV_TOTALS: &[(&str, &str, &str)] = &[
    (
        "bypassed",
        "node_bcache_bypassed_bytes_total",
        "Amount of IO (both reads and writes) that has bypassed the cache.",
    ),
    (
        "cache_hits",
        "node_bcache_cache_hits_total",
        "Hits counted per individual IO as bcache sees them.",
    ),
    (
        "cache_misses",
        "node_bcache_cache_misses_total",
        "Misses counted per individual IO as bcache sees them.",
    ),
    (
        "cache_bypass_hits",
        "node_bcache_cache_bypass_hits_total",
        "Hits for IO intended to skip the cache.",
    ),
    (
        "cache_bypass_misses",
        "node_bcache_cache_bypass_misses_total",
        "Misses for IO intended to skip the cache.",
    ),
    (
        "cache_miss_collisions",
        "node_bcache_cache_miss_collisions_total",
        "Instances where data insertion from cache miss raced with write (data already present).",
    ),
    (
        "cache_readaheads",
        "node_bcache_cache_readaheads_total",
        "Count of times readahead occurred.",
    ),
];

impl Bcache {
    fn cache_set(&self, dir: &Path, uuid: &str, out: &mut MetricSet) -> anyhow::Result<()> {
        for (file, name, help, counter, scale) in SET_VALUES {
            let v = read_value(&dir.join(file))? * scale;
            let labels = [("uuid", uuid)];
            if *counter {
                out.counter(*name, *help, &labels, v);
            } else {
                out.gauge(*name, *help, &labels, v);
            }
        }
        for bdev in members(dir, "bdev")? {
            let d = dir.join(&bdev);
            let labels = [("uuid", uuid), ("backing_device", bdev.as_str())];
            out.gauge(
                "node_bcache_dirty_data_bytes",
                "Amount of dirty data for this backing device in the cache.",
                &labels,
                read_value(&d.join("dirty_data"))?,
            );
            let wpath = d.join("writeback_rate_debug");
            let wtext = crate::helpers::read_to_string(&wpath)
                .map_err(|e| anyhow!("reading {}: {e}", wpath.display()))?;
            let w = parse_writeback_rate_debug(&wtext, &wpath)?;
            for (name, help, v) in [
                (
                    "node_bcache_dirty_target_bytes",
                    "Current dirty data target threshold for this backing device in bytes.",
                    w.target,
                ),
                (
                    "node_bcache_writeback_rate",
                    "Current writeback rate for this backing device in bytes.",
                    w.rate,
                ),
                (
                    "node_bcache_writeback_rate_proportional_term",
                    "Current result of proportional controller, part of writeback rate",
                    w.proportional,
                ),
                (
                    "node_bcache_writeback_rate_integral_term",
                    "Current result of integral controller, part of writeback rate",
                    w.integral,
                ),
                (
                    "node_bcache_writeback_change",
                    "Last writeback rate change step for this backing device.",
                    w.change,
                ),
            ] {
                out.gauge(name, help, &labels, v);
            }
            for (file, name, help) in BDEV_TOTALS {
                let v = read_value(&d.join("stats_total").join(file))?;
                out.counter(*name, *help, &labels, v);
            }
        }
        for cache in members(dir, "cache")? {
            let d = dir.join(&cache);
            let labels = [("uuid", uuid), ("cache_device", cache.as_str())];
            out.gauge(
                "node_bcache_io_errors",
                "Number of errors that have occurred, decayed by io_error_halflife.",
                &labels,
                read_value(&d.join("io_errors"))?,
            );
            out.counter(
                "node_bcache_metadata_written_bytes_total",
                "Sum of all non data writes (btree writes and all other metadata).",
                &labels,
                read_value(&d.join("metadata_written"))?,
            );
            out.counter(
                "node_bcache_written_bytes_total",
                "Sum of all data that has been written to the cache.",
                &labels,
                read_value(&d.join("written"))?,
            );
            if self.priority_stats {
                let p = d.join("priority_stats");
                let text = crate::helpers::read_to_string(&p)
                    .map_err(|e| anyhow!("reading {}: {e}", p.display()))?;
                let (unused, metadata) = parse_priority_stats(&text, &p)?;
                out.gauge(
                    "node_bcache_priority_stats_unused_percent",
                    "The percentage of the cache that doesn't contain any data.",
                    &labels,
                    unused as f64,
                );
                out.gauge(
                    "node_bcache_priority_stats_metadata_percent",
                    "Bcache's metadata overhead.",
                    &labels,
                    metadata as f64,
                );
            }
        }
        Ok(())
    }
}

impl Collector for Bcache {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let root = self.paths.sys("fs/bcache");
        // Cache sets are named by UUID; `register` and such are not.
        let sets: Vec<String> = crate::helpers::dir_names_if_any(&root)?
            .into_iter()
            .filter(|n| n.contains('-'))
            .collect();
        for uuid in &sets {
            self.cache_set(&root.join(uuid), uuid, out)?;
        }
        crate::collector::devices_found(!sets.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dehumanizes_bch_hprint_numbers() {
        assert_eq!(dehumanize("546"), Some(546.0));
        assert_eq!(dehumanize("1.1M").map(f64::trunc), Some(1150976.0));
        assert_eq!(dehumanize("20.4G").map(f64::trunc), Some(21894266880.0));
        assert_eq!(dehumanize("512k"), Some(524288.0));
        for bad in ["", "k", "1.xk", "12q", "--1", "1e999"] {
            assert_eq!(dehumanize(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parses_writeback_debug_with_signed_terms() {
        let text = "rate:           1.1M/sec\ndirty:          20.4G\ntarget:         20.4G\n\
                    proportional:   -427.5k\nintegral:       790.0k\nchange:         321.5k/sec\n\
                    next io:        17ms\n";
        let w = parse_writeback_rate_debug(text, Path::new("writeback_rate_debug")).unwrap();
        assert_eq!(w.rate, 1150976.0);
        assert_eq!(w.target, 21894266880.0);
        assert_eq!(w.proportional, -437748.0);
        assert_eq!(w.integral, 808960.0);
        assert_eq!(w.change, 329204.0);
        let err =
            parse_writeback_rate_debug("rate: fast\n", Path::new("bdev0/writeback_rate_debug"))
                .unwrap_err();
        assert!(
            err.to_string().contains("bdev0/writeback_rate_debug"),
            "{err}"
        );
    }

    #[test]
    fn parses_priority_stats() {
        let text = "Unused:\t\t99%\nMetadata:\t0%\nAverage:\t10473\n";
        assert_eq!(parse_priority_stats(text, Path::new("p")).unwrap(), (99, 0));
        let err =
            parse_priority_stats("Unused: lots\n", Path::new("cache0/priority_stats")).unwrap_err();
        assert!(err.to_string().contains("cache0/priority_stats"), "{err}");
    }
}
