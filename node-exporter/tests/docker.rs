//! The docker collector against the real Docker Engine of this machine.
//! Images, containers and networks come from the shared helper
//! (`e2e_tests::docker_engine`: a busybox image built here, no registry).
//!
//! When `docker info` fails the Engine tests are skipped with a loud
//! message; the dead-socket test needs no Engine and always runs.

mod common;

use std::time::{Duration, Instant};

use e2e_tests::docker_engine::{docker, engine_available, Scene, IMAGE};

/// The value of the series `name` whose labels include all of `labels`.
fn value(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    body.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (labelset, v) = rest.strip_prefix('{')?.rsplit_once("} ")?;
        labels
            .iter()
            .all(|(k, want)| labelset.contains(&format!("{k}=\"{want}\"")))
            .then(|| v.parse().ok())?
    })
}

fn exporter() -> common::Running {
    common::start(&[
        "--collector.disable-defaults".into(),
        "--collector.docker".into(),
        "--collector.loadavg".into(),
        "--collector.docker.label-allowlist=com.example.team".into(),
    ])
}

/// Scrapes until `check` holds (the events stream is asynchronous), or
/// panics with the last body after `limit`.
fn eventually(
    ne: &common::Running,
    limit: Duration,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let (status, body) = ne.get("/metrics");
        assert_eq!(status, 200);
        if check(&body) {
            return body;
        }
        if Instant::now() > deadline {
            let ours: Vec<&str> = body
                .lines()
                .filter(|l| l.starts_with("container_") || l.contains("collector_success"))
                .collect();
            panic!(
                "{what}: not seen within {limit:?}:\n{}\nstderr:\n{}",
                ours.join("\n"),
                ne.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn cpu_memory_and_network_usage_move_with_the_workload() {
    if !engine_available("cpu_memory_and_network_usage_move_with_the_workload") {
        return;
    }
    let ne = exporter();
    let mut scene = Scene::new("ne-test", "usage");
    let burn = scene.name("burn");
    scene.run(
        "burn",
        &["--cpus", "0.5", "--label", "com.example.team=ops"],
        "while :; do :; done",
    );
    // 40 MiB in the container's tmpfs is charged to its memory cgroup.
    let mem = scene.name("mem");
    scene.run(
        "mem",
        &["-m", "96m"],
        "dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 2>/dev/null; sleep 600",
    );
    // Network: a web server and a client on the test's own network.
    let net = scene.network("net");
    let web = scene.name("web");
    scene.run(
        "web",
        &["--network", &net],
        "head -c 2000000 /dev/zero > /www/blob; httpd -f -p 80 -h /www",
    );
    scene.run(
        "client",
        &["--network", &net],
        &format!("while :; do wget -q -O /dev/null http://{web}/blob; sleep 0.2; done"),
    );

    let cpu = |body: &str| {
        value(
            body,
            "container_cpu_usage_seconds_total",
            &[("name", &burn), ("cpu", "total")],
        )
    };
    let first = eventually(&ne, Duration::from_secs(20), "the CPU burner", |b| {
        cpu(b).is_some_and(|v| v > 0.2)
    });
    let before = cpu(&first).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let body = eventually(
        &ne,
        Duration::from_secs(20),
        "CPU use growing and throttled, memory charged, bytes sent",
        |b| {
            cpu(b).is_some_and(|v| v > before + 0.3)
                && value(
                    b,
                    "container_cpu_cfs_throttled_periods_total",
                    &[("name", &burn)],
                )
                .is_some_and(|v| v > 0.0)
                && value(b, "container_memory_usage_bytes", &[("name", &mem)])
                    .is_some_and(|v| v >= 40.0 * 1048576.0)
                && value(
                    b,
                    "container_network_transmit_bytes_total",
                    &[("name", &web), ("interface", "eth0")],
                )
                .is_some_and(|v| v >= 2_000_000.0)
        },
    );
    // The limits Docker was given are the spec.
    assert_eq!(
        value(&body, "container_spec_cpu_quota", &[("name", &burn)]),
        Some(50000.0)
    );
    assert_eq!(
        value(&body, "container_spec_cpu_period", &[("name", &burn)]),
        Some(100000.0)
    );
    assert_eq!(
        value(
            &body,
            "container_spec_memory_limit_bytes",
            &[("name", &mem)]
        ),
        Some(96.0 * 1048576.0)
    );
    // Unlimited memory is 0, as in cAdvisor.
    assert_eq!(
        value(
            &body,
            "container_spec_memory_limit_bytes",
            &[("name", &burn)]
        ),
        Some(0.0)
    );
    let ws = value(
        &body,
        "container_memory_working_set_bytes",
        &[("name", &mem)],
    )
    .unwrap();
    assert!(
        ws >= 40.0 * 1048576.0,
        "working set {ws}: tmpfs pages are not reclaimable"
    );
    // The allowed label, the image, and Docker's view.
    assert!(
        value(
            &body,
            "container_docker_state",
            &[
                ("name", &burn),
                ("state", "running"),
                ("container_label_com_example_team", "ops"),
                ("image", IMAGE)
            ]
        ) == Some(1.0)
    );
    assert!(value(&body, "container_last_seen", &[("name", &burn)]).is_some());
    assert!(value(&body, "container_start_time_seconds", &[("name", &burn)]).is_some());
    assert_eq!(
        value(
            &body,
            "node_scrape_collector_success",
            &[("collector", "docker")]
        ),
        Some(1.0)
    );
    // The client's received bytes move too.
    let client = scene.name("client");
    assert!(
        value(
            &body,
            "container_network_receive_bytes_total",
            &[("name", &client), ("interface", "eth0")]
        )
        .unwrap()
            >= 2_000_000.0
    );
}

#[test]
fn oom_kills_restarts_exits_and_events_are_counted() {
    if !engine_available("oom_kills_restarts_exits_and_events_are_counted") {
        return;
    }
    let ne = exporter();
    let mut scene = Scene::new("ne-test", "life");
    let since = docker(&["info", "--format", "{{.SystemTime}}"]).unwrap();
    // awk doubles a string until it is OOM-killed at the 32 MiB limit.
    // (Growing in small steps, as `head -c 200m /dev/zero | tail` does,
    // let the kernel thrash on the container's file pages for 15-70 s
    // under load before the kill, and failed the test in CI.)
    let oom = scene.name("oom");
    scene.run(
        "oom",
        &["-m", "32m", "--memory-swap", "32m"],
        "awk 'BEGIN { s = \"xxxxxxxx\"; while (1) s = s s }'; sleep 600",
    );
    // Exits with 3 twice, then stays exited: restarted by its policy.
    let flappy = scene.name("flappy");
    scene.run(
        "flappy",
        &["--restart", "on-failure:2"],
        "sleep 0.3; exit 3",
    );
    let sleeper = scene.name("sleeper");
    scene.run("sleeper", &[], "sleep 600");

    let events = |b: &str, action: &str| {
        value(
            b,
            "container_docker_events_total",
            &[("type", "container"), ("action", action)],
        )
        .unwrap_or(0.0)
    };
    let body = eventually(
        &ne,
        Duration::from_secs(30),
        "OOM kill counted, restarts, exit code",
        |b| {
            value(b, "container_oom_events_total", &[("name", &oom)]).is_some_and(|v| v >= 1.0)
                && value(b, "container_docker_restart_count", &[("name", &flappy)]) == Some(2.0)
                && value(
                    b,
                    "container_docker_state",
                    &[("name", &flappy), ("state", "exited")],
                ) == Some(1.0)
        },
    );
    assert_eq!(
        value(&body, "container_docker_exit_code", &[("name", &flappy)]),
        Some(3.0)
    );
    assert_eq!(
        value(
            &body,
            "container_docker_state",
            &[("name", &flappy), ("state", "running")]
        ),
        Some(0.0)
    );
    // An exited container has no cgroup left: no usage series.
    assert_eq!(
        value(&body, "container_memory_usage_bytes", &[("name", &flappy)]),
        None
    );
    // The Engine's own oom events (this Engine does not always send one
    // for a kill inside the container; the cgroup count above always moves)
    // are all counted.
    let now = docker(&["info", "--format", "{{.SystemTime}}"]).unwrap();
    let engine_ooms = docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &now,
        "--filter",
        "type=container",
        "--filter",
        "event=oom",
        "--format",
        "{{.ID}}",
    ])
    .unwrap()
    .lines()
    .count() as f64;
    eventually(
        &ne,
        Duration::from_secs(20),
        "the Engine's oom events",
        |b| events(b, "oom") >= engine_ooms,
    );
    // Three runs of flappy: three starts and dies (plus the others' starts).
    assert!(
        events(&body, "start") >= 5.0,
        "starts: {}",
        events(&body, "start")
    );
    assert!(events(&body, "die") >= 3.0);

    // docker restart / stop are counted, and the state follows.
    let restarts = events(&body, "restart");
    docker(&["restart", "-t", "0", &sleeper]).unwrap();
    let body = eventually(&ne, Duration::from_secs(20), "the restart event", |b| {
        events(b, "restart") >= restarts + 1.0
    });
    let stops = events(&body, "stop");
    docker(&["stop", "-t", "0", &sleeper]).unwrap();
    eventually(
        &ne,
        Duration::from_secs(20),
        "the stop event and exited state",
        |b| {
            events(b, "stop") >= stops + 1.0
                && events(b, "kill") >= 1.0
                && value(
                    b,
                    "container_docker_state",
                    &[("name", &sleeper), ("state", "exited")],
                ) == Some(1.0)
        },
    );
    // A removed container is simply gone.
    docker(&["rm", "-f", &sleeper]).unwrap();
    eventually(
        &ne,
        Duration::from_secs(20),
        "the removed container gone",
        |b| {
            value(b, "container_docker_state", &[("name", &sleeper)]).is_none()
                && events(b, "destroy") >= 1.0
        },
    );
}

#[test]
fn health_status_follows_the_healthcheck() {
    if !engine_available("health_status_follows_the_healthcheck") {
        return;
    }
    let ne = exporter();
    let mut scene = Scene::new("ne-test", "health");
    let sick = scene.name("sick");
    scene.run(
        "sick",
        &[
            "--health-cmd",
            "test -e /tmp/ok",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
        ],
        "sleep 600",
    );
    eventually(&ne, Duration::from_secs(30), "unhealthy", |b| {
        value(
            b,
            "container_docker_health_status",
            &[("name", &sick), ("status", "unhealthy")],
        ) == Some(1.0)
    });
    docker(&["exec", &sick, "touch", "/tmp/ok"]).unwrap();
    eventually(&ne, Duration::from_secs(30), "healthy again", |b| {
        value(
            b,
            "container_docker_health_status",
            &[("name", &sick), ("status", "healthy")],
        ) == Some(1.0)
            && value(
                b,
                "container_docker_events_total",
                &[("action", "health_status")],
            )
            .is_some()
    });
}

/// No Engine behind the socket: the docker collector fails, the rest of
/// the scrape answers. Needs no Docker at all.
#[test]
fn a_dead_engine_socket_fails_the_collector_not_the_scrape() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    // A socket file nobody listens on any more.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let ne = common::start(&[
        "--collector.disable-defaults".into(),
        "--collector.docker".into(),
        "--collector.loadavg".into(),
        format!("--collector.docker.host=unix://{}", sock.display()),
    ]);
    for _ in 0..2 {
        let (status, body) = ne.get("/metrics");
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            value(
                &body,
                "node_scrape_collector_success",
                &[("collector", "docker")]
            ),
            Some(0.0),
            "{body}"
        );
        assert_eq!(
            value(
                &body,
                "node_scrape_collector_success",
                &[("collector", "loadavg")]
            ),
            Some(1.0)
        );
        assert!(body.contains("node_load1 "));
        assert!(!body.contains("container_docker_state"));
    }
    let log = ne.stderr();
    assert!(
        log.contains(&sock.display().to_string()),
        "the log names the Engine address:\n{log}"
    );
}

