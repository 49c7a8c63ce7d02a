//! gzip of what promlet serves, side by side in one run: promlet's own DEFLATE encoder
//! (`http::gzip`, what /metrics and the API use) against miniz_oxide's compressor at level 1
//! (what they used before), on
//!
//! - this machine's /metrics text and OpenMetrics, from the agent's own collectors and encoders
//!   over the real /proc and /sys (what Prometheus scrapes);
//! - node_exporter 1.11.1's scrape of the recorded fixture trees (shared test data, if present);
//! - a large JSON API body: `/api/v1/query_range` over an hour of real collections of this
//!   machine (what Grafana asks for).
//!
//! For each: time per call (min and median of many), output bytes, and the ratios ours /
//! miniz_oxide. Both compressors are warm and reuse their state between calls, as in the
//! agent. Every output is inflated once and compared with the input before timing.
//!
//! Built with the bench profile, i.e. the release one: our crate at opt-level "z", miniz_oxide
//! at 3 (Cargo.toml), as in the shipped binary.
//!
//! Run: `cargo bench --bench gzip [FILTER]`. Env: `PROMLET_BENCH_SECS` (per case, default 2),
//! `PROMLET_SHARED` (where node-fixtures/ lives, default ../shared), `PROMLET_GZIP_FILES`
//! (more bodies to compare on, `:`-separated paths), `PROMLET_BENCH_COLD=1` (a collection and
//! its text encoding run before every timed call, as in the agent: caches and branch
//! predictors then hold the collectors' state, not the compressor's).

