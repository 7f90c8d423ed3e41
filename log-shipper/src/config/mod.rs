//! promtail's YAML config: the same keys, defaults and units, so a promtail
//! user's file loads unchanged. Every block refuses keys promtail does not
//! know (`deny_unknown_fields`), and errors name the file, line, column and
//! key path. Keys promtail knows but we do not run (other sources, gRPC
//! settings) are refused by name and line ([`refused`]), never accepted and
//! ignored.

pub mod alloy;
pub mod envsubst;
pub mod refused;
mod shown;
pub use shown::shown;
pub mod units;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pipeline::StageConfig;
use crate::relabel::RelabelConfig;
pub use refused::Unsupported;
pub use units::{ByteSize, GoDuration};

/// Anything promtail accepts there, kept as written.
pub type Opaque = serde_yaml_ng::Value;

/// A config that could not be read, named by file and, where known, line,
/// column and key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Includes the key path (`scrape_configs[0].pipeline_stages[1]...: `).
    pub message: String,
}

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError {
            file: None,
            line: None,
            column: None,
            message: message.into(),
        }
    }

    pub fn in_file(mut self, file: &Path) -> Self {
        self.file.get_or_insert_with(|| file.to_path_buf());
        self
    }

    /// Prefixes the message with where in the config it applies.
    pub fn at(mut self, key_path: &str) -> Self {
        self.message = format!("{key_path}: {}", self.message);
        self
    }

    fn from_yaml(e: serde_yaml_ng::Error) -> Self {
        let loc = e.location();
        let mut message = e.to_string();
        // serde_yaml_ng appends " at line L column C"; we print that up front.
        if let Some(pos) = message.rfind(" at line ") {
            if loc.is_some() {
                message.truncate(pos);
            }
        }
        ConfigError {
            file: None,
            line: loc.as_ref().map(|l| l.line()),
            column: loc.as_ref().map(|l| l.column()),
            message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(p) => write!(f, "{}", p.display())?,
            None => f.write_str("config")?,
        }
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

// ---------------------------------------------------------------- top level

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub global: GlobalConfig,
    pub server: ServerConfig,
    /// promtail's older single-client key; merged into `clients` on load.
    #[serde(skip_serializing)]
    pub client: Option<ClientConfig>,
    pub clients: Vec<ClientConfig>,
    pub positions: PositionsConfig,
    pub scrape_configs: Vec<ScrapeConfig>,
    pub target_config: TargetConfig,
    pub limits_config: LimitsConfig,
    pub options: OptionsConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingConfig>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::wal"
    )]
    pub wal: Option<Unsupported>,
    /// Set only from an Alloy config whose component graph promtail's
    /// model cannot express: the scrape configs' entries flow through it.
    #[serde(skip)]
    pub graph: Option<crate::graph::Graph>,
}

/// promtail's Jaeger tracing switch: only "off" is accepted.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    #[serde(deserialize_with = "refused::keys::enabled")]
    pub enabled: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalConfig {
    pub file_watch_config: FileWatchConfig,
}

