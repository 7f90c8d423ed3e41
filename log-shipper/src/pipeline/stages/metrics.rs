//! `metrics`: counters, gauges and histograms from the extracted map, on
//! the shipper's own `/metrics` (named `prefix` + name, prefix
//! `promtail_custom_` by default), labelled with the entry's labels at
//! this stage. A series not updated for `max_idle_duration` (default 5m)
//! is removed, so per-stream series do not pile up. As promtail's stage:
//! a counter with `match_all` counts every line (or its bytes with
//! `count_entry_bytes`); otherwise the `source` value must be present and,
//! when `value` is set, equal to it; `add`/`set`/`sub` and histograms need
//! a number.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use exporter_toolkit::exposition::{self, MetricSet, MetricType, Value};
use serde::{Deserialize, Serialize};

use super::StageSpec;
use crate::config::GoDuration;
use crate::entry::Entry;
use crate::pipeline::{Extracted, Flow, Kind, Stage};

pub type MetricsConfig = BTreeMap<String, MetricConfig>;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricConfig {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_idle_duration: Option<GoDuration>,
    #[serde(default)]
    pub config: MetricOptions,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_all: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count_entry_bytes: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<f64>>,
}

const DEFAULT_PREFIX: &str = "promtail_custom_";
const DEFAULT_MAX_IDLE: Duration = Duration::from_secs(300);
/// Prometheus' default histogram buckets.
const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Inc,
    Dec,
    Add,
    Sub,
    Set,
    Observe,
}

#[derive(Debug, Default)]
struct Series {
    value: f64,
    /// Per-bucket (not cumulative) counts for histograms.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
    last: Option<Instant>,
}

#[derive(Debug)]
struct Family {
    help: String,
    kind: MetricType,
    buckets: Vec<f64>,
    max_idle: Duration,
    series: HashMap<Vec<(String, String)>, Series>,
}

/// The custom metrics of every pipeline, by full name. Jobs defining the
/// same metric share it (as promtail's registry does).
fn registry() -> &'static Mutex<BTreeMap<String, Arc<Mutex<Family>>>> {
    static REG: OnceLock<Mutex<BTreeMap<String, Arc<Mutex<Family>>>>> = OnceLock::new();
    REG.get_or_init(Default::default)
}

struct Metric {
    source: String,
    value: Option<String>,
    match_all: bool,
    count_bytes: bool,
    action: Action,
    family: Arc<Mutex<Family>>,
}

pub struct MetricsStage {
    metrics: Vec<Metric>,
    labels: Vec<(String, String)>,
}

