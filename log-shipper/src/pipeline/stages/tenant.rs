//! `tenant`: sends the entry to another Loki tenant than the client's
//! `tenant_id`, taken from a label, an extracted value or a fixed value
//! (exactly one), by setting the `__tenant_id__` label the client reads.

use serde::{Deserialize, Serialize};

use super::StageSpec;
use crate::client::TENANT_LABEL;
use crate::entry::Entry;
use crate::pipeline::{Extracted, Flow, Stage};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

enum From {
    Label(String),
    Source(String),
    Value(String),
}

pub struct TenantStage {
    from: From,
}

impl StageSpec for TenantStage {
    const NAME: &'static str = "tenant";
    const EXAMPLE: &'static str = "{value: team-a}";
    type Config = TenantConfig;

    fn new(c: &TenantConfig) -> Result<Self, String> {
        let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        let from = match (set(&c.label), set(&c.source), set(&c.value)) {
            (true, false, false) => From::Label(c.label.clone().unwrap_or_default()),
            (false, true, false) => From::Source(c.source.clone().unwrap_or_default()),
            (false, false, true) => From::Value(c.value.clone().unwrap_or_default()),
            (false, false, false) => {
                return Err("tenant stage config must contain one of label, source or value".into())
            }
            _ => {
                return Err(
                    "tenant stage config can contain only one of label, source or value".into(),
                )
            }
        };
        Ok(TenantStage { from })
    }
}

impl Stage for TenantStage {
    fn process(&mut self, entry: &mut Entry, x: &mut Extracted) -> Flow {
        let tenant = match &self.from {
            From::Label(l) => entry.labels.get(l).cloned(),
            From::Source(s) => x.get_str(s).map(str::to_string),
            From::Value(v) => Some(v.clone()),
        };
        if let Some(t) = tenant.filter(|t| !t.is_empty()) {
            entry.labels.insert(TENANT_LABEL.to_string(), t);
        }
        Flow::Keep
    }
}

#[cfg(test)]
mod tests {
    use crate::pipeline::stages::testutil::*;
    use crate::relabel::labels;

    #[test]
    fn promtail_documented_examples() {
        let mut p = pipeline(
            "- json:\n    expressions:\n      customer_id: customer_id\n- tenant:\n    source: customer_id\n",
        );
        let e = run(
            &mut p,
            labels([("job", "t")]),
            r#"{"customer_id":"1","log":"x"}"#,
        )
        .unwrap();
        assert_eq!(e.labels["__tenant_id__"], "1");
        // No value: the client's tenant_id stays.
        let e = run(&mut p, labels([("job", "t")]), r#"{"log":"x"}"#).unwrap();
        assert!(!e.labels.contains_key("__tenant_id__"));
        let mut p = pipeline("- tenant:\n    label: namespace\n");
        let e = run(&mut p, labels([("namespace", "team-a")]), "x").unwrap();
        assert_eq!(e.labels["__tenant_id__"], "team-a");
        let mut p = pipeline("- tenant:\n    value: fixed\n");
        assert_eq!(
            run(&mut p, labels([]), "x").unwrap().labels["__tenant_id__"],
            "fixed"
        );
        assert!(build_err("- tenant:\n    value: a\n    label: b\n").contains("only one"));
        assert!(build_err("- tenant: {}\n").contains("one of"));
    }
}
