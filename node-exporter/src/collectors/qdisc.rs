//! `node_qdisc_*{device,kind}`: the statistics of each network interface's
//! root queueing discipline, dumped over rtnetlink (RTM_GETQDISC) as
//! node_exporter does through github.com/ema/qdisc, filtered by
//! `--collector.qdisc.device-include` / `-exclude` (or their deprecated
//! `qdisk` spellings). `--collector.qdisc.fixtures=DIR` reads
//! `DIR/results.json` instead, node_exporter's end-to-end test hook.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;
use serde::Deserialize;

use super::CollectorSpec;
use crate::cli::string_flag;
use crate::collector::Collector;
use crate::device_filter::DeviceFilter;
use crate::netlink::{attributes, u32_at, u64_at};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "qdisc",
    default_enabled: false,
    flags: || {
        vec![
            string_flag(
                "collector.qdisc.fixtures",
                "",
                "test fixtures to use for qdisc collector end-to-end testing",
            ),
            string_flag(
                "collector.qdisc.device-include",
                "",
                "Regexp of qdisc devices to include (mutually exclusive to device-exclude).",
            ),
            string_flag(
                "collector.qdisc.device-exclude",
                "",
                "Regexp of qdisc devices to exclude (mutually exclusive to device-include).",
            ),
            string_flag(
                "collector.qdisk.device-include",
                "",
                "DEPRECATED: Use collector.qdisc.device-include",
            ),
            string_flag(
                "collector.qdisk.device-exclude",
                "",
                "DEPRECATED: Use collector.qdisc.device-exclude",
            ),
        ]
    },
    build: |f| {
        let mut include = f.string("collector.qdisc.device-include");
        let mut exclude = f.string("collector.qdisc.device-exclude");
        for (old, new, value) in [
            ("include", "collector.qdisc.device-include", &mut include),
            ("exclude", "collector.qdisc.device-exclude", &mut exclude),
        ] {
            let old_flag = format!("collector.qdisk.device-{old}");
            let old_value = f.string(&old_flag);
            if old_value.is_empty() {
                continue;
            }
            if !value.is_empty() {
                anyhow::bail!("--{old_flag} and --{new} are mutually exclusive");
            }
            tracing::warn!("--{old_flag} is DEPRECATED and will be removed in 2.0.0, use --{new}");
            *value = old_value;
        }
        if !include.is_empty() && !exclude.is_empty() {
            anyhow::bail!(
                "collector.qdisc.device-include and collector.qdisc.device-exclude are mutaly exclusive"
            );
        }
        let fixtures = f.string("collector.qdisc.fixtures");
        Ok(Box::new(Qdisc {
            fixtures: (!fixtures.is_empty()).then(|| PathBuf::from(fixtures)),
            filter: DeviceFilter::new(
                "collector.qdisc.device-exclude",
                &exclude,
                "collector.qdisc.device-include",
                &include,
            )?,
        }))
    },
};

struct Qdisc {
    fixtures: Option<PathBuf>,
    filter: DeviceFilter,
}

/// One qdisc, the fields of ema/qdisc's `QdiscInfo` node_exporter uses (the
/// fixtures' JSON names them so).
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct QdiscInfo {
    #[serde(rename = "IfaceName")]
    pub iface: String,
    #[serde(rename = "Parent")]
    pub parent: u32,
    #[serde(rename = "Kind")]
    pub kind: String,
    #[serde(rename = "Bytes")]
    pub bytes: u64,
    #[serde(rename = "Packets")]
    pub packets: u32,
    #[serde(rename = "Drops")]
    pub drops: u32,
    #[serde(rename = "Requeues")]
    pub requeues: u32,
    #[serde(rename = "Overlimits")]
    pub overlimits: u32,
    #[serde(rename = "Qlen")]
    pub qlen: u32,
    #[serde(rename = "Backlog")]
    pub backlog: u32,
}

/// The fixtures' results.json (JSON is YAML, and the YAML parser is here).
pub fn parse_fixtures(text: &str, path: &Path) -> anyhow::Result<Vec<QdiscInfo>> {
    serde_yaml_ng::from_str::<Option<Vec<QdiscInfo>>>(text)
        .map(Option::unwrap_or_default)
        .map_err(|e| anyhow!("parsing {}: {e}", path.display()))
}

const TCA_KIND: u16 = 1;
const TCA_STATS: u16 = 3;
const TCA_STATS2: u16 = 7;
const TCA_STATS_BASIC: u16 = 1;
const TCA_STATS_QUEUE: u16 = 3;
/// sizeof(struct tcmsg).
const TCMSG_LEN: usize = 20;

