//! `node_netstat_<Proto>_<Field>` from /proc/net/netstat, /proc/net/snmp and
//! /proc/net/snmp6 (when IPv6 is on), untyped as in node_exporter, limited to
//! the `Proto_Field` names `--collector.netstat.fields` matches.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::{sanitize_name, MetricSet};
use regex::Regex;

use super::CollectorSpec;
use crate::cli::string_flag;
use crate::collector::{Collector, Paths};
use crate::helpers::{is_no_data, parse_f64, read_kept};

const DEFAULT_FIELDS: &str = "^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts|TCPOFOQueue|TCPRcvQDrop)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$";

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "netstat",
    default_enabled: true,
    flags: || {
        vec![string_flag(
            "collector.netstat.fields",
            DEFAULT_FIELDS,
            "Regexp of fields to return for netstat collector.",
        )]
    },
    build: |f| {
        Ok(Box::new(Netstat {
            paths: f.paths.clone(),
            fields: f.regex("collector.netstat.fields")?,
            names: Default::default(),
        }))
    },
};

/// One statistic: protocol (`TcpExt`, `Ip6`), field (`ListenDrops`), value.
pub type Stat<'a> = (&'a str, &'a str, f64);

/// Parses /proc/net/netstat or /proc/net/snmp: pairs of lines, a header
/// `Proto: Name1 Name2 ...` then `Proto: v1 v2 ...`. The kernel writes
/// ASCII: fields are split at ASCII white space, a byte test per character.
pub fn parse_netstat<'a>(text: &'a str, path: &Path) -> anyhow::Result<Vec<Stat<'a>>> {
    let mut out = Vec::with_capacity(256);
    let mut lines = crate::helpers::lines(text)
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    while let Some((i, header)) = lines.next() {
        let mut names = header.split_ascii_whitespace();
        let proto = names
            .next()
            .and_then(|p| p.strip_suffix(':'))
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                anyhow!(
                    "parsing {} line {}: expected \"Proto: names...\", found {header:?}",
                    path.display(),
                    i + 1
                )
            })?;
        let Some((j, values_line)) = lines.next() else {
            return Err(anyhow!(
                "parsing {} line {}: {proto} has a header line but no values line",
                path.display(),
                i + 1
            ));
        };
        let mut values = values_line.split_ascii_whitespace();
        if values.next().and_then(|p| p.strip_suffix(':')) != Some(proto) {
            return Err(anyhow!(
                "parsing {} line {}: expected the values of {proto}, found {values_line:?}",
                path.display(),
                j + 1
            ));
        }
        let start = out.len();
        loop {
            match (names.next(), values.next()) {
                (Some(name), Some(v)) => {
                    out.push((proto, name, parse_f64(v, path, j + 1, name)?));
                }
                (None, None) => break,
                _ => {
                    return Err(anyhow!(
                    "parsing {} lines {}-{}: {proto} has {} names but a different number of values",
                    path.display(),
                    i + 1,
                    j + 1,
                    header.split_ascii_whitespace().count() - 1,
                ))
                }
            }
        }
        if out.len() == start {
            return Err(anyhow!(
                "parsing {} line {}: {proto} has no fields",
                path.display(),
                i + 1
            ));
        }
    }
    if out.is_empty() {
        return Err(anyhow!("parsing {}: no statistics found", path.display()));
    }
    Ok(out)
}

/// Parses /proc/net/snmp6: one `Ip6InReceives   1` per line. The protocol
/// runs up to and including the first `6`; lines without one are skipped,
/// as node_exporter does.
pub fn parse_snmp6<'a>(text: &'a str, path: &Path) -> anyhow::Result<Vec<Stat<'a>>> {
    let mut out = Vec::with_capacity(128);
    for (i, line) in crate::helpers::lines(text).enumerate() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(key), Some(value)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some(six) = key.find('6') else { continue };
        let (proto, name) = key.split_at(six + 1);
        out.push((proto, name, parse_f64(value, path, i + 1, key)?));
    }
    Ok(out)
}

struct Netstat {
    paths: Paths,
    /// `None`: an empty `--collector.netstat.fields`, which matches everything.
    fields: Option<Regex>,
    /// Per field: filtered out, or its metric name and help.
    names: crate::helpers::KeyNames,
}

