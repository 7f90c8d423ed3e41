//! Builds a rustls server configuration from exporter-toolkit's
//! `tls_server_config` block, with errors that say which setting is wrong.

use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::web_config::TlsSettings;

pub fn server_config(t: &TlsSettings, base: &Path) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = load_certs("cert_file", t.cert_file.as_deref(), t.cert.as_deref(), base)?;
    let key = load_key(t.key_file.as_deref(), t.key.as_deref(), base)?;
    let versions = protocol_versions(
        "tls_server_config",
        t.min_version.as_deref(),
        t.max_version.as_deref(),
    )?;
    if let Some(suites) = &t.cipher_suites {
        // rustls only implements modern AEAD suites; accept the Go names of
        // those so that existing files keep working, refuse anything else.
        for s in suites {
            if !SUPPORTED_GO_SUITES.contains(&s.as_str()) {
                return Err(format!(
                    "tls_server_config.cipher_suites: {s:?} is not supported; use any of {}",
                    SUPPORTED_GO_SUITES.join(", ")
                ));
            }
        }
    }
    if let Some(curves) = &t.curve_preferences {
        for c in curves {
            if !["CurveP256", "CurveP384", "X25519"].contains(&c.as_str()) {
                return Err(format!(
                    "tls_server_config.curve_preferences: {c:?} is not supported (CurveP256, CurveP384, X25519)"
                ));
            }
        }
    }
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let auth_type = t.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let needs_ca = matches!(
        auth_type,
        "VerifyClientCertIfGiven" | "RequireAndVerifyClientCert"
    );
    let builder = match auth_type {
        "NoClientCert" | "RequestClientCert" | "RequireAnyClientCert" if !needs_ca => {
            if t.client_allowed_sans.is_some() {
                return Err(format!(
                    "tls_server_config.client_allowed_sans requires client_auth_type \
                     RequireAndVerifyClientCert, not {auth_type}"
                ));
            }
            if t.client_ca_file.is_some() || t.client_ca.is_some() {
                return Err(format!(
                    "tls_server_config: client_ca_file is set but client_auth_type is {auth_type}; \
                     use RequireAndVerifyClientCert or VerifyClientCertIfGiven"
                ));
            }
            if auth_type != "NoClientCert" {
                return Err(format!(
                    "tls_server_config.client_auth_type: {auth_type} (accepting unverified client \
                     certificates) is not supported; use RequireAndVerifyClientCert"
                ));
            }
            builder.with_no_client_auth()
        }
        "VerifyClientCertIfGiven" | "RequireAndVerifyClientCert" => {
            let cas = load_certs(
                "client_ca_file",
                t.client_ca_file.as_deref(),
                t.client_ca.as_deref(),
                base,
            )
            .map_err(|e| format!("{e} (needed for client_auth_type {auth_type})"))?;
            let mut roots = rustls::RootCertStore::empty();
            for c in cas {
                roots
                    .add(c)
                    .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth_type == "VerifyClientCertIfGiven" {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            match &t.client_allowed_sans {
                Some(allowed) => {
                    if auth_type != "RequireAndVerifyClientCert" {
                        return Err(format!(
                            "tls_server_config.client_allowed_sans requires client_auth_type \
                             RequireAndVerifyClientCert, not {auth_type}"
                        ));
                    }
                    builder.with_client_cert_verifier(Arc::new(AllowedSans {
                        inner: verifier,
                        allowed: allowed.clone(),
                    }))
                }
                None => builder.with_client_cert_verifier(verifier),
            }
        }
        other => {
            return Err(format!(
                "tls_server_config.client_auth_type: unknown value {other:?} (NoClientCert, \
                 VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
            ))
        }
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_server_config: certificate and key do not match: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

const SUPPORTED_GO_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
];

/// `min_version` / `max_version` (Go's names) of the `block` config block
/// (named in errors) as the versions rustls may speak. rustls has no TLS
/// 1.0/1.1: asking for them is an error, not a silent upgrade.
pub fn protocol_versions(
    block: &str,
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let rank = |field: &str, v: &str| -> Result<u8, String> {
        match v {
            "TLS12" => Ok(12),
            "TLS13" => Ok(13),
            "TLS10" | "TLS11" => Err(format!(
                "{block}.{field}: {v} is insecure and not supported; use TLS12 or TLS13"
            )),
            other => Err(format!(
                "{block}.{field}: unknown TLS version {other:?} (TLS12, TLS13)"
            )),
        }
    };
    let lo = min
        .map(|v| rank("min_version", v))
        .transpose()?
        .unwrap_or(12);
    let hi = max
        .map(|v| rank("max_version", v))
        .transpose()?
        .unwrap_or(13);
    if lo > hi {
        return Err(format!("{block}: min_version is above max_version"));
    }
    let mut out = Vec::new();
    if lo <= 12 {
        out.push(&rustls::version::TLS12);
    }
    if hi >= 13 {
        out.push(&rustls::version::TLS13);
    }
    Ok(out)
}

fn read_pem(
    field: &str,
    file: Option<&Path>,
    inline: Option<&str>,
    base: &Path,
) -> Result<Vec<u8>, String> {
    match (file, inline) {
        (Some(_), Some(_)) => Err(format!(
            "tls_server_config: set either {field} or its inline form, not both"
        )),
        (Some(f), None) => {
            let p = if f.is_absolute() {
                f.to_path_buf()
            } else {
                base.join(f)
            };
            std::fs::read(&p)
                .map_err(|e| format!("tls_server_config.{field}: reading {}: {e}", p.display()))
        }
        (None, Some(text)) => Ok(text.as_bytes().to_vec()),
        (None, None) => Err(format!("tls_server_config: {field} is required")),
    }
}

fn load_certs(
    field: &str,
    file: Option<&Path>,
    inline: Option<&str>,
    base: &Path,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_pem(field, file, inline, base)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut BufReader::new(pem.as_slice()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls_server_config.{field}: not PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_server_config.{field}: no PEM certificate found"
        ));
    }
    Ok(certs)
}

