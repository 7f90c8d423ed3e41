//! What the Docker sources share: connecting to the Engine (a `unix://`
//! socket or `tcp://`/`http://` address, API version negotiated so an
//! older Engine answers), config checks, and the positions they save.
//!
//! A position is the Engine timestamp of the last delivered line or event,
//! written as `<seconds>.<nanoseconds>` (the form the Engine's own `since`
//! takes). promtail writes whole seconds under the same keys; such a value
//! is read as "everything from that second on" (a few duplicates, no loss).

use std::collections::HashMap;

use bollard::Docker;

use crate::config::{ConfigError, DockerFilter, ScrapeConfig};

/// Seconds the Engine has to answer a request (not the length of a stream).
const REQUEST_TIMEOUT_SECS: u64 = 30;

/// Checks a `host` the way Prometheus does (required, a known scheme).
pub fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("host missing".into());
    }
    let known = ["unix://", "tcp://", "http://"];
    if !known.iter().any(|s| host.starts_with(s)) || known.contains(&host) {
        return Err(format!(
            "host {host:?}: expected unix:///path/to/docker.sock, tcp://host:port or http://host:port"
        ));
    }
    Ok(())
}

/// The config checks of a scrape config's Docker sources.
pub fn validate(i: usize, sc: &ScrapeConfig) -> Result<(), ConfigError> {
    for (j, d) in sc.docker_sd_configs.iter().enumerate() {
        let at = format!("scrape_configs[{i}].docker_sd_configs[{j}]");
        check_host(&d.host).map_err(|e| ConfigError::new(format!("{at}: {e}")))?;
        if d.host.starts_with("unix://") {
            for (key, set) in [
                ("basic_auth", d.basic_auth.is_some()),
                ("authorization", d.authorization.is_some()),
                ("oauth2", d.oauth2.is_some()),
                ("bearer_token", !d.bearer_token.is_empty()),
                ("bearer_token_file", !d.bearer_token_file.is_empty()),
                ("proxy_url", !d.proxy_url.is_empty()),
            ] {
                if set {
                    return Err(ConfigError::new(format!(
                        "{at}.{key}: not used with a unix:// host"
                    )));
                }
            }
        } else if d.basic_auth.is_some()
            || d.authorization.is_some()
            || d.oauth2.is_some()
            || !d.bearer_token.is_empty()
            || !d.bearer_token_file.is_empty()
            || !d.proxy_url.is_empty()
            || d.tls_config != Default::default()
        {
            return Err(ConfigError::new(format!(
                "{at}: HTTP client options (auth, proxy, TLS) for the Engine are not supported; use a unix:// socket or a plain tcp:// address"
            )));
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
/// with the Engine.
pub async fn connect(host: &str) -> Result<Docker, String> {
    check_host(host)?;
    let docker = if host.starts_with("unix://") {
        Docker::connect_with_unix(host, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_http(host, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
    }
    .map_err(|e| format!("Docker host {host}: {e}"))?;
    docker
        .negotiate_version()
        .await
        .map_err(|e| format!("Docker host {host}: {e}"))
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
        assert_eq!(check_host("").unwrap_err(), "host missing");
        assert!(check_host("/var/run/docker.sock")
            .unwrap_err()
            .contains("expected unix://"));
    }
}
