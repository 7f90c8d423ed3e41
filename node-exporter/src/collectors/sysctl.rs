//! `node_sysctl_*`: the sysctls named by `--collector.sysctl.include`
//! (numbers: `node_sysctl_<name>`, one series per value with an `index`
//! label when there are several, or one metric per value when the flag
//! names them, `fs.file-nr:total,current,max`) and by
//! `--collector.sysctl.include-info` (strings: `node_sysctl_info` with the
//! value as a label), read from /proc/sys as node_exporter reads them. With
//! neither flag the collector reads nothing.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::{valid_metric_name, MetricSet};

use super::CollectorSpec;
use crate::cli::repeated_flag;
use crate::collector::{Collector, Paths};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "sysctl",
    default_enabled: false,
    flags: || {
        vec![
            repeated_flag(
                "collector.sysctl.include",
                "",
                "Select sysctl metrics to include",
            ),
            repeated_flag(
                "collector.sysctl.include-info",
                "",
                "Select sysctl metrics to include as info metrics",
            ),
        ]
    },
    build: |f| {
        let mut sysctls = Vec::new();
        for (flag, numeric) in [
            ("collector.sysctl.include", true),
            ("collector.sysctl.include-info", false),
        ] {
            let includes = f.strings(flag);
            for (i, include) in includes.iter().enumerate() {
                // The same sysctl twice would give each series twice, which
                // fails every scrape: refused at start instead.
                if includes[..i].contains(include) {
                    anyhow::bail!("--{flag}={include} is given twice");
                }
                sysctls.push(Sysctl::new(include, numeric)?);
            }
        }
        Ok(Box::new(Sysctls {
            paths: f.paths.clone(),
            sysctls,
        }))
    },
};

struct Sysctls {
    paths: Paths,
    sysctls: Vec<Sysctl>,
}

/// One `--collector.sysctl.include[-info]` value, its names made once.
#[derive(Debug)]
struct Sysctl {
    numeric: bool,
    /// `fs.file-nr`.
    name: String,
    /// `node_sysctl_fs_file_nr`.
    metric: String,
    /// `sysctl fs.file-nr`.
    help: String,
    /// The names given to the values, with each one's metric name and help.
    keys: Vec<(String, String, String)>,
}

