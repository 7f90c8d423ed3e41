//! `node_nvme_*` from /sys/class/nvme/<controller>/: `node_nvme_info` with
//! the controller's strings, and per namespace (`nvme0n1`, `nvme0c0n1`:
//! nsid 1) its size, used space and logical block size, as node_exporter
//! computes them (`size` and `nuse` times the logical block size). A
//! missing string is an empty label; a namespace without its numbers is
//! left out; a number that is not one fails the collector naming the file.
//! No /sys/class/nvme is "no data".

use std::path::Path;

use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::{read_dir_names, read_optional_attr};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "nvme",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Nvme {
            paths: f.paths.clone(),
        }))
    },
};

struct Nvme {
    paths: Paths,
}

/// A sysfs string; empty when missing, an error naming the file otherwise.
fn read_string(path: &Path) -> anyhow::Result<String> {
    Ok(read_optional_attr(path)?.unwrap_or_default())
}

/// A sysfs number; `None` when missing.
fn read_number(path: &Path) -> anyhow::Result<Option<u64>> {
    read_optional_attr(path)?
        .map(|v| parse_number(&v, path))
        .transpose()
}

pub fn parse_number(text: &str, path: &Path) -> anyhow::Result<u64> {
    crate::helpers::parse_attr(text, path, "a number")
}

/// The namespace id of a namespace directory of `controller`
/// (`nvme0n1` or, with multipath, `nvme0c0n1` -> `1`); `None` for others.
pub fn namespace_id<'a>(controller: &str, entry: &'a str) -> Option<&'a str> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re =
        RE.get_or_init(|| regex::Regex::new(r"^nvme(\d+)(?:c\d+)?n(\d+)$").expect("valid regex"));
    let caps = re.captures(entry)?;
    let number = controller.strip_prefix("nvme")?;
    (caps.get(1)?.as_str() == number).then(|| caps.get(2).map(|m| m.as_str()))?
}

impl Collector for Nvme {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let class = self.paths.sys("class/nvme");
        for device in crate::helpers::absent_if_missing(read_dir_names(&class))? {
            let dir = class.join(&device);
            let [cntlid, firmware, model, serial, state] =
                ["cntlid", "firmware_rev", "model", "serial", "state"]
                    .map(|f| read_string(&dir.join(f)));
            out.gauge(
                "node_nvme_info",
                "Non-numeric data from /sys/class/nvme/<device>, value is always 1.",
                &[
                    ("cntlid", &cntlid?),
                    ("device", &device),
                    ("firmware_revision", &firmware?),
                    ("model", &model?),
                    ("serial", &serial?),
                    ("state", &state?),
                ],
                1.0,
            );
            for entry in read_dir_names(&dir)? {
                let Some(nsid) = namespace_id(&device, &entry) else {
                    continue;
                };
                self.namespace(out, &dir.join(&entry), &device, nsid)?;
            }
        }
        Ok(())
    }
}

impl Nvme {
    fn namespace(
        &self,
        out: &mut MetricSet,
        ns: &Path,
        device: &str,
        nsid: &str,
    ) -> anyhow::Result<()> {
        let labels = [("device", device), ("nsid", nsid)];
        let ana_state = read_string(&ns.join("ana_state"))?;
        out.gauge(
            "node_nvme_namespace_info",
            "Information about NVMe namespaces. Value is always 1",
            &[
                ("ana_state", &ana_state),
                ("device", device),
                ("nsid", nsid),
            ],
            1.0,
        );
        let (Some(size), Some(nuse), Some(block)) = (
            read_number(&ns.join("size"))?,
            read_number(&ns.join("nuse"))?,
            read_number(&ns.join("queue/logical_block_size"))?,
        ) else {
            tracing::debug!(namespace = %ns.display(), "nvme: namespace without size, nuse or block size");
            return Ok(());
        };
        let (size, nuse, block) = (size as f64, nuse as f64, block as f64);
        out.gauge(
            "node_nvme_namespace_capacity_bytes",
            "Capacity of the NVMe namespace in bytes. Computed as namespace_size * namespace_logical_block_size",
            &labels,
            size * block,
        );
        out.gauge(
            "node_nvme_namespace_logical_block_size_bytes",
            "Logical block size of the NVMe namespace in bytes. Usually 4Kb. Available in /sys/class/nvme/<device>/<namespace>/queue/logical_block_size",
            &labels,
            block,
        );
        out.gauge(
            "node_nvme_namespace_size_bytes",
            "Size of the NVMe namespace in bytes. Available in /sys/class/nvme/<device>/<namespace>/size",
            &labels,
            size * block,
        );
        out.gauge(
            "node_nvme_namespace_used_bytes",
            "Used space of the NVMe namespace in bytes. Available in /sys/class/nvme/<device>/<namespace>/nuse",
            &labels,
            nuse * block,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{collect, sysfs_at, write};

    #[test]
    fn namespace_ids() {
        assert_eq!(namespace_id("nvme0", "nvme0n1"), Some("1"));
        assert_eq!(namespace_id("nvme0", "nvme0c0n12"), Some("12"));
        assert_eq!(namespace_id("nvme0", "nvme1n1"), None);
        for other in ["device", "power", "nvme0", "nvme0n", "nvmen1", "ng0n1"] {
            assert_eq!(namespace_id("nvme0", other), None, "{other}");
        }
    }

    #[test]
    fn controller_info_and_namespace_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(
            r,
            "class/nvme/nvme0/model",
            "Samsung SSD 970 PRO 512GB   \n",
        );
        write(r, "class/nvme/nvme0/state", "live\n");
        write(r, "class/nvme/nvme0/nvme0n1/size", "1000\n");
        write(r, "class/nvme/nvme0/nvme0n1/nuse", "10\n");
        write(
            r,
            "class/nvme/nvme0/nvme0n1/queue/logical_block_size",
            "4096\n",
        );
        let text = collect(&Nvme { paths: sysfs_at(r) }).unwrap();
        for want in [
            "node_nvme_info{cntlid=\"\",device=\"nvme0\",firmware_revision=\"\",model=\"Samsung SSD 970 PRO 512GB\",serial=\"\",state=\"live\"} 1\n",
            "node_nvme_namespace_info{ana_state=\"\",device=\"nvme0\",nsid=\"1\"} 1\n",
            "node_nvme_namespace_size_bytes{device=\"nvme0\",nsid=\"1\"} 4.096e+06\n",
            "node_nvme_namespace_used_bytes{device=\"nvme0\",nsid=\"1\"} 40960\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        write(r, "class/nvme/nvme0/nvme0n1/nuse", "lots\n");
        let err = collect(&Nvme { paths: sysfs_at(r) })
            .unwrap_err()
            .to_string();
        assert!(err.contains("nvme0n1/nuse"), "{err}");
    }
}
