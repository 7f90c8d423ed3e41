//! `-inspect`: what each stage changed in each entry, printed as promtail
//! prints it (`[inspect: regex stage]: ` then one `path:` line per change
//! with `-: old` and `+: new` under it, or `none`), in color on a
//! terminal (yellow changed, green added, red removed) unless `NO_COLOR`
//! is set, as promtail's color library does.
//!
//! Paths name the parts of promtail's entry (`{stages.Entry}.Extracted`,
//! `.Entry.Labels`, `.Entry.Entry.Timestamp`, `.Entry.Entry.Line`,
//! `.Entry.Entry.StructuredMetadata`), so a promtail user reads them as
//! before. The stages a `match` runs are shown one by one when its
//! selector matches (the `match` itself is not, as in promtail; with
//! `action: drop` it is shown as one stage). A buffering stage (multiline)
//! shows the entries it holds as held; the joined entry it lets go is
//! shown through the stages after it.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::{Extracted, Flow};
use crate::entry::Entry;

/// Where inspection goes, and whether in color.
#[derive(Clone)]
pub struct Inspector {
    out: Arc<Mutex<dyn Write + Send>>,
    color: bool,
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector")
            .field("color", &self.color)
            .finish()
    }
}

/// What inspection compares before and after a stage.
pub struct Snapshot {
    extracted: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    timestamp: SystemTime,
    line: String,
    metadata: BTreeMap<String, String>,
}

impl Snapshot {
    pub fn of(entry: &Entry, x: &Extracted) -> Snapshot {
        Snapshot {
            extracted: x
                .iter()
                .map(|(k, v, _)| (k.to_string(), v.to_string()))
                .collect(),
            labels: BTreeMap::clone(&entry.labels),
            timestamp: entry.timestamp,
            line: entry.line.clone(),
            metadata: entry.structured_metadata.iter().cloned().collect(),
        }
    }
}

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

impl Inspector {
    /// To stderr, in color when it is a terminal and `NO_COLOR` is unset.
    pub fn stderr() -> Inspector {
        let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Inspector {
            out: Arc::new(Mutex::new(std::io::stderr())),
            color,
        }
    }

    /// To `out` (tests), with or without color.
    pub fn to(out: Arc<Mutex<dyn Write + Send>>, color: bool) -> Inspector {
        Inspector { out, color }
    }

