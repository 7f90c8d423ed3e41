//! blackbox_exporter's icmp prober: one echo request to the target (IPv4
//! or IPv6), waiting for its reply until the deadline. Like blackbox it
//! first tries the unprivileged ICMP datagram socket (allowed to the
//! groups in `net.ipv4.ping_group_range`), then a raw socket (root or
//! CAP_NET_RAW). `dont_fragment` and `ttl` are socket options here
//! (IP_MTU_DISCOVER, IP_TTL), so both kinds of socket can honour them.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;
use std::time::Instant as StdInstant;

use anyhow::{anyhow, bail, Context};
use exporter_toolkit::exposition::MetricSet;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

use super::common;
use super::config::Icmp;

/// What blackbox puts in the echo payload.
const PAYLOAD: &[u8] = b"Prometheus Blackbox Exporter";

#[derive(Default)]
struct Phases {
    resolve: f64,
    setup: f64,
    rtt: f64,
}

pub async fn probe(target: &str, m: &Icmp, deadline: Instant, out: &mut MetricSet) -> bool {
    let mut phases = Phases::default();
    let result = tokio::time::timeout_at(deadline, run(target, m, &mut phases, out))
        .await
        .unwrap_or_else(|_| Err(anyhow!("timed out waiting for the echo reply")));
    for (phase, secs) in [
        ("resolve", phases.resolve),
        ("setup", phases.setup),
        ("rtt", phases.rtt),
    ] {
        out.gauge(
            "probe_icmp_duration_seconds",
            "Duration of icmp request by phase",
            &[("phase", phase)],
            secs,
        );
    }
    match result {
        Ok(hop_limit) => {
            if let Some(h) = hop_limit {
                out.gauge(
                    "probe_icmp_reply_hop_limit",
                    "Replied packet hop limit (TTL for ipv4)",
                    &[],
                    h as f64,
                );
            }
            true
        }
        Err(e) => {
            super::common::log("error", "Probe failed", &[("err", &format!("{e:#}"))]);
            false
        }
    }
}

/// The echo identifier: the process id, random when that is 1 (in a
/// container every exporter would share it), as blackbox.
fn echo_id() -> u16 {
    static ID: OnceLock<u16> = OnceLock::new();
    *ID.get_or_init(|| match std::process::id() {
        1 => random_u16(),
        pid => pid as u16,
    })
}

/// Sequence numbers start at random, so that restarted exporters differ.
fn next_seq() -> u16 {
    static SEQ: OnceLock<AtomicU16> = OnceLock::new();
    SEQ.get_or_init(|| AtomicU16::new(random_u16()))
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_add(1)
}

fn random_u16() -> u16 {
    let mut b = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u16::from_be_bytes(b)
}

