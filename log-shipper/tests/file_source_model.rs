//! A model-based property test of the file source: proptest draws
//! sequences of what happens to two log files (`a.log`, `b.log`, tailed as
//! `logs/*.log`), to the shipper and to Loki; the real tailer, positions
//! and client run them against the Loki test receiver, and a model of the
//! files says which lines must reach Loki. At the end every line the model
//! requires has arrived, no line arrived that was not written, and lines
//! arrived twice only after kills, at most two batches a kill.
//!
//! What the model requires. A line on disk under a tailed name is always
//! required. A line that leaves the tailed names (rename rotation, or
//! copytruncate to a name outside the glob) is required when the shipper
//! had found its file: the harness makes sure of that before the
//! operation (a tailer holds the file's inode); the late lines of a rename rotation are required when
//! written within the shipper's `rotate_wait` of the rename. A plain
//! truncate or delete destroys what was not read:
//! it waits until everything was delivered when Loki accepts; otherwise
//! the file's lines may be lost. A kill (dropping everything without a
//! clean stop, positions only as last synced) comes once the shipper had
//! a second to find files and sync positions; the restarted shipper knows
//! each path's one file its positions name (the oldest rotated file still
//! being delivered, else the live one), so while it is dead only that
//! file may leave the tailed names without loss; other files rotated away
//! and not yet delivered may be lost.
//!
//! `FILE_SOURCE_MODEL_CASES` sets the number of cases (default 200, in four
//! shards run at once: about two minutes when all pass; e.g. 2000 for a
//! long search), and
//! `FILE_SOURCE_MODEL_SEED` which sequences (fixed by default, so `make
//! test` repeats itself; `random` to search). A failing case is shrunk to
//! a short sequence of operations and printed numbered;
//! `FILE_SOURCE_MODEL_PRINT=1` prints every passing case's operations too.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use e2e_tests::loki_receiver::{LokiReceiver, Mode};
use log_shipper::client::{BackoffSettings, Client, ClientSettings};
use log_shipper::entry::LabelSet;
use log_shipper::positions::{Positions, PositionsSettings};
use log_shipper::sources::file::identity::FINGERPRINT_BYTES;
use log_shipper::sources::file::{FileTargetManager, TailerSettings};
use proptest::prelude::*;

/// The two log files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum F {
    A,
    B,
}

