//! Scraping local targets: schedule, exposition parsing, synthetic `up`/`scrape_*` series.
//!
//! Must not touch: TSDB internals (appends through its appender).
pub mod parse;
