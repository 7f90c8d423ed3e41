//! The Loki test receiver as a process, for benchmarks (`bench/shipper.py`):
//!
//!     cargo run --release -p e2e-tests --example loki_bench_receiver -- \
//!         [--listen 127.0.0.1:0] [--control 127.0.0.1:0] \
//!         [--latency-marker wts=] [--keep-entries]
//!
//! Pushes (`POST /loki/api/v1/push`, protobuf + snappy or JSON) are decoded
//! and checked as in the tests, but only counted unless `--keep-entries`.
//! Once both ports are bound it prints one JSON line on stdout:
//! `{"push_url": "http://127.0.0.1:P/loki/api/v1/push", "control": "http://127.0.0.1:Q"}`.
//!
//! The control port (its own, so it answers while pushes are refused):
//! - `GET /stats`: counters (entries stored, and duplicates dropped as Loki
//!   drops an entry identical in stream, timestamp and line to one stored),
//!   stream count, problems (entries out of order),
//!   write-to-acknowledge latency percentiles in ms, the mode
//! - `POST /down?seconds=N`: refuse connections for N seconds (for good
//!   without `seconds`); `POST /up`: accept again
//! - `POST /status?code=429`: answer every push with that status
//! - `POST /reset`: forget counters, streams and latencies

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use e2e_tests::loki_receiver::{Limits, LokiReceiver, Mode, Options};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loki_bench_receiver: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut options = Options {
        keep_entries: false,
        // A Loki set up for a load test: its 4 MB/s default tenant rate
        // would measure the limit, not the shippers.
        limits: Limits::none(),
        ..Options::default()
    };
    let mut control: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let addr = |v: String| {
            v.parse::<SocketAddr>()
                .map_err(|e| format!("{name} {v:?}: {e}"))
        };
        match name.trim_start_matches('-') {
            "listen" => options.listen = addr(value()?)?,
            "control" => control = addr(value()?)?,
            "latency-marker" => options.latency_marker = Some(value()?),
            "keep-entries" => options.keep_entries = true,
            "help" | "h" => {
                println!("{}", HELP.trim());
                return Ok(());
            }
            _ => return Err(format!("unknown argument {arg:?}\n{}", HELP.trim())),
        }
    }
    let receiver = Arc::new(
        LokiReceiver::start_with(options.clone())
            .map_err(|e| format!("binding {}: {e}", options.listen))?,
    );
    let listener = TcpListener::bind(control).map_err(|e| format!("binding {control}: {e}"))?;
    let control = listener.local_addr().map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::json!({
            "push_url": receiver.push_url(),
            "control": format!("http://{control}"),
        })
    );
    let _ = std::io::stdout().flush();
    // Which down/up order is current, so an old timer does not undo a newer one.
    let generation = Arc::new(AtomicU64::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let receiver = Arc::clone(&receiver);
        let generation = Arc::clone(&generation);
        std::thread::spawn(move || {
            if let Err(e) = serve(stream, &receiver, &generation) {
                eprintln!("loki_bench_receiver: control request: {e}");
            }
        });
    }
    Ok(())
}

const HELP: &str = "
usage: loki_bench_receiver [--listen ADDR] [--control ADDR] [--latency-marker TEXT] [--keep-entries]
  --listen ADDR          where pushes are served (default 127.0.0.1:0)
  --control ADDR         where /stats, /down, /up, /status, /reset are served (default 127.0.0.1:0)
  --latency-marker TEXT  lines with TEXT followed by nanoseconds since the epoch are timed
  --keep-entries         keep every entry (default: count only)
";

/// One control request (HTTP/1.1, answered with `Connection: close`).
fn serve(
    mut stream: TcpStream,
    receiver: &Arc<LokiReceiver>,
    generation: &Arc<AtomicU64>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Skip the headers; control requests carry no body.
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let param = |key: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    };
    let (status, body) = match (method, path) {
        ("GET", "/stats") => (200, stats(receiver).to_string()),
        ("POST", "/down") => match param("seconds").map(|s| s.parse::<f64>()) {
            Some(Err(_)) => (400, "seconds must be a number\n".into()),
            Some(Ok(s)) if !(s.is_finite() && s >= 0.0) => {
                (400, "seconds must be a number\n".into())
            }
            secs => {
                let mine = generation.fetch_add(1, Ordering::SeqCst) + 1;
                receiver.set_mode(Mode::Down);
                if let Some(Ok(s)) = secs {
                    let receiver = Arc::clone(receiver);
                    let generation = Arc::clone(generation);
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_secs_f64(s));
                        if generation.load(Ordering::SeqCst) == mine {
                            receiver.set_mode(Mode::Accept);
                        }
                    });
                }
                (200, "down\n".into())
            }
        },
        ("POST", "/up") => {
            generation.fetch_add(1, Ordering::SeqCst);
            receiver.set_mode(Mode::Accept);
            (200, "up\n".into())
        }
        ("POST", "/status") => match param("code").and_then(|c| c.parse::<u16>().ok()) {
            Some(code) if (100..600).contains(&code) => {
                generation.fetch_add(1, Ordering::SeqCst);
                receiver.set_mode(Mode::Status(code));
                (200, format!("answering {code}\n"))
            }
            _ => (400, "code must be an HTTP status\n".into()),
        },
        ("POST", "/reset") => {
            receiver.clear();
            (200, "reset\n".into())
        }
        _ => (404, "404 page not found\n".into()),
    };
    write!(
        stream,
        "HTTP/1.1 {status} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        if status == 200 { "OK" } else { "Error" },
        if body.starts_with('{') { "application/json" } else { "text/plain" },
        body.len()
    )?;
    stream.flush()
}

fn stats(receiver: &LokiReceiver) -> serde_json::Value {
    let c = receiver.counts();
    let lat = receiver.latencies_us();
    let pct = |q: f64| -> Option<f64> {
        if lat.is_empty() {
            return None;
        }
        // Nearest rank.
        let rank = ((lat.len() as f64) * q / 100.0).ceil().max(1.0) as usize;
        Some(lat[rank.min(lat.len()) - 1] as f64 / 1000.0)
    };
    let mode = match receiver.mode() {
        Mode::Accept => "accept".to_string(),
        Mode::Status(c) => format!("status {c}"),
        Mode::Hang => "hang".to_string(),
        Mode::Down => "down".to_string(),
    };
    let problems: Vec<String> = receiver.problems().into_iter().take(5).collect();
    serde_json::json!({
        "mode": mode,
        "requests": c.requests,
        "accepted_requests": c.accepted_requests,
        "rejected_bad_body": c.rejected_bad_body,
        "entries": c.entries,
        "duplicates_dropped": c.duplicates_dropped,
        "line_bytes": c.line_bytes,
        "body_bytes": c.body_bytes,
        "streams": c.streams,
        "problems": c.problems,
        "first_problems": problems,
        "latency_ms": {
            "samples": lat.len(),
            "p50": pct(50.0),
            "p90": pct(90.0),
            "p99": pct(99.0),
            "max": lat.last().map(|m| *m as f64 / 1000.0),
        },
    })
}
