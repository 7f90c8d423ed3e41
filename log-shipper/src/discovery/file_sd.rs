//! Prometheus' file service discovery: target files in JSON or YAML,
//! named by patterns with a glob in the file name (`/etc/promtail/targets/*.yml`).
//! A file that cannot be read or parsed is logged and counted
//! (`prometheus_sd_file_read_errors_total`), and its last good groups stay,
//! as Prometheus does; a file that is gone takes its groups with it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use regex::Regex;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::Group;
use crate::config::FileSdConfig;

static READ_ERRORS: AtomicU64 = AtomicU64::new(0);

/// promtail and Prometheus only take these extensions.
pub fn validate_pattern(pattern: &str) -> Result<(), String> {
    let p = Path::new(pattern);
    let dir = p
        .parent()
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_default();
    if dir.contains(['*', '?', '[']) {
        return Err(format!(
            "{pattern:?}: a glob is only allowed in the file name, not in the directory"
        ));
    }
    let ext_ok = matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("json" | "yml" | "yaml" | "JSON" | "YML" | "YAML")
    );
    if !ext_ok {
        return Err(format!(
            "{pattern:?}: target files must end in .json, .yml or .yaml"
        ));
    }
    glob_regex(&p.file_name().unwrap_or_default().to_string_lossy())?;
    Ok(())
}

/// A file-name glob (`*`, `?`, `[a-z]`) as an anchored regex.
fn glob_regex(glob: &str) -> Result<Regex, String> {
    let mut re = String::from("^");
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                re.push('[');
                if chars.peek() == Some(&'^') || chars.peek() == Some(&'!') {
                    chars.next();
                    re.push('^');
                }
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == ']' {
                        closed = true;
                        break;
                    }
                    if c == '\\' || c == '[' {
                        re.push('\\');
                    }
                    re.push(c);
                }
                if !closed {
                    return Err(format!("{glob:?}: unterminated [ in glob"));
                }
                re.push(']');
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).map_err(|e| format!("{glob:?}: bad glob: {e}"))
}

