//! The two exporters the tests compare: ours (`node-exporter`, built from
//! this workspace) and the reference, Debian's `prometheus-node-exporter`
//! (node_exporter 1.5.0), each on a free loopback port.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use regex::Regex;

use crate::exposition::Exposition;
use crate::http::{self, Response, TEXT_FORMAT_ACCEPT};
use crate::process::{find_program, free_port, on_path, wait_until, workspace_root, Process};

/// Collectors both exporters have (ours' registry intersected with node_exporter
/// 1.5.0's), including those off by default that the "Node Exporter Full"
/// dashboard reads (interrupts, processes, tcpstat, ...). Both exporters run
/// with exactly this set, so every family the reference exposes is one ours
/// must expose too.
pub const SHARED_COLLECTORS: &[&str] = &[
    "arp",
    "conntrack",
    "cpu",
    "cpufreq",
    "diskstats",
    "entropy",
    "filefd",
    "filesystem",
    "hwmon",
    "interrupts",
    "ksmd",
    "loadavg",
    "meminfo",
    "netclass",
    "netdev",
    "netstat",
    "os",
    "powersupplyclass",
    "pressure",
    "processes",
    "schedstat",
    "sockstat",
    "softnet",
    "stat",
    "tcpstat",
    "textfile",
    "thermal_zone",
    "time",
    "timex",
    "udp_queues",
    "uname",
    "vmstat",
];

/// Collectors of ours that node_exporter 1.5.0 lacks (later releases added
/// them); enabled on ours only, where a test wants everything ours has.
pub const OURS_ONLY_COLLECTORS: &[&str] = &["kernel_hung"];

/// `E2E_COLLECTORS=cpu,meminfo` narrows a test to those collectors on both
/// sides, e.g. to check just the collectors merged so far. Unset, tests use
/// `default`.
pub fn collectors_under_test(default: &[&str]) -> Vec<String> {
    match std::env::var("E2E_COLLECTORS") {
        Ok(list) if !list.trim().is_empty() => {
            let chosen: Vec<String> = list.split(',').map(|s| s.trim().to_string()).collect();
            eprintln!("NOTE: E2E_COLLECTORS limits this test to the collectors {chosen:?}");
            chosen
        }
        _ => default.iter().map(|s| s.to_string()).collect(),
    }
}

/// Every collector ours has.
pub fn all_our_collectors() -> Vec<&'static str> {
    [SHARED_COLLECTORS, OURS_ONLY_COLLECTORS].concat()
}

/// Flags that enable exactly `collectors`. The textfile collector reads
/// `textfile_dir` (see [`sample_textfile_dir`]).
fn collector_args(collectors: &[String], textfile_dir: &Path) -> Vec<String> {
    let mut args = vec!["--collector.disable-defaults".to_string()];
    args.extend(collectors.iter().map(|c| format!("--collector.{c}")));
    if collectors.iter().any(|c| c == "textfile") {
        args.push(format!(
            "--collector.textfile.directory={}",
            textfile_dir.display()
        ));
    }
    args
}

/// A textfile directory holding one user sensor, as a user's script would
/// write it ("deploy your own sensor").
pub fn sample_textfile_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("creating a temp dir");
    std::fs::write(
        dir.path().join("e2e_sensor.prom"),
        "# HELP e2e_sensor_temperature_celsius Temperature a user's own script measured.\n\
         # TYPE e2e_sensor_temperature_celsius gauge\n\
         e2e_sensor_temperature_celsius{room=\"lab\"} 21.5\n",
    )
    .expect("writing the sample textfile");
    dir
}

/// Our binary: `$NODE_EXPORTER_BIN`, else `<target>/debug/node-exporter`.
pub fn our_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    find_program(
        "NODE_EXPORTER_BIN",
        &[target.join("debug").join("node-exporter")],
        "run `cargo build -p node-exporter` first (`make test` does), or set NODE_EXPORTER_BIN",
    )
}

/// node_exporter as Debian packages it.
pub fn reference_binary() -> PathBuf {
    find_program(
        "REFERENCE_NODE_EXPORTER_BIN",
        &on_path(
            "prometheus-node-exporter",
            "/usr/bin/prometheus-node-exporter",
        ),
        "`make test` installs it (Debian package prometheus-node-exporter)",
    )
}

/// A collector our exporter was asked for but could not start, and why.
#[derive(Debug, Clone)]
pub struct Dropped {
    pub collector: String,
    pub reason: String,
}

pub struct Exporter {
    /// `127.0.0.1:<port>`: also the `instance` label Prometheus gives it.
    pub addr: String,
    /// Collectors left out because ours could not start them (see [`Exporter::ours`]).
    pub dropped: Vec<Dropped>,
    process: Process,
}

impl Exporter {
    /// Starts our exporter with exactly `collectors`. While collectors are
    /// still being written, asking for one that cannot be built stops the
    /// exporter at startup; rather than learning nothing, this leaves such
    /// collectors out, retries, and lists them in `dropped`, which every
    /// test reports as a failure.
    pub fn ours(collectors: &[String], textfile_dir: &Path) -> Exporter {
        let mut collectors = collectors.to_vec();
        let mut dropped = Vec::new();
        loop {
            let args = collector_args(&collectors, textfile_dir);
            match Exporter::start("node-exporter", &our_binary(), &args) {
                Ok(mut e) => {
                    e.dropped = dropped;
                    return e;
                }
                Err(log) => {
                    let d = unbuildable_collector(&log)
                        .filter(|d| collectors.contains(&d.collector))
                        .unwrap_or_else(|| {
                            panic!("our node-exporter did not start with {args:?}:\n{log}")
                        });
                    collectors.retain(|c| c != &d.collector);
                    dropped.push(d);
                }
            }
        }
    }

