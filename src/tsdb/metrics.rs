//! The store's self-metrics, `promlet_tsdb_*`, written into a [`MetricSet`] for /metrics.
//!
//! Owns: metric names and help texts. Must not touch: store internals beyond its getters.

use super::Store;
use crate::expo::{MetricSet, MetricType};

impl Store {
    /// Appends the `promlet_tsdb_*` families describing this store.
    pub fn write_metrics(&self, set: &mut MetricSet) {
        let s = self.stats();
        let g = MetricType::Gauge;
        let c = MetricType::Counter;
        set.single_static(
            "promlet_tsdb_bytes_used",
            "Bytes held by the TSDB (index and chunks, from allocation sizes).",
            g,
            self.bytes_used() as f64,
        );
        set.single_static(
            "promlet_tsdb_bytes_budget",
            "The TSDB's memory budget in bytes (--storage.tsdb.retention.size).",
            g,
            self.options().retention_bytes as f64,
        );
        set.single_static(
            "promlet_tsdb_series",
            "Series currently in the TSDB.",
            g,
            self.series_count() as f64,
        );
        set.single_static(
            "promlet_tsdb_oldest_sample_timestamp_seconds",
            "Timestamp of the oldest sample held (0 when empty).",
            g,
            self.oldest_t().map_or(0.0, |t| t as f64 / 1000.0),
        );
        set.single_static(
            "promlet_tsdb_persisted_until_timestamp_seconds",
            "Newest sample timestamp made durable by the last successful flush (0: none).",
            g,
            s.persisted_until.map_or(0.0, |t| t as f64 / 1000.0),
        );
        set.single_static(
            "promlet_tsdb_samples_appended_total",
            "Samples accepted into the TSDB.",
            c,
            s.samples_appended as f64,
        );
        let f = set.family_static(
            "promlet_tsdb_samples_rejected_total",
            "Samples refused by the TSDB, by reason.",
            c,
        );
        for (reason, n) in [
            ("out_of_order", s.rejected_out_of_order),
            ("duplicate_timestamp", s.rejected_duplicate),
            ("too_many_series", s.rejected_too_many_series),
            ("invalid_labels", s.rejected_invalid),
        ] {
            set.sample(f, &[("reason", &reason)], n as f64);
        }
        set.single_static(
            "promlet_tsdb_clock_step_resets_total",
            "Series cut back because the wall clock was found behind their newest samples.",
            c,
            s.clock_step_resets as f64,
        );
        set.single_static(
            "promlet_tsdb_clock_step_discarded_samples_total",
            "Samples dropped because the wall clock was found behind them (stamped by a clock \
             that was ahead).",
            c,
            s.clock_step_discarded as f64,
        );
        set.single_static(
            "promlet_tsdb_chunks_evicted_total",
            "Sealed chunks evicted to stay within the budget or retention time.",
            c,
            s.chunks_evicted as f64,
        );
        set.single_static(
            "promlet_tsdb_corrupt_records_total",
            "Damaged or inconsistent on-disk records detected and skipped.",
            c,
            s.corrupt_records as f64,
        );
        set.single_static(
            "promlet_tsdb_persist_writes_total",
            "Successful flushes to the data directory.",
            c,
            s.persist_writes as f64,
        );
        set.single_static(
            "promlet_tsdb_persist_errors_total",
            "Failed writes to the data directory (data stays in memory and is retried).",
            c,
            s.persist_errors as f64,
        );
        set.single_static(
            "promlet_tsdb_bytes_written_total",
            "Bytes written to the data directory.",
            c,
            s.bytes_written as f64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;
    use crate::tsdb::{Appender, Options};

    #[test]
    fn metrics_report_budget_series_and_rejections() {
        let mut st = Store::new(Options::default());
        let l = Labels::from_pairs([("__name__", "up")]);
        st.append(&l, 1000, 1.0).unwrap();
        assert!(st.append(&l, 999, 1.0).is_err());
        let mut set = MetricSet::new();
        st.write_metrics(&mut set);
        let mut text = Vec::new();
        crate::expo::encode_text(&set, &mut text);
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("promlet_tsdb_series 1\n"), "{text}");
        assert!(text.contains("promlet_tsdb_samples_appended_total 1\n"));
        assert!(text.contains("promlet_tsdb_samples_rejected_total{reason=\"out_of_order\"} 1\n"));
        let mut budget = Vec::new();
        crate::expo::format_float(crate::tsdb::DEFAULT_RETENTION_BYTES as f64, &mut budget);
        let budget = String::from_utf8(budget).unwrap();
        assert!(text.contains(&format!("promlet_tsdb_bytes_budget {budget}\n")));
    }
}
