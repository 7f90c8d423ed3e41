//! `node_network_*` properties of each interface from /sys/class/net/<iface>/
//! (`node_network_up`, `node_network_info`, mtu, speed, carrier, ...), as
//! node_exporter's sysfs netclass collector reports them.
//!
//! Attributes the kernel refuses to read for an interface's current state
//! (speed or duplex of a down link give EINVAL, phys_port_id EOPNOTSUPP) or
//! that it lacks are left out for that interface, never an error.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;
use regex::Regex;

use super::CollectorSpec;
use crate::cli::{bool_flag, string_flag, Flags};
use crate::collector::{Collector, NoData, Paths};
use crate::helpers::{is_gone, to_valid_utf8};

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

/// The text attributes read besides [`INT_ATTRS`] and `speed`.
const TEXT_ATTRS: [&str; 5] = ["operstate", "address", "broadcast", "duplex", "ifalias"];
/// Where each attribute's file sits in [`Device::files`].
const SPEED: usize = INT_ATTRS.len();
const TEXT: usize = SPEED + 1;
const ATTR_COUNT: usize = TEXT + TEXT_ATTRS.len();

fn attr_name(i: usize) -> &'static str {
    match i {
        i if i < SPEED => INT_ATTRS[i].0,
        SPEED => "speed",
        i => TEXT_ATTRS[i - TEXT],
    }
}

/// One interface's attribute files, opened when the interface was first
/// seen: ~22 per interface are read on every scrape, and a path walk per
/// file per scrape, or an attribute this driver lacks looked up again each
/// time, was most of this collector's cost.
struct Device {
    name: String,
    dir: PathBuf,
    /// By attribute index; `None`: the driver has no such file (or it may
    /// not be opened), which is not looked at again until the interface
    /// list changes.
    files: Vec<Option<File>>,
}

impl Device {
    fn open(dir: &Path, name: &str) -> Device {
        let dir = dir.join(name);
        let files = (0..ATTR_COUNT)
            .map(|i| File::open(dir.join(attr_name(i))).ok())
            .collect();
        Device {
            name: name.to_string(),
            dir,
            files,
        }
    }

    /// Attribute `i` into `buf`; `Ok(None)` when the kernel has no value
    /// for it (see [`skippable`]). An interface removed and added again
    /// under the same name (the kept file answers ENODEV) has its files
    /// opened anew.
    fn read<'b>(&mut self, i: usize, buf: &'b mut [u8; 4096]) -> anyhow::Result<Option<&'b [u8]>> {
        let Some(file) = self.files.get(i).and_then(Option::as_ref) else {
            return Ok(None);
        };
        let n = match file.read_at(buf, 0) {
            Ok(n) => n,
            Err(e) if is_gone(&e) => {
                let parent = self.dir.parent().unwrap_or(Path::new("")).to_path_buf();
                *self = Device::open(&parent, &self.name.clone());
                match self.files.get(i).and_then(Option::as_ref) {
                    None => return Ok(None),
                    Some(f) => match f.read_at(buf, 0) {
                        Ok(n) => n,
                        Err(e) => return self.failed(i, e),
                    },
                }
            }
            Err(e) => return self.failed(i, e),
        };
        Ok(Some(&buf[..n]))
    }

    fn failed<T>(&self, i: usize, e: std::io::Error) -> anyhow::Result<Option<T>> {
        if skippable(&e) || is_gone(&e) {
            return Ok(None);
        }
        Err(anyhow!(
            "reading {}: {e}",
            self.dir.join(attr_name(i)).display()
        ))
    }

    /// A text attribute, trimmed as Go's `strings.TrimSpace` does.
    fn text(&mut self, i: usize, buf: &mut [u8; 4096]) -> anyhow::Result<Option<String>> {
        Ok(self
            .read(i, buf)?
            .map(|b| to_valid_utf8(b).trim().to_string()))
    }

    fn int(&mut self, i: usize, buf: &mut [u8; 4096]) -> anyhow::Result<Option<i64>> {
        let Some(bytes) = self.read(i, buf)? else {
            return Ok(None);
        };
        // Valid UTF-8 (every kernel's numbers) is parsed where it lies.
        let lossy;
        let s = match std::str::from_utf8(bytes) {
            Ok(s) => s.trim(),
            Err(_) => {
                lossy = to_valid_utf8(bytes);
                lossy.trim()
            }
        };
        match parse_go_int(s) {
            Some(v) => Ok(Some(v)),
            None => Err(anyhow!(
                "parsing {}: {s:?} is not an integer",
                self.dir.join(attr_name(i)).display()
            )),
        }
    }
}

struct Netclass {
    paths: Paths,
    ignored: Regex,
    ignore_invalid_speed: bool,
    /// The interfaces of the last scrape, sorted, with their open files.
    devices: Mutex<Vec<Device>>,
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
            devices: Mutex::default(),
        })
    }
}

