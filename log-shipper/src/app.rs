//! Wires one loaded config into running parts: per scrape config a
//! discovery feeding the file target manager, whose tailers send into the
//! job's pipeline, whose output goes to the clients (fanned out when there
//! are several, each entry completing only when every client accepted it).
//! A reload stops one [`Shipper`] and starts the next.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use exporter_toolkit::http_client::http_headers::HttpHeaders;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::{
    self, BackoffSettings, BasicAuth, Client, ClientSettings, OAuth2Settings, TlsSettings,
};
use crate::config::{ClientConfig, Config, ConfigError};
use crate::entry::Entry;
use crate::limits::ReadlineLimit;
use crate::pipeline::Pipeline;
use crate::positions::{Positions, PositionsSettings};
use crate::server::{DiscoveredView, TargetView};
use crate::sources::docker::DockerSources;
use crate::sources::file::{FileTargetManager, TailerSettings};

/// Entries a job's channel holds before its tailers wait (backpressure).
const JOB_QUEUE: usize = 1024;
/// Entries taken from a job's channel per pipeline pass.
const PIPELINE_BATCH: usize = 512;

static RELOAD_SUCCESS: AtomicU64 = AtomicU64::new(0);
static RELOAD_FAIL: AtomicU64 = AtomicU64::new(0);

/// Counts a reload the way promtail's `promtail_config_reload_*` do.
pub fn count_reload(ok: bool) {
    if ok {
        RELOAD_SUCCESS.fetch_add(1, Ordering::Relaxed);
    } else {
        RELOAD_FAIL.fetch_add(1, Ordering::Relaxed);
    }
}

pub fn collect(set: &mut exporter_toolkit::exposition::MetricSet) {
    set.counter(
        "promtail_config_reload_success_total",
        "Number of reload success times.",
        &[],
        RELOAD_SUCCESS.load(Ordering::Relaxed) as f64,
    );
    set.counter(
        "promtail_config_reload_fail_total",
        "Number of reload fail times.",
        &[],
        RELOAD_FAIL.load(Ordering::Relaxed) as f64,
    );
}

/// Everything `--check-config` verifies and a start or reload needs:
/// the config parses (done by the caller), every pipeline builds, every
/// glob is well formed, every client's settings are complete (files for
/// passwords and certificates readable).
pub fn check(cfg: &Config) -> Result<(), ConfigError> {
    cfg.validate()?;
    cfg.check_all()?;
    if !cfg.server.disable {
        crate::server::web_config(&cfg.server).map_err(ConfigError::new)?;
    }
    for sc in &cfg.scrape_configs {
        crate::sources::journal::check(sc).map_err(ConfigError::new)?;
        crate::sources::loki_push::check(sc).map_err(ConfigError::new)?;
        crate::sources::gelf::check(sc).map_err(ConfigError::new)?;
        crate::sources::syslog::check(sc).map_err(ConfigError::new)?;
    }
    for (i, c) in cfg.clients.iter().enumerate() {
        client_settings(c).map_err(|e| ConfigError::new(format!("clients[{i}]: {e}")))?;
    }
    if cfg.target_config.stdin && cfg.graph.is_some() {
        return Err(ConfigError::new(
            "target_config.stdin (-stdin): not supported with an Alloy config (Alloy has no stdin source)",
        ));
    }
    Ok(())
}

