//! `structured_metadata`: like `labels`, but the values go into Loki's
//! structured metadata (not indexed): the place for high-cardinality
//! fields such as a user, a client address or a trace id.

use super::labels::LabelsConfig;
use super::{valid_label_name, StageSpec};
use crate::entry::Entry;
use crate::pipeline::{Extracted, Flow, Stage};

pub type StructuredMetadataConfig = LabelsConfig;

pub struct StructuredMetadataStage {
    /// (name, extracted source)
    pairs: Vec<(String, String)>,
}

impl StageSpec for StructuredMetadataStage {
    const NAME: &'static str = "structured_metadata";
    const EXAMPLE: &'static str = "{trace_id: null}";
    type Config = StructuredMetadataConfig;

    fn new(c: &StructuredMetadataConfig) -> Result<Self, String> {
        if c.is_empty() {
            return Err("structured_metadata stage requires at least one entry".into());
        }
        for n in c.keys() {
            if !valid_label_name(n) {
                return Err(format!("invalid structured metadata name {n:?}"));
            }
        }
        Ok(StructuredMetadataStage {
            pairs: super::labels::name_source_pairs(c),
        })
    }
}

impl Stage for StructuredMetadataStage {
    fn process(&mut self, entry: &mut Entry, x: &mut Extracted) -> Flow {
        for (name, src) in &self.pairs {
            let Some(v) = x.get_str(src).filter(|v| !v.is_empty()) else {
                continue;
            };
            match entry
                .structured_metadata
                .iter_mut()
                .find(|(k, _)| k == name)
            {
                Some(slot) => {
                    slot.1.clear();
                    slot.1.push_str(v);
                }
                None => entry
                    .structured_metadata
                    .push((name.clone(), v.to_string())),
            }
        }
        Flow::Keep
    }
}

/// `non_indexed_labels`: the name promtail 2.9 gave the same stage; it
/// still accepts it.
pub struct NonIndexedLabelsStage(StructuredMetadataStage);

impl StageSpec for NonIndexedLabelsStage {
    const NAME: &'static str = "non_indexed_labels";
    const EXAMPLE: &'static str = "{trace_id: null}";
    type Config = StructuredMetadataConfig;

    fn new(c: &StructuredMetadataConfig) -> Result<Self, String> {
        StructuredMetadataStage::new(c).map(NonIndexedLabelsStage)
    }
}

impl Stage for NonIndexedLabelsStage {
    fn process(&mut self, entry: &mut Entry, x: &mut Extracted) -> Flow {
        self.0.process(entry, x)
    }
}

#[cfg(test)]
mod tests {
    use crate::pipeline::stages::testutil::*;
    use crate::relabel::labels;

    #[test]
    fn non_indexed_labels_is_the_same_stage() {
        let mut p =
            pipeline("- logfmt:\n    mapping:\n      usr:\n- non_indexed_labels:\n    user: usr\n");
        let e = run(&mut p, labels([("job", "s")]), "usr=bob msg=hi").unwrap();
        assert_eq!(
            e.structured_metadata,
            vec![("user".to_string(), "bob".to_string())]
        );
    }

    #[test]
    fn promtail_documented_example() {
        // docs: trace id from a logfmt line into structured metadata.
        let mut p = pipeline(
            "- logfmt:\n    mapping:\n      traceID: traceID\n      usr: usr\n- structured_metadata:\n    traceID:\n    user: usr\n",
        );
        let e = run(
            &mut p,
            labels([("job", "s")]),
            "level=info traceID=0242ac120002 usr=bob msg=hi",
        )
        .unwrap();
        assert_eq!(
            e.structured_metadata,
            vec![
                ("traceID".to_string(), "0242ac120002".to_string()),
                ("user".to_string(), "bob".to_string())
            ]
        );
        assert_eq!(e.labels, labels([("job", "s")]), "no new stream label");
    }
}
