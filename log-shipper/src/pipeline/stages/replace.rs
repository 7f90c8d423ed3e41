//! `replace`: replaces every capture group's text, in the line or in
//! extracted `source`, with a Go template's output (`.Value` is the
//! captured text; other extracted values are there too; an empty
//! `replace` removes it). Named groups are set in the extracted map to
//! their replaced value. As promtail's replace stage.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::template::{TemplateData, TemplateText};
use super::{GoRegex, StageSpec};
use crate::entry::Entry;
use crate::pipeline::template::Template;
use crate::pipeline::{Extracted, Flow, Kind, Stage};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaceConfig {
    pub expression: GoRegex,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace: Option<TemplateText>,
}

pub struct ReplaceStage {
    re: ::regex::Regex,
    source: Option<String>,
    template: Template,
    names: Vec<(usize, String)>,
}

impl StageSpec for ReplaceStage {
    const NAME: &'static str = "replace";
    const EXAMPLE: &'static str = r#"{expression: 'password=(\S+)', replace: '***'}"#;
    type Config = ReplaceConfig;

    fn new(c: &ReplaceConfig) -> Result<Self, String> {
        if c.expression.source.is_empty() {
            return Err("expression is required".into());
        }
        if c.source.as_deref() == Some("") {
            return Err("empty source in replace stage".into());
        }
        let re = c.expression.re.clone();
        let names = super::named_groups(&re);
        Ok(ReplaceStage {
            re,
            source: c.source.clone(),
            template: match &c.replace {
                Some(t) => t.0.clone(),
                None => Template::parse("")?,
            },
            names,
        })
    }
}

impl ReplaceStage {
    /// The replaced input, and replaced value by captured text.
    fn replaced(
        &self,
        input: &str,
        x: &Extracted,
    ) -> Result<(String, HashMap<String, String>), String> {
        let mut result = String::with_capacity(input.len());
        let mut prev_end = 0;
        let mut captured: HashMap<String, String> = HashMap::new();
        for caps in self.re.captures_iter(input) {
            for m in caps.iter().skip(1).flatten() {
                let text = m.as_str();
                let mut st = String::new();
                let data = TemplateData {
                    extracted: x,
                    value: Some(text),
                    entry: None,
                };
                self.template.execute(&data, &mut st)?;
                // Overlapping (nested) groups: only the first is replaced.
                if prev_end == 0 || prev_end < m.start() {
                    result.push_str(&input[prev_end..m.start()]);
                    result.push_str(&st);
                    prev_end = m.end();
                }
                captured.insert(text.to_string(), st);
            }
        }
        result.push_str(&input[prev_end..]);
        Ok((result, captured))
    }
}

impl Stage for ReplaceStage {
    fn process(&mut self, entry: &mut Entry, x: &mut Extracted) -> Flow {
        let input: String = match &self.source {
            None => entry.line.clone(),
            Some(src) => match x.get(src) {
                Some((_, Kind::Json)) | None => return Flow::Keep,
                Some((v, _)) => v.to_string(),
            },
        };
        let Some(first) = self.re.captures(&input) else {
            return Flow::Keep;
        };
        let (result, captured) = match self.replaced(&input, x) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "replace stage: template failed");
                return Flow::Keep;
            }
        };
        match &self.source {
            Some(src) => x.set(src, Kind::Str, &result),
            None => entry.line = result,
        }
        for (i, name) in &self.names {
            let text = first.get(*i).map_or("", |m| m.as_str());
            if let Some(v) = captured.get(text) {
                x.set(name, Kind::Str, v);
            }
        }
        Flow::Keep
    }
}

#[cfg(test)]
mod tests {
    use crate::pipeline::stages::testutil::*;
    use crate::relabel::labels;

    const LINE: &str = r#"11.11.11.11 - frank [25/Jan/2000:14:00:01 -0500] "GET /1986.js HTTP/1.1" 200 932 "-" "Mozilla/5.0 (Windows; U; Windows NT 5.1; de; rv:1.9.1.7) Gecko/20091221 Firefox/3.5.7 GTB6""#;

    #[test]
    fn promtail_documented_examples() {
        // docs: mask the IP.
        let mut p = pipeline("- replace:\n    expression: '^(\\S+) '\n    replace: '*IP*'\n");
        let e = run(&mut p, labels([("job", "r")]), LINE).unwrap();
        assert!(e.line.starts_with("*IP* - frank ["), "{}", e.line);
        // docs: replace a named group with its upper-cased value, and
        // extract the replaced value.
        let mut p = pipeline(
            r#"
- replace:
    expression: '^(?P<ip>\S+) (?P<identd>\S+) (?P<user>\S+) \[(?P<timestamp>[\w:/]+\s[+\-]\d{4})\] "(?P<action>\S+)\s?(?P<path>\S+)?\s?(?P<protocol>\S+)?" (?P<status>\d{3}|-) (\d+|-)\s?"?(?P<referer>[^"]*)"?\s?"?(?P<useragent>[^"]*)?"?$'
    replace: '{{ if eq .Value "200" }}{{ Replace .Value "200" "HttpStatusOk" -1 }}{{ else }}{{ .Value | ToUpper }}{{ end }}'
- labels:
    status:
    action:
"#,
        );
        let e = run(&mut p, labels([("job", "r")]), LINE).unwrap();
        assert_eq!(
            e.line,
            r#"11.11.11.11 - FRANK [25/JAN/2000:14:00:01 -0500] "GET /1986.JS HTTP/1.1" HttpStatusOk 932 "-" "MOZILLA/5.0 (WINDOWS; U; WINDOWS NT 5.1; DE; RV:1.9.1.7) GECKO/20091221 FIREFOX/3.5.7 GTB6""#
        );
        assert_eq!(e.labels["status"], "HttpStatusOk");
        assert_eq!(e.labels["action"], "GET");
    }

    #[test]
    fn on_a_source_and_removal() {
        let mut p = pipeline(
            r#"
- regex:
    expression: 'msg=(?P<msg>.*)$'
- replace:
    source: msg
    expression: '(password=\S+)'
    replace: ''
- labels:
    msg:
"#,
        );
        let e = run(&mut p, labels([]), "msg=login password=hunter2 ok").unwrap();
        assert_eq!(e.labels["msg"], "login  ok");
        assert_eq!(e.line, "msg=login password=hunter2 ok");
    }
}
