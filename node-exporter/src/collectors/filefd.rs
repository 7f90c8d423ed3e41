//! `node_filefd_allocated` and `node_filefd_maximum` from
//! /proc/sys/fs/file-nr (`allocated  unused  maximum`; the middle number has
//! been 0 since Linux 2.6 and is not reported).

use std::path::Path;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, Paths};
use crate::helpers::{parse_f64, read_kept};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "filefd",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Filefd {
            paths: f.paths.clone(),
        }))
    },
};

/// Parses file-nr into (allocated, maximum).
pub fn parse_file_nr(text: &str, path: &Path) -> anyhow::Result<(f64, f64)> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [allocated, _unused, maximum, ..] = fields[..] else {
        return Err(anyhow!(
            "parsing {}: expected 3 numbers, found {text:?}",
            path.display()
        ));
    };
    Ok((
        parse_f64(allocated, path, 1, "allocated")?,
        parse_f64(maximum, path, 1, "maximum")?,
    ))
}

struct Filefd {
    paths: Paths,
}

impl Collector for Filefd {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let path = self.paths.proc("sys/fs/file-nr");
        let (allocated, maximum) = parse_file_nr(&read_kept(&path)?, &path)?;
        out.gauge(
            "node_filefd_allocated",
            "File descriptor statistics: allocated.",
            &[],
            allocated,
        );
        out.gauge(
            "node_filefd_maximum",
            "File descriptor statistics: maximum.",
            &[],
            maximum,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/proc/sys/fs/file-nr";

    #[test]
    fn parses_allocated_and_maximum() {
        assert_eq!(
            parse_file_nr("919\t0\t2466170\n", Path::new(P)).unwrap(),
            (919.0, 2466170.0)
        );
        // 64-bit maximum (fs.file-max = LONG_MAX on some distributions).
        assert_eq!(
            parse_file_nr("1024\t0\t9223372036854775807\n", Path::new(P)).unwrap(),
            (1024.0, 9223372036854775807.0)
        );
    }

    #[test]
    fn truncated_or_garbage_names_the_file() {
        for text in ["919\n", "", "919\t0\n", "a\t0\t5\n", "5\t0\tz\n"] {
            let err = parse_file_nr(text, Path::new(P)).unwrap_err().to_string();
            assert!(err.contains(P), "{text:?}: {err}");
        }
    }
}
