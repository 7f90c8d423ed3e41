//! What both agents share: the exposition encoder, the HTTP server with
//! exporter-toolkit's web config (TLS, basic auth), logging setup and the
//! standard process self-metrics.

pub mod duration;
pub mod exposition;
pub mod http_client;
pub mod logging;
pub mod process;
pub mod rate_limit;
pub mod server;
pub mod tls;
pub mod web_config;
pub mod web_config_reload;
