//! Every dashboard of `grafana-dashboards/` against a deployed stack, for
//! the Ansible deployment test (`ansible/tests/deploy_test.py`):
//!
//!     cargo run -p e2e-tests --example deployed_dashboards -- \
//!         --prometheus http://10.0.0.2:9090 --scrape-interval 5 \
//!         --streams pushed.jsonl --preset host-overview.json:instance=app ...
//!
//! - PromQL: each dashboard's variables are resolved through the deployed
//!   Prometheus as Grafana resolves them (presets pick a value, the others
//!   take what Grafana gives them on load), then every query is run.
//! - Loki: `--streams` holds what the Loki test receiver printed (one JSON
//!   entry a line: labels, line, structured_metadata). Each query's stream
//!   selectors must match a pushed stream, and its label filters use labels
//!   those streams carry (stream labels, structured metadata) or its own
//!   parsers extract.
//!
//! Prints one JSON object per query on stdout, `{"check": "promql" |
//! "loki", "dashboard", "panels", "expr", "ok", "note"}`; the caller decides
//! what may have no data. Exits 2 on a usage or input error.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use e2e_tests::dashboard::{loki_variables, substitute, Dashboard, Evaluation};
use e2e_tests::grafana::{dashboard_files, file_name};
use e2e_tests::logql::{self, LabelUse};
use e2e_tests::prometheus::Prometheus;
use e2e_tests::shipper_labels::shipper_labels;
use serde_json::{json, Value};

/// Labels Loki itself gives every parsed line.
const LOKI_BUILTIN_LABELS: &[&str] = &["__error__", "__error_details__"];

struct Args {
    prometheus: String,
    scrape_interval: u64,
    streams: String,
    /// dashboard file name -> (variable, value)
    presets: BTreeMap<String, Vec<(String, String)>>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut prometheus, mut streams, mut scrape_interval) = (None, None, None);
    let mut presets: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--prometheus" => prometheus = Some(value()?),
            "--streams" => streams = Some(value()?),
            "--scrape-interval" => {
                let v = value()?;
                scrape_interval = Some(
                    v.parse()
                        .map_err(|e| format!("--scrape-interval {v}: {e}"))?,
                )
            }
            "--preset" => {
                let v = value()?;
                let (file, assignment) = v
                    .split_once(':')
                    .ok_or(format!("--preset {v}: expected FILE.json:name=value"))?;
                let (name, val) = assignment
                    .split_once('=')
                    .ok_or(format!("--preset {v}: expected FILE.json:name=value"))?;
                presets
                    .entry(file.to_string())
                    .or_default()
                    .push((name.to_string(), val.to_string()));
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        prometheus: prometheus.ok_or("--prometheus is required")?,
        scrape_interval: scrape_interval.ok_or("--scrape-interval is required")?,
        streams: streams.ok_or("--streams is required")?,
        presets,
    })
}

/// One pushed stream: its labels and the structured metadata keys its
/// entries carried.
struct Stream {
    labels: BTreeMap<String, String>,
    metadata: BTreeSet<String>,
}

