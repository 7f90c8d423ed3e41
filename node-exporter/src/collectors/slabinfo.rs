//! `node_slabinfo_*{slab}`: per kernel slab cache of /proc/slabinfo
//! (version 2.1) its active and total objects, object size, objects and
//! pages per slab, filtered by `--collector.slabinfo.slabs-include` /
//! `-exclude`, as node_exporter. /proc/slabinfo is readable by root only:
//! elsewhere the collector fails naming the file, as node_exporter's does.

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::CollectorSpec;
use crate::cli::string_flag;
use crate::collector::{Collector, Paths};
use crate::device_filter::DeviceFilter;
use crate::helpers::read_kept;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "slabinfo",
    default_enabled: false,
    flags: || {
        vec![
            string_flag(
                "collector.slabinfo.slabs-include",
                ".*",
                "Regexp of slabs to include in slabinfo collector.",
            ),
            string_flag(
                "collector.slabinfo.slabs-exclude",
                "",
                "Regexp of slabs to exclude in slabinfo collector.",
            ),
        ]
    },
    build: |f| {
        Ok(Box::new(Slabinfo {
            paths: f.paths.clone(),
            filter: DeviceFilter::new(
                "collector.slabinfo.slabs-exclude",
                &f.string("collector.slabinfo.slabs-exclude"),
                "collector.slabinfo.slabs-include",
                &f.string("collector.slabinfo.slabs-include"),
            )?,
        }))
    },
};

struct Slabinfo {
    paths: Paths,
    filter: DeviceFilter,
}

/// One slab cache: name, active objects, objects, object size, objects
/// per slab, pages per slab.
pub type Slab = (String, [i64; 5]);

/// The slab lines of /proc/slabinfo 2.1: each must have procfs' 16
/// single-space-separated fields, every number a number.
pub fn parse_slabinfo(text: &str, path: &Path) -> anyhow::Result<Vec<Slab>> {
    let mut out: Vec<Slab> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.contains("slabinfo -") || line.contains("# name") {
            continue;
        }
        let bad = || anyhow!("parsing {} line {}: {line:?}", path.display(), n + 1);
        // procfs splits on runs of whitespace without trimming: a leading
        // or trailing blank makes an empty field, and the line is refused.
        let fields = collapse_blanks(line);
        if fields.len() != 16 {
            return Err(bad());
        }
        let num = |i: usize| fields[i].parse::<i64>().map_err(|_| bad());
        for i in [8, 9, 10, 13, 14, 15] {
            num(i)?;
        }
        // One slab twice would be one series twice: the scrape's end.
        if out.iter().any(|(name, _)| name == fields[0]) {
            return Err(anyhow!(
                "parsing {} line {}: slab {:?} listed twice",
                path.display(),
                n + 1,
                fields[0]
            ));
        }
        out.push((
            fields[0].to_string(),
            [num(1)?, num(2)?, num(3)?, num(4)?, num(5)?],
        ));
    }
    Ok(out)
}

/// Go's `regexp.MustCompile(`\s+`).ReplaceAllString(line, " ")` followed by
/// `strings.Split(.., " ")`.
fn collapse_blanks(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_blank = false;
    for (i, c) in line.char_indices() {
        if c.is_whitespace() {
            if !in_blank {
                out.push(&line[start..i]);
                in_blank = true;
            }
        } else if in_blank {
            start = i;
            in_blank = false;
        }
    }
    out.push(if in_blank { "" } else { &line[start..] });
    out
}

impl Collector for Slabinfo {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("slabinfo");
        for (slab, [active, objects, size, per_slab, pages]) in
            parse_slabinfo(&read_kept(&path)?, &path)?
        {
            if self.filter.ignored(&slab) {
                continue;
            }
            let labels = [("slab", slab.as_str())];
            for (name, help, v) in [
                ("node_slabinfo_active_objects", "The number of objects that are currently active (i.e., in use).", active),
                ("node_slabinfo_objects", "The total number of allocated objects (i.e., objects that are both in use and not in use).", objects),
                ("node_slabinfo_object_size_bytes", "The size of objects in this slab, in bytes.", size),
                ("node_slabinfo_objects_per_slab", "The number of objects stored in each slab.", per_slab),
                ("node_slabinfo_pages_per_slab", "The number of pages allocated for each slab.", pages),
            ] {
                out.gauge(name, help, &labels, v as f64);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{collect, write};

    const SLABINFO: &str = "slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>
tw_sock_TCP          704    864    256   32    2 : tunables    0    0    0 : slabdata     27     27      0
kmalloc-8192         132    148   8192    4    8 : tunables    0    0    0 : slabdata     37     37      0
";

    fn run(root: &Path, include: &str, exclude: &str) -> anyhow::Result<String> {
        collect(&Slabinfo {
            paths: Paths {
                procfs: root.into(),
                ..Paths::default()
            },
            filter: DeviceFilter::new("x", exclude, "i", include)?,
        })
    }

    #[test]
    fn slabs_filtered_by_name() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "slabinfo", SLABINFO);
        let text = run(dir.path(), ".*", "").unwrap();
        for want in [
            "node_slabinfo_active_objects{slab=\"tw_sock_TCP\"} 704\n",
            "node_slabinfo_objects{slab=\"kmalloc-8192\"} 148\n",
            "node_slabinfo_object_size_bytes{slab=\"kmalloc-8192\"} 8192\n",
            "node_slabinfo_objects_per_slab{slab=\"tw_sock_TCP\"} 32\n",
            "node_slabinfo_pages_per_slab{slab=\"kmalloc-8192\"} 8\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        let text = run(dir.path(), "^kmalloc", "").unwrap();
        assert!(
            !text.contains("tw_sock") && text.contains("kmalloc"),
            "{text}"
        );
        let text = run(dir.path(), ".*", "8192").unwrap();
        assert!(
            text.contains("tw_sock") && !text.contains("kmalloc"),
            "{text}"
        );
    }

    #[test]
    fn truncated_and_garbage_lines_name_the_file() {
        let p = Path::new("/proc/slabinfo");
        for bad in [
            "tw_sock_TCP 704 864 256 32 2 : tunables 0 0 0 : slabdata 27 27\n",
            "tw_sock_TCP 704 864 256 32 2 : tunables 0 0 0 : slabdata 27 27 x\n",
            " tw_sock_TCP 704 864 256 32 2 : tunables 0 0 0 : slabdata 27 27 0\n",
            "tw_sock_TCP 7.5 864 256 32 2 : tunables 0 0 0 : slabdata 27 27 0\n",
            "\n",
            "a 1 1 1 1 1 : tunables 0 0 0 : slabdata 1 1 0\na 1 1 1 1 1 : tunables 0 0 0 : slabdata 1 1 0\n",
        ] {
            let err = parse_slabinfo(bad, p).unwrap_err().to_string();
            assert!(err.contains("/proc/slabinfo line "), "{bad:?}: {err}");
        }
        assert_eq!(collapse_blanks("a  b\tc "), vec!["a", "b", "c", ""]);
    }
}
