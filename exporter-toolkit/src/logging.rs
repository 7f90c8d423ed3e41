//! `--log.level` and `--log.format` as Prometheus exporters spell them:
//! logfmt (the default) or JSON lines on stderr.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

pub fn parse_level(s: &str) -> Result<Level, String> {
    match s {
        "debug" => Ok(Level::DEBUG),
        "info" => Ok(Level::INFO),
        "warn" => Ok(Level::WARN),
        "error" => Ok(Level::ERROR),
        other => Err(format!(
            "--log.level: unknown level {other:?} (debug, info, warn, error)"
        )),
    }
}

pub fn init(level: &str, format: &str) -> Result<(), String> {
    let level = parse_level(level)?;
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr);
    match format {
        "logfmt" => builder.event_format(Logfmt).init(),
        "json" => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        other => {
            return Err(format!(
                "--log.format: unknown format {other:?} (logfmt, json)"
            ))
        }
    }
    Ok(())
}

/// `time=... level=info msg="..." key=value`, as slog's logfmt handler writes.
struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        write!(
            w,
            "time={} level={} source={}",
            rfc3339_millis(now),
            event.metadata().level().as_str().to_ascii_lowercase(),
            event.metadata().target()
        )?;
        let mut visitor = LogfmtVisitor {
            w: &mut w,
            result: Ok(()),
        };
        event.record(&mut visitor);
        visitor.result?;
        writeln!(w)
    }
}

struct LogfmtVisitor<'a, 'b> {
    w: &'a mut Writer<'b>,
    result: fmt::Result,
}

impl tracing::field::Visit for LogfmtVisitor<'_, '_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.write(field.name(), value);
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.write(field.name(), &format!("{value:?}"));
    }
}

impl LogfmtVisitor<'_, '_> {
    fn write(&mut self, key: &str, value: &str) {
        let key = if key == "message" { "msg" } else { key };
        let needs_quotes = value.is_empty()
            || value
                .chars()
                .any(|c| c == ' ' || c == '"' || c == '=' || c.is_control());
        self.result = if needs_quotes {
            write!(self.w, " {key}={value:?}")
        } else {
            write!(self.w, " {key}={value}")
        };
    }
}

/// UTC time as `2006-01-02T15:04:05.000Z` without pulling in a date crate.
fn rfc3339_millis(since_epoch: std::time::Duration) -> String {
    let secs = since_epoch.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(
            rfc3339_millis(std::time::Duration::from_millis(1_700_000_000_123)),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            rfc3339_millis(std::time::Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn unknown_level_is_an_error() {
        assert!(parse_level("verbose").unwrap_err().contains("--log.level"));
    }
}
