//! `node_nfs_*`, the NFS client's RPC statistics from /proc/net/rpc/nfs,
//! as node_exporter's nfs collector. No such file (no NFS client module) is
//! "no data", as in node_exporter: one failed open a scrape, nothing more.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "nfs",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Nfs {
            paths: f.paths.clone(),
        }))
    },
};

struct Nfs {
    paths: Paths,
}

/// The lines of a /proc/net/rpc/{nfs,nfsd} file as (key, numbers). Every
/// line needs a key and a value; `th` is read for its first two numbers
/// only (the rest are obsolete histogram floats).
pub fn parse_rpc_lines<'a>(text: &'a str, path: &Path) -> anyhow::Result<Vec<(&'a str, Vec<u64>)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let err = |what: String| anyhow!("parsing {} line {}: {what}", path.display(), i + 1);
        let mut fields = line.split_whitespace();
        let key = fields.next().unwrap_or("");
        let mut rest: Vec<&str> = fields.collect();
        if rest.is_empty() {
            return Err(err(format!("{line:?} has no values")));
        }
        if key == "th" {
            if rest.len() < 2 {
                return Err(err(format!("{line:?} has too few values")));
            }
            rest.truncate(2);
        }
        let values = rest
            .iter()
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| err(format!("{v:?} is not an unsigned integer")))
            })
            .collect::<anyhow::Result<Vec<u64>>>()?;
        out.push((key, values));
    }
    Ok(out)
}

/// A `procN COUNT v1 v2 ...` line's values, checked against its count.
pub fn counted<'a>(key: &str, v: &'a [u64], min: usize, path: &Path) -> anyhow::Result<&'a [u64]> {
    let n = v.first().copied().unwrap_or(0);
    let values = v.get(1..).unwrap_or(&[]);
    if values.len() as u64 != n || values.len() < min {
        return Err(anyhow!(
            "parsing {}: {key} line says {n} values, has {} (at least {min} expected)",
            path.display(),
            values.len()
        ));
    }
    Ok(values)
}

/// Exactly `n` values, or an error naming the line.
pub fn exactly<'a>(key: &str, v: &'a [u64], n: usize, path: &Path) -> anyhow::Result<&'a [u64]> {
    if v.len() != n {
        return Err(anyhow!(
            "parsing {}: {key} line has {} values, expected {n}",
            path.display(),
            v.len()
        ));
    }
    Ok(v)
}

pub const V2_PROCS: &[&str] = &[
    "Null", "GetAttr", "SetAttr", "Root", "Lookup", "ReadLink", "Read", "WrCache", "Write",
    "Create", "Remove", "Rename", "Link", "SymLink", "MkDir", "RmDir", "ReadDir", "FsStat",
];

pub const V3_PROCS: &[&str] = &[
    "Null",
    "GetAttr",
    "SetAttr",
    "Lookup",
    "Access",
    "ReadLink",
    "Read",
    "Write",
    "Create",
    "MkDir",
    "SymLink",
    "MkNod",
    "Remove",
    "RmDir",
    "Rename",
    "Link",
    "ReadDir",
    "ReadDirPlus",
    "FsStat",
    "FsInfo",
    "PathConf",
    "Commit",
];

/// The client's NFSv4 operations in the kernel's order (as procfs names
/// them); older kernels list fewer, the missing ones count 0.
const V4_CLIENT_PROCS: &[&str] = &[
    "Null",
    "Read",
    "Write",
    "Commit",
    "Open",
    "OpenConfirm",
    "OpenNoattr",
    "OpenDowngrade",
    "Close",
    "Setattr",
    "FsInfo",
    "Renew",
    "SetClientID",
    "SetClientIDConfirm",
    "Lock",
    "Lockt",
    "Locku",
    "Access",
    "Getattr",
    "Lookup",
    "LookupRoot",
    "Remove",
    "Rename",
    "Link",
    "Symlink",
    "Create",
    "Pathconf",
    "StatFs",
    "ReadLink",
    "ReadDir",
    "ServerCaps",
    "DelegReturn",
    "GetACL",
    "SetACL",
    "FsLocations",
    "ReleaseLockowner",
    "Secinfo",
    "FsidPresent",
    "ExchangeID",
    "CreateSession",
    "DestroySession",
    "Sequence",
    "GetLeaseTime",
    "ReclaimComplete",
    "GetDeviceInfo",
    "LayoutGet",
    "LayoutCommit",
    "LayoutReturn",
    "SecinfoNoName",
    "TestStateID",
    "FreeStateID",
    "GetDeviceList",
    "BindConnToSession",
    "DestroyClientID",
    "Seek",
    "Allocate",
    "DeAllocate",
    "LayoutStats",
    "Clone",
];

