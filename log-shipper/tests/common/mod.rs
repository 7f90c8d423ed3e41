//! What `golden_examples.rs` (the YAML examples against their golden
//! files) and `alloy_examples.rs` (the Alloy forms against the same golden
//! files) share: the table of examples with their fixtures, running a
//! config into the Loki test receiver, and the normalized form of what
//! arrived.
#![allow(dead_code)] // each test file uses its own part

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e_tests::loki_receiver::LokiReceiver;
use e2e_tests::process::{free_port, wait_until, Process};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/examples")
}

pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// One example config of `examples/`, run over its fixtures.
pub struct Case {
    /// The YAML form's file name; the Alloy form has `.alloy` instead.
    pub yaml: &'static str,
    /// Environment the configs read (fixture paths, ports).
    pub env: fn(&Ports) -> Vec<(&'static str, String)>,
    /// Entries that must arrive before the quiet period is waited for.
    pub min_entries: usize,
    /// Sends the example's input over the network, for receivers (files
    /// are read from the fixtures by the config itself).
    pub feed: Option<fn(&Ports)>,
}

/// Ports picked for one run.
pub struct Ports {
    pub listen: u16,
}

fn dir(sub: &str) -> String {
    fixtures().join(sub).display().to_string()
}

/// Every example that runs here (docker.yaml and auth-journal.yaml need a
/// Docker daemon or a journal, so they are only checked for validity).
pub const CASES: &[Case] = &[
    Case {
        yaml: "nginx.yaml",
        env: |_| vec![("NGINX_LOG_DIR", dir("nginx"))],
        min_entries: 10,
        feed: None,
    },
    Case {
        yaml: "apache.yaml",
        env: |_| vec![("APACHE_LOG_DIR", dir("apache2"))],
        min_entries: 8,
        feed: None,
    },
    Case {
        yaml: "auth.yaml",
        env: |_| vec![("AUTH_LOG", dir("auth/auth.log"))],
        min_entries: 13,
        feed: None,
    },
    Case {
        yaml: "services.yaml",
        env: |_| {
            vec![
                ("PROMETHEUS_LOG_DIR", dir("services/prometheus")),
                ("ALERTMANAGER_LOG_DIR", dir("services/alertmanager")),
                ("GRAFANA_LOG_DIR", dir("services/grafana")),
                ("LOKI_LOG_DIR", dir("services/loki")),
            ]
        },
        min_entries: 14,
        feed: None,
    },
    Case {
        yaml: "containers-files.yaml",
        env: |_| {
            vec![
                ("DOCKER_CONTAINERS_DIR", dir("docker/containers")),
                ("POD_LOGS_DIR", dir("pods")),
            ]
        },
        min_entries: 7,
        feed: None,
    },
    Case {
        yaml: "syslog.yaml",
        env: |p| vec![("SYSLOG_LISTEN_ADDRESS", format!("127.0.0.1:{}", p.listen))],
        min_entries: 5,
        feed: Some(feed_syslog),
    },
    Case {
        yaml: "push-api.yaml",
        env: |p| vec![("PUSH_API_PORT", p.listen.to_string())],
        min_entries: 4,
        feed: Some(feed_push_api),
    },
    Case {
        yaml: "gelf.yaml",
        env: |p| vec![("GELF_LISTEN_ADDRESS", format!("127.0.0.1:{}", p.listen))],
        min_entries: 3,
        feed: Some(feed_gelf),
    },
];

/// The table's entry for one example.
pub fn case(yaml: &str) -> &'static Case {
    CASES
        .iter()
        .find(|c| c.yaml == yaml)
        .unwrap_or_else(|| panic!("{yaml} is not in tests/common's CASES"))
}

/// The examples that need a daemon, so are only checked for validity.
pub const NEED_A_DAEMON: &[&str] = &["docker.yaml", "auth-journal.yaml"];

/// Connects to a receiver the shipper opens, retrying until it listens.
pub fn connect(port: u16) -> std::net::TcpStream {
    let mut stream = None;
    wait_until("the receiver listens", Duration::from_secs(30), || {
        stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok();
        Ok(stream.is_some())
    })
    .unwrap();
    stream.unwrap()
}

/// `tests/fixtures/examples/syslog/messages.txt`, one RFC 5424 message a
/// line, sent octet-counted over one TCP connection as rsyslog forwards.
fn feed_syslog(p: &Ports) {
    let text = std::fs::read_to_string(fixtures().join("syslog/messages.txt")).unwrap();
    let mut s = connect(p.listen);
    for line in text.lines().filter(|l| !l.is_empty()) {
        write!(s, "{} {line}", line.len()).unwrap();
    }
    s.flush().unwrap();
}

/// `tests/fixtures/examples/gelf/messages.jsonl`, a datagram a line.
/// UDP says nothing of a listener not bound yet, except that a connected
/// socket's next call fails with "connection refused" after a datagram to
/// a closed port: the first message is sent until that stops (sent twice,
/// it is the same entry, which Loki keeps once).
fn feed_gelf(p: &Ports) {
    let text = std::fs::read_to_string(fixtures().join("gelf/messages.jsonl")).unwrap();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", p.listen)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut lines = text.lines().filter(|l| !l.is_empty());
    let first = lines.next().unwrap();
    wait_until(
        "the GELF listener is bound",
        Duration::from_secs(30),
        || {
            let _ = sock.send(first.as_bytes());
            let mut buf = [0u8; 1];
            Ok(!matches!(
                sock.recv(&mut buf),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
            ))
        },
    )
    .unwrap();
    for line in lines {
        sock.send(line.as_bytes()).unwrap();
    }
}

