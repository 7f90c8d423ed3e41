//! promtail's `loki_push_api` source: a server of its own per scrape config
//! taking Loki pushes (`POST /loki/api/v1/push`: snappy protobuf or JSON,
//! optionally gzip/deflate content-encoded) and newline-separated text
//! (`POST /promtail/api/v1/raw`), so other promtails, the Docker Loki
//! driver and Loki logging handlers can send through us.
//!
//! Unlike promtail, which answers 204 as soon as the lines are queued, a
//! push is answered 204 only once every line of it is delivered (acked by
//! Loki through our pipeline and clients, or dropped on purpose by a
//! stage). While our Loki fails, a push is held at the door without taking
//! its lines in, until Loki is back or `http_server_write_timeout` passes,
//! then answered 503: the sender keeps its lines and retries, and a sender
//! that gave up meanwhile left nothing behind to be sent twice.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use prost::Message;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::ack::Progress;
use crate::client::proto;
use crate::client::Downstream;
use crate::config::{PushApiConfig, ScrapeConfig};
use crate::entry::{Entry, LabelSet, Labels};
use crate::relabel::{self, RelabelConfig};
use crate::sources::serving::{self, Serving};

/// Largest body taken, as sent and once decompressed (Loki's distributor
/// takes 100 MB; senders batch about 1 MB).
pub const MAX_BODY: usize = 64 << 20;
/// Decompressed bytes of all pushes held at once: more waits are answered
/// 429 rather than growing memory with the number of senders.
const MAX_IN_FLIGHT: usize = 256 << 20;

/// One stream of a decoded push.
#[derive(Debug, Clone, PartialEq)]
pub struct PushStream {
    pub labels: LabelSet,
    pub entries: Vec<PushEntry>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PushEntry {
    pub timestamp: SystemTime,
    pub line: String,
    pub structured_metadata: Vec<(String, String)>,
}

/// Why a push body was refused, with the status to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct BadPush {
    pub status: StatusCode,
    pub message: String,
}

fn bad(message: impl Into<String>) -> BadPush {
    BadPush {
        status: StatusCode::BAD_REQUEST,
        message: message.into(),
    }
}

fn too_large() -> BadPush {
    BadPush {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: format!("body larger than {MAX_BODY} bytes"),
    }
}

/// Undoes `Content-Encoding` (none, gzip or deflate), reading at most
/// `max` bytes of output.
pub fn decode_content(encoding: Option<&str>, body: &[u8], max: usize) -> Result<Vec<u8>, BadPush> {
    let enc = encoding.unwrap_or("").trim().to_ascii_lowercase();
    let reader: Box<dyn Read + '_> = match enc.as_str() {
        "" | "identity" => {
            if body.len() > max {
                return Err(too_large());
            }
            return Ok(body.to_vec());
        }
        "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(body)),
        "deflate" => Box::new(flate2::read::ZlibDecoder::new(body)),
        other => {
            return Err(BadPush {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                message: format!("Content-Encoding {other:?} not supported (gzip, deflate)"),
            })
        }
    };
    let mut out = Vec::new();
    reader
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| bad(format!("{enc} body: {e}")))?;
    if out.len() > max {
        return Err(too_large());
    }
    Ok(out)
}

/// A `/loki/api/v1/push` body (after content decoding): JSON when the
/// content type says so, snappy-compressed protobuf otherwise (as Loki).
pub fn decode_push(
    content_type: Option<&str>,
    body: &[u8],
    max: usize,
) -> Result<Vec<PushStream>, BadPush> {
    let ct = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if ct == "application/json" {
        decode_json(body)
    } else {
        decode_protobuf(body, max)
    }
}

