//! What both agents share: the exposition encoder, the HTTP server with
//! exporter-toolkit's web config (TLS, basic auth), logging setup and the
//! standard process self-metrics.

pub mod exposition;
pub mod logging;
pub mod process;
pub mod server;
pub mod tls;
pub mod web_config;
