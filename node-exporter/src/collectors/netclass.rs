//! `node_network_*` properties of each interface from /sys/class/net/<iface>/
//! (`node_network_up`, `node_network_info`, mtu, speed, carrier, ...), as
//! node_exporter's sysfs netclass collector reports them.
//!
//! On the live sysfs most attributes come from one rtnetlink link dump
//! instead of a file each: ~22 sysfs reads per interface were this
//! collector's whole cost. The dump gives what those files show, in the
//! kernel's own words (carrier, dormant, speed and duplex only for a running
//! interface, as sysfs answers EINVAL otherwise); address_assign_type,
//! dev_id, flags (the kernel's `dev->flags`, which netlink reports altered),
//! name_assign_type, speed and duplex are still read from their files. The
//! dump is used only when it lists the same interfaces under the same
//! indexes as the sysfs directory, so a sysfs of another network namespace
//! (or a fixture) is read file by file.
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
use crate::helpers::{is_gone, is_sysfs_file, to_valid_utf8};
use crate::netlink::KeptSocket;

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
            "Accepted for compatibility: netclass reads the rtnetlink link dump whenever it describes the interfaces of --path.sysfs, with or without this flag, and reports what sysfs shows.",
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

/// [`INT_ATTRS`] index of a sysfs file name, checked when compiling.
const fn int_attr(file: &str) -> usize {
    let mut i = 0;
    while i < INT_ATTRS.len() {
        let (a, b) = (INT_ATTRS[i].0.as_bytes(), file.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("not an integer attribute")
}

/// The text attributes read besides [`INT_ATTRS`] and `speed`, and their
/// places in it.
const TEXT_ATTRS: [&str; 5] = ["operstate", "address", "broadcast", "duplex", "ifalias"];
const OPERSTATE: usize = 0;
const ADDRESS: usize = 1;
const BROADCAST: usize = 2;
const DUPLEX: usize = 3;
const IFALIAS: usize = 4;
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

/// One interface's attributes as its sysfs files show them: `None` (or ""
/// for a text) where the kernel has no value.
#[derive(Debug, Default, PartialEq)]
struct Values {
    ints: [Option<i64>; INT_ATTRS.len()],
    speed: Option<i64>,
    texts: [String; TEXT_ATTRS.len()],
}

/// Read from sysfs even when the link dump gives the rest: netlink has no
/// address or name assign type or dev_id, and its flags are
/// `dev_get_flags()`, not the `dev->flags` the file shows.
const FILE_ONLY: [usize; 4] = [
    int_attr("addr_assign_type"),
    int_attr("dev_id"),
    int_attr("flags"),
    int_attr("name_assign_type"),
];

/// One interface's attribute files, opened when the interface was first
/// seen: where the link dump cannot stand in, ~22 per interface are read on
/// every scrape (4 to 6 where it can), and a path walk per
/// file per scrape, or an attribute this driver lacks looked up again each
/// time, was most of this collector's cost.
struct Device {
    name: String,
    dir: PathBuf,
    /// By attribute index; `None`: the driver has no such file (or it may
    /// not be opened), which is not looked at again until the interface
    /// list changes.
    files: Vec<Option<File>>,
    /// Its ifindex when opened, to tell the link dump's entry for it.
    index: Option<i64>,
}

impl Device {
    fn open(dir: &Path, name: &str) -> Device {
        let dir = dir.join(name);
        let files = (0..ATTR_COUNT)
            .map(|i| File::open(dir.join(attr_name(i))).ok())
            .collect();
        let mut device = Device {
            name: name.to_string(),
            dir,
            files,
            index: None,
        };
        device.index = device
            .int(int_attr("ifindex"), &mut [0; 4096])
            .ok()
            .flatten();
        device
    }

    /// The same interface name's files opened anew (it was removed and
    /// added again).
    fn reopen(&mut self) {
        let parent = self.dir.parent().unwrap_or(Path::new("")).to_path_buf();
        *self = Device::open(&parent, &self.name.clone());
    }

    /// Every attribute from its file.
    fn read_all(&mut self, buf: &mut [u8; 4096]) -> anyhow::Result<Values> {
        let mut v = Values::default();
        for i in 0..INT_ATTRS.len() {
            v.ints[i] = self.int(i, buf)?;
        }
        v.speed = self.int(SPEED, buf)?;
        for i in 0..TEXT_ATTRS.len() {
            v.texts[i] = self.text(TEXT + i, buf)?.unwrap_or_default();
        }
        Ok(v)
    }

    /// The link dump's values for this interface with what only the files
    /// tell; `None` when the dump's interface is not this one (another
    /// index: removed and added again, and then the files are opened anew,
    /// or another namespace's).
    fn complete(
        &mut self,
        mut link: Values,
        buf: &mut [u8; 4096],
    ) -> anyhow::Result<Option<Values>> {
        let index = link.ints[int_attr("ifindex")];
        if self.index != index {
            self.reopen();
            if self.index != index {
                return Ok(None);
            }
        }
        for i in FILE_ONLY {
            link.ints[i] = self.int(i, buf)?;
        }
        // Both answer EINVAL for an interface that is not running.
        if link.ints[int_attr("flags")].is_some_and(|f| f & IFF_UP != 0) {
            link.speed = self.int(SPEED, buf)?;
            link.texts[DUPLEX] = self.text(TEXT + DUPLEX, buf)?.unwrap_or_default();
        }
        Ok(Some(link))
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
                self.reopen();
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
    /// Whether `paths.sys` is a live sysfs, whose interfaces a link dump
    /// may describe.
    rtnetlink: bool,
    socket: KeptSocket,
    /// The interfaces of the last scrape, sorted, with their open files.
    devices: Mutex<Vec<Device>>,
}

impl Netclass {
    fn new(f: &Flags) -> anyhow::Result<Self> {
        if f.bool("collector.netclass_rtnl.with-stats", false) {
            tracing::warn!("--collector.netclass_rtnl.with-stats has no effect here: the netdev collector reports the statistics");
        }
        let ignored = f
            .regex("collector.netclass.ignored-devices")?
            .unwrap_or_else(|| Regex::new("^$").expect("constant regex"));
        let rtnetlink = File::open(f.paths.sys("class/net")).is_ok_and(|d| is_sysfs_file(&d));
        Ok(Netclass {
            paths: f.paths.clone(),
            ignored,
            ignore_invalid_speed: f.bool("collector.netclass.ignore-invalid-speed", false),
            rtnetlink,
            socket: rtnetlink_socket(),
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

/// The kernel's operstate names, as sysfs writes them (`operstates[]`).
const OPERSTATES: [&str; 7] = [
    "unknown",
    "notpresent",
    "down",
    "lowerlayerdown",
    "testing",
    "dormant",
    "up",
];

/// One RTM_NEWLINK message (after its netlink header): the interface's
/// name and what sysfs would show for the attributes netlink carries. An
/// attribute the kernel sends only when it differs from a default
/// (IFLA_LINK: iflink = ifindex; IFLA_ADDRESS: no address) gets that
/// default, as the file shows it.
fn parse_link(payload: &[u8]) -> std::io::Result<(String, Values)> {
    use crate::netlink::{attributes, bad, u16_at, u32_at};
    // struct ifinfomsg: family, pad, type (u16), index (i32), flags, change.
    let (Some(kind), Some(index), Some(flags)) =
        (u16_at(payload, 2), u32_at(payload, 4), u32_at(payload, 8))
    else {
        return Err(bad("short RTM_NEWLINK message"));
    };
    let running = flags & libc::IFF_UP as u32 != 0;
    let mut v = Values::default();
    v.ints[int_attr("ifindex")] = Some(i64::from(index as i32));
    v.ints[int_attr("iflink")] = Some(i64::from(index as i32));
    v.ints[int_attr("type")] = Some(i64::from(kind));
    if running {
        v.ints[int_attr("dormant")] = Some(i64::from(flags & libc::IFF_DORMANT as u32 != 0));
    }
    let mut name = None;
    let text = |d: &[u8]| {
        let d = d.split(|&b| b == 0).next().unwrap_or_default();
        to_valid_utf8(d).trim().to_string()
    };
    let mac = |d: &[u8]| {
        let hex: Vec<String> = d.iter().map(|b| format!("{b:02x}")).collect();
        hex.join(":")
    };
    for (k, d) in attributes(payload.get(16..).unwrap_or_default())? {
        let u32_value = || u32_at(d, 0).map(i64::from);
        let u8_value = || d.first().map(|&b| i64::from(b));
        match k {
            libc::IFLA_IFNAME => name = Some(text(d)),
            libc::IFLA_ADDRESS => v.texts[ADDRESS] = mac(d),
            libc::IFLA_BROADCAST => v.texts[BROADCAST] = mac(d),
            libc::IFLA_IFALIAS => v.texts[IFALIAS] = text(d),
            libc::IFLA_OPERSTATE => {
                v.texts[OPERSTATE] = u8_value()
                    .and_then(|s| OPERSTATES.get(s as usize))
                    .map_or_else(String::new, |s| s.to_string())
            }
            libc::IFLA_MTU => v.ints[int_attr("mtu")] = u32_value(),
            libc::IFLA_LINK => {
                v.ints[int_attr("iflink")] = u32_at(d, 0).map(|l| i64::from(l as i32))
            }
            libc::IFLA_TXQLEN => v.ints[int_attr("tx_queue_len")] = u32_value(),
            libc::IFLA_LINKMODE => v.ints[int_attr("link_mode")] = u8_value(),
            libc::IFLA_GROUP => v.ints[int_attr("netdev_group")] = u32_value(),
            libc::IFLA_CARRIER if running => v.ints[int_attr("carrier")] = u8_value(),
            libc::IFLA_CARRIER_CHANGES => v.ints[int_attr("carrier_changes")] = u32_value(),
            libc::IFLA_CARRIER_UP_COUNT => v.ints[int_attr("carrier_up_count")] = u32_value(),
            libc::IFLA_CARRIER_DOWN_COUNT => v.ints[int_attr("carrier_down_count")] = u32_value(),
            _ => {}
        }
    }
    let name = name.ok_or_else(|| bad("RTM_NEWLINK without IFLA_IFNAME"))?;
    Ok((name, v))
}

fn rtnetlink_socket() -> KeptSocket {
    KeptSocket::new(libc::SOCK_RAW, libc::NETLINK_ROUTE)
}

/// Every interface of this network namespace, sorted by name, from one
/// RTM_GETLINK dump without statistics (RTEXT_FILTER_SKIP_STATS).
fn dump_links(socket: &KeptSocket) -> std::io::Result<Vec<(String, Values)>> {
    const RTM_NEWLINK: u16 = 16;
    let mut request = vec![0u8; 16]; // struct ifinfomsg, AF_UNSPEC
    request.extend(crate::netlink::attribute(
        libc::IFLA_EXT_MASK,
        &(libc::RTEXT_FILTER_SKIP_STATS as u32).to_ne_bytes(),
    ));
    let mut links = Vec::new();
    socket.dump(libc::RTM_GETLINK, &request, |kind, payload| {
        if kind == RTM_NEWLINK {
            links.push(parse_link(payload)?);
        }
        Ok::<(), std::io::Error>(())
    })?;
    links.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(links)
}

impl Netclass {
    /// The link dump's entries in `names`' order, when it names the same
    /// interfaces as the sysfs directory.
    fn links(&self, names: &[String]) -> Option<Vec<Values>> {
        if !self.rtnetlink {
            return None;
        }
        let links = dump_links(&self.socket)
            .inspect_err(|e| tracing::debug!("netclass: link dump: {e}; reading sysfs"))
            .ok()?;
        links
            .iter()
            .map(|(n, _)| n)
            .eq(names.iter())
            .then(|| links.into_iter().map(|(_, v)| v).collect())
    }
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
        let mut links = self.links(&names).map(Vec::into_iter);
        let mut buf = [0u8; 4096];
        for dev in devices.iter_mut() {
            let link = links.as_mut().and_then(Iterator::next);
            if self.ignored.is_match(&dev.name) {
                continue;
            }
            let completed = match link {
                Some(link) => dev.complete(link, &mut buf)?,
                None => None,
            };
            let values = match completed {
                Some(v) => v,
                None => dev.read_all(&mut buf)?,
            };
            self.emit(out, &dev.name, &values);
        }
        Ok(())
    }
}

impl Netclass {
    fn emit(&self, out: &mut MetricSet, name: &str, v: &Values) {
        let labels = [("device", name)];
        let [operstate, address, broadcast, duplex, ifalias] = &v.texts;
        out.gauge(
            "node_network_up",
            "Value is 1 if operstate is 'up', 0 otherwise.",
            &labels,
            if operstate == "up" { 1.0 } else { 0.0 },
        );
        for (&(_, metric, help, counter), value) in INT_ATTRS.iter().zip(v.ints) {
            let Some(value) = value else { continue };
            if counter {
                out.counter(metric, help, &labels, value as f64);
            } else {
                out.gauge(metric, help, &labels, value as f64);
            }
        }
        if let Some(speed) = v.speed {
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
        let adminstate = match v.ints[int_attr("flags")] {
            None => "unknown",
            Some(f) if f & IFF_UP != 0 => "up",
            Some(_) => "down",
        };
        out.gauge(
            "node_network_info",
            "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
            &[
                ("device", name),
                ("address", address),
                ("broadcast", broadcast),
                ("duplex", duplex),
                ("operstate", operstate),
                ("adminstate", adminstate),
                ("ifalias", ifalias),
            ],
            1.0,
        );
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
            rtnetlink: false,
            socket: rtnetlink_socket(),
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
            rtnetlink: false,
            socket: rtnetlink_socket(),
            devices: Mutex::default(),
        };
        // Twice: the second update reads through the files kept open.
        for _ in 0..2 {
            let mut out = MetricSet::new();
            c.update(&mut out).unwrap();
            assert!(out.families().iter().any(|f| f.name == "node_network_up"));
        }
    }

    /// On this machine (lo, a running ethernet, down and carrier-less
    /// interfaces): the link dump with the few files it needs gives what
    /// every file shows, interface by interface.
    #[test]
    fn the_link_dump_shows_what_the_files_show() {
        let links = dump_links(&rtnetlink_socket()).unwrap();
        assert!(links.iter().any(|(n, _)| n == "lo"), "{links:?}");
        let mut buf = [0u8; 4096];
        for (name, link) in links {
            let mut dev = Device::open(Path::new("/sys/class/net"), &name);
            let from_files = dev.read_all(&mut buf).unwrap();
            let from_dump = dev.complete(link, &mut buf).unwrap();
            assert_eq!(from_dump, Some(from_files), "{name}");
        }
    }

    /// The dump is taken only when it lists the sysfs directory's
    /// interfaces: another namespace's sysfs is read file by file.
    #[test]
    fn the_link_dump_is_used_only_for_the_interfaces_sysfs_lists() {
        let c = Netclass {
            paths: Paths::default(),
            ignored: Regex::new("^$").unwrap(),
            ignore_invalid_speed: false,
            rtnetlink: true,
            socket: rtnetlink_socket(),
            devices: Mutex::default(),
        };
        let names = devices(&c.paths).unwrap();
        assert_eq!(c.links(&names).map(|l| l.len()), Some(names.len()));
        let mut other = names.clone();
        other.push("not-here0".to_string());
        assert_eq!(c.links(&other), None);
        // A device whose file says another index is read from its files.
        let mut dev = Device::open(Path::new("/sys/class/net"), "lo");
        let mut link = c
            .links(&names)
            .unwrap()
            .remove(names.iter().position(|n| n == "lo").unwrap());
        link.ints[int_attr("ifindex")] = Some(999_999);
        assert_eq!(dev.complete(link, &mut [0; 4096]).unwrap(), None);
    }

    fn rtattr(kind: u16, data: &[u8]) -> Vec<u8> {
        crate::netlink::attribute(kind, data)
    }

    #[test]
    fn link_messages_become_what_sysfs_would_show() {
        let message = |flags: u32, attrs: &[Vec<u8>]| {
            let mut m = vec![0u8, 0];
            m.extend(1u16.to_ne_bytes()); // ARPHRD_ETHER
            m.extend(7i32.to_ne_bytes());
            m.extend(flags.to_ne_bytes());
            m.extend(0u32.to_ne_bytes());
            for a in attrs {
                m.extend(a);
            }
            m
        };
        let attrs = [
            rtattr(libc::IFLA_IFNAME, b"eth7\0"),
            rtattr(libc::IFLA_ADDRESS, &[0x02, 0x42, 0xac, 0x11, 0, 0x0a]),
            rtattr(libc::IFLA_BROADCAST, &[0xff; 6]),
            rtattr(libc::IFLA_MTU, &1500u32.to_ne_bytes()),
            rtattr(libc::IFLA_OPERSTATE, &[6]),
            rtattr(libc::IFLA_CARRIER, &[1]),
            rtattr(libc::IFLA_CARRIER_CHANGES, &3u32.to_ne_bytes()),
            rtattr(libc::IFLA_IFALIAS, b" uplink \0"),
        ];
        let up = (libc::IFF_UP | libc::IFF_DORMANT) as u32;
        let (name, v) = parse_link(&message(up, &attrs)).unwrap();
        assert_eq!(name, "eth7");
        assert_eq!(
            v.texts,
            ["up", "02:42:ac:11:00:0a", "ff:ff:ff:ff:ff:ff", "", "uplink"].map(String::from)
        );
        assert_eq!(v.ints[int_attr("ifindex")], Some(7));
        assert_eq!(
            v.ints[int_attr("iflink")],
            Some(7),
            "no IFLA_LINK: iflink is the index"
        );
        assert_eq!(v.ints[int_attr("type")], Some(1));
        assert_eq!(v.ints[int_attr("mtu")], Some(1500));
        assert_eq!(v.ints[int_attr("carrier")], Some(1));
        assert_eq!(v.ints[int_attr("dormant")], Some(1));
        assert_eq!(v.ints[int_attr("carrier_changes")], Some(3));
        assert_eq!(
            v.ints[int_attr("carrier_up_count")],
            None,
            "absent from the message"
        );

        // Not running: sysfs has no carrier or dormant; an operstate
        // beyond the kernel's names is no text.
        let mut down = attrs.to_vec();
        down[4] = rtattr(libc::IFLA_OPERSTATE, &[42]);
        down.push(rtattr(libc::IFLA_LINK, &3u32.to_ne_bytes()));
        let (_, v) = parse_link(&message(0, &down)).unwrap();
        assert_eq!(
            (v.ints[int_attr("carrier")], v.ints[int_attr("dormant")]),
            (None, None)
        );
        assert_eq!(v.texts[OPERSTATE], "");
        assert_eq!(v.ints[int_attr("iflink")], Some(3));

        // Broken messages are errors, not panics.
        assert!(parse_link(&message(0, &[])).is_err(), "no name");
        assert!(parse_link(&[0; 7]).is_err());
        let mut cut = message(0, &attrs);
        cut.truncate(cut.len() - 6);
        assert!(parse_link(&cut).is_err());
    }
}
