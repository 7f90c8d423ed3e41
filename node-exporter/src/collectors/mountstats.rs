//! `node_mountstats_nfs_*`, per NFS mount from /proc/self/mountstats, as
//! node_exporter's mountstats collector (off by default): byte, event,
//! transport and per-operation counters, labelled by export, protocol and
//! the server address from the same mount's `addr=` in
//! /proc/self/mountinfo (both files list mounts in the same order). A mount
//! seen twice (same export, protocol and address) is reported once, with
//! a `mountpoint_info` series per mount point.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{anyhow, bail};
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "mountstats",
    default_enabled: false,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Mountstats {
            paths: f.paths.clone(),
        }))
    },
};

struct Mountstats {
    paths: Paths,
}

/// node_exporter reports durations and the idle time modulo 2^53, the
/// integers a float64 holds exactly.
const FLOAT64_MANTISSA: u64 = 1 << 53;

/// (index in the `bytes:` line, metric, help).
const BYTES: &[(usize, &str, &str)] = &[
    (
        0,
        "node_mountstats_nfs_read_bytes_total",
        "Number of bytes read using the read() syscall.",
    ),
    (
        1,
        "node_mountstats_nfs_write_bytes_total",
        "Number of bytes written using the write() syscall.",
    ),
    (
        2,
        "node_mountstats_nfs_direct_read_bytes_total",
        "Number of bytes read using the read() syscall in O_DIRECT mode.",
    ),
    (
        3,
        "node_mountstats_nfs_direct_write_bytes_total",
        "Number of bytes written using the write() syscall in O_DIRECT mode.",
    ),
    (
        4,
        "node_mountstats_nfs_total_read_bytes_total",
        "Number of bytes read from the NFS server, in total.",
    ),
    (
        5,
        "node_mountstats_nfs_total_write_bytes_total",
        "Number of bytes written to the NFS server, in total.",
    ),
    (
        6,
        "node_mountstats_nfs_read_pages_total",
        "Number of pages read directly via mmap()'d files.",
    ),
    (
        7,
        "node_mountstats_nfs_write_pages_total",
        "Number of pages written directly via mmap()'d files.",
    ),
];

