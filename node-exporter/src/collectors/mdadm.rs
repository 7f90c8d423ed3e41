//! `node_md_*`, as node_exporter's mdadm collector: the arrays of
//! /proc/mdstat (state, disks, blocks and sync progress), then
//! `raid_disks` and `degraded` of each /sys/block/md*/md. No /proc/mdstat
//! (no md driver loaded) is "no data", as in node_exporter; that check is a
//! single failed open, so a host without md pays nothing more per scrape.

use std::path::Path;

use anyhow::{anyhow, bail};
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, NoData, Paths};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "mdadm",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Mdadm {
            paths: f.paths.clone(),
        }))
    },
};

struct Mdadm {
    paths: Paths,
}

/// One array of /proc/mdstat.
#[derive(Debug, PartialEq, Default)]
pub struct MdStat {
    pub name: String,
    /// `active`, `inactive`, or the sync in progress: `recovering`,
    /// `resyncing`, `checking`.
    pub state: String,
    pub disks_active: u64,
    pub disks_total: u64,
    pub disks_failed: u64,
    pub disks_spare: u64,
    pub blocks_total: u64,
    pub blocks_synced: u64,
}

/// Parses /proc/mdstat (`path` names it in errors). Each array is a line
/// `mdN : state personality disks...` followed by its status line, an
/// optional bitmap line, and the sync line if one runs.
pub fn parse_mdstat(text: &str, path: &Path) -> anyhow::Result<Vec<MdStat>> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty()
            || line.starts_with(' ')
            || line.starts_with("Personalities")
            || line.starts_with("unused")
        {
            continue;
        }
        let err = |what: String| anyhow!("parsing {}: {what}", path.display());
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, _, state, ..] = fields[..] else {
            return Err(err(format!("too few fields in array line {line:?}")));
        };
        // The device line, the status line, and at least one more.
        let (Some(status), Some(third), Some(fourth)) =
            (lines.get(i + 1), lines.get(i + 2), lines.get(i + 3))
        else {
            return Err(err(format!("too few lines for array {name}")));
        };
        let (active, total, size) =
            eval_status_line(line, status).map_err(|e| err(format!("array {name}: {e}")))?;
        let sync_line = if third.contains("bitmap") {
            fourth
        } else {
            third
        };
        let mut state = state.to_string();
        let mut synced = size;
        let recovering = sync_line.contains("recovery");
        let resyncing = sync_line.contains("resync");
        let checking = sync_line.contains("check");
        if recovering || resyncing || checking {
            state = if recovering {
                "recovering"
            } else if checking {
                "checking"
            } else {
                "resyncing"
            }
            .to_string();
            // A sync waiting its turn has synced nothing yet.
            synced = if sync_line.contains("PENDING") || sync_line.contains("DELAYED") {
                0
            } else {
                eval_sync_line(sync_line).map_err(|e| err(format!("array {name}: {e}")))?
            };
        }
        out.push(MdStat {
            name: name.to_string(),
            state,
            disks_active: active,
            disks_total: total,
            disks_failed: line.matches("(F)").count() as u64,
            disks_spare: line.matches("(S)").count() as u64,
            blocks_total: size,
            blocks_synced: synced,
        });
    }
    Ok(out)
}

/// (active disks, disks the array needs, size in blocks) from an array's
/// device line and status line.
fn eval_status_line(device: &str, status: &str) -> anyhow::Result<(u64, u64, u64)> {
    let size_field = status.split_whitespace().next().unwrap_or("");
    let size: u64 = size_field
        .parse()
        .map_err(|_| anyhow!("status line {status:?}: size {size_field:?} is not a number"))?;
    // Striped and linear arrays have no [n/m] counts: every listed disk,
    // the ones followed by a `[role]`, is needed and active.
    if device.contains("raid0") || device.contains("linear") {
        let disks = device.matches('[').count() as u64;
        return Ok((disks, disks, size));
    }
    if device.contains("inactive") {
        return Ok((0, 0, size));
    }
    let counts = status
        .find(" blocks ")
        .and_then(|at| last_disk_counts(&status[at..]));
    let Some((total, active)) = counts else {
        bail!("status line {status:?} has no [total/active] [U_] counts");
    };
    Ok((active, total, size))
}

