//! A real Prometheus (and promtool) for the tests: started on a free loopback
//! port with its own config and storage in a temp dir, queried through its
//! HTTP API.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::http;
use crate::process::{find_program, free_port, on_path, wait_until, Process};

/// How often Prometheus scrapes in these tests.
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);

const HOW_TO_INSTALL: &str = "`make test` installs it (Debian package prometheus)";

pub fn prometheus_binary() -> PathBuf {
    find_program(
        "PROMETHEUS_BIN",
        &on_path("prometheus", "/usr/bin/prometheus"),
        HOW_TO_INSTALL,
    )
}

pub fn promtool_binary() -> PathBuf {
    find_program(
        "PROMTOOL_BIN",
        &on_path("promtool", "/usr/bin/promtool"),
        HOW_TO_INSTALL,
    )
}

/// One scrape job with one static target (`host:port`).
#[derive(Debug, Clone, Copy)]
pub struct ScrapeTarget<'a> {
    pub job: &'a str,
    pub address: &'a str,
}

/// A target as `/api/v1/targets` reports it.
#[derive(Debug, Clone)]
pub struct Target {
    pub job: String,
    pub instance: String,
    pub health: String,
    pub last_error: String,
}

/// One series of an instant query's answer.
#[derive(Debug, Clone)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

pub struct Prometheus {
    pub url: String,
    /// `None` for a Prometheus this harness did not start ([`Prometheus::connect`]).
    process: Option<Process>,
}

impl Prometheus {
    /// Starts Prometheus scraping each target every [`SCRAPE_INTERVAL`] and
    /// waits until it is ready to answer queries.
    pub fn start(targets: &[ScrapeTarget]) -> Prometheus {
        Prometheus::start_full(targets, "", &[], None)
    }

    /// As [`Prometheus::start`], also evaluating `rule_files` every
    /// [`SCRAPE_INTERVAL`] and sending alerts to the Alertmanager at
    /// `alertmanager` (`host:port`).
    pub fn start_with_rules(
        targets: &[ScrapeTarget],
        rule_files: &[PathBuf],
        alertmanager: Option<&str>,
    ) -> Prometheus {
        Prometheus::start_full(targets, "", rule_files, alertmanager)
    }

    /// [`Prometheus::start`], plus `extra_scrape_configs` (YAML list items,
    /// indented as under `scrape_configs:`) and `rule_files` evaluated every
    /// [`SCRAPE_INTERVAL`].
    pub fn start_with(
        targets: &[ScrapeTarget],
        extra_scrape_configs: &str,
        rule_files: &[PathBuf],
    ) -> Prometheus {
        Prometheus::start_full(targets, extra_scrape_configs, rule_files, None)
    }

