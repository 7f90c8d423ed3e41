//! What the probers share, as blackbox's prober/utils.go and tls.go:
//! resolving a target to one address of the wanted family (with
//! `probe_ip_protocol`, `probe_ip_addr_hash` and
//! `probe_dns_lookup_time_seconds`), and the TLS client and its metrics.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context};
use exporter_toolkit::exposition::MetricSet;
use rustls::pki_types::CertificateDer;

use super::config::{IpProtocol, TlsConfig};

tokio::task_local! {
    /// The running probe's log lines, for `/probe?debug=true`.
    pub static PROBE_LOG: std::cell::RefCell<Vec<String>>;
}

/// Logs a probe's step at debug level and keeps it for the probe's debug
/// output, in blackbox's logfmt (`level=... msg=... key=value`).
pub fn log(level: &str, msg: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
    let mut line = format!("level={level} msg={}", logfmt(msg));
    for (k, v) in fields {
        line.push_str(&format!(" {k}={}", logfmt(&v.to_string())));
    }
    tracing::debug!("{line}");
    let _ = PROBE_LOG.try_with(|l| l.borrow_mut().push(line));
}

/// A logfmt value: quoted when it has spaces, quotes or '='.
fn logfmt(v: &str) -> String {
    if v.is_empty() || v.contains([' ', '"', '=', '\n', '\\']) {
        format!("{v:?}")
    } else {
        v.to_string()
    }
}

/// blackbox's `chooseProtocol`: one address of the preferred family, else
/// (with fallback) the other's. Writes the three resolution metrics
/// whatever happens (zero on failure, as blackbox registers them first),
/// and returns the address with the seconds the lookup took.
pub async fn resolve(
    host: &str,
    ip: &IpProtocol,
    out: &mut MetricSet,
) -> anyhow::Result<(IpAddr, f64)> {
    let (chosen, secs) = resolve_timed(host, ip, out).await;
    chosen.map(|a| (a, secs))
}

/// [`resolve`], with the seconds spent even when it failed (blackbox's
/// http prober reports them then).
pub async fn resolve_timed(
    host: &str,
    ip: &IpProtocol,
    out: &mut MetricSet,
) -> (anyhow::Result<IpAddr>, f64) {
    let start = Instant::now();
    log(
        "info",
        "Resolving target address",
        &[("target", &host), ("ip_protocol", &ip.preferred)],
    );
    let chosen = choose(host, ip).await;
    let secs = start.elapsed().as_secs_f64();
    match &chosen {
        Ok(a) => log(
            "info",
            "Resolved target address",
            &[("target", &host), ("ip", a)],
        ),
        Err(e) => log(
            "error",
            "Resolution with IP protocol failed",
            &[("target", &host), ("err", &format!("{e:#}"))],
        ),
    }
    out.gauge(
        "probe_dns_lookup_time_seconds",
        "Returns the time taken for probe dns lookup in seconds",
        &[],
        secs,
    );
    let (proto, hash) = match &chosen {
        Ok(a) if a.is_ipv4() => (4.0, ip_hash(a)),
        Ok(a) => (6.0, ip_hash(a)),
        Err(_) => (0.0, 0.0),
    };
    out.gauge(
        "probe_ip_protocol",
        "Specifies whether probe ip protocol is IP4 or IP6",
        &[],
        proto,
    );
    out.gauge(
        "probe_ip_addr_hash",
        "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
        &[],
        hash,
    );
    (chosen, secs)
}

async fn choose(host: &str, ip: &IpProtocol) -> anyhow::Result<IpAddr> {
    // Brackets are the callers' to take off ("[::1]:53"): a bare "[::1]"
    // does not resolve in Go either.
    if host.is_empty() {
        anyhow::bail!("the target names no host");
    }
    let addrs: Vec<IpAddr> = tokio::net::lookup_host((host, 0))
        .await
        .with_context(|| format!("resolving {host:?}"))?
        .map(|a: SocketAddr| a.ip())
        .collect();
    let want_v4 = ip.preferred == "ip4";
    if let Some(a) = addrs.iter().find(|a| a.is_ipv4() == want_v4) {
        return Ok(*a);
    }
    // blackbox takes the last address of the other family.
    match addrs.last() {
        Some(a) if ip.fallback => Ok(*a),
        _ => Err(anyhow!("resolving {host:?}: no {} address", ip.preferred)),
    }
}

