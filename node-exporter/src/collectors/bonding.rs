//! `node_bonding_slaves` and `node_bonding_active` per bonding master, as
//! node_exporter: the masters from /sys/class/net/bonding_masters, each
//! one's slaves from `<master>/bonding/slaves`, and a slave is active when
//! its `lower_<slave>/bonding_slave/mii_status` (`slave_<slave>/` on older
//! kernels) says `up`. No bonding driver, or a file gone while reading
//! (a bond being reconfigured), is "no data", as in node_exporter.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, NoData, Paths};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "bonding",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Bonding {
            paths: f.paths.clone(),
        }))
    },
};

struct Bonding {
    paths: Paths,
}

#[derive(Debug, PartialEq)]
pub struct Bond {
    pub master: String,
    pub slaves: usize,
    pub active: usize,
}

/// Reads a whole file; "not found" is [`NoData`], other errors name the file.
fn read(path: &Path) -> anyhow::Result<String> {
    crate::helpers::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            NoData(format!("{} does not exist", path.display())).into()
        } else {
            anyhow!("reading {}: {e}", path.display())
        }
    })
}

/// The bonds under `class_net` (/sys/class/net), in bonding_masters' order.
pub fn read_bonds(class_net: &Path) -> anyhow::Result<Vec<Bond>> {
    let masters = crate::helpers::absent_if_missing(read(&class_net.join("bonding_masters")))?;
    let mut out = Vec::new();
    for master in masters.split_whitespace() {
        let dir = class_net.join(master);
        let slaves = read(&dir.join("bonding/slaves"))?;
        let mut bond = Bond {
            master: master.to_string(),
            slaves: 0,
            active: 0,
        };
        for slave in slaves.split_whitespace() {
            let lower = dir.join(format!("lower_{slave}/bonding_slave/mii_status"));
            let state = match read(&lower) {
                Err(e) if crate::helpers::is_no_data(&e) => {
                    read(&dir.join(format!("slave_{slave}/bonding_slave/mii_status")))?
                }
                other => other?,
            };
            bond.slaves += 1;
            if state.trim() == "up" {
                bond.active += 1;
            }
        }
        out.push(bond);
    }
    Ok(out)
}

impl Collector for Bonding {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        for bond in read_bonds(&self.paths.sys("class/net"))? {
            let labels = [("master", bond.master.as_str())];
            out.gauge(
                "node_bonding_slaves",
                "Number of configured slaves per bonding interface.",
                &labels,
                bond.slaves as f64,
            );
            out.gauge(
                "node_bonding_active",
                "Number of active slaves per bonding interface.",
                &labels,
                bond.active as f64,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::write;

    #[test]
    fn counts_slaves_and_those_up_with_either_directory_name() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "bonding_masters", "bond0 empty\n");
        write(r, "bond0/bonding/slaves", "eth0 eth1 eth2\n");
        write(r, "bond0/lower_eth0/bonding_slave/mii_status", "up\n");
        write(r, "bond0/slave_eth1/bonding_slave/mii_status", "up\n");
        write(r, "bond0/lower_eth2/bonding_slave/mii_status", "down\n");
        write(r, "empty/bonding/slaves", "\n");
        assert_eq!(
            read_bonds(r).unwrap(),
            [
                Bond {
                    master: "bond0".into(),
                    slaves: 3,
                    active: 2
                },
                Bond {
                    master: "empty".into(),
                    slaves: 0,
                    active: 0
                },
            ]
        );
    }

    #[test]
    fn missing_files_are_no_data_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_bonds(dir.path()).unwrap_err();
        assert!(crate::helpers::is_no_data(&err), "{err}");
        write(dir.path(), "bonding_masters", "bond0\n");
        write(dir.path(), "bond0/bonding/slaves", "eth0\n");
        let err = read_bonds(dir.path()).unwrap_err();
        assert!(crate::helpers::is_no_data(&err), "{err}");
        assert!(
            err.to_string()
                .contains("slave_eth0/bonding_slave/mii_status"),
            "{err}"
        );
    }
}
