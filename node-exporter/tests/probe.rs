//! `/probe` against local HTTP and HTTPS servers on loopback: the real
//! exporter binary probes a small hyper server run by the test.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

async fn route(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let method = req.method().to_string();
    let header = req
        .headers()
        .get("x-probe")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let reply = |status: u16, body: String| {
        Ok(Response::builder()
            .status(status)
            .body(Full::new(Bytes::from(body)))
            .unwrap())
    };
    if let Some(n) = path.strip_prefix("/redirect/") {
        let n: u32 = n.parse().unwrap_or(0);
        let to = if n == 0 {
            "/ok".to_string()
        } else {
            format!("/redirect/{}", n - 1)
        };
        return Ok(Response::builder()
            .status(302)
            .header("Location", to)
            .body(Full::new(Bytes::new()))
            .unwrap());
    }
    match path.as_str() {
        "/ok" => reply(200, "hello world".into()),
        "/fail" => reply(500, "internal trouble".into()),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(4)).await;
            reply(200, "late".into())
        }
        "/echo" => reply(
            200,
            format!("{method} {} {header}", String::from_utf8_lossy(&body)),
        ),
        _ => reply(404, "no such page".into()),
    }
}

/// Serves [`route`] on a loopback port, over TLS when `tls` is given.
fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> SocketAddr {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            common::serve_each(listener, tls, |conn| async move {
                let svc = hyper::service::service_fn(route);
                let http = hyper::server::conn::http1::Builder::new();
                let _ = http.serve_connection(TokioIo::new(conn), svc).await;
            })
            .await
        });
    });
    addr
}

struct Setup {
    ne: common::Running,
    http: SocketAddr,
    https: SocketAddr,
    pki: common::Pki,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let pki = common::Pki::new();
    let http = serve(None);
    let https = serve(Some(pki.acceptor(&[])));
    let dir = tempfile::tempdir().unwrap();
    let modules = dir.path().join("blackbox.yml");
    std::fs::write(
        &modules,
        format!(
            r#"
modules:
  http_2xx:
    prober: http
    timeout: 5s
  body_ok:
    prober: http
    http:
      fail_if_body_not_matches_regexp: ["hello w.rld"]
  body_bad:
    prober: http
    http:
      fail_if_body_matches_regexp: ["hello"]
  want_500:
    prober: http
    http:
      valid_status_codes: [500]
  no_redirects:
    prober: http
    http:
      follow_redirects: false
  fast:
    prober: http
    timeout: 1s
  post:
    prober: http
    http:
      method: POST
      body: ping
      headers:
        X-Probe: "yes"
      fail_if_body_not_matches_regexp: ["^POST ping yes$"]
  insecure:
    prober: http
    http:
      tls_config:
        insecure_skip_verify: true
  our_ca:
    prober: http
    http:
      fail_if_not_ssl: true
      tls_config:
        ca_file: {}
  ping:
    prober: icmp
"#,
            pki.path("ca.crt").display()
        ),
    )
    .unwrap();
    let ne = common::start(&[
        "--collector.disable-defaults".into(),
        "--collector.loadavg".into(),
        format!("--probe.config.file={}", modules.display()),
    ]);
    Setup {
        ne,
        http,
        https,
        pki,
        _dir: dir,
    }
}

fn probe(s: &Setup, target: &str, module: &str) -> String {
    let (status, body) = s.ne.get(&format!("/probe?module={module}&target={target}"));
    assert_eq!(status, 200, "{body}");
    body
}

fn value(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{body}"))
}

