//! `node_network_*_total` per interface from /proc/net/dev, named as
//! node_exporter names them, and `node_network_address_info` with
//! `--collector.netdev.address-info`.
//!
//! node_exporter reads these counters over rtnetlink by default
//! (`--collector.netdev.netlink`); netlink also gives `rx_nohandler` and the
//! detailed error counters that /proc/net/dev sums up. The kernel exposes the
//! very same `struct rtnl_link_stats64` in /sys/class/net/<dev>/statistics/,
//! so with the flag on (the default) those come from there: the legacy names
//! plus `receive_nohandler`, or with `--collector.netdev.enable-detailed-metrics`
//! the netlink names. With `--no-collector.netdev.netlink` only /proc/net/dev
//! is read, as node_exporter's procfs path does.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::CollectorSpec;
use crate::cli::{bool_flag, string_flag, Flags};
use crate::collector::{Collector, Paths};
use crate::device_filter::DeviceFilter;
use crate::helpers::read_kept;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "netdev",
    default_enabled: true,
    flags: || {
        let mut v = vec![
            string_flag(
                "collector.netdev.device-include",
                "",
                "Regexp of net devices to include (mutually exclusive to device-exclude).",
            ),
            string_flag(
                "collector.netdev.device-whitelist",
                "",
                "DEPRECATED: Use collector.netdev.device-include",
            )
            .hide(true),
            string_flag(
                "collector.netdev.device-exclude",
                "",
                "Regexp of net devices to exclude (mutually exclusive to device-include).",
            ),
            string_flag(
                "collector.netdev.device-blacklist",
                "",
                "DEPRECATED: Use collector.netdev.device-exclude",
            )
            .hide(true),
        ];
        v.extend(bool_flag(
            "collector.netdev.address-info",
            false,
            "Collect address-info for every device",
        ));
        v.extend(bool_flag(
            "collector.netdev.enable-detailed-metrics",
            false,
            "Use (incompatible) metric names that provide more detailed stats on Linux",
        ));
        v.extend(bool_flag(
            "collector.netdev.netlink",
            true,
            "Use the kernel's full per-device statistics (netlink's, read from /sys/class/net/<dev>/statistics) instead of /proc/net/dev only.",
        ));
        v.extend(bool_flag(
            "collector.netdev.label-ifalias",
            false,
            "Add ifAlias label",
        ));
        v
    },
    build: |f| Ok(Box::new(Netdev::new(f)?)),
};

/// The /proc/net/dev columns, named as node_exporter's procfs path names
/// them before its `legacy()` renaming.
const PROC_COLUMNS: [&str; 16] = [
    "receive_bytes",
    "receive_packets",
    "receive_errors",
    "receive_dropped",
    "receive_fifo",
    "receive_frame",
    "receive_compressed",
    "receive_multicast",
    "transmit_bytes",
    "transmit_packets",
    "transmit_errors",
    "transmit_dropped",
    "transmit_fifo",
    "transmit_colls",
    "transmit_carrier",
    "transmit_compressed",
];

