//! What the Docker sources share: connecting to the Engine (a `unix://`
//! socket or `tcp://`/`http://`/`https://` address, API version negotiated
//! so an older Engine answers), config checks, and the positions they save.
//!
//! Over TCP, a `docker_sd_configs` entry's HTTP client options apply to
//! every request, the containers' logs included: `tls_config` (TLS for
//! `https://`, and for `tcp://` when set, as the docker CLI's `--tls`),
//! `basic_auth`, `authorization`, `bearer_token[_file]` and `http_headers`.
//! Prometheus applies them to `http://` and `https://` hosts only, and
//! promtail fetches the logs without them; a `tcp://` host with them would
//! there silently go without, here it uses them.
//!
//! A position is the Engine timestamp of the last delivered line or event,
//! written as `<seconds>.<nanoseconds>` (the form the Engine's own `since`
//! takes). promtail writes whole seconds under the same keys; such a value
//! is read as "everything from that second on" (a few duplicates, no loss).

use std::collections::HashMap;
use std::sync::Arc;

use bollard::Docker;
use exporter_toolkit::http_client::http_headers::HttpHeaders;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::config::{ConfigError, DockerFilter, DockerSdConfig, ScrapeConfig};

/// Seconds the Engine has to answer a request (not the length of a stream).
const REQUEST_TIMEOUT_SECS: u64 = 30;

/// Checks a `host` the way Prometheus does (required, a known scheme).
pub fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("host missing".into());
    }
    let known = ["unix://", "tcp://", "http://", "https://"];
    if !known.iter().any(|s| host.starts_with(s)) || known.contains(&host) {
        return Err(format!(
            "host {host:?}: expected unix:///path/to/docker.sock, tcp://host:port, http://host:port or https://host:port"
        ));
    }
    Ok(())
}

/// The config checks of a scrape config's Docker sources.
pub fn validate(i: usize, sc: &ScrapeConfig) -> Result<(), ConfigError> {
    for (j, d) in sc.docker_sd_configs.iter().enumerate() {
        let at = format!("scrape_configs[{i}].docker_sd_configs[{j}]");
        check_host(&d.host).map_err(|e| ConfigError::new(format!("{at}: {e}")))?;
        let bad = |key: &str, why: &str| ConfigError::new(format!("{at}.{key}: {why}"));
        if d.host.starts_with("unix://") {
            for (key, set) in [
                ("basic_auth", d.basic_auth.is_some()),
                ("authorization", d.authorization.is_some()),
                ("oauth2", d.oauth2.is_some()),
                ("bearer_token", !d.bearer_token.is_empty()),
                ("bearer_token_file", !d.bearer_token_file.is_empty()),
                ("proxy_url", !d.proxy_url.is_empty()),
                ("http_headers", !d.http_headers.is_empty()),
                ("tls_config", d.tls_config != Default::default()),
            ] {
                if set {
                    return Err(bad(key, "not used with a unix:// host"));
                }
            }
        } else {
            if d.oauth2.is_some() {
                return Err(bad("oauth2", "not supported by this shipper for the Docker Engine (use basic_auth, authorization or bearer_token)"));
            }
            if !d.proxy_url.is_empty() {
                return Err(bad(
                    "proxy_url",
                    "not supported by this shipper for the Docker Engine",
                ));
            }
            if d.host.starts_with("http://") && d.tls_config != Default::default() {
                return Err(bad(
                    "tls_config",
                    "not used with an http:// host (use https:// or tcp://)",
                ));
            }
            EngineHttp::credentials_check(d).map_err(|e| ConfigError::new(format!("{at}: {e}")))?;
        }
        if d.refresh_interval.get().is_zero() {
            return Err(ConfigError::new(format!(
                "{at}.refresh_interval: must be greater than 0"
            )));
        }
        for (k, f) in d.filters.iter().enumerate() {
            if f.name.is_empty() {
                return Err(ConfigError::new(format!(
                    "{at}.filters[{k}].name: required"
                )));
            }
        }
    }
    if let Some(e) = &sc.docker_events {
        let at = format!("scrape_configs[{i}].docker_events");
        check_host(&e.host).map_err(|err| ConfigError::new(format!("{at}: {err}")))?;
        for (k, f) in e.filters.iter().enumerate() {
            if f.name.is_empty() {
                return Err(ConfigError::new(format!(
                    "{at}.filters[{k}].name: required"
                )));
            }
        }
    }
    Ok(())
}

