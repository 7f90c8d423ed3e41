//! Prometheus relabeling (`relabel_configs`), with Prometheus' semantics:
//! regexes are anchored at both ends, `source_labels` are joined by
//! `separator` (default `;`), `replacement` (default `$1`) is expanded as Go's
//! `regexp.Expand` does, and a label set to the empty string is removed.

use std::collections::BTreeMap;
use std::fmt;

use md5::{Digest, Md5};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::entry::LabelSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl Action {
    fn parse(s: &str) -> Result<Action, String> {
        // Prometheus accepts the action in any case.
        Ok(match s.to_ascii_lowercase().as_str() {
            "replace" => Action::Replace,
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "keepequal" => Action::KeepEqual,
            "dropequal" => Action::DropEqual,
            "hashmod" => Action::HashMod,
            "labelmap" => Action::LabelMap,
            "labeldrop" => Action::LabelDrop,
            "labelkeep" => Action::LabelKeep,
            "lowercase" => Action::Lowercase,
            "uppercase" => Action::Uppercase,
            _ => {
                return Err(format!(
                    "unknown relabel action {s:?} (replace, keep, drop, keepequal, dropequal, hashmod, labelmap, labeldrop, labelkeep, lowercase, uppercase)"
                ))
            }
        })
    }
}

/// The YAML form, before validation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawRelabelConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    source_labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    separator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    modulus: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replacement: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    action: Option<String>,
}

/// One validated, precompiled relabel rule.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(try_from = "RawRelabelConfig", into = "RawRelabelConfig")]
pub struct RelabelConfig {
    pub source_labels: Vec<String>,
    pub separator: String,
    pub target_label: String,
    /// As written, for printing the config back.
    pub regex_source: String,
    regex: Regex,
    pub modulus: u64,
    pub replacement: String,
    pub action: Action,
}

const DEFAULT_REGEX: &str = "(.*)";

fn anchored(src: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?s:{})$", go_regex_syntax(src)))
        .map_err(|e| format!("invalid regex {src:?}: {e}"))
}

/// Rewrites Go (RE2) regex syntax where Rust's regex differs: in Go the
/// Perl classes `\d \w \s` (and `\D \W \S`) are ASCII-only, in Rust they
/// are Unicode. Besides matching what Go matches, the ASCII classes keep the
/// automata small, which makes capture-heavy parsing several times faster.
/// The bracketed forms are valid inside a class too (Rust nests classes).
pub fn go_regex_syntax(src: &str) -> String {
    let mut out = String::with_capacity(src.len() + 16);
    let mut chars = src.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str("[0-9]"),
            Some('D') => out.push_str("[^0-9]"),
            Some('w') => out.push_str("[0-9A-Za-z_]"),
            Some('W') => out.push_str("[^0-9A-Za-z_]"),
            Some('s') => out.push_str("[\\t\\n\\f\\r ]"),
            Some('S') => out.push_str("[^\\t\\n\\f\\r ]"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Prometheus' label name rule: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// A target_label for `replace` may hold `$1` / `${name}` references.
fn valid_label_template(s: &str) -> bool {
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('$') {
            let (name, after) = if let Some(b) = r.strip_prefix('{') {
                match b.find('}') {
                    Some(end) => (&b[..end], &b[end + 1..]),
                    None => return false,
                }
            } else {
                let n = r
                    .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
                    .unwrap_or(r.len());
                (&r[..n], &r[n..])
            };
            if name.is_empty() || !name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric()) {
                return false;
            }
            rest = after;
        } else {
            let c = rest.chars().next().unwrap_or('_');
            if !(c == '_' || c.is_ascii_alphanumeric()) {
                return false;
            }
            rest = &rest[c.len_utf8()..];
        }
    }
    true
}

impl TryFrom<RawRelabelConfig> for RelabelConfig {
    type Error = String;

