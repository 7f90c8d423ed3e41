//! `docker`: per-container metrics with cAdvisor's names and labels (`id`
//! is the cgroup, `name`, `image`, `container_label_*`), read from cgroups
//! and `/proc/<pid>/net/dev`, plus Docker's own view of each container
//! (state, restarts, health, exit code) and counters of Engine events.
//!
//! The container list comes from [`engine::Engine`], kept current from the
//! events stream; a scrape only reads files. Off by default, as cAdvisor's
//! job is not node_exporter's.

pub mod cgroup;
pub mod engine;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Arg;
use exporter_toolkit::exposition::{sanitize_name, MetricSet};

use super::netdev::parse_net_dev;
use super::CollectorSpec;
use crate::cli::{string_flag, Flags};
use crate::collector::{Collector, Paths};
use crate::helpers::read_to_string;
use cgroup::{device_name, Hierarchy, Usage};
use engine::{Container, Engine};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "docker",
    default_enabled: false,
    flags,
    build: |f| Ok(Box::new(Docker::new(f)?)),
};

fn flags() -> Vec<Arg> {
    vec![
        string_flag(
            "collector.docker.host",
            "unix:///var/run/docker.sock",
            "Docker Engine API address: unix:///path/to/docker.sock or tcp://host:port.",
        ),
        string_flag(
            "collector.docker.label-allowlist",
            "",
            "Comma-separated container labels exported as container_label_<name> (cAdvisor's \
             --whitelisted_container_labels). None by default.",
        ),
    ]
}

/// States Docker reports; `container_docker_state` has one series each.
const STATES: &[&str] = &[
    "created",
    "running",
    "paused",
    "restarting",
    "removing",
    "exited",
    "dead",
];
const HEALTH: &[&str] = &["none", "starting", "healthy", "unhealthy"];
/// Interfaces cAdvisor leaves out of container network stats.
const IGNORED_INTERFACES: &[&str] = &["lo", "veth", "docker"];
/// How long startup waits for the first container list.
const FIRST_LIST_WAIT: Duration = Duration::from_secs(3);
/// v1 reports "no limit" as a number near 2^63; cAdvisor reports 0 above 2^62.
const MAX_MEMORY_LIMIT: u64 = 1 << 62;

struct Docker {
    engine: Arc<Engine>,
    cgroups: Hierarchy,
    paths: Paths,
    /// (container label, Prometheus label name), fixed at startup.
    labels: Vec<(String, &'static str)>,
}

impl Docker {
    fn new(f: &Flags) -> anyhow::Result<Docker> {
        let cgroups = Hierarchy::detect(f.paths.sys("fs/cgroup"));
        let labels = f
            .string("collector.docker.label-allowlist")
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| {
                // Leaked once per flag value, so that label names can be
                // static like every other collector's.
                let name: &'static str =
                    Box::leak(format!("container_label_{}", sanitize_name(l)).into_boxed_str());
                (l.to_string(), name)
            })
            .collect();
        let engine = Engine::start(
            f.string("collector.docker.host"),
            cgroups.clone(),
            f.paths.procfs.clone(),
        )?;
        engine.wait_ready(FIRST_LIST_WAIT);
        Ok(Docker {
            engine,
            cgroups,
            paths: f.paths.clone(),
            labels,
        })
    }

    fn label_set<'a>(&self, c: &'a Container, id: &'a str) -> Vec<(&'static str, &'a str)> {
        let mut l = vec![
            ("id", id),
            ("image", c.image.as_str()),
            ("name", c.name.as_str()),
        ];
        for (key, name) in &self.labels {
            if let Some(v) = c.labels.get(key) {
                l.push((name, v.as_str()));
            }
        }
        l
    }
}

