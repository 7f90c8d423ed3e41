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
pub mod fsusage;
pub mod machine;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Arg;
use exporter_toolkit::exposition::{sanitize_name, MetricSet};

use super::netdev::parse_net_dev;
use super::CollectorSpec;
use crate::cli::{bool_flag, string_flag, Flags};
use crate::collector::{Collector, Paths};
use crate::helpers::read_to_string;
use cgroup::{device_name, Hierarchy, Usage};
use engine::{Container, Engine};
use fsusage::DiskUsage;
use machine::Machine;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "docker",
    default_enabled: false,
    flags,
    build: |f| Ok(Box::new(Docker::new(f)?)),
};

fn flags() -> Vec<Arg> {
    let mut v = vec![
        string_flag(
            "collector.docker.host",
            "unix:///var/run/docker.sock",
            "Docker Engine API address: unix:///path/to/docker.sock or tcp://host:port.",
        ),
        string_flag(
            "collector.docker.whitelisted-container-labels",
            "",
            "Comma-separated container labels exported as container_label_<name> when \
             --no-collector.docker.store-container-labels is given (cAdvisor's \
             --whitelisted_container_labels).",
        ),
        string_flag(
            "collector.docker.label-allowlist",
            "",
            "Older name of --collector.docker.whitelisted-container-labels; both lists are used.",
        ),
        string_flag(
            "collector.docker.disk-usage-interval",
            "1m",
            "How often a background pass measures each container's writable layer for \
             container_fs_usage_bytes (cAdvisor measures once a minute); scrapes serve the last pass.",
        ),
    ];
    v.extend(bool_flag(
        "collector.docker.store-container-labels",
        true,
        "Export every container label as container_label_<name> (cAdvisor's \
         --store_container_labels); with --no-, only the whitelisted ones",
    ));
    v.extend(bool_flag(
        "collector.docker.docker-only",
        false,
        "Report Docker containers only, not the root cgroup (id=\"/\") and the host's other \
         cgroups (cAdvisor's --docker_only)",
    ));
    v.extend(bool_flag(
        "collector.docker.disk-usage",
        true,
        "Measure each container's writable layer (container_fs_usage_bytes, _limit_bytes, \
         _inodes_*) in the background (cAdvisor's --disable_metrics=disk turns it off)",
    ));
    v
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
/// How often the host's cgroups are listed again (new services, gone ones).
const RAW_REFRESH: Duration = Duration::from_secs(10);
/// Most host cgroups reported, so that runaway cgroup creation cannot make
/// scrapes unbounded.
const RAW_LIMIT: usize = 2000;

/// Which container labels become `container_label_<name>`.
enum LabelPolicy {
    All,
    /// (container label, Prometheus label name), fixed at startup.
    Only(Vec<(String, &'static str)>),
}

struct Docker {
    engine: Arc<Engine>,
    cgroups: Hierarchy,
    paths: Paths,
    labels: LabelPolicy,
    /// The host's cgroups other than containers', refreshed in the
    /// background; `None` with --collector.docker.docker-only.
    raw: Option<Arc<Mutex<Vec<String>>>>,
    disk: Option<Arc<DiskUsage>>,
    machine: Result<Machine, String>,
}

/// `container_label_<sanitized key>`, leaked once per distinct key for the
/// process' life (label names are `&'static str` in every collector).
fn label_name(key: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(n) = names.get(key) {
        return n;
    }
    let n: &'static str =
        Box::leak(format!("container_label_{}", sanitize_name(key)).into_boxed_str());
    names.insert(key.to_string(), n);
    n
}

impl Docker {
    fn new(f: &Flags) -> anyhow::Result<Docker> {
        let cgroups = Hierarchy::detect(f.paths.sys("fs/cgroup"));
        let labels = if f.bool("collector.docker.store-container-labels", true) {
            LabelPolicy::All
        } else {
            let mut keys: Vec<String> = Vec::new();
            for flag in [
                "collector.docker.whitelisted-container-labels",
                "collector.docker.label-allowlist",
            ] {
                for l in f.string(flag).split(',').map(str::trim) {
                    if !l.is_empty() && !keys.iter().any(|k| k == l) {
                        keys.push(l.to_string());
                    }
                }
            }
            LabelPolicy::Only(
                keys.into_iter()
                    .map(|k| {
                        let n = label_name(&k);
                        (k, n)
                    })
                    .collect(),
            )
        };
        let interval = f.duration("collector.docker.disk-usage-interval")?;
        if interval.is_zero() {
            anyhow::bail!("--collector.docker.disk-usage-interval must be above 0");
        }
        let engine = Engine::start(
            f.string("collector.docker.host"),
            cgroups.clone(),
            f.paths.procfs.clone(),
        )?;
        engine.wait_ready(FIRST_LIST_WAIT);
        let raw = (!f.bool("collector.docker.docker-only", false))
            .then(|| start_raw_lister(engine.clone(), cgroups.clone()))
            .transpose()?;
        let disk = f
            .bool("collector.docker.disk-usage", true)
            .then(|| {
                DiskUsage::start(
                    engine.clone(),
                    f.paths.rootfs.clone(),
                    f.paths.sysfs.clone(),
                    interval,
                )
            })
            .transpose()?;
        Ok(Docker {
            engine,
            cgroups,
            paths: f.paths.clone(),
            labels,
            raw,
            disk,
            machine: Machine::read(&f.paths).map_err(|e| format!("{e:#}")),
        })
    }

    fn label_set<'a>(&self, c: &'a Container, id: &'a str) -> Vec<(&'static str, &'a str)> {
        let mut l = vec![
            ("id", id),
            ("image", c.image.as_str()),
            ("name", c.name.as_str()),
        ];
        match &self.labels {
            LabelPolicy::Only(keys) => {
                for (key, name) in keys {
                    if let Some(v) = c.labels.get(key) {
                        l.push((name, v.as_str()));
                    }
                }
            }
            LabelPolicy::All => {
                let mut keys: Vec<&String> = c.labels.keys().collect();
                keys.sort();
                for key in keys {
                    let name = label_name(key);
                    // Two keys may sanitize to one name: the first wins.
                    if !l.iter().any(|(n, _)| *n == name) {
                        l.push((name, c.labels[key].as_str()));
                    }
                }
            }
        }
        l
    }
}

/// Lists the host's cgroups now and then every [`RAW_REFRESH`] in a
/// background thread, leaving out the running containers' own subtrees.
fn start_raw_lister(
    engine: Arc<Engine>,
    cgroups: Hierarchy,
) -> anyhow::Result<Arc<Mutex<Vec<String>>>> {
    let skip = |engine: &Engine| -> HashSet<String> {
        engine
            .lock()
            .containers
            .values()
            .filter_map(|c| c.cgroup.clone())
            .collect()
    };
    let list = Arc::new(Mutex::new(cgroups.list(&skip(&engine), RAW_LIMIT)));
    let l = list.clone();
    std::thread::Builder::new()
        .name("docker-cgroups".into())
        .spawn(move || loop {
            std::thread::sleep(RAW_REFRESH);
            let found = cgroups.list(&skip(&engine), RAW_LIMIT);
            *l.lock().unwrap_or_else(|e| e.into_inner()) = found;
        })?;
    Ok(list)
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
        if let Ok(m) = &self.machine {
            m.render(out);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
            .floor();
        // The host's cgroups need no Engine: reported even while it is down.
        self.raw_cgroups(out, &containers, now)?;
        match status {
            Some(Ok(())) => {}
            Some(Err(e)) => anyhow::bail!("{e}"),
            None => anyhow::bail!("still connecting to the Docker Engine"),
        }
        let mut disk_errors = Vec::new();
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
                now,
            );
            usage_metrics(out, &usage, &labels, ooms.get(&c.id).copied().unwrap_or(0));
            self.io_metrics(out, &usage, &labels);
            if let Some(pid) = c.pid {
                self.network(out, pid, &labels)?;
            }
            if let Some(disk) = &self.disk {
                if let Some(u) = disk.get(&c.id) {
                    fs_metrics(out, &u, &labels);
                }
                disk_errors.extend(disk.error(&c.id));
            }
        }
        if let Err(e) = &self.machine {
            anyhow::bail!("machine_* metrics: {e}");
        }
        if let Some(e) = disk_errors.first() {
            anyhow::bail!(
                "container disk use: {e} (and {} more; --no-collector.docker.disk-usage turns it off)",
                disk_errors.len() - 1
            );
        }
        Ok(())
    }
}

