//! The http prober's options, each against local servers run by the test
//! (HTTP/1.1 and HTTP/2 over TLS, an HTTP proxy, an OAuth 2.0 token
//! endpoint, line servers for the tcp modules), and blackbox_exporter's
//! own example modules files, loaded unchanged and run module by module.

mod common;

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use exporter_toolkit::exposition::{encode, Format};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use node_exporter::probe::{Modules, Prober};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Every route the probes are pointed at.
async fn route(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let mut head = format!("{} {} {:?}\n", req.method(), req.uri(), req.version());
    for (k, v) in req.headers() {
        head.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
    }
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let ok = |body: Vec<u8>| {
        Response::builder()
            .status(200)
            .body(Full::new(Bytes::from(body)))
    };
    let r = match path.as_str() {
        "/" => ok(b"hello world".to_vec()),
        // The request as received, then its body.
        "/echo" => ok(format!("{head}\n{}", String::from_utf8_lossy(&body)).into_bytes()),
        "/gzip" => Response::builder()
            .header("Content-Encoding", "gzip")
            .body(Full::new(Bytes::from(gzip(b"hello compressed world")))),
        "/gzip-if-asked" if head.contains("accept-encoding: gzip\n") => Response::builder()
            .header("Content-Encoding", "gzip")
            .body(Full::new(Bytes::from(gzip(b"asked for gzip")))),
        "/gzip-if-asked" => Response::builder()
            .status(406)
            .body(Full::new(Bytes::new())),
        "/deflate" => Response::builder()
            .header("Content-Encoding", "deflate")
            .body(Full::new(Bytes::from(deflate(b"hello deflated world")))),
        "/example" => Response::builder()
            .header("Access-Control-Allow-Origin", "*")
            .body(Full::new(Bytes::from("Download the latest version here"))),
        "/json" => ok(br#"{"foo": "bar", "baz": "qux"}"#.to_vec()),
        "/auth" if auth == "Basic dXNlcm5hbWU6bXlzZWNyZXQ=" => ok(b"welcome".to_vec()),
        "/auth" => Response::builder()
            .status(401)
            .body(Full::new(Bytes::new())),
        // Client credentials: client "client" with secret "s3cret".
        "/token"
            if auth == "Basic Y2xpZW50OnMzY3JldA=="
                && String::from_utf8_lossy(&body).contains("grant_type=client_credentials") =>
        {
            Response::builder()
                .header("Content-Type", "application/json")
                .body(Full::new(Bytes::from(format!(
                    r#"{{"access_token": "tok123", "token_type": "bearer", "scope_seen": "{}"}}"#,
                    String::from_utf8_lossy(&body)
                ))))
        }
        // The same client with its credentials in the form (the second
        // way Go's oauth2 tries); "formclient" is refused the first way.
        "/token"
            if auth.is_empty()
                && String::from_utf8_lossy(&body)
                    .contains("client_id=formclient&client_secret=s3cret") =>
        {
            Response::builder().body(Full::new(Bytes::from(
                r#"{"access_token": "tok456", "token_type": "Bearer"}"#,
            )))
        }
        "/token" => Response::builder()
            .status(401)
            .body(Full::new(Bytes::from("{}"))),
        "/redirect" => Response::builder()
            .status(302)
            .header("Location", "/")
            .body(Full::new(Bytes::new())),
        _ => Response::builder()
            .status(404)
            .body(Full::new(Bytes::from("nope"))),
    };
    Ok(r.unwrap())
}

async fn serve_http(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) {
    common::serve_each(listener, tls, |conn| async move {
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        let svc = hyper::service::service_fn(route);
        let _ = builder.serve_connection(TokioIo::new(conn), svc).await;
    })
    .await
}

/// An HTTP proxy: each request's head is recorded; a CONNECT is tunnelled
/// to its target, any other request answered by the proxy itself with the
/// head it received (so the probe's regexps can check it).
async fn serve_proxy(listener: TcpListener, seen: Arc<Mutex<Vec<String>>>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(tcp);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                match r.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) if line == "\r\n" => break,
                    Ok(_) => head.push_str(&line),
                }
            }
            seen.lock().unwrap().push(head.clone());
            if let Some(rest) = head.strip_prefix("CONNECT ") {
                let target = rest.split(' ').next().unwrap_or("").to_string();
                let Ok(mut upstream) = TcpStream::connect(&target).await else {
                    let _ = r
                        .get_mut()
                        .write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                        .await;
                    return;
                };
                let mut client = r.into_inner();
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            } else {
                let body = format!("proxied\n{head}");
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = r.get_mut().write_all(reply.as_bytes()).await;
            }
        });
    }
}

