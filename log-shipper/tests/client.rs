//! The Loki client against the Loki test receiver: batching, streams,
//! tenants, retries, drops, and acks completed only for accepted entries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_tests::loki_receiver::{LokiReceiver, Mode};
use log_shipper::ack::Progress;
use log_shipper::client::{BackoffSettings, Client, ClientSettings, DropReason};
use log_shipper::entry::{Entry, LabelSet};

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn settings(r: &LokiReceiver) -> ClientSettings {
    ClientSettings {
        url: r.push_url(),
        batch_wait: Duration::from_millis(100),
        backoff: BackoffSettings {
            min_period: Duration::from_millis(50),
            max_period: Duration::from_millis(200),
            max_retries: 0,
        },
        timeout: Duration::from_secs(2),
        ..Default::default()
    }
}

async fn send_lines(client: &Client, p: &Arc<Progress>, l: &LabelSet, from: usize, n: usize) {
    let tx = client.sender();
    for i in from..from + n {
        let mut e = Entry::new(l.clone(), format!("line {i}"));
        e.ack = Some(p.track(i as u64 + 1));
        tx.send(e).await.unwrap();
    }
}

/// The client self-metrics as /metrics shows them.
fn metrics_text() -> String {
    let mut set = exporter_toolkit::exposition::MetricSet::new();
    log_shipper::client::collect(&mut set);
    exporter_toolkit::exposition::encode(
        &set.finish().unwrap(),
        exporter_toolkit::exposition::Format::Text,
    )
}

/// The push URL by the name `localhost`: a `host` label of the metrics
/// no other test shares.
fn localhost_url(r: &LokiReceiver) -> String {
    format!(
        "{}/loki/api/v1/push",
        r.base_url().replace("127.0.0.1", "localhost")
    )
}

async fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_streams_in_order_with_tenant_and_external_labels() {
    let r = LokiReceiver::start();
    r.require_tenant(Some("team-a"));
    let mut s = settings(&r);
    s.tenant_id = Some("team-a".into());
    s.batch_size = 2000; // about 200 lines per batch
    s.external_labels = labels(&[("host", "web1"), ("job", "overridden")]);
    let client = Client::start(s).unwrap();
    let (pa, pb) = (Progress::new(0), Progress::new(0));
    let a = labels(&[("job", "a"), ("__path__", "/x/*.log")]);
    let b = labels(&[("job", "b")]);
    for round in 0..5 {
        send_lines(&client, &pa, &a, round * 200, 200).await;
        send_lines(&client, &pb, &b, round * 200, 200).await;
    }
    wait_until("2000 entries", Duration::from_secs(10), || {
        r.entry_count() == 2000
    })
    .await;
    wait_until("acks", Duration::from_secs(5), || {
        pa.committed() == 1000 && pb.committed() == 1000
    })
    .await;
    assert!(r.problems().is_empty(), "{:?}", r.problems());
    // About 17,000 bytes of lines in batches of at most 2,000 bytes.
    assert!(
        r.accepted_requests() >= 8,
        "batchsize splits batches: {}",
        r.accepted_requests()
    );
    let streams = r.streams();
    assert_eq!(streams.len(), 2);
    for st in &streams {
        assert_eq!(st.tenant.as_deref(), Some("team-a"));
        assert_eq!(st.labels["host"], "web1");
        assert!(!st.labels.contains_key("__path__"));
        let lines: Vec<_> = st.entries.iter().map(|e| e.line.clone()).collect();
        let want: Vec<_> = (0..1000).map(|i| format!("line {i}")).collect();
        assert_eq!(lines, want, "stream {:?} in order", st.labels);
    }
    assert_eq!(
        streams[0].labels["job"], "a",
        "the entry's own job wins over external_labels"
    );
    client.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_label_overrides_the_client_tenant() {
    let r = LokiReceiver::start();
    let mut s = settings(&r);
    s.tenant_id = Some("default".into());
    let client = Client::start(s).unwrap();
    let p = Progress::new(0);
    send_lines(
        &client,
        &p,
        &labels(&[("job", "j"), ("__tenant_id__", "other")]),
        0,
        3,
    )
    .await;
    send_lines(&client, &p, &labels(&[("job", "j")]), 3, 2).await;
    wait_until("5 entries", Duration::from_secs(5), || r.entry_count() == 5).await;
    let mut tenants: Vec<_> = r
        .streams()
        .iter()
        .map(|s| {
            (
                s.tenant.clone().unwrap(),
                s.entries.len(),
                s.labels.contains_key("__tenant_id__"),
            )
        })
        .collect();
    tenants.sort();
    assert_eq!(
        tenants,
        vec![("default".into(), 2, false), ("other".into(), 3, false)]
    );
    client.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_429_500_down_and_hang_without_losing_or_acking_early() {
    let r = LokiReceiver::start();
    let mut s = settings(&r);
    s.timeout = Duration::from_millis(300);
    let client = Client::start(s).unwrap();
    let p = Progress::new(0);
    let l = labels(&[("job", "j")]);
    let mut sent = 0;
    for mode in [Mode::Status(429), Mode::Status(500), Mode::Down, Mode::Hang] {
        r.set_mode(mode);
        let before = r.requests();
        send_lines(&client, &p, &l, sent, 50).await;
        sent += 50;
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(
            p.committed(),
            sent as u64 - 50,
            "{mode:?}: nothing acked while failing"
        );
        if mode != Mode::Down {
            assert!(r.requests() >= before + 2, "{mode:?}: retried");
        }
        r.set_mode(Mode::Accept);
        wait_until("acks after recovery", Duration::from_secs(5), || {
            p.committed() == sent as u64
        })
        .await;
    }
    assert_eq!(r.entry_count(), sent, "exactly once: {:?}", r.lines().len());
    assert!(r.problems().is_empty(), "{:?}", r.problems());
    assert!(client.metrics().batch_retries() >= 4);
    client.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_headers_are_sent_but_never_replace_the_shippers_own() {
    let r = LokiReceiver::start();
    let mut s = settings(&r);
    s.tenant_id = Some("team-a".into());
    s.headers = vec![
        ("x-custom".into(), "yes".into()),
        ("x-scope-orgid".into(), "forged".into()),
        ("content-type".into(), "text/plain".into()),
    ];
    let client = Client::start(s).unwrap();
    let p = Progress::new(0);
    send_lines(&client, &p, &labels(&[("job", "j")]), 0, 3).await;
    wait_until("3 entries", Duration::from_secs(5), || r.entry_count() == 3).await;
    let h = r.last_headers();
    let get = |name: &str| -> Vec<&str> {
        h.iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(get("x-custom"), ["yes"], "{h:?}");
    assert_eq!(get("x-scope-orgid"), ["team-a"], "{h:?}");
    assert_eq!(get("content-type"), ["application/x-protobuf"], "{h:?}");
    client.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_of_streams_past_max_streams_are_dropped_and_acked() {
    let r = LokiReceiver::start();
    let mut s = settings(&r);
    s.max_streams = 2;
    s.batch_wait = Duration::from_millis(300);
    let client = Client::start(s).unwrap();
    let p = Progress::new(0);
    // Three streams in one batch: the third one's entries are dropped.
    send_lines(&client, &p, &labels(&[("job", "a")]), 0, 5).await;
    send_lines(&client, &p, &labels(&[("job", "b")]), 5, 5).await;
    send_lines(&client, &p, &labels(&[("job", "c")]), 10, 5).await;
    send_lines(&client, &p, &labels(&[("job", "a")]), 15, 5).await;
    wait_until("every entry acked", Duration::from_secs(5), || {
        p.committed() == 20
    })
    .await;
    wait_until("15 entries", Duration::from_secs(5), || {
        r.entry_count() == 15
    })
    .await;
    let mut jobs: Vec<_> = r
        .streams()
        .iter()
        .map(|st| (st.labels["job"].clone(), st.entries.len()))
        .collect();
    jobs.sort();
    assert_eq!(jobs, [("a".to_string(), 10), ("b".to_string(), 5)]);
    assert_eq!(
        client.metrics().dropped_entries(DropReason::StreamLimited),
        5
    );
    // A new batch has room for the stream again.
    send_lines(&client, &p, &labels(&[("job", "c")]), 20, 2).await;
    wait_until("17 entries", Duration::from_secs(5), || {
        r.entry_count() == 17
    })
    .await;
    client.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_drops_the_batch_and_counts_it() {
    let r = LokiReceiver::start();
    let mut s = settings(&r);
    s.url = localhost_url(&r);
    let client = Client::start(s).unwrap();
    let p = Progress::new(0);
    r.set_mode(Mode::Status(400));
    send_lines(&client, &p, &labels(&[("job", "j")]), 0, 10).await;
    wait_until("the drop", Duration::from_secs(5), || p.committed() == 10).await;
    assert_eq!(r.requests(), 1, "a 400 is not retried");
    assert_eq!(
        client.metrics().dropped_entries(DropReason::IngesterError),
        10
    );
    let text = metrics_text();
    let port = r.addr().port();
    assert!(
        text.contains(&format!(
            "promtail_dropped_entries_total{{host=\"localhost:{port}\",reason=\"ingester_error\"}} 10"
        )),
        "{text}"
    );
    assert!(text.contains(&format!(
        "promtail_request_duration_seconds_count{{host=\"localhost:{port}\",status_code=\"400\"}} 1"
    )));
    client.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_exhausted_drop_counted_and_stop_never_acks_unsent() {
    let r = LokiReceiver::start();
    let mut s = settings(&r);
    s.backoff.max_retries = 2;
    let client = Client::start(s).unwrap();
    let p = Progress::new(0);
    r.set_mode(Mode::Status(429));
    send_lines(&client, &p, &labels(&[("job", "j")]), 0, 5).await;
    wait_until("the drop", Duration::from_secs(5), || p.committed() == 5).await;
    assert_eq!(r.requests(), 3, "first try and two retries");
    assert_eq!(client.metrics().dropped_entries(DropReason::RateLimited), 5);

    // Stopping while Loki fails: the unsent entries stay unacknowledged.
    let mut s = settings(&r);
    s.backoff.max_retries = 0;
    let client = Client::start(s).unwrap();
    let p = Progress::new(0);
    send_lines(&client, &p, &labels(&[("job", "j")]), 0, 5).await;
    client.stop(Duration::from_millis(300)).await;
    assert_eq!(p.committed(), 0, "the acks were dropped, not completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_flushes_what_is_batched() {
    let r = LokiReceiver::start();
    let mut s = settings(&r);
    s.batch_wait = Duration::from_secs(60);
    let client = Client::start(s).unwrap();
    let p = Progress::new(0);
    send_lines(&client, &p, &labels(&[("job", "j")]), 0, 7).await;
    client.stop(Duration::from_secs(5)).await;
    assert_eq!(r.entry_count(), 7);
    assert_eq!(p.committed(), 7);
}

#[tokio::test]
async fn bad_settings_are_errors_naming_the_setting() {
    let e = Client::start(ClientSettings {
        url: "localhost:3100/push".into(),
        ..Default::default()
    })
    .err()
    .unwrap();
    assert!(e.contains("scheme"), "{e}");
    let e = Client::start(ClientSettings {
        url: "http://x/push".into(),
        bearer_token: Some("a".into()),
        bearer_token_file: Some("/b".into()),
        ..Default::default()
    })
    .err()
    .unwrap();
    assert!(e.contains("bearer_token & bearer_token_file"), "{e}");
}

/// A Loki 3.x with `allow_structured_metadata: false` answers 400 for the
/// entries carrying metadata (storing the others of the push); the batch
/// goes again without metadata, so every line is stored once, and the
/// client sends no metadata from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_metadata_refused_by_loki_is_resent_without_it() {
    let r = LokiReceiver::start_refusing_structured_metadata();
    let mut s = settings(&r);
    s.url = localhost_url(&r);
    let client = Client::start(s).unwrap();
    let p = Progress::new(0);
    let tx = client.sender();
    let send = |from: usize, n: usize| {
        let (tx, p) = (tx.clone(), Arc::clone(&p));
        async move {
            for i in from..from + n {
                let mut e = Entry::new(labels(&[("job", "sm")]), format!("line {i}"));
                if i % 2 == 0 {
                    e.structured_metadata = vec![("trace_id".into(), format!("t{i}"))];
                }
                e.ack = Some(p.track(i as u64 + 1));
                tx.send(e).await.unwrap();
            }
        }
    };
    send(0, 10).await;
    // The saved position never passes what Loki stored.
    wait_until("the first batch", Duration::from_secs(5), || {
        let committed = p.committed();
        assert!(
            committed as usize <= r.entry_count(),
            "acked {committed} with {} stored",
            r.entry_count()
        );
        committed == 10
    })
    .await;
    assert_eq!(r.requests(), 2, "refused once, resent once");
    assert_eq!(r.counts().rejected_entries, 5, "the entries with metadata");
    assert_eq!(r.duplicates_dropped(), 5, "those stored by the first push");
    send(10, 10).await;
    wait_until("the second batch", Duration::from_secs(5), || {
        p.committed() == 20
    })
    .await;
    assert_eq!(r.requests(), 3, "later batches go without metadata at once");
    let streams = r.streams();
    assert_eq!(streams.len(), 1);
    let stored: Vec<&str> = streams[0].entries.iter().map(|e| e.line.as_str()).collect();
    let mut expected: Vec<String> = (0..20).map(|i| format!("line {i}")).collect();
    let mut got: Vec<String> = stored.iter().map(|l| l.to_string()).collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "every line stored exactly once");
    assert!(streams[0]
        .entries
        .iter()
        .all(|e| e.structured_metadata.is_empty()));
    assert_eq!(
        client.metrics().dropped_entries(DropReason::IngesterError),
        0
    );
    assert_eq!(client.metrics().metadata_stripped_entries(), 10);
    let text = metrics_text();
    let host = format!("localhost:{}", r.addr().port());
    assert!(
        text.contains(&format!(
            "log_shipper_structured_metadata_stripped_entries_total{{host=\"{host}\"}} 10"
        )),
        "{text}"
    );
    client.stop(Duration::from_secs(1)).await;
}
