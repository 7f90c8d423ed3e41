//! The alert path end to end, on loopback: our exporter -> a real Prometheus
//! loaded with `alert-rules/rules/` -> a real Alertmanager with the config
//! rendered from `alert-rules/alertmanager/alertmanager.yml.j2` -> a local
//! stand-in for Slack's webhook that records what it receives.
//!
//! Test-only settings: every `for:` divided by 60 (see `e2e_tests::rules`),
//! Prometheus scraping and evaluating every second, and Alertmanager's
//! group_wait / group_interval set through the template's variables. A
//! second stand-in receives the heartbeat (the Watchdog alert).

use std::time::{Duration, Instant};

use e2e_tests::alertmanager::{describe, Alertmanager};
use e2e_tests::assert_no_problems;
use e2e_tests::process::{free_port, wait_until};
use e2e_tests::prometheus::{Prometheus, ScrapeTarget};
use e2e_tests::rules::render_rules_for_test;
use e2e_tests::slack::{SlackMessage, SlackReceiver};
use e2e_tests::tmpfs_host::{TmpfsHost, DISK_SIZE};
use regex::Regex;
use serde_json::Value;

const CHANNEL: &str = "#e2e-alerts";
/// The base the repository's rules write their absolute runbook links with
/// (the Ansible role replaces it by the inventory's).
const RUNBOOK_BASE: &str = "https://github.com/fleet-monitoring/fleet-monitoring/blob/main/";
const GROUP_INTERVAL: Duration = Duration::from_secs(2);
/// Bound on every wait for a notification.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(40);

/// With example-vars.yml's receivers and routes (the database servers,
/// inventory group `db`, go to the `dba` receiver's channel).
fn start_alertmanager(slack: &SlackReceiver, heartbeat: &SlackReceiver) -> Alertmanager {
    Alertmanager::start(&[
        ("alertmanager_slack_api_url", &slack.url),
        ("alertmanager_slack_channel", CHANNEL),
        ("alertmanager_heartbeat_url", &heartbeat.url),
        ("alertmanager_heartbeat_interval", "2s"),
        ("alertmanager_group_wait", "1s"),
        ("alertmanager_group_interval", "2s"),
    ])
}

/// The heartbeat receiver got the Watchdog alert, and Slack never did.
fn heartbeat_problems(slack: &SlackReceiver, heartbeat: &SlackReceiver) -> Vec<String> {
    let mut p = Vec::new();
    let beats = heartbeat.messages();
    if !beats
        .iter()
        .any(|m| m.body["commonLabels"]["alertname"] == "Watchdog")
    {
        p.push(format!(
            "the heartbeat receiver got no Watchdog alert:\n{}",
            heartbeat.dump()
        ));
    }
    for m in &beats {
        if m.body["commonLabels"]["alertname"] != "Watchdog" {
            p.push(format!("the heartbeat receiver got {}", m.body));
        }
    }
    for m in slack.messages() {
        if m.title().contains("Watchdog") {
            p.push(format!("Watchdog reached Slack: {}", m.title()));
        }
    }
    p
}

/// What every message must look like to be read in Slack: our channel, one
/// attachment with title, text, fallback, and a colour for the status.
fn slack_format_problems(m: &SlackMessage) -> Vec<String> {
    let mut p = Vec::new();
    if m.body["channel"] != CHANNEL {
        p.push(format!("channel is {}, not {CHANNEL}", m.body["channel"]));
    }
    if m.path != "/services/T0/B0/e2e" {
        p.push(format!("posted to {}, not the webhook path", m.path));
    }
    for field in ["title", "text", "fallback", "color"] {
        if m.attachment(field).is_empty() {
            p.push(format!("attachment has no {field}: {}", m.body));
        }
    }
    p
}

fn alerts_for_instance(am: &Alertmanager, instance: &str) -> Vec<Value> {
    am.alerts()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["labels"]["instance"] == instance)
        .collect()
}

