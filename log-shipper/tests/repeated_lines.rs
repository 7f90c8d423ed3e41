//! Repeated identical lines all reach Loki. Loki stores an entry identical
//! in stream, timestamp and line to one it holds only once (the Loki test
//! receiver does the same), so a shipper that gave the lines of one read
//! the same timestamp lost every repeat of a line within that read. The
//! real binary ships files of repeated lines, and every line written must
//! be stored as often as it was written, each stream's timestamps strictly
//! increasing.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use e2e_tests::loki_receiver::LokiReceiver;
use e2e_tests::process::{free_port, wait_until, Process};

const RESET: &str = "upstream connection reset by peer";

/// One file's contents as written: its writes, in order.
struct File {
    name: &'static str,
    writes: Vec<String>,
}

impl File {
    /// How often each line was written.
    fn counts(&self) -> BTreeMap<String, usize> {
        let mut c = BTreeMap::new();
        for l in self.writes.iter().flat_map(|w| w.lines()) {
            *c.entry(l.to_string()).or_default() += 1;
        }
        c
    }
}

fn lines(lines: impl IntoIterator<Item = String>) -> String {
    lines.into_iter().map(|l| l + "\n").collect()
}

fn start(dir: &Path, receiver: &LokiReceiver) -> Process {
    let port = free_port();
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {port}\n\
positions:\n  filename: {pos}\n\
clients:\n  - url: {url}\n    batchwait: 100ms\n\
scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [localhost]\n        labels:\n          job: app\n          __path__: {logs}/*.log\n",
            pos = dir.join("positions.yaml").display(),
            url = receiver.push_url(),
            logs = dir.join("logs").display(),
        ),
    )
    .unwrap();
    e2e_tests::shipper::start(&config, port, &[], &[])
}

/// Writes `files` (each write in one `write` call, `pause` between the
/// rounds of writes) while the shipper runs, then checks what the receiver
/// stored.
fn ship_and_check(files: &[File], pause: Duration) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    let receiver = LokiReceiver::start();
    let shipper = start(dir.path(), &receiver);
    let mut handles: Vec<std::fs::File> = files
        .iter()
        .map(|f| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.path().join("logs").join(f.name))
                .unwrap()
        })
        .collect();
    let rounds = files.iter().map(|f| f.writes.len()).max().unwrap_or(0);
    for round in 0..rounds {
        if round > 0 {
            std::thread::sleep(pause);
        }
        for (f, h) in files.iter().zip(&mut handles) {
            if let Some(w) = f.writes.get(round) {
                h.write_all(w.as_bytes()).unwrap();
            }
        }
    }
    let written: usize = files.iter().flat_map(|f| f.counts().into_values()).sum();
    // Everything sent, whether stored or dropped as a duplicate.
    let arrived = wait_until("every line arrives", Duration::from_secs(60), || {
        let n = receiver.entry_count() + receiver.duplicates_dropped() as usize;
        if n >= written {
            Ok(true)
        } else {
            Err(format!("{n} of {written} arrived"))
        }
    });
    if let Err(e) = arrived {
        panic!("{e}\n{}", shipper.log_tail(30));
    }
    // Anything sent twice would come right behind.
    std::thread::sleep(Duration::from_millis(500));

    let streams = receiver.streams();
    let mut failures = Vec::new();
    for f in files {
        let path = dir.path().join("logs").join(f.name).display().to_string();
        let Some(stream) = streams.iter().find(|s| s.labels["filename"] == path) else {
            failures.push(format!("{}: no stream", f.name));
            continue;
        };
        let mut stored: BTreeMap<String, usize> = BTreeMap::new();
        for e in &stream.entries {
            *stored.entry(e.line.clone()).or_default() += 1;
        }
        let want = f.counts();
        if stored != want {
            let wrong: Vec<String> = want
                .iter()
                .filter(|(l, n)| stored.get(*l) != Some(n))
                .take(3)
                .map(|(l, n)| {
                    format!(
                        "{l:?} written {n}x, stored {}x",
                        stored.get(l).unwrap_or(&0)
                    )
                })
                .collect();
            failures.push(format!(
                "{}: {} entries stored of {} written: {wrong:?}",
                f.name,
                stream.entries.len(),
                want.values().sum::<usize>()
            ));
        }
        if let Some(w) = stream
            .entries
            .windows(2)
            .find(|w| w[0].timestamp_ns >= w[1].timestamp_ns)
        {
            failures.push(format!(
                "{}: {:?} at {} ns, then {:?} at {} ns",
                f.name, w[0].line, w[0].timestamp_ns, w[1].line, w[1].timestamp_ns
            ));
        }
    }
    failures.extend(receiver.problems());
    let dropped = receiver.duplicates_dropped();
    if dropped > 0 {
        failures.push(format!(
            "{dropped} entries dropped as identical in stream, timestamp and line to one stored"
        ));
    }
    e2e_tests::assert_no_problems("repeated lines", &failures);
}

#[test]
fn repeated_lines_within_one_write_across_writes_and_interleaved_are_all_stored() {
    // The same line 50 times in one write.
    let burst = File {
        name: "burst.log",
        writes: vec![lines((0..50).map(|_| RESET.to_string()))],
    };
    // The same lines again in each of five writes, read separately.
    let across = File {
        name: "across.log",
        writes: (0..5)
            .map(|_| lines((0..10).map(|i| format!("GET /health 200 worker={}", i % 2))))
            .collect(),
    };
    // 110 lines, 50 of them the same, between others that repeat too.
    let interleaved = File {
        name: "interleaved.log",
        writes: vec![lines((0..110).map(|i| match i % 11 {
            0 | 2 | 4 | 6 | 8 => RESET.to_string(),
            3 | 7 => "retrying".to_string(),
            _ => format!("request {i} served"),
        }))],
    };
    ship_and_check(&[burst, across, interleaved], Duration::from_millis(300));
}

#[test]
fn twenty_thousand_lines_with_many_repeats_are_all_stored() {
    // 21 distinct lines (7 paths, 3 lengths), over many 32 KiB reads, in
    // two writes.
    let text = |range: std::ops::Range<usize>| {
        lines(range.map(|i| format!("GET /api/items/{} 200 {}", i % 7, "x".repeat(i % 3))))
    };
    let many = File {
        name: "many.log",
        writes: vec![text(0..12_000), text(12_000..20_000)],
    };
    ship_and_check(&[many], Duration::from_millis(200));
}
