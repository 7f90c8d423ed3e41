//! Finding the copy of a truncated file (logrotate's `copytruncate`).
//!
//! When a file we tail shrinks below what we read, the lines between our
//! read offset and the truncation were copied somewhere first: logrotate
//! copies, then truncates. The copy rarely matches the user's glob
//! (`/var/log/nginx/*.log` does not match `access.log.1`), so the watcher
//! looks for it itself: in the file's directory and in the directory the
//! target names for logrotate's `olddir` (`__rotated_dir__`), a file whose
//! first bytes are those of the content we were reading and which is at
//! least as long as what we need, or a `.gz` of it (`compress` without
//! `delaycompress`).

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::identity::fnv1a;

/// What a copy starts with: the length and FNV-1a hash of its first bytes
/// (at most [`super::identity::FINGERPRINT_BYTES`]). Built from the bytes
/// we read, or from a saved identity after a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub len: usize,
    pub hash: u64,
}

impl Head {
    pub fn of(bytes: &[u8]) -> Head {
        Head {
            len: bytes.len(),
            hash: fnv1a(bytes),
        }
    }
}

/// Files [`find`] passes over, by (device, inode): the truncated file
/// itself (`None`), and copies claimed already, while they still start
/// with the head they were claimed for. An inode number alone would not
/// do: with `delaycompress`, logrotate compresses `app.log.1` and removes
/// it, and the next copy, `app.log.1` again, often gets the freed inode.
pub type Skip = HashMap<(u64, u64), Option<Head>>;

/// A copy a watcher took: where it was found and what it starts with.
#[derive(Clone, Debug)]
pub struct Claim {
    pub path: PathBuf,
    pub head: Head,
}

/// What [`find`] passes over of the copies claimed so far.
pub fn skip_claimed(claims: &HashMap<(u64, u64), Claim>) -> Skip {
    claims.iter().map(|(k, c)| (*k, Some(c.head))).collect()
}

/// `file` starts with the bytes `head` was made of.
pub fn starts_with(file: &std::fs::File, head: Head) -> bool {
    let mut buf = vec![0u8; head.len];
    super::identity::read_head(file, &mut buf).ok() == Some(head.len) && fnv1a(&buf) == head.hash
}

/// `bytes` (a file's first bytes) begin with those `head` was made of.
pub fn bytes_start_with(bytes: &[u8], head: Head) -> bool {
    bytes.len() >= head.len && fnv1a(&bytes[..head.len]) == head.hash
}

/// Whether `skip` passes over this file.
fn skipped(skip: &Skip, dev_ino: (u64, u64), file: &std::fs::File) -> bool {
    match skip.get(&dev_ino) {
        None => false,
        Some(None) => true,
        Some(Some(claimed)) => starts_with(file, *claimed),
    }
}

/// A copy found: opened, so it can be read even if logrotate deletes or
/// compresses it next (`rotate 1`, `compress`).
#[derive(Debug)]
pub struct Copy {
    pub file: std::fs::File,
    pub path: PathBuf,
    /// Compressed: its offsets count decompressed bytes.
    pub gz: bool,
    pub dev_ino: (u64, u64),
}

#[derive(Debug)]
pub enum Found {
    Copy(Copy),
    /// A file with the right head but shorter than needed, or a `.gz` that
    /// does not decompress to that length yet: a copy still being written.
    Incomplete,
    Nothing,
}

