//! HTTP, as promtail serves it: `/metrics`, `/ready`, `/targets`,
//! `/service-discovery`, `/config`, `POST /reload`, and a small landing
//! page. The app owns what is served;
//! this module only routes and formats.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use exporter_toolkit::exposition::{self, Format, MetricSet};
use exporter_toolkit::server::{text_response, Body};
use http::{Method, Request, Response, StatusCode};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

/// One target as `/targets` lists it: a file, a container, the journal,
/// or a receiver's listener.
#[derive(Clone, Debug, Serialize)]
pub struct TargetView {
    /// `file`, `docker`, `docker_events`, `journal`, `syslog`,
    /// `loki_push_api` or `gelf`.
    pub kind: &'static str,
    pub job: String,
    /// What is read: the file, the container's name, the journal's
    /// directory, or the address a receiver listens on.
    pub path: String,
    /// Labels its lines are sent with (before the pipeline).
    pub labels: std::collections::BTreeMap<String, String>,
    /// Files only: bytes read so far / size of the file.
    pub read_bytes: u64,
    pub size_bytes: u64,
    /// Files only: position saved (acknowledged by Loki).
    pub acked_position: u64,
    pub ready: bool,
}

/// One discovered target as `/service-discovery` lists it.
#[derive(Clone, Debug, Serialize)]
pub struct DiscoveredView {
    pub job: String,
    /// `static_configs`/`file_sd_configs` or `docker_sd_configs`.
    pub mechanism: &'static str,
    /// Labels as discovered, before relabeling.
    pub discovered_labels: std::collections::BTreeMap<String, String>,
    /// After relabeling; `None`: dropped.
    pub target_labels: Option<std::collections::BTreeMap<String, String>>,
}

pub type ReloadReply = oneshot::Sender<Result<(), String>>;

/// What the HTTP handlers need from the running shipper.
pub struct ServerState {
    pub ready: AtomicBool,
    pub targets: Box<dyn Fn() -> Vec<TargetView> + Send + Sync>,
    pub discovered: Box<dyn Fn() -> Vec<DiscoveredView> + Send + Sync>,
    /// The running config as `/config` shows it (YAML, secrets masked).
    pub config: std::sync::Mutex<String>,
    pub reload: mpsc::Sender<ReloadReply>,
    pub collect: Box<dyn Fn(&mut MetricSet) + Send + Sync>,
    pub routes: Routes,
}

/// Which routes are served, and where (`server` block settings).
#[derive(Clone, Debug, PartialEq)]
pub struct Routes {
    /// `http_path_prefix`: every route lives under it.
    pub path_prefix: String,
    /// `enable_runtime_reload`: without it, `/reload` does not exist (as
    /// in promtail, which registers the route only when enabled).
    pub runtime_reload: bool,
    /// `register_instrumentation`: without it, no `/metrics`.
    pub instrumentation: bool,
}

impl Default for Routes {
    fn default() -> Self {
        Routes {
            path_prefix: String::new(),
            runtime_reload: false,
            instrumentation: true,
        }
    }
}

impl Routes {
    pub fn from_config(s: &crate::config::ServerConfig) -> Routes {
        Routes {
            path_prefix: s.http_path_prefix.trim_end_matches('/').to_string(),
            runtime_reload: s.enable_runtime_reload,
            instrumentation: s.register_instrumentation,
        }
    }
}

pub async fn handle<B>(state: Arc<ServerState>, req: Request<B>) -> Response<Body> {
    let routes = &state.routes;
    let Some(path) = req
        .uri()
        .path()
        .strip_prefix(routes.path_prefix.as_str())
        .map(|p| if p.is_empty() { "/" } else { p })
    else {
        return not_found();
    };
    match (req.method(), path) {
        (_, "/metrics") if !routes.instrumentation => not_found(),
        (_, "/reload") if !routes.runtime_reload => not_found(),
        (&Method::GET | &Method::HEAD, "/metrics") => metrics(&state, &req),
        (&Method::GET | &Method::HEAD, "/ready") => {
            if state.ready.load(Ordering::Relaxed) {
                text_response(StatusCode::OK, "Ready\n")
            } else {
                text_response(StatusCode::SERVICE_UNAVAILABLE, "Not ready\n")
            }
        }
        (&Method::GET | &Method::HEAD, "/targets") => targets(&state, &req),
        (&Method::GET | &Method::HEAD, "/service-discovery") => service_discovery(&state, &req),
        (&Method::GET | &Method::HEAD, "/config") => {
            let yaml = state
                .config
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let mut resp = text_response(StatusCode::OK, yaml);
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            resp
        }
        (&Method::POST, "/reload") => reload(&state).await,
        (_, "/reload") => text_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "This endpoint requires a POST request.\n",
        ),
        (&Method::GET | &Method::HEAD, "/") => text_response(
            StatusCode::OK,
            "log-shipper (promtail-compatible)\n\n/metrics  self-metrics\n/ready    200 when running\n/targets  what is read: files, containers, journal, receivers (?format=json)\n/service-discovery  targets as discovered and after relabeling (?format=json)\n/config   the running config (secrets masked)\nPOST /reload  re-read the config\n",
        ),
        _ => not_found(),
    }
}

fn not_found() -> Response<Body> {
    text_response(StatusCode::NOT_FOUND, "404 page not found\n")
}

