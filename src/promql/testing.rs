//! A small in-memory [`Querier`] for engine tests and the conformance runner.
//!
//! Owns: nothing but sorted maps of series, float and native histogram samples (rule unit tests
//! and promqltest scripts load histograms; the ring TSDB does not store them). Must not touch:
//! the real TSDB.

use crate::histogram::{CounterResetHint, FloatHistogram, HistogramSample};
use crate::model::{Labels, Matcher, Sample, Timestamp};
use crate::tsdb::{AppendError, Appender, HistogramSeries, PairsSink, Querier, SeriesSamples};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Series kept sorted by label set; samples sorted by time (a later write at the same
/// timestamp replaces the earlier one).
#[derive(Default, Debug)]
pub struct MemStorage {
    series: BTreeMap<Labels, Vec<Sample>>,
    histograms: BTreeMap<Labels, Vec<HistogramSample>>,
}

impl MemStorage {
    /// The label sets of every float and histogram series the matchers select.
    fn selected_labels(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> impl Iterator<Item = Labels> {
        let floats = self
            .select(matchers, mint, maxt)
            .into_iter()
            .map(|s| s.labels);
        let histograms = self
            .select_histograms(matchers, mint, maxt)
            .into_iter()
            .map(|s| s.labels);
        floats.chain(histograms)
    }

    pub fn new() -> Self {
        Self::default()
    }
    pub fn clear(&mut self) {
        self.series.clear();
        self.histograms.clear();
    }
}

/// The series of `map` that `matchers` select, each cut to [mint, maxt] (`time` reads a
/// sample's timestamp); series with nothing in the range are left out.
fn select_in<'a, T: Clone>(
    map: &'a BTreeMap<Labels, Vec<T>>,
    matchers: &'a [Matcher],
    (mint, maxt): (Timestamp, Timestamp),
    time: fn(&T) -> Timestamp,
) -> impl Iterator<Item = (Labels, Vec<T>)> + 'a {
    map.iter()
        .filter(move |(l, _)| {
            matchers
                .iter()
                .all(|m| m.matches(l.get(&m.name).unwrap_or("")))
        })
        .filter_map(move |(l, s)| {
            let lo = s.partition_point(|p| time(p) < mint);
            let hi = s.partition_point(|p| time(p) <= maxt);
            (lo < hi).then(|| (l.clone(), s[lo..hi].to_vec()))
        })
}

impl Appender for MemStorage {
    fn append(&mut self, labels: &Labels, t: Timestamp, v: f64) -> Result<(), AppendError> {
        if labels.is_empty() {
            return Err(AppendError::InvalidLabels("empty label set".into()));
        }
        let s = self.series.entry(labels.clone()).or_default();
        match s.binary_search_by_key(&t, |p| p.t) {
            Ok(i) => s[i].v = v,
            Err(i) => s.insert(i, Sample { t, v }),
        }
        Ok(())
    }

    /// Appends a native histogram sample. Like Prometheus's head block, a counter histogram
    /// that directly follows another histogram of its series is stamped with what is known
    /// about a reset in between (`reset` or `not_reset`); the first one, and one after a float
    /// sample, stays as given (usually `unknown`).
    fn append_histogram(
        &mut self,
        labels: &Labels,
        t: Timestamp,
        mut h: FloatHistogram,
    ) -> Result<(), AppendError> {
        if labels.is_empty() {
            return Err(AppendError::InvalidLabels("empty label set".into()));
        }
        let hs = self.histograms.entry(labels.clone()).or_default();
        let i = hs.partition_point(|p| p.t < t);
        let prev = i.checked_sub(1).map(|j| &hs[j]);
        let float_between = prev.is_some_and(|p| {
            self.series
                .get(labels)
                .is_some_and(|fs| fs.iter().any(|f| f.t > p.t && f.t < t))
        });
        if let (Some(prev), false) = (prev, float_between) {
            if h.counter_reset_hint == CounterResetHint::Unknown
                && prev.h.counter_reset_hint != CounterResetHint::Gauge
            {
                h.counter_reset_hint = if h.detect_reset(&prev.h) {
                    CounterResetHint::Reset
                } else {
                    CounterResetHint::NotReset
                };
            }
        }
        let sample = HistogramSample { t, h: Arc::new(h) };
        if hs.get(i).is_some_and(|p| p.t == t) {
            hs[i] = sample;
        } else {
            hs.insert(i, sample);
        }
        Ok(())
    }
}

impl Querier for MemStorage {
    fn select(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<SeriesSamples> {
        select_in(&self.series, matchers, (mint, maxt), |p| p.t)
            .map(|(labels, samples)| SeriesSamples { labels, samples })
            .collect()
    }

    /// Answers only while the storage holds no native histograms (a series' samples could
    /// then be histograms, which the caller handles through `select_histograms`).
    fn select_pairs_each(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        f: &mut PairsSink<'_>,
    ) -> bool {
        if !self.histograms.is_empty() {
            return false;
        }
        for (labels, samples) in select_in(&self.series, matchers, (mint, maxt), |p| p.t) {
            let pairs: Vec<(&str, &str)> = labels.iter().collect();
            if !f(&pairs, &samples) {
                break;
            }
        }
        true
    }

    fn select_histograms(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<HistogramSeries> {
        select_in(&self.histograms, matchers, (mint, maxt), |p| p.t)
            .map(|(labels, samples)| HistogramSeries { labels, samples })
            .collect()
    }

    fn label_names(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<String> {
        let mut out: Vec<String> = self
            .selected_labels(matchers, mint, maxt)
            .flat_map(|l| l.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>())
            .collect();
        crate::sort::sort(&mut out);
        out.dedup();
        out
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<String> {
        let mut out: Vec<String> = self
            .selected_labels(matchers, mint, maxt)
            .filter_map(|l| l.get(name).map(|v| v.to_string()))
            .collect();
        crate::sort::sort(&mut out);
        out.dedup();
        out
    }
}
