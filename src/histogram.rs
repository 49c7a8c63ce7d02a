//! Native histograms as PromQL sees them: Prometheus's float histogram (sparse exponential
//! buckets with a schema, a zero bucket, positive and negative spans + bucket counts, count,
//! sum, counter-reset hint; or custom bucket bounds, schema -53) and the arithmetic PromQL
//! defines on them.
//!
//! Owns: the value type, bucket boundaries and iteration, add/sub (with schema and zero
//! threshold reconciliation), scaling, counter-reset detection, quantile and fraction
//! estimation, Go's `String()` form. Must not touch: the `{{…}}` test notation (it lives in
//! `rules::notation`), storage, evaluation.
//!
//! Where they come from: promtool-style test files and promqltest scripts (through
//! `promql::testing::MemStorage`). The ring TSDB stores floats only: scraped native histograms
//! arrive only via the protobuf exposition format, which promlet does not negotiate, so the
//! real store never holds one.

/// What is known about a counter reset between this histogram and the previous one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CounterResetHint {
    #[default]
    Unknown,
    Reset,
    NotReset,
    /// A gauge histogram: counts go up and down; no counter semantics.
    Gauge,
}

/// A run of consecutive buckets, `offset` buckets after the end of the previous span (the
/// first span's offset is the index of its first bucket).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BucketSpan {
    pub offset: i32,
    pub length: u32,
}

/// The schema that marks custom bucket bounds (`custom_values`).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// A float histogram. Bucket counts are absolute (not deltas).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FloatHistogram {
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    pub positive_spans: Vec<BucketSpan>,
    pub positive_buckets: Vec<f64>,
    pub negative_spans: Vec<BucketSpan>,
    pub negative_buckets: Vec<f64>,
    /// Upper bounds of the custom buckets (schema -53); the last bucket goes to +Inf.
    pub custom_values: Vec<f64>,
    pub counter_reset_hint: CounterResetHint,
}

/// A histogram sample. Shared (`Arc`, so test stores stay `Send`): a query hands the same stored histogram to every step
/// that selects it without copying its buckets.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSample {
    pub t: i64,
    pub h: std::sync::Arc<FloatHistogram>,
}

/// One bucket with its boundaries, as histogram_quantile and the API see it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub lower: f64,
    pub upper: f64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
    pub count: f64,
}

/// Why two histograms cannot be combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistogramError {
    /// One uses exponential buckets, the other custom bounds.
    IncompatibleSchema,
    /// Both use custom bounds, but different ones.
    IncompatibleBounds,
}

impl std::fmt::Display for HistogramError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HistogramError::IncompatibleSchema => {
                "cannot apply this operation to histograms with a mix of exponential and custom bucket schemas"
            }
            HistogramError::IncompatibleBounds => {
                "cannot apply this operation to custom buckets histograms with different custom bounds"
            }
        })
    }
}

/// `(index, count)` of every bucket the spans describe, in index order.
pub fn span_buckets(spans: &[BucketSpan], buckets: &[f64]) -> Vec<(i32, f64)> {
    let mut out = Vec::with_capacity(buckets.len());
    let mut idx = 0i32;
    let mut b = buckets.iter();
    for (n, s) in spans.iter().enumerate() {
        idx = if n == 0 { s.offset } else { idx + s.offset };
        for _ in 0..s.length {
            match b.next() {
                Some(&c) => out.push((idx, c)),
                None => return out,
            }
            idx += 1;
        }
    }
    out
}

/// Spans and counts from `(index, count)` pairs sorted by index; zero counts are dropped when
/// `drop_empty` (Prometheus's `Compact(0)`).
pub fn to_spans(pairs: &[(i32, f64)], drop_empty: bool) -> (Vec<BucketSpan>, Vec<f64>) {
    let mut spans: Vec<BucketSpan> = Vec::new();
    let mut counts = Vec::with_capacity(pairs.len());
    let mut next: Option<i32> = None;
    for &(i, c) in pairs {
        if drop_empty && c == 0.0 {
            continue;
        }
        match next {
            Some(n) if n == i => spans.last_mut().expect("span exists").length += 1,
            Some(n) => spans.push(BucketSpan {
                offset: i - n,
                length: 1,
            }),
            None => spans.push(BucketSpan {
                offset: i,
                length: 1,
            }),
        }
        counts.push(c);
        next = Some(i + 1);
    }
    (spans, counts)
}