/// Snappy (block format) then `logproto.PushRequest`.
pub fn decode_protobuf(body: &[u8], max: usize) -> Result<Vec<PushStream>, BadPush> {
    let len = snap::raw::decompress_len(body).map_err(|e| bad(format!("snappy: {e}")))?;
    if len > max {
        return Err(too_large());
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| bad(format!("snappy: {e}")))?;
    let req =
        proto::PushRequest::decode(raw.as_slice()).map_err(|e| bad(format!("protobuf: {e}")))?;
    let mut out = Vec::with_capacity(req.streams.len());
    for s in req.streams {
        let labels =
            parse_labels(&s.labels).map_err(|e| bad(format!("stream {:?}: {e}", s.labels)))?;
        let entries = s
            .entries
            .into_iter()
            .map(|e| PushEntry {
                timestamp: e
                    .timestamp
                    .map(|t| from_unix(t.seconds as i128 * 1_000_000_000 + t.nanos as i128))
                    .unwrap_or(UNIX_EPOCH),
                line: e.line,
                structured_metadata: e
                    .structured_metadata
                    .into_iter()
                    .map(|p| (p.name, p.value))
                    .collect(),
            })
            .collect();
        out.push(PushStream { labels, entries });
    }
    Ok(out)
}

/// Loki's JSON push: `{"streams":[{"stream":{..},"values":[["<ns>","line",{..}]]}]}`,
/// and the older `{"streams":[{"labels":"{..}","entries":[{"ts":"<RFC 3339>","line":".."}]}]}`.
pub fn decode_json(body: &[u8]) -> Result<Vec<PushStream>, BadPush> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("JSON: {e}")))?;
    let streams = v
        .get("streams")
        .and_then(|s| s.as_array())
        .ok_or_else(|| bad("JSON: no \"streams\" array"))?;
    let mut out = Vec::with_capacity(streams.len());
    for (i, s) in streams.iter().enumerate() {
        let at = |m: String| bad(format!("streams[{i}]: {m}"));
        let mut entries = Vec::new();
        let labels = if let Some(obj) = s.get("stream") {
            let obj = obj
                .as_object()
                .ok_or_else(|| at("\"stream\" is not an object".into()))?;
            let mut labels = LabelSet::new();
            for (k, v) in obj {
                if !relabel::valid_label_name(k) {
                    return Err(at(format!("invalid label name {k:?}")));
                }
                let v = v
                    .as_str()
                    .ok_or_else(|| at(format!("label {k:?} is not a string")))?;
                labels.insert(k.clone(), v.to_string());
            }
            let values = s
                .get("values")
                .and_then(|v| v.as_array())
                .ok_or_else(|| at("no \"values\" array".into()))?;
            for (j, v) in values.iter().enumerate() {
                let at = |m: &str| bad(format!("streams[{i}].values[{j}]: {m}"));
                let a = v.as_array().ok_or_else(|| at("not an array"))?;
                if !(2..=3).contains(&a.len()) {
                    return Err(at("want [timestamp, line] or [timestamp, line, metadata]"));
                }
                let ns: i128 = a[0]
                    .as_str()
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| at("timestamp is not a string of nanoseconds"))?;
                let line = a[1].as_str().ok_or_else(|| at("line is not a string"))?;
                let mut structured_metadata = Vec::new();
                if let Some(m) = a.get(2) {
                    let m = m
                        .as_object()
                        .ok_or_else(|| at("metadata is not an object"))?;
                    for (k, v) in m {
                        let v = v
                            .as_str()
                            .ok_or_else(|| at("metadata value is not a string"))?;
                        structured_metadata.push((k.clone(), v.to_string()));
                    }
                }
                entries.push(PushEntry {
                    timestamp: from_unix(ns),
                    line: line.to_string(),
                    structured_metadata,
                });
            }
            labels
        } else if let Some(l) = s.get("labels") {
            let l = l
                .as_str()
                .ok_or_else(|| at("\"labels\" is not a string".into()))?;
            let labels = parse_labels(l).map_err(at)?;
            let list = s
                .get("entries")
                .and_then(|v| v.as_array())
                .ok_or_else(|| at("no \"entries\" array".into()))?;
            for (j, e) in list.iter().enumerate() {
                let at = |m: &str| bad(format!("streams[{i}].entries[{j}]: {m}"));
                let ts = e
                    .get("ts")
                    .and_then(|t| t.as_str())
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .ok_or_else(|| at("\"ts\" is not an RFC 3339 time"))?;
                let line = e
                    .get("line")
                    .and_then(|l| l.as_str())
                    .ok_or_else(|| at("no \"line\""))?;
                let ns =
                    ts.timestamp() as i128 * 1_000_000_000 + ts.timestamp_subsec_nanos() as i128;
                entries.push(PushEntry {
                    timestamp: from_unix(ns),
                    line: line.to_string(),
                    structured_metadata: Vec::new(),
                });
            }
            labels
        } else {
            return Err(at("neither \"stream\" nor \"labels\"".into()));
        };
        out.push(PushStream { labels, entries });
    }
    Ok(out)
}

