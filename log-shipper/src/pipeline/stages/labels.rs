//! The label stages: `labels` (from the extracted map), `static_labels`,
//! `labeldrop` and `labelallow`.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use rustc_hash::{FxHashMap as HashMap, FxHasher};

use super::{valid_label_name, StageSpec};
use crate::entry::{Entry, Labels};
use crate::pipeline::{Extracted, Flow, Stage};

/// label name -> extracted source (empty: the same name).
pub type LabelsConfig = BTreeMap<String, Option<String>>;
/// label name -> value.
pub type StaticLabelsConfig = BTreeMap<String, Option<String>>;

fn check_names<'a>(names: impl Iterator<Item = &'a String>) -> Result<(), String> {
    for n in names {
        if !valid_label_name(n) {
            return Err(format!("invalid label name {n:?}"));
        }
    }
    Ok(())
}

/// Sets a label, reusing the value buffer when the label exists. A set
/// that already has the value is left alone (not copied, if shared).
fn set_label(labels: &mut Labels, name: &str, value: &str) {
    if labels.get(name).is_some_and(|v| v == value) {
        return;
    }
    match labels.get_mut(name) {
        Some(v) => {
            v.clear();
            v.push_str(value);
        }
        None => {
            labels.insert(name.to_string(), value.to_string());
        }
    }
}

pub struct LabelsStage {
    /// (label, source)
    pairs: Vec<(String, String)>,
    /// The label sets this stage made lately, by a hash of the set they
    /// were made from (its address: see [`Labels::same`]) and the values
    /// set, so the entries of one stream share one set instead of each
    /// carrying a copy (and the client finds their stream by address).
    made: HashMap<u64, Made>,
}

struct Made {
    from: Labels,
    values: Vec<Option<String>>,
    to: Labels,
}

/// Label sets a `labels` stage remembers; emptied when full.
const MAX_MADE: usize = 1024;

impl StageSpec for LabelsStage {
    const NAME: &'static str = "labels";
    const EXAMPLE: &'static str = "{level: null}";
    type Config = LabelsConfig;

    fn new(c: &LabelsConfig) -> Result<Self, String> {
        if c.is_empty() {
            return Err("labels stage requires at least one label".into());
        }
        check_names(c.keys())?;
        Ok(LabelsStage {
            pairs: name_source_pairs(c),
            made: HashMap::default(),
        })
    }
}

/// (name, extracted source) from a `labels`-style map (no source: the name).
pub(crate) fn name_source_pairs(c: &LabelsConfig) -> Vec<(String, String)> {
    c.iter()
        .map(|(l, s)| {
            let src = s.as_deref().filter(|s| !s.is_empty()).unwrap_or(l);
            (l.clone(), src.to_string())
        })
        .collect()
}

impl LabelsStage {
    /// The value each pair sets: absent or null sources set nothing, and an
    /// empty value is no label in Loki.
    fn values<'x>(&'x self, x: &'x Extracted) -> impl Iterator<Item = Option<&'x str>> + 'x {
        self.pairs
            .iter()
            .map(|(_, src)| x.get_str(src).filter(|v| !v.is_empty()))
    }
}

impl Stage for LabelsStage {
    fn process(&mut self, entry: &mut Entry, x: &mut Extracted) -> Flow {
        // Only a set other entries share (a target's, or one made here)
        // comes again; a set of this entry alone is changed in place.
        let remember = entry.labels.is_shared();
        let mut key = 0;
        if remember {
            // A fast hash: a collision only costs a miss (the set
            // and the values are compared before reuse).
            let mut h = FxHasher::default();
            entry.labels.address().hash(&mut h);
            self.values(x).for_each(|v| v.hash(&mut h));
            key = h.finish();
            if let Some(m) = self.made.get(&key) {
                if m.from.same(&entry.labels)
                    && self.values(x).eq(m.values.iter().map(|v| v.as_deref()))
                {
                    entry.labels = m.to.clone();
                    return Flow::Keep;
                }
            }
        }
        let from = entry.labels.clone();
        for ((label, _), v) in self.pairs.iter().zip(self.values(x)) {
            if let Some(v) = v {
                set_label(&mut entry.labels, label, v);
            }
        }
        if remember {
            if self.made.len() >= MAX_MADE {
                self.made.clear();
            }
            let values = self.values(x).map(|v| v.map(str::to_string)).collect();
            let to = entry.labels.clone();
            self.made.insert(key, Made { from, values, to });
        }
        Flow::Keep
    }
}

