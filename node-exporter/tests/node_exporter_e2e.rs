//! node_exporter's own end-to-end test, run against our binary: its fixture
//! trees (`fixtures/node_exporter_e2e/`, node_exporter v1.12.1's
//! `collector/fixtures`, Apache-2.0, see the LICENSE and NOTICE there) are
//! unpacked into a temporary directory, the binary runs over them with
//! node_exporter's e2e flags, and `/metrics` is compared with node_exporter's
//! `e2e-output.txt` family by family and line by line.
//!
//! A family may only be missing if its collector is in [`NOT_IMPLEMENTED`],
//! and may only differ as [`ACCEPTED`] says; anything else fails. When a
//! collector lands, its entry must leave [`NOT_IMPLEMENTED`] (the test says
//! so). `E2E_VERBOSE=1` prints every family's status.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

/// node_exporter's collectors we do not have yet, with the families each
/// would produce (regexes on the family name). Their `--collector.NAME`
/// flags and options are left out of the command line, and their families
/// may be missing.
const NOT_IMPLEMENTED: &[(&str, &str)] = &[];

/// How a family listed in [`ACCEPTED`] may differ.
#[derive(Clone, Copy, PartialEq)]
enum May {
    /// Compared by HELP, TYPE and series (names and labels), not values.
    DifferInValues,
    /// May be missing; compared as [`May::DifferInValues`] when present.
    BeMissing,
}

/// Differences we accept, each with its reason: (family regex, how, why).
/// The first entry that matches a family applies.
const ACCEPTED: &[(&str, May, &str)] = &[
    (
        "^node_network_receive_nohandler_total$",
        May::BeMissing,
        "netdev: ours reads rx_nohandler from /sys/class/net/lo/statistics, \
         and the fixture /sys has no `lo` (the host's cannot be added without \
         adding `lo` to the netclass families)",
    ),
    (
        "^node_network_(receive|transmit)_[a-z]+_total$",
        May::DifferInValues,
        "netdev: node_exporter reads the host's own interfaces over netlink, \
         and so the test gives ours the host's /proc/net/dev: the values of \
         `lo` are this machine's, not those of the machine e2e-output.txt was made on",
    ),
];

/// node_exporter's e2e skip regex: families that depend on the host or the build.
const SKIP: &str = "^(go_|node_exporter_build_info|node_scrape_collector_duration_seconds|process_|\
node_textfile_mtime_seconds|node_time_(zone|seconds)|node_network_(receive|transmit)_(bytes|packets)_total)";

/// node_exporter's e2e command line; `{}` is the fixtures directory as its
/// script names it, relative to the working directory (textfile help texts
/// show the path).
const FLAGS: &[&str] = &[
    "--path.rootfs={}",
    "--path.procfs={}/proc",
    "--path.sysfs={}/sys",
    "--path.udev.data={}/udev/data",
    "--collector.arp",
    "--collector.bcache",
    "--collector.bcachefs",
    "--collector.bonding",
    "--collector.btrfs",
    "--collector.buddyinfo",
    "--collector.cgroups",
    "--collector.conntrack",
    "--collector.cpu",
    "--collector.cpufreq",
    "--collector.cpu_vulnerabilities",
    "--collector.diskstats",
    "--collector.dmi",
    "--collector.drbd",
    "--collector.edac",
    "--collector.entropy",
    "--collector.fibrechannel",
    "--collector.filefd",
    "--collector.hwmon",
    "--collector.infiniband",
    "--collector.interrupts",
    "--collector.ipvs",
    "--collector.kernel_hung",
    "--collector.ksmd",
    "--collector.lnstat",
    "--collector.loadavg",
    "--collector.mdadm",
    "--collector.meminfo",
    "--collector.meminfo_numa",
    "--collector.mountstats",
    "--collector.netdev",
    "--collector.netstat",
    "--collector.nfs",
    "--collector.nfsd",
    "--collector.pcidevice",
    "--collector.pressure",
    "--collector.processes",
    "--collector.qdisc",
    "--collector.rapl",
    "--collector.schedstat",
    "--collector.slabinfo",
    "--collector.sockstat",
    "--collector.softirqs",
    "--collector.stat",
    "--collector.sysctl",
    "--collector.textfile",
    "--collector.thermal_zone",
    "--collector.udp_queues",
    "--collector.vmstat",
    "--collector.watchdog",
    "--collector.wifi",
    "--collector.xfrm",
    "--collector.xfs",
    "--collector.zfs",
    "--collector.zoneinfo",
    "--no-collector.selinux",
    "--no-collector.filesystem",
    "--no-collector.timex",
    "--no-collector.uname",
    "--collector.cpu.info",
    "--collector.cpu.info.bugs-include=^(cpu_meltdown|spectre_.*|mds)$",
    "--collector.cpu.info.flags-include=^(aes|avx.?|constant_tsc)$",
    "--collector.arp.device-exclude=nope",
    "--no-collector.arp.netlink",
    "--collector.bcache.priorityStats",
    "--collector.hwmon.chip-include=(applesmc|asus_nb_wmi|coretemp|hwmon4|ieee80211|nct6779)",
    "--collector.netclass.ignore-invalid-speed",
    "--collector.netclass.ignored-devices=(dmz|int)",
    "--collector.netdev.device-include=lo",
    "--collector.qdisc.device-include=(wlan0|eth0)",
    "--collector.qdisc.fixtures={}/qdisc/",
    "--collector.stat.softirq",
    "--collector.sysctl.include-info=kernel.seccomp.actions_avail",
    "--collector.sysctl.include=fs.file-nr",
    "--collector.sysctl.include=fs.file-nr:total,current,max",
    "--collector.sysctl.include=kernel.threads-max",
    "--collector.textfile.directory={}/textfile/two_metric_files/",
    "--collector.wifi.fixtures={}/wifi",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/node_exporter_e2e")
}

