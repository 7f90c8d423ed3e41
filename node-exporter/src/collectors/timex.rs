//! `node_timex_*`: the kernel's clock discipline state from adjtimex(2), with
//! node_exporter's names and unit conversions. `offset` and the PPS jitter
//! are in nanoseconds when the kernel sets STA_NANO in `status`, else in
//! microseconds; frequencies are scaled ppm with a 16-bit fraction.

use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, NoData};

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "timex",
    default_enabled: true,
    flags: no_flags,
    build: |_| Ok(Box::new(Timex)),
};

/// adjtimex(2) returns this when the clock is not synchronized.
const TIME_ERROR: libc::c_int = 5;
/// `status` bit: `offset` (and PPS jitter) are in nanoseconds.
const STA_NANO: libc::c_int = 0x2000;
const NANOSECONDS: f64 = 1e9;
const MICROSECONDS: f64 = 1e6;
/// ppm with a 16-bit binary fraction, see NOTES in adjtimex(2).
const PPM16FRAC: f64 = 1_000_000.0 * 65536.0;

struct Timex;

/// The adjtimex(2) fields node_exporter reports, already as f64.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TimexState {
    pub state: i32,
    pub offset: f64,
    pub freq: f64,
    pub maxerror: f64,
    pub esterror: f64,
    pub status: i32,
    pub constant: f64,
    pub tick: f64,
    pub ppsfreq: f64,
    pub jitter: f64,
    pub shift: f64,
    pub stabil: f64,
    pub jitcnt: f64,
    pub calcnt: f64,
    pub errcnt: f64,
    pub stbcnt: f64,
    pub tai: f64,
}

fn read_timex() -> anyhow::Result<TimexState> {
    // SAFETY: timex is plain data; all-zero (modes == 0) asks adjtimex to
    // read only.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `tx` is a valid, writable timex.
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        let err = std::io::Error::last_os_error();
        if err.kind() == std::io::ErrorKind::PermissionDenied {
            return Err(NoData(format!("adjtimex(2): {err}")).into());
        }
        return Err(anyhow::anyhow!("failed to retrieve adjtimex stats: {err}"));
    }
    Ok(TimexState {
        state,
        offset: tx.offset as f64,
        freq: tx.freq as f64,
        maxerror: tx.maxerror as f64,
        esterror: tx.esterror as f64,
        status: tx.status,
        constant: tx.constant as f64,
        tick: tx.tick as f64,
        ppsfreq: tx.ppsfreq as f64,
        jitter: tx.jitter as f64,
        shift: tx.shift as f64,
        stabil: tx.stabil as f64,
        jitcnt: tx.jitcnt as f64,
        calcnt: tx.calcnt as f64,
        errcnt: tx.errcnt as f64,
        stbcnt: tx.stbcnt as f64,
        tai: tx.tai as f64,
    })
}

