//! Every panel of our dashboards shows data: one real Prometheus scrapes,
//! on loopback, what a monitored host really runs:
//! - our node-exporter (default collectors, as deployed) with
//!   `--collector.docker`, while a container with a memory limit and a
//!   health check runs on this machine's Docker Engine;
//! - HTTP probes through that exporter's `/probe` (blackbox's modules file
//!   and relabeling) of a plain-HTTP site and an HTTPS site whose
//!   certificate a throw-away CA signed;
//! - the log-shipper tailing a file into the Loki test receiver, its
//!   /metrics scraped as job `log-shipper`;
//! - the alert rules of `alert-rules/` and a scenario that makes alerts fire.
//!
//! Each dashboard's variables are resolved and every PromQL query of every
//! panel is evaluated with them substituted as Grafana would. A panel that
//! cannot have data here is in [`PANELS_WITHOUT_DATA_YET`], with the
//! reason; one of those that starts answering fails the test until it is
//! taken off the list. Without a Docker Engine the container panels are
//! skipped, loudly; everything else is still checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e_tests::assert_no_problems;
use e2e_tests::dashboard::{Dashboard, Evaluation, SCRAPES_BEFORE_QUERYING};
use e2e_tests::docker_engine::{engine_available, Scene};
use e2e_tests::exporters::Exporter;
use e2e_tests::grafana::{
    dashboard_files, dashboards_dir, example_environment, file_name, Provisioning,
};
use e2e_tests::loki_receiver::LokiReceiver;
use e2e_tests::process::{free_port, wait_until, workspace_root, Process};
use e2e_tests::prometheus::{Prometheus, ScrapeTarget};

/// Our dashboards (node-exporter-full.json has its own test,
/// `dashboard_queries.rs`, against node_exporter's answers), with the
/// variables a user picks: the exporter under test and the test's
/// container, or "All" by default.
const HOST: &[(&str, &str)] = &[("job", "node"), ("instance", INSTANCE)];
const DASHBOARDS: &[(&str, &[(&str, &str)])] = &[
    ("host-overview.json", HOST),
    ("fleet-overview.json", &[]),
    (
        "containers.json",
        &[
            ("job", "node"),
            ("instance", INSTANCE),
            ("container", CONTAINER),
        ],
    ),
    ("logs.json", &[]),
    ("alerts-probes.json", &[]),
];

/// Stands for our exporter's address in presets.
const INSTANCE: &str = "<our exporter>";
/// Stands for the test container's name in presets.
const CONTAINER: &str = "<our container>";

const PROVISIONING: &str = "provisioning/datasources/datasources.yml";

const NO_LOKI: &str = "Loki query: no Loki runs in the tests (the shipper pushes to the Loki \
     test receiver, which stores but cannot answer LogQL); dashboards_loki_labels.rs checks \
     its syntax and that its label names are the ones the shipper's configs attach";

/// Panels (by dashboard file and title, or `variable $name`, or a derived
/// field of the Loki datasource) that cannot have data in this test, and
/// why.
const PANELS_WITHOUT_DATA_YET: &[(&str, &str, &str)] = &[
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

/// The panels that read container metrics: without a Docker Engine they
/// are skipped (and said so), not failed.
fn needs_docker(file: &str, key: &str) -> bool {
    file == "containers.json" || (file == PROVISIONING && key == "derived field Container metrics")
}

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

/// What this test expects of a panel's answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Data,
    /// In [`PANELS_WITHOUT_DATA_YET`].
    NoData,
    /// Needs what this machine lacks (a Docker Engine): not judged.
    Skipped,
}

/// What is expected of `key` (a panel title, `variable $x` or `derived
/// field X`) of `file`.
fn expect(file: &str, key: &str, docker: bool) -> Expect {
    if PANELS_WITHOUT_DATA_YET
        .iter()
        .any(|(f, k, _)| *f == file && *k == key)
    {
        Expect::NoData
    } else if !docker && needs_docker(file, key) {
        Expect::Skipped
    } else {
        Expect::Data
    }
}

/// Tallies of panels, variables and derived fields, and what is wrong.
#[derive(Default)]
struct Verdicts {
    total: usize,
    answered: usize,
    skipped: Vec<String>,
    problems: Vec<String>,
}