/// One RTM_NEWQDISC message (after its netlink header) as ema/qdisc reads
/// it: the interface index, and the qdisc with its parent (root as 0),
/// kind and statistics, the legacy TCA_STATS overriding TCA_STATS2 where
/// both have a field, as the kernel sends them in that order.
pub fn parse_qdisc_message(payload: &[u8]) -> anyhow::Result<(u32, QdiscInfo)> {
    if payload.len() < TCMSG_LEN {
        return Err(anyhow!(
            "rtnetlink: short qdisc message, {} bytes",
            payload.len()
        ));
    }
    let short = || anyhow!("rtnetlink: short qdisc statistics");
    let index = u32_at(payload, 4).ok_or_else(short)?;
    let mut q = QdiscInfo {
        parent: u32_at(payload, 12).ok_or_else(short)?,
        ..QdiscInfo::default()
    };
    if q.parent == u32::MAX {
        q.parent = 0;
    }
    for (kind, data) in attributes(&payload[TCMSG_LEN..])? {
        match kind {
            TCA_KIND => {
                let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                q.kind = String::from_utf8_lossy(&data[..end]).into_owned();
            }
            TCA_STATS2 => {
                for (k, d) in attributes(data)? {
                    match k {
                        TCA_STATS_BASIC => {
                            q.bytes = u64_at(d, 0).ok_or_else(short)?;
                            q.packets = u32_at(d, 8).ok_or_else(short)?;
                        }
                        TCA_STATS_QUEUE => {
                            q.qlen = u32_at(d, 0).ok_or_else(short)?;
                            q.backlog = u32_at(d, 4).ok_or_else(short)?;
                            q.drops = u32_at(d, 8).ok_or_else(short)?;
                            q.requeues = u32_at(d, 12).ok_or_else(short)?;
                            q.overlimits = u32_at(d, 16).ok_or_else(short)?;
                        }
                        _ => {}
                    }
                }
            }
            TCA_STATS => {
                // struct tc_stats: bytes, packets, drops, overlimits, bps, pps, qlen, backlog.
                q.bytes = u64_at(data, 0).ok_or_else(short)?;
                q.packets = u32_at(data, 8).ok_or_else(short)?;
                q.drops = u32_at(data, 12).ok_or_else(short)?;
                q.overlimits = u32_at(data, 16).ok_or_else(short)?;
                q.qlen = u32_at(data, 28).ok_or_else(short)?;
                q.backlog = u32_at(data, 32).ok_or_else(short)?;
            }
            _ => {}
        }
    }
    Ok((index, q))
}

/// Every RTM_NEWQDISC message's payload of an rtnetlink qdisc dump.
fn dump_qdiscs(mut each: impl FnMut(&[u8]) -> anyhow::Result<()>) -> anyhow::Result<()> {
    const RTM_NEWQDISC: u16 = 36;
    const RTM_GETQDISC: u16 = 38;
    // A zeroed struct tcmsg: every qdisc of every interface.
    let tcmsg = [0u8; TCMSG_LEN];
    crate::netlink::dump(
        libc::SOCK_RAW,
        libc::NETLINK_ROUTE,
        RTM_GETQDISC,
        &tcmsg,
        |kind, payload| match kind {
            RTM_NEWQDISC => each(payload),
            _ => Ok(()),
        },
    )
}

