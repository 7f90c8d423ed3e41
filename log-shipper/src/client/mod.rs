//! The Loki push client: batches entries per tenant by size (`batchsize`)
//! and age (`batchwait`), groups them into streams by label set (entries
//! keep their order), pushes protobuf + snappy to `/loki/api/v1/push`, and
//! retries 429, 5xx and network errors with exponential backoff and jitter.
//!
//! An entry's ack is completed only when Loki accepted its batch, or when
//! the batch is dropped on purpose and counted (a 4xx other than 429, or
//! retries exhausted). A Loki that refuses structured metadata (400,
//! `allow_structured_metadata` off) gets the batch once more without it,
//! and the client sends none from then on, so no line is lost for a
//! metadata field. A batch being retried blocks the client's loop, so
//! its bounded input channel fills and the sources stop reading: the files
//! are the buffer. On shutdown unsent entries are simply not acked, so
//! their positions are not saved and they are read again on the next start.

pub mod dry_run;
pub mod metrics;
pub mod proto;
pub mod transport;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use exporter_toolkit::http_client::http_headers::HttpHeaders;
use prost::Message;
// Maps looked up per entry, keyed by addresses and tenants (not by
// anything a log line sets): FxHash instead of SipHash.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::ack::Ack;
use crate::entry::{Entry, LabelSet, Labels};
pub use exporter_toolkit::http_client::Proxy;
pub use metrics::{collect, DropReason};
pub use transport::{Endpoint, HttpSettings, OAuth2Settings, TlsSettings};

/// The label a pipeline (the `tenant` stage) sets to send an entry to
/// another tenant than the client's `tenant_id`.
pub const TENANT_LABEL: &str = "__tenant_id__";

/// Retries, as promtail's `backoff_config`.
#[derive(Clone, Debug, PartialEq)]
pub struct BackoffSettings {
    pub min_period: Duration,
    pub max_period: Duration,
    /// 0 retries forever (as dskit's backoff does).
    pub max_retries: u32,
}

impl Default for BackoffSettings {
    fn default() -> Self {
        BackoffSettings {
            min_period: Duration::from_millis(500),
            max_period: Duration::from_secs(300),
            max_retries: 10,
        }
    }
}

/// `basic_auth` with the password already read from `password_file`.
#[derive(Clone, Debug, PartialEq)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

/// One client's runtime settings (the lead converts promtail's YAML
/// `clients` entry into this).
#[derive(Clone, Debug, PartialEq)]
pub struct ClientSettings {
    pub url: String,
    pub tenant_id: Option<String>,
    pub batch_wait: Duration,
    /// Bytes of lines (and structured metadata) per batch.
    pub batch_size: usize,
    pub timeout: Duration,
    pub basic_auth: Option<BasicAuth>,
    pub bearer_token: Option<String>,
    /// Read at every request, so a rotated token is picked up.
    pub bearer_token_file: Option<PathBuf>,
    pub tls: TlsSettings,
    /// `oauth2`: the Authorization header is a client-credentials token.
    pub oauth2: Option<OAuth2Settings>,
    /// `proxy_url` / `no_proxy` / `proxy_from_environment`.
    pub proxy: Proxy,
    pub proxy_connect_header: Vec<(http::HeaderName, http::HeaderValue)>,
    /// `follow_redirects` (promtail's default: true).
    pub follow_redirects: bool,
    pub backoff: BackoffSettings,
    /// Added to every stream; an entry's own label of the same name wins.
    pub external_labels: LabelSet,
    /// Entries the input channel holds before senders wait.
    pub queue_capacity: usize,
    /// `headers`: sent with every push, except where the shipper sets the
    /// header itself (content type, user agent, tenant, authorization),
    /// as promtail does. Names in lower case.
    pub headers: Vec<(String, String)>,
    /// `http_headers` (Prometheus' common client): added to each request,
    /// files read at each one.
    pub http_headers: HttpHeaders,
    /// `limits_config.max_streams`: streams per batch of a tenant; entries
    /// of further streams are dropped (`reason="stream_limited"`), as
    /// promtail does. 0: no limit.
    pub max_streams: usize,
    /// `drop_rate_limited_batches`: a batch Loki answers 429 is dropped
    /// at once (counted as `rate_limited`) instead of retried.
    pub drop_rate_limited_batches: bool,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            url: String::new(),
            tenant_id: None,
            batch_wait: Duration::from_secs(1),
            batch_size: 1024 * 1024,
            timeout: Duration::from_secs(10),
            basic_auth: None,
            bearer_token: None,
            bearer_token_file: None,
            tls: TlsSettings::default(),
            oauth2: None,
            proxy: Proxy::Direct,
            proxy_connect_header: Vec::new(),
            follow_redirects: true,
            backoff: BackoffSettings::default(),
            external_labels: LabelSet::new(),
            queue_capacity: 2048,
            headers: Vec::new(),
            http_headers: HttpHeaders::default(),
            max_streams: 0,
            drop_rate_limited_batches: false,
        }
    }
}

