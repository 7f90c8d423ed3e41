//! One watcher per file identity (device, inode): reads what is appended in
//! large chunks with pread, splits lines, and sends entries with acks into
//! the job's bounded channel (awaiting there is the backpressure).
//!
//! It follows the file, not the path: when the path is renamed away or
//! deleted it reads the old file to its end, tells the job to pick up the
//! new file, and keeps the old one open until everything read from it is
//! acknowledged.
//!
//! A file that shrinks below what it held (logrotate's `copytruncate`, or
//! any truncation) starts a new *content* of the same file. The content
//! that was cut off lives on in a copy, if anyone made one: the watcher
//! finds it (`copies`), holds it open and reads it from where it had got
//! to, before the file's new content, so the stream stays in order. It
//! keeps watching the file while it waits (for Loki, for the copy, for the
//! file rotated away before it), so contents truncated one after another
//! during an outage are each found and queued while their copies exist.
//! What cannot be found is counted and logged, never silently skipped.
//! Idle files are closed to stay within the descriptor budget and reopened
//! when they grow.

use std::collections::VecDeque;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::copies::{self, Head};
use super::encoding::Codec;
use super::identity::{fnv1a, read_head, FileIdentity, FINGERPRINT_BYTES};
use super::lines::{LineSplitter, Piece};
use super::metrics::ActiveFile;
use super::TailerSettings;
use crate::ack::Progress;
use crate::entry::{Entry, Labels};
use crate::positions::Positions;

/// Bytes of a read chunk turned into entries before they are sent.
const EMIT_SLICE: usize = 32 * 1024;

/// How long a copy that exists but is not complete yet (still being
/// written, or compressed) is waited for.
const INCOMPLETE_COPY_WAIT: Duration = Duration::from_secs(10);

/// What the job hears from its watchers.
#[derive(Debug)]
pub enum TailerEvent {
    /// The path now names another file (or none): look for the new one now.
    Rotated,
    /// The watcher is finished with this file (rotated away or deleted, and
    /// everything read is acknowledged): `offset` is where it stopped, so
    /// the file is never read twice if it shows up under another name.
    Ended {
        key: (u64, u64),
        identity: FileIdentity,
        offset: u64,
    },
}

/// Copies of truncated files that a job's watchers have taken (device,
/// inode -> where and what): never read again as files of their own.
pub type Claims = Arc<Mutex<std::collections::HashMap<(u64, u64), copies::Claim>>>;

/// Says whether a new file's first bytes are those of content another
/// watcher of the job holds (the file is then probably its copy).
pub type CopyCheck = Arc<dyn Fn(&[u8], (u64, u64), &std::path::Path) -> bool + Send + Sync>;

/// What `/targets` and the job see of a watched file.
#[derive(Debug)]
pub struct TailerStatus {
    pub path: String,
    pub dev_ino: (u64, u64),
    pub read_offset: AtomicU64,
    pub size: AtomicU64,
    /// The watcher holds the file open: a rename from now on cannot take
    /// its lines away.
    pub opened: std::sync::atomic::AtomicBool,
    /// The first bytes (up to 1 KiB) of the file's current content as the
    /// watcher knows them: a copy of that content is recognised by them
    /// (copytruncate).
    pub live_head: Mutex<Vec<u8>>,
    /// The file was deleted (no name left) while the path's saved position
    /// was its: after a restart nobody could find it again, so that
    /// position is of no use to it.
    pub unlinked: std::sync::atomic::AtomicBool,
    progress: Mutex<Arc<Progress>>,
    /// The first bytes (up to 1 KiB) of every content of the file not yet
    /// finished with (the live one, and those cut off by truncations whose
    /// copies are looked for or read): a new file starting with one of
    /// them is probably such a copy.
    heads: Mutex<Vec<Vec<u8>>>,
    /// Set when the watcher is finished with the file.
    pub done: tokio::sync::watch::Sender<bool>,
}

impl TailerStatus {
    pub fn committed(&self) -> u64 {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .committed()
    }
    /// Every line read so far was acknowledged (or dropped for good).
    fn acknowledged(&self) -> bool {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .in_flight()
            == 0
    }
    fn set_progress(&self, p: Arc<Progress>) {
        *self.progress.lock().unwrap_or_else(|e| e.into_inner()) = p;
    }
    /// Whether `head` (a new file's first bytes) and one of the heads of
    /// this file's contents agree over the shorter one's length.
    pub fn shares_head(&self, head: &[u8]) -> bool {
        let heads = self.heads.lock().unwrap_or_else(|e| e.into_inner());
        heads.iter().any(|h| {
            let n = h.len().min(head.len());
            n > 0 && h[..n] == head[..n]
        })
    }
}

pub struct Tailer {
    pub path: PathBuf,
    pub key: String,
    /// Shared by every entry read (see [`Labels`]).
    pub labels: Labels,
    pub dev_ino: (u64, u64),
    pub start: u64,
    /// The file was truncated while we were not running: the content we
    /// had read up to `start` is looked for in a copy with this head first.
    pub copy_first: Option<Head>,
    /// With `copy_first`: the contents queued behind it when we stopped.
    pub pending: Vec<crate::positions::PendingContent>,
    /// Read from `start`: the first bytes the file had when that was
    /// decided. Other ones (or a file shorter than `start`) when it is
    /// opened mean it was truncated in between: as with `copy_first`.
    pub expect_head: Option<Head>,
    /// Where copies of this file are looked for.
    pub copy_dirs: Vec<PathBuf>,
    pub claims: Claims,
    /// A new file read from its start: before its first bytes are sent,
    /// they are checked against the other watchers' content (a copy being
    /// made by copytruncate is handed back to the job, not read).
    pub check_copy: Option<CopyCheck>,
    pub settings: Arc<TailerSettings>,
    pub positions: Arc<Positions>,
    pub fd_budget: Arc<Semaphore>,
    /// Chunks of this job being read or sent at once.
    pub read_budget: Arc<Semaphore>,
    pub out: mpsc::Sender<Entry>,
    pub events: mpsc::UnboundedSender<TailerEvent>,
    pub status: Arc<TailerStatus>,
    /// The watcher of the file rotated away from this path, to finish first.
    pub after: Option<Arc<TailerStatus>>,
    /// The file was rotated away already: read it to its end, then stop.
    pub draining: bool,
}

impl Tailer {
    pub fn status(path: &str, dev_ino: (u64, u64), start: u64) -> Arc<TailerStatus> {
        Arc::new(TailerStatus {
            path: path.to_string(),
            dev_ino,
            read_offset: AtomicU64::new(start),
            size: AtomicU64::new(0),
            opened: Default::default(),
            live_head: Mutex::default(),
            unlinked: Default::default(),
            progress: Mutex::new(Progress::new(start)),
            heads: Mutex::new(Vec::new()),
            done: tokio::sync::watch::channel(false).0,
        })
    }

