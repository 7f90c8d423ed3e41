//! The per-entry "extracted" map of promtail's pipeline. It is reset, not
//! reallocated, for every entry: slots keep their `String` buffers, so a
//! steady stream of lines parses without allocating. Few keys per line make
//! a linear scan faster than hashing.

use crate::entry::LabelSet;

/// What Go type the value had (promtail keeps `interface{}` values; stages
/// such as `drop` with `value` compare only strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Number,
    Bool,
    /// JSON `null`: present, but converts to no string.
    Null,
    /// A JSON object or array, kept as its JSON text.
    Json,
}

#[derive(Debug, Default, Clone)]
struct Slot {
    key: String,
    value: String,
    kind: Option<Kind>,
}

#[derive(Debug, Default, Clone)]
pub struct Extracted {
    slots: Vec<Slot>,
    len: usize,
}

impl Extracted {
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Starts an entry: promtail seeds the map with the entry's labels.
    pub fn reset_from_labels(&mut self, labels: &LabelSet) {
        self.len = 0;
        for (k, v) in labels {
            self.set(k, Kind::Str, v);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn find(&self, key: &str) -> Option<usize> {
        self.slots[..self.len].iter().position(|s| s.key == key)
    }

    /// The value as promtail's getString sees it: `None` when absent or null.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        let s = &self.slots[self.find(key)?];
        (s.kind != Some(Kind::Null)).then_some(s.value.as_str())
    }

    /// The raw value and its kind, present even when null.
    pub fn get(&self, key: &str) -> Option<(&str, Kind)> {
        let s = &self.slots[self.find(key)?];
        Some((s.value.as_str(), s.kind.unwrap_or(Kind::Str)))
    }

    pub fn contains(&self, key: &str) -> bool {
        self.find(key).is_some()
    }

    /// Sets `key`, reusing buffers; returns the value buffer to fill.
    pub fn slot(&mut self, key: &str, kind: Kind) -> &mut String {
        let i = match self.find(key) {
            Some(i) => i,
            None => {
                if self.len == self.slots.len() {
                    self.slots.push(Slot::default());
                }
                let s = &mut self.slots[self.len];
                s.key.clear();
                s.key.push_str(key);
                self.len += 1;
                self.len - 1
            }
        };
        let s = &mut self.slots[i];
        s.kind = Some(kind);
        s.value.clear();
        &mut s.value
    }

    /// Removes `key` (the slot's buffers move to the end for reuse).
    pub fn remove(&mut self, key: &str) {
        if let Some(i) = self.find(key) {
            self.slots[i..self.len].rotate_left(1);
            self.len -= 1;
        }
    }

    pub fn set(&mut self, key: &str, kind: Kind, value: &str) {
        self.slot(key, kind).push_str(value);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, Kind)> {
        self.slots[..self.len].iter().map(|s| {
            (
                s.key.as_str(),
                s.value.as_str(),
                s.kind.unwrap_or(Kind::Str),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuse_keeps_values_apart() {
        let mut x = Extracted::default();
        x.set("a", Kind::Str, "1");
        x.set("b", Kind::Number, "2");
        x.set("a", Kind::Str, "3");
        assert_eq!(x.get_str("a"), Some("3"));
        assert_eq!(x.get("b"), Some(("2", Kind::Number)));
        x.clear();
        assert!(x.get("a").is_none());
        x.set("c", Kind::Null, "");
        assert!(x.contains("c"));
        assert_eq!(x.get_str("c"), None);
        assert_eq!(x.len(), 1);
    }
}
