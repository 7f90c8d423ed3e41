//! `node_network_*` properties of each interface from /sys/class/net/<iface>/
//! (`node_network_up`, `node_network_info`, mtu, speed, carrier, ...), as
//! node_exporter's sysfs netclass collector reports them.
//!
//! Attributes the kernel refuses to read for an interface's current state
//! (speed or duplex of a down link give EINVAL, phys_port_id EOPNOTSUPP) or
//! that it lacks are left out for that interface, never an error.

use std::io::ErrorKind;
use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;
use regex::Regex;

use super::CollectorSpec;
use crate::cli::{bool_flag, string_flag, Flags};
use crate::collector::{Collector, NoData, Paths};
use crate::helpers::OpenFiles;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "netclass",
    default_enabled: true,
    flags: || {
        let mut v = vec![string_flag(
            "collector.netclass.ignored-devices",
            "^$",
            "Regexp of net devices to ignore for netclass collector.",
        )];
        v.extend(bool_flag(
            "collector.netclass.ignore-invalid-speed",
            false,
            "Ignore devices where the speed is invalid. This will be the default behavior in 2.x.",
        ));
        v.extend(bool_flag(
            "collector.netclass.netlink",
            false,
            "Accepted for compatibility; the attributes are always read from sysfs.",
        ));
        v.extend(bool_flag(
            "collector.netclass_rtnl.with-stats",
            false,
            "Accepted for compatibility; has no effect (the netdev collector reports the statistics).",
        ));
        v
    },
    build: |f| Ok(Box::new(Netclass::new(f)?)),
};

/// Integer attributes: (sysfs file, metric, help, is counter).
const INT_ATTRS: [(&str, &str, &str, bool); 16] = [
    (
        "addr_assign_type",
        "node_network_address_assign_type",
        "Network device property: address_assign_type",
        false,
    ),
    (
        "carrier",
        "node_network_carrier",
        "Network device property: carrier",
        false,
    ),
    (
        "carrier_changes",
        "node_network_carrier_changes_total",
        "Network device property: carrier_changes_total",
        true,
    ),
    (
        "carrier_up_count",
        "node_network_carrier_up_changes_total",
        "Network device property: carrier_up_changes_total",
        true,
    ),
    (
        "carrier_down_count",
        "node_network_carrier_down_changes_total",
        "Network device property: carrier_down_changes_total",
        true,
    ),
    (
        "dev_id",
        "node_network_device_id",
        "Network device property: device_id",
        false,
    ),
    (
        "dormant",
        "node_network_dormant",
        "Network device property: dormant",
        false,
    ),
    (
        "flags",
        "node_network_flags",
        "Network device property: flags",
        false,
    ),
    (
        "ifindex",
        "node_network_iface_id",
        "Network device property: iface_id",
        false,
    ),
    (
        "iflink",
        "node_network_iface_link",
        "Network device property: iface_link",
        false,
    ),
    (
        "link_mode",
        "node_network_iface_link_mode",
        "Network device property: iface_link_mode",
        false,
    ),
    (
        "mtu",
        "node_network_mtu_bytes",
        "Network device property: mtu_bytes",
        false,
    ),
    (
        "name_assign_type",
        "node_network_name_assign_type",
        "Network device property: name_assign_type",
        false,
    ),
    (
        "netdev_group",
        "node_network_net_dev_group",
        "Network device property: net_dev_group",
        false,
    ),
    (
        "tx_queue_len",
        "node_network_transmit_queue_length",
        "Network device property: transmit_queue_length",
        false,
    ),
    (
        "type",
        "node_network_protocol_type",
        "Network device property: protocol_type",
        false,
    ),
];

/// IFF_UP in the `flags` attribute.
const IFF_UP: i64 = 0x1;

struct Netclass {
    paths: Paths,
    ignored: Regex,
    ignore_invalid_speed: bool,
    /// ~25 attributes per interface, every scrape: kept open.
    files: OpenFiles,
}

