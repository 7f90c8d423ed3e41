//! `node_os_info`, `node_os_version` and `node_os_support_end_timestamp_seconds`
//! from `<rootfs>/etc/os-release`, else `<rootfs>/usr/lib/os-release`
//! (os-release(5)). The parsed file is cached and only read again when its
//! path or mtime changes, as node_exporter does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, NoData, Paths};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "os",
    default_enabled: true,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Os {
            paths: f.paths.clone(),
            cache: Mutex::new(None),
        }))
    },
};

const OS_RELEASE_FILES: [&str; 2] = ["/etc/os-release", "/usr/lib/os-release"];

/// The fields of an os-release file node_exporter reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OsRelease {
    pub name: String,
    pub id: String,
    pub id_like: String,
    pub pretty_name: String,
    pub variant: String,
    pub variant_id: String,
    pub version: String,
    pub version_id: String,
    pub version_codename: String,
    pub build_id: String,
    pub image_id: String,
    pub image_version: String,
    pub support_end: String,
    /// `major.minor` of VERSION_ID as a number, 0 if it has none.
    pub version_number: f64,
    /// SUPPORT_END as a Unix timestamp (midnight UTC).
    pub support_end_timestamp: Option<i64>,
}

struct Cached {
    path: PathBuf,
    mtime: SystemTime,
    release: OsRelease,
}

struct Os {
    paths: Paths,
    cache: Mutex<Option<Cached>>,
}

/// Parses os-release(5): `KEY=value` lines where the value is shell-quoted
/// (double quotes with `\"`, `\\`, `\$`, `` \` `` escapes, single quotes
/// taken literally, backslash escapes outside quotes). Blank lines and
/// `#` comments are skipped; an optional `export ` prefix is accepted.
pub fn parse_os_release_vars(text: &str, path: &Path) -> anyhow::Result<HashMap<String, String>> {
    let mut vars = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |msg: String| anyhow!("parsing {} line {}: {msg}", path.display(), i + 1);
        let Some((key, value)) = line.split_once('=') else {
            return Err(err(format!("missing '=' in {line:?}")));
        };
        let key = key.trim();
        let key = key.strip_prefix("export ").map(str::trim).unwrap_or(key);
        let valid_key = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_key {
            return Err(err(format!("invalid variable name {key:?}")));
        }
        let value = unquote(value.trim()).map_err(err)?;
        vars.insert(key.to_string(), value);
    }
    Ok(vars)
}

/// Shell-style unquoting of one os-release value.
fn unquote(value: &str) -> Result<String, String> {
    #[derive(PartialEq)]
    enum Mode {
        Plain,
        Double,
        Single,
    }
    let mut out = String::with_capacity(value.len());
    let mut mode = Mode::Plain;
    // Length of `out` up to its last character that was quoted or not
    // blank, so that blanks before a trailing comment are dropped.
    let mut significant = 0;
    // An unquoted `#` starts a comment only at the start of a word.
    let mut word_start = true;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match mode {
            Mode::Plain => {
                match c {
                    '"' => mode = Mode::Double,
                    '\'' => mode = Mode::Single,
                    '\\' => {
                        let Some(next) = chars.next() else {
                            return Err("value ends with a lone backslash".into());
                        };
                        out.push(next);
                        significant = out.len();
                    }
                    '#' if word_start => break,
                    ' ' | '\t' => out.push(c),
                    _ => {
                        out.push(c);
                        significant = out.len();
                    }
                }
                word_start = c == ' ' || c == '\t';
            }
            Mode::Double => match c {
                '"' => {
                    mode = Mode::Plain;
                    significant = out.len();
                }
                '\\' => match chars.peek() {
                    Some(&n @ ('"' | '\\' | '$' | '`')) => {
                        out.push(n);
                        chars.next();
                    }
                    Some('\n') => {
                        chars.next();
                    }
                    Some(_) => out.push('\\'),
                    None => return Err("unterminated double quote".into()),
                },
                _ => out.push(c),
            },
            Mode::Single => match c {
                '\'' => {
                    mode = Mode::Plain;
                    significant = out.len();
                }
                _ => out.push(c),
            },
        }
    }
    match mode {
        Mode::Plain => {
            out.truncate(significant);
            Ok(out)
        }
        Mode::Double => Err("unterminated double quote".into()),
        Mode::Single => Err("unterminated single quote".into()),
    }
}

