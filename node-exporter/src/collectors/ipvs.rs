//! `node_ipvs_*`: the IPVS totals of /proc/net/ip_vs_stats and, per backend
//! of /proc/net/ip_vs, its active and inactive connections and weight,
//! summed over the backends that share the labels
//! `--collector.ipvs.backend-labels` keeps, as node_exporter. A kernel
//! without IPVS (no ip_vs_stats) is "no data", as in node_exporter; that
//! costs one failed open a scrape.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::CollectorSpec;
use crate::cli::string_flag;
use crate::collector::{Collector, Paths};
use crate::helpers::read_kept;

/// node_exporter's backend labels, in its order.
const ALL_LABELS: [&str; 6] = [
    "local_address",
    "local_port",
    "remote_address",
    "remote_port",
    "proto",
    "local_mark",
];

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "ipvs",
    default_enabled: true,
    flags: || {
        vec![string_flag(
            "collector.ipvs.backend-labels",
            "local_address,local_port,remote_address,remote_port,proto,local_mark",
            "Comma separated list for IPVS backend stats labels.",
        )]
    },
    build: |f| {
        Ok(Box::new(Ipvs {
            paths: f.paths.clone(),
            labels: parse_labels(&f.string("collector.ipvs.backend-labels"))?,
        }))
    },
};

struct Ipvs {
    paths: Paths,
    /// Indexes into [`ALL_LABELS`].
    labels: Vec<usize>,
}

/// The flag's labels in node_exporter's order; an unknown one is an error
/// naming them all, sorted.
pub fn parse_labels(flag: &str) -> anyhow::Result<Vec<usize>> {
    let given: std::collections::BTreeSet<&str> =
        flag.split(',').filter(|l| !l.is_empty()).collect();
    let unknown: Vec<&str> = given
        .iter()
        .copied()
        .filter(|l| !ALL_LABELS.contains(l))
        .collect();
    if !unknown.is_empty() {
        return Err(anyhow!(
            "unknown IPVS backend labels: {:?}",
            unknown.join(", ")
        ));
    }
    Ok((0..ALL_LABELS.len())
        .filter(|&i| given.contains(ALL_LABELS[i]))
        .collect())
}

/// The totals of /proc/net/ip_vs_stats (hexadecimal numbers, third line).
#[derive(Debug, PartialEq)]
pub struct Stats {
    pub connections: u64,
    pub incoming_packets: u64,
    pub outgoing_packets: u64,
    pub incoming_bytes: u64,
    pub outgoing_bytes: u64,
}

pub fn parse_stats(text: &str, path: &Path) -> anyhow::Result<Stats> {
    // As procfs: the file must have at least three full lines.
    let mut lines = text.splitn(4, '\n');
    let line = lines
        .nth(2)
        .filter(|_| lines.next().is_some())
        .ok_or_else(|| anyhow!("parsing {}: too short", path.display()))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(anyhow!(
            "parsing {} line 3: {} fields, expected 5",
            path.display(),
            fields.len()
        ));
    }
    let hex = |i: usize| {
        u64::from_str_radix(fields[i], 16).map_err(|_| {
            anyhow!(
                "parsing {} line 3: {:?} is not a hexadecimal number",
                path.display(),
                fields[i]
            )
        })
    };
    Ok(Stats {
        connections: hex(0)?,
        incoming_packets: hex(1)?,
        outgoing_packets: hex(2)?,
        incoming_bytes: hex(3)?,
        outgoing_bytes: hex(4)?,
    })
}

/// One `->` line of /proc/net/ip_vs with the service it is under.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    /// Empty for a firewall-mark service.
    pub local_address: String,
    pub local_port: u16,
    pub remote_address: String,
    pub remote_port: u16,
    pub proto: String,
    pub local_mark: String,
    pub weight: u64,
    pub active: u64,
    pub inactive: u64,
}

/// `C0A80016:0CEA` or `[2620:0000:...:0001]:0050` as address and port,
/// the address written as Go's `net.IP.String()` writes it.
fn parse_ip_port(s: &str) -> Option<(String, u16)> {
    let ip = match s.len() {
        13 => Ipv4Addr::from(u32::from_str_radix(s.get(..8)?, 16).ok()?).to_string(),
        46 => {
            let v6: Ipv6Addr = s.get(1..40)?.parse().ok()?;
            match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => v6.to_string(),
            }
        }
        _ => return None,
    };
    // Go's ParseUint(.., 16, 16) refuses a sign; from_str_radix takes "+".
    let port = s.get(s.len() - 4..).filter(|p| !p.starts_with('+'))?;
    Some((ip, u16::from_str_radix(port, 16).ok()?))
}