/// Returns the reply's hop limit (IPv4 TTL), when the kernel gave it.
async fn run(
    target: &str,
    m: &Icmp,
    phases: &mut Phases,
    out: &mut MetricSet,
) -> anyhow::Result<Option<u8>> {
    let (dst, secs) = common::resolve(target, &m.ip, out).await?;
    phases.resolve += secs;

    let setup = StdInstant::now();
    let v6 = dst.is_ipv6();
    let (socket, privileged) = open(v6).inspect_err(|e| {
        // A deployment problem rather than a target's: say it once where
        // it is seen without debug logging.
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| tracing::warn!("icmp probes cannot run: {e:#}"));
    })?;
    if let Some(src) = m.source_ip {
        if src.is_ipv6() != v6 {
            bail!("source_ip_address {src} is not of {dst}'s family");
        }
        socket
            .bind(&SockAddr::from(SocketAddr::new(src, 0)))
            .with_context(|| format!("binding to {src}"))?;
    }
    // 0 is "the system's default", as in blackbox.
    if let Some(ttl) = m.ttl.filter(|t| *t > 0) {
        if v6 {
            socket.set_unicast_hops_v6(ttl)
        } else {
            socket.set_ttl_v4(ttl)
        }
        .context("setting the TTL")?;
    }
    // IPv4 only, as blackbox: IPv6 routers never fragment, and forbidding
    // the sender to would fail payloads over the link's MTU.
    if m.dont_fragment && !v6 {
        set_dont_fragment(&socket).context("setting don't fragment")?;
    }
    // A reply's hop limit, where the kernel will tell it.
    let hop_limit_wanted = set_recv_hop_limit(&socket, v6).is_ok();
    socket.set_nonblocking(true)?;
    // SAFETY: the Socket owns its fd, open until the AsyncFd drops it, and
    // always answers as_raw_fd with that fd.
    let socket =
        unsafe { AsyncFd::register(socket) }.map_err(|e| anyhow!("registering the socket: {e}"))?;

    let id = echo_id();
    let seq = next_seq();
    let mut data = PAYLOAD.to_vec();
    if let Some(size) = m.payload_size.filter(|s| *s > 0) {
        data.resize(size, 0);
    }
    let request = echo(if v6 { 128 } else { 8 }, id, seq, &data, !v6);
    phases.setup += setup.elapsed().as_secs_f64();

    let rtt = StdInstant::now();
    let to = SockAddr::from(SocketAddr::new(dst, 0));
    loop {
        let mut guard = socket.writable().await?;
        match guard.try_io(|s| s.get_ref().send_to(&request, &to)) {
            Ok(r) => {
                r.with_context(|| format!("sending to {dst}"))?;
                break;
            }
            Err(_would_block) => continue,
        }
    }

    let mut buf = vec![0u8; 65_536];
    loop {
        let mut guard = socket.readable().await?;
        let (n, from, hop) = match guard.try_io(|s| recv(s.get_ref(), &mut buf)) {
            Ok(r) => r.context("reading a reply")?,
            Err(_would_block) => continue,
        };
        if from != Some(dst) {
            continue;
        }
        // A raw IPv4 socket hands over the IP header too.
        let icmp = if !v6 && privileged {
            let ihl = buf.first().map(|b| ((b & 0x0f) as usize) * 4).unwrap_or(0);
            buf.get(ihl..n).unwrap_or(&[])
        } else {
            &buf[..n]
        };
        // The kernel picks the id of a datagram socket's echoes itself.
        if is_our_reply(icmp, v6, privileged.then_some(id), seq, &data) {
            phases.rtt += rtt.elapsed().as_secs_f64();
            return Ok(hop.filter(|_| hop_limit_wanted));
        }
    }
}

/// An ICMP socket of the family: the unprivileged datagram kind, else raw;
/// `true` when raw.
fn open(v6: bool) -> anyhow::Result<(Socket, bool)> {
    let (domain, proto) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let dgram_err = match Socket::new(domain, Type::DGRAM, Some(proto)) {
        Ok(s) => return Ok((s, false)),
        Err(e) => e,
    };
    match Socket::new(domain, Type::RAW, Some(proto)) {
        Ok(s) => Ok((s, true)),
        Err(raw_err) => Err(anyhow!(
            "cannot open an ICMP socket: the unprivileged one failed ({dgram_err}; \
             net.ipv4.ping_group_range must include this process' group) and the raw \
             one failed ({raw_err}; it needs root or CAP_NET_RAW)"
        )),
    }
}

