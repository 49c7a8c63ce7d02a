//! Evaluation of a parsed PromQL expression over a [`Querier`], with Prometheus 3.x semantics.
//!
//! Owns: instant and range evaluation, vector matching, aggregation, function application,
//! delayed `__name__` removal, query limits. Must not touch: storage internals, HTTP.
//!
//! Every selector's samples are fetched once per query (for the whole time window the query
//! needs), then each step is evaluated against those in-memory samples. Exceptions, each
//! giving the general path's answer: an instant query that is a plain selector can stream
//! from the store without any of that ([`instant_selector_each`], which the HTTP API tries
//! first); an aggregation of a selector or of a float range function of one
//! (`sum by (job) (rate(x[5m]))`) is evaluated from the store's borrowed label pairs
//! (instant: `streamed_aggregate`) or with each series' group found once (range:
//! `streamed_range_aggregate`), with no label set or input vector per series and step.

use super::ast::*;
use super::functions::{self as fx, Bucket};
use crate::histogram::{FloatHistogram, HistogramSample};
use crate::model::{is_stale_nan, Labels, Sample, METRIC_NAME};
use crate::tsdb::{Querier, SeriesSamples};
use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Limits and defaults of query evaluation (`--query.*` flags).
#[derive(Clone, Debug)]
pub struct EngineOpts {
    pub timeout: Duration,
    /// Most samples one step may hold in memory, and most points a range result may hold.
    pub max_samples: usize,
    /// How far back an instant selector looks for a sample (ms).
    pub lookback_delta: i64,
    /// Step of subqueries written without one (ms).
    pub default_subquery_step: i64,
    /// Keep `__name__` until evaluation ends and drop it then (Prometheus's
    /// `promql-delayed-name-removal` feature, which its conformance suite uses). When false,
    /// names go as soon as a function or operator drops them, as in a default Prometheus 3.5.
    pub delayed_name_removal: bool,
}

impl Default for EngineOpts {
    fn default() -> Self {
        EngineOpts {
            timeout: Duration::from_secs(120),
            max_samples: 50_000_000,
            lookback_delta: 300_000,
            default_subquery_step: 60_000,
            delayed_name_removal: true,
        }
    }
}

/// Why a query failed, with the Prometheus API error type it maps to.
#[derive(Clone, Debug, PartialEq)]
pub enum EvalError {
    Timeout,
    TooManySamples,
    Execution(String),
}

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvalError::Timeout => f.write_str("query timed out in expression evaluation"),
            EvalError::TooManySamples => f.write_str(
                "query processing would load too many samples into memory in query execution",
            ),
            EvalError::Execution(s) => f.write_str(s),
        }
    }
}

fn exec_err<T>(msg: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError::Execution(msg.into()))
}

/// One element of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct VecSample {
    pub labels: Rc<Labels>,
    /// The float value; unused (0) when `h` holds a native histogram.
    pub v: f64,
    /// A native histogram sample instead of a float. None on every float path, so floats
    /// cost no allocation; histograms are shared with the store until an operation changes
    /// them (`Arc::make_mut`).
    pub h: Option<Arc<FloatHistogram>>,
    /// `__name__` is to be removed once evaluation finishes (delayed name removal).
    pub drop_name: bool,
}

/// One series of a range vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: Rc<Labels>,
    pub points: Vec<Sample>,
    /// Native histogram points (Prometheus keeps floats and histograms of a series apart).
    pub hpoints: Vec<HistogramSample>,
    pub drop_name: bool,
}

/// A query result.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(f64),
    Str(String),
    Vector(Vec<VecSample>),
    Matrix(Vec<Series>),
}

/// A result plus the annotations Prometheus would return with it.
#[derive(Clone, Debug, Default)]
pub struct Annotations {
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

#[derive(Debug)]
pub struct QueryResult {
    pub value: Value,
    pub annotations: Annotations,
}

/// Evaluates `expr` at time `t` (ms).
pub fn instant_query(
    q: &dyn Querier,
    query: &str,
    expr: &Expr,
    t: i64,
    opts: &EngineOpts,
) -> Result<QueryResult, EvalError> {
    if let Some(r) = streamed_aggregate(q, expr, t, opts) {
        return r;
    }
    instant_query_engine(q, query, expr, t, opts)
}

/// [`instant_query`] by the general path: fetch, then evaluate the tree.
fn instant_query_engine(
    q: &dyn Querier,
    query: &str,
    expr: &Expr,
    t: i64,
    opts: &EngineOpts,
) -> Result<QueryResult, EvalError> {
    let mut ev = Evaluator::new(q, query, expr, t, t, 0, opts)?;
    let v = ev.eval(expr, t)?;
    let value = match v {
        Value::Vector(v) => Value::Vector(finish_vector(v)?),
        Value::Matrix(m) => Value::Matrix(finish_matrix(m)?),
        other => other,
    };
    Ok(QueryResult {
        value,
        annotations: ev.annos,
    })
}

/// What [`instant_selector_each`] calls per result series: its labels as sorted (name, value)
/// pairs and its value.
pub type SelectorSink<'f> = dyn FnMut(&[(&str, &str)], f64) + 'f;

/// A plain instant vector selector (`foo{a="b"}`, perhaps parenthesised) evaluated at `t`
/// straight from the store: `f` gets each result series' labels (sorted pairs, borrowed from
/// the querier) and value, in label order, with no label set, sample buffer or result vector
/// built. The same answer as [`instant_query`] (newest sample in the lookback window, stale
/// series left out, `offset` and `@` applied, `__name__` kept); the sample limit counts result
/// samples, as Prometheus counts an instant selector's.
///
/// `None` when `expr` is something else or the querier cannot answer this way (it may hold
/// native histograms): use [`instant_query`]. `Some(Ok(n))`: `n` series were passed to `f`.
pub fn instant_selector_each(
    q: &dyn Querier,
    expr: &Expr,
    t: i64,
    opts: &EngineOpts,
    f: &mut SelectorSink<'_>,
) -> Option<Result<usize, EvalError>> {
    let mut e = expr;
    while let Expr::Paren(inner, _) = e {
        e = inner;
    }
    let Expr::Vector(vs) = e else {
        return None;
    };
    // An instant query's start and end are both `t`. Saturating: offsets and `@` times come
    // from the query text.
    let at = match vs.at {
        Some(AtModifier::Time(x)) => x,
        _ => t,
    };
    let ref_t = at.saturating_sub(vs.offset);
    // The lookback window is left-open: (ref_t - delta, ref_t].
    let mint = ref_t.saturating_sub(opts.lookback_delta).saturating_add(1);
    let deadline = Instant::now() + opts.timeout;
    let (mut n, mut err) = (0usize, None);
    let answered = q.select_latest(&vs.matchers, mint, ref_t, &mut |pairs, s| {
        if is_stale_nan(s.v) {
            return true;
        }
        n += 1;
        if n > opts.max_samples {
            err = Some(EvalError::TooManySamples);
            return false;
        }
        if n % 256 == 0 && Instant::now() > deadline {
            err = Some(EvalError::Timeout);
            return false;
        }
        f(pairs, s.v);
        true
    });
    if !answered {
        return None;
    }
    Some(err.map_or(Ok(n), Err))
}

/// `e` without the parentheses around it.
fn unparen(mut e: &Expr) -> &Expr {
    while let Expr::Paren(inner, _) = e {
        e = inner;
    }
    e
}

/// Most winners a streamed `topk`/`bottomk` keeps per group (each newcomer is placed by a
/// walk over them); a larger `k` goes through the engine.
const STREAMED_TOPK_MAX: i64 = 64;

/// What a streamed aggregation reads per series.
#[derive(Clone, Copy)]
enum StreamInput<'e> {
    /// `agg(sel)`: the newest sample in the lookback window.
    Latest(&'e VectorSelector),
    /// `agg(f(sel[range]))`, `f` a float range function without scalar arguments.
    Range(&'e VectorSelector, i64, RangeFn, &'static str),
}

/// An aggregation the streamed paths ([`streamed_aggregate`], [`streamed_range_aggregate`])
/// answer: its operator, topk/bottomk's `k` (0 for the others), grouping and input.
struct StreamShape<'e> {
    op: AggOp,
    k: usize,
    grouping: &'e [String],
    without: bool,
    input: StreamInput<'e>,
    /// No aggregation: every series is its own group, with its whole label set.
    bare: bool,
}

impl<'e> StreamShape<'e> {
    /// The shape of `expr` if a streamed path can answer it: a value aggregation (or topk/
    /// bottomk with a literal `k` of 1..=64) over a selector, or over a float range function
    /// without scalar arguments of a range selector; one metric name for every series (so
    /// dropping it cannot make two alike); not grouped by the name.
    fn of(expr: &'e Expr) -> Option<StreamShape<'e>> {
        let Expr::Aggregate {
            op,
            expr: arg,
            param,
            grouping,
            without,
            ..
        } = unparen(expr)
        else {
            return None;
        };
        let k = match op {
            AggOp::Sum
            | AggOp::Avg
            | AggOp::Count
            | AggOp::Group
            | AggOp::Min
            | AggOp::Max
            | AggOp::Stddev
            | AggOp::Stdvar => 0,
            AggOp::Topk | AggOp::Bottomk => match param.as_deref().map(unparen) {
                // NaN, overflow and k < 1 are the general path's to answer.
                Some(Expr::Number(k, _)) if *k >= 1.0 && *k <= STREAMED_TOPK_MAX as f64 => {
                    *k as usize
                }
                _ => return None,
            },
            _ => return None,
        };
        if !without
            && grouping
                .iter()
                .any(|g| g == METRIC_NAME || g == "__type__" || g == "__unit__")
        {
            return None;
        }
        let input = StreamInput::of(arg)?;
        Some(StreamShape {
            op: *op,
            k,
            grouping,
            without: *without,
            input,
            bare: false,
        })
    }

    /// A float range function of a range selector with no aggregation around it
    /// (`rate(x{instance="a"}[5m])`): each series is its own group, as [`StreamShape::bare`].
    fn bare(expr: &'e Expr) -> Option<StreamShape<'e>> {
        let input = StreamInput::of(expr)?;
        matches!(input, StreamInput::Range(..)).then_some(StreamShape {
            op: AggOp::Sum,
            k: 0,
            grouping: &[],
            without: false,
            input,
            bare: true,
        })
    }

    /// Whether label `n` is part of the group key.
    fn in_group(&self, n: &str) -> bool {
        let listed = self.grouping.iter().any(|g| g == n);
        if self.without {
            n != METRIC_NAME && !listed
        } else {
            listed
        }
    }

    /// Whether the output drops `__name__` (every range function but last_over_time).
    fn drop_name(&self) -> bool {
        match self.input {
            StreamInput::Latest(_) => false,
            StreamInput::Range(_, _, func, _) => func != RangeFn::Last,
        }
    }
}

impl<'e> StreamInput<'e> {
    /// The input `e` is, if a streamed path can read it: a selector, or a float range
    /// function without scalar arguments of a range selector; either with one metric name for
    /// every series (so dropping it cannot make two alike).
    fn of(e: &'e Expr) -> Option<StreamInput<'e>> {
        let input = match unparen(e) {
            Expr::Vector(vs) => StreamInput::Latest(vs),
            Expr::Call { func, args, .. } if args.len() == 1 => {
                let f = RangeFn::from_name(func.name);
                let Expr::Matrix { vs, range, .. } = unparen(&args[0]) else {
                    return None;
                };
                if matches!(
                    f,
                    RangeFn::Unsupported | RangeFn::PredictLinear | RangeFn::Quantile
                ) {
                    return None;
                }
                StreamInput::Range(vs, *range, f, func.name)
            }
            _ => return None,
        };
        let one_name = input
            .selector()
            .matchers
            .iter()
            .any(|m| m.name == METRIC_NAME && m.op == crate::model::MatchOp::Equal);
        one_name.then_some(input)
    }

    fn selector(&self) -> &'e VectorSelector {
        match *self {
            StreamInput::Latest(vs) | StreamInput::Range(vs, ..) => vs,
        }
    }
}

/// A label set the streamed paths leave to the general one: Prometheus's type-and-unit
/// labels go with the name, which the general path's name handling covers.
fn has_type_labels<'a>(mut pairs: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
    pairs.any(|(n, _)| n == "__type__" || n == "__unit__")
}

/// The groups of a streamed aggregation, in first-appearance order, found by a hash of a
/// series' group pairs (candidates compared pair by pair), so a known group costs no label
/// set built.
#[derive(Default)]
struct GroupIndex {
    labels: Vec<Labels>,
    by_hash: HashMap<u64, Vec<usize>, AddrHash>,
}

impl GroupIndex {
    /// The group of a series with these sorted label pairs, added if new.
    fn find_or_add<'a>(
        &mut self,
        shape: &StreamShape<'_>,
        pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    ) -> usize {
        let key = pairs.filter(|(n, _)| shape.in_group(n));
        let mut h = AddrHasher::default();
        for (n, v) in key.clone() {
            std::hash::Hasher::write(&mut h, n.as_bytes());
            std::hash::Hasher::write_u8(&mut h, 0xff);
            std::hash::Hasher::write(&mut h, v.as_bytes());
            std::hash::Hasher::write_u8(&mut h, 0xff);
        }
        let same = self
            .by_hash
            .entry(std::hash::Hasher::finish(&h))
            .or_default();
        let labels = &mut self.labels;
        if let Some(&gi) = same
            .iter()
            .find(|&&gi| same_pairs(labels[gi].iter(), key.clone()))
        {
            return gi;
        }
        let pairs: Vec<(&str, &str)> = key.collect();
        labels.push(Labels::from_sorted_pairs(pairs.into_iter()));
        same.push(labels.len() - 1);
        labels.len() - 1
    }
}

/// Whether two sequences of label pairs are equal (`Iterator::eq` would tie their lifetimes).
fn same_pairs<'x, 'y>(
    mut a: impl Iterator<Item = (&'x str, &'x str)>,
    mut b: impl Iterator<Item = (&'y str, &'y str)>,
) -> bool {
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x == y => {}
            _ => return false,
        }
    }
}

/// Places a value among a group's topk/bottomk winners (best first) where a stable sort by
/// value would put it, after every member not worse; NaN last. `make` builds the winner's
/// labels, only when it gets in.
fn place_winner<L>(
    top: &mut Vec<(f64, L)>,
    k: usize,
    is_topk: bool,
    v: f64,
    make: impl FnOnce() -> L,
) {
    let pos = top
        .iter()
        .take_while(|(w, _)| match (w.is_nan(), v.is_nan()) {
            (true, false) => false,
            (false, true) | (true, true) => true,
            _ if is_topk => *w >= v,
            _ => *w <= v,
        })
        .count();
    if pos < k {
        top.insert(pos, (v, make()));
        top.truncate(k);
    }
}

/// The value of a float range function for a series in a streamed aggregation; None when it
/// has none, or when the series is one only the general path answers (see [`StreamFail`]).
fn streamed_range_value(
    func: RangeFn,
    name: &str,
    metric: Option<&str>,
    samples: &[Sample],
    clean: &mut Vec<Sample>,
    (range_start, range_end, t): (i64, i64, i64),
) -> Result<Option<f64>, StreamFail> {
    let p: &[Sample] = if samples.iter().any(|s| is_stale_nan(s.v)) {
        clean.clear();
        clean.extend(samples.iter().filter(|s| !is_stale_nan(s.v)));
        clean
    } else {
        samples
    };
    if p.is_empty() {
        return Ok(None);
    }
    if matches!(func, RangeFn::Rate | RangeFn::Increase) && metric.is_some_and(not_counter_metric) {
        // The general path adds the info annotation.
        return Err(StreamFail::General);
    }
    float_range_value(func, name, p, None, range_start, range_end, t).map_err(StreamFail::Eval)
}

/// Why a streamed aggregation stopped.
enum StreamFail {
    /// The query fails (limits, timeout).
    Eval(EvalError),
    /// Only the general path answers it exactly.
    General,
}

/// An instant streamed aggregation's state: the groups so far and, per group, the members'
/// values in input order or topk's winners.
struct StreamAcc<'s> {
    shape: &'s StreamShape<'s>,
    groups: GroupIndex,
    vals: Vec<Vec<f64>>,
    tops: Vec<Vec<(f64, Labels)>>,
    deadline: Instant,
    seen: usize,
}

impl StreamAcc<'_> {
    /// Adds one series' value to its group.
    fn add(&mut self, pairs: &[(&str, &str)], v: f64) -> Result<(), StreamFail> {
        self.seen += 1;
        if self.seen % 256 == 0 && Instant::now() > self.deadline {
            return Err(StreamFail::Eval(EvalError::Timeout));
        }
        if has_type_labels(pairs.iter().copied()) {
            return Err(StreamFail::General);
        }
        let shape = self.shape;
        let gi = self.groups.find_or_add(shape, pairs.iter().copied());
        if gi == self.vals.len() {
            self.vals.push(Vec::new());
            self.tops.push(Vec::new());
        }
        if shape.k == 0 {
            self.vals[gi].push(v);
        } else {
            place_winner(
                &mut self.tops[gi],
                shape.k,
                shape.op == AggOp::Topk,
                v,
                || Labels::from_sorted_pairs(pairs.iter().copied()),
            );
        }
        Ok(())
    }
}