pub fn parse_backends(text: &str, path: &Path) -> anyhow::Result<Vec<Backend>> {
    let mut out = Vec::new();
    let mut service: Option<(String, String, u16, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let bad = |what: &str| anyhow!("parsing {} line {}: {what}", path.display(), n + 1);
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [] | ["IP" | "Prot", ..] | [_, "RemoteAddress:Port", ..] => {}
            [proto @ ("TCP" | "UDP"), addr, ..] => {
                let (ip, port) =
                    parse_ip_port(addr).ok_or_else(|| bad(&format!("bad address {addr:?}")))?;
                service = Some((proto.to_string(), ip, port, String::new()));
            }
            ["FWM", mark, ..] => {
                service = Some(("FWM".to_string(), String::new(), 0, mark.to_string()));
            }
            ["->", addr, _forward, weight, active, inactive, ..] => {
                let (remote, remote_port) =
                    parse_ip_port(addr).ok_or_else(|| bad(&format!("bad address {addr:?}")))?;
                let num = |v: &str| {
                    v.parse::<u64>()
                        .map_err(|_| bad(&format!("{v:?} is not a number")))
                };
                // A backend before any service line is under none (Go's
                // zero values), as procfs has it.
                let (proto, local, local_port, mark) = service.clone().unwrap_or_default();
                out.push(Backend {
                    local_address: local,
                    local_port,
                    remote_address: remote,
                    remote_port,
                    proto,
                    local_mark: mark,
                    weight: num(weight)?,
                    active: num(active)?,
                    inactive: num(inactive)?,
                });
            }
            _ => {}
        }
    }
    Ok(out)
}

impl Collector for Ipvs {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("net/ip_vs_stats");
        let stats = parse_stats(&crate::helpers::absent_if_missing(read_kept(&path))?, &path)?;
        for (name, help, v) in [
            (
                "node_ipvs_connections_total",
                "The total number of connections made.",
                stats.connections,
            ),
            (
                "node_ipvs_incoming_packets_total",
                "The total number of incoming packets.",
                stats.incoming_packets,
            ),
            (
                "node_ipvs_outgoing_packets_total",
                "The total number of outgoing packets.",
                stats.outgoing_packets,
            ),
            (
                "node_ipvs_incoming_bytes_total",
                "The total amount of incoming data.",
                stats.incoming_bytes,
            ),
            (
                "node_ipvs_outgoing_bytes_total",
                "The total amount of outgoing data.",
                stats.outgoing_bytes,
            ),
        ] {
            out.counter(name, help, &[], v as f64);
        }

