//! Reading and parsing helpers shared by collectors. Every error names the
//! file it came from, so that a bad /proc or /sys shows up in the log with
//! the place to look.

use std::path::Path;

use anyhow::{anyhow, Context};

use crate::collector::NoData;

/// Reads a whole file; "not found" becomes [`NoData`] so that a kernel
/// without the feature is a quiet failure, not an error.
pub fn read_file(path: &Path) -> anyhow::Result<String> {
    read_to_string(path).map_err(|e| read_error(path, e))
}

/// "Not found" is [`NoData`]; any other error names the file.
fn read_error(path: &Path, e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        NoData(format!("{} does not exist", path.display())).into()
    } else {
        anyhow!("reading {}: {e}", path.display())
    }
}

/// The largest /proc or /sys file we read; anything bigger is not what we
/// expect there, and must not make the exporter allocate without bound.
const MAX_FILE_BYTES: u64 = 64 << 20;

/// `std::fs::read_to_string` without its `statx` call: /proc and /sys report
/// size 0 anyway, and on ~150 files a scrape that call is a third of the
/// syscalls. Reads through `Take`, which has no size hint to ask for.
pub fn read_to_string(path: impl AsRef<Path>) -> std::io::Result<String> {
    use std::io::Read;
    let mut s = String::with_capacity(1024);
    std::fs::File::open(path.as_ref())?
        .take(MAX_FILE_BYTES)
        .read_to_string(&mut s)?;
    Ok(s)
}

/// [`read_file`] for the fixed files a collector reads on every scrape
/// (/proc/meminfo, /proc/stat, ...): they stay open and are re-read with
/// `pread`, which saves a path walk per file per scrape. Only for a bounded
/// set of paths: never for per-process or per-file paths that come and go.
pub fn read_kept(path: &Path) -> anyhow::Result<String> {
    let bytes = read_kept_bytes(path).map_err(|e| read_error(path, e))?;
    String::from_utf8(bytes).map_err(|_| anyhow!("reading {}: not UTF-8 text", path.display()))
}

/// [`read_kept`] with the I/O error as it is, for callers that tell
/// errors apart (EOPNOTSUPP of a disabled PSI, ...).
pub fn read_kept_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    static KEPT: std::sync::OnceLock<OpenFiles> = std::sync::OnceLock::new();
    KEPT.get_or_init(OpenFiles::default).read(path)
}

/// [`read_u64`] of a fixed file kept open (see [`read_kept`]).
pub fn read_kept_u64(path: &Path) -> anyhow::Result<u64> {
    parse_u64_file(&read_kept(path)?, path)
}

/// Reads a sysfs attribute with a single read(2), trimmed: sysfs hands out
/// a whole attribute per read, and a second read would only find EOF.
pub fn read_sysfs_attr(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut buf = [0u8; 4096];
    let n = f.read(&mut buf)?;
    Ok(to_valid_utf8(buf.get(..n).unwrap_or(&[]))
        .trim()
        .to_string())
}

/// Bytes from /sys or /proc as text the way node_exporter's labels show
/// them (Go's `strings.ToValidUTF8(s, "\u{FFFD}")`): each run of invalid
/// bytes becomes one U+FFFD, where `String::from_utf8_lossy` would write
/// one per invalid sequence.
pub fn to_valid_utf8(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut in_invalid_run = false;
    for chunk in bytes.utf8_chunks() {
        if !chunk.valid().is_empty() {
            out.push_str(chunk.valid());
            in_invalid_run = false;
        }
        if !chunk.invalid().is_empty() && !in_invalid_run {
            out.push(char::REPLACEMENT_CHARACTER);
            in_invalid_run = true;
        }
    }
    out
}

/// [`read_sysfs_attr`] with "not found" as `None` (an attribute this
/// driver or kernel lacks); any other error names the file.
pub fn read_optional_attr(path: &Path) -> anyhow::Result<Option<String>> {
    match read_sysfs_attr(path) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow!("reading {}: {e}", path.display())),
    }
}

pub fn read_u64(path: &Path) -> anyhow::Result<u64> {
    parse_u64_file(&read_file(path)?, path)
}

/// A file's whole content as one unsigned integer, naming the file on error.
fn parse_u64_file(text: &str, path: &Path) -> anyhow::Result<u64> {
    let s = text.trim();
    s.parse().with_context(|| {
        format!(
            "parsing {}: {s:?} is not an unsigned integer",
            path.display()
        )
    })
}

