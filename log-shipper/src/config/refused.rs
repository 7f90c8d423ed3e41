//! Keys promtail knows that this shipper does not run. Declaring them
//! (instead of leaving them out) turns "unknown field" into a message
//! saying the key is promtail's but not supported here; the error is raised
//! while the file is parsed, so it carries the line like any other YAML
//! error, at load and at `-check-config`. serde reports the path of the
//! enclosing block only, so every message starts with the key's own name.

use serde::de::{Deserializer, Error as _, IgnoredAny};
use serde::{Deserialize, Serialize, Serializer};

use super::ConfigError;

/// A promtail key this shipper refuses whatever its value (declare the
/// field with `deserialize_with = "refused::keys::NAME"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unsupported;

impl Serialize for Unsupported {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_none()
    }
}

impl<'de> Deserialize<'de> for Unsupported {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        refuse(d, "this key")
    }
}

/// The error for `key`, whatever its value.
pub fn refuse<'de, D: Deserializer<'de>, T>(d: D, key: &str) -> Result<T, D::Error> {
    // Read the value first: the error then points at it.
    IgnoredAny::deserialize(d)?;
    Err(D::Error::custom(format!(
        "{key}: not supported by this shipper (a promtail setting we do not implement; remove it)"
    )))
}

/// For a key whose default we match but whose other values we do not
/// implement: accepts `allowed`, refuses anything else naming key and value.
pub fn only<'de, D, T>(d: D, key: &str, allowed: T, why: &str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + PartialEq + std::fmt::Debug,
{
    let v = T::deserialize(d)?;
    if v == allowed {
        Ok(v)
    } else {
        Err(D::Error::custom(format!(
            "{key}: {v:?} is not supported by this shipper (only {allowed:?}): {why}"
        )))
    }
}

/// The start of a block's check that one of its keys has a bad value:
/// `key: BAD_VALUE ...` (the error then points at the key's line).
pub const BAD_VALUE: &str = "bad value";

/// serde points a value's error at the start of the block holding the key;
/// a refusal names its key (`path: key: ... not supported by this
/// shipper ...`), so move the line and column to that key itself: the
/// first line from there on with `key:` at the block's column. A block's
/// check of its values (`path: key: bad value ...`) points at the first
/// `key:` inside the block.
pub fn point_at_key(mut e: ConfigError, text: &str) -> ConfigError {
    let (Some(line), Some(column)) = (e.line, e.column) else {
        return e;
    };
    let segments: Vec<&str> = e.message.split(": ").collect();
    let refused = segments
        .iter()
        .position(|s| s.contains("not supported by this shipper"));
    let bad = segments.iter().position(|s| s.starts_with(BAD_VALUE));
    let Some(i) = refused.or(bad) else {
        return e;
    };
    let Some(key) = i.checked_sub(1).map(|k| segments[k]) else {
        return e;
    };
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return e;
    }
    let is_key = |rest: &str| {
        rest.strip_prefix(key)
            .is_some_and(|r| r.trim_start().starts_with(':'))
    };
    for (n, l) in text.lines().enumerate().skip(line - 1) {
        let Some(rest) = l.get(column - 1..) else {
            continue;
        };
        let lead = &l[..column - 1];
        let block_start = lead.bytes().all(|b| b == b' ' || b == b'-');
        // Inside the block: the key is further in.
        let rest = if refused.is_none() && block_start {
            rest.trim_start_matches([' ', '-'])
        } else {
            rest
        };
        if block_start && is_key(rest) {
            e.line = Some(n + 1);
            if refused.is_none() {
                e.column = Some(l.len() - rest.len() + 1);
            }
            return e;
        }
    }
    // A check over a nested block (e.g. `syslog` in a scrape config) is
    // reported at its parent: the key is deeper inside that block.
    for (n, l) in text.lines().enumerate().skip(line - 1) {
        let indent = l.len() - l.trim_start_matches([' ', '-']).len();
        let new_item = l[..indent].contains('-');
        if n + 1 > line
            && !l.trim().is_empty()
            && (indent < column - 1 || (indent == column - 1 && new_item))
        {
            break;
        }
        if indent > column - 1 && is_key(&l[indent..]) {
            e.line = Some(n + 1);
            e.column = Some(indent + 1);
            return e;
        }
    }
    e
}

/// One `deserialize_with` function per refused key, named after it.
pub mod keys {
    use super::{only, refuse, Unsupported};
    use crate::config::GoDuration;
    use serde::de::{Deserialize, Deserializer, Error as _, IgnoredAny};
    use std::time::Duration;

    macro_rules! refused {
        ($($key:ident)*) => {$(
            pub fn $key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Unsupported>, D::Error> {
                refuse(d, stringify!($key))
            }
        )*};
    }

