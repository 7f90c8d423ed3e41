use std::sync::Arc;

use node_exporter::cli;
use node_exporter::handler::Exporter;
use node_exporter::scrape::{DeviceList, Scraper};

mod static_libc;

#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: static_libc::Allocator = static_libc::Allocator;

fn main() {
    if let Err(e) = run() {
        eprintln!("node-exporter: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    no_error_backtraces();
    limit_malloc_arenas();
    let flags = match cli::parse(std::env::args()) {
        Ok(f) => f,
        Err(e) => e.exit(),
    };
    if flags.given("help-man") {
        print!("{}", cli::man_page());
        return Ok(());
    }
    exporter_toolkit::logging::init(&flags.string("log.level"), &flags.string("log.format"))
        .map_err(anyhow::Error::msg)?;

    let missing = cli::check_not_implemented(&flags)?;
    if !missing.is_empty() {
        tracing::info!(
            collectors = missing.join(","),
            "Collectors on by default in node_exporter that are not implemented yet"
        );
    }
    let mut collectors = Vec::new();
    for spec in cli::enabled_collectors(&flags) {
        let c =
            (spec.build)(&flags).map_err(|e| anyhow::anyhow!("collector {}: {e:#}", spec.name))?;
        tracing::info!(collector = spec.name, "Enabled collector");
        collectors.push((spec.name, c));
    }
    let web = match flags.string("web.config.file").as_str() {
        "" => exporter_toolkit::web_config_reload::LiveWebConfig::default(),
        path => {
            exporter_toolkit::web_config_reload::LiveWebConfig::load(std::path::Path::new(path))?
        }
    };
    let exporter = Exporter::new(
        Scraper::new(collectors).with_device_list(DeviceList::new(&flags.paths)),
        flags.string("web.telemetry-path"),
        !flags.bool("web.disable-exporter-metrics", false),
        flags.duration("collector.timeout")?,
        flags.usize("web.max-requests")?,
    );
    let exporter = match flags.string("probe.config.file").as_str() {
        "" => exporter,
        path => {
            let prober = node_exporter::probe::Prober::from_file(std::path::Path::new(path))?;
            tracing::info!(
                modules = prober.modules().modules.len(),
                "Loaded probe modules"
            );
            exporter.with_prober(prober)
        }
    };
    let exporter = Arc::new(exporter);
    let addresses = flags.strings("web.listen-address");
    // Taken before the runtime starts threads: it edits the environment.
    let activated = if flags.bool("web.systemd-socket", false) {
        Some(exporter_toolkit::server::systemd_listeners().map_err(anyhow::Error::msg)?)
    } else {
        None
    };

    // One thread serves HTTP: collectors run on the blocking pool, and the
    // reactor only moves bytes, so a second worker would only add thread
    // wake-ups to every scrape. Idle blocking threads linger long enough to
    // be reused by the next scrape instead of being respawned every time.
    let rt = tokio::runtime::Builder::new_current_thread()
        .thread_keep_alive(std::time::Duration::from_secs(60))
        .enable_all()
        .build()?;
    rt.block_on(async move {
        if exporter.reloads_probes() {
            // As blackbox: SIGHUP reads the modules file again. Installed before
            // the port is bound, so that a SIGHUP once it answers never kills it.
            let exporter = exporter.clone();
            let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    // reload() logs the outcome; a bad file keeps the old modules.
                    let _ = exporter.reload_probes();
                }
            });
        }
        let listeners = match activated {
            Some(sockets) => sockets
                .into_iter()
                .map(tokio::net::TcpListener::from_std)
                .collect::<Result<Vec<_>, _>>()?,
            None => exporter_toolkit::server::bind(&addresses)
                .await
                .map_err(anyhow::Error::msg)?,
        };
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            "Starting node-exporter"
        );
        // Start-up is over: its code and constants need not stay resident.
        match node_exporter::startup_pages::release() {
            Ok(bytes) => tracing::debug!(bytes, "Unmapped start-up pages of the binary"),
            Err(e) => tracing::debug!(error = %e, "Could not unmap start-up pages"),
        }
        let handler = move |req| exporter.clone().handle(req);
        tokio::select! {
            _ = exporter_toolkit::server::serve(listeners, web, handler) => {}
            _ = shutdown_signal() => tracing::info!("Shutting down"),
        }
        Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// glibc gives each thread that allocates its own arena (up to 8 per core),
/// each keeping freed memory resident. The exporter allocates little, from a
/// few threads: one arena keeps its resident memory low at no measurable cost.
/// A collector error is an expected condition (a file this kernel lacks),
/// reported every scrape: with `RUST_BACKTRACE` set, anyhow would walk the
/// stack for each one. Panics keep their backtraces; `RUST_LIB_BACKTRACE`
/// set by the user still wins.
fn no_error_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // Called first thing in main, before any other thread exists.
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
}

fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator tunable; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
