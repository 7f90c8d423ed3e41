//! `node_cpu_frequency_*`, `node_cpu_scaling_frequency_*` and
//! `node_cpu_scaling_governor` from /sys/devices/system/cpu/cpu*/cpufreq/.
//! Values there are kHz; the metrics are Hz. Offline CPUs (listed in
//! /sys/devices/system/cpu/offline) are skipped. A system without cpufreq
//! (most VMs) is [`Absent`]: the scraper does not run the collector again
//! until the device list changes (a cpufreq driver loaded, a CPU onlined).
//!
//! The kernel may take a while to answer `*_cur_freq` for a CPU (it can
//! IPI the CPU or wait for a fresh APERF/MPERF sample), so on larger
//! machines the CPUs are read by a few threads at once, as node_exporter
//! reads them in parallel.
//!
//! Finding out there is no cpufreq costs a listing of
//! /sys/devices/system/cpu and a stat per CPU, so an absence is remembered:
//! while /sys/devices/system/cpu/online (kept open, one pread) reads the
//! same, for at most [`ABSENCE_RECHECK`], the next scrapes report no data
//! at once. A CPU going on- or offline, or the interval passing (a cpufreq
//! driver loaded later), brings the full look back.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Absent, Collector, Paths};
use crate::helpers::read_sysfs_attr;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "cpufreq",
    default_enabled: true,
    flags: no_flags,
    build: |f| Ok(Box::new(Cpufreq::new(f.paths.clone()))),
};

/// Above this many CPUs, read them with several threads.
const SEQUENTIAL_MAX: usize = 4;
const MAX_THREADS: usize = 8;

/// How long a remembered absence of cpufreq holds at most.
pub const ABSENCE_RECHECK: Duration = Duration::from_secs(60);

struct Cpufreq {
    paths: Paths,
    /// /sys/devices/system/cpu/online, kept open.
    online: crate::helpers::OpenFiles,
    /// The online list that had no cpufreq, and when that was found.
    absent: Mutex<Option<(Vec<u8>, Instant)>>,
    recheck: Duration,
}

/// One CPU's cpufreq attributes, in kHz as the kernel gives them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpufreqStats {
    pub cpu: String,
    pub cpuinfo_cur: Option<u64>,
    pub cpuinfo_min: Option<u64>,
    pub cpuinfo_max: Option<u64>,
    pub scaling_cur: Option<u64>,
    pub scaling_min: Option<u64>,
    pub scaling_max: Option<u64>,
    pub governor: String,
    pub available_governors: String,
}

/// Attribute errors that mean "this attribute is not available here":
/// missing, root-only (`cpuinfo_cur_freq`), or a firmware that did not answer.
fn unavailable(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        NotFound | PermissionDenied | TimedOut | WouldBlock | Unsupported
    )
}

/// Parses one kHz attribute value.
pub fn parse_khz(text: &str, path: &Path) -> anyhow::Result<u64> {
    text.trim().parse().map_err(|_| {
        anyhow!(
            "parsing {}: {:?} is not an unsigned integer",
            path.display(),
            text.trim()
        )
    })
}

/// Parses a kernel CPU list (`0-3,7`), as in /sys/devices/system/cpu/offline.
pub fn parse_cpu_list(text: &str, path: &Path) -> anyhow::Result<Vec<u32>> {
    let mut out = Vec::new();
    let bad = |part: &str| {
        anyhow!(
            "parsing {}: {part:?} is not a CPU number or range",
            path.display()
        )
    };
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: u32 = a.parse().map_err(|_| bad(part))?;
                let b: u32 = b.parse().map_err(|_| bad(part))?;
                if b < a {
                    return Err(bad(part));
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad(part))?),
        }
    }
    Ok(out)
}

fn read_khz(dir: &Path, name: &str) -> anyhow::Result<Option<u64>> {
    let path = dir.join(name);
    match read_sysfs_attr(&path) {
        Ok(s) => parse_khz(&s, &path).map(Some),
        Err(e) if unavailable(&e) => Ok(None),
        Err(e) => Err(anyhow!("reading {}: {e}", path.display())),
    }
}

