//! One tailer per file identity (device, inode): reads what is appended in
//! large chunks with pread, splits lines, and sends entries with acks into
//! the job's bounded channel (awaiting there is the backpressure).
//!
//! It follows the file, not the path: when the path is renamed away or
//! deleted it reads the old file to its end, tells the job to pick up the
//! new file, and keeps the old one open until everything read from it is
//! acknowledged. A file that shrinks (truncation, copytruncate) or whose
//! first bytes change is read again from its start. Idle files are closed
//! to stay within the descriptor budget and reopened when they grow.

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::identity::{read_head, FileIdentity};
use super::lines::{LineSplitter, Piece};
use super::metrics::ActiveFile;
use super::TailerSettings;
use crate::ack::Progress;
use crate::entry::{Entry, LabelSet};
use crate::positions::Positions;

/// Bytes of a read chunk turned into entries before they are sent.
const EMIT_SLICE: usize = 32 * 1024;

/// What the job hears from its tailers.
#[derive(Debug)]
pub enum TailerEvent {
    /// The path now names another file (or none): look for the new one now.
    Rotated,
    /// The file was truncated after `offset` bytes whose head is
    /// `identity`: a copy of it appearing now (copytruncate) continues
    /// from there.
    Truncated { head: Vec<u8>, offset: u64 },
    /// The tailer is finished with this file (rotated away or deleted, and
    /// everything read is acknowledged): `offset` is where it stopped, so
    /// the file is never read twice if it shows up under another name.
    Ended {
        key: (u64, u64),
        identity: FileIdentity,
        offset: u64,
    },
}

/// What `/targets` shows of a tailed file.
#[derive(Debug)]
pub struct TailerStatus {
    pub path: String,
    pub read_offset: AtomicU64,
    pub size: AtomicU64,
    progress: Mutex<Arc<Progress>>,
    /// The first bytes of the file (up to 1 KiB) as far as they were read,
    /// to recognise its copies. After a truncation it keeps the old
    /// content's until the new content is read.
    head: Mutex<Vec<u8>>,
    /// The head of the content before the last truncation, until the next
    /// one: a copy of it found before the job has heard of the truncation
    /// is held back, even when the new content is already being read.
    old_head: Mutex<Vec<u8>>,
    /// Set when the tailer is finished with the file.
    pub done: tokio::sync::watch::Sender<bool>,
}

