//! Targets of a scrape config, from `static_configs` and `file_sd_configs`,
//! after `relabel_configs`. Like Prometheus, every target string becomes
//! `__address__` next to its group's labels, file_sd targets get
//! `__meta_filepath`, and relabeling may drop a target. Like promtail, a
//! target without `__path__` is left out, and the other `__` labels are
//! removed from what is handed on (the file source's own, such as
//! `__path__`, `__path_exclude__` and `__rotated_dir__`, stay: it needs them).
//!
//! [`spawn`] keeps the list current: target files are re-read when they
//! change (inotify via `notify`) and every `refresh_interval` as a fallback;
//! subscribers see the list through a `tokio::sync::watch` channel.

pub mod file_sd;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::config::{ScrapeConfig, StaticConfig};
use crate::entry::LabelSet;
use crate::relabel;

/// One thing to tail: a `__path__` glob with its final labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    pub job: String,
    /// Final labels, with `__path__` (and `__path_exclude__` if set).
    pub labels: LabelSet,
}

impl Target {
    pub fn path(&self) -> &str {
        self.labels.get("__path__").map_or("", |s| s.as_str())
    }

    pub fn path_exclude(&self) -> Option<&str> {
        self.labels.get("__path_exclude__").map(|s| s.as_str())
    }

    /// The labels to send: everything but the `__` ones.
    pub fn public_labels(&self) -> LabelSet {
        self.labels
            .iter()
            .filter(|(k, _)| !k.starts_with("__"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// A target group as Prometheus' static and file SD describe it, with the
/// labels a source adds (`__meta_filepath`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    pub targets: Vec<String>,
    pub labels: LabelSet,
}

impl From<&StaticConfig> for Group {
    fn from(s: &StaticConfig) -> Self {
        Group {
            targets: s.targets.clone(),
            labels: s.labels.clone(),
        }
    }
}

/// One discovered target: its labels before relabeling, and after (`None`
/// when relabeling dropped it or it has no `__path__`), for
/// `/service-discovery`.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovered {
    pub discovered: LabelSet,
    pub target: Option<LabelSet>,
}

/// Turns groups into targets: `__address__`, relabeling, `__path__` check.
pub fn resolve(job: &str, groups: &[Group], rules: &[relabel::RelabelConfig]) -> Vec<Target> {
    resolve_all(job, groups, rules).0
}

/// [`resolve`], with every group's target as discovered (dropped ones too).
pub fn resolve_all(
    job: &str,
    groups: &[Group],
    rules: &[relabel::RelabelConfig],
) -> (Vec<Target>, Vec<Discovered>) {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut all = Vec::new();
    for g in groups {
        let addrs: Vec<Option<&String>> = if g.targets.is_empty() {
            vec![None]
        } else {
            g.targets.iter().map(Some).collect()
        };
        for addr in addrs {
            let mut labels = g.labels.clone();
            if let Some(a) = addr {
                labels.insert("__address__".into(), a.clone());
            }
            let discovered = labels.clone();
            let labels = relabel::process(labels, rules)
                .filter(|l| l.get("__path__").is_some_and(|p| !p.is_empty()));
            let Some(labels) = labels else {
                all.push(Discovered {
                    discovered,
                    target: None,
                });
                continue;
            };
            let labels: LabelSet = labels
                .into_iter()
                .filter(|(k, _)| {
                    !k.starts_with("__")
                        || crate::sources::file::TARGET_LABELS.contains(&k.as_str())
                })
                .collect();
            all.push(Discovered {
                discovered,
                target: Some(labels.clone()),
            });
            if seen.insert(labels.clone()) {
                out.push(Target {
                    job: job.to_string(),
                    labels,
                });
            }
        }
    }
    (out, all)
}

pub fn static_targets(sc: &ScrapeConfig) -> Vec<Target> {
    let groups: Vec<Group> = sc.static_configs.iter().map(Group::from).collect();
    resolve(&sc.job_name, &groups, &sc.relabel_configs)
}

/// Keeps a scrape config's targets current; dropping it stops the watching.
pub struct Discovery {
    pub targets: watch::Receiver<Vec<Target>>,
    /// Every target discovered, kept or dropped, as last computed.
    pub discovered: Arc<Mutex<Vec<Discovered>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts discovery for one scrape config (call inside a tokio runtime).
/// The first list is ready when this returns.
pub fn spawn(sc: &ScrapeConfig) -> Discovery {
    let statics: Vec<Group> = sc.static_configs.iter().map(Group::from).collect();
    let mut files = file_sd::FileSd::new(&sc.file_sd_configs);
    let job = sc.job_name.clone();
    let rules = sc.relabel_configs.clone();
    let discovered = Arc::new(Mutex::new(Vec::new()));
    let publish = Arc::clone(&discovered);
    let compute = move |files: &file_sd::FileSd| {
        let mut groups = statics.clone();
        groups.extend(files.groups());
        let (targets, all) = resolve_all(&job, &groups, &rules);
        *publish.lock().unwrap_or_else(|e| e.into_inner()) = all;
        targets
    };
    // Watch before the first read, so no change falls between the two.
    let changes = (!files.is_empty()).then(|| files.watch());
    files.refresh();
    let (tx, rx) = watch::channel(compute(&files));
    let task = tokio::spawn(async move {
        let Some(mut changes) = changes else {
            // Static only: nothing changes; live as long as a subscriber does.
            tx.closed().await;
            return;
        };
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = changes.next() => {}
            }
            files.refresh();
            let next = compute(&files);
            tx.send_if_modified(|cur| {
                if *cur == next {
                    false
                } else {
                    *cur = next;
                    true
                }
            });
        }
    });
    Discovery {
        targets: rx,
        discovered,
        task,
    }
}

/// Adds discovery's self-metrics to `set`.
pub fn collect(set: &mut exporter_toolkit::exposition::MetricSet) {
    file_sd::collect(set);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relabel::labels;

    fn sc(yaml: &str) -> ScrapeConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn static_targets_relabeled_and_filtered() {
        let c = sc(r#"
job_name: system
static_configs:
  - targets: [localhost]
    labels: {job: varlogs, __path__: /var/log/*log, __path_exclude__: /var/log/lastlog, __rotated_dir__: old, __other__: x}
  - targets: [localhost]
    labels: {job: nopath}
  - targets: [localhost]
    labels: {job: dev, __path__: /dev/log/*.log}
relabel_configs:
  - source_labels: [job]
    regex: dev
    action: drop
  - source_labels: [__address__]
    target_label: host
"#);
        let t = static_targets(&c);
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(
            t[0].labels,
            labels([
                ("job", "varlogs"),
                ("__path__", "/var/log/*log"),
                ("__path_exclude__", "/var/log/lastlog"),
                ("__rotated_dir__", "old"),
                ("host", "localhost")
            ])
        );
        assert_eq!(t[0].job, "system");
        assert_eq!(t[0].path(), "/var/log/*log");
        assert_eq!(
            t[0].public_labels(),
            labels([("job", "varlogs"), ("host", "localhost")])
        );
    }
}