/// Upper bound of exponential bucket `idx` under `schema`: base^idx with base 2^(2^-schema).
pub fn exponential_upper(idx: i32, schema: i32) -> f64 {
    if schema < 0 {
        let exp = (idx as i64) << (-schema).min(62);
        if exp >= 1024 {
            return f64::MAX;
        }
        return ldexp(1.0, exp as i32);
    }
    let per = 1i32 << schema.min(30);
    let frac_idx = idx & (per - 1);
    let exp = (idx >> schema) + 1;
    let frac = (frac_idx as f64 / per as f64).exp2() / 2.0;
    if frac == 0.5 && exp == 1025 {
        return f64::MAX;
    }
    ldexp(frac, exp)
}

fn ldexp(frac: f64, exp: i32) -> f64 {
    // Two steps so that 2^exp itself never over- or underflows for exponents in range.
    let half = exp / 2;
    frac * 2f64.powi(half) * 2f64.powi(exp - half)
}

impl FloatHistogram {
    pub fn uses_custom_buckets(&self) -> bool {
        self.schema == CUSTOM_BUCKETS_SCHEMA
    }

    pub fn positive(&self) -> Vec<(i32, f64)> {
        span_buckets(&self.positive_spans, &self.positive_buckets)
    }

    pub fn negative(&self) -> Vec<(i32, f64)> {
        span_buckets(&self.negative_spans, &self.negative_buckets)
    }

    pub fn set_positive(&mut self, pairs: &[(i32, f64)]) {
        (self.positive_spans, self.positive_buckets) = to_spans(pairs, false);
    }

    pub fn set_negative(&mut self, pairs: &[(i32, f64)]) {
        (self.negative_spans, self.negative_buckets) = to_spans(pairs, false);
    }

    /// Drops empty buckets (Prometheus's `Compact(0)`): the canonical layout for comparisons.
    pub fn compact(&mut self) {
        let p = self.positive();
        let n = self.negative();
        (self.positive_spans, self.positive_buckets) = to_spans(&p, true);
        (self.negative_spans, self.negative_buckets) = to_spans(&n, true);
    }

    /// Lower and upper bound of positive bucket `idx`.
    fn positive_bounds(&self, idx: i32) -> (f64, f64) {
        if self.uses_custom_buckets() {
            let cv = &self.custom_values;
            let i = idx.max(0) as usize;
            let lower = if i == 0 {
                f64::NEG_INFINITY
            } else {
                cv.get(i - 1).copied().unwrap_or(f64::INFINITY)
            };
            let upper = cv.get(i).copied().unwrap_or(f64::INFINITY);
            return (lower, upper);
        }
        (
            exponential_upper(idx - 1, self.schema),
            exponential_upper(idx, self.schema),
        )
    }

    fn positive_bucket(&self, idx: i32, count: f64) -> Bucket {
        let (lower, upper) = self.positive_bounds(idx);
        Bucket {
            lower,
            upper,
            lower_inclusive: self.uses_custom_buckets() && idx == 0,
            upper_inclusive: true,
            count,
        }
    }

    fn negative_bucket(&self, idx: i32, count: f64) -> Bucket {
        let (lower, upper) = self.positive_bounds(idx);
        Bucket {
            lower: -upper,
            upper: -lower,
            lower_inclusive: true,
            upper_inclusive: false,
            count,
        }
    }

    fn zero_bucket(&self) -> Bucket {
        Bucket {
            lower: -self.zero_threshold,
            upper: self.zero_threshold,
            lower_inclusive: true,
            upper_inclusive: true,
            count: self.zero_count,
        }
    }

    /// Every bucket from the most negative to the most positive: negative buckets, the zero
    /// bucket (when populated), positive buckets.
    pub fn all_buckets(&self) -> Vec<Bucket> {
        let mut out = Vec::new();
        for (i, c) in self.negative().into_iter().rev() {
            out.push(self.negative_bucket(i, c));
        }
        if !self.uses_custom_buckets() && self.zero_count > 0.0 {
            out.push(self.zero_bucket());
        }
        for (i, c) in self.positive() {
            out.push(self.positive_bucket(i, c));
        }
        out
    }

