//! One keep-alive HTTP/1.1 connection to the push endpoint, over TCP or
//! TLS (rustls). A client sends one batch at a time (as promtail does), so
//! one connection is all it needs; it is reopened after any error.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
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

/// What came back: the status and (for errors) the start of the body.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

pub struct Transport {
    endpoint: Endpoint,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl Transport {
    pub fn new(endpoint: Endpoint, tls: &TlsSettings) -> Result<Transport, String> {
        let tls = if endpoint.https {
            let config = client_tls_config(tls)?;
            let name = tls
                .server_name
                .clone()
                .unwrap_or_else(|| endpoint.host.clone());
            let name = ServerName::try_from(name.clone())
                .map_err(|e| format!("tls_config.server_name {name:?}: {e}"))?;
            Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        Ok(Transport {
            endpoint,
            tls,
            conn: None,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let stream =
            tokio::net::TcpStream::connect((self.endpoint.host.as_str(), self.endpoint.port))
                .await
                .map_err(|e| format!("connecting to {}: {e}", self.endpoint.authority))?;
        let _ = stream.set_nodelay(true);
        match &self.tls {
            None => {
                let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| format!("HTTP handshake with {}: {e}", self.endpoint.authority))?;
                tokio::spawn(conn);
                Ok(send)
            }
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), stream)
                    .await
                    .map_err(|e| format!("TLS handshake with {}: {e}", self.endpoint.authority))?;
                let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                    .await
                    .map_err(|e| format!("HTTP handshake with {}: {e}", self.endpoint.authority))?;
                tokio::spawn(conn);
                Ok(send)
            }
        }
    }

    /// POSTs `body` with `headers`; the whole exchange is bounded by
    /// `timeout`. An error is a network failure (no status).
    pub async fn post(
        &mut self,
        body: Bytes,
        headers: &[(String, String)],
        timeout: Duration,
    ) -> Result<Answer, String> {
        match tokio::time::timeout(timeout, self.post_inner(body, headers)).await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => {
                self.conn = None;
                Err(e)
            }
            Err(_) => {
                self.conn = None;
                Err(format!(
                    "Post \"{}\": context deadline exceeded (timeout {timeout:?})",
                    self.url()
                ))
            }
        }
    }

    fn url(&self) -> String {
        let scheme = if self.endpoint.https { "https" } else { "http" };
        format!(
            "{scheme}://{}{}",
            self.endpoint.authority, self.endpoint.path
        )
    }

    async fn post_inner(
        &mut self,
        body: Bytes,
        headers: &[(String, String)],
    ) -> Result<Answer, String> {
        let reusable = match &mut self.conn {
            Some(c) => c.ready().await.is_ok(),
            None => false,
        };
        if !reusable {
            self.conn = Some(self.connect().await?);
        }
        let url = self.url();
        let Some(conn) = self.conn.as_mut() else {
            return Err("no connection".into());
        };
        let mut req = hyper::Request::post(self.endpoint.path.as_str())
            .header(hyper::header::HOST, self.endpoint.authority.as_str());
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| format!("building the request: {e}"))?;
        let resp = conn
            .send_request(req)
            .await
            .map_err(|e| format!("Post \"{url}\": {e}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("Post \"{url}\": reading the response: {e}"))?
            .to_bytes();
        // Loki's error messages are one line; keep logs bounded.
        let body = String::from_utf8_lossy(&body[..body.len().min(1024)])
            .trim_end()
            .to_string();
        Ok(Answer { status, body })
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