/// A running client.
pub struct Client {
    tx: mpsc::Sender<Entry>,
    closing: watch::Sender<bool>,
    task: JoinHandle<()>,
    metrics: Arc<metrics::ClientMetrics>,
    health: Arc<Health>,
}

/// Whether Loki takes this client's pushes, for sources that answer their
/// own senders (the push API): while Loki fails they make senders retry
/// instead of taking lines in they cannot deliver.
#[derive(Debug, Default)]
pub struct Health {
    failing: AtomicBool,
    /// Told when `failing` clears.
    recovered: tokio::sync::Notify,
    /// Batches dropped after retries ran out (their acks completed
    /// undelivered).
    gave_up: AtomicU64,
}

impl Health {
    fn set_failing(&self, failing: bool) {
        if self.failing.swap(failing, Ordering::Relaxed) && !failing {
            self.recovered.notify_waiters();
        }
    }
}

/// The health of every client entries fan out to.
#[derive(Clone, Debug, Default)]
pub struct Downstream(Vec<Arc<Health>>);

impl Downstream {
    pub fn new<'a>(clients: impl IntoIterator<Item = &'a Client>) -> Downstream {
        Downstream(clients.into_iter().map(|c| Arc::clone(&c.health)).collect())
    }

    /// The last push of some client failed and it has not succeeded since.
    pub fn failing(&self) -> bool {
        self.0.iter().any(|h| h.failing.load(Ordering::Relaxed))
    }

    /// Waits until no client is [`failing`](Self::failing), woken when one
    /// recovers (no polling). Bound it with a timeout.
    pub async fn healthy(&self) {
        loop {
            // Registered before looking, so a recovery in between wakes us.
            let mut recovered: Vec<_> = self
                .0
                .iter()
                .map(|h| Box::pin(h.recovered.notified()))
                .collect();
            for r in &mut recovered {
                r.as_mut().enable();
            }
            if !self.failing() {
                return;
            }
            futures_util::future::select_all(recovered).await;
        }
    }

    /// Batches given up so far, over all clients: an increase while a
    /// push waited means its lines may be among them.
    pub fn gave_up(&self) -> u64 {
        self.0
            .iter()
            .map(|h| h.gave_up.load(Ordering::Relaxed))
            .sum()
    }

    /// For tests: a client marked failing, or not.
    pub fn test_set_failing(&self, failing: bool) {
        for h in &self.0 {
            h.set_failing(failing);
        }
    }

    /// For tests: one client's health.
    pub fn single() -> Downstream {
        Downstream(vec![Arc::new(Health::default())])
    }
}

