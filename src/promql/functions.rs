//! The PromQL function table (names, argument and return types) and the pure numeric helpers
//! behind the functions and aggregations.
//!
//! Owns: signatures and per-series math. Must not touch: storage, vector matching.

use super::ast::ValueType::{self, Matrix as M, Scalar as S, String as Str, Vector as V};
use crate::model::Sample;

/// A PromQL function signature.
#[derive(Debug, PartialEq)]
pub struct Function {
    pub name: &'static str,
    pub args: &'static [ValueType],
    /// How many trailing arguments may be left out.
    pub optional: usize,
    /// The last argument may repeat.
    pub variadic: bool,
    pub ret: ValueType,
}

const fn f(
    name: &'static str,
    args: &'static [ValueType],
    optional: usize,
    variadic: bool,
    ret: ValueType,
) -> Function {
    Function {
        name,
        args,
        optional,
        variadic,
        ret,
    }
}

/// Every supported function. Experimental functions are absent on purpose: using them is a parse error ("unknown function"), never a wrong answer.
pub static FUNCTIONS: &[Function] = &[
    f("abs", &[V], 0, false, V),
    f("absent", &[V], 0, false, V),
    f("absent_over_time", &[M], 0, false, V),
    f("acos", &[V], 0, false, V),
    f("acosh", &[V], 0, false, V),
    f("asin", &[V], 0, false, V),
    f("asinh", &[V], 0, false, V),
    f("atan", &[V], 0, false, V),
    f("atanh", &[V], 0, false, V),
    f("avg_over_time", &[M], 0, false, V),
    f("ceil", &[V], 0, false, V),
    f("changes", &[M], 0, false, V),
    f("clamp", &[V, S, S], 0, false, V),
    f("clamp_max", &[V, S], 0, false, V),
    f("clamp_min", &[V, S], 0, false, V),
    f("cos", &[V], 0, false, V),
    f("cosh", &[V], 0, false, V),
    f("count_over_time", &[M], 0, false, V),
    f("day_of_month", &[V], 1, false, V),
    f("day_of_week", &[V], 1, false, V),
    f("day_of_year", &[V], 1, false, V),
    f("days_in_month", &[V], 1, false, V),
    f("deg", &[V], 0, false, V),
    f("delta", &[M], 0, false, V),
    f("deriv", &[M], 0, false, V),
    f("exp", &[V], 0, false, V),
    f("floor", &[V], 0, false, V),
    f("histogram_avg", &[V], 0, false, V),
    f("histogram_count", &[V], 0, false, V),
    f("histogram_fraction", &[S, S, V], 0, false, V),
    f("histogram_quantile", &[S, V], 0, false, V),
    f("histogram_stddev", &[V], 0, false, V),
    f("histogram_stdvar", &[V], 0, false, V),
    f("histogram_sum", &[V], 0, false, V),
    f("hour", &[V], 1, false, V),
    f("idelta", &[M], 0, false, V),
    f("increase", &[M], 0, false, V),
    f("irate", &[M], 0, false, V),
    f("label_join", &[V, Str, Str, Str], 1, true, V),
    f("label_replace", &[V, Str, Str, Str, Str], 0, false, V),
    f("last_over_time", &[M], 0, false, V),
    f("ln", &[V], 0, false, V),
    f("log10", &[V], 0, false, V),
    f("log2", &[V], 0, false, V),
    f("max_over_time", &[M], 0, false, V),
    f("min_over_time", &[M], 0, false, V),
    f("minute", &[V], 1, false, V),
    f("month", &[V], 1, false, V),
    f("pi", &[], 0, false, S),
    f("predict_linear", &[M, S], 0, false, V),
    f("present_over_time", &[M], 0, false, V),
    f("quantile_over_time", &[S, M], 0, false, V),
    f("rad", &[V], 0, false, V),
    f("rate", &[M], 0, false, V),
    f("resets", &[M], 0, false, V),
    f("round", &[V, S], 1, false, V),
    f("scalar", &[V], 0, false, S),
    f("sgn", &[V], 0, false, V),
    f("sin", &[V], 0, false, V),
    f("sinh", &[V], 0, false, V),
    f("sort", &[V], 0, false, V),
    f("sort_desc", &[V], 0, false, V),
    f("sqrt", &[V], 0, false, V),
    f("stddev_over_time", &[M], 0, false, V),
    f("stdvar_over_time", &[M], 0, false, V),
    f("sum_over_time", &[M], 0, false, V),
    f("tan", &[V], 0, false, V),
    f("tanh", &[V], 0, false, V),
    f("time", &[], 0, false, S),
    f("timestamp", &[V], 0, false, V),
    f("vector", &[S], 0, false, V),
    f("year", &[V], 1, false, V),
];

