//! The log-shipper's syslog source end to end, against real senders:
//! util-linux `logger` (RFC 5424 and RFC 3164, TCP with newline framing and
//! octet counting, UDP) and Debian's `rsyslogd` forwarding with omfwd over
//! TCP (RFC 5424, RFC 3164), UDP and TLS (gtls). Every message must reach
//! the Loki test receiver exactly once with the labels relabel_configs made
//! of the `__syslog_*` labels, also while Loki refuses pushes for a while
//! (TCP senders are slowed, nothing is lost). Endless and oversized frames
//! and many connections must not grow the shipper's memory.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e_tests::loki_receiver::{LokiReceiver, Mode, ReceivedStream};
use e2e_tests::process::{find_program, free_port, wait_until, Process};
use e2e_tests::shipper;

fn logger_bin() -> PathBuf {
    find_program(
        "LOGGER",
        &[PathBuf::from("/usr/bin/logger")],
        "install util-linux's bsdutils (logger)",
    )
}

fn rsyslogd_bin() -> PathBuf {
    find_program(
        "RSYSLOGD",
        &[PathBuf::from("/usr/sbin/rsyslogd")],
        "install Debian's rsyslog and rsyslog-gnutls (`make deps`)",
    )
}

/// A free UDP port (free_port is for TCP).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(dir: &Path, receiver: &LokiReceiver, port: u16, scrape: &str) -> PathBuf {
    let text = format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {port}\n  graceful_shutdown_timeout: 3s\n\
positions:\n  filename: {pos}\n\
clients:\n  - url: {url}\n    batchwait: 100ms\n    backoff_config: {{min_period: 50ms, max_period: 300ms, max_retries: 1000}}\n\
scrape_configs:\n{scrape}",
        pos = dir.join("positions.yaml").display(),
        url = receiver.push_url(),
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The labels every job keeps of the `__syslog_*` ones.
const RELABEL: &str = "
    relabel_configs:
      - {source_labels: [__syslog_message_app_name], target_label: app}
      - {source_labels: [__syslog_message_severity], target_label: level}
      - {source_labels: [__syslog_message_facility], target_label: facility}
      - {source_labels: [__syslog_message_hostname], target_label: host}
      - {source_labels: [__syslog_message_msg_id], target_label: msgid}
      - {source_labels: [__syslog_message_sd_meta_32473_k], target_label: sd_k}
      - {source_labels: [__syslog_connection_ip_address], target_label: ip}
      - {source_labels: [__syslog_connection_hostname], target_label: peer}
";

fn job(name: &str, port: u16, extra: &str) -> String {
    format!(
        "  - job_name: {name}\n    syslog:\n      listen_address: 127.0.0.1:{port}\n      labels: {{job: {name}}}\n{extra}{RELABEL}"
    )
}

/// Every (job, line) received, with its stream's labels, failing on any
/// line received twice.
fn received(receiver: &LokiReceiver) -> BTreeMap<(String, String), BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for s in receiver.streams() {
        let ReceivedStream {
            labels, entries, ..
        } = s;
        for e in entries {
            // rsyslog's %msg% of a BSD message keeps the space after the tag.
            let key = (
                labels.get("job").cloned().unwrap_or_default(),
                e.line.trim_start().to_string(),
            );
            assert!(
                out.insert(key.clone(), labels.clone()).is_none(),
                "received twice: {key:?}"
            );
        }
    }
    out
}

