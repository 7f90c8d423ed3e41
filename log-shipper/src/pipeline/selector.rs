//! The LogQL log selector of the `match` stage: a stream selector
//! `{a="b", c=~"x.*", d!="e", f!~"g"}` and optional line filters
//! `|= "x"`, `!= "x"`, `|~ "re"`, `!~ "re"`. Label regexes are anchored
//! (as Prometheus matchers); line filter regexes are not (as LogQL).

use regex::Regex;

use crate::entry::LabelSet;

#[derive(Debug, Clone)]
pub enum MatchOp {
    Equal(String),
    NotEqual(String),
    Regex(Regex),
    NotRegex(Regex),
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
}

impl Matcher {
    fn matches_value(&self, v: &str) -> bool {
        match &self.op {
            MatchOp::Equal(s) => v == s,
            MatchOp::NotEqual(s) => v != s,
            MatchOp::Regex(r) => r.is_match(v),
            MatchOp::NotRegex(r) => !r.is_match(v),
        }
    }
}

#[derive(Debug, Clone)]
pub enum LineFilter {
    Contains(String),
    NotContains(String),
    Regex(Regex),
    NotRegex(Regex),
}

impl LineFilter {
    fn keeps(&self, line: &str) -> bool {
        match self {
            LineFilter::Contains(s) => line.contains(s.as_str()),
            LineFilter::NotContains(s) => !line.contains(s.as_str()),
            LineFilter::Regex(r) => r.is_match(line),
            LineFilter::NotRegex(r) => !r.is_match(line),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Selector {
    pub matchers: Vec<Matcher>,
    pub filters: Vec<LineFilter>,
}

impl Selector {
    /// True when the labels satisfy every matcher (a missing label is "")
    /// and the line passes every filter.
    pub fn matches(&self, labels: &LabelSet, line: &str) -> bool {
        self.matchers
            .iter()
            .all(|m| m.matches_value(labels.get(&m.name).map_or("", |s| s.as_str())))
            && self.filters.iter().all(|f| f.keeps(line))
    }

    pub fn parse(s: &str) -> Result<Selector, String> {
        let mut p = Parser { s, pos: 0 };
        let sel = p
            .selector()
            .map_err(|e| format!("invalid selector {s:?}: {e}"))?;
        Ok(sel)
    }
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        let rest = &self.s[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, t: &str) -> bool {
        self.ws();
        if self.s[self.pos..].starts_with(t) {
            self.pos += t.len();
            true
        } else {
            false
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at position {}", self.pos + 1))
    }

    fn ident(&mut self) -> Result<String, String> {
        self.ws();
        let rest = &self.s[self.pos..];
        let n = rest
            .char_indices()
            .take_while(|(i, c)| {
                c.is_ascii_alphabetic() || *c == '_' || (*i > 0 && c.is_ascii_digit())
            })
            .count();
        if n == 0 {
            return self.err("expected a label name");
        }
        self.pos += n;
        Ok(rest[..n].to_string())
    }

    fn string(&mut self) -> Result<String, String> {
        self.ws();
        let rest = &self.s[self.pos..];
        if let Some(r) = rest.strip_prefix('`') {
            let Some(end) = r.find('`') else {
                return self.err("unterminated raw string");
            };
            self.pos += end + 2;
            return Ok(r[..end].to_string());
        }
        let Some(r) = rest.strip_prefix('"') else {
            return self.err("expected a quoted string");
        };
        let mut out = String::new();
        let mut chars = r.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 2;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, 'r')) => out.push('\r'),
                    Some((_, c @ ('\\' | '"' | '\''))) => out.push(c),
                    Some((_, c)) => {
                        // Go keeps unknown escapes as an error; be as strict.
                        return Err(format!("unknown escape \\{c} in string"));
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        self.err("unterminated string")
    }

    fn selector(&mut self) -> Result<Selector, String> {
        if !self.eat("{") {
            return self.err("expected '{'");
        }
        let mut matchers = Vec::new();
        if !self.eat("}") {
            loop {
                let name = self.ident()?;
                let op = if self.eat("=~") {
                    "=~"
                } else if self.eat("!~") {
                    "!~"
                } else if self.eat("!=") {
                    "!="
                } else if self.eat("=") {
                    "="
                } else {
                    return self.err("expected one of =, !=, =~, !~");
                };
                let value = self.string()?;
                let anchored = |v: &str| {
                    Regex::new(&format!("^(?s:{})$", crate::relabel::go_regex_syntax(v)))
                        .map_err(|e| format!("invalid regex {v:?}: {e}"))
                };
                let op = match op {
                    "=" => MatchOp::Equal(value),
                    "!=" => MatchOp::NotEqual(value),
                    "=~" => MatchOp::Regex(anchored(&value)?),
                    _ => MatchOp::NotRegex(anchored(&value)?),
                };
                matchers.push(Matcher { name, op });
                if self.eat(",") {
                    continue;
                }
                if self.eat("}") {
                    break;
                }
                return self.err("expected ',' or '}'");
            }
        }
        // Loki refuses selectors that match every stream.
        if !matchers.iter().any(|m| !m.matches_value("")) {
            return Err(
                "queries require at least one regexp or equality matcher that does not have an empty-compatible value".into(),
            );
        }
        let mut filters = Vec::new();
        loop {
            self.ws();
            if self.pos >= self.s.len() {
                break;
            }
            let f = if self.eat("|=") {
                LineFilter::Contains(self.string()?)
            } else if self.eat("!=") {
                LineFilter::NotContains(self.string()?)
            } else if self.eat("|~") {
                let v = self.string()?;
                LineFilter::Regex(
                    Regex::new(&crate::relabel::go_regex_syntax(&v))
                        .map_err(|e| format!("invalid regex {v:?}: {e}"))?,
                )
            } else if self.eat("!~") {
                let v = self.string()?;
                LineFilter::NotRegex(
                    Regex::new(&crate::relabel::go_regex_syntax(&v))
                        .map_err(|e| format!("invalid regex {v:?}: {e}"))?,
                )
            } else {
                return self.err("expected a line filter (|=, !=, |~, !~)");
            };
            filters.push(f);
        }
        Ok(Selector { matchers, filters })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relabel::labels;

    #[test]
    fn matchers_and_filters() {
        let s = Selector::parse(r#"{job="nginx", env=~"prod|stag.*", app!="x", team!~`ops`} |= "GET" != "healthz" |~ "HTTP/1\\.[01]" !~ "bot""#).unwrap();
        let l = labels([("job", "nginx"), ("env", "staging"), ("team", "web")]);
        assert!(s.matches(&l, "GET /index HTTP/1.1"));
        assert!(!s.matches(&l, "GET /healthz HTTP/1.1"));
        assert!(!s.matches(&l, "POST /index HTTP/1.1"));
        assert!(!s.matches(&l, "GET /index HTTP/1.1 googlebot"));
        let prod_only = labels([("job", "nginx"), ("env", "production-eu")]);
        assert!(
            !s.matches(&prod_only, "GET / HTTP/1.0"),
            "label regexes are anchored"
        );
    }

    #[test]
    fn label_regex_is_anchored() {
        let s = Selector::parse(r#"{env=~"prod"}"#).unwrap();
        assert!(s.matches(&labels([("env", "prod")]), ""));
        assert!(!s.matches(&labels([("env", "production")]), ""));
    }

    #[test]
    fn bad_selectors() {
        for bad in [
            r#"job="x""#,
            r#"{job="x""#,
            r#"{job=x}"#,
            r#"{job=~"("}"#,
            r#"{}"#,
            r#"{a=""}"#,
            r#"{a="b"} |= x"#,
            r#"{a="b"} | json"#,
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
