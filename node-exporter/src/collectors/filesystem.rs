//! `node_filesystem_*` for each mount of the host: mounts from
//! <procfs>/1/mountinfo (else self/mountinfo, else the older /proc/mounts
//! format), sizes from statfs(2).
//!
//! A statfs on a dead NFS server never returns. Each statfs therefore runs
//! on a worker thread and the collector waits `--collector.filesystem.mount-timeout`
//! for it; a mount whose statfs has not returned by then is recorded as stuck
//! and reported with `node_filesystem_device_error{device_error="mountpoint timeout"} 1`.
//! It is not statfs'd again until that thread comes back (node_exporter's
//! `stuckMounts`), so a dead mount holds one thread, however many scrapes
//! pass. The scrape itself never waits for it. Filesystems whose statfs
//! answers from counters in memory (ext4, xfs, tmpfs, ...; see
//! [`STATFS_FROM_MEMORY`]) reached through such mounts only are statfs'd on
//! the collector's own thread: the hand-off to a statfs thread and back cost
//! more than the calls.
//!
//! On a real procfs the mount table stays open and is read again only when
//! poll(2) reports a change of the mount namespace (see [`WatchedMounts`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::CollectorSpec;
use crate::cli::{string_flag, Flags};
use crate::collector::{Collector, NoData, Paths};
use crate::device_filter::DeviceFilter;

pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$";

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "filesystem",
    default_enabled: true,
    flags: || {
        vec![
            string_flag(
                "collector.filesystem.mount-points-exclude",
                DEFAULT_MOUNT_POINTS_EXCLUDE,
                "Regexp of mount points to exclude for filesystem collector. (mutually exclusive to mount-points-include)",
            ),
            string_flag(
                "collector.filesystem.ignored-mount-points",
                "",
                "Regexp of mount points to ignore for filesystem collector.",
            )
            .hide(true),
            string_flag(
                "collector.filesystem.mount-points-include",
                "",
                "Regexp of mount points to include for filesystem collector. (mutually exclusive to mount-points-exclude)",
            ),
            string_flag(
                "collector.filesystem.fs-types-exclude",
                DEFAULT_FS_TYPES_EXCLUDE,
                "Regexp of filesystem types to exclude for filesystem collector. (mutually exclusive to fs-types-include)",
            ),
            string_flag(
                "collector.filesystem.ignored-fs-types",
                "",
                "Regexp of filesystem types to ignore for filesystem collector.",
            )
            .hide(true),
            string_flag(
                "collector.filesystem.fs-types-include",
                "",
                "Regexp of filesystem types to include for filesystem collector. (mutually exclusive to fs-types-exclude)",
            ),
            string_flag(
                "collector.filesystem.mount-timeout",
                "5s",
                "how long to wait for a mount to respond before marking it as stale",
            )
            .hide(true),
            string_flag(
                "collector.filesystem.stat-workers",
                "4",
                "how many stat calls to process simultaneously",
            )
            .hide(true),
        ]
    },
    build: |f| Ok(Box::new(Filesystem::new(f)?)),
};

/// One line of mountinfo (or /proc/mounts), before filtering.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub device: String,
    /// With fstab's `\040` (space) and `\011` (tab) decoded, as node_exporter does.
    pub mount_point: String,
    pub fs_type: String,
    /// `major:minor`; unknown in the /proc/mounts format.
    pub major_minor: Option<(u32, u32)>,
    /// "ro" among the mount options or the superblock options.
    pub read_only: bool,
}

fn unescape_mount_point(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t")
}

fn has_ro(options: &str) -> bool {
    options.split(',').any(|o| o == "ro")
}

/// Parses /proc/<pid>/mountinfo: `id parent major:minor root mountpoint
/// options [optional...] - fstype source superoptions`.
pub fn parse_mountinfo(text: &str, path: &Path) -> anyhow::Result<Vec<Mount>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |what: &str| {
            anyhow!(
                "parsing {} line {}: {what}: {line:?}",
                path.display(),
                i + 1
            )
        };
        let fields: Vec<&str> = line.split(' ').collect();
        let n = fields.len();
        if n < 10 {
            return Err(err("too few fields"));
        }
        let field = |idx: usize| fields.get(idx).copied().unwrap_or_default();
        if field(n - 4) != "-" {
            return Err(err("no '-' separator before the last three fields"));
        }
        let (major, minor) = field(2)
            .split_once(':')
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
            .ok_or_else(|| err("malformed major:minor"))?;
        out.push(Mount {
            device: field(n - 2).to_string(),
            mount_point: unescape_mount_point(field(4)),
            fs_type: field(n - 3).to_string(),
            major_minor: Some((major, minor)),
            read_only: has_ro(field(5)) || has_ro(field(n - 1)),
        });
    }
    Ok(out)
}

/// Parses the /proc/mounts format: `source mountpoint fstype options 0 0`.
pub fn parse_mounts(text: &str, path: &Path) -> anyhow::Result<Vec<Mount>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let [device, mount_point, fs_type, options, ..] = fields[..] else {
            return Err(anyhow!(
                "parsing {} line {}: expected at least 4 fields: {line:?}",
                path.display(),
                i + 1
            ));
        };
        out.push(Mount {
            device: device.to_string(),
            mount_point: unescape_mount_point(mount_point),
            fs_type: fs_type.to_string(),
            major_minor: None,
            read_only: has_ro(options),
        });
    }
    Ok(out)
}

/// What statfs(2) says of a filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FsStats {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u64,
    /// `ST_RDONLY`: the mount or its superblock is read-only.
    pub read_only: bool,
}

/// The statfs call, swappable so that tests can make it hang. The error is
/// an errno.
pub type StatFn = Arc<dyn Fn(&Path) -> Result<FsStats, i32> + Send + Sync>;