/// promtail's `clients` entry as the client's runtime settings.
pub fn client_settings(c: &ClientConfig) -> Result<ClientSettings, String> {
    let read = |what: &str, path: &str| -> Result<String, String> {
        std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|e| format!("{what} {path:?}: {e}"))
    };
    let basic_auth = match &c.basic_auth {
        None => None,
        Some(b) => Some(BasicAuth {
            username: if b.username_file.is_empty() {
                b.username.clone()
            } else {
                read("basic_auth.username_file", &b.username_file)?
            },
            password: if b.password_file.is_empty() {
                b.password.clone()
            } else {
                read("basic_auth.password_file", &b.password_file)?
            },
        }),
    };
    let mut bearer_token = (!c.bearer_token.is_empty()).then(|| c.bearer_token.clone());
    let mut bearer_token_file =
        (!c.bearer_token_file.is_empty()).then(|| Path::new(&c.bearer_token_file).to_path_buf());
    if let Some(a) = &c.authorization {
        if !a.kind.is_empty() && !a.kind.eq_ignore_ascii_case("bearer") {
            return Err(format!(
                "authorization.type {:?}: only Bearer is supported",
                a.kind
            ));
        }
        if !a.credentials.is_empty() {
            bearer_token = Some(a.credentials.clone());
        }
        if !a.credentials_file.is_empty() {
            bearer_token_file = Some(Path::new(&a.credentials_file).to_path_buf());
        }
    }
    let tls = tls_settings(&c.tls_config)?;
    let proxy = client::Proxy::from_config(
        &c.proxy_url,
        &c.no_proxy,
        c.proxy_from_environment,
        !c.proxy_connect_header.is_empty(),
    )?;
    let proxy_connect_header = connect_headers(&c.proxy_connect_header)?;
    let oauth2 = match &c.oauth2 {
        None => None,
        Some(o) => {
            let at = |e: String| format!("oauth2: {e}");
            let proxy = client::Proxy::from_config(
                &o.proxy_url,
                &o.no_proxy,
                o.proxy_from_environment,
                !o.proxy_connect_header.is_empty(),
            )
            .map_err(at)?;
            client::Endpoint::parse(&o.token_url).map_err(|e| at(format!("token_url: {e}")))?;
            Some(OAuth2Settings {
                client_id: o.client_id.clone(),
                client_secret: (!o.client_secret.is_empty()).then(|| o.client_secret.clone()),
                client_secret_file: (!o.client_secret_file.is_empty())
                    .then(|| Path::new(&o.client_secret_file).to_path_buf()),
                scopes: o.scopes.clone(),
                token_url: o.token_url.clone(),
                endpoint_params: o
                    .endpoint_params
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                tls: tls_settings(&o.tls_config).map_err(at)?,
                proxy,
                proxy_connect_header: connect_headers(&o.proxy_connect_header).map_err(at)?,
            })
        }
    };
    let mut headers = Vec::new();
    for (name, value) in &c.headers {
        let n = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| format!("headers: {name:?} is not a header name: {e}"))?;
        http::HeaderValue::from_str(value)
            .map_err(|e| format!("headers.{name}: not a header value: {e}"))?;
        headers.push((n.as_str().to_string(), value.clone()));
    }
    Ok(ClientSettings {
        url: c.url.clone(),
        tenant_id: (!c.tenant_id.is_empty()).then(|| c.tenant_id.clone()),
        batch_wait: c.batchwait.get(),
        batch_size: usize::try_from(c.batchsize.0).unwrap_or(usize::MAX),
        timeout: c.timeout.get(),
        basic_auth,
        bearer_token,
        bearer_token_file,
        tls,
        oauth2,
        proxy,
        proxy_connect_header,
        follow_redirects: c.follow_redirects,
        backoff: BackoffSettings {
            min_period: c.backoff_config.min_period.get(),
            max_period: c.backoff_config.max_period.get(),
            max_retries: c.backoff_config.max_retries,
        },
        external_labels: c
            .external_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        headers,
        http_headers: HttpHeaders::from_config(&c.http_headers)
            .map_err(|e| format!("http_headers: {e}"))?,
        drop_rate_limited_batches: c.drop_rate_limited_batches,
        ..ClientSettings::default()
    })
}

/// A `tls_config` as the client's settings; files readable, PEM well
/// formed and versions known are checked now, so -check-config reports
/// them (the URL's scheme does not matter here).
pub(crate) fn tls_settings(t: &crate::config::TlsConfig) -> Result<TlsSettings, String> {
    let path = |s: &str| (!s.is_empty()).then(|| Path::new(s).to_path_buf());
    let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let tls = TlsSettings {
        ca_file: path(&t.ca_file),
        cert_file: path(&t.cert_file),
        key_file: path(&t.key_file),
        ca: text(&t.ca),
        cert: text(&t.cert),
        key: text(&t.key),
        server_name: text(&t.server_name),
        insecure_skip_verify: t.insecure_skip_verify,
        min_version: text(&t.min_version),
        max_version: text(&t.max_version),
    };
    crate::client::transport::client_tls_config(&tls)?;
    Ok(tls)
}