/// A sysfs attribute holding one number (Go's `ParseInt`/`ParseUint` of
/// the trimmed text); the error names the file and says it is not `what`.
pub fn parse_attr<T: std::str::FromStr>(text: &str, path: &Path, what: &str) -> anyhow::Result<T> {
    let t = text.trim();
    t.parse()
        .map_err(|_| anyhow!("parsing {}: {t:?} is not {what}", path.display()))
}

/// Parses a number field of a /proc or /sys file, naming the file, the line
/// and the field on error.
pub fn parse_f64(value: &str, path: &Path, line: usize, field: &str) -> anyhow::Result<f64> {
    if let Some(v) = plain_integer(value) {
        return Ok(v);
    }
    value.parse::<f64>().map_err(|_| {
        anyhow!(
            "parsing {} line {line}: field {field}: {value:?} is not a number",
            path.display()
        )
    })
}

/// `str::lines` with a vectorised newline search (memchr): core's char
/// search cost about 200 instructions per short /proc line, a twentieth of
/// a scrape over vmstat, meminfo and netstat.
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        Some(match memchr::memchr(b'\n', rest.as_bytes()) {
            Some(i) => {
                let line = rest.get(..i).unwrap_or_default();
                rest = rest.get(i + 1..).unwrap_or_default();
                line.strip_suffix('\r').unwrap_or(line)
            }
            None => std::mem::take(&mut rest),
        })
    })
}

/// What nearly every /proc value is, a decimal integer, read without the
/// float parser when f64 holds it exactly (at most 15 digits); `None` for
/// anything else, which `str::parse::<f64>` then decides.
fn plain_integer(s: &str) -> Option<f64> {
    let (negative, digits) = match s.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        all => (false, all),
    };
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let mut v = 0u64;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + u64::from(d);
    }
    let v = v as f64;
    Some(if negative { -v } else { v })
}

/// Lists the entries of a directory, sorted by name; a missing directory is
/// [`NoData`].
pub fn read_dir_names(path: &Path) -> anyhow::Result<Vec<String>> {
    sorted_names(path)?.ok_or_else(|| NoData(format!("{} does not exist", path.display())).into())
}

/// Lists the entries of a directory, sorted by name; a missing directory
/// has none (for collectors that report nothing, successfully, without it).
pub fn dir_names_if_any(path: &Path) -> anyhow::Result<Vec<String>> {
    Ok(sorted_names(path)?.unwrap_or_default())
}

/// The sorted entries of `path`; `None` when it does not exist.
fn sorted_names(path: &Path) -> anyhow::Result<Option<Vec<String>>> {
    let rd = match std::fs::read_dir(path) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow!("listing {}: {e}", path.display())),
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(Some(names))
}

/// Entries of `dir` named `<prefix><digit>...` (the glob `<prefix>[0-9]*`),
/// sorted, with what follows the prefix. A missing directory has none.
pub fn numbered_entries(dir: &Path, prefix: &str) -> anyhow::Result<Vec<(String, String)>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(anyhow!("listing {}: {e}", dir.display())),
    };
    let mut out: Vec<(String, String)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let num = name.strip_prefix(prefix)?;
            num.starts_with(|c: char| c.is_ascii_digit())
                .then(|| (name.clone(), num.to_string()))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// node_exporter's `SanitizeMetricName`: each run of characters a metric
/// name cannot have, with the underscores around it, becomes one `_`.
pub fn go_sanitize_metric_name(name: &str) -> String {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new("_*[^0-9A-Za-z_]+_*").expect("valid regex"))
        .replace_all(name, "_")
        .into_owned()
}

/// Metric names and help texts made from keys the kernel hands out (netstat
/// fields, meminfo and vmstat lines, ...), made once per key and kept for the
/// life of the process: the keys are the same on every scrape, and
/// formatting (and regexp-filtering) hundreds of them anew was a tenth of a
/// scrape's CPU. Bounded: past [`KeyNames::MAX_KEYS`] distinct keys, names
/// are made per call and not kept.
#[derive(Default)]
pub struct KeyNames {
    kept: std::sync::Mutex<KeptNames>,
}

/// `None`: the key is filtered out.
type KeptName = Option<(&'static str, &'static str)>;

type Name = Option<(
    exporter_toolkit::exposition::Str,
    exporter_toolkit::exposition::Str,
)>;

#[derive(Default)]
struct KeptNames {
    by_key: rustc_hash::FxHashMap<String, KeptName>,
    /// The keys of the last [`KeyNames::in_order`] pass, in the order they
    /// were asked for.
    order: Vec<(Box<str>, KeptName)>,
}

