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
    basic_auth: Option<BasicAuth>,
    #[serde(default)]
    bearer_token: Option<String>,
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
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    #[serde(default)]
    pub password: Option<String>,
}

/// A loaded module.
#[derive(Debug)]
pub struct Module {
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
    pub basic_auth: Option<BasicAuth>,
    pub bearer_token: Option<String>,
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
        let mut modules = BTreeMap::new();
        for (name, raw) in file.modules {
            let m = module(raw).with_context(|| format!("module {name:?}"))?;
            modules.insert(name, m);
        }
        Ok(Modules { modules })
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
    let mut query_response = Vec::new();
    for (i, qr) in raw.query_response.into_iter().enumerate() {
        let expect = match qr.expect.as_deref() {
            None | Some("") => None,
            Some(r) => Some(
                Regex::new(r).map_err(|e| anyhow!("tcp.query_response[{i}].expect: {r:?}: {e}"))?,
            ),
        };
        query_response.push(QueryResponse {
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
    Ok(Grpc {
        ip: ip_protocol("grpc", raw.preferred_ip_protocol, raw.ip_protocol_fallback)?,
        service: raw.service,
        tls: raw.tls,
        tls_config: raw.tls_config,
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
    let h = raw.http;
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
        if !matches!(v.as_str(), "HTTP/1.0" | "HTTP/1.1" | "HTTP/2.0" | "HTTP/2") {
            anyhow::bail!("http.valid_http_versions: unknown version {v:?}");
        }
    }
    Ok(Module {
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
            basic_auth: h.basic_auth,
            bearer_token: h.bearer_token,
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