/// How often files are polled for new lines: every `min_poll_frequency`
/// after a change, backing off (doubling) while a file stays idle up to
/// `max_poll_frequency`, as promtail's tailer does.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default, try_from = "RawFileWatchConfig")]
pub struct FileWatchConfig {
    pub min_poll_frequency: GoDuration,
    pub max_poll_frequency: GoDuration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawFileWatchConfig {
    min_poll_frequency: GoDuration,
    max_poll_frequency: GoDuration,
}

impl Default for RawFileWatchConfig {
    fn default() -> Self {
        let d = FileWatchConfig::default();
        RawFileWatchConfig {
            min_poll_frequency: d.min_poll_frequency,
            max_poll_frequency: d.max_poll_frequency,
        }
    }
}

impl TryFrom<RawFileWatchConfig> for FileWatchConfig {
    type Error = String;
    fn try_from(r: RawFileWatchConfig) -> Result<Self, String> {
        if r.min_poll_frequency.get().is_zero() {
            return Err("file_watch_config: min_poll_frequency must be more than 0".into());
        }
        if r.max_poll_frequency < r.min_poll_frequency {
            return Err(format!(
                "file_watch_config: max_poll_frequency: {} {}: less than min_poll_frequency {} (an idle file's polling backs off from min to max)",
                refused::BAD_VALUE, r.max_poll_frequency, r.min_poll_frequency
            ));
        }
        Ok(FileWatchConfig {
            min_poll_frequency: r.min_poll_frequency,
            max_poll_frequency: r.max_poll_frequency,
        })
    }
}

impl Default for FileWatchConfig {
    fn default() -> Self {
        FileWatchConfig {
            min_poll_frequency: GoDuration::from_millis(250),
            max_poll_frequency: GoDuration::from_millis(250),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OptionsConfig {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "refused::keys::options_stream_lag_labels"
    )]
    pub stream_lag_labels: String,
}

// ---------------------------------------------------------------- server

/// The weaveworks/dskit server block, as promtail reads it. We serve HTTP
/// (optionally TLS) only: the gRPC keys and tuning knobs we do not run are
/// accepted at the value that means "off" or at promtail's default, and
/// refused with their name and line otherwise.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub disable: bool,
    #[serde(deserialize_with = "refused::keys::http_listen_network")]
    pub http_listen_network: String,
    pub http_listen_address: String,
    pub http_listen_port: u16,
    #[serde(deserialize_with = "refused::keys::http_listen_conn_limit")]
    pub http_listen_conn_limit: u64,
    #[serde(deserialize_with = "refused::keys::grpc_listen_network")]
    pub grpc_listen_network: String,
    #[serde(deserialize_with = "refused::keys::grpc_listen_address")]
    pub grpc_listen_address: String,
    /// promtail's shipped configs set 0 (an ephemeral port nobody calls):
    /// we open no gRPC port, which is what 0 comes to.
    #[serde(deserialize_with = "refused::keys::grpc_listen_port")]
    pub grpc_listen_port: u16,
    #[serde(deserialize_with = "refused::keys::grpc_listen_conn_limit")]
    pub grpc_listen_conn_limit: u64,
    /// false: `/metrics` is not served.
    pub register_instrumentation: bool,
    pub graceful_shutdown_timeout: GoDuration,
    #[serde(deserialize_with = "refused::keys::http_server_read_timeout")]
    pub http_server_read_timeout: GoDuration,
    #[serde(deserialize_with = "refused::keys::http_server_write_timeout")]
    pub http_server_write_timeout: GoDuration,
    #[serde(deserialize_with = "refused::keys::http_server_idle_timeout")]
    pub http_server_idle_timeout: GoDuration,
    pub log_level: String,
    pub log_format: String,
    /// Every route is served under this prefix (`/prefix/metrics`...).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub http_path_prefix: String,
    /// promtail's `/ready` fails while no target is ready unless this is
    /// false; ours is ready once started, which is `false`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::health_check_target"
    )]
    pub health_check_target: Option<bool>,
    /// `POST /reload` re-reads the config only when true (SIGHUP always).
    pub enable_runtime_reload: bool,
    #[serde(deserialize_with = "refused::keys::profiling_enabled")]
    pub profiling_enabled: bool,
    #[serde(deserialize_with = "refused::keys::log_source_ips_enabled")]
    pub log_source_ips_enabled: bool,
    #[serde(deserialize_with = "refused::keys::log_request_headers")]
    pub log_request_headers: bool,
    /// TLS on the shipper's own HTTP server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_tls_config: Option<ServerTlsConfig>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::grpc_tls_config"
    )]
    pub grpc_tls_config: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::grpc_server_max_recv_msg_size"
    )]
    pub grpc_server_max_recv_msg_size: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::grpc_server_max_send_msg_size"
    )]
    pub grpc_server_max_send_msg_size: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::grpc_server_max_concurrent_streams"
    )]
    pub grpc_server_max_concurrent_streams: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::grpc_server_max_connection_idle"
    )]
    pub grpc_server_max_connection_idle: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::grpc_server_max_connection_age"
    )]
    pub grpc_server_max_connection_age: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::grpc_server_max_connection_age_grace"
    )]
    pub grpc_server_max_connection_age_grace: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::grpc_server_keepalive_time"
    )]
    pub grpc_server_keepalive_time: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::grpc_server_keepalive_timeout"
    )]
    pub grpc_server_keepalive_timeout: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::grpc_server_min_time_between_pings"
    )]
    pub grpc_server_min_time_between_pings: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::grpc_server_ping_without_stream_allowed"
    )]
    pub grpc_server_ping_without_stream_allowed: Option<Unsupported>,
}

