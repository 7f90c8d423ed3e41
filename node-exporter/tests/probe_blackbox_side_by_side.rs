//! Our `/probe` next to the real blackbox_exporter (Debian 12's package
//! `prometheus-blackbox-exporter`, version 0.23.0, installed by `make
//! deps`): both load the same modules file and probe the same targets,
//! which this test runs itself on loopback (a TCP banner server speaking
//! STARTTLS, the same over TLS, two DNS servers (one answering, one
//! SERVFAIL), a gRPC health server in clear and over TLS, an HTTP(S)
//! server) plus ICMP to 127.0.0.1 and ::1. For every module and target
//! the two must agree on probe_success (and on what the case expects),
//! the metric families, their types and label names, the series, and the
//! value of every series that does not measure time.
//!
//! Where blackbox 0.23 is wrong (a bug later versions fixed), the series
//! allowed to differ are listed in [`accepted`] with the reason.
//!
//! Two families of later blackbox versions are missing from 0.23, so their
//! values cannot be compared here ([`NEWER`]; `tests/probe_newer_metrics.rs`
//! checks them against blackbox's documented behaviour). What 0.23 can
//! still tell is checked: `probe_tls_cipher_info` must be where later
//! versions write it, i.e. wherever 0.23's http and tcp probers write
//! `probe_tls_version_info` (grpc's never has it), and
//! `probe_timeout_seconds` must be the `timeout_seconds` 0.23 logs for the
//! same module and `X-Prometheus-Scrape-Timeout-Seconds`.
//!
//! Certificates come from the test's own CA (rcgen, valid 1975-4096), so
//! nothing depends on the day or the time of day. HELP texts are not
//! compared: blackbox's vary between its own probers.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{rdata, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use node_exporter::probe::grpc::{HealthCheckRequest, HealthCheckResponse};
use prost::Message as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};
use tokio_rustls::TlsAcceptor;

const BLACKBOX: &str = "/usr/bin/prometheus-blackbox-exporter";

/// Families whose values are durations: present on both sides, values
/// not compared.
const TIMINGS: &[&str] = &[
    "probe_duration_seconds",
    "probe_dns_lookup_time_seconds",
    "probe_icmp_duration_seconds",
    "probe_dns_duration_seconds",
    "probe_grpc_duration_seconds",
    "probe_http_duration_seconds",
];

/// Families of blackbox versions after 0.23 (probe_tls_cipher_info;
/// probe_timeout_seconds, blackbox_exporter pull request 1571): ours only.
const NEWER: &[&str] = &["probe_tls_cipher_info", "probe_timeout_seconds"];

// ------------------------------------------------------------ the servers

/// A CA that expires (2070) before the server certificate it signed
/// (2080), as Go and rustls both accept: the sent chain's earliest expiry
/// and the verified chain's (which ends in the CA) then differ. Returns
/// the CA's path and the server's acceptor.
fn short_ca(dir: &Path) -> (std::path::PathBuf, TlsAcceptor) {
    use rcgen::{date_time_ymd, BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "short CA");
    ca.distinguished_name
        .push(DnType::OrganizationName, "Probe, Test");
    ca.not_before = date_time_ymd(2000, 1, 1);
    ca.not_after = date_time_ymd(2070, 1, 1);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let mut leaf =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "a.test".to_string()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "leaf");
    leaf.not_before = date_time_ymd(2000, 1, 1);
    leaf.not_after = date_time_ymd(2080, 1, 1);
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let ca_path = dir.join("short-ca.crt");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    let acceptor = common::tls_acceptor(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        rustls::crypto::ring::default_provider(),
        &[],
        &[],
    );
    (ca_path, acceptor)
}

/// A line protocol in the manner of SMTP: a greeting, "HELLO x" answered
/// "250 hello x", "QUIT" answered "221 bye", and (when allowed) "STARTTLS"
/// answered "220 go ahead", after which the caller gets the stream back to
/// upgrade it.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    s: S,
    greeting: &str,
    starttls: bool,
) -> Option<S> {
    let mut r = BufReader::new(s);
    r.get_mut()
        .write_all(format!("{greeting}\r\n").as_bytes())
        .await
        .ok()?;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        let reply = if line == "STARTTLS" && starttls {
            r.get_mut().write_all(b"220 go ahead\r\n").await.ok()?;
            return Some(r.into_inner());
        } else if let Some(who) = line.strip_prefix("HELLO ") {
            format!("250 hello {who}\r\n")
        } else if line == "QUIT" {
            let _ = r.get_mut().write_all(b"221 bye\r\n").await;
            return None;
        } else {
            "500 what?\r\n".to_string()
        };
        r.get_mut().write_all(reply.as_bytes()).await.ok()?;
    }
}

async fn banner_server(listener: TcpListener, acceptor: TlsAcceptor, tls_first: bool) {
    if tls_first {
        common::serve_each(listener, Some(acceptor), |tls| async move {
            session(tls, "220 banner ready", false).await;
        })
        .await
    } else {
        common::serve_each(listener, None, move |tcp| {
            let acceptor = acceptor.clone();
            async move {
                if let Some(tcp) = session(tcp, "220 banner ready", true).await {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        session(tls, "250 secure", false).await;
                    }
                }
            }
        })
        .await
    }
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// The answering DNS server's zone: example.test (A, SOA), else NXDOMAIN.
/// The SERVFAIL one answers every query so.
fn dns_answer(query: &[u8], servfail: bool) -> Option<Vec<u8>> {
    let q = Message::from_bytes(query).ok()?;
    let mut r = Message::new();
    r.set_id(q.id())
        .set_message_type(MessageType::Response)
        .set_op_code(q.op_code())
        .set_recursion_desired(q.recursion_desired())
        .set_recursion_available(true)
        .add_queries(q.queries().to_vec());
    let question = q.queries().first()?;
    let soa = || {
        Record::from_rdata(
            name("example.test."),
            300,
            RData::SOA(rdata::SOA::new(
                name("ns.example.test."),
                name("admin.example.test."),
                2_026_120_501,
                3600,
                600,
                86_400,
                300,
            )),
        )
    };
    if servfail {
        r.set_response_code(ResponseCode::ServFail);
    } else if question.name() == &name("example.test.") {
        r.set_authoritative(true);
        match question.query_type() {
            RecordType::A => {
                for ip in ["10.0.0.1", "10.0.0.2"] {
                    r.add_answer(Record::from_rdata(
                        name("example.test."),
                        300,
                        RData::A(ip.parse().unwrap()),
                    ));
                }
                r.add_name_server(Record::from_rdata(
                    name("example.test."),
                    300,
                    RData::NS(rdata::NS(name("ns.example.test."))),
                ));
                r.add_additional(Record::from_rdata(
                    name("ns.example.test."),
                    300,
                    RData::A("10.0.0.53".parse().unwrap()),
                ));
            }
            RecordType::SOA => {
                r.add_answer(soa());
            }
            RecordType::AAAA => {
                r.add_answer(Record::from_rdata(
                    name("example.test."),
                    300,
                    RData::AAAA("2001:db8::1".parse().unwrap()),
                ));
            }
            RecordType::TXT => {
                r.add_answer(Record::from_rdata(
                    name("example.test."),
                    300,
                    RData::TXT(rdata::TXT::new(vec![
                        "v=spf1 -all".into(),
                        "say \"hi\" \\ \u{1}".into(),
                    ])),
                ));
            }
            _ => {
                r.add_name_server(soa());
            }
        }
    } else {
        r.set_response_code(ResponseCode::NXDomain);
        r.add_name_server(soa());
    }
    r.to_bytes().ok()
}

