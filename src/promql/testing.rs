//! A small in-memory [`Querier`] for engine tests and the conformance runner.
//!
//! Owns: nothing but a sorted map of series. Must not touch: the real TSDB.

use crate::model::{Labels, Matcher, Sample, Timestamp};
use crate::tsdb::{AppendError, Appender, Querier, SeriesSamples};
use std::collections::BTreeMap;

/// Series kept sorted by label set; samples sorted by time (a later write at the same
/// timestamp replaces the earlier one).
#[derive(Default, Debug)]
pub struct MemStorage {
    series: BTreeMap<Labels, Vec<Sample>>,
}

impl MemStorage {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn clear(&mut self) {
        self.series.clear();
    }
    fn matching<'a>(
        &'a self,
        matchers: &'a [Matcher],
    ) -> impl Iterator<Item = (&'a Labels, &'a Vec<Sample>)> + 'a {
        self.series.iter().filter(move |(l, _)| {
            matchers
                .iter()
                .all(|m| m.matches(l.get(&m.name).unwrap_or("")))
        })
    }
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
}

impl Querier for MemStorage {
    fn select(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<SeriesSamples> {
        self.matching(matchers)
            .filter_map(|(l, s)| {
                let lo = s.partition_point(|p| p.t < mint);
                let hi = s.partition_point(|p| p.t <= maxt);
                (lo < hi).then(|| SeriesSamples {
                    labels: l.clone(),
                    samples: s[lo..hi].to_vec(),
                })
            })
            .collect()
    }

    fn label_names(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<String> {
        let mut out: Vec<String> = self
            .select(matchers, mint, maxt)
            .iter()
            .flat_map(|s| {
                s.labels
                    .iter()
                    .map(|(n, _)| n.to_string())
                    .collect::<Vec<_>>()
            })
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
            .select(matchers, mint, maxt)
            .iter()
            .filter_map(|s| s.labels.get(name).map(|v| v.to_string()))
            .collect();
        crate::sort::sort(&mut out);
        out.dedup();
        out
    }
}