/// (index in the `events:` line, metric, help); index 18 (congestion
/// waits) is not reported.
const EVENTS: &[(usize, &str, &str)] = &[
    (
        0,
        "node_mountstats_nfs_event_inode_revalidate_total",
        "Number of times cached inode attributes are re-validated from the server.",
    ),
    (
        1,
        "node_mountstats_nfs_event_dnode_revalidate_total",
        "Number of times cached dentry nodes are re-validated from the server.",
    ),
    (
        2,
        "node_mountstats_nfs_event_data_invalidate_total",
        "Number of times an inode cache is cleared.",
    ),
    (
        3,
        "node_mountstats_nfs_event_attribute_invalidate_total",
        "Number of times cached inode attributes are invalidated.",
    ),
    (
        4,
        "node_mountstats_nfs_event_vfs_open_total",
        "Number of times cached inode attributes are invalidated.",
    ),
    (
        5,
        "node_mountstats_nfs_event_vfs_lookup_total",
        "Number of times a directory lookup has occurred.",
    ),
    (
        6,
        "node_mountstats_nfs_event_vfs_access_total",
        "Number of times permissions have been checked.",
    ),
    (
        7,
        "node_mountstats_nfs_event_vfs_update_page_total",
        "Number of updates (and potential writes) to pages.",
    ),
    (
        8,
        "node_mountstats_nfs_event_vfs_read_page_total",
        "Number of pages read directly via mmap()'d files.",
    ),
    (
        9,
        "node_mountstats_nfs_event_vfs_read_pages_total",
        "Number of times a group of pages have been read.",
    ),
    (
        10,
        "node_mountstats_nfs_event_vfs_write_page_total",
        "Number of pages written directly via mmap()'d files.",
    ),
    (
        11,
        "node_mountstats_nfs_event_vfs_write_pages_total",
        "Number of times a group of pages have been written.",
    ),
    (
        12,
        "node_mountstats_nfs_event_vfs_getdents_total",
        "Number of times directory entries have been read with getdents().",
    ),
    (
        13,
        "node_mountstats_nfs_event_vfs_setattr_total",
        "Number of times directory entries have been read with getdents().",
    ),
    (
        14,
        "node_mountstats_nfs_event_vfs_flush_total",
        "Number of pending writes that have been forcefully flushed to the server.",
    ),
    (
        15,
        "node_mountstats_nfs_event_vfs_fsync_total",
        "Number of times fsync() has been called on directories and files.",
    ),
    (
        16,
        "node_mountstats_nfs_event_vfs_lock_total",
        "Number of times locking has been attempted on a file.",
    ),
    (
        17,
        "node_mountstats_nfs_event_vfs_file_release_total",
        "Number of times files have been closed and released.",
    ),
    (
        19,
        "node_mountstats_nfs_event_truncation_total",
        "Number of times files have been truncated.",
    ),
    (
        20,
        "node_mountstats_nfs_event_write_extension_total",
        "Number of times a file has been grown due to writes beyond its existing end.",
    ),
    (
        21,
        "node_mountstats_nfs_event_silly_rename_total",
        "Number of times a file was removed while still open by another process.",
    ),
    (
        22,
        "node_mountstats_nfs_event_short_read_total",
        "Number of times the NFS server gave less data than expected while reading.",
    ),
    (
        23,
        "node_mountstats_nfs_event_short_write_total",
        "Number of times the NFS server wrote less data than expected while writing.",
    ),
    (
        24,
        "node_mountstats_nfs_event_jukebox_delay_total",
        "Number of times the NFS server indicated EJUKEBOX; retrieving data from offline storage.",
    ),
    (
        25,
        "node_mountstats_nfs_event_pnfs_read_total",
        "Number of NFS v4.1+ pNFS reads.",
    ),
    (
        26,
        "node_mountstats_nfs_event_pnfs_write_total",
        "Number of NFS v4.1+ pNFS writes.",
    ),
];

/// (index in the padded `xprt:` values, metric, help, is counter).
const TRANSPORT: &[(usize, &str, &str, bool)] = &[
    (1, "node_mountstats_nfs_transport_bind_total", "Number of times the client has had to establish a connection from scratch to the NFS server.", true),
    (2, "node_mountstats_nfs_transport_connect_total", "Number of times the client has made a TCP connection to the NFS server.", true),
    (4, "node_mountstats_nfs_transport_idle_time_seconds", "Duration since the NFS mount last saw any RPC traffic, in seconds.", false),
    (5, "node_mountstats_nfs_transport_sends_total", "Number of RPC requests for this mount sent to the NFS server.", true),
    (6, "node_mountstats_nfs_transport_receives_total", "Number of RPC responses for this mount received from the NFS server.", true),
    (7, "node_mountstats_nfs_transport_bad_transaction_ids_total", "Number of times the NFS server sent a response with a transaction ID unknown to this client.", true),
    (9, "node_mountstats_nfs_transport_backlog_queue_total", "Total number of items added to the RPC backlog queue.", true),
    (10, "node_mountstats_nfs_transport_maximum_rpc_slots", "Maximum number of simultaneously active RPC requests ever used.", false),
    (11, "node_mountstats_nfs_transport_sending_queue_total", "Total number of items added to the RPC transmission sending queue.", true),
    (12, "node_mountstats_nfs_transport_pending_queue_total", "Total number of items added to the RPC transmission pending queue.", true),
];

