//! Connection tracking: `node_nf_conntrack_entries` and
//! `node_nf_conntrack_entries_limit` from /proc/sys/net/netfilter, and the
//! `node_nf_conntrack_stat_*` counters of /proc/net/stat/nf_conntrack summed
//! over CPUs (gauges, as node_exporter types them). Without the nf_conntrack
//! module the sysctl files are missing and the collector has no data.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::{is_no_data, read_kept, read_kept_u64};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "conntrack",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Conntrack {
            paths: f.paths.clone(),
        }))
    },
};

/// The columns of /proc/net/stat/nf_conntrack that are reported: column
/// name, metric name, help. `search_restart` is missing before Linux 2.6.35
/// and then reads as 0.
const STATS: [(&str, &str, &str); 8] = [
    (
        "found",
        "node_nf_conntrack_stat_found",
        "Number of searched entries which were successful.",
    ),
    (
        "invalid",
        "node_nf_conntrack_stat_invalid",
        "Number of packets seen which can not be tracked.",
    ),
    (
        "ignore",
        "node_nf_conntrack_stat_ignore",
        "Number of packets seen which are already connected to a conntrack entry.",
    ),
    (
        "insert",
        "node_nf_conntrack_stat_insert",
        "Number of entries inserted into the list.",
    ),
    (
        "insert_failed",
        "node_nf_conntrack_stat_insert_failed",
        "Number of entries for which list insertion was attempted but failed.",
    ),
    (
        "drop",
        "node_nf_conntrack_stat_drop",
        "Number of packets dropped due to conntrack failure.",
    ),
    (
        "early_drop",
        "node_nf_conntrack_stat_early_drop",
        "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached.",
    ),
    (
        "search_restart",
        "node_nf_conntrack_stat_search_restart",
        "Number of conntrack table lookups which had to be restarted due to hashtable resizes.",
    ),
];

/// Parses /proc/net/stat/nf_conntrack: a header line naming the columns,
/// then one line of hex numbers per CPU. Returns the [`STATS`] columns
/// summed over CPUs. Columns are found by name, so the renames and additions
/// of newer kernels (`searched` became `clashres`) do not matter.
pub fn parse_conntrack_stat(text: &str, path: &Path) -> anyhow::Result<[u64; 8]> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(anyhow!("parsing {}: empty file", path.display()));
    };
    let columns: Vec<&str> = header.split_whitespace().collect();
    let mut index = [None; 8];
    for (slot, (name, _, _)) in index.iter_mut().zip(STATS) {
        *slot = columns.iter().position(|c| *c == name);
        if slot.is_none() && name != "search_restart" {
            return Err(anyhow!(
                "parsing {} line 1: no {name} column in header {header:?}",
                path.display()
            ));
        }
    }
    let mut sums = [0u64; 8];
    let mut values = Vec::with_capacity(columns.len());
    let mut cpus = 0;
    for (i, line) in lines {
        values.clear();
        for v in line.split_whitespace() {
            values.push(u64::from_str_radix(v, 16).map_err(|_| {
                anyhow!(
                    "parsing {} line {}: {v:?} is not a hexadecimal number",
                    path.display(),
                    i + 1
                )
            })?);
        }
        if values.len() != columns.len() {
            return Err(anyhow!(
                "parsing {} line {}: {} values for {} columns",
                path.display(),
                i + 1,
                values.len(),
                columns.len()
            ));
        }
        for (sum, idx) in sums.iter_mut().zip(index) {
            if let Some(v) = idx.and_then(|idx| values.get(idx)) {
                *sum = sum.wrapping_add(*v);
            }
        }
        cpus += 1;
    }
    if cpus == 0 {
        return Err(anyhow!("parsing {}: no per-CPU lines", path.display()));
    }
    Ok(sums)
}

struct Conntrack {
    paths: Paths,
}

impl Collector for Conntrack {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let count = read_kept_u64(&self.paths.proc("sys/net/netfilter/nf_conntrack_count"))?;
        let max = read_kept_u64(&self.paths.proc("sys/net/netfilter/nf_conntrack_max"))?;
        let stat_path = self.paths.proc("net/stat/nf_conntrack");
        // Without the per-CPU statistics file, the table size is still worth
        // reporting.
        let stats = match read_kept(&stat_path) {
            Ok(text) => Some(parse_conntrack_stat(&text, &stat_path)?),
            Err(e) if is_no_data(&e) => {
                tracing::debug!(error = %e, "conntrack statistics unavailable");
                None
            }
            Err(e) => return Err(e),
        };
        out.gauge(
            "node_nf_conntrack_entries",
            "Number of currently allocated flow entries for connection tracking.",
            &[],
            count as f64,
        );
        out.gauge(
            "node_nf_conntrack_entries_limit",
            "Maximum size of connection tracking table.",
            &[],
            max as f64,
        );
        if let Some(sums) = stats {
            for ((_, name, help), v) in STATS.iter().zip(sums) {
                out.gauge(*name, *help, &[], v as f64);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/proc/net/stat/nf_conntrack";

    // Linux 6.x: `searched` is `clashres`, `delete_list` is `chainlength`,
    // and the columns are separated by one or two spaces.
    const MODERN: &str = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n\
        00000031  00000000 00000001 00000000 00000010 0000000a 00000000 00000000 00000002 00000000 00000000 00000000 00000000  00000000 00000000 00000000 000000ff\n\
        00000031  00000000 00000002 00000000 00000001 00000001 00000000 00000000 00000003 00000001 00000004 00000005 00000000  00000000 00000000 00000000 00000001\n";

    #[test]
    fn sums_named_columns_over_cpus() {
        let s = parse_conntrack_stat(MODERN, Path::new(P)).unwrap();
        // found invalid ignore insert insert_failed drop early_drop search_restart
        assert_eq!(s, [3, 17, 11, 5, 1, 4, 5, 256]);
    }

    #[test]
    fn old_kernels_without_search_restart() {
        let text = "entries searched found new invalid ignore delete delete_list insert insert_failed drop early_drop icmp_error expect_new expect_create expect_delete\n\
            00000001 00000002 00000003 00000004 00000005 00000006 00000007 00000008 00000009 0000000a 0000000b 0000000c 0000000d 0000000e 0000000f 00000010\n";
        let s = parse_conntrack_stat(text, Path::new(P)).unwrap();
        assert_eq!(s, [3, 5, 6, 9, 10, 11, 12, 0]);
    }

    #[test]
    fn extra_columns_of_newer_kernels_are_ignored() {
        let text = "entries found invalid ignore insert insert_failed drop early_drop search_restart clash_resolve chaintoolong\n\
            1 2 3 4 5 6 7 8 9 a b\n";
        let s = parse_conntrack_stat(text, Path::new(P)).unwrap();
        assert_eq!(s, [2, 3, 4, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn malformed_files_name_file_and_line() {
        let short = MODERN.replace(" 000000ff\n", "\n");
        let garbage = MODERN.replace("0000000a", "0000000g");
        for (text, want) in [
            ("", "empty file"),
            ("entries found\n1 2\n", "no invalid column"),
            (MODERN.lines().next().unwrap_or(""), "no per-CPU lines"),
            (short.as_str(), "line 2"),
            (garbage.as_str(), "line 2"),
        ] {
            let err = parse_conntrack_stat(text, Path::new(P))
                .unwrap_err()
                .to_string();
            assert!(err.contains(P) && err.contains(want), "{want}: {err}");
        }
    }
}