impl Collector for Docker {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let (status, containers, events, ooms) = {
            let s = self.engine.lock();
            (
                s.status.clone(),
                s.containers.values().cloned().collect::<Vec<_>>(),
                s.events.clone(),
                s.ooms.clone(),
            )
        };
        for ((kind, action), n) in &events {
            out.counter(
                "container_docker_events_total",
                "Docker Engine events seen since the exporter started, by type and action.",
                &[("type", kind), ("action", action)],
                *n as f64,
            );
        }
        match status {
            Some(Ok(())) => {}
            Some(Err(e)) => anyhow::bail!("{e}"),
            None => anyhow::bail!("still connecting to the Docker Engine"),
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        for c in &containers {
            // cAdvisor's id is the cgroup; a container that never ran has
            // none yet, and gets the cgroupfs driver's name for it.
            let fallback = format!("/docker/{}", c.id);
            let id = c.cgroup.as_deref().unwrap_or(&fallback);
            let labels = self.label_set(c, id);
            docker_view(out, c, &labels);
            let Some(path) = c.cgroup.as_deref() else {
                continue;
            };
            if c.state != "running" && c.state != "paused" {
                continue;
            }
            // A container stopped since the last event is simply gone.
            let Some(usage) = self.cgroups.read(path)? else {
                continue;
            };
            out.gauge(
                "container_last_seen",
                "Last time a container was seen by the exporter",
                &labels,
                now.floor(),
            );
            usage_metrics(out, &usage, &labels, ooms.get(&c.id).copied().unwrap_or(0));
            self.io_metrics(out, &usage, &labels);
            if let Some(pid) = c.pid {
                self.network(out, pid, &labels)?;
            }
        }
        Ok(())
    }
}

