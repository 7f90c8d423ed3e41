//! promtail's `gelf` source: GELF messages over UDP (`listen_address`,
//! `labels`, `use_incoming_timestamp`, and relabeling over
//! `__gelf_message_level`, `__gelf_message_host`, `__gelf_message_version`
//! and `__gelf_message_facility`). The line is the message as JSON.
//!
//! Datagrams are whole messages or chunks (magic `0x1e 0x0f`, an 8-byte
//! message id, sequence number and count, at most 128 chunks); payloads
//! are gzip, zlib or plain JSON. Chunks wait for their siblings at most
//! [`Limits::timeout`] (5 s, as the GELF spec says), and all waiting
//! chunks together are bounded in count and bytes: past a bound the
//! oldest incomplete message is thrown away, so a flood of chunks that
//! never complete costs a fixed amount of memory.
//!
//! UDP has no acknowledgements: what the kernel dropped or a sender never
//! sent cannot be asked for again, so entries carry no ack.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::config::{GelfConfig, ScrapeConfig};
use crate::entry::{Entry, LabelSet};
use crate::relabel::{self, RelabelConfig};
use crate::sources::serving::{self, Serving};

const CHUNK_MAGIC: [u8; 2] = [0x1e, 0x0f];
const CHUNK_HEADER: usize = 12;
const MAX_CHUNKS: u8 = 128;
/// Largest message once decompressed.
pub const MAX_MESSAGE: usize = 16 << 20;
/// Bookkeeping counted per incomplete message besides its bytes.
const PENDING_OVERHEAD: usize = 128;

static ENTRIES: AtomicU64 = AtomicU64::new(0);
static ERRORS: AtomicU64 = AtomicU64::new(0);

/// promtail's GELF self-metrics.
pub fn collect(set: &mut exporter_toolkit::exposition::MetricSet) {
    set.counter(
        "promtail_gelf_target_entries_total",
        "Total number of successful entries sent to the GELF target",
        &[],
        ENTRIES.load(Ordering::Relaxed) as f64,
    );
    set.counter(
        "promtail_gelf_target_parsing_errors_total",
        "Total number of parsing errors while receiving GELF messages",
        &[],
        ERRORS.load(Ordering::Relaxed) as f64,
    );
}

/// Bounds of chunk reassembly.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// An incomplete message is dropped this long after its first chunk.
    pub timeout: Duration,
    /// Incomplete messages kept at once.
    pub max_messages: usize,
    /// Bytes of chunks (plus bookkeeping) kept at once.
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(5),
            max_messages: 4096,
            max_bytes: 64 << 20,
        }
    }
}

struct Pending {
    first: Instant,
    chunks: Vec<Option<Vec<u8>>>,
    have: usize,
    bytes: usize,
}

/// Puts chunked messages back together, within [`Limits`].
pub struct Reassembler {
    limits: Limits,
    pending: HashMap<[u8; 8], Pending>,
    /// Message ids by arrival of their first chunk: expiry and eviction
    /// take from the front. Entries of completed messages stay until they
    /// reach the front (or a compaction), and are skipped there.
    order: VecDeque<([u8; 8], Instant)>,
    bytes: usize,
    /// Incomplete messages thrown away (timed out or evicted).
    pub discarded: u64,
}

impl Reassembler {
    pub fn new(limits: Limits) -> Reassembler {
        Reassembler {
            limits,
            pending: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            discarded: 0,
        }
    }

    /// Bytes held by incomplete messages (with bookkeeping).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Incomplete messages held.
    pub fn messages(&self) -> usize {
        self.pending.len()
    }

