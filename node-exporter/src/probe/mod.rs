//! `/probe?target=...&module=...`: blackbox_exporter's probe endpoint on the
//! exporter's own server, with modules from `--probe.config.file`. The
//! probers are blackbox's http, tcp, icmp, dns and grpc, one a file, found
//! by name in [`PROBERS`]; each writes the metrics blackbox_exporter 0.23
//! (Debian 12's) writes, which `tests/probe_blackbox_side_by_side.rs`
//! checks against the real one. Without the flag the endpoint is off: a
//! prober makes requests to any target it is asked for, so it is opt-in.

pub mod common;
pub mod config;
pub mod dns;
pub mod grpc;
pub mod http;
pub mod icmp;
pub mod tcp;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use exporter_toolkit::exposition::MetricSet;

pub use config::{Module, Modules};

/// A prober: probes a target with a module's settings, writes its metrics
/// and says whether the probe succeeded. It gives up at the deadline by
/// itself (so that what it writes on failure is written then too).
pub type ProbeFn = for<'a> fn(
    &'a str,
    &'a Module,
    tokio::time::Instant,
    &'a mut MetricSet,
) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// Every prober, by the name a module's `prober:` gives (blackbox's
/// `Probers` map). A module naming another is refused at load.
pub const PROBERS: &[(&str, ProbeFn)] = &[
    ("http", |t, m, d, out| {
        Box::pin(http::probe(t, &m.http, d, out))
    }),
    ("tcp", |t, m, d, out| {
        Box::pin(tcp::probe(t, &m.tcp, d, out))
    }),
    ("icmp", |t, m, d, out| {
        Box::pin(icmp::probe(t, &m.icmp, d, out))
    }),
    ("dns", |t, m, d, out| {
        Box::pin(dns::probe(t, &m.dns, d, out))
    }),
    ("grpc", |t, m, d, out| {
        Box::pin(grpc::probe(t, &m.grpc, d, out))
    }),
];

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
        // Modules are checked at load, so this finds one.
        let Some((_, prober)) = PROBERS.iter().find(|(n, _)| *n == module.prober) else {
            return Err(BadRequest(format!("Unknown prober {:?}\n", module.prober)));
        };
        // As blackbox: the module's timeout, within Prometheus' less 0.5 s.
        let mut timeout = module.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if let Some(s) = scrape_timeout.filter(|s| s.is_finite() && *s > 0.0) {
            timeout = timeout.min(Duration::from_secs_f64((s - 0.5).max(s * 0.5)));
        }
        let start = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = MetricSet::new();
        // The probers stop at the deadline themselves; this is the net
        // under one that would not.
        let success = match tokio::time::timeout_at(
            deadline + Duration::from_millis(200),
            prober(target, module, deadline, &mut out),
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
