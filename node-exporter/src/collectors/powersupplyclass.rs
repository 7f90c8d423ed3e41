//! `node_power_supply_*` from /sys/class/power_supply/<supply>/, with
//! node_exporter's names and units: µA, µV, µWh, µAh and µW become A, V,
//! Wh, Ah and W; temperatures (tenths of °C) become °C; string attributes
//! go into the labels of `node_power_supply_info`.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;
use regex::Regex;

use super::CollectorSpec;
use crate::cli::string_flag;
use crate::collector::{Collector, Paths};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "powersupplyclass",
    default_enabled: true,
    flags: || {
        vec![string_flag(
            "collector.powersupply.ignored-supplies",
            "^$",
            "Regexp of power supplies to ignore for powersupplyclass collector.",
        )]
    },
    build: |f| {
        let ignored = f
            .regex("collector.powersupply.ignored-supplies")?
            .unwrap_or(Regex::new("^$")?);
        Ok(Box::new(PowerSupplyClass {
            paths: f.paths.clone(),
            ignored,
        }))
    },
};

struct PowerSupplyClass {
    paths: Paths,
    ignored: Regex,
}

/// How a numeric attribute is reported.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Scale {
    /// As is (percent, counts, seconds, booleans).
    One,
    /// Micro-units to units.
    Micro,
    /// Tenths of a degree to degrees.
    Deci,
}

/// Numeric attributes: (sysfs file, metric name suffix, scale).
const NUMERIC: &[(&str, &str, Scale)] = &[
    ("authentic", "authentic", Scale::One),
    ("calibrate", "calibrate", Scale::One),
    ("capacity", "capacity", Scale::One),
    ("capacity_alert_max", "capacity_alert_max", Scale::One),
    ("capacity_alert_min", "capacity_alert_min", Scale::One),
    ("cycle_count", "cyclecount", Scale::One),
    ("online", "online", Scale::One),
    ("present", "present", Scale::One),
    ("time_to_empty_now", "time_to_empty_seconds", Scale::One),
    ("time_to_full_now", "time_to_full_seconds", Scale::One),
    ("current_boot", "current_boot", Scale::Micro),
    ("current_max", "current_max", Scale::Micro),
    ("current_now", "current_ampere", Scale::Micro),
    ("energy_empty", "energy_empty", Scale::Micro),
    ("energy_empty_design", "energy_empty_design", Scale::Micro),
    ("energy_full", "energy_full", Scale::Micro),
    ("energy_full_design", "energy_full_design", Scale::Micro),
    ("energy_now", "energy_watthour", Scale::Micro),
    ("voltage_boot", "voltage_boot", Scale::Micro),
    ("voltage_max", "voltage_max", Scale::Micro),
    ("voltage_max_design", "voltage_max_design", Scale::Micro),
    ("voltage_min", "voltage_min", Scale::Micro),
    ("voltage_min_design", "voltage_min_design", Scale::Micro),
    ("voltage_now", "voltage_volt", Scale::Micro),
    ("voltage_ocv", "voltage_ocv", Scale::Micro),
    ("charge_control_limit", "charge_control_limit", Scale::Micro),
    (
        "charge_control_limit_max",
        "charge_control_limit_max",
        Scale::Micro,
    ),
    ("charge_counter", "charge_counter", Scale::Micro),
    ("charge_empty", "charge_empty", Scale::Micro),
    ("charge_empty_design", "charge_empty_design", Scale::Micro),
    ("charge_full", "charge_full", Scale::Micro),
    ("charge_full_design", "charge_full_design", Scale::Micro),
    ("charge_now", "charge_ampere", Scale::Micro),
    ("charge_term_current", "charge_term_current", Scale::Micro),
    (
        "constant_charge_current",
        "constant_charge_current",
        Scale::Micro,
    ),
    (
        "constant_charge_current_max",
        "constant_charge_current_max",
        Scale::Micro,
    ),
    (
        "constant_charge_voltage",
        "constant_charge_voltage",
        Scale::Micro,
    ),
    (
        "constant_charge_voltage_max",
        "constant_charge_voltage_max",
        Scale::Micro,
    ),
    ("precharge_current", "precharge_current", Scale::Micro),
    ("input_current_limit", "input_current_limit", Scale::Micro),
    ("power_now", "power_watt", Scale::Micro),
    ("temp", "temp_celsius", Scale::Deci),
    ("temp_alert_max", "temp_alert_max_celsius", Scale::Deci),
    ("temp_alert_min", "temp_alert_min_celsius", Scale::Deci),
    ("temp_ambient", "temp_ambient_celsius", Scale::Deci),
    ("temp_ambient_max", "temp_ambient_max_celsius", Scale::Deci),
    ("temp_ambient_min", "temp_ambient_min_celsius", Scale::Deci),
    ("temp_max", "temp_max_celsius", Scale::Deci),
    ("temp_min", "temp_min_celsius", Scale::Deci),
];

