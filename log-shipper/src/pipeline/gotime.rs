//! Go's reference-time layouts (`2006-01-02T15:04:05.999999999Z07:00`),
//! parsed as Go's `time.Parse` / `time.ParseInLocation` do. The layout is
//! compiled once into chunks, so parsing a value allocates nothing.

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone, PartialEq)]
enum Chunk {
    Literal(String),
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    Tz,
    /// Numeric zone: `iso` accepts `Z` for UTC; `colon`, `seconds`, `hours_only`.
    NumTz {
        iso: bool,
        colon: bool,
        seconds: bool,
        hours_only: bool,
    },
    /// `.000` (exactly n digits) or `.999` (optional, up to n digits).
    Frac {
        digits: usize,
        optional: bool,
    },
}

/// A compiled Go layout.
#[derive(Debug, Clone)]
pub struct Layout {
    chunks: Vec<Chunk>,
    pub has_year: bool,
}

const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

impl Layout {
    pub fn new(layout: &str) -> Layout {
        let mut chunks = Vec::new();
        let mut lit = String::new();
        let b = layout.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let rest = &layout[i..];
            let (chunk, len) = next_std(rest, b, i);
            match chunk {
                Some(c) => {
                    if !lit.is_empty() {
                        chunks.push(Chunk::Literal(std::mem::take(&mut lit)));
                    }
                    chunks.push(c);
                    i += len;
                }
                None => {
                    let ch = rest.chars().next().unwrap_or(' ');
                    lit.push(ch);
                    i += ch.len_utf8();
                }
            }
        }
        if !lit.is_empty() {
            chunks.push(Chunk::Literal(lit));
        }
        let has_year = chunks
            .iter()
            .any(|c| matches!(c, Chunk::LongYear | Chunk::Year));
        Layout { chunks, has_year }
    }
}

/// Recognises a Go layout element at the start of `s` (Go's nextStdChunk).
fn next_std(s: &str, whole: &[u8], at: usize) -> (Option<Chunk>, usize) {
    let sb = s.as_bytes();
    let starts = |p: &str| s.starts_with(p);
    match sb[0] {
        b'J' if starts("January") => (Some(Chunk::LongMonth), 7),
        b'J' if starts("Jan") => (Some(Chunk::Month), 3),
        b'M' if starts("Monday") => (Some(Chunk::LongWeekDay), 6),
        b'M' if starts("Mon") => (Some(Chunk::WeekDay), 3),
        b'M' if starts("MST") => (Some(Chunk::Tz), 3),
        b'0' if sb.len() >= 2 && (b'1'..=b'6').contains(&sb[1]) => {
            let c = match sb[1] {
                b'1' => Chunk::ZeroMonth,
                b'2' => Chunk::ZeroDay,
                b'3' => Chunk::ZeroHour12,
                b'4' => Chunk::ZeroMinute,
                b'5' => Chunk::ZeroSecond,
                _ => Chunk::Year,
            };
            (Some(c), 2)
        }
        b'0' if starts("002") => (Some(Chunk::ZeroYearDay), 3),
        b'1' if starts("15") => (Some(Chunk::Hour), 2),
        b'1' => (Some(Chunk::NumMonth), 1),
        b'2' if starts("2006") => (Some(Chunk::LongYear), 4),
        b'2' => (Some(Chunk::Day), 1),
        b'_' if starts("_2") => {
            // `_2006` is a literal `_` then the year.
            if starts("_2006") {
                (None, 1)
            } else {
                (Some(Chunk::UnderDay), 2)
            }
        }
        b'_' if starts("__2") => (Some(Chunk::UnderYearDay), 3),
        b'3' => (Some(Chunk::Hour12), 1),
        b'4' => (Some(Chunk::Minute), 1),
        b'5' => (Some(Chunk::Second), 1),
        b'P' if starts("PM") => (Some(Chunk::PM), 2),
        b'p' if starts("pm") => (Some(Chunk::Pm), 2),
        b'-' | b'Z' => {
            let iso = sb[0] == b'Z';
            for (pat, colon, seconds, hours_only) in [
                ("070000", false, true, false),
                ("07:00:00", true, true, false),
                ("0700", false, false, false),
                ("07:00", true, false, false),
                ("07", false, false, true),
            ] {
                if s[1..].starts_with(pat) {
                    return (
                        Some(Chunk::NumTz {
                            iso,
                            colon,
                            seconds,
                            hours_only,
                        }),
                        1 + pat.len(),
                    );
                }
            }
            (None, 1)
        }
        b'.' | b',' if sb.len() >= 2 && (sb[1] == b'0' || sb[1] == b'9') => {
            let d = sb[1];
            let n = sb[1..].iter().take_while(|&&c| c == d).count();
            // Only a fraction when not followed by another digit.
            let next = whole.get(at + 1 + n);
            if next.is_none_or(|c| !c.is_ascii_digit()) {
                (
                    Some(Chunk::Frac {
                        digits: n,
                        optional: d == b'9',
                    }),
                    1 + n,
                )
            } else {
                (None, 1)
            }
        }
        _ => (None, 1),
    }
}