/// Looks in `dirs` for a regular file not passed over by `skip` (the
/// truncated file itself, copies already claimed) that starts with `head`
/// and holds at least `need` bytes (decompressed, for `.gz`). Of several,
/// the most recently modified one: the copy of this truncation rather than
/// an older rotation with the same first lines. An empty head matches
/// nothing: there is no telling which file would be the copy.
pub fn find(dirs: &[PathBuf], head: Head, need: u64, skip: &Skip) -> Found {
    if head.len == 0 {
        return Found::Nothing;
    }
    let mut incomplete = false;
    let mut best: Option<(SystemTime, Copy)> = None;
    for (path, meta) in files_in(dirs) {
        let dev_ino = (meta.dev(), meta.ino());
        if !meta.is_file() || meta.len() == 0 {
            continue;
        }
        let gz = path.extension().is_some_and(|x| x == "gz");
        // A plain copy shorter than the head cannot be it; a .gz is
        // smaller than what it holds.
        if !gz && meta.len() < head.len as u64 {
            continue;
        }
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        if skipped(skip, dev_ino, &file) {
            continue;
        }
        match check(&file, gz, head, need, meta.len()) {
            Check::No => continue,
            Check::Short => incomplete = true,
            Check::Yes => {
                let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                // Prefer the plain copy over its compressed twin.
                let better = best
                    .as_ref()
                    .is_none_or(|(t, b)| mtime > *t || (mtime == *t && b.gz && !gz));
                if better {
                    best = Some((
                        mtime,
                        Copy {
                            file,
                            path,
                            gz,
                            dev_ino,
                        },
                    ));
                }
            }
        }
    }
    match best {
        Some((_, c)) => Found::Copy(c),
        None if incomplete => Found::Incomplete,
        None => Found::Nothing,
    }
}

/// What is in `dirs`, with its metadata (symlinks followed): where
/// [`find`] looks for copies.
fn files_in(dirs: &[PathBuf]) -> impl Iterator<Item = (PathBuf, std::fs::Metadata)> + '_ {
    dirs.iter()
        .flat_map(|dir| std::fs::read_dir(dir).into_iter().flatten().flatten())
        .filter_map(|e| {
            let path = e.path();
            let meta = std::fs::metadata(&path).ok()?;
            Some((path, meta))
        })
}

/// The files [`find`] looked at, for the log when it found none: name,
/// size, and why each is not the copy.
pub fn describe(dirs: &[PathBuf], head: Head, skip: &Skip) -> String {
    let mut out = Vec::new();
    for (path, meta) in files_in(dirs) {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let gz = path.extension().is_some_and(|x| x == "gz");
        let verdict = if !meta.is_file() {
            "not a file"
        } else {
            match std::fs::File::open(&path) {
                Ok(f) if skipped(skip, (meta.dev(), meta.ino()), &f) => {
                    "claimed or the file itself"
                }
                Ok(f) => match check(&f, gz, head, 0, meta.len()) {
                    Check::No => "other head",
                    _ => "same head",
                },
                Err(_) => "unreadable",
            }
        };
        out.push(format!(
            "{name} ({} B, inode {}): {verdict}",
            meta.len(),
            meta.ino()
        ));
    }
    // Those with the right head first; a big log directory is cut short.
    out.sort_by_key(|d| !d.ends_with("same head"));
    let more = out.len().saturating_sub(20);
    out.truncate(20);
    if more > 0 {
        out.push(format!("{more} more"));
    }
    out.join("; ")
}

enum Check {
    Yes,
    Short,
    No,
}

fn check(file: &std::fs::File, gz: bool, head: Head, need: u64, len: u64) -> Check {
    if !gz {
        if !starts_with(file, head) {
            return Check::No;
        }
        return if len >= need {
            Check::Yes
        } else {
            Check::Short
        };
    }
    // Decompress the head, then the rest to its end: gzip writes the .gz
    // while we look (`compress` without `delaycompress`), and a stream
    // without its trailer is not complete yet, however long it is.
    use std::io::Seek;
    let Ok(mut f) = file.try_clone() else {
        return Check::No;
    };
    if f.seek(std::io::SeekFrom::Start(0)).is_err() {
        return Check::No;
    }
    let mut dec = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(f));
    let mut buf = vec![0u8; head.len];
    if dec.read_exact(&mut buf).is_err() {
        return Check::No;
    }
    if fnv1a(&buf) != head.hash {
        return Check::No;
    }
    let rest = need.saturating_sub(head.len as u64);
    match std::io::copy(&mut dec, &mut std::io::sink()) {
        Ok(n) if n >= rest => Check::Yes,
        _ => Check::Short,
    }
}

