//! The PromQL latency workload shared by `benches/promql_latency.rs` (side by side with
//! Prometheus over HTTP) and `examples/promql_profile.rs` (promlet alone, in-process, for
//! `perf`): the same series, the same queries, so the profile explains the bench.
//!
//! Included with `#[path]` by both (an example cannot import a bench); a subdirectory of
//! `benches/` is not a bench target of its own.

use promlet::model::Labels;

/// First sample (ms), sample interval, samples per series: 1,000 series × 24 h at 60 s.
pub const T0: i64 = 1_700_000_000_000;
pub const STEP: i64 = 60_000;
pub const POINTS: i64 = 1440;
pub const END: i64 = T0 + (POINTS - 1) * STEP;

/// `bench_requests_total{job="job<i % 10>", instance="host<i>"}` for i in 0..1000: counters
/// that grow by a deterministic 0..16 per step.
pub fn series() -> Vec<(Labels, Vec<(i64, f64)>)> {
    (0..1000i64)
        .map(|i| {
            let labels = Labels::from_pairs([
                ("__name__".to_string(), "bench_requests_total".to_string()),
                ("job".to_string(), format!("job{}", i % 10)),
                ("instance".to_string(), format!("host{i}")),
            ]);
            let mut v = 0.0;
            let points = (0..POINTS)
                .map(|k| {
                    v += ((i * 7 + k * 13) % 17) as f64;
                    (T0 + k * STEP, v)
                })
                .collect();
            (labels, points)
        })
        .collect()
}

/// One query of the workload. Each includer reads only one of `name` and `title`.
#[allow(dead_code)]
pub struct Case {
    /// Short name, as `examples/promql_profile.rs` takes it on its command line.
    pub name: &'static str,
    /// What the bench prints.
    pub title: &'static str,
    pub query: &'static str,
    /// `Some(step seconds)`: a range query over 23 h; `None`: instant, an hour before the end.
    pub range_step: Option<&'static str>,
}

pub const CASES: &[Case] = &[
    Case {
        name: "one",
        title: "one series",
        query: "bench_requests_total{instance=\"host7\"}",
        range_step: None,
    },
    Case {
        name: "all",
        title: "all 1000 series",
        query: "bench_requests_total",
        range_step: None,
    },
    Case {
        name: "sumrate",
        title: "sum(rate[5m])",
        query: "sum(rate(bench_requests_total[5m]))",
        range_step: None,
    },
    Case {
        name: "sumbyjob",
        title: "sum by job (rate)",
        query: "sum by (job) (rate(bench_requests_total[5m]))",
        range_step: None,
    },
    Case {
        name: "topk",
        title: "topk(5, rate)",
        query: "topk(5, rate(bench_requests_total[5m]))",
        range_step: None,
    },
    Case {
        name: "maxot",
        title: "max_over_time[1h]",
        query: "max(max_over_time(bench_requests_total[1h]))",
        range_step: None,
    },
    Case {
        name: "rangejob",
        title: "range 23h/60s by job",
        query: "sum by (job) (rate(bench_requests_total[5m]))",
        range_step: Some("60"),
    },
    Case {
        name: "rangeone",
        title: "range 23h/5m one",
        query: "rate(bench_requests_total{instance=\"host7\"}[5m])",
        range_step: Some("300"),
    },
];

impl Case {
    /// The API parameters (`query` plus `time`, or `start`/`end`/`step`), unencoded.
    pub fn params(&self) -> Vec<(String, String)> {
        let mut p = vec![("query".to_string(), self.query.to_string())];
        match self.range_step {
            None => p.push(("time".into(), ((END - 3_600_000) / 1000).to_string())),
            Some(step) => {
                p.push(("start".into(), (T0 / 1000 + 3600).to_string()));
                p.push(("end".into(), (END / 1000).to_string()));
                p.push(("step".into(), step.to_string()));
            }
        }
        p
    }
}
