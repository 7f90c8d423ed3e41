//! The HTTP face of the real binary: web config (basic auth, TLS, mTLS,
//! headers, startup errors) and `/metrics` behaviour (gzip, content
//! negotiation, collect[]/exclude[], telemetry path, landing page,
//! `--web.max-requests`, exporter self-metrics).

mod common;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{fetch, light_args, Pki, Reply, Running};

/// An `Authorization` header value for basic auth.
fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn args_with(extra: &[String]) -> Vec<String> {
    let mut a = light_args();
    a.extend_from_slice(extra);
    a
}

fn web_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("web.yml");
    std::fs::write(&p, text).unwrap();
    p
}

fn start_with_web_config(path: &Path, extra: &[&str]) -> Running {
    let mut a = args_with(&[format!("--web.config.file={}", path.display())]);
    a.extend(extra.iter().map(|s| s.to_string()));
    common::start(&a)
}

/// bcrypt at the lowest cost keeps the tests fast; the server must accept
/// any cost.
fn bcrypt_hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

fn metric_names(body: &str) -> Vec<String> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_string())
        .collect()
}

/// The value of the first sample line starting with `series` (name plus
/// optional labels, exactly as printed).
fn value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

// ---------------------------------------------------------------- basic auth

#[test]
fn basic_auth_requires_the_right_password() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = web_config(
        dir.path(),
        &format!(
            "basic_auth_users:\n  alice: '{}'\n  bob: '{}'\n",
            bcrypt_hash("s3cret"),
            bcrypt_hash("other")
        ),
    );
    let ne = start_with_web_config(&cfg, &[]);

    let r = ne.fetch("/metrics", &[]);
    assert_eq!(r.status, 401, "no credentials");
    assert_eq!(r.header("www-authenticate"), Some("Basic"));
    assert!(!r.text().contains("node_load1"));

    let wrong = basic("alice", "wrong");
    let r = ne.fetch("/metrics", &[("Authorization", &wrong)]);
    assert_eq!(r.status, 401, "wrong password");
    assert_eq!(r.header("www-authenticate"), Some("Basic"));

    // Another user's password, and an unknown user.
    let r = ne.fetch("/metrics", &[("Authorization", &basic("alice", "other"))]);
    assert_eq!(r.status, 401);
    let r = ne.fetch("/metrics", &[("Authorization", &basic("eve", "s3cret"))]);
    assert_eq!(r.status, 401);
    // Not basic auth at all.
    let r = ne.fetch("/metrics", &[("Authorization", "Bearer s3cret")]);
    assert_eq!(r.status, 401);

    let right = basic("alice", "s3cret");
    for _ in 0..2 {
        // The second time comes from the verdict cache.
        let r = ne.fetch("/metrics", &[("Authorization", &right)]);
        assert_eq!(r.status, 200, "right password: {}", r.text());
        assert!(r.text().contains("node_load1 "), "{}", r.text());
    }
    let r = ne.fetch("/metrics", &[("Authorization", &basic("bob", "other"))]);
    assert_eq!(r.status, 200);

    // The landing page is behind the same door.
    assert_eq!(ne.fetch("/", &[]).status, 401);
    assert_eq!(ne.fetch("/", &[("Authorization", &right)]).status, 200);
}

// ----------------------------------------------------------------------- TLS

fn tls_config_text(extra: &str) -> String {
    format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}")
}

