//! `node_hwmon_*` from /sys/class/hwmon/hwmon*/ (and, for old drivers, the
//! attributes of their `device/`), named and scaled as node_exporter does:
//! a chip is named after its device path (`platform_coretemp_0`,
//! `pci0000:00_0000:00:18_3`), else its `name` file, else `hwmonN`; each
//! `<type><n>_<property>` file becomes `node_hwmon_<type>_<property>` with
//! a unit (`_celsius`, `_volts`, `_amps`, `_watt`, `_rpm`, ...) and
//! `{chip, sensor}` labels.
//!
//! As in node_exporter, an attribute that cannot be read or is not a
//! number is skipped (hwmon drivers answer EIO/ENODATA/EAGAIN for sensors
//! that are not wired, and some attributes are strings); such skips are
//! logged at debug level with the file.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use exporter_toolkit::exposition::{MetricSet, MetricType, Value};

use super::CollectorSpec;
use crate::cli::string_flag;
use crate::collector::{Absent, Collector, Paths};
use crate::device_filter::DeviceFilter;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "hwmon",
    default_enabled: true,
    flags: || {
        vec![
            string_flag(
                "collector.hwmon.chip-include",
                "",
                "Regexp of hwmon chip to include (mutually exclusive to device-exclude).",
            ),
            string_flag(
                "collector.hwmon.chip-exclude",
                "",
                "Regexp of hwmon chip to exclude (mutually exclusive to device-include).",
            ),
            string_flag(
                "collector.hwmon.sensor-include",
                "",
                "Regexp of hwmon sensor to include (mutually exclusive to sensor-exclude).",
            ),
            string_flag(
                "collector.hwmon.sensor-exclude",
                "",
                "Regexp of hwmon sensor to exclude (mutually exclusive to sensor-include).",
            ),
        ]
    },
    build: |f| {
        Ok(Box::new(Hwmon {
            paths: f.paths.clone(),
            chips: DeviceFilter::from_regexes(
                f.regex("collector.hwmon.chip-exclude")?,
                f.regex("collector.hwmon.chip-include")?,
            ),
            sensors: DeviceFilter::from_regexes(
                f.regex("collector.hwmon.sensor-exclude")?,
                f.regex("collector.hwmon.sensor-include")?,
            ),
        }))
    },
};

struct Hwmon {
    paths: Paths,
    chips: DeviceFilter,
    sensors: DeviceFilter,
}

/// The sensor types node_exporter reads (the `<type>` of `<type><n>_<prop>`).
const SENSOR_TYPES: [&str; 14] = [
    "vrm",
    "beep_enable",
    "update_interval",
    "in",
    "cpu",
    "fan",
    "pwm",
    "temp",
    "curr",
    "power",
    "energy",
    "humidity",
    "intrusion",
    "freq",
];

/// Lower-cases and replaces everything but `[a-z0-9:_]` with `_`, then
/// trims `_` from both ends (node_exporter's `cleanMetricName`).
pub fn clean_name(raw: &str) -> String {
    let replaced: String = raw
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == ':' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    replaced.trim_matches('_').to_string()
}

/// Splits an attribute file name into (type, number, property) as
/// node_exporter's `^(?P<type>[^0-9]+)(?P<id>[0-9]*)?(_(?P<property>.+))?$`:
/// `temp1_crit_alarm` is ("temp", 1, "crit_alarm"), `beep_enable` is
/// ("beep_enable", 0, ""), `pwm2` is ("pwm", 2, "").
pub fn explode_sensor_filename(name: &str) -> Option<(&str, u64, &str)> {
    let type_len = name
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(name.len());
    if type_len == 0 {
        return None;
    }
    let (kind, rest) = name.split_at(type_len);
    let id_len = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (id, rest) = rest.split_at(id_len);
    let num = if id.is_empty() { 0 } else { id.parse().ok()? };
    if rest.is_empty() {
        return Some((kind, num, ""));
    }
    // Without digits, the type regex swallowed the whole name already.
    let property = rest.strip_prefix('_').filter(|p| !p.is_empty())?;
    Some((kind, num, property))
}

/// Reads a sysfs attribute with a single read(2), as node_exporter does
/// (some hwmon drivers answer EAGAIN forever), and strips newlines.
fn read_attr(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = [0u8; 4096];
    let n = f.read(&mut buf)?;
    Ok(crate::helpers::to_valid_utf8(buf.get(..n).unwrap_or(&[]))
        .trim_matches('\n')
        .to_string())
}

