//! Every key of promtail's configuration reference ("Configure Promtail",
//! Loki 3.x docs: server, clients, positions, scrape_configs and its
//! sources and discoveries, target_config, limits_config, options,
//! tracing, wal, global) and what this shipper does with it: an effect,
//! tested here or by the test the table names, or a refusal naming the key,
//! the file and the line, at load and at `-check-config`. No key is
//! accepted and then ignored.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_tests::loki_receiver::{LokiReceiver, Mode, ReceiverTls};
use e2e_tests::process::{free_port, wait_until, workspace_root, Process};
use log_shipper::ack::Progress;
use log_shipper::client::{Client, DropReason};
use log_shipper::config;
use log_shipper::entry::{Entry, LabelSet};

#[path = "common/test_ca.rs"]
mod test_ca;
use test_ca::TestCa;

#[path = "common/last_push.rs"]
mod last_push;
use last_push::header;

/// What happens to a key.
enum Fate {
    /// Implemented; its effect is tested by this test (file from the
    /// workspace root, function name).
    Tested(&'static str, &'static str),
    /// Accepted only at the value that means "none" or "off", which is what
    /// the shipper does; any other value is refused (a `Refused` row shows it).
    Off,
    /// Loading fails naming the key (the path's last part) on this line.
    Refused(usize),
}
use Fate::*;

const HERE: &str = "log-shipper/tests/promtail_keys.rs";
const CLIENT_TESTS: &str = "log-shipper/tests/client.rs";
const HTTP_TESTS: &str = "log-shipper/tests/client_http.rs";
const SCENARIOS: &str = "tests/tests/shipper_scenarios.rs";

