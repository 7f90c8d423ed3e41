//! The positions file in promtail's format, so a promtail user keeps their
//! offsets: `positions: {"/var/log/a.log": "1234", "journal-<job>": "<cursor>"}`.
//!
//! promtail keys a file only by its path, so a rotated file whose path is
//! reused, or a file truncated while nobody watched, is misread. We also
//! keep each file's identity (device, inode, and a hash of its first bytes)
//! in a side file, `<filename>.identity.yaml`, which promtail never reads;
//! the positions file itself stays exactly promtail's (promtail reads it
//! strictly, so no extra key can go there).
//!
//! Saving is atomic (temp file, fsync, rename, fsync of the directory) and
//! only ever writes what the sources' [`Progress`] says Loki accepted. A
//! corrupt or truncated file never blocks start-up: it is reported, kept
//! as `<filename>.corrupt`, and we start from empty (re-reading is a
//! duplicate, never a loss).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ack::Progress;
pub use crate::sources::file::identity::FileIdentity;

/// `positions` of promtail's config.
#[derive(Clone, Debug, PartialEq)]
pub struct PositionsSettings {
    pub filename: PathBuf,
    pub sync_period: Duration,
    /// promtail's option: an unreadable file is ignored quietly (logged at
    /// debug instead of error). Either way we start empty.
    pub ignore_invalid_yaml: bool,
    /// Dry run: read positions, never write them.
    pub read_only: bool,
}

impl Default for PositionsSettings {
    fn default() -> Self {
        PositionsSettings {
            filename: PathBuf::from("/var/log/positions.yaml"),
            sync_period: Duration::from_secs(10),
            ignore_invalid_yaml: false,
            read_only: false,
        }
    }
}

/// promtail's file: `positions:` mapping keys to strings.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PositionsFile {
    #[serde(default)]
    positions: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityFile {
    #[serde(default)]
    files: BTreeMap<String, IdentityRecord>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityRecord {
    /// The offset saved with this identity: the identity applies only
    /// while the positions file says the same (both files are not written
    /// atomically together).
    offset: u64,
    #[serde(flatten)]
    identity: FileIdentity,
    /// The record saved before, while the positions file may still hold
    /// its offset: this file is written first, and a crash between the
    /// two writes leaves the positions file one save behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous: Option<PreviousRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pending: Vec<PendingContent>,
}

/// A content of a file queued behind the one being read: the file was
/// truncated (copytruncate) before it was read, and after a restart its
/// copy is looked for by these first bytes. Kept so that several contents
/// truncated while Loki was down survive a kill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingContent {
    /// Length and FNV-1a hash of its first bytes.
    pub fp_len: u64,
    pub fp: u64,
    /// The largest size the file was seen at with this content.
    pub len: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviousRecord {
    offset: u64,
    #[serde(flatten)]
    identity: FileIdentity,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pending: Vec<PendingContent>,
}

impl IdentityRecord {
    /// The identity (and the contents queued behind it) that go with
    /// `offset` in the positions file.
    fn identity_at(&self, offset: u64) -> Option<(&FileIdentity, &[PendingContent])> {
        if self.offset == offset {
            return Some((&self.identity, &self.pending));
        }
        self.previous
            .as_ref()
            .filter(|p| p.offset == offset)
            .map(|p| (&p.identity, p.pending.as_slice()))
    }
}

/// A saved position of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedPosition {
    pub offset: u64,
    /// `None` for a position written by promtail (path only).
    pub identity: Option<FileIdentity>,
}

#[derive(Debug)]
enum Slot {
    File {
        offset: u64,
        identity: Option<FileIdentity>,
        /// A live source: its committed offset is read at every sync.
        progress: Option<Arc<Progress>>,
        /// Contents queued behind the one read (see [`PendingContent`]).
        pending: Vec<PendingContent>,
    },
    /// A journal cursor or any value that is not an offset.
    Raw(String),
}

/// The positions of every source, saved periodically.
#[derive(Debug)]
pub struct Positions {
    settings: PositionsSettings,
    slots: Mutex<BTreeMap<String, Slot>>,
    /// Serialises saves (the sync loop and a final save on shutdown), and
    /// holds the identity records last written.
    save_lock: Mutex<BTreeMap<String, IdentityRecord>>,
}

