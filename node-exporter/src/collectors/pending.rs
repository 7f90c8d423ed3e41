//! node_exporter 1.12's Linux collectors (and options) this exporter does not
//! have yet: the one place that lists them. Their flags are accepted so that
//! a node_exporter command line parses, but nothing is silently ignored:
//! enabling one, or giving an option of one that would run, is a startup
//! error saying it is not implemented yet. Disabling one is trivially
//! honoured. A collector module registered in `REGISTRY` under the same name
//! replaces its entry here (the entry is then skipped), so adding a collector
//! needs no edit in this file beyond deleting its line.

/// How an option is spelled on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionKind {
    /// `--collector.X.Y` / `--no-collector.X.Y`.
    Bool,
    /// `--collector.X.Y=VALUE`.
    Value,
    /// `--collector.X.Y=VALUE`, repeatable.
    Repeated,
}

pub struct PendingCollector {
    pub name: &'static str,
    /// node_exporter's default on Linux.
    pub default_enabled: bool,
    /// The collector's own options, full flag names.
    pub options: &'static [(&'static str, OptionKind)],
}

use OptionKind::{Bool, Repeated, Value};

const fn pending(
    name: &'static str,
    default_enabled: bool,
    options: &'static [(&'static str, OptionKind)],
) -> PendingCollector {
    PendingCollector {
        name,
        default_enabled,
        options,
    }
}

/// Sorted by name.
pub static PENDING_COLLECTORS: &[PendingCollector] = &[
    pending("drm", false, &[]),
    pending("logind", false, &[]),
    pending("network_route", false, &[]),
    pending(
        "ntp",
        false,
        &[
            ("collector.ntp.server", Value),
            ("collector.ntp.server-port", Value),
            ("collector.ntp.protocol-version", Value),
            ("collector.ntp.server-is-local", Bool),
            ("collector.ntp.ip-ttl", Value),
            ("collector.ntp.max-distance", Value),
            ("collector.ntp.local-offset-tolerance", Value),
        ],
    ),
    pending(
        "perf",
        false,
        &[
            ("collector.perf.cpus", Value),
            ("collector.perf.tracepoint", Repeated),
            ("collector.perf.disable-hardware-profilers", Bool),
            ("collector.perf.disable-software-profilers", Bool),
            ("collector.perf.disable-cache-profilers", Bool),
            ("collector.perf.hardware-profilers", Repeated),
            ("collector.perf.software-profilers", Repeated),
            ("collector.perf.cache-profilers", Repeated),
        ],
    ),
    pending("runit", false, &[("collector.runit.servicedir", Value)]),
    pending(
        "supervisord",
        false,
        &[("collector.supervisord.url", Value)],
    ),
];

/// Options of collectors this exporter has, that it does not implement yet:
/// `(collector, option)`. Giving one while its collector runs is an error.
pub static PENDING_OPTIONS: &[(&str, &str, OptionKind)] = &[];
