//! The two probe families of blackbox_exporter versions later than
//! Debian's 0.23, which `probe_blackbox_side_by_side.rs` therefore cannot
//! compare value for value (it checks where the cipher appears and the
//! timeout against what 0.23 logs). Here they are held to blackbox's
//! documented behaviour:
//!
//! - `probe_tls_cipher_info{cipher}`: the cipher suite negotiated, named as
//!   Go's `tls.CipherSuiteName` (the IANA name), written by the http prober
//!   when the final response came over TLS and by the tcp prober after the
//!   handshake of `tls: true` and of each `starttls`; never on a plain
//!   connection nor on a failed handshake.
//! - `probe_timeout_seconds`: the timeout the probe ran with (blackbox's
//!   `getTimeout`: the module's, within Prometheus' scrape timeout less
//!   0.5 s), on every probe of every prober, failed ones too.
//!
//! The TLS servers here offer one cipher suite each, so the name is known.

mod common;

use std::net::SocketAddr;

use exporter_toolkit::exposition::{encode, Format};
use node_exporter::probe::{Modules, Prober};
use rustls::crypto::ring::cipher_suite;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A server speaking only `version` with only `suite`.
fn one_suite(
    pki: &common::Pki,
    suite: rustls::SupportedCipherSuite,
    version: &'static rustls::SupportedProtocolVersion,
) -> TlsAcceptor {
    let (certs, key) = pki.server_cert();
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![suite];
    common::tls_acceptor(certs, key, provider, &[version], &[])
}

/// Answers one HTTP/1.1 request per connection: `/to-plain` redirects to
/// `plain`, anything else is 200.
async fn http_server(listener: TcpListener, tls: Option<TlsAcceptor>, plain: Option<SocketAddr>) {
    async fn answer(s: Box<dyn common::Conn>, plain: Option<SocketAddr>) {
        let mut r = BufReader::new(s);
        let mut first = String::new();
        if r.read_line(&mut first).await.is_err() {
            return;
        }
        loop {
            let mut line = String::new();
            match r.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {}
            }
        }
        let reply = match plain {
            Some(p) if first.contains(" /to-plain ") => format!(
                "HTTP/1.1 302 Found\r\nLocation: http://{p}/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
            _ => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_string(),
        };
        let _ = r.get_mut().write_all(reply.as_bytes()).await;
        let _ = r.get_mut().shutdown().await;
    }
    common::serve_each(listener, tls, move |s| answer(s, plain)).await
}

/// "220 ready", then on "STARTTLS" "220 go" and a TLS handshake, then
/// "250 ok" over TLS; with `tls_first` the handshake comes first and
/// "250 ok" at once.
async fn line_server(listener: TcpListener, tls: TlsAcceptor, tls_first: bool) {
    async fn ok(mut s: Box<dyn common::Conn>) {
        let _ = s.write_all(b"250 ok\r\n").await;
        let _ = s.shutdown().await;
    }
    async fn starttls(s: Box<dyn common::Conn>, tls: TlsAcceptor) {
        let mut r = BufReader::new(s);
        if r.get_mut().write_all(b"220 ready\r\n").await.is_err() {
            return;
        }
        let mut line = String::new();
        if r.read_line(&mut line).await.is_err() || line.trim_end() != "STARTTLS" {
            return;
        }
        if r.get_mut().write_all(b"220 go\r\n").await.is_err() {
            return;
        }
        if let Ok(s) = tls.accept(r.into_inner()).await {
            ok(Box::new(s)).await;
        }
    }
    if tls_first {
        common::serve_each(listener, Some(tls), ok).await
    } else {
        common::serve_each(listener, None, move |s| starttls(s, tls.clone())).await
    }
}

async fn listen(
    serve: impl FnOnce(TcpListener) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(serve(l));
    addr
}

/// The probe's exposition.
async fn probe(yaml: &str, module: &str, target: &str, header: Option<f64>) -> String {
    let modules = Modules::parse(yaml).unwrap_or_else(|e| panic!("{e:#}\n{yaml}"));
    let p = Prober::new(modules)
        .probe_debug(Some(target), Some(module), header)
        .await
        .unwrap();
    encode(&p.metrics.finish().unwrap(), Format::Text)
}

