//! `node_softnet_*` per CPU from /proc/net/softnet_stat: one line per online
//! CPU of hexadecimal 32-bit counters. The columns grew with the kernel:
//! 9 (2.6.23: processed, dropped, time_squeeze, 5 zeros, cpu_collision),
//! 10 (+received_rps), 11 (+flow_limit_count), 13 (5.10: +backlog_len and the
//! CPU's own number) and 15 (6.x: +input_qlen, process_qlen). As in
//! node_exporter, a column the kernel lacks is reported as 0. The `cpu` label is the CPU number
//! from column 13 when present (offline CPUs have no line, so line numbers
//! and CPU numbers differ on such hosts), else the line number.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::read_kept;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "softnet",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Softnet {
            paths: f.paths.clone(),
        }))
    },
};

/// One CPU's line; `None` for the columns this kernel does not have.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SoftnetStat {
    pub cpu: u32,
    pub processed: u32,
    pub dropped: u32,
    pub time_squeezed: u32,
    pub cpu_collision: u32,
    pub received_rps: Option<u32>,
    pub flow_limit_count: Option<u32>,
    pub backlog_len: Option<u32>,
}

const MIN_COLUMNS: usize = 9;

pub fn parse_softnet(text: &str, path: &Path) -> anyhow::Result<Vec<SoftnetStat>> {
    let mut out = Vec::new();
    let mut cols = [0u32; 13];
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let mut width = 0;
        for (n, field) in line.split_ascii_whitespace().enumerate() {
            width = n + 1;
            // Columns past the 13th (input_qlen, process_qlen) are not
            // exposed by node_exporter; they are not parsed.
            if let Some(slot) = cols.get_mut(n) {
                *slot = u32::from_str_radix(field, 16).map_err(|_| {
                    anyhow!(
                        "parsing {} line {lineno}: column {}: {field:?} is not a 32-bit hexadecimal number",
                        path.display(),
                        n + 1
                    )
                })?;
            }
        }
        if width == 0 {
            continue;
        }
        if width < MIN_COLUMNS {
            return Err(anyhow!(
                "parsing {} line {lineno}: {width} columns, expected at least {MIN_COLUMNS}",
                path.display()
            ));
        }
        let has = |col: usize| (width > col).then_some(cols[col]);
        out.push(SoftnetStat {
            cpu: has(12).unwrap_or(out.len() as u32),
            processed: cols[0],
            dropped: cols[1],
            time_squeezed: cols[2],
            cpu_collision: cols[8],
            received_rps: has(9),
            flow_limit_count: has(10),
            backlog_len: has(11),
        });
    }
    if out.is_empty() {
        return Err(anyhow!("parsing {}: no CPU lines found", path.display()));
    }
    Ok(out)
}

struct Softnet {
    paths: Paths,
}

impl Collector for Softnet {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("net/softnet_stat");
        let text = read_kept(&path)?;
        let stats = parse_softnet(&text, &path)?;
        let mut seen = std::collections::HashSet::with_capacity(stats.len());
        for s in &stats {
            if !seen.insert(s.cpu) {
                return Err(anyhow!(
                    "parsing {}: CPU {} appears twice",
                    path.display(),
                    s.cpu
                ));
            }
            let cpu = s.cpu.to_string();
            let labels = [("cpu", cpu.as_str())];
            out.counter(
                "node_softnet_processed_total",
                "Number of processed packets",
                &labels,
                s.processed.into(),
            );
            out.counter(
                "node_softnet_dropped_total",
                "Number of dropped packets",
                &labels,
                s.dropped.into(),
            );
            out.counter(
                "node_softnet_times_squeezed_total",
                "Number of times processing packets ran out of quota",
                &labels,
                s.time_squeezed.into(),
            );
            out.counter(
                "node_softnet_cpu_collision_total",
                "Number of collision occur while obtaining device lock while transmitting",
                &labels,
                s.cpu_collision.into(),
            );
            out.counter(
                "node_softnet_received_rps_total",
                "Number of times cpu woken up received_rps",
                &labels,
                s.received_rps.unwrap_or(0).into(),
            );
            out.counter(
                "node_softnet_flow_limit_count_total",
                "Number of times flow limit has been reached",
                &labels,
                s.flow_limit_count.unwrap_or(0).into(),
            );
            out.gauge(
                "node_softnet_backlog_len",
                "Softnet backlog status",
                &labels,
                s.backlog_len.unwrap_or(0).into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("/proc/net/softnet_stat")
    }

    #[test]
    fn kernel_6_with_cpu_index_and_queue_lengths() {
        // CPU 1 offline: the second line is CPU 2.
        let text = "0000272d 00000001 00000002 00000000 00000000 00000000 00000000 00000000 00000003 00000004 00000005 00000006 00000000 00000000 00000006\n\
                    00001000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000002 00000000 00000000\n";
        let s = parse_softnet(text, p()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0],
            SoftnetStat {
                cpu: 0,
                processed: 0x272d,
                dropped: 1,
                time_squeezed: 2,
                cpu_collision: 3,
                received_rps: Some(4),
                flow_limit_count: Some(5),
                backlog_len: Some(6),
            }
        );
        assert_eq!(s[1].cpu, 2);
        assert_eq!(s[1].processed, 4096);
    }

    #[test]
    fn old_kernels_use_the_line_number_and_lack_new_columns() {
        let text = "00000010 00000000 00000001 00000000 00000000 00000000 00000000 00000000 00000007\n\
                    00000020 00000000 00000002 00000000 00000000 00000000 00000000 00000000 00000000\n";
        let s = parse_softnet(text, p()).unwrap();
        assert_eq!(s[1].cpu, 1);
        assert_eq!(s[0].cpu_collision, 7);
        assert_eq!(s[0].received_rps, None);
        assert_eq!(s[0].backlog_len, None);
        // 11 columns (3.11 .. 5.9): rps and flow limit, no backlog.
        let text = "1 2 3 0 0 0 0 0 4 5 6\n";
        let s = parse_softnet(text, p()).unwrap();
        assert_eq!(s[0].flow_limit_count, Some(6));
        assert_eq!(s[0].backlog_len, None);
        assert_eq!(s[0].cpu, 0);
    }

    #[test]
    fn columns_an_old_kernel_lacks_are_reported_as_zero() {
        let dir = tempfile::tempdir().unwrap();
        crate::testutil::write(dir.path(), "net/softnet_stat", "1 2 3 0 0 0 0 0 4 5 6\n");
        let c = Softnet {
            paths: Paths {
                procfs: dir.path().into(),
                ..Paths::default()
            },
        };
        let mut set = MetricSet::new();
        c.update(&mut set).unwrap();
        let text = crate::testutil::render(set);
        assert!(
            text.contains("node_softnet_backlog_len{cpu=\"0\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("node_softnet_flow_limit_count_total{cpu=\"0\"} 6\n"),
            "{text}"
        );
    }

    #[test]
    fn short_or_garbage_lines_are_errors_naming_the_line() {
        let err = parse_softnet("1 2 3 4 5\n", p()).unwrap_err().to_string();
        assert!(err.contains("softnet_stat line 1"), "{err}");
        assert!(parse_softnet("1 2 3 0 0 0 0 0 zz\n", p()).is_err());
        // Wider than 32 bits.
        assert!(parse_softnet("100000000 2 3 0 0 0 0 0 0\n", p()).is_err());
        assert!(parse_softnet("", p()).is_err());
    }
}