/// node_exporter's default (legacy) name of a /proc/net/dev column. The
/// kernel already sums /proc/net/dev's columns exactly as `legacy()` sums
/// the netlink counters (drop = dropped + missed, frame = frame + length +
/// over + crc, carrier = carrier + aborted + window + heartbeat), so only
/// the names change.
fn legacy_name(column: &'static str) -> &'static str {
    match column {
        "receive_errors" => "receive_errs",
        "receive_dropped" => "receive_drop",
        "transmit_errors" => "transmit_errs",
        "transmit_dropped" => "transmit_drop",
        other => other,
    }
}

/// /sys/class/net/<dev>/statistics/<file> and node_exporter's name for the
/// netlink counter it mirrors.
const NETLINK_STATS: [(&str, &str); 24] = [
    ("rx_packets", "receive_packets"),
    ("tx_packets", "transmit_packets"),
    ("rx_bytes", "receive_bytes"),
    ("tx_bytes", "transmit_bytes"),
    ("rx_errors", "receive_errors"),
    ("tx_errors", "transmit_errors"),
    ("rx_dropped", "receive_dropped"),
    ("tx_dropped", "transmit_dropped"),
    ("multicast", "multicast"),
    ("collisions", "collisions"),
    ("rx_length_errors", "receive_length_errors"),
    ("rx_over_errors", "receive_over_errors"),
    ("rx_crc_errors", "receive_crc_errors"),
    ("rx_frame_errors", "receive_frame_errors"),
    ("rx_fifo_errors", "receive_fifo_errors"),
    ("rx_missed_errors", "receive_missed_errors"),
    ("tx_aborted_errors", "transmit_aborted_errors"),
    ("tx_carrier_errors", "transmit_carrier_errors"),
    ("tx_fifo_errors", "transmit_fifo_errors"),
    ("tx_heartbeat_errors", "transmit_heartbeat_errors"),
    ("tx_window_errors", "transmit_window_errors"),
    ("rx_compressed", "receive_compressed"),
    ("tx_compressed", "transmit_compressed"),
    ("rx_nohandler", "receive_nohandler"),
];

/// One interface line of /proc/net/dev.
#[derive(Debug, Clone, PartialEq)]
pub struct NetDevLine {
    pub device: String,
    pub values: [u64; 16],
}

/// Parses /proc/net/dev: two header lines, then `name: 16 numbers`. The
/// name ends at the last ':' since wide counters can touch it.
pub fn parse_net_dev(text: &str, path: &Path) -> anyhow::Result<Vec<NetDevLine>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(2) {
        if line.trim().is_empty() {
            continue;
        }
        let err = |what: String| anyhow!("parsing {} line {}: {what}", path.display(), i + 1);
        let (name, rest) = line
            .rsplit_once(':')
            .ok_or_else(|| err("missing ':' after the interface name".into()))?;
        let device = name.trim();
        if device.is_empty() {
            return Err(err("empty interface name".into()));
        }
        let mut values = [0u64; 16];
        let mut fields = rest.split_whitespace();
        for (slot, column) in values.iter_mut().zip(PROC_COLUMNS) {
            let v = fields
                .next()
                .ok_or_else(|| err(format!("{device}: missing field {column}")))?;
            *slot = v
                .parse()
                .map_err(|_| err(format!("{device}: field {column}: {v:?} is not a number")))?;
        }
        out.push(NetDevLine {
            device: device.to_string(),
            values,
        });
    }
    Ok(out)
}

struct Netdev {
    paths: Paths,
    filter: DeviceFilter,
    address_info: bool,
    detailed: bool,
    netlink: bool,
    label_ifalias: bool,
    /// The sysfs counters read on every scrape, kept open.
    files: crate::helpers::OpenFiles,
    /// Per statistic: its metric name and help.
    names: crate::helpers::KeyNames,
}

impl Netdev {
    fn new(f: &Flags) -> anyhow::Result<Self> {
        let mut include = f.string("collector.netdev.device-include");
        let mut exclude = f.string("collector.netdev.device-exclude");
        for (old, new, value) in [
            ("device-whitelist", "device-include", &mut include),
            ("device-blacklist", "device-exclude", &mut exclude),
        ] {
            let old_value = f.string(&format!("collector.netdev.{old}"));
            if old_value.is_empty() {
                continue;
            }
            if !value.is_empty() {
                anyhow::bail!(
                    "--collector.netdev.{old} and --collector.netdev.{new} are mutually exclusive"
                );
            }
            tracing::warn!("--collector.netdev.{old} is DEPRECATED and will be removed in 2.0.0, use --collector.netdev.{new}");
            *value = old_value;
        }
        if !exclude.is_empty() && !include.is_empty() {
            anyhow::bail!("--collector.netdev.device-exclude and --collector.netdev.device-include are mutually exclusive");
        }
        Ok(Netdev {
            paths: f.paths.clone(),
            filter: DeviceFilter::new(
                "collector.netdev.device-exclude",
                &exclude,
                "collector.netdev.device-include",
                &include,
            )?,
            address_info: f.bool("collector.netdev.address-info", false),
            detailed: f.bool("collector.netdev.enable-detailed-metrics", false),
            netlink: f.bool("collector.netdev.netlink", true),
            label_ifalias: f.bool("collector.netdev.label-ifalias", false),
            files: Default::default(),
            names: Default::default(),
        })
    }

