//! `/probe?target=...&module=...`: blackbox_exporter's probe endpoint on the
//! exporter's own server, with modules from `--probe.config.file`. Only the
//! http prober is implemented. Without the flag the endpoint is off: a
//! prober makes requests to any target it is asked for, so it is opt-in.

pub mod config;
pub mod http;

use std::time::{Duration, Instant};

use exporter_toolkit::exposition::MetricSet;

pub use config::Modules;

/// blackbox's module when the request names none.
const DEFAULT_MODULE: &str = "http_2xx";
/// A module without `timeout` gets this (bounded by Prometheus' own).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Prober {
    modules: Modules,
}

/// Why a probe request was refused (HTTP 400), in blackbox's words.
#[derive(Debug, PartialEq)]
pub struct BadRequest(pub String);

impl Prober {
    pub fn new(modules: Modules) -> Prober {
        Prober { modules }
    }

    /// Runs one probe. `scrape_timeout` is Prometheus'
    /// `X-Prometheus-Scrape-Timeout-Seconds`, when sent.
    pub async fn probe(
        &self,
        target: Option<&str>,
        module: Option<&str>,
        scrape_timeout: Option<f64>,
    ) -> Result<MetricSet, BadRequest> {
        let name = module.filter(|m| !m.is_empty()).unwrap_or(DEFAULT_MODULE);
        let module = self
            .modules
            .modules
            .get(name)
            .ok_or_else(|| BadRequest(format!("Unknown module {name:?}\n")))?;
        let target = target
            .filter(|t| !t.is_empty())
            .ok_or_else(|| BadRequest("Target parameter is missing\n".into()))?;
        if module.prober != "http" {
            return Err(BadRequest(format!(
                "Unknown prober {:?}: this exporter implements the http prober only\n",
                module.prober
            )));
        }
        // As blackbox: the module's timeout, within Prometheus' less 0.5 s.
        let mut timeout = module.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if let Some(s) = scrape_timeout.filter(|s| s.is_finite() && *s > 0.0) {
            timeout = timeout.min(Duration::from_secs_f64((s - 0.5).max(s * 0.5)));
        }
        let start = Instant::now();
        let mut out = MetricSet::new();
        let success = match tokio::time::timeout(
            timeout,
            http::probe(target, &module.http, &mut out),
        )
        .await
        {
            Ok(ok) => ok,
            Err(_) => {
                tracing::debug!(target = target, "probe timed out after {timeout:?}");
                false
            }
        };
        out.gauge(
            "probe_duration_seconds",
            "Returns how long the probe took to complete in seconds",
            &[],
            start.elapsed().as_secs_f64(),
        );
        out.gauge(
            "probe_success",
            "Displays whether or not the probe was a success",
            &[],
            if success { 1.0 } else { 0.0 },
        );
        Ok(out)
    }
}
