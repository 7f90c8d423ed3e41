//! cAdvisor's `machine_*` gauges, the denominators of "share of the host"
//! panels (`container_memory_working_set_bytes / machine_memory_bytes`).
//! Read once at startup, as cAdvisor does: they describe the hardware.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{anyhow, Context};
use exporter_toolkit::exposition::MetricSet;

use crate::collector::Paths;
use crate::helpers::read_to_string;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Machine {
    pub cpu_cores: u64,
    pub physical_cores: u64,
    pub sockets: u64,
    pub memory_bytes: u64,
    pub swap_bytes: u64,
    pub boot_id: String,
    pub machine_id: String,
    pub system_uuid: String,
}

impl Machine {
    pub fn read(paths: &Paths) -> anyhow::Result<Machine> {
        let meminfo_path = paths.proc("meminfo");
        let meminfo = read_to_string(&meminfo_path)
            .with_context(|| format!("reading {}", meminfo_path.display()))?;
        let kib = |key: &str| -> anyhow::Result<u64> {
            meminfo
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .map(|v| v * 1024)
                .ok_or_else(|| anyhow!("parsing {}: no {key} line", meminfo_path.display()))
        };
        let (cpu_cores, physical_cores, sockets) = topology(&paths.sys("devices/system/cpu"))?;
        let id = |p: std::path::PathBuf| {
            read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        Ok(Machine {
            cpu_cores,
            physical_cores,
            sockets,
            memory_bytes: kib("MemTotal")?,
            swap_bytes: kib("SwapTotal").unwrap_or(0),
            boot_id: id(paths.proc("sys/kernel/random/boot_id")),
            machine_id: id(paths.root("/etc/machine-id")),
            // Readable by root only; empty otherwise, as in cAdvisor.
            system_uuid: id(paths.sys("class/dmi/id/product_uuid")),
        })
    }

    pub fn render(&self, out: &mut MetricSet) {
        let l = [
            ("boot_id", self.boot_id.as_str()),
            ("machine_id", self.machine_id.as_str()),
            ("system_uuid", self.system_uuid.as_str()),
        ];
        for (name, help, v) in [
            (
                "machine_cpu_cores",
                "Number of logical CPU cores.",
                self.cpu_cores,
            ),
            (
                "machine_cpu_physical_cores",
                "Number of physical CPU cores.",
                self.physical_cores,
            ),
            (
                "machine_cpu_sockets",
                "Number of CPU sockets.",
                self.sockets,
            ),
            (
                "machine_memory_bytes",
                "Amount of memory installed on the machine.",
                self.memory_bytes,
            ),
            (
                "machine_swap_bytes",
                "Amount of swap memory available on the machine.",
                self.swap_bytes,
            ),
        ] {
            out.gauge(name, help, &l, v as f64);
        }
    }
}

/// (logical CPUs, distinct (package, core) pairs, distinct packages) of
/// the online CPUs in `<sysfs>/devices/system/cpu`.
fn topology(dir: &Path) -> anyhow::Result<(u64, u64, u64)> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    let mut logical = 0;
    let mut cores = HashSet::new();
    let mut packages = HashSet::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name
            .strip_prefix("cpu")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let topo = e.path().join("topology");
        // Offline CPUs have no topology directory.
        if !topo.exists() {
            continue;
        }
        let num = |f: &str| -> anyhow::Result<i64> {
            let p = topo.join(f);
            let s = read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            s.trim()
                .parse()
                .map_err(|_| anyhow!("parsing {}: {:?} is not an integer", p.display(), s.trim()))
        };
        let package = num("physical_package_id")?;
        let core = num("core_id")?;
        logical += 1;
        cores.insert((package, core));
        packages.insert(package);
    }
    Ok((logical, cores.len() as u64, packages.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(root: &Path, n: u32, package: &str, core: &str) {
        let t = root.join(format!("sys/devices/system/cpu/cpu{n}/topology"));
        std::fs::create_dir_all(&t).unwrap();
        std::fs::write(t.join("physical_package_id"), package).unwrap();
        std::fs::write(t.join("core_id"), core).unwrap();
    }

    fn tree() -> (tempfile::TempDir, Paths) {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        // Two sockets, two cores each, two threads per core; cpu8 offline.
        for n in 0..8 {
            cpu(r, n, &(n / 4).to_string(), &((n / 2) % 2).to_string());
        }
        std::fs::create_dir_all(r.join("sys/devices/system/cpu/cpu8")).unwrap();
        std::fs::create_dir_all(r.join("sys/devices/system/cpu/cpufreq")).unwrap();
        std::fs::create_dir_all(r.join("proc/sys/kernel/random")).unwrap();
        std::fs::write(
            r.join("proc/meminfo"),
            "MemTotal:       16384 kB\nMemFree: 1 kB\nSwapTotal:    2048 kB\n",
        )
        .unwrap();
        std::fs::write(r.join("proc/sys/kernel/random/boot_id"), "b-1\n").unwrap();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("etc/machine-id"), "m-1\n").unwrap();
        let paths = Paths {
            procfs: r.join("proc"),
            sysfs: r.join("sys"),
            rootfs: r.to_path_buf(),
            ..Paths::default()
        };
        (dir, paths)
    }

    #[test]
    fn topology_and_memory_are_counted() {
        let (_d, paths) = tree();
        let m = Machine::read(&paths).unwrap();
        assert_eq!(
            m,
            Machine {
                cpu_cores: 8,
                physical_cores: 4,
                sockets: 2,
                memory_bytes: 16384 * 1024,
                swap_bytes: 2048 * 1024,
                boot_id: "b-1".into(),
                machine_id: "m-1".into(),
                system_uuid: String::new(),
            }
        );
    }

    #[test]
    fn garbage_topology_is_an_error_naming_the_file() {
        let (d, paths) = tree();
        cpu(d.path(), 3, "zero", "0");
        let err = format!("{:#}", Machine::read(&paths).unwrap_err());
        assert!(err.contains("cpu3/topology/physical_package_id"), "{err}");
        cpu(d.path(), 3, "0", "1");
        std::fs::write(d.path().join("proc/meminfo"), "nothing\n").unwrap();
        let err = format!("{:#}", Machine::read(&paths).unwrap_err());
        assert!(err.contains("meminfo"), "{err}");
    }
}
