//! `node_watchdog_*` from /sys/class/watchdog/<name>/, as node_exporter
//! (procfs' `WatchdogClass`): each integer attribute the device has becomes
//! a gauge, a missing one is left out, and one that is not an integer fails
//! the collector naming the file; `node_watchdog_info` carries the string
//! attributes (empty when missing). No /sys/class/watchdog is "no data".

use std::path::Path;

use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::{read_dir_names, read_optional_attr};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "watchdog",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Watchdog {
            paths: f.paths.clone(),
        }))
    },
};

struct Watchdog {
    paths: Paths,
}

/// (attribute file, metric name): the integer attributes, in
/// node_exporter's order.
const INT_ATTRS: [(&str, &str); 7] = [
    ("bootstatus", "node_watchdog_bootstatus"),
    ("fw_version", "node_watchdog_fw_version"),
    ("nowayout", "node_watchdog_nowayout"),
    ("timeleft", "node_watchdog_timeleft_seconds"),
    ("timeout", "node_watchdog_timeout_seconds"),
    ("pretimeout", "node_watchdog_pretimeout_seconds"),
    ("access_cs0", "node_watchdog_access_cs0"),
];

/// The string attributes, each a label of `node_watchdog_info` (named as
/// the file), in the label order node_exporter prints.
const STRING_ATTRS: [&str; 5] = [
    "identity",
    "options",
    "pretimeout_governor",
    "state",
    "status",
];

/// An integer attribute's content (Go's `ParseInt(.., 10, 64)` of the
/// trimmed text), naming the file on error.
pub fn parse_attr(text: &str, path: &Path) -> anyhow::Result<i64> {
    crate::helpers::parse_attr(text, path, "an integer")
}

impl Collector for Watchdog {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let class = self.paths.sys("class/watchdog");
        let names = read_dir_names(&class)?;
        let found = !names.is_empty();
        for name in names {
            let dir = class.join(&name);
            let labels = [("name", name.as_str())];
            for (file, metric) in INT_ATTRS {
                let path = dir.join(file);
                if let Some(text) = read_optional_attr(&path)? {
                    let help = format!("Value of /sys/class/watchdog/<watchdog>/{file}");
                    out.gauge(metric, help, &labels, parse_attr(&text, &path)? as f64);
                }
            }
            let mut values = Vec::with_capacity(STRING_ATTRS.len());
            for file in STRING_ATTRS {
                values.push(read_optional_attr(&dir.join(file))?.unwrap_or_default());
            }
            let mut info: Vec<(&'static str, &str)> = STRING_ATTRS
                .iter()
                .zip(&values)
                .map(|(label, v)| (*label, v.as_str()))
                .collect();
            info.insert(1, ("name", &name));
            out.gauge(
                "node_watchdog_info",
                "Info of /sys/class/watchdog/<watchdog>",
                &info,
                1.0,
            );
        }
        crate::collector::devices_found(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{collect, sysfs_at, write};

    fn run(root: &Path) -> anyhow::Result<String> {
        collect(&Watchdog {
            paths: sysfs_at(root),
        })
    }

    #[test]
    fn attributes_present_become_gauges_and_info_labels() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "class/watchdog/watchdog0/timeout", "60\n");
        write(r, "class/watchdog/watchdog0/identity", "iTCO_wdt\n");
        std::fs::create_dir_all(r.join("class/watchdog/watchdog1")).unwrap();
        let text = run(r).unwrap();
        assert!(text.contains("node_watchdog_timeout_seconds{name=\"watchdog0\"} 60\n"));
        assert!(!text.contains("node_watchdog_timeleft_seconds"), "{text}");
        assert!(text.contains(
            "node_watchdog_info{identity=\"iTCO_wdt\",name=\"watchdog0\",options=\"\",pretimeout_governor=\"\",state=\"\",status=\"\"} 1\n"
        ), "{text}");
        assert!(text.contains(
            "node_watchdog_info{identity=\"\",name=\"watchdog1\",options=\"\",pretimeout_governor=\"\",state=\"\",status=\"\"} 1\n"
        ), "{text}");
    }

    #[test]
    fn a_value_that_is_not_an_integer_fails_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "class/watchdog/watchdog0/timeleft", "soon\n");
        let err = run(dir.path()).unwrap_err().to_string();
        assert!(err.contains("watchdog0/timeleft"), "{err}");
    }

    #[test]
    fn no_watchdog_class_is_no_data() {
        let dir = tempfile::tempdir().unwrap();
        let err = run(dir.path()).unwrap_err();
        assert!(crate::helpers::is_no_data(&err), "{err}");
    }
}
