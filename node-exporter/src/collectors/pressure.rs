//! Pressure stall information from /proc/pressure/{cpu,io,memory,irq}, as
//! node_exporter reports it: the `some` total of cpu, io and memory
//! (`*_waiting_seconds_total`), the `full` total of io, memory and irq
//! (`*_stalled_seconds_total`). The kernel's `full` line for cpu is not
//! reported: system-wide it is defined as zero (Documentation/accounting/psi.rst),
//! and node_exporter leaves it out. Totals are in microseconds.

use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, NoData, Paths};
use crate::helpers::parse_f64;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "pressure",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Pressure {
            paths: f.paths.clone(),
            missing: AtomicU8::new(0),
        }))
    },
};

/// The `total=` of a PSI file's `some` and `full` lines, in microseconds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Psi {
    pub some: Option<u64>,
    pub full: Option<u64>,
}

/// Parses a /proc/pressure file:
/// `some avg10=0.52 avg60=0.55 avg300=0.36 total=3883036`, then maybe a
/// `full` line. Lines of other kinds are skipped (procfs does the same, for
/// kernels that may add some); keys other than avgN and total are skipped.
pub fn parse_psi(text: &str, path: &Path) -> anyhow::Result<Psi> {
    let mut psi = Psi::default();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let mut fields = line.split_whitespace();
        let slot = match fields.next() {
            Some("some") => &mut psi.some,
            Some("full") => &mut psi.full,
            _ => continue,
        };
        let mut total = None;
        for kv in fields {
            let (key, value) = kv.split_once('=').ok_or_else(|| {
                anyhow!(
                    "parsing {} line {lineno}: expected key=value, found {kv:?}",
                    path.display()
                )
            })?;
            match key {
                "total" => {
                    total = Some(value.parse::<u64>().map_err(|_| {
                        anyhow!(
                            "parsing {} line {lineno}: total={value:?} is not an unsigned integer",
                            path.display()
                        )
                    })?)
                }
                "avg10" | "avg60" | "avg300" => {
                    parse_f64(value, path, lineno, key)?;
                }
                _ => {}
            }
        }
        *slot = Some(
            total.ok_or_else(|| anyhow!("parsing {} line {lineno}: no total=", path.display()))?,
        );
    }
    Ok(psi)
}

/// Reads a PSI file; `None` when the kernel has no such resource. A kernel
/// built with PSI but booted without it (`psi=0`) answers EOPNOTSUPP.
fn read_psi(path: &Path) -> anyhow::Result<Option<String>> {
    match crate::helpers::read_kept_bytes(path) {
        Ok(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| anyhow!("reading {}: not UTF-8 text", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Err(NoData(format!(
            "{}: pressure information is disabled, add psi=1 to the kernel command line to enable it",
            path.display()
        ))
        .into()),
        Err(e) => Err(anyhow!("reading {}: {e}", path.display())),
    }
}

const SOME: &str = "some";
const FULL: &str = "full";

/// Resource, which lines it must have, and the metrics: (line, name, help).
type Resource = (
    &'static str,
    &'static [(&'static str, &'static str, &'static str)],
);

const RESOURCES: [Resource; 4] = [
    (
        "cpu",
        &[(
            SOME,
            "node_pressure_cpu_waiting_seconds_total",
            "Total time in seconds that processes have waited for CPU time",
        )],
    ),
    (
        "io",
        &[
            (
                SOME,
                "node_pressure_io_waiting_seconds_total",
                "Total time in seconds that processes have waited due to IO congestion",
            ),
            (
                FULL,
                "node_pressure_io_stalled_seconds_total",
                "Total time in seconds no process could make progress due to IO congestion",
            ),
        ],
    ),
    (
        "memory",
        &[
            (
                SOME,
                "node_pressure_memory_waiting_seconds_total",
                "Total time in seconds that processes have waited for memory",
            ),
            (
                FULL,
                "node_pressure_memory_stalled_seconds_total",
                "Total time in seconds no process could make progress due to memory congestion",
            ),
        ],
    ),
    // IRQ pressure (Linux 6.1+, CONFIG_IRQ_TIME_ACCOUNTING) has only `full`.
    (
        "irq",
        &[(
            FULL,
            "node_pressure_irq_stalled_seconds_total",
            "Total time in seconds no process could make progress due to IRQ congestion",
        )],
    ),
];

struct Pressure {
    paths: Paths,
    /// Bit i: RESOURCES[i] has no file while others do (no irq pressure
    /// without CONFIG_IRQ_TIME_ACCOUNTING). What PSI a kernel has is fixed
    /// at boot, so such a file is not looked for again.
    missing: AtomicU8,
}