/// `proxy_connect_header`: each name with its values.
fn connect_headers(
    h: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, String> {
    let mut out = Vec::new();
    for (name, values) in h {
        let n = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("proxy_connect_header: {name:?} is not a header name"))?;
        for v in values {
            let v = http::HeaderValue::from_str(v)
                .map_err(|_| format!("proxy_connect_header.{name}: not a header value"))?;
            out.push((n.clone(), v));
        }
    }
    Ok(out)
}

fn tailer_settings(cfg: &Config) -> TailerSettings {
    TailerSettings {
        sync_period: cfg.target_config.sync_period.get(),
        max_line_size: usize::try_from(cfg.limits_config.max_line_size.0).unwrap_or(usize::MAX),
        max_line_size_truncate: cfg.limits_config.max_line_size_truncate,
        poll_interval: cfg.global.file_watch_config.min_poll_frequency.get(),
        max_poll_interval: cfg.global.file_watch_config.max_poll_frequency.get(),
        ..TailerSettings::default()
    }
}

/// How to run a config: the command line's `-dry-run` and `-inspect`.
#[derive(Clone, Copy, Debug, Default)]
pub struct StartOptions {
    /// Print entries to stdout instead of pushing them; never write positions.
    pub dry_run: bool,
    /// Print what each stage changes in each entry to stderr.
    pub inspect: bool,
}

/// One running config.
pub struct Shipper {
    manager: Arc<FileTargetManager>,
    discoveries: Vec<JoinHandle<()>>,
    pipelines: Vec<JoinHandle<()>>,
    fanout: Option<JoinHandle<()>>,
    clients: Vec<Client>,
    dry_run: Option<JoinHandle<()>>,
    positions: Arc<Positions>,
    positions_sync: Option<JoinHandle<()>>,
    docker: Vec<DockerSources>,
    journals: Vec<crate::sources::journal::JournalTarget>,
    pushes: Vec<crate::sources::loki_push::PushTarget>,
    gelfs: Vec<crate::sources::gelf::GelfTarget>,
    syslogs: Vec<crate::sources::syslog::SyslogTarget>,
    /// `target_config.stdin`: the reader of stdin, and whether it has
    /// come to the end of its input.
    stdin: Option<(JoinHandle<()>, tokio::sync::watch::Receiver<bool>)>,
    /// The journal and receivers, as `/targets` lists them (fixed while
    /// the config runs).
    fixed_targets: Vec<TargetView>,
    /// Per job, what its static and file discovery found.
    discovered: Vec<(
        String,
        Arc<std::sync::Mutex<Vec<crate::discovery::Discovered>>>,
    )>,
}

impl Shipper {
    /// Starts everything `cfg` describes (call inside a tokio runtime, after
    /// [`check`]). In a dry run entries are printed to stdout, not pushed,
    /// and positions are read but never written.
    pub fn start(cfg: &Config, opts: StartOptions) -> Result<Shipper, String> {
        let dry_run = opts.dry_run;
        let positions = Positions::load(PositionsSettings {
            filename: cfg.positions.filename.clone(),
            sync_period: cfg.positions.sync_period.get(),
            ignore_invalid_yaml: cfg.positions.ignore_invalid_yaml,
            // promtail keeps no positions for stdin.
            read_only: dry_run || cfg.target_config.stdin,
        });
        let mut shipper = Shipper {
            manager: Arc::new(FileTargetManager::new(
                tailer_settings(cfg),
                Arc::clone(&positions),
            )),
            discoveries: Vec::new(),
            pipelines: Vec::new(),
            fanout: None,
            clients: Vec::new(),
            dry_run: None,
            positions,
            positions_sync: None,
            docker: Vec::new(),
            journals: Vec::new(),
            pushes: Vec::new(),
            gelfs: Vec::new(),
            syslogs: Vec::new(),
            stdin: None,
            fixed_targets: Vec::new(),
            discovered: Vec::new(),
        };
        match shipper.start_parts(cfg, opts) {
            Ok(()) => {
                if !dry_run {
                    shipper.positions_sync = Some(shipper.positions.spawn_sync());
                }
                Ok(shipper)
            }
            Err(e) => {
                shipper.abort();
                Err(e)
            }
        }
    }