/// An instant aggregation over a selector, or over a float range function of a range
/// selector, evaluated as the store yields each series (`sum by (job) (rate(x[5m]))`): the
/// group is found from the series' borrowed label pairs, so no label set, sample buffer or
/// input vector is built per series; only each group's labels (and topk's winners') are.
/// The same answer as the engine's general path, which the unit tests check.
///
/// `None` (nothing evaluated, or an evaluation abandoned) when the query has another shape
/// ([`StreamShape::of`]) or the stream meets what only the general path handles: native
/// histograms (the querier declines), `__type__`/`__unit__` labels, a series that draws
/// rate()'s "not a counter" info.
fn streamed_aggregate(
    q: &dyn Querier,
    expr: &Expr,
    t: i64,
    opts: &EngineOpts,
) -> Option<Result<QueryResult, EvalError>> {
    let shape = StreamShape::of(expr)?;
    let vs = shape.input.selector();
    // An instant query's start and end are both `t`.
    let at = match vs.at {
        Some(AtModifier::Time(x)) => x,
        _ => t,
    };
    let ref_t = at.saturating_sub(vs.offset);
    let mut acc = StreamAcc {
        shape: &shape,
        groups: GroupIndex::default(),
        vals: Vec::new(),
        tops: Vec::new(),
        deadline: Instant::now() + opts.timeout,
        seen: 0,
    };
    let mut loaded = 0usize;
    let mut failed: Option<StreamFail> = None;
    let answered = match shape.input {
        StreamInput::Latest(vs) => {
            // The lookback window is left-open: (ref_t - delta, ref_t].
            let mint = ref_t.saturating_sub(opts.lookback_delta).saturating_add(1);
            q.select_latest(&vs.matchers, mint, ref_t, &mut |pairs, s| {
                if is_stale_nan(s.v) {
                    return true;
                }
                loaded += 1;
                let r = if loaded > opts.max_samples {
                    Err(StreamFail::Eval(EvalError::TooManySamples))
                } else {
                    acc.add(pairs, s.v)
                };
                r.map_err(|e| failed = Some(e)).is_ok()
            })
        }
        StreamInput::Range(vs, range, func, name) => {
            let range_start = ref_t.saturating_sub(range);
            let mut clean: Vec<Sample> = Vec::new();
            // The window is left-open: (ref_t - range, ref_t], as the general path fetches.
            let mint = range_start.saturating_add(1);
            q.select_pairs_each(&vs.matchers, mint, ref_t, &mut |pairs, samples| {
                loaded += samples.len();
                let r = if loaded > opts.max_samples {
                    Err(StreamFail::Eval(EvalError::TooManySamples))
                } else {
                    let metric = pairs.iter().find(|(n, _)| *n == METRIC_NAME).map(|p| p.1);
                    let w = (range_start, ref_t, t);
                    match streamed_range_value(func, name, metric, samples, &mut clean, w) {
                        Ok(Some(v)) => acc.add(pairs, v),
                        Ok(None) => Ok(()),
                        Err(e) => Err(e),
                    }
                };
                r.map_err(|e| failed = Some(e)).is_ok()
            })
        }
    };
    if !answered {
        return None;
    }
    match failed {
        Some(StreamFail::General) => return None,
        Some(StreamFail::Eval(e)) => return Some(Err(e)),
        None => {}
    }
    let drop_name = shape.drop_name();
    let StreamAcc {
        groups, vals, tops, ..
    } = acc;
    let mut out = Vec::with_capacity(groups.labels.len());
    for ((labels, vals), top) in groups.labels.into_iter().zip(vals).zip(tops) {
        if shape.k > 0 {
            out.extend(top.into_iter().map(|(v, labels)| VecSample {
                labels: Rc::new(labels),
                v,
                h: None,
                drop_name,
            }));
            continue;
        }
        let v = float_aggregate(shape.op, 0.0, &vals);
        out.push(VecSample {
            labels: Rc::new(labels),
            v,
            h: None,
            drop_name,
        });
    }
    Some(finish_vector(out).map(|v| QueryResult {
        value: Value::Vector(v),
        annotations: Annotations::default(),
    }))
}

/// A range query of an aggregation [`StreamShape::of`] accepts, topk/bottomk excepted, or of
/// a bare float range function ([`StreamShape::bare`]): each series' group is found once,
/// from its label set, and every step adds each series' value straight to its group's values
/// (or, bare, its own points), with no input vector, group lookup or label set per step and
/// series. The same answer as the general path (unit tests check it); `None` as for
/// [`streamed_aggregate`], or when the querier holds native histograms for the selector.
fn streamed_range_aggregate(
    q: &dyn Querier,
    expr: &Expr,
    start: i64,
    end: i64,
    step: i64,
    opts: &EngineOpts,
) -> Option<Result<QueryResult, EvalError>> {
    let shape = StreamShape::of(expr).or_else(|| StreamShape::bare(expr))?;
    if shape.k > 0 {
        return None;
    }
    let vs = shape.input.selector();
    let at_of = |t: i64| match vs.at {
        None => t,
        Some(AtModifier::Time(x)) => x,
        Some(AtModifier::Start) => start,
        Some(AtModifier::End) => end,
    };
    // The fetch window, as collect_windows computes it for the general path.
    let before = match shape.input {
        StreamInput::Latest(_) => opts.lookback_delta,
        StreamInput::Range(_, range, ..) => range,
    };
    let (a, b) = match vs.at {
        None => (start, end),
        Some(_) => (at_of(start), at_of(start)),
    };
    let mint = a
        .saturating_sub(vs.offset)
        .saturating_sub(before)
        .saturating_add(1);
    let maxt = b.saturating_sub(vs.offset);
    if !q.select_histograms(&vs.matchers, mint, maxt).is_empty() {
        return None;
    }
    let fetched = q.select(&vs.matchers, mint, maxt);
    let loaded: usize = fetched.iter().map(|s| s.samples.len()).sum();
    if loaded > opts.max_samples {
        return Some(Err(EvalError::TooManySamples));
    }
    let mut groups = GroupIndex::default();
    // Per series: its group and samples (without stale markers for a range function).
    let mut series: Vec<(usize, Vec<Sample>)> = Vec::with_capacity(fetched.len());
    for mut s in fetched {
        if has_type_labels(s.labels.iter()) {
            return None;
        }
        if let StreamInput::Range(_, _, func, _) = shape.input {
            if matches!(func, RangeFn::Rate | RangeFn::Increase) && not_counter_name(&s.labels) {
                // The general path adds the info annotation.
                return None;
            }
            s.samples.retain(|p| !is_stale_nan(p.v));
        }
        let gi = if shape.bare {
            groups.labels.push(s.labels);
            groups.labels.len() - 1
        } else {
            let pairs: Vec<(&str, &str)> = s.labels.iter().collect();
            groups.find_or_add(&shape, pairs.iter().copied())
        };
        series.push((gi, s.samples));
    }
    let n_groups = groups.labels.len();
    let mut vals: Vec<Vec<f64>> = vec![Vec::new(); n_groups];
    let mut points: Vec<Vec<Sample>> = vec![Vec::new(); n_groups];
    // Per series: the first sample after the window's start and after its end. Steps only
    // move forward, so each walks over a series' samples once.
    let mut cursors = vec![(0usize, 0usize); series.len()];
    let after = |p: &[Sample], i: &mut usize, x: i64| {
        while *i < p.len() && p[*i].t <= x {
            *i += 1;
        }
        *i
    };
    let deadline = Instant::now() + opts.timeout;
    let mut total = 0usize;
    let mut t = start;
    while t <= end {
        if Instant::now() > deadline {
            return Some(Err(EvalError::Timeout));
        }
        let ref_t = at_of(t).saturating_sub(vs.offset);
        match shape.input {
            StreamInput::Range(_, range, func, name) => {
                let range_start = ref_t.saturating_sub(range);
                let mut in_windows = 0;
                for ((gi, p), cur) in series.iter().zip(cursors.iter_mut()) {
                    let lo = after(p, &mut cur.0, range_start);
                    let hi = after(p, &mut cur.1, ref_t);
                    if lo >= hi {
                        continue;
                    }
                    in_windows += hi - lo;
                    match float_range_value(func, name, &p[lo..hi], None, range_start, ref_t, t) {
                        Ok(Some(v)) if shape.bare => {
                            points[*gi].push(Sample { t, v });
                            total += 1;
                        }
                        Ok(Some(v)) => vals[*gi].push(v),
                        Ok(None) => {}
                        Err(e) => return Some(Err(e)),
                    }
                }
                if in_windows > opts.max_samples {
                    return Some(Err(EvalError::TooManySamples));
                }
            }
            StreamInput::Latest(_) => {
                let mint = ref_t.saturating_sub(opts.lookback_delta);
                for ((gi, p), cur) in series.iter().zip(cursors.iter_mut()) {
                    let i = after(p, &mut cur.1, ref_t);
                    let Some(s) = i.checked_sub(1).map(|j| p[j]) else {
                        continue;
                    };
                    if s.t > mint && !is_stale_nan(s.v) {
                        vals[*gi].push(s.v);
                    }
                }
            }
        }
        for (v, pts) in vals.iter_mut().zip(points.iter_mut()) {
            if !v.is_empty() {
                let x = float_aggregate(shape.op, 0.0, v);
                pts.push(Sample { t, v: x });
                total += 1;
                v.clear();
            }
        }
        if total > opts.max_samples {
            return Some(Err(EvalError::TooManySamples));
        }
        let Some(next) = t.checked_add(step) else {
            break;
        };
        t = next;
    }
    let drop_name = shape.drop_name();
    let out: Vec<Series> = groups
        .labels
        .into_iter()
        .zip(points)
        .filter(|(_, p)| !p.is_empty())
        .map(|(labels, points)| Series {
            labels: Rc::new(labels),
            points,
            hpoints: Vec::new(),
            drop_name,
        })
        .collect();
    Some(finish_matrix(out).map(|mut m| {
        crate::sort::sort_by(&mut m, |a, b| a.labels.cmp(&b.labels));
        QueryResult {
            value: Value::Matrix(m),
            annotations: Annotations::default(),
        }
    }))
}

/// Evaluates `expr` at every step from `start` to `end` (ms); the result is always a matrix.
pub fn range_query(
    q: &dyn Querier,
    query: &str,
    expr: &Expr,
    start: i64,
    end: i64,
    step: i64,
    opts: &EngineOpts,
) -> Result<QueryResult, EvalError> {
    if step <= 0 {
        return exec_err("zero or negative query resolution step widths are not accepted");
    }
    match expr.value_type() {
        ValueType::Vector | ValueType::Scalar => {}
        t => {
            return exec_err(format!(
                "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                t.name()
            ))
        }
    }
    if let Some(r) = streamed_range_aggregate(q, expr, start, end, step, opts) {
        return r;
    }
    range_query_engine(q, query, expr, start, end, step, opts)
}

/// [`range_query`] by the general path, for a checked step and type.
fn range_query_engine(
    q: &dyn Querier,
    query: &str,
    expr: &Expr,
    start: i64,
    end: i64,
    step: i64,
    opts: &EngineOpts,
) -> Result<QueryResult, EvalError> {
    let mut ev = Evaluator::new(q, query, expr, start, end, step, opts)?;
    // Series are keyed by their (shared) label sets and whether the name is to be dropped: no
    // label copies per step. Label sets that come straight from storage are the same allocation
    // every step, so they are found by address first; `by_addr` only holds addresses of Rc's
    // kept alive in `series`. Names are dropped once, at the end (finish_matrix).
    let mut index: HashMap<(Rc<Labels>, bool), usize> = HashMap::new();
    let mut by_addr: HashMap<(*const Labels, bool), usize, AddrHash> = HashMap::default();
    let mut series: Vec<Series> = Vec::new();
    let mut total = 0usize;
    let mut t = start;
    while t <= end {
        let mut push = |labels: Rc<Labels>,
                        drop_name: bool,
                        v: f64,
                        h: Option<Arc<FloatHistogram>>|
         -> Result<(), EvalError> {
            let i = match by_addr.get(&(Rc::as_ptr(&labels), drop_name)) {
                Some(&i) => i,
                None => {
                    let i = *index.entry((labels.clone(), drop_name)).or_insert_with(|| {
                        series.push(Series {
                            labels: labels.clone(),
                            points: Vec::new(),
                            hpoints: Vec::new(),
                            drop_name,
                        });
                        series.len() - 1
                    });
                    if Rc::ptr_eq(&series[i].labels, &labels) {
                        by_addr.insert((Rc::as_ptr(&labels), drop_name), i);
                    }
                    i
                }
            };
            let sr = &mut series[i];
            if sr.points.last().is_some_and(|p| p.t == t)
                || sr.hpoints.last().is_some_and(|p| p.t == t)
            {
                return exec_err("vector cannot contain metrics with the same labelset");
            }
            match h {
                None => sr.points.push(Sample { t, v }),
                Some(h) => sr.hpoints.push(HistogramSample { t, h }),
            }
            Ok(())
        };
        match ev.eval(expr, t)? {
            Value::Scalar(v) => {
                push(Rc::new(Labels::new()), false, v, None)?;
                total += 1;
            }
            Value::Vector(vs) => {
                total += vs.len();
                for s in vs {
                    push(s.labels, s.drop_name, s.v, s.h)?;
                }
            }
            _ => return exec_err("range query produced an unexpected value type"),
        }
        if total > opts.max_samples {
            return Err(EvalError::TooManySamples);
        }
        let Some(next) = t.checked_add(step) else {
            break;
        };
        t = next;
    }
    let mut series = finish_matrix(series)?;
    crate::sort::sort_by(&mut series, |a, b| a.labels.cmp(&b.labels));
    if expr.value_type() == ValueType::Vector {
        if let Some(w) = sort_warning(expr) {
            ev.annos.warnings.push(w);
        }
    }
    Ok(QueryResult {
        value: Value::Matrix(series),
        annotations: ev.annos,
    })
}

/// (aggregation node, input label set) addresses.
type GroupCacheKey = (*const Expr, *const Labels);

/// A fast hasher for keys that are addresses: they are not chosen by users, so SipHash's
/// flooding resistance buys nothing and costs a third of a range query's bookkeeping.
type AddrHash = std::hash::BuildHasherDefault<AddrHasher>;

#[derive(Default)]
struct AddrHasher(u64);

impl std::hash::Hasher for AddrHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

fn sort_warning(expr: &Expr) -> Option<String> {
    let mut found = None;
    expr.walk(&mut |e| {
        if let Expr::Call { func, span, .. } = e {
            if found.is_none() && (func.name == "sort" || func.name == "sort_desc") {
                found = Some(*span);
            }
        }
    });
    found.map(|span| {
        format!(
            "PromQL warning: sort is ineffective for range queries since results are always ordered by labels (1:{})",
            span.start + 1
        )
    })
}

/// Applies delayed `__name__` removal and rejects duplicate label sets.
fn finish_vector(mut v: Vec<VecSample>) -> Result<Vec<VecSample>, EvalError> {
    let mut any = false;
    for s in v.iter_mut() {
        if s.drop_name && has_name_labels(&s.labels) {
            drop_name_labels(Rc::make_mut(&mut s.labels));
            any = true;
        }
        s.drop_name = false;
    }
    if any || v.len() < 64 {
        let mut seen: std::collections::HashSet<&Labels> = std::collections::HashSet::new();
        for s in &v {
            if !seen.insert(&s.labels) {
                return exec_err("vector cannot contain metrics with the same labelset");
            }
        }
    }
    Ok(v)
}

fn finish_matrix(m: Vec<Series>) -> Result<Vec<Series>, EvalError> {
    let mut out: Vec<Series> = Vec::with_capacity(m.len());
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for mut s in m {
        if s.drop_name {
            drop_name_labels(Rc::make_mut(&mut s.labels));
            s.drop_name = false;
        }
        if let Some(&i) = index.get(&*s.labels) {
            let prev = &mut out[i];
            for p in s.points {
                if prev.points.iter().any(|q| q.t == p.t) || prev.hpoints.iter().any(|q| q.t == p.t)
                {
                    return exec_err("vector cannot contain metrics with the same labelset");
                }
                prev.points.push(p);
            }
            for p in s.hpoints {
                if prev.points.iter().any(|q| q.t == p.t) || prev.hpoints.iter().any(|q| q.t == p.t)
                {
                    return exec_err("vector cannot contain metrics with the same labelset");
                }
                prev.hpoints.push(p);
            }
            crate::sort::sort_by_key(&mut prev.points, |p| p.t);
            crate::sort::sort_by_key(&mut prev.hpoints, |p| p.t);
        } else {
            index.insert((*s.labels).clone(), out.len());
            out.push(s);
        }
    }
    Ok(out)
}

/// `__type__` and `__unit__` (Prometheus's type-and-unit labels) describe the metric name and
/// go with it. promlet never stores them, but series loaded from elsewhere may carry them.
fn drop_name_labels(l: &mut Labels) {
    l.remove(METRIC_NAME);
    l.remove("__type__");
    l.remove("__unit__");
}

fn has_name_labels(l: &Labels) -> bool {
    l.get(METRIC_NAME).is_some() || l.get("__type__").is_some() || l.get("__unit__").is_some()
}

/// One selector's fetched data: series with stale markers kept (instant selectors need them).
struct Fetched {
    series: Vec<(Rc<Labels>, Vec<Sample>)>,
    /// The same samples without stale markers, for range selectors (None: there were none).
    clean: Vec<Option<Vec<Sample>>>,
    /// Per series: where the last instant lookup, range start and range end landed. Steps
    /// mostly move forward, so the next lookup starts there instead of binary-searching
    /// (which costs a cache miss per probe on big series).
    cursors: Vec<[Cell<usize>; 3]>,
    /// Native histogram samples per series (parallel to `series`; empty vectors, which do not
    /// allocate, for float-only series). Only the in-memory test store has any.
    hist: Vec<Vec<HistogramSample>>,
    /// Per series: the metric name does not look like a counter's (for rate()/increase()'s
    /// info annotation), decided once per query instead of once per step.
    not_counter: Vec<bool>,
}

