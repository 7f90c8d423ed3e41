//! The repository's rule files (`alert-rules/rules/*.yml`) for a test
//! Prometheus, with one documented change: every `for:` is divided by 60
//! (minutes become seconds, `for: 2m` -> `for: 2s`, `1h` -> `60s`), so that
//! alerts fire within a test's time. Thresholds, expressions, labels and
//! annotations are the real ones; windows like `[5m]` are left alone.

use std::path::{Path, PathBuf};

use crate::process::workspace_root;

/// How much shorter every `for:` is in tests.
pub const FOR_DIVISOR: u64 = 60;

pub fn rules_dir() -> PathBuf {
    workspace_root().join("alert-rules/rules")
}

/// Writes the scaled copies into `dir` and returns their paths.
pub fn render_rules_for_test(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(rules_dir())
        .expect("reading alert-rules/rules")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    for src in files {
        let text = std::fs::read_to_string(&src).expect("reading a rule file");
        let scaled =
            scale_for_durations(&text).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        let dst = dir.join(src.file_name().expect("a file name"));
        std::fs::write(&dst, scaled).expect("writing a rule file");
        out.push(dst);
    }
    out
}

/// Rewrites each `for: <duration>` line; anything else is kept as is.
pub fn scale_for_durations(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match trimmed.strip_prefix("for:") {
            Some(value) => {
                let secs =
                    parse_duration(value.trim()).map_err(|e| format!("line {}: {e}", n + 1))?;
                let indent = &line[..line.len() - trimmed.len()];
                let scaled = (secs / FOR_DIVISOR).max(1);
                out.push_str(&format!("{indent}for: {scaled}s\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// Prometheus durations as the rule files use them: one number and unit.
fn parse_duration(s: &str) -> Result<u64, String> {
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("duration {s:?} has no unit"))?;
    let (num, unit) = s.split_at(split);
    let num: u64 = num
        .parse()
        .map_err(|_| format!("duration {s:?}: not a number"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("duration {s:?}: unit {unit:?} not handled")),
    };
    Ok(num * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_for_lines_change() {
        let got = scale_for_durations(
            "      - alert: X\n        expr: rate(x[5m]) > 0\n        for: 15m\n        for: 1h\n",
        )
        .unwrap();
        assert_eq!(
            got,
            "      - alert: X\n        expr: rate(x[5m]) > 0\n        for: 15s\n        for: 60s\n"
        );
        assert!(scale_for_durations("for: 1m30s\n").is_err());
    }
}