impl Netclass {
    fn new(f: &Flags) -> anyhow::Result<Self> {
        for flag in [
            "collector.netclass.netlink",
            "collector.netclass_rtnl.with-stats",
        ] {
            if f.bool(flag, false) {
                tracing::warn!("--{flag} has no effect here: netclass reads sysfs, netdev reports the statistics");
            }
        }
        let ignored = f
            .regex("collector.netclass.ignored-devices")?
            .unwrap_or_else(|| Regex::new("^$").expect("constant regex"));
        Ok(Netclass {
            paths: f.paths.clone(),
            ignored,
            ignore_invalid_speed: f.bool("collector.netclass.ignore-invalid-speed", false),
            files: OpenFiles::default(),
        })
    }
}

/// Reads one sysfs attribute, trimmed. `Ok(None)` when the kernel has no
/// value for this interface (missing, EINVAL, EOPNOTSUPP, EACCES), as
/// procfs' `ParseNetClassAttribute` skips them.
pub fn read_attribute(files: &OpenFiles, path: &Path) -> anyhow::Result<Option<String>> {
    match files.read(path) {
        Ok(bytes) => Ok(Some(
            crate::helpers::to_valid_utf8(&bytes).trim().to_string(),
        )),
        Err(e) if skippable(&e) => Ok(None),
        Err(e) => Err(anyhow!("reading {}: {e}", path.display())),
    }
}

fn skippable(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::NotFound | ErrorKind::PermissionDenied)
        || matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP))
}

/// Parses an integer as Go's `strconv.ParseInt(s, 0, 64)` does: an optional
/// sign, then `0x`/`0o`/`0b` prefixes or a leading `0` for octal (sysfs
/// writes `flags` and `dev_id` in hex).
pub fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let lower = digits.get(..2).map(str::to_ascii_lowercase);
    let (radix, body) = match lower.as_deref() {
        Some("0x") => (16, digits.get(2..)?),
        Some("0o") => (8, digits.get(2..)?),
        Some("0b") => (2, digits.get(2..)?),
        _ if digits.len() > 1 && digits.starts_with('0') => (8, digits.get(1..)?),
        _ => (10, digits),
    };
    let body = body.replace('_', "");
    if body.is_empty() || body.starts_with(['+', '-']) {
        return None;
    }
    let v = i128::from_str_radix(&body, radix).ok()?;
    i64::try_from(if neg { -v } else { v }).ok()
}

fn read_int(files: &OpenFiles, path: &Path) -> anyhow::Result<Option<i64>> {
    let Some(s) = read_attribute(files, path)? else {
        return Ok(None);
    };
    parse_go_int(&s)
        .map(Some)
        .ok_or_else(|| anyhow!("parsing {}: {s:?} is not an integer", path.display()))
}

/// The interfaces in /sys/class/net, sorted (procfs' `NetClassDevices`); a
/// sysfs without the directory, or one we may not read, is [`NoData`].
pub fn devices(paths: &Paths) -> anyhow::Result<Vec<String>> {
    let dir = paths.sys("class/net");
    let entries = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::PermissionDenied) => {
            return Err(NoData(format!("could not read {}: {e}", dir.display())).into())
        }
        Err(e) => return Err(anyhow!("listing {}: {e}", dir.display())),
    };
    let mut devices: Vec<String> = entries
        .filter_map(|e| e.ok())
        // Interfaces are symlinks (or directories); `bonding_masters`
        // and the like are regular files.
        .filter(|e| e.file_type().map(|t| !t.is_file()).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    devices.sort();
    Ok(devices)
}

