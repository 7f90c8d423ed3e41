//! Delivery tracking: which bytes of a source may be recorded as done.
//!
//! A source creates one [`Progress`] per file (or stream) and hands each
//! entry an [`Ack`] carrying the position just after that entry. Entries
//! complete out of order (dropped by a stage at once, delivered when a batch
//! is accepted), so the committed position only advances over the longest
//! prefix of completed entries: whatever is still in flight is read again
//! after a crash, never skipped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The delivery state of one source (one file).
#[derive(Debug)]
pub struct Progress {
    inner: Mutex<ProgressInner>,
}

#[derive(Debug)]
struct ProgressInner {
    next_seq: u64,
    /// seq -> (position after the entry, completed?) for entries in flight.
    in_flight: BTreeMap<u64, (u64, bool)>,
    committed: u64,
}

impl Progress {
    /// A source whose saved position is `start` (0 for a new file).
    pub fn new(start: u64) -> Arc<Self> {
        Arc::new(Progress {
            inner: Mutex::new(ProgressInner {
                next_seq: 0,
                in_flight: BTreeMap::new(),
                committed: start,
            }),
        })
    }

    /// Registers the next entry, which ends at `end`, and returns its ack.
    /// Entries must be registered in the order of the source.
    pub fn track(self: &Arc<Self>, end: u64) -> Ack {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.in_flight.insert(seq, (end, false));
        Ack {
            shared: Arc::new(AckShared {
                progress: Arc::clone(self),
                seq,
                remaining: AtomicUsize::new(1),
                merged: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Moves the committed position to `position` when nothing is in flight
    /// (e.g. a truncated file starting over at 0, or bytes skipped as a
    /// partial line was flushed). Returns false, changing nothing, otherwise.
    pub fn reset_if_idle(&self, position: u64) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.in_flight.is_empty() {
            inner.committed = position;
            true
        } else {
            false
        }
    }

    /// The position up to which every entry is completed.
    pub fn committed(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .committed
    }

    /// How many entries are read but not yet completed.
    pub fn in_flight(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .in_flight
            .len()
    }

    fn complete(&self, seq: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = inner.in_flight.get_mut(&seq) {
            slot.1 = true;
        }
        // Advance over the completed prefix.
        while let Some(entry) = inner.in_flight.first_entry() {
            let (end, done) = *entry.get();
            if !done {
                break;
            }
            entry.remove();
            inner.committed = end;
        }
    }
}

#[derive(Debug)]
struct AckShared {
    progress: Arc<Progress>,
    seq: u64,
    /// How many holders (clients) must still complete it.
    remaining: AtomicUsize,
    /// Acks of entries folded into this one (a multiline block's lines),
    /// completed with it.
    merged: Mutex<Vec<Ack>>,
}

/// A token for one entry. Dropping it without [`Ack::complete`] leaves the
/// entry in flight, so its bytes are read again after a restart: a lost ack
/// can cause a duplicate, never a loss.
#[derive(Debug)]
pub struct Ack {
    shared: Arc<AckShared>,
}

impl Ack {
    /// Completes this holder's share; the entry is done when every share is.
    pub fn complete(self) {
        if self.shared.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.progress.complete(self.shared.seq);
            let merged =
                std::mem::take(&mut *self.shared.merged.lock().unwrap_or_else(|e| e.into_inner()));
            for a in merged {
                a.complete();
            }
        }
    }

    /// Folds `other` into this ack: completing the result completes both.
    /// Stages that join entries (multiline, cri partial lines) use it so the
    /// joined entry stands for every line in it.
    pub fn merge(self, other: Ack) -> Ack {
        self.shared
            .merged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(other);
        self
    }

    /// Turns this ack into `n` shares (one per client the entry fans out to);
    /// the entry completes when all `n` are completed. `n == 0` completes it.
    pub fn split(self, n: usize) -> Vec<Ack> {
        if n == 0 {
            self.complete();
            return Vec::new();
        }
        self.shared.remaining.fetch_add(n - 1, Ordering::AcqRel);
        (0..n)
            .map(|_| Ack {
                shared: Arc::clone(&self.shared),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_the_completed_prefix() {
        let p = Progress::new(10);
        let a = p.track(20);
        let b = p.track(30);
        let c = p.track(40);
        c.complete();
        assert_eq!(p.committed(), 10, "a later entry alone moves nothing");
        a.complete();
        assert_eq!(p.committed(), 20);
        b.complete();
        assert_eq!(p.committed(), 40);
        assert_eq!(p.in_flight(), 0);
    }

    #[test]
    fn a_dropped_ack_holds_the_position() {
        let p = Progress::new(0);
        let a = p.track(5);
        let b = p.track(9);
        drop(a);
        b.complete();
        assert_eq!(p.committed(), 0);
        assert!(!p.reset_if_idle(0));
    }

    #[test]
    fn split_waits_for_every_share() {
        let p = Progress::new(0);
        let mut shares = p.track(7).split(2);
        shares.pop().unwrap().complete();
        assert_eq!(p.committed(), 0);
        shares.pop().unwrap().complete();
        assert_eq!(p.committed(), 7);
        p.track(8).split(0);
        assert_eq!(p.committed(), 8);
    }

    #[test]
    fn a_merged_ack_completes_every_entry_in_it() {
        let p = Progress::new(0);
        let a = p.track(5);
        let b = p.track(9);
        let c = p.track(12);
        let joined = a.merge(b).merge(c);
        assert_eq!(p.committed(), 0);
        let mut shares = joined.split(2);
        shares.pop().unwrap().complete();
        assert_eq!(p.committed(), 0, "one client of two is not enough");
        shares.pop().unwrap().complete();
        assert_eq!(p.committed(), 12);
        assert_eq!(p.in_flight(), 0);
    }
}
