//! Our exporter against Debian's node_exporter 1.5.0 on the same machine with
//! the same collectors: every family node_exporter exposes, ours exposes with
//! the same TYPE and label names, and values that cannot differ between two
//! readers of the same kernel agree.

use std::collections::{BTreeMap, BTreeSet};

use e2e_tests::assert_no_problems;
use e2e_tests::exporters::{
    collectors_under_test, sample_textfile_dir, Exporter, SHARED_COLLECTORS,
};
use e2e_tests::exposition::{Exposition, Family};

/// Label names current node_exporter releases added after 1.5.0; ours may
/// carry them (it follows the current release) where 1.5.0 does not. A name
/// ending in `*` is a prefix.
const LABELS_ADDED_SINCE_1_5_0: &[(&str, &[&str], &str)] = &[
    (
        "node_exporter_build_info",
        &["goarch", "goos", "tags"],
        "prometheus/common's version collector, in releases after 1.5.0",
    ),
    (
        "node_network_info",
        &["adminstate"],
        "1.6.0: administrative state of network interfaces (#2515)",
    ),
    (
        "node_disk_info",
        &["rotational"],
        "1.9.0: diskstats reports rotational devices (#3022)",
    ),
    (
        "node_filesystem_*",
        &["device_error"],
        "1.8.0: filesystem surfaces device errors (#2923)",
    ),
];

/// Families that are about the exporter process, not the machine; they
/// differ by nature (Go runtime vs Rust).
fn is_about_the_exporter(name: &str) -> bool {
    ["go_", "promhttp_", "process_", "node_scrape_collector_"]
        .iter()
        .any(|p| name.starts_with(p))
}

fn allowed_extra_labels(family: &str) -> BTreeSet<&'static str> {
    LABELS_ADDED_SINCE_1_5_0
        .iter()
        .filter(|(pattern, _, _)| match pattern.strip_suffix('*') {
            Some(prefix) => family.starts_with(prefix),
            None => family == *pattern,
        })
        .flat_map(|(_, labels, _)| labels.iter().copied())
        .collect()
}

fn present(e: &Exposition, name: &str) -> Option<Family> {
    e.family(name).filter(|f| !f.samples.is_empty()).cloned()
}

/// Each family of theirs: present in ours, same TYPE, same label names.
fn compare_families(theirs: &Exposition, ours: &Exposition) -> Vec<String> {
    let mut problems = Vec::new();
    if present(ours, "node_scrape_collector_success").is_none() {
        problems.push("node_scrape_collector_success: missing".into());
    }
    let mut missing = Vec::new();
    for t in theirs.families.values() {
        if t.samples.is_empty() || is_about_the_exporter(&t.name) {
            continue;
        }
        let Some(o) = present(ours, &t.name) else {
            missing.push(t.name.clone());
            continue;
        };
        if o.kind != t.kind {
            problems.push(format!(
                "{}: TYPE {} in ours, {} in node_exporter",
                t.name, o.kind, t.kind
            ));
        }
        let (tl, ol) = (t.label_names(), o.label_names());
        let lacking: Vec<&String> = tl.difference(&ol).collect();
        let allowed = allowed_extra_labels(&t.name);
        let extra: Vec<&String> = ol
            .difference(&tl)
            .filter(|l| !allowed.contains(l.as_str()))
            .collect();
        if !lacking.is_empty() || !extra.is_empty() {
            problems.push(format!(
                "{}: labels {ol:?} in ours, {tl:?} in node_exporter (ours lacks {lacking:?}, has extra {extra:?})",
                t.name
            ));
        }
    }
    // One line per subsystem (`node_disk`, `node_network`, ...) keeps a long
    // list readable.
    let mut by_subsystem: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for name in &missing {
        let subsystem = name.splitn(3, '_').take(2).collect::<Vec<_>>().join("_");
        by_subsystem.entry(subsystem).or_default().push(name);
    }
    let lines = by_subsystem
        .iter()
        .map(|(subsystem, names)| format!("{subsystem}: {}", names.join(" ")));
    problems.splice(
        0..0,
        lines.map(|l| format!("missing in ours (node_exporter has them): {l}")),
    );
    problems
}