fn from_unix(ns: i128) -> SystemTime {
    let d = |n: i128| Duration::new((n / 1_000_000_000) as u64, (n % 1_000_000_000) as u32);
    let far = 1_000_000_000i128 * 1_000_000_000_000; // about 31,700 years
    let ns = ns.clamp(-far, far);
    if ns >= 0 {
        UNIX_EPOCH + d(ns)
    } else {
        UNIX_EPOCH - d(-ns)
    }
}

/// A label set as Loki's streams carry it: `{a="b", c="d"}` (Go-quoted
/// values, `"` or backtick quotes).
pub fn parse_labels(s: &str) -> Result<LabelSet, String> {
    let inner = s
        .trim()
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or("labels must be enclosed in {}")?;
    let mut labels = LabelSet::new();
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..end];
        if !relabel::valid_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        rest = rest[end..].trim_start();
        rest = rest
            .strip_prefix('=')
            .ok_or_else(|| format!("label {name}: expected ="))?
            .trim_start();
        let (value, after) = unquote(rest).map_err(|e| format!("label {name}: {e}"))?;
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("duplicate label {name}"));
        }
        rest = after.trim_start();
        match rest.strip_prefix(',') {
            Some(r) => rest = r.trim_start(),
            None if rest.is_empty() => {}
            None => return Err(format!("after label {name}: expected , or }}")),
        }
    }
    Ok(labels)
}

/// A Go string literal at the start of `s`: the value and what follows.
fn unquote(s: &str) -> Result<(String, &str), String> {
    if let Some(r) = s.strip_prefix('`') {
        let end = r.find('`').ok_or("unterminated raw string")?;
        return Ok((r[..end].to_string(), &r[end + 1..]));
    }
    let r = s.strip_prefix('"').ok_or("expected a quoted value")?;
    let mut out = String::new();
    let mut chars = r.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &r[i + 1..])),
            '\\' => {
                let (_, e) = chars.next().ok_or("unterminated string")?;
                let mut hex = |n: usize| -> Result<u32, String> {
                    let mut v = 0u32;
                    for _ in 0..n {
                        let (_, h) = chars.next().ok_or("short escape")?;
                        v = v * 16 + h.to_digit(16).ok_or("bad hex escape")?;
                    }
                    Ok(v)
                };
                let ch = match e {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    'a' => '\x07',
                    'b' => '\x08',
                    'f' => '\x0c',
                    'v' => '\x0b',
                    '\\' | '"' | '\'' => e,
                    'x' => char::from_u32(hex(2)?).ok_or("bad escape")?,
                    'u' => char::from_u32(hex(4)?).ok_or("bad escape")?,
                    'U' => char::from_u32(hex(8)?).ok_or("bad escape")?,
                    _ => return Err(format!("unknown escape \\{e}")),
                };
                out.push(ch);
            }
            c => out.push(c),
        }
    }
    Err("unterminated string".into())
}

