//! `node_tcp_connection_states{state}` from /proc/net/tcp and /proc/net/tcp6:
//! sockets per TCP state, plus the `rx_queued_bytes` / `tx_queued_bytes`
//! pseudo-states summing the sockets' queues, with node_exporter's label
//! values. node_exporter asks netlink (sock_diag) for the same numbers; the
//! one difference is that for listening sockets netlink reports the accept
//! backlog limit as the send queue, which /proc/net/tcp shows as 0.
//! The files are streamed line by line, as they can be large on busy hosts.

use std::io::BufRead;
use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, NoData, Paths};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "tcpstat",
    default_enabled: false,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Tcpstat {
            paths: f.paths.clone(),
        }))
    },
};

/// The `st`, `tx_queue` and `rx_queue` columns of one /proc/net/{tcp,udp}[6]
/// line: `sl local_address rem_address st tx_queue:rx_queue ...`. `None` for
/// a blank line. Shared with the udp_queues collector.
pub fn parse_socket_line(
    line: &str,
    path: &Path,
    lineno: usize,
) -> anyhow::Result<Option<(u8, u64, u64)>> {
    let mut fields = line.split_ascii_whitespace();
    let Some(sl) = fields.next() else {
        return Ok(None);
    };
    let bad = |what: &str| {
        anyhow!(
            "parsing {} line {lineno}: {what} in {:?}",
            path.display(),
            line.trim()
        )
    };
    if !sl.ends_with(':') {
        return Err(bad("no 'sl:' column"));
    }
    let (Some(_local), Some(_remote), Some(st), Some(queues)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(bad("too few columns"));
    };
    let st = u8::from_str_radix(st, 16).map_err(|_| bad("bad state"))?;
    let (tx, rx) = queues
        .split_once(':')
        .ok_or_else(|| bad("no ':' between tx_queue and rx_queue"))?;
    let tx = u64::from_str_radix(tx, 16).map_err(|_| bad("bad tx_queue"))?;
    let rx = u64::from_str_radix(rx, 16).map_err(|_| bad("bad rx_queue"))?;
    Ok(Some((st, tx, rx)))
}

/// Reads a /proc/net socket table line by line, skipping the header, and
/// calls `each` with every socket's (state, tx_queue, rx_queue). A missing
/// file is [`NoData`].
pub fn for_each_socket(path: &Path, mut each: impl FnMut(u8, u64, u64)) -> anyhow::Result<()> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(NoData(format!("{} does not exist", path.display())).into())
        }
        Err(e) => return Err(anyhow!("reading {}: {e}", path.display())),
    };
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, file);
    let mut line = String::with_capacity(256);
    let mut lineno = 0;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        lineno += 1;
        if lineno == 1 {
            continue;
        }
        if let Some((st, tx, rx)) = parse_socket_line(&line, path, lineno)? {
            each(st, tx, rx);
        }
    }
    if lineno == 0 {
        return Err(anyhow!("parsing {}: file is empty", path.display()));
    }
    Ok(())
}

/// Socket counts by TCP state (index = kernel state number) and the queues.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TcpStats {
    pub states: [u64; 12],
    pub unknown: u64,
    pub tx_queued: u64,
    pub rx_queued: u64,
    pub sockets: u64,
}

impl TcpStats {
    fn add(&mut self, st: u8, tx: u64, rx: u64) {
        match self.states.get_mut(usize::from(st)) {
            Some(n) if st > 0 => *n += 1,
            _ => self.unknown += 1,
        }
        self.tx_queued += tx;
        self.rx_queued += rx;
        self.sockets += 1;
    }
}

/// Parses a whole /proc/net/tcp[6] text (header first).
pub fn parse_tcp(text: &str, path: &Path) -> anyhow::Result<TcpStats> {
    let mut stats = TcpStats::default();
    for (i, line) in text.lines().enumerate().skip(1) {
        if let Some((st, tx, rx)) = parse_socket_line(line, path, i + 1)? {
            stats.add(st, tx, rx);
        }
    }
    Ok(stats)
}

/// Label values by kernel state number (include/net/tcp_states.h).
const STATE_NAMES: [&str; 12] = [
    "",
    "established",
    "syn_sent",
    "syn_recv",
    "fin_wait1",
    "fin_wait2",
    "time_wait",
    "close",
    "close_wait",
    "last_ack",
    "listen",
    "closing",
];

struct Tcpstat {
    paths: Paths,
}

impl Collector for Tcpstat {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let mut stats = TcpStats::default();
        for_each_socket(&self.paths.proc("net/tcp"), |st, tx, rx| {
            stats.add(st, tx, rx)
        })?;
        let tcp6 = self.paths.proc("net/tcp6");
        if tcp6.exists() {
            for_each_socket(&tcp6, |st, tx, rx| stats.add(st, tx, rx))?;
        }
        let mut emit = |state: &str, v: u64| {
            out.gauge(
                "node_tcp_connection_states",
                "Number of connection states.",
                &[("state", state)],
                v as f64,
            )
        };
        // Like node_exporter, only states that occur are written.
        for (name, &n) in STATE_NAMES.iter().zip(stats.states.iter()).skip(1) {
            if n > 0 {
                emit(name, n);
            }
        }
        if stats.unknown > 0 {
            emit("unknown", stats.unknown);
        }
        if stats.sockets > 0 {
            emit("rx_queued_bytes", stats.rx_queued);
            emit("tx_queued_bytes", stats.tx_queued);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 557 1 00000000ff1d3aef 100 0 0 10 0
   1: 020200C0:B388 507100CB:01BB 01 0000001A:00000000 00:00000000 00000000     0        0 17065 1 0000000085d01e86 20 4 1 92 -1
   2: 020200C0:B394 507100CB:01BB 06 00000000:00000000 03:00000D6F 00000000     0        0 0 3 0000000000000000
   3: 020200C0:B394 507100CB:01BB 0C 00000000:00000000 03:00000D6F 00000000     0        0 0 3 0000000000000000
";

    #[test]
    fn counts_states_and_queues() {
        let s = parse_tcp(TCP, Path::new("tcp")).unwrap();
        assert_eq!(s.states[10], 1, "listen");
        assert_eq!(s.states[1], 1, "established");
        assert_eq!(s.states[6], 1, "time_wait");
        assert_eq!(s.unknown, 1, "state 0x0C is not one node_exporter names");
        assert_eq!(s.tx_queued, 0x1a);
        assert_eq!(s.rx_queued, 3);
        assert_eq!(s.sockets, 4);
    }

    #[test]
    fn header_only_is_no_sockets() {
        let s = parse_tcp("  sl  local_address rem_address st\n", Path::new("tcp")).unwrap();
        assert_eq!(s, TcpStats::default());
    }

    #[test]
    fn malformed_lines_are_errors_naming_file_and_line() {
        let p = Path::new("/proc/net/tcp");
        let hdr = "  sl local rem st q\n";
        let err = parse_tcp(&format!("{hdr}   0: 0100007F:0277 00000000:0000\n"), p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/proc/net/tcp line 2"), "{err}");
        for bad in [
            "   0: 0100007F:0277 00000000:0000 0A 00000000\n",
            "   0: 0100007F:0277 00000000:0000 ZZ 00000000:00000000\n",
            "   0: 0100007F:0277 00000000:0000 0A 0000000G:00000000\n",
            "garbage garbage garbage garbage garbage\n",
        ] {
            assert!(parse_tcp(&format!("{hdr}{bad}"), p).is_err(), "{bad}");
        }
    }
}