impl Verdicts {
    /// Judges `key` of `file`: `silent` holds why it had no data (empty
    /// when it had).
    fn judge(&mut self, file: &str, key: &str, expected: Expect, silent: Vec<String>) {
        self.total += 1;
        match (silent.is_empty(), expected) {
            (true, Expect::Data) => self.answered += 1,
            (true, Expect::NoData) => self.problems.push(format!(
                "{file}: {key:?} now returns data: take it off PANELS_WITHOUT_DATA_YET"
            )),
            (_, Expect::Skipped) => self.skipped.push(format!("{file}: {key}")),
            (false, Expect::NoData) => {}
            (false, Expect::Data) => self.problems.extend(
                silent
                    .into_iter()
                    .map(|why| format!("{file}: no data: {why}")),
            ),
        }
    }
}

/// An HTTPS site for the probes: a second exporter of ours serving TLS
/// (its web config) with a certificate for 127.0.0.1 that a throw-away CA
/// signed. Returns the site and the CA file the probe module trusts.
fn https_site(dir: &Path) -> (Exporter, PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "dashboards test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().expect("a CA key");
    let ca_cert = ca.self_signed(&ca_key).expect("self-signing the CA");
    let issuer = Issuer::new(ca, ca_key);
    let mut site = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("site certificate parameters");
    site.distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    site.use_authority_key_identifier_extension = true;
    let site_key = KeyPair::generate().expect("a site key");
    let site_cert = site
        .signed_by(&site_key, &issuer)
        .expect("signing the site certificate");
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
        p
    };
    let ca_file = write("ca.crt", &ca_cert.pem());
    let cert = write("site.crt", &site_cert.pem());
    let key = write("site.key", &site_key.serialize_pem());
    let web = write(
        "web-config.yml",
        &format!(
            "tls_server_config:\n  cert_file: {:?}\n  key_file: {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    );
    let args = [
        format!("--web.config.file={}", web.display()),
        "--collector.disable-defaults".to_string(),
        "--collector.loadavg".to_string(),
    ];
    let site = Exporter::ours_with_args(&args).unwrap_or_else(|log| {
        panic!("the HTTPS site (our exporter with TLS) did not start:\n{log}")
    });
    (site, ca_file)
}

/// blackbox_exporter's modules file: `http_2xx`, trusting the test CA for
/// https targets.
fn probe_modules(dir: &Path, ca_file: &Path) -> PathBuf {
    let p = dir.join("blackbox.yml");
    std::fs::write(
        &p,
        format!(
            "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      \
             tls_config:\n        ca_file: {:?}\n",
            ca_file.display().to_string()
        ),
    )
    .expect("writing the probe modules");
    p
}

/// A container as a user runs one: a memory limit, a health check, some
/// memory in use. Started after the exporter so that its events count.
fn start_container(scene: &mut Scene) -> String {
    scene.run(
        "app",
        &[
            "-m",
            "64m",
            "--health-cmd",
            "true",
            "--health-interval",
            "1s",
        ],
        // 8 MiB in the container's tmpfs is charged to its memory cgroup;
        // the sleep ends it should the test be killed before cleaning up.
        "head -c 8388608 /dev/zero > /dev/shm/fill; exec sleep 300",
    );
    scene.name("app")
}

/// The log-shipper with a promtail config tailing `<dir>/app.log` into
/// `receiver`; returns it and its HTTP address (for /metrics).
fn start_shipper(dir: &Path, receiver: &LokiReceiver) -> (Process, String) {
    let log = dir.join("app.log");
    std::fs::write(&log, "").expect("creating the tailed log");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let config = format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {port}\n\
         positions:\n  filename: {positions:?}\n\
         clients:\n  - url: {url}\n    batchwait: 200ms\n\
         scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [localhost]\n\
         \x20       labels:\n          job: app\n          __path__: {log:?}\n",
        positions = dir.join("positions.yaml").display().to_string(),
        url = receiver.push_url(),
        log = log.display().to_string(),
    );
    let config_path = dir.join("log-shipper.yml");
    std::fs::write(&config_path, &config).expect("writing the shipper config");
    let process = e2e_tests::shipper::start(&config_path, port, &[], &[]);
    // Lines written now are read, sent and acknowledged: every counter
    // and the request histogram have series.
    let lines: String = (0..20)
        .map(|i| format!("dashboards test line {i}\n"))
        .collect();
    std::fs::write(&log, lines).expect("writing the tailed log");
    let shipped = wait_until(
        "the shipper's lines at the receiver",
        Duration::from_secs(20),
        || Ok(receiver.lines().len() >= 20),
    );
    if let Err(e) = shipped {
        panic!("{e}\n{}", process.log_tail(30));
    }
    (process, addr)
}

