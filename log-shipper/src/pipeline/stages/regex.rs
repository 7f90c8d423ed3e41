//! `regex`: named capture groups of an (unanchored) Go regex go into the
//! extracted map. Reads the line, or `source` from the extracted map.

use ::regex::CaptureLocations;
use serde::{Deserialize, Serialize};

use super::{GoRegex, StageSpec};
use crate::entry::Entry;
use crate::pipeline::fastcap::FastCaptures;
use crate::pipeline::{Extracted, Flow, Kind, Stage};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegexConfig {
    pub expression: GoRegex,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

pub struct RegexStage {
    re: ::regex::Regex,
    locs: CaptureLocations,
    /// The fast capture matcher, for the regexes it takes.
    fast: Option<FastCaptures>,
    slots: Vec<Option<(usize, usize)>>,
    /// (group index, name) of the named groups.
    names: Vec<(usize, String)>,
    source: Option<String>,
    /// The input copied out of the extracted map (it is written to below).
    input: String,
}

impl StageSpec for RegexStage {
    const NAME: &'static str = "regex";
    const EXAMPLE: &'static str = r#"{expression: '^(?P<level>\w+)'}"#;
    type Config = RegexConfig;

    fn new(c: &RegexConfig) -> Result<Self, String> {
        if c.expression.source.is_empty() {
            return Err("expression is required".into());
        }
        if c.source.as_deref() == Some("") {
            return Err("empty source".into());
        }
        let re = c.expression.re.clone();
        let names = super::named_groups(&re);
        let fast = FastCaptures::new(&crate::relabel::go_regex_syntax(&c.expression.source));
        Ok(RegexStage {
            locs: re.capture_locations(),
            fast,
            slots: Vec::new(),
            re,
            names,
            source: c.source.clone(),
            input: String::new(),
        })
    }
}

impl Stage for RegexStage {
    fn process(&mut self, entry: &mut Entry, x: &mut Extracted) -> Flow {
        let Some(input) =
            super::source_text(self.source.as_deref(), &entry.line, x, &mut self.input)
        else {
            return Flow::Keep;
        };
        if let Some(found) = self
            .fast
            .as_ref()
            .and_then(|f| f.captures(input, &mut self.slots))
        {
            if !found {
                return Flow::Keep;
            }
            for (i, name) in &self.names {
                // An unmatched group is "" in Go's FindStringSubmatch.
                let v = self.slots[*i].map_or("", |(s, e)| &input[s..e]);
                x.set(name, Kind::Str, v);
            }
            return Flow::Keep;
        }
        if self.re.captures_read(&mut self.locs, input).is_none() {
            return Flow::Keep;
        }
        for (i, name) in &self.names {
            let v = self.locs.get(*i).map_or("", |(s, e)| &input[s..e]);
            x.set(name, Kind::Str, v);
        }
        Flow::Keep
    }
}

#[cfg(test)]
mod tests {
    use crate::pipeline::stages::testutil::*;
    use crate::relabel::labels;

    #[test]
    fn extracts_named_groups_from_line_and_source() {
        let mut p = pipeline(
            r#"
- regex:
    expression: '^(?P<ip>\S+) \S+ \S+ \[(?P<ts>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+)(?P<opt> x)?'
- regex:
    source: path
    expression: '^/(?P<section>[a-z]+)'
- labels:
    method:
    section:
    opt:
"#,
        );
        let e = run(
            &mut p,
            labels([("job", "nginx")]),
            r#"1.2.3.4 - - [10/Oct/2023:13:55:36 -0700] "GET /api/v1 HTTP/1.1" 200"#,
        )
        .unwrap();
        assert_eq!(
            e.labels,
            labels([("job", "nginx"), ("method", "GET"), ("section", "api")])
        );
    }

    #[test]
    fn no_match_changes_nothing() {
        let mut p = pipeline("- regex:\n    expression: '^(?P<a>x+)$'\n- labels:\n    a:\n");
        let e = run(&mut p, labels([("job", "j")]), "yyy").unwrap();
        assert_eq!(e.labels, labels([("job", "j")]));
    }

    #[test]
    fn bad_regex_names_the_line() {
        let e = build_err("- regex:\n    expression: '(?P<a>'\n");
        assert!(
            e.contains("invalid regular expression") && e.contains("line 2"),
            "{e}"
        );
        let e = build_err("- regex:\n    expresion: 'x'\n");
        assert!(e.contains("unknown field `expresion`"), "{e}");
    }
}