/// The collector a flag belongs to: `--no-collector.arp.netlink` -> `arp`,
/// `--collector.cpu.info.flags-include=..` -> `cpu.info` when that is
/// listed as not implemented, else `cpu`.
fn flag_collector(flag: &str) -> Option<String> {
    let name = flag
        .trim_start_matches("--")
        .trim_start_matches("no-")
        .strip_prefix("collector.")?;
    let name = name.split('=').next().unwrap_or(name);
    let mut best = name.split('.').next().unwrap_or(name).to_string();
    for (c, _) in NOT_IMPLEMENTED {
        if name == *c || name.starts_with(&format!("{c}.")) {
            best = c.to_string();
        }
    }
    Some(best)
}

fn is_not_implemented(collector: &str) -> bool {
    NOT_IMPLEMENTED.iter().any(|(c, _)| *c == collector)
}

// ---- the ttar archive format (README in the fixtures directory) ----

/// Unpacks a ttar archive under `dest`, without following symlinks.
fn untar(archive: &Path, dest: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(archive)
        .map_err(|e| format!("reading {}: {e}", archive.display()))?;
    let mut lines = text.lines().enumerate();
    let mut last: Option<PathBuf> = None;
    let err = |n: usize, msg: &str| format!("{} line {}: {msg}", archive.display(), n + 1);
    while let Some((n, line)) = lines.next() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(p) = line.strip_prefix("Directory: ") {
            let p = safe_join(dest, p).map_err(|e| err(n, &e))?;
            std::fs::create_dir_all(&p).map_err(|e| err(n, &e.to_string()))?;
            last = Some(p);
        } else if let Some(p) = line.strip_prefix("Path: ") {
            last = Some(safe_join(dest, p).map_err(|e| err(n, &e))?);
        } else if let Some(count) = line.strip_prefix("Lines: ") {
            let count: usize = count.parse().map_err(|_| err(n, "bad line count"))?;
            let path = last.clone().ok_or_else(|| err(n, "Lines: without Path:"))?;
            let mut content = Vec::new();
            for _ in 0..count {
                let (_, l) = lines
                    .next()
                    .ok_or_else(|| err(n, "archive ends in a file"))?;
                content.extend(unescape(l));
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| err(n, &e.to_string()))?;
            }
            std::fs::write(&path, content).map_err(|e| err(n, &e.to_string()))?;
        } else if let Some(target) = line.strip_prefix("SymlinkTo: ") {
            let path = last
                .clone()
                .ok_or_else(|| err(n, "SymlinkTo: without Path:"))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| err(n, &e.to_string()))?;
            }
            std::os::unix::fs::symlink(target, &path).map_err(|e| err(n, &e.to_string()))?;
        } else if let Some(mode) = line.strip_prefix("Mode: ") {
            use std::os::unix::fs::PermissionsExt;
            let mode = u32::from_str_radix(mode, 8).map_err(|_| err(n, "bad mode"))?;
            let path = last.clone().ok_or_else(|| err(n, "Mode: without a path"))?;
            // Directories stay writable and searchable, or the rest of
            // the archive could not be unpacked into them.
            let mode = if path.is_dir() { mode | 0o700 } else { mode };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| err(n, &e.to_string()))?;
        } else {
            return Err(err(n, &format!("unexpected line {line:?}")));
        }
    }
    Ok(())
}