/// (key, YAML using it, fate)
const KEYS: &[(&str, &str, Fate)] = &[
    // ------------------------------------------------------------ global
    ("global.file_watch_config.min_poll_frequency", "global:\n  file_watch_config:\n    min_poll_frequency: 1s\n    max_poll_frequency: 1s\n", Tested("log-shipper/src/app.rs", "file_watch_config_sets_the_poll_period")),
    ("global.file_watch_config.max_poll_frequency", "global:\n  file_watch_config:\n    min_poll_frequency: 1s\n    max_poll_frequency: 1s\n", Tested("log-shipper/src/app.rs", "file_watch_config_sets_the_poll_period")),
    ("global.file_watch_config", "global:\n  file_watch_config:\n    min_poll_frequency: 250ms\n    max_poll_frequency: 5s\n", Tested(HERE, "file_watch_config_backs_off_polling_an_idle_file_up_to_the_max")),
    // ------------------------------------------------------------ server
    ("server.disable", "server:\n  disable: true\n", Tested(HERE, "server_disable_log_level_format_and_graceful_shutdown_timeout")),
    ("server.http_listen_address", "server:\n  http_listen_address: 127.0.0.1\n", Tested(SCENARIOS, "reload_by_post_and_sighup_applies_a_new_config_and_rejects_a_bad_one")),
    ("server.http_listen_port", "server:\n  http_listen_port: 9080\n", Tested(SCENARIOS, "reload_by_post_and_sighup_applies_a_new_config_and_rejects_a_bad_one")),
    ("server.http_listen_network", "server:\n  http_listen_network: tcp\n", Off),
    ("server.http_listen_network", "server:\n  http_listen_port: 9080\n  http_listen_network: unix\n", Refused(3)),
    ("server.http_listen_conn_limit", "server:\n  http_listen_conn_limit: 100\n", Refused(2)),
    ("server.grpc_listen_port", "server:\n  grpc_listen_port: 0\n", Off),
    ("server.grpc_listen_port", "server:\n  http_listen_port: 9080\n  grpc_listen_port: 9095\n", Refused(3)),
    ("server.grpc_listen_address", "server:\n  grpc_listen_address: 0.0.0.0\n", Refused(2)),
    ("server.grpc_listen_network", "server:\n  grpc_listen_network: unix\n", Refused(2)),
    ("server.grpc_listen_conn_limit", "server:\n  grpc_listen_conn_limit: 5\n", Refused(2)),
    ("server.register_instrumentation", "server:\n  register_instrumentation: false\n", Tested(HERE, "server_prefix_reload_and_instrumentation_routes")),
    ("server.graceful_shutdown_timeout", "server:\n  graceful_shutdown_timeout: 1s\n", Tested(HERE, "server_disable_log_level_format_and_graceful_shutdown_timeout")),
    ("server.http_server_read_timeout", "server:\n  http_server_read_timeout: 5s\n", Refused(2)),
    ("server.http_server_write_timeout", "server:\n  http_server_write_timeout: 5s\n", Refused(2)),
    ("server.http_server_idle_timeout", "server:\n  http_server_idle_timeout: 5s\n", Refused(2)),
    ("server.grpc_server_max_recv_msg_size", "server:\n  grpc_server_max_recv_msg_size: 4194304\n", Refused(2)),
    ("server.grpc_server_max_send_msg_size", "server:\n  grpc_server_max_send_msg_size: 4194304\n", Refused(2)),
    ("server.grpc_server_max_concurrent_streams", "server:\n  grpc_server_max_concurrent_streams: 100\n", Refused(2)),
    ("server.grpc_server_max_connection_idle", "server:\n  grpc_server_max_connection_idle: 1m\n", Refused(2)),
    ("server.grpc_server_max_connection_age", "server:\n  grpc_server_max_connection_age: 1m\n", Refused(2)),
    ("server.grpc_server_max_connection_age_grace", "server:\n  grpc_server_max_connection_age_grace: 1m\n", Refused(2)),
    ("server.grpc_server_keepalive_time", "server:\n  grpc_server_keepalive_time: 1m\n", Refused(2)),
    ("server.grpc_server_keepalive_timeout", "server:\n  grpc_server_keepalive_timeout: 1m\n", Refused(2)),
    ("server.grpc_server_min_time_between_pings", "server:\n  grpc_server_min_time_between_pings: 1m\n", Refused(2)),
    ("server.grpc_server_ping_without_stream_allowed", "server:\n  grpc_server_ping_without_stream_allowed: true\n", Refused(2)),
    ("server.grpc_tls_config", "server:\n  grpc_tls_config:\n    cert_file: /c\n", Refused(2)),
    ("server.log_level", "server:\n  log_level: debug\n", Tested(HERE, "server_disable_log_level_format_and_graceful_shutdown_timeout")),
    ("server.log_format", "server:\n  log_format: json\n", Tested(HERE, "server_disable_log_level_format_and_graceful_shutdown_timeout")),
    ("server.http_path_prefix", "server:\n  http_path_prefix: /promtail\n", Tested(HERE, "server_prefix_reload_and_instrumentation_routes")),
    ("server.health_check_target", "server:\n  health_check_target: false\n", Off),
    ("server.health_check_target", "server:\n  health_check_target: true\n", Refused(2)),
    ("server.enable_runtime_reload", "server:\n  enable_runtime_reload: true\n", Tested(HERE, "server_prefix_reload_and_instrumentation_routes")),
    ("server.profiling_enabled", "server:\n  profiling_enabled: true\n", Refused(2)),
    ("server.log_source_ips_enabled", "server:\n  log_source_ips_enabled: true\n", Refused(2)),
    ("server.log_request_headers", "server:\n  log_request_headers: true\n", Refused(2)),
    ("server.http_tls_config.cert_file", "server:\n  http_tls_config:\n    cert_file: /c\n    key_file: /k\n", Tested(HERE, "server_tls_requires_a_client_certificate")),
    ("server.http_tls_config.key_file", "server:\n  http_tls_config:\n    cert_file: /c\n    key_file: /k\n", Tested(HERE, "server_tls_requires_a_client_certificate")),
    ("server.http_tls_config.client_auth_type", "server:\n  http_tls_config:\n    client_auth_type: RequireAndVerifyClientCert\n", Tested(HERE, "server_tls_requires_a_client_certificate")),
    ("server.http_tls_config.client_ca_file", "server:\n  http_tls_config:\n    client_ca_file: /ca\n", Tested(HERE, "server_tls_requires_a_client_certificate")),
    // ------------------------------------------------------------ clients
    ("clients[].url", "clients:\n  - url: http://l/loki/api/v1/push\n", Tested(HERE, "client_keys_reach_loki")),
    ("client.url (old single client)", "client:\n  url: http://l/loki/api/v1/push\n", Tested("log-shipper/src/config/mod.rs", "the_old_single_client_key_counts")),
    ("clients[].headers", "clients:\n  - url: http://l/\n    headers: {X-A: b}\n", Tested(HERE, "client_keys_reach_loki")),
    ("clients[].batchwait", "clients:\n  - url: http://l/\n    batchwait: 2s\n", Tested(CLIENT_TESTS, "batches_streams_in_order_with_tenant_and_external_labels")),
    ("clients[].batchsize", "clients:\n  - url: http://l/\n    batchsize: 1024\n", Tested(CLIENT_TESTS, "batches_streams_in_order_with_tenant_and_external_labels")),
    ("clients[].basic_auth.username", "clients:\n  - url: http://l/\n    basic_auth: {username: u, password: p}\n", Tested(HERE, "client_keys_reach_loki")),
    ("clients[].basic_auth.password", "clients:\n  - url: http://l/\n    basic_auth: {username: u, password: p}\n", Tested(HERE, "client_keys_reach_loki")),
    ("clients[].basic_auth.username_file", "clients:\n  - url: http://l/\n    basic_auth: {username_file: /u}\n", Tested(HERE, "client_keys_reach_loki")),
    ("clients[].basic_auth.password_file", "clients:\n  - url: http://l/\n    basic_auth: {password_file: /p}\n", Tested(HERE, "client_keys_reach_loki")),
    ("clients[].authorization.type", "clients:\n  - url: http://l/\n    authorization: {type: Bearer, credentials: t}\n", Tested(HERE, "client_keys_reach_loki")),
    ("clients[].authorization.credentials", "clients:\n  - url: http://l/\n    authorization: {credentials: t}\n", Tested(HERE, "client_keys_reach_loki")),
    ("clients[].authorization.credentials_file", "clients:\n  - url: http://l/\n    authorization: {credentials_file: /t}\n", Tested(HERE, "client_keys_reach_loki")),
    ("clients[].oauth2.client_id", "clients:\n  - url: http://l/\n    oauth2: {client_id: a, token_url: http://t/}\n", Tested(HTTP_TESTS, "oauth2_tokens_are_fetched_kept_until_expiry_and_refreshed")),
    ("clients[].oauth2.client_secret", "clients:\n  - url: http://l/\n    oauth2: {client_id: a, client_secret: s, token_url: http://t/}\n", Tested("exporter-toolkit/src/http_client.rs", "oauth2_requests_and_replies")),
    ("clients[].oauth2.client_secret_file", "clients:\n  - url: http://l/\n    oauth2: {client_id: a, client_secret_file: /s, token_url: http://t/}\n", Tested(HTTP_TESTS, "oauth2_tokens_are_fetched_kept_until_expiry_and_refreshed")),
    ("clients[].oauth2.token_url", "clients:\n  - url: http://l/\n    oauth2: {client_id: a, token_url: http://t/}\n", Tested(HTTP_TESTS, "oauth2_tokens_are_fetched_kept_until_expiry_and_refreshed")),
    ("clients[].oauth2.scopes", "clients:\n  - url: http://l/\n    oauth2: {client_id: a, token_url: http://t/, scopes: [a]}\n", Tested(HTTP_TESTS, "oauth2_tokens_are_fetched_kept_until_expiry_and_refreshed")),
    ("clients[].oauth2.endpoint_params", "clients:\n  - url: http://l/\n    oauth2: {client_id: a, token_url: http://t/, endpoint_params: {a: b}}\n", Tested(HTTP_TESTS, "oauth2_tokens_are_fetched_kept_until_expiry_and_refreshed")),
    ("clients[].oauth2.tls_config", "clients:\n  - url: http://l/\n    oauth2: {client_id: a, token_url: https://t/, tls_config: {insecure_skip_verify: true}}\n", Tested("log-shipper/src/config/alloy/components.rs", "write_http_options_are_the_yaml_keys_and_print_back")),
    ("clients[].oauth2.proxy_url", "clients:\n  - url: http://l/\n    oauth2: {client_id: a, token_url: http://t/, proxy_url: http://p:1}\n", Tested("log-shipper/src/config/alloy/components.rs", "write_http_options_are_the_yaml_keys_and_print_back")),
    ("clients[].bearer_token", "clients:\n  - url: http://l/\n    bearer_token: t\n", Tested(HERE, "client_keys_reach_loki")),
    ("clients[].bearer_token_file", "clients:\n  - url: http://l/\n    bearer_token_file: /t\n", Tested(HERE, "client_keys_reach_loki")),
    ("clients[].proxy_url", "clients:\n  - url: http://l/\n    proxy_url: http://proxy:3128\n", Tested(HTTP_TESTS, "pushes_go_through_an_http_proxy")),
    ("clients[].no_proxy", "clients:\n  - url: http://l/\n    proxy_url: http://proxy:3128\n    no_proxy: a.example\n", Tested(HTTP_TESTS, "pushes_go_through_an_http_proxy")),
    ("clients[].proxy_connect_header", "clients:\n  - url: http://l/\n    proxy_url: http://proxy:3128\n    proxy_connect_header: {X-A: [b]}\n", Tested(HTTP_TESTS, "pushes_go_through_an_http_proxy")),
    ("clients[].proxy_from_environment", "clients:\n  - url: http://l/\n    proxy_from_environment: true\n", Tested("exporter-toolkit/src/http_client.rs", "proxies_from_the_environment")),
    ("clients[].follow_redirects", "clients:\n  - url: http://l/\n    follow_redirects: false\n", Tested(HTTP_TESTS, "redirects_are_followed_as_promtail_follows_them")),
    // promtail's client is built with HTTP/2 disabled: HTTP/1.1 whatever
    // this says, in promtail and here.
    ("clients[].enable_http2", "clients:\n  - url: http://l/\n    enable_http2: true\n", Tested("log-shipper/src/client/transport.rs", "http2_is_never_offered_as_promtail")),
    ("clients[].tls_config.ca_file", "clients:\n  - url: https://l/\n    tls_config: {ca_file: /ca}\n", Tested("log-shipper/tests/client_tls.rs", "https_with_ca_file_server_name_insecure_and_client_certificates")),
    ("clients[].tls_config.cert_file", "clients:\n  - url: https://l/\n    tls_config: {cert_file: /c, key_file: /k}\n", Tested("log-shipper/tests/client_tls.rs", "https_with_ca_file_server_name_insecure_and_client_certificates")),
    ("clients[].tls_config.key_file", "clients:\n  - url: https://l/\n    tls_config: {cert_file: /c, key_file: /k}\n", Tested("log-shipper/tests/client_tls.rs", "https_with_ca_file_server_name_insecure_and_client_certificates")),
    ("clients[].tls_config.server_name", "clients:\n  - url: https://l/\n    tls_config: {server_name: n}\n", Tested("log-shipper/tests/client_tls.rs", "https_with_ca_file_server_name_insecure_and_client_certificates")),
    ("clients[].tls_config.insecure_skip_verify", "clients:\n  - url: https://l/\n    tls_config: {insecure_skip_verify: true}\n", Tested("log-shipper/tests/client_tls.rs", "https_with_ca_file_server_name_insecure_and_client_certificates")),
    ("clients[].tls_config.ca", "clients:\n  - url: https://l/\n    tls_config: {ca: x}\n", Tested(HERE, "client_tls_inline_pem_and_versions")),
    ("clients[].tls_config.cert", "clients:\n  - url: https://l/\n    tls_config: {cert: x, key: y}\n", Tested(HERE, "client_tls_inline_pem_and_versions")),
    ("clients[].tls_config.key", "clients:\n  - url: https://l/\n    tls_config: {cert: x, key: y}\n", Tested(HERE, "client_tls_inline_pem_and_versions")),
    ("clients[].tls_config.min_version", "clients:\n  - url: https://l/\n    tls_config: {min_version: TLS13}\n", Tested(HERE, "client_tls_inline_pem_and_versions")),
    ("clients[].tls_config.max_version", "clients:\n  - url: https://l/\n    tls_config: {max_version: TLS12}\n", Tested(HERE, "client_tls_inline_pem_and_versions")),
    ("clients[].backoff_config.min_period", "clients:\n  - url: http://l/\n    backoff_config: {min_period: 1s}\n", Tested(CLIENT_TESTS, "retries_429_500_down_and_hang_without_losing_or_acking_early")),
    ("clients[].backoff_config.max_period", "clients:\n  - url: http://l/\n    backoff_config: {max_period: 1s}\n", Tested(CLIENT_TESTS, "retries_429_500_down_and_hang_without_losing_or_acking_early")),
    ("clients[].backoff_config.max_retries", "clients:\n  - url: http://l/\n    backoff_config: {max_retries: 2}\n", Tested(CLIENT_TESTS, "retries_exhausted_drop_counted_and_stop_never_acks_unsent")),
    ("clients[].external_labels", "clients:\n  - url: http://l/\n    external_labels: {host: a}\n", Tested(HERE, "client_keys_reach_loki")),
    ("clients[].timeout", "clients:\n  - url: http://l/\n    timeout: 1s\n", Tested(CLIENT_TESTS, "retries_429_500_down_and_hang_without_losing_or_acking_early")),
    ("clients[].tenant_id", "clients:\n  - url: http://l/\n    tenant_id: t\n", Tested(HERE, "client_keys_reach_loki")),
    ("clients[].drop_rate_limited_batches", "clients:\n  - url: http://l/\n    drop_rate_limited_batches: true\n", Tested(HERE, "drop_rate_limited_batches_drops_a_429_at_once")),
    ("clients[].http_headers", "clients:\n  - url: http://l/\n    http_headers: {X-A: {values: [b], secrets: [c], files: [/f]}}\n", Tested(HTTP_TESTS, "http_headers_reach_loki_and_files_are_read_at_each_push")),
    ("clients[].oauth2.client_secret_ref", "clients:\n  - url: http://l/\n    oauth2:\n      client_id: a\n      token_url: http://t/\n      client_secret_ref: vault-key\n", Refused(6)),
    ("clients[].stream_lag_labels", "clients:\n  - url: http://l/\n    stream_lag_labels: [a]\n", Refused(3)),
    // ------------------------------------------------------------ positions
    ("positions.filename", "positions:\n  filename: /tmp/p.yaml\n", Tested("log-shipper/src/positions.rs", "saves_atomically_what_progress_committed_and_promtail_can_read_it")),
    ("positions.sync_period", "positions:\n  sync_period: 1s\n", Tested("log-shipper/src/positions.rs", "syncs_periodically_and_read_only_never_writes")),
    ("positions.ignore_invalid_yaml", "positions:\n  ignore_invalid_yaml: true\n", Tested("log-shipper/src/positions.rs", "a_corrupt_file_is_reported_kept_and_never_blocks")),
    // ------------------------------------------------------------ scrape_configs
    ("scrape_configs[].job_name", "scrape_configs:\n  - job_name: a\n", Tested("log-shipper/tests/golden_examples.rs", "nginx_access_and_error_logs")),
    ("scrape_configs[].pipeline_stages", "scrape_configs:\n  - job_name: a\n    pipeline_stages: [{json: {expressions: {a: a}}}]\n", Tested("log-shipper/tests/golden_examples.rs", "nginx_access_and_error_logs")),
    ("scrape_configs[].pipeline_stages[].non_indexed_labels", "scrape_configs:\n  - job_name: a\n    pipeline_stages: [{non_indexed_labels: {a: null}}]\n", Tested("log-shipper/src/pipeline/stages/structured_metadata.rs", "non_indexed_labels_is_the_same_stage")),
    ("scrape_configs[].static_configs", "scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [localhost], labels: {__path__: /v/*.log}}]\n", Tested("log-shipper/tests/golden_examples.rs", "nginx_access_and_error_logs")),
    ("scrape_configs[].file_sd_configs", "scrape_configs:\n  - job_name: a\n    file_sd_configs: [{files: [/t/*.json], refresh_interval: 1m}]\n", Tested(SCENARIOS, "file_sd_targets_come_and_go_while_running")),
    ("scrape_configs[].relabel_configs", "scrape_configs:\n  - job_name: a\n    relabel_configs: [{source_labels: [__path__], target_label: p}]\n", Tested("log-shipper/tests/config_compat.rs", "file_sd_relabel_and_json")),
    ("scrape_configs[].docker_sd_configs", "scrape_configs:\n  - job_name: a\n    docker_sd_configs: [{host: 'unix:///var/run/docker.sock'}]\n", Tested("tests/tests/shipper_docker.rs", "container_logs_arrive_once_across_restarts_removal_and_shipper_restarts")),
    ("scrape_configs[].journal", "scrape_configs:\n  - job_name: a\n    journal: {max_age: 1h}\n", Tested("tests/tests/shipper_journal.rs", "journal_restarts_from_its_cursor_without_loss_or_repeat")),
    ("scrape_configs[].syslog", "scrape_configs:\n  - job_name: a\n    syslog: {listen_address: '127.0.0.1:1514'}\n", Tested("tests/tests/shipper_syslog.rs", "rsyslog_forwards_over_tcp_udp_and_tls")),
    // UDP has no connection to time out.
    ("scrape_configs[].syslog.idle_timeout", "scrape_configs:\n  - job_name: a\n    syslog:\n      listen_address: '127.0.0.1:1514'\n      idle_timeout: 5m\n      listen_protocol: udp\n  - job_name: b\n    syslog:\n      listen_address: '127.0.0.1:1515'\n      idle_timeout: 1m\n", Refused(5)),
    ("scrape_configs[].loki_push_api", "scrape_configs:\n  - job_name: a\n    loki_push_api: {server: {http_listen_port: 3500}}\n", Tested("tests/tests/shipper_push.rs", "a_chained_shipper_loses_nothing_across_an_outage_and_a_restart")),
    ("scrape_configs[].loki_push_api.server.grpc_listen_port", "scrape_configs:\n  - job_name: a\n    loki_push_api:\n      server:\n        http_listen_port: 3500\n        grpc_listen_port: 3600\n", Refused(6)),
    ("scrape_configs[].gelf", "scrape_configs:\n  - job_name: a\n    gelf: {listen_address: '127.0.0.1:12201'}\n", Tested("tests/tests/shipper_push.rs", "graypy_messages_arrive_chunked_and_compressed")),
    ("scrape_configs[].encoding", "scrape_configs:\n  - job_name: a\n    encoding: ISO-8859-1\n", Tested(HERE, "encoding_converts_latin1_and_shift_jis_files_to_utf8")),
    ("scrape_configs[].encoding", "scrape_configs:\n  - job_name: a\n    encoding: UTF-16\n", Tested(HERE, "encoding_utf16_and_iso_2022_jp_resume_exactly_after_a_restart")),
    ("scrape_configs[].encoding", "scrape_configs:\n  - job_name: a\n    encoding: ISO-2022-KR\n", Refused(3)),
    ("scrape_configs[].decompression.enabled", "scrape_configs:\n  - job_name: a\n    decompression: {enabled: true, format: gz}\n", Tested(HERE, "decompression_reads_gz_bz2_and_zlib_by_the_setting_after_initial_delay")),
    ("scrape_configs[].decompression.format", "scrape_configs:\n  - job_name: a\n    decompression: {enabled: true, format: bz2}\n", Tested(HERE, "decompression_reads_gz_bz2_and_zlib_by_the_setting_after_initial_delay")),
    ("scrape_configs[].decompression.initial_delay", "scrape_configs:\n  - job_name: a\n    decompression: {enabled: true, format: z, initial_delay: 1s}\n", Tested(HERE, "decompression_reads_gz_bz2_and_zlib_by_the_setting_after_initial_delay")),
    ("scrape_configs[].decompression.format", "scrape_configs:\n  - job_name: a\n    decompression: {enabled: true, format: lz4}\n", Refused(3)),
    ("scrape_configs[].kafka", "scrape_configs:\n  - job_name: a\n    kafka: {brokers: [k:9092], topics: [t]}\n", Refused(3)),
    ("scrape_configs[].gcplog", "scrape_configs:\n  - job_name: a\n    gcplog: {project_id: p, subscription: s}\n", Refused(3)),
    ("scrape_configs[].windows_events", "scrape_configs:\n  - job_name: a\n    windows_events: {eventlog_name: Application}\n", Refused(3)),
    ("scrape_configs[].cloudflare", "scrape_configs:\n  - job_name: a\n    cloudflare: {api_token: t, zone_id: z}\n", Refused(3)),
    ("scrape_configs[].heroku_drain", "scrape_configs:\n  - job_name: a\n    heroku_drain: {server: {http_listen_port: 8080}}\n", Refused(3)),
    ("scrape_configs[].azure_event_hubs", "scrape_configs:\n  - job_name: a\n    azure_event_hubs: {fully_qualified_namespace: n}\n", Refused(3)),
    ("scrape_configs[].kubernetes_sd_configs", "scrape_configs:\n  - job_name: a\n    kubernetes_sd_configs: [{role: pod}]\n", Refused(3)),
    ("scrape_configs[].consul_sd_configs", "scrape_configs:\n  - job_name: a\n    consul_sd_configs: [{server: 'c:8500'}]\n", Refused(3)),
    ("scrape_configs[].consulagent_sd_configs", "scrape_configs:\n  - job_name: a\n    consulagent_sd_configs: [{server: 'c:8500'}]\n", Refused(3)),
    ("scrape_configs[].dns_sd_configs", "scrape_configs:\n  - job_name: a\n    dns_sd_configs: [{names: [x]}]\n", Refused(3)),
    ("scrape_configs[].ec2_sd_configs", "scrape_configs:\n  - job_name: a\n    ec2_sd_configs: [{region: r}]\n", Refused(3)),
    ("scrape_configs[].gce_sd_configs", "scrape_configs:\n  - job_name: a\n    gce_sd_configs: [{project: p}]\n", Refused(3)),
    ("scrape_configs[].azure_sd_configs", "scrape_configs:\n  - job_name: a\n    azure_sd_configs: [{}]\n", Refused(3)),
    ("scrape_configs[].openstack_sd_configs", "scrape_configs:\n  - job_name: a\n    openstack_sd_configs: [{}]\n", Refused(3)),
    ("scrape_configs[].digitalocean_sd_configs", "scrape_configs:\n  - job_name: a\n    digitalocean_sd_configs: [{}]\n", Refused(3)),
    ("scrape_configs[].marathon_sd_configs", "scrape_configs:\n  - job_name: a\n    marathon_sd_configs: [{}]\n", Refused(3)),
    ("scrape_configs[].nerve_sd_configs", "scrape_configs:\n  - job_name: a\n    nerve_sd_configs: [{}]\n", Refused(3)),
    ("scrape_configs[].serverset_sd_configs", "scrape_configs:\n  - job_name: a\n    serverset_sd_configs: [{}]\n", Refused(3)),
    ("scrape_configs[].triton_sd_configs", "scrape_configs:\n  - job_name: a\n    triton_sd_configs: [{}]\n", Refused(3)),
    ("scrape_configs[].limits_config", "scrape_configs:\n  - job_name: a\n    limits_config: {}\n", Refused(3)),
    // ------------------------------------------------------------ target_config
    ("target_config.sync_period", "target_config:\n  sync_period: 1s\n", Tested(SCENARIOS, "file_sd_targets_come_and_go_while_running")),
    ("target_config.stdin", "target_config:\n  stdin: false\n", Off),
    ("target_config.stdin", "target_config:\n  stdin: true\n", Tested(HERE, "stdin_lines_go_through_the_first_scrape_config_and_the_shipper_exits_at_their_end")),
    // ------------------------------------------------------------ limits_config
    ("limits_config.readline_rate_enabled", "limits_config:\n  readline_rate_enabled: true\n", Tested(SCENARIOS, "readline_rate_drops_or_waits_as_configured")),
    ("limits_config.readline_rate", "limits_config:\n  readline_rate: 10\n", Tested(SCENARIOS, "readline_rate_drops_or_waits_as_configured")),
    ("limits_config.readline_burst", "limits_config:\n  readline_burst: 10\n", Tested(SCENARIOS, "readline_rate_drops_or_waits_as_configured")),
    ("limits_config.readline_rate_drop", "limits_config:\n  readline_rate_drop: false\n", Tested(SCENARIOS, "readline_rate_drops_or_waits_as_configured")),
    ("limits_config.max_streams", "limits_config:\n  max_streams: 10\n", Tested(CLIENT_TESTS, "entries_of_streams_past_max_streams_are_dropped_and_acked")),
    ("limits_config.max_line_size", "limits_config:\n  max_line_size: 1KB\n", Tested("log-shipper/tests/tailing.rs", "a_5_mib_line_and_long_lines_truncated_or_dropped")),
    ("limits_config.max_line_size_truncate", "limits_config:\n  max_line_size_truncate: true\n", Tested("log-shipper/tests/tailing.rs", "a_5_mib_line_and_long_lines_truncated_or_dropped")),
    // ------------------------------------------------------------ options, tracing, wal
    ("options.stream_lag_labels", "options:\n  stream_lag_labels: ''\n", Off),
    ("options.stream_lag_labels", "options:\n  stream_lag_labels: filename\n", Refused(2)),
    ("tracing.enabled", "tracing:\n  enabled: false\n", Off),
    ("tracing.enabled", "tracing:\n  enabled: true\n", Refused(2)),
    ("wal", "wal:\n  enabled: true\n", Refused(1)),
];

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn every_promtail_key_is_implemented_or_refused_by_name_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let binary = e2e_tests::shipper::binary();
    let mut failures = Vec::new();
    for (i, (key, yaml, fate)) in KEYS.iter().enumerate() {
        let path = write(dir.path(), &format!("k{i}.yaml"), yaml);
        let loaded = config::load(&path, false);
        match fate {
            Tested(file, test) => {
                if let Err(e) = loaded {
                    failures.push(format!("{key}: should load: {e}"));
                }
                let src = std::fs::read_to_string(workspace_root().join(file))
                    .unwrap_or_else(|e| panic!("{key}: {file}: {e}"));
                if !src.contains(&format!("fn {test}(")) {
                    failures.push(format!("{key}: no test {test} in {file}"));
                }
            }
            Off => {
                if let Err(e) = loaded {
                    failures.push(format!("{key}: its 'off' value should load: {e}"));
                }
            }
            Refused(line) => {
                let name = key.rsplit('.').next().unwrap().trim_end_matches("[]");
                let want = format!("{}:{line}:", path.display());
                let check = |what: &str, text: &str| {
                    if !(text.contains(&want)
                        && text.contains(name)
                        && text.contains("not supported by this shipper"))
                    {
                        Some(format!(
                            "{key}: {what} should say {want} ... {name} ... not supported: {text}"
                        ))
                    } else {
                        None
                    }
                };
                match loaded {
                    Ok(_) => failures.push(format!("{key}: accepted, should be refused")),
                    Err(e) => failures.extend(check("load", &e.to_string())),
                }
                let out = Command::new(&binary)
                    .arg(format!("-config.file={}", path.display()))
                    .arg("-check-config")
                    .output()
                    .unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr);
                if out.status.success() {
                    failures.push(format!("{key}: -check-config passed"));
                }
                failures.extend(check("-check-config", &stderr));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ------------------------------------------------------------ clients

/// A config's first client pushing `n` lines to the receiver; how many of
/// them the client gave up on as rate limited.
async fn push_through(yaml: &str, n: usize) -> u64 {
    let cfg = config::from_str(yaml).unwrap();
    let settings = log_shipper::app::client_settings(&cfg.clients[0]).unwrap();
    let client = Client::start(settings).unwrap();
    let before = client.metrics().dropped_entries(DropReason::RateLimited);
    let p = Progress::new(0);
    let mut labels = LabelSet::new();
    labels.insert("job".into(), "keys".into());
    for i in 0..n {
        let mut e = Entry::new(labels.clone(), format!("line {i}"));
        e.ack = Some(p.track(i as u64 + 1));
        client.sender().send(e).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.committed() < n as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(p.committed(), n as u64, "every line sent or dropped");
    let dropped = client.metrics().dropped_entries(DropReason::RateLimited) - before;
    client.stop(Duration::from_millis(200)).await;
    dropped
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_keys_reach_loki() {
    let r = LokiReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    let url = r.push_url();
    let base = |extra: &str| format!("clients:\n  - url: {url}\n    batchwait: 20ms\n{extra}");
    let basic = |u: &str, p: &str| {
        use base64::Engine as _;
        let t = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        Some(format!("Basic {t}"))
    };

    push_through(&base("    headers: {X-Custom: yes}\n    tenant_id: team-a\n    external_labels: {host: web1}\n"), 1).await;
    assert_eq!(header(&r, "x-custom").as_deref(), Some("yes"));
    assert_eq!(header(&r, "x-scope-orgid").as_deref(), Some("team-a"));
    let streams = r.streams();
    let s = streams.last().unwrap();
    assert_eq!(s.tenant.as_deref(), Some("team-a"));
    assert_eq!(s.labels.get("host").map(String::as_str), Some("web1"));

    push_through(&base("    basic_auth: {username: u, password: p}\n"), 1).await;
    assert_eq!(header(&r, "authorization"), basic("u", "p"));
    let (uf, pf) = (
        write(dir.path(), "u", "fileuser\n"),
        write(dir.path(), "p", "filepass\n"),
    );
    let yaml = format!(
        "    basic_auth: {{username_file: {}, password_file: {}}}\n",
        uf.display(),
        pf.display()
    );
    push_through(&base(&yaml), 1).await;
    assert_eq!(header(&r, "authorization"), basic("fileuser", "filepass"));

    push_through(&base("    bearer_token: tok1\n"), 1).await;
    assert_eq!(header(&r, "authorization").as_deref(), Some("Bearer tok1"));
    let tf = write(dir.path(), "t", "tok2\n");
    push_through(
        &base(&format!("    bearer_token_file: {}\n", tf.display())),
        1,
    )
    .await;
    assert_eq!(header(&r, "authorization").as_deref(), Some("Bearer tok2"));
    push_through(
        &base("    authorization: {type: Bearer, credentials: tok3}\n"),
        1,
    )
    .await;
    assert_eq!(header(&r, "authorization").as_deref(), Some("Bearer tok3"));
    let cf = write(dir.path(), "c", "tok4\n");
    let yaml = format!(
        "    authorization: {{credentials_file: {}}}\n",
        cf.display()
    );
    push_through(&base(&yaml), 1).await;
    assert_eq!(header(&r, "authorization").as_deref(), Some("Bearer tok4"));
    assert_eq!(r.entry_count(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_rate_limited_batches_drops_a_429_at_once() {
    let r = LokiReceiver::start();
    r.set_mode(Mode::Status(429));
    let yaml = |drop: bool| {
        format!(
            "clients:\n  - url: {}\n    batchwait: 20ms\n    drop_rate_limited_batches: {drop}\n    backoff_config: {{min_period: 50ms, max_period: 50ms, max_retries: 3}}\n",
            r.push_url()
        )
    };
    assert_eq!(
        push_through(&yaml(true), 1).await,
        1,
        "dropped as rate limited"
    );
    assert_eq!(r.requests(), 1, "and not retried");
    assert_eq!(push_through(&yaml(false), 1).await, 1);
    assert_eq!(r.requests(), 1 + 4, "without it: retried max_retries times");
}

/// `s` indented to sit in a YAML block scalar at `indent` spaces.
fn block(s: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    s.lines().map(|l| format!("{pad}{l}\n")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_tls_inline_pem_and_versions() {
    let ca = TestCa::new();
    let (cert, key) = ca.sign("localhost");
    let r = LokiReceiver::start_tls(ReceiverTls {
        cert_pem: cert,
        key_pem: key,
        client_ca_pem: Some(ca.pem.clone()),
    });
    let url = r.push_url().replace("127.0.0.1", "localhost");
    let (client_cert, client_key) = ca.sign("shipper");
    let tls = |extra: &str| {
        format!(
            "clients:\n  - url: {url}\n    batchwait: 20ms\n    tls_config:\n      ca: |\n{}      cert: |\n{}      key: |\n{}{extra}",
            block(&ca.pem, 8),
            block(&client_cert, 8),
            block(&client_key, 8)
        )
    };
    // Inline CA, certificate and key: the receiver wants the certificate.
    push_through(&tls(""), 1).await;
    assert_eq!(r.entry_count(), 1);
    push_through(&tls("      min_version: TLS13\n"), 1).await;
    push_through(&tls("      max_version: TLS12\n"), 1).await;
    assert_eq!(r.entry_count(), 3);

    // The versions are the ones offered: a TLS 1.3-only server and a
    // client held to TLS 1.2 do not agree.
    let cfg = config::from_str(&tls("      max_version: TLS12\n")).unwrap();
    let t = log_shipper::app::client_settings(&cfg.clients[0])
        .unwrap()
        .tls;
    let client = log_shipper::client::transport::client_tls_config(&t).unwrap();
    let (cert, key) = ca.sign("localhost");
    let dir = tempfile::tempdir().unwrap();
    let server = exporter_toolkit::tls::server_config(
        &exporter_toolkit::web_config::TlsSettings {
            cert_file: Some(write(dir.path(), "c.pem", &cert)),
            key_file: Some(write(dir.path(), "k.pem", &key)),
            min_version: Some("TLS13".into()),
            ..Default::default()
        },
        dir.path(),
    )
    .unwrap();
    assert!(
        handshake(client, server).is_err(),
        "TLS 1.2 client, TLS 1.3 server"
    );
    let t = log_shipper::client::TlsSettings {
        max_version: None,
        ..t
    };
    let client = log_shipper::client::transport::client_tls_config(&t).unwrap();
    let server = exporter_toolkit::tls::server_config(
        &exporter_toolkit::web_config::TlsSettings {
            cert_file: Some(dir.path().join("c.pem")),
            key_file: Some(dir.path().join("k.pem")),
            min_version: Some("TLS13".into()),
            ..Default::default()
        },
        dir.path(),
    )
    .unwrap();
    handshake(client, server).unwrap();

    // Bad values are errors naming the key.
    for (extra, what) in [
        ("      min_version: TLS10\n", "min_version"),
        (
            "      min_version: TLS13\n      max_version: TLS12\n",
            "min_version",
        ),
        ("      ca_file: /etc/hostname\n", "ca"),
    ] {
        let cfg = config::from_str(&tls(extra)).unwrap();
        let e = log_shipper::app::client_settings(&cfg.clients[0]).unwrap_err();
        assert!(e.contains(what), "{e}");
    }
}

/// A TLS handshake between the two configs, in memory.
fn handshake(client: rustls::ClientConfig, server: rustls::ServerConfig) -> Result<(), String> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut c = rustls::ClientConnection::new(Arc::new(client), name).map_err(|e| e.to_string())?;
    let mut s = rustls::ServerConnection::new(Arc::new(server)).map_err(|e| e.to_string())?;
    for _ in 0..10 {
        let mut buf = Vec::new();
        c.write_tls(&mut buf).map_err(|e| e.to_string())?;
        s.read_tls(&mut buf.as_slice()).map_err(|e| e.to_string())?;
        s.process_new_packets().map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.write_tls(&mut buf).map_err(|e| e.to_string())?;
        c.read_tls(&mut buf.as_slice()).map_err(|e| e.to_string())?;
        c.process_new_packets().map_err(|e| e.to_string())?;
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok(());
        }
    }
    Err("handshake did not finish".into())
}

// ------------------------------------------------------------ the server

fn start(config: &Path, args: &[&str]) -> Process {
    let mut cmd = Command::new(e2e_tests::shipper::binary());
    cmd.arg(format!("-config.file={}", config.display()))
        .args(args);
    Process::spawn("log-shipper", cmd, tempfile::tempdir().unwrap())
}

fn server_config(dir: &Path, port: u16, server: &str) -> PathBuf {
    let r = dir.join("unused-loki");
    write(
        dir,
        "config.yaml",
        &format!(
            "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {port}\n{server}positions:\n  filename: {}/positions.yaml\nclients:\n  - url: http://127.0.0.1:9/loki/api/v1/push\nscrape_configs:\n  - job_name: none\n    static_configs: [{{labels: {{__path__: {}/*.log}}}}]\n",
            dir.display(),
            r.display()
        ),
    )
}

fn status(r: Result<ureq::Response, ureq::Error>) -> u16 {
    match r {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, _)) => s,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn server_prefix_reload_and_instrumentation_routes() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");

    // Defaults, as promtail: no runtime reload, /metrics served.
    let cfg = server_config(dir.path(), port, "");
    let mut p = start(&cfg, &[]);
    wait_until("ready", Duration::from_secs(20), || {
        Ok(ureq::get(&format!("{base}/ready")).call().is_ok())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", p.log_tail(20)));
    assert_eq!(status(ureq::post(&format!("{base}/reload")).call()), 404);
    assert_eq!(status(ureq::get(&format!("{base}/metrics")).call()), 200);
    kill(&mut p);

    let cfg = server_config(
        dir.path(),
        port,
        "  http_path_prefix: /promtail/\n  enable_runtime_reload: true\n  register_instrumentation: false\n",
    );
    let mut p = start(&cfg, &[]);
    wait_until("ready under the prefix", Duration::from_secs(20), || {
        Ok(ureq::get(&format!("{base}/promtail/ready")).call().is_ok())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", p.log_tail(20)));
    assert_eq!(status(ureq::get(&format!("{base}/ready")).call()), 404);
    assert_eq!(
        status(ureq::get(&format!("{base}/promtail/metrics")).call()),
        404
    );
    assert_eq!(
        status(ureq::post(&format!("{base}/promtail/reload")).call()),
        200
    );
    kill(&mut p);

    // The same through the flags.
    let cfg = server_config(dir.path(), port, "");
    let mut p = start(
        &cfg,
        &[
            "-server.path-prefix=/x",
            "-server.enable-runtime-reload",
            "-server.register-instrumentation=false",
        ],
    );
    wait_until(
        "ready under the flag's prefix",
        Duration::from_secs(20),
        || Ok(ureq::get(&format!("{base}/x/ready")).call().is_ok()),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", p.log_tail(20)));
    assert_eq!(status(ureq::get(&format!("{base}/x/metrics")).call()), 404);
    assert_eq!(status(ureq::post(&format!("{base}/x/reload")).call()), 200);
    kill(&mut p);
}

fn kill(p: &mut Process) {
    let _ = Command::new("kill").arg(p.id().to_string()).status();
    wait_until("exit", Duration::from_secs(40), || {
        Ok(p.exit_status().is_some())
    })
    .unwrap();
}

#[test]
fn server_tls_requires_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (cert, key) = ca.sign("localhost");
    let (client_cert, client_key) = ca.sign("operator");
    let other = TestCa::new();
    let (stranger_cert, stranger_key) = other.sign("stranger");
    let f = |name: &str, text: &str| write(dir.path(), name, text).display().to_string();
    let (ca_f, cert_f, key_f) = (f("ca.pem", &ca.pem), f("s.pem", &cert), f("s.key", &key));
    let (cc, ck) = (f("c.pem", &client_cert), f("c.key", &client_key));
    let (sc, sk) = (f("x.pem", &stranger_cert), f("x.key", &stranger_key));
    let port = free_port();
    let cfg = server_config(
        dir.path(),
        port,
        &format!("  http_tls_config:\n    cert_file: {cert_f}\n    key_file: {key_f}\n    client_auth_type: RequireAndVerifyClientCert\n    client_ca_file: {ca_f}\n"),
    );
    let mut p = start(&cfg, &[]);
    let url = format!("https://localhost:{port}/ready");
    // curl, a client nobody here wrote.
    let curl = |args: &[&str]| -> (bool, String) {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "5", "--cacert", &ca_f, "--resolve"])
            .arg(format!("localhost:{port}:127.0.0.1"))
            .args(args)
            .arg(&url)
            .output()
            .expect("running curl");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    wait_until("ready over TLS", Duration::from_secs(20), || {
        Ok(curl(&["--cert", &cc, "--key", &ck]).0)
    })
    .unwrap_or_else(|e| {
        let (_, out) = curl(&["--cert", &cc, "--key", &ck]);
        panic!("{e}\ncurl: {out}\n{}", p.log_tail(20))
    });
    let (ok, body) = curl(&["--cert", &cc, "--key", &ck]);
    assert!(ok && body.contains("Ready"), "{body}");
    let (ok, body) = curl(&[]);
    assert!(!ok, "no client certificate, no answer: {body}");
    let (ok, body) = curl(&["--cert", &sc, "--key", &sk]);
    assert!(!ok, "a certificate of another CA is refused: {body}");
    // Plain HTTP gets no page.
    assert!(ureq::get(&format!("http://127.0.0.1:{port}/ready"))
        .call()
        .is_err());
    kill(&mut p);

    // A missing certificate is a -check-config error naming the key.
    let cfg = server_config(
        dir.path(),
        port,
        "  http_tls_config:\n    cert_file: /nonexistent/c.pem\n    key_file: /nonexistent/k.pem\n",
    );
    let out = Command::new(e2e_tests::shipper::binary())
        .arg(format!("-config.file={}", cfg.display()))
        .arg("-check-config")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("http_tls_config") && stderr.contains("cert_file"),
        "{stderr}"
    );
}

#[test]
fn server_disable_log_level_format_and_graceful_shutdown_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let r = LokiReceiver::start();
    r.set_mode(Mode::Down);
    let port = free_port();
    write(dir.path(), "a.log", "one\ntwo\n");
    let cfg = write(
        dir.path(),
        "config.yaml",
        &format!(
            "server:\n  disable: true\n  http_listen_port: {port}\n  log_level: debug\n  log_format: json\n  graceful_shutdown_timeout: 1s\npositions:\n  filename: {d}/positions.yaml\nclients:\n  - url: {url}\n    backoff_config: {{min_period: 100ms, max_period: 100ms, max_retries: 0}}\nscrape_configs:\n  - job_name: a\n    static_configs: [{{labels: {{__path__: {d}/a.log}}}}]\n",
            d = dir.path().display(),
            url = r.push_url()
        ),
    );
    let mut p = start(&cfg, &[]);
    wait_until("debug logs in JSON", Duration::from_secs(20), || {
        let log = p.log();
        Ok(log
            .lines()
            .any(|l| l.starts_with('{') && l.to_ascii_lowercase().contains("\"level\":\"debug\"")))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", p.log_tail(20)));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "server.disable: nothing listens"
    );
    // Loki is down: the shutdown waits graceful_shutdown_timeout, not 30s.
    let t = Instant::now();
    kill(&mut p);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn encoding_converts_latin1_and_shift_jis_files_to_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let r = LokiReceiver::start();
    let port = free_port();
    // "café 10€" in windows-1252; in ISO-8859-1, as Go's x/text reads it,
    // every byte is its own code point (0x80-0x9F too); "日本" in Shift_JIS.
    std::fs::write(dir.path().join("cp1252.log"), b"caf\xe9 10\x80\n").unwrap();
    std::fs::write(dir.path().join("latin1.log"), b"caf\xe9 \x80\x9f\n").unwrap();
    std::fs::write(dir.path().join("sjis.log"), b"\x93\xfa\x96\x7b\n").unwrap();
    std::fs::write(dir.path().join("utf8.log"), "déjà\n").unwrap();
    let job = |name: &str, enc: &str| {
        format!(
            "  - job_name: {name}\n    encoding: {enc}\n    static_configs: [{{labels: {{job: {name}, __path__: {}/{name}.log}}}}]\n",
            dir.path().display()
        )
    };
    let cfg = write(
        dir.path(),
        "config.yaml",
        &format!(
            "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {port}\npositions:\n  filename: {}/positions.yaml\nclients:\n  - url: {}\n    batchwait: 50ms\nscrape_configs:\n{}{}{}{}",
            dir.path().display(),
            r.push_url(),
            job("cp1252", "windows-1252"),
            job("latin1", "ISO-8859-1"),
            job("sjis", "Shift_JIS"),
            job("utf8", "UTF-8"),
        ),
    );
    let mut p = start(&cfg, &[]);
    assert!(
        r.wait_for_entries(4, Duration::from_secs(20)),
        "{}",
        p.log_tail(20)
    );
    let mut lines = r.lines();
    lines.sort();
    assert_eq!(lines, ["café 10€", "café \u{80}\u{9f}", "déjà", "日本"]);
    kill(&mut p);
}

#[test]
fn file_watch_config_backs_off_polling_an_idle_file_up_to_the_max() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let r = LokiReceiver::start();
    let port = free_port();
    let log = write(d, "a.log", "one\n");
    let cfg = write(
        d,
        "config.yaml",
        &format!(
            "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {port}\npositions:\n  filename: {}/positions.yaml\nclients:\n  - url: {}\n    batchwait: 50ms\nglobal:\n  file_watch_config:\n    min_poll_frequency: 100ms\n    max_poll_frequency: 2s\nscrape_configs:\n  - job_name: a\n    static_configs: [{{labels: {{__path__: {}/*.log}}}}]\n",
            d.display(),
            r.push_url(),
            d.display(),
        ),
    );
    let mut p = start(&cfg, &[]);
    assert!(
        r.wait_for_entries(1, Duration::from_secs(20)),
        "{}",
        p.log_tail(20)
    );
    let polls = || -> u64 {
        let text = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        let series = format!(
            "log_shipper_file_idle_polls_total{{path=\"{}\"}} ",
            log.display()
        );
        text.lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .map_or(0, |v| v.trim().parse().unwrap())
    };
    // Idle for 8 s: polled every 100 ms that would be 80 polls; backing off
    // (0.1, 0.2, 0.4, 0.8, 1.6, then every 2 s) it is about 8.
    let before = polls();
    let idle = Instant::now();
    std::thread::sleep(Duration::from_secs(8));
    let during = polls() - before;
    let idle = idle.elapsed();
    assert!(
        (2..=14).contains(&during),
        "{during} polls in {idle:?} of idleness"
    );
    // A write after the idleness is still picked up within the max period
    // (plus room for a loaded machine).
    let t = Instant::now();
    append(&log, b"two\n");
    assert!(
        r.wait_for_entries(2, Duration::from_secs(20)),
        "{}",
        p.log_tail(20)
    );
    assert!(
        t.elapsed() < Duration::from_secs(2 + 5),
        "took {:?}",
        t.elapsed()
    );
    kill(&mut p);
}

/// Runs the shipper with `args`, `input` piped to its stdin; waits for it
/// to exit by itself. Returns what it printed.
fn pipe_through(args: &[String], input: &[u8]) -> String {
    use std::io::Write;
    use std::process::Stdio;
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(e2e_tests::shipper::binary())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    let mut status = None;
    let waited = wait_until(
        "the shipper exits at the end of stdin",
        Duration::from_secs(30),
        || {
            status = child.try_wait().map_err(|e| e.to_string())?;
            Ok(status.is_some())
        },
    );
    let printed = std::fs::read_to_string(log.path()).unwrap_or_default();
    if waited.is_err() {
        let _ = child.kill();
        panic!("still running:\n{printed}");
    }
    assert!(status.unwrap().success(), "{printed}");
    printed
}

#[test]
fn stdin_lines_go_through_the_first_scrape_config_and_the_shipper_exits_at_their_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let r = LokiReceiver::start();
    write(d, "a.log", "a file line, not read in stdin mode\n");
    let cfg = write(
        d,
        "config.yaml",
        &format!(
            "server:\n  disable: true\npositions:\n  filename: {d}/positions.yaml\nclients:\n  - url: {url}\n    batchwait: 1s\ntarget_config:\n  stdin: true\nscrape_configs:\n  - job_name: piped\n    pipeline_stages:\n      - regex: {{expression: '^(?P<level>\\w+) '}}\n      - labels: {{level: null}}\n    static_configs:\n      - targets: [localhost]\n        labels: {{job: piped, __path__: {d}/*.log}}\n      - labels: {{env: test}}\n  - job_name: other\n    static_configs: [{{labels: {{job: other, __path__: {d}/*.log}}}}]\n",
            d = d.display(),
            url = r.push_url(),
        ),
    );
    // The end of the input comes before the batch is due: the shipper
    // still delivers it before exiting.
    let input = b"info one\r\n\nwarn two\ninfo one\ninfo last without newline";
    let printed = pipe_through(&[format!("-config.file={}", cfg.display())], input);
    let mut got: Vec<(String, String)> = r
        .streams()
        .iter()
        .flat_map(|s| {
            let labels = e2e_tests::loki_receiver::canonical(&s.labels);
            s.entries
                .iter()
                .map(move |e| (labels.clone(), e.line.clone()))
        })
        .collect();
    got.sort();
    let stream = |level: &str| format!("{{env=\"test\", job=\"piped\", level=\"{level}\"}}");
    let want = [
        (stream("info"), "info last without newline"),
        (stream("info"), "info one"),
        (stream("info"), "info one"),
        (stream("warn"), "warn two"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(l, e)| (l.clone(), e.to_string()))
        .collect();
    assert_eq!(got, want, "{printed}");
    assert!(!d.join("positions.yaml").exists(), "no positions for stdin");
    assert!(
        printed.contains("only the first scrape config is used"),
        "{printed}"
    );

    // `cat my.log | promtail -stdin -client.url ...`: no config file,
    // promtail's default labels.
    r.clear();
    pipe_through(
        &[
            "-stdin".to_string(),
            format!("-client.url={}", r.push_url()),
            "-server.http-listen-address=127.0.0.1".to_string(),
            format!("-server.http-listen-port={}", free_port()),
        ],
        b"plain\n",
    );
    let streams = r.streams();
    assert_eq!(streams.len(), 1, "{streams:?}");
    let labels = &streams[0].labels;
    assert_eq!(labels.get("job").map(String::as_str), Some("stdin"));
    assert!(
        labels.get("hostname").is_some_and(|h| !h.is_empty()),
        "{labels:?}"
    );
    assert_eq!(labels.len(), 2, "{labels:?}");
    assert_eq!(r.lines(), ["plain"]);
}

/// `text` encoded by Python's codec `codec`.
fn python_encode(codec: &str, text: &str) -> Vec<u8> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys; sys.stdout.buffer.write(sys.argv[2].encode(sys.argv[1]))",
            codec,
            text,
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn encoding_utf16_and_iso_2022_jp_resume_exactly_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let r = LokiReceiver::start();
    // (file, `encoding`, Python codec of the first write, of the later ones)
    // Python's "utf-16" writes a byte order mark (FF FE here); U+0A0A holds
    // two 0x0A bytes that are no newline, 😀 is a surrogate pair.
    let files = [
        ("bom", "UTF-16", "utf-16", "utf-16-le"),
        ("be", "UTF-16BE", "utf-16-be", "utf-16-be"),
        ("lebom", "UTF-16LE", "utf-16", "utf-16-le"),
        ("jis", "ISO-2022-JP", "iso2022_jp", "iso2022_jp"),
    ];
    let first = |f: &str| {
        let [a, b] = if f == "jis" {
            ["漢字", "全角"]
        } else {
            ["café \u{0A0A}", "😀"]
        };
        format!("{f} 1 {a}\r\n{f} 2 日本語\n{f} 3 {b}\n{f} 4 ok\n")
    };
    let second = |f: &str| format!("{f} 5 ログ\n");
    let third = |f: &str| format!("{f} 6 カナ\n{f} 7 end\n");
    // Each write after the first but one starts with the last byte of the
    // one before: in UTF-16, half a code unit, waiting for its other half
    // (while running, then across a restart).
    let split = |f: &str| usize::from(f != "jis");
    let mut writes = Vec::new();
    for (f, _, codec1, codec2) in files {
        let mut bytes = python_encode(codec1, &first(f));
        let one = bytes.len();
        bytes.extend(python_encode(codec2, &second(f)));
        let two = bytes.len();
        bytes.extend(python_encode(codec2, &third(f)));
        let path = d.join(format!("{f}.log"));
        let (a, b) = (one + split(f), two + split(f));
        append(&path, &bytes[..a]);
        writes.push((path, bytes[a..b].to_vec(), bytes[b..].to_vec()));
    }
    let jobs: String = files
        .iter()
        .map(|(f, enc, _, _)| {
            format!(
                "  - job_name: {f}\n    encoding: {enc}\n    static_configs: [{{labels: {{job: {f}, __path__: {}/{f}.log}}}}]\n",
                d.display()
            )
        })
        .collect();
    let port = free_port();
    let cfg = write(
        d,
        "config.yaml",
        &format!(
            "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {port}\npositions:\n  filename: {}/positions.yaml\nclients:\n  - url: {}\n    batchwait: 50ms\nscrape_configs:\n{jobs}",
            d.display(),
            r.push_url(),
        ),
    );
    let mut p = start(&cfg, &[]);
    let lines = |n: usize| {
        r.wait_for_entries(n, Duration::from_secs(30))
            .then_some(())
            .ok_or_else(|| format!("{:?}\n{}", r.lines(), p.log_tail(20)))
    };
    lines(4 * files.len()).unwrap();
    for (path, second, _) in &writes {
        append(path, second);
    }
    lines(5 * files.len()).unwrap();
    kill(&mut p);
    // Written while the shipper was down.
    for (path, _, third) in &writes {
        append(path, third);
    }
    let mut p = start(&cfg, &[]);
    wait_until("every file's last line", Duration::from_secs(30), || {
        Ok(r.lines().iter().filter(|l| l.ends_with(" 7 end")).count() == files.len())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", r.lines(), p.log_tail(20)));
    kill(&mut p);
    let mut got = r.lines();
    got.sort();
    let mut want: Vec<String> = files
        .iter()
        .flat_map(|(f, ..)| {
            let text = first(f) + &second(f) + &third(f);
            text.lines().map(str::to_string).collect::<Vec<_>>()
        })
        .map(|l| l.trim_end_matches('\r').to_string())
        // UTF-16LE does not read a byte order mark (promtail's x/text
        // IgnoreBOM): it is the character U+FEFF.
        .map(|l| {
            if l.starts_with("lebom 1") {
                format!("\u{FEFF}{l}")
            } else {
                l
            }
        })
        .collect();
    want.sort();
    assert_eq!(got, want, "every line once, none cut or lost");
}

#[test]
fn decompression_reads_gz_bz2_and_zlib_by_the_setting_after_initial_delay() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let r = LokiReceiver::start();
    let port = free_port();
    let d = dir.path();
    // Named .log: the setting decides, not the name.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"gz one\ngz two\n").unwrap();
    std::fs::write(d.join("gz.log"), gz.finish().unwrap()).unwrap();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    bz.write_all(b"bz2 one\n").unwrap();
    std::fs::write(d.join("bz2.log"), bz.finish().unwrap()).unwrap();
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(b"zlib one\n").unwrap();
    std::fs::write(d.join("z.log"), z.finish().unwrap()).unwrap();
    let job = |name: &str, format: &str, delay: &str| {
        format!(
            "  - job_name: {name}\n    decompression: {{enabled: true, format: {format}, initial_delay: {delay}}}\n    static_configs: [{{labels: {{job: {name}, __path__: {}/{name}.log}}}}]\n",
            d.display()
        )
    };
    let cfg = write(
        d,
        "config.yaml",
        &format!(
            "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {port}\npositions:\n  filename: {}/positions.yaml\nclients:\n  - url: {}\n    batchwait: 50ms\nscrape_configs:\n{}{}{}",
            d.display(),
            r.push_url(),
            job("gz", "gz", "0s"),
            job("bz2", "bz2", "0s"),
            job("z", "z", "4s"),
        ),
    );
    let started = Instant::now();
    let mut p = start(&cfg, &[]);
    assert!(
        r.wait_for_entries(3, Duration::from_secs(20)),
        "{}",
        p.log_tail(20)
    );
    // The zlib file waits its initial_delay.
    if started.elapsed() < Duration::from_secs(3) {
        assert!(
            !r.lines().contains(&"zlib one".to_string()),
            "read before initial_delay"
        );
    }
    assert!(
        r.wait_for_entries(4, Duration::from_secs(20)),
        "{}",
        p.log_tail(20)
    );
    assert!(started.elapsed() >= Duration::from_secs(4));
    let mut lines = r.lines();
    lines.sort();
    assert_eq!(lines, ["bz2 one", "gz one", "gz two", "zlib one"]);
    kill(&mut p);
    // A restart reads nothing twice (positions count decompressed bytes).
    let mut p = start(&cfg, &[]);
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(r.entry_count(), 4, "{}", p.log_tail(20));
    kill(&mut p);
}
