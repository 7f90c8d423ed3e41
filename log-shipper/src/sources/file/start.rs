//! Where to start reading a file the job has just found: a pure function
//! of what is known about it, so every case is one row of a table test.
//!
//! The job gathers the facts (saved positions, what its watchers read or
//! claimed, whether the file starts like content a watcher holds) and
//! [`decide`] says what to do. Reading too little loses lines; reading too
//! much duplicates them: where the facts are unclear, the answer leans to
//! the duplicate.

use std::time::Duration;

/// A saved position for the file's path, and whose it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Saved {
    pub offset: u64,
    pub owner: Owner,
}

/// Whose content a saved position describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// This file, with the content it has now (same device, inode and
    /// first bytes).
    ThisFile,
    /// This inode, but its first bytes changed: it was truncated (or
    /// rewritten) while we were not running.
    ThisInodeNewContent,
    /// Another inode (the file at this path was rotated away).
    OtherFile,
    /// promtail's own position: the path only.
    PathOnly,
}

/// What is known of a file found by the glob.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// Its size (`u64::MAX` for a `.gz`, whose offsets count decompressed
    /// bytes).
    pub len: u64,
    /// A watcher took it as the copy of a truncated file: read already.
    pub claimed: bool,
    /// A watcher of this job finished with this inode at this offset, and
    /// its first bytes are still those it read.
    pub ended_at: Option<u64>,
    /// The path's saved position.
    pub saved: Option<Saved>,
    /// A position saved under another path for this very file (rotated to
    /// this name while we were not running).
    pub saved_elsewhere: Option<u64>,
    /// It starts like content a watcher of this job holds (probably its
    /// copy, being made or about to be claimed): for how long it has.
    pub looks_like_copy_for: Option<Duration>,
    /// Alloy's `tail_from_end`, for a file there when the job started:
    /// where its last complete line ends (its backlog is not shipped).
    pub from_end: Option<u64>,
}

/// What to do with the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Leave it: it was read as another file's copy.
    Skip,
    /// Not yet: look again at the next sync.
    Wait,
    /// Read it from this offset.
    At(u64),
    /// It was truncated while we were not running: read the rest of its old
    /// content from a copy (found by the saved fingerprint) from this
    /// offset, then the file from its start.
    CopyFirst(u64),
}