/// FNV-1a (32 bits) of the address' bytes: 4 for IPv4, 16 for IPv6, as Go
/// hashes a `net.IP`.
pub fn ip_hash(ip: &IpAddr) -> f64 {
    let bytes: Vec<u8> = match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h as f64
}

/// Splits "host:port" (with "[v6]:port"), as Go's `net.SplitHostPort`.
pub fn split_host_port(target: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = if let Some(rest) = target.strip_prefix('[') {
        let (h, p) = rest
            .split_once("]:")
            .ok_or_else(|| anyhow!("{target:?}: missing port in address"))?;
        (h, p)
    } else {
        let (h, p) = target
            .rsplit_once(':')
            .ok_or_else(|| anyhow!("{target:?}: missing port in address"))?;
        if h.contains(':') {
            anyhow::bail!("{target:?}: too many colons in address");
        }
        (h, p)
    };
    let port = port
        .parse()
        .map_err(|_| anyhow!("{target:?}: {port:?} is not a port"))?;
    Ok((host.to_string(), port))
}

/// A rustls client for a module's `tls_config`, with the given ALPN.
pub fn tls_connector(c: &TlsConfig, alpn: &[&[u8]]) -> anyhow::Result<tokio_rustls::TlsConnector> {
    let mut config = tls_client_config(c)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// A rustls client for a module's `tls_config`, within its versions.
pub fn tls_client_config(c: &TlsConfig) -> anyhow::Result<rustls::ClientConfig> {
    // Go reads the CA file even when it will not verify: a missing one
    // fails the probe there too.
    if let (true, Some(ca)) = (c.insecure_skip_verify, &c.ca_file) {
        let pem = std::fs::read(ca).with_context(|| format!("tls_config.ca_file {ca}"))?;
        if rustls_pemfile_certs(&pem).is_empty() {
            anyhow::bail!("tls_config.ca_file {ca}: no PEM certificate found");
        }
    }
    exporter_toolkit::tls::client_config_with_versions(
        &exporter_toolkit::tls::ClientTls {
            ca_file: c.ca_file.as_ref().map(Into::into),
            cert_file: c.cert_file.as_ref().map(Into::into),
            key_file: c.key_file.as_ref().map(Into::into),
            insecure_skip_verify: c.insecure_skip_verify,
            ..Default::default()
        },
        &c.versions()?,
    )
    .map_err(anyhow::Error::msg)
}

/// The name the server's certificate is checked against: `server_name`,
/// else the target's host (an IP address too, as Go does).
pub fn server_name(
    c: &TlsConfig,
    host: &str,
) -> anyhow::Result<rustls::pki_types::ServerName<'static>> {
    let name = c.server_name.clone().unwrap_or_else(|| host.to_string());
    let name = name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    rustls::pki_types::ServerName::try_from(name.clone())
        .map_err(|_| anyhow!("{name:?} is not a valid TLS server name"))
}

/// What blackbox reads from a TLS connection's state.
pub struct TlsState {
    pub version: String,
    /// The negotiated cipher suite, named as Go's `tls.CipherSuiteName`.
    pub cipher: String,
    /// The peer's chain as sent, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The chain rustls verified up to its root: `None` with
    /// `insecure_skip_verify` (Go then has no verified chains).
    pub verified: Option<Vec<CertificateDer<'static>>>,
}

impl TlsState {
    pub fn of(conn: &rustls::ClientConnection, c: &TlsConfig) -> TlsState {
        let chain: Vec<CertificateDer<'static>> = conn
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default();
        let verified = (!c.insecure_skip_verify).then(|| {
            let mut v = chain.clone();
            if let Some(root) = c.ca_file.as_deref().and_then(|f| issuer_in(&chain, f)) {
                v.push(root);
            }
            v
        });
        TlsState {
            version: tls_version(conn.protocol_version()),
            cipher: cipher_name(conn.negotiated_cipher_suite().map(|s| s.suite())),
            chain,
            verified,
        }
    }

    /// Earliest `notAfter` of the sent chain, Unix seconds.
    pub fn earliest_expiry(&self) -> Option<f64> {
        earliest(&self.chain)
    }

    pub fn last_chain_expiry(&self) -> Option<f64> {
        self.verified.as_deref().and_then(earliest)
    }

