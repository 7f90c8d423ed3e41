//! The issue-6 stages in the real binary: a `metrics` stage's series on
//! the shipper's /metrics, the `tenant` stage choosing the Loki tenant the
//! client sends to, a multiline block whose lines' positions are saved
//! only once the block was delivered, and `structured_metadata` against a
//! Loki that refuses it.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use e2e_tests::loki_receiver::LokiReceiver;
use e2e_tests::process::{free_port, wait_until, Process};

fn get(port: u16, path: &str) -> Result<String, String> {
    ureq::get(&format!("http://127.0.0.1:{port}{path}"))
        .call()
        .map_err(|e| e.to_string())?
        .into_string()
        .map_err(|e| e.to_string())
}

fn start(dir: &Path, receiver: &LokiReceiver, port: u16, pipeline: &str) -> Process {
    let config = format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {port}\n\
positions:\n  filename: {pos}\n  sync_period: 200ms\n\
clients:\n  - url: {url}\n    batchwait: 100ms\n\
scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [localhost]\n        labels:\n          job: app\n          __path__: {logs}/*.log\n    pipeline_stages:\n{pipeline}",
        pos = dir.join("positions.yaml").display(),
        url = receiver.push_url(),
        logs = dir.join("logs").display(),
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_log-shipper"));
    cmd.arg(format!("-config.file={}", path.display()));
    let p = Process::spawn("log-shipper", cmd, tempfile::tempdir().unwrap());
    wait_until("/ready", Duration::from_secs(20), || {
        Ok(get(port, "/ready").is_ok())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", p.log_tail(30)));
    p
}

#[test]
fn metrics_stage_series_and_tenant_stage_routing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    std::fs::write(
        dir.path().join("logs/app.log"),
        "level=info tenant=team-a msg=ok duration=0.2\n\
         level=error tenant=team-b msg=boom duration=1.5\n\
         level=error msg=no-tenant duration=0.01\n",
    )
    .unwrap();
    let receiver = LokiReceiver::start();
    let port = free_port();
    let shipper = start(
        dir.path(),
        &receiver,
        port,
        r#"      - logfmt:
          mapping:
            level:
            tenant:
            duration:
      - tenant:
          source: tenant
      - metrics:
          app_errors_total:
            type: Counter
            description: error lines
            source: level
            config:
              value: error
              action: inc
          app_duration_seconds:
            type: Histogram
            source: duration
            config:
              buckets: [0.1, 1]
"#,
    );
    assert!(
        receiver.wait_for_entries(3, Duration::from_secs(20)),
        "{}",
        shipper.log_tail(30)
    );
    let mut tenants: Vec<Option<String>> = receiver
        .streams()
        .iter()
        .map(|s| s.tenant.clone())
        .collect();
    tenants.sort();
    assert_eq!(
        tenants,
        [None, Some("team-a".to_string()), Some("team-b".to_string())]
    );
    assert!(
        receiver
            .streams()
            .iter()
            .all(|s| !s.labels.contains_key("__tenant_id__")),
        "the internal label is not sent"
    );
    let metrics = get(port, "/metrics").unwrap();
    for want in [
        "# TYPE promtail_custom_app_errors_total counter",
        "promtail_custom_app_errors_total{filename=",
        "promtail_custom_app_duration_seconds_bucket{",
        "le=\"0.1\"} 1",
        "le=\"1\"} 2",
        "le=\"+Inf\"} 3",
    ] {
        assert!(metrics.contains(want), "missing {want:?} in\n{metrics}");
    }
    let errors: f64 = metrics
        .lines()
        .find(|l| l.starts_with("promtail_custom_app_errors_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert_eq!(errors, 2.0);
}

#[test]
fn a_multiline_block_is_one_entry_and_its_lines_are_saved_once_delivered() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    let log = dir.path().join("logs/app.log");
    let receiver = LokiReceiver::start();
    let port = free_port();
    let shipper = start(
        dir.path(),
        &receiver,
        port,
        "      - multiline:\n          firstline: '^\\d{4}-'\n          max_wait_time: 3s\n",
    );
    let block = "2024-03-05 ERROR boom\njava.lang.RuntimeException: x\n\tat a.B.c(B.java:1)\n";
    let mut f = std::fs::File::create(&log).unwrap();
    f.write_all(b"2024-03-05 INFO start\n").unwrap();
    f.write_all(block.as_bytes()).unwrap();
    f.flush().unwrap();
    let size = std::fs::metadata(&log).unwrap().len();
    let positions =
        || std::fs::read_to_string(dir.path().join("positions.yaml")).unwrap_or_default();
    let saved_whole =
        |text: &str| text.contains(&format!(": '{size}'")) || text.contains(&format!(": {size}\n"));
    // The first block goes out when the second starts; the second is held
    // for max_wait_time without new lines, and its lines stay unsaved.
    assert!(
        receiver.wait_for_entries(1, Duration::from_secs(20)),
        "{}",
        shipper.log_tail(30)
    );
    let t = std::time::Instant::now();
    while t.elapsed() < Duration::from_millis(1500) {
        let text = positions();
        if receiver.entry_count() == 1 {
            assert!(!saved_whole(&text), "held lines saved as done: {text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        receiver.wait_for_entries(2, Duration::from_secs(20)),
        "{}",
        shipper.log_tail(30)
    );
    let lines = receiver.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], "2024-03-05 INFO start");
    assert_eq!(lines[1], block.trim_end());
    wait_until(
        "positions.yaml records the whole file",
        Duration::from_secs(10),
        || Ok(saved_whole(&positions())),
    )
    .unwrap_or_else(|e| panic!("{e}: {}", positions()));
}

/// A Loki 3.x with `allow_structured_metadata: false`: the lines a
/// `structured_metadata` stage decorates all arrive (without it), the
/// refusal is logged once and counted, and the file's position is saved
/// only once they are stored.
#[test]
fn structured_metadata_refused_by_loki_loses_no_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    let log = dir.path().join("logs/app.log");
    let receiver = LokiReceiver::start_refusing_structured_metadata();
    let port = free_port();
    let write = |from: usize| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        for i in from..from + 5 {
            writeln!(f, "user=u{i} msg=m{i}").unwrap();
        }
    };
    write(0);
    let shipper = start(
        dir.path(),
        &receiver,
        port,
        "      - logfmt: {mapping: {user: ''}}\n      - structured_metadata: {user: ''}\n",
    );
    assert!(
        receiver.wait_for_entries(5, Duration::from_secs(20)),
        "{}",
        shipper.log_tail(30)
    );
    write(5);
    assert!(
        receiver.wait_for_entries(10, Duration::from_secs(20)),
        "{}",
        shipper.log_tail(30)
    );
    let mut lines = receiver.lines();
    lines.sort();
    let mut want: Vec<String> = (0..10).map(|i| format!("user=u{i} msg=m{i}")).collect();
    want.sort();
    assert_eq!(lines, want, "every line once");
    assert!(receiver
        .streams()
        .iter()
        .flat_map(|s| &s.entries)
        .all(|e| e.structured_metadata.is_empty()));
    let size = std::fs::metadata(&log).unwrap().len();
    let positions =
        || std::fs::read_to_string(dir.path().join("positions.yaml")).unwrap_or_default();
    wait_until("the whole file saved", Duration::from_secs(10), || {
        let p = positions();
        Ok(p.contains(&format!(": '{size}'")) || p.contains(&format!(": {size}\n")))
    })
    .unwrap_or_else(|e| panic!("{e}: {}", positions()));
    let metrics = get(port, "/metrics").unwrap();
    let host = receiver.addr().to_string();
    assert!(
        metrics.contains(&format!(
            "log_shipper_structured_metadata_stripped_entries_total{{host=\"{host}\"}} 10"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "promtail_dropped_entries_total{{host=\"{host}\",reason=\"ingester_error\"}} 0"
        )),
        "{metrics}"
    );
    let warnings = shipper
        .log()
        .matches("Loki refuses structured metadata")
        .count();
    assert_eq!(warnings, 1, "{}", shipper.log_tail(30));
}