/// dskit's `http_tls_config`: the server's certificate and, for client
/// authentication, Go's `tls.ClientAuthType` name and the CA to verify
/// client certificates with.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerTlsConfig {
    pub cert_file: String,
    pub key_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_auth_type: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_ca_file: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            disable: false,
            http_listen_network: "tcp".into(),
            http_listen_address: String::new(),
            // promtail's default; the usual configs set 9080.
            http_listen_port: 80,
            http_listen_conn_limit: 0,
            grpc_listen_network: "tcp".into(),
            grpc_listen_address: String::new(),
            grpc_listen_port: 0,
            grpc_listen_conn_limit: 0,
            register_instrumentation: true,
            graceful_shutdown_timeout: GoDuration::from_secs(30),
            http_server_read_timeout: GoDuration::from_secs(30),
            http_server_write_timeout: GoDuration::from_secs(30),
            http_server_idle_timeout: GoDuration::from_secs(120),
            log_level: "info".into(),
            log_format: "logfmt".into(),
            http_path_prefix: String::new(),
            health_check_target: None,
            enable_runtime_reload: false,
            profiling_enabled: false,
            log_source_ips_enabled: false,
            log_request_headers: false,
            http_tls_config: None,
            grpc_tls_config: None,
            grpc_server_max_recv_msg_size: None,
            grpc_server_max_send_msg_size: None,
            grpc_server_max_concurrent_streams: None,
            grpc_server_max_connection_idle: None,
            grpc_server_max_connection_age: None,
            grpc_server_max_connection_age_grace: None,
            grpc_server_keepalive_time: None,
            grpc_server_keepalive_timeout: None,
            grpc_server_min_time_between_pings: None,
            grpc_server_ping_without_stream_allowed: None,
        }
    }
}

// ---------------------------------------------------------------- positions

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PositionsConfig {
    pub filename: PathBuf,
    pub sync_period: GoDuration,
    pub ignore_invalid_yaml: bool,
}

impl Default for PositionsConfig {
    fn default() -> Self {
        PositionsConfig {
            filename: PathBuf::from("/var/log/positions.yaml"),
            sync_period: GoDuration::from_secs(10),
            ignore_invalid_yaml: false,
        }
    }
}

// ---------------------------------------------------------------- clients

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientConfig {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub url: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    pub batchwait: GoDuration,
    /// promtail reads `batchsize` as plain bytes.
    pub batchsize: ByteSize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2Config>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub bearer_token: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub bearer_token_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub proxy_url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub no_proxy: String,
    #[serde(skip_serializing_if = "is_default")]
    pub proxy_from_environment: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub proxy_connect_header: BTreeMap<String, Vec<String>>,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "http_headers"
    )]
    pub http_headers: BTreeMap<String, HttpHeader>,
    #[serde(skip_serializing_if = "is_default")]
    pub tls_config: TlsConfig,
    /// Redirects are followed as Go's client does (promtail's default).
    pub follow_redirects: bool,
    /// Accepted and, as in promtail, without effect: promtail builds its
    /// client with HTTP/2 disabled, and so the push is HTTP/1.1 either way.
    pub enable_http2: bool,
    pub backoff_config: BackoffConfig,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub external_labels: BTreeMap<String, String>,
    pub timeout: GoDuration,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tenant_id: String,
    pub drop_rate_limited_batches: bool,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::stream_lag_labels"
    )]
    pub stream_lag_labels: Option<Unsupported>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            name: String::new(),
            url: String::new(),
            headers: BTreeMap::new(),
            batchwait: GoDuration::from_secs(1),
            batchsize: ByteSize(1_048_576),
            basic_auth: None,
            authorization: None,
            oauth2: None,
            bearer_token: String::new(),
            bearer_token_file: String::new(),
            proxy_url: String::new(),
            no_proxy: String::new(),
            proxy_from_environment: false,
            proxy_connect_header: BTreeMap::new(),
            http_headers: BTreeMap::new(),
            tls_config: TlsConfig::default(),
            follow_redirects: true,
            enable_http2: true,
            backoff_config: BackoffConfig::default(),
            external_labels: BTreeMap::new(),
            timeout: GoDuration::from_secs(10),
            tenant_id: String::new(),
            drop_rate_limited_batches: false,
            stream_lag_labels: None,
        }
    }
}

/// Prometheus' `http_headers` entry (`values`, `secrets`, `files`).
pub use exporter_toolkit::http_client::http_headers::Header as HttpHeader;