    /// Merges buckets down to the coarser `target` schema (no-op if not coarser or custom).
    pub fn reduce_schema(&mut self, target: i32) {
        if self.uses_custom_buckets() || target >= self.schema {
            return;
        }
        let d = self.schema - target;
        let p = reduce(&self.positive(), d);
        let n = reduce(&self.negative(), d);
        self.set_positive(&p);
        self.set_negative(&n);
        self.schema = target;
    }

    /// The histogram as Go's `FloatHistogram.String()` prints it (count_values uses it as a
    /// label value): `{count:20, sum:10, [-2,-1):2, [-0.001,0.001]:2, (0.5,1]:1}`, populated
    /// buckets only.
    pub fn go_string(&self) -> String {
        let g = |v: f64| {
            let mut out = Vec::new();
            crate::expo::format_float(v, &mut out);
            String::from_utf8(out).unwrap_or_default()
        };
        let mut s = format!("{{count:{}, sum:{}", g(self.count), g(self.sum));
        for b in self.all_buckets() {
            if b.count == 0.0 {
                continue;
            }
            s.push_str(&format!(
                ", {}{},{}{}:{}",
                if b.lower_inclusive { '[' } else { '(' },
                g(b.lower),
                g(b.upper),
                if b.upper_inclusive { ']' } else { ')' },
                g(b.count)
            ));
        }
        s.push('}');
        s
    }

    /// Multiplies count, sum and every bucket by `f` (layout unchanged).
    pub fn mul(&mut self, f: f64) {
        self.zero_count *= f;
        self.count *= f;
        self.sum *= f;
        self.positive_buckets.iter_mut().for_each(|b| *b *= f);
        self.negative_buckets.iter_mut().for_each(|b| *b *= f);
    }

    /// Divides like [`FloatHistogram::mul`]; division by zero removes every bucket.
    pub fn div(&mut self, d: f64) {
        self.zero_count /= d;
        self.count /= d;
        self.sum /= d;
        if d == 0.0 {
            self.positive_spans.clear();
            self.positive_buckets.clear();
            self.negative_spans.clear();
            self.negative_buckets.clear();
            return;
        }
        self.positive_buckets.iter_mut().for_each(|b| *b /= d);
        self.negative_buckets.iter_mut().for_each(|b| *b /= d);
    }

    /// `self += other`.
    pub fn add(&mut self, other: &FloatHistogram) -> Result<(), HistogramError> {
        self.combine(other, 1.0)
    }

    /// `self -= other`.
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<(), HistogramError> {
        self.combine(other, -1.0)
    }

