//! `node_tcp_connection_states{state}`: sockets per TCP state, plus the
//! `rx_queued_bytes` / `tx_queued_bytes` pseudo-states summing the sockets'
//! queues, with node_exporter's label values.
//!
//! Like node_exporter, the sockets are dumped over netlink (sock_diag), which
//! costs the kernel far less than formatting /proc/net/tcp on busy hosts,
//! for IPv4 and, when `<procfs>/net/tcp6` exists, IPv6. Netlink always shows
//! the exporter's own network namespace, which is also what
//! `<procfs>/net/tcp` shows when `--path.procfs` is a real procfs. When it is
//! not (a fixture tree), or netlink is unavailable, /proc/net/tcp and tcp6
//! are read instead, streamed line by line. The one difference between the
//! two: for listening sockets netlink reports the accept backlog limit as the
//! send queue, which /proc/net/tcp shows as 0.

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
            netlink: is_procfs(&f.paths.procfs),
            paths: f.paths.clone(),
            socket: sock_diag::socket(),
        }))
    },
};

/// Whether `path` is a mounted procfs (not a copy of one).
pub fn is_procfs(path: &Path) -> bool {
    std::fs::File::open(path).is_ok_and(|f| crate::helpers::is_procfs_file(&f))
}

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
    let mut reader = std::io::BufReader::with_capacity(16 * 1024, file);
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
    netlink: bool,
    socket: crate::netlink::KeptSocket,
}

impl Tcpstat {
    fn read_netlink(&self, ipv6: bool) -> std::io::Result<TcpStats> {
        let mut stats = TcpStats::default();
        let tcp = libc::IPPROTO_TCP as u8;
        sock_diag::dump(&self.socket, libc::AF_INET as u8, tcp, |st, tx, rx| {
            stats.add(st, tx, rx)
        })?;
        if ipv6 {
            sock_diag::dump(&self.socket, libc::AF_INET6 as u8, tcp, |st, tx, rx| {
                stats.add(st, tx, rx)
            })?;
        }
        Ok(stats)
    }

    fn read_files(&self, tcp6: Option<&Path>) -> anyhow::Result<TcpStats> {
        let mut stats = TcpStats::default();
        for_each_socket(&self.paths.proc("net/tcp"), |st, tx, rx| {
            stats.add(st, tx, rx)
        })?;
        if let Some(tcp6) = tcp6 {
            for_each_socket(tcp6, |st, tx, rx| stats.add(st, tx, rx))?;
        }
        Ok(stats)
    }
}

impl Collector for Tcpstat {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let tcp6 = self.paths.proc("net/tcp6");
        let has_tcp6 = tcp6.exists();
        let stats = match self.netlink.then(|| self.read_netlink(has_tcp6)) {
            Some(Ok(stats)) => stats,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "tcpstat: netlink sock_diag failed, reading /proc/net/tcp");
                self.read_files(has_tcp6.then_some(tcp6.as_path()))?
            }
            None => self.read_files(has_tcp6.then_some(tcp6.as_path()))?,
        };
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

/// A sock_diag (NETLINK_SOCK_DIAG) dump of every socket of one address
/// family and protocol (TCP, UDP), reporting (state, send queue, receive
/// queue). Shared with the udp_queues collector.
pub mod sock_diag {
    use std::io;

    use crate::netlink::{u32_at, KeptSocket};

    const NETLINK_SOCK_DIAG: libc::c_int = 4;
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    /// inet_diag_req_v2: family, protocol, ext, pad, states (u32) and a
    /// 48-byte inet_diag_sockid.
    const REQ_LEN: usize = 56;
    /// All states 1..=11 (TCPF_ALL without NEW_SYN_RECV), as node_exporter;
    /// UDP sockets are CLOSE or, connected, ESTABLISHED.
    const ALL_STATES: u32 = 0xfff;
    /// Offsets in inet_diag_msg: state, idiag_rqueue, idiag_wqueue.
    const STATE_OFF: usize = 1;
    const RQUEUE_OFF: usize = 56;
    const WQUEUE_OFF: usize = 60;

    fn short() -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, "sock_diag: short message")
    }

    /// A sock_diag socket for [`dump`], kept by the collector.
    pub const fn socket() -> KeptSocket {
        KeptSocket::new(libc::SOCK_DGRAM, NETLINK_SOCK_DIAG)
    }

    pub fn dump(
        socket: &KeptSocket,
        family: u8,
        protocol: u8,
        mut each: impl FnMut(u8, u64, u64),
    ) -> io::Result<()> {
        let mut req = [0u8; REQ_LEN];
        req[0] = family;
        req[1] = protocol;
        req[4..8].copy_from_slice(&ALL_STATES.to_ne_bytes());
        socket.dump(SOCK_DIAG_BY_FAMILY, &req, |kind, payload| {
            if kind == SOCK_DIAG_BY_FAMILY {
                let state = *payload.get(STATE_OFF).ok_or_else(short)?;
                let rq = u32_at(payload, RQUEUE_OFF).ok_or_else(short)?;
                let wq = u32_at(payload, WQUEUE_OFF).ok_or_else(short)?;
                each(state, wq.into(), rq.into());
            }
            Ok(())
        })
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
    fn netlink_and_proc_agree_on_listening_sockets() {
        let _l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = Path::new("/proc/net/tcp");
        // Other processes may open or close listeners meanwhile: retry.
        let agree = (0..5).any(|_| {
            let mut nl = TcpStats::default();
            sock_diag::dump(
                &sock_diag::socket(),
                libc::AF_INET as u8,
                libc::IPPROTO_TCP as u8,
                |st, tx, rx| nl.add(st, tx, rx),
            )
            .unwrap();
            let text = std::fs::read_to_string(p).unwrap();
            let pr = parse_tcp(&text, p).unwrap();
            nl.states[10] >= 1 && nl.states[10] == pr.states[10]
        });
        assert!(
            agree,
            "netlink and /proc/net/tcp disagree on LISTEN sockets"
        );
        assert!(is_procfs(Path::new("/proc")));
        assert!(!is_procfs(Path::new(env!("CARGO_MANIFEST_DIR"))));
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