/// Where a layout without a zone is placed.
#[derive(Debug, Clone, Copy)]
pub enum Location {
    Utc,
    Named(Tz),
}

#[derive(Default)]
struct Parts {
    year: Option<i32>,
    month: Option<u32>,
    day: Option<u32>,
    yday: Option<u32>,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    pm: Option<bool>,
    offset: Option<i32>,
    /// An abbreviation such as `CET`: resolved against the location.
    zone_abbrev: bool,
}

fn getnum(v: &str, fixed: bool) -> Option<(u32, &str)> {
    let b = v.as_bytes();
    if b.is_empty() || !b[0].is_ascii_digit() {
        return None;
    }
    if b.len() < 2 || !b[1].is_ascii_digit() {
        if fixed {
            return None;
        }
        return Some(((b[0] - b'0') as u32, &v[1..]));
    }
    Some((((b[0] - b'0') * 10 + (b[1] - b'0')) as u32, &v[2..]))
}

fn digits(v: &str, n: usize) -> Option<(u32, &str)> {
    let b = v.as_bytes();
    if b.len() < n || !b[..n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((v[..n].parse().ok()?, &v[n..]))
}

fn lookup<'a>(v: &'a str, names: &[&str], short: bool) -> Option<(usize, &'a str)> {
    for (i, name) in names.iter().enumerate() {
        let name = if short { &name[..3] } else { name };
        if v.len() >= name.len() && v[..name.len()].eq_ignore_ascii_case(name) {
            return Some((i, &v[name.len()..]));
        }
    }
    None
}

/// Go's skip: a literal in which runs of spaces match runs of spaces.
fn skip<'a>(mut v: &'a str, lit: &str) -> Option<&'a str> {
    let mut p = lit;
    while !p.is_empty() {
        if p.starts_with(' ') {
            if !v.is_empty() && !v.starts_with(' ') {
                return None;
            }
            p = p.trim_start_matches(' ');
            v = v.trim_start_matches(' ');
            continue;
        }
        let c = p.chars().next()?;
        if !v.starts_with(c) {
            return None;
        }
        p = &p[c.len_utf8()..];
        v = &v[c.len_utf8()..];
    }
    Some(v)
}

fn frac(v: &str) -> (u32, &str) {
    // v starts after the separator.
    let n = v.bytes().take_while(u8::is_ascii_digit).count();
    let mut nanos: u64 = 0;
    for (i, c) in v.bytes().take(n).enumerate() {
        if i < 9 {
            nanos = nanos * 10 + (c - b'0') as u64;
        }
    }
    for _ in n..9 {
        nanos *= 10;
    }
    (nanos as u32, &v[n..])
}