/// (index in a per-op line's numbers, metric, help, is milliseconds).
const OPERATIONS: &[(usize, &str, &str, bool)] = &[
    (0, "node_mountstats_nfs_operations_requests_total", "Number of requests performed for a given operation.", false),
    (1, "node_mountstats_nfs_operations_transmissions_total", "Number of times an actual RPC request has been transmitted for a given operation.", false),
    (2, "node_mountstats_nfs_operations_major_timeouts_total", "Number of times a request has had a major timeout for a given operation.", false),
    (3, "node_mountstats_nfs_operations_sent_bytes_total", "Number of bytes sent for a given operation, including RPC headers and payload.", false),
    (4, "node_mountstats_nfs_operations_received_bytes_total", "Number of bytes received for a given operation, including RPC headers and payload.", false),
    (5, "node_mountstats_nfs_operations_queue_time_seconds_total", "Duration all requests spent queued for transmission for a given operation before they were sent, in seconds.", true),
    (6, "node_mountstats_nfs_operations_response_time_seconds_total", "Duration all requests took to get a reply back after a request for a given operation was transmitted, in seconds.", true),
    (7, "node_mountstats_nfs_operations_request_time_seconds_total", "Duration all requests took from when a request was enqueued to when it was completely handled for a given operation, in seconds.", true),
];

/// One `device ... mounted on ... with fstype ...` entry.
#[derive(Debug, Default, PartialEq)]
pub struct Mount {
    pub device: String,
    pub mount_point: String,
    pub fs_type: String,
    /// NFS statistics, for mounts that have them.
    pub nfs: Option<NfsStats>,
}

#[derive(Debug, Default, PartialEq)]
pub struct NfsStats {
    pub age_seconds: f64,
    pub bytes: [u64; 8],
    pub events: [u64; 27],
    /// (protocol, the 13 values with UDP's missing ones as 0)
    pub transports: Vec<(String, [u64; 13])>,
    /// (operation, its numbers)
    pub operations: Vec<(String, Vec<u64>)>,
}

fn numbers<const N: usize>(fields: &[&str], what: &str) -> Result<[u64; N], String> {
    if fields.len() != N {
        return Err(format!("{what}: {} values, expected {N}", fields.len()));
    }
    let mut out = [0u64; N];
    for (slot, f) in out.iter_mut().zip(fields) {
        *slot = f
            .parse()
            .map_err(|_| format!("{what}: {f:?} is not an unsigned integer"))?;
    }
    Ok(out)
}

fn transport(fields: &[&str], version: &str) -> Result<(String, [u64; 13]), String> {
    let [protocol, values @ ..] = fields else {
        return Err("xprt: no protocol".into());
    };
    let want = match (version, *protocol) {
        ("1.0", "tcp") => 10,
        ("1.0", "udp") => 7,
        ("1.1", "tcp") => 13,
        ("1.1", "udp") => 10,
        ("1.0" | "1.1", p) => return Err(format!("xprt: unknown protocol {p:?}")),
        (v, _) => return Err(format!("unknown statistics version {v:?}")),
    };
    if values.len() != want {
        return Err(format!(
            "xprt {protocol}: {} values, expected {want}",
            values.len()
        ));
    }
    let mut ns = [0u64; 13];
    // UDP has no connection count, connect idle time or idle time: they
    // are the 3rd to 5th values of TCP's list, and count 0.
    let slots: Vec<usize> = if *protocol == "udp" {
        (0..2).chain(5..13).collect()
    } else {
        (0..13).collect()
    };
    for (slot, v) in slots.into_iter().zip(values) {
        ns[slot] = v
            .parse()
            .map_err(|_| format!("xprt: {v:?} is not an unsigned integer"))?;
    }
    Ok((protocol.to_string(), ns))
}

