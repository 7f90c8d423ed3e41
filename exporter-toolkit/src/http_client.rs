//! Pieces of Prometheus' common HTTP client (Go's net/http, httpproxy and
//! oauth2's client credentials) that both agents' clients need: which
//! proxy a URL goes through, an HTTP proxy's CONNECT, where a redirect
//! goes and how Go changes its method, and the OAuth 2.0 token request and
//! reply. The connections themselves stay with each client (the prober
//! times every phase, the shipper keeps one connection alive).

use std::net::IpAddr;

use http::{HeaderName, HeaderValue, Uri};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// Go's http.Client gives up after 10 redirects.
pub const MAX_REDIRECTS: usize = 10;

/// Where requests go: `proxy_url` (with `no_proxy`), the environment's
/// `HTTP(S)_PROXY`/`NO_PROXY` (`proxy_from_environment`), or straight.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Proxy {
    #[default]
    Direct,
    Url {
        url: Uri,
        no_proxy: Vec<String>,
    },
    /// HTTP_PROXY, HTTPS_PROXY and NO_PROXY, read at each request.
    FromEnvironment,
}

impl Proxy {
    /// Prometheus' `proxy_url`, `no_proxy`, `proxy_from_environment` and
    /// the checks its ProxyConfig.Validate makes. Only `http://` proxies.
    pub fn from_config(
        proxy_url: &str,
        no_proxy: &str,
        from_environment: bool,
        has_connect_headers: bool,
    ) -> Result<Proxy, String> {
        if has_connect_headers && proxy_url.is_empty() && !from_environment {
            return Err("if proxy_connect_header is configured, proxy_url or proxy_from_environment must also be configured".into());
        }
        if from_environment && !proxy_url.is_empty() {
            return Err(
                "if proxy_from_environment is configured, proxy_url must not be configured".into(),
            );
        }
        if from_environment && !no_proxy.is_empty() {
            return Err(
                "if proxy_from_environment is configured, no_proxy must not be configured".into(),
            );
        }
        if proxy_url.is_empty() && !no_proxy.is_empty() {
            return Err("if no_proxy is configured, proxy_url must also be configured".into());
        }
        if from_environment {
            return Ok(Proxy::FromEnvironment);
        }
        if proxy_url.is_empty() {
            return Ok(Proxy::Direct);
        }
        let url = parse_proxy_url(proxy_url).map_err(|e| format!("proxy_url: {e}"))?;
        Ok(Proxy::Url {
            url,
            no_proxy: no_proxy
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        })
    }
}

fn parse_proxy_url(s: &str) -> Result<Uri, String> {
    let url: Uri = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    match url.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(format!(
                "{s:?}: {other}:// proxies are not supported (http:// only)"
            ))
        }
        None => return Err(format!("{s:?}: no scheme (http://host:port)")),
    }
    if url.host().is_none_or(str::is_empty) {
        return Err(format!("{s:?}: no host"));
    }
    Ok(url)
}

/// The proxy a request to `url` goes through, if any, by Prometheus'
/// client's rules: a `proxy_url` alone takes everything; with `no_proxy`,
/// and from the environment, localhost and loopback addresses are never
/// proxied (Go's httpproxy). `env` reads the environment's variables.
pub fn proxy_for(
    url: &Uri,
    proxy: &Proxy,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Uri>, String> {
    let host = url
        .host()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']');
    let https = url.scheme_str() == Some("https");
    let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
    let (proxy, no_proxy) = match proxy {
        Proxy::Direct => return Ok(None),
        Proxy::Url { url, no_proxy } if no_proxy.is_empty() => return Ok(Some(url.clone())),
        Proxy::Url { url, no_proxy } => (url.clone(), no_proxy.clone()),
        Proxy::FromEnvironment => {
            let env =
                |names: [&str; 2]| names.iter().find_map(|n| env(n).filter(|v| !v.is_empty()));
            let Some(p) = (if https {
                env(["HTTPS_PROXY", "https_proxy"])
            } else {
                env(["HTTP_PROXY", "http_proxy"])
            }) else {
                return Ok(None);
            };
            // Go takes "host:port" as an http:// proxy.
            let p = if p.contains("://") {
                p
            } else {
                format!("http://{p}")
            };
            let proxy =
                parse_proxy_url(&p).map_err(|e| format!("proxy from the environment: {e}"))?;
            let no_proxy = env(["NO_PROXY", "no_proxy"]).unwrap_or_default();
            let list = no_proxy
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            (proxy, list)
        }
    };
    if host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
        return Ok(None);
    }
    if no_proxy.iter().any(|e| no_proxy_covers(e, host, port)) {
        return Ok(None);
    }
    Ok(Some(proxy))
}

