//! log-shipper: promtail's command line and config, shipping to Loki.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use log_shipper::app::{self, Shipper};
use log_shipper::cli::{self, Cli};
use log_shipper::config::{self, Config};
use log_shipper::server::{self, ServerState};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

fn main() -> ExitCode {
    one_malloc_arena();
    let cli = match Cli::parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}\n{}", cli::usage());
            return ExitCode::from(2);
        }
    };
    if cli.help {
        print!("{}", cli::usage());
        return ExitCode::SUCCESS;
    }
    if cli.version {
        println!(
            "log-shipper, version {} (promtail-compatible)",
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    let cfg = match load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if cli.print_config_stderr {
        eprintln!("{}", cfg.to_yaml());
    }
    if cli.print_alloy {
        return match config::alloy::print::to_alloy(&cfg) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    if cli.check_syntax {
        println!("Valid config file! No syntax issues found");
        return ExitCode::SUCCESS;
    }
    if cli.check_config {
        return match app::check(&cfg) {
            Ok(()) => {
                println!("Valid config file! No issues found");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    // The flag wins when given; otherwise the config's server.log_level.
    let level = if cli.log_level != "info" {
        cli.log_level.clone()
    } else {
        cfg.server.log_level.clone()
    };
    let format = if cli.log_format != "logfmt" {
        cli.log_format.clone()
    } else {
        cfg.server.log_format.clone()
    };
    if let Err(e) = exporter_toolkit::logging::init(&level, &format) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    if cli.log_config_reverse_order {
        // One log line per config line, last first, as promtail: read
        // newest-first (Grafana's Explore), the config reads top down.
        for line in cfg.to_yaml().lines().rev() {
            tracing::info!("{line}");
        }
    }
    if let Err(e) = app::check(&cfg) {
        tracing::error!(error = %e, "invalid config");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "exiting");
            ExitCode::FAILURE
        }
    }
}

fn load(cli: &Cli) -> Result<Config, String> {
    let Some(path) = &cli.config_file else {
        if cli.stdin() {
            // `cat my.log | promtail -stdin -client.url ...`: no file needed.
            let mut cfg = Config::default();
            cli.apply_overrides(&mut cfg);
            return Ok(cfg);
        }
        return Err("-config.file is required".into());
    };
    let alloy = match cli.config_format.as_deref() {
        Some(f) => f == "alloy",
        None => config::alloy::is_alloy_path(path),
    };
    let mut cfg = if alloy {
        // Alloy has env() in the language: -config.expand-env does not apply.
        config::alloy::load(path)
    } else {
        config::load(path, cli.config_expand_env)
    }
    .map_err(|e| e.to_string())?;
    cli.apply_overrides(&mut cfg);
    Ok(cfg)
}

/// A page's data from the running shipper (none while it restarts).
fn from_running<T: Default + 'static>(
    shipper: &Arc<Mutex<Option<Shipper>>>,
    f: fn(&Shipper) -> T,
) -> Box<dyn Fn() -> T + Send + Sync> {
    let shipper = Arc::clone(shipper);
    Box::new(move || {
        shipper
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(f)
            .unwrap_or_default()
    })
}

fn start_options(cli: &Cli) -> app::StartOptions {
    app::StartOptions {
        dry_run: cli.dry_run,
        inspect: cli.inspect,
    }
}

async fn run(cli: Cli, cfg: Config) -> Result<(), String> {
    let grace = cfg.server.graceful_shutdown_timeout.get();
    let shipper = Arc::new(Mutex::new(Some(Shipper::start(&cfg, start_options(&cli))?)));
    let mut running_cfg = cfg.clone();
    let (reload_tx, mut reload_rx) = mpsc::channel::<server::ReloadReply>(4);
    let state = Arc::new(ServerState {
        ready: Default::default(),
        targets: from_running(&shipper, Shipper::targets),
        discovered: from_running(&shipper, Shipper::service_discovery),
        config: Mutex::new(config::shown(&cfg)),
        reload: reload_tx,
        collect: Box::new(log_shipper::metrics::collect),
        routes: server::Routes::from_config(&cfg.server),
    });
    if !cfg.server.disable {
        let address = format!(
            "{}:{}",
            cfg.server.http_listen_address, cfg.server.http_listen_port
        );
        let address = if cfg.server.http_listen_address.is_empty() {
            format!(":{}", cfg.server.http_listen_port)
        } else {
            address
        };
        let web = server::web_config(&cfg.server)?;
        let listeners = exporter_toolkit::server::bind(&[address]).await?;
        let state = Arc::clone(&state);
        tokio::spawn(exporter_toolkit::server::serve(
            listeners,
            exporter_toolkit::web_config_reload::LiveWebConfig::fixed(web),
            move |req| server::handle(Arc::clone(&state), req),
        ));
    }
    state.ready.store(true, Ordering::Relaxed);
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    // -stdin: the end of the input ends the shipper, as promtail.
    let stdin_ended = shipper
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(Shipper::stdin_ended);
    let input_ends = async move {
        match stdin_ended {
            Some(mut ended) => {
                let _ = ended.wait_for(|e| *e).await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(input_ends);
    loop {
        let reply = tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = &mut input_ends => break,
            _ = hup.recv() => None,
            Some(r) = reload_rx.recv() => Some(r),
        };
        let result = reload(&cli, &shipper, &mut running_cfg, grace).await;
        *state.config.lock().unwrap_or_else(|e| e.into_inner()) = config::shown(&running_cfg);
        app::count_reload(result.is_ok());
        match &result {
            Ok(()) => tracing::info!("config reloaded"),
            Err(e) => tracing::error!(error = %e, "reload failed; keeping the running config"),
        }
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    }
    tracing::info!("shutting down: delivering what was read, then saving positions");
    state.ready.store(false, Ordering::Relaxed);
    let current = shipper.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(s) = current {
        s.stop(grace).await;
    }
    Ok(())
}

/// Re-reads the config file; only a config that passes every check
/// replaces the running one.
async fn reload(
    cli: &Cli,
    shipper: &Arc<Mutex<Option<Shipper>>>,
    running: &mut Config,
    grace: Duration,
) -> Result<(), String> {
    let cfg = load(cli)?;
    app::check(&cfg).map_err(|e| e.to_string())?;
    let old = shipper.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(old) = old {
        old.stop(grace).await;
    }
    let (new, result) = match Shipper::start(&cfg, start_options(cli)) {
        Ok(s) => {
            *running = cfg;
            (s, Ok(()))
        }
        // Checked but failed to start (a port, a file): back to the old one.
        Err(e) => (Shipper::start(running, start_options(cli))?, Err(e)),
    };
    *shipper.lock().unwrap_or_else(|e| e.into_inner()) = Some(new);
    result
}

/// glibc gives each thread that allocates its own arena, and memory freed
/// into one arena is not reused by the others: entries are made on one
/// worker thread and freed on another, so every arena grows to the peak
/// backlog. One arena keeps resident memory about a quarter lower and
/// costs no measurable CPU here (bench/shipper.py). `MALLOC_ARENA_MAX` in
/// the environment still wins.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: called first thing in main, before any other thread
        // exists; mallopt only changes allocator tuning.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}
