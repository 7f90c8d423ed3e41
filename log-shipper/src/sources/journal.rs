//! The systemd journal source: promtail's `journal` scrape block (`json`,
//! `max_age`, `path`, `matches`, `labels`, and `relabel_configs` over the
//! `__journal_<field>` labels).
//!
//! We read the journal through `journalctl --output=json --follow` rather
//! than linking libsystemd (sd-journal over FFI, as promtail does with cgo):
//! - journalctl is the journal's own reader, installed wherever a journal
//!   exists, and always the version matching the files the host's journald
//!   writes (format versions, compression); a binary linked to libsystemd
//!   does not start at all on a host or container without it, even with no
//!   journal configured, and needs libsystemd-dev to build.
//! - A crash, hang or corrupt journal file in journalctl stays in its own
//!   process: we log its stderr and restart it from the last cursor read.
//!   The same fault in FFI code (sd_journal_* is blocking C that mmaps the
//!   files) takes the whole shipper down and all other sources with it.
//! - Backpressure comes for free: while Loki is slow we stop reading the
//!   pipe and journalctl blocks in write().
//!
//! The price is one JSON parse per entry (a few microseconds), small next
//! to the journal's own rates.
//!
//! No loss, no repeats: every entry's cursor is kept in order (a sequence
//! number tracked by [`Progress`] -> the entry's cursor) and the cursor of
//! the last entry of the completed prefix is what positions.yaml records,
//! under promtail's key `journal-<job_name>`. A restart starts *at* that
//! cursor (`--cursor`, inclusive) and skips the entry carrying it: unlike
//! `--after-cursor`, nothing is skipped when that entry was vacuumed away.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::ack::{Ack, Progress};
use crate::config::{JournalConfig, ScrapeConfig};
use crate::entry::{Entry, LabelSet};
use crate::positions::Positions;
use crate::relabel::{self, RelabelConfig};

/// How often the delivered cursor is copied into the positions (which are
/// saved soon after they change).
const CURSOR_UPDATE: Duration = Duration::from_millis(100);
/// Waits between journalctl restarts after it failed.
const RESTART_MIN: Duration = Duration::from_millis(500);
const RESTART_MAX: Duration = Duration::from_secs(30);

static LINES: AtomicU64 = AtomicU64::new(0);
static NO_MESSAGE: AtomicU64 = AtomicU64::new(0);
static EMPTY_LABELS: AtomicU64 = AtomicU64::new(0);
static BAD_JSON: AtomicU64 = AtomicU64::new(0);

/// promtail's journal self-metrics.
pub fn collect(set: &mut exporter_toolkit::exposition::MetricSet) {
    set.counter(
        "promtail_journal_target_lines_total",
        "Total number of successful journal lines read",
        &[],
        LINES.load(Ordering::Relaxed) as f64,
    );
    for (error, n) in [
        ("no_message", &NO_MESSAGE),
        ("empty_labels", &EMPTY_LABELS),
        ("invalid_json", &BAD_JSON),
    ] {
        set.counter(
            "promtail_journal_target_parsing_errors_total",
            "Total number of parsing errors while reading journal messages",
            &[("error", error)],
            n.load(Ordering::Relaxed) as f64,
        );
    }
}

/// promtail's positions key for a job's journal cursor.
pub fn position_key(job: &str) -> String {
    format!("journal-{job}")
}

/// Checks a scrape config's `journal` block (for `--check-config` and
/// start-up): every match is `FIELD=value` (or `+`, journalctl's OR).
pub fn check(sc: &ScrapeConfig) -> Result<(), String> {
    let Some(j) = &sc.journal else {
        return Ok(());
    };
    parse_matches(&j.matches).map(|_| ()).map_err(|e| {
        format!(
            "scrape_configs (job {:?}).journal.matches: {e}",
            sc.job_name
        )
    })
}

/// `matches` as promtail takes it: space-separated `FIELD=value` terms.
/// Terms on the same field are alternatives, different fields must all
/// match (sd-journal's rules); `+` (journalctl's OR of groups) is accepted.
pub fn parse_matches(matches: &str) -> Result<Vec<String>, String> {
    matches
        .split_whitespace()
        .map(|m| {
            if m == "+" {
                return Ok(m.to_string());
            }
            let Some((field, _)) = m.split_once('=') else {
                return Err(format!("{m:?} is not FIELD=value"));
            };
            if !valid_field(field) {
                return Err(format!(
                    "{m:?}: {field:?} is not a journal field name (A-Z, 0-9 and _, not starting with a digit, at most 64 characters)"
                ));
            }
            Ok(m.to_string())
        })
        .collect()
}