#[test]
fn https_with_the_ca_works_and_plain_http_does_not() {
    let pki = Pki::new();
    // Relative cert paths are resolved against the web config's directory.
    let cfg = web_config(pki.dir.path(), &tls_config_text(""));
    let ne = start_with_web_config(&cfg, &[]);

    let agent = pki.client(None, &[]);
    let r = fetch(&agent, &ne.https_url("/metrics"), &[]).expect("HTTPS with the CA");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("node_load1 "));
    // The certificate is valid for the name too.
    let r =
        fetch(&agent, &format!("https://localhost:{}/", ne.port()), &[]).expect("HTTPS by name");
    assert_eq!(r.status, 200);

    // A client that does not trust our CA refuses the server.
    let stranger = Pki::new();
    let err = fetch(&stranger.client(None, &[]), &ne.https_url("/metrics"), &[]);
    assert!(err.is_err(), "a client without the CA connected: {err:?}");

    // Plain HTTP to the TLS listener gets no HTTP answer.
    let answer = common::raw_exchange(
        &ne.addr,
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(
        !answer.starts_with(b"HTTP/1.1 200")
            && !String::from_utf8_lossy(&answer).contains("node_load1"),
        "plain HTTP got metrics: {}",
        String::from_utf8_lossy(&answer)
    );
    let plain = common::fetch(&common::http_agent(), &ne.url("/metrics"), &[]);
    assert!(
        !matches!(&plain, Ok(r) if r.status == 200),
        "plain HTTP got a 200: {plain:?}"
    );

    // The server keeps serving after those failed handshakes.
    let r = fetch(&agent, &ne.https_url("/metrics"), &[]).unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn tls_and_basic_auth_together() {
    let pki = Pki::new();
    let cfg = web_config(
        pki.dir.path(),
        &format!(
            "{}basic_auth_users:\n  prometheus: '{}'\n",
            tls_config_text(""),
            bcrypt_hash("scrape-me")
        ),
    );
    let ne = start_with_web_config(&cfg, &[]);
    let agent = pki.client(None, &[]);
    let url = ne.https_url("/metrics");

    let r = fetch(&agent, &url, &[]).unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Basic"));
    let r = fetch(
        &agent,
        &url,
        &[("Authorization", &basic("prometheus", "nope"))],
    )
    .unwrap();
    assert_eq!(r.status, 401);
    let r = fetch(
        &agent,
        &url,
        &[("Authorization", &basic("prometheus", "scrape-me"))],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("node_memory_MemTotal_bytes "));
}

#[test]
fn require_and_verify_client_cert() {
    let pki = Pki::new();
    let cfg = web_config(
        pki.dir.path(),
        &tls_config_text(
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
        ),
    );
    let ne = start_with_web_config(&cfg, &[]);
    let url = ne.https_url("/metrics");

    // TLS 1.2 and 1.3 fail at different moments (handshake or first read);
    // both must fail.
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let r = fetch(&pki.client(None, &[version]), &url, &[]);
        assert!(r.is_err(), "{version:?}: no client cert, yet: {r:?}");
    }

    // A certificate from another CA is refused too.
    let other = Pki::new();
    let r = fetch(
        &tls_client(&pki, Some((&other.client_cert_pem, &other.client_key_pem))),
        &url,
        &[],
    );
    assert!(r.is_err(), "client cert from a foreign CA accepted: {r:?}");

    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let agent = pki.client(
            Some((&pki.client_cert_pem, &pki.client_key_pem)),
            &[version],
        );
        let r = fetch(&agent, &url, &[]).unwrap_or_else(|e| panic!("{version:?}: {e}"));
        assert_eq!(r.status, 200);
        assert!(r.text().contains("node_cpu_seconds_total"));
    }
}

/// A client that trusts `pki`'s CA and presents `cert`.
fn tls_client(pki: &Pki, cert: Option<(&str, &str)>) -> ureq::Agent {
    common::tls_agent(&pki.ca_pem, cert, &[])
}