impl Positions {
    /// Reads the positions file (and our identity side file). Never fails:
    /// a missing file is an empty start, a corrupt one is reported, backed
    /// up and ignored.
    pub fn load(settings: PositionsSettings) -> Arc<Positions> {
        let mut slots = BTreeMap::new();
        let mut written = BTreeMap::new();
        let path = &settings.filename;
        match std::fs::read(path) {
            Ok(bytes) => match parse_positions(&bytes) {
                Ok(map) => {
                    let ids = read_identities(&identity_path(path));
                    written = ids.clone();
                    for (k, v) in map {
                        let slot = match v.trim().parse::<u64>() {
                            Ok(offset) => {
                                let saved = ids.get(&k).and_then(|r| r.identity_at(offset));
                                Slot::File {
                                    offset,
                                    identity: saved.map(|(id, _)| id.clone()),
                                    progress: None,
                                    pending: saved.map(|(_, p)| p.to_vec()).unwrap_or_default(),
                                }
                            }
                            Err(_) => Slot::Raw(v),
                        };
                        slots.insert(k, slot);
                    }
                }
                Err(e) => {
                    let backup = with_suffix(path, ".corrupt");
                    let kept = std::fs::copy(path, &backup).is_ok();
                    if settings.ignore_invalid_yaml {
                        tracing::debug!(file = %path.display(), error = %e, "ignoring invalid positions file");
                    } else {
                        tracing::error!(
                            file = %path.display(),
                            error = %e,
                            backup = %if kept { backup.display().to_string() } else { "(could not copy)".into() },
                            "invalid yaml positions file: starting with no positions, files are read again from their start"
                        );
                    }
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "reading the positions file: starting with no positions");
            }
        }
        Arc::new(Positions {
            settings,
            slots: Mutex::new(slots),
            save_lock: Mutex::new(written),
        })
    }