    fn try_from(raw: RawRelabelConfig) -> Result<Self, String> {
        let action = Action::parse(raw.action.as_deref().unwrap_or("replace"))?;
        let regex_source = raw.regex.clone().unwrap_or_else(|| DEFAULT_REGEX.into());
        let regex = anchored(&regex_source)?;
        let target = raw.target_label.clone().unwrap_or_default();
        let name = format!("{action:?}").to_ascii_lowercase();
        let needs_target = matches!(
            action,
            Action::Replace
                | Action::HashMod
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
        );
        if needs_target && target.is_empty() {
            return Err(format!(
                "relabel configuration for {name} action requires 'target_label' value"
            ));
        }
        if action == Action::Replace && !valid_label_template(&target) {
            return Err(format!(
                "{target:?} is invalid 'target_label' for replace action"
            ));
        }
        if matches!(
            action,
            Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
                | Action::HashMod
        ) && !valid_label_name(&target)
        {
            return Err(format!(
                "{target:?} is invalid 'target_label' for {name} action"
            ));
        }
        if matches!(
            action,
            Action::Lowercase | Action::Uppercase | Action::KeepEqual | Action::DropEqual
        ) && raw.replacement.as_deref().is_some_and(|r| r != "$1")
        {
            return Err(format!("'replacement' can not be set for {name} action"));
        }
        if matches!(action, Action::KeepEqual | Action::DropEqual) && raw.regex.is_some() {
            return Err(format!("'regex' can not be set for {name} action"));
        }
        if action == Action::HashMod && raw.modulus.unwrap_or(0) == 0 {
            return Err("relabel configuration for hashmod requires non-zero modulus".into());
        }
        if action == Action::LabelMap {
            let r = raw.replacement.as_deref().unwrap_or("$1");
            if !valid_label_template(r) {
                return Err(format!(
                    "{r:?} is invalid 'replacement' for labelmap action"
                ));
            }
        }
        if matches!(action, Action::LabelDrop | Action::LabelKeep)
            && (!raw.source_labels.is_empty()
                || !target.is_empty()
                || raw.modulus.unwrap_or(0) != 0
                || raw.separator.as_deref().is_some_and(|s| s != ";")
                || raw.replacement.as_deref().is_some_and(|r| r != "$1"))
        {
            return Err(format!(
                "{name} action requires only 'regex', and no other fields"
            ));
        }
        for l in &raw.source_labels {
            if !valid_label_name(l) {
                return Err(format!(
                    "{l:?} is not a valid label name in 'source_labels'"
                ));
            }
        }
        Ok(RelabelConfig {
            source_labels: raw.source_labels,
            separator: raw.separator.unwrap_or_else(|| ";".into()),
            target_label: target,
            regex_source,
            regex,
            modulus: raw.modulus.unwrap_or(0),
            replacement: raw.replacement.unwrap_or_else(|| "$1".into()),
            action,
        })
    }
}

impl From<RelabelConfig> for RawRelabelConfig {
    fn from(c: RelabelConfig) -> Self {
        RawRelabelConfig {
            source_labels: c.source_labels,
            separator: Some(c.separator),
            target_label: (!c.target_label.is_empty()).then_some(c.target_label),
            regex: Some(c.regex_source),
            modulus: (c.modulus != 0).then_some(c.modulus),
            replacement: Some(c.replacement),
            action: Some(format!("{:?}", c.action).to_ascii_lowercase()),
        }
    }
}

impl fmt::Display for RelabelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} {:?} -> {}",
            self.action, self.source_labels, self.target_label
        )
    }
}

/// Expands `template` as Go's `Regexp.Expand`: `$1`, `${1}`, `$name`,
/// `${name}`, `$$`. A reference to a missing or unmatched group is empty;
/// `$name` takes the longest run of letters, digits and `_`.
pub fn expand_template(template: &str, caps: &regex::Captures<'_>, re: &Regex, out: &mut String) {
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let (name, after) = if let Some(b) = rest.strip_prefix('{') {
            match b.find('}') {
                Some(end)
                    if end > 0
                        && b[..end]
                            .chars()
                            .all(|c| c == '_' || c.is_ascii_alphanumeric()) =>
                {
                    (&b[..end], &b[end + 1..])
                }
                _ => {
                    out.push('$');
                    continue;
                }
            }
        } else {
            let n = rest
                .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
                .unwrap_or(rest.len());
            if n == 0 {
                out.push('$');
                continue;
            }
            (&rest[..n], &rest[n..])
        };
        let group = match name.parse::<usize>() {
            Ok(i) => caps.get(i),
            Err(_) => re
                .capture_names()
                .position(|n| n == Some(name))
                .and_then(|i| caps.get(i)),
        };
        if let Some(m) = group {
            out.push_str(m.as_str());
        }
        rest = after;
    }
    out.push_str(rest);
}

