//! promlet's side of `benches/promql_latency.rs` in-process, for profiling: the same data and
//! queries, no HTTP client, no Prometheus. Prints each query's median and minimum *thread CPU
//! time*: on a shared machine wall time mostly measures the other tenants.
//!
//! Run: `cargo build --release --example promql_profile` then
//! `perf record -g target/release/examples/promql_profile [names,...] [runs]`
//! (names: one all sumrate sumbyjob topk maxot rangejob rangeone; keep debug symbols with
//! `CARGO_PROFILE_RELEASE_DEBUG=true CARGO_PROFILE_RELEASE_STRIP=false` and a separate
//! `--target-dir`).
#![allow(clippy::type_complexity)]
use promlet::http::api_v1;
use promlet::model::Labels;
use promlet::promql::EngineOpts;
use promlet::tsdb::Appender;

const T0: i64 = 1_700_000_000_000;
const STEP: i64 = 60_000;
const POINTS: i64 = 1440;
const END: i64 = T0 + (POINTS - 1) * STEP;

fn main() {
    let mut store = promlet::tsdb::Store::new(promlet::tsdb::Options::default());
    for i in 0..1000i64 {
        let l = Labels::from_pairs([
            ("__name__".to_string(), "bench_requests_total".to_string()),
            ("job".to_string(), format!("job{}", i % 10)),
            ("instance".to_string(), format!("host{i}")),
        ]);
        let mut v = 0.0;
        for k in 0..POINTS {
            v += ((i * 7 + k * 13) % 17) as f64;
            store.append(&l, T0 + k * STEP, v).unwrap();
        }
    }
    let at = format!("{}", (END - 3_600_000) / 1000);
    let (s, e) = (format!("{}", T0 / 1000 + 3600), format!("{}", END / 1000));
    let p = |k: &str, v: &str| (k.to_string(), v.to_string());
    let cases: Vec<(&str, Vec<(String, String)>, bool)> = vec![
        (
            "one",
            vec![
                p("query", "bench_requests_total{instance=\"host7\"}"),
                p("time", &at),
            ],
            false,
        ),
        (
            "all",
            vec![p("query", "bench_requests_total"), p("time", &at)],
            false,
        ),
        (
            "sumrate",
            vec![
                p("query", "sum(rate(bench_requests_total[5m]))"),
                p("time", &at),
            ],
            false,
        ),
        (
            "sumbyjob",
            vec![
                p("query", "sum by (job) (rate(bench_requests_total[5m]))"),
                p("time", &at),
            ],
            false,
        ),
        (
            "topk",
            vec![
                p("query", "topk(5, rate(bench_requests_total[5m]))"),
                p("time", &at),
            ],
            false,
        ),
        (
            "maxot",
            vec![
                p("query", "max(max_over_time(bench_requests_total[1h]))"),
                p("time", &at),
            ],
            false,
        ),
        (
            "rangejob",
            vec![
                p("query", "sum by (job) (rate(bench_requests_total[5m]))"),
                p("start", &s),
                p("end", &e),
                p("step", "60"),
            ],
            true,
        ),
        (
            "rangeone",
            vec![
                p(
                    "query",
                    "rate(bench_requests_total{instance=\"host7\"}[5m])",
                ),
                p("start", &s),
                p("end", &e),
                p("step", "300"),
            ],
            true,
        ),
    ];
    let only = std::env::args().nth(1).unwrap_or_default();
    let n: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let opts = EngineOpts::default();
    for (name, params, range) in &cases {
        if !only.is_empty() && !only.split(',').any(|o| o == *name) {
            continue;
        }
        let mut ts = Vec::new();
        let mut len = 0;
        for _ in 0..n {
            let c0 = cpu_ns();
            let r = if *range {
                api_v1::query_range(params, &store, END, &opts)
            } else {
                api_v1::query(params, &store, END, &opts)
            };
            ts.push(std::time::Duration::from_nanos(cpu_ns() - c0));
            assert_eq!(r.status, 200);
            len = r.body.len();
        }
        ts.sort();
        println!(
            "{name:<10} min {:>9.3}ms  p50 {:>9.3}ms  body {len}",
            ts[0].as_secs_f64() * 1e3,
            ts[n / 2].as_secs_f64() * 1e3
        );
    }
}

/// CPU time of this thread (ns): wall time is meaningless on a machine shared by many.
fn cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