    fn combine(&mut self, other: &FloatHistogram, sign: f64) -> Result<(), HistogramError> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(HistogramError::IncompatibleSchema);
        }
        if self.uses_custom_buckets() && !same_floats(&self.custom_values, &other.custom_values) {
            return Err(HistogramError::IncompatibleBounds);
        }
        if sign > 0.0 {
            use CounterResetHint::*;
            let (a, b) = (self.counter_reset_hint, other.counter_reset_hint);
            self.counter_reset_hint = match (a, b) {
                _ if a == b => a,
                (Gauge, _) | (_, Gauge) => Gauge,
                _ => Unknown,
            };
        }
        let mut other_pos = other.positive();
        let mut other_neg = other.negative();
        let mut pos = self.positive();
        let mut neg = self.negative();
        let mut other_zero = other.zero_count;
        if !self.uses_custom_buckets() {
            // The coarser schema wins.
            if other.schema < self.schema {
                pos = reduce(&pos, self.schema - other.schema);
                neg = reduce(&neg, self.schema - other.schema);
                self.schema = other.schema;
            } else if other.schema > self.schema {
                other_pos = reduce(&other_pos, other.schema - self.schema);
                other_neg = reduce(&other_neg, other.schema - self.schema);
            }
            // The wider zero bucket wins, widened further to a bucket boundary if needed.
            let mut thr = self.zero_threshold.max(other.zero_threshold);
            loop {
                let t1 = widen(&pos, &neg, self.schema, thr);
                let t2 = widen(&other_pos, &other_neg, self.schema, t1);
                if t2 == thr {
                    break;
                }
                thr = t2;
            }
            if thr != self.zero_threshold {
                self.zero_count += absorb(&mut pos, &mut neg, self.schema, thr);
                self.zero_threshold = thr;
            }
            other_zero += absorb(&mut other_pos, &mut other_neg, self.schema, thr);
        }
        self.zero_count += sign * other_zero;
        self.count += sign * other.count;
        self.sum += sign * other.sum;
        let pos = merge(&pos, &other_pos, sign);
        let neg = merge(&neg, &other_neg, sign);
        self.set_positive(&pos);
        self.set_negative(&neg);
        Ok(())
    }

    /// Whether `self` must follow a counter reset after `prev`: a count, the zero count or a
    /// bucket went down, a populated bucket vanished, the schema got finer or the zero bucket
    /// narrower. An explicit hint decides without looking.
    pub fn detect_reset(&self, prev: &FloatHistogram) -> bool {
        match self.counter_reset_hint {
            CounterResetHint::Reset => return true,
            CounterResetHint::NotReset => return false,
            _ => {}
        }
        if self.count < prev.count {
            return true;
        }
        if self.uses_custom_buckets() != prev.uses_custom_buckets()
            || (self.uses_custom_buckets()
                && !same_floats(&self.custom_values, &prev.custom_values))
        {
            return true;
        }
        if self.schema > prev.schema || self.zero_threshold < prev.zero_threshold {
            return true;
        }
        let mut ppos = prev.positive();
        let mut pneg = prev.negative();
        let mut prev_zero = prev.zero_count;
        if !self.uses_custom_buckets() {
            if prev.schema > self.schema {
                ppos = reduce(&ppos, prev.schema - self.schema);
                pneg = reduce(&pneg, prev.schema - self.schema);
            }
            if self.zero_threshold > prev.zero_threshold {
                if widen(&ppos, &pneg, self.schema, self.zero_threshold) != self.zero_threshold {
                    return true;
                }
                prev_zero += absorb(&mut ppos, &mut pneg, self.schema, self.zero_threshold);
            }
        }
        if self.zero_count < prev_zero {
            return true;
        }
        bucket_decreased(&self.positive(), &ppos) || bucket_decreased(&self.negative(), &pneg)
    }

    /// The q-quantile, interpolated exponentially inside exponential buckets and linearly in
    /// the zero bucket and custom buckets (Prometheus 3.x).
    pub fn quantile(&self, q: f64) -> f64 {
        if q < 0.0 {
            return f64::NEG_INFINITY;
        }
        if q > 1.0 {
            return f64::INFINITY;
        }
        if self.count == 0.0 || q.is_nan() {
            return f64::NAN;
        }
        let forward = self.sum.is_nan() || q < 0.5;
        let mut buckets = self.all_buckets();
        let mut rank = if forward {
            q * self.count
        } else {
            buckets.reverse();
            (1.0 - q) * self.count
        };
        let mut count = 0.0;
        let mut bucket = None;
        for b in &buckets {
            if b.count == 0.0 {
                continue;
            }
            bucket = Some(*b);
            count += b.count;
            if count >= rank {
                break;
            }
        }
        // No populated bucket at all (count without buckets): Prometheus's zero-value bucket.
        let mut b = bucket.unwrap_or(Bucket {
            lower: 0.0,
            upper: 0.0,
            lower_inclusive: false,
            upper_inclusive: false,
            count: 0.0,
        });
        let custom = self.uses_custom_buckets();
        if !custom && b.lower < 0.0 && b.upper > 0.0 {
            let has_neg = !self.negative_buckets.is_empty();
            let has_pos = !self.positive_buckets.is_empty();
            if !has_neg && has_pos {
                b.lower = 0.0;
            } else if !has_pos && has_neg {
                b.upper = 0.0;
            }
        } else if custom {
            if b.lower == f64::NEG_INFINITY {
                if b.upper <= 0.0 {
                    return b.upper;
                }
                b.lower = 0.0;
            } else if b.upper == f64::INFINITY {
                return b.lower;
            }
        }
        if count > self.count {
            count = self.count;
        }
        if count < rank {
            // Only NaN observations (counted, in no bucket) leave the rank unreached.
            return if self.sum.is_nan() { f64::NAN } else { b.upper };
        }
        if forward {
            rank -= count - b.count;
        } else {
            rank = count - rank;
        }
        let fraction = rank / b.count;
        if custom || (b.lower <= 0.0 && b.upper >= 0.0) {
            return b.lower + (b.upper - b.lower) * fraction;
        }
        let log_lower = go_log2(b.lower.abs());
        let log_upper = go_log2(b.upper.abs());
        if b.lower > 0.0 {
            return go_exp2(log_lower + (log_upper - log_lower) * fraction);
        }
        -go_exp2(log_upper + (log_lower - log_upper) * (1.0 - fraction))
    }

    /// The estimated fraction of observations in `[lower, upper]`, interpolated as in
    /// [`FloatHistogram::quantile`].
    pub fn fraction(&self, lower: f64, upper: f64) -> f64 {
        if self.count == 0.0 || lower.is_nan() || upper.is_nan() {
            return f64::NAN;
        }
        if lower >= upper {
            return 0.0;
        }
        let custom = self.uses_custom_buckets();
        let has_neg = !self.negative_buckets.is_empty();
        let has_pos = !self.positive_buckets.is_empty();
        let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
        let (mut lower_set, mut upper_set) = (false, false);
        for mut b in self.all_buckets() {
            let mut zero_bucket = false;
            if b.lower <= 0.0 && b.upper >= 0.0 {
                zero_bucket = true;
                if !has_neg && has_pos {
                    b.lower = 0.0;
                } else if !has_pos && has_neg {
                    b.upper = 0.0;
                }
            }
            let linear = |v: f64| rank + b.count * (v - b.lower) / (b.upper - b.lower);
            let exponential = |v: f64| {
                let (ll, lu, lv) = (
                    go_log2(b.lower.abs()),
                    go_log2(b.upper.abs()),
                    go_log2(v.abs()),
                );
                let f = if v > 0.0 {
                    (lv - ll) / (lu - ll)
                } else {
                    1.0 - (lv - lu) / (ll - lu)
                };
                rank + b.count * f
            };
            let interpolate = |v: f64| {
                if custom || zero_bucket {
                    linear(v)
                } else {
                    exponential(v)
                }
            };
            if !lower_set && b.lower >= lower {
                lower_rank = rank;
                lower_set = true;
            }
            if !upper_set && b.lower >= upper {
                upper_rank = rank;
                upper_set = true;
            }
            if lower_set && upper_set {
                break;
            }
            if !lower_set && b.lower < lower && b.upper > lower {
                lower_rank = interpolate(lower);
                lower_set = true;
            }
            if !upper_set && b.lower < upper && b.upper > upper {
                upper_rank = interpolate(upper);
                upper_set = true;
            }
            if lower_set && upper_set {
                break;
            }
            rank += b.count;
        }
        // Unset bounds lie beyond every bucket: all bucketed observations are below them
        // (NaN observations are counted but in no bucket, so they never are).
        if !lower_set {
            lower_rank = rank;
        }
        if !upper_set {
            upper_rank = rank;
        }
        lower_rank = lower_rank.min(self.count);
        upper_rank = upper_rank.min(self.count);
        (upper_rank - lower_rank) / self.count
    }
}