    /// Takes one datagram: a whole message is returned as is, a chunk is
    /// kept and the message returned once its last chunk arrived.
    pub fn push(&mut self, datagram: &[u8], now: Instant) -> Result<Option<Vec<u8>>, String> {
        self.expire(now);
        if !datagram.starts_with(&CHUNK_MAGIC) {
            return Ok(Some(datagram.to_vec()));
        }
        if datagram.len() <= CHUNK_HEADER {
            return Err("chunk shorter than its header".into());
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&datagram[2..10]);
        let (seq, count) = (datagram[10], datagram[11]);
        if count == 0 || count > MAX_CHUNKS || seq >= count {
            return Err(format!("chunk {seq} of {count}: out of range"));
        }
        let data = &datagram[CHUNK_HEADER..];
        if count == 1 {
            return Ok(Some(data.to_vec()));
        }
        if let Some(p) = self.pending.get(&id) {
            if p.chunks.len() != count as usize {
                self.remove(&id);
                self.discarded += 1;
                return Err("chunks of one message disagree on their count".into());
            }
            if p.chunks[seq as usize].is_some() {
                return Ok(None); // a repeated chunk
            }
        }
        let is_new = !self.pending.contains_key(&id);
        let cost = data.len()
            + if is_new {
                PENDING_OVERHEAD + 24 * count as usize
            } else {
                0
            };
        if cost > self.limits.max_bytes {
            return Err("chunk larger than the reassembly limit".into());
        }
        while self.bytes + cost > self.limits.max_bytes
            || (is_new && self.pending.len() >= self.limits.max_messages)
        {
            if !self.evict_oldest() {
                break;
            }
        }
        if !self.pending.contains_key(&id) && !is_new {
            // Evicted to make room for its own chunk.
            return Err("message evicted: reassembly limits reached".into());
        }
        let p = self.pending.entry(id).or_insert_with(|| {
            self.order.push_back((id, now));
            Pending {
                first: now,
                chunks: vec![None; count as usize],
                have: 0,
                bytes: PENDING_OVERHEAD + 24 * count as usize,
            }
        });
        p.chunks[seq as usize] = Some(data.to_vec());
        p.have += 1;
        p.bytes += data.len();
        self.bytes += cost;
        if p.have < p.chunks.len() {
            if self.order.len() > 4 * self.limits.max_messages.max(16) {
                let pending = &self.pending;
                self.order
                    .retain(|(id, t)| pending.get(id).is_some_and(|p| p.first == *t));
            }
            return Ok(None);
        }
        let p = self.pending.remove(&id).expect("present");
        self.bytes -= p.bytes;
        let mut out = Vec::with_capacity(p.bytes);
        for c in p.chunks.into_iter().flatten() {
            out.extend_from_slice(&c);
        }
        Ok(Some(out))
    }

    fn remove(&mut self, id: &[u8; 8]) {
        if let Some(p) = self.pending.remove(id) {
            self.bytes -= p.bytes;
        }
    }

    /// Drops the oldest incomplete message; false when there is none.
    fn evict_oldest(&mut self) -> bool {
        while let Some((id, t)) = self.order.pop_front() {
            if self.pending.get(&id).is_some_and(|p| p.first == t) {
                self.remove(&id);
                self.discarded += 1;
                return true;
            }
        }
        false
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(id, t)) = self.order.front() {
            if now.saturating_duration_since(t) < self.limits.timeout {
                break;
            }
            self.order.pop_front();
            if self.pending.get(&id).is_some_and(|p| p.first == t) {
                self.remove(&id);
                self.discarded += 1;
            }
        }
    }
}

/// A whole payload: gzip, zlib or plain, then a JSON object.
pub fn decode_payload(payload: &[u8]) -> Result<Map<String, Value>, String> {
    let mut plain = Vec::new();
    let reader: Option<Box<dyn Read + '_>> = if payload.starts_with(&[0x1f, 0x8b]) {
        Some(Box::new(flate2::read::MultiGzDecoder::new(payload)))
    } else if payload.len() >= 2
        && payload[0] == 0x78
        && (u16::from(payload[0]) * 256 + u16::from(payload[1])) % 31 == 0
    {
        Some(Box::new(flate2::read::ZlibDecoder::new(payload)))
    } else {
        None
    };
    let json: &[u8] = match reader {
        Some(r) => {
            r.take(MAX_MESSAGE as u64 + 1)
                .read_to_end(&mut plain)
                .map_err(|e| format!("decompressing: {e}"))?;
            if plain.len() > MAX_MESSAGE {
                return Err(format!("message larger than {MAX_MESSAGE} bytes"));
            }
            &plain
        }
        None => payload,
    };
    match serde_json::from_slice(json).map_err(|e| format!("JSON: {e}"))? {
        Value::Object(m) => Ok(m),
        _ => Err("not a JSON object".into()),
    }
}

