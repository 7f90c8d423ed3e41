//! The Loki label names our log shipper's shipped configs produce, for
//! checking the dashboards' Loki queries against: from the example
//! configs `log-shipper/examples/*.yaml` when there are any, else from the
//! convention table `log-shipper/examples/LABELS.md`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde_yaml_ng::Value as Yaml;

use crate::process::workspace_root;

/// Labels a query may use.
#[derive(Debug, Clone, Default)]
pub struct ShipperLabels {
    /// Stream labels: what Loki indexes, usable in `{...}` selectors.
    pub stream: BTreeSet<String>,
    /// Fields LABELS.md says stay in the line, extracted at query time by
    /// `| json` / `| logfmt` (never stream labels).
    pub line_fields: BTreeSet<String>,
    /// Where the stream labels came from, for the test's messages.
    pub source: String,
}

pub fn examples_dir() -> PathBuf {
    workspace_root().join("log-shipper").join("examples")
}

/// Labels promtail's file source adds itself.
const FILE_SOURCE_LABELS: &[&str] = &["filename"];
/// Labels promtail's `docker` and `cri` stages set.
const DOCKER_STAGE_LABELS: &[&str] = &["stream"];

/// The shipper's labels: the example configs' if any exist, else
/// LABELS.md's table. Either way LABELS.md lists the line fields.
pub fn shipper_labels() -> Result<ShipperLabels, String> {
    let dir = examples_dir();
    let labels_md = dir.join("LABELS.md");
    let md = std::fs::read_to_string(&labels_md)
        .map_err(|e| format!("reading {}: {e}", labels_md.display()))?;
    let (table, line_fields) = parse_labels_md(&md)?;
    let mut configs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    configs.sort();
    if configs.is_empty() {
        return Ok(ShipperLabels {
            stream: table,
            line_fields,
            source: format!(
                "the table of {} (there are no example configs log-shipper/examples/*.yaml yet)",
                labels_md.display()
            ),
        });
    }
    let mut stream = BTreeSet::new();
    for c in &configs {
        stream.extend(config_labels(c)?);
    }
    Ok(ShipperLabels {
        stream,
        line_fields,
        source: format!(
            "the example configs {:?}",
            configs
                .iter()
                .map(|c| c
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned())
                .collect::<Vec<_>>()
        ),
    })
}

/// LABELS.md: the first column of the label table (backquoted names;
/// one row may name several), and the backquoted names of its
/// "Extracted fields" paragraph.
pub fn parse_labels_md(md: &str) -> Result<(BTreeSet<String>, BTreeSet<String>), String> {
    let quoted = Regex::new(r"`([A-Za-z_][A-Za-z0-9_]*)`").unwrap();
    let mut labels = BTreeSet::new();
    for line in md.lines().filter(|l| l.trim_start().starts_with('|')) {
        let first = line
            .trim()
            .trim_start_matches('|')
            .split('|')
            .next()
            .unwrap_or("");
        labels.extend(quoted.captures_iter(first).map(|c| c[1].to_string()));
    }
    let fields_at = md
        .find("Extracted fields")
        .ok_or("LABELS.md has no \"Extracted fields\" paragraph")?;
    let paragraph = md[fields_at..].split("\n\n").next().unwrap_or("");
    let fields = quoted
        .captures_iter(paragraph)
        .map(|c| c[1].to_string())
        .collect();
    if labels.is_empty() {
        return Err("LABELS.md has no label table".into());
    }
    Ok((labels, fields))
}