/// Values of `family` keyed by the value of `label` (or "" without one).
fn values_by(family: &Family, label: Option<&str>) -> BTreeMap<String, f64> {
    family
        .samples
        .iter()
        .map(|s| {
            let key = label.and_then(|l| s.labels.get(l).cloned());
            (key.unwrap_or_default(), s.value)
        })
        .collect()
}

/// `family`'s values agree within `tolerance`, key by key.
fn compare_values(
    theirs: &Exposition,
    ours: &Exposition,
    family: &str,
    label: Option<&str>,
    tolerance: f64,
) -> Vec<String> {
    let (Some(t), Some(o)) = (present(theirs, family), present(ours, family)) else {
        return Vec::new(); // a missing family is reported on its own
    };
    let (t, o) = (values_by(&t, label), values_by(&o, label));
    let what = |k: &str| match label {
        Some(l) => format!("{family}{{{l}={k:?}}}"),
        None => family.to_string(),
    };
    let mut problems = Vec::new();
    for (k, tv) in &t {
        match o.get(k) {
            Some(ov) if (ov - tv).abs() <= tolerance => {}
            Some(ov) => problems.push(format!("{}: {ov} in ours, {tv} in node_exporter", what(k))),
            None => problems.push(format!("{}: missing in ours", what(k))),
        }
    }
    problems
}

fn compare_stable_values(theirs: &Exposition, ours: &Exposition) -> Vec<String> {
    let mut problems = Vec::new();
    problems.extend(compare_values(
        theirs,
        ours,
        "node_memory_MemTotal_bytes",
        None,
        0.0,
    ));
    problems.extend(compare_values(
        theirs,
        ours,
        "node_boot_time_seconds",
        None,
        1.0,
    ));
    problems.extend(compare_values(
        theirs,
        ours,
        "node_filesystem_size_bytes",
        Some("mountpoint"),
        0.0,
    ));
    // Interface properties: ours come mostly from a link dump, theirs from
    // sysfs files; on a quiet host they are the same numbers.
    for family in [
        "node_network_mtu_bytes",
        "node_network_flags",
        "node_network_up",
        "node_network_carrier",
        "node_network_dormant",
        "node_network_iface_id",
        "node_network_iface_link",
        "node_network_iface_link_mode",
        "node_network_protocol_type",
        "node_network_address_assign_type",
        "node_network_device_id",
        "node_network_name_assign_type",
        "node_network_net_dev_group",
        "node_network_transmit_queue_length",
        "node_network_speed_bytes",
        "node_network_carrier_changes_total",
    ] {
        problems.extend(compare_values(theirs, ours, family, Some("device"), 0.0));
    }
    if let (Some(t), Some(o)) = (
        present(theirs, "node_network_info"),
        present(ours, "node_network_info"),
    ) {
        let labels = |f: &Family| -> Vec<BTreeMap<String, String>> {
            // Labels node_exporter added after 1.5.0 (adminstate) left out.
            let extra = allowed_extra_labels("node_network_info");
            let mut l: Vec<_> = f
                .samples
                .iter()
                .map(|s| {
                    let mut labels = s.labels.clone();
                    labels.retain(|k, _| !extra.contains(k.as_str()));
                    labels
                })
                .collect();
            l.sort();
            l
        };
        if labels(&t) != labels(&o) {
            problems.push(format!(
                "node_network_info: {:?} in ours, {:?} in node_exporter",
                labels(&o),
                labels(&t)
            ));
        }
    }
    if let (Some(t), Some(o)) = (
        present(theirs, "node_cpu_seconds_total"),
        present(ours, "node_cpu_seconds_total"),
    ) {
        let (tc, oc) = (t.label_values("cpu"), o.label_values("cpu"));
        if tc != oc {
            problems.push(format!(
                "node_cpu_seconds_total: cpus {oc:?} in ours, {tc:?} in node_exporter"
            ));
        }
    }
    if let (Some(t), Some(o)) = (
        present(theirs, "node_uname_info"),
        present(ours, "node_uname_info"),
    ) {
        if t.samples[0].labels != o.samples[0].labels {
            problems.push(format!(
                "node_uname_info: labels {:?} in ours, {:?} in node_exporter",
                o.samples[0].labels, t.samples[0].labels
            ));
        }
    }
    problems
}