fn valid_field(f: &str) -> bool {
    !f.is_empty()
        && f.len() <= 64
        && !f.starts_with(|c: char| c.is_ascii_digit())
        && f.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Where journalctl starts reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// At this cursor (the entry carrying it is skipped: it was delivered).
    Cursor(String),
    /// At the first entry at or after this time.
    Since(SystemTime),
}

/// promtail's rule: the saved cursor, unless it is older than `max_age`
/// (or there is none), then `now - max_age`.
pub fn start_position(saved: Option<&str>, max_age: Duration, now: SystemTime) -> Start {
    let since = now.checked_sub(max_age).unwrap_or(UNIX_EPOCH);
    match saved {
        Some(c) if !c.is_empty() => match cursor_time(c) {
            Some(t) if t < since => Start::Since(since),
            _ => Start::Cursor(c.to_string()),
        },
        _ => Start::Since(since),
    }
}

/// The entry time a cursor carries (`t=<realtime µs, hex>`).
fn cursor_time(cursor: &str) -> Option<SystemTime> {
    let t = cursor.split(';').find_map(|kv| kv.strip_prefix("t="))?;
    let us = u64::from_str_radix(t, 16).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_micros(us))
}

/// The journalctl command line for `cfg` starting at `start`.
pub fn journalctl_args(cfg: &JournalConfig, start: &Start) -> Result<Vec<String>, String> {
    let mut args = vec![
        "--output=json".to_string(),
        // Full values: without it fields over 4 KiB come out as null.
        "--all".into(),
        "--follow".into(),
        // --follow alone would start at the last 10 entries.
        "--no-tail".into(),
        "--no-pager".into(),
        "--quiet".into(),
    ];
    if !cfg.path.is_empty() {
        // promtail takes a directory; a single journal file works too.
        if Path::new(&cfg.path).is_file() {
            args.push(format!("--file={}", cfg.path));
        } else {
            args.push(format!("--directory={}", cfg.path));
        }
    }
    match start {
        Start::Cursor(c) => args.push(format!("--cursor={c}")),
        Start::Since(t) => {
            let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
            args.push(format!("--since=@{secs}"));
        }
    }
    let matches = parse_matches(&cfg.matches)?;
    if !matches.is_empty() {
        args.push("--".into());
        args.extend(matches);
    }
    Ok(args)
}

/// One journal entry as journalctl printed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub cursor: String,
    pub realtime: SystemTime,
    /// The entry's fields (not the `__CURSOR`-style address fields).
    pub fields: BTreeMap<String, String>,
}

