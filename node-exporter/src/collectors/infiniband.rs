//! `node_infiniband_*` from /sys/class/infiniband/<device>/: the device's
//! strings as `node_infiniband_info`, and per port its state, physical
//! state, rate and the counters of `counters/` and (pre-4.5 kernels)
//! `counters_ext/`, as node_exporter reads them through procfs: data
//! counters are in units of four octets and are multiplied by 4, a counter
//! the driver reports as `N/A (no PMA)` is left out. No
//! /sys/class/infiniband is "no data", as in node_exporter.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::{read_dir_names, read_optional_attr, read_sysfs_attr};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "infiniband",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Infiniband {
            paths: f.paths.clone(),
        }))
    },
};

struct Infiniband {
    paths: Paths,
}

/// (file, metric name, help, times 4).
type CounterSpec = (&'static str, &'static str, &'static str, bool);

const COUNTERS: &[CounterSpec] = &[
    ("excessive_buffer_overrun_errors", "node_infiniband_excessive_buffer_overrun_errors_total", "Number of times that OverrunErrors consecutive flow control update periods occurred, each having at least one overrun error.", false),
    ("link_downed", "node_infiniband_link_downed_total", "Number of times the link failed to recover from an error state and went down", false),
    ("link_error_recovery", "node_infiniband_link_error_recovery_total", "Number of times the link successfully recovered from an error state", false),
    ("local_link_integrity_errors", "node_infiniband_local_link_integrity_errors_total", "Number of times that the count of local physical errors exceeded the threshold specified by LocalPhyErrors.", false),
    ("multicast_rcv_packets", "node_infiniband_multicast_packets_received_total", "Number of multicast packets received (including errors)", false),
    ("multicast_xmit_packets", "node_infiniband_multicast_packets_transmitted_total", "Number of multicast packets transmitted (including errors)", false),
    ("port_rcv_constraint_errors", "node_infiniband_port_constraint_errors_received_total", "Number of packets received on the switch physical port that are discarded", false),
    ("port_rcv_data", "node_infiniband_port_data_received_bytes_total", "Number of data octets received on all links", true),
    ("port_rcv_discards", "node_infiniband_port_discards_received_total", "Number of inbound packets discarded by the port because the port is down or congested", false),
    ("port_rcv_errors", "node_infiniband_port_errors_received_total", "Number of packets containing an error that were received on this port", false),
    ("port_rcv_packets", "node_infiniband_port_packets_received_total", "Number of packets received on all VLs by this port (including errors)", false),
    ("port_rcv_remote_physical_errors", "node_infiniband_port_receive_remote_physical_errors_total", "Number of packets marked with the EBP (End of Bad Packet) delimiter received on the port.", false),
    ("port_rcv_switch_relay_errors", "node_infiniband_port_receive_switch_relay_errors_total", "Number of packets that could not be forwarded by the switch.", false),
    ("port_xmit_constraint_errors", "node_infiniband_port_constraint_errors_transmitted_total", "Number of packets not transmitted from the switch physical port", false),
    ("port_xmit_data", "node_infiniband_port_data_transmitted_bytes_total", "Number of data octets transmitted on all links", true),
    ("port_xmit_discards", "node_infiniband_port_discards_transmitted_total", "Number of outbound packets discarded by the port because the port is down or congested", false),
    ("port_xmit_packets", "node_infiniband_port_packets_transmitted_total", "Number of packets transmitted on all VLs from this port (including errors)", false),
    ("port_xmit_wait", "node_infiniband_port_transmit_wait_total", "Number of ticks during which the port had data to transmit but no data was sent during the entire tick", false),
    ("symbol_error", "node_infiniband_symbol_error_total", "Number of minor link errors detected on one or more physical lanes.", false),
    ("unicast_rcv_packets", "node_infiniband_unicast_packets_received_total", "Number of unicast packets received (including errors)", false),
    ("unicast_xmit_packets", "node_infiniband_unicast_packets_transmitted_total", "Number of unicast packets transmitted (including errors)", false),
    ("VL15_dropped", "node_infiniband_vl15_dropped_total", "Number of incoming VL15 packets dropped due to resource limitations.", false),
];

/// The 64-bit counters of `counters_ext/` on kernels before 4.5.
const LEGACY_COUNTERS: &[CounterSpec] = &[
    (
        "port_multicast_rcv_packets",
        "node_infiniband_legacy_multicast_packets_received_total",
        "Number of multicast packets received",
        false,
    ),
    (
        "port_multicast_xmit_packets",
        "node_infiniband_legacy_multicast_packets_transmitted_total",
        "Number of multicast packets transmitted",
        false,
    ),
    (
        "port_rcv_data_64",
        "node_infiniband_legacy_data_received_bytes_total",
        "Number of data octets received on all links",
        true,
    ),
    (
        "port_rcv_packets_64",
        "node_infiniband_legacy_packets_received_total",
        "Number of data packets received on all links",
        false,
    ),
    (
        "port_unicast_rcv_packets",
        "node_infiniband_legacy_unicast_packets_received_total",
        "Number of unicast packets received",
        false,
    ),
    (
        "port_unicast_xmit_packets",
        "node_infiniband_legacy_unicast_packets_transmitted_total",
        "Number of unicast packets transmitted",
        false,
    ),
    (
        "port_xmit_data_64",
        "node_infiniband_legacy_data_transmitted_bytes_total",
        "Number of data octets transmitted on all links",
        true,
    ),
    // node_exporter's help text says "received" here too.
    (
        "port_xmit_packets_64",
        "node_infiniband_legacy_packets_transmitted_total",
        "Number of data packets received on all links",
        false,
    ),
];

/// `4: ACTIVE` -> 4: exactly one colon, a 32-bit number before it.
pub fn parse_state(text: &str, path: &Path) -> anyhow::Result<u32> {
    let mut parts = text.split(':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(id), Some(_), None) => id.trim().parse().map_err(|_| {
            anyhow!(
                "parsing {}: {:?} is not a state number",
                path.display(),
                id.trim()
            )
        }),
        _ => Err(anyhow!(
            "parsing {}: {:?} is not 'ID: NAME'",
            path.display(),
            text.trim()
        )),
    }
}

