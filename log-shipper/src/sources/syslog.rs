//! promtail's `syslog` scrape config: a listener for RFC 5424 and RFC 3164
//! (BSD) messages over TCP (octet counting or newline framing, optionally
//! TLS) and UDP. Each message becomes one entry labelled with the
//! `__syslog_*` labels that `relabel_configs` may keep, then goes through
//! the job's pipeline like any other source.
//!
//! Backpressure: a TCP connection reads its next chunk only once every
//! entry of the previous one is in the job's queue, so while Loki is down
//! the senders are slowed by TCP flow control, not dropped. A UDP socket
//! cannot be slowed: what does not fit in the queue is dropped and counted.
//!
//! Memory is bounded per connection (one read chunk, the entries of 1 KiB
//! of it, at most `max_message_length` of an unfinished frame) and by
//! `max_connections`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Datelike, Utc};
use syslog_loose::{ProcId, Protocol, SyslogFacility, SyslogSeverity, Variant};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::config::{ScrapeConfig, SyslogConfig};
use crate::entry::{Entry, LabelSet};
use crate::relabel::{self, RelabelConfig};
use crate::sources::serving::Serving;

/// Bytes read from a socket at a time: small enough that the entries of
/// one chunk waiting for the queue stay a bounded amount of memory.
const READ_CHUNK: usize = 16 * 1024;
/// Bytes framed before the entries they made are queued.
const PIECE: usize = 1024;
/// Room for an octet count's digits and space ahead of a full frame.
const HEADER_ROOM: usize = 16;
/// Reverse lookups remembered for UDP senders before the cache is cleared.
const HOSTNAME_CACHE: usize = 4096;

static ENTRIES: AtomicU64 = AtomicU64::new(0);
static PARSING_ERRORS: AtomicU64 = AtomicU64::new(0);
static EMPTY_MESSAGES: AtomicU64 = AtomicU64::new(0);
static TRUNCATED: AtomicU64 = AtomicU64::new(0);
static UDP_DROPPED: AtomicU64 = AtomicU64::new(0);
static DROPPED_LABELS: AtomicU64 = AtomicU64::new(0);
static CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// promtail's syslog self-metrics, and ours for what promtail never drops
/// (it blocks on UDP too) or cuts.
pub fn collect(set: &mut exporter_toolkit::exposition::MetricSet) {
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
    set.counter(
        "promtail_syslog_target_entries_total",
        "Total number of successful entries sent to the syslog target",
        &[],
        get(&ENTRIES),
    );
    set.counter(
        "promtail_syslog_target_parsing_errors_total",
        "Total number of parsing errors while receiving syslog messages",
        &[],
        get(&PARSING_ERRORS),
    );
    set.counter(
        "promtail_syslog_target_empty_messages_total",
        "Total number of empty messages receiving from syslog",
        &[],
        get(&EMPTY_MESSAGES),
    );
    set.counter(
        "log_shipper_syslog_truncated_messages_total",
        "Syslog messages longer than max_message_length, cut to it.",
        &[],
        get(&TRUNCATED),
    );
    set.counter(
        "log_shipper_syslog_udp_dropped_entries_total",
        "Syslog messages received over UDP and dropped because the job's queue was full (Loki slow or down).",
        &[],
        get(&UDP_DROPPED),
    );
    set.counter(
        "log_shipper_syslog_dropped_entries_total",
        "Syslog messages dropped by relabel_configs or left without any label.",
        &[],
        get(&DROPPED_LABELS),
    );
    set.gauge(
        "log_shipper_syslog_open_connections",
        "TCP syslog connections open now.",
        &[],
        get(&CONNECTIONS),
    );
}

/// Counters a test or benchmark can read without scraping.
pub fn truncated_total() -> u64 {
    TRUNCATED.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------- settings

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Rfc5424,
    Rfc3164,
}

/// What a connection needs to turn frames into entries.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    pub format: Format,
    pub label_structured_data: bool,
    pub use_incoming_timestamp: bool,
    pub use_rfc5424_message: bool,
}