/// Adds histogram series to fetched float series: a series with both joins its float entry,
/// one with histograms only gets an entry without floats. Both inputs are sorted by labels.
fn merge_histogram_series(
    series: &mut Vec<(Rc<Labels>, Vec<Sample>)>,
    clean: &mut Vec<Option<Vec<Sample>>>,
    hist: &mut Vec<Vec<HistogramSample>>,
    hs: Vec<crate::tsdb::HistogramSeries>,
) {
    hist.resize_with(series.len(), Vec::new);
    for h in hs {
        match series.binary_search_by(|(l, _)| (**l).cmp(&h.labels)) {
            Ok(i) => hist[i] = h.samples,
            Err(i) => {
                series.insert(i, (Rc::new(h.labels), Vec::new()));
                clean.insert(i, None);
                hist.insert(i, h.samples);
            }
        }
    }
}

/// Index of the first sample newer than `t` (like `partition_point(|s| s.t <= t)`), starting
/// from the cursor when time moved forward.
fn seek(samples: &[Sample], cursor: &Cell<usize>, t: i64) -> usize {
    let mut i = cursor.get().min(samples.len());
    if i > 0 && samples[i - 1].t > t {
        i = samples.partition_point(|s| s.t <= t);
    } else {
        let mut walked = 0;
        while i < samples.len() && samples[i].t <= t {
            i += 1;
            walked += 1;
            if walked == 32 {
                i += samples[i..].partition_point(|s| s.t <= t);
                break;
            }
        }
    }
    cursor.set(i);
    i
}

struct Evaluator<'a> {
    query: &'a str,
    start: i64,
    end: i64,
    opts: &'a EngineOpts,
    /// Fetched data per selector node, looked up by address at every step.
    data: HashMap<*const VectorSelector, Fetched, AddrHash>,
    annos: Annotations,
    deadline: Instant,
    ticks: u32,
    /// Aggregation groups by (aggregation node, input label-set address); the input Rc is kept
    /// so the address stays valid. See [`Evaluator::group_of`].
    group_cache: HashMap<GroupCacheKey, (Rc<Labels>, Rc<Labels>), AddrHash>,
    /// Canonical group label sets per aggregation node, by a hash of their pairs (the
    /// candidates are compared pair by pair), so a known group costs no label set built.
    group_canon: HashMap<(*const Expr, u64), Vec<Rc<Labels>>, AddrHash>,
    /// The query evaluates some node at more than one time (a range query or a subquery):
    /// only then does `group_cache` save more than it costs.
    repeats: bool,
}

/// A borrowed view of one range-vector series, whatever produced it.
struct RangeView<'x> {
    labels: &'x Rc<Labels>,
    points: &'x [Sample],
    hpoints: &'x [HistogramSample],
    drop_name: bool,
    /// See [`Fetched::not_counter`].
    not_counter: bool,
}

