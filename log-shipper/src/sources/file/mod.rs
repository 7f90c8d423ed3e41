//! The file target manager: per job, expands each target's `__path__` glob
//! (minus `__path_exclude__`) every `sync_period`, when a tailer reports a
//! rotation, and when the targets change; keeps one tailer per file
//! identity (device, inode), so a rotated file still matching the glob is
//! not read twice and a reused path is not mistaken for the old file.
//!
//! Each job has its own output channel (the lead puts the job's pipeline
//! behind it). Entries carry the target's labels without the `__`
//! internals, plus `filename` as promtail adds it.

pub mod copies;
pub mod encoding;
pub mod glob;
pub mod identity;
pub mod lines;
pub mod metrics;
pub mod start;
pub mod watcher;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use crate::entry::{Entry, LabelSet};
use crate::positions::Positions;
use glob::PathGlob;
pub use metrics::collect;
use watcher::{Claims, CopyCheck, Tailer, TailerEvent, TailerStatus};

pub const PATH_LABEL: &str = "__path__";
pub const PATH_EXCLUDE_LABEL: &str = "__path_exclude__";
/// Where logrotate puts rotated files when not beside the file (its
/// `olddir`): copies of truncated files are looked for there too.
/// Absolute, or relative to the file's directory.
pub const ROTATED_DIR_LABEL: &str = "__rotated_dir__";
/// The internal (`__`) labels of a target that the file source reads:
/// discovery hands them on, as it drops every other `__` label.
pub const TARGET_LABELS: [&str; 3] = [PATH_LABEL, PATH_EXCLUDE_LABEL, ROTATED_DIR_LABEL];
pub const FILENAME_LABEL: &str = "filename";

/// Runtime settings (from `target_config` and `limits_config`).
#[derive(Clone, Debug, PartialEq)]
pub struct TailerSettings {
    /// `target_config.sync_period`: how often globs are expanded again.
    pub sync_period: Duration,
    /// How often a file is checked for growth, rotation, truncation after
    /// a change (`min_poll_frequency`); while it stays idle the period
    /// doubles up to `max_poll_interval`.
    pub poll_interval: Duration,
    /// A file rotated away (renamed or deleted) is read until nothing was
    /// written to it for this long: its writer may append until it
    /// reopens the path (after logrotate's postrotate signal, say). The
    /// path's new file is read after it, so this is also how late lines
    /// in the new file may come after a rotation. Fluent Bit's
    /// `Rotate_Wait` is the same idea, with the same default.
    pub rotate_wait: Duration,
    /// `max_poll_frequency`; no back-off when not above `poll_interval`
    /// (the default).
    pub max_poll_interval: Duration,
    /// A last line without its newline is sent after this long.
    pub flush_timeout: Duration,
    /// `limits_config.max_line_size` (bytes, 0 = no limit).
    pub max_line_size: usize,
    /// `limits_config.max_line_size_truncate`: cut long lines instead of
    /// dropping them.
    pub max_line_size_truncate: bool,
    /// Bytes per read.
    pub read_chunk: usize,
    /// Files held open at once; others wait (idle files are closed).
    pub max_open_files: usize,
    /// A file with nothing new and nothing in flight this long is closed.
    pub idle_close: Duration,
    /// Chunks a job reads (or holds in front of its full channel) at once:
    /// with `read_chunk`, bounds the memory of a backlog.
    pub max_concurrent_reads: usize,
    /// `scrape_configs[].encoding` (per job): lines are cut and converted
    /// from it to UTF-8. `None`: UTF-8 already.
    pub encoding: Option<encoding::FileEncoding>,
    /// `scrape_configs[].decompression` (per job): every file is read
    /// once, decompressed; without it only `.gz` files are.
    pub decompression: Option<Decompression>,
}

/// How a job's compressed files are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decompression {
    pub format: CompressionFormat,
    /// Wait this long after finding a file before reading it (its writer
    /// may not have finished compressing it).
    pub initial_delay: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompressionFormat {
    Gz,
    Bz2,
    /// zlib (promtail's `z`).
    Zlib,
}

impl CompressionFormat {
    /// promtail's names: `gz`, `bz2`, `z`.
    pub fn parse(s: &str) -> Option<CompressionFormat> {
        match s {
            "gz" => Some(CompressionFormat::Gz),
            "bz2" => Some(CompressionFormat::Bz2),
            "z" => Some(CompressionFormat::Zlib),
            _ => None,
        }
    }

    /// A reader of the decompressed bytes.
    pub fn decoder<R: std::io::BufRead + Send + 'static>(
        self,
        r: R,
    ) -> Box<dyn std::io::Read + Send> {
        match self {
            CompressionFormat::Gz => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
            CompressionFormat::Zlib => Box::new(flate2::bufread::ZlibDecoder::new(r)),
            CompressionFormat::Bz2 => Box::new(bzip2::bufread::MultiBzDecoder::new(r)),
        }
    }
}