/// A checked `syslog` block.
pub struct Settings {
    pub listen_address: SocketAddr,
    pub transport: Transport,
    pub idle_timeout: Duration,
    pub max_message_length: usize,
    pub max_connections: usize,
    pub labels: LabelSet,
    pub parse: ParseOptions,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// `--check-config` for a scrape config's `syslog` block (nothing to do
/// without one).
pub fn check(sc: &ScrapeConfig) -> Result<(), String> {
    match &sc.syslog {
        None => Ok(()),
        Some(c) => settings(c)
            .map(|_| ())
            .map_err(|e| format!("scrape_configs {:?}: syslog.{e}", sc.job_name)),
    }
}

/// The block as runtime settings; errors start with the key they are about.
pub fn settings(c: &SyslogConfig) -> Result<Settings, String> {
    if c.listen_address.is_empty() {
        return Err("listen_address: required".into());
    }
    let listen_address = resolve(&c.listen_address)
        .map_err(|e| format!("listen_address {:?}: {e}", c.listen_address))?;
    let transport = match c.listen_protocol.as_str() {
        "" | "tcp" => Transport::Tcp,
        "udp" => Transport::Udp,
        other => {
            return Err(format!(
                "listen_protocol: expected 'tcp' or 'udp', got {other:?}"
            ))
        }
    };
    let format = match c.syslog_format.as_str() {
        "" | "rfc5424" => Format::Rfc5424,
        "rfc3164" => Format::Rfc3164,
        other => {
            return Err(format!(
                "syslog_format: expected 'rfc5424' or 'rfc3164', got {other:?}"
            ))
        }
    };
    for k in c.labels.keys() {
        if !relabel::valid_label_name(k) {
            return Err(format!("labels: {k:?} is not a valid label name"));
        }
    }
    // promtail: 0 is the default, not "no limit".
    let max_message_length = if c.max_message_length == 0 {
        8192
    } else {
        c.max_message_length
    };
    let max_connections = match (c.max_connections, transport) {
        (None, _) => 1024,
        (Some(_), Transport::Udp) => {
            return Err("max_connections: only for listen_protocol tcp".into())
        }
        (Some(0), _) => return Err("max_connections: must be at least 1".into()),
        (Some(n), _) => n,
    };
    // UDP has no connection to time out: a value set there would do
    // nothing, so it is refused (120s is the default, never written).
    if transport == Transport::Udp && c.idle_timeout.get() != Duration::from_secs(120) {
        return Err("idle_timeout: only for listen_protocol tcp".into());
    }
    let idle_timeout = if c.idle_timeout.get().is_zero() {
        Duration::from_secs(120)
    } else {
        c.idle_timeout.get()
    };
    let tls = tls_config(c)?;
    if tls.is_some() && transport == Transport::Udp {
        return Err("tls_config: TLS needs listen_protocol tcp".into());
    }
    Ok(Settings {
        listen_address,
        transport,
        idle_timeout,
        max_message_length,
        max_connections,
        labels: c
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        parse: ParseOptions {
            format,
            label_structured_data: c.label_structured_data,
            use_incoming_timestamp: c.use_incoming_timestamp,
            use_rfc5424_message: c.use_rfc5424_message,
        },
        tls,
    })
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    // Go's net.Listen takes ":514" for every address.
    let full = if addr.starts_with(':') {
        format!("[::]{addr}")
    } else {
        addr.to_string()
    };
    full.to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "resolves to no address".to_string())
}

/// promtail's syslog TLS: a server certificate and key; a CA file makes
/// client certificates required and verified.
fn tls_config(c: &SyslogConfig) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    let t = &c.tls_config;
    // Keys of the shared TLS block that only make sense for a client.
    for (key, set) in [
        ("server_name", !t.server_name.is_empty()),
        ("insecure_skip_verify", t.insecure_skip_verify),
    ] {
        if set {
            return Err(format!(
                "tls_config.{key}: not used by a syslog server; remove it"
            ));
        }
    }
    let enabled = [
        &t.cert_file,
        &t.key_file,
        &t.ca_file,
        &t.cert,
        &t.key,
        &t.ca,
    ]
    .iter()
    .any(|s| !s.is_empty());
    if !enabled {
        for (key, v) in [
            ("min_version", &t.min_version),
            ("max_version", &t.max_version),
        ] {
            if !v.is_empty() {
                return Err(format!(
                    "tls_config.{key}: set without a certificate (cert_file, key_file)"
                ));
            }
        }
        return Ok(None);
    }
    let path = |s: &str| (!s.is_empty()).then(|| std::path::PathBuf::from(s));
    let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let has_ca = !t.ca_file.is_empty() || !t.ca.is_empty();
    let settings = exporter_toolkit::web_config::TlsSettings {
        cert_file: path(&t.cert_file),
        key_file: path(&t.key_file),
        cert: text(&t.cert),
        key: text(&t.key),
        client_auth_type: has_ca.then(|| "RequireAndVerifyClientCert".to_string()),
        client_ca_file: path(&t.ca_file),
        client_ca: text(&t.ca),
        min_version: text(&t.min_version),
        max_version: text(&t.max_version),
        ..Default::default()
    };
    let cfg =
        exporter_toolkit::tls::server_config(&settings, std::path::Path::new("")).map_err(|e| {
            format!(
                "tls_config: {}",
                e.replace("tls_server_config.", "")
                    .replace("client_ca_file", "ca_file")
            )
        })?;
    Ok(Some(Arc::new(cfg)))
}

// ---------------------------------------------------------------- framing

/// Splits a byte stream into syslog frames: RFC 6587 octet counting
/// (`LEN SP MSG`) when a frame starts with a digit and a space follows
/// the digits, otherwise non-transparent framing (up to `\n`). The choice
/// is made per frame, so a sender may mix both. Frames longer than `max`
/// are cut to `max` and the rest is skipped without being held.
pub struct Framer {
    buf: Vec<u8>,
    max: usize,
    /// Bytes of an oversized octet-counted frame still to skip.
    skip: usize,
    /// Skipping the rest of an oversized newline-framed message.
    in_long_line: bool,
}

