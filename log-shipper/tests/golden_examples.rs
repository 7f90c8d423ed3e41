//! Golden tests of the example configs in `log-shipper/examples/`: each
//! runs in the real binary (`-config.expand-env=true`, the fixture logs
//! under `tests/fixtures/examples/` put in place of /var/log through the
//! configs' environment variables, receivers fed over the network) and
//! pushes into the Loki test receiver; what arrives (stream labels,
//! timestamps, structured metadata, lines) must equal
//! `tests/fixtures/examples/golden/<config>.jsonl`. The examples and their
//! fixtures are the table in `tests/common/`, shared with
//! `alloy_examples.rs`. Run with `UPDATE_GOLDEN=1` to rewrite the golden
//! files after a deliberate change, and review the diff.

mod common;

use std::path::Path;
use std::process::Command;

use common::{case, example, golden, run, CASES, NEED_A_DAEMON};

fn check(yaml: &str) {
    let got = run(case(yaml), &example(yaml), false);
    let golden = golden(yaml);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
        panic!(
            "{} is missing (UPDATE_GOLDEN=1 cargo test -p log-shipper --test golden_examples)",
            golden.display()
        )
    });
    if got != want {
        let diff: Vec<String> = want
            .lines()
            .filter(|l| !got.lines().any(|g| g == *l))
            .map(|l| format!("- {l}"))
            .chain(
                got.lines()
                    .filter(|g| !want.lines().any(|l| l == *g))
                    .map(|g| format!("+ {g}")),
            )
            .collect();
        panic!(
            "{yaml}: what arrived differs from {} (UPDATE_GOLDEN=1 to accept):\n{}",
            golden.display(),
            diff.join("\n")
        );
    }
}

#[test]
fn nginx_access_and_error_logs() {
    check("nginx.yaml");
}

#[test]
fn apache_access_and_error_logs() {
    check("apache.yaml");
}

#[test]
fn auth_log_sshd_and_sudo() {
    check("auth.yaml");
}

#[test]
fn monitoring_service_logs() {
    check("services.yaml");
}

#[test]
fn container_logs_from_docker_and_cri_files_with_stack_traces() {
    check("containers-files.yaml");
}

#[test]
fn syslog_receiver() {
    check("syslog.yaml");
}

#[test]
fn loki_push_api_receiver() {
    check("push-api.yaml");
}

#[test]
fn gelf_receiver() {
    check("gelf.yaml");
}

/// Every example config passes `-check-config`, and every one runs in
/// the table (unless it needs a daemon): a new example gets a golden test.
#[test]
fn every_example_config_is_valid_and_in_the_table() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut n = 0;
    for f in std::fs::read_dir(&dir).unwrap() {
        let path = f.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        n += 1;
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(
            NEED_A_DAEMON.contains(&name) || CASES.iter().any(|c| c.yaml == name),
            "{name} is not in tests/common's CASES"
        );
        let out = Command::new(env!("CARGO_BIN_EXE_log-shipper"))
            .arg(format!("-config.file={}", path.display()))
            .arg("-config.expand-env=true")
            .arg("-check-config")
            .env("HOSTNAME", "web1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(n >= 10, "only {n} example configs");
}