    /// `probe_ssl_last_chain_info`'s labels from the leaf certificate.
    pub fn leaf_info(&self) -> Option<LeafInfo> {
        let der = self.chain.first()?;
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
        let digest = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
        let fingerprint = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let dns_names = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::DNSName(d) => Some(*d),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        Some(LeafInfo {
            fingerprint_sha256: fingerprint,
            subject: go_name(cert.subject()),
            issuer: go_name(cert.issuer()),
            subjectalternative: dns_names,
        })
    }
}

pub struct LeafInfo {
    pub fingerprint_sha256: String,
    pub subject: String,
    pub issuer: String,
    pub subjectalternative: String,
}

pub fn tls_version(v: Option<rustls::ProtocolVersion>) -> String {
    match v {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2",
        Some(rustls::ProtocolVersion::TLSv1_1) => "TLS 1.1",
        Some(rustls::ProtocolVersion::TLSv1_0) => "TLS 1.0",
        _ => "unknown",
    }
    .to_string()
}

/// Go's `tls.CipherSuiteName`: the IANA name, which rustls uses too but
/// for TLS 1.3's suites ("TLS13_AES_128_GCM_SHA256" is Go's
/// "TLS_AES_128_GCM_SHA256"); an unnamed one as "0x%04X".
pub fn cipher_name(suite: Option<rustls::CipherSuite>) -> String {
    let Some(suite) = suite else {
        return "0x0000".to_string();
    };
    match suite.as_str() {
        Some(name) => match name.strip_prefix("TLS13_") {
            Some(rest) => format!("TLS_{rest}"),
            None => name.to_string(),
        },
        None => format!("0x{:04X}", u16::from(suite)),
    }
}