/// `^[0-9]+\.?[0-9]*` of VERSION_ID as a number.
fn major_minor(version_id: &str) -> f64 {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let int_len = digits(version_id);
    if int_len == 0 {
        return 0.0;
    }
    let mut end = int_len;
    let rest = version_id.get(end..).unwrap_or("");
    if let Some(frac) = rest.strip_prefix('.') {
        end += 1 + digits(frac);
    }
    version_id
        .get(..end)
        .unwrap_or("")
        .trim_end_matches('.')
        .parse()
        .unwrap_or(0.0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Parses SUPPORT_END (`YYYY-MM-DD`) to a Unix timestamp.
fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if d < 1 || d > days_in_month {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86400)
}

/// Parses an os-release file into the fields node_exporter reports.
pub fn parse_os_release(text: &str, path: &Path) -> anyhow::Result<OsRelease> {
    let mut vars = parse_os_release_vars(text, path)?;
    let mut take = |k: &str| vars.remove(k).unwrap_or_default();
    let mut r = OsRelease {
        name: take("NAME"),
        id: take("ID"),
        id_like: take("ID_LIKE"),
        pretty_name: take("PRETTY_NAME"),
        variant: take("VARIANT"),
        variant_id: take("VARIANT_ID"),
        version: take("VERSION"),
        version_id: take("VERSION_ID"),
        version_codename: take("VERSION_CODENAME"),
        build_id: take("BUILD_ID"),
        image_id: take("IMAGE_ID"),
        image_version: take("IMAGE_VERSION"),
        support_end: take("SUPPORT_END"),
        ..Default::default()
    };
    r.version_number = major_minor(&r.version_id);
    if !r.support_end.is_empty() {
        r.support_end_timestamp = Some(parse_date(&r.support_end).ok_or_else(|| {
            anyhow!(
                "parsing {}: SUPPORT_END={:?} is not a YYYY-MM-DD date",
                path.display(),
                r.support_end
            )
        })?);
    }
    Ok(r)
}

impl Os {
    /// The current os-release contents, from the cache when the file has
    /// not changed.
    fn release(&self) -> anyhow::Result<OsRelease> {
        for rel in OS_RELEASE_FILES {
            let path = self.paths.root(rel);
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(anyhow!("reading {}: {e}", path.display())),
            };
            let mtime = meta
                .modified()
                .map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
            let mut cache = self
                .cache
                .lock()
                .map_err(|_| anyhow!("os-release cache lock poisoned"))?;
            if let Some(c) = cache.as_ref() {
                if c.path == path && c.mtime == mtime {
                    return Ok(c.release.clone());
                }
            }
            let text = crate::helpers::read_to_string(&path)
                .map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
            let release = parse_os_release(&text, &path)?;
            *cache = Some(Cached {
                path,
                mtime,
                release: release.clone(),
            });
            return Ok(release);
        }
        Err(NoData(format!(
            "no os-release file found under {}",
            self.paths.rootfs.display()
        ))
        .into())
    }
}

