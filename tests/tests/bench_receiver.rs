//! The Loki test receiver as the process `bench/shipper.py` runs
//! (`tests/examples/loki_bench_receiver.rs`, built by `cargo test`): it counts
//! pushes, times lines carrying a write time, and obeys its control port.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e_tests::process::workspace_root;

struct Receiver {
    child: Child,
    push_url: String,
    control: String,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Receiver {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let bin = target.join("debug/examples/loki_bench_receiver");
    assert!(
        bin.exists(),
        "{} is missing: `cargo test -p e2e-tests` builds it",
        bin.display()
    );
    let mut child = Command::new(&bin)
        .args(["--latency-marker", "wts="])
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the receiver");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("first line {line:?} is not JSON: {e}"));
    Receiver {
        child,
        push_url: info["push_url"].as_str().unwrap().to_string(),
        control: info["control"].as_str().unwrap().to_string(),
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build()
}

/// Pushes one JSON entry; the status, or 0 when the connection failed.
fn push(r: &Receiver, line: &str) -> u16 {
    let body = serde_json::json!({"streams": [{"stream": {"job": "bench"},
        "values": [[format!("{}", now_ns()), line]]}]});
    match agent()
        .post(&r.push_url)
        .set("Content-Type", "application/json")
        .send_string(&body.to_string())
    {
        Ok(resp) => resp.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(_) => 0,
    }
}

fn control(r: &Receiver, method: &str, path: &str) -> (u16, String) {
    let url = format!("{}{path}", r.control);
    let res = if method == "POST" {
        agent().post(&url).call()
    } else {
        agent().get(&url).call()
    };
    match res {
        Ok(resp) => (resp.status(), resp.into_string().unwrap()),
        Err(ureq::Error::Status(code, resp)) => (code, resp.into_string().unwrap()),
        Err(e) => panic!("control {path}: {e}"),
    }
}

fn stats(r: &Receiver) -> serde_json::Value {
    serde_json::from_str(&control(r, "GET", "/stats").1).unwrap()
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn counts_times_and_goes_down_for_a_while() {
    let r = start();
    let written = now_ns() - 300_000_000;
    assert_eq!(push(&r, &format!("GET /a wts={written}")), 204);
    let s = stats(&r);
    assert_eq!(s["entries"], 1, "{s}");
    assert_eq!(s["streams"], 1, "{s}");
    assert_eq!(s["latency_ms"]["samples"], 1, "{s}");
    let p50 = s["latency_ms"]["p50"].as_f64().unwrap();
    assert!((300.0..5000.0).contains(&p50), "{s}");

    assert_eq!(control(&r, "POST", "/down?seconds=1").0, 200);
    assert_eq!(push(&r, "while down"), 0, "pushes are refused while down");
    assert_eq!(stats(&r)["mode"], "down");
    let deadline = Instant::now() + Duration::from_secs(10);
    while push(&r, "back") != 204 {
        assert!(Instant::now() < deadline, "still down after 10 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(stats(&r)["entries"], 2);

    assert_eq!(control(&r, "POST", "/status?code=429").0, 200);
    assert_eq!(push(&r, "limited"), 429);
    assert_eq!(control(&r, "POST", "/status?code=abc").0, 400);
    assert_eq!(control(&r, "POST", "/up").0, 200);
    assert_eq!(control(&r, "POST", "/reset").0, 200);
    let s = stats(&r);
    assert_eq!(
        (s["entries"].as_u64(), s["requests"].as_u64()),
        (Some(0), Some(0)),
        "{s}"
    );
    assert_eq!(control(&r, "GET", "/nope").0, 404);
}