/// Parses /proc/<pid>/mountstats (`path` names it in errors).
pub fn parse_mountstats(text: &str, path: &Path) -> anyhow::Result<Vec<Mount>> {
    let mut lines = text.lines().enumerate().peekable();
    let mut out = Vec::new();
    while let Some((i, line)) = lines.next() {
        let ss: Vec<&str> = line.split_whitespace().collect();
        if ss.first() != Some(&"device") {
            continue;
        }
        let err =
            |n: usize, what: String| anyhow!("parsing {} line {}: {what}", path.display(), n + 1);
        if ss.len() < 8
            || ss[2] != "mounted"
            || ss[3] != "on"
            || ss[5] != "with"
            || ss[6] != "fstype"
        {
            return Err(err(i, format!("malformed device line {line:?}")));
        }
        let mut mount = Mount {
            device: ss[1].to_string(),
            mount_point: ss[4].to_string(),
            fs_type: ss[7].to_string(),
            nfs: None,
        };
        if ss.len() > 8 {
            if mount.fs_type != "nfs" && mount.fs_type != "nfs4" {
                return Err(err(i, format!("statistics of a {:?} mount", mount.fs_type)));
            }
            let version = ss[8].trim_start_matches("statvers=");
            let mut s = NfsStats::default();
            // The mount's own lines, up to the per-op statistics (or a blank line).
            for (n, line) in lines.by_ref() {
                let f: Vec<&str> = line.split_whitespace().collect();
                let Some(&key) = f.first() else { break };
                let rest = &f[1..];
                let need = |min: usize| {
                    if f.len() < min {
                        Err(err(n, format!("too few values in {line:?}")))
                    } else {
                        Ok(())
                    }
                };
                match key {
                    "age:" => {
                        need(2)?;
                        s.age_seconds = rest[0]
                            .parse::<f64>()
                            .ok()
                            .filter(|v| v.is_finite())
                            .ok_or_else(|| err(n, format!("age {:?} is not a number", rest[0])))?;
                    }
                    "bytes:" => {
                        need(2)?;
                        s.bytes = numbers(rest, "bytes").map_err(|e| err(n, e))?;
                    }
                    "events:" => {
                        need(2)?;
                        s.events = numbers(rest, "events").map_err(|e| err(n, e))?;
                    }
                    "xprt:" => {
                        need(3)?;
                        s.transports
                            .push(transport(rest, version).map_err(|e| err(n, e))?);
                    }
                    _ => {}
                }
                if key == "per-op" {
                    break;
                }
            }
            // One line per operation, up to a blank line.
            for (n, line) in lines.by_ref() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.is_empty() {
                    break;
                }
                if f.len() < 9 {
                    return Err(err(n, format!("too few values in operation line {line:?}")));
                }
                let values = f[1..]
                    .iter()
                    .map(|v| {
                        v.parse::<u64>()
                            .map_err(|_| err(n, format!("{v:?} is not an unsigned integer")))
                    })
                    .collect::<anyhow::Result<Vec<u64>>>()?;
                s.operations
                    .push((f[0].trim_end_matches(':').to_string(), values));
            }
            mount.nfs = Some(s);
        }
        out.push(mount);
    }
    Ok(out)
}

/// The `addr=` superblock option of each mountinfo line, in order.
pub fn parse_mountinfo_addrs(text: &str, path: &Path) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields.iter().skip(6).position(|f| *f == "-").map(|p| p + 6);
        let Some(super_options) = sep
            .and_then(|s| fields.get(s + 3))
            .filter(|_| fields.len() >= 10)
        else {
            bail!(
                "parsing {} line {}: malformed mountinfo line {line:?}",
                path.display(),
                i + 1
            );
        };
        let addr = super_options
            .split(',')
            .find_map(|o| o.strip_prefix("addr="))
            .unwrap_or("");
        out.push(addr.to_string());
    }
    Ok(out)
}

