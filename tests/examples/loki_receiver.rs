//! The Loki test receiver as a program, for tests that are not Rust (the
//! Ansible deployment test, `ansible/tests/deploy_test.py`):
//!
//!     cargo run -p e2e-tests --example loki_receiver -- --listen 172.18.0.1:3100
//!
//! Prints `listening on http://ADDR` on stderr, then one JSON object per
//! entry it accepts on stdout: `{"labels":{..},"line":"..","structured_metadata":{..},"timestamp_ns":N}`,
//! in arrival order per stream. Runs until killed.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use e2e_tests::loki_receiver::{canonical, LokiReceiver};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listen = match args.as_slice() {
        [flag, addr] if flag == "--listen" => addr.clone(),
        [] => "127.0.0.1:3100".to_string(),
        _ => {
            eprintln!("usage: loki_receiver [--listen ADDR:PORT]");
            return ExitCode::from(2);
        }
    };
    let addr: SocketAddr = match listen.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loki_receiver: --listen {listen:?}: {e}");
            return ExitCode::from(2);
        }
    };
    let receiver = LokiReceiver::start_on(addr);
    eprintln!("listening on {}", receiver.base_url());

    // Entries already printed, per stream.
    let mut printed: HashMap<(Option<String>, String), usize> = HashMap::new();
    let mut problems_seen = 0;
    let stdout = std::io::stdout();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let mut out = stdout.lock();
        for stream in receiver.streams() {
            let key = (stream.tenant.clone(), canonical(&stream.labels));
            let done = printed.entry(key).or_insert(0);
            for entry in &stream.entries[*done..] {
                let obj = serde_json::json!({
                    "tenant": stream.tenant,
                    "labels": stream.labels,
                    "line": entry.line,
                    "structured_metadata": entry.structured_metadata.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                    "timestamp_ns": entry.timestamp_ns.to_string(),
                });
                if writeln!(out, "{obj}").is_err() {
                    return ExitCode::SUCCESS; // the reader went away
                }
            }
            *done = stream.entries.len();
        }
        if out.flush().is_err() {
            return ExitCode::SUCCESS;
        }
        let problems = receiver.problems();
        for problem in &problems[problems_seen.min(problems.len())..] {
            eprintln!("loki_receiver: {problem}");
        }
        problems_seen = problems.len();
    }
}