fn read_string(dir: &Path, name: &str) -> anyhow::Result<String> {
    let path = dir.join(name);
    match read_sysfs_attr(&path) {
        Ok(s) => Ok(s),
        Err(e) if unavailable(&e) => Ok(String::new()),
        Err(e) => Err(anyhow!("reading {}: {e}", path.display())),
    }
}

/// Reads `<cpu_dir>/cpufreq`; `None` if the CPU has no cpufreq directory.
fn read_cpu(cpu_dir: &Path, cpu: &str) -> anyhow::Result<Option<CpufreqStats>> {
    let dir = cpu_dir.join("cpufreq");
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow!("reading {}: {e}", dir.display())),
    }
    Ok(Some(CpufreqStats {
        cpu: cpu.to_string(),
        cpuinfo_cur: read_khz(&dir, "cpuinfo_cur_freq")?,
        cpuinfo_min: read_khz(&dir, "cpuinfo_min_freq")?,
        cpuinfo_max: read_khz(&dir, "cpuinfo_max_freq")?,
        scaling_cur: read_khz(&dir, "scaling_cur_freq")?,
        scaling_min: read_khz(&dir, "scaling_min_freq")?,
        scaling_max: read_khz(&dir, "scaling_max_freq")?,
        governor: read_string(&dir, "scaling_governor")?,
        available_governors: read_string(&dir, "scaling_available_governors")?,
    }))
}

type CpuResult = anyhow::Result<Option<CpufreqStats>>;

impl Cpufreq {
    /// The online CPUs' numbers, sorted as node_exporter's glob sorts them.
    fn online_cpus(&self) -> anyhow::Result<Vec<String>> {
        let base = self.paths.sys("devices/system/cpu");
        let names = crate::helpers::read_dir_names(&base)?;
        let offline_path = base.join("offline");
        let offline = match read_sysfs_attr(&offline_path) {
            Ok(s) => parse_cpu_list(&s, &offline_path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(anyhow!("reading {}: {e}", offline_path.display())),
        };
        Ok(names
            .into_iter()
            .filter_map(|n| {
                let num = n.strip_prefix("cpu")?;
                if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let online = num.parse::<u32>().map_or(true, |c| !offline.contains(&c));
                online.then(|| num.to_string())
            })
            .collect())
    }

    fn read_all(&self, cpus: &[String]) -> Vec<CpuResult> {
        let base = self.paths.sys("devices/system/cpu");
        let one = |cpu: &String| read_cpu(&base.join(format!("cpu{cpu}")), cpu);
        if cpus.len() <= SEQUENTIAL_MAX {
            return cpus.iter().map(one).collect();
        }
        let threads = cpus.len().div_ceil(SEQUENTIAL_MAX).min(MAX_THREADS);
        let mut results: Vec<Option<CpuResult>> = (0..cpus.len()).map(|_| None).collect();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let one = &one;
                    s.spawn(move || {
                        cpus.iter()
                            .enumerate()
                            .skip(t)
                            .step_by(threads)
                            .map(|(i, cpu)| (i, one(cpu)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                match h.join() {
                    Ok(done) => {
                        for (i, r) in done {
                            if let Some(slot) = results.get_mut(i) {
                                *slot = Some(r);
                            }
                        }
                    }
                    Err(_) => {
                        if let Some(slot) = results.iter_mut().find(|r| r.is_none()) {
                            *slot = Some(Err(anyhow!("cpufreq reader thread panicked")));
                        }
                    }
                }
            }
        });
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(anyhow!("cpufreq reader thread panicked"))))
            .collect()
    }
}

