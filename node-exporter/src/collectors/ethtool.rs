//! `node_ethtool_*` and the `node_network_*` link modes of each interface in
//! /sys/class/net, from the kernel's ethtool ioctl (SIOCETHTOOL) as
//! node_exporter does through github.com/safchain/ethtool:
//! ETHTOOL_GDRVINFO for `node_ethtool_info`, ETHTOOL_GSTRINGS/GSTATS for
//! the driver's statistics (one untyped family per statistic, named after
//! it), ETHTOOL_GSET for the supported and advertised link modes. GSET's
//! masks are 32 bits wide, so, as in node_exporter, link modes above bit 31
//! (2500baseT, 50G and faster) are never reported.
//!
//! An interface that does not support one of the requests (EOPNOTSUPP: lo,
//! most virtual devices) simply lacks those series; any other error is
//! logged with the device and skipped, never failing the scrape.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::anyhow;
use exporter_toolkit::exposition::{MetricSet, Str};
use regex::Regex;

use super::CollectorSpec;
use crate::cli::{string_flag, Flags};
use crate::collector::{Collector, Paths};
use crate::device_filter::DeviceFilter;
use crate::helpers::{go_sanitize_metric_name, KeyNames};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "ethtool",
    default_enabled: false,
    flags: || {
        vec![
            string_flag(
                "collector.ethtool.device-include",
                "",
                "Regexp of ethtool devices to include (mutually exclusive to device-exclude).",
            ),
            string_flag(
                "collector.ethtool.device-exclude",
                "",
                "Regexp of ethtool devices to exclude (mutually exclusive to device-include).",
            ),
            string_flag(
                "collector.ethtool.metrics-include",
                ".*",
                "Regexp of ethtool stats to include.",
            ),
        ]
    },
    build: |f| Ok(Box::new(Ethtool::new(f, Box::new(Ioctl::open()?))?)),
};

/// What ETHTOOL_GDRVINFO tells about a device's driver.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DriverInfo {
    pub driver: String,
    pub version: String,
    pub firmware_version: String,
    pub bus_info: String,
    pub expansion_rom_version: String,
}

/// The part of ETHTOOL_GSET's `struct ethtool_cmd` node_exporter reports.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct LinkSettings {
    /// Masks of `ethtool_link_mode_bit_indices`, the first 32 bits.
    pub supported: u32,
    pub advertising: u32,
    pub autoneg: u8,
}

/// The kernel's ethtool interface, a trait so that tests can stand in for
/// drivers this machine does not have.
pub trait Source: Send + Sync {
    fn link_settings(&self, device: &str) -> io::Result<LinkSettings>;
    fn driver_info(&self, device: &str) -> io::Result<DriverInfo>;
    /// The driver's statistics in the kernel's order (names may repeat).
    fn stats(&self, device: &str) -> io::Result<Vec<(String, u64)>>;
}

pub struct Ethtool {
    paths: Paths,
    devices: DeviceFilter,
    metrics: Regex,
    source: Box<dyn Source>,
    /// (name, help) of each statistic, made once per statistic name.
    names: KeyNames,
}

impl Ethtool {
    pub fn new(f: &Flags, source: Box<dyn Source>) -> anyhow::Result<Self> {
        let devices = DeviceFilter::from_flag_pair(
            f,
            "collector.ethtool.device-exclude",
            "collector.ethtool.device-include",
        )?;
        let metrics = f
            .regex("collector.ethtool.metrics-include")?
            .unwrap_or_else(|| Regex::new(".*").expect("constant regex"));
        Ok(Ethtool {
            paths: f.paths.clone(),
            devices,
            metrics,
            source,
            names: KeyNames::default(),
        })
    }

    /// (name, help) of a statistic, `None` when `metrics-include` leaves it
    /// out or nothing of its name is left to make a metric name.
    fn stat_name(&self, raw: &str) -> Option<(Str, Str)> {
        self.names.get(raw, || {
            let key = go_sanitize_metric_name(raw);
            if !self.metrics.is_match(&key) {
                return None;
            }
            if let Some((_, name, help)) = PREDEFINED.iter().find(|(k, _, _)| *k == key) {
                return Some((name.to_string(), help.to_string()));
            }
            let name = stat_metric_name(&key);
            (name != "node_ethtool_").then(|| (name, format!("Network interface {key}")))
        })
    }
}

