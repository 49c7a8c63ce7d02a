//! TSDB benchmarks (run: `cargo bench --bench tsdb`). Prints figures; asserts nothing timed.
//! Append throughput, selection + decode throughput, `=` selection cost against the number of
//! non-matching series, bytes per sample (node-like and a synthetic mix), how close the store's
//! own byte accounting is to what the allocator really handed out, RSS for 1,000 series × 24 h,
//! and recovery time of a full 8 MiB store.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// Counts live heap bytes, to check `Store::bytes_used` against reality.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

use promlet::model::{Labels, MatchOp, Matcher};
use promlet::tsdb::workload::NodeWorkload;
use promlet::tsdb::{Appender, Options, OsFs, Querier, Store};
use std::time::{Duration, Instant};

const T0: i64 = 1_700_000_000_000;
const DAY_TICKS: i64 = 24 * 240;

fn main() {
    // RSS for 1,000 series × 24 h at 15 s (process RSS, allocator slack included).
    let rss0 = rss_kib();
    let mut st = Store::new(Options {
        retention_bytes: 512 << 20,
        ..Options::default()
    });
    let mut ws: Vec<NodeWorkload> = (0..3)
        .map(|k| NodeWorkload::new(k + 10, T0, 15_000, 0))
        .collect();
    let per = ws[0].series_count();
    let keep = 1000 - 2 * per;
    for _ in 0..DAY_TICKS {
        for (k, w) in ws.iter_mut().enumerate() {
            let inst = format!("host{k}");
            let mut n = 0;
            w.collect(|l, t, v| {
                n += 1;
                if k < 2 || n <= keep {
                    let mut l = l.clone();
                    l.set("instance".into(), inst.clone());
                    st.append(&l, t, v).unwrap();
                }
            });
        }
    }
    println!(
        "1,000 series × 24 h at 15 s: {} series, {} samples, bytes_used {:.1} MiB, \
         process RSS grew {:.1} MiB",
        st.series_count(),
        st.sample_count(),
        st.bytes_used() as f64 / 1048576.0,
        (rss_kib() - rss0) as f64 / 1024.0
    );
    drop(st);

    // Append throughput: 24 h of the node-like workload.
    let mut w = NodeWorkload::new(1, T0, 15_000, 0);
    let live0 = LIVE.load(Ordering::Relaxed);
    let mut st = Store::new(Options {
        retention_bytes: 256 << 20,
        ..Options::default()
    });
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
    let heap = (LIVE.load(Ordering::Relaxed) - live0) as f64;
    println!(
        "accounting: bytes_used {} vs {} bytes requested from the allocator ({:+.1} %; \
         bytes_used adds the allocator's per-block header and rounding)",
        st.bytes_used(),
        heap,
        (st.bytes_used() as f64 / heap - 1.0) * 100.0
    );

    // promlet's own collectors on this machine's /proc and /sys: a simulated 24 h of real
    // collections run back to back, stamped 15 s apart (values move less than in 15 s: an
    // optimistic figure), fed through the agent's own append path (Appender::append_parts,
    // no allocation per sample).
    {
        let args = promlet::cli::Args::default();
        let cfg = promlet::config::Config::embedded();
        let mut driver = promlet::agent::build_driver(&cfg, &args).unwrap();
        let mut set = promlet::expo::MetricSet::new();
        let mut st = Store::new(Options {
            retention_bytes: 64 << 20,
            ..Options::default()
        });
        let mut append_time = Duration::ZERO;
        for i in 0..DAY_TICKS {
            let t = T0 + i * 15_000;
            set.clear();
            let ctx = promlet::collect::Context {
                roots: &args.roots,
                now_ms: t,
            };
            driver.collect(&ctx, &mut set);
            let start = Instant::now();
            promlet::agent::append_all(&set, t, &mut st);
            append_time += start.elapsed();
        }
        let n = st.sample_count();
        println!(
            "promlet's own collectors, 24 h simulated ({} series): {:.3} bytes/sample all-in, \
             {:.3} payload; agent append path {:.2} M samples/s",
            st.series_count(),
            st.bytes_used() as f64 / n as f64,
            st.chunk_payload_bytes() as f64 / n as f64,
            n as f64 / append_time.as_secs_f64() / 1e6
        );
    }

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

    // Synthetic mix: counters, gauges, constants and noisy floats, 25 % each, at 15 s.
    let mut st = Store::new(Options {
        retention_bytes: 256 << 20,
        ..Options::default()
    });
    let mut rng = fastrand::Rng::with_seed(3);
    let labels: Vec<Labels> = (0..400)
        .map(|i| Labels::from_pairs([("__name__", format!("mix_{}", i % 4)), ("i", i.to_string())]))
        .collect();
    let mut vals = vec![0.0f64; 400];
    for tick in 0..DAY_TICKS {
        for (i, l) in labels.iter().enumerate() {
            vals[i] = match i % 4 {
                0 => vals[i] + rng.u32(0..5000) as f64,
                1 => 50.0 + (tick as f64 / 40.0).sin() * 20.0 + rng.u32(0..100) as f64 / 100.0,
                2 => 42.0,
                _ => rng.f64() * 1e6,
            };
            st.append(l, T0 + tick * 15_000, vals[i]).unwrap();
        }
    }
    println!(
        "bytes/sample (synthetic mix: counters, gauges, constants, noisy floats): {:.3} all-in, \
         {:.3} payload",
        st.bytes_used() as f64 / st.sample_count() as f64,
        st.chunk_payload_bytes() as f64 / st.sample_count() as f64
    );
    drop(st);

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
