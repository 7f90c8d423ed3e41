//! promtail configs in the style users write load unchanged, check clean and
//! behave as promtail would on sample lines; broken configs fail with the
//! file, line and key named.

use std::path::{Path, PathBuf};

use chrono::TimeZone;
use log_shipper::config::{self, Config};
use log_shipper::discovery::{self, Group};
use log_shipper::entry::{Entry, LabelSet};
use log_shipper::pipeline::Pipeline;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/promtail")
        .join(name)
}

fn load_ok(name: &str, expand_env: bool) -> Config {
    let cfg = config::load(&fixture(name), expand_env).unwrap_or_else(|e| panic!("{e}"));
    cfg.check_all().unwrap_or_else(|e| panic!("{name}: {e}"));
    // What -print-config-stderr prints loads again to the same config.
    let again =
        config::from_str(&cfg.to_yaml()).unwrap_or_else(|e| panic!("{name} printed back: {e}"));
    assert_eq!(again.to_yaml(), cfg.to_yaml());
    cfg
}

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn run(p: &mut Pipeline, l: LabelSet, line: &str) -> Option<Entry> {
    let mut out = Vec::new();
    p.process(Entry::new(l, line.into()), &mut out);
    out.pop()
}

#[test]
fn install_docs_config() {
    let cfg = load_ok("ok-static-varlogs.yaml", false);
    assert_eq!(cfg.server.http_listen_port, 9080);
    let t = discovery::static_targets(&cfg.scrape_configs[0]);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].path(), "/var/log/*log");
    assert_eq!(t[0].public_labels(), labels(&[("job", "varlogs")]));
}

