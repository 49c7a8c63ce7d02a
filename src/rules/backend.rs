//! The adapter from rule evaluation's [`RuleBackend`] to our PromQL engine over a store that is
//! both [`Querier`] and [`Appender`].
//!
//! Owns: turning engine values into [`QuerySample`]s (scalar → one unlabeled sample, matrix and
//! string → error), as Prometheus's `EngineQueryFunc` does. Must not touch: group state.

use super::group::RuleBackend;
use super::template::QuerySample;
use crate::histogram::FloatHistogram;
use crate::model::Labels;
use crate::promql::{instant_query, EngineOpts, Expr, Value};
use crate::tsdb::{Appender, Querier};

/// Rule queries and output over one store.
pub struct EngineBackend<'a, S: Querier + Appender> {
    pub store: &'a mut S,
    pub opts: &'a EngineOpts,
    /// Appends the store refused (out of order, too many series, ...).
    pub refused: u64,
}

impl<'a, S: Querier + Appender> EngineBackend<'a, S> {
    pub fn new(store: &'a mut S, opts: &'a EngineOpts) -> Self {
        EngineBackend {
            store,
            opts,
            refused: 0,
        }
    }
}

/// Runs `expr` at `t` and converts the result for rules.
pub fn query_samples(
    q: &dyn Querier,
    opts: &EngineOpts,
    expr: &Expr,
    text: &str,
    t: i64,
) -> Result<Vec<QuerySample>, String> {
    let res = instant_query(q, text, expr, t, opts).map_err(|e| e.to_string())?;
    match res.value {
        Value::Vector(v) => Ok(v
            .into_iter()
            .map(|s| QuerySample {
                labels: (*s.labels).clone(),
                value: s.v,
                histogram: s.h,
            })
            .collect()),
        Value::Scalar(v) => Ok(vec![QuerySample {
            labels: Labels::new(),
            value: v,
            histogram: None,
        }]),
        Value::Matrix(_) | Value::Str(_) => Err("rule result is not a vector or scalar".into()),
    }
}

impl<S: Querier + Appender> RuleBackend for EngineBackend<'_, S> {
    fn query(&self, expr: &Expr, text: &str, t: i64) -> Result<Vec<QuerySample>, String> {
        query_samples(&*self.store, self.opts, expr, text, t)
    }

    fn append(&mut self, labels: &Labels, t: i64, v: f64) {
        if self.store.append(labels, t, v).is_err() {
            self.refused += 1;
        }
    }

    fn append_histogram(&mut self, labels: &Labels, t: i64, h: &FloatHistogram) {
        if self.store.append_histogram(labels, t, h.clone()).is_err() {
            self.refused += 1;
        }
    }

    fn querier(&self) -> &dyn Querier {
        &*self.store
    }
}