fn cipher_lines(metrics: &str) -> Vec<&str> {
    metrics
        .lines()
        .filter(|l| l.starts_with("probe_tls_cipher_info{"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cipher_where_blackbox_writes_it_named_as_go() {
    let pki = common::Pki::new();
    let tls13 = one_suite(
        &pki,
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        &rustls::version::TLS13,
    );
    let tls12 = one_suite(
        &pki,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        &rustls::version::TLS12,
    );
    let plain = listen(|l| Box::pin(http_server(l, None, None))).await;
    let (a, b) = (tls13.clone(), tls12.clone());
    let https13 = listen(move |l| Box::pin(http_server(l, Some(a), Some(plain)))).await;
    let https12 = listen(move |l| Box::pin(http_server(l, Some(b), None))).await;
    let (a, b) = (tls13.clone(), tls12.clone());
    let tcp_tls = listen(move |l| Box::pin(line_server(l, a, true))).await;
    let starttls = listen(move |l| Box::pin(line_server(l, b, false))).await;

    let ca = pki.path("ca.crt");
    let ca = ca.display();
    let yaml = format!(
        r#"modules:
  https:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      tls_config: {{ca_file: "{ca}"}}
  https_untrusted:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
  tcp_tls:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      tls: true
      tls_config: {{ca_file: "{ca}"}}
      query_response: [{{expect: "^250 ok"}}]
  tcp_starttls:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      tls_config: {{ca_file: "{ca}"}}
      query_response:
        - expect: "^220 ready"
        - send: STARTTLS
        - expect: "^220 go"
        - starttls: true
        - expect: "^250 ok"
  tcp_plain:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      query_response: [{{expect: "^220 ready"}}]
"#
    );
    let cases: [(&str, String, bool, &[&str]); 8] = [
        (
            "https",
            format!("https://{https13}/"),
            true,
            &["probe_tls_cipher_info{cipher=\"TLS_CHACHA20_POLY1305_SHA256\"} 1"],
        ),
        (
            "https",
            format!("https://{https12}/"),
            true,
            &["probe_tls_cipher_info{cipher=\"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256\"} 1"],
        ),
        // Redirected from TLS to plain HTTP: the final response is not
        // over TLS.
        ("https", format!("https://{https13}/to-plain"), true, &[]),
        ("https", format!("http://{plain}/"), true, &[]),
        // A handshake that fails (unknown CA): no connection state.
        ("https_untrusted", format!("https://{https13}/"), false, &[]),
        (
            "tcp_tls",
            tcp_tls.to_string(),
            true,
            &["probe_tls_cipher_info{cipher=\"TLS_CHACHA20_POLY1305_SHA256\"} 1"],
        ),
        (
            "tcp_starttls",
            starttls.to_string(),
            true,
            &["probe_tls_cipher_info{cipher=\"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256\"} 1"],
        ),
        ("tcp_plain", starttls.to_string(), true, &[]),
    ];
    for (module, target, success, want) in cases {
        let m = probe(&yaml, module, &target, None).await;
        assert_eq!(
            m.contains("\nprobe_success 1\n"),
            success,
            "{module} {target}:\n{m}"
        );
        assert_eq!(cipher_lines(&m), want, "{module} {target}:\n{m}");
        if !want.is_empty() {
            assert!(
                m.contains("# HELP probe_tls_cipher_info Returns the TLS cipher negotiated during handshake\n# TYPE probe_tls_cipher_info gauge\n"),
                "{m}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_on_every_probe_of_every_prober() {
    // Closed ports: each probe fails at once, and still says its timeout.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let yaml = r#"modules:
  http: {prober: http, timeout: 2s, http: {preferred_ip_protocol: ip4}}
  tcp: {prober: tcp, timeout: 2s, tcp: {preferred_ip_protocol: ip4}}
  dns: {prober: dns, timeout: 2s, dns: {query_name: a.test, transport_protocol: tcp, preferred_ip_protocol: ip4}}
  grpc: {prober: grpc, timeout: 2s, grpc: {preferred_ip_protocol: ip4}}
  icmp: {prober: icmp, timeout: 2s, icmp: {preferred_ip_protocol: ip4}}
  no_timeout: {prober: tcp, tcp: {preferred_ip_protocol: ip4}}
"#;
    for (module, target) in [
        ("http", format!("http://{closed}/")),
        ("tcp", closed.to_string()),
        ("dns", closed.to_string()),
        ("grpc", closed.to_string()),
        // Answers at once (the only one that succeeds).
        ("icmp", "127.0.0.1".to_string()),
    ] {
        // (Prometheus' header, the timeout blackbox runs with.)
        for (header, want) in [
            (None, "2"),
            (Some(10.0), "2"),
            (Some(2.0), "1.5"),
            // Below the 0.5 s offset: the module's own.
            (Some(0.25), "2"),
        ] {
            let m = probe(yaml, module, &target, header).await;
            let success = if module == "icmp" { 1 } else { 0 };
            assert!(
                m.contains(&format!("\nprobe_success {success}\n")),
                "{module}:\n{m}"
            );
            assert!(
                m.contains(&format!(
                    "# HELP probe_timeout_seconds Returns how long the probe timeout is in seconds\n\
                     # TYPE probe_timeout_seconds gauge\nprobe_timeout_seconds {want}\n"
                )),
                "{module} with header {header:?}: want {want}\n{m}"
            );
        }
    }
    // Without `timeout` nor header: blackbox's 120 s less its offset.
    let m = probe(yaml, "no_timeout", &closed.to_string(), None).await;
    assert!(m.contains("\nprobe_timeout_seconds 119.5\n"), "{m}");
    let m = probe(yaml, "no_timeout", &closed.to_string(), Some(4.0)).await;
    assert!(m.contains("\nprobe_timeout_seconds 3.5\n"), "{m}");
}