impl Default for TailerSettings {
    fn default() -> Self {
        TailerSettings {
            sync_period: Duration::from_secs(10),
            poll_interval: Duration::from_millis(250),
            rotate_wait: Duration::from_secs(5),
            max_poll_interval: Duration::ZERO,
            flush_timeout: Duration::from_secs(5),
            max_line_size: 0,
            max_line_size_truncate: false,
            read_chunk: 256 * 1024,
            max_open_files: default_max_open_files(),
            idle_close: Duration::from_secs(10),
            max_concurrent_reads: 4,
            encoding: None,
            decompression: None,
        }
    }
}

/// Half of the soft RLIMIT_NOFILE (the rest is for sockets and the like).
fn default_max_open_files() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we pass.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    if ok && lim.rlim_cur != libc::RLIM_INFINITY {
        ((lim.rlim_cur / 2) as usize).clamp(16, 65_536)
    } else {
        512
    }
}

/// One target of a job, as `/targets` shows it.
#[derive(Clone, Debug)]
pub struct TargetSnapshot {
    pub job: String,
    /// The target's labels (before internals are removed).
    pub labels: LabelSet,
    pub files: Vec<FileSnapshot>,
}

#[derive(Clone, Debug)]
pub struct FileSnapshot {
    pub path: String,
    /// Which file (device, inode): after a rotation, the file draining
    /// away and the new one share the path.
    pub dev_ino: (u64, u64),
    /// Held open (see [`TailerStatus::opened`]).
    pub opened: bool,
    /// The first bytes of its current content as known (see
    /// [`TailerStatus::live_head`]).
    pub live_head: Vec<u8>,
    /// Bytes read so far.
    pub read_offset: u64,
    /// Bytes acknowledged by Loki (what positions save).
    pub committed: u64,
    pub size: u64,
}

struct Target {
    raw: LabelSet,
    labels: LabelSet,
    rotated_dir: Option<String>,
    glob: PathGlob,
    exclude: Option<PathGlob>,
}

impl Target {
    /// `path` is one of this target's files.
    fn matches(&self, path: &std::path::Path) -> bool {
        self.glob.is_match(path) && !self.exclude.as_ref().is_some_and(|e| e.is_match(path))
    }
}

enum JobCommand {
    Update(Vec<Target>, mpsc::Sender<Entry>),
}

struct Job {
    commands: mpsc::UnboundedSender<JobCommand>,
    task: JoinHandle<()>,
    state: Arc<Mutex<JobView>>,
}

/// What the job task shares with `snapshot()`.
#[derive(Default)]
struct JobView {
    targets: Vec<(LabelSet, String)>,
    files: Vec<Arc<TailerStatus>>,
}

pub struct FileTargetManager {
    settings: Arc<TailerSettings>,
    positions: Arc<Positions>,
    fd_budget: Arc<Semaphore>,
    jobs: Mutex<BTreeMap<String, Job>>,
    /// Jobs whose files are read differently (encoding, decompression).
    job_settings: Mutex<HashMap<String, Arc<TailerSettings>>>,
    /// Jobs whose files without a saved position, found at the job's first
    /// sync, are read from their last line's end (Alloy's `tail_from_end`).
    from_end: Mutex<std::collections::BTreeSet<String>>,
}

impl FileTargetManager {
    pub fn new(settings: TailerSettings, positions: Arc<Positions>) -> FileTargetManager {
        let fd_budget = Arc::new(Semaphore::new(settings.max_open_files.max(1)));
        FileTargetManager {
            settings: Arc::new(settings),
            positions,
            fd_budget,
            jobs: Mutex::new(BTreeMap::new()),
            job_settings: Mutex::new(HashMap::new()),
            from_end: Mutex::default(),
        }
    }

    /// The settings every job gets unless [`Self::set_job_settings`].
    pub fn settings(&self) -> &TailerSettings {
        &self.settings
    }

