//! Golden tests of the example configs in `log-shipper/examples/`: each
//! runs in the real binary (`-config.expand-env=true`, the fixture logs
//! under `tests/fixtures/examples/` put in place of /var/log through the
//! configs' environment variables) and pushes into the Loki test receiver;
//! what arrives (stream labels, timestamps, structured metadata, lines)
//! must equal `tests/fixtures/examples/golden/<config>.jsonl`.
//! Run with `UPDATE_GOLDEN=1` to rewrite the golden files after a
//! deliberate change, and review the diff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e_tests::loki_receiver::{Limits, LokiReceiver, Options};
use e2e_tests::process::{free_port, wait_until, Process};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/examples")
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// Formats nanoseconds since the epoch as RFC 3339 in UTC.
fn rfc3339(ns: i128) -> String {
    let secs = ns.div_euclid(1_000_000_000) as i64;
    let nanos = ns.rem_euclid(1_000_000_000) as u32;
    chrono::DateTime::from_timestamp(secs, nanos)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| format!("{ns}ns"))
}

/// One JSON object per entry, sorted by stream then time: stable across
/// runs whatever order batches arrived in.
fn normalize(receiver: &LokiReceiver) -> String {
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
    let mut out = String::new();
    for (_, _, r) in rows {
        out.push_str(&r);
        out.push('\n');
    }
    out
}

/// Runs `config` over the fixtures with `env`, waits for `min_entries`
/// plus a quiet period (multiline blocks flush after max_wait_time), and
/// compares with (or rewrites) the golden file.
fn check(config: &str, env: &[(&str, PathBuf)], min_entries: usize) {
    // The fixtures' lines carry their own (past) times, which the example
    // pipelines keep: a Loki that takes them is one set up for a backfill
    // (`reject_old_samples: false`); Loki's other limits stay.
    let receiver = LokiReceiver::start_with(Options {
        limits: Limits {
            reject_old_samples_max_age: None,
            ..Limits::default()
        },
        ..Options::default()
    })
    .expect("starting the Loki test receiver");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_log-shipper"));
    cmd.arg(format!("-config.file={}", example(config).display()))
        .arg("-config.expand-env=true")
        .env("HOSTNAME", "web1")
        .env("LOG_TIMEZONE", "Europe/Berlin")
        .env("LOKI_PUSH_URL", receiver.push_url())
        .env("POSITIONS_FILE", dir.path().join("positions.yaml"))
        .env("SHIPPER_HTTP_PORT", port.to_string());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let shipper = Process::spawn("log-shipper", cmd, tempfile::tempdir().unwrap());
    let arrived = receiver.wait_for_entries(min_entries, Duration::from_secs(30));
    assert!(
        arrived,
        "{config}: only {} of at least {min_entries} entries arrived\n{}",
        receiver.entry_count(),
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
        "{config}: {:?}",
        receiver.problems()
    );
    let got = normalize(&receiver);
    let golden = fixtures()
        .join("golden")
        .join(config.replace(".yaml", ".jsonl"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
        panic!(
            "{} is missing (UPDATE_GOLDEN=1 cargo test -p log-shipper --test golden_examples)",
            golden.display()
        )
    });
    if got != want {
        let diff: Vec<String> = want
            .lines()
            .filter(|l| !got.lines().any(|g| g == *l))
            .map(|l| format!("- {l}"))
            .chain(
                got.lines()
                    .filter(|g| !want.lines().any(|l| l == *g))
                    .map(|g| format!("+ {g}")),
            )
            .collect();
        panic!(
            "{config}: what arrived differs from {} (UPDATE_GOLDEN=1 to accept):\n{}",
            golden.display(),
            diff.join("\n")
        );
    }
}

#[test]
fn nginx_access_and_error_logs() {
    check(
        "nginx.yaml",
        &[("NGINX_LOG_DIR", fixtures().join("nginx"))],
        10,
    );
}

#[test]
fn apache_access_and_error_logs() {
    check(
        "apache.yaml",
        &[("APACHE_LOG_DIR", fixtures().join("apache2"))],
        8,
    );
}

#[test]
fn auth_log_sshd_and_sudo() {
    check(
        "auth.yaml",
        &[("AUTH_LOG", fixtures().join("auth/auth.log"))],
        13,
    );
}

#[test]
fn monitoring_service_logs() {
    let s = fixtures().join("services");
    check(
        "services.yaml",
        &[
            ("PROMETHEUS_LOG_DIR", s.join("prometheus")),
            ("ALERTMANAGER_LOG_DIR", s.join("alertmanager")),
            ("GRAFANA_LOG_DIR", s.join("grafana")),
            ("LOKI_LOG_DIR", s.join("loki")),
        ],
        14,
    );
}

#[test]
fn container_logs_from_docker_and_cri_files_with_stack_traces() {
    check(
        "containers-files.yaml",
        &[
            (
                "DOCKER_CONTAINERS_DIR",
                fixtures().join("docker/containers"),
            ),
            ("POD_LOGS_DIR", fixtures().join("pods")),
        ],
        7,
    );
}

/// Every example config passes `-check-config` (docker.yaml needs the
/// Docker API to run, so it is only checked here).
#[test]
fn every_example_config_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut n = 0;
    for f in std::fs::read_dir(&dir).unwrap() {
        let path = f.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        n += 1;
        let out = Command::new(env!("CARGO_BIN_EXE_log-shipper"))
            .arg(format!("-config.file={}", path.display()))
            .arg("-config.expand-env=true")
            .arg("-check-config")
            .env("HOSTNAME", "web1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(n >= 6, "only {n} example configs");
}
