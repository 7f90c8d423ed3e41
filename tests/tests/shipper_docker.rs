//! The shipper's Docker sources against the real Docker Engine of this
//! machine and the Loki test receiver: containers print numbered lines on
//! stdout and stderr, restart, are removed, while the shipper itself is
//! restarted; what `docker logs` holds must arrive exactly once, with the
//! labels the config gives. The events source must report a container's
//! create/start/die/restart/destroy, including events that happened while
//! the shipper was down, once each.
//!
//! Skipped loudly when `docker info` fails.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e_tests::docker_engine::{docker, engine_available, Scene};
use e2e_tests::loki_receiver::LokiReceiver;
use e2e_tests::process::{free_port, wait_until, Process};
use e2e_tests::shipper;

fn write_config(dir: &Path, receiver: &LokiReceiver, port: u16, scrape: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {port}\n\
positions:\n  filename: {pos}\n  sync_period: 1s\n\
clients:\n  - url: {url}\n    batchwait: 100ms\n\
scrape_configs:\n{scrape}",
            pos = dir.join("positions.yaml").display(),
            url = receiver.push_url(),
        ),
    )
    .unwrap();
    path
}

/// A `docker_sd_configs` job for the containers labelled `e2e.test=<tag>`,
/// labelled `container`, `stream` and `job`.
fn docker_sd_job(tag: &str, refresh_interval: &str) -> String {
    format!(
        "  - job_name: docker\n    docker_sd_configs:\n      - host: unix:///var/run/docker.sock\n        refresh_interval: {refresh_interval}\n        filters:\n          - name: label\n            values: [e2e.test={tag}]\n    relabel_configs:\n      - source_labels: [__meta_docker_container_name]\n        regex: '/(.*)'\n        target_label: container\n      - source_labels: [__meta_docker_container_log_stream]\n        target_label: stream\n      - replacement: docker\n        target_label: job\n"
    )
}

/// What the Engine holds for a container, per stream: (stream, line) counts.
fn engine_lines(container: &str) -> HashMap<(String, String), usize> {
    let mut out = HashMap::new();
    for (stream, redirect) in [("stdout", "2>/dev/null"), ("stderr", "2>&1 >/dev/null")] {
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!("docker logs {container} {redirect}"))
            .output()
            .unwrap();
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            *out.entry((stream.to_string(), l.to_string())).or_insert(0) += 1;
        }
    }
    out
}

/// What the receiver holds for `container`: (stream, line) counts.
fn received_lines(receiver: &LokiReceiver, container: &str) -> HashMap<(String, String), usize> {
    let mut out = HashMap::new();
    for s in receiver.streams() {
        if s.labels.get("container").map(String::as_str) != Some(container) {
            continue;
        }
        let stream = s.labels.get("stream").cloned().unwrap_or_default();
        for e in s.entries {
            *out.entry((stream.clone(), e.line)).or_insert(0) += 1;
        }
    }
    out
}

/// Waits until the receiver holds exactly what the Engine holds.
fn expect_same(receiver: &LokiReceiver, container: &str, shipper: &Process, what: &str) {
    let r = wait_until(what, Duration::from_secs(30), || {
        let want = engine_lines(container);
        let got = received_lines(receiver, container);
        if want.is_empty() {
            return Err("the container printed nothing yet".into());
        }
        let missing = want.keys().filter(|k| !got.contains_key(*k)).count();
        let dups: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
        let stray: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
        if !dups.is_empty() || !stray.is_empty() {
            return Err(format!(
                "duplicates {dups:?}, lines nobody printed {stray:?}"
            ));
        }
        if missing > 0 {
            return Err(format!("{missing} of {} lines missing", want.len()));
        }
        Ok(true)
    });
    if let Err(e) = r {
        panic!("{container}: {e}\n{}", shipper.log_tail(40));
    }
}

/// `docker start` that waits until the container exited again.
fn wait_exited(name: &str) {
    wait_until("the container exits", Duration::from_secs(30), || {
        Ok(docker(&["inspect", "-f", "{{.State.Running}}", name])? == "false")
    })
    .unwrap();
}