impl F {
    fn index(self) -> usize {
        self as usize
    }
    fn name(self) -> &'static str {
        match self {
            F::A => "a.log",
            F::B => "b.log",
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Refusal {
    Down,
    Status500,
    Status429,
}

/// What happens next. Operations that cannot apply (rotating a file that
/// does not exist, restarting a running shipper) do nothing.
#[derive(Clone, Debug)]
enum Op {
    /// Appends complete lines (a partial line is finished first).
    Write {
        file: F,
        lines: usize,
    },
    /// Writes part of a line, without its newline; the next write to the
    /// file (or the end) finishes it.
    Partial {
        file: F,
    },
    /// logrotate's `create`: renames the file out of the glob, the writer
    /// writes `late_lines` more to its old descriptor, then reopens the
    /// path (a new, empty file).
    RenameRotate {
        file: F,
        late_lines: usize,
    },
    /// logrotate's `copytruncate`: `unread_lines` are written (and likely
    /// not read yet), the file is copied out of the glob and truncated;
    /// the writer keeps its O_APPEND descriptor.
    CopyTruncate {
        file: F,
        unread_lines: usize,
    },
    /// Truncated in place, nothing kept.
    Truncate {
        file: F,
    },
    /// Removed; the writer closes it.
    Delete {
        file: F,
    },
    /// A deleted file is created again, empty.
    Recreate {
        file: F,
    },
    /// The shipper dies: no flush, no final positions save.
    Kill,
    /// A killed shipper starts again from its positions file.
    Restart,
    LokiRefuses(Refusal),
    LokiBack,
    /// When the shipper runs and Loki accepts: waits until everything
    /// required so far is delivered.
    Settle,
}

fn file() -> impl Strategy<Value = F> {
    prop_oneof![Just(F::A), Just(F::B)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (file(), 1..=40usize).prop_map(|(file, lines)| Op::Write { file, lines }),
        2 => file().prop_map(|file| Op::Partial { file }),
        2 => (file(), 0..=5usize)
            .prop_map(|(file, late_lines)| Op::RenameRotate { file, late_lines }),
        3 => (file(), 0..=5usize)
            .prop_map(|(file, unread_lines)| Op::CopyTruncate { file, unread_lines }),
        1 => file().prop_map(|file| Op::Truncate { file }),
        1 => file().prop_map(|file| Op::Delete { file }),
        1 => file().prop_map(|file| Op::Recreate { file }),
        1 => Just(Op::Kill),
        2 => Just(Op::Restart),
        1 => prop_oneof![
            Just(Refusal::Down),
            Just(Refusal::Status500),
            Just(Refusal::Status429)
        ]
        .prop_map(Op::LokiRefuses),
        2 => Just(Op::LokiBack),
        1 => Just(Op::Settle),
    ]
}

/// How long a wait for delivery may take at most (generous: 2 loaded
/// cores, tests in parallel).
const WAIT: Duration = Duration::from_secs(30);
/// A wait for delivery ends early when nothing at all arrived for this
/// long: the rest is not coming (retries back off 200 ms at most, globs
/// are expanded every 200 ms), and a failing case is shrunk faster.
const STALL: Duration = Duration::from_secs(5);
/// Before a kill: time for deliveries in flight to land (positions are
/// then waited for).
const KILL_SETTLE: Duration = Duration::from_millis(300);
/// A renamed file is read until quiet this long: late lines written
/// within it of the rename are required (a harness descheduled for longer
/// between the rename and its late writes is a writer slower than that).
const ROTATE_WAIT: Duration = Duration::from_millis(500);
/// `batch_size` of the client, bytes of lines.
const BATCH_BYTES: usize = 4096;
/// The shortest line written (`a.log line 0`): a batch holds at most
/// `BATCH_BYTES / SHORTEST_LINE` lines.
const SHORTEST_LINE: usize = 12;

fn tailer_settings() -> TailerSettings {
    TailerSettings {
        sync_period: Duration::from_millis(200),
        poll_interval: Duration::from_millis(20),
        // Partial lines are finished by the operations, never flushed as
        // lines of their own.
        flush_timeout: Duration::from_secs(600),
        idle_close: Duration::from_millis(300),
        rotate_wait: ROTATE_WAIT,
        ..Default::default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// Under its tailed name.
    Live,
    Renamed,
    Copied,
    /// Truncated or deleted: what was not read is gone.
    Destroyed,
}

/// One content of a path, from its creation (or truncation) until it
/// leaves the tailed name.
struct Gen {
    file: usize,
    lines: Vec<usize>,
    place: Place,
    /// The shipper is known to have found it.
    observed: bool,
    /// Its device and inode once it left the tailed name (the renamed
    /// file, or the file a copy was taken of).
    dev_ino: Option<(u64, u64)>,
}

struct Line {
    text: String,
    gen: usize,
    /// The operation that wrote it (its index).
    op: usize,
    /// May be lost (see the module comment).
    at_risk: bool,
}

struct PartialLine {
    text: String,
    written: usize,
}

struct Running {
    sync: tokio::task::JoinHandle<()>,
    manager: FileTargetManager,
    client: Client,
}

struct World {
    _dir: tempfile::TempDir,
    logs: PathBuf,
    receiver: LokiReceiver,
    positions: PositionsSettings,
    shipper: Option<Running>,
    accepting: bool,
    lines: Vec<Line>,
    gens: Vec<Gen>,
    live: [Option<usize>; 2],
    writers: [Option<File>; 2],
    partial: [Option<PartialLine>; 2],
    /// While the shipper is dead: the live file its positions name, per
    /// path (it may leave the glob once without loss).
    named: [Option<usize>; 2],
    next_number: usize,
    rotations: usize,
    kills: usize,
    op: usize,
    started: Instant,
}

const FILES: [F; 2] = [F::A, F::B];

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let positions = PositionsSettings {
            filename: dir.path().join("positions.yaml"),
            sync_period: Duration::from_millis(100),
            ..Default::default()
        };
        let mut w = World {
            _dir: dir,
            logs,
            receiver: LokiReceiver::start(),
            positions,
            shipper: None,
            accepting: true,
            lines: Vec::new(),
            gens: Vec::new(),
            live: [None, None],
            writers: [None, None],
            partial: [None, None],
            named: [None, None],
            next_number: 0,
            rotations: 0,
            kills: 0,
            op: 0,
            started: Instant::now(),
        };
        w.start();
        w
    }

    fn path(&self, f: usize) -> PathBuf {
        self.logs.join(FILES[f].name())
    }

    fn start(&mut self) {
        let positions = Positions::load(self.positions.clone());
        let sync = positions.spawn_sync();
        let client = Client::start(ClientSettings {
            url: self.receiver.push_url(),
            batch_wait: Duration::from_millis(50),
            batch_size: BATCH_BYTES,
            // Everything a case writes fits: tailers are never held back by
            // a full queue while Loki refuses.
            queue_capacity: 100_000,
            backoff: BackoffSettings {
                min_period: Duration::from_millis(20),
                max_period: Duration::from_millis(200),
                max_retries: 0,
            },
            ..Default::default()
        })
        .unwrap();
        let manager = FileTargetManager::new(tailer_settings(), positions);
        let mut target = LabelSet::new();
        target.insert("job".into(), "model".into());
        target.insert("__path__".into(), format!("{}/*.log", self.logs.display()));
        manager
            .update("model", vec![target], client.sender())
            .unwrap();
        self.shipper = Some(Running {
            sync,
            manager,
            client,
        });
    }

    /// As kill -9 leaves things: no flush, no final save, nothing in
    /// flight acknowledged.
    async fn crash(&mut self) {
        if let Some(r) = self.shipper.take() {
            r.sync.abort();
            r.manager.stop();
            r.client.stop(Duration::ZERO).await;
            // A save already running on a blocking thread finishes on its
            // own: a dead process's last write is on disk before it starts
            // again.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn delivered(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for l in self.receiver.lines() {
            *counts.entry(l).or_insert(0) += 1;
        }
        counts
    }

    fn new_gen(&mut self, f: usize) -> usize {
        self.gens.push(Gen {
            file: f,
            lines: Vec::new(),
            place: Place::Live,
            observed: false,
            dev_ino: None,
        });
        let g = self.gens.len() - 1;
        self.live[f] = Some(g);
        g
    }

    /// The live file of `f` with its writer open, created if missing.
    fn live_writer(&mut self, f: usize) -> usize {
        if self.writers[f].is_none() {
            self.writers[f] = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.path(f))
                    .unwrap(),
            );
        }
        match self.live[f] {
            Some(g) => g,
            None => self.new_gen(f),
        }
    }

    fn append_line(&mut self, f: usize, g: usize, text: String, bytes: &[u8]) {
        self.writers[f].as_mut().unwrap().write_all(bytes).unwrap();
        self.lines.push(Line {
            text,
            gen: g,
            op: self.op,
            at_risk: false,
        });
        let l = self.lines.len() - 1;
        self.gens[g].lines.push(l);
    }

    fn write_lines(&mut self, f: usize, n: usize) {
        self.finish_partial(f);
        let g = self.live_writer(f);
        self.write_numbered(f, g, n);
    }

    /// `n` complete lines through the writer of `f`, into file `g`.
    fn write_numbered(&mut self, f: usize, g: usize, n: usize) {
        for _ in 0..n {
            let text = format!("{} line {}", FILES[f].name(), self.next_number);
            self.next_number += 1;
            let bytes = format!("{text}\n");
            self.append_line(f, g, text, bytes.as_bytes());
        }
    }

    fn write_partial(&mut self, f: usize) {
        self.live_writer(f);
        let p = match self.partial[f].take() {
            Some(p) => p,
            None => {
                let text = format!(
                    "{} line {} written in parts",
                    FILES[f].name(),
                    self.next_number
                );
                self.next_number += 1;
                PartialLine { text, written: 0 }
            }
        };
        let end = (p.written + 6).min(p.text.len());
        self.writers[f]
            .as_mut()
            .unwrap()
            .write_all(&p.text.as_bytes()[p.written..end])
            .unwrap();
        self.partial[f] = Some(PartialLine {
            text: p.text,
            written: end,
        });
    }

    fn finish_partial(&mut self, f: usize) {
        if let Some(p) = self.partial[f].take() {
            let g = self.live_writer(f);
            let rest = format!("{}\n", &p.text[p.written..]);
            self.append_line(f, g, p.text, rest.as_bytes());
        }
    }

    /// Empties the file in place; the writer's O_APPEND descriptor goes
    /// on at its new end.
    fn truncate(&self, f: usize) {
        OpenOptions::new()
            .write(true)
            .open(self.path(f))
            .unwrap()
            .set_len(0)
            .unwrap();
    }

    fn mark_at_risk(&mut self, g: usize) {
        for &l in &self.gens[g].lines {
            self.lines[l].at_risk = true;
        }
    }

    /// Waits until every line in `lines` arrived.
    async fn wait_delivered(&self, what: &str, lines: &[usize]) -> Result<(), String> {
        let deadline = Instant::now() + WAIT;
        let mut arrived = self.receiver.entry_count();
        let mut last_arrival = Instant::now();
        loop {
            let got = self.delivered();
            let missing: Vec<&str> = lines
                .iter()
                .map(|&l| self.lines[l].text.as_str())
                .filter(|t| !got.contains_key(*t))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            let now = self.receiver.entry_count();
            if now != arrived {
                arrived = now;
                last_arrival = Instant::now();
            }
            if Instant::now() >= deadline || last_arrival.elapsed() >= STALL {
                return Err(format!(
                    "op {}: {what}: {} lines not delivered (nothing arrived for {:?}), e.g. {:?}",
                    self.op,
                    missing.len(),
                    last_arrival.elapsed(),
                    &missing[..missing.len().min(5)]
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Before a file leaves the glob with the shipper running: the
    /// shipper has found it.
    async fn observe(&mut self, g: usize) -> Result<(), String> {
        if self.gens[g].observed || self.shipper.is_none() {
            return Ok(());
        }
        if self.accepting && !self.gens[g].lines.is_empty() {
            let first = [self.gens[g].lines[0]];
            self.wait_delivered("the first line of a live file", &first)
                .await?;
            self.gens[g].observed = true;
            return Ok(());
        }
        // Found: a tailer holds it open (a rename cannot take it away)
        // and knows the first bytes of what it holds (its copy would be
        // recognised).
        let f = self.gens[g].file;
        let dev_ino = std::fs::metadata(self.path(f))
            .map(|m| (m.dev(), m.ino()))
            .map_err(|e| format!("op {}: the live file is gone: {e}", self.op))?;
        let mut head = std::fs::read(self.path(f)).unwrap_or_default();
        head.truncate(FINGERPRINT_BYTES);
        let deadline = Instant::now() + WAIT;
        loop {
            let found = self.shipper.as_ref().is_some_and(|r| {
                r.manager.snapshot().iter().any(|t| {
                    t.files.iter().any(|file| {
                        file.dev_ino == dev_ino && file.opened && file.live_head.starts_with(&head)
                    })
                })
            });
            if found {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "op {}: the shipper did not find {} in {WAIT:?}",
                    self.op,
                    FILES[f].name()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.gens[g].observed = true;
        Ok(())
    }

    /// File `g` left the glob (or was destroyed).
    fn left(&mut self, g: usize, place: Place) {
        let f = self.gens[g].file;
        self.gens[g].place = place;
        self.live[f] = None;
        if self.shipper.is_none() {
            let named = self.named[f] == Some(g);
            self.named[f] = None;
            if !(named && matches!(place, Place::Renamed | Place::Copied)) {
                self.mark_at_risk(g);
            }
        }
    }

    /// Before a truncate or delete: with Loki accepting, everything is
    /// delivered first; otherwise what was not may be lost.
    async fn before_destroying(&mut self, g: usize) -> Result<(), String> {
        if self.shipper.is_some() && self.accepting {
            let lines = self.gens[g].lines.clone();
            self.wait_delivered("a file about to be truncated or deleted", &lines)
                .await
        } else {
            self.mark_at_risk(g);
            Ok(())
        }
    }

    async fn apply(&mut self, op: &Op) -> Result<(), String> {
        match *op {
            Op::Write { file, lines } => self.write_lines(file.index(), lines),
            Op::Partial { file } => self.write_partial(file.index()),
            Op::RenameRotate { file, late_lines } => {
                let f = file.index();
                let Some(g) = self.live[f] else { return Ok(()) };
                self.finish_partial(f);
                self.live_writer(f);
                self.observe(g).await?;
                self.rotations += 1;
                let to = self
                    .logs
                    .join(format!("{}.r{}", file.name(), self.rotations));
                self.gens[g].dev_ino = self.dev_ino(f);
                std::fs::rename(self.path(f), &to).unwrap();
                let renamed = Instant::now();
                // Late lines go to the renamed file, through the writer's
                // old descriptor.
                let first_late = self.lines.len();
                self.write_numbered(f, g, late_lines);
                if renamed.elapsed() >= ROTATE_WAIT {
                    for l in &mut self.lines[first_late..] {
                        l.at_risk = true;
                    }
                }
                self.left(g, Place::Renamed);
                self.writers[f] = None;
                self.live_writer(f);
            }
            Op::CopyTruncate { file, unread_lines } => {
                let f = file.index();
                let Some(g) = self.live[f] else { return Ok(()) };
                self.finish_partial(f);
                self.observe(g).await?;
                // A copy is found by the first bytes of the content it
                // copies: content written into an empty file and copied
                // away between two looks was never seen, so its copy
                // cannot be told from any other file (a known limit).
                let never_seen = self.gens[g].lines.is_empty();
                self.write_lines(f, unread_lines);
                if never_seen {
                    self.mark_at_risk(g);
                }
                self.rotations += 1;
                let to = self
                    .logs
                    .join(format!("{}.c{}", file.name(), self.rotations));
                self.gens[g].dev_ino = self.dev_ino(f);
                std::fs::copy(self.path(f), &to).unwrap();
                self.truncate(f);
                self.left(g, Place::Copied);
                self.new_gen(f);
            }
            Op::Truncate { file } => {
                let f = file.index();
                let Some(g) = self.live[f] else { return Ok(()) };
                self.finish_partial(f);
                self.before_destroying(g).await?;
                self.truncate(f);
                self.left(g, Place::Destroyed);
                self.new_gen(f);
            }
            Op::Delete { file } => {
                let f = file.index();
                let Some(g) = self.live[f] else { return Ok(()) };
                self.finish_partial(f);
                self.before_destroying(g).await?;
                std::fs::remove_file(self.path(f)).unwrap();
                self.writers[f] = None;
                self.left(g, Place::Destroyed);
            }
            Op::Recreate { file } => {
                if self.live[file.index()].is_none() {
                    self.live_writer(file.index());
                }
            }
            Op::Kill => self.kill().await?,
            Op::Restart => self.restart(),
            Op::LokiRefuses(r) => {
                self.receiver.set_mode(match r {
                    Refusal::Down => Mode::Down,
                    Refusal::Status500 => Mode::Status(500),
                    Refusal::Status429 => Mode::Status(429),
                });
                self.accepting = false;
            }
            Op::LokiBack => {
                self.receiver.set_mode(Mode::Accept);
                self.accepting = true;
            }
            Op::Settle => {
                if self.shipper.is_some() && self.accepting {
                    let required = self.required();
                    self.wait_delivered("settling", &required).await?;
                }
            }
        }
        Ok(())
    }

    fn dev_ino(&self, f: usize) -> Option<(u64, u64)> {
        std::fs::metadata(self.path(f))
            .ok()
            .map(|m| (m.dev(), m.ino()))
    }

    /// Whether the positions file on disk names, for each path, a file the
    /// model allows: a rotated file not fully delivered whose lines are
    /// all at risk (the shipper may hold it), up to the oldest rotated one
    /// with required lines not delivered, else the live file if it has
    /// lines.
    fn positions_caught_up(&self, delivered: &HashMap<String, usize>) -> Result<(), String> {
        let saved = Positions::load(self.positions.clone());
        for (f, file) in FILES.iter().enumerate() {
            let mut allowed = Vec::new();
            let mut settled = false;
            for gen in self
                .gens
                .iter()
                .filter(|gen| gen.file == f && matches!(gen.place, Place::Renamed | Place::Copied))
            {
                let undelivered = |required: bool| {
                    gen.lines.iter().any(|&l| {
                        (!required || !self.lines[l].at_risk)
                            && !delivered.contains_key(&self.lines[l].text)
                    })
                };
                if undelivered(true) {
                    allowed.extend(gen.dev_ino);
                    settled = true;
                    break;
                }
                if undelivered(false) {
                    allowed.extend(gen.dev_ino);
                }
            }
            if !settled {
                let live = self.live[f].filter(|&g| !self.gens[g].lines.is_empty());
                match live.and_then(|_| self.dev_ino(f)) {
                    Some(d) => allowed.push(d),
                    // Nothing required of this path's position.
                    None => continue,
                }
            }
            let key = self.path(f).to_string_lossy().into_owned();
            let named = saved
                .get(&key)
                .and_then(|p| p.identity)
                .map(|id| (id.dev, id.ino));
            if !named.is_some_and(|n| allowed.contains(&n)) {
                return Err(format!(
                    "{}: positions name {named:?}, the model expects one of {allowed:?}",
                    file.name()
                ));
            }
        }
        Ok(())
    }

    async fn kill(&mut self) -> Result<(), String> {
        if self.shipper.is_none() {
            return Ok(());
        }
        // Found, read and synced as far as the model says the restarted
        // shipper knows: wait for it (a loaded machine is slow), give up
        // after WAIT.
        tokio::time::sleep(KILL_SETTLE).await;
        let deadline = Instant::now() + WAIT;
        while let Err(e) = self.positions_caught_up(&self.delivered()) {
            if Instant::now() >= deadline {
                return Err(format!("op {}: before a kill: {e}", self.op));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let delivered = self.delivered();
        for f in 0..FILES.len() {
            // Rotated files of this path not fully delivered, oldest first:
            // positions name the oldest (its tailer goes first); the
            // others cannot be found again. Lines at risk count too: the
            // shipper may have found their file after all, and then its
            // position holds the path's one slot.
            let undelivered: Vec<usize> = (0..self.gens.len())
                .filter(|&g| {
                    let gen = &self.gens[g];
                    gen.file == f
                        && matches!(gen.place, Place::Renamed | Place::Copied)
                        && gen
                            .lines
                            .iter()
                            .any(|&l| !delivered.contains_key(&self.lines[l].text))
                })
                .collect();
            if let Some((_, younger)) = undelivered.split_first() {
                for &g in younger {
                    self.mark_at_risk(g);
                }
                self.named[f] = None;
            } else {
                self.named[f] = self.live[f].filter(|&g| !self.gens[g].lines.is_empty());
            }
        }
        self.crash().await;
        self.kills += 1;
        Ok(())
    }

    fn restart(&mut self) {
        if self.shipper.is_some() {
            return;
        }
        self.start();
        for f in 0..FILES.len() {
            if let Some(g) = self.live[f] {
                self.gens[g].observed = self.named[f] == Some(g);
            }
            self.named[f] = None;
        }
    }

    fn required(&self) -> Vec<usize> {
        (0..self.lines.len())
            .filter(|&l| !self.lines[l].at_risk)
            .collect()
    }
}

/// The operations, numbered, for failure messages.
fn numbered(ops: &[Op]) -> String {
    ops.iter()
        .enumerate()
        .map(|(i, op)| format!("  {i:>2}. {op:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn run_case(ops: &[Op]) -> Result<(), String> {
    let mut w = World::new();
    let result = run_ops(&mut w, ops).await;
    w.crash().await;
    result.map_err(|e| {
        format!(
            "{e}\n{} lines written, {} kills; operations:\n{}",
            w.lines.len(),
            w.kills,
            numbered(ops)
        )
    })
}

async fn run_ops(w: &mut World, ops: &[Op]) -> Result<(), String> {
    for (i, op) in ops.iter().enumerate() {
        w.op = i;
        w.apply(op).await?;
    }
    // The end: the shipper runs, Loki accepts, partial lines are finished.
    w.op = ops.len();
    w.restart();
    w.receiver.set_mode(Mode::Accept);
    w.accepting = true;
    for f in 0..FILES.len() {
        w.finish_partial(f);
    }
    let required = w.required();
    let waited = w.wait_delivered("at the end", &required).await;
    // A duplicate would come right behind.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let delivered = w.delivered();
    let mut problems = Vec::new();
    if waited.is_err() {
        let missing: Vec<String> = required
            .iter()
            .filter(|&&l| !delivered.contains_key(&w.lines[l].text))
            .map(|&l| {
                let line = &w.lines[l];
                let place = w.gens[line.gen].place;
                format!("{:?} (op {}, its file now {place:?})", line.text, line.op)
            })
            .collect();
        problems.push(format!(
            "{} of {} required lines never arrived: {}",
            missing.len(),
            required.len(),
            missing[..missing.len().min(20)].join(", ")
        ));
    }
    let written: HashMap<&str, usize> = w
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| (l.text.as_str(), i))
        .collect();
    let phantom: Vec<&String> = delivered
        .keys()
        .filter(|t| !written.contains_key(t.as_str()))
        .collect();
    if !phantom.is_empty() {
        problems.push(format!(
            "{} lines arrived that were never written (split or mangled): {:?}",
            phantom.len(),
            &phantom[..phantom.len().min(10)]
        ));
    }
    let duplicates: usize = delivered.values().map(|c| c - 1).sum();
    let allowed = w.kills * 2 * BATCH_BYTES / SHORTEST_LINE;
    if duplicates > allowed {
        let mut twice: Vec<(&String, &usize)> = delivered.iter().filter(|(_, c)| **c > 1).collect();
        twice.sort_by_key(|(t, _)| written.get(t.as_str()).copied());
        problems.push(format!(
            "{duplicates} duplicates after {} kills (at most {allowed}: two batches a kill), e.g. {:?}",
            w.kills,
            &twice[..twice.len().min(10)]
        ));
    }
    let at_risk_lost = w
        .lines
        .iter()
        .filter(|l| l.at_risk && !delivered.contains_key(&l.text))
        .count();
    if problems.is_empty() {
        eprintln!(
            "case ok in {:?}: {} ops, {} lines, {} kills, {} rotations, {at_risk_lost} lines lost where the model allows it, {duplicates} duplicates",
            w.started.elapsed(),
            ops.len(),
            w.lines.len(),
            w.kills,
            w.rotations
        );
        if std::env::var_os("FILE_SOURCE_MODEL_PRINT").is_some() {
            eprintln!("{}", numbered(ops));
        }
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Cases run at once: a case mostly waits (for deliveries, discovery,
/// kills), so shards in parallel test threads take a quarter of the time.
const SHARDS: u64 = 4;

/// The configuration of shard `shard`: its part of the cases, its own seed.
fn config(shard: u64) -> ProptestConfig {
    let cases: u32 = std::env::var("FILE_SOURCE_MODEL_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(200);
    ProptestConfig {
        cases: cases.div_ceil(SHARDS as u32),
        // A case takes seconds: shrinking is bounded in steps and time.
        max_shrink_iters: 64,
        max_shrink_time: 180_000,
        // Regressions are printed, not written into the source tree.
        failure_persistence: None,
        // `make test` runs the same sequences every time; a search for new
        // ones sets FILE_SOURCE_MODEL_SEED (a number, or "random").
        rng_seed: match std::env::var("FILE_SOURCE_MODEL_SEED").as_deref() {
            Ok("random") => proptest::test_runner::RngSeed::Random,
            Ok(n) => proptest::test_runner::RngSeed::Fixed(
                n.parse::<u64>()
                    .expect("FILE_SOURCE_MODEL_SEED: a number or \"random\"")
                    + shard,
            ),
            Err(_) => proptest::test_runner::RngSeed::Fixed(20_261_204 + shard),
        },
        ..ProptestConfig::default()
    }
}

fn run_shard(shard: u64) {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_max_level(tracing::Level::WARN)
        .try_init();
    let mut runner = proptest::test_runner::TestRunner::new(config(shard));
    let result = runner.run(&prop::collection::vec(op(), 1..=24), |ops| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let result = rt.block_on(run_case(&ops));
        rt.shutdown_timeout(Duration::from_secs(5));
        result.map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("shard {shard}: {e}");
    }
}

#[test]
fn the_file_source_delivers_what_the_model_requires_0() {
    run_shard(0);
}

#[test]
fn the_file_source_delivers_what_the_model_requires_1() {
    run_shard(1);
}

#[test]
fn the_file_source_delivers_what_the_model_requires_2() {
    run_shard(2);
}

#[test]
fn the_file_source_delivers_what_the_model_requires_3() {
    run_shard(3);
}

/// Sequences the search found failing once (shrunk), run every time.
#[test]
fn sequences_that_failed_once_deliver_what_the_model_requires() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_max_level(tracing::Level::WARN)
        .try_init();
    let (a, b) = (F::A, F::B);
    let cases = [
        // The file was copied, truncated and deleted while the shipper was
        // dead: its unread lines are in the copy only, under no tailed name.
        vec![
            Op::Write { file: a, lines: 30 },
            Op::Kill,
            Op::CopyTruncate {
                file: a,
                unread_lines: 5,
            },
            Op::Delete { file: a },
        ],
        // The same, and a new file under the name before the restart.
        vec![
            Op::Write { file: a, lines: 30 },
            Op::Kill,
            Op::CopyTruncate {
                file: a,
                unread_lines: 5,
            },
            Op::Delete { file: a },
            Op::Recreate { file: a },
            Op::Write { file: a, lines: 3 },
        ],
        // Renamed while dead, and the new file deleted.
        vec![
            Op::Write { file: a, lines: 30 },
            Op::Kill,
            Op::RenameRotate {
                file: a,
                late_lines: 3,
            },
            Op::Delete { file: a },
        ],
        // Renamed, then the new file copied and truncated, all while Loki
        // refused, then a kill: the renamed file is the one positions name.
        vec![
            Op::LokiRefuses(Refusal::Status429),
            Op::Write { file: a, lines: 7 },
            Op::RenameRotate {
                file: a,
                late_lines: 5,
            },
            Op::CopyTruncate {
                file: a,
                unread_lines: 4,
            },
            Op::Write { file: a, lines: 19 },
            Op::Kill,
        ],
        // A line's start read, its end truncated away while Loki was down:
        // the start is not a line of its own.
        vec![
            Op::Partial { file: b },
            Op::LokiRefuses(Refusal::Down),
            Op::Write { file: a, lines: 1 },
            Op::RenameRotate {
                file: a,
                late_lines: 0,
            },
            Op::Truncate { file: b },
        ],
        // A new, empty file renamed (with late lines) while the file
        // rotated before it was still being delivered: its tailer, waiting
        // behind that one, reads the late lines too.
        vec![
            Op::Write { file: a, lines: 11 },
            Op::RenameRotate {
                file: a,
                late_lines: 1,
            },
            Op::RenameRotate {
                file: a,
                late_lines: 5,
            },
        ],
        vec![
            Op::Write { file: b, lines: 1 },
            Op::Partial { file: a },
            Op::Delete { file: b },
            Op::RenameRotate {
                file: a,
                late_lines: 4,
            },
            Op::Partial { file: a },
            Op::Partial { file: b },
            Op::Kill,
            Op::Write { file: a, lines: 40 },
            Op::CopyTruncate {
                file: a,
                unread_lines: 0,
            },
            Op::Delete { file: a },
            Op::LokiRefuses(Refusal::Status429),
        ],
        // Copied and truncated, then refilled past the saved offset, while
        // the restarted shipper was between deciding to read the file from
        // its saved offset and opening it.
        vec![
            Op::LokiBack,
            Op::Restart,
            Op::Write { file: b, lines: 21 },
            Op::Kill,
            Op::Write { file: a, lines: 15 },
            Op::Restart,
            Op::CopyTruncate {
                file: b,
                unread_lines: 4,
            },
            Op::Write { file: b, lines: 34 },
            Op::Settle,
        ],
        // Truncated (its last line only just finished), killed, restarted
        // and renamed with late lines while the restarted shipper was
        // still looking for the copy of the truncated content.
        vec![
            Op::Write { file: a, lines: 14 },
            Op::Partial { file: b },
            Op::Settle,
            Op::Truncate { file: b },
            Op::Kill,
            Op::Restart,
            Op::RenameRotate {
                file: b,
                late_lines: 3,
            },
            Op::Partial { file: b },
            Op::Restart,
            Op::Write { file: a, lines: 4 },
            Op::Settle,
        ],
        // Deleted while Loki was down, its last line not delivered, and a
        // new file under the name: the deleted file held the path's saved
        // position, though a restart can never find it again; the new
        // file, renamed away while the shipper is dead, would be lost.
        vec![
            Op::Write { file: b, lines: 1 },
            Op::Settle,
            Op::LokiRefuses(Refusal::Down),
            Op::Write { file: b, lines: 1 },
            Op::Delete { file: b },
            Op::Write { file: b, lines: 3 },
            Op::Kill,
        ],
        // The new file opened empty (found while still empty), written
        // while it waited behind the renamed one, killed, then copied and
        // truncated: its position was saved with the empty fingerprint it
        // was opened with, so its copy could not be told from the others.
        vec![
            Op::Write { file: a, lines: 12 },
            Op::RenameRotate {
                file: a,
                late_lines: 1,
            },
            Op::CopyTruncate {
                file: a,
                unread_lines: 0,
            },
            Op::Write { file: a, lines: 2 },
            Op::Kill,
            Op::CopyTruncate {
                file: a,
                unread_lines: 4,
            },
        ],
        // Restarted with the path's position at the start of a file that
        // had lines, then copied and truncated before the tailer opened
        // it: what it held (and the unread lines) is only in the copy.
        vec![
            Op::Write { file: b, lines: 2 },
            Op::RenameRotate {
                file: b,
                late_lines: 2,
            },
            Op::Write { file: b, lines: 3 },
            Op::Kill,
            Op::Restart,
            Op::Settle,
            Op::CopyTruncate {
                file: b,
                unread_lines: 3,
            },
        ],
        // Copied and truncated with unread lines, then deleted, while
        // Loki refused: when the watcher saw the path gone before it looked
        // at the file again, it took the file as rotated away and never saw
        // the truncation, so the unread lines, only in the copy, were lost
        // (found by a random search of 2000 cases on a loaded machine;
        // rare, as it needs the truncation and the delete between two
        // looks; `watcher::tests` makes that interleaving deterministic).
        // Stopped while the file held only the start of a line (its saved
        // fingerprint six bytes every line starts with), then copied,
        // truncated and renamed: the restarted shipper took the new file
        // under the name for the copy of the old content, read it as one
        // and then never as a file of its own (the copy's lines and the
        // new file's later ones lost). Failed one run in three.
        vec![
            Op::Partial { file: b },
            Op::Kill,
            Op::CopyTruncate {
                file: b,
                unread_lines: 2,
            },
            Op::RenameRotate {
                file: b,
                late_lines: 0,
            },
            Op::Write { file: b, lines: 18 },
            Op::Restart,
            Op::Write { file: b, lines: 33 },
            Op::Truncate { file: a },
        ],
        // Killed, then b.log copied, truncated and deleted: its freed inode
        // went to the next file created (a.log, or one the harness writes
        // later), whose watcher the restarted shipper took for one reading
        // b.log under another name, so the rest was never read from the
        // copy. Failed three runs in five (after the fixes above).
        vec![
            Op::Write { file: b, lines: 32 },
            Op::Kill,
            Op::Write { file: a, lines: 3 },
            Op::Recreate { file: a },
            Op::Truncate { file: a },
            Op::CopyTruncate {
                file: b,
                unread_lines: 1,
            },
            Op::Write { file: b, lines: 5 },
            Op::Delete { file: a },
            Op::Write { file: b, lines: 7 },
            Op::Delete { file: b },
            Op::Truncate { file: a },
            Op::Partial { file: a },
            Op::Partial { file: b },
            Op::Settle,
            Op::Recreate { file: a },
            Op::Recreate { file: a },
            Op::RenameRotate {
                file: b,
                late_lines: 2,
            },
            Op::LokiRefuses(Refusal::Status429),
            Op::CopyTruncate {
                file: b,
                unread_lines: 4,
            },
        ],
        vec![
            Op::LokiRefuses(Refusal::Status429),
            Op::Write { file: a, lines: 38 },
            Op::CopyTruncate {
                file: a,
                unread_lines: 5,
            },
            Op::Delete { file: a },
        ],
    ];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for ops in cases {
        if let Err(e) = rt.block_on(run_case(&ops)) {
            panic!("{e}");
        }
    }
    rt.shutdown_timeout(Duration::from_secs(5));
}
