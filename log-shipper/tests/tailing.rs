//! Tailer -> client -> Loki test receiver, file scenarios from issue 3:
//! every line arrives exactly once unless a test says otherwise, and
//! positions never pass what Loki has not accepted.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_tests::loki_receiver::{Limits, LokiReceiver, Mode, Options};
use log_shipper::ack::Progress;
use log_shipper::client::{BackoffSettings, Client, ClientSettings};
use log_shipper::entry::LabelSet;
use log_shipper::positions::{FileIdentity, Positions, PositionsSettings};
use log_shipper::sources::file::identity::{fnv1a, FINGERPRINT_BYTES};
use log_shipper::sources::file::{FileTargetManager, TailerSettings};

struct Harness {
    dir: tempfile::TempDir,
    receiver: LokiReceiver,
    positions: Arc<Positions>,
    manager: Option<FileTargetManager>,
    client: Option<Client>,
}

fn tailer_settings() -> TailerSettings {
    TailerSettings {
        sync_period: Duration::from_millis(200),
        poll_interval: Duration::from_millis(20),
        flush_timeout: Duration::from_millis(500),
        idle_close: Duration::from_millis(300),
        ..Default::default()
    }
}

impl Harness {
    /// Against a Loki with its default limits.
    fn new() -> Harness {
        Harness::with_limits(Limits::default())
    }

    fn with_limits(limits: Limits) -> Harness {
        // Logs of the shipper in the test output (shown for failures).
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_max_level(tracing::Level::DEBUG)
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        Harness {
            receiver: LokiReceiver::start_with(Options {
                limits,
                ..Options::default()
            })
            .expect("starting the Loki test receiver"),
            positions: Positions::load(PositionsSettings {
                filename: dir.path().join("positions.yaml"),
                sync_period: Duration::from_millis(100),
                ..Default::default()
            }),
            dir,
            manager: None,
            client: None,
        }
    }

    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// Starts the client and tails `glob` (relative to logs/).
    fn start(&mut self, glob: &str, settings: TailerSettings) {
        let client = Client::start(ClientSettings {
            url: self.receiver.push_url(),
            batch_wait: Duration::from_millis(50),
            batch_size: 256 * 1024,
            queue_capacity: 1000,
            backoff: BackoffSettings {
                min_period: Duration::from_millis(20),
                max_period: Duration::from_millis(200),
                max_retries: 0,
            },
            ..Default::default()
        })
        .unwrap();
        let manager = FileTargetManager::new(settings, Arc::clone(&self.positions));
        let mut target = LabelSet::new();
        target.insert("job".into(), "test".into());
        target.insert(
            "__path__".into(),
            format!("{}/{glob}", self.logs().display()),
        );
        manager
            .update("test", vec![target], client.sender())
            .unwrap();
        self.manager = Some(manager);
        self.client = Some(client);
    }

    async fn stop(&mut self) {
        if let Some(m) = self.manager.take() {
            m.stop();
        }
        if let Some(c) = self.client.take() {
            c.stop(Duration::from_millis(200)).await;
        }
    }

    fn lines(&self) -> Vec<String> {
        self.receiver.lines()
    }

