//! The log-shipper's `loki_push_api` and `gelf` sources end to end, fed by
//! real senders: Python's `python-logging-loki` handler and a second
//! log-shipper chained into the first (its client pointed at our push
//! API), across outages of the Loki test receiver and a restart of the
//! first shipper; `graypy`'s GELF UDP handler with chunked, zlib'd and
//! plain messages (and a gzip'd one); and a flood of GELF chunks that
//! never complete, which must not grow the shipper's memory.
//!
//! Needs python3 with `python-logging-loki` and `graypy`
//! (requirements-dev.txt, installed by `make deps`).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::loki_receiver::{LokiReceiver, Mode};
use e2e_tests::process::{free_port, wait_until, Process};
use e2e_tests::shipper;

fn counts(receiver: &LokiReceiver) -> HashMap<String, usize> {
    let mut c = HashMap::new();
    for l in receiver.lines() {
        *c.entry(l).or_insert(0) += 1;
    }
    c
}

/// The first shipper: a push API on `push_port` into `receiver`, retrying
/// fast and forever (an outage never drops a batch).
fn push_config(
    dir: &Path,
    receiver: &LokiReceiver,
    port: u16,
    push_port: u16,
    hold: &str,
) -> std::path::PathBuf {
    let cfg = format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {port}\n  enable_runtime_reload: true\n\
positions:\n  filename: {pos}\n\
clients:\n  - url: {url}\n    batchwait: 100ms\n    backoff_config: {{min_period: 100ms, max_period: 500ms, max_retries: 0}}\n\
scrape_configs:\n  \
- job_name: push\n    \
loki_push_api:\n      \
server:\n        http_listen_address: 127.0.0.1\n        http_listen_port: {push_port}\n        grpc_listen_port: 0\n        http_server_write_timeout: {hold}\n      \
labels: {{pushserver: first}}\n      \
use_incoming_timestamp: true\n    \
relabel_configs:\n      - {{source_labels: [app], target_label: application}}\n",
        pos = dir.join("positions-first.yaml").display(),
        url = receiver.push_url(),
    );
    let path = dir.join("first.yaml");
    std::fs::write(&path, cfg).unwrap();
    path
}

fn python(script: &str, args: &[&str]) -> Command {
    let mut c = Command::new("python3");
    c.arg("-c").arg(script).args(args);
    c
}

const LOKI_HANDLER: &str = r#"
import logging, sys, time
import logging_loki

class Strict(logging_loki.LokiHandler):
    # A push that is not answered 204 loses the line: fail the script.
    def handleError(self, record):
        raise

log = logging.getLogger("pyapp")
log.setLevel(logging.INFO)
log.addHandler(Strict(url=sys.argv[1], tags={"app": "pyapp"}, version="1"))
for i in range(int(sys.argv[2])):
    log.info("py-%04d", i)
    time.sleep(0.005)
"#;