fn load_key(
    file: Option<&Path>,
    inline: Option<&str>,
    base: &Path,
) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read_pem("key_file", file, inline, base)?;
    rustls_pemfile::private_key(&mut BufReader::new(pem.as_slice()))
        .map_err(|e| format!("tls_server_config.key_file: not PEM: {e}"))?
        .ok_or_else(|| "tls_server_config.key_file: no PEM private key found".to_string())
}

/// `client_allowed_sans`: after the CA check, the client certificate must
/// carry one of these names among its DNS, IP address or URI subject
/// alternative names, compared as exporter-toolkit does (exact strings; the
/// IP in its usual text form). E-mail SANs are not read, so an e-mail entry
/// never matches: the check fails closed.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

impl AllowedSans {
    fn matches(&self, der: &CertificateDer<'_>) -> bool {
        let Ok(cert) = webpki::EndEntityCert::try_from(der) else {
            return false;
        };
        let named = cert
            .valid_dns_names()
            .chain(cert.valid_uri_names())
            .any(|n| self.allowed.iter().any(|a| a == n));
        named
            || self.allowed.iter().any(|a| {
                a.parse::<std::net::IpAddr>().is_ok_and(|ip| {
                    cert.verify_is_valid_for_subject_name(&ServerName::IpAddress(ip.into()))
                        .is_ok()
                })
            })
    }
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if self.matches(end_entity) {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

// ------------------------------------------------------------ client side

/// The client side of Prometheus' common `tls_config` (the shipper's push
/// client, the prober): which CAs to trust, an optional client
/// certificate, or no verification at all.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClientTls {
    pub ca_file: Option<std::path::PathBuf>,
    pub cert_file: Option<std::path::PathBuf>,
    pub key_file: Option<std::path::PathBuf>,
    /// Inline PEM (Prometheus' `ca`, `cert`, `key`), instead of the files.
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub insecure_skip_verify: bool,
}

/// PEM given inline (`ca`) or as a file (`ca_file`), with where it came
/// from for errors. Both at once is an error, as in Prometheus.
struct Pem {
    bytes: Vec<u8>,
    origin: String,
}

fn client_pem(
    what: &str,
    file: Option<&Path>,
    inline: Option<&str>,
) -> Result<Option<Pem>, String> {
    match (file, inline) {
        (Some(_), Some(_)) => Err(format!(
            "tls_config: at most one of {what} and {what}_file must be configured"
        )),
        (Some(path), None) => Ok(Some(Pem {
            bytes: read_client_file(&format!("{what}_file"), path)?,
            origin: format!("tls_config.{what}_file {}", path.display()),
        })),
        (None, Some(text)) => Ok(Some(Pem {
            bytes: text.as_bytes().to_vec(),
            origin: format!("tls_config.{what}"),
        })),
        (None, None) => Ok(None),
    }
}

fn read_client_file(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("tls_config.{what} {}: {e}", path.display()))
}

fn pem_certs(pem: &Pem) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.bytes.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", pem.origin))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate found", pem.origin));
    }
    Ok(certs)
}

fn load_client_certs(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    pem_certs(&Pem {
        bytes: read_client_file(what, path)?,
        origin: format!("tls_config.{what} {}", path.display()),
    })
}

/// The system's CA bundle when no ca_file is given (Debian's and Red
/// Hat's locations, as Go's crypto/x509 looks for them).
const SYSTEM_CA_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

pub fn client_config(t: &ClientTls) -> Result<rustls::ClientConfig, String> {
    client_config_with_versions(t, rustls::DEFAULT_VERSIONS)
}

/// [`client_config`] limited to some protocol versions (a prober's
/// `min_version`/`max_version`).
pub fn client_config_with_versions(
    t: &ClientTls,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|e| format!("tls_config: {e}"))?;
    let builder = if t.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match client_pem("ca", t.ca_file.as_deref(), t.ca.as_deref())? {
            Some(ca) => {
                for c in pem_certs(&ca)? {
                    roots.add(c).map_err(|e| format!("{}: {e}", ca.origin))?;
                }
            }
            None => {
                for f in SYSTEM_CA_FILES {
                    if let Ok(certs) = load_client_certs("ca_file", Path::new(f)) {
                        roots.add_parsable_certificates(certs);
                        break;
                    }
                }
            }
        }
        builder.with_root_certificates(roots)
    };
    if (t.cert_file.is_some() || t.cert.is_some()) != (t.key_file.is_some() || t.key.is_some()) {
        return Err("tls_config: cert_file and key_file must be given together".into());
    }
    let cert = client_pem("cert", t.cert_file.as_deref(), t.cert.as_deref())?;
    let key = client_pem("key", t.key_file.as_deref(), t.key.as_deref())?;
    match (cert, key) {
        (Some(cert), Some(key)) => {
            let certs = pem_certs(&cert)?;
            let key: PrivateKeyDer<'static> =
                rustls_pemfile::private_key(&mut key.bytes.as_slice())
                    .map_err(|e| format!("{}: {e}", key.origin))?
                    .ok_or_else(|| format!("{}: no PEM private key found", key.origin))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("tls_config.cert/key: {e}"))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err("tls_config: cert_file and key_file must be given together".into()),
    }
}

/// `insecure_skip_verify: true`: any certificate is accepted (signatures of
/// the handshake are still checked).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