/// Lines of a `/promtail/api/v1/raw` body: one per `\n`, `\r` trimmed,
/// empty lines skipped (as promtail).
pub fn raw_lines(body: &[u8]) -> Result<Vec<String>, BadPush> {
    let text = std::str::from_utf8(body).map_err(|e| bad(format!("body is not UTF-8: {e}")))?;
    Ok(text
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// `scrape_configs[i].loki_push_api` checks `--check-config` can make.
pub fn check(sc: &ScrapeConfig) -> Result<(), String> {
    let Some(cfg) = &sc.loki_push_api else {
        return Ok(());
    };
    for (key, net) in [("http_listen_network", &cfg.server.http_listen_network)] {
        if net != "tcp" && net != "tcp4" && net != "tcp6" {
            return Err(format!(
                "job {}: loki_push_api.server.{key}: {net:?} is not supported (tcp)",
                sc.job_name
            ));
        }
    }
    listen_addresses(cfg).map(|_| ())
}

fn listen_addresses(cfg: &PushApiConfig) -> Result<Vec<SocketAddr>, String> {
    let s = &cfg.server;
    let addr = if s.http_listen_address.is_empty() {
        format!(":{}", s.http_listen_port)
    } else if s.http_listen_address.contains(':') && !s.http_listen_address.starts_with('[') {
        format!("[{}]:{}", s.http_listen_address, s.http_listen_port)
    } else {
        format!("{}:{}", s.http_listen_address, s.http_listen_port)
    };
    exporter_toolkit::server::resolve_listen_address(&addr)
        .map_err(|e| format!("loki_push_api.server: {e}"))
}

/// What every request of one push target needs.
struct Shared {
    job: String,
    labels: LabelSet,
    relabel: Vec<RelabelConfig>,
    keep_timestamp: bool,
    tx: mpsc::Sender<Entry>,
    downstream: Downstream,
    read_timeout: Duration,
    hold: Duration,
    in_flight: Semaphore,
}

/// One running push server.
pub struct PushTarget {
    serving: Serving,
    addrs: Vec<SocketAddr>,
}

impl PushTarget {
    /// Binds the target's port (an error names it) and starts serving.
    /// Call inside a tokio runtime.
    pub fn start(
        sc: &ScrapeConfig,
        tx: mpsc::Sender<Entry>,
        downstream: Downstream,
    ) -> Result<PushTarget, String> {
        let cfg = sc.loki_push_api.clone().ok_or("no loki_push_api block")?;
        check(sc)?;
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for sa in listen_addresses(&cfg)? {
            let l = serving::bind(sa, std::net::TcpListener::bind).map_err(|e| {
                format!("job {}: loki_push_api listening on {sa}: {e}", sc.job_name)
            })?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            addrs.push(l.local_addr().map_err(|e| e.to_string())?);
            listeners.push(tokio::net::TcpListener::from_std(l).map_err(|e| e.to_string())?);
        }
        let shared = Arc::new(Shared {
            job: sc.job_name.clone(),
            labels: cfg.labels.clone().into_iter().collect(),
            relabel: sc.relabel_configs.clone(),
            keep_timestamp: cfg.use_incoming_timestamp,
            tx,
            downstream,
            read_timeout: cfg.server.http_server_read_timeout.get(),
            hold: cfg.server.http_server_write_timeout.get(),
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
        });
        tracing::info!(job = %sc.job_name, addresses = ?addrs, "starting push server");
        Ok(PushTarget {
            serving: Serving::spawn(serve(listeners, shared)),
            addrs,
        })
    }

    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Closes the port and every connection (held pushes are answered
    /// nothing: their senders retry).
    pub fn stop(&self) {
        self.serving.stop();
    }

    /// Stops and waits until the port is closed.
    pub async fn join(self) {
        self.serving.join().await;
    }
}

async fn serve(listeners: Vec<tokio::net::TcpListener>, shared: Arc<Shared>) {
    // Connections live in this set: aborting this task ends them all.
    // The listeners are owned here, not by tasks of their own, so that
    // once this task is joined the port is free again (a reload binds it).
    let mut conns = JoinSet::new();
    loop {
        let accept =
            futures_util::future::select_all(listeners.iter().map(|l| Box::pin(l.accept())));
        tokio::select! {
            (accepted, _, _) = accept => {
                let stream = match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let shared = Arc::clone(&shared);
                let read_timeout = shared.read_timeout;
                conns.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = Arc::clone(&shared);
                        async move { Ok::<_, std::convert::Infallible>(handle(&shared, req).await) }
                    });
                    // Headers too must come within the read timeout: a
                    // client trickling them cannot hold a connection.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(read_timeout)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn handle<B>(shared: &Shared, req: Request<B>) -> Response<Full<Bytes>>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let raw = match (req.method(), req.uri().path()) {
        (&Method::POST, "/loki/api/v1/push") => false,
        (&Method::POST, "/promtail/api/v1/raw") => true,
        (&Method::GET, "/ready") => return text(StatusCode::OK, "ready"),
        (_, "/loki/api/v1/push" | "/promtail/api/v1/raw") => {
            return text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n")
        }
        _ => return text(StatusCode::NOT_FOUND, "404 page not found\n"),
    };
    match push(shared, req, raw).await {
        Ok(()) => {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        Err(e) => {
            if e.status.is_server_error() || e.status == StatusCode::TOO_MANY_REQUESTS {
                tracing::debug!(job = %shared.job, status = %e.status, error = %e.message, "push not taken");
            } else {
                tracing::warn!(job = %shared.job, status = %e.status, error = %e.message, "bad push");
            }
            let mut r = text(e.status, format!("{}\n", e.message));
            if e.status == StatusCode::SERVICE_UNAVAILABLE
                || e.status == StatusCode::TOO_MANY_REQUESTS
            {
                r.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("1"),
                );
            }
            r
        }
    }
}

fn unavailable(message: impl Into<String>) -> BadPush {
    BadPush {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: message.into(),
    }
}

async fn push<B>(shared: &Shared, req: Request<B>, raw: bool) -> Result<(), BadPush>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let header = |name: http::header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header(http::header::CONTENT_TYPE);
    let content_encoding = header(http::header::CONTENT_ENCODING);
    if let Some(len) = header(http::header::CONTENT_LENGTH).and_then(|l| l.parse::<u64>().ok()) {
        if len > MAX_BODY as u64 {
            return Err(too_large());
        }
    }
    let body = tokio::time::timeout(
        shared.read_timeout,
        Limited::new(req.into_body(), MAX_BODY).collect(),
    )
    .await
    .map_err(|_| bad("timed out reading the body"))?
    .map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            too_large()
        } else {
            bad(format!("reading the body: {e}"))
        }
    })?
    .to_bytes();
    let decoded = decode_content(content_encoding.as_deref(), &body, MAX_BODY)?;
    drop(body);
    let size = decoded.len().max(1);
    let mut entries: Vec<Entry> = if raw {
        raw_lines(&decoded)?
            .into_iter()
            .map(|line| Entry::new(shared.labels.clone(), line))
            .collect()
    } else {
        let streams = decode_push(content_type.as_deref(), &decoded, MAX_BODY)?;
        drop(decoded);
        entries_of(shared, streams)
    };
    if raw || !shared.keep_timestamp {
        // Each its own nanosecond, as the file source stamps lines: Loki
        // keeps one of entries identical in stream, timestamp and line.
        let first = crate::sources::file::watcher::read_times(entries.len() as u64);
        for (i, e) in entries.iter_mut().enumerate() {
            e.timestamp = UNIX_EPOCH + Duration::from_nanos(first + i as u64);
        }
    }
    let _permit = shared
        .in_flight
        .try_acquire_many(u32::try_from(size).unwrap_or(u32::MAX))
        .map_err(|_| BadPush {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: "too many pushes waiting for delivery".into(),
        })?;
    deliver(shared, entries).await
}