#[test]
fn python_loki_handler_loses_nothing_across_a_loki_outage() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = LokiReceiver::start();
    let (port, push_port) = (free_port(), free_port());
    let cfg = push_config(dir.path(), &receiver, port, push_port, "60s");
    let first = shipper::start(&cfg, port, &[], &[]);
    let url = format!("http://127.0.0.1:{push_port}/loki/api/v1/push");
    let n = 400;
    let mut py = python(LOKI_HANDLER, &[&url, &n.to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    wait_until("the first lines arrive", Duration::from_secs(30), || {
        Ok(receiver.entry_count() >= 50)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", first.log_tail(30)));
    receiver.set_mode(Mode::Down);
    std::thread::sleep(Duration::from_secs(3));
    receiver.set_mode(Mode::Accept);
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = py.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "python still logging\n{}",
            first.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(py.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(
        status.success(),
        "the handler saw a failed push: {err}\n{}",
        first.log_tail(30)
    );
    wait_until("every line arrives", Duration::from_secs(30), || {
        Ok(receiver.entry_count() >= n)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", first.log_tail(30)));
    let c = counts(&receiver);
    for i in 0..n {
        assert_eq!(c.get(&format!("py-{i:04}")), Some(&1), "py-{i:04}: {c:?}");
    }
    assert_eq!(c.len(), n);
    let s = &receiver.streams()[0];
    assert_eq!(
        s.labels.get("pushserver").map(String::as_str),
        Some("first")
    );
    assert_eq!(
        s.labels.get("application").map(String::as_str),
        Some("pyapp")
    );
    shipper::stop(first);
}

#[test]
fn a_chained_shipper_loses_nothing_across_an_outage_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = LokiReceiver::start();
    let (port, push_port, port2) = (free_port(), free_port(), free_port());
    let cfg = push_config(dir.path(), &receiver, port, push_port, "60s");
    let mut first = Some(shipper::start(&cfg, port, &[], &[]));
    let log = dir.path().join("app.log");
    let second_cfg = dir.path().join("second.yaml");
    std::fs::write(
        &second_cfg,
        format!(
            "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {port2}\n\
positions:\n  filename: {pos}\n\
clients:\n  - url: http://127.0.0.1:{push_port}/loki/api/v1/push\n    batchwait: 100ms\n    batchsize: 4096\n    backoff_config: {{min_period: 100ms, max_period: 500ms, max_retries: 0}}\n\
scrape_configs:\n  - job_name: app\n    static_configs:\n      - labels: {{job: app, app: chained, __path__: {log}}}\n",
            pos = dir.path().join("positions-second.yaml").display(),
            log = log.display(),
        ),
    )
    .unwrap();
    let second = shipper::start(&second_cfg, port2, &[], &[]);
    let mut f = std::fs::File::create(&log).unwrap();
    let mut written = 0usize;
    let mut write = |f: &mut std::fs::File, k: usize| {
        for _ in 0..k {
            writeln!(f, "chain-{written:05} {}", "x".repeat(60)).unwrap();
            written += 1;
        }
        f.flush().unwrap();
        written
    };
    let tail = |first: &Option<Process>| {
        format!(
            "first:\n{}\nsecond:\n{}",
            first.as_ref().map(|p| p.log_tail(20)).unwrap_or_default(),
            second.log_tail(20)
        )
    };
    let upto = |n: usize, first: &Option<Process>| {
        wait_until("lines arrive", Duration::from_secs(60), || {
            Ok(counts(&receiver).len() >= n)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", tail(first)));
    };
    let n = write(&mut f, 300);
    upto(n, &first);
    // Loki down while lines keep coming.
    receiver.set_mode(Mode::Down);
    write(&mut f, 300);
    std::thread::sleep(Duration::from_secs(2));
    let n = write(&mut f, 300);
    std::thread::sleep(Duration::from_secs(2));
    receiver.set_mode(Mode::Accept);
    upto(n, &first);
    // The first shipper restarts while lines keep coming.
    write(&mut f, 200);
    shipper::stop(first.take().unwrap());
    let n = write(&mut f, 200);
    std::thread::sleep(Duration::from_secs(1));
    first = Some(shipper::start(&cfg, port, &[], &[]));
    upto(n, &first);
    let c = counts(&receiver);
    let missing: Vec<usize> = (0..n)
        .filter(|i| !c.keys().any(|l| l.starts_with(&format!("chain-{i:05} "))))
        .collect();
    assert!(missing.is_empty(), "missing {missing:?}\n{}", tail(&first));
    // Identical stream + timestamp + line is stored once, as Loki does:
    // a resent batch shows as duplicates dropped. At most one batch of the
    // second shipper (4 KB, about 60 lines) per outage and restart.
    let dups = receiver.duplicates_dropped();
    assert!(dups <= 2 * 60, "{dups} lines sent twice\n{}", tail(&first));
    assert!(c.values().all(|&k| k == 1));
    for s in receiver.streams() {
        assert_eq!(
            s.labels.get("pushserver").map(String::as_str),
            Some("first")
        );
        assert_eq!(s.labels.get("job").map(String::as_str), Some("app"));
        assert_eq!(
            s.labels.get("application").map(String::as_str),
            Some("chained")
        );
    }
    shipper::stop(second);
    shipper::stop(first.take().unwrap());
}

#[test]
fn raw_pushes_and_bad_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = LokiReceiver::start();
    let (port, push_port) = (free_port(), free_port());
    let cfg = push_config(dir.path(), &receiver, port, push_port, "2s");
    let first = shipper::start(&cfg, port, &[], &[]);
    let base = format!("http://127.0.0.1:{push_port}");
    let r = ureq::post(&format!("{base}/promtail/api/v1/raw"))
        .send_string("raw one\r\n\nraw two\nraw two\n")
        .unwrap();
    assert_eq!(r.status(), 204);
    // Answered only once delivered; a repeated line is not taken for a
    // duplicate (each line its own timestamp).
    let c = counts(&receiver);
    assert_eq!((c.get("raw one"), c.get("raw two")), (Some(&1), Some(&2)));
    let e = ureq::post(&format!("{base}/loki/api/v1/push"))
        .set("Content-Type", "application/json")
        .send_string("{\"streams\":[{\"stream\":{\"a\":1}}]}")
        .unwrap_err();
    assert!(matches!(e, ureq::Error::Status(400, _)), "{e:?}");
    let e = ureq::post(&format!("{base}/loki/api/v1/push"))
        .send_bytes(b"\xff\xff\xff\xff garbage")
        .unwrap_err();
    assert!(matches!(e, ureq::Error::Status(400, _)), "{e:?}");
    assert_eq!(
        ureq::get(&format!("{base}/ready")).call().unwrap().status(),
        200
    );
    // Loki failing for longer than the hold: 503, so the sender retries.
    receiver.set_mode(Mode::Status(500));
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let push = |line: &str| {
        ureq::post(&format!("{base}/loki/api/v1/push"))
            .set("Content-Type", "application/json")
            .send_string(&format!(
                "{{\"streams\":[{{\"stream\":{{\"app\":\"held\"}},\"values\":[[\"{now_ns}\",\"{line}\"]]}}]}}"
            ))
            .map(|r| r.status())
            .unwrap_or_else(|e| match e {
                ureq::Error::Status(code, _) => code,
                ureq::Error::Transport(t) => panic!("{t}"),
            })
    };
    assert_eq!(push("taken in"), 503);
    // Now known to fail: held at the door, not taken in.
    assert_eq!(push("refused"), 503);
    receiver.set_mode(Mode::Accept);
    assert_eq!(push("after"), 204);
    wait_until("the line taken in arrives", Duration::from_secs(20), || {
        Ok(counts(&receiver).contains_key("taken in"))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", first.log_tail(30)));
    assert!(!counts(&receiver).contains_key("refused"));
    // A reload closes the push port and binds it again.
    let r = ureq::post(&format!("http://127.0.0.1:{port}/reload"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(push("after reload"), 204);
    shipper::stop(first);
}

const GELF: &str = r#"
import gzip, json, logging, os, socket, sys, time
import graypy

port = int(sys.argv[1])
log = logging.getLogger("gelfapp")
log.setLevel(logging.DEBUG)
chunker = lambda: graypy.handler.GELFWarningChunker(chunk_size=1000)
zlibbed = graypy.GELFUDPHandler("127.0.0.1", port, gelf_chunker=chunker(), facility="pytest")
plain = graypy.GELFUDPHandler("127.0.0.1", port, gelf_chunker=chunker(), facility="pytest", compress=False)
log.addHandler(zlibbed)
log.warning("small zlib message", extra={"request_id": "r1"})
big = os.urandom(6000).hex()
log.error("big zlib " + big)
log.removeHandler(zlibbed)
log.addHandler(plain)
log.info("big plain " + big)
msg = {"version": "1.1", "host": "gz-host", "short_message": "gzip message", "level": 7, "timestamp": int(time.time()) + 0.25}
print(int(msg["timestamp"]))
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(gzip.compress(json.dumps(msg).encode()), ("127.0.0.1", port))
"#;

fn gelf_config(dir: &Path, receiver: &LokiReceiver, port: u16, udp: u16) -> std::path::PathBuf {
    let cfg = format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {port}\n  enable_runtime_reload: true\n\
positions:\n  filename: {pos}\n\
clients:\n  - url: {url}\n    batchwait: 100ms\n\
scrape_configs:\n  \
- job_name: gelf\n    \
gelf:\n      listen_address: 127.0.0.1:{udp}\n      labels: {{job: gelf}}\n      use_incoming_timestamp: true\n    \
relabel_configs:\n      \
- {{source_labels: [__gelf_message_level], target_label: level}}\n      \
- {{source_labels: [__gelf_message_host], target_label: host}}\n      \
- {{source_labels: [__gelf_message_facility], target_label: facility}}\n      \
- {{source_labels: [__gelf_message_version], target_label: gelf_version}}\n",
        pos = dir.join("positions.yaml").display(),
        url = receiver.push_url(),
    );
    let path = dir.join("gelf.yaml");
    std::fs::write(&path, cfg).unwrap();
    path
}

#[test]
fn graypy_messages_arrive_chunked_and_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = LokiReceiver::start();
    let (port, udp) = (free_port(), free_port());
    let p = shipper::start(
        &gelf_config(dir.path(), &receiver, port, udp),
        port,
        &[],
        &[],
    );
    let out = python(GELF, &[&udp.to_string()]).output().expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("four GELF messages arrive", Duration::from_secs(20), || {
        Ok(receiver.entry_count() >= 4)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", p.log_tail(30)));
    let mut seen = HashMap::new();
    for s in receiver.streams() {
        for e in &s.entries {
            let v: serde_json::Value = serde_json::from_str(&e.line).unwrap();
            let msg = v["short_message"].as_str().unwrap().to_string();
            let key = msg.split(' ').take(2).collect::<Vec<_>>().join(" ");
            seen.insert(key, (s.labels.clone(), v.clone(), e.timestamp_ns));
        }
    }
    let (labels, v, _) = &seen["small zlib"];
    assert_eq!(labels["job"], "gelf");
    assert_eq!(labels["level"], "warning");
    assert_eq!(labels["facility"], "pytest");
    assert_eq!(labels["gelf_version"], "1.0", "graypy writes GELF 1.0");
    assert!(!labels["host"].is_empty());
    assert_eq!(v["_request_id"], "r1");
    for key in ["big zlib", "big plain"] {
        let (labels, v, _) = &seen[key];
        // 12 KB of hex: several chunks of 1000 bytes either way.
        assert_eq!(
            v["short_message"].as_str().unwrap().len(),
            key.len() + 1 + 12000
        );
        assert_eq!(
            labels["level"],
            if key == "big zlib" {
                "error"
            } else {
                "informational"
            }
        );
    }
    let (labels, _, ts) = &seen["gzip message"];
    assert_eq!(labels["host"], "gz-host");
    assert_eq!(labels["level"], "debug");
    let sent: i128 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(
        *ts,
        sent * 1_000_000_000 + 250_000_000,
        "use_incoming_timestamp"
    );
    shipper::stop(p);
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn a_flood_of_incomplete_gelf_chunks_does_not_grow_memory() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = LokiReceiver::start();
    let (port, udp) = (free_port(), free_port());
    let p = shipper::start(
        &gelf_config(dir.path(), &receiver, port, udp),
        port,
        &[],
        &[],
    );
    let before = rss_kb(p.id());
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = format!("127.0.0.1:{udp}");
    let payload = vec![b'x'; 8000];
    // 40,000 first chunks of 128-chunk messages (320 MB) within a few
    // seconds, less than the 5 s a chunk may wait: only the limit on what
    // waits keeps this from being held.
    let mut sent = 0u64;
    let start = Instant::now();
    for id in 0..40_000u64 {
        let mut d = vec![0x1e, 0x0f];
        d.extend_from_slice(&id.to_be_bytes());
        d.extend_from_slice(&[0, 128]);
        d.extend_from_slice(&payload);
        if sock.send_to(&d, &target).is_ok() {
            sent += d.len() as u64;
        }
        if id % 24 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let elapsed = start.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_kb(p.id());
    eprintln!("RSS {before} -> {after} kB, {sent} bytes in {elapsed:?}");
    assert!(
        after < before + 120 * 1024,
        "RSS grew from {before} kB to {after} kB after {sent} bytes of chunks in {elapsed:?}"
    );
    // Still taking messages.
    sock.send_to(
        br#"{"version":"1.1","host":"h","short_message":"after the flood"}"#,
        &target,
    )
    .unwrap();
    wait_until(
        "a message after the flood arrives",
        Duration::from_secs(20),
        || Ok(receiver.entry_count() >= 1),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", p.log_tail(30)));
    shipper::stop(p);
}
