//! Malformed Alloy files give one error, never a panic: every example and
//! reference fixture, edited at random (a span deleted, syntax inserted),
//! and random token soup go through the reader. The seed is fixed so a
//! failure reproduces; `make fuzz` explores further with libFuzzer.

use std::path::Path;

use log_shipper::config::alloy::{from_str, Host};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};

struct Fixed;

impl Host for Fixed {
    fn env(&self, _: &str) -> Option<String> {
        None
    }
    fn hostname(&self) -> String {
        "web1".into()
    }
}

fn corpus() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in ["examples", "tests/fixtures/alloy"] {
        for f in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "alloy") {
                out.push(std::fs::read_to_string(p).unwrap());
            }
        }
    }
    assert!(out.len() >= 11, "only {} Alloy files", out.len());
    out
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        rng_seed: RngSeed::Fixed(21),
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn edited_configs_give_an_error_not_a_panic() {
    let files = corpus();
    let edit = (
        0..files.len(),
        any::<prop::sample::Index>(),
        0usize..12,
        "[a-z0-9_{}()=,.\"`/*\\\\\n \\[\\]-]{0,6}",
    );
    let errors = std::cell::Cell::new(0);
    runner(1000)
        .run(&edit, |(i, at, del, ins)| {
            let src = &files[i];
            let mut start = at.index(src.len() + 1);
            while !src.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = (start + del).min(src.len());
            while !src.is_char_boundary(end) {
                end += 1;
            }
            let text = format!("{}{ins}{}", &src[..start], &src[end..]);
            if let Err(e) = from_str(&text, &Fixed) {
                // One error, with where it is when it is in the text.
                prop_assert!(!e.message.is_empty());
                errors.set(errors.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    // Most edits break something: the reader is not accepting anything.
    let errors = errors.get();
    assert!(errors > 300, "only {errors} of 1000 edits were errors");
}

#[test]
fn token_soup_gives_an_error_not_a_panic() {
    let soup = "(loki|stage|\\.|\"x\"|`r`|\\{|\\}|\\[|\\]|\\(|\\)|=|,|1|1\\.5e3|-|!|\\^|&&|\\|\\||env|null|true|\n|/\\*|\\*/|//| ){0,60}";
    runner(1000)
        .run(&soup, |text| {
            let _ = from_str(&text, &Fixed);
            Ok(())
        })
        .unwrap();
}