fn docker_view(out: &mut MetricSet, c: &Container, labels: &[(&'static str, &str)]) {
    for state in STATES {
        let mut l = labels.to_vec();
        l.push(("state", state));
        out.gauge(
            "container_docker_state",
            "Docker's state of the container: 1 for the current one.",
            &l,
            if c.state == *state { 1.0 } else { 0.0 },
        );
    }
    let health = c.health.as_deref().unwrap_or("none");
    for status in HEALTH {
        let mut l = labels.to_vec();
        l.push(("status", status));
        out.gauge(
            "container_docker_health_status",
            "Docker's healthcheck status of the container (none without a healthcheck): 1 for the current one.",
            &l,
            if health == *status { 1.0 } else { 0.0 },
        );
    }
    out.gauge(
        "container_docker_restart_count",
        "Times Docker restarted the container (its restart policy).",
        labels,
        c.restart_count as f64,
    );
    out.gauge(
        "container_docker_exit_code",
        "Exit code of the container's last run (0 while it has not exited).",
        labels,
        c.exit_code as f64,
    );
    if let Some(t) = c.started_at {
        out.gauge(
            "container_start_time_seconds",
            "Start time of the container since unix epoch in seconds.",
            labels,
            t.floor(),
        );
    }
}

fn usage_metrics(out: &mut MetricSet, u: &Usage, labels: &[(&'static str, &str)], oom_events: u64) {
    let with = |extra: (&'static str, &'static str)| {
        let mut l = labels.to_vec();
        l.push(extra);
        l
    };
    if let Some(v) = u.cpu_usage_seconds {
        out.counter(
            "container_cpu_usage_seconds_total",
            "Cumulative cpu time consumed in seconds.",
            &with(("cpu", "total")),
            v,
        );
    }
    let counters_f = [
        (
            "container_cpu_user_seconds_total",
            "Cumulative user cpu time consumed in seconds.",
            u.cpu_user_seconds,
        ),
        (
            "container_cpu_system_seconds_total",
            "Cumulative system cpu time consumed in seconds.",
            u.cpu_system_seconds,
        ),
        (
            "container_cpu_cfs_throttled_seconds_total",
            "Total time duration the container has been throttled.",
            u.cfs_throttled_seconds,
        ),
    ];
    for (name, help, v) in counters_f {
        if let Some(v) = v {
            out.counter(name, help, labels, v);
        }
    }
    let counters = [
        (
            "container_cpu_cfs_periods_total",
            "Number of elapsed enforcement period intervals.",
            u.cfs_periods,
        ),
        (
            "container_cpu_cfs_throttled_periods_total",
            "Number of throttled period intervals.",
            u.cfs_throttled_periods,
        ),
    ];
    for (name, help, v) in counters {
        if let Some(v) = v {
            out.counter(name, help, labels, v as f64);
        }
    }
    let gauges = [
        ("container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed", u.memory_usage),
        ("container_memory_working_set_bytes", "Current working set in bytes.", u.memory_working_set),
        ("container_memory_rss", "Size of RSS in bytes.", u.memory_rss),
        ("container_memory_cache", "Number of bytes of page cache memory.", u.memory_cache),
        ("container_memory_swap", "Container swap usage in bytes.", u.memory_swap),
        ("container_spec_cpu_quota", "CPU quota of the container.", u.cpu_quota),
        ("container_spec_cpu_period", "CPU period of the container.", u.cpu_period),
    ];
    for (name, help, v) in gauges {
        if let Some(v) = v {
            out.gauge(name, help, labels, v as f64);
        }
    }
    if let Some(v) = u.memory_failcnt {
        out.counter(
            "container_memory_failcnt",
            "Number of memory usage hits limits",
            labels,
            v as f64,
        );
    }
    let limit = u
        .memory_limit
        .filter(|l| *l <= MAX_MEMORY_LIMIT)
        .unwrap_or(0);
    out.gauge(
        "container_spec_memory_limit_bytes",
        "Memory limit for the container.",
        labels,
        limit as f64,
    );
    // The cgroup's count dies with the cgroup when an OOM kill ends the
    // container; the Engine's oom events outlive restarts. Take the larger.
    let ooms = u.oom_kills.unwrap_or(0).max(oom_events);
    out.counter(
        "container_oom_events_total",
        "Count of out of memory events observed for the container",
        labels,
        ooms as f64,
    );
}

impl Docker {
    fn io_metrics(&self, out: &mut MetricSet, u: &Usage, labels: &[(&'static str, &str)]) {
        for d in &u.io {
            let dev = device_name(&self.paths.sysfs, &d.device);
            let mut l = labels.to_vec();
            l.push(("device", &dev));
            let series = [
                (
                    "container_fs_reads_bytes_total",
                    "Cumulative count of bytes read",
                    d.read_bytes,
                ),
                (
                    "container_fs_writes_bytes_total",
                    "Cumulative count of bytes written",
                    d.write_bytes,
                ),
                (
                    "container_fs_reads_total",
                    "Cumulative count of reads completed",
                    d.reads,
                ),
                (
                    "container_fs_writes_total",
                    "Cumulative count of writes completed",
                    d.writes,
                ),
            ];
            for (name, help, v) in series {
                out.counter(name, help, &l, v as f64);
            }
        }
    }

    /// The container's interfaces, seen from its init process' network
    /// namespace, as cAdvisor reads them.
    fn network(
        &self,
        out: &mut MetricSet,
        pid: i64,
        labels: &[(&'static str, &str)],
    ) -> anyhow::Result<()> {
        let path = self.paths.proc(&format!("{pid}/net/dev"));
        // The process may have exited since the last event.
        let Ok(text) = read_to_string(&path) else {
            return Ok(());
        };
        for line in parse_net_dev(&text, &path)? {
            if IGNORED_INTERFACES
                .iter()
                .any(|p| line.device.starts_with(p))
            {
                continue;
            }
            let mut l = labels.to_vec();
            l.push(("interface", &line.device));
            let v = &line.values;
            let series = [
                (
                    "container_network_receive_bytes_total",
                    "Cumulative count of bytes received",
                    v[0],
                ),
                (
                    "container_network_receive_packets_total",
                    "Cumulative count of packets received",
                    v[1],
                ),
                (
                    "container_network_receive_errors_total",
                    "Cumulative count of errors encountered while receiving",
                    v[2],
                ),
                (
                    "container_network_receive_packets_dropped_total",
                    "Cumulative count of packets dropped while receiving",
                    v[3],
                ),
                (
                    "container_network_transmit_bytes_total",
                    "Cumulative count of bytes transmitted",
                    v[8],
                ),
                (
                    "container_network_transmit_packets_total",
                    "Cumulative count of packets transmitted",
                    v[9],
                ),
                (
                    "container_network_transmit_errors_total",
                    "Cumulative count of errors encountered while transmitting",
                    v[10],
                ),
                (
                    "container_network_transmit_packets_dropped_total",
                    "Cumulative count of packets dropped while transmitting",
                    v[11],
                ),
            ];
            for (name, help, value) in series {
                out.counter(name, help, &l, value as f64);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::render;

    const ID: &str = "4f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";

    /// The fixture v1 tree and process rendered as a scrape shows them.
    #[test]
    fn fixture_container_renders_cadvisor_series() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cgroup/v1");
        let paths = Paths {
            procfs: root.join("proc"),
            sysfs: root.join("sys"),
            ..Paths::default()
        };
        let cgroups = Hierarchy::detect(paths.sys("fs/cgroup"));
        let c = Container {
            id: ID.into(),
            name: "web".into(),
            image: "nginx:1.25".into(),
            labels: [("com.example.team".to_string(), "ops".to_string())].into(),
            state: "running".into(),
            pid: Some(4242),
            restart_count: 2,
            exit_code: 0,
            health: Some("healthy".into()),
            started_at: Some(1714558830.5),
            cgroup: cgroups.locate(&paths.procfs, Some(4242), ID, None),
        };
        let d = Docker {
            engine: Arc::new(Engine::for_tests()),
            cgroups,
            paths,
            labels: vec![(
                "com.example.team".into(),
                "container_label_com_example_team",
            )],
        };
        let mut out = MetricSet::new();
        let id = c.cgroup.clone().unwrap();
        let labels = d.label_set(&c, &id);
        docker_view(&mut out, &c, &labels);
        let usage = d.cgroups.read(&id).unwrap().unwrap();
        usage_metrics(&mut out, &usage, &labels, 5);
        d.io_metrics(&mut out, &usage, &labels);
        d.network(&mut out, 4242, &labels).unwrap();
        let text = render(out);
        let common = [
            "container_label_com_example_team=\"ops\"".to_string(),
            format!("id=\"/docker/{ID}\""),
            "image=\"nginx:1.25\"".to_string(),
            "name=\"web\"".to_string(),
        ];
        let has = |name: &str, extra: &[&str], value: &str| {
            text.lines().any(|line| {
                line.starts_with(&format!("{name}{{"))
                    && line.ends_with(&format!("}} {value}"))
                    && common.iter().all(|l| line.contains(l.as_str()))
                    && extra.iter().all(|l| line.contains(l))
            })
        };
        for (name, extra, value) in [
            (
                "container_cpu_usage_seconds_total",
                &["cpu=\"total\""][..],
                "12.5",
            ),
            ("container_cpu_user_seconds_total", &[], "10"),
            ("container_cpu_cfs_throttled_periods_total", &[], "37"),
            ("container_memory_working_set_bytes", &[], "8.388608e+07"),
            ("container_spec_memory_limit_bytes", &[], "1.34217728e+08"),
            (
                "container_network_receive_bytes_total",
                &["interface=\"eth0\""],
                "123456",
            ),
            (
                "container_network_transmit_packets_dropped_total",
                &["interface=\"eth0\""],
                "5",
            ),
            (
                "container_fs_reads_bytes_total",
                &["device=\"8:0\""],
                "1.048576e+06",
            ),
            ("container_docker_state", &["state=\"running\""], "1"),
            ("container_docker_state", &["state=\"exited\""], "0"),
            (
                "container_docker_health_status",
                &["status=\"healthy\""],
                "1",
            ),
            ("container_docker_restart_count", &[], "2"),
            ("container_start_time_seconds", &[], "1.71455883e+09"),
            // Engine events (5) outnumber the cgroup's own count (2).
            ("container_oom_events_total", &[], "5"),
        ] {
            assert!(
                has(name, extra, value),
                "missing {name}{extra:?} {value} in:\n{text}"
            );
        }
        assert!(
            !text.contains("interface=\"lo\""),
            "lo is left out, as cAdvisor does"
        );
    }
}