#[test]
fn client_allowed_sans_restricts_verified_clients() {
    let pki = Pki::new();
    let cfg = web_config(
        pki.dir.path(),
        &tls_config_text(
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  \
             client_allowed_sans: [\"prometheus.example\", \"10.0.0.9\"]\n",
        ),
    );
    let ne = start_with_web_config(&cfg, &[]);
    let url = ne.https_url("/metrics");

    // Signed by the right CA, but not one of the allowed names.
    let r = fetch(
        &tls_client(&pki, Some((&pki.client_cert_pem, &pki.client_key_pem))),
        &url,
        &[],
    );
    assert!(
        r.is_err(),
        "a client outside client_allowed_sans got in: {r:?}"
    );

    for names in [&["prometheus.example"][..], &["10.0.0.9"][..]] {
        let (cert, key) = pki.leaf(names, rcgen::ExtendedKeyUsagePurpose::ClientAuth);
        let r = fetch(&tls_client(&pki, Some((&cert, &key))), &url, &[])
            .unwrap_or_else(|e| panic!("{names:?}: {e}"));
        assert_eq!(r.status, 200);
    }
}

#[test]
fn min_version_tls13_refuses_a_tls12_only_client() {
    let pki = Pki::new();
    let cfg = web_config(pki.dir.path(), &tls_config_text("  min_version: TLS13\n"));
    let ne = start_with_web_config(&cfg, &[]);
    let url = ne.https_url("/metrics");
    let r = fetch(&pki.client(None, &[&rustls::version::TLS12]), &url, &[]);
    assert!(r.is_err(), "TLS 1.2 client accepted: {r:?}");
    let r = fetch(&pki.client(None, &[&rustls::version::TLS13]), &url, &[]).unwrap();
    assert_eq!(r.status, 200);
}

/// The protocol the server picks by ALPN when offered h2 and http/1.1.
fn negotiated_alpn(pki: &Pki, addr: &str) -> Option<Vec<u8>> {
    use std::io::Write as _;
    let mut cfg = common::tls_client_config(&pki.ca_pem, None, &[]);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(cfg), name).unwrap();
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).unwrap();
    }
    let proto = conn.alpn_protocol().map(|p| p.to_vec());
    conn.send_close_notify();
    let _ = conn.complete_io(&mut sock);
    let _ = sock.flush();
    proto
}

#[test]
fn http2_is_offered_unless_disabled() {
    let pki = Pki::new();
    let cfg = web_config(pki.dir.path(), &tls_config_text(""));
    let ne = start_with_web_config(&cfg, &[]);
    assert_eq!(negotiated_alpn(&pki, &ne.addr).as_deref(), Some(&b"h2"[..]));
    drop(ne);

    let cfg = web_config(
        pki.dir.path(),
        &tls_config_text("http_server_config:\n  http2: false\n"),
    );
    let ne = start_with_web_config(&cfg, &[]);
    assert_eq!(
        negotiated_alpn(&pki, &ne.addr).as_deref(),
        Some(&b"http/1.1"[..]),
        "http2: false must not negotiate h2"
    );
    let r = fetch(&pki.client(None, &[]), &ne.https_url("/metrics"), &[]).unwrap();
    assert_eq!(r.status, 200);
}

// ------------------------------------------------------ bad web config files

/// Runs the binary with `--web.config.file=path` and returns its exit code
/// and stderr; the process must exit by itself.
fn startup_error(path: &Path) -> (i32, String) {
    let listen = format!("--web.listen-address=127.0.0.1:{}", common::free_port());
    let cfg = format!("--web.config.file={}", path.display());
    let args = [
        "--collector.disable-defaults",
        "--collector.loadavg",
        listen.as_str(),
        cfg.as_str(),
    ];
    common::run_to_exit_within(&args, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("{} was accepted: the exporter started", path.display()))
}

