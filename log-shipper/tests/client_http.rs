//! The push client's HTTP options as promtail's clients take them
//! (Prometheus' common HTTP client), from the YAML a user writes to what
//! arrives at the Loki test receiver: redirects (`follow_redirects`), an
//! HTTP proxy (Debian's tinyproxy: `proxy_url`, `no_proxy`,
//! `proxy_connect_header`) and OAuth 2.0 client credentials (`oauth2`,
//! against a token endpoint served here).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use e2e_tests::loki_receiver::{LokiReceiver, ReceiverTls};
use e2e_tests::process::{find_program, free_port, Process};
use http_body_util::{BodyExt, Full};
use log_shipper::ack::Progress;
use log_shipper::client::{Client, DropReason};
use log_shipper::config;
use log_shipper::entry::{Entry, LabelSet};

#[path = "common/test_ca.rs"]
mod test_ca;
use test_ca::TestCa;

#[path = "common/last_push.rs"]
mod last_push;
use last_push::header;

/// What a test server saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: String,
}

type Handler = dyn Fn(&Seen) -> (u16, Vec<(&'static str, String)>, String) + Send + Sync;

/// A plain HTTP server on a loopback port answering with `handler`;
/// every request is kept.
async fn serve(handler: Arc<Handler>) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = Arc::clone(&handler);
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let handler = Arc::clone(&handler);
                        let log = Arc::clone(&log);
                        async move {
                            let method = req.method().to_string();
                            let path = req.uri().to_string();
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                                .collect();
                            let body = req.into_body().collect().await?.to_bytes();
                            let seen = Seen {
                                method,
                                path,
                                headers,
                                body: String::from_utf8_lossy(&body).into_owned(),
                            };
                            let (status, headers, body) = handler(&seen);
                            log.lock().unwrap().push(seen);
                            let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
                            *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            for (k, v) in headers {
                                resp.headers_mut().insert(k, v.parse().unwrap());
                            }
                            Ok::<_, hyper::Error>(resp)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

fn labels() -> LabelSet {
    let mut l = LabelSet::new();
    l.insert("job".into(), "http".into());
    l
}

/// The first client of `yaml`, started.
fn client(yaml: &str) -> Client {
    let cfg = config::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    log_shipper::app::check(&cfg).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    Client::start(log_shipper::app::client_settings(&cfg.clients[0]).unwrap()).unwrap()
}

/// A client section with fast batches and retries, and `extra` keys.
fn yaml(url: &str, extra: &str) -> String {
    format!(
        "clients:\n  - url: {url}\n    batchwait: 20ms\n    timeout: 5s\n    backoff_config: {{min_period: 50ms, max_period: 100ms, max_retries: 1}}\n{extra}"
    )
}

/// Sends `lines` (one batch each, one after the other) and waits until
/// each is acknowledged: delivered or dropped on purpose.
async fn push(client: &Client, lines: &[&str]) {
    for (i, line) in lines.iter().enumerate() {
        let p = Progress::new(0);
        let mut e = Entry::new(labels(), line.to_string());
        e.ack = Some(p.track(i as u64 + 1));
        client.sender().send(e).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while p.committed() < i as u64 + 1 {
            assert!(Instant::now() < deadline, "{line:?} never acknowledged");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_followed_as_promtail_follows_them() {
    let r = LokiReceiver::start();
    let push_url = r.push_url();
    // /hops/N: 307 to /hops/N-1 (relative), /hops/0: 308 to Loki;
    // /moved: 301 to /seen; /loop: 307 to itself.
    let handler: Arc<Handler> = Arc::new(move |s: &Seen| {
        if let Some(n) = s.path.strip_prefix("/hops/") {
            let n: u32 = n.parse().unwrap();
            return match n {
                0 => (308, vec![("location", push_url.clone())], String::new()),
                n => (307, vec![("location", format!("{}", n - 1))], String::new()),
            };
        }
        match s.path.as_str() {
            "/moved" => (301, vec![("location", "/seen".to_string())], String::new()),
            "/loop" => (307, vec![("location", "/loop".to_string())], String::new()),
            "/seen" => (404, vec![], "404 page not found\n".into()),
            _ => (500, vec![], String::new()),
        }
    });
    let (front, seen) = serve(handler).await;
    let count = |path: &str| {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .count()
    };

    // The default follows: 307s (relative Location) then a 308 to Loki,
    // the body and headers repeated at each hop.
    let c = client(&yaml(
        &format!("http://{front}/hops/3"),
        "    tenant_id: t1\n",
    ));
    push(&c, &["followed"]).await;
    assert_eq!(r.lines(), ["followed"]);
    assert_eq!(header(&r, "x-scope-orgid").as_deref(), Some("t1"));
    assert_eq!((count("/hops/3"), count("/hops/0")), (1, 1));
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .all(|s| s.method == "POST" && !s.body.is_empty()));
    c.stop(Duration::from_secs(1)).await;

    // follow_redirects: false: the 3xx is Loki's answer, a 4xx-like
    // refusal: dropped at once, not retried, counted.
    let c = client(&yaml(
        &format!("http://{front}/hops/0"),
        "    follow_redirects: false\n",
    ));
    let dropped = c.metrics().dropped_entries(DropReason::IngesterError);
    push(&c, &["not followed"]).await;
    assert_eq!(r.lines(), ["followed"]);
    assert_eq!(count("/hops/0"), 2);
    assert_eq!(
        c.metrics().dropped_entries(DropReason::IngesterError),
        dropped + 1
    );
    c.stop(Duration::from_secs(1)).await;

    // A 301 turns the POST into a GET without a body, as Go's client does.
    let c = client(&yaml(&format!("http://{front}/moved"), ""));
    push(&c, &["moved"]).await;
    let at_seen: Vec<Seen> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.path == "/seen")
        .cloned()
        .collect();
    assert_eq!(at_seen.len(), 1);
    assert_eq!(
        (at_seen[0].method.as_str(), at_seen[0].body.as_str()),
        ("GET", "")
    );
    c.stop(Duration::from_secs(1)).await;

    // A loop: Go's client stops at the 10th redirect, an error without a
    // status, so the batch is retried (once here) and then dropped.
    let c = client(&yaml(&format!("http://{front}/loop"), ""));
    let dropped = c.metrics().dropped_entries(DropReason::IngesterError);
    push(&c, &["looped"]).await;
    assert_eq!(count("/loop"), 20, "10 requests per attempt, 2 attempts");
    assert_eq!(
        c.metrics().dropped_entries(DropReason::IngesterError),
        dropped + 1
    );
    assert_eq!(r.lines(), ["followed"]);
    c.stop(Duration::from_secs(1)).await;
}

fn tinyproxy_bin() -> PathBuf {
    find_program(
        "TINYPROXY",
        &[PathBuf::from("/usr/bin/tinyproxy")],
        "install Debian's tinyproxy-bin (`make deps`)",
    )
}

/// Debian's tinyproxy on a free loopback port, asking for `user:secret`.
fn tinyproxy() -> (Process, u16) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("tinyproxy.conf");
    std::fs::write(
        &conf,
        format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogLevel Connect\nMaxClients 20\nBasicAuth user secret\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new(tinyproxy_bin());
    cmd.arg("-d").arg("-c").arg(&conf);
    let p = Process::spawn("tinyproxy", cmd, dir);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{}", p.log_tail(20));
        std::thread::sleep(Duration::from_millis(20));
    }
    (p, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_go_through_an_http_proxy() {
    let (proxy, port) = tinyproxy();
    let auth = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode("user:secret")
    };

    // http: the request in absolute form to the proxy, its credentials
    // from the proxy URL.
    let r = LokiReceiver::start();
    let c = client(&yaml(
        &r.push_url(),
        &format!("    proxy_url: http://user:secret@127.0.0.1:{port}\n"),
    ));
    push(&c, &["via the proxy"]).await;
    assert_eq!(r.lines(), ["via the proxy"], "{}", proxy.log_tail(20));
    assert!(
        header(&r, "via").is_some_and(|v| v.contains("tinyproxy")),
        "{:?}",
        r.last_headers()
    );
    assert!(
        proxy
            .log()
            .contains(&format!("POST {} HTTP/1.1", r.push_url())),
        "{}",
        proxy.log_tail(20)
    );
    c.stop(Duration::from_secs(1)).await;

    // https: a CONNECT tunnel, the credentials in proxy_connect_header.
    let ca = TestCa::new();
    let (cert, key) = ca.sign("localhost");
    let tr = LokiReceiver::start_tls(ReceiverTls {
        cert_pem: cert,
        key_pem: key,
        client_ca_pem: None,
    });
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let tls = format!(
        "    tls_config: {{ca_file: {}, server_name: localhost}}\n",
        ca_file.display()
    );
    let c = client(&yaml(
        &tr.push_url(),
        &format!(
            "    proxy_url: http://127.0.0.1:{port}\n    proxy_connect_header:\n      Proxy-Authorization: [Basic {auth}]\n{tls}"
        ),
    ));
    push(&c, &["through the tunnel"]).await;
    assert_eq!(tr.lines(), ["through the tunnel"], "{}", proxy.log_tail(20));
    assert!(
        proxy
            .log()
            .contains(&format!("CONNECT {} HTTP/1.1", tr.addr())),
        "{}",
        proxy.log_tail(20)
    );
    c.stop(Duration::from_secs(1)).await;

    // Without the credentials the proxy refuses the CONNECT: an error
    // without a status, retried, then dropped; nothing reaches Loki.
    let c = client(&yaml(
        &tr.push_url(),
        &format!("    proxy_url: http://127.0.0.1:{port}\n{tls}"),
    ));
    let dropped = c.metrics().dropped_entries(DropReason::IngesterError);
    push(&c, &["refused"]).await;
    assert_eq!(
        c.metrics().dropped_entries(DropReason::IngesterError),
        dropped + 1
    );
    assert_eq!(tr.lines(), ["through the tunnel"]);
    c.stop(Duration::from_secs(1)).await;

    // With no_proxy set, Go's rules apply: loopback targets go direct (the
    // proxy here is a closed port).
    let c = client(&yaml(
        &r.push_url(),
        &format!(
            "    proxy_url: http://127.0.0.1:{}\n    no_proxy: logs.example.com\n",
            free_port()
        ),
    ));
    push(&c, &["direct"]).await;
    assert_eq!(r.lines(), ["via the proxy", "direct"]);
    assert_eq!(header(&r, "via"), None);
    c.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_tokens_are_fetched_kept_until_expiry_and_refreshed() {
    let issued = Arc::new(AtomicU64::new(0));
    let expires_in = Arc::new(AtomicU64::new(3600));
    let (issued2, expires2) = (Arc::clone(&issued), Arc::clone(&expires_in));
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "s3cret\n").unwrap();
    let handler: Arc<Handler> = Arc::new(move |s: &Seen| {
        use base64::Engine as _;
        // The client's id and secret: by Basic only for secret "s3cret";
        // the rotated secret only in the form (Go then retries that way).
        let basic = s.headers.get("authorization").cloned().unwrap_or_default();
        let ok_basic = basic
            == format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("shipper:s3cret")
            );
        let ok_form = s.body.contains("client_id=shipper&client_secret=rotated");
        let form_ok = s
            .body
            .starts_with("grant_type=client_credentials&scope=logs%3Awrite+extra")
            && s.body.contains("audience=loki");
        if s.path != "/token" || !form_ok || !(ok_basic || ok_form) {
            return (401, vec![], "{\"error\":\"invalid_client\"}".into());
        }
        let n = issued2.fetch_add(1, Ordering::SeqCst) + 1;
        let body = format!(
            "{{\"access_token\":\"tok-{n}\",\"token_type\":\"bearer\",\"expires_in\":{}}}",
            expires2.load(Ordering::SeqCst)
        );
        (200, vec![("content-type", "application/json".into())], body)
    });
    let (auth_server, seen) = serve(handler).await;
    let r = LokiReceiver::start();
    let c = client(&yaml(
        &r.push_url(),
        &format!(
            "    oauth2:\n      client_id: shipper\n      client_secret_file: {}\n      token_url: http://{auth_server}/token\n      scopes: [logs:write, extra]\n      endpoint_params: {{audience: loki}}\n",
            secret_file.display()
        ),
    ));
    push(&c, &["a", "b", "c"]).await;
    assert_eq!(r.lines(), ["a", "b", "c"]);
    assert_eq!(
        issued.load(Ordering::SeqCst),
        1,
        "one token for three pushes"
    );
    assert_eq!(header(&r, "authorization").as_deref(), Some("Bearer tok-1"));

    // A token that expires within 10 s is fetched again before each push
    // (Go's expiry margin); the same client, no clock involved.
    expires_in.store(5, Ordering::SeqCst);
    std::fs::write(&secret_file, "s3cret").unwrap();
    push(&c, &["d"]).await; // tok-1 still valid: expires in an hour
    assert_eq!(issued.load(Ordering::SeqCst), 1);

    // A rotated secret: a new token, the credentials sent in the form
    // once Basic is refused.
    std::fs::write(&secret_file, "rotated\n").unwrap();
    push(&c, &["e", "f"]).await;
    assert_eq!(
        issued.load(Ordering::SeqCst),
        3,
        "tok-2 expires in 5 s: tok-3"
    );
    assert_eq!(header(&r, "authorization").as_deref(), Some("Bearer tok-3"));
    assert_eq!(r.lines(), ["a", "b", "c", "d", "e", "f"]);
    let refused = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.body.contains("client_id"))
        .count();
    let basic = seen.lock().unwrap().len() - refused;
    assert_eq!(
        (basic, refused),
        (2, 2),
        "Basic refused once, then the form remembered"
    );
    c.stop(Duration::from_secs(1)).await;

    // The token endpoint refusing: an error without a status, retried and
    // then dropped, nothing sent to Loki without a token.
    std::fs::write(&secret_file, "wrong").unwrap();
    let before = r.requests();
    let c = client(&yaml(
        &r.push_url(),
        &format!(
            "    oauth2:\n      client_id: shipper\n      client_secret_file: {}\n      token_url: http://{auth_server}/token\n      scopes: [logs:write, extra]\n      endpoint_params: {{audience: loki}}\n",
            secret_file.display()
        ),
    ));
    let dropped = c.metrics().dropped_entries(DropReason::IngesterError);
    push(&c, &["no token"]).await;
    assert_eq!(
        c.metrics().dropped_entries(DropReason::IngesterError),
        dropped + 1
    );
    assert_eq!(r.requests(), before);
    c.stop(Duration::from_secs(1)).await;
}

/// `http_headers` as Prometheus' client sends them: every one of `values`,
/// `secrets` and `files` (trimmed, read at each push, so a rotated file is
/// picked up). A file gone fails the push, which is retried and then
/// dropped, never sent without it; a header the client sets itself is
/// refused at load, with the file and line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_headers_reach_loki_and_files_are_read_at_each_push() {
    let r = LokiReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "  first\n").unwrap();
    let c = client(&yaml(
        &r.push_url(),
        &format!(
            "    http_headers:\n      X-Token:\n        values: [v1]\n        secrets: [s1]\n        files: [{}]\n      X-Other:\n        values: [o]\n",
            token.display()
        ),
    ));
    let values = |name: &str| -> Vec<String> {
        r.last_headers()
            .into_iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v)
            .collect()
    };
    push(&c, &["one"]).await;
    assert_eq!(values("x-token"), ["v1", "s1", "first"]);
    assert_eq!(header(&r, "x-other").as_deref(), Some("o"));
    std::fs::write(&token, "second\n").unwrap();
    push(&c, &["two"]).await;
    assert_eq!(values("x-token"), ["v1", "s1", "second"]);

    std::fs::remove_file(&token).unwrap();
    let before = r.requests();
    let dropped = c.metrics().dropped_entries(DropReason::IngesterError);
    push(&c, &["three"]).await;
    assert_eq!(r.requests(), before, "nothing sent without the file");
    assert_eq!(
        c.metrics().dropped_entries(DropReason::IngesterError),
        dropped + 1
    );
    c.stop(Duration::from_secs(1)).await;
    assert_eq!(r.lines(), ["one", "two"]);

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        yaml(
            &r.push_url(),
            "    http_headers:\n      User-Agent:\n        values: [me]\n",
        ),
    )
    .unwrap();
    let e = config::load(&bad, false).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}:6:", bad.display()))
            && e.contains("http_headers: bad value: setting header \"User-Agent\" is not allowed"),
        "{e}"
    );
}
