//! A Loki test receiver: the one test double the project allows.
//!
//! It serves `POST /loki/api/v1/push` on a loopback port and decodes the
//! real wire format independently of the shipper's own encoder: snappy
//! (block format) compressed protobuf `logproto.PushRequest`, or JSON
//! (`{"streams":[{"stream":{..},"values":[["ns","line",{..}]]}]}`) as Loki
//! accepts it. It answers as Loki does (204 on success, 400 with Loki's
//! message for a bad body), or as a test tells it to (429, 500, hang, down),
//! and stores what Loki stores: an entry identical in stream (tenant and
//! label set), timestamp and line to one already stored is dropped, the
//! push still answered 204 (Loki's ingester ignores it; its queries return
//! one of identical entries), so tests count what a user would see in
//! Loki. It reports problems a real Loki would reject or a user would
//! notice (entries out of timestamp order, a missing tenant), and can
//! enforce some of Loki's limits ([`Limits`], off by default).
//!
//! The server runs on its own thread with its own runtime, so blocking
//! tests and async tests can both use it.
//!
//! For benchmarks (`tests/examples/loki_bench_receiver.rs`) it has a
//! counting mode ([`Options::keep_entries`] false): entries are decoded and
//! checked as always but only counted, so memory stays flat over millions
//! of lines (duplicates are found among the last [`DEDUP_WINDOW_COUNTING`]
//! entries of each stream), and each entry's write-to-acknowledge latency
//! can be taken from a timestamp the writer put in the line
//! ([`Options::latency_marker`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

/// How the receiver answers pushes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Store the entries and answer 204, as Loki does.
    Accept,
    /// Answer every push with this status (429, 500, 400...) and store nothing.
    Status(u16),
    /// Read the request and never answer it (until the mode changes, when
    /// the connection is closed without a response).
    Hang,
    /// Connection refused: the listener is closed (and open connections
    /// dropped); it is bound again on the same port when the mode changes.
    Down,
}

/// One entry as it was stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedEntry {
    /// Nanoseconds since the Unix epoch.
    pub timestamp_ns: i128,
    pub line: String,
    pub structured_metadata: Vec<(String, String)>,
}

/// The entries stored of one stream (one tenant and label set), in
/// arrival order.
#[derive(Clone, Debug, Default)]
pub struct ReceivedStream {
    pub tenant: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub entries: Vec<ReceivedEntry>,
}

/// How a receiver keeps what arrives.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where pushes are served (`127.0.0.1:0`: a free loopback port).
    pub listen: SocketAddr,
    /// Keep every entry (tests), or only count them (benchmarks).
    pub keep_entries: bool,
    /// When set, a line holding this marker followed by digits (nanoseconds
    /// since the epoch, when the line was written) adds one latency sample:
    /// the time from then until the push is acknowledged.
    pub latency_marker: Option<String>,
    /// Serve HTTPS instead of HTTP.
    pub tls: Option<ReceiverTls>,
    /// Loki's limits to enforce (Loki's defaults unless set otherwise).
    pub limits: Limits,
}

/// Some of Loki's per-tenant limits (`limits_config`), each off when
/// `None` (Loki's own default in brackets; [`Limits::default`] is Loki's
/// defaults, what a user's Loki enforces). An entry over a limit is
/// refused and the others of the push are stored; the push is then
/// answered 400 with Loki's messages, as Loki's distributor does.
///
/// Not mirrored: the per-stream rate limit, label count and length limits,
/// structured metadata size limits, and "too far behind" for entries older than
/// the stream's newest (reported as [`LokiReceiver::problems`] instead).
#[derive(Clone, Debug)]
pub struct Limits {
    /// `max_line_size` [256 KB]: longer lines are refused.
    pub max_line_size: Option<usize>,
    /// `reject_old_samples_max_age` [1 week]: entries older than now minus
    /// this are refused.
    pub reject_old_samples_max_age: Option<Duration>,
    /// `creation_grace_period` [10 minutes]: entries newer than now plus
    /// this are refused.
    pub creation_grace_period: Option<Duration>,
    /// `ingestion_rate_mb` and `ingestion_burst_size_mb` [4 MB/s, 6 MB]: a
    /// push whose entries exceed the tenant's rate is answered 429 and
    /// stores nothing.
    pub ingestion_rate: Option<IngestionRate>,
    /// `allow_structured_metadata` [true since Loki 3.0]: when false, an
    /// entry carrying structured metadata is refused (the entries without
    /// any in the same push are stored), as a Loki 3.x configured without
    /// it does, or one with schemas older than v13.
    pub allow_structured_metadata: bool,
}

impl Default for Limits {
    /// Loki's defaults: 256 KB lines, nothing older than a week or more
    /// than 10 minutes ahead, 4 MB/s per tenant with a 6 MB burst.
    fn default() -> Self {
        const MB: f64 = 1024.0 * 1024.0;
        Limits {
            max_line_size: Some(256 * 1024),
            reject_old_samples_max_age: Some(Duration::from_secs(7 * 24 * 3600)),
            creation_grace_period: Some(Duration::from_secs(600)),
            ingestion_rate: Some(IngestionRate {
                bytes_per_second: 4.0 * MB,
                burst_bytes: 6.0 * MB,
            }),
            allow_structured_metadata: true,
        }
    }
}

impl Limits {
    /// A Loki configured without these limits (`max_line_size: 0`,
    /// `reject_old_samples: false`, no grace period, an ingestion rate
    /// nothing reaches): for benchmarks, and for tests that send on
    /// purpose what a default Loki refuses (say why where it is used).
    pub fn none() -> Limits {
        Limits {
            max_line_size: None,
            reject_old_samples_max_age: None,
            creation_grace_period: None,
            ingestion_rate: None,
            allow_structured_metadata: true,
        }
    }
}

/// A tenant's ingestion rate (a token bucket of bytes, as Loki's).
#[derive(Clone, Copy, Debug)]
pub struct IngestionRate {
    pub bytes_per_second: f64,
    pub burst_bytes: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            keep_entries: true,
            latency_marker: None,
            tls: None,
            limits: Limits::default(),
        }
    }
}

