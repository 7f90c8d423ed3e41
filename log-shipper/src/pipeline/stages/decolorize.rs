//! `decolorize`: removes ANSI colour and cursor escape sequences
//! (`ESC [ ... letter`) from the line, as LogQL's `| decolorize`.

use serde::{Deserialize, Deserializer, Serialize};

use super::{null_as_default, StageSpec};
use crate::entry::Entry;
use crate::pipeline::{Extracted, Flow, Stage};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DecolorizeConfig {}

pub struct DecolorizeStage;

impl StageSpec for DecolorizeStage {
    const NAME: &'static str = "decolorize";
    const EXAMPLE: &'static str = "{}";
    type Config = DecolorizeConfig;

    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<DecolorizeConfig, D::Error> {
        null_as_default(d)
    }

    fn new(_c: &DecolorizeConfig) -> Result<Self, String> {
        Ok(DecolorizeStage)
    }
}

/// Strips CSI sequences: ESC '[' parameter bytes (0x30-0x3F),
/// intermediate bytes (0x20-0x2F), one final byte (0x40-0x7E).
pub fn decolorize(line: &str) -> Option<String> {
    let b = line.as_bytes();
    let mut i = memchr::memchr(0x1b, b)?;
    let mut out = String::with_capacity(line.len());
    let mut copied = 0;
    while i < b.len() {
        if b[i] == 0x1b && b.get(i + 1) == Some(&b'[') {
            let mut j = i + 2;
            while j < b.len() && (0x30..=0x3f).contains(&b[j]) {
                j += 1;
            }
            while j < b.len() && (0x20..=0x2f).contains(&b[j]) {
                j += 1;
            }
            if j < b.len() && (0x40..=0x7e).contains(&b[j]) {
                out.push_str(&line[copied..i]);
                copied = j + 1;
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&line[copied..]);
    Some(out)
}

impl Stage for DecolorizeStage {
    fn process(&mut self, entry: &mut Entry, _x: &mut Extracted) -> Flow {
        if let Some(clean) = decolorize(&entry.line) {
            entry.line = clean;
        }
        Flow::Keep
    }
}

#[cfg(test)]
mod tests {
    use crate::pipeline::stages::testutil::*;
    use crate::relabel::labels;

    #[test]
    fn strips_colour_codes() {
        let mut p = pipeline("- decolorize: {}\n");
        let e = run(
            &mut p,
            labels([]),
            "\x1b[0;32mINFO\x1b[0m [\x1b[1mapi\x1b[22m] started \x1b[38;5;208mok\x1b[m",
        )
        .unwrap();
        assert_eq!(e.line, "INFO [api] started ok");
        let e = run(&mut p, labels([]), "no escapes \u{e9}").unwrap();
        assert_eq!(e.line, "no escapes \u{e9}");
    }
}