    /// Starts the clients, then per scrape config its pipeline and sources.
    fn start_parts(&mut self, cfg: &Config, opts: StartOptions) -> Result<(), String> {
        let dry_run = opts.dry_run;
        // Where pipelines send: one client directly, or a fan-out task.
        let output: mpsc::Sender<Entry>;
        if dry_run {
            let external = cfg
                .clients
                .first()
                .map(|c| c.external_labels.clone().into_iter().collect())
                .unwrap_or_default();
            let (tx, task) = client::dry_run::start(std::io::stdout(), external, JOB_QUEUE);
            output = tx;
            self.dry_run = Some(task);
        } else {
            if cfg.clients.is_empty() && cfg.graph.is_none() {
                return Err("no clients configured: set clients[].url or -client.url".into());
            }
            for (i, c) in cfg.clients.iter().enumerate() {
                let mut settings = client_settings(c).map_err(|e| format!("clients[{i}]: {e}"))?;
                settings.max_streams =
                    usize::try_from(cfg.limits_config.max_streams).unwrap_or(usize::MAX);
                self.clients.push(Client::start(settings)?);
            }
            if self.clients.len() == 1 {
                output = self.clients[0].sender();
            } else {
                let (tx, rx) = mpsc::channel(JOB_QUEUE);
                let senders = self.clients.iter().map(Client::sender).collect();
                self.fanout = Some(tokio::spawn(fan_out(rx, senders)));
                output = tx;
            }
        }

        // An Alloy component graph: where each source's entries go.
        let mut routes = None;
        if let Some(graph) = &cfg.graph {
            let clients: Vec<mpsc::Sender<Entry>> = if dry_run {
                vec![output.clone(); cfg.clients.len()]
            } else {
                self.clients.iter().map(Client::sender).collect()
            };
            let running = crate::graph::start(graph, &clients, opts.inspect)?;
            self.pipelines.extend(running.tasks);
            routes = Some(running.sources);
        }

        // One bucket for every line read, whichever job it belongs to.
        let readline = ReadlineLimit::from_config(&cfg.limits_config);
        if cfg.target_config.stdin {
            // Nothing else runs (promtail's stdin target manager).
            let sc = crate::sources::stdin::scrape_config(cfg);
            let mut pipeline =
                Pipeline::new(&sc.pipeline_stages, &sc.job_name).map_err(|e| e.to_string())?;
            if opts.inspect {
                pipeline.inspect(crate::pipeline::inspect::Inspector::stderr());
            }
            let (job_tx, job_rx) = mpsc::channel(JOB_QUEUE);
            self.pipelines.push(tokio::spawn(run_pipeline(
                pipeline, job_rx, output, readline,
            )));
            let (ended_tx, ended) = tokio::sync::watch::channel(false);
            let labels = crate::sources::stdin::labels(&sc);
            let task = tokio::spawn(async move {
                crate::sources::stdin::read(tokio::io::stdin(), labels, job_tx).await;
                ended_tx.send_replace(true);
            });
            self.stdin = Some((task, ended));
            return Ok(());
        }
        for sc in &cfg.scrape_configs {
            let has_files = !(sc.static_configs.is_empty() && sc.file_sd_configs.is_empty());
            let has_docker = !sc.docker_sd_configs.is_empty() || sc.docker_events.is_some();
            let has_push = sc.loki_push_api.is_some() || sc.gelf.is_some() || sc.syslog.is_some();
            if !has_files && !has_docker && sc.journal.is_none() && !has_push {
                continue;
            }
            let mut pipeline =
                Pipeline::new(&sc.pipeline_stages, &sc.job_name).map_err(|e| e.to_string())?;
            if opts.inspect {
                pipeline.inspect(crate::pipeline::inspect::Inspector::stderr());
            }
            let fixed =
                |kind, path: String, labels: &std::collections::BTreeMap<String, String>| {
                    TargetView {
                        kind,
                        job: sc.job_name.clone(),
                        path,
                        labels: labels.clone(),
                        read_bytes: 0,
                        size_bytes: 0,
                        acked_position: 0,
                        ready: true,
                    }
                };
            let job_output = match &routes {
                Some(r) => r
                    .get(&sc.job_name)
                    .cloned()
                    .ok_or_else(|| format!("{}: not in the component graph", sc.job_name))?,
                None => output.clone(),
            };
            let (job_tx, job_rx) = mpsc::channel(JOB_QUEUE);
            self.pipelines.push(tokio::spawn(run_pipeline(
                pipeline,
                job_rx,
                job_output,
                readline.clone(),
            )));
            self.docker
                .extend(DockerSources::start(sc, &job_tx, &self.positions));
            if let Some(e) = &sc.docker_events {
                self.fixed_targets
                    .push(fixed("docker_events", e.host.clone(), &e.labels));
            }
            if let Some(j) = &sc.journal {
                self.journals
                    .push(crate::sources::journal::JournalTarget::start(
                        sc,
                        Arc::clone(&self.positions),
                        job_tx.clone(),
                    )?);
                let path = if j.path.is_empty() {
                    "the system journal".to_string()
                } else {
                    j.path.clone()
                };
                self.fixed_targets.push(fixed("journal", path, &j.labels));
            }
            if let Some(p) = &sc.loki_push_api {
                // Pushes are answered once delivered, so they must see
                // whether the clients get through (a dry run always does).
                let downstream = match &cfg.graph {
                    Some(g) if !dry_run => {
                        let reached = g.clients_reached(&sc.job_name);
                        crate::client::Downstream::new(
                            self.clients
                                .iter()
                                .enumerate()
                                .filter(|(i, _)| reached.contains(i))
                                .map(|(_, c)| c),
                        )
                    }
                    _ => crate::client::Downstream::new(&self.clients),
                };
                let target =
                    crate::sources::loki_push::PushTarget::start(sc, job_tx.clone(), downstream)?;
                for a in target.local_addrs() {
                    self.fixed_targets
                        .push(fixed("loki_push_api", a.to_string(), &p.labels));
                }
                self.pushes.push(target);
            }
            if let Some(g) = &sc.gelf {
                let target = crate::sources::gelf::GelfTarget::start(sc, job_tx.clone())?;
                self.fixed_targets
                    .push(fixed("gelf", target.local_addr().to_string(), &g.labels));
                self.gelfs.push(target);
            }
            if let Some(c) = &sc.syslog {
                let target = crate::sources::syslog::SyslogTarget::start(sc, job_tx.clone())?;
                let protocol = if c.listen_protocol.is_empty() {
                    "tcp"
                } else {
                    &c.listen_protocol
                };
                let path = format!("{protocol}://{}", target.local_addr);
                self.fixed_targets.push(fixed("syslog", path, &c.labels));
                self.syslogs.push(target);
            }
            if !has_files {
                continue;
            }
            // Checked when the config was read.
            let encoding = crate::sources::file::encoding::FileEncoding::named(&sc.encoding)
                .ok()
                .flatten();
            let decompression = sc.decompression.as_ref().and_then(|d| d.reading());
            if encoding.is_some() || decompression.is_some() {
                let settings = TailerSettings {
                    encoding,
                    decompression,
                    ..self.manager.settings().clone()
                };
                self.manager.set_job_settings(&sc.job_name, settings);
            }
            if sc.tail_from_end {
                self.manager.tail_from_end(&sc.job_name);
            }
            let mut discovery = crate::discovery::spawn(sc);
            self.discovered
                .push((sc.job_name.clone(), Arc::clone(&discovery.discovered)));
            let manager = Arc::clone(&self.manager);
            let job = sc.job_name.clone();
            self.discoveries.push(tokio::spawn(async move {
                loop {
                    let targets = discovery
                        .targets
                        .borrow_and_update()
                        .iter()
                        .map(|t| t.labels.clone())
                        .collect();
                    if let Err(e) = manager.update(&job, targets, job_tx.clone()) {
                        tracing::error!(job = %job, error = %e, "bad target");
                    }
                    if discovery.targets.changed().await.is_err() {
                        return;
                    }
                }
            }));
        }
        Ok(())
    }