/// Whether a `no_proxy` entry (Go's httpproxy forms: "*", an IP, a CIDR,
/// a domain with or without a leading "." or "*.", any with ":port")
/// covers `host:port`.
pub fn no_proxy_covers(entry: &str, host: &str, port: u16) -> bool {
    if entry == "*" {
        return true;
    }
    if let Some((net, bits)) = entry.split_once('/') {
        let (Ok(net), Ok(bits), Ok(ip)) = (
            net.parse::<IpAddr>(),
            bits.parse::<u32>(),
            host.parse::<IpAddr>(),
        ) else {
            return false;
        };
        return match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) if bits <= 32 => {
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) if bits <= 128 => {
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        };
    }
    if let Ok(ip) = entry
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return host.parse::<IpAddr>() == Ok(ip);
    }
    let (name, want_port) = match entry.rsplit_once(':') {
        Some((n, p)) => match p.parse::<u16>() {
            Ok(p) => (n, Some(p)),
            Err(_) => (entry, None),
        },
        None => (entry, None),
    };
    if want_port.is_some_and(|p| p != port) {
        return false;
    }
    let name = name.trim_start_matches('*').trim_start_matches('.');
    let host = host.to_ascii_lowercase();
    let name = name.to_ascii_lowercase();
    host == name || host.ends_with(&format!(".{name}"))
}

/// The proxy URL's user:password as Proxy-Authorization, as Go sends it.
pub fn proxy_authorization(proxy: &Uri) -> Option<HeaderValue> {
    let auth = proxy.authority()?.as_str();
    let (userinfo, _) = auth.rsplit_once('@')?;
    let userinfo = percent_decode(userinfo);
    HeaderValue::from_str(&format!("Basic {}", base64(userinfo.as_bytes()))).ok()
}

/// An HTTP proxy's CONNECT to `target` (`host:port`), with the proxy
/// URL's credentials and `proxy_connect_header`; the stream then goes to
/// `target`. A refusal is an error naming the proxy's status line.
pub async fn connect_tunnel<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    target: &str,
    proxy: &Uri,
    connect_headers: &[(HeaderName, HeaderValue)],
) -> Result<(), String> {
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(a) = proxy_authorization(proxy) {
        req.push_str(&format!(
            "Proxy-Authorization: {}\r\n",
            a.to_str().unwrap_or("")
        ));
    }
    for (k, v) in connect_headers {
        req.push_str(&format!(
            "{}: {}\r\n",
            title_case(k.as_str()),
            v.to_str().unwrap_or("")
        ));
    }
    req.push_str("\r\n");
    let io_err = |e: std::io::Error| format!("proxy CONNECT: {e}");
    io.write_all(req.as_bytes()).await.map_err(io_err)?;
    // Read the reply's head byte by byte: what follows is the tunnel's.
    let mut r = BufReader::with_capacity(1, &mut *io);
    let mut status = String::new();
    r.read_line(&mut status).await.map_err(io_err)?;
    let mut head = status.len();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.map_err(io_err)? == 0 {
            return Err("proxy CONNECT: the proxy closed the connection".into());
        }
        head += line.len();
        if head > 64 * 1024 {
            return Err("proxy CONNECT: the proxy's reply head is too long".into());
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
    }
    let code = status.split_whitespace().nth(1).unwrap_or("");
    if code != "200" {
        return Err(format!(
            "proxy CONNECT: the proxy answered {:?}",
            status.trim_end()
        ));
    }
    Ok(())
}

/// A `Location` against the URL it came from (absolute, scheme-relative,
/// absolute-path or relative-path).
pub fn resolve_location(base: &Uri, loc: &str) -> Result<Uri, String> {
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or("");
    let s = if loc.contains("://") {
        loc.to_string()
    } else if let Some(rest) = loc.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if loc.starts_with('/') {
        format!("{scheme}://{authority}{loc}")
    } else {
        let dir = base.path().rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        format!("{scheme}://{authority}{dir}/{loc}")
    };
    s.parse()
        .map_err(|e| format!("redirect to {loc:?}: not a URL: {e}"))
}