#[test]
fn nginx_access_log_pipeline() {
    let cfg = load_ok("ok-nginx-regex-timestamp.yaml", false);
    assert_eq!(cfg.limits_config.max_line_size.bytes(), 256 * 1024);
    assert_eq!(cfg.clients[0].external_labels["host"], "web1");
    assert_eq!(
        cfg.clients[0].backoff_config.max_period.get().as_secs(),
        300
    );
    let sc = &cfg.scrape_configs[0];
    let t = discovery::static_targets(sc);
    assert_eq!(t[0].path_exclude(), Some("/var/log/nginx/*.gz"));
    let mut p = Pipeline::new(&sc.pipeline_stages, &sc.job_name).unwrap();
    let e = run(
        &mut p,
        t[0].public_labels(),
        r#"203.0.113.9 - - [10/Oct/2023:13:55:36 +0200] "GET /index.html HTTP/1.1" 200 512 "-" "curl/8.0""#,
    )
    .unwrap();
    assert_eq!(
        e.labels,
        labels(&[("job", "nginx"), ("method", "GET"), ("status", "200")])
    );
    let secs = e
        .timestamp
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(secs, 1_696_938_936, "10/Oct/2023:13:55:36 +0200");
    assert!(run(&mut p, t[0].public_labels(), r#"10.0.0.1 - - [10/Oct/2023:13:55:36 +0200] "GET /healthz HTTP/1.1" 200 2 "-" "kube-probe""#).is_none());
    // A line the regex does not match passes unchanged.
    let e = run(
        &mut p,
        t[0].public_labels(),
        "2023/10/10 13:55:36 [error] 12#12: oops",
    )
    .unwrap();
    assert_eq!(e.labels, labels(&[("job", "nginx")]));
}

#[test]
fn file_sd_relabel_and_json() {
    let cfg = load_ok("ok-file-sd-json-relabel.yaml", false);
    let sc = &cfg.scrape_configs[0];
    assert_eq!(sc.file_sd_configs[0].refresh_interval.get().as_secs(), 60);
    let group = |file: &str, env: &str| Group {
        targets: vec!["localhost".into()],
        labels: labels(&[
            ("__path__", "/srv/shop/*.log"),
            ("__meta_filepath", file),
            ("env", env),
            ("app_name", "shop"),
            ("team", "Checkout"),
        ]),
    };
    let t = discovery::resolve(
        &sc.job_name,
        &[
            group("/etc/promtail/targets.d/shop.yml", "prod"),
            group("/etc/promtail/targets.d/shop-dev.json", "dev"),
        ],
        &sc.relabel_configs,
    );
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(
        t[0].public_labels(),
        labels(&[
            ("env", "prod"),
            ("instance", "localhost"),
            ("name", "shop"),
            ("target_file", "shop"),
            ("team", "checkout")
        ])
    );
    let mut p = Pipeline::new(&sc.pipeline_stages, &sc.job_name).unwrap();
    let e = run(
        &mut p,
        t[0].public_labels(),
        r#"{"level":"error","message":"payment failed","@timestamp":"2024-03-01T10:00:00.5Z","context":{"user":{"id":42}}}"#,
    )
    .unwrap();
    assert_eq!(e.line, "payment failed");
    assert_eq!(e.labels["level"], "error");
    let ms = e
        .timestamp
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert_eq!(ms, 1_709_287_200_500);
}

#[test]
fn env_expansion_and_later_sources_are_kept() {
    std::env::set_var("LOKI_HOST", "loki.internal");
    std::env::remove_var("POSITIONS_DIR");
    let cfg = load_ok("ok-syslog-logfmt-drop.yaml", true);
    assert_eq!(
        cfg.clients[0].url,
        "http://loki.internal:3100/loki/api/v1/push"
    );
    assert_eq!(
        cfg.positions.filename,
        PathBuf::from("/var/lib/promtail/positions.yaml")
    );
    assert_eq!(
        cfg.scrape_configs[2].docker_sd_configs[0].host,
        "unix:///var/run/docker.sock"
    );
    assert_eq!(
        cfg.scrape_configs[3]
            .journal
            .as_ref()
            .unwrap()
            .max_age
            .get()
            .as_secs(),
        12 * 3600
    );
    let y = cfg.to_yaml();
    assert!(
        y.contains("docker_sd_configs") && y.contains("journal"),
        "{y}"
    );

    let sc = &cfg.scrape_configs[0];
    let mut p = Pipeline::new(&sc.pipeline_stages, &sc.job_name).unwrap();
    let berlin = chrono_tz::Europe::Berlin;
    let mut now = chrono::Utc::now().with_timezone(&berlin);
    // A local time in the hour repeated when clocks go back names two
    // instants: take one that names only one.
    while berlin
        .from_local_datetime(&now.naive_local())
        .single()
        .is_none()
    {
        now -= chrono::Duration::hours(1);
    }
    let syslog_time = |t: chrono::DateTime<chrono_tz::Tz>| t.format("%b %e %H:%M:%S").to_string();
    let stamp = syslog_time(now);
    let e = run(
        &mut p,
        labels(&[("job", "auth")]),
        &format!("{stamp} web1 sshd[811]: Accepted publickey for ann"),
    )
    .unwrap();
    assert_eq!(
        e.labels,
        labels(&[("job", "auth"), ("app", "sshd"), ("source", "syslog")])
    );
    let got = e
        .timestamp
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (got - now.timestamp()).abs() <= 1,
        "syslog time in Europe/Berlin, this year"
    );
    assert!(run(
        &mut p,
        labels(&[("job", "auth")]),
        &format!("{stamp} web1 CRON[9]: session opened")
    )
    .is_none());
    // Three days ago is older than the drop stage's 24 h on any date: a
    // year-less time is placed in this year, or in the one before when it
    // is December's read in January (and a fixed "Jan  1" read in December
    // is placed in the next year, as promtail does: not old at all).
    let long_ago = syslog_time(now - chrono::Duration::days(3));
    assert!(
        run(
            &mut p,
            labels(&[("job", "auth")]),
            &format!("{long_ago} web1 sshd[1]: long ago")
        )
        .is_none(),
        "{long_ago}, three days before {stamp}, is dropped as older than 24h"
    );

    let sc = &cfg.scrape_configs[1];
    let mut p = Pipeline::new(&sc.pipeline_stages, &sc.job_name).unwrap();
    let e = run(
        &mut p,
        labels(&[("job", "app"), ("filename", "/srv/app/logs/a.log")]),
        "level=warn comp=db msg=slow",
    )
    .unwrap();
    assert_eq!(
        e.labels,
        labels(&[("job", "app"), ("level", "warn"), ("component", "db")])
    );
}

fn load_err(name: &str) -> String {
    let e = config::load(&fixture(name), false)
        .and_then(|c| c.check_all().map(|_| c))
        .expect_err(name)
        .to_string();
    assert!(
        e.starts_with(&fixture(name).display().to_string()),
        "file not named: {e}"
    );
    e
}

#[test]
fn bad_configs_name_file_line_and_key() {
    let e = load_err("bad-unknown-key.yaml");
    assert!(
        e.contains(".yaml:9:9: ")
            && e.contains("scrape_configs[0].static_configs[0]: unknown field `lables`"),
        "{e}"
    );
    let e = load_err("bad-wrong-type.yaml");
    assert!(
        e.contains(":7:")
            && e.contains("clients[0].batchwait")
            && e.contains("invalid duration \"soon\""),
        "{e}"
    );
    let e = load_err("bad-regex.yaml");
    assert!(
        e.contains(":7:")
            && e.contains("pipeline_stages[0].regex")
            && e.contains("invalid regular expression"),
        "{e}"
    );
    let e = load_err("bad-stage-two-keys.yaml");
    assert!(
        e.contains(":6:") && e.contains("pipeline_stages[0]") && e.contains("only one key"),
        "{e}"
    );
    let e = load_err("bad-relabel-action.yaml");
    assert!(
        e.contains(":6:")
            && e.contains("relabel_configs")
            && e.contains("unknown relabel action \"rename\""),
        "{e}"
    );
    let e = load_err("bad-unknown-stage.yaml");
    assert!(
        e.contains(":6:") && e.contains("unknown variant `regexp`"),
        "{e}"
    );
    let e = config::load(&fixture("missing.yaml"), false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing.yaml") && e.contains("cannot read config"),
        "{e}"
    );
}
