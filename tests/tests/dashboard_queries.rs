//! The "Node Exporter Full" dashboard against one real Prometheus scraping
//! both exporters: every query that returns data for node_exporter 1.5.0
//! (job "node") returns data for ours (job "ours").

use std::time::Duration;

use e2e_tests::assert_no_problems;
use e2e_tests::dashboard::{
    node_exporter_full_path, Dashboard, Evaluation, SCRAPES_BEFORE_QUERYING,
};
use e2e_tests::exporters::{
    all_our_collectors, collectors_under_test, sample_textfile_dir, Exporter,
};
use e2e_tests::prometheus::{Prometheus, ScrapeTarget};

#[test]
fn dashboard_queries_answer_for_ours_where_they_do_for_node_exporter() {
    let dashboard = Dashboard::load(&node_exporter_full_path());
    let textfiles = sample_textfile_dir();
    // Each exporter runs every collector it has that ours has too, including
    // those off by default the dashboard reads (processes, interrupts, ...).
    let collectors = collectors_under_test(&all_our_collectors());
    let ours = Exporter::ours(&collectors, textfiles.path());
    let theirs = Exporter::reference(&collectors, textfiles.path());
    let our_target = ScrapeTarget {
        job: "ours",
        address: &ours.addr,
    };
    let their_target = ScrapeTarget {
        job: "node",
        address: &theirs.addr,
    };
    let prom = Prometheus::start(&[our_target, their_target]);
    prom.wait_for_scrapes(
        &["ours", "node"],
        SCRAPES_BEFORE_QUERYING,
        Duration::from_secs(40),
    );

    let mut their_answers = Evaluation::run(&prom, &dashboard, &their_target);
    let mut our_answers = Evaluation::run(&prom, &dashboard, &our_target);
    let gaps = |theirs: &Evaluation, ours: &Evaluation| -> Vec<String> {
        theirs
            .answers
            .keys()
            .filter(|k| theirs.is_answered(k) && !ours.is_answered(k))
            .cloned()
            .collect()
    };
    // Some queries follow a moving machine (`node_tcp_connection_states` of
    // a state that comes and goes, `rate(...) > 0`): a gap counts only if
    // ours never answers it while node_exporter still does, over a few
    // scrapes.
    for _ in 0..3 {
        let g = gaps(&their_answers, &our_answers);
        if g.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
        our_answers.recheck(&prom, &g);
        their_answers.reask(&prom, &g);
    }

    let total = their_answers.answers.len();
    eprintln!(
        "dashboard queries (panels and variables) answered: node_exporter {} of {total}, ours {} of {total}",
        their_answers.answered_count(),
        our_answers.answered_count()
    );
    let mut problems = ours.dropped_report();
    problems.extend(
        gaps(&their_answers, &our_answers)
            .iter()
            .map(|k| format!("no data for ours: {}", our_answers.describe(&dashboard, k))),
    );
    assert_no_problems(
        "dashboard queries that return data for node_exporter but not for ours",
        &problems,
    );
}