    pub async fn run(self) {
        let metrics = super::metrics::file(&self.key);
        if let Some(mut state) = Open::new(&self).await {
            // Opened (so a rename cannot take it away); a file rotated away
            // from the same path is finished first, so the stream's entries
            // stay in order. Truncations meanwhile are still seen.
            if let Some(before) = &self.after {
                let mut done = before.done.subscribe();
                loop {
                    tokio::select! {
                        _ = done.wait_for(|d| *d) => break,
                        _ = tokio::time::sleep(self.settings.poll_interval) => {
                            state.watch(&self, &metrics);
                            state.notice_rotation(&self);
                            state.track_if_before_unlinked(&self, before);
                        }
                    }
                }
                // The path has one saved position: it stays the rotated
                // file's until Loki has its lines, or a kill now would
                // lose them.
                while !before.acknowledged() {
                    tokio::time::sleep(self.settings.poll_interval).await;
                    state.watch(&self, &metrics);
                    state.notice_rotation(&self);
                    state.track_if_before_unlinked(&self, before);
                }
            }
            if !state.tracked {
                state.track(&self);
            }
            state.run(&self, &metrics).await;
            if state.handed_back {
                self.positions.remove(&self.key);
            } else {
                self.positions.untrack(&self.key, &state.progress);
            }
        }
        self.status.done.send_replace(true);
    }
}

/// Where the bytes of one content of the file come from.
enum Source {
    /// The file we opened (the live file, or a rotated one being drained).
    Live,
    /// A copy of a content the file held before a truncation.
    Copy(copies::Copy),
    /// Truncated; its copy looked for since then.
    Seeking { since: Instant },
    /// Nothing more to read of it (a compressed copy read whole, or a
    /// copy that was never found).
    Done,
}

/// What the first content asks for next.
enum Reading {
    Nothing,
    Copy,
    Done,
    Live,
}

/// One content of the file: what it held between two truncations.
struct Content {
    source: Source,
    /// Its first bytes (up to 1 KiB), as far as known: how its copy is found.
    head: Vec<u8>,
    /// After a restart, their length and hash only (saved positions).
    saved_head: Option<Head>,
    /// The largest size the file was seen at with this content.
    seen_len: u64,
}

struct Open {
    file: Option<(std::fs::File, OwnedSemaphorePermit)>,
    /// The contents still to read, oldest first; the first is being read,
    /// the last is the file's own (live) while it has not rotated away.
    contents: VecDeque<Content>,
    identity: FileIdentity,
    offset: u64,
    progress: Arc<Progress>,
    splitter: LineSplitter,
    /// How the bytes are cut into lines and decoded (`encoding`); `None`:
    /// UTF-8 lines ending at the `\n` byte.
    codec: Option<Codec>,
    /// When the partial line last grew.
    partial_since: Instant,
    last_data: Instant,
    /// When the file was seen rotated away (or opened already rotated),
    /// or later seen changed: its quiet time counts from then.
    rotated_at: Instant,
    /// The rotated file's modification time and size at the last look:
    /// compared with the next look only, never with the clock (an mtime
    /// in the future, from clock skew or NFS, must not hold it open).
    rotated_stat: Option<(i64, i64, u64)>,
    /// When the file was last looked at ([`Open::watch`]).
    last_watch: Instant,
    /// The wait before the live file is polled again: `poll_interval`
    /// after a change, doubling while it stays idle up to
    /// `max_poll_interval` (promtail's file_watch_config).
    idle_poll: Duration,
    gzip: bool,
    gzip_done: bool,
    buf: Vec<u8>,
    /// The job's channel is closed.
    closed: bool,
    /// Rotated away (or deleted): no new content comes to this file.
    rotated: bool,
    /// The live file's modification time at the last look.
    live_mtime: (i64, i64),
    /// Its first bytes are another watcher's content: handed back to the
    /// job unread (probably a copy, which that watcher claims).
    handed_back: bool,
    /// The file's own path when `path` is a symlink to it.
    real_path: Option<PathBuf>,
    /// Its progress is the path's saved position (not while a file rotated
    /// away from the path is still being delivered).
    tracked: bool,
}

enum PathState {
    Same { len: u64 },
    Replaced,
}

/// How [`Open::watch_live`] looks at the file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Look {
    /// An fstat only while size and mtime are as at the last look (an
    /// idle file at every poll).
    Quick,
    /// Its first bytes compared too: after a read, whose bytes must be
    /// the content's, and before the file is taken as rotated away.
    Full,
}

impl Open {
    async fn new(t: &Tailer) -> Option<Open> {
        let permit = Arc::clone(&t.fd_budget).acquire_owned().await.ok()?;
        let opened = std::fs::File::open(&t.path)
            .and_then(|f| Ok((f.metadata()?, f)))
            .ok()
            .filter(|(meta, _)| (meta.dev(), meta.ino()) == t.dev_ino)
            .map(|(meta, f)| (f, meta));
        let (file, meta) = match opened {
            Some(found) => found,
            None => {
                // Rotated away between discovery and now: still ours to
                // read (found in its directory by inode), and the path's
                // new file is for the next sync.
                let _ = t.events.send(TailerEvent::Rotated);
                let Some((_, f)) = super::find_inode(&t.path, t.dev_ino) else {
                    tracing::warn!(path = %t.path.display(), "file gone before it could be opened");
                    return None;
                };
                let meta = f.metadata().ok()?;
                (f, meta)
            }
        };
        // Compressed: as the job's decompression says, else by name.
        let gzip =
            t.settings.decompression.is_some() || t.path.extension().is_some_and(|e| e == "gz");
        // What lies before the start was read before (saved position).
        let mut head = vec![0u8; FINGERPRINT_BYTES];
        let n = read_head(&file, &mut head).unwrap_or(0);
        head.truncate(n);
        let codec = t.settings.encoding.map(|e| e.codec(&head));
        let mut contents = VecDeque::new();
        let unchanged = |h: &Head| copies::bytes_start_with(&head, *h) && meta.len() >= t.start;
        let truncated_since = t.expect_head.filter(|h| !gzip && !unchanged(h));
        if truncated_since.is_some() {
            tracing::info!(path = %t.path.display(), offset = t.start, size = meta.len(), "file truncated between finding and opening it: looking for its copy first");
        }
        let identity = if let Some(h) = t.copy_first.or(truncated_since) {
            // The content we had read is gone from the file: its copy
            // (found by the saved fingerprint) is read first.
            contents.push_back(Content {
                source: Source::Seeking {
                    since: Instant::now(),
                },
                head: Vec::new(),
                saved_head: Some(h),
                seen_len: t.start,
            });
            // Contents truncated after it, not read yet, have copies too;
            // the last may still be the file's own.
            for (i, p) in t.pending.iter().enumerate() {
                let saved = Head {
                    len: usize::try_from(p.fp_len).unwrap_or(usize::MAX),
                    hash: p.fp,
                };
                let still_live = i + 1 == t.pending.len()
                    && head.len() >= saved.len
                    && copies::bytes_start_with(&head, saved);
                if still_live {
                    break;
                }
                contents.push_back(Content {
                    source: Source::Seeking {
                        since: Instant::now(),
                    },
                    head: Vec::new(),
                    saved_head: Some(saved),
                    seen_len: p.len,
                });
            }
            FileIdentity {
                dev: t.dev_ino.0,
                ino: t.dev_ino.1,
                fp_len: h.len as u64,
                fp: h.hash,
            }
        } else {
            FileIdentity::of(&file).ok()?
        };
        // As long as the file was both before and after its head was read
        // (see `watch_live`).
        let seen_len = meta.len().min(file.metadata().map_or(0, |m| m.len()));
        contents.push_back(Content {
            source: Source::Live,
            head,
            saved_head: None,
            seen_len: if gzip { 0 } else { seen_len },
        });
        // A saved position inside a UTF-16 code unit (promtail cut lines of
        // UTF-16LE files after the 0x0A byte, before the 0x00 completing the
        // newline): the unit's start is where the next line begins.
        let width = codec.map_or(1, |c| c.unit.width()) as u64;
        let start = t.start.next_multiple_of(width);
        let progress = Progress::new(start);
        t.status.set_progress(Arc::clone(&progress));
        tracing::debug!(path = %t.path.display(), start = t.start, dev_ino = ?t.dev_ino, copy_first = t.copy_first.is_some(), "tailing file");
        let open = Open {
            file: Some((file, permit)),
            contents,
            identity,
            offset: start,
            progress,
            splitter: {
                let mut s =
                    LineSplitter::new(t.settings.max_line_size, t.settings.max_line_size_truncate);
                if let Some(c) = codec {
                    s.set_unit(c.unit);
                }
                s
            },
            codec,
            partial_since: Instant::now(),
            last_data: Instant::now(),
            rotated_at: Instant::now(),
            rotated_stat: None,
            last_watch: Instant::now(),
            idle_poll: t.settings.poll_interval,
            gzip,
            gzip_done: false,
            buf: Vec::new(),
            closed: false,
            rotated: t.draining,
            live_mtime: (0, 0),
            handed_back: false,
            real_path: std::fs::canonicalize(&t.path).ok(),
            tracked: false,
        };
        open.publish_heads(t);
        t.status.opened.store(true, Ordering::Relaxed);
        Some(open)
    }

