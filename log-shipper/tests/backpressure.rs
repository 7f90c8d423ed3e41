//! While Loki is down the tailers stop reading (backpressure): memory stays
//! bounded however much is waiting in the files, and nothing is lost once
//! Loki is back. Its own test binary, so the resident memory measured is
//! this scenario's alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_tests::loki_receiver::{LokiReceiver, Mode};
use log_shipper::client::{BackoffSettings, Client, ClientSettings};
use log_shipper::entry::LabelSet;
use log_shipper::positions::{Positions, PositionsSettings};
use log_shipper::sources::file::{FileTargetManager, TailerSettings};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_100_mb_in_200_files_stays_in_the_files_while_loki_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let files = 200;
    let per_file = 500; // lines of 1 KB: 500 KB per file, 100 MB in all
    let line_tail = "x".repeat(1012);
    for f in 0..files {
        let mut text = String::with_capacity(per_file * 1024);
        for i in 0..per_file {
            text.push_str(&format!("{f:04} {i:06} {line_tail}\n"));
        }
        std::fs::write(dir.path().join(format!("f{f}.log")), text).unwrap();
    }
    let total = files * per_file;
    let r = LokiReceiver::start();
    r.set_mode(Mode::Down);
    let client = Client::start(ClientSettings {
        url: r.push_url(),
        batch_wait: Duration::from_millis(200),
        backoff: BackoffSettings {
            min_period: Duration::from_millis(50),
            max_period: Duration::from_millis(200),
            max_retries: 0,
        },
        ..Default::default()
    })
    .unwrap();
    let positions = Positions::load(PositionsSettings {
        filename: dir.path().join("positions.yaml"),
        ..Default::default()
    });
    let manager = FileTargetManager::new(
        TailerSettings {
            poll_interval: Duration::from_millis(50),
            ..Default::default()
        },
        Arc::clone(&positions),
    );
    let before = rss_kib();
    let mut target = LabelSet::new();
    target.insert("job".into(), "bp".into());
    target.insert("__path__".into(), format!("{}/*.log", dir.path().display()));
    manager.update("bp", vec![target], client.sender()).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = rss_kib();
    let grown_mib = during.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 32,
        "resident memory grew by {grown_mib} MiB with Loki down (backlog 100 MB)"
    );
    let read: u64 = manager
        .snapshot()
        .iter()
        .flat_map(|t| t.files.iter().map(|f| f.read_offset))
        .sum();
    eprintln!("Loki down: resident memory +{grown_mib} MiB, {read} bytes read ahead");
    // The client's queue (2,048 entries), one batch and a few chunks.
    assert!(read < 12 * 1024 * 1024, "read {read} bytes ahead of Loki");

    r.set_mode(Mode::Accept);
    let deadline = Instant::now() + Duration::from_secs(120);
    while r.entry_count() < total {
        assert!(
            Instant::now() < deadline,
            "{} of {total} lines arrived",
            r.entry_count()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(r.entry_count(), total, "every line exactly once");
    assert!(r.problems().is_empty(), "{:?}", r.problems());
    manager.stop();
    client.stop(Duration::from_secs(1)).await;
}
