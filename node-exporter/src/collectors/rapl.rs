//! `node_rapl_<zone>_joules_total` from the RAPL power zones under
//! /sys/class/powercap/ (`energy_uj` in microjoules), as node_exporter
//! (procfs' `GetRaplZones`): a zone is a directory with a `name` file;
//! `package-0` is zone `package` index 0, and a name without an index
//! (`core`, `dram`) is indexed by how often it was seen before. With
//! `--collector.rapl.enable-zone-label` the zones are one family,
//! `node_rapl_joules_total`, with a `rapl_zone` label. Energy counters only
//! root may read (since Linux 5.10) make it "no data", as in node_exporter.

use std::collections::HashMap;
use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::{sanitize_name, MetricSet};

use super::CollectorSpec;
use crate::cli::bool_flag;
use crate::collector::{Collector, NoData, Paths};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "rapl",
    default_enabled: true,
    flags: || {
        bool_flag(
            "collector.rapl.enable-zone-label",
            false,
            "Enables RAPL zone labels",
        )
        .into()
    },
    build: |f| {
        Ok(Box::new(Rapl {
            paths: f.paths.clone(),
            zone_label: f.bool("collector.rapl.enable-zone-label", false),
        }))
    },
};

struct Rapl {
    paths: Paths,
    zone_label: bool,
}

#[derive(Debug, PartialEq)]
pub struct Zone {
    pub name: String,
    pub index: u32,
    pub dir: String,
}

/// A zone's name and index from its `name` file's text: `package-0` ->
/// (`package`, 0); a name without `-<n>` gets the number of zones of that
/// name seen so far.
pub fn name_and_index(
    text: &str,
    seen: &HashMap<String, u32>,
    path: &Path,
) -> anyhow::Result<(String, u32)> {
    let name = text.trim();
    let parts: Vec<&str> = name.split('-').collect();
    if let [base, index] = parts[..] {
        let index = index
            .parse()
            .map_err(|_| anyhow!("parsing {}: {name:?} is not <zone>-<index>", path.display()))?;
        return Ok((base.to_string(), index));
    }
    Ok((name.to_string(), seen.get(name).copied().unwrap_or(0)))
}

/// The zones under `powercap`, in directory order.
fn zones(powercap: &Path) -> anyhow::Result<Vec<Zone>> {
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut out = Vec::new();
    for entry in crate::helpers::absent_if_missing(crate::helpers::read_dir_names(powercap))? {
        let dir = powercap.join(&entry);
        let name_file = dir.join("name");
        let Ok(text) = crate::helpers::read_to_string(&name_file) else {
            continue;
        };
        let (name, index) = name_and_index(&text, &seen, &name_file)?;
        let max = dir.join("max_energy_range_uj");
        crate::helpers::read_u64(&max)?;
        seen.insert(name.clone(), index + 1);
        out.push(Zone {
            name,
            index,
            dir: dir.display().to_string(),
        });
    }
    Ok(out)
}

impl Collector for Rapl {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        for zone in zones(&self.paths.sys("class/powercap"))? {
            let path = Path::new(&zone.dir).join("energy_uj");
            let microjoules = match crate::helpers::read_to_string(&path) {
                Ok(text) => crate::helpers::parse_attr::<u64>(&text, &path, "a count")?,
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    return Err(NoData(format!("{}: permission denied", path.display())).into())
                }
                Err(e) => return Err(anyhow!("reading {}: {e}", path.display())),
            };
            let joules = microjoules as f64 / 1_000_000.0;
            let index = zone.index.to_string();
            if self.zone_label {
                out.counter(
                    "node_rapl_joules_total",
                    "Current RAPL value in joules",
                    &[
                        ("index", &index),
                        ("path", &zone.dir),
                        ("rapl_zone", &zone.name),
                    ],
                    joules,
                );
            } else {
                // Zone names are kernel words (package, core, dram, psys).
                out.counter(
                    format!(
                        "node_rapl_{}",
                        sanitize_name(&format!("{}_joules_total", zone.name))
                    ),
                    format!("Current RAPL {} value in joules", zone.name),
                    &[("index", &index), ("path", &zone.dir)],
                    joules,
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{collect, sysfs_at, write};

    #[test]
    fn names_and_indexes() {
        let p = Path::new("name");
        let mut seen = HashMap::new();
        assert_eq!(
            name_and_index("package-1\n", &seen, p).unwrap(),
            ("package".into(), 1)
        );
        assert_eq!(
            name_and_index("dram\n", &seen, p).unwrap(),
            ("dram".into(), 0)
        );
        seen.insert("dram".to_string(), 1);
        assert_eq!(
            name_and_index("dram\n", &seen, p).unwrap(),
            ("dram".into(), 1)
        );
        assert!(name_and_index("package-x", &seen, p).is_err());
    }

    #[test]
    fn zones_in_joules_with_or_without_zone_label() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "class/powercap/intel-rapl/enabled", "1\n");
        for (zone, name, uj) in [
            ("intel-rapl:0", "package-0", "2500000"),
            ("intel-rapl:0:0", "core", "1000000"),
        ] {
            write(
                r,
                &format!("class/powercap/{zone}/name"),
                &format!("{name}\n"),
            );
            write(
                r,
                &format!("class/powercap/{zone}/energy_uj"),
                &format!("{uj}\n"),
            );
            write(
                r,
                &format!("class/powercap/{zone}/max_energy_range_uj"),
                "262143328850\n",
            );
        }
        let root = r.join("class/powercap").display().to_string();
        let text = collect(&Rapl {
            paths: sysfs_at(r),
            zone_label: false,
        })
        .unwrap();
        assert!(
            text.contains(&format!(
                "node_rapl_package_joules_total{{index=\"0\",path=\"{root}/intel-rapl:0\"}} 2.5\n"
            )),
            "{text}"
        );
        assert!(
            text.contains("# HELP node_rapl_core_joules_total Current RAPL core value in joules\n"),
            "{text}"
        );
        let text = collect(&Rapl {
            paths: sysfs_at(r),
            zone_label: true,
        })
        .unwrap();
        assert!(text.contains(&format!(
            "node_rapl_joules_total{{index=\"0\",path=\"{root}/intel-rapl:0:0\",rapl_zone=\"core\"}} 1\n"
        )), "{text}");
        write(r, "class/powercap/intel-rapl:0/energy_uj", "-5\n");
        let err = collect(&Rapl {
            paths: sysfs_at(r),
            zone_label: false,
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("intel-rapl:0/energy_uj"), "{err}");
    }
}