impl Client {
    /// Checks the settings and starts the client's task (call inside a
    /// tokio runtime). Errors name the setting.
    pub fn start(settings: ClientSettings) -> Result<Client, String> {
        let endpoint = Endpoint::parse(&settings.url)?;
        if settings.basic_auth.is_some()
            && (settings.bearer_token.is_some() || settings.bearer_token_file.is_some())
        {
            return Err(format!(
                "client {}: at most one of basic_auth, bearer_token & bearer_token_file must be configured",
                settings.url
            ));
        }
        if settings.bearer_token.is_some() && settings.bearer_token_file.is_some() {
            return Err(format!(
                "client {}: at most one of bearer_token & bearer_token_file must be configured",
                settings.url
            ));
        }
        if settings.oauth2.is_some()
            && (settings.basic_auth.is_some()
                || settings.bearer_token.is_some()
                || settings.bearer_token_file.is_some())
        {
            return Err(format!(
                "client {}: at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured",
                settings.url
            ));
        }
        let metrics = metrics::for_host(&endpoint.authority);
        let http = HttpSettings {
            tls: settings.tls.clone(),
            proxy: settings.proxy.clone(),
            proxy_connect_header: settings.proxy_connect_header.clone(),
            follow_redirects: settings.follow_redirects,
            oauth2: settings.oauth2.clone(),
        };
        let transport = transport::Transport::new(endpoint, &http)
            .map_err(|e| format!("client {}: {e}", settings.url))?;
        let (tx, rx) = mpsc::channel(settings.queue_capacity.max(1));
        let (closing, closing_rx) = watch::channel(false);
        let health = Arc::new(Health::default());
        let worker = Worker {
            settings,
            transport,
            health: Arc::clone(&health),
            metrics: Arc::clone(&metrics),
            batches: HashMap::default(),
            routes: Routes::default(),
            closing: closing_rx,
            metadata_refused: false,
        };
        let task = tokio::spawn(worker.run(rx));
        Ok(Client {
            tx,
            closing,
            task,
            metrics,
            health,
        })
    }

    /// Where sources (pipelines) send entries; waits when the queue is full.
    pub fn sender(&self) -> mpsc::Sender<Entry> {
        self.tx.clone()
    }

    pub fn metrics(&self) -> &metrics::ClientMetrics {
        &self.metrics
    }

    /// Stops taking entries, sends what is queued and batched (with
    /// retries) for up to `grace`, then gives up: whatever was not accepted
    /// stays unacknowledged and is read again on the next start.
    pub async fn stop(self, grace: Duration) {
        let Client {
            tx,
            closing,
            mut task,
            ..
        } = self;
        drop(tx);
        closing.send_replace(true);
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Entries of one tenant waiting to be sent.
struct Batch {
    streams: Vec<proto::Stream>,
    /// Sent label set -> index in `streams`.
    index: HashMap<Labels, usize>,
    /// The same by the set's address, which the key keeps alive: entries
    /// of one stream share their sent set (see [`Route`]), so most entries
    /// find their stream without hashing its labels.
    by_address: HashMap<usize, (Labels, usize)>,
    acks: Vec<Ack>,
    bytes: usize,
    entries: usize,
    created: Instant,
    /// Entries dropped by `max_streams` (logged once per batch).
    stream_limited: usize,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            streams: Vec::new(),
            index: HashMap::default(),
            by_address: HashMap::default(),
            acks: Vec::new(),
            bytes: 0,
            entries: 0,
            created: Instant::now(),
            stream_limited: 0,
        }
    }

    /// The index of the stream of `labels`, if the batch has it.
    fn stream_of(&mut self, labels: &Labels) -> Option<usize> {
        let address = labels.address();
        if let Some((_, i)) = self.by_address.get(&address) {
            return Some(*i);
        }
        let i = *self.index.get(labels)?;
        self.by_address.insert(address, (labels.clone(), i));
        Some(i)
    }

