//! `node_time_seconds`, `node_time_zone_offset_seconds` (from the clock and
//! the C library's view of the local time zone) and the clocksources of
//! /sys/devices/system/clocksource/clocksource*/.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::is_no_data;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "time",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        // SAFETY: tzset only (re)reads TZ and /etc/localtime into libc's
        // globals; it is called before any scrape thread uses localtime_r.
        unsafe { tzset() };
        Ok(Box::new(Time {
            paths: f.paths.clone(),
        }))
    },
};

struct Time {
    paths: Paths,
}

extern "C" {
    /// POSIX tzset(3); the libc crate does not declare it.
    fn tzset();
}

/// One clocksource device: the sources it offers and the one in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockSource {
    pub available: Vec<String>,
    pub current: String,
}

/// Parses `current_clocksource`: one name.
pub fn parse_current(current: &str, path: &Path) -> anyhow::Result<String> {
    let current = current.trim();
    if current.is_empty() || current.contains(char::is_whitespace) {
        return Err(anyhow!(
            "parsing {}: {current:?} is not a clocksource name",
            path.display()
        ));
    }
    Ok(current.to_string())
}

/// Parses `current_clocksource` and `available_clocksource` of one device.
pub fn parse_clocksource(
    available: &str,
    current: &str,
    current_path: &Path,
) -> anyhow::Result<ClockSource> {
    Ok(ClockSource {
        current: parse_current(current, current_path)?,
        available: available.split_whitespace().map(String::from).collect(),
    })
}

fn read(path: &Path) -> anyhow::Result<String> {
    crate::helpers::read_kept(path)
}

/// The time zone abbreviation and UTC offset in seconds for `secs`.
fn zone(secs: i64) -> anyhow::Result<(String, i64)> {
    // libc's `time_t` (64-bit with glibc and musl >= 1.2), by inference: the
    // alias itself is deprecated on musl.
    let t = secs as _;
    // SAFETY: tm is plain data; localtime_r fills it and is thread-safe.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return Err(anyhow!("localtime_r failed"));
    }
    let name = if tm.tm_zone.is_null() {
        String::new()
    } else {
        // SAFETY: tm_zone points at a NUL-terminated string owned by libc
        // that lives as long as the process' time zone data.
        unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }
            .to_string_lossy()
            .into_owned()
    };
    Ok((name, tm.tm_gmtoff as i64))
}

impl Time {
    fn clocksources(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let dir = self.paths.sys("devices/system/clocksource");
        let names = match crate::helpers::read_dir_names(&dir) {
            Ok(n) => n,
            // Like node_exporter's glob: no clocksource directory, no metrics.
            Err(e) if is_no_data(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        let devices = names.iter().filter(|n| {
            n.strip_prefix("clocksource")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        });
        for (i, name) in devices.enumerate() {
            let base = dir.join(name);
            let current_path = base.join("current_clocksource");
            // The current one first: it is the one that must not be empty.
            let current = parse_current(&read(&current_path)?, &current_path)?;
            let available = read(&base.join("available_clocksource"))?;
            let cs = parse_clocksource(&available, &current, &current_path)?;
            let device = i.to_string();
            for a in &cs.available {
                out.gauge(
                    "node_time_clocksource_available_info",
                    "Available clocksources read from '/sys/devices/system/clocksource'.",
                    &[("device", &device), ("clocksource", a)],
                    1.0,
                );
            }
            out.gauge(
                "node_time_clocksource_current_info",
                "Current clocksource read from '/sys/devices/system/clocksource'.",
                &[("device", &device), ("clocksource", &cs.current)],
                1.0,
            );
        }
        Ok(())
    }
}

impl Collector for Time {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| anyhow!("system clock before 1970: {e}"))?;
        // As node_exporter: float64(UnixNano()) / 1e9.
        let nanos = since_epoch.as_nanos() as i64;
        out.gauge(
            "node_time_seconds",
            "System time in seconds since epoch (1970).",
            &[],
            nanos as f64 / 1e9,
        );
        let (name, offset) = zone(since_epoch.as_secs() as i64)?;
        out.gauge(
            "node_time_zone_offset_seconds",
            "System time zone offset in seconds.",
            &[("time_zone", &name)],
            offset as f64,
        );
        self.clocksources(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocksource_files_parse() {
        let p = Path::new("/sys/x/current_clocksource");
        let cs = parse_clocksource("tsc kvm-clock acpi_pm \n", "tsc\n", p).unwrap();
        assert_eq!(cs.available, vec!["tsc", "kvm-clock", "acpi_pm"]);
        assert_eq!(cs.current, "tsc");
    }

    #[test]
    fn empty_current_clocksource_is_an_error_naming_the_file() {
        let p = Path::new("/sys/x/current_clocksource");
        let err = parse_clocksource("tsc", "\n", p).unwrap_err();
        assert!(err.to_string().contains("/sys/x/current_clocksource"));
    }

    #[test]
    fn zone_offset_is_sane() {
        let (name, off) = zone(1_700_000_000).unwrap();
        assert!(!name.is_empty());
        assert!(off.abs() <= 14 * 3600);
    }
}
