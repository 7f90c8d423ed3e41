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

/// The value of a preset that picks a variable's "All" option, as Grafana
/// itself writes it in URLs (`var-instance=$__all`).
pub const ALL: &str = "$__all";

/// One templating variable, with what Grafana needs to give it a value.
#[derive(Debug, Clone, Default)]
pub struct Variable {
    pub name: String,
    /// Grafana's variable type: `query`, `custom`, `textbox`, `constant`,
    /// `interval`, `datasource`, ...
    pub kind: String,
    /// A query variable's query; a custom variable's comma-separated
    /// values; a datasource variable's plugin type; a textbox's default.
    pub query: String,
    /// The plugin type of the datasource a query variable asks (`None`:
    /// the default datasource, Prometheus here).
    pub datasource: Option<String>,
    pub multi: bool,
    pub include_all: bool,
    pub all_value: Option<String>,
    /// The value saved with the dashboard (`current.value`), if any.
    pub current: Option<String>,
}

impl Variable {
    /// The label a Loki `label_values(<label>)` variable lists, if this is one.
    pub fn loki_label(&self) -> Option<&str> {
        (self.kind == "query" && self.datasource.as_deref() == Some("loki")).then(|| {
            self.query
                .trim_end_matches(')')
                .rsplit([',', '('])
                .next()
                .unwrap_or("")
                .trim()
        })
    }

    /// Whether Grafana resolves this variable by asking Prometheus.
    pub fn asks_prometheus(&self) -> bool {
        self.kind == "query" && self.datasource.as_deref().unwrap_or("prometheus") == "prometheus"
    }
}

/// One query of one panel (or annotation).
#[derive(Debug, Clone)]
pub struct PanelQuery {
    pub panel: String,
    pub expr: String,
    /// Datasource plugin type (`prometheus`, `loki`, ...); `None` when the
    /// panel names none, i.e. the default datasource.
    pub datasource: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Dashboard {
    /// Each distinct Prometheus expression (panels and annotations), with
    /// the titles of the panels using it.
    pub expressions: BTreeMap<String, Vec<String>>,
    /// Every query of every panel and annotation, whatever its datasource.
    pub queries: Vec<PanelQuery>,
    /// Templating variables, in the order Grafana resolves them.
    pub variables: Vec<Variable>,
    /// The file as parsed.
    pub json: Value,
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
        let d = Dashboard::from_json(json);
        assert!(
            !d.expressions.is_empty(),
            "{} has no panel with a PromQL expression",
            path.display()
        );
        d
    }

    pub fn from_json(json: Value) -> Dashboard {
        let mut d = Dashboard::default();
        for v in json["templating"]["list"].as_array().into_iter().flatten() {
            d.variables.push(parse_variable(v));
        }
        collect_panel_queries(&json["panels"], &d.variables, &mut d.queries);
        for a in json["annotations"]["list"].as_array().into_iter().flatten() {
            if let Some(expr) = a["expr"].as_str().filter(|e| !e.trim().is_empty()) {
                d.queries.push(PanelQuery {
                    panel: format!("annotation {}", a["name"].as_str().unwrap_or("")),
                    expr: expr.to_string(),
                    datasource: datasource_type(&a["datasource"], &d.variables),
                });
            }
        }
        for q in &d.queries {
            if q.datasource.as_deref().unwrap_or("prometheus") != "prometheus" {
                continue;
            }
            let titles = d.expressions.entry(q.expr.clone()).or_default();
            if !titles.contains(&q.panel) {
                titles.push(q.panel.clone());
            }
        }
        d.json = json;
        d
    }

    /// The dashboard's `title`.
    pub fn title(&self) -> &str {
        self.json["title"].as_str().unwrap_or("(untitled)")
    }
}