/// Counters of a receiver, also kept in counting mode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests: u64,
    pub accepted_requests: u64,
    pub rejected_bad_body: u64,
    /// Push requests answered 429 by [`Limits::ingestion_rate`].
    pub rate_limited: u64,
    /// Entries stored.
    pub entries: u64,
    /// Entries dropped because one identical in stream, timestamp and line
    /// was stored before (Loki answers 204 for them all the same).
    pub duplicates_dropped: u64,
    /// Entries refused by one of [`Options::limits`] (answered 400).
    pub rejected_entries: u64,
    /// Bytes of lines stored.
    pub line_bytes: u64,
    /// Bytes of push bodies accepted, as sent (compressed).
    pub body_bytes: u64,
    pub streams: usize,
    pub problems: usize,
    /// Write-to-acknowledge latencies measured (see [`Options::latency_marker`]).
    pub latency_samples: usize,
}

/// Problems kept in counting mode: enough to say what went wrong.
const MAX_PROBLEMS_COUNTING: usize = 100;
/// Latency samples kept at most (a sample is 4 bytes).
const MAX_LATENCY_SAMPLES: usize = 20_000_000;
/// Entries of each stream a counting receiver compares new ones with to
/// find duplicates (about 40 bytes each, so at most about 5 MiB a stream).
/// A shipper that stamps each line once sends an identical entry again
/// only by resending a batch it already sent, and a batch is 1 MiB by
/// default: this many entries of lines of 8 bytes or more.
pub const DEDUP_WINDOW_COUNTING: usize = 1 << 17;

/// A stream's key: tenant, canonical labels `{a="b", c="d"}`.
type StreamKey = (Option<String>, String);

#[derive(Default)]
struct Store {
    streams: BTreeMap<StreamKey, ReceivedStream>,
    /// What finds duplicates (and, in counting mode, entries out of order)
    /// without the entries themselves.
    index: HashMap<StreamKey, StreamIndex>,
    /// The ingestion rate's tokens per tenant.
    buckets: HashMap<Option<String>, TokenBucket>,
    counts: Counts,
    problems: Vec<String>,
    required_tenant: Option<String>,
    /// Write-to-acknowledge latencies, microseconds.
    latencies_us: Vec<u32>,
    /// The headers of the last push, names in lower case.
    last_headers: Vec<(String, String)>,
}

/// Identities of a stream's stored entries.
#[derive(Default)]
struct StreamIndex {
    /// The newest timestamp stored (counting mode checks order with it).
    newest_ns: Option<i128>,
    /// [`identity`] of stored entries to the index of the first entry with
    /// it (keep mode; counting mode keeps no entries and stores 0).
    by_identity: HashMap<u64, usize>,
    /// Counting mode: the identities in `by_identity`, oldest first, at
    /// most [`DEDUP_WINDOW_COUNTING`].
    recent: VecDeque<u64>,
}

impl StreamIndex {
    /// Whether `e` is identical in timestamp and line to an entry stored
    /// (`stored`, the stream's entries in keep mode; empty in counting
    /// mode, where an identity seen is taken as proof: with a full window,
    /// a new entry's 64-bit identity matches another's with a chance of
    /// about 1 in 10^14), remembering it as stored if not.
    fn seen_or_add(&mut self, e: &ReceivedEntry, stored: &[ReceivedEntry], keep: bool) -> bool {
        let id = identity(e.timestamp_ns, &e.line);
        if let Some(&at) = self.by_identity.get(&id) {
            if !keep {
                return true;
            }
            let same = |s: &ReceivedEntry| s.timestamp_ns == e.timestamp_ns && s.line == e.line;
            // Else a different entry shares the identity's hash: look at all.
            return same(&stored[at]) || stored.iter().any(same);
        }
        if keep {
            self.by_identity.insert(id, stored.len());
        } else {
            self.by_identity.insert(id, 0);
            self.recent.push_back(id);
            if self.recent.len() > DEDUP_WINDOW_COUNTING {
                if let Some(old) = self.recent.pop_front() {
                    self.by_identity.remove(&old);
                }
            }
        }
        false
    }
}

/// What Loki compares to find an entry already stored in a stream: its
/// timestamp and line (not its structured metadata), hashed.
fn identity(timestamp_ns: i128, line: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    timestamp_ns.hash(&mut h);
    line.hash(&mut h);
    h.finish()
}

/// Loki's ingestion rate limiter: `burst` bytes at most, refilled at
/// `rate` bytes a second; a push takes its bytes or is refused whole.
struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn allow(&mut self, limit: IngestionRate, bytes: f64, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * limit.bytes_per_second;
        self.tokens = (self.tokens + refill).min(limit.burst_bytes);
        self.at = now;
        if bytes > self.tokens {
            return false;
        }
        self.tokens -= bytes;
        true
    }
}

struct Shared {
    store: Mutex<Store>,
    mode: watch::Sender<Mode>,
    keep_entries: bool,
    latency_marker: Option<Vec<u8>>,
    limits: Limits,
}

/// HTTPS for the receiver: its certificate and key (PEM), and the CA
/// (PEM) client certificates must be signed by, if any.
#[derive(Clone, Debug)]
pub struct ReceiverTls {
    pub cert_pem: String,
    pub key_pem: String,
    pub client_ca_pem: Option<String>,
}