    async fn run(&mut self, t: &Tailer, m: &ActiveFile) {
        loop {
            if self.closed {
                // The job's channel is gone (a reload): stop here; what was
                // not delivered is read again by the next watcher of this
                // file, from the saved position.
                tracing::debug!(path = %t.path.display(), "output closed, tailer stops");
                return;
            }
            self.watch(t, m);
            let now_reading = match self.contents.front().map(|c| &c.source) {
                Some(Source::Seeking { .. }) => Reading::Nothing,
                Some(Source::Copy(_)) => Reading::Copy,
                Some(Source::Done) => Reading::Done,
                Some(Source::Live) | None => Reading::Live,
            };
            match now_reading {
                Reading::Nothing => {}
                Reading::Copy if self.read_copy(t, m).await > 0 => continue,
                Reading::Copy | Reading::Done => {
                    // The copy is read to its end: its last line is whole.
                    if self.splitter.has_partial() {
                        self.flush_partial(t, m, true).await;
                    }
                    self.next_content(t, m).await;
                    continue;
                }
                Reading::Live => {
                    if self.read_live(t, m).await {
                        break;
                    }
                    if self.handed_back {
                        tracing::debug!(path = %t.path.display(), "new file starts like content being read: probably its copy; left to the job");
                        return;
                    }
                    continue;
                }
            }
            tokio::time::sleep(t.settings.poll_interval).await;
        }
        tracing::debug!(path = %t.path.display(), offset = self.offset, "done with file");
        let _ = t.events.send(TailerEvent::Ended {
            key: t.dev_ino,
            identity: self.identity.clone(),
            offset: self.offset,
        });
    }

    /// One round of reading the file's own (live) content; true when the
    /// watcher is finished with the file.
    async fn read_live(&mut self, t: &Tailer, m: &ActiveFile) -> bool {
        let read = if self.gzip {
            if self.gzip_done {
                0
            } else {
                self.read_gzip(t, m).await
            }
        } else {
            self.read_available(t, m).await
        };
        if read > 0 {
            self.last_data = Instant::now();
            self.idle_poll = t.settings.poll_interval;
            return false;
        }
        // At the end of what is there. A rotated file's last line is
        // flushed below, once its writer has moved on: a writer may
        // still be completing it (the newline of a line written in
        // two parts).
        if !self.rotated
            && self.splitter.has_partial()
            && self.partial_since.elapsed() >= t.settings.flush_timeout
        {
            self.flush_partial(t, m, false).await;
        }
        if self.gzip {
            // Compressed files are read once. The watcher stays (with the
            // file closed) while the file exists, so it is not found and
            // read again.
            if self.gzip_done && self.progress.in_flight() == 0 {
                self.file = None;
                if matches!(self.path_state(t), PathState::Replaced) {
                    return true;
                }
            }
        } else if self.rotated {
            // Late writes to the old file are still read above; stop once
            // the writer has moved on and all is acked.
            if self.quiet_since_rotation() >= t.settings.rotate_wait {
                if self.splitter.has_partial() {
                    self.flush_partial(t, m, true).await;
                    return false;
                }
                if self.progress.in_flight() == 0 {
                    return true;
                }
            }
        } else {
            match self.path_state(t) {
                PathState::Same { len } => {
                    m.0.file_bytes.store(len, Ordering::Relaxed);
                    t.status.size.store(len, Ordering::Relaxed);
                    if self.file.is_none() && len > self.offset {
                        return !self.reopen(t).await;
                    }
                    self.maybe_close_idle(t);
                    // Nothing new: poll less often, up to the max.
                    m.0.idle_polls.fetch_add(1, Ordering::Relaxed);
                    let wait = self.idle_poll;
                    self.idle_poll = (wait * 2).min(t.settings.max_poll_interval.max(wait));
                    tokio::time::sleep(wait).await;
                    return false;
                }
                PathState::Replaced => {
                    if self.file.is_none() && !self.reopen_moved(t).await {
                        // Deleted (or moved out of reach) while closed,
                        // after all of it was read and acknowledged.
                        return true;
                    }
                    self.rotation_seen(t);
                    return false;
                }
            }
        }
        tokio::time::sleep(t.settings.poll_interval).await;
        false
    }

    /// The path names another file now: ours is read to its end, until
    /// its writer has moved on.
    fn rotation_seen(&mut self, t: &Tailer) {
        tracing::debug!(path = %t.path.display(), offset = self.offset, "file rotated away or deleted: reading it to its end");
        // A last look at the content: copytruncate then a rename or delete
        // between two looks leaves the file shorter than what we read, and
        // the lines written before the truncation are in the copy only.
        // Nothing truncates the file under its old path once it is gone,
        // so the file is not watched for truncations after this.
        if !self.gzip {
            self.watch_live(t, Look::Full);
        }
        self.rotated = true;
        // The writer may still append to the old file until it reopens:
        // its quiet time counts from the rotation, not from the last data
        // before it.
        self.rotated_at = Instant::now();
        self.rotated_stat = self.stat();
        self.last_data = Instant::now();
        let _ = t.events.send(TailerEvent::Rotated);
    }

    /// While waiting behind the file rotated away before it: a rotation of
    /// this one is noticed now, so its quiet time is over by the time it
    /// is read (rotations in quick succession do not add up their waits).
    fn notice_rotation(&mut self, t: &Tailer) {
        if !self.rotated
            && !self.gzip
            && self.file.is_some()
            && matches!(self.path_state(t), PathState::Replaced)
        {
            self.rotation_seen(t);
        }
    }

