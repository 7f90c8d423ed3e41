//! `node_drbd_*{device}`: the per-device `key:value` words of /proc/drbd
//! (DRBD 8): traffic and activity counters (kiB ones in bytes), role and
//! disk state of both nodes, and whether the peer is connected, as
//! node_exporter. No /proc/drbd (module not loaded) is "no data", one
//! failed open a scrape.

use std::collections::HashSet;
use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::read_kept;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "drbd",
    default_enabled: false,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Drbd {
            paths: f.paths.clone(),
        }))
    },
};

struct Drbd {
    paths: Paths,
}

/// (key, metric name, help, counter, multiplier).
const NUMERICAL: [(&str, &str, &str, bool, f64); 12] = [
    ("ns", "node_drbd_network_sent_bytes_total", "Total number of bytes sent via the network.", true, 1024.0),
    ("nr", "node_drbd_network_received_bytes_total", "Total number of bytes received via the network.", true, 1.0),
    ("dw", "node_drbd_disk_written_bytes_total", "Net data written on local hard disk; in bytes.", true, 1024.0),
    ("dr", "node_drbd_disk_read_bytes_total", "Net data read from local hard disk; in bytes.", true, 1024.0),
    ("al", "node_drbd_activitylog_writes_total", "Number of updates of the activity log area of the meta data.", true, 1.0),
    ("bm", "node_drbd_bitmap_writes_total", "Number of updates of the bitmap area of the meta data.", true, 1.0),
    ("lo", "node_drbd_local_pending", "Number of open requests to the local I/O sub-system.", false, 1.0),
    ("pe", "node_drbd_remote_pending", "Number of requests sent to the peer, but that have not yet been answered by the latter.", false, 1.0),
    ("ua", "node_drbd_remote_unacknowledged", "Number of requests received by the peer via the network connection, but that have not yet been answered.", false, 1.0),
    ("ap", "node_drbd_application_pending", "Number of block I/O requests forwarded to DRBD, but not yet answered by DRBD.", false, 1.0),
    ("ep", "node_drbd_epochs", "Number of Epochs currently on the fly.", false, 1.0),
    ("oos", "node_drbd_out_of_sync_bytes", "Amount of data known to be out of sync; in bytes.", false, 1024.0),
];

/// (key, metric name, help, the value that counts as 1).
const STRING_PAIRS: [(&str, &str, &str, &str); 2] = [
    (
        "ro",
        "node_drbd_node_role_is_primary",
        "Whether the role of the node is in the primary state.",
        "Primary",
    ),
    (
        "ds",
        "node_drbd_disk_state_is_up_to_date",
        "Whether the disk of the node is up to date.",
        "UpToDate",
    ),
];

/// One value: (metric index, device, node label or "", value). Metric
/// indexes run over [`NUMERICAL`], then [`STRING_PAIRS`], then `connected`.
pub type DrbdValue = (usize, String, &'static str, f64);

const CONNECTED: usize = NUMERICAL.len() + STRING_PAIRS.len();

/// The words of /proc/drbd as node_exporter reads them: `<N>:` starts
/// device drbd<N>, known `key:value` words give values, anything else is
/// skipped. A number that is not one, a role or disk state without its
/// peer's, or a value given twice for a device fails, naming the file.
pub fn parse_drbd(text: &str, path: &Path) -> anyhow::Result<Vec<DrbdValue>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut device = "unknown".to_string();
    for word in text.split_whitespace() {
        let bad = |what: &str| anyhow!("parsing {}: {word:?}: {what}", path.display());
        let kv: Vec<&str> = word.split(':').collect();
        let [key, value] = kv[..] else { continue };
        if value.is_empty() && key.parse::<u64>().is_ok() {
            device = format!("drbd{}", key.parse::<u64>().unwrap_or_default());
            continue;
        }
        let mut push = |i: usize, node: &'static str, v: f64| {
            if !seen.insert((i, device.clone(), node)) {
                return Err(bad("given twice for the device"));
            }
            out.push((i, device.clone(), node, v));
            Ok(())
        };
        if let Some(i) = NUMERICAL.iter().position(|m| m.0 == key) {
            let v: f64 = value.parse().map_err(|_| bad("not a number"))?;
            push(i, "", v * NUMERICAL[i].4)?;
        } else if let Some(i) = STRING_PAIRS.iter().position(|m| m.0 == key) {
            let (local, remote) = value
                .split_once('/')
                .ok_or_else(|| bad("no peer's state after '/'"))?;
            // node_exporter takes the first two of a/b/c.
            let remote = remote.split('/').next().unwrap_or(remote);
            let ok = STRING_PAIRS[i].3;
            push(
                NUMERICAL.len() + i,
                "local",
                f64::from(u8::from(local == ok)),
            )?;
            push(
                NUMERICAL.len() + i,
                "remote",
                f64::from(u8::from(remote == ok)),
            )?;
        } else if key == "cs" {
            push(CONNECTED, "", f64::from(u8::from(value == "Connected")))?;
        }
    }
    Ok(out)
}

