//! promtail's debugging tools in the real binary: `-inspect` printing what
//! each stage of a several-stage pipeline changed, and the
//! `/service-discovery`, `/config` and `/targets` pages.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use e2e_tests::loki_receiver::LokiReceiver;
use e2e_tests::process::{free_port, wait_until, Process};

fn get(port: u16, path: &str) -> String {
    ureq::get(&format!("http://127.0.0.1:{port}{path}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .into_string()
        .unwrap()
}

fn start(dir: &Path, port: u16, config: &str, args: &[&str]) -> Process {
    let path = dir.join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_log-shipper"));
    cmd.arg(format!("-config.file={}", path.display()))
        .args(args)
        .env("NO_COLOR", "1");
    let p = Process::spawn("log-shipper", cmd, tempfile::tempdir().unwrap());
    wait_until("/ready", Duration::from_secs(20), || {
        Ok(ureq::get(&format!("http://127.0.0.1:{port}/ready"))
            .call()
            .is_ok())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", p.log_tail(30)));
    p
}

/// The inspection lines of a log: headers and the diff lines under them.
fn inspection(log: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for l in log.lines() {
        if l.starts_with("[inspect: ") {
            inside = true;
        } else if !(inside && (l.starts_with("{stages.Entry}") || l.starts_with('\t'))) {
            inside = false;
            continue;
        }
        out.push(l.to_string());
    }
    out
}

#[test]
fn inspect_prints_each_stages_changes_as_promtail() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    std::fs::write(
        dir.path().join("logs/app.log"),
        "2024-03-01T10:00:00Z level=warn msg=\"disk full\" user=bob tags=a,b\n\
         2024-03-01T10:00:01Z level=debug msg=\"noise\" user=amy tags=c\n",
    )
    .unwrap();
    // The lines carry fixed times from 2024 (no test may depend on today's date).
    let r = LokiReceiver::start_accepting_old_samples();
    let port = free_port();
    let config = format!(
        r#"server: {{http_listen_address: 127.0.0.1, http_listen_port: {port}}}
positions: {{filename: {pos}}}
clients: [{{url: {url}, batchwait: 100ms}}]
scrape_configs:
  - job_name: app
    static_configs:
      - targets: [localhost]
        labels: {{job: app, __path__: {logs}/*.log}}
    pipeline_stages:
      - regex:
          expression: '^(?P<time>\S+) level=(?P<level>\w+) msg="(?P<msg>[^"]*)" user=(?P<user>\w+) tags=(?P<tags>\S+)$'
      - labels: {{level: ""}}
      - drop: {{source: level, value: debug}}
      - timestamp: {{source: time, format: RFC3339}}
      - template:
          source: msg
          template: '{{{{ $m := .msg }}}}{{{{ range splitList "," .tags }}}}[{{{{ . }}}}]{{{{ end }}}} {{{{ ToUpper $m }}}}'
      - output: {{source: msg}}
      - structured_metadata: {{user: ""}}
"#,
        pos = dir.path().join("positions.yaml").display(),
        url = r.push_url(),
        logs = dir.path().join("logs").display(),
    );
    let shipper = start(dir.path(), port, &config, &["-inspect"]);
    assert!(r.wait_for_entries(1, Duration::from_secs(20)));
    wait_until("both lines inspected", Duration::from_secs(10), || {
        Ok(inspection(&shipper.log())
            .iter()
            .filter(|l| l.starts_with("[inspect: drop stage]"))
            .count()
            == 2)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", shipper.log_tail(60)));
    let got = inspection(&shipper.log());
    // The time the line was read, before the timestamp stage set it.
    let read_at = got
        .iter()
        .position(|l| l == "{stages.Entry}.Entry.Entry.Timestamp:")
        .map(|i| got[i + 1].clone())
        .unwrap_or_else(|| panic!("{got:#?}"));
    let read_at_value = read_at.trim_start_matches("\t-: ");
    assert!(
        read_at_value.ends_with(" +0000 UTC") && read_at_value.len() >= 29,
        "Go's time format: {read_at:?}"
    );
    let first_line = "2024-03-01T10:00:00Z level=warn msg=\"disk full\" user=bob tags=a,b";
    let expected = [
        "[inspect: regex stage]: ",
        "{stages.Entry}.Extracted[\"level\"]:",
        "\t+: warn",
        "{stages.Entry}.Extracted[\"msg\"]:",
        "\t+: disk full",
        "{stages.Entry}.Extracted[\"tags\"]:",
        "\t+: a,b",
        "{stages.Entry}.Extracted[\"time\"]:",
        "\t+: 2024-03-01T10:00:00Z",
        "{stages.Entry}.Extracted[\"user\"]:",
        "\t+: bob",
        "[inspect: labels stage]: ",
        "{stages.Entry}.Entry.Labels[\"level\"]:",
        "\t+: warn",
        "[inspect: drop stage]: none",
        "[inspect: timestamp stage]: ",
        "{stages.Entry}.Entry.Entry.Timestamp:",
        &read_at,
        "\t+: 2024-03-01 10:00:00 +0000 UTC",
        "[inspect: template stage]: ",
        "{stages.Entry}.Extracted[\"msg\"]:",
        "\t-: disk full",
        "\t+: [a][b] DISK FULL",
        "[inspect: output stage]: ",
        "{stages.Entry}.Entry.Entry.Line:",
        &format!("\t-: {first_line}"),
        "\t+: [a][b] DISK FULL",
        "[inspect: structured_metadata stage]: ",
        "{stages.Entry}.Entry.Entry.StructuredMetadata[\"user\"]:",
        "\t+: bob",
        // The second line stops at the drop stage.
        "[inspect: regex stage]: ",
        "{stages.Entry}.Extracted[\"level\"]:",
        "\t+: debug",
        "{stages.Entry}.Extracted[\"msg\"]:",
        "\t+: noise",
        "{stages.Entry}.Extracted[\"tags\"]:",
        "\t+: c",
        "{stages.Entry}.Extracted[\"time\"]:",
        "\t+: 2024-03-01T10:00:01Z",
        "{stages.Entry}.Extracted[\"user\"]:",
        "\t+: amy",
        "[inspect: labels stage]: ",
        "{stages.Entry}.Entry.Labels[\"level\"]:",
        "\t+: debug",
        "[inspect: drop stage]: dropped",
    ];
    assert_eq!(got, expected, "{}", shipper.log_tail(60));
    // Inspecting changes nothing in what is shipped.
    let streams = r.streams();
    assert_eq!(streams.len(), 1, "{streams:?}");
    assert_eq!(
        streams[0].labels.get("level").map(String::as_str),
        Some("warn")
    );
    let e = &streams[0].entries;
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].line, "[a][b] DISK FULL");
    assert_eq!(
        e[0].structured_metadata,
        vec![("user".into(), "bob".into())]
    );
    assert_eq!(e[0].timestamp_ns, 1_709_287_200_000_000_000);
}

#[test]
fn service_discovery_config_and_targets_of_every_kind() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    std::fs::write(dir.path().join("logs/app.log"), "hello\n").unwrap();
    // The lines carry fixed times from 2024 (no test may depend on today's date).
    let r = LokiReceiver::start_accepting_old_samples();
    let (port, push_port, gelf_port, syslog_port) =
        (free_port(), free_port(), free_port(), free_port());
    let config = format!(
        r#"server: {{http_listen_address: 127.0.0.1, http_listen_port: {port}}}
positions: {{filename: {pos}}}
clients:
  - url: {url}
    batchwait: 100ms
    basic_auth: {{username: shipper, password: s3cret-pass}}
scrape_configs:
  - job_name: files
    static_configs:
      - targets: [kept, gone]
        labels: {{job: files, __path__: {logs}/*.log}}
    relabel_configs:
      - {{source_labels: [__address__], regex: gone, action: drop}}
  - job_name: push
    loki_push_api:
      server: {{http_listen_address: 127.0.0.1, http_listen_port: {push_port}, grpc_listen_port: 0}}
      labels: {{source: push}}
  - job_name: gelf
    gelf: {{listen_address: "127.0.0.1:{gelf_port}", labels: {{source: gelf}}}}
  - job_name: syslog
    syslog: {{listen_address: "127.0.0.1:{syslog_port}", labels: {{source: syslog}}}}
"#,
        pos = dir.path().join("positions.yaml").display(),
        url = r.push_url(),
        logs = dir.path().join("logs").display(),
    );
    let shipper = start(dir.path(), port, &config, &[]);
    let log = dir.path().join("logs/app.log").display().to_string();
    wait_until("the file target", Duration::from_secs(10), || {
        Ok(get(port, "/targets").contains(&log))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", shipper.log_tail(30)));

    let targets: serde_json::Value =
        serde_json::from_str(&get(port, "/targets?format=json")).unwrap();
    let kinds: Vec<(String, String, String)> = targets
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["job"].as_str().unwrap().to_string(),
                t["kind"].as_str().unwrap().to_string(),
                t["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("files".into(), "file".into(), log.clone()),
            (
                "gelf".into(),
                "gelf".into(),
                format!("127.0.0.1:{gelf_port}")
            ),
            (
                "push".into(),
                "loki_push_api".into(),
                format!("127.0.0.1:{push_port}")
            ),
            (
                "syslog".into(),
                "syslog".into(),
                format!("tcp://127.0.0.1:{syslog_port}")
            ),
        ]
    );
    assert_eq!(targets[3]["labels"]["source"], "syslog");
    let text = get(port, "/targets");
    assert!(
        text.contains(&format!(
            "  ready   gelf 127.0.0.1:{gelf_port} {{source=\"gelf\"}}"
        )),
        "{text}"
    );

    let sd: serde_json::Value =
        serde_json::from_str(&get(port, "/service-discovery?format=json")).unwrap();
    let sd = sd.as_array().unwrap();
    assert_eq!(sd.len(), 2, "{sd:?}");
    let by_address = |a: &str| {
        sd.iter()
            .find(|d| d["discovered_labels"]["__address__"] == a)
            .unwrap_or_else(|| panic!("{a} in {sd:?}"))
    };
    assert_eq!(by_address("kept")["target_labels"]["job"], "files");
    assert_eq!(
        by_address("kept")["discovered_labels"]["__path__"],
        format!("{}/*.log", dir.path().join("logs").display())
    );
    assert!(
        by_address("gone")["target_labels"].is_null(),
        "dropped by relabeling"
    );
    let text = get(port, "/service-discovery");
    assert!(
        text.starts_with("files (static_configs/file_sd_configs): 1 active / 2 discovered\n"),
        "{text}"
    );
    assert!(text.contains("      dropped\n"), "{text}");

    let shown = get(port, "/config");
    let parsed: serde_yaml_ng::Value = serde_yaml_ng::from_str(&shown).unwrap();
    assert_eq!(parsed["clients"][0]["basic_auth"]["password"], "<secret>");
    assert_eq!(parsed["clients"][0]["basic_auth"]["username"], "shipper");
    assert!(!shown.contains("s3cret-pass"), "{shown}");
    assert_eq!(parsed["scrape_configs"][1]["job_name"], "push");
    assert_eq!(parsed["server"]["http_listen_port"], port as u64);
}