    /// The path's saved position becomes this file's.
    fn track(&mut self, t: &Tailer) {
        // The content read from `start` may have grown from empty while
        // this file waited behind the one rotated before it: its
        // fingerprint is what it is known by (its copy is found by it
        // after a restart), not the empty one it was opened with.
        if let Some(first) = self.contents.front() {
            if first.saved_head.is_none() && first.head.len() as u64 > self.identity.fp_len {
                self.identity.fp_len = first.head.len() as u64;
                self.identity.fp = fnv1a(&first.head);
            }
        }
        t.positions
            .track(&t.key, self.identity.clone(), Arc::clone(&self.progress));
        self.tracked = true;
        self.publish_heads(t);
    }

    /// While waiting behind the file rotated away before it: once that
    /// one is deleted, a kill loses what it has not delivered whatever
    /// positions say, and the path's one saved position is this file's
    /// (still not read, so from where it starts): were it renamed away
    /// too while we are not running, the restarted shipper finds it.
    fn track_if_before_unlinked(&mut self, t: &Tailer, before: &TailerStatus) {
        if !self.tracked && before.unlinked.load(Ordering::Relaxed) {
            tracing::debug!(path = %t.path.display(), "the file rotated away before this one was deleted: the saved position is this one's");
            self.track(t);
        }
    }

    /// How long nothing was written to the rotated file: since the
    /// rotation was seen, or since it was last seen changed.
    fn quiet_since_rotation(&mut self) -> Duration {
        let stat = self.stat();
        if stat != self.rotated_stat {
            self.rotated_stat = stat;
            self.rotated_at = Instant::now();
        }
        self.rotated_at.elapsed()
    }

    /// The open file's modification time and size.
    fn stat(&self) -> Option<(i64, i64, u64)> {
        let meta = self.file.as_ref()?.0.metadata().ok()?;
        Some((meta.mtime(), meta.mtime_nsec(), meta.len()))
    }

    /// Looks at the file and the contents waiting for their copies: a
    /// truncation starts a new content, a copy found is held open, a copy
    /// not found in time is counted as lost. Cheap (an fstat and a pread
    /// of at most 1 KiB) unless a copy is being looked for; called at
    /// every poll, also while waiting for Loki.
    fn watch(&mut self, t: &Tailer, m: &ActiveFile) {
        self.last_watch = Instant::now();
        if !self.rotated && !self.gzip {
            self.watch_live(t, Look::Quick);
        }
        // Only while it holds the path's position: one waiting behind an
        // older rotated file leaves the position to that one.
        if self.rotated
            && self.tracked
            && !t.status.unlinked.load(Ordering::Relaxed)
            && self
                .file
                .as_ref()
                .and_then(|(f, _)| f.metadata().ok())
                .is_some_and(|m| m.nlink() == 0)
        {
            t.status.unlinked.store(true, Ordering::Relaxed);
        }
        if self
            .contents
            .iter()
            .any(|c| matches!(c.source, Source::Seeking { .. }))
        {
            self.seek_copies(t, m);
        }
    }

    fn watch_live(&mut self, t: &Tailer, look: Look) {
        let Some((file, _)) = &self.file else {
            return;
        };
        let Ok(meta) = file.metadata() else { return };
        let len = meta.len();
        let mtime = (meta.mtime(), meta.mtime_nsec());
        let unchanged = std::mem::replace(&mut self.live_mtime, mtime) == mtime;
        let reading_live = self.contents.len() == 1;
        let offset = self.offset;
        let Some(live) = self.contents.back_mut() else {
            return;
        };
        if reading_live {
            live.seen_len = live.seen_len.max(offset);
        }
        let want = FINGERPRINT_BYTES.min(usize::try_from(len).unwrap_or(usize::MAX));
        let known = live.head.len();
        // Not written since the last look (an idle file): an fstat is all.
        // The size alone would not do: a writer at a steady pace refills a
        // truncated file to the size it had.
        if look == Look::Quick && unchanged && len == live.seen_len && known == want {
            return;
        }
        let mut buf = [0u8; FINGERPRINT_BYTES];
        let n = read_head(file, &mut buf[..want.max(known)]).unwrap_or(0);
        let head = &buf[..n];
        let same_head = n >= known && head[..known] == live.head[..];
        if len < live.seen_len || !same_head {
            // The size taken before the head may be the old content's (a
            // truncation in between): the new one is known to be as long
            // as both looks say, no longer, or a copy of it later would be
            // waited for as incomplete, and a refill mistaken for another
            // truncation.
            let new_len = file.metadata().map_or(0, |m| m.len()).min(len);
            let head = head.to_vec();
            self.truncated(t, len);
            // The new content's first bytes, as far as they are there.
            if let Some(new) = self.contents.back_mut() {
                new.head = head;
                new.seen_len = new_len;
            }
            self.publish_heads(t);
            return;
        }
        live.seen_len = live.seen_len.max(len);
        if head.len() > known {
            live.head = head.to_vec();
            if reading_live && self.tracked {
                // The fingerprint grows with a short file.
                self.identity = FileIdentity {
                    dev: t.dev_ino.0,
                    ino: t.dev_ino.1,
                    fp_len: self.contents[0].head.len() as u64,
                    fp: fnv1a(&self.contents[0].head),
                };
                t.positions
                    .track(&t.key, self.identity.clone(), Arc::clone(&self.progress));
            }
            self.publish_heads(t);
        }
    }

    /// The file shrank below what it held (or its first bytes changed):
    /// what it held is now looked for in a copy, and its new content is
    /// read after that.
    fn truncated(&mut self, t: &Tailer, len: u64) {
        let reading_live = self.contents.len() == 1;
        if let Some(live) = self.contents.back_mut() {
            tracing::info!(
                path = %t.path.display(),
                offset = if reading_live { self.offset } else { 0 },
                size_seen = live.seen_len,
                size = len,
                "file truncated: looking for its copy (copytruncate) before reading its new content"
            );
            live.source = Source::Seeking {
                since: Instant::now(),
            };
        }
        self.contents.push_back(Content {
            source: Source::Live,
            head: Vec::new(),
            saved_head: None,
            seen_len: 0,
        });
    }