/// node_exporter's descriptions made in advance, with their own names.
const PREDEFINED: [(&str, &str, &str); 7] = [
    (
        "rx_bytes",
        "node_ethtool_received_bytes_total",
        "Network interface bytes received",
    ),
    (
        "rx_dropped",
        "node_ethtool_received_dropped_total",
        "Number of received frames dropped",
    ),
    (
        "rx_errors",
        "node_ethtool_received_errors_total",
        "Number of received frames with errors",
    ),
    (
        "rx_packets",
        "node_ethtool_received_packets_total",
        "Network interface packets received",
    ),
    (
        "tx_bytes",
        "node_ethtool_transmitted_bytes_total",
        "Network interface bytes sent",
    ),
    (
        "tx_errors",
        "node_ethtool_transmitted_errors_total",
        "Number of sent frames with errors",
    ),
    (
        "tx_packets",
        "node_ethtool_transmitted_packets_total",
        "Network interface packets sent",
    ),
];

/// node_exporter's `buildEthtoolFQName` of a sanitized statistic name:
/// lower case, leading underscores dropped, `rx`/`tx` words spelled out.
fn stat_metric_name(key: &str) -> String {
    static WORDS: std::sync::OnceLock<(Regex, Regex)> = std::sync::OnceLock::new();
    let (rx, tx) = WORDS.get_or_init(|| {
        (
            Regex::new("(^|_)rx(_|$)").expect("constant regex"),
            Regex::new("(^|_)tx(_|$)").expect("constant regex"),
        )
    });
    let lower = key.to_lowercase();
    let name = lower.trim_start_matches('_');
    let name = rx.replace_all(name, "${1}received${2}");
    let name = tx.replace_all(&name, "${1}transmitted${2}");
    format!("node_ethtool_{name}")
}

/// Link mode bits (`ethtool_link_mode_bit_indices`) below 32 that
/// node_exporter reports as speeds: (bit, Mb/s, duplex, PHY).
const SPEEDS: [(u32, u32, &str, &str); 22] = [
    (0, 10, "half", "T"),
    (1, 10, "full", "T"),
    (2, 100, "half", "T"),
    (3, 100, "full", "T"),
    (4, 1000, "half", "T"),
    (5, 1000, "full", "T"),
    (12, 10000, "full", "T"),
    (17, 1000, "full", "KX"),
    (18, 10000, "full", "KX4"),
    (19, 10000, "full", "KR"),
    (20, 10000, "full", "R_FEC"),
    (21, 20000, "full", "MLD2"),
    (22, 20000, "full", "KR2"),
    (23, 40000, "full", "KR4"),
    (24, 40000, "full", "CR4"),
    (25, 40000, "full", "SR4"),
    (26, 40000, "full", "LR4"),
    (27, 56000, "full", "KR4"),
    (28, 56000, "full", "CR4"),
    (29, 56000, "full", "SR4"),
    (30, 56000, "full", "LR4"),
    (31, 25000, "full", "CR"),
];

/// Port types: (bit, label).
const PORTS: [(u32, &str); 6] = [
    (7, "TP"),
    (8, "AUI"),
    (9, "MII"),
    (10, "FIBRE"),
    (11, "BNC"),
    (16, "Backplane"),
];
const AUTONEG_BIT: u32 = 6;
const PAUSE_BIT: u32 = 13;
const ASYM_PAUSE_BIT: u32 = 14;

fn has(mask: u32, bit: u32) -> f64 {
    if mask & (1 << bit) != 0 {
        1.0
    } else {
        0.0
    }
}

