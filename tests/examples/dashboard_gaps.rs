//! Which "Node Exporter Full" queries return nothing for one exporter:
//!
//!     cargo run -p e2e-tests --example dashboard_gaps            # ours
//!     cargo run -p e2e-tests --example dashboard_gaps reference  # node_exporter 1.5.0
//!
//! Each runs every collector it has that ours has too (`E2E_COLLECTORS`
//! narrows it); the dashboard is `$DASHBOARD_JSON` or the shared copy.

use std::time::Duration;

use e2e_tests::dashboard::{
    node_exporter_full_path, Dashboard, Evaluation, SCRAPES_BEFORE_QUERYING,
};
use e2e_tests::exporters::{
    all_our_collectors, collectors_under_test, sample_textfile_dir, Exporter,
};
use e2e_tests::prometheus::{Prometheus, ScrapeTarget};

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "ours".into());
    let dashboard = Dashboard::load(&node_exporter_full_path());
    let textfiles = sample_textfile_dir();
    let collectors = collectors_under_test(&all_our_collectors());
    let exporter = match which.as_str() {
        "ours" => Exporter::ours(&collectors, textfiles.path()),
        "reference" => Exporter::reference(&collectors, textfiles.path()),
        other => panic!("usage: dashboard_gaps [ours|reference] (not {other:?})"),
    };
    for line in exporter.dropped_report() {
        println!("{line}");
    }
    let target = ScrapeTarget {
        job: "node",
        address: &exporter.addr,
    };
    let prom = Prometheus::start(&[target]);
    prom.wait_for_scrapes(&["node"], SCRAPES_BEFORE_QUERYING, Duration::from_secs(40));
    let answers = Evaluation::run(&prom, &dashboard, &target);
    let unanswered = answers.unanswered();
    for (key, _) in &unanswered {
        println!("{}", answers.describe(&dashboard, key));
    }
    println!(
        "{which}: {} of {} dashboard queries return nothing",
        unanswered.len(),
        answers.answers.len()
    );
}