/// /proc/net/rpc/nfs, parsed.
#[derive(Debug, Default, PartialEq)]
pub struct ClientStats {
    /// udp packets, tcp packets, tcp connections.
    pub udp: u64,
    pub tcp: u64,
    pub tcp_connections: u64,
    pub rpcs: u64,
    pub retransmissions: u64,
    pub auth_refreshes: u64,
    /// (proto, method, count)
    pub requests: Vec<(&'static str, &'static str, u64)>,
}

pub fn parse_nfs(text: &str, path: &Path) -> anyhow::Result<ClientStats> {
    let mut s = ClientStats::default();
    let mut v2 = [0u64; 18];
    let mut v3 = [0u64; 22];
    let mut v4 = [0u64; 59];
    for (key, v) in parse_rpc_lines(text, path)? {
        match key {
            "net" => {
                let v = exactly(key, &v, 4, path)?;
                (s.udp, s.tcp, s.tcp_connections) = (v[1], v[2], v[3]);
            }
            "rpc" => {
                let v = exactly(key, &v, 3, path)?;
                (s.rpcs, s.retransmissions, s.auth_refreshes) = (v[0], v[1], v[2]);
            }
            "proc2" => v2.copy_from_slice(&counted(key, &v, 18, path)?[..18]),
            "proc3" => v3.copy_from_slice(&counted(key, &v, 22, path)?[..22]),
            "proc4" => {
                let values = counted(key, &v, 0, path)?;
                let n = values.len().min(v4.len());
                v4 = [0; 59];
                v4[..n].copy_from_slice(&values[..n]);
            }
            _ => return Err(anyhow!("parsing {}: unknown line {key:?}", path.display())),
        }
    }
    for (proto, names, values) in [
        ("2", V2_PROCS, &v2[..]),
        ("3", V3_PROCS, &v3[..]),
        ("4", V4_CLIENT_PROCS, &v4[..]),
    ] {
        for (name, value) in names.iter().zip(values) {
            s.requests.push((proto, name, *value));
        }
    }
    Ok(s)
}

impl Collector for Nfs {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("net/rpc/nfs");
        let s = parse_nfs(
            &crate::helpers::absent_if_missing(crate::helpers::read_file(&path))?,
            &path,
        )?;
        for (proto, n) in [("udp", s.udp), ("tcp", s.tcp)] {
            out.counter(
                "node_nfs_packets_total",
                "Total NFSd network packets (sent+received) by protocol type.",
                &[("protocol", proto)],
                n as f64,
            );
        }
        out.counter(
            "node_nfs_connections_total",
            "Total number of NFSd TCP connections.",
            &[],
            s.tcp_connections as f64,
        );
        out.counter(
            "node_nfs_rpcs_total",
            "Total number of RPCs performed.",
            &[],
            s.rpcs as f64,
        );
        out.counter(
            "node_nfs_rpc_retransmissions_total",
            "Number of RPC transmissions performed.",
            &[],
            s.retransmissions as f64,
        );
        out.counter(
            "node_nfs_rpc_authentication_refreshes_total",
            "Number of RPC authentication refreshes performed.",
            &[],
            s.auth_refreshes as f64,
        );
        for (proto, method, n) in s.requests {
            out.counter(
                "node_nfs_requests_total",
                "Number of NFS procedures invoked.",
                &[("proto", proto), ("method", method)],
                n as f64,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counters_and_pads_short_v4_lines() {
        let text = "net 70 70 69 45\nrpc 1218785755 374636 1218815394\n\
                    proc2 18 16 57 74 52 71 73 45 86 0 52 83 61 17 53 50 23 70 82\n\
                    proc4 3 98 51 54\n";
        let s = parse_nfs(text, Path::new("nfs")).unwrap();
        assert_eq!((s.udp, s.tcp, s.tcp_connections), (70, 69, 45));
        assert_eq!(
            (s.rpcs, s.retransmissions, s.auth_refreshes),
            (1218785755, 374636, 1218815394)
        );
        let get = |p: &str, m: &str| {
            s.requests
                .iter()
                .find(|(pp, mm, _)| *pp == p && *mm == m)
                .map(|r| r.2)
        };
        assert_eq!(get("2", "FsStat"), Some(82));
        assert_eq!(get("2", "Null"), Some(16));
        assert_eq!(get("3", "Commit"), Some(0));
        assert_eq!(get("4", "Write"), Some(54));
        assert_eq!(get("4", "Clone"), Some(0));
        assert_eq!(s.requests.len(), 18 + 22 + 59);
    }

    #[test]
    fn bad_lines_name_the_file() {
        for bad in [
            "net 1 2 3\n",
            "rpc 1 2 x\n",
            "proc3 22 1 2\n",
            "proc2 2 1 2\n",
            "bogus 1\n",
            "net\n",
            "\n",
        ] {
            let err = parse_nfs(bad, Path::new("/proc/net/rpc/nfs")).unwrap_err();
            assert!(
                err.to_string().contains("/proc/net/rpc/nfs"),
                "{bad:?}: {err}"
            );
        }
    }
}
