//! `/probe?debug=true` and reloading the modules file (`POST /-/reload`,
//! SIGHUP) on the real exporter binary, as blackbox_exporter answers them.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

fn start(modules: &Path) -> common::Running {
    let mut args = common::light_args();
    args.push("--log.level=debug".into());
    args.push(format!("--probe.config.file={}", modules.display()));
    common::start(&args)
}

fn post(ne: &common::Running, path: &str) -> (u16, String) {
    match ureq::post(&ne.url(path)).call() {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("POST {path}: {e}"),
    }
}

/// The module `name` probing the exporter's own port over TCP.
fn tcp_module(name: &str) -> String {
    format!("  {name}:\n    prober: tcp\n    timeout: 2s\n")
}

fn probe_status(ne: &common::Running, module: &str) -> u16 {
    ne.get(&format!("/probe?module={module}&target={}", ne.addr))
        .0
}

#[test]
fn debug_shows_the_logs_the_metrics_and_the_module() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blackbox.yml");
    std::fs::write(
        &file,
        "modules:\n  page:\n    prober: http\n    http:\n      valid_status_codes: [200]\n      \
         basic_auth:\n        username: prober\n        password: hunter2\n",
    )
    .unwrap();
    let ne = start(&file);
    let target = ne.url("/");
    let r = ureq::get(&ne.url(&format!("/probe?module=page&target={target}&debug=true")))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.header("Content-Type")
            .unwrap_or("")
            .starts_with("text/plain"),
        "{:?}",
        r.header("Content-Type")
    );
    let body = r.into_string().unwrap();
    let logs = body.find("Logs for the probe:\n").expect(&body);
    let metrics = body
        .find("\n\n\nMetrics that would have been returned:\n")
        .expect(&body);
    let module = body.find("\n\n\nModule configuration:\n").expect(&body);
    assert!(logs < metrics && metrics < module, "{body}");
    let (log_part, metric_part, module_part) = (
        &body[logs..metrics],
        &body[metrics..module],
        &body[module..],
    );
    assert!(
        log_part.contains("msg=\"Beginning probe\"")
            && log_part.contains("msg=\"Received HTTP response\" status_code=200")
            && log_part.contains("msg=\"Probe succeeded\""),
        "{log_part}"
    );
    assert!(
        metric_part.contains("\nprobe_success 1\n")
            && metric_part.contains("probe_http_status_code 200"),
        "{metric_part}"
    );
    assert!(
        module_part.contains("prober: http")
            && module_part.contains("username: prober")
            && module_part.contains("password: <secret>")
            && !body.contains("hunter2"),
        "{module_part}"
    );
    // Without debug: the metrics alone.
    let (status, plain) = ne.get(&format!("/probe?module=page&target={target}"));
    assert_eq!(status, 200);
    assert!(
        plain.starts_with("# HELP") && !plain.contains("Logs for the probe"),
        "{plain}"
    );
    // A failing probe's debug output says why.
    let (_, body) = ne.get("/probe?module=page&target=http://127.0.0.1:9/&debug=true");
    assert!(
        body.contains("msg=\"Probe failed\"") && body.contains("level=error"),
        "{body}"
    );
}

#[test]
fn reload_by_post_keeps_the_old_modules_when_the_file_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blackbox.yml");
    std::fs::write(&file, format!("modules:\n{}", tcp_module("one"))).unwrap();
    let ne = start(&file);
    assert_eq!(probe_status(&ne, "one"), 200);
    assert_eq!(probe_status(&ne, "two"), 400);

    // As blackbox: POST only.
    let (status, body) = ne.get("/-/reload");
    assert_eq!(status, 405);
    assert_eq!(body, "This endpoint requires a POST request.\n");

    std::fs::write(
        &file,
        format!("modules:\n{}{}", tcp_module("one"), tcp_module("two")),
    )
    .unwrap();
    let (status, body) = post(&ne, "/-/reload");
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(probe_status(&ne, "two"), 200);
    let (_, metrics) = ne.get("/metrics");
    assert!(
        metrics.contains("blackbox_exporter_config_last_reload_successful 1"),
        "{metrics}"
    );

    // A bad file: 500 with why, and the modules stay as they were.
    std::fs::write(
        &file,
        "modules:\n  three:\n    prober: http\n    http:\n      no_such_option: 1\n",
    )
    .unwrap();
    let (status, body) = post(&ne, "/-/reload");
    assert_eq!(status, 500, "{body}");
    assert!(
        body.starts_with("failed to reload config: ")
            && body.contains("no_such_option")
            && body.contains("\"three\""),
        "{body}"
    );
    assert_eq!(probe_status(&ne, "one"), 200);
    assert_eq!(probe_status(&ne, "two"), 200);
    assert_eq!(probe_status(&ne, "three"), 400);
    let (_, metrics) = ne.get("/metrics");
    assert!(
        metrics.contains("blackbox_exporter_config_last_reload_successful 0"),
        "{metrics}"
    );
    assert!(
        ne.stderr().contains("Error reloading config"),
        "{}",
        ne.stderr()
    );
}

#[test]
fn sighup_reloads_and_a_bad_file_keeps_the_old_modules() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blackbox.yml");
    std::fs::write(&file, format!("modules:\n{}", tcp_module("one"))).unwrap();
    let ne = start(&file);
    let hup = || {
        // SAFETY: signals the child this test started, by its pid.
        let rc = unsafe { libc::kill(ne.child.id() as i32, libc::SIGHUP) };
        assert_eq!(rc, 0);
    };
    let wait_for = |what: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !what() {
            assert!(Instant::now() < deadline, "{}", ne.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    std::fs::write(
        &file,
        format!("modules:\n{}{}", tcp_module("one"), tcp_module("two")),
    )
    .unwrap();
    hup();
    wait_for(&|| probe_status(&ne, "two") == 200);

    std::fs::write(&file, "modules:\n  bad:\n    prober: carrier-pigeon\n").unwrap();
    hup();
    wait_for(&|| ne.stderr().contains("Error reloading config"));
    assert!(ne.stderr().contains("carrier-pigeon"), "{}", ne.stderr());
    // Still serving, with the modules it had.
    assert_eq!(probe_status(&ne, "one"), 200);
    assert_eq!(probe_status(&ne, "two"), 200);
    assert_eq!(probe_status(&ne, "bad"), 400);
    assert!(ne.child.id() > 0);
}