fn emit_nfs(out: &mut MetricSet, s: &NfsStats, export: &str, protocol: &str, addr: &str) {
    let labels = [
        ("export", export),
        ("protocol", protocol),
        ("mountaddr", addr),
    ];
    out.counter(
        "node_mountstats_nfs_age_seconds_total",
        "The age of the NFS mount in seconds.",
        &labels,
        s.age_seconds,
    );
    for (i, name, help) in BYTES {
        out.counter(*name, *help, &labels, s.bytes[*i] as f64);
    }
    for (index, (_, ns)) in s.transports.iter().enumerate() {
        let index = index.to_string();
        let labels = [
            ("export", export),
            ("protocol", protocol),
            ("mountaddr", addr),
            ("transport", index.as_str()),
        ];
        for (i, name, help, counter) in TRANSPORT {
            if *counter {
                out.counter(*name, *help, &labels, ns[*i] as f64);
            } else {
                // Only the idle time wraps; the slot count is small.
                out.gauge(*name, *help, &labels, (ns[*i] % FLOAT64_MANTISSA) as f64);
            }
        }
    }
    for (op, ns) in &s.operations {
        let labels = [
            ("export", export),
            ("protocol", protocol),
            ("mountaddr", addr),
            ("operation", op.as_str()),
        ];
        for (i, name, help, millis) in OPERATIONS {
            let v = ns.get(*i).copied().unwrap_or(0);
            let v = if *millis {
                (v % FLOAT64_MANTISSA) as f64 / 1000.0
            } else {
                v as f64
            };
            out.counter(*name, *help, &labels, v);
        }
    }
    for (i, name, help) in EVENTS {
        out.counter(*name, *help, &labels, s.events[*i] as f64);
    }
}