    fn statistics_dir(&self, device: &str) -> PathBuf {
        self.paths
            .sysfs
            .join("class/net")
            .join(device)
            .join("statistics")
    }
}

/// A sysfs counter, or None if the kernel does not have it (or the device
/// is not in this sysfs' network namespace).
fn read_counter(files: &crate::helpers::OpenFiles, path: &Path) -> Option<u64> {
    std::str::from_utf8(&files.read(path).ok()?)
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl Collector for Netdev {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("net/dev");
        let text = read_kept(&path)?;
        let mut stats: Vec<(&str, u64)> = Vec::with_capacity(NETLINK_STATS.len());
        let lines = parse_net_dev(&text, &path)?;
        // Close the counters of devices that are gone.
        let class_net = self.paths.sysfs.join("class/net");
        let names: Vec<&str> = lines.iter().map(|l| l.device.as_str()).collect();
        self.files.keep_devices(&class_net, &names);
        for line in lines {
            let dev = line.device.as_str();
            if self.filter.ignored(dev) {
                tracing::debug!(device = dev, "Ignoring device");
                continue;
            }
            stats.clear();
            let sys = self.statistics_dir(dev);
            if self.netlink && self.detailed && sys.is_dir() {
                for (file, name) in NETLINK_STATS {
                    if let Some(v) = read_counter(&self.files, &sys.join(file)) {
                        stats.push((name, v));
                    }
                }
            } else {
                for (column, v) in PROC_COLUMNS.into_iter().zip(line.values) {
                    let name = if self.detailed {
                        column
                    } else {
                        legacy_name(column)
                    };
                    stats.push((name, v));
                }
                if self.netlink {
                    if let Some(v) = read_counter(&self.files, &sys.join("rx_nohandler")) {
                        stats.push(("receive_nohandler", v));
                    }
                }
            }
            let ifalias;
            let mut labels: Vec<(&str, &str)> = vec![("device", dev)];
            if self.label_ifalias {
                let p = self.paths.sysfs.join("class/net").join(dev).join("ifalias");
                ifalias = crate::helpers::read_to_string(p).unwrap_or_default();
                labels.push(("ifalias", ifalias.trim()));
            }
            for &(key, v) in &stats {
                if let Some((name, help)) = self.names.get(key, || {
                    Some((
                        format!("node_network_{key}_total"),
                        format!("Network device statistic {key}."),
                    ))
                }) {
                    out.counter(name, help, &labels, v as f64);
                }
            }
        }
        if self.address_info {
            let mut seen = HashSet::new();
            for a in interface_addresses()? {
                if !seen.insert(a.clone()) {
                    continue;
                }
                out.gauge(
                    "node_network_address_info",
                    "node network address by device",
                    &[
                        ("device", &a.device),
                        ("address", &a.address),
                        ("netmask", &a.netmask),
                        ("scope", a.scope),
                    ],
                    1.0,
                );
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AddrInfo {
    device: String,
    address: String,
    netmask: String,
    scope: &'static str,
}

/// Go's scope classification of node_exporter's `scope()`.
fn scope(ip: IpAddr) -> &'static str {
    let (loopback, link_local_unicast, link_local_multicast, interface_local_multicast, global) =
        match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                (
                    v4.is_loopback(),
                    v4.is_link_local(),
                    o[0] == 224 && o[1] == 0 && o[2] == 0,
                    false,
                    !(v4.is_unspecified()
                        || v4.is_loopback()
                        || v4.is_multicast()
                        || v4.is_link_local()
                        || v4.is_broadcast()),
                )
            }
            IpAddr::V6(v6) => {
                let o = v6.octets();
                let multicast = o[0] == 0xff;
                let ll_unicast = o[0] == 0xfe && (o[1] & 0xc0) == 0x80;
                (
                    v6.is_loopback(),
                    ll_unicast,
                    multicast && (o[1] & 0x0f) == 0x02,
                    multicast && (o[1] & 0x0f) == 0x01,
                    !(v6.is_unspecified() || v6.is_loopback() || multicast || ll_unicast),
                )
            }
        };
    if loopback || link_local_unicast || link_local_multicast {
        "link-local"
    } else if interface_local_multicast {
        "interface-local"
    } else if global {
        "global"
    } else {
        ""
    }
}

/// The IPv4 and IPv6 addresses of this network namespace's interfaces, as
/// Go's `net.Interfaces()` + `Addrs()` list them.
fn interface_addresses() -> anyhow::Result<Vec<AddrInfo>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(anyhow!(
            "could not get network interfaces: getifaddrs: {}",
            std::io::Error::last_os_error()
        ));
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: non-null sockaddrs of the family they claim, and a C string name.
        let (addr, mask) = unsafe { (sockaddr_ip(ifa.ifa_addr), sockaddr_ip(ifa.ifa_netmask)) };
        let Some(addr) = addr else { continue };
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }.to_string_lossy();
        // IPv4 labels ("eth0:1") name an address, not an interface.
        let device = name.split(':').next().unwrap_or_default().to_string();
        let ones = match mask {
            Some(IpAddr::V4(m)) => u32::from(m).count_ones(),
            Some(IpAddr::V6(m)) => u128::from(m).count_ones(),
            None => 0,
        };
        out.push(AddrInfo {
            device,
            address: addr.to_string(),
            netmask: ones.to_string(),
            scope: scope(addr),
        });
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// # Safety
/// `sa` is null or points to a sockaddr valid for its family's size.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    match i32::from((*sa).sa_family) {
        libc::AF_INET => {
            let sin = &*(sa as *const libc::sockaddr_in);
            Some(IpAddr::from(
                u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
            ))
        }
        libc::AF_INET6 => {
            let sin6 = &*(sa as *const libc::sockaddr_in6);
            Some(IpAddr::from(sin6.sin6_addr.s6_addr))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n";

    #[test]
    fn parses_lines_and_wide_counters() {
        let text = format!(
            "{HEADER}    lo:   47857     357    0    0    0     0          0         0    47857     357    0    0    0     0       0          0\n\
             eth0:18446744073709551615 8486 1 2 3 4 5 6 514744 5060 7 8 9 10 11 12\n\
             veth0@if3:  1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"
        );
        let lines = parse_net_dev(&text, Path::new("/proc/net/dev")).unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].device, "lo");
        assert_eq!(lines[1].device, "eth0");
        assert_eq!(lines[1].values[0], u64::MAX);
        assert_eq!(lines[1].values[15], 12);
        assert_eq!(lines[2].device, "veth0@if3");
    }

    #[test]
    fn short_or_garbage_lines_are_errors_naming_the_line() {
        let p = Path::new("/proc/net/dev");
        let e = parse_net_dev(&format!("{HEADER}  eth0: 1 2 3\n"), p).unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e}");
        assert!(
            e.to_string().contains("missing field receive_dropped"),
            "{e}"
        );
        let e = parse_net_dev(&format!("{HEADER}garbage\n"), p).unwrap_err();
        assert!(e.to_string().contains("missing ':'"), "{e}");
        let e = parse_net_dev(
            &format!("{HEADER} eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 x 16\n"),
            p,
        )
        .unwrap_err();
        assert!(e.to_string().contains("transmit_carrier"), "{e}");
    }

    #[test]
    fn scopes_as_go() {
        let s = |a: &str| scope(a.parse().unwrap());
        assert_eq!(s("127.0.0.1"), "link-local");
        assert_eq!(s("169.254.1.1"), "link-local");
        assert_eq!(s("10.1.2.3"), "global");
        assert_eq!(s("::1"), "link-local");
        assert_eq!(s("fe80::1"), "link-local");
        assert_eq!(s("ff02::1"), "link-local");
        assert_eq!(s("ff01::1"), "interface-local");
        assert_eq!(s("2001:db8::1"), "global");
        assert_eq!(s("ff05::1"), "");
        assert_eq!(s("0.0.0.0"), "");
    }

    #[test]
    fn live_addresses_include_loopback() {
        let addrs = interface_addresses().unwrap();
        assert!(addrs
            .iter()
            .any(|a| a.device == "lo" && a.address == "127.0.0.1" && a.netmask == "8"));
    }
}

