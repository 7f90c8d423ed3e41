//! `node_fibrechannel_*` per Fibre Channel host from /sys/class/fc_host/:
//! `node_fibrechannel_info` with the host's strings (`0x` dropped from the
//! hexadecimal ones, empty when missing) and the `statistics/` counters,
//! hexadecimal in sysfs, as node_exporter. A counter the driver does not
//! keep reads all ones (`0xffffffffffffffff`) and is left out, like a
//! missing one; one that is not hexadecimal fails the collector naming the
//! file. No /sys/class/fc_host is "no data".

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::{read_dir_names, read_optional_attr};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "fibrechannel",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Fibrechannel {
            paths: f.paths.clone(),
        }))
    },
};

struct Fibrechannel {
    paths: Paths,
}

/// The info labels, each read from the file of the same name.
const INFO: [&str; 10] = [
    "dev_loss_tmo",
    "fabric_name",
    "port_id",
    "port_name",
    "port_state",
    "port_type",
    "speed",
    "supported_classes",
    "supported_speeds",
    "symbolic_name",
];

/// (file under statistics/, metric, help).
const COUNTERS: [(&str, &str, &str); 14] = [
    (
        "dumped_frames",
        "node_fibrechannel_dumped_frames_total",
        "Number of dumped frames",
    ),
    (
        "error_frames",
        "node_fibrechannel_error_frames_total",
        "Number of errors in frames",
    ),
    (
        "fcp_packet_aborts",
        "node_fibrechannel_fcp_packet_aborts_total",
        "Number of aborted packets",
    ),
    (
        "invalid_crc_count",
        "node_fibrechannel_invalid_crc_total",
        "Invalid Cyclic Redundancy Check count",
    ),
    (
        "invalid_tx_word_count",
        "node_fibrechannel_invalid_tx_words_total",
        "Number of invalid words transmitted by host port",
    ),
    (
        "link_failure_count",
        "node_fibrechannel_link_failure_total",
        "Number of times the host port link has failed",
    ),
    (
        "loss_of_signal_count",
        "node_fibrechannel_loss_of_signal_total",
        "Number of times signal has been lost",
    ),
    (
        "loss_of_sync_count",
        "node_fibrechannel_loss_of_sync_total",
        "Number of failures on either bit or transmission word boundaries",
    ),
    (
        "nos_count",
        "node_fibrechannel_nos_total",
        "Number Not_Operational Primitive Sequence received by host port",
    ),
    (
        "rx_frames",
        "node_fibrechannel_rx_frames_total",
        "Number of frames received",
    ),
    (
        "rx_words",
        "node_fibrechannel_rx_words_total",
        "Number of words received by host port",
    ),
    (
        "seconds_since_last_reset",
        "node_fibrechannel_seconds_since_last_reset_total",
        "Number of seconds since last host port reset",
    ),
    (
        "tx_frames",
        "node_fibrechannel_tx_frames_total",
        "Number of frames transmitted by host port",
    ),
    (
        "tx_words",
        "node_fibrechannel_tx_words_total",
        "Number of words transmitted by host port",
    ),
];

/// A statistics counter (`0x13`); `None` for the all-ones "not kept" value.
pub fn parse_counter(text: &str, path: &Path) -> anyhow::Result<Option<u64>> {
    let t = text.trim();
    let hex = t.strip_prefix("0x").unwrap_or(t);
    let v = u64::from_str_radix(hex, 16).map_err(|_| {
        anyhow!(
            "parsing {}: {t:?} is not a hexadecimal count",
            path.display()
        )
    })?;
    Ok((v != u64::MAX).then_some(v))
}

impl Collector for Fibrechannel {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let class = self.paths.sys("class/fc_host");
        for host in crate::helpers::absent_if_missing(read_dir_names(&class))? {
            let dir = class.join(&host);
            let mut values = Vec::with_capacity(INFO.len());
            for file in INFO {
                let v = read_optional_attr(&dir.join(file))?.unwrap_or_default();
                values.push(v.strip_prefix("0x").map(str::to_string).unwrap_or(v));
            }
            let mut labels: Vec<(&'static str, &str)> = INFO
                .iter()
                .copied()
                .zip(values.iter().map(String::as_str))
                .collect();
            // fc_host sorts between fabric_name and port_id.
            labels.insert(2, ("fc_host", &host));
            out.gauge(
                "node_fibrechannel_info",
                "Non-numeric data from /sys/class/fc_host/<host>, value is always 1.",
                &labels,
                1.0,
            );
            let stats = dir.join("statistics");
            for (file, metric, help) in COUNTERS {
                let path = stats.join(file);
                let Some(text) = read_optional_attr(&path)? else {
                    continue;
                };
                if let Some(v) = parse_counter(&text, &path)? {
                    out.counter(metric, help, &[("fc_host", &host)], v as f64);
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
    fn counters_are_hexadecimal_and_all_ones_is_absent() {
        let p = Path::new("rx_frames");
        assert_eq!(parse_counter("0x13\n", p).unwrap(), Some(19));
        assert_eq!(parse_counter("0xffffffffffffffff\n", p).unwrap(), None);
        let err = parse_counter("0xzz", p).unwrap_err().to_string();
        assert!(err.contains("rx_frames"), "{err}");
    }

    #[test]
    fn info_and_counters_per_host() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "class/fc_host/host0/port_id", "0x000002\n");
        write(r, "class/fc_host/host0/speed", "16 Gbit\n");
        write(r, "class/fc_host/host0/statistics/tx_frames", "0x5\n");
        write(
            r,
            "class/fc_host/host0/statistics/dumped_frames",
            "0xffffffffffffffff\n",
        );
        let text = collect(&Fibrechannel { paths: sysfs_at(r) }).unwrap();
        assert!(text.contains(
            "node_fibrechannel_info{dev_loss_tmo=\"\",fabric_name=\"\",fc_host=\"host0\",port_id=\"000002\",port_name=\"\",port_state=\"\",port_type=\"\",speed=\"16 Gbit\",supported_classes=\"\",supported_speeds=\"\",symbolic_name=\"\"} 1\n"
        ), "{text}");
        assert!(
            text.contains("node_fibrechannel_tx_frames_total{fc_host=\"host0\"} 5\n"),
            "{text}"
        );
        assert!(!text.contains("dumped_frames"), "{text}");
    }
}
