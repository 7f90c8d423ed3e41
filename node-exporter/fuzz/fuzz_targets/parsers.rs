//! One target for every /proc and /sys parser: the first byte picks the
//! parser from `node_exporter::fuzzing::PARSERS`, the rest is the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use node_exporter::fuzzing::PARSERS;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    // The collectors read files with read_to_string: non-UTF-8 never
    // reaches a parser.
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (_, parse) = PARSERS[pick as usize % PARSERS.len()];
    parse(text);
});