/// `100 Gb/sec (4X EDR)` in bytes per second. The number goes through a
/// 32-bit float, as procfs parses it.
pub fn parse_rate(text: &str, path: &Path) -> anyhow::Result<u64> {
    let (gbits, _) = text
        .split_once(' ')
        .ok_or_else(|| anyhow!("parsing {}: {text:?} is not a rate", path.display()))?;
    let gbits: f32 = gbits
        .trim()
        .parse()
        .map_err(|_| anyhow!("parsing {}: {gbits:?} is not a number", path.display()))?;
    Ok((f64::from(gbits) * 125_000_000.0) as u64)
}

/// A counter file's value: `None` when the driver has none to give (read
/// refused, or `N/A (no PMA)`), an error naming the file when it is not
/// a number.
pub fn parse_counter(text: &str, path: &Path) -> anyhow::Result<Option<u64>> {
    let t = text.trim();
    match t.parse() {
        Ok(v) => Ok(Some(v)),
        Err(_) if t.contains("N/A (no PMA)") => Ok(None),
        Err(_) => Err(anyhow!(
            "parsing {}: {t:?} is not a counter",
            path.display()
        )),
    }
}

fn read_counter(path: &Path) -> anyhow::Result<Option<u64>> {
    match read_sysfs_attr(path) {
        Ok(text) => parse_counter(&text, path),
        // Counters a driver lists but does not serve, as procfs skips them.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ) || matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL)) =>
        {
            Ok(None)
        }
        Err(e) => Err(anyhow!("reading {}: {e}", path.display())),
    }
}

fn read_required(path: &Path) -> anyhow::Result<String> {
    read_sysfs_attr(path).map_err(|e| anyhow!("reading {}: {e}", path.display()))
}

/// The regular files of a counters directory.
fn regular_files(dir: &Path) -> anyhow::Result<Vec<String>> {
    let rd = std::fs::read_dir(dir).map_err(|e| anyhow!("listing {}: {e}", dir.display()))?;
    Ok(rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect())
}

