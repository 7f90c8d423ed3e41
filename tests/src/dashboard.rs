//! Grafana dashboards as a list of PromQL queries, and what a real
//! Prometheus answers to them for one exporter: the variables are resolved
//! the way Grafana resolves them (`label_values(...)` over the series the
//! exporter produced), then every panel query is evaluated.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;
use serde_json::Value;

use crate::process::workspace_root;
use crate::prometheus::{Prometheus, ScrapeTarget, SCRAPE_INTERVAL};

/// `$__rate_interval` as Grafana computes it for a 1 s scrape interval
/// (4 intervals), plus one so that a window always holds 4+ samples.
pub const RATE_INTERVAL: &str = "5s";

/// Successful scrapes to wait for before querying, so that `rate()` over
/// [`RATE_INTERVAL`] has samples to work with.
pub const SCRAPES_BEFORE_QUERYING: usize = 6;

/// "Node Exporter Full": `$DASHBOARD_JSON`, else the repository's own copy
/// (`grafana-dashboards/`) if it has one, else the shared copy in
/// `shared/dashboards/` next to the workspace or next to one of its parent
/// directories (git worktrees live one level further down).
pub fn node_exporter_full_path() -> PathBuf {
    if let Some(p) = std::env::var_os("DASHBOARD_JSON") {
        return PathBuf::from(p);
    }
    const FILE: &str = "node-exporter-full.json";
    let root = workspace_root();
    let mut candidates = vec![root.join("grafana-dashboards").join(FILE)];
    candidates.extend(
        root.ancestors()
            .skip(1)
            .map(|dir| dir.join("shared").join("dashboards").join(FILE)),
    );
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            panic!(
                "the dashboard {FILE} is in none of {}; set DASHBOARD_JSON to its path",
                tried.join(", ")
            )
        })
}

/// A templating variable whose values come from a query.
#[derive(Debug, Clone)]
pub struct Variable {
    pub name: String,
    pub query: String,
}

#[derive(Debug, Clone, Default)]
pub struct Dashboard {
    /// Each distinct panel expression, with the titles of the panels using it.
    pub expressions: BTreeMap<String, Vec<String>>,
    /// Query variables, in the order Grafana resolves them.
    pub variables: Vec<Variable>,
}

impl Dashboard {
    pub fn load(path: &Path) -> Dashboard {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!(
                "reading the dashboard {}: {e} (set DASHBOARD_JSON to its path)",
                path.display()
            )
        });
        let json: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        let mut d = Dashboard::default();
        collect_panel_queries(&json["panels"], &mut d.expressions);
        for v in json["templating"]["list"].as_array().into_iter().flatten() {
            if v["type"] != "query" {
                continue;
            }
            // Grafana stores the query as a string or as {"query": "..."}.
            let query = v["query"]["query"]
                .as_str()
                .or(v["query"].as_str())
                .unwrap_or("");
            d.variables.push(Variable {
                name: v["name"].as_str().unwrap_or("").to_string(),
                query: query.to_string(),
            });
        }
        assert!(
            !d.expressions.is_empty(),
            "{} has no panel with a PromQL expression",
            path.display()
        );
        d
    }
}

/// Panels nest (rows hold panels); every target with an `expr` counts.
fn collect_panel_queries(panels: &Value, out: &mut BTreeMap<String, Vec<String>>) {
    for p in panels.as_array().into_iter().flatten() {
        let title = p["title"].as_str().unwrap_or("(untitled)");
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = t["expr"].as_str().filter(|e| !e.trim().is_empty()) {
                let titles = out.entry(expr.to_string()).or_default();
                if !titles.iter().any(|x| x == title) {
                    titles.push(title.to_string());
                }
            }
        }
        collect_panel_queries(&p["panels"], out);
    }
}

