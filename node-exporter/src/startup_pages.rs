//! Gives back the pages of our own binary that only start-up used.
//!
//! Parsing node_exporter's ~700 flags, building every collector and the
//! HTTP stack run code and read constant data that no scrape touches again,
//! and the kernel keeps those file pages mapped, and counted as resident,
//! for the life of the process. Once the exporter serves, the executable and
//! read-only mappings of the binary are unmapped with `MADV_DONTNEED`: the
//! pages stay in the page cache, and the next scrape maps back only what it
//! runs (about 1 MiB less resident, `bench/compare.py`). A mapping holding
//! private copies of its pages (written before it was made read-only) is
//! left alone: dropping those would lose what was written.

use std::io::BufRead;

/// Unmaps the clean, read-only mappings of the running executable and
/// returns how many bytes they spanned.
pub fn release() -> std::io::Result<usize> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let exe = exe.to_string_lossy();
    let smaps = std::io::BufReader::new(std::fs::File::open("/proc/self/smaps")?);
    let mut candidates: Vec<(usize, usize)> = Vec::new();
    // The mapping whose "Key: value" lines are being read, if it is one of ours.
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let line = line?;
        if let Some(range) = mapping_of(&line, &exe) {
            current = range;
            continue;
        }
        if let (Some(range), Some(kb)) = (current, line.strip_prefix("Anonymous:")) {
            // Only mappings with no private copy of any page.
            if kb.trim().trim_end_matches("kB").trim() == "0" {
                candidates.push(range);
            }
            current = None;
        }
    }
    let mut released = 0;
    for (start, end) in candidates {
        // SAFETY: the range is a whole mapping of our executable, read-only
        // or executable and never written (no anonymous pages): after
        // MADV_DONTNEED its pages are read back from the file on next use,
        // with the same contents.
        let rc =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        released += end - start;
    }
    Ok(released)
}

/// For an smaps header line (`start-end perms offset dev inode path`):
/// `Some(Some(range))` for a read-only or executable private mapping of
/// `exe`, `Some(None)` for any other mapping, `None` for a field line.
fn mapping_of(line: &str, exe: &str) -> Option<Option<(usize, usize)>> {
    let mut fields = line.split_whitespace();
    let range = fields.next()?;
    let (start, end) = range.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    let path = fields.nth(3).unwrap_or("");
    let ours = path == exe && matches!(perms, "r-xp" | "r--p");
    Some(ours.then_some((start, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_read_only_mappings_of_the_executable_are_picked() {
        let exe = "/usr/bin/node-exporter";
        let at = |l: &str| mapping_of(l, exe);
        assert_eq!(
            at("7f00-7f10 r-xp 000af000 fe:00 10019793    /usr/bin/node-exporter"),
            Some(Some((0x7f00, 0x7f10)))
        );
        assert_eq!(
            at("7f10-7f20 r--p 00000000 fe:00 10019793    /usr/bin/node-exporter"),
            Some(Some((0x7f10, 0x7f20)))
        );
        // Written data, another file, anonymous memory: never.
        assert_eq!(
            at("7f20-7f30 rw-p 00d27000 fe:00 10019793    /usr/bin/node-exporter"),
            Some(None)
        );
        assert_eq!(
            at("7f30-7f40 r-xp 00000000 fe:00 12    /usr/lib/libc.so"),
            Some(None)
        );
        assert_eq!(at("7f40-7f50 rw-p 00000000 00:00 0"), Some(None));
        assert_eq!(at("Anonymous:             0 kB"), None);
    }

    #[test]
    fn the_process_keeps_running_its_code_after_release() {
        // The test binary's own code and constants, dropped and read back.
        let released = release().unwrap();
        assert!(released > 0, "no mapping of the test binary was found");
        let text: String = ["still", "running"].join(" ");
        assert_eq!(text, "still running");
    }
}