/// sensor (`temp1`) -> property (`input`, `label`, `` for the bare file) -> raw value.
type SensorData = BTreeMap<String, BTreeMap<String, String>>;

/// Reads every sensor attribute file of `dir` into `data`.
fn collect_sensor_data(dir: &Path, data: &mut SensorData) -> anyhow::Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| anyhow!("listing {}: {e}", dir.display()))?;
    for entry in rd.filter_map(|e| e.ok()) {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let Some((kind, num, property)) = explode_sensor_filename(file) else {
            continue;
        };
        if !SENSOR_TYPES.contains(&kind) {
            continue;
        }
        let path = dir.join(file);
        match read_attr(&path) {
            Ok(value) => {
                data.entry(format!("{kind}{num}"))
                    .or_default()
                    .insert(property.to_string(), value);
            }
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "hwmon: skipping unreadable attribute");
            }
        }
    }
    Ok(())
}

/// The last path element of `p`, as a string.
fn base(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// node_exporter's chip name: from the device the hwmon belongs to
/// (`<parent dir>_<device dir>`; see [`unique_chip_names`] for a device with
/// several), else the `name` file, else
/// the hwmon directory's own name.
pub fn chip_name(dir: &Path) -> anyhow::Result<String> {
    if let Ok(device) = std::fs::canonicalize(dir.join("device")) {
        let dev_name = clean_name(&base(&device));
        let dev_type = device.parent().map(base).map(|t| clean_name(&t));
        match dev_type {
            Some(t) if !t.is_empty() && !dev_name.is_empty() => {
                return Ok(format!("{t}_{dev_name}"))
            }
            _ if !dev_name.is_empty() => return Ok(dev_name),
            _ => {}
        }
    }
    if let Ok(name) = crate::helpers::read_to_string(dir.join("name")) {
        let name = clean_name(&name);
        if !name.is_empty() {
            return Ok(name);
        }
    }
    let real =
        std::fs::canonicalize(dir).map_err(|e| anyhow!("resolving {}: {e}", dir.display()))?;
    let name = clean_name(&base(&real));
    if name.is_empty() {
        return Err(anyhow!(
            "could not derive a monitoring name for {}",
            dir.display()
        ));
    }
    Ok(name)
}

/// A device with several hwmon directories (a wifi card with one per
/// radio, asus-nb-wmi) gives them all the device's chip name: as
/// node_exporter does, each of those gets `_<name file>` appended, or
/// `_hwmonN` when it has no name or that name is taken too.
fn unique_chip_names(chips: &mut [(PathBuf, String)]) {
    let mut count: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (_, chip) in chips.iter() {
        *count.entry(chip.clone()).or_default() += 1;
    }
    let mut taken: HashSet<String> = chips.iter().map(|(_, c)| c.clone()).collect();
    for (dir, chip) in chips.iter_mut() {
        if count.get(chip.as_str()).copied().unwrap_or(0) < 2 {
            continue;
        }
        let by_name = human_chip_name(dir).map(|n| format!("{chip}_{n}"));
        let fallback = || {
            let real = std::fs::canonicalize(&*dir).unwrap_or_else(|_| dir.clone());
            format!("{chip}_{}", clean_name(&base(&real)))
        };
        let name = match by_name {
            Some(n) if !taken.contains(&n) => n,
            _ => fallback(),
        };
        taken.insert(name.clone());
        *chip = name;
    }
}

/// The human-readable chip type from the `name` file, if any.
fn human_chip_name(dir: &Path) -> Option<String> {
    let name = clean_name(&crate::helpers::read_to_string(dir.join("name")).ok()?);
    (!name.is_empty()).then_some(name)
}

fn gauge(out: &mut MetricSet, name: String, help: String, labels: &[(&'static str, &str)], v: f64) {
    out.push(name, help, MetricType::Gauge, labels, Value::Single(v));
}

/// Adds the metrics of one chip's sensors, as node_exporter's
/// `updateHwmon` does. `dir` is only used to name skipped attributes.
pub fn report_chip(
    chip: &str,
    data: &SensorData,
    sensors: &dyn Fn(&str) -> bool,
    dir: &Path,
    out: &mut MetricSet,
) {
    for (sensor, props) in data {
        if !sensors(&format!("{chip};{sensor}")) {
            continue;
        }
        let Some((kind, _, _)) = explode_sensor_filename(sensor) else {
            continue;
        };
        let labels = [("chip", chip), ("sensor", sensor.as_str())];
        if let Some(label) = props.get("label") {
            out.gauge(
                "node_hwmon_sensor_label",
                "Label for given chip and sensor",
                &[("chip", chip), ("sensor", sensor), ("label", label)],
                1.0,
            );
        }
        let bare = props.get("").map(String::as_str);
        match kind {
            "beep_enable" => {
                let v = if bare == Some("1") { 1.0 } else { 0.0 };
                out.gauge(
                    "node_hwmon_beep_enabled",
                    "Hardware beep enabled",
                    &labels,
                    v,
                );
                continue;
            }
            "vrm" => {
                if let Some(v) = bare.and_then(|b| b.parse::<f64>().ok()) {
                    out.gauge(
                        "node_hwmon_voltage_regulator_version",
                        "Hardware voltage regulator",
                        &labels,
                        v,
                    );
                }
                continue;
            }
            "update_interval" => {
                if let Some(v) = bare.and_then(|b| b.parse::<f64>().ok()) {
                    out.gauge(
                        "node_hwmon_update_interval_seconds",
                        "Hardware monitor update interval",
                        &labels,
                        v * 0.001,
                    );
                }
                continue;
            }
            _ => {}
        }
        let prefix = format!("node_hwmon_{kind}");
        for (element, raw) in props {
            if element == "label" {
                continue;
            }
            let mut name = prefix.clone();
            if element == "input" {
                if bare.is_some() {
                    name.push_str("_input");
                }
            } else if !element.is_empty() {
                name.push('_');
                name.push_str(&clean_name(element));
            }
            let Ok(v) = raw.parse::<f64>() else {
                let file = if element.is_empty() {
                    sensor.clone()
                } else {
                    format!("{sensor}_{element}")
                };
                tracing::debug!(
                    path = %dir.join(file).display(),
                    value = %raw,
                    "hwmon: skipping attribute that is not a number"
                );
                continue;
            };
            emit_element(out, &name, kind, element, v, &labels, props);
        }
    }
}

/// One element of one sensor, with node_exporter's unit and help.
fn emit_element(
    out: &mut MetricSet,
    name: &str,
    kind: &str,
    element: &str,
    v: f64,
    labels: &[(&'static str, &str)],
    props: &BTreeMap<String, String>,
) {
    if element == "fault" || element == "alarm" {
        let help = format!("Hardware sensor {element} status ({kind})");
        return gauge(out, name.to_string(), help, labels, v);
    }
    if element == "beep" {
        let help = "Hardware monitor sensor has beeping enabled".to_string();
        return gauge(out, format!("{name}_enabled"), help, labels, v);
    }
    match kind {
        "in" | "cpu" => {
            let help = format!("Hardware monitor for voltage ({element})");
            return gauge(out, format!("{name}_volts"), help, labels, v * 0.001);
        }
        "temp" if element != "type" => {
            let element = if element.is_empty() { "input" } else { element };
            let help = format!("Hardware monitor for temperature ({element})");
            return gauge(out, format!("{name}_celsius"), help, labels, v * 0.001);
        }
        "curr" => {
            let help = format!("Hardware monitor for current ({element})");
            return gauge(out, format!("{name}_amps"), help, labels, v * 0.001);
        }
        "energy" => {
            let help = format!("Hardware monitor for joules used so far ({element})");
            out.push(
                format!("{name}_joule_total"),
                help,
                MetricType::Counter,
                labels,
                Value::Single(v / 1_000_000.0),
            );
            return;
        }
        "power" if element == "accuracy" => {
            let help = "Hardware monitor power meter accuracy, as a ratio".to_string();
            return gauge(out, name.to_string(), help, labels, v / 1_000_000.0);
        }
        "power"
            if matches!(
                element,
                "average_interval" | "average_interval_min" | "average_interval_max"
            ) =>
        {
            let help = format!("Hardware monitor power usage update interval ({element})");
            return gauge(out, format!("{name}_seconds"), help, labels, v * 0.001);
        }
        "power" => {
            let help = format!("Hardware monitor for power usage in watts ({element})");
            return gauge(out, format!("{name}_watt"), help, labels, v / 1_000_000.0);
        }
        "humidity" => {
            let help = format!(
                "Hardware monitor for humidity, as a ratio (multiply with 100.0 to get the \
                 humidity as a percentage) ({element})"
            );
            return gauge(out, name.to_string(), help, labels, v / 1_000_000.0);
        }
        "fan" if matches!(element, "input" | "min" | "max" | "target") => {
            let help = format!("Hardware monitor for fan revolutions per minute ({element})");
            return gauge(out, format!("{name}_rpm"), help, labels, v);
        }
        "freq" if element == "input" => {
            // Only labelled frequencies (GPU clocks), keyed by the label.
            if let Some(label) = props.get("label") {
                let chip = labels.first().map(|l| l.1).unwrap_or("");
                let sensor = clean_name(label);
                gauge(
                    out,
                    format!("{name}_freq_mhz"),
                    "Hardware monitor for GPU frequency in MHz".to_string(),
                    &[("chip", chip), ("sensor", &sensor)],
                    v / 1_000_000.0,
                );
            }
            return;
        }
        _ => {}
    }
    let help = format!("Hardware monitor {kind} element {element}");
    gauge(out, name.to_string(), help, labels, v)
}

impl Hwmon {
    fn update_chip(
        &self,
        dir: &Path,
        chip: String,
        seen: &mut HashSet<String>,
        out: &mut MetricSet,
    ) -> anyhow::Result<()> {
        if self.chips.ignored(&chip) {
            tracing::debug!(chip = %chip, "ignoring hwmon chip");
            return Ok(());
        }
        if !seen.insert(chip.clone()) {
            // Left after `unique_chip_names`: would give duplicate series.
            tracing::debug!(chip = %chip, dir = %dir.display(), "skipping hwmon chip with a name already seen");
            return Ok(());
        }
        let mut data = SensorData::new();
        collect_sensor_data(dir, &mut data)?;
        let device = dir.join("device");
        if device.is_dir() {
            collect_sensor_data(&device, &mut data)?;
        }
        if let Some(human) = human_chip_name(dir) {
            out.gauge(
                "node_hwmon_chip_names",
                "Annotation metric for human-readable chip names",
                &[("chip", &chip), ("chip_name", &human)],
                1.0,
            );
        }
        let keep = |s: &str| !self.sensors.ignored(s);
        report_chip(&chip, &data, &keep, dir, out);
        Ok(())
    }
}

impl Collector for Hwmon {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let class = self.paths.sys("class/hwmon");
        let names = match std::fs::read_dir(&class) {
            Ok(rd) => {
                let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
                v.sort();
                v
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Absent::missing(&class))
            }
            Err(e) => return Err(anyhow!("listing {}: {e}", class.display())),
        };
        let mut last_err = None;
        let mut chips = Vec::with_capacity(names.len());
        for dir in names {
            // /sys/class/hwmon/hwmonN are symlinks to the device's hwmon directory.
            if !std::fs::metadata(&dir).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            match chip_name(&dir) {
                Ok(chip) => chips.push((dir, chip)),
                Err(e) => last_err = Some(e),
            }
        }
        unique_chip_names(&mut chips);
        let mut seen = HashSet::new();
        for (dir, chip) in chips {
            if let Err(e) = self.update_chip(&dir, chip, &mut seen, out) {
                last_err = Some(e);
            }
        }
        match last_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exporter_toolkit::exposition::{encode, Format};
    use regex::Regex;

    #[test]
    fn filenames_split_like_node_exporter() {
        assert_eq!(
            explode_sensor_filename("temp1_input"),
            Some(("temp", 1, "input"))
        );
        assert_eq!(
            explode_sensor_filename("temp1_crit_alarm"),
            Some(("temp", 1, "crit_alarm"))
        );
        assert_eq!(explode_sensor_filename("pwm2"), Some(("pwm", 2, "")));
        assert_eq!(
            explode_sensor_filename("in0_input"),
            Some(("in", 0, "input"))
        );
        assert_eq!(
            explode_sensor_filename("beep_enable"),
            Some(("beep_enable", 0, ""))
        );
        assert_eq!(
            explode_sensor_filename("pwm1_auto_point1_pwm"),
            Some(("pwm", 1, "auto_point1_pwm"))
        );
        assert_eq!(explode_sensor_filename("name"), Some(("name", 0, "")));
        assert_eq!(explode_sensor_filename("1abc"), None);
        assert_eq!(explode_sensor_filename("temp1_"), None);
        assert_eq!(explode_sensor_filename("temp1x"), None);
    }

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_name("coretemp.0"), "coretemp_0");
        assert_eq!(clean_name("0000:00:18.3"), "0000:00:18_3");
        assert_eq!(clean_name("Package id 0\n"), "package_id_0");
        assert_eq!(clean_name("__x__"), "x");
    }

    fn render(data: &SensorData) -> String {
        let mut set = MetricSet::new();
        report_chip("platform_x_0", data, &|_| true, Path::new("/h"), &mut set);
        encode(&set.finish().unwrap(), Format::Text)
    }

    fn sensor(props: &[(&str, &str)]) -> BTreeMap<String, String> {
        props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn units_and_names() {
        let mut data = SensorData::new();
        data.insert(
            "temp1".into(),
            sensor(&[
                ("input", "45500"),
                ("crit_alarm", "0"),
                ("label", "Package id 0"),
                ("alarm", "1"),
                ("type", "4"),
            ]),
        );
        data.insert("in2".into(), sensor(&[("input", "3312"), ("beep", "0")]));
        data.insert(
            "power1".into(),
            sensor(&[
                ("average", "15000000"),
                ("average_interval", "1000"),
                ("accuracy", "950000"),
                ("model_number", "ACPI000D"),
            ]),
        );
        data.insert("energy1".into(), sensor(&[("input", "2000000")]));
        data.insert("fan1".into(), sensor(&[("input", "1200"), ("pulses", "2")]));
        data.insert("pwm1".into(), sensor(&[("", "128")]));
        data.insert("beep_enable0".into(), sensor(&[("", "1")]));
        let out = render(&data);
        for want in [
            "# HELP node_hwmon_temp_celsius Hardware monitor for temperature (input)\n",
            "node_hwmon_temp_celsius{chip=\"platform_x_0\",sensor=\"temp1\"} 45.5\n",
            "node_hwmon_temp_crit_alarm_celsius{chip=\"platform_x_0\",sensor=\"temp1\"} 0\n",
            "# HELP node_hwmon_temp_alarm Hardware sensor alarm status (temp)\n",
            "node_hwmon_temp_type{chip=\"platform_x_0\",sensor=\"temp1\"} 4\n",
            "node_hwmon_sensor_label{chip=\"platform_x_0\",label=\"Package id 0\",sensor=\"temp1\"} 1\n",
            "node_hwmon_in_volts{chip=\"platform_x_0\",sensor=\"in2\"} 3.3120000000000003\n",
            "node_hwmon_in_beep_enabled{chip=\"platform_x_0\",sensor=\"in2\"} 0\n",
            "node_hwmon_power_average_watt{chip=\"platform_x_0\",sensor=\"power1\"} 15\n",
            "node_hwmon_power_average_interval_seconds{chip=\"platform_x_0\",sensor=\"power1\"} 1\n",
            "node_hwmon_power_accuracy{chip=\"platform_x_0\",sensor=\"power1\"} 0.95\n",
            "# TYPE node_hwmon_energy_joule_total counter\n",
            "node_hwmon_energy_joule_total{chip=\"platform_x_0\",sensor=\"energy1\"} 2\n",
            "node_hwmon_fan_rpm{chip=\"platform_x_0\",sensor=\"fan1\"} 1200\n",
            "# HELP node_hwmon_fan_pulses Hardware monitor fan element pulses\n",
            "# HELP node_hwmon_pwm Hardware monitor pwm element \n",
            "node_hwmon_pwm{chip=\"platform_x_0\",sensor=\"pwm1\"} 128\n",
            "node_hwmon_beep_enabled{chip=\"platform_x_0\",sensor=\"beep_enable0\"} 1\n",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
        assert!(!out.contains("model_number"));
    }

    #[test]
    fn bare_and_input_both_present() {
        let mut data = SensorData::new();
        data.insert("temp1".into(), sensor(&[("", "40000"), ("input", "41000")]));
        let out = render(&data);
        assert!(
            out.contains("node_hwmon_temp_celsius{chip=\"platform_x_0\",sensor=\"temp1\"} 40\n")
        );
        assert!(out.contains(
            "node_hwmon_temp_input_celsius{chip=\"platform_x_0\",sensor=\"temp1\"} 41\n"
        ));
    }

    #[test]
    fn labelled_frequencies_use_the_label_as_sensor() {
        let mut data = SensorData::new();
        data.insert(
            "freq1".into(),
            sensor(&[("input", "1800000000"), ("label", "sclk")]),
        );
        data.insert("freq2".into(), sensor(&[("input", "100")]));
        let out = render(&data);
        assert!(
            out.contains("node_hwmon_freq_freq_mhz{chip=\"platform_x_0\",sensor=\"sclk\"} 1800\n"),
            "{out}"
        );
        assert!(!out.contains("freq2"), "{out}");
    }

    #[test]
    fn sensor_filter_sees_chip_and_sensor() {
        let f = DeviceFilter::from_regexes(Some(Regex::new("platform_x_0;temp2").unwrap()), None);
        let mut data = SensorData::new();
        data.insert("temp1".into(), sensor(&[("input", "1000")]));
        data.insert("temp2".into(), sensor(&[("input", "2000")]));
        let mut set = MetricSet::new();
        report_chip(
            "platform_x_0",
            &data,
            &|s| !f.ignored(s),
            Path::new("/h"),
            &mut set,
        );
        let out = encode(&set.finish().unwrap(), Format::Text);
        assert!(out.contains("sensor=\"temp1\""));
        assert!(!out.contains("sensor=\"temp2\""));
        let inc = DeviceFilter::from_regexes(None, Some(Regex::new("^platform_").unwrap()));
        assert!(!inc.ignored("platform_coretemp_0"));
        assert!(inc.ignored("pci0000:00_0000:00:18_3"));
    }

    #[test]
    fn chip_names_prefer_the_device_path() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let dev = r.join("devices/platform/coretemp.0");
        std::fs::create_dir_all(dev.join("hwmon/hwmon1")).unwrap();
        let hw = dev.join("hwmon/hwmon1");
        std::os::unix::fs::symlink("../../../coretemp.0", hw.join("device")).unwrap();
        std::fs::write(hw.join("name"), "coretemp\n").unwrap();
        assert_eq!(chip_name(&hw).unwrap(), "platform_coretemp_0");
        assert_eq!(human_chip_name(&hw).as_deref(), Some("coretemp"));
        let virt = r.join("devices/virtual/hwmon/hwmon7");
        std::fs::create_dir_all(&virt).unwrap();
        assert_eq!(chip_name(&virt).unwrap(), "hwmon7");
        std::fs::write(virt.join("name"), "Some Chip\n").unwrap();
        assert_eq!(chip_name(&virt).unwrap(), "some_chip");
    }

    #[test]
    fn several_hwmon_directories_of_one_device_get_their_name_or_number() {
        let dir = tempfile::tempdir().unwrap();
        let phy = dir.path().join("devices/ieee80211/phy0");
        let mut chips = Vec::new();
        // Two named radios, a third without a name, a fourth named as the first.
        for (n, name) in [
            (8, Some("mt7996_phy0_0")),
            (9, Some("MT7996 phy0 1")),
            (10, None),
            (11, Some("mt7996_phy0_0")),
        ] {
            let hw = phy.join(format!("hwmon/hwmon{n}"));
            std::fs::create_dir_all(&hw).unwrap();
            std::os::unix::fs::symlink("../../../phy0", hw.join("device")).unwrap();
            if let Some(name) = name {
                std::fs::write(hw.join("name"), format!("{name}\n")).unwrap();
            }
            chips.push((hw.clone(), chip_name(&hw).unwrap()));
        }
        let lone = dir.path().join("devices/platform/coretemp.0/hwmon/hwmon0");
        std::fs::create_dir_all(&lone).unwrap();
        std::os::unix::fs::symlink("../../../coretemp.0", lone.join("device")).unwrap();
        chips.push((lone, "platform_coretemp_0".to_string()));
        unique_chip_names(&mut chips);
        let names: Vec<&str> = chips.iter().map(|(_, c)| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "ieee80211_phy0_mt7996_phy0_0",
                "ieee80211_phy0_mt7996_phy0_1",
                "ieee80211_phy0_hwmon10",
                "ieee80211_phy0_hwmon11",
                "platform_coretemp_0",
            ]
        );
    }
}