use miniz_oxide::deflate::core::{
    compress, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush, TDEFLStatus,
};
use promlet::collect::{CollectorOptions, Context, Driver, Roots};
use promlet::expo::{encode_openmetrics, encode_text, MetricSet};
use promlet::http::api_v1;
use promlet::promql::EngineOpts;
use promlet::tsdb::{Options, Store};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Per-call durations of one case, sorted.
/// `between` runs before every call, untimed.
fn run(
    mut f: impl FnMut(),
    between: &mut dyn FnMut(),
    warmup: Duration,
    measure: Duration,
) -> Vec<Duration> {
    let start = Instant::now();
    while start.elapsed() < warmup {
        f();
    }
    let mut times = Vec::with_capacity(4096);
    let start = Instant::now();
    while start.elapsed() < measure || times.len() < 10 {
        between();
        let t = Instant::now();
        f();
        times.push(t.elapsed());
    }
    times.sort_unstable();
    times
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// miniz_oxide level 1, raw DEFLATE into `out`, compressor state reused (as promlet's gzip.rs
/// did until it got its own encoder). Returns the output length. `out` is reused without
/// re-zeroing, which flatters miniz_oxide slightly (the agent allocated a fresh one per call).
fn miniz_level1(d: &mut CompressorOxide, data: &[u8], out: &mut Vec<u8>) -> usize {
    d.reset();
    if out.len() < data.len() / 4 + 64 {
        out.resize(data.len() / 4 + 64, 0);
    }
    let (mut pos, mut input) = (0, data);
    loop {
        let (status, used, written) = compress(d, input, &mut out[pos..], TDEFLFlush::Finish);
        pos += written;
        input = &input[used..];
        match status {
            TDEFLStatus::Okay if out.len() - pos < 64 => out.resize(out.len() * 2, 0),
            TDEFLStatus::Okay => {}
            _ => break,
        }
    }
    pos
}

fn collect(driver: &mut Driver, roots: &Roots, now_ms: i64, set: &mut MetricSet) {
    set.clear();
    driver.collect(&Context { roots, now_ms }, set);
}

fn main() {
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

    let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
    let roots = Roots::default();
    let mut driver = match Driver::new(|d| d.default_enabled, &CollectorOptions::default()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot build the default collectors: {e}");
            std::process::exit(1);
        }
    };
    let mut set = MetricSet::new();
    let t0 = 1_700_000_000_000i64;
    collect(&mut driver, &roots, t0, &mut set);
    let mut text = Vec::new();
    encode_text(&set, &mut text);
    bodies.push(("/metrics text [real]".into(), text));
    let mut om = Vec::new();
    encode_openmetrics(&set, &mut om);
    bodies.push(("/metrics OpenMetrics [real]".into(), om));

    let shared = std::env::var_os("PROMLET_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let golden = shared.join("node-fixtures/node_exporter-1.11.1-on-fixtures.prom");
    match std::fs::read(&golden) {
        Ok(b) => bodies.push(("node_exporter on fixtures".into(), b)),
        Err(e) => eprintln!("SKIPPED fixture case: {}: {e}", golden.display()),
    }

    // Bodies saved elsewhere, e.g. `curl -s localhost:9500/metrics > m.txt` from a running agent.
    if let Some(files) = std::env::var_os("PROMLET_GZIP_FILES") {
        for f in std::env::split_paths(&files) {
            match std::fs::read(&f) {
                Ok(b) => bodies.push((format!("file {}", f.display()), b)),
                Err(e) => eprintln!("SKIPPED {}: {e}", f.display()),
            }
        }
    }

    // An hour of collections 15 s apart (collected back to back; stamped 15 s apart), then the
    // query_range Grafana's node dashboard would send for the busiest families.
    let mut store = Store::new(Options {
        retention_bytes: 64 << 20,
        ..Options::default()
    });
    const STEP_MS: i64 = 15_000;
    for i in 0..240 {
        let t = t0 + i * STEP_MS;
        collect(&mut driver, &roots, t, &mut set);
        promlet::agent::append_all(&set, t, &mut store);
    }
    let params: Vec<(String, String)> = [
        (
            "query",
            "{__name__=~\"node_(cpu_seconds|network_.*_bytes|memory_.*|disk_.*)_total|node_memory_.*\"}",
        ),
        ("start", &format!("{}", t0 / 1000)),
        ("end", &format!("{}", (t0 + 239 * STEP_MS) / 1000)),
        ("step", "30"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let r = api_v1::query_range(&params, &store, t0, &EngineOpts::default());
    if r.status != 200 || r.body.len() < 100_000 {
        eprintln!(
            "query_range gave {} with {} bytes: {}",
            r.status,
            r.body.len(),
            String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
        );
        std::process::exit(1);
    }
    bodies.push(("query_range JSON [real]".into(), r.body));

    let cold = std::env::var("PROMLET_BENCH_COLD").is_ok_and(|v| v == "1");
    let mut scratch = Vec::new();
    let mut between = || {
        if cold {
            collect(&mut driver, &roots, t0, &mut set);
            scratch.clear();
            encode_text(&set, &mut scratch);
            black_box(&scratch);
        }
    };
    let mut miniz = CompressorOxide::new(create_comp_flags_from_zip_params(1, 0, 0));
    let mut raw = Vec::new();
    for (name, body) in &bodies {
        if !wanted(name) {
            continue;
        }
        // Both must round-trip before their time means anything.
        let ours = promlet::http::gzip::gzip(body);
        let ours_raw = &ours[10..ours.len() - 8];
        let miniz_len = miniz_level1(&mut miniz, body, &mut raw);
        for (who, z) in [("ours", ours_raw), ("miniz_oxide", &raw[..miniz_len])] {
            let back = miniz_oxide::inflate::decompress_to_vec(z);
            if back.ok().as_deref() != Some(&body[..]) {
                eprintln!("{name}: {who}'s output does not inflate to the input");
                std::process::exit(1);
            }
        }
        let ours_len = ours_raw.len();
        let t_ours = run(
            || {
                black_box(promlet::http::gzip::gzip(black_box(body)));
            },
            &mut between,
            warmup,
            measure,
        );
        let t_miniz = run(
            || {
                // The gzip framing (CRC-32) is timed too, as in the agent's gzip().
                black_box(miniz_level1(&mut miniz, black_box(body), &mut raw));
                black_box(crc32fast::hash(body));
            },
            &mut between,
            warmup,
            measure,
        );
        let med = |t: &[Duration]| t[t.len() / 2];
        println!("{name}: {} bytes", body.len());
        for (who, t, len) in [
            ("ours", &t_ours, ours_len),
            ("miniz_oxide level 1", &t_miniz, miniz_len),
        ] {
            println!(
                "  {who:<20} min {:>8.3} ms  median {:>8.3} ms  {:>8} bytes ({:.2}x)  {:>6.0} MB/s  ({} runs)",
                ms(t[0]),
                ms(med(t)),
                len,
                body.len() as f64 / len as f64,
                body.len() as f64 / med(t).as_secs_f64() / 1e6,
                t.len(),
            );
        }
        println!(
            "  ours / miniz_oxide:  time {:.2}x (min) {:.2}x (median), size {:.3}x",
            ms(t_ours[0]) / ms(t_miniz[0]),
            ms(med(&t_ours)) / ms(med(&t_miniz)),
            ours_len as f64 / miniz_len as f64,
        );
    }
}
