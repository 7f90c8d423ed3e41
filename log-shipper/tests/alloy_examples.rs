//! The example configs in Alloy's syntax (`examples/*.alloy`) and the
//! promtail ones converted by `-config.print-alloy` must push exactly what
//! the YAML examples push: the same streams, labels, lines, timestamps and
//! structured metadata as `tests/fixtures/examples/golden/<config>.jsonl`
//! (which `golden_examples.rs` checks the YAML form against).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{case, environment, example, golden, rfc3339, run, Ports};
use e2e_tests::loki_receiver::LokiReceiver;
use e2e_tests::process::{free_port, wait_until, Process};

/// Runs the Alloy config `alloy` over the fixtures and compares what
/// arrives with the YAML example `yaml`'s golden file.
fn check(alloy: &Path, yaml: &str) {
    let got = run(case(yaml), alloy, true);
    let want = std::fs::read_to_string(golden(yaml)).unwrap();
    assert!(
        got == want,
        "{}: what arrived differs from {yaml}'s golden file:\n--- want\n{want}\n--- got\n{got}",
        alloy.display()
    );
}

/// Both forms of one example: the hand-written `.alloy` next to the YAML,
/// and the YAML converted by `-config.print-alloy`.
fn both(yaml: &str) {
    check(&example(&yaml.replace(".yaml", ".alloy")), yaml);
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_log-shipper"));
    cmd.arg(format!("-config.file={}", example(yaml).display()))
        .arg("-config.expand-env=true")
        .arg("-config.print-alloy");
    // The converted file holds the values as expanded at conversion; the
    // receiver's URL and the ports are known only in run(), so
    // placeholders go in and become env() calls below.
    environment(
        &mut cmd,
        "http://push.invalid/loki/api/v1/push",
        case(yaml),
        &Ports { listen: 1 },
    );
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{yaml}: -config.print-alloy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)
        .unwrap()
        .replace(
            "\"http://push.invalid/loki/api/v1/push\"",
            "env(\"LOKI_PUSH_URL\")",
        )
        .replace(
            "address = \"127.0.0.1:1\"",
            &format!("address = env(\"{}\")", listen_variable(yaml)),
        )
        .replace(
            "listen_port = 1\n",
            "listen_port = encoding.from_json(env(\"PUSH_API_PORT\"))\n",
        );
    assert!(text.contains("env(\"LOKI_PUSH_URL\")"), "{text}");
    let converted = dir.path().join(yaml.replace(".yaml", ".converted.alloy"));
    std::fs::write(&converted, text).unwrap();
    check(&converted, yaml);
}

/// The variable a receiver example's listen address comes from.
fn listen_variable(yaml: &str) -> &'static str {
    match yaml {
        "gelf.yaml" => "GELF_LISTEN_ADDRESS",
        _ => "SYSLOG_LISTEN_ADDRESS",
    }
}

#[test]
fn nginx_in_alloy_form() {
    both("nginx.yaml");
}

#[test]
fn apache_in_alloy_form() {
    both("apache.yaml");
}

#[test]
fn auth_in_alloy_form() {
    both("auth.yaml");
}

#[test]
fn services_in_alloy_form() {
    both("services.yaml");
}

#[test]
fn container_files_in_alloy_form() {
    both("containers-files.yaml");
}

#[test]
fn syslog_in_alloy_form() {
    both("syslog.yaml");
}

#[test]
fn push_api_in_alloy_form() {
    both("push-api.yaml");
}

#[test]
fn gelf_in_alloy_form() {
    both("gelf.yaml");
}

