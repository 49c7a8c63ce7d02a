//! The fixed-size ring-buffer time-series store (issue "Ring-buffer TSDB").
//!
//! Owns: series index, compressed chunks, retention by bytes and time, the on-disk format.
//! Must not touch: PromQL, HTTP, clocks (time comes in as arguments).
//!
//! The two traits below are the seams the rest of promlet uses: writers (collect, scrape, push,
//! rules) see only [`Appender`], readers (promql, federate, remote_write) only [`Querier`].

mod chunk;
pub mod format;
pub mod fs;
mod index;
mod metrics;
mod store;
pub mod workload;

pub use chunk::CHUNK_MAX_BYTES;
pub use fs::{Fs, OsFs};
pub use store::{
    Options, Stats, Store, CLOCK_STEP_BACK_MS, DEFAULT_FLUSH_INTERVAL, DEFAULT_MAX_SERIES,
    DEFAULT_RETENTION_BYTES, IDLE_SEAL_MS,
};

use crate::model::{Labels, Matcher, Sample, Timestamp};

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
}

/// Where samples go.
pub trait Appender {
    fn append(&mut self, labels: &Labels, t: Timestamp, v: f64) -> Result<(), AppendError>;
}

/// One series and its samples inside a queried range, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesSamples {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

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