#[test]
fn container_logs_arrive_once_across_restarts_removal_and_shipper_restarts() {
    if !engine_available("container_logs_arrive_once_across_restarts_removal_and_shipper_restarts")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let receiver = LokiReceiver::start();
    let port = free_port();
    let mut scene = Scene::new("ship-test", "logs");
    let tag = scene.name("tag");
    let cfg = write_config(dir.path(), &receiver, port, &docker_sd_job(&tag, "1s"));
    let label = format!("e2e.test={tag}");
    let shipper = shipper::start(&cfg, port, &[], &[]);

    // A counts its runs in its own filesystem, so a restart prints new lines.
    // Each run stays up past two refresh intervals (runs shorter than that
    // have a test of their own, below). Its third run,
    // printed while the shipper is down, stays up a while so the restarted
    // shipper finds it running (a container that came and went while the
    // shipper was down is not shipped).
    let a = scene.name("a");
    scene.run(
        "a",
        &["--label", &label],
        "n=$(cat /tmp/runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > /tmp/runs; \
         i=0; while [ $i -lt 40 ]; do echo \"a run $n out $i\"; echo \"a run $n err $i\" >&2; \
         i=$((i+1)); sleep 0.02; done; \
         if [ $n -eq 3 ]; then sleep 5; else sleep 2; fi",
    );
    // B prints until stopped.
    let b = scene.name("b");
    let b_id = scene.run(
        "b",
        &["--label", &label],
        "i=0; while :; do echo \"b out $i\"; i=$((i+1)); sleep 0.05; done",
    );
    // C prints a line the Engine splits in 16 KiB parts, and a last line
    // without a newline (which the Engine writes only as C exits).
    let c = scene.name("c");
    scene.run(
        "c",
        &["--label", &label],
        "head -c 40000 /dev/zero | tr '\\0' x; echo; echo c short; printf 'c no newline'; sleep 1",
    );
    wait_exited(&a);
    expect_same(&receiver, &a, &shipper, "a's first run arrives");
    // B, running, is a Docker target on /targets and /service-discovery.
    let json = |path: &str| -> serde_json::Value {
        let body = ureq::get(&format!("http://127.0.0.1:{port}{path}?format=json"))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .into_string()
            .unwrap();
        serde_json::from_str(&body).unwrap()
    };
    wait_until("b on /targets", Duration::from_secs(10), || {
        Ok(json("/targets").as_array().unwrap().iter().any(|t| {
            t["kind"] == "docker"
                && t["path"] == format!("/{b}")
                && t["labels"]["container"] == b.as_str()
                && t["labels"]["stream"] == "stdout"
                && t["ready"] == true
        }))
    })
    .unwrap_or_else(|e| panic!("{e}: {}", json("/targets")));
    let sd = json("/service-discovery");
    let found = sd
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["discovered_labels"]["__meta_docker_container_name"] == format!("/{b}"))
        .unwrap_or_else(|| panic!("b on /service-discovery: {sd}"));
    assert_eq!(found["mechanism"], "docker_sd_configs");
    assert_eq!(found["target_labels"]["job"], "docker");
    wait_exited(&c);
    expect_same(
        &receiver,
        &c,
        &shipper,
        "c's long and unterminated lines arrive whole",
    );
    docker(&["start", &a]).unwrap();
    wait_exited(&a);
    expect_same(
        &receiver,
        &a,
        &shipper,
        "a's second run (a restart) arrives",
    );

    // The shipper restarts while B keeps printing and A runs a third time.
    shipper::stop(shipper);
    docker(&["start", &a]).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let positions = std::fs::read_to_string(dir.path().join("positions.yaml")).unwrap();
    assert!(
        positions.contains(&format!("cursor-{b_id}")),
        "positions keep a cursor per container:\n{positions}"
    );
    let shipper = shipper::start(&cfg, port, &[], &[]);
    wait_exited(&a);
    expect_same(
        &receiver,
        &a,
        &shipper,
        "a's third run, while the shipper was down",
    );
    docker(&["stop", "-t", "1", &b]).unwrap();
    expect_same(
        &receiver,
        &b,
        &shipper,
        "b's lines across the shipper restart",
    );

    // Labels: exactly what relabel_configs made, per stream.
    for s in receiver.streams() {
        let container = s.labels.get("container").cloned().unwrap_or_default();
        let stream = s.labels.get("stream").cloned().unwrap_or_default();
        let want: BTreeMap<String, String> = [
            ("container", container.as_str()),
            ("job", "docker"),
            ("stream", stream.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(s.labels, want);
        assert!(
            [a.as_str(), b.as_str(), c.as_str()].contains(&container.as_str()),
            "{container}"
        );
        assert!(["stdout", "stderr"].contains(&stream.as_str()), "{stream}");
        if container == c {
            continue;
        }
        for e in &s.entries {
            let from = if stream == "stdout" { "out" } else { "err" };
            assert!(e.line.contains(from), "{} on {stream}", e.line);
        }
    }
    assert!(receiver.problems().is_empty(), "{:?}", receiver.problems());

    // A stopped container keeps its position (it may run again); removed
    // once the shipper has let it go, its position is forgotten.
    wait_until("b leaves /targets", Duration::from_secs(10), || {
        Ok(!json("/targets")
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["path"] == format!("/{b}")))
    })
    .unwrap_or_else(|e| panic!("{e}: {}", json("/targets")));
    std::thread::sleep(Duration::from_secs(2)); // two refreshes: let go
    let p = std::fs::read_to_string(dir.path().join("positions.yaml")).unwrap();
    assert!(
        p.contains(&b_id),
        "a stopped container keeps its position:\n{p}"
    );
    docker(&["rm", &b]).unwrap();
    wait_until(
        "b's cursor leaves the positions file",
        Duration::from_secs(20),
        || {
            let p = std::fs::read_to_string(dir.path().join("positions.yaml")).unwrap_or_default();
            Ok(!p.contains(&b_id))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", shipper.log_tail(30)));
    shipper::stop(shipper);
}

/// Runs shorter than `refresh_interval` (a batch job, a crash loop) arrive:
/// a container's start in the Engine's events lists the containers at once,
/// and one started since the last listing is listed by id even when it has
/// stopped already. promtail reads such a run only when a listing falls
/// inside it. With a 60 s refresh, each run here lasts milliseconds; a
/// container the config's filters do not select is not read.
#[test]
fn runs_shorter_than_the_refresh_interval_arrive() {
    if !engine_available("runs_shorter_than_the_refresh_interval_arrive") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let receiver = LokiReceiver::start();
    let port = free_port();
    let mut scene = Scene::new("ship-test", "short");
    let tag = scene.name("tag");
    let cfg = write_config(dir.path(), &receiver, port, &docker_sd_job(&tag, "60s"));
    let label = format!("e2e.test={tag}");
    let shipper = shipper::start(&cfg, port, &[], &[]);
    // Each run prints numbered lines of its own and exits at once.
    let script = "n=$(cat /tmp/runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > /tmp/runs; \
         i=0; while [ $i -lt 20 ]; do echo \"s run $n out $i\"; echo \"s run $n err $i\" >&2; \
         i=$((i+1)); done";
    let other = scene.name("other");
    scene.run("other", &[], script);
    let s = scene.name("s");
    scene.run("s", &["--label", &label], script);
    wait_exited(&s);
    expect_same(&receiver, &s, &shipper, "a run of milliseconds arrives");
    docker(&["start", &s]).unwrap();
    wait_exited(&s);
    expect_same(
        &receiver,
        &s,
        &shipper,
        "its second run (a restart) arrives",
    );
    wait_exited(&other);
    assert!(
        received_lines(&receiver, &other).is_empty(),
        "a container the filters do not select was read"
    );
    assert!(receiver.problems().is_empty(), "{:?}", receiver.problems());
    shipper::stop(shipper);
}

/// The events of one container, as (action label, JSON line) pairs.
fn events_of(receiver: &LokiReceiver, name: &str) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for s in receiver.streams() {
        for e in s.entries {
            let v: serde_json::Value = serde_json::from_str(&e.line)
                .unwrap_or_else(|err| panic!("not JSON ({err}): {}", e.line));
            if v["name"] == name {
                assert_eq!(s.labels.get("type").map(String::as_str), Some("container"));
                assert_eq!(
                    s.labels.get("job").map(String::as_str),
                    Some("docker_events")
                );
                out.push((s.labels.get("action").cloned().unwrap_or_default(), v));
            }
        }
    }
    out.sort_by(|a, b| a.1["time"].as_str().cmp(&b.1["time"].as_str()));
    out
}

#[test]
fn docker_events_report_the_life_of_a_container_once_across_a_restart() {
    if !engine_available("docker_events_report_the_life_of_a_container_once_across_a_restart") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let receiver = LokiReceiver::start();
    let port = free_port();
    let mut scene = Scene::new("ship-test", "events");
    let tag = scene.name("tag");
    let cfg = write_config(
        dir.path(),
        &receiver,
        port,
        &format!(
            "  - job_name: docker_events\n    docker_events:\n      host: unix:///var/run/docker.sock\n      labels:\n        job: docker_events\n      filters:\n        - name: label\n          values: [e2e.test={tag}]\n"
        ),
    );
    let shipper = shipper::start(&cfg, port, &[], &[]);
    // The event stream is a target on /targets.
    let targets = ureq::get(&format!("http://127.0.0.1:{port}/targets"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert_eq!(
        targets,
        "docker_events\n  ready   docker_events unix:///var/run/docker.sock {job=\"docker_events\"}\n"
    );
    let c = scene.name("c");
    scene.run("c", &["--label", &format!("e2e.test={tag}")], "sleep 30");
    docker(&["restart", "-t", "0", &c]).unwrap();
    let actions = |r: &LokiReceiver| -> Vec<String> {
        events_of(r, &c).into_iter().map(|(a, _)| a).collect()
    };
    wait_until(
        "create, start, die, restart arrive",
        Duration::from_secs(20),
        || {
            let a = actions(&receiver);
            Ok(["create", "start", "kill", "die", "restart"]
                .iter()
                .all(|w| a.iter().any(|x| x == w)))
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", actions(&receiver), shipper.log_tail(30)));

    // Events while the shipper is down arrive after it restarts, once.
    shipper::stop(shipper);
    docker(&["rm", "-f", &c]).unwrap();
    let shipper = shipper::start(&cfg, port, &[], &[]);
    wait_until("destroy arrives", Duration::from_secs(20), || {
        Ok(actions(&receiver).iter().any(|a| a == "destroy"))
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", actions(&receiver), shipper.log_tail(30)));
    std::thread::sleep(Duration::from_secs(1));
    let events = events_of(&receiver, &c);
    let mut seen = std::collections::HashSet::new();
    for (action, v) in &events {
        assert!(
            seen.insert((v["time"].to_string(), v["action"].to_string())),
            "event repeated: {v}"
        );
        assert_eq!(v["type"], "container");
        assert_eq!(v["image"], e2e_tests::docker_engine::IMAGE, "{v}");
        assert_eq!(v["id"].as_str().map(str::len), Some(64), "{v}");
        assert_eq!(
            action,
            v["action"].as_str().unwrap().split(':').next().unwrap()
        );
    }
    let order: Vec<&str> = events.iter().map(|(a, _)| a.as_str()).collect();
    let first = |a: &str| order.iter().position(|x| *x == a).unwrap();
    assert!(first("create") < first("start") && first("die") < first("restart"));
    assert!(first("restart") < first("destroy"), "{order:?}");
    assert!(receiver.problems().is_empty(), "{:?}", receiver.problems());
    shipper::stop(shipper);
}
