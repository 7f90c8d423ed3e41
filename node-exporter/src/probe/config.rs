//! The modules file of `--probe.config.file`, in blackbox_exporter's
//! format (`modules: NAME: {prober, timeout, http: {...}}`). Unknown keys
//! are errors naming the file and line; regexps are compiled at load.
//! Every prober's section (http, tcp, icmp, dns, grpc) is read whatever the
//! module's prober, as blackbox does, and checked the same way: an option
//! this exporter does not know is an error, never silently ignored.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use http::header;
use regex::Regex;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    modules: BTreeMap<String, RawModule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModule {
    prober: String,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    tcp: RawTcp,
    #[serde(default)]
    icmp: RawIcmp,
    #[serde(default)]
    dns: RawDns,
    #[serde(default)]
    grpc: RawGrpc,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTcp {
    #[serde(default)]
    preferred_ip_protocol: Option<String>,
    #[serde(default)]
    ip_protocol_fallback: Option<bool>,
    #[serde(default)]
    source_ip_address: Option<String>,
    #[serde(default)]
    query_response: Vec<RawQueryResponse>,
    #[serde(default)]
    tls: bool,
    #[serde(default)]
    tls_config: TlsConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueryResponse {
    #[serde(default)]
    expect: Option<String>,
    #[serde(default)]
    send: Option<String>,
    #[serde(default)]
    starttls: bool,
    #[serde(default)]
    labels: Vec<RawLabel>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLabel {
    name: String,
    #[serde(default)]
    value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIcmp {
    #[serde(default)]
    preferred_ip_protocol: Option<String>,
    #[serde(default)]
    ip_protocol_fallback: Option<bool>,
    #[serde(default)]
    source_ip_address: Option<String>,
    #[serde(default)]
    payload_size: Option<usize>,
    #[serde(default)]
    dont_fragment: bool,
    #[serde(default)]
    ttl: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    #[serde(default)]
    preferred_ip_protocol: Option<String>,
    #[serde(default)]
    ip_protocol_fallback: Option<bool>,
    #[serde(default)]
    source_ip_address: Option<String>,
    #[serde(default)]
    transport_protocol: Option<String>,
    #[serde(default)]
    dns_over_tls: bool,
    #[serde(default)]
    tls_config: TlsConfig,
    #[serde(default)]
    query_name: Option<String>,
    #[serde(default)]
    query_type: Option<String>,
    #[serde(default)]
    query_class: Option<String>,
    #[serde(default)]
    recursion_desired: Option<bool>,
    #[serde(default)]
    valid_rcodes: Option<Vec<String>>,
    #[serde(default)]
    validate_answer_rrs: RawRrValidator,
    #[serde(default)]
    validate_authority_rrs: RawRrValidator,
    #[serde(default)]
    validate_additional_rrs: RawRrValidator,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRrValidator {
    #[serde(default)]
    fail_if_matches_regexp: Vec<String>,
    #[serde(default)]
    fail_if_all_match_regexp: Vec<String>,
    #[serde(default)]
    fail_if_not_matches_regexp: Vec<String>,
    #[serde(default)]
    fail_if_none_matches_regexp: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrpc {
    #[serde(default)]
    service: String,
    #[serde(default)]
    tls: bool,
    #[serde(default)]
    tls_config: TlsConfig,
    #[serde(default)]
    preferred_ip_protocol: Option<String>,
    #[serde(default)]
    ip_protocol_fallback: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default)]
    valid_status_codes: Vec<u16>,
    #[serde(default)]
    valid_http_versions: Vec<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    follow_redirects: Option<bool>,
    #[serde(default)]
    fail_if_ssl: bool,
    #[serde(default)]
    fail_if_not_ssl: bool,
    #[serde(default)]
    fail_if_body_matches_regexp: Vec<String>,
    #[serde(default)]
    fail_if_body_not_matches_regexp: Vec<String>,
    #[serde(default)]
    fail_if_header_matches: Vec<RawHeaderMatch>,
    #[serde(default)]
    fail_if_header_not_matches: Vec<RawHeaderMatch>,
    #[serde(default)]
    tls_config: TlsConfig,
    #[serde(default)]
    preferred_ip_protocol: Option<String>,
    #[serde(default)]
    ip_protocol_fallback: Option<bool>,
    #[serde(default)]
    basic_auth: Option<RawBasicAuth>,
    #[serde(default)]
    bearer_token: Option<String>,
    #[serde(default)]
    bearer_token_file: Option<String>,
    #[serde(default)]
    authorization: Option<RawAuthorization>,
    #[serde(default)]
    oauth2: Option<RawOAuth2>,
    #[serde(default)]
    accept_any_response: bool,
    #[serde(default)]
    fail_if_body_json_matches_cel: Option<String>,
    #[serde(default)]
    fail_if_body_json_not_matches_cel: Option<String>,
    #[serde(default)]
    enable_http2: Option<bool>,
    #[serde(default)]
    enable_http3: bool,
    #[serde(default)]
    body_size_limit: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    compression: Option<String>,
    #[serde(default)]
    body_file: Option<String>,
    #[serde(default)]
    http_headers: BTreeMap<String, exporter_toolkit::http_client::http_headers::Header>,
    #[serde(default)]
    proxy_url: Option<String>,
    #[serde(default)]
    no_proxy: Option<String>,
    #[serde(default)]
    proxy_from_environment: bool,
    #[serde(default)]
    proxy_connect_header: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    skip_resolve_phase_with_proxy: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasicAuth {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    username_file: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    password_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthorization {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    credentials: Option<String>,
    #[serde(default)]
    credentials_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOAuth2 {
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    client_secret_file: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    token_url: String,
    #[serde(default)]
    endpoint_params: BTreeMap<String, String>,
    #[serde(default)]
    tls_config: TlsConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeaderMatch {
    header: String,
    regexp: String,
    #[serde(default)]
    allow_missing: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub insecure_skip_verify: bool,
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub cert_file: Option<String>,
    #[serde(default)]
    pub key_file: Option<String>,
    #[serde(default)]
    pub server_name: Option<String>,
    /// Go's names: "TLS12", "TLS13" (rustls has no 1.0 nor 1.1: those
    /// are refused at load).
    #[serde(default)]
    pub min_version: Option<String>,
    #[serde(default)]
    pub max_version: Option<String>,
}

impl TlsConfig {
    /// The protocol versions allowed by `min_version`/`max_version`.
    pub fn versions(&self) -> anyhow::Result<Vec<&'static rustls::SupportedProtocolVersion>> {
        let rank = |field: &str, v: &Option<String>, default: u8| -> anyhow::Result<u8> {
            match v.as_deref() {
                None | Some("") => Ok(default),
                Some("TLS12") => Ok(12),
                Some("TLS13") => Ok(13),
                Some(v @ ("TLS10" | "TLS11")) => {
                    bail!("tls_config.{field}: {v} is not supported (TLS 1.2 and 1.3 only)")
                }
                Some(v) => bail!("tls_config.{field}: unknown TLS version {v:?}"),
            }
        };
        let min = rank("min_version", &self.min_version, 12)?;
        let max = rank("max_version", &self.max_version, 13)?;
        if min > max {
            bail!("tls_config: min_version is above max_version");
        }
        let mut out = Vec::new();
        if min <= 12 {
            out.push(&rustls::version::TLS12);
        }
        if max >= 13 {
            out.push(&rustls::version::TLS13);
        }
        Ok(out)
    }
}

/// A credential given inline or in a file read at each probe (as
/// Prometheus' http client does, so that a rotated file is picked up).
#[derive(Clone, Debug)]
pub enum Secret {
    Inline(String),
    File(std::path::PathBuf),
}

impl Secret {
    fn of(
        field: &str,
        inline: Option<String>,
        file: Option<String>,
    ) -> anyhow::Result<Option<Secret>> {
        match (
            inline.filter(|s| !s.is_empty()),
            file.filter(|s| !s.is_empty()),
        ) {
            (Some(_), Some(_)) => bail!("at most one of {field} & {field}_file must be configured"),
            (Some(s), None) => Ok(Some(Secret::Inline(s))),
            (None, Some(f)) => Ok(Some(Secret::File(f.into()))),
            (None, None) => Ok(None),
        }
    }

    pub fn read(&self) -> anyhow::Result<String> {
        match self {
            Secret::Inline(s) => Ok(s.clone()),
            Secret::File(f) => std::fs::read_to_string(f)
                .map(|s| s.trim().to_string())
                .with_context(|| format!("reading {}", f.display())),
        }
    }
}

#[derive(Clone, Debug)]
pub struct BasicAuth {
    pub username: Option<Secret>,
    pub password: Option<Secret>,
}

/// How the prober authenticates: one way at most, as Prometheus' client.
#[derive(Clone, Debug)]
pub enum Auth {
    Basic(BasicAuth),
    /// `authorization` (and `bearer_token`): "TYPE CREDENTIALS".
    Header {
        kind: String,
        credentials: Option<Secret>,
    },
    OAuth2(Box<OAuth2>),
}

/// OAuth 2.0 client credentials: a token fetched from `token_url`.
#[derive(Clone, Debug)]
pub struct OAuth2 {
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub scopes: Vec<String>,
    pub token_url: String,
    pub endpoint_params: Vec<(String, String)>,
    pub tls: TlsConfig,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Compression {
    Identity,
    Gzip,
    Deflate,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Identity => "identity",
            Compression::Gzip => "gzip",
            Compression::Deflate => "deflate",
        }
    }
}

/// A compiled CEL expression with its text.
#[derive(Debug)]
pub struct Cel {
    pub source: String,
    pub program: cel_interpreter::Program,
}

fn cel(field: &str, src: Option<String>) -> anyhow::Result<Option<Cel>> {
    match src.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(source) => {
            let program = cel_interpreter::Program::compile(&source)
                .map_err(|e| anyhow!("http.{field}: {source:?}: {e}"))?;
            Ok(Some(Cel { source, program }))
        }
    }
}

pub use exporter_toolkit::http_client::http_headers::HttpHeaders;
/// Where a request goes through (shared with the log shipper's client).
pub use exporter_toolkit::http_client::Proxy;

/// A loaded module.
#[derive(Debug)]
pub struct Module {
    /// The module as the file has it, secrets hidden: `?debug=true`
    /// shows it.
    pub yaml: String,
    pub prober: String,
    pub timeout: Option<Duration>,
    pub http: Http,
    pub tcp: Tcp,
    pub icmp: Icmp,
    pub dns: Dns,
    pub grpc: Grpc,
}

/// Which address family a prober resolves its target to, as blackbox's
/// `preferred_ip_protocol` and `ip_protocol_fallback`.
#[derive(Clone, Debug)]
pub struct IpProtocol {
    /// "ip4" or "ip6" (blackbox's default).
    pub preferred: String,
    pub fallback: bool,
}

#[derive(Debug)]
pub struct Tcp {
    pub ip: IpProtocol,
    pub source_ip: Option<std::net::IpAddr>,
    pub query_response: Vec<QueryResponse>,
    pub tls: bool,
    pub tls_config: TlsConfig,
}

#[derive(Debug)]
pub struct QueryResponse {
    pub expect: Option<Regex>,
    /// May name the `expect` groups (`${1}`, `$name`), as Go's Expand.
    pub send: String,
    pub starttls: bool,
    /// `probe_expect_info`'s labels: name and value (which may name the
    /// `expect` groups).
    pub labels: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Icmp {
    pub ip: IpProtocol,
    pub source_ip: Option<std::net::IpAddr>,
    pub payload_size: Option<usize>,
    pub dont_fragment: bool,
    pub ttl: Option<u32>,
}

#[derive(Debug)]
pub struct Dns {
    pub ip: IpProtocol,
    pub source_ip: Option<std::net::IpAddr>,
    /// false: UDP.
    pub tcp: bool,
    pub dns_over_tls: bool,
    pub tls_config: TlsConfig,
    pub query_name: String,
    pub query_type: hickory_proto::rr::RecordType,
    pub query_class: hickory_proto::rr::DNSClass,
    pub recursion_desired: bool,
    /// Numeric rcodes; blackbox's default is NOERROR only.
    pub valid_rcodes: Vec<u16>,
    pub validate_answer: RrValidator,
    pub validate_authority: RrValidator,
    pub validate_additional: RrValidator,
}

#[derive(Debug, Default)]
pub struct RrValidator {
    pub fail_if_matches: Vec<Regex>,
    pub fail_if_all_match: Vec<Regex>,
    pub fail_if_not_matches: Vec<Regex>,
    pub fail_if_none_matches: Vec<Regex>,
}

#[derive(Debug)]
pub struct Grpc {
    pub ip: IpProtocol,
    pub service: String,
    pub tls: bool,
    pub tls_config: TlsConfig,
}

#[derive(Debug)]
pub struct Http {
    /// Empty: any 2xx.
    pub valid_status_codes: Vec<u16>,
    /// Empty: any. Go's spelling: "HTTP/1.1", "HTTP/2.0".
    pub valid_http_versions: Vec<String>,
    pub method: http::Method,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub body: Option<String>,
    pub follow_redirects: bool,
    pub fail_if_ssl: bool,
    pub fail_if_not_ssl: bool,
    pub fail_if_body_matches: Vec<Regex>,
    pub fail_if_body_not_matches: Vec<Regex>,
    pub fail_if_header_matches: Vec<HeaderMatch>,
    pub fail_if_header_not_matches: Vec<HeaderMatch>,
    pub tls: TlsConfig,
    /// "ip4" or "ip6" (blackbox's default).
    pub preferred_ip_protocol: String,
    pub ip_protocol_fallback: bool,
    pub auth: Option<Auth>,
    /// CEL expressions on the body parsed as JSON (`body`).
    pub fail_if_body_json_matches_cel: Option<Cel>,
    pub fail_if_body_json_not_matches_cel: Option<Cel>,
    /// Any status is a success (before the header and body checks).
    pub accept_any_response: bool,
    /// Offer h2 by ALPN on TLS (Go's default).
    pub enable_http2: bool,
    /// HTTP/3 (QUIC) is not implemented: such a module loads (blackbox's
    /// own example has one) and each of its probes fails, saying why.
    pub enable_http3: bool,
    /// Bytes of (decompressed) body read at most: more fails the probe.
    pub body_size_limit: Option<u64>,
    pub compression: Option<Compression>,
    pub body_file: Option<std::path::PathBuf>,
    pub http_headers: HttpHeaders,
    pub proxy: Proxy,
    pub proxy_connect_header: Vec<(http::HeaderName, http::HeaderValue)>,
    pub skip_resolve_phase_with_proxy: bool,
}

#[derive(Debug)]
pub struct HeaderMatch {
    pub header: String,
    pub regexp: Regex,
    pub allow_missing: bool,
}

#[derive(Debug, Default)]
pub struct Modules {
    pub modules: BTreeMap<String, Module>,
}

impl Modules {
    pub fn load(path: &Path) -> anyhow::Result<Modules> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--probe.config.file: reading {}", path.display()))?;
        Modules::parse(&text).map_err(|e| anyhow!("--probe.config.file {}: {e:#}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Modules> {
        let file: File = match serde_yaml_ng::from_str(text) {
            Ok(f) => f,
            Err(e) => return Err(name_the_module(text, e)),
        };
        #[derive(Deserialize)]
        struct Loose {
            modules: BTreeMap<String, serde_yaml_ng::Value>,
        }
        let mut loose = serde_yaml_ng::from_str::<Loose>(text)
            .map(|l| l.modules)
            .unwrap_or_default();
        let mut modules = BTreeMap::new();
        for (name, raw) in file.modules {
            let mut m = module(raw).with_context(|| format!("module {name:?}"))?;
            if let Some(mut v) = loose.remove(&name) {
                hide_secrets(&mut v, false);
                m.yaml = serde_yaml_ng::to_string(&v).unwrap_or_default();
            }
            modules.insert(name, m);
        }
        Ok(Modules { modules })
    }
}

/// Replaces the values of secret keys with "<secret>", as Prometheus'
/// Secret type prints itself.
fn hide_secrets(v: &mut serde_yaml_ng::Value, all: bool) {
    use serde_yaml_ng::Value;
    const SECRET: &[&str] = &[
        "password",
        "bearer_token",
        "credentials",
        "client_secret",
        "secrets",
    ];
    match v {
        Value::Mapping(m) => {
            for (k, v) in m.iter_mut() {
                let secret = k.as_str().is_some_and(|k| SECRET.contains(&k));
                hide_secrets(v, all || secret);
            }
        }
        Value::Sequence(s) => s.iter_mut().for_each(|v| hide_secrets(v, all)),
        other if all => *other = Value::String("<secret>".into()),
        _ => {}
    }
}

/// serde's error names the line and the key but not the module: find the
/// module that does not load on its own and say so too.
fn name_the_module(text: &str, e: serde_yaml_ng::Error) -> anyhow::Error {
    #[derive(Deserialize)]
    struct Loose {
        modules: BTreeMap<String, serde_yaml_ng::Value>,
    }
    let culprit = serde_yaml_ng::from_str::<Loose>(text).ok().and_then(|l| {
        l.modules
            .into_iter()
            .find(|(_, v)| serde_yaml_ng::from_value::<RawModule>(v.clone()).is_err())
            .map(|(name, _)| name)
    });
    match culprit {
        Some(name) => anyhow!("module {name:?}: {e}"),
        None => anyhow!(e),
    }
}

fn ip_protocol(
    prober: &str,
    preferred: Option<String>,
    fallback: Option<bool>,
) -> anyhow::Result<IpProtocol> {
    let preferred = match preferred.as_deref() {
        None | Some("") => "ip6".to_string(),
        Some(p @ ("ip4" | "ip6")) => p.to_string(),
        Some(p) => bail!("{prober}.preferred_ip_protocol: {p:?} is neither \"ip4\" nor \"ip6\""),
    };
    Ok(IpProtocol {
        preferred,
        fallback: fallback.unwrap_or(true),
    })
}

fn source_ip(prober: &str, s: Option<String>) -> anyhow::Result<Option<std::net::IpAddr>> {
    match s.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| anyhow!("{prober}.source_ip_address: {s:?} is not an IP address")),
    }
}

fn regex_list(field: &str, list: Vec<String>) -> anyhow::Result<Vec<Regex>> {
    list.iter()
        .map(|r| Regex::new(r).map_err(|e| anyhow!("{field}: {r:?}: {e}")))
        .collect()
}

fn tcp(raw: RawTcp) -> anyhow::Result<Tcp> {
    raw.tls_config.versions().context("tcp")?;
    let mut query_response = Vec::new();
    for (i, qr) in raw.query_response.into_iter().enumerate() {
        let expect = match qr.expect.as_deref() {
            None | Some("") => None,
            Some(r) => Some(
                Regex::new(r).map_err(|e| anyhow!("tcp.query_response[{i}].expect: {r:?}: {e}"))?,
            ),
        };
        let valid = |n: &str| {
            let mut c = n.chars();
            c.next()
                .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
                && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        let mut labels = Vec::new();
        for l in qr.labels {
            if !valid(&l.name) || l.name.starts_with("__") {
                bail!(
                    "tcp.query_response[{i}].labels: {:?} is not a valid label name",
                    l.name
                );
            }
            if expect.is_none() {
                bail!("tcp.query_response[{i}].labels: labels need an expect");
            }
            labels.push((l.name, l.value));
        }
        query_response.push(QueryResponse {
            labels,
            expect,
            send: qr.send.unwrap_or_default(),
            starttls: qr.starttls,
        });
    }
    Ok(Tcp {
        ip: ip_protocol("tcp", raw.preferred_ip_protocol, raw.ip_protocol_fallback)?,
        source_ip: source_ip("tcp", raw.source_ip_address)?,
        query_response,
        tls: raw.tls,
        tls_config: raw.tls_config,
    })
}

fn icmp(raw: RawIcmp) -> anyhow::Result<Icmp> {
    if let Some(ttl) = raw.ttl {
        // blackbox's own bound: a hop limit is one byte.
        if !(0..=255).contains(&ttl) {
            bail!("icmp.ttl: {ttl} is not in 0..=255");
        }
    }
    if raw.payload_size.is_some_and(|p| p > 65_000) {
        bail!("icmp.payload_size: more than an IP packet holds");
    }
    Ok(Icmp {
        ip: ip_protocol("icmp", raw.preferred_ip_protocol, raw.ip_protocol_fallback)?,
        source_ip: source_ip("icmp", raw.source_ip_address)?,
        payload_size: raw.payload_size,
        dont_fragment: raw.dont_fragment,
        ttl: raw.ttl,
    })
}

/// miekg/dns' rcode names, which blackbox's `valid_rcodes` takes.
pub const RCODES: &[(&str, u16)] = &[
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("REFUSED", 5),
    ("YXDOMAIN", 6),
    ("YXRRSET", 7),
    ("NXRRSET", 8),
    ("NOTAUTH", 9),
    ("NOTZONE", 10),
    ("BADSIG", 16),
    ("BADVERS", 16),
    ("BADKEY", 17),
    ("BADTIME", 18),
    ("BADMODE", 19),
    ("BADNAME", 20),
    ("BADALG", 21),
    ("BADTRUNC", 22),
    ("BADCOOKIE", 23),
];

fn rr_validator(field: &str, raw: RawRrValidator) -> anyhow::Result<RrValidator> {
    let f = |sub: &str, list| regex_list(&format!("dns.{field}.{sub}"), list);
    Ok(RrValidator {
        fail_if_matches: f("fail_if_matches_regexp", raw.fail_if_matches_regexp)?,
        fail_if_all_match: f("fail_if_all_match_regexp", raw.fail_if_all_match_regexp)?,
        fail_if_not_matches: f("fail_if_not_matches_regexp", raw.fail_if_not_matches_regexp)?,
        fail_if_none_matches: f(
            "fail_if_none_matches_regexp",
            raw.fail_if_none_matches_regexp,
        )?,
    })
}

fn dns(raw: RawDns, is_dns: bool) -> anyhow::Result<Dns> {
    raw.tls_config.versions().context("dns")?;
    use hickory_proto::rr::{DNSClass, RecordType};
    let tcp = match raw.transport_protocol.as_deref() {
        None | Some("") | Some("udp") => false,
        Some("tcp") => true,
        Some(p) => bail!("dns.transport_protocol: {p:?} is neither \"udp\" nor \"tcp\""),
    };
    if raw.dns_over_tls && !tcp {
        bail!("dns.dns_over_tls needs transport_protocol: tcp");
    }
    let query_name = raw.query_name.unwrap_or_default();
    // As blackbox: a dns module must say what to ask.
    if is_dns && query_name.is_empty() {
        bail!("dns.query_name is required");
    }
    let query_type = match raw.query_type.as_deref() {
        None | Some("") => RecordType::ANY,
        Some(t) => t
            .parse::<RecordType>()
            .ok()
            .filter(|t| !matches!(t, RecordType::Unknown(_)))
            .ok_or_else(|| anyhow!("dns.query_type: unknown type {t:?}"))?,
    };
    let query_class = match raw.query_class.as_deref() {
        None | Some("") => DNSClass::IN,
        Some(c) => c
            .parse::<DNSClass>()
            .map_err(|_| anyhow!("dns.query_class: unknown class {c:?}"))?,
    };
    let valid_rcodes = match raw.valid_rcodes {
        None => vec![0],
        Some(list) => list
            .iter()
            .map(|r| {
                RCODES
                    .iter()
                    .find(|(n, _)| n == r)
                    .map(|(_, c)| *c)
                    .ok_or_else(|| anyhow!("dns.valid_rcodes: unknown rcode {r:?}"))
            })
            .collect::<anyhow::Result<_>>()?,
    };
    Ok(Dns {
        ip: ip_protocol("dns", raw.preferred_ip_protocol, raw.ip_protocol_fallback)?,
        source_ip: source_ip("dns", raw.source_ip_address)?,
        tcp,
        dns_over_tls: raw.dns_over_tls,
        tls_config: raw.tls_config,
        query_name,
        query_type,
        query_class,
        recursion_desired: raw.recursion_desired.unwrap_or(true),
        valid_rcodes,
        validate_answer: rr_validator("validate_answer_rrs", raw.validate_answer_rrs)?,
        validate_authority: rr_validator("validate_authority_rrs", raw.validate_authority_rrs)?,
        validate_additional: rr_validator("validate_additional_rrs", raw.validate_additional_rrs)?,
    })
}

fn grpc(raw: RawGrpc) -> anyhow::Result<Grpc> {
    raw.tls_config.versions().context("grpc")?;
    Ok(Grpc {
        ip: ip_protocol("grpc", raw.preferred_ip_protocol, raw.ip_protocol_fallback)?,
        service: raw.service,
        tls: raw.tls,
        tls_config: raw.tls_config,
    })
}

/// Prometheus' client rules: one way to authenticate, each secret inline
/// or from a file, not both.
fn http_auth(h: &mut RawHttp) -> anyhow::Result<Option<Auth>> {
    let bearer = Secret::of(
        "http.bearer_token",
        h.bearer_token.take(),
        h.bearer_token_file.take(),
    )?;
    let mut ways = Vec::new();
    if let Some(b) = h.basic_auth.take() {
        ways.push(Auth::Basic(BasicAuth {
            username: Secret::of("http.basic_auth.username", b.username, b.username_file)?,
            password: Secret::of("http.basic_auth.password", b.password, b.password_file)?,
        }));
    }
    if let Some(b) = bearer {
        ways.push(Auth::Header {
            kind: "Bearer".into(),
            credentials: Some(b),
        });
    }
    if let Some(a) = h.authorization.take() {
        let kind = a
            .kind
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| "Bearer".into());
        if kind.eq_ignore_ascii_case("basic") {
            bail!("http.authorization.type: authorization type cannot be set to \"basic\", use \"basic_auth\" instead");
        }
        ways.push(Auth::Header {
            kind,
            credentials: Secret::of(
                "http.authorization.credentials",
                a.credentials,
                a.credentials_file,
            )?,
        });
    }
    if let Some(o) = h.oauth2.take() {
        if o.client_id.is_empty() || o.token_url.is_empty() {
            bail!("http.oauth2: client_id and token_url are required");
        }
        o.tls_config.versions().context("http.oauth2")?;
        ways.push(Auth::OAuth2(Box::new(OAuth2 {
            client_id: o.client_id,
            client_secret: Secret::of(
                "http.oauth2.client_secret",
                o.client_secret,
                o.client_secret_file,
            )?,
            scopes: o.scopes,
            token_url: o.token_url,
            endpoint_params: o.endpoint_params.into_iter().collect(),
            tls: o.tls_config,
        })));
    }
    if ways.len() > 1 {
        bail!("http: at most one of basic_auth, authorization, oauth2 and bearer_token(_file) must be configured");
    }
    Ok(ways.pop())
}

/// Go's units.Base2Bytes: "5B", "10KB", "1MiB", "2GB"... (K, M, G... are
/// powers of 1024); a bare number has no unit and is refused, as blackbox
/// refuses it. Zero or less: no limit.
fn parse_bytes(v: &serde_yaml_ng::Value) -> anyhow::Result<Option<u64>> {
    let n: i64 = match v {
        serde_yaml_ng::Value::Number(n) => bail!("{n}: a size needs a unit (B, KB, MB...)"),
        serde_yaml_ng::Value::String(s) => {
            let t = s.trim();
            let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            let (num, unit) = t.split_at(split);
            let num: i64 = num.parse().map_err(|_| anyhow!("{s:?} is not a size"))?;
            let shift = match unit {
                "" => bail!("{s:?}: a size needs a unit (B, KB, MB...)"),
                "B" => 0,
                "KB" | "KiB" => 10,
                "MB" | "MiB" => 20,
                "GB" | "GiB" => 30,
                "TB" | "TiB" => 40,
                "PB" | "PiB" => 50,
                _ => bail!("{s:?}: unknown unit {unit:?}"),
            };
            num.checked_mul(1 << shift)
                .ok_or_else(|| anyhow!("{s:?} is too large"))?
        }
        other => bail!("{other:?} is not a size"),
    };
    Ok((n > 0).then_some(n as u64))
}

/// Whether an Accept-Encoding value allows `coding` (listed with q > 0, or
/// "*").
pub fn accepts(value: &str, coding: &str) -> bool {
    value.split(',').any(|part| {
        let mut it = part.split(';');
        let name = it.next().unwrap_or("").trim();
        let q_zero = it.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.parse::<f64>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (name.eq_ignore_ascii_case(coding) || name == "*") && !q_zero
    })
}

fn module(raw: RawModule) -> anyhow::Result<Module> {
    if !super::PROBERS.iter().any(|(name, _)| *name == raw.prober) {
        let known: Vec<&str> = super::PROBERS.iter().map(|(n, _)| *n).collect();
        bail!(
            "unknown prober {:?} (known: {})",
            raw.prober,
            known.join(", ")
        );
    }
    let tcp = tcp(raw.tcp)?;
    let icmp = icmp(raw.icmp)?;
    let dns = dns(raw.dns, raw.prober == "dns")?;
    let grpc = grpc(raw.grpc)?;
    let timeout = match raw.timeout.as_deref() {
        None | Some("") => None,
        Some(t) => Some(crate::cli::parse_go_duration(t).map_err(|e| anyhow!("timeout: {e}"))?),
    };
    let mut h = raw.http;
    let auth = http_auth(&mut h)?;
    let method = match h.method.as_deref() {
        None | Some("") => http::Method::GET,
        Some(m) => http::Method::from_bytes(m.to_ascii_uppercase().as_bytes())
            .map_err(|_| anyhow!("http.method: {m:?} is not an HTTP method"))?,
    };
    let mut headers = Vec::new();
    for (k, v) in h.headers {
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| anyhow!("http.headers: {k:?} is not a header name"))?;
        let value = http::HeaderValue::from_str(&v)
            .map_err(|_| anyhow!("http.headers.{k}: {v:?} is not a header value"))?;
        headers.push((name, value));
    }
    let regexes = |field: &str, list: Vec<String>| -> anyhow::Result<Vec<Regex>> {
        list.iter()
            .map(|r| Regex::new(r).map_err(|e| anyhow!("http.{field}: {r:?}: {e}")))
            .collect()
    };
    let header_matches =
        |field: &str, list: Vec<RawHeaderMatch>| -> anyhow::Result<Vec<HeaderMatch>> {
            list.into_iter()
                .map(|m| {
                    Ok(HeaderMatch {
                        regexp: Regex::new(&m.regexp)
                            .map_err(|e| anyhow!("http.{field}: {:?}: {e}", m.regexp))?,
                        header: m.header,
                        allow_missing: m.allow_missing,
                    })
                })
                .collect()
        };
    let ip = ip_protocol("http", h.preferred_ip_protocol, h.ip_protocol_fallback)?;
    for v in &h.valid_http_versions {
        // HTTP/3.0 may be listed (blackbox's example does): never seen here.
        if !matches!(
            v.as_str(),
            "HTTP/1.0" | "HTTP/1.1" | "HTTP/2.0" | "HTTP/2" | "HTTP/3.0"
        ) {
            anyhow::bail!("http.valid_http_versions: unknown version {v:?}");
        }
    }
    let body_size_limit = match &h.body_size_limit {
        None => None,
        Some(v) => parse_bytes(v).map_err(|e| anyhow!("http.body_size_limit: {e}"))?,
    };
    let compression = match h.compression.as_deref() {
        None | Some("") => None,
        Some("identity") => Some(Compression::Identity),
        Some("gzip") => Some(Compression::Gzip),
        Some("deflate") => Some(Compression::Deflate),
        Some(c @ "br") => {
            bail!("http.compression: {c:?} is not supported (gzip, deflate, identity)")
        }
        Some(c) => bail!("http.compression: unknown compression {c:?}"),
    };
    if let Some(c) = compression {
        // As blackbox: an Accept-Encoding header must allow the compression.
        if let Some((_, v)) = headers.iter().find(|(k, _)| *k == header::ACCEPT_ENCODING) {
            if !accepts(v.to_str().unwrap_or(""), c.name()) {
                bail!(
                    "http: invalid configuration \"Accept-Encoding: {}\", \"compression: {}\"",
                    v.to_str().unwrap_or(""),
                    c.name()
                );
            }
        }
    }
    if h.body.as_deref().is_some_and(|b| !b.is_empty())
        && h.body_file.as_deref().is_some_and(|b| !b.is_empty())
    {
        bail!("http: setting body and body_file both are not allowed");
    }
    let http_headers =
        HttpHeaders::from_config(&h.http_headers).map_err(|e| anyhow!("http.http_headers: {e}"))?;
    let proxy = Proxy::from_config(
        h.proxy_url.as_deref().unwrap_or(""),
        h.no_proxy.as_deref().unwrap_or(""),
        h.proxy_from_environment,
        !h.proxy_connect_header.is_empty(),
    )
    .map_err(|e| anyhow!("http: {e}"))?;
    let mut proxy_connect_header = Vec::new();
    for (k, vs) in h.proxy_connect_header {
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| anyhow!("http.proxy_connect_header: {k:?} is not a header name"))?;
        for v in vs {
            let value = http::HeaderValue::from_str(&v)
                .map_err(|_| anyhow!("http.proxy_connect_header.{k}: not a header value"))?;
            proxy_connect_header.push((name.clone(), value));
        }
    }
    h.tls_config.versions().context("http")?;
    Ok(Module {
        yaml: String::new(),
        prober: raw.prober,
        timeout,
        http: Http {
            valid_status_codes: h.valid_status_codes,
            valid_http_versions: h.valid_http_versions,
            method,
            headers,
            body: h.body,
            follow_redirects: h.follow_redirects.unwrap_or(true),
            fail_if_ssl: h.fail_if_ssl,
            fail_if_not_ssl: h.fail_if_not_ssl,
            fail_if_body_matches: regexes(
                "fail_if_body_matches_regexp",
                h.fail_if_body_matches_regexp,
            )?,
            fail_if_body_not_matches: regexes(
                "fail_if_body_not_matches_regexp",
                h.fail_if_body_not_matches_regexp,
            )?,
            fail_if_header_matches: header_matches(
                "fail_if_header_matches",
                h.fail_if_header_matches,
            )?,
            fail_if_header_not_matches: header_matches(
                "fail_if_header_not_matches",
                h.fail_if_header_not_matches,
            )?,
            tls: h.tls_config,
            preferred_ip_protocol: ip.preferred,
            ip_protocol_fallback: ip.fallback,
            auth,
            accept_any_response: h.accept_any_response,
            fail_if_body_json_matches_cel: cel(
                "fail_if_body_json_matches_cel",
                h.fail_if_body_json_matches_cel,
            )?,
            fail_if_body_json_not_matches_cel: cel(
                "fail_if_body_json_not_matches_cel",
                h.fail_if_body_json_not_matches_cel,
            )?,
            enable_http2: h.enable_http2.unwrap_or(true),
            enable_http3: h.enable_http3,
            body_size_limit,
            compression,
            body_file: h.body_file.filter(|f| !f.is_empty()).map(Into::into),
            http_headers,
            proxy,
            proxy_connect_header,
            skip_resolve_phase_with_proxy: h.skip_resolve_phase_with_proxy,
        },
        tcp,
        icmp,
        dns,
        grpc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blackbox_example_modules_load() {
        let m = Modules::parse(
            r#"
modules:
  http_2xx:
    prober: http
    timeout: 5s
  http_post_2xx:
    prober: http
    http:
      method: POST
      headers:
        Content-Type: application/json
      body: '{}'
      valid_status_codes: [200, 201]
      fail_if_body_not_matches_regexp: ["ok"]
      tls_config:
        insecure_skip_verify: true
  icmp:
    prober: icmp
    icmp:
      preferred_ip_protocol: ip4
"#,
        )
        .unwrap();
        let post = &m.modules["http_post_2xx"];
        assert_eq!(post.http.method, http::Method::POST);
        assert_eq!(post.http.valid_status_codes, vec![200, 201]);
        assert!(post.http.follow_redirects);
        assert!(post.http.tls.insecure_skip_verify);
        assert_eq!(m.modules["http_2xx"].timeout, Some(Duration::from_secs(5)));
        assert_eq!(m.modules["icmp"].prober, "icmp");
    }

    #[test]
    fn errors_name_the_line_the_module_and_the_field() {
        let err = Modules::parse("modules:\n  m:\n    prober: http\n    http:\n      metod: GET\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("metod") && err.contains("line 5"), "{err}");
        let err = format!(
            "{:#}",
            Modules::parse("modules:\n  m:\n    prober: http\n    http:\n      fail_if_body_matches_regexp: ['(']\n")
                .unwrap_err()
        );
        assert!(
            err.contains("module \"m\"") && err.contains("fail_if_body_matches_regexp"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            Modules::parse("modules:\n  m:\n    prober: http\n    timeout: 5 parsecs\n")
                .unwrap_err()
        );
        assert!(err.contains("timeout"), "{err}");
    }
}
