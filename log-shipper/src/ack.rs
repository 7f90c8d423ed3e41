//! Delivery tracking: which bytes of a source may be recorded as done.
//!
//! A source creates one [`Progress`] per file (or stream) and hands each
//! entry an [`Ack`] carrying the position just after that entry. Entries
//! complete out of order (dropped by a stage at once, delivered when a batch
//! is accepted), so the committed position only advances over the longest
//! prefix of completed entries: whatever is still in flight is read again
//! after a crash, never skipped.
//!
//! Whoever must wait for deliveries (a held push, a file's next content)
//! waits with [`Progress::wait_until`], woken when the prefix advances.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// The delivery state of one source (one file).
#[derive(Debug)]
pub struct Progress {
    inner: Mutex<ProgressInner>,
    /// Told each time the completed prefix advances.
    advanced: Notify,
}

#[derive(Debug)]
struct ProgressInner {
    /// Sequence number of `in_flight[0]`.
    base: u64,
    /// Entries in flight, in source order: (position after the entry,
    /// holders that must still complete it; 0 once done). Sequence numbers
    /// are consecutive, so a queue indexed by `seq - base` is all it takes
    /// (no allocation per entry).
    in_flight: VecDeque<(u64, u32)>,
    committed: u64,
    /// Acks folded into an entry (a multiline block's other lines), by the
    /// entry's sequence number: completed when it is. Empty unless a stage
    /// joins entries.
    merged: HashMap<u64, Vec<Ack>>,
}

impl ProgressInner {
    /// Completes one holder's share of `seq`; returns the acks merged into
    /// it once it is done, for the caller to complete without this lock
    /// (they may belong to this same source). `base` moves when the
    /// completed prefix advances.
    #[must_use]
    fn complete(&mut self, seq: u64) -> Vec<Ack> {
        let mut due = Vec::new();
        let Some(i) = seq.checked_sub(self.base) else {
            return due;
        };
        if let Some(slot) = self.in_flight.get_mut(i as usize) {
            if slot.1 > 0 {
                slot.1 -= 1;
                if slot.1 == 0 && !self.merged.is_empty() {
                    due = self.merged.remove(&seq).unwrap_or_default();
                }
            }
        }
        // Advance over the completed prefix.
        while let Some(&(end, 0)) = self.in_flight.front() {
            self.in_flight.pop_front();
            self.base += 1;
            self.committed = end;
        }
        due
    }
}