/// `http_headers`, its names checked while parsing (so the error has the
/// line): Prometheus refuses the headers its client sets itself.
fn http_headers<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, HttpHeader>, D::Error> {
    let h = BTreeMap::<String, HttpHeader>::deserialize(d)?;
    exporter_toolkit::http_client::http_headers::HttpHeaders::from_config(&h).map_err(|e| {
        serde::de::Error::custom(format!("http_headers: {}: {e}", refused::BAD_VALUE))
    })?;
    Ok(h)
}

/// Prometheus' `oauth2` block: client credentials from `token_url`,
/// with its own TLS and proxy settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OAuth2Config {
    pub client_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_secret: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_secret_file: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::client_secret_ref"
    )]
    pub client_secret_ref: Option<Unsupported>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    pub token_url: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoint_params: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "is_default")]
    pub tls_config: TlsConfig,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub proxy_url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub no_proxy: String,
    #[serde(skip_serializing_if = "is_default")]
    pub proxy_from_environment: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub proxy_connect_header: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuth {
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username_file: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::username_ref"
    )]
    pub username_ref: Option<Unsupported>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub password: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub password_file: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::password_ref"
    )]
    pub password_ref: Option<Unsupported>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Authorization {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub credentials: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub credentials_file: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::credentials_ref"
    )]
    pub credentials_ref: Option<Unsupported>,
}

/// Prometheus' common TLS config, as promtail's clients take it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ca: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ca_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cert: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cert_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub key_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub server_name: String,
    pub insecure_skip_verify: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub min_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub max_version: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffConfig {
    pub min_period: GoDuration,
    pub max_period: GoDuration,
    pub max_retries: u32,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            min_period: GoDuration::from_millis(500),
            max_period: GoDuration::from_secs(300),
            max_retries: 10,
        }
    }
}

// ---------------------------------------------------------------- scrape

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScrapeConfig {
    pub job_name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pipeline_stages: Vec<StageConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub static_configs: Vec<StaticConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub file_sd_configs: Vec<FileSdConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub relabel_configs: Vec<RelabelConfig>,
    /// Containers' logs (`sources::docker`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub docker_sd_configs: Vec<DockerSdConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal: Option<JournalConfig>,
    /// Our extension: the Docker Engine's event stream as log lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_events: Option<DockerEventsConfig>,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "refused::keys::encoding"
    )]
    pub encoding: String,
    /// Our extension, Alloy's `loki.source.file` `tail_from_end`: files
    /// found at the start without a saved position are read from their
    /// last line's end (`sources::file`).
    #[serde(skip_serializing_if = "is_default")]
    pub tail_from_end: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decompression: Option<DecompressionConfig>,
    /// A syslog listener (`sources::syslog`).
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::syslog"
    )]
    pub syslog: Option<SyslogConfig>,
    // Other promtail sources and discoveries: refused by name and line.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::gcplog"
    )]
    pub gcplog: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::windows_events"
    )]
    pub windows_events: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::kafka"
    )]
    pub kafka: Option<Unsupported>,
    /// GELF over UDP (`sources::gelf`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gelf: Option<GelfConfig>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::cloudflare"
    )]
    pub cloudflare: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::heroku_drain"
    )]
    pub heroku_drain: Option<Unsupported>,
    /// Loki's push API served to other senders (`sources::loki_push`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loki_push_api: Option<PushApiConfig>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::azure_event_hubs"
    )]
    pub azure_event_hubs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::kubernetes_sd_configs"
    )]
    pub kubernetes_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::consul_sd_configs"
    )]
    pub consul_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::consulagent_sd_configs"
    )]
    pub consulagent_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::limits_config"
    )]
    pub limits_config: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::dns_sd_configs"
    )]
    pub dns_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::digitalocean_sd_configs"
    )]
    pub digitalocean_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::serverset_sd_configs"
    )]
    pub serverset_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::nerve_sd_configs"
    )]
    pub nerve_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::marathon_sd_configs"
    )]
    pub marathon_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::gce_sd_configs"
    )]
    pub gce_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::ec2_sd_configs"
    )]
    pub ec2_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::openstack_sd_configs"
    )]
    pub openstack_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::azure_sd_configs"
    )]
    pub azure_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::triton_sd_configs"
    )]
    pub triton_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::dockerswarm_sd_configs"
    )]
    pub dockerswarm_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::eureka_sd_configs"
    )]
    pub eureka_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::hetzner_sd_configs"
    )]
    pub hetzner_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::http_sd_configs"
    )]
    pub http_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::kuma_sd_configs"
    )]
    pub kuma_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::linode_sd_configs"
    )]
    pub linode_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::lightsail_sd_configs"
    )]
    pub lightsail_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::puppetdb_sd_configs"
    )]
    pub puppetdb_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::scaleway_sd_configs"
    )]
    pub scaleway_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::uyuni_sd_configs"
    )]
    pub uyuni_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::vultr_sd_configs"
    )]
    pub vultr_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::ionos_sd_configs"
    )]
    pub ionos_sd_configs: Option<Unsupported>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "refused::keys::nomad_sd_configs"
    )]
    pub nomad_sd_configs: Option<Unsupported>,
}