/// Whether Go's client follows `status` (given a Location), and the
/// method of the next request: 301, 302 and 303 turn a POST into a GET
/// without a body; 307 and 308 repeat the request, body included.
pub fn redirect_method(status: u16, method: &http::Method) -> Option<(http::Method, bool)> {
    match status {
        301..=303 => {
            if method == http::Method::GET || method == http::Method::HEAD {
                Some((method.clone(), false))
            } else {
                Some((http::Method::GET, false))
            }
        }
        307 | 308 => Some((method.clone(), true)),
        _ => None,
    }
}

/// application/x-www-form-urlencoded, as Go's url.QueryEscape.
pub fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Go's canonical header name: each dash-separated word capitalised.
pub fn title_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

pub fn base64(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

/// OAuth 2.0 client credentials (RFC 6749 4.4), as Go's
/// oauth2/clientcredentials asks for a token.
pub mod oauth2 {
    use super::{base64, form_encode};

    /// The token request's form: `grant_type`, `scope` (space separated)
    /// and `endpoint_params`. As in Go, a parameter may replace
    /// `grant_type` but no other one the request sets.
    pub fn token_form(
        scopes: &[String],
        endpoint_params: &[(String, String)],
    ) -> Result<String, String> {
        let mut form: Vec<(String, String)> =
            vec![("grant_type".into(), "client_credentials".into())];
        if !scopes.is_empty() {
            form.push(("scope".into(), scopes.join(" ")));
        }
        for (k, v) in endpoint_params {
            if k != "grant_type" && form.iter().any(|(fk, _)| fk == k) {
                return Err(format!("oauth2: cannot overwrite parameter {k:?}"));
            }
            form.retain(|(fk, _)| fk != k);
            form.push((k.clone(), v.clone()));
        }
        Ok(form
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&"))
    }

    /// The client's id and secret by HTTP Basic (URL-encoded first, as Go
    /// does), the form Go tries first.
    pub fn basic_credentials(client_id: &str, secret: &str) -> String {
        format!(
            "Basic {}",
            base64(format!("{}:{}", form_encode(client_id), form_encode(secret)).as_bytes())
        )
    }

    /// The form with the client's id and secret in it, which Go tries when
    /// the token endpoint refused them by Basic.
    pub fn form_with_credentials(form: &str, client_id: &str, secret: &str) -> String {
        let mut out = format!("{form}&client_id={}", form_encode(client_id));
        if !secret.is_empty() {
            out.push_str(&format!("&client_secret={}", form_encode(secret)));
        }
        out
    }

    /// A token as the endpoint gave it.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Token {
        /// `Bearer` unless the endpoint says otherwise (Go's Token.Type()).
        pub kind: String,
        pub access_token: String,
        /// `expires_in` in seconds; none (or 0): the token does not expire.
        pub expires_in: Option<u64>,
    }

    impl Token {
        /// The Authorization header's value.
        pub fn header(&self) -> String {
            format!("{} {}", self.kind, self.access_token)
        }
    }

    /// The token endpoint's reply: JSON, or a form when its content type
    /// says so (as Go reads both).
    pub fn parse_reply(content_type: Option<&str>, body: &[u8]) -> Result<Token, String> {
        let form = content_type.is_some_and(|c| {
            let c = c.split(';').next().unwrap_or("").trim();
            c == "application/x-www-form-urlencoded" || c == "text/plain"
        });
        let (access, kind, expires) = if form {
            let text = String::from_utf8_lossy(body);
            let get = |name: &str| {
                text.split('&').find_map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (super::percent_decode(&k.replace('+', " ")) == name)
                        .then(|| super::percent_decode(&v.replace('+', " ")))
                })
            };
            (
                get("access_token"),
                get("token_type"),
                get("expires_in").and_then(|v| v.parse::<u64>().ok()),
            )
        } else {
            let v: serde_json::Value = serde_json::from_slice(body)
                .map_err(|e| format!("oauth2: cannot parse json: {e}"))?;
            let s = |k: &str| v.get(k).and_then(|t| t.as_str()).map(str::to_string);
            // A number, or a number in a string, as Go's json.Number takes.
            let expires = match v.get("expires_in") {
                Some(serde_json::Value::Number(n)) => n.as_u64(),
                Some(serde_json::Value::String(s)) => s.parse().ok(),
                _ => None,
            };
            (s("access_token"), s("token_type"), expires)
        };
        let access_token = access
            .filter(|t| !t.is_empty())
            .ok_or("oauth2: server response missing access_token")?;
        let kind = match kind.as_deref() {
            None | Some("") => "Bearer".to_string(),
            Some(k) if k.eq_ignore_ascii_case("bearer") => "Bearer".to_string(),
            Some(k) if k.eq_ignore_ascii_case("mac") => "MAC".to_string(),
            Some(k) if k.eq_ignore_ascii_case("basic") => "Basic".to_string(),
            Some(k) => k.to_string(),
        };
        Ok(Token {
            kind,
            access_token,
            expires_in: expires.filter(|&s| s > 0),
        })
    }
}