#[test]
fn a_malformed_engine_address_is_refused_at_startup() {
    let (code, err) =
        common::run_to_exit(&["--collector.docker", "--collector.docker.host=ftp://x"]);
    assert_eq!(code, 1);
    assert!(err.contains("--collector.docker.host"), "{err}");
}

/// Non-idle CPU seconds of the host from /proc/stat (user, nice, system,
/// irq, softirq, steal), what the root cgroup's usage counts.
fn host_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpu = stat.lines().find(|l| l.starts_with("cpu ")).unwrap();
    let f: Vec<f64> = cpu
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is in user).
    (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / 100.0
}

#[test]
fn disk_use_reservation_shares_and_all_labels_show() {
    if !engine_available("disk_use_reservation_shares_and_all_labels_show") {
        return;
    }
    let ne = common::start(&[
        "--collector.disable-defaults".into(),
        "--collector.docker".into(),
        "--collector.docker.disk-usage-interval=2s".into(),
    ]);
    let mut scene = Scene::new("ne-test", "disk");
    let writer = scene.name("writer");
    scene.run(
        "writer",
        &["--label", "org.example.role=writer"],
        "sleep 1; dd if=/dev/urandom of=/fill bs=1M count=50 2>/dev/null; sync; touch /done; sleep 600",
    );
    let idle = scene.name("idle");
    scene.run(
        "idle",
        &["--memory-reservation", "64m", "--cpu-shares", "512"],
        "sleep 600",
    );
    // Wait until the write is done, then one interval (2 s) plus a pass.
    let deadline = Instant::now() + Duration::from_secs(30);
    while docker(&["exec", &writer, "test", "-e", "/done"]).is_err() {
        assert!(Instant::now() < deadline, "the writer never finished");
        std::thread::sleep(Duration::from_millis(200));
    }
    let done = Instant::now();
    let mib = 1048576.0;
    let body = eventually(&ne, Duration::from_secs(10), "50 MiB in the layer", |b| {
        value(b, "container_fs_usage_bytes", &[("name", &writer)]).is_some_and(|v| v >= 50.0 * mib)
    });
    let took = done.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "seen {took:?} after the write: more than an interval and a pass"
    );
    let usage = value(&body, "container_fs_usage_bytes", &[("name", &writer)]).unwrap();
    assert!(
        usage < 52.0 * mib,
        "{usage}: only the 50 MiB file was written"
    );
    let idle_usage = value(&body, "container_fs_usage_bytes", &[("name", &idle)]).unwrap();
    assert!(idle_usage < mib, "idle container's layer: {idle_usage}");
    let limit = value(&body, "container_fs_limit_bytes", &[("name", &writer)]).unwrap();
    assert!(limit > usage);
    assert!(value(&body, "container_fs_inodes_total", &[("name", &writer)]).unwrap() >= 2.0);
    assert!(value(&body, "container_fs_inodes_free", &[("name", &writer)]).unwrap() > 0.0);
    assert!(
        body.lines()
            .any(|l| l.starts_with("container_fs_usage_bytes{")
                && l.contains(&format!("name=\"{writer}\""))
                && l.contains("device=\"/dev/")),
        "the device is the filesystem under the layer"
    );
    // Spec from the run options.
    assert_eq!(
        value(
            &body,
            "container_spec_memory_reservation_limit_bytes",
            &[("name", &idle)]
        ),
        Some(64.0 * mib)
    );
    assert_eq!(
        value(&body, "container_spec_cpu_shares", &[("name", &idle)]),
        Some(512.0)
    );
    assert_eq!(
        value(&body, "container_spec_cpu_shares", &[("name", &writer)]),
        Some(1024.0)
    );
    // Every label, without an allow-list.
    assert_eq!(
        value(
            &body,
            "container_last_seen",
            &[
                ("name", &writer),
                ("container_label_org_example_role", "writer")
            ]
        )
        .map(|_| ()),
        Some(())
    );
    assert_eq!(
        value(&body, "container_health_state", &[("name", &idle)]),
        Some(-1.0)
    );
    assert!(
        value(
            &body,
            "container_memory_max_usage_bytes",
            &[("name", &writer)]
        )
        .unwrap()
            > 0.0
    );
    assert!(
        value(
            &body,
            "container_memory_failures_total",
            &[
                ("name", &writer),
                ("failure_type", "pgfault"),
                ("scope", "container")
            ]
        )
        .unwrap()
            > 0.0
    );
}

