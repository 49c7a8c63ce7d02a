//! The `timex` collector: the kernel's NTP discipline state from `adjtimex(2)` (read-only
//! query, `modes = 0`): offset, frequency, error estimates, PPS counters, sync status.
//!
//! Must not touch: the clock itself (a zero `modes` never changes it), files.
//! A kernel or sandbox that refuses the call with EPERM is "not present" (success 0, no
//! error line), as in node_exporter.

use super::{CollectError, CollectErrorKind, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};
use std::path::Path;

/// `STA_NANO`: offsets and jitter are in ns instead of µs.
const STA_NANO: i64 = 0x2000;
/// `TIME_ERROR`: the clock is not synchronised.
const TIME_ERROR: i32 = 5;
const MICRO: f64 = 1e6;
const NANO: f64 = 1e9;
/// Frequencies are ppm with a 16-bit fraction.
const PPM16: f64 = 1e6 * 65536.0;

pub struct Timex;

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::new(Timex))
}

/// One `adjtimex` reading, widened to i64.
#[derive(Debug, Default, Clone, Copy)]
pub struct Reading {
    pub state: i32,
    pub offset: i64,
    pub freq: i64,
    pub maxerror: i64,
    pub esterror: i64,
    pub status: i64,
    pub constant: i64,
    pub tick: i64,
    pub ppsfreq: i64,
    pub jitter: i64,
    pub shift: i64,
    pub stabil: i64,
    pub jitcnt: i64,
    pub calcnt: i64,
    pub errcnt: i64,
    pub stbcnt: i64,
    pub tai: i64,
}

/// The kernel's `struct timex` as the plain `adjtimex` syscall takes it (`long` fields, the
/// pre-time64 layout on 32-bit targets). Declared here rather than taken from the `libc` crate
/// because 32-bit musl 1.2's own `struct timex` is the time64 one, which the crate's
/// definition does not match; the raw syscall has one layout per word size.
#[repr(C)]
struct KernelTimex {
    modes: libc::c_uint,
    offset: libc::c_long,
    freq: libc::c_long,
    maxerror: libc::c_long,
    esterror: libc::c_long,
    status: libc::c_int,
    constant: libc::c_long,
    precision: libc::c_long,
    tolerance: libc::c_long,
    time: [libc::c_long; 2],
    tick: libc::c_long,
    ppsfreq: libc::c_long,
    jitter: libc::c_long,
    shift: libc::c_int,
    stabil: libc::c_long,
    jitcnt: libc::c_long,
    calcnt: libc::c_long,
    errcnt: libc::c_long,
    stbcnt: libc::c_long,
    tai: libc::c_int,
    _reserved: [libc::c_int; 11],
}

fn read() -> std::io::Result<Reading> {
    // SAFETY: `KernelTimex` matches the kernel's layout for this word size and is fully
    // initialised; with `modes = 0` the kernel only reads the clock state into it.
    unsafe {
        let mut t: KernelTimex = std::mem::zeroed();
        let state = libc::syscall(libc::SYS_adjtimex, &mut t as *mut KernelTimex);
        if state < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Reading {
            state: state as i32,
            offset: t.offset as i64,
            freq: t.freq as i64,
            maxerror: t.maxerror as i64,
            esterror: t.esterror as i64,
            status: t.status as i64,
            constant: t.constant as i64,
            tick: t.tick as i64,
            ppsfreq: t.ppsfreq as i64,
            jitter: t.jitter as i64,
            shift: t.shift as i64,
            stabil: t.stabil as i64,
            jitcnt: t.jitcnt as i64,
            calcnt: t.calcnt as i64,
            errcnt: t.errcnt as i64,
            stbcnt: t.stbcnt as i64,
            tai: t.tai as i64,
        })
    }
}