impl<'a> Evaluator<'a> {
    fn new(
        q: &dyn Querier,
        query: &'a str,
        expr: &'a Expr,
        start: i64,
        end: i64,
        _step: i64,
        opts: &'a EngineOpts,
    ) -> Result<Evaluator<'a>, EvalError> {
        let mut windows: HashMap<*const VectorSelector, (i64, i64, &VectorSelector)> =
            HashMap::new();
        collect_windows(expr, start, end, start, end, opts, &mut windows);
        let mut data = HashMap::default();
        // Everything a query reads is held in memory at once, so the sample limit applies to
        // the sum of what the selectors fetch.
        let mut loaded = 0usize;
        for (k, (mint, maxt, vs)) in windows {
            let got: Vec<SeriesSamples> = q.select(&vs.matchers, mint, maxt);
            loaded += got.iter().map(|s| s.samples.len()).sum::<usize>();
            if loaded > opts.max_samples {
                return Err(EvalError::TooManySamples);
            }
            let mut series = Vec::with_capacity(got.len());
            let mut clean = Vec::with_capacity(got.len());
            for s in got {
                // A stale-free copy only where the series has stale markers.
                clean.push(s.samples.iter().any(|p| is_stale_nan(p.v)).then(|| {
                    s.samples
                        .iter()
                        .copied()
                        .filter(|p| !is_stale_nan(p.v))
                        .collect()
                }));
                series.push((Rc::new(s.labels), s.samples));
            }
            let mut hist: Vec<Vec<HistogramSample>> = Vec::new();
            let hs = q.select_histograms(&vs.matchers, mint, maxt);
            if !hs.is_empty() {
                loaded += hs.iter().map(|s| s.samples.len()).sum::<usize>();
                if loaded > opts.max_samples {
                    return Err(EvalError::TooManySamples);
                }
                merge_histogram_series(&mut series, &mut clean, &mut hist, hs);
            }
            let cursors = (0..series.len()).map(|_| Default::default()).collect();
            let not_counter = series.iter().map(|(l, _)| not_counter_name(l)).collect();
            data.insert(
                k,
                Fetched {
                    series,
                    clean,
                    cursors,
                    hist,
                    not_counter,
                },
            );
        }
        Ok(Evaluator {
            query,
            start,
            end,
            opts,
            data,
            annos: Annotations::default(),
            deadline: Instant::now() + opts.timeout,
            ticks: 0,
            group_cache: HashMap::default(),
            group_canon: HashMap::default(),
            repeats: start != end,
        })
    }

    fn pos(&self, span: Span) -> String {
        let before = &self.query[..span.start.min(self.query.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
        format!("({line}:{col})")
    }

    fn warn(&mut self, msg: String, span: Span) {
        let s = format!("PromQL warning: {msg} {}", self.pos(span));
        if !self.annos.warnings.contains(&s) {
            self.annos.warnings.push(s);
        }
    }

    fn info(&mut self, msg: String, span: Span) {
        let s = format!("PromQL info: {msg} {}", self.pos(span));
        if !self.annos.infos.contains(&s) {
            self.annos.infos.push(s);
        }
    }

    fn check_time(&mut self) -> Result<(), EvalError> {
        self.ticks += 1;
        if self.ticks % 256 == 0 && Instant::now() > self.deadline {
            return Err(EvalError::Timeout);
        }
        Ok(())
    }

    fn at_time(&self, at: &Option<AtModifier>, t: i64) -> i64 {
        match at {
            None => t,
            Some(AtModifier::Time(x)) => *x,
            Some(AtModifier::Start) => self.start,
            Some(AtModifier::End) => self.end,
        }
    }

    fn eval(&mut self, e: &Expr, t: i64) -> Result<Value, EvalError> {
        let v = self.eval_node(e, t)?;
        if self.opts.delayed_name_removal {
            return Ok(v);
        }
        // Immediate name removal: every node hands on vectors with names already dropped.
        match v {
            Value::Vector(v) => Ok(Value::Vector(finish_vector(v)?)),
            other => Ok(other),
        }
    }

    fn eval_node(&mut self, e: &Expr, t: i64) -> Result<Value, EvalError> {
        self.check_time()?;
        match e {
            Expr::Number(v, _) => Ok(Value::Scalar(*v)),
            Expr::Str(s, _) => Ok(Value::Str(s.clone())),
            Expr::Paren(inner, _) => self.eval(inner, t),
            Expr::Vector(vs) => Ok(Value::Vector(self.select_instant(vs, t, false))),
            Expr::Matrix { vs, range, .. } => {
                let views = self.select_range(vs, *range, t)?;
                Ok(Value::Matrix(
                    views
                        .into_iter()
                        .map(|v| Series {
                            labels: v.labels.clone(),
                            points: v.points.to_vec(),
                            hpoints: v.hpoints.to_vec(),
                            drop_name: false,
                        })
                        .collect(),
                ))
            }
            Expr::Subquery { .. } => Ok(Value::Matrix(self.eval_subquery(e, t)?)),
            Expr::Neg(inner, _) => match self.eval(inner, t)? {
                Value::Scalar(v) => Ok(Value::Scalar(-v)),
                Value::Vector(mut vs) => {
                    for s in vs.iter_mut() {
                        s.v = -s.v;
                        if let Some(h) = s.h.as_mut() {
                            Arc::make_mut(h).mul(-1.0);
                        }
                        s.drop_name = true;
                    }
                    Ok(Value::Vector(vs))
                }
                _ => exec_err("unary minus on unexpected type"),
            },
            Expr::Binary {
                op,
                lhs,
                rhs,
                return_bool,
                matching,
                ..
            } => self.eval_binary(*op, lhs, rhs, *return_bool, matching.as_ref(), t),
            Expr::Aggregate {
                op,
                expr,
                param,
                grouping,
                without,
                span,
                ..
            } => self.eval_aggregate(*op, expr, param.as_deref(), grouping, *without, *span, t),
            Expr::Call { func, args, span } => self.eval_call(func, args, *span, t),
        }
    }

    /// The newest non-stale sample of each series within the lookback window.
    fn select_instant(&self, vs: &VectorSelector, t: i64, keep_ts: bool) -> Vec<VecSample> {
        let Some(f) = self.data.get(&(vs as *const _)) else {
            return vec![];
        };
        // Saturating: offsets and `@` times come from the query text.
        let ref_t = self.at_time(&vs.at, t).saturating_sub(vs.offset);
        let mint = ref_t.saturating_sub(self.opts.lookback_delta);
        let mut out = Vec::new();
        for (i, ((labels, samples), cur)) in f.series.iter().zip(&f.cursors).enumerate() {
            let idx = seek(samples, &cur[0], ref_t);
            if let Some(hs) = f.hist.get(i).filter(|h| !h.is_empty()) {
                // A series with histograms: the newer of the latest float and histogram.
                let hi = hs.partition_point(|p| p.t <= ref_t);
                let newest_float = idx.checked_sub(1).map(|j| samples[j].t);
                if let Some(hp) = hi.checked_sub(1).map(|j| &hs[j]) {
                    if newest_float.is_none_or(|ft| ft < hp.t) {
                        if hp.t > mint && !is_stale_nan(hp.h.sum) {
                            out.push(VecSample {
                                labels: labels.clone(),
                                v: if keep_ts { hp.t as f64 / 1000.0 } else { 0.0 },
                                h: (!keep_ts).then(|| hp.h.clone()),
                                drop_name: false,
                            });
                        }
                        continue;
                    }
                }
            }
            if idx == 0 {
                continue;
            }
            let s = samples[idx - 1];
            if s.t <= mint || is_stale_nan(s.v) {
                continue;
            }
            out.push(VecSample {
                labels: labels.clone(),
                v: if keep_ts { s.t as f64 / 1000.0 } else { s.v },
                h: None,
                drop_name: false,
            });
        }
        out
    }

    /// Samples of each series in (ref - range, ref], stale markers left out.
    fn select_range(
        &self,
        vs: &VectorSelector,
        range: i64,
        t: i64,
    ) -> Result<Vec<RangeView<'_>>, EvalError> {
        let Some(f) = self.data.get(&(vs as *const _)) else {
            return Ok(vec![]);
        };
        let ref_t = self.at_time(&vs.at, t).saturating_sub(vs.offset);
        let mint = ref_t.saturating_sub(range);
        let mut out = Vec::new();
        let mut total = 0;
        for (i, (((labels, raw), clean), cur)) in
            f.series.iter().zip(&f.clean).zip(&f.cursors).enumerate()
        {
            let samples: &[Sample] = clean.as_deref().unwrap_or(raw);
            let lo = seek(samples, &cur[1], mint);
            let hi = seek(samples, &cur[2], ref_t);
            let hpoints = match f.hist.get(i) {
                Some(hs) if !hs.is_empty() => {
                    let a = hs.partition_point(|p| p.t <= mint);
                    let b = hs.partition_point(|p| p.t <= ref_t);
                    &hs[a..b]
                }
                _ => &[],
            };
            if lo >= hi && hpoints.is_empty() {
                continue;
            }
            total += hi.saturating_sub(lo) + hpoints.len();
            out.push(RangeView {
                labels,
                points: &samples[lo..hi.max(lo)],
                hpoints,
                drop_name: false,
                not_counter: f.not_counter[i],
            });
        }
        if total > self.opts.max_samples {
            return Err(EvalError::TooManySamples);
        }
        Ok(out)
    }

    fn eval_subquery(&mut self, e: &Expr, t: i64) -> Result<Vec<Series>, EvalError> {
        let Expr::Subquery {
            expr,
            range,
            step,
            offset,
            at,
            ..
        } = e
        else {
            return Ok(vec![]);
        };
        let step = step.unwrap_or(self.opts.default_subquery_step);
        self.repeats = true;
        let ref_t = self.at_time(at, t).saturating_sub(*offset);
        let lo = ref_t.saturating_sub(*range);
        // First step: the smallest multiple of `step` strictly after the range start.
        let mut ts = lo.div_euclid(step) * step;
        if ts <= lo {
            ts += step;
        }
        let mut by_labels: HashMap<Rc<Labels>, usize> = HashMap::new();
        let mut out: Vec<Series> = Vec::new();
        // Stored histogram -> its copy with the counter-reset hint cleared (see
        // subquery_histogram); keeps a sample repeated over steps one shared value.
        let mut hint_cache: Vec<(Arc<FloatHistogram>, Arc<FloatHistogram>)> = Vec::new();
        let mut total = 0usize;
        while ts <= ref_t {
            match self.eval(expr, ts)? {
                Value::Scalar(v) => {
                    if out.is_empty() {
                        out.push(Series {
                            labels: Rc::new(Labels::new()),
                            points: vec![],
                            hpoints: Vec::new(),
                            drop_name: false,
                        });
                    }
                    out[0].points.push(Sample { t: ts, v });
                }
                Value::Vector(vs) => {
                    for s in vs {
                        let i = *by_labels.entry(s.labels.clone()).or_insert_with(|| {
                            out.push(Series {
                                labels: s.labels.clone(),
                                points: vec![],
                                hpoints: Vec::new(),
                                drop_name: s.drop_name,
                            });
                            out.len() - 1
                        });
                        match s.h {
                            None => out[i].points.push(Sample { t: ts, v: s.v }),
                            Some(h) => {
                                let h = subquery_histogram(h, &mut hint_cache);
                                out[i].hpoints.push(HistogramSample { t: ts, h });
                            }
                        }
                        out[i].drop_name |= s.drop_name;
                    }
                }
                _ => return exec_err("subquery over unexpected type"),
            }
            total += 1;
            if total * out.len().max(1) > self.opts.max_samples {
                return Err(EvalError::TooManySamples);
            }
            let Some(next) = ts.checked_add(step) else {
                break;
            };
            ts = next;
        }
        Ok(out)
    }

    /// The output label set of the group `l` falls into for the aggregation `node`. Group
    /// label sets are canonical (one Rc per content), so groups can be told apart by address
    /// and outputs keep the same label allocation from step to step. Input label sets shared
    /// with fetched data are remembered by address, which skips building the key every step.
    fn group_of(
        &mut self,
        node: *const Expr,
        l: &Rc<Labels>,
        grouping: &[String],
        without: bool,
    ) -> Rc<Labels> {
        // Only label sets that outlive this step (held by the fetched data too) are cached,
        // so the cache is bounded by the number of fetched series; an instant query visits
        // each once, so it caches nothing.
        let shared = self.repeats && Rc::strong_count(l) > 1;
        if shared {
            if let Some((_, g)) = self.group_cache.get(&(node, Rc::as_ptr(l))) {
                return g.clone();
            }
        }
        // The group's pairs, in label order: a filter of `l`'s (sorted, unique, non-empty).
        let pairs = || {
            l.iter().filter(move |(n, _)| {
                let listed = grouping.iter().any(|g| g == n);
                if without {
                    *n != METRIC_NAME && !listed
                } else {
                    listed
                }
            })
        };
        let mut h = std::hash::DefaultHasher::new();
        for (n, v) in pairs() {
            std::hash::Hash::hash(n, &mut h);
            std::hash::Hash::hash(v, &mut h);
        }
        let same = self
            .group_canon
            .entry((node, std::hash::Hasher::finish(&h)))
            .or_default();
        let g = match same.iter().find(|c| c.iter().eq(pairs())) {
            Some(g) => g.clone(),
            None => {
                let g = Rc::new(group_labels(l, grouping, without));
                same.push(g.clone());
                g
            }
        };
        if shared {
            self.group_cache
                .insert((node, Rc::as_ptr(l)), (l.clone(), g.clone()));
        }
        g
    }

    fn scalar_arg(&mut self, e: &Expr, t: i64) -> Result<f64, EvalError> {
        match self.eval(e, t)? {
            Value::Scalar(v) => Ok(v),
            _ => exec_err("expected scalar"),
        }
    }

    fn vector_arg(&mut self, e: &Expr, t: i64) -> Result<Vec<VecSample>, EvalError> {
        match self.eval(e, t)? {
            Value::Vector(v) => Ok(v),
            _ => exec_err("expected instant vector"),
        }
    }

    fn string_arg(&mut self, e: &Expr, t: i64) -> Result<String, EvalError> {
        match self.eval(e, t)? {
            Value::Str(v) => Ok(v),
            _ => exec_err("expected string"),
        }
    }

    // ---- binary operators ----

    /// The info Prometheus gives when a binary operation dropped samples because it is not
    /// defined for their types (`dropped` = (left is histogram, right is histogram)).
    fn incompatible_info(&mut self, op: BinOp, dropped: Option<(bool, bool)>, span: Span) {
        let Some((lh, rh)) = dropped else {
            return;
        };
        let kind = |h: bool| if h { "histogram" } else { "float" };
        let op = op.as_str();
        self.info(
            format!(
                "incompatible sample types encountered for binary operator {}: {} {op} {}",
                go_quote(op),
                kind(lh),
                kind(rh)
            ),
            span,
        );
    }

    fn eval_binary(
        &mut self,
        op: BinOp,
        lhs: &Expr,
        rhs: &Expr,
        return_bool: bool,
        matching: Option<&VectorMatching>,
        t: i64,
    ) -> Result<Value, EvalError> {
        let l = self.eval(lhs, t)?;
        let r = self.eval(rhs, t)?;
        match (l, r) {
            (Value::Scalar(a), Value::Scalar(b)) => {
                let (v, keep) = scalar_op(op, a, b);
                Ok(Value::Scalar(if op.is_comparison() {
                    if keep {
                        1.0
                    } else {
                        0.0
                    }
                } else {
                    v
                }))
            }
            (Value::Vector(vs), Value::Scalar(s)) => {
                let mut dropped = None;
                let out = vector_scalar(op, vs, s, false, return_bool, &mut dropped);
                self.incompatible_info(op, dropped, lhs.span());
                Ok(Value::Vector(out))
            }
            (Value::Scalar(s), Value::Vector(vs)) => {
                let mut dropped = None;
                let out = vector_scalar(op, vs, s, true, return_bool, &mut dropped);
                self.incompatible_info(op, dropped, lhs.span());
                Ok(Value::Vector(out))
            }
            (Value::Vector(a), Value::Vector(b)) => {
                let default = VectorMatching {
                    card: Cardinality::OneToOne,
                    labels: vec![],
                    on: false,
                    include: vec![],
                    explicit: false,
                };
                let m = matching.unwrap_or(&default);
                match op {
                    BinOp::And => Ok(Value::Vector(set_and(a, b, m, false))),
                    BinOp::Unless => Ok(Value::Vector(set_and(a, b, m, true))),
                    BinOp::Or => Ok(Value::Vector(set_or(a, b, m))),
                    _ => {
                        let mut dropped = None;
                        let out = vector_vector(op, a, b, m, return_bool, &mut dropped)?;
                        self.incompatible_info(op, dropped, lhs.span());
                        Ok(Value::Vector(out))
                    }
                }
            }
            _ => exec_err("binary operation on unexpected types"),
        }
    }

    // ---- aggregation ----

    #[allow(clippy::too_many_arguments)]
    fn eval_aggregate(
        &mut self,
        op: AggOp,
        expr: &Expr,
        param: Option<&Expr>,
        grouping: &[String],
        without: bool,
        span: Span,
        t: i64,
    ) -> Result<Value, EvalError> {
        let mut k_param = 0.0;
        let mut label_param = String::new();
        if let Some(p) = param {
            match op {
                AggOp::CountValues => {
                    label_param = self.string_arg(p, t)?;
                    if !valid_label_name(&label_param) {
                        return exec_err(format!("invalid label name {}", go_quote(&label_param)));
                    }
                }
                _ => k_param = self.scalar_arg(p, t)?,
            }
        }
        let input = self.vector_arg(expr, t)?;
        if matches!(op, AggOp::Topk | AggOp::Bottomk) {
            if k_param.is_nan() {
                return exec_err("Parameter value is NaN");
            }
            if k_param.abs() >= 9.223372036854776e18 {
                return exec_err(format!("Scalar value {k_param} overflows int64"));
            }
        }
        if op == AggOp::Quantile && !(0.0..=1.0).contains(&k_param) {
            let p = param.map(|p| p.span()).unwrap_or(span);
            self.warn(
                format!(
                    "quantile value should be between 0 and 1, got {}",
                    go_float(k_param)
                ),
                p,
            );
        }
        // Group the input, preserving first-appearance order.
        let node = expr as *const Expr;
        let mut by_group: HashMap<*const Labels, usize, AddrHash> = HashMap::default();
        let mut groups: Vec<(Rc<Labels>, Vec<usize>)> = Vec::new();
        for (i, s) in input.iter().enumerate() {
            let g = self.group_of(node, &s.labels, grouping, without);
            let gi = *by_group.entry(Rc::as_ptr(&g)).or_insert_with(|| {
                groups.push((g.clone(), vec![]));
                groups.len() - 1
            });
            groups[gi].1.push(i);
        }
        let mut out = Vec::new();
        // One pass decides whether groups need the histogram handling at all.
        let any_hist = input.iter().any(|s| s.h.is_some());
        for (key, mut members) in groups {
            let drop_name = members.iter().any(|&i| input[i].drop_name);
            let n_hist = if any_hist {
                members.iter().filter(|&&i| input[i].h.is_some()).count()
            } else {
                0
            };
            if n_hist > 0 && !matches!(op, AggOp::Count | AggOp::Group | AggOp::CountValues) {
                if matches!(op, AggOp::Sum | AggOp::Avg) {
                    if n_hist < members.len() {
                        self.warn(
                            "encountered a mix of histograms and floats for aggregation"
                                .to_string(),
                            span,
                        );
                        continue;
                    }
                    let hs: Vec<&FloatHistogram> = members
                        .iter()
                        .filter_map(|&i| input[i].h.as_deref())
                        .collect();
                    match aggregate_histograms(op == AggOp::Avg, &hs) {
                        Ok(h) => out.push(VecSample {
                            labels: key,
                            v: 0.0,
                            h: Some(Arc::new(h)),
                            drop_name,
                        }),
                        Err(e) => self.warn(e.to_string(), span),
                    }
                    continue;
                }
                // The other aggregations are defined on floats only: histograms are ignored.
                members.retain(|&i| input[i].h.is_none());
                self.info(
                    format!("ignored histogram in {} aggregation", op.as_str()),
                    span,
                );
                if members.is_empty() {
                    continue;
                }
            }
            let vals = || members.iter().map(|&i| input[i].v);
            let v = match op {
                AggOp::Sum
                | AggOp::Avg
                | AggOp::Count
                | AggOp::Group
                | AggOp::Min
                | AggOp::Max
                | AggOp::Stdvar
                | AggOp::Stddev
                | AggOp::Quantile => {
                    let vals: Vec<f64> = vals().collect();
                    float_aggregate(op, k_param, &vals)
                }
                AggOp::Topk | AggOp::Bottomk => {
                    let k = k_param as i64;
                    if k < 1 {
                        continue;
                    }
                    let mut sel: Vec<&VecSample> = members.iter().map(|&i| &input[i]).collect();
                    let top = op == AggOp::Topk;
                    crate::sort::sort_by(&mut sel, |a, b| {
                        use std::cmp::Ordering::*;
                        match (a.v.is_nan(), b.v.is_nan()) {
                            (true, true) => Equal,
                            (true, false) => Greater,
                            (false, true) => Less,
                            _ if top => b.v.partial_cmp(&a.v).unwrap_or(Equal),
                            _ => a.v.partial_cmp(&b.v).unwrap_or(Equal),
                        }
                    });
                    sel.truncate(k.min(sel.len() as i64) as usize);
                    out.extend(sel.into_iter().cloned());
                    continue;
                }
                AggOp::CountValues => {
                    let mut counts: Vec<(String, f64)> = Vec::new();
                    for &i in &members {
                        // A histogram counts under its Go string form.
                        let s = match &input[i].h {
                            Some(h) => h.go_string(),
                            None => go_float(input[i].v),
                        };
                        match counts.iter_mut().find(|(k, _)| *k == s) {
                            Some(c) => c.1 += 1.0,
                            None => counts.push((s, 1.0)),
                        }
                    }
                    for (val, c) in counts {
                        let mut l = (*key).clone();
                        l.set(label_param.clone(), val);
                        out.push(VecSample {
                            labels: Rc::new(l),
                            v: c,
                            h: None,
                            drop_name: false,
                        });
                    }
                    continue;
                }
            };
            out.push(VecSample {
                labels: key,
                v,
                h: None,
                drop_name,
            });
        }
        if op == AggOp::CountValues && out.len() > 1 {
            // Counts are per output label set: when the value label overwrites a grouping
            // label, groups that now look alike are one (Prometheus groups count_values by
            // its output labels).
            let mut merged: Vec<VecSample> = Vec::with_capacity(out.len());
            let mut at: HashMap<Rc<Labels>, usize> = HashMap::new();
            for s in out {
                match at.get(&s.labels) {
                    Some(&i) => merged[i].v += s.v,
                    None => {
                        at.insert(s.labels.clone(), merged.len());
                        merged.push(s);
                    }
                }
            }
            out = merged;
        }
        Ok(Value::Vector(out))
    }

    // ---- functions ----

    fn eval_call(
        &mut self,
        func: &'static super::functions::Function,
        args: &[Expr],
        span: Span,
        t: i64,
    ) -> Result<Value, EvalError> {
        let name = func.name;
        match name {
            "time" => return Ok(Value::Scalar(t as f64 / 1000.0)),
            "pi" => return Ok(Value::Scalar(std::f64::consts::PI)),
            "vector" => {
                let v = self.scalar_arg(&args[0], t)?;
                return Ok(Value::Vector(vec![VecSample {
                    labels: Rc::new(Labels::new()),
                    v,
                    h: None,
                    drop_name: false,
                }]));
            }
            "scalar" => {
                // Histograms are ignored: one float sample gives its value.
                let v = self.vector_arg(&args[0], t)?;
                let mut floats = v.iter().filter(|s| s.h.is_none());
                return Ok(Value::Scalar(match (floats.next(), floats.next()) {
                    (Some(s), None) => s.v,
                    _ => f64::NAN,
                }));
            }
            _ => {}
        }
        // The parser resolved the function: no lookup by name per step.
        if func.args.first() == Some(&ValueType::Matrix)
            || (func.args.len() == 2 && func.args[1] == ValueType::Matrix)
        {
            return self.eval_range_fn(name, args, span, t);
        }
        match name {
            "timestamp" => {
                let mut a = &args[0];
                while let Expr::Paren(inner, _) = a {
                    a = inner;
                }
                let mut v = match a {
                    Expr::Vector(vs) => self.select_instant(vs, t, true),
                    _ => {
                        let mut v = self.vector_arg(a, t)?;
                        for s in v.iter_mut() {
                            s.v = t as f64 / 1000.0;
                            s.h = None;
                        }
                        v
                    }
                };
                for s in v.iter_mut() {
                    s.drop_name = true;
                }
                Ok(Value::Vector(v))
            }
            "absent" => {
                let v = self.vector_arg(&args[0], t)?;
                if !v.is_empty() {
                    return Ok(Value::Vector(vec![]));
                }
                Ok(Value::Vector(vec![VecSample {
                    labels: Rc::new(absent_labels(&args[0])),
                    v: 1.0,
                    h: None,
                    drop_name: false,
                }]))
            }
            "sort" | "sort_desc" => {
                let mut v = self.vector_arg(&args[0], t)?;
                v.retain(|s| s.h.is_none());
                let desc = name == "sort_desc";
                crate::sort::sort_by(&mut v, |a, b| {
                    use std::cmp::Ordering::*;
                    match (a.v.is_nan(), b.v.is_nan()) {
                        (true, true) => Equal,
                        (true, false) => Greater,
                        (false, true) => Less,
                        _ if desc => b.v.partial_cmp(&a.v).unwrap_or(Equal),
                        _ => a.v.partial_cmp(&b.v).unwrap_or(Equal),
                    }
                });
                Ok(Value::Vector(v))
            }
            "clamp" | "clamp_min" | "clamp_max" => {
                let mut v = self.vector_arg(&args[0], t)?;
                let (lo, hi) = match name {
                    "clamp" => (self.scalar_arg(&args[1], t)?, self.scalar_arg(&args[2], t)?),
                    "clamp_min" => (self.scalar_arg(&args[1], t)?, f64::INFINITY),
                    _ => (f64::NEG_INFINITY, self.scalar_arg(&args[1], t)?),
                };
                if name == "clamp" && hi < lo {
                    return Ok(Value::Vector(vec![]));
                }
                // Float functions ignore native histograms.
                v.retain(|s| s.h.is_none());
                for s in v.iter_mut() {
                    s.v = if lo.is_nan() || hi.is_nan() {
                        f64::NAN
                    } else {
                        go_max(lo, go_min(hi, s.v))
                    };
                    s.drop_name = true;
                }
                Ok(Value::Vector(v))
            }
            "round" => {
                let mut v = self.vector_arg(&args[0], t)?;
                let to = if args.len() > 1 {
                    self.scalar_arg(&args[1], t)?
                } else {
                    1.0
                };
                let inv = 1.0 / to;
                // Float functions ignore native histograms.
                v.retain(|s| s.h.is_none());
                for s in v.iter_mut() {
                    s.v = (s.v * inv + 0.5).floor() / inv;
                    s.drop_name = true;
                }
                Ok(Value::Vector(v))
            }
            "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour"
            | "minute" | "month" | "year" => {
                let mut v = if args.is_empty() {
                    vec![VecSample {
                        labels: Rc::new(Labels::new()),
                        v: t as f64 / 1000.0,
                        h: None,
                        drop_name: false,
                    }]
                } else {
                    self.vector_arg(&args[0], t)?
                };
                // Float functions ignore native histograms.
                v.retain(|s| s.h.is_none());
                for s in v.iter_mut() {
                    s.v = date_part(name, s.v);
                    s.drop_name = true;
                }
                Ok(Value::Vector(v))
            }
            "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
            | "histogram_stdvar" => {
                // Defined on native histograms only: float samples are ignored.
                let mut v = self.vector_arg(&args[0], t)?;
                v.retain(|s| s.h.is_some());
                for s in v.iter_mut() {
                    let h = s.h.take().expect("retained histograms");
                    s.v = match name {
                        "histogram_count" => h.count,
                        "histogram_sum" => h.sum,
                        "histogram_avg" => h.sum / h.count,
                        "histogram_stddev" => histogram_variance(&h).sqrt(),
                        _ => histogram_variance(&h),
                    };
                    s.drop_name = true;
                }
                Ok(Value::Vector(v))
            }
            "histogram_quantile" => {
                let q = self.scalar_arg(&args[0], t)?;
                let mut v = self.vector_arg(&args[1], t)?;
                let native = self.take_native(&mut v, &args[1]);
                let Value::Vector(mut out) = self.histogram_quantile(q, v, args, span)? else {
                    return exec_err("histogram_quantile produced an unexpected value type");
                };
                for (labels, h) in native {
                    let r = h.quantile(q);
                    if h.sum.is_nan() && h.count > 0.0 {
                        let outcome = if r.is_nan() {
                            "is NaN"
                        } else {
                            "is skewed higher"
                        };
                        self.info(
                            format!(
                                "input to histogram_quantile has NaN observations, result {outcome} for metric name {}",
                                go_quote(labels.name().unwrap_or(""))
                            ),
                            args[1].span(),
                        );
                    }
                    out.push(VecSample {
                        labels,
                        v: r,
                        h: None,
                        drop_name: true,
                    });
                }
                Ok(Value::Vector(out))
            }
            "histogram_fraction" => {
                let lower = self.scalar_arg(&args[0], t)?;
                let upper = self.scalar_arg(&args[1], t)?;
                let mut v = self.vector_arg(&args[2], t)?;
                let native = self.take_native(&mut v, &args[2]);
                let groups = self.bucket_groups(&v, &args[2]);
                let mut out: Vec<VecSample> = groups
                    .into_iter()
                    .map(|(labels, mut buckets)| VecSample {
                        labels: Rc::new(labels),
                        v: fx::bucket_fraction(lower, upper, &mut buckets),
                        h: None,
                        drop_name: true,
                    })
                    .collect();
                for (labels, h) in native {
                    if h.sum.is_nan() && h.count > 0.0 {
                        self.info(
                            format!(
                                "input to histogram_fraction has NaN observations, which are excluded from all fractions for metric name {}",
                                go_quote(labels.name().unwrap_or(""))
                            ),
                            args[2].span(),
                        );
                    }
                    out.push(VecSample {
                        labels,
                        v: h.fraction(lower, upper),
                        h: None,
                        drop_name: true,
                    });
                }
                Ok(Value::Vector(out))
            }
            "label_replace" => {
                let mut v = self.vector_arg(&args[0], t)?;
                let dst = self.string_arg(&args[1], t)?;
                let repl = self.string_arg(&args[2], t)?;
                let src = self.string_arg(&args[3], t)?;
                let re_s = self.string_arg(&args[4], t)?;
                let re = regex_lite::Regex::new(&format!("^(?s:{re_s})$")).map_err(|e| {
                    EvalError::Execution(format!(
                        "invalid regular expression in label_replace(): {re_s}: {e}"
                    ))
                })?;
                if !valid_label_name(&dst) {
                    return exec_err(format!(
                        "invalid destination label name in label_replace(): {dst}"
                    ));
                }
                for s in v.iter_mut() {
                    let src_v = s.labels.get(&src).unwrap_or("").to_string();
                    if let Some(caps) = re.captures(&src_v) {
                        let mut res = String::new();
                        expand(&caps, &repl, &mut res);
                        Rc::make_mut(&mut s.labels).set(dst.clone(), res);
                        if dst == METRIC_NAME {
                            s.drop_name = false;
                        }
                    }
                }
                Ok(Value::Vector(v))
            }
            "label_join" => {
                let mut v = self.vector_arg(&args[0], t)?;
                let dst = self.string_arg(&args[1], t)?;
                let sep = self.string_arg(&args[2], t)?;
                let mut srcs = Vec::new();
                for a in &args[3..] {
                    srcs.push(self.string_arg(a, t)?);
                }
                if !valid_label_name(&dst) {
                    return exec_err(format!(
                        "invalid destination label name in label_join(): {dst}"
                    ));
                }
                for s in v.iter_mut() {
                    let joined = srcs
                        .iter()
                        .map(|n| s.labels.get(n).unwrap_or(""))
                        .collect::<Vec<_>>()
                        .join(&sep);
                    Rc::make_mut(&mut s.labels).set(dst.clone(), joined);
                    if dst == METRIC_NAME {
                        s.drop_name = false;
                    }
                }
                Ok(Value::Vector(v))
            }
            _ => {
                // Plain element-wise math.
                let mut v = self.vector_arg(&args[0], t)?;
                // Float functions ignore native histograms.
                v.retain(|s| s.h.is_none());
                for s in v.iter_mut() {
                    s.v = fx::simple(name, s.v);
                    s.drop_name = true;
                }
                Ok(Value::Vector(v))
            }
        }
    }

    /// Takes the native histograms out of `v` for histogram_quantile/fraction. A native
    /// histogram whose labels equal a classic histogram's (its buckets without `le`) makes
    /// both ambiguous: both are dropped with a warning, as in Prometheus.
    fn take_native(
        &mut self,
        v: &mut Vec<VecSample>,
        arg: &Expr,
    ) -> Vec<(Rc<Labels>, Arc<FloatHistogram>)> {
        let mut native = take_histograms(v);
        if native.is_empty() || v.is_empty() {
            return native;
        }
        let mut clash: Vec<Labels> = Vec::new();
        native.retain(|(l, _)| {
            let hit = v.iter().any(|s| {
                s.labels.get("le").is_some()
                    && s.labels.len() == l.len() + 1
                    && l.iter().all(|(n, x)| s.labels.get(n) == Some(x))
            });
            if hit {
                clash.push((**l).clone());
            }
            !hit
        });
        for l in clash {
            v.retain(|s| {
                !(s.labels.len() == l.len() + 1
                    && l.iter().all(|(n, x)| s.labels.get(n) == Some(x)))
            });
            self.warn(
                format!(
                    "vector contains a mix of classic and native histograms for metric name {}",
                    go_quote(l.name().unwrap_or(""))
                ),
                arg.span(),
            );
        }
        native
    }

    /// Classic-histogram buckets grouped by series identity without `le` (the name stays in the
    /// key until evaluation ends, as in Prometheus). Malformed `le` values are warned about.
    fn bucket_groups(&mut self, v: &[VecSample], arg: &Expr) -> Vec<(Labels, Vec<Bucket>)> {
        let mut keys: HashMap<Labels, usize> = HashMap::new();
        let mut groups: Vec<(Labels, Vec<Bucket>)> = Vec::new();
        for s in v {
            let le = s.labels.get("le").unwrap_or("");
            let upper = parse_go_float(le);
            let Some(upper) = upper else {
                let name = s.labels.name().unwrap_or("").to_string();
                self.warn(
                    format!(
                        "bucket label \"le\" is missing or has a malformed value of {} for metric name {}",
                        go_quote(le),
                        go_quote(&name)
                    ),
                    arg.span(),
                );
                continue;
            };
            // Grouped with the (to be dropped) name, so two histograms differing only in
            // name collide at the end, as in Prometheus.
            let mut key = (*s.labels).clone();
            key.remove("le");
            let gi = *keys.entry(key.clone()).or_insert_with(|| {
                groups.push((key, vec![]));
                groups.len() - 1
            });
            groups[gi].1.push(Bucket { upper, count: s.v });
        }
        groups
    }

    fn histogram_quantile(
        &mut self,
        q: f64,
        v: Vec<VecSample>,
        args: &[Expr],
        span: Span,
    ) -> Result<Value, EvalError> {
        if !(0.0..=1.0).contains(&q) {
            self.warn(
                format!(
                    "quantile value should be between 0 and 1, got {}",
                    go_float(q)
                ),
                args[0].span(),
            );
        }
        let groups = self.bucket_groups(&v, &args[1]);
        let _ = span;
        let mut out = Vec::new();
        for (labels, mut buckets) in groups {
            let name_hint = labels.name().unwrap_or("").to_string();
            let (val, forced) = fx::bucket_quantile(q, &mut buckets);
            if forced {
                self.info(
                    format!("input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {}", go_quote(&name_hint)),
                    args[1].span(),
                );
            }
            out.push(VecSample {
                labels: Rc::new(labels),
                v: val,
                h: None,
                drop_name: true,
            });
        }
        Ok(Value::Vector(out))
    }

    fn eval_range_fn(
        &mut self,
        name: &str,
        args: &[Expr],
        span: Span,
        t: i64,
    ) -> Result<Value, EvalError> {
        let (marg_idx, scalar) = match name {
            "quantile_over_time" => (1, Some(self.scalar_arg(&args[0], t)?)),
            "predict_linear" => (0, Some(self.scalar_arg(&args[1], t)?)),
            _ => (0, None),
        };
        let marg = &args[marg_idx];
        let mut inner = marg;
        while let Expr::Paren(e, _) = inner {
            inner = e;
        }
        // Range boundaries of the argument, for extrapolation.
        let (range, offset, at) = match inner {
            Expr::Matrix { vs, range, .. } => (*range, vs.offset, vs.at),
            Expr::Subquery {
                range, offset, at, ..
            } => (*range, *offset, *at),
            _ => return exec_err("expected range vector"),
        };
        let eval_t = self.at_time(&at, t);
        let range_end = eval_t.saturating_sub(offset);
        let range_start = range_end.saturating_sub(range);
        let absent = name == "absent_over_time";
        // (is a warning, message) from native histogram handling.
        let mut annos: Vec<(bool, String)> = Vec::new();
        let (out, non_counter) = match inner {
            Expr::Matrix { vs, range, .. } => {
                // Borrowed straight from the fetched samples: no copy per step.
                let views = self.select_range(vs, *range, t)?;
                if absent {
                    (
                        vec![],
                        views
                            .iter()
                            .any(|v| !v.points.is_empty() || !v.hpoints.is_empty())
                            .then(String::new),
                    )
                } else {
                    apply_range_fn(name, &views, scalar, range_start, range_end, t, &mut annos)?
                }
            }
            _ => {
                let owned = self.eval_subquery(inner, t)?;
                let views: Vec<RangeView<'_>> = owned
                    .iter()
                    .map(|s| RangeView {
                        labels: &s.labels,
                        points: &s.points,
                        hpoints: &s.hpoints,
                        drop_name: s.drop_name,
                        not_counter: not_counter_name(&s.labels),
                    })
                    .collect();
                if absent {
                    (
                        vec![],
                        views
                            .iter()
                            .any(|v| !v.points.is_empty() || !v.hpoints.is_empty())
                            .then(String::new),
                    )
                } else {
                    apply_range_fn(name, &views, scalar, range_start, range_end, t, &mut annos)?
                }
            }
        };
        if absent {
            // For absent_over_time, `non_counter` carries "some sample exists".
            if non_counter.is_some() {
                return Ok(Value::Vector(vec![]));
            }
            return Ok(Value::Vector(vec![VecSample {
                labels: Rc::new(absent_labels(marg)),
                v: 1.0,
                h: None,
                drop_name: false,
            }]));
        }
        for (warn, msg) in annos {
            if warn {
                self.warn(msg, marg.span());
            } else {
                self.info(msg, marg.span());
            }
        }
        if let Some(n) = non_counter {
            self.info(
                format!("metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {}", go_quote(&n)),
                marg.span(),
            );
        }
        if name == "quantile_over_time" {
            let q = scalar.unwrap_or(f64::NAN);
            if !(0.0..=1.0).contains(&q) {
                self.warn(
                    format!(
                        "quantile value should be between 0 and 1, got {}",
                        go_float(q)
                    ),
                    args[0].span(),
                );
            }
        }
        let _ = span;
        Ok(Value::Vector(out))
    }
}