fn push_counters(
    out: &mut MetricSet,
    dir: &Path,
    specs: &[CounterSpec],
    labels: &[(&'static str, &str)],
) -> anyhow::Result<()> {
    for file in regular_files(dir)? {
        let Some((_, name, help, times4)) = specs.iter().find(|s| s.0 == file) else {
            continue;
        };
        if let Some(v) = read_counter(&dir.join(&file))? {
            let v = if *times4 { v.wrapping_mul(4) } else { v };
            out.counter(*name, *help, labels, v as f64);
        }
    }
    Ok(())
}

impl Infiniband {
    fn port(
        &self,
        out: &mut MetricSet,
        device: &str,
        dir: &Path,
        port: &str,
    ) -> anyhow::Result<()> {
        let number: u32 = port
            .parse()
            .map_err(|_| anyhow!("{}: port {port:?} is not a number", dir.display()))?;
        let port_dir = dir.join(port);
        let number = number.to_string();
        let labels = [("device", device), ("port", number.as_str())];
        let state_path = port_dir.join("state");
        let state = parse_state(&read_required(&state_path)?, &state_path)?;
        let phys_path = port_dir.join("phys_state");
        let phys = parse_state(&read_required(&phys_path)?, &phys_path)?;
        let rate_path = port_dir.join("rate");
        let rate = parse_rate(&read_required(&rate_path)?, &rate_path)?;
        out.gauge(
            "node_infiniband_state_id",
            "State of the InfiniBand port (0: no change, 1: down, 2: init, 3: armed, 4: active, 5: act defer)",
            &labels,
            f64::from(state),
        );
        out.gauge(
            "node_infiniband_physical_state_id",
            "Physical state of the InfiniBand port (0: no change, 1: sleep, 2: polling, 3: disable, 4: shift, 5: link up, 6: link error recover, 7: phytest)",
            &labels,
            f64::from(phys),
        );
        out.gauge(
            "node_infiniband_rate_bytes_per_second",
            "Maximum signal transfer rate",
            &labels,
            rate as f64,
        );
        // Intel's irdma driver has no counters directory.
        if device.starts_with("irdma") {
            return Ok(());
        }
        push_counters(out, &port_dir.join("counters"), COUNTERS, &labels)?;
        let ext = port_dir.join("counters_ext");
        if ext.exists() {
            push_counters(out, &ext, LEGACY_COUNTERS, &labels)?;
        }
        Ok(())
    }
}

impl Collector for Infiniband {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let class = self.paths.sys("class/infiniband");
        for device in crate::helpers::absent_if_missing(read_dir_names(&class))? {
            let dir = class.join(&device);
            // fw_ver is there on every driver since 4.10; the others may not be.
            let fw = read_required(&dir.join("fw_ver"))?;
            let board = read_optional_attr(&dir.join("board_id"))?.unwrap_or_default();
            let hca = read_optional_attr(&dir.join("hca_type"))?.unwrap_or_default();
            out.gauge(
                "node_infiniband_info",
                "Non-numeric data from /sys/class/infiniband/<device>, value is always 1.",
                &[
                    ("device", &device),
                    ("board_id", &board),
                    ("firmware_version", &fw),
                    ("hca_type", &hca),
                ],
                1.0,
            );
            let ports = dir.join("ports");
            let names = std::fs::read_dir(&ports)
                .map_err(|e| anyhow!("listing {}: {e}", ports.display()))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect::<Vec<_>>();
            let mut seen = std::collections::HashSet::new();
            for port in names {
                // `1` and `01` would both be port 1: one series twice.
                if !seen.insert(port.trim_start_matches('0').to_string()) {
                    return Err(anyhow!("{}: port {port:?} listed twice", ports.display()));
                }
                self.port(out, &device, &ports, &port)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{collect, sysfs_at, write};

    fn run(root: &Path) -> anyhow::Result<String> {
        collect(&Infiniband {
            paths: sysfs_at(root),
        })
    }

    fn device(root: &Path) {
        let d = "class/infiniband/mlx4_0";
        for (f, v) in [
            ("fw_ver", "2.31.5050\n"),
            ("board_id", "SM_1141000001000\n"),
            ("ports/1/state", "4: ACTIVE\n"),
            ("ports/1/phys_state", "5: LinkUp\n"),
            ("ports/1/rate", "40 Gb/sec (4X QDR)\n"),
            ("ports/1/counters/port_rcv_data", "100\n"),
            ("ports/1/counters/link_downed", "3\n"),
            ("ports/1/counters/symbol_error", "N/A (no PMA)\n"),
            ("ports/1/counters/not_a_known_counter", "x\n"),
            ("ports/1/counters_ext/port_xmit_data_64", "7\n"),
        ] {
            write(root, &format!("{d}/{f}"), v);
        }
    }

    #[test]
    fn info_port_state_and_counters() {
        let dir = tempfile::tempdir().unwrap();
        device(dir.path());
        let text = run(dir.path()).unwrap();
        for want in [
            "node_infiniband_info{board_id=\"SM_1141000001000\",device=\"mlx4_0\",firmware_version=\"2.31.5050\",hca_type=\"\"} 1\n",
            "node_infiniband_state_id{device=\"mlx4_0\",port=\"1\"} 4\n",
            "node_infiniband_physical_state_id{device=\"mlx4_0\",port=\"1\"} 5\n",
            "node_infiniband_rate_bytes_per_second{device=\"mlx4_0\",port=\"1\"} 5e+09\n",
            "node_infiniband_port_data_received_bytes_total{device=\"mlx4_0\",port=\"1\"} 400\n",
            "node_infiniband_link_downed_total{device=\"mlx4_0\",port=\"1\"} 3\n",
            "node_infiniband_legacy_data_transmitted_bytes_total{device=\"mlx4_0\",port=\"1\"} 28\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        assert!(!text.contains("symbol_error"), "{text}");
    }

    #[test]
    fn no_class_is_no_data_and_garbage_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = run(dir.path()).unwrap_err();
        assert!(crate::helpers::is_no_data(&err), "{err}");
        for (file, text) in [
            ("ports/1/counters/link_downed", "lots\n"),
            ("ports/1/state", "4 ACTIVE\n"),
            ("ports/1/state", "x: ACTIVE\n"),
            ("ports/1/phys_state", "5: a: b\n"),
            ("ports/1/rate", "40\n"),
            ("ports/1/rate", "fast Gb/sec\n"),
        ] {
            device(dir.path());
            write(dir.path(), &format!("class/infiniband/mlx4_0/{file}"), text);
            let err = run(dir.path()).unwrap_err().to_string();
            assert!(err.contains(file), "{text:?}: {err}");
        }
        device(dir.path());
        std::fs::remove_file(dir.path().join("class/infiniband/mlx4_0/fw_ver")).unwrap();
        let err = run(dir.path()).unwrap_err().to_string();
        assert!(err.contains("fw_ver"), "{err}");
    }
}
