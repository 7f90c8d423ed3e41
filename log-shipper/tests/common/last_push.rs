//! What the Loki test receiver saw of the last push.

use e2e_tests::loki_receiver::LokiReceiver;

/// The value of header `name` (lower case) in the last push `r` received.
pub fn header(r: &LokiReceiver, name: &str) -> Option<String> {
    r.last_headers()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}