/// Line servers for the tcp modules of blackbox's examples.
async fn serve_lines(listener: TcpListener, kind: &'static str) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let (rd, mut wr) = tcp.into_split();
            let mut rd = BufReader::new(rd);
            match kind {
                "ssh" => {
                    let _ = wr.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n").await;
                    let mut line = String::new();
                    let _ = rd.read_line(&mut line).await;
                }
                "irc" => {
                    let mut line = String::new();
                    // NICK, USER, then a PING whose PONG must echo it.
                    for _ in 0..2 {
                        line.clear();
                        let _ = rd.read_line(&mut line).await;
                    }
                    let _ = wr.write_all(b"PING :abc123\r\n").await;
                    line.clear();
                    let _ = rd.read_line(&mut line).await;
                    if line.trim_end() == "PONG abc123" {
                        let _ = wr.write_all(b":irc.local 001 prober :Welcome\r\n").await;
                    }
                    let mut rest = Vec::new();
                    let _ = rd.read_to_end(&mut rest).await;
                }
                _ => {
                    let mut rest = Vec::new();
                    let _ = rd.read_to_end(&mut rest).await;
                }
            }
        });
    }
}

struct Servers {
    http: SocketAddr,
    https: SocketAddr,
    proxy: SocketAddr,
    ssh: SocketAddr,
    irc: SocketAddr,
    silent: SocketAddr,
    proxied: Arc<Mutex<Vec<String>>>,
    pki: common::Pki,
}

async fn start() -> Servers {
    let pki = common::Pki::new();
    let bind = || async { TcpListener::bind("127.0.0.1:0").await.unwrap() };
    let (http, https, proxy, ssh, irc, silent) = (
        bind().await,
        bind().await,
        bind().await,
        bind().await,
        bind().await,
        bind().await,
    );
    let proxied = Arc::new(Mutex::new(Vec::new()));
    let s = Servers {
        http: http.local_addr().unwrap(),
        https: https.local_addr().unwrap(),
        proxy: proxy.local_addr().unwrap(),
        ssh: ssh.local_addr().unwrap(),
        irc: irc.local_addr().unwrap(),
        silent: silent.local_addr().unwrap(),
        proxied: proxied.clone(),
        pki,
    };
    tokio::spawn(serve_http(http, None));
    tokio::spawn(serve_http(
        https,
        Some(s.pki.acceptor(&[b"h2", b"http/1.1"])),
    ));
    tokio::spawn(serve_proxy(proxy, proxied));
    tokio::spawn(serve_lines(ssh, "ssh"));
    tokio::spawn(serve_lines(irc, "irc"));
    tokio::spawn(serve_lines(silent, "silent"));
    s
}

struct Run {
    success: bool,
    metrics: String,
    logs: String,
}

/// Probes `target` with `module` of `yaml`, within `timeout` seconds.
async fn probe(yaml: &str, module: &str, target: &str, timeout: f64) -> Run {
    let modules = Modules::parse(yaml).unwrap_or_else(|e| panic!("{e:#}\n{yaml}"));
    let p = Prober::new(modules)
        .probe_debug(Some(target), Some(module), Some(timeout))
        .await
        .unwrap();
    let metrics = encode(&p.metrics.finish().unwrap(), Format::Text);
    Run {
        success: metrics.contains("\nprobe_success 1\n"),
        metrics,
        logs: p.logs.join("\n"),
    }
}

/// A one-module file.
fn http_module(body: &str) -> String {
    let mut y = String::from("modules:\n  m:\n    prober: http\n    http:\n");
    for line in body.lines() {
        y.push_str("      ");
        y.push_str(line);
        y.push('\n');
    }
    y
}