impl Collector for Os {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let r = self.release()?;
        out.gauge(
            "node_os_info",
            "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, \
             image_version, name, pretty_name, variant, variant_id, version, version_codename, \
             version_id.",
            &[
                ("build_id", &r.build_id),
                ("id", &r.id),
                ("id_like", &r.id_like),
                ("image_id", &r.image_id),
                ("image_version", &r.image_version),
                ("name", &r.name),
                ("pretty_name", &r.pretty_name),
                ("variant", &r.variant),
                ("variant_id", &r.variant_id),
                ("version", &r.version),
                ("version_codename", &r.version_codename),
                ("version_id", &r.version_id),
            ],
            1.0,
        );
        if r.version_number > 0.0 {
            out.gauge(
                "node_os_version",
                "Metric containing the major.minor part of the OS version.",
                &[("id", &r.id), ("id_like", &r.id_like), ("name", &r.name)],
                r.version_number,
            );
        }
        if let Some(ts) = r.support_end_timestamp {
            out.gauge(
                "node_os_support_end_timestamp_seconds",
                "Metric containing the end-of-life date timestamp of the OS.",
                &[],
                ts as f64,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(text: &str) -> HashMap<String, String> {
        parse_os_release_vars(text, Path::new("/etc/os-release")).unwrap()
    }

    #[test]
    fn quoting_follows_the_shell() {
        let v = vars(
            "# comment\n\
             \n\
             NAME=\"Debian GNU/Linux\"\n\
             ID=debian\n\
             PRETTY_NAME='It''s \"quoted\"'\n\
             VERSION=\"12 \\\"bookworm\\\" \\$HOME \\\\ \\n\"\n\
             export VARIANT=Server\\ Edition\n\
             ID_LIKE=\"rhel fedora\" # trailing comment\n\
             HOME_URL=https://example.org/#anchor\n\
             QUOTED_HASH=\"\"#x\n\
             EMPTY=\n",
        );
        assert_eq!(v["NAME"], "Debian GNU/Linux");
        assert_eq!(v["ID"], "debian");
        assert_eq!(v["PRETTY_NAME"], "Its \"quoted\"");
        assert_eq!(v["VERSION"], "12 \"bookworm\" $HOME \\ \\n");
        assert_eq!(v["VARIANT"], "Server Edition");
        assert_eq!(v["ID_LIKE"], "rhel fedora");
        assert_eq!(v["HOME_URL"], "https://example.org/#anchor");
        assert_eq!(v["QUOTED_HASH"], "#x");
        assert_eq!(v["EMPTY"], "");
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let p = Path::new("/rootfs/etc/os-release");
        let err = parse_os_release_vars("ID=x\nNAME=\"unterminated\n", p).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parsing /rootfs/etc/os-release line 2: unterminated double quote"
        );
        let err = parse_os_release_vars("just words\n", p).unwrap_err();
        assert!(err.to_string().contains("line 1"));
        let err = parse_os_release_vars("1ID=x\n", p).unwrap_err();
        assert!(err.to_string().contains("invalid variable name"));
    }

    #[test]
    fn version_number_is_major_minor() {
        assert_eq!(major_minor("12"), 12.0);
        assert_eq!(major_minor("22.04"), 22.04);
        assert_eq!(major_minor("3.19.1"), 3.19);
        assert_eq!(major_minor("8."), 8.0);
        assert_eq!(major_minor("rolling"), 0.0);
        assert_eq!(major_minor(""), 0.0);
    }

    #[test]
    fn support_end_is_midnight_utc() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2029-12-31"), Some(1893369600));
        assert_eq!(parse_date("2024-02-29"), Some(1709164800));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("2023-1-01"), None);
        let err = parse_os_release("SUPPORT_END=soon\n", Path::new("/x")).unwrap_err();
        assert!(err.to_string().contains("SUPPORT_END"));
    }

    #[test]
    fn missing_files_are_no_data_and_fallback_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let os = Os {
            paths: Paths {
                rootfs: dir.path().to_path_buf(),
                ..Paths::default()
            },
            cache: Mutex::new(None),
        };
        let err = os.release().unwrap_err();
        assert!(crate::helpers::is_no_data(&err));
        std::fs::create_dir_all(dir.path().join("usr/lib")).unwrap();
        std::fs::write(dir.path().join("usr/lib/os-release"), "ID=fallback\n").unwrap();
        assert_eq!(os.release().unwrap().id, "fallback");
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/os-release"), "ID=etc\n").unwrap();
        assert_eq!(os.release().unwrap().id, "etc");
    }
}
