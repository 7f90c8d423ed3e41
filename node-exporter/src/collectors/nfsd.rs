//! `node_nfsd_*`, the NFS server's statistics from /proc/net/rpc/nfsd, as
//! node_exporter's nfsd collector. No such file (no NFS server module) is
//! "no data", as in node_exporter: one failed open a scrape, nothing more.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::nfs::{counted, exactly, parse_rpc_lines, V2_PROCS, V3_PROCS};
use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "nfsd",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Nfsd {
            paths: f.paths.clone(),
        }))
    },
};

struct Nfsd {
    paths: Paths,
}

/// The NFSv4 operations node_exporter reports, with their index in the
/// `proc4ops` line (index 0 is the count; the reserved operations 0-2 and
/// the public/root file handle ones are not reported).
const V4_OPS: &[(&str, usize)] = &[
    ("Access", 4),
    ("Close", 5),
    ("Commit", 6),
    ("Create", 7),
    ("DelegPurge", 8),
    ("DelegReturn", 9),
    ("GetAttr", 10),
    ("GetFH", 11),
    ("Link", 12),
    ("Lock", 13),
    ("Lockt", 14),
    ("Locku", 15),
    ("Lookup", 16),
    ("LookupRoot", 17),
    ("Nverify", 18),
    ("Open", 19),
    ("OpenAttr", 20),
    ("OpenConfirm", 21),
    ("OpenDgrd", 22),
    ("PutFH", 23),
    ("Read", 26),
    ("ReadDir", 27),
    ("ReadLink", 28),
    ("Remove", 29),
    ("Rename", 30),
    ("Renew", 31),
    ("RestoreFH", 32),
    ("SaveFH", 33),
    ("SecInfo", 34),
    ("SetAttr", 35),
    ("SetClientID", 36),
    ("SetClientIDConfirm", 37),
    ("Verify", 38),
    ("Write", 39),
    ("RelLockOwner", 40),
];

/// /proc/net/rpc/nfsd, parsed; lines a kernel does not write count 0.
#[derive(Debug, Default, PartialEq)]
pub struct ServerStats {
    /// hits, misses, nocache
    pub reply_cache: [u64; 3],
    pub stale_file_handles: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub threads: u64,
    pub read_ahead_size: u64,
    pub read_ahead_not_found: u64,
    pub udp: u64,
    pub tcp: u64,
    pub tcp_connections: u64,
    pub rpcs: u64,
    /// bad format, bad auth, bad client
    pub rpc_errors: [u64; 3],
    /// (proto, method, count)
    pub requests: Vec<(&'static str, &'static str, u64)>,
}

pub fn parse_nfsd(text: &str, path: &Path) -> anyhow::Result<ServerStats> {
    let mut s = ServerStats::default();
    let mut v2 = [0u64; 18];
    let mut v3 = [0u64; 22];
    let mut v4 = [0u64; 41];
    let mut wdeleg_getattr = 0;
    for (key, v) in parse_rpc_lines(text, path)? {
        match key {
            "rc" => s.reply_cache.copy_from_slice(exactly(key, &v, 3, path)?),
            "fh" => s.stale_file_handles = exactly(key, &v, 5, path)?[0],
            "io" => {
                let v = exactly(key, &v, 2, path)?;
                (s.bytes_read, s.bytes_written) = (v[0], v[1]);
            }
            "th" => s.threads = exactly(key, &v, 2, path)?[0],
            "ra" => {
                let v = exactly(key, &v, 12, path)?;
                (s.read_ahead_size, s.read_ahead_not_found) = (v[0], v[11]);
            }
            "net" => {
                let v = exactly(key, &v, 4, path)?;
                (s.udp, s.tcp, s.tcp_connections) = (v[1], v[2], v[3]);
            }
            "rpc" => {
                let v = exactly(key, &v, 5, path)?;
                s.rpcs = v[0];
                s.rpc_errors.copy_from_slice(&v[2..5]);
            }
            "proc2" => v2.copy_from_slice(&counted(key, &v, 18, path)?[..18]),
            "proc3" => v3.copy_from_slice(&counted(key, &v, 22, path)?[..22]),
            // NULL and COMPOUND: not reported, but checked as node_exporter does.
            "proc4" => {
                counted(key, &v, 2, path)?;
                exactly(key, &v, 3, path)?;
            }
            "proc4ops" => {
                let values = counted(key, &v, 39, path)?;
                let n = values.len().min(40);
                v4 = [0; 41];
                v4[1..=n].copy_from_slice(&values[..n]);
            }
            "wdeleg_getattr" => wdeleg_getattr = v[0],
            _ => return Err(anyhow!("parsing {}: unknown line {key:?}", path.display())),
        }
    }
    // node_exporter leaves out NULL of v2 and v3.
    for (proto, names, values) in [("2", V2_PROCS, &v2[..]), ("3", V3_PROCS, &v3[..])] {
        for (name, value) in names.iter().zip(values).skip(1) {
            s.requests.push((proto, name, *value));
        }
    }
    for (name, i) in V4_OPS {
        s.requests.push(("4", name, v4[*i]));
    }
    s.requests.push(("4", "WdelegGetattr", wdeleg_getattr));
    Ok(s)
}

