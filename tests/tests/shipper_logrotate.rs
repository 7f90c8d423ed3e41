//! The log-shipper binary against Debian's real logrotate, one test per
//! rotation configuration people run: `copytruncate`, `create`,
//! `copytruncate` with `compress` (with and without `delaycompress`),
//! `dateext`, `olddir`, `rotate 1`. A writer thread appends numbered lines
//! at a steady 3,000 a second, `logrotate -f` rotates every 1-2 s, the Loki
//! test receiver refuses for a while (500, then 429, then down) and the
//! shipper is killed with SIGKILL and restarted, once with a rotation while
//! it is dead. Every line written must arrive, once; a kill may bring back
//! what was in flight (a bounded number of duplicates).
//!
//! The glob is `logs/*.log`: the rotated names (`app.log.1`, `app.log.1.gz`,
//! `app.log-20261204181446`, `old/app.log.1`) never match it, so after a
//! copytruncate what was not read before the truncation can only come from
//! the shipper finding the copy.
//!
//! `LOGROTATE_TEST_SEED` replays a run's rotation schedule (printed).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use e2e_tests::loki_receiver::{LokiReceiver, Mode};
use e2e_tests::process::{find_program, free_port, on_path, wait_until, Process};

/// Lines written per second: a busy web server's access log.
const RATE: u64 = 3_000;
/// Every line is this long (newline included), so a batch's size in
/// lines follows from its size in bytes.
const LINE_LEN: usize = 48;
/// `batchsize` of the client, bytes of lines.
const BATCH_BYTES: usize = 32 * 1024;
/// Lines in one full batch (`batchsize` counts the bytes of lines).
const BATCH_LINES: usize = BATCH_BYTES / (LINE_LEN - 1);
/// What one kill may bring back twice: the batch in flight when the
/// process died (Loki stored it, the ack never came), and the batch before
/// it if its position was not saved yet (saving runs within 200 ms of an
/// ack; at [`RATE`] a batch fills in about 230 ms). Kills are made in
/// steady state, not while a backlog goes back to back.
const DUPLICATES_PER_KILL: usize = 2 * BATCH_LINES;

fn logrotate_bin() -> PathBuf {
    find_program(
        "LOGROTATE_BIN",
        &on_path("logrotate", "/usr/sbin/logrotate"),
        "install Debian's logrotate (`make deps` does)",
    )
}

/// Line number `n`, padded to [`LINE_LEN`] with the newline.
fn line(n: u64) -> String {
    let mut l = format!("lr-{n:08} GET /index.html 200 ");
    while l.len() < LINE_LEN - 1 {
        l.push('x');
    }
    l
}

fn number_of(line: &str) -> Option<u64> {
    line.strip_prefix("lr-")?.get(..8)?.parse().ok()
}

/// A small deterministic generator, seeded from the clock unless
/// `LOGROTATE_TEST_SEED` is set; the seed is printed so a run can be replayed.
struct Rng(u64);

