//! The unit that flows from sources through the pipeline to the clients.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::SystemTime;

use crate::ack::Ack;

/// A stream's labels, sorted by name as Loki orders them.
pub type LabelSet = BTreeMap<String, String>;

/// An entry's label set, shared by every entry of a target: cloning it is
/// a reference count, not a copy of its strings (most entries never change
/// their labels). Changing it goes through `DerefMut`, which copies a
/// shared set first (copy on write), so a stage that sets a label on one
/// entry never changes another's.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Arc<LabelSet>);

impl Labels {
    /// The same set, not only an equal one: entries of one target, or of
    /// one interned stream, share it. A cheap test before comparing.
    pub fn same(&self, other: &Labels) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Whether other holders share this set (changing it copies it).
    pub fn is_shared(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }

    /// The set's address: equal for two holders of the same set. Only
    /// meaningful while one of them keeps the set alive.
    pub fn address(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }
}

impl Deref for Labels {
    type Target = LabelSet;
    fn deref(&self) -> &LabelSet {
        &self.0
    }
}

impl DerefMut for Labels {
    fn deref_mut(&mut self) -> &mut LabelSet {
        Arc::make_mut(&mut self.0)
    }
}

impl From<LabelSet> for Labels {
    fn from(l: LabelSet) -> Labels {
        Labels(Arc::new(l))
    }
}

impl FromIterator<(String, String)> for Labels {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Labels {
        LabelSet::from_iter(pairs).into()
    }
}

impl PartialEq<LabelSet> for Labels {
    fn eq(&self, other: &LabelSet) -> bool {
        *self.0 == *other
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One log line on its way to Loki.
#[derive(Debug)]
pub struct Entry {
    /// Target labels after relabeling, then whatever the pipeline changed.
    /// Names starting with `__` are internal and never sent.
    pub labels: Labels,
    /// When the line was read, until a `timestamp` stage sets it.
    pub timestamp: SystemTime,
    /// The line without its trailing newline (`\n` or `\r\n`).
    pub line: String,
    /// Loki's structured metadata (non-indexed labels), in insertion order.
    pub structured_metadata: Vec<(String, String)>,
    /// Completed when this entry is delivered or deliberately dropped;
    /// `None` for entries no source position depends on.
    pub ack: Option<Ack>,
}

impl Entry {
    pub fn new(labels: impl Into<Labels>, line: String) -> Self {
        Entry {
            labels: labels.into(),
            timestamp: SystemTime::now(),
            line,
            structured_metadata: Vec::new(),
            ack: None,
        }
    }

    /// Marks this entry as finished with (delivered, or dropped on purpose
    /// and counted), so the source may move its saved position past it.
    pub fn complete(mut self) {
        if let Some(ack) = self.ack.take() {
            ack.complete();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changing_shared_labels_copies_them_first() {
        let target: Labels = LabelSet::from([("job".to_string(), "a".to_string())]).into();
        let mut e = Entry::new(target.clone(), "x".into());
        assert!(e.labels.same(&target));
        e.labels.insert("level".into(), "info".into());
        assert!(!e.labels.same(&target));
        assert_eq!(target.len(), 1, "the target's set is untouched");
        assert_eq!(e.labels.len(), 2);
    }
}