    /// `job`'s own settings (call before its first `update`).
    pub fn set_job_settings(&self, job: &str, settings: TailerSettings) {
        self.job_settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.to_string(), Arc::new(settings));
    }

    /// Makes `job` (before its first [`Self::update`]) read files it finds
    /// at its first sync without a saved position from their last line's
    /// end; files appearing later are read from their start (new content).
    pub fn tail_from_end(&self, job: &str) {
        self.from_end
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.to_string());
    }

    /// Sets the targets of `job` (label sets with `__path__`), whose
    /// entries go to `out`. An empty list stops the job. Call inside a
    /// tokio runtime. A target with a bad glob is an error naming it; the
    /// others still apply.
    pub fn update(
        &self,
        job: &str,
        targets: Vec<LabelSet>,
        out: mpsc::Sender<Entry>,
    ) -> Result<(), String> {
        let mut errors = Vec::new();
        let mut parsed = Vec::new();
        for raw in targets {
            let Some(pattern) = raw.get(PATH_LABEL) else {
                errors.push(format!(
                    "job {job}: target {raw:?} has no {PATH_LABEL} label"
                ));
                continue;
            };
            let glob = match PathGlob::new(pattern) {
                Ok(g) => g,
                Err(e) => {
                    errors.push(format!("job {job}: {e}"));
                    continue;
                }
            };
            let exclude = match raw.get(PATH_EXCLUDE_LABEL).map(|p| PathGlob::new(p)) {
                Some(Ok(g)) => Some(g),
                Some(Err(e)) => {
                    errors.push(format!("job {job}: {PATH_EXCLUDE_LABEL}: {e}"));
                    continue;
                }
                None => None,
            };
            let labels = raw
                .iter()
                .filter(|(k, _)| !k.starts_with("__"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            parsed.push(Target {
                rotated_dir: raw.get(ROTATED_DIR_LABEL).cloned(),
                raw,
                labels,
                glob,
                exclude,
            });
        }
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if parsed.is_empty() {
            if let Some(j) = jobs.remove(job) {
                j.task.abort();
            }
        } else if let Some(j) = jobs.get(job).filter(|j| !j.task.is_finished()) {
            let _ = j.commands.send(JobCommand::Update(parsed, out));
        } else {
            let (commands, rx) = mpsc::unbounded_channel();
            let _ = commands.send(JobCommand::Update(parsed, out));
            let state = Arc::new(Mutex::new(JobView::default()));
            let settings = self
                .job_settings
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(job)
                .cloned()
                .unwrap_or_else(|| Arc::clone(&self.settings));
            let runner = JobRunner {
                settings,
                positions: Arc::clone(&self.positions),
                fd_budget: Arc::clone(&self.fd_budget),
                read_budget: Arc::new(Semaphore::new(self.settings.max_concurrent_reads.max(1))),
                view: Arc::clone(&state),
                targets: Vec::new(),
                out: None,
                tailers: HashMap::new(),
                ended: HashMap::new(),
                claims: Claims::default(),
                deferred: HashMap::new(),
                latest_by_path: HashMap::new(),
                recovered: Default::default(),
                started: false,
                tail_from_end: self
                    .from_end
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(job),
            };
            let task = tokio::spawn(runner.run(rx));
            jobs.insert(
                job.to_string(),
                Job {
                    commands,
                    task,
                    state,
                },
            );
        }
        let active: usize = jobs
            .values()
            .map(|j| j.state.lock().map(|s| s.targets.len()).unwrap_or(0))
            .sum();
        metrics::set_targets_active(active as u64);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// The jobs, their targets and the files tailed (for `/targets`).
    pub fn snapshot(&self) -> Vec<TargetSnapshot> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (name, job) in jobs.iter() {
            let view = job.state.lock().unwrap_or_else(|e| e.into_inner());
            for (labels, pattern) in &view.targets {
                let glob = PathGlob::new(pattern).ok();
                let files = view
                    .files
                    .iter()
                    .filter(|f| {
                        glob.as_ref()
                            .is_some_and(|g| g.is_match(std::path::Path::new(&f.path)))
                    })
                    .map(|f| FileSnapshot {
                        path: f.path.clone(),
                        dev_ino: f.dev_ino,
                        opened: f.opened.load(std::sync::atomic::Ordering::Relaxed),
                        live_head: f
                            .live_head
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .clone(),
                        read_offset: f.read_offset.load(std::sync::atomic::Ordering::Relaxed),
                        committed: f.committed(),
                        size: f.size.load(std::sync::atomic::Ordering::Relaxed),
                    })
                    .collect();
                out.push(TargetSnapshot {
                    job: name.clone(),
                    labels: labels.clone(),
                    files,
                });
            }
        }
        out
    }

    /// Stops every tailer. Nothing is acknowledged by stopping: what was
    /// read but not delivered is read again on the next start.
    pub fn stop(&self) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        for (_, j) in std::mem::take(&mut *jobs) {
            j.task.abort();
        }
        metrics::set_targets_active(0);
    }
}

impl Drop for FileTargetManager {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether the new file `path`, starting with `head`, looks like a copy of
/// content one of `watched` holds: its published heads, or the first bytes
/// on disk of a file in the same directory (where copies are made) whose
/// watcher may not have read that far. Files are opened only there and
/// only while their watcher is within their first KiB, so thousands of
/// files elsewhere cost nothing here.
fn looks_like_copy<'a>(
    watched: impl Iterator<Item = &'a Arc<TailerStatus>>,
    head: &[u8],
    own: (u64, u64),
    path: &std::path::Path,
) -> bool {
    if head.is_empty() {
        return false;
    }
    let dir = path.parent();
    watched.filter(|s| s.dev_ino != own).any(|s| {
        s.shares_head(head)
            || (s.read_offset.load(std::sync::atomic::Ordering::Relaxed)
                < identity::FINGERPRINT_BYTES as u64
                && std::path::Path::new(&s.path).parent() == dir
                && same_prefix(&head_of(&s.path, s.dev_ino), head))
    })
}

