//! The ethtool collector against the real kernel and the real
//! node_exporter: a network namespace of its own (with its own /sys, so
//! /sys/class/net lists only its devices) holding a veth pair, a bridge and
//! an ifb device, scraped by ours and by Debian's prometheus-node-exporter
//! with the same flags. Every `node_ethtool_*` and `node_network_*` family
//! must be the same, help, type, labels and values. Needs root, `unshare`,
//! `ip` (iproute2), python3 and prometheus-node-exporter.

use std::process::Command;

/// Fetches from both exporters (started by the script) and prints each one's body after a
/// `== ours` / `== theirs` line.
const FETCH: &str = r#"
import sys, time, urllib.request
for name, port in [("ours", 19781), ("theirs", 19782)]:
    for _ in range(200):
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
            break
        except Exception:
            time.sleep(0.05)
    print("== " + name)
    print(body)
"#;

/// The bodies of ours and node_exporter's, scraped in a namespace with the
/// devices above; `flags` are shell words (quote what the shell would
/// interpret).
fn scrape_both(flags: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let fetch = dir.path().join("fetch.py");
    std::fs::write(&fetch, FETCH).unwrap();
    let script = format!(
        "set -e
mount -t sysfs sysfs /sys
ip link set lo up
ip link add v0 type veth peer name v1
ip link add b0 type bridge
ip link add i0 type ifb
ip link set v0 up
ip link set v1 up
ip link set i0 up
{ours} --web.listen-address=127.0.0.1:19781 --collector.disable-defaults --collector.ethtool {flags} 2>{dir}/ours.log &
a=$!
prometheus-node-exporter --web.listen-address=127.0.0.1:19782 --collector.disable-defaults --collector.ethtool {flags} 2>{dir}/theirs.log &
b=$!
trap 'kill $a $b' EXIT
python3 {fetch}",
        ours = env!("CARGO_BIN_EXE_node-exporter"),
        dir = dir.path().display(),
        fetch = fetch.display(),
    );
    let out = Command::new("unshare")
        .args(["-n", "-m", "sh", "-c", &script])
        .output()
        .expect("running unshare");
    let log = |who: &str| std::fs::read_to_string(dir.path().join(who)).unwrap_or_default();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}\nours: {}\ntheirs: {}",
        String::from_utf8_lossy(&out.stderr),
        log("ours.log"),
        log("theirs.log")
    );
    let (ours, theirs) = stdout
        .split_once("== theirs\n")
        .expect("both bodies printed");
    (
        ours.trim_start_matches("== ours\n").to_string(),
        theirs.to_string(),
    )
}

/// The lines (help, type and series) of the families ethtool reports.
fn ethtool_lines(body: &str) -> Vec<String> {
    let mut lines: Vec<String> = body
        .lines()
        .filter(|l| {
            let name = l
                .strip_prefix("# HELP ")
                .or_else(|| l.strip_prefix("# TYPE "))
                .unwrap_or(l);
            name.starts_with("node_ethtool_") || name.starts_with("node_network_")
        })
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

fn assert_same(flags: &str) -> Vec<String> {
    let (ours, theirs) = scrape_both(flags);
    let (ours_lines, theirs_lines) = (ethtool_lines(&ours), ethtool_lines(&theirs));
    assert_eq!(
        ours_lines, theirs_lines,
        "flags {flags:?}\n== ours\n{ours}\n== theirs\n{theirs}"
    );
    assert!(
        ours.contains("node_scrape_collector_success{collector=\"ethtool\"} 1"),
        "{ours}"
    );
    ours_lines
}

#[test]
fn same_series_as_node_exporter_on_veth_bridge_and_ifb() {
    let lines = assert_same("");
    // What the comparison covered: driver info of each kind of device, the
    // drivers' statistics, and the link settings veth and bridge report.
    for expected in [
        "node_ethtool_info{bus_info=\"\",device=\"v0\",driver=\"veth\"",
        "node_ethtool_info{bus_info=\"N/A\",device=\"b0\",driver=\"bridge\"",
        "node_ethtool_info{bus_info=\"\",device=\"i0\",driver=\"ifb\"",
        "node_ethtool_peer_ifindex{device=\"v0\"}",
        "node_ethtool_received_queue_0_xdp_transmitted{device=\"v1\"} 0",
        "node_ethtool_transmitted_queue_0_packets{device=\"i0\"}",
        "node_network_autonegotiate{device=\"v0\"} 0",
        "node_network_pause_supported{device=\"b0\"} 0",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(expected)),
            "{expected} missing in {lines:#?}"
        );
    }
    // lo supports none of the ethtool requests.
    assert!(!lines.iter().any(|l| l.contains("\"lo\"")), "{lines:#?}");
}

#[test]
fn same_filters_as_node_exporter() {
    let lines = assert_same(
        "--collector.ethtool.device-include=^v '--collector.ethtool.metrics-include=xdp_(packets|xmit)$'",
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("node_ethtool_transmitted_queue_0_xdp_xmit{device=\"v0\"}")),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("peer_ifindex")),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("\"b0\"")), "{lines:#?}");
    let lines = assert_same("'--collector.ethtool.device-exclude=^(v1|b0)$'");
    assert!(!lines.iter().any(|l| l.contains("\"v1\"")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("\"v0\"")), "{lines:#?}");
}