/// The value of a float aggregation (not topk/bottomk/count_values) over one group's values,
/// in input order.
fn float_aggregate(op: AggOp, k_param: f64, vals: &[f64]) -> f64 {
    let it = || vals.iter().copied();
    match op {
        AggOp::Sum => {
            let (s, c) = it().fold((0.0, 0.0), |(s, c), v| fx::kahan_inc(v, s, c));
            s + c
        }
        AggOp::Avg => fx::mean(it()),
        AggOp::Count => vals.len() as f64,
        AggOp::Group => 1.0,
        AggOp::Min => it().fold(f64::NAN, |m, v| if m > v || m.is_nan() { v } else { m }),
        AggOp::Max => it().fold(f64::NAN, |m, v| if m < v || m.is_nan() { v } else { m }),
        AggOp::Stdvar => welford(it()),
        AggOp::Stddev => welford(it()).sqrt(),
        AggOp::Quantile => fx::quantile(k_param, &mut vals.to_vec()),
        AggOp::Topk | AggOp::Bottomk | AggOp::CountValues => f64::NAN,
    }
}

/// The range-vector functions [`apply_range_fn`] evaluates on floats.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeFn {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Deriv,
    PredictLinear,
    Avg,
    Sum,
    Count,
    Min,
    Max,
    Stddev,
    Stdvar,
    Last,
    Present,
    Quantile,
    Changes,
    Resets,
    Unsupported,
}

impl RangeFn {
    fn from_name(name: &str) -> RangeFn {
        match name {
            "rate" => RangeFn::Rate,
            "increase" => RangeFn::Increase,
            "delta" => RangeFn::Delta,
            "irate" => RangeFn::Irate,
            "idelta" => RangeFn::Idelta,
            "deriv" => RangeFn::Deriv,
            "predict_linear" => RangeFn::PredictLinear,
            "avg_over_time" => RangeFn::Avg,
            "sum_over_time" => RangeFn::Sum,
            "count_over_time" => RangeFn::Count,
            "min_over_time" => RangeFn::Min,
            "max_over_time" => RangeFn::Max,
            "stddev_over_time" => RangeFn::Stddev,
            "stdvar_over_time" => RangeFn::Stdvar,
            "last_over_time" => RangeFn::Last,
            "present_over_time" => RangeFn::Present,
            "quantile_over_time" => RangeFn::Quantile,
            "changes" => RangeFn::Changes,
            "resets" => RangeFn::Resets,
            _ => RangeFn::Unsupported,
        }
    }
}