/// Appends the timex families for `r`, scaled as node_exporter scales them.
pub fn emit(r: &Reading, out: &mut MetricSet) {
    use MetricType::{Counter, Gauge};
    let div = if r.status & STA_NANO != 0 {
        NANO
    } else {
        MICRO
    };
    let sync = if r.state == TIME_ERROR { 0.0 } else { 1.0 };
    let rows: [(&str, &str, MetricType, f64); 17] = [
        (
            "node_timex_sync_status",
            "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
            Gauge,
            sync,
        ),
        (
            "node_timex_offset_seconds",
            "Time offset in between local system and reference clock.",
            Gauge,
            r.offset as f64 / div,
        ),
        (
            "node_timex_frequency_adjustment_ratio",
            "Local clock frequency adjustment.",
            Gauge,
            1.0 + r.freq as f64 / PPM16,
        ),
        (
            "node_timex_maxerror_seconds",
            "Maximum error in seconds.",
            Gauge,
            r.maxerror as f64 / MICRO,
        ),
        (
            "node_timex_estimated_error_seconds",
            "Estimated error in seconds.",
            Gauge,
            r.esterror as f64 / MICRO,
        ),
        (
            "node_timex_status",
            "Value of the status array bits.",
            Gauge,
            r.status as f64,
        ),
        (
            "node_timex_loop_time_constant",
            "Phase-locked loop time constant.",
            Gauge,
            r.constant as f64,
        ),
        (
            "node_timex_tick_seconds",
            "Seconds between clock ticks.",
            Gauge,
            r.tick as f64 / MICRO,
        ),
        (
            "node_timex_pps_frequency_hertz",
            "Pulse per second frequency.",
            Gauge,
            r.ppsfreq as f64 / PPM16,
        ),
        (
            "node_timex_pps_jitter_seconds",
            "Pulse per second jitter.",
            Gauge,
            r.jitter as f64 / div,
        ),
        (
            "node_timex_pps_shift_seconds",
            "Pulse per second interval duration.",
            Gauge,
            r.shift as f64,
        ),
        (
            "node_timex_pps_stability_hertz",
            "Pulse per second stability, average of recent frequency changes.",
            Gauge,
            r.stabil as f64 / PPM16,
        ),
        (
            "node_timex_pps_jitter_total",
            "Pulse per second count of jitter limit exceeded events.",
            Counter,
            r.jitcnt as f64,
        ),
        (
            "node_timex_pps_calibration_total",
            "Pulse per second count of calibration intervals.",
            Counter,
            r.calcnt as f64,
        ),
        (
            "node_timex_pps_error_total",
            "Pulse per second count of calibration errors.",
            Counter,
            r.errcnt as f64,
        ),
        (
            "node_timex_pps_stability_exceeded_total",
            "Pulse per second count of stability limit exceeded events.",
            Counter,
            r.stbcnt as f64,
        ),
        (
            "node_timex_tai_offset_seconds",
            "International Atomic Time (TAI) offset.",
            Gauge,
            r.tai as f64,
        ),
    ];
    for (name, help, typ, v) in rows {
        out.single_static(name, help, typ, v);
    }
}

impl Collector for Timex {
    fn name(&self) -> &'static str {
        "timex"
    }

    fn collect(&mut self, _ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        let r = match read() {
            Ok(r) => r,
            // EPERM in a sandbox, ENOSYS on a kernel without the 32-bit time calls.
            Err(e)
                if e.kind() == std::io::ErrorKind::PermissionDenied
                    || e.raw_os_error() == Some(libc::ENOSYS) =>
            {
                return Err(CollectError::not_found(Path::new("adjtimex(2)").into()))
            }
            Err(e) => return Err(CollectErrorKind::Io(Path::new("adjtimex(2)").into(), e).into()),
        };
        emit(&r, out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fixtures::families;

    fn text(set: &MetricSet) -> String {
        let mut v = Vec::new();
        crate::expo::encode_text(set, &mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn timex_scales_like_node_exporter() {
        let r = Reading {
            state: TIME_ERROR,
            offset: 1500,
            freq: 65536 * 2,
            maxerror: 16_000_000,
            tick: 10000,
            status: 0x40,
            ..Default::default()
        };
        let mut set = MetricSet::new();
        emit(&r, &mut set);
        let t = text(&set);
        assert!(t.contains("node_timex_sync_status 0\n"));
        assert!(t.contains("node_timex_offset_seconds 0.0015\n"));
        assert!(t.contains("node_timex_frequency_adjustment_ratio 1.000002\n"));
        assert!(t.contains("node_timex_maxerror_seconds 16\n"));
        assert!(t.contains("node_timex_tick_seconds 0.01\n"));
        let nano = Reading {
            status: STA_NANO,
            offset: 1500,
            ..r
        };
        let mut set = MetricSet::new();
        emit(&nano, &mut set);
        assert!(text(&set).contains("node_timex_offset_seconds 1.5e-06\n"));
    }

    #[test]
    fn timex_reads_this_kernel_and_names_families_like_node_exporter() {
        let mut c = new(&CollectorOptions::default()).unwrap();
        let roots = crate::collect::Roots::default();
        let mut set = MetricSet::new();
        let ctx = Context {
            roots: &roots,
            now_ms: 0,
        };
        match c.collect(&ctx, &mut set) {
            Ok(()) => {}
            // A sandbox may forbid adjtimex; that must be "not present", not an error.
            Err(ref e) if e.is_not_found() => return,
            Err(e) => panic!("{e}"),
        }
        let f = families(&text(&set));
        assert_eq!(f.len(), 17);
        assert_eq!(f["node_timex_pps_error_total"].typ, "counter");
        assert_eq!(
            f["node_timex_tick_seconds"].help,
            "Seconds between clock ticks."
        );
        // A struct layout that does not match the kernel's shows up as nonsense here: the tick
        // is 1e6/HZ µs (1–10 ms) and the status bits fit in 16 bits.
        let value = |n: &str| {
            f[n].samples[0]
                .rsplit(' ')
                .next()
                .unwrap()
                .parse::<f64>()
                .unwrap()
        };
        let tick = value("node_timex_tick_seconds");
        assert!((0.0009..=0.0101).contains(&tick), "tick {tick}");
        let status = value("node_timex_status");
        assert!((0.0..65536.0).contains(&status), "status {status}");
        assert!(value("node_timex_maxerror_seconds") >= 0.0);
    }
}
