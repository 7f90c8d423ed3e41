//! The push API's body decoding as a request reaches it: the first byte
//! picks the Content-Encoding and the endpoint (protobuf, JSON, raw), the
//! rest is the body. Any input must end in streams or an error, never a
//! panic or an allocation past the body limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use log_shipper::sources::loki_push::{decode_content, decode_push, parse_labels, raw_lines};

/// Small enough that libFuzzer's RSS limit catches a limit not applied.
const MAX: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let encoding = [None, Some("gzip"), Some("deflate"), Some("identity")][pick as usize % 4];
    let Ok(plain) = decode_content(encoding, body, MAX) else {
        return;
    };
    assert!(plain.len() <= MAX);
    match (pick / 4) % 4 {
        0 => drop(decode_push(Some("application/x-protobuf"), &plain, MAX)),
        1 => drop(decode_push(Some("application/json"), &plain, MAX)),
        2 => drop(raw_lines(&plain)),
        _ => {
            if let Ok(s) = std::str::from_utf8(&plain) {
                drop(parse_labels(s));
            }
        }
    }
});