impl Framer {
    pub fn new(max: usize) -> Framer {
        Framer {
            buf: Vec::new(),
            max: max.max(1),
            skip: 0,
            in_long_line: false,
        }
    }

    /// Bytes held for an unfinished frame (never more than `max` plus a
    /// header).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes `data`; calls `emit(frame, truncated)` for every frame it
    /// completes.
    pub fn push(&mut self, mut data: &[u8], emit: &mut dyn FnMut(&[u8], bool)) {
        let cap = self.max + HEADER_ROOM;
        loop {
            let take = (cap - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            let used = self.frames(emit);
            self.buf.drain(..used);
            if data.is_empty() {
                return;
            }
            // `frames` always consumes from a full buffer, so this loop ends.
            debug_assert!(used > 0 || take > 0);
        }
    }

    /// The end of the stream (connection closed, end of a datagram): what is
    /// left is the last frame.
    pub fn finish(&mut self, emit: &mut dyn FnMut(&[u8], bool)) {
        let rest = std::mem::take(&mut self.buf);
        let skipping = self.skip > 0 || self.in_long_line;
        self.skip = 0;
        self.in_long_line = false;
        if skipping {
            return;
        }
        let rest = trim_separators(&rest);
        if rest.is_empty() {
            return;
        }
        match octet_header(rest) {
            // A counted frame cut short by the end of the stream.
            Header::Frame { len, start } => {
                let body = &rest[start..];
                emit(&body[..body.len().min(self.max)], body.len() < len);
            }
            // Up to `max + HEADER_ROOM` bytes can wait here (digits that
            // might have been a count): still cut to `max`.
            Header::NeedMore | Header::NotCounted => {
                let line = trim_cr(rest);
                emit(&line[..line.len().min(self.max)], line.len() > self.max);
            }
        }
    }

    /// Emits the complete frames at the start of the buffer; returns how
    /// many bytes it used.
    fn frames(&mut self, emit: &mut dyn FnMut(&[u8], bool)) -> usize {
        let buf = &self.buf;
        let max = self.max;
        let mut pos = 0;
        loop {
            if self.skip > 0 {
                let n = self.skip.min(buf.len() - pos);
                pos += n;
                self.skip -= n;
                if self.skip > 0 {
                    return pos;
                }
            }
            if self.in_long_line {
                match memchr::memchr(b'\n', &buf[pos..]) {
                    Some(i) => {
                        pos += i + 1;
                        self.in_long_line = false;
                    }
                    None => return buf.len(),
                }
            }
            let lead = buf[pos..]
                .iter()
                .take_while(|b| matches!(b, b'\n' | b'\r' | b'\0'))
                .count();
            pos += lead;
            let rest = &buf[pos..];
            if rest.is_empty() {
                return pos;
            }
            match octet_header(rest) {
                Header::NeedMore => return pos,
                Header::Frame { len, start } => {
                    let body = &rest[start..];
                    if len <= max {
                        if body.len() < len {
                            return pos;
                        }
                        emit(&body[..len], false);
                        pos += start + len;
                    } else {
                        if body.len() < max {
                            return pos;
                        }
                        emit(&body[..max], true);
                        pos += start + max;
                        self.skip = len - max;
                    }
                    continue;
                }
                Header::NotCounted => {}
            }
            match memchr::memchr(b'\n', rest) {
                Some(i) if i <= max => {
                    emit(trim_cr(&rest[..i]), false);
                    pos += i + 1;
                }
                Some(i) => {
                    emit(&rest[..max], true);
                    pos += i + 1;
                }
                None if rest.len() > max => {
                    emit(&rest[..max], true);
                    self.in_long_line = true;
                    return buf.len();
                }
                None => return pos,
            }
        }
    }
}

enum Header {
    /// Digits only so far: cannot tell yet.
    NeedMore,
    NotCounted,
    /// `len` bytes of message start at `start`.
    Frame {
        len: usize,
        start: usize,
    },
}

/// RFC 6587: MSG-LEN is a non-zero digit followed by digits, then a space.
fn octet_header(b: &[u8]) -> Header {
    if !matches!(b.first(), Some(b'1'..=b'9')) {
        return Header::NotCounted;
    }
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    // More digits than any sane length: not a count.
    if digits > 10 {
        return Header::NotCounted;
    }
    if digits == b.len() {
        return Header::NeedMore;
    }
    if b[digits] != b' ' {
        return Header::NotCounted;
    }
    let len = std::str::from_utf8(&b[..digits])
        .ok()
        .and_then(|s| s.parse::<usize>().ok());
    match len {
        Some(len) => Header::Frame {
            len,
            start: digits + 1,
        },
        None => Header::NotCounted,
    }
}

fn trim_cr(b: &[u8]) -> &[u8] {
    b.strip_suffix(b"\r").unwrap_or(b)
}

fn trim_separators(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !matches!(c, b'\n' | b'\r' | b'\0'))
        .unwrap_or(b.len());
    let b = &b[start..];
    let end = b
        .iter()
        .rposition(|c| !matches!(c, b'\n' | b'\r' | b'\0'))
        .map_or(0, |i| i + 1);
    &b[..end]
}

