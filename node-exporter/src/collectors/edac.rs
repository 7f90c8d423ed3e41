//! `node_edac_*`: memory error counters of the EDAC memory controllers in
//! /sys/devices/system/edac/mc/mc<N>/, per controller, per csrow (with the
//! controller's "noinfo" counts as csrow `unknown`) and per csrow channel
//! (labelled with its DIMM), as node_exporter. A machine without EDAC has
//! no controllers and so no series, and the collector succeeds, as in
//! node_exporter; a counter that is not a number fails it naming the file.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "edac",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Edac {
            paths: f.paths.clone(),
        }))
    },
};

struct Edac {
    paths: Paths,
}

/// A counter file's content (Go's `ParseUint` of the trimmed text).
pub fn parse_count(text: &str, path: &Path) -> anyhow::Result<u64> {
    crate::helpers::parse_attr(text, path, "a count")
}

fn read_count(path: &Path) -> anyhow::Result<u64> {
    let text = crate::helpers::read_to_string(path)
        .map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
    parse_count(&text, path)
}

/// [`crate::helpers::numbered_entries`] with only the leading digits, as
/// node_exporter's regexps (`mc([0-9]*)`) take them.
fn numbered(dir: &Path, prefix: &str) -> anyhow::Result<Vec<(String, String)>> {
    Ok(crate::helpers::numbered_entries(dir, prefix)?
        .into_iter()
        .map(|(name, rest)| {
            let digits = rest.chars().take_while(char::is_ascii_digit).collect();
            (name, digits)
        })
        .collect())
}

/// The channels of a csrow that have `ch<N>_<kind>_count`, sorted.
fn channels(csrow: &Path, kind: &str) -> anyhow::Result<Vec<String>> {
    let suffix = format!("_{kind}_count");
    Ok(numbered(csrow, "ch")?
        .into_iter()
        .filter(|(name, digits)| name == &format!("ch{digits}{suffix}"))
        .map(|(_, digits)| digits)
        .collect())
}

impl Collector for Edac {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let mc = self.paths.sys("devices/system/edac/mc");
        let controllers = numbered(&mc, "mc")?;
        let found = !controllers.is_empty();
        for (name, controller) in controllers {
            let dir = mc.join(&name);
            let c = controller.as_str();
            out.counter(
                "node_edac_correctable_errors_total",
                "Total correctable memory errors.",
                &[("controller", c)],
                read_count(&dir.join("ce_count"))? as f64,
            );
            out.counter(
                "node_edac_uncorrectable_errors_total",
                "Total uncorrectable memory errors.",
                &[("controller", c)],
                read_count(&dir.join("ue_count"))? as f64,
            );
            let mut rows = vec![("unknown".to_string(), None)];
            for (row_name, row) in numbered(&dir, "csrow")? {
                rows.push((row, Some(dir.join(row_name))));
            }
            for (row, row_dir) in rows {
                let (ce, ue) = match &row_dir {
                    Some(d) => (d.join("ce_count"), d.join("ue_count")),
                    None => (dir.join("ce_noinfo_count"), dir.join("ue_noinfo_count")),
                };
                let labels = [("controller", c), ("csrow", row.as_str())];
                out.counter(
                    "node_edac_csrow_correctable_errors_total",
                    "Total correctable memory errors for this csrow.",
                    &labels,
                    read_count(&ce)? as f64,
                );
                out.counter(
                    "node_edac_csrow_uncorrectable_errors_total",
                    "Total uncorrectable memory errors for this csrow.",
                    &labels,
                    read_count(&ue)? as f64,
                );
                if let Some(d) = row_dir {
                    self.channels(out, &d, c, &row)?;
                }
            }
        }
        crate::collector::devices_found(found)
    }
}

impl Edac {
    /// The per-channel counters of one csrow: the channels are those with
    /// a `ch<N>_ce_count`, a counter that cannot be read is left out, and
    /// the DIMM is named `mc<C>_csrow<R>_channel<N>`, all as node_exporter.
    fn channels(
        &self,
        out: &mut MetricSet,
        csrow: &Path,
        c: &str,
        row: &str,
    ) -> anyhow::Result<()> {
        for ch in channels(csrow, "ce")? {
            let dimm = format!("mc{c}_csrow{row}_channel{ch}");
            let labels = [
                ("channel", ch.as_str()),
                ("controller", c),
                ("csrow", row),
                ("dimm_label", dimm.as_str()),
            ];
            for (kind, name, help) in [
                (
                    "ce",
                    "node_edac_channel_correctable_errors_total",
                    "Total correctable memory errors for this channel.",
                ),
                (
                    "ue",
                    "node_edac_channel_uncorrectable_errors_total",
                    "Total uncorrectable memory errors for this channel.",
                ),
            ] {
                let path = csrow.join(format!("ch{ch}_{kind}_count"));
                match read_count(&path) {
                    Ok(v) => out.counter(name, help, &labels, v as f64),
                    Err(e) => tracing::debug!(error = %e, "edac: skipping channel counter"),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{collect, sysfs_at, write};

    fn run(root: &Path) -> anyhow::Result<String> {
        collect(&Edac {
            paths: sysfs_at(root),
        })
    }

    #[test]
    fn controller_csrow_and_channel_counters() {
        let dir = tempfile::tempdir().unwrap();
        let mc = "devices/system/edac/mc/mc0";
        for (f, v) in [
            ("ce_count", "1"),
            ("ue_count", "5"),
            ("ce_noinfo_count", "2"),
            ("ue_noinfo_count", "6"),
            ("csrow0/ce_count", "3"),
            ("csrow0/ue_count", "4"),
            ("csrow0/ch1_ce_count", "0"),
            ("csrow0/ch1_ue_count", "7"),
            // No ch2_ce_count: channel 2 is not reported.
            ("csrow0/ch2_ue_count", "8"),
        ] {
            write(dir.path(), &format!("{mc}/{f}"), &format!("{v}\n"));
        }
        let text = run(dir.path()).unwrap();
        for want in [
            "node_edac_correctable_errors_total{controller=\"0\"} 1\n",
            "node_edac_csrow_uncorrectable_errors_total{controller=\"0\",csrow=\"unknown\"} 6\n",
            "node_edac_csrow_correctable_errors_total{controller=\"0\",csrow=\"0\"} 3\n",
            "node_edac_channel_correctable_errors_total{channel=\"1\",controller=\"0\",csrow=\"0\",dimm_label=\"mc0_csrow0_channel1\"} 0\n",
            "node_edac_channel_uncorrectable_errors_total{channel=\"1\",controller=\"0\",csrow=\"0\",dimm_label=\"mc0_csrow0_channel1\"} 7\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        assert!(!text.contains("channel=\"2\""), "{text}");
    }

    #[test]
    fn no_edac_is_no_series_and_garbage_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(run(dir.path()).unwrap(), "");
        write(dir.path(), "devices/system/edac/mc/mc0/ce_count", "lots\n");
        let err = run(dir.path()).unwrap_err().to_string();
        assert!(err.contains("mc0/ce_count"), "{err}");
    }
}
