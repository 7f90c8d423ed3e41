//! node_exporter 1.12's command line on the real binary: every flag it lists
//! for Linux is listed and accepted, collectors not implemented yet are a
//! clear startup error when enabled (never accepted and ignored), and
//! `--web.systemd-socket` serves on a socket inherited from systemd.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use node_exporter::collectors::pending::PENDING_COLLECTORS;
use node_exporter::collectors::REGISTRY;

/// Every flag `node_exporter --help` lists on Linux (1.12; `--[no-]X` as `X`).
const NODE_EXPORTER_FLAGS: &[&str] = &[
    "collector.arp",
    "collector.arp.device-exclude",
    "collector.arp.device-include",
    "collector.arp.netlink",
    "collector.bcache",
    "collector.bcache.priorityStats",
    "collector.bcachefs",
    "collector.bonding",
    "collector.btrfs",
    "collector.buddyinfo",
    "collector.cgroups",
    "collector.conntrack",
    "collector.cpu",
    "collector.cpu.guest",
    "collector.cpu.info",
    "collector.cpu.info.bugs-include",
    "collector.cpu.info.flags-include",
    "collector.cpu_vulnerabilities",
    "collector.cpufreq",
    "collector.disable-defaults",
    "collector.diskstats",
    "collector.diskstats.device-exclude",
    "collector.diskstats.device-include",
    "collector.dmi",
    "collector.dmmultipath",
    "collector.drbd",
    "collector.drm",
    "collector.edac",
    "collector.entropy",
    "collector.ethtool",
    "collector.ethtool.device-exclude",
    "collector.ethtool.device-include",
    "collector.ethtool.metrics-include",
    "collector.fibrechannel",
    "collector.filefd",
    "collector.filesystem",
    "collector.filesystem.fs-types-exclude",
    "collector.filesystem.fs-types-include",
    "collector.filesystem.mount-points-exclude",
    "collector.filesystem.mount-points-include",
    "collector.hwmon",
    "collector.hwmon.chip-exclude",
    "collector.hwmon.chip-include",
    "collector.hwmon.sensor-exclude",
    "collector.hwmon.sensor-include",
    "collector.infiniband",
    "collector.interrupts",
    "collector.interrupts.include-zeros",
    "collector.interrupts.name-exclude",
    "collector.interrupts.name-include",
    "collector.ipvs",
    "collector.ipvs.backend-labels",
    "collector.kernel_hung",
    "collector.ksmd",
    "collector.lnstat",
    "collector.loadavg",
    "collector.logind",
    "collector.mdadm",
    "collector.meminfo",
    "collector.meminfo_numa",
    "collector.mountstats",
    "collector.netclass",
    "collector.netclass.ignore-invalid-speed",
    "collector.netclass.ignored-devices",
    "collector.netclass.netlink",
    "collector.netclass_rtnl.with-stats",
    "collector.netdev",
    "collector.netdev.address-info",
    "collector.netdev.device-exclude",
    "collector.netdev.device-include",
    "collector.netdev.enable-detailed-metrics",
    "collector.netdev.label-ifalias",
    "collector.netdev.netlink",
    "collector.netstat",
    "collector.netstat.fields",
    "collector.network_route",
    "collector.nfs",
    "collector.nfsd",
    "collector.ntp",
    "collector.ntp.ip-ttl",
    "collector.ntp.local-offset-tolerance",
    "collector.ntp.max-distance",
    "collector.ntp.protocol-version",
    "collector.ntp.server",
    "collector.ntp.server-is-local",
    "collector.ntp.server-port",
    "collector.nvme",
    "collector.os",
    "collector.pcidevice",
    "collector.pcidevice.idsfile",
    "collector.pcidevice.names",
    "collector.perf",
    "collector.perf.cache-profilers",
    "collector.perf.cpus",
    "collector.perf.disable-cache-profilers",
    "collector.perf.disable-hardware-profilers",
    "collector.perf.disable-software-profilers",
    "collector.perf.hardware-profilers",
    "collector.perf.software-profilers",
    "collector.perf.tracepoint",
    "collector.powersupply.ignored-supplies",
    "collector.powersupplyclass",
    "collector.pressure",
    "collector.processes",
    "collector.qdisc",
    "collector.qdisc.device-exclude",
    "collector.qdisc.device-include",
    "collector.qdisc.fixtures",
    "collector.qdisk.device-exclude",
    "collector.qdisk.device-include",
    "collector.rapl",
    "collector.rapl.enable-zone-label",
    "collector.runit",
    "collector.runit.servicedir",
    "collector.schedstat",
    "collector.selinux",
    "collector.slabinfo",
    "collector.slabinfo.slabs-exclude",
    "collector.slabinfo.slabs-include",
    "collector.sockstat",
    "collector.softirqs",
    "collector.softnet",
    "collector.stat",
    "collector.stat.softirq",
    "collector.supervisord",
    "collector.supervisord.url",
    "collector.sysctl",
    "collector.sysctl.include",
    "collector.sysctl.include-info",
    "collector.systemd",
    "collector.systemd.enable-restarts-metrics",
    "collector.systemd.enable-start-time-metrics",
    "collector.systemd.enable-task-metrics",
    "collector.systemd.unit-exclude",
    "collector.systemd.unit-include",
    "collector.tapestats",
    "collector.tapestats.ignored-devices",
    "collector.tcpstat",
    "collector.textfile",
    "collector.textfile.directory",
    "collector.thermal_zone",
    "collector.time",
    "collector.timex",
    "collector.udp_queues",
    "collector.uname",
    "collector.vmstat",
    "collector.vmstat.fields",
    "collector.watchdog",
    "collector.wifi",
    "collector.wifi.fixtures",
    "collector.xfrm",
    "collector.xfs",
    "collector.zfs",
    "collector.zoneinfo",
    "help",
    "log.format",
    "log.level",
    "path.procfs",
    "path.rootfs",
    "path.sysfs",
    "path.udev.data",
    "runtime.gomaxprocs",
    "version",
    "web.config.file",
    "web.disable-exporter-metrics",
    "web.listen-address",
    "web.max-requests",
    "web.systemd-socket",
    "web.telemetry-path",
];

