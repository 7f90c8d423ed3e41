//! `-dry-run`: print what would be pushed instead of pushing it, the way
//! promtail's dry-run logger does (`<timestamp>\t<labels>\t<line>`), and
//! complete every entry's ack (promtail's dry run does not save positions
//! either; the lead decides whether to save them).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::entry::{Entry, LabelSet};

/// Starts a task printing entries from the returned sender to `out`
/// (stdout in the binary). The task ends when every sender is dropped.
pub fn start<W: Write + Send + 'static>(
    mut out: W,
    external_labels: LabelSet,
    capacity: usize,
) -> (mpsc::Sender<Entry>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Entry>(capacity.max(1));
    let task = tokio::task::spawn_blocking(move || {
        let mut buf = String::new();
        while let Some(e) = rx.blocking_recv() {
            buf.clear();
            format_entry(&mut buf, &e, &external_labels);
            if let Err(err) = out.write_all(buf.as_bytes()) {
                tracing::error!(error = %err, "dry run: writing an entry");
            }
            let _ = out.flush();
            e.complete();
        }
    });
    (tx, task)
}

/// One entry as promtail's dry run prints it.
pub fn format_entry(out: &mut String, e: &Entry, external_labels: &LabelSet) {
    format_go_time(out, e.timestamp);
    out.push('\t');
    let labels = super::sent_labels(&e.labels, external_labels);
    out.push_str(&super::proto::labels_string(&labels));
    out.push('\t');
    out.push_str(&e.line);
    if !e.structured_metadata.is_empty() {
        out.push('\t');
        let md: LabelSet = e.structured_metadata.iter().cloned().collect();
        out.push_str(&super::proto::labels_string(&md));
    }
    out.push('\n');
}

/// Go's `2006-01-02T15:04:05.999999999-0700` layout, in UTC.
fn format_go_time(out: &mut String, t: SystemTime) {
    use std::fmt::Write as _;
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    let nanos = d.subsec_nanos();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        let _ = write!(out, ".{}", frac.trim_end_matches('0'));
    }
    out.push_str("+0000");
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn prints_like_promtail_dry_run() {
        let mut labels = LabelSet::new();
        labels.insert("job".into(), "varlogs".into());
        labels.insert("__path__".into(), "/var/log/*.log".into());
        let mut e = Entry::new(labels, "hello world".into());
        e.timestamp = UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000);
        let mut ext = LabelSet::new();
        ext.insert("host".into(), "web1".into());
        let mut out = String::new();
        format_entry(&mut out, &e, &ext);
        assert_eq!(
            out,
            "2023-11-14T22:13:20.12+0000\t{host=\"web1\", job=\"varlogs\"}\thello world\n"
        );
    }

    #[tokio::test]
    async fn completes_acks() {
        let p = crate::ack::Progress::new(0);
        let (tx, task) = start(Vec::new(), LabelSet::new(), 4);
        let mut e = Entry::new(LabelSet::new(), "x".into());
        e.ack = Some(p.track(2));
        tx.send(e).await.unwrap();
        drop(tx);
        task.await.unwrap();
        assert_eq!(p.committed(), 2);
    }
}