impl Progress {
    /// A source whose saved position is `start` (0 for a new file).
    pub fn new(start: u64) -> Arc<Self> {
        Arc::new(Progress {
            inner: Mutex::new(ProgressInner {
                base: 0,
                in_flight: VecDeque::new(),
                committed: start,
                merged: HashMap::new(),
            }),
            advanced: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, ProgressInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the next entry, which ends at `end`, and returns its ack.
    /// Entries must be registered in the order of the source.
    pub fn track(self: &Arc<Self>, end: u64) -> Ack {
        let mut inner = self.lock();
        let seq = inner.base + inner.in_flight.len() as u64;
        inner.in_flight.push_back((end, 1));
        Ack {
            progress: Arc::clone(self),
            seq,
        }
    }

    /// Moves the committed position to `position` when nothing is in flight
    /// (e.g. a truncated file starting over at 0, or bytes skipped as a
    /// partial line was flushed). Returns false, changing nothing, otherwise.
    pub fn reset_if_idle(&self, position: u64) -> bool {
        let mut inner = self.lock();
        if inner.in_flight.is_empty() {
            inner.committed = position;
            drop(inner);
            self.advanced.notify_waiters();
            true
        } else {
            false
        }
    }

    /// The position up to which every entry is completed.
    pub fn committed(&self) -> u64 {
        self.lock().committed
    }

    /// How many entries are read but not yet completed.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight.len()
    }

    /// Waits until `done` holds, looking again each time the completed
    /// prefix advances (no polling). Bound it with a timeout.
    pub async fn wait_until(&self, done: impl Fn(&Progress) -> bool) {
        loop {
            // Registered before looking, so an advance in between wakes us.
            let advanced = self.advanced.notified();
            tokio::pin!(advanced);
            advanced.as_mut().enable();
            if done(self) {
                return;
            }
            advanced.await;
        }
    }
}

/// A token for one entry. Dropping it without [`Ack::complete`] leaves the
/// entry in flight, so its bytes are read again after a restart: a lost ack
/// can cause a duplicate, never a loss.
#[derive(Debug)]
pub struct Ack {
    progress: Arc<Progress>,
    seq: u64,
}

impl Ack {
    /// Completes this holder's share; the entry is done when every share is.
    pub fn complete(self) {
        let (due, advanced) = {
            let mut inner = self.progress.lock();
            let base = inner.base;
            let due = inner.complete(self.seq);
            (due, inner.base != base)
        };
        if advanced {
            self.progress.advanced.notify_waiters();
        }
        Ack::complete_all(due);
    }

    /// Folds `other` into this ack: completing the result completes both.
    /// Stages that join entries (multiline, cri partial lines) use it so the
    /// joined entry stands for every line in it.
    pub fn merge(self, other: Ack) -> Ack {
        self.progress
            .lock()
            .merged
            .entry(self.seq)
            .or_default()
            .push(other);
        self
    }

    /// Completes many acks (a delivered batch), taking each source's lock
    /// once per run of acks of that source rather than once per ack.
    pub fn complete_all(acks: Vec<Ack>) {
        let mut due = Vec::new();
        let mut i = 0;
        while i < acks.len() {
            let progress = Arc::clone(&acks[i].progress);
            let mut inner = progress.lock();
            let base = inner.base;
            while i < acks.len() && Arc::ptr_eq(&progress, &acks[i].progress) {
                due.extend(inner.complete(acks[i].seq));
                i += 1;
            }
            let advanced = inner.base != base;
            drop(inner);
            if advanced {
                progress.advanced.notify_waiters();
            }
        }
        if !due.is_empty() {
            Ack::complete_all(due);
        }
    }

    /// Turns this ack into `n` shares (one per client the entry fans out to);
    /// the entry completes when all `n` are completed. `n == 0` completes it.
    pub fn split(self, n: usize) -> Vec<Ack> {
        if n == 0 {
            self.complete();
            return Vec::new();
        }
        {
            let mut inner = self.progress.lock();
            if let Some(i) = self.seq.checked_sub(inner.base) {
                if let Some(slot) = inner.in_flight.get_mut(i as usize) {
                    slot.1 = slot.1.saturating_add(n as u32 - 1);
                }
            }
        }
        (0..n)
            .map(|_| Ack {
                progress: Arc::clone(&self.progress),
                seq: self.seq,
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
    fn complete_all_handles_runs_of_several_sources() {
        let (p, q) = (Progress::new(0), Progress::new(100));
        let acks = vec![p.track(1), p.track(2), q.track(101), p.track(3)];
        let late = q.track(102);
        Ack::complete_all(acks);
        assert_eq!((p.committed(), p.in_flight()), (3, 0));
        assert_eq!((q.committed(), q.in_flight()), (101, 1));
        late.complete();
        assert_eq!(q.committed(), 102);
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

    #[test]
    fn merged_acks_complete_through_complete_all_too() {
        let p = Progress::new(0);
        let joined = p.track(3).merge(p.track(7));
        let other = p.track(9);
        Ack::complete_all(vec![joined, other]);
        assert_eq!((p.committed(), p.in_flight()), (9, 0));
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_the_prefix_advances() {
        let p = Progress::new(0);
        let (a, b) = (p.track(5), p.track(9));
        let waiter = {
            let p = Arc::clone(&p);
            tokio::spawn(async move { p.wait_until(|p| p.committed() >= 9).await })
        };
        b.complete();
        tokio::task::yield_now().await;
        assert!(
            !waiter.is_finished(),
            "9 is not committed while 5 is in flight"
        );
        // Completed from another thread, as a client's task does.
        std::thread::spawn(move || a.complete()).join().unwrap();
        // Woken by the ack, well before any poll could matter; the deadline
        // only bounds a lost wake-up.
        tokio::time::timeout(std::time::Duration::from_secs(30), waiter)
            .await
            .expect("not woken by the ack")
            .unwrap();
        // Already true: returns at once.
        p.wait_until(|p| p.in_flight() == 0).await;
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
}
