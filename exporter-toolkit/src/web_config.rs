//! `--web.config.file` in Prometheus exporter-toolkit's format: TLS settings,
//! bcrypt-hashed basic-auth users, extra headers and `rate_limit`. Checked at
//! startup so that a bad file is a clear startup error, not a failure at
//! first scrape; `crate::web_config_reload` re-reads it while serving.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;

use crate::rate_limit::{RateLimit, RateLimiter};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    // Not `source`: anyhow's `{:#}` would print the cause twice.
    #[error("reading web config {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("parsing web config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("web config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTlsConfig>,
    http_server_config: Option<RawHttpConfig>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
    rate_limit: Option<RawRateLimit>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    interval: Option<String>,
    burst: Option<u32>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawTlsConfig {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    cert: Option<String>,
    key: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    client_ca: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    client_allowed_sans: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawHttpConfig {
    http2: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// A loaded, validated web configuration.
#[derive(Clone, Default)]
pub struct WebConfig {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub http2: bool,
    /// `rate_limit`, when set: requests beyond it are answered 429.
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// The files this config was built from besides itself (certificate,
    /// key, client CA), so that a change to any of them is noticed.
    pub files: Vec<PathBuf>,
    users: Arc<BasicAuthUsers>,
}

#[derive(Default)]
struct BasicAuthUsers {
    hashes: BTreeMap<String, String>,
    /// bcrypt is deliberately slow (~50 ms at cost 10): remember verdicts, as
    /// exporter-toolkit does, so that a scrape every 15 s costs nothing.
    verdicts: Mutex<HashMap<(String, String), bool>>,
    /// One bcrypt at a time, as exporter-toolkit: a flood of wrong
    /// passwords then costs one core, not every blocking thread.
    bcrypt: Mutex<()>,
}

const MAX_CACHED_VERDICTS: usize = 256;

impl WebConfig {
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| WebConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let raw: RawWebConfig = if text.trim().is_empty() {
            RawWebConfig::default()
        } else {
            serde_yaml_ng::from_str(&text).map_err(|e| WebConfigError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let invalid = |message: String| WebConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let rate_limiter = match raw.rate_limit {
            None => None,
            Some(r) => {
                let interval = match r.interval.as_deref() {
                    None | Some("") => std::time::Duration::ZERO,
                    Some(i) => crate::duration::parse_go_duration(i)
                        .map_err(|e| invalid(format!("rate_limit.interval: {e}")))?,
                };
                let burst = r.burst.unwrap_or(0);
                if burst == 0 && !interval.is_zero() {
                    return Err(invalid(
                        "rate_limit.burst must be at least 1 (0 would refuse every request)"
                            .to_string(),
                    ));
                }
                Some(Arc::new(RateLimiter::new(RateLimit { interval, burst })))
            }
        };
        let files = raw
            .tls_server_config
            .iter()
            .flat_map(|t| [&t.cert_file, &t.key_file, &t.client_ca_file])
            .flatten()
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| base.join(p))
            .collect();
        let http = raw.http_server_config.unwrap_or_default();
        let http2 = http.http2.unwrap_or(true);
        let tls = match raw.tls_server_config {
            // As exporter-toolkit: a block that sets no certificate, key or
            // client auth leaves TLS off.
            Some(t) if t.enables_tls() => {
                let mut cfg = crate::tls::server_config(&t.into(), base).map_err(invalid)?;
                if !http2 {
                    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
                }
                Some(Arc::new(cfg))
            }
            _ => None,
        };
        for (user, hash) in &raw.basic_auth_users {
            if !(hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$")) {
                return Err(invalid(format!(
                    "basic_auth_users: the password of user {user:?} is not a bcrypt hash \
                     (generate one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
                )));
            }
        }
        let mut headers = Vec::new();
        for (k, v) in &http.headers {
            check_header(k, v).map_err(invalid)?;
            let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                invalid(format!("http_server_config.headers: bad header name {k:?}"))
            })?;
            let value = http::HeaderValue::from_str(v).map_err(|_| {
                invalid(format!(
                    "http_server_config.headers: bad value for header {k:?}"
                ))
            })?;
            headers.push((name, value));
        }
        Ok(WebConfig {
            tls,
            headers,
            http2,
            rate_limiter,
            files,
            users: Arc::new(BasicAuthUsers {
                hashes: raw.basic_auth_users,
                verdicts: Mutex::new(HashMap::new()),
                bcrypt: Mutex::new(()),
            }),
        })
    }

    pub fn requires_auth(&self) -> bool {
        !self.users.hashes.is_empty()
    }

    /// Checks an `Authorization` header value against the configured users.
    /// Returns true when no users are configured.
    pub fn authorize(&self, authorization: Option<&str>) -> bool {
        if !self.requires_auth() {
            return true;
        }
        let Some((user, password)) = authorization.and_then(parse_basic_auth) else {
            return false;
        };
        let key = (user.clone(), password.clone());
        if let Some(v) = self
            .users
            .verdicts
            .lock()
            .ok()
            .and_then(|m| m.get(&key).copied())
        {
            return v;
        }
        let _one_at_a_time = self.users.bcrypt.lock();
        let verdict = match self.users.hashes.get(&user) {
            Some(hash) => bcrypt::verify(&password, hash).unwrap_or(false),
            None => {
                // Spend the same time for unknown users, so that timing does
                // not tell which user names exist.
                let _ = bcrypt::verify(&password, DUMMY_HASH);
                false
            }
        };
        if let Ok(mut m) = self.users.verdicts.lock() {
            if m.len() >= MAX_CACHED_VERDICTS {
                m.clear();
            }
            m.insert(key, verdict);
        }
        verdict
    }
}

