//! A minimal generic netlink client (NETLINK_GENERIC): resolve a family by
//! name, send one request and hand every reply message's attributes to a
//! callback. Enough for nl80211 (the wifi collector); errors the kernel
//! returns come back as `io::Error`s with their errno, so callers can tell
//! "no such family / device" (ENOENT, ENODEV) from real failures.

use std::io;

use crate::netlink::bad;
pub use crate::netlink::{attribute, attributes, u16_at, u32_at, u64_at};

const NLMSG_HDRLEN: usize = 16;
const GENL_HDRLEN: usize = 4;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_MULTI: u16 = 2;
pub const NLM_F_DUMP: u16 = 0x300;
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;

/// A NUL-terminated string attribute's text.
pub fn string_of(data: &[u8]) -> String {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(&data[..end]).into_owned()
}

pub struct Socket {
    fd: libc::c_int,
    seq: u32,
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.fd) };
    }
}

impl Socket {
    pub fn open() -> io::Result<Socket> {
        // SAFETY: plain socket(2) call.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_GENERIC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let timeout = libc::timeval {
            tv_sec: 10,
            tv_usec: 0,
        };
        // SAFETY: timeout is a valid timeval for SO_RCVTIMEO.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        Ok(Socket { fd, seq: 0 })
    }

    /// The id of the generic netlink family `name`; ENOENT if the kernel
    /// has none (e.g. no cfg80211 for "nl80211").
    pub fn family(&mut self, name: &str) -> io::Result<u16> {
        let mut attr_name = name.as_bytes().to_vec();
        attr_name.push(0);
        let attrs = attribute(CTRL_ATTR_FAMILY_NAME, &attr_name);
        let mut id = None;
        self.request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 0, &attrs, |_, a| {
            for (k, d) in attributes(a)? {
                if k == CTRL_ATTR_FAMILY_ID {
                    id = u16_at(d, 0);
                }
            }
            Ok(())
        })?;
        id.ok_or_else(|| bad(&format!("no id for family {name}")))
    }

    /// Sends `cmd` with `attrs` to `family` and calls `each(cmd, attributes)`
    /// for every reply, until the end of a dump (`flags` has NLM_F_DUMP), an
    /// acknowledgement, or the single reply of a plain request.
    pub fn request(
        &mut self,
        family: u16,
        cmd: u8,
        flags: u16,
        attrs: &[u8],
        mut each: impl FnMut(u8, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let len = NLMSG_HDRLEN + GENL_HDRLEN + attrs.len();
        let mut req = Vec::with_capacity(len);
        req.extend((len as u32).to_ne_bytes());
        req.extend(family.to_ne_bytes());
        req.extend((NLM_F_REQUEST | flags).to_ne_bytes());
        req.extend(self.seq.to_ne_bytes());
        req.extend(0u32.to_ne_bytes());
        req.extend([cmd, 1, 0, 0]);
        req.extend(attrs);
        // SAFETY: a zeroed sockaddr_nl is valid; pid 0 addresses the kernel.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: req and addr outlive the call; lengths are theirs.
        let sent = unsafe {
            libc::sendto(
                self.fd,
                req.as_ptr().cast(),
                req.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: buf is valid for buf.len() bytes.
            let n = unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let msgs = buf.get(..n as usize).ok_or_else(|| bad("short read"))?;
            if msgs.is_empty() {
                return Err(bad("connection closed before the end of the reply"));
            }
            if walk_messages(msgs, self.seq, &mut each)? {
                return Ok(());
            }
        }
    }
}

/// Hands each generic netlink message of one datagram to `each`; true once
/// the reply is complete. Messages of another sequence number (a late
/// reply to an abandoned request) are skipped.
pub fn walk_messages(
    msgs: &[u8],
    seq: u32,
    each: &mut impl FnMut(u8, &[u8]) -> io::Result<()>,
) -> io::Result<bool> {
    let mut off = 0;
    while off + NLMSG_HDRLEN <= msgs.len() {
        let len = u32_at(msgs, off).ok_or_else(|| bad("truncated header"))? as usize;
        let kind = u16_at(msgs, off + 4).ok_or_else(|| bad("truncated header"))?;
        let flags = u16_at(msgs, off + 6).ok_or_else(|| bad("truncated header"))?;
        let msg_seq = u32_at(msgs, off + 8).ok_or_else(|| bad("truncated header"))?;
        if len < NLMSG_HDRLEN || len > msgs.len() - off {
            return Err(bad("bad message length"));
        }
        let payload = &msgs[off + NLMSG_HDRLEN..off + len];
        off += (len + 3) & !3;
        if msg_seq != seq {
            continue;
        }
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = u32_at(payload, 0).ok_or_else(|| bad("truncated error"))? as i32;
                if errno != 0 {
                    return Err(io::Error::from_raw_os_error(errno.wrapping_neg()));
                }
                return Ok(true);
            }
            _ => {
                if payload.len() < GENL_HDRLEN {
                    return Err(bad("short generic netlink message"));
                }
                each(payload[0], &payload[GENL_HDRLEN..])?;
                if flags & NLM_F_MULTI == 0 {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_the_controller_itself_and_not_a_made_up_family() {
        let mut s = Socket::open().unwrap();
        assert_eq!(s.family("nlctrl").unwrap(), GENL_ID_CTRL);
        let err = s.family("no-such-fam").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
    }

    fn message(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = ((NLMSG_HDRLEN + payload.len()) as u32)
            .to_ne_bytes()
            .to_vec();
        m.extend(kind.to_ne_bytes());
        m.extend(flags.to_ne_bytes());
        m.extend(seq.to_ne_bytes());
        m.extend(0u32.to_ne_bytes());
        m.extend(payload);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    #[test]
    fn messages_dump_end_errors_and_other_sequences() {
        let mut got = Vec::new();
        let mut each = |cmd: u8, a: &[u8]| {
            got.push((cmd, a.to_vec()));
            Ok(())
        };
        let mut dg = message(30, NLM_F_MULTI, 7, &[5, 1, 0, 0, 9, 9, 9, 9]);
        dg.extend(message(30, NLM_F_MULTI, 6, &[6, 1, 0, 0]));
        assert!(!walk_messages(&dg, 7, &mut each).unwrap());
        dg.extend(message(NLMSG_DONE, NLM_F_MULTI, 7, &[0; 4]));
        assert!(walk_messages(&dg, 7, &mut each).unwrap());
        assert_eq!(got, vec![(5, vec![9; 4]), (5, vec![9; 4])]);
        let err = message(NLMSG_ERROR, 0, 1, &(-19i32).to_ne_bytes());
        let e = walk_messages(&err, 1, &mut |_, _| Ok(())).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV));
        for cut in [3, 17, dg.len() - 1] {
            let mut bytes = dg[..cut].to_vec();
            if cut > 4 {
                bytes[0..4].copy_from_slice(&(dg.len() as u32).to_ne_bytes());
            }
            let _ = walk_messages(&bytes, 7, &mut |_, _| Ok(()));
        }
        let short = message(30, 0, 1, &[1, 2]);
        assert!(walk_messages(&short, 1, &mut |_, _| Ok(())).is_err());
    }

    #[test]
    fn attributes_round_trip_and_overruns() {
        let mut b = attribute(1, b"abc\0");
        b.extend(attribute(0x8002, &7u32.to_ne_bytes()));
        let a = attributes(&b).unwrap();
        assert_eq!(a[0], (1, &b"abc\0"[..]));
        assert_eq!(a[1].0, 2);
        assert_eq!(string_of(a[0].1), "abc");
        let mut broken = b.clone();
        broken[0] = 200;
        assert!(attributes(&broken).is_err());
        assert!(attributes(&b[..b.len() - 2]).is_err());
    }
}