/// promtail's `decompression` block: when enabled, every file of the job
/// is compressed in `format` and read once, from its start.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DecompressionConfig {
    pub enabled: bool,
    pub initial_delay: GoDuration,
    #[serde(deserialize_with = "refused::keys::format")]
    pub format: String,
}

impl DecompressionConfig {
    /// What the file source does with it (None: files read as they are).
    pub fn reading(&self) -> Option<crate::sources::file::Decompression> {
        if !self.enabled {
            return None;
        }
        Some(crate::sources::file::Decompression {
            format: crate::sources::file::CompressionFormat::parse(&self.format)?,
            initial_delay: self.initial_delay.get(),
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StaticConfig {
    pub targets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FileSdConfig {
    pub files: Vec<String>,
    pub refresh_interval: GoDuration,
}

impl Default for FileSdConfig {
    fn default() -> Self {
        FileSdConfig {
            files: Vec::new(),
            refresh_interval: GoDuration::from_secs(300),
        }
    }
}

/// Prometheus' docker_sd_config, as promtail takes it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DockerSdConfig {
    pub host: String,
    pub port: u16,
    pub host_networking_host: String,
    pub refresh_interval: GoDuration,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<DockerFilter>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<Opaque>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub bearer_token: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub bearer_token_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub proxy_url: String,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "http_headers"
    )]
    pub http_headers: BTreeMap<String, HttpHeader>,
    #[serde(skip_serializing_if = "is_default")]
    pub tls_config: TlsConfig,
    pub follow_redirects: bool,
    pub enable_http2: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_first_network: Option<bool>,
}

impl Default for DockerSdConfig {
    fn default() -> Self {
        DockerSdConfig {
            host: String::new(),
            port: 80,
            host_networking_host: "localhost".into(),
            refresh_interval: GoDuration::from_secs(60),
            filters: Vec::new(),
            basic_auth: None,
            authorization: None,
            oauth2: None,
            bearer_token: String::new(),
            bearer_token_file: String::new(),
            proxy_url: String::new(),
            http_headers: BTreeMap::new(),
            tls_config: TlsConfig::default(),
            follow_redirects: true,
            enable_http2: true,
            match_first_network: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DockerFilter {
    pub name: String,
    pub values: Vec<String>,
}

/// Our extension (not in promtail): the Engine's events as JSON lines,
/// labelled `type` and `action` (see `sources::docker_events`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DockerEventsConfig {
    pub host: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The Engine's event filters (`type`, `event`, `container`, `label`...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<DockerFilter>,
}

impl Default for DockerEventsConfig {
    fn default() -> Self {
        DockerEventsConfig {
            host: "unix:///var/run/docker.sock".into(),
            labels: BTreeMap::new(),
            filters: Vec::new(),
        }
    }
}

/// promtail's journal scrape block (kept for the journal source).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    pub json: bool,
    pub max_age: GoDuration,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub matches: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            json: false,
            max_age: GoDuration::from_secs(7 * 3600),
            path: String::new(),
            matches: String::new(),
            labels: BTreeMap::new(),
        }
    }
}

/// promtail's `loki_push_api` block.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PushApiConfig {
    pub server: PushServerConfig,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub use_incoming_timestamp: bool,
}

/// The keys of promtail's server block a push target runs on. Anything
/// else of that block is refused (`deny_unknown_fields` names the key)
/// rather than accepted and ignored.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PushServerConfig {
    pub http_listen_network: String,
    pub http_listen_address: String,
    pub http_listen_port: u16,
    /// promtail opens a gRPC port on every push server but registers no
    /// push service on it. We open none: only the values meaning "none"
    /// (port 0, no address) are accepted, anything else is refused.
    #[serde(deserialize_with = "refused::keys::grpc_listen_network")]
    pub grpc_listen_network: String,
    #[serde(deserialize_with = "refused::keys::grpc_listen_address")]
    pub grpc_listen_address: String,
    #[serde(deserialize_with = "refused::keys::grpc_listen_port")]
    pub grpc_listen_port: u16,
    /// Time to receive a push's body.
    pub http_server_read_timeout: GoDuration,
    /// How long a push is held waiting for its lines to be delivered
    /// (or for Loki to come back) before it is answered 503.
    pub http_server_write_timeout: GoDuration,
}

