//! Every panel of our dashboards shows data: one real Prometheus scrapes
//! our node-exporter (default collectors, as deployed) on loopback, with
//! the alert rules of `alert-rules/` when they are there; each dashboard's
//! variables are resolved and every PromQL query of every panel is
//! evaluated with them substituted as Grafana would. A panel that cannot
//! have data here yet is in [`PANELS_WITHOUT_DATA_YET`], with the reason;
//! one of those that starts answering fails the test until it is taken
//! off the list.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use e2e_tests::assert_no_problems;
use e2e_tests::dashboard::{Dashboard, Evaluation, SCRAPES_BEFORE_QUERYING};
use e2e_tests::exporters::{our_binary, Exporter};
use e2e_tests::grafana::{
    dashboard_files, dashboards_dir, example_environment, file_name, Provisioning,
};
use e2e_tests::process::workspace_root;
use e2e_tests::prometheus::{Prometheus, ScrapeTarget};

/// Our dashboards (node-exporter-full.json has its own test,
/// `dashboard_queries.rs`, against node_exporter's answers), with the
/// variables a user picks: the exporter under test, or "All" by default.
const HOST: &[(&str, &str)] = &[("job", "node"), ("instance", INSTANCE)];
const DASHBOARDS: &[(&str, &[(&str, &str)])] = &[
    ("host-overview.json", HOST),
    ("fleet-overview.json", &[]),
    ("containers.json", HOST),
    ("logs.json", &[]),
    ("alerts-probes.json", &[]),
];

/// Stands for our exporter's address in presets.
const INSTANCE: &str = "<our exporter>";

const PROVISIONING: &str = "provisioning/datasources/datasources.yml";

const NO_DOCKER: &str = "container metrics: --collector.docker is not on main yet \
     (when it lands: enable it here and run a container with a memory limit)";
const NO_PROBES: &str = "HTTP probes: node-exporter's /probe is not on main yet \
     (when it lands: pass its modules file here; the `probe` job below already scrapes it)";
const NO_LOKI: &str = "Loki query: no Loki runs in the tests (dashboards_loki_labels.rs \
     checks its syntax and label names)";
const NO_SHIPPER: &str = "log-shipper self-metrics: its main is not wired yet \
     (when it runs: scrape its /metrics here as job log-shipper)";

/// Panels (by dashboard file and title, or `variable $name`, or a derived
/// field of the Loki datasource) that cannot have data in this test yet,
/// and why. Shrink it as the missing pieces land.
const PANELS_WITHOUT_DATA_YET: &[(&str, &str, &str)] = &[
    ("containers.json", "variable $job", NO_DOCKER),
    ("containers.json", "variable $instance", NO_DOCKER),
    ("containers.json", "variable $container", NO_DOCKER),
    ("containers.json", "Restarts in the last hour", NO_DOCKER),
    ("containers.json", "Docker events per minute", NO_DOCKER),
    ("containers.json", "Containers", NO_DOCKER),
    ("containers.json", "Health checks", NO_DOCKER),
    ("containers.json", "CPU", NO_DOCKER),
    ("containers.json", "Memory working set", NO_DOCKER),
    ("containers.json", "Memory against limit", NO_DOCKER),
    ("containers.json", "Network", NO_DOCKER),
    ("containers.json", "State over time", NO_DOCKER),
    ("containers.json", "Restarts", NO_DOCKER),
    ("containers.json", "Docker events", NO_DOCKER),
    ("containers.json", "Seconds since last seen", NO_DOCKER),
    (PROVISIONING, "derived field Container metrics", NO_DOCKER),
    ("alerts-probes.json", "variable $probe_job", NO_PROBES),
    ("alerts-probes.json", "variable $target", NO_PROBES),
    ("alerts-probes.json", "Probe success", NO_PROBES),
    ("alerts-probes.json", "Probe duration", NO_PROBES),
    ("alerts-probes.json", "Probe phases", NO_PROBES),
    ("alerts-probes.json", "HTTP status codes", NO_PROBES),
    (
        "alerts-probes.json",
        "TLS certificate expires in",
        "HTTP probes: /probe is not on main yet, and only an https target has a certificate",
    ),
    ("logs.json", "Lines read and sent", NO_SHIPPER),
    ("logs.json", "Dropped entries", NO_SHIPPER),
    ("logs.json", "Push requests by status", NO_SHIPPER),
    ("logs.json", "Requests by status class", NO_LOKI),
    ("logs.json", "Server error rate", NO_LOKI),
    ("logs.json", "Top paths", NO_LOKI),
    ("logs.json", "Top paths with server errors", NO_LOKI),
    ("logs.json", "Error log lines by level", NO_LOKI),
    ("logs.json", "Error logs", NO_LOKI),
    ("logs.json", "Auth events", NO_LOKI),
    ("logs.json", "SSH logins accepted", NO_LOKI),
    ("logs.json", "SSH logins failed", NO_LOKI),
    ("logs.json", "sudo denied", NO_LOKI),
    ("logs.json", "Auth log", NO_LOKI),
    ("logs.json", "Logs", NO_LOKI),
    ("logs.json", "Monitoring servers' logs", NO_LOKI),
    ("logs.json", "Container logs", NO_LOKI),
];