impl Docker {
    /// cAdvisor's raw cgroups: `/` (the whole host) and every other cgroup
    /// not a container's, labelled by `id` only.
    fn raw_cgroups(
        &self,
        out: &mut MetricSet,
        containers: &[Container],
        now: f64,
    ) -> anyhow::Result<()> {
        let Some(raw) = &self.raw else {
            return Ok(());
        };
        let list = raw.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // A container started since the last listing is not a raw cgroup.
        let own: HashSet<&str> = containers
            .iter()
            .filter_map(|c| c.cgroup.as_deref())
            .collect();
        for path in &list {
            if own.contains(path.as_str()) {
                continue;
            }
            let Some(usage) = self.cgroups.read(path)? else {
                continue;
            };
            let labels = [("id", path.as_str())];
            out.gauge(
                "container_last_seen",
                "Last time a container was seen by the exporter",
                &labels,
                now,
            );
            let usage = Usage {
                oom_kills: usage.oom_kills_local.or(usage.oom_kills),
                ..usage
            };
            usage_metrics(out, &usage, &labels, 0);
            self.io_metrics(out, &usage, &labels);
            if path == "/" {
                // The host's own interfaces, as cAdvisor reports for "/".
                self.network(out, 1, &labels)?;
            }
        }
        Ok(())
    }
}