/// The interface's name, as Go's `net.InterfaceByIndex`.
fn interface_name(index: u32) -> anyhow::Result<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has the IF_NAMESIZE bytes if_indextoname writes at most.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return Err(anyhow!(
            "interface index {index}: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name into buf.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Ok(name.to_string_lossy().into_owned())
}

impl Qdisc {
    fn qdiscs(&self) -> anyhow::Result<Vec<QdiscInfo>> {
        if let Some(dir) = &self.fixtures {
            let path = dir.join("results.json");
            let text = crate::helpers::read_to_string(&path)
                .map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
            return parse_fixtures(&text, &path);
        }
        let mut out = Vec::new();
        dump_qdiscs(|payload| {
            let (index, mut q) = parse_qdisc_message(payload)?;
            q.iface = interface_name(index)?;
            out.push(q);
            Ok(())
        })?;
        Ok(out)
    }
}

impl Collector for Qdisc {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let mut seen = std::collections::HashSet::new();
        for q in self.qdiscs()? {
            // Only the root qdisc of each interface, as node_exporter.
            if q.parent != 0 || self.filter.ignored(&q.iface) {
                continue;
            }
            // Two roots of one kind on one interface would be one series twice.
            if !seen.insert((q.iface.clone(), q.kind.clone())) {
                continue;
            }
            let labels = [("device", q.iface.as_str()), ("kind", q.kind.as_str())];
            for (name, help, v) in [
                (
                    "node_qdisc_bytes_total",
                    "Number of bytes sent.",
                    q.bytes as f64,
                ),
                (
                    "node_qdisc_packets_total",
                    "Number of packets sent.",
                    f64::from(q.packets),
                ),
                (
                    "node_qdisc_drops_total",
                    "Number of packets dropped.",
                    f64::from(q.drops),
                ),
                (
                    "node_qdisc_requeues_total",
                    "Number of packets dequeued, not transmitted, and requeued.",
                    f64::from(q.requeues),
                ),
                (
                    "node_qdisc_overlimits_total",
                    "Number of overlimit packets.",
                    f64::from(q.overlimits),
                ),
            ] {
                out.counter(name, help, &labels, v);
            }
            out.gauge(
                "node_qdisc_current_queue_length",
                "Number of packets currently in queue to be sent.",
                &labels,
                f64::from(q.qlen),
            );
            out.gauge(
                "node_qdisc_backlog",
                "Number of bytes currently in queue to be sent.",
                &labels,
                f64::from(q.backlog),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{collect, write};

    fn attr(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut v = ((4 + data.len()) as u16).to_ne_bytes().to_vec();
        v.extend(kind.to_ne_bytes());
        v.extend(data);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn message(index: u32, parent: u32, with_legacy: bool) -> Vec<u8> {
        let mut m = vec![0u8; TCMSG_LEN];
        m[4..8].copy_from_slice(&index.to_ne_bytes());
        m[12..16].copy_from_slice(&parent.to_ne_bytes());
        m.extend(attr(TCA_KIND, b"fq_codel\0"));
        let mut basic = 1234u64.to_ne_bytes().to_vec();
        basic.extend(10u32.to_ne_bytes());
        basic.extend(0u32.to_ne_bytes());
        let queue: Vec<u8> = [1u32, 2, 3, 4, 5]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        let mut stats2 = attr(TCA_STATS_BASIC, &basic);
        stats2.extend(attr(TCA_STATS_QUEUE, &queue));
        m.extend(attr(TCA_STATS2, &stats2));
        if with_legacy {
            let mut legacy = 999u64.to_ne_bytes().to_vec();
            legacy.extend(
                [9u32, 8, 7, 0, 0, 6, 5]
                    .iter()
                    .flat_map(|v| v.to_ne_bytes()),
            );
            m.extend(attr(TCA_STATS, &legacy));
        }
        m
    }

    #[test]
    fn netlink_messages_root_and_legacy_stats() {
        let (index, q) = parse_qdisc_message(&message(2, u32::MAX, false)).unwrap();
        assert_eq!(index, 2);
        assert_eq!(
            q,
            QdiscInfo {
                iface: String::new(),
                parent: 0,
                kind: "fq_codel".into(),
                bytes: 1234,
                packets: 10,
                qlen: 1,
                backlog: 2,
                drops: 3,
                requeues: 4,
                overlimits: 5,
            }
        );
        let (_, q) = parse_qdisc_message(&message(2, 0x10000, true)).unwrap();
        assert_eq!(
            (q.parent, q.bytes, q.packets, q.drops, q.requeues),
            (0x10000, 999, 9, 8, 4)
        );
        assert_eq!((q.overlimits, q.qlen, q.backlog), (7, 6, 5));
        let whole = message(2, 0, true);
        for cut in [0, 10, TCMSG_LEN + 2, whole.len() - 3] {
            assert!(parse_qdisc_message(&whole[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn the_host_loopback_has_a_root_qdisc() {
        // Every interface has a root qdisc, `noqueue` on lo at least.
        let mut names = Vec::new();
        dump_qdiscs(|p| {
            let (index, q) = parse_qdisc_message(p)?;
            if q.parent == 0 {
                names.push(interface_name(index)?);
            }
            Ok(())
        })
        .unwrap();
        assert!(names.iter().any(|n| n == "lo"), "{names:?}");
    }

    #[test]
    fn fixtures_filtered_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "results.json",
            r#"[{"IfaceName": "wlan0", "Bytes": 42, "Packets": 42, "Requeues": 1, "Kind": "fq", "Drops": 1},
                {"IfaceName": "eth0", "Bytes": 83, "Kind": "pfifo_fast"},
                {"IfaceName": "eth0", "Parent": 65537, "Kind": "fq_codel"}]"#,
        );
        let run = |include: &str, exclude: &str| {
            collect(&Qdisc {
                fixtures: Some(dir.path().into()),
                filter: DeviceFilter::new("x", exclude, "i", include).unwrap(),
            })
        };
        let text = run("", "").unwrap();
        for want in [
            "node_qdisc_bytes_total{device=\"eth0\",kind=\"pfifo_fast\"} 83\n",
            "node_qdisc_drops_total{device=\"wlan0\",kind=\"fq\"} 1\n",
            "node_qdisc_backlog{device=\"wlan0\",kind=\"fq\"} 0\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        assert!(!text.contains("fq_codel"), "{text}");
        assert!(!run("^wlan", "").unwrap().contains("eth0"));
        assert!(!run("", "^wlan").unwrap().contains("wlan0"));
        write(
            dir.path(),
            "results.json",
            "[{\"IfaceName\": 3, \"Bytes\": \"x\"}",
        );
        let err = run("", "").unwrap_err().to_string();
        assert!(err.contains("results.json"), "{err}");
    }
}