    /// Looks for the copies of the contents cut off by truncations.
    fn seek_copies(&mut self, t: &Tailer, m: &ActiveFile) {
        let mut skip = copies::skip_claimed(&t.claims.lock().unwrap_or_else(|e| e.into_inner()));
        skip.insert(t.dev_ino, None);
        // Nor the file the path names now, when that is another (ours was
        // rotated away): copytruncate leaves the copy elsewhere, and a new
        // file often starts with the same bytes as a short head (the start
        // of a line, a timestamp's first digits), so it would be taken for
        // the copy, read as one, and then never read as a file of its own.
        if let Ok(m) = std::fs::metadata(&t.key) {
            skip.insert((m.dev(), m.ino()), None);
        }
        let mut lost_first = false;
        let mut i = 0;
        while i < self.contents.len() {
            let c = &mut self.contents[i];
            let Source::Seeking { since } = c.source else {
                i += 1;
                continue;
            };
            let read = if i == 0 { self.offset } else { 0 };
            let need = c.seen_len.max(read);
            let head = match c.saved_head {
                // After a restart: the saved fingerprint is all we know.
                Some(saved) if c.head.is_empty() => saved,
                _ => Head::of(&c.head),
            };
            let waited = since.elapsed();
            match copies::find(&t.copy_dirs, head, need, &skip) {
                copies::Found::Copy(copy) => {
                    tracing::info!(path = %t.path.display(), copy = %copy.path.display(), from = read, "reading the rest of a truncated file's content from its copy");
                    skip.insert(copy.dev_ino, Some(head));
                    t.claims.lock().unwrap_or_else(|e| e.into_inner()).insert(
                        copy.dev_ino,
                        copies::Claim {
                            path: copy.path.clone(),
                            head,
                        },
                    );
                    c.source = Source::Copy(copy);
                    i += 1;
                }
                copies::Found::Incomplete if waited < INCOMPLETE_COPY_WAIT => i += 1,
                copies::Found::Nothing if waited < t.settings.poll_interval * 4 => i += 1,
                _ => {
                    let lost = need.saturating_sub(read);
                    m.0.truncated_unread_bytes
                        .fetch_add(lost, Ordering::Relaxed);
                    // Even with all we saw read, what was written after
                    // our last look and before the copy is in the copy only.
                    tracing::warn!(
                        path = %t.path.display(),
                        from = read,
                        to = need,
                        lost_bytes = lost,
                        waited_ms = waited.as_millis() as u64,
                        candidates = %copies::describe(&t.copy_dirs, head, &skip),
                        "file truncated and no copy of it found: the bytes from `from` to `to` are lost, and any written after our last look"
                    );
                    if i == 0 {
                        lost_first = true;
                        i += 1;
                    } else {
                        self.contents.remove(i);
                    }
                }
            }
        }
        if lost_first {
            // Nothing more of that content can be read: on to the next.
            self.contents[0].source = Source::Done;
            // Its last line lost its end with it: the start alone is not
            // shipped as a line of its own.
            let fragment = self.splitter.partial_len();
            if fragment > 0 {
                self.splitter.reset();
                m.0.truncated_unread_bytes
                    .fetch_add(fragment, Ordering::Relaxed);
                tracing::warn!(path = %t.path.display(), bytes = fragment, "the start of a line whose end was truncated away is dropped");
            }
        }
        self.publish_heads(t);
    }

    /// Publishes the heads of the contents not finished with (the job holds
    /// back a new file that starts like one of them: probably its copy).
    /// Also saves the heads of the contents queued behind the first with
    /// its position, so their copies are found after a restart.
    fn publish_heads(&self, t: &Tailer) {
        if let Some(live) = self.contents.back() {
            let mut known = t.status.live_head.lock().unwrap_or_else(|e| e.into_inner());
            known.clone_from(&live.head);
        }
        let mut heads = t.status.heads.lock().unwrap_or_else(|e| e.into_inner());
        heads.clear();
        heads.extend(
            self.contents
                .iter()
                .filter(|c| !c.head.is_empty())
                .map(|c| c.head.clone()),
        );
        let pending = self
            .contents
            .iter()
            .skip(1)
            .filter_map(|c| {
                let head = match c.saved_head {
                    Some(saved) if c.head.is_empty() => saved,
                    _ => Head::of(&c.head),
                };
                (head.len > 0).then_some(crate::positions::PendingContent {
                    fp_len: head.len as u64,
                    fp: head.hash,
                    len: c.seen_len,
                })
            })
            .collect();
        t.positions.set_pending(&t.key, &self.progress, pending);
    }

    /// The first content is finished with (its copy read, or lost): once
    /// everything read from it is acknowledged (its position must not be
    /// replaced before), the next one is read from its start.
    async fn next_content(&mut self, t: &Tailer, m: &ActiveFile) {
        while self.progress.in_flight() > 0 && !self.closed {
            if t.out.is_closed() {
                self.closed = true;
                return;
            }
            self.watch(t, m);
            // Woken by the last ack; the file is still watched at every
            // poll meanwhile.
            let _ = tokio::time::timeout(
                t.settings.poll_interval,
                self.progress.wait_until(|p| p.in_flight() == 0),
            )
            .await;
        }
        self.contents.pop_front();
        self.splitter.reset();
        self.offset = 0;
        let head = match self.contents.front() {
            Some(Content {
                saved_head: Some(saved),
                head,
                ..
            }) if head.is_empty() => *saved,
            Some(c) => Head::of(&c.head),
            None => Head::of(&[]),
        };
        self.identity = FileIdentity {
            dev: t.dev_ino.0,
            ino: t.dev_ino.1,
            fp_len: head.len as u64,
            fp: head.hash,
        };
        self.progress = Progress::new(0);
        if self.tracked {
            t.positions
                .track(&t.key, self.identity.clone(), Arc::clone(&self.progress));
        }
        t.status.set_progress(Arc::clone(&self.progress));
        t.status.read_offset.store(0, Ordering::Relaxed);
        self.publish_heads(t);
    }