/// The last `[total/active] [UU_]` of a status line.
fn last_disk_counts(s: &str) -> Option<(u64, u64)> {
    let mut found = None;
    let mut rest = s;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        rest = after;
        let Some(close) = after.find(']') else { break };
        let Some((total, active)) = after[..close].split_once('/') else {
            continue;
        };
        let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(total) || !all_digits(active) {
            continue;
        }
        let tail = &after[close + 1..];
        let Some(map) = tail.strip_prefix(" [") else {
            continue;
        };
        let map_len = map.bytes().take_while(|b| *b == b'U' || *b == b'_').count();
        if map_len == 0 || map.as_bytes().get(map_len) != Some(&b']') {
            continue;
        }
        // Numbers too big for u64 make the line unreadable, as ParseInt would.
        if let (Ok(t), Ok(a)) = (total.parse(), active.parse()) {
            found = Some((t, a));
        }
    }
    found
}

/// Blocks synced so far from a sync line, `[=>...]  recovery =  8.5%
/// (16775552/195310144) finish=17.0min speed=259783K/sec`. The percentage,
/// finish time and speed must be there too: a line without them is not
/// what the kernel writes, and node_exporter fails on it as well.
fn eval_sync_line(line: &str) -> anyhow::Result<u64> {
    let bad = || anyhow!("unexpected sync line {line:?}");
    let blocks = line
        .split('(')
        .skip(1)
        .find_map(|part| {
            let (done, rest) = part.split_once('/')?;
            let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
            let total = rest.split(')').next()?;
            (digits(done) && digits(total)).then_some(done)
        })
        .ok_or_else(bad)?;
    let blocks: u64 = blocks.parse().map_err(|_| bad())?;
    let pct = line
        .find("= ")
        .and_then(|at| {
            line[at + 2..]
                .rfind('%')
                .map(|end| &line[at + 2..at + 2 + end])
        })
        .ok_or_else(bad)?;
    pct.trim().parse::<f64>().map_err(|_| bad())?;
    let finish = line
        .find("finish=")
        .and_then(|at| {
            let rest = &line[at + 7..];
            rest.rfind("min").map(|end| &rest[..end])
        })
        .ok_or_else(bad)?;
    finish.parse::<f64>().map_err(|_| bad())?;
    let speed = line
        .find("speed=")
        .and_then(|at| {
            let rest = &line[at + 6..];
            rest.rfind(|c: char| c.is_ascii_uppercase())
                .filter(|&end| end > 0)
                .map(|end| &rest[..end])
        })
        .ok_or_else(bad)?;
    speed.parse::<f64>().map_err(|_| bad())?;
    Ok(blocks)
}

/// `raid_disks` and `degraded` of one /sys/block/mdN/md.
#[derive(Debug, PartialEq)]
pub struct MdRaid {
    pub device: String,
    pub disks: u64,
    /// Only levels with redundancy have it; 0 for the others.
    pub degraded: u64,
}

/// Reads an attribute; a missing one is [`NoData`] (node_exporter's
/// ErrNoData), any other error names the file.
fn attr(path: &Path) -> anyhow::Result<String> {
    crate::helpers::read_sysfs_attr(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            NoData(format!("{} does not exist", path.display())).into()
        } else {
            anyhow!("reading {}: {e}", path.display())
        }
    })
}

fn attr_u64(path: &Path) -> anyhow::Result<u64> {
    crate::helpers::parse_attr(&attr(path)?, path, "an unsigned integer")
}

