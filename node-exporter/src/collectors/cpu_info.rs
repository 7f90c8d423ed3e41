//! The parts of the cpu collector that are not /proc/stat: `--collector.cpu.info`
//! (/proc/cpuinfo: `node_cpu_info`, `node_cpu_frequency_hertz`, the first
//! core's flags and bugs), the thermal throttle counters of
//! /sys/devices/system/cpu/cpu*/thermal_throttle and the isolated CPUs of
//! /sys/devices/system/cpu/isolated, as node_exporter's cpu collector has
//! them. Not a collector of its own: [`super::cpu`] calls into it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use crate::collector::Paths;
use crate::helpers::{read_dir_names, read_kept, read_optional_attr};

/// One processor block of /proc/cpuinfo, the fields node_exporter uses.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CpuInfo {
    pub processor: u32,
    pub vendor_id: String,
    pub cpu_family: String,
    pub model: String,
    pub model_name: String,
    pub stepping: String,
    pub microcode: String,
    pub cpu_mhz: f64,
    pub cache_size: String,
    pub physical_id: String,
    pub core_id: String,
    pub flags: Vec<String>,
    pub bugs: Vec<String>,
}

/// Go's `strconv.ParseUint(s, 0, 32)`: decimal, or `0x`/`0o`/`0b` prefixed.
fn parse_uint32(s: &str) -> Option<u32> {
    let (digits, radix) = match s.get(..2) {
        Some("0x" | "0X") => (&s[2..], 16),
        Some("0o" | "0O") => (&s[2..], 8),
        Some("0b" | "0B") => (&s[2..], 2),
        _ if s.len() > 1 && s.starts_with('0') => (&s[1..], 8),
        _ => (s, 10),
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}

/// /proc/cpuinfo in the x86 layout procfs reads (a block per processor,
/// `key<tabs>: value` lines). As procfs, the first line that is not empty
/// must be a `processor` line, and a number field that is not a number
/// fails the whole file.
pub fn parse_cpuinfo(text: &str, path: &Path) -> anyhow::Result<Vec<CpuInfo>> {
    let mut cpus: Vec<CpuInfo> = Vec::new();
    let bad = |n: usize, what: &str, v: &str| {
        anyhow!(
            "parsing {} line {}: {what} {v:?} is not a number",
            path.display(),
            n + 1
        )
    };
    for (n, line) in text.lines().enumerate() {
        if cpus.is_empty() && line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            if cpus.is_empty() {
                return Err(anyhow!(
                    "parsing {} line {}: expected a processor line, got {line:?}",
                    path.display(),
                    n + 1
                ));
            }
            continue;
        };
        // procfs splits at ": ": the value keeps anything after that space.
        let value = value.strip_prefix(' ').unwrap_or(value);
        let key = key.trim();
        if key == "processor" {
            let p = parse_uint32(value).ok_or_else(|| bad(n, "processor", value))?;
            // One processor twice would be one series twice: the scrape's end.
            if cpus.iter().any(|c| c.processor == p) {
                return Err(anyhow!(
                    "parsing {} line {}: processor {p} listed twice",
                    path.display(),
                    n + 1
                ));
            }
            cpus.push(CpuInfo {
                processor: p,
                ..CpuInfo::default()
            });
            continue;
        }
        let Some(cpu) = cpus.last_mut() else {
            return Err(anyhow!(
                "parsing {} line {}: expected a processor line, got {line:?}",
                path.display(),
                n + 1
            ));
        };
        match key {
            "vendor" | "vendor_id" => cpu.vendor_id = value.to_string(),
            "cpu family" => cpu.cpu_family = value.to_string(),
            "model" => cpu.model = value.to_string(),
            "model name" => cpu.model_name = value.to_string(),
            "stepping" => cpu.stepping = value.to_string(),
            "microcode" => cpu.microcode = value.to_string(),
            "cache size" => cpu.cache_size = value.to_string(),
            "physical id" => cpu.physical_id = value.to_string(),
            "core id" => cpu.core_id = value.to_string(),
            "cpu MHz" => cpu.cpu_mhz = value.parse().map_err(|_| bad(n, key, value))?,
            "bogomips" => drop(value.parse::<f64>().map_err(|_| bad(n, key, value))?),
            "siblings" | "cpu cores" | "cpuid level" | "clflush size" | "cache_alignment" => {
                parse_uint32(value).ok_or_else(|| bad(n, key, value))?;
            }
            // arm64 names the flags "Features".
            "flags" | "Features" => {
                cpu.flags = value.split_whitespace().map(str::to_string).collect()
            }
            "bugs" => cpu.bugs = value.split_whitespace().map(str::to_string).collect(),
            _ => {}
        }
    }
    if cpus.is_empty() {
        return Err(anyhow!("parsing {}: no processor lines", path.display()));
    }
    Ok(cpus)
}

