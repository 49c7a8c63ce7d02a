//! Scraping local targets: configuration, discovery (static, file, DNS), the HTTP client,
//! the per-target scrape loop with synthetic `up`/`scrape_*` series and staleness, and the
//! exposition parser.
//!
//! Must not touch: TSDB internals (appends through its appender).
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | `scrape_configs:` decoding |
//! | [`parse`] | text 0.0.4 and OpenMetrics parsing |
//! | [`client`] | the async HTTP GET |
//! | [`dns`] | `dns_sd_configs` (the resolver is [`crate::net::dns`]) |
//! | [`target`] | target labels and what one scrape appends |
//! | [`manager`] | pools, discovery sources, scrape tasks, `/api/v1/targets` |
pub mod client;
pub mod config;
pub mod dns;
pub mod manager;
pub mod parse;
pub mod target;
