//! Runs the enabled collectors of one scrape, each with a time budget, and
//! reports each one's outcome in `node_scrape_collector_*`.
//!
//! Collectors are short file reads, so they run on one "lane" (a blocking
//! thread) that drains a queue, not one thread each: that keeps a scrape to
//! a couple of thread wake-ups and the process to a few threads. When the
//! queue stops moving because a collector is stuck (a dead NFS server, a
//! sysfs attribute that blocks), another lane is added every
//! [`STALL_CHECK`], so one stuck collector delays the others by that much at
//! most, and never past the budget.
//!
//! A collector that overruns its budget is reported failed and left to finish
//! on its lane; until it does, later scrapes report it failed at once instead
//! of starting another copy, so a hung read costs one thread, not one per
//! scrape. Scrapes that overlap within the budget (two Prometheus replicas,
//! a curl during a scrape) each run every collector, as node_exporter does.
//!
//! A collector whose whole source is missing on this host (it returns
//! [`Absent`]: no bonding driver, no NVMe, no ZFS) is not run again while the
//! kernel's device list stays as it was ([`DeviceList`]): later scrapes
//! report it failed at once, with none of its file lookups or error values.
//! One that found none of its devices ([`NoDevices`]: no thermal zone, no
//! watchdog, no XFS mounted) is remembered the same way, until devices or
//! mounts change, and reported successful with nothing, as it would have
//! been.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use exporter_toolkit::exposition::MetricSet;
use tokio::sync::Notify;

use crate::collector::{Absent, Collector, NoDevices, Paths};
use crate::helpers::is_no_data;

/// Lanes started for every scrape: collectors are file reads of tens of
/// microseconds, so one lane is fastest (one thread wake-up per scrape);
/// more join only when the queue stops moving.
const LANES: usize = 1;
/// How long the queue may sit still before another lane is added.
const STALL_CHECK: Duration = Duration::from_millis(50);
/// How long a remembered absence holds at most, device list unchanged: a
/// safety net for a source that appears without a uevent.
pub const ABSENCE_RECHECK: Duration = Duration::from_secs(300);

pub struct Entry {
    pub name: &'static str,
    collector: Arc<dyn Collector>,
    in_flight: Arc<InFlight>,
    /// How many families the collector added last time: its next set is
    /// made that large at once, not grown (and its index rehashed) as it fills.
    families: AtomicUsize,
    /// The device-list generation at which the collector last returned
    /// [`Absent`] or [`NoDevices`], when, and whether that was a success
    /// ([`NoDevices`]).
    absent: Mutex<Option<(Generation, Instant, bool)>>,
}

/// When each of a collector's unfinished runs started (usually none, two
/// when the scrapes of two Prometheus replicas overlap).
#[derive(Default)]
struct InFlight(Mutex<Vec<Instant>>);

impl InFlight {
    /// Registers a run starting now, unless one has been running for
    /// `budget` or longer: that one is stuck, and another copy would be too.
    fn start(&self, budget: Duration) -> Option<Instant> {
        let mut runs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if runs.iter().any(|&s| now.duration_since(s) >= budget) {
            return None;
        }
        runs.push(now);
        Some(now)
    }

    fn finish(&self, started: Instant) {
        let mut runs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = runs.iter().position(|&s| s == started) {
            runs.swap_remove(i);
        }
    }
}

/// One collector of a round: what to run, and its registered start.
type Job = (Arc<dyn Collector>, Arc<InFlight>, Instant);

pub struct Scraper {
    entries: Vec<Entry>,
    devices: Option<DeviceList>,
    /// Families in the last scrape's whole set, its next size.
    families: AtomicUsize,
}

/// Tells when the kernel's devices or the host's mounts may have changed:
/// /sys/kernel/uevent_seqnum, the number of the kernel's last uevent, which
/// moves whenever a device, a network interface or a kernel module is added
/// or removed (global, also inside a container), and the mount namespace of
/// PID 1, whose mountinfo raises POLLPRI after a mount or unmount (btrfs
/// and xfs list their mounted filesystems in sysfs). One `pread` and one
/// `poll` of files kept open per scrape.
pub struct DeviceList {
    seqnum: PathBuf,
    mountinfo: PathBuf,
    mounts: Mutex<MountEvents>,
}

#[derive(Default)]
struct MountEvents {
    /// PID 1's mountinfo; `None` until opened, or when it is not on a real
    /// procfs (a fixture tree).
    file: Option<std::fs::File>,
    opened: bool,
    changes: u64,
}