/// DNS over a stream: each message after its two-byte length.
async fn dns_stream<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, servfail: bool) {
    loop {
        let mut len = [0u8; 2];
        if s.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
        if s.read_exact(&mut q).await.is_err() {
            return;
        }
        let Some(a) = dns_answer(&q, servfail) else {
            return;
        };
        let mut framed = (a.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&a);
        if s.write_all(&framed).await.is_err() {
            return;
        }
    }
}

/// DNS over TLS (RFC 7858), answering as the plain server.
async fn dot_server(listener: TcpListener, acceptor: TlsAcceptor) {
    common::serve_each(listener, Some(acceptor), |tls| dns_stream(tls, false)).await
}

async fn dns_server(udp: UdpSocket, tcp: TcpListener, servfail: bool) {
    tokio::spawn(common::serve_each(tcp, None, move |s| {
        dns_stream(s, servfail)
    }));
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, from)) = udp.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(a) = dns_answer(&buf[..n], servfail) {
            let _ = udp.send_to(&a, from).await;
        }
    }
}

type GrpcBody =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// grpc.health.v1 Check: "" is SERVING, "down" NOT_SERVING, any other
/// service NOT_FOUND (what grpc-go's health server says).
async fn health(
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<GrpcBody>, Infallible> {
    let path = req.uri().path().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let trailers = |code: u32| {
        let mut t = http::HeaderMap::new();
        t.insert("grpc-status", code.to_string().parse().unwrap());
        t
    };
    let reply = |frames: Vec<Frame<Bytes>>| {
        hyper::Response::builder()
            .header("content-type", "application/grpc")
            .body(StreamBody::new(futures_util::stream::iter(
                frames.into_iter().map(Ok).collect::<Vec<_>>(),
            )))
            .unwrap()
    };
    if path != "/grpc.health.v1.Health/Check" || body.len() < 5 {
        return Ok(reply(vec![Frame::trailers(trailers(12))]));
    }
    let Ok(request) = HealthCheckRequest::decode(&body[5..]) else {
        return Ok(reply(vec![Frame::trailers(trailers(13))]));
    };
    let status = match request.service.as_str() {
        "" => 1,
        "down" => 2,
        _ => return Ok(reply(vec![Frame::trailers(trailers(5))])),
    };
    let message = HealthCheckResponse { status }.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    Ok(reply(vec![
        Frame::data(Bytes::from(framed)),
        Frame::trailers(trailers(0)),
    ]))
}

async fn grpc_server(listener: TcpListener, acceptor: Option<TlsAcceptor>) {
    common::serve_each(listener, acceptor, |conn| async move {
        let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        let svc = hyper::service::service_fn(health);
        let _ = builder.serve_connection(TokioIo::new(conn), svc).await;
    })
    .await
}

/// A page with a Last-Modified at "/", redirects to it ("/moved") and to
/// themselves ("/loop"), a 300 Go does not follow, a 404 elsewhere.
async fn http_server(listener: TcpListener, acceptor: Option<TlsAcceptor>) {
    async fn answer<S: AsyncRead + AsyncWrite + Unpin>(s: S) {
        let mut r = BufReader::new(s);
        let mut request = String::new();
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match r.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) if request.is_empty() => request = line,
                Ok(_) => head.push_str(&line.to_ascii_lowercase()),
            }
        }
        let path = request.split(' ').nth(1).unwrap_or("");
        // The credentials the auth modules send (prober:pw for basic).
        let authorized = ["bearer tok", "token abc", "basic chjvymvyonb3"]
            .iter()
            .any(|a| head.contains(&format!("authorization: {a}\r\n")));
        let gzipped = gzip_reply();
        let reply: &[u8] = match path {
            "/auth" if authorized => {
                b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nwelcome"
            }
            "/auth" => {
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
            "/gzip" => &gzipped,
            "/" => {
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\
                  Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nX-Kind: page\r\n\
                  Connection: close\r\n\r\nhello world"
            }
            "/moved" => {
                b"HTTP/1.1 302 Found\r\nLocation: /\r\nContent-Length: 5\r\n\
                  Connection: close\r\n\r\nthere"
            }
            "/loop" => {
                b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /loop\r\n\
                  Content-Length: 0\r\nConnection: close\r\n\r\n"
            }
            "/300" => {
                b"HTTP/1.1 300 Multiple Choices\r\nLocation: /\r\n\
                  Content-Length: 0\r\nConnection: close\r\n\r\n"
            }
            _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope",
        };
        let _ = r.get_mut().write_all(reply).await;
        let _ = r.get_mut().shutdown().await;
    }
    common::serve_each(listener, acceptor, answer).await
}

/// A gzip-encoded page: "hello compressed world".
fn gzip_reply() -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b"hello compressed world").unwrap();
    let body = e.finish().unwrap();
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(&body);
    r
}