#[test]
fn status_body_redirects_timeouts_and_tls() {
    let s = setup();
    let http = |p: &str| format!("http://{}{p}", s.http);

    // 200 with a matching body; phases and lengths are reported.
    let b = probe(&s, &http("/ok"), "body_ok");
    assert_eq!(value(&b, "probe_success"), 1.0, "{b}");
    assert_eq!(value(&b, "probe_http_status_code"), 200.0);
    assert_eq!(value(&b, "probe_http_content_length"), 11.0);
    assert_eq!(value(&b, "probe_http_ssl"), 0.0);
    assert_eq!(value(&b, "probe_failed_due_to_regex"), 0.0);
    assert!(value(&b, "probe_http_duration_seconds{phase=\"connect\"}") > 0.0);
    assert!(value(&b, "probe_duration_seconds") > 0.0);
    // A target without a scheme is http://, as in blackbox.
    let b = probe(&s, &format!("{}/ok", s.http), "http_2xx");
    assert_eq!(value(&b, "probe_success"), 1.0, "{b}");

    // 200 with a body that must not match.
    let b = probe(&s, &http("/ok"), "body_bad");
    assert_eq!(value(&b, "probe_success"), 0.0);
    assert_eq!(value(&b, "probe_failed_due_to_regex"), 1.0);

    // 500: a failure for http_2xx, a success where 500 is expected.
    let b = probe(&s, &http("/fail"), "http_2xx");
    assert_eq!(value(&b, "probe_success"), 0.0);
    assert_eq!(value(&b, "probe_http_status_code"), 500.0);
    assert_eq!(
        value(&probe(&s, &http("/fail"), "want_500"), "probe_success"),
        1.0
    );

    // A redirect chain is followed and counted, or not followed.
    let b = probe(&s, &http("/redirect/3"), "http_2xx");
    assert_eq!(value(&b, "probe_success"), 1.0, "{b}");
    assert_eq!(value(&b, "probe_http_redirects"), 4.0);
    assert_eq!(value(&b, "probe_http_status_code"), 200.0);
    let b = probe(&s, &http("/redirect/3"), "no_redirects");
    assert_eq!(value(&b, "probe_success"), 0.0);
    assert_eq!(value(&b, "probe_http_status_code"), 302.0);
    // Past Go's limit of 10 redirects.
    assert_eq!(
        value(
            &probe(&s, &http("/redirect/12"), "http_2xx"),
            "probe_success"
        ),
        0.0
    );

    // Method, headers and body are sent.
    assert_eq!(
        value(&probe(&s, &http("/echo"), "post"), "probe_success"),
        1.0
    );

    // A response slower than the module's timeout fails, on time.
    let started = Instant::now();
    let b = probe(&s, &http("/slow"), "fast");
    assert_eq!(value(&b, "probe_success"), 0.0);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        started.elapsed()
    );
    assert!(value(&b, "probe_duration_seconds") < 2.0);

    // Nothing listening: a failure, not an error.
    let closed = format!("http://127.0.0.1:{}/", common::free_port());
    assert_eq!(value(&probe(&s, &closed, "http_2xx"), "probe_success"), 0.0);

    // Self-signed (by the test CA): refused by default, accepted without
    // verification or with the CA given; the expiry is the certificate's.
    let https = format!("https://{}/ok", s.https);
    let b = probe(&s, &https, "http_2xx");
    assert_eq!(value(&b, "probe_success"), 0.0, "{b}");
    let b = probe(&s, &https, "insecure");
    assert_eq!(value(&b, "probe_success"), 1.0, "{b}");
    assert_eq!(value(&b, "probe_http_ssl"), 1.0);
    assert!(value(&b, "probe_http_duration_seconds{phase=\"tls\"}") > 0.0);
    let expiry = value(&b, "probe_ssl_earliest_cert_expiry");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // rcgen's default validity runs to 4096; anything past now is right.
    assert!(expiry > now, "expiry {expiry}");
    assert!(
        b.contains("probe_tls_version_info{version=\"TLS 1.3\"} 1"),
        "{b}"
    );
    let b = probe(&s, &https, "our_ca");
    assert_eq!(value(&b, "probe_success"), 1.0, "{b}");
    // fail_if_not_ssl over plain HTTP.
    assert_eq!(
        value(&probe(&s, &http("/ok"), "our_ca"), "probe_success"),
        0.0
    );
    drop(s.pki);
}

#[test]
fn bad_probe_requests_get_blackbox_answers() {
    let s = setup();
    let (status, body) = s.ne.get("/probe?module=nope&target=127.0.0.1");
    assert_eq!(status, 400);
    assert!(body.contains("Unknown module \"nope\""), "{body}");
    let (status, body) = s.ne.get("/probe?module=http_2xx");
    assert_eq!(status, 400);
    assert!(body.contains("Target parameter is missing"), "{body}");
    // An icmp module is probed now (the tests run as root: a raw socket).
    let (status, body) = s.ne.get("/probe?module=ping&target=127.0.0.1");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("probe_icmp_duration_seconds"), "{body}");
    // /metrics is unaffected by the prober.
    let (status, body) = s.ne.get("/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("node_load1"));
}

#[test]
fn probing_is_off_without_a_modules_file_and_a_bad_file_is_refused() {
    let ne = common::start(&common::light_args());
    let (status, body) = ne.get("/probe?target=127.0.0.1");
    assert_eq!(status, 404);
    assert!(body.contains("--probe.config.file"), "{body}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("blackbox.yml");
    std::fs::write(
        &bad,
        "modules:\n  x:\n    prober: http\n    http:\n      valid_status_code: [200]\n",
    )
    .unwrap();
    let arg = format!("--probe.config.file={}", bad.display());
    let (code, err) = common::run_to_exit(&[&arg]);
    assert_eq!(code, 1);
    assert!(
        err.contains("blackbox.yml") && err.contains("valid_status_code") && err.contains("line 5"),
        "{err}"
    );
}