/// Where the device list stood: the uevent number and how many mount
/// changes have been seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Generation {
    uevents: u64,
    mounts: u64,
}

impl DeviceList {
    pub fn new(paths: &Paths) -> DeviceList {
        DeviceList {
            seqnum: paths.sys("kernel/uevent_seqnum"),
            mountinfo: paths.proc("1/mountinfo"),
            mounts: Mutex::new(MountEvents::default()),
        }
    }

    /// The current generation; `None` when the uevent number cannot be read
    /// (a fixture tree without it), and then no absence is remembered.
    pub fn generation(&self) -> Option<Generation> {
        let bytes = crate::helpers::read_kept_bytes(&self.seqnum).ok()?;
        let uevents = std::str::from_utf8(&bytes).ok()?.trim().parse().ok()?;
        Some(Generation {
            uevents,
            mounts: self.mount_changes(),
        })
    }

    /// Mount changes seen so far; one more whenever poll reports one (or
    /// the file cannot be polled any more and is opened again).
    fn mount_changes(&self) -> u64 {
        let mut m = self.mounts.lock().unwrap_or_else(|e| e.into_inner());
        if !m.opened {
            m.opened = true;
            m.file = std::fs::File::open(&self.mountinfo)
                .ok()
                .filter(crate::helpers::is_procfs_file);
        }
        let changed = match &m.file {
            Some(f) => crate::helpers::mount_table_changed(f).unwrap_or_else(|_| {
                m.opened = false;
                true
            }),
            None => false,
        };
        if changed {
            m.changes += 1;
        }
        m.changes
    }
}

type Outcome = (MetricSet, anyhow::Result<()>, Duration);

/// One scrape's shared state between the scrape task and its lanes.
struct Round {
    jobs: Vec<Job>,
    /// Each job's set size, as [`Entry::families`] says.
    sizes: Vec<usize>,
    queue: Mutex<VecDeque<usize>>,
    results: Mutex<Vec<Option<Outcome>>>,
    remaining: AtomicUsize,
    all_done: Notify,
}

impl Round {
    /// A lane: run queued collectors until the queue is empty.
    fn lane(&self) {
        loop {
            let next = self
                .queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            let Some(i) = next else { return };
            let Some((collector, in_flight, registered)) = self.jobs.get(i) else {
                return;
            };
            let start = Instant::now();
            let mut set = MetricSet::with_capacity(self.sizes.get(i).copied().unwrap_or(0));
            // A panic is a bug, but it must not take the scrape with it.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                collector.update(&mut set)
            }))
            .unwrap_or_else(|_| Err(anyhow::anyhow!("collector panicked")));
            in_flight.finish(*registered);
            if let Some(slot) = self
                .results
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(i)
            {
                *slot = Some((set, result, start.elapsed()));
            }
            if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                self.all_done.notify_one();
            }
        }
    }
}

