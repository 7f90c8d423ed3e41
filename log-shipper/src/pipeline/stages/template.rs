//! `template`: sets extracted `source` to a Go template's output, run on
//! the extracted values (`.key`), `.Value` (the source's value) and
//! `.Entry` (the line). An empty output removes `source`; a template error
//! leaves everything as it was (both as promtail).

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use super::StageSpec;
use crate::entry::Entry;
use crate::pipeline::template::{Data, Template};
use crate::pipeline::{Extracted, Flow, Kind, Stage};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    pub source: String,
    #[serde(default = "empty_template")]
    pub template: TemplateText,
}

fn empty_template() -> TemplateText {
    TemplateText(Template::parse("").expect("the empty template parses"))
}

/// A template parsed when the config is read (errors carry a line number).
#[derive(Debug, Clone)]
pub struct TemplateText(pub Template);

impl<'de> Deserialize<'de> for TemplateText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Template::parse(&s)
            .map(TemplateText)
            .map_err(de::Error::custom)
    }
}

impl Serialize for TemplateText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.source())
    }
}

/// What a template sees: the extracted values as strings, `.Value` and
/// `.Entry` (promtail skips values that do not convert to a string).
pub struct TemplateData<'a> {
    pub extracted: &'a Extracted,
    pub value: Option<&'a str>,
    pub entry: Option<&'a str>,
}

impl Data for TemplateData<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "Value" if self.value.is_some() => self.value,
            "Entry" if self.entry.is_some() => self.entry,
            _ => match self.extracted.get(key)? {
                (_, Kind::Json) => None,
                (_, Kind::Null) => Some(""),
                (v, _) => Some(v),
            },
        }
    }

    fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .extracted
            .iter()
            .filter(|(_, _, kind)| *kind != Kind::Json)
            .map(|(k, _, _)| k.to_string())
            .collect();
        for (k, v) in [("Value", self.value), ("Entry", self.entry)] {
            if v.is_some() && !keys.iter().any(|x| x == k) {
                keys.push(k.to_string());
            }
        }
        keys
    }
}

pub struct TemplateStage {
    source: String,
    template: Template,
    out: String,
}

impl StageSpec for TemplateStage {
    const NAME: &'static str = "template";
    const EXAMPLE: &'static str = "{source: level, template: '{{ ToUpper .Value }}'}";
    type Config = TemplateConfig;

    fn new(c: &TemplateConfig) -> Result<Self, String> {
        if c.source.is_empty() {
            return Err("template source value is required".into());
        }
        Ok(TemplateStage {
            source: c.source.clone(),
            template: c.template.0.clone(),
            out: String::new(),
        })
    }
}

impl Stage for TemplateStage {
    fn process(&mut self, entry: &mut Entry, x: &mut Extracted) -> Flow {
        self.out.clear();
        let value = match x.get(&self.source) {
            Some((_, Kind::Json)) | None => None,
            Some((_, Kind::Null)) => Some(""),
            Some((v, _)) => Some(v),
        };
        let data = TemplateData {
            extracted: x,
            value,
            entry: Some(&entry.line),
        };
        if let Err(e) = self.template.execute(&data, &mut self.out) {
            tracing::debug!(error = %e, source = %self.source, "template stage: execution failed");
            return Flow::Keep;
        }
        if self.out.is_empty() {
            x.remove(&self.source);
        } else {
            x.set(&self.source, Kind::Str, &self.out);
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
        // docs: a new key from another; an existing key rewritten;
        // several keys; a function; an empty output deletes.
        let mut p = pipeline(
            r#"
- json:
    expressions:
      app: app
      level: level
- template:
    source: new_key
    template: 'hello world!'
- template:
    source: app
    template: '{{ .Value }}_log'
- template:
    source: level
    template: '{{ if eq .Value "WARN" }}{{ Replace .Value "WARN" "OK" -1 }}{{ else }}{{ .Value }}{{ end }}'
- template:
    source: combined
    template: '{{ .level }}-{{ .app | ToUpper }}'
- template:
    source: line_len
    template: '{{ len .Entry }}'
- template:
    source: gone
    template: '{{ if .missing }}x{{ end }}'
- labels:
    new_key:
    app:
    level:
    combined:
    line_len:
    gone:
"#,
        );
        let e = run(
            &mut p,
            labels([("job", "t"), ("gone", "was-here")]),
            r#"{"app":"loki","level":"WARN"}"#,
        )
        .unwrap();
        assert_eq!(
            e.labels,
            labels([
                ("job", "t"),
                ("gone", "was-here"),
                ("new_key", "hello world!"),
                ("app", "loki_log"),
                ("level", "OK"),
                ("combined", "OK-LOKI_LOG"),
                ("line_len", "29"),
            ])
        );
    }

    #[test]
    fn execution_errors_leave_the_value() {
        let mut p = pipeline(
            "- template:\n    source: a\n    template: '{{ ToUpper .missing }}'\n- labels:\n    a:\n",
        );
        let e = run(&mut p, labels([("a", "keep")]), "l").unwrap();
        assert_eq!(e.labels["a"], "keep");
        assert!(
            build_err("- template:\n    source: a\n    template: '{{ Nope }}'\n")
                .contains("not defined")
        );
        assert!(
            build_err("- template:\n    source: ''\n    template: 'x'\n")
                .contains("source value is required")
        );
    }
}
