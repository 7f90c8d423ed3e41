//! The log-shipper's journal source end to end: journal files written on
//! this machine by Debian's `systemd-journal-remote` (from export format we
//! generate, so timestamps and fields are ours to choose), read by the real
//! binary through journalctl, pushed into the Loki test receiver.
//! Restart from the saved cursor (nothing lost, nothing repeated), max_age,
//! matches, `json: true`, relabeling `__journal_*` fields, and the
//! `examples/auth-journal.yaml` config.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use e2e_tests::loki_receiver::{LokiReceiver, Mode, ReceivedStream};
use e2e_tests::process::{find_program, free_port, wait_until, workspace_root, Process};
use e2e_tests::shipper;
use serde_yaml_ng::Value as Yaml;

fn journal_remote_bin() -> PathBuf {
    find_program(
        "SYSTEMD_JOURNAL_REMOTE",
        &[
            PathBuf::from("/lib/systemd/systemd-journal-remote"),
            PathBuf::from("/usr/lib/systemd/systemd-journal-remote"),
        ],
        "install Debian's systemd-journal-remote (`make deps`)",
    )
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// A journal file we append entries to with systemd-journal-remote.
struct Journal {
    file: PathBuf,
    monotonic: u64,
}

impl Journal {
    /// `dir/<name>.journal` (created by the first append).
    fn new(dir: &Path, name: &str) -> Journal {
        std::fs::create_dir_all(dir).unwrap();
        Journal {
            file: dir.join(format!("{name}.journal")),
            monotonic: 1_000_000,
        }
    }

    /// Appends entries, each written at `realtime` (µs since the epoch).
    fn append(&mut self, entries: &[(u64, Vec<(&str, String)>)]) {
        let mut export = Vec::new();
        for (realtime, fields) in entries {
            self.monotonic += 1000;
            let head = format!(
                "__REALTIME_TIMESTAMP={realtime}\n__MONOTONIC_TIMESTAMP={}\n\
                 _BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=testhost\n",
                self.monotonic
            );
            export.extend_from_slice(head.as_bytes());
            for (k, v) in fields {
                if v.contains('\n') {
                    // The export format's binary form: name, LE64 size, data.
                    export.extend_from_slice(k.as_bytes());
                    export.push(b'\n');
                    export.extend_from_slice(&(v.len() as u64).to_le_bytes());
                    export.extend_from_slice(v.as_bytes());
                    export.push(b'\n');
                } else {
                    export.extend_from_slice(format!("{k}={v}\n").as_bytes());
                }
            }
            export.push(b'\n');
        }
        let mut child = Command::new(journal_remote_bin())
            .arg(format!("--output={}", self.file.display()))
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running systemd-journal-remote");
        child.stdin.take().unwrap().write_all(&export).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "systemd-journal-remote: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn service_entry(
    realtime: u64,
    unit: &str,
    ident: &str,
    prio: u8,
    msg: &str,
) -> (u64, Vec<(&'static str, String)>) {
    (
        realtime,
        vec![
            ("_SYSTEMD_UNIT", unit.to_string()),
            ("SYSLOG_IDENTIFIER", ident.to_string()),
            ("PRIORITY", prio.to_string()),
            ("_PID", "4242".to_string()),
            ("MESSAGE", msg.to_string()),
        ],
    )
}

/// The shipper config: promtail's format around one journal scrape config.
fn config(dir: &Path, receiver: &LokiReceiver, port: u16, scrape: &str) -> String {
    format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {port}\n  graceful_shutdown_timeout: 3s\n\
positions:\n  filename: {pos}\n\
clients:\n  - url: {url}\n    batchwait: 200ms\n\
scrape_configs:\n{scrape}",
        pos = dir.join("positions.yaml").display(),
        url = receiver.push_url(),
    )
}

fn counts(receiver: &LokiReceiver) -> HashMap<String, usize> {
    let mut c = HashMap::new();
    for l in receiver.lines() {
        *c.entry(l).or_insert(0) += 1;
    }
    c
}

fn wait_for_lines(receiver: &LokiReceiver, want: &[String], shipper: &Process) {
    wait_until(
        "every journal entry arrives",
        Duration::from_secs(30),
        || {
            let c = counts(receiver);
            let missing: Vec<&String> = want.iter().filter(|l| !c.contains_key(*l)).collect();
            match missing.first() {
                None => Ok(true),
                Some(first) => Err(format!("{} missing, e.g. {first:?}", missing.len())),
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", shipper.log_tail(30)));
}

fn numbered(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("j-{i:04}")).collect()
}

fn lines_entries(
    base_us: u64,
    range: std::ops::Range<u32>,
) -> Vec<(u64, Vec<(&'static str, String)>)> {
    range
        .map(|i| {
            let (unit, ident, prio) = if i % 2 == 0 {
                ("ssh.service", "sshd", 6)
            } else {
                ("cron.service", "CRON", 3)
            };
            service_entry(
                base_us + u64::from(i) * 1000,
                unit,
                ident,
                prio,
                &format!("j-{i:04}"),
            )
        })
        .collect()
}

#[test]
fn journal_restarts_from_its_cursor_without_loss_or_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("journal");
    let mut journal = Journal::new(&jdir, "host");
    let receiver = LokiReceiver::start();
    let port = free_port();
    let base = now_us() - 60_000_000;

    // Older than max_age: never read. Then 40 recent entries.
    let mut first = vec![service_entry(
        now_us() - 24 * 3600 * 1_000_000,
        "ssh.service",
        "sshd",
        6,
        "too-old",
    )];
    first.extend(lines_entries(base, 0..40));
    journal.append(&first);

    let scrape = [
        "  - job_name: systemd",
        "    journal:",
        "      max_age: 12h",
        &format!("      path: {}", jdir.display()),
        "      labels:",
        "        job: journal",
        "        host: ${HOSTNAME}",
        "    relabel_configs:",
        "      - source_labels: [__journal__systemd_unit]",
        "        target_label: unit",
        "      - source_labels: [__journal_priority_keyword]",
        "        target_label: level",
        "",
    ]
    .join("\n");
    let cfg = dir.path().join("shipper.yaml");
    std::fs::write(&cfg, config(dir.path(), &receiver, port, &scrape)).unwrap();

    let shipper = shipper::start(
        &cfg,
        port,
        &["-config.expand-env=true"],
        &[("HOSTNAME", "testhost")],
    );
    wait_for_lines(&receiver, &numbered(0..40), &shipper);

    // Labels from the journal fields, the entry's own time.
    let streams = receiver.streams();
    let by_line: BTreeMap<&str, (&ReceivedStream, i128)> = streams
        .iter()
        .flat_map(|s| {
            s.entries
                .iter()
                .map(move |e| (e.line.as_str(), (s, e.timestamp_ns)))
        })
        .collect();
    let (s, ts) = by_line["j-0000"];
    let want: BTreeMap<String, String> = [
        ("host", "testhost"),
        ("job", "journal"),
        ("level", "info"),
        ("unit", "ssh.service"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .into();
    assert_eq!(s.labels, want);
    assert_eq!(ts, i128::from(base) * 1000, "the journal entry's time");
    let (s, _) = by_line["j-0001"];
    assert_eq!(s.labels["unit"], "cron.service");
    assert_eq!(s.labels["level"], "error");
    assert!(
        !by_line.contains_key("too-old"),
        "max_age: an entry of 24h ago is not read"
    );

    // A clean stop records the cursor of the last delivered entry (the
    // 41st entry of the file) under promtail's key.
    shipper::stop(shipper);
    let positions = std::fs::read_to_string(dir.path().join("positions.yaml")).unwrap();
    let yaml: Yaml = serde_yaml_ng::from_str(&positions).unwrap();
    let cursor = yaml["positions"]["journal-systemd"]
        .as_str()
        .unwrap_or_else(|| panic!("no journal-systemd cursor in {positions}"));
    assert!(
        cursor.contains(";i=29;"),
        "cursor of entry 41 (seqnum 0x29): {cursor}"
    );

    // Written while stopped, then while running again: each arrives once.
    journal.append(&lines_entries(base, 40..70));
    let shipper = shipper::start(
        &cfg,
        port,
        &["-config.expand-env=true"],
        &[("HOSTNAME", "testhost")],
    );
    wait_for_lines(&receiver, &numbered(0..70), &shipper);
    journal.append(&lines_entries(base, 70..80));
    wait_for_lines(&receiver, &numbered(0..80), &shipper);
    std::thread::sleep(Duration::from_millis(1500));
    let c = counts(&receiver);
    let repeated: Vec<_> = c.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "sent twice: {repeated:?}");
    assert_eq!(c.len(), 80, "{:?}", c.keys().collect::<Vec<_>>());

    // promtail's journal self-metric counts what was read.
    let metrics = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("promtail_journal_target_lines_total 40"),
        "40 read since the restart:\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("journal"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    drop(shipper);
}

/// A journal scrape config reading `jdir`, labelled job="journal".
fn plain_job(jdir: &Path) -> String {
    format!(
        "  - job_name: systemd\n    journal:\n      path: {}\n      labels:\n        job: journal\n",
        jdir.display()
    )
}

fn assert_each_once(receiver: &LokiReceiver, want: &[String]) {
    let c = counts(receiver);
    let repeated: Vec<_> = c.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "sent twice: {repeated:?}");
    assert_eq!(c.len(), want.len(), "{:?}", c.keys().collect::<Vec<_>>());
}

#[test]
fn the_cursor_moves_only_past_what_loki_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("journal");
    let mut journal = Journal::new(&jdir, "host");
    let receiver = LokiReceiver::start();
    receiver.set_mode(Mode::Status(500));
    let port = free_port();
    journal.append(&lines_entries(now_us() - 5_000_000, 0..20));
    let cfg = dir.path().join("shipper.yaml");
    std::fs::write(&cfg, config(dir.path(), &receiver, port, &plain_job(&jdir))).unwrap();

    // Loki fails every push: the entries are read, never accepted.
    let shipper = shipper::start(
        &cfg,
        port,
        &["-config.expand-env=true"],
        &[("HOSTNAME", "testhost")],
    );
    wait_until("a push was tried", Duration::from_secs(20), || {
        Ok(receiver.requests() > 0)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", shipper.log_tail(30)));
    shipper::stop(shipper);
    let positions = std::fs::read_to_string(dir.path().join("positions.yaml")).unwrap_or_default();
    assert!(
        !positions.contains("journal-systemd"),
        "no cursor may be saved for entries Loki refused:\n{positions}"
    );

    // Once Loki accepts, a restart delivers all of them, once.
    receiver.set_mode(Mode::Accept);
    let shipper = shipper::start(
        &cfg,
        port,
        &["-config.expand-env=true"],
        &[("HOSTNAME", "testhost")],
    );
    wait_for_lines(&receiver, &numbered(0..20), &shipper);
    std::thread::sleep(Duration::from_millis(1000));
    assert_each_once(&receiver, &numbered(0..20));
    // The journal is a target on /targets.
    let targets = ureq::get(&format!("http://127.0.0.1:{port}/targets?format=json"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let targets: serde_json::Value = serde_json::from_str(&targets).unwrap();
    assert_eq!(targets.as_array().unwrap().len(), 1, "{targets}");
    assert_eq!(targets[0]["kind"], "journal");
    assert_eq!(targets[0]["job"], "systemd");
    assert_eq!(targets[0]["path"], jdir.display().to_string());
    assert_eq!(targets[0]["labels"]["job"], "journal");
}

/// The journalctl processes `pid` started.
fn journalctl_children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for c in children
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
        {
            let comm = std::fs::read_to_string(format!("/proc/{c}/comm")).unwrap_or_default();
            if comm.trim() == "journalctl" {
                out.push(c);
            }
        }
    }
    out
}

#[test]
fn a_dead_journalctl_is_restarted_from_the_last_entry_read() {
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("journal");
    let mut journal = Journal::new(&jdir, "host");
    let receiver = LokiReceiver::start();
    let port = free_port();
    let base = now_us() - 5_000_000;
    journal.append(&lines_entries(base, 0..10));
    let cfg = dir.path().join("shipper.yaml");
    std::fs::write(&cfg, config(dir.path(), &receiver, port, &plain_job(&jdir))).unwrap();
    let shipper = shipper::start(
        &cfg,
        port,
        &["-config.expand-env=true"],
        &[("HOSTNAME", "testhost")],
    );
    wait_for_lines(&receiver, &numbered(0..10), &shipper);

    let victims = journalctl_children(shipper.id());
    assert_eq!(victims.len(), 1, "one journalctl per journal job");
    let killed = Command::new("kill")
        .args(["-KILL", &victims[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    journal.append(&lines_entries(base, 10..20));
    wait_for_lines(&receiver, &numbered(0..20), &shipper);
    let now = journalctl_children(shipper.id());
    assert!(
        now.len() == 1 && now[0] != victims[0],
        "a new journalctl runs: {now:?}"
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert_each_once(&receiver, &numbered(0..20));

    // kill -9 of the shipper itself: the cursor saved soon after delivery
    // means a restart reads on from there.
    std::thread::sleep(Duration::from_millis(1000));
    drop(shipper);
    journal.append(&lines_entries(base, 20..30));
    let shipper = shipper::start(
        &cfg,
        port,
        &["-config.expand-env=true"],
        &[("HOSTNAME", "testhost")],
    );
    wait_for_lines(&receiver, &numbered(0..30), &shipper);
    std::thread::sleep(Duration::from_millis(1000));
    assert_each_once(&receiver, &numbered(0..30));
}

#[test]
fn check_config_names_a_bad_journal_match() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = LokiReceiver::start();
    let scrape = "  - job_name: auth\n    journal:\n      matches: _SYSTEMD_UNIT=ssh.service /usr/sbin/sshd\n      labels:\n        job: auth\n";
    let cfg = dir.path().join("shipper.yaml");
    std::fs::write(&cfg, config(dir.path(), &receiver, free_port(), scrape)).unwrap();
    let out = Command::new(shipper::binary())
        .arg(format!("-config.file={}", cfg.display()))
        .arg("-check-config")
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("journal.matches") && said.contains("\"/usr/sbin/sshd\" is not FIELD=value"),
        "{said}"
    );
}

#[test]
fn journal_json_lines_carry_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("journal");
    let mut journal = Journal::new(&jdir, "host");
    let receiver = LokiReceiver::start();
    let port = free_port();
    let mut e = service_entry(now_us(), "app.service", "app", 4, "line one\nline two");
    e.1.push(("CODE_FILE", "main.rs".into()));
    journal.append(&[e]);
    let scrape = format!(
        "  - job_name: systemd-json\n    journal:\n      json: true\n      path: {}\n      labels:\n        job: journal\n",
        jdir.display()
    );
    let cfg = dir.path().join("shipper.yaml");
    std::fs::write(&cfg, config(dir.path(), &receiver, port, &scrape)).unwrap();
    let shipper = shipper::start(
        &cfg,
        port,
        &["-config.expand-env=true"],
        &[("HOSTNAME", "testhost")],
    );
    assert!(
        receiver.wait_for_entries(1, Duration::from_secs(30)),
        "{}",
        shipper.log_tail(30)
    );
    let lines = receiver.lines();
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["MESSAGE"], "line one\nline two");
    assert_eq!(v["_SYSTEMD_UNIT"], "app.service");
    assert_eq!(v["PRIORITY"], "4");
    assert_eq!(v["CODE_FILE"], "main.rs");
    assert_eq!(v["_HOSTNAME"], "testhost");
    assert!(
        v.get("__CURSOR").is_none(),
        "address fields are not entry fields: {v}"
    );
}

/// examples/auth-journal.yaml, pointed at our journal and receiver.
fn auth_example_config(dir: &Path, jdir: &Path, receiver: &LokiReceiver, port: u16) -> PathBuf {
    let path = workspace_root().join("log-shipper/examples/auth-journal.yaml");
    let mut doc: Yaml = serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    doc["server"]["http_listen_address"] = "127.0.0.1".into();
    doc["server"]["http_listen_port"] = u64::from(port).into();
    doc["positions"]["filename"] = dir.join("positions.yaml").display().to_string().into();
    doc["clients"][0]["url"] = receiver.push_url().into();
    doc["clients"][0]["batchwait"] = "200ms".into();
    doc["scrape_configs"][0]["journal"]["path"] = jdir.display().to_string().into();
    let out = dir.join("auth-journal.yaml");
    std::fs::write(&out, serde_yaml_ng::to_string(&doc).unwrap()).unwrap();
    out
}

#[test]
fn auth_journal_example_labels_ssh_and_sudo_events() {
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("journal");
    let mut journal = Journal::new(&jdir, "host");
    let receiver = LokiReceiver::start();
    let port = free_port();
    let t = now_us() - 10_000_000;
    let cases: [(&str, &str, &str, Option<&str>); 7] = [
        (
            "ssh.service",
            "sshd",
            "Accepted publickey for alice from 192.0.2.7 port 50122 ssh2: ED25519 SHA256:abc",
            Some("accepted"),
        ),
        (
            "ssh.service",
            "sshd-session",
            "Failed password for root from 198.51.100.3 port 4242 ssh2",
            Some("failed"),
        ),
        (
            "ssh.service",
            "sshd",
            "Invalid user admin from 198.51.100.3 port 4243",
            Some("invalid_user"),
        ),
        (
            "session-4.scope",
            "sudo",
            "   alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/apt update",
            Some("sudo_command"),
        ),
        (
            "session-5.scope",
            "sudo",
            "mallory : user NOT in sudoers ; TTY=pts/1 ; PWD=/tmp ; USER=root ; COMMAND=/bin/sh",
            Some("sudo_denied"),
        ),
        (
            "session-5.scope",
            "sudo",
            "pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)",
            None,
        ),
        (
            "cron.service",
            "CRON",
            "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
            None,
        ),
    ];
    let entries: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, (unit, ident, msg, _))| service_entry(t + i as u64 * 1000, unit, ident, 5, msg))
        .collect();
    journal.append(&entries);
    let cfg = auth_example_config(dir.path(), &jdir, &receiver, port);
    let shipper = shipper::start(
        &cfg,
        port,
        &["-config.expand-env=true"],
        &[("HOSTNAME", "testhost")],
    );
    // Everything but cron (not matched by `matches`).
    assert!(
        receiver.wait_for_entries(6, Duration::from_secs(30)),
        "{}",
        shipper.log_tail(30)
    );
    std::thread::sleep(Duration::from_millis(800));
    let streams = receiver.streams();
    let got: BTreeMap<&str, &BTreeMap<String, String>> = streams
        .iter()
        .flat_map(|s| s.entries.iter().map(move |e| (e.line.as_str(), &s.labels)))
        .collect();
    assert_eq!(got.len(), 6, "{got:#?}");
    for (unit, ident, msg, event) in cases {
        if ident == "CRON" {
            assert!(!got.contains_key(msg), "cron is not an auth program");
            continue;
        }
        let labels = got
            .get(msg)
            .unwrap_or_else(|| panic!("{msg:?} missing: {got:#?}"));
        let mut want: BTreeMap<String, String> = [
            ("job", "auth"),
            ("log_type", "auth"),
            ("host", "testhost"),
            ("program", ident.trim_end_matches("-session")),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        if unit.ends_with(".service") {
            want.insert("unit".into(), unit.into());
        }
        if let Some(ev) = event {
            want.insert("auth_event".into(), ev.into());
        }
        assert_eq!(*labels, &want, "{msg}");
    }
}
