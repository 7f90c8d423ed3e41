//! A netlink dump, the one exchange the collectors need from the kernel's
//! netlink families (rtnetlink for qdiscs, sock_diag for TCP sockets): one
//! request with `NLM_F_DUMP`, then every reply message until `NLMSG_DONE`;
//! and the byte and attribute readers every netlink user here shares.

use std::io;

pub const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;

struct Fd(libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.0) };
    }
}

pub fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

pub fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

pub fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

pub fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("netlink: {what}"))
}

/// The netlink attributes of `b` as (type without the nested/byte-order
/// flags, payload). A length running past the buffer is an error.
pub fn attributes(mut b: &[u8]) -> io::Result<Vec<(u16, &[u8])>> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
        let kind = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            return Err(bad(&format!(
                "attribute of length {len} in {} bytes",
                b.len()
            )));
        }
        out.push((kind, &b[4..len]));
        b = b.get((len + 3) & !3..).unwrap_or(&[]);
    }
    if !b.is_empty() {
        return Err(bad(&format!("{} bytes left after the attributes", b.len())));
    }
    Ok(out)
}

/// One attribute, encoded and padded.
pub fn attribute(kind: u16, data: &[u8]) -> Vec<u8> {
    let mut v = ((4 + data.len()) as u16).to_ne_bytes().to_vec();
    v.extend(kind.to_ne_bytes());
    v.extend(data);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

/// Sends one dump request on a socket of its own (see [`Socket::dump`]).
pub fn dump<E: From<io::Error>>(
    sock_type: libc::c_int,
    protocol: libc::c_int,
    kind: u16,
    body: &[u8],
    each: impl FnMut(u16, &[u8]) -> Result<(), E>,
) -> Result<(), E> {
    Socket::open(sock_type, protocol)?.dump(kind, body, each)
}

/// A netlink socket kept between scrapes by a collector that dumps on every
/// one: creating and closing a socket cost about as much as a small dump.
/// Overlapping scrapes each get one (the second opens its own); a socket
/// whose dump failed is closed, as unread replies may be left in it.
pub struct KeptSocket {
    sock_type: libc::c_int,
    protocol: libc::c_int,
    idle: std::sync::Mutex<Option<Socket>>,
}

impl KeptSocket {
    pub const fn new(sock_type: libc::c_int, protocol: libc::c_int) -> KeptSocket {
        KeptSocket {
            sock_type,
            protocol,
            idle: std::sync::Mutex::new(None),
        }
    }

    /// [`Socket::dump`] on the kept socket (opened when there is none).
    pub fn dump<E: From<io::Error>>(
        &self,
        kind: u16,
        body: &[u8],
        each: impl FnMut(u16, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut socket = match idle {
            Some(s) => s,
            None => Socket::open(self.sock_type, self.protocol)?,
        };
        socket.dump(kind, body, each)?;
        *self.idle.lock().unwrap_or_else(|e| e.into_inner()) = Some(socket);
        Ok(())
    }
}

/// An open netlink socket with its receive buffer.
pub struct Socket {
    fd: Fd,
    buf: Vec<u8>,
}

impl Socket {
    /// A `protocol` socket of type `sock_type` whose reads give up after
    /// 10 s without a reply.
    pub fn open(sock_type: libc::c_int, protocol: libc::c_int) -> io::Result<Socket> {
        // SAFETY: plain socket(2) call.
        let fd =
            unsafe { libc::socket(libc::AF_NETLINK, sock_type | libc::SOCK_CLOEXEC, protocol) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = Fd(fd);
        let timeout = libc::timeval {
            tv_sec: 10,
            tv_usec: 0,
        };
        // SAFETY: timeout is a valid timeval for SO_RCVTIMEO.
        unsafe {
            libc::setsockopt(
                fd.0,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        // Never zeroed: only the pages replies are written to are touched.
        Ok(Socket {
            fd,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Sends one dump request (message type `kind`, with `body` after the
    /// header) and calls `each` with the type and payload of every reply
    /// message. A kernel error (`NLMSG_ERROR`) is the dump's error; a reply
    /// that stalls for 10 s too.
    pub fn dump<E: From<io::Error>>(
        &mut self,
        kind: u16,
        body: &[u8],
        mut each: impl FnMut(u16, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let fd = &self.fd;
        let mut req = vec![0u8; NLMSG_HDRLEN];
        req[0..4].copy_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        req[4..6].copy_from_slice(&kind.to_ne_bytes());
        req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        req[8..12].copy_from_slice(&1u32.to_ne_bytes());
        req.extend_from_slice(body);
        // SAFETY: a zeroed sockaddr_nl is valid; pid 0 addresses the kernel.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: req and addr outlive the call; lengths are theirs.
        let sent = unsafe {
            libc::sendto(
                fd.0,
                req.as_ptr().cast(),
                req.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error().into());
        }
        let buf = &mut self.buf;
        loop {
            buf.clear();
            // SAFETY: the buffer has room for capacity() bytes; recv writes
            // n of them, and only those are then taken as its contents.
            let n = unsafe {
                libc::recv(
                    fd.0,
                    buf.as_mut_ptr().cast(),
                    buf.capacity(),
                    libc::MSG_TRUNC,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e.into());
            }
            // With MSG_TRUNC, n is the datagram's whole length.
            let n = n as usize;
            if n > buf.capacity() {
                return Err(bad(&format!("a {n}-byte reply overran the buffer")).into());
            }
            // SAFETY: recv initialised the first n bytes.
            unsafe { buf.set_len(n) };
            let msgs = &buf[..];
            if msgs.is_empty() {
                return Err(bad("connection closed before the end of the dump").into());
            }
            let mut off = 0;
            while off + NLMSG_HDRLEN <= msgs.len() {
                let len = u32_at(msgs, off).ok_or_else(|| bad("truncated header"))? as usize;
                let msg_kind = u16_at(msgs, off + 4).ok_or_else(|| bad("truncated header"))?;
                if len < NLMSG_HDRLEN || off + len > msgs.len() {
                    return Err(bad("bad message length").into());
                }
                let payload = &msgs[off + NLMSG_HDRLEN..off + len];
                match msg_kind {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let errno =
                            u32_at(payload, 0).ok_or_else(|| bad("truncated error"))? as i32;
                        if errno != 0 {
                            return Err(io::Error::from_raw_os_error(-errno).into());
                        }
                    }
                    _ => each(msg_kind, payload)?,
                }
                off += (len + 3) & !3;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept_fd(k: &KeptSocket) -> Option<libc::c_int> {
        k.idle.lock().unwrap().as_ref().map(|s| s.fd.0)
    }

    /// One socket serves dump after dump; one whose dump failed is closed.
    #[test]
    fn a_kept_socket_is_reused_and_dropped_after_a_failure() {
        const RTM_NEWLINK: u16 = 16;
        let kept = KeptSocket::new(libc::SOCK_RAW, libc::NETLINK_ROUTE);
        let links = |kind: u16| {
            let mut n = 0;
            kept.dump(kind, &[0u8; 16], |k, _| {
                n += usize::from(k == RTM_NEWLINK);
                Ok::<(), io::Error>(())
            })
            .map(|()| n)
        };
        assert!(links(libc::RTM_GETLINK).unwrap() >= 1, "lo at least");
        let fd = kept_fd(&kept).expect("kept after a dump");
        assert!(links(libc::RTM_GETLINK).unwrap() >= 1);
        assert_eq!(kept_fd(&kept), Some(fd), "the same socket");
        // A message type rtnetlink does not know: the kernel's error.
        assert!(links(0x3fff).is_err());
        assert_eq!(kept_fd(&kept), None);
        assert!(links(libc::RTM_GETLINK).unwrap() >= 1, "a new socket");
    }
}
