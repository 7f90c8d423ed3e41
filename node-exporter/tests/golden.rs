//! The end-to-end golden test, as node_exporter's: the real binary runs over
//! the fixture /proc and /sys trees in `fixtures/`, and each collector's whole
//! `/metrics?collect[]=NAME` output must equal `fixtures/golden/NAME.prom`.
//! Run with `UPDATE_GOLDEN=1` to rewrite the golden files after a deliberate
//! change, and review the diff.

mod common;

use std::path::Path;

use node_exporter::collectors::REGISTRY;

/// Collectors that read the live system through syscalls (clock, uname,
/// adjtimex, statfs) rather than files: their golden files keep metric and
/// label names, not values.
const LIVE: &[&str] = &["time", "timex", "uname", "filesystem"];

fn normalize(name: &str, body: &str) -> String {
    let mut out = String::new();
    let mut skip_family = false;
    // textfile (files, in labels and in the help of metrics without HELP)
    // and rapl (zone paths) name the checkout's absolute paths; textfile's
    // mtimes are the checkout's too.
    let fixtures = common::fixtures().display().to_string();
    for line in body.lines() {
        let line = line.replace(&fixtures, "<fixtures>");
        let line = line.as_str();
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let family = rest.split(' ').next().unwrap_or("");
            skip_family = family == "node_scrape_collector_duration_seconds"
                || family == "node_exporter_build_info";
        }
        if skip_family {
            continue;
        }
        if name == "textfile" {
            if line.starts_with("node_textfile_mtime_seconds{") {
                let (series, _) = line.rsplit_once(' ').unwrap_or((line, ""));
                out.push_str(&format!("{series} <mtime>\n"));
            } else {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        if LIVE.contains(&name) && !line.starts_with('#') {
            out.push_str(&mask(line));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// `name{a="x",b="y"} 12` -> `name{a,b}`.
fn mask(line: &str) -> String {
    let (series, _) = line.rsplit_once(' ').unwrap_or((line, ""));
    match series.split_once('{') {
        Some((name, labels)) => {
            let names: Vec<&str> = labels
                .trim_end_matches('}')
                .split("\",")
                .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
                .collect();
            format!("{name}{{{}}}", names.join(","))
        }
        None => series.to_string(),
    }
}

#[test]
fn every_collector_matches_its_golden_file() {
    let fixtures = common::fixtures();
    let exporter = common::start(&common::fixture_args(&fixtures));
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    // GOLDEN_ONLY=cpu,meminfo limits the run (and any rewrite) to those.
    for spec in REGISTRY.iter().filter(|s| common::selected(s.name)) {
        let (status, body) = exporter.get(&format!("/metrics?collect[]={}", spec.name));
        assert_eq!(status, 200, "collector {}: {body}", spec.name);
        let got = normalize(spec.name, &body);
        let golden = fixtures.join("golden").join(format!("{}.prom", spec.name));
        if update {
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
            panic!(
                "{} is missing: every collector needs a fixture and a golden file \
                 (UPDATE_GOLDEN=1 cargo test -p node-exporter --test golden)",
                golden.display()
            )
        });
        if got != want {
            mismatches.push(diff(spec.name, &want, &got));
        }
    }
    assert!(
        mismatches.is_empty(),
        "golden mismatches (UPDATE_GOLDEN=1 to accept):\n{}\nstderr:\n{}",
        mismatches.join("\n"),
        exporter.stderr()
    );
}

#[test]
fn every_collector_succeeds_over_the_fixtures() {
    let fixtures = common::fixtures();
    let exporter = common::start(&common::fixture_args(&fixtures));
    let (_, body) = exporter.get("/metrics");
    for spec in REGISTRY.iter().filter(|s| common::selected(s.name)) {
        let want = format!(
            "node_scrape_collector_success{{collector=\"{}\"}} 1",
            spec.name
        );
        assert!(
            body.contains(&want),
            "collector {} failed over the fixtures:\n{}",
            spec.name,
            exporter.stderr()
        );
    }
}

/// Truncated, empty and garbage files under `fixtures/broken` must give a
/// failed collector with the file named in the log, never a crash or a
/// failed scrape.
#[test]
fn broken_input_fails_the_collector_not_the_scrape() {
    let broken = common::fixtures().join("broken");
    let mut args = common::fixture_args(&broken);
    args.push("--log.level=debug".into());
    let mut exporter = common::start(&args);
    for _ in 0..2 {
        let (status, body) = exporter.get("/metrics");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("node_scrape_collector_success"));
    }
    assert!(
        exporter.child.try_wait().unwrap().is_none(),
        "exporter died: {}",
        exporter.stderr()
    );
    let log = exporter.stderr();
    for file in broken_files(&broken) {
        let rel = file.strip_prefix(&broken).unwrap().display().to_string();
        assert!(
            log.contains(&rel),
            "no log line names the broken file {rel}:\n{log}"
        );
    }
}

fn broken_files(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.join("proc"), root.join("sys")];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != ".keep") {
                out.push(p);
            }
        }
    }
    out
}

fn diff(name: &str, want: &str, got: &str) -> String {
    let want: Vec<&str> = want.lines().collect();
    let got: Vec<&str> = got.lines().collect();
    let mut out = format!("--- {name} golden / +++ {name} now\n");
    for l in &want {
        if !got.contains(l) {
            out.push_str(&format!("-{l}\n"));
        }
    }
    for l in &got {
        if !want.contains(l) {
            out.push_str(&format!("+{l}\n"));
        }
    }
    out
}
