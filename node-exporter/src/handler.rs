//! The HTTP face of the exporter: `/` (landing page) and the telemetry path,
//! with node_exporter's `collect[]` / `exclude[]` filters, content
//! negotiation (text 0.0.4 or OpenMetrics), gzip, and `--web.max-requests`.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use tokio::sync::Semaphore;

use exporter_toolkit::exposition::{encode, Format, MetricSet};
use exporter_toolkit::server::{text_response, Body};

use crate::probe::Prober;
use crate::scrape::Scraper;

pub struct Exporter {
    pub scraper: Scraper,
    pub telemetry_path: String,
    pub exporter_metrics: bool,
    pub collector_timeout: Duration,
    /// `None` when `--web.max-requests=0`.
    pub max_requests: Option<(usize, Semaphore)>,
    requests_200: AtomicU64,
    requests_500: AtomicU64,
    requests_503: AtomicU64,
    in_flight: AtomicU64,
    errors_encoding: AtomicU64,
    errors_gathering: AtomicU64,
    /// `/probe`, when `--probe.config.file` is given.
    prober: Option<Prober>,
}

impl Exporter {
    pub fn new(
        scraper: Scraper,
        telemetry_path: String,
        exporter_metrics: bool,
        collector_timeout: Duration,
        max_requests: usize,
    ) -> Exporter {
        Exporter {
            scraper,
            telemetry_path,
            exporter_metrics,
            collector_timeout,
            max_requests: (max_requests > 0).then(|| (max_requests, Semaphore::new(max_requests))),
            requests_200: AtomicU64::new(0),
            requests_500: AtomicU64::new(0),
            requests_503: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            errors_encoding: AtomicU64::new(0),
            errors_gathering: AtomicU64::new(0),
            prober: None,
        }
    }

    /// Whether `/probe`'s modules came from a file (SIGHUP reloads it).
    pub fn reloads_probes(&self) -> bool {
        self.prober.as_ref().is_some_and(|p| p.reloadable())
    }

    /// Reads the probe modules file again (SIGHUP).
    pub fn reload_probes(&self) -> anyhow::Result<usize> {
        match &self.prober {
            Some(p) => p.reload(),
            None => anyhow::bail!("probing is off"),
        }
    }

    /// Serves blackbox-style probes on `/probe` too.
    pub fn with_prober(mut self, prober: Prober) -> Exporter {
        self.prober = Some(prober);
        self
    }

    pub async fn handle<B>(self: Arc<Self>, req: Request<B>) -> Response<Body> {
        let path = req.uri().path();
        if path == self.telemetry_path {
            if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
                return text_response(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
            }
            return self.metrics(&req).await;
        }
        if path == "/probe" {
            return self.probe(&req).await;
        }
        if path == "/-/reload" {
            if let Some(prober) = self.prober.as_ref().filter(|p| p.reloadable()) {
                return reload(prober, req.method());
            }
        }
        if path == "/" && self.telemetry_path != "/" {
            return landing_page(&self.telemetry_path);
        }
        text_response(StatusCode::NOT_FOUND, "404 page not found\n")
    }