fn link_modes(out: &mut MetricSet, device: &str, link: &LinkSettings) {
    let speeds = |out: &mut MetricSet, name: &'static str, help: &'static str, mask: u32| {
        for (bit, mbps, duplex, phy) in SPEEDS {
            if mask & (1 << bit) != 0 {
                out.gauge(
                    name,
                    help,
                    &[
                        ("device", device),
                        ("duplex", duplex),
                        ("mode", &format!("{mbps}base{phy}")),
                    ],
                    // Bytes per second, as netclass' speed.
                    f64::from(mbps) * 1e6 / 8.0,
                );
            }
        }
    };
    let capabilities = |out: &mut MetricSet,
                        names: [(&'static str, &'static str); 3],
                        mask: u32| {
        for ((name, help), bit) in names
            .into_iter()
            .zip([AUTONEG_BIT, PAUSE_BIT, ASYM_PAUSE_BIT])
        {
            out.gauge(name, help, &[("device", device)], has(mask, bit));
        }
    };
    speeds(
        out,
        "node_network_supported_speed_bytes",
        "Combination of speeds and features supported by network device",
        link.supported,
    );
    for (bit, kind) in PORTS {
        if link.supported & (1 << bit) != 0 {
            out.gauge(
                "node_network_supported_port_info",
                "Type of ports or PHYs supported by network device",
                &[("device", device), ("type", kind)],
                1.0,
            );
        }
    }
    capabilities(
        out,
        [
            (
                "node_network_autonegotiate_supported",
                "If this port device supports autonegotiate",
            ),
            (
                "node_network_pause_supported",
                "If this port device supports pause frames",
            ),
            (
                "node_network_asymmetricpause_supported",
                "If this port device supports asymmetric pause frames",
            ),
        ],
        link.supported,
    );
    speeds(
        out,
        "node_network_advertised_speed_bytes",
        "Combination of speeds and features offered by network device",
        link.advertising,
    );
    capabilities(
        out,
        [
            (
                "node_network_autonegotiate_advertised",
                "If this port device offers autonegotiate",
            ),
            (
                "node_network_pause_advertised",
                "If this port device offers pause capability",
            ),
            (
                "node_network_asymmetricpause_advertised",
                "If this port device offers asymmetric pause capability",
            ),
        ],
        link.advertising,
    );
    out.gauge(
        "node_network_autonegotiate",
        "If this port is using autonegotiate",
        &[("device", device)],
        f64::from(link.autoneg),
    );
}

/// Logs a failed request as node_exporter does: "not supported" at debug
/// level, anything else as an error.
fn log_failure(what: &str, device: &str, e: &io::Error) {
    if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
        tracing::debug!(device, err = %e, "ethtool {what} error");
    } else {
        tracing::error!(device, err = %e, "ethtool {what} error");
    }
}

impl Collector for Ethtool {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let devices = super::netclass::devices(&self.paths)?;
        if devices.is_empty() {
            return Err(anyhow!("no network devices found"));
        }
        for device in devices.iter().filter(|d| !self.devices.ignored(d)) {
            let device = device.as_str();
            match self.source.link_settings(device) {
                Ok(link) => link_modes(out, device, &link),
                Err(e) => log_failure("link info", device, &e),
            }
            match self.source.driver_info(device) {
                Ok(d) => out.gauge(
                    "node_ethtool_info",
                    "A metric with a constant '1' value labeled by bus_info, device, driver, expansion_rom_version, firmware_version, version.",
                    &[
                        ("bus_info", &d.bus_info),
                        ("device", device),
                        ("driver", &d.driver),
                        ("expansion_rom_version", &d.expansion_rom_version),
                        ("firmware_version", &d.firmware_version),
                        ("version", &d.version),
                    ],
                    1.0,
                ),
                Err(e) => log_failure("driver info", device, &e),
            }
            let stats = match self.source.stats(device) {
                Ok(s) => s,
                Err(e) => {
                    log_failure("stats", device, &e);
                    continue;
                }
            };
            // A statistic named twice keeps its last value (as in a Go
            // map); names that become the same metric name are all left
            // out, since which one is meant is unknown.
            let mut by_name: BTreeMap<Str, Option<(Str, u64)>> = BTreeMap::new();
            let last: BTreeMap<&str, u64> = stats.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            for (raw, value) in last {
                let Some((name, help)) = self.stat_name(raw) else {
                    continue;
                };
                by_name
                    .entry(name)
                    .and_modify(|kept| {
                        tracing::debug!(device, raw, "dropping duplicate ethtool metric name");
                        *kept = None;
                    })
                    .or_insert(Some((help, value)));
            }
            for (name, kept) in by_name {
                if let Some((help, value)) = kept {
                    out.untyped(name, help, &[("device", device)], value as f64);
                }
            }
        }
        Ok(())
    }
}