impl Collector for Netclass {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let dir = self.paths.sys("class/net");
        let devices = devices(&self.paths)?;
        // Close what was kept open for interfaces that are gone.
        let names: Vec<&str> = devices.iter().map(String::as_str).collect();
        self.files.keep_devices(&dir, &names);
        for dev in devices.iter().filter(|d| !self.ignored.is_match(d)) {
            let base = dir.join(dev);
            let text = |attr: &str| -> anyhow::Result<Option<String>> {
                read_attribute(&self.files, &base.join(attr))
            };
            let labels = [("device", dev.as_str())];
            let operstate = text("operstate")?.unwrap_or_default();
            out.gauge(
                "node_network_up",
                "Value is 1 if operstate is 'up', 0 otherwise.",
                &labels,
                if operstate == "up" { 1.0 } else { 0.0 },
            );
            let mut flags = None;
            for (file, name, help, counter) in INT_ATTRS {
                let Some(v) = read_int(&self.files, &base.join(file))? else {
                    continue;
                };
                if file == "flags" {
                    flags = Some(v);
                }
                if counter {
                    out.counter(name, help, &labels, v as f64);
                } else {
                    out.gauge(name, help, &labels, v as f64);
                }
            }
            if let Some(speed) = read_int(&self.files, &base.join("speed"))? {
                // Some drivers report -1 for an unknown speed.
                if speed >= 0 || !self.ignore_invalid_speed {
                    let bytes = speed.saturating_mul(1000 * 1000) / 8;
                    out.gauge(
                        "node_network_speed_bytes",
                        "Network device property: speed_bytes",
                        &labels,
                        bytes as f64,
                    );
                }
            }
            let adminstate = match flags {
                None => "unknown",
                Some(f) if f & IFF_UP != 0 => "up",
                Some(_) => "down",
            };
            out.gauge(
                "node_network_info",
                "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
                &[
                    ("device", dev.as_str()),
                    ("address", &text("address")?.unwrap_or_default()),
                    ("broadcast", &text("broadcast")?.unwrap_or_default()),
                    ("duplex", &text("duplex")?.unwrap_or_default()),
                    ("operstate", &operstate),
                    ("adminstate", adminstate),
                    ("ifalias", &text("ifalias")?.unwrap_or_default()),
                ],
                1.0,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_integer_syntax() {
        assert_eq!(parse_go_int("0x1003"), Some(4099));
        assert_eq!(parse_go_int("0x0"), Some(0));
        assert_eq!(parse_go_int("1500"), Some(1500));
        assert_eq!(parse_go_int("-1"), Some(-1));
        assert_eq!(parse_go_int("0"), Some(0));
        assert_eq!(parse_go_int("010"), Some(8));
        assert_eq!(parse_go_int("0b101"), Some(5));
        assert_eq!(parse_go_int(""), None);
        assert_eq!(parse_go_int("0x"), None);
        assert_eq!(parse_go_int("--1"), None);
        assert_eq!(parse_go_int("12abc"), None);
        assert_eq!(parse_go_int("99999999999999999999"), None);
    }

    #[test]
    fn unreadable_attributes_are_skipped_others_fail() {
        for errno in [libc::EINVAL, libc::EOPNOTSUPP, libc::ENOENT, libc::EACCES] {
            assert!(
                skippable(&std::io::Error::from_raw_os_error(errno)),
                "{errno}"
            );
        }
        for errno in [libc::EIO, libc::ENOMEM] {
            assert!(
                !skippable(&std::io::Error::from_raw_os_error(errno)),
                "{errno}"
            );
        }
    }

    #[test]
    fn live_sysfs_reads_without_error() {
        // On this machine's /sys, down interfaces answer EINVAL for speed,
        // duplex or carrier: the collector must still succeed.
        if !Path::new("/sys/class/net/lo").exists() {
            return;
        }
        let c = Netclass {
            paths: Paths::default(),
            ignored: Regex::new("^$").unwrap(),
            ignore_invalid_speed: false,
            files: OpenFiles::default(),
        };
        // Twice: the second update reads through the files kept open.
        for _ in 0..2 {
            let mut out = MetricSet::new();
            c.update(&mut out).unwrap();
            assert!(out.families().iter().any(|f| f.name == "node_network_up"));
        }
    }
}