    /// Reads the first content's copy from the offset to its end; the bytes
    /// read (0 at its end).
    async fn read_copy(&mut self, t: &Tailer, m: &ActiveFile) -> u64 {
        let Some(Content {
            source: Source::Copy(copy),
            ..
        }) = self.contents.front()
        else {
            return 0;
        };
        let gz = copy.gz;
        let Ok(file) = copy.file.try_clone() else {
            return 0;
        };
        if gz {
            // Decompressed whole, once.
            let total = self
                .read_gzip_from(t, m, &file, super::CompressionFormat::Gz)
                .await;
            if !self.closed {
                self.contents[0].source = Source::Done;
            }
            return total;
        }
        let mut total = 0;
        loop {
            let Ok(_reading) = t.read_budget.acquire().await else {
                return total;
            };
            if self.buf.is_empty() {
                self.buf = vec![0; t.settings.read_chunk.max(4096)];
            }
            let n = match file.read_at(&mut self.buf, self.offset) {
                Ok(0) => break,
                Ok(n) => match self.whole_units(n) {
                    0 => break,
                    n => n,
                },
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(path = %t.path.display(), error = %e, "reading the copy of a truncated file");
                    break;
                }
            };
            let chunk = std::mem::take(&mut self.buf);
            let ok = self.emit_chunk(t, m, &chunk[..n]).await;
            self.buf = chunk;
            total += n as u64;
            if !ok {
                break;
            }
        }
        self.buf = Vec::new();
        total
    }

    /// What the path names now.
    fn path_state(&self, t: &Tailer) -> PathState {
        match std::fs::metadata(&t.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == t.dev_ino => {
                PathState::Same { len: meta.len() }
            }
            _ => PathState::Replaced,
        }
    }

    /// Closes an idle file when descriptors run short (less than a
    /// quarter of the budget left): a closed file renamed out of its
    /// directory could no longer be drained, so files stay open otherwise.
    fn maybe_close_idle(&mut self, t: &Tailer) {
        let short = t.fd_budget.available_permits() < t.settings.max_open_files.max(4) / 4;
        if self.file.is_some()
            && short
            && self.contents.len() == 1
            && !self.splitter.has_partial()
            && self.last_data.elapsed() >= t.settings.idle_close
            && self.progress.in_flight() == 0
        {
            self.file = None;
        }
    }

    async fn reopen(&mut self, t: &Tailer) -> bool {
        let Ok(permit) = Arc::clone(&t.fd_budget).acquire_owned().await else {
            return false;
        };
        match std::fs::File::open(&t.path) {
            Ok(f) if f.metadata().is_ok_and(|m| (m.dev(), m.ino()) == t.dev_ino) => {
                self.file = Some((f, permit));
                true
            }
            _ => self.reopen_moved(t).await,
        }
    }

    /// The path was replaced while our file was closed: find our inode in
    /// the same directory (renamed by rotation) to read what was appended
    /// before the rename.
    async fn reopen_moved(&mut self, t: &Tailer) -> bool {
        // A symlinked log: the file itself is where the link pointed.
        if let Some(real) = &self.real_path {
            if std::fs::metadata(real).is_ok_and(|m| (m.dev(), m.ino()) == t.dev_ino) {
                let Ok(permit) = Arc::clone(&t.fd_budget).acquire_owned().await else {
                    return false;
                };
                if let Ok(f) = std::fs::File::open(real) {
                    self.file = Some((f, permit));
                    return true;
                }
            }
        }
        let Ok(permit) = Arc::clone(&t.fd_budget).acquire_owned().await else {
            return false;
        };
        match super::find_inode(&t.path, t.dev_ino) {
            Some((_, f)) => {
                self.file = Some((f, permit));
                true
            }
            None => false,
        }
    }

    /// Reads from the offset to the end of the file, chunk by chunk,
    /// skipping holes of sparse files. Returns the bytes read. The read
    /// buffer exists only while there is something to read, so thousands
    /// of idle files cost no buffers.
    async fn read_available(&mut self, t: &Tailer, m: &ActiveFile) -> u64 {
        let total = self.read_available_inner(t, m).await;
        self.buf = Vec::new();
        total
    }

    async fn read_available_inner(&mut self, t: &Tailer, m: &ActiveFile) -> u64 {
        let mut total = 0;
        loop {
            // A truncation seen while sending: what follows is the copy's.
            if self.contents.len() != 1 {
                return total;
            }
            let Some((file, _)) = &self.file else {
                return total;
            };
            if file.metadata().map_or(true, |md| md.len() <= self.offset) {
                return total;
            }
            if let Some(data) = next_data(file, self.offset) {
                if data > self.offset {
                    // A hole (sparse file): nothing to read there.
                    if self.splitter.has_partial() {
                        self.flush_partial(t, m, true).await;
                    }
                    self.offset = data;
                }
            } else if file.metadata().is_ok_and(|md| md.len() > self.offset) {
                // Only holes up to the end.
                return total;
            }
            // At most a few chunks of a job are in memory at once (read,
            // or waiting in front of a full channel): memory stays bounded
            // whatever the number of files.
            let Ok(_reading) = t.read_budget.acquire().await else {
                return total;
            };
            let Some((file, _)) = &self.file else {
                return total;
            };
            if self.buf.is_empty() {
                self.buf = vec![0; t.settings.read_chunk.max(4096)];
            }
            let n = match file.read_at(&mut self.buf, self.offset) {
                Ok(0) => return total,
                // A code unit's first byte waits for the rest.
                Ok(n) => match self.whole_units(n) {
                    0 => return total,
                    n => n,
                },
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(path = %t.path.display(), error = %e, "reading file");
                    return total;
                }
            };
            // Are these bytes still the content we were reading? Looked at
            // after the read, with its first bytes compared whatever its
            // size and mtime: a copytruncate and a refill past our offset
            // since the last look would make them another content's (that
            // content is read from its start, ours from its copy).
            self.watch_live(t, Look::Full);
            if self.contents.len() != 1 {
                return total;
            }
            // Handed back only while the job can find it again under its
            // name: a file rotated away would be lost.
            if let Some(check) = t.check_copy.as_ref().filter(|_| self.offset == 0) {
                let head = &self.buf[..n.min(FINGERPRINT_BYTES)];
                if !self.rotated
                    && matches!(self.path_state(t), PathState::Same { .. })
                    && check(head, t.dev_ino, &t.path)
                {
                    self.handed_back = true;
                    return total;
                }
            }
            let chunk = std::mem::take(&mut self.buf);
            let ok = self.emit_chunk(t, m, &chunk[..n]).await;
            self.buf = chunk;
            total += n as u64;
            if !ok {
                return total;
            }
        }
    }

    /// A compressed file (the job's `decompression`, or a `.gz`):
    /// decompressed once from the start, skipping what was already shipped
    /// (offsets count decompressed bytes).
    async fn read_gzip(&mut self, t: &Tailer, m: &ActiveFile) -> u64 {
        let Some(file) = self.file.as_ref().and_then(|(f, _)| f.try_clone().ok()) else {
            return 0;
        };
        if let Some(d) = t.settings.decompression {
            if self.offset == 0 {
                tokio::time::sleep(d.initial_delay).await;
            }
        }
        let format = t
            .settings
            .decompression
            .map_or(super::CompressionFormat::Gz, |d| d.format);
        let total = self.read_gzip_from(t, m, &file, format).await;
        self.gzip_done = true;
        total.max(1)
    }

    async fn read_gzip_from(
        &mut self,
        t: &Tailer,
        m: &ActiveFile,
        file: &std::fs::File,
        format: super::CompressionFormat,
    ) -> u64 {
        use std::io::{Read, Seek};
        // A duplicated descriptor shares the file position: whoever read
        // it before (the copy check) left it elsewhere.
        let Ok(mut f) = file.try_clone() else {
            return 0;
        };
        if f.seek(std::io::SeekFrom::Start(0)).is_err() {
            return 0;
        }
        let mut dec = format.decoder(std::io::BufReader::new(f));
        let mut skip = self.offset;
        let mut pos = 0u64;
        let mut total = 0;
        self.buf = vec![0; t.settings.read_chunk.max(4096)];
        loop {
            let Ok(_reading) = t.read_budget.acquire().await else {
                return total;
            };
            let room = self.buf.len() - 1;
            let n = match dec.read(&mut self.buf[..room]) {
                Ok(0) => break,
                Ok(n) => self.complete_unit(&mut *dec, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(path = %t.path.display(), error = %e, "decompressing gzip file; keeping what was read");
                    break;
                }
            };
            let start = (skip.min(n as u64)) as usize;
            skip -= start as u64;
            pos += n as u64;
            if start < n {
                let chunk = std::mem::take(&mut self.buf);
                self.offset = pos - (n - start) as u64;
                let ok = self.emit_chunk(t, m, &chunk[start..n]).await;
                self.buf = chunk;
                total += (n - start) as u64;
                if !ok {
                    return total;
                }
            }
        }
        self.buf = Vec::new();
        self.offset = self.offset.max(pos);
        if self.splitter.has_partial() {
            self.flush_partial(t, m, true).await;
        }
        total
    }

    /// The whole code units of `n` bytes read (all of them but for UTF-16).
    fn whole_units(&self, n: usize) -> usize {
        self.codec.map_or(n, |c| c.unit.whole(n))
    }

    /// Reads on from `dec` until the `n` bytes in the buffer are whole
    /// code units, or it ends.
    fn complete_unit(&mut self, dec: &mut dyn std::io::Read, mut n: usize) -> usize {
        while self.whole_units(n) != n && n < self.buf.len() {
            match dec.read(&mut self.buf[n..n + 1]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        n
    }

    /// Splits a chunk at `self.offset` into entries and sends them; false
    /// when the job's channel is closed.
    async fn emit_chunk(&mut self, t: &Tailer, m: &ActiveFile, mut chunk: &[u8]) -> bool {
        if let (0, Some(enc)) = (self.offset, t.settings.encoding) {
            // A content's start: its byte order mark (if any) says how it
            // is read, and is not shipped.
            let codec = enc.codec(chunk);
            self.splitter.set_unit(codec.unit);
            self.codec = Some(codec);
            if chunk.len() >= codec.bom {
                chunk = &chunk[codec.bom..];
                self.offset = codec.bom as u64;
            }
        }
        // A read chunk holds thousands of lines; made into entries all at
        // once they would weigh megabytes (an entry carries its own label
        // set). Slices of EMIT_SLICE bytes keep that to a few hundred.
        let mut entries = Vec::new();
        for slice in chunk.chunks(EMIT_SLICE) {
            if !self.emit_slice(t, m, slice, &mut entries).await {
                return false;
            }
        }
        true
    }

    async fn emit_slice(
        &mut self,
        t: &Tailer,
        m: &ActiveFile,
        chunk: &[u8],
        entries: &mut Vec<Entry>,
    ) -> bool {
        let had_partial = self.splitter.has_partial();
        let (progress, labels, fm) = (&self.progress, &t.labels, &m.0);
        let decoder = self.codec.map(|c| c.decoder);
        self.splitter.push(chunk, self.offset, |piece| {
            if let Some(e) = make_entry(piece, progress, labels, fm, decoder) {
                entries.push(e);
            }
        });
        stamp(entries);
        self.offset += chunk.len() as u64;
        if self.splitter.has_partial() && (!had_partial || !entries.is_empty()) {
            self.partial_since = Instant::now();
        }
        m.0.read_bytes
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        m.0.read_lines
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        t.status.read_offset.store(self.offset, Ordering::Relaxed);
        // Room for the whole slice: one semaphore update, not one per entry.
        if let Ok(permits) = t.out.try_reserve_many(entries.len()) {
            for (permit, e) in permits.zip(entries.drain(..)) {
                permit.send(e);
            }
        }
        for e in entries.drain(..) {
            if !self.send(t, m, e).await {
                return false;
            }
        }
        // A long read (a backlog, a copy, a .gz) still looks at the file
        // every poll: two rotations between looks would leave the content
        // between them unseen, its copy unknown.
        if self.last_watch.elapsed() >= t.settings.poll_interval {
            self.watch(t, m);
        }
        true
    }

    /// Sends one entry; while the channel is full (Loki slow or down) the
    /// file is still watched, so a truncation meanwhile finds its copy
    /// while it exists. False when the channel is closed.
    async fn send(&mut self, t: &Tailer, m: &ActiveFile, e: Entry) -> bool {
        let e = match t.out.try_send(e) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.closed = true;
                return false;
            }
            Err(mpsc::error::TrySendError::Full(e)) => e,
        };
        loop {
            tokio::select! {
                permit = t.out.reserve() => match permit {
                    Ok(p) => {
                        p.send(e);
                        return true;
                    }
                    Err(_) => {
                        self.closed = true;
                        return false;
                    }
                },
                _ = tokio::time::sleep(t.settings.poll_interval) => self.watch(t, m),
            }
        }
    }

    /// Sends the partial line; unless `last` (nothing more comes to it),
    /// a character whose rest was not written yet stays.
    async fn flush_partial(&mut self, t: &Tailer, m: &ActiveFile, last: bool) {
        let mut entries = Vec::new();
        let (progress, labels, fm) = (&self.progress, &t.labels, &m.0);
        let decoder = self.codec.map(|c| c.decoder);
        self.splitter.flush(self.offset, last, |piece| {
            if let Some(e) = make_entry(piece, progress, labels, fm, decoder) {
                entries.push(e);
            }
        });
        stamp(&mut entries);
        m.0.read_lines
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        for e in entries {
            if !self.send(t, m, e).await {
                return;
            }
        }
    }
}