#[test]
fn exporter_down_disk_full_reach_slack() {
    let started = Instant::now();
    let slack = SlackReceiver::start();
    let heartbeat = SlackReceiver::start();
    let am = start_alertmanager(&slack, &heartbeat);
    let rules_dir = tempfile::tempdir().expect("a temp dir");
    let rule_files = render_rules_for_test(rules_dir.path());
    let disk = tempfile::tempdir().expect("a temp dir");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut host = Some(TmpfsHost::start(&addr, disk.path()));
    let prom = Prometheus::start_with_rules(
        &[ScrapeTarget {
            job: "node",
            address: &addr,
        }],
        &rule_files,
        Some(&am.addr),
    );
    prom.wait_for_scrapes(&["node"], 3, Duration::from_secs(30));
    let mut problems = Vec::new();
    let instance = addr.as_str();
    let context = |prom: &Prometheus, am: &Alertmanager, host: &Option<TmpfsHost>| {
        format!(
            "{}\n{}\n{}\nSlack got:\n{}",
            prom.log_tail(15),
            am.log_tail(15),
            host.as_ref().map(|h| h.log_tail(10)).unwrap_or_default(),
            slack.dump()
        )
    };

    // Healthy and empty: nothing to say.
    std::thread::sleep(GROUP_INTERVAL);
    if !slack.messages().is_empty() {
        problems.push(format!(
            "messages before anything went wrong:\n{}",
            slack.dump()
        ));
    }

    // 1. The exporter stops: one firing TargetDown naming the instance.
    host.take();
    let firing = slack.wait_for("TargetDown firing in Slack", 0, NOTIFY_TIMEOUT, |m| {
        m.title().contains("TargetDown")
    });
    let seen = match firing {
        Ok(m) => {
            problems.extend(slack_format_problems(&m));
            let want_title = format!("[FIRING:1] TargetDown (critical) on {instance}");
            if m.title() != want_title {
                problems.push(format!("title {:?}, expected {want_title:?}", m.title()));
            }
            for want in [
                format!(":red_circle: *CRITICAL* node target {instance} is down"),
                format!("Prometheus could not scrape {instance} (job node) for 2 minutes"),
                format!("*Instance:* {instance}"),
                format!("<{RUNBOOK_BASE}alert-rules/RUNBOOK.md#targetdown|TargetDown>"),
            ] {
                if !m.text().contains(&want) {
                    problems.push(format!("firing text lacks {want:?}:\n{}", m.text()));
                }
            }
            if m.attachment("color") != "danger" {
                problems.push(format!("firing colour {:?}", m.attachment("color")));
            }
            // Give anything else about this host time to arrive: nothing should.
            std::thread::sleep(GROUP_INTERVAL * 3);
            let all = slack.messages();
            if all.len() != 1 {
                problems.push(format!(
                    "expected only the TargetDown message while the exporter is down, got {}:\n{}",
                    all.len(),
                    slack.dump()
                ));
            }
            all.len()
        }
        Err(e) => {
            problems.push(format!("{e}\n{}", context(&prom, &am, &host)));
            slack.messages().len()
        }
    };

    // 2. It comes back: the same alert, resolved.
    host = Some(TmpfsHost::start(&addr, disk.path()));
    match slack.wait_for("TargetDown resolved in Slack", seen, NOTIFY_TIMEOUT, |m| {
        m.title().contains("TargetDown") && m.title().starts_with("[RESOLVED]")
    }) {
        Ok(m) => {
            problems.extend(slack_format_problems(&m));
            let want_title = format!("[RESOLVED] TargetDown (critical) on {instance}");
            if m.title() != want_title {
                problems.push(format!("title {:?}, expected {want_title:?}", m.title()));
            }
            if !m.text().contains(":white_check_mark: *RESOLVED*")
                || !m.text().contains("*Resolved:*")
            {
                problems.push(format!("resolved text does not say so:\n{}", m.text()));
            }
            if m.attachment("color") != "good" {
                problems.push(format!("resolved colour {:?}", m.attachment("color")));
            }
        }
        Err(e) => problems.push(format!("{e}\n{}", context(&prom, &am, &host))),
    }

    // 3. Its disk fills past 90 %: a critical disk alert with the value.
    let seen = slack.messages().len();
    let fill = DISK_SIZE * 95 / 100;
    if let Err(e) = host.as_ref().expect("started").write_file("fill", fill) {
        problems.push(e);
    }
    let mountpoint = disk.path().display().to_string();
    match slack.wait_for(
        "critical NodeFilesystemAlmostFull in Slack",
        seen,
        NOTIFY_TIMEOUT,
        |m| m.title().contains("NodeFilesystemAlmostFull") && m.title().contains("(critical)"),
    ) {
        Ok(m) => {
            problems.extend(slack_format_problems(&m));
            let summary = Regex::new(&format!(
                r"{} on {} is (\d+(?:\.\d+)?)% full",
                regex::escape(&mountpoint),
                regex::escape(instance)
            ))
            .unwrap();
            match summary.captures(m.text()) {
                // tmpfs counts whole 4 KiB pages, so a little above 95.
                Some(c) => {
                    let pct: f64 = c[1].parse().unwrap();
                    if !(95.0..96.0).contains(&pct) {
                        problems.push(format!("disk alert says {pct}% full, the disk is 95 %"));
                    }
                }
                None => problems.push(format!(
                    "critical disk text lacks \"{mountpoint} on {instance} is N% full\":\n{}",
                    m.text()
                )),
            }
            for want in [
                "more than 90% full for 5 minutes",
                "*Severity:* critical",
                "#nodefilesystemalmostfull|NodeFilesystemAlmostFull>",
            ] {
                if !m.text().contains(want) {
                    problems.push(format!("critical disk text lacks {want:?}:\n{}", m.text()));
                }
            }
        }
        Err(e) => problems.push(format!("{e}\n{}", context(&prom, &am, &host))),
    }

    // The 80 % warning fires too (for: 10m -> 10s) but the critical one
    // inhibits it: Alertmanager holds it as suppressed and Slack never sees it.
    let suppressed = wait_until(
        "the disk warning suppressed in Alertmanager",
        NOTIFY_TIMEOUT,
        || {
            Ok(alerts_for_instance(&am, instance).iter().any(|a| {
                a["labels"]["alertname"] == "NodeFilesystemAlmostFull"
                    && a["labels"]["severity"] == "warning"
                    && a["status"]["state"] == "suppressed"
                    && !a["status"]["inhibitedBy"]
                        .as_array()
                        .is_none_or(|v| v.is_empty())
            }))
        },
    );
    if let Err(e) = suppressed {
        let held: Vec<String> = alerts_for_instance(&am, instance)
            .iter()
            .map(describe)
            .collect();
        problems.push(format!("{e}\nAlertmanager holds:\n  {}", held.join("\n  ")));
    }
    std::thread::sleep(GROUP_INTERVAL * 2);
    for m in slack.messages() {
        if m.title().contains("(warning)") {
            problems.push(format!("an inhibited warning reached Slack: {}", m.title()));
        }
    }
    // Prometheus' Watchdog fired all along: at the heartbeat, never in Slack.
    let beats = heartbeat_problems(&slack, &heartbeat);
    if !beats.is_empty() {
        problems.extend(beats);
        problems.push(context(&prom, &am, &host));
    }
    problems.extend(slack.errors());
    problems.extend(heartbeat.errors());

    eprintln!(
        "alert path end to end: {} Slack messages in {:.1?}",
        slack.messages().len(),
        started.elapsed()
    );
    assert_no_problems("alerts from our exporter to Slack", &problems);
}

