//! Fuzzes HTTP request handling from bytes: the server's request parsing and framing
//! (`http::answer_bytes`, the connection loop without a socket) in front of the agent's real
//! routing table, with the query API over a small store and push/silences/lifecycle enabled.
//! Properties: never panics, hangs or allocates without bound; what is answered starts with
//! a well-formed HTTP/1.1 status line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promlet::agent::{routes, State};
use promlet::cli::Args;
use promlet::collect::Driver;
use promlet::config::Config;
use promlet::http::{answer_bytes, Limits, Router, ServerStats, Shutdown};
use promlet::model::Labels;
use promlet::tsdb::{Appender, Options, SharedStore, Store};
use std::cell::RefCell;
use std::rc::Rc;

fn router() -> Router {
    let args = Args {
        enable_push: true,
        enable_silences: true,
        enable_lifecycle: false, // /-/quit and /-/reload would act on the process
        ..Args::default()
    };
    let driver = Driver::new(|_| false, &Default::default()).expect("empty driver");
    let mut state = State::new(args, Config::embedded(), driver);
    let mut store = Store::new(Options::default());
    for i in 0..20i64 {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "node")]);
        let _ = store.append(&l, 1_700_000_000_000 + i * 15_000, 1.0);
    }
    let store = SharedStore::new(store);
    state.appender = Some(Box::new(store.clone()));
    state.tsdb = Some(store);
    routes(
        Rc::new(RefCell::new(state)),
        Rc::new(ServerStats::default()),
        Shutdown::new(),
    )
}

fuzz_target!(|data: &[u8]| {
    thread_local! { static ROUTER: Router = router(); }
    let limits = Limits {
        max_header_bytes: 2048,
        max_body_bytes: 64 * 1024,
        ..Limits::default()
    };
    let out = ROUTER.with(|r| answer_bytes(data, &limits, &|req| r.handle(req)));
    // Whatever was answered starts with a status line and a three-digit status.
    if !out.is_empty() {
        assert!(
            out.starts_with(b"HTTP/1.1 "),
            "not a status line: {:?}",
            String::from_utf8_lossy(&out[..out.len().min(40)])
        );
        let status = std::str::from_utf8(&out[9..12])
            .ok()
            .and_then(|s| s.parse::<u16>().ok());
        assert!(
            status.is_some_and(|s| (100..600).contains(&s)),
            "bad status line"
        );
    }
});