impl TailerStatus {
    pub fn committed(&self) -> u64 {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .committed()
    }
    fn set_progress(&self, p: Arc<Progress>) {
        *self.progress.lock().unwrap_or_else(|e| e.into_inner()) = p;
    }
    /// The first bytes of the file as far as they were read.
    pub fn head(&self) -> Vec<u8> {
        self.head.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// The head of the content before the last truncation.
    pub fn old_head(&self) -> Vec<u8> {
        self.old_head
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    fn set_head(&self, head: &[u8]) {
        let mut h = self.head.lock().unwrap_or_else(|e| e.into_inner());
        h.clear();
        h.extend_from_slice(head);
    }
}

pub struct Tailer {
    pub path: PathBuf,
    pub key: String,
    pub labels: LabelSet,
    pub dev_ino: (u64, u64),
    pub start: u64,
    pub settings: Arc<TailerSettings>,
    pub positions: Arc<Positions>,
    pub fd_budget: Arc<Semaphore>,
    /// Chunks of this job being read or sent at once.
    pub read_budget: Arc<Semaphore>,
    pub out: mpsc::Sender<Entry>,
    pub events: mpsc::UnboundedSender<TailerEvent>,
    pub status: Arc<TailerStatus>,
    /// The tailer of the file rotated away from this path, to finish first.
    pub after: Option<Arc<TailerStatus>>,
    /// The file was rotated away already: read it to its end, then stop.
    pub draining: bool,
}

impl Tailer {
    pub fn status(path: &str, start: u64) -> Arc<TailerStatus> {
        Arc::new(TailerStatus {
            path: path.to_string(),
            read_offset: AtomicU64::new(start),
            size: AtomicU64::new(0),
            progress: Mutex::new(Progress::new(start)),
            head: Mutex::new(Vec::new()),
            old_head: Mutex::new(Vec::new()),
            done: tokio::sync::watch::channel(false).0,
        })
    }

    pub async fn run(self) {
        let metrics = super::metrics::file(&self.key);
        if let Some(mut state) = Open::new(&self).await {
            // Opened (so a rename cannot take it away); a file rotated away
            // from the same path is finished first, so the stream's entries
            // stay in order.
            if let Some(before) = &self.after {
                let mut done = before.done.subscribe();
                let _ = done.wait_for(|d| *d).await;
            }
            self.positions.track(
                &self.key,
                state.identity.clone(),
                Arc::clone(&state.progress),
            );
            state.run(&self, &metrics).await;
            self.positions.untrack(&self.key, &state.progress);
        }
        self.status.done.send_replace(true);
    }
}

struct Open {
    file: Option<(std::fs::File, OwnedSemaphorePermit)>,
    identity: FileIdentity,
    offset: u64,
    progress: Arc<Progress>,
    splitter: LineSplitter,
    /// When the partial line last grew.
    partial_since: Instant,
    last_data: Instant,
    gzip: bool,
    gzip_done: bool,
    buf: Vec<u8>,
    /// The job's channel is closed.
    closed: bool,
    /// The file's own path when `path` is a symlink to it.
    real_path: Option<PathBuf>,
    /// The first bytes of the current content (up to 1 KiB) as far as
    /// they were read: a copy of the file continues after them
    /// (copytruncate), so they are published before they are sent.
    head: Vec<u8>,
}

enum PathState {
    Same { len: u64 },
    Replaced,
}

impl Open {
    async fn new(t: &Tailer) -> Option<Open> {
        let permit = Arc::clone(&t.fd_budget).acquire_owned().await.ok()?;
        let file = match std::fs::File::open(&t.path) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(path = %t.path.display(), error = %e, "cannot open file to tail");
                return None;
            }
        };
        let meta = file.metadata().ok()?;
        if (meta.dev(), meta.ino()) != t.dev_ino {
            // Replaced between discovery and now; the next sync finds it.
            let _ = t.events.send(TailerEvent::Rotated);
            return None;
        }
        let identity = FileIdentity::of(&file).ok()?;
        let progress = Progress::new(t.start);
        t.status.set_progress(Arc::clone(&progress));
        // What lies before the start was read before (saved position).
        let mut head = vec![0u8; super::identity::FINGERPRINT_BYTES];
        let n = read_head(&file, &mut head).unwrap_or(0);
        head.truncate(n.min(usize::try_from(t.start).unwrap_or(usize::MAX)));
        t.status.set_head(&head);
        let gzip = t.path.extension().is_some_and(|e| e == "gz");
        tracing::debug!(path = %t.path.display(), start = t.start, dev_ino = ?t.dev_ino, "tailing file");
        Some(Open {
            file: Some((file, permit)),
            identity,
            offset: t.start,
            progress,
            splitter: LineSplitter::new(
                t.settings.max_line_size,
                t.settings.max_line_size_truncate,
            ),
            partial_since: Instant::now(),
            last_data: Instant::now(),
            gzip,
            gzip_done: false,
            buf: Vec::new(),
            closed: false,
            real_path: std::fs::canonicalize(&t.path).ok(),
            head,
        })
    }