/// Inhibition as configured, on alerts posted straight to Alertmanager (as
/// Prometheus would post them): a host whose node exporter is down pages once,
/// not also for its disk or its other agents; a critical alert mutes its own
/// warning but not another mount's.
#[test]
fn alertmanager_inhibits_what_a_dead_host_and_critical_alerts_imply() {
    let slack = SlackReceiver::start();
    let heartbeat = SlackReceiver::start();
    let am = start_alertmanager(&slack, &heartbeat);
    let posted = am.post_alerts(&[
        &[
            ("alertname", "TargetDown"),
            ("severity", "critical"),
            ("job", "node"),
            ("instance", "app1"),
        ],
        &[
            ("alertname", "TargetDown"),
            ("severity", "critical"),
            ("job", "log-shipper"),
            ("instance", "app1"),
        ],
        &[
            ("alertname", "NodeFilesystemAlmostFull"),
            ("severity", "critical"),
            ("job", "node"),
            ("instance", "app1"),
            ("mountpoint", "/"),
        ],
        &[
            ("alertname", "NodeFilesystemAlmostFull"),
            ("severity", "critical"),
            ("job", "node"),
            ("instance", "app2"),
            ("mountpoint", "/"),
        ],
        &[
            ("alertname", "NodeFilesystemAlmostFull"),
            ("severity", "warning"),
            ("job", "node"),
            ("instance", "app2"),
            ("mountpoint", "/"),
        ],
        &[
            ("alertname", "NodeFilesystemAlmostFull"),
            ("severity", "warning"),
            ("job", "node"),
            ("instance", "app2"),
            ("mountpoint", "/data"),
        ],
    ]);
    if let Err(e) = posted {
        panic!("{e}\n{}", am.log_tail(20));
    }
    let key = |a: &Value| {
        format!(
            "{} {} {} {} {}",
            a["labels"]["alertname"].as_str().unwrap_or(""),
            a["labels"]["job"].as_str().unwrap_or(""),
            a["labels"]["instance"].as_str().unwrap_or(""),
            a["labels"]["mountpoint"].as_str().unwrap_or(""),
            a["labels"]["severity"].as_str().unwrap_or("")
        )
    };
    let expected = [
        ("TargetDown node app1  critical", "active"),
        ("TargetDown log-shipper app1  critical", "suppressed"),
        (
            "NodeFilesystemAlmostFull node app1 / critical",
            "suppressed",
        ),
        ("NodeFilesystemAlmostFull node app2 / critical", "active"),
        ("NodeFilesystemAlmostFull node app2 / warning", "suppressed"),
        ("NodeFilesystemAlmostFull node app2 /data warning", "active"),
    ];
    let mut problems = Vec::new();
    let settled = wait_until("inhibition applied", Duration::from_secs(20), || {
        let alerts = am.alerts()?;
        Ok(expected.iter().all(|(k, state)| {
            alerts
                .iter()
                .any(|a| key(a) == *k && a["status"]["state"] == *state)
        }))
    });
    if let Err(e) = settled {
        let held: Vec<String> = am
            .alerts()
            .unwrap_or_default()
            .iter()
            .map(describe)
            .collect();
        problems.push(format!(
            "{e}\nexpected {expected:#?}\nAlertmanager holds:\n  {}",
            held.join("\n  ")
        ));
    }

    // Slack gets the three active ones, in two groups (a name's warning
    // and critical alerts are one group), and nothing muted.
    let both = wait_until("two Slack messages", Duration::from_secs(20), || {
        Ok(slack.messages().len() >= 2)
    });
    if let Err(e) = both {
        problems.push(format!("{e}\n{}", slack.dump()));
    }
    std::thread::sleep(GROUP_INTERVAL * 2);
    let texts: Vec<String> = slack
        .messages()
        .iter()
        .map(|m| format!("{}\n{}", m.title(), m.text()))
        .collect();
    let mentions = |needle: &str| texts.iter().filter(|t| t.contains(needle)).count();
    for (needle, want) in [
        ("TargetDown (critical) on app1", 1),
        ("*job:* log-shipper", 0),
        ("NodeFilesystemAlmostFull on app1", 0),
        ("NodeFilesystemAlmostFull on app2", 1),
        ("[FIRING:2] NodeFilesystemAlmostFull", 1),
        ("*mountpoint:* /data", 1),
    ] {
        if mentions(needle) != want {
            problems.push(format!(
                "{want} message(s) should mention {needle:?}, {} do",
                mentions(needle)
            ));
        }
    }
    if !problems.is_empty() {
        problems.push(format!("Slack got:\n{}", slack.dump()));
    }
    problems.extend(slack.errors());
    assert_no_problems("Alertmanager's inhibition rules", &problems);
}

