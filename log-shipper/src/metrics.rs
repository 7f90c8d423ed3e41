//! Self-metrics on /metrics: each module keeps its own counters and a
//! `collect(&mut MetricSet)`; this module only calls them.

use exporter_toolkit::exposition::MetricSet;

pub fn collect(set: &mut MetricSet) {
    if let Err(e) = exporter_toolkit::process::collect(set) {
        tracing::debug!(error = %e, "process metrics");
    }
    set.gauge(
        "promtail_build_info",
        "A metric with a constant '1' value labeled by version, revision, branch, goversion from which promtail was built, and the goos and goarch for the build.",
        &[
            ("branch", ""),
            ("goarch", std::env::consts::ARCH),
            ("goos", std::env::consts::OS),
            ("goversion", ""),
            ("revision", ""),
            ("tags", "log-shipper"),
            ("version", env!("CARGO_PKG_VERSION")),
        ],
        1.0,
    );
    crate::app::collect(set);
    crate::discovery::collect(set);
    crate::pipeline::collect(set);
    crate::sources::file::collect(set);
    crate::sources::journal::collect(set);
    crate::sources::syslog::collect(set);
    crate::client::collect(set);
    crate::sources::docker::collect(set);
    crate::sources::gelf::collect(set);
}
