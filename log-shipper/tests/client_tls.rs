//! The client over HTTPS: ca_file, server_name, insecure_skip_verify and a
//! client certificate (cert_file, key_file) against the receiver with TLS.

use std::path::Path;
use std::time::Duration;

use e2e_tests::loki_receiver::{LokiReceiver, ReceiverTls};
use log_shipper::ack::Progress;
use log_shipper::client::{BackoffSettings, Client, ClientSettings, DropReason, TlsSettings};
use log_shipper::entry::{Entry, LabelSet};

#[path = "common/test_ca.rs"]
mod test_ca;
use test_ca::TestCa;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Pushes one entry; true when Loki accepted it, false when it was
/// dropped after the (single) retry.
async fn push_one(settings: ClientSettings) -> bool {
    let client = Client::start(settings).unwrap();
    // Metrics are per host, shared by the clients of this test.
    let sent_before = client.metrics().sent_entries();
    let dropped_before = client.metrics().dropped_entries(DropReason::IngesterError);
    let p = Progress::new(0);
    let mut labels = LabelSet::new();
    labels.insert("job".into(), "tls".into());
    let mut e = Entry::new(labels, "over tls".into());
    e.ack = Some(p.track(1));
    client.sender().send(e).await.unwrap();
    for _ in 0..200 {
        if p.committed() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let accepted = client.metrics().sent_entries() > sent_before;
    let dropped = client.metrics().dropped_entries(DropReason::IngesterError) > dropped_before;
    client.stop(Duration::from_millis(100)).await;
    assert!(accepted != dropped, "exactly one of sent or dropped");
    accepted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_ca_file_server_name_insecure_and_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (cert, key) = ca.sign("localhost");
    let r = LokiReceiver::start_tls(ReceiverTls {
        cert_pem: cert,
        key_pem: key,
        client_ca_pem: None,
    });
    let url = r.push_url().replace("127.0.0.1", "localhost");
    let ca_file = write(dir.path(), "ca.pem", &ca.pem);
    let base = ClientSettings {
        url: url.clone(),
        batch_wait: Duration::from_millis(20),
        backoff: BackoffSettings {
            min_period: Duration::from_millis(10),
            max_period: Duration::from_millis(10),
            max_retries: 1,
        },
        ..Default::default()
    };
    let with = |tls: TlsSettings| ClientSettings {
        tls,
        ..base.clone()
    };
    assert!(
        push_one(with(TlsSettings {
            ca_file: Some(ca_file.clone()),
            ..Default::default()
        }))
        .await,
        "trusted through ca_file"
    );
    assert!(
        !push_one(with(TlsSettings::default())).await,
        "an unknown CA is refused"
    );
    assert!(
        !push_one(with(TlsSettings {
            ca_file: Some(ca_file.clone()),
            server_name: Some("other.example".into()),
            ..Default::default()
        }))
        .await,
        "server_name is checked"
    );
    assert!(
        push_one(with(TlsSettings {
            insecure_skip_verify: true,
            ..Default::default()
        }))
        .await,
        "insecure_skip_verify accepts any certificate"
    );
    assert_eq!(r.entry_count(), 2);

    // A receiver that wants client certificates.
    let (cert, key) = ca.sign("localhost");
    let r = LokiReceiver::start_tls(ReceiverTls {
        cert_pem: cert,
        key_pem: key,
        client_ca_pem: Some(ca.pem.clone()),
    });
    let base = ClientSettings {
        url: r.push_url().replace("127.0.0.1", "localhost"),
        ..base
    };
    let (client_cert, client_key) = ca.sign("shipper.example");
    let tls = TlsSettings {
        ca_file: Some(ca_file.clone()),
        cert_file: Some(write(dir.path(), "client.pem", &client_cert)),
        key_file: Some(write(dir.path(), "client.key", &client_key)),
        ..Default::default()
    };
    assert!(
        push_one(ClientSettings {
            tls: tls.clone(),
            ..base.clone()
        })
        .await,
        "client certificate accepted"
    );
    assert!(
        !push_one(ClientSettings {
            tls: TlsSettings {
                cert_file: None,
                key_file: None,
                ..tls
            },
            ..base
        })
        .await,
        "no client certificate, no push"
    );
    assert_eq!(r.entry_count(), 1);
}
