//! `node_udp_queues{ip="v4"|"v6",queue="rx"|"tx"}`: the bytes queued on all
//! UDP sockets, summed from the tx_queue/rx_queue columns of /proc/net/udp
//! and /proc/net/udp6. A family whose file is missing is skipped; both
//! missing is "no data".
//!
//! On a real procfs the same sums come from a sock_diag dump, as tcpstat's:
//! the kernel walks its whole UDP hash table (tens of thousands of slots)
//! for every read(2) of those files, twice per file, and formats each
//! socket; the dump walks it once per family. Both show the exporter's own
//! network namespace and the same queue values (`udp_rqueue_get`,
//! `sk_wmem_alloc_get`).

use std::path::Path;

use exporter_toolkit::exposition::MetricSet;

use super::tcpstat::{for_each_socket, is_procfs, sock_diag};
use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, NoData, Paths};
use crate::helpers::is_no_data;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "udp_queues",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(UdpQueues {
            netlink: is_procfs(&f.paths.procfs),
            paths: f.paths.clone(),
            socket: sock_diag::socket(),
        }))
    },
};

/// Summed (tx_queue, rx_queue) of a whole /proc/net/udp[6] text.
pub fn parse_udp(text: &str, path: &Path) -> anyhow::Result<(u64, u64)> {
    let (mut tx, mut rx) = (0u64, 0u64);
    for (i, line) in text.lines().enumerate().skip(1) {
        if let Some((_, t, r)) = super::tcpstat::parse_socket_line(line, path, i + 1)? {
            tx += t;
            rx += r;
        }
    }
    Ok((tx, rx))
}

struct UdpQueues {
    paths: Paths,
    netlink: bool,
    socket: crate::netlink::KeptSocket,
}

impl UdpQueues {
    /// The (tx, rx) sums of one family: over netlink when it can, else from
    /// the file; `None` when the family's file does not exist.
    fn sums(&self, family: libc::c_int, file: &str) -> anyhow::Result<Option<(u64, u64)>> {
        let path = self.paths.proc(file);
        let (mut tx, mut rx) = (0u64, 0u64);
        if self.netlink && path.exists() {
            match sock_diag::dump(
                &self.socket,
                family as u8,
                libc::IPPROTO_UDP as u8,
                |_, t, r| {
                    tx += t;
                    rx += r;
                },
            ) {
                Ok(()) => return Ok(Some((tx, rx))),
                Err(e) => {
                    tracing::debug!(error = %e, "udp_queues: netlink sock_diag failed, reading {}", path.display());
                    (tx, rx) = (0, 0);
                }
            }
        }
        match for_each_socket(&path, |_, t, r| {
            tx += t;
            rx += r;
        }) {
            Ok(()) => Ok(Some((tx, rx))),
            Err(e) if is_no_data(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Collector for UdpQueues {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let mut found = false;
        for (ip, family, file) in [
            ("v4", libc::AF_INET, "net/udp"),
            ("v6", libc::AF_INET6, "net/udp6"),
        ] {
            let Some((tx, rx)) = self.sums(family, file)? else {
                continue;
            };
            found = true;
            for (queue, v) in [("tx", tx), ("rx", rx)] {
                out.gauge(
                    "node_udp_queues",
                    "Number of allocated memory in the kernel for UDP datagrams in bytes.",
                    &[("queue", queue), ("ip", ip)],
                    v as f64,
                );
            }
        }
        if !found {
            return Err(NoData(format!(
                "neither {} nor {} exists",
                self.paths.proc("net/udp").display(),
                self.paths.proc("net/udp6").display()
            ))
            .into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_queues() {
        let text = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  296: 00000000:0044 00000000:0000 07 00000000:00000A00 00:00000000 00000000     0        0 12345 2 0000000000000000 0
  512: 3500007F:0035 00000000:0000 07 00000100:00000200 00:00000000 00000000   101        0 2345 2 0000000000000000 12
";
        assert_eq!(parse_udp(text, Path::new("udp")).unwrap(), (0x100, 0xc00));
    }

    #[test]
    fn netlink_and_proc_agree_on_queued_datagrams() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..4 {
            sender
                .send_to(&[7u8; 200], receiver.local_addr().unwrap())
                .unwrap();
        }
        let paths = Paths::default();
        assert!(is_procfs(&paths.procfs));
        let over_netlink = UdpQueues {
            paths: paths.clone(),
            netlink: true,
            socket: sock_diag::socket(),
        };
        let from_files = UdpQueues {
            paths,
            netlink: false,
            socket: sock_diag::socket(),
        };
        // Other processes' sockets may change in between: retry.
        let agree = (0..5).any(|_| {
            let a = over_netlink.sums(libc::AF_INET, "net/udp").unwrap();
            let b = from_files.sums(libc::AF_INET, "net/udp").unwrap();
            a == b && a.is_some_and(|(_, rx)| rx >= 800)
        });
        assert!(agree, "netlink and /proc/net/udp disagree on queued bytes");
    }

    #[test]
    fn garbage_is_an_error_naming_file_and_line() {
        let err = parse_udp(
            "hdr\n  296: 00000000:0044 00000000:0000 07 0000000000000A00\n",
            Path::new("/proc/net/udp"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/proc/net/udp line 2"), "{err}");
    }
}