/// SIOCETHTOOL on an AF_INET datagram socket, as the `ethtool` command and
/// safchain/ethtool do. The socket is shared by concurrent scrapes: each
/// request is one self-contained ioctl.
pub struct Ioctl {
    socket: OwnedFd,
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GSET: u32 = 0x1;
const ETHTOOL_GDRVINFO: u32 = 0x3;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSTATS: u32 = 0x1d;
const ETH_SS_STATS: u32 = 1;
const ETH_GSTRING_LEN: usize = 32;
/// `sizeof(struct ethtool_drvinfo)`.
const DRVINFO_LEN: usize = 196;
/// `sizeof(struct ethtool_cmd)`.
const ETHTOOL_CMD_LEN: usize = 44;
/// More statistics than any driver has; a larger count is refused rather
/// than allocated.
const MAX_STATS: usize = 1 << 16;

/// `struct ifreq` with `ifr_data`, padded to the kernel's 40 bytes.
#[repr(C)]
struct IfreqData {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

impl Ioctl {
    pub fn open() -> anyhow::Result<Ioctl> {
        // SAFETY: socket(2) with constant arguments; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(anyhow!(
                "failed to initialize ethtool library: socket: {}",
                io::Error::last_os_error()
            ));
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        Ok(Ioctl {
            socket: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// One ethtool request on `device` with `buf` (starting with the
    /// command) as its in/out data.
    fn request(&self, device: &str, buf: &mut [u8]) -> io::Result<()> {
        let mut req = IfreqData {
            name: [0; libc::IFNAMSIZ],
            data: buf.as_mut_ptr().cast(),
            _pad: [0; 16],
        };
        if device.len() >= libc::IFNAMSIZ || device.contains('\0') {
            return Err(io::Error::from_raw_os_error(libc::ENODEV));
        }
        req.name[..device.len()].copy_from_slice(device.as_bytes());
        // SAFETY: `req` is a valid ifreq whose data pointer covers `buf`,
        // which is at least as large as the command's structure (callers
        // size it from the same counts the kernel uses).
        let rc = unsafe { libc::ioctl(self.socket.as_raw_fd(), SIOCETHTOOL as _, &mut req) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn n_stats(&self, device: &str) -> io::Result<usize> {
        let mut buf = [0u8; DRVINFO_LEN];
        buf[..4].copy_from_slice(&ETHTOOL_GDRVINFO.to_ne_bytes());
        self.request(device, &mut buf)?;
        Ok(u32_at(&buf, 180) as usize)
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

/// A NUL-padded fixed-size C string.
fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    crate::helpers::to_valid_utf8(&b[..end])
}

impl Source for Ioctl {
    fn link_settings(&self, device: &str) -> io::Result<LinkSettings> {
        let mut buf = [0u8; ETHTOOL_CMD_LEN];
        buf[..4].copy_from_slice(&ETHTOOL_GSET.to_ne_bytes());
        self.request(device, &mut buf)?;
        Ok(LinkSettings {
            supported: u32_at(&buf, 4),
            advertising: u32_at(&buf, 8),
            autoneg: buf[18],
        })
    }

    fn driver_info(&self, device: &str) -> io::Result<DriverInfo> {
        let mut buf = [0u8; DRVINFO_LEN];
        buf[..4].copy_from_slice(&ETHTOOL_GDRVINFO.to_ne_bytes());
        self.request(device, &mut buf)?;
        Ok(DriverInfo {
            driver: c_string(&buf[4..36]),
            version: c_string(&buf[36..68]),
            firmware_version: c_string(&buf[68..100]),
            bus_info: c_string(&buf[100..132]),
            expansion_rom_version: c_string(&buf[132..164]),
        })
    }

    fn stats(&self, device: &str) -> io::Result<Vec<(String, u64)>> {
        let n = self.n_stats(device)?;
        if n > MAX_STATS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{n} statistics, more than the {MAX_STATS} read"),
            ));
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        // The kernel writes as many entries as the driver has *now*, which
        // may have grown since GDRVINFO: room for that, and the count it
        // wrote back is checked against the room.
        let room = n * 2 + 16;
        let mut strings = vec![0u8; 12 + room * ETH_GSTRING_LEN];
        strings[..4].copy_from_slice(&ETHTOOL_GSTRINGS.to_ne_bytes());
        strings[4..8].copy_from_slice(&ETH_SS_STATS.to_ne_bytes());
        strings[8..12].copy_from_slice(&(n as u32).to_ne_bytes());
        self.request(device, &mut strings)?;
        let mut values = vec![0u8; 8 + room * 8];
        values[..4].copy_from_slice(&ETHTOOL_GSTATS.to_ne_bytes());
        values[4..8].copy_from_slice(&(n as u32).to_ne_bytes());
        self.request(device, &mut values)?;
        let (n_strings, n_values) = (u32_at(&strings, 8) as usize, u32_at(&values, 4) as usize);
        if n_strings != n_values || n_values > room {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the statistics changed while read ({n_strings} names, {n_values} values)"),
            ));
        }
        Ok((0..n_values)
            .map(|i| {
                let name = &strings[12 + i * ETH_GSTRING_LEN..12 + (i + 1) * ETH_GSTRING_LEN];
                let value =
                    u64::from_ne_bytes(values[8 + i * 8..16 + i * 8].try_into().expect("8 bytes"));
                (c_string(name), value)
            })
            .filter(|(name, _)| !name.is_empty())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli;

    #[test]
    fn statistic_names_as_node_exporter_builds_them() {
        for (key, name) in [
            (
                "rx_queue_0_xdp_tx",
                "node_ethtool_received_queue_0_xdp_transmitted",
            ),
            (
                "tx_queue_0_xdp_xmit",
                "node_ethtool_transmitted_queue_0_xdp_xmit",
            ),
            ("peer_ifindex", "node_ethtool_peer_ifindex"),
            ("_Port_RX_Bytes", "node_ethtool_port_received_bytes"),
            ("rxtx", "node_ethtool_rxtx"),
        ] {
            assert_eq!(stat_metric_name(key), name);
        }
        assert_eq!(go_sanitize_metric_name("port.rx-bytes"), "port_rx_bytes");
        assert_eq!(go_sanitize_metric_name("     giant hdr"), "_giant_hdr");
    }

    fn bits(set: &[u32]) -> u32 {
        set.iter().map(|b| 1 << b).sum()
    }

    /// Stands in for a NIC: e1000e's link modes as in node_exporter's
    /// ethtool fixtures, statistics with names that need sanitizing.
    struct FakeNic;

    impl Source for FakeNic {
        fn link_settings(&self, device: &str) -> io::Result<LinkSettings> {
            match device {
                // 10/100 half+full, 1000 full, autoneg, TP, MII, pause,
                // 10000baseT; advertised without 10000baseT.
                "eth0" => Ok(LinkSettings {
                    supported: bits(&[0, 1, 2, 3, 5, 6, 7, 9, 12, 13]),
                    advertising: bits(&[0, 1, 2, 3, 5, 6, 13]),
                    autoneg: 1,
                }),
                _ => Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP)),
            }
        }
        fn driver_info(&self, device: &str) -> io::Result<DriverInfo> {
            match device {
                "eth0" => Ok(DriverInfo {
                    driver: "e1000e".into(),
                    version: "5.11.0-22-generic".into(),
                    firmware_version: "0.5-4".into(),
                    bus_info: "0000:00:1f.6".into(),
                    expansion_rom_version: String::new(),
                }),
                _ => Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP)),
            }
        }
        fn stats(&self, device: &str) -> io::Result<Vec<(String, u64)>> {
            match device {
                "eth0" => Ok(vec![
                    ("rx_bytes".into(), 7),
                    ("port.rx_dropped".into(), 12028),
                    // Two names that become one: both left out.
                    ("tx-heartbeat".into(), 1),
                    ("tx heartbeat".into(), 2),
                    // Named twice: the last value counts.
                    ("     giant hdr".into(), 3),
                    ("     giant hdr".into(), 4),
                ]),
                _ => Err(io::Error::from_raw_os_error(libc::EIO)),
            }
        }
    }