/// Experimental functions we know by name but do not evaluate.
pub const UNSUPPORTED: &[&str] = &[
    "histogram_quantiles",
    "double_exponential_smoothing",
    "holt_winters",
    "mad_over_time",
    "first_over_time",
    "ts_of_first_over_time",
    "ts_of_last_over_time",
    "ts_of_min_over_time",
    "ts_of_max_over_time",
    "sort_by_label",
    "sort_by_label_desc",
    "info",
    "limitk",
    "limit_ratio",
    "start_timestamp",
];

pub fn lookup(name: &str) -> Option<&'static Function> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

/// Applies a one-argument math function by name.
pub fn simple(name: &str, v: f64) -> f64 {
    match name {
        "abs" => v.abs(),
        "ceil" => v.ceil(),
        "floor" => v.floor(),
        "exp" => v.exp(),
        "sqrt" => v.sqrt(),
        "ln" => v.ln(),
        "log2" => v.log2(),
        "log10" => v.log10(),
        "sgn" => {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        }
        "acos" => v.acos(),
        "acosh" => v.acosh(),
        "asin" => v.asin(),
        "asinh" => v.asinh(),
        "atan" => v.atan(),
        "atanh" => v.atanh(),
        "cos" => v.cos(),
        "cosh" => v.cosh(),
        "sin" => v.sin(),
        "sinh" => v.sinh(),
        "tan" => v.tan(),
        "tanh" => v.tanh(),
        "deg" => v * 180.0 / std::f64::consts::PI,
        "rad" => v * std::f64::consts::PI / 180.0,
        _ => f64::NAN,
    }
}