impl Scraper {
    pub fn new(collectors: Vec<(&'static str, Box<dyn Collector>)>) -> Scraper {
        Scraper {
            entries: collectors
                .into_iter()
                .map(|(name, c)| Entry {
                    name,
                    collector: Arc::from(c),
                    in_flight: Arc::new(InFlight::default()),
                    families: AtomicUsize::new(0),
                    absent: Mutex::new(None),
                })
                .collect(),
            devices: None,
            families: AtomicUsize::new(0),
        }
    }

    /// Remembers collectors' [`Absent`] results until `devices` changes.
    pub fn with_device_list(mut self, devices: DeviceList) -> Scraper {
        self.devices = Some(devices);
        self
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.iter().map(|e| e.name)
    }

    /// Runs the collectors `include` accepts and returns their metrics plus
    /// `node_scrape_collector_duration_seconds` / `_success`.
    pub async fn scrape(&self, include: impl Fn(&str) -> bool, budget: Duration) -> MetricSet {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + budget;
        let mut out = MetricSet::with_capacity(self.families.load(Ordering::Relaxed));
        let mut ran = Vec::new();
        let mut jobs = Vec::new();
        // Read before any collector runs: a device added while one looks is
        // then seen by the next scrape.
        let generation = self.devices.as_ref().and_then(DeviceList::generation);
        for e in self.entries.iter().filter(|e| include(e.name)) {
            if let Some(success) = still_absent(e, generation) {
                report(&mut out, e.name, 0.0, success);
                continue;
            }
            let Some(registered) = e.in_flight.start(budget) else {
                tracing::error!(
                    collector = e.name,
                    "collector failed: still running from an earlier scrape (over its time budget)"
                );
                report(&mut out, e.name, 0.0, false);
                continue;
            };
            ran.push(e);
            jobs.push((e.collector.clone(), e.in_flight.clone(), registered));
        }
        if jobs.is_empty() {
            return out;
        }
        let n = jobs.len();
        let sizes = ran
            .iter()
            .map(|e| e.families.load(Ordering::Relaxed))
            .collect();
        let round = Arc::new(Round {
            jobs,
            sizes,
            queue: Mutex::new((0..n).collect()),
            results: Mutex::new((0..n).map(|_| None).collect()),
            remaining: AtomicUsize::new(n),
            all_done: Notify::new(),
        });
        for _ in 0..LANES.min(n) {
            let r = round.clone();
            tokio::task::spawn_blocking(move || r.lane());
        }
        loop {
            let wake = deadline.min(tokio::time::Instant::now() + STALL_CHECK);
            if tokio::time::timeout_at(wake, round.all_done.notified())
                .await
                .is_ok()
            {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            let queued = !round
                .queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty();
            if queued {
                let r = round.clone();
                tokio::task::spawn_blocking(move || r.lane());
            }
        }
        // Collectors that never started are taken back, so that no lane runs
        // them after the scrape has answered.
        let never_started: Vec<usize> = round
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for &i in &never_started {
            if let Some((_, in_flight, registered)) = round.jobs.get(i) {
                in_flight.finish(*registered);
            }
        }
        let results: Vec<Option<Outcome>> = {
            let mut r = round.results.lock().unwrap_or_else(|e| e.into_inner());
            r.iter_mut().map(Option::take).collect()
        };
        for (entry, result) in ran.into_iter().zip(results) {
            let name = entry.name;
            if let Some((set, result, _)) = &result {
                remember_absence(entry, result, generation);
                entry
                    .families
                    .store(set.families().len(), Ordering::Relaxed);
            }
            let result = result.map(|(set, r, elapsed)| match r {
                Err(e) if e.downcast_ref::<NoDevices>().is_some() => (set, Ok(()), elapsed),
                r => (set, r, elapsed),
            });
            match result {
                Some((set, Ok(()), elapsed)) => match out.merge(set) {
                    Ok(()) => report(&mut out, name, elapsed.as_secs_f64(), true),
                    Err(e) => {
                        tracing::error!(collector = name, error = %e, "collector failed");
                        report(&mut out, name, elapsed.as_secs_f64(), false);
                    }
                },
                Some((set, Err(err), elapsed)) => {
                    let secs = elapsed.as_secs_f64();
                    // Like node_exporter, keep what the collector emitted
                    // before it failed (e.g. the PSI files it could read).
                    if let Err(e) = out.merge(set) {
                        tracing::error!(collector = name, error = %e, "collector output dropped");
                    }
                    if is_no_data(&err) {
                        tracing::debug!(collector = name, duration_seconds = secs, error = %err, "collector returned no data");
                    } else {
                        tracing::error!(
                            collector = name,
                            duration_seconds = secs,
                            error = format!("{err:#}"),
                            "collector failed"
                        );
                    }
                    report(&mut out, name, secs, false);
                }
                None => {
                    let secs = started.elapsed().as_secs_f64();
                    tracing::error!(
                        collector = name,
                        duration_seconds = secs,
                        "collector failed: over its time budget of {budget:?}"
                    );
                    report(&mut out, name, secs, false);
                }
            }
        }
        self.families.store(out.families().len(), Ordering::Relaxed);
        out
    }
}

/// Whether `e` found nothing to read at this same device-list generation,
/// recently enough to skip it: `Some(success)`, as its run reported it.
fn still_absent(e: &Entry, generation: Option<Generation>) -> Option<bool> {
    let absent = e.absent.lock().unwrap_or_else(|e| e.into_inner());
    match (*absent, generation) {
        (Some((then, at, success)), Some(now)) if then == now && at.elapsed() < ABSENCE_RECHECK => {
            Some(success)
        }
        _ => None,
    }
}

fn remember_absence(e: &Entry, result: &anyhow::Result<()>, generation: Option<Generation>) {
    let absent = match (result, generation) {
        (Err(err), Some(g)) if err.downcast_ref::<Absent>().is_some() => {
            Some((g, Instant::now(), false))
        }
        (Err(err), Some(g)) if err.downcast_ref::<NoDevices>().is_some() => {
            Some((g, Instant::now(), true))
        }
        _ => None,
    };
    *e.absent.lock().unwrap_or_else(|e| e.into_inner()) = absent;
}

fn report(out: &mut MetricSet, name: &str, seconds: f64, success: bool) {
    out.gauge(
        "node_scrape_collector_duration_seconds",
        "node_exporter: Duration of a collector scrape.",
        &[("collector", name)],
        seconds,
    );
    out.gauge(
        "node_scrape_collector_success",
        "node_exporter: Whether a collector succeeded.",
        &[("collector", name)],
        if success { 1.0 } else { 0.0 },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sleepy(Duration);
    impl Collector for Sleepy {
        fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
            std::thread::sleep(self.0);
            out.gauge("sleepy_done", "h", &[], 1.0);
            Ok(())
        }
    }
    struct Broken;
    impl Collector for Broken {
        fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
            out.gauge("broken_partial", "h", &[], 1.0);
            anyhow::bail!("reading /proc/broken: garbage")
        }
    }
    struct Panicky;
    impl Collector for Panicky {
        fn update(&self, _: &mut MetricSet) -> anyhow::Result<()> {
            panic!("bug")
        }
    }
    struct Quick;
    impl Collector for Quick {
        fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
            out.gauge("quick", "h", &[], 1.0);
            Ok(())
        }
    }