async fn check(yaml: &str, target: &str, want: bool) -> Run {
    let r = probe(yaml, "m", target, 5.0).await;
    assert_eq!(
        r.success, want,
        "{yaml}\ntarget {target}\nlogs:\n{}\nmetrics:\n{}",
        r.logs, r.metrics
    );
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_size_limit_and_compression() {
    let s = start().await;
    let url = |p: &str| format!("http://{}{p}", s.http);
    check(&http_module("body_size_limit: 5B"), &url("/"), false).await;
    check(&http_module("body_size_limit: 1KiB"), &url("/"), true).await;
    let r = check(&http_module("compression: gzip"), &url("/gzip"), true).await;
    assert!(
        r.metrics
            .contains("probe_http_uncompressed_body_length 22\n"),
        "{}",
        r.metrics
    );
    // The decoded body is what the regexps see, and what the limit counts.
    check(
        &http_module("compression: gzip\nfail_if_body_not_matches_regexp: [compressed]"),
        &url("/gzip"),
        true,
    )
    .await;
    check(
        &http_module("compression: gzip\nbody_size_limit: 10B"),
        &url("/gzip"),
        false,
    )
    .await;
    check(&http_module("compression: deflate"), &url("/deflate"), true).await;
    // A body not in the module's compression fails the probe.
    check(&http_module("compression: gzip"), &url("/"), false).await;
    // The compression is asked for, unless the module's header does.
    check(
        &http_module("compression: gzip"),
        &url("/gzip-if-asked"),
        true,
    )
    .await;
    check(&http_module("method: GET"), &url("/gzip-if-asked"), false).await;
    let err = format!(
        "{:#}",
        Modules::parse(&http_module(
            "compression: gzip\nheaders:\n  Accept-Encoding: br"
        ))
        .unwrap_err()
    );
    assert!(
        err.contains("Accept-Encoding") && err.contains("\"m\""),
        "{err}"
    );
    let err = format!(
        "{:#}",
        Modules::parse(&http_module("compression: br")).unwrap_err()
    );
    assert!(
        err.contains("compression") && err.contains("\"m\""),
        "{err}"
    );
    let err = format!(
        "{:#}",
        Modules::parse(&http_module("body_size_limit: 5 parsecs")).unwrap_err()
    );
    assert!(err.contains("body_size_limit"), "{err}");
    let err = format!(
        "{:#}",
        Modules::parse(&http_module("body_size_limit: 5")).unwrap_err()
    );
    assert!(err.contains("body_size_limit"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_inline_and_from_files() {
    let s = start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let echo = format!("http://{}/echo", s.http);
    let expect = |header: &str| format!("fail_if_body_not_matches_regexp: ['(?m)^{header}$']");
    let token = file("token", "s3cr3t-token\n");
    check(
        &http_module(&format!(
            "bearer_token_file: {token}\n{}",
            expect("authorization: Bearer s3cr3t-token")
        )),
        &echo,
        true,
    )
    .await;
    check(
        &http_module(&format!(
            "authorization:\n  type: Token\n  credentials_file: {token}\n{}",
            expect("authorization: Token s3cr3t-token")
        )),
        &echo,
        true,
    )
    .await;
    check(
        &http_module(&format!(
            "authorization:\n  credentials: abc\n{}",
            expect("authorization: Bearer abc")
        )),
        &echo,
        true,
    )
    .await;
    let pass = file("pass", "mysecret\n");
    let auth = format!("http://{}/auth", s.http);
    check(
        &http_module(&format!(
            "basic_auth:\n  username: username\n  password_file: {pass}"
        )),
        &auth,
        true,
    )
    .await;
    check(
        &http_module("basic_auth:\n  username: username\n  password: wrong"),
        &auth,
        false,
    )
    .await;
    // A file gone since the load fails the probe, saying which.
    let gone = dir.path().join("gone").display().to_string();
    let r = check(
        &http_module(&format!("bearer_token_file: {gone}")),
        &echo,
        false,
    )
    .await;
    assert!(r.logs.contains("gone"), "{}", r.logs);

    let hdr = file("hdr", "  from-a-file\n");
    check(
        &http_module(&format!(
            "http_headers:\n  X-Test:\n    values: [one]\n    secrets: [two]\n    files: [{hdr}]\n\
             fail_if_body_not_matches_regexp:\n  - '(?m)^x-test: one$'\n  - '(?m)^x-test: two$'\n  - '(?m)^x-test: from-a-file$'"
        )),
        &echo,
        true,
    )
    .await;
    let body = file("body", "a body from a file");
    check(
        &http_module(&format!(
            "method: POST\nbody_file: {body}\nfail_if_body_not_matches_regexp: ['(?m)^a body from a file$', '^POST ']"
        )),
        &echo,
        true,
    )
    .await;

    for (bad, field) in [
        (
            "basic_auth:\n  username: u\n  password: p\n  password_file: /f",
            "password",
        ),
        ("bearer_token: a\nbearer_token_file: /f", "bearer_token"),
        ("bearer_token: a\nbasic_auth:\n  username: u", "at most one"),
        (
            "authorization:\n  type: Basic\n  credentials: x",
            "basic_auth",
        ),
        ("body: x\nbody_file: /f", "body_file"),
        (
            "http_headers:\n  authorization:\n    values: [x]",
            "not allowed",
        ),
        (
            "oauth2:\n  client_id: a\n  token_url: http://x/\n  proxy_url: http://p/",
            "proxy_url",
        ),
        ("tls_config:\n  min_version: TLS10", "min_version"),
        ("tls_config:\n  max_version: TLS14", "max_version"),
        (
            "tls_config:\n  min_version: TLS13\n  max_version: TLS12",
            "min_version",
        ),
    ] {
        let err = match Modules::parse(&http_module(bad)) {
            Ok(_) => panic!("{bad} loaded"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(field) && err.contains("\"m\""), "{bad}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_client_credentials() {
    let s = start().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let yaml = |secret_line: &str| {
        http_module(&format!(
            "oauth2:\n  client_id: client\n  {secret_line}\n  token_url: http://{}/token\n  scopes: [read, write]\n  \
             endpoint_params:\n    audience: probes\n\
             fail_if_body_not_matches_regexp: ['(?m)^authorization: Bearer tok123$']",
            s.http
        ))
    };
    let echo = format!("http://{}/echo", s.http);
    check(&yaml("client_secret: s3cret"), &echo, true).await;
    check(
        &yaml(&format!("client_secret_file: {}", secret.display())),
        &echo,
        true,
    )
    .await;
    check(
        &http_module(&format!(
            "oauth2:\n  client_id: formclient\n  client_secret: s3cret\n  token_url: http://{}/token\n\
             fail_if_body_not_matches_regexp: ['(?m)^authorization: Bearer tok456$']",
            s.http
        )),
        &echo,
        true,
    )
    .await;
    // A refused token request fails the probe before the target is asked.
    let r = check(&yaml("client_secret: wrong"), &echo, false).await;
    assert!(r.logs.contains("oauth2"), "{}", r.logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies() {
    let s = start().await;
    let proxy = format!("http://{}", s.proxy);
    // Nothing listens on port 9 here: only the proxy answers.
    let r = check(
        &http_module(&format!(
            "proxy_url: {proxy}\nfail_if_body_not_matches_regexp: ['^proxied\\n', '(?m)^GET http://127.0.0.1:9/x HTTP/1.1']"
        )),
        "http://127.0.0.1:9/x",
        true,
    )
    .await;
    assert!(r.metrics.contains("probe_ip_protocol 4"), "{}", r.metrics);
    // Not resolved: the proxy is given the name, and no lookup is reported.
    let r = check(
        &http_module(&format!(
            "proxy_url: {proxy}\nskip_resolve_phase_with_proxy: true\n\
             fail_if_body_not_matches_regexp: ['(?m)^GET http://target.invalid:80/ HTTP/1.1', '(?mi)^host: target.invalid']"
        )),
        "http://target.invalid/",
        true,
    )
    .await;
    assert!(!r.metrics.contains("probe_ip_protocol"), "{}", r.metrics);
    assert!(!r.metrics.contains("phase=\"resolve\""), "{}", r.metrics);
    // Without the skip, an unresolvable name fails before the proxy.
    check(
        &http_module(&format!("proxy_url: {proxy}")),
        "http://target.invalid/",
        false,
    )
    .await;

    // HTTPS through the proxy's CONNECT, with proxy_connect_header.
    let ca = s.pki.path("ca.crt").display().to_string();
    s.proxied.lock().unwrap().clear();
    let r = check(
        &http_module(&format!(
            "proxy_url: {proxy}\nproxy_connect_header:\n  Proxy-Authorization: [Bearer token]\ntls_config:\n  ca_file: {ca}\n  server_name: localhost"
        )),
        &format!("https://localhost:{}/", s.https.port()),
        true,
    )
    .await;
    assert!(r.metrics.contains("probe_http_ssl 1"), "{}", r.metrics);
    let seen = s.proxied.lock().unwrap().join("\n");
    assert!(
        seen.contains(&format!("CONNECT 127.0.0.1:{} HTTP/1.1", s.https.port()))
            && seen
                .to_ascii_lowercase()
                .contains("proxy-authorization: bearer token"),
        "{seen}"
    );

    // no_proxy: loopback and listed hosts go direct (Go's httpproxy).
    s.proxied.lock().unwrap().clear();
    check(
        &http_module(&format!(
            "proxy_url: {proxy}\nno_proxy: example.com,10.0.0.0/8"
        )),
        &format!("http://{}/", s.http),
        true,
    )
    .await;
    assert!(s.proxied.lock().unwrap().is_empty());
    for (bad, field) in [
        ("no_proxy: example.com", "no_proxy"),
        ("proxy_connect_header:\n  X: [y]", "proxy_connect_header"),
        ("proxy_url: socks5://127.0.0.1:1080", "proxy_url"),
        (
            "proxy_url: http://p:1\nproxy_from_environment: true",
            "proxy_from_environment",
        ),
    ] {
        let err = match Modules::parse(&http_module(bad)) {
            Ok(_) => panic!("{bad} loaded"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(field) && err.contains("\"m\""), "{bad}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_tls_versions_and_responses() {
    let s = start().await;
    let ca = s.pki.path("ca.crt").display().to_string();
    let https = format!("https://127.0.0.1:{}/", s.https.port());
    let tls = format!("tls_config:\n  ca_file: {ca}");
    // Go's default: h2 offered by ALPN, and taken by this server.
    let r = check(
        &http_module(&format!("{tls}\nvalid_http_versions: [HTTP/2.0]")),
        &https,
        true,
    )
    .await;
    assert!(
        r.metrics.contains("probe_http_version 2\n"),
        "{}",
        r.metrics
    );
    let r = check(
        &http_module(&format!("{tls}\nenable_http2: false")),
        &https,
        true,
    )
    .await;
    assert!(
        r.metrics.contains("probe_http_version 1.1\n"),
        "{}",
        r.metrics
    );
    let r = check(
        &http_module(&format!("{tls}\n  max_version: TLS12")),
        &https,
        true,
    )
    .await;
    assert!(
        r.metrics
            .contains("probe_tls_version_info{version=\"TLS 1.2\"} 1"),
        "{}",
        r.metrics
    );
    let r = check(
        &http_module(&format!("{tls}\n  min_version: TLS13")),
        &https,
        true,
    )
    .await;
    assert!(
        r.metrics
            .contains("probe_tls_version_info{version=\"TLS 1.3\"} 1"),
        "{}",
        r.metrics
    );

    let http = |p: &str| format!("http://{}{p}", s.http);
    check(
        &http_module("accept_any_response: true"),
        &http("/missing"),
        true,
    )
    .await;
    check(&http_module("method: GET"), &http("/missing"), false).await;
    let r = check(
        &http_module("follow_redirects: false\nvalid_status_codes: [302]"),
        &http("/redirect"),
        true,
    )
    .await;
    assert!(
        r.metrics.contains("probe_http_redirects 1\n"),
        "{}",
        r.metrics
    );
    check(
        &http_module("fail_if_body_json_not_matches_cel: \"body.foo == 'bar'\""),
        &http("/json"),
        true,
    )
    .await;
    let r = check(
        &http_module("fail_if_body_json_matches_cel: \"body.foo == 'bar'\""),
        &http("/json"),
        false,
    )
    .await;
    assert!(
        r.metrics.contains("probe_failed_due_to_cel 1\n"),
        "{}",
        r.metrics
    );
    // Not JSON: the CEL check fails.
    check(
        &http_module("fail_if_body_json_not_matches_cel: \"true\""),
        &http("/"),
        false,
    )
    .await;
    let err = format!(
        "{:#}",
        Modules::parse(&http_module("fail_if_body_json_matches_cel: \"body.(\"")).unwrap_err()
    );
    assert!(
        err.contains("fail_if_body_json_matches_cel") && err.contains("\"m\""),
        "{err}"
    );
    // HTTP/3 is not implemented: such a module loads and fails, saying so.
    let r = check(&http_module("enable_http3: true"), &http("/"), false).await;
    assert!(r.logs.contains("enable_http3"), "{}", r.logs);
    check(&http_module("enable_http3: false"), &http("/"), true).await;
}

/// HTTP/3 is refused where the operator looks first: at start, naming the
/// file and the module; blackbox's example file still loads.
#[test]
fn http3_module_named_at_start() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/blackbox_example.yml");
    let ne = common::start(&[
        "--collector.disable-defaults".into(),
        format!("--probe.config.file={}", file.display()),
    ]);
    let (status, _) = ne.get("/metrics");
    assert_eq!(status, 200);
    let log = ne.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("enable_http3"))
        .unwrap_or_else(|| panic!("no enable_http3 warning in\n{log}"));
    assert!(
        line.contains("level=warn")
            && line.contains("blackbox_example.yml")
            && line.contains("module \\\"http_3xx\\\"")
            && line.contains("not supported"),
        "{line}"
    );
    assert_eq!(log.matches("enable_http3").count(), 1, "{log}");
}

/// blackbox's two example files, unchanged, each module run against a
/// local target: (module, target, expected probe_success, a line the
/// metrics or logs must have). The modules whose files, proxy or token
/// endpoint only exist on blackbox's authors' machines fail, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackbox_example_files_load_and_run() {
    let s = start().await;
    let http = |p: &str| format!("http://{}{p}", s.http);
    let tls = format!("127.0.0.1:{}", s.https.port());
    let silent = s.silent.to_string();
    let files =
        [
            (
                "blackbox_example.yml",
                vec![
                ("http_2xx", http("/"), Some(true), "probe_http_status_code 200"),
                ("http_post_2xx", http("/echo"), Some(true), "probe_http_status_code 200"),
                ("tcp_connect", silent.clone(), Some(true), "probe_ip_protocol 4"),
                // Our test CA is not among the system's.
                ("pop3s_banner", tls.clone(), Some(false), "certificate"),
                ("grpc", silent.clone(), Some(false), "probe_grpc_status_code"),
                ("grpc_plain", silent.clone(), Some(false), "probe_grpc_status_code"),
                ("ssh_banner", s.ssh.to_string(), Some(true), "probe_success 1"),
                (
                    "ssh_banner_extract",
                    s.ssh.to_string(),
                    Some(true),
                    "probe_expect_info{ssh_comments=\"Debian-2\",ssh_version=\"OpenSSH_9.2p1\"} 1",
                ),
                ("irc_banner", s.irc.to_string(), Some(true), "probe_success 1"),
                // Needs raw or unprivileged ICMP sockets: either outcome.
                ("icmp", "127.0.0.1".into(), None, "probe_success"),
                ("icmp_ttl5", "127.0.0.1".into(), None, "probe_success"),
                ("http_3xx", http("/"), Some(false), "enable_http3"),
            ],
            ),
            (
                "blackbox_example_config.yml",
                vec![
                    (
                        "http_2xx_example",
                        http("/example"),
                        Some(true),
                        "probe_failed_due_to_regex 0",
                    ),
                    // No proxy listens on 127.0.0.1:3128 here.
                    ("http_with_proxy", http("/"), Some(false), "3128"),
                    (
                        "http_with_proxy_and_headers",
                        http("/"),
                        Some(false),
                        "3128",
                    ),
                    (
                        "http_post_2xx",
                        http("/echo"),
                        Some(true),
                        "probe_http_status_code 200",
                    ),
                    (
                        "http_any_response_example",
                        http("/missing"),
                        Some(true),
                        "probe_http_status_code 404",
                    ),
                    (
                        "http_post_body_file",
                        http("/echo"),
                        Some(false),
                        "/files/body.txt",
                    ),
                    (
                        "http_basic_auth_example",
                        http("/auth"),
                        Some(true),
                        "probe_http_status_code 200",
                    ),
                    (
                        "http_json_cel_match",
                        http("/json"),
                        Some(true),
                        "probe_failed_due_to_cel 0",
                    ),
                    (
                        "http_2xx_oauth_client_credentials",
                        http("/"),
                        Some(false),
                        "oauth2",
                    ),
                    // The CA file only matters for https targets.
                    (
                        "http_custom_ca_example",
                        http("/"),
                        Some(true),
                        "probe_http_ssl 0",
                    ),
                    (
                        "http_gzip",
                        http("/gzip"),
                        Some(true),
                        "probe_http_uncompressed_body_length 22",
                    ),
                    (
                        "http_gzip_with_accept_encoding",
                        http("/gzip"),
                        Some(true),
                        "probe_http_uncompressed_body_length 22",
                    ),
                    ("tls_connect", tls.clone(), Some(false), "certificate"),
                    (
                        "tcp_connect_example",
                        silent.clone(),
                        Some(true),
                        "probe_success 1",
                    ),
                    (
                        "imap_starttls",
                        silent.clone(),
                        Some(false),
                        "probe_failed_due_to_regex",
                    ),
                    (
                        "smtp_starttls",
                        silent.clone(),
                        Some(false),
                        "probe_failed_due_to_regex",
                    ),
                    (
                        "irc_banner_example",
                        s.irc.to_string(),
                        Some(true),
                        "probe_success 1",
                    ),
                    ("rabbitmq", tls.clone(), Some(false), "CA_cert.crt"),
                    ("rabbitmq_insecure", tls.clone(), Some(false), "CA_cert.crt"),
                    ("icmp_example", "127.0.0.1".into(), None, "probe_success"),
                    (
                        "dns_udp_example",
                        silent.clone(),
                        Some(false),
                        "probe_dns_lookup_time_seconds",
                    ),
                    (
                        "dns_soa",
                        silent.clone(),
                        Some(false),
                        "probe_dns_lookup_time_seconds",
                    ),
                    (
                        "dns_tcp_example",
                        silent.clone(),
                        Some(false),
                        "probe_dns_lookup_time_seconds",
                    ),
                ],
            ),
        ];
    let mut ran = 0;
    for (file, cases) in files {
        let yaml = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(file),
        )
        .unwrap();
        let modules = Modules::parse(&yaml).unwrap_or_else(|e| panic!("{file}: {e:#}"));
        let names: Vec<&String> = modules.modules.keys().collect();
        let mut covered: Vec<&str> = cases.iter().map(|c| c.0).collect();
        covered.sort();
        assert_eq!(names, covered, "{file}: every module is run");
        for (module, target, want, line) in cases {
            // The silent targets hold the probe to its timeout: keep it short.
            let r = probe(&yaml, module, &target, 2.0).await;
            if let Some(want) = want {
                assert_eq!(
                    r.success, want,
                    "{file} {module} {target}\nlogs:\n{}\n{}",
                    r.logs, r.metrics
                );
            }
            assert!(
                r.metrics.contains(line) || r.logs.contains(line),
                "{file} {module}: no {line:?} in\n{}\n{}",
                r.logs,
                r.metrics
            );
            ran += 1;
        }
    }
    assert_eq!(ran, 35);
}