/// `--collector.cpu.info` and its filters.
pub struct InfoOptions {
    pub flags_include: Option<regex::Regex>,
    pub bugs_include: Option<regex::Regex>,
    /// node_exporter adds `node_cpu_frequency_hertz` only while the
    /// cpufreq collector is enabled.
    pub frequency: bool,
}

pub fn update_info(paths: &Paths, opts: &InfoOptions, out: &mut MetricSet) -> anyhow::Result<()> {
    let path = paths.proc("cpuinfo");
    let cpus = parse_cpuinfo(&read_kept(&path)?, &path)?;
    for c in &cpus {
        let cpu = c.processor.to_string();
        out.gauge(
            "node_cpu_info",
            "CPU information from /proc/cpuinfo.",
            &[
                ("package", &c.physical_id),
                ("core", &c.core_id),
                ("cpu", &cpu),
                ("vendor", &c.vendor_id),
                ("family", &c.cpu_family),
                ("model", &c.model),
                ("model_name", &c.model_name),
                ("microcode", &c.microcode),
                ("stepping", &c.stepping),
                ("cachesize", &c.cache_size),
            ],
            1.0,
        );
        if opts.frequency {
            out.gauge(
                "node_cpu_frequency_hertz",
                "CPU frequency in hertz from /proc/cpuinfo.",
                &[
                    ("package", &c.physical_id),
                    ("core", &c.core_id),
                    ("cpu", &cpu),
                ],
                c.cpu_mhz * 1e6,
            );
        }
    }
    // Flags and bugs are those of the first processor, and only with a filter.
    let first = &cpus[0];
    for (values, filter, name, help, label) in [
        (
            &first.flags,
            &opts.flags_include,
            "node_cpu_flag_info",
            "The `flags` field of CPU information from /proc/cpuinfo taken from the first core.",
            "flag",
        ),
        (
            &first.bugs,
            &opts.bugs_include,
            "node_cpu_bug_info",
            "The `bugs` field of CPU information from /proc/cpuinfo taken from the first core.",
            "bug",
        ),
    ] {
        let Some(re) = filter else { continue };
        // A flag listed twice is one series.
        let kept: std::collections::BTreeSet<&String> =
            values.iter().filter(|v| re.is_match(v)).collect();
        for v in kept {
            out.gauge(name, help, &[(label, v)], 1.0);
        }
    }
    Ok(())
}

/// A kernel CPU list (`1,3-5,9`) as procfs parses /sys/devices/system/cpu/isolated:
/// CPU numbers fit in 16 bits, so a list naming more CPUs than that is bad.
pub fn parse_isolated(text: &str, path: &Path) -> anyhow::Result<Vec<u16>> {
    let bad = |part: &str| {
        anyhow!(
            "parsing {}: {part:?} is not a CPU number or range",
            path.display()
        )
    };
    let mut out = Vec::new();
    for part in text
        .trim_end_matches('\n')
        .split(',')
        .filter(|p| !p.is_empty())
    {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: u16 = a.parse().map_err(|_| bad(part))?;
                let b: u16 = b.parse().map_err(|_| bad(part))?;
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad(part))?),
        }
        if out.len() > usize::from(u16::MAX) + 1 {
            return Err(bad(part));
        }
    }
    // Overlapping ranges name a CPU once.
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The isolated CPUs, read once when the collector is made, as node_exporter
/// does: `None` when the kernel has no such file.
pub fn read_isolated(paths: &Paths) -> anyhow::Result<Option<Vec<u16>>> {
    let path = paths.sys("devices/system/cpu/isolated");
    match read_optional_attr(&path)? {
        Some(text) => parse_isolated(&text, &path).map(Some),
        None => Ok(None),
    }
}

pub fn update_isolated(isolated: &[u16], out: &mut MetricSet) {
    for cpu in isolated {
        out.gauge(
            "node_cpu_isolated",
            "Whether each core is isolated, information from /sys/devices/system/cpu/isolated.",
            &[("cpu", &cpu.to_string())],
            1.0,
        );
    }
}

/// A number in a sysfs file, or `None` when it cannot be read or is not
/// one: node_exporter skips such a CPU (topology) or counter quietly.
fn read_uint(path: &Path) -> Option<u64> {
    read_kept(path).ok()?.trim().parse().ok()
}

/// Whether the kernel has thermal throttle counters. Intel's therm_throt
/// driver adds `thermal_throttle` to every online CPU at once, so looking
/// at cpu0 alone (one stat per scrape) tells: a host without them does not
/// read every CPU's topology on every scrape for nothing.
#[derive(Default)]
pub struct Throttles {
    seen: AtomicBool,
}