/// Replaces `$name`, `${name}`, `${name:format}` and `[[name]]` with their
/// values; a variable without a value is an error naming it.
pub fn substitute(expr: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let re = Regex::new(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]").unwrap();
    let mut missing = BTreeSet::new();
    let out = re.replace_all(expr, |c: &regex::Captures| {
        let name = c
            .get(1)
            .or(c.get(2))
            .or(c.get(3))
            .map_or("", |m| m.as_str());
        match vars.get(name) {
            Some(v) => v.clone(),
            None => {
                missing.insert(format!("${name}"));
                String::new()
            }
        }
    });
    if missing.is_empty() {
        Ok(out.into_owned())
    } else {
        Err(format!("no value for {missing:?}"))
    }
}

/// Grafana's built-in variables, for a 1 s scrape interval.
fn builtin_variables() -> BTreeMap<String, String> {
    let interval = SCRAPE_INTERVAL.as_secs();
    [
        ("__rate_interval", RATE_INTERVAL.to_string()),
        ("__interval", format!("{interval}s")),
        ("__interval_ms", (interval * 1000).to_string()),
        ("__range", "1m".into()),
        ("__range_s", "60".into()),
        ("__range_ms", "60000".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// What Prometheus answered to one dashboard query.
#[derive(Debug, Clone)]
pub struct Answer {
    pub answered: bool,
    /// Why the query could not be asked, or what a variable query found;
    /// empty for a panel query that ran.
    pub note: String,
}

/// A dashboard's queries evaluated for one exporter. Keys are the panel
/// expressions as the dashboard writes them, and `variable $name` for the
/// templating queries.
pub struct Evaluation {
    pub answers: BTreeMap<String, Answer>,
    vars: BTreeMap<String, String>,
}

impl Evaluation {
    /// Evaluates `dashboard` pointed at `target`: its job and address (the
    /// `instance` label) preset `$job` and `$node`, as a user picking that
    /// exporter in the dropdowns would.
    pub fn run(prom: &Prometheus, dashboard: &Dashboard, target: &ScrapeTarget) -> Evaluation {
        let presets = [("job", target.job), ("node", target.address)];
        let mut vars = builtin_variables();
        vars.extend(presets.map(|(k, v)| (k.to_string(), v.to_string())));
        let mut answers = BTreeMap::new();
        for v in &dashboard.variables {
            let preset = presets.iter().find(|(k, _)| *k == v.name).map(|p| p.1);
            let answer = match resolve_variable(prom, &v.query, &vars) {
                Ok(values) => {
                    // A preset must be among the values the dropdown offers;
                    // a variable without one takes the first value, as
                    // Grafana's sorted dropdown does.
                    let answered = match preset {
                        Some(p) => values.contains(p),
                        None => !values.is_empty(),
                    };
                    if let (None, Some(first)) = (preset, values.iter().next()) {
                        vars.insert(v.name.clone(), first.clone());
                    }
                    Answer {
                        answered,
                        note: format!("{} -> {values:?}", v.query),
                    }
                }
                Err(e) => Answer {
                    answered: false,
                    note: format!("{}: {e}", v.query),
                },
            };
            answers.insert(format!("variable ${}", v.name), answer);
        }
        let mut e = Evaluation { answers, vars };
        e.reask(prom, dashboard.expressions.keys());
        e
    }

    /// Asks again the panel queries among `keys` that were not answered;
    /// one answer is enough. This absorbs a scrape that landed late.
    pub fn recheck<'k>(&mut self, prom: &Prometheus, keys: impl IntoIterator<Item = &'k String>) {
        let keys: Vec<&String> = keys.into_iter().filter(|k| !self.is_answered(k)).collect();
        self.reask(prom, keys);
    }

    /// Asks again the panel queries among `keys`, keeping only the new
    /// answers: whether a query answers *now*.
    pub fn reask<'k>(&mut self, prom: &Prometheus, keys: impl IntoIterator<Item = &'k String>) {
        let keys: Vec<&String> = keys
            .into_iter()
            .filter(|k| !k.starts_with("variable $"))
            .collect();
        if keys.is_empty() {
            return;
        }
        // A few queries at a time: hundreds of them one by one take seconds.
        const PARALLEL: usize = 4;
        let this = &*self;
        let answers: Vec<(String, Answer)> = std::thread::scope(|scope| {
            let workers: Vec<_> = keys
                .chunks(keys.len().div_ceil(PARALLEL))
                .map(|chunk| {
                    scope.spawn(move || {
                        chunk
                            .iter()
                            .map(|k| ((*k).clone(), this.ask(prom, k)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("a query thread panicked"))
                .collect()
        });
        self.answers.extend(answers);
    }

    fn ask(&self, prom: &Prometheus, expr: &str) -> Answer {
        let result = substitute(expr, &self.vars).and_then(|q| prom.query(&q));
        match result {
            Ok(series) => Answer {
                answered: !series.is_empty(),
                note: String::new(),
            },
            Err(e) => Answer {
                answered: false,
                note: e,
            },
        }
    }

    pub fn is_answered(&self, key: &str) -> bool {
        self.answers.get(key).is_some_and(|a| a.answered)
    }

    pub fn answered_count(&self) -> usize {
        self.answers.values().filter(|a| a.answered).count()
    }

    /// Keys whose query returned nothing, with the reason.
    pub fn unanswered(&self) -> Vec<(&String, &Answer)> {
        self.answers.iter().filter(|(_, a)| !a.answered).collect()
    }

    /// One line about `key` for a report: the panels using it, the query as
    /// the dashboard writes it, and any note.
    pub fn describe(&self, dashboard: &Dashboard, key: &str) -> String {
        let one_line = key.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut line = match dashboard.expressions.get(key) {
            Some(panels) => format!("[{}] {one_line}", panels.join(" | ")),
            None => one_line,
        };
        if let Some(a) = self.answers.get(key).filter(|a| !a.note.is_empty()) {
            line.push_str(&format!(" ({})", a.note));
        }
        line
    }
}

/// `label_values(<selector>, <label>)` through `/api/v1/series`, as Grafana
/// does it.
fn resolve_variable(
    prom: &Prometheus,
    query: &str,
    vars: &BTreeMap<String, String>,
) -> Result<BTreeSet<String>, String> {
    let re = Regex::new(r"^\s*label_values\(\s*(.+)\s*,\s*(\w+)\s*\)\s*$").unwrap();
    let c = re
        .captures(query)
        .ok_or("only label_values(<selector>, <label>) variable queries are understood")?;
    let selector = substitute(&c[1], vars)?;
    let label = &c[2];
    Ok(prom
        .series(&selector)?
        .into_iter()
        .filter_map(|mut s| s.remove(label))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_every_spelling() {
        let vars: BTreeMap<String, String> =
            [("node", "h:1"), ("job", "j"), ("__rate_interval", "5s")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(
            substitute(
                r#"rate(x{instance="$node",job="${job}",a="[[job]]",b="${job:raw}"}[$__rate_interval])"#,
                &vars
            )
            .unwrap(),
            r#"rate(x{instance="h:1",job="j",a="j",b="j"}[5s])"#
        );
        assert!(substitute("up{a=\"$nope\"}", &vars)
            .unwrap_err()
            .contains("$nope"));
        // Regex classes in label matchers are not variables.
        assert_eq!(
            substitute(r#"x{device=~"sd[a-z]+"}"#, &vars).unwrap(),
            r#"x{device=~"sd[a-z]+"}"#
        );
    }

    #[test]
    fn finds_nested_panel_queries() {
        let json: Value = serde_json::json!([
            {"title": "row", "panels": [
                {"title": "a", "targets": [{"expr": "up"}, {"expr": ""}]},
                {"title": "b", "targets": [{"expr": "up"}]}
            ]},
            {"title": "c", "targets": [{"expr": "node_load1"}]}
        ]);
        let mut out = BTreeMap::new();
        collect_panel_queries(&json, &mut out);
        assert_eq!(out["up"], vec!["a", "b"]);
        assert_eq!(out.len(), 2);
    }
}