impl Collector for Nfsd {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("net/rpc/nfsd");
        let s = parse_nfsd(
            &crate::helpers::absent_if_missing(crate::helpers::read_file(&path))?,
            &path,
        )?;
        let [hits, misses, nocache] = s.reply_cache;
        out.counter(
            "node_nfsd_reply_cache_hits_total",
            "Total number of NFSd Reply Cache hits (client lost server response).",
            &[],
            hits as f64,
        );
        out.counter(
            "node_nfsd_reply_cache_misses_total",
            "Total number of NFSd Reply Cache an operation that requires caching (idempotent).",
            &[],
            misses as f64,
        );
        out.counter(
            "node_nfsd_reply_cache_nocache_total",
            "Total number of NFSd Reply Cache non-idempotent operations (rename/delete/…).",
            &[],
            nocache as f64,
        );
        out.counter(
            "node_nfsd_file_handles_stale_total",
            "Total number of NFSd stale file handles",
            &[],
            s.stale_file_handles as f64,
        );
        out.counter(
            "node_nfsd_disk_bytes_read_total",
            "Total NFSd bytes read.",
            &[],
            s.bytes_read as f64,
        );
        out.counter(
            "node_nfsd_disk_bytes_written_total",
            "Total NFSd bytes written.",
            &[],
            s.bytes_written as f64,
        );
        out.gauge(
            "node_nfsd_server_threads",
            "Total number of NFSd kernel threads that are running.",
            &[],
            s.threads as f64,
        );
        out.gauge(
            "node_nfsd_read_ahead_cache_size_blocks",
            "How large the read ahead cache is in blocks.",
            &[],
            s.read_ahead_size as f64,
        );
        out.counter(
            "node_nfsd_read_ahead_cache_not_found_total",
            "Total number of NFSd read ahead cache not found.",
            &[],
            s.read_ahead_not_found as f64,
        );
        for (proto, n) in [("udp", s.udp), ("tcp", s.tcp)] {
            out.counter(
                "node_nfsd_packets_total",
                "Total NFSd network packets (sent+received) by protocol type.",
                &[("proto", proto)],
                n as f64,
            );
        }
        out.counter(
            "node_nfsd_connections_total",
            "Total number of NFSd TCP connections.",
            &[],
            s.tcp_connections as f64,
        );
        out.counter(
            "node_nfsd_server_rpcs_total",
            "Total number of NFSd RPCs.",
            &[],
            s.rpcs as f64,
        );
        for (kind, n) in ["fmt", "auth", "cInt"].iter().zip(s.rpc_errors) {
            out.counter(
                "node_nfsd_rpc_errors_total",
                "Total number of NFSd RPC errors by error type.",
                &[("error", kind)],
                n as f64,
            );
        }
        for (proto, method, n) in s.requests {
            out.counter(
                "node_nfsd_requests_total",
                "Total number NFSd Requests by method and protocol.",
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
    fn parses_server_lines_with_float_thread_histogram() {
        let text = "rc 0 6 18622\nfh 0 0 0 0 0\nio 157286400 72864\n\
                    th 8 0 0.000 0.000\nnet 972 55 917 1\nrpc 18628 3 1 2 0\n\
                    proc4 2 2 10853\nwdeleg_getattr 15\n";
        let s = parse_nfsd(text, Path::new("nfsd")).unwrap();
        assert_eq!(s.reply_cache, [0, 6, 18622]);
        assert_eq!(
            (s.bytes_read, s.bytes_written, s.threads),
            (157286400, 72864, 8)
        );
        assert_eq!(
            (s.udp, s.tcp, s.tcp_connections, s.rpcs),
            (55, 917, 1, 18628)
        );
        assert_eq!(s.rpc_errors, [1, 2, 0]);
        assert!(s.requests.contains(&("4", "WdelegGetattr", 15)));
        assert!(!s.requests.iter().any(|r| r.1 == "Null"));
        assert_eq!(s.requests.len(), 17 + 21 + V4_OPS.len() + 1);
    }

    #[test]
    fn bad_lines_name_the_file() {
        for bad in [
            "th 8\n",
            "rc 0 6\n",
            "proc4 3 1 2 3\n",
            "proc4ops 3 1 2 3\n",
            "io 1 -2\n",
            "zz 1\n",
        ] {
            let err = parse_nfsd(bad, Path::new("/proc/net/rpc/nfsd")).unwrap_err();
            assert!(
                err.to_string().contains("/proc/net/rpc/nfsd"),
                "{bad:?}: {err}"
            );
        }
    }
}
