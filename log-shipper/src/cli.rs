//! promtail's command line, as Go's `flag` package reads it: one dash or
//! two, `-name=value` or `-name value`, booleans as `-name` or
//! `-name=true|false`. Flags given override the config file.

use std::fmt;
use std::path::PathBuf;

use crate::config::{units, ClientConfig, Config, GoDuration};

#[derive(Debug, Clone, PartialEq)]
pub struct Cli {
    pub config_file: Option<PathBuf>,
    pub config_expand_env: bool,
    /// `yaml` or `alloy`; by default the file's extension decides.
    pub config_format: Option<String>,
    /// Parse the config and exit (promtail's -check-syntax).
    pub check_syntax: bool,
    /// Validate everything (stages, regexes, globs) and exit.
    pub check_config: bool,
    /// Print the config in Grafana Alloy's syntax and exit.
    pub print_alloy: bool,
    pub dry_run: bool,
    pub inspect: bool,
    pub print_config_stderr: bool,
    pub log_config_reverse_order: bool,
    pub log_level: String,
    pub log_format: String,
    pub version: bool,
    pub help: bool,
    pub positions_file: Option<PathBuf>,
    pub positions_sync_period: Option<GoDuration>,
    pub client_url: Option<String>,
    pub client_tenant_id: Option<String>,
    pub client_batch_wait: Option<GoDuration>,
    pub client_batch_size_bytes: Option<u64>,
    pub client_timeout: Option<GoDuration>,
    pub client_external_labels: Vec<(String, String)>,
    pub server_http_listen_port: Option<u16>,
    pub server_http_listen_address: Option<String>,
    /// The other flags that set a config key (`-server.*`, `-client.*`
    /// retries, `-limit.*`), checked when parsed, applied in order.
    pub settings: Vec<(String, String)>,
}

