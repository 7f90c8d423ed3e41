//! `node_pcidevice_*`: per PCI device of /sys/bus/pci/devices (its location
//! and its parent's taken from where the symlink points), the identity
//! (`node_pcidevice_info`), link speed and width, power state, D3cold, SR-IOV
//! and NUMA node, as node_exporter through procfs. No /sys/bus/pci/devices
//! is "no data". With `--collector.pcidevice.names` the info series also
//! carries vendor, device, subsystem and class names from pci.ids
//! (`--collector.pcidevice.idsfile`, else the system's), loaded once.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::CollectorSpec;
use crate::cli::{bool_flag, string_flag};
use crate::collector::{Collector, NoData, Paths};
use crate::helpers::read_sysfs_attr;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "pcidevice",
    default_enabled: false,
    flags: || {
        let mut flags = vec![string_flag(
            "collector.pcidevice.idsfile",
            "",
            "Path to pci.ids file to use for PCI device identification.",
        )];
        flags.extend(bool_flag(
            "collector.pcidevice.names",
            false,
            "Enable PCI device name resolution (requires pci.ids file).",
        ));
        flags
    },
    build: |f| {
        let names = f
            .bool("collector.pcidevice.names", false)
            .then(|| load_pci_ids(&f.string("collector.pcidevice.idsfile")));
        Ok(Box::new(Pcidevice {
            paths: f.paths.clone(),
            names,
        }))
    },
};

struct Pcidevice {
    paths: Paths,
    /// `--collector.pcidevice.names`: the pci.ids tables (empty when no
    /// file could be read, as node_exporter goes on without names).
    names: Option<PciIds>,
}

/// Where node_exporter looks for pci.ids without `--collector.pcidevice.idsfile`.
const PCI_IDS_PATHS: [&str; 2] = ["/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids"];

/// The names of pci.ids, keyed by lower-case hexadecimal ids without `0x`.
#[derive(Debug, Default)]
pub struct PciIds {
    vendors: HashMap<String, String>,
    /// (vendor, device).
    devices: HashMap<(String, String), String>,
    /// ("vendor:device", "subvendor:subdevice").
    subsystems: HashMap<(String, String), String>,
    classes: HashMap<String, String>,
    /// Base class and subclass, `0108`.
    subclasses: HashMap<String, String>,
    /// Base class, subclass and programming interface, `010802`.
    prog_ifs: HashMap<String, String>,
}

fn load_pci_ids(flag: &str) -> PciIds {
    let candidates: Vec<&str> = if flag.is_empty() {
        PCI_IDS_PATHS.to_vec()
    } else {
        vec![flag]
    };
    for path in candidates {
        match std::fs::read(path) {
            Ok(bytes) => {
                tracing::debug!(path, "pcidevice: loading PCI ids");
                return parse_pci_ids(&String::from_utf8_lossy(&bytes));
            }
            Err(e) => tracing::debug!(path, error = %e, "pcidevice: no PCI ids file"),
        }
    }
    PciIds::default()
}