    /// Starts our exporter as a user would: its default collectors, plus
    /// `args`; `Err` carries its log when it does not come up.
    pub fn ours_with_args(args: &[String]) -> Result<Exporter, String> {
        Exporter::start("node-exporter", &our_binary(), args)
    }

    /// Starts the reference node_exporter with `collectors`, less those it
    /// does not have ([`OURS_ONLY_COLLECTORS`]).
    pub fn reference(collectors: &[String], textfile_dir: &Path) -> Exporter {
        let collectors: Vec<String> = collectors
            .iter()
            .filter(|c| !OURS_ONLY_COLLECTORS.contains(&c.as_str()))
            .cloned()
            .collect();
        let args = collector_args(&collectors, textfile_dir);
        Exporter::start("prometheus-node-exporter", &reference_binary(), &args)
            .unwrap_or_else(|log| panic!("node_exporter did not start with {args:?}:\n{log}"))
    }

    /// Starts `bin` on a free port; `Err` carries its log when it exits or
    /// does not answer in time.
    fn start(name: &str, bin: &Path, args: &[String]) -> Result<Exporter, String> {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--web.listen-address={addr}")).args(args);
        let dir = tempfile::tempdir().expect("creating a temp dir");
        let mut process = Process::spawn(name, cmd, dir);
        let mut exited = None;
        let up = wait_until(
            &format!("{name} listening on {addr}"),
            Duration::from_secs(20),
            || {
                if let Some(status) = process.exit_status() {
                    exited = Some(status);
                    return Ok(true);
                }
                Ok(listening(&addr))
            },
        );
        match (up, exited) {
            (Ok(()), None) => Ok(Exporter {
                addr,
                dropped: Vec::new(),
                process,
            }),
            (Ok(()), Some(status)) => Err(format!("{name} exited ({status}):\n{}", process.log())),
            (Err(e), _) => Err(format!("{e}\n{}", process.log_tail(30))),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// GET /metrics with the given Accept header.
    pub fn get_metrics(&self, accept: &str) -> Response {
        let r = http::get(&self.url("/metrics"), &[], Some(accept))
            .unwrap_or_else(|e| panic!("{e}\n{}", self.process.log_tail(30)));
        assert_eq!(
            r.status,
            200,
            "GET {} answered {}: {}",
            self.url("/metrics"),
            r.status,
            r.body
        );
        r
    }

    /// /metrics in the text format, as written.
    pub fn metrics_text(&self) -> String {
        self.get_metrics(TEXT_FORMAT_ACCEPT).body
    }

    /// /metrics in the text format, parsed.
    pub fn scrape(&self) -> Exposition {
        let text = self.metrics_text();
        Exposition::parse(&text).unwrap_or_else(|e| {
            panic!(
                "{} /metrics is not valid text format: {e}",
                self.process.name()
            )
        })
    }

    pub fn log_tail(&self, n: usize) -> String {
        self.process.log_tail(n)
    }

    /// The collectors ours could not start, as one line for failure
    /// messages (empty when there are none).
    pub fn dropped_report(&self) -> Vec<String> {
        if self.dropped.is_empty() {
            return Vec::new();
        }
        // "the arp collector is not written yet" for 30 collectors reads
        // better as one reason followed by the names it applies to.
        let mut by_reason: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for d in &self.dropped {
            let reason = d.reason.replace(&d.collector, "<name>");
            by_reason.entry(reason).or_default().push(&d.collector);
        }
        let reasons: Vec<String> = by_reason
            .iter()
            .map(|(reason, names)| format!("{}: {reason}", names.join(" ")))
            .collect();
        vec![format!(
            "{} collector(s) could not start in ours, so their metrics are missing: {}",
            self.dropped.len(),
            reasons.join("; ")
        )]
    }
}

/// Which collector our exporter's startup error blames: one whose
/// constructor failed, or one whose own flag it does not know yet.
fn unbuildable_collector(log: &str) -> Option<Dropped> {
    let failed = Regex::new(r"node-exporter: collector ([a-z0-9_]+): (.*)").unwrap();
    if let Some(c) = failed.captures(log) {
        return Some(Dropped {
            collector: c[1].to_string(),
            reason: c[2].trim().to_string(),
        });
    }
    let unknown_flag =
        Regex::new(r"unexpected argument '(--collector\.([a-z0-9_]+)\.[^'=]*)").unwrap();
    unknown_flag.captures(log).map(|c| Dropped {
        collector: c[2].to_string(),
        reason: format!("its flag {} is unknown", &c[1]),
    })
}

/// Whether something listens on `addr` (a loopback address). A connect to
/// a port nobody listens on yet can meet itself, when the kernel picks
/// that very port as the source (TCP simultaneous open): then the test
/// would go on while the program has not bound the port, and cannot any
/// more. Only a peer other than ourselves counts.
pub fn listening(addr: &str) -> bool {
    std::net::TcpStream::connect(addr).is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_errors_name_the_collector() {
        let d = unbuildable_collector(
            "node-exporter: collector arp: the arp collector is not written yet\n",
        )
        .unwrap();
        assert_eq!(
            (d.collector.as_str(), d.reason.as_str()),
            ("arp", "the arp collector is not written yet")
        );
        let d = unbuildable_collector(
            "error: unexpected argument '--collector.textfile.directory' found\n",
        )
        .unwrap();
        assert_eq!(d.collector, "textfile");
        assert!(unbuildable_collector("error: unexpected argument '--web.foo' found").is_none());
    }
}