struct Pattern {
    dir: PathBuf,
    name: Regex,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

pub struct FileSd {
    patterns: Vec<Pattern>,
    refresh: Duration,
    /// The last good groups of every matching file, in path order.
    files: BTreeMap<PathBuf, Vec<Group>>,
}

impl FileSd {
    pub fn new(configs: &[FileSdConfig]) -> FileSd {
        let mut patterns = Vec::new();
        let mut refresh = Duration::from_secs(300);
        for (i, c) in configs.iter().enumerate() {
            if i == 0 || c.refresh_interval.get() < refresh {
                refresh = c.refresh_interval.get();
            }
            for f in &c.files {
                let p = Path::new(f);
                let name = p
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                match glob_regex(&name) {
                    Ok(name) => patterns.push(Pattern {
                        dir: p
                            .parent()
                            .filter(|d| !d.as_os_str().is_empty())
                            .unwrap_or(Path::new("."))
                            .to_path_buf(),
                        name,
                    }),
                    Err(e) => tracing::error!(msg = "invalid file_sd pattern", err = %e),
                }
            }
        }
        FileSd {
            patterns,
            refresh: refresh.max(Duration::from_millis(100)),
            files: BTreeMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    fn matching_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for p in &self.patterns {
            let Ok(rd) = std::fs::read_dir(&p.dir) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name();
                if p.name.is_match(&name.to_string_lossy()) && e.path().is_file() {
                    out.push(e.path());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Re-reads every matching file.
    pub fn refresh(&mut self) {
        let paths = self.matching_files();
        self.files.retain(|p, _| paths.contains(p));
        for path in paths {
            match read_groups(&path) {
                Ok(groups) => {
                    self.files.insert(path, groups);
                }
                Err(e) => {
                    READ_ERRORS.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        msg = "Error reading file, keeping its last good targets",
                        path = %path.display(),
                        err = %e
                    );
                }
            }
        }
    }

    pub fn groups(&self) -> Vec<Group> {
        self.files.values().flatten().cloned().collect()
    }

    /// Starts watching the directories; [`Changes::next`] resolves on a
    /// change or when the refresh interval passes.
    pub fn watch(&self) -> Changes {
        let (tx, rx) = mpsc::channel(1);
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if res.is_ok() {
                // A full channel already holds a wake-up: nothing is lost.
                let _ = tx.try_send(());
            }
        });
        let watcher = match watcher {
            Ok(mut w) => {
                for p in &self.patterns {
                    if let Err(e) = w.watch(&p.dir, RecursiveMode::NonRecursive) {
                        tracing::warn!(
                            msg = "cannot watch directory, relying on refresh_interval",
                            dir = %p.dir.display(),
                            err = %e
                        );
                    }
                }
                Some(w)
            }
            Err(e) => {
                tracing::warn!(msg = "no file watcher, relying on refresh_interval", err = %e);
                None
            }
        };
        Changes {
            _watcher: watcher,
            rx,
            refresh: self.refresh,
        }
    }
}

fn read_groups(path: &Path) -> Result<Vec<Group>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let is_json = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let raw: Vec<RawGroup> = if text.trim().is_empty() {
        Vec::new()
    } else if is_json {
        serde_json::from_str(&text).map_err(|e| e.to_string())?
    } else {
        serde_yaml_ng::from_str::<Option<Vec<RawGroup>>>(&text)
            .map_err(|e| e.to_string())?
            .unwrap_or_default()
    };
    let filepath = path.to_string_lossy().into_owned();
    raw.into_iter()
        .map(|g| {
            for name in g.labels.keys() {
                if !crate::pipeline::stages::valid_label_name(name) {
                    return Err(format!("invalid label name {name:?}"));
                }
            }
            let mut labels = g.labels;
            labels.insert("__meta_filepath".into(), filepath.clone());
            Ok(Group {
                targets: g.targets,
                labels,
            })
        })
        .collect()
}

pub struct Changes {
    _watcher: Option<notify::RecommendedWatcher>,
    rx: mpsc::Receiver<()>,
    refresh: Duration,
}

impl Changes {
    pub async fn next(&mut self) {
        tokio::select! {
            Some(()) = self.rx.recv() => {
                // Editors write in several steps: let them finish.
                tokio::time::sleep(Duration::from_millis(50)).await;
                while self.rx.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep(self.refresh) => {}
        }
    }
}

pub fn collect(set: &mut exporter_toolkit::exposition::MetricSet) {
    set.counter(
        "prometheus_sd_file_read_errors_total",
        "The number of File-SD read errors.",
        &[],
        READ_ERRORS.load(Ordering::Relaxed) as f64,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ScrapeConfig;
    use crate::discovery::spawn;

    #[test]
    fn globs_and_patterns() {
        let r = glob_regex("tg_*.y?ml").unwrap();
        assert!(
            r.is_match("tg_web.yaml")
                && r.is_match("tg_.yaml")
                && !r.is_match("tg_.yml")
                && !r.is_match("tg_web.json")
        );
        assert!(glob_regex("[ab].json").unwrap().is_match("a.json"));
        assert!(validate_pattern("/etc/targets/*.json").is_ok());
        assert!(validate_pattern("/etc/*/x.json").is_err());
        assert!(validate_pattern("/etc/targets/*.txt").is_err());
    }

    async fn wait_for(
        rx: &mut tokio::sync::watch::Receiver<Vec<crate::discovery::Target>>,
        n: usize,
    ) -> Vec<crate::discovery::Target> {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if rx.borrow().len() == n {
                    return rx.borrow().clone();
                }
                rx.changed().await.unwrap();
            }
        })
        .await
        .unwrap_or_else(|_| panic!("never saw {n} targets, have {:?}", rx.borrow()))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn file_sd_follows_edits_and_keeps_last_good() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("web.yml"),
            "- targets: [localhost]\n  labels: {job: nginx, __path__: /var/log/nginx/*.log}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("ignored.txt"), "not a target file").unwrap();
        // refresh_interval is long: changes must come through inotify.
        let sc: ScrapeConfig = serde_yaml_ng::from_str(&format!(
            "job_name: sd\nfile_sd_configs:\n  - files: ['{d}/*.yml', '{d}/*.json']\n    refresh_interval: 1h\nrelabel_configs:\n  - source_labels: [__meta_filepath]\n    target_label: sd_file\n"
        ))
        .unwrap();
        let mut disc = spawn(&sc);
        let t = wait_for(&mut disc.targets, 1).await;
        assert_eq!(t[0].labels["job"], "nginx");
        assert_eq!(t[0].labels["sd_file"], format!("{d}/web.yml"));
        assert!(!t[0].labels.contains_key("__meta_filepath"));

        std::fs::write(
            dir.path().join("app.json"),
            r#"[{"targets":["localhost"],"labels":{"job":"app","__path__":"/srv/app/*.log"}}]"#,
        )
        .unwrap();
        let t = wait_for(&mut disc.targets, 2).await;
        assert!(t.iter().any(|t| t.labels["job"] == "app"));

        // A broken edit keeps the file's last good targets.
        let before = READ_ERRORS.load(Ordering::Relaxed);
        std::fs::write(dir.path().join("app.json"), "[{ broken").unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(disc.targets.borrow().len(), 2);
        assert!(READ_ERRORS.load(Ordering::Relaxed) > before);

        std::fs::remove_file(dir.path().join("web.yml")).unwrap();
        let t = wait_for(&mut disc.targets, 1).await;
        assert_eq!(t[0].labels["job"], "app");
    }

    #[tokio::test]
    async fn refresh_interval_is_the_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("later");
        // The directory does not exist yet: no watch is possible.
        let sc: ScrapeConfig = serde_yaml_ng::from_str(&format!(
            "job_name: sd\nfile_sd_configs:\n  - files: ['{}/*.yaml']\n    refresh_interval: 200ms\n",
            sub.display()
        ))
        .unwrap();
        let mut disc = spawn(&sc);
        assert!(disc.targets.borrow().is_empty());
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("t.yaml"), "- labels: {__path__: /tmp/x.log}\n").unwrap();
        let t = wait_for(&mut disc.targets, 1).await;
        assert_eq!(t[0].path(), "/tmp/x.log");
    }
}