/// One content line: a final `EOF` means no newline, `NULLBYTE` is a 0
/// byte, and a backslash before either keeps it literal.
fn unescape(line: &str) -> Vec<u8> {
    let (body, newline) = match line.strip_suffix("EOF") {
        Some(b) if !b.ends_with('\\') => (b, false),
        _ => (line, true),
    };
    let mut out = Vec::with_capacity(body.len() + 1);
    let mut rest = body;
    while let Some(i) = rest.find("NULLBYTE") {
        if rest[..i].ends_with('\\') {
            out.extend_from_slice(&rest.as_bytes()[..i - 1]);
            out.extend_from_slice(b"NULLBYTE");
        } else {
            out.extend_from_slice(&rest.as_bytes()[..i]);
            out.push(0);
        }
        rest = &rest[i + "NULLBYTE".len()..];
    }
    out.extend_from_slice(rest.replace("\\EOF", "EOF").as_bytes());
    if newline {
        out.push(b'\n');
    }
    out
}

/// `dest/rel`, refusing absolute paths and `..`.
fn safe_join(dest: &Path, rel: &str) -> Result<PathBuf, String> {
    let p = Path::new(rel);
    if p.components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(format!("path {rel:?} leaves the archive"));
    }
    Ok(dest.join(p))
}

/// Copies a directory tree (regular files and directories only).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let kind = e.file_type().unwrap();
        if kind.is_symlink() {
            // proc/self -> 10, as node_exporter's fixtures have it.
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if kind.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Where node_exporter's script has its fixtures, from its working directory.
const FIXTURES_DIR: &str = "collector/fixtures";

/// The fixtures laid out as node_exporter's test has them, under
/// `FIXTURES_DIR` of the returned directory.
fn unpack() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join(FIXTURES_DIR);
    for archive in ["sys.ttar", "udev.ttar"] {
        untar(&fixtures().join(archive), &root).unwrap();
    }
    for e in std::fs::read_dir(fixtures()).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &root.join(e.file_name()));
        }
    }
    // node_exporter's netdev reads the host's interfaces over netlink; ours
    // reads /proc/net/dev, which the fixtures lack: give it the host's.
    let net_dev = std::fs::read_to_string("/proc/net/dev").unwrap();
    std::fs::write(root.join("proc/net/dev"), net_dev).unwrap();
    dir
}

// ---- the comparison ----

#[derive(Default, Debug)]
struct Family {
    help: String,
    kind: String,
    samples: BTreeSet<String>,
}

/// Families of a text exposition by name.
fn families(text: &str) -> BTreeMap<String, Family> {
    let mut out: BTreeMap<String, Family> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            current = name.to_string();
            out.entry(current.clone()).or_default().help = help.to_string();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            current = name.to_string();
            out.entry(current.clone()).or_default().kind = kind.to_string();
        } else if !line.is_empty() && !line.starts_with('#') {
            out.entry(current.clone())
                .or_default()
                .samples
                .insert(line.to_string());
        }
    }
    out
}

/// `name{labels} value` -> `name{labels}`.
fn series(line: &str) -> &str {
    line.rsplit_once(' ').map_or(line, |(s, _)| s)
}