impl Default for Cli {
    fn default() -> Self {
        Cli {
            config_file: None,
            config_expand_env: false,
            config_format: None,
            check_syntax: false,
            check_config: false,
            print_alloy: false,
            dry_run: false,
            inspect: false,
            print_config_stderr: false,
            log_config_reverse_order: false,
            log_level: "info".into(),
            log_format: "logfmt".into(),
            version: false,
            help: false,
            positions_file: None,
            positions_sync_period: None,
            client_url: None,
            client_tenant_id: None,
            client_batch_wait: None,
            client_batch_size_bytes: None,
            client_timeout: None,
            client_external_labels: Vec::new(),
            server_http_listen_port: None,
            server_http_listen_address: None,
            settings: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\nRun with -help for the list of flags.", self.0)
    }
}

impl std::error::Error for CliError {}

/// (name, takes a value, help)
const FLAGS: &[(&str, bool, &str)] = &[
    ("config.file", true, "yaml file to load"),
    ("config.format", true, "Config syntax: yaml (promtail) or alloy (default: alloy for a .alloy file, else yaml)"),
    ("config.expand-env", false, "Expands ${var} or $var in config according to the values of the environment variables."),
    ("check-syntax", false, "Validate the config file of its syntax"),
    ("check-config", false, "Validate the whole config (stages, regexes, globs) and exit 0 or 1"),
    ("config.print-alloy", false, "Print the config in Grafana Alloy's syntax and exit"),
    ("dry-run", false, "Start Promtail but print entries instead of sending them to Loki."),
    ("stdin", false, "Set to true to pipe logs to promtail."),
    ("inspect", false, "Allows for detailed inspection of pipeline stages"),
    ("print-config-stderr", false, "Dump the entire Loki config object to stderr"),
    ("log-config-reverse-order", false, "Dump the entire Loki config object at Info log level with the order reversed"),
    ("log.level", true, "Only log messages with the given severity or above. Valid levels: [debug, info, warn, error]"),
    ("log.format", true, "Output log messages in the given format. Valid formats: [logfmt, json]"),
    ("version", false, "Print this builds version information"),
    ("help", false, "Print this help"),
    ("h", false, "Print this help"),
    ("positions.file", true, "Location to read/write positions from."),
    ("positions.sync-period", true, "Period with this to sync the position file."),
    ("client.url", true, "URL of log server (deprecated: use the config file's clients)"),
    ("client.tenant-id", true, "Tenant ID to use when pushing logs to Loki."),
    ("client.batch-wait", true, "Maximum wait period before sending batch."),
    ("client.batch-size-bytes", true, "Maximum batch size to accrue before sending."),
    ("client.timeout", true, "Maximum time to wait for server to respond to a request"),
    ("client.external-labels", true, "list of external labels to add to each log (e.g: --client.external-labels=lb1=v1,lb2=v2)"),
    ("server.http-listen-port", true, "HTTP server listen port."),
    ("server.http-listen-address", true, "HTTP server listen address."),
    ("server.path-prefix", true, "Base path to serve all API routes from (e.g. /v1/)"),
    ("server.register-instrumentation", false, "Register the /metrics handler"),
    ("server.graceful-shutdown-timeout", true, "Timeout for graceful shutdowns"),
    ("server.enable-runtime-reload", false, "Enable reload via HTTP request."),
    ("server.http-tls-cert-path", true, "HTTP server cert path."),
    ("server.http-tls-key-path", true, "HTTP server key path."),
    ("server.http-tls-client-auth", true, "HTTP TLS Client Auth type."),
    ("server.http-tls-ca-path", true, "HTTP TLS Client CA path."),
    ("client.max-retries", true, "Maximum number of retries when sending batches."),
    ("client.min-backoff", true, "Initial backoff time between retries."),
    ("client.max-backoff", true, "Maximum backoff time between retries."),
    ("limit.readline-rate-enabled", false, "Set to false to disable readline rate limit."),
    ("limit.readline-rate", true, "promtail readline Rate."),
    ("limit.readline-burst", true, "promtail readline Burst."),
    ("limit.readline-rate-drop", false, "Set to true to drop line when rate limit is exceeded."),
];

/// Sets the config key a `-server.*`, `-client.*` or `-limit.*` flag
/// stands for (client flags: on the clients given by `clients`).
fn apply_setting(
    cfg: &mut Config,
    clients: std::ops::RangeFrom<usize>,
    name: &str,
    value: &str,
) -> Result<(), String> {
    let duration = || units::parse_duration(value).map(GoDuration);
    let boolean = || parse_bool(name, value).map_err(|e| e.0);
    let tls = |cfg: &mut Config| {
        cfg.server
            .http_tls_config
            .get_or_insert_with(Default::default)
            .clone()
    };
    match name {
        "server.path-prefix" => cfg.server.http_path_prefix = value.to_string(),
        "stdin" => cfg.target_config.stdin = boolean()?,
        "server.register-instrumentation" => cfg.server.register_instrumentation = boolean()?,
        "server.graceful-shutdown-timeout" => cfg.server.graceful_shutdown_timeout = duration()?,
        "server.enable-runtime-reload" => cfg.server.enable_runtime_reload = boolean()?,
        "server.http-tls-cert-path"
        | "server.http-tls-key-path"
        | "server.http-tls-client-auth"
        | "server.http-tls-ca-path" => {
            let mut t = tls(cfg);
            let field = match name {
                "server.http-tls-cert-path" => &mut t.cert_file,
                "server.http-tls-key-path" => &mut t.key_file,
                "server.http-tls-client-auth" => &mut t.client_auth_type,
                _ => &mut t.client_ca_file,
            };
            *field = value.to_string();
            cfg.server.http_tls_config = Some(t);
        }
        "client.max-retries" | "client.min-backoff" | "client.max-backoff" => {
            let retries = match name {
                "client.max-retries" => Some(value.parse::<u32>().map_err(|e| e.to_string())?),
                _ => None,
            };
            let period = if retries.is_none() {
                Some(duration()?)
            } else {
                None
            };
            for c in &mut cfg.clients[clients] {
                let b = &mut c.backoff_config;
                match (name, retries, period) {
                    (_, Some(r), _) => b.max_retries = r,
                    ("client.min-backoff", _, Some(p)) => b.min_period = p,
                    (_, _, Some(p)) => b.max_period = p,
                    _ => {}
                }
            }
        }
        "limit.readline-rate-enabled" => cfg.limits_config.readline_rate_enabled = boolean()?,
        "limit.readline-rate" => {
            cfg.limits_config.readline_rate = value.parse().map_err(|e| format!("{e}"))?
        }
        "limit.readline-burst" => {
            cfg.limits_config.readline_burst = value.parse().map_err(|e| format!("{e}"))?
        }
        "limit.readline-rate-drop" => cfg.limits_config.readline_rate_drop = boolean()?,
        _ => return Err(format!("-{name} sets no config key")),
    }
    Ok(())
}

pub fn usage() -> String {
    let mut s = String::from("Usage of log-shipper:\n");
    for (name, takes, help) in FLAGS {
        if *name == "h" {
            continue;
        }
        let arg = if *takes { " value" } else { "" };
        s.push_str(&format!("  -{name}{arg}\n    \t{help}\n"));
    }
    s
}

fn parse_bool(name: &str, v: &str) -> Result<bool, CliError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(CliError(format!(
            "invalid boolean value {v:?} for flag -{name}"
        ))),
    }
}