#[test]
fn the_root_cgroup_is_the_whole_host() {
    if !engine_available("the_root_cgroup_is_the_whole_host") {
        return;
    }
    let ne = common::start(&[
        "--collector.disable-defaults".into(),
        "--collector.docker".into(),
    ]);
    let mut scene = Scene::new("ne-test", "root");
    scene.run("burn", &[], "while :; do :; done");
    let root_cpu = |b: &str| {
        value(
            b,
            "container_cpu_usage_seconds_total",
            &[("id", "/"), ("cpu", "total")],
        )
    };
    let first = eventually(&ne, Duration::from_secs(10), "id=\"/\"", |b| {
        root_cpu(b).is_some()
    });
    let (h0, c0) = (host_busy_seconds(), root_cpu(&first).unwrap());
    std::thread::sleep(Duration::from_secs(5));
    let (_, body) = ne.get("/metrics");
    let (h1, c1) = (host_busy_seconds(), root_cpu(&body).unwrap());
    let (host, root) = (h1 - h0, c1 - c0);
    assert!(host > 0.5, "the burner keeps the host busy: {host}");
    assert!(
        (root - host).abs() / host < 0.05,
        "root cgroup {root:.2} s vs host {host:.2} s of CPU over the same 5 s"
    );
    // The denominators of "share of the host".
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let total_kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        value(&body, "machine_memory_bytes", &[]),
        Some(total_kib * 1024.0)
    );
    let cpus = std::thread::available_parallelism().unwrap().get() as f64;
    assert_eq!(value(&body, "machine_cpu_cores", &[]), Some(cpus));
    assert!(value(&body, "container_memory_usage_bytes", &[("id", "/")]).unwrap() > 0.0);
}