    /// Undoes a start that failed half-way, at once: nothing it started may
    /// go on reading, pushing or saving positions (a reload then starts the
    /// previous config again over the same files).
    fn abort(self) {
        if let Some((task, _)) = &self.stdin {
            task.abort();
        }
        for task in self.discoveries.iter().chain(&self.pipelines) {
            task.abort();
        }
        if let Some(f) = &self.fanout {
            f.abort();
        }
        if let Some(d) = &self.dry_run {
            d.abort();
        }
        self.manager.stop();
        self.docker.iter().for_each(DockerSources::stop_reading);
        for j in &self.journals {
            j.stop();
        }
        self.pushes.iter().for_each(|p| p.stop());
        self.gelfs.iter().for_each(|g| g.stop());
        self.syslogs.iter().for_each(|s| s.stop());
    }

    /// With `target_config.stdin`: turns true at the end of the input (the
    /// shipper is then to be stopped, which delivers what was read).
    pub fn stdin_ended(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        self.stdin.as_ref().map(|(_, ended)| ended.clone())
    }

    /// What `/targets` shows.
    pub fn targets(&self) -> Vec<TargetView> {
        let mut out = Vec::new();
        for t in self.manager.snapshot() {
            let labels: std::collections::BTreeMap<String, String> = t
                .labels
                .iter()
                .filter(|(k, _)| !k.starts_with("__"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if t.files.is_empty() {
                out.push(TargetView {
                    kind: "file",
                    job: t.job.clone(),
                    path: t.labels.get("__path__").cloned().unwrap_or_default(),
                    labels: labels.clone(),
                    read_bytes: 0,
                    size_bytes: 0,
                    acked_position: 0,
                    ready: false,
                });
            }
            for f in t.files {
                let mut labels = labels.clone();
                labels.insert("filename".into(), f.path.clone());
                out.push(TargetView {
                    kind: "file",
                    job: t.job.clone(),
                    path: f.path,
                    labels,
                    read_bytes: f.read_offset,
                    size_bytes: f.size,
                    acked_position: f.committed,
                    // Found but not open yet (waiting for a descriptor
                    // within `max_open_files`): not ready.
                    ready: f.opened,
                });
            }
        }
        for d in self.docker.iter().flat_map(DockerSources::targets) {
            let Some(labels) = d.labels else { continue };
            out.push(TargetView {
                kind: "docker",
                job: d.job,
                path: d.name,
                labels,
                read_bytes: 0,
                size_bytes: 0,
                acked_position: 0,
                ready: d.running,
            });
        }
        out.extend(self.fixed_targets.iter().cloned());
        out
    }

    /// What `/service-discovery` shows: every target static, file and
    /// Docker discovery found, with its labels before and after relabeling.
    pub fn service_discovery(&self) -> Vec<DiscoveredView> {
        let mut out = Vec::new();
        for (job, found) in &self.discovered {
            for d in found.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                out.push(DiscoveredView {
                    job: job.clone(),
                    mechanism: "static_configs/file_sd_configs",
                    discovered_labels: d.discovered.clone(),
                    target_labels: d.target.clone(),
                });
            }
        }
        for d in self.docker.iter().flat_map(DockerSources::targets) {
            out.push(DiscoveredView {
                job: d.job,
                mechanism: "docker_sd_configs",
                discovered_labels: d.discovered,
                target_labels: d.labels,
            });
        }
        out
    }

    /// Stops reading, delivers what was read for up to `grace`, then saves
    /// positions: only what Loki accepted is recorded, the rest is read
    /// again on the next start.
    pub async fn stop(self, grace: Duration) {
        if let Some((task, _)) = &self.stdin {
            task.abort();
        }
        for d in &self.discoveries {
            d.abort();
        }
        for d in self.discoveries {
            let _ = d.await;
        }
        self.manager.stop();
        self.docker.iter().for_each(DockerSources::stop_reading);
        for j in &self.journals {
            j.stop();
        }
        // Ports closed before a reload binds them again.
        for p in self.pushes {
            p.join().await;
        }
        for g in self.gelfs {
            g.join().await;
        }
        for s in self.syslogs {
            s.join().await;
        }
        let deadline = tokio::time::Instant::now() + grace;
        for p in self.pipelines {
            let abort = p.abort_handle();
            if tokio::time::timeout_at(deadline, p).await.is_err() {
                abort.abort();
            }
        }
        if let Some(f) = self.fanout {
            let abort = f.abort_handle();
            if tokio::time::timeout_at(deadline, f).await.is_err() {
                abort.abort();
            }
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        for c in self.clients {
            c.stop(left.max(Duration::from_millis(100))).await;
        }
        if let Some(d) = self.dry_run {
            let _ = d.await;
        }
        self.docker.iter().for_each(DockerSources::flush);
        for j in &self.journals {
            j.save_cursor();
        }
        if let Some(s) = self.positions_sync {
            s.abort();
            let positions = Arc::clone(&self.positions);
            match tokio::task::spawn_blocking(move || positions.save()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "error writing positions file"),
                Err(e) => tracing::error!(error = %e, "error writing positions file"),
            }
        }
    }
}

/// A job's pipeline: takes what its tailers read, runs the stages, passes
/// the survivors on. Waiting on `out` is what stops the tailers when Loki
/// is slow. Buffering stages (multiline) are flushed when their deadline
/// passes and when the job's channel closes.
pub(crate) async fn run_pipeline(
    mut pipeline: Pipeline,
    mut rx: mpsc::Receiver<Entry>,
    out: mpsc::Sender<Entry>,
    readline: Option<Arc<ReadlineLimit>>,
) {
    let mut input = Vec::with_capacity(PIPELINE_BATCH);
    let mut output = Vec::with_capacity(PIPELINE_BATCH);
    loop {
        let deadline = pipeline.next_deadline();
        let received = tokio::select! {
            n = rx.recv_many(&mut input, PIPELINE_BATCH) => Some(n),
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                    None => std::future::pending().await,
                }
            } => None,
        };
        match received {
            Some(0) => pipeline.flush_all(&mut output),
            Some(_) => {
                for e in input.drain(..) {
                    if let Some(limit) = &readline {
                        if !admit(limit).await {
                            limit.dropped.inc();
                            e.complete();
                            continue;
                        }
                    }
                    pipeline.process(e, &mut output);
                }
            }
            None => pipeline.flush_due(std::time::Instant::now(), &mut output),
        }
        if !send_all(&out, &mut output).await {
            return;
        }
        if received == Some(0) {
            return;
        }
    }
}