pub struct StaticLabelsStage {
    pairs: Vec<(String, String)>,
}

impl StageSpec for StaticLabelsStage {
    const NAME: &'static str = "static_labels";
    const EXAMPLE: &'static str = "{env: prod}";
    type Config = StaticLabelsConfig;

    fn new(c: &StaticLabelsConfig) -> Result<Self, String> {
        if c.is_empty() {
            return Err("static_labels requires at least one label".into());
        }
        check_names(c.keys())?;
        Ok(StaticLabelsStage {
            pairs: c
                .iter()
                .filter_map(|(k, v)| {
                    v.as_ref()
                        .filter(|v| !v.is_empty())
                        .map(|v| (k.clone(), v.clone()))
                })
                .collect(),
        })
    }
}

impl Stage for StaticLabelsStage {
    fn process(&mut self, entry: &mut Entry, _x: &mut Extracted) -> Flow {
        for (k, v) in &self.pairs {
            set_label(&mut entry.labels, k, v);
        }
        Flow::Keep
    }
}

pub struct LabelDropStage {
    names: Vec<String>,
}

impl StageSpec for LabelDropStage {
    const NAME: &'static str = "labeldrop";
    const EXAMPLE: &'static str = "[filename]";
    type Config = Vec<String>;

    fn new(c: &Vec<String>) -> Result<Self, String> {
        if c.is_empty() {
            return Err("labeldrop requires at least one label".into());
        }
        check_names(c.iter())?;
        Ok(LabelDropStage { names: c.to_vec() })
    }
}

impl Stage for LabelDropStage {
    fn process(&mut self, entry: &mut Entry, _x: &mut Extracted) -> Flow {
        for n in &self.names {
            if entry.labels.contains_key(n) {
                entry.labels.remove(n);
            }
        }
        Flow::Keep
    }
}

pub struct LabelAllowStage {
    names: Vec<String>,
}

impl StageSpec for LabelAllowStage {
    const NAME: &'static str = "labelallow";
    const EXAMPLE: &'static str = "[job]";
    type Config = Vec<String>;

    fn new(c: &Vec<String>) -> Result<Self, String> {
        if c.is_empty() {
            return Err("labelallow requires at least one label".into());
        }
        check_names(c.iter())?;
        Ok(LabelAllowStage { names: c.to_vec() })
    }
}

impl Stage for LabelAllowStage {
    fn process(&mut self, entry: &mut Entry, _x: &mut Extracted) -> Flow {
        let allowed = |k: &String| self.names.iter().any(|n| n == k);
        if !entry.labels.keys().all(allowed) {
            entry.labels.retain(|k, _| allowed(k));
        }
        Flow::Keep
    }
}

#[cfg(test)]
mod tests {
    use crate::pipeline::stages::testutil::*;
    use crate::relabel::labels;

    #[test]
    fn static_drop_allow() {
        let mut p = pipeline(
            "- static_labels:\n    env: prod\n    team: web\n- labeldrop: [filename]\n- labelallow: [env, job, host]\n",
        );
        let e = run(
            &mut p,
            labels([("job", "a"), ("filename", "/x"), ("pod", "p")]),
            "l",
        )
        .unwrap();
        assert_eq!(e.labels, labels([("env", "prod"), ("job", "a")]));
    }

    #[test]
    fn labels_come_from_extracted_which_starts_with_labels() {
        // promtail seeds the extracted map with the entry's labels.
        let mut p = pipeline("- labels:\n    source_file: filename\n");
        let e = run(&mut p, labels([("filename", "/var/log/a.log")]), "l").unwrap();
        assert_eq!(e.labels["source_file"], "/var/log/a.log");
    }

    #[test]
    fn invalid_label_names_are_refused() {
        assert!(build_err("- labels:\n    bad-name:\n").contains("invalid label name"));
        assert!(build_err("- labeldrop: []\n").contains("at least one"));
    }
}