    pub fn settings(&self) -> &PositionsSettings {
        &self.settings
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The saved position of a file (live sources: their committed offset).
    pub fn get(&self, path: &str) -> Option<SavedPosition> {
        match self.slots().get(path)? {
            Slot::File {
                offset,
                identity,
                progress,
                ..
            } => Some(SavedPosition {
                offset: progress.as_ref().map_or(*offset, |p| p.committed()),
                identity: identity.clone(),
            }),
            Slot::Raw(v) => {
                tracing::warn!(key = path, value = %v, "positions: value is not a file offset");
                None
            }
        }
    }

    /// A saved file position whose identity is device `dev`, inode `ino`
    /// (a file rotated to another name while we were not running).
    pub fn find_identity(&self, dev: u64, ino: u64) -> Option<(String, SavedPosition)> {
        self.slots().iter().find_map(|(k, slot)| match slot {
            Slot::File {
                offset,
                identity: Some(id),
                progress,
                ..
            } if id.dev == dev && id.ino == ino => Some((
                k.clone(),
                SavedPosition {
                    offset: progress.as_ref().map_or(*offset, |p| p.committed()),
                    identity: Some(id.clone()),
                },
            )),
            _ => None,
        })
    }

    /// The paths with a saved file position that no watcher reads now.
    pub fn untracked_files(&self) -> Vec<String> {
        self.slots()
            .iter()
            .filter(|(_, s)| {
                matches!(
                    s,
                    Slot::File {
                        progress: None,
                        identity: Some(_),
                        ..
                    }
                )
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// A journal cursor (or other non-offset value).
    pub fn get_raw(&self, key: &str) -> Option<String> {
        match self.slots().get(key)? {
            Slot::Raw(v) => Some(v.clone()),
            Slot::File { offset, .. } => Some(offset.to_string()),
        }
    }

    pub fn put_raw(&self, key: &str, value: String) {
        self.slots().insert(key.to_string(), Slot::Raw(value));
    }

    /// Sets a file's position outright (no live source).
    pub fn put(&self, path: &str, offset: u64, identity: Option<FileIdentity>) {
        self.slots().insert(
            path.to_string(),
            Slot::File {
                offset,
                identity,
                progress: None,
                pending: Vec::new(),
            },
        );
    }

    /// The contents saved as queued behind a file's position (empty for
    /// most files).
    pub fn pending(&self, path: &str) -> Vec<PendingContent> {
        match self.slots().get(path) {
            Some(Slot::File { pending, .. }) => pending.clone(),
            _ => Vec::new(),
        }
    }

    /// Sets the contents queued behind the one `progress` reads, if it is
    /// still the path's live source.
    pub fn set_pending(&self, path: &str, progress: &Arc<Progress>, now: Vec<PendingContent>) {
        if let Some(Slot::File {
            progress: Some(p),
            pending,
            ..
        }) = self.slots().get_mut(path)
        {
            if Arc::ptr_eq(p, progress) {
                *pending = now;
            }
        }
    }

    /// Makes `progress` the live source of `path`'s position: each save
    /// writes its committed offset.
    pub fn track(&self, path: &str, identity: FileIdentity, progress: Arc<Progress>) {
        self.slots().insert(
            path.to_string(),
            Slot::File {
                offset: progress.committed(),
                identity: Some(identity),
                progress: Some(progress),
                pending: Vec::new(),
            },
        );
    }

    /// Stops following a live source, keeping its last committed offset.
    /// Only if `progress` is the one tracked (a newer file may own the path).
    pub fn untrack(&self, path: &str, progress: &Arc<Progress>) {
        if let Some(Slot::File {
            offset,
            progress: p,
            ..
        }) = self.slots().get_mut(path)
        {
            if p.as_ref().is_some_and(|p| Arc::ptr_eq(p, progress)) {
                *offset = progress.committed();
                *p = None;
            }
        }
    }

    /// Forgets a position (a file gone for good).
    pub fn remove(&self, path: &str) {
        self.slots().remove(path);
    }

    /// Saves every position now (atomically). Read-only positions do nothing.
    pub fn save(&self) -> std::io::Result<()> {
        if self.settings.read_only {
            return Ok(());
        }
        let mut written = self.save_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut file = PositionsFile::default();
        let mut ids = IdentityFile::default();
        for (k, slot) in self.slots().iter_mut() {
            match slot {
                Slot::File {
                    offset,
                    identity,
                    progress,
                    pending,
                } => {
                    if let Some(p) = progress {
                        *offset = p.committed();
                    }
                    file.positions.insert(k.clone(), offset.to_string());
                    if let Some(id) = identity {
                        // The last record written, as the previous one
                        // (unless it is this one again).
                        let previous = written.get(k).and_then(|w| {
                            if w.offset == *offset && w.identity == *id && w.pending == *pending {
                                w.previous.clone()
                            } else {
                                Some(PreviousRecord {
                                    offset: w.offset,
                                    identity: w.identity.clone(),
                                    pending: w.pending.clone(),
                                })
                            }
                        });
                        ids.files.insert(
                            k.clone(),
                            IdentityRecord {
                                offset: *offset,
                                identity: id.clone(),
                                previous,
                                pending: pending.clone(),
                            },
                        );
                    }
                }
                Slot::Raw(v) => {
                    file.positions.insert(k.clone(), v.clone());
                }
            }
        }
        let path = &self.settings.filename;
        let ids_yaml = serde_yaml_ng::to_string(&ids).map_err(std::io::Error::other)?;
        write_atomically(&identity_path(path), ids_yaml.as_bytes())?;
        *written = ids.files;
        let yaml = serde_yaml_ng::to_string(&file).map_err(std::io::Error::other)?;
        write_atomically(path, yaml.as_bytes())
    }

    /// Saves soon after delivery moves a position (checked every
    /// [`SAVE_CHECK`]), and at least every `sync_period`, until the task is
    /// aborted (the caller saves once more on shutdown). promtail only saves
    /// every `sync_period`, so a crash re-sends up to that much; saving on
    /// change bounds it to what was in flight.
    pub fn spawn_sync(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let period = me.settings.sync_period.max(Duration::from_millis(10));
            let mut tick = tokio::time::interval(period.min(SAVE_CHECK));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            let mut saved = me.fingerprint();
            let mut last_save = tokio::time::Instant::now();
            loop {
                tick.tick().await;
                let now = me.fingerprint();
                if now == saved && last_save.elapsed() < period {
                    continue;
                }
                let m = Arc::clone(&me);
                let r = tokio::task::spawn_blocking(move || m.save()).await;
                if let Ok(Err(e)) = r {
                    tracing::error!(file = %me.settings.filename.display(), error = %e, "error writing positions file");
                }
                saved = now;
                last_save = tokio::time::Instant::now();
            }
        })
    }

    /// Changes whenever a saved value would: positions, keys, raw values.
    fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for (k, slot) in self.slots().iter() {
            k.hash(&mut h);
            match slot {
                Slot::File {
                    offset, progress, ..
                } => progress
                    .as_ref()
                    .map_or(*offset, |p| p.committed())
                    .hash(&mut h),
                Slot::Raw(v) => v.hash(&mut h),
            }
        }
        h.finish()
    }
}

/// How often delivered progress is checked for a save.
const SAVE_CHECK: Duration = Duration::from_millis(200);

/// promtail's file may be empty (written before any target existed).
fn parse_positions(bytes: &[u8]) -> Result<BTreeMap<String, String>, String> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(BTreeMap::new());
    }
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let f: PositionsFile = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    Ok(f.positions)
}