/// Stream labels plus the configured ones, relabeled; `__` labels go, as
/// in promtail. A stream relabeling drops is dropped.
fn entries_of(shared: &Shared, streams: Vec<PushStream>) -> Vec<Entry> {
    let mut out = Vec::new();
    for s in streams {
        let mut labels = s.labels;
        labels.extend(shared.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        let Some(labels) = relabel::process(labels, &shared.relabel) else {
            continue;
        };
        let labels: Labels = labels
            .into_iter()
            .filter(|(k, _)| !k.starts_with("__"))
            .collect::<LabelSet>()
            .into();
        if labels.is_empty() {
            continue;
        }
        for e in s.entries {
            out.push(Entry {
                labels: labels.clone(),
                timestamp: e.timestamp,
                line: e.line,
                structured_metadata: e.structured_metadata,
                ack: None,
            });
        }
    }
    out
}

/// Holds while Loki fails, then sends the entries and waits for all of
/// them to be delivered, all within the hold time.
async fn deliver(shared: &Shared, mut entries: Vec<Entry>) -> Result<(), BadPush> {
    let deadline = Instant::now() + shared.hold;
    if tokio::time::timeout_at(deadline, shared.downstream.healthy())
        .await
        .is_err()
    {
        return Err(unavailable("Loki is unavailable, retry later"));
    }
    if entries.is_empty() {
        return Ok(());
    }
    let gave_up = shared.downstream.gave_up();
    let progress = Progress::new(0);
    let n = entries.len() as u64;
    for (i, e) in entries.iter_mut().enumerate() {
        e.ack = Some(progress.track(i as u64 + 1));
    }
    for e in entries {
        match tokio::time::timeout_at(deadline, shared.tx.send(e)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(unavailable("shutting down")),
            Err(_) => return Err(unavailable("pipeline busy, retry later")),
        }
    }
    // Woken by the last ack (Loki accepted the batch, or a stage dropped
    // the entry on purpose): only then is the push answered 204.
    if tokio::time::timeout_at(deadline, progress.wait_until(|p| p.committed() >= n))
        .await
        .is_err()
    {
        return Err(unavailable("lines not yet delivered to Loki, retry later"));
    }
    if shared.downstream.gave_up() != gave_up {
        // Some batch was dropped after its retries ran out while we waited:
        // ours may be among them, so the sender keeps its lines.
        return Err(unavailable("Loki failed and lines were dropped, retry"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snappy_proto(req: &proto::PushRequest) -> Vec<u8> {
        snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap()
    }

    #[test]
    fn labels_parse_as_loki_writes_them() {
        let l = parse_labels(r#"{job="a", path="/x\"y\\z\n", raw=`b\c`}"#).unwrap();
        assert_eq!(l["job"], "a");
        assert_eq!(l["path"], "/x\"y\\z\n");
        assert_eq!(l["raw"], "b\\c");
        assert!(parse_labels("{}").unwrap().is_empty());
        for bad in [
            "job=\"a\"",
            "{job=a}",
            "{1a=\"b\"}",
            "{a=\"b\" c=\"d\"}",
            "{a=\"b\", a=\"c\"}",
            "{a=\"\\q\"}",
            "{a=\"b}",
        ] {
            assert!(parse_labels(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn protobuf_pushes_decode() {
        let req = proto::PushRequest {
            streams: vec![proto::Stream {
                labels: r#"{app="x"}"#.into(),
                entries: vec![proto::Entry {
                    timestamp: Some(proto::Timestamp {
                        seconds: 1_700_000_000,
                        nanos: 5,
                    }),
                    line: "hello".into(),
                    structured_metadata: vec![proto::LabelPair {
                        name: "trace".into(),
                        value: "t1".into(),
                    }],
                }],
                hash: 0,
            }],
        };
        let s = decode_push(
            Some("application/x-protobuf"),
            &snappy_proto(&req),
            MAX_BODY,
        )
        .unwrap();
        assert_eq!(s[0].labels["app"], "x");
        assert_eq!(s[0].entries[0].line, "hello");
        assert_eq!(
            s[0].entries[0].timestamp,
            UNIX_EPOCH + Duration::new(1_700_000_000, 5)
        );
        assert_eq!(
            s[0].entries[0].structured_metadata,
            vec![("trace".into(), "t1".into())]
        );
        // Over the limit once decompressed: refused before decompressing.
        let e = decode_push(None, &snappy_proto(&req), 10).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(decode_push(None, b"not snappy at all", MAX_BODY).is_err());
    }

    #[test]
    fn json_pushes_decode_both_formats() {
        let body = br#"{"streams":[{"stream":{"app":"x"},"values":[["1700000000000000001","one"],["2","two",{"k":"v"}]]}]}"#;
        let s = decode_push(Some("application/json; charset=utf-8"), body, MAX_BODY).unwrap();
        assert_eq!(s[0].entries.len(), 2);
        assert_eq!(
            s[0].entries[0].timestamp,
            UNIX_EPOCH + Duration::new(1_700_000_000, 1)
        );
        assert_eq!(
            s[0].entries[1].structured_metadata,
            vec![("k".into(), "v".into())]
        );
        let old = br#"{"streams":[{"labels":"{app=\"y\"}","entries":[{"ts":"2023-11-14T22:13:20.5Z","line":"l"}]}]}"#;
        let s = decode_json(old).unwrap();
        assert_eq!(s[0].labels["app"], "y");
        assert_eq!(
            s[0].entries[0].timestamp,
            UNIX_EPOCH + Duration::new(1_700_000_000, 500_000_000)
        );
        for bad in [
            &br#"{"streams":[{"stream":{"a":1},"values":[]}]}"#[..],
            br#"{"streams":[{"stream":{"a":"b"},"values":[[1,"x"]]}]}"#,
            br#"{"streams":[{"stream":{"a":"b"},"values":[["1"]]}]}"#,
            br#"{"streams":{}}"#,
            br#"[1,2"#,
        ] {
            assert_eq!(
                decode_json(bad).unwrap_err().status,
                StatusCode::BAD_REQUEST
            );
        }
    }

    #[test]
    fn content_encodings_are_undone_within_the_limit() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&vec![b'a'; 10_000]).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(
            decode_content(Some("gzip"), &gz, 10_000).unwrap().len(),
            10_000
        );
        assert_eq!(
            decode_content(Some("gzip"), &gz, 9_999).unwrap_err().status,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(b"xyz").unwrap();
        assert_eq!(
            decode_content(Some("deflate"), &z.finish().unwrap(), 10).unwrap(),
            b"xyz"
        );
        assert_eq!(
            decode_content(Some("br"), b"x", 10).unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            decode_content(Some("gzip"), b"not gzip", 10)
                .unwrap_err()
                .status,
            StatusCode::BAD_REQUEST
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sender_that_gives_up_while_held_leaves_nothing_behind() {
        use tokio::io::AsyncWriteExt;
        let sc: ScrapeConfig = serde_yaml_ng::from_str(
            "job_name: p\nloki_push_api:\n  server: {http_listen_address: 127.0.0.1, http_listen_port: 0, http_server_write_timeout: 30s}\n",
        )
        .unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let downstream = Downstream::single();
        downstream.test_set_failing(true);
        let target = PushTarget::start(&sc, tx, downstream.clone()).unwrap();
        let addr = target.local_addrs()[0];
        let body = "{\"streams\":[{\"stream\":{\"a\":\"b\"},\"values\":[[\"1\",\"x\"]]}]}";
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "POST /loki/api/v1/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(req.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(conn);
        tokio::time::sleep(Duration::from_millis(200)).await;
        downstream.test_set_failing(false);
        let got = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
        assert!(
            got.is_err(),
            "a push whose sender left was taken in: {got:?}"
        );
        target.join().await;
    }

    #[test]
    fn keys_we_do_not_run_are_refused_by_name() {
        let base = "scrape_configs:\n  - job_name: p\n    loki_push_api:\n      server:\n        http_listen_port: 3500\n";
        let c = crate::config::from_str(&format!("{base}        grpc_listen_port: 0\n")).unwrap();
        assert!(check(&c.scrape_configs[0]).is_ok());
        for key in [
            "grpc_listen_port: 3600",
            "http_server_idle_timeout: 1m",
            "http_tls_config: {}",
            "log_level: debug",
        ] {
            let e = crate::config::from_str(&format!("{base}        {key}\n")).unwrap_err();
            let name = key.split(':').next().unwrap();
            assert!(e.message.contains(name), "{e}");
        }
        let e = crate::config::from_str("scrape_configs:\n  - job_name: g\n    gelf:\n      listen_address: :1\n      max_message_size: 1\n").unwrap_err();
        assert!(e.message.contains("max_message_size"), "{e}");
        let c =
            crate::config::from_str(&format!("{base}        http_listen_network: unix\n")).unwrap();
        assert!(check(&c.scrape_configs[0])
            .unwrap_err()
            .contains("http_listen_network"));
    }

    #[test]
    fn raw_lines_split_and_skip_empty_ones() {
        assert_eq!(raw_lines(b"a\r\n\nb\nc").unwrap(), vec!["a", "b", "c"]);
        assert!(raw_lines(b"\xff").is_err());
    }
}