    fn success(set: &MetricSet, name: &str) -> Option<f64> {
        set.families()
            .iter()
            .find(|f| f.name == "node_scrape_collector_success")?
            .series
            .iter()
            .find(|s| s.labels.iter().any(|(_, v)| v == name))
            .and_then(|s| match s.value {
                exporter_toolkit::exposition::Value::Single(v) => Some(v),
                _ => None,
            })
    }

    fn families(set: &MetricSet) -> Vec<String> {
        set.families().iter().map(|f| f.name.to_string()).collect()
    }

    /// The md collector over a temporary /proc and /sys, with the device
    /// list read from the temporary /sys/kernel/uevent_seqnum.
    fn md_scraper(root: &std::path::Path) -> Scraper {
        let flags = crate::cli::parse([
            "node-exporter".to_string(),
            format!("--path.procfs={}", root.join("proc").display()),
            format!("--path.sysfs={}", root.join("sys").display()),
        ])
        .unwrap();
        let spec = crate::collectors::find("mdadm").unwrap();
        let md = (spec.build)(&flags).unwrap();
        Scraper::new(vec![("mdadm", md)]).with_device_list(DeviceList::new(&flags.paths))
    }

    const MDSTAT: &str = "Personalities : [raid1]\nmd0 : active raid1 sdb1[1] sda1[0]\n      1046528 blocks super 1.2 [2/2] [UU]\n\nunused devices: <none>\n";

    /// No /proc/mdstat: the collector fails, and its absence is kept while
    /// the kernel's uevent number stays; an md array created later (the
    /// module loaded: the number moves) is reported on the next scrape.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_absent_source_is_looked_for_again_once_devices_change() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        crate::testutil::write(root, "sys/kernel/uevent_seqnum", "1000\n");
        std::fs::create_dir_all(root.join("proc")).unwrap();
        let s = md_scraper(root);
        let budget = Duration::from_secs(5);

        let set = s.scrape(|_| true, budget).await;
        assert_eq!(success(&set, "mdadm"), Some(0.0));

        // The file appears without a uevent (only a test can do that): the
        // remembered absence still holds, so it is not looked at.
        crate::testutil::write(root, "proc/mdstat", MDSTAT);
        let set = s.scrape(|_| true, budget).await;
        assert_eq!(success(&set, "mdadm"), Some(0.0));
        assert!(!families(&set).contains(&"node_md_disks".to_string()));

        crate::testutil::write(root, "sys/kernel/uevent_seqnum", "1003\n");
        let set = s.scrape(|_| true, budget).await;
        assert_eq!(success(&set, "mdadm"), Some(1.0));
        assert!(families(&set).contains(&"node_md_disks".to_string()));

