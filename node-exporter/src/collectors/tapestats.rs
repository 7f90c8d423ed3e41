//! `node_tape_*`: I/O statistics of SCSI tape drives from
//! /sys/class/scsi_tape/st<N>/stats/ (the `nst`/`st<N>a`... nodes are other
//! views of the same drive and are left out), as node_exporter; times are
//! in nanoseconds there. `--collector.tapestats.ignored-devices` (default
//! `^$`) as in node_exporter. No tape drives is "no data"; a statistic that
//! is not a number fails the collector naming the file.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::CollectorSpec;
use crate::cli::string_flag;
use crate::collector::{Collector, Paths};
use crate::device_filter::DeviceFilter;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "tapestats",
    default_enabled: true,
    flags: || {
        vec![string_flag(
            "collector.tapestats.ignored-devices",
            "^$",
            "Regexp of devices to ignore for tapestats.",
        )]
    },
    build: |f| {
        Ok(Box::new(Tapestats {
            paths: f.paths.clone(),
            filter: DeviceFilter::new(
                "collector.tapestats.ignored-devices",
                &f.string("collector.tapestats.ignored-devices"),
                "",
                "",
            )?,
        }))
    },
};

struct Tapestats {
    paths: Paths,
    filter: DeviceFilter,
}

/// (file under stats/, metric, help, is a counter, scale).
const STATS: [(&str, &str, &str, bool, f64); 10] = [
    ("in_flight", "node_tape_io_now", "The number of I/Os currently outstanding to this device.", false, 1.0),
    ("io_ns", "node_tape_io_time_seconds_total", "The amount of time spent waiting for all I/O to complete (including read and write). This includes tape movement commands such as seeking between file or set marks and implicit tape movement such as when rewind on close tape devices are used.", true, 1e-9),
    ("other_cnt", "node_tape_io_others_total", "The number of I/Os issued to the tape drive other than read or write commands. The time taken to complete these commands uses the following calculation io_time_seconds_total-read_time_seconds_total-write_time_seconds_total", true, 1.0),
    ("read_byte_cnt", "node_tape_read_bytes_total", "The number of bytes read from the tape drive.", true, 1.0),
    ("read_cnt", "node_tape_reads_completed_total", "The number of read requests issued to the tape drive.", true, 1.0),
    ("read_ns", "node_tape_read_time_seconds_total", "The amount of time spent waiting for read requests to complete.", true, 1e-9),
    ("resid_cnt", "node_tape_residual_total", "The number of times during a read or write we found the residual amount to be non-zero. This should mean that a program is issuing a read larger thean the block size on tape. For write not all data made it to tape.", true, 1.0),
    ("write_byte_cnt", "node_tape_written_bytes_total", "The number of bytes written to the tape drive.", true, 1.0),
    ("write_cnt", "node_tape_writes_completed_total", "The number of write requests issued to the tape drive.", true, 1.0),
    ("write_ns", "node_tape_write_time_seconds_total", "The amount of time spent waiting for write requests to complete.", true, 1e-9),
];

/// Whether a scsi_tape entry is a drive's main node (`st0`, not `nst0`
/// or `st0a`).
pub fn is_drive(name: &str) -> bool {
    name.strip_prefix("st")
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

pub fn parse_stat(text: &str, path: &Path) -> anyhow::Result<u64> {
    crate::helpers::parse_attr(text, path, "a count")
}

impl Collector for Tapestats {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let class = self.paths.sys("class/scsi_tape");
        for name in crate::helpers::absent_if_missing(crate::helpers::read_dir_names(&class))? {
            if !is_drive(&name) || self.filter.ignored(&name) {
                continue;
            }
            let stats = class.join(&name).join("stats");
            let labels = [("device", name.as_str())];
            for (file, metric, help, counter, scale) in STATS {
                let path = stats.join(file);
                let text = crate::helpers::read_to_string(&path)
                    .map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
                let value = parse_stat(&text, &path)? as f64 * scale;
                if counter {
                    out.counter(metric, help, &labels, value);
                } else {
                    out.gauge(metric, help, &labels, value);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{collect, sysfs_at, write};

    #[test]
    fn drives_only() {
        assert!(is_drive("st0"));
        assert!(is_drive("st12"));
        for other in ["nst0", "st0a", "st0l", "st", "sta"] {
            assert!(!is_drive(other), "{other}");
        }
    }

    #[test]
    fn stats_in_seconds_and_garbage_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for (file, _, _, _, _) in STATS {
            write(
                r,
                &format!("class/scsi_tape/st0/stats/{file}"),
                "2000000000\n",
            );
            write(r, &format!("class/scsi_tape/nst0/stats/{file}"), "5\n");
        }
        let c = Tapestats {
            paths: sysfs_at(r),
            filter: DeviceFilter::new("x", "^$", "y", "").unwrap(),
        };
        let text = collect(&c).unwrap();
        assert!(
            text.contains("node_tape_read_time_seconds_total{device=\"st0\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("node_tape_io_now{device=\"st0\"} 2e+09\n"),
            "{text}"
        );
        assert!(!text.contains("nst0"), "{text}");
        write(r, "class/scsi_tape/st0/stats/read_cnt", "many\n");
        let err = collect(&c).unwrap_err().to_string();
        assert!(err.contains("st0/stats/read_cnt"), "{err}");
    }
}