#[cfg(test)]
mod fixture_tests {
    use super::*;
    use exporter_toolkit::exposition::Value;

    fn run(detailed: bool, netlink: bool) -> MetricSet {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let c = Netdev {
            paths: Paths {
                procfs: root.join("proc"),
                sysfs: root.join("sys"),
                ..Paths::default()
            },
            filter: DeviceFilter::new("x", "", "y", "").unwrap(),
            address_info: false,
            detailed,
            netlink,
            label_ifalias: false,
            files: Default::default(),
            names: Default::default(),
        };
        let mut out = MetricSet::new();
        c.update(&mut out).unwrap();
        out
    }

    fn value(set: &MetricSet, name: &str, dev: &str) -> Option<f64> {
        let f = set.families().iter().find(|f| f.name == name)?;
        let s = f
            .series
            .iter()
            .find(|s| s.labels.iter().any(|(k, v)| k == "device" && v == dev))?;
        match s.value {
            Value::Single(v) => Some(v),
            _ => None,
        }
    }

    #[test]
    fn names_and_sources_per_mode() {
        // enp0s31f6's sysfs statistics: dropped 3 + missed 12, crc 3,
        // nohandler 9; /proc/net/dev already sums drop = 15, frame = 3.
        // wg0 is in /proc/net/dev only.
        let none = None;
        #[rustfmt::skip]
        let cases = [
            // (detailed, netlink, device, metric, value)
            (false, true, "enp0s31f6", "receive_drop", Some(15.0)),
            (false, true, "enp0s31f6", "receive_frame", Some(3.0)),
            (false, true, "enp0s31f6", "receive_nohandler", Some(9.0)),
            (false, true, "wg0", "receive_bytes", Some(u64::MAX as f64)),
            (false, true, "wg0", "receive_nohandler", none),
            (false, false, "enp0s31f6", "receive_nohandler", none),
            (false, false, "enp0s31f6", "receive_errs", Some(4.0)),
            (true, true, "enp0s31f6", "receive_dropped", Some(3.0)),
            (true, true, "enp0s31f6", "receive_missed_errors", Some(12.0)),
            (true, true, "enp0s31f6", "collisions", Some(0.0)),
            (true, true, "enp0s31f6", "receive_drop", none),
            (true, true, "wg0", "transmit_colls", Some(0.0)),
            (true, false, "enp0s31f6", "receive_dropped", Some(15.0)),
            (true, false, "enp0s31f6", "receive_errors", Some(4.0)),
            (true, false, "enp0s31f6", "receive_nohandler", none),
        ];
        for (detailed, netlink, dev, metric, want) in cases {
            let set = run(detailed, netlink);
            let name = format!("node_network_{metric}_total");
            assert_eq!(
                value(&set, &name, dev),
                want,
                "detailed={detailed} netlink={netlink} {name}{{device={dev:?}}}"
            );
        }
    }
}