/// Adds the metrics of one CPU.
pub fn report(s: &CpufreqStats, out: &mut MetricSet) {
    let cpu = [("cpu", s.cpu.as_str())];
    let freqs = [
        (
            "node_cpu_frequency_hertz",
            "Current cpu thread frequency in hertz.",
            s.cpuinfo_cur,
        ),
        (
            "node_cpu_frequency_min_hertz",
            "Minimum cpu thread frequency in hertz.",
            s.cpuinfo_min,
        ),
        (
            "node_cpu_frequency_max_hertz",
            "Maximum cpu thread frequency in hertz.",
            s.cpuinfo_max,
        ),
        (
            "node_cpu_scaling_frequency_hertz",
            "Current scaled CPU thread frequency in hertz.",
            s.scaling_cur,
        ),
        (
            "node_cpu_scaling_frequency_min_hertz",
            "Minimum scaled CPU thread frequency in hertz.",
            s.scaling_min,
        ),
        (
            "node_cpu_scaling_frequency_max_hertz",
            "Maximum scaled CPU thread frequency in hertz.",
            s.scaling_max,
        ),
    ];
    for (name, help, khz) in freqs {
        if let Some(khz) = khz {
            out.gauge(name, help, &cpu, khz as f64 * 1000.0);
        }
    }
    if s.governor.is_empty() {
        return;
    }
    let help = "Current enabled CPU frequency governor.";
    let mut listed = false;
    for g in s.available_governors.split_whitespace() {
        listed = true;
        let on = if g == s.governor { 1.0 } else { 0.0 };
        out.gauge(
            "node_cpu_scaling_governor",
            help,
            &[("cpu", &s.cpu), ("governor", g)],
            on,
        );
    }
    if !listed {
        // No scaling_available_governors: report at least the one in use.
        out.gauge(
            "node_cpu_scaling_governor",
            help,
            &[("cpu", &s.cpu), ("governor", &s.governor)],
            1.0,
        );
    }
}

impl Cpufreq {
    fn new(paths: Paths) -> Cpufreq {
        Cpufreq {
            paths,
            online: Default::default(),
            absent: Mutex::new(None),
            recheck: ABSENCE_RECHECK,
        }
    }

    fn no_data(&self) -> anyhow::Error {
        Absent(format!(
            "no cpufreq directory under {}",
            self.paths.sys("devices/system/cpu").display()
        ))
        .into()
    }
}

impl Collector for Cpufreq {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let online = self
            .online
            .read(&self.paths.sys("devices/system/cpu/online"))
            .ok();
        {
            let absent = self.absent.lock().unwrap_or_else(|e| e.into_inner());
            if let (Some(now), Some((then, at))) = (&online, &*absent) {
                if now == then && at.elapsed() < self.recheck {
                    return Err(self.no_data());
                }
            }
        }
        let cpus = self.online_cpus()?;
        let mut found = 0;
        for r in self.read_all(&cpus) {
            if let Some(stats) = r? {
                found += 1;
                report(&stats, out);
            }
        }
        let mut absent = self.absent.lock().unwrap_or_else(|e| e.into_inner());
        if found == 0 {
            *absent = online.map(|o| (o, Instant::now()));
            return Err(self.no_data());
        }
        *absent = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::write;
    use exporter_toolkit::exposition::{encode, Format};

    fn collector(root: &Path) -> Cpufreq {
        Cpufreq::new(Paths {
            sysfs: root.to_path_buf(),
            ..Paths::default()
        })
    }

