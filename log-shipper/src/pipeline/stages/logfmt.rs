//! `logfmt`: `key=value key2="quoted value"` pairs into the extracted map,
//! for the keys `mapping` asks for (extracted name -> logfmt key).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::StageSpec;
use crate::entry::Entry;
use crate::pipeline::{Extracted, Flow, Kind, Stage};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogfmtConfig {
    pub mapping: BTreeMap<String, Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

pub struct LogfmtStage {
    /// (logfmt key, extracted name)
    mapping: Vec<(String, String)>,
    source: Option<String>,
    input: String,
    value: String,
}

impl StageSpec for LogfmtStage {
    const NAME: &'static str = "logfmt";
    const EXAMPLE: &'static str = "{mapping: {level: null}}";
    type Config = LogfmtConfig;

    fn new(c: &LogfmtConfig) -> Result<Self, String> {
        if c.mapping.is_empty() {
            return Err("mapping is required".into());
        }
        Ok(LogfmtStage {
            mapping: c
                .mapping
                .iter()
                .map(|(name, key)| {
                    let key = key.as_deref().filter(|k| !k.is_empty()).unwrap_or(name);
                    (key.to_string(), name.clone())
                })
                .collect(),
            source: c.source.clone(),
            input: String::new(),
            value: String::new(),
        })
    }
}

/// Calls `f(key, value)` for each pair, as go-logfmt decodes them; a bare
/// key has no value and is skipped.
pub fn for_each_pair(line: &str, value_buf: &mut String, mut f: impl FnMut(&str, &str)) {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] <= b' ' {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] > b' ' && b[i] != b'=' && b[i] != b'"' {
            i += 1;
        }
        let key = &line[ks..i];
        if i >= b.len() || b[i] != b'=' {
            // Bare key or garbage: skip to the next space.
            while i < b.len() && b[i] > b' ' {
                i += 1;
            }
            continue;
        }
        i += 1; // '='
        value_buf.clear();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                    match b[i] {
                        b'n' => value_buf.push('\n'),
                        b't' => value_buf.push('\t'),
                        b'r' => value_buf.push('\r'),
                        _ => {
                            let c = line[i..].chars().next().unwrap_or('\\');
                            value_buf.push(c);
                            i += c.len_utf8();
                            continue;
                        }
                    }
                    i += 1;
                } else {
                    let c = line[i..].chars().next().unwrap_or(' ');
                    value_buf.push(c);
                    i += c.len_utf8();
                }
            }
            i += 1; // closing quote
        } else {
            let vs = i;
            while i < b.len() && b[i] > b' ' {
                i += 1;
            }
            value_buf.push_str(&line[vs..i]);
        }
        if !key.is_empty() {
            f(key, value_buf);
        }
    }
}

impl Stage for LogfmtStage {
    fn process(&mut self, entry: &mut Entry, x: &mut Extracted) -> Flow {
        let Some(input) =
            super::source_text(self.source.as_deref(), &entry.line, x, &mut self.input)
        else {
            return Flow::Keep;
        };
        let mapping = &self.mapping;
        for_each_pair(input, &mut self.value, |k, v| {
            for (key, name) in mapping {
                if key == k {
                    x.set(name, Kind::Str, v);
                }
            }
        });
        Flow::Keep
    }
}

#[cfg(test)]
mod tests {
    use crate::pipeline::stages::testutil::*;
    use crate::relabel::labels;

    #[test]
    fn maps_keys() {
        let mut p = pipeline("- logfmt:\n    mapping:\n      level:\n      msg_text: msg\n      caller:\n- labels: {level: }\n- output: {source: msg_text}\n");
        let e = run(
            &mut p,
            labels([]),
            r#"ts=2023-01-01 level=error msg="disk \"sda\" full" bare caller="#,
        )
        .unwrap();
        assert_eq!(e.labels, labels([("level", "error")]));
        assert_eq!(e.line, r#"disk "sda" full"#);
    }
}