pub fn statfs(path: &Path) -> Result<FsStats, i32> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| libc::EINVAL)?;
    // statvfs(3) is statfs(2) with the mount flags (f_flag) that libc's
    // `statfs` type does not expose; f_bsize is statfs' f_bsize.
    // SAFETY: a zeroed statvfs is a valid out-buffer, `c` is NUL-terminated.
    let mut buf: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut buf) } != 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    #[allow(clippy::unnecessary_cast)]
    Ok(FsStats {
        blocks: buf.f_blocks as u64,
        bfree: buf.f_bfree as u64,
        bavail: buf.f_bavail as u64,
        files: buf.f_files as u64,
        ffree: buf.f_ffree as u64,
        bsize: buf.f_bsize as u64,
        read_only: buf.f_flag as u64 & libc::ST_RDONLY as u64 != 0,
    })
}

/// An errno as Go's `syscall.Errno.Error()` spells it ("no such file or
/// directory"): the C library's message with its first letter lowercased.
pub fn go_errno_string(errno: i32) -> String {
    let s = std::io::Error::from_raw_os_error(errno).to_string();
    let s = match s.rfind(" (os error ") {
        Some(i) => &s[..i],
        None => &s,
    };
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(a), Some(b)) if a.is_ascii_uppercase() && b.is_ascii_lowercase() => {
            format!("{}{}", a.to_ascii_lowercase(), &s[1..])
        }
        _ => s.to_string(),
    }
}

/// Filesystem types whose statfs reads counters the kernel keeps in memory:
/// no server to wait for and no disk read, so it cannot hang the way NFS,
/// CIFS or FUSE (a user-space daemon) can.
const STATFS_FROM_MEMORY: [&str; 9] = [
    "btrfs", "devtmpfs", "ext2", "ext3", "ext4", "ramfs", "tmpfs", "vfat", "xfs",
];

/// How long the statfs queue may sit still before another worker joins.
const STAT_STALL: Duration = Duration::from_millis(10);

/// The statfs runner: stuck mount points and the threads behind them.
struct Statter {
    stat: StatFn,
    timeout: Duration,
    workers: usize,
    /// Mount points whose statfs has not returned, with the token of the
    /// task that owns the mark (only it may clear it).
    stuck: Arc<Mutex<HashMap<String, u64>>>,
    next_token: AtomicU64,
    /// statfs threads alive now (tests watch it).
    alive: Arc<AtomicUsize>,
}

enum Outcome {
    Stats(FsStats),
    Error(String),
    /// No answer within the timeout (now or in an earlier scrape).
    Stuck,
}

struct Task {
    path: PathBuf,
    mount_point: String,
    token: u64,
    /// Set, under the `stuck` lock, when statfs has returned.
    done: AtomicBool,
}

struct Round {
    queue: Mutex<VecDeque<usize>>,
    tasks: Vec<Task>,
    started: Mutex<Vec<Option<Instant>>>,
}