impl Collector for Drbd {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("drbd");
        for (i, device, node, v) in parse_drbd(&read_kept(&path)?, &path)? {
            if let Some((_, name, help, counter, _)) = NUMERICAL.get(i) {
                let labels = [("device", device.as_str())];
                if *counter {
                    out.counter(*name, *help, &labels, v);
                } else {
                    out.gauge(*name, *help, &labels, v);
                }
            } else if let Some((_, name, help, _)) = STRING_PAIRS.get(i - NUMERICAL.len()) {
                out.gauge(*name, *help, &[("device", &device), ("node", node)], v);
            } else {
                out.gauge(
                    "node_drbd_connected",
                    "Whether DRBD is connected to the peer.",
                    &[("device", &device)],
                    v,
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{collect, write};

    const DRBD: &str = "version: 8.4.3 (api:1/proto:86-101)
srcversion: 1A9F77B1CA5FF92235C2213

 1: cs:Connected ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----
    ns:17324442 nr:10961011 dw:28263521 dr:118696670 al:1100 bm:221 lo:0 pe:1 ua:2 ap:3 ep:1 wo:d oos:12349
 2: cs:WFConnection ro:Secondary/Unknown ds:Diskless/DUnknown C r-----
    ns:0 nr:0
";

    fn run(root: &Path) -> anyhow::Result<String> {
        collect(&Drbd {
            paths: Paths {
                procfs: root.into(),
                ..Paths::default()
            },
        })
    }

    #[test]
    fn devices_counters_and_states() {
        let dir = tempfile::tempdir().unwrap();
        assert!(crate::helpers::is_no_data(&run(dir.path()).unwrap_err()));
        write(dir.path(), "drbd", DRBD);
        let text = run(dir.path()).unwrap();
        for want in [
            "node_drbd_connected{device=\"drbd1\"} 1\n",
            "node_drbd_connected{device=\"drbd2\"} 0\n",
            "node_drbd_network_sent_bytes_total{device=\"drbd1\"} 1.7740228608e+10\n",
            "node_drbd_network_received_bytes_total{device=\"drbd1\"} 1.0961011e+07\n",
            "node_drbd_node_role_is_primary{device=\"drbd1\",node=\"remote\"} 0\n",
            "node_drbd_disk_state_is_up_to_date{device=\"drbd1\",node=\"local\"} 1\n",
            "node_drbd_out_of_sync_bytes{device=\"drbd1\"} 1.2645376e+07\n",
            "# TYPE node_drbd_epochs gauge\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
    }

    #[test]
    fn garbage_names_the_file() {
        let p = Path::new("/proc/drbd");
        for bad in ["1: ns:lots\n", "1: ro:Primary\n", "1: ns:1 ns:2\n"] {
            let err = parse_drbd(bad, p).unwrap_err().to_string();
            assert!(err.contains("/proc/drbd"), "{bad:?}: {err}");
        }
    }
}
