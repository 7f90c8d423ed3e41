//! `/probe?target=...&module=...`: blackbox_exporter's probe endpoint on the
//! exporter's own server, with modules from `--probe.config.file`. The
//! probers are blackbox's http, tcp, icmp, dns and grpc, one a file, found
//! by name in [`PROBERS`]; each writes the metrics blackbox_exporter 0.23
//! (Debian 12's) writes, which `tests/probe_blackbox_side_by_side.rs`
//! checks against the real one, and two of later versions:
//! `probe_timeout_seconds` and `probe_tls_cipher_info`. Without the flag
//! the endpoint is off: a prober makes requests to any target it is asked
//! for, so it is opt-in.

pub mod common;
pub mod config;
pub mod dns;
pub mod grpc;
pub mod http;
pub mod icmp;
pub mod tcp;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
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
/// blackbox's scrape timeout when Prometheus sends none.
const NO_HEADER_TIMEOUT_SECS: f64 = 120.0;
/// blackbox's `--timeout-offset` default: what is kept of Prometheus'
/// scrape timeout for answering.
const TIMEOUT_OFFSET_SECS: f64 = 0.5;

/// blackbox's `getTimeout`: Prometheus' scrape timeout (120 s when it
/// sends none) less the offset, or the module's `timeout` when that is
/// shorter (or when the scrape timeout is shorter than the offset).
pub fn probe_timeout(module: Option<Duration>, scrape_timeout: Option<f64>) -> Duration {
    let scrape = scrape_timeout
        .filter(|s| s.is_finite() && *s != 0.0)
        .unwrap_or(NO_HEADER_TIMEOUT_SECS);
    let max = scrape - TIMEOUT_OFFSET_SECS;
    let module = module.map(|m| m.as_secs_f64()).unwrap_or(0.0);
    let secs = if (module > 0.0 && module < max) || max < 0.0 {
        module
    } else {
        max
    };
    Duration::from_secs_f64(secs)
}

pub struct Prober {
    /// Swapped whole by a reload: a probe keeps the modules it began with.
    modules: RwLock<Arc<Modules>>,
    /// The modules file, when the modules came from one (reloadable).
    path: Option<PathBuf>,
    /// blackbox's `blackbox_exporter_config_last_reload_successful` and
    /// `..._success_timestamp_seconds`.
    last_reload_ok: AtomicBool,
    last_reload_success: Mutex<f64>,
}

/// Why a probe request was refused (HTTP 400), in blackbox's words.
#[derive(Debug, PartialEq)]
pub struct BadRequest(pub String);

/// A probe's metrics with what `?debug=true` shows besides them.
pub struct Probed {
    pub metrics: MetricSet,
    /// The probe's log lines, logfmt.
    pub logs: Vec<String>,
    /// The module's configuration, secrets hidden.
    pub module_yaml: String,
}

fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Says at load what loads but cannot work: a module with `enable_http3`.
/// HTTP/3 is not implemented (no QUIC stack in the exporter: the Rust one,
/// h3 on quinn, is still pre-1.0 and quinn does not give the negotiated
/// cipher nor the verified chain blackbox reports), but blackbox's own
/// example file has such a module, so the file must load; each probe of
/// the module then fails, saying why, rather than fall back to an older
/// HTTP and report a success HTTP/3 never had.
fn warn_unsupported(path: &Path, modules: &Modules) {
    for (name, m) in &modules.modules {
        if m.prober == "http" && m.http.enable_http3 {
            tracing::warn!(
                "{}: module {name:?}: enable_http3: HTTP/3 (QUIC) is not supported by this \
                 exporter; every probe of this module fails",
                path.display()
            );
        }
    }
}

impl Prober {
    pub fn new(modules: Modules) -> Prober {
        Prober {
            modules: RwLock::new(Arc::new(modules)),
            path: None,
            last_reload_ok: AtomicBool::new(true),
            last_reload_success: Mutex::new(now_unix()),
        }
    }

    /// Modules from a file, which [`Prober::reload`] reads again.
    pub fn from_file(path: &Path) -> anyhow::Result<Prober> {
        let modules = Modules::load(path)?;
        warn_unsupported(path, &modules);
        let mut p = Prober::new(modules);
        p.path = Some(path.to_path_buf());
        Ok(p)
    }