fn help_text() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_node-exporter"))
        .arg("--help")
        .output()
        .expect("running node-exporter --help");
    assert!(out.status.success(), "--help failed");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn help_lists_every_node_exporter_flag() {
    let help = help_text();
    let listed: Vec<&str> = help
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("--"))
        .collect();
    let missing: Vec<&&str> = NODE_EXPORTER_FLAGS
        .iter()
        .filter(|f| !listed.contains(*f))
        .collect();
    assert!(missing.is_empty(), "not in --help: {missing:?}");
}

#[test]
fn help_long_as_node_exporter_s_help_suggests_prints_the_help() {
    let out = Command::new(env!("CARGO_BIN_EXE_node-exporter"))
        .arg("--help-long")
        .output()
        .expect("running node-exporter --help-long");
    assert!(out.status.success(), "--help-long failed");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), help_text());
}

/// A collector node_exporter has that this exporter does not (yet).
fn unimplemented_collector(default_enabled: bool) -> Option<&'static str> {
    PENDING_COLLECTORS
        .iter()
        .find(|p| {
            p.default_enabled == default_enabled && !REGISTRY.iter().any(|s| s.name == p.name)
        })
        .map(|p| p.name)
}

#[test]
fn disabling_collectors_we_do_not_have_starts_fine() {
    let mut args = common::light_args();
    // Pending ones (whichever are left), and ones we have.
    let pending = [true, false]
        .into_iter()
        .filter_map(unimplemented_collector);
    for name in pending.chain(["bonding", "systemd"]) {
        args.push(format!("--no-collector.{name}"));
    }
    let running = common::start(&args);
    let (status, body) = running.get("/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("node_load1 "), "{body}");
}

#[test]
fn enabling_an_unimplemented_collector_is_a_clear_startup_error() {
    for default_enabled in [false, true] {
        let Some(name) = unimplemented_collector(default_enabled) else {
            continue;
        };
        let flag = format!("--collector.{name}");
        let listen = format!("--web.listen-address=127.0.0.1:{}", common::free_port());
        let (code, err) = common::run_to_exit_within(&[&flag, &listen], Duration::from_secs(20))
            .unwrap_or_else(|| panic!("{flag} was accepted: the exporter started"));
        assert_ne!(code, 0);
        assert!(
            err.contains(&flag) && err.contains("not implemented yet"),
            "{err}"
        );
    }
}

#[test]
fn an_option_of_an_unimplemented_default_collector_is_refused_unless_it_is_off() {
    let Some(p) = PENDING_COLLECTORS.iter().find(|p| {
        p.default_enabled && !p.options.is_empty() && !REGISTRY.iter().any(|s| s.name == p.name)
    }) else {
        return;
    };
    let (option, kind) = p.options[0];
    let given = match kind {
        node_exporter::collectors::pending::OptionKind::Bool => format!("--{option}"),
        _ => format!("--{option}=x"),
    };
    let listen = format!("--web.listen-address=127.0.0.1:{}", common::free_port());
    let (code, err) = common::run_to_exit_within(&[&given, &listen], Duration::from_secs(20))
        .unwrap_or_else(|| panic!("{given} was accepted: the exporter started"));
    assert_ne!(code, 0);
    assert!(
        err.contains(option) && err.contains("not implemented yet"),
        "{err}"
    );

    // With the collector off, the option has no effect, as in node_exporter.
    let mut args = common::light_args();
    args.push(format!("--no-collector.{}", p.name));
    args.push(given);
    let running = common::start(&args);
    assert_eq!(running.get("/metrics").0, 200);
}

#[test]
fn options_not_implemented_in_an_existing_collector_are_refused() {
    use node_exporter::collectors::pending::{OptionKind, PENDING_OPTIONS};
    for (collector, option, kind) in PENDING_OPTIONS {
        let implemented = REGISTRY
            .iter()
            .any(|s| (s.flags)().iter().any(|a| a.get_id() == *option));
        if implemented {
            continue;
        }
        let given = match kind {
            OptionKind::Bool => format!("--{option}"),
            _ => format!("--{option}=x"),
        };
        let on = format!("--collector.{collector}");
        let listen = format!("--web.listen-address=127.0.0.1:{}", common::free_port());
        let (code, err) = common::run_to_exit_within(
            &["--collector.disable-defaults", &on, &given, &listen],
            Duration::from_secs(20),
        )
        .unwrap_or_else(|| panic!("{given} was accepted: the exporter started"));
        assert_ne!(code, 0);
        assert!(
            err.contains(&given[..2 + option.len()]) && err.contains("not implemented yet"),
            "{err}"
        );
    }
}

/// systemd socket activation: the listening socket arrives as fd 3 with
/// `LISTEN_FDS=1` and `LISTEN_PID` set to the exporter's own pid. A shell
/// sets `LISTEN_PID=$$` and then execs the exporter, keeping its pid.
#[test]
fn systemd_socket_activation_serves_on_the_inherited_socket() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fd = listener.as_raw_fd();
    let dir = tempfile::tempdir().unwrap();
    let stderr_path = dir.path().join("stderr.log");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_node-exporter"))
        .args(common::light_args())
        // No --web.listen-address: only the inherited socket can answer.
        .arg("--web.systemd-socket")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    // SAFETY: dup2 is async-signal-safe; it runs in the child before exec.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself would keep close-on-exec: clear it then.
            let rc = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(listener);
    let url = format!("http://{addr}/metrics");
    let mut answer = None;
    for _ in 0..250 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "exited {status}: {}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        if let Ok(r) = ureq::get(&url).call() {
            answer = Some(r.into_string().unwrap());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let body = answer.expect("no answer on the inherited socket");
    assert!(body.contains("node_load1 "), "{body}");
}

