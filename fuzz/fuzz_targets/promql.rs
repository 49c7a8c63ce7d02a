//! Fuzzes the PromQL parser and, for expressions that parse, the engine over a tiny store
//! under tight limits. Properties: never panics; evaluation ends within the limits (the
//! fuzzer's -timeout and -rss_limit_mb catch a hang or an unbounded allocation); an
//! expression that parses prints back to text that parses to the same printed form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promlet::model::Labels;
use promlet::promql::engine::{instant_query, range_query, EngineOpts};
use promlet::promql::parser::parse;
use promlet::tsdb::{Appender, Options, Store};
use std::time::Duration;

fn tiny_store() -> Store {
    let mut store = Store::new(Options::default());
    for (name, job) in [
        ("up", "a"),
        ("up", "b"),
        ("http_requests_total", "a"),
        ("temp", "c"),
    ] {
        let labels = Labels::from_pairs([("__name__", name), ("job", job)]);
        for i in 0..40i64 {
            let v = if name == "http_requests_total" {
                (i * 7) as f64
            } else {
                (i % 5) as f64
            };
            let _ = store.append(&labels, i * 15_000, v);
        }
    }
    store
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = parse(text) else { return };
    // Printing is what /api/v1/format_query and rule files rely on: it must parse again.
    let printed = expr.to_string();
    let again = parse(&printed).unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}: {e}"));
    assert_eq!(
        again.to_string(),
        printed,
        "printing is not stable for {text:?}"
    );
    thread_local! { static STORE: Store = tiny_store(); }
    let opts = EngineOpts {
        timeout: Duration::from_millis(200),
        max_samples: 20_000,
        ..EngineOpts::default()
    };
    STORE.with(|store| {
        let _ = instant_query(store, text, &expr, 600_000, &opts);
        let _ = range_query(store, text, &expr, 0, 600_000, 60_000, &opts);
    });
});
