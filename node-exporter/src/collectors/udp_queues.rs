//! `node_udp_queues{ip="v4"|"v6",queue="rx"|"tx"}`: the bytes queued on all
//! UDP sockets, summed from the tx_queue/rx_queue columns of /proc/net/udp
//! and /proc/net/udp6. A family whose file is missing is skipped; both
//! missing is "no data".

use std::path::Path;

use exporter_toolkit::exposition::MetricSet;

use super::tcpstat::for_each_socket;
use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, NoData, Paths};
use crate::helpers::is_no_data;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "udp_queues",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(UdpQueues {
            paths: f.paths.clone(),
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
}

impl Collector for UdpQueues {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let mut found = false;
        for (ip, file) in [("v4", "net/udp"), ("v6", "net/udp6")] {
            let (mut tx, mut rx) = (0u64, 0u64);
            match for_each_socket(&self.paths.proc(file), |_, t, r| {
                tx += t;
                rx += r;
            }) {
                Ok(()) => {}
                Err(e) if is_no_data(&e) => continue,
                Err(e) => return Err(e),
            }
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