/// The decision. `copy_wait`: how long a file that looks like a copy is
/// held back before it is taken for a file of its own.
pub fn decide(f: &Facts, copy_wait: Duration) -> Start {
    if f.claimed {
        return Start::Skip;
    }
    if let Some(offset) = f.ended_at.filter(|o| *o <= f.len) {
        return Start::At(offset);
    }
    if let Some(saved) = f.saved {
        match saved.owner {
            Owner::ThisFile if saved.offset <= f.len => return Start::At(saved.offset),
            // Shorter than what was read, same first bytes: truncated and
            // written again while we were away.
            Owner::ThisFile => return Start::CopyFirst(saved.offset),
            // Its first bytes changed (so some were known): what of that
            // content was not delivered, even all of it, is in its copy.
            Owner::ThisInodeNewContent => return Start::CopyFirst(saved.offset),
            // promtail's rule for its own positions.
            Owner::PathOnly if saved.offset <= f.len => return Start::At(saved.offset),
            Owner::PathOnly => return Start::At(0),
            Owner::OtherFile => {}
        }
    }
    if let Some(offset) = f.saved_elsewhere.filter(|o| *o <= f.len) {
        return Start::At(offset);
    }
    if let Some(end) = f.from_end.filter(|e| *e <= f.len) {
        return Start::At(end);
    }
    match f.looks_like_copy_for {
        Some(waited) if waited < copy_wait => Start::Wait,
        _ => Start::At(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(2);

    fn saved(offset: u64, owner: Owner) -> Option<Saved> {
        Some(Saved { offset, owner })
    }

    #[test]
    fn decision_table() {
        let new = Facts {
            len: 100,
            ..Default::default()
        };
        let rows: Vec<(&str, Facts, Start)> = vec![
            (
                "a new file is read from its start at once",
                new,
                Start::At(0),
            ),
            (
                "an empty new file too (no hold: it is the new live file after a rotation)",
                Facts { len: 0, ..new },
                Start::At(0),
            ),
            (
                "a copy a watcher read is never read again",
                Facts {
                    claimed: true,
                    saved: saved(10, Owner::ThisFile),
                    ..new
                },
                Start::Skip,
            ),
            (
                "a file this job finished with continues where it stopped",
                Facts {
                    ended_at: Some(80),
                    ..new
                },
                Start::At(80),
            ),
            (
                "finished with at an offset past its size: judged by its saved position",
                Facts {
                    ended_at: Some(180),
                    saved: saved(40, Owner::ThisFile),
                    ..new
                },
                Start::At(40),
            ),
            (
                "our saved position of this very file",
                Facts {
                    saved: saved(60, Owner::ThisFile),
                    ..new
                },
                Start::At(60),
            ),
            (
                "saved past its end with the same first bytes: truncated while away",
                Facts {
                    saved: saved(160, Owner::ThisFile),
                    ..new
                },
                Start::CopyFirst(160),
            ),
            (
                "same inode, other first bytes: truncated while away, its copy first",
                Facts {
                    saved: saved(60, Owner::ThisInodeNewContent),
                    ..new
                },
                Start::CopyFirst(60),
            ),
            (
                "same inode, other first bytes, nothing delivered yet: all of it from its copy",
                Facts {
                    saved: saved(0, Owner::ThisInodeNewContent),
                    ..new
                },
                Start::CopyFirst(0),
            ),
            (
                "promtail's position is taken as promtail takes it",
                Facts {
                    saved: saved(70, Owner::PathOnly),
                    ..new
                },
                Start::At(70),
            ),
            (
                "promtail's position past the end: the file was truncated, start over",
                Facts {
                    saved: saved(170, Owner::PathOnly),
                    ..new
                },
                Start::At(0),
            ),
            (
                "the path's position is another file's: this one is new",
                Facts {
                    saved: saved(70, Owner::OtherFile),
                    ..new
                },
                Start::At(0),
            ),
            (
                "this file's position saved under its old name (rotated while away)",
                Facts {
                    saved: saved(70, Owner::OtherFile),
                    saved_elsewhere: Some(90),
                    ..new
                },
                Start::At(90),
            ),
            (
                "looks like the copy of content a watcher holds: wait a little",
                Facts {
                    looks_like_copy_for: Some(Duration::from_millis(300)),
                    ..new
                },
                Start::Wait,
            ),
            (
                "still unclaimed after the wait: a file of its own (a duplicate, never a loss)",
                Facts {
                    looks_like_copy_for: Some(WAIT),
                    ..new
                },
                Start::At(0),
            ),
            (
                "a known position wins over looking like a copy",
                Facts {
                    saved: saved(30, Owner::ThisFile),
                    looks_like_copy_for: Some(Duration::ZERO),
                    ..new
                },
                Start::At(30),
            ),
            (
                "tail_from_end: a file without a position from its last line's end",
                Facts {
                    from_end: Some(90),
                    ..new
                },
                Start::At(90),
            ),
            (
                "tail_from_end: a saved position still wins",
                Facts {
                    from_end: Some(90),
                    saved: saved(40, Owner::ThisFile),
                    ..new
                },
                Start::At(40),
            ),
            (
                "a .gz is read from its decompressed offset",
                Facts {
                    len: u64::MAX,
                    saved: saved(5000, Owner::ThisFile),
                    ..new
                },
                Start::At(5000),
            ),
        ];
        for (what, facts, want) in rows {
            assert_eq!(decide(&facts, WAIT), want, "{what}: {facts:?}");
        }
    }
}