// ---------------------------------------------------------------- parsing

/// One parsed message.
#[derive(Debug, PartialEq)]
pub struct Parsed {
    /// The `__syslog_message_*` labels.
    pub labels: Vec<(String, String)>,
    pub line: String,
    pub timestamp: Option<SystemTime>,
}

/// Why a frame gave no entry.
#[derive(Debug, PartialEq)]
pub enum Skip {
    EmptyMessage,
}

/// go-syslog's severity names, which promtail's labels carry.
fn severity_name(s: SyslogSeverity) -> &'static str {
    match s {
        SyslogSeverity::SEV_EMERG => "emergency",
        SyslogSeverity::SEV_ALERT => "alert",
        SyslogSeverity::SEV_CRIT => "critical",
        SyslogSeverity::SEV_ERR => "error",
        SyslogSeverity::SEV_WARNING => "warning",
        SyslogSeverity::SEV_NOTICE => "notice",
        SyslogSeverity::SEV_INFO => "informational",
        SyslogSeverity::SEV_DEBUG => "debug",
    }
}

/// go-syslog's facility names (13 to 15 differ from syslog_loose's).
fn facility_name(f: SyslogFacility) -> &'static str {
    match f {
        SyslogFacility::LOG_AUDIT => "security",
        SyslogFacility::LOG_ALERT => "console",
        SyslogFacility::LOG_CLOCKD => "solaris-cron",
        other => other.as_str(),
    }
}

/// The year of an RFC 3164 timestamp, which has none: this year, unless
/// the month is more than one ahead of `now`'s (a December message read
/// in January is last year's).
pub fn year_for(month: u32, now: DateTime<Utc>) -> i32 {
    if month > now.month() + 1 {
        now.year() - 1
    } else {
        now.year()
    }
}

/// Parses one frame. A frame neither parser accepts is kept whole as the
/// line, without message labels, and counted as a parsing error (promtail
/// drops it; we never drop what a sender gave us). `now` places RFC 3164's
/// year-less timestamps.
pub fn parse(frame: &str, o: &ParseOptions, now: DateTime<Utc>) -> Result<Parsed, Skip> {
    let variant = match o.format {
        Format::Rfc5424 => Variant::RFC5424,
        Format::Rfc3164 => Variant::RFC3164,
    };
    let get_year = |d: syslog_loose::IncompleteDate| year_for(d.0, now);
    // The other format second: a sender may not be configured as we are.
    let msg = syslog_loose::parse_message_with_year_exact_tz(frame, get_year, Some(Utc), variant)
        .or_else(|_| {
            syslog_loose::parse_message_with_year_exact_tz(
                frame,
                get_year,
                Some(Utc),
                Variant::Either,
            )
        });
    let msg = match msg {
        Ok(m) => m,
        Err(_) => {
            PARSING_ERRORS.fetch_add(1, Ordering::Relaxed);
            let line = frame.trim();
            if line.is_empty() {
                return Err(Skip::EmptyMessage);
            }
            return Ok(Parsed {
                labels: Vec::new(),
                line: line.to_string(),
                timestamp: None,
            });
        }
    };
    // An RFC 5424 message may start with a BOM to say it is UTF-8.
    let text = msg.msg.strip_prefix('\u{feff}').unwrap_or(msg.msg);
    if text.is_empty() {
        return Err(Skip::EmptyMessage);
    }
    let mut labels = Vec::with_capacity(8);
    let mut put = |k: &str, v: &str| labels.push((k.to_string(), v.to_string()));
    if let Some(s) = msg.severity {
        put("__syslog_message_severity", severity_name(s));
    }
    if let Some(f) = msg.facility {
        put("__syslog_message_facility", facility_name(f));
    }
    if let Some(h) = msg.hostname {
        put("__syslog_message_hostname", h);
    }
    if let Some(a) = msg.appname {
        put("__syslog_message_app_name", a);
    }
    match &msg.procid {
        Some(ProcId::PID(p)) => put("__syslog_message_proc_id", &p.to_string()),
        Some(ProcId::Name(n)) => put("__syslog_message_proc_id", n),
        None => {}
    }
    if let Some(m) = msg.msgid {
        put("__syslog_message_msg_id", m);
    }
    if o.label_structured_data {
        for el in &msg.structured_data {
            let id = el.id.replace('@', "_");
            for (name, value) in el.params() {
                labels.push((format!("__syslog_message_sd_{id}_{name}"), value));
            }
        }
    }
    let rfc5424 = matches!(msg.protocol, Protocol::RFC5424(_));
    let line = if o.use_rfc5424_message && rfc5424 {
        frame.trim().to_string()
    } else {
        text.to_string()
    };
    let timestamp = if o.use_incoming_timestamp {
        msg.timestamp.map(SystemTime::from)
    } else {
        None
    };
    Ok(Parsed {
        labels,
        line,
        timestamp,
    })
}

