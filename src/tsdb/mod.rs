//! The fixed-size ring-buffer time-series store (issue "Ring-buffer TSDB").
//!
//! Owns: series index, compressed chunks, retention by bytes and time, the on-disk format.
//! Must not touch: PromQL, HTTP, clocks (time comes in as arguments).
//!
//! The two traits below are the seams the rest of promlet uses: writers (collect, scrape, push,
//! rules) see only [`Appender`], readers (promql, federate, remote_write) only [`Querier`].
//!
//! # Using the store (for `agent`/`main`)
//! ```no_run
//! use promlet::tsdb::{OsFs, Options, Store};
//! use std::time::Instant;
//! let opts = Options::default(); // retention_bytes, retention_ms, max_series, flush_interval
//! let mut store = Store::open(opts, "data/".as_ref(), Box::new(OsFs)); // never fails
//! // In the main loop: call poll with the monotonic "now"; sleep until what it returns.
//! let next_deadline = store.poll(Instant::now());
//! // On shutdown: make everything durable.
//! store.flush(Instant::now());
//! // For /metrics: store.write_metrics(&mut metric_set);
//! # let _ = next_deadline;
//! ```
//! `Store::new(opts)` is the same store without a directory.
//!
//! The query engine reads through [`Querier::select`]; an instant query of a plain selector
//! through [`Querier::select_latest`], which decodes only each series' newest sample and lends
//! the index's label strings instead of building label sets; an instant aggregation through
//! [`Querier::select_pairs_each`], which lends the label strings with each series' samples.
//!
//! Readers that must see every sample exactly once (remote_write) use
//! [`Store::for_each_series`]: a [`SeriesView`] per series gives its labels, the samples after
//! a timestamp (only chunks reaching past it are decoded) and what eviction took from it. A
//! series accepts samples only in timestamp order, so "last timestamp sent" per series is a
//! complete position.
//!
//! # Layout
//! | file | owns |
//! |---|---|
//! | `chunk.rs` | Gorilla bit stream: encoder of the open chunk, decoder, in-memory seek points |
//! | `index.rs` | interned strings, series label sets, postings, matcher selection, byte accounting |
//! | `store.rs` | series data, the budget and eviction ring, append rules, flush and recovery |
//! | `format.rs` | segment header, frames, postcard records (docs/tsdb-format.md) |
//! | `fs.rs` | the file operations, behind a trait for fault injection |
//! | `metrics.rs` | `promlet_tsdb_*` self-metrics |
//! | `workload.rs` | the node-like reference workload for tests and benchmarks |
//!
//! # Limits (each a constant or an option, documented where defined)
//! Budget `Options::retention_bytes` (default 16 MiB); chunks of at most
//! [`CHUNK_MAX_BYTES`]; new series refused beyond `max_series` or when the index plus every
//! series' worst-case open chunk would pass half the budget; samples older than their series'
//! newest are refused as out of order (a wall clock behind the data is the caller's to report:
//! [`Store::discard_from`]); samples after the last flush are lost in a crash.

mod chunk;
pub mod format;
pub mod fs;
mod index;
mod metrics;
mod shared;
mod store;
pub mod workload;

pub use chunk::CHUNK_MAX_BYTES;
pub use fs::{Fs, OsFs};
pub use shared::SharedStore;
pub use store::{
    Evicted, Options, SeriesView, Stats, Store, CLOCK_STEP_BACK_MS, DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_SERIES, DEFAULT_RETENTION_BYTES, IDLE_SEAL_MS,
};

use crate::model::{Labels, Matcher, Sample, Timestamp};

/// Parses a byte size as Prometheus's `--storage.tsdb.retention.size` does: a number and a
/// unit among B, KB, MB, GB, TB (powers of 1024), e.g. `512MB`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let bad = || format!("not a valid size: {s:?} (use e.g. 16MB)");
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let n: usize = s[..digits].parse().map_err(|_| bad())?;
    let shift = match &s[digits..] {
        "B" => 0,
        "KB" => 10,
        "MB" => 20,
        "GB" => 30,
        "TB" => 40,
        _ => return Err(bad()),
    };
    n.checked_mul(1usize << shift).ok_or_else(bad)
}

/// Why an append was refused. Refusals are counted by the store, never fatal to the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum AppendError {
    /// The sample is older than what the series already holds (outside the accepted window).
    OutOfOrder,
    /// Same timestamp as the newest sample, different value.
    DuplicateTimestamp,
    /// `--storage.tsdb.max-series` reached; the new series was not created.
    TooManySeries,
    /// The label set is unusable (no `__name__`, empty, ...).
    InvalidLabels(String),
    /// The store cannot hold this kind of sample (native histograms in the ring TSDB).
    Unsupported(&'static str),
}

/// Where samples go.
pub trait Appender {
    fn append(&mut self, labels: &Labels, t: Timestamp, v: f64) -> Result<(), AppendError>;