impl Throttles {
    pub fn update(&self, paths: &Paths, out: &mut MetricSet) -> anyhow::Result<()> {
        let root = paths.sys("devices/system/cpu");
        if !self.seen.load(Ordering::Relaxed) {
            if !root.join("cpu0/thermal_throttle").exists() {
                return Ok(());
            }
            self.seen.store(true, Ordering::Relaxed);
        }
        let names = match read_dir_names(&root) {
            Ok(n) => n,
            Err(e) if crate::helpers::is_no_data(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut packages: BTreeMap<u64, u64> = BTreeMap::new();
        let mut cores: BTreeMap<(u64, u64), u64> = BTreeMap::new();
        // The glob cpu[0-9]*, in its (name) order: the first CPU of a core
        // or package that has a readable count gives it.
        for name in names.iter().filter(|n| {
            n.strip_prefix("cpu")
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        }) {
            let dir = root.join(name);
            let Some(package) = read_uint(&dir.join("topology/physical_package_id")) else {
                continue;
            };
            let Some(core) = read_uint(&dir.join("topology/core_id")) else {
                continue;
            };
            if let std::collections::btree_map::Entry::Vacant(e) = cores.entry((package, core)) {
                if let Some(v) = read_uint(&dir.join("thermal_throttle/core_throttle_count")) {
                    e.insert(v);
                }
            }
            if let std::collections::btree_map::Entry::Vacant(e) = packages.entry(package) {
                if let Some(v) = read_uint(&dir.join("thermal_throttle/package_throttle_count")) {
                    e.insert(v);
                }
            }
        }
        for (package, v) in packages {
            out.counter(
                "node_cpu_package_throttles_total",
                "Number of times this CPU package has been throttled.",
                &[("package", &package.to_string())],
                v as f64,
            );
        }
        for ((package, core), v) in cores {
            out.counter(
                "node_cpu_core_throttles_total",
                "Number of times this CPU core has been throttled.",
                &[
                    ("package", &package.to_string()),
                    ("core", &core.to_string()),
                ],
                v as f64,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{render, write};

    const CPUINFO: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n\
model\t\t: 142\nmodel name\t: Intel(R) Core(TM) i7\nstepping\t: 10\nmicrocode\t: 0xb4\n\
cpu MHz\t\t: 799.998\ncache size\t: 8192 KB\nphysical id\t: 0\nsiblings\t: 2\ncore id\t\t: 0\n\
flags\t\t: fpu aes avx avx2 sse\nbugs\t\t: cpu_meltdown spectre_v1 swapgs\npower management:\n\n\
processor\t: 1\nvendor_id\t: GenuineIntel\ncpu MHz\t\t: 1200\nphysical id\t: 0\ncore id\t\t: 1\n\
flags\t\t: fpu\n";

    fn paths(root: &Path) -> Paths {
        Paths {
            procfs: root.join("proc"),
            sysfs: root.join("sys"),
            ..Paths::default()
        }
    }

    #[test]
    fn info_frequency_and_filtered_flags_of_the_first_cpu() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "proc/cpuinfo", CPUINFO);
        let opts = InfoOptions {
            flags_include: Some(regex::Regex::new("^avx").unwrap()),
            bugs_include: Some(regex::Regex::new("spectre").unwrap()),
            frequency: true,
        };
        let mut set = MetricSet::new();
        update_info(&paths(dir.path()), &opts, &mut set).unwrap();
        let text = render(set);
        for want in [
            "node_cpu_info{cachesize=\"8192 KB\",core=\"0\",cpu=\"0\",family=\"6\",microcode=\"0xb4\",model=\"142\",model_name=\"Intel(R) Core(TM) i7\",package=\"0\",stepping=\"10\",vendor=\"GenuineIntel\"} 1\n",
            "node_cpu_frequency_hertz{core=\"0\",cpu=\"0\",package=\"0\"} 7.99998e+08\n",
            "node_cpu_frequency_hertz{core=\"1\",cpu=\"1\",package=\"0\"} 1.2e+09\n",
            "node_cpu_flag_info{flag=\"avx\"} 1\n",
            "node_cpu_flag_info{flag=\"avx2\"} 1\n",
            "node_cpu_bug_info{bug=\"spectre_v1\"} 1\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        assert!(!text.contains("flag=\"sse\""), "{text}");
        assert!(!text.contains("cpu_meltdown"), "{text}");

        // No filter, no cpufreq: neither flags nor frequencies.
        let mut set = MetricSet::new();
        let opts = InfoOptions {
            flags_include: None,
            bugs_include: None,
            frequency: false,
        };
        update_info(&paths(dir.path()), &opts, &mut set).unwrap();
        let text = render(set);
        assert!(text.contains("node_cpu_info{"), "{text}");
        assert!(
            !text.contains("flag_info") && !text.contains("frequency"),
            "{text}"
        );
    }

    #[test]
    fn truncated_and_garbage_cpuinfo_name_the_file() {
        let p = Path::new("/proc/cpuinfo");
        for bad in [
            "",
            "vendor_id\t: GenuineIntel\n",
            "processor\t: zero\n",
            "processor\t: 0\ncpu MHz\t\t: fast\n",
            "processor\t: 0\nsiblings\t: -1\n",
            "processor\t: 0\n\nprocessor\t: 0\n",
            "garbage\n",
        ] {
            let err = parse_cpuinfo(bad, p).unwrap_err().to_string();
            assert!(err.contains("/proc/cpuinfo"), "{bad:?}: {err}");
        }
        // Cut in the middle of a block: what is there is kept.
        let cut = &CPUINFO[..CPUINFO.find("stepping").unwrap()];
        let cpus = parse_cpuinfo(cut, p).unwrap();
        assert_eq!(cpus[0].model_name, "Intel(R) Core(TM) i7");
        assert_eq!(parse_uint32("0x10"), Some(16));
        assert_eq!(parse_uint32("010"), Some(8));
        assert_eq!(parse_uint32("4294967296"), None);
    }

    #[test]
    fn isolated_ranges_and_bad_lists() {
        let p = Path::new("isolated");
        assert_eq!(parse_isolated("1,3-5,9\n", p).unwrap(), vec![1, 3, 4, 5, 9]);
        assert_eq!(parse_isolated("4-5,1,5\n", p).unwrap(), vec![1, 4, 5]);
        assert_eq!(parse_isolated("\n", p).unwrap(), Vec::<u16>::new());
        for bad in ["1-", "a", "1-2-3", "70000", "3,x"] {
            let err = parse_isolated(bad, p).unwrap_err().to_string();
            assert!(err.contains("isolated"), "{bad}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_isolated(&paths(dir.path())).unwrap(), None);
        write(dir.path(), "sys/devices/system/cpu/isolated", "2-3\n");
        let cpus = read_isolated(&paths(dir.path())).unwrap().unwrap();
        let mut set = MetricSet::new();
        update_isolated(&cpus, &mut set);
        let text = render(set);
        assert!(text.contains("node_cpu_isolated{cpu=\"3\"} 1\n"), "{text}");
    }

    #[test]
    fn throttles_once_per_core_and_package() {
        let dir = tempfile::tempdir().unwrap();
        let t = Throttles::default();
        let run = || {
            let mut set = MetricSet::new();
            t.update(&paths(dir.path()), &mut set).unwrap();
            render(set)
        };
        // No thermal_throttle: nothing, and nothing read past cpu0.
        write(
            dir.path(),
            "sys/devices/system/cpu/cpu0/topology/core_id",
            "0\n",
        );
        assert_eq!(run(), "");
        for (cpu, package, core, core_count, package_count) in [
            ("cpu0", "0", "0", "5", "30"),
            ("cpu1", "0", "1", "0", "31"),
            // Same core as cpu1 (a hyperthread): not read again.
            ("cpu3", "0", "1", "7", "32"),
            ("cpu2", "1", "0", "9", "6"),
        ] {
            let d = format!("sys/devices/system/cpu/{cpu}");
            write(
                dir.path(),
                &format!("{d}/topology/physical_package_id"),
                package,
            );
            write(dir.path(), &format!("{d}/topology/core_id"), core);
            write(
                dir.path(),
                &format!("{d}/thermal_throttle/core_throttle_count"),
                core_count,
            );
            write(
                dir.path(),
                &format!("{d}/thermal_throttle/package_throttle_count"),
                package_count,
            );
        }
        // A CPU without topology is skipped.
        write(
            dir.path(),
            "sys/devices/system/cpu/cpu9/thermal_throttle/core_throttle_count",
            "1",
        );
        let text = run();
        for want in [
            "node_cpu_package_throttles_total{package=\"0\"} 30\n",
            "node_cpu_package_throttles_total{package=\"1\"} 6\n",
            "node_cpu_core_throttles_total{core=\"0\",package=\"0\"} 5\n",
            "node_cpu_core_throttles_total{core=\"1\",package=\"0\"} 0\n",
            "node_cpu_core_throttles_total{core=\"0\",package=\"1\"} 9\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        assert_eq!(
            text.matches("node_cpu_core_throttles_total{").count(),
            3,
            "{text}"
        );
    }
}