/// Turns frames into entries for one connection (or UDP sender).
struct Builder {
    base: LabelSet,
    relabel: Arc<Vec<RelabelConfig>>,
    parse: ParseOptions,
}

impl Builder {
    fn entry(&self, frame: &[u8], truncated: bool) -> Option<Entry> {
        if truncated {
            TRUNCATED.fetch_add(1, Ordering::Relaxed);
        }
        let text = String::from_utf8_lossy(frame);
        let parsed = match parse(&text, &self.parse, Utc::now()) {
            Ok(p) => p,
            Err(Skip::EmptyMessage) => {
                EMPTY_MESSAGES.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        let mut labels = self.base.clone();
        labels.extend(parsed.labels);
        let Some(mut labels) = relabel::process(labels, &self.relabel) else {
            DROPPED_LABELS.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        labels.retain(|k, _| !k.starts_with("__"));
        if labels.is_empty() {
            DROPPED_LABELS.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let mut e = Entry::new(labels, parsed.line);
        if let Some(t) = parsed.timestamp {
            e.timestamp = t;
        }
        Some(e)
    }
}

fn connection_labels(base: &LabelSet, ip: IpAddr, hostname: String) -> LabelSet {
    let mut l = base.clone();
    l.insert("__syslog_connection_ip_address".into(), ip.to_string());
    l.insert("__syslog_connection_hostname".into(), hostname);
    l
}

/// The sender's name by reverse lookup (as promtail's net.LookupAddr), or
/// empty.
fn lookup_addr(ip: IpAddr) -> String {
    let (storage, len) = match ip {
        IpAddr::V4(v4) => {
            // SAFETY: sockaddr_in is plain data; zeroed is a valid value.
            let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
            let mut st: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            // SAFETY: sockaddr_storage is large enough for sockaddr_in.
            unsafe { std::ptr::write(&mut st as *mut _ as *mut libc::sockaddr_in, sa) };
            (st, std::mem::size_of::<libc::sockaddr_in>())
        }
        IpAddr::V6(v6) => {
            // SAFETY: as above.
            let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_addr.s6_addr = v6.octets();
            let mut st: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            // SAFETY: sockaddr_storage is large enough for sockaddr_in6.
            unsafe { std::ptr::write(&mut st as *mut _ as *mut libc::sockaddr_in6, sa) };
            (st, std::mem::size_of::<libc::sockaddr_in6>())
        }
    };
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: the pointers and lengths describe live buffers.
    let rc = unsafe {
        libc::getnameinfo(
            &storage as *const _ as *const libc::sockaddr,
            len as libc::socklen_t,
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return String::new();
    }
    // SAFETY: getnameinfo wrote a NUL-terminated string on success.
    unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

async fn hostname(ip: IpAddr) -> String {
    tokio::task::spawn_blocking(move || lookup_addr(ip))
        .await
        .unwrap_or_default()
}

// ---------------------------------------------------------------- running

/// One running listener.
pub struct SyslogTarget {
    serving: Serving,
    pub local_addr: SocketAddr,
}

impl SyslogTarget {
    /// Binds the listener (errors at once, so a reload with a taken port
    /// fails) and serves it.
    pub fn start(sc: &ScrapeConfig, tx: mpsc::Sender<Entry>) -> Result<SyslogTarget, String> {
        let cfg = sc
            .syslog
            .as_ref()
            .ok_or_else(|| "no syslog block".to_string())?;
        let err = |e: String| format!("scrape_configs {:?}: syslog.{e}", sc.job_name);
        let s = settings(cfg).map_err(err)?;
        let relabel = Arc::new(sc.relabel_configs.clone());
        let (serving, local_addr) = match s.transport {
            Transport::Tcp => {
                let l = std::net::TcpListener::bind(s.listen_address)
                    .and_then(|l| l.set_nonblocking(true).map(|_| l))
                    .and_then(tokio::net::TcpListener::from_std)
                    .map_err(|e| err(format!("listen_address {}: {e}", s.listen_address)))?;
                let addr = l.local_addr().map_err(|e| err(e.to_string()))?;
                (Serving::spawn(serve_tcp(l, s, relabel, tx)), addr)
            }
            Transport::Udp => {
                let sock = std::net::UdpSocket::bind(s.listen_address)
                    .and_then(|l| l.set_nonblocking(true).map(|_| l))
                    .inspect(set_receive_buffer)
                    .and_then(tokio::net::UdpSocket::from_std)
                    .map_err(|e| err(format!("listen_address {}: {e}", s.listen_address)))?;
                let addr = sock.local_addr().map_err(|e| err(e.to_string()))?;
                (Serving::spawn(serve_udp(sock, s, relabel, tx)), addr)
            }
        };
        tracing::info!(job = %sc.job_name, address = %local_addr, "syslog listening");
        Ok(SyslogTarget {
            serving,
            local_addr,
        })
    }

    /// Stops listening and drops every connection.
    pub fn stop(&self) {
        self.serving.stop();
    }

    /// Stops and waits until the socket is closed, so the next config can
    /// bind it.
    pub async fn join(self) {
        self.serving.join().await;
    }
}

/// 1 MiB of datagrams may wait in the kernel, as promtail asks for, so a
/// burst is not lost before the listener reads it (the kernel caps it at
/// net.core.rmem_max).
fn set_receive_buffer(sock: &std::net::UdpSocket) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 1 << 20;
    // SAFETY: a valid socket and an int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "SO_RCVBUF");
    }
}

async fn serve_tcp(
    listener: tokio::net::TcpListener,
    s: Settings,
    relabel: Arc<Vec<RelabelConfig>>,
    tx: mpsc::Sender<Entry>,
) {
    let s = Arc::new(s);
    let acceptor = s.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(s.max_connections));
    // Dropped with this task: every connection ends with the listener.
    let mut conns = JoinSet::new();
    let mut backoff = Duration::from_millis(5);
    loop {
        // At the limit, stop accepting: new senders wait in the backlog.
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait, retry.
                    tracing::warn!(error = %e, "failed to accept syslog connection");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        backoff = Duration::from_millis(5);
        let _ = stream.set_nodelay(true);
        let s = Arc::clone(&s);
        let relabel = Arc::clone(&relabel);
        let tx = tx.clone();
        let acceptor = acceptor.clone();
        conns.spawn(async move {
            CONNECTIONS.fetch_add(1, Ordering::Relaxed);
            let _open = Guard;
            let _permit = permit;
            let ip = peer.ip().to_canonical();
            let builder = Builder {
                base: connection_labels(&s.labels, ip, hostname(ip).await),
                relabel,
                parse: s.parse.clone(),
            };
            let result = match acceptor {
                Some(a) => match tokio::time::timeout(s.idle_timeout, a.accept(stream)).await {
                    Ok(Ok(tls)) => read_stream(tls, &s, &builder, &tx).await,
                    Ok(Err(e)) => Err(format!("TLS handshake: {e}")),
                    Err(_) => Err("TLS handshake timed out".into()),
                },
                None => read_stream(stream, &s, &builder, &tx).await,
            };
            if let Err(e) = result {
                tracing::debug!(peer = %peer, error = %e, "syslog connection closed");
            }
        });
        // Reap finished connections so the set does not grow.
        while conns.try_join_next().is_some() {}
    }
}

/// Decrements the open connections gauge however a connection ends.
struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        CONNECTIONS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Reads a connection until it closes, is idle for `idle_timeout`, or the
/// job's queue is gone. Entries of a chunk are queued before the next read.
async fn read_stream<R: AsyncRead + Unpin>(
    mut r: R,
    s: &Settings,
    b: &Builder,
    tx: &mpsc::Sender<Entry>,
) -> Result<(), String> {
    let mut framer = Framer::new(s.max_message_length);
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut entries = Vec::new();
    loop {
        let n = match tokio::time::timeout(s.idle_timeout, r.read(&mut chunk)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("idle timeout".into()),
        };
        if n == 0 {
            framer.finish(&mut |f, cut| entries.extend(b.entry(f, cut)));
            queue(&mut entries, tx).await;
            return Ok(());
        }
        // Small pieces: tiny frames would otherwise make thousands of
        // entries per chunk wait in memory for the queue.
        for piece in chunk[..n].chunks(PIECE) {
            framer.push(piece, &mut |f, cut| entries.extend(b.entry(f, cut)));
            if !queue(&mut entries, tx).await {
                return Ok(());
            }
        }
    }
}

/// Sends `entries` into the job's queue, waiting for room; false once the
/// queue is gone.
async fn queue(entries: &mut Vec<Entry>, tx: &mpsc::Sender<Entry>) -> bool {
    for e in entries.drain(..) {
        if tx.send(e).await.is_err() {
            return false;
        }
        ENTRIES.fetch_add(1, Ordering::Relaxed);
    }
    true
}

async fn serve_udp(
    sock: tokio::net::UdpSocket,
    s: Settings,
    relabel: Arc<Vec<RelabelConfig>>,
    tx: mpsc::Sender<Entry>,
) {
    // A datagram holds at most 64 KiB; the framer cuts to max_message_length.
    let mut buf = vec![0u8; 65536];
    let mut names: HashMap<IpAddr, LabelSet> = HashMap::new();
    let mut framer = Framer::new(s.max_message_length);
    let mut entries = Vec::new();
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "failed to read syslog datagram");
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let ip = peer.ip().to_canonical();
        if !names.contains_key(&ip) {
            if names.len() >= HOSTNAME_CACHE {
                names.clear();
            }
            let labels = connection_labels(&s.labels, ip, hostname(ip).await);
            names.insert(ip, labels);
        }
        let builder = Builder {
            base: names[&ip].clone(),
            relabel: Arc::clone(&relabel),
            parse: s.parse.clone(),
        };
        // One datagram is one or more whole frames.
        let mut emit = |f: &[u8], cut: bool| entries.extend(builder.entry(f, cut));
        framer.push(&buf[..n], &mut emit);
        framer.finish(&mut emit);
        for e in entries.drain(..) {
            match tx.try_send(e) {
                Ok(()) => {
                    ENTRIES.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    UDP_DROPPED.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn frames(max: usize, chunks: &[&[u8]]) -> Vec<(String, bool)> {
        let mut f = Framer::new(max);
        let mut out = Vec::new();
        let mut emit =
            |b: &[u8], cut: bool| out.push((String::from_utf8_lossy(b).into_owned(), cut));
        for c in chunks {
            f.push(c, &mut emit);
        }
        f.finish(&mut emit);
        out
    }

    fn s(v: &[(&str, bool)]) -> Vec<(String, bool)> {
        v.iter().map(|(a, b)| (a.to_string(), *b)).collect()
    }

    #[test]
    fn frames_octet_counted_and_newline_in_any_split() {
        let stream = b"5 <1>ab\n<2>cd\r\n11 <3>1 - x y\n\n<4>last";
        let want = s(&[
            ("<1>ab", false),
            ("<2>cd", false),
            ("<3>1 - x y\n", false),
            ("<4>last", false),
        ]);
        assert_eq!(frames(100, &[stream]), want);
        // Every split point, byte by byte too, gives the same frames.
        for i in 0..stream.len() {
            assert_eq!(
                frames(100, &[&stream[..i], &stream[i..]]),
                want,
                "split at {i}"
            );
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(frames(100, &bytes), want);
    }

    #[test]
    fn oversized_frames_are_cut_and_the_next_one_survives() {
        let mut stream = b"20 <1>abcdefghijklmnopq".to_vec();
        stream.extend_from_slice(b"<2>0123456789ABCDEF\n<3>ok\n");
        assert_eq!(
            frames(8, &[&stream]),
            s(&[("<1>abcde", true), ("<2>01234", true), ("<3>ok", false)])
        );
        // A newline frame that never ends is held to `max` bytes.
        let mut f = Framer::new(64);
        let mut n = 0;
        for _ in 0..1000 {
            f.push(&[b'x'; 1000], &mut |_, _| n += 1);
            assert!(f.buffered() <= 64 + HEADER_ROOM);
        }
        assert_eq!(n, 1);
        f.push(b"\n<1>next\n", &mut |b, cut| {
            assert_eq!((b, cut), (&b"<1>next"[..], false));
            n += 1
        });
        assert_eq!(n, 2);
        // Found by the fuzz target: digits that are not a count, at the end
        // of the stream, are still cut to `max`.
        assert_eq!(frames(4, &[b"1234567890"]), s(&[("1234", true)]));
        // A huge announced length is skipped, not buffered.
        let mut f = Framer::new(64);
        let mut got = Vec::new();
        f.push(b"9999999999 <1>", &mut |b, c| got.push((b.to_vec(), c)));
        for _ in 0..100 {
            f.push(&[b'y'; 1000], &mut |b, c| got.push((b.to_vec(), c)));
            assert!(f.buffered() <= 64 + HEADER_ROOM);
        }
        assert_eq!(got.len(), 1);
        assert!(got[0].1);
    }

    fn opts(format: Format) -> ParseOptions {
        ParseOptions {
            format,
            label_structured_data: true,
            use_incoming_timestamp: true,
            use_rfc5424_message: false,
        }
    }

    fn label<'a>(p: &'a Parsed, k: &str) -> Option<&'a str> {
        p.labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn parses_rfc5424_with_structured_data() {
        let now = Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();
        let f = r#"<165>1 2003-10-11T22:14:15.003Z host.example app 1234 ID47 [ex@32473 iut="3" src="a\"b"] hello world"#;
        let p = parse(f, &opts(Format::Rfc5424), now).unwrap();
        assert_eq!(p.line, "hello world");
        assert_eq!(label(&p, "__syslog_message_severity"), Some("notice"));
        assert_eq!(label(&p, "__syslog_message_facility"), Some("local4"));
        assert_eq!(label(&p, "__syslog_message_hostname"), Some("host.example"));
        assert_eq!(label(&p, "__syslog_message_app_name"), Some("app"));
        assert_eq!(label(&p, "__syslog_message_proc_id"), Some("1234"));
        assert_eq!(label(&p, "__syslog_message_msg_id"), Some("ID47"));
        assert_eq!(label(&p, "__syslog_message_sd_ex_32473_iut"), Some("3"));
        assert_eq!(label(&p, "__syslog_message_sd_ex_32473_src"), Some("a\"b"));
        let want = Utc.with_ymd_and_hms(2003, 10, 11, 22, 14, 15).unwrap()
            + chrono::Duration::milliseconds(3);
        assert_eq!(p.timestamp, Some(SystemTime::from(want)));
        let mut o = opts(Format::Rfc5424);
        o.use_rfc5424_message = true;
        o.label_structured_data = false;
        let p = parse(f, &o, now).unwrap();
        assert_eq!(p.line, f);
        assert!(p
            .labels
            .iter()
            .all(|(k, _)| !k.starts_with("__syslog_message_sd_")));
    }

    #[test]
    fn rfc3164_year_comes_from_the_clock() {
        let f = "<13>Dec 31 23:59:58 myhost sshd[42]: bye";
        let jan = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 5).unwrap();
        let p = parse(f, &opts(Format::Rfc3164), jan).unwrap();
        assert_eq!(p.line, "bye");
        assert_eq!(label(&p, "__syslog_message_app_name"), Some("sshd"));
        assert_eq!(label(&p, "__syslog_message_proc_id"), Some("42"));
        assert_eq!(label(&p, "__syslog_message_hostname"), Some("myhost"));
        assert_eq!(label(&p, "__syslog_message_severity"), Some("notice"));
        assert_eq!(label(&p, "__syslog_message_facility"), Some("user"));
        let want = Utc.with_ymd_and_hms(2024, 12, 31, 23, 59, 58).unwrap();
        assert_eq!(p.timestamp, Some(SystemTime::from(want)));
        let dec = Utc.with_ymd_and_hms(2031, 12, 31, 23, 59, 59).unwrap();
        let p = parse(f, &opts(Format::Rfc3164), dec).unwrap();
        let want = Utc.with_ymd_and_hms(2031, 12, 31, 23, 59, 58).unwrap();
        assert_eq!(p.timestamp, Some(SystemTime::from(want)));
    }

    #[test]
    fn either_format_parses_and_garbage_is_kept() {
        let now = Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();
        // A BSD message to a listener set to RFC 5424 still parses.
        let p = parse("<14>Jun  1 00:00:00 h app: x", &opts(Format::Rfc5424), now).unwrap();
        assert_eq!(p.line, "x");
        assert_eq!(label(&p, "__syslog_message_app_name"), Some("app"));
        let p = parse("<14>1 - h app - - - msg", &opts(Format::Rfc5424), now).unwrap();
        assert_eq!(p.line, "msg");
        assert_eq!(label(&p, "__syslog_message_hostname"), Some("h"));
        let empty = "<34>1 2003-10-11T22:14:15.003Z mymachine su - ID47 -";
        assert_eq!(
            parse(empty, &opts(Format::Rfc5424), now),
            Err(Skip::EmptyMessage)
        );
        let p = parse("\u{1}\u{2} not syslog", &opts(Format::Rfc5424), now).unwrap();
        assert!(p.line.contains("not syslog"));
    }

    #[test]
    fn settings_refuse_what_they_cannot_do() {
        let cfg = |y: &str| -> SyslogConfig { serde_yaml_ng::from_str(y).unwrap() };
        let e = |y: &str| settings(&cfg(y)).err().unwrap();
        assert!(
            e("listen_protocol: sctp\nlisten_address: 127.0.0.1:1").starts_with("listen_protocol:")
        );
        assert!(
            e("syslog_format: rfc3339\nlisten_address: 127.0.0.1:1").starts_with("syslog_format:")
        );
        assert!(e("labels: {}").starts_with("listen_address:"));
        assert!(
            e("listen_address: 127.0.0.1:1\ntls_config: {insecure_skip_verify: true}")
                .starts_with("tls_config.insecure_skip_verify")
        );
        assert!(e("listen_address: 127.0.0.1:1\ntls_config: {cert_file: /nonexistent.pem, key_file: /n.pem}")
            .starts_with("tls_config:"));
        // A key promtail's block does not have is named, not ignored.
        let unknown = serde_yaml_ng::from_str::<SyslogConfig>("listen_address: x\nlisten_port: 1")
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("listen_port"), "{unknown}");
        assert!(
            e("listen_address: 127.0.0.1:1\nlisten_protocol: udp\nmax_connections: 5")
                .starts_with("max_connections:")
        );
        assert!(
            e("listen_address: 127.0.0.1:1\nlisten_protocol: udp\nidle_timeout: 5m")
                .starts_with("idle_timeout:")
        );
        let ok = settings(&cfg("listen_address: ':1514'\nlisten_protocol: udp")).unwrap();
        assert_eq!(ok.transport, Transport::Udp);
        assert_eq!(ok.max_message_length, 8192);
        assert_eq!(ok.listen_address.port(), 1514);
    }
}
