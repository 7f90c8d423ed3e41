//! `node_thermal_zone_temp` from /sys/class/thermal/thermal_zone*/ and
//! `node_cooling_device_{cur,max}_state` from
//! /sys/class/thermal/cooling_device*/.
//!
//! As node_exporter (procfs): a zone whose `mode` is `disabled`, or whose
//! `type`/`policy`/`temp` cannot be read (ENODATA, EAGAIN, missing), is
//! skipped, and so is a cooling device with an unreadable attribute; a
//! value that is not a number fails the collector.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::read_sysfs_attr;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "thermal_zone",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(ThermalZone {
            paths: f.paths.clone(),
        }))
    },
};

struct ThermalZone {
    paths: Paths,
}

/// Parses an integer attribute (millidegrees Celsius, or a cooling state),
/// naming the file on error.
pub fn parse_int(text: &str, path: &Path) -> anyhow::Result<i64> {
    crate::helpers::parse_attr(text, path, "an integer")
}

/// Reads the attributes `names` of `dir`. Any I/O error (ENODATA or
/// EAGAIN from a sensor without a value right now, a missing file) makes
/// the zone or device skipped, as node_exporter does; it is logged at debug.
fn read_attrs<const N: usize>(dir: &Path, names: [&str; N]) -> Option<[String; N]> {
    let mut out: [String; N] = std::array::from_fn(|_| String::new());
    for (slot, name) in out.iter_mut().zip(names) {
        let path = dir.join(name);
        match read_sysfs_attr(&path) {
            Ok(v) => *slot = v,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "skipping thermal entry");
                return None;
            }
        }
    }
    Some(out)
}

#[derive(Debug, PartialEq)]
pub struct Zone {
    pub zone: String,
    pub kind: String,
    pub millicelsius: i64,
}

/// Reads one thermal zone; `None` if it is disabled or unreadable.
fn read_zone(dir: &Path, zone: &str) -> anyhow::Result<Option<Zone>> {
    match read_sysfs_attr(&dir.join("mode")) {
        Ok(mode) if mode == "disabled" => return Ok(None),
        Ok(_) => {}
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.kind() == std::io::ErrorKind::PermissionDenied => {}
        Err(e) => return Err(anyhow!("reading {}: {e}", dir.join("mode").display())),
    }
    // The temperature first: a value that is not a number is an error even
    // if the zone is otherwise incomplete.
    let Some([temp]) = read_attrs(dir, ["temp"]) else {
        return Ok(None);
    };
    let millicelsius = parse_int(&temp, &dir.join("temp"))?;
    let Some([kind, _policy]) = read_attrs(dir, ["type", "policy"]) else {
        return Ok(None);
    };
    Ok(Some(Zone {
        zone: zone.to_string(),
        kind,
        millicelsius,
    }))
}

#[derive(Debug, PartialEq)]
pub struct CoolingDevice {
    pub name: String,
    pub kind: String,
    pub cur_state: i64,
    pub max_state: i64,
}

/// Reads one cooling device; `None` if its attributes cannot be read.
fn read_cooling_device(dir: &Path, name: &str) -> anyhow::Result<Option<CoolingDevice>> {
    let Some([cur, max]) = read_attrs(dir, ["cur_state", "max_state"]) else {
        return Ok(None);
    };
    // cur_state may be -1 (intel_powerclamp).
    let cur_state = parse_int(&cur, &dir.join("cur_state"))?;
    let max_state = parse_int(&max, &dir.join("max_state"))?;
    let Some([kind]) = read_attrs(dir, ["type"]) else {
        return Ok(None);
    };
    Ok(Some(CoolingDevice {
        name: name.to_string(),
        kind,
        cur_state,
        max_state,
    }))
}

impl Collector for ThermalZone {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let base = self.paths.sys("class/thermal");
        let zones = crate::helpers::numbered_entries(&base, "thermal_zone")?;
        let cooling = crate::helpers::numbered_entries(&base, "cooling_device")?;
        let found = !zones.is_empty() || !cooling.is_empty();
        for (dir, num) in zones {
            if let Some(z) = read_zone(&base.join(&dir), &num)? {
                out.gauge(
                    "node_thermal_zone_temp",
                    "Zone temperature in Celsius",
                    &[("zone", &z.zone), ("type", &z.kind)],
                    z.millicelsius as f64 / 1000.0,
                );
            }
        }
        for (dir, num) in cooling {
            if let Some(d) = read_cooling_device(&base.join(&dir), &num)? {
                let labels = [("name", d.name.as_str()), ("type", d.kind.as_str())];
                out.gauge(
                    "node_cooling_device_cur_state",
                    "Current throttle state of the cooling device",
                    &labels,
                    d.cur_state as f64,
                );
                out.gauge(
                    "node_cooling_device_max_state",
                    "Maximum throttle state of the cooling device",
                    &labels,
                    d.max_state as f64,
                );
            }
        }
        crate::collector::devices_found(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::write;

    #[test]
    fn disabled_and_incomplete_zones_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "tz0/type", "acpitz\n");
        write(r, "tz0/policy", "step_wise\n");
        write(r, "tz0/temp", "-1500\n");
        assert_eq!(
            read_zone(&r.join("tz0"), "0").unwrap(),
            Some(Zone {
                zone: "0".into(),
                kind: "acpitz".into(),
                millicelsius: -1500
            })
        );
        write(r, "tz0/mode", "disabled\n");
        assert_eq!(read_zone(&r.join("tz0"), "0").unwrap(), None);
        write(r, "tz1/type", "x86_pkg_temp\n");
        write(r, "tz1/temp", "40000\n");
        assert_eq!(read_zone(&r.join("tz1"), "1").unwrap(), None);
    }

    #[test]
    fn garbage_temperature_fails_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "tz0/type", "acpitz\n");
        write(r, "tz0/policy", "step_wise\n");
        write(r, "tz0/temp", "hot\n");
        let err = read_zone(&r.join("tz0"), "0").unwrap_err();
        assert!(err.to_string().contains("tz0/temp"), "{err}");
    }

    #[test]
    fn cooling_state_may_be_negative() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "cd0/type", "intel_powerclamp\n");
        write(r, "cd0/max_state", "50\n");
        write(r, "cd0/cur_state", "-1\n");
        let d = read_cooling_device(&r.join("cd0"), "0").unwrap().unwrap();
        assert_eq!((d.cur_state, d.max_state), (-1, 50));
        write(r, "cd0/max_state", "\n");
        assert!(read_cooling_device(&r.join("cd0"), "0").is_err());
    }

    #[test]
    fn only_numbered_entries_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for d in [
            "thermal_zone1",
            "thermal_zone0",
            "thermal_zoneX",
            "cooling_device0",
        ] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        let got = crate::helpers::numbered_entries(r, "thermal_zone").unwrap();
        assert_eq!(
            got,
            vec![
                ("thermal_zone0".to_string(), "0".to_string()),
                ("thermal_zone1".to_string(), "1".to_string())
            ]
        );
    }
}
