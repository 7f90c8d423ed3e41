//! `docker_sd_configs` with a TCP host and Prometheus' HTTP client options:
//! `tls_config` (CA, client certificate, server name, insecure_skip_verify),
//! `basic_auth` / `bearer_token` and `http_headers`, on every request the
//! Docker source makes (version, listing, networks, inspection, logs).
//!
//! The Engine is a stand-in on a loopback TLS port answering with bodies
//! recorded from this machine's Docker Engine 20.10 (API 1.41) through its
//! unix socket (`curl --unix-socket /var/run/docker.sock`, one container
//! writing a line to stdout and one to stderr): `tests/fixtures/docker_engine/`.
//! The system daemon is left as it is.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use e2e_tests::loki_receiver::LokiReceiver;
use e2e_tests::process::{free_port, wait_until, Process};
use futures_util::StreamExt as _;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;

#[path = "common/test_ca.rs"]
mod test_ca;
use test_ca::TestCa;

const CONTAINER: &str = "mend-engine-record";

/// A request the stand-in saw.
#[derive(Clone)]
struct Request {
    /// Without the API version.
    path: String,
    /// As sent (percent-encoded).
    query: String,
    /// Names lower case.
    headers: HashMap<String, String>,
}
type Seen = Vec<Request>;

/// The recorded Engine over TLS on a loopback port; stops with the test.
struct Engine {
    port: u16,
    seen: Arc<Mutex<Seen>>,
}

fn fixture(name: &str) -> Bytes {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/docker_engine");
    Bytes::from(std::fs::read(p.join(name)).unwrap())
}

impl Engine {
    fn start(tls: rustls::ServerConfig) -> Engine {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let logs_served = Arc::new(Mutex::new(false));
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let acceptor = acceptor.clone();
                    let log = Arc::clone(&log);
                    let logs_served = Arc::clone(&logs_served);
                    tokio::spawn(async move {
                        // A client refused by the handshake sees an error.
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let service = hyper::service::service_fn(move |req| {
                            answer(req, Arc::clone(&log), Arc::clone(&logs_served))
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                            .await;
                    });
                }
            });
        });
        Engine { port, seen }
    }

    fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    /// The value of query parameter `name` (decoded) in each request to `path`.
    fn query_param(&self, path: &str, name: &str) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|r| r.path == path)
            .filter_map(|r| {
                let value = r.query.split('&').find_map(|kv| {
                    kv.strip_prefix(name)
                        .and_then(|rest| rest.strip_prefix('='))
                })?;
                Some(
                    percent_encoding::percent_decode_str(value)
                        .decode_utf8_lossy()
                        .to_string(),
                )
            })
            .collect()
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// The Engine's answer to one request, by its path without the API
/// version. A container's logs are followed: the recorded lines the first
/// time, then a stream that stays open without new lines (as the Engine's
/// `follow=true` does when the container writes nothing more).
async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
    log: Arc<Mutex<Seen>>,
    logs_served: Arc<Mutex<bool>>,
) -> Result<hyper::Response<Body>, Infallible> {
    let full = req.uri().path().to_string();
    let path = match full.strip_prefix("/v1.") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]).to_string(),
        None => full.clone(),
    };
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    log.lock().unwrap().push(Request {
        path: path.clone(),
        query: req.uri().query().unwrap_or("").to_string(),
        headers,
    });
    let json = |name: &str| (Some("application/json"), Full::new(fixture(name)).boxed());
    let (content_type, body) = if path == "/version" {
        json("version.json")
    } else if path == "/containers/json" {
        json("containers.json")
    } else if path == "/networks" {
        json("networks.json")
    } else if path.ends_with("/logs") {
        let first = !std::mem::replace(&mut *logs_served.lock().unwrap(), true);
        let lines = if first {
            fixture("logs.bin")
        } else {
            Bytes::new()
        };
        let stream = futures_util::stream::once(async move { Ok(Frame::data(lines)) })
            .chain(futures_util::stream::pending());
        (None, BodyExt::boxed(StreamBody::new(stream)))
    } else if path == "/events" {
        // As the Engine when nothing happens: a stream that stays open.
        let stream = futures_util::stream::pending::<Result<Frame<Bytes>, Infallible>>();
        (
            Some("application/json"),
            BodyExt::boxed(StreamBody::new(stream)),
        )
    } else if path.starts_with("/containers/") && path.ends_with("/json") {
        json("container.json")
    } else {
        let mut r = hyper::Response::new(Full::new(Bytes::from("page not found")).boxed());
        *r.status_mut() = hyper::StatusCode::NOT_FOUND;
        return Ok(r);
    };
    let mut r = hyper::Response::new(body);
    r.headers_mut().insert(
        "api-version",
        hyper::header::HeaderValue::from_static("1.41"),
    );
    if let Some(t) = content_type {
        r.headers_mut()
            .insert("content-type", hyper::header::HeaderValue::from_static(t));
    }
    Ok(r)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// The Engine's server config: its certificate for `localhost`, client
