//! A real Prometheus scrapes our exporter, and promtool finds nothing in our
//! /metrics that node_exporter's own output does not have too.

use std::collections::BTreeSet;
use std::time::Duration;

use e2e_tests::assert_no_problems;
use e2e_tests::exporters::{
    all_our_collectors, collectors_under_test, sample_textfile_dir, Exporter,
};
use e2e_tests::http::PROMETHEUS_SCRAPE_ACCEPT;
use e2e_tests::process::wait_until;
use e2e_tests::prometheus::{promtool_check_metrics, Prometheus, ScrapeTarget};

#[test]
fn prometheus_scrapes_our_exporter() {
    let textfiles = sample_textfile_dir();
    let collectors = collectors_under_test(&all_our_collectors());
    let ours = Exporter::ours(&collectors, textfiles.path());
    let prom = Prometheus::start(&[ScrapeTarget {
        job: "node",
        address: &ours.addr,
    }]);
    let mut problems = Vec::new();

    // Prometheus 2.42 asks for OpenMetrics first (the Accept header below),
    // so `up == 1` also says it parsed our OpenMetrics answer.
    let up = wait_until(r#"up{job="node"} == 1"#, Duration::from_secs(30), || {
        Ok(!prom.query(r#"up{job="node"} == 1"#)?.is_empty())
    });
    if let Err(e) = up {
        problems.push(format!("{e}\n  targets: {:?}", prom.targets()));
    }
    match prom.targets() {
        Ok(targets) => match targets.iter().find(|t| t.job == "node") {
            Some(t) if t.health == "up" && t.last_error.is_empty() => {}
            Some(t) => problems.push(format!(
                "target {} is {:?}, last error {:?}",
                t.instance, t.health, t.last_error
            )),
            None => problems.push(format!("no target of job node in {targets:?}")),
        },
        Err(e) => problems.push(e),
    }
    match prom.query(r#"scrape_samples_scraped{job="node"}"#) {
        Ok(s) if s.first().is_some_and(|s| s.value > 0.0) => {}
        other => problems.push(format!("no samples ingested from ours: {other:?}")),
    }

    let r = ours.get_metrics(PROMETHEUS_SCRAPE_ACCEPT);
    if !r.content_type.starts_with("application/openmetrics-text") {
        problems.push(format!(
            "asked with Prometheus' Accept header, ours answered Content-Type {:?}, not OpenMetrics",
            r.content_type
        ));
    }
    if !r.body.ends_with("# EOF\n") {
        problems.push("the OpenMetrics answer does not end with \"# EOF\"".into());
    }

    if !problems.is_empty() {
        problems.push(ours.log_tail(20));
        problems.push(prom.log_tail(20));
    }
    problems.extend(ours.dropped_report());
    assert_no_problems("Prometheus scraping our exporter", &problems);
}

/// `promtool check metrics` lints names too; node_exporter's own names
/// (`node_memory_MemTotal_bytes`: camelCase, `node_entropy_*_bits`: not
/// bytes) draw complaints that no drop-in can avoid. Those that node_exporter
/// 1.5.0's output on this machine draws word for word are tolerated; any other
/// complaint, and any parse error, fails.
#[test]
fn promtool_finds_no_problem_node_exporter_does_not_share() {
    let textfiles = sample_textfile_dir();
    let collectors = collectors_under_test(&all_our_collectors());
    let ours = Exporter::ours(&collectors, textfiles.path());
    let theirs = Exporter::reference(&collectors, textfiles.path());

    let our_lint = promtool_check_metrics(&ours.metrics_text());
    let their_lint = promtool_check_metrics(&theirs.metrics_text());
    assert!(
        matches!(their_lint.exit_code, 0 | 3),
        "promtool cannot read node_exporter's own output: {their_lint:?}"
    );
    let mut tolerated: BTreeSet<&String> = their_lint.problems.iter().collect();
    // Fields that node_exporter's current default --collector.netstat.fields
    // exports and 1.5.0's does not: the same kernel-given camelCase as the
    // other netstat names that 1.5.0 draws complaints for.
    let newer_netstat_fields: Vec<String> = ["TcpExt_TCPOFOQueue", "TcpExt_TCPRcvQDrop"]
        .iter()
        .map(|f| {
            format!(
                "node_netstat_{f} metric names should be written in 'snake_case' not 'camelCase'"
            )
        })
        .collect();
    tolerated.extend(newer_netstat_fields.iter());

    let mut problems = ours.dropped_report();
    if !matches!(our_lint.exit_code, 0 | 3) {
        problems.push(format!(
            "promtool check metrics exited {} (it could not parse our output)",
            our_lint.exit_code
        ));
    }
    let (shared, own): (Vec<&String>, Vec<&String>) = our_lint
        .problems
        .iter()
        .partition(|p| tolerated.contains(p));
    problems.extend(own.iter().map(|p| format!("promtool: {p}")));
    eprintln!(
        "promtool: {} complaint(s) about ours that node_exporter draws too (tolerated), {} of our own",
        shared.len(),
        own.len()
    );
    assert_no_problems("promtool check metrics on our /metrics", &problems);
}