    /// Adds an entry whose stream `stream_of` found (`Some`) or not.
    fn add(
        &mut self,
        labels: &Labels,
        stream: Option<usize>,
        entry: proto::Entry,
        size: usize,
        ack: Option<Ack>,
    ) {
        let i = match stream {
            Some(i) => i,
            None => {
                self.streams.push(proto::Stream {
                    labels: proto::labels_string(labels),
                    entries: Vec::new(),
                    hash: 0,
                });
                let i = self.streams.len() - 1;
                self.index.insert(labels.clone(), i);
                self.by_address
                    .insert(labels.address(), (labels.clone(), i));
                i
            }
        };
        self.streams[i].entries.push(entry);
        if let Some(a) = ack {
            self.acks.push(a);
        }
        self.bytes += size;
        self.entries += 1;
    }
}

/// Where an entry of some label set goes: its tenant and the labels Loki
/// gets (internal `__` labels removed, external labels added). Worked out
/// once per label set, not per entry: the entries of a target share theirs.
#[derive(Clone)]
struct Route {
    tenant: Option<String>,
    /// Interned: one shared copy per stream.
    labels: Labels,
}

/// Routes by the address of the entry's label set (kept alive by the
/// cached key), and the interned sent label sets. Bounded: emptied when
/// full, and filled again from the entries that come.
#[derive(Default)]
struct Routes {
    by_address: HashMap<usize, (Labels, Route)>,
    interned: HashSet<Labels>,
}

/// Label sets a client remembers routes for.
const MAX_ROUTES: usize = 4096;

impl Routes {
    fn get(&mut self, labels: &Labels, settings: &ClientSettings) -> Route {
        if let Some((_, r)) = self.by_address.get(&labels.address()) {
            return r.clone();
        }
        if self.by_address.len() >= MAX_ROUTES || self.interned.len() >= MAX_ROUTES {
            self.by_address.clear();
            self.interned.clear();
        }
        let tenant = labels
            .get(TENANT_LABEL)
            .cloned()
            .or_else(|| settings.tenant_id.clone());
        let sent: Labels = sent_labels(labels, &settings.external_labels).into();
        let sent = match self.interned.get(&sent) {
            Some(l) => l.clone(),
            None => {
                self.interned.insert(sent.clone());
                sent
            }
        };
        let route = Route {
            tenant,
            labels: sent,
        };
        self.by_address
            .insert(labels.address(), (labels.clone(), route.clone()));
        route
    }
}