/// Numeric attributes procfs parses (so a garbage value there fails the
/// collector, as in node_exporter) but node_exporter does not report.
const NUMERIC_UNREPORTED: &[&str] = &[
    "charge_avg",
    "current_avg",
    "energy_avg",
    "power_avg",
    "time_to_empty_avg",
    "time_to_full_avg",
    "voltage_avg",
];

/// String attributes that become labels of `node_power_supply_info`.
const STRINGS: &[&str] = &[
    "capacity_level",
    "charge_type",
    "health",
    "manufacturer",
    "model_name",
    "serial_number",
    "status",
    "technology",
    "type",
    "usb_type",
    "scope",
];

/// One power supply: its numeric metrics (metric suffix, value) and info
/// labels (name, value), both sorted.
#[derive(Debug, Default, PartialEq)]
pub struct PowerSupply {
    pub name: String,
    pub values: Vec<(&'static str, f64)>,
    pub info: Vec<(&'static str, String)>,
}

/// Parses one numeric attribute as procfs does (a signed integer).
pub fn parse_value(text: &str, path: &Path) -> anyhow::Result<i64> {
    let t = text.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => i64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    };
    parsed.ok_or_else(|| anyhow!("parsing {}: {t:?} is not an integer", path.display()))
}

/// Reads a sysfs attribute with a single read(2), trimmed. `None` for the
/// errors procfs skips: missing, not supported, no such device, invalid.
fn read_attr(path: &Path) -> anyhow::Result<Option<String>> {
    match crate::helpers::read_sysfs_attr(path) {
        Ok(s) => Ok(Some(s)),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::ENODEV | libc::EINVAL | libc::ENODATA)
                ) =>
        {
            Ok(None)
        }
        Err(e) => Err(anyhow!("reading {}: {e}", path.display())),
    }
}

/// Reads one power supply directory.
pub fn read_power_supply(dir: &Path, name: &str) -> anyhow::Result<PowerSupply> {
    let rd = std::fs::read_dir(dir).map_err(|e| anyhow!("listing {}: {e}", dir.display()))?;
    let mut ps = PowerSupply {
        name: name.to_string(),
        ..Default::default()
    };
    for entry in rd.filter_map(|e| e.ok()) {
        // Like procfs: only regular files (not `device`, `subsystem`, `power/`).
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let numeric = NUMERIC.iter().find(|(f, _, _)| *f == file);
        let string = STRINGS.iter().find(|f| **f == file);
        let unreported = NUMERIC_UNREPORTED.contains(&file);
        if numeric.is_none() && string.is_none() && !unreported {
            continue;
        }
        let path = dir.join(file);
        let Some(text) = read_attr(&path)? else {
            continue;
        };
        if let Some(&(_, metric, scale)) = numeric {
            let v = parse_value(&text, &path)? as f64;
            let v = match scale {
                Scale::One => v,
                Scale::Micro => v / 1e6,
                Scale::Deci => v / 10.0,
            };
            ps.values.push((metric, v));
        } else if let Some(&label) = string {
            if !text.is_empty() {
                ps.info.push((label, text));
            }
        } else {
            parse_value(&text, &path)?;
        }
    }
    ps.values.sort_by(|a, b| a.0.cmp(b.0));
    ps.info.sort();
    Ok(ps)
}