impl KeptNames {
    /// The kept name of `key`, made and kept the first time; `Err` with a
    /// name made for this call only once [`KeyNames::MAX_KEYS`] are kept.
    fn name(
        &mut self,
        key: &str,
        make: impl FnOnce() -> Option<(String, String)>,
    ) -> Result<KeptName, Name> {
        use std::borrow::Cow;
        if let Some(kept) = self.by_key.get(key) {
            return Ok(*kept);
        }
        let made = make();
        if self.by_key.len() >= KeyNames::MAX_KEYS {
            return Err(made.map(|(n, h)| (Cow::Owned(n), Cow::Owned(h))));
        }
        // Kept for the process' life (bounded above), so they can be
        // handed out as `&'static str` without copying on every scrape.
        let kept: KeptName = made.map(|(n, h)| (&*n.leak(), &*h.leak()));
        self.by_key.insert(key.to_string(), kept);
        Ok(kept)
    }
}

fn borrowed(kept: KeptName) -> Name {
    kept.map(|(n, h)| (std::borrow::Cow::Borrowed(n), std::borrow::Cow::Borrowed(h)))
}

impl KeyNames {
    /// Far more distinct keys than any kernel has.
    pub const MAX_KEYS: usize = 4096;

    /// The (name, help) of `key`: `make()` the first time (`None` to skip
    /// the key), the kept ones afterwards.
    pub fn get(&self, key: &str, make: impl FnOnce() -> Option<(String, String)>) -> Name {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.name(key, make).map_or_else(|made| made, borrowed)
    }

    /// For a file's keys, asked for in file order on every scrape: each key
    /// is first compared with the one asked for at the same place last time,
    /// and only looked up by hash when it differs (a kernel with other
    /// fields). One lock for the whole pass.
    pub fn in_order(&self) -> InOrder<'_> {
        InOrder {
            kept: self.kept.lock().unwrap_or_else(|e| e.into_inner()),
            at: 0,
        }
    }
}

/// A pass over keys in file order; see [`KeyNames::in_order`].
pub struct InOrder<'a> {
    kept: std::sync::MutexGuard<'a, KeptNames>,
    at: usize,
}

impl InOrder<'_> {
    /// [`KeyNames::get`], for the next key of the pass.
    pub fn get(&mut self, key: &str, make: impl FnOnce() -> Option<(String, String)>) -> Name {
        let kept = &mut *self.kept;
        if let Some((known, name)) = kept.order.get(self.at) {
            if **known == *key {
                self.at += 1;
                return borrowed(*name);
            }
        }
        // Out of step: the order is learnt again from here.
        kept.order.truncate(self.at);
        match kept.name(key, make) {
            Ok(name) => {
                if kept.order.len() < KeyNames::MAX_KEYS {
                    kept.order.push((key.into(), name));
                    self.at += 1;
                }
                borrowed(name)
            }
            Err(made) => made,
        }
    }
}

/// A collector's root source missing ([`NoData`] from a read or a listing of
/// it) as [`Absent`], which the scraper remembers until devices change. For
/// the one path whose absence means the collector has nothing at all here,
/// never for the files under it.
pub fn absent_if_missing<T>(r: anyhow::Result<T>) -> anyhow::Result<T> {
    r.map_err(|e| match e.downcast::<NoData>() {
        Ok(NoData(msg)) => crate::collector::Absent(msg).into(),
        Err(e) => e,
    })
}

/// Whether an error is only "this system has no such data".
pub fn is_no_data(err: &anyhow::Error) -> bool {
    err.downcast_ref::<NoData>().is_some()
        || err.downcast_ref::<crate::collector::Absent>().is_some()
}

/// The kernel's USER_HZ, which /proc/stat and friends count in.
pub const USER_HZ: f64 = 100.0;

/// Files kept open between scrapes and re-read with `pread` at offset 0:
/// /proc and /sys generate their content afresh on every read from the
/// start, and skipping the open/close (a path walk through kernfs each) more
/// than halves the cost of reading many small attributes, as netclass does.
/// A file whose read fails because it is gone (ENODEV once the device is
/// removed) is dropped and the read retried once with a fresh open; one that
/// only has no value now (EINVAL: the speed of a link that is down) stays
/// open, so the next scrape does not open it again.
#[derive(Default)]
pub struct OpenFiles {
    /// The lock is held only to look up or insert, never during I/O: a read
    /// that hangs must not block the other collectors' reads.
    files: std::sync::Mutex<rustc_hash::FxHashMap<std::path::PathBuf, std::sync::Arc<Kept>>>,
    /// The devices [`keep_devices`](Self::keep_devices) was given last.
    devices: std::sync::Mutex<Vec<String>>,
}