impl Collector for Mountstats {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let stats_path = self.paths.proc("self/mountstats");
        let mounts = parse_mountstats(&crate::helpers::read_file(&stats_path)?, &stats_path)?;
        let info_path = self.paths.proc("self/mountinfo");
        let addrs = parse_mountinfo_addrs(&crate::helpers::read_file(&info_path)?, &info_path)?;
        let mut devices = HashSet::new();
        let mut mount_points = HashSet::new();
        for (idx, m) in mounts.iter().enumerate() {
            let Some(s) = &m.nfs else { continue };
            let addr = addrs.get(idx).map(String::as_str).unwrap_or("");
            for (protocol, _) in &s.transports {
                let key = (m.device.as_str(), protocol.as_str(), addr);
                if mount_points.insert((key, m.mount_point.as_str())) {
                    out.gauge(
                        "node_mountstats_nfs_mountpoint_info",
                        "Info metric for an NFS mountpoint.",
                        &[
                            ("export", m.device.as_str()),
                            ("protocol", protocol.as_str()),
                            ("mountaddr", addr),
                            ("mountpoint", m.mount_point.as_str()),
                        ],
                        1.0,
                    );
                }
                // The same export over the same protocol and address is
                // one set of counters, however many mount points it has.
                if !devices.insert(key) {
                    break;
                }
                emit_nfs(out, s, &m.device, protocol, addr);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATS: &str = "device rootfs mounted on / with fstype rootfs
device srv:/export mounted on /mnt/a with fstype nfs4 statvers=1.1
\topts:\trw,vers=4.0
\tage:\t13968
\tbytes:\t1207640230 0 0 0 1210214218 0 295483 0
\tevents:\t52 226 0 0 1 13 398 0 0 331 0 47 0 0 77 0 0 77 0 0 0 0 0 0 0 0 0
\txprt:\ttcp 832 0 1 0 11 6428 6428 0 12154 0 24 26 5726
\tper-op statistics
\t        NULL: 0 0 0 0 0 0 0 0
\t        READ: 1298 1298 0 207680 1210292152 6 79386 79407

device srv:/export mounted on /mnt/b with fstype nfs statvers=1.1
\tage:\t10
\txprt:\tudp 832 0 6428 6428 0 12154 0 24 26 5726
\tper-op statistics
\t      ACCESS: 1 1 0 5 6 18446743919241604546 7 8 3
";

    #[test]
    fn parses_nfs_mounts_transports_and_operations() {
        let mounts = parse_mountstats(STATS, Path::new("mountstats")).unwrap();
        assert_eq!(mounts.len(), 3);
        assert!(mounts[0].nfs.is_none());
        let a = mounts[1].nfs.as_ref().unwrap();
        assert_eq!(a.age_seconds, 13968.0);
        assert_eq!(a.bytes[4], 1210214218);
        assert_eq!(a.events[9], 331);
        assert_eq!(a.transports[0].0, "tcp");
        assert_eq!(a.transports[0].1[12], 5726);
        assert_eq!(a.operations[1].0, "READ");
        assert_eq!(a.operations[1].1[7], 79407);
        let b = mounts[2].nfs.as_ref().unwrap();
        // UDP's missing connect count and idle times are zeros.
        assert_eq!(b.transports[0].1[..6], [832, 0, 0, 0, 0, 6428]);
        assert_eq!(b.operations[0].1.len(), 9);
    }

    #[test]
    fn reports_a_repeated_export_once_with_every_mount_point() {
        let dir = tempfile::tempdir().unwrap();
        let twice = STATS.replace("/mnt/b with fstype nfs statvers=1.1\n\tage:\t10\n\txprt:\tudp 832 0 6428 6428 0 12154 0 24 26 5726",
            "/mnt/b with fstype nfs statvers=1.1\n\tage:\t10\n\txprt:\ttcp 832 0 1 0 11 6428 6428 0 12154 0 24 26 5726");
        crate::testutil::write(dir.path(), "self/mountstats", &twice);
        crate::testutil::write(
            dir.path(),
            "self/mountinfo",
            "1 1 0:5 / / rw - rootfs rootfs rw\n\
             2 1 0:42 / /mnt/a rw shared:1 - nfs4 srv:/export rw,vers=4.0,addr=10.0.0.1\n\
             3 1 0:42 / /mnt/b rw shared:2 - nfs srv:/export rw,vers=3,addr=10.0.0.1\n",
        );
        let c = Mountstats {
            paths: Paths {
                procfs: dir.path().into(),
                ..Paths::default()
            },
        };
        let got = crate::testutil::collect(&c).unwrap();
        let count = |needle: &str| got.lines().filter(|l| l.starts_with(needle)).count();
        assert_eq!(count("node_mountstats_nfs_mountpoint_info{"), 2, "{got}");
        assert_eq!(count("node_mountstats_nfs_age_seconds_total{"), 1, "{got}");
        assert!(got.contains(
            "node_mountstats_nfs_age_seconds_total{export=\"srv:/export\",mountaddr=\"10.0.0.1\",protocol=\"tcp\"} 13968"
        ), "{got}");
        assert!(
            got.contains("operation=\"READ\",protocol=\"tcp\"} 79.407"),
            "{got}"
        );
    }

    #[test]
    fn broken_lines_name_the_file() {
        let p = Path::new("/proc/self/mountstats");
        for bad in [
            "device x mounted on\n",
            "device x mounted on /m with fstype ext4 statvers=1.1\n",
            "device x mounted on /m with fstype nfs statvers=1.1\n\tbytes:\t1 2 3\n",
            "device x mounted on /m with fstype nfs statvers=1.1\n\txprt:\ttcp 1 2\n",
            "device x mounted on /m with fstype nfs statvers=9\n\txprt:\ttcp 1 2 3 4 5 6 7 8 9 10 11 12 13\n",
            "device x mounted on /m with fstype nfs statvers=1.1\n\tper-op statistics\n\tREAD: 1 2\n",
            "device x mounted on /m with fstype nfs statvers=1.1\n\tage:\tlong\n",
        ] {
            let err = parse_mountstats(bad, p).unwrap_err();
            assert!(err.to_string().contains("/proc/self/mountstats"), "{bad:?}: {err}");
        }
        let err = parse_mountinfo_addrs("1 2 3\n", Path::new("/proc/self/mountinfo")).unwrap_err();
        assert!(err.to_string().contains("mountinfo"), "{err}");
    }
}