/// A client for `host` (checked by [`check_host`]), its API version agreed
/// with the Engine; `http` are the HTTP client options for a TCP host.
pub async fn connect(host: &str, http: Option<EngineHttp>) -> Result<Docker, String> {
    check_host(host)?;
    let docker = if host.starts_with("unix://") {
        Docker::connect_with_unix(host, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
    } else {
        let http = Arc::new(http.unwrap_or_default());
        let tls = match &http.tls {
            Some(t) => Some(Arc::clone(t)),
            None if host.starts_with("https://") => Some(Arc::new(
                crate::client::transport::client_tls_config(&Default::default())?,
            )),
            None => None,
        };
        let addr = host
            .split_once("://")
            .map_or(host, |(_, a)| a)
            .trim_end_matches('/');
        let target = Arc::new(Target {
            addr: addr.to_string(),
            tls,
            http,
        });
        Docker::connect_with_custom_transport(
            move |req: bollard::BollardRequest| {
                let target = Arc::clone(&target);
                async move {
                    target
                        .send(req)
                        .await
                        .map_err(|e| bollard::errors::Error::IOError {
                            err: std::io::Error::other(e),
                        })
                }
            },
            // bollard builds each request's URL on this; `send` keeps its path.
            Some(format!("http://{addr}")),
            REQUEST_TIMEOUT_SECS,
            bollard::API_DEFAULT_VERSION,
        )
    }
    .map_err(|e| format!("Docker host {host}: {e}"))?;
    docker
        .negotiate_version()
        .await
        .map_err(|e| format!("Docker host {host}: {e}"))
}

/// A client for a `docker_sd_configs` entry, with its HTTP client options.
pub async fn connect_sd(d: &DockerSdConfig) -> Result<Docker, String> {
    let http = if d.host.starts_with("unix://") {
        None
    } else {
        Some(EngineHttp::new(d).map_err(|e| format!("Docker host {}: {e}", d.host))?)
    };
    connect(&d.host, http).await
}

/// Prometheus' HTTP client options of a `docker_sd_configs` entry, for a
/// TCP host: credentials read when connecting (so a rotated file is picked
/// up at the next connection), `http_headers` files at each request.
#[derive(Clone, Debug, Default)]
pub struct EngineHttp {
    /// `tls_config` when set, and the server name to check.
    tls: Option<Arc<rustls::ClientConfig>>,
    server_name: Option<String>,
    authorization: Option<HeaderValue>,
    http_headers: HttpHeaders,
}

impl EngineHttp {
    /// The options of `d` (a TCP host), files read now.
    pub fn new(d: &DockerSdConfig) -> Result<EngineHttp, String> {
        let tls = if d.tls_config != Default::default() {
            let settings = crate::app::tls_settings(&d.tls_config)?;
            Some(Arc::new(crate::client::transport::client_tls_config(
                &settings,
            )?))
        } else {
            None
        };
        let read = |key: &str, f: &str| {
            std::fs::read_to_string(f)
                .map(|s| s.trim().to_string())
                .map_err(|e| format!("{key} {f}: {e}"))
        };
        let or_file = |key: &str, v: &str, f: &str| {
            if f.is_empty() {
                Ok(v.to_string())
            } else {
                read(key, f)
            }
        };
        let authorization = if let Some(b) = &d.basic_auth {
            let user = or_file("basic_auth.username_file", &b.username, &b.username_file)?;
            let pass = or_file("basic_auth.password_file", &b.password, &b.password_file)?;
            Some(format!(
                "Basic {}",
                exporter_toolkit::http_client::base64(format!("{user}:{pass}").as_bytes())
            ))
        } else if let Some(a) = &d.authorization {
            let kind = if a.kind.trim().is_empty() {
                "Bearer"
            } else {
                a.kind.trim()
            };
            let cred = or_file(
                "authorization.credentials_file",
                &a.credentials,
                &a.credentials_file,
            )?;
            Some(format!("{kind} {cred}"))
        } else if !d.bearer_token.is_empty() || !d.bearer_token_file.is_empty() {
            let token = or_file("bearer_token_file", &d.bearer_token, &d.bearer_token_file)?;
            Some(format!("Bearer {token}"))
        } else {
            None
        };
        let authorization = authorization
            .map(|a| {
                HeaderValue::from_str(&a)
                    .map_err(|_| "the credentials are not a valid header value".to_string())
            })
            .transpose()?;
        Ok(EngineHttp {
            tls,
            server_name: (!d.tls_config.server_name.is_empty())
                .then(|| d.tls_config.server_name.clone()),
            authorization,
            http_headers: HttpHeaders::from_config(&d.http_headers)
                .map_err(|e| format!("http_headers: {e}"))?,
        })
    }

    /// Prometheus' checks of the credentials (HTTPClientConfig.Validate).
    fn credentials_check(d: &DockerSdConfig) -> Result<(), String> {
        let bearer = !d.bearer_token.is_empty() || !d.bearer_token_file.is_empty();
        if !d.bearer_token.is_empty() && !d.bearer_token_file.is_empty() {
            return Err(
                "at most one of bearer_token & bearer_token_file must be configured".into(),
            );
        }
        if d.basic_auth.is_some() && bearer {
            return Err("at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured".into());
        }
        if let Some(a) = &d.authorization {
            if bearer {
                return Err(
                    "authorization is not compatible with bearer_token & bearer_token_file".into(),
                );
            }
            if !a.credentials.is_empty() && !a.credentials_file.is_empty() {
                return Err("at most one of authorization credentials & credentials_file must be configured".into());
            }
            if a.kind.trim().eq_ignore_ascii_case("basic") {
                return Err(
                    "authorization type cannot be set to \"basic\", use \"basic_auth\" instead"
                        .into(),
                );
            }
            if d.basic_auth.is_some() {
                return Err(
                    "at most one of basic_auth, oauth2 & authorization must be configured".into(),
                );
            }
        }
        Ok(())
    }
}

/// A TCP Engine and how to talk to it: one connection per request (a
/// listing every `refresh_interval`, one long stream per container).
struct Target {
    /// `host:port`.
    addr: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    http: Arc<EngineHttp>,
}

impl Target {
    async fn send<B>(&self, req: Request<B>) -> Result<Response<Incoming>, String>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (mut parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        parts.uri = path.parse().map_err(|e| format!("{path}: {e}"))?;
        let headers = &mut parts.headers;
        headers.insert(
            http::header::HOST,
            HeaderValue::from_str(&self.addr)
                .map_err(|_| format!("host {:?}: not a header value", self.addr))?,
        );
        if let Some(a) = &self.http.authorization {
            headers.insert(http::header::AUTHORIZATION, a.clone());
        }
        for (name, value) in self.http.http_headers.resolve()? {
            headers.append(name, value);
        }
        let tcp = tokio::net::TcpStream::connect(&self.addr)
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.addr))?;
        let _ = tcp.set_nodelay(true);
        let req = Request::from_parts(parts, body);
        match &self.tls {
            None => send_over(tcp, req, &self.addr).await,
            Some(config) => {
                let name = self.http.server_name.clone().unwrap_or_else(|| {
                    let host = self
                        .addr
                        .rsplit_once(':')
                        .map_or(self.addr.as_str(), |(h, _)| h);
                    host.trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string()
                });
                let name = rustls::pki_types::ServerName::try_from(name.clone())
                    .map_err(|e| format!("TLS server name {name:?}: {e}"))?;
                let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake with {}: {e}", self.addr))?;
                send_over(tls, req, &self.addr).await
            }
        }
    }
}