impl RelabelConfig {
    /// Applies this rule; false when the target is dropped.
    pub fn apply(&self, labels: &mut LabelSet) -> bool {
        let mut val = String::new();
        for (i, name) in self.source_labels.iter().enumerate() {
            if i > 0 {
                val.push_str(&self.separator);
            }
            if let Some(v) = labels.get(name) {
                val.push_str(v);
            }
        }
        match self.action {
            Action::Drop => return !self.regex.is_match(&val),
            Action::Keep => return self.regex.is_match(&val),
            Action::DropEqual => {
                return labels.get(&self.target_label).map_or("", |s| s) != val;
            }
            Action::KeepEqual => {
                return labels.get(&self.target_label).map_or("", |s| s) == val;
            }
            Action::Replace => {
                let Some(caps) = self.regex.captures(&val) else {
                    return true;
                };
                let mut target = String::new();
                expand_template(&self.target_label, &caps, &self.regex, &mut target);
                if !valid_label_name(&target) {
                    return true;
                }
                let mut res = String::new();
                expand_template(&self.replacement, &caps, &self.regex, &mut res);
                set(labels, target, res);
            }
            Action::Lowercase => set(labels, self.target_label.clone(), val.to_lowercase()),
            Action::Uppercase => set(labels, self.target_label.clone(), val.to_uppercase()),
            Action::HashMod => {
                let hash = Md5::digest(val.as_bytes());
                let mut tail = [0u8; 8];
                tail.copy_from_slice(&hash[8..16]);
                let m = u64::from_be_bytes(tail) % self.modulus;
                set(labels, self.target_label.clone(), m.to_string());
            }
            Action::LabelMap => {
                let snapshot: Vec<(String, String)> =
                    labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                for (name, value) in snapshot {
                    if let Some(caps) = self.regex.captures(&name) {
                        let mut res = String::new();
                        expand_template(&self.replacement, &caps, &self.regex, &mut res);
                        set(labels, res, value);
                    }
                }
            }
            Action::LabelDrop => labels.retain(|name, _| !self.regex.is_match(name)),
            Action::LabelKeep => labels.retain(|name, _| self.regex.is_match(name)),
        }
        true
    }
}

fn set(labels: &mut LabelSet, name: String, value: String) {
    if value.is_empty() {
        labels.remove(&name);
    } else {
        labels.insert(name, value);
    }
}

/// Applies every rule in order; `None` when one of them drops the target.
pub fn process(mut labels: LabelSet, rules: &[RelabelConfig]) -> Option<LabelSet> {
    for rule in rules {
        if !rule.apply(&mut labels) {
            return None;
        }
    }
    Some(labels)
}