fn build_metric(name: &str, c: &MetricConfig) -> Result<Metric, String> {
    let kind = match c.kind.to_ascii_lowercase().as_str() {
        "counter" => MetricType::Counter,
        "gauge" => MetricType::Gauge,
        "histogram" => MetricType::Histogram,
        other => {
            return Err(format!(
                "metric {name}: type must be Counter, Gauge or Histogram, not {other:?}"
            ))
        }
    };
    let o = &c.config;
    let action_name = o.action.as_deref().unwrap_or("").to_ascii_lowercase();
    let action = match (kind, action_name.as_str()) {
        (MetricType::Counter, "inc") => Action::Inc,
        (MetricType::Counter, "add") => Action::Add,
        (MetricType::Counter, "") => {
            return Err(format!(
                "metric {name}: counter action must be defined as either `inc` or `add`"
            ))
        }
        (MetricType::Counter, a) => {
            return Err(format!(
                "metric {name}: action {a:?} is not valid, must be `inc` or `add`"
            ))
        }
        (MetricType::Gauge, "set") => Action::Set,
        (MetricType::Gauge, "inc") => Action::Inc,
        (MetricType::Gauge, "dec") => Action::Dec,
        (MetricType::Gauge, "add") => Action::Add,
        (MetricType::Gauge, "sub") => Action::Sub,
        (MetricType::Gauge, a) => {
            return Err(format!(
                "metric {name}: gauge action must be one of set, inc, dec, add, sub, not {a:?}"
            ))
        }
        _ => Action::Observe,
    };
    let match_all = o.match_all.unwrap_or(false);
    let count_bytes = o.count_entry_bytes.unwrap_or(false);
    if kind == MetricType::Counter {
        if match_all && o.value.is_some() {
            return Err(format!(
                "metric {name}: match_all cannot be combined with value"
            ));
        }
        if count_bytes && !match_all {
            return Err(format!(
                "metric {name}: count_entry_bytes requires match_all: true"
            ));
        }
        if count_bytes && action != Action::Add {
            return Err(format!(
                "metric {name}: count_entry_bytes requires action: add"
            ));
        }
    } else if match_all || count_bytes {
        return Err(format!(
            "metric {name}: match_all and count_entry_bytes are for counters"
        ));
    }
    let max_idle = c
        .max_idle_duration
        .map_or(DEFAULT_MAX_IDLE, GoDuration::get);
    if max_idle < Duration::from_secs(1) {
        return Err(format!(
            "metric {name}: max_idle_duration must be at least 1s"
        ));
    }
    let mut buckets = o
        .buckets
        .clone()
        .unwrap_or_else(|| DEFAULT_BUCKETS.to_vec());
    if kind == MetricType::Histogram {
        if buckets.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!(
                "metric {name}: buckets must be in increasing order"
            ));
        }
        buckets.retain(|b| b.is_finite());
    } else if o.buckets.is_some() {
        return Err(format!("metric {name}: buckets are for histograms"));
    }
    let full = format!("{}{name}", c.prefix.as_deref().unwrap_or(DEFAULT_PREFIX));
    if !exposition::valid_metric_name(&full) {
        return Err(format!("invalid metric name {full:?}"));
    }
    let help = c.description.clone().unwrap_or_default();
    let family = {
        let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
        let f = reg.entry(full.clone()).or_insert_with(|| {
            Arc::new(Mutex::new(Family {
                help,
                kind,
                buckets: buckets.clone(),
                max_idle,
                series: HashMap::new(),
            }))
        });
        let existing = f.lock().unwrap_or_else(|e| e.into_inner());
        if existing.kind != kind || existing.buckets != buckets {
            return Err(format!(
                "metric {full} is already defined by another pipeline with another type or buckets"
            ));
        }
        drop(existing);
        Arc::clone(f)
    };
    Ok(Metric {
        source: c
            .source
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| name.to_string()),
        value: o.value.clone(),
        match_all,
        count_bytes,
        action,
        family,
    })
}

impl StageSpec for MetricsStage {
    const NAME: &'static str = "metrics";
    const EXAMPLE: &'static str = "{registry_example_lines_total: {type: Counter, description: lines, config: {match_all: true, action: inc}}}";
    type Config = MetricsConfig;

    fn new(c: &MetricsConfig) -> Result<Self, String> {
        if c.is_empty() {
            return Err("metrics stage requires at least one metric".into());
        }
        let metrics = c
            .iter()
            .map(|(name, mc)| build_metric(name, mc))
            .collect::<Result<_, _>>()?;
        Ok(MetricsStage {
            metrics,
            labels: Vec::new(),
        })
    }
}

/// promtail's getFloat: numbers, and strings that parse as one.
fn as_float(v: &str, kind: Kind) -> Option<f64> {
    match kind {
        Kind::Str | Kind::Number => v.trim().parse::<f64>().ok(),
        Kind::Bool => Some(if v == "true" { 1.0 } else { 0.0 }),
        _ => None,
    }
}