/// Every example has its Alloy form, and it is valid (docker and the
/// journal need a daemon to run, so those are only checked), and reads
/// into the same scrape configs and clients as the YAML.
#[test]
fn every_example_has_a_valid_alloy_form() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut n = 0;
    for f in std::fs::read_dir(&dir).unwrap() {
        let path = f.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        n += 1;
        let alloy = path.with_extension("alloy");
        assert!(alloy.exists(), "{} has no Alloy form", path.display());
        let out = Command::new(env!("CARGO_BIN_EXE_log-shipper"))
            .arg(format!("-config.file={}", alloy.display()))
            .arg("-check-config")
            .env("HOSTNAME", "web1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}{}",
            alloy.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Alloy's GELF source labels entries job = its component id, which
        // its form replaces by a rule: other config, the same pushes
        // (gelf_in_alloy_form).
        if path.ends_with("gelf.yaml") {
            continue;
        }
        // The pipelines, targets, relabeling and clients must be the YAML's
        // (job names differ: Alloy's are component ids).
        let print = |args: &[String]| {
            let out = Command::new(env!("CARGO_BIN_EXE_log-shipper"))
                .args(args)
                .arg("-check-syntax")
                .arg("-print-config-stderr")
                .env("HOSTNAME", "web1")
                .env("LOKI_PUSH_URL", "http://loki:3100/loki/api/v1/push")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stderr).into_owned();
            let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
            let mut scrapes = v["scrape_configs"].clone();
            for s in scrapes.as_sequence_mut().unwrap() {
                s.as_mapping_mut().unwrap().remove("job_name");
            }
            (scrapes, v["clients"].clone())
        };
        let from_yaml = print(&[
            format!("-config.file={}", path.display()),
            "-config.expand-env".into(),
        ]);
        let from_alloy = print(&[format!("-config.file={}", alloy.display())]);
        assert_eq!(from_yaml, from_alloy, "{}", alloy.display());
    }
    assert!(n >= 10, "only {n} example configs");
}

fn docs_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/alloy")
        .join(name)
}