/// Prometheus' `http_headers` (config/headers.go): per header name, fixed
/// `values`, `secrets` and `files` whose trimmed content is read at each
/// request, all added to the request; the headers the client sets itself
/// or that change the connection may not be set.
pub mod http_headers {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use http::{HeaderName, HeaderValue};
    use serde::{Deserialize, Serialize};

    /// Prometheus' reservedHeaders.
    pub const RESERVED: &[&str] = &[
        "Authorization",
        "Host",
        "Content-Encoding",
        "Content-Length",
        "Content-Type",
        "User-Agent",
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Www-Authenticate",
        "Accept-Encoding",
        "X-Prometheus-Remote-Write-Version",
        "X-Prometheus-Remote-Read-Version",
        "X-Prometheus-Scrape-Timeout-Seconds",
        "X-Amz-Date",
        "X-Amz-Security-Token",
        "X-Amz-Content-Sha256",
    ];

    /// One header's entry, as the YAML has it.
    #[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct Header {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub values: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub secrets: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub files: Vec<String>,
    }

    /// Where one value of a header comes from.
    #[derive(Clone, Debug, PartialEq)]
    pub enum Source {
        Value(HeaderValue),
        /// Read (and trimmed) at each request, so a rotated secret is
        /// picked up.
        File(PathBuf),
    }

    /// The checked `http_headers` of a client.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct HttpHeaders(pub Vec<(HeaderName, Vec<Source>)>);

    impl HttpHeaders {
        /// Checks names (not reserved), values; files are read later.
        pub fn from_config(config: &BTreeMap<String, Header>) -> Result<HttpHeaders, String> {
            let mut out = Vec::new();
            for (name, h) in config {
                let n = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("{name:?} is not a header name"))?;
                if let Some(r) = RESERVED.iter().find(|r| r.eq_ignore_ascii_case(name)) {
                    return Err(format!("setting header {r:?} is not allowed"));
                }
                let mut sources = Vec::new();
                for v in h.values.iter().chain(&h.secrets) {
                    let v = HeaderValue::from_str(v)
                        .map_err(|_| format!("{name}: a value is not a header value"))?;
                    sources.push(Source::Value(v));
                }
                sources.extend(h.files.iter().map(|f| Source::File(f.into())));
                out.push((n, sources));
            }
            Ok(HttpHeaders(out))
        }

        pub fn is_empty(&self) -> bool {
            self.0.is_empty()
        }

        /// The headers for one request: values as given, files read now.
        pub fn resolve(&self) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
            let mut out = Vec::new();
            for (name, sources) in &self.0 {
                for s in sources {
                    let v = match s {
                        Source::Value(v) => v.clone(),
                        Source::File(f) => {
                            let text = std::fs::read_to_string(f).map_err(|e| {
                                format!("unable to read headers file {}: {e}", f.display())
                            })?;
                            HeaderValue::from_str(text.trim()).map_err(|_| {
                                format!("headers file {}: {name}: not a header value", f.display())
                            })?
                        }
                    };
                    out.push((name.clone(), v));
                }
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_like_a_browser() {
        let base: Uri = "http://a:8080/x/y?q=1".parse().unwrap();
        assert_eq!(resolve_location(&base, "/z").unwrap(), "http://a:8080/z");
        assert_eq!(resolve_location(&base, "z").unwrap(), "http://a:8080/x/z");
        assert_eq!(resolve_location(&base, "//b/c").unwrap(), "http://b/c");
        assert_eq!(resolve_location(&base, "https://c/").unwrap(), "https://c/");
    }

    #[test]
    fn redirects_change_the_method_as_go() {
        let post = http::Method::POST;
        assert_eq!(
            redirect_method(301, &post),
            Some((http::Method::GET, false))
        );
        assert_eq!(
            redirect_method(303, &post),
            Some((http::Method::GET, false))
        );
        assert_eq!(redirect_method(307, &post), Some((post.clone(), true)));
        assert_eq!(redirect_method(308, &post), Some((post.clone(), true)));
        assert_eq!(redirect_method(304, &post), None);
        assert_eq!(redirect_method(300, &post), None);
    }

    #[test]
    fn no_proxy_entries_as_go_httpproxy() {
        assert!(no_proxy_covers("*", "a.b", 80));
        assert!(no_proxy_covers("example.com", "example.com", 80));
        assert!(no_proxy_covers("example.com", "www.example.com", 80));
        assert!(no_proxy_covers(".example.com", "www.example.com", 80));
        assert!(!no_proxy_covers("example.com", "badexample.com", 80));
        assert!(no_proxy_covers("example.com:8080", "example.com", 8080));
        assert!(!no_proxy_covers("example.com:8080", "example.com", 80));
        assert!(no_proxy_covers("10.0.0.0/8", "10.1.2.3", 80));
        assert!(!no_proxy_covers("10.0.0.0/8", "11.1.2.3", 80));
        assert!(no_proxy_covers("0.0.0.0/0", "1.2.3.4", 80));
        assert!(no_proxy_covers("fd00::/8", "fd12::1", 80));
        assert!(no_proxy_covers("192.0.2.1", "192.0.2.1", 80));
        assert!(!no_proxy_covers("10.0.0.0/99", "10.0.0.1", 80));
    }

    #[test]
    fn proxies_from_the_environment() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            }
        };
        let url = |u: &str| u.parse::<Uri>().unwrap();
        let env = vars(&[
            ("HTTP_PROXY", "plain.proxy:3128"),
            ("https_proxy", "http://tls.proxy:8080"),
            ("NO_PROXY", "internal.example,10.0.0.0/8"),
        ]);
        let p = |u: &str| {
            proxy_for(&url(u), &Proxy::FromEnvironment, env)
                .unwrap()
                .map(|p| p.to_string())
        };
        assert_eq!(
            p("http://a.example/").as_deref(),
            Some("http://plain.proxy:3128/")
        );
        assert_eq!(
            p("https://a.example/").as_deref(),
            Some("http://tls.proxy:8080/")
        );
        assert_eq!(p("http://db.internal.example/"), None);
        assert_eq!(p("http://10.1.1.1/"), None);
        // Loopback is never proxied from the environment, as in Go.
        assert_eq!(p("http://127.0.0.1:8080/"), None);
        assert_eq!(p("http://localhost/"), None);
        assert_eq!(
            proxy_for(
                &url("http://a.example/"),
                &Proxy::FromEnvironment,
                vars(&[])
            )
            .unwrap(),
            None
        );
        assert!(proxy_for(
            &url("http://a.example/"),
            &Proxy::FromEnvironment,
            vars(&[("HTTP_PROXY", "socks5://s:1080")])
        )
        .is_err());
        // A proxy_url alone takes every target, loopback too.
        let fixed = Proxy::Url {
            url: url("http://p:1/"),
            no_proxy: vec![],
        };
        assert!(proxy_for(&url("http://127.0.0.1/"), &fixed, vars(&[]))
            .unwrap()
            .is_some());
    }

    #[test]
    fn proxy_settings_are_checked_as_prometheus_does() {
        assert_eq!(Proxy::from_config("", "", false, false), Ok(Proxy::Direct));
        assert_eq!(
            Proxy::from_config("", "", true, true),
            Ok(Proxy::FromEnvironment)
        );
        let p = Proxy::from_config(
            "http://u:p@proxy:3128",
            "a.example, 10.0.0.0/8",
            false,
            true,
        )
        .unwrap();
        assert_eq!(
            p,
            Proxy::Url {
                url: "http://u:p@proxy:3128".parse().unwrap(),
                no_proxy: vec!["a.example".into(), "10.0.0.0/8".into()]
            }
        );
        for (url, no, env, hdr, want) in [
            ("", "", false, true, "proxy_connect_header"),
            ("http://p:1", "", true, false, "proxy_url must not"),
            ("", "x", true, false, "no_proxy must not"),
            ("", "x", false, false, "proxy_url must also"),
            (
                "socks5://p:1",
                "",
                false,
                false,
                "socks5:// proxies are not supported",
            ),
            ("p:1", "", false, false, "proxy_url"),
        ] {
            let e = Proxy::from_config(url, no, env, hdr).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn encodings() {
        assert_eq!(percent_decode("a%3Ab%zz%4"), "a:b%zz%4");
        assert_eq!(form_encode("a b&c=é"), "a+b%26c%3D%C3%A9");
        assert_eq!(title_case("proxy-authorization"), "Proxy-Authorization");
        assert_eq!(title_case("x-api-key"), "X-Api-Key");
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(
            proxy_authorization(&"http://us%40r:p%3Ass@p:1".parse().unwrap())
                .unwrap()
                .to_str()
                .unwrap(),
            format!("Basic {}", base64(b"us@r:p:ss"))
        );
    }

    #[test]
    fn oauth2_requests_and_replies() {
        use oauth2::*;
        assert_eq!(
            token_form(
                &["a".into(), "b c".into()],
                &[("audience".into(), "x y".into())]
            )
            .unwrap(),
            "grant_type=client_credentials&scope=a+b+c&audience=x+y"
        );
        assert_eq!(
            token_form(&[], &[("grant_type".into(), "other".into())]).unwrap(),
            "grant_type=other"
        );
        assert!(token_form(&["a".into()], &[("scope".into(), "b".into())])
            .unwrap_err()
            .contains("scope"));
        assert_eq!(
            basic_credentials("id:1", "s&t"),
            format!("Basic {}", base64(b"id%3A1:s%26t"))
        );
        assert_eq!(
            form_with_credentials("grant_type=client_credentials", "i", ""),
            "grant_type=client_credentials&client_id=i"
        );
        let t = parse_reply(
            Some("application/json"),
            br#"{"access_token":"abc","token_type":"bearer","expires_in":3600}"#,
        )
        .unwrap();
        assert_eq!(t.header(), "Bearer abc");
        assert_eq!(t.expires_in, Some(3600));
        let t = parse_reply(None, br#"{"access_token":"abc","expires_in":"60"}"#).unwrap();
        assert_eq!((t.kind.as_str(), t.expires_in), ("Bearer", Some(60)));
        let t = parse_reply(
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            b"access_token=a%2Bb&token_type=mac&expires_in=0",
        )
        .unwrap();
        assert_eq!((t.header().as_str(), t.expires_in), ("MAC a+b", None));
        assert!(parse_reply(None, br#"{"token_type":"bearer"}"#)
            .unwrap_err()
            .contains("missing access_token"));
        assert!(parse_reply(None, b"<html>").unwrap_err().contains("json"));
    }
}

#[cfg(test)]
mod http_headers_tests {
    use super::http_headers::{Header, HttpHeaders};
    use std::collections::BTreeMap;

    #[test]
    fn reserved_names_are_refused_and_files_read_at_each_resolve() {
        let one = |name: &str, h: Header| BTreeMap::from([(name.to_string(), h)]);
        let err = HttpHeaders::from_config(&one("user-agent", Header::default())).unwrap_err();
        assert_eq!(err, "setting header \"User-Agent\" is not allowed");
        let dir = std::env::temp_dir().join(format!("http-headers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("token");
        std::fs::write(&f, "  first\n").unwrap();
        let h = HttpHeaders::from_config(&one(
            "X-Token",
            Header {
                values: vec!["v".into()],
                secrets: vec!["s".into()],
                files: vec![f.display().to_string()],
            },
        ))
        .unwrap();
        let got = |h: &HttpHeaders| -> Vec<String> {
            h.resolve()
                .unwrap()
                .iter()
                .map(|(n, v)| format!("{n}={}", v.to_str().unwrap()))
                .collect()
        };
        assert_eq!(got(&h), ["x-token=v", "x-token=s", "x-token=first"]);
        std::fs::write(&f, "second").unwrap();
        assert_eq!(got(&h)[2], "x-token=second");
        std::fs::remove_file(&f).unwrap();
        assert!(h
            .resolve()
            .unwrap_err()
            .contains("unable to read headers file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