#[test]
fn ours_exposes_what_node_exporter_exposes() {
    let textfiles = sample_textfile_dir();
    let collectors = collectors_under_test(SHARED_COLLECTORS);
    let theirs = Exporter::reference(&collectors, textfiles.path());
    let ours = Exporter::ours(&collectors, textfiles.path());
    let (t, o) = (theirs.scrape(), ours.scrape());

    let mut problems = ours.dropped_report();
    problems.extend(compare_families(&t, &o));
    problems.extend(compare_stable_values(&t, &o));

    let only_ours: Vec<&String> = o
        .families
        .keys()
        .filter(|n| !is_about_the_exporter(n) && t.family(n).is_none())
        .collect();
    let failing_only_in_ours: Vec<String> = match (
        present(&t, "node_scrape_collector_success"),
        present(&o, "node_scrape_collector_success"),
    ) {
        (Some(tf), Some(of)) => {
            let (ts, os) = (
                values_by(&tf, Some("collector")),
                values_by(&of, Some("collector")),
            );
            ts.iter()
                .filter(|(c, v)| **v == 1.0 && os.get(*c) == Some(&0.0))
                .map(|(c, _)| c.clone())
                .collect()
        }
        _ => Vec::new(),
    };
    eprintln!("collectors failing in ours but not in node_exporter: {failing_only_in_ours:?}");
    eprintln!(
        "families: {} in node_exporter, {} in ours; only in ours (fine if newer releases added them): {only_ours:?}",
        t.families.len(),
        o.families.len()
    );
    assert_no_problems(
        &format!("ours vs node_exporter 1.5.0 with collectors {collectors:?}"),
        &problems,
    );
}

/// The comparison itself must be able to fail.
#[test]
fn comparison_reports_every_kind_of_difference() {
    let theirs = Exposition::parse(
        "# TYPE node_memory_MemTotal_bytes gauge\nnode_memory_MemTotal_bytes 100\n\
         # TYPE node_network_info gauge\nnode_network_info{device=\"lo\"} 1\n\
         # TYPE node_forks_total counter\nnode_forks_total 5\n\
         # TYPE node_load1 gauge\nnode_load1 0.5\n\
         # TYPE go_goroutines gauge\ngo_goroutines 7\n",
    )
    .unwrap();
    let ours = Exposition::parse(
        "# TYPE node_memory_MemTotal_bytes gauge\nnode_memory_MemTotal_bytes{x=\"1\"} 99\n\
         # TYPE node_network_info gauge\nnode_network_info{device=\"lo\",adminstate=\"up\"} 1\n\
         # TYPE node_forks_total gauge\nnode_forks_total 5\n\
         # TYPE node_scrape_collector_success gauge\nnode_scrape_collector_success{collector=\"cpu\"} 1\n",
    )
    .unwrap();
    let families = compare_families(&theirs, &ours).join("\n");
    assert!(families.contains("node_load1: node_load1"), "{families}");
    assert!(
        families.contains("node_forks_total: TYPE gauge in ours, counter"),
        "{families}"
    );
    assert!(
        families.contains("node_memory_MemTotal_bytes: labels"),
        "{families}"
    );
    assert!(
        !families.contains("node_network_info"),
        "adminstate is allowed: {families}"
    );
    assert!(!families.contains("go_goroutines"), "{families}");
    let values = compare_stable_values(&theirs, &ours).join("\n");
    assert!(
        values.contains("node_memory_MemTotal_bytes: 99 in ours, 100"),
        "{values}"
    );
}
