//! Every dashboard in `grafana-dashboards/` and the provisioning that
//! loads them, checked as Grafana would read them (no Grafana runs here):
//! valid JSON in the current schema, unique panel ids, panels that do not
//! overlap, datasources that provisioning provides, variables that are
//! defined, links to dashboards that exist.

use std::collections::{BTreeMap, BTreeSet};

use e2e_tests::assert_no_problems;
use e2e_tests::grafana::{
    dashboard_files, dashboards_dir, example_environment, file_name, lint_dashboard, Provisioning,
};
use serde_json::Value;

fn provisioning() -> Provisioning {
    Provisioning::load(&example_environment()).unwrap_or_else(|problems| {
        assert_no_problems("grafana-dashboards/provisioning", &problems);
        unreachable!()
    })
}

#[test]
fn provisioning_gives_grafana_the_three_datasources_and_this_folder() {
    let prov = provisioning();
    let mut problems = Vec::new();
    for (uid, kind) in [
        ("prometheus", "prometheus"),
        ("loki", "loki"),
        ("alertmanager", "alertmanager"),
    ] {
        match prov.by_uid(uid) {
            Some(d) if d.kind == kind => {}
            Some(d) => problems.push(format!("uid {uid} is a {} datasource, not {kind}", d.kind)),
            None => problems.push(format!("no datasource with uid {uid}")),
        }
    }
    if prov.default_datasource().map(|d| d.kind.as_str()) != Some("prometheus") {
        problems.push("the default datasource is not Prometheus".into());
    }
    if let Some(am) = prov.by_uid("alertmanager") {
        let implementation = am.json_data.get("implementation").and_then(|v| v.as_str());
        if implementation != Some("prometheus") {
            problems.push(format!(
                "Alertmanager jsonData.implementation is {implementation:?}, not \"prometheus\""
            ));
        }
    }
    // Loki links back to metrics: at least one derived field opens a
    // Prometheus query (the data test runs them against Prometheus).
    let to_metrics = prov
        .by_uid("loki")
        .map(|l| {
            l.derived_fields
                .iter()
                .filter(|f| f.datasource_uid.as_deref() == Some("prometheus"))
                .count()
        })
        .unwrap_or(0);
    if to_metrics == 0 {
        problems.push("Loki has no derived field linking to Prometheus".into());
    }
    // One file provider, and the README says which environment it needs.
    if prov.providers.len() != 1 {
        problems.push(format!(
            "{} dashboard providers; one loads grafana-dashboards/",
            prov.providers.len()
        ));
    }
    let readme = std::fs::read_to_string(dashboards_dir().join("README.md")).unwrap_or_default();
    for var in &prov.env_used {
        if !readme.contains(var.as_str()) {
            problems.push(format!(
                "grafana-dashboards/README.md does not document the environment variable {var}"
            ));
        }
    }
    assert_no_problems("provisioning", &problems);
}

#[test]
fn every_dashboard_is_sound() {
    let prov = provisioning();
    let files = dashboard_files();
    assert!(
        files.len() >= 6,
        "expected node-exporter-full.json and our five dashboards in {}, found {files:?}",
        dashboards_dir().display()
    );
    let mut problems = Vec::new();
    let mut parsed = Vec::new();
    for f in &files {
        let name = file_name(f);
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{name}: {e}"));
        match serde_json::from_str::<Value>(&text) {
            Ok(json) => parsed.push((name, json)),
            Err(e) => problems.push(format!("{name}: not JSON: {e}")),
        }
    }
    // One folder: uids and titles are unique across every file.
    let mut uids = BTreeMap::new();
    let mut titles = BTreeMap::new();
    for (name, json) in &parsed {
        let uid = json["uid"].as_str().unwrap_or("").to_string();
        if let Some(other) = uids.insert(uid.clone(), name.clone()) {
            problems.push(format!("{name} and {other} share the uid {uid:?}"));
        }
        let title = json["title"].as_str().unwrap_or("").to_string();
        if let Some(other) = titles.insert(title.clone(), name.clone()) {
            problems.push(format!("{name} and {other} share the title {title:?}"));
        }
    }
    let uid_set: BTreeSet<String> = uids.keys().cloned().collect();
    for (name, json) in &parsed {
        problems.extend(lint_dashboard(name, json, &prov, &uid_set));
    }
    eprintln!(
        "checked {} dashboards: {}",
        parsed.len(),
        parsed
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert_no_problems("dashboards", &problems);
}

#[test]
fn host_and_container_dashboards_pick_a_job_and_an_instance() {
    // The issue: `$job`/`$instance` variables where they apply, so one
    // dashboard serves every server (seed 001's dashboard per server).
    let mut problems = Vec::new();
    for f in [
        "host-overview.json",
        "fleet-overview.json",
        "containers.json",
    ] {
        let text = std::fs::read_to_string(dashboards_dir().join(f)).unwrap_or_default();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let names: Vec<&str> = json["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["name"].as_str())
            .collect();
        for want in ["job", "instance"] {
            if !names.contains(&want) {
                problems.push(format!("{f}: no ${want} variable (has {names:?})"));
            }
        }
    }
    assert_no_problems("dashboard variables", &problems);
}
