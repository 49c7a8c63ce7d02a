//! promlet: a Prometheus-class monitoring agent for one small device.
//!
//! # Layout
//!
//! ```text
//!  /proc, /sys ──► collect ─┐
//!  local /metrics ► scrape ─┼─► tsdb (fixed-size ring, persisted) ◄── promql ◄── http: /api/v1, web UI
//!  pushes ───────► push ────┤        │                       ▲
//!  hosts, ports ─► probe ───┘        │
//!                                    ├──► /metrics, /federate (upstream Prometheus pulls)
//!                                    ├──► remote_write (store-and-forward, upstream push)
//!                                    └──► rules ──► ALERTS ──► notify: local receivers + Alertmanager
//! ```
//!
//! | module    | owns                                                                   |
//! |-----------|------------------------------------------------------------------------|
//! | [`model`] | time, labels, samples, the `Clock` trait; no I/O                        |
//! | [`histogram`] | native histogram values and their arithmetic (PromQL, rule tests) |
//! | [`log`]   | leveled logfmt/JSON logging to stderr                                   |
//! | [`expo`]  | `MetricSet` (families in one arena) and the text/OpenMetrics encoders   |
//! | [`collect`] | node_exporter-compatible readers of /proc and /sys, driven by `Roots` |
//! | [`config`] | the YAML config: parsing, validation, positioned errors               |
//! | [`cli`]   | the flag table (source of `--help`), argument parsing, subcommands      |
//! | [`rt`]    | the single-threaded epoll reactor: `block_on`, `Async`, `Timer`, signals |
//! | [`http`]  | the HTTP/1.1 server (limits, timeouts) and routing                      |
//! | [`agent`] | the main loop: wiring, schedules, self-metrics, reload, shutdown        |
//! | [`tsdb`]  | the fixed-size ring-buffer store and its on-disk format                 |
//! | [`promql`] | PromQL lexer, parser and engine over the TSDB                          |
//! | [`rules`] | recording and alerting rule groups                                      |
//! | [`notify`] | alert routing, local receivers, the Alertmanager queue                 |
//! | [`relabel`] | Prometheus relabel_config: decoding, validation, applying rules    |
//! | [`scrape`] | scraping local targets and parsing what they expose                    |
//! | [`push`]  | the Pushgateway-compatible API                                          |
//! | [`remote`] | remote_write: store-and-forward from the TSDB, durable cursor, wire format |
//! | [`net`]   | small async network clients shared by scrape and probe (DNS)            |
//! | [`probe`] | blackbox_exporter-compatible probes: `/probe` and scheduled probes      |
//! | [`sort`]  | the one stable sort instantiation every module shares (binary size)    |
//! | [`task`]  | the one spawned-task type every module shares (binary size)            |
//! | [`vecmap`] | a sorted-`Vec` map for small ordered maps instead of `BTreeMap` (binary size) |
//! | `tls` | (feature `tls`) rustls configs for the web server and outbound HTTP |
//!
//! Dependencies point one way: toward `model`, `expo` and `tsdb`. Only `agent` and `main`
//! know every module. Time is passed in; no module below `agent` reads the clock for
//! scheduling.
//!
//! # Speed where it pays
//!
//! The crate is built for size (`opt-level = "z"`), which also makes LLVM divide by constants
//! with `div` and inline little. The few functions every scrape spends its time in carry
//! `#[cfg_attr(promlet_speed, optimize(speed))]`: the release recipe (nightly, see
//! `scripts/cross-test.sh`) sets `--cfg promlet_speed`, other builds ignore the attribute.

// Nightly-only attribute, enabled only where the release recipe builds with nightly.
#![cfg_attr(promlet_speed, feature(optimize_attribute))]

pub mod agent;
pub mod cli;
pub mod collect;
pub mod config;
pub mod expo;
pub mod histogram;
pub mod http;
pub mod log;
pub mod model;
pub mod net;
pub mod notify;
pub mod probe;
pub mod promql;
pub mod push;
pub mod relabel;
pub mod remote;
pub mod rt;
pub mod rules;
pub mod scrape;
pub mod sort;
pub mod task;
#[cfg(feature = "tls")]
pub mod tls;
pub mod tsdb;
pub mod vecmap;

/// The version printed by `--version` and exposed in `promlet_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
