//! Scraping local targets: schedule, exposition parsing, synthetic `up`/`scrape_*` series.
//!
//! Must not touch: TSDB internals (appends through its appender).
pub mod client;
pub mod config;
pub mod parse;
pub mod target;
