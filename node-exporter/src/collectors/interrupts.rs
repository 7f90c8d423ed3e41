//! `node_interrupts_total{cpu,type,info,devices}` from /proc/interrupts, as
//! node_exporter reads it: the header gives the number of CPU columns; each
//! line is `NAME: <one count per CPU> <details>`. For numbered IRQs `info` is
//! the interrupt chip and `devices` the rest (`2-edge timer`); for named ones
//! (`LOC`, `NMI`) `info` is the description and `devices` is empty. Lines
//! with a single count (`ERR`, `MIS`) are skipped, and `cpu` is the column
//! number. `--collector.interrupts.name-include/-exclude` match
//! `NAME;info;devices`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::CollectorSpec;
use crate::cli::{bool_flag, string_flag};
use crate::collector::{Collector, Paths};
use crate::device_filter::DeviceFilter;
use crate::helpers::read_kept;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "interrupts",
    default_enabled: false,
    flags: || {
        let mut v = vec![
            string_flag(
                "collector.interrupts.name-include",
                "",
                "Regexp of interrupts name to include (mutually exclusive to --collector.interrupts.name-exclude).",
            ),
            string_flag(
                "collector.interrupts.name-exclude",
                "",
                "Regexp of interrupts name to exclude (mutually exclusive to --collector.interrupts.name-include).",
            ),
        ];
        v.extend(bool_flag(
            "collector.interrupts.include-zeros",
            true,
            "Include interrupts that have a zero value",
        ));
        v
    },
    build: |f| {
        Ok(Box::new(Interrupts {
            paths: f.paths.clone(),
            filter: DeviceFilter::from_flag_pair(
                f,
                "collector.interrupts.name-exclude",
                "collector.interrupts.name-include",
            )?,
            include_zeros: f.bool("collector.interrupts.include-zeros", true),
        }))
    },
};

/// One line of /proc/interrupts.
#[derive(Debug, Clone, PartialEq)]
pub struct Interrupt<'a> {
    pub name: &'a str,
    pub info: String,
    pub devices: String,
    /// One count per CPU column.
    pub values: Vec<f64>,
}

pub fn parse_interrupts<'a>(text: &'a str, path: &Path) -> anyhow::Result<Vec<Interrupt<'a>>> {
    let mut lines = text.lines().enumerate();
    let cpus = match lines.next() {
        Some((_, header)) => header.split_ascii_whitespace().count(),
        None => return Err(anyhow!("parsing {}: file is empty", path.display())),
    };
    if cpus == 0 {
        return Err(anyhow!(
            "parsing {} line 1: no CPU columns in the header",
            path.display()
        ));
    }
    let mut out: Vec<Interrupt<'a>> = Vec::new();
    let mut index: HashMap<&'a str, usize> = HashMap::new();
    for (i, line) in lines {
        // On aarch64 the values can follow the ':' without a space.
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let parts: Vec<&str> = rest.split_ascii_whitespace().collect();
        // One count per CPU plus at least one detail; ERR and MIS have a
        // single count and are skipped as node_exporter does.
        let (Some(counts), Some(details)) = (parts.get(..cpus), parts.get(cpus..)) else {
            continue;
        };
        if details.is_empty() {
            continue;
        }
        let name = name.trim_start_matches(' ');
        let values = counts
            .iter()
            .enumerate()
            .map(|(cpu, v)| {
                v.parse::<f64>().map_err(|_| {
                    anyhow!(
                        "parsing {} line {}: {name} CPU column {cpu}: {v:?} is not a number",
                        path.display(),
                        i + 1
                    )
                })
            })
            .collect::<anyhow::Result<Vec<f64>>>()?;
        let (info, devices) = match (name.parse::<i64>(), details.split_first()) {
            (Ok(_), Some((chip, devs))) => (chip.to_string(), devs.join(" ")),
            _ => (details.join(" "), String::new()),
        };
        let intr = Interrupt {
            name,
            info,
            devices,
            values,
        };
        // A name seen twice keeps its last line, as node_exporter's map does.
        match index.get(name).and_then(|&j| out.get_mut(j)) {
            Some(existing) => *existing = intr,
            None => {
                index.insert(name, out.len());
                out.push(intr);
            }
        }
    }
    Ok(out)
}