impl Cli {
    /// Parses the arguments after the program name.
    pub fn parse<I, S>(args: I) -> Result<Cli, CliError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut cli = Cli::default();
        let mut args = args.into_iter().map(Into::into);
        while let Some(arg) = args.next() {
            let Some(stripped) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                return Err(CliError(format!(
                    "unexpected argument {arg:?} (flags start with -)"
                )));
            };
            if stripped.is_empty() || stripped.starts_with('-') {
                return Err(CliError(format!("bad flag syntax: {arg}")));
            }
            let (name, inline) = match stripped.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (stripped, None),
            };
            let Some(&(_, takes, _)) = FLAGS.iter().find(|(n, _, _)| *n == name) else {
                return Err(CliError(format!("flag provided but not defined: -{name}")));
            };
            if !takes {
                let on = match &inline {
                    Some(v) => parse_bool(name, v)?,
                    None => true,
                };
                match name {
                    "config.expand-env" => cli.config_expand_env = on,
                    "check-syntax" => cli.check_syntax = on,
                    "check-config" => cli.check_config = on,
                    "config.print-alloy" => cli.print_alloy = on,
                    "dry-run" => cli.dry_run = on,
                    "inspect" => cli.inspect = on,
                    "print-config-stderr" => cli.print_config_stderr = on,
                    "log-config-reverse-order" => cli.log_config_reverse_order = on,
                    "version" => cli.version = on,
                    "h" | "help" => cli.help = on,
                    _ => cli.settings.push((name.to_string(), on.to_string())),
                }
                continue;
            }
            let value = match inline {
                Some(v) => v,
                None => args
                    .next()
                    .ok_or_else(|| CliError(format!("flag needs an argument: -{name}")))?,
            };
            let bad =
                |e: String| CliError(format!("invalid value {value:?} for flag -{name}: {e}"));
            match name {
                "config.file" => cli.config_file = Some(PathBuf::from(&value)),
                "config.format" => {
                    if !matches!(value.as_str(), "yaml" | "alloy") {
                        return Err(bad("valid formats are yaml, alloy".into()));
                    }
                    cli.config_format = Some(value);
                }
                "log.level" => {
                    exporter_toolkit::logging::parse_level(&value).map_err(bad)?;
                    cli.log_level = value;
                }
                "log.format" => {
                    if !matches!(value.as_str(), "logfmt" | "json") {
                        return Err(bad("valid formats are logfmt, json".into()));
                    }
                    cli.log_format = value;
                }
                "positions.file" => cli.positions_file = Some(PathBuf::from(&value)),
                "positions.sync-period" => {
                    cli.positions_sync_period =
                        Some(GoDuration(units::parse_duration(&value).map_err(bad)?))
                }
                "client.url" => cli.client_url = Some(value),
                "client.tenant-id" => cli.client_tenant_id = Some(value),
                "client.batch-wait" => {
                    cli.client_batch_wait =
                        Some(GoDuration(units::parse_duration(&value).map_err(bad)?))
                }
                "client.batch-size-bytes" => {
                    cli.client_batch_size_bytes = Some(units::parse_size(&value).map_err(bad)?)
                }
                "client.timeout" => {
                    cli.client_timeout =
                        Some(GoDuration(units::parse_duration(&value).map_err(bad)?))
                }
                "client.external-labels" => {
                    for pair in value.split(',').filter(|p| !p.is_empty()) {
                        let (k, v) = pair
                            .split_once('=')
                            .ok_or_else(|| bad(format!("{pair:?} is not name=value")))?;
                        cli.client_external_labels
                            .push((k.to_string(), v.to_string()));
                    }
                }
                "server.http-listen-port" => {
                    cli.server_http_listen_port =
                        Some(value.parse().map_err(|e| bad(format!("{e}")))?)
                }
                "server.http-listen-address" => cli.server_http_listen_address = Some(value),
                _ => {
                    // Checked now on a throwaway config, so a bad value is
                    // a flag error, not a surprise after loading.
                    let mut probe = Config {
                        clients: vec![ClientConfig::default()],
                        ..Config::default()
                    };
                    apply_setting(&mut probe, 0.., name, &value).map_err(bad)?;
                    cli.settings.push((name.to_string(), value));
                }
            }
        }
        Ok(cli)
    }

    /// Applies the flags given to `cfg`, as promtail: `-client.url` adds a
    /// client (the flag-configured one), the other client flags apply to it,
    /// or to every client when no URL flag is given.
    /// `-stdin` was given (and not set to false).
    pub fn stdin(&self) -> bool {
        self.settings
            .iter()
            .rev()
            .find(|(n, _)| n == "stdin")
            .is_some_and(|(_, v)| v == "true")
    }

    pub fn apply_overrides(&self, cfg: &mut Config) {
        if let Some(p) = &self.positions_file {
            cfg.positions.filename = p.clone();
        }
        if let Some(p) = self.positions_sync_period {
            cfg.positions.sync_period = p;
        }
        if let Some(p) = self.server_http_listen_port {
            cfg.server.http_listen_port = p;
        }
        if let Some(a) = &self.server_http_listen_address {
            cfg.server.http_listen_address = a.clone();
        }
        let start = if let Some(url) = &self.client_url {
            cfg.clients.push(ClientConfig {
                url: url.clone(),
                ..ClientConfig::default()
            });
            cfg.clients.len() - 1
        } else {
            0
        };
        for c in &mut cfg.clients[start..] {
            if let Some(t) = &self.client_tenant_id {
                c.tenant_id = t.clone();
            }
            if let Some(w) = self.client_batch_wait {
                c.batchwait = w;
            }
            if let Some(b) = self.client_batch_size_bytes {
                c.batchsize = crate::config::ByteSize(b);
            }
            if let Some(t) = self.client_timeout {
                c.timeout = t;
            }
            for (k, v) in &self.client_external_labels {
                c.external_labels.insert(k.clone(), v.clone());
            }
        }
        for (name, value) in &self.settings {
            // Checked when parsed: cannot fail here.
            let _ = apply_setting(cfg, start.., name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_or_two_dashes_and_both_value_forms() {
        let c = Cli::parse([
            "-config.file=/etc/promtail/config.yml",
            "--config.expand-env",
            "-dry-run=true",
            "--log.level",
            "debug",
            "-check-config",
            "-server.http-listen-port=9080",
            "--client.url",
            "http://loki:3100/loki/api/v1/push",
            "-client.external-labels=host=web1,dc=x",
        ])
        .unwrap();
        assert_eq!(
            c.config_file,
            Some(PathBuf::from("/etc/promtail/config.yml"))
        );
        assert!(c.config_expand_env && c.dry_run && c.check_config);
        assert!(!c.check_syntax && !c.print_config_stderr);
        assert_eq!(c.log_level, "debug");
        assert_eq!(c.server_http_listen_port, Some(9080));
        assert_eq!(
            c.client_external_labels,
            vec![("host".into(), "web1".into()), ("dc".into(), "x".into())]
        );
        let c = Cli::parse(["-dry-run=false", "-h"]).unwrap();
        assert!(!c.dry_run && c.help);
    }

    #[test]
    fn errors_are_clear() {
        assert_eq!(
            Cli::parse(["-config.flie=x"]).unwrap_err().0,
            "flag provided but not defined: -config.flie"
        );
        assert!(Cli::parse(["-config.file"])
            .unwrap_err()
            .0
            .contains("needs an argument"));
        assert!(Cli::parse(["-log.level=loud"])
            .unwrap_err()
            .0
            .contains("-log.level"));
        assert!(Cli::parse(["-dry-run=maybe"])
            .unwrap_err()
            .0
            .contains("invalid boolean"));
        assert!(Cli::parse(["config.yml"])
            .unwrap_err()
            .0
            .contains("unexpected argument"));
        assert!(Cli::parse(["-server.http-listen-port=http"]).is_err());
        assert!(usage().contains("-config.file value"));
    }

    #[test]
    fn overrides_apply_to_the_config() {
        let mut cfg =
            crate::config::from_str("clients:\n  - url: http://a/loki/api/v1/push\n").unwrap();
        let cli = Cli::parse([
            "-positions.file=/tmp/p.yaml",
            "-client.tenant-id=t1",
            "-server.http-listen-address=127.0.0.1",
        ])
        .unwrap();
        cli.apply_overrides(&mut cfg);
        assert_eq!(cfg.positions.filename, PathBuf::from("/tmp/p.yaml"));
        assert_eq!(cfg.clients[0].tenant_id, "t1");
        assert_eq!(cfg.server.http_listen_address, "127.0.0.1");
        let cli = Cli::parse([
            "-client.url=http://b/loki/api/v1/push",
            "-client.tenant-id=t2",
        ])
        .unwrap();
        cli.apply_overrides(&mut cfg);
        assert_eq!(cfg.clients.len(), 2);
        assert_eq!(cfg.clients[1].tenant_id, "t2");
        assert_eq!(cfg.clients[0].tenant_id, "t1");
    }
}