/// An HTTP proxy answering every plain request itself (200, "proxied")
/// and tunnelling CONNECT to its target.
async fn proxy_server(listener: TcpListener) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut r = BufReader::new(tcp);
            let mut request = String::new();
            loop {
                let mut line = String::new();
                match r.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) if line == "\r\n" => break,
                    Ok(_) if request.is_empty() => request = line,
                    Ok(_) => {}
                }
            }
            if let Some(rest) = request.strip_prefix("CONNECT ") {
                let target = rest.split(' ').next().unwrap_or("").to_string();
                let Ok(mut up) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                let mut client = r.into_inner();
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
            } else {
                let _ = r
                    .get_mut()
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nproxied",
                    )
                    .await;
            }
        });
    }
}

struct Targets {
    proxy: SocketAddr,
    banner4: SocketAddr,
    banner6: SocketAddr,
    banner_tls: SocketAddr,
    banner_short_ca: SocketAddr,
    dns: SocketAddr,
    dns_servfail: SocketAddr,
    dns6: SocketAddr,
    grpc6: SocketAddr,
    http6: SocketAddr,
    dot: SocketAddr,
    dns_silent: SocketAddr,
    grpc: SocketAddr,
    grpc_tls: SocketAddr,
    http: SocketAddr,
    https: SocketAddr,
}

/// A UDP and a TCP socket on the same loopback port.
async fn udp_and_tcp(host: &str) -> (UdpSocket, TcpListener) {
    loop {
        let udp = UdpSocket::bind((host, 0)).await.unwrap();
        let port = udp.local_addr().unwrap().port();
        if let Ok(tcp) = TcpListener::bind((host, port)).await {
            return (udp, tcp);
        }
    }
}