fn metrics<B>(state: &ServerState, req: &Request<B>) -> Response<Body> {
    let mut set = MetricSet::new();
    (state.collect)(&mut set);
    let format = Format::negotiate(
        req.headers()
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    let families = match set.finish() {
        Ok(f) => f,
        Err(e) => {
            return text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("inconsistent metrics: {e}\n"),
            )
        }
    };
    let mut resp = text_response(StatusCode::OK, exposition::encode(&families, format));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(format.content_type()),
    );
    resp
}

fn wants_json<B>(req: &Request<B>) -> bool {
    req.uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "format=json"))
}

fn json_response<T: Serialize>(value: &T) -> Response<Body> {
    let body = serde_json::to_string_pretty(value).unwrap_or_else(|e| e.to_string());
    let mut resp = text_response(StatusCode::OK, body);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn label_list(labels: &std::collections::BTreeMap<String, String>) -> String {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", labels.join(", "))
}

fn service_discovery<B>(state: &ServerState, req: &Request<B>) -> Response<Body> {
    let mut list = (state.discovered)();
    list.sort_by(|a, b| (&a.job, a.mechanism).cmp(&(&b.job, b.mechanism)));
    if wants_json(req) {
        return json_response(&list);
    }
    let mut out = String::new();
    let mut group = None;
    for d in &list {
        if group != Some((&d.job, d.mechanism)) {
            let (kept, all) = list
                .iter()
                .filter(|o| o.job == d.job && o.mechanism == d.mechanism)
                .fold((0, 0), |(k, n), o| {
                    (k + o.target_labels.is_some() as usize, n + 1)
                });
            out.push_str(&format!(
                "{} ({}): {kept} active / {all} discovered\n",
                d.job, d.mechanism
            ));
            group = Some((&d.job, d.mechanism));
        }
        out.push_str(&format!(
            "  discovered {}\n",
            label_list(&d.discovered_labels)
        ));
        match &d.target_labels {
            Some(t) => out.push_str(&format!("      target {}\n", label_list(t))),
            None => out.push_str("      dropped\n"),
        }
    }
    if list.is_empty() {
        out.push_str("no discovered targets\n");
    }
    text_response(StatusCode::OK, out)
}

fn targets<B>(state: &ServerState, req: &Request<B>) -> Response<Body> {
    let mut list = (state.targets)();
    list.sort_by(|a, b| (&a.job, a.kind, &a.path).cmp(&(&b.job, b.kind, &b.path)));
    if wants_json(req) {
        return json_response(&list);
    }
    let mut out = String::new();
    let mut job = None;
    for t in &list {
        if job != Some(&t.job) {
            out.push_str(&format!("{}\n", t.job));
            job = Some(&t.job);
        }
        let progress = if t.kind == "file" {
            format!(
                " read={}/{} acked={}",
                t.read_bytes, t.size_bytes, t.acked_position
            )
        } else {
            String::new()
        };
        out.push_str(&format!(
            "  {} {} {}{progress} {}\n",
            if t.ready { "ready  " } else { "waiting" },
            t.kind,
            t.path,
            label_list(&t.labels)
        ));
    }
    if list.is_empty() {
        out.push_str("no targets\n");
    }
    text_response(StatusCode::OK, out)
}

async fn reload(state: &ServerState) -> Response<Body> {
    let (tx, rx) = oneshot::channel();
    if state.reload.send(tx).await.is_err() {
        return text_response(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    }
    match rx.await {
        Ok(Ok(())) => text_response(StatusCode::OK, "config reloaded\n"),
        Ok(Err(e)) => text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        ),
        Err(_) => text_response(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
    }
}

/// `server.http_tls_config` as the HTTP server's TLS (exporter-toolkit's
/// rustls setup, which takes Go's `client_auth_type` names as dskit does).
/// Relative file names are relative to the working directory, as promtail.
pub fn web_config(
    s: &crate::config::ServerConfig,
) -> Result<exporter_toolkit::web_config::WebConfig, String> {
    let mut web = exporter_toolkit::web_config::WebConfig::default();
    let Some(t) = &s.http_tls_config else {
        return Ok(web);
    };
    let path = |p: &str| (!p.is_empty()).then(|| std::path::PathBuf::from(p));
    let text = |p: &str| (!p.is_empty()).then(|| p.to_string());
    let settings = exporter_toolkit::web_config::TlsSettings {
        cert_file: path(&t.cert_file),
        key_file: path(&t.key_file),
        client_auth_type: text(&t.client_auth_type),
        client_ca_file: path(&t.client_ca_file),
        ..Default::default()
    };
    let tls = exporter_toolkit::tls::server_config(&settings, std::path::Path::new(".")).map_err(
        |e| {
            format!(
                "server.http_tls_config: {}",
                e.replace("tls_server_config.", "")
                    .replace("tls_server_config", "http_tls_config")
            )
        },
    )?;
    web.tls = Some(Arc::new(tls));
    // The certificate offers h2 by ALPN, as Go's server does: serve it.
    web.http2 = true;
    web.files = [&t.cert_file, &t.key_file, &t.client_ca_file]
        .into_iter()
        .filter(|f| !f.is_empty())
        .map(std::path::PathBuf::from)
        .collect();
    Ok(web)
}