/// The only headers exporter-toolkit lets `http_server_config.headers` set,
/// with the values it allows (empty: any).
const EXTRA_HTTP_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

fn check_header(name: &str, value: &str) -> Result<(), String> {
    let Some((_, allowed)) = EXTRA_HTTP_HEADERS.iter().find(|(n, _)| *n == name) else {
        return Err(format!(
            "http_server_config.headers: HTTP header {name:?} can not be configured (allowed: {})",
            EXTRA_HTTP_HEADERS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    if !allowed.is_empty() && !allowed.contains(&value) {
        return Err(format!(
            "http_server_config.headers: invalid value for {name}: {value:?}; expected one of: {}",
            allowed.join(", ")
        ));
    }
    Ok(())
}

/// bcrypt("dummy") at cost 10.
const DUMMY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

fn parse_basic_auth(header: &str) -> Option<(String, String)> {
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// TLS settings as written in the file, handed to [`crate::tls`].
#[derive(Debug, Default, Clone)]
pub struct TlsSettings {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub client_auth_type: Option<String>,
    pub client_ca_file: Option<PathBuf>,
    pub client_ca: Option<String>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    pub cipher_suites: Option<Vec<String>>,
    pub curve_preferences: Option<Vec<String>>,
    pub client_allowed_sans: Option<Vec<String>>,
}

impl RawTlsConfig {
    /// exporter-toolkit's `TLSConfig.IsEnabled`.
    /// Empty strings count as unset, as in Go.
    fn enables_tls(&self) -> bool {
        let path = |p: &Option<PathBuf>| p.as_ref().is_some_and(|p| !p.as_os_str().is_empty());
        let text = |t: &Option<String>| t.as_ref().is_some_and(|t| !t.is_empty());
        path(&self.cert_file)
            || text(&self.cert)
            || path(&self.key_file)
            || text(&self.key)
            || path(&self.client_ca_file)
            || text(&self.client_ca)
            || text(&self.client_auth_type)
    }
}

impl From<RawTlsConfig> for TlsSettings {
    fn from(r: RawTlsConfig) -> Self {
        let _ = r.prefer_server_cipher_suites; // Go-only knob; rustls always prefers the server's order.
        let path = |p: Option<PathBuf>| p.filter(|p| !p.as_os_str().is_empty());
        let text = |t: Option<String>| t.filter(|t| !t.is_empty());
        TlsSettings {
            cert_file: path(r.cert_file),
            key_file: path(r.key_file),
            cert: text(r.cert),
            key: text(r.key),
            client_auth_type: text(r.client_auth_type),
            client_ca_file: path(r.client_ca_file),
            client_ca: text(r.client_ca),
            min_version: text(r.min_version),
            max_version: text(r.max_version),
            cipher_suites: r.cipher_suites,
            curve_preferences: r.curve_preferences,
            client_allowed_sans: r.client_allowed_sans,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "web.yml", "basic_auth_user:\n  a: b\n");
        let err = WebConfig::load(&p).err().unwrap().to_string();
        assert!(err.contains("basic_auth_user"), "{err}");
        assert!(err.contains("web.yml"), "{err}");
    }

    #[test]
    fn plain_text_password_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "web.yml",
            "basic_auth_users:\n  alice: secret\n",
        );
        let err = WebConfig::load(&p).err().unwrap().to_string();
        assert!(err.contains("alice") && err.contains("bcrypt"), "{err}");
    }

    #[test]
    fn bcrypt_users_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let p = write(
            dir.path(),
            "web.yml",
            &format!("basic_auth_users:\n  alice: '{hash}'\n"),
        );
        let cfg = WebConfig::load(&p).unwrap();
        let header = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        assert!(cfg.authorize(Some(&header("alice", "s3cret"))));
        assert!(!cfg.authorize(Some(&header("alice", "wrong"))));
        assert!(!cfg.authorize(Some(&header("bob", "s3cret"))));
        assert!(!cfg.authorize(None));
        // Cached verdicts answer the same.
        assert!(cfg.authorize(Some(&header("alice", "s3cret"))));
        assert!(!cfg.authorize(Some(&header("alice", "wrong"))));
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = WebConfig::load(Path::new("/nonexistent/web.yml"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("/nonexistent/web.yml"), "{err}");
    }
}