struct Kept {
    file: std::fs::File,
    /// A sysfs attribute: the kernel hands out all of it (at most a page)
    /// in one read, so no second read is needed to see the end.
    sysfs: bool,
}

impl OpenFiles {
    pub fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let kept = self.lock().get(path).cloned();
        if let Some(k) = kept {
            match pread_all(&k.file, k.sysfs) {
                Ok(v) => return Ok(v),
                Err(e) if !is_gone(&e) => return Err(e),
                Err(_) => {
                    self.lock().remove(path);
                }
            }
        }
        let mut file = std::fs::File::open(path)?;
        let sysfs = is_sysfs(&file);
        match pread_all(&file, sysfs) {
            Ok(v) => {
                self.keep(path, Kept { file, sysfs });
                Ok(v)
            }
            // Not seekable (a FIFO standing in for the file): read it the
            // ordinary way, and do not keep it.
            Err(e) if e.raw_os_error() == Some(libc::ESPIPE) => {
                use std::io::Read;
                let mut v = Vec::new();
                (&mut file).take(MAX_FILE_BYTES).read_to_end(&mut v)?;
                Ok(v)
            }
            Err(e) => {
                if !is_gone(&e) {
                    self.keep(path, Kept { file, sysfs });
                }
                Err(e)
            }
        }
    }

    fn keep(&self, path: &Path, kept: Kept) {
        self.lock()
            .insert(path.to_path_buf(), std::sync::Arc::new(kept));
    }

    /// Closes the files `keep` rejects (devices that went away).
    pub fn retain(&self, keep: impl Fn(&Path) -> bool) {
        self.lock().retain(|p, _| keep(p));
    }

    /// Closes the files under `dir/<device>/` of devices not in `devices`.
    /// Nothing to do while the devices are those of the last call.
    pub fn keep_devices(&self, dir: &Path, devices: &[&str]) {
        {
            let mut last = self.devices.lock().unwrap_or_else(|e| e.into_inner());
            if last.iter().map(String::as_str).eq(devices.iter().copied()) {
                return;
            }
            *last = devices.iter().map(|d| d.to_string()).collect();
        }
        self.retain(|p| {
            p.strip_prefix(dir)
                .ok()
                .and_then(|rel| rel.iter().next())
                .is_some_and(|d| devices.iter().any(|x| std::ffi::OsStr::new(x) == d))
        });
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, rustc_hash::FxHashMap<std::path::PathBuf, std::sync::Arc<Kept>>>
    {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Errors that mean the open file no longer stands for the path.
pub fn is_gone(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENODEV | libc::ENOENT | libc::ESTALE | libc::EBADF | libc::ENXIO)
    )
}

fn is_sysfs(f: &std::fs::File) -> bool {
    const SYSFS_MAGIC: i64 = 0x6265_6572;
    fs_magic(f) == Some(SYSFS_MAGIC)
}

/// Whether `f` is on a mounted procfs (not a copy of one, as in tests).
pub fn is_procfs_file(f: &std::fs::File) -> bool {
    const PROC_SUPER_MAGIC: i64 = 0x9fa0;
    fs_magic(f) == Some(PROC_SUPER_MAGIC)
}

/// Whether `f` lies on a sysfs (not a copy of one, as tests' fixtures are).
pub fn is_sysfs_file(f: &std::fs::File) -> bool {
    const SYSFS_MAGIC: i64 = 0x6265_6572;
    fs_magic(f) == Some(SYSFS_MAGIC)
}

fn fs_magic(f: &std::fs::File) -> Option<i64> {
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed statfs is a valid out-buffer for a descriptor we own.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    #[allow(clippy::unnecessary_cast)]
    (unsafe { libc::fstatfs(f.as_raw_fd(), &mut buf) } == 0).then_some(buf.f_type as i64)
}