    /// The same as [`Appender::append`] for the series `name{pairs}`, with `pairs` in any
    /// order (a later duplicate name wins, empty values are dropped, as in `Labels`). The store
    /// finds an existing series without allocating; the default builds a `Labels`.
    fn append_parts(
        &mut self,
        name: &str,
        pairs: &[(&str, &str)],
        t: Timestamp,
        v: f64,
    ) -> Result<(), AppendError> {
        let labels = Labels::from_pairs(
            std::iter::once((crate::model::METRIC_NAME, name)).chain(pairs.iter().copied()),
        );
        self.append(&labels, t, v)
    }

    /// Stores a native histogram sample. The ring TSDB holds floats only (native histograms
    /// are only scraped via protobuf, which promlet does not negotiate), so the default
    /// refuses; the in-memory test store holds them.
    fn append_histogram(
        &mut self,
        labels: &Labels,
        t: Timestamp,
        h: crate::histogram::FloatHistogram,
    ) -> Result<(), AppendError> {
        let _ = (labels, t, h);
        Err(AppendError::Unsupported("native histograms"))
    }
}

/// One series and its samples inside a queried range, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesSamples {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// One series and its native histogram samples inside a queried range, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSeries {
    pub labels: Labels,
    pub samples: Vec<crate::histogram::HistogramSample>,
}

/// What [`Querier::select_latest`] calls per series: its labels as sorted (name, value) pairs
/// and its newest sample; false stops the selection.
pub type LatestSink<'f> = dyn FnMut(&[(&str, &str)], Sample) -> bool + 'f;

/// What [`Querier::select_pairs_each`] calls per series: its labels as sorted (name, value)
/// pairs and its samples in the range (stale markers included), both borrowed; false stops
/// the selection.
pub type PairsSink<'f> = dyn FnMut(&[(&str, &str)], &[Sample]) -> bool + 'f;

/// Read access for the query engine and the exporters.
pub trait Querier {
    /// Series matching every matcher that have samples in `[mint, maxt]` (both inclusive), with
    /// exactly those samples, ordered by label set.
    fn select(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<SeriesSamples>;
    /// The streaming form of [`Querier::select`]: calls `f` once per series, in the same order,
    /// with a borrowed label set and samples (the store reuses one buffer, so a query need not
    /// hold every series at once).
    fn select_each(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        f: &mut dyn FnMut(&Labels, &[Sample]),
    ) {
        for s in self.select(matchers, mint, maxt) {
            f(&s.labels, &s.samples);
        }
    }
    /// The newest sample in `[mint, maxt]` (stale markers included) of each series matching
    /// every matcher, in label order, with the series' labels as sorted (name, value) pairs
    /// borrowed from the querier: what a plain instant vector selector returns, without a
    /// `Labels` or a sample buffer per series. `f` returns false to stop early.
    ///
    /// Returns false, having called nothing, when this querier cannot answer so: it may hold
    /// native histograms, and a series' newest sample could be one. The caller then uses
    /// [`Querier::select`] and [`Querier::select_histograms`].
    fn select_latest(
        &self,
        _matchers: &[Matcher],
        _mint: Timestamp,
        _maxt: Timestamp,
        _f: &mut LatestSink<'_>,
    ) -> bool {
        false
    }
    /// [`Querier::select_each`] with the labels as sorted (name, value) pairs borrowed from
    /// the querier, so an aggregation can group series without a `Labels` per series. Series
    /// without samples in `[mint, maxt]` are left out; `f` returns false to stop early.
    ///
    /// Returns false, having called nothing, when this querier cannot answer so (it may hold
    /// native histograms): the caller then uses [`Querier::select`].
    fn select_pairs_each(
        &self,
        _matchers: &[Matcher],
        _mint: Timestamp,
        _maxt: Timestamp,
        _f: &mut PairsSink<'_>,
    ) -> bool {
        false
    }
    /// Native histogram samples of the series matching every matcher, in `[mint, maxt]`, ordered
    /// by label set. A series may have float samples at some times and histograms at others.
    /// The ring store holds floats only (native histograms are only scraped via protobuf,
    /// which promlet does not negotiate), so the default has none.
    fn select_histograms(
        &self,
        _matchers: &[Matcher],
        _mint: Timestamp,
        _maxt: Timestamp,
    ) -> Vec<HistogramSeries> {
        Vec::new()
    }
    /// Sorted label names of series matching `matchers` (all series when empty).
    fn label_names(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<String>;
    /// Sorted values of label `name` over series matching `matchers`.
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_size_uses_binary_units_and_rejects_junk() {
        assert_eq!(parse_size("16MB"), Ok(16 << 20));
        assert_eq!(parse_size("512KB"), Ok(512 << 10));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("1GB"), Ok(1 << 30));
        for bad in [
            "",
            "MB",
            "16",
            "16mb",
            "-1MB",
            "1.5MB",
            "99999999999999999999TB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