/// log2 computed as Go's math.Log2 does (exact for powers of two, else ln(frac)/ln 2 + exp),
/// so interpolated quantiles match Prometheus to the last bit.
fn go_log2(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() || x < 0.0 {
        return x.log2();
    }
    let (frac, exp) = frexp(x);
    if frac == 0.5 {
        return (exp - 1) as f64;
    }
    frac.ln() * (1.0 / std::f64::consts::LN_2) + exp as f64
}

/// `x = frac * 2^exp` with frac in [0.5, 1).
fn frexp(x: f64) -> (f64, i32) {
    let bits = x.to_bits();
    let raw_exp = ((bits >> 52) & 0x7ff) as i32;
    if raw_exp == 0 {
        // Subnormal: scale into the normal range first.
        let (f, e) = frexp(x * 2f64.powi(54));
        return (f, e - 54);
    }
    let frac = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (frac, raw_exp - 1022)
}

/// 2^x with the fdlibm exp kernel that Go's math.Exp2 uses (the platform exp2 can differ in
/// the last bit, which promtool's exact comparisons would see).
fn go_exp2(x: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const P1: f64 = 1.666_666_666_666_666_6e-1;
    const P2: f64 = -2.777_777_777_701_559_3e-3;
    const P3: f64 = 6.613756321437934e-05;
    const P4: f64 = -1.6533902205465252e-06;
    const P5: f64 = 4.1381367970572385e-08;
    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    if x == f64::NEG_INFINITY {
        return 0.0;
    }
    if x > 1.023_999_999_999_999_9e3 {
        return f64::INFINITY;
    }
    if x < -1.074e3 {
        return 0.0;
    }
    // x = k + t with |t| <= 1/2; 2^t = e^(t ln 2), ln 2 split in two for precision.
    let k = if x > 0.0 {
        (x + 0.5) as i32
    } else if x < 0.0 {
        (x - 0.5) as i32
    } else {
        0
    };
    let t = x - k as f64;
    let hi = t * LN2_HI;
    let lo = -t * LN2_LO;
    let r = hi - lo;
    let tt = r * r;
    let c = r - tt * (P1 + tt * (P2 + tt * (P3 + tt * (P4 + tt * P5))));
    let y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi);
    ldexp(y, k)
}