fn update(family: &Mutex<Family>, labels: &[(String, String)], action: Action, n: f64) {
    let mut guard = family.lock().unwrap_or_else(|e| e.into_inner());
    let f = &mut *guard;
    let bucket = f_bucket(&f.buckets, n);
    let nb = f.buckets.len();
    let s = match f.series.get_mut(labels) {
        Some(s) => s,
        None => f.series.entry(labels.to_vec()).or_default(),
    };
    s.last = Some(Instant::now());
    match action {
        Action::Inc => s.value += 1.0,
        Action::Dec => s.value -= 1.0,
        Action::Add => s.value += n,
        Action::Sub => s.value -= n,
        Action::Set => s.value = n,
        Action::Observe => {
            if s.counts.len() != nb {
                s.counts = vec![0; nb];
            }
            s.sum += n;
            s.count += 1;
            if let Some(i) = bucket {
                s.counts[i] += 1;
            }
        }
    }
}

/// The first bucket whose upper bound holds `n`.
fn f_bucket(buckets: &[f64], n: f64) -> Option<usize> {
    buckets.iter().position(|b| n <= *b)
}

impl Stage for MetricsStage {
    fn process(&mut self, entry: &mut Entry, x: &mut Extracted) -> Flow {
        self.labels.clear();
        self.labels.extend(
            entry
                .labels
                .iter()
                .filter(|(k, _)| !k.starts_with("__"))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        for m in &self.metrics {
            if m.match_all {
                let n = if m.count_bytes {
                    entry.line.len() as f64
                } else {
                    1.0
                };
                update(
                    &m.family,
                    &self.labels,
                    if m.count_bytes {
                        Action::Add
                    } else {
                        Action::Inc
                    },
                    n,
                );
                continue;
            }
            let Some((v, kind)) = x.get(&m.source) else {
                continue;
            };
            if let Some(want) = &m.value {
                if kind == Kind::Json || v != want {
                    continue;
                }
            }
            let n = match m.action {
                Action::Inc | Action::Dec => 1.0,
                _ => match as_float(v, kind) {
                    Some(n) if !(m.action == Action::Add && n < 0.0 && is_counter(&m.family)) => n,
                    _ => {
                        tracing::debug!(source = %m.source, value = %v, "metrics stage: not a usable number");
                        continue;
                    }
                },
            };
            update(&m.family, &self.labels, m.action, n);
        }
        Flow::Keep
    }
}

fn is_counter(f: &Mutex<Family>) -> bool {
    f.lock().unwrap_or_else(|e| e.into_inner()).kind == MetricType::Counter
}

/// Adds the custom metrics to `set`, first removing idle series.
pub fn collect(set: &mut MetricSet) {
    let now = Instant::now();
    let reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    for (name, family) in reg.iter() {
        let mut f = family.lock().unwrap_or_else(|e| e.into_inner());
        let max_idle = f.max_idle;
        f.series
            .retain(|_, s| s.last.is_some_and(|l| now.duration_since(l) < max_idle));
        if f.series.is_empty() {
            continue;
        }
        let mut series = Vec::with_capacity(f.series.len());
        for (labels, s) in &f.series {
            let value = if f.kind == MetricType::Histogram {
                let mut cum = 0;
                let buckets = f
                    .buckets
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        cum += s.counts.get(i).copied().unwrap_or(0);
                        (*b, cum)
                    })
                    .collect();
                Value::Histogram {
                    buckets,
                    sum: s.sum,
                    count: s.count,
                }
            } else {
                Value::Single(s.value)
            };
            series.push(exposition::Series {
                labels: labels
                    .iter()
                    .map(|(k, v)| (std::borrow::Cow::Owned(k.clone()), v.clone()))
                    .collect(),
                value,
            });
        }
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        let fam = exposition::Family {
            name: std::borrow::Cow::Owned(name.clone()),
            help: std::borrow::Cow::Owned(f.help.clone()),
            kind: f.kind,
            series,
        };
        if let Err(e) = set.add_family(fam) {
            tracing::warn!(error = %e, "metrics stage: metric not exposed");
        }
    }
}

#[cfg(test)]
mod tests {
    use exporter_toolkit::exposition::{encode, Format, MetricSet};

    use crate::pipeline::stages::testutil::*;
    use crate::relabel::labels;

    fn exposed() -> String {
        let mut set = MetricSet::new();
        super::collect(&mut set);
        encode(&set.finish().unwrap(), Format::Text)
    }