/// Whether a failed read only means "no value for this interface now"
/// (missing, EINVAL, EOPNOTSUPP, EACCES): left out, as procfs'
/// `ParseNetClassAttribute` skips them.
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
        let names = devices(&self.paths)?;
        let mut devices = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        // Interfaces came or went: every interface's files are opened
        // anew, so that a driver's attributes are looked at again too.
        if !devices
            .iter()
            .map(|d| d.name.as_str())
            .eq(names.iter().map(String::as_str))
        {
            let dir = self.paths.sys("class/net");
            *devices = names.iter().map(|n| Device::open(&dir, n)).collect();
        }
        let mut buf = [0u8; 4096];
        for dev in devices
            .iter_mut()
            .filter(|d| !self.ignored.is_match(&d.name))
        {
            let name = dev.name.clone();
            let labels = [("device", name.as_str())];
            let operstate = dev.text(TEXT, &mut buf)?.unwrap_or_default();
            out.gauge(
                "node_network_up",
                "Value is 1 if operstate is 'up', 0 otherwise.",
                &labels,
                if operstate == "up" { 1.0 } else { 0.0 },
            );
            let mut flags = None;
            for (i, (file, name, help, counter)) in INT_ATTRS.into_iter().enumerate() {
                let Some(v) = dev.int(i, &mut buf)? else {
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
            if let Some(speed) = dev.int(SPEED, &mut buf)? {
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
            let mut text = |i: usize| -> anyhow::Result<String> {
                Ok(dev.text(TEXT + i, &mut buf)?.unwrap_or_default())
            };
            let (address, broadcast, duplex, ifalias) = (text(1)?, text(2)?, text(3)?, text(4)?);
            out.gauge(
                "node_network_info",
                "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
                &[
                    ("device", name.as_str()),
                    ("address", &address),
                    ("broadcast", &broadcast),
                    ("duplex", &duplex),
                    ("operstate", &operstate),
                    ("adminstate", adminstate),
                    ("ifalias", &ifalias),
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

    fn gauge(set: &MetricSet, name: &str, dev: &str) -> Option<f64> {
        let f = set.families().iter().find(|f| f.name == name)?;
        let s = f
            .series
            .iter()
            .find(|s| s.labels.iter().any(|(_, v)| v == dev))?;
        match s.value {
            exporter_toolkit::exposition::Value::Single(v) => Some(v),
            _ => None,
        }
    }

    /// Files are opened once per interface: new values of an attribute
    /// show on the next scrape, a file the driver lacked is looked for again
    /// only when interfaces come or go, and a removed interface is dropped.
    #[test]
    fn interfaces_are_opened_once_and_looked_at_again_when_the_list_changes() {
        let root = tempfile::tempdir().unwrap();
        let net = root.path().join("class/net");
        let add = |dev: &str, attrs: &[(&str, &str)]| {
            std::fs::create_dir_all(net.join(dev)).unwrap();
            for (k, v) in attrs {
                std::fs::write(net.join(dev).join(k), v).unwrap();
            }
        };
        add("eth0", &[("mtu", "1500\n"), ("operstate", "up\n")]);
        let c = Netclass {
            paths: Paths {
                sysfs: root.path().to_path_buf(),
                ..Paths::default()
            },
            ignored: Regex::new("^$").unwrap(),
            ignore_invalid_speed: false,
            devices: Mutex::default(),
        };
        let scrape = || {
            let mut out = MetricSet::new();
            c.update(&mut out).unwrap();
            out
        };
        let set = scrape();
        assert_eq!(gauge(&set, "node_network_mtu_bytes", "eth0"), Some(1500.0));
        assert_eq!(gauge(&set, "node_network_up", "eth0"), Some(1.0));
        assert_eq!(gauge(&set, "node_network_speed_bytes", "eth0"), None);

        add("eth0", &[("mtu", "9000\n"), ("speed", "1000\n")]);
        let set = scrape();
        assert_eq!(gauge(&set, "node_network_mtu_bytes", "eth0"), Some(9000.0));
        assert_eq!(
            gauge(&set, "node_network_speed_bytes", "eth0"),
            None,
            "a file the driver lacked was looked for while no interface came or went"
        );

        add("eth1", &[("mtu", "1400\n")]);
        let set = scrape();
        assert_eq!(gauge(&set, "node_network_mtu_bytes", "eth1"), Some(1400.0));
        assert_eq!(gauge(&set, "node_network_speed_bytes", "eth0"), Some(125e6));

        std::fs::remove_dir_all(net.join("eth1")).unwrap();
        let set = scrape();
        assert_eq!(gauge(&set, "node_network_mtu_bytes", "eth1"), None);
        assert_eq!(gauge(&set, "node_network_mtu_bytes", "eth0"), Some(9000.0));

        // Garbage in an integer attribute fails the collector, naming the file.
        add("eth0", &[("mtu", "fifteen\n")]);
        let mut out = MetricSet::new();
        let err = c.update(&mut out).unwrap_err().to_string();
        assert!(err.contains("eth0/mtu") && err.contains("fifteen"), "{err}");
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
            devices: Mutex::default(),
        };
        // Twice: the second update reads through the files kept open.
        for _ in 0..2 {
            let mut out = MetricSet::new();
            c.update(&mut out).unwrap();
            assert!(out.families().iter().any(|f| f.name == "node_network_up"));
        }
    }
}