/// An echo request or reply. The checksum is computed for ICMPv4 only:
/// the kernel computes ICMPv6's (it covers a pseudo-header) and that of
/// datagram sockets.
fn echo(kind: u8, id: u16, seq: u16, data: &[u8], checksum: bool) -> Vec<u8> {
    let mut p = vec![kind, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(data);
    if checksum {
        let c = inet_checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// RFC 1071's one's complement sum.
fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether `p` is the echo reply to ours: same sequence and payload, and
/// same id unless the kernel chose it.
fn is_our_reply(p: &[u8], v6: bool, id: Option<u16>, seq: u16, data: &[u8]) -> bool {
    if p.len() < 8 || p[0] != if v6 { 129 } else { 0 } || p[1] != 0 {
        return false;
    }
    let got_id = u16::from_be_bytes([p[4], p[5]]);
    let got_seq = u16::from_be_bytes([p[6], p[7]]);
    id.is_none_or(|id| id == got_id) && got_seq == seq && &p[8..] == data
}

fn setsockopt_int(
    s: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the pointer and length describe one live c_int.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets DF on what an IPv4 socket sends (path MTU discovery "do").
fn set_dont_fragment(s: &Socket) -> io::Result<()> {
    setsockopt_int(
        s,
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        libc::IP_PMTUDISC_DO,
    )
}

fn set_recv_hop_limit(s: &Socket, v6: bool) -> io::Result<()> {
    if v6 {
        s.set_recv_hoplimit_v6(true)
    } else {
        setsockopt_int(s, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)
    }
}

/// One datagram, with its sender and the hop limit (TTL) it arrived with.
fn recv(s: &Socket, buf: &mut [u8]) -> io::Result<(usize, Option<IpAddr>, Option<u8>)> {
    let mut addr = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below outlives the
    // recvmsg call, with its true length.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = addr.as_mut_ptr().cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg is set up as above; the fd is open.
    let n = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut hop = None;
    // SAFETY: the CMSG macros walk the control buffer the kernel filled,
    // within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let (level, kind) = ((*c).cmsg_level, (*c).cmsg_type);
            if (level == libc::IPPROTO_IP && kind == libc::IP_TTL)
                || (level == libc::IPPROTO_IPV6 && kind == libc::IPV6_HOPLIMIT)
            {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::c_int);
                hop = u8::try_from(v).ok();
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    // SAFETY: the kernel wrote msg_namelen bytes of a sockaddr there.
    let storage = unsafe { addr.assume_init() };
    let from = match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says it is a sockaddr_in.
            let a: libc::sockaddr_in =
                unsafe { std::ptr::read((&storage as *const libc::sockaddr_storage).cast()) };
            Some(IpAddr::from(u32::from_be(a.sin_addr.s_addr).to_be_bytes()))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says it is a sockaddr_in6.
            let a: libc::sockaddr_in6 =
                unsafe { std::ptr::read((&storage as *const libc::sockaddr_storage).cast()) };
            Some(IpAddr::from(a.sin6_addr.s6_addr))
        }
        _ => None,
    };
    Ok((n as usize, from, hop))
}

#[cfg(test)]
mod tests {
    use super::super::Modules;
    use super::*;

    #[test]
    fn checksum_of_a_known_echo() {
        // An echo request whose checksum field holds its checksum sums to 0.
        let p = echo(8, 0x1234, 1, b"abc", true);
        assert_eq!(inet_checksum(&p), 0);
        assert_eq!(inet_checksum(&[0xff, 0xff]), 0);
    }

    #[test]
    fn replies_are_matched_on_id_seq_and_payload() {
        let reply = echo(0, 7, 9, PAYLOAD, true);
        assert!(is_our_reply(&reply, false, Some(7), 9, PAYLOAD));
        assert!(is_our_reply(&reply, false, None, 9, PAYLOAD));
        assert!(!is_our_reply(&reply, false, Some(8), 9, PAYLOAD));
        assert!(!is_our_reply(&reply, false, Some(7), 10, PAYLOAD));
        assert!(!is_our_reply(&reply, true, Some(7), 9, PAYLOAD));
        assert!(!is_our_reply(&reply[..5], false, Some(7), 9, PAYLOAD));
        // Our own request, looped back to a raw socket, is not the reply.
        let request = echo(8, 7, 9, PAYLOAD, true);
        assert!(!is_our_reply(&request, false, Some(7), 9, PAYLOAD));
    }

    #[test]
    fn bad_icmp_modules_name_module_and_option() {
        for (yaml, word) in [
            (
                "modules:\n  p:\n    prober: icmp\n    icmp:\n      tll: 3\n",
                "tll",
            ),
            (
                "modules:\n  p:\n    prober: icmp\n    icmp:\n      ttl: 300\n",
                "icmp.ttl",
            ),
            (
                "modules:\n  p:\n    prober: icmp\n    icmp:\n      preferred_ip_protocol: ip5\n",
                "preferred_ip_protocol",
            ),
            (
                "modules:\n  p:\n    prober: icmp\n    icmp:\n      source_ip_address: nowhere\n",
                "source_ip_address",
            ),
        ] {
            let err = format!("{:#}", Modules::parse(yaml).unwrap_err());
            assert!(err.contains("\"p\"") && err.contains(word), "{yaml}: {err}");
        }
    }
}
