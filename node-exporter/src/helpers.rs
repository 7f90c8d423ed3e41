//! Reading and parsing helpers shared by collectors. Every error names the
//! file it came from, so that a bad /proc or /sys shows up in the log with
//! the place to look.

use std::path::Path;

use anyhow::{anyhow, Context};

use crate::collector::NoData;

/// Reads a whole file; "not found" becomes [`NoData`] so that a kernel
/// without the feature is a quiet failure, not an error.
pub fn read_file(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(NoData(format!("{} does not exist", path.display())).into())
        }
        Err(e) => Err(anyhow!("reading {}: {e}", path.display())),
    }
}

/// Reads a file holding one value (sysfs attributes), trimmed.
pub fn read_trimmed(path: &Path) -> anyhow::Result<String> {
    Ok(read_file(path)?.trim().to_string())
}

pub fn read_u64(path: &Path) -> anyhow::Result<u64> {
    let s = read_trimmed(path)?;
    s.parse().with_context(|| {
        format!(
            "parsing {}: {s:?} is not an unsigned integer",
            path.display()
        )
    })
}

pub fn read_i64(path: &Path) -> anyhow::Result<i64> {
    let s = read_trimmed(path)?;
    s.parse()
        .with_context(|| format!("parsing {}: {s:?} is not an integer", path.display()))
}

/// Parses a number field of a /proc or /sys file, naming the file, the line
/// and the field on error.
pub fn parse_f64(value: &str, path: &Path, line: usize, field: &str) -> anyhow::Result<f64> {
    value.parse::<f64>().map_err(|_| {
        anyhow!(
            "parsing {} line {line}: field {field}: {value:?} is not a number",
            path.display()
        )
    })
}

/// Lists the entries of a directory, sorted by name; a missing directory is
/// [`NoData`].
pub fn read_dir_names(path: &Path) -> anyhow::Result<Vec<String>> {
    let rd = match std::fs::read_dir(path) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(NoData(format!("{} does not exist", path.display())).into())
        }
        Err(e) => return Err(anyhow!("listing {}: {e}", path.display())),
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// Whether an error is only "this system has no such data".
pub fn is_no_data(err: &anyhow::Error) -> bool {
    err.downcast_ref::<NoData>().is_some()
}

/// The kernel's USER_HZ, which /proc/stat and friends count in.
pub const USER_HZ: f64 = 100.0;
