//! The harness shared by the end-to-end tests in `tests/`: start real
//! programs (our exporter, Debian's node_exporter, Prometheus, promtool) on
//! free loopback ports in temp dirs, talk to them over HTTP, and compare what
//! they expose.
//!
//! Environment:
//! - `NODE_EXPORTER_BIN`: our binary (default `<workspace>/target/debug/node-exporter`).
//! - `REFERENCE_NODE_EXPORTER_BIN`, `PROMETHEUS_BIN`, `PROMTOOL_BIN`: the
//!   real programs (default: `$PATH`, then `/usr/bin`).
//! - `DASHBOARD_JSON`: the "Node Exporter Full" dashboard to check.
//! - `E2E_COLLECTORS=cpu,meminfo`: compare only these collectors.
//! - `ALERTMANAGER_BIN`: the real Alertmanager (default: `$PATH`, then
//!   Debian's `/usr/bin/prometheus-alertmanager`).

pub mod alertmanager;
pub mod dashboard;
pub mod docker_engine;
pub mod exporters;
pub mod exposition;
pub mod grafana;
pub mod http;
pub mod logql;
pub mod loki_receiver;
pub mod process;
pub mod prometheus;
pub mod rules;
pub mod shipper;
pub mod shipper_labels;
pub mod slack;
pub mod tmpfs_host;

/// Fails with every problem listed, one per line, so that a single run
/// shows all that remains to be done.
pub fn assert_no_problems(what: &str, problems: &[String]) {
    if problems.is_empty() {
        return;
    }
    let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
    panic!(
        "{what}: {} problem(s):\n{}",
        problems.len(),
        list.join("\n")
    );
}