    macro_rules! only_value {
        ($($key:ident: $ty:ty = $allowed:expr, $why:expr;)*) => {$(
            pub fn $key<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                only(d, stringify!($key), $allowed, $why)
            }
        )*};
    }

    refused! {
        wal
        grpc_tls_config grpc_server_max_recv_msg_size grpc_server_max_send_msg_size
        grpc_server_max_concurrent_streams grpc_server_max_connection_idle
        grpc_server_max_connection_age grpc_server_max_connection_age_grace
        grpc_server_keepalive_time grpc_server_keepalive_timeout
        grpc_server_min_time_between_pings grpc_server_ping_without_stream_allowed
        stream_lag_labels
        gcplog windows_events kafka cloudflare heroku_drain azure_event_hubs limits_config
        kubernetes_sd_configs consul_sd_configs consulagent_sd_configs dns_sd_configs
        digitalocean_sd_configs serverset_sd_configs nerve_sd_configs marathon_sd_configs
        gce_sd_configs ec2_sd_configs openstack_sd_configs azure_sd_configs triton_sd_configs
        dockerswarm_sd_configs eureka_sd_configs hetzner_sd_configs http_sd_configs
        kuma_sd_configs linode_sd_configs lightsail_sd_configs puppetdb_sd_configs
        scaleway_sd_configs uyuni_sd_configs vultr_sd_configs ionos_sd_configs nomad_sd_configs
    }

    /// prometheus/common's `*_ref` keys name a secret in a secret manager
    /// the program embedding the client provides; promtail provides none
    /// (its client fails: "cannot use secret ref without manager").
    macro_rules! secret_ref {
        ($($key:ident => $instead:expr;)*) => {$(
            pub fn $key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Unsupported>, D::Error> {
                IgnoredAny::deserialize(d)?;
                Err(D::Error::custom(concat!(
                    stringify!($key),
                    ": not supported by this shipper: it names a secret in a secret manager, which promtail does not have (promtail fails with \"cannot use secret ref without manager\"); use ",
                    $instead
                )))
            }
        )*};
    }

    secret_ref! {
        client_secret_ref => "client_secret or client_secret_file";
        username_ref => "username or username_file";
        password_ref => "password or password_file";
        credentials_ref => "credentials or credentials_file";
    }

    const NO_GRPC: &str = "this shipper serves no gRPC (0 / empty means none)";
    const TIMEOUTS: &str = "HTTP server timeouts other than promtail's defaults are not supported";

    only_value! {
        http_listen_network: String = "tcp".to_string(), "only TCP listeners are supported";
        grpc_listen_network: String = "tcp".to_string(), NO_GRPC;
        grpc_listen_address: String = String::new(), NO_GRPC;
        grpc_listen_port: u16 = 0, NO_GRPC;
        http_listen_conn_limit: u64 = 0, "connection limits are not supported";
        grpc_listen_conn_limit: u64 = 0, NO_GRPC;
        http_server_read_timeout: GoDuration = GoDuration(Duration::from_secs(30)), TIMEOUTS;
        http_server_write_timeout: GoDuration = GoDuration(Duration::from_secs(30)), TIMEOUTS;
        http_server_idle_timeout: GoDuration = GoDuration(Duration::from_secs(120)), TIMEOUTS;
        profiling_enabled: bool = false, "profiling endpoints are not served";
        log_source_ips_enabled: bool = false, "not supported";
        log_request_headers: bool = false, "not supported";
        enabled: bool = false, "tracing (Jaeger) is not supported";
    }

    /// promtail's `/ready` waits for a ready target unless this is false;
    /// ours is ready once started, which is `false`.
    pub fn health_check_target<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        only(
            d,
            "health_check_target",
            false,
            "/ready does not wait for targets",
        )
        .map(Some)
    }

    /// A `syslog` block, with the check that needs two of its keys: UDP has
    /// no connection to time out, so `idle_timeout` (other than its
    /// default) is refused there, at load, on its line.
    pub fn syslog<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<crate::config::SyslogConfig>, D::Error> {
        let c = crate::config::SyslogConfig::deserialize(d)?;
        if c.listen_protocol == "udp" && c.idle_timeout.get() != Duration::from_secs(120) {
            return Err(D::Error::custom(
                "idle_timeout: not supported by this shipper with listen_protocol udp (UDP has no connection to time out; remove it)",
            ));
        }
        Ok(Some(c))
    }

    /// `decompression.format`: promtail's `gz`, `bz2`, `z` (zlib).
    pub fn format<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let v = String::deserialize(d)?;
        if crate::sources::file::CompressionFormat::parse(&v).is_some() {
            Ok(v)
        } else {
            Err(D::Error::custom(format!(
                "format: {v:?} is not supported by this shipper (gz, bz2, z)"
            )))
        }
    }

    /// `options.stream_lag_labels` (promtail's stream lag metric is gone).
    pub fn options_stream_lag_labels<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        only(
            d,
            "stream_lag_labels",
            String::new(),
            "the stream lag metric is not supported",
        )
    }

    /// `scrape_configs[].encoding`: an encoding name (IANA / WHATWG label:
    /// `ISO-8859-1`, `Shift_JIS`, `UTF-16LE`, `ISO-2022-JP`...); see
    /// [`crate::sources::file::encoding`].
    pub fn encoding<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let v = String::deserialize(d)?;
        crate::sources::file::encoding::FileEncoding::named(&v)
            .map_err(|e| D::Error::custom(format!("encoding: {e}")))?;
        Ok(v)
    }
}