    async fn wait_lines(&self, n: usize, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.receiver.entry_count() < n {
            assert!(
                Instant::now() < deadline,
                "timed out: {} of {n} lines arrived",
                self.receiver.entry_count()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Anything extra (a duplicate) would come right behind.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    /// Lines expected but not received, and lines received more often
    /// than expected (or not at all expected).
    fn compare(&self, expected: &[String]) -> (Vec<String>, Vec<String>) {
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for l in expected {
            *counts.entry(l.clone()).or_default() += 1;
        }
        for l in self.lines() {
            *counts.entry(l).or_default() -= 1;
        }
        let pick = |keep: fn(i64) -> bool| -> Vec<String> {
            counts
                .iter()
                .filter(|(_, c)| keep(**c))
                .map(|(l, _)| l.clone())
                .collect()
        };
        (pick(|c| c > 0), pick(|c| c < 0))
    }

    /// Every expected line arrived at least once, and at most
    /// `max_duplicates` more lines than expected arrived.
    fn assert_nothing_lost(&self, expected: &[String], max_duplicates: usize) {
        let (missing, _) = self.compare(expected);
        assert!(
            missing.is_empty(),
            "{} lines lost: first {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        let duplicates = self.receiver.entry_count() - expected.len();
        assert!(
            duplicates <= max_duplicates,
            "{duplicates} duplicates (at most {max_duplicates} allowed)"
        );
        assert!(
            self.receiver.problems().is_empty(),
            "{:?}",
            self.receiver.problems()
        );
    }

    fn assert_exactly_once(&self, expected: &[String]) {
        let (missing, extra) = self.compare(expected);
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{} missing (first {:?}), {} duplicated/unexpected (first {:?}), {} received",
            missing.len(),
            &missing[..missing.len().min(5)],
            extra.len(),
            &extra[..extra.len().min(5)],
            self.receiver.entry_count()
        );
        assert!(
            self.receiver.problems().is_empty(),
            "{:?}",
            self.receiver.problems()
        );
    }
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix} line {i}")).collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = String::new();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    append(path, &text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_by_rename_20_times_under_writes_exactly_once() {
    let mut h = Harness::new();
    let log = h.logs().join("app.log");
    write_lines(&log, &numbered("pre", 0..10));
    h.start("app.log", tailer_settings());
    let logs = h.logs();
    // The writer keeps its file open and reopens after each rotation, as
    // an application signalled by logrotate does.
    let writer = std::thread::spawn(move || {
        let mut all = numbered("pre", 0..10);
        let mut n = 0;
        for rot in 0..20 {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(logs.join("app.log"))
                .unwrap();
            for _ in 0..200 {
                let l = format!("w line {n}");
                writeln!(f, "{l}").unwrap();
                all.push(l);
                n += 1;
                if n % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            // Rotated about every 50 ms, logrotate's way.
            std::thread::sleep(Duration::from_millis(30));
            std::fs::rename(logs.join("app.log"), logs.join(format!("app.log.{rot}"))).unwrap();
            // Late writes to the old file before the app reopens.
            for _ in 0..5 {
                let l = format!("w line {n}");
                writeln!(f, "{l}").unwrap();
                all.push(l);
                n += 1;
            }
        }
        all
    });
    let expected = writer.join().unwrap();
    h.wait_lines(expected.len(), 30).await;
    h.assert_exactly_once(&expected);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_20_times_under_writes_exactly_once() {
    let mut h = Harness::new();
    // The copies match the glob too, as with `/var/log/app.log*`: what
    // was not read from the original before the truncation is read from
    // its copy, from where the original was truncated; the copy itself is
    // never read as a file of its own.
    h.start("app.log*", tailer_settings());
    let expected = write_and_copytruncate(&h.logs(), 20, 200, |l| {
        h.receiver.lines().iter().any(|x| x == l)
    });
    h.wait_lines(expected.len(), 30).await;
    h.assert_exactly_once(&expected);
    h.stop().await;
}

/// A writer appending `per_rotation` numbered lines to app.log (keeping its
/// O_APPEND descriptor, as a daemon does), then a copytruncate to
/// app.log.N, `rotations` times, then 10 lines more; the lines written.
/// Each content's first line is delivered (`delivered`) before the rest of
/// it is written: a content written and copied away between two looks of
/// the shipper is never seen, and its copy cannot be told from any other
/// file (a known limit that a loaded machine would otherwise hit here).
fn write_and_copytruncate(
    logs: &Path,
    rotations: usize,
    per_rotation: usize,
    delivered: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut all = Vec::new();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join("app.log"))
        .unwrap();
    let mut n = 0;
    let mut write = |f: &mut std::fs::File, all: &mut Vec<String>| {
        let l = format!("w line {n}");
        writeln!(f, "{l}").unwrap();
        all.push(l);
        n += 1;
        if n % 50 == 0 {
            std::thread::sleep(Duration::from_millis(4));
        }
    };
    for rot in 0..rotations {
        write(&mut f, &mut all);
        let first = all.last().unwrap().clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !delivered(&first) {
            assert!(Instant::now() < deadline, "{first:?} never delivered");
            std::thread::sleep(Duration::from_millis(5));
        }
        for _ in 1..per_rotation {
            write(&mut f, &mut all);
        }
        std::thread::sleep(Duration::from_millis(20));
        copytruncate(&logs.join("app.log"), &logs.join(format!("app.log.{rot}")));
    }
    for _ in 0..10 {
        write(&mut f, &mut all);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_made_before_the_original_was_read_is_not_read_twice() {
    // The tailer of app.log polls slowly; the copy shows up (inotify) while
    // the original's new lines are still unread. The tailer reads them
    // before the truncation, so the copy must continue after them, not
    // start over.
    let mut h = Harness::new();
    let log = h.logs().join("app.log");
    std::fs::write(&log, b"").unwrap();
    h.start(
        "app.log*",
        TailerSettings {
            sync_period: Duration::from_secs(1),
            poll_interval: Duration::from_millis(500),
            ..tailer_settings()
        },
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut expected = numbered("g0", 0..100);
    write_lines(&log, &expected);
    std::fs::copy(&log, h.logs().join("app.log.1")).unwrap();
    // The original's tailer polls (and reads the 100 lines) meanwhile.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    let g1 = numbered("g1", 0..10);
    write_lines(&log, &g1);
    expected.extend(g1);
    h.wait_lines(expected.len(), 10).await;
    // A copy read from its start would show up within the hold (3 syncs).
    tokio::time::sleep(Duration::from_secs(3)).await;
    h.assert_exactly_once(&expected);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_and_delete_recreate_start_over() {
    let mut h = Harness::new();
    let log = h.logs().join("app.log");
    let mut expected = numbered("a", 0..100);
    write_lines(&log, &expected);
    h.start("*.log", tailer_settings());
    h.wait_lines(100, 10).await;
    // Truncated in place.
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let b = numbered("b", 0..10);
    write_lines(&log, &b);
    expected.extend(b);
    h.wait_lines(110, 10).await;
    // Deleted and created again.
    std::fs::remove_file(&log).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let c = numbered("c", 0..20);
    write_lines(&log, &c);
    expected.extend(c);
    h.wait_lines(130, 10).await;
    h.assert_exactly_once(&expected);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_lines_crlf_binary_junk_and_an_empty_file() {
    let mut h = Harness::new();
    let logs = h.logs();
    std::fs::write(logs.join("empty.log"), b"").unwrap();
    std::fs::write(logs.join("crlf.log"), b"one\r\ntwo\r\n").unwrap();
    let mut junk = Vec::new();
    let mut rng = 12345u64;
    for _ in 0..20_000 {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        junk.push((rng >> 33) as u8);
    }
    junk.push(b'\n');
    std::fs::write(logs.join("junk.log"), &junk).unwrap();
    let junk_lines: Vec<String> = junk[..junk.len() - 1]
        .split(|b| *b == b'\n')
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    append(&logs.join("partial.log"), "held ");
    h.start("*.log", tailer_settings());
    tokio::time::sleep(Duration::from_millis(200)).await;
    append(&logs.join("partial.log"), "together\nflushed-after-timeout");
    let mut expected = vec!["one".to_string(), "two".to_string()];
    expected.extend(junk_lines);
    expected.push("held together".into());
    expected.push("flushed-after-timeout".into());
    h.wait_lines(expected.len(), 10).await;
    h.assert_exactly_once(&expected);
    // The rest of a flushed line comes as a line of its own.
    append(&logs.join("partial.log"), " tail\n");
    append(&logs.join("empty.log"), "now not empty\n");
    expected.push(" tail".into());
    expected.push("now not empty".into());
    h.wait_lines(expected.len(), 10).await;
    h.assert_exactly_once(&expected);
    let by_file: BTreeMap<String, usize> = h
        .receiver
        .streams()
        .iter()
        .map(|s| (s.labels["filename"].clone(), s.entries.len()))
        .collect();
    assert_eq!(by_file[&logs.join("crlf.log").display().to_string()], 2);
    let mut set = exporter_toolkit::exposition::MetricSet::new();
    log_shipper::sources::file::collect(&mut set);
    let text = exporter_toolkit::exposition::encode(
        &set.finish().unwrap(),
        exporter_toolkit::exposition::Format::Text,
    );
    let crlf = logs.join("crlf.log").display().to_string();
    for want in [
        format!("promtail_read_lines_total{{path=\"{crlf}\"}} 2"),
        format!("promtail_read_bytes_total{{path=\"{crlf}\"}} 10"),
        format!("promtail_file_bytes_total{{path=\"{crlf}\"}} 10"),
    ] {
        assert!(text.contains(&want), "{want} not in:\n{text}");
    }
    assert!(text.contains("# TYPE promtail_files_active_total gauge"));
    assert!(h
        .receiver
        .streams()
        .iter()
        .all(|s| s.labels["job"] == "test"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_files_within_a_small_descriptor_budget() {
    let mut h = Harness::new();
    let mut expected = Vec::new();
    for d in 0..20 {
        let dir = h.logs().join(format!("d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            let lines = numbered(&format!("{d}/{f}"), 0..3);
            write_lines(&dir.join(format!("f{f}.log")), &lines);
            expected.extend(lines);
        }
    }
    let settings = TailerSettings {
        max_open_files: 64,
        idle_close: Duration::from_millis(50),
        ..tailer_settings()
    };
    h.start("**/*.log", settings);
    h.wait_lines(expected.len(), 60).await;
    h.assert_exactly_once(&expected);
    let files: usize = h
        .manager
        .as_ref()
        .unwrap()
        .snapshot()
        .iter()
        .map(|t| t.files.len())
        .sum();
    assert_eq!(files, 2000);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5_mib_line_and_long_lines_truncated_or_dropped() {
    // A Loki that takes lines of any size (`max_line_size: 0`): its
    // default, 256 KB, refuses the 5 MiB line with a 400.
    let mut h = Harness::with_limits(Limits {
        max_line_size: None,
        ..Limits::default()
    });
    let big = "x".repeat(5 * 1024 * 1024);
    write_lines(&h.logs().join("big.log"), &[big.clone(), "after".into()]);
    h.start("big.log", tailer_settings());
    h.wait_lines(2, 20).await;
    h.assert_exactly_once(&[big, "after".into()]);
    h.stop().await;

    for truncate in [true, false] {
        let mut h = Harness::new();
        write_lines(
            &h.logs().join("a.log"),
            &["short".into(), "y".repeat(100), "end".into()],
        );
        h.start(
            "a.log",
            TailerSettings {
                max_line_size: 10,
                max_line_size_truncate: truncate,
                ..tailer_settings()
            },
        );
        let mut expected: Vec<String> = vec!["short".into(), "end".into()];
        if truncate {
            expected.push("y".repeat(10));
        }
        h.wait_lines(expected.len(), 10).await;
        h.assert_exactly_once(&expected);
        // A dropped line is done with: the position passes it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let path = h.logs().join("a.log").display().to_string();
        assert_eq!(h.positions.get(&path).unwrap().offset, 6 + 101 + 4);
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_deleted_while_being_read_is_read_to_its_end() {
    let mut h = Harness::new();
    let log = h.logs().join("gone.log");
    let expected = numbered("g", 0..100_000);
    write_lines(&log, &expected);
    h.start("gone.log", tailer_settings());
    // Being read: its first lines arrived (a file deleted before it was
    // ever opened is gone).
    h.wait_lines(1, 90).await;
    std::fs::remove_file(&log).unwrap();
    // Generous: the suite's tests run side by side on a loaded machine.
    h.wait_lines(expected.len(), 90).await;
    h.assert_exactly_once(&expected);
    h.stop().await;
}

/// The rotated file's quiet time does not read its mtime against the
/// clock: one in the future (clock skew, NFS) must not hold the path's new
/// file back until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_file_with_an_mtime_in_the_future_does_not_hold_up_the_new_file() {
    let mut h = Harness::new();
    let log = h.logs().join("app.log");
    let old = numbered("old", 0..10);
    write_lines(&log, &old);
    let settings = TailerSettings {
        rotate_wait: Duration::from_secs(1),
        ..tailer_settings()
    };
    h.start("app.log", settings);
    h.wait_lines(old.len(), 90).await;
    let future = std::time::SystemTime::now() + Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&log)
        .unwrap()
        .set_modified(future)
        .unwrap();
    std::fs::rename(&log, h.logs().join("app.log.1")).unwrap();
    let new = numbered("new", 0..10);
    write_lines(&log, &new);
    // Generous for a loaded machine, and far below the hour.
    h.wait_lines(old.len() + new.len(), 60).await;
    h.assert_exactly_once(&[old, new].concat());
    h.stop().await;
}

/// A deleted file whose lines Loki has not taken yet cannot be found by a
/// restart: the path's saved position goes to the new file under its
/// name, so that one is found again even if it is renamed away while the
/// shipper is not running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_file_not_delivered_gives_its_position_to_the_new_file() {
    let mut h = Harness::new();
    let log = h.logs().join("app.log");
    let old = numbered("old", 0..10);
    write_lines(&log, &old[..5]);
    h.start("app.log", tailer_settings());
    h.wait_lines(5, 30).await;
    h.receiver.set_mode(Mode::Down);
    write_lines(&log, &old[5..]);
    std::fs::remove_file(&log).unwrap();
    let new = numbered("new", 0..10);
    write_lines(&log, &new);
    let new_ino = std::fs::metadata(&log).unwrap().ino();
    let path = log.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let named = h
            .positions
            .get(&path)
            .and_then(|p| p.identity)
            .map(|id| id.ino);
        if named == Some(new_ino) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "positions still name {named:?}, not the new file {new_ino}, while Loki is down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.receiver.set_mode(Mode::Accept);
    h.wait_lines(old.len() + new.len(), 30).await;
    h.assert_exactly_once(&[old, new].concat());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loki_down_429_500_then_back_loses_nothing_and_positions_wait() {
    let mut h = Harness::new();
    let log = h.logs().join("app.log");
    h.receiver.set_mode(Mode::Down);
    h.start("app.log", tailer_settings());
    let mut expected = Vec::new();
    for (i, mode) in [Mode::Down, Mode::Status(429), Mode::Status(500)]
        .into_iter()
        .enumerate()
    {
        h.receiver.set_mode(mode);
        let lines = numbered(&format!("phase{i}"), 0..2000);
        write_lines(&log, &lines);
        expected.extend(lines);
        tokio::time::sleep(Duration::from_millis(600)).await;
        h.positions.save().unwrap();
        let saved = std::fs::read_to_string(h.dir.path().join("positions.yaml")).unwrap();
        let acked_bytes: usize = h.lines().iter().map(|l| l.len() + 1).sum();
        let path = log.display().to_string();
        assert_eq!(
            h.positions.get(&path).map_or(0, |p| p.offset) as usize,
            acked_bytes,
            "{mode:?}: positions follow only what Loki accepted\n{saved}"
        );
    }
    h.receiver.set_mode(Mode::Accept);
    h.wait_lines(expected.len(), 30).await;
    h.assert_exactly_once(&expected);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let size = std::fs::metadata(&log).unwrap().len();
    assert_eq!(
        h.positions.get(&log.display().to_string()).unwrap().offset,
        size
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_from_positions_without_duplicates() {
    let mut h = Harness::new();
    let log = h.logs().join("app.log");
    let first = numbered("first", 0..500);
    write_lines(&log, &first);
    h.start("app.log", tailer_settings());
    h.wait_lines(500, 10).await;
    h.stop().await;
    h.positions.save().unwrap();
    let second = numbered("second", 0..500);
    write_lines(&log, &second);
    h.positions = Positions::load(h.positions.settings().clone());
    h.start("app.log", tailer_settings());
    h.wait_lines(1000, 10).await;
    let mut all = first;
    all.extend(second);
    h.assert_exactly_once(&all);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_while_stopped_reads_the_rest_of_the_old_file_first() {
    let mut h = Harness::new();
    let log = h.logs().join("app.log");
    let first = numbered("first", 0..100);
    write_lines(&log, &first);
    h.start("app.log", tailer_settings());
    h.wait_lines(100, 10).await;
    h.stop().await;
    h.positions.save().unwrap();
    // While we are stopped: more lines, then logrotate renames the file
    // and the application starts a new one.
    let rest = numbered("rest", 0..50);
    write_lines(&log, &rest);
    std::fs::rename(&log, h.logs().join("app.log.1")).unwrap();
    let new = numbered("new", 0..30);
    write_lines(&log, &new);
    h.positions = Positions::load(h.positions.settings().clone());
    h.start("app.log", tailer_settings());
    h.wait_lines(180, 10).await;
    let mut all = first;
    all.extend(rest);
    all.extend(new);
    h.assert_exactly_once(&all);
    let streams = h.receiver.streams();
    assert_eq!(
        streams.len(),
        1,
        "the rest of the old file keeps its labels"
    );
    let lines: Vec<_> = streams[0].entries.iter().map(|e| e.line.clone()).collect();
    assert_eq!(lines, all, "old file first, then the new one");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_is_followed_and_repointing_it_is_a_rotation() {
    let mut h = Harness::new();
    let data = h.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let link = h.logs().join("current.log");
    let one = numbered("one", 0..50);
    write_lines(&data.join("app-1.log"), &one);
    std::os::unix::fs::symlink(data.join("app-1.log"), &link).unwrap();
    h.start("*.log", tailer_settings());
    h.wait_lines(50, 10).await;
    let late = numbered("late", 0..5);
    write_lines(&data.join("app-1.log"), &late);
    let two = numbered("two", 0..20);
    write_lines(&data.join("app-2.log"), &two);
    let tmp = h.logs().join("current.tmp");
    std::os::unix::fs::symlink(data.join("app-2.log"), &tmp).unwrap();
    std::fs::rename(&tmp, &link).unwrap();
    let mut all = one;
    all.extend(late);
    all.extend(two);
    h.wait_lines(all.len(), 10).await;
    h.assert_exactly_once(&all);
    let streams = h.receiver.streams();
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0].labels["filename"], link.display().to_string());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparse_files_and_gzip_rotated_files() {
    let mut h = Harness::new();
    let sparse = h.logs().join("lastlog.log");
    {
        let f = std::fs::File::create(&sparse).unwrap();
        f.set_len(8 * 1024 * 1024 * 1024).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_at(b"after the hole\n", 8 * 1024 * 1024 * 1024)
            .unwrap();
    }
    let gz = h.logs().join("old.log.1.gz");
    {
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::default(),
        );
        for l in numbered("gz", 0..1000) {
            writeln!(enc, "{l}").unwrap();
        }
        enc.finish().unwrap();
    }
    let started = Instant::now();
    h.start("*.{log,gz}", tailer_settings());
    let mut expected = numbered("gz", 0..1000);
    expected.push("after the hole".into());
    h.wait_lines(expected.len(), 20).await;
    h.assert_exactly_once(&expected);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "8 GiB of hole were not read"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_output_channel_restarts_tailers_from_the_delivered_position() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    write_lines(&log, &numbered("a", 0..10));
    let positions = Positions::load(PositionsSettings {
        filename: dir.path().join("positions.yaml"),
        ..Default::default()
    });
    let manager = FileTargetManager::new(tailer_settings(), positions);
    let mut target = LabelSet::new();
    target.insert("__path__".into(), log.display().to_string());
    let (tx1, mut rx1) = tokio::sync::mpsc::channel(100);
    manager.update("j", vec![target.clone()], tx1).unwrap();
    for want in numbered("a", 0..10) {
        let e = rx1.recv().await.unwrap();
        assert_eq!(e.line, want);
        assert_eq!(e.labels["filename"], log.display().to_string());
        e.complete();
    }
    // A reload: the job's pipeline (and channel) is replaced.
    let (tx2, mut rx2) = tokio::sync::mpsc::channel(100);
    manager.update("j", vec![target], tx2).unwrap();
    drop(rx1);
    write_lines(&log, &numbered("b", 0..5));
    for want in numbered("b", 0..5) {
        let e = tokio::time::timeout(Duration::from_secs(5), rx2.recv())
            .await
            .expect("lines after the reload")
            .unwrap();
        assert_eq!(e.line, want);
        e.complete();
    }
    manager.stop();
}

/// A crash as kill -9 leaves it: nothing is flushed or saved on the way
/// out; the next start has only the positions file last synced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_under_steady_writes_lose_nothing() {
    let mut h = Harness::new();
    let log = h.logs().join("app.log");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (log, stop) = (log.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap();
            let mut all = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for _ in 0..100 {
                    let l = format!("steady line {}", all.len());
                    writeln!(f, "{l}").unwrap();
                    all.push(l);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            all
        })
    };
    let settings = h.positions.settings().clone();
    for _crash in 0..5 {
        h.positions = Positions::load(settings.clone());
        let sync = h.positions.spawn_sync();
        h.start("app.log", tailer_settings());
        tokio::time::sleep(Duration::from_millis(400)).await;
        // kill -9: no final save, no flush, unsent entries never acked.
        sync.abort();
        h.manager.take().unwrap().stop();
        h.client.take().unwrap().stop(Duration::ZERO).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let expected = writer.join().unwrap();
    h.positions = Positions::load(settings);
    h.start("app.log", tailer_settings());
    h.wait_lines(expected.len(), 30).await;
    // Each crash re-sends what was accepted since the last sync of the
    // positions (sync_period 100 ms here) plus what was in flight
    // (batch_wait 50 ms): about 150 ms of writes of every 400 ms run.
    h.assert_nothing_lost(&expected, expected.len() / 2);
    h.stop().await;
}

/// logrotate's copytruncate as a writer sees it: copy the file to `copy`,
/// then truncate it in place (the writer keeps its O_APPEND descriptor).
fn copytruncate(log: &Path, copy: &Path) {
    std::fs::copy(log, copy).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(log)
        .unwrap()
        .set_len(0)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_whose_copies_the_glob_does_not_match_exactly_once() {
    // `*.log`, like /var/log/nginx/*.log: the copies (app.log.N) are never
    // matched; what was not read before each truncation is found in them.
    let mut h = Harness::new();
    h.start("*.log", tailer_settings());
    let expected = write_and_copytruncate(&h.logs(), 20, 300, |l| {
        h.receiver.lines().iter().any(|x| x == l)
    });
    h.wait_lines(expected.len(), 30).await;
    h.assert_exactly_once(&expected);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_overwritten_in_place_under_one_name_is_found_every_time() {
    // A rotation script's `cp app.log app.log.1 && : > app.log`: cp
    // overwrites the old copy in place, so every copy has the same inode,
    // as when logrotate's `delaycompress` frees app.log.1's inode and the
    // next copy gets it. What was written just before each copy is only
    // in that copy.
    let mut h = Harness::new();
    let log = h.logs().join("app.log");
    let copy = h.logs().join("app.log.1");
    std::fs::write(&log, b"").unwrap();
    h.start("*.log", tailer_settings());
    let mut expected = Vec::new();
    let mut inodes = std::collections::HashSet::new();
    for gen in 0..5 {
        let read = numbered(&format!("g{gen} read"), 0..200);
        write_lines(&log, &read);
        expected.extend(read);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let unread = numbered(&format!("g{gen} unread"), 0..200);
        write_lines(&log, &unread);
        expected.extend(unread);
        copytruncate(&log, &copy);
        inodes.insert(std::fs::metadata(&copy).unwrap().ino());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(inodes.len(), 1, "every copy was written into one inode");
    h.wait_lines(expected.len(), 30).await;
    h.assert_exactly_once(&expected);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_while_a_long_copy_is_read_are_each_seen() {
    // A big content is truncated almost unread: its copy takes a while to
    // read. Two more rotations happen meanwhile (logrotate's numbering:
    // app.log.1 -> app.log.2, a new copy in app.log.1). The file must
    // still be looked at while the copy is read, or the contents between
    // would never be seen and their copies never found.
    let mut h = Harness::new();
    let log = h.logs().join("app.log");
    std::fs::write(&log, b"").unwrap();
    h.start("*.log", tailer_settings());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Loki refuses meanwhile, so the copy is far from read whatever the
    // machine's speed (an unloaded one read all of it before the
    // rotations below were done).
    h.receiver.set_mode(Mode::Down);
    let mut expected = numbered("big", 0..100_000);
    write_lines(&log, &expected);
    // Seen (a content that lives less than one poll cannot be told from
    // the next one): many polls.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    copytruncate(&log, &h.logs().join("app.log.1"));
    for gen in 0..2 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let lines = numbered(&format!("between {gen}"), 0..200);
        write_lines(&log, &lines);
        expected.extend(lines);
        tokio::time::sleep(Duration::from_millis(100)).await;
        shift_copies(&h.logs());
        copytruncate(&log, &h.logs().join("app.log.1"));
    }
    let last = numbered("after", 0..200);
    write_lines(&log, &last);
    expected.extend(last);
    h.receiver.set_mode(Mode::Accept);
    // Generous: the suite's tests run side by side on a loaded machine.
    h.wait_lines(expected.len(), 90).await;
    h.assert_exactly_once(&expected);
    h.stop().await;
}

/// logrotate's numbering before a copy: app.log.N -> app.log.N+1.
fn shift_copies(logs: &Path) {
    for n in (1..5).rev() {
        let from = logs.join(format!("app.log.{n}"));
        if from.exists() {
            std::fs::rename(&from, logs.join(format!("app.log.{}", n + 1))).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_then_delete_reads_the_rest_from_the_copy() {
    // Copied, truncated and deleted before the next look: the lines not
    // read before are only in the copy.
    let mut h = Harness::new();
    let log = h.logs().join("app.log");
    let mut expected = numbered("before", 0..100);
    write_lines(&log, &expected);
    h.start("*.log", tailer_settings());
    h.wait_lines(expected.len(), 10).await;
    let unread = numbered("unread", 0..100);
    write_lines(&log, &unread);
    expected.extend(unread);
    copytruncate(&log, &h.logs().join("app.log.1"));
    std::fs::remove_file(&log).unwrap();
    h.wait_lines(expected.len(), 10).await;
    h.assert_exactly_once(&expected);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_queued_while_loki_is_down_survive_a_kill() {
    // Loki is down: three copytruncates queue three contents, each
    // waiting in its copy. The shipper is killed (no final save) while
    // they wait, and restarted with Loki back: every content arrives.
    let mut h = Harness::new();
    let log = h.logs().join("app.log");
    std::fs::write(&log, b"").unwrap();
    let settings = h.positions.settings().clone();
    h.positions = Positions::load(settings.clone());
    let sync = h.positions.spawn_sync();
    h.start("*.log", tailer_settings());
    tokio::time::sleep(Duration::from_millis(200)).await;
    h.receiver.set_mode(Mode::Down);
    let mut expected = Vec::new();
    for gen in 0..4 {
        let lines = numbered(&format!("g{gen}"), 0..500);
        write_lines(&log, &lines);
        expected.extend(lines);
        tokio::time::sleep(Duration::from_millis(300)).await;
        if gen < 3 {
            shift_copies(&h.logs());
            copytruncate(&log, &h.logs().join("app.log.1"));
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    // kill -9: no final save, no flush, unsent entries never acked.
    sync.abort();
    h.manager.take().unwrap().stop();
    h.client.take().unwrap().stop(Duration::ZERO).await;
    h.receiver.set_mode(Mode::Accept);
    h.positions = Positions::load(settings);
    h.start("*.log", tailer_settings());
    h.wait_lines(expected.len(), 30).await;
    h.assert_exactly_once(&expected);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_while_loki_is_down_keeps_every_copy_until_shipped() {
    // Loki is down: the tailer stops reading, the file is truncated three
    // times, and each copy is overwritten by the next one (`rotate 1`):
    // each copy must be found and held open while it exists.
    let mut h = Harness::new();
    let log = h.logs().join("app.log");
    std::fs::write(&log, b"").unwrap();
    h.start("*.log", tailer_settings());
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.receiver.set_mode(Mode::Down);
    let mut expected = Vec::new();
    for gen in 0..4 {
        let lines = numbered(&format!("g{gen}"), 0..3000);
        write_lines(&log, &lines);
        expected.extend(lines);
        tokio::time::sleep(Duration::from_millis(400)).await;
        if gen < 3 {
            let copy = h.logs().join("app.log.1");
            let _ = std::fs::remove_file(&copy);
            copytruncate(&log, &copy);
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    h.receiver.set_mode(Mode::Accept);
    h.wait_lines(expected.len(), 30).await;
    h.assert_exactly_once(&expected);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_rotation_then_copytruncate_a_second_later_with_loki_down() {
    // The new live file after a rename rotation is empty: it must be read
    // (watched) at once, so its truncation a second later finds its copy.
    let mut h = Harness::new();
    let log = h.logs().join("app.log");
    let mut expected = numbered("before", 0..500);
    write_lines(&log, &expected);
    h.start("*.log", tailer_settings());
    h.wait_lines(expected.len(), 10).await;
    h.receiver.set_mode(Mode::Down);
    std::fs::rename(&log, h.logs().join("app.log.1")).unwrap();
    std::fs::write(&log, b"").unwrap();
    let fresh = numbered("fresh", 0..800);
    write_lines(&log, &fresh);
    expected.extend(fresh);
    tokio::time::sleep(Duration::from_secs(1)).await;
    copytruncate(&log, &h.logs().join("app.log.2"));
    let after = numbered("after", 0..100);
    write_lines(&log, &after);
    expected.extend(after);
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.receiver.set_mode(Mode::Accept);
    h.wait_lines(expected.len(), 30).await;
    h.assert_exactly_once(&expected);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncation_without_a_copy_is_counted_never_silent() {
    // Truncated with nothing copied while Loki was down: the unread bytes
    // are gone, and the metric says how many.
    let mut h = Harness::new();
    let log = h.logs().join("gone.log");
    std::fs::write(&log, b"").unwrap();
    h.start("*.log", tailer_settings());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = numbered("kept", 0..10);
    write_lines(&log, &first);
    h.wait_lines(first.len(), 10).await;
    h.receiver.set_mode(Mode::Down);
    // Enough to fill the job's channel and the client's queue: the tailer
    // waits with unread bytes in the file.
    let lost = numbered("lost", 0..200_000);
    write_lines(&log, &lost);
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    let after = numbered("after", 0..10);
    write_lines(&log, &after);
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.receiver.set_mode(Mode::Accept);
    let deadline = Instant::now() + Duration::from_secs(30);
    let unread = loop {
        let mut set = exporter_toolkit::exposition::MetricSet::new();
        log_shipper::sources::file::collect(&mut set);
        let text = exporter_toolkit::exposition::encode(
            &set.finish().unwrap(),
            exporter_toolkit::exposition::Format::Text,
        );
        let want = format!(
            "promtail_dropped_bytes_total{{path=\"{}\",reason=\"truncated_unread\"}} ",
            log.display()
        );
        if let Some(line) = text.lines().find(|l| l.starts_with(&want)) {
            break line[want.len()..].parse::<f64>().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no truncated_unread count:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let received = h.lines();
    let delivered_lost = received.iter().filter(|l| l.starts_with("lost")).count();
    let undelivered = lost.len() - delivered_lost;
    // Every undelivered line is counted (at least its bytes), none twice.
    assert!(
        unread >= (undelivered * "lost line 100000\n".len() / 2) as f64 && undelivered > 0,
        "{undelivered} lines never delivered, {unread} bytes counted"
    );
    let total_bytes: usize = lost.iter().map(|l| l.len() + 1).sum();
    assert!(unread <= total_bytes as f64);
    // The new content is read after that.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !after.iter().all(|a| h.lines().contains(a)) {
        assert!(Instant::now() < deadline, "the new content never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_while_stopped_reads_the_rest_from_the_copy_first() {
    let mut h = Harness::new();
    let log = h.logs().join("app.log");
    let first = numbered("first", 0..500);
    write_lines(&log, &first);
    h.start("*.log", tailer_settings());
    h.wait_lines(500, 10).await;
    h.stop().await;
    h.positions.save().unwrap();
    // While we are not running: more lines, then logrotate's copytruncate
    // (the copy not matched by the glob), then the new content.
    let unread = numbered("unread", 0..300);
    write_lines(&log, &unread);
    copytruncate(&log, &h.logs().join("app.log.1"));
    let new = numbered("new", 0..200);
    write_lines(&log, &new);
    h.positions = Positions::load(h.positions.settings().clone());
    h.start("*.log", tailer_settings());
    let mut all = first;
    all.extend(unread);
    all.extend(new);
    h.wait_lines(all.len(), 15).await;
    h.assert_exactly_once(&all);
    // In order: the copy's rest before the new content.
    let lines = h.lines();
    let last_unread = lines.iter().position(|l| l == "unread line 299").unwrap();
    let first_new = lines.iter().position(|l| l == "new line 0").unwrap();
    assert!(last_unread < first_new, "the copy's lines come first");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_and_rename_while_stopped_never_take_the_new_file_for_the_copy() {
    // Found by the model test (file_source_model.rs): stopped while the
    // file held only the start of a line, so its saved fingerprint is the
    // few bytes every line starts with; the new file under the name starts
    // with them too, and was taken for the copy of the old content.
    let mut h = Harness::new();
    let log = h.logs().join("app.log");
    append(&log, "app l");
    let settings = TailerSettings {
        flush_timeout: Duration::from_secs(600),
        ..tailer_settings()
    };
    h.start("*.log", settings.clone());
    let key = log.to_string_lossy().into_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    // Found and saved with the five bytes it holds as its fingerprint.
    let saved_len = |h: &Harness| {
        h.positions
            .get(&key)
            .and_then(|p| p.identity)
            .map(|id| id.fp_len)
    };
    while saved_len(&h) != Some(5) {
        assert!(
            Instant::now() < deadline,
            "the partial line was never found"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.stop().await;
    h.positions.save().unwrap();
    // While we are not running: the line finished and two more, logrotate's
    // copytruncate (the copy not matched by the glob), then a rename
    // rotation of the emptied file, and a new file under the name.
    append(&log, "ine 0\n");
    let all = numbered("app", 0..40);
    write_lines(&log, &all[1..3]);
    let copy = h.logs().join("app.log.1");
    copytruncate(&log, &copy);
    // The copy is older than the new file (a copy search prefers the most
    // recently modified of the files that start right).
    std::fs::File::options()
        .write(true)
        .open(&copy)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(60))
        .unwrap();
    std::fs::rename(&log, h.logs().join("app.log.2")).unwrap();
    write_lines(&log, &all[3..20]);
    h.positions = Positions::load(h.positions.settings().clone());
    h.start("*.log", settings);
    h.wait_lines(20, 15).await;
    write_lines(&log, &all[20..]);
    h.wait_lines(all.len(), 15).await;
    h.assert_exactly_once(&all);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_and_delete_while_stopped_when_the_inode_went_to_another_log() {
    // Found by the model test (file_source_model.rs): while we were not
    // running, app.log was copied, truncated and deleted, a new app.log
    // written, and the freed inode reused by another log the glob matches.
    // Its watcher was taken for one reading our file under another name,
    // so the rest was never read from the copy. The positions file is
    // written here as the stop left it, the reuse being up to the kernel.
    let mut h = Harness::new();
    let other = h.logs().join("access.log");
    let other_lines = numbered("access", 0..5);
    write_lines(&other, &other_lines);
    let meta = std::fs::metadata(&other).unwrap();
    let old = numbered("app", 0..4);
    let old_text: String = old.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(h.logs().join("app.log.1"), &old_text).unwrap();
    // Read and delivered up to its last line; its inode now access.log's.
    let read = old_text.len() - "app line 3\n".len();
    let head = &old_text.as_bytes()[..old_text.len().min(FINGERPRINT_BYTES)];
    let log = h.logs().join("app.log");
    h.positions.track(
        &log.to_string_lossy(),
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            fp_len: head.len() as u64,
            fp: fnv1a(head),
        },
        Progress::new(read as u64),
    );
    h.positions.save().unwrap();
    let new = numbered("new", 0..3);
    write_lines(&log, &new);
    h.positions = Positions::load(h.positions.settings().clone());
    h.start("*.log", tailer_settings());
    let mut expected = vec![old[3].clone()];
    expected.extend(other_lines);
    expected.extend(new);
    h.wait_lines(expected.len(), 15).await;
    h.assert_exactly_once(&expected);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_with_compress_reads_the_rest_from_the_gz_copy() {
    // logrotate's copytruncate + compress without delaycompress: by the
    // time the tailer looks, only app.log.1.gz holds what it had not read.
    let mut h = Harness::new();
    let log = h.logs().join("app.log");
    std::fs::write(&log, b"").unwrap();
    h.start("*.log", tailer_settings());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut expected = numbered("seen", 0..100);
    write_lines(&log, &expected);
    h.wait_lines(expected.len(), 10).await;
    h.receiver.set_mode(Mode::Down);
    let unread = numbered("unread", 0..200_000);
    write_lines(&log, &unread);
    expected.extend(unread);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let gz = std::fs::File::create(h.logs().join("app.log.1.gz")).unwrap();
    let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::fast());
    enc.write_all(&std::fs::read(&log).unwrap()).unwrap();
    enc.finish().unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    let after = numbered("after", 0..50);
    write_lines(&log, &after);
    expected.extend(after);
    h.receiver.set_mode(Mode::Accept);
    h.wait_lines(expected.len(), 60).await;
    h.assert_exactly_once(&expected);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_then_a_rename_while_stopped_finds_the_copy_of_the_renamed_file() {
    // Loki refuses; the file is copytruncated (its lines only in the
    // copy, outside the glob); the shipper dies; the emptied file is then
    // renamed away with late lines. On restart the saved position names
    // the renamed inode, whose content changed: its copy is read first.
    let mut h = Harness::new();
    let log = h.logs().join("b.log");
    std::fs::write(&log, b"").unwrap();
    h.start("*.log", tailer_settings());
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.receiver.set_mode(Mode::Status(500));
    let mut expected = numbered("before", 0..7);
    write_lines(&log, &expected);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let unread = numbered("unread", 0..5);
    write_lines(&log, &unread);
    expected.extend(unread);
    copytruncate(&log, &h.logs().join("b.log.c1"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.positions.save().unwrap();
    h.stop().await;
    std::fs::rename(&log, h.logs().join("b.log.r1")).unwrap();
    let late = numbered("late", 0..3);
    write_lines(&h.logs().join("b.log.r1"), &late);
    expected.extend(late);
    std::fs::write(&log, b"").unwrap();
    h.receiver.set_mode(Mode::Accept);
    h.positions = Positions::load(h.positions.settings().clone());
    h.start("*.log", tailer_settings());
    h.wait_lines(expected.len(), 15).await;
    h.assert_exactly_once(&expected);
    h.stop().await;
}