/// A host with problems: alerts that hold on the real exporter's series,
/// so that the alert panels (a host's problems, all problems, alert
/// history, pending alerts) have something to show. One fires at once,
/// one after `for`, one stays pending.
const SCENARIO_RULES: &str = r#"groups:
  - name: dashboard-test-scenario
    rules:
      - alert: DashboardTestLoadSeen
        expr: node_load1{job="node"} >= 0
        labels:
          severity: warning
        annotations:
          summary: "the exporter reports a load average"
      - alert: DashboardTestExporterUp
        expr: up{job="node"} == 1
        for: 2s
        labels:
          severity: critical
        annotations:
          summary: "the exporter is up"
      - alert: DashboardTestPendingForAnHour
        expr: up{job="node"} == 1
        for: 1h
        labels:
          severity: warning
        annotations:
          summary: "stays pending for the whole test"
"#;

/// The rule files of `alert-rules/` (recording and alerting), when that
/// part of the repository exists: the dashboards are read with the alerts
/// users will really have.
fn alert_rule_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["alert-rules", "alert-rules/rules"] {
        let Ok(entries) = std::fs::read_dir(workspace_root().join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            // Rule files only: promtool test files and Alertmanager
            // configs live there too.
            let is_rules = std::fs::read_to_string(&p)
                .is_ok_and(|t| t.lines().any(|l| l.starts_with("groups:")));
            if p.extension().is_some_and(|x| x == "yml" || x == "yaml") && is_rules {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// `--collector.docker` when our exporter has it (the container panels
/// come out of the table then).
fn docker_args() -> Vec<String> {
    let help = std::process::Command::new(our_binary())
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if help.contains("--collector.docker") {
        vec!["--collector.docker".to_string()]
    } else {
        Vec::new()
    }
}

/// Whether `key` (a panel title or `variable $x`) of `file` is expected
/// to have no data yet.
fn pending(file: &str, key: &str) -> bool {
    PANELS_WITHOUT_DATA_YET
        .iter()
        .any(|(f, k, _)| *f == file && *k == key)
}

#[test]
fn every_panel_of_our_dashboards_returns_data() {
    let exporter = Exporter::ours_with_args(&docker_args())
        .unwrap_or_else(|log| panic!("our node-exporter did not start:\n{log}"));
    let rules_dir = tempfile::tempdir().expect("a temp dir");
    let scenario = rules_dir.path().join("dashboard-test-scenario.yml");
    std::fs::write(&scenario, SCENARIO_RULES).expect("writing the scenario rules");
    let mut rule_files = alert_rule_files();
    eprintln!("alert rules loaded: {rule_files:?}");
    rule_files.push(scenario);
    // Blackbox-style probing of our exporter's own /metrics through
    // /probe, relabelled as blackbox_exporter's README does.
    let probe_job = format!(
        "  - job_name: probe\n    metrics_path: /probe\n    params:\n      module: [http_2xx]\n\
         \x20   static_configs:\n      - targets: [\"http://{addr}/metrics\"]\n\
         \x20   relabel_configs:\n\
         \x20     - source_labels: [__address__]\n        target_label: __param_target\n\
         \x20     - source_labels: [__param_target]\n        target_label: instance\n\
         \x20     - target_label: __address__\n        replacement: {addr:?}\n",
        addr = exporter.addr
    );
    let target = ScrapeTarget {
        job: "node",
        address: &exporter.addr,
    };
    let prom = Prometheus::start_with(&[target], &probe_job, &rule_files);
    prom.wait_for_scrapes(&["node"], SCRAPES_BEFORE_QUERYING, Duration::from_secs(40));
    // The scenario alert with `for: 2s` fires within a few evaluations.
    let fired = e2e_tests::process::wait_until(
        "the scenario alerts firing",
        Duration::from_secs(20),
        || {
            Ok(!prom
                .query(r#"ALERTS{alertname="DashboardTestExporterUp",alertstate="firing"}"#)?
                .is_empty())
        },
    );
    if let Err(e) = fired {
        panic!("{e}\n{}", prom.log_tail(20));
    }

    let mut problems = Vec::new();
    let mut seen_keys: BTreeSet<(String, String)> = BTreeSet::new();
    let mut total = 0;
    let mut answered = 0;
    for (file, presets) in DASHBOARDS {
        let path = dashboards_dir().join(file);
        let dashboard = Dashboard::load(&path);
        let presets: Vec<(&str, &str)> = presets
            .iter()
            .map(|(k, v)| {
                (
                    *k,
                    if *v == INSTANCE {
                        exporter.addr.as_str()
                    } else {
                        *v
                    },
                )
            })
            .collect();
        let mut eval = Evaluation::with_presets(&prom, &dashboard, &presets);
        // A query answers if it does once over a few scrapes (a rate()
        // right after startup, a scrape that landed late); the ones
        // expected to stay silent are not waited for.
        for _ in 0..3 {
            let missing: Vec<String> = dashboard
                .expressions
                .iter()
                .filter(|(k, panels)| {
                    !eval.is_answered(k) && !panels.iter().all(|p| pending(file, p))
                })
                .map(|(k, _)| k.clone())
                .collect();
            if missing.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
            eval.recheck(&prom, &missing);
        }
        // Per panel: every query of a panel must answer (or the panel is
        // in the table).
        let mut panels: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for q in &dashboard.queries {
            panels
                .entry(q.panel.clone())
                .or_default()
                .push(q.expr.clone());
        }
        for v in &dashboard.variables {
            let key = format!("variable ${}", v.name);
            if eval.answers.contains_key(&key) {
                panels.entry(key.clone()).or_default().push(key);
            }
        }
        for (panel, keys) in &panels {
            seen_keys.insert((file.to_string(), panel.clone()));
            total += 1;
            let silent: Vec<&String> = keys.iter().filter(|k| !eval.is_answered(k)).collect();
            let expected_silent = pending(file, panel);
            match (silent.is_empty(), expected_silent) {
                (true, false) => answered += 1,
                (true, true) => problems.push(format!(
                    "{file}: {panel:?} now returns data: take it off PANELS_WITHOUT_DATA_YET"
                )),
                (false, true) => {}
                (false, false) => {
                    for k in silent {
                        problems.push(format!("{file}: no data: {}", eval.describe(&dashboard, k)));
                    }
                }
            }
        }
        eprintln!(
            "{file}: {} queries, variables {:?}",
            dashboard.queries.len(),
            eval.variable_values()
                .iter()
                .filter(|(k, _)| !k.starts_with("__"))
                .collect::<Vec<_>>()
        );
    }

    // Loki's derived fields open Prometheus queries: run them with a
    // value of the label they match.
    let prov = Provisioning::load(&example_environment()).unwrap_or_else(|p| panic!("{p:#?}"));
    let nodename = prom
        .query(r#"node_uname_info{job="node"}"#)
        .ok()
        .and_then(|s| s.first().and_then(|s| s.labels.get("nodename").cloned()))
        .unwrap_or_default();
    let container = prom
        .query(r#"container_last_seen{job="node",name!=""}"#)
        .ok()
        .and_then(|s| s.first().and_then(|s| s.labels.get("name").cloned()))
        .unwrap_or_default();
    for ds in &prov.datasources {
        for f in &ds.derived_fields {
            if f.datasource_uid.as_deref() != Some("prometheus") {
                continue;
            }
            let key = format!("derived field {}", f.name);
            seen_keys.insert((PROVISIONING.to_string(), key.clone()));
            total += 1;
            let value = match f.matcher_regex.as_str() {
                "host" => &nodename,
                "container" => &container,
                other => panic!(
                    "derived field {:?}: no test value for the label {other}",
                    f.name
                ),
            };
            let query = f.url.replace("${__value.raw}", value);
            let has_data = prom.query(&query).is_ok_and(|s| !s.is_empty());
            match (has_data, pending(PROVISIONING, &key)) {
                (true, false) => answered += 1,
                (true, true) => problems.push(format!(
                    "{PROVISIONING}: {key} now returns data: take it off PANELS_WITHOUT_DATA_YET"
                )),
                (false, true) => {}
                (false, false) => problems.push(format!(
                    "{PROVISIONING}: {key}: no data for {query} ({:?})",
                    prom.query(&query).err()
                )),
            }
        }
    }

    // The table names only panels that exist.
    for (file, key, _) in PANELS_WITHOUT_DATA_YET {
        if !seen_keys.contains(&(file.to_string(), key.to_string())) {
            problems.push(format!(
                "PANELS_WITHOUT_DATA_YET names {key:?} of {file}, which has no such panel"
            ));
        }
    }
    // Every dashboard file but the community one is evaluated here.
    for f in dashboard_files() {
        let name = file_name(&f);
        if name != "node-exporter-full.json" && !DASHBOARDS.iter().any(|(d, _)| *d == name) {
            problems.push(format!("{name} is not in DASHBOARDS of this test"));
        }
    }
    eprintln!(
        "panels, variables and derived fields with data: {answered} of {total} \
         ({} listed without data yet)",
        PANELS_WITHOUT_DATA_YET.len()
    );
    assert_no_problems("dashboard panels without data", &problems);
}