impl Rng {
    fn new() -> (u64, Rng) {
        let seed = std::env::var("LOGROTATE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        (seed, Rng(seed | 1))
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_millis(from + self.0 % (to - from))
    }
}

/// Appends numbered lines to `logs/app.log` at [`RATE`], one write(2) per
/// line on an O_APPEND descriptor, as a daemon does. It keeps its
/// descriptor across rotations (copytruncate) and reopens the path when
/// told to (`create`: a daemon after its SIGHUP or postrotate).
struct Writer {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    reopen: Arc<AtomicU64>,
    /// Held by the test while logrotate copies and truncates: what is
    /// written between the copy and the truncation is lost by logrotate
    /// itself (its man page says so), not by the shipper.
    pause: Arc<Mutex<()>>,
    handle: JoinHandle<()>,
}

impl Writer {
    fn start(path: PathBuf) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let reopen = Arc::new(AtomicU64::new(0));
        let pause = Arc::new(Mutex::new(()));
        let handle = {
            let (stop, written, reopen, pause) = (
                Arc::clone(&stop),
                Arc::clone(&written),
                Arc::clone(&reopen),
                Arc::clone(&pause),
            );
            std::thread::spawn(move || {
                let open = || {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
                };
                let mut f = open();
                let mut generation = 0;
                let started = Instant::now();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let due = (started.elapsed().as_secs_f64() * RATE as f64) as u64;
                    while n < due && !stop.load(Ordering::Relaxed) {
                        let _writing = pause.lock().unwrap_or_else(|e| e.into_inner());
                        let g = reopen.load(Ordering::SeqCst);
                        if g != generation {
                            generation = g;
                            f = open();
                        }
                        f.write_all(format!("{}\n", line(n)).as_bytes())
                            .expect("appending a line");
                        n += 1;
                        written.store(n, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        Writer {
            stop,
            written,
            reopen,
            pause,
            handle,
        }
    }

    fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("the writer thread");
        self.written.load(Ordering::SeqCst)
    }
}

/// How a test rotates.
struct Rotation {
    /// The directives of logrotate's stanza for `logs/app.log`.
    directives: &'static str,
    /// `create`: the writer reopens the path after each rotation.
    reopens: bool,
    /// `olddir old`: the rotated files go to `logs/old`, which the target
    /// names with `__rotated_dir__`.
    olddir: bool,
}

impl Rotation {
    fn copies(&self) -> bool {
        self.directives.contains("copytruncate")
    }
}

/// A test's directory, receiver, shipper config and logrotate config.
struct Setup {
    dir: tempfile::TempDir,
    receiver: LokiReceiver,
    port: u16,
    config: PathBuf,
}

impl Setup {
    fn new(rotated_dir_label: Option<&str>) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(logs.join("old")).unwrap();
        let receiver = LokiReceiver::start();
        let port = free_port();
        let rotated_dir = rotated_dir_label
            .map(|d| format!("          __rotated_dir__: {d}"))
            .unwrap_or_default();
        // promtail's defaults otherwise (sync periods of 10 s): what a
        // user runs. Retries until delivered, with a short ceiling so the
        // test does not wait long once Loki is back.
        let text = [
            "server:".to_string(),
            "  http_listen_address: 127.0.0.1".into(),
            format!("  http_listen_port: {port}"),
            "positions:".into(),
            format!(
                "  filename: {}",
                dir.path().join("positions.yaml").display()
            ),
            "clients:".into(),
            format!("  - url: {}", receiver.push_url()),
            "    batchwait: 500ms".into(),
            format!("    batchsize: {BATCH_BYTES}"),
            "    backoff_config:".into(),
            "      min_period: 100ms".into(),
            "      max_period: 1s".into(),
            "      max_retries: 0".into(),
            "scrape_configs:".into(),
            "  - job_name: app".into(),
            "    static_configs:".into(),
            "      - targets: [localhost]".into(),
            "        labels:".into(),
            "          job: app".into(),
            format!("          __path__: {}", logs.join("*.log").display()),
            rotated_dir,
        ]
        .join("\n");
        let config = dir.path().join("shipper.yaml");
        std::fs::write(&config, text).unwrap();
        Setup {
            dir,
            receiver,
            port,
            config,
        }
    }

    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    fn log(&self) -> PathBuf {
        self.logs().join("app.log")
    }

    /// The shipper, logging at `LOGROTATE_TEST_LOG_LEVEL` (default info).
    fn start_shipper(&self) -> Process {
        let level = std::env::var("LOGROTATE_TEST_LOG_LEVEL").unwrap_or_else(|_| "info".into());
        let flag = format!("-log.level={level}");
        e2e_tests::shipper::start(&self.config, self.port, &[&flag], &[])
    }

    /// Writes a logrotate config for `logs/app.log` named `name`.
    fn logrotate_config(&self, name: &str, directives: &str) -> Logrotate {
        let conf = self.dir.path().join(format!("{name}.conf"));
        let text = format!(
            "{log} {{\n    missingok\n{directives}\n}}\n",
            log = self.log().display()
        );
        std::fs::write(&conf, text).unwrap();
        Logrotate {
            conf,
            state: self.dir.path().join(format!("{name}.state")),
            runs: 0,
            last_second: 0,
        }
    }
}

struct Logrotate {
    conf: PathBuf,
    state: PathBuf,
    runs: usize,
    /// The wall-clock second the last run ended in (Unix seconds).
    last_second: u64,
}

impl Logrotate {
    /// `logrotate -f`: rotates now, whatever its schedule says. Never twice
    /// in one wall-clock second: `dateext` names rotations by the second,
    /// and logrotate refuses a name that exists. The name's second is taken
    /// somewhere during the run (a slow start under load reaches the next
    /// second), so the next run starts after the second this one ended in.
    fn run(&mut self) {
        let second = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        };
        while second() <= self.last_second {
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = Command::new(logrotate_bin())
            .arg("-f")
            .arg("-s")
            .arg(&self.state)
            .arg(&self.conf)
            .output()
            .expect("running logrotate");
        self.last_second = second();
        assert!(
            out.status.success(),
            "logrotate {} failed ({}): {}{}",
            self.conf.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.runs += 1;
    }
}

/// What the receiver holds, judged against the lines written.
struct Tally {
    written: u64,
    /// Line numbers never received.
    missing: Vec<u64>,
    /// Arrivals beyond the first.
    duplicates: usize,
    /// Line numbers that arrived more than once.
    twice: Vec<u64>,
    /// Lines that are not ours, or numbers never written.
    stray: Vec<String>,
    /// Lines stored under another `filename` than `logs/app.log`.
    other_streams: BTreeMap<String, usize>,
    /// Places where a line arrived for the first time after a later one
    /// (`(earlier line, later line that came before it)`).
    out_of_order: Vec<(u64, u64)>,
    out_of_order_count: usize,
}

impl Tally {
    fn take(receiver: &LokiReceiver, written: u64, log: &Path) -> Tally {
        let mut counts: HashMap<u64, usize> = HashMap::new();
        let mut stray = Vec::new();
        for l in receiver.lines() {
            match number_of(&l).filter(|n| *n < written && l == line(*n)) {
                Some(n) => *counts.entry(n).or_default() += 1,
                None => stray.push(l),
            }
        }
        let missing = (0..written).filter(|n| !counts.contains_key(n)).collect();
        let duplicates = counts.values().map(|c| c - 1).sum();
        let mut twice: Vec<u64> = counts
            .iter()
            .filter(|(_, c)| **c > 1)
            .map(|(n, _)| *n)
            .collect();
        twice.sort_unstable();
        let filename = log.display().to_string();
        let mut other_streams = BTreeMap::new();
        let mut out_of_order = Vec::new();
        let mut out_of_order_count = 0;
        for s in receiver.streams() {
            let name = s.labels.get("filename").cloned().unwrap_or_default();
            if name != filename {
                *other_streams.entry(name).or_default() += s.entries.len();
                continue;
            }
            // The first arrival of each line is in the order written: a
            // copy's rest comes before the new content, an old file's
            // before the new file's; a re-sent line is not a first arrival.
            let mut seen = std::collections::HashSet::new();
            let mut newest: Option<u64> = None;
            for e in &s.entries {
                let Some(n) = number_of(&e.line) else {
                    continue;
                };
                if !seen.insert(n) {
                    continue;
                }
                if let Some(prev) = newest.filter(|p| *p > n) {
                    out_of_order_count += 1;
                    if out_of_order.len() < 10 {
                        out_of_order.push((n, prev));
                    }
                }
                newest = Some(newest.map_or(n, |p| p.max(n)));
            }
        }
        Tally {
            written,
            missing,
            duplicates,
            twice,
            stray,
            other_streams,
            out_of_order,
            out_of_order_count,
        }
    }

    fn complete(&self) -> bool {
        self.missing.is_empty()
    }
}

/// `[3, 4, 5, 9]` as `3-5, 9`, the first `max` ranges.
fn ranges(numbers: &[u64], max: usize) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < numbers.len() && out.len() < max {
        let start = numbers[i];
        let mut end = start;
        while i + 1 < numbers.len() && numbers[i + 1] == end + 1 {
            i += 1;
            end = numbers[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end} ({})", end - start + 1)
        });
        i += 1;
    }
    out.join(", ")
}

/// Waits until every line written arrived, or nothing new arrived for
/// `stall` (the rest is not coming), at most `cap`.
fn wait_for_all(receiver: &LokiReceiver, written: u64, log: &Path, stall: Duration) -> Tally {
    let cap = Instant::now() + Duration::from_secs(180);
    let mut last_count = 0;
    let mut last_change = Instant::now();
    loop {
        let tally = Tally::take(receiver, written, log);
        if tally.complete() {
            // A duplicate would come right behind the last line.
            std::thread::sleep(Duration::from_secs(1));
            return Tally::take(receiver, written, log);
        }
        let count = receiver.entry_count();
        if count != last_count {
            last_count = count;
            last_change = Instant::now();
        }
        if last_change.elapsed() >= stall || Instant::now() >= cap {
            return tally;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The shipper has shipped what was written up to `target` (the newest
/// line received is at least that far), or 30 s passed; then a second
/// more of steady state: kills are made while batches go at the writer's
/// pace, not while a backlog goes back to back.
fn wait_caught_up(receiver: &LokiReceiver, target: u64) -> bool {
    let caught_up = wait_until("the shipper catches up", Duration::from_secs(30), || {
        Ok(receiver
            .lines()
            .iter()
            .filter_map(|l| number_of(l))
            .max()
            .is_some_and(|n| n + 1 >= target))
    })
    .is_ok();
    std::thread::sleep(Duration::from_secs(1));
    caught_up
}

fn dropped_metrics(port: u16) -> String {
    match ureq::get(&format!("http://127.0.0.1:{port}/metrics")).call() {
        Ok(r) => r
            .into_string()
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("promtail_dropped_bytes_total"))
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => format!("(metrics not read: {e})"),
    }
}

/// What happens when, after the writer started.
enum Step {
    Rotate,
    Loki(Mode),
    /// SIGKILL once caught up, optionally a rotation while it is dead,
    /// then a restart.
    Kill {
        rotate_while_dead: bool,
    },
}

/// The schedule: rotations every 1.1-2 s (dateext names have seconds:
/// two rotations within one second would collide), Loki refusing from 7 s
/// to 14 s (500, 429, down), kills at 4 s, 17 s (a rotation while dead)
/// and 20 s; the writer stops at 23 s.
fn schedule(rng: &mut Rng) -> (Vec<(Duration, Step)>, Duration) {
    let s = Duration::from_millis;
    let end = s(23_000);
    let mut steps = vec![
        (
            s(4_000),
            Step::Kill {
                rotate_while_dead: false,
            },
        ),
        (s(7_000), Step::Loki(Mode::Status(500))),
        (s(9_000), Step::Loki(Mode::Status(429))),
        (s(11_000), Step::Loki(Mode::Down)),
        (s(14_000), Step::Loki(Mode::Accept)),
        (
            s(17_000),
            Step::Kill {
                rotate_while_dead: true,
            },
        ),
        (
            s(20_000),
            Step::Kill {
                rotate_while_dead: false,
            },
        ),
    ];
    let mut at = s(500);
    while at < end {
        steps.push((at, Step::Rotate));
        at += rng.millis(1_100, 2_000);
    }
    steps.sort_by_key(|(t, _)| *t);
    (steps, end)
}

fn run(name: &str, rotation: Rotation) {
    let setup = Setup::new(rotation.olddir.then_some("old"));
    let receiver = &setup.receiver;
    let directives = if rotation.olddir {
        format!(
            "{}\n    olddir {}",
            rotation.directives,
            setup.logs().join("old").display()
        )
    } else {
        rotation.directives.to_string()
    };
    let mut logrotate = setup.logrotate_config(name, &directives);
    std::fs::write(setup.log(), "").unwrap();
    let mut shipper = setup.start_shipper();
    let writer = Writer::start(setup.log());
    let (seed, mut rng) = Rng::new();
    let (steps, end) = schedule(&mut rng);
    eprintln!("{name}: rotation schedule seed {seed} (LOGROTATE_TEST_SEED replays it)");

    let rotate = |logrotate: &mut Logrotate| {
        {
            let _paused = rotation
                .copies()
                .then(|| writer.pause.lock().unwrap_or_else(|e| e.into_inner()));
            logrotate.run();
        }
        if rotation.reopens {
            // A few lines still go to the renamed file before the daemon
            // reopens its log, as between a rename and the postrotate
            // script's signal.
            std::thread::sleep(Duration::from_millis(30));
            writer.reopen.fetch_add(1, Ordering::SeqCst);
        }
    };
    let started = Instant::now();
    // Time spent waiting for the shipper to catch up and restart moves the
    // rest of the schedule: rotations stay 1.1-2 s apart.
    let mut shift = Duration::ZERO;
    let mut kills = 0;
    let mut duplicates_before_kill = Vec::new();
    let mut notes = Vec::new();
    // Each run's log: a kill drops the process and its log directory.
    let mut shipper_logs = Vec::new();
    for (at, step) in steps {
        if let Some(wait) = (at + shift).checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        match step {
            Step::Rotate => rotate(&mut logrotate),
            Step::Loki(mode) => receiver.set_mode(mode),
            Step::Kill { rotate_while_dead } => {
                let killing = Instant::now();
                if !wait_caught_up(receiver, writer.written()) {
                    notes.push(format!(
                        "kill {} made before the shipper caught up (duplicates may exceed the allowance)",
                        kills + 1
                    ));
                }
                let before = Tally::take(receiver, writer.written(), &setup.log()).duplicates;
                shipper_logs.push(shipper.log());
                drop(shipper); // SIGKILL: nothing flushed, positions as last saved
                kills += 1;
                duplicates_before_kill.push(before);
                if rotate_while_dead {
                    rotate(&mut logrotate);
                }
                shipper = setup.start_shipper();
                shift += killing.elapsed();
            }
        }
    }
    if let Some(wait) = (end + shift).checked_sub(started.elapsed()) {
        std::thread::sleep(wait);
    }
    let written = writer.finish();
    let tally = wait_for_all(receiver, written, &setup.log(), Duration::from_secs(15));
    let allowed = kills * DUPLICATES_PER_KILL;
    // Duplicates that came after each kill (until the next one).
    duplicates_before_kill.push(tally.duplicates);
    let per_kill: Vec<usize> = duplicates_before_kill
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .collect();
    let summary = format!(
        "{name}: {written} lines written in {:?}, {} rotations, {kills} kills; {} lost, {} duplicated (allowed {allowed}; after each kill: {per_kill:?}), {} stray, {} out of order; seed {seed}",
        started.elapsed(),
        logrotate.runs,
        tally.missing.len(),
        tally.duplicates,
        tally.stray.len(),
        tally.out_of_order_count,
    );
    eprintln!("{summary}");
    let mut failures = Vec::new();
    if !tally.missing.is_empty() {
        failures.push(format!(
            "{} of {} lines lost; first missing line numbers: {}",
            tally.missing.len(),
            tally.written,
            ranges(&tally.missing, 20)
        ));
    }
    if tally.duplicates > allowed {
        failures.push(format!(
            "{} duplicates after {kills} kills (at most {allowed}: {DUPLICATES_PER_KILL} a kill): {}",
            tally.duplicates,
            ranges(&tally.twice, 20)
        ));
    }
    if !tally.stray.is_empty() {
        failures.push(format!(
            "{} lines nobody wrote arrived, e.g. {:?}",
            tally.stray.len(),
            &tally.stray[..tally.stray.len().min(5)]
        ));
    }
    if !tally.other_streams.is_empty() {
        failures.push(format!(
            "lines stored under another filename than {}: {:?}",
            setup.log().display(),
            tally.other_streams
        ));
    }
    if tally.out_of_order_count > 0 {
        failures.push(format!(
            "{} lines first arrived after a later one, e.g. (line, came after): {:?}",
            tally.out_of_order_count, tally.out_of_order
        ));
    }
    let problems = receiver.problems();
    if !problems.is_empty() {
        failures.push(format!(
            "receiver problems: {:?}",
            &problems[..problems.len().min(5)]
        ));
    }
    if !failures.is_empty() {
        let rotated: Vec<String> = walk(&setup.logs());
        shipper_logs.push(shipper.log());
        panic!(
            "{summary}\n- {}\n{notes:?}\nshipper metrics:\n{}\nfiles: {rotated:?}\n{}",
            failures.join("\n- "),
            dropped_metrics(setup.port),
            keep_logs(name, seed, &shipper_logs)
        );
    }
}

/// Writes every run's log to `target/logrotate-test/<name>-<seed>.log` and
/// returns where, with the lines about truncations, copies and losses.
fn keep_logs(name: &str, seed: u64, logs: &[String]) -> String {
    let dir = e2e_tests::process::workspace_root().join("target/logrotate-test");
    let path = dir.join(format!("{name}-{seed}.log"));
    let mut all = String::new();
    for (i, log) in logs.iter().enumerate() {
        all.push_str(&format!("=== shipper run {}\n{log}", i + 1));
    }
    let kept = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, &all))
        .map_or_else(
            |e| format!("not kept: {e}"),
            |()| path.display().to_string(),
        );
    let notable: Vec<&str> = all
        .lines()
        .filter(|l| {
            l.starts_with("=== ")
                || ["truncated", "copy", "lost", "WARN", "ERROR", "rotated"]
                    .iter()
                    .any(|w| l.contains(w))
        })
        .collect();
    let start = notable.len().saturating_sub(60);
    format!("shipper logs: {kept}\n{}", notable[start..].join("\n"))
}

/// Every file under `dir`, relative to it, with its size.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                let rel = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
                out.push(format!("{rel} ({size} B)"));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn copytruncate() {
    run(
        "copytruncate",
        Rotation {
            directives: "    copytruncate\n    rotate 5",
            reopens: false,
            olddir: false,
        },
    );
}

#[test]
fn create() {
    run(
        "create",
        Rotation {
            directives: "    create\n    rotate 5",
            reopens: true,
            olddir: false,
        },
    );
}

#[test]
fn copytruncate_compress_delaycompress() {
    run(
        "copytruncate_delaycompress",
        Rotation {
            directives: "    copytruncate\n    compress\n    delaycompress\n    rotate 5",
            reopens: false,
            olddir: false,
        },
    );
}

#[test]
fn copytruncate_compress_without_delay() {
    run(
        "copytruncate_compress",
        Rotation {
            directives: "    copytruncate\n    compress\n    rotate 5",
            reopens: false,
            olddir: false,
        },
    );
}

#[test]
fn copytruncate_dateext_with_seconds() {
    run(
        "dateext",
        Rotation {
            directives: "    copytruncate\n    dateext\n    dateformat -%Y%m%d%H%M%S\n    rotate 5",
            reopens: false,
            olddir: false,
        },
    );
}

#[test]
fn copytruncate_into_olddir_named_by_rotated_dir_label() {
    run(
        "olddir",
        Rotation {
            directives: "    copytruncate\n    rotate 5",
            reopens: false,
            olddir: true,
        },
    );
}

#[test]
fn copytruncate_rotate_1_deletes_the_copy_at_the_next_rotation() {
    run(
        "rotate_1",
        Rotation {
            directives: "    copytruncate\n    rotate 1",
            reopens: false,
            olddir: false,
        },
    );
}

/// A new empty file is read at once, not held as a possible copy: a
/// rename rotation (`create`) leaves an empty `app.log`, the daemon writes
/// to it, and 1 s later a copytruncate (another logrotate config) copies
/// and empties it, all while Loki is down. When Loki is back, every line
/// arrives once: the old file's, the new file's first content (from the
/// copy, outside the glob) and what came after.
#[test]
fn rename_then_copytruncate_while_loki_is_down() {
    let setup = Setup::new(None);
    let receiver = &setup.receiver;
    let log = setup.log();
    let mut create = setup.logrotate_config("create", "    create\n    rotate 5");
    let mut copy = setup.logrotate_config("copytruncate", "    copytruncate\n    rotate 5");
    let append = |f: &mut std::fs::File, from: u64, to: u64| {
        for n in from..to {
            f.write_all(format!("{}\n", line(n)).as_bytes()).unwrap();
        }
    };
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap()
    };
    let mut f = open();
    append(&mut f, 0, 100);
    let shipper = setup.start_shipper();
    wait_until("the first lines arrive", Duration::from_secs(30), || {
        Ok(receiver.entry_count() >= 100)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", shipper.log_tail(30)));

    receiver.set_mode(Mode::Down);
    append(&mut f, 100, 300);
    create.run();
    // The shipper finds the new file while it is still empty; then the
    // daemon, signalled, reopens its log.
    std::thread::sleep(Duration::from_millis(300));
    f = open();
    append(&mut f, 300, 500);
    std::thread::sleep(Duration::from_secs(1));
    copy.run();
    append(&mut f, 500, 700);
    std::thread::sleep(Duration::from_secs(1));
    receiver.set_mode(Mode::Accept);

    let written = 700;
    let tally = wait_for_all(receiver, written, &log, Duration::from_secs(45));
    let summary = format!(
        "rename then copytruncate while Loki is down: {} of {written} lost, {} duplicated, {} stray",
        tally.missing.len(),
        tally.duplicates,
        tally.stray.len()
    );
    eprintln!("{summary}");
    assert!(
        tally.missing.is_empty() && tally.duplicates == 0 && tally.stray.is_empty(),
        "{summary}; missing line numbers: {}; duplicated: {}; other streams: {:?}\nshipper metrics:\n{}\nfiles: {:?}\n{}",
        ranges(&tally.missing, 20),
        ranges(&tally.twice, 20),
        tally.other_streams,
        dropped_metrics(setup.port),
        walk(&setup.logs()),
        shipper.log_tail(40)
    );
}