/// Convenience for tests and callers building label sets inline.
pub fn labels<const N: usize>(pairs: [(&str, &str); N]) -> LabelSet {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<BTreeMap<_, _>>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(yaml: &str) -> Vec<RelabelConfig> {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn err(yaml: &str) -> String {
        serde_yaml_ng::from_str::<Vec<RelabelConfig>>(yaml)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn go_perl_classes_are_ascii() {
        let re = Regex::new(&go_regex_syntax(r"^\w+\s\d[\w.]\S\\d$")).unwrap();
        assert!(re.is_match("ab_1 7x.\\d"));
        assert!(!re.is_match("äb 7x.\\d"), "\\w is ASCII in Go");
        assert!(!re.is_match("ab\u{a0}7x.\\d"), "\\s is ASCII in Go");
        assert!(!re.is_match("ab 7x \\d"), "\\S excludes space");
    }

    #[test]
    fn replace_with_defaults_copies_the_joined_sources() {
        let r = rules("- source_labels: [a, b]\n  target_label: c\n");
        let out = process(labels([("a", "x"), ("b", "y")]), &r).unwrap();
        assert_eq!(out["c"], "x;y");
    }

    #[test]
    fn replace_is_anchored_and_expands_groups() {
        let r = rules(
            r#"
- source_labels: [__path__]
  regex: '/var/log/(?P<app>[a-z]+)/(.*)\.log'
  target_label: app
  replacement: '${app}-$2'
- source_labels: [__path__]
  regex: 'log'
  target_label: never
  replacement: x
"#,
        );
        let out = process(labels([("__path__", "/var/log/nginx/access.log")]), &r).unwrap();
        assert_eq!(out["app"], "nginx-access");
        assert!(
            !out.contains_key("never"),
            "unanchored match must not apply"
        );
    }

    #[test]
    fn go_expand_rules() {
        let r = rules("- source_labels: [a]\n  regex: '(b)(c)'\n  target_label: t\n  replacement: '$1x|${1}x|$$|$2'\n");
        let out = process(labels([("a", "bc")]), &r).unwrap();
        // `$1x` names the group "1x", which does not exist: empty.
        assert_eq!(out["t"], "|bx|$|c");
    }

    #[test]
    fn empty_replacement_deletes_the_target() {
        let r = rules("- source_labels: [missing]\n  target_label: job\n");
        let out = process(labels([("job", "varlogs")]), &r).unwrap();
        assert!(!out.contains_key("job"));
    }

    #[test]
    fn keep_drop_and_equal() {
        let keep = rules("- source_labels: [env]\n  regex: prod|staging\n  action: keep\n");
        assert!(process(labels([("env", "prod")]), &keep).is_some());
        assert!(process(labels([("env", "production")]), &keep).is_none());
        let drop = rules("- source_labels: [env]\n  regex: dev\n  action: DROP\n");
        assert!(process(labels([("env", "dev")]), &drop).is_none());
        assert!(process(labels([("env", "devx")]), &drop).is_some());
        let ke = rules("- source_labels: [a]\n  target_label: b\n  action: keepequal\n");
        assert!(process(labels([("a", "1"), ("b", "1")]), &ke).is_some());
        assert!(process(labels([("a", "1"), ("b", "2")]), &ke).is_none());
        let de = rules("- source_labels: [a]\n  target_label: b\n  action: dropequal\n");
        assert!(process(labels([("a", "1"), ("b", "1")]), &de).is_none());
    }

    #[test]
    fn hashmod_matches_prometheus() {
        // Prometheus: md5("foo") last 8 bytes big-endian % 1000.
        let r =
            rules("- source_labels: [a]\n  target_label: h\n  modulus: 1000\n  action: hashmod\n");
        let out = process(labels([("a", "foo")]), &r).unwrap();
        let d = Md5::digest(b"foo");
        let expect = u64::from_be_bytes(d[8..16].try_into().unwrap()) % 1000;
        assert_eq!(out["h"], expect.to_string());
    }

    #[test]
    fn labelmap_labeldrop_labelkeep_case() {
        let r = rules(
            r#"
- action: labelmap
  regex: __meta_docker_(.+)
- action: labeldrop
  regex: __meta_.*
- source_labels: [name]
  target_label: upper
  action: uppercase
- source_labels: [name]
  target_label: lower
  action: lowercase
"#,
        );
        let out = process(labels([("__meta_docker_name", "Web"), ("keep", "1")]), &r).unwrap();
        assert_eq!(
            out,
            labels([
                ("keep", "1"),
                ("name", "Web"),
                ("upper", "WEB"),
                ("lower", "web")
            ])
        );
        let keep = rules("- action: labelkeep\n  regex: 'keep|__path__'\n");
        let out = process(
            labels([("__path__", "/x"), ("keep", "1"), ("other", "2")]),
            &keep,
        )
        .unwrap();
        assert_eq!(out, labels([("__path__", "/x"), ("keep", "1")]));
    }

    #[test]
    fn invalid_rules_are_refused_with_a_reason() {
        assert!(err("- action: explode\n").contains("unknown relabel action"));
        assert!(
            err("- source_labels: [a]\n  regex: '('\n  target_label: b\n")
                .contains("invalid regex")
        );
        assert!(err("- action: hashmod\n  target_label: x\n").contains("non-zero modulus"));
        assert!(err("- action: replace\n").contains("requires 'target_label'"));
        assert!(err("- action: labeldrop\n  regex: a\n  target_label: b\n")
            .contains("requires only 'regex'"));
        let e = err("- source_labels: [a]\n  target_lable: b\n");
        assert!(
            e.contains("unknown field `target_lable`") && e.contains("line 2"),
            "{e}"
        );
    }
}