impl Statter {
    /// statfs's each (path, mount point, on this thread); returns one
    /// outcome per input, in order, within about `timeout` per stuck batch
    /// of workers.
    fn stat_all(&self, jobs: Vec<(PathBuf, String, bool)>) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(jobs.len());
        let mut tasks = Vec::new();
        let mut slot_of_task = Vec::new();
        let mut on_this_thread = Vec::new();
        {
            let stuck = self.stuck.lock().unwrap_or_else(|e| e.into_inner());
            for (slot, (path, mount_point, here)) in jobs.into_iter().enumerate() {
                if here {
                    outcomes.push(None);
                    on_this_thread.push((slot, path));
                    continue;
                }
                if stuck.contains_key(&mount_point) {
                    tracing::debug!(mountpoint = %mount_point, "Mount point is in an unresponsive state");
                    outcomes.push(Some(Outcome::Stuck));
                    continue;
                }
                outcomes.push(None);
                slot_of_task.push(slot);
                tasks.push(Task {
                    path,
                    mount_point,
                    token: self.next_token.fetch_add(1, Ordering::Relaxed),
                    done: AtomicBool::new(false),
                });
            }
        }
        // Not under the `stuck` lock: returning statfs threads take it.
        for (slot, path) in on_this_thread {
            outcomes[slot] = Some(match (self.stat)(&path) {
                Ok(s) => Outcome::Stats(s),
                Err(errno) => Outcome::Error(go_errno_string(errno)),
            });
        }
        let n = tasks.len();
        if n > 0 {
            let round = Arc::new(Round {
                queue: Mutex::new((0..n).collect()),
                started: Mutex::new(vec![None; n]),
                tasks,
            });
            for (i, o) in self.run_round(&round).into_iter().enumerate() {
                if let Some(slot) = slot_of_task.get(i) {
                    outcomes[*slot] = Some(o);
                }
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Stuck))
            .collect()
    }

    fn spawn_worker(
        &self,
        round: &Arc<Round>,
        tx: &mpsc::Sender<(usize, Result<FsStats, i32>)>,
    ) -> bool {
        let round = round.clone();
        let tx = tx.clone();
        let stat = self.stat.clone();
        let stuck = self.stuck.clone();
        let alive = self.alive.clone();
        alive.fetch_add(1, Ordering::SeqCst);
        let work = move || {
            loop {
                let next = round
                    .queue
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pop_front();
                let Some(i) = next else { break };
                let Some(task) = round.tasks.get(i) else {
                    break;
                };
                if let Some(s) = round
                    .started
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_mut(i)
                {
                    *s = Some(Instant::now());
                }
                let result = stat(&task.path);
                {
                    let mut stuck = stuck.lock().unwrap_or_else(|e| e.into_inner());
                    task.done.store(true, Ordering::SeqCst);
                    if stuck.get(&task.mount_point) == Some(&task.token) {
                        tracing::debug!(mountpoint = %task.mount_point, "Mount point has recovered, monitoring will resume");
                        stuck.remove(&task.mount_point);
                    }
                }
                if tx.send((i, result)).is_err() {
                    // The scrape gave up on this statfs and moved on.
                    break;
                }
            }
            alive.fetch_sub(1, Ordering::SeqCst);
        };
        // Inside the exporter, reuse the runtime's idle blocking threads
        // rather than creating threads on every scrape; unit tests without a
        // runtime get a plain thread.
        let spawned = match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                drop(handle.spawn_blocking(work));
                Ok(())
            }
            Err(_) => std::thread::Builder::new()
                .name("statfs".into())
                .spawn(work)
                .map(drop),
        };
        if spawned.is_err() {
            self.alive.fetch_sub(1, Ordering::SeqCst);
        }
        spawned.is_ok()
    }

    fn run_round(&self, round: &Arc<Round>) -> Vec<Outcome> {
        let n = round.tasks.len();
        let mut out: Vec<Option<Outcome>> = (0..n).map(|_| None).collect();
        // Kept here (not dropped) to start replacement workers.
        let (tx, rx) = mpsc::channel();
        // One worker does a scrape's statfs calls (microseconds each);
        // more, up to --collector.filesystem.stat-workers, join only when
        // the queue stops moving, which saves thread wake-ups per scrape.
        let max_workers = self.workers.clamp(1, n);
        let mut workers = usize::from(self.spawn_worker(round, &tx));
        if workers == 0 {
            return (0..n)
                .map(|_| Outcome::Error("could not start a statfs thread".into()))
                .collect();
        }
        let mut resolved = 0;
        while resolved < n {
            // Sleep until the earliest running statfs would time out.
            let now = Instant::now();
            let wait = {
                let started = round.started.lock().unwrap_or_else(|e| e.into_inner());
                started
                    .iter()
                    .zip(&out)
                    .filter(|(_, o)| o.is_none())
                    .filter_map(|(s, _)| *s)
                    .map(|s| (s + self.timeout).saturating_duration_since(now))
                    .min()
                    .unwrap_or(self.timeout)
            };
            let queued = || {
                !round
                    .queue
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_empty()
            };
            let may_add = workers < max_workers && queued();
            let wait = if may_add { wait.min(STAT_STALL) } else { wait };
            match rx.recv_timeout(wait) {
                Ok((i, result)) => {
                    if let Some(slot @ None) = out.get_mut(i) {
                        resolved += 1;
                        *slot = Some(match result {
                            Ok(s) => Outcome::Stats(s),
                            Err(errno) => Outcome::Error(go_errno_string(errno)),
                        });
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if may_add && queued() && self.spawn_worker(round, &tx) {
                        workers += 1;
                    }
                    let now = Instant::now();
                    let overdue: Vec<usize> = {
                        let started = round.started.lock().unwrap_or_else(|e| e.into_inner());
                        (0..n)
                            .filter(|&i| out.get(i).is_some_and(Option::is_none))
                            .filter(|&i| {
                                started
                                    .get(i)
                                    .copied()
                                    .flatten()
                                    .is_some_and(|s| now.duration_since(s) >= self.timeout)
                            })
                            .collect()
                    };
                    for i in overdue {
                        let Some(task) = round.tasks.get(i) else {
                            continue;
                        };
                        {
                            let mut stuck = self.stuck.lock().unwrap_or_else(|e| e.into_inner());
                            if task.done.load(Ordering::SeqCst) {
                                continue; // returned just now: its result is in the channel
                            }
                            tracing::debug!(mountpoint = %task.mount_point, "Mount point timed out, it is being labeled as stuck and will not be monitored");
                            stuck.insert(task.mount_point.clone(), task.token);
                        }
                        out[i] = Some(Outcome::Stuck);
                        resolved += 1;
                        // That thread is lost to this round: replace it so
                        // that the mounts queued behind it still get theirs.
                        if queued() && !self.spawn_worker(round, &tx) {
                            tracing::warn!("could not start a statfs thread");
                            let rest: Vec<usize> = round
                                .queue
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .drain(..)
                                .collect();
                            for j in rest {
                                if let Some(slot @ None) = out.get_mut(j) {
                                    *slot = Some(Outcome::Error(
                                        "could not start a statfs thread".into(),
                                    ));
                                    resolved += 1;
                                }
                            }
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or(Outcome::Stuck))
            .collect()
    }
}

struct Filesystem {
    paths: Paths,
    mount_points: DeviceFilter,
    fs_types: DeviceFilter,
    statter: Statter,
    watched: Mutex<Option<WatchedMounts>>,
    /// Whether the exporter shares PID 1's mount namespace, once known.
    shares_pid1_namespace: std::sync::OnceLock<bool>,
    /// Reads of the mount table (tests watch it).
    table_reads: AtomicUsize,
}

/// The mounts to report: each with its mount point as reported, and
/// whether its statfs runs on the collector's thread (see
/// [`STATFS_FROM_MEMORY`]).
type Selected = Arc<Vec<(Mount, String, bool)>>;

/// An open mountinfo on a real procfs, and its path.
type MountTableFile = (std::fs::File, PathBuf);

/// The host's mount table, kept open on a real procfs (when the exporter
/// shares the table's mount namespace, see `shares_namespace_of`;
/// otherwise it is read on every scrape) and read again only when poll(2)
/// on it reports POLLPRI: the kernel raises that on the open file after any
/// mount, unmount, move or remount in its namespace. Reading
/// and parsing a table that changes a few times a day was about a twentieth
/// of a scrape's CPU (the kernel formats every mount anew). A superblock
/// that turns read-only by itself (ext4's `errors=remount-ro`) raises no
/// such event, so `node_filesystem_readonly` also takes statfs' ST_RDONLY,
/// which covers both the mount's and the superblock's flag as mountinfo's
/// two "ro" do.
struct WatchedMounts {
    file: std::fs::File,
    path: PathBuf,
    mounts: Selected,
}

impl Filesystem {
    fn new(f: &Flags) -> anyhow::Result<Self> {
        let workers: i64 = f
            .string("collector.filesystem.stat-workers")
            .parse()
            .map_err(|_| anyhow!("--collector.filesystem.stat-workers: not a whole number"))?;
        Ok(Self::with_stat(
            f.paths.clone(),
            DeviceFilter::from_flags(
                f,
                "collector.filesystem.mount-points-exclude",
                DEFAULT_MOUNT_POINTS_EXCLUDE,
                "collector.filesystem.ignored-mount-points",
                "collector.filesystem.mount-points-include",
            )?,
            DeviceFilter::from_flags(
                f,
                "collector.filesystem.fs-types-exclude",
                DEFAULT_FS_TYPES_EXCLUDE,
                "collector.filesystem.ignored-fs-types",
                "collector.filesystem.fs-types-include",
            )?,
            // A zero timeout would only make the wait loop spin.
            f.duration("collector.filesystem.mount-timeout")?
                .max(Duration::from_millis(1)),
            usize::try_from(workers.max(1)).unwrap_or(1),
            Arc::new(statfs),
        ))
    }

    fn with_stat(
        paths: Paths,
        mount_points: DeviceFilter,
        fs_types: DeviceFilter,
        timeout: Duration,
        workers: usize,
        stat: StatFn,
    ) -> Self {
        Filesystem {
            paths,
            mount_points,
            fs_types,
            statter: Statter {
                stat,
                timeout,
                workers,
                stuck: Arc::new(Mutex::new(HashMap::new())),
                next_token: AtomicU64::new(0),
                alive: Arc::new(AtomicUsize::new(0)),
            },
            watched: Mutex::new(None),
            shares_pid1_namespace: std::sync::OnceLock::new(),
            table_reads: AtomicUsize::new(0),
        }
    }

    /// The selected mounts, from the watched table while the kernel reports
    /// no change (and whether they came from a real procfs).
    fn mounts(&self) -> anyhow::Result<(Selected, bool)> {
        let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = watched.as_mut() {
            match crate::helpers::mount_table_changed(&w.file) {
                Ok(false) => return Ok((w.mounts.clone(), true)),
                Ok(true) => match crate::helpers::pread_whole(&w.file) {
                    Ok(bytes) => {
                        self.table_reads.fetch_add(1, Ordering::Relaxed);
                        let text = String::from_utf8_lossy(&bytes);
                        match parse_mountinfo(&text, &w.path) {
                            Ok(m) => {
                                w.mounts = Arc::new(self.selected_mounts(m));
                                return Ok((w.mounts.clone(), true));
                            }
                            // The change is consumed: never answer from the
                            // old table after this.
                            Err(e) => {
                                *watched = None;
                                return Err(e);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::debug!(path = %w.path.display(), error = %e, "Re-reading mounts failed, opening again");
                    }
                },
                Err(e) => {
                    tracing::debug!(path = %w.path.display(), error = %e, "Polling mounts failed, opening again");
                }
            }
            *watched = None;
        }
        let (mounts, file) = self.read_mounts()?;
        let mounts: Selected = Arc::new(self.selected_mounts(mounts));
        let real = file.is_some();
        if let Some((file, path)) = file {
            *watched = Some(WatchedMounts {
                file,
                path,
                mounts: mounts.clone(),
            });
        }
        Ok((mounts, real))
    }

    /// Whether the exporter shares the mount namespace of the table it read
    /// (`table`, from `rel`): only then does statfs' ST_RDONLY show the same
    /// mounts' flags as that table (under systemd's ProtectSystem= every
    /// mount is read-only in the service's own namespace), so only then is
    /// the table watched. Our own table is ours; for PID 1's, the namespace
    /// links tell, or, where we may not look at them (no ptrace access to
    /// PID 1, as in some containers), the tables themselves: mount IDs are
    /// unique across namespaces, so an identical table is the same one.
    /// PID 1's is decided once: neither process changes namespace (a
    /// table that changed between the two reads only costs the watch).
    fn shares_namespace_of(&self, rel: &str, table: &[u8]) -> bool {
        use std::os::unix::fs::MetadataExt;
        if rel.starts_with("self/") {
            return true;
        }
        *self.shares_pid1_namespace.get_or_init(|| {
            match (
                std::fs::metadata(self.paths.proc("1/ns/mnt")),
                std::fs::metadata(self.paths.proc("self/ns/mnt")),
            ) {
                (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                _ => std::fs::File::open(self.paths.proc("self/mountinfo"))
                    .and_then(|f| crate::helpers::pread_whole(&f))
                    .is_ok_and(|ours| ours == table),
            }
        })
    }

    /// The host's mounts: PID 1's view, else ours (/proc/1 hidden by
    /// hidepid), else the /proc/mounts format of old kernels; with the open
    /// mountinfo file and its path when it is on a real procfs (to be
    /// watched).
    fn read_mounts(&self) -> anyhow::Result<(Vec<Mount>, Option<MountTableFile>)> {
        for rel in ["1/mountinfo", "self/mountinfo"] {
            let path = self.paths.proc(rel);
            let read = std::fs::File::open(&path).and_then(|f| {
                let bytes = crate::helpers::pread_whole(&f)?;
                Ok((f, bytes))
            });
            match read {
                Ok((file, bytes)) => {
                    self.table_reads.fetch_add(1, Ordering::Relaxed);
                    let mounts = parse_mountinfo(&String::from_utf8_lossy(&bytes), &path)?;
                    let watch = (crate::helpers::is_procfs_file(&file)
                        && self.shares_namespace_of(rel, &bytes))
                    .then_some((file, path));
                    return Ok((mounts, watch));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                    ) =>
                {
                    tracing::debug!(path = %path.display(), error = %e, "Reading mounts failed, falling back");
                }
                Err(e) => return Err(anyhow!("reading {}: {e}", path.display())),
            }
        }
        let path = self.paths.proc("mounts");
        match crate::helpers::read_to_string(&path) {
            Ok(text) => Ok((parse_mounts(&text, &path)?, None)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(NoData(format!(
                "no mount table under {}",
                self.paths.procfs.display()
            ))
            .into()),
            Err(e) => Err(anyhow!("reading {}: {e}", path.display())),
        }
    }

    /// The mounts to report, as (mount, mount point label). With
    /// `--path.rootfs` the label loses the rootfs prefix; when the mount
    /// table is the container's own (it has mounts under rootfs), the
    /// container's mounts outside rootfs are not the host's and are skipped.
    fn selected_mounts(&self, mounts: Vec<Mount>) -> Vec<(Mount, String, bool)> {
        // Mount points a path walk may have to ask a server or daemon about.
        let slow: HashSet<String> = mounts
            .iter()
            .filter(|m| !STATFS_FROM_MEMORY.contains(&m.fs_type.as_str()))
            .map(|m| m.mount_point.clone())
            .collect();
        let from_memory = |m: &Mount| {
            STATFS_FROM_MEMORY.contains(&m.fs_type.as_str())
                && !Path::new(&m.mount_point)
                    .ancestors()
                    .any(|a| a.to_str().is_some_and(|a| slow.contains(a)))
        };
        let prefix = self.paths.rootfs.to_string_lossy();
        let prefix = prefix.trim_end_matches('/');
        let under = |mp: &str| {
            mp.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        let container_view = !prefix.is_empty() && mounts.iter().any(|m| under(&m.mount_point));
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for m in mounts {
            if container_view && !under(&m.mount_point) {
                tracing::debug!(mountpoint = %m.mount_point, "Ignoring mount point outside the rootfs");
                continue;
            }
            let mp = self.paths.strip_rootfs(&m.mount_point);
            if self.mount_points.ignored(&mp) {
                tracing::debug!(mountpoint = %mp, "Ignoring mount point");
                continue;
            }
            if self.fs_types.ignored(&m.fs_type) {
                tracing::debug!(r#type = %m.fs_type, "Ignoring fs type");
                continue;
            }
            // The same filesystem mounted twice at one place is one series.
            if !seen.insert((m.device.clone(), mp.clone(), m.fs_type.clone())) {
                continue;
            }
            let here = from_memory(&m);
            out.push((m, mp, here));
        }
        out
    }
}

impl Collector for Filesystem {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let (mounts, watched) = self.mounts()?;
        let jobs = mounts
            .iter()
            .map(|(_, mp, here)| (self.paths.root(mp), mp.clone(), *here))
            .collect();
        let outcomes = self.statter.stat_all(jobs);
        let mut info_seen = HashSet::new();
        for ((m, mp, _), outcome) in mounts.iter().zip(outcomes) {
            let error = match &outcome {
                Outcome::Stats(_) => String::new(),
                Outcome::Error(e) => {
                    tracing::debug!(mountpoint = %mp, error = %e, "Error on statfs() system call");
                    e.clone()
                }
                Outcome::Stuck => "mountpoint timeout".to_string(),
            };
            let labels = [
                ("device", m.device.as_str()),
                ("mountpoint", mp.as_str()),
                ("fstype", m.fs_type.as_str()),
                ("device_error", error.as_str()),
            ];
            let gauge = |out: &mut MetricSet, name: &'static str, help: &'static str, v: f64| {
                out.gauge(name, help, &labels, v)
            };
            gauge(
                out,
                "node_filesystem_device_error",
                "Whether an error occurred while getting statistics for the given device.",
                if error.is_empty() { 0.0 } else { 1.0 },
            );
            // A watched table may be older than the last superblock flag.
            let read_only =
                m.read_only || watched && matches!(&outcome, Outcome::Stats(s) if s.read_only);
            gauge(
                out,
                "node_filesystem_readonly",
                "Filesystem read-only status.",
                if read_only { 1.0 } else { 0.0 },
            );
            let Outcome::Stats(s) = outcome else { continue };
            let bsize = s.bsize as f64;
            gauge(
                out,
                "node_filesystem_size_bytes",
                "Filesystem size in bytes.",
                s.blocks as f64 * bsize,
            );
            gauge(
                out,
                "node_filesystem_free_bytes",
                "Filesystem free space in bytes.",
                s.bfree as f64 * bsize,
            );
            gauge(
                out,
                "node_filesystem_avail_bytes",
                "Filesystem space available to non-root users in bytes.",
                s.bavail as f64 * bsize,
            );
            gauge(
                out,
                "node_filesystem_files",
                "Filesystem total file nodes.",
                s.files as f64,
            );
            gauge(
                out,
                "node_filesystem_files_free",
                "Filesystem total free file nodes.",
                s.ffree as f64,
            );
            if let Some((major, minor)) = m.major_minor {
                if info_seen.insert((m.device.as_str(), major, minor, mp.as_str())) {
                    out.gauge(
                        "node_filesystem_mount_info",
                        "Filesystem mount information.",
                        &[
                            ("device", m.device.as_str()),
                            ("major", &major.to_string()),
                            ("minor", &minor.to_string()),
                            ("mountpoint", mp.as_str()),
                        ],
                        1.0,
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exporter_toolkit::exposition::Value;
    use std::sync::Condvar;

    type Labels = [(std::borrow::Cow<'static, str>, String)];

    const MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime shared:12 - proc proc rw
26 1 254:1 / / rw,relatime shared:1 master:2 - ext4 /dev/vda1 rw,errors=remount-ro
27 26 254:15 / /boot/efi rw,relatime shared:14 - vfat /dev/vda15 rw,fmask=0077
28 26 8:17 / /mnt/backup\\040disk rw,relatime - ext4 /dev/sdb1 ro
29 26 0:45 / /srv/nfs ro,relatime - nfs4 nas:/export rw,vers=4.2
";

    fn p() -> &'static Path {
        Path::new("/proc/1/mountinfo")
    }

    #[test]
    fn mountinfo_fields_escapes_and_readonly() {
        let m = parse_mountinfo(MOUNTINFO, p()).unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(m[1].mount_point, "/");
        assert_eq!(m[1].device, "/dev/vda1");
        assert_eq!(m[1].fs_type, "ext4");
        assert_eq!(m[1].major_minor, Some((254, 1)));
        assert!(!m[1].read_only);
        assert_eq!(m[3].mount_point, "/mnt/backup disk");
        assert!(m[3].read_only, "ro superblock");
        assert!(m[4].read_only, "ro mount option");
    }

    #[test]
    fn malformed_mountinfo_lines_are_errors() {
        for bad in [
            "26 1 254:1 / / rw,relatime shared:1 ext4 /dev/vda1 rw",
            "26 1 254:1 / / rw - ext4",
            "26 1 x:1 / / rw,relatime - ext4 /dev/vda1 rw",
        ] {
            let e = parse_mountinfo(&format!("{bad}\n"), p()).unwrap_err();
            assert!(e.to_string().contains("/proc/1/mountinfo line 1"), "{e}");
        }
    }

    #[test]
    fn proc_mounts_format() {
        let m = parse_mounts(
            "/dev/vda1 / ext4 rw,relatime 0 0\nnas:/x /a\\040b nfs ro 0 0\n",
            Path::new("/proc/mounts"),
        )
        .unwrap();
        assert_eq!(m[1].mount_point, "/a b");
        assert!(m[1].read_only);
        assert_eq!(m[0].major_minor, None);
        assert!(parse_mounts("/dev/vda1 /\n", Path::new("/proc/mounts")).is_err());
    }

    #[test]
    fn errno_strings_as_go() {
        assert_eq!(go_errno_string(libc::ENOENT), "no such file or directory");
        assert_eq!(go_errno_string(libc::EACCES), "permission denied");
        assert_eq!(go_errno_string(libc::EIO), "input/output error");
    }

    fn tree(mountinfo: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc/1")).unwrap();
        std::fs::write(dir.path().join("proc/1/mountinfo"), mountinfo).unwrap();
        dir
    }

    fn no_filter() -> DeviceFilter {
        DeviceFilter::new("a", "", "b", "").unwrap()
    }

    fn series<'a>(set: &'a MetricSet, name: &str, mp: &str) -> Option<(&'a Labels, f64)> {
        let f = set.families().iter().find(|f| f.name == name)?;
        let s = f
            .series
            .iter()
            .find(|s| s.labels.iter().any(|(k, v)| k == "mountpoint" && v == mp))?;
        match s.value {
            Value::Single(v) => Some((&s.labels, v)),
            _ => None,
        }
    }

    fn label<'a>(labels: &'a Labels, k: &str) -> &'a str {
        labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap()
    }

    /// A statfs that hangs on paths ending in "hang" until released.
    #[derive(Default)]
    struct Gate {
        open: Mutex<bool>,
        cv: Condvar,
        calls: Mutex<HashMap<PathBuf, usize>>,
    }

    impl Gate {
        fn stat_fn(self: &Arc<Self>) -> StatFn {
            let gate = self.clone();
            Arc::new(move |path: &Path| {
                *gate
                    .calls
                    .lock()
                    .unwrap()
                    .entry(path.to_path_buf())
                    .or_default() += 1;
                if path.ends_with("hang") {
                    let mut open = gate.open.lock().unwrap();
                    while !*open {
                        open = gate.cv.wait(open).unwrap();
                    }
                }
                Ok(FsStats {
                    blocks: 100,
                    bfree: 50,
                    bavail: 40,
                    files: 10,
                    ffree: 5,
                    bsize: 4096,
                    read_only: false,
                })
            })
        }
        fn calls(&self, path: &str) -> usize {
            self.calls
                .lock()
                .unwrap()
                .get(Path::new(path))
                .copied()
                .unwrap_or(0)
        }
        fn release(&self) {
            *self.open.lock().unwrap() = true;
            self.cv.notify_all();
        }
    }

    fn wait_for(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn hung_statfs_is_reported_stuck_and_not_retried_until_it_returns() {
        // The hung mount comes first and there is one worker: the mounts
        // behind it (network filesystems too, so on statfs threads) must
        // still be statfs'd by a replacement worker.
        let dir = tree(
            "1 0 0:50 / /hang rw - nfs4 nas:/export rw\n\
             2 0 0:51 / / rw - nfs4 nas:/root rw\n\
             3 0 0:52 / /home rw - cifs //nas/home rw\n",
        );
        let gate = Arc::new(Gate::default());
        let timeout = Duration::from_millis(200);
        let fs = Filesystem::with_stat(
            Paths {
                procfs: dir.path().join("proc"),
                ..Paths::default()
            },
            no_filter(),
            no_filter(),
            timeout,
            1,
            gate.stat_fn(),
        );
        let alive = fs.statter.alive.clone();

        for round in 1..=3 {
            let start = Instant::now();
            let mut out = MetricSet::new();
            fs.update(&mut out).unwrap();
            let took = start.elapsed();
            assert!(
                took < timeout + Duration::from_millis(500),
                "round {round} took {took:?}"
            );
            let (labels, v) = series(&out, "node_filesystem_device_error", "/hang").unwrap();
            assert_eq!(v, 1.0, "round {round}");
            assert_eq!(label(labels, "device_error"), "mountpoint timeout");
            assert!(series(&out, "node_filesystem_size_bytes", "/hang").is_none());
            assert_eq!(
                series(&out, "node_filesystem_size_bytes", "/home").map(|s| s.1),
                Some(409600.0),
                "round {round}"
            );
            assert_eq!(gate.calls("/hang"), 1, "round {round}: statfs retried");
            // Only the hung thread outlives the round.
            wait_for("round's workers to exit", || {
                alive.load(Ordering::SeqCst) == 1
            });
        }
        assert_eq!(gate.calls("/home"), 3);

        gate.release();
        wait_for("the hung thread to return", || {
            alive.load(Ordering::SeqCst) == 0
        });
        let mut out = MetricSet::new();
        fs.update(&mut out).unwrap();
        assert_eq!(gate.calls("/hang"), 2, "statfs resumes once recovered");
        let (labels, v) = series(&out, "node_filesystem_device_error", "/hang").unwrap();
        assert_eq!((v, label(labels, "device_error")), (0.0, ""));
        assert!(series(&out, "node_filesystem_size_bytes", "/hang").is_some());
    }

    /// Filesystems whose statfs reads memory are statfs'd on the
    /// collector's own thread; network and FUSE ones, and a local disk
    /// reached through an NFS mount, on statfs threads.
    #[test]
    fn in_memory_filesystems_are_statfsd_on_the_collectors_thread() {
        let dir = tree(
            "1 0 254:1 / / rw - ext4 /dev/vda1 rw\n\
             2 1 0:5 / /run rw - tmpfs tmpfs rw\n\
             3 1 0:50 / /mnt/nas rw - nfs4 nas:/export rw\n\
             4 3 254:2 / /mnt/nas/disk rw - xfs /dev/vdb rw\n\
             5 1 0:51 / /media/usb rw - fuseblk /dev/sdc1 rw\n",
        );
        let caller = std::thread::current().id();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let stat: StatFn = {
            let calls = calls.clone();
            Arc::new(move |p: &Path| {
                let here = std::thread::current().id() == caller;
                calls.lock().unwrap().push((p.display().to_string(), here));
                Ok(FsStats::default())
            })
        };
        let fs = Filesystem::with_stat(
            Paths {
                procfs: dir.path().join("proc"),
                ..Paths::default()
            },
            no_filter(),
            no_filter(),
            Duration::from_secs(1),
            1,
            stat,
        );
        fs.update(&mut MetricSet::new()).unwrap();
        let mut calls = calls.lock().unwrap().clone();
        calls.sort();
        let want = [
            ("/", true),
            ("/media/usb", false),
            ("/mnt/nas", false),
            ("/mnt/nas/disk", false),
            ("/run", true),
        ]
        .map(|(p, here)| (p.to_string(), here));
        assert_eq!(calls, want);
    }

    fn recording_stat(seen: &Arc<Mutex<Vec<PathBuf>>>) -> StatFn {
        let seen = seen.clone();
        Arc::new(move |p: &Path| {
            seen.lock().unwrap().push(p.to_path_buf());
            Ok(FsStats::default())
        })
    }

    fn mountpoints(out: &MetricSet) -> Vec<String> {
        let f = out
            .families()
            .iter()
            .find(|f| f.name == "node_filesystem_device_error")
            .unwrap();
        let mut v: Vec<String> = f
            .series
            .iter()
            .map(|s| label(&s.labels, "mountpoint").to_string())
            .collect();
        v.sort();
        v
    }

    /// Runs one update with `--path.rootfs=/host`; returns the output and
    /// the paths statfs was called on.
    fn run_with_rootfs(mountinfo: &str) -> (MetricSet, Vec<PathBuf>) {
        let dir = tree(mountinfo);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let fs = Filesystem::with_stat(
            Paths {
                procfs: dir.path().join("proc"),
                rootfs: "/host".into(),
                ..Paths::default()
            },
            no_filter(),
            no_filter(),
            Duration::from_secs(1),
            4,
            recording_stat(&seen),
        );
        let mut out = MetricSet::new();
        fs.update(&mut out).unwrap();
        let mut paths = seen.lock().unwrap().clone();
        paths.sort();
        (out, paths)
    }

    #[test]
    fn rootfs_host_view_statfs_under_rootfs() {
        let (out, paths) = run_with_rootfs(
            "1 0 254:1 / / rw - ext4 /dev/vda1 rw\n2 1 254:2 / /boot rw - ext4 /dev/vda2 rw\n",
        );
        assert_eq!(mountpoints(&out), ["/", "/boot"]);
        assert_eq!(
            paths,
            [PathBuf::from("/host/"), PathBuf::from("/host/boot")]
        );
    }

    #[test]
    fn rootfs_container_view_strips_prefix_and_skips_container_mounts() {
        let (out, paths) = run_with_rootfs(
            "1 0 0:90 / / rw - overlay overlay rw\n\
             2 1 254:1 / /host ro - ext4 /dev/vda1 rw\n\
             3 2 254:2 / /host/boot ro - ext4 /dev/vda2 rw\n\
             4 1 254:1 /var/lib/docker/containers/x/hosts /etc/hosts rw - ext4 /dev/vda1 rw\n\
             5 1 254:3 / /hostname-lookalike rw - ext4 /dev/vda3 rw\n",
        );
        assert_eq!(mountpoints(&out), ["/", "/boot"]);
        assert_eq!(
            paths,
            [PathBuf::from("/host/"), PathBuf::from("/host/boot")]
        );
        let (_, ro) = series(&out, "node_filesystem_readonly", "/boot").unwrap();
        assert_eq!(ro, 1.0);
    }

    #[test]
    fn duplicate_mounts_give_one_series_and_default_filters_apply() {
        let dir = tree(
            "1 0 254:1 / / rw - ext4 /dev/vda1 rw\n\
             2 0 254:1 / / rw,noatime - ext4 /dev/vda1 rw\n\
             3 0 0:5 / /dev/shm rw - tmpfs tmpfs rw\n\
             4 0 0:6 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n\
             5 0 0:7 / /run rw - tmpfs tmpfs rw\n\
             6 0 7:0 / /snap/core/1 ro - squashfs /dev/loop0 ro\n\
             7 0 0:8 / /var/lib/docker/overlay2/x/merged rw - overlay overlay rw\n",
        );
        let fs = Filesystem::with_stat(
            Paths {
                procfs: dir.path().join("proc"),
                ..Paths::default()
            },
            DeviceFilter::new("a", DEFAULT_MOUNT_POINTS_EXCLUDE, "b", "").unwrap(),
            DeviceFilter::new("a", DEFAULT_FS_TYPES_EXCLUDE, "b", "").unwrap(),
            Duration::from_secs(1),
            4,
            recording_stat(&Arc::new(Mutex::new(Vec::new()))),
        );
        let mut out = MetricSet::new();
        fs.update(&mut out).unwrap();
        assert_eq!(mountpoints(&out), ["/", "/run"]);
        // A duplicate series would fail the whole scrape.
        out.finish().unwrap();
    }

    /// The collector over `<root>/proc`, reporting only `mount_point`.
    fn one_mount_point(root: &Path, mount_point: &str, stat: StatFn) -> Filesystem {
        Filesystem::with_stat(
            Paths {
                procfs: root.join("proc"),
                ..Paths::default()
            },
            DeviceFilter::new("a", "", "b", &format!("^{}$", regex::escape(mount_point))).unwrap(),
            no_filter(),
            Duration::from_secs(1),
            1,
            stat,
        )
    }

    /// In another mount namespace than PID 1's (systemd's ProtectSystem=,
    /// where every mount is read-only for the service), statfs' flags are
    /// not PID 1's: the table is read on every scrape, and its "ro" alone
    /// says read-only.
    /// A tmpfs at `<dir>/disk` mounted by a shell in a mount namespace of
    /// its own, whose /proc entry `<dir>/<proc>/1` and `self` point at;
    /// with the mount point and the shell.
    fn tmpfs_in_another_namespace(
        proc: &str,
    ) -> (tempfile::TempDir, String, crate::testutil::MountNamespace) {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("disk");
        std::fs::create_dir(&mnt).unwrap();
        let mut ns = crate::testutil::MountNamespace::start(
            r#"echo up; read x; mount -t tmpfs -o size=1m other-ns "$1" && echo mounted; read x"#,
            &mnt,
            &dir.path().join(proc),
        );
        ns.step("mounted");
        (dir, mnt.to_str().unwrap().to_string(), ns)
    }

    /// A statfs that says every filesystem is read-only.
    fn statfs_read_only() -> StatFn {
        Arc::new(|_: &Path| {
            Ok(FsStats {
                read_only: true,
                ..FsStats::default()
            })
        })
    }

    /// One scrape: `mp`'s node_filesystem_readonly, and the table reads so far.
    fn readonly_and_table_reads(fs: &Filesystem, mp: &str) -> (f64, usize) {
        let mut out = MetricSet::new();
        fs.update(&mut out).unwrap();
        let (_, ro) = series(&out, "node_filesystem_readonly", mp).unwrap();
        (ro, fs.table_reads.load(Ordering::Relaxed))
    }

    #[test]
    fn outside_pid1_mount_namespace_the_table_is_read_every_scrape() {
        let (dir, mp, _ns) = tmpfs_in_another_namespace("proc");
        // "self" is this test process, in the machine's namespace.
        std::fs::remove_file(dir.path().join("proc/self")).unwrap();
        std::os::unix::fs::symlink("/proc/self", dir.path().join("proc/self")).unwrap();
        let fs = one_mount_point(dir.path(), &mp, statfs_read_only());
        for reads in 1..=2 {
            assert_eq!(
                readonly_and_table_reads(&fs, &mp),
                (0.0, reads),
                "statfs of another namespace taken for PID 1's, or the table not read"
            );
        }
    }

    /// Where PID 1's namespace link may not be looked at, an identical
    /// table says the exporter shares its namespace (the table is watched,
    /// statfs' flags count); another namespace's table is read every scrape.
    #[test]
    fn without_namespace_links_an_identical_table_tells_the_namespace() {
        let (dir, mp, _ns) = tmpfs_in_another_namespace("ns-proc");
        let theirs = std::fs::read_link(dir.path().join("ns-proc/1"))
            .unwrap()
            .join("mountinfo");
        for (ours, shared) in [
            (theirs.clone(), true),
            ("/proc/self/mountinfo".into(), false),
        ] {
            // A procfs with only the two tables: no ns/mnt links.
            let root = tempfile::tempdir().unwrap();
            for (pid, table) in [("1", &theirs), ("self", &ours)] {
                let pid_dir = root.path().join("proc").join(pid);
                std::fs::create_dir_all(&pid_dir).unwrap();
                std::os::unix::fs::symlink(table, pid_dir.join("mountinfo")).unwrap();
            }
            let fs = one_mount_point(root.path(), &mp, statfs_read_only());
            for scrape in 1..=2 {
                // Watched: read once, statfs' flag counts; else read
                // every time, the table's "rw" counts.
                let want = if shared { (1.0, 1) } else { (0.0, scrape) };
                assert_eq!(readonly_and_table_reads(&fs, &mp), want, "scrape {scrape}");
            }
        }
    }

    #[test]
    fn a_watched_mount_table_is_read_again_only_after_its_namespace_changed() {
        // A shell in a mount namespace of its own mounts, remounts and
        // unmounts a tmpfs, one step per line we send; its mountinfo
        // (through a fake procfs whose "1" is that process) is a real
        // procfs file, so the collector watches it.
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("disk");
        std::fs::create_dir(&mnt).unwrap();
        let mut ns = crate::testutil::MountNamespace::start(
            r#"echo up; read x; mount -t tmpfs -o size=1m watched-disk "$1" && echo mounted; read x
               mount -o remount,ro "$1" && echo ro; read x; umount "$1" && echo gone; read x"#,
            &mnt,
            &dir.path().join("proc"),
        );
        let mp = mnt.to_str().unwrap().to_string();
        // statfs' ST_RDONLY, as when a superblock turns read-only on an
        // error: no namespace event, no new table.
        let sb_ro = Arc::new(AtomicBool::new(false));
        let fs = one_mount_point(dir.path(), &mp, {
            let sb_ro = sb_ro.clone();
            Arc::new(move |_: &Path| {
                Ok(FsStats {
                    read_only: sb_ro.load(Ordering::Relaxed),
                    ..FsStats::default()
                })
            })
        });
        let scrape = || {
            let mut out = MetricSet::new();
            fs.update(&mut out).unwrap();
            let ro = series(&out, "node_filesystem_readonly", &mp).map(|(labels, v)| {
                assert_eq!(label(labels, "device"), "watched-disk");
                assert_eq!(label(labels, "fstype"), "tmpfs");
                v
            });
            (ro, fs.table_reads.load(Ordering::Relaxed))
        };
        assert_eq!(scrape(), (None, 1));
        assert_eq!(scrape(), (None, 1), "read again without a change");
        ns.step("mounted");
        assert_eq!(scrape(), (Some(0.0), 2));
        assert_eq!(scrape(), (Some(0.0), 2), "read again without a change");
        sb_ro.store(true, Ordering::Relaxed);
        assert_eq!(scrape(), (Some(1.0), 2), "superblock read-only");
        sb_ro.store(false, Ordering::Relaxed);
        ns.step("ro");
        assert_eq!(scrape(), (Some(1.0), 3));
        ns.step("gone");
        assert_eq!(scrape(), (None, 4));
    }
}