/// The arrays under `block` (/sys/block), by name. Every attribute that
/// node_exporter's reader requires must be there, so that an array it would
/// fail on fails here too.
pub fn read_md_raids(block: &Path) -> anyhow::Result<Vec<MdRaid>> {
    let mut out = Vec::new();
    let names = match std::fs::read_dir(block) {
        Ok(rd) => {
            let mut v: Vec<String> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("md"))
                .collect();
            v.sort();
            v
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => bail!("listing {}: {e}", block.display()),
    };
    for name in names {
        let md = block.join(&name).join("md");
        if !md.exists() {
            continue;
        }
        let level = attr(&md.join("level"))?;
        attr(&md.join("array_state"))?;
        attr(&md.join("metadata_version"))?;
        let disks = attr_u64(&md.join("raid_disks"))?;
        attr(&md.join("uuid"))?;
        for dev in crate::helpers::read_dir_names(&md)? {
            if dev.starts_with("dev-") {
                attr(&md.join(dev).join("state"))?;
            }
        }
        if matches!(
            level.as_str(),
            "raid0" | "raid4" | "raid5" | "raid6" | "raid10"
        ) {
            attr_u64(&md.join("chunk_size"))?;
        }
        let mut degraded = 0;
        if matches!(
            level.as_str(),
            "raid1" | "raid4" | "raid5" | "raid6" | "raid10"
        ) {
            degraded = attr_u64(&md.join("degraded"))?;
            attr(&md.join("sync_action"))?;
            let path = md.join("sync_completed");
            let done = attr(&path)?;
            if done != "none" {
                let ok = done.split_once('/').is_some_and(|(a, b)| {
                    a.trim().parse::<u64>().is_ok() && b.trim().parse::<u64>().is_ok()
                });
                if !ok {
                    bail!(
                        "parsing {}: {done:?} is not \"done / total\"",
                        path.display()
                    );
                }
            }
        }
        out.push(MdRaid {
            device: name,
            disks,
            degraded,
        });
    }
    Ok(out)
}

const STATES: &[(&str, &str)] = &[
    ("active", "active"),
    ("inactive", "inactive"),
    ("recovering", "recovering"),
    ("resyncing", "resync"),
    ("checking", "check"),
];