struct Interrupts {
    paths: Paths,
    filter: DeviceFilter,
    include_zeros: bool,
}

impl Collector for Interrupts {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("interrupts");
        let text = read_kept(&path)?;
        let filtering = self.filter.is_active();
        let mut filter_name = String::new();
        let mut cpu_labels: Vec<String> = Vec::new();
        for intr in parse_interrupts(&text, &path)? {
            if filtering {
                filter_name.clear();
                filter_name.push_str(intr.name);
                filter_name.push(';');
                filter_name.push_str(&intr.info);
                filter_name.push(';');
                filter_name.push_str(&intr.devices);
                if self.filter.ignored(&filter_name) {
                    continue;
                }
            }
            for (cpu, &v) in intr.values.iter().enumerate() {
                if !self.include_zeros && v == 0.0 {
                    continue;
                }
                while cpu_labels.len() <= cpu {
                    cpu_labels.push(cpu_labels.len().to_string());
                }
                let cpu = cpu_labels.get(cpu).map(String::as_str).unwrap_or("");
                out.counter(
                    "node_interrupts_total",
                    "Interrupt details.",
                    &[
                        ("cpu", cpu),
                        ("type", intr.name),
                        ("info", &intr.info),
                        ("devices", &intr.devices),
                    ],
                    v,
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    const X86: &str = "           CPU0       CPU1       
  0:         22          0   IO-APIC   2-edge      timer
 26:          0         15  IO-APIC   4-edge      ttyS0
 28:          0          0 PCI-MSIX-0000:00:01.0   0-edge      virtio0-config
NMI:          0          0   Non-maskable interrupts
LOC:      91548      94152   Local timer interrupts
ERR:          0
MIS:          0
";

    #[test]
    fn numbered_and_named_interrupts() {
        let v = parse_interrupts(X86, Path::new("interrupts")).unwrap();
        assert_eq!(v.len(), 5, "ERR and MIS are skipped");
        assert_eq!(v[0].name, "0");
        assert_eq!(v[0].info, "IO-APIC");
        assert_eq!(v[0].devices, "2-edge timer");
        assert_eq!(v[0].values, vec![22.0, 0.0]);
        assert_eq!(v[2].info, "PCI-MSIX-0000:00:01.0");
        assert_eq!(v[4].name, "LOC");
        assert_eq!(v[4].info, "Local timer interrupts");
        assert_eq!(v[4].devices, "");
    }

    #[test]
    fn aarch64_without_space_after_colon() {
        let text = "       CPU0       CPU1\n 11:1234 5678     GICv3  27 Level     arch_timer\nIPI0:23 45       Rescheduling interrupts\n";
        let v = parse_interrupts(text, Path::new("i")).unwrap();
        assert_eq!(v[0].name, "11");
        assert_eq!(v[0].values, vec![1234.0, 5678.0]);
        assert_eq!(v[0].info, "GICv3");
        assert_eq!(v[0].devices, "27 Level arch_timer");
        assert_eq!(v[1].name, "IPI0");
        assert_eq!(v[1].info, "Rescheduling interrupts");
    }

    #[test]
    fn garbage_count_is_an_error_naming_the_line() {
        let text = "  CPU0 CPU1\n  1: 9 x IO-APIC 1-edge i8042\n";
        let err = parse_interrupts(text, Path::new("/proc/interrupts"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/proc/interrupts line 2"), "{err}");
        assert!(parse_interrupts("", Path::new("i")).is_err());
    }

    #[test]
    fn filters_match_name_info_and_devices() {
        let c = DeviceFilter::from_regexes(Some(Regex::new("virtio").unwrap()), None);
        assert!(c.ignored("28;PCI-MSIX-0000:00:01.0;0-edge virtio0-config"));
        assert!(!c.ignored("LOC;Local timer interrupts;"));
        let c = DeviceFilter::from_regexes(None, Some(Regex::new("^LOC;").unwrap()));
        assert!(!c.ignored("LOC;Local timer interrupts;"));
        assert!(c.ignored("NMI;Non-maskable interrupts;"));
    }
}
