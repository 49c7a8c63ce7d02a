//! Benchmarks of the per-scrape work: one full collection cycle (`collect::Driver` with the
//! default collectors) over node_exporter's recorded fixture tree and over this machine's real
//! /proc and /sys, and the /metrics encoders (text 0.0.4 and OpenMetrics) over what a cycle
//! produced.
//!
//! A `harness = false` bench with its own small timing loop instead of criterion: criterion adds
//! ~40 crates and minutes of build time to a crate whose whole dependency tree is ~20 crates.
//! Each case is warmed up, then run repeatedly for a fixed wall time; we report min, median,
//! p90 and mean per iteration. Min and median are the numbers to compare between commits (the
//! machine is shared, so the tail is noise).
//!
//! Run: `cargo bench --bench cycle [FILTER]`. Env: `PROMLET_BENCH_SECS` (per case, default 2),
//! `PROMLET_SHARED` (where node-fixtures/ lives, default ../shared).

use promlet::collect::{CollectorOptions, Context, Driver, Roots};
use promlet::expo::{encode_openmetrics, encode_text, MetricSet};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Timing of one case: per-iteration durations, sorted.
struct Timing {
    sorted: Vec<Duration>,
}

impl Timing {
    fn quantile(&self, q: f64) -> Duration {
        let i = ((self.sorted.len() - 1) as f64 * q).round() as usize;
        self.sorted[i]
    }
    fn mean(&self) -> Duration {
        self.sorted.iter().sum::<Duration>() / self.sorted.len() as u32
    }
}

/// Runs `f` for `warmup` then for `measure` (at least 10 iterations) and times each call.
fn run(mut f: impl FnMut(), warmup: Duration, measure: Duration) -> Timing {
    let start = Instant::now();
    while start.elapsed() < warmup {
        f();
    }
    let mut times = Vec::with_capacity(4096);
    let start = Instant::now();
    while start.elapsed() < measure || times.len() < 10 {
        let t = Instant::now();
        f();
        times.push(t.elapsed());
    }
    times.sort_unstable();
    Timing { sorted: times }
}

fn fmt(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else {
        format!("{:.1} µs", ns / 1e3)
    }
}

fn report(name: &str, t: &Timing, what: &str) {
    println!(
        "{name:<34} min {:>11}  median {:>11}  p90 {:>11}  mean {:>11}  ({} runs; {what})",
        fmt(t.sorted[0]),
        fmt(t.quantile(0.5)),
        fmt(t.quantile(0.9)),
        fmt(t.mean()),
        t.sorted.len(),
    );
}

fn fixture_roots() -> Option<Roots> {
    let shared = std::env::var_os("PROMLET_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let base = shared.join("node-fixtures");
    if !base.join("proc").is_dir() {
        eprintln!(
            "SKIPPED fixture cases: {} not found (set PROMLET_SHARED)",
            base.display()
        );
        return None;
    }
    Some(Roots {
        procfs: base.join("proc"),
        sysfs: base.join("sys"),
        rootfs: base.clone(),
        udev_data: base.join("udev/data"),
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn main() {
    // Collectors that fail on the fixture tree would log every iteration; the bench measures
    // the work, not stderr.
    promlet::log::set_level(promlet::log::Level::Error);
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f));
    let secs: f64 = std::env::var("PROMLET_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| *s > 0.0)
        .unwrap_or(2.0);
    let measure = Duration::from_secs_f64(secs);
    let warmup = measure / 4;

    let mut sources = vec![("real /proc, /sys", Roots::default())];
    if let Some(r) = fixture_roots() {
        sources.insert(0, ("node-fixtures", r));
    }
    for (label, roots) in &sources {
        let mut driver = match Driver::new(|d| d.default_enabled, &CollectorOptions::default()) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("cannot build the default collectors: {e}");
                std::process::exit(1);
            }
        };
        let collectors = driver.names().count();
        let mut set = MetricSet::new();
        let mut cycle = |set: &mut MetricSet| {
            set.clear();
            let ctx = Context {
                roots,
                now_ms: now_ms(),
            };
            driver.collect(&ctx, set);
        };
        cycle(&mut set);
        let samples = set.sample_count();

        let name = format!("collect cycle [{label}]");
        if wanted(&name) {
            let t = run(|| cycle(black_box(&mut set)), warmup, measure);
            report(
                &name,
                &t,
                &format!("{collectors} collectors, {samples} samples"),
            );
        }
        cycle(&mut set);
        let mut buf = Vec::with_capacity(128 * 1024);
        for (fmt_name, encode) in [
            ("text 0.0.4", encode_text as fn(&MetricSet, &mut Vec<u8>)),
            ("OpenMetrics", encode_openmetrics),
        ] {
            let name = format!("encode {fmt_name} [{label}]");
            if !wanted(&name) {
                continue;
            }
            let t = run(
                || {
                    buf.clear();
                    encode(black_box(&set), &mut buf);
                    black_box(&buf);
                },
                warmup,
                measure,
            );
            report(
                &name,
                &t,
                &format!("{samples} samples, {} bytes", buf.len()),
            );
        }
    }
}