impl Sysctl {
    fn new(include: &str, numeric: bool) -> anyhow::Result<Sysctl> {
        let (name, keys) = match include.split_once(':') {
            Some((name, keys)) => (name, keys.split(',').collect()),
            None => (include, Vec::new()),
        };
        let metric = format!(
            "node_sysctl_{}",
            crate::helpers::go_sanitize_metric_name(name)
        );
        let keys = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let m = format!("{metric}_{key}");
                if !valid_metric_name(&m) {
                    return Err(anyhow!(
                        "--collector.sysctl.include={include}: {key:?} makes no metric name"
                    ));
                }
                Ok((key.to_string(), m, format!("sysctl {name}, field {i}")))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Sysctl {
            numeric,
            name: name.to_string(),
            help: format!("sysctl {name}"),
            metric,
            keys,
        })
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`: an optional sign, then decimal,
/// `0x` hexadecimal, `0o`/leading-0 octal or `0b` binary.
pub fn parse_int(s: &str) -> Option<i64> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let lower = digits.to_ascii_lowercase();
    let (body, radix) = if let Some(b) = lower.strip_prefix("0x") {
        (b.to_string(), 16)
    } else if let Some(b) = lower.strip_prefix("0b") {
        (b.to_string(), 2)
    } else if let Some(b) = lower.strip_prefix("0o") {
        (b.to_string(), 8)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (lower[1..].to_string(), 8)
    } else {
        (lower, 10)
    };
    if body.is_empty() || body.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = i128::from_str_radix(&body, radix).ok()?;
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// A sysctl file's whitespace-separated values, as numbers when `numeric`.
pub fn parse_values(text: &str, numeric: bool, path: &Path) -> anyhow::Result<Vec<String>> {
    let values: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    if numeric {
        for (i, v) in values.iter().enumerate() {
            parse_int(v).ok_or_else(|| {
                anyhow!(
                    "parsing {}: field {i} ({v:?}) is not a valid int",
                    path.display()
                )
            })?;
        }
    }
    Ok(values)
}

impl Sysctls {
    fn one(&self, s: &Sysctl, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self
            .paths
            .proc(&format!("sys/{}", s.name.replace('.', "/")));
        let text = crate::helpers::read_to_string(&path)
            .map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
        let values = parse_values(&text, s.numeric, &path)?;
        let number = |v: &str| parse_int(v).unwrap_or_default() as f64;
        match values.len() {
            0 => return Err(anyhow!("sysctl {} has no values", s.name)),
            1 if !s.keys.is_empty() => {
                let keys: Vec<&str> = s.keys.iter().map(|k| k.0.as_str()).collect();
                return Err(anyhow!(
                    "sysctl {} has only one value, but expected {keys:?}",
                    s.name
                ));
            }
            1 if s.numeric => {
                out.untyped(s.metric.clone(), s.help.clone(), &[], number(&values[0]))
            }
            n if !s.keys.is_empty() && n != s.keys.len() => {
                return Err(anyhow!(
                    "sysctl {} has {n} keys but only {} defined in flag",
                    s.name,
                    s.keys.len()
                ))
            }
            _ if !s.keys.is_empty() => {
                if !s.numeric {
                    return Err(anyhow!("mapped sysctl string values not supported"));
                }
                for ((_, metric, help), v) in s.keys.iter().zip(&values) {
                    out.untyped(metric.clone(), help.clone(), &[], number(v));
                }
            }
            _ => {
                for (i, v) in values.iter().enumerate() {
                    let index = i.to_string();
                    if s.numeric {
                        out.untyped(
                            s.metric.clone(),
                            s.help.clone(),
                            &[("index", &index)],
                            number(v),
                        );
                    } else {
                        out.gauge(
                            "node_sysctl_info",
                            "sysctl info",
                            &[("name", &s.name), ("value", v), ("index", &index)],
                            1.0,
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

impl Collector for Sysctls {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        for s in &self.sysctls {
            self.one(s, out)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{collect, write};

    fn run(root: &Path, numeric: &[&str], info: &[&str]) -> anyhow::Result<String> {
        let mut sysctls = Vec::new();
        for n in numeric {
            sysctls.push(Sysctl::new(n, true)?);
        }
        for n in info {
            sysctls.push(Sysctl::new(n, false)?);
        }
        collect(&Sysctls {
            paths: Paths {
                procfs: root.into(),
                ..Paths::default()
            },
            sysctls,
        })
    }

    fn sysctls(root: &Path) {
        write(root, "sys/fs/file-nr", "1024\t0\t1631329\n");
        write(root, "sys/kernel/threads-max", "7801\n");
        write(
            root,
            "sys/kernel/seccomp/actions_avail",
            "kill_process trap allow\n",
        );
    }

    #[test]
    fn plain_indexed_mapped_and_info() {
        let dir = tempfile::tempdir().unwrap();
        sysctls(dir.path());
        let text = run(
            dir.path(),
            &[
                "kernel.threads-max",
                "fs.file-nr",
                "fs.file-nr:total,current,max",
            ],
            &["kernel.seccomp.actions_avail", "kernel.threads-max"],
        )
        .unwrap();
        for want in [
            "# HELP node_sysctl_kernel_threads_max sysctl kernel.threads-max\n# TYPE node_sysctl_kernel_threads_max untyped\nnode_sysctl_kernel_threads_max 7801\n",
            "node_sysctl_fs_file_nr{index=\"2\"} 1.631329e+06\n",
            "# HELP node_sysctl_fs_file_nr_current sysctl fs.file-nr, field 1\n",
            "node_sysctl_fs_file_nr_max 1.631329e+06\n",
            "node_sysctl_info{index=\"1\",name=\"kernel.seccomp.actions_avail\",value=\"trap\"} 1\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        // One string value is an info series of index 0.
        assert!(text.contains(
            "node_sysctl_info{index=\"0\",name=\"kernel.threads-max\",value=\"7801\"} 1\n"
        ));
        assert!(run(dir.path(), &[], &[]).unwrap().is_empty());
    }

    #[test]
    fn bad_sysctls_fail_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        sysctls(dir.path());
        for (numeric, want) in [
            ("kernel.nope", "kernel/nope"),
            ("kernel.seccomp.actions_avail", "seccomp/actions_avail"),
            ("kernel.threads-max:a,b", "kernel.threads-max"),
            ("fs.file-nr:a,b", "fs.file-nr"),
        ] {
            let err = run(dir.path(), &[numeric], &[]).unwrap_err().to_string();
            assert!(err.contains(want), "{numeric}: {err}");
        }
        assert!(Sysctl::new("fs.file-nr:to-tal", true).is_err());
        assert_eq!(parse_int("0x10"), Some(16));
        assert_eq!(parse_int("-010"), Some(-8));
        assert_eq!(parse_int("9223372036854775808"), None);
        assert_eq!(parse_int("-"), None);
    }
}