/// Adds the metrics for one adjtimex(2) reading.
pub fn report(t: &TimexState, out: &mut MetricSet) {
    let divisor = if t.status & STA_NANO != 0 {
        NANOSECONDS
    } else {
        MICROSECONDS
    };
    let sync = if t.state == TIME_ERROR { 0.0 } else { 1.0 };
    let gauges: [(&'static str, &'static str, f64); 13] = [
        (
            "node_timex_sync_status",
            "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
            sync,
        ),
        (
            "node_timex_offset_seconds",
            "Time offset in between local system and reference clock.",
            t.offset / divisor,
        ),
        (
            "node_timex_frequency_adjustment_ratio",
            "Local clock frequency adjustment.",
            1.0 + t.freq / PPM16FRAC,
        ),
        (
            "node_timex_maxerror_seconds",
            "Maximum error in seconds.",
            t.maxerror / MICROSECONDS,
        ),
        (
            "node_timex_estimated_error_seconds",
            "Estimated error in seconds.",
            t.esterror / MICROSECONDS,
        ),
        (
            "node_timex_status",
            "Value of the status array bits.",
            f64::from(t.status),
        ),
        (
            "node_timex_loop_time_constant",
            "Phase-locked loop time constant.",
            t.constant,
        ),
        (
            "node_timex_tick_seconds",
            "Seconds between clock ticks.",
            t.tick / MICROSECONDS,
        ),
        (
            "node_timex_pps_frequency_hertz",
            "Pulse per second frequency.",
            t.ppsfreq / PPM16FRAC,
        ),
        (
            "node_timex_pps_jitter_seconds",
            "Pulse per second jitter.",
            t.jitter / divisor,
        ),
        (
            "node_timex_pps_shift_seconds",
            "Pulse per second interval duration.",
            t.shift,
        ),
        (
            "node_timex_pps_stability_hertz",
            "Pulse per second stability, average of recent frequency changes.",
            t.stabil / PPM16FRAC,
        ),
        (
            "node_timex_tai_offset_seconds",
            "International Atomic Time (TAI) offset.",
            t.tai,
        ),
    ];
    for (name, help, v) in gauges {
        out.gauge(name, help, &[], v);
    }
    let counters: [(&'static str, &'static str, f64); 4] = [
        (
            "node_timex_pps_jitter_total",
            "Pulse per second count of jitter limit exceeded events.",
            t.jitcnt,
        ),
        (
            "node_timex_pps_calibration_total",
            "Pulse per second count of calibration intervals.",
            t.calcnt,
        ),
        (
            "node_timex_pps_error_total",
            "Pulse per second count of calibration errors.",
            t.errcnt,
        ),
        (
            "node_timex_pps_stability_exceeded_total",
            "Pulse per second count of stability limit exceeded events.",
            t.stbcnt,
        ),
    ];
    for (name, help, v) in counters {
        out.counter(name, help, &[], v);
    }
}

impl Collector for Timex {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        report(&read_timex()?, out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exporter_toolkit::exposition::{encode, Format};

    fn render(t: &TimexState) -> String {
        let mut set = MetricSet::new();
        report(t, &mut set);
        encode(&set.finish().unwrap(), Format::Text)
    }

    #[test]
    fn offset_unit_follows_sta_nano() {
        let micro = TimexState {
            offset: 1500.0,
            jitter: 20.0,
            status: 0x0001,
            ..Default::default()
        };
        let out = render(&micro);
        assert!(out.contains("node_timex_offset_seconds 0.0015\n"), "{out}");
        assert!(
            out.contains("node_timex_pps_jitter_seconds 2e-05\n"),
            "{out}"
        );
        let nano = TimexState {
            status: 0x2001,
            ..micro
        };
        let out = render(&nano);
        assert!(out.contains("node_timex_offset_seconds 1.5e-06\n"), "{out}");
        assert!(
            out.contains("node_timex_pps_jitter_seconds 2e-08\n"),
            "{out}"
        );
        assert!(out.contains("node_timex_status 8193\n"), "{out}");
    }

    #[test]
    fn frequency_is_scaled_ppm_and_errors_are_microseconds() {
        let t = TimexState {
            freq: 65536.0 * 10.0,
            maxerror: 16000.0,
            esterror: 500.0,
            tick: 10000.0,
            state: TIME_ERROR,
            ..Default::default()
        };
        let out = render(&t);
        assert!(
            out.contains("node_timex_frequency_adjustment_ratio 1.00001\n"),
            "{out}"
        );
        assert!(out.contains("node_timex_maxerror_seconds 0.016\n"), "{out}");
        assert!(
            out.contains("node_timex_estimated_error_seconds 0.0005\n"),
            "{out}"
        );
        assert!(out.contains("node_timex_tick_seconds 0.01\n"), "{out}");
        assert!(out.contains("node_timex_sync_status 0\n"), "{out}");
        assert!(out.contains("# TYPE node_timex_pps_jitter_total counter\n"));
    }

    #[test]
    fn live_read_works() {
        let mut set = MetricSet::new();
        Timex.update(&mut set).unwrap();
        assert_eq!(set.families().len(), 17);
    }
}