/// The first bytes (up to 1 KiB) of the file at `path` if it is still the
/// file `(dev, ino)`; empty otherwise.
fn head_of(path: &str, (dev, ino): (u64, u64)) -> Vec<u8> {
    let mut head = vec![0u8; identity::FINGERPRINT_BYTES];
    let n = std::fs::File::open(path)
        .and_then(|f| {
            let m = f.metadata()?;
            if (m.dev(), m.ino()) != (dev, ino) {
                return Ok(0);
            }
            identity::read_head(&f, &mut head)
        })
        .unwrap_or(0);
    head.truncate(n);
    head
}

/// Both non-empty and equal over the shorter one's length.
fn same_prefix(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    n > 0 && a[..n] == b[..n]
}

/// inotify watches on the glob base directories (one per directory, not
/// per file, so thousands of files cost few watches). When watches run
/// out, the periodic sync and the tailers' polling still find everything.
struct DirWatcher {
    watcher: Option<notify::RecommendedWatcher>,
    watched: Vec<PathBuf>,
}

impl DirWatcher {
    fn new(tx: mpsc::UnboundedSender<()>) -> DirWatcher {
        let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if let Ok(ev) = ev {
                use notify::EventKind::*;
                if matches!(
                    ev.kind,
                    Create(_) | Modify(notify::event::ModifyKind::Name(_)) | Remove(_)
                ) {
                    let _ = tx.send(());
                }
            }
        });
        match watcher {
            Ok(w) => DirWatcher {
                watcher: Some(w),
                watched: Vec::new(),
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot use inotify; finding files by polling only");
                DirWatcher {
                    watcher: None,
                    watched: Vec::new(),
                }
            }
        }
    }

    fn watch<'a>(&mut self, globs: impl Iterator<Item = &'a PathGlob>) {
        use notify::Watcher;
        let Some(w) = self.watcher.as_mut() else {
            return;
        };
        for dir in self.watched.drain(..) {
            let _ = w.unwatch(&dir);
        }
        for g in globs {
            let dir = g.base().to_path_buf();
            if self.watched.contains(&dir) {
                continue;
            }
            let mode = if g.recursive() {
                notify::RecursiveMode::Recursive
            } else {
                notify::RecursiveMode::NonRecursive
            };
            match w.watch(&dir, mode) {
                Ok(()) => self.watched.push(dir),
                Err(e) => {
                    tracing::debug!(dir = %dir.display(), error = %e, "not watching directory; polling it")
                }
            }
        }
    }
}

/// The file with inode `dev_ino` in `path`'s directory, opened.
fn find_inode(path: &std::path::Path, dev_ino: (u64, u64)) -> Option<(PathBuf, std::fs::File)> {
    std::fs::read_dir(path.parent()?)
        .ok()?
        .flatten()
        .filter(|e| e.metadata().is_ok_and(|m| (m.dev(), m.ino()) == dev_ino))
        .find_map(|e| Some((e.path(), std::fs::File::open(e.path()).ok()?)))
}

/// What a tailer is started with.
#[derive(Clone)]
struct Spawn {
    /// The file read.
    path: PathBuf,
    /// Its positions key and `filename` (the path the target matched).
    key: String,
    labels: LabelSet,
    dev_ino: (u64, u64),
    start: u64,
    /// Truncated while we were away: the copy with this head first.
    copy_first: Option<copies::Head>,
    /// Read from a saved offset: the first bytes the file had when that
    /// was decided (see [`Tailer::expect_head`]).
    expect_head: Option<copies::Head>,
    /// With `copy_first`: the contents saved as queued behind it.
    pending: Vec<crate::positions::PendingContent>,
    copy_dirs: Vec<PathBuf>,
    /// Read from its start: check its first bytes before sending them.
    check_copy: bool,
    after: Option<Arc<TailerStatus>>,
    /// Already rotated away: read to the end, then done.
    draining: bool,
}

struct RunningTailer {
    task: JoinHandle<()>,
    status: Arc<TailerStatus>,
}

