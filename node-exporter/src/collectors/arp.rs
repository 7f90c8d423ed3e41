//! `node_arp_entries{device}`: IPv4 neighbour (ARP) table entries per
//! interface from /proc/net/arp, filtered by
//! `--collector.arp.device-include/-exclude`. node_exporter reads the same
//! table over rtnetlink by default (`--collector.arp.netlink`), which also
//! gives `node_arp_states{device,state}`; the table has no neighbour states,
//! so that metric is not written here, and the flag is accepted for
//! command-line compatibility only.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::CollectorSpec;
use crate::cli::{bool_flag, string_flag};
use crate::collector::{Collector, Paths};
use crate::device_filter::DeviceFilter;
use crate::helpers::read_kept;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "arp",
    default_enabled: true,
    flags: || {
        let mut v = vec![
            string_flag(
                "collector.arp.device-include",
                "",
                "Regexp of arp devices to include (mutually exclusive to device-exclude).",
            ),
            string_flag(
                "collector.arp.device-exclude",
                "",
                "Regexp of arp devices to exclude (mutually exclusive to device-include).",
            ),
        ];
        v.extend(bool_flag(
            "collector.arp.netlink",
            true,
            "Use netlink to gather stats instead of /proc/net/arp. Accepted for compatibility; \
             this exporter always reads /proc/net/arp.",
        ));
        v
    },
    build: |f| {
        Ok(Box::new(Arp {
            paths: f.paths.clone(),
            filter: DeviceFilter::from_flag_pair(
                f,
                "collector.arp.device-exclude",
                "collector.arp.device-include",
            )?,
        }))
    },
};

/// Entries per device in /proc/net/arp
/// (`IP address  HW type  Flags  HW address  Mask  Device`).
pub fn parse_arp<'a>(text: &'a str, path: &Path) -> anyhow::Result<BTreeMap<&'a str, u64>> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if i == 0 && line.starts_with("IP address") {
            continue;
        }
        let mut cols = line.split_ascii_whitespace();
        let Some(ip) = cols.next() else { continue };
        let bad = |what: &str| {
            anyhow!(
                "parsing {} line {}: {what} in {:?}",
                path.display(),
                i + 1,
                line.trim()
            )
        };
        let (Some(_hw_type), Some(flags), Some(c4), Some(c5)) =
            (cols.next(), cols.next(), cols.next(), cols.next())
        else {
            return Err(bad("expected 6 columns"));
        };
        // A device without a link-layer address prints an empty (blank
        // padded) hardware address column: 5 columns, the 4th the mask "*".
        let (mac, device) = match (c4, cols.next(), cols.next()) {
            ("*", None, None) => ("", c5),
            (mac, Some(device), None) => (mac, device),
            _ => return Err(bad("expected 6 columns")),
        };
        if ip.parse::<std::net::Ipv4Addr>().is_err() {
            return Err(bad("bad IP address"));
        }
        let flags_ok = flags
            .strip_prefix("0x")
            .is_some_and(|h| u8::from_str_radix(h, 16).is_ok());
        if !flags_ok {
            return Err(bad("bad flags"));
        }
        if !mac.is_empty() && !valid_hw_addr(mac) {
            return Err(bad("bad hardware address"));
        }
        *out.entry(device).or_insert(0) += 1;
    }
    Ok(out)
}

/// `xx:xx:...` in hex pairs (6 bytes for Ethernet; the kernel cuts longer
/// ones, such as InfiniBand's 20, to 9).
fn valid_hw_addr(s: &str) -> bool {
    !s.is_empty()
        && s.split(':')
            .all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit()))
}

struct Arp {
    paths: Paths,
    filter: DeviceFilter,
}

impl Collector for Arp {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("net/arp");
        let text = read_kept(&path)?;
        for (device, n) in parse_arp(&text, &path)? {
            if self.filter.ignored(device) {
                continue;
            }
            out.gauge(
                "node_arp_entries",
                "ARP entries by device",
                &[("device", device)],
                n as f64,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    const ARP: &str =
        "IP address       HW type     Flags       HW address            Mask     Device
192.0.2.1        0x1         0x2         02:fc:00:00:00:05     *        eth0
192.0.2.7        0x1         0x0         00:00:00:00:00:00     *        eth0
10.0.0.2         0x1         0x6         52:54:00:12:34:56     *        br-lan.10
10.9.0.1         0x20        0x2         80:00:02:08:fe:80:00:00:00     *        ib0
10.8.0.1         0xfffe      0x2                               *        gre1
";

    #[test]
    fn counts_per_device_including_incomplete_entries() {
        let m = parse_arp(ARP, Path::new("arp")).unwrap();
        assert_eq!(m.get("eth0"), Some(&2));
        assert_eq!(m.get("br-lan.10"), Some(&1));
        assert_eq!(m.get("ib0"), Some(&1), "InfiniBand address cut to 9 bytes");
        assert_eq!(m.get("gre1"), Some(&1), "no hardware address");
        assert_eq!(
            parse_arp(
                "IP address HW type Flags HW address Mask Device\n",
                Path::new("a")
            )
            .unwrap()
            .len(),
            0
        );
    }

    #[test]
    fn malformed_lines_are_errors_naming_file_and_line() {
        let p = Path::new("/proc/net/arp");
        let hdr =
            "IP address       HW type     Flags       HW address            Mask     Device\n";
        let err = parse_arp(&format!("{hdr}192.0.2.1 0x1 0x2 02:fc:00:00:00:05 *\n"), p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/proc/net/arp line 2"), "{err}");
        for bad in [
            "192.0.2.1 0x1 0x2 02:fc:00:00:00:05 * eth0 extra",
            "192.0.2 0x1 0x2 02:fc:00:00:00:05 * eth0",
            "192.0.2.1 0x1 2 02:fc:00:00:00:05 * eth0",
            "192.0.2.1 0x1 0x2 zz:fc:00:00:00:05 * eth0",
            "192.0.2.1 0x1 0x2 02:fc:00:00:00:05 eth0",
        ] {
            assert!(parse_arp(&format!("{hdr}{bad}\n"), p).is_err(), "{bad}");
        }
    }

    #[test]
    fn include_and_exclude_filters() {
        let c = DeviceFilter::from_regexes(None, Some(Regex::new("^eth").unwrap()));
        assert!(!c.ignored("eth0"));
        assert!(c.ignored("docker0"));
        let c = DeviceFilter::from_regexes(Some(Regex::new("docker").unwrap()), None);
        assert!(c.ignored("docker0"));
        assert!(!c.ignored("eth0"));
    }
}
