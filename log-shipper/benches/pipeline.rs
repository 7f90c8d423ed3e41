//! regex + labels + timestamp on an nginx access-log line: the issue's
//! 200,000 parsed lines/s per core target is 5 µs per line, all included
//! (building the entry as a tailer would, running it, handing it on).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use log_shipper::entry::{Entry, LabelSet};
use log_shipper::pipeline::{Pipeline, StageConfig};

const STAGES: &str = r#"
- regex:
    expression: '^(?P<remote_addr>[\w\.:]+) - (?P<remote_user>\S+) \[(?P<time_local>[^\]]+)\] "(?P<method>\S+) (?P<request_uri>\S+) (?P<protocol>\S+)" (?P<status>\d{3}) (?P<body_bytes_sent>\d+) "(?P<http_referer>[^"]*)" "(?P<http_user_agent>[^"]*)"'
- labels:
    method:
    status:
- timestamp:
    source: time_local
    format: 02/Jan/2006:15:04:05 -0700
"#;

const LINE: &str = r#"203.0.113.9 - - [10/Oct/2023:13:55:36 +0200] "GET /api/v1/products?page=2 HTTP/1.1" 200 5123 "https://shop.example.com/" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0 Safari/537.36""#;

fn nginx(c: &mut Criterion) {
    let stages: Vec<StageConfig> = serde_yaml_ng::from_str(STAGES).unwrap();
    let mut pipeline = Pipeline::new(&stages, "nginx").unwrap();
    let target: LabelSet = [("job", "nginx"), ("filename", "/var/log/nginx/access.log")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut out = Vec::with_capacity(1);
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(1));
    g.bench_function("nginx_regex_labels_timestamp", |b| {
        b.iter(|| {
            pipeline.process(Entry::new(target.clone(), LINE.to_string()), &mut out);
            black_box(out.pop());
        })
    });
    // The same pipeline a stage at a time, to see where the time goes.
    let all: Vec<StageConfig> = serde_yaml_ng::from_str(STAGES).unwrap();
    for (name, n) in [("regex_only", 1), ("regex_labels", 2)] {
        let mut p = Pipeline::new(&all[..n], "nginx").unwrap();
        g.bench_function(name, |b| {
            b.iter(|| {
                p.process(Entry::new(target.clone(), LINE.to_string()), &mut out);
                black_box(out.pop());
            })
        });
    }
    let mut plain = Pipeline::new(&[], "plain").unwrap();
    g.bench_function("no_stages", |b| {
        b.iter(|| {
            plain.process(Entry::new(target.clone(), LINE.to_string()), &mut out);
            black_box(out.pop());
        })
    });
    g.finish();
}

criterion_group!(benches, nginx);
criterion_main!(benches);