#[test]
fn bad_web_config_is_a_clear_startup_error() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "unknown-key.yml",
            "basic_auth_user:\n  alice: x\n",
            &["basic_auth_user"],
        ),
        (
            "unknown-tls-key.yml",
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  certfile: x\n",
            &["certfile"],
        ),
        (
            "missing-cert.yml",
            "tls_server_config:\n  cert_file: /nonexistent/dir/server.crt\n  key_file: server.key\n",
            &["cert_file", "/nonexistent/dir/server.crt"],
        ),
        (
            "missing-key.yml",
            "tls_server_config:\n  cert_file: server.crt\n",
            &["key_file"],
        ),
        (
            "plain-password.yml",
            "basic_auth_users:\n  alice: hunter2\n",
            &["alice", "bcrypt"],
        ),
        (
            "unparsable.yml",
            "tls_server_config:\n  cert_file: \"unterminated\n",
            &["line 2"],
        ),
        (
            "wrong-type.yml",
            "basic_auth_users: alice\n",
            &["basic_auth_users"],
        ),
        (
            "bad-auth-type.yml",
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: Sometimes\n",
            &["client_auth_type", "Sometimes"],
        ),
        (
            "bad-version.yml",
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS99\n",
            &["min_version", "TLS99"],
        ),
        (
            "ca-without-verify.yml",
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n",
            &["client_ca_file"],
        ),
        (
            "sans-without-required-cert.yml",
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n  client_allowed_sans: [a.example]\n",
            &["client_allowed_sans", "RequireAndVerifyClientCert"],
        ),
        (
            "not-pem.yml",
            "tls_server_config:\n  cert_file: web.yml\n  key_file: server.key\n",
            &["cert_file"],
        ),
        (
            "forbidden-header.yml",
            "http_server_config:\n  headers:\n    Content-Type: text/html\n",
            &["Content-Type"],
        ),
        (
            "bad-header-value.yml",
            "http_server_config:\n  headers:\n    X-Frame-Options: allowall\n",
            &["X-Frame-Options", "allowall"],
        ),
    ];
    for (name, text, needles) in cases {
        let p = pki.write(name, text);
        let (code, stderr) = startup_error(&p);
        assert_ne!(code, 0, "{name}: exited 0; stderr: {stderr}");
        assert!(
            stderr.contains(&p.display().to_string()),
            "{name}: stderr does not name the file: {stderr}"
        );
        for n in *needles {
            assert!(stderr.contains(n), "{name}: stderr lacks {n:?}: {stderr}");
        }
    }

    // A web config file that does not exist.
    let missing = dir.join("no-such-web.yml");
    let (code, stderr) = startup_error(&missing);
    assert_ne!(code, 0);
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    assert!(stderr.contains("No such file"), "{stderr}");
    assert_eq!(
        stderr.matches("No such file").count(),
        1,
        "cause repeated: {stderr}"
    );
}

#[test]
fn empty_or_tls_less_web_configs_serve_plain_http() {
    // As exporter-toolkit: an empty file, or a tls_server_config block that
    // sets no certificate, key or client auth, means plain HTTP.
    let dir = tempfile::tempdir().unwrap();
    for text in ["", "tls_server_config:\n  min_version: TLS12\n"] {
        let cfg = web_config(dir.path(), text);
        let ne = start_with_web_config(&cfg, &[]);
        let r = ne.fetch("/metrics", &[]);
        assert_eq!(r.status, 200, "{text:?}");
    }
}

// ------------------------------------------------------------------- headers

#[test]
fn configured_headers_are_added_to_every_response() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = web_config(
        dir.path(),
        &format!(
            "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    \
             X-Content-Type-Options: nosniff\n    \
             Strict-Transport-Security: max-age=31536000; includeSubDomains\n    \
             Content-Security-Policy: \"default-src 'self'\"\n\
             basic_auth_users:\n  alice: '{}'\n",
            bcrypt_hash("pw")
        ),
    );
    let ne = start_with_web_config(&cfg, &[]);
    let auth = basic("alice", "pw");
    let check = |r: &Reply, what: &str| {
        assert_eq!(r.header("x-frame-options"), Some("deny"), "{what}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
        assert_eq!(
            r.header("strict-transport-security"),
            Some("max-age=31536000; includeSubDomains"),
            "{what}"
        );
        assert_eq!(
            r.header("content-security-policy"),
            Some("default-src 'self'"),
            "{what}"
        );
    };
    let r = ne.fetch("/metrics", &[("Authorization", &auth)]);
    assert_eq!(r.status, 200);
    check(&r, "/metrics");
    let r = ne.fetch("/", &[("Authorization", &auth)]);
    assert_eq!(r.status, 200);
    check(&r, "/");
    let r = ne.fetch("/nope", &[("Authorization", &auth)]);
    assert_eq!(r.status, 404);
    check(&r, "404");
    let r = ne.fetch("/metrics", &[]);
    assert_eq!(r.status, 401);
    check(&r, "401");
}