/// Parses one line of `journalctl --output=json`.
pub fn parse_record(line: &[u8]) -> Result<Record, String> {
    let map: serde_json::Map<String, Value> =
        serde_json::from_slice(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let cursor = match map.get("__CURSOR") {
        Some(Value::String(c)) if !c.is_empty() => c.clone(),
        _ => return Err("entry without __CURSOR".into()),
    };
    let realtime = map
        .get("__REALTIME_TIMESTAMP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<u64>().ok())
        .and_then(|us| UNIX_EPOCH.checked_add(Duration::from_micros(us)))
        .or_else(|| cursor_time(&cursor))
        .unwrap_or_else(SystemTime::now);
    let fields = map
        .iter()
        .filter(|(k, _)| !k.starts_with("__"))
        .filter_map(|(k, v)| field_value(v).map(|v| (k.clone(), v)))
        .collect();
    Ok(Record {
        cursor,
        realtime,
        fields,
    })
}

/// journalctl's JSON for a value: a string; an array of byte values when
/// it is not valid UTF-8 (kept, lossily); an array of those when the field
/// repeats (the last one wins, as reading sd-journal into a map gives).
fn field_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_u64) => {
            let bytes: Vec<u8> = items
                .iter()
                .map(|b| b.as_u64().unwrap_or(0) as u8)
                .collect();
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
        Value::Array(items) => items.iter().rev().find_map(field_value),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// syslog priority names as promtail spells them.
fn priority_keyword(p: &str) -> &str {
    match p {
        "0" => "emerg",
        "1" => "alert",
        "2" => "crit",
        "3" => "error",
        "4" => "warning",
        "5" => "notice",
        "6" => "info",
        "7" => "debug",
        other => other,
    }
}

/// Turns journal records into entries the way promtail does.
#[derive(Debug, Clone)]
pub struct Formatter {
    pub json: bool,
    pub labels: BTreeMap<String, String>,
    pub relabel: Vec<RelabelConfig>,
}

/// Why a record produced no entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    NoMessage,
    /// Dropped by relabeling, or left without any label.
    EmptyLabels,
}

impl Formatter {
    pub fn new(cfg: &JournalConfig, relabel: &[RelabelConfig]) -> Formatter {
        Formatter {
            json: cfg.json,
            labels: cfg.labels.clone(),
            relabel: relabel.to_vec(),
        }
    }

    /// The entry for `rec` (without an ack), or why there is none.
    pub fn entry(&self, rec: &Record) -> Result<Entry, Skip> {
        let line = if self.json {
            serde_json::to_string(&rec.fields).map_err(|_| Skip::NoMessage)?
        } else {
            rec.fields.get("MESSAGE").cloned().ok_or(Skip::NoMessage)?
        };
        let mut labels = LabelSet::new();
        for (k, v) in &rec.fields {
            let name = k.to_ascii_lowercase();
            if name == "priority" {
                labels.insert(
                    "__journal_priority_keyword".into(),
                    priority_keyword(v).to_string(),
                );
            }
            labels.insert(format!("__journal_{name}"), v.clone());
        }
        for (k, v) in &self.labels {
            labels.insert(k.clone(), v.clone());
        }
        let mut labels = relabel::process(labels, &self.relabel).ok_or(Skip::EmptyLabels)?;
        labels.retain(|k, _| !k.starts_with("__"));
        if labels.is_empty() {
            return Err(Skip::EmptyLabels);
        }
        let mut e = Entry::new(labels, line);
        e.timestamp = rec.realtime;
        Ok(e)
    }
}

/// Cursors of entries in flight, in read order, so the cursor of the last
/// delivered entry can be found once [`Progress`] says which prefix is done.
#[derive(Debug)]
struct Cursors {
    progress: Arc<Progress>,
    inner: Mutex<CursorsInner>,
}

#[derive(Debug, Default)]
struct CursorsInner {
    read: u64,
    /// (entries read including this one, its cursor), oldest first.
    pending: VecDeque<(u64, String)>,
    delivered: Option<String>,
}

impl Cursors {
    fn new(saved: Option<String>) -> Cursors {
        Cursors {
            progress: Progress::new(0),
            inner: Mutex::new(CursorsInner {
                delivered: saved,
                ..CursorsInner::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CursorsInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn track(&self, cursor: String) -> Ack {
        let mut inner = self.lock();
        inner.read += 1;
        let n = inner.read;
        inner.pending.push_back((n, cursor));
        self.progress.track(n)
    }

    /// The cursor of the last entry of the delivered prefix.
    fn delivered(&self) -> Option<String> {
        let done = self.progress.committed();
        let mut inner = self.lock();
        while inner.pending.front().is_some_and(|(n, _)| *n <= done) {
            let (_, c) = inner.pending.pop_front().unwrap_or_default();
            inner.delivered = Some(c);
        }
        inner.delivered.clone()
    }
}

/// A running journal source for one scrape config.
pub struct JournalTarget {
    key: String,
    positions: Arc<Positions>,
    cursors: Arc<Cursors>,
    stop: watch::Sender<bool>,
    reader: JoinHandle<()>,
    updater: JoinHandle<()>,
}

impl JournalTarget {
    /// Starts reading the journal for `sc` (which has a `journal` block)
    /// into `out`, the job's pipeline. Call inside a tokio runtime.
    pub fn start(
        sc: &ScrapeConfig,
        positions: Arc<Positions>,
        out: mpsc::Sender<Entry>,
    ) -> Result<JournalTarget, String> {
        Self::start_with(sc, positions, out, PathBuf::from("journalctl"))
    }

    /// [`JournalTarget::start`] with another journalctl binary.
    pub fn start_with(
        sc: &ScrapeConfig,
        positions: Arc<Positions>,
        out: mpsc::Sender<Entry>,
        journalctl: PathBuf,
    ) -> Result<JournalTarget, String> {
        let cfg = sc
            .journal
            .clone()
            .ok_or_else(|| format!("job {:?} has no journal block", sc.job_name))?;
        check(sc)?;
        let key = position_key(&sc.job_name);
        let saved = positions.get_raw(&key);
        let start = start_position(saved.as_deref(), cfg.max_age.get(), SystemTime::now());
        tracing::info!(job = %sc.job_name, start = ?start, "reading the journal");
        let cursors = Arc::new(Cursors::new(saved));
        let (stop, stop_rx) = watch::channel(false);
        let reader = Reader {
            job: sc.job_name.clone(),
            formatter: Formatter::new(&cfg, &sc.relabel_configs),
            cfg,
            journalctl,
            cursors: Arc::clone(&cursors),
            out,
        };
        let reader = tokio::spawn(reader.run(start, stop_rx));
        let updater = {
            let (key, positions, cursors) =
                (key.clone(), Arc::clone(&positions), Arc::clone(&cursors));
            tokio::spawn(async move {
                let mut last = None;
                loop {
                    tokio::time::sleep(CURSOR_UPDATE).await;
                    update_position(&key, &positions, &cursors, &mut last);
                }
            })
        };
        Ok(JournalTarget {
            key,
            positions,
            cursors,
            stop,
            reader,
            updater,
        })
    }

    /// Stops reading (journalctl is killed); entries already read are
    /// still delivered by the pipeline and clients.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Records the delivered cursor in the positions now (call after the
    /// clients stopped, before the last positions save).
    pub fn save_cursor(&self) {
        self.updater.abort();
        self.reader.abort();
        update_position(&self.key, &self.positions, &self.cursors, &mut None);
    }

    /// The cursor of the last entry Loki accepted.
    pub fn delivered_cursor(&self) -> Option<String> {
        self.cursors.delivered()
    }
}

fn update_position(key: &str, positions: &Positions, cursors: &Cursors, last: &mut Option<String>) {
    let now = cursors.delivered();
    if now.is_some() && now != *last {
        if let Some(c) = &now {
            positions.put_raw(key, c.clone());
        }
        *last = now;
    }
}

/// Resolves once the stop flag is set (or its sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

struct Reader {
    job: String,
    cfg: JournalConfig,
    formatter: Formatter,
    journalctl: PathBuf,
    cursors: Arc<Cursors>,
    out: mpsc::Sender<Entry>,
}

/// How one journalctl run ended.
enum RunEnd {
    Stopped,
    /// journalctl exited or could not start; `read` entries came out of it.
    Exited {
        read: u64,
        error: String,
    },
}

impl Reader {
    async fn run(self, mut start: Start, mut stop: watch::Receiver<bool>) {
        let mut wait = RESTART_MIN;
        loop {
            let (end, last) = self.run_once(&start, &mut stop).await;
            let RunEnd::Exited { read, error } = end else {
                return;
            };
            if let Some(c) = last {
                start = Start::Cursor(c);
            } else if read == 0 {
                if let Start::Cursor(c) = &start {
                    if error.contains("cursor") {
                        tracing::error!(job = %self.job, cursor = %c, error = %error,
                            "journalctl rejects the saved cursor; reading from max_age instead");
                        start = start_position(None, self.cfg.max_age.get(), SystemTime::now());
                        continue;
                    }
                }
            }
            if read > 0 {
                wait = RESTART_MIN;
            }
            tracing::error!(job = %self.job, error = %error, retry_in = ?wait, "journalctl stopped; restarting it from the last cursor read");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped(&mut stop) => return,
            }
            wait = (wait * 2).min(RESTART_MAX);
        }
    }

    /// Runs journalctl once; returns how it ended and the last cursor read.
    async fn run_once(
        &self,
        start: &Start,
        stop: &mut watch::Receiver<bool>,
    ) -> (RunEnd, Option<String>) {
        let exited = |error: String| RunEnd::Exited { read: 0, error };
        let args = match journalctl_args(&self.cfg, start) {
            Ok(a) => a,
            Err(e) => return (exited(e), None),
        };
        tracing::debug!(job = %self.job, journalctl = %self.journalctl.display(), ?args, "starting journalctl");
        let mut child = match tokio::process::Command::new(&self.journalctl)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                return (
                    exited(format!("cannot run {}: {e}", self.journalctl.display())),
                    None,
                )
            }
        };
        // journalctl's complaints: logged as they come, the last kept.
        let stderr_text = Arc::new(Mutex::new(String::new()));
        if let Some(err) = child.stderr.take() {
            let (job, text) = (self.job.clone(), Arc::clone(&stderr_text));
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    tracing::warn!(job = %job, "journalctl: {l}");
                    *text.lock().unwrap_or_else(|e| e.into_inner()) = l;
                }
            });
        }
        let Some(stdout) = child.stdout.take() else {
            return (exited("journalctl has no stdout".into()), None);
        };
        let mut stdout = BufReader::with_capacity(64 * 1024, stdout);
        let mut skip_first = match start {
            Start::Cursor(c) => Some(c.clone()),
            Start::Since(_) => None,
        };
        let mut last = None;
        let mut read = 0u64;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = tokio::select! {
                r = stdout.read_until(b'\n', &mut buf) => r,
                _ = stopped(stop) => {
                    let _ = child.kill().await;
                    return (RunEnd::Stopped, last);
                }
            };
            match n {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    let _ = child.kill().await;
                    return (
                        RunEnd::Exited {
                            read,
                            error: format!("reading journalctl's output: {e}"),
                        },
                        last,
                    );
                }
            }
            let rec = match parse_record(buf.trim_ascii()) {
                Ok(r) => r,
                Err(e) => {
                    BAD_JSON.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(job = %self.job, error = %e, "skipping a journal entry journalctl printed");
                    continue;
                }
            };
            if let Some(c) = skip_first.take() {
                if c == rec.cursor {
                    continue; // delivered before the restart
                }
            }
            read += 1;
            last = Some(rec.cursor.clone());
            let ack = self.cursors.track(rec.cursor.clone());
            match self.formatter.entry(&rec) {
                Ok(mut entry) => {
                    LINES.fetch_add(1, Ordering::Relaxed);
                    entry.ack = Some(ack);
                    tokio::select! {
                        r = self.out.send(entry) => if r.is_err() {
                            let _ = child.kill().await;
                            return (RunEnd::Stopped, last);
                        },
                        _ = stopped(stop) => {
                            let _ = child.kill().await;
                            return (RunEnd::Stopped, last);
                        }
                    }
                }
                Err(skip) => {
                    match skip {
                        Skip::NoMessage => NO_MESSAGE.fetch_add(1, Ordering::Relaxed),
                        Skip::EmptyLabels => EMPTY_LABELS.fetch_add(1, Ordering::Relaxed),
                    };
                    ack.complete();
                }
            }
        }
        let status = child.wait().await;
        // Let the stderr task take the last words.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let said = stderr_text
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let error = match status {
            Ok(s) => format!("journalctl exited ({s}): {said}"),
            Err(e) => format!("journalctl: {e}: {said}"),
        };
        (RunEnd::Exited { read, error }, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_are_field_value_terms() {
        assert_eq!(
            parse_matches(" SYSLOG_IDENTIFIER=sshd  _SYSTEMD_UNIT=ssh.service + PRIORITY=3")
                .unwrap(),
            [
                "SYSLOG_IDENTIFIER=sshd",
                "_SYSTEMD_UNIT=ssh.service",
                "+",
                "PRIORITY=3"
            ]
        );
        let e = parse_matches("/usr/sbin/sshd").unwrap_err();
        assert!(e.contains("not FIELD=value"), "{e}");
        let e = parse_matches("syslog_identifier=sshd").unwrap_err();
        assert!(e.contains("not a journal field name"), "{e}");
        assert!(parse_matches("").unwrap().is_empty());
    }

    #[test]
    fn start_uses_the_cursor_unless_older_than_max_age() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let hour = Duration::from_secs(3600);
        let cursor_at = |t: SystemTime| {
            let us = t.duration_since(UNIX_EPOCH).unwrap().as_micros();
            format!("s=abc;i=7;b=def;m=1f;t={us:x};x=99")
        };
        let recent = cursor_at(now - hour);
        assert_eq!(
            start_position(Some(&recent), 7 * hour, now),
            Start::Cursor(recent.clone())
        );
        let old = cursor_at(now - 8 * hour);
        assert_eq!(
            start_position(Some(&old), 7 * hour, now),
            Start::Since(now - 7 * hour)
        );
        assert_eq!(
            start_position(None, 7 * hour, now),
            Start::Since(now - 7 * hour)
        );
        // A cursor we cannot date is trusted: reading from it loses nothing.
        assert_eq!(
            start_position(Some("opaque"), hour, now),
            Start::Cursor("opaque".into())
        );
    }

    #[test]
    fn records_decode_binary_and_repeated_fields() {
        let line = br#"{"__CURSOR":"s=1;i=2;t=5","__REALTIME_TIMESTAMP":"1700000000123456","MESSAGE":[104,105,255],"TAG":["a","b"],"_PID":"42","BIG":null}"#;
        let r = parse_record(line).unwrap();
        assert_eq!(r.cursor, "s=1;i=2;t=5");
        assert_eq!(
            r.realtime,
            UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456)
        );
        assert_eq!(r.fields["MESSAGE"], "hi\u{fffd}");
        assert_eq!(r.fields["TAG"], "b");
        assert_eq!(r.fields["_PID"], "42");
        assert!(!r.fields.contains_key("BIG"));
        assert!(!r.fields.contains_key("__CURSOR"));
        assert!(parse_record(b"{\"MESSAGE\":\"x\"}").is_err());
        assert!(parse_record(b"not json").is_err());
    }

    fn record(fields: &[(&str, &str)]) -> Record {
        Record {
            cursor: "c".into(),
            realtime: UNIX_EPOCH + Duration::from_secs(10),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn formatter_names_fields_like_promtail() {
        let relabel: Vec<RelabelConfig> = serde_yaml_ng::from_str(
            "- source_labels: [__journal__systemd_unit]\n  target_label: unit\n\
             - source_labels: [__journal_priority_keyword]\n  target_label: level\n",
        )
        .unwrap();
        let f = Formatter {
            json: false,
            labels: [("job".to_string(), "systemd-journal".to_string())].into(),
            relabel,
        };
        let e = f
            .entry(&record(&[
                ("MESSAGE", "started"),
                ("_SYSTEMD_UNIT", "cron.service"),
                ("PRIORITY", "3"),
            ]))
            .unwrap();
        assert_eq!(e.line, "started");
        assert_eq!(e.timestamp, UNIX_EPOCH + Duration::from_secs(10));
        assert_eq!(
            e.labels,
            relabel::labels([
                ("job", "systemd-journal"),
                ("level", "error"),
                ("unit", "cron.service")
            ])
        );
        assert_eq!(
            f.entry(&record(&[("_PID", "1")])).unwrap_err(),
            Skip::NoMessage
        );
        let bare = Formatter {
            json: true,
            labels: BTreeMap::new(),
            relabel: Vec::new(),
        };
        assert_eq!(
            bare.entry(&record(&[("MESSAGE", "x")])).unwrap_err(),
            Skip::EmptyLabels
        );
    }

    #[test]
    fn json_lines_carry_every_field_sorted() {
        let f = Formatter {
            json: true,
            labels: [("job".to_string(), "j".to_string())].into(),
            relabel: Vec::new(),
        };
        let e = f
            .entry(&record(&[("MESSAGE", "hi \"there\""), ("A", "1")]))
            .unwrap();
        assert_eq!(e.line, r#"{"A":"1","MESSAGE":"hi \"there\""}"#);
    }

    #[test]
    fn the_delivered_cursor_follows_the_completed_prefix() {
        let c = Cursors::new(Some("saved".into()));
        let a = c.track("a".into());
        let b = c.track("b".into());
        let d = c.track("d".into());
        assert_eq!(c.delivered().as_deref(), Some("saved"));
        b.complete();
        assert_eq!(c.delivered().as_deref(), Some("saved"), "a is in flight");
        a.complete();
        assert_eq!(c.delivered().as_deref(), Some("b"));
        d.complete();
        assert_eq!(c.delivered().as_deref(), Some("d"));
    }
}