fn parse_parts(layout: &Layout, value: &str) -> Option<Parts> {
    let mut p = Parts::default();
    let mut v = value;
    for (idx, chunk) in layout.chunks.iter().enumerate() {
        match chunk {
            Chunk::Literal(l) => v = skip(v, l)?,
            Chunk::LongYear => {
                let (y, r) = digits(v, 4)?;
                p.year = Some(y as i32);
                v = r;
            }
            Chunk::Year => {
                let (y, r) = digits(v, 2)?;
                p.year = Some(if y >= 69 {
                    1900 + y as i32
                } else {
                    2000 + y as i32
                });
                v = r;
            }
            Chunk::LongMonth | Chunk::Month => {
                let (m, r) = lookup(v, &LONG_MONTHS, *chunk == Chunk::Month)?;
                p.month = Some(m as u32 + 1);
                v = r;
            }
            Chunk::NumMonth | Chunk::ZeroMonth => {
                let (m, r) = getnum(v, *chunk == Chunk::ZeroMonth)?;
                if m == 0 || m > 12 {
                    return None;
                }
                p.month = Some(m);
                v = r;
            }
            Chunk::LongWeekDay | Chunk::WeekDay => {
                v = lookup(v, &LONG_DAYS, *chunk == Chunk::WeekDay)?.1;
            }
            Chunk::Day | Chunk::UnderDay | Chunk::ZeroDay => {
                if *chunk == Chunk::UnderDay && v.starts_with(' ') {
                    v = &v[1..];
                }
                let (d, r) = getnum(v, *chunk == Chunk::ZeroDay)?;
                p.day = Some(d);
                v = r;
            }
            Chunk::UnderYearDay | Chunk::ZeroYearDay => {
                let mut w = v;
                if *chunk == Chunk::UnderYearDay {
                    w = w.trim_start_matches(' ');
                }
                let n = w.bytes().take(3).take_while(u8::is_ascii_digit).count();
                if n == 0 || (*chunk == Chunk::ZeroYearDay && n != 3) {
                    return None;
                }
                p.yday = Some(w[..n].parse().ok()?);
                v = &w[n..];
            }
            Chunk::Hour => {
                let (h, r) = getnum(v, false)?;
                if h > 23 {
                    return None;
                }
                p.hour = h;
                v = r;
            }
            Chunk::Hour12 | Chunk::ZeroHour12 => {
                let (h, r) = getnum(v, *chunk == Chunk::ZeroHour12)?;
                if h > 12 {
                    return None;
                }
                p.hour = h;
                v = r;
            }
            Chunk::Minute | Chunk::ZeroMinute => {
                let (m, r) = getnum(v, *chunk == Chunk::ZeroMinute)?;
                if m > 59 {
                    return None;
                }
                p.minute = m;
                v = r;
            }
            Chunk::Second | Chunk::ZeroSecond => {
                let (s, r) = getnum(v, *chunk == Chunk::ZeroSecond)?;
                if s > 59 {
                    return None;
                }
                p.second = s;
                v = r;
                // Go reads a fraction the layout does not mention.
                let next_is_frac = matches!(layout.chunks.get(idx + 1), Some(Chunk::Frac { .. }));
                let b = v.as_bytes();
                if !next_is_frac
                    && b.len() >= 2
                    && (b[0] == b'.' || b[0] == b',')
                    && b[1].is_ascii_digit()
                {
                    let (n, r) = frac(&v[1..]);
                    p.nanos = n;
                    v = r;
                }
            }
            Chunk::PM | Chunk::Pm => {
                let up = *chunk == Chunk::PM;
                let (am, pm) = if up { ("AM", "PM") } else { ("am", "pm") };
                if let Some(r) = v.strip_prefix(pm) {
                    p.pm = Some(true);
                    v = r;
                } else if let Some(r) = v.strip_prefix(am) {
                    p.pm = Some(false);
                    v = r;
                } else {
                    return None;
                }
            }
            Chunk::Tz => {
                if let Some(r) = v.strip_prefix("UTC") {
                    p.offset = Some(0);
                    v = r;
                } else if let Some(r) = v.strip_prefix("GMT") {
                    p.offset = Some(0);
                    v = r;
                } else {
                    let n = v.bytes().take_while(u8::is_ascii_alphabetic).count();
                    if !(3..=5).contains(&n) {
                        return None;
                    }
                    p.zone_abbrev = true;
                    v = &v[n..];
                }
            }
            Chunk::NumTz {
                iso,
                colon,
                seconds,
                hours_only,
            } => {
                if *iso && v.starts_with('Z') {
                    p.offset = Some(0);
                    v = &v[1..];
                    continue;
                }
                let sign = match v.as_bytes().first()? {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let (hh, mut r) = digits(&v[1..], 2)?;
                let mut mm = 0;
                let mut ss = 0;
                if !hours_only {
                    if *colon {
                        r = r.strip_prefix(':')?;
                    }
                    let (m, r2) = digits(r, 2)?;
                    mm = m;
                    r = r2;
                    if *seconds {
                        if *colon {
                            r = r.strip_prefix(':')?;
                        }
                        let (s, r3) = digits(r, 2)?;
                        ss = s;
                        r = r3;
                    }
                }
                p.offset = Some(sign * (hh * 3600 + mm * 60 + ss) as i32);
                v = r;
            }
            Chunk::Frac {
                digits: n,
                optional,
            } => {
                let b = v.as_bytes();
                let has = b.len() >= 2 && (b[0] == b'.' || b[0] == b',') && b[1].is_ascii_digit();
                if !*optional {
                    if !has || b.len() < n + 1 || !b[1..=*n].iter().all(u8::is_ascii_digit) {
                        return None;
                    }
                    let (nanos, _) = frac(&v[1..=*n]);
                    p.nanos = nanos;
                    v = &v[n + 1..];
                } else if has {
                    let (nanos, r) = frac(&v[1..]);
                    p.nanos = nanos;
                    v = r;
                }
            }
        }
    }
    if !v.is_empty() {
        return None;
    }
    Some(p)
}

/// Parses `value` with `layout`. Without a zone in the value, the time is
/// in `loc` (UTC by default), as ParseInLocation. A layout without a year
/// gives year 0, as Go does, unless `now` (year, month) is given: then, as
/// promtail, the current year, or the one before / after across new year.
pub fn parse(
    layout: &Layout,
    value: &str,
    loc: Location,
    now: Option<(i32, u32)>,
) -> Option<DateTime<FixedOffset>> {
    let p = parse_parts(layout, value)?;
    let year = match (p.year, now) {
        (Some(y), _) => y,
        (None, None) => 0,
        (None, Some((year, month))) => match (p.month.unwrap_or(1), month) {
            (12, 1) => year - 1,
            (1, 12) => year + 1,
            _ => year,
        },
    };
    let mut hour = p.hour;
    match p.pm {
        Some(true) if hour < 12 => hour += 12,
        Some(false) if hour == 12 => hour = 0,
        _ => {}
    }
    let date = match (p.yday, p.month, p.day) {
        (Some(yd), None, None) => NaiveDate::from_yo_opt(year, yd)?,
        (Some(yd), m, d) => {
            let date = NaiveDate::from_yo_opt(year, yd)?;
            if m.is_some_and(|m| m != chrono::Datelike::month(&date))
                || d.is_some_and(|d| d != chrono::Datelike::day(&date))
            {
                return None;
            }
            date
        }
        (None, m, d) => NaiveDate::from_ymd_opt(year, m.unwrap_or(1), d.unwrap_or(1))?,
    };
    let naive: NaiveDateTime = date.and_hms_nano_opt(hour, p.minute, p.second, p.nanos)?;
    if let Some(off) = p.offset {
        return FixedOffset::east_opt(off)?
            .from_local_datetime(&naive)
            .single();
    }
    match loc {
        Location::Utc => Some(Utc.from_utc_datetime(&naive).fixed_offset()),
        Location::Named(tz) => {
            let resolved = match tz.from_local_datetime(&naive) {
                LocalResult::Single(t) => t,
                // Go picks the earlier offset in a fold, and shifts a gap forward.
                LocalResult::Ambiguous(a, _) => a,
                LocalResult::None => tz.from_utc_datetime(&naive),
            };
            let _ = p.zone_abbrev;
            Some(resolved.fixed_offset())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(layout: &str, v: &str) -> Option<String> {
        parse(&Layout::new(layout), v, Location::Utc, None)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }

    #[test]
    fn named_go_layouts() {
        assert_eq!(
            utc("Mon Jan _2 15:04:05 2006", "Tue Mar  5 07:08:09 2024").unwrap(),
            "2024-03-05T07:08:09Z"
        );
        assert_eq!(
            utc("02/Jan/2006:15:04:05 -0700", "10/Oct/2023:13:55:36 -0700").unwrap(),
            "2023-10-10T13:55:36-07:00"
        );
        assert_eq!(
            utc("2006-01-02T15:04:05Z07:00", "2023-10-10T13:55:36Z").unwrap(),
            "2023-10-10T13:55:36Z"
        );
        assert_eq!(
            utc(
                "2006-01-02T15:04:05.999999999Z07:00",
                "2023-10-10T13:55:36.123456+02:00"
            )
            .unwrap(),
            "2023-10-10T13:55:36.123456+02:00"
        );
        assert_eq!(
            utc("02 Jan 06 15:04 MST", "10 Oct 23 13:55 UTC").unwrap(),
            "2023-10-10T13:55:00Z"
        );
        assert_eq!(
            utc(
                "Monday, 02-Jan-06 15:04:05 MST",
                "Tuesday, 10-Oct-23 13:55:36 GMT"
            )
            .unwrap(),
            "2023-10-10T13:55:36Z"
        );
        assert_eq!(
            utc("2006-01-02 15:04:05,000", "2023-10-10 13:55:36,250").unwrap(),
            "2023-10-10T13:55:36.250Z"
        );
        assert_eq!(utc("3:04PM", "1:05PM").unwrap(), "0000-01-01T13:05:00Z");
        // A fraction the layout does not mention is still read.
        assert_eq!(
            utc("2006-01-02 15:04:05", "2023-10-10 13:55:36.5").unwrap(),
            "2023-10-10T13:55:36.500Z"
        );
    }

    #[test]
    fn rejects_what_go_rejects() {
        assert!(utc("2006-01-02", "2023-13-01").is_none());
        assert!(utc("2006-01-02", "2023-02-30").is_none());
        assert!(utc("2006-01-02", "2023-01-02 trailing").is_none());
        assert!(utc("2006-01-02T15:04:05Z07:00", "2023-10-10T13:55:36").is_none());
        assert!(utc("2006-01-02 15:04:05.000", "2023-10-10 13:55:36.5").is_none());
    }

    #[test]
    fn location_applies_without_zone() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let t = parse(
            &Layout::new("2006-01-02 15:04:05"),
            "2024-07-01 12:00:00",
            Location::Named(tz),
            None,
        )
        .unwrap();
        assert_eq!(t.to_rfc3339(), "2024-07-01T12:00:00+02:00");
        let l = Layout::new("Jan _2 15:04:05");
        assert!(!l.has_year);
        // A year-less time takes the zone's offset of the year it lands in.
        let t = parse(&l, "Jul  1 12:00:00", Location::Named(tz), Some((2024, 6))).unwrap();
        assert_eq!(t.to_rfc3339(), "2024-07-01T12:00:00+02:00");
    }
}
