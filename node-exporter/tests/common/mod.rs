//! Starts the real `node-exporter` binary for integration tests and fetches
//! from it.

#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Running {
    pub child: Child,
    pub addr: String,
    pub stderr_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        match ureq::get(&self.url(path)).call() {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Starts the exporter with `args` on a free loopback port and waits until
/// it answers.
pub fn start(args: &[String]) -> Running {
    start_in(Path::new("."), args)
}

/// [`start`] with `cwd` as the working directory (relative paths in `args`
/// are taken from there).
pub fn start_in(cwd: &Path, args: &[String]) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let stderr_path = dir.path().join("stderr.log");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_node-exporter"))
        .current_dir(cwd)
        .arg(format!("--web.listen-address={addr}"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("starting node-exporter");
    let mut running = Running {
        child,
        addr,
        stderr_path,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = running.child.try_wait() {
            panic!(
                "node-exporter exited early ({status}): {}",
                running.stderr()
            );
        }
        if e2e_tests::exporters::listening(&running.addr) {
            return running;
        }
        if Instant::now() > deadline {
            panic!("node-exporter did not listen: {}", running.stderr());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the binary to completion (for startup errors).
pub fn run_to_exit(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_node-exporter"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), err)
}

/// Collectors that read a live service rather than /proc and /sys: no
/// fixture tree can stand in for them (the docker collector has its own
/// tests against the real Engine in tests/docker.rs; systemd's mapping is
/// unit-tested in its module and checked on real hosts by the Ansible test;
/// ethtool asks the kernel about devices by name, which a fixture tree's
/// names would only alias to this host's: tests/ethtool.rs runs it in a
/// network namespace beside node_exporter).
pub const LIVE_SERVICES: &[&str] = &["docker", "ethtool", "systemd"];

/// Whether `GOLDEN_ONLY` (if set) selects this collector's golden file.
pub fn selected(name: &str) -> bool {
    if LIVE_SERVICES.contains(&name) {
        return false;
    }
    std::env::var("GOLDEN_ONLY")
        .map(|o| o.split(',').any(|n| n == name))
        .unwrap_or(true)
}

/// The arguments that point every collector at a fixture tree.
pub fn fixture_args(root: &Path) -> Vec<String> {
    let mut args = vec![
        format!("--path.procfs={}", root.join("proc").display()),
        format!("--path.sysfs={}", root.join("sys").display()),
        format!("--path.rootfs={}", root.join("rootfs").display()),
        format!("--path.udev.data={}", root.join("udev").display()),
        format!(
            "--collector.textfile.directory={}",
            root.join("textfile").display()
        ),
        // qdisc reads the host's interfaces over netlink otherwise.
        format!(
            "--collector.qdisc.fixtures={}",
            root.join("qdisc").display()
        ),
        // And wifi reads nl80211.
        format!("--collector.wifi.fixtures={}", root.join("wifi").display()),
        "--web.disable-exporter-metrics".to_string(),
    ];
    for spec in node_exporter::collectors::REGISTRY {
        if LIVE_SERVICES.contains(&spec.name) {
            continue;
        }
        args.push(format!("--collector.{}", spec.name));
    }
    args
}

/// Base arguments for tests of the HTTP face: only the collectors that exist
/// everywhere and cost nothing.
pub fn light_args() -> Vec<String> {
    [
        "--collector.disable-defaults",
        "--collector.cpu",
        "--collector.meminfo",
        "--collector.loadavg",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A whole HTTP answer, whatever its status.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Header names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("body is not UTF-8")
    }
}

/// An agent that sends no `Accept-Encoding` of its own and gives up after 30 s.
pub fn http_agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
}

/// GET `url` with extra request headers. A non-2xx status is a [`Reply`];
/// only a transport failure (refused, TLS, reset) is an error, as text.
pub fn fetch(agent: &ureq::Agent, url: &str, headers: &[(&str, &str)]) -> Result<Reply, String> {
    let mut req = agent.get(url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(t)) => return Err(t.to_string()),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .flat_map(|n| {
            resp.all(&n)
                .into_iter()
                .map(|v| (n.to_ascii_lowercase(), v.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut body = Vec::new();
    resp.into_reader()
        .read_to_end(&mut body)
        .map_err(|e| panic!("reading body of {url}: {e}"))
        .unwrap();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

impl Running {
    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{}", self.addr, path)
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Plain-HTTP GET with extra headers; panics on a transport error.
    pub fn fetch(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        fetch(&http_agent(), &self.url(path), headers)
            .unwrap_or_else(|e| panic!("GET {path}: {e}; stderr: {}", self.stderr()))
    }
}

/// Sends raw bytes to `addr` and returns everything the server sends back
/// until it closes the connection (or 10 s pass).
pub fn raw_exchange(addr: &str, request: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    out
}

/// A throw-away PKI made with rcgen: a CA, a server certificate for
/// 127.0.0.1 and localhost, and a client certificate, all signed by the CA,
/// written as PEM files into a temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    pub fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let dir = tempfile::tempdir().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "node-exporter test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let mut pki = Pki {
            ca_pem: ca_cert.pem(),
            client_cert_pem: String::new(),
            client_key_pem: String::new(),
            issuer,
            dir,
        };
        let (cert, key) = pki.leaf(
            &["127.0.0.1", "localhost"],
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        );
        pki.write("server.crt", &cert);
        pki.write("server.key", &key);
        let (cert, key) = pki.leaf(
            &["scraper.example"],
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        );
        pki.client_cert_pem = cert;
        pki.client_key_pem = key;
        let ca_pem = pki.ca_pem.clone();
        pki.write("ca.crt", &ca_pem);
        pki
    }

    /// A certificate and key (PEM) signed by this CA.
    pub fn leaf(&self, names: &[&str], usage: rcgen::ExtendedKeyUsagePurpose) -> (String, String) {
        let mut p =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, names[0]);
        p.extended_key_usages = vec![usage];
        p.use_authority_key_identifier_extension = true;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A client trusting this CA, optionally presenting a certificate, and
    /// speaking only the given TLS versions (all when empty).
    pub fn client(
        &self,
        client_cert: Option<(&str, &str)>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> ureq::Agent {
        tls_agent(&self.ca_pem, client_cert, versions)
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

pub fn tls_agent(
    ca_pem: &str,
    client_cert: Option<(&str, &str)>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .tls_config(std::sync::Arc::new(tls_client_config(
            ca_pem,
            client_cert,
            versions,
        )))
        .timeout(Duration::from_secs(30))
        .build()
}

pub fn tls_client_config(
    ca_pem: &str,
    client_cert: Option<(&str, &str)>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(ca_pem) {
        roots.add(c).unwrap();
    }
    let versions = if versions.is_empty() {
        rustls::ALL_VERSIONS
    } else {
        versions
    };
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots);
    match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            use rustls::pki_types::pem::PemObject;
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            builder.with_client_auth_cert(pem_certs(cert), key).unwrap()
        }
    }
}

fn pem_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// Runs the binary and waits up to `limit` for it to exit by itself.
/// Returns its exit code and stderr, or `None` (after killing it) when it
/// was still running, e.g. because a config meant to be refused was taken.
pub fn run_to_exit_within(args: &[&str], limit: Duration) -> Option<(i32, String)> {
    let dir = tempfile::tempdir().unwrap();
    let stderr_path = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_node-exporter"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            return Some((status.code().unwrap_or(-1), err));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Pki {
    /// The server certificate (signed by the CA, for 127.0.0.1 and
    /// localhost) and its key, for a rustls server.
    pub fn server_cert(
        &self,
    ) -> (
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ) {
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(self.path("server.crt"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(self.path("server.key")).unwrap();
        (certs, key)
    }

    /// A TLS server presenting [`Pki::server_cert`] with rustls' defaults
    /// (ring's cipher suites, TLS 1.2 and 1.3), offering `alpn`.
    pub fn acceptor(&self, alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
        let (certs, key) = self.server_cert();
        tls_acceptor(
            certs,
            key,
            rustls::crypto::ring::default_provider(),
            &[],
            alpn,
        )
    }
}

/// A TLS server presenting `certs` and `key`, with `provider`'s cipher
/// suites, only `versions` (rustls' defaults when empty) and `alpn`.
pub fn tls_acceptor(
    certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
    provider: rustls::crypto::CryptoProvider,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> tokio_rustls::TlsAcceptor {
    let versions = if versions.is_empty() {
        rustls::DEFAULT_VERSIONS
    } else {
        versions
    };
    let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
}

/// A connection a test server answers: plain TCP or TLS over it.
pub trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Conn for T {}

/// Accepts connections on `listener` for ever, each (after the TLS
/// handshake, with `tls`) answered by `answer` in a task of its own.
pub async fn serve_each<F, Fut>(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    answer: F,
) where
    F: Fn(Box<dyn Conn>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (tls, answer) = (tls.clone(), answer.clone());
        tokio::spawn(async move {
            match tls {
                Some(a) => {
                    if let Ok(s) = a.accept(tcp).await {
                        answer(Box::new(s)).await;
                    }
                }
                None => answer(Box::new(tcp)).await,
            }
        });
    }
}