/// What the panels should show of the scene this test set up, beyond
/// "some data": both probes succeed (the HTTPS one through the test CA,
/// with its certificate's expiry), the container runs healthy under its
/// 64 MiB limit, and the shipper read and sent the lines written.
/// Returns what differs.
fn scene_as_set_up(prom: &Prometheus, https_url: &str, container: Option<&str>) -> Vec<String> {
    // (what, query, whether its values are right)
    type Check = (String, String, fn(&[f64]) -> bool);
    let mut checks: Vec<Check> = vec![
        (
            "both probes succeed".into(),
            r#"probe_success{job="probe"}"#.into(),
            |v| v.len() == 2 && v.iter().all(|x| *x == 1.0),
        ),
        (
            "the HTTPS site's certificate expiry is known".into(),
            format!(r#"probe_ssl_earliest_cert_expiry{{job="probe",instance="{https_url}"}} - time()"#),
            |v| v.len() == 1 && v[0] > 86400.0,
        ),
        (
            "the shipper read and sent the 20 lines".into(),
            r#"sum(promtail_read_lines_total{job="log-shipper"}) >= 20 and sum(promtail_sent_entries_total{job="log-shipper"}) >= 20"#
                .into(),
            |v| v.len() == 1,
        ),
    ];
    if let Some(c) = container {
        checks.push((
            format!("container {c} runs healthy"),
            format!(r#"container_docker_health_status{{job="node",name="{c}",status="healthy"}}"#),
            |v| v == [1.0],
        ));
        checks.push((
            format!("container {c} is limited to 64 MiB and uses some of it"),
            format!(
                r#"container_memory_working_set_bytes{{job="node",name="{c}"}} / container_spec_memory_limit_bytes{{job="node",name="{c}"}}"#
            ),
            |v| v.len() == 1 && v[0] > 0.1 && v[0] < 1.0,
        ));
    }
    let mut problems = Vec::new();
    for (what, query, ok) in &checks {
        let mut last = Vec::new();
        // The health check and the probes settle within a few seconds.
        let settled = wait_until(what, Duration::from_secs(15), || {
            last = prom.query(query)?.iter().map(|s| s.value).collect();
            Ok(ok(&last))
        });
        if settled.is_err() {
            problems.push(format!("the test scene: not {what}: {query} -> {last:?}"));
        }
    }
    problems
}

#[test]
fn every_panel_of_our_dashboards_returns_data() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (https, ca_file) = https_site(dir.path());
    let modules = probe_modules(dir.path(), &ca_file);
    let exporter = Exporter::ours_with_args(&[
        "--collector.docker".to_string(),
        format!("--probe.config.file={}", modules.display()),
    ])
    .unwrap_or_else(|log| panic!("our node-exporter did not start:\n{log}"));
    let docker = engine_available("the container panels of the dashboards test");
    let mut scene = docker.then(|| Scene::new("dash-test", "data"));
    let container = scene.as_mut().map(start_container).unwrap_or_default();
    let receiver = LokiReceiver::start();
    let (_shipper, shipper_addr) = start_shipper(dir.path(), &receiver);

    let scenario = dir.path().join("dashboard-test-scenario.yml");
    std::fs::write(&scenario, SCENARIO_RULES).expect("writing the scenario rules");
    let mut rule_files = alert_rule_files();
    eprintln!("alert rules loaded: {rule_files:?}");
    rule_files.push(scenario);
    // Blackbox-style probing through our exporter's /probe, relabelled as
    // blackbox_exporter's README does: a plain-HTTP site (the exporter's
    // own /metrics) and an HTTPS one.
    let probe_job = format!(
        "  - job_name: probe\n    metrics_path: /probe\n    params:\n      module: [http_2xx]\n\
         \x20   static_configs:\n      - targets: [\"http://{addr}/metrics\", \"https://{https}/metrics\"]\n\
         \x20   relabel_configs:\n\
         \x20     - source_labels: [__address__]\n        target_label: __param_target\n\
         \x20     - source_labels: [__param_target]\n        target_label: instance\n\
         \x20     - target_label: __address__\n        replacement: {addr:?}\n",
        addr = exporter.addr,
        https = https.addr,
    );
    let targets = [
        ScrapeTarget {
            job: "node",
            address: &exporter.addr,
        },
        ScrapeTarget {
            job: "log-shipper",
            address: &shipper_addr,
        },
    ];
    let prom = Prometheus::start_with(&targets, &probe_job, &rule_files);
    prom.wait_for_scrapes(
        &["node", "log-shipper", "probe"],
        SCRAPES_BEFORE_QUERYING,
        Duration::from_secs(40),
    );
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

    let mut verdicts = Verdicts::default();
    let https_url = format!("https://{}/metrics", https.addr);
    verdicts.problems = scene_as_set_up(&prom, &https_url, docker.then_some(container.as_str()));
    let mut seen_keys: BTreeSet<(String, String)> = BTreeSet::new();
    for (file, presets) in DASHBOARDS {
        let path = dashboards_dir().join(file);
        let dashboard = Dashboard::load(&path);
        let presets: Vec<(&str, &str)> = presets
            .iter()
            .map(|(k, v)| match *v {
                INSTANCE => (*k, exporter.addr.as_str()),
                CONTAINER => (*k, container.as_str()),
                _ => (*k, *v),
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
                    !eval.is_answered(k)
                        && panels
                            .iter()
                            .any(|p| expect(file, p, docker) == Expect::Data)
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
            let silent = keys
                .iter()
                .filter(|k| !eval.is_answered(k))
                .map(|k| eval.describe(&dashboard, k))
                .collect();
            verdicts.judge(file, panel, expect(file, panel, docker), silent);
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
    for ds in &prov.datasources {
        for f in &ds.derived_fields {
            if f.datasource_uid.as_deref() != Some("prometheus") {
                continue;
            }
            let key = format!("derived field {}", f.name);
            seen_keys.insert((PROVISIONING.to_string(), key.clone()));
            let value = match f.matcher_regex.as_str() {
                "host" => &nodename,
                "container" => &container,
                other => panic!(
                    "derived field {:?}: no test value for the label {other}",
                    f.name
                ),
            };
            let query = f.url.replace("${__value.raw}", value);
            let silent = match prom.query(&query) {
                Ok(s) if !s.is_empty() => Vec::new(),
                answer => vec![format!("{query} ({answer:?})")],
            };
            verdicts.judge(
                PROVISIONING,
                &key,
                expect(PROVISIONING, &key, docker),
                silent,
            );
        }
    }

    // The table names only panels that exist.
    for (file, key, _) in PANELS_WITHOUT_DATA_YET {
        if !seen_keys.contains(&(file.to_string(), key.to_string())) {
            verdicts.problems.push(format!(
                "PANELS_WITHOUT_DATA_YET names {key:?} of {file}, which has no such panel"
            ));
        }
    }
    // Every dashboard file but the community one is evaluated here.
    for f in dashboard_files() {
        let name = file_name(&f);
        if name != "node-exporter-full.json" && !DASHBOARDS.iter().any(|(d, _)| *d == name) {
            verdicts
                .problems
                .push(format!("{name} is not in DASHBOARDS of this test"));
        }
    }
    if !verdicts.skipped.is_empty() {
        eprintln!(
            "\n!!!!! SKIPPED for want of a Docker Engine ({} panels, not judged):\n  {}\n",
            verdicts.skipped.len(),
            verdicts.skipped.join("\n  ")
        );
    }
    eprintln!(
        "panels, variables and derived fields with data: {} of {} \
         ({} listed without data, {} skipped)",
        verdicts.answered,
        verdicts.total,
        PANELS_WITHOUT_DATA_YET.len(),
        verdicts.skipped.len()
    );
    assert_no_problems("dashboard panels without data", &verdicts.problems);
}