impl Collector for Mdadm {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("mdstat");
        let text = crate::helpers::absent_if_missing(crate::helpers::read_file(&path))?;
        for md in parse_mdstat(&text, &path)? {
            let dev = md.name.as_str();
            out.gauge(
                "node_md_disks_required",
                "Total number of disks of device.",
                &[("device", dev)],
                md.disks_total as f64,
            );
            for (state, n) in [
                ("active", md.disks_active),
                ("failed", md.disks_failed),
                ("spare", md.disks_spare),
            ] {
                out.gauge(
                    "node_md_disks",
                    "Number of active/failed/spare disks of device.",
                    &[("device", dev), ("state", state)],
                    n as f64,
                );
            }
            for (key, label) in STATES {
                out.gauge(
                    "node_md_state",
                    "Indicates the state of md-device.",
                    &[("device", dev), ("state", label)],
                    if md.state == *key { 1.0 } else { 0.0 },
                );
            }
            out.gauge(
                "node_md_blocks",
                "Total number of blocks on device.",
                &[("device", dev)],
                md.blocks_total as f64,
            );
            out.gauge(
                "node_md_blocks_synced",
                "Number of blocks synced on device.",
                &[("device", dev)],
                md.blocks_synced as f64,
            );
        }
        for raid in read_md_raids(&self.paths.sys("block"))? {
            let labels = [("device", raid.device.as_str())];
            out.gauge(
                "node_md_raid_disks",
                "Number of raid disks on device.",
                &labels,
                raid.disks as f64,
            );
            out.gauge(
                "node_md_degraded",
                "Number of degraded disks on device.",
                &labels,
                raid.degraded as f64,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::write;

    const MDSTAT: &str = "Personalities : [raid1] [raid6] [raid0]

md3 : active raid6 sda1[8] sdh1[7] sdd1[10](S) sdc1[1](F)
      5853468288 blocks super 1.2 level 6, 64k chunk, algorithm 2 [8/7] [UUU_UUUU]
      bitmap: 0/30 pages [0KB], 65536KB chunk

md6 : active raid1 sdb2[2](F) sdc[1](S) sda2[0]
      195310144 blocks [2/1] [U_]
      [=>...................]  recovery =  8.5% (16775552/195310144) finish=17.0min speed=259783K/sec

md201 : active raid1 sda3[0] sdb3[1]
      1993728 blocks super 1.2 [2/2] [UU]
      [=>...................]  check =  5.7% (114176/1993728) finish=0.2min speed=114176K/sec

md9 : active raid1 sdc2[2] sdd2[3]
      523968 blocks super 1.2 [4/4] [UUUU]
        resync=DELAYED

md4 : inactive raid1 sda3[0](F) sdb3[1](S)
      4883648 blocks [2/2] [UU]

md12 : active raid0 sdc2[0] sdd2[1]
      3886394368 blocks super 1.2 512k chunks

unused devices: <none>
";

    fn md(name: &str, state: &str, d: [u64; 4], blocks: [u64; 2]) -> MdStat {
        MdStat {
            name: name.into(),
            state: state.into(),
            disks_active: d[0],
            disks_total: d[1],
            disks_failed: d[2],
            disks_spare: d[3],
            blocks_total: blocks[0],
            blocks_synced: blocks[1],
        }
    }

    #[test]
    fn parses_states_disks_and_sync_progress() {
        let got = parse_mdstat(MDSTAT, Path::new("mdstat")).unwrap();
        assert_eq!(
            got,
            [
                md("md3", "active", [7, 8, 1, 1], [5853468288, 5853468288]),
                md("md6", "recovering", [1, 2, 1, 1], [195310144, 16775552]),
                md("md201", "checking", [2, 2, 0, 0], [1993728, 114176]),
                md("md9", "resyncing", [4, 4, 0, 0], [523968, 0]),
                md("md4", "inactive", [0, 0, 1, 1], [4883648, 4883648]),
                md("md12", "active", [2, 2, 0, 0], [3886394368, 3886394368]),
            ]
        );
    }

    #[test]
    fn broken_mdstat_names_the_file() {
        for bad in [
            "md0 : active\n",
            "md0 : active raid1 sda[0]\n      many blocks [2/2] [UU]\n\n\n",
            "md0 : active raid1 sda[0]\n      12 blocks [2/x] [UU]\n\n\n",
            "md0 : active raid1 sda[0]\n      12 blocks [2/2] [UU]\n  recovery = 1% (x/2)\n\n",
            "md0 : active raid1 sda[0]\n      12 blocks [2/2] [UU]\n  recovery = 1% (1/2)\n\n",
        ] {
            let err = parse_mdstat(bad, Path::new("/proc/mdstat")).unwrap_err();
            assert!(err.to_string().contains("/proc/mdstat"), "{err}");
        }
    }

    #[test]
    fn sysfs_arrays_have_degraded_only_with_redundancy() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for (md, level) in [("md0", "raid0"), ("md1", "raid1")] {
            for (f, v) in [
                ("level", level),
                ("array_state", "clean"),
                ("metadata_version", "1.2"),
                ("raid_disks", "2"),
                ("uuid", "u"),
                ("chunk_size", "524288"),
                ("dev-sda/state", "in_sync"),
                ("degraded", "1"),
                ("sync_action", "idle"),
                ("sync_completed", "none"),
            ] {
                write(r, &format!("{md}/md/{f}"), &format!("{v}\n"));
            }
        }
        write(r, "sda/stat", "");
        let got = read_md_raids(r).unwrap();
        assert_eq!(
            got,
            [
                MdRaid {
                    device: "md0".into(),
                    disks: 2,
                    degraded: 0
                },
                MdRaid {
                    device: "md1".into(),
                    disks: 2,
                    degraded: 1
                },
            ]
        );
        write(r, "md1/md/sync_completed", "12 of 40\n");
        let err = read_md_raids(r).unwrap_err();
        assert!(err.to_string().contains("md1/md/sync_completed"), "{err}");
        std::fs::remove_file(r.join("md1/md/degraded")).unwrap();
        let err = read_md_raids(r).unwrap_err();
        assert!(crate::helpers::is_no_data(&err), "{err}");
    }
}
