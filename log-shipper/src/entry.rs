//! The unit that flows from sources through the pipeline to the clients.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::ack::Ack;

/// A stream's labels, sorted by name as Loki orders them.
pub type LabelSet = BTreeMap<String, String>;

/// One log line on its way to Loki.
#[derive(Debug)]
pub struct Entry {
    /// Target labels after relabeling, then whatever the pipeline changed.
    /// Names starting with `__` are internal and never sent.
    pub labels: LabelSet,
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
    pub fn new(labels: LabelSet, line: String) -> Self {
        Entry {
            labels,
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