/// Stamps entries just read with the time they were read, each its own
/// nanosecond: Loki stores an entry identical in stream, timestamp and line
/// once, so repeated lines must not share a timestamp (promtail stamps each
/// line as it reads it). Stamps are strictly increasing across the process,
/// so a stream's entries stay in order even when the clock is stepped back
/// (NTP) or one file's tailer hands over to the next file's.
fn stamp(entries: &mut [Entry]) {
    if entries.is_empty() {
        return;
    }
    let first = read_times(entries.len() as u64);
    for (i, e) in entries.iter_mut().enumerate() {
        e.timestamp = SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(first + i as u64);
    }
}

/// Reserves `n` consecutive nanosecond timestamps, the first of them the
/// wall clock's now unless that is not after the last one given.
pub(crate) fn read_times(n: u64) -> u64 {
    static LAST_NANOS: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut prev = LAST_NANOS.load(Ordering::Relaxed);
    loop {
        let first = now.max(prev.saturating_add(1));
        let last = first.saturating_add(n.saturating_sub(1));
        match LAST_NANOS.compare_exchange_weak(prev, last, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return first,
            Err(p) => prev = p,
        }
    }
}

fn make_entry(
    piece: Piece<'_>,
    progress: &Arc<Progress>,
    labels: &Labels,
    m: &super::metrics::FileMetrics,
    decoder: Option<super::encoding::Decoder>,
) -> Option<Entry> {
    match piece {
        Piece::Line {
            bytes,
            end,
            truncated,
        } => {
            if truncated {
                m.truncated_lines.fetch_add(1, Ordering::Relaxed);
            }
            let line = match (bytes, decoder) {
                // Lines of other encodings are cut in their own bytes (see
                // `encoding`) and decoded one by one. Bytes a decoder cannot
                // map become U+FFFD.
                (b, Some(dec)) => dec.decode(&b),
                (std::borrow::Cow::Owned(v), None) => String::from_utf8(v)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
                // from_utf8 checks ASCII a word at a time; the lossy
                // conversion walks every byte, so it only takes the rest.
                (std::borrow::Cow::Borrowed(b), None) => match std::str::from_utf8(b) {
                    Ok(s) => s.to_owned(),
                    Err(_) => String::from_utf8_lossy(b).into_owned(),
                },
            };
            Some(Entry {
                labels: labels.clone(),
                timestamp: SystemTime::UNIX_EPOCH,
                line,
                structured_metadata: Vec::new(),
                ack: Some(progress.track(end)),
            })
        }
        Piece::Dropped { end, len } => {
            m.dropped_lines.fetch_add(1, Ordering::Relaxed);
            m.dropped_bytes.fetch_add(len, Ordering::Relaxed);
            progress.track(end).complete();
            None
        }
    }
}

