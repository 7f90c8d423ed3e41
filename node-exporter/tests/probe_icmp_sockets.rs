//! The icmp prober's two kinds of socket, each in a network namespace of
//! its own (so `net.ipv4.ping_group_range` is set there, not on the
//! machine): the unprivileged ICMP datagram socket when the range lets
//! the exporter's group in, root's or nobody's, and, for nobody without
//! it, a probe that fails and a log that says why. (The raw socket, root's
//! default here, is what `probe_blackbox_side_by_side.rs` uses.) Needs
//! root, `unshare`, `setpriv`, `ip` and python3.

use std::process::Command;

const MODULES: &str = "modules:
  icmp4:
    prober: icmp
    timeout: 3s
    icmp:
      preferred_ip_protocol: ip4
      dont_fragment: true
      ttl: 5
  icmp6:
    prober: icmp
    timeout: 3s
";

/// Fetches both probes from the exporter started by the script.
const FETCH: &str = r#"
import sys, time, urllib.request
for _ in range(200):
    try:
        urllib.request.urlopen("http://127.0.0.1:19777/metrics").read()
        break
    except Exception:
        time.sleep(0.05)
for q in ["icmp4&target=127.0.0.1", "icmp6&target=::1"]:
    body = urllib.request.urlopen("http://127.0.0.1:19777/probe?module=" + q).read().decode()
    print("== " + q)
    print(body)
"#;

/// Runs the exporter in a new network namespace with the given ping group
/// range, as `user` (root when None); returns what the probes answered and
/// the exporter's log.
fn probe_in_netns(range: &str, user: Option<u32>) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let modules = dir.path().join("blackbox.yml");
    std::fs::write(&modules, MODULES).unwrap();
    let fetch = dir.path().join("fetch.py");
    std::fs::write(&fetch, FETCH).unwrap();
    let log = dir.path().join("exporter.log");
    let as_user = match user {
        Some(uid) => format!("setpriv --reuid={uid} --regid={uid} --clear-groups"),
        None => String::new(),
    };
    let script = format!(
        "set -e
ip link set lo up
sysctl -qw net.ipv4.ping_group_range='{range}'
{as_user} {bin} --web.listen-address=127.0.0.1:19777 --collector.disable-defaults \
  --probe.config.file={modules} 2>{log} &
pid=$!
trap 'kill $pid' EXIT
python3 {fetch}",
        bin = env!("CARGO_BIN_EXE_node-exporter"),
        modules = modules.display(),
        log = log.display(),
        fetch = fetch.display(),
    );
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .output()
        .expect("running unshare");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    (String::from_utf8_lossy(&out.stdout).into_owned(), log)
}

fn successes(body: &str) -> Vec<String> {
    body.lines()
        .filter(|l| l.starts_with("probe_success ") || l.starts_with("probe_icmp_reply_hop_limit "))
        .map(str::to_string)
        .collect()
}

#[test]
fn unprivileged_sockets_where_the_ping_group_range_allows() {
    let ok = [
        "probe_icmp_reply_hop_limit 64",
        "probe_success 1",
        "probe_icmp_reply_hop_limit 64",
        "probe_success 1",
    ];
    // Root, let in by the range: the datagram socket is tried first.
    let (body, _) = probe_in_netns("0 0", None);
    assert_eq!(successes(&body), ok, "{body}");
    // nobody (no CAP_NET_RAW), let in by the range.
    let (body, log) = probe_in_netns("65534 65534", Some(65534));
    assert_eq!(successes(&body), ok, "{body}\n{log}");
}

#[test]
fn without_either_socket_the_probe_fails_and_the_log_says_why() {
    // nobody, and a range that lets no group in.
    let (body, log) = probe_in_netns("1 0", Some(65534));
    assert_eq!(
        successes(&body),
        ["probe_success 0", "probe_success 0"],
        "{body}"
    );
    assert!(
        log.contains("ping_group_range") && log.contains("CAP_NET_RAW"),
        "{log}"
    );
}
