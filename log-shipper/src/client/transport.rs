//! The push client's HTTP: keep-alive HTTP/1.1 connections over TCP or TLS
//! (rustls), as Prometheus' common client that promtail uses does it:
//! redirects followed as Go's client follows them (`follow_redirects`), an
//! HTTP proxy (`proxy_url`, `no_proxy`, `proxy_from_environment`,
//! `proxy_connect_header`: absolute-form requests for http, CONNECT for
//! https) and OAuth 2.0 client credentials (`oauth2`). A client sends one
//! batch at a time (as promtail does), so a connection per target is all
//! it needs; they are reopened after any error. HTTP/2 is never used:
//! promtail builds its client with HTTP/2 disabled, so `enable_http2`
//! changes nothing there either.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::time::Instant;

use bytes::Bytes;
use exporter_toolkit::http_client::{self, oauth2, Proxy};
use http::{HeaderName, HeaderValue, Method, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;

/// `tls_config` of a client, as promtail (Prometheus' common config) names it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TlsSettings {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Inline PEM, instead of the files.
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
    /// Go's names (`TLS12`, `TLS13`); unset: TLS 1.2 to 1.3.
    pub min_version: Option<String>,
    pub max_version: Option<String>,
}

/// A parsed `http://` or `https://` push URL.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, e.g. `/loki/api/v1/push`.
    pub path: String,
    /// `host:port` as written in the URL, for the Host header and the
    /// `host` label of the metrics.
    pub authority: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let (https, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(format!("url {url:?}: scheme must be http or https"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(format!(
                "url {url:?}: credentials in the URL are not supported, use basic_auth"
            ));
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let end = v6
                .find(']')
                .ok_or_else(|| format!("url {url:?}: unterminated IPv6 address"))?;
            let host = &v6[..end];
            let port = match &v6[end + 1..] {
                "" => default_port,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| format!("url {url:?}: invalid port"))?,
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    p.parse()
                        .map_err(|_| format!("url {url:?}: invalid port {p:?}"))?,
                ),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() {
            return Err(format!("url {url:?}: no host"));
        }
        Ok(Endpoint {
            https,
            host,
            port,
            path: path.to_string(),
            authority: authority.to_string(),
        })
    }
}

/// `oauth2` of a client: a client-credentials token, fetched from
/// `token_url` (with its own TLS and proxy settings), kept until it
/// expires and then fetched again, as Prometheus' client does.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OAuth2Settings {
    pub client_id: String,
    pub client_secret: Option<String>,
    /// Read at each request, so a rotated secret is picked up (and the
    /// token fetched again).
    pub client_secret_file: Option<PathBuf>,
    pub scopes: Vec<String>,
    pub token_url: String,
    pub endpoint_params: Vec<(String, String)>,
    pub tls: TlsSettings,
    pub proxy: Proxy,
    pub proxy_connect_header: Vec<(HeaderName, HeaderValue)>,
}

/// How requests travel: Prometheus' common HTTP client settings beyond
/// the URL and the credentials the client sets itself.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpSettings {
    pub tls: TlsSettings,
    pub proxy: Proxy,
    /// Sent to the proxy with each CONNECT (https through a proxy).
    pub proxy_connect_header: Vec<(HeaderName, HeaderValue)>,
    /// Follow 301, 302, 303, 307 and 308 (up to 10, as Go's client);
    /// otherwise a 3xx is the answer.
    pub follow_redirects: bool,
    pub oauth2: Option<OAuth2Settings>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            tls: TlsSettings::default(),
            proxy: Proxy::Direct,
            proxy_connect_header: Vec::new(),
            follow_redirects: true,
            oauth2: None,
        }
    }
}

/// What came back: the status and (for errors) the start of the body.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// One response, whole (bounded).
struct Reply {
    status: u16,
    location: Option<String>,
    content_type: Option<String>,
    body: Bytes,
}

/// The most of a response body read (Go's oauth2 reads 1 MiB of a token
/// reply; Loki's errors are one line).
const MAX_REPLY: usize = 1 << 20;