/// Adds the metrics of one power supply.
pub fn report(ps: &PowerSupply, out: &mut MetricSet) {
    for (metric, v) in &ps.values {
        out.gauge(
            format!("node_power_supply_{metric}"),
            format!("{metric} value of /sys/class/power_supply/<power_supply>."),
            &[("power_supply", &ps.name)],
            *v,
        );
    }
    let mut labels: Vec<(&str, &str)> = vec![("power_supply", &ps.name)];
    labels.extend(ps.info.iter().map(|(k, v)| (*k, v.as_str())));
    out.gauge(
        "node_power_supply_info",
        "info of /sys/class/power_supply/<power_supply>.",
        &labels,
        1.0,
    );
}

impl Collector for PowerSupplyClass {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let base = self.paths.sys("class/power_supply");
        let mut found = false;
        for name in crate::helpers::read_dir_names(&base)? {
            if self.ignored.is_match(&name) {
                continue;
            }
            found = true;
            let ps = read_power_supply(&base.join(&name), &name)?;
            report(&ps, out);
        }
        crate::collector::devices_found(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::write;
    use exporter_toolkit::exposition::{encode, Format};

    #[test]
    fn units_and_info_labels() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "BAT0/voltage_now", "12345000\n");
        write(r, "BAT0/temp", "301\n");
        write(r, "BAT0/capacity", "85\n");
        write(r, "BAT0/cycle_count", "0\n");
        write(r, "BAT0/status", "Discharging\n");
        write(r, "BAT0/serial_number", "\n");
        write(r, "BAT0/uevent", "POWER_SUPPLY_NAME=BAT0\n");
        write(r, "BAT0/voltage_avg", "12000000\n");
        let ps = read_power_supply(&r.join("BAT0"), "BAT0").unwrap();
        let mut set = MetricSet::new();
        report(&ps, &mut set);
        let out = encode(&set.finish().unwrap(), Format::Text);
        assert!(out.contains("node_power_supply_voltage_volt{power_supply=\"BAT0\"} 12.345\n"));
        assert!(out.contains("node_power_supply_temp_celsius{power_supply=\"BAT0\"} 30.1\n"));
        assert!(out.contains("node_power_supply_capacity{power_supply=\"BAT0\"} 85\n"));
        assert!(out.contains("node_power_supply_cyclecount{power_supply=\"BAT0\"} 0\n"));
        assert!(out
            .contains("node_power_supply_info{power_supply=\"BAT0\",status=\"Discharging\"} 1\n"));
        assert!(out.contains(
            "# HELP node_power_supply_capacity capacity value of /sys/class/power_supply/<power_supply>.\n"
        ));
        assert!(!out.contains("avg"));
    }

    #[test]
    fn garbage_fails_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "BAT0/capacity", "full\n");
        let err = read_power_supply(&r.join("BAT0"), "BAT0").unwrap_err();
        assert!(err.to_string().contains("BAT0/capacity"), "{err}");
        write(r, "BAT0/capacity", "50\n");
        write(r, "BAT0/power_avg", "?\n");
        assert!(read_power_supply(&r.join("BAT0"), "BAT0").is_err());
    }

    #[test]
    fn values_parse_like_procfs() {
        let p = Path::new("/x");
        assert_eq!(parse_value("-5\n", p).unwrap(), -5);
        assert_eq!(parse_value("0x10", p).unwrap(), 16);
        assert!(parse_value("", p).is_err());
    }
}
