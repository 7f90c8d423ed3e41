//! GELF datagrams into the chunk reassembler, then each completed message
//! through payload decoding and the line it becomes. The input is a list
//! of datagrams, each `[len_hi, len_lo, advance_ms, bytes...]`; time moves
//! on by `advance_ms` before each. Small limits make eviction and expiry
//! run often; what is held must stay within them.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use log_shipper::sources::gelf::{decode_payload, message, Limits, Reassembler};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        timeout: Duration::from_millis(500),
        max_messages: 8,
        max_bytes: 4096,
    };
    let mut r = Reassembler::new(limits);
    let mut now = Instant::now();
    let mut rest = data;
    while rest.len() >= 3 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        now += Duration::from_millis(u64::from(rest[2]));
        rest = &rest[3..];
        let (datagram, after) = rest.split_at(len.min(rest.len()));
        rest = after;
        if let Ok(Some(payload)) = r.push(datagram, now) {
            if let Ok(m) = decode_payload(&payload) {
                let msg = message(&m);
                // The line is JSON again.
                assert!(msg.line.starts_with('{') && msg.line.ends_with('}'));
            }
        }
        assert!(r.bytes() <= limits.max_bytes);
        assert!(r.messages() <= limits.max_messages);
    }
});