/// certificates of `client_ca` required if given.
fn server_tls(dir: &Path, ca: &TestCa, client_ca: Option<&TestCa>) -> rustls::ServerConfig {
    let (cert, key) = ca.sign("localhost");
    exporter_toolkit::tls::server_config(
        &exporter_toolkit::web_config::TlsSettings {
            cert: Some(cert),
            key: Some(key),
            client_auth_type: client_ca.map(|_| "RequireAndVerifyClientCert".to_string()),
            client_ca: client_ca.map(|c| c.pem.clone()),
            ..Default::default()
        },
        dir,
    )
    .unwrap()
}

/// Runs the shipper on one `docker_sd_configs` entry (`sd`, indented
/// under the list item) until `done` says so or 30 s pass.
fn run(
    dir: &Path,
    r: &LokiReceiver,
    sd: &str,
    done: impl FnMut() -> Result<bool, String>,
) -> String {
    let port = free_port();
    let cfg = write(
        dir,
        "config.yaml",
        &format!(
            "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {port}\npositions:\n  filename: {}/positions.yaml\nclients:\n  - url: {}\n    batchwait: 50ms\nscrape_configs:\n  - job_name: docker\n    docker_sd_configs:\n      - refresh_interval: 1s\n{sd}    relabel_configs:\n      - {{source_labels: [__meta_docker_container_name], regex: '/(.*)', target_label: container}}\n      - {{source_labels: [__meta_docker_container_log_stream], target_label: stream}}\n",
            dir.display(),
            r.push_url(),
        ),
    );
    let mut cmd = Command::new(e2e_tests::shipper::binary());
    cmd.arg(format!("-config.file={cfg}"));
    let mut p = Process::spawn("log-shipper", cmd, tempfile::tempdir().unwrap());
    let result = wait_until("the shipper", Duration::from_secs(30), done);
    let log = p.log();
    let _ = Command::new("kill").arg(p.id().to_string()).status();
    wait_until("exit", Duration::from_secs(30), || {
        Ok(p.exit_status().is_some())
    })
    .unwrap();
    if let Err(e) = result {
        panic!("{e}\n{}", p.log_tail(30));
    }
    log
}

