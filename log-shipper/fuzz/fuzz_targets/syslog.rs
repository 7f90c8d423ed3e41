//! The syslog source's framing and both parsers on arbitrary bytes: no
//! panic, frames never longer than max_message_length, the framer's buffer
//! bounded, and the same frames however the stream is cut into reads.
#![no_main]

use chrono::TimeZone;
use libfuzzer_sys::fuzz_target;
use log_shipper::sources::syslog::{parse, Format, Framer, ParseOptions};

fn frames(max: usize, data: &[u8], cut: usize) -> Vec<(Vec<u8>, bool)> {
    let mut f = Framer::new(max);
    let mut out = Vec::new();
    let mut emit = |b: &[u8], t: bool| out.push((b.to_vec(), t));
    for chunk in data.chunks(cut.max(1)) {
        f.push(chunk, &mut emit);
        assert!(f.buffered() <= max + 16, "buffer grew past the limit");
    }
    f.finish(&mut emit);
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&sel, data)) = input.split_first() else {
        return;
    };
    // Small limits reach the cutting paths with short inputs.
    let max = 1 + (sel as usize & 0x3f) * 4;
    let whole = frames(max, data, data.len());
    let pieces = frames(max, data, 1 + (sel as usize >> 6) * 3);
    assert_eq!(whole, pieces, "frames depend on how reads are cut");
    let now = chrono::Utc.with_ymd_and_hms(2024, 2, 29, 12, 0, 0).unwrap();
    for (frame, _) in &whole {
        assert!(frame.len() <= max);
        let text = String::from_utf8_lossy(frame);
        for format in [Format::Rfc5424, Format::Rfc3164] {
            let o = ParseOptions {
                format,
                label_structured_data: true,
                use_incoming_timestamp: true,
                use_rfc5424_message: sel & 1 == 0,
            };
            let _ = parse(&text, &o, now);
        }
    }
    // The parsers alone, on the whole input as one message.
    let text = String::from_utf8_lossy(data);
    for format in [Format::Rfc5424, Format::Rfc3164] {
        let o = ParseOptions {
            format,
            label_structured_data: true,
            use_incoming_timestamp: true,
            use_rfc5424_message: true,
        };
        let _ = parse(&text, &o, now);
    }
});