    fn start_full(
        targets: &[ScrapeTarget],
        extra_scrape_configs: &str,
        rule_files: &[PathBuf],
        alertmanager: Option<&str>,
    ) -> Prometheus {
        let dir = tempfile::tempdir().expect("creating a temp dir");
        let secs = SCRAPE_INTERVAL.as_secs();
        let mut config = format!(
            "global:\n  scrape_interval: {secs}s\n  scrape_timeout: {secs}s\n  evaluation_interval: {secs}s\n"
        );
        if !rule_files.is_empty() {
            config.push_str("rule_files:\n");
            for f in rule_files {
                config.push_str(&format!("  - {:?}\n", f.display().to_string()));
            }
        }
        if let Some(am) = alertmanager {
            config.push_str(&format!(
                "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [{am:?}]\n"
            ));
        }
        config.push_str("scrape_configs:\n");
        for t in targets {
            config.push_str(&format!(
                "  - job_name: {:?}\n    static_configs:\n      - targets: [{:?}]\n",
                t.job, t.address
            ));
        }
        config.push_str(extra_scrape_configs);
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, &config).expect("writing prometheus.yml");
        let addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(prometheus_binary());
        cmd.arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .current_dir(dir.path());
        if alertmanager.is_some() {
            // Firing alerts are re-sent every second, not every minute: one
            // that fired before Alertmanager was discovered (Watchdog, at
            // the first evaluation) still arrives within a test.
            cmd.arg("--rules.alert.resend-delay=1s");
        }
        let mut process = Process::spawn("prometheus", cmd, dir);
        let url = format!("http://{addr}");
        let ready = wait_until("Prometheus ready", Duration::from_secs(30), || {
            if let Some(status) = process.exit_status() {
                return Err(format!("Prometheus exited ({status})"));
            }
            Ok(http::get(&format!("{url}/-/ready"), &[], None).is_ok_and(|r| r.status == 200))
        });
        if let Err(e) = ready {
            panic!("{e}\nconfig:\n{config}\n{}", process.log_tail(30));
        }
        Prometheus {
            url,
            process: Some(process),
        }
    }

    /// A Prometheus that runs elsewhere (a deployed one), at `url`.
    pub fn connect(url: &str) -> Prometheus {
        Prometheus {
            url: url.trim_end_matches('/').to_string(),
            process: None,
        }
    }

    /// GET an API path and return its `data`, or the API's error.
    fn api(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, String> {
        let r = http::get(&format!("{}{path}", self.url), query, None)?;
        let v: Value = serde_json::from_str(&r.body)
            .map_err(|e| format!("{path}: answer is not JSON ({e}): {}", r.body))?;
        if v["status"] != "success" {
            return Err(format!(
                "{path} {query:?}: {} {}",
                v["errorType"].as_str().unwrap_or(""),
                v["error"].as_str().unwrap_or(&r.body)
            ));
        }
        Ok(v["data"].clone())
    }

    /// An instant query at the current time. A scalar answer comes back as
    /// one series without labels; a NaN scalar (`scalar()` of nothing) as
    /// no series, since a panel shows nothing for it either.
    pub fn query(&self, expr: &str) -> Result<Vec<Series>, String> {
        let data = self.api("/api/v1/query", &[("query", expr)])?;
        let number = |v: &Value| -> f64 {
            v[1].as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(f64::NAN)
        };
        match data["resultType"].as_str() {
            Some("vector") => Ok(data["result"]
                .as_array()
                .map(|a| a.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|s| Series {
                    labels: labels(&s["metric"]),
                    value: number(&s["value"]),
                })
                .collect()),
            Some("scalar") => {
                let value = number(&data["result"]);
                Ok(if value.is_nan() {
                    Vec::new()
                } else {
                    vec![Series {
                        labels: BTreeMap::new(),
                        value,
                    }]
                })
            }
            other => Err(format!("{expr}: unexpected result type {other:?}")),
        }
    }

    /// `/api/v1/series`: the label sets of the series `matcher` selects.
    pub fn series(&self, matcher: &str) -> Result<Vec<BTreeMap<String, String>>, String> {
        let data = self.api("/api/v1/series", &[("match[]", matcher)])?;
        Ok(data
            .as_array()
            .map(|a| a.iter().map(labels).collect())
            .unwrap_or_default())
    }

    pub fn targets(&self) -> Result<Vec<Target>, String> {
        let data = self.api("/api/v1/targets", &[])?;
        let text = |v: &Value| v.as_str().unwrap_or("").to_string();
        Ok(data["activeTargets"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|t| Target {
                job: text(&t["labels"]["job"]),
                instance: text(&t["labels"]["instance"]),
                health: text(&t["health"]),
                last_error: text(&t["lastError"]),
            })
            .collect())
    }

    /// Waits until every job has been scraped successfully at least `n`
    /// times, so that `rate()` over a few intervals has data.
    pub fn wait_for_scrapes(&self, jobs: &[&str], n: usize, timeout: Duration) {
        let waited = wait_until(
            &format!("{n} successful scrapes of jobs {jobs:?}"),
            timeout,
            || {
                for job in jobs {
                    let expr = format!("sum_over_time(up{{job={job:?}}}[1m])");
                    let got = self.query(&expr)?.first().map_or(0.0, |s| s.value);
                    if got < n as f64 {
                        return Err(format!("job {job}: {got} successful scrapes so far"));
                    }
                }
                Ok(true)
            },
        );
        if let Err(e) = waited {
            panic!("{e}\ntargets: {:#?}\n{}", self.targets(), self.log_tail(20));
        }
    }

    pub fn log_tail(&self, n: usize) -> String {
        self.process.as_ref().map_or_else(
            || format!("(Prometheus at {} runs elsewhere)", self.url),
            |p| p.log_tail(n),
        )
    }
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// What `promtool check metrics` said about an exposition.
#[derive(Debug, Clone)]
pub struct LintReport {
    /// 0: clean, 3: lint problems, 1: it could not parse the input.
    pub exit_code: i32,
    /// One complaint per line (`<metric> <problem>`), or its parse error.
    pub problems: Vec<String>,
}

/// Runs `promtool check metrics` over `text` (the text format).
pub fn promtool_check_metrics(text: &str) -> LintReport {
    use std::io::Write as _;
    let mut child = Command::new(promtool_binary())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting promtool");
    let mut stdin = child.stdin.take().expect("promtool's stdin");
    let input = text.to_string();
    // Feed stdin from another thread: promtool may answer before reading it all.
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("running promtool");
    let _ = feeder.join();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    LintReport {
        exit_code: out.status.code().unwrap_or(-1),
        problems: said
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
    }
}
