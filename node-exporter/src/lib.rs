//! node-exporter: host metrics for Prometheus with node_exporter's names.
//!
//! `collectors` holds one module per collector and the registry; `scrape`
//! runs the enabled ones with a time budget each; `handler` serves them.

pub mod cli;
pub mod collector;
pub mod collectors;
pub mod device_filter;
pub mod fuzzing;
pub mod genetlink;
pub mod handler;
pub mod helpers;
pub mod netlink;
pub mod probe;
pub mod scrape;
pub mod startup_pages;
#[cfg(test)]
pub mod testutil;