/// Seed 003 on alerts posted straight to Alertmanager: a database server
/// (inventory group `db`, the `group` label of its targets) pages the `dba`
/// receiver's channel and not the default one, an app server the default
/// one; when its critical disk alert resolves while the warning still
/// fires, the message says "critical -> warning". The Watchdog goes to the
/// heartbeat receiver and never to Slack.
#[test]
fn routes_by_inventory_group_with_level_changes_and_a_heartbeat() {
    let slack = SlackReceiver::start();
    let heartbeat = SlackReceiver::start();
    let am = start_alertmanager(&slack, &heartbeat);
    let db_critical: &[(&str, &str)] = &[
        ("alertname", "NodeFilesystemAlmostFull"),
        ("severity", "critical"),
        ("job", "node"),
        ("instance", "db1"),
        ("group", "db"),
        ("mountpoint", "/var/lib/postgresql"),
    ];
    let db_warning: &[(&str, &str)] = &[
        ("alertname", "NodeFilesystemAlmostFull"),
        ("severity", "warning"),
        ("job", "node"),
        ("instance", "db1"),
        ("group", "db"),
        ("mountpoint", "/var/lib/postgresql"),
    ];
    let posted = am.post_alerts(&[
        &[("alertname", "Watchdog"), ("severity", "none")],
        db_critical,
        db_warning,
        &[
            ("alertname", "NodeFilesystemAlmostFull"),
            ("severity", "critical"),
            ("job", "node"),
            ("instance", "app1"),
            ("group", "app_servers"),
            ("mountpoint", "/"),
        ],
    ]);
    if let Err(e) = posted {
        panic!("{e}\n{}", am.log_tail(20));
    }
    let mut problems = Vec::new();
    let in_channel = |m: &SlackMessage, channel: &str, instance: &str| {
        m.body["channel"] == channel && m.title().contains(&format!("on {instance}"))
    };
    let dba = slack.wait_for(
        "db1's critical disk alert in #dba",
        0,
        NOTIFY_TIMEOUT,
        |m| in_channel(m, "#dba", "db1") && m.title().starts_with("[FIRING"),
    );
    match dba {
        Ok(m) => {
            if !m.text().contains("*Level:* critical") || m.text().contains("*WARNING*") {
                problems.push(format!(
                    "the #dba message should show the critical level only (the warning is inhibited):\n{}",
                    m.text()
                ));
            }
        }
        Err(e) => problems.push(format!("{e}\n{}", am.log_tail(20))),
    }
    if let Err(e) = slack.wait_for(
        "app1's critical disk alert in the default channel",
        0,
        NOTIFY_TIMEOUT,
        |m| in_channel(m, CHANNEL, "app1"),
    ) {
        problems.push(e);
    }

    // Back under the critical threshold, still over the warning one.
    let seen = slack.messages().len();
    if let Err(e) = am.post_resolved(&[db_critical]) {
        panic!("{e}\n{}", am.log_tail(20));
    }
    match slack.wait_for(
        "the level change critical -> warning in #dba",
        seen,
        NOTIFY_TIMEOUT,
        |m| in_channel(m, "#dba", "db1") && m.text().contains("*RESOLVED*"),
    ) {
        Ok(m) => {
            let levels: Vec<&str> = m
                .text()
                .lines()
                .filter(|l| l.starts_with("*Level:*"))
                .collect();
            if levels
                != [
                    "*Level:* critical -> warning",
                    "*Level:* critical -> warning",
                ]
            {
                problems.push(format!(
                    "the warning (firing) and the critical (resolved) should both say \
                     critical -> warning, got {levels:?}:\n{}",
                    m.text()
                ));
            }
        }
        Err(e) => problems.push(format!("{e}\n{}", am.log_tail(20))),
    }

    for m in slack.messages() {
        if m.title().contains("db1") && m.body["channel"] != "#dba" {
            problems.push(format!("db1 reached {}: {}", m.body["channel"], m.title()));
        }
        if m.title().contains("app1") && m.body["channel"] != CHANNEL {
            problems.push(format!("app1 reached {}: {}", m.body["channel"], m.title()));
        }
    }
    problems.extend(heartbeat_problems(&slack, &heartbeat));
    if !problems.is_empty() {
        problems.push(format!("Slack got:\n{}", slack.dump()));
    }
    problems.extend(slack.errors());
    problems.extend(heartbeat.errors());
    assert_no_problems("routing by inventory group", &problems);
}
