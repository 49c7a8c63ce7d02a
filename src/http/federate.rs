//! `/federate`: the latest sample of every series matching any `match[]` selector, as an
//! exposition an upstream Prometheus scrapes (DESIGN.md §7).
//!
//! Owns: selector parsing for the endpoint, picking each series' latest non-stale sample inside
//! the lookback window, and the label set upstream sees (external labels where the series lacks
//! them, `instance=""` when nothing provides one). Must not touch: encoding, content negotiation
//! and compression (the agent does those as for `/metrics`), the clock (`now` is passed in).

use crate::expo::{MetricSet, MetricType};
use crate::model::{is_stale_nan, Labels, Matcher, Sample, Timestamp, METRIC_NAME};
use crate::promql;
use crate::tsdb::Querier;

/// The `match[]` selectors of a request, or the parse error Prometheus answers with 400.
pub fn matcher_sets(params: &[(String, String)]) -> Result<Vec<Vec<Matcher>>, String> {
    params
        .iter()
        .filter(|(k, _)| k == "match[]")
        .map(|(_, v)| promql::parse_selector(v).map_err(|e| e.to_string()))
        .collect()
}

/// Adds to `set` one untyped family per metric name with the latest sample of each series that
/// matches any of `sets`, taken from `[now - lookback_ms, now]`. A series whose latest sample is
/// a staleness marker is left out (it has ended). Returns how many samples were added.
pub fn collect(
    querier: &dyn Querier,
    sets: &[Vec<Matcher>],
    external_labels: &[(String, String)],
    now: Timestamp,
    lookback_ms: i64,
    set: &mut MetricSet,
) -> usize {
    let mint = now.saturating_sub(lookback_ms);
    // One sample per series, never the whole window: select_each lends each series' samples.
    let mut latest: Vec<(Labels, Sample)> = Vec::new();
    for matchers in sets {
        querier.select_each(matchers, mint, now, &mut |labels, samples| {
            if let Some(last) = samples.iter().rev().find(|s| s.t <= now) {
                if !is_stale_nan(last.v) && labels.name().is_some() {
                    latest.push((labels.clone(), *last));
                }
            }
        });
    }
    // Selectors may overlap: a series is exposed once. Then by name, so families are contiguous.
    crate::sort::sort_by(&mut latest, |a, b| a.0.cmp(&b.0));
    latest.dedup_by(|a, b| a.0 == b.0);
    crate::sort::sort_by(&mut latest, |a, b| a.0.name().cmp(&b.0.name()));

    // External labels plus `instance=""`, sorted by name: what a series gets where it lacks them.
    let mut extra: Vec<(&str, &str)> = external_labels
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    if !extra.iter().any(|(n, _)| *n == "instance") {
        extra.push(("instance", ""));
    }
    crate::sort::sort_by(&mut extra, |a, b| a.0.cmp(b.0));

    let mut family = None;
    let mut family_name = "";
    for (labels, sample) in &latest {
        let name = labels.name().unwrap_or_default();
        let id = match family {
            Some(id) if family_name == name => id,
            _ => {
                family_name = name;
                let id = set.family(name, "", MetricType::Untyped);
                family = Some(id);
                id
            }
        };
        // Series labels first (sorted, as stored), then the missing extras, as Prometheus does.
        let own: Vec<(&str, &str)> = labels.iter().filter(|(n, _)| *n != METRIC_NAME).collect();
        let mut pairs: Vec<(&str, &dyn crate::expo::LabelValue)> =
            Vec::with_capacity(own.len() + 2);
        for (n, v) in &own {
            pairs.push((n, v));
        }
        for (n, v) in &extra {
            if labels.get(n).is_none() {
                pairs.push((n, v));
            }
        }
        set.sample_full(id, "", &pairs, sample.v, Some(sample.t));
    }
    latest.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expo::encode_text;
    use crate::tsdb::SeriesSamples;

    /// A fixed list of series; `select` applies matchers and the time range like a store.
    struct Series(Vec<SeriesSamples>);

    impl Querier for Series {
        fn select(&self, m: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<SeriesSamples> {
            self.0
                .iter()
                .filter(|s| {
                    m.iter()
                        .all(|m| m.matches(s.labels.get(&m.name).unwrap_or("")))
                })
                .map(|s| SeriesSamples {
                    labels: s.labels.clone(),
                    samples: s
                        .samples
                        .iter()
                        .filter(|p| p.t >= mint && p.t <= maxt)
                        .copied()
                        .collect(),
                })
                .filter(|s| !s.samples.is_empty())
                .collect()
        }
        fn label_names(&self, _: &[Matcher], _: Timestamp, _: Timestamp) -> Vec<String> {
            vec![]
        }
        fn label_values(&self, _: &str, _: &[Matcher], _: Timestamp, _: Timestamp) -> Vec<String> {
            vec![]
        }
    }

    fn series(pairs: &[(&str, &str)], points: &[(i64, f64)]) -> SeriesSamples {
        SeriesSamples {
            labels: Labels::from_pairs(pairs.iter().copied()),
            samples: points.iter().map(|&(t, v)| Sample { t, v }).collect(),
        }
    }

    fn federate(q: &Series, selectors: &[&str], ext: &[(&str, &str)], now: i64) -> String {
        let params: Vec<(String, String)> = selectors
            .iter()
            .map(|s| ("match[]".to_string(), s.to_string()))
            .collect();
        let sets = matcher_sets(&params).unwrap();
        let ext: Vec<(String, String)> = ext
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let mut set = MetricSet::new();
        collect(q, &sets, &ext, now, 300_000, &mut set);
        let mut out = Vec::new();
        encode_text(&set, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn latest_sample_in_lookback_with_external_labels_and_empty_instance() {
        let q = Series(vec![
            series(
                &[("__name__", "b_metric"), ("site", "own")],
                &[(300_000, 1.0), (390_000, 2.0)],
            ),
            series(&[("__name__", "a_metric"), ("job", "x")], &[(380_000, 7.0)]),
            // Outside the 5 m lookback before now = 400_000.
            series(
                &[("__name__", "a_metric"), ("job", "old")],
                &[(50_000, 1.0)],
            ),
        ]);
        let out = federate(
            &q,
            &["{__name__=~\".+_metric\"}"],
            &[("site", "home")],
            400_000,
        );
        assert!(!out.contains("old"), "{out}");
        let samples: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples,
            [
                "a_metric{job=\"x\",instance=\"\",site=\"home\"} 7 380000",
                "b_metric{site=\"own\",instance=\"\"} 2 390000",
            ]
        );
        assert!(out.contains("# TYPE a_metric untyped\n"), "{out}");
    }

    #[test]
    fn stale_series_are_left_out_and_overlapping_selectors_expose_once() {
        let q = Series(vec![
            series(
                &[("__name__", "gone"), ("instance", "h:1")],
                &[(1_000, 1.0), (2_000, crate::model::stale_nan())],
            ),
            series(&[("__name__", "up"), ("instance", "h:1")], &[(2_000, 1.0)]),
        ]);
        let out = federate(&q, &["up", "{instance=\"h:1\"}"], &[], 10_000);
        let samples: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(samples, ["up{instance=\"h:1\"} 1 2000"]);
    }

    #[test]
    fn bad_selector_is_a_parse_error() {
        let params = vec![("match[]".to_string(), "up{".to_string())];
        let err = matcher_sets(&params).unwrap_err();
        assert!(err.contains("parse error"), "{err}");
        let params = vec![("match[]".to_string(), "rate(up[1m])".to_string())];
        assert!(matcher_sets(&params).is_err());
    }
}
