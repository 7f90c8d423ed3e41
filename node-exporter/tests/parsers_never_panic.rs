//! A small, deterministic fuzz run inside `cargo test`: every parser of
//! `node_exporter::fuzzing::PARSERS` is fed every fixture file and thousands
//! of mutations of them (truncations, byte flips, inserted separators and
//! huge numbers). A panic fails the test. `make fuzz` runs the real
//! coverage-guided fuzzer on the same table.

use std::path::Path;

use node_exporter::fuzzing::PARSERS;

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<String> {
    let mut out = vec![
        String::new(),
        "\n".into(),
        ":".into(),
        "cpu0".into(),
        "a b\nc d\n".into(),
    ];
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else if let Ok(text) = std::fs::read_to_string(&p) {
                if text.len() < 64 * 1024 {
                    out.push(text);
                }
            }
        }
    }
    out
}

const INSERTS: &[&str] = &[
    " ",
    "\n",
    ":",
    "=",
    "-",
    "(",
    ")",
    "0x",
    "-1",
    "18446744073709551616",
    "NaN",
    "1e999",
    "\t",
    "\u{0}",
    "é",
    "{",
    "\"",
];

fn mutate(rng: &mut Rng, seed: &str) -> String {
    let mut s: Vec<char> = seed.chars().collect();
    for _ in 0..=rng.below(4) {
        match rng.below(4) {
            0 if !s.is_empty() => s.truncate(rng.below(s.len())),
            1 if !s.is_empty() => {
                let i = rng.below(s.len());
                s.remove(i);
            }
            2 => {
                let i = rng.below(s.len() + 1);
                let ins = INSERTS[rng.below(INSERTS.len())];
                for (k, c) in ins.chars().enumerate() {
                    s.insert(i + k, c);
                }
            }
            _ if !s.is_empty() => {
                let i = rng.below(s.len());
                s[i] = char::from(b' ' + (rng.next() % 95) as u8);
            }
            _ => {}
        }
    }
    s.into_iter().collect()
}

#[test]
fn no_parser_panics_on_fixtures_or_their_mutations() {
    let seeds = seeds();
    assert!(seeds.len() > 10, "fixtures not found");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (name, parse) in PARSERS {
        for seed in &seeds {
            parse(seed);
            for _ in 0..20 {
                let input = mutate(&mut rng, seed);
                let result = std::panic::catch_unwind(|| parse(&input));
                assert!(result.is_ok(), "parser {name} panicked on input {input:?}");
            }
        }
    }
}