/// Entries sent on one reservation of channel slots.
const SEND_MANY: usize = 64;

/// Sends `entries` in order, reserving slots many at a time (one wait and
/// one semaphore update per run, not per entry). False when `out` closed.
async fn send_all(out: &mpsc::Sender<Entry>, entries: &mut Vec<Entry>) -> bool {
    let mut entries = entries.drain(..);
    loop {
        let n = entries.len().min(SEND_MANY).min(out.max_capacity());
        if n == 0 {
            return true;
        }
        let Ok(permits) = out.reserve_many(n).await else {
            return false;
        };
        for (permit, e) in permits.zip(entries.by_ref()) {
            permit.send(e);
        }
    }
}

/// `readline_rate`: true when the line may go on; over the rate, waits for
/// a token, or says no when the config drops such lines.
async fn admit(limit: &ReadlineLimit) -> bool {
    while let Some(wait) = limit.take() {
        if limit.drop {
            return false;
        }
        tokio::time::sleep(wait).await;
    }
    true
}

/// Several clients: every entry goes to each, and its ack is split so the
/// source's position moves only once all of them accepted it.
pub(crate) async fn fan_out(mut rx: mpsc::Receiver<Entry>, clients: Vec<mpsc::Sender<Entry>>) {
    while let Some(mut e) = rx.recv().await {
        let mut acks: Vec<Option<crate::ack::Ack>> = match e.ack.take() {
            Some(a) => a.split(clients.len()).into_iter().map(Some).collect(),
            None => clients.iter().map(|_| None).collect(),
        };
        for (i, c) in clients.iter().enumerate() {
            let copy = Entry {
                labels: e.labels.clone(),
                timestamp: e.timestamp,
                line: e.line.clone(),
                structured_metadata: e.structured_metadata.clone(),
                ack: acks[i].take(),
            };
            if c.send(copy).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_watch_config_sets_the_poll_period() {
        let cfg = crate::config::from_str(
            "global:\n  file_watch_config:\n    min_poll_frequency: 3s\n    max_poll_frequency: 5s\n",
        )
        .unwrap();
        assert_eq!(tailer_settings(&cfg).poll_interval, Duration::from_secs(3));
        assert_eq!(
            tailer_settings(&cfg).max_poll_interval,
            Duration::from_secs(5)
        );
        let default = crate::config::from_str("").unwrap();
        assert_eq!(
            tailer_settings(&default).poll_interval,
            Duration::from_millis(250)
        );
        assert_eq!(
            tailer_settings(&default).max_poll_interval,
            Duration::from_millis(250)
        );
        let e = crate::config::from_str(
            "global:\n  file_watch_config:\n    min_poll_frequency: 3s\n    max_poll_frequency: 1s\n",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("max_poll_frequency: bad value 1s: less than min_poll_frequency 3s")
                && e.line == Some(4),
            "{e:?}"
        );
    }
}