fn read_identities(path: &Path) -> BTreeMap<String, IdentityRecord> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    match serde_yaml_ng::from_str::<IdentityFile>(&text) {
        Ok(f) => f.files,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "ignoring the file identities: positions apply by path only");
            BTreeMap::new()
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Where our file identities are kept, beside the positions file.
pub fn identity_path(positions: &Path) -> PathBuf {
    with_suffix(positions, ".identity.yaml")
}

/// Temp file in the same directory, fsync, rename over, fsync the
/// directory: after a crash the file is the old one or the new one.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let tmp = with_suffix(path, ".tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(&dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path) -> PositionsSettings {
        PositionsSettings {
            filename: dir.join("positions.yaml"),
            sync_period: Duration::from_millis(50),
            ..Default::default()
        }
    }

    #[test]
    fn reads_a_plain_promtail_file_unchanged() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("positions.yaml"),
            "positions:\n  /var/log/syslog: \"1234\"\n  journal-systemd: s=abc;i=12;b=x\n",
        )
        .unwrap();
        let p = Positions::load(settings(d.path()));
        assert_eq!(
            p.get("/var/log/syslog"),
            Some(SavedPosition {
                offset: 1234,
                identity: None
            })
        );
        assert_eq!(
            p.get_raw("journal-systemd").as_deref(),
            Some("s=abc;i=12;b=x")
        );
        assert_eq!(p.get("/nope"), None);
    }

    #[test]
    fn saves_atomically_what_progress_committed_and_promtail_can_read_it() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("a.log");
        std::fs::write(&log, "one\ntwo\n").unwrap();
        let id = FileIdentity::of(&std::fs::File::open(&log).unwrap()).unwrap();
        let p = Positions::load(settings(d.path()));
        let progress = Progress::new(0);
        p.track(log.to_str().unwrap(), id.clone(), Arc::clone(&progress));
        p.put_raw("journal-j", "cursor=1".into());
        let a = progress.track(4);
        let _b = progress.track(8);
        a.complete();
        p.save().unwrap();
        let text = std::fs::read_to_string(d.path().join("positions.yaml")).unwrap();
        // promtail's own reading: a strict `positions:` map of strings.
        let parsed: PositionsFile = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(parsed.positions[log.to_str().unwrap()], "4");
        assert_eq!(parsed.positions["journal-j"], "cursor=1");
        assert!(!d.path().join("positions.yaml.tmp").exists());

        let again = Positions::load(settings(d.path()));
        let saved = again.get(log.to_str().unwrap()).unwrap();
        assert_eq!(saved.offset, 4);
        assert_eq!(saved.identity.as_ref(), Some(&id));
        assert!(id.matches(&std::fs::File::open(&log).unwrap()));
    }

    #[test]
    fn an_identity_recognises_a_reused_path_and_a_rewritten_head() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("a.log");
        std::fs::write(&log, "first file\n").unwrap();
        let id = FileIdentity::of(&std::fs::File::open(&log).unwrap()).unwrap();
        std::fs::rename(&log, d.path().join("a.log.1")).unwrap();
        std::fs::write(&log, "second file\n").unwrap();
        assert!(
            !id.matches(&std::fs::File::open(&log).unwrap()),
            "new inode"
        );
        let old = std::fs::File::open(d.path().join("a.log.1")).unwrap();
        assert!(id.matches(&old));
        std::fs::write(d.path().join("a.log.1"), "FIRST file\n").unwrap();
        assert!(!id.matches(&old), "same inode, other content");
    }

    #[test]
    fn a_corrupt_file_is_reported_kept_and_never_blocks() {
        for (ignore, content) in [
            (false, "positions:\n  /a: \"12"),
            (true, "\u{0}\u{1}garbage: ["),
        ] {
            let d = tempfile::tempdir().unwrap();
            std::fs::write(d.path().join("positions.yaml"), content).unwrap();
            let mut s = settings(d.path());
            s.ignore_invalid_yaml = ignore;
            let p = Positions::load(s);
            assert_eq!(p.get("/a"), None);
            assert_eq!(
                std::fs::read_to_string(d.path().join("positions.yaml.corrupt")).unwrap(),
                content
            );
            p.put("/b", 3, None);
            p.save().unwrap();
            assert_eq!(
                Positions::load(settings(d.path()))
                    .get("/b")
                    .unwrap()
                    .offset,
                3
            );
        }
    }

    #[test]
    fn a_crash_between_the_two_writes_keeps_the_identity() {
        // The identity file is written first: killed before the positions
        // file followed, the positions file is one save behind. Its offset
        // must keep its identity, or a file truncated while we were down
        // would be taken for a promtail position and its copy not read.
        let d = tempfile::tempdir().unwrap();
        let p = Positions::load(settings(d.path()));
        let id = |fp: &[u8]| FileIdentity {
            dev: 1,
            ino: 2,
            fp_len: fp.len() as u64,
            fp: crate::sources::file::identity::fnv1a(fp),
        };
        p.put("/a", 300, Some(id(b"old content")));
        p.save().unwrap();
        let behind = std::fs::read(d.path().join("positions.yaml")).unwrap();
        p.put("/a", 40, Some(id(b"new content")));
        p.save().unwrap();
        std::fs::write(d.path().join("positions.yaml"), &behind).unwrap();
        let again = Positions::load(settings(d.path()));
        assert_eq!(
            again.get("/a"),
            Some(SavedPosition {
                offset: 300,
                identity: Some(id(b"old content"))
            })
        );
        // Saved in full, the newest record applies; after one more save
        // the one before it is still kept as the previous.
        again.put("/a", 40, Some(id(b"new content")));
        again.save().unwrap();
        again.save().unwrap();
        let last = Positions::load(settings(d.path()));
        assert_eq!(last.get("/a").unwrap().identity, Some(id(b"new content")));
        let text =
            std::fs::read_to_string(identity_path(&d.path().join("positions.yaml"))).unwrap();
        assert!(text.contains("previous"), "{text}");
    }

    #[test]
    fn a_stale_identity_is_not_applied() {
        let d = tempfile::tempdir().unwrap();
        let p = Positions::load(settings(d.path()));
        let id = FileIdentity {
            dev: 1,
            ino: 2,
            fp_len: 0,
            fp: crate::sources::file::identity::fnv1a(b""),
        };
        p.put("/a", 10, Some(id));
        p.save().unwrap();
        // promtail (or an older us) wrote another offset since.
        std::fs::write(
            d.path().join("positions.yaml"),
            "positions:\n  /a: \"20\"\n",
        )
        .unwrap();
        let again = Positions::load(settings(d.path()));
        assert_eq!(
            again.get("/a"),
            Some(SavedPosition {
                offset: 20,
                identity: None
            })
        );
    }

    #[tokio::test]
    async fn syncs_periodically_and_read_only_never_writes() {
        let d = tempfile::tempdir().unwrap();
        let p = Positions::load(settings(d.path()));
        let task = p.spawn_sync();
        p.put("/x", 7, None);
        // Saved by the sync task alone (no explicit save); generous for a
        // loaded machine.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let saved = Positions::load(settings(d.path())).get("/x");
            if saved.as_ref().is_some_and(|s| s.offset == 7) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never synced: {saved:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        task.abort();

        let d = tempfile::tempdir().unwrap();
        let mut s = settings(d.path());
        s.read_only = true;
        let p = Positions::load(s);
        p.put("/x", 7, None);
        p.save().unwrap();
        assert!(!d.path().join("positions.yaml").exists());
    }
}
