//! The Docker sources of one scrape config: `docker_sd_configs` (each
//! discovered container's stdout/stderr through the Engine's logs API) and
//! our `docker_events` extension (see [`super::docker_events`]).
//!
//! Like promtail, every `refresh_interval` the running containers are
//! listed; a new one is followed from its first line (or from its saved
//! position), one whose log stream ended (stopped) is followed again when
//! it runs again (restarted), from where reading stopped. Unlike promtail,
//! a container's `start` in the Engine's events lists them at once, and a
//! container that started since the last listing is listed by id even if
//! it has stopped already: a run shorter than `refresh_interval` (a batch
//! job, a crash loop) is read too, not skipped. Each line gets
//! the container's `__meta_docker_*` labels plus
//! `__meta_docker_container_log_stream` (`stdout`/`stderr`), relabeled by
//! the scrape config's `relabel_configs` (a dropped stream is not shipped),
//! and the Engine's timestamp.
//!
//! Positions: promtail's key `cursor-<container id>`, holding the Engine
//! timestamp of the last line Loki accepted (promtail saves the second of
//! the last line *read*, so it can lose in-flight lines and repeats a
//! second's worth). The Engine's `since` takes whole seconds, so reading
//! resumes at that second and skips what is at or before the position.
//! A removed container's position is forgotten, also when it was removed
//! long after it stopped (the stopped ones are listed by id at each refresh).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::container::LogOutput;
use bollard::query_parameters::{
    EventsOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::docker_engine::{self, connect_sd, format_position, parse_position, parse_timestamp};
use super::docker_sd::{self, LOG_STREAM};
use crate::ack::Progress;
use crate::config::{DockerSdConfig, ScrapeConfig};
use crate::entry::{Entry, LabelSet, Labels};
use crate::positions::Positions;
use crate::relabel::{self, RelabelConfig};

/// promtail's cap on a line the Engine split into parts (16 KiB each).
const MAX_LINE: usize = 256 * 1024;
/// How often delivered positions are copied into the positions file.
const CURSOR_SYNC: Duration = Duration::from_millis(200);
/// Waits between attempts while the Engine does not answer.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// After a container's start wakes discovery, how long to wait for others
/// (containers started together) before listing.
const START_SETTLE: Duration = Duration::from_millis(50);

static ENTRIES: AtomicU64 = AtomicU64::new(0);
static PARSING_ERRORS: AtomicU64 = AtomicU64::new(0);

pub fn collect(set: &mut exporter_toolkit::exposition::MetricSet) {
    set.counter(
        "promtail_docker_target_entries_total",
        "Total number of successful entries sent to the Docker target",
        &[],
        ENTRIES.load(Ordering::Relaxed) as f64,
    );
    set.counter(
        "promtail_docker_target_parsing_errors_total",
        "Total number of parsing errors while receiving Docker messages",
        &[],
        PARSING_ERRORS.load(Ordering::Relaxed) as f64,
    );
    super::docker_events::collect(set);
}

/// The positions the Docker sources keep: each key's [`Progress`] is copied
/// into [`Positions`] as `<seconds>.<nanoseconds>` whenever it moves.
pub struct Cursors {
    positions: Arc<Positions>,
    live: Mutex<BTreeMap<String, (Arc<Progress>, u64)>>,
}

impl Cursors {
    pub fn new(positions: Arc<Positions>) -> Arc<Cursors> {
        Arc::new(Cursors {
            positions,
            live: Mutex::new(BTreeMap::new()),
        })
    }

    fn live(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Arc<Progress>, u64)>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The saved position of `key` (ns), if any.
    pub fn saved(&self, key: &str) -> Option<u64> {
        let raw = self.positions.get_raw(key)?;
        let parsed = parse_position(&raw);
        if parsed.is_none() {
            tracing::warn!(key, value = %raw, "positions: not a Docker timestamp; reading from the start");
        }
        parsed
    }

    /// Follows `progress` under `key` from now on.
    pub fn track(&self, key: &str, progress: Arc<Progress>) {
        let at = progress.committed();
        self.live().insert(key.to_string(), (progress, at));
    }

    /// Stops following `key`, saving its last position (or forgetting it).
    pub fn untrack(&self, key: &str, forget: bool) {
        if let Some((p, _)) = self.live().remove(key) {
            if !forget && p.committed() > 0 {
                self.positions.put_raw(key, format_position(p.committed()));
            }
        }
        if forget {
            self.positions.remove(key);
        }
    }

    /// Copies every moved position into the positions file's table.
    pub fn flush(&self) {
        for (key, (p, written)) in self.live().iter_mut() {
            let now = p.committed();
            if now != *written && now > 0 {
                self.positions.put_raw(key, format_position(now));
                *written = now;
            }
        }
    }
}

/// A container found by `docker_sd_configs`, as `/targets` and
/// `/service-discovery` show it.
#[derive(Clone, Debug)]
pub struct DockerTarget {
    pub job: String,
    pub name: String,
    /// Labels before relabeling (`__meta_docker_*`).
    pub discovered: LabelSet,
    /// The labels of its stdout stream after relabeling; `None`: dropped.
    pub labels: Option<LabelSet>,
    /// Its logs are being followed.
    pub running: bool,
}

/// The containers one `docker_sd_configs` entry found, by id.
type Published = Arc<std::sync::Mutex<BTreeMap<String, DockerTarget>>>;

/// The running Docker sources of one scrape config.
pub struct DockerSources {
    tasks: Vec<JoinHandle<()>>,
    published: Vec<Published>,
    cursors: Arc<Cursors>,
    sync: JoinHandle<()>,
}

impl DockerSources {
    /// Starts the scrape config's Docker sources, if it has any; they send
    /// into the job's channel `tx`.
    pub fn start(
        sc: &ScrapeConfig,
        tx: &mpsc::Sender<Entry>,
        positions: &Arc<Positions>,
    ) -> Option<DockerSources> {
        if sc.docker_sd_configs.is_empty() && sc.docker_events.is_none() {
            return None;
        }
        let cursors = Cursors::new(Arc::clone(positions));
        let mut tasks = Vec::new();
        let mut published = Vec::new();
        for cfg in &sc.docker_sd_configs {
            let found = Published::default();
            published.push(Arc::clone(&found));
            let manager = ContainerManager {
                published: found,
                job: sc.job_name.clone(),
                cfg: cfg.clone(),
                rules: Arc::new(sc.relabel_configs.clone()),
                tx: tx.clone(),
                cursors: Arc::clone(&cursors),
                tails: BTreeMap::new(),
                stopped: BTreeMap::new(),
                starts: None,
                started: BTreeSet::new(),
            };
            tasks.push(tokio::spawn(manager.run()));
        }
        if let Some(cfg) = &sc.docker_events {
            tasks.push(tokio::spawn(super::docker_events::run(
                cfg.clone(),
                sc.job_name.clone(),
                sc.relabel_configs.clone(),
                tx.clone(),
                Arc::clone(&cursors),
            )));
        }
        let c = Arc::clone(&cursors);
        let sync = tokio::spawn(async move {
            let mut tick = tokio::time::interval(CURSOR_SYNC);
            loop {
                tick.tick().await;
                c.flush();
            }
        });
        Some(DockerSources {
            tasks,
            published,
            cursors,
            sync,
        })
    }

    /// The containers found, by name.
    pub fn targets(&self) -> Vec<DockerTarget> {
        let mut out: Vec<DockerTarget> = self
            .published
            .iter()
            .flat_map(|p| {
                p.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Stops reading (what was read is still delivered by the pipeline).
    pub fn stop_reading(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }

    /// Records the final delivered positions; call once delivery stopped,
    /// before the positions file is saved.
    pub fn flush(&self) {
        self.sync.abort();
        self.cursors.flush();
    }
}

impl Drop for DockerSources {
    fn drop(&mut self) {
        self.stop_reading();
        self.sync.abort();
    }
}

/// One followed container.
struct Tail {
    key: String,
    progress: Arc<Progress>,
    /// The Engine timestamp of the last line read: where reading resumes
    /// after a restart of the container (its later lines are new).
    read_to: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

/// Discovery for one `docker_sd_configs` entry and the containers it finds.
struct ContainerManager {
    job: String,
    cfg: DockerSdConfig,
    rules: Arc<Vec<RelabelConfig>>,
    tx: mpsc::Sender<Entry>,
    cursors: Arc<Cursors>,
    tails: BTreeMap<String, Tail>,
    /// Containers let go while stopped, by id: their cursor keys, kept until
    /// they run again or are removed.
    stopped: BTreeMap<String, String>,
    /// The ids of containers the Engine reports started, while the
    /// subscription to its events lasts.
    starts: Option<StartWatch>,
    /// Started since the last listing.
    started: BTreeSet<String>,
    published: Published,
}

/// A subscription to the Engine's container `start` events, in a task of
/// its own (the event stream borrows its client); the channel closes when
/// the stream breaks.
struct StartWatch {
    ids: mpsc::UnboundedReceiver<String>,
    task: JoinHandle<()>,
    /// When it was made: a broken one is replaced RETRY_MAX after that at
    /// the earliest (an Engine or proxy without events is not asked at
    /// every listing).
    made: Instant,
}

impl StartWatch {
    /// `labels`: the config's `label` filters, which the Engine applies to
    /// events as to listings (every one must match), so that starts of
    /// containers the config does not select wake no listing.
    fn subscribe(docker: &Docker, labels: Vec<String>) -> StartWatch {
        let docker = docker.clone();
        let (tx, ids) = mpsc::unbounded_channel();
        // Asked from the current second, so a start between this call and
        // the stream's first poll is still reported (the Engine replays it).
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            .to_string();
        let task = tokio::spawn(async move {
            let mut filters = HashMap::from([
                ("type".to_string(), vec!["container".to_string()]),
                ("event".to_string(), vec!["start".to_string()]),
            ]);
            if !labels.is_empty() {
                filters.insert("label".to_string(), labels);
            }
            let opts = EventsOptionsBuilder::new()
                .since(&since)
                .filters(&filters)
                .build();
            let mut events = docker.events(Some(opts));
            while let Some(item) = events.next().await {
                match item {
                    Ok(ev) => {
                        let Some(id) = ev.actor.and_then(|a| a.id) else {
                            continue;
                        };
                        if tx.send(id).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "docker_sd_configs: the Engine's event stream broke; listing every refresh_interval until it is back");
                        return;
                    }
                }
            }
        });
        StartWatch {
            ids,
            task,
            made: Instant::now(),
        }
    }
}

impl Drop for StartWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ContainerManager {
    async fn run(mut self) {
        let mut docker: Option<Docker> = None;
        let mut retry = RETRY_MIN;
        loop {
            if docker.is_none() {
                match connect_sd(&self.cfg).await {
                    Ok(d) => docker = Some(d),
                    Err(e) => {
                        tracing::warn!(job = %self.job, error = %e, "docker_sd_configs: cannot reach the Docker Engine; retrying");
                    }
                }
            }
            let wait = match &docker {
                None => None,
                Some(d) => match self.discover(d).await {
                    Ok(targets) => {
                        self.sync(d, targets).await;
                        Some(self.cfg.refresh_interval.get())
                    }
                    Err(e) => {
                        tracing::warn!(job = %self.job, host = %self.cfg.host, error = %e, "docker_sd_configs: listing containers failed; retrying");
                        docker = None;
                        None
                    }
                },
            };
            match wait {
                Some(w) => {
                    retry = RETRY_MIN;
                    self.wait_for_start(w).await;
                }
                None => {
                    tokio::time::sleep(retry.min(self.cfg.refresh_interval.get())).await;
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// The running containers, and those started since the last listing
    /// that have stopped already. Subscribes to the Engine's start events
    /// first, so no start falls between the listing and the subscription.
    async fn discover(
        &mut self,
        docker: &Docker,
    ) -> Result<BTreeMap<String, LabelSet>, bollard::errors::Error> {
        if self
            .starts
            .as_ref()
            .is_none_or(|w| w.ids.is_closed() && w.made.elapsed() >= RETRY_MAX)
        {
            let labels = docker_engine::filters(&self.cfg.filters)
                .remove("label")
                .unwrap_or_default();
            self.starts = Some(StartWatch::subscribe(docker, labels));
        }
        if let Some(w) = self.starts.as_mut() {
            while let Ok(id) = w.ids.try_recv() {
                self.started.insert(id);
            }
        }
        let mut targets = docker_sd::discover(docker, &self.cfg).await?;
        let gone_by: Vec<String> = self
            .started
            .iter()
            .filter(|id| !targets.contains_key(*id))
            .cloned()
            .collect();
        if !gone_by.is_empty() {
            for (id, t) in docker_sd::discover_ids(docker, &self.cfg, &gone_by).await? {
                tracing::debug!(job = %self.job, container = %id, "a run that ended before its listing");
                targets.insert(id, t);
            }
        }
        self.started.clear();
        Ok(targets)
    }

    /// Sleeps `refresh` or until a container starts, whichever comes first
    /// (then a moment more, so a burst of starts makes one listing).
    async fn wait_for_start(&mut self, refresh: Duration) {
        let until = tokio::time::Instant::now() + refresh;
        let Some(w) = self.starts.as_mut() else {
            tokio::time::sleep_until(until).await;
            return;
        };
        match tokio::time::timeout_at(until, w.ids.recv()).await {
            Ok(Some(id)) => {
                self.started.insert(id);
                tokio::time::sleep(START_SETTLE.min(refresh)).await;
            }
            // The stream broke: the interval as before the subscription.
            Ok(None) => tokio::time::sleep_until(until).await,
            Err(_) => {}
        }
    }

    /// Starts following new and restarted containers; lets go of the ones
    /// gone once everything read from them is delivered.
    async fn sync(&mut self, docker: &Docker, targets: BTreeMap<String, LabelSet>) {
        for (id, discovered) in &targets {
            self.stopped.remove(id);
            let streams = [
                stream_labels(discovered, "stdout", &self.rules).map(Labels::from),
                stream_labels(discovered, "stderr", &self.rules).map(Labels::from),
            ];
            match self.tails.get_mut(id) {
                Some(t) if !t.task.is_finished() => {}
                Some(t) => {
                    tracing::debug!(job = %self.job, container = %id, "following a restarted container");
                    t.task = tokio::spawn(tail(
                        docker.clone(),
                        id.clone(),
                        streams,
                        Arc::clone(&t.progress),
                        Arc::clone(&t.read_to),
                        self.tx.clone(),
                    ));
                }
                None => {
                    let key = format!("cursor-{id}");
                    let start = self.cursors.saved(&key).unwrap_or(0);
                    let progress = Progress::new(start);
                    self.cursors.track(&key, Arc::clone(&progress));
                    let read_to = Arc::new(AtomicU64::new(start));
                    tracing::info!(job = %self.job, container = %id, name = discovered.get(docker_sd::CONTAINER_NAME).map_or("", String::as_str), "added Docker target");
                    let task = tokio::spawn(tail(
                        docker.clone(),
                        id.clone(),
                        streams,
                        Arc::clone(&progress),
                        Arc::clone(&read_to),
                        self.tx.clone(),
                    ));
                    self.tails.insert(
                        id.clone(),
                        Tail {
                            key,
                            progress,
                            read_to,
                            task,
                        },
                    );
                }
            }
        }
        let gone: Vec<String> = self
            .tails
            .iter()
            .filter(|(id, t)| {
                !targets.contains_key(*id) && t.task.is_finished() && t.progress.in_flight() == 0
            })
            .map(|(id, _)| id.clone())
            .collect();
        self.publish(&targets);
        for id in gone {
            let Some(t) = self.tails.remove(&id) else {
                continue;
            };
            // A stopped container may run again and keeps its position
            // until it is removed (below).
            tracing::debug!(job = %self.job, container = %id, "container no longer running");
            self.cursors.untrack(&t.key, false);
            self.stopped.insert(id, t.key);
        }
        self.forget_removed(docker).await;
    }

    /// Forgets the positions of the stopped containers since removed: a
    /// removed one has no logs left to read (one listing of them all, by id,
    /// stopped ones included).
    async fn forget_removed(&mut self, docker: &Docker) {
        if self.stopped.is_empty() {
            return;
        }
        let filters = HashMap::from([(
            "id".to_string(),
            self.stopped.keys().cloned().collect::<Vec<_>>(),
        )]);
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let existing: BTreeSet<String> = match docker.list_containers(Some(opts)).await {
            Ok(list) => list.into_iter().filter_map(|c| c.id).collect(),
            Err(e) => {
                tracing::warn!(job = %self.job, error = %e, "docker_sd_configs: listing stopped containers failed; their positions are kept");
                return;
            }
        };
        self.stopped.retain(|id, key| {
            let kept = existing.contains(id);
            if !kept {
                tracing::debug!(container = %id, "stopped container removed; its position is forgotten");
                self.cursors.untrack(key, true);
            }
            kept
        });
    }
}

impl ContainerManager {
    fn publish(&self, targets: &BTreeMap<String, LabelSet>) {
        let found = targets
            .iter()
            .map(|(id, discovered)| {
                let name = discovered
                    .get(docker_sd::CONTAINER_NAME)
                    .cloned()
                    .unwrap_or_else(|| id.clone());
                let target = DockerTarget {
                    job: self.job.clone(),
                    name,
                    discovered: discovered.clone(),
                    labels: stream_labels(discovered, "stdout", &self.rules),
                    running: self.tails.get(id).is_some_and(|t| !t.task.is_finished()),
                };
                (id.clone(), target)
            })
            .collect();
        *self.published.lock().unwrap_or_else(|e| e.into_inner()) = found;
    }
}

impl Drop for ContainerManager {
    fn drop(&mut self) {
        for t in self.tails.values() {
            t.task.abort();
        }
    }
}

/// A container's labels for one of its streams, after relabeling, without
/// the `__` ones; `None` when relabeling drops it.
fn stream_labels(discovered: &LabelSet, stream: &str, rules: &[RelabelConfig]) -> Option<LabelSet> {
    let mut labels = discovered.clone();
    labels.insert(LOG_STREAM.into(), stream.into());
    let labels = relabel::process(labels, rules)?;
    Some(
        labels
            .into_iter()
            .filter(|(k, _)| !k.starts_with("__"))
            .collect(),
    )
}

/// A line being put together from the Engine's parts of it.
#[derive(Default)]
struct Partial {
    first_ts: u64,
    last_ts: u64,
    bytes: Vec<u8>,
}

/// Reads one container's log stream until it ends (the container stopped)
/// or the task is aborted.
async fn tail(
    docker: Docker,
    id: String,
    labels: [Option<Labels>; 2],
    progress: Arc<Progress>,
    read_to: Arc<AtomicU64>,
    tx: mpsc::Sender<Entry>,
) {
    // The Engine timestamp of the last part read; what is at or before it
    // was delivered (or read) already.
    let mut consumed = read_to.load(Ordering::Acquire);
    let mut parts: [Partial; 2] = Default::default();
    // Following ends when the container stops, and may end before the
    // Engine wrote the container's last, unterminated line: one more read
    // without following picks up whatever came after.
    for follow in [true, false] {
        // The parts of one long line share a timestamp: compare with where
        // this pass started, not with the part before.
        let after = consumed;
        let since = i32::try_from(consumed / 1_000_000_000).unwrap_or(i32::MAX);
        let opts = LogsOptionsBuilder::new()
            .follow(follow)
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .since(since)
            .build();
        let mut logs = docker.logs(&id, Some(opts));
        while let Some(item) = logs.next().await {
            let (i, message) = match item {
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => (0, message),
                Ok(LogOutput::StdErr { message }) => (1, message),
                Ok(LogOutput::StdIn { .. }) => continue,
                Err(e) => {
                    tracing::warn!(container = %id, error = %e, "reading the container's logs stopped");
                    break;
                }
            };
            let Some((ts, payload)) = split_timestamp(&message) else {
                PARSING_ERRORS.fetch_add(1, Ordering::Relaxed);
                tracing::error!(container = %id, "could not find the timestamp of a log line; skipping it");
                continue;
            };
            if ts <= after {
                continue;
            }
            consumed = consumed.max(ts);
            let part = &mut parts[i];
            if part.bytes.is_empty() {
                part.first_ts = ts;
            }
            part.last_ts = ts;
            let complete = payload.ends_with(b"\n");
            let room = MAX_LINE.saturating_sub(part.bytes.len());
            part.bytes
                .extend_from_slice(&payload[..payload.len().min(room)]);
            if (complete || part.bytes.len() >= MAX_LINE)
                && !send(&mut parts, i, &labels, &progress, &read_to, &tx).await
            {
                return;
            }
        }
    }
    // The stream ended: a last line without its newline is complete too.
    for i in 0..2 {
        if !parts[i].bytes.is_empty()
            && !send(&mut parts, i, &labels, &progress, &read_to, &tx).await
        {
            return;
        }
    }
}

/// Sends the line collected in `parts[i]`. Its position never passes the
/// start of a line still being collected on the other stream, so a restart
/// cannot skip that one. False when the pipeline is gone.
async fn send(
    parts: &mut [Partial; 2],
    i: usize,
    labels: &[Option<Labels>; 2],
    progress: &Arc<Progress>,
    read_to: &AtomicU64,
    tx: &mpsc::Sender<Entry>,
) -> bool {
    let part = std::mem::take(&mut parts[i]);
    let other = &parts[1 - i];
    let end = if other.bytes.is_empty() {
        part.last_ts
    } else {
        part.last_ts.min(other.first_ts.saturating_sub(1))
    };
    let ack = progress.track(end);
    read_to.fetch_max(part.last_ts, Ordering::AcqRel);
    let Some(labels) = &labels[i] else {
        ack.complete(); // dropped by relabeling, on purpose
        return true;
    };
    let mut bytes = part.bytes;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    let line = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    let entry = Entry {
        labels: labels.clone(),
        timestamp: UNIX_EPOCH + Duration::from_nanos(part.first_ts),
        line,
        structured_metadata: Vec::new(),
        ack: Some(ack),
    };
    ENTRIES.fetch_add(1, Ordering::Relaxed);
    tx.send(entry).await.is_ok()
}

/// `<RFC 3339 timestamp> <payload>` as the Engine sends it with
/// `timestamps=true`: the timestamp in ns and the payload.
fn split_timestamp(message: &[u8]) -> Option<(u64, &[u8])> {
    let sp = memchr::memchr(b' ', message)?;
    let ts = parse_timestamp(std::str::from_utf8(&message[..sp]).ok()?)?;
    Some((ts, &message[sp + 1..]))
}

/// Now in ns since the epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_split_from_the_payload() {
        let (ts, rest) = split_timestamp(b"2024-05-01T10:00:00.000000001Z hello world\n").unwrap();
        assert_eq!(ts, 1_714_557_600_000_000_001);
        assert_eq!(rest, b"hello world\n");
        assert!(split_timestamp(b"no-timestamp here").is_none());
        assert!(split_timestamp(b"nospace").is_none());
    }

    #[test]
    fn relabeling_sees_the_stream_and_drops_meta_labels() {
        let rules: Vec<RelabelConfig> = serde_yaml_ng::from_str(
            "- source_labels: [__meta_docker_container_name]\n  regex: '/(.*)'\n  target_label: container\n\
             - source_labels: [__meta_docker_container_log_stream]\n  target_label: stream\n\
             - source_labels: [__meta_docker_container_log_stream]\n  regex: stderr\n  action: drop\n",
        )
        .unwrap();
        let discovered = relabel::labels([
            ("__meta_docker_container_name", "/web-1"),
            ("__meta_docker_container_id", "abc"),
        ]);
        let out = stream_labels(&discovered, "stdout", &rules).unwrap();
        assert_eq!(
            out,
            relabel::labels([("container", "web-1"), ("stream", "stdout")])
        );
        assert!(stream_labels(&discovered, "stderr", &rules).is_none());
    }

    #[tokio::test]
    async fn a_partial_line_on_one_stream_holds_the_position_of_the_other() {
        let (tx, mut rx) = mpsc::channel(8);
        let progress = Progress::new(0);
        let read_to = AtomicU64::new(0);
        let labels = [Some(Labels::default()), Some(Labels::default())];
        let mut parts: [Partial; 2] = Default::default();
        parts[0] = Partial {
            first_ts: 100,
            last_ts: 100,
            bytes: b"half of a stdout line".to_vec(),
        };
        parts[1] = Partial {
            first_ts: 200,
            last_ts: 200,
            bytes: b"stderr line\n".to_vec(),
        };
        assert!(send(&mut parts, 1, &labels, &progress, &read_to, &tx).await);
        rx.recv().await.unwrap().complete();
        assert_eq!(
            progress.committed(),
            99,
            "not past the unfinished stdout line"
        );
        assert!(send(&mut parts, 0, &labels, &progress, &read_to, &tx).await);
        let e = rx.recv().await.unwrap();
        assert_eq!(e.line, "half of a stdout line");
        e.complete();
        assert_eq!(progress.committed(), 100);
        assert_eq!(read_to.load(Ordering::Relaxed), 200);
    }
}
