//! A small real writer process driving the real store, for the crash tests (tests/tsdb_crash.rs)
//! until the agent's main loop feeds the store itself.
//!
//! Usage: `tsdb_writer DIR`. Opens the store under DIR (recovering it), continues every series
//! after its newest recovered sample, and runs until killed. After each flush it prints
//! `flushed K` (K = newest tick now durable) or `flush failed K` on stdout. Values are a pure function of (series,
//! tick), so a checker can verify every recovered sample exactly.

use promlet::model::Labels;
use promlet::tsdb::{Appender, Options, OsFs, Querier, Store};
use std::io::Write;
use std::time::{Duration, Instant};

pub const SERIES: usize = 40;
pub const STEP_MS: i64 = 15_000;

fn value(series: usize, tick: i64) -> f64 {
    let mut x = (series as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ tick as u64;
    x ^= x >> 29;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    if tick % 5 == 0 {
        tick as f64
    } else {
        (x >> 20) as f64 / 64.0
    }
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: tsdb_writer DIR");
    let opts = Options {
        retention_bytes: 512 << 10,
        segment_bytes: 16 << 10,
        ..Options::default()
    };
    let mut st = Store::open(opts, std::path::Path::new(&dir), Box::new(OsFs));
    let labels: Vec<Labels> = (0..SERIES)
        .map(|i| Labels::from_pairs([("__name__", "crash_test".to_string()), ("s", i.to_string())]))
        .collect();
    let newest = st
        .select(&[], i64::MIN, i64::MAX)
        .iter()
        .filter_map(|s| s.samples.last().map(|x| x.t))
        .max();
    let mut tick = newest.map_or(0, |t| t / STEP_MS + 1);
    let mut out = std::io::stdout();
    let _ = writeln!(out, "started {tick} corrupt={}", st.stats().corrupt_records);
    let mono = Instant::now();
    loop {
        for (i, l) in labels.iter().enumerate() {
            if let Err(e) = st.append(l, tick * STEP_MS, value(i, tick)) {
                let _ = writeln!(out, "append error {e:?} at {tick}");
            }
        }
        if tick % 7 == 6 {
            let errors = st.stats().persist_errors;
            st.flush(mono + Duration::from_millis(tick as u64));
            if st.stats().persist_errors == errors {
                let _ = writeln!(out, "flushed {tick}");
            } else {
                let _ = writeln!(out, "flush failed {tick}");
            }
            let _ = out.flush();
        }
        tick += 1;
        std::thread::sleep(Duration::from_micros(300));
    }
}

#[allow(dead_code)]
pub fn expected(series: usize, tick: i64) -> f64 {
    value(series, tick)
}