impl Netstat {
    fn emit(
        &self,
        names: &mut crate::helpers::InOrder<'_>,
        stats: &[Stat<'_>],
        key: &mut String,
        out: &mut MetricSet,
    ) {
        for &(proto, name, value) in stats {
            key.clear();
            key.push_str(proto);
            key.push('_');
            key.push_str(name);
            let Some((metric, help)) = names.get(key, || {
                if self.fields.as_ref().is_some_and(|re| !re.is_match(key)) {
                    return None;
                }
                Some((
                    sanitize_name(&format!("node_netstat_{key}")),
                    format!("Statistic {proto}{name}."),
                ))
            }) else {
                continue;
            };
            out.untyped(metric, help, &[], value);
        }
    }
}

impl Collector for Netstat {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let netstat_path = self.paths.proc("net/netstat");
        let netstat_text = read_kept(&netstat_path)?;
        let netstat = parse_netstat(&netstat_text, &netstat_path)?;
        let snmp_path = self.paths.proc("net/snmp");
        let snmp_text = read_kept(&snmp_path)?;
        let snmp = parse_netstat(&snmp_text, &snmp_path)?;
        // No snmp6 when IPv6 is disabled.
        let snmp6_path = self.paths.proc("net/snmp6");
        let snmp6_text = match read_kept(&snmp6_path) {
            Ok(t) => t,
            Err(e) if is_no_data(&e) => String::new(),
            Err(e) => return Err(e),
        };
        let snmp6 = parse_snmp6(&snmp6_text, &snmp6_path)?;
        let mut key = String::with_capacity(64);
        let mut names = self.names.in_order();
        self.emit(&mut names, &netstat, &mut key, out);
        self.emit(&mut names, &snmp, &mut key, out);
        self.emit(&mut names, &snmp6, &mut key, out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/proc/net/netstat";

    #[test]
    fn parses_header_value_pairs() {
        let text = "TcpExt: SyncookiesSent ListenDrops\nTcpExt: 1 7\n\
                    IpExt: InOctets OutOctets\nIpExt: 218788001 490957\n";
        let s = parse_netstat(text, Path::new(P)).unwrap();
        assert_eq!(
            s,
            vec![
                ("TcpExt", "SyncookiesSent", 1.0),
                ("TcpExt", "ListenDrops", 7.0),
                ("IpExt", "InOctets", 218788001.0),
                ("IpExt", "OutOctets", 490957.0),
            ]
        );
    }

    #[test]
    fn negative_values_are_kept() {
        // Tcp MaxConn is -1 ("dynamic").
        let s = parse_netstat("Tcp: RtoMin MaxConn\nTcp: 200 -1\n", Path::new(P)).unwrap();
        assert_eq!(s[1], ("Tcp", "MaxConn", -1.0));
    }

    #[test]
    fn malformed_pairs_name_the_file_and_line() {
        let cases = [
            ("TcpExt: A B\nTcpExt: 1\n", "lines 1-2"),
            ("TcpExt: A B\nTcpExt: 1 2 3\n", "lines 1-2"),
            ("TcpExt: A B\n", "line 1"),
            ("TcpExt: A\nIpExt: 1\n", "line 2"),
            ("TcpExt A\nTcpExt 1\n", "line 1"),
            ("TcpExt: A\nTcpExt: x\n", "line 2"),
            ("Ip: A\nIp: 1\nTcpExt: A B\nTcpExt: 1 2\nUdp: A\n", "line 5"),
            ("", "no statistics"),
        ];
        for (text, want) in cases {
            let err = parse_netstat(text, Path::new(P)).unwrap_err().to_string();
            assert!(err.contains(P) && err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn snmp6_splits_at_the_first_six() {
        let text = "Ip6InReceives   \t12\nIcmp6InType133 3\nUdpLite6InErrors 0\nnoproto 5\nshort\n";
        let s = parse_snmp6(text, Path::new("/proc/net/snmp6")).unwrap();
        assert_eq!(
            s,
            vec![
                ("Ip6", "InReceives", 12.0),
                ("Icmp6", "InType133", 3.0),
                ("UdpLite6", "InErrors", 0.0),
            ]
        );
        let err = parse_snmp6("Ip6InReceives zz\n", Path::new("/proc/net/snmp6"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/proc/net/snmp6 line 1"), "{err}");
    }

    #[test]
    fn default_filter_selects_dashboard_fields() {
        let re = Regex::new(DEFAULT_FIELDS).unwrap();
        for keep in [
            "TcpExt_ListenDrops",
            "TcpExt_ListenOverflows",
            "TcpExt_SyncookiesSent",
            "TcpExt_TCPSynRetrans",
            "TcpExt_TCPTimeouts",
            "TcpExt_TCPOFOQueue",
            "TcpExt_TCPRcvQDrop",
            "Tcp_CurrEstab",
            "Tcp_InErrs",
            "Icmp_InErrors",
            "Icmp6_InMsgs",
            "UdpLite_InErrors",
            "UdpLite6_InErrors",
            "IpExt_InOctets",
            "Ip6_OutOctets",
            "Ip_Forwarding",
            "Udp6_RcvbufErrors",
        ] {
            assert!(re.is_match(keep), "{keep}");
        }
        for drop in [
            "Tcp_MaxConn",
            "TcpExt_TW",
            "Ip_InReceives",
            "IpExt_InNoRoutes",
            "MPTcpExt_MPTCPRetrans",
        ] {
            assert!(!re.is_match(drop), "{drop}");
        }
    }
}