fn parse_variable(v: &Value) -> Variable {
    let text = |v: &Value| v.as_str().map(String::from);
    // Grafana stores a query as a string or as {"query": "..."}; a Loki
    // label-values query as {"label": "host", "type": 1}.
    let query = match &v["query"] {
        Value::String(s) => s.clone(),
        q if q["query"].is_string() => q["query"].as_str().unwrap_or("").to_string(),
        q if q["label"].is_string() => {
            format!("label_values({})", q["label"].as_str().unwrap_or(""))
        }
        _ => String::new(),
    };
    let current = match &v["current"]["value"] {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => a.first().and_then(text),
        _ => None,
    };
    Variable {
        name: text(&v["name"]).unwrap_or_default(),
        kind: text(&v["type"]).unwrap_or_default(),
        query,
        datasource: None,
        multi: v["multi"].as_bool().unwrap_or(false),
        include_all: v["includeAll"].as_bool().unwrap_or(false),
        all_value: text(&v["allValue"]).filter(|s| !s.is_empty()),
        current,
    }
    .with_datasource(&v["datasource"])
}

impl Variable {
    fn with_datasource(mut self, ds: &Value) -> Variable {
        // Only the `type` or a literal uid can be read without the other
        // variables; `${ds}` uids are resolved by `datasource_type`.
        self.datasource = ds["type"].as_str().map(String::from);
        self
    }
}

/// The plugin type a panel's or target's `datasource` points at: `{type,
/// uid}` objects name it; a `${var}` uid or string goes through the
/// datasource variable `var`. `None` when nothing is named (the default).
pub fn datasource_type(ds: &Value, vars: &[Variable]) -> Option<String> {
    if let Some(t) = ds["type"].as_str() {
        return Some(t.to_string());
    }
    let reference = ds["uid"].as_str().or(ds.as_str())?;
    let name = variable_reference(reference)?;
    vars.iter()
        .find(|v| v.name == name && v.kind == "datasource")
        .map(|v| v.query.clone())
}

