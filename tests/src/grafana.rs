//! Grafana's view of `grafana-dashboards/`, checked without a Grafana: the
//! provisioning files as Grafana reads them (with its `${VAR}` expansion),
//! and the structural mistakes Grafana only shows when the dashboard is
//! opened (overlapping panels, a datasource no one provisioned, a
//! `$variable` no one defined, a link to a dashboard that is not there).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;
use serde_yaml_ng::Value as Yaml;

use crate::dashboard::variable_reference;
use crate::process::workspace_root;

/// `grafana-dashboards/` of this workspace.
pub fn dashboards_dir() -> PathBuf {
    workspace_root().join("grafana-dashboards")
}

/// Every dashboard the provisioned file provider loads: the `*.json`
/// files of [`dashboards_dir`], sorted.
pub fn dashboard_files() -> Vec<PathBuf> {
    let dir = dashboards_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// The provisioning YAML files in `grafana-dashboards/provisioning/<kind>/`.
fn provisioning_files(kind: &str) -> Vec<PathBuf> {
    let dir = dashboards_dir().join("provisioning").join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    files
}

/// Grafana's environment expansion of provisioning files: `$VAR` and
/// `${VAR}` take the variable's value, `$$` is a literal `$`. A variable
/// not in `env` is an error here (Grafana would silently use "").
pub fn expand_env(text: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let re = Regex::new(r"\$\$|\$\{(\w+)\}|\$(\w+)").unwrap();
    let mut missing = BTreeSet::new();
    let out = re.replace_all(text, |c: &regex::Captures| {
        let Some(name) = c.get(1).or(c.get(2)) else {
            return "$".to_string();
        };
        env.get(name.as_str()).cloned().unwrap_or_else(|| {
            missing.insert(name.as_str().to_string());
            String::new()
        })
    });
    if missing.is_empty() {
        Ok(out.into_owned())
    } else {
        Err(format!("environment variables not set: {missing:?}"))
    }
}

/// The environment variables (`${VAR}`) a provisioning text uses.
pub fn env_variables_used(text: &str) -> BTreeSet<String> {
    let re = Regex::new(r"\$\$|\$\{(\w+)\}|\$(\w+)").unwrap();
    re.captures_iter(text)
        .filter_map(|c| c.get(1).or(c.get(2)).map(|m| m.as_str().to_string()))
        .collect()
}

/// Grafana's environment as the Ansible grafana role sets it: the
/// provisioning files use exactly these `${VAR}`s (README documents them).
pub fn example_environment() -> BTreeMap<String, String> {
    [
        ("PROMETHEUS_URL", "http://monitoring.example.internal:9090"),
        ("LOKI_URL", "http://monitoring.example.internal:3100"),
        (
            "ALERTMANAGER_URL",
            "http://monitoring.example.internal:9093",
        ),
        (
            "GRAFANA_DASHBOARDS_DIR",
            "/var/lib/grafana/dashboards/fleet",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Grafana expands the environment in each string value of a provisioning
/// file after parsing it (comments are left alone).
fn expand_yaml(v: Yaml, env: &BTreeMap<String, String>) -> Result<Yaml, String> {
    Ok(match v {
        Yaml::String(s) => Yaml::String(expand_env(&s, env)?),
        Yaml::Sequence(items) => Yaml::Sequence(
            items
                .into_iter()
                .map(|x| expand_yaml(x, env))
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Mapping(m) => Yaml::Mapping(
            m.into_iter()
                .map(|(k, x)| Ok((k, expand_yaml(x, env)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other,
    })
}

/// The environment variables the string values of a provisioning file use.
fn yaml_env_variables(v: &Yaml) -> BTreeSet<String> {
    match v {
        Yaml::String(s) => env_variables_used(s),
        Yaml::Sequence(items) => items.iter().flat_map(yaml_env_variables).collect(),
        Yaml::Mapping(m) => m.values().flat_map(yaml_env_variables).collect(),
        _ => BTreeSet::new(),
    }
}

/// A Loki derived field: a link from a log line (a regex match or a
/// label's value) to a query of another datasource.
#[derive(Debug, Clone)]
pub struct DerivedField {
    pub name: String,
    /// `regex` (Grafana's default) or `label`.
    pub matcher_type: String,
    pub matcher_regex: String,
    pub datasource_uid: Option<String>,
    /// For an internal link, the query run with `${__value.raw}` replaced.
    pub url: String,
}

#[derive(Debug, Clone)]
pub struct Datasource {
    pub name: String,
    pub uid: String,
    /// The plugin type (`prometheus`, `loki`, `alertmanager`).
    pub kind: String,
    pub url: String,
    pub is_default: bool,
    pub json_data: Yaml,
    pub derived_fields: Vec<DerivedField>,
}

/// A dashboard provider (`providers:` of provisioning/dashboards/*.yml).
#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub kind: String,
    pub folder: String,
    pub path: String,
}

/// What Grafana would provision from `grafana-dashboards/provisioning/`.
#[derive(Debug, Clone, Default)]
pub struct Provisioning {
    pub datasources: Vec<Datasource>,
    pub providers: Vec<Provider>,
    /// Every environment variable the files use.
    pub env_used: BTreeSet<String>,
}

const DATASOURCE_KEYS: &[&str] = &[
    "name",
    "type",
    "uid",
    "access",
    "url",
    "user",
    "database",
    "basicAuth",
    "basicAuthUser",
    "withCredentials",
    "isDefault",
    "jsonData",
    "secureJsonData",
    "version",
    "editable",
    "orgId",
];
const PROVIDER_KEYS: &[&str] = &[
    "name",
    "orgId",
    "folder",
    "folderUid",
    "type",
    "disableDeletion",
    "allowUiUpdates",
    "updateIntervalSeconds",
    "options",
];
const DERIVED_FIELD_KEYS: &[&str] = &[
    "name",
    "matcherType",
    "matcherRegex",
    "datasourceUid",
    "url",
    "urlDisplayLabel",
    "targetBlank",
];

fn text(v: &Yaml, key: &str) -> String {
    v.get(key)
        .and_then(Yaml::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Keys of a YAML mapping that are not in `known`: Grafana ignores them,
/// so a misspelt key would silently do nothing.
fn unknown_keys(v: &Yaml, known: &[&str]) -> Vec<String> {
    v.as_mapping()
        .into_iter()
        .flat_map(|m| m.keys())
        .filter_map(|k| k.as_str())
        .filter(|k| !known.contains(k))
        .map(String::from)
        .collect()
}

impl Provisioning {
    /// Reads every provisioning file with `env` as Grafana's environment;
    /// `Err` lists every problem, each naming its file.
    pub fn load(env: &BTreeMap<String, String>) -> Result<Provisioning, Vec<String>> {
        let mut p = Provisioning::default();
        let mut problems = Vec::new();
        let mut read = |kind: &str, problems: &mut Vec<String>| -> Vec<(String, Yaml)> {
            let files = provisioning_files(kind);
            if files.is_empty() {
                problems.push(format!("no provisioning/{kind}/*.yml"));
            }
            let mut docs = Vec::new();
            for f in files {
                let where_ = format!("provisioning/{kind}/{}", f.file_name().unwrap().display());
                let raw = match std::fs::read_to_string(&f) {
                    Ok(t) => t,
                    Err(e) => {
                        problems.push(format!("{where_}: {e}"));
                        continue;
                    }
                };
                let parsed = serde_yaml_ng::from_str::<Yaml>(&raw)
                    .map_err(|e| format!("not YAML: {e}"))
                    .and_then(|doc| {
                        p.env_used.extend(yaml_env_variables(&doc));
                        expand_yaml(doc, env)
                    });
                match parsed {
                    Ok(doc) => {
                        if doc.get("apiVersion").and_then(Yaml::as_u64) != Some(1) {
                            problems.push(format!("{where_}: apiVersion must be 1"));
                        }
                        docs.push((where_, doc));
                    }
                    Err(e) => problems.push(format!("{where_}: {e}")),
                }
            }
            docs
        };
        for (file, doc) in read("datasources", &mut problems) {
            let list = doc.get("datasources").and_then(Yaml::as_sequence);
            for ds in list.into_iter().flatten() {
                let d = parse_datasource(ds);
                let at = format!("{file}: datasource {:?}", d.name);
                for k in unknown_keys(ds, DATASOURCE_KEYS) {
                    problems.push(format!("{at}: unknown key {k:?}"));
                }
                for (what, v) in [("name", &d.name), ("uid", &d.uid), ("type", &d.kind)] {
                    if v.is_empty() {
                        problems.push(format!("{at}: no {what}"));
                    }
                }
                if !(d.url.starts_with("http://") || d.url.starts_with("https://")) {
                    problems.push(format!("{at}: url {:?} is not http(s)", d.url));
                }
                let fields = ds
                    .get("jsonData")
                    .and_then(|j| j.get("derivedFields"))
                    .and_then(Yaml::as_sequence);
                for f in fields.into_iter().flatten() {
                    for k in unknown_keys(f, DERIVED_FIELD_KEYS) {
                        problems.push(format!("{at}: derived field: unknown key {k:?}"));
                    }
                }
                for f in &d.derived_fields {
                    match f.matcher_type.as_str() {
                        "regex" => {
                            if let Err(e) = Regex::new(&f.matcher_regex) {
                                problems.push(format!("{at}: derived field {:?}: {e}", f.name));
                            }
                        }
                        "label" => {}
                        other => problems.push(format!(
                            "{at}: derived field {:?}: matcherType {other:?} is neither regex nor label",
                            f.name
                        )),
                    }
                }
                p.datasources.push(d);
            }
        }
        for (file, doc) in read("dashboards", &mut problems) {
            let list = doc.get("providers").and_then(Yaml::as_sequence);
            for pr in list.into_iter().flatten() {
                let provider = Provider {
                    name: text(pr, "name"),
                    kind: pr
                        .get("type")
                        .and_then(Yaml::as_str)
                        .unwrap_or("file")
                        .to_string(),
                    folder: text(pr, "folder"),
                    path: pr
                        .get("options")
                        .map(|o| text(o, "path"))
                        .unwrap_or_default(),
                };
                let at = format!("{file}: provider {:?}", provider.name);
                for k in unknown_keys(pr, PROVIDER_KEYS) {
                    problems.push(format!("{at}: unknown key {k:?}"));
                }
                if provider.kind != "file" {
                    problems.push(format!("{at}: type {:?} is not file", provider.kind));
                }
                if !provider.path.starts_with('/') {
                    problems.push(format!(
                        "{at}: options.path {:?} is not absolute",
                        provider.path
                    ));
                }
                p.providers.push(provider);
            }
        }
        problems.extend(p.cross_check());
        if problems.is_empty() {
            Ok(p)
        } else {
            Err(problems)
        }
    }

    /// Uids and names unique, one default, derived fields pointing at a
    /// provisioned datasource.
    fn cross_check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut uids = BTreeSet::new();
        let mut names = BTreeSet::new();
        for d in &self.datasources {
            if !uids.insert(&d.uid) {
                problems.push(format!("datasource uid {:?} is provisioned twice", d.uid));
            }
            if !names.insert(&d.name) {
                problems.push(format!("datasource name {:?} is provisioned twice", d.name));
            }
            for f in &d.derived_fields {
                if let Some(uid) = &f.datasource_uid {
                    if self.by_uid(uid).is_none() {
                        problems.push(format!(
                            "datasource {:?}: derived field {:?} links to datasource uid {uid:?}, which is not provisioned",
                            d.name, f.name
                        ));
                    }
                }
            }
        }
        let defaults = self.datasources.iter().filter(|d| d.is_default).count();
        if defaults != 1 {
            problems.push(format!(
                "{defaults} datasources are isDefault; Grafana needs exactly one"
            ));
        }
        problems
    }

    pub fn by_uid(&self, uid: &str) -> Option<&Datasource> {
        self.datasources.iter().find(|d| d.uid == uid)
    }

    pub fn default_datasource(&self) -> Option<&Datasource> {
        self.datasources.iter().find(|d| d.is_default)
    }

    fn has_kind(&self, kind: &str) -> bool {
        self.datasources.iter().any(|d| d.kind == kind)
    }
}

fn parse_datasource(ds: &Yaml) -> Datasource {
    let json_data = ds.get("jsonData").cloned().unwrap_or(Yaml::Null);
    let derived_fields = json_data
        .get("derivedFields")
        .and_then(Yaml::as_sequence)
        .into_iter()
        .flatten()
        .map(|f| DerivedField {
            name: text(f, "name"),
            matcher_type: f
                .get("matcherType")
                .and_then(Yaml::as_str)
                .unwrap_or("regex")
                .to_string(),
            matcher_regex: text(f, "matcherRegex"),
            datasource_uid: f
                .get("datasourceUid")
                .and_then(Yaml::as_str)
                .map(String::from),
            url: text(f, "url"),
        })
        .collect();
    Datasource {
        name: text(ds, "name"),
        uid: text(ds, "uid"),
        kind: text(ds, "type"),
        url: text(ds, "url"),
        is_default: ds.get("isDefault").and_then(Yaml::as_bool).unwrap_or(false),
        json_data,
        derived_fields,
    }
}

/// Panel types Grafana ships (a misspelt type shows "Panel plugin not
/// found").
const PANEL_TYPES: &[&str] = &[
    "alertlist",
    "annolist",
    "barchart",
    "bargauge",
    "candlestick",
    "canvas",
    "dashlist",
    "datagrid",
    "flamegraph",
    "gauge",
    "geomap",
    "heatmap",
    "histogram",
    "logs",
    "news",
    "nodeGraph",
    "piechart",
    "row",
    "stat",
    "state-timeline",
    "status-history",
    "table",
    "text",
    "timeseries",
    "traces",
    "trend",
    "xychart",
];

/// Grafana's built-in variables (`$__interval`, `${__data.fields.x}`, ...).
const BUILTIN_VARIABLES: &[&str] = &[
    "__all_variables",
    "__auto",
    "__cell",
    "__dashboard",
    "__data",
    "__field",
    "__from",
    "__interval",
    "__interval_ms",
    "__name",
    "__org",
    "__range",
    "__range_ms",
    "__range_s",
    "__rate_interval",
    "__rate_interval_ms",
    "__series",
    "__timeFilter",
    "__timezone",
    "__to",
    "__url_time_range",
    "__user",
    "__value",
    "timeFilter",
];

/// Datasource references Grafana resolves itself.
const BUILTIN_DATASOURCES: &[&str] =
    &["-- Grafana --", "grafana", "-- Mixed --", "-- Dashboard --"];

/// The minimum `schemaVersion` of a dashboard in the current schema
/// (Grafana 10.4+).
pub const MIN_SCHEMA_VERSION: u64 = 39;

/// Everything wrong with one dashboard, each problem naming the file and
/// the panel. `dashboard_uids` are the uids of every provisioned
/// dashboard, for links between them.
pub fn lint_dashboard(
    file: &str,
    json: &Value,
    prov: &Provisioning,
    dashboard_uids: &BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut problem = |what: String| problems.push(format!("{file}: {what}"));
    let uid = json["uid"].as_str().unwrap_or("");
    if uid.is_empty() || uid.len() > 40 {
        problem(format!("uid {uid:?} must be 1 to 40 characters"));
    }
    if json["title"].as_str().unwrap_or("").trim().is_empty() {
        problem("no title".into());
    }
    match json["schemaVersion"].as_u64() {
        Some(v) if v >= MIN_SCHEMA_VERSION => {}
        other => problem(format!(
            "schemaVersion {other:?} is older than the current schema ({MIN_SCHEMA_VERSION}+)"
        )),
    }

    let vars: Vec<&Value> = json["templating"]["list"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let var_names: BTreeSet<&str> = vars.iter().filter_map(|v| v["name"].as_str()).collect();
    let ds_vars: BTreeMap<&str, &str> = vars
        .iter()
        .filter(|v| v["type"] == "datasource")
        .filter_map(|v| Some((v["name"].as_str()?, v["query"].as_str().unwrap_or(""))))
        .collect();
    for v in &vars {
        let name = v["name"].as_str().unwrap_or("");
        if v["type"] == "datasource" {
            let kind = v["query"].as_str().unwrap_or("");
            if !prov.has_kind(kind) {
                problem(format!(
                    "datasource variable ${name}: no provisioned datasource of type {kind:?}"
                ));
            }
            if let Some(cur) = v["current"]["value"].as_str().filter(|c| !c.is_empty()) {
                let ok = prov
                    .datasources
                    .iter()
                    .any(|d| d.kind == kind && (d.uid == cur || d.name == cur))
                    || cur == "default";
                if !ok {
                    problem(format!(
                        "datasource variable ${name}: its value {cur:?} is no provisioned {kind} datasource"
                    ));
                }
            }
        }
        if let Err(e) = check_datasource(&v["datasource"], &ds_vars, prov) {
            problem(format!("variable ${name}: {e}"));
        }
    }
    for a in json["annotations"]["list"].as_array().into_iter().flatten() {
        if let Err(e) = check_datasource(&a["datasource"], &ds_vars, prov) {
            problem(format!(
                "annotation {:?}: {e}",
                a["name"].as_str().unwrap_or("")
            ));
        }
    }

    // Panels: ids, types, targets, datasources, layout.
    let mut ids = BTreeSet::new();
    let top: Vec<&Value> = json["panels"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mut layouts: Vec<(String, Vec<&Value>)> = vec![("the dashboard".into(), top.clone())];
    let mut all_panels = Vec::new();
    for p in &top {
        all_panels.push(*p);
        let children: Vec<&Value> = p["panels"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        if !children.is_empty() {
            if p["collapsed"].as_bool() != Some(true) {
                problem(format!(
                    "{}: an expanded row must not hold panels (Grafana drops them)",
                    describe(p)
                ));
            }
            layouts.push((format!("collapsed {}", describe(p)), children.clone()));
            all_panels.extend(children);
        }
    }
    for p in &all_panels {
        let at = describe(p);
        match p["id"].as_u64() {
            Some(id) => {
                if !ids.insert(id) {
                    problem(format!("{at}: id {id} is used by another panel"));
                }
            }
            None => problem(format!("{at}: no numeric id")),
        }
        let kind = p["type"].as_str().unwrap_or("");
        if !PANEL_TYPES.contains(&kind) {
            problem(format!("{at}: unknown panel type {kind:?}"));
        }
        if let Err(e) = check_datasource(&p["datasource"], &ds_vars, prov) {
            problem(format!("{at}: {e}"));
        }
        let mut ref_ids = BTreeSet::new();
        for t in p["targets"].as_array().into_iter().flatten() {
            let ref_id = t["refId"].as_str().unwrap_or("");
            if ref_id.is_empty() || !ref_ids.insert(ref_id) {
                problem(format!(
                    "{at}: target refId {ref_id:?} is empty or repeated"
                ));
            }
            if let Err(e) = check_datasource(&t["datasource"], &ds_vars, prov) {
                problem(format!("{at}: target {ref_id}: {e}"));
            }
        }
        if let Some(repeat) = p["repeat"].as_str().filter(|r| !r.is_empty()) {
            if !var_names.contains(repeat) {
                problem(format!(
                    "{at}: repeats over ${repeat}, which is not defined"
                ));
            }
        }
    }
    // Readers (and the data test's table) tell panels apart by title.
    let mut titles = BTreeSet::new();
    for p in all_panels.iter().filter(|p| p["type"] != "row") {
        let title = p["title"].as_str().unwrap_or("");
        if !titles.insert(title) {
            problem(format!("two panels are titled {title:?}"));
        }
    }
    for (where_, panels) in &layouts {
        for overlap in overlaps(panels) {
            problem(format!("in {where_}: {overlap}"));
        }
    }

    // Every $variable used anywhere is defined.
    let mut used = BTreeMap::<String, String>::new();
    collect_variable_uses(json, "", &mut used);
    for (name, at) in &used {
        if !var_names.contains(name.as_str()) && !BUILTIN_VARIABLES.contains(&name.as_str()) {
            problem(format!("${name} is used ({at}) but not defined"));
        }
    }
    // Links to other dashboards point at provisioned ones.
    let link = Regex::new(r"/d/([A-Za-z0-9_-]+)").unwrap();
    let mut urls = Vec::new();
    collect_urls(json, &mut urls);
    for url in urls {
        for c in link.captures_iter(&url) {
            if !dashboard_uids.contains(&c[1]) {
                problem(format!(
                    "link {url:?} goes to dashboard uid {:?}, which is not in grafana-dashboards/",
                    &c[1]
                ));
            }
        }
    }
    problems
}

fn describe(p: &Value) -> String {
    format!(
        "panel {} {:?}",
        p["id"].as_u64().map_or("?".into(), |i| i.to_string()),
        p["title"].as_str().unwrap_or("")
    )
}

/// A `datasource` field: nothing (the default), a `{type, uid}` object or
/// a legacy string, each resolvable through provisioning (a `${var}` uid
/// through the datasource variable `var`).
fn check_datasource(
    ds: &Value,
    ds_vars: &BTreeMap<&str, &str>,
    prov: &Provisioning,
) -> Result<(), String> {
    let (kind, reference) = match ds {
        Value::Null => return Ok(()),
        Value::String(s) => (None, s.as_str()),
        Value::Object(_) => (ds["type"].as_str(), ds["uid"].as_str().unwrap_or("")),
        other => {
            return Err(format!(
                "datasource {other} is neither an object nor a string"
            ))
        }
    };
    if BUILTIN_DATASOURCES.contains(&reference) || kind == Some("grafana") {
        return Ok(());
    }
    if let Some(name) = variable_reference(reference) {
        let Some(var_kind) = ds_vars.get(name) else {
            return Err(format!(
                "datasource {reference:?} names no datasource variable"
            ));
        };
        if kind.is_some_and(|k| k != *var_kind) {
            return Err(format!(
                "datasource of type {kind:?} through ${name}, a {var_kind} variable"
            ));
        }
        return Ok(());
    }
    if reference.is_empty() {
        return match kind {
            Some(k) if prov.has_kind(k) => Ok(()),
            Some(k) => Err(format!("no provisioned datasource of type {k:?}")),
            None => Ok(()),
        };
    }
    let found = prov
        .datasources
        .iter()
        .find(|d| d.uid == reference || d.name == reference);
    match (found, kind) {
        (None, _) => Err(format!(
            "datasource {reference:?} is not provisioned (uids: {:?})",
            prov.datasources.iter().map(|d| &d.uid).collect::<Vec<_>>()
        )),
        (Some(d), Some(k)) if d.kind != k => Err(format!(
            "datasource {reference:?} is a {} datasource, not {k}",
            d.kind
        )),
        _ => Ok(()),
    }
}

/// Pairs of panels whose `gridPos` rectangles intersect, and panels
/// outside the 24-column grid.
fn overlaps(panels: &[&Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut rects = Vec::new();
    for p in panels {
        let g = &p["gridPos"];
        let n = |k: &str| g[k].as_i64();
        let (Some(x), Some(y), Some(w), Some(h)) = (n("x"), n("y"), n("w"), n("h")) else {
            problems.push(format!("{}: gridPos needs x, y, w and h", describe(p)));
            continue;
        };
        if x < 0 || y < 0 || w < 1 || h < 1 || x + w > 24 {
            problems.push(format!(
                "{}: gridPos x={x} y={y} w={w} h={h} is outside the 24-column grid",
                describe(p)
            ));
        }
        rects.push((p, x, y, w, h));
    }
    for (i, a) in rects.iter().enumerate() {
        for b in &rects[i + 1..] {
            if a.1 < b.1 + b.3 && b.1 < a.1 + a.3 && a.2 < b.2 + b.4 && b.2 < a.2 + a.4 {
                problems.push(format!("{} overlaps {}", describe(a.0), describe(b.0)));
            }
        }
    }
    problems
}

/// Every `$name`, `${name...}` and `[[name]]` in the dashboard's strings
/// (as Grafana's template service finds them), with where the first use
/// is; saved values of variables (`current`, `options`) and the import
/// metadata are not templates.
fn collect_variable_uses(v: &Value, at: &str, out: &mut BTreeMap<String, String>) {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"\$(\w+)|\[\[(\w+?)(?::\w+)?\]\]|\$\{(\w+)(?:\.[^:^}]+)?(?::[^}]+)?\}").unwrap()
    });
    match v {
        Value::String(s) => {
            for c in re.captures_iter(s) {
                let name = c.get(1).or(c.get(2)).or(c.get(3)).unwrap().as_str();
                // `$1` is a regex back-reference in mappings, not a variable.
                if name.chars().all(|c| c.is_ascii_digit()) {
                    continue;
                }
                out.entry(name.to_string())
                    .or_insert_with(|| at.to_string());
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                collect_variable_uses(x, &format!("{at}[{i}]"), out);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                if matches!(
                    k.as_str(),
                    "current" | "options" | "__inputs" | "__requires" | "__elements"
                ) && at.contains("templating")
                    || matches!(k.as_str(), "__inputs" | "__requires" | "__elements")
                {
                    continue;
                }
                collect_variable_uses(x, &format!("{at}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// Every `url` string in the dashboard (dashboard links, data links).
fn collect_urls(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| collect_urls(x, out)),
        Value::Object(o) => {
            for (k, x) in o {
                match (k.as_str(), x) {
                    ("url", Value::String(s)) => out.push(s.clone()),
                    _ => collect_urls(x, out),
                }
            }
        }
        _ => {}
    }
}

/// A dashboard file's name for messages.
pub fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env() -> BTreeMap<String, String> {
        [("URL", "http://x:1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expands_the_environment_as_grafana() {
        assert_eq!(
            expand_env("a ${URL} $URL $${__value.raw}", &env()).unwrap(),
            "a http://x:1 http://x:1 ${__value.raw}"
        );
        assert!(expand_env("${NOPE}", &env()).unwrap_err().contains("NOPE"));
        assert_eq!(
            env_variables_used("${A} $B $${c}"),
            ["A".to_string(), "B".to_string()].into()
        );
    }

    fn provisioning() -> Provisioning {
        let ds = |uid: &str, kind: &str| Datasource {
            name: uid.to_uppercase(),
            uid: uid.into(),
            kind: kind.into(),
            url: "http://x".into(),
            is_default: kind == "prometheus",
            json_data: Yaml::Null,
            derived_fields: Vec::new(),
        };
        Provisioning {
            datasources: vec![ds("prometheus", "prometheus"), ds("loki", "loki")],
            ..Provisioning::default()
        }
    }

    fn dashboard(panels: Value) -> Value {
        json!({
            "uid": "d", "title": "D", "schemaVersion": 39,
            "templating": {"list": [
                {"name": "ds", "type": "datasource", "query": "prometheus"},
                {"name": "job", "type": "query", "datasource": {"type": "prometheus", "uid": "${ds}"},
                 "query": {"query": "label_values(up, job)"}}
            ]},
            "panels": panels
        })
    }

    fn lint(panels: Value) -> Vec<String> {
        lint_dashboard(
            "d.json",
            &dashboard(panels),
            &provisioning(),
            &["d".to_string()].into(),
        )
    }

    #[test]
    fn a_sound_dashboard_has_no_problem() {
        let problems = lint(json!([
            {"id": 1, "type": "row", "title": "r", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1}, "panels": []},
            {"id": 2, "type": "stat", "title": "a", "gridPos": {"x": 0, "y": 1, "w": 12, "h": 4},
             "datasource": {"type": "prometheus", "uid": "${ds}"},
             "targets": [{"refId": "A", "expr": "up{job=\"$job\"}[$__rate_interval]"}],
             "links": [{"url": "/d/d?${__url_time_range}&var-x=${__data.fields.job}"}]},
            {"id": 3, "type": "logs", "title": "b", "gridPos": {"x": 12, "y": 1, "w": 12, "h": 4},
             "datasource": {"type": "loki", "uid": "loki"}, "targets": [{"refId": "A", "expr": "{job=\"$job\"}"}]}
        ]));
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn finds_each_kind_of_mistake() {
        let problems = lint(json!([
            {"id": 1, "type": "stat", "title": "a", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 4},
             "datasource": {"type": "prometheus", "uid": "prom-elsewhere"},
             "targets": [{"refId": "A", "expr": "up{instance=\"$instance\"}"}, {"refId": "A", "expr": "up"}]},
            {"id": 1, "type": "timeserie", "title": "b", "gridPos": {"x": 6, "y": 2, "w": 20, "h": 4},
             "datasource": {"type": "loki", "uid": "${ds}"},
             "links": [{"url": "/d/gone/x"}]},
            {"id": 4, "type": "text", "title": "a", "gridPos": {"x": 0, "y": 9, "w": 4, "h": 4}}
        ]));
        let expect = [
            "prom-elsewhere\" is not provisioned",
            "target refId \"A\" is empty or repeated",
            "id 1 is used by another panel",
            "unknown panel type \"timeserie\"",
            "through $ds, a prometheus variable",
            "outside the 24-column grid",
            "panel 1 \"a\" overlaps panel 1 \"b\"",
            "two panels are titled \"a\"",
            "$instance is used",
            "uid \"gone\"",
        ];
        for e in expect {
            assert!(
                problems.iter().any(|p| p.contains(e)),
                "no problem mentions {e:?}: {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expect.len(), "{problems:#?}");
    }
}
