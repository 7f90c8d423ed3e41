//! `node_uname_info` from the uname(2) system call.

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::Collector;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "uname",
    default_enabled: true,
    flags: no_flags,
    build: |_| Ok(Box::new(Uname)),
};

struct Uname;

/// The fields of `struct utsname`, as strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtsName {
    pub sysname: String,
    pub nodename: String,
    pub release: String,
    pub version: String,
    pub machine: String,
    pub domainname: String,
}

/// Calls uname(2).
pub fn uname() -> anyhow::Result<UtsName> {
    // SAFETY: utsname is plain data; zeroed is a valid value and uname(2)
    // fills it with NUL-terminated strings.
    let mut buf: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `buf` is a valid, writable utsname.
    if unsafe { libc::uname(&mut buf) } != 0 {
        return Err(anyhow!("uname(2): {}", std::io::Error::last_os_error()));
    }
    Ok(UtsName {
        sysname: field(&buf.sysname),
        nodename: field(&buf.nodename),
        release: field(&buf.release),
        version: field(&buf.version),
        machine: field(&buf.machine),
        domainname: field(&buf.domainname),
    })
}

/// A NUL-terminated `c_char` array as a string (up to the array's end if
/// the kernel filled it completely).
fn field(raw: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = raw
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

impl Collector for Uname {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let u = uname()?;
        out.gauge(
            "node_uname_info",
            "Labeled system information as provided by the uname system call.",
            &[
                ("sysname", &u.sysname),
                ("release", &u.release),
                ("version", &u.version),
                ("machine", &u.machine),
                ("nodename", &u.nodename),
                ("domainname", &u.domainname),
            ],
            1.0,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uname_reports_linux() {
        let u = uname().unwrap();
        assert_eq!(u.sysname, "Linux");
        assert!(!u.release.is_empty());
        assert!(!u.machine.is_empty());
    }

    #[test]
    fn field_stops_at_nul_and_tolerates_a_full_array() {
        let raw: Vec<libc::c_char> = b"abc\0def".iter().map(|&b| b as libc::c_char).collect();
        assert_eq!(field(&raw), "abc");
        let full: Vec<libc::c_char> = b"xyz".iter().map(|&b| b as libc::c_char).collect();
        assert_eq!(field(&full), "xyz");
    }
}