    async fn run(&mut self, t: &Tailer, m: &ActiveFile) {
        let mut rotated = t.draining;
        loop {
            if self.closed {
                // The job's channel is gone (a reload): stop here; what was
                // not delivered is read again by the next tailer of this
                // file, from the saved position.
                tracing::debug!(path = %t.path.display(), "output closed, tailer stops");
                return;
            }
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
                continue;
            }
            // At the end of what is there. A rotated file's last line is
            // flushed below, once its writer has moved on: a writer may
            // still be completing it (the newline of a line written in
            // two parts).
            if !rotated
                && self.splitter.has_partial()
                && self.partial_since.elapsed() >= t.settings.flush_timeout
            {
                self.flush_partial(t, m).await;
            }
            if self.gzip {
                // Compressed files are read once. The tailer stays (with
                // the file closed) while the file exists, so it is not
                // found and read again.
                if self.gzip_done && self.progress.in_flight() == 0 {
                    self.file = None;
                    if matches!(self.path_state(t), PathState::Replaced) {
                        break;
                    }
                }
            } else if rotated {
                // Late writes to the old file are still read above; stop
                // once the writer has moved on and all is acked.
                if self.last_data.elapsed() >= t.settings.poll_interval * 2 {
                    if self.splitter.has_partial() {
                        self.flush_partial(t, m).await;
                        continue;
                    }
                    if self.progress.in_flight() == 0 {
                        break;
                    }
                }
            } else {
                match self.path_state(t) {
                    PathState::Same { len } => {
                        m.0.file_bytes.store(len, Ordering::Relaxed);
                        t.status.size.store(len, Ordering::Relaxed);
                        if len < self.offset || !self.head_unchanged(t) {
                            self.restart_from_zero(t, len);
                            continue;
                        }
                        if self.file.is_none() && len > self.offset {
                            if !self.reopen(t).await {
                                break;
                            }
                            continue;
                        }
                        self.maybe_close_idle(t);
                    }
                    PathState::Replaced => {
                        if self.file.is_none() && !self.reopen_moved(t).await {
                            // Deleted (or moved out of reach) while closed,
                            // after all of it was read and acknowledged.
                            break;
                        }
                        tracing::debug!(path = %t.path.display(), offset = self.offset, "file rotated away or deleted: reading it to its end");
                        rotated = true;
                        let _ = t.events.send(TailerEvent::Rotated);
                        continue;
                    }
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

    /// What the path names now.
    fn path_state(&self, t: &Tailer) -> PathState {
        match std::fs::metadata(&t.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == t.dev_ino => {
                PathState::Same { len: meta.len() }
            }
            _ => PathState::Replaced,
        }
    }

    /// The first bytes fingerprinted are still there (no truncate-and-rewrite
    /// past our offset). Checked only while the file is open: one pread.
    fn head_unchanged(&mut self, t: &Tailer) -> bool {
        let Some((f, _)) = &self.file else {
            return true;
        };
        if !self.identity.matches(f) {
            return false;
        }
        // A short file: the fingerprint grows with it.
        if (self.identity.fp_len as usize) < super::identity::FINGERPRINT_BYTES {
            if let Ok(id) = FileIdentity::of(f) {
                if id.fp_len > self.identity.fp_len {
                    self.identity = id;
                    t.positions
                        .track(&t.key, self.identity.clone(), Arc::clone(&self.progress));
                }
            }
        }
        true
    }

    /// Truncated (or rewritten) in place: start over at 0 with a fresh
    /// progress; entries of the old content still in flight complete on
    /// the old one.
    fn restart_from_zero(&mut self, t: &Tailer, len: u64) {
        tracing::info!(path = %t.path.display(), offset = self.offset, size = len, "file truncated, reading it from the start");
        // A copy continues at the start of the line we had not finished.
        *t.status.old_head.lock().unwrap_or_else(|e| e.into_inner()) = self.head.clone();
        let _ = t.events.send(TailerEvent::Truncated {
            head: std::mem::take(&mut self.head),
            offset: self.offset - self.splitter.partial_len(),
        });
        self.splitter.reset();
        self.offset = 0;
        // Fingerprinted again as it is read (the file may be closed now).
        // The status keeps the old head until the new content replaces it:
        // a copy found before the job hears of this truncation is held.
        self.identity = FileIdentity::empty(t.dev_ino.0, t.dev_ino.1);
        self.progress = Progress::new(0);
        t.positions
            .track(&t.key, self.identity.clone(), Arc::clone(&self.progress));
        t.status.set_progress(Arc::clone(&self.progress));
        t.status.read_offset.store(0, Ordering::Relaxed);
    }

    /// Closes an idle file when descriptors run short (less than a
    /// quarter of the budget left): a closed file renamed out of its
    /// directory could no longer be drained, so files stay open otherwise.
    fn maybe_close_idle(&mut self, t: &Tailer) {
        let short = t.fd_budget.available_permits() < t.settings.max_open_files.max(4) / 4;
        if self.file.is_some()
            && short
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
        let Some(dir) = t.path.parent() else {
            return false;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if (meta.dev(), meta.ino()) == t.dev_ino && meta.is_file() {
                let Ok(permit) = Arc::clone(&t.fd_budget).acquire_owned().await else {
                    return false;
                };
                if let Ok(f) = std::fs::File::open(e.path()) {
                    self.file = Some((f, permit));
                    return true;
                }
            }
        }
        false
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
            let Some((file, _)) = &self.file else {
                return total;
            };
            if file.metadata().map_or(true, |md| md.len() <= self.offset) {
                return total;
            }
            // Replaced content (copytruncate refilled past our offset) is
            // not read as a continuation: the caller starts over.
            if total == 0
                && self.offset > 0
                && self.identity.fp_len > 0
                && !self.identity.matches(file)
            {
                return 0;
            }
            if let Some(data) = next_data(file, self.offset) {
                if data > self.offset {
                    // A hole (sparse file): nothing to read there.
                    if self.splitter.has_partial() {
                        self.flush_partial(t, m).await;
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
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(path = %t.path.display(), error = %e, "reading file");
                    return total;
                }
            };
            let chunk = std::mem::take(&mut self.buf);
            let ok = self.emit_chunk(t, m, &chunk[..n]).await;
            self.buf = chunk;
            total += n as u64;
            if !ok {
                return total;
            }
        }
    }

    /// A `.gz` file: decompressed once from the start, skipping what was
    /// already shipped (offsets count decompressed bytes).
    async fn read_gzip(&mut self, t: &Tailer, m: &ActiveFile) -> u64 {
        use std::io::Read;
        let Some((file, _)) = &self.file else {
            return 0;
        };
        let Ok(f) = file.try_clone() else { return 0 };
        let mut dec = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(f));
        let mut skip = self.offset;
        let mut pos = 0u64;
        let mut total = 0;
        self.buf = vec![0; t.settings.read_chunk.max(4096)];
        loop {
            let Ok(_reading) = t.read_budget.acquire().await else {
                return total;
            };
            let n = match dec.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
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
            self.flush_partial(t, m).await;
        }
        self.gzip_done = true;
        total.max(1)
    }

    /// Splits a chunk at `self.offset` into entries and sends them; false
    /// when the job's channel is closed.
    async fn emit_chunk(&mut self, t: &Tailer, m: &ActiveFile, chunk: &[u8]) -> bool {
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
        self.note_head(t, chunk);
        let had_partial = self.splitter.has_partial();
        let (progress, labels, fm) = (&self.progress, &t.labels, &m.0);
        self.splitter.push(chunk, self.offset, |piece| {
            if let Some(e) = make_entry(piece, progress, labels, fm) {
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
        for e in entries.drain(..) {
            if t.out.send(e).await.is_err() {
                self.closed = true;
                return false;
            }
        }
        true
    }

    /// Keeps the first bytes read of the current content, and publishes
    /// them before the entries made of them are sent: the job holds back a
    /// copy of what we are reading rather than read it from its start.
    fn note_head(&mut self, t: &Tailer, chunk: &[u8]) {
        let fp = super::identity::FINGERPRINT_BYTES;
        if self.offset as usize != self.head.len() || self.head.len() >= fp {
            return;
        }
        let take = chunk.len().min(fp - self.head.len());
        self.head.extend_from_slice(&chunk[..take]);
        t.status.set_head(&self.head);
    }

    async fn flush_partial(&mut self, t: &Tailer, m: &ActiveFile) {
        let mut entries = Vec::new();
        let (progress, labels, fm) = (&self.progress, &t.labels, &m.0);
        self.splitter.flush(self.offset, |piece| {
            if let Some(e) = make_entry(piece, progress, labels, fm) {
                entries.push(e);
            }
        });
        stamp(&mut entries);
        m.0.read_lines
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        for e in entries {
            if t.out.send(e).await.is_err() {
                self.closed = true;
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
    labels: &LabelSet,
    m: &super::metrics::FileMetrics,
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
            let line = match bytes {
                std::borrow::Cow::Owned(v) => String::from_utf8(v)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
                std::borrow::Cow::Borrowed(b) => String::from_utf8_lossy(b).into_owned(),
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

    #[test]
    fn every_line_read_gets_its_own_increasing_timestamp() {
        let mut entries: Vec<Entry> = (0..1000)
            .map(|_| Entry::new(LabelSet::new(), "same line".into()))
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
