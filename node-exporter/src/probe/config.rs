//! The modules file of `--probe.config.file`, in blackbox_exporter's
//! format (`modules: NAME: {prober, timeout, http: {...}}`). Unknown keys
//! are errors naming the file and line; regexps are compiled at load.
//! Modules of the other blackbox probers (tcp, icmp, dns, grpc) load, so a
//! blackbox.yml runs unchanged, and answer "prober not supported".

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context};
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
    // Other probers' settings: accepted, not used.
    #[serde(default)]
    tcp: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    icmp: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    dns: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    grpc: Option<serde_yaml_ng::Value>,
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
        let file: File = serde_yaml_ng::from_str(text)?;
        let mut modules = BTreeMap::new();
        for (name, raw) in file.modules {
            let m = module(raw).with_context(|| format!("module {name:?}"))?;
            modules.insert(name, m);
        }
        Ok(Modules { modules })
    }
}

fn module(raw: RawModule) -> anyhow::Result<Module> {
    let _ = (&raw.tcp, &raw.icmp, &raw.dns, &raw.grpc);
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
    let preferred = h.preferred_ip_protocol.unwrap_or_else(|| "ip6".into());
    if !matches!(preferred.as_str(), "ip4" | "ip6") {
        anyhow::bail!("http.preferred_ip_protocol: {preferred:?} is neither \"ip4\" nor \"ip6\"");
    }
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
            preferred_ip_protocol: preferred,
            ip_protocol_fallback: h.ip_protocol_fallback.unwrap_or(true),
            basic_auth: h.basic_auth,
            bearer_token: h.bearer_token,
        },
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