enum Outcome {
    Identical,
    Accepted(&'static str),
    NotImplemented(&'static str),
    Differs(String),
}

/// [`NOT_IMPLEMENTED`] and [`ACCEPTED`] with their regexes compiled.
struct Rules {
    not_implemented: Vec<(&'static str, Regex)>,
    accepted: Vec<(Regex, May, &'static str)>,
}

impl Rules {
    fn new() -> Rules {
        Rules {
            not_implemented: NOT_IMPLEMENTED
                .iter()
                .map(|(c, re)| (*c, Regex::new(re).unwrap()))
                .collect(),
            accepted: ACCEPTED
                .iter()
                .map(|(re, may, why)| (Regex::new(re).unwrap(), *may, *why))
                .collect(),
        }
    }
}

fn compare(
    rules: &Rules,
    name: &str,
    want: &Family,
    got: Option<&Family>,
    skipped: &[&str],
) -> Outcome {
    let claimed = rules
        .not_implemented
        .iter()
        .find(|(_, re)| re.is_match(name));
    let accepted = rules.accepted.iter().find(|(re, _, _)| re.is_match(name));
    let Some(got) = got else {
        return match (claimed, accepted) {
            (Some((c, _)), _) => Outcome::NotImplemented(c),
            (None, Some((_, May::BeMissing, why))) => Outcome::Accepted(why),
            (None, _) => Outcome::Differs("missing from our output".into()),
        };
    };
    // The scrape's own success lines for collectors we leave out.
    let want_samples: BTreeSet<&String> = want
        .samples
        .iter()
        .filter(|l| {
            !skipped
                .iter()
                .any(|c| l.contains(&format!("{{collector=\"{c}\"}}")))
        })
        .collect();
    let (want_lines, got_lines): (BTreeSet<&str>, BTreeSet<&str>) = if accepted.is_some() {
        (
            want_samples.iter().map(|l| series(l)).collect(),
            got.samples.iter().map(|l| series(l)).collect(),
        )
    } else {
        (
            want_samples.iter().map(|l| l.as_str()).collect(),
            got.samples.iter().map(|l| l.as_str()).collect(),
        )
    };
    let mut diff = String::new();
    if want.help != got.help {
        diff += &format!(
            "  HELP  want {:?}\n        got  {:?}\n",
            want.help, got.help
        );
    }
    if want.kind != got.kind {
        diff += &format!("  TYPE  want {} got {}\n", want.kind, got.kind);
    }
    for l in want_lines.difference(&got_lines) {
        diff += &format!("  - {l}\n");
    }
    for l in got_lines.difference(&want_lines) {
        diff += &format!("  + {l}\n");
    }
    match (diff.is_empty(), accepted) {
        (true, Some((_, _, why))) => Outcome::Accepted(why),
        (true, None) => Outcome::Identical,
        (false, _) => Outcome::Differs(diff),
    }
}

#[test]
fn node_exporter_e2e_output_matches() {
    let dir = unpack();
    let skipped: Vec<&str> = NOT_IMPLEMENTED.iter().map(|(c, _)| *c).collect();
    let args: Vec<String> = FLAGS
        .iter()
        .filter(|f| flag_collector(f).is_none_or(|c| !is_not_implemented(&c)))
        .map(|f| f.replace("{}", FIXTURES_DIR))
        .collect();
    let exporter = common::start_in(dir.path(), &args);
    let (status, body) = exporter.get("/metrics");
    assert_eq!(status, 200, "{body}");

    let skip = Regex::new(SKIP).unwrap();
    let rules = Rules::new();
    let want = families(&std::fs::read_to_string(fixtures().join("e2e-output.txt")).unwrap());
    let got = families(&body);

    let verbose = std::env::var_os("E2E_VERBOSE").is_some();
    let (mut identical, mut accepted, mut missing, mut failures) = (0, 0, 0, Vec::new());
    let mut claimed: BTreeSet<&str> = BTreeSet::new();
    for (name, fam) in want.iter().filter(|(n, _)| !skip.is_match(n)) {
        match compare(&rules, name, fam, got.get(name), &skipped) {
            Outcome::Identical => identical += 1,
            Outcome::Accepted(why) => {
                accepted += 1;
                if verbose {
                    println!("accepted {name}: {why}");
                }
            }
            Outcome::NotImplemented(c) => {
                missing += 1;
                claimed.insert(c);
            }
            Outcome::Differs(d) => failures.push(format!("{name}:\n{d}")),
        }
    }
    // Families we have that node_exporter does not.
    for name in got
        .keys()
        .filter(|n| !skip.is_match(n) && !want.contains_key(*n))
    {
        failures.push(format!("{name}: not in node_exporter's output"));
    }
    let compared = want.keys().filter(|n| !skip.is_match(n)).count();
    println!(
        "node_exporter e2e: {compared} families compared: {identical} identical, \
         {accepted} differ only as accepted, {} differ, {missing} missing \
         (collectors not implemented yet: {})",
        failures.len(),
        claimed.iter().copied().collect::<Vec<_>>().join(" ")
    );
    let stale: Vec<&str> = NOT_IMPLEMENTED
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| {
            !claimed.contains(c) && !FLAGS.contains(&format!("--no-collector.{c}").as_str())
        })
        .collect();
    assert!(
        stale.is_empty(),
        "no family is missing for {stale:?}: take them out of NOT_IMPLEMENTED"
    );
    assert!(
        failures.is_empty(),
        "{} families differ from node_exporter's e2e-output.txt (- theirs, + ours):\n{}\nstderr:\n{}",
        failures.len(),
        failures.join("\n"),
        exporter.stderr()
    );
}

#[test]
fn ttar_content_lines_are_unescaped() {
    assert_eq!(unescape("abc"), b"abc\n");
    assert_eq!(unescape("abcEOF"), b"abc");
    assert_eq!(unescape("a\\EOF"), b"aEOF\n");
    assert_eq!(unescape("xNULLBYTEyEOF"), b"x\0y");
    assert_eq!(unescape("x\\NULLBYTE"), b"xNULLBYTE\n");
    assert!(safe_join(Path::new("/t"), "../etc/passwd").is_err());
    assert!(safe_join(Path::new("/t"), "/etc/passwd").is_err());
}