/// The stream labels one promtail-format config attaches: static and
/// journal labels, relabeling targets, `labels` / `static_labels` stages
/// (also inside `match`), the file source's `filename`, the docker/cri
/// stages' `stream`. `job_name` is not a label in promtail: a config must
/// set `job` itself.
pub fn config_labels(path: &Path) -> Result<BTreeSet<String>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let doc: Yaml = serde_yaml_ng::from_str(&text)
        .map_err(|e| format!("{} is not YAML: {e}", path.display()))?;
    let mut out = BTreeSet::new();
    let keys = |v: Option<&Yaml>| -> Vec<String> {
        v.and_then(Yaml::as_mapping)
            .into_iter()
            .flat_map(|m| m.keys())
            .filter_map(|k| k.as_str())
            .map(String::from)
            .collect()
    };
    for sc in seq(doc.get("scrape_configs")) {
        for st in seq(sc.get("static_configs")) {
            let labels = keys(st.get("labels"));
            if labels.iter().any(|l| l == "__path__") {
                out.extend(FILE_SOURCE_LABELS.iter().map(|s| s.to_string()));
            }
            out.extend(labels);
        }
        if sc.get("file_sd_configs").is_some() {
            out.extend(FILE_SOURCE_LABELS.iter().map(|s| s.to_string()));
        }
        out.extend(keys(sc.get("journal").and_then(|j| j.get("labels"))));
        for r in seq(sc.get("relabel_configs")) {
            let action = r.get("action").and_then(Yaml::as_str).unwrap_or("replace");
            if let Some(t) = r.get("target_label").and_then(Yaml::as_str) {
                if action == "replace" || action == "lowercase" || action == "uppercase" {
                    out.insert(t.to_string());
                }
            }
        }
        stage_labels(&seq(sc.get("pipeline_stages")), &mut out);
    }
    out.retain(|l| !l.starts_with("__"));
    Ok(out)
}

fn seq(v: Option<&Yaml>) -> Vec<&Yaml> {
    v.and_then(Yaml::as_sequence)
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

fn stage_labels(stages: &[&Yaml], out: &mut BTreeSet<String>) {
    for stage in stages {
        let Some(m) = stage.as_mapping() else {
            continue;
        };
        for (k, v) in m {
            match k.as_str().unwrap_or("") {
                "labels" | "static_labels" => {
                    out.extend(
                        v.as_mapping()
                            .into_iter()
                            .flat_map(|m| m.keys())
                            .filter_map(|k| k.as_str())
                            .map(String::from),
                    );
                }
                "docker" | "cri" => out.extend(DOCKER_STAGE_LABELS.iter().map(|s| s.to_string())),
                "match" => stage_labels(&seq(v.get("stages")), out),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_labels_md_table_and_line_fields() {
        let md = "# x\n\n| label | values |\n|---|---|\n| `job` | `nginx`, `auth` |\n\
                  | `type`, `action` | x |\n\nExtracted fields kept in the line:\naccess logs `path`, `status`;\nauth `user`.\n\nOther `thing`.\n";
        let (labels, fields) = parse_labels_md(md).unwrap();
        assert_eq!(labels, ["action", "job", "type"].map(String::from).into());
        assert_eq!(fields, ["path", "status", "user"].map(String::from).into());
    }

    #[test]
    fn reads_the_labels_a_promtail_config_attaches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            r#"
scrape_configs:
  - job_name: nginx
    static_configs:
      - targets: [localhost]
        labels: {job: nginx, host: web1, __path__: /var/log/nginx/*.log}
    relabel_configs:
      - source_labels: [__meta_x]
        target_label: region
      - regex: tmp_.*
        action: labeldrop
    pipeline_stages:
      - regex: {expression: '(?P<status>\d+)'}
      - labels: {status_class: null}
      - match:
          selector: '{job="nginx"}'
          stages:
            - static_labels: {log_type: access}
  - job_name: journal
    journal: {labels: {job: journal}}
    pipeline_stages:
      - docker: {}
"#,
        )
        .unwrap();
        assert_eq!(
            config_labels(&path).unwrap(),
            [
                "filename",
                "host",
                "job",
                "log_type",
                "region",
                "status_class",
                "stream"
            ]
            .map(String::from)
            .into()
        );
    }
}
