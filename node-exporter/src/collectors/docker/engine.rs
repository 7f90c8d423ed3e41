//! The Docker Engine side of the docker collector: a background thread that
//! lists the containers once, then keeps the list current from the events
//! stream (re-inspecting a container when an event names it) and counts the
//! events. Scrapes only read the shared [`State`]; they never call the
//! Engine, so a slow or dead Engine cannot slow a scrape.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context};
use bollard::models::{ContainerInspectResponse, EventMessage};
use bollard::query_parameters::{EventsOptionsBuilder, ListContainersOptionsBuilder};
use bollard::Docker;
use futures_util::StreamExt;

use super::cgroup::Hierarchy;

/// Timeout of one Engine API request (the events stream itself is long-lived).
const REQUEST_TIMEOUT_SECS: u64 = 10;
/// Reconnect delays after the Engine went away: doubling up to the cap.
const RECONNECT_MIN: Duration = Duration::from_millis(500);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// What the Engine said about one container, as of its last event.
#[derive(Clone, Debug, Default)]
pub struct Container {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    /// The image as the container was created with (`Config.Image`), as
    /// cAdvisor's `image` label.
    pub image: String,
    pub labels: HashMap<String, String>,
    /// created, running, paused, restarting, removing, exited, dead.
    pub state: String,
    pub pid: Option<i64>,
    pub restart_count: i64,
    pub exit_code: i64,
    /// starting, healthy, unhealthy; `None` without a healthcheck.
    pub health: Option<String>,
    /// Unix seconds; `None` when never started.
    pub started_at: Option<f64>,
    /// The cgroup path (cAdvisor's `id`), found when the container runs.
    pub cgroup: Option<String>,
    /// Host path of the writable layer (the storage driver's `UpperDir`:
    /// overlay2, fuse-overlayfs), whose disk use is the container's.
    pub rw_dir: Option<String>,
}

/// Shared between the watcher thread and scrapes.
#[derive(Debug, Default)]
pub struct State {
    /// `Err` while the Engine is unreachable (and before the first list).
    pub status: Option<Result<(), String>>,
    pub containers: BTreeMap<String, Container>,
    /// Events by (type, action) since the exporter started.
    pub events: BTreeMap<(String, String), u64>,
    /// "oom" events by container ID since the exporter started.
    pub ooms: HashMap<String, u64>,
}

pub struct Engine {
    state: Mutex<State>,
    changed: Condvar,
}

impl Engine {
    /// Starts the watcher thread for `host` (`unix:///path`, `tcp://h:p`).
    pub fn start(host: String, cgroups: Hierarchy, procfs: PathBuf) -> anyhow::Result<Arc<Engine>> {
        // Refuse a malformed host at startup rather than retrying forever.
        connect(&host)?;
        let engine = Arc::new(Engine {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let e = engine.clone();
        std::thread::Builder::new()
            .name("docker-watcher".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(err) => {
                        e.set_status(Err(format!("starting the Docker watcher: {err}")));
                        return;
                    }
                };
                rt.block_on(watch(e, host, cgroups, procfs));
            })
            .context("starting the Docker watcher thread")?;
        Ok(engine)
    }

