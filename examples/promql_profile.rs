//! promlet's side of `benches/promql_latency.rs` in-process, for profiling: the same data and
//! queries, no HTTP client, no Prometheus. Prints each query's median and minimum *thread CPU
//! time*: on a shared machine wall time mostly measures the other tenants.
//!
//! Run: `cargo build --release --example promql_profile` then
//! `perf record -g target/release/examples/promql_profile [names,...] [runs]`
//! (names: one all sumrate sumbyjob topk maxot rangejob rangeone; keep debug symbols with
//! `CARGO_PROFILE_RELEASE_DEBUG=true CARGO_PROFILE_RELEASE_STRIP=false` and a separate
//! `--target-dir`).
use promlet::http::api_v1;
use promlet::promql::EngineOpts;
use promlet::tsdb::Appender;

#[path = "../benches/support/promql_workload.rs"]
mod workload;

fn main() {
    let mut store = promlet::tsdb::Store::new(promlet::tsdb::Options::default());
    for (labels, points) in workload::series() {
        for (t, v) in points {
            store.append(&labels, t, v).unwrap();
        }
    }
    let only = std::env::args().nth(1).unwrap_or_default();
    let n: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let opts = EngineOpts::default();
    for case in workload::CASES {
        let name = case.name;
        if !only.is_empty() && !only.split(',').any(|o| o == name) {
            continue;
        }
        let params = case.params();
        let mut ts = Vec::new();
        let mut len = 0;
        for _ in 0..n {
            let c0 = cpu_ns();
            let r = if case.range_step.is_some() {
                api_v1::query_range(&params, &store, workload::END, &opts)
            } else {
                api_v1::query(&params, &store, workload::END, &opts)
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