/// pci.ids as node_exporter reads it: `ID  name` lines (two spaces), a tab
/// per level (vendor, device, subsystem; or `C` class, subclass,
/// programming interface).
pub fn parse_pci_ids(text: &str) -> PciIds {
    let mut ids = PciIds::default();
    let (mut vendor, mut device) = (String::new(), String::new());
    let (mut base_class, mut subclass) = (String::new(), String::new());
    let mut in_class = false;
    let split = |line: &str| {
        line.split_once("  ")
            .map(|(id, name)| (id.trim().to_string(), name.trim().to_string()))
    };
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let one_tab = line.starts_with('\t') && !line.starts_with("\t\t");
        let two_tabs = line.starts_with("\t\t") && !line.starts_with("\t\t\t");
        if let Some(rest) = line.strip_prefix('C').filter(|_| line.starts_with("C ")) {
            if let Some((id, name)) = split(rest) {
                ids.classes.insert(id.clone(), name);
                base_class = id;
                in_class = true;
            }
        } else if one_tab && in_class {
            if let Some((id, name)) = split(&line[1..]).filter(|_| !base_class.is_empty()) {
                subclass = format!("{base_class}{id}");
                ids.subclasses.insert(subclass.clone(), name);
            }
        } else if two_tabs && in_class {
            if let Some((id, name)) = split(&line[2..]).filter(|_| !subclass.is_empty()) {
                ids.prog_ifs.insert(format!("{subclass}{id}"), name);
            }
        } else if !line.starts_with('\t') {
            if let Some((id, name)) = split(line) {
                ids.vendors.insert(id.clone(), name);
                vendor = id;
                device.clear();
                in_class = false;
            }
        } else if one_tab {
            if let Some((id, name)) = split(&line[1..]).filter(|_| !vendor.is_empty()) {
                ids.devices.insert((vendor.clone(), id.clone()), name);
                device = id;
            }
        } else if let Some(rest) = line.strip_prefix("\t\t") {
            let Some((id, name)) = split(rest) else {
                continue;
            };
            if vendor.is_empty() || device.is_empty() {
                continue;
            }
            if let [sv, sd] = id.split_whitespace().collect::<Vec<_>>()[..] {
                ids.subsystems
                    .insert((format!("{vendor}:{device}"), format!("{sv}:{sd}")), name);
            }
        }
    }
    ids
}

impl PciIds {
    /// The five name labels for the device's ids (`0x8086`, ...), each the
    /// id itself (without `0x`) when pci.ids does not have it, as node_exporter.
    fn names(&self, ids: &[String; 6]) -> [String; 5] {
        let bare = |s: &str| s.trim_start_matches("0x").to_ascii_lowercase();
        let [class, vendor, device, sub_vendor, sub_device, _] = ids;
        let (v, d, sv, sd, c) = (
            bare(vendor),
            bare(device),
            bare(sub_vendor),
            bare(sub_device),
            bare(class),
        );
        let vendor_name = self.vendors.get(&v).cloned().unwrap_or_else(|| v.clone());
        let device_name = self
            .devices
            .get(&(v.clone(), d.clone()))
            .cloned()
            .unwrap_or_else(|| d.clone());
        let sub_vendor_name = self.vendors.get(&sv).cloned().unwrap_or_else(|| sv.clone());
        let sub_device_name = self
            .subsystems
            .get(&(format!("{v}:{d}"), format!("{sv}:{sd}")))
            .cloned()
            .unwrap_or_else(|| sd.clone());
        let class_name = c
            .get(..6)
            .and_then(|k| self.prog_ifs.get(k))
            .or_else(|| c.get(..4).and_then(|k| self.subclasses.get(k)))
            .or_else(|| c.get(..2).and_then(|k| self.classes.get(k)))
            .cloned()
            .unwrap_or_else(|| format!("Unknown class ({c})"));
        [
            vendor_name,
            device_name,
            sub_vendor_name,
            sub_device_name,
            class_name,
        ]
    }
}

/// `0000:00:02.1` as node_exporter's labels show it: segment, bus,
/// device, function.
pub fn parse_location(loc: &str) -> Option<[String; 4]> {
    let mut parts = loc.split(':');
    let (seg, bus, rest) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (dev, func) = rest.split_once('.')?;
    if func.contains('.') {
        return None;
    }
    // Go's ParseInt(.., 16, 32) refuses a sign and anything past 31 bits.
    let hex = |s: &str| {
        (!s.starts_with(['+', '-']))
            .then(|| u32::from_str_radix(s, 16).ok())
            .flatten()
            .filter(|v| *v <= i32::MAX as u32)
    };
    Some([
        format!("{:04x}", hex(seg)?),
        format!("{:02x}", hex(bus)?),
        format!("{:02x}", hex(dev)?),
        format!("{:x}", hex(func)?),
    ])
}

/// `8.0 GT/s PCIe` in transfers per second; `None` for an empty or
/// `Unknown` speed, an error for anything else that is not one.
pub fn parse_link_speed(text: &str, path: &Path) -> anyhow::Result<Option<f64>> {
    if text.is_empty() || text.starts_with("Unknown") {
        return Ok(None);
    }
    let bad = || anyhow!("parsing {}: {text:?} is not a link speed", path.display());
    let (number, unit) = text.split_once(' ').ok_or_else(bad)?;
    if unit != "GT/s PCIe" {
        return Err(bad());
    }
    let gt: f64 = number.trim().parse().map_err(|_| bad())?;
    Ok(Some(gt * 1e9))
}