/// A connection is kept per target and proxy (a redirect may go elsewhere).
#[derive(Clone, Debug, PartialEq)]
struct ConnKey {
    https: bool,
    host: String,
    port: u16,
    proxy: Option<String>,
}

/// Connections kept open at once (the endpoint and a redirect's target).
const MAX_CONNS: usize = 4;

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

pub struct Transport {
    endpoint: Endpoint,
    url: Uri,
    tls: Arc<rustls::ClientConfig>,
    server_name: Option<String>,
    proxy: Proxy,
    connect_headers: Vec<(HeaderName, HeaderValue)>,
    follow_redirects: bool,
    oauth2: Option<Box<TokenSource>>,
    conns: Vec<(ConnKey, SendRequest<Full<Bytes>>)>,
}

impl Transport {
    pub fn new(endpoint: Endpoint, http: &HttpSettings) -> Result<Transport, String> {
        let url: Uri = format!(
            "{}://{}{}",
            if endpoint.https { "https" } else { "http" },
            endpoint.authority,
            endpoint.path
        )
        .parse()
        .map_err(|e| format!("url: {e}"))?;
        // Built whatever the scheme: a redirect may lead to https.
        let config = client_tls_config(&http.tls)?;
        if let Some(name) = &http.tls.server_name {
            ServerName::try_from(name.clone())
                .map_err(|e| format!("tls_config.server_name {name:?}: {e}"))?;
        }
        let oauth2 = match &http.oauth2 {
            None => None,
            Some(o) => Some(Box::new(TokenSource::new(o)?)),
        };
        Ok(Transport {
            endpoint,
            url,
            tls: Arc::new(config),
            server_name: http.tls.server_name.clone(),
            proxy: http.proxy.clone(),
            connect_headers: http.proxy_connect_header.clone(),
            follow_redirects: http.follow_redirects,
            oauth2,
            conns: Vec::new(),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// POSTs `body` with `headers`; the whole exchange (token, redirects)
    /// is bounded by `timeout`. An error is a failure without a status.
    pub async fn post(
        &mut self,
        body: Bytes,
        headers: &[(String, String)],
        timeout: Duration,
    ) -> Result<Answer, String> {
        let url = self.url.clone();
        match tokio::time::timeout(timeout, self.request(url.clone(), body, headers)).await {
            Ok(Ok(r)) => {
                // Loki's error messages are one line; keep logs bounded.
                let body = String::from_utf8_lossy(&r.body[..r.body.len().min(1024)])
                    .trim_end()
                    .to_string();
                Ok(Answer {
                    status: r.status,
                    body,
                })
            }
            Ok(Err(e)) => {
                self.conns.clear();
                Err(e)
            }
            Err(_) => {
                self.conns.clear();
                Err(format!(
                    "Post \"{url}\": context deadline exceeded (timeout {timeout:?})"
                ))
            }
        }
    }

    /// A POST and the redirects Go's client would follow: 301, 302 and 303
    /// turn it into a GET without a body, 307 and 308 repeat it; the 10th
    /// redirect is an error.
    async fn request(
        &mut self,
        mut url: Uri,
        body: Bytes,
        headers: &[(String, String)],
    ) -> Result<Reply, String> {
        let mut method = Method::POST;
        let mut body = Some(body);
        let mut redirects = 0;
        loop {
            let reply = self.hop(&url, &method, body.clone(), headers).await?;
            let next = match (&reply.location, self.follow_redirects) {
                (Some(loc), true) => {
                    http_client::redirect_method(reply.status, &method).map(|m| (loc.clone(), m))
                }
                _ => None,
            };
            let Some((loc, (next_method, keep_body))) = next else {
                return Ok(reply);
            };
            redirects += 1;
            if redirects >= http_client::MAX_REDIRECTS {
                return Err(format!(
                    "{} \"{url}\": stopped after {} redirects",
                    title(&method),
                    http_client::MAX_REDIRECTS
                ));
            }
            url = http_client::resolve_location(&url, &loc)?;
            if !keep_body {
                body = None;
            }
            method = next_method;
        }
    }

    /// One request and its reply, over a kept connection when there is one.
    async fn hop(
        &mut self,
        url: &Uri,
        method: &Method,
        body: Option<Bytes>,
        headers: &[(String, String)],
    ) -> Result<Reply, String> {
        let what = format!("{} \"{url}\"", title(method));
        let https = match url.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("{what}: unsupported protocol scheme")),
        };
        let host = url
            .host()
            .ok_or_else(|| format!("{what}: no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = url
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_else(|| host.clone());
        let proxy = http_client::proxy_for(url, &self.proxy, |n| std::env::var(n).ok())
            .map_err(|e| format!("{what}: {e}"))?;
        let authorization = match &mut self.oauth2 {
            Some(o) => Some(o.header().await.map_err(|e| format!("{what}: {e}"))?),
            None => None,
        };
        let key = ConnKey {
            https,
            host: host.clone(),
            port,
            proxy: proxy.as_ref().map(|p| p.to_string()),
        };
        let mut conn = None;
        if let Some(i) = self.conns.iter().position(|(k, _)| *k == key) {
            let (_, mut c) = self.conns.swap_remove(i);
            if c.ready().await.is_ok() {
                conn = Some(c);
            }
        }
        let mut conn = match conn {
            Some(c) => c,
            None => self
                .connect(&key, proxy.as_ref())
                .await
                .map_err(|e| format!("{what}: {e}"))?,
        };
        // Through a proxy, plain http asks it for the absolute URL.
        let target = match (&proxy, https) {
            (Some(_), false) => url.to_string(),
            _ => url
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into()),
        };
        let mut req = hyper::Request::builder()
            .method(method.clone())
            .uri(target)
            .header(hyper::header::HOST, authority.as_str());
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(a) = &authorization {
            req = req.header(hyper::header::AUTHORIZATION, a.as_str());
        }
        if let (Some(p), false) = (&proxy, https) {
            if let Some(a) = http_client::proxy_authorization(p) {
                req = req.header(hyper::header::PROXY_AUTHORIZATION, a);
            }
        }
        let req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| format!("building the request: {e}"))?;
        let resp = conn
            .send_request(req)
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        let status = resp.status().as_u16();
        let header = |name: hyper::header::HeaderName| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let location = header(hyper::header::LOCATION).filter(|l| !l.is_empty());
        let content_type = header(hyper::header::CONTENT_TYPE);
        let body = http_body_util::Limited::new(resp.into_body(), MAX_REPLY)
            .collect()
            .await
            .map_err(|e| format!("{what}: reading the response: {e}"))?
            .to_bytes();
        if self.conns.len() >= MAX_CONNS {
            self.conns.remove(0);
        }
        self.conns.push((key, conn));
        Ok(Reply {
            status,
            location,
            content_type,
            body,
        })
    }

    async fn connect(
        &self,
        key: &ConnKey,
        proxy: Option<&Uri>,
    ) -> Result<SendRequest<Full<Bytes>>, String> {
        let target = if key.host.contains(':') {
            format!("[{}]:{}", key.host, key.port)
        } else {
            format!("{}:{}", key.host, key.port)
        };
        let mut tcp = match proxy {
            None => tokio::net::TcpStream::connect((key.host.as_str(), key.port))
                .await
                .map_err(|e| format!("connecting to {target}: {e}"))?,
            Some(p) => {
                let host = p
                    .host()
                    .unwrap_or("")
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let port = p.port_u16().unwrap_or(80);
                tokio::net::TcpStream::connect((host, port))
                    .await
                    .map_err(|e| format!("connecting to the proxy {host}:{port}: {e}"))?
            }
        };
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Stream> = if key.https {
            if let Some(p) = proxy {
                http_client::connect_tunnel(&mut tcp, &target, p, &self.connect_headers).await?;
            }
            let name = self.server_name.clone().unwrap_or_else(|| key.host.clone());
            let name = ServerName::try_from(name.clone())
                .map_err(|e| format!("TLS server name {name:?}: {e}"))?;
            // No ALPN: HTTP/1.1, as promtail's client (built with HTTP/2
            // disabled, whatever enable_http2 says).
            let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {target}: {e}"))?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| format!("HTTP handshake with {target}: {e}"))?;
        tokio::spawn(conn);
        Ok(send)
    }
}

/// "Post", "Get": as Go's errors name the method.
fn title(m: &Method) -> String {
    http_client::title_case(&m.as_str().to_ascii_lowercase())
}

/// Go's oauth2 token source: the token kept while valid (until 10 s
/// before it expires), fetched again after; the client id and secret
/// sent by Basic first, then in the form if that is refused, and the way
/// that worked remembered.
struct TokenSource {
    settings: OAuth2Settings,
    transport: Transport,
    token: Option<(String, Option<Instant>)>,
    secret: Option<String>,
    credentials_in_form: Option<bool>,
}

/// A token this close to its expiry is fetched again (Go's expiryDelta).
const EXPIRY_DELTA: Duration = Duration::from_secs(10);

impl TokenSource {
    fn new(o: &OAuth2Settings) -> Result<TokenSource, String> {
        let endpoint =
            Endpoint::parse(&o.token_url).map_err(|e| format!("oauth2.token_url: {e}"))?;
        let transport = Transport::new(
            endpoint,
            &HttpSettings {
                tls: o.tls.clone(),
                proxy: o.proxy.clone(),
                proxy_connect_header: o.proxy_connect_header.clone(),
                follow_redirects: true,
                oauth2: None,
            },
        )
        .map_err(|e| format!("oauth2: {e}"))?;
        Ok(TokenSource {
            settings: o.clone(),
            transport,
            token: None,
            secret: None,
            credentials_in_form: None,
        })
    }

    /// The Authorization header's value.
    async fn header(&mut self) -> Result<String, String> {
        let secret = match (
            &self.settings.client_secret_file,
            &self.settings.client_secret,
        ) {
            (Some(f), _) => std::fs::read_to_string(f)
                .map(|s| s.trim().to_string())
                .map_err(|e| format!("unable to read oauth2 client secret {}: {e}", f.display()))?,
            (None, s) => s.clone().unwrap_or_default(),
        };
        if self.secret.as_ref() != Some(&secret) {
            // A new secret: a new token source, as Prometheus builds one.
            self.token = None;
            self.credentials_in_form = None;
            self.secret = Some(secret.clone());
        }
        if let Some((h, expiry)) = &self.token {
            if expiry.is_none_or(|e| Instant::now() + EXPIRY_DELTA <= e) {
                return Ok(h.clone());
            }
        }
        let s = &self.settings;
        let form = oauth2::token_form(&s.scopes, &s.endpoint_params)?;
        let token = match self.credentials_in_form {
            Some(in_form) => self.fetch(&form, &secret, in_form).await?,
            None => match self.fetch(&form, &secret, false).await {
                Ok(t) => {
                    self.credentials_in_form = Some(false);
                    t
                }
                Err(_) => {
                    let t = self.fetch(&form, &secret, true).await?;
                    self.credentials_in_form = Some(true);
                    t
                }
            },
        };
        let expiry = token
            .expires_in
            .map(|s| Instant::now() + Duration::from_secs(s));
        let header = token.header();
        self.token = Some((header.clone(), expiry));
        Ok(header)
    }

    async fn fetch(
        &mut self,
        form: &str,
        secret: &str,
        in_form: bool,
    ) -> Result<oauth2::Token, String> {
        let id = &self.settings.client_id;
        let mut headers = vec![
            (
                "content-type".to_string(),
                "application/x-www-form-urlencoded".to_string(),
            ),
            (
                "user-agent".to_string(),
                format!("log-shipper/{}", env!("CARGO_PKG_VERSION")),
            ),
        ];
        let body = if in_form {
            oauth2::form_with_credentials(form, id, secret)
        } else {
            headers.push((
                "authorization".to_string(),
                oauth2::basic_credentials(id, secret),
            ));
            form.to_string()
        };
        let url = self.transport.url.clone();
        // Boxed: the token's request is a request of the same kind.
        let reply = Box::pin(self.transport.request(url, Bytes::from(body), &headers))
            .await
            .map_err(|e| format!("oauth2: cannot fetch token: {e}"))?;
        if !(200..300).contains(&reply.status) {
            let text = String::from_utf8_lossy(&reply.body[..reply.body.len().min(512)])
                .trim_end()
                .to_string();
            return Err(format!(
                "oauth2: cannot fetch token: {}\nResponse: {text}",
                reply.status
            ));
        }
        oauth2::parse_reply(reply.content_type.as_deref(), &reply.body)
    }
}

/// The client side of `tls_config` (the server name is used when connecting).
pub fn client_tls_config(t: &TlsSettings) -> Result<rustls::ClientConfig, String> {
    exporter_toolkit::tls::client_config_with_versions(
        &exporter_toolkit::tls::ClientTls {
            ca_file: t.ca_file.clone(),
            cert_file: t.cert_file.clone(),
            key_file: t.key_file.clone(),
            ca: t.ca.clone(),
            cert: t.cert.clone(),
            key: t.key.clone(),
            insecure_skip_verify: t.insecure_skip_verify,
        },
        &exporter_toolkit::tls::protocol_versions(
            "tls_config",
            t.min_version.as_deref(),
            t.max_version.as_deref(),
        )?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_push_urls() {
        let e = Endpoint::parse("http://loki:3100/loki/api/v1/push").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("loki", 3100, "/loki/api/v1/push")
        );
        let e = Endpoint::parse("https://logs.example.com/loki/api/v1/push").unwrap();
        assert_eq!(
            (e.https, e.port, e.authority.as_str()),
            (true, 443, "logs.example.com")
        );
        let e = Endpoint::parse("http://[::1]:3100/push").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 3100));
        assert!(Endpoint::parse("ftp://x/").unwrap_err().contains("scheme"));
        assert!(Endpoint::parse("http://x:port/")
            .unwrap_err()
            .contains("invalid port"));
    }