fn start_servers(pki: &common::Pki, short_ca: TlsAcceptor) -> Targets {
    let plain_tls = pki.acceptor(&[]);
    let h2_tls = pki.acceptor(&[b"h2"]);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let bind = |a: &'static str| async move { TcpListener::bind(a).await.unwrap() };
            let banner4 = bind("127.0.0.1:0").await;
            let banner6 = bind("[::1]:0").await;
            let banner_tls = bind("127.0.0.1:0").await;
            let banner_short_ca = bind("127.0.0.1:0").await;
            let (dns_udp, dns_tcp) = udp_and_tcp("127.0.0.1").await;
            let (dns6_udp, dns6_tcp) = udp_and_tcp("::1").await;
            let (sf_udp, sf_tcp) = udp_and_tcp("127.0.0.1").await;
            let dot = bind("127.0.0.1:0").await;
            // Bound, so queries are not refused, and never read.
            let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let grpc = bind("127.0.0.1:0").await;
            let grpc6 = bind("[::1]:0").await;
            let http6 = bind("[::1]:0").await;
            let grpc_tls = bind("127.0.0.1:0").await;
            let http = bind("127.0.0.1:0").await;
            let https = bind("127.0.0.1:0").await;
            let proxy = bind("127.0.0.1:0").await;
            let addr = |l: &TcpListener| l.local_addr().unwrap();
            tx.send(Targets {
                proxy: addr(&proxy),
                banner4: addr(&banner4),
                banner6: addr(&banner6),
                banner_tls: addr(&banner_tls),
                banner_short_ca: addr(&banner_short_ca),
                dns: dns_udp.local_addr().unwrap(),
                dns_servfail: sf_udp.local_addr().unwrap(),
                dns6: dns6_udp.local_addr().unwrap(),
                grpc6: addr(&grpc6),
                http6: addr(&http6),
                dot: addr(&dot),
                dns_silent: silent.local_addr().unwrap(),
                grpc: addr(&grpc),
                grpc_tls: addr(&grpc_tls),
                http: addr(&http),
                https: addr(&https),
            })
            .unwrap();
            tokio::spawn(banner_server(banner4, plain_tls.clone(), false));
            tokio::spawn(banner_server(banner6, plain_tls.clone(), false));
            tokio::spawn(banner_server(banner_tls, plain_tls.clone(), true));
            tokio::spawn(banner_server(banner_short_ca, short_ca, true));
            tokio::spawn(dns_server(dns_udp, dns_tcp, false));
            tokio::spawn(dns_server(sf_udp, sf_tcp, true));
            tokio::spawn(dns_server(dns6_udp, dns6_tcp, false));
            tokio::spawn(grpc_server(grpc6, None));
            tokio::spawn(http_server(http6, None));
            tokio::spawn(dot_server(dot, plain_tls.clone()));
            tokio::spawn(grpc_server(grpc, None));
            tokio::spawn(grpc_server(grpc_tls, Some(h2_tls)));
            tokio::spawn(http_server(http, None));
            tokio::spawn(http_server(https, Some(plain_tls)));
            tokio::spawn(proxy_server(proxy));
            let _silent = silent;
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

// ------------------------------------------------------------ the modules

fn modules(ca: &Path, short_ca: &Path, proxy: SocketAddr) -> String {
    // The credentials files of the http_*_file modules, beside the CA.
    let dir = ca.parent().unwrap();
    std::fs::write(dir.join("token"), "tok\n").unwrap();
    std::fs::write(dir.join("password"), "pw\n").unwrap();
    let dir = dir.display();
    let ca = ca.display();
    let short_ca = short_ca.display();
    format!(
        r#"modules:
  http_default_timeout:
    prober: http
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
  tcp_connect_ip6:
    prober: tcp
    timeout: 5s
  tcp_no_fallback:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip6
      ip_protocol_fallback: false
  tcp_banner:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      source_ip_address: 127.0.0.1
      query_response:
        - expect: "^220 (\\w+) ready$"
          send: "HELLO ${{1}}"
        - expect: "^250 hello banner$"
          send: QUIT
        - expect: "^221 bye"
  tcp_banner_mismatch:
    prober: tcp
    timeout: 2s
    tcp:
      preferred_ip_protocol: ip4
      query_response:
        - expect: "^SSH-2.0"
  tcp_closed_before_match:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      query_response:
        - send: QUIT
        - expect: "^250 never"
  tcp_starttls:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      query_response:
        - expect: "^220 banner"
        - send: STARTTLS
        - expect: "^220 go ahead"
          starttls: true
        - expect: "^250 secure"
          send: QUIT
      tls_config:
        ca_file: {ca}
  tcp_tls:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      tls: true
      tls_config:
        ca_file: {ca}
      query_response:
        - expect: "^220 banner ready"
          send: QUIT
  tcp_tls_insecure:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      tls: true
      tls_config:
        insecure_skip_verify: true
  tcp_tls_untrusted:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      tls: true
  dns_a_udp:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      source_ip_address: 127.0.0.1
      query_name: example.test
      query_type: A
      validate_answer_rrs:
        fail_if_not_matches_regexp: ["^example\\.test\\.\t300\tIN\tA\t10\\.0\\.0\\.[12]$"]
        fail_if_none_matches_regexp: ["10\\.0\\.0\\.2$"]
      validate_authority_rrs:
        fail_if_matches_regexp: ["SOA"]
      validate_additional_rrs:
        fail_if_all_match_regexp: ["^ns\\.example\\.test\\."]
  dns_a_tcp:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      transport_protocol: tcp
      recursion_desired: false
      query_name: example.test
      query_type: A
  dns_txt:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      query_name: example.test
      query_type: TXT
      validate_answer_rrs:
        fail_if_not_matches_regexp:
          - '^example\.test\.\t300\tIN\tTXT\t"v=spf1 -all" "say \\"hi\\" \\\\ \\001"$'
  dns_aaaa:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      query_name: example.test
      query_type: AAAA
      validate_answer_rrs:
        fail_if_not_matches_regexp: ['^example\.test\.\t300\tIN\tAAAA\t2001:db8::1$']
  dns_soa_text:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      query_name: example.test
      query_type: SOA
      validate_answer_rrs:
        fail_if_not_matches_regexp:
          - '^example\.test\.\t300\tIN\tSOA\tns\.example\.test\. admin\.example\.test\. 2026120501 3600 600 86400 300$'
  dns_over_tls:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      transport_protocol: tcp
      dns_over_tls: true
      query_name: example.test
      query_type: A
      tls_config:
        ca_file: {ca}
  dns_tcp_from_ip6:
    prober: dns
    timeout: 5s
    dns:
      transport_protocol: tcp
      source_ip_address: "::1"
      query_name: example.test
      query_type: A
  dns_any_chaos:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      query_name: example.test
      query_class: CH
      validate_authority_rrs:
        fail_if_none_matches_regexp: ["\\tSOA\\t"]
  dns_soa:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      query_name: example.test
      query_type: SOA
  dns_mx_empty:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      query_name: example.test
      query_type: MX
      validate_answer_rrs:
        fail_if_not_matches_regexp: ["MX"]
  dns_answer_matches:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      query_name: example.test
      query_type: A
      validate_answer_rrs:
        fail_if_matches_regexp: ["10\\.0\\.0\\.2"]
  dns_all_must_match:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      query_name: example.test
      query_type: A
      validate_answer_rrs:
        fail_if_all_match_regexp: ["10\\.0\\.0\\.1$"]
  dns_none_matches:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      query_name: example.test
      query_type: A
      validate_answer_rrs:
        fail_if_none_matches_regexp: ["192\\.0\\.2\\."]
  dns_nxdomain:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      query_name: missing.test
      query_type: A
  dns_nxdomain_ok:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      query_name: missing.test
      query_class: IN
      valid_rcodes: [NXDOMAIN]
  dns_servfail_ok:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      query_name: example.test
      valid_rcodes: [SERVFAIL, NOERROR]
  grpc_plain:
    prober: grpc
    timeout: 5s
    grpc:
      preferred_ip_protocol: ip4
  grpc_down:
    prober: grpc
    timeout: 5s
    grpc:
      preferred_ip_protocol: ip4
      service: down
  grpc_unknown_service:
    prober: grpc
    timeout: 5s
    grpc:
      preferred_ip_protocol: ip4
      service: nothing-here
  grpc_tls:
    prober: grpc
    timeout: 5s
    grpc:
      preferred_ip_protocol: ip4
      tls: true
      tls_config:
        ca_file: {ca}
  grpc_tls_down:
    prober: grpc
    timeout: 5s
    grpc:
      preferred_ip_protocol: ip4
      tls: true
      service: down
      tls_config:
        ca_file: {ca}
  grpc_tls_insecure:
    prober: grpc
    timeout: 5s
    grpc:
      preferred_ip_protocol: ip4
      tls: true
      tls_config:
        insecure_skip_verify: true
  grpc_tls_untrusted:
    prober: grpc
    timeout: 5s
    grpc:
      preferred_ip_protocol: ip4
      tls: true
  tcp_tls_server_name:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      tls: true
      tls_config:
        ca_file: {ca}
        server_name: localhost
  tcp_tls_short_ca:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      tls: true
      tls_config:
        ca_file: {short_ca}
  tcp_tls_wrong_name:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      tls: true
      tls_config:
        ca_file: {ca}
        server_name: wrong.example
  icmp4:
    prober: icmp
    timeout: 5s
    icmp:
      preferred_ip_protocol: ip4
  icmp6:
    prober: icmp
    timeout: 5s
  icmp4_df_ttl:
    prober: icmp
    timeout: 5s
    icmp:
      preferred_ip_protocol: ip4
      dont_fragment: true
      ttl: 10
      payload_size: 200
      source_ip_address: 127.0.0.1
  icmp4_tiny_payload:
    prober: icmp
    timeout: 5s
    icmp:
      preferred_ip_protocol: ip4
      payload_size: 8
  icmp6_payload:
    prober: icmp
    timeout: 5s
    icmp:
      payload_size: 100
  dns_no_fallback:
    prober: dns
    timeout: 5s
    dns:
      query_name: example.test
      ip_protocol_fallback: false
  dns_silent:
    prober: dns
    timeout: 1s
    dns:
      preferred_ip_protocol: ip4
      query_name: example.test
  icmp_no_fallback:
    prober: icmp
    timeout: 5s
    icmp:
      ip_protocol_fallback: false
  grpc_no_fallback:
    prober: grpc
    timeout: 5s
    grpc:
      ip_protocol_fallback: false
  http_no_fallback:
    prober: http
    timeout: 5s
    http:
      ip_protocol_fallback: false
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
  http_checks:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      valid_status_codes: [200]
      fail_if_body_not_matches_regexp: ["hello"]
      fail_if_header_not_matches:
        - header: X-Kind
          regexp: page
  http_body_fails:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      fail_if_body_matches_regexp: ["hello"]
  http_no_redirects:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      follow_redirects: false
      valid_status_codes: [302]
  http_versions:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      valid_http_versions: ["HTTP/1.1"]
      method: POST
      body: "{{}}"
      headers:
        X-Probe: yes
  http_wants_h2:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      valid_http_versions: ["HTTP/2.0"]
  http_not_ssl:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      fail_if_not_ssl: true
  https_no_ssl:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      fail_if_ssl: true
      tls_config:
        ca_file: {ca}
  http_no_redirects_body:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      follow_redirects: false
      valid_status_codes: [302]
      fail_if_body_not_matches_regexp: [there]
  https_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      tls_config:
        ca_file: {ca}
  https_insecure:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      tls_config:
        insecure_skip_verify: true
  http_body_limit:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      body_size_limit: 5B
  http_body_limit_ok:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      body_size_limit: 1KB
  http_gzip:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      compression: gzip
  http_bearer_file:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      bearer_token_file: {dir}/token
  http_authorization:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      authorization:
        type: Token
        credentials: abc
  http_basic_file:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      basic_auth:
        username: prober
        password_file: {dir}/password
  http_proxy:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      proxy_url: http://{proxy}
      fail_if_body_not_matches_regexp: [proxied]
  http_proxy_skip_resolve:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      proxy_url: http://{proxy}
      skip_resolve_phase_with_proxy: true
  https_proxy_connect:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      proxy_url: http://{proxy}
      proxy_connect_header:
        X-Tunnel: [probe]
      tls_config:
        ca_file: {ca}
  https_tls12_no_h2:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      enable_http2: false
      tls_config:
        ca_file: {ca}
        max_version: TLS12
  https_tls13:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      tls_config:
        ca_file: {ca}
        min_version: TLS13
"#
    )
}

/// (module, target, whether it must succeed).
fn cases(t: &Targets) -> Vec<(&'static str, String, bool)> {
    let s = |a: SocketAddr| a.to_string();
    vec![
        ("tcp_connect", s(t.banner4), true),
        (
            "tcp_connect",
            format!("localhost:{}", t.banner4.port()),
            true,
        ),
        ("tcp_connect_ip6", s(t.banner6), true),
        ("tcp_connect", "127.0.0.1:1".into(), false),
        ("tcp_no_fallback", s(t.banner4), false),
        ("tcp_banner", s(t.banner4), true),
        ("tcp_banner", s(t.banner6), false),
        ("tcp_banner_mismatch", s(t.banner4), false),
        ("tcp_closed_before_match", s(t.banner4), false),
        ("tcp_starttls", s(t.banner4), true),
        ("tcp_tls", s(t.banner_tls), true),
        ("tcp_tls_insecure", s(t.banner_tls), true),
        ("tcp_tls_untrusted", s(t.banner_tls), false),
        ("tcp_tls", s(t.banner4), false),
        ("dns_a_udp", s(t.dns), true),
        ("dns_a_tcp", s(t.dns), true),
        ("dns_soa", s(t.dns), true),
        ("dns_over_tls", s(t.dot), true),
        ("dns_txt", s(t.dns), true),
        // IPv6 servers: blackbox's default preference, and ip4 falling back.
        ("dns_no_fallback", s(t.dns6), true),
        ("dns_a_tcp", s(t.dns6), true),
        ("dns_tcp_from_ip6", s(t.dns6), true),
        // The source address is not of the target's family.
        ("dns_tcp_from_ip6", s(t.dns), false),
        ("grpc_no_fallback", s(t.grpc6), true),
        ("grpc_plain", format!("http://{}", t.grpc6), true),
        ("http_no_fallback", format!("http://{}/", t.http6), true),
        ("dns_aaaa", s(t.dns), true),
        ("dns_soa_text", s(t.dns), true),
        ("dns_mx_empty", s(t.dns), false),
        ("dns_answer_matches", s(t.dns), false),
        ("dns_all_must_match", s(t.dns), false),
        ("dns_none_matches", s(t.dns), false),
        ("dns_nxdomain", s(t.dns), false),
        ("dns_nxdomain_ok", s(t.dns), true),
        ("dns_a_udp", s(t.dns_servfail), false),
        ("dns_servfail_ok", s(t.dns_servfail), true),
        ("dns_soa", s(t.dns_servfail), false),
        ("grpc_plain", s(t.grpc), true),
        ("grpc_plain", format!("http://{}", t.grpc), true),
        ("grpc_down", s(t.grpc), false),
        ("grpc_unknown_service", s(t.grpc), false),
        ("grpc_plain", "127.0.0.1:1".into(), false),
        ("grpc_tls", s(t.grpc_tls), true),
        ("grpc_tls_insecure", s(t.grpc_tls), true),
        ("grpc_tls_untrusted", s(t.grpc_tls), false),
        ("grpc_plain", s(t.http), false),
        ("grpc_tls", s(t.grpc), false),
        ("tcp_tls_server_name", s(t.banner_tls), true),
        ("tcp_tls_wrong_name", s(t.banner_tls), false),
        ("tcp_tls_short_ca", s(t.banner_short_ca), true),
        ("grpc_tls_down", s(t.grpc_tls), false),
        ("icmp4", "127.0.0.1".into(), true),
        ("icmp4", "localhost".into(), true),
        ("icmp6", "::1".into(), true),
        ("icmp4_df_ttl", "127.0.0.1".into(), true),
        ("icmp6_payload", "::1".into(), true),
        ("icmp4_tiny_payload", "127.0.0.1".into(), true),
        ("dns_any_chaos", s(t.dns), true),
        // Resolution failures: an IPv4 address where only IPv6 will do.
        ("dns_no_fallback", s(t.dns), false),
        ("icmp_no_fallback", "127.0.0.1".into(), false),
        ("grpc_no_fallback", s(t.grpc), false),
        ("http_no_fallback", format!("http://{}/", t.http), false),
        // A timeout: a DNS server that never answers.
        ("dns_silent", s(t.dns_silent), false),
        ("http_2xx", "http://127.0.0.1:1/".into(), false),
        ("http_2xx", format!("http://{}/", t.http), true),
        (
            "http_no_redirects_body",
            format!("http://{}/moved", t.http),
            false,
        ),
        ("http_2xx", format!("http://{}/loop", t.http), false),
        ("http_2xx", format!("http://{}/300", t.http), false),
        ("http_versions", format!("http://{}/", t.http), true),
        ("http_wants_h2", format!("http://{}/", t.http), false),
        ("http_not_ssl", format!("http://{}/", t.http), false),
        ("http_not_ssl", format!("https://{}/", t.https), false),
        ("https_no_ssl", format!("https://{}/", t.https), false),
        ("https_2xx", format!("https://{}/", t.https), true),
        ("http_2xx", format!("http://{}/moved", t.http), true),
        ("http_2xx", format!("http://{}/missing", t.http), false),
        ("http_checks", format!("http://{}/", t.http), true),
        ("http_checks", format!("http://{}/missing", t.http), false),
        ("http_body_fails", format!("http://{}/", t.http), false),
        (
            "http_no_redirects",
            format!("http://{}/moved", t.http),
            true,
        ),
        ("https_2xx", format!("https://{}/moved", t.https), true),
        ("https_insecure", format!("https://{}/", t.https), true),
        ("http_body_limit", format!("http://{}/", t.http), false),
        ("http_body_limit_ok", format!("http://{}/", t.http), true),
        ("http_gzip", format!("http://{}/gzip", t.http), true),
        ("http_gzip", format!("http://{}/", t.http), false),
        // Without `compression`, Go asks for gzip and decodes it itself.
        ("http_2xx", format!("http://{}/gzip", t.http), true),
        ("http_bearer_file", format!("http://{}/auth", t.http), true),
        (
            "http_authorization",
            format!("http://{}/auth", t.http),
            true,
        ),
        ("http_basic_file", format!("http://{}/auth", t.http), true),
        ("http_2xx", format!("http://{}/auth", t.http), false),
        // Nothing listens on port 1: only the proxy answers.
        ("http_proxy", "http://127.0.0.1:1/".into(), true),
        (
            "http_proxy_skip_resolve",
            "http://target.invalid/".into(),
            true,
        ),
        ("https_proxy_connect", format!("https://{}/", t.https), true),
        ("https_tls12_no_h2", format!("https://{}/", t.https), true),
        ("https_tls13", format!("https://{}/", t.https), true),
    ]
}

/// Where blackbox 0.23 is wrong and we are not: (module, target, the
/// series allowed to differ, why). Blackbox's probe_success is then not
/// held to the case's expectation.
fn accepted(t: &Targets) -> Vec<(&'static str, String, &'static [&'static str], &'static str)> {
    const GRPC: &[&str] = &[
        "probe_success",
        "probe_grpc_status_code",
        "probe_grpc_healthcheck_response",
    ];
    const WHY: &str = "blackbox 0.23's grpc prober dials host + \":\" + port, which for an IPv6 \
                       address (\"::1:port\") cannot connect (UNAVAILABLE); later versions use \
                       JoinHostPort, as we do";
    vec![
        ("grpc_no_fallback", t.grpc6.to_string(), GRPC, WHY),
        ("grpc_plain", format!("http://{}", t.grpc6), GRPC, WHY),
    ]
}

/// (module, target, series, value as printed): what both must say.
fn pins(t: &Targets) -> Vec<(&'static str, String, &'static str, &'static str)> {
    vec![
        (
            "tcp_closed_before_match",
            t.banner4.to_string(),
            "probe_failed_due_to_regex",
            "1",
        ),
        (
            "tcp_banner",
            t.banner4.to_string(),
            "probe_failed_due_to_regex",
            "0",
        ),
        (
            "tcp_connect_ip6",
            t.banner6.to_string(),
            "probe_ip_protocol",
            "6",
        ),
        (
            "tcp_tls",
            t.banner_tls.to_string(),
            "probe_tls_version_info{version=\"TLS 1.3\"}",
            "1",
        ),
        (
            "tcp_tls_short_ca",
            t.banner_short_ca.to_string(),
            "probe_ssl_earliest_cert_expiry",
            "3.4712928e+09",
        ),
        (
            "tcp_tls_short_ca",
            t.banner_short_ca.to_string(),
            "probe_ssl_last_chain_expiry_timestamp_seconds",
            "3.15576e+09",
        ),
        (
            "http_2xx",
            format!("http://{}/loop", t.http),
            "probe_http_redirects",
            "11",
        ),
        (
            "http_no_redirects_body",
            format!("http://{}/moved", t.http),
            "probe_failed_due_to_regex",
            "1",
        ),
        ("dns_a_udp", t.dns.to_string(), "probe_dns_answer_rrs", "2"),
        (
            "dns_a_udp",
            t.dns.to_string(),
            "probe_dns_authority_rrs",
            "1",
        ),
        (
            "dns_a_udp",
            t.dns.to_string(),
            "probe_dns_additional_rrs",
            "1",
        ),
        (
            "dns_soa",
            t.dns.to_string(),
            "probe_dns_serial",
            "2.026120501e+09",
        ),
        (
            "dns_nxdomain",
            t.dns.to_string(),
            "probe_dns_query_succeeded",
            "1",
        ),
        (
            "grpc_down",
            t.grpc.to_string(),
            "probe_grpc_healthcheck_response{serving_status=\"NOT_SERVING\"}",
            "1",
        ),
        (
            "grpc_unknown_service",
            t.grpc.to_string(),
            "probe_grpc_status_code",
            "5",
        ),
        ("grpc_tls", t.grpc_tls.to_string(), "probe_grpc_ssl", "1"),
        (
            "icmp4_df_ttl",
            "127.0.0.1".into(),
            "probe_icmp_reply_hop_limit",
            "64",
        ),
        ("icmp6", "::1".into(), "probe_ip_protocol", "6"),
        (
            "http_2xx",
            format!("http://{}/", t.http),
            "probe_http_last_modified_timestamp_seconds",
            "7.84111777e+08",
        ),
    ]
}

// ------------------------------------------------------------ comparing

struct Blackbox {
    child: Child,
    addr: String,
}

impl Drop for Blackbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_blackbox(config: &Path, log: &Path) -> Blackbox {
    assert!(
        Path::new(BLACKBOX).exists(),
        "{BLACKBOX} is missing: `make deps` installs prometheus-blackbox-exporter"
    );
    let addr = format!("127.0.0.1:{}", common::free_port());
    let child = Command::new(BLACKBOX)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("starting blackbox_exporter");
    let mut bb = Blackbox { child, addr };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&bb.addr).is_err() {
        if let Ok(Some(status)) = bb.child.try_wait() {
            panic!(
                "blackbox_exporter exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "blackbox_exporter did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    bb
}

fn get(base: &str, module: &str, target: &str) -> String {
    let target: String = target
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let url = format!("http://{base}/probe?module={module}&target={target}");
    match ureq::get(&url).timeout(Duration::from_secs(20)).call() {
        Ok(r) => r.into_string().unwrap(),
        Err(e) => panic!("{url}: {e}"),
    }
}

/// One exposition: family → type, and series (name, labels) → value.
#[derive(Default)]
struct Scrape {
    types: BTreeMap<String, String>,
    series: BTreeMap<(String, Vec<(String, String)>), f64>,
}

fn parse(text: &str) -> Scrape {
    let mut s = Scrape::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            s.types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (head, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = match value {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match head.split_once('{') {
            None => (head.to_string(), Vec::new()),
            Some((name, rest)) => (name.to_string(), parse_labels(rest.trim_end_matches('}'))),
        };
        s.series.insert((name, labels), value);
    }
    s
}

fn parse_labels(mut s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Some((k, rest)) = s.split_once("=\"") {
        let mut v = String::new();
        let mut chars = rest.char_indices();
        let mut end = rest.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => v.push('\n'),
                    Some((_, c)) => v.push(c),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => v.push(c),
            }
        }
        out.push((k.trim_start_matches(',').to_string(), v));
        s = &rest[end..];
    }
    out.sort();
    out
}

/// The `timeout` of `module` in the modules file, in seconds.
fn module_timeout(config: &Path, module: &str) -> Option<f64> {
    let modules = node_exporter::probe::Modules::load(config).unwrap();
    modules.modules[module].timeout.map(|t| t.as_secs_f64())
}

/// Checks our [`NEWER`] families against what 0.23 shows, then takes them
/// out of our scrape (0.23 has none of them).
fn newer_families(bb: &Scrape, ours: &mut Scrape, module_timeout: Option<f64>) -> Vec<String> {
    let mut d = Vec::new();
    // No header is sent: blackbox runs with the module's timeout, or
    // 119.5 s (120 less its offset) without one.
    let want = module_timeout.unwrap_or(119.5);
    let timeout = ours
        .series
        .get(&("probe_timeout_seconds".to_string(), Vec::new()));
    if timeout != Some(&want) {
        d.push(format!(
            "our probe_timeout_seconds is {timeout:?}, not {want}"
        ));
    }
    let has = |s: &Scrape, f: &str| s.types.contains_key(f);
    let cipher_expected =
        has(bb, "probe_tls_version_info") && !has(bb, "probe_grpc_healthcheck_response");
    let ciphers: Vec<_> = ours
        .series
        .keys()
        .filter(|(n, _)| n == "probe_tls_cipher_info")
        .map(|(_, l)| l.clone())
        .collect();
    match (cipher_expected, ciphers.as_slice()) {
        (false, []) => {}
        (true, [labels]) => {
            // Go's names: IANA's, e.g. TLS_AES_128_GCM_SHA256.
            let ok = matches!(labels.as_slice(), [(k, v)] if k == "cipher"
                && v.starts_with("TLS_")
                && v.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'));
            if !ok {
                d.push(format!("probe_tls_cipher_info has labels {labels:?}"));
            }
        }
        (want, got) => d.push(format!(
            "probe_tls_cipher_info: expected {} series (blackbox's probe_tls_version_info), we have {got:?}",
            u8::from(want)
        )),
    }
    ours.types.retain(|f, _| !NEWER.contains(&f.as_str()));
    ours.series.retain(|(f, _), _| !NEWER.contains(&f.as_str()));
    d
}

/// What differs between blackbox's scrape and ours, in words.
fn differences(bb: &Scrape, ours: &Scrape) -> Vec<String> {
    let mut d = Vec::new();
    let bb_fams: BTreeSet<_> = bb.types.iter().collect();
    let our_fams: BTreeSet<_> = ours.types.iter().collect();
    for f in bb_fams.difference(&our_fams) {
        d.push(format!("blackbox has family {} {}, we do not", f.0, f.1));
    }
    for f in our_fams.difference(&bb_fams) {
        d.push(format!("we have family {} {}, blackbox does not", f.0, f.1));
    }
    let bb_keys: BTreeSet<_> = bb.series.keys().collect();
    let our_keys: BTreeSet<_> = ours.series.keys().collect();
    for k in bb_keys.difference(&our_keys) {
        d.push(format!("blackbox has series {k:?}, we do not"));
    }
    for k in our_keys.difference(&bb_keys) {
        d.push(format!("we have series {k:?}, blackbox does not"));
    }
    for k in bb_keys.intersection(&our_keys) {
        if TIMINGS.contains(&k.0.as_str()) {
            continue;
        }
        let (a, b) = (bb.series[*k], ours.series[*k]);
        if !(a == b || a.is_nan() && b.is_nan()) {
            d.push(format!("{k:?}: blackbox {a}, we {b}"));
        }
    }
    d
}

#[test]
fn probers_agree_with_blackbox_exporter() {
    let pki = common::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let (short_ca_path, short_ca) = short_ca(dir.path());
    let targets = start_servers(&pki, short_ca);
    let config = dir.path().join("blackbox.yml");
    std::fs::write(
        &config,
        modules(&pki.path("ca.crt"), &short_ca_path, targets.proxy),
    )
    .unwrap();
    let bb = start_blackbox(&config, &dir.path().join("blackbox.log"));
    let ne = common::start(&[
        "--collector.disable-defaults".into(),
        "--collector.loadavg".into(),
        format!("--probe.config.file={}", config.display()),
    ]);

    let cases = cases(&targets);
    let mut report = Vec::new();
    let mut modules_seen = BTreeSet::new();
    let mut accepted_seen = Vec::new();
    for (module, target, want) in &cases {
        modules_seen.insert(*module);
        let t0 = Instant::now();
        let bb_text = get(&bb.addr, module, target);
        let t1 = Instant::now();
        let our_text = get(&ne.addr, module, target);
        eprintln!(
            "{module} {target}: blackbox {:?}, ours {:?}",
            t1 - t0,
            t1.elapsed()
        );
        let (bb_s, mut our_s) = (parse(&bb_text), parse(&our_text));
        let mut d = newer_families(&bb_s, &mut our_s, module_timeout(&config, module));
        let success = |s: &Scrape| {
            s.series
                .get(&("probe_success".to_string(), Vec::new()))
                .copied()
        };
        d.extend(differences(&bb_s, &our_s));
        let excused = accepted(&targets)
            .into_iter()
            .find(|(m, t, _, _)| m == module && t == target);
        if let Some((_, _, series, why)) = &excused {
            let before = d.len();
            d.retain(|line| {
                !series
                    .iter()
                    .any(|s| line.starts_with(&format!("(\"{s}\"")))
            });
            if d.len() < before {
                accepted_seen.push(format!("{module} {target}: {why}"));
            }
        }
        if excused.is_none() && success(&bb_s) != Some(if *want { 1.0 } else { 0.0 }) {
            d.push(format!(
                "blackbox's probe_success is {:?}, the case wants {want}",
                success(&bb_s)
            ));
        }
        if success(&our_s) != Some(if *want { 1.0 } else { 0.0 }) {
            d.push(format!(
                "our probe_success is {:?}, the case wants {want}",
                success(&our_s)
            ));
        }
        // A few values pinned, so that agreeing on them is agreeing on
        // something.
        for (case_module, case_target, series, value) in pins(&targets) {
            if case_module == *module && case_target == *target {
                let line = format!("{series} {value}");
                for (who, text) in [("blackbox", &bb_text), ("ours", &our_text)] {
                    if !text.lines().any(|l| l == line) {
                        d.push(format!("{who} lacks {line:?}"));
                    }
                }
            }
        }
        if !d.is_empty() {
            report.push(format!(
                "== {module} {target}\n  {}\n-- blackbox:\n{bb_text}\n-- ours:\n{our_text}",
                d.join("\n  ")
            ));
        }
    }
    assert!(
        report.is_empty(),
        "{} of {} probes differ:\n{}\n(node-exporter's log: {})",
        report.len(),
        cases.len(),
        report.join("\n"),
        ne.stderr()
    );
    eprintln!(
        "side by side: {} modules, {} probes, identical but for {} accepted:\n  {}",
        modules_seen.len(),
        cases.len(),
        accepted_seen.len(),
        accepted_seen.join("\n  ")
    );

    // `debug=true`: the same three parts, in the same order, on both.
    for base in [&bb.addr, &ne.addr] {
        let url = format!(
            "http://{base}/probe?module=http_2xx&target=http://{}/&debug=true",
            targets.http
        );
        let r = ureq::get(&url).call().unwrap();
        assert!(r
            .header("Content-Type")
            .unwrap_or("")
            .starts_with("text/plain"));
        let body = r.into_string().unwrap();
        let at = |s: &str| {
            body.find(s)
                .unwrap_or_else(|| panic!("{base}: no {s:?} in\n{body}"))
        };
        let (logs, metrics, module) = (
            at("Logs for the probe:\n"),
            at("\n\n\nMetrics that would have been returned:\n"),
            at("\n\n\nModule configuration:\n"),
        );
        assert!(logs == 0 && logs < metrics && metrics < module, "{body}");
        for part in [
            "msg=\"Beginning probe\"",
            "msg=\"Probe succeeded\"",
            "probe_success 1",
            "prober: http",
        ] {
            at(part);
        }
    }

    // probe_timeout_seconds: what 0.23 says it used ("Beginning probe ...
    // timeout_seconds=" in its debug output), for a module with and one
    // without `timeout`, without and with Prometheus' header (one shorter
    // than blackbox's 0.5 s offset).
    let target = format!("http://{}/", targets.http);
    for (module, header) in [
        ("http_2xx", None),
        ("http_2xx", Some("3")),
        ("http_2xx", Some("0.3")),
        ("http_default_timeout", None),
        ("http_default_timeout", Some("4")),
    ] {
        let debug = |base: &str| {
            let mut req = ureq::get(&format!("http://{base}/probe"))
                .query("module", module)
                .query("target", &target)
                .query("debug", "true");
            if let Some(h) = header {
                req = req.set("X-Prometheus-Scrape-Timeout-Seconds", h);
            }
            req.call().unwrap().into_string().unwrap()
        };
        let logged = |body: &str| -> f64 {
            let line = body
                .lines()
                .find(|l| l.contains("msg=\"Beginning probe\""))
                .unwrap_or_else(|| panic!("no Beginning probe line in\n{body}"));
            let v = line.split_once("timeout_seconds=").unwrap().1;
            v.split_whitespace().next().unwrap().parse().unwrap()
        };
        let (bb_body, our_body) = (debug(&bb.addr), debug(&ne.addr));
        let ours = our_body
            .lines()
            .find_map(|l| l.strip_prefix("probe_timeout_seconds "))
            .unwrap_or_else(|| panic!("no probe_timeout_seconds in\n{our_body}"));
        let want = logged(&bb_body);
        assert_eq!(
            ours.parse::<f64>().unwrap(),
            want,
            "{module} with header {header:?}: blackbox ran with {want} s\n{our_body}"
        );
        assert_eq!(logged(&our_body), want, "{our_body}");
    }

    // `/-/reload`: the same answers, a bad file keeping the old modules.
    let post = |base: &str| match ureq::post(&format!("http://{base}/-/reload")).call() {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap()),
        Err(e) => panic!("{e}"),
    };
    let get_reload = |base: &str| match ureq::get(&format!("http://{base}/-/reload")).call() {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap()),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(get_reload(&bb.addr), get_reload(&ne.addr));
    assert_eq!(post(&bb.addr), post(&ne.addr));
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        "modules:\n  x:\n    prober: http\n    http:\n      no_such: 1\n",
    )
    .unwrap();
    let (bb_reload, our_reload) = (post(&bb.addr), post(&ne.addr));
    assert_eq!(bb_reload.0, 500, "{bb_reload:?}");
    assert_eq!(our_reload.0, 500, "{our_reload:?}");
    for (_, body) in [&bb_reload, &our_reload] {
        assert!(
            body.starts_with("failed to reload config: ") && body.contains("no_such"),
            "{body}"
        );
    }
    for base in [&bb.addr, &ne.addr] {
        let text = get(base, "http_2xx", &format!("http://{}/", targets.http));
        assert!(text.contains("\nprobe_success 1\n"), "{base}: {text}");
    }
    std::fs::write(&config, good).unwrap();
}
