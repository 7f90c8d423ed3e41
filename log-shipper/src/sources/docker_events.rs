//! `docker_events`, a scrape config kind of our own (promtail has none):
//! the Docker Engine's event stream as one JSON line per event, in the
//! shape `docker events --format '{{json .}}'` users already grep
//! (seed 004: type, action, id, name, image, time, plus the actor's
//! attributes), labelled `type` and `action`:
//!
//! ```yaml
//! - job_name: docker_events
//!   docker_events:
//!     host: unix:///var/run/docker.sock   # the default
//!     labels: {job: docker_events, log_type: event}
//!     filters: [{name: type, values: [container, image]}]   # optional
//! ```
//!
//! The `action` label is the action up to its first `:` (`exec_start:
//! sh -c ...` and `health_status: healthy` carry free text after it, which
//! stays in the line), so the label keeps a small set of values.
//!
//! Resuming: the position `docker_events-<job_name>` holds the time of the
//! last event Loki accepted; after a restart the stream is asked for
//! `since` that time and what is at or before it is skipped. The Engine
//! keeps only its last 256 events in memory, so a longer gap loses the
//! older ones (the Engine's limit, logged as nothing we can see). Without a
//! position the stream starts at the moment the source starts.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bollard::models::EventMessage;
use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;

use super::docker::{now_ns, Cursors};
use super::docker_engine::{connect, format_position};
use crate::ack::Progress;
use crate::config::DockerEventsConfig;
use crate::entry::{Entry, LabelSet};
use crate::relabel::{self, RelabelConfig};

const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

static EVENTS: AtomicU64 = AtomicU64::new(0);

pub fn collect(set: &mut exporter_toolkit::exposition::MetricSet) {
    set.counter(
        "log_shipper_docker_events_total",
        "Docker Engine events read by docker_events sources.",
        &[],
        EVENTS.load(Ordering::Relaxed) as f64,
    );
}

/// One event as a log line (field order as written).
#[derive(Serialize)]
struct EventLine<'a> {
    time: String,
    #[serde(rename = "type")]
    kind: &'a str,
    action: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    attributes: BTreeMap<&'a str, &'a str>,
}

/// The event's time in ns.
fn event_time(ev: &EventMessage) -> Option<u64> {
    let ns = ev
        .time_nano
        .or_else(|| ev.time.and_then(|s| s.checked_mul(1_000_000_000)))?;
    u64::try_from(ns).ok()
}

/// The label value of an action: what comes before free text.
pub fn action_label(action: &str) -> &str {
    action.split(':').next().unwrap_or(action).trim()
}

/// The line and the `type`/`action` labels of one event.
pub fn render(ev: &EventMessage, ts: u64) -> (String, String, String) {
    let kind = ev.typ.as_ref().map(|t| t.to_string()).unwrap_or_default();
    let action = ev.action.as_deref().unwrap_or("");
    let empty = HashMap::new();
    let (id, attrs) = match &ev.actor {
        Some(a) => (
            a.id.as_deref().unwrap_or(""),
            a.attributes.as_ref().unwrap_or(&empty),
        ),
        None => ("", &empty),
    };
    let time = chrono::DateTime::<chrono::Utc>::from(UNIX_EPOCH + Duration::from_nanos(ts))
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let line = EventLine {
        time,
        kind: &kind,
        action,
        id,
        name: attrs.get("name").map(String::as_str),
        image: attrs.get("image").map(String::as_str),
        service: attrs.get("com.docker.compose.service").map(String::as_str),
        scope: ev
            .scope
            .as_ref()
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty()),
        attributes: attrs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
    };
    let text = serde_json::to_string(&line).unwrap_or_default();
    (text, kind.clone(), action_label(action).to_string())
}

/// Follows the Engine's events until aborted, reconnecting as needed.
pub async fn run(
    cfg: DockerEventsConfig,
    job: String,
    rules: Vec<RelabelConfig>,
    tx: mpsc::Sender<Entry>,
    cursors: Arc<Cursors>,
) {
    let key = format!("docker_events-{job}");
    let saved = cursors.saved(&key);
    // Without a position, events from now on (not the Engine's backlog).
    let mut read_to = saved.unwrap_or_else(now_ns);
    let progress = Progress::new(saved.unwrap_or(0));
    cursors.track(&key, Arc::clone(&progress));
    let filters = super::docker_engine::filters(&cfg.filters);
    let mut retry = RETRY_MIN;
    loop {
        let docker = match connect(&cfg.host, None).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(job = %job, error = %e, "docker_events: cannot reach the Docker Engine; retrying");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
                continue;
            }
        };
        let opts = EventsOptionsBuilder::new()
            .since(&format_position(read_to))
            .filters(&filters)
            .build();
        let mut events = docker.events(Some(opts));
        while let Some(item) = events.next().await {
            let ev = match item {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::warn!(job = %job, error = %e, "docker_events: the event stream broke; reconnecting");
                    break;
                }
            };
            retry = RETRY_MIN;
            let Some(ts) = event_time(&ev) else { continue };
            if ts <= read_to {
                continue; // delivered before
            }
            read_to = ts;
            EVENTS.fetch_add(1, Ordering::Relaxed);
            let (line, kind, action) = render(&ev, ts);
            let ack = progress.track(ts);
            let mut labels: LabelSet = cfg.labels.clone();
            labels.insert("type".into(), kind);
            labels.insert("action".into(), action);
            let Some(labels) = relabel::process(labels, &rules) else {
                ack.complete(); // dropped by relabeling, on purpose
                continue;
            };
            let entry = Entry {
                labels: labels
                    .into_iter()
                    .filter(|(k, _)| !k.starts_with("__"))
                    .collect(),
                timestamp: UNIX_EPOCH + Duration::from_nanos(ts),
                line,
                structured_metadata: Vec::new(),
                ack: Some(ack),
            };
            if tx.send(entry).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{EventActor, EventMessageTypeEnum};

    #[test]
    fn an_event_as_a_line_with_bounded_labels() {
        let ev = EventMessage {
            typ: Some(EventMessageTypeEnum::CONTAINER),
            action: Some("exec_start: sh -c echo hi".into()),
            actor: Some(EventActor {
                id: Some("7a45".into()),
                attributes: Some(HashMap::from([
                    ("image".into(), "nginx".into()),
                    ("name".into(), "web_1".into()),
                    ("com.docker.compose.service".into(), "nginx".into()),
                ])),
            }),
            time: Some(1_512_577_805),
            time_nano: Some(1_512_577_805_403_209_000),
            ..Default::default()
        };
        let ts = event_time(&ev).unwrap();
        let (line, kind, action) = render(&ev, ts);
        assert_eq!(kind, "container");
        assert_eq!(action, "exec_start");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["type"], "container");
        assert_eq!(v["action"], "exec_start: sh -c echo hi");
        assert_eq!(v["id"], "7a45");
        assert_eq!(v["name"], "web_1");
        assert_eq!(v["image"], "nginx");
        assert_eq!(v["service"], "nginx");
        assert_eq!(v["time"], "2017-12-06T16:30:05.403209000Z");
        assert_eq!(v["attributes"]["name"], "web_1");
    }
}