    /// promtail's client is built with HTTP/2 disabled, so whatever
    /// `enable_http2` says it speaks HTTP/1.1; so does ours: a server
    /// that would take h2 is offered no ALPN protocol at all.
    #[tokio::test]
    async fn http2_is_never_offered_as_promtail() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let pk = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], pk)
        .unwrap();
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (alpn_tx, alpn_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let tls = tokio_rustls::TlsAcceptor::from(Arc::new(server))
                .accept(tcp)
                .await
                .unwrap();
            let _ = alpn_tx.send(tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec));
            let service = hyper::service::service_fn(|_req| async {
                let mut r = hyper::Response::new(Full::new(Bytes::new()));
                *r.status_mut() = hyper::StatusCode::NO_CONTENT;
                Ok::<_, hyper::Error>(r)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
        let endpoint =
            Endpoint::parse(&format!("https://127.0.0.1:{port}/loki/api/v1/push")).unwrap();
        let http = HttpSettings {
            tls: TlsSettings {
                insecure_skip_verify: true,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut t = Transport::new(endpoint, &http).unwrap();
        let a = t
            .post(Bytes::from_static(b"x"), &[], Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(a.status, 204);
        assert_eq!(alpn_rx.await.unwrap(), None);
    }

    #[test]
    fn tls_errors_name_the_setting_and_file() {
        let t = TlsSettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let e = client_tls_config(&t).unwrap_err();
        assert!(
            e.starts_with("tls_config.ca_file /nonexistent/ca.pem:"),
            "{e}"
        );
        let t = TlsSettings {
            cert_file: Some("/x".into()),
            ..Default::default()
        };
        assert!(client_tls_config(&t).unwrap_err().contains("together"));
        assert!(client_tls_config(&TlsSettings::default()).is_ok());
    }
}
