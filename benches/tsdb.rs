//! TSDB benchmarks (run: `cargo bench --bench tsdb`). Prints figures; asserts nothing timed.
//! Append throughput, selection + decode throughput, `=` selection cost against the number of
//! non-matching series, bytes per sample, and recovery time of a full 8 MiB store.

use promlet::model::{Labels, MatchOp, Matcher};
use promlet::tsdb::workload::NodeWorkload;
use promlet::tsdb::{Appender, Options, OsFs, Querier, Store};
use std::time::{Duration, Instant};

const T0: i64 = 1_700_000_000_000;

fn main() {
    // Append throughput: 24 h of the node-like workload.
    let mut st = Store::new(Options {
        retention_bytes: 256 << 20,
        ..Options::default()
    });
    let mut w = NodeWorkload::new(1, T0, 15_000, 0);
    let ticks = 24 * 240;
    let start = Instant::now();
    for _ in 0..ticks {
        w.collect(|l, t, v| st.append(l, t, v).unwrap());
    }
    let el = start.elapsed();
    let n = st.sample_count();
    println!(
        "append: {n} samples in {:.3} s = {:.2} M samples/s (one core, {} series)",
        el.as_secs_f64(),
        n as f64 / el.as_secs_f64() / 1e6,
        w.series_count()
    );
    println!(
        "bytes/sample (node-like, 24 h, 15 s): {:.3} all-in, {:.3} payload",
        st.bytes_used() as f64 / n as f64,
        st.chunk_payload_bytes() as f64 / n as f64
    );

    // Selection + decode: every series over the whole day, then one series over one hour.
    let start = Instant::now();
    let mut decoded = 0usize;
    let reps = 5;
    for _ in 0..reps {
        st.select_each(&[], i64::MIN, i64::MAX, &mut |_, s| decoded += s.len());
    }
    let el = start.elapsed();
    println!(
        "select all, 24 h: {:.2} M samples/s decoded ({:.1} ms per query)",
        decoded as f64 / el.as_secs_f64() / 1e6,
        el.as_secs_f64() * 1e3 / reps as f64
    );
    let m = [
        Matcher::new(MatchOp::Equal, "__name__", "node_load1").unwrap(),
        Matcher::new(MatchOp::Equal, "job", "node").unwrap(),
    ];
    let reps = 2000;
    let start = Instant::now();
    for i in 0..reps {
        let t = T0 + (i % 20) * 3_600_000;
        std::hint::black_box(st.select(&m, t, t + 3_600_000));
    }
    println!(
        "select 1 series, 1 h: {:.1} µs per query",
        start.elapsed().as_secs_f64() * 1e6 / reps as f64
    );
    let re = [Matcher::new(MatchOp::Regex, "__name__", "node_cpu.*|node_load.*").unwrap()];
    let start = Instant::now();
    for _ in 0..200 {
        std::hint::black_box(st.select(&re, T0, T0 + 300_000));
    }
    println!(
        "select regex (35 series), 5 min: {:.1} µs per query",
        start.elapsed().as_secs_f64() * 1e6 / 200.0
    );

    // `=` cost must not grow with non-matching series.
    for extra in [100usize, 10_000, 50_000] {
        let mut st = Store::new(Options {
            retention_bytes: 512 << 20,
            max_series: 100_000,
            ..Options::default()
        });
        for i in 0..extra {
            let l = Labels::from_pairs([("__name__", "other".to_string()), ("i", i.to_string())]);
            st.append(&l, T0, 1.0).unwrap();
        }
        let l = Labels::from_pairs([("__name__", "wanted"), ("i", "x")]);
        st.append(&l, T0, 1.0).unwrap();
        let m = [Matcher::new(MatchOp::Equal, "__name__", "wanted").unwrap()];
        let reps = 20_000;
        let start = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(st.select(&m, T0, T0));
        }
        println!(
            "select name=\"wanted\" among {extra} other series: {:.2} µs",
            start.elapsed().as_secs_f64() * 1e6 / reps as f64
        );
    }

    // Recovery of a full 8 MiB store (wrapped ring, persisted with the default layout).
    let dir = std::env::temp_dir().join(format!("promlet-bench-recovery-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = Options {
        retention_bytes: 8 << 20,
        ..Options::default()
    };
    let mut st = Store::open(opts.clone(), &dir, Box::new(OsFs));
    let mut w = NodeWorkload::new(5, T0, 15_000, 2);
    let mono = Instant::now();
    let mut tick = 0u64;
    while st.stats().chunks_evicted == 0 || tick % 40 != 0 {
        w.collect(|l, t, v| st.append(l, t, v).unwrap());
        tick += 1;
        if tick % 40 == 0 {
            st.flush(mono + Duration::from_secs(tick * 15));
        }
    }
    let used = st.bytes_used();
    let samples = st.sample_count();
    drop(st);
    let on_disk: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let mut best = Duration::MAX;
    let mut recovered = 0;
    for _ in 0..5 {
        let start = Instant::now();
        let st = Store::open(opts.clone(), &dir, Box::new(OsFs));
        best = best.min(start.elapsed());
        recovered = st.sample_count();
    }
    println!(
        "recovery of a full 8 MiB store ({used} bytes used, {samples} samples, {on_disk} bytes \
         on disk): {:.1} ms (best of 5, warm page cache), {recovered} samples back; goal ≤ 100 ms",
        best.as_secs_f64() * 1e3
    );
    let _ = std::fs::remove_dir_all(&dir);
}