async fn send_over<S, B>(io: S, req: Request<B>, addr: &str) -> Result<Response<Incoming>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
    tokio::spawn(conn);
    send.send_request(req)
        .await
        .map_err(|e| format!("{addr}: {e}"))
}

/// `filters` as the Engine's API takes them: the values of each name
/// together (a name given twice is one filter with both lists).
pub fn filters(list: &[DockerFilter]) -> HashMap<String, Vec<String>> {
    let mut filters: HashMap<String, Vec<String>> = HashMap::new();
    for f in list {
        filters
            .entry(f.name.clone())
            .or_default()
            .extend(f.values.iter().cloned());
    }
    filters
}

/// An Engine timestamp (RFC 3339 with nanoseconds) in ns since the epoch.
pub fn parse_timestamp(s: &str) -> Option<u64> {
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    u64::try_from(t.timestamp_nanos_opt()?).ok()
}

/// A position as saved: `<seconds>.<nanoseconds>`.
pub fn format_position(ns: u64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

/// A saved position: the last delivered timestamp in ns. promtail's whole
/// seconds mean "up to but not including that second" (it saved the second
/// of its last line, and later lines of that second may not have been sent).
pub fn parse_position(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.split_once('.') {
        Some((secs, frac)) => {
            if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let secs: u64 = secs.parse().ok()?;
            let nanos: u64 = format!("{frac:0<9}").parse().ok()?;
            secs.checked_mul(1_000_000_000)?.checked_add(nanos)
        }
        None => {
            let secs: u64 = s.parse().ok()?;
            Some(secs.checked_mul(1_000_000_000)?.saturating_sub(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_read_promtails_seconds() {
        let ns = 1_700_000_000_123_456_789;
        assert_eq!(format_position(ns), "1700000000.123456789");
        assert_eq!(parse_position(&format_position(ns)), Some(ns));
        assert_eq!(
            parse_position("1700000000.5"),
            Some(1_700_000_000_500_000_000)
        );
        assert_eq!(
            parse_position("1700000000"),
            Some(1_699_999_999_999_999_999)
        );
        assert_eq!(parse_position("abc"), None);
        assert_eq!(parse_position("1.x"), None);
    }

    #[test]
    fn engine_timestamps() {
        assert_eq!(
            parse_timestamp("2017-10-20T18:50:06.978096559Z"),
            Some(1_508_525_406_978_096_559)
        );
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn bad_docker_blocks_are_named_in_the_error() {
        let err = |yaml: &str| crate::config::from_str(yaml).unwrap_err().message;
        let e = err("scrape_configs:\n  - job_name: d\n    docker_sd_configs:\n      - refresh_interval: 5s\n");
        assert_eq!(e, "scrape_configs[0].docker_sd_configs[0]: host missing");
        let e = err(
            "scrape_configs:\n  - job_name: e\n    docker_events:\n      host: /run/docker.sock\n",
        );
        assert!(
            e.starts_with("scrape_configs[0].docker_events: host \"/run/docker.sock\""),
            "{e}"
        );
        let sd = |host: &str, extra: &str| {
            err(&format!("scrape_configs:\n  - job_name: d\n    docker_sd_configs:\n      - host: {host}\n{extra}"))
        };
        assert_eq!(
            sd(
                "unix:///run/docker.sock",
                "        tls_config: {insecure_skip_verify: true}\n"
            ),
            "scrape_configs[0].docker_sd_configs[0].tls_config: not used with a unix:// host"
        );
        assert!(sd("http://e:2375", "        tls_config: {ca_file: /ca}\n")
            .contains("tls_config: not used with an http:// host"));
        assert!(sd(
            "tcp://e:2376",
            "        oauth2: {client_id: a, token_url: http://t/}\n"
        )
        .contains("oauth2: not supported by this shipper"));
        assert!(sd(
            "tcp://e:2376",
            "        basic_auth: {username: u}\n        bearer_token: t\n"
        )
        .contains("at most one of basic_auth"));
        assert!(sd(
            "tcp://e:2376",
            "        authorization: {type: basic, credentials: x}\n"
        )
        .contains("use \"basic_auth\""));
        let e = err("scrape_configs:\n  - job_name: e\n    docker_events:\n      hots: x\n");
        assert!(e.contains("hots"), "{e}");
        let ok = crate::config::from_str(
            "scrape_configs:\n  - job_name: e\n    docker_events:\n      labels: {job: docker_events}\n",
        )
        .unwrap();
        assert_eq!(
            ok.scrape_configs[0].docker_events.as_ref().unwrap().host,
            "unix:///var/run/docker.sock"
        );
    }

    #[test]
    fn hosts() {
        assert!(check_host("unix:///var/run/docker.sock").is_ok());
        assert!(check_host("tcp://127.0.0.1:2375").is_ok());
        assert!(check_host("https://127.0.0.1:2376").is_ok());
        assert_eq!(check_host("").unwrap_err(), "host missing");
        assert!(check_host("/var/run/docker.sock")
            .unwrap_err()
            .contains("expected unix://"));
    }
}