fn load_streams(path: &str) -> Result<Vec<Stream>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut by_labels: BTreeMap<Vec<(String, String)>, BTreeSet<String>> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("{path}:{}: {e}", n + 1))?;
        let labels: Vec<(String, String)> = v["labels"]
            .as_object()
            .ok_or(format!("{path}:{}: no labels", n + 1))?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect();
        let meta = by_labels.entry(labels).or_default();
        if let Some(m) = v["structured_metadata"].as_object() {
            meta.extend(m.keys().cloned());
        }
    }
    Ok(by_labels
        .into_iter()
        .map(|(labels, metadata)| Stream {
            labels: labels.into_iter().collect(),
            metadata,
        })
        .collect())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("deployed_dashboards: {e}");
            return ExitCode::from(2);
        }
    };
    let streams = match load_streams(&args.streams) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("deployed_dashboards: {e}");
            return ExitCode::from(2);
        }
    };
    let line_fields = match shipper_labels() {
        Ok(l) => l.line_fields,
        Err(e) => {
            eprintln!("deployed_dashboards: {e}");
            return ExitCode::from(2);
        }
    };
    let prom = Prometheus::connect(&args.prometheus);
    let files = dashboard_files();
    for f in &files {
        let name = file_name(f);
        let dashboard = Dashboard::load(f);
        let presets: Vec<(&str, &str)> = args
            .presets
            .get(&name)
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let evaluation =
            Evaluation::with_presets_at(&prom, &dashboard, &presets, args.scrape_interval);
        for (key, answer) in &evaluation.answers {
            let panels = dashboard.expressions.get(key).cloned().unwrap_or_default();
            println!(
                "{}",
                json!({"check": "promql", "dashboard": name, "panels": panels, "expr": key,
                       "ok": answer.answered, "note": answer.note})
            );
        }
        for (panel, expr, problems) in loki_checks(&dashboard, &streams, &line_fields) {
            println!(
                "{}",
                json!({"check": "loki", "dashboard": name, "panels": [panel], "expr": expr,
                       "ok": problems.is_empty(), "note": problems.join("; ")})
            );
        }
    }
    eprintln!(
        "deployed_dashboards: {} dashboards, {} pushed streams",
        files.len(),
        streams.len()
    );
    ExitCode::SUCCESS
}

/// (panel, query, problems) for each Loki query and Loki variable.
fn loki_checks(
    dashboard: &Dashboard,
    streams: &[Stream],
    line_fields: &BTreeSet<String>,
) -> Vec<(String, String, Vec<String>)> {
    let vars = loki_variables(&dashboard.variables);
    let mut out = Vec::new();
    // label_values(<label>) variables: some pushed stream carries it.
    for v in &dashboard.variables {
        if let Some(label) = v.loki_label() {
            let problems = if streams.iter().any(|s| s.labels.contains_key(label)) {
                vec![]
            } else {
                vec![format!("no pushed stream has the label {label:?}")]
            };
            out.push((format!("variable ${}", v.name), v.query.clone(), problems));
        }
    }
    for q in dashboard
        .queries
        .iter()
        .filter(|q| q.datasource.as_deref() == Some("loki"))
    {
        let mut problems = Vec::new();
        let checked = substitute(&q.expr, &vars).and_then(|e| logql::parse(&e));
        match checked {
            Err(e) => problems.push(e),
            Ok(parsed) => {
                // Labels the streams its selectors match carry.
                let mut carried: BTreeSet<String> = BTreeSet::new();
                for selector in &parsed.selectors {
                    let mut matched = 0;
                    for s in streams {
                        let mut all = true;
                        for m in selector {
                            match m.matches(&s.labels) {
                                Ok(true) => {}
                                Ok(false) => all = false,
                                Err(e) => {
                                    problems.push(e);
                                    all = false;
                                }
                            }
                        }
                        if all {
                            matched += 1;
                            carried.extend(s.labels.keys().cloned());
                            carried.extend(s.metadata.iter().cloned());
                        }
                    }
                    if matched == 0 {
                        let text: Vec<String> = selector
                            .iter()
                            .map(|m| format!("{}{}{:?}", m.name, m.op, m.value))
                            .collect();
                        problems.push(format!(
                            "the selector {{{}}} matches none of the {} pushed streams",
                            text.join(", "),
                            streams.len()
                        ));
                    }
                }
                for u in &parsed.uses {
                    if let LabelUse::Filter(l) = u {
                        let known = carried.contains(l)
                            || parsed.extracted.contains(l)
                            || LOKI_BUILTIN_LABELS.contains(&l.as_str())
                            || (parsed.extracts_all_fields && line_fields.contains(l));
                        if !known {
                            problems.push(format!(
                                "filters on {l:?}, which the matched streams do not carry and its parsers do not extract"
                            ));
                        }
                    }
                }
            }
        }
        out.push((q.panel.clone(), q.expr.clone(), problems));
    }
    out
}