/// cAdvisor's disk-use families for one container's writable layer.
fn fs_metrics(out: &mut MetricSet, u: &fsusage::FsUsage, labels: &[(&'static str, &str)]) {
    let mut l = labels.to_vec();
    l.push(("device", &u.device));
    for (name, help, v) in [
        (
            "container_fs_usage_bytes",
            "Number of bytes that are consumed by the container on this filesystem.",
            u.usage_bytes,
        ),
        (
            "container_fs_limit_bytes",
            "Number of bytes that can be consumed by the container on this filesystem.",
            u.limit_bytes,
        ),
        (
            "container_fs_inodes_free",
            "Number of available Inodes",
            u.inodes_free,
        ),
        (
            "container_fs_inodes_total",
            "Number of Inodes",
            u.inodes_used,
        ),
    ] {
        out.gauge(name, help, &l, v as f64);
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
    // cAdvisor's encoding: 1 healthy, 0 unhealthy (or still starting), -1
    // without a healthcheck.
    out.gauge(
        "container_health_state",
        "Health state of the container from its healthcheck: 1 healthy, 0 unhealthy or starting, -1 no healthcheck.",
        labels,
        match health {
            "healthy" => 1.0,
            "none" => -1.0,
            _ => 0.0,
        },
    );
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
        ("container_spec_cpu_shares", "CPU share of the container.", u.cpu_shares),
        ("container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes", u.memory_max_usage),
        ("container_memory_mapped_file", "Size of memory mapped files in bytes.", u.memory_mapped_file),
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
    // Unlimited (huge, or "max") is 0, as for the limit.
    for (name, help, v) in [
        (
            "container_spec_memory_reservation_limit_bytes",
            "Memory reservation limit for the container.",
            u.memory_reservation,
        ),
        (
            "container_spec_memory_swap_limit_bytes",
            "Memory swap limit for the container.",
            u.memory_swap_limit,
        ),
    ] {
        if let Some(v) = v {
            let v = if v > MAX_MEMORY_LIMIT { 0 } else { v };
            out.gauge(name, help, labels, v as f64);
        }
    }
    let f = &u.failures;
    for (kind, scope, v) in [
        ("pgfault", "container", f.pgfault_container),
        ("pgmajfault", "container", f.pgmajfault_container),
        ("pgfault", "hierarchy", f.pgfault_hierarchy),
        ("pgmajfault", "hierarchy", f.pgmajfault_hierarchy),
    ] {
        if let Some(v) = v {
            out.counter(
                "container_memory_failures_total",
                "Cumulative count of memory allocation failures.",
                &with(("failure_type", kind))
                    .into_iter()
                    .chain([("scope", scope)])
                    .collect::<Vec<_>>(),
                v as f64,
            );
        }
    }
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
            let (major, minor) = d.device.split_once(':').unwrap_or((&d.device, ""));
            for (op, v) in &d.bytes_by_op {
                out.counter(
                    "container_blkio_device_usage_total",
                    "Blkio Device bytes usage",
                    &[
                        labels,
                        &[
                            ("device", dev.as_str()),
                            ("major", major),
                            ("minor", minor),
                            ("operation", op.as_str()),
                        ],
                    ]
                    .concat(),
                    *v as f64,
                );
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
            rw_dir: None,
        };
        let d = Docker {
            engine: Arc::new(Engine::for_tests()),
            cgroups,
            paths,
            labels: LabelPolicy::Only(vec![(
                "com.example.team".into(),
                "container_label_com_example_team",
            )]),
            raw: None,
            disk: None,
            machine: Err("not read in this test".into()),
        };
        let mut out = MetricSet::new();
        let id = c.cgroup.clone().unwrap();
        let labels = d.label_set(&c, &id);
        docker_view(&mut out, &c, &labels);
        let usage = d.cgroups.read(&id).unwrap().unwrap();
        usage_metrics(&mut out, &usage, &labels, 5);
        d.io_metrics(&mut out, &usage, &labels);
        d.network(&mut out, 4242, &labels).unwrap();
        fs_metrics(
            &mut out,
            &fsusage::FsUsage {
                device: "/dev/vda".into(),
                usage_bytes: 50 << 20,
                inodes_used: 42,
                limit_bytes: 1 << 40,
                inodes_free: 1000,
            },
            &labels,
        );
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
            ("container_health_state", &[], "1"),
            ("container_spec_cpu_shares", &[], "512"),
            ("container_memory_max_usage_bytes", &[], "1.1534336e+08"),
            ("container_memory_mapped_file", &[], "3.145728e+06"),
            (
                "container_spec_memory_reservation_limit_bytes",
                &[],
                "6.7108864e+07",
            ),
            (
                "container_spec_memory_swap_limit_bytes",
                &[],
                "2.68435456e+08",
            ),
            (
                "container_memory_failures_total",
                &["failure_type=\"pgfault\"", "scope=\"container\""],
                "1000",
            ),
            (
                "container_memory_failures_total",
                &["failure_type=\"pgmajfault\"", "scope=\"hierarchy\""],
                "12",
            ),
            (
                "container_blkio_device_usage_total",
                &[
                    "device=\"8:0\"",
                    "major=\"8\"",
                    "minor=\"0\"",
                    "operation=\"Async\"",
                ],
                "3.145728e+06",
            ),
            (
                "container_fs_usage_bytes",
                &["device=\"/dev/vda\""],
                "5.24288e+07",
            ),
            ("container_fs_inodes_total", &["device=\"/dev/vda\""], "42"),
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

    fn docker_on(version: &str, labels: LabelPolicy) -> Docker {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/cgroup")
            .join(version);
        let paths = Paths {
            procfs: root.join("proc"),
            sysfs: root.join("sys"),
            ..Paths::default()
        };
        let cgroups = Hierarchy::detect(paths.sys("fs/cgroup"));
        let skip = [
            format!("/docker/{ID}"),
            format!("/system.slice/docker-{ID}.scope"),
        ]
        .into_iter()
        .collect();
        let list = cgroups.list(&skip, RAW_LIMIT);
        Docker {
            engine: Arc::new(Engine::for_tests()),
            cgroups,
            paths,
            labels,
            raw: Some(Arc::new(Mutex::new(list))),
            disk: None,
            machine: Err("not read in this test".into()),
        }
    }

    #[test]
    fn root_and_system_cgroups_render_with_id_only() {
        let d = docker_on("v1", LabelPolicy::All);
        let mut out = MetricSet::new();
        d.raw_cgroups(&mut out, &[], 1.0).unwrap();
        let text = render(out);
        for line in [
            "container_cpu_usage_seconds_total{cpu=\"total\",id=\"/\"} 1234.5",
            "container_memory_usage_bytes{id=\"/\"} 4.294967296e+09",
            // v1's "unlimited" root is 0, as cAdvisor shows it.
            "container_spec_memory_limit_bytes{id=\"/\"} 0",
            "container_spec_memory_reservation_limit_bytes{id=\"/\"} 0",
            "container_cpu_usage_seconds_total{cpu=\"total\",id=\"/system.slice/ssh.service\"} 2.5",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in:\n{text}");
        }
        assert!(!text.contains(ID), "the container is not a raw cgroup");
        // A listed cgroup that became a container's is left to it.
        let c = Container {
            id: "x".into(),
            cgroup: Some("/system.slice/ssh.service".into()),
            ..Container::default()
        };
        let mut out = MetricSet::new();
        d.raw_cgroups(&mut out, &[c], 1.0).unwrap();
        assert!(!render(out).contains("ssh.service"));
        // --collector.docker.docker-only: none at all.
        let only = Docker {
            raw: None,
            ..docker_on("v1", LabelPolicy::All)
        };
        let mut out = MetricSet::new();
        only.raw_cgroups(&mut out, &[], 1.0).unwrap();
        assert!(!render(out).contains("id="));
    }

    #[test]
    fn a_v2_parent_does_not_count_its_childrens_oom_kills_again() {
        let d = docker_on("v2", LabelPolicy::All);
        let mut out = MetricSet::new();
        d.raw_cgroups(&mut out, &[], 1.0).unwrap();
        let text = render(out);
        // memory.events says 2 (the container's kills), .local says 0.
        assert!(
            text.lines()
                .any(|l| l == "container_oom_events_total{id=\"/system.slice\"} 0"),
            "{text}"
        );
        // The root has no memory.current on v2 but its CPU is there.
        assert!(text
            .lines()
            .any(|l| l == "container_cpu_usage_seconds_total{cpu=\"total\",id=\"/\"} 500"));
        assert!(!text.contains("container_memory_usage_bytes{id=\"/\"}"));
    }

    #[test]
    fn a_garbage_host_cgroup_fails_the_collector_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mem = dir.path().join("sys/fs/cgroup/memory");
        std::fs::create_dir_all(&mem).unwrap();
        std::fs::write(mem.join("memory.usage_in_bytes"), "-1\n").unwrap();
        let paths = Paths {
            sysfs: dir.path().join("sys"),
            ..Paths::default()
        };
        let cgroups = Hierarchy::detect(paths.sys("fs/cgroup"));
        let d = Docker {
            engine: Arc::new(Engine::for_tests()),
            raw: Some(Arc::new(Mutex::new(vec!["/".into()]))),
            cgroups,
            paths,
            labels: LabelPolicy::All,
            disk: None,
            machine: Err("x".into()),
        };
        let mut out = MetricSet::new();
        let err = format!("{:#}", d.update(&mut out).unwrap_err());
        assert!(err.contains("memory.usage_in_bytes"), "{err}");
    }

    #[test]
    fn every_label_is_exported_by_default_and_only_listed_ones_otherwise() {
        let c = Container {
            name: "n".into(),
            labels: [
                ("com.example.team", "ops"),
                ("org.opencontainers.image.version", "1.2"),
                // Sanitizes to the same name as the one above: one kept.
                ("org.opencontainers.image-version", "9"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
            ..Container::default()
        };
        let all = docker_on("v1", LabelPolicy::All);
        let l = all.label_set(&c, "/docker/x");
        assert!(l.contains(&("container_label_com_example_team", "ops")));
        // Sorted keys: '-' sorts before '.', so the dash one wins.
        assert!(l.contains(&("container_label_org_opencontainers_image_version", "9")));
        assert_eq!(l.len(), 3 + 2, "{l:?}");
        let only = docker_on(
            "v1",
            LabelPolicy::Only(vec![(
                "com.example.team".into(),
                label_name("com.example.team"),
            )]),
        );
        let l = only.label_set(&c, "/docker/x");
        assert_eq!(
            l,
            vec![
                ("id", "/docker/x"),
                ("image", ""),
                ("name", "n"),
                ("container_label_com_example_team", "ops")
            ]
        );
    }

    #[test]
    fn health_state_uses_cadvisors_encoding() {
        for (health, want) in [
            (None, "-1"),
            (Some("starting"), "0"),
            (Some("unhealthy"), "0"),
            (Some("healthy"), "1"),
        ] {
            let c = Container {
                health: health.map(String::from),
                ..Container::default()
            };
            let mut out = MetricSet::new();
            docker_view(&mut out, &c, &[("id", "/x")]);
            let text = render(out);
            assert!(
                text.lines()
                    .any(|l| l == format!("container_health_state{{id=\"/x\"}} {want}")),
                "{health:?}: {text}"
            );
        }
    }
}