// ------------------------------------------------------------------ /metrics

#[test]
fn default_content_type_is_text_0_0_4() {
    let ne = common::start(&light_args());
    let r = ne.fetch("/metrics", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(r.header("content-encoding"), None);
    let body = r.text();
    assert!(!body.contains("# EOF"));
    assert!(body.contains("# TYPE node_cpu_seconds_total counter"));
    // What Prometheus 2 sends when it does not want OpenMetrics.
    let r = ne.fetch(
        "/metrics",
        &[("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")],
    );
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
}

#[test]
fn openmetrics_when_asked() {
    let ne = common::start(&light_args());
    // Prometheus' own Accept header.
    let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let r = ne.fetch("/metrics", &[("Accept", accept)]);
    assert_eq!(r.status, 200);
    let ct = r.header("content-type").unwrap();
    assert!(
        ct.starts_with("application/openmetrics-text"),
        "content type {ct}"
    );
    let body = r.text();
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert_eq!(body.matches("# EOF").count(), 1);
    assert!(body.contains("# TYPE node_cpu_seconds counter"), "{body}");
}

#[test]
fn gzip_when_accepted() {
    let ne = common::start(&light_args());
    let r = ne.fetch("/metrics", &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(&r.body[..2], &[0x1f, 0x8b], "not a gzip stream");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_string(&mut text)
        .expect("valid gzip");
    assert!(text.contains("node_load1 "), "{text}");
    assert!(text.contains("node_memory_MemTotal_bytes "));

    // Prometheus' own header; and q=0 means "not gzip".
    let r = ne.fetch(
        "/metrics",
        &[("Accept-Encoding", "deflate, gzip;q=1.0, *;q=0.5")],
    );
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let r = ne.fetch("/metrics", &[("Accept-Encoding", "gzip;q=0")]);
    assert_eq!(r.header("content-encoding"), None);
    assert!(r.text().contains("node_load1 "));
}

#[test]
fn collect_and_exclude_filters() {
    let ne = common::start(&args_with(&["--web.disable-exporter-metrics".into()]));

    let r = ne.fetch("/metrics?collect[]=cpu", &[]);
    assert_eq!(r.status, 200);
    let body = r.text();
    for name in metric_names(&body) {
        assert!(
            name.starts_with("node_cpu_")
                || name.starts_with("node_scrape_collector_")
                || name == "node_exporter_build_info",
            "collect[]=cpu gave {name}"
        );
    }
    assert!(body.contains("node_cpu_seconds_total{"));
    assert!(body.contains("node_scrape_collector_success{collector=\"cpu\"} 1"));
    assert!(!body.contains("collector=\"meminfo\""));
    assert!(body.contains("node_exporter_build_info{"));

    // Percent-encoded brackets, as most HTTP clients send them, and two
    // collectors.
    let r = ne.fetch("/metrics?collect%5B%5D=cpu&collect%5B%5D=loadavg", &[]);
    assert_eq!(r.status, 200);
    let body = r.text();
    assert!(body.contains("node_load1 "));
    assert!(body.contains("node_cpu_seconds_total{"));
    assert!(!body.contains("node_memory_"));

    let r = ne.fetch("/metrics?exclude[]=cpu", &[]);
    assert_eq!(r.status, 200);
    let body = r.text();
    assert!(!body.contains("node_cpu_"), "exclude[]=cpu kept cpu");
    assert!(!body.contains("collector=\"cpu\""));
    assert!(body.contains("node_load1 "));
    assert!(body.contains("node_memory_MemTotal_bytes "));

    let r = ne.fetch("/metrics?collect[]=nosuch", &[]);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("nosuch"), "{}", r.text());
    // Known to the binary but not enabled is "missing" too, as node_exporter.
    let r = ne.fetch("/metrics?collect[]=diskstats", &[]);
    assert_eq!(r.status, 400);
    let r = ne.fetch("/metrics?collect[]=cpu&exclude[]=meminfo", &[]);
    assert_eq!(r.status, 400);
}

#[test]
fn custom_telemetry_path_and_landing_page() {
    let ne = common::start(&light_args());
    let r = ne.fetch("/", &[]);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.text().contains("href=\"/metrics\""), "{}", r.text());
    assert_eq!(ne.fetch("/nope", &[]).status, 404);
    drop(ne);

    let ne = common::start(&args_with(&["--web.telemetry-path=/custom".into()]));
    let r = ne.fetch("/custom", &[]);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("node_load1 "));
    assert_eq!(ne.fetch("/metrics", &[]).status, 404);
    let r = ne.fetch("/", &[]);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("href=\"/custom\""), "{}", r.text());
}