fn lines_by_stream(r: &LokiReceiver) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = r
        .streams()
        .into_iter()
        .flat_map(|s| {
            let container = s.labels.get("container").cloned().unwrap_or_default();
            let stream = s.labels.get("stream").cloned().unwrap_or_default();
            s.entries
                .into_iter()
                .map(move |e| (container.clone(), stream.clone(), e.line))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn tcp_engine_with_tls_client_certificates_auth_and_http_headers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new();
    let clients = TestCa::new();
    let (client_cert, client_key) = clients.sign("shipper");
    let engine = Engine::start(server_tls(d, &ca, Some(&clients)));
    let r = LokiReceiver::start();
    let ca_file = write(d, "ca.pem", &ca.pem);
    let cert_file = write(d, "client.pem", &client_cert);
    let key_file = write(d, "client-key.pem", &client_key);
    let password = write(d, "password", "s3cret\n");
    let token = write(d, "token", "  engine-token\n");
    // The certificate is for localhost: the address is checked against
    // server_name.
    let sd = format!(
        "        host: tcp://127.0.0.1:{}\n        basic_auth: {{username: shipper, password_file: {password}}}\n        http_headers:\n          X-Engine-Token: {{files: [{token}], values: [fixed]}}\n        tls_config:\n          ca_file: {ca_file}\n          cert_file: {cert_file}\n          key_file: {key_file}\n          server_name: localhost\n",
        engine.port
    );
    let want = vec![
        (
            CONTAINER.to_string(),
            "stderr".to_string(),
            "line two to stderr".to_string(),
        ),
        (
            CONTAINER.to_string(),
            "stdout".to_string(),
            "line one to stdout".to_string(),
        ),
    ];
    run(d, &r, &sd, || Ok(lines_by_stream(&r) == want));

    let seen = engine.seen();
    let paths: Vec<&str> = seen.iter().map(|r| r.path.as_str()).collect();
    for wanted in ["/version", "/containers/json", "/networks"] {
        assert!(paths.contains(&wanted), "{paths:?}");
    }
    assert!(paths.iter().any(|p| p.ends_with("/logs")), "{paths:?}");
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("shipper:s3cret")
    );
    for Request { path, headers, .. } in &seen {
        assert_eq!(headers.get("authorization"), Some(&basic), "{path}");
        assert_eq!(
            headers.get("x-engine-token").map(String::as_str),
            Some("engine-token"),
            "{path}: {headers:?}"
        );
    }

    // Without the client certificate the Engine refuses the handshake and
    // nothing is shipped; the shipper says why.
    let r2 = LokiReceiver::start();
    let before = engine.seen().len();
    let no_cert = format!(
        "        host: tcp://127.0.0.1:{}\n        tls_config: {{ca_file: {ca_file}, server_name: localhost}}\n",
        engine.port
    );
    let mut tries = 0;
    let log = run(d, &r2, &no_cert, || {
        tries += 1;
        Ok(tries > 30)
    });
    assert!(r2.lines().is_empty());
    assert_eq!(engine.seen().len(), before, "no request got through");
    assert!(log.contains("cannot reach the Docker Engine"), "{log}");
}

#[test]
fn https_engine_with_insecure_skip_verify_and_a_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new();
    let engine = Engine::start(server_tls(d, &ca, None));
    let r = LokiReceiver::start();
    // With a label filter (the stand-in lists its container whatever the
    // filters say).
    let sd = format!(
        "        host: https://127.0.0.1:{}\n        bearer_token: tok\n        tls_config: {{insecure_skip_verify: true}}\n        filters: [{{name: label, values: [com.example.team=web]}}, {{name: status, values: [running]}}]\n",
        engine.port
    );
    run(d, &r, &sd, || {
        Ok(r.lines().len() == 2 && !engine.query_param("/events", "filters").is_empty())
    });
    // The start events the shipper subscribes to are those of the
    // containers its label filter selects (the Engine applies it to
    // events as to listings): other containers' starts wake no listing.
    // The listing's other filters are not event filters and stay out.
    for q in engine.query_param("/events", "filters") {
        let filters: HashMap<String, Vec<String>> =
            serde_json::from_str(&q).unwrap_or_else(|e| panic!("{q}: {e}"));
        let want: HashMap<String, Vec<String>> = [
            ("type", "container"),
            ("event", "start"),
            ("label", "com.example.team=web"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
        .collect();
        assert_eq!(filters, want, "{q}");
    }
    assert!(engine
        .seen()
        .iter()
        .all(|r| r.headers.get("authorization").map(String::as_str) == Some("Bearer tok")));

    // Verified against the system's roots, the test CA is unknown.
    let r2 = LokiReceiver::start();
    let verified = format!("        host: https://localhost:{}\n", engine.port);
    let mut tries = 0;
    let log = run(d, &r2, &verified, || {
        tries += 1;
        Ok(tries > 30)
    });
    assert!(r2.lines().is_empty());
    assert!(log.contains("TLS handshake"), "{log}");
}
