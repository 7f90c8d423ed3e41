//! `node_sockstat_*` from /proc/net/sockstat and /proc/net/sockstat6:
//! `node_sockstat_sockets_used`, and per protocol line `<PROTO>_<key>` for
//! the keys inuse, orphan, tw, alloc, mem, memory, plus `<PROTO>_mem_bytes`
//! (mem is in pages). Either file may be missing (IPv4 or IPv6 disabled).

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, NoData, Paths};
use crate::helpers::{is_no_data, read_kept};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "sockstat",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Sockstat {
            paths: f.paths.clone(),
            page_size: page_size(),
        }))
    },
};

/// The page size TCP/UDP `mem` is counted in (Go's `os.Getpagesize`).
fn page_size() -> i64 {
    // SAFETY: sysconf only reads a configuration value.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n
    } else {
        4096
    }
}

/// One protocol line, e.g. `TCP: inuse 5 orphan 0 tw 0 alloc 5 mem 219`.
/// Keys this collector does not know are parsed and dropped; a missing
/// `inuse` reads as 0, as in procfs.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Protocol<'a> {
    pub name: &'a str,
    pub inuse: i64,
    pub orphan: Option<i64>,
    pub tw: Option<i64>,
    pub alloc: Option<i64>,
    pub mem: Option<i64>,
    pub memory: Option<i64>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct SockstatFile<'a> {
    /// `sockets: used N` (IPv4 file only).
    pub used: Option<i64>,
    pub protocols: Vec<Protocol<'a>>,
}

/// Parses /proc/net/sockstat or sockstat6: `PROTO: key value key value ...`.
pub fn parse_sockstat<'a>(text: &'a str, path: &Path) -> anyhow::Result<SockstatFile<'a>> {
    let mut out = SockstatFile::default();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        let proto = first
            .strip_suffix(':')
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                anyhow!(
                    "parsing {} line {lineno}: expected \"PROTO: key value ...\", found {line:?}",
                    path.display()
                )
            })?;
        let mut p = Protocol {
            name: proto,
            ..Protocol::default()
        };
        let mut used = None;
        let mut pairs = 0;
        while let Some(key) = fields.next() {
            let value = fields.next().ok_or_else(|| {
                anyhow!(
                    "parsing {} line {lineno}: {proto} key {key} has no value",
                    path.display()
                )
            })?;
            let v: i64 = value.parse().map_err(|_| {
                anyhow!(
                    "parsing {} line {lineno}: {proto} {key}: {value:?} is not an integer",
                    path.display()
                )
            })?;
            pairs += 1;
            match key {
                "inuse" => p.inuse = v,
                "orphan" => p.orphan = Some(v),
                "tw" => p.tw = Some(v),
                "alloc" => p.alloc = Some(v),
                "mem" => p.mem = Some(v),
                "memory" => p.memory = Some(v),
                "used" => used = Some(v),
                _ => {}
            }
        }
        if pairs == 0 {
            return Err(anyhow!(
                "parsing {} line {lineno}: {proto} has no values",
                path.display()
            ));
        }
        if proto == "sockets" {
            out.used = Some(used.unwrap_or(0));
        } else {
            out.protocols.push(p);
        }
    }
    Ok(out)
}

struct Sockstat {
    paths: Paths,
    page_size: i64,
}

impl Sockstat {
    fn emit(&self, file: &SockstatFile<'_>, ipv6: bool, out: &mut MetricSet) {
        if let (false, Some(used)) = (ipv6, file.used) {
            out.gauge(
                "node_sockstat_sockets_used",
                "Number of IPv4 sockets in use.",
                &[],
                used as f64,
            );
        }
        for p in &file.protocols {
            let mem_bytes = p.mem.map(|m| m.saturating_mul(self.page_size));
            for (key, value) in [
                ("inuse", Some(p.inuse)),
                ("orphan", p.orphan),
                ("tw", p.tw),
                ("alloc", p.alloc),
                ("mem", p.mem),
                ("memory", p.memory),
                ("mem_bytes", mem_bytes),
            ] {
                let Some(v) = value else { continue };
                out.gauge(
                    format!("node_sockstat_{}_{key}", p.name),
                    format!("Number of {} sockets in state {key}.", p.name),
                    &[],
                    v as f64,
                );
            }
        }
    }
}

impl Collector for Sockstat {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let mut found = false;
        for (rel, ipv6) in [("net/sockstat", false), ("net/sockstat6", true)] {
            let path = self.paths.proc(rel);
            let text = match read_kept(&path) {
                Ok(t) => t,
                // IPv4 or IPv6 disabled on this kernel.
                Err(e) if is_no_data(&e) => continue,
                Err(e) => return Err(e),
            };
            found = true;
            self.emit(&parse_sockstat(&text, &path)?, ipv6, out);
        }
        if !found {
            return Err(NoData(format!(
                "neither {} nor {} exists",
                self.paths.proc("net/sockstat").display(),
                self.paths.proc("net/sockstat6").display()
            ))
            .into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/proc/net/sockstat";

    #[test]
    fn parses_ipv4_file() {
        let text = "sockets: used 47\n\
                    TCP: inuse 5 orphan 0 tw 2 alloc 5 mem 219\n\
                    UDP: inuse 0 mem 3\n\
                    FRAG: inuse 0 memory 0\n";
        let s = parse_sockstat(text, Path::new(P)).unwrap();
        assert_eq!(s.used, Some(47));
        assert_eq!(s.protocols.len(), 3);
        assert_eq!(
            s.protocols[0],
            Protocol {
                name: "TCP",
                inuse: 5,
                orphan: Some(0),
                tw: Some(2),
                alloc: Some(5),
                mem: Some(219),
                memory: None,
            }
        );
        assert_eq!(s.protocols[2].memory, Some(0));
    }

    #[test]
    fn unknown_keys_are_skipped_but_checked() {
        let s = parse_sockstat("TCP: inuse 1 newkey 4 mem 2\n", Path::new(P)).unwrap();
        assert_eq!(s.protocols[0].mem, Some(2));
        assert!(parse_sockstat("TCP: inuse 1 newkey x\n", Path::new(P)).is_err());
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        for (text, want) in [
            ("sockets: used 4\nTCP: inuse\n", "line 2"),
            ("sockets: used 4\nTCP: inuse 1 mem\n", "line 2"),
            ("TCP inuse 1\n", "line 1"),
            ("TCP:\n", "line 1"),
            ("TCP: inuse 1.5\n", "line 1"),
        ] {
            let err = parse_sockstat(text, Path::new(P)).unwrap_err().to_string();
            assert!(err.contains(P) && err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn mem_bytes_uses_the_page_size() {
        let c = Sockstat {
            paths: Paths::default(),
            page_size: 16384,
        };
        let s = parse_sockstat("TCP: inuse 1 mem 3\nUDP: inuse 0\n", Path::new(P)).unwrap();
        let mut out = MetricSet::new();
        c.emit(&s, false, &mut out);
        let get = |name: &str| {
            out.families()
                .iter()
                .find(|f| f.name == name)
                .map(|f| f.series[0].value.clone())
        };
        use exporter_toolkit::exposition::Value;
        assert_eq!(
            get("node_sockstat_TCP_mem_bytes"),
            Some(Value::Single(49152.0))
        );
        assert_eq!(get("node_sockstat_UDP_mem_bytes"), None);
        assert_eq!(get("node_sockstat_UDP_inuse"), Some(Value::Single(0.0)));
        // No sockets line in this file: no sockets_used.
        assert_eq!(get("node_sockstat_sockets_used"), None);
    }
}