/// Neumaier-compensated summation step: returns the new sum and compensation.
pub fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Mean that survives overflow: plain compensated sum until it would overflow, then an
/// incremental mean.
pub fn mean(vals: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut c, mut m, mut count) = (0.0, 0.0, 0.0, 0.0);
    let mut incremental = false;
    for v in vals {
        count += 1.0;
        if !incremental {
            let (ns, nc) = kahan_inc(v, sum, c);
            if count == 1.0 || !ns.is_infinite() {
                sum = ns;
                c = nc;
                continue;
            }
            incremental = true;
            m = sum / (count - 1.0);
            c /= count - 1.0;
        }
        if m.is_infinite() {
            if v.is_infinite() && (m > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        let corrected = m + c;
        let (nm, nc) = kahan_inc(v / count - corrected / count, m, c);
        m = nm;
        c = nc;
    }
    if incremental {
        m + c
    } else {
        sum / count + c / count
    }
}

/// Population variance with compensated running sums.
pub fn variance(vals: impl Iterator<Item = f64>) -> f64 {
    let (mut count, mut mean, mut cm, mut aux, mut ca) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for v in vals {
        count += 1.0;
        let delta = v - (mean + cm);
        let (m, c) = kahan_inc(delta / count, mean, cm);
        mean = m;
        cm = c;
        let (a, c2) = kahan_inc(delta * (v - (mean + cm)), aux, ca);
        aux = a;
        ca = c2;
    }
    (aux + ca) / count
}

/// Quantile by linear interpolation between closest ranks; `vals` gets sorted.
pub fn quantile(q: f64, vals: &mut [f64]) -> f64 {
    if vals.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    crate::sort::sort_by(vals, |a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = vals.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let w = rank - rank.floor();
    vals[lower as usize] * (1.0 - w) + vals[upper as usize] * w
}

/// Least-squares slope and intercept, x in seconds relative to `intercept_t`.
pub fn linear_regression(s: &[Sample], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let init = s[0].v;
    let mut const_y = true;
    for (i, p) in s.iter().enumerate() {
        if const_y && i > 0 && p.v != init {
            const_y = false;
        }
        n += 1.0;
        let x = (p.t - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(p.v, sy, cy);
        (sxy, cxy) = kahan_inc(x * p.v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

/// Prometheus's extrapolation of a rate/increase/delta over `samples` = (first t, last t, count)
/// to the range boundaries: the factor the raw difference is multiplied by. For counters,
/// `zero_ratio` (first value / raw increase, when both are positive) caps the extrapolation
/// before the first sample at where the counter would have been zero. Shared by floats and
/// native histograms.
pub fn extrapolation_factor(
    samples: (i64, i64, usize),
    range: (i64, i64),
    is_counter: bool,
    zero_ratio: Option<f64>,
    is_rate: bool,
) -> f64 {
    let ((first_t, last_t, count), (range_start, range_end)) = (samples, range);
    // In f64: range bounds come from the query and may be far outside i64 differences.
    let mut to_start = (first_t as f64 - range_start as f64) / 1000.0;
    let mut to_end = (range_end as f64 - last_t as f64) / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg = sampled / (count - 1) as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if is_counter {
        let to_zero = zero_ratio.map_or(to_start, |r| sampled * r);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if is_rate {
        factor /= (range_end as f64 - range_start as f64) / 1000.0;
    }
    factor
}

/// rate/increase/delta with Prometheus's extrapolation to the range boundaries.
/// None when there are fewer than two samples.
pub fn extrapolated_rate(
    s: &[Sample],
    range_start: i64,
    range_end: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let first = s[0];
    let last = s[s.len() - 1];
    let mut result = last.v - first.v;
    if is_counter {
        let mut prev = 0.0;
        for p in s {
            if p.v < prev {
                result += prev;
            }
            prev = p.v;
        }
    }
    let zero_ratio = (is_counter && result > 0.0 && first.v >= 0.0).then(|| first.v / result);
    let factor = extrapolation_factor(
        (first.t, last.t, s.len()),
        (range_start, range_end),
        is_counter,
        zero_ratio,
        is_rate,
    );
    Some(result * factor)
}

/// One classic-histogram bucket.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    pub upper: f64,
    pub count: f64,
}

/// Quantile from cumulative `le` buckets. Returns (value, forced_monotonic).
pub fn bucket_quantile(q: f64, buckets: &mut [Bucket]) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    let (merged, forced) = match prepare_buckets(buckets) {
        Some(x) => x,
        None => return (f64::NAN, false),
    };
    if merged.len() < 2 {
        return (f64::NAN, forced);
    }
    let n = merged.len();
    let observations = merged[n - 1].count;
    if observations == 0.0 {
        return (f64::NAN, forced);
    }
    let mut rank = q * observations;
    let b = merged[..n - 1]
        .iter()
        .position(|x| x.count >= rank)
        .unwrap_or(n - 1);
    if b == n - 1 {
        return (merged[n - 2].upper, forced);
    }
    if b == 0 && merged[0].upper <= 0.0 {
        return (merged[0].upper, forced);
    }
    let end = merged[b].upper;
    let mut count = merged[b].count;
    let mut start = 0.0;
    if b > 0 {
        start = merged[b - 1].upper;
        count -= merged[b - 1].count;
        rank -= merged[b - 1].count;
    }
    (start + (end - start) * (rank / count), forced)
}

/// Sorts buckets, merges equal bounds and removes decreases (Prometheus's tolerance for
/// scrapes that raced with observations). None without a `+Inf` bucket; otherwise the buckets
/// and whether a decrease had to be removed.
fn prepare_buckets(buckets: &mut [Bucket]) -> Option<(Vec<Bucket>, bool)> {
    crate::sort::sort_by(buckets, |a, b| {
        a.upper
            .partial_cmp(&b.upper)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    if buckets.last().is_none_or(|b| b.upper != f64::INFINITY) {
        return None;
    }
    let mut merged: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match merged.last_mut() {
            Some(l) if l.upper == b.upper => l.count += b.count,
            _ => merged.push(*b),
        }
    }
    let mut forced = false;
    let mut prev = merged[0].count;
    for b in merged.iter_mut().skip(1) {
        let cur = b.count;
        if cur == prev {
            continue;
        }
        if almost_equal(prev, cur, 1e-12) {
            b.count = prev;
            continue;
        }
        if cur < prev {
            b.count = prev;
            forced = true;
            continue;
        }
        prev = cur;
    }
    Some((merged, forced))
}

/// Fraction of observations between `lower` and `upper` from cumulative `le` buckets.
/// Inside a bucket the observations are assumed spread evenly; a bucket of infinite width is
/// never interpolated (a bound inside it counts as its finite end).
pub fn bucket_fraction(lower: f64, upper: f64, buckets: &mut [Bucket]) -> f64 {
    let Some((b, _)) = prepare_buckets(buckets) else {
        return f64::NAN;
    };
    let total = b[b.len() - 1].count;
    if total == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let cum_at = |x: f64| -> f64 {
        for i in 0..b.len() {
            let ub = b[i].upper;
            let (lb, prev) = if i == 0 {
                (if ub > 0.0 { 0.0 } else { f64::NEG_INFINITY }, 0.0)
            } else {
                (b[i - 1].upper, b[i - 1].count)
            };
            if x <= lb {
                return prev;
            }
            if x <= ub {
                if x == ub || lb == f64::NEG_INFINITY {
                    return b[i].count;
                }
                if ub == f64::INFINITY {
                    return prev;
                }
                return prev + (b[i].count - prev) * (x - lb) / (ub - lb);
            }
        }
        total
    };
    (cum_at(upper) - cum_at(lower)) / total
}

/// Relative float comparison as Prometheus's tests use it.
pub fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    if a == b {
        return true;
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    const MIN_NORMAL: f64 = 2.2250738585072014e-308;
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < eps * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < eps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: i64, v: f64) -> Sample {
        Sample { t, v }
    }

    #[test]
    fn rate_extrapolates_to_range_boundaries() {
        // 0,10,..,100 every 60s over a 10 m window ending at 600s.
        let pts: Vec<_> = (0..=10).map(|i| s(i * 60_000, i as f64 * 10.0)).collect();
        let r = extrapolated_rate(&pts[1..], 0, 600_000, true, true).unwrap();
        assert!((r - 10.0 / 60.0).abs() < 1e-9, "{r}");
    }

    #[test]
    fn quantile_interpolates_between_ranks() {
        let mut v = vec![1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(0.5, &mut v), 2.5);
        assert_eq!(quantile(2.0, &mut v), f64::INFINITY);
    }

    #[test]
    fn bucket_quantile_needs_inf_bucket_and_interpolates() {
        let mut b = vec![
            Bucket {
                upper: 1.0,
                count: 10.0,
            },
            Bucket {
                upper: 2.0,
                count: 20.0,
            },
            Bucket {
                upper: f64::INFINITY,
                count: 20.0,
            },
        ];
        assert_eq!(bucket_quantile(0.75, &mut b).0, 1.5);
        let mut nb = vec![Bucket {
            upper: 1.0,
            count: 10.0,
        }];
        assert!(bucket_quantile(0.5, &mut nb).0.is_nan());
    }

    #[test]
    fn bucket_fraction_interpolates_but_not_in_infinite_buckets() {
        let mk = || {
            vec![
                Bucket {
                    upper: 1.0,
                    count: 1.0,
                },
                Bucket {
                    upper: 2.0,
                    count: 3.0,
                },
                Bucket {
                    upper: 3.0,
                    count: 6.0,
                },
                Bucket {
                    upper: f64::INFINITY,
                    count: 100.0,
                },
            ]
        };
        assert!((bucket_fraction(0.0, 1.5, &mut mk()) - 0.02).abs() < 1e-12);
        assert!((bucket_fraction(2.0, 5.0, &mut mk()) - 0.03).abs() < 1e-12);
        assert!((bucket_fraction(400.0, f64::INFINITY, &mut mk()) - 0.94).abs() < 1e-12);
        assert_eq!(bucket_fraction(3.0, 2.0, &mut mk()), 0.0);
    }

    #[test]
    fn kahan_sum_keeps_small_terms() {
        let mut s = (0.0, 0.0);
        for v in [1e100, 1.0, -1e100] {
            s = kahan_inc(v, s.0, s.1);
        }
        assert_eq!(s.0 + s.1, 1.0);
    }
}
