//! A real Alertmanager for the tests, run with the repository's config
//! template (`alert-rules/alertmanager/alertmanager.yml.j2`) rendered by the
//! same renderer `make rules-test` uses, on a free loopback port, clustering
//! off.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::http;
use crate::process::{find_program, free_port, on_path, wait_until, workspace_root, Process};

const HOW_TO_INSTALL: &str = "`make test` installs it (Debian package prometheus-alertmanager)";

/// Debian names the server `prometheus-alertmanager`; upstream `alertmanager`.
pub fn alertmanager_binary() -> PathBuf {
    let mut candidates = on_path(
        "prometheus-alertmanager",
        "/usr/bin/prometheus-alertmanager",
    );
    candidates.extend(on_path("alertmanager", "/usr/local/bin/alertmanager"));
    find_program("ALERTMANAGER_BIN", &candidates, HOW_TO_INSTALL)
}

/// `$PYTHON`, else Debian's python3 (which `make deps` gives python3-jinja2
/// and python3-yaml), else `python3` on `$PATH`.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("PYTHON") {
        return PathBuf::from(p);
    }
    let debian = PathBuf::from("/usr/bin/python3");
    if debian.is_file() {
        debian
    } else {
        PathBuf::from("python3")
    }
}

/// Renders the config template into `dir` with `vars` (name, value) on top
/// of the example variables, as the Ansible role would with its own.
pub fn render_config(dir: &Path, vars: &[(&str, &str)]) {
    let am = workspace_root().join("alert-rules/alertmanager");
    let mut cmd = Command::new(python());
    cmd.arg(am.join("render.py"))
        .arg(am.join("example-vars.yml"))
        .arg(dir)
        .arg("-e")
        .arg(format!(
            "alertmanager_templates_dir={}",
            dir.join("templates").display()
        ));
    for (k, v) in vars {
        cmd.arg("-e").arg(format!("{k}={v}"));
    }
    let out = cmd.output().expect("running python3 render.py");
    assert!(
        out.status.success(),
        "render.py failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct Alertmanager {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    /// `127.0.0.1:<port>`, for Prometheus' `alerting:` section.
    pub addr: String,
    process: Process,
}

impl Alertmanager {
    /// Renders the config with `vars` and starts Alertmanager on it.
    pub fn start(vars: &[(&str, &str)]) -> Alertmanager {
        let dir = tempfile::tempdir().expect("creating a temp dir");
        render_config(dir.path(), vars);
        let addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(alertmanager_binary());
        cmd.arg(format!(
            "--config.file={}",
            dir.path().join("alertmanager.yml").display()
        ))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        // No gossip port: a single instance, nothing listening beyond loopback.
        .arg("--cluster.listen-address=")
        .current_dir(dir.path());
        let mut process = Process::spawn("alertmanager", cmd, dir);
        let url = format!("http://{addr}");
        let ready = wait_until("Alertmanager ready", Duration::from_secs(30), || {
            if let Some(status) = process.exit_status() {
                return Err(format!("Alertmanager exited ({status})"));
            }
            Ok(http::get(&format!("{url}/-/ready"), &[], None).is_ok_and(|r| r.status == 200))
        });
        if let Err(e) = ready {
            panic!("{e}\n{}", process.log_tail(30));
        }
        Alertmanager { url, addr, process }
    }

    /// `/api/v2/alerts`: every alert it holds, active, suppressed or not.
    pub fn alerts(&self) -> Result<Vec<Value>, String> {
        let r = http::get(&format!("{}/api/v2/alerts", self.url), &[], None)?;
        let v: Value = serde_json::from_str(&r.body)
            .map_err(|e| format!("/api/v2/alerts: not JSON ({e}): {}", r.body))?;
        v.as_array()
            .cloned()
            .ok_or_else(|| format!("/api/v2/alerts: not a list: {}", r.body))
    }

    /// Posts alerts as Prometheus does (`/api/v2/alerts`), each given as
    /// its labels; annotations say which test sent them.
    pub fn post_alerts(&self, alerts: &[&[(&str, &str)]]) -> Result<(), String> {
        self.post(alerts, None)
    }

    /// Posts the same alerts as resolved, as Prometheus does when they stop
    /// firing: `endsAt` now (and `startsAt` before it).
    pub fn post_resolved(&self, alerts: &[&[(&str, &str)]]) -> Result<(), String> {
        let now = chrono::Utc::now();
        self.post(alerts, Some((now - chrono::Duration::hours(1), now)))
    }

    fn post(
        &self,
        alerts: &[&[(&str, &str)]],
        resolved: Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>,
    ) -> Result<(), String> {
        let list: Vec<Value> = alerts
            .iter()
            .map(|labels| {
                let labels: serde_json::Map<String, Value> = labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), Value::from(*v)))
                    .collect();
                let mut alert = serde_json::json!({
                    "labels": labels,
                    "annotations": {
                        "summary": format!("{} on {}", text(&labels, "alertname"), text(&labels, "instance")),
                        "description": "posted by the e2e test",
                        "runbook_url": "https://git.example.test/ops/monitoring/-/blob/main/alert-rules/RUNBOOK.md#targetdown"
                    }
                });
                if let Some((starts, ends)) = resolved {
                    alert["startsAt"] = Value::from(starts.to_rfc3339());
                    alert["endsAt"] = Value::from(ends.to_rfc3339());
                }
                alert
            })
            .collect();
        let r = http::post_json(
            &format!("{}/api/v2/alerts", self.url),
            &Value::from(list).to_string(),
        )?;
        if r.status != 200 {
            return Err(format!("POST /api/v2/alerts: {} {}", r.status, r.body));
        }
        Ok(())
    }

    pub fn log_tail(&self, n: usize) -> String {
        self.process.log_tail(n)
    }
}

fn text<'a>(labels: &'a serde_json::Map<String, Value>, name: &str) -> &'a str {
    labels.get(name).and_then(Value::as_str).unwrap_or("")
}

/// An alert of `/api/v2/alerts` in a line: name, labels, state, inhibitors.
pub fn describe(alert: &Value) -> String {
    format!(
        "{} {} state={} inhibitedBy={}",
        alert["labels"]["alertname"].as_str().unwrap_or("?"),
        alert["labels"],
        alert["status"]["state"].as_str().unwrap_or("?"),
        alert["status"]["inhibitedBy"]
    )
}