fn tls_acceptor(t: &ReceiverTls) -> tokio_rustls::TlsAcceptor {
    let certs: Vec<_> = rustls_pemfile::certs(&mut t.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("receiver certificate PEM");
    let key = rustls_pemfile::private_key(&mut t.key_pem.as_bytes())
        .expect("receiver key PEM")
        .expect("a private key in the receiver key PEM");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("TLS versions");
    let builder = match &t.client_ca_pem {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_pemfile::certs(&mut ca.as_bytes()) {
                roots.add(c.expect("client CA PEM")).expect("client CA");
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs, key)
        .expect("receiver certificate and key");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A running receiver; stopped when dropped.
pub struct LokiReceiver {
    shared: Arc<Shared>,
    addr: SocketAddr,
    https: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LokiReceiver {
    /// Starts a receiver on a free loopback port, accepting pushes and
    /// keeping every entry.
    pub fn start() -> LokiReceiver {
        LokiReceiver::start_with(Options::default()).expect("binding a loopback port")
    }

    /// Starts a receiver on `addr` (port 0: a free one), accepting pushes;
    /// e.g. on the gateway of a test's own Docker network, for shippers in
    /// its containers.
    pub fn start_on(addr: SocketAddr) -> LokiReceiver {
        LokiReceiver::start_with(Options {
            listen: addr,
            ..Options::default()
        })
        .unwrap_or_else(|e| panic!("binding the Loki test receiver to {addr}: {e}"))
    }

    /// A Loki set up for a backfill (`reject_old_samples: false`), its
    /// other limits Loki's defaults: for lines that carry their own past
    /// times.
    pub fn start_accepting_old_samples() -> LokiReceiver {
        LokiReceiver::start_with(Options {
            limits: Limits {
                reject_old_samples_max_age: None,
                ..Limits::default()
            },
            ..Options::default()
        })
        .expect("binding a loopback port")
    }

    /// A Loki 3.x with `allow_structured_metadata: false` (its other
    /// limits Loki's defaults): entries with structured metadata are
    /// refused with Loki's 400.
    pub fn start_refusing_structured_metadata() -> LokiReceiver {
        LokiReceiver::start_with(Options {
            limits: Limits {
                allow_structured_metadata: false,
                ..Limits::default()
            },
            ..Options::default()
        })
        .expect("binding a loopback port")
    }

    /// The same over HTTPS.
    pub fn start_tls(tls: ReceiverTls) -> LokiReceiver {
        LokiReceiver::start_with(Options {
            tls: Some(tls),
            ..Options::default()
        })
        .expect("binding a loopback port")
    }

    /// Starts a receiver as `options` say; fails when the address cannot
    /// be bound.
    pub fn start_with(options: Options) -> std::io::Result<LokiReceiver> {
        let https = options.tls.is_some();
        let acceptor = options.tls.as_ref().map(tls_acceptor);
        let std_listener = std::net::TcpListener::bind(options.listen)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (mode, _) = watch::channel(Mode::Accept);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            mode,
            keep_entries: options.keep_entries,
            latency_marker: options
                .latency_marker
                .filter(|m| !m.is_empty())
                .map(String::into_bytes),
            limits: options.limits,
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let for_thread = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("loki-receiver".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("building the receiver's runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(std_listener)
                        .expect("registering the listener");
                    tokio::select! {
                        _ = serve(for_thread, listener, addr, acceptor) => {}
                        _ = stop_rx => {}
                    }
                });
            })
            .expect("starting the receiver thread");
        Ok(LokiReceiver {
            shared,
            addr,
            https,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (`https://` with TLS)
    pub fn base_url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The push URL to give a client.
    pub fn push_url(&self) -> String {
        format!("{}/loki/api/v1/push", self.base_url())
    }

    /// Changes how pushes are answered. Going down or coming back up waits
    /// (up to 5 s) until the port refuses or accepts connections.
    pub fn set_mode(&self, mode: Mode) {
        let old = self.shared.mode.send_replace(mode);
        let down = mode == Mode::Down;
        if down == (old == Mode::Down) {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let refused =
                std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200))
                    .is_err();
            if refused == down {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn mode(&self) -> Mode {
        *self.shared.mode.borrow()
    }

    /// Pushes without this `X-Scope-OrgID` are answered 401 "no org id" (as
    /// a Loki with auth_enabled does) and reported as problems.
    pub fn require_tenant(&self, tenant: Option<&str>) {
        self.store().required_tenant = tenant.map(str::to_string);
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.shared.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Push requests received (any outcome).
    pub fn requests(&self) -> u64 {
        self.store().counts.requests
    }

    /// Push requests answered 204.
    pub fn accepted_requests(&self) -> u64 {
        self.store().counts.accepted_requests
    }

    /// Push requests answered 400 because the body could not be decoded.
    pub fn bad_requests(&self) -> u64 {
        self.store().counts.rejected_bad_body
    }

    /// Every counter at once (the same in both modes).
    pub fn counts(&self) -> Counts {
        let s = self.store();
        Counts {
            streams: s.streams.len(),
            problems: s.problems.len(),
            latency_samples: s.latencies_us.len(),
            ..s.counts.clone()
        }
    }

    /// Write-to-acknowledge latencies measured so far, in microseconds,
    /// sorted.
    pub fn latencies_us(&self) -> Vec<u32> {
        let mut l = self.store().latencies_us.clone();
        l.sort_unstable();
        l
    }

    /// Every stream stored, by tenant and label set.
    pub fn streams(&self) -> Vec<ReceivedStream> {
        self.store().streams.values().cloned().collect()
    }

    /// Every line stored, stream by stream, in arrival order.
    pub fn lines(&self) -> Vec<String> {
        self.store()
            .streams
            .values()
            .flat_map(|s| s.entries.iter().map(|e| e.line.clone()))
            .collect()
    }

    /// Entries stored (also in counting mode).
    pub fn entry_count(&self) -> usize {
        self.store().counts.entries as usize
    }

    /// Entries not stored because one identical in stream, timestamp and
    /// line was stored before (as Loki does; the push was answered 204).
    pub fn duplicates_dropped(&self) -> u64 {
        self.store().counts.duplicates_dropped
    }

    /// What a real Loki would have rejected or a user would notice:
    /// entries older than the one before in the same stream, pushes without
    /// the required tenant. Empty when all is well.
    pub fn problems(&self) -> Vec<String> {
        self.store().problems.clone()
    }

    /// The headers of the last push request (names in lower case), in the
    /// order they came.
    pub fn last_headers(&self) -> Vec<(String, String)> {
        self.store().last_headers.clone()
    }

    /// Forgets every entry and counter (the mode stays).
    pub fn clear(&self) {
        let mut s = self.store();
        let required = s.required_tenant.take();
        *s = Store::default();
        s.required_tenant = required;
    }

    /// Waits until at least `n` entries are stored; false on timeout.
    pub fn wait_for_entries(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.entry_count() >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LokiReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Released hanging requests let the runtime finish quickly.
        self.shared.mode.send_replace(Mode::Accept);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Accepts connections while the mode is not `Down`; while it is, the
/// listener is closed (connection refused) and every open connection is
/// dropped, then the same port is bound again.
async fn serve(
    shared: Arc<Shared>,
    mut listener: tokio::net::TcpListener,
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let mut mode_rx = shared.mode.subscribe();
    loop {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            if *mode_rx.borrow_and_update() == Mode::Down {
                break;
            }
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let shared = Arc::clone(&shared);
                    let tls = tls.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            handle(Arc::clone(&shared), req)
                        });
                        let http = hyper::server::conn::http1::Builder::new();
                        match tls {
                            None => {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                            Some(acceptor) => {
                                // A failed handshake is the client's error to see.
                                if let Ok(stream) = acceptor.accept(stream).await {
                                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                                }
                            }
                        }
                    });
                }
                changed = mode_rx.changed() => {
                    if changed.is_err() { return; }
                }
                _ = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        connections.abort_all();
        drop(listener);
        while *mode_rx.borrow_and_update() == Mode::Down {
            if mode_rx.changed().await.is_err() {
                return;
            }
        }
        listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => break l,
                // The old socket may linger a moment; the port is ours.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
    }
}

type Reply = Response<Full<Bytes>>;

fn reply(status: u16, body: &str) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

/// An error makes hyper close the connection without a response.
#[derive(Debug)]
struct Hangup;
impl std::fmt::Display for Hangup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("hung request released without a response")
    }
}
impl std::error::Error for Hangup {}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Reply, Hangup> {
    let path = req.uri().path().to_string();
    match (req.method().as_str(), path.as_str()) {
        ("GET", "/ready") => return Ok(reply(200, "ready\n")),
        ("POST", "/loki/api/v1/push") => {}
        _ => return Ok(reply(404, "404 page not found\n")),
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let tenant = header("x-scope-orgid");
    shared
        .store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .last_headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let content_type = header("content-type").unwrap_or_default();
    let content_encoding = header("content-encoding").unwrap_or_default();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(Hangup),
    };
    let mode = *shared.mode.borrow();
    {
        let mut store = shared.store.lock().unwrap_or_else(|e| e.into_inner());
        store.counts.requests += 1;
        if let Some(required) = &store.required_tenant {
            if tenant.as_deref() != Some(required.as_str()) {
                let problem = format!("push with X-Scope-OrgID {tenant:?}, expected {required:?}");
                store.problems.push(problem);
                return Ok(reply(401, "no org id\n"));
            }
        }
    }
    match mode {
        Mode::Accept => {}
        Mode::Status(code) => return Ok(reply(code, &status_message(code))),
        Mode::Hang | Mode::Down => {
            let mut rx = shared.mode.subscribe();
            while matches!(*rx.borrow_and_update(), Mode::Hang) {
                if rx.changed().await.is_err() {
                    break;
                }
            }
            return Err(Hangup);
        }
    }
    let decoded = if content_type.starts_with("application/json") {
        if !content_encoding.is_empty() && content_encoding != "identity" {
            Err(format!(
                "unsupported content encoding {content_encoding:?} in the test receiver"
            ))
        } else {
            decode_json(&body)
        }
    } else {
        decode_protobuf(&body)
    };
    let streams = match decoded {
        Ok(s) => s,
        Err(message) => {
            shared
                .store
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .counts
                .rejected_bad_body += 1;
            return Ok(reply(400, &format!("{message}\n")));
        }
    };
    let (streams, refused) = validate(&shared.limits, streams);
    let mut store = shared.store.lock().unwrap_or_else(|e| e.into_inner());
    store.counts.rejected_entries += refused.len() as u64;
    if let Some(limit) = shared.limits.ingestion_rate {
        let (lines, bytes) = streams.iter().fold((0, 0), |(n, b), (_, entries)| {
            (
                n + entries.len(),
                b + entries.iter().map(entry_size).sum::<usize>(),
            )
        });
        let now = Instant::now();
        let bucket = store
            .buckets
            .entry(tenant.clone())
            .or_insert_with(|| TokenBucket {
                tokens: limit.burst_bytes,
                at: now,
            });
        if lines > 0 && !bucket.allow(limit, bytes as f64, now) {
            store.counts.rate_limited += 1;
            let user = tenant.as_deref().unwrap_or("fake");
            let message = rate_limited(user, limit.bytes_per_second as u64, lines, bytes);
            return Ok(reply(429, &message));
        }
    }
    store.counts.body_bytes += body.len() as u64;
    let acked_ns = unix_nanos();
    for (labels, entries) in streams {
        store.add(
            tenant.clone(),
            labels,
            entries,
            shared.keep_entries,
            shared.latency_marker.as_deref().map(|m| (m, acked_ns)),
        );
    }
    if !refused.is_empty() {
        return Ok(reply(400, &format!("{}\n", refused.join("\n"))));
    }
    store.counts.accepted_requests += 1;
    Ok(reply(204, ""))
}

/// Bytes an entry counts for in Loki's rate limits: its line and its
/// structured metadata's names and values.
fn entry_size(e: &ReceivedEntry) -> usize {
    e.line.len()
        + e.structured_metadata
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

/// Drops the entries over one of `limits`, as Loki's distributor does
/// before anything is stored; returns the rest and Loki's message for
/// each entry dropped.
fn validate(limits: &Limits, streams: Decoded) -> (Decoded, Vec<String>) {
    let checked = limits.max_line_size.is_some()
        || limits.reject_old_samples_max_age.is_some()
        || limits.creation_grace_period.is_some()
        || !limits.allow_structured_metadata;
    if !checked {
        return (streams, Vec::new());
    }
    let now = unix_nanos();
    let oldest = limits
        .reject_old_samples_max_age
        .map(|age| now - age.as_nanos() as i128);
    let newest = limits
        .creation_grace_period
        .map(|grace| now + grace.as_nanos() as i128);
    let mut refused = Vec::new();
    let mut kept = Vec::new();
    for (labels, entries) in streams {
        let stream = canonical(&labels);
        let entries: Vec<ReceivedEntry> = entries
            .into_iter()
            .filter(|e| {
                let problem = if oldest.is_some_and(|o| e.timestamp_ns < o) {
                    format!(
                        "entry for stream '{stream}' has timestamp too old: {}, oldest acceptable timestamp is: {}",
                        rfc3339(e.timestamp_ns),
                        rfc3339(oldest.unwrap_or_default())
                    )
                } else if newest.is_some_and(|n| e.timestamp_ns > n) {
                    format!(
                        "entry for stream '{stream}' has timestamp too new: {}",
                        rfc3339(e.timestamp_ns)
                    )
                } else if !limits.allow_structured_metadata && !e.structured_metadata.is_empty() {
                    disallowed_structured_metadata(&stream)
                } else if let Some(max) = limits.max_line_size.filter(|m| e.line.len() > *m) {
                    format!(
                        "Max entry size '{max}' bytes exceeded for stream '{stream}' while adding an entry with length '{}' bytes",
                        e.line.len()
                    )
                } else {
                    return true;
                };
                refused.push(problem);
                false
            })
            .collect();
        if !entries.is_empty() {
            kept.push((labels, entries));
        }
    }
    (kept, refused)
}

/// Loki's answer (`validation.DisallowedStructuredMetadataErrorMsg`) for
/// an entry with structured metadata when `allow_structured_metadata` is
/// off.
pub fn disallowed_structured_metadata(stream: &str) -> String {
    format!(
        "stream '{stream}' includes structured metadata, but this feature is disallowed. Please see `limits_config.allow_structured_metadata` or contact your Loki administrator to enable it."
    )
}

/// RFC 3339 in UTC with seconds, as Loki prints times in its errors.
fn rfc3339(ns: i128) -> String {
    let secs = ns.div_euclid(1_000_000_000) as i64;
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| format!("{ns} ns since the epoch"))
}

impl Store {
    /// Stores one stream's entries as Loki does: an entry identical in
    /// stream, timestamp and line to one stored is dropped (and counted).
    /// With `latency`, (marker, acknowledged at), each stored line holding
    /// the marker adds a latency sample.
    fn add(
        &mut self,
        tenant: Option<String>,
        labels: BTreeMap<String, String>,
        entries: Vec<ReceivedEntry>,
        keep: bool,
        latency: Option<(&[u8], i128)>,
    ) {
        let key = (tenant.clone(), canonical(&labels));
        let Store {
            streams,
            index,
            problems,
            counts,
            latencies_us,
            ..
        } = self;
        let stream = streams
            .entry(key.clone())
            .or_insert_with(|| ReceivedStream {
                tenant,
                labels,
                entries: Vec::new(),
            });
        let index = index.entry(key).or_default();
        for e in entries {
            if index.seen_or_add(&e, &stream.entries, keep) {
                counts.duplicates_dropped += 1;
                continue;
            }
            counts.entries += 1;
            counts.line_bytes += e.line.len() as u64;
            if let Some((marker, acked_ns)) = latency {
                if let Some(w) = written_ns(e.line.as_bytes(), marker) {
                    if latencies_us.len() < MAX_LATENCY_SAMPLES {
                        let us = ((acked_ns - w).max(0) / 1000).min(u32::MAX as i128);
                        latencies_us.push(us as u32);
                    }
                }
            }
            if keep {
                if let Some(last) = stream.entries.last() {
                    if e.timestamp_ns < last.timestamp_ns {
                        problems.push(format!(
                            "stream {}: entry {:?} at {} ns arrived after {:?} at {} ns",
                            stream_name(stream),
                            e.line,
                            e.timestamp_ns,
                            last.line,
                            last.timestamp_ns
                        ));
                    }
                }
                stream.entries.push(e);
                continue;
            }
            let newest = index.newest_ns.get_or_insert(e.timestamp_ns);
            if e.timestamp_ns < *newest && problems.len() < MAX_PROBLEMS_COUNTING {
                problems.push(format!(
                    "stream {}: entry {:?} at {} ns arrived after one at {} ns",
                    stream_name(stream),
                    e.line,
                    e.timestamp_ns,
                    *newest
                ));
            }
            *newest = (*newest).max(e.timestamp_ns);
        }
    }
}

fn stream_name(s: &ReceivedStream) -> String {
    canonical(&s.labels)
}

fn unix_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// The digits after `marker` in `line`, as nanoseconds since the epoch.
fn written_ns(line: &[u8], marker: &[u8]) -> Option<i128> {
    let at = line.windows(marker.len()).position(|w| w == marker)? + marker.len();
    let digits = line[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&line[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

fn status_message(code: u16) -> String {
    match code {
        429 => rate_limited("fake", 4 << 20, 1, 10),
        500 => "rpc error: code = Unavailable desc = no healthy ingesters\n".into(),
        c => format!("status {c} set by the test\n"),
    }
}

/// Loki's answer to a push over the tenant's ingestion rate.
fn rate_limited(user: &str, limit: u64, lines: usize, bytes: usize) -> String {
    format!(
        "Ingestion rate limit exceeded for user {user} (limit: {limit} bytes/sec) while attempting to ingest '{lines}' lines totaling '{bytes}' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased\n"
    )
}

type Decoded = Vec<(BTreeMap<String, String>, Vec<ReceivedEntry>)>;

/// `logproto.PushRequest` as Loki's push.proto defines it (field numbers
/// are the wire contract).
mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<Stream>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Stream {
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<Entry>,
        #[prost(uint64, tag = "3")]
        pub hash: u64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Entry {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        #[prost(string, tag = "2")]
        pub line: String,
        #[prost(message, repeated, tag = "3")]
        pub structured_metadata: Vec<LabelPair>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPair {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

fn decode_protobuf(body: &[u8]) -> Result<Decoded, String> {
    use prost::Message;
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("snappy: {e}"))?;
    let req = proto::PushRequest::decode(raw.as_slice()).map_err(|e| format!("proto: {e}"))?;
    let mut out = Vec::new();
    for s in req.streams {
        let labels = parse_labels(&s.labels)
            .map_err(|e| format!("error parsing labels '{}' with error: {e}", s.labels))?;
        if labels.is_empty() {
            return Err("error at least one label pair is required per stream".into());
        }
        let entries = s
            .entries
            .into_iter()
            .map(|e| {
                let ts = e.timestamp.unwrap_or_default();
                ReceivedEntry {
                    timestamp_ns: ts.seconds as i128 * 1_000_000_000 + ts.nanos as i128,
                    line: e.line,
                    structured_metadata: e
                        .structured_metadata
                        .into_iter()
                        .map(|p| (p.name, p.value))
                        .collect(),
                }
            })
            .collect();
        out.push((labels, entries));
    }
    Ok(out)
}

fn decode_json(body: &[u8]) -> Result<Decoded, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("loghttp.PushRequest: {e}"))?;
    let bad = |what: &str| format!("loghttp.PushRequest: {what}");
    let streams = v
        .get("streams")
        .and_then(|s| s.as_array())
        .ok_or_else(|| bad("missing \"streams\" array"))?;
    let mut out = Vec::new();
    for s in streams {
        let labels: BTreeMap<String, String> = s
            .get("stream")
            .and_then(|l| l.as_object())
            .ok_or_else(|| bad("stream without a \"stream\" object"))?
            .iter()
            .map(|(k, v)| {
                Ok((
                    k.clone(),
                    v.as_str()
                        .ok_or_else(|| bad("label value is not a string"))?
                        .to_string(),
                ))
            })
            .collect::<Result<_, String>>()?;
        if labels.is_empty() {
            return Err("error at least one label pair is required per stream".into());
        }
        let mut entries = Vec::new();
        for value in s
            .get("values")
            .and_then(|v| v.as_array())
            .ok_or_else(|| bad("stream without a \"values\" array"))?
        {
            let arr = value
                .as_array()
                .ok_or_else(|| bad("value is not an array"))?;
            let ts: i128 = arr
                .first()
                .and_then(|t| t.as_str())
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| bad("timestamp is not a string of nanoseconds"))?;
            let line = arr
                .get(1)
                .and_then(|l| l.as_str())
                .ok_or_else(|| bad("line is not a string"))?
                .to_string();
            let structured_metadata = match arr.get(2).and_then(|m| m.as_object()) {
                Some(m) => m
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect(),
                None => Vec::new(),
            };
            entries.push(ReceivedEntry {
                timestamp_ns: ts,
                line,
                structured_metadata,
            });
        }
        out.push((labels, entries));
    }
    Ok(out)
}

/// Parses a LogQL stream selector of equality matchers, `{a="b", c="d"}`,
/// as Loki reads a push's `labels` string.
pub fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let s = s.trim();
    let inner = s
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(|| "expected a selector in braces".to_string())?;
    let mut out = BTreeMap::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!(
                "invalid label name near {:?}",
                chars.collect::<String>()
            ));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("expected = after label {name}"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('"') {
            return Err(format!(
                "unexpected identifier for label {name}, expected string"
            ));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                None => return Err(format!("unterminated string for label {name}")),
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some(c) => {
                        value.push('\\');
                        value.push(c)
                    }
                    None => return Err(format!("unterminated string for label {name}")),
                },
                Some(c) => value.push(c),
            }
        }
        if out.insert(name.clone(), value).is_some() {
            return Err(format!("duplicate label name {name}"));
        }
    }
    Ok(out)
}

/// `{a="b", c="d"}` with names sorted, as Loki prints a stream.
pub fn canonical(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn push_body(labels: &str, lines: &[(i64, &str)]) -> Vec<u8> {
        let req = proto::PushRequest {
            streams: vec![proto::Stream {
                labels: labels.into(),
                entries: lines
                    .iter()
                    .map(|(ts, l)| proto::Entry {
                        timestamp: Some(proto::Timestamp {
                            seconds: *ts,
                            nanos: 5,
                        }),
                        line: (*l).into(),
                        structured_metadata: vec![proto::LabelPair {
                            name: "trace_id".into(),
                            value: "abc".into(),
                        }],
                    })
                    .collect(),
                hash: 0,
            }],
        };
        snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap()
    }

    fn post(url: &str, ct: &str, body: &[u8]) -> (u16, String) {
        post_as(url, None, ct, body)
    }

    /// A receiver without Loki's limits: these tests push entries a few
    /// nanoseconds after the epoch to check how entries are stored; the
    /// limits have tests of their own.
    fn no_limits() -> LokiReceiver {
        LokiReceiver::start_with(Options {
            limits: Limits::none(),
            ..Options::default()
        })
        .unwrap()
    }

    fn post_as(url: &str, tenant: Option<&str>, ct: &str, body: &[u8]) -> (u16, String) {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(2))
            .build();
        let mut req = agent.post(url).set("Content-Type", ct);
        if let Some(t) = tenant {
            req = req.set("X-Scope-OrgID", t);
        }
        match req.send_bytes(body) {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    #[test]
    fn decodes_protobuf_snappy_and_reports_order_violations() {
        let r = no_limits();
        let body = push_body(
            r#"{job="varlogs", filename="/var/log/a \"b\".log"}"#,
            &[(10, "one"), (11, "two")],
        );
        assert_eq!(post(&r.push_url(), "application/x-protobuf", &body).0, 204);
        let streams = r.streams();
        assert_eq!(streams.len(), 1);
        assert_eq!(streams[0].labels["filename"], "/var/log/a \"b\".log");
        assert_eq!(streams[0].entries[1].timestamp_ns, 11_000_000_005);
        assert_eq!(
            streams[0].entries[0].structured_metadata,
            vec![("trace_id".into(), "abc".into())]
        );
        assert!(r.problems().is_empty());
        let older = push_body(
            r#"{filename="/var/log/a \"b\".log", job="varlogs"}"#,
            &[(9, "late")],
        );
        assert_eq!(post(&r.push_url(), "application/x-protobuf", &older).0, 204);
        assert_eq!(
            r.streams().len(),
            1,
            "same labels in another order are one stream"
        );
        let problems = r.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("\"late\""), "{problems:?}");
        assert_eq!(r.lines(), vec!["one", "two", "late"]);
    }

    #[test]
    fn accepts_json_and_rejects_bad_bodies_like_loki() {
        let r = no_limits();
        let json = br#"{"streams":[{"stream":{"job":"j"},"values":[["1700000000000000001","hello",{"k":"v"}]]}]}"#;
        assert_eq!(post(&r.push_url(), "application/json", json).0, 204);
        assert_eq!(
            r.streams()[0].entries[0].timestamp_ns,
            1_700_000_000_000_000_001
        );
        let (code, msg) = post(&r.push_url(), "application/x-protobuf", b"not snappy");
        assert_eq!(code, 400);
        assert!(msg.starts_with("snappy:"), "{msg}");
        let (code, msg) = post(
            &r.push_url(),
            "application/x-protobuf",
            &push_body("{job=bare}", &[(1, "x")]),
        );
        assert_eq!(code, 400);
        assert!(msg.contains("error parsing labels '{job=bare}'"), "{msg}");
        assert_eq!(r.bad_requests(), 2);
        assert_eq!(r.requests(), 3);
    }

    #[test]
    fn answers_as_told_and_goes_down_and_up_on_the_same_port() {
        let r = no_limits();
        let body = push_body(r#"{job="j"}"#, &[(1, "x")]);
        r.set_mode(Mode::Status(429));
        assert_eq!(post(&r.push_url(), "application/x-protobuf", &body).0, 429);
        r.set_mode(Mode::Status(500));
        assert_eq!(post(&r.push_url(), "application/x-protobuf", &body).0, 500);
        r.set_mode(Mode::Down);
        let refused = std::net::TcpStream::connect(r.addr());
        assert!(refused.is_err(), "connect should be refused while down");
        r.set_mode(Mode::Hang);
        let started = Instant::now();
        let (code, _) = post(&r.push_url(), "application/x-protobuf", &body);
        assert_eq!(code, 0, "a hung request times out at the client");
        assert!(started.elapsed() >= Duration::from_secs(2));
        r.set_mode(Mode::Accept);
        assert_eq!(post(&r.push_url(), "application/x-protobuf", &body).0, 204);
        assert_eq!(r.entry_count(), 1);
        assert_eq!(
            crate::http::get(&format!("{}/ready", r.base_url()), &[], None)
                .unwrap()
                .status,
            200
        );
    }

    #[test]
    fn counting_mode_counts_checks_order_and_measures_latency() {
        let r = LokiReceiver::start_with(Options {
            keep_entries: false,
            latency_marker: Some("wts=".into()),
            limits: Limits::none(),
            ..Options::default()
        })
        .unwrap();
        let written = unix_nanos() - 250_000_000;
        let line = format!("GET / wts={written} done");
        let body = push_body(r#"{job="j"}"#, &[(10, line.as_str()), (11, "no marker")]);
        assert_eq!(post(&r.push_url(), "application/x-protobuf", &body).0, 204);
        let older = push_body(r#"{job="j"}"#, &[(9, "late")]);
        assert_eq!(post(&r.push_url(), "application/x-protobuf", &older).0, 204);
        let c = r.counts();
        assert_eq!((c.entries, c.streams, c.accepted_requests), (3, 1, 2));
        assert_eq!(c.line_bytes, (line.len() + "no marker".len() + 4) as u64);
        assert!(r.lines().is_empty(), "counting mode keeps no entries");
        assert_eq!(r.problems().len(), 1, "{:?}", r.problems());
        let lat = r.latencies_us();
        assert_eq!(lat.len(), 1, "only the line with the marker is timed");
        assert!((250_000..5_000_000).contains(&lat[0]), "{lat:?}");
    }

    /// A JSON push of one stream: (nanoseconds, line, structured metadata).
    fn json_push(labels: &str, entries: &[(i128, &str, &str)]) -> Vec<u8> {
        let values: Vec<serde_json::Value> = entries
            .iter()
            .map(|(ts, line, trace)| serde_json::json!([ts.to_string(), line, {"trace_id": trace}]))
            .collect();
        let stream: serde_json::Value = serde_json::from_str(labels).unwrap();
        serde_json::json!({"streams": [{"stream": stream, "values": values}]})
            .to_string()
            .into_bytes()
    }

    fn keeping_and_counting() -> [LokiReceiver; 2] {
        let counting = LokiReceiver::start_with(Options {
            keep_entries: false,
            limits: Limits::none(),
            ..Options::default()
        })
        .unwrap();
        [no_limits(), counting]
    }

    #[test]
    fn an_entry_identical_in_stream_timestamp_and_line_is_stored_once() {
        for r in keeping_and_counting() {
            let url = r.push_url();
            let ct = "application/json";
            // Twice in one push, then again in a later one, with other
            // structured metadata (not part of what Loki compares).
            let twice = json_push(r#"{"job":"j"}"#, &[(7, "same", "a"), (7, "same", "b")]);
            assert_eq!(post(&url, ct, &twice), (204, String::new()));
            let again = json_push(r#"{"job":"j"}"#, &[(7, "same", "c")]);
            assert_eq!(post(&url, ct, &again), (204, String::new()));
            assert_eq!(r.entry_count(), 1);
            assert_eq!(r.duplicates_dropped(), 2);
            assert_eq!(r.accepted_requests(), 2, "duplicates are no error");
            assert!(r.problems().is_empty(), "{:?}", r.problems());

            // Any one field different: another entry. Same timestamp,
            // another line; same line, another timestamp; another stream
            // (labels, then tenant).
            let others = json_push(r#"{"job":"j"}"#, &[(7, "other", "a"), (8, "same", "a")]);
            assert_eq!(post(&url, ct, &others).0, 204);
            let other_labels = json_push(r#"{"job":"k"}"#, &[(7, "same", "a")]);
            assert_eq!(post(&url, ct, &other_labels).0, 204);
            let same_labels = json_push(r#"{"job":"j"}"#, &[(7, "same", "a")]);
            assert_eq!(post_as(&url, Some("team-a"), ct, &same_labels).0, 204);
            assert_eq!(r.entry_count(), 5);
            assert_eq!(r.duplicates_dropped(), 2);
            let c = r.counts();
            assert_eq!((c.entries, c.line_bytes), (5, 4 * 4 + 5));
        }
        let r = no_limits();
        let body = json_push(r#"{"job":"j"}"#, &[(7, "same", "a"), (7, "same", "b")]);
        post(&r.push_url(), "application/json", &body);
        let entries = &r.streams()[0].entries;
        assert_eq!(entries.len(), 1);
        assert_eq!(
            entries[0].structured_metadata,
            vec![("trace_id".into(), "a".into())],
            "the first one stored stays"
        );
    }

    #[test]
    fn a_duplicate_is_not_reported_out_of_order() {
        for r in keeping_and_counting() {
            let body = push_body(r#"{job="j"}"#, &[(1, "a"), (2, "b")]);
            // The same batch sent again, as after a lost acknowledgement.
            for _ in 0..2 {
                assert_eq!(post(&r.push_url(), "application/x-protobuf", &body).0, 204);
            }
            assert_eq!((r.entry_count(), r.duplicates_dropped()), (2, 2));
            assert!(r.problems().is_empty(), "{:?}", r.problems());
        }
    }

    #[test]
    fn counting_mode_finds_duplicates_among_the_last_entries_of_a_stream() {
        let mut index = StreamIndex::default();
        let entry = |ts: i128| ReceivedEntry {
            timestamp_ns: ts,
            line: "same".into(),
            structured_metadata: Vec::new(),
        };
        let window = DEDUP_WINDOW_COUNTING as i128;
        for ts in 0..window {
            assert!(!index.seen_or_add(&entry(ts), &[], false));
        }
        assert!(index.seen_or_add(&entry(0), &[], false));
        assert!(index.seen_or_add(&entry(window - 1), &[], false));
        // One more: the oldest leaves the window (the documented bound).
        assert!(!index.seen_or_add(&entry(window), &[], false));
        assert!(!index.seen_or_add(&entry(0), &[], false));
        assert!(index.recent.len() <= DEDUP_WINDOW_COUNTING);
        assert_eq!(index.by_identity.len(), index.recent.len());
    }

    #[test]
    fn keep_mode_tells_entries_apart_whose_identity_hashes_collide() {
        let entry = |ts: i128, line: &str| ReceivedEntry {
            timestamp_ns: ts,
            line: line.into(),
            structured_metadata: Vec::new(),
        };
        let (a, b) = (entry(1, "a"), entry(2, "b"));
        let mut index = StreamIndex::default();
        // Pretend "b" at 2 hashes like "a" at 1, stored first.
        index.by_identity.insert(identity(2, "b"), 0);
        let mut stored = vec![a];
        assert!(!index.seen_or_add(&b, &stored, true), "b is new");
        stored.push(b.clone());
        assert!(index.seen_or_add(&b, &stored, true), "b is now stored");
    }

    #[test]
    fn limits_refuse_entries_as_loki_does() {
        let r = LokiReceiver::start_with(Options {
            limits: Limits {
                max_line_size: Some(10),
                reject_old_samples_max_age: Some(Duration::from_secs(7 * 24 * 3600)),
                creation_grace_period: Some(Duration::from_secs(600)),
                ingestion_rate: None,
                allow_structured_metadata: true,
            },
            ..Options::default()
        })
        .unwrap();
        let now = unix_nanos();
        let hour = 3_600_000_000_000i128;
        let body = json_push(
            r#"{"job":"j"}"#,
            &[
                (now - 8 * 24 * hour, "too old", ""),
                (now, "fine", ""),
                (now + 1, "far too long a line", ""),
                (now + hour, "too new", ""),
            ],
        );
        let (code, msg) = post(&r.push_url(), "application/json", &body);
        assert_eq!(code, 400, "{msg}");
        let lines: Vec<&str> = msg.lines().collect();
        assert_eq!(lines.len(), 3, "{msg}");
        assert!(
            lines[0].starts_with(r#"entry for stream '{job="j"}' has timestamp too old: "#)
                && lines[0].contains(", oldest acceptable timestamp is: "),
            "{msg}"
        );
        assert_eq!(
            lines[1],
            r#"Max entry size '10' bytes exceeded for stream '{job="j"}' while adding an entry with length '19' bytes"#
        );
        assert!(
            lines[2].starts_with(r#"entry for stream '{job="j"}' has timestamp too new: "#),
            "{msg}"
        );
        assert_eq!(r.lines(), vec!["fine"], "the valid entry is stored");
        let c = r.counts();
        assert_eq!((c.rejected_entries, c.accepted_requests), (3, 0));
    }

    #[test]
    fn disallowed_structured_metadata_refuses_those_entries_as_loki_does() {
        let r = LokiReceiver::start_refusing_structured_metadata();
        let now = unix_nanos();
        let body = serde_json::json!({"streams": [{"stream": {"job": "j"}, "values": [
            [now.to_string(), "with metadata", {"trace_id": "abc"}],
            [(now + 1).to_string(), "plain"],
        ]}]})
        .to_string();
        let (code, msg) = post(&r.push_url(), "application/json", body.as_bytes());
        assert_eq!(code, 400, "{msg}");
        assert_eq!(
            msg.trim_end(),
            "stream '{job=\"j\"}' includes structured metadata, but this feature is disallowed. Please see `limits_config.allow_structured_metadata` or contact your Loki administrator to enable it."
        );
        assert_eq!(
            r.lines(),
            vec!["plain"],
            "the entry without metadata is stored"
        );
    }

    #[test]
    fn the_ingestion_rate_refuses_a_whole_push_with_429() {
        let r = LokiReceiver::start_with(Options {
            limits: Limits {
                // Refilled so slowly that the test never sees it.
                ingestion_rate: Some(IngestionRate {
                    bytes_per_second: 0.001,
                    burst_bytes: 100.0,
                }),
                // Timestamp 1 is older than a week.
                ..Limits::none()
            },
            ..Options::default()
        })
        .unwrap();
        let line = "x".repeat(30);
        let body = push_body(r#"{job="j"}"#, &[(1, &line)]);
        let ct = "application/x-protobuf";
        // 30 bytes of line and 11 of structured metadata each time.
        for _ in 0..2 {
            assert_eq!(post(&r.push_url(), ct, &body).0, 204);
        }
        let (code, msg) = post(&r.push_url(), ct, &body);
        assert_eq!(code, 429);
        assert!(
            msg.starts_with("Ingestion rate limit exceeded for user fake (limit: 0 bytes/sec) while attempting to ingest '1' lines totaling '41' bytes"),
            "{msg}"
        );
        // Another tenant has its own bucket.
        assert_eq!(post_as(&r.push_url(), Some("b"), ct, &body).0, 204);
        let c = r.counts();
        assert_eq!((c.rate_limited, c.entries, c.streams), (1, 2, 2));
        assert_eq!(c.duplicates_dropped, 1, "the same entry twice");
    }

    #[test]
    fn checks_the_tenant() {
        let r = no_limits();
        r.require_tenant(Some("team-a"));
        let body = push_body(r#"{job="j"}"#, &[(1, "x")]);
        let (code, msg) = post(&r.push_url(), "application/x-protobuf", &body);
        assert_eq!((code, msg.as_str()), (401, "no org id\n"));
        assert_eq!(r.problems().len(), 1);
    }
}
