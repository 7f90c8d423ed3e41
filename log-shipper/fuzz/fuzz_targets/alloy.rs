//! The Alloy config reader: any bytes give a config or one error, never a
//! panic, a hang or a stack overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use log_shipper::config::alloy::{from_str, Host};

/// No environment, a fixed host name: runs are reproducible.
struct Fixed;

impl Host for Fixed {
    fn env(&self, _: &str) -> Option<String> {
        None
    }
    fn hostname(&self) -> String {
        "fuzz".into()
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = from_str(text, &Fixed);
});