fn same_floats(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || x == y)
}

/// Merges buckets into a coarser schema (`delta` steps coarser): bucket `i` goes to
/// `((i - 1) >> delta) + 1`, so that upper bounds stay bucket boundaries.
fn reduce(pairs: &[(i32, f64)], delta: i32) -> Vec<(i32, f64)> {
    let mut out: Vec<(i32, f64)> = Vec::with_capacity(pairs.len());
    for &(i, c) in pairs {
        let t = ((i - 1) >> delta) + 1;
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 += c,
            _ => out.push((t, c)),
        }
    }
    out
}

/// The zero threshold needed so that no populated bucket straddles `thr`.
fn widen(pos: &[(i32, f64)], neg: &[(i32, f64)], schema: i32, thr: f64) -> f64 {
    let mut thr = thr;
    for pairs in [pos, neg] {
        for &(i, c) in pairs {
            let (lower, upper) = (
                exponential_upper(i - 1, schema),
                exponential_upper(i, schema),
            );
            if lower >= thr {
                break;
            }
            if upper > thr && c != 0.0 {
                thr = upper;
            }
        }
    }
    thr
}

/// Removes the buckets that lie inside the zero bucket `[-thr, thr]`; returns their count.
fn absorb(pos: &mut Vec<(i32, f64)>, neg: &mut Vec<(i32, f64)>, schema: i32, thr: f64) -> f64 {
    let mut total = 0.0;
    for pairs in [pos, neg] {
        pairs.retain(|&(i, c)| {
            if exponential_upper(i, schema) <= thr {
                total += c;
                false
            } else {
                true
            }
        });
    }
    total
}