/// Go's `strconv.ParseInt(s, 0, 32)` (the identity files are `0x1022`, numa_node is `-1`).
pub fn parse_int32(s: &str) -> Option<i32> {
    let v = crate::collectors::sysctl::parse_int(s)?;
    i32::try_from(v).ok()
}

/// A device's values, read before any is added.
struct Device {
    location: [String; 4],
    parent: [String; 4],
    ids: [String; 6],
    numa_node: i32,
    /// max speed, max width, current speed, current width; -1 when unknown.
    link: [f64; 4],
    /// drivers_autoprobe, numvfs, totalvfs, vf_total_msix; 0 when absent.
    sriov: [f64; 4],
    d3cold_allowed: f64,
    power_state: Option<String>,
}

fn optional(path: &Path) -> anyhow::Result<Option<String>> {
    match read_sysfs_attr(path) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow!("reading {}: {e}", path.display())),
    }
}

fn read_device(entry: &Path) -> anyhow::Result<Device> {
    let target = std::fs::read_link(entry)
        .map_err(|e| anyhow!("reading the link {}: {e}", entry.display()))?;
    let name = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let own = name(Some(&target));
    let parent_name = name(target.parent());
    let location = parse_location(&own)
        .ok_or_else(|| anyhow!("{}: {own:?} is not a PCI location", entry.display()))?;
    // A parent named pci<domain>:<bus> is the host bridge, not a device.
    let parent = if parent_name.starts_with("pci") {
        ["*", "*", "*", "*"].map(String::from)
    } else {
        parse_location(&parent_name).ok_or_else(|| {
            anyhow!(
                "{}: parent {parent_name:?} is not a PCI location",
                entry.display()
            )
        })?
    };

    let mut ids = [0i32; 7];
    for (i, f) in [
        "class",
        "vendor",
        "device",
        "subsystem_vendor",
        "subsystem_device",
        "revision",
        "numa_node",
    ]
    .iter()
    .enumerate()
    {
        let path = entry.join(f);
        let text =
            read_sysfs_attr(&path).map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
        ids[i] = parse_int32(&text)
            .ok_or_else(|| anyhow!("parsing {}: {text:?} is not a number", path.display()))?;
    }
    // Go prints the uint32 of the parsed value.
    let hex = |v: i32, width: usize| format!("0x{:0width$x}", v as u32);

    let mut link = [-1.0; 4];
    for (i, f) in [
        "max_link_speed",
        "max_link_width",
        "current_link_speed",
        "current_link_width",
    ]
    .iter()
    .enumerate()
    {
        let path = entry.join(f);
        let Some(text) = optional(&path)? else {
            continue;
        };
        if f.ends_with("speed") {
            if let Some(v) = parse_link_speed(&text, &path)? {
                link[i] = v;
            }
        } else if !text.is_empty() && !text.starts_with("Unknown") {
            link[i] = text
                .parse::<i64>()
                .map_err(|_| anyhow!("parsing {}: {text:?} is not a width", path.display()))?
                as f64;
        }
    }

    let mut sriov = [0.0; 4];
    for (i, f) in [
        "sriov_drivers_autoprobe",
        "sriov_numvfs",
        "sriov_totalvfs",
        "sriov_vf_total_msix",
    ]
    .iter()
    .enumerate()
    {
        let path = entry.join(f);
        let Some(text) = optional(&path)?.filter(|t| !t.is_empty()) else {
            continue;
        };
        // As procfs: autoprobe a 32-bit int (non-zero is on), the VF
        // counts unsigned 32-bit, the MSI-X total a 64-bit int shown unsigned.
        let value = match i {
            0 => text
                .parse::<i32>()
                .ok()
                .map(|v| f64::from(u8::from(v != 0))),
            3 => text.parse::<i64>().ok().map(|v| v as u64 as f64),
            _ => text.parse::<u32>().ok().map(f64::from),
        };
        sriov[i] =
            value.ok_or_else(|| anyhow!("parsing {}: {text:?} is not a number", path.display()))?;
    }

    let path = entry.join("d3cold_allowed");
    let d3cold_allowed = match optional(&path)?.filter(|t| !t.is_empty()) {
        Some(t) => {
            let v: i64 = t
                .parse()
                .map_err(|_| anyhow!("parsing {}: {t:?} is not 0 or 1", path.display()))?;
            f64::from(u8::from(v != 0))
        }
        None => 0.0,
    };
    let power_state = optional(&entry.join("power_state"))?.filter(|t| !t.is_empty());

    Ok(Device {
        location,
        parent,
        ids: [
            format!("0x{:06x}", ids[0] as u32),
            hex(ids[1], 4),
            hex(ids[2], 4),
            hex(ids[3], 4),
            hex(ids[4], 4),
            hex(ids[5], 2),
        ],
        numa_node: ids[6],
        link,
        sriov,
        d3cold_allowed,
        power_state,
    })
}