/// Whether the mount namespace of an open mountinfo changed since the last
/// call (or the open): the kernel raises POLLPRI on the file after any
/// mount, unmount, move or remount, and the poll clears it, so a change
/// during a read that follows is reported by the next call.
pub fn mount_table_changed(f: &std::fs::File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd {
        fd: f.as_raw_fd(),
        events: libc::POLLPRI,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    if unsafe { libc::poll(&mut pfd, 1, 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pfd.revents & libc::POLLNVAL != 0 {
        return Err(std::io::Error::from_raw_os_error(libc::EBADF));
    }
    Ok(pfd.revents & (libc::POLLPRI | libc::POLLERR) != 0)
}

/// The whole of a file kept open, read again from offset 0 with pread
/// (/proc regenerates it on each such read).
pub fn pread_whole(f: &std::fs::File) -> std::io::Result<Vec<u8>> {
    pread_all(f, false)
}

/// Reads the whole file with pread from offset 0. Most files fit in one
/// page: they are read into a buffer on the stack and copied out at their
/// size, so a scrape's ~200 reads leave no page-sized allocations behind
/// for the allocator to hand back to the kernel and fault in again.
fn pread_all(f: &std::fs::File, sysfs: bool) -> std::io::Result<Vec<u8>> {
    use std::mem::MaybeUninit;
    use std::os::unix::fs::FileExt;
    use std::os::unix::io::AsRawFd;
    // Not zeroed: a scrape makes a few hundred of these reads, and zeroing
    // the page each time was a memset of about 1 MiB per scrape.
    const PAGE: usize = 4096;
    let mut page = MaybeUninit::<[u8; PAGE]>::uninit();
    let mut len = 0;
    let filled = |page: &MaybeUninit<[u8; PAGE]>, len: usize| {
        // SAFETY: the first `len` bytes of `page` were written by pread.
        unsafe { std::slice::from_raw_parts(page.as_ptr().cast::<u8>(), len) }.to_vec()
    };
    while len < PAGE {
        // SAFETY: the pointer and length stay within `page`; pread writes at
        // most that many bytes there.
        let n = unsafe {
            libc::pread(
                f.as_raw_fd(),
                page.as_mut_ptr().cast::<u8>().add(len).cast(),
                PAGE - len,
                len as libc::off_t,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = n as usize;
        len += n;
        if n == 0 || (sysfs && len < PAGE) {
            return Ok(filled(&page, len));
        }
    }
    let mut buf = filled(&page, len);
    loop {
        if len == buf.len() {
            if buf.len() as u64 >= MAX_FILE_BYTES {
                break;
            }
            buf.resize(buf.len() * 2, 0);
        }
        let n = f.read_at(&mut buf[len..], len as u64)?;
        if n == 0 {
            break;
        }
        len += n;
    }
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pread_all_reads_whole_files_of_every_size_around_a_page() {
        let dir = tempfile::tempdir().unwrap();
        for size in [0usize, 1, 4095, 4096, 4097, 8192, 20_000] {
            let path = dir.path().join(format!("f{size}"));
            let want: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            std::fs::write(&path, &want).unwrap();
            let f = std::fs::File::open(&path).unwrap();
            assert_eq!(pread_all(&f, false).unwrap(), want, "size {size}");
            // sysfs: one short read is the whole attribute.
            let got = pread_all(&f, true).unwrap();
            assert_eq!(got, want, "size {size} (sysfs)");
        }
        let dir_as_file = std::fs::File::open(dir.path()).unwrap();
        assert!(pread_all(&dir_as_file, false).is_err());
    }

    #[test]
    fn invalid_utf8_becomes_one_replacement_per_run_as_in_go() {
        assert_eq!(to_valid_utf8(b"LNV-45N1\xff\xfe"), "LNV-45N1\u{FFFD}");
        assert_eq!(to_valid_utf8(b"\xff[\xc3"), "\u{FFFD}[\u{FFFD}");
        assert_eq!(to_valid_utf8(b"\xe2\x82\xff\xffx"), "\u{FFFD}x");
        assert_eq!(to_valid_utf8("ok \u{FFFD} é".as_bytes()), "ok \u{FFFD} é");
    }

    #[test]
    fn key_names_are_made_once_per_key_and_filtered_keys_stay_out() {
        let names = KeyNames::default();
        let made = std::cell::Cell::new(0);
        let make = |key: &str| {
            made.set(made.get() + 1);
            (key != "skip").then(|| (format!("node_x_{key}"), format!("help {key}")))
        };
        for _ in 0..3 {
            let (n, h) = names.get("a", || make("a")).unwrap();
            assert_eq!((n.as_ref(), h.as_ref()), ("node_x_a", "help a"));
            assert!(names.get("skip", || make("skip")).is_none());
        }
        assert_eq!(made.get(), 2, "made again on a later scrape");
    }

    #[test]
    fn lines_as_str_lines() {
        for text in [
            "", "\n", "a", "a\n", "a\nb", "a\n\nb\n", "a\r\nb\r", "\n\n", "é\nü",
        ] {
            assert_eq!(
                lines(text).collect::<Vec<_>>(),
                text.lines().collect::<Vec<_>>(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn numbers_read_as_the_float_parser_reads_them() {
        for v in [
            "0",
            "-0",
            "7",
            "-1",
            "42",
            "123456789012345",
            "1234567890123456",
            "18446744073709551615",
            "-9223372036854775808",
            "+5",
            "1.5",
            "1e3",
            "0x10",
            "",
            "-",
            "12a",
            " 1",
            "007",
        ] {
            let want = v.parse::<f64>().ok();
            let got = parse_f64(v, Path::new("/proc/x"), 1, "f").ok();
            assert_eq!(
                got.map(f64::to_bits),
                want.map(f64::to_bits),
                "{v:?}: {got:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn keys_in_file_order_follow_a_file_whose_fields_change() {
        let names = KeyNames::default();
        let made = std::cell::RefCell::new(Vec::new());
        let pass = |keys: &[&str]| -> Vec<Option<String>> {
            let mut pass = names.in_order();
            keys.iter()
                .map(|&key| {
                    pass.get(key, || {
                        made.borrow_mut().push(key.to_string());
                        key.starts_with("pg")
                            .then(|| (format!("node_vmstat_{key}"), String::new()))
                    })
                    .map(|(n, _)| n.into_owned())
                })
                .collect()
        };
        let want = |v: &[Option<&str>]| -> Vec<Option<String>> {
            v.iter().map(|o| o.map(str::to_string)).collect()
        };
        for _ in 0..2 {
            assert_eq!(
                pass(&["nr_free", "pgfault", "pgmajfault"]),
                want(&[
                    None,
                    Some("node_vmstat_pgfault"),
                    Some("node_vmstat_pgmajfault")
                ])
            );
        }
        // A field added in the middle, one gone: each key keeps its name.
        assert_eq!(
            pass(&["nr_free", "pgalloc", "pgmajfault"]),
            want(&[
                None,
                Some("node_vmstat_pgalloc"),
                Some("node_vmstat_pgmajfault")
            ])
        );
        assert_eq!(
            pass(&["pgmajfault", "nr_free"]),
            want(&[Some("node_vmstat_pgmajfault"), None])
        );
        // The plain lookup shares what the passes made.
        assert!(names.get("pgfault", || unreachable!()).is_some());
        assert_eq!(
            *made.borrow(),
            ["nr_free", "pgfault", "pgmajfault", "pgalloc"]
        );
    }

    #[test]
    fn files_of_devices_that_went_away_are_closed() {
        let dir = tempfile::tempdir().unwrap();
        for dev in ["eth0", "eth1"] {
            std::fs::create_dir(dir.path().join(dev)).unwrap();
            std::fs::write(dir.path().join(dev).join("mtu"), "1500\n").unwrap();
        }
        let files = OpenFiles::default();
        files.keep_devices(dir.path(), &["eth0", "eth1"]);
        for dev in ["eth0", "eth1"] {
            assert_eq!(
                files.read(&dir.path().join(dev).join("mtu")).unwrap(),
                b"1500\n"
            );
        }
        // eth1 is removed: its kept file would still read until closed.
        std::fs::remove_dir_all(dir.path().join("eth1")).unwrap();
        files.keep_devices(dir.path(), &["eth0", "eth1"]);
        assert!(
            files.read(&dir.path().join("eth1/mtu")).is_ok(),
            "same devices: nothing closed"
        );
        files.keep_devices(dir.path(), &["eth0"]);
        assert!(files.read(&dir.path().join("eth1/mtu")).is_err());
        assert!(files.read(&dir.path().join("eth0/mtu")).is_ok());
    }

    #[test]
    fn open_files_see_new_content_and_survive_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("attr");
        std::fs::write(&p, "1\n").unwrap();
        let files = OpenFiles::default();
        assert_eq!(files.read(&p).unwrap(), b"1\n");
        // Rewritten in place: the kept file reads the new content.
        std::fs::write(&p, "22\n").unwrap();
        assert_eq!(files.read(&p).unwrap(), b"22\n");
        // Removed: the kept file still reads; then retain() drops it and
        // the next read reports the file missing.
        std::fs::remove_file(&p).unwrap();
        files.retain(|_| false);
        assert!(files.read(&p).is_err());
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 10_000]).unwrap();
        assert_eq!(files.read(&big).unwrap().len(), 10_000);
    }
}