impl Default for PushServerConfig {
    fn default() -> Self {
        PushServerConfig {
            http_listen_network: "tcp".into(),
            http_listen_address: String::new(),
            http_listen_port: 80,
            grpc_listen_network: "tcp".into(),
            grpc_listen_address: String::new(),
            grpc_listen_port: 0,
            http_server_read_timeout: GoDuration::from_secs(30),
            http_server_write_timeout: GoDuration::from_secs(30),
        }
    }
}

/// promtail's `gelf` block.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GelfConfig {
    pub listen_address: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub use_incoming_timestamp: bool,
}

impl Default for GelfConfig {
    fn default() -> Self {
        GelfConfig {
            listen_address: ":12201".into(),
            labels: BTreeMap::new(),
            use_incoming_timestamp: false,
        }
    }
}

/// promtail's syslog scrape block (`sources::syslog`). Every key promtail
/// knows is here; `tls_config` keys a syslog server cannot use are refused
/// by `sources::syslog::check`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogConfig {
    pub listen_address: String,
    /// `tcp` (default) or `udp`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub listen_protocol: String,
    pub idle_timeout: GoDuration,
    pub label_structured_data: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub use_incoming_timestamp: bool,
    pub use_rfc5424_message: bool,
    /// `rfc5424` (default) or `rfc3164`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub syslog_format: String,
    pub max_message_length: usize,
    pub tls_config: TlsConfig,
    /// Our extension: TCP connections served at once (default 1024);
    /// further ones wait in the listen backlog until one closes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        SyslogConfig {
            listen_address: String::new(),
            listen_protocol: String::new(),
            idle_timeout: GoDuration::from_secs(120),
            label_structured_data: false,
            labels: BTreeMap::new(),
            use_incoming_timestamp: false,
            use_rfc5424_message: false,
            syslog_format: String::new(),
            max_message_length: 8192,
            tls_config: TlsConfig::default(),
            max_connections: None,
        }
    }
}

// ---------------------------------------------------------------- target, limits

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TargetConfig {
    /// How often globs are re-expanded to find new files.
    pub sync_period: GoDuration,
    /// Read lines from stdin instead of every source (`-stdin`).
    pub stdin: bool,
}

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig {
            sync_period: GoDuration::from_secs(10),
            stdin: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub readline_rate_enabled: bool,
    /// Lines per second, over all files.
    pub readline_rate: f64,
    pub readline_burst: u64,
    /// Drop lines over the rate (true) or wait (false).
    pub readline_rate_drop: bool,
    /// Streams per client; 0 is no limit.
    pub max_streams: u64,
    /// 0 is no limit.
    pub max_line_size: ByteSize,
    /// Cut lines over max_line_size instead of dropping them.
    pub max_line_size_truncate: bool,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            readline_rate_enabled: false,
            readline_rate: 10_000.0,
            readline_burst: 10_000,
            readline_rate_drop: true,
            max_streams: 0,
            max_line_size: ByteSize(0),
            max_line_size_truncate: false,
        }
    }
}

// ---------------------------------------------------------------- loading