    async fn metrics<B>(&self, req: &Request<B>) -> Response<Body> {
        let _permit = match &self.max_requests {
            Some((limit, sem)) => {
                match sem.try_acquire() {
                    Ok(p) => Some(p),
                    Err(_) => {
                        self.requests_503.fetch_add(1, Ordering::Relaxed);
                        return text_response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("Limit of concurrent requests reached ({limit}), try again later.\n"),
                    );
                    }
                }
            }
            None => None,
        };
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let resp = self.metrics_inner(req).await;
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        // A bad collect[]/exclude[] (400) is refused before promhttp in
        // node_exporter, so it is not counted under any code.
        match resp.status() {
            StatusCode::OK => {
                self.requests_200.fetch_add(1, Ordering::Relaxed);
            }
            StatusCode::INTERNAL_SERVER_ERROR => {
                self.requests_500.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        resp
    }

    async fn metrics_inner<B>(&self, req: &Request<B>) -> Response<Body> {
        let (collect, exclude) = match parse_filters(req.uri().query().unwrap_or("")) {
            Ok(x) => x,
            Err(msg) => return text_response(StatusCode::BAD_REQUEST, msg),
        };
        for name in collect.iter().chain(exclude.iter()) {
            if !self.scraper.names().any(|n| n == name) {
                return text_response(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "Couldn't create filtered metrics handler: missing collector: {name}\n"
                    ),
                );
            }
        }
        let include = |name: &str| {
            if !collect.is_empty() {
                collect.iter().any(|c| c == name)
            } else {
                !exclude.iter().any(|c| c == name)
            }
        };
        let budget = scrape_budget(req.headers(), self.collector_timeout);
        let mut set = self.scraper.scrape(include, budget).await;
        version_info(&mut set);
        if self.exporter_metrics {
            self.exporter_self_metrics(&mut set);
        }
        let families = match set.finish() {
            Ok(f) => f,
            Err(e) => {
                self.errors_gathering.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "error gathering metrics");
                return text_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("An error has occurred while serving metrics:\n\n{e}\n"),
                );
            }
        };
        let format = Format::negotiate(
            req.headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok()),
        );
        let body = encode(&families, format);
        let gzip = accepts_gzip(req.headers());
        let body = if gzip {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 4),
                flate2::Compression::fast(),
            );
            if enc.write_all(body.as_bytes()).is_err() {
                self.errors_encoding.fetch_add(1, Ordering::Relaxed);
            }
            match enc.finish() {
                Ok(v) => Bytes::from(v),
                Err(_) => {
                    self.errors_encoding.fetch_add(1, Ordering::Relaxed);
                    return text_response(StatusCode::INTERNAL_SERVER_ERROR, "gzip failed\n");
                }
            }
        } else {
            Bytes::from(body)
        };
        let mut resp = Response::new(Full::new(body));
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(format.content_type()),
        );
        if gzip {
            h.insert(
                header::CONTENT_ENCODING,
                header::HeaderValue::from_static("gzip"),
            );
        }
        h.insert(
            header::VARY,
            header::HeaderValue::from_static("Accept-Encoding"),
        );
        resp
    }

    async fn probe<B>(&self, req: &Request<B>) -> Response<Body> {
        let Some(prober) = &self.prober else {
            return text_response(
                StatusCode::NOT_FOUND,
                "probing is off: start the exporter with --probe.config.file\n",
            );
        };
        let mut target = None;
        let mut module = None;
        let mut debug = false;
        for pair in req.uri().query().unwrap_or("").split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match percent_decode(k).as_str() {
                "target" => target = Some(percent_decode(v)),
                "module" => module = Some(percent_decode(v)),
                "debug" => debug = percent_decode(v) == "true",
                _ => {}
            }
        }
        let scrape_timeout = req
            .headers()
            .get("X-Prometheus-Scrape-Timeout-Seconds")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<f64>().ok());
        match prober
            .probe_debug(target.as_deref(), module.as_deref(), scrape_timeout)
            .await
        {
            Err(bad) => text_response(StatusCode::BAD_REQUEST, bad.0),
            // blackbox's DebugOutput: the logs, the metrics, the module.
            Ok(p) if debug => {
                let metrics = match p.metrics.finish() {
                    Ok(f) => encode(&f, Format::Text),
                    Err(e) => format!("Error gathering metrics: {e}\n"),
                };
                let mut body = String::from("Logs for the probe:\n");
                for line in &p.logs {
                    body.push_str(line);
                    body.push('\n');
                }
                body.push_str("\n\n\nMetrics that would have been returned:\n");
                body.push_str(&metrics);
                body.push_str("\n\n\nModule configuration:\n");
                body.push_str(&p.module_yaml);
                text_response(StatusCode::OK, body)
            }
            Ok(p) => match p.metrics.finish() {
                Ok(families) => {
                    let mut r =
                        Response::new(Full::new(Bytes::from(encode(&families, Format::Text))));
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static(Format::Text.content_type()),
                    );
                    r
                }
                Err(e) => text_response(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
            },
        }
    }

    fn exporter_self_metrics(&self, set: &mut MetricSet) {
        for (code, n) in [
            ("200", &self.requests_200),
            ("500", &self.requests_500),
            ("503", &self.requests_503),
        ] {
            set.counter(
                "promhttp_metric_handler_requests_total",
                "Total number of scrapes by HTTP status code.",
                &[("code", code)],
                n.load(Ordering::Relaxed) as f64,
            );
        }
        set.gauge(
            "promhttp_metric_handler_requests_in_flight",
            "Current number of scrapes being served.",
            &[],
            self.in_flight.load(Ordering::Relaxed) as f64,
        );
        for (cause, n) in [
            ("encoding", &self.errors_encoding),
            ("gathering", &self.errors_gathering),
        ] {
            set.counter(
                "promhttp_metric_handler_errors_total",
                "Total number of internal errors encountered by the promhttp metric handler.",
                &[("cause", cause)],
                n.load(Ordering::Relaxed) as f64,
            );
        }
        if let Some(p) = self.prober.as_ref().filter(|p| p.reloadable()) {
            p.reload_metrics(set);
        }
        if let Err(e) = exporter_toolkit::process::collect(set) {
            tracing::warn!(error = %e, "process metrics unavailable");
        }
    }
}