    pub fn modules(&self) -> Arc<Modules> {
        Arc::clone(&self.modules.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn reloadable(&self) -> bool {
        self.path.is_some()
    }

    /// Reads the modules file again (SIGHUP, `POST /-/reload`). A file
    /// that does not load leaves the modules as they were; the error says
    /// why. Returns how many modules are loaded.
    pub fn reload(&self) -> anyhow::Result<usize> {
        let Some(path) = &self.path else {
            anyhow::bail!("the modules were not loaded from a file");
        };
        match Modules::load(path) {
            Ok(m) => {
                warn_unsupported(path, &m);
                let n = m.modules.len();
                *self.modules.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(m);
                self.last_reload_ok.store(true, Ordering::Relaxed);
                *self
                    .last_reload_success
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = now_unix();
                tracing::info!(modules = n, "Reloaded config file");
                Ok(n)
            }
            Err(e) => {
                self.last_reload_ok.store(false, Ordering::Relaxed);
                tracing::error!(err = format!("{e:#}"), "Error reloading config");
                Err(e)
            }
        }
    }

    /// blackbox's reload metrics, for the exporter's own /metrics.
    pub fn reload_metrics(&self, set: &mut MetricSet) {
        set.gauge(
            "blackbox_exporter_config_last_reload_successful",
            "Blackbox exporter config loaded successfully.",
            &[],
            if self.last_reload_ok.load(Ordering::Relaxed) {
                1.0
            } else {
                0.0
            },
        );
        set.gauge(
            "blackbox_exporter_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload.",
            &[],
            *self
                .last_reload_success
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
    }

    /// Runs one probe. `scrape_timeout` is Prometheus'
    /// `X-Prometheus-Scrape-Timeout-Seconds`, when sent.
    pub async fn probe(
        &self,
        target: Option<&str>,
        module: Option<&str>,
        scrape_timeout: Option<f64>,
    ) -> Result<MetricSet, BadRequest> {
        self.probe_debug(target, module, scrape_timeout)
            .await
            .map(|p| p.metrics)
    }

    /// [`Prober::probe`], with the probe's log lines and its module.
    pub async fn probe_debug(
        &self,
        target: Option<&str>,
        module: Option<&str>,
        scrape_timeout: Option<f64>,
    ) -> Result<Probed, BadRequest> {
        let modules = self.modules();
        let name = module.filter(|m| !m.is_empty()).unwrap_or(DEFAULT_MODULE);
        let module = modules
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
        let timeout = probe_timeout(module.timeout, scrape_timeout);
        let run = async {
            common::log(
                "info",
                "Beginning probe",
                &[
                    ("module", &name),
                    ("target", &target),
                    ("probe", &module.prober),
                    ("timeout_seconds", &timeout.as_secs_f64()),
                ],
            );
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
                    common::log(
                        "error",
                        "Probe timed out",
                        &[("timeout", &format!("{timeout:?}"))],
                    );
                    false
                }
            };
            let secs = start.elapsed().as_secs_f64();
            common::log(
                "info",
                if success {
                    "Probe succeeded"
                } else {
                    "Probe failed"
                },
                &[("duration_seconds", &secs)],
            );
            out.gauge(
                "probe_duration_seconds",
                "Returns how long the probe took to complete in seconds",
                &[],
                secs,
            );
            out.gauge(
                "probe_success",
                "Displays whether or not the probe was a success",
                &[],
                if success { 1.0 } else { 0.0 },
            );
            // Newer than Debian's 0.23 (blackbox_exporter #1571): the
            // timeout the probe ran with, on every probe.
            out.gauge(
                "probe_timeout_seconds",
                "Returns how long the probe timeout is in seconds",
                &[],
                timeout.as_secs_f64(),
            );
            let logs = common::PROBE_LOG.with(|l| l.take());
            (out, logs)
        };
        let (metrics, logs) = common::PROBE_LOG
            .scope(std::cell::RefCell::new(Vec::new()), run)
            .await;
        Ok(Probed {
            metrics,
            logs,
            module_yaml: module.yaml.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// blackbox's getTimeout, case by case.
    #[test]
    fn timeouts_as_blackbox() {
        let secs = |m: Option<u64>, h: Option<f64>| {
            probe_timeout(m.map(Duration::from_secs), h).as_secs_f64()
        };
        // No header: 120 s less the offset, or the shorter module timeout.
        assert_eq!(secs(None, None), 119.5);
        assert_eq!(secs(Some(5), None), 5.0);
        assert_eq!(secs(Some(300), None), 119.5);
        // The header bounds the module's timeout.
        assert_eq!(secs(Some(5), Some(10.0)), 5.0);
        assert_eq!(secs(Some(15), Some(10.0)), 9.5);
        assert_eq!(secs(None, Some(10.0)), 9.5);
        // A scrape timeout below the offset: the module's.
        assert_eq!(secs(Some(2), Some(0.3)), 2.0);
    }
}
