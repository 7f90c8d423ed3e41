//! `node_vmstat_<field>` from /proc/vmstat, untyped as in node_exporter (the
//! file mixes counters and gauges and says nothing about which is which),
//! limited to the fields `--collector.vmstat.fields` matches.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::{sanitize_name, MetricSet};
use regex::Regex;

use super::CollectorSpec;
use crate::cli::string_flag;
use crate::collector::{Collector, Paths};
use crate::helpers::{parse_f64, read_kept};

const DEFAULT_FIELDS: &str = "^(oom_kill|pgpg|pswp|pg.*fault).*";

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "vmstat",
    default_enabled: true,
    flags: || {
        vec![string_flag(
            "collector.vmstat.fields",
            DEFAULT_FIELDS,
            "Regexp of fields to return for vmstat collector.",
        )]
    },
    build: |f| {
        Ok(Box::new(Vmstat {
            paths: f.paths.clone(),
            fields: f.regex("collector.vmstat.fields")?,
            names: Default::default(),
        }))
    },
};

/// Parses /proc/vmstat into (field, value) pairs, in file order. Every value
/// must be a number, matched by the field filter or not, as node_exporter
/// checks them all.
pub fn parse_vmstat<'a>(text: &'a str, path: &Path) -> anyhow::Result<Vec<(&'a str, f64)>> {
    let mut out = Vec::with_capacity(200);
    for (i, line) in crate::helpers::lines(text).enumerate() {
        let mut fields = line.split_ascii_whitespace();
        let Some(name) = fields.next() else { continue };
        let (Some(value), None) = (fields.next(), fields.next()) else {
            return Err(anyhow!(
                "parsing {} line {}: expected \"<field> <value>\", found {line:?}",
                path.display(),
                i + 1
            ));
        };
        out.push((name, parse_f64(value, path, i + 1, name)?));
    }
    if out.is_empty() {
        return Err(anyhow!("parsing {}: no fields found", path.display()));
    }
    Ok(out)
}

struct Vmstat {
    paths: Paths,
    /// `None`: an empty `--collector.vmstat.fields`, which matches everything.
    fields: Option<Regex>,
    /// Per line: filtered out, or its metric name and help.
    names: crate::helpers::KeyNames,
}

impl Collector for Vmstat {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("vmstat");
        let text = read_kept(&path)?;
        let mut names = self.names.in_order();
        for (name, value) in parse_vmstat(&text, &path)? {
            let Some((metric, help)) = names.get(name, || {
                if self.fields.as_ref().is_some_and(|re| !re.is_match(name)) {
                    return None;
                }
                Some((
                    sanitize_name(&format!("node_vmstat_{name}")),
                    format!("/proc/vmstat information field {name}."),
                ))
            }) else {
                continue;
            };
            out.untyped(metric, help, &[], value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/proc/vmstat";

    #[test]
    fn parses_pairs_in_order() {
        let v = parse_vmstat("nr_free_pages 123\npgfault 9\n\n", Path::new(P)).unwrap();
        assert_eq!(v, vec![("nr_free_pages", 123.0), ("pgfault", 9.0)]);
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let err = parse_vmstat("pgfault 1\npgmajfault\n", Path::new(P))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/proc/vmstat line 2"), "{err}");
        let err = parse_vmstat("pgfault 1\npgmajfault x1\n", Path::new(P))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("pgmajfault"),
            "{err}"
        );
        assert!(parse_vmstat("pgfault 1 2\n", Path::new(P)).is_err());
        assert!(parse_vmstat("", Path::new(P)).is_err());
    }

    #[test]
    fn default_filter_keeps_node_exporter_fields() {
        let re = Regex::new(DEFAULT_FIELDS).unwrap();
        for keep in [
            "oom_kill",
            "pgpgin",
            "pgpgout",
            "pswpin",
            "pswpout",
            "pgfault",
            "pgmajfault",
        ] {
            assert!(re.is_match(keep), "{keep}");
        }
        for drop in ["nr_free_pages", "pgscan_kswapd", "workingset_refault_anon"] {
            assert!(!re.is_match(drop), "{drop}");
        }
    }
}