/// A job task aborted mid-loop drops its tailers without reaching its own
/// cleanup: stop them here, or they would keep reading into a pipeline
/// that is shutting down.
impl Drop for RunningTailer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct JobRunner {
    settings: Arc<TailerSettings>,
    positions: Arc<Positions>,
    fd_budget: Arc<Semaphore>,
    read_budget: Arc<Semaphore>,
    view: Arc<Mutex<JobView>>,
    targets: Vec<Target>,
    out: Option<mpsc::Sender<Entry>>,
    tailers: HashMap<(u64, u64), RunningTailer>,
    /// Files finished with (rotated away, deleted): where we stopped, so a
    /// rotated file showing up under a matching name is not read again.
    ended: HashMap<(u64, u64), (identity::FileIdentity, u64)>,
    /// Copies of truncated files the watchers took: never read as files
    /// of their own.
    claims: Claims,
    /// New files that start like content a watcher holds (probably its
    /// copy, about to be claimed), held back since then.
    deferred: HashMap<(u64, u64), tokio::time::Instant>,
    /// The newest tailer started for each path.
    latest_by_path: HashMap<String, Arc<TailerStatus>>,
    /// Old files looked for once (rotated while we were not running).
    recovered: std::collections::HashSet<(u64, u64)>,
    /// The first sync is over: files that left their path while we were
    /// not running were looked for.
    started: bool,
    /// Alloy's `tail_from_end` (see [`FileTargetManager::tail_from_end`]).
    tail_from_end: bool,
}