/// `var` for `$var` or `${var}`; `None` for anything else.
pub fn variable_reference(s: &str) -> Option<&str> {
    let s = s.trim();
    let inner = s
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .or_else(|| s.strip_prefix('$'))?;
    let name = inner.split(':').next().unwrap_or(inner);
    (!name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_')).then_some(name)
}

/// Panels nest (rows hold panels); every target with an `expr` counts, with
/// the target's datasource, else the panel's.
fn collect_panel_queries(panels: &Value, vars: &[Variable], out: &mut Vec<PanelQuery>) {
    for p in panels.as_array().into_iter().flatten() {
        let title = p["title"].as_str().unwrap_or("(untitled)");
        let panel_ds = datasource_type(&p["datasource"], vars);
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = t["expr"].as_str().filter(|e| !e.trim().is_empty()) {
                out.push(PanelQuery {
                    panel: title.to_string(),
                    expr: expr.to_string(),
                    datasource: datasource_type(&t["datasource"], vars).or(panel_ds.clone()),
                });
            }
        }
        collect_panel_queries(&p["panels"], vars, out);
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

/// Variable values as Grafana puts them into a Loki query: "All" (what a
/// dashboard opens with) as the variable's allValue, a textbox as its
/// saved text; Grafana's time macros as a duration.
pub fn loki_variables(vars: &[Variable]) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = ["__auto", "__interval", "__range", "__rate_interval"]
        .into_iter()
        .map(|k| (k.to_string(), "1m".to_string()))
        .collect();
    for v in vars {
        let value = if v.include_all {
            v.all_value.clone().unwrap_or_else(|| ".+".into())
        } else {
            v.current.clone().unwrap_or_else(|| v.query.clone())
        };
        out.insert(v.name.clone(), value);
    }
    out
}

/// Grafana's built-in variables, for a scrape interval of `interval`
/// seconds: `$__rate_interval` as for [`RATE_INTERVAL`], 5 intervals.
fn builtin_variables(interval: u64) -> BTreeMap<String, String> {
    [
        ("__rate_interval", format!("{}s", 5 * interval)),
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

/// The values a custom (comma-separated), textbox or constant variable
/// offers.
fn static_values(v: &Variable) -> Vec<String> {
    if v.kind == "custom" {
        // `a,b` or `text : value` pairs; Grafana splits on unescaped commas.
        v.query
            .split(',')
            .map(|o| o.rsplit(" : ").next().unwrap_or(o).trim().to_string())
            .filter(|o| !o.is_empty())
            .collect()
    } else {
        vec![v.query.clone()]
    }
}

/// A variable's value as Grafana's Prometheus datasource writes it into a
/// query: "All" becomes the variable's `allValue` or every value as a
/// regex alternation; values of multi-value and "All" variables are
/// regex-escaped (they land in `=~` matchers); a single plain value only
/// has `\` and `'` escaped.
pub fn format_value(v: &Variable, chosen: &str, offered: &BTreeSet<String>) -> String {
    let escape_regex = |s: &str| {
        let mut out = String::new();
        for c in s.chars() {
            match c {
                '\\' => out.push_str(r"\\\\"),
                '$' | '^' | '*' | '{' | '}' | '[' | ']' | '\'' | '+' | '?' | '.' | '(' | ')'
                | '|' => {
                    out.push_str(r"\\");
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
        out
    };
    if chosen == ALL {
        if let Some(all) = &v.all_value {
            return all.clone();
        }
        let escaped: Vec<String> = offered.iter().map(|s| escape_regex(s)).collect();
        return match escaped.len() {
            1 => escaped[0].clone(),
            _ => format!("({})", escaped.join("|")),
        };
    }
    if v.multi || v.include_all {
        escape_regex(chosen)
    } else {
        chosen.replace('\\', r"\\").replace('\'', r"\\'")
    }
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
    /// exporter in the dropdowns of "Node Exporter Full" would.
    pub fn run(prom: &Prometheus, dashboard: &Dashboard, target: &ScrapeTarget) -> Evaluation {
        Evaluation::with_presets(
            prom,
            dashboard,
            &[("job", target.job), ("node", target.address)],
        )
    }

    /// Evaluates every Prometheus query of `dashboard` with the variables
    /// set as a user would set them: `presets` name a value (or [`ALL`])
    /// for some variables; the others take what Grafana gives them on
    /// load ("All" where offered, else the saved or first value). Query
    /// variables are resolved in order through Prometheus, each after the
    /// ones it uses; a preset must be among the values offered.
    pub fn with_presets(
        prom: &Prometheus,
        dashboard: &Dashboard,
        presets: &[(&str, &str)],
    ) -> Evaluation {
        Evaluation::with_presets_at(prom, dashboard, presets, SCRAPE_INTERVAL.as_secs())
    }

    /// [`Evaluation::with_presets`] for a Prometheus that scrapes every
    /// `scrape_interval_secs` (Grafana's `$__interval`, `$__rate_interval`).
    pub fn with_presets_at(
        prom: &Prometheus,
        dashboard: &Dashboard,
        presets: &[(&str, &str)],
        scrape_interval_secs: u64,
    ) -> Evaluation {
        let mut vars = builtin_variables(scrape_interval_secs);
        let mut answers = BTreeMap::new();
        for v in &dashboard.variables {
            let preset = presets.iter().find(|(k, _)| *k == v.name).map(|p| p.1);
            match v.kind.as_str() {
                "query" if v.asks_prometheus() => {}
                // Loki's and other datasources' variables are not asked
                // here; a query that uses one fails naming it.
                "query" | "datasource" | "adhoc" => continue,
                _ => {
                    // custom, textbox, constant, interval: the dashboard's
                    // own values.
                    let offered = static_values(v);
                    let chosen = preset
                        .map(String::from)
                        .or(v.current.clone())
                        .or(offered.first().cloned())
                        .unwrap_or_default();
                    let values: BTreeSet<String> = offered.into_iter().collect();
                    vars.insert(v.name.clone(), format_value(v, &chosen, &values));
                    continue;
                }
            }
            let answer = match resolve_variable(prom, &v.query, &vars) {
                Ok(values) => {
                    // Without a preset, Grafana selects the first option:
                    // "All" where the variable offers it, else the first
                    // value of its sorted dropdown.
                    let chosen = preset
                        .map(String::from)
                        .or_else(|| v.include_all.then(|| ALL.to_string()))
                        .or_else(|| values.iter().next().cloned());
                    let answered = match &chosen {
                        Some(c) if c == ALL => v.include_all && !values.is_empty(),
                        Some(c) => values.contains(c),
                        None => false,
                    };
                    if let Some(c) = &chosen {
                        vars.insert(v.name.clone(), format_value(v, c, &values));
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

    /// The value each variable was given (formatted as it lands in a
    /// query).
    pub fn variable_values(&self) -> &BTreeMap<String, String> {
        &self.vars
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
            // A panel whose every value is NaN (0/0) shows "NaN", no data.
            Ok(series) if !series.is_empty() && series.iter().all(|s| s.value.is_nan()) => Answer {
                answered: false,
                note: "every value is NaN".into(),
            },
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
    fn finds_nested_panel_queries_with_their_datasource() {
        let d = Dashboard::from_json(serde_json::json!({
            "templating": {"list": [
                {"name": "ds", "type": "datasource", "query": "prometheus"},
                {"name": "logs", "type": "datasource", "query": "loki"}
            ]},
            "annotations": {"list": [
                {"name": "alerts", "datasource": {"uid": "${ds}"}, "expr": "ALERTS"}
            ]},
            "panels": [
                {"title": "row", "panels": [
                    {"title": "a", "targets": [{"expr": "up"}, {"expr": ""}]},
                    {"title": "b", "datasource": {"uid": "$ds"}, "targets": [{"expr": "up"}]}
                ]},
                {"title": "c", "targets": [{"expr": "node_load1"}]},
                {"title": "l", "datasource": "${logs}", "targets": [{"expr": "{job=\"x\"}"}]},
                {"title": "m", "datasource": {"type": "prometheus"},
                 "targets": [{"expr": "{job=\"y\"}", "datasource": {"type": "loki", "uid": "loki"}}]}
            ]
        }));
        assert_eq!(d.expressions["up"], vec!["a", "b"]);
        assert_eq!(d.expressions["ALERTS"], vec!["annotation alerts"]);
        assert_eq!(d.expressions.len(), 3, "{:?}", d.expressions);
        let loki: Vec<&str> = d
            .queries
            .iter()
            .filter(|q| q.datasource.as_deref() == Some("loki"))
            .map(|q| q.panel.as_str())
            .collect();
        assert_eq!(loki, ["l", "m"]);
    }

    fn variable(multi: bool, all_value: Option<&str>) -> Variable {
        Variable {
            name: "instance".into(),
            kind: "query".into(),
            multi,
            include_all: multi,
            all_value: all_value.map(String::from),
            ..Variable::default()
        }
    }

    #[test]
    fn formats_values_as_grafana_prometheus_does() {
        let offered: BTreeSet<String> = ["a.b:1".to_string(), "c|d".to_string()].into();
        let one: BTreeSet<String> = ["a.b:1".to_string()].into();
        // A plain single-value variable: only \ and ' are escaped.
        assert_eq!(
            format_value(&variable(false, None), "a.b:1", &offered),
            "a.b:1"
        );
        assert_eq!(
            format_value(&variable(false, None), r"x\y", &offered),
            r"x\\y"
        );
        // Multi-value: regex-escaped for a =~ matcher inside a PromQL string.
        assert_eq!(
            format_value(&variable(true, None), "a.b:1", &offered),
            r"a\\.b:1"
        );
        // All: every value as an alternation, or the allValue as written.
        assert_eq!(
            format_value(&variable(true, None), ALL, &offered),
            r"(a\\.b:1|c\\|d)"
        );
        assert_eq!(format_value(&variable(true, None), ALL, &one), r"a\\.b:1");
        assert_eq!(
            format_value(&variable(true, Some(".+")), ALL, &offered),
            ".+"
        );
    }

    #[test]
    fn reads_variable_references() {
        assert_eq!(variable_reference("${datasource}"), Some("datasource"));
        assert_eq!(variable_reference("$ds"), Some("ds"));
        assert_eq!(variable_reference("${ds:raw}"), Some("ds"));
        assert_eq!(variable_reference("prometheus"), None);
        assert_eq!(variable_reference("${a.b}"), None);
    }
}