/// The directories a file's copies are looked for in: its own, and the
/// target's rotated directory (absolute, or relative to the file's, as
/// logrotate's `olddir`).
pub fn dirs_of(path: &Path, rotated_dir: Option<&str>) -> Vec<PathBuf> {
    let own = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut dirs = vec![own.clone()];
    if let Some(d) = rotated_dir.filter(|d| !d.is_empty()) {
        let d = own.join(d);
        if d != own {
            dirs.push(d);
        }
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::write(path, bytes).unwrap();
    }

    fn gz(path: &Path, bytes: &[u8]) {
        let f = std::fs::File::create(path).unwrap();
        let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap();
    }

    fn found_path(f: Found) -> Option<PathBuf> {
        match f {
            Found::Copy(c) => Some(c.path),
            _ => None,
        }
    }

    #[test]
    fn finds_the_copy_by_its_head_and_length() {
        let d = tempfile::tempdir().unwrap();
        let content = b"line 1\nline 2\nline 3\n";
        write(&d.path().join("app.log"), b"");
        write(&d.path().join("other.log"), b"something else entirely\n");
        write(&d.path().join("app.log.1"), content);
        let dirs = vec![d.path().to_path_buf()];
        let head = Head::of(&content[..7]);
        let f = find(&dirs, head, content.len() as u64, &Skip::new());
        assert_eq!(found_path(f), Some(d.path().join("app.log.1")));
        // Needing more than the copy holds: a copy still being written.
        assert!(matches!(
            find(&dirs, head, 1000, &Skip::new()),
            Found::Incomplete
        ));
        // Skipped: the truncated file itself, or claimed already.
        let m = std::fs::metadata(d.path().join("app.log.1")).unwrap();
        let key = (m.dev(), m.ino());
        for skip in [Skip::from([(key, None)]), Skip::from([(key, Some(head))])] {
            assert!(matches!(find(&dirs, head, 1, &skip), Found::Nothing));
        }
        // Claimed for another head: the inode was freed and reused by a
        // new copy (logrotate's `delaycompress` compresses `app.log.1`,
        // then copies the log to `app.log.1` again).
        let claimed_before = Skip::from([(key, Some(Head::of(b"an older content")))]);
        let f = find(&dirs, head, 1, &claimed_before);
        assert_eq!(found_path(f), Some(d.path().join("app.log.1")));
        // Nothing read yet: no telling which file is the copy.
        assert!(matches!(
            find(&dirs, Head::of(b""), 0, &Skip::new()),
            Found::Nothing
        ));
    }

    #[test]
    fn finds_a_compressed_copy_and_an_olddir_copy() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("old")).unwrap();
        let content = b"alpha\nbeta\ngamma\n".repeat(100);
        gz(&d.path().join("old/app.log.1.gz"), &content);
        let dirs = dirs_of(&d.path().join("app.log"), Some("old"));
        assert_eq!(dirs, vec![d.path().to_path_buf(), d.path().join("old")]);
        let head = Head::of(&content[..20]);
        let f = find(&dirs, head, content.len() as u64, &Skip::new());
        assert_eq!(found_path(f), Some(d.path().join("old/app.log.1.gz")));
        // A .gz cut short (compression in progress) is not complete yet,
        // even when what it holds so far covers what is needed.
        let whole = std::fs::read(d.path().join("old/app.log.1.gz")).unwrap();
        write(
            &d.path().join("old/app.log.1.gz"),
            &whole[..whole.len() / 2],
        );
        assert!(!matches!(
            find(&dirs, head, 20, &Skip::new()),
            Found::Copy(_)
        ));
    }

    #[test]
    fn the_newest_of_several_matching_copies_wins() {
        let d = tempfile::tempdir().unwrap();
        let content = b"same first line\nmore\n";
        write(&d.path().join("app.log.2"), content);
        let old = std::fs::File::options()
            .write(true)
            .open(d.path().join("app.log.2"))
            .unwrap();
        old.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
            .unwrap();
        write(&d.path().join("app.log.1"), content);
        let f = find(
            &[d.path().to_path_buf()],
            Head::of(&content[..10]),
            5,
            &Skip::new(),
        );
        assert_eq!(found_path(f), Some(d.path().join("app.log.1")));
    }
}