/// Applies a range-vector function to each series; also returns a metric name that does not
/// look like a counter, for rate()/increase()'s annotation.
fn apply_range_fn(
    name: &str,
    views: &[RangeView<'_>],
    scalar: Option<f64>,
    range_start: i64,
    range_end: i64,
    t: i64,
    annos: &mut Vec<(bool, String)>,
) -> Result<(Vec<VecSample>, Option<String>), EvalError> {
    let mut out = Vec::with_capacity(views.len());
    let mut non_counter: Option<String> = None;
    // Resolved once per call, not once per series.
    let func = RangeFn::from_name(name);
    let keeps_name = func == RangeFn::Last;
    for s in views {
        let p = s.points;
        if !s.hpoints.is_empty() {
            let (v, h) = match histogram_range_fn(name, s, range_start, range_end, annos) {
                HistRange::Float(v) => (v, None),
                HistRange::Histogram(h) => (0.0, Some(Arc::new(h))),
                HistRange::Keep(h) => (0.0, Some(h)),
                HistRange::Nothing => continue,
                HistRange::FloatsOnly => (f64::NAN, None),
            };
            if h.is_some() || !v.is_nan() {
                out.push(VecSample {
                    labels: s.labels.clone(),
                    v,
                    h,
                    drop_name: !keeps_name || s.drop_name,
                });
                continue;
            }
        }
        if p.is_empty() {
            continue;
        }
        if matches!(func, RangeFn::Rate | RangeFn::Increase)
            && s.not_counter
            && non_counter.is_none()
        {
            non_counter = metric_name(s.labels).map(str::to_string);
        }
        let v = float_range_value(func, name, p, scalar, range_start, range_end, t)?;
        if let Some(v) = v {
            out.push(VecSample {
                labels: s.labels.clone(),
                v,
                h: None,
                drop_name: !keeps_name || s.drop_name,
            });
        }
    }
    Ok((out, non_counter))
}

/// A range-vector function's value for one series' float samples in the window (not empty,
/// stale markers left out); None when it has no value (too few points).
fn float_range_value(
    func: RangeFn,
    name: &str,
    p: &[Sample],
    scalar: Option<f64>,
    range_start: i64,
    range_end: i64,
    t: i64,
) -> Result<Option<f64>, EvalError> {
    let vals = || p.iter().map(|x| x.v);
    Ok(match func {
        RangeFn::Rate | RangeFn::Increase => {
            fx::extrapolated_rate(p, range_start, range_end, true, func == RangeFn::Rate)
        }
        RangeFn::Delta => fx::extrapolated_rate(p, range_start, range_end, false, false),
        RangeFn::Irate | RangeFn::Idelta => {
            if p.len() < 2 {
                None
            } else {
                let (a, b) = (p[p.len() - 2], p[p.len() - 1]);
                let mut d = b.v - a.v;
                if func == RangeFn::Irate {
                    if b.v < a.v {
                        d = b.v;
                    }
                    let dt = (b.t - a.t) as f64 / 1000.0;
                    if dt == 0.0 {
                        None
                    } else {
                        Some(d / dt)
                    }
                } else {
                    Some(d)
                }
            }
        }
        RangeFn::Deriv => {
            if p.len() < 2 {
                None
            } else {
                Some(fx::linear_regression(p, p[0].t).0)
            }
        }
        RangeFn::PredictLinear => {
            if p.len() < 2 {
                None
            } else {
                // The intercept is at the evaluation time, even under `@`.
                let (slope, icpt) = fx::linear_regression(p, t);
                Some(slope * scalar.unwrap_or(0.0) + icpt)
            }
        }
        RangeFn::Avg => Some(fx::mean(vals())),
        RangeFn::Sum => {
            let (s, c) = vals().fold((0.0, 0.0), |(s, c), v| fx::kahan_inc(v, s, c));
            Some(s + c)
        }
        RangeFn::Count => Some(p.len() as f64),
        RangeFn::Min => Some(vals().fold(f64::NAN, |m, v| if m > v || m.is_nan() { v } else { m })),
        RangeFn::Max => Some(vals().fold(f64::NAN, |m, v| if m < v || m.is_nan() { v } else { m })),
        RangeFn::Stddev => Some(fx::variance(vals()).sqrt()),
        RangeFn::Stdvar => Some(fx::variance(vals())),
        RangeFn::Last => Some(p[p.len() - 1].v),
        RangeFn::Present => Some(1.0),
        RangeFn::Quantile => Some(fx::quantile(
            scalar.unwrap_or(f64::NAN),
            &mut vals().collect::<Vec<_>>(),
        )),
        RangeFn::Changes => Some(
            p.windows(2)
                .filter(|w| !(w[0].v == w[1].v || (w[0].v.is_nan() && w[1].v.is_nan())))
                .count() as f64,
        ),
        RangeFn::Resets => Some(p.windows(2).filter(|w| w[1].v < w[0].v).count() as f64),
        RangeFn::Unsupported => return exec_err(format!("function {name} is not supported")),
    })
}

/// What a range function gives for a series holding native histograms.
enum HistRange {
    Float(f64),
    Histogram(FloatHistogram),
    /// A stored histogram, unchanged (last_over_time).
    Keep(Arc<FloatHistogram>),
    /// No output for this series (mixed floats and histograms, too few points, ...).
    Nothing,
    /// The function is defined on floats only: evaluate it over the series' floats.
    FloatsOnly,
}

fn histogram_range_fn(
    name: &str,
    s: &RangeView<'_>,
    range_start: i64,
    range_end: i64,
    annos: &mut Vec<(bool, String)>,
) -> HistRange {
    use crate::histogram::CounterResetHint::Gauge;
    let (p, hp) = (s.points, s.hpoints);
    let only_hist = p.is_empty();
    let metric = || go_quote(metric_name(s.labels).unwrap_or(""));
    let mut note = |warn: bool, msg: String| {
        if !annos.iter().any(|(_, m)| *m == msg) {
            annos.push((warn, msg));
        }
    };
    let gauges = |hs: &[HistogramSample]| {
        hs.iter()
            .filter(|x| x.h.counter_reset_hint == Gauge)
            .count()
    };
    // Exponential and custom buckets cannot be subtracted from each other.
    let kinds_mixed = |hs: &[HistogramSample]| {
        hs.iter()
            .any(|x| x.h.uses_custom_buckets() != hs[0].h.uses_custom_buckets())
    };
    let checked: &[HistogramSample] = match name {
        "rate" | "increase" | "delta" if only_hist => hp,
        "irate" | "idelta" if hp.len() >= 2 => &hp[hp.len() - 2..],
        _ => &[],
    };
    if !checked.is_empty() && kinds_mixed(checked) {
        note(
            true,
            format!(
                "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {}",
                metric()
            ),
        );
        return HistRange::Nothing;
    }
    match name {
        "rate" | "increase" if only_hist && gauges(hp) > 0 => {
            note(
                true,
                format!(
                    "this native histogram metric is not a counter: {}",
                    metric()
                ),
            );
        }
        "delta" if only_hist && gauges(&[hp[0].clone(), hp[hp.len() - 1].clone()]) < 2 => {
            note(
                true,
                format!("this native histogram metric is not a gauge: {}", metric()),
            );
        }
        // irate/idelta look at the last two samples only, when both are histograms.
        "irate" | "idelta"
            if hp.len() >= 2 && p.last().is_none_or(|f| f.t < hp[hp.len() - 2].t) =>
        {
            let tail = &hp[hp.len() - 2..];
            if name == "irate" && gauges(tail) > 0 {
                note(
                    true,
                    format!(
                        "this native histogram metric is not a counter: {}",
                        metric()
                    ),
                );
            }
            if name == "idelta" && gauges(tail) < 2 {
                note(
                    true,
                    format!("this native histogram metric is not a gauge: {}", metric()),
                );
            }
        }
        _ => {}
    }
    match name {
        "changes" | "resets" => {
            // Floats and histograms in time order; a switch between the two counts too.
            let mut n = 0usize;
            let (mut i, mut j) = (0, 0);
            let mut prev: Option<Result<f64, &FloatHistogram>> = None;
            while i < p.len() || j < hp.len() {
                let cur = if j >= hp.len() || (i < p.len() && p[i].t < hp[j].t) {
                    i += 1;
                    Ok(p[i - 1].v)
                } else {
                    j += 1;
                    Err(&*hp[j - 1].h)
                };
                if let Some(prev) = prev {
                    n += match (prev, cur) {
                        (Ok(a), Ok(b)) if name == "changes" => {
                            !(a == b || (a.is_nan() && b.is_nan())) as usize
                        }
                        (Ok(a), Ok(b)) => (b < a) as usize,
                        (Err(a), Err(b)) if name == "changes" => !same_histogram(a, b) as usize,
                        (Err(a), Err(b)) => b.detect_reset(a) as usize,
                        _ => 1,
                    };
                }
                prev = Some(cur);
            }
            HistRange::Float(n as f64)
        }
        "irate" | "idelta" if !only_hist => {
            // Only the last two samples matter: floats if both are floats.
            let newest_floats = p.len() >= 2 && p[p.len() - 2].t > hp[hp.len() - 1].t;
            if newest_floats {
                return HistRange::FloatsOnly;
            }
            let last_two_hist = hp.len() >= 2 && hp[hp.len() - 2].t > p[p.len() - 1].t;
            if !last_two_hist {
                note(
                    true,
                    format!(
                        "encountered a mix of histograms and floats for metric name {}",
                        metric()
                    ),
                );
                return HistRange::Nothing;
            }
            histogram_instant_delta(name == "irate", hp)
        }
        "count_over_time" => HistRange::Float((p.len() + hp.len()) as f64),
        "present_over_time" => HistRange::Float(1.0),
        "last_over_time" => match (p.last(), hp.last()) {
            (Some(f), Some(h)) if f.t > h.t => HistRange::Float(f.v),
            (_, Some(h)) => HistRange::Keep(h.h.clone()),
            _ => HistRange::Nothing,
        },
        _ if !only_hist => match name {
            // Mixed floats and histograms: Prometheus gives nothing (with a warning).
            "rate" | "increase" | "delta" | "irate" | "idelta" | "sum_over_time"
            | "avg_over_time" => {
                note(
                    true,
                    format!(
                        "encountered a mix of histograms and floats for metric name {}",
                        metric()
                    ),
                );
                HistRange::Nothing
            }
            _ => {
                note(false, format!("ignored histograms in a range containing both floats and histograms for metric name {}", metric()));
                HistRange::FloatsOnly
            }
        },
        "rate" | "increase" | "delta" => {
            match histogram_rate(hp, range_start, range_end, name != "delta", name == "rate") {
                Some(h) => HistRange::Histogram(h),
                None => HistRange::Nothing,
            }
        }
        "irate" | "idelta" => histogram_instant_delta(name == "irate", hp),
        "sum_over_time" | "avg_over_time" => {
            let hs: Vec<&FloatHistogram> = hp.iter().map(|x| &*x.h).collect();
            match aggregate_histograms(name == "avg_over_time", &hs) {
                Ok(h) => HistRange::Histogram(h),
                Err(_) => HistRange::Nothing,
            }
        }
        // Float-only functions over a series of histograms: nothing to compute.
        _ => HistRange::Nothing,
    }
}

/// irate/idelta over the last two histograms: their difference (for irate, the last one alone
/// after a reset), per second for irate; a gauge histogram.
fn histogram_instant_delta(is_rate: bool, hp: &[HistogramSample]) -> HistRange {
    if hp.len() < 2 {
        return HistRange::Nothing;
    }
    let (a, b) = (&hp[hp.len() - 2], &hp[hp.len() - 1]);
    let mut h = (*b.h).clone();
    if (!is_rate || !b.h.detect_reset(&a.h)) && h.sub(&a.h).is_err() {
        return HistRange::Nothing;
    }
    h.counter_reset_hint = crate::histogram::CounterResetHint::Gauge;
    h.compact();
    if is_rate {
        let dt = b.t - a.t;
        if dt == 0 {
            return HistRange::Nothing;
        }
        h.div(dt as f64 / 1000.0);
    }
    HistRange::Histogram(h)
}

/// Exact equality of two histograms (bucket layout included), ignoring the counter-reset
/// hint, as `changes()` compares them.
fn same_histogram(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    a.schema == b.schema
        && a.count.to_bits() == b.count.to_bits()
        && a.sum.to_bits() == b.sum.to_bits()
        && a.zero_threshold == b.zero_threshold
        && a.zero_count.to_bits() == b.zero_count.to_bits()
        && a.custom_values == b.custom_values
        && a.positive() == b.positive()
        && a.negative() == b.negative()
}

/// rate/increase/delta of native histograms: last minus first, corrected for counter resets
/// (each reset adds the histogram before it back), in the coarsest schema seen, extrapolated
/// to the range boundaries like floats (the zero point from the observation count). The
/// result is a gauge histogram.
fn histogram_rate(
    hp: &[HistogramSample],
    range_start: i64,
    range_end: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<FloatHistogram> {
    if hp.len() < 2 {
        return None;
    }
    let (first, last) = (&hp[0], &hp[hp.len() - 1]);
    if first.h.uses_custom_buckets() != last.h.uses_custom_buckets() {
        return None;
    }
    let mut min_schema = first.h.schema.min(last.h.schema);
    if is_counter {
        for x in &hp[1..hp.len() - 1] {
            if x.h.uses_custom_buckets() != first.h.uses_custom_buckets() {
                return None;
            }
            min_schema = min_schema.min(x.h.schema);
        }
    }
    let mut h = (*last.h).clone();
    h.reduce_schema(min_schema);
    h.sub(&first.h).ok()?;
    if is_counter {
        let mut prev = &first.h;
        for x in &hp[1..] {
            if x.h.detect_reset(prev) {
                h.add(prev).ok()?;
            }
            prev = &x.h;
        }
    }
    h.counter_reset_hint = crate::histogram::CounterResetHint::Gauge;
    h.compact();
    let zero_ratio =
        (is_counter && h.count > 0.0 && first.h.count >= 0.0).then(|| first.h.count / h.count);
    let factor = fx::extrapolation_factor(
        (first.t, last.t, hp.len()),
        (range_start, range_end),
        is_counter,
        zero_ratio,
        is_rate,
    );
    h.mul(factor);
    Some(h)
}

/// The series has a metric name that does not end like a counter's.
fn not_counter_name(l: &Labels) -> bool {
    metric_name(l).is_some_and(not_counter_metric)
}

/// A metric name without a counter's suffix (rate()/increase()'s info annotation).
fn not_counter_metric(n: &str) -> bool {
    !["_total", "_sum", "_count", "_bucket"]
        .iter()
        .any(|suf| n.ends_with(suf))
}

/// The metric name; `__name__` is almost always the first label, so look there first.
fn metric_name(l: &Labels) -> Option<&str> {
    match l.iter().next() {
        Some((n, v)) if n == METRIC_NAME => Some(v),
        _ => l.name(),
    }
}

fn welford(vals: impl Iterator<Item = f64>) -> f64 {
    let (mut n, mut mean, mut m2) = (0.0, 0.0, 0.0);
    for v in vals {
        n += 1.0;
        let d = v - mean;
        mean += d / n;
        m2 += d * (v - mean);
    }
    m2 / n
}

/// Go's math.Max/Min NaN semantics are not needed here (NaN bounds are handled by the caller).
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// Result of applying `op`; for comparisons, `.1` says whether the comparison holds.
fn scalar_op(op: BinOp, a: f64, b: f64) -> (f64, bool) {
    use BinOp::*;
    match op {
        Add => (a + b, true),
        Sub => (a - b, true),
        Mul => (a * b, true),
        Div => (a / b, true),
        Mod => (a % b, true),
        Pow => (a.powf(b), true),
        Atan2 => (a.atan2(b), true),
        Eql => (a, a == b),
        Neq => (a, a != b),
        Gtr => (a, a > b),
        Lss => (a, a < b),
        Gte => (a, a >= b),
        Lte => (a, a <= b),
        And | Or | Unless => (f64::NAN, false),
    }
}

/// `dropped` records a sample dropped for an undefined histogram operation (for the info).
fn vector_scalar(
    op: BinOp,
    vs: Vec<VecSample>,
    s: f64,
    scalar_left: bool,
    return_bool: bool,
    dropped: &mut Option<(bool, bool)>,
) -> Vec<VecSample> {
    let mut out = Vec::with_capacity(vs.len());
    for mut x in vs {
        if let Some(h) = x.h.as_mut() {
            // Histograms scale by a float (`h * s`, `s * h`, `h / s`); every other operator,
            // comparisons included, is undefined and drops the sample.
            match op {
                BinOp::Mul => Arc::make_mut(h).mul(s),
                BinOp::Div if !scalar_left => Arc::make_mut(h).div(s),
                _ => {
                    *dropped = Some((!scalar_left, scalar_left));
                    continue;
                }
            }
            x.drop_name = true;
            out.push(x);
            continue;
        }
        let (l, r) = if scalar_left { (s, x.v) } else { (x.v, s) };
        let (mut v, keep) = scalar_op(op, l, r);
        if op.is_comparison() {
            if return_bool {
                v = if keep { 1.0 } else { 0.0 };
                x.drop_name = true;
            } else if !keep {
                continue;
            } else {
                v = x.v;
            }
        } else {
            x.drop_name = true;
        }
        x.v = v;
        out.push(x);
    }
    out
}

/// A binary operation where at least one side is a histogram: `Some((result, keep))`, where
/// `keep` is the outcome of `==`/`!=`; None when the operation is undefined for these types
/// (Prometheus drops such samples).
fn histogram_binop(
    op: BinOp,
    hl: &Option<Arc<FloatHistogram>>,
    hr: &Option<Arc<FloatHistogram>>,
    fl: f64,
    fr: f64,
) -> Option<(Option<Arc<FloatHistogram>>, bool)> {
    match (hl, hr) {
        (Some(a), Some(b)) => match op {
            BinOp::Add | BinOp::Sub => {
                let mut r = (**a).clone();
                let res = if op == BinOp::Add { r.add(b) } else { r.sub(b) };
                res.ok()?;
                r.compact();
                Some((Some(Arc::new(r)), true))
            }
            BinOp::Eql => Some((None, histograms_equal(a, b))),
            BinOp::Neq => Some((None, !histograms_equal(a, b))),
            _ => None,
        },
        (Some(a), None) => match op {
            BinOp::Mul | BinOp::Div => {
                let mut r = (**a).clone();
                if op == BinOp::Mul {
                    r.mul(fr)
                } else {
                    r.div(fr)
                }
                Some((Some(Arc::new(r)), true))
            }
            _ => None,
        },
        (None, Some(b)) => match op {
            BinOp::Mul => {
                let mut r = (**b).clone();
                r.mul(fl);
                Some((Some(Arc::new(r)), true))
            }
            _ => None,
        },
        (None, None) => None,
    }
}

/// A histogram as a subquery step sees it. Its stored counter-reset hint describes the change
/// from its predecessor in storage, not from the previous subquery step (which may be many
/// samples earlier), so resets are detected again from the values: the hint is cleared. A
/// sample repeated over steps keeps one copy, so comparing it with itself finds no reset.
fn subquery_histogram(
    h: Arc<FloatHistogram>,
    cache: &mut Vec<(Arc<FloatHistogram>, Arc<FloatHistogram>)>,
) -> Arc<FloatHistogram> {
    use crate::histogram::CounterResetHint::{NotReset, Reset, Unknown};
    if !matches!(h.counter_reset_hint, Reset | NotReset) {
        return h;
    }
    if let Some((_, copy)) = cache.iter().find(|(orig, _)| Arc::ptr_eq(orig, &h)) {
        return copy.clone();
    }
    let mut copy = (*h).clone();
    copy.counter_reset_hint = Unknown;
    let copy = Arc::new(copy);
    if cache.len() >= 64 {
        cache.remove(0);
    }
    cache.push((h, copy.clone()));
    copy
}

/// Removes the native histogram samples from `v`, returning them with their labels.
fn take_histograms(v: &mut Vec<VecSample>) -> Vec<(Rc<Labels>, Arc<FloatHistogram>)> {
    if v.iter().all(|s| s.h.is_none()) {
        return Vec::new();
    }
    let mut out = Vec::new();
    v.retain_mut(|s| match s.h.take() {
        Some(h) => {
            out.push((s.labels.clone(), h));
            false
        }
        None => true,
    });
    out
}

/// Estimated variance of the observations: each bucket's population sits at its geometric
/// mean (exponential buckets), at zero (zero bucket) or at its midpoint (custom buckets).
fn histogram_variance(h: &FloatHistogram) -> f64 {
    let mean = h.sum / h.count;
    let (mut var, mut c) = (0.0, 0.0);
    for b in h.all_buckets() {
        if b.count == 0.0 {
            continue;
        }
        let val = if h.uses_custom_buckets() {
            (b.upper + b.lower) / 2.0
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let g = (b.upper * b.lower).sqrt();
            if b.upper < 0.0 {
                -g
            } else {
                g
            }
        };
        let d = val - mean;
        (var, c) = fx::kahan_inc(b.count * d * d, var, c);
    }
    (var + c) / h.count
}

/// `sum` or (incrementally, as Prometheus does) `avg` of histograms.
fn aggregate_histograms(
    avg: bool,
    hs: &[&FloatHistogram],
) -> Result<FloatHistogram, crate::histogram::HistogramError> {
    let mut acc = hs[0].clone();
    for (n, h) in hs.iter().enumerate().skip(1) {
        if avg {
            // mean += h/n - mean/n, with n counting this sample.
            let count = (n + 1) as f64;
            let mut left = (*h).clone();
            left.div(count);
            let mut right = acc.clone();
            right.div(count);
            left.sub(&right)?;
            acc.add(&left)?;
        } else {
            acc.add(h)?;
        }
    }
    acc.compact();
    Ok(acc)
}

/// Histogram equality as PromQL's `==` sees it: same layout after dropping empty buckets,
/// same counts; the counter-reset hint does not count.
fn histograms_equal(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    let (mut a, mut b) = (a.clone(), b.clone());
    a.compact();
    b.compact();
    a.counter_reset_hint = b.counter_reset_hint;
    a == b
}

/// The label subset two samples must agree on to match.
fn signature(l: &Labels, m: &VectorMatching) -> Labels {
    if m.on {
        Labels::from_pairs(
            l.iter()
                .filter(|(n, _)| m.labels.iter().any(|x| x == n))
                .map(|(n, v)| (n.to_string(), v.to_string())),
        )
    } else {
        Labels::from_pairs(
            l.iter()
                .filter(|(n, _)| *n != METRIC_NAME && !m.labels.iter().any(|x| x == n))
                .map(|(n, v)| (n.to_string(), v.to_string())),
        )
    }
}

fn set_and(
    a: Vec<VecSample>,
    b: Vec<VecSample>,
    m: &VectorMatching,
    unless: bool,
) -> Vec<VecSample> {
    let sigs: std::collections::HashSet<Labels> =
        b.iter().map(|s| signature(&s.labels, m)).collect();
    a.into_iter()
        .filter(|s| sigs.contains(&signature(&s.labels, m)) != unless)
        .collect()
}

fn set_or(a: Vec<VecSample>, b: Vec<VecSample>, m: &VectorMatching) -> Vec<VecSample> {
    let sigs: std::collections::HashSet<Labels> =
        a.iter().map(|s| signature(&s.labels, m)).collect();
    let mut out = a;
    out.extend(
        b.into_iter()
            .filter(|s| !sigs.contains(&signature(&s.labels, m))),
    );
    out
}

/// Labels in Go's `labels.Labels.String()` form: `{a="b", c="d"}`.
pub fn go_labels(l: &Labels) -> String {
    let inner: Vec<String> = l
        .iter()
        .map(|(n, v)| format!("{n}={}", go_quote(v)))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

fn vector_vector(
    op: BinOp,
    lhs: Vec<VecSample>,
    rhs: Vec<VecSample>,
    m: &VectorMatching,
    return_bool: bool,
    dropped: &mut Option<(bool, bool)>,
) -> Result<Vec<VecSample>, EvalError> {
    let swapped = m.card == Cardinality::OneToMany;
    let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
    // Index the "one" side by signature; duplicates there are an error.
    let mut one_sigs: HashMap<Labels, usize> = HashMap::new();
    for (i, s) in one.iter().enumerate() {
        let sig = signature(&s.labels, m);
        if let Some(&j) = one_sigs.get(&sig) {
            let side = if swapped { "left" } else { "right" };
            return exec_err(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                go_labels(&sig),
                go_labels(&one[j].labels),
                go_labels(&s.labels)
            ));
        }
        one_sigs.insert(sig, i);
    }
    let mut out = Vec::new();
    let mut matched_one: HashMap<Labels, ()> = HashMap::new();
    let mut inserted: std::collections::HashSet<Labels> = std::collections::HashSet::new();
    for ls in &many {
        let sig = signature(&ls.labels, m);
        let Some(&ri) = one_sigs.get(&sig) else {
            continue;
        };
        let rs = &one[ri];
        // Checked before comparison filtering, so the error does not depend on values.
        if m.card == Cardinality::OneToOne && matched_one.insert(sig.clone(), ()).is_some() {
            return exec_err("multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)");
        }
        let (fl, fr) = if swapped { (rs.v, ls.v) } else { (ls.v, rs.v) };
        let mut h = None;
        let (mut v, keep) = if ls.h.is_some() || rs.h.is_some() {
            let (hl, hr) = if swapped {
                (&rs.h, &ls.h)
            } else {
                (&ls.h, &rs.h)
            };
            match histogram_binop(op, hl, hr, fl, fr) {
                Some((r, keep)) => {
                    h = r;
                    (0.0, keep)
                }
                None => {
                    *dropped = Some((hl.is_some(), hr.is_some()));
                    continue;
                }
            }
        } else {
            scalar_op(op, fl, fr)
        };
        if h.is_none() && op.is_comparison() && (ls.h.is_some() || rs.h.is_some()) {
            // `==`/`!=` between histograms keep the left one (or give 0/1 with `bool`).
            if return_bool {
                v = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                continue;
            } else {
                h = if swapped { rs.h.clone() } else { ls.h.clone() };
            }
        } else if op.is_comparison() {
            if return_bool {
                v = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                continue;
            }
        }
        // Result labels.
        let mut labels = (*ls.labels).clone();
        let drop = !op.is_comparison() || return_bool;
        if m.card == Cardinality::OneToOne {
            if m.on {
                labels = Labels::from_pairs(
                    ls.labels
                        .iter()
                        .filter(|(n, _)| m.labels.iter().any(|x| x == n))
                        .map(|(n, v)| (n.to_string(), v.to_string())),
                );
                if drop {
                    labels.remove(METRIC_NAME);
                }
            } else {
                for l in &m.labels {
                    labels.remove(l);
                }
            }
        }
        for l in &m.include {
            match rs.labels.get(l) {
                Some(v) => labels.set(l.clone(), v.to_string()),
                None => labels.remove(l),
            }
        }
        if m.card != Cardinality::OneToOne && !inserted.insert(labels.clone()) {
            return exec_err(
                "multiple matches for labels: grouping labels must ensure unique matches",
            );
        }
        let drop_name = if drop { true } else { ls.drop_name };
        out.push(VecSample {
            labels: Rc::new(labels),
            v,
            h,
            drop_name,
        });
    }
    Ok(out)
}

fn group_labels(l: &Labels, grouping: &[String], without: bool) -> Labels {
    if without {
        Labels::from_pairs(
            l.iter()
                .filter(|(n, _)| *n != METRIC_NAME && !grouping.iter().any(|g| g == n))
                .map(|(n, v)| (n.to_string(), v.to_string())),
        )
    } else {
        Labels::from_pairs(
            l.iter()
                .filter(|(n, _)| grouping.iter().any(|g| g == n))
                .map(|(n, v)| (n.to_string(), v.to_string())),
        )
    }
}

/// Labels `absent()` reports: the equality matchers of a plain selector argument.
fn absent_labels(e: &Expr) -> Labels {
    let mut e = e;
    loop {
        match e {
            Expr::Paren(inner, _) => e = inner,
            Expr::Subquery { .. } => return Labels::new(),
            _ => break,
        }
    }
    let vs = match e {
        Expr::Vector(vs) => vs,
        Expr::Matrix { vs, .. } => vs,
        _ => return Labels::new(),
    };
    // A label constrained by more than one matcher has no single value to report.
    let mut l = Labels::new();
    for m in &vs.matchers {
        if m.name == METRIC_NAME || m.op != crate::model::MatchOp::Equal {
            continue;
        }
        if vs.matchers.iter().filter(|o| o.name == m.name).count() == 1 {
            l.set(m.name.clone(), m.value.clone());
        }
    }
    l
}

/// `$1`, `${1}`, `$name` expansion as in Go's regexp.Expand.
fn expand(caps: &regex_lite::Captures<'_>, tmpl: &str, out: &mut String) {
    let b = tmpl.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            let c = tmpl[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
            continue;
        }
        if i + 1 < b.len() && b[i + 1] == b'$' {
            out.push('$');
            i += 2;
            continue;
        }
        let (name, next) = if i + 1 < b.len() && b[i + 1] == b'{' {
            match tmpl[i + 2..].find('}') {
                Some(e) => (&tmpl[i + 2..i + 2 + e], i + 3 + e),
                None => {
                    out.push('$');
                    i += 1;
                    continue;
                }
            }
        } else {
            let mut j = i + 1;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            (&tmpl[i + 1..j], j)
        };
        if name.is_empty() {
            out.push('$');
            i += 1;
            continue;
        }
        let val = match name.parse::<usize>() {
            Ok(n) => caps.get(n).map(|m| m.as_str()),
            Err(_) => caps.name(name).map(|m| m.as_str()),
        };
        out.push_str(val.unwrap_or(""));
        i = next;
    }
}

/// Any valid UTF-8 is a label name in Prometheus 3; our lexer marks invalid bytes with
/// private-use characters, which makes the name invalid.
fn valid_label_name(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(is_raw_byte_marker)
}

pub(crate) fn is_raw_byte_marker(c: char) -> bool {
    ('\u{10FF80}'..='\u{10FFFF}').contains(&c)
}

/// Go's `%q` quoting (raw-byte markers render as `\xNN`).
pub fn go_quote(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if is_raw_byte_marker(c) => {
                o.push_str(&format!("\\x{:02x}", c as u32 - 0x10FF00));
            }
            c if (c as u32) < 0x20 => o.push_str(&format!("\\x{:02x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`-like rendering used in label values and messages.
pub fn go_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// Parses a float the way Go's strconv.ParseFloat accepts `le` values.
pub fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "+inf" | "inf" | "infinity" | "+infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if t != s || t.is_empty() {
        return None;
    }
    t.parse::<f64>().ok()
}

/// Calendar fields of a Unix time in seconds (UTC).
fn date_part(name: &str, secs: f64) -> f64 {
    if !secs.is_finite() {
        return f64::NAN;
    }
    let s = secs.floor() as i64;
    let days = s.div_euclid(86_400);
    let sod = s.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mdays = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    match name {
        "day_of_month" => d as f64,
        "day_of_week" => (days + 4).rem_euclid(7) as f64,
        "day_of_year" => {
            let before: i64 = mdays[..(m - 1) as usize].iter().sum();
            (before + d) as f64
        }
        "days_in_month" => mdays[(m - 1) as usize] as f64,
        "hour" => (sod / 3600) as f64,
        "minute" => (sod % 3600 / 60) as f64,
        "month" => m as f64,
        "year" => y as f64,
        _ => f64::NAN,
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Computes each selector's fetch window over the whole query, following offsets, `@`,
/// ranges and subqueries (Prometheus's FindMinMaxTimes).
fn collect_windows<'e>(
    e: &'e Expr,
    lo: i64,
    hi: i64,
    qstart: i64,
    qend: i64,
    opts: &EngineOpts,
    out: &mut HashMap<*const VectorSelector, (i64, i64, &'e VectorSelector)>,
) {
    let at_of = |at: &Option<AtModifier>| match at {
        None => None,
        Some(AtModifier::Time(x)) => Some(*x),
        Some(AtModifier::Start) => Some(qstart),
        Some(AtModifier::End) => Some(qend),
    };
    let mut add = |vs: &'e VectorSelector, before: i64| {
        let (a, b) = match at_of(&vs.at) {
            Some(x) => (x, x),
            None => (lo, hi),
        };
        let mint = a
            .saturating_sub(vs.offset)
            .saturating_sub(before)
            .saturating_add(1);
        let maxt = b.saturating_sub(vs.offset);
        let ent = out.entry(vs as *const _).or_insert((mint, maxt, vs));
        ent.0 = ent.0.min(mint);
        ent.1 = ent.1.max(maxt);
    };
    match e {
        Expr::Vector(vs) => add(vs, opts.lookback_delta),
        Expr::Matrix { vs, range, .. } => add(vs, *range),
        Expr::Subquery {
            expr,
            range,
            offset,
            at,
            ..
        } => {
            let (a, b) = match at_of(at) {
                Some(x) => (x, x),
                None => (lo, hi),
            };
            collect_windows(
                expr,
                a.saturating_sub(*offset).saturating_sub(*range),
                b.saturating_sub(*offset),
                qstart,
                qend,
                opts,
                out,
            );
        }
        Expr::Paren(x, _) | Expr::Neg(x, _) => collect_windows(x, lo, hi, qstart, qend, opts, out),
        Expr::Binary { lhs, rhs, .. } => {
            collect_windows(lhs, lo, hi, qstart, qend, opts, out);
            collect_windows(rhs, lo, hi, qstart, qend, opts, out);
        }
        Expr::Aggregate { expr, param, .. } => {
            if let Some(p) = param {
                collect_windows(p, lo, hi, qstart, qend, opts, out);
            }
            collect_windows(expr, lo, hi, qstart, qend, opts, out);
        }
        Expr::Call { args, .. } => {
            for a in args {
                collect_windows(a, lo, hi, qstart, qend, opts, out);
            }
        }
        Expr::Number(..) | Expr::Str(..) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::stale_nan;
    use crate::promql::testing::MemStorage;
    use crate::tsdb::Appender;

    fn store(points: &[(i64, f64)]) -> MemStorage {
        let mut s = MemStorage::new();
        let l = Labels::from_pairs([("__name__", "x_total"), ("job", "a")]);
        for (t, v) in points {
            s.append(&l, *t, *v).unwrap();
        }
        s
    }

    fn instant(s: &MemStorage, q: &str, t: i64, opts: &EngineOpts) -> Result<Value, EvalError> {
        let e = crate::promql::parse(q).unwrap();
        instant_query(s, q, &e, t, opts).map(|r| r.value)
    }

    fn values(v: Value) -> Vec<f64> {
        match v {
            Value::Vector(v) => v.iter().map(|s| s.v).collect(),
            Value::Scalar(x) => vec![x],
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn instant_selector_honours_lookback_and_staleness() {
        let s = store(&[(0, 1.0), (60_000, 2.0), (120_000, stale_nan())]);
        let o = EngineOpts::default();
        assert_eq!(
            values(instant(&s, "x_total", 60_000, &o).unwrap()),
            vec![2.0]
        );
        // Stale marker hides the series at once.
        assert!(values(instant(&s, "x_total", 120_000, &o).unwrap()).is_empty());
        // Without the marker, the sample would be visible for 5 minutes, not at exactly 5m.
        let s = store(&[(0, 1.0)]);
        assert_eq!(
            values(instant(&s, "x_total", 299_999, &o).unwrap()),
            vec![1.0]
        );
        assert!(values(instant(&s, "x_total", 300_000, &o).unwrap()).is_empty());
        let short = EngineOpts {
            lookback_delta: 10_000,
            ..EngineOpts::default()
        };
        assert!(values(instant(&s, "x_total", 10_000, &short).unwrap()).is_empty());
    }

    /// The streamed plain-selector answer of a ring store: (labels, value) in order, or the
    /// error; `None` if the engine must answer.
    fn streamed(
        st: &crate::tsdb::Store,
        q: &str,
        t: i64,
        o: &EngineOpts,
    ) -> Option<Result<Vec<(Labels, u64)>, EvalError>> {
        let e = crate::promql::parse(q).unwrap();
        let mut got = Vec::new();
        let n = instant_selector_each(st, &e, t, o, &mut |pairs, v| {
            got.push((Labels::from_pairs(pairs.iter().copied()), v.to_bits()))
        })?;
        Some(n.map(|n| {
            assert_eq!(n, got.len());
            got
        }))
    }

    #[test]
    fn streamed_plain_selector_answers_as_the_engine_does() {
        let mut st = crate::tsdb::Store::new(crate::tsdb::Options::default());
        for i in 0..600i64 {
            for s in 0..5i64 {
                let l = Labels::from_pairs([
                    ("__name__", if s < 3 { "a_total" } else { "b" }.to_string()),
                    ("inst", format!("h{s}")),
                ]);
                // h1 stops at 200 with a stale marker; h2 stops at 300 without one.
                let v = match (s, i) {
                    (1, 200) => stale_nan(),
                    (1, 201..) | (2, 301..) => continue,
                    _ => (i * (s + 1)) as f64,
                };
                st.append(&l, i * 15_000 + s, v).unwrap();
            }
        }
        let queries = [
            "a_total",
            "(a_total)",
            "{__name__=~\"a_total|b\"}",
            "{__name__=~\".+\", inst!=\"h0\"}",
            "a_total offset 2m",
            "a_total @ 3000",
            "a_total @ 3000 offset -1m",
            "b{inst=\"h3\"}",
            "nothing_here",
        ];
        let opts = [
            EngineOpts::default(),
            EngineOpts {
                lookback_delta: 20_000,
                ..EngineOpts::default()
            },
        ];
        for t in [
            0, 14_999, 1_000_000, 3_000_000, 3_015_000, 4_500_000, 4_800_000, 9_000_000,
        ] {
            for o in &opts {
                for q in queries {
                    let e = crate::promql::parse(q).unwrap();
                    let want: Vec<(Labels, u64)> =
                        match instant_query(&st, q, &e, t, o).unwrap().value {
                            Value::Vector(v) => v
                                .iter()
                                .map(|s| ((*s.labels).clone(), s.v.to_bits()))
                                .collect(),
                            other => panic!("{other:?}"),
                        };
                    let got = streamed(&st, q, t, o).unwrap().unwrap();
                    assert_eq!(got, want, "{q} at {t}");
                }
            }
        }
        // Anything but a plain selector goes to the engine.
        for q in [
            "-a_total",
            "a_total[5m]",
            "sum(a_total)",
            "a_total + 1",
            "1",
        ] {
            assert!(streamed(&st, q, 0, &opts[0]).is_none(), "{q}");
        }
        // The sample limit counts result samples.
        let two = EngineOpts {
            max_samples: 2,
            ..EngineOpts::default()
        };
        assert!(matches!(
            streamed(&st, "a_total", 3_000_000, &two),
            Some(Err(EvalError::TooManySamples))
        ));
        assert_eq!(
            streamed(&st, "b", 3_000_000, &two).unwrap().unwrap().len(),
            2
        );
    }

    #[test]
    fn stores_that_may_hold_histograms_are_not_streamed() {
        let s = store(&[(0, 1.0)]);
        let e = crate::promql::parse("x_total").unwrap();
        let r = instant_selector_each(&s, &e, 0, &EngineOpts::default(), &mut |_, _| {
            panic!("called")
        });
        assert!(r.is_none());
    }

    /// Series for the streamed-aggregation tests in the ring store: counters with resets,
    /// series without `job` or `env`, one going stale, one with a stale marker mid-window,
    /// one that stops early, values that tie (for topk's order) and a NaN.
    fn ring_store() -> crate::tsdb::Store {
        let mut st = crate::tsdb::Store::new(crate::tsdb::Options::default());
        for i in 0..40i64 {
            let job = format!("j{}", i % 3);
            let inst = format!("h{i:02}");
            let mut pairs = vec![("__name__", "req_total"), ("instance", inst.as_str())];
            if i % 5 != 0 {
                pairs.push(("job", job.as_str()));
            }
            if i % 7 == 0 {
                pairs.push(("env", "prod"));
            }
            let l = Labels::from_pairs(pairs);
            let last = if i == 11 { 20 } else { 60 };
            let mut v = 0.0;
            for k in 0..last {
                v += ((i * 3 + k * 5) % 4) as f64;
                let val = if i == 13 && k == 57 {
                    stale_nan()
                } else if i == 17 && k == 59 {
                    f64::NAN
                } else if i % 9 == 0 && k == 40 {
                    // A counter reset.
                    v = 1.0;
                    v
                } else {
                    v
                };
                st.append(&l, k * 15_000, val).unwrap();
            }
            if i == 23 {
                st.append(&l, 60 * 15_000, stale_nan()).unwrap();
            }
        }
        st
    }

    /// An instant query's answer, by [`instant_query`] or (`general`) the general path only.
    fn debug_answer(
        q: &dyn Querier,
        query: &str,
        t: i64,
        opts: &EngineOpts,
        general: bool,
    ) -> String {
        let e = crate::promql::parse(query).unwrap();
        let r = if general {
            instant_query_engine(q, query, &e, t, opts)
        } else {
            instant_query(q, query, &e, t, opts)
        };
        match r {
            Ok(r) => format!("{:?} {:?}", r.value, r.annotations),
            Err(e) => format!("error {e:?}"),
        }
    }

    /// A range query's answer over 0..=20 min, as [`debug_answer`].
    fn debug_range(
        q: &dyn Querier,
        query: &str,
        step: i64,
        opts: &EngineOpts,
        general: bool,
    ) -> String {
        let e = crate::promql::parse(query).unwrap();
        let r = if general {
            range_query_engine(q, query, &e, 0, 1_200_000, step, opts)
        } else {
            range_query(q, query, &e, 0, 1_200_000, step, opts)
        };
        match r {
            Ok(r) => format!("{:?} {:?}", r.value, r.annotations),
            Err(e) => format!("error {e:?}"),
        }
    }

    #[test]
    fn streamed_aggregations_answer_as_the_engine_does() {
        let st = ring_store();
        let queries = [
            "sum by (job) (rate(req_total[2m]))",
            "sum(rate(req_total[5m]))",
            "sum by (job, env) (increase(req_total[2m]))",
            "sum without (instance) (rate(req_total[2m]))",
            "avg without (instance, job) (irate(req_total[1m]))",
            "count by (env) (req_total)",
            "max by (job) (req_total)",
            "min by (nope) (req_total offset 1m)",
            "group by (job) (req_total)",
            "stddev by (job) (delta(req_total[3m]))",
            "stdvar (deriv(req_total[3m]))",
            "sum by (job) (max_over_time(req_total[1m]))",
            "sum by (job) (last_over_time(req_total[1m]))",
            "count without () (last_over_time(req_total[1m]))",
            "sum by (job) (changes(req_total[5m])) ",
            "sum by (job) (resets(req_total[5m]))",
            "topk(3, rate(req_total[2m]))",
            "topk by (job) (2, req_total)",
            "bottomk without (instance) (2, (rate(req_total[2m])))",
            "topk(5, changes(req_total[10m]))",
            "bottomk(4, last_over_time(req_total[1m]))",
            "sum(rate(req_total[2m] @ 600))",
            "(sum by (job) (count_over_time(req_total[30s])))",
        ];
        for delayed in [true, false] {
            let opts = EngineOpts {
                delayed_name_removal: delayed,
                ..EngineOpts::default()
            };
            let mut nonempty = 0;
            for t in [0, 600_000, 855_000, 885_000, 900_000, 1_200_000, 1_300_000] {
                for q in queries {
                    let e = crate::promql::parse(q).unwrap();
                    assert!(
                        streamed_aggregate(&st, &e, t, &opts).is_some(),
                        "{q} not streamed"
                    );
                    let got = debug_answer(&st, q, t, &opts, false);
                    assert_eq!(
                        got,
                        debug_answer(&st, q, t, &opts, true),
                        "{q} at {t}, delayed name removal {delayed}"
                    );
                    nonempty += got.contains("VecSample") as usize;
                }
            }
            // Only the times past the data (1,200,000 and later) answer nothing.
            assert!(nonempty >= queries.len() * 4, "{nonempty}");
            let bare = [
                "rate(req_total[2m])",
                "rate(req_total{job=\"j1\"}[5m] offset 1m)",
                "last_over_time(req_total[1m])",
                "max_over_time((req_total[3m]))",
                "changes(req_total{env=\"prod\"}[5m])",
                "idelta(req_total[1m] @ 300)",
            ];
            let aggregations = queries
                .iter()
                .filter(|q| !q.contains("topk") && !q.contains("bottomk"));
            for q in aggregations.chain(&bare) {
                for step in [15_000, 60_000, 420_000] {
                    let e = crate::promql::parse(q).unwrap();
                    let streamed = streamed_range_aggregate(&st, &e, 0, 1_200_000, step, &opts);
                    assert!(streamed.is_some(), "{q} not streamed");
                    let got = debug_range(&st, q, step, &opts, false);
                    assert_eq!(
                        got,
                        debug_range(&st, q, step, &opts, true),
                        "{q} step {step}"
                    );
                    assert!(got.contains("Series"), "{q}: {got}");
                }
            }
        }
    }

    #[test]
    fn aggregations_the_stream_cannot_answer_go_through_the_engine() {
        let mut st = ring_store();
        let l = Labels::from_pairs([("__name__", "temp"), ("job", "a")]);
        st.append(&l, 0, 1.0).unwrap();
        let opts = EngineOpts::default();
        for q in [
            // Not a counter's name: the engine adds its info annotation.
            "sum(rate(temp[5m]))",
            // No single metric name; grouping by the name; parameters the engine checks.
            "sum by (job) ({__name__=~\"req_total|temp\"})",
            "sum by (__name__) (rate(req_total[5m]))",
            "topk(0, req_total)",
            "topk(65, req_total)",
            "quantile(0.5, req_total)",
            "sum(predict_linear(req_total[5m], 60))",
            "sum(rate(req_total[5m])) by (job) + 1",
        ] {
            let e = crate::promql::parse(q).unwrap();
            let streamed = streamed_aggregate(&st, &e, 60_000, &opts);
            assert!(
                streamed.is_none() || q == "sum(rate(temp[5m]))",
                "{q} streamed"
            );
            assert_eq!(
                debug_answer(&st, q, 60_000, &opts, false),
                debug_answer(&st, q, 60_000, &opts, true),
                "{q}"
            );
            assert_eq!(
                debug_range(&st, q, 60_000, &opts, false),
                debug_range(&st, q, 60_000, &opts, true),
                "{q}"
            );
        }
        let e = crate::promql::parse("sum(rate(temp[5m]))").unwrap();
        assert!(streamed_aggregate(&st, &e, 60_000, &opts).is_none());
        // Histograms possible: the querier declines.
        let s = store(&[(0, 1.0)]);
        let e = crate::promql::parse("sum(x_total)").unwrap();
        assert!(streamed_aggregate(&s, &e, 0, &opts).is_none());
    }

    #[test]
    fn streamed_aggregations_keep_the_sample_limit() {
        let st = ring_store();
        let opts = EngineOpts {
            max_samples: 100,
            ..EngineOpts::default()
        };
        let q = "sum(rate(req_total[5m]))";
        assert_eq!(
            debug_answer(&st, q, 900_000, &opts, false),
            "error TooManySamples"
        );
        assert_eq!(
            debug_answer(&st, q, 900_000, &opts, false),
            debug_answer(&st, q, 900_000, &opts, true)
        );
        // A range query's output points count too: 5 groups x 21 steps.
        let opts = EngineOpts {
            max_samples: 104,
            ..EngineOpts::default()
        };
        let q = "count by (job, env) (req_total)";
        for general in [false, true] {
            assert_eq!(
                debug_range(&st, q, 60_000, &opts, general),
                "error TooManySamples"
            );
        }
        let opts = EngineOpts {
            max_samples: 105,
            ..EngineOpts::default()
        };
        assert_eq!(
            debug_range(&st, q, 60_000, &opts, false),
            debug_range(&st, q, 60_000, &opts, true)
        );
    }

    #[test]
    fn range_selector_is_left_open() {
        let s = store(&[(0, 1.0), (60_000, 2.0), (120_000, 3.0)]);
        let o = EngineOpts::default();
        assert_eq!(
            values(instant(&s, "count_over_time(x_total[1m])", 120_000, &o).unwrap()),
            vec![1.0]
        );
        assert_eq!(
            values(instant(&s, "count_over_time(x_total[2m])", 120_000, &o).unwrap()),
            vec![2.0]
        );
    }

    #[test]
    fn max_samples_limit_fails_the_query() {
        let pts: Vec<(i64, f64)> = (0..100).map(|i| (i * 1000, i as f64)).collect();
        let s = store(&pts);
        let o = EngineOpts {
            max_samples: 50,
            ..EngineOpts::default()
        };
        assert_eq!(
            instant(&s, "sum_over_time(x_total[100s])", 99_000, &o),
            Err(EvalError::TooManySamples)
        );
        assert!(instant(&s, "sum_over_time(x_total[40s])", 99_000, &o).is_ok());
    }

    #[test]
    fn longest_accepted_operator_chain_evaluates_on_a_4_mib_stack() {
        let s = store(&[(0, 1.0)]);
        let q = vec!["x_total"; crate::promql::parser::MAX_NODES].join(" + ");
        let v = std::thread::Builder::new()
            .stack_size(4 << 20)
            .spawn(move || {
                let e = crate::promql::parse(&q).unwrap();
                let text = e.to_string();
                let v = instant(&s, &q, 0, &EngineOpts::default()).unwrap();
                (text.len(), values(v))
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(v.1, vec![crate::promql::parser::MAX_NODES as f64]);
    }

    #[test]
    fn immediate_name_removal_matches_default_prometheus() {
        let s = store(&[(0, 4.0)]);
        let q = "label_replace(abs(x_total), \"n\", \"$1\", \"__name__\", \"(.*)\")";
        let o = EngineOpts {
            delayed_name_removal: false,
            ..EngineOpts::default()
        };
        let Value::Vector(v) = instant(&s, q, 0, &o).unwrap() else {
            panic!()
        };
        assert_eq!(v[0].labels.get("n"), None);
    }

    #[test]
    fn extreme_times_and_offsets_do_not_overflow() {
        let s = store(&[(0, 1.0), (60_000, 2.0)]);
        let o = EngineOpts::default();
        for q in [
            "rate(x_total[1000000y] offset -1000000y)",
            "x_total offset 292000000y",
            "x_total @ 9000000000000000 offset -292000000y",
            "max_over_time(x_total[1000y:100y] @ -9000000000000000)",
            "predict_linear(x_total[292000000y], 1e308)",
        ] {
            let e = crate::promql::parse(q).unwrap();
            let _ = instant_query(&s, q, &e, i64::MAX / 2, &o);
            let _ = instant_query(&s, q, &e, i64::MIN / 2, &o);
            let _ = range_query(&s, q, &e, i64::MAX / 2 - 10_000, i64::MAX / 2, 5_000, &o);
        }
    }

    #[test]
    fn zero_timeout_times_out() {
        let pts: Vec<(i64, f64)> = (0..100).map(|i| (i * 1000, i as f64)).collect();
        let s = store(&pts);
        let o = EngineOpts {
            timeout: Duration::ZERO,
            ..EngineOpts::default()
        };
        let e = crate::promql::parse("x_total").unwrap();
        let r = range_query(&s, "x_total", &e, 0, 1_000_000, 1000, &o);
        assert_eq!(r.unwrap_err(), EvalError::Timeout);
    }

    #[test]
    fn name_is_dropped_only_at_the_end_of_evaluation() {
        let s = store(&[(0, 4.0)]);
        let o = EngineOpts::default();
        let Value::Vector(v) = instant(
            &s,
            "label_replace(abs(x_total), \"n\", \"$1\", \"__name__\", \"(.*)\")",
            0,
            &o,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(v[0].labels.get("n"), Some("x_total"));
        assert_eq!(v[0].labels.name(), None);
    }

    #[test]
    fn calendar_fields_match_known_dates() {
        // 2024-02-29T13:45:00Z
        let t = 1_709_214_300.0;
        assert_eq!(date_part("year", t), 2024.0);
        assert_eq!(date_part("month", t), 2.0);
        assert_eq!(date_part("day_of_month", t), 29.0);
        assert_eq!(date_part("days_in_month", t), 29.0);
        assert_eq!(date_part("day_of_week", t), 4.0);
        assert_eq!(date_part("hour", t), 13.0);
        assert_eq!(date_part("minute", t), 45.0);
        assert_eq!(date_part("day_of_year", t), 60.0);
    }

    #[test]
    fn label_replace_expansion_handles_braces_and_names() {
        let re = regex_lite::Regex::new("^(?P<a>x)(y)$").unwrap();
        let caps = re.captures("xy").unwrap();
        let mut out = String::new();
        expand(&caps, "${a}-$2-$$-$9", &mut out);
        assert_eq!(out, "x-y-$-");
    }

    // ---- native histograms ----

    /// A store with `lat{a=…}` histogram series loaded from the series notation (1m steps).
    fn hstore(series: &[(&str, &str)]) -> MemStorage {
        let mut s = MemStorage::new();
        for (sel, vals) in series {
            let (l, _) = crate::rules::notation::parse_series(sel).unwrap();
            for (i, v) in crate::rules::notation::parse_values(vals)
                .unwrap()
                .into_iter()
                .enumerate()
            {
                let t = i as i64 * 60_000;
                match v {
                    Some(crate::rules::notation::SeriesValue::Float(f)) => {
                        s.append(&l, t, f).unwrap()
                    }
                    Some(crate::rules::notation::SeriesValue::Histogram(h)) => {
                        s.append_histogram(&l, t, *h).unwrap()
                    }
                    None => {}
                }
            }
        }
        s
    }

    /// Each sample printed: labels and the float or the histogram in the series notation.
    fn hquery(s: &MemStorage, q: &str, t: i64) -> (Vec<String>, Annotations) {
        let e = crate::promql::parse(q).unwrap();
        let r = instant_query(s, q, &e, t, &EngineOpts::default()).unwrap();
        let Value::Vector(v) = r.value else {
            panic!("vector expected");
        };
        let mut out: Vec<String> = v
            .iter()
            .map(|x| match &x.h {
                Some(h) => format!(
                    "{} {}",
                    x.labels,
                    crate::rules::notation::histogram_expression(h)
                ),
                None => format!("{} {}", x.labels, x.v),
            })
            .collect();
        out.sort();
        (out, r.annotations)
    }

    #[test]
    fn histograms_are_selected_and_newer_floats_or_stale_markers_win() {
        let s = hstore(&[("lat{a=\"1\"}", "{{count:2 sum:3 buckets:[2]}}x1 5 stale")]);
        let (v, _) = hquery(&s, "lat", 60_000);
        assert_eq!(
            v,
            ["lat{a=\"1\"} {{count:2 sum:3 counter_reset_hint:not_reset buckets:[2]}}"]
        );
        assert_eq!(hquery(&s, "lat", 120_000).0, ["lat{a=\"1\"} 5"]);
        assert!(hquery(&s, "lat", 180_000).0.is_empty());
        assert_eq!(hquery(&s, "timestamp(lat)", 60_000).0, ["{a=\"1\"} 60"]);
    }

    #[test]
    fn histogram_arithmetic_scales_adds_and_drops_undefined_operations() {
        let s = hstore(&[
            ("lat{a=\"1\"}", "{{schema:1 count:2 sum:3 buckets:[1 1]}}"),
            ("lat{a=\"2\"}", "{{count:4 sum:5 buckets:[4]}}"),
        ]);
        assert_eq!(
            hquery(&s, "lat{a=\"2\"} * 2", 0).0,
            ["{a=\"2\"} {{count:8 sum:10 buckets:[8]}}"]
        );
        assert_eq!(
            hquery(&s, "lat{a=\"1\"} + ignoring(a) lat{a=\"2\"}", 0).0,
            // Schema 1 buckets (0.5,0.71] and (0.71,1] merge into (0.5,1] of schema 0.
            ["{} {{count:6 sum:8 buckets:[5 1]}}"]
        );
        assert_eq!(
            hquery(&s, "lat{a=\"2\"} - ignoring(a) lat{a=\"2\"}", 0).0,
            ["{} {{}}"]
        );
        let (v, annos) = hquery(&s, "lat > 1", 0);
        assert!(v.is_empty());
        assert_eq!(annos.infos.len(), 1, "{:?}", annos.infos);
        assert!(annos.infos[0].contains("histogram > float"));
        assert!(hquery(&s, "2 / lat", 0).0.is_empty());
    }

    #[test]
    fn sum_and_avg_aggregate_histograms_while_max_ignores_them() {
        let s = hstore(&[
            ("lat{a=\"1\"}", "{{count:2 sum:3 buckets:[2]}}"),
            ("lat{a=\"2\"}", "{{count:4 sum:5 buckets:[4]}}"),
            ("other", "1"),
        ]);
        assert_eq!(
            hquery(&s, "sum(lat)", 0).0,
            ["{} {{count:6 sum:8 buckets:[6]}}"]
        );
        assert_eq!(
            hquery(&s, "avg(lat)", 0).0,
            ["{} {{count:3 sum:4 buckets:[3]}}"]
        );
        assert_eq!(hquery(&s, "count(lat)", 0).0, ["{} 2"]);
        let (v, annos) = hquery(&s, "max(lat)", 0);
        assert!(v.is_empty());
        assert!(annos.infos[0].contains("ignored histogram in max aggregation"));
        let (v, annos) = hquery(&s, "sum({__name__=~\"lat|other\"})", 0);
        assert!(v.is_empty());
        assert!(annos.warnings[0].contains("mix of histograms and floats"));
    }

    #[test]
    fn histogram_functions_read_count_sum_quantile_and_fraction() {
        let s = hstore(&[
            ("lat", "{{count:8 sum:20 buckets:[4 4] offset:1}}"),
            ("f", "3"),
        ]);
        assert_eq!(hquery(&s, "histogram_count(lat)", 0).0, ["{} 8"]);
        assert_eq!(hquery(&s, "histogram_sum(lat)", 0).0, ["{} 20"]);
        assert_eq!(hquery(&s, "histogram_avg(lat)", 0).0, ["{} 2.5"]);
        assert!(hquery(&s, "histogram_count(f)", 0).0.is_empty());
        // Buckets (1,2] and (2,4]: the median is their shared boundary.
        assert_eq!(hquery(&s, "histogram_quantile(0.5, lat)", 0).0, ["{} 2"]);
        assert_eq!(hquery(&s, "histogram_fraction(0, 2, lat)", 0).0, ["{} 0.5"]);
        assert!(hquery(&s, "abs(lat)", 0).0.is_empty());
    }

    #[test]
    fn rate_of_histograms_corrects_counter_resets() {
        // 10 -> 15 -> reset to 3 -> 8.
        let s = hstore(&[(
            "lat",
            "{{count:10 sum:10 buckets:[10]}} {{count:15 sum:15 buckets:[15]}} {{count:3 sum:3 buckets:[3]}} {{count:8 sum:8 buckets:[8]}}",
        )]);
        // Subquery steps 1m..3m see 15, 3, 8: 8 after the reset, extrapolated by 3/2.
        let (v, _) = hquery(&s, "increase(lat[3m:1m])", 180_000);
        assert_eq!(
            v,
            ["{} {{count:12 sum:12 counter_reset_hint:gauge buckets:[12]}}"]
        );
        let (v, _) = hquery(&s, "increase(lat[4m])", 180_000);
        // 13 over 3 minutes of samples, extrapolated to the 4 minute range (promtool agrees).
        assert_eq!(v, ["{} {{count:17.333333333333332 sum:17.333333333333332 counter_reset_hint:gauge buckets:[17.333333333333332]}}"]);
        let (v, _) = hquery(&s, "irate(lat[2m])", 180_000);
        assert_eq!(v, ["{} {{count:0.08333333333333333 sum:0.08333333333333333 counter_reset_hint:gauge buckets:[0.08333333333333333]}}"]);
        assert_eq!(hquery(&s, "resets(lat[4m])", 180_000).0, ["{} 1"]);
    }
}