    /// An engine with no watcher, for rendering tests.
    #[cfg(test)]
    pub fn for_tests() -> Engine {
        Engine {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits up to `limit` for the first connection attempt to settle, so
    /// that the first scrape after startup already has the containers.
    pub fn wait_ready(&self, limit: Duration) {
        let guard = self.lock();
        let _ = self
            .changed
            .wait_timeout_while(guard, limit, |s| s.status.is_none());
    }

    fn set_status(&self, status: Result<(), String>) {
        self.lock().status = Some(status);
        self.changed.notify_all();
    }
}

fn connect(host: &str) -> anyhow::Result<Docker> {
    let docker = if host.starts_with("unix://") {
        Docker::connect_with_unix(host, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
    } else if host.starts_with("tcp://") || host.starts_with("http://") {
        Docker::connect_with_http(host, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
    } else {
        return Err(anyhow!(
            "--collector.docker.host={host}: expected unix:///path/to/docker.sock or tcp://host:port"
        ));
    };
    docker.map_err(|e| anyhow!("--collector.docker.host={host}: {e}"))
}

async fn watch(engine: Arc<Engine>, host: String, cgroups: Hierarchy, procfs: PathBuf) {
    let mut delay = RECONNECT_MIN;
    // Events are asked for from this instant on, so none is lost between
    // the list and the stream, nor while reconnecting.
    let mut since = unix_now_nanos();
    loop {
        let mut session = Session {
            engine: &engine,
            cgroups: &cgroups,
            procfs: &procfs,
            docker: None,
            connected: false,
        };
        let err = session.run(&host, &mut since).await;
        if session.connected {
            delay = RECONNECT_MIN;
        }
        let msg = format!("Docker Engine at {host}: {err:#}");
        tracing::warn!(error = %msg, "docker collector lost the Engine; retrying in {delay:?}");
        engine.set_status(Err(msg));
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RECONNECT_MAX);
    }
}

struct Session<'a> {
    engine: &'a Engine,
    cgroups: &'a Hierarchy,
    procfs: &'a PathBuf,
    docker: Option<Docker>,
    connected: bool,
}

impl Session<'_> {
    /// Lists, then follows events until the Engine goes away; returns why.
    async fn run(&mut self, host: &str, since: &mut i64) -> anyhow::Error {
        match self.follow(host, since).await {
            Ok(()) => anyhow!("the events stream ended"),
            Err(e) => e,
        }
    }

    async fn follow(&mut self, host: &str, since: &mut i64) -> anyhow::Result<()> {
        let docker = connect(host)?
            .negotiate_version()
            .await
            .context("connecting")?;
        self.docker = Some(docker.clone());
        let since_arg = format!("{}.{:09}", *since / 1_000_000_000, *since % 1_000_000_000);
        let options = EventsOptionsBuilder::new().since(&since_arg).build();
        let mut events = docker.events(Some(options));

        let list = docker
            .list_containers(Some(ListContainersOptionsBuilder::new().all(true).build()))
            .await
            .context("listing containers")?;
        let mut containers = BTreeMap::new();
        for summary in list {
            let Some(id) = summary.id else { continue };
            if let Some(c) = self.inspect(&id).await? {
                containers.insert(id, c);
            }
        }
        {
            let mut state = self.engine.lock();
            state.containers = containers;
            state.status = Some(Ok(()));
        }
        self.engine.changed.notify_all();
        self.connected = true;

        while let Some(event) = events.next().await {
            let event = event.context("reading the events stream")?;
            if let Some(t) = event.time_nano.filter(|t| *t > 0) {
                // Past this one, so a reconnect does not count it twice.
                *since = (*since).max(t + 1);
            }
            self.apply(event).await?;
        }
        Ok(())
    }

    async fn apply(&self, event: EventMessage) -> anyhow::Result<()> {
        let kind = event.typ.map(|t| t.to_string()).unwrap_or_default();
        // "exec_start: sh -c ..." and "health_status: healthy" carry their
        // argument in the action; the counter keeps the verb only.
        let action = event.action.unwrap_or_default();
        let action = action.split(':').next().unwrap_or("").trim().to_string();
        let id = event.actor.and_then(|a| a.id).unwrap_or_default();
        {
            let mut state = self.engine.lock();
            *state
                .events
                .entry((kind.clone(), action.clone()))
                .or_default() += 1;
            if kind == "container" && action == "oom" {
                *state.ooms.entry(id.clone()).or_default() += 1;
            }
        }
        if kind != "container" || id.is_empty() {
            return Ok(());
        }
        let updated = if action == "destroy" {
            None
        } else {
            self.inspect(&id).await?
        };
        let mut state = self.engine.lock();
        match updated {
            Some(c) => {
                state.containers.insert(id, c);
            }
            None => {
                state.containers.remove(&id);
                state.ooms.remove(&id);
            }
        }
        Ok(())
    }

    /// `Ok(None)` when the container is already gone.
    async fn inspect(&self, id: &str) -> anyhow::Result<Option<Container>> {
        let docker = self
            .docker
            .as_ref()
            .ok_or_else(|| anyhow!("not connected"))?;
        match docker.inspect_container(id, None).await {
            Ok(c) => Ok(Some(self.container(c))),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(anyhow!("inspecting container {id}: {e}")),
        }
    }

    fn container(&self, c: ContainerInspectResponse) -> Container {
        let id = c.id.unwrap_or_default();
        let state = c.state.unwrap_or_default();
        let config = c.config.unwrap_or_default();
        let running = matches!(state.running, Some(true));
        let pid = state.pid.filter(|p| *p > 0);
        let parent = c.host_config.and_then(|h| h.cgroup_parent);
        let cgroup = running
            .then(|| {
                self.cgroups
                    .locate(self.procfs, pid, &id, parent.as_deref())
            })
            .flatten();
        let rw_dir = c
            .graph_driver
            .and_then(|g| g.data.get("UpperDir").cloned())
            .filter(|d| !d.is_empty());
        Container {
            rw_dir,
            name: c
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            image: config.image.unwrap_or_default(),
            labels: config.labels.unwrap_or_default(),
            state: state.status.map(|s| s.to_string()).unwrap_or_default(),
            pid,
            restart_count: c.restart_count.unwrap_or(0),
            exit_code: state.exit_code.unwrap_or(0),
            health: state
                .health
                .and_then(|h| h.status)
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty() && s != "none"),
            started_at: state.started_at.as_deref().and_then(parse_rfc3339),
            cgroup,
            id,
        }
    }
}

fn unix_now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Docker's `2024-05-01T10:20:30.123456789Z` (UTC, as the Engine writes it)
/// to Unix seconds; Docker's zero time (`0001-01-01T00:00:00Z`) is `None`.
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-');
    let (y, mo, da): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    if y < 1970 {
        return None;
    }
    let (clock, offset) = match time.find(['Z', '+', '-']) {
        Some(i) => time.split_at(i),
        None => (time, "Z"),
    };
    let mut t = clock.splitn(3, ':');
    let (h, mi): (i64, i64) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    let sec: f64 = t.next()?.parse().ok()?;
    let offset_secs = match offset {
        "Z" | "" => 0,
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let (oh, om) = o.get(1..)?.split_once(':')?;
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some((days * 86400 + h * 3600 + mi * 60 - offset_secs) as f64 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_rfc3339("2024-05-01T10:20:30.5Z"), Some(1714558830.5));
        assert_eq!(
            parse_rfc3339("2024-05-01T12:20:30+02:00"),
            Some(1714558830.0)
        );
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn a_bad_host_is_refused_with_the_flag_named() {
        let err = connect("ftp://nowhere").unwrap_err().to_string();
        assert!(err.contains("--collector.docker.host"), "{err}");
    }
}