/// The reference docs' examples (rewritten as fixtures) are valid configs.
#[test]
fn alloy_reference_examples_parse() {
    for f in [
        "file_and_write.alloy",
        "journal.alloy",
        "docker.alloy",
        "relabel_and_fanin.alloy",
        "echo.alloy",
        "relabel.alloy",
        "syslog.alloy",
        "api.alloy",
        "gelf.alloy",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_log-shipper"))
            .arg(format!("-config.file={}", docs_fixture(f).display()))
            .arg("-check-config")
            .env("APP_LOG_DIR", "/nonexistent")
            .env("LOKI_PUSH_URL", "http://loki:3100/loki/api/v1/push")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The docs' file pipeline runs: JSON parsed, a debug line dropped, the
/// level a label, the user structured metadata, the message the line with
/// the password masked, the line's own time, external labels added.
#[test]
fn alloy_reference_file_pipeline_runs() {
    let logs = tempfile::tempdir().unwrap();
    std::fs::write(
        logs.path().join("app.log"),
        concat!(
            r#"{"level":"info","message":"login password=hunter2 ok","time":"2024-03-05T10:15:30Z","user":"alice"}"#,
            "\n",
            r#"{"level":"debug","message":"noise","time":"2024-03-05T10:15:31Z","user":"bob"}"#,
            "\n",
            r#"{"level":"error","message":"disk full","time":"2024-03-05T10:15:32Z","user":"carol"}"#,
            "\n",
        ),
    )
    .unwrap();
    // The debug line would come in the same batch as the others.
    let (receiver, _) = run_docs_fixture(
        "file_and_write.alloy",
        &[("APP_LOG_DIR", logs.path().display().to_string())],
        |_| {},
        2,
    );
    let mut got: Vec<String> = receiver
        .streams()
        .iter()
        .flat_map(|s| {
            s.entries.iter().map(move |e| {
                format!(
                    "{:?} {} {:?} {}",
                    s.labels
                        .iter()
                        .filter(|(k, _)| *k != "filename")
                        .collect::<Vec<_>>(),
                    rfc3339(e.timestamp_ns),
                    e.structured_metadata,
                    e.line
                )
            })
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            r#"[("cluster", "docs"), ("env", "dev"), ("level", "error"), ("service", "app")] 2024-03-05T10:15:32Z [("user", "carol")] disk full"#,
            r#"[("cluster", "docs"), ("env", "dev"), ("level", "info"), ("service", "app")] 2024-03-05T10:15:30Z [("user", "alice")] login password=**** ok"#,
        ]
    );
}

/// One pipeline forwarding to two `loki.write`: both get every entry, and
/// the file's position does not advance while one endpoint refuses the
/// pushes (the YAML form's guarantee with several clients).
#[test]
fn positions_wait_for_every_loki_write() {
    use e2e_tests::loki_receiver::Mode;
    let a = LokiReceiver::start();
    let b = LokiReceiver::start();
    b.set_mode(Mode::Status(500));
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("app.log");
    std::fs::write(&log, "one\ntwo\nthree\n").unwrap();
    let state = tempfile::tempdir().unwrap();
    let positions = state.path().join("positions.yaml");
    let config = state.path().join("config.alloy");
    std::fs::write(
        &config,
        format!(
            r#"
loki.source.file "app" {{
  targets    = [{{ __path__ = {path:?}, job = "app" }}]
  forward_to = [loki.process.p.receiver]
}}
loki.process "p" {{
  forward_to = [loki.write.a.receiver, loki.write.b.receiver]
  stage.static_labels {{
    values = {{ via = "alloy" }}
  }}
}}
loki.write "a" {{
  endpoint {{
    url        = {a:?}
    batch_wait = "100ms"
  }}
}}
loki.write "b" {{
  endpoint {{
    url                 = {b:?}
    batch_wait          = "100ms"
    min_backoff_period  = "100ms"
    max_backoff_period  = "200ms"
    max_backoff_retries = 1000
  }}
}}
"#,
            path = log.display().to_string(),
            a = a.push_url(),
            b = b.push_url(),
        ),
    )
    .unwrap();
    let shipper = start_saving_positions(&config, &positions);
    assert!(
        a.wait_for_entries(3, Duration::from_secs(30)),
        "{}",
        shipper.log_tail(30)
    );
    held_while_b_refuses(&shipper, &b, &positions, &log, 3, 14);
    drop(shipper);
    for r in [&a, &b] {
        let streams = r.streams();
        assert_eq!(streams.len(), 1);
        assert_eq!(streams[0].labels["via"], "alloy");
        assert_eq!(r.lines(), ["one", "two", "three"]);
    }
}

/// Runs a docs fixture with `env` into a fresh Loki test receiver, calls
/// `feed` with the shipper running, waits for `n` entries and a moment for
/// more, and returns the receiver and the shipper's output.
fn run_docs_fixture(
    name: &str,
    env: &[(&str, String)],
    feed: impl FnOnce(&LokiReceiver),
    n: usize,
) -> (LokiReceiver, String) {
    let receiver = common::backfill_receiver();
    let state = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_log-shipper"));
    cmd.arg(format!("-config.file={}", docs_fixture(name).display()))
        .arg(format!(
            "-positions.file={}",
            state.path().join("positions.yaml").display()
        ))
        .arg(format!("-server.http-listen-port={}", free_port()))
        .env("LOKI_PUSH_URL", receiver.push_url());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let shipper = Process::spawn("log-shipper", cmd, tempfile::tempdir().unwrap());
    feed(&receiver);
    assert!(
        receiver.wait_for_entries(n, Duration::from_secs(30)),
        "{name}: {} of {n} entries\n{}",
        receiver.entry_count(),
        shipper.log_tail(30)
    );
    std::thread::sleep(Duration::from_secs(1));
    let log = shipper.log();
    drop(shipper);
    assert!(receiver.problems().is_empty(), "{:?}", receiver.problems());
    (receiver, log)
}

/// Every stream's labels and lines, sorted: `labels line` per entry.
fn pushed(receiver: &LokiReceiver) -> Vec<String> {
    let mut out: Vec<String> = receiver
        .streams()
        .iter()
        .flat_map(|s| {
            s.entries
                .iter()
                .map(move |e| format!("{:?} {}", s.labels, e.line))
        })
        .collect();
    out.sort();
    out
}

/// The loki.relabel docs example in a chain: only error lines reach
/// Loki, relabeled; loki.echo prints every line, as read.
#[test]
fn alloy_reference_relabel_and_echo_run() {
    let logs = tempfile::tempdir().unwrap();
    std::fs::write(
        logs.path().join("app.log"),
        "level=info msg=started\nlevel=error msg=\"disk full\"\nlevel=debug msg=tick\nlevel=error msg=\"retry failed\"\n",
    )
    .unwrap();
    let glob = format!("{}/*.log", logs.path().display());
    let (receiver, out) = run_docs_fixture(
        "relabel.alloy",
        &[("APP_LOG_GLOB", glob.clone())],
        |_| {},
        2,
    );
    assert_eq!(
        pushed(&receiver),
        [
            r#"{"app": "app", "level": "error"} level=error msg="disk full""#,
            r#"{"app": "app", "level": "error"} level=error msg="retry failed""#,
        ]
    );
    for line in [
        "msg=started",
        "msg=\"disk full\"",
        "msg=tick",
        "msg=\"retry failed\"",
    ] {
        assert!(
            out.lines()
                .any(|l| l.contains("service=\"app\"") && l.ends_with(line)),
            "loki.echo did not print {line}:\n{out}"
        );
    }
    // The docs' echo example alone: every line printed, nothing pushed.
    let (receiver, out) = {
        let receiver = LokiReceiver::start();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_log-shipper"));
        let state = tempfile::tempdir().unwrap();
        cmd.arg(format!(
            "-config.file={}",
            docs_fixture("echo.alloy").display()
        ))
        .arg(format!(
            "-positions.file={}",
            state.path().join("positions.yaml").display()
        ))
        .arg(format!("-server.http-listen-port={}", free_port()))
        .env("APP_LOG_GLOB", &glob);
        let shipper = Process::spawn("log-shipper", cmd, tempfile::tempdir().unwrap());
        wait_until("4 lines echoed", Duration::from_secs(30), || {
            Ok(shipper.log().matches("job=\"varlog\"").count() >= 4)
        })
        .unwrap();
        let log = shipper.log();
        drop(shipper);
        (receiver, log)
    };
    assert_eq!(receiver.requests(), 0);
    assert!(out.contains("level=debug msg=tick"), "{out}");
}

/// The syslog docs example: a message over TCP and one over UDP, each
/// with its listener's labels.
#[test]
fn alloy_reference_syslog_runs() {
    use std::io::Write as _;
    let (tcp, udp) = (free_port(), free_port());
    let (receiver, _) = run_docs_fixture(
        "syslog.alloy",
        &[
            ("SYSLOG_TCP_ADDRESS", format!("127.0.0.1:{tcp}")),
            ("SYSLOG_UDP_ADDRESS", format!("127.0.0.1:{udp}")),
        ],
        |receiver| {
            let msg = "<13>1 2024-03-05T10:15:30Z web1 app 1 - - over tcp";
            let mut s = common::connect(tcp);
            write!(s, "{} {msg}", msg.len()).unwrap();
            s.flush().unwrap();
            send_udp_until_arrived(
                receiver,
                udp,
                b"<13>1 2024-03-05T10:15:31Z web1 app 1 - - over udp",
                "over udp",
            );
        },
        2,
    );
    let got = pushed(&receiver);
    assert!(
        got.contains(
            &r#"{"component": "loki.source.syslog", "protocol": "tcp"} over tcp"#.to_string()
        ),
        "{got:?}"
    );
    assert!(
        got.contains(
            &r#"{"component": "loki.source.syslog", "protocol": "udp"} over udp"#.to_string()
        ),
        "{got:?}"
    );
}

/// The push API docs example: a pushed stream arrives with its labels
/// and `forwarded="true"`.
#[test]
fn alloy_reference_api_runs() {
    use std::io::{Read as _, Write as _};
    let port = free_port();
    let (receiver, _) = run_docs_fixture(
        "api.alloy",
        &[("API_PORT", port.to_string())],
        |_| {
            let body = r#"{"streams":[{"stream":{"app":"shop"},"values":[["1709633730000000000","pushed line"]]}]}"#;
            let mut s = common::connect(port);
            write!(
                s,
                "POST /loki/api/v1/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let mut answer = String::new();
            s.read_to_string(&mut answer).unwrap();
            assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
        },
        1,
    );
    assert_eq!(
        pushed(&receiver),
        [r#"{"app": "shop", "forwarded": "true"} pushed line"#]
    );
}

/// The GELF docs example: the sending host a label through the
/// loki.relabel's rules, and Alloy's job label (the component's id).
#[test]
fn alloy_reference_gelf_runs() {
    let port = free_port();
    let (receiver, _) = run_docs_fixture(
        "gelf.alloy",
        &[("GELF_ADDRESS", format!("127.0.0.1:{port}"))],
        |receiver| {
            send_udp_until_arrived(
                receiver,
                port,
                br#"{"version":"1.1","host":"web3","short_message":"hello gelf","level":6}"#,
                "hello gelf",
            )
        },
        1,
    );
    // The line is the message as JSON (promtail's and Alloy's).
    let got = pushed(&receiver);
    assert!(
        got.iter().any(|e| e
            .starts_with(r#"{"host": "web3", "job": "loki.source.gelf.listen"} {"#)
            && e.contains(r#""short_message":"hello gelf""#)),
        "{got:?}"
    );
}

/// UDP has no connection to wait for: `msg` is sent again until a line
/// containing `line` arrives (a datagram sent before the listener binds is
/// lost).
fn send_udp_until_arrived(receiver: &LokiReceiver, port: u16, msg: &[u8], line: &str) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    wait_until("the UDP message arrives", Duration::from_secs(30), || {
        sock.send_to(msg, ("127.0.0.1", port)).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        Ok(receiver.lines().iter().any(|l| l.contains(line)))
    })
    .unwrap();
}

/// Partial fan-out: file `x` goes through a loki.relabel to loki.write
/// `a` and, as read, to loki.write `b`; file `y` goes to `a` only. While
/// `b` refuses, `x`'s position holds and `y`'s advances (`b` is not
/// reachable from it); once `b` accepts, `x`'s reaches its end too.
#[test]
fn positions_wait_for_the_loki_writes_each_source_reaches() {
    use e2e_tests::loki_receiver::Mode;
    let a = LokiReceiver::start();
    let b = LokiReceiver::start();
    b.set_mode(Mode::Status(500));
    let logs = tempfile::tempdir().unwrap();
    let (x, y) = (logs.path().join("x.log"), logs.path().join("y.log"));
    std::fs::write(&x, "one\ntwo\nthree\n").unwrap();
    std::fs::write(&y, "alpha\nbeta\n").unwrap();
    let state = tempfile::tempdir().unwrap();
    let positions = state.path().join("positions.yaml");
    let config = state.path().join("config.alloy");
    let endpoint = |url: String| {
        format!(
            "  endpoint {{\n    url = {url:?}\n    batch_wait = \"100ms\"\n    min_backoff_period = \"100ms\"\n    max_backoff_period = \"200ms\"\n    max_backoff_retries = 1000\n  }}\n"
        )
    };
    std::fs::write(
        &config,
        format!(
            r#"
loki.source.file "x" {{
  targets    = [{{ __path__ = {x:?}, job = "x" }}]
  forward_to = [loki.relabel.tag.receiver, loki.write.b.receiver]
}}
loki.source.file "y" {{
  targets    = [{{ __path__ = {y:?}, job = "y" }}]
  forward_to = [loki.write.a.receiver]
}}
loki.relabel "tag" {{
  forward_to = [loki.write.a.receiver]
  rule {{
    target_label = "via"
    replacement  = "relabel"
  }}
}}
loki.write "a" {{
{a}}}
loki.write "b" {{
{b}}}
"#,
            x = x.display().to_string(),
            y = y.display().to_string(),
            a = endpoint(a.push_url()),
            b = endpoint(b.push_url()),
        ),
    )
    .unwrap();
    let shipper = start_saving_positions(&config, &positions);
    assert!(
        a.wait_for_entries(5, Duration::from_secs(30)),
        "{}",
        shipper.log_tail(30)
    );
    wait_until(
        "y's position reaches its end",
        Duration::from_secs(10),
        || Ok(saved_offset(&positions, &y) == Some(11)),
    )
    .unwrap();
    held_while_b_refuses(&shipper, &b, &positions, &x, 3, 14);
    drop(shipper);
    let streams = |r: &LokiReceiver| -> Vec<String> {
        let mut out: Vec<String> = r
            .streams()
            .iter()
            .map(|s| {
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .filter(|(k, _)| *k != "filename")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let lines: Vec<&str> = s.entries.iter().map(|e| e.line.as_str()).collect();
                format!("{} {}", labels.join(","), lines.join(","))
            })
            .collect();
        out.sort();
        out
    };
    assert_eq!(
        streams(&a),
        ["job=x,via=relabel one,two,three", "job=y alpha,beta"]
    );
    assert_eq!(streams(&b), ["job=x one,two,three"]);
}

/// `tail_from_end = true`: a file there at the start without a saved
/// position is read from its last complete line's end (its backlog is not
/// shipped; a partial last line is, once complete); a file appearing later
/// is read from its start.
#[test]
fn tail_from_end_skips_the_backlog_of_files_found_at_start() {
    use std::io::Write as _;
    let receiver = LokiReceiver::start();
    let logs = tempfile::tempdir().unwrap();
    let old = logs.path().join("old.log");
    std::fs::write(&old, "backlog 1\nbacklog 2\npart").unwrap();
    let state = tempfile::tempdir().unwrap();
    let config = state.path().join("config.alloy");
    std::fs::write(
        &config,
        format!(
            r#"
local.file_match "logs" {{
  path_targets = [{{ __path__ = {glob:?} }}]
  sync_period  = "200ms"
}}
loki.source.file "logs" {{
  targets       = local.file_match.logs.targets
  forward_to    = [loki.write.default.receiver]
  tail_from_end = true
}}
loki.write "default" {{
  endpoint {{
    url        = {url:?}
    batch_wait = "100ms"
  }}
}}
"#,
            glob = format!("{}/*.log", logs.path().display()),
            url = receiver.push_url(),
        ),
    )
    .unwrap();
    let positions = state.path().join("positions.yaml");
    let shipper = start_saving_positions(&config, &positions);
    // Appended to only once its reader started where tail_from_end says
    // (the saved position shows it).
    wait_until("old.log is read from 20", Duration::from_secs(30), || {
        Ok(saved_offset(&positions, &old) == Some(20))
    })
    .unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&old).unwrap();
    f.write_all(b"ial\nafter start\n").unwrap();
    std::fs::write(logs.path().join("new.log"), "new file 1\nnew file 2\n").unwrap();
    assert!(
        receiver.wait_for_entries(4, Duration::from_secs(30)),
        "{}",
        shipper.log_tail(30)
    );
    std::thread::sleep(Duration::from_secs(1));
    drop(shipper);
    let mut lines = receiver.lines();
    lines.sort();
    assert_eq!(
        lines,
        ["after start", "new file 1", "new file 2", "partial"]
    );
}

/// The shipper on `config`, saving positions to `positions` every 100ms.
fn start_saving_positions(config: &Path, positions: &Path) -> Process {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_log-shipper"));
    cmd.arg(format!("-config.file={}", config.display()))
        .arg(format!("-positions.file={}", positions.display()))
        .arg("-positions.sync-period=100ms")
        .arg(format!("-server.http-listen-port={}", free_port()));
    Process::spawn("log-shipper", cmd, tempfile::tempdir().unwrap())
}

/// `file`'s offset in the positions file, once saved.
fn saved_offset(positions: &Path, file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(positions).ok()?;
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).ok()?;
    v["positions"][file.display().to_string().as_str()]
        .as_str()?
        .parse()
        .ok()
}

/// With receiver `b` refusing (status 500): `file`'s saved position stays
/// at 0 over several syncs and retries; once `b` accepts, it gets
/// `entries` and the position reaches `end`.
fn held_while_b_refuses(
    shipper: &Process,
    b: &LokiReceiver,
    positions: &Path,
    file: &Path,
    entries: usize,
    end: u64,
) {
    std::thread::sleep(Duration::from_secs(2));
    assert!(b.requests() > 1, "b was not retried");
    assert_eq!(
        saved_offset(positions, file).unwrap_or(0),
        0,
        "advanced past entries b refused"
    );
    b.set_mode(e2e_tests::loki_receiver::Mode::Accept);
    assert!(
        b.wait_for_entries(entries, Duration::from_secs(30)),
        "{}",
        shipper.log_tail(30)
    );
    wait_until(
        "the position reaches the end",
        Duration::from_secs(10),
        || Ok(saved_offset(positions, file) == Some(end)),
    )
    .unwrap();
}