impl JobRunner {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<JobCommand>) {
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let (fs_tx, mut fs_events) = mpsc::unbounded_channel::<()>();
        let mut watcher = DirWatcher::new(fs_tx);
        let mut tick = tokio::time::interval(self.settings.sync_period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // After a rotation the new file may not exist yet: look again at
        // every poll until then (inotify usually tells us first).
        let mut fast_until: Option<tokio::time::Instant> = None;
        loop {
            let fast = fast_until
                .filter(|t| *t > tokio::time::Instant::now())
                .is_some()
                || !self.deferred.is_empty();
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(JobCommand::Update(targets, out)) => {
                        self.targets = targets;
                        if self.out.as_ref().is_some_and(|o| !o.same_channel(&out)) {
                            // A new pipeline: tailers start again from the
                            // positions (what is in flight may come twice).
                            for (_, t) in self.tailers.drain() {
                                t.task.abort();
                            }
                            self.latest_by_path.clear();
                        }
                        self.out = Some(out);
                        self.stop_unmatched();
                        watcher.watch(self.targets.iter().map(|t| &t.glob));
                    }
                    None => break,
                },
                ev = events.recv() => {
                    if let Some(ev) = ev {
                        self.handle_event(ev, &mut fast_until);
                    }
                }
                Some(()) = fs_events.recv() => {
                    // Coalesce a burst of events into one sync.
                    while fs_events.try_recv().is_ok() {}
                }
                _ = tokio::time::sleep(self.settings.poll_interval), if fast => {}
                _ = tick.tick() => {}
            }
            // Every truncation and end reported so far is known before
            // new files are judged (a copy must meet its original's record).
            while let Ok(ev) = events.try_recv() {
                self.handle_event(ev, &mut fast_until);
            }
            self.sync(&events_tx);
        }
        for (_, t) in self.tailers.drain() {
            t.task.abort();
        }
    }

    fn handle_event(&mut self, ev: TailerEvent, fast_until: &mut Option<tokio::time::Instant>) {
        match ev {
            TailerEvent::Ended {
                key,
                identity,
                offset,
            } => {
                self.tailers.remove(&key);
                self.ended.insert(key, (identity, offset));
            }
            TailerEvent::Rotated => {
                *fast_until = Some(tokio::time::Instant::now() + self.settings.sync_period);
            }
        }
    }

    /// Tailers of files no target matches any more are stopped (their
    /// positions stay).
    fn stop_unmatched(&mut self) {
        let targets = &self.targets;
        self.tailers.retain(|_, t| {
            let p = std::path::Path::new(&t.status.path);
            let keep = targets.iter().any(|tg| tg.matches(p));
            if !keep {
                t.task.abort();
            }
            keep
        });
    }

    fn sync(&mut self, events: &mpsc::UnboundedSender<TailerEvent>) {
        let Some(out) = self.out.clone() else { return };
        self.tailers.retain(|_, t| !t.task.is_finished());
        self.latest_by_path.retain(|_, s| !*s.done.borrow());
        self.prune_claims();
        if !self.started {
            self.recover_missing_paths(&out, events);
        }
        let mut seen = std::collections::HashSet::new();
        for ti in 0..self.targets.len() {
            let paths = self.targets[ti]
                .glob
                .expand(self.targets[ti].exclude.as_ref());
            for path in paths {
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                let key = (meta.dev(), meta.ino());
                seen.insert(key);
                if self.tailers.contains_key(&key) {
                    continue;
                }
                let path_str = path.to_string_lossy().into_owned();
                let labels = {
                    let mut l = self.targets[ti].labels.clone();
                    l.insert(FILENAME_LABEL.to_string(), path_str.clone());
                    l
                };
                let copy_dirs = copies::dirs_of(&path, self.targets[ti].rotated_dir.as_deref());
                self.recover_rotated_while_down(
                    &path_str,
                    Some(key),
                    &labels,
                    copy_dirs,
                    &out,
                    events,
                );
                // The file rotated away from this path is finished first:
                // one stream's entries stay in order.
                let after = self
                    .latest_by_path
                    .get(&path_str)
                    .filter(|s| !*s.done.borrow())
                    .cloned();
                let (decision, copy_head, waited) = self.start_of(&path, key, meta.len());
                let (start, copy_first, expect_head) = match decision {
                    start::Start::Skip | start::Start::Wait => continue,
                    start::Start::At(offset) => (offset, None, copy_head),
                    start::Start::CopyFirst(offset) => (offset, copy_head, None),
                };
                let pending = if copy_first.is_some() {
                    self.positions.pending(&path_str)
                } else {
                    Vec::new()
                };
                let spawn = Spawn {
                    pending,
                    copy_dirs: copies::dirs_of(&path, self.targets[ti].rotated_dir.as_deref()),
                    path: path.clone(),
                    key: path_str,
                    labels,
                    dev_ino: key,
                    start,
                    copy_first,
                    expect_head,
                    check_copy: start == 0 && !waited,
                    after,
                    draining: false,
                };
                self.spawn(spawn, &out, events);
            }
        }
        self.started = true;
        self.deferred.retain(|k, _| seen.contains(k));
        let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        view.targets = self
            .targets
            .iter()
            .map(|t| (t.raw.clone(), t.glob.pattern().to_string()))
            .collect();
        view.files = self
            .tailers
            .values()
            .map(|t| Arc::clone(&t.status))
            .collect();
    }

    fn spawn(
        &mut self,
        s: Spawn,
        out: &mpsc::Sender<Entry>,
        events: &mpsc::UnboundedSender<TailerEvent>,
    ) -> Arc<TailerStatus> {
        let status = Tailer::status(&s.key, s.dev_ino, s.start);
        let check_copy: Option<CopyCheck> = s.check_copy.then(|| {
            let (view, claims) = (Arc::clone(&self.view), Arc::clone(&self.claims));
            Arc::new(
                move |head: &[u8], own: (u64, u64), path: &std::path::Path| {
                    // Claimed already: its watcher read it (or is reading it).
                    if claims
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(&own)
                        .is_some_and(|c| copies::bytes_start_with(head, c.head))
                    {
                        return true;
                    }
                    let view = view.lock().unwrap_or_else(|e| e.into_inner());
                    looks_like_copy(view.files.iter(), head, own, path)
                },
            ) as CopyCheck
        });
        self.latest_by_path
            .insert(s.key.clone(), Arc::clone(&status));
        let tailer = Tailer {
            path: s.path,
            key: s.key,
            labels: s.labels.into(),
            dev_ino: s.dev_ino,
            start: s.start,
            copy_first: s.copy_first,
            expect_head: s.expect_head,
            pending: s.pending,
            copy_dirs: s.copy_dirs,
            claims: Arc::clone(&self.claims),
            check_copy,
            settings: Arc::clone(&self.settings),
            positions: Arc::clone(&self.positions),
            fd_budget: Arc::clone(&self.fd_budget),
            read_budget: Arc::clone(&self.read_budget),
            out: out.clone(),
            events: events.clone(),
            status: Arc::clone(&status),
            after: s.after,
            draining: s.draining,
        };
        let task = tokio::spawn(tailer.run());
        self.tailers.insert(
            s.dev_ino,
            RunningTailer {
                task,
                status: Arc::clone(&status),
            },
        );
        status
    }

    /// At the first sync after a start: the saved position of `path`
    /// belongs to another file that left the path while we were not
    /// running (`key`: the file there now, if any). What was not delivered
    /// from it is read first, labelled as before: from the file itself if
    /// it is still in the same directory under another name, else from its
    /// copy, found by the saved head (copytruncate, then the file deleted
    /// or replaced).
    fn recover_rotated_while_down(
        &mut self,
        path: &str,
        key: Option<(u64, u64)>,
        labels: &LabelSet,
        copy_dirs: Vec<PathBuf>,
        out: &mpsc::Sender<Entry>,
        events: &mpsc::UnboundedSender<TailerEvent>,
    ) {
        let Some(saved) = self.positions.get(path) else {
            return;
        };
        let Some(id) = saved.identity else { return };
        let old = (id.dev, id.ino);
        // Only what happened while we were not running: a file leaving its
        // path while we run is followed by its watcher (and its inode may
        // be another file's by the time we look).
        // A watcher of this sync already reads it under another name, if
        // that inode still holds the content saved (else the inode was
        // freed and reused by another file, and ours is looked for).
        let tailed = self
            .tailers
            .get(&old)
            .is_some_and(|t| std::fs::File::open(&t.status.path).is_ok_and(|f| id.matches(&f)));
        if self.started || Some(old) == key || tailed || !self.recovered.insert(old) {
            return;
        }
        let mut spawn = Spawn {
            path: PathBuf::new(),
            key: path.to_string(),
            labels: labels.clone(),
            dev_ino: old,
            start: saved.offset,
            pending: Vec::new(),
            copy_first: None,
            expect_head: None,
            copy_dirs,
            check_copy: false,
            after: None,
            draining: true,
        };
        let found = find_inode(std::path::Path::new(path), old)
            // One a target matches is read under its own name (the start
            // decision finds its saved position by its identity); with
            // another head, it is another file on a reused inode.
            .filter(|(p, _)| !self.targets.iter().any(|tg| tg.matches(p)));
        if let Some((renamed, file)) = found {
            // Truncated before it was renamed (copytruncate, then a
            // rename): the content we were reading is in its copy.
            spawn.copy_first = (!id.matches(&file)).then_some(copies::Head {
                len: id.fp_len as usize,
                hash: id.fp,
            });
            if spawn.copy_first.is_none() && file.metadata().is_ok_and(|m| m.len() <= saved.offset)
            {
                return;
            }
            if spawn.copy_first.is_some() {
                spawn.pending = self.positions.pending(path);
            } else {
                spawn.expect_head = Some(copies::Head {
                    len: id.fp_len as usize,
                    hash: id.fp,
                });
            }
            tracing::info!(path, rotated_to = %renamed.display(), offset = saved.offset, copy_first = spawn.copy_first.is_some(), "reading the rest of a file rotated while we were not running");
            spawn.path = renamed;
            self.spawn(spawn, out, events);
            return;
        }
        // Gone: its contents are in copies, if anywhere; each is read to
        // its end after the one before.
        let mut skip = copies::skip_claimed(&self.claims.lock().unwrap_or_else(|e| e.into_inner()));
        skip.extend(self.tailers.keys().chain(key.as_ref()).map(|k| (*k, None)));
        let first = (
            copies::Head {
                len: id.fp_len as usize,
                hash: id.fp,
            },
            saved.offset,
        );
        let queued = self.positions.pending(path).into_iter().map(|p| {
            let head = copies::Head {
                len: usize::try_from(p.fp_len).unwrap_or(usize::MAX),
                hash: p.fp,
            };
            (head, 0)
        });
        let mut after = None;
        for (head, start) in std::iter::once(first).chain(queued) {
            let copies::Found::Copy(copy) = copies::find(&spawn.copy_dirs, head, start, &skip)
            else {
                tracing::warn!(path, offset = start, "a file rotated or truncated while we were not running is gone and no copy of its content was found: its unread lines are lost");
                continue;
            };
            tracing::info!(path, copy = %copy.path.display(), offset = start, "reading the rest of a file removed while we were not running from its copy");
            skip.insert(copy.dev_ino, Some(head));
            self.claims
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    copy.dev_ino,
                    copies::Claim {
                        path: copy.path.clone(),
                        head,
                    },
                );
            let status = self.spawn(
                Spawn {
                    path: copy.path,
                    dev_ino: copy.dev_ino,
                    start,
                    after: after.take(),
                    ..spawn.clone()
                },
                out,
                events,
            );
            after = Some(status);
        }
    }

    /// Saved paths of this job's targets that do not exist now: their files
    /// were rotated away (or copied and removed) while we were not running.
    fn recover_missing_paths(
        &mut self,
        out: &mpsc::Sender<Entry>,
        events: &mpsc::UnboundedSender<TailerEvent>,
    ) {
        for key in self.positions.untracked_files() {
            let path = std::path::Path::new(&key);
            let Some(target) = self.targets.iter().find(|tg| tg.matches(path)) else {
                continue;
            };
            if std::fs::symlink_metadata(path).is_ok() {
                continue;
            }
            let mut labels = target.labels.clone();
            labels.insert(FILENAME_LABEL.to_string(), key.clone());
            let copy_dirs = copies::dirs_of(path, target.rotated_dir.as_deref());
            self.recover_rotated_while_down(&key, None, &labels, copy_dirs, out, events);
        }
    }

    /// Copies claimed by watchers are remembered while they exist under
    /// the name they were found by, with the content they were claimed for
    /// (an inode freed and reused by another file must not be skipped).
    fn prune_claims(&mut self) {
        let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        claims.retain(|&(dev, ino), c| {
            std::fs::File::open(&c.path).is_ok_and(|f| {
                f.metadata().is_ok_and(|m| (m.dev(), m.ino()) == (dev, ino))
                    && copies::starts_with(&f, c.head)
            })
        });
    }

    /// Where to start reading a newly found file: the facts gathered here,
    /// the decision in [`start::decide`]; with it, the head of the copy to
    /// read first when the file was truncated while we were away, or the
    /// file's head when it is read from an offset.
    fn start_of(
        &mut self,
        path: &std::path::Path,
        key: (u64, u64),
        len: u64,
    ) -> (start::Start, Option<copies::Head>, bool) {
        let file = std::fs::File::open(path).ok();
        let same = |id: &identity::FileIdentity| file.as_ref().is_some_and(|f| id.matches(f));
        let mut facts = start::Facts {
            // Offsets of compressed files count decompressed bytes.
            len: if self.settings.decompression.is_some()
                || path.extension().is_some_and(|e| e == "gz")
            {
                u64::MAX
            } else {
                len
            },
            claimed: self
                .claims
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .is_some_and(|c| {
                    file.as_ref()
                        .is_some_and(|f| copies::starts_with(f, c.head))
                }),
            ..Default::default()
        };
        if let Some((id, offset)) = self.ended.get(&key) {
            if same(id) {
                facts.ended_at = Some(*offset);
            }
        }
        let mut copy_head = None;
        let key_str = path.to_string_lossy();
        if let Some(saved) = self.positions.get(&key_str) {
            let owner = match &saved.identity {
                Some(id) if (id.dev, id.ino) == key => {
                    copy_head = Some(copies::Head {
                        len: id.fp_len as usize,
                        hash: id.fp,
                    });
                    if same(id) {
                        start::Owner::ThisFile
                    } else {
                        start::Owner::ThisInodeNewContent
                    }
                }
                Some(_) => start::Owner::OtherFile,
                None => start::Owner::PathOnly,
            };
            facts.saved = Some(start::Saved {
                offset: saved.offset,
                owner,
            });
        }
        if let Some((_, saved)) = self.positions.find_identity(key.0, key.1) {
            if saved.identity.as_ref().is_some_and(same) {
                facts.saved_elsewhere = Some(saved.offset);
            }
        }
        if self.tail_from_end && !self.started && facts.len != u64::MAX {
            facts.from_end = file.as_ref().map(|f| {
                let mut head = [0u8; 2];
                let n = identity::read_head(f, &mut head).unwrap_or(0);
                let unit = self
                    .settings
                    .encoding
                    .map_or(encoding::Unit::Byte, |e| e.codec(&head[..n]).unit);
                last_line_end(f, len, unit)
            });
        }
        let mut decision = start::decide(&facts, self.copy_wait());
        // Its first bytes, read once (a newly found file): whether it
        // starts like content a watcher holds, and what opening it checks.
        let head = match (&file, decision) {
            (Some(f), start::Start::At(_)) if len > 0 => {
                let mut head = vec![0u8; identity::FINGERPRINT_BYTES];
                let n = identity::read_head(f, &mut head).unwrap_or(0);
                head.truncate(n);
                Some(head)
            }
            _ => None,
        };
        // A new file to read from its start: unless it starts like content
        // a watcher holds (probably its copy).
        if decision == start::Start::At(0) {
            if let Some(head) = &head {
                let now = tokio::time::Instant::now();
                if looks_like_copy(self.tailers.values().map(|t| &t.status), head, key, path) {
                    let since = *self.deferred.entry(key).or_insert(now);
                    facts.looks_like_copy_for = Some(now.duration_since(since));
                    decision = start::decide(&facts, self.copy_wait());
                }
            }
        }
        if matches!(decision, start::Start::At(_) | start::Start::Skip) {
            self.deferred.remove(&key);
        }
        if decision == start::Start::At(0) && facts.looks_like_copy_for.is_some() {
            tracing::debug!(path = %path.display(), "a file starting like another one's content was not claimed as its copy: reading it from its start");
        }
        let head = match decision {
            start::Start::CopyFirst(_) => copy_head,
            // Read from an offset, or from the start of what it holds: its
            // first bytes now, looked at again when it is opened (a
            // truncation in between is a new content, and what it held is
            // looked for in a copy: copytruncate right after a restart).
            start::Start::At(_) if facts.len != u64::MAX => head.map(|h| copies::Head::of(&h)),
            _ => None,
        };
        (decision, head, facts.looks_like_copy_for.is_some())
    }

    /// How long a file that looks like a copy is held back.
    fn copy_wait(&self) -> Duration {
        (self.settings.poll_interval * 8).max(Duration::from_secs(2))
    }
}

/// Where the last complete line of the first `len` bytes ends (just past
/// its newline; 0 when there is none): a partial last line is read once
/// it is complete, as Alloy's tail_from_end does.
fn last_line_end(f: &std::fs::File, len: u64, unit: encoding::Unit) -> u64 {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 4096];
    // Chunks start at code unit boundaries (a UTF-16 newline is two bytes).
    let mut end = len - len % unit.width() as u64;
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        if f.read_exact_at(chunk, start).is_err() {
            return 0;
        }
        if let Some(past) = unit.last_newline_end(chunk) {
            return start + past as u64;
        }
        end = start;
    }
    0
}