        // Gone again (and devices changed): failed again, then remembered.
        std::fs::remove_file(root.join("proc/mdstat")).unwrap();
        crate::testutil::write(root, "sys/kernel/uevent_seqnum", "1004\n");
        let set = s.scrape(|_| true, budget).await;
        assert_eq!(success(&set, "mdadm"), Some(0.0));
        crate::testutil::write(root, "proc/mdstat", MDSTAT);
        let set = s.scrape(|_| true, budget).await;
        assert_eq!(success(&set, "mdadm"), Some(0.0));
    }

    /// No watchdog device: a success with nothing, remembered while the
    /// kernel's uevent number stays (the collector is not run: a device
    /// that appears without a uevent, as only a test can make one, is not
    /// seen), looked at again once it moves.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_devices_is_a_success_remembered_until_devices_change() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        crate::testutil::write(root, "sys/kernel/uevent_seqnum", "10\n");
        std::fs::create_dir_all(root.join("sys/class/watchdog")).unwrap();
        let flags = crate::cli::parse([
            "node-exporter".to_string(),
            format!("--path.sysfs={}", root.join("sys").display()),
        ])
        .unwrap();
        let spec = crate::collectors::find("watchdog").unwrap();
        let s = Scraper::new(vec![("watchdog", (spec.build)(&flags).unwrap())])
            .with_device_list(DeviceList::new(&flags.paths));
        let budget = Duration::from_secs(5);
        let has_info = |set: &MetricSet| families(set).contains(&"node_watchdog_info".to_string());

        let set = s.scrape(|_| true, budget).await;
        assert_eq!(success(&set, "watchdog"), Some(1.0));
        assert!(!has_info(&set));

        crate::testutil::write(root, "sys/class/watchdog/watchdog0/timeout", "60\n");
        let set = s.scrape(|_| true, budget).await;
        assert_eq!(success(&set, "watchdog"), Some(1.0));
        assert!(!has_info(&set), "run again without a device change");

        crate::testutil::write(root, "sys/kernel/uevent_seqnum", "11\n");
        let set = s.scrape(|_| true, budget).await;
        assert_eq!(success(&set, "watchdog"), Some(1.0));
        assert!(has_info(&set));
    }

    /// No XFS mounted: a success remembered, also when a filesystem's
    /// sysfs entry appears without a uevent, as it does at a mount; PID 1's
    /// mount table changing (a mount in its namespace) makes the next
    /// scrape look again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_filesystems_are_looked_for_again_after_a_mount() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        crate::testutil::write(root, "sys/kernel/uevent_seqnum", "5\n");
        std::fs::create_dir_all(root.join("sys/fs/xfs")).unwrap();
        let mnt = root.join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let mut ns = crate::testutil::MountNamespace::start(
            r#"echo up; read x; mount -t tmpfs tmpfs "$1" && echo mounted; read x"#,
            &mnt,
            &root.join("proc"),
        );
        let flags = crate::cli::parse([
            "node-exporter".to_string(),
            format!("--path.procfs={}", root.join("proc").display()),
            format!("--path.sysfs={}", root.join("sys").display()),
        ])
        .unwrap();
        let spec = crate::collectors::find("xfs").unwrap();
        let s = Scraper::new(vec![("xfs", (spec.build)(&flags).unwrap())])
            .with_device_list(DeviceList::new(&flags.paths));
        let budget = Duration::from_secs(5);
        let has_xfs = |set: &MetricSet| families(set).iter().any(|f| f.starts_with("node_xfs_"));

        let set = s.scrape(|_| true, budget).await;
        assert_eq!(success(&set, "xfs"), Some(1.0));
        assert!(!has_xfs(&set));

        crate::testutil::write(root, "sys/fs/xfs/sdz/stats/stats", "extent_alloc 1 2 3 4\n");
        let set = s.scrape(|_| true, budget).await;
        assert!(!has_xfs(&set), "run again without a mount or uevent");

        ns.step("mounted");
        let set = s.scrape(|_| true, budget).await;
        assert_eq!(success(&set, "xfs"), Some(1.0));
        assert!(has_xfs(&set));
    }

    /// Without a readable device list (a fixture tree), nothing is
    /// remembered: the file is looked for on every scrape.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_a_device_list_an_absent_source_is_looked_for_every_scrape() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("proc")).unwrap();
        let s = md_scraper(root);
        let budget = Duration::from_secs(5);
        let set = s.scrape(|_| true, budget).await;
        assert_eq!(success(&set, "mdadm"), Some(0.0));
        crate::testutil::write(root, "proc/mdstat", MDSTAT);
        let set = s.scrape(|_| true, budget).await;
        assert_eq!(success(&set, "mdadm"), Some(1.0));
    }

    /// Only [`Absent`] is remembered: a collector failing otherwise (here
    /// with plain "no data") runs again on the next scrape.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_failures_are_not_remembered() {
        struct Counting(Arc<AtomicUsize>);
        impl Collector for Counting {
            fn update(&self, _: &mut MetricSet) -> anyhow::Result<()> {
                self.0.fetch_add(1, Ordering::SeqCst);
                Err(crate::collector::NoData("nothing now".into()).into())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        crate::testutil::write(dir.path(), "kernel/uevent_seqnum", "7\n");
        let paths = Paths {
            sysfs: dir.path().to_path_buf(),
            ..Paths::default()
        };
        let runs = Arc::new(AtomicUsize::new(0));
        let s = Scraper::new(vec![("counting", Box::new(Counting(runs.clone())))])
            .with_device_list(DeviceList::new(&paths));
        for _ in 0..3 {
            let set = s.scrape(|_| true, Duration::from_secs(5)).await;
            assert_eq!(success(&set, "counting"), Some(0.0));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    /// Two scrapes at the same time (two Prometheus replicas): each runs
    /// every collector, none is reported as still running from the other.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn overlapping_scrapes_each_run_every_collector() {
        let s = Scraper::new(vec![
            ("slowish", Box::new(Sleepy(Duration::from_millis(300)))),
            ("quick", Box::new(Quick)),
        ]);
        // Ample: a loaded machine must not turn the overlap into a timeout.
        let budget = Duration::from_secs(30);
        let (a, b) = tokio::join!(s.scrape(|_| true, budget), s.scrape(|_| true, budget));
        for set in [&a, &b] {
            assert_eq!(success(set, "slowish"), Some(1.0));
            assert_eq!(success(set, "quick"), Some(1.0));
            assert!(set.families().iter().any(|f| f.name == "sleepy_done"));
        }
    }

    /// Both lanes stuck on hung collectors: the collector queued behind
    /// them still runs, on a lane added for the stall, well within budget.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stuck_collectors_do_not_starve_the_queue() {
        let s = Scraper::new(vec![
            ("hung1", Box::new(Sleepy(Duration::from_millis(3000)))),
            ("hung2", Box::new(Sleepy(Duration::from_millis(3000)))),
            ("quick", Box::new(Quick)),
        ]);
        let set = s.scrape(|_| true, Duration::from_millis(1500)).await;
        assert_eq!(success(&set, "quick"), Some(1.0));
        assert_eq!(success(&set, "hung1"), Some(0.0));
        assert_eq!(success(&set, "hung2"), Some(0.0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_broken_and_panicking_collectors_do_not_fail_the_scrape() {
        let s = Scraper::new(vec![
            ("slow", Box::new(Sleepy(Duration::from_millis(4000)))),
            ("broken", Box::new(Broken)),
            ("panicky", Box::new(Panicky)),
            ("quick", Box::new(Quick)),
        ]);
        let started = Instant::now();
        let set = s.scrape(|_| true, Duration::from_millis(1500)).await;
        assert!(
            started.elapsed() < Duration::from_millis(3500),
            "scrape waited for the slow collector"
        );
        assert_eq!(success(&set, "slow"), Some(0.0));
        assert_eq!(success(&set, "broken"), Some(0.0));
        assert_eq!(success(&set, "panicky"), Some(0.0));
        assert_eq!(success(&set, "quick"), Some(1.0));
        assert!(set.families().iter().any(|f| f.name == "quick"));
        // What a failing collector emitted before its error is kept.
        assert!(set.families().iter().any(|f| f.name == "broken_partial"));
        assert!(!set.families().iter().any(|f| f.name == "sleepy_done"));

        // The slow one is still running: the next scrape must not start a
        // second copy, and must answer at once.
        let started = Instant::now();
        let set = s.scrape(|n| n == "slow", Duration::from_millis(1500)).await;
        assert!(started.elapsed() < Duration::from_millis(500));
        assert_eq!(success(&set, "slow"), Some(0.0));

        // Once it has finished, it runs again normally.
        tokio::time::sleep(Duration::from_millis(4000)).await;
        let set = s.scrape(|n| n == "slow", Duration::from_secs(5)).await;
        assert_eq!(success(&set, "slow"), Some(1.0));
    }
}