fn earliest(chain: &[CertificateDer<'_>]) -> Option<f64> {
    chain
        .iter()
        .filter_map(|c| x509_parser::parse_x509_certificate(c.as_ref()).ok())
        .map(|(_, cert)| cert.validity().not_after.timestamp() as f64)
        .reduce(f64::min)
}

/// The certificate of `ca_file` that issued the chain's last one, unless
/// the chain already ends in it: rustls does not hand out the path it
/// verified, and Go's verified chain ends in that root.
fn issuer_in(chain: &[CertificateDer<'_>], ca_file: &str) -> Option<CertificateDer<'static>> {
    let last = chain.last()?;
    let (_, last_cert) = x509_parser::parse_x509_certificate(last.as_ref()).ok()?;
    if last_cert.subject() == last_cert.issuer() {
        return None;
    }
    let pem = std::fs::read(ca_file).ok()?;
    rustls_pemfile_certs(&pem).into_iter().find(|ca| {
        x509_parser::parse_x509_certificate(ca.as_ref())
            .map(|(_, c)| c.subject() == last_cert.issuer())
            .unwrap_or(false)
    })
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    rustls_pemfile::certs(&mut &pem[..])
        .filter_map(Result::ok)
        .collect()
}

/// An X.509 name as Go's `pkix.Name.String()` writes it: Go parses the
/// usual attributes into fields and writes them back in its own order
/// (SERIALNUMBER, CN, OU, O, POSTALCODE, STREET, L, ST, C: the reverse of
/// its RDN sequence; values of one type in one RDN joined by "+", one
/// CN and one SERIALNUMBER, the last), after any other attributes, which
/// keep their dotted OID.
fn go_name(name: &x509_parser::x509::X509Name<'_>) -> String {
    // Go's RDN sequence order, with the short names it prints.
    const STANDARD: [(&str, &str); 9] = [
        ("2.5.4.6", "C"),
        ("2.5.4.8", "ST"),
        ("2.5.4.7", "L"),
        ("2.5.4.9", "STREET"),
        ("2.5.4.17", "POSTALCODE"),
        ("2.5.4.10", "O"),
        ("2.5.4.11", "OU"),
        ("2.5.4.3", "CN"),
        ("2.5.4.5", "SERIALNUMBER"),
    ];
    let atvs: Vec<(String, String)> = name
        .iter_attributes()
        .map(|atv| {
            (
                atv.attr_type().to_id_string(),
                atv.as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut rdns: Vec<String> = atvs
        .iter()
        .filter(|(oid, _)| !STANDARD.iter().any(|(o, _)| o == oid))
        .map(|(oid, v)| format!("{oid}={}", go_escape(v)))
        .collect();
    for (oid, key) in STANDARD {
        let mut values: Vec<&str> = atvs
            .iter()
            .filter(|(o, _)| o == oid)
            .map(|(_, v)| v.as_str())
            .collect();
        if matches!(key, "CN" | "SERIALNUMBER") && values.len() > 1 {
            values.drain(..values.len() - 1);
        }
        values.retain(|v| !v.is_empty());
        if !values.is_empty() {
            let rdn: Vec<String> = values
                .iter()
                .map(|v| format!("{key}={}", go_escape(v)))
                .collect();
            rdns.push(rdn.join("+"));
        }
    }
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// RFC 2253 escaping as Go's `pkix` does it.
fn go_escape(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    for (i, c) in chars.iter().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (*c == ' ' || *c == '#'))
            || (i == chars.len() - 1 && *c == ' ');
        if special {
            out.push('\\');
        }
        out.push(*c);
    }
    out
}

/// Writes blackbox's TLS metrics for a connection (its http and tcp
/// probers): the earliest expiry, the version and cipher, the last chain's expiry
/// (Go's zero time when no chain was verified, as 0.23 reports it) and the
/// leaf's `probe_ssl_last_chain_info`.
pub fn tls_metrics(state: &TlsState, earliest_help: &str, out: &mut MetricSet) {
    out.gauge(
        "probe_ssl_earliest_cert_expiry",
        earliest_help.to_string(),
        &[],
        state.earliest_expiry().unwrap_or(GO_ZERO_TIME),
    );
    out.gauge(
        "probe_tls_version_info",
        "Returns the TLS version used, or NaN when unknown",
        &[("version", &state.version)],
        1.0,
    );
    // Newer than Debian's 0.23: blackbox writes it where it writes the
    // version, for its http and tcp probers (not grpc).
    out.gauge(
        "probe_tls_cipher_info",
        "Returns the TLS cipher negotiated during handshake",
        &[("cipher", &state.cipher)],
        1.0,
    );
    out.gauge(
        "probe_ssl_last_chain_expiry_timestamp_seconds",
        "Returns last SSL chain expiry in timestamp seconds",
        &[],
        state.last_chain_expiry().unwrap_or(GO_ZERO_TIME),
    );
    last_chain_info(state, out);
}

/// The leaf's `probe_ssl_last_chain_info`, where blackbox writes it.
pub fn last_chain_info(state: &TlsState, out: &mut MetricSet) {
    if let Some(i) = state.leaf_info() {
        out.gauge(
            "probe_ssl_last_chain_info",
            "Contains SSL leaf certificate information",
            &[
                ("fingerprint_sha256", &i.fingerprint_sha256),
                ("subject", &i.subject),
                ("issuer", &i.issuer),
                ("subjectalternative", &i.subjectalternative),
            ],
            1.0,
        );
    }
}

/// Go's `time.Time{}.Unix()`: what blackbox reports as the expiry of a
/// chain without certificates.
pub const GO_ZERO_TIME: f64 = -62_135_596_800.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_hash_is_fnv1a_of_go_ip_bytes() {
        // Values blackbox_exporter 0.23 reports for these addresses.
        assert_eq!(ip_hash(&"127.0.0.1".parse().unwrap()), 3_668_918_509.0);
        assert_eq!(ip_hash(&"::1".parse().unwrap()), 1_751_717_746.0);
    }

    #[test]
    fn host_port_split_like_go() {
        assert_eq!(
            split_host_port("[::1]:53").unwrap(),
            ("::1".to_string(), 53)
        );
        assert_eq!(
            split_host_port("a.example:25").unwrap(),
            ("a.example".to_string(), 25)
        );
        assert!(split_host_port("a.example").is_err());
        assert!(split_host_port("::1:53").is_err());
        assert!(split_host_port("a:99999").is_err());
    }

    #[test]
    fn cipher_suites_named_as_go() {
        use rustls::CipherSuite as C;
        assert_eq!(
            cipher_name(Some(C::TLS13_AES_128_GCM_SHA256)),
            "TLS_AES_128_GCM_SHA256"
        );
        assert_eq!(
            cipher_name(Some(C::TLS13_CHACHA20_POLY1305_SHA256)),
            "TLS_CHACHA20_POLY1305_SHA256"
        );
        assert_eq!(
            cipher_name(Some(C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)),
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
        );
        assert_eq!(
            cipher_name(Some(C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)),
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        );
        assert_eq!(cipher_name(Some(C::from(0x1234))), "0x1234");
    }

    #[test]
    fn names_escape_as_go() {
        assert_eq!(go_escape("a,b"), "a\\,b");
        assert_eq!(go_escape(" x "), "\\ x\\ ");
        assert_eq!(go_escape("#1"), "\\#1");
    }
}
