//! promlet's integration tests, built as one binary. Each module's doc says what it covers.

/// The real binary: /metrics with promtool, negotiation, gzip, lifecycle, reload, signals,
/// bad input under load.
mod agent;
/// The Prometheus HTTP API over the agent's own store, with promtool, `promlet query` and a
/// real Prometheus scraping the same agent; restart and query-timeout behaviour.
mod api;
/// The command line: --help, --version, usage errors, `check config`.
/// Chaos: slow-loris flood, a million-series target, Alertmanager down for a simulated hour,
/// wall clock jumps of ±3 days.
mod chaos;
mod cli;
mod common;
/// Config files: positioned errors, hostile input.
mod config;
/// `/federate` on the real binary and a real Prometheus federating it.
mod federate;
/// The Grafana dashboard: every panel query against promlet and a federating Prometheus.
mod grafana;
/// Our gzip encoder checked by the system gzip and python3's zlib.
mod gzip_interop;
/// The HTTP/1.1 server at the wire level: exact bytes, limits, timeouts, the connection cap.
mod http;

/// Parity with node_exporter 1.11: fixture trees vs its golden scrape, the golden file vs the
/// real binary, and this machine's families vs the real binary.
mod parity;

/// Truncated, empty, garbage and absent /proc files through the procfs collectors.
mod collect_bad_input;

/// The exposition parser cross-checked with the real promtool.
mod expo_parse;

/// The textfile collector against node_exporter (expected outputs and the real binary).
mod textfile;

/// Exact series equality with the live node_exporter for info and static families.
mod collect_live_exact;
/// Alert delivery to a real Alertmanager: fields read back, outage, restart.
mod notify;
/// blackbox_exporter-compatible probes against real peers and the real blackbox_exporter.
mod probe;
/// Differential test against a real Prometheus 3.5 (engine, HTTP API JSON, promtool).
mod promql_diff;
/// Prometheus's promqltest conformance scripts run against our engine.
mod promqltest;
/// The Pushgateway API of the real binary, and a differential run against the real Pushgateway.
mod push;
/// remote_write to a real Prometheus 3.5 through a recording relay: outage, restart, exactly
/// once, the catch-up rate limit.
mod remote_write;
/// Rule files and promtool rule unit tests, cross-checked with the real promtool.
mod rules;
/// Rules in the real binary: evaluation, API, reload, restore after restart.
mod rules_agent;
/// Scraping real targets: node_exporter, garbage, vanishing targets, DNS SRV via dnsmasq.
mod scrape;
/// The ring-buffer TSDB: budget, compression, persistence, recovery.
mod tsdb;
/// SIGKILL a real writer process at random moments and recover what it flushed.
mod tsdb_crash;
/// Injected file faults: ENOSPC, torn writes, bad checksums.
mod tsdb_faults;
/// --web.config.file: basic auth, its cache, headers, reloads; with `--features tls`: https
/// with curl, a real Prometheus over https with basic auth, mTLS, https scrapes.
mod webauth;
/// The web UI in headless Chromium: graph, table and the alerts/rules/targets/status tabs.
mod webui;