    fn scrape(args: &[&str]) -> String {
        let sys = tempfile::tempdir().unwrap();
        for dev in ["eth0", "lo"] {
            std::fs::create_dir_all(sys.path().join("class/net").join(dev)).unwrap();
        }
        std::fs::write(sys.path().join("class/net/bonding_masters"), "").unwrap();
        let mut argv = vec![
            "node-exporter".to_string(),
            format!("--path.sysfs={}", sys.path().display()),
        ];
        argv.extend(args.iter().map(|a| a.to_string()));
        let flags = cli::parse(argv).unwrap();
        let c = Ethtool::new(&flags, Box::new(FakeNic)).unwrap();
        let mut out = MetricSet::new();
        c.update(&mut out).unwrap();
        let families = out.finish().unwrap();
        exporter_toolkit::exposition::encode(&families, exporter_toolkit::exposition::Format::Text)
    }

    #[test]
    fn a_nic_with_every_kind_of_series() {
        let text = scrape(&[]);
        for line in [
            "node_ethtool_info{bus_info=\"0000:00:1f.6\",device=\"eth0\",driver=\"e1000e\",expansion_rom_version=\"\",firmware_version=\"0.5-4\",version=\"5.11.0-22-generic\"} 1",
            "# TYPE node_ethtool_received_bytes_total untyped",
            "node_ethtool_received_bytes_total{device=\"eth0\"} 7",
            "# HELP node_ethtool_port_received_dropped Network interface port_rx_dropped",
            "node_ethtool_port_received_dropped{device=\"eth0\"} 12028",
            "node_ethtool_giant_hdr{device=\"eth0\"} 4",
            "node_network_supported_speed_bytes{device=\"eth0\",duplex=\"half\",mode=\"10baseT\"} 1.25e+06",
            "node_network_supported_speed_bytes{device=\"eth0\",duplex=\"full\",mode=\"10000baseT\"} 1.25e+09",
            "node_network_supported_port_info{device=\"eth0\",type=\"TP\"} 1",
            "node_network_supported_port_info{device=\"eth0\",type=\"MII\"} 1",
            "node_network_autonegotiate_supported{device=\"eth0\"} 1",
            "node_network_pause_supported{device=\"eth0\"} 1",
            "node_network_asymmetricpause_supported{device=\"eth0\"} 0",
            "node_network_advertised_speed_bytes{device=\"eth0\",duplex=\"full\",mode=\"1000baseT\"} 1.25e+08",
            "node_network_autonegotiate{device=\"eth0\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(!text.contains("heartbeat"), "{text}");
        assert!(!text.contains(
            "advertised_speed_bytes{device=\"eth0\",duplex=\"full\",mode=\"10000baseT\"}"
        ));
        // lo supports none of the requests: no series at all.
        assert!(!text.contains("\"lo\""), "{text}");
        assert!(!text.contains("bonding_masters"), "{text}");
    }

    #[test]
    fn device_and_statistic_filters() {
        let text = scrape(&["--collector.ethtool.device-exclude=^eth"]);
        assert!(!text.contains("eth0"), "{text}");
        let text = scrape(&["--collector.ethtool.metrics-include=^port_"]);
        assert!(
            text.contains("node_ethtool_port_received_dropped{"),
            "{text}"
        );
        assert!(!text.contains("received_bytes_total"), "{text}");
        assert!(!text.contains("giant"), "{text}");
        // Filters on statistics leave the info and link series alone.
        assert!(text.contains("node_ethtool_info{"), "{text}");
    }
}