/// `a + sign*b` over the union of bucket indices.
fn merge(a: &[(i32, f64)], b: &[(i32, f64)], sign: f64) -> Vec<(i32, f64)> {
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.0 == y.0 => {
                out.push((x.0, x.1 + sign * y.1));
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.0 < y.0 => {
                out.push(*x);
                i += 1;
            }
            (Some(x), None) => {
                out.push(*x);
                i += 1;
            }
            (_, Some(y)) => {
                out.push((y.0, sign * y.1));
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

/// Whether a bucket populated in `prev` is missing or smaller in `cur`.
fn bucket_decreased(cur: &[(i32, f64)], prev: &[(i32, f64)]) -> bool {
    let mut j = 0;
    for &(i, c) in prev {
        if c == 0.0 {
            continue;
        }
        while j < cur.len() && cur[j].0 < i {
            j += 1;
        }
        match cur.get(j) {
            Some(&(ci, cc)) if ci == i && cc >= c => {}
            _ => return true,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(schema: i32, pos: &[(i32, f64)], count: f64, sum: f64) -> FloatHistogram {
        let mut h = FloatHistogram {
            schema,
            count,
            sum,
            ..Default::default()
        };
        h.set_positive(pos);
        h
    }

    #[test]
    fn spans_round_trip_through_index_pairs() {
        let spans = [
            BucketSpan {
                offset: -3,
                length: 2,
            },
            BucketSpan {
                offset: 2,
                length: 1,
            },
        ];
        let pairs = span_buckets(&spans, &[1.0, 2.0, 3.0]);
        assert_eq!(pairs, vec![(-3, 1.0), (-2, 2.0), (1, 3.0)]);
        assert_eq!(
            to_spans(&pairs, false),
            (spans.to_vec(), vec![1.0, 2.0, 3.0])
        );
    }

    #[test]
    fn exponential_bounds_follow_the_schema() {
        assert_eq!(exponential_upper(0, 0), 1.0);
        assert_eq!(exponential_upper(1, 0), 2.0);
        assert_eq!(exponential_upper(-1, 0), 0.5);
        assert_eq!(exponential_upper(1, -1), 4.0);
        assert!((exponential_upper(1, 1) - std::f64::consts::SQRT_2).abs() < 1e-15);
        assert_eq!(exponential_upper(2, 1), 2.0);
    }

    #[test]
    fn add_reduces_to_the_coarser_schema() {
        let mut a = hist(1, &[(1, 1.0), (2, 1.0)], 2.0, 3.0);
        let b = hist(0, &[(1, 5.0)], 5.0, 7.0);
        a.add(&b).unwrap();
        assert_eq!(a.schema, 0);
        assert_eq!(a.positive(), vec![(1, 7.0)]);
        assert_eq!((a.count, a.sum), (7.0, 10.0));
    }

    #[test]
    fn sub_keeps_emptied_buckets_until_compacted() {
        let mut a = hist(0, &[(0, 2.0), (1, 3.0)], 5.0, 5.0);
        a.sub(&hist(0, &[(0, 2.0)], 2.0, 1.0)).unwrap();
        assert_eq!(a.positive(), vec![(0, 0.0), (1, 3.0)]);
        a.compact();
        assert_eq!(a.positive(), vec![(1, 3.0)]);
    }

    #[test]
    fn add_refuses_mixed_bucket_kinds() {
        let mut a = hist(0, &[], 0.0, 0.0);
        let mut b = hist(CUSTOM_BUCKETS_SCHEMA, &[], 0.0, 0.0);
        b.custom_values = vec![1.0];
        assert_eq!(a.add(&b), Err(HistogramError::IncompatibleSchema));
    }

    #[test]
    fn wider_zero_bucket_absorbs_small_buckets() {
        let mut a = hist(0, &[(-1, 1.0), (2, 1.0)], 2.0, 1.0);
        let mut b = hist(0, &[], 1.0, 0.0);
        b.zero_threshold = 0.5;
        b.zero_count = 1.0;
        a.add(&b).unwrap();
        assert_eq!(a.zero_threshold, 0.5);
        assert_eq!(a.zero_count, 2.0);
        assert_eq!(a.positive(), vec![(2, 1.0)]);
    }

    #[test]
    fn reset_is_detected_from_any_decrease() {
        let prev = hist(0, &[(0, 2.0), (1, 2.0)], 4.0, 4.0);
        assert!(!hist(0, &[(0, 2.0), (1, 3.0)], 5.0, 5.0).detect_reset(&prev));
        assert!(hist(0, &[(0, 1.0), (1, 4.0)], 5.0, 5.0).detect_reset(&prev));
        assert!(hist(0, &[(1, 5.0)], 5.0, 5.0).detect_reset(&prev));
        assert!(hist(0, &[(0, 2.0), (1, 2.0)], 3.0, 5.0).detect_reset(&prev));
    }

    #[test]
    fn quantile_interpolates_exponentially_in_buckets() {
        // One bucket (1,2] with 4 observations: the median is at sqrt(2).
        let h = hist(0, &[(1, 4.0)], 4.0, 6.0);
        assert!((h.quantile(0.5) - std::f64::consts::SQRT_2).abs() < 1e-12);
        assert_eq!(h.quantile(1.0), 2.0);
        assert_eq!(h.quantile(1.5), f64::INFINITY);
        assert!(hist(0, &[], 0.0, 0.0).quantile(0.5).is_nan());
    }

    #[test]
    fn go_string_lists_populated_buckets_from_most_negative() {
        let mut h = hist(0, &[(0, 1.0), (1, 2.0)], 20.0, 10.0);
        h.zero_threshold = 0.001;
        h.zero_count = 2.0;
        h.set_negative(&[(0, 1.0), (1, 2.0)]);
        assert_eq!(
            h.go_string(),
            "{count:20, sum:10, [-2,-1):2, [-1,-0.5):1, [-0.001,0.001]:2, (0.5,1]:1, (1,2]:2}"
        );
    }

    #[test]
    fn fraction_is_the_inverse_of_quantile() {
        let h = hist(0, &[(1, 4.0), (2, 4.0)], 8.0, 20.0);
        assert_eq!(h.fraction(f64::NEG_INFINITY, 2.0), 0.5);
        let q = h.quantile(0.75);
        assert!((h.fraction(f64::NEG_INFINITY, q) - 0.75).abs() < 1e-12);
        assert_eq!(h.fraction(3.0, 3.0), 0.0);
    }
}