/// The collector time budget for this scrape: the flag, lowered to leave
/// Prometheus' own scrape timeout some room for encoding and transfer.
fn scrape_budget(headers: &http::HeaderMap, flag: Duration) -> Duration {
    let from_header = headers
        .get("X-Prometheus-Scrape-Timeout-Seconds")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0)
        .map(|secs| Duration::from_secs_f64((secs - 0.5).max(secs * 0.5)));
    match from_header {
        Some(h) => h.min(flag),
        None => flag,
    }
}

fn accepts_gzip(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|enc| {
            let mut parts = enc.split(';');
            let name = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| p.trim().replace(' ', "") == "q=0");
            name.eq_ignore_ascii_case("gzip") && !q_zero
        })
}

/// `collect[]=cpu&collect[]=meminfo` or `exclude[]=...`.
fn parse_filters(query: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let mut collect = Vec::new();
    let mut exclude = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k);
        let v = percent_decode(v);
        match k.as_str() {
            "collect[]" => collect.push(v),
            "exclude[]" => exclude.push(v),
            _ => {}
        }
    }
    if !collect.is_empty() && !exclude.is_empty() {
        return Err("Couldn't create filtered metrics handler: collect[] and exclude[] cannot be used together\n".into());
    }
    Ok((collect, exclude))
}

/// blackbox's `/-/reload`: POST only; a file that does not load keeps the
/// old modules and answers 500 with why.
fn reload(prober: &Prober, method: &http::Method) -> Response<Body> {
    if method != http::Method::POST {
        return text_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "This endpoint requires a POST request.\n",
        );
    }
    match prober.reload() {
        Ok(_) => text_response(StatusCode::OK, ""),
        Err(e) => text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e:#}\n"),
        ),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `node_exporter_build_info`, with client_golang's label names.
fn version_info(set: &mut MetricSet) {
    set.gauge(
        "node_exporter_build_info",
        "A metric with a constant '1' value labeled by version, revision, branch, goversion from which node_exporter was built, and the goos and goarch for the build.",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("revision", option_env!("NODE_EXPORTER_REVISION").unwrap_or("unknown")),
            ("branch", option_env!("NODE_EXPORTER_BRANCH").unwrap_or("unknown")),
            ("goversion", concat!("rust", env!("CARGO_PKG_RUST_VERSION"))),
            ("goos", std::env::consts::OS),
            ("goarch", goarch()),
            ("tags", "rust"),
        ],
        1.0,
    );
}

fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

fn landing_page(telemetry_path: &str) -> Response<Body> {
    let html = format!(
        "<!DOCTYPE html>\n<html>\n<head><title>Node Exporter</title></head>\n<body>\n\
         <h1>Node Exporter</h1>\n<p>Prometheus Node Exporter (Rust), version {}</p>\n\
         <ul><li><a href=\"{telemetry_path}\">Metrics</a></li></ul>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    );
    let mut r = Response::new(Full::new(Bytes::from(html)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=UTF-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_decoded() {
        let (c, e) = parse_filters("collect%5B%5D=cpu&collect[]=meminfo").unwrap();
        assert_eq!(c, vec!["cpu", "meminfo"]);
        assert!(e.is_empty());
        assert!(parse_filters("collect[]=cpu&exclude[]=meminfo").is_err());
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn gzip_only_when_accepted() {
        let mut h = http::HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            "deflate, gzip;q=1.0".parse().unwrap(),
        );
        assert!(accepts_gzip(&h));
        h.insert(header::ACCEPT_ENCODING, "gzip;q=0".parse().unwrap());
        assert!(!accepts_gzip(&h));
    }

    #[test]
    fn budget_follows_prometheus_timeout_header() {
        let mut h = http::HeaderMap::new();
        assert_eq!(
            scrape_budget(&h, Duration::from_secs(9)),
            Duration::from_secs(9)
        );
        h.insert("X-Prometheus-Scrape-Timeout-Seconds", "5".parse().unwrap());
        assert_eq!(
            scrape_budget(&h, Duration::from_secs(9)),
            Duration::from_millis(4500)
        );
        h.insert(
            "X-Prometheus-Scrape-Timeout-Seconds",
            "junk".parse().unwrap(),
        );
        assert_eq!(
            scrape_budget(&h, Duration::from_secs(9)),
            Duration::from_secs(9)
        );
    }
}