/// The next offset holding data at or after `offset` (SEEK_DATA), so the
/// holes of sparse files such as lastlog are skipped rather than read as
/// zeros. `None` when there is no data after `offset` or the filesystem
/// cannot say (then the caller reads normally).
fn next_data(file: &std::fs::File, offset: u64) -> Option<u64> {
    use std::os::fd::AsRawFd;
    // SAFETY: lseek on a descriptor we own; we only read with pread, so
    // moving the file's cursor changes nothing.
    let r = unsafe { libc::lseek(file.as_raw_fd(), offset as libc::off_t, libc::SEEK_DATA) };
    if r < 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENXIO) {
            return None;
        }
        return Some(offset);
    }
    Some(r as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::Path;

    /// A watcher of `dir/app.log`, driven by hand one round at a time, so
    /// what happens to the file between two of its looks is fixed.
    struct Driven {
        t: Tailer,
        m: ActiveFile,
        open: Open,
        rx: mpsc::Receiver<Entry>,
        _events: mpsc::UnboundedReceiver<TailerEvent>,
    }

    impl Driven {
        async fn new(dir: &Path) -> Driven {
            let path = dir.join("app.log");
            let meta = std::fs::metadata(&path).unwrap();
            let key = path.to_string_lossy().into_owned();
            let (out, rx) = mpsc::channel(1000);
            let (events, events_rx) = mpsc::unbounded_channel();
            let positions = Positions::load(crate::positions::PositionsSettings {
                filename: dir.join("positions.yaml"),
                ..Default::default()
            });
            let t = Tailer {
                copy_dirs: copies::dirs_of(&path, None),
                status: Tailer::status(&key, (meta.dev(), meta.ino()), 0),
                dev_ino: (meta.dev(), meta.ino()),
                path,
                labels: crate::entry::LabelSet::new().into(),
                key: key.clone(),
                start: 0,
                copy_first: None,
                pending: Vec::new(),
                expect_head: None,
                claims: Claims::default(),
                check_copy: None,
                settings: Arc::new(TailerSettings {
                    poll_interval: Duration::from_millis(10),
                    rotate_wait: Duration::from_millis(100),
                    ..Default::default()
                }),
                positions,
                fd_budget: Arc::new(Semaphore::new(16)),
                read_budget: Arc::new(Semaphore::new(4)),
                out,
                events,
                after: None,
                draining: false,
            };
            let m = super::super::metrics::file(&key);
            let mut open = Open::new(&t).await.unwrap();
            open.track(&t);
            Driven {
                t,
                m,
                open,
                rx,
                _events: events_rx,
            }
        }

        /// One look at the file, without reading.
        fn look(&mut self) {
            self.open.watch(&self.t, &self.m);
        }

        /// One round of reading the live content, without looking first
        /// (the look came before whatever the caller did since).
        async fn read_without_looking(&mut self) {
            self.open.read_live(&self.t, &self.m).await;
        }

        /// Lets the watcher run, acknowledging every entry as it comes,
        /// until it sent `expected` lines in all and nothing more for
        /// 300 ms (or 5 s passed); the lines it sent, in order.
        async fn run_on(mut self, mut lines: Vec<String>, expected: usize) -> Vec<String> {
            let (t, m, mut open) = (self.t, self.m, self.open);
            let run = tokio::spawn(async move { open.run(&t, &m).await });
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                let quiet = tokio::time::Instant::now() + Duration::from_millis(300);
                let until = if lines.len() >= expected {
                    quiet.min(deadline)
                } else {
                    deadline
                };
                match tokio::time::timeout_at(until, self.rx.recv()).await {
                    Ok(Some(e)) => {
                        lines.push(e.line.clone());
                        e.complete();
                    }
                    _ => break,
                }
            }
            run.abort();
            lines
        }

        /// The lines sent so far, acknowledged.
        fn take_lines(&mut self) -> Vec<String> {
            let mut lines = Vec::new();
            while let Ok(e) = self.rx.try_recv() {
                lines.push(e.line.clone());
                e.complete();
            }
            lines
        }
    }

    fn lines(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|i| format!("line {i:03}")).collect()
    }

    fn append(writer: &mut std::fs::File, lines: &[String]) {
        for l in lines {
            writer.write_all(format!("{l}\n").as_bytes()).unwrap();
        }
    }

    fn appending(path: &Path) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
    }

    /// `app.log` with three lines, written by an appending writer, and a
    /// watcher that has looked at it and read them (the lines it sent).
    async fn three_lines_read() -> (
        tempfile::TempDir,
        std::path::PathBuf,
        std::fs::File,
        Driven,
        Vec<String>,
    ) {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("app.log");
        let mut writer = appending(&log);
        append(&mut writer, &lines(0..3));
        let mut w = Driven::new(d.path()).await;
        w.look();
        w.read_without_looking().await;
        let read = w.take_lines();
        assert_eq!(read, lines(0..3));
        (d, log, writer, w, read)
    }

    /// logrotate's copytruncate: the copy, then the truncation; the
    /// writer's O_APPEND descriptor goes on at the new end.
    fn copytruncate(log: &Path, copy: &Path) {
        std::fs::copy(log, copy).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(log)
            .unwrap()
            .set_len(0)
            .unwrap();
    }

    #[tokio::test]
    async fn a_copytruncate_then_delete_between_two_looks_is_read_from_the_copy() {
        let (d, log, mut writer, mut w, read) = three_lines_read().await;
        // Between two looks: two more lines, then the copy, the truncation
        // and the file removed; the watcher finds the path gone before it
        // looks at the file again.
        append(&mut writer, &lines(3..5));
        copytruncate(&log, &d.path().join("app.log.1"));
        std::fs::remove_file(&log).unwrap();
        drop(writer);
        w.read_without_looking().await;
        let all = w.run_on(read, 5).await;
        assert_eq!(
            all,
            lines(0..5),
            "the two lines written before the truncation come from the copy"
        );
    }

    #[tokio::test]
    async fn a_copytruncate_and_refill_between_a_look_and_a_read_is_not_read_as_the_old_content() {
        let (d, log, mut writer, mut w, read) = three_lines_read().await;
        // Two more lines, seen (their size) by a look but not read yet.
        append(&mut writer, &lines(3..5));
        w.look();
        // Before the read: the copy, the truncation, and the new content
        // refilled past where the watcher had read, not as far as it saw.
        copytruncate(&log, &d.path().join("app.log.1"));
        append(&mut writer, &lines(5..9));
        assert!(std::fs::metadata(&log).unwrap().len() < 5 * 9);
        w.read_without_looking().await;
        let all = w.run_on(read, 9).await;
        assert_eq!(
            all,
            lines(0..9),
            "the old content from its copy, then the new one, each line once"
        );
    }

    #[test]
    fn every_line_read_gets_its_own_increasing_timestamp() {
        let mut entries: Vec<Entry> = (0..1000)
            .map(|_| Entry::new(Labels::default(), "same line".into()))
            .collect();
        stamp(&mut entries[..600]);
        stamp(&mut entries[600..]);
        for w in entries.windows(2) {
            assert!(
                w[0].timestamp < w[1].timestamp,
                "stamps must strictly increase"
            );
        }
        let again = read_times(1);
        let last = entries[999]
            .timestamp
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        assert!(again > last, "later reads come after");
    }
}