/// Parses a config from YAML text (no file name, no env expansion).
pub fn from_str(text: &str) -> Result<Config, ConfigError> {
    // An empty file is promtail's defaults.
    if text.trim().is_empty() {
        return Ok(Config::default());
    }
    let mut cfg: Config = serde_yaml_ng::from_str(text)
        .map_err(|e| refused::point_at_key(ConfigError::from_yaml(e), text))?;
    if let Some(c) = cfg.client.take() {
        cfg.clients.insert(0, c);
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Reads `path`, expanding `${VAR}` first when `expand_env` is set, and
/// checks what can be checked without running anything.
pub fn load(path: &Path, expand_env: bool) -> Result<Config, ConfigError> {
    let raw = std::fs::read(path)
        .map_err(|e| ConfigError::new(format!("cannot read config: {e}")).in_file(path))?;
    let text = String::from_utf8(raw)
        .map_err(|e| ConfigError::new(format!("config is not UTF-8: {e}")).in_file(path))?;
    let text = if expand_env {
        envsubst::expand(&text, |k| std::env::var(k).ok())
            .map_err(|e| ConfigError::new(format!("-config.expand-env: {e}")).in_file(path))?
    } else {
        text
    };
    from_str(&text).map_err(|e| e.in_file(path))
}

impl Config {
    /// Checks that need more than one key: unique job names, client URLs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut jobs = std::collections::HashSet::new();
        for (i, sc) in self.scrape_configs.iter().enumerate() {
            if sc.job_name.is_empty() {
                return Err(ConfigError::new(format!(
                    "scrape_configs[{i}]: job_name is required"
                )));
            }
            for (j, sd) in sc.file_sd_configs.iter().enumerate() {
                for f in &sd.files {
                    crate::discovery::file_sd::validate_pattern(f).map_err(|e| {
                        ConfigError::new(format!(
                            "scrape_configs[{i}].file_sd_configs[{j}].files: {e}"
                        ))
                    })?;
                }
            }
            if sc.tail_from_end && sc.static_configs.is_empty() && sc.file_sd_configs.is_empty() {
                return Err(ConfigError::new(format!(
                    "scrape_configs[{i}].tail_from_end: only files are read from their end; this job reads none"
                )));
            }
            crate::sources::docker_engine::validate(i, sc)?;
            if !jobs.insert(sc.job_name.as_str()) {
                return Err(ConfigError::new(format!(
                    "scrape_configs[{i}]: found multiple scrape configs with job name {:?}",
                    sc.job_name
                )));
            }
        }
        for (i, c) in self.clients.iter().enumerate() {
            if c.url.is_empty() {
                return Err(ConfigError::new(format!("clients[{i}]: url is required")));
            }
            if !(c.url.starts_with("http://") || c.url.starts_with("https://")) {
                return Err(ConfigError::new(format!(
                    "clients[{i}].url: {:?} is not an http:// or https:// URL",
                    c.url
                )));
            }
            if !c.bearer_token.is_empty() && !c.bearer_token_file.is_empty() {
                return Err(ConfigError::new(format!(
                    "clients[{i}]: at most one of bearer_token & bearer_token_file must be configured"
                )));
            }
            if (c.basic_auth.is_some() || c.oauth2.is_some())
                && (!c.bearer_token.is_empty() || !c.bearer_token_file.is_empty())
            {
                return Err(ConfigError::new(format!(
                    "clients[{i}]: at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured"
                )));
            }
            if (c.authorization.is_some() && (c.basic_auth.is_some() || c.oauth2.is_some()))
                || (c.oauth2.is_some() && c.basic_auth.is_some())
            {
                return Err(ConfigError::new(format!(
                    "clients[{i}]: at most one of basic_auth, oauth2 & authorization must be configured"
                )));
            }
            if let Some(o) = &c.oauth2 {
                let bad = |m: &str| ConfigError::new(format!("clients[{i}].oauth2: {m}"));
                if o.client_id.is_empty() {
                    return Err(bad("client_id must be configured"));
                }
                if o.token_url.is_empty() {
                    return Err(bad("token_url must be configured"));
                }
                if !o.client_secret.is_empty() && !o.client_secret_file.is_empty() {
                    return Err(bad(
                        "at most one of client_secret & client_secret_file must be configured",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Everything `--check-config` checks beyond parsing: every pipeline
    /// builds (unsupported stages are reported) and every static `__path__`
    /// glob is well formed.
    pub fn check_all(&self) -> Result<(), ConfigError> {
        for (i, sc) in self.scrape_configs.iter().enumerate() {
            crate::pipeline::Pipeline::new(&sc.pipeline_stages, &sc.job_name)?;
            for (j, st) in sc.static_configs.iter().enumerate() {
                for key in ["__path__", "__path_exclude__"] {
                    if let Some(glob) = st.labels.get(key) {
                        check_glob(glob).map_err(|e| {
                            ConfigError::new(format!(
                                "scrape_configs[{i}].static_configs[{j}].labels.{key}: {e}"
                            ))
                        })?;
                    }
                }
            }
        }
        if let Some(g) = &self.graph {
            g.check()?;
        }
        Ok(())
    }

    /// The config as YAML, every default filled in (for -print-config-stderr).
    pub fn to_yaml(&self) -> String {
        let yaml = serde_yaml_ng::to_string(self)
            .unwrap_or_else(|e| format!("# cannot print config: {e}\n"));
        match &self.graph {
            Some(g) => format!("{yaml}{g}"),
            None => yaml,
        }
    }
}

/// A `__path__` glob (doublestar syntax: `*`, `**`, `?`, `[...]`, `{a,b}`)
/// must have balanced brackets and braces.
pub fn check_glob(glob: &str) -> Result<(), String> {
    if glob.is_empty() {
        return Err("empty glob".into());
    }
    let mut braces = 0i32;
    let mut in_class = false;
    let mut chars = glob.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '{' if !in_class => braces += 1,
            '}' if !in_class => {
                braces -= 1;
                if braces < 0 {
                    return Err(format!("{glob:?}: unbalanced '}}'"));
                }
            }
            _ => {}
        }
    }
    if in_class {
        return Err(format!("{glob:?}: unterminated '['"));
    }
    if braces != 0 {
        return Err(format!("{glob:?}: unterminated '{{'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_all_builds_pipelines_and_checks_globs() {
        let c = from_str("scrape_configs:\n  - job_name: a\n    static_configs:\n      - labels: {__path__: '/var/log/{a,b/*.log'}\n").unwrap();
        let e = c.check_all().unwrap_err();
        assert!(
            e.message.contains("__path__") && e.message.contains("unterminated"),
            "{e}"
        );
        let c =
            from_str("scrape_configs:\n  - job_name: a\n    pipeline_stages:\n      - geoip: {}\n")
                .unwrap();
        let e = c.check_all().unwrap_err();
        assert!(
            e.message.contains("pipeline_stages[0].geoip")
                && e.message.contains("not supported yet"),
            "{e}"
        );
        assert!(check_glob("/var/log/**/{nginx,apache}/*.log").is_ok());
    }

    #[test]
    fn defaults_are_promtails() {
        let c = from_str("clients:\n  - url: http://loki:3100/loki/api/v1/push\n").unwrap();
        let cl = &c.clients[0];
        assert_eq!(cl.batchwait.get(), std::time::Duration::from_secs(1));
        assert_eq!(cl.batchsize.bytes(), 1_048_576);
        assert_eq!(cl.timeout.get(), std::time::Duration::from_secs(10));
        assert_eq!(cl.backoff_config.min_period.get().as_millis(), 500);
        assert_eq!(cl.backoff_config.max_period.get().as_secs(), 300);
        assert_eq!(cl.backoff_config.max_retries, 10);
        assert_eq!(
            c.positions.filename,
            PathBuf::from("/var/log/positions.yaml")
        );
        assert_eq!(c.positions.sync_period.get().as_secs(), 10);
        assert_eq!(c.server.http_listen_port, 80);
        assert_eq!(c.target_config.sync_period.get().as_secs(), 10);
        assert!(c.limits_config.readline_rate_drop);
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = from_str("server:\n  http_listen_port: 9080\n  http_listen_prot: 1\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(
            e.message.contains("unknown field `http_listen_prot`"),
            "{e}"
        );
        assert!(e.message.starts_with("server"), "{e}");
    }

    #[test]
    fn wrong_type_names_line() {
        let e = from_str("server:\n  http_listen_port: lots\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("http_listen_port"), "{e}");
    }

    #[test]
    fn prints_back_and_reparses() {
        let text = "server:\n  http_listen_port: 9080\nclients:\n  - url: http://l/loki/api/v1/push\n    batchwait: 1m30s\n    batchsize: 256KB\nscrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [localhost]\n        labels: {__path__: /var/log/*.log}\n    relabel_configs:\n      - source_labels: [__path__]\n        target_label: path\n";
        let c = from_str(text).unwrap();
        let y = c.to_yaml();
        assert!(y.contains("batchwait: 1m30s"), "{y}");
        assert!(y.contains("batchsize: 256KB"), "{y}");
        let again = from_str(&y).unwrap();
        assert_eq!(again.to_yaml(), y);
    }

    #[test]
    fn duplicate_jobs_and_bad_urls_are_refused() {
        let e = from_str("scrape_configs:\n  - job_name: a\n  - job_name: a\n").unwrap_err();
        assert!(e.message.contains("multiple scrape configs"), "{e}");
        let e = from_str("clients:\n  - url: loki:3100\n").unwrap_err();
        assert!(e.message.contains("clients[0].url"), "{e}");
    }

    #[test]
    fn the_old_single_client_key_counts() {
        let c = from_str("client:\n  url: http://l/loki/api/v1/push\n").unwrap();
        assert_eq!(c.clients.len(), 1);
    }
}
