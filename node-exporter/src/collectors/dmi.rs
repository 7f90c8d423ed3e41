//! `node_dmi_info` from /sys/class/dmi/id/, as node_exporter: one series
//! labelled with each DMI attribute the machine has (files only root may
//! read, such as `product_serial`, are left out for other users), invalid
//! UTF-8 shown as Go shows it. DMI does not change until a reboot, so the
//! attributes are read once, by the first scrape that succeeds; a machine
//! without DMI (most ARM boards) has no data.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Absent, Collector, Paths};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "dmi",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Dmi {
            paths: f.paths.clone(),
            labels: OnceLock::new(),
        }))
    },
};

/// (label, file under /sys/class/dmi/id), in label order.
const ATTRIBUTES: [(&str, &str); 20] = [
    ("bios_date", "bios_date"),
    ("bios_release", "bios_release"),
    ("bios_vendor", "bios_vendor"),
    ("bios_version", "bios_version"),
    ("board_asset_tag", "board_asset_tag"),
    ("board_name", "board_name"),
    ("board_serial", "board_serial"),
    ("board_vendor", "board_vendor"),
    ("board_version", "board_version"),
    ("chassis_asset_tag", "chassis_asset_tag"),
    ("chassis_serial", "chassis_serial"),
    ("chassis_vendor", "chassis_vendor"),
    ("chassis_version", "chassis_version"),
    ("product_family", "product_family"),
    ("product_name", "product_name"),
    ("product_serial", "product_serial"),
    ("product_sku", "product_sku"),
    ("product_uuid", "product_uuid"),
    ("product_version", "product_version"),
    ("system_vendor", "sys_vendor"),
];

const HELP: &str = "A metric with a constant '1' value labeled by bios_date, bios_release, \
bios_vendor, bios_version, board_asset_tag, board_name, board_serial, board_vendor, \
board_version, chassis_asset_tag, chassis_serial, chassis_vendor, chassis_version, \
product_family, product_name, product_serial, product_sku, product_uuid, product_version, \
system_vendor if provided by DMI.";

struct Dmi {
    paths: Paths,
    /// The labels, once read; empty when the machine has no DMI.
    labels: OnceLock<Vec<(&'static str, String)>>,
}

/// Reads the DMI attributes under `dir`: a missing file is left out, and so
/// is one we may not read; any other error names the file.
pub fn read_dmi(dir: &Path) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut out = Vec::new();
    for (label, file) in ATTRIBUTES {
        let path = dir.join(file);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let text = crate::helpers::to_valid_utf8(&bytes);
                out.push((label, text.trim().to_string()));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) => {}
            Err(e) => return Err(anyhow!("reading {}: {e}", path.display())),
        }
    }
    Ok(out)
}

impl Collector for Dmi {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let labels = match self.labels.get() {
            Some(l) => l,
            None => {
                let read = read_dmi(&self.paths.sys("class/dmi/id"))?;
                self.labels.get_or_init(|| read)
            }
        };
        if labels.is_empty() {
            return Err(Absent("no DMI information in /sys/class/dmi/id".into()).into());
        }
        let pairs: Vec<(&'static str, &str)> =
            labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        out.gauge("node_dmi_info", HELP, &pairs, 1.0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{render, write};

    fn collector(root: &Path) -> Dmi {
        Dmi {
            paths: Paths {
                sysfs: root.into(),
                ..Paths::default()
            },
            labels: OnceLock::new(),
        }
    }

    #[test]
    fn attributes_become_labels_with_invalid_utf8_as_go_shows_it() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "class/dmi/id/sys_vendor", "Dell Inc.\n");
        write(dir.path(), "class/dmi/id/chassis_version", "\n");
        std::fs::write(
            dir.path().join("class/dmi/id/product_version"),
            b"\xff\xfe[\xc3\n",
        )
        .unwrap();
        let mut set = MetricSet::new();
        collector(dir.path()).update(&mut set).unwrap();
        assert!(render(set).contains(
            "node_dmi_info{chassis_version=\"\",product_version=\"\u{FFFD}[\u{FFFD}\",system_vendor=\"Dell Inc.\"} 1\n"
        ));
    }

    #[test]
    fn read_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "class/dmi/id/bios_version", "1.0\n");
        let c = collector(dir.path());
        c.update(&mut MetricSet::new()).unwrap();
        write(dir.path(), "class/dmi/id/bios_version", "2.0\n");
        let mut set = MetricSet::new();
        c.update(&mut set).unwrap();
        assert!(render(set).contains("bios_version=\"1.0\""));
    }

    #[test]
    fn unreadable_attribute_fails_naming_the_file_and_no_dmi_is_no_data() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: reading it is EISDIR.
        std::fs::create_dir_all(dir.path().join("class/dmi/id/board_name")).unwrap();
        let err = collector(dir.path())
            .update(&mut MetricSet::new())
            .unwrap_err();
        assert!(err.to_string().contains("dmi/id/board_name"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = collector(empty.path())
            .update(&mut MetricSet::new())
            .unwrap_err();
        assert!(crate::helpers::is_no_data(&err), "{err}");
    }
}
