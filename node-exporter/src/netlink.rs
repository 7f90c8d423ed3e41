//! A netlink dump, the one exchange the collectors need from the kernel's
//! netlink families (rtnetlink for qdiscs, sock_diag for TCP sockets): one
//! request with `NLM_F_DUMP`, then every reply message until `NLMSG_DONE`.

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

pub fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let bytes: [u8; 4] = b.get(off..off + 4)?.try_into().ok()?;
    Some(u32::from_ne_bytes(bytes))
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let bytes: [u8; 2] = b.get(off..off + 2)?.try_into().ok()?;
    Some(u16::from_ne_bytes(bytes))
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("netlink: {what}"))
}

/// Sends one dump request (message type `kind`, with `body` after the
/// header) on a `protocol` socket of type `sock_type`, and calls `each`
/// with the type and payload of every reply message. A kernel error
/// (`NLMSG_ERROR`) is the dump's error; a reply that stalls for 10 s too.
pub fn dump<E: From<io::Error>>(
    sock_type: libc::c_int,
    protocol: libc::c_int,
    kind: u16,
    body: &[u8],
    mut each: impl FnMut(u16, &[u8]) -> Result<(), E>,
) -> Result<(), E> {
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, sock_type | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error().into());
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
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::recv(fd.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.into());
        }
        let msgs = buf.get(..n as usize).ok_or_else(|| bad("short read"))?;
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
                    let errno = u32_at(payload, 0).ok_or_else(|| bad("truncated error"))? as i32;
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