#[test]
fn systemd_socket_without_activation_is_a_clear_error() {
    let (code, err) = common::run_to_exit_within(
        &["--web.systemd-socket", "--collector.disable-defaults"],
        Duration::from_secs(20),
    )
    .expect("started without a socket from systemd");
    assert_ne!(code, 0);
    assert!(
        err.contains("--web.systemd-socket") && err.contains("LISTEN_PID"),
        "{err}"
    );
}

/// The `.TP` entries of a kingpin-style man page: flag line to help line.
fn man_entries(page: &str) -> std::collections::BTreeMap<String, String> {
    let lines: Vec<&str> = page.lines().collect();
    lines
        .windows(3)
        .filter(|w| w[0] == ".TP" && w[1].starts_with("\\fB--"))
        .map(|w| (w[1].to_string(), w[2].to_string()))
        .collect()
}

#[test]
fn help_man_prints_a_man_page_as_node_exporter_does() {
    let run = |bin: &str| {
        let out = Command::new(bin)
            .arg("--help-man")
            .output()
            .unwrap_or_else(|e| panic!("running {bin} --help-man: {e}"));
        assert!(out.status.success(), "{bin} --help-man failed");
        String::from_utf8(out.stdout).unwrap()
    };
    let ours = run(env!("CARGO_BIN_EXE_node-exporter"));
    let theirs = run("prometheus-node-exporter");
    assert!(ours.starts_with(".TH node-exporter 1 "), "{ours}");
    for section in [".SH \"NAME\"", ".SH \"SYNOPSIS\"", ".SH \"OPTIONS\""] {
        assert!(
            ours.contains(section) && theirs.contains(section),
            "{section}"
        );
    }
    let entries = man_entries(&ours);
    for flag in NODE_EXPORTER_FLAGS {
        assert!(
            ours.lines().any(|l| l.starts_with("\\fB")
                && (l.ends_with(&format!("--{flag}\\fR")) || l.contains(&format!("--{flag}=")))),
            "--{flag} missing from the man page"
        );
    }
    // Flags whose default and help are the same in 1.5.0 and here: the
    // same lines, placeholder quoting included (strings quoted, lists and
    // enums not, booleans bare, no default: the name in capitals).
    let theirs = man_entries(&theirs);
    for flag in [
        "\\fB--web.listen-address=:9100\\fR",
        "\\fB--log.level=info\\fR",
        "\\fB--log.format=logfmt\\fR",
        "\\fB--collector.ethtool.metrics-include=\".*\"\\fR",
        "\\fB--collector.ethtool.device-include=COLLECTOR.ETHTOOL.DEVICE-INCLUDE\\fR",
        "\\fB--web.telemetry-path=\"/metrics\"\\fR",
        "\\fB--path.procfs=\"/proc\"\\fR",
        "\\fB--collector.bcache.priorityStats\\fR",
    ] {
        assert!(theirs.contains_key(flag), "node_exporter lacks {flag}");
        assert!(
            entries.contains_key(flag),
            "{flag} missing from ours:\n{ours}"
        );
    }
    assert_eq!(
        entries["\\fB--collector.ethtool.metrics-include=\".*\"\\fR"],
        theirs["\\fB--collector.ethtool.metrics-include=\".*\"\\fR"]
    );
}

#[test]
fn a_vsock_listen_address_is_refused_by_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_node-exporter"))
        .args([
            "--web.listen-address=vsock://1:19790",
            "--collector.disable-defaults",
        ])
        .output()
        .expect("running node-exporter");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr
            .contains("\"vsock://1:19790\": vsock:// (VM socket) addresses are not supported yet"),
        "{stderr}"
    );
}