const POWER_STATES: [&str; 7] = ["D0", "D1", "D2", "D3hot", "D3cold", "unknown", "error"];

impl Collector for Pcidevice {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let dir = self.paths.sys("bus/pci/devices");
        let rd = std::fs::read_dir(&dir).map_err(|e| -> anyhow::Error {
            if e.kind() == std::io::ErrorKind::NotFound {
                NoData(format!("{} does not exist", dir.display())).into()
            } else {
                anyhow!("listing {}: {e}", dir.display())
            }
        })?;
        // Keyed by location, as procfs' map: two links to one device are one.
        let mut devices = BTreeMap::new();
        for entry in rd.filter_map(|e| e.ok()) {
            let d = read_device(&entry.path())?;
            devices.insert(d.location.clone(), d);
        }
        for d in devices.values() {
            let [seg, bus, dev, func] = &d.location;
            let loc = [
                ("segment", seg.as_str()),
                ("bus", bus.as_str()),
                ("device", dev.as_str()),
                ("function", func.as_str()),
            ];
            let [pseg, pbus, pdev, pfunc] = &d.parent;
            let [class, vendor, device, sub_vendor, sub_device, revision] = &d.ids;
            let names = self.names.as_ref().map(|ids| ids.names(&d.ids));
            let mut labels = vec![
                loc[0],
                loc[1],
                loc[2],
                loc[3],
                ("parent_segment", pseg),
                ("parent_bus", pbus),
                ("parent_device", pdev),
                ("parent_function", pfunc),
                ("class_id", class),
                ("vendor_id", vendor),
                ("device_id", device),
                ("subsystem_vendor_id", sub_vendor),
                ("subsystem_device_id", sub_device),
                ("revision", revision),
            ];
            if let Some([vn, dn, svn, sdn, cn]) = &names {
                labels.extend([
                    ("vendor_name", vn.as_str()),
                    ("device_name", dn.as_str()),
                    ("subsystem_vendor_name", svn.as_str()),
                    ("subsystem_device_name", sdn.as_str()),
                    ("class_name", cn.as_str()),
                ]);
            }
            out.gauge(
                "node_pcidevice_info",
                "Non-numeric data from /sys/bus/pci/devices/<location>, value is always 1.",
                &labels,
                1.0,
            );
            for (name, help, v) in [
                (
                    "node_pcidevice_max_link_transfers_per_second",
                    "Value of maximum link's transfers per second (T/s)",
                    d.link[0],
                ),
                (
                    "node_pcidevice_max_link_width",
                    "Value of maximum link's width (number of lanes)",
                    d.link[1],
                ),
                (
                    "node_pcidevice_current_link_transfers_per_second",
                    "Value of current link's transfers per second (T/s)",
                    d.link[2],
                ),
                (
                    "node_pcidevice_current_link_width",
                    "Value of current link's width (number of lanes)",
                    d.link[3],
                ),
                (
                    "node_pcidevice_d3cold_allowed",
                    "Whether the PCIe device supports D3cold power state (0/1).",
                    d.d3cold_allowed,
                ),
                (
                    "node_pcidevice_sriov_drivers_autoprobe",
                    "Whether SR-IOV drivers autoprobe is enabled for the device (0/1).",
                    d.sriov[0],
                ),
                (
                    "node_pcidevice_sriov_numvfs",
                    "Number of Virtual Functions (VFs) currently enabled for SR-IOV.",
                    d.sriov[1],
                ),
                (
                    "node_pcidevice_sriov_totalvfs",
                    "Total number of Virtual Functions (VFs) supported by the device.",
                    d.sriov[2],
                ),
                (
                    "node_pcidevice_sriov_vf_total_msix",
                    "Total number of MSI-X vectors for Virtual Functions.",
                    d.sriov[3],
                ),
            ] {
                out.gauge(name, help, &loc, v);
            }
            if let Some(state) = &d.power_state {
                for s in POWER_STATES {
                    out.gauge(
                        "node_pcidevice_power_state",
                        "PCIe device power state, one of: D0, D1, D2, D3hot, D3cold, unknown or error.",
                        &[loc[0], loc[1], loc[2], loc[3], ("state", s)],
                        f64::from(u8::from(state == s)),
                    );
                }
            }
            if d.numa_node != -1 {
                out.gauge(
                    "node_pcidevice_numa_node",
                    "NUMA node number for the PCI device. -1 indicates unknown or not available.",
                    &loc,
                    f64::from(d.numa_node),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{collect, sysfs_at, write};

    fn device(root: &Path, real: &str, files: &[(&str, &str)]) {
        for (f, v) in files {
            write(root, &format!("{real}/{f}"), v);
        }
        let name = Path::new(real).file_name().unwrap();
        std::fs::create_dir_all(root.join("bus/pci/devices")).unwrap();
        std::os::unix::fs::symlink(
            Path::new("../../..").join(real),
            root.join("bus/pci/devices").join(name),
        )
        .unwrap();
    }

    const IDS: [(&str, &str); 7] = [
        ("class", "0x010802\n"),
        ("vendor", "0xc0a9\n"),
        ("device", "0x540a\n"),
        ("subsystem_vendor", "0xc0a9\n"),
        ("subsystem_device", "0x5021\n"),
        ("revision", "0x01\n"),
        ("numa_node", "-1\n"),
    ];

    fn run(root: &Path) -> anyhow::Result<String> {
        collect(&Pcidevice {
            paths: sysfs_at(root),
            names: None,
        })
    }

    const PCI_IDS: &str = "# comment
8086  Intel Corporation
\t1533  I210 Gigabit Network Connection
\t\t1028 07a1  I210 on a Dell board
c0a9  Micron/Crucial Technology
\t540a  P2 [Nick P2] / P3 / P3 Plus NVMe PCIe SSD (DRAM-less)
C 01  Mass storage controller
\t08  Non-Volatile memory controller
\t\t02  NVM Express
C 06  Bridge
\t04  PCI bridge
C 02  Network controller
";

    #[test]
    fn names_from_pci_ids() {
        let ids = parse_pci_ids(PCI_IDS);
        let id = |v: [&str; 6]| v.map(String::from);
        assert_eq!(
            ids.names(&id([
                "0x020000", "0x8086", "0x1533", "0x1028", "0x07a1", "0x03"
            ])),
            [
                "Intel Corporation",
                "I210 Gigabit Network Connection",
                "1028",
                "I210 on a Dell board",
                "Network controller",
            ]
        );
        assert_eq!(
            ids.names(&id([
                "0x010802", "0xc0a9", "0x540a", "0xc0a9", "0x5021", "0x01"
            ]))[4],
            "NVM Express"
        );
        assert_eq!(
            ids.names(&id([
                "0x060400", "0x1022", "0x1634", "0x17aa", "0x5095", "0x00"
            ])),
            ["1022", "1634", "17aa", "5095", "PCI bridge"]
        );
        assert_eq!(
            PciIds::default().names(&id(["0x0c0330", "0x1", "0x2", "0x3", "0x4", "0x0"]))[4],
            "Unknown class (0c0330)"
        );
    }

    #[test]
    fn info_with_names() {
        let dir = tempfile::tempdir().unwrap();
        device(dir.path(), "devices/pci0000:00/0000:00:02.1", &IDS);
        let text = collect(&Pcidevice {
            paths: sysfs_at(dir.path()),
            names: Some(parse_pci_ids(PCI_IDS)),
        })
        .unwrap();
        assert!(
            text.contains("class_name=\"NVM Express\",device=\"02\",device_id=\"0x540a\",device_name=\"P2 [Nick P2] / P3 / P3 Plus NVMe PCIe SSD (DRAM-less)\","),
            "{text}"
        );
        assert!(text.contains("subsystem_device_name=\"5021\""), "{text}");
    }

    #[test]
    fn identity_links_power_and_sriov() {
        let dir = tempfile::tempdir().unwrap();
        assert!(crate::helpers::is_no_data(&run(dir.path()).unwrap_err()));
        device(dir.path(), "devices/pci0000:00/0000:00:02.1", &IDS);
        let mut files = IDS.to_vec();
        files.extend([
            ("numa_node", "1\n"),
            ("max_link_speed", "16.0 GT/s PCIe\n"),
            ("current_link_speed", "Unknown\n"),
            ("max_link_width", "4\n"),
            ("sriov_numvfs", "4\n"),
            ("sriov_drivers_autoprobe", "1\n"),
            ("d3cold_allowed", "1\n"),
            ("power_state", "D3hot\n"),
        ]);
        device(
            dir.path(),
            "devices/pci0000:00/0000:00:02.1/0000:01:00.0",
            &files,
        );
        let text = run(dir.path()).unwrap();
        for want in [
            "node_pcidevice_info{bus=\"00\",class_id=\"0x010802\",device=\"02\",device_id=\"0x540a\",function=\"1\",parent_bus=\"*\",parent_device=\"*\",parent_function=\"*\",parent_segment=\"*\",revision=\"0x01\",segment=\"0000\",subsystem_device_id=\"0x5021\",subsystem_vendor_id=\"0xc0a9\",vendor_id=\"0xc0a9\"} 1\n",
            "parent_bus=\"00\",parent_device=\"02\",parent_function=\"1\",parent_segment=\"0000\"",
            "node_pcidevice_max_link_transfers_per_second{bus=\"01\",device=\"00\",function=\"0\",segment=\"0000\"} 1.6e+10\n",
            "node_pcidevice_current_link_transfers_per_second{bus=\"01\",device=\"00\",function=\"0\",segment=\"0000\"} -1\n",
            "node_pcidevice_sriov_numvfs{bus=\"01\",device=\"00\",function=\"0\",segment=\"0000\"} 4\n",
            "node_pcidevice_power_state{bus=\"01\",device=\"00\",function=\"0\",segment=\"0000\",state=\"D3hot\"} 1\n",
            "node_pcidevice_power_state{bus=\"01\",device=\"00\",function=\"0\",segment=\"0000\",state=\"D0\"} 0\n",
            "node_pcidevice_numa_node{bus=\"01\",device=\"00\",function=\"0\",segment=\"0000\"} 1\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        // Without power_state or numa_node, those are left out.
        assert!(
            !text.contains("node_pcidevice_numa_node{bus=\"00\""),
            "{text}"
        );
        assert!(!text.contains("state=\"D0\"} 1\n"), "{text}");
    }

    #[test]
    fn garbage_names_the_file() {
        for (file, text) in [
            ("vendor", "intel\n"),
            ("max_link_speed", "8.0 Gb/s\n"),
            ("max_link_width", "x8\n"),
            ("sriov_numvfs", "-1\n"),
            ("d3cold_allowed", "yes\n"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let mut files = IDS.to_vec();
            files.push((file, text));
            device(dir.path(), "devices/pci0000:00/0000:00:02.1", &files);
            let err = run(dir.path()).unwrap_err().to_string();
            assert!(err.contains(file), "{file} {text:?}: {err}");
        }
        assert_eq!(parse_location("0000:0a:1f.7").unwrap()[1], "0a");
        for bad in ["0000:00:02", "0000:00:02.1.2", "x:00:02.1", "0000:00:-2.1"] {
            assert!(parse_location(bad).is_none(), "{bad}");
        }
    }
}