/// Syslog severities by GELF level, as promtail names them.
fn level_name(level: i64) -> &'static str {
    match level {
        0 => "emergency",
        1 => "alert",
        2 => "critical",
        3 => "error",
        4 => "warning",
        5 => "notice",
        6 => "informational",
        7 => "debug",
        _ => "",
    }
}

/// A decoded message as a line, its `__gelf_*` labels and its timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub line: String,
    pub level: String,
    pub host: String,
    pub version: String,
    pub facility: String,
    /// The message's own `timestamp` (0 when absent).
    pub timestamp: f64,
}

fn string_field(m: &Map<String, Value>, key: &str) -> String {
    match m.get(key) {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

/// The line is the message re-encoded as go-gelf writes it (promtail's
/// format): the standard fields first, empty optional ones left out, then
/// every additional field.
pub fn message(m: &Map<String, Value>) -> Message {
    let level = m
        .get("level")
        .and_then(Value::as_f64)
        .map(|l| l as i64)
        .unwrap_or(0);
    let timestamp = m.get("timestamp").and_then(Value::as_f64).unwrap_or(0.0);
    let mut line = String::from("{");
    let mut put = |k: &str, v: &Value| {
        if line.len() > 1 {
            line.push(',');
        }
        line.push_str(&Value::String(k.to_string()).to_string());
        line.push(':');
        line.push_str(&v.to_string());
    };
    let empty = Value::String(String::new());
    for key in ["version", "host", "short_message"] {
        put(key, m.get(key).unwrap_or(&empty));
    }
    for key in ["full_message", "timestamp", "level", "facility"] {
        match m.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(Value::Number(n)) if key == "level" && n.as_f64() == Some(0.0) => {}
            Some(v) => put(key, v),
        }
    }
    let standard = [
        "version",
        "host",
        "short_message",
        "full_message",
        "timestamp",
        "level",
        "facility",
    ];
    let mut extra: Vec<(&String, &Value)> = m
        .iter()
        .filter(|(k, _)| !standard.contains(&k.as_str()))
        .collect();
    extra.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in extra {
        put(k, v);
    }
    line.push('}');
    Message {
        line,
        level: level_name(level).to_string(),
        host: string_field(m, "host"),
        version: string_field(m, "version"),
        facility: string_field(m, "facility"),
        timestamp,
    }
}

/// What turns a message into an entry: the job's labels, relabeling,
/// `use_incoming_timestamp`.
pub struct Formatter {
    pub labels: LabelSet,
    pub relabel: Vec<RelabelConfig>,
    pub use_incoming_timestamp: bool,
}

impl Formatter {
    pub fn new(cfg: &GelfConfig, relabel: &[RelabelConfig]) -> Formatter {
        Formatter {
            labels: cfg.labels.clone().into_iter().collect(),
            relabel: relabel.to_vec(),
            use_incoming_timestamp: cfg.use_incoming_timestamp,
        }
    }

    /// `None` when relabeling drops the message or leaves no label.
    pub fn entry(&self, msg: Message) -> Option<Entry> {
        let mut labels = self.labels.clone();
        for (k, v) in [
            ("__gelf_message_level", msg.level),
            ("__gelf_message_host", msg.host),
            ("__gelf_message_version", msg.version),
            ("__gelf_message_facility", msg.facility),
        ] {
            // An empty value is no label, as in Prometheus' label sets.
            if !v.is_empty() {
                labels.insert(k.to_string(), v);
            }
        }
        let labels: LabelSet = relabel::process(labels, &self.relabel)?
            .into_iter()
            .filter(|(k, _)| !k.starts_with("__"))
            .collect();
        if labels.is_empty() {
            return None;
        }
        let mut e = Entry::new(labels, msg.line);
        // Each its own nanosecond: Loki keeps one of identical entries.
        e.timestamp =
            UNIX_EPOCH + Duration::from_nanos(crate::sources::file::watcher::read_times(1));
        if self.use_incoming_timestamp && msg.timestamp != 0.0 && msg.timestamp.is_finite() {
            let d = Duration::from_secs_f64(msg.timestamp.abs().min(1e12));
            e.timestamp = if msg.timestamp > 0.0 {
                UNIX_EPOCH + d
            } else {
                UNIX_EPOCH.checked_sub(d).unwrap_or(UNIX_EPOCH)
            };
        }
        Some(e)
    }
}

/// One listening GELF socket.
pub struct GelfTarget {
    serving: Serving,
    addr: SocketAddr,
}

fn listen_address(cfg: &GelfConfig) -> Result<SocketAddr, String> {
    let a = if cfg.listen_address.is_empty() {
        ":12201"
    } else {
        &cfg.listen_address
    };
    exporter_toolkit::server::resolve_listen_address(a)
        .map_err(|e| format!("gelf.listen_address: {e}"))?
        .into_iter()
        .next()
        .ok_or_else(|| format!("gelf.listen_address {a:?} resolves to nothing"))
}

/// `--check-config`: the listen address parses.
pub fn check(sc: &ScrapeConfig) -> Result<(), String> {
    match &sc.gelf {
        Some(cfg) => listen_address(cfg)
            .map(|_| ())
            .map_err(|e| format!("job {}: {e}", sc.job_name)),
        None => Ok(()),
    }
}

impl GelfTarget {
    /// Binds the UDP port (an error names it) and starts reading.
    pub fn start(sc: &ScrapeConfig, tx: mpsc::Sender<Entry>) -> Result<GelfTarget, String> {
        let cfg = sc.gelf.clone().ok_or("no gelf block")?;
        let sa = listen_address(&cfg).map_err(|e| format!("job {}: {e}", sc.job_name))?;
        let sock = serving::bind(sa, std::net::UdpSocket::bind)
            .map_err(|e| format!("job {}: gelf listening on {sa}: {e}", sc.job_name))?;
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = sock.local_addr().map_err(|e| e.to_string())?;
        let sock = tokio::net::UdpSocket::from_std(sock).map_err(|e| e.to_string())?;
        let formatter = Formatter::new(&cfg, &sc.relabel_configs);
        let job = sc.job_name.clone();
        tracing::info!(job = %job, address = %addr, "listening for GELF UDP messages");
        Ok(GelfTarget {
            serving: Serving::spawn(run(sock, formatter, tx, job)),
            addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stop(&self) {
        self.serving.stop();
    }

    /// Stops and waits until the port is closed.
    pub async fn join(self) {
        self.serving.join().await;
    }
}

async fn run(
    sock: tokio::net::UdpSocket,
    formatter: Formatter,
    tx: mpsc::Sender<Entry>,
    job: String,
) {
    let mut buf = vec![0u8; 65536];
    let mut chunks = Reassembler::new(Limits::default());
    loop {
        let n = match sock.recv_from(&mut buf).await {
            Ok((n, _)) => n,
            Err(e) => {
                tracing::warn!(job = %job, error = %e, "reading GELF socket");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let payload = match chunks.push(&buf[..n], Instant::now()) {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(e) => {
                ERRORS.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(job = %job, error = %e, "bad GELF chunk");
                continue;
            }
        };
        let msg = match decode_payload(&payload) {
            Ok(m) => message(&m),
            Err(e) => {
                ERRORS.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(job = %job, error = %e, "bad GELF message");
                continue;
            }
        };
        ENTRIES.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = formatter.entry(msg) {
            if tx.send(e).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn chunk(id: u64, seq: u8, count: u8, data: &[u8]) -> Vec<u8> {
        let mut v = CHUNK_MAGIC.to_vec();
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(&[seq, count]);
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn chunks_reassemble_in_any_order_and_repeats_are_ignored() {
        let mut r = Reassembler::new(Limits::default());
        let t = Instant::now();
        assert_eq!(r.push(&chunk(7, 2, 3, b"c"), t).unwrap(), None);
        assert_eq!(r.push(&chunk(7, 0, 3, b"a"), t).unwrap(), None);
        assert_eq!(r.push(&chunk(7, 0, 3, b"a"), t).unwrap(), None);
        assert_eq!(
            r.push(&chunk(7, 1, 3, b"b"), t).unwrap(),
            Some(b"abc".to_vec())
        );
        assert_eq!((r.messages(), r.bytes()), (0, 0));
        assert_eq!(r.push(b"{}", t).unwrap(), Some(b"{}".to_vec()));
        for bad in [
            chunk(1, 3, 3, b"x"),
            chunk(1, 0, 0, b"x"),
            chunk(1, 0, 129, b"x"),
            chunk(1, 0, 2, b""),
        ] {
            assert!(r.push(&bad, t).is_err());
        }
        r.push(&chunk(9, 0, 2, b"x"), t).unwrap();
        assert!(r.push(&chunk(9, 1, 3, b"y"), t).is_err(), "count changed");
        assert_eq!(r.messages(), 0);
    }

    #[test]
    fn incomplete_messages_time_out() {
        let mut r = Reassembler::new(Limits::default());
        let t = Instant::now();
        r.push(&chunk(1, 0, 2, b"a"), t).unwrap();
        r.push(&chunk(1, 1, 2, b"b"), t + Duration::from_secs(6))
            .unwrap();
        assert_eq!(r.discarded, 1);
        assert_eq!(r.messages(), 1, "the late chunk starts over");
        r.push(b"{}", t + Duration::from_secs(12)).unwrap();
        assert_eq!((r.messages(), r.bytes()), (0, 0));
    }

    #[test]
    fn a_flood_of_incomplete_chunks_stays_within_the_limits() {
        let limits = Limits {
            timeout: Duration::from_secs(5),
            max_messages: 1000,
            max_bytes: 4 << 20,
        };
        let mut r = Reassembler::new(limits);
        let t = Instant::now();
        let data = vec![0u8; 8000];
        // 400 MB of chunks whose siblings never come, all within the timeout.
        for id in 0..50_000u64 {
            r.push(&chunk(id, 0, 128, &data), t).unwrap();
            assert!(r.bytes() <= limits.max_bytes && r.messages() <= limits.max_messages);
            assert!(r.order.len() <= 4 * limits.max_messages + 1);
        }
        assert!(r.discarded > 49_000);
        // A message sent whole after the flood still completes.
        r.push(&chunk(u64::MAX, 0, 2, b"{\"a\":"), t).unwrap();
        assert_eq!(
            r.push(&chunk(u64::MAX, 1, 2, b"1}"), t).unwrap(),
            Some(b"{\"a\":1}".to_vec())
        );
    }

    #[test]
    fn payloads_decode_gzip_zlib_and_plain() {
        let json = br#"{"version":"1.1","host":"h","short_message":"hi","level":3,"_x":1}"#;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(json).unwrap();
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(json).unwrap();
        for p in [gz.finish().unwrap(), z.finish().unwrap(), json.to_vec()] {
            assert_eq!(decode_payload(&p).unwrap()["host"], "h");
        }
        assert!(decode_payload(b"[1]").is_err());
        assert!(decode_payload(&[0x1f, 0x8b, 0, 1]).is_err());
    }

    #[test]
    fn messages_become_entries_with_gelf_labels() {
        let m = decode_payload(br#"{"_b":"x","version":"1.1","host":"web","short_message":"hi","timestamp":1700000000.5,"level":3,"facility":"app","_a":2}"#).unwrap();
        let msg = message(&m);
        assert_eq!(
            msg.line,
            r#"{"version":"1.1","host":"web","short_message":"hi","timestamp":1700000000.5,"level":3,"facility":"app","_a":2,"_b":"x"}"#
        );
        let relabel: Vec<RelabelConfig> = serde_yaml_ng::from_str(
            "- {source_labels: [__gelf_message_level], target_label: level}\n- {source_labels: [__gelf_message_host], target_label: host}\n- {source_labels: [__gelf_message_facility], target_label: facility}\n- {source_labels: [__gelf_message_version], target_label: v}\n",
        )
        .unwrap();
        let cfg = GelfConfig {
            use_incoming_timestamp: true,
            labels: [("job".to_string(), "gelf".to_string())].into(),
            ..GelfConfig::default()
        };
        let e = Formatter::new(&cfg, &relabel).entry(msg).unwrap();
        assert_eq!(
            e.labels,
            relabel::labels([
                ("job", "gelf"),
                ("level", "error"),
                ("host", "web"),
                ("facility", "app"),
                ("v", "1.1")
            ])
        );
        assert_eq!(
            e.timestamp,
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_500)
        );
        let drop: Vec<RelabelConfig> = serde_yaml_ng::from_str(
            "- {action: drop, source_labels: [__gelf_message_host], regex: web}\n",
        )
        .unwrap();
        assert!(Formatter::new(&cfg, &drop).entry(message(&m)).is_none());
    }
}