/// `tests/fixtures/examples/push-api/*.json`, each POSTed as one push.
fn feed_push_api(p: &Ports) {
    connect(p.listen);
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures().join("push-api"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let body = std::fs::read(&f).unwrap();
        let url = format!("http://127.0.0.1:{}/loki/api/v1/push", p.listen);
        let status = ureq_post(&url, &body);
        assert_eq!(status, 204, "{}: push answered {status}", f.display());
    }
}

/// A JSON push by hand over HTTP/1.1 (no client crate needed for one POST).
fn ureq_post(url: &str, body: &[u8]) -> u16 {
    use std::io::Read as _;
    let rest = url.strip_prefix("http://").unwrap();
    let (hostport, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = std::net::TcpStream::connect(hostport).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Formats nanoseconds since the epoch as RFC 3339 in UTC.
pub fn rfc3339(ns: i128) -> String {
    let secs = ns.div_euclid(1_000_000_000) as i64;
    let nanos = ns.rem_euclid(1_000_000_000) as u32;
    chrono::DateTime::from_timestamp(secs, nanos)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| format!("{ns}ns"))
}

/// One JSON object per entry, sorted by stream then time: stable across
/// runs whatever order batches arrived in.
pub fn normalize(receiver: &LokiReceiver) -> String {
    let mut rows = Vec::new();
    for s in receiver.streams() {
        let mut labels: BTreeMap<String, String> = s.labels.clone();
        // The fixtures' absolute path differs between checkouts.
        if let Some(f) = labels.get_mut("filename") {
            let root = fixtures().display().to_string();
            *f = f.replace(&root, "<fixtures>");
        }
        for e in &s.entries {
            let metadata: BTreeMap<&str, &str> = e
                .structured_metadata
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let row = serde_json::json!({
                "labels": labels,
                "time": rfc3339(e.timestamp_ns),
                "metadata": metadata,
                "line": e.line,
            });
            rows.push((
                serde_json::to_string(&labels).unwrap(),
                e.timestamp_ns,
                serde_json::to_string(&row).unwrap(),
            ));
        }
    }
    rows.sort();
    rows.into_iter().map(|(_, _, r)| r + "\n").collect()
}

/// The environment every example reads, plus the case's.
pub fn environment(cmd: &mut Command, push_url: &str, case: &Case, ports: &Ports) {
    cmd.env("HOSTNAME", "web1")
        .env("LOG_TIMEZONE", "Europe/Berlin")
        .env("LOKI_PUSH_URL", push_url);
    for (k, v) in (case.env)(ports) {
        cmd.env(k, v);
    }
}

/// Runs the shipper on `config` for `case` into
/// a fresh Loki test receiver, feeds the case's input, waits for its
/// entries and a quiet period (multiline blocks flush after
/// max_wait_time), and returns what arrived, normalized.
/// An Alloy form (`alloy`) takes the positions file and the HTTP port as
/// flags, a YAML one from its environment.
pub fn run(case: &Case, config: &Path, alloy: bool) -> String {
    let receiver = backfill_receiver();
    let ports = Ports {
        listen: free_port(),
    };
    let dir = tempfile::tempdir().unwrap();
    let positions = dir.path().join("positions.yaml");
    let http_port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_log-shipper"));
    cmd.arg(format!("-config.file={}", config.display()));
    if alloy {
        cmd.arg(format!("-positions.file={}", positions.display()))
            .arg(format!("-server.http-listen-port={http_port}"));
    } else {
        cmd.arg("-config.expand-env=true")
            .env("POSITIONS_FILE", &positions)
            .env("SHIPPER_HTTP_PORT", http_port.to_string());
    }
    environment(&mut cmd, &receiver.push_url(), case, &ports);
    let shipper = Process::spawn("log-shipper", cmd, tempfile::tempdir().unwrap());
    if let Some(feed) = case.feed {
        feed(&ports);
    }
    let arrived = receiver.wait_for_entries(case.min_entries, Duration::from_secs(30));
    assert!(
        arrived,
        "{}: only {} of at least {} entries arrived\n{}",
        config.display(),
        receiver.entry_count(),
        case.min_entries,
        shipper.log_tail(30)
    );
    // Let held multiline blocks (max_wait_time 3s) and a last batch arrive.
    let mut last = receiver.entry_count();
    wait_until("no more entries for 4s", Duration::from_secs(30), || {
        std::thread::sleep(Duration::from_secs(4));
        let now = receiver.entry_count();
        let quiet = now == last;
        last = now;
        Ok(quiet)
    })
    .unwrap();
    drop(shipper);
    assert!(
        receiver.problems().is_empty(),
        "{}: {:?}",
        config.display(),
        receiver.problems()
    );
    normalize(&receiver)
}

/// The fixtures' lines carry their own (past) times, which the example
/// pipelines keep: a Loki that takes them is one set up for a backfill
/// (`reject_old_samples: false`); Loki's other limits stay.
pub fn backfill_receiver() -> LokiReceiver {
    LokiReceiver::start_accepting_old_samples()
}

/// The golden file of a YAML example.
pub fn golden(yaml: &str) -> PathBuf {
    fixtures()
        .join("golden")
        .join(yaml.replace(".yaml", ".jsonl"))
}
