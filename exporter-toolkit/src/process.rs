//! The standard `process_*` self-metrics that every Prometheus client library
//! exposes, read through the `procfs` crate from the real /proc (not from
//! `--path.procfs`, which may point at another host's tree).

use procfs::process::Process;

use crate::exposition::MetricSet;

pub fn collect(set: &mut MetricSet) -> Result<(), String> {
    // Our /proc/<pid> directory, opened once: finding it is three system
    // calls (open, readlink, close) that every scrape would repeat.
    static ME: std::sync::OnceLock<Process> = std::sync::OnceLock::new();
    let me = match ME.get() {
        Some(me) => me,
        None => {
            let me = Process::myself().map_err(|e| format!("reading /proc/self: {e}"))?;
            ME.get_or_init(|| me)
        }
    };
    let stat = me
        .stat()
        .map_err(|e| format!("reading /proc/self/stat: {e}"))?;
    let tps = procfs::ticks_per_second() as f64;
    set.counter(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        &[],
        (stat.utime + stat.stime) as f64 / tps,
    );
    if let Ok(n) = me.fd_count() {
        set.gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            &[],
            n as f64,
        );
    }
    // The soft limits /proc/self/limits shows, without reading and parsing
    // that file on every scrape.
    let mut fds = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let mut address_space = fds;
    // SAFETY: getrlimit only writes the structs we pass.
    let ok = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut fds) == 0
            && libc::getrlimit(libc::RLIMIT_AS, &mut address_space) == 0
    };
    if ok {
        set.gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            &[],
            soft_limit(&fds),
        );
        set.gauge(
            "process_virtual_memory_max_bytes",
            "Maximum amount of virtual memory available in bytes.",
            &[],
            soft_limit(&address_space),
        );
    }
    set.gauge(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
        &[],
        stat.vsize as f64,
    );
    set.gauge(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        &[],
        (stat.rss * procfs::page_size()) as f64,
    );
    if let Some(boot) = boot_time() {
        set.gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            &[],
            boot as f64 + stat.starttime as f64 / tps,
        );
    }
    Ok(())
}

/// A soft limit as client_golang reports it: RLIM_INFINITY is the
/// largest u64.
fn soft_limit(l: &libc::rlimit) -> f64 {
    if l.rlim_cur == libc::RLIM_INFINITY {
        u64::MAX as f64
    } else {
        l.rlim_cur as f64
    }
}

/// Boot time never changes: read /proc/stat for it once, not every scrape.
fn boot_time() -> Option<u64> {
    static BOOT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *BOOT.get_or_init(|| procfs::boot_time_secs().ok())
}
