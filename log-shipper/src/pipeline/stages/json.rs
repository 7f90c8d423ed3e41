//! `json`: JMESPath expressions over the line (or `source`) parsed as a
//! JSON object, as promtail: strings, numbers and booleans are kept as such,
//! objects and arrays as their JSON text.

use std::collections::BTreeMap;

use jmespath::{Expression, Variable};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

use super::StageSpec;
use crate::entry::Entry;
use crate::pipeline::{DropCounter, Extracted, Flow, Kind, Stage};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JsonConfig {
    /// extracted name -> JMESPath expression (empty: the name itself).
    #[serde(default)]
    pub expressions: BTreeMap<String, Option<JmesPath>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default)]
    pub drop_malformed: bool,
}

/// A JMESPath expression, checked when the config is read.
#[derive(Debug, Clone, Serialize)]
pub struct JmesPath(pub String);

impl<'de> Deserialize<'de> for JmesPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        jmespath::compile(&s)
            .map_err(|e| de::Error::custom(format!("invalid JMESPath expression {s:?}: {e}")))?;
        Ok(JmesPath(s))
    }
}

pub struct JsonStage {
    exprs: Vec<(String, Expression<'static>)>,
    source: Option<String>,
    drop_malformed: Option<DropCounter>,
}

impl StageSpec for JsonStage {
    const NAME: &'static str = "json";
    const EXAMPLE: &'static str = "{expressions: {level: level}}";
    type Config = JsonConfig;

    fn new(c: &JsonConfig) -> Result<Self, String> {
        if c.expressions.is_empty() {
            return Err("expressions is required".into());
        }
        let exprs = c
            .expressions
            .iter()
            .map(|(name, e)| {
                let src = e.as_ref().map_or(name.as_str(), |e| e.0.as_str());
                let src = if src.is_empty() { name.as_str() } else { src };
                jmespath::compile(src)
                    .map(|x| (name.clone(), x))
                    .map_err(|e| format!("invalid JMESPath expression {src:?}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(JsonStage {
            exprs,
            source: c.source.clone(),
            drop_malformed: c
                .drop_malformed
                .then(|| DropCounter::for_reason("malformed_json")),
        })
    }
}

impl Stage for JsonStage {
    fn process(&mut self, entry: &mut Entry, x: &mut Extracted) -> Flow {
        let input = match &self.source {
            None => entry.line.as_str(),
            Some(src) => match x.get_str(src) {
                Some(v) => v,
                None => return Flow::Keep,
            },
        };
        let data = match Variable::from_json(input) {
            Ok(v @ Variable::Object(_)) => v,
            _ => {
                if let Some(c) = &self.drop_malformed {
                    c.inc();
                    return Flow::Drop;
                }
                return Flow::Keep;
            }
        };
        let data = jmespath::Rcvar::new(data);
        for (name, expr) in &self.exprs {
            let Ok(r) = expr.search(data.clone()) else {
                continue;
            };
            match &*r {
                Variable::String(s) => x.set(name, Kind::Str, s),
                Variable::Number(n) => {
                    let buf = x.slot(name, Kind::Number);
                    // Go decodes numbers as float64 and prints them with 'f', -1.
                    match n.as_f64() {
                        Some(f) if n.is_f64() => buf.push_str(&f.to_string()),
                        _ => buf.push_str(&n.to_string()),
                    }
                }
                Variable::Bool(b) => x.set(name, Kind::Bool, if *b { "true" } else { "false" }),
                Variable::Null => x.set(name, Kind::Null, ""),
                other => {
                    let text = serde_json::to_string(other).unwrap_or_default();
                    x.set(name, Kind::Json, &text);
                }
            }
        }
        Flow::Keep
    }
}

#[cfg(test)]
mod tests {
    use crate::pipeline::stages::testutil::*;
    use crate::relabel::labels;

    #[test]
    fn jmespath_values_and_nesting() {
        let mut p = pipeline(
            r#"
- json:
    expressions:
      level:
      user: ctx.user.name
      code: status
      ok: success
      tags: tags
      first: "tags[0]"
      dash: '"x-request-id"'
- labels:
    level:
    user:
    code:
    ok:
    first:
    dash:
- output:
    source: tags
"#,
        );
        let e = run(
            &mut p,
            labels([]),
            r#"{"level":"warn","ctx":{"user":{"name":"ann"}},"status":404,"success":false,"tags":["a","b"],"x-request-id":"r1"}"#,
        )
        .unwrap();
        assert_eq!(
            e.labels,
            labels([
                ("level", "warn"),
                ("user", "ann"),
                ("code", "404"),
                ("ok", "false"),
                ("first", "a"),
                ("dash", "r1")
            ])
        );
        assert_eq!(e.line, r#"["a","b"]"#);
    }

    #[test]
    fn source_and_malformed() {
        let mut p = pipeline("- json:\n    expressions: {inner: msg}\n- json:\n    source: inner\n    expressions: {lvl: level}\n- labels: {lvl: }\n");
        let e = run(&mut p, labels([]), r#"{"msg":"{\"level\":\"info\"}"}"#).unwrap();
        assert_eq!(e.labels, labels([("lvl", "info")]));
        // Not JSON: kept unchanged without drop_malformed ...
        assert_eq!(
            run(&mut p, labels([]), "plain text").unwrap().line,
            "plain text"
        );
        // ... dropped with it.
        let mut d = pipeline("- json:\n    expressions: {a: a}\n    drop_malformed: true\n");
        assert!(run(&mut d, labels([]), "{broken").is_none());
        assert!(run(&mut d, labels([]), "[1,2]").is_none());
        assert!(run(&mut d, labels([]), r#"{"a":1}"#).is_some());
    }

    #[test]
    fn bad_jmespath_names_the_line() {
        let e = build_err("- json:\n    expressions:\n      a: 'foo[.'\n");
        assert!(e.contains("JMESPath") && e.contains("line 3"), "{e}");
    }
}
