//! The log-shipper binary end to end, against the Loki test receiver:
//! kill -9 under steady writes, a Loki outage then rate limiting, file_sd
//! targets edited while running, reload, dry run. Each test writes
//! numbered lines and checks every one arrived, exactly once unless the
//! scenario allows duplicates.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use e2e_tests::loki_receiver::{LokiReceiver, Mode};
use e2e_tests::process::{free_port, wait_until, Process};

/// A test's temp dir, Loki test receiver and shipper HTTP port.
struct Setup {
    dir: tempfile::TempDir,
    receiver: LokiReceiver,
    port: u16,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            dir: tempfile::tempdir().unwrap(),
            receiver: LokiReceiver::start(),
            port: free_port(),
        }
    }

    /// Writes (or rewrites) `config.yaml` and returns its path.
    fn write_config(&self, extra_client: &str, scrape: &str) -> PathBuf {
        let path = self.dir.path().join("config.yaml");
        let text = config(
            self.dir.path(),
            &self.receiver,
            self.port,
            extra_client,
            scrape,
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// A shipper config in promtail's format; `extra_client` is added to the
/// client block, `scrape` is the scrape_configs list.
fn config(
    dir: &Path,
    receiver: &LokiReceiver,
    port: u16,
    extra_client: &str,
    scrape: &str,
) -> String {
    format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {port}\n  enable_runtime_reload: true\n\
positions:\n  filename: {pos}\n\
target_config:\n  sync_period: 1s\n\
clients:\n  - url: {url}\n    batchwait: 200ms\n{extra_client}\
scrape_configs:\n{scrape}",
        pos = dir.join("positions.yaml").display(),
        url = receiver.push_url(),
    )
}

fn file_job(job: &str, glob: &Path) -> String {
    format!(
        "  - job_name: {job}\n    static_configs:\n      - targets: [localhost]\n        labels:\n          job: {job}\n          __path__: {}\n",
        glob.display()
    )
}

fn get(port: u16, path: &str) -> Result<(u16, String), String> {
    match ureq::get(&format!("http://127.0.0.1:{port}{path}")).call() {
        Ok(r) => Ok((r.status(), r.into_string().unwrap_or_default())),
        Err(ureq::Error::Status(s, r)) => Ok((s, r.into_string().unwrap_or_default())),
        Err(e) => Err(e.to_string()),
    }
}

/// Appends `<prefix>-<n>` lines to a file at a steady rate until stopped;
/// returns how many it wrote.
struct Writer {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<u64>,
}

impl Writer {
    fn start(path: PathBuf, prefix: &'static str, per_second: u64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap();
            let started = Instant::now();
            let mut n = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let due = started.elapsed().as_secs_f64() * per_second as f64;
                while (n as f64) < due {
                    writeln!(f, "{prefix}-{n:08}").unwrap();
                    n += 1;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            n
        });
        Writer { stop, handle }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// Counts of each line the receiver holds.
fn received_counts(receiver: &LokiReceiver) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for line in receiver.lines() {
        *counts.entry(line).or_insert(0) += 1;
    }
    counts
}

/// Waits until every `<prefix>-<n>` for n < `written` arrived; returns the
/// number of duplicates.
fn expect_all(
    receiver: &LokiReceiver,
    prefix: &str,
    written: u64,
    within: Duration,
    shipper: &Process,
) -> usize {
    let result = wait_until("every written line arrives", within, || {
        let counts = received_counts(receiver);
        let missing = (0..written)
            .filter(|n| !counts.contains_key(&format!("{prefix}-{n:08}")))
            .count();
        if missing == 0 {
            Ok(true)
        } else {
            Err(format!("{missing} of {written} lines missing"))
        }
    });
    if let Err(e) = result {
        panic!("{e}\n{}", shipper.log_tail(40));
    }
    let counts = received_counts(receiver);
    let stray: Vec<&String> = counts
        .keys()
        .filter(|l| {
            l.strip_prefix(&format!("{prefix}-"))
                .and_then(|n| n.parse::<u64>().ok())
                .is_none_or(|n| n >= written)
        })
        .collect();
    assert!(stray.is_empty(), "lines nobody wrote arrived: {stray:?}");
    counts.values().map(|c| c - 1).sum()
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// A small deterministic generator, seeded from the clock and printed, so
/// a failing run can be replayed with SHIPPER_KILL_SEED.
fn kill_delays(n: usize) -> (u64, Vec<Duration>) {
    let seed = std::env::var("SHIPPER_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let mut x = seed | 1;
    let delays = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Duration::from_millis(300 + x % 1700)
        })
        .collect();
    (seed, delays)
}

#[test]
fn kill_9_under_steady_writes_loses_nothing() {
    let setup = Setup::new();
    let (dir, receiver, port) = (&setup.dir, &setup.receiver, setup.port);
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let cfg = setup.write_config("", &file_job("app", &dir.path().join("*.log")));

    let rate = 300;
    let writer = Writer::start(log.clone(), "kill", rate);
    let (seed, delays) = kill_delays(6);
    eprintln!("kill schedule seed {seed}: {delays:?}");
    let mut shipper = e2e_tests::shipper::start(&cfg, port, &[], &[]);
    for d in &delays {
        std::thread::sleep(*d);
        drop(shipper); // SIGKILL, no chance to flush or save
        shipper = e2e_tests::shipper::start(&cfg, port, &[], &[]);
    }
    std::thread::sleep(Duration::from_millis(500));
    let written = writer.finish();
    let duplicates = expect_all(receiver, "kill", written, Duration::from_secs(60), &shipper);
    // What may come twice is what was read but not yet saved as delivered
    // when the process died: at most about one batch window per kill.
    let allowed = delays.len() * rate as usize * 2;
    eprintln!(
        "{written} lines, {} kills, {duplicates} duplicates (allowed {allowed})",
        delays.len()
    );
    assert!(
        duplicates <= allowed,
        "{duplicates} duplicates after {} kills (allowed {allowed}, seed {seed})",
        delays.len()
    );
    e2e_tests::assert_no_problems("receiver", &receiver.problems());
}

#[test]
fn loki_down_then_rate_limited_loses_nothing_and_memory_stays_bounded() {
    let setup = Setup::new();
    let (dir, receiver, port) = (&setup.dir, &setup.receiver, setup.port);
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    // Retry until delivered (max_retries 0) with a short ceiling, so the
    // test does not wait minutes for the next attempt once Loki is back.
    let backoff = "    backoff_config:\n      min_period: 100ms\n      max_period: 2s\n      max_retries: 0\n";
    let cfg = setup.write_config(backoff, &file_job("app", &dir.path().join("*.log")));
    let shipper = e2e_tests::shipper::start(&cfg, port, &[], &[]);
    let writer = Writer::start(log.clone(), "outage", 500);
    std::thread::sleep(Duration::from_secs(2));

    let mut max_rss = 0;
    let mut sample = |until: Instant| {
        while Instant::now() < until {
            if let Some(r) = rss_kib(shipper.id()) {
                max_rss = max_rss.max(r);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    receiver.set_mode(Mode::Down);
    sample(Instant::now() + Duration::from_secs(30));
    receiver.set_mode(Mode::Status(429));
    sample(Instant::now() + Duration::from_secs(10));
    receiver.set_mode(Mode::Accept);
    sample(Instant::now() + Duration::from_secs(2));
    let written = writer.finish();
    let duplicates = expect_all(
        receiver,
        "outage",
        written,
        Duration::from_secs(60),
        &shipper,
    );
    assert_eq!(duplicates, 0, "a retried batch arrived twice");
    eprintln!("{written} lines through 30 s down + 10 s 429; max RSS {max_rss} KiB");
    // The files are the buffer: memory must not grow with the backlog
    // (debug build; the release figure is in BENCHMARKS.md).
    assert!(
        max_rss < 64 * 1024,
        "resident memory reached {max_rss} KiB during the outage"
    );
    let (_, metrics) = get(port, "/metrics").unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("promtail_batch_retries_total") && !l.ends_with(" 0")),
        "retries were not counted:\n{metrics}"
    );
    e2e_tests::assert_no_problems("receiver", &receiver.problems());
}

#[test]
fn file_sd_targets_come_and_go_while_running() {
    let setup = Setup::new();
    let (dir, receiver, port) = (&setup.dir, &setup.receiver, setup.port);
    let sd = dir.path().join("targets.yaml");
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    std::fs::write(&a, "a-00000000\n").unwrap();
    std::fs::write(&b, "b-00000000\n").unwrap();
    let target = |p: &Path, name: &str| {
        format!(
            "- targets: [localhost]\n  labels:\n    __path__: {}\n    service: {name}\n",
            p.display()
        )
    };
    std::fs::write(&sd, target(&a, "a")).unwrap();
    let scrape = format!(
        "  - job_name: sd\n    file_sd_configs:\n      - files: [{}]\n        refresh_interval: 1s\n",
        sd.display()
    );
    let cfg = setup.write_config("", &scrape);
    let shipper = e2e_tests::shipper::start(&cfg, port, &[], &[]);
    let has = |line: &str| receiver.lines().iter().any(|l| l == line);
    wait_until("a's line arrives", Duration::from_secs(15), || {
        Ok(has("a-00000000"))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", shipper.log_tail(30)));
    assert!(!has("b-00000000"), "b is not a target yet");

    // Add b, drop a.
    std::fs::write(&sd, target(&b, "b")).unwrap();
    wait_until(
        "b's line arrives after the edit",
        Duration::from_secs(15),
        || Ok(has("b-00000000")),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", shipper.log_tail(30)));
    let stream = receiver
        .streams()
        .into_iter()
        .find(|s| s.entries.iter().any(|e| e.line == "b-00000000"))
        .unwrap();
    assert_eq!(stream.labels.get("service").map(String::as_str), Some("b"));
    assert_eq!(
        stream.labels.get("filename"),
        Some(&b.display().to_string())
    );
    // a is no longer tailed: new lines there stay home.
    std::thread::sleep(Duration::from_secs(2));
    let mut f = std::fs::OpenOptions::new().append(true).open(&a).unwrap();
    writeln!(f, "a-00000001").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(!has("a-00000001"), "a line of a removed target was shipped");
    let (_, targets) = get(port, "/targets").unwrap();
    assert!(
        targets.contains(&b.display().to_string()) && !targets.contains(&a.display().to_string()),
        "{targets}"
    );
}

#[test]
fn reload_by_post_and_sighup_applies_a_new_config_and_rejects_a_bad_one() {
    let setup = Setup::new();
    let (dir, receiver, port) = (&setup.dir, &setup.receiver, setup.port);
    let (one, two) = (dir.path().join("one.log"), dir.path().join("two.log"));
    std::fs::write(&one, "one-00000000\n").unwrap();
    std::fs::write(&two, "two-00000000\n").unwrap();
    let cfg = setup.write_config("", &file_job("one", &one));
    let shipper = e2e_tests::shipper::start(&cfg, port, &[], &[]);
    let has = |line: &str| receiver.lines().iter().any(|l| l == line);
    wait_until("one's line", Duration::from_secs(15), || {
        Ok(has("one-00000000"))
    })
    .unwrap();

    // A broken config is refused and the running one keeps going.
    std::fs::write(&cfg, "scrape_configs:\n  - job_name: x\n    bogus_key: 1\n").unwrap();
    let r = ureq::post(&format!("http://127.0.0.1:{port}/reload")).call();
    let (status, body) = match r {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("bogus_key"),
        "the error names the key: {body}"
    );

    // One that passes the checks but cannot start (a CA file that is no
    // certificate) is undone at once: the old config is running again and
    // ships each line once.
    let garbage = dir.path().join("not-a-ca.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let second_client = format!(
        "  - url: https://127.0.0.1:1/loki/api/v1/push\n    tls_config:\n      ca_file: {}\n",
        garbage.display()
    );
    setup.write_config(&second_client, &file_job("one", &one));
    let r = ureq::post(&format!("http://127.0.0.1:{port}/reload")).call();
    let (status, body) = match r {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("ca_file"),
        "the error names the setting: {body}"
    );
    let mut f = std::fs::OpenOptions::new().append(true).open(&one).unwrap();
    writeln!(f, "one-after-failed-start").unwrap();
    wait_until(
        "the old config ships again",
        Duration::from_secs(15),
        || Ok(has("one-after-failed-start")),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", shipper.log_tail(30)));

    // A good one applies, by POST /reload.
    setup.write_config(
        "",
        &format!("{}{}", file_job("one", &one), file_job("two", &two)),
    );
    let r = ureq::post(&format!("http://127.0.0.1:{port}/reload"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_until("two's line after reload", Duration::from_secs(15), || {
        Ok(has("two-00000000"))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", shipper.log_tail(30)));

    // And by SIGHUP; lines already shipped are not sent again.
    let mut f = std::fs::OpenOptions::new().append(true).open(&one).unwrap();
    writeln!(f, "one-00000001").unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &shipper.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_until("the SIGHUP reload is done", Duration::from_secs(15), || {
        Ok(get(port, "/metrics")?
            .1
            .contains("promtail_config_reload_success_total 2"))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", shipper.log_tail(30)));
    wait_until(
        "one's new line after SIGHUP",
        Duration::from_secs(15),
        || Ok(has("one-00000001")),
    )
    .unwrap();
    let (_, metrics) = get(port, "/metrics").unwrap();
    assert!(
        metrics.contains("promtail_config_reload_success_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("promtail_config_reload_fail_total 2"),
        "{metrics}"
    );
    let counts = received_counts(receiver);
    for l in [
        "one-00000000",
        "two-00000000",
        "one-after-failed-start",
        "one-00000001",
    ] {
        assert_eq!(counts.get(l), Some(&1), "{l} must arrive exactly once");
    }
}

#[test]
fn dry_run_prints_what_it_would_push_and_pushes_nothing() {
    let setup = Setup::new();
    let (dir, receiver) = (&setup.dir, &setup.receiver);
    let log = dir.path().join("app.log");
    std::fs::write(&log, "hello dry run\n").unwrap();
    let cfg = setup.write_config("", &file_job("app", &log));
    let mut cmd = Command::new(e2e_tests::shipper::binary());
    cmd.arg(format!("-config.file={}", cfg.display()))
        .arg("-dry-run");
    let p = Process::spawn("log-shipper", cmd, tempfile::tempdir().unwrap());
    wait_until("the line is printed", Duration::from_secs(15), || {
        Ok(p.log()
            .lines()
            .any(|l| l.ends_with("\thello dry run") && l.contains("job=\"app\"")))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", p.log_tail(20)));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.requests(), 0, "a dry run pushed to Loki");
    assert!(
        !dir.path().join("positions.yaml").exists(),
        "a dry run wrote positions"
    );
}

#[test]
fn check_config_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.yaml");
    std::fs::write(
        &cfg,
        "server:\n  http_listen_port: 9080\nclients:\n  - url: http://localhost:3100/loki/api/v1/push\n    batchwait: 1s\n    bachsize: 10\n",
    )
    .unwrap();
    let out = Command::new(e2e_tests::shipper::binary())
        .arg(format!("-config.file={}", cfg.display()))
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml") && err.contains("bachsize") && err.contains('6'),
        "{err}"
    );
}

#[test]
fn readline_rate_drops_or_waits_as_configured() {
    for drop in [true, false] {
        let setup = Setup::new();
        let (dir, receiver, port) = (&setup.dir, &setup.receiver, setup.port);
        let log = dir.path().join("app.log");
        let lines: String = (0..60).map(|n| format!("rate-{n:08}\n")).collect();
        std::fs::write(&log, lines).unwrap();
        let cfg = setup.write_config("", &file_job("app", &log));
        let limits = format!(
            "limits_config:\n  readline_rate_enabled: true\n  readline_rate: 20\n  readline_burst: 10\n  readline_rate_drop: {drop}\n"
        );
        let mut text = std::fs::read_to_string(&cfg).unwrap();
        text.push_str(&limits);
        std::fs::write(&cfg, text).unwrap();
        let started = Instant::now();
        let shipper = e2e_tests::shipper::start(&cfg, port, &[], &[]);
        if drop {
            // The burst goes at once; the rest arrives faster than the rate
            // allows and is dropped, counted, and not read again.
            wait_until("the drops are counted", Duration::from_secs(15), || {
                Ok(get(port, "/metrics")?.1.lines().any(|l| {
                    l.starts_with("logentry_dropped_lines_total{reason=\"readline_rate_limited\"}")
                        && !l.ends_with(" 0")
                }))
            })
            .unwrap_or_else(|e| panic!("{e}\n{}", shipper.log_tail(20)));
            std::thread::sleep(Duration::from_secs(1));
            let n = receiver.entry_count();
            assert!(
                (10..60).contains(&n),
                "{n} of 60 lines passed a 10-line burst at 20/s"
            );
        } else {
            // Waiting: everything arrives, no faster than the rate allows.
            let missing = expect_all(receiver, "rate", 60, Duration::from_secs(20), &shipper);
            assert_eq!(missing, 0, "duplicates");
            let took = started.elapsed();
            assert!(
                took >= Duration::from_millis(2000),
                "60 lines at 20/s after a burst of 10 took only {took:?}"
            );
        }
    }
}
