//! Exposition parse throughput and allocations per sample (issue: "Scrape parse throughput
//! (samples/s) and allocations per sample"). Dependency-free: a counting global allocator,
//! a synthetic body shaped like a node_exporter scrape (gauges, counters with 2-3 labels,
//! histograms), parsed again and again into a reused `MetricSet` by a reused `Parser`.
//! Also "memory per scrape target": the heap one target's scrape state holds (series cache,
//! parser tables, reused buffers) after scraping a node-like body.
//! Run: `cargo bench --bench expo_parse`.

use promlet::expo::{encode_openmetrics, encode_text, MetricSet, MetricType};
use promlet::scrape::parse::{Format, Limits, NameScheme, Options, Parser};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
/// Live heap bytes (for memory per target).
static LIVE: AtomicI64 = AtomicI64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// ~10,000 samples: 40 counter families × 100 series, 40 gauges × 100, 20 histograms × 10
/// series × 12 buckets (+ sum, count), with HELP texts and escaped label values here and there.
fn body() -> MetricSet {
    let mut set = MetricSet::new();
    for f in 0..40 {
        let c = set.family(
            &format!("app_requests_{f}_total"),
            "Requests \\ served.",
            MetricType::Counter,
        );
        for s in 0..100 {
            set.sample(
                c,
                &[
                    ("code", &(200 + s % 5)),
                    ("handler", &format!("/api/v1/h{s}")),
                    ("method", &"GET"),
                ],
                (s * 1000 + f) as f64,
            );
        }
        let g = set.family(
            &format!("node_thing_{f}_bytes"),
            "A gauge.",
            MetricType::Gauge,
        );
        for s in 0..100 {
            set.sample(
                g,
                &[("device", &format!("sd{s}")), ("path", &"C:\\dir \"x\"")],
                s as f64 * 1.5e9,
            );
        }
    }
    for f in 0..20 {
        let h = set.family(
            &format!("rpc_{f}_duration_seconds"),
            "Latency.",
            MetricType::Histogram,
        );
        for s in 0..10 {
            let mut cum = 0.0;
            for (i, le) in [
                "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
                "+Inf",
            ]
            .iter()
            .enumerate()
            {
                cum += (i * s) as f64;
                set.sample_suffixed(
                    h,
                    "_bucket",
                    &[("service", &format!("svc{s}")), ("le", le)],
                    cum,
                );
            }
            set.sample_suffixed(h, "_sum", &[("service", &format!("svc{s}"))], 123.25);
            set.sample_suffixed(h, "_count", &[("service", &format!("svc{s}"))], cum);
        }
    }
    set
}

fn run(name: &str, body: &[u8], opts: &Options, budget: Duration) {
    let mut parser = Parser::new();
    let mut set = MetricSet::new();
    // Warm up: tables and the arena reach their size.
    let samples = parser
        .parse(body, opts, &mut set)
        .expect("bench body parses")
        .samples;
    set.clear();
    parser.parse(body, opts, &mut set).unwrap();
    let mut rounds = 0u64;
    let allocs_before = ALLOCS.load(Ordering::Relaxed);
    let start = Instant::now();
    while rounds == 0 || start.elapsed() < budget {
        set.clear();
        parser.parse(body, opts, &mut set).unwrap();
        rounds += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let allocs = ALLOCS.load(Ordering::Relaxed) - allocs_before;
    // The parser's promise: once warm, nothing is allocated per body, let alone per sample.
    // Under `cargo test --benches` this makes the bench a regression test.
    assert_eq!(
        allocs, 0,
        "{name}: {allocs} allocations in {rounds} warm rounds"
    );
    let total = rounds as f64 * samples as f64;
    println!(
        "{name:<12} {samples:>6} samples/body  {:>6.1} MB/s  {:>12.0} samples/s  {:.4} allocations/sample  ({rounds} rounds)",
        rounds as f64 * body.len() as f64 / secs / 1e6,
        total / secs,
        allocs as f64 / total,
    );
}

/// Discards samples: the target's own memory is measured, not the store's.
struct Discard;

impl promlet::tsdb::Appender for Discard {
    fn append(
        &mut self,
        _: &promlet::model::Labels,
        _: i64,
        _: f64,
    ) -> Result<(), promlet::tsdb::AppendError> {
        Ok(())
    }
}

/// Heap held per scrape target after one scrape of a node_exporter-sized body (~500
/// series): prints the mean over 50 targets.
fn memory_per_target() {
    use promlet::model::Labels;
    use promlet::scrape::client::Response;
    use promlet::scrape::target::{populate, ScrapeState};
    let cfg = promlet::config::Config::parse(
        "scrape_configs:\n  - job_name: node\n    static_configs: [{targets: ['127.0.0.1:9100']}]\n",
        "bench",
    )
    .expect("bench config");
    let sc = &cfg.scrape_configs[0];
    // A node-like body: ~500 samples over ~250 families with node_exporter's label shapes.
    let mut set = MetricSet::new();
    for f in 0..250 {
        let id = set.family(
            &format!("node_family_{f}_total"),
            "Help text of a node family.",
            MetricType::Counter,
        );
        set.sample(id, &[("device", &format!("sda{}", f % 4))], f as f64 * 1.5);
        set.sample(id, &[("device", &format!("eth{}", f % 3))], f as f64 * 7.25);
    }
    let mut text = Vec::new();
    encode_text(&set, &mut text);
    const TARGETS: usize = 50;
    let before = LIVE.load(Ordering::Relaxed);
    let mut states = Vec::new();
    for i in 0..TARGETS {
        let discovered = Labels::from_pairs([("__address__", format!("127.0.0.1:{}", 9100 + i))]);
        let spec = populate(sc, &discovered).expect("a target").expect("kept");
        let mut st = ScrapeState::new(&spec);
        st.body.extend_from_slice(&text);
        let resp = Response {
            status: 200,
            content_type: Some("text/plain; version=0.0.4".into()),
        };
        st.finish(
            sc,
            &spec,
            Ok(resp),
            1_700_000_000_000,
            Duration::from_millis(3),
            &mut Discard,
        );
        states.push((spec, st));
    }
    let per = (LIVE.load(Ordering::Relaxed) - before) as f64 / TARGETS as f64;
    let series = states[0].1.series();
    let body = states[0].1.body.capacity() + states[0].1.raw.capacity();
    println!(
        "memory per scrape target: {:.1} KiB after a {}-byte, {series}-series scrape \
         (of which {:.1} KiB are the reused body buffers)",
        per / 1024.0,
        text.len(),
        body as f64 / 1024.0
    );
    assert!(series >= 500, "{series} series cached");
}

fn main() {
    // `cargo bench` passes --bench; under `cargo test --benches` one round is a smoke test.
    let budget = if std::env::args().any(|a| a == "--bench") {
        Duration::from_secs(2)
    } else {
        Duration::ZERO
    };
    memory_per_target();
    let set = body();
    let mut text = Vec::new();
    encode_text(&set, &mut text);
    let mut om = Vec::new();
    encode_openmetrics(&set, &mut om);
    println!(
        "expo_parse bench: text body {} bytes, OpenMetrics body {} bytes",
        text.len(),
        om.len()
    );
    let text_opts = Options {
        format: Format::Text,
        names: NameScheme::Utf8,
        limits: Limits::default(),
    };
    run("text", &text, &text_opts, budget);
    run(
        "text-legacy",
        &text,
        &Options {
            names: NameScheme::Legacy,
            ..text_opts
        },
        budget,
    );
    run(
        "openmetrics",
        &om,
        &Options {
            format: Format::OpenMetrics,
            ..text_opts
        },
        budget,
    );
}