#[test]
fn exporter_metrics_are_present_and_plausible_by_default() {
    let ne = common::start(&light_args());
    // One scrape first, so that the request counter has something to count.
    assert_eq!(ne.fetch("/metrics", &[]).status, 200);
    let body = ne.fetch("/metrics", &[]).text();
    let rss = value(&body, "process_resident_memory_bytes").expect("process_resident_memory_bytes");
    assert!(
        (1e6..500e6).contains(&rss),
        "implausible resident memory {rss}"
    );
    let vsz = value(&body, "process_virtual_memory_bytes").unwrap();
    assert!(vsz >= rss);
    let cpu = value(&body, "process_cpu_seconds_total").unwrap();
    assert!((0.0..60.0).contains(&cpu), "cpu {cpu}");
    let fds = value(&body, "process_open_fds").unwrap();
    let max_fds = value(&body, "process_max_fds").unwrap();
    assert!(fds >= 3.0 && fds < max_fds, "fds {fds} of {max_fds}");
    let start = value(&body, "process_start_time_seconds").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - 300.0..now + 5.0).contains(&start),
        "start time {start}, now {now}"
    );
    assert!(value(&body, "process_virtual_memory_max_bytes").is_some());
    assert!(body.contains("# TYPE process_cpu_seconds_total counter"));
    let ok = value(
        &body,
        "promhttp_metric_handler_requests_total{code=\"200\"}",
    )
    .unwrap();
    assert!(ok >= 1.0, "requests_total 200 = {ok}");
    assert_eq!(
        value(&body, "promhttp_metric_handler_requests_in_flight"),
        Some(1.0)
    );
    assert_eq!(
        value(
            &body,
            "promhttp_metric_handler_requests_total{code=\"503\"}"
        ),
        Some(0.0)
    );
}

#[test]
fn disable_exporter_metrics_removes_process_and_promhttp() {
    let ne = common::start(&args_with(&["--web.disable-exporter-metrics".into()]));
    let body = ne.fetch("/metrics", &[]).text();
    for name in metric_names(&body) {
        assert!(
            !name.starts_with("process_")
                && !name.starts_with("promhttp_")
                && !name.starts_with("go_"),
            "{name} with --web.disable-exporter-metrics"
        );
    }
    assert!(body.contains("node_load1 "));
    assert!(body.contains("node_exporter_build_info{"));
}

// ------------------------------------------- slow collectors and max-requests

/// A procfs tree whose `loadavg` is a named pipe: the loadavg collector
/// blocks in open() until the test opens the other end, which makes a
/// scrape exactly as slow as the test wants.
struct SlowProc {
    dir: tempfile::TempDir,
}