    #[test]
    fn an_absence_is_remembered_until_the_online_cpus_change_or_it_is_old() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "devices/system/cpu/online", "0-1\n");
        std::fs::create_dir_all(r.join("devices/system/cpu/cpu1")).unwrap();
        let c = collector(r);
        let no_data = |c: &Cpufreq| {
            let e = c.update(&mut MetricSet::new()).unwrap_err();
            assert!(crate::helpers::is_no_data(&e), "{e}");
        };
        no_data(&c);
        // cpufreq appears, but nothing says so yet: still remembered.
        write(
            r,
            "devices/system/cpu/cpu0/cpufreq/scaling_max_freq",
            "2000\n",
        );
        no_data(&c);
        // A CPU going offline (the online list changes) brings a full look.
        write(r, "devices/system/cpu/online", "0\n");
        c.update(&mut MetricSet::new()).unwrap();
        // Found: nothing remembered, a removal is seen at once.
        std::fs::remove_dir_all(r.join("devices/system/cpu/cpu0/cpufreq")).unwrap();
        no_data(&c);
        write(
            r,
            "devices/system/cpu/cpu0/cpufreq/scaling_max_freq",
            "2000\n",
        );
        no_data(&c);
        // And an old absence is looked at again.
        let fresh = Cpufreq {
            recheck: Duration::ZERO,
            ..collector(r)
        };
        std::fs::remove_dir_all(r.join("devices/system/cpu/cpu0/cpufreq")).unwrap();
        no_data(&fresh);
        write(
            r,
            "devices/system/cpu/cpu0/cpufreq/scaling_max_freq",
            "2000\n",
        );
        fresh.update(&mut MetricSet::new()).unwrap();
        // Without an online file nothing is remembered.
        std::fs::remove_file(r.join("devices/system/cpu/online")).unwrap();
        std::fs::remove_dir_all(r.join("devices/system/cpu/cpu0/cpufreq")).unwrap();
        let c = collector(r);
        no_data(&c);
        write(
            r,
            "devices/system/cpu/cpu0/cpufreq/scaling_max_freq",
            "2000\n",
        );
        c.update(&mut MetricSet::new()).unwrap();
    }

    #[test]
    fn cpu_lists() {
        let p = Path::new("/sys/devices/system/cpu/offline");
        assert_eq!(parse_cpu_list("\n", p).unwrap(), Vec::<u32>::new());
        assert_eq!(parse_cpu_list("2-4,7\n", p).unwrap(), vec![2, 3, 4, 7]);
        assert!(parse_cpu_list("3-1", p).is_err());
        let err = parse_cpu_list("x", p).unwrap_err();
        assert!(err.to_string().contains("/sys/devices/system/cpu/offline"));
    }

    #[test]
    fn offline_cpus_and_cpus_without_cpufreq_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "devices/system/cpu/offline", "2\n");
        for cpu in 0..3 {
            let d = format!("devices/system/cpu/cpu{cpu}/cpufreq");
            write(r, &format!("{d}/scaling_cur_freq"), "1000\n");
        }
        std::fs::create_dir_all(r.join("devices/system/cpu/cpu3")).unwrap();
        std::fs::create_dir_all(r.join("devices/system/cpu/cpufreq")).unwrap();
        let mut set = MetricSet::new();
        collector(r).update(&mut set).unwrap();
        let out = encode(&set.finish().unwrap(), Format::Text);
        assert!(out.contains("node_cpu_scaling_frequency_hertz{cpu=\"0\"} 1e+06\n"));
        assert!(out.contains("{cpu=\"1\"}"));
        assert!(!out.contains("{cpu=\"2\"}"), "{out}");
        assert!(!out.contains("{cpu=\"3\"}"), "{out}");
    }

    #[test]
    fn no_cpufreq_is_no_data_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("devices/system/cpu/cpu0")).unwrap();
        let err = collector(r).update(&mut MetricSet::new()).unwrap_err();
        assert!(crate::helpers::is_no_data(&err));
        write(
            r,
            "devices/system/cpu/cpu0/cpufreq/scaling_max_freq",
            "fast\n",
        );
        let err = collector(r).update(&mut MetricSet::new()).unwrap_err();
        assert!(!crate::helpers::is_no_data(&err));
        assert!(
            err.to_string().contains("cpu0/cpufreq/scaling_max_freq"),
            "{err}"
        );
    }

    #[test]
    fn many_cpus_are_read_in_parallel_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for cpu in 0..20 {
            let d = format!("devices/system/cpu/cpu{cpu}/cpufreq");
            write(r, &format!("{d}/scaling_cur_freq"), &format!("{cpu}\n"));
        }
        let c = collector(r);
        let cpus = c.online_cpus().unwrap();
        let got: Vec<u64> = c
            .read_all(&cpus)
            .into_iter()
            .map(|r| r.unwrap().unwrap().scaling_cur.unwrap())
            .collect();
        let want: Vec<u64> = cpus.iter().map(|c| c.parse().unwrap()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn governors() {
        let s = CpufreqStats {
            cpu: "0".into(),
            governor: "powersave".into(),
            available_governors: "performance powersave".into(),
            ..Default::default()
        };
        let mut set = MetricSet::new();
        report(&s, &mut set);
        let out = encode(&set.finish().unwrap(), Format::Text);
        assert!(out.contains("node_cpu_scaling_governor{cpu=\"0\",governor=\"performance\"} 0\n"));
        assert!(out.contains("node_cpu_scaling_governor{cpu=\"0\",governor=\"powersave\"} 1\n"));
    }
}