        let path = self.paths.proc("net/ip_vs");
        let backends = parse_backends(&read_kept(&path)?, &path)?;
        let mut sums: BTreeMap<Vec<String>, (u64, u64, u64)> = BTreeMap::new();
        for b in &backends {
            let key: Vec<String> = self
                .labels
                .iter()
                .map(|&i| match ALL_LABELS[i] {
                    "local_address" => b.local_address.clone(),
                    "local_port" => b.local_port.to_string(),
                    "remote_address" => b.remote_address.clone(),
                    "remote_port" => b.remote_port.to_string(),
                    "proto" => b.proto.clone(),
                    _ => b.local_mark.clone(),
                })
                .collect();
            let sum = sums.entry(key).or_default();
            sum.0 = sum.0.wrapping_add(b.active);
            sum.1 = sum.1.wrapping_add(b.inactive);
            sum.2 = sum.2.wrapping_add(b.weight);
        }
        for (values, (active, inactive, weight)) in sums {
            let labels: Vec<(&'static str, &str)> = self
                .labels
                .iter()
                .zip(&values)
                .map(|(&i, v)| (ALL_LABELS[i], v.as_str()))
                .collect();
            out.gauge(
                "node_ipvs_backend_connections_active",
                "The current active connections by local and remote address.",
                &labels,
                active as f64,
            );
            out.gauge(
                "node_ipvs_backend_connections_inactive",
                "The current inactive connections by local and remote address.",
                &labels,
                inactive as f64,
            );
            out.gauge(
                "node_ipvs_backend_weight",
                "The current backend weight by local and remote address.",
                &labels,
                weight as f64,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{collect, write};

    const IP_VS: &str = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  C0A80016:0CEA wlc
  -> C0A85216:0CEA      Tunnel  100    248        2
  -> C0A85318:0CEA      Tunnel  100    248        2
UDP  [2620:0000:0000:0000:0000:0000:0000:0001]:0035 rr
  -> [0000:0000:0000:0000:0000:ffff:0a00:0001]:0035      Masq    1      3          4
FWM  10001000 wlc
  -> C0A8321A:0CEA      Tunnel  20     64         1
";
    const STATS: &str = "   Total Incoming Outgoing         Incoming         Outgoing
   Conns  Packets  Packets            Bytes            Bytes
 16AA370 E33656E5        0     51D8C8883AB3                0

 Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s
       4    1FB3C        0          1282A8F                0
";

    fn run(root: &Path, labels: &str) -> anyhow::Result<String> {
        collect(&Ipvs {
            paths: Paths {
                procfs: root.into(),
                ..Paths::default()
            },
            labels: parse_labels(labels)?,
        })
    }

    #[test]
    fn totals_and_backends_summed_over_the_kept_labels() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "net/ip_vs", IP_VS);
        write(dir.path(), "net/ip_vs_stats", STATS);
        let all = ALL_LABELS.join(",");
        let text = run(dir.path(), &all).unwrap();
        for want in [
            "node_ipvs_connections_total 2.3765872e+07\n",
            "node_ipvs_incoming_bytes_total 8.9991519156915e+13\n",
            "node_ipvs_backend_connections_active{local_address=\"192.168.0.22\",local_mark=\"\",local_port=\"3306\",proto=\"TCP\",remote_address=\"192.168.82.22\",remote_port=\"3306\"} 248\n",
            "node_ipvs_backend_weight{local_address=\"\",local_mark=\"10001000\",local_port=\"0\",proto=\"FWM\",remote_address=\"192.168.50.26\",remote_port=\"3306\"} 20\n",
            "node_ipvs_backend_connections_inactive{local_address=\"2620::1\",local_mark=\"\",local_port=\"53\",proto=\"UDP\",remote_address=\"10.0.0.1\",remote_port=\"53\"} 4\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        let text = run(dir.path(), "local_port,proto").unwrap();
        assert!(
            text.contains(
                "node_ipvs_backend_connections_active{local_port=\"3306\",proto=\"TCP\"} 496\n"
            ),
            "{text}"
        );
        let text = run(dir.path(), "").unwrap();
        assert!(text.contains("node_ipvs_backend_weight 221\n"), "{text}");
    }

    #[test]
    fn unknown_labels_are_refused() {
        let err = parse_labels("proto,zz,aa").unwrap_err().to_string();
        assert!(err.contains("aa, zz"), "{err}");
        assert_eq!(parse_labels("proto,local_address").unwrap(), vec![0, 4]);
    }

    #[test]
    fn no_ipvs_is_no_data_and_garbage_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = run(dir.path(), "proto").unwrap_err();
        assert!(crate::helpers::is_no_data(&err), "{err}");
        for (file, text) in [
            ("net/ip_vs_stats", "   Total\n   Conns\n"),
            ("net/ip_vs_stats", "a\nb\n 1 2 3 4 zz\n"),
            ("net/ip_vs_stats", "a\nb\n 1 2 3\n"),
        ] {
            write(dir.path(), file, text);
            let err = run(dir.path(), "proto").unwrap_err().to_string();
            assert!(err.contains(file), "{text:?}: {err}");
        }
        write(dir.path(), "net/ip_vs_stats", STATS);
        for text in [
            "TCP  C0A800:0CEA wlc\n",
            "TCP  C0A80016:0CEA wlc\n  -> C0A85216:0CEA Tunnel x 1 2\n",
            "TCP  C0A80016:0CEA wlc\n  -> [zz]:0CEA Tunnel 1 1 2\n",
        ] {
            write(dir.path(), "net/ip_vs", text);
            let err = run(dir.path(), "proto").unwrap_err().to_string();
            assert!(err.contains("net/ip_vs line"), "{text:?}: {err}");
        }
    }
}