fn wait_entries(receiver: &LokiReceiver, n: usize, shipper: &Process) {
    if !receiver.wait_for_entries(n, Duration::from_secs(180)) {
        panic!(
            "{} of {n} entries arrived: {:?}\n{}",
            receiver.entry_count(),
            receiver.lines(),
            shipper.log_tail(40)
        );
    }
    // Nothing more may come (a repeat would show up now).
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(receiver.entry_count(), n, "{:?}", receiver.lines());
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn run_logger(args: &[&str]) {
    let out = Command::new(logger_bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "logger {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn logger_over_tcp_and_udp_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = LokiReceiver::start();
    let (tcp5424, tcp3164, udp) = (free_port(), free_port(), free_udp_port());
    let scrape = [
        job(
            "tcp5424",
            tcp5424,
            "      label_structured_data: true\n      use_incoming_timestamp: true\n",
        ),
        job("tcp3164", tcp3164, "      syslog_format: rfc3164\n"),
        job(
            "udp",
            udp,
            "      listen_protocol: udp\n      label_structured_data: true\n",
        ),
    ]
    .concat();
    let http = free_port();
    let cfg = config(dir.path(), &receiver, http, &scrape);
    let p = shipper::start(&cfg, http, &[], &[("TZ", "UTC")]);

    let port = |p: u16| p.to_string();
    let (t5, t3, u) = (port(tcp5424), port(tcp3164), port(udp));
    let base = ["-n", "127.0.0.1", "--id=4242", "-t", "myapp"];
    let sd = [
        "--sd-id",
        "meta@32473",
        "--sd-param",
        "k=\"v 1\"",
        "--msgid",
        "MID7",
    ];
    let sends: [(&str, &[&str]); 6] = [
        // TCP, RFC 5424: newline framing, then octet counting.
        (&t5, &["-T", "--rfc5424", "-p", "local3.warning"]),
        (&t5, &["-T", "--rfc5424", "--octet-count", "-p", "user.err"]),
        // TCP, RFC 3164.
        (&t3, &["-T", "--rfc3164", "-p", "daemon.notice"]),
        (
            &t3,
            &["-T", "--rfc3164", "--octet-count", "-p", "auth.info"],
        ),
        // UDP, both formats.
        (&u, &["-d", "--rfc5424", "-p", "local7.debug"]),
        (&u, &["-d", "--rfc3164", "-p", "mail.crit"]),
    ];
    for (i, (port, more)) in sends.iter().enumerate() {
        let msg = format!("message {i} from logger");
        let mut args: Vec<&str> = base.to_vec();
        args.extend(["-P", port]);
        args.extend(more.iter().copied());
        if more.contains(&"--rfc5424") {
            args.extend(sd);
        }
        args.push(&msg);
        run_logger(&args);
    }
    wait_entries(&receiver, sends.len(), &p);
    let got = received(&receiver);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let peer = Command::new("getent")
        .args(["hosts", "127.0.0.1"])
        .output()
        .ok()
        .and_then(|o| {
            let out = String::from_utf8_lossy(&o.stdout).to_string();
            out.split_whitespace().nth(1).map(str::to_string)
        });
    let want5424 = |job: &str, level: &str, facility: &str| {
        labels(&[
            ("job", job),
            ("app", "myapp"),
            ("level", level),
            ("facility", facility),
            ("msgid", "MID7"),
            ("ip", "127.0.0.1"),
        ])
    };
    let with_sd = |mut l: BTreeMap<String, String>| {
        l.insert("sd_k".into(), "v 1".into());
        l
    };
    let want3164 = |job: &str, level: &str, facility: &str| {
        labels(&[
            ("job", job),
            ("app", "myapp"),
            ("level", level),
            ("facility", facility),
            ("ip", "127.0.0.1"),
        ])
    };
    let expect = [
        ("tcp5424", with_sd(want5424("tcp5424", "warning", "local3"))),
        ("tcp5424", with_sd(want5424("tcp5424", "error", "user"))),
        ("tcp3164", want3164("tcp3164", "notice", "daemon")),
        ("tcp3164", want3164("tcp3164", "informational", "auth")),
        ("udp", with_sd(want5424("udp", "debug", "local7"))),
        ("udp", want3164("udp", "critical", "mail")),
    ];
    for (i, (job, want)) in expect.iter().enumerate() {
        let key = (job.to_string(), format!("message {i} from logger"));
        let have = got
            .get(&key)
            .unwrap_or_else(|| panic!("{key:?} missing; got {got:#?}"));
        // logger may send the FQDN in RFC 5424, the short name in RFC 3164.
        let mut have = have.clone();
        let h = have.remove("host").unwrap_or_default();
        // The sender's address looked up as getent does (/etc/hosts here).
        assert_eq!(have.remove("peer"), peer.clone(), "peer of {key:?}");
        assert!(
            h.starts_with(&host),
            "host {h:?} of {key:?}, this is {host:?}"
        );
        assert_eq!(&have, want, "labels of {key:?}");
    }
    // use_incoming_timestamp: logger's own time, not far from now.
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128;
    for s in receiver.streams() {
        for e in &s.entries {
            assert!((now_ns - e.timestamp_ns).abs() < 120 * 1_000_000_000);
        }
    }
    shipper::stop(p);
}

/// rsyslogd in the foreground with its own config, reading messages from a
/// unix socket of its own and forwarding each to four listeners.
struct Rsyslog {
    process: Process,
    socket: PathBuf,
}

impl Rsyslog {
    fn start(dir: &Path, actions: &str) -> Rsyslog {
        let work = dir.join("rsyslog-work");
        std::fs::create_dir_all(&work).unwrap();
        let socket = dir.join("rsyslog.sock");
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                "global(workDirectory=\"{work}\" defaultNetstreamDriverCAFile=\"{ca}\")\n\
                 module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
                 input(type=\"imuxsock\" Socket=\"{sock}\" CreatePath=\"on\" RateLimit.Interval=\"0\")\n\
                 {actions}\n",
                work = work.display(),
                ca = dir.join("cert.pem").display(),
                sock = socket.display(),
            ),
        )
        .unwrap();
        let mut cmd = Command::new(rsyslogd_bin());
        cmd.arg("-n")
            .arg(format!("-f{}", conf.display()))
            .arg(format!("-i{}", dir.join("rsyslogd.pid").display()));
        let process = Process::spawn("rsyslogd", cmd, tempfile::tempdir().unwrap());
        wait_until("rsyslogd made its socket", Duration::from_secs(20), || {
            Ok(socket.exists())
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", process.log_tail(30)));
        Rsyslog { process, socket }
    }
}

fn write_cert(dir: &Path) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

#[test]
fn rsyslog_forwards_over_tcp_udp_and_tls() {
    let dir = tempfile::tempdir().unwrap();
    write_cert(dir.path());
    let receiver = LokiReceiver::start();
    let (p5424, p3164, pudp, ptls) = (free_port(), free_port(), free_udp_port(), free_port());
    let tls = format!(
        "      tls_config: {{cert_file: {c}, key_file: {k}}}\n",
        c = dir.path().join("cert.pem").display(),
        k = dir.path().join("key.pem").display()
    );
    let scrape = [
        job("rs5424", p5424, "      label_structured_data: true\n"),
        job("rs3164", p3164, "      syslog_format: rfc3164\n"),
        job("rsudp", pudp, "      listen_protocol: udp\n"),
        job("rstls", ptls, &tls),
    ]
    .concat();
    let http = free_port();
    let cfg = config(dir.path(), &receiver, http, &scrape);
    let p = shipper::start(&cfg, http, &[], &[("TZ", "UTC")]);

    let actions = format!(
        "action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{p5424}\" protocol=\"tcp\" \
           template=\"RSYSLOG_SyslogProtocol23Format\" TCP_Framing=\"octet-counted\")\n\
         action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{p3164}\" protocol=\"tcp\" \
           template=\"RSYSLOG_TraditionalForwardFormat\")\n\
         action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{pudp}\" protocol=\"udp\" \
           template=\"RSYSLOG_SyslogProtocol23Format\")\n\
         action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{ptls}\" protocol=\"tcp\" \
           template=\"RSYSLOG_SyslogProtocol23Format\" TCP_Framing=\"octet-counted\" \
           StreamDriver=\"gtls\" StreamDriverMode=\"1\" StreamDriverAuthMode=\"anon\")\n"
    );
    let rs = Rsyslog::start(dir.path(), &actions);
    let n = 40;
    for i in 0..n {
        run_logger(&[
            "-u",
            rs.socket.to_str().unwrap(),
            "-t",
            "rsapp",
            "-p",
            "local5.notice",
            &format!("rsyslog message {i}"),
        ]);
        // UDP over loopback does not drop, but a burst can overrun the
        // receive buffer before the listener reads it.
        std::thread::sleep(Duration::from_millis(5));
    }
    if !receiver.wait_for_entries(4 * n, Duration::from_secs(60)) {
        panic!(
            "{} of {} arrived: {:?}\nrsyslogd: {}\nshipper: {}",
            receiver.entry_count(),
            4 * n,
            receiver.lines(),
            rs.process.log_tail(30),
            p.log_tail(30)
        );
    }
    std::thread::sleep(Duration::from_millis(700));
    let got = received(&receiver);
    assert_eq!(got.len(), 4 * n);
    for job in ["rs5424", "rs3164", "rsudp", "rstls"] {
        for i in 0..n {
            let key = (job.to_string(), format!("rsyslog message {i}"));
            let l = got
                .get(&key)
                .unwrap_or_else(|| panic!("{key:?} missing: {got:#?}"));
            assert_eq!(l.get("app").map(String::as_str), Some("rsapp"), "{key:?}");
            assert_eq!(l.get("level").map(String::as_str), Some("notice"));
            assert_eq!(l.get("facility").map(String::as_str), Some("local5"));
            assert_eq!(l.get("ip").map(String::as_str), Some("127.0.0.1"));
        }
    }
    drop(rs);
    shipper::stop(p);
}

#[test]
fn loki_outage_slows_tcp_senders_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = LokiReceiver::start();
    let port = free_port();
    let http = free_port();
    let cfg = config(dir.path(), &receiver, http, &job("outage", port, ""));
    let p = shipper::start(&cfg, http, &[], &[]);
    receiver.set_mode(Mode::Down);
    let n: usize = 400_000;
    let writer = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut buf = Vec::with_capacity(1 << 20);
        for i in 0..n {
            // Octet counting and newline framing mixed on one connection.
            let msg = format!(
                "<14>1 - host app - - - outage line {i:07} {}",
                "x".repeat(60)
            );
            if i % 2 == 0 {
                buf.extend_from_slice(format!("{} {msg}", msg.len()).as_bytes());
            } else {
                buf.extend_from_slice(msg.as_bytes());
                buf.push(b'\n');
            }
            if buf.len() > 64 * 1024 {
                s.write_all(&buf).unwrap();
                buf.clear();
            }
        }
        s.write_all(&buf).unwrap();
        Instant::now()
    });
    // While Loki is down the shipper stops reading: the writer is held.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !writer.is_finished(),
        "the sender was not slowed down while Loki refused connections"
    );
    assert_eq!(receiver.entry_count(), 0);
    receiver.set_mode(Mode::Accept);
    writer.join().unwrap();
    wait_entries(&receiver, n, &p);
    let got = received(&receiver);
    for i in (0..n).step_by(997) {
        let line = format!("outage line {i:07} {}", "x".repeat(60));
        assert!(
            got.contains_key(&("outage".to_string(), line)),
            "line {i} missing"
        );
    }
    shipper::stop(p);
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn metric(port: u16, name: &str) -> f64 {
    let body = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

/// What each endless line starts with (then its number: Loki would keep
/// only one of identical lines).
const HEAD: &str = "<14>1 - h app - - - endless ";

#[test]
fn endless_and_oversized_frames_and_many_connections_keep_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = LokiReceiver::start();
    let port = free_port();
    let http = free_port();
    let extra =
        "      max_message_length: 1024\n      max_connections: 20\n      idle_timeout: 2s\n";
    let cfg = config(dir.path(), &receiver, http, &job("limits", port, extra));
    let p = shipper::start(&cfg, http, &[], &[]);
    let before = rss_kib(p.id());

    // 20 connections (the limit) each sending an endless line, one claiming
    // a 9 GB frame, for 64 MiB in all; then more connections than allowed.
    let chunk = vec![b'z'; 64 * 1024];
    let mut conns = Vec::new();
    for i in 0..20 {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        if i == 0 {
            c.write_all(b"9000000000 <14>1 - h app - - - big ").unwrap();
        } else {
            c.write_all(format!("{HEAD}{i:02} ").as_bytes()).unwrap();
        }
        conns.push(c);
    }
    for _ in 0..50 {
        for c in &mut conns {
            c.write_all(&chunk).unwrap();
        }
    }
    // Beyond the limit: accepted by the kernel, served when a slot frees.
    let mut waiting: Vec<TcpStream> = (0..30)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    for (i, c) in waiting.iter_mut().enumerate() {
        c.write_all(format!("<14>1 - h app - - - waiting {i}\n").as_bytes())
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    let during = rss_kib(p.id());
    assert!(
        during < before + 32 * 1024,
        "RSS grew from {before} KiB to {during} KiB"
    );
    assert_eq!(metric(http, "log_shipper_syslog_open_connections"), 20.0);
    // One cut message per endless line, and the head of the big frame.
    assert_eq!(receiver.entry_count(), 20);
    // The endless lines end; their cut heads were shipped, and the waiting
    // connections are served.
    for c in &mut conns {
        c.write_all(b"\n").unwrap();
    }
    drop(conns);
    drop(waiting);
    wait_entries(&receiver, 20 + 30, &p);
    let got = received(&receiver);
    for i in 0..30 {
        assert!(got.contains_key(&("limits".to_string(), format!("waiting {i}"))));
    }
    let cut = receiver
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("endless "))
        .collect::<Vec<_>>();
    assert_eq!(cut.len(), 19);
    assert!(
        cut.iter()
            .all(|l| l.len() == 1024 - HEAD.len() + "endless ".len()),
        "cut to max_message_length"
    );
    assert!(metric(http, "log_shipper_syslog_truncated_messages_total") >= 20.0);

    // idle_timeout: a silent connection is closed by the shipper.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let t = Instant::now();
    let mut b = [0u8; 1];
    assert_eq!(idle.read(&mut b).unwrap_or(0), 0);
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(8),
        "closed after {waited:?}"
    );
    shipper::stop(p);
}