/// The size promtail counts against `batchsize`: the line and the
/// structured metadata.
fn entry_size(e: &Entry) -> usize {
    e.line.len()
        + e.structured_metadata
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

/// Entries the worker takes from its channel at once.
const RECEIVE_MANY: usize = 256;

struct Worker {
    settings: ClientSettings,
    transport: transport::Transport,
    health: Arc<Health>,
    metrics: Arc<metrics::ClientMetrics>,
    batches: HashMap<Option<String>, Batch>,
    routes: Routes,
    closing: watch::Receiver<bool>,
    /// Loki refused structured metadata once: entries go without it.
    metadata_refused: bool,
}

/// The start of Loki's answer (`validation.DisallowedStructuredMetadataErrorMsg`,
/// after the stream) to an entry with structured metadata when
/// `limits_config.allow_structured_metadata` is off.
const METADATA_DISALLOWED: &str = "includes structured metadata, but this feature is disallowed";

/// Removes every entry's structured metadata; returns how many entries had some.
fn strip_metadata(streams: &mut [proto::Stream]) -> usize {
    let mut n = 0;
    for e in streams.iter_mut().flat_map(|s| s.entries.iter_mut()) {
        if !e.structured_metadata.is_empty() {
            e.structured_metadata = Vec::new();
            n += 1;
        }
    }
    n
}

fn encode(req: &proto::PushRequest) -> Bytes {
    Bytes::from(
        snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap_or_default(),
    )
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::Receiver<Entry>) {
        let mut closing = self.closing.clone();
        // Entries are taken from the channel many at a time: one wake-up
        // and one pass through the select for a run of them.
        let mut received = Vec::with_capacity(RECEIVE_MANY);
        loop {
            let oldest = self.batches.values().map(|b| b.created).min();
            let deadline =
                oldest.map(|c| tokio::time::Instant::from_std(c + self.settings.batch_wait));
            tokio::select! {
                n = rx.recv_many(&mut received, RECEIVE_MANY) => {
                    if n == 0 {
                        break;
                    }
                    for e in received.drain(..) {
                        self.add(e).await;
                    }
                }
                _ = sleep_until_opt(deadline) => self.send_due().await,
                _ = closing.changed() => {
                    // Take what is queued, refuse more, then flush below.
                    rx.close();
                }
            }
        }
        let tenants: Vec<_> = self.batches.keys().cloned().collect();
        for t in tenants {
            if let Some(b) = self.batches.remove(&t) {
                self.send_batch(t, b).await;
            }
        }
    }

    async fn add(&mut self, mut e: Entry) {
        let Route { tenant, labels } = self.routes.get(&e.labels, &self.settings);
        if self.metadata_refused && !e.structured_metadata.is_empty() {
            e.structured_metadata.clear();
            self.metrics.metadata_stripped(1);
        }
        let size = entry_size(&e);
        if labels.is_empty() {
            tracing::warn!(line = %truncate(&e.line, 200), "dropping an entry without labels: Loki rejects streams without labels");
            self.metrics.dropped(DropReason::StreamLimited, 1, size);
            e.complete();
            return;
        }
        // A full batch goes before the entry that would overflow it.
        let full = self
            .batches
            .get(&tenant)
            .is_some_and(|b| b.entries > 0 && b.bytes + size > self.settings.batch_size);
        if full {
            if let Some(b) = self.batches.remove(&tenant) {
                self.send_batch(tenant.clone(), b).await;
            }
        }
        let max_streams = self.settings.max_streams;
        let batch = self.batches.entry(tenant).or_insert_with(Batch::new);
        let stream = batch.stream_of(&labels);
        if stream.is_none() && max_streams > 0 && batch.streams.len() >= max_streams {
            if batch.stream_limited == 0 {
                tracing::warn!(max_streams, labels = ?labels, "dropping entries of streams past limits_config.max_streams in this batch");
            }
            batch.stream_limited += 1;
            self.metrics.dropped(DropReason::StreamLimited, 1, size);
            e.complete();
            return;
        }
        let entry = proto::Entry {
            timestamp: Some(proto::Timestamp::from_system(e.timestamp)),
            line: std::mem::take(&mut e.line),
            structured_metadata: std::mem::take(&mut e.structured_metadata)
                .into_iter()
                .map(|(name, value)| proto::LabelPair { name, value })
                .collect(),
        };
        batch.add(&labels, stream, entry, size, e.ack.take());
    }

    async fn send_due(&mut self) {
        let wait = self.settings.batch_wait;
        let due: Vec<_> = self
            .batches
            .iter()
            .filter(|(_, b)| b.created.elapsed() >= wait)
            .map(|(t, _)| t.clone())
            .collect();
        for t in due {
            if let Some(b) = self.batches.remove(&t) {
                self.send_batch(t, b).await;
            }
        }
    }

    fn headers(&self, tenant: &Option<String>) -> Vec<(String, String)> {
        let mut h = vec![
            (
                "content-type".to_string(),
                "application/x-protobuf".to_string(),
            ),
            (
                "user-agent".to_string(),
                format!("log-shipper/{}", env!("CARGO_PKG_VERSION")),
            ),
        ];
        if let Some(t) = tenant {
            h.push(("x-scope-orgid".to_string(), t.clone()));
        }
        if let Some(b) = &self.settings.basic_auth {
            h.push((
                "authorization".to_string(),
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD
                        .encode(format!("{}:{}", b.username, b.password))
                ),
            ));
        } else if let Some(t) = &self.settings.bearer_token {
            h.push(("authorization".to_string(), format!("Bearer {t}")));
        } else if let Some(f) = &self.settings.bearer_token_file {
            match std::fs::read_to_string(f) {
                Ok(t) => h.push(("authorization".to_string(), format!("Bearer {}", t.trim()))),
                Err(e) => {
                    tracing::error!(file = %f.display(), error = %e, "reading bearer_token_file")
                }
            }
        }
        for (name, value) in &self.settings.headers {
            if h.iter().any(|(n, _)| n == name) || name == "authorization" {
                tracing::debug!(header = %name, "custom header set by the shipper itself, skipping");
                continue;
            }
            h.push((name.clone(), value.clone()));
        }
        h
    }

    /// `headers` and `http_headers` (files read now), as Prometheus'
    /// client adds them: after the shipper's own.
    fn with_http_headers(
        &self,
        headers: &[(String, String)],
    ) -> Result<Vec<(String, String)>, String> {
        let mut h = headers.to_vec();
        for (n, v) in self.settings.http_headers.resolve()? {
            h.push((n.as_str().to_string(), v.to_str().unwrap_or("").to_string()));
        }
        Ok(h)
    }

    /// Sends one batch until it is accepted or dropped on purpose; both
    /// complete its acks. Cancelled (by `Client::stop`'s grace running out)
    /// it completes nothing.
    async fn send_batch(&mut self, tenant: Option<String>, batch: Batch) {
        let Batch {
            streams,
            acks,
            bytes,
            entries,
            ..
        } = batch;
        let mut request = proto::PushRequest { streams };
        let mut body = encode(&request);
        // Kept only while a refusal of its metadata could make us resend it.
        let has_metadata = request
            .streams
            .iter()
            .flat_map(|s| &s.entries)
            .any(|e| !e.structured_metadata.is_empty());
        let mut with_metadata = has_metadata.then_some(&mut request);
        self.metrics.encoded(body.len());
        let headers = self.headers(&tenant);
        let backoff = self.settings.backoff.clone();
        let mut delay = backoff.min_period;
        let mut retries = 0u32;
        loop {
            let started = Instant::now();
            let result = match self.with_http_headers(&headers) {
                Ok(h) => {
                    self.transport
                        .post(body.clone(), &h, self.settings.timeout)
                        .await
                }
                // As Go's client: the request fails (and is retried).
                Err(e) => Err(e),
            };
            let elapsed = started.elapsed().as_secs_f64();
            let (status, reason) = match &result {
                Ok(a) => (Some(a.status), a.body.clone()),
                Err(e) => (None, e.clone()),
            };
            self.metrics.request(status, elapsed);
            if status == Some(400) && reason.contains(METADATA_DISALLOWED) {
                if let Some(request) = with_metadata.take() {
                    // Entries without metadata were stored, the others
                    // refused: the resend stores those (Loki drops the
                    // stored ones as duplicates) and nothing is lost.
                    let stripped = strip_metadata(&mut request.streams);
                    if !self.metadata_refused {
                        tracing::warn!(
                            host = %self.transport.endpoint().authority,
                            error = %reason,
                            "Loki refuses structured metadata: sending this client's entries without it from now on"
                        );
                        self.metadata_refused = true;
                    }
                    self.metrics.metadata_stripped(stripped);
                    body = encode(request);
                    self.metrics.encoded(body.len());
                    continue;
                }
            }
            match status {
                Some(s) if (200..300).contains(&s) => {
                    self.health.set_failing(false);
                    self.metrics.sent(entries, bytes);
                    Ack::complete_all(acks);
                    return;
                }
                Some(429) if self.settings.drop_rate_limited_batches => {
                    self.health.set_failing(false);
                    tracing::error!(
                        host = %self.transport.endpoint().authority,
                        status = 429,
                        tenant = tenant.as_deref().unwrap_or(""),
                        entries,
                        error = %reason,
                        "final error sending batch: rate limited, dropping it (drop_rate_limited_batches)"
                    );
                    self.metrics
                        .dropped(DropReason::RateLimited, entries, bytes);
                    Ack::complete_all(acks);
                    return;
                }
                Some(s) if s != 429 && s / 100 != 5 => {
                    // Loki answered: it is up, it only refused these lines.
                    self.health.set_failing(false);
                    tracing::error!(
                        host = %self.transport.endpoint().authority,
                        status = s,
                        tenant = tenant.as_deref().unwrap_or(""),
                        entries,
                        error = %reason,
                        "final error sending batch: Loki rejected it, dropping it"
                    );
                    self.metrics
                        .dropped(DropReason::IngesterError, entries, bytes);
                    Ack::complete_all(acks);
                    return;
                }
                _ => {}
            }
            if backoff.max_retries != 0 && retries >= backoff.max_retries {
                let reason_label = if status == Some(429) {
                    DropReason::RateLimited
                } else {
                    DropReason::IngesterError
                };
                tracing::error!(
                    host = %self.transport.endpoint().authority,
                    status = status.map_or_else(|| "failed".to_string(), |s| s.to_string()),
                    tenant = tenant.as_deref().unwrap_or(""),
                    entries,
                    retries,
                    error = %reason,
                    "final error sending batch: retries exhausted, dropping it"
                );
                self.metrics.dropped(reason_label, entries, bytes);
                self.health.gave_up.fetch_add(1, Ordering::Relaxed);
                // Cleared so the next batch tries again: nothing else would
                // if the push API refused every line while failing.
                self.health.set_failing(false);
                Ack::complete_all(acks);
                return;
            }
            self.health.set_failing(true);
            tracing::warn!(
                host = %self.transport.endpoint().authority,
                status = status.map_or_else(|| "failed".to_string(), |s| s.to_string()),
                error = %reason,
                retry_in = ?delay,
                "error sending batch, will retry"
            );
            self.metrics.retried();
            retries += 1;
            tokio::time::sleep(jitter(delay)).await;
            delay = (delay * 2).min(backoff.max_period);
        }
    }
}