    #[test]
    fn promtail_documented_counter_gauge_histogram() {
        let mut p = pipeline(
            r#"
- regex:
    expression: '^.*order_status=(?P<order_status>.*?) .*$'
- regex:
    expression: 'retries=(?P<retries>\d+) .*time=(?P<response_time>[\d.]+)'
- metrics:
    t1_successful_orders_total:
      type: Counter
      description: "log lines with the message `order successful`"
      source: order_status
      config:
        value: success
        action: inc
    t1_lines_total:
      type: Counter
      description: "total number of log lines"
      prefix: my_promtail_custom_
      max_idle_duration: 24h
      config:
        match_all: true
        action: inc
    t1_bytes_total:
      type: Counter
      config:
        match_all: true
        count_entry_bytes: true
        action: add
    t1_retries_total:
      type: Gauge
      source: retries
      config:
        action: add
    t1_response_time_seconds:
      type: Histogram
      source: response_time
      config:
        buckets: [0.001, 0.0025, 0.005, 0.010, 0.025, 0.050]
"#,
        );
        for l in [
            "order_status=success retries=1 time=0.002 x",
            "order_status=failed retries=2 time=0.02 x",
            "order_status=success retries=0 time=1.5 x",
        ] {
            run(&mut p, labels([("job", "shop")]), l).unwrap();
        }
        let text = exposed();
        for want in [
            "# HELP promtail_custom_t1_successful_orders_total log lines with the message `order successful`",
            "# TYPE promtail_custom_t1_successful_orders_total counter",
            "promtail_custom_t1_successful_orders_total{job=\"shop\"} 2",
            "my_promtail_custom_t1_lines_total{job=\"shop\"} 3",
            "promtail_custom_t1_bytes_total{job=\"shop\"} 125",
            "promtail_custom_t1_retries_total{job=\"shop\"} 3",
            "promtail_custom_t1_response_time_seconds_bucket{job=\"shop\",le=\"0.0025\"} 1",
            "promtail_custom_t1_response_time_seconds_bucket{job=\"shop\",le=\"0.025\"} 2",
            "promtail_custom_t1_response_time_seconds_bucket{job=\"shop\",le=\"+Inf\"} 3",
            "promtail_custom_t1_response_time_seconds_sum{job=\"shop\"} 1.522",
            "promtail_custom_t1_response_time_seconds_count{job=\"shop\"} 3",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }

    #[test]
    fn idle_series_are_removed_after_max_idle_duration() {
        let mut p = pipeline(
            "- metrics:\n    t2_idle_total:\n      type: Counter\n      max_idle_duration: 1s\n      config:\n        match_all: true\n        action: inc\n",
        );
        run(&mut p, labels([("job", "idle")]), "x").unwrap();
        assert!(exposed().contains("promtail_custom_t2_idle_total{job=\"idle\"} 1"));
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert!(
            !exposed().contains("t2_idle_total"),
            "idle series still exposed"
        );
        run(&mut p, labels([("job", "idle")]), "x").unwrap();
        assert!(exposed().contains("promtail_custom_t2_idle_total{job=\"idle\"} 1"));
    }

    #[test]
    fn config_errors_name_the_metric() {
        let e = build_err("- metrics:\n    m1:\n      type: Counter\n      config: {}\n");
        assert!(e.contains("m1") && e.contains("inc"), "{e}");
        let e = build_err("- metrics:\n    m2:\n      type: Summary\n");
        assert!(e.contains("Counter, Gauge or Histogram"), "{e}");
        let e = build_err(
            "- metrics:\n    m3:\n      type: Counter\n      config:\n        count_entry_bytes: true\n        action: add\n",
        );
        assert!(e.contains("match_all"), "{e}");
        let e = build_err(
            "- metrics:\n    m4:\n      type: Gauge\n      max_idle_duration: 10ms\n      config:\n        action: set\n",
        );
        assert!(e.contains("at least 1s"), "{e}");
    }
}
