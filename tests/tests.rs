//! promlet's integration tests, built as one binary. Each module's doc says what it covers.

/// The real binary: /metrics with promtool, negotiation, gzip, lifecycle, reload, signals,
/// bad input under load.
mod agent;
/// The command line: --help, --version, usage errors, `check config`.
mod cli;
mod common;
/// Config files: positioned errors, hostile input.
mod config;
/// The HTTP/1.1 server at the wire level: exact bytes, limits, timeouts, the connection cap.
mod http;
/// Differential test against a real Prometheus 3.5 (engine, HTTP API JSON, promtool).
mod promql_diff;
/// Prometheus's promqltest conformance scripts run against our engine.
mod promqltest;