impl SlowProc {
    fn new() -> SlowProc {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("loadavg");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        SlowProc { dir }
    }

    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut a = vec![
            "--collector.disable-defaults".to_string(),
            "--collector.loadavg".to_string(),
            format!("--path.procfs={}", self.dir.path().display()),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    /// Waits until the collector has the pipe open for reading (so a scrape
    /// is in progress), then returns the writing end.
    fn wait_for_reader(&self) -> std::fs::File {
        use std::os::unix::fs::OpenOptionsExt;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // O_NONBLOCK: fails with ENXIO while nobody reads.
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(self.dir.path().join("loadavg"))
            {
                Ok(f) => return f,
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {}
                Err(e) => panic!("opening the fifo: {e}"),
            }
            assert!(Instant::now() < deadline, "no scrape reached the collector");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn max_requests_answers_503_while_the_limit_is_reached() {
    let slow = SlowProc::new();
    let ne = common::start(&slow.args(&["--web.max-requests=1", "--collector.timeout=60s"]));
    let url = ne.url("/metrics");
    let first = std::thread::spawn(move || fetch(&common::http_agent(), &url, &[]).unwrap());

    let mut writer = slow.wait_for_reader();
    // The first scrape holds the only slot.
    let r = ne.fetch("/metrics", &[]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r
        .text()
        .contains("Limit of concurrent requests reached (1)"));
    // The landing page is not a scrape.
    assert_eq!(ne.fetch("/", &[]).status, 200);

    use std::io::Write as _;
    writer.write_all(b"0.25 0.50 0.75 1/123 4567\n").unwrap();
    drop(writer);
    let r = first.join().unwrap();
    assert_eq!(r.status, 200);
    let body = r.text();
    assert_eq!(value(&body, "node_load1"), Some(0.25), "{body}");
    assert_eq!(value(&body, "node_load15"), Some(0.75));

    // The slot is free again (exclude the pipe, which would block anew), and
    // the refusal was counted.
    let r = ne.fetch("/metrics?exclude[]=loadavg", &[]);
    assert_eq!(r.status, 200);
    let body = r.text();
    assert_eq!(
        value(
            &body,
            "promhttp_metric_handler_requests_total{code=\"503\"}"
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        value(
            &body,
            "promhttp_metric_handler_requests_total{code=\"500\"}"
        ),
        Some(0.0)
    );
}

#[test]
fn a_hung_collector_does_not_hang_the_scrape() {
    let slow = SlowProc::new();
    let ne = common::start(&slow.args(&["--collector.timeout=1s"]));
    let started = Instant::now();
    let r = ne.fetch("/metrics", &[]);
    let took = started.elapsed();
    assert_eq!(r.status, 200);
    assert!(
        took >= Duration::from_millis(900),
        "answered before the budget: {took:?}"
    );
    assert!(took < Duration::from_secs(8), "took {took:?}");
    let body = r.text();
    assert_eq!(
        value(
            &body,
            "node_scrape_collector_success{collector=\"loadavg\"}"
        ),
        Some(0.0),
        "{body}"
    );
    assert!(!body.contains("node_load1 "));

    // Still stuck: the next scrape reports it at once instead of piling up
    // another blocked thread.
    let started = Instant::now();
    let body = ne.fetch("/metrics", &[]).text();
    assert!(started.elapsed() < Duration::from_millis(800));
    assert_eq!(
        value(
            &body,
            "node_scrape_collector_success{collector=\"loadavg\"}"
        ),
        Some(0.0)
    );
}

#[test]
fn prometheus_scrape_timeout_header_lowers_the_budget() {
    let slow = SlowProc::new();
    let ne = common::start(&slow.args(&["--collector.timeout=60s"]));
    let started = Instant::now();
    let r = ne.fetch("/metrics", &[("X-Prometheus-Scrape-Timeout-Seconds", "2")]);
    let took = started.elapsed();
    assert_eq!(r.status, 200);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(
        value(
            &r.text(),
            "node_scrape_collector_success{collector=\"loadavg\"}"
        ),
        Some(0.0)
    );
}

#[test]
fn unsupported_methods_are_refused() {
    let ne = common::start(&light_args());
    let r = ureq::post(&ne.url("/metrics")).call();
    match r {
        Err(ureq::Error::Status(code, _)) => assert_eq!(code, 405),
        other => panic!("POST /metrics: {other:?}"),
    }
    let r = ureq::head(&ne.url("/metrics")).call().unwrap();
    assert_eq!(r.status(), 200);
}

// ------------------------------------------- rate_limit and live reloading

#[test]
fn rate_limit_answers_429_beyond_the_burst() {
    let dir = tempfile::tempdir().unwrap();
    // One token an hour: the third request within the test is always over.
    let cfg = web_config(dir.path(), "rate_limit:\n  interval: 1h\n  burst: 2\n");
    let ne = start_with_web_config(&cfg, &[]);
    assert_eq!(ne.fetch("/metrics", &[]).status, 200);
    assert_eq!(ne.fetch("/metrics", &[]).status, 200);
    let r = ne.fetch("/metrics", &[]);
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.text().contains("Too Many Requests"), "{}", r.text());
}

#[test]
fn bad_rate_limit_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = web_config(dir.path(), "rate_limit:\n  interval: soon\n  burst: 2\n");
    let (code, err) = startup_error(&cfg);
    assert_ne!(code, 0);
    assert!(err.contains("rate_limit.interval"), "{err}");
}

#[test]
fn a_rotated_certificate_is_served_without_a_restart() {
    let pki = Pki::new();
    let cfg = web_config(pki.dir.path(), &tls_config_text(""));
    let ne = start_with_web_config(&cfg, &[]);
    let old_ca_client = || pki.client(None, &[]);
    let r = fetch(&old_ca_client(), &ne.https_url("/metrics"), &[]).expect("first cert");
    assert_eq!(r.status, 200);

    // Same file names, a certificate from another CA: only clients
    // trusting the new CA can connect once it is in place.
    let next = Pki::new();
    let (cert, key) = next.leaf(
        &["127.0.0.1", "localhost"],
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    );
    pki.write("server.key", &key);
    pki.write("server.crt", &cert);
    let r = fetch(&next.client(None, &[]), &ne.https_url("/metrics"), &[])
        .expect("the rotated certificate is served");
    assert_eq!(r.status, 200);
    assert!(
        fetch(&old_ca_client(), &ne.https_url("/metrics"), &[]).is_err(),
        "the old certificate is still served"
    );
}

#[test]
fn a_changed_password_applies_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let users = |pw: &str| format!("basic_auth_users:\n  alice: '{}'\n", bcrypt_hash(pw));
    let cfg = web_config(dir.path(), &users("first"));
    let ne = start_with_web_config(&cfg, &[]);
    let status = |pw: &str| {
        ne.fetch("/metrics", &[("Authorization", &basic("alice", pw))])
            .status
    };
    assert_eq!(status("first"), 200);
    assert_eq!(status("second"), 401);

    web_config(dir.path(), &users("second"));
    assert_eq!(status("first"), 401, "the old password still works");
    assert_eq!(status("second"), 200);
}

#[test]
fn a_file_that_became_invalid_keeps_the_last_good_config() {
    let dir = tempfile::tempdir().unwrap();
    let users = |pw: &str| format!("basic_auth_users:\n  alice: '{}'\n", bcrypt_hash(pw));
    let cfg = web_config(dir.path(), &users("first"));
    let ne = start_with_web_config(&cfg, &[]);
    let status = |pw: Option<&str>| match pw {
        Some(pw) => {
            ne.fetch("/metrics", &[("Authorization", &basic("alice", pw))])
                .status
        }
        None => ne.fetch("/metrics", &[]).status,
    };
    assert_eq!(status(Some("first")), 200);

    // Broken YAML, then a plain-text password: both refused, both logged,
    // and the server keeps the last good users (it never opens up).
    for broken in [
        "basic_auth_users: [\n",
        "basic_auth_users:\n  alice: plain\n",
    ] {
        web_config(dir.path(), broken);
        assert_eq!(status(None), 401);
        assert_eq!(status(Some("first")), 200);
        assert_eq!(status(Some("plain")), 401);
    }
    let log = ne.stderr();
    assert!(
        log.contains("keeping the last good config") && log.contains("bcrypt"),
        "{log}"
    );

    // Fixed again: the new file applies.
    web_config(dir.path(), &users("second"));
    assert_eq!(status(Some("second")), 200);
    assert_eq!(status(Some("first")), 401);
}