    fn paint(&self, color: &str, text: &str) -> String {
        if self.color {
            format!("{color}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    /// Prints what `stage` changed from `before` to `after` (`flow`: what
    /// it decided).
    pub fn report(&self, stage: &str, before: &Snapshot, after: &Snapshot, flow: Flow) {
        let mut diffs = Vec::new();
        // A held entry was moved into the stage: what is left is a shell.
        let after = if flow == Flow::Held { before } else { after };
        self.maps(&mut diffs, "Extracted", &before.extracted, &after.extracted);
        self.maps(&mut diffs, "Entry.Labels", &before.labels, &after.labels);
        if before.timestamp != after.timestamp {
            self.change(
                &mut diffs,
                "Entry.Entry.Timestamp",
                Some(&go_time(before.timestamp)),
                Some(&go_time(after.timestamp)),
            );
        }
        if before.line != after.line {
            self.change(
                &mut diffs,
                "Entry.Entry.Line",
                Some(&before.line),
                Some(&after.line),
            );
        }
        self.maps(
            &mut diffs,
            "Entry.Entry.StructuredMetadata",
            &before.metadata,
            &after.metadata,
        );
        let mut text = match flow {
            Flow::Drop => self.paint(RED, "dropped"),
            Flow::Held => self.paint(YELLOW, "held (to be joined)"),
            Flow::Keep if diffs.is_empty() => self.paint(RED, "none"),
            Flow::Keep => String::new(),
        };
        if !diffs.is_empty() {
            text.push('\n');
            text.push_str(&diffs.join("\n"));
        }
        let line = format!("[inspect: {} stage]: {text}\n", self.paint(BOLD, stage));
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // Inspection must not stop shipping: a closed stderr is ignored.
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }

    fn maps(
        &self,
        diffs: &mut Vec<String>,
        path: &str,
        before: &BTreeMap<String, String>,
        after: &BTreeMap<String, String>,
    ) {
        let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let (b, a) = (before.get(k), after.get(k));
            if b != a {
                let at = format!("{path}[{k:?}]");
                self.change(diffs, &at, b.map(String::as_str), a.map(String::as_str));
            }
        }
    }

    fn change(&self, diffs: &mut Vec<String>, path: &str, old: Option<&str>, new: Option<&str>) {
        let title = format!("{{stages.Entry}}.{path}:");
        match (old, new) {
            (Some(o), Some(n)) => {
                diffs.push(self.paint(YELLOW, &title));
                diffs.push(self.paint(YELLOW, &format!("\t-: {o}")));
                diffs.push(self.paint(GREEN, &format!("\t+: {n}")));
            }
            (Some(o), None) => {
                diffs.push(self.paint(RED, &title));
                diffs.push(self.paint(RED, &format!("\t-: {o}")));
            }
            (None, Some(n)) => {
                diffs.push(self.paint(GREEN, &title));
                diffs.push(self.paint(GREEN, &format!("\t+: {n}")));
            }
            (None, None) => {}
        }
    }
}

/// A time as Go prints a `time.Time` in UTC: `2006-01-02 15:04:05.999999999 +0000 UTC`.
fn go_time(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    let frac = dt.format("%.9f").to_string();
    let frac = frac.trim_end_matches('0');
    let frac = if frac == "." { "" } else { frac };
    format!("{}{frac} +0000 UTC", dt.format("%Y-%m-%d %H:%M:%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(extracted: &[(&str, &str)], line: &str) -> Snapshot {
        Snapshot {
            extracted: extracted
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            labels: BTreeMap::new(),
            timestamp: SystemTime::UNIX_EPOCH,
            line: line.into(),
            metadata: BTreeMap::new(),
        }
    }

    fn printed(color: bool, f: impl FnOnce(&Inspector)) -> String {
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        f(&Inspector::to(out.clone(), color));
        let bytes = out.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn colors_say_changed_added_and_removed() {
        let before = snapshot(&[("a", "1"), ("gone", "x")], "line");
        let after = snapshot(&[("a", "2"), ("new", "y")], "line");
        let text = printed(true, |i| i.report("json", &before, &after, Flow::Keep));
        assert_eq!(
            text,
            "[inspect: \x1b[1mjson\x1b[0m stage]: \n\
             \x1b[33m{stages.Entry}.Extracted[\"a\"]:\x1b[0m\n\
             \x1b[33m\t-: 1\x1b[0m\n\
             \x1b[32m\t+: 2\x1b[0m\n\
             \x1b[31m{stages.Entry}.Extracted[\"gone\"]:\x1b[0m\n\
             \x1b[31m\t-: x\x1b[0m\n\
             \x1b[32m{stages.Entry}.Extracted[\"new\"]:\x1b[0m\n\
             \x1b[32m\t+: y\x1b[0m\n"
        );
        let same = snapshot(&[], "l");
        let text = printed(false, |i| {
            i.report("multiline", &same, &same, Flow::Held);
            i.report("drop", &same, &same, Flow::Drop);
            i.report("labels", &same, &same, Flow::Keep);
        });
        assert_eq!(
            text,
            "[inspect: multiline stage]: held (to be joined)\n\
             [inspect: drop stage]: dropped\n\
             [inspect: labels stage]: none\n"
        );
    }

    #[test]
    fn a_joined_multiline_block_is_inspected_through_the_later_stages() {
        let mut p = crate::pipeline::stages::testutil::pipeline(
            "- multiline: {firstline: '^START'}\n- output: {source: nope}\n- static_labels: {joined: 'yes'}\n",
        );
        let text = printed(false, |i| {
            p.inspect(i.clone());
            let mut out = Vec::new();
            for line in ["START 1", "more", "START 2"] {
                p.process(
                    Entry::new(crate::relabel::labels([("job", "j")]), line.into()),
                    &mut out,
                );
            }
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].line, "START 1\nmore");
        });
        assert_eq!(
            text,
            "[inspect: multiline stage]: held (to be joined)\n\
             [inspect: multiline stage]: held (to be joined)\n\
             [inspect: multiline stage]: held (to be joined)\n\
             [inspect: output stage]: none\n\
             [inspect: static_labels stage]: \n\
             {stages.Entry}.Entry.Labels[\"joined\"]:\n\
             \t+: yes\n"
        );
    }

    #[test]
    fn the_stages_inside_a_match_are_inspected_one_by_one() {
        let mut p = crate::pipeline::stages::testutil::pipeline(
            "- match:\n    selector: '{job=\"j\"}'\n    stages:\n    - regex: {expression: '^(?P<level>\\w+) '}\n    - labels: {level: null}\n- match: {selector: '{job=\"j\"} |= \"drop me\"', action: drop}\n- static_labels: {seen: 'yes'}\n",
        );
        let text = printed(false, |i| {
            p.inspect(i.clone());
            let mut out = Vec::new();
            for (job, line) in [
                ("j", "info ok"),
                ("other", "warn ok"),
                ("j", "info drop me"),
            ] {
                p.process(
                    Entry::new(crate::relabel::labels([("job", job)]), line.into()),
                    &mut out,
                );
            }
            assert_eq!(out.len(), 2);
        });
        assert_eq!(
            text,
            "[inspect: regex stage]: \n\
             {stages.Entry}.Extracted[\"level\"]:\n\
             \t+: info\n\
             [inspect: labels stage]: \n\
             {stages.Entry}.Entry.Labels[\"level\"]:\n\
             \t+: info\n\
             [inspect: match stage]: none\n\
             [inspect: static_labels stage]: \n\
             {stages.Entry}.Entry.Labels[\"seen\"]:\n\
             \t+: yes\n\
             [inspect: match stage]: none\n\
             [inspect: static_labels stage]: \n\
             {stages.Entry}.Entry.Labels[\"seen\"]:\n\
             \t+: yes\n\
             [inspect: regex stage]: \n\
             {stages.Entry}.Extracted[\"level\"]:\n\
             \t+: info\n\
             [inspect: labels stage]: \n\
             {stages.Entry}.Entry.Labels[\"level\"]:\n\
             \t+: info\n\
             [inspect: match stage]: dropped\n"
        );
    }

    #[test]
    fn go_time_trims_the_fraction_as_go_does() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_674_061_723_860);
        assert_eq!(go_time(t), "2023-01-18 17:08:43.86 +0000 UTC");
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(5);
        assert_eq!(go_time(t), "1970-01-01 00:00:05 +0000 UTC");
    }
}