/// A delay in [d/2, d]: clients that failed together do not retry together.
fn jitter(d: Duration) -> Duration {
    let half = d / 2;
    half + Duration::from_nanos(fastrand::u64(
        0..=half.as_nanos().min(u64::MAX as u128) as u64,
    ))
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Labels of an entry as they are sent, for `/targets`-style displays and
/// the dry-run printer.
pub fn sent_labels(labels: &LabelSet, external: &BTreeMap<String, String>) -> LabelSet {
    let mut out: LabelSet = labels
        .iter()
        .filter(|(k, _)| !k.starts_with("__"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in external {
        out.entry(k.clone()).or_insert_with(|| v.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn healthy_wakes_when_every_client_recovers() {
        let d = Downstream(vec![
            Arc::new(Health::default()),
            Arc::new(Health::default()),
        ]);
        d.0[0].set_failing(true);
        d.0[1].set_failing(true);
        let waiter = {
            let d = d.clone();
            tokio::spawn(async move { d.healthy().await })
        };
        d.0[0].set_failing(false);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one client still fails");
        // Recovered from another thread, as a client's task does.
        let h = Arc::clone(&d.0[1]);
        std::thread::spawn(move || h.set_failing(false))
            .join()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(30), waiter)
            .await
            .expect("not woken by the recovery")
            .unwrap();
        d.healthy().await;
    }

    #[test]
    fn jitter_stays_within_half_and_whole() {
        for _ in 0..100 {
            let j = jitter(Duration::from_millis(100));
            assert!(j >= Duration::from_millis(50) && j <= Duration::from_millis(100));
        }
    }
}