impl Collector for Pressure {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let mut found = 0;
        let known_missing = self.missing.load(Ordering::Relaxed);
        let mut missing = 0;
        for (i, (resource, metrics)) in RESOURCES.into_iter().enumerate() {
            if known_missing & (1 << i) != 0 {
                continue;
            }
            let path = self.paths.proc(&format!("pressure/{resource}"));
            let Some(text) = read_psi(&path)? else {
                missing |= 1 << i;
                continue;
            };
            let psi = parse_psi(&text, &path)?;
            for &(line, name, help) in metrics {
                let total = if line == SOME { psi.some } else { psi.full };
                let Some(total) = total else {
                    return Err(NoData(format!(
                        "{}: pressure information has no '{line}' data",
                        path.display()
                    ))
                    .into());
                };
                // Microseconds to seconds as node_exporter divides (two
                // steps round differently from one: 14036781 µs is
                // 14.036781000000001 s there).
                out.counter(name, help, &[], total as f64 / 1000.0 / 1000.0);
            }
            found += 1;
        }
        if found > 0 {
            self.missing
                .store(known_missing | missing, Ordering::Relaxed);
        }
        if found == 0 {
            return Err(NoData(format!(
                "{} does not exist: pressure information needs Linux 4.20+ with CONFIG_PSI",
                self.paths.proc("pressure").display()
            ))
            .into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helpers::is_no_data;

    const P: &str = "/proc/pressure/io";

    #[test]
    fn parses_some_and_full_totals() {
        let text = "some avg10=0.52 avg60=0.55 avg300=0.36 total=3883036\n\
                    full avg10=0.12 avg60=0.37 avg300=0.29 total=3420889\n";
        let psi = parse_psi(text, Path::new(P)).unwrap();
        assert_eq!(
            psi,
            Psi {
                some: Some(3883036),
                full: Some(3420889)
            }
        );
        let irq = parse_psi(
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=12\n",
            Path::new(P),
        );
        assert_eq!(
            irq.unwrap(),
            Psi {
                some: None,
                full: Some(12)
            }
        );
    }

    #[test]
    fn unknown_lines_and_keys_are_skipped() {
        let text = "some avg10=1.00 avg60=0.00 avg300=0.00 avg900=2.0 total=5\n\
                    partial avg10=0.00 total=7\n";
        let psi = parse_psi(text, Path::new(P)).unwrap();
        assert_eq!(psi.some, Some(5));
        assert_eq!(psi.full, None);
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        for (text, want) in [
            (
                "some avg10=0.00 avg60=0.00 avg300=0.00\n",
                "line 1: no total",
            ),
            ("some avg10=0.00 total=x\n", "line 1"),
            ("some avg10=0.00 total=1\nfull avg10 total=2\n", "line 2"),
            ("some avg10=zero total=1\n", "line 1"),
            ("some avg10=0.00 total=-1\n", "line 1"),
        ] {
            let err = parse_psi(text, Path::new(P)).unwrap_err().to_string();
            assert!(err.contains(P) && err.contains(want), "{want}: {err}");
        }
    }

    fn collect(files: &[(&str, &str)]) -> anyhow::Result<Vec<(String, f64)>> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pressure")).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join("pressure").join(name), text).unwrap();
        }
        let c = Pressure {
            paths: Paths {
                procfs: dir.path().to_path_buf(),
                ..Paths::default()
            },
            missing: AtomicU8::new(0),
        };
        let mut out = MetricSet::new();
        c.update(&mut out)?;
        Ok(out
            .families()
            .iter()
            .map(|f| match f.series[0].value {
                exporter_toolkit::exposition::Value::Single(v) => (f.name.to_string(), v),
                _ => unreachable!(),
            })
            .collect())
    }

    #[test]
    fn six_series_from_four_resources_in_seconds() {
        let both = "some avg10=0.00 avg60=0.00 avg300=0.00 total=2500000\n\
                    full avg10=0.00 avg60=0.00 avg300=0.00 total=1250000\n";
        let got = collect(&[
            ("cpu", both),
            ("io", both),
            ("memory", both),
            (
                "irq",
                "full avg10=0.00 avg60=0.00 avg300=0.00 total=62500\n",
            ),
        ])
        .unwrap();
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "node_pressure_cpu_waiting_seconds_total",
                "node_pressure_io_waiting_seconds_total",
                "node_pressure_io_stalled_seconds_total",
                "node_pressure_memory_waiting_seconds_total",
                "node_pressure_memory_stalled_seconds_total",
                "node_pressure_irq_stalled_seconds_total",
            ]
        );
        assert_eq!(got[0].1, 2.5);
        assert_eq!(got[2].1, 1.25);
        assert_eq!(got[5].1, 0.0625);
    }

    #[test]
    fn missing_resources() {
        // Old kernels: cpu without a full line, no irq file.
        let got = collect(&[("cpu", "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n")]).unwrap();
        assert_eq!(got.len(), 1);
        assert!(is_no_data(&collect(&[]).unwrap_err()));
        // io must have full.
        let err =
            collect(&[("io", "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n")]).unwrap_err();
        assert!(is_no_data(&err), "{err}");
    }

    /// A resource missing while others are there is not looked for again
    /// (the kernel's PSI does not change until reboot); one missing with
    /// all the others is.
    #[test]
    fn a_missing_resource_is_remembered_only_next_to_present_ones() {
        let dir = tempfile::tempdir().unwrap();
        let pressure = dir.path().join("pressure");
        std::fs::create_dir_all(&pressure).unwrap();
        let c = Pressure {
            paths: Paths {
                procfs: dir.path().to_path_buf(),
                ..Paths::default()
            },
            missing: AtomicU8::new(0),
        };
        let names = |c: &Pressure| {
            let mut out = MetricSet::new();
            let r = c.update(&mut out);
            (
                r.is_ok(),
                out.families()
                    .iter()
                    .map(|f| f.name.to_string())
                    .collect::<Vec<_>>(),
            )
        };
        assert!(!names(&c).0);
        let line = "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n";
        std::fs::write(pressure.join("cpu"), line).unwrap();
        assert_eq!(
            names(&c),
            (
                true,
                vec!["node_pressure_cpu_waiting_seconds_total".to_string()]
            )
        );
        std::fs::write(
            pressure.join("memory"),
            format!("{line}full avg10=0.00 avg60=0.00 avg300=0.00 total=2\n"),
        )
        .unwrap();
        let (ok, got) = names(&c);
        assert!(ok);
        assert_eq!(
            got,
            vec!["node_pressure_cpu_waiting_seconds_total".to_string()]
        );
    }
}
