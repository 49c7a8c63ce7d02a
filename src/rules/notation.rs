//! The series value notation of promqltest `load` blocks and promtool `input_series`:
//! `metric{a="b"}` selectors and `1+2x3 _ stale _x2` value lists.
//!
//! Native histograms are written `{{schema:1 sum:-0.3 count:32.1 z_bucket:7.1 z_bucket_w:0.05
//! buckets:[5.1 10 7] offset:-3 n_buckets:[4.1 5] n_offset:-5 counter_reset_hint:gauge
//! custom_values:[1 2]}}`, expanded like floats (`{{…}}x2`, `{{…}}+{{…}}x3`).
//!
//! Owns: expanding that notation into labels and per-step values, and printing a histogram
//! back in it (promtool's and promqltest's `TestExpression`, used in failure messages and
//! comparisons). Used by `promlet test rules`, the in-memory test store's loaders and the
//! promqltest conformance runner (tests/promqltest.rs). Must not touch: storage.

use crate::histogram::{CounterResetHint, FloatHistogram, CUSTOM_BUCKETS_SCHEMA};
use crate::model::{stale_nan, Labels};
use crate::promql::lexer::{lex, Tok};

/// One value of a series in the notation.
#[derive(Clone, Debug, PartialEq)]
pub enum SeriesValue {
    Float(f64),
    Histogram(Box<FloatHistogram>),
}

impl SeriesValue {
    /// The float, if this is one.
    pub fn as_float(&self) -> Option<f64> {
        match self {
            SeriesValue::Float(v) => Some(*v),
            SeriesValue::Histogram(_) => None,
        }
    }
}

pub fn parse_number(s: &str) -> Option<f64> {
    let l = s.to_ascii_lowercase();
    let (neg, body) = match l.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, l.strip_prefix('+').unwrap_or(&l)),
    };
    let v = match body {
        "inf" => f64::INFINITY,
        "nan" => f64::NAN,
        b if b.starts_with("0x") => i64::from_str_radix(&b[2..], 16).ok()? as f64,
        b if b.starts_with("0o") => i64::from_str_radix(&b[2..], 8).ok()? as f64,
        b if b.starts_with("0b") => i64::from_str_radix(&b[2..], 2).ok()? as f64,
        b => b.parse::<f64>().ok()?,
    };
    Some(if neg { -v } else { v })
}

/// Splits `metric{labels} values...` into the label set and the rest of the line.
pub fn parse_series(line: &str) -> Result<(Labels, String), String> {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'{' {
        i += 1;
    }
    if i < b.len() && b[i] == b'{' {
        let mut in_q = false;
        let mut esc = false;
        while i < b.len() {
            let c = b[i];
            i += 1;
            if esc {
                esc = false;
                continue;
            }
            match c {
                b'\\' if in_q => esc = true,
                b'"' => in_q = !in_q,
                b'}' if !in_q => break,
                _ => {}
            }
        }
    }
    let metric = &line[..i];
    let rest = line[i..].trim().to_string();
    let toks = lex(metric).map_err(|e| e.to_string())?;
    let mut labels = Labels::new();
    let mut k = 0;
    // Past the end reads as Eof, so malformed input is an error, never an index panic.
    let tok = |i: usize| toks.get(i).map(|t| &t.tok).unwrap_or(&Tok::Eof);
    if let Tok::Ident(n) = tok(0) {
        labels.set("__name__".into(), n.clone());
        k = 1;
    }
    if *tok(k) == Tok::LBrace {
        k += 1;
        loop {
            match tok(k) {
                Tok::RBrace => break,
                Tok::Comma => k += 1,
                Tok::Ident(n) | Tok::Str(n) if *tok(k + 1) == Tok::Assign => {
                    let Tok::Str(v) = tok(k + 2) else {
                        return Err(format!("bad label value in {metric}"));
                    };
                    labels.set(n.clone(), v.clone());
                    k += 3;
                }
                Tok::Str(n) => {
                    labels.set("__name__".into(), n.clone());
                    k += 1;
                }
                t => return Err(format!("unexpected {t:?} in {metric}")),
            }
        }
    }
    Ok((labels, rest))
}

/// Splits a value list at whitespace outside `{{ }}`.
fn split_items(s: &str) -> Result<Vec<&str>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let mut depth = 0usize;
        while i < b.len() && (depth > 0 || !b[i].is_ascii_whitespace()) {
            if b[i..].starts_with(b"{{") {
                depth += 1;
                i += 2;
            } else if b[i..].starts_with(b"}}") {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("unbalanced }}}} in {:?}", &s[start..]))?;
                i += 2;
            } else {
                i += 1;
            }
        }
        if depth > 0 {
            return Err(format!("unterminated histogram {{{{ in {:?}", &s[start..]));
        }
        out.push(&s[start..i]);
    }
    Ok(out)
}

/// Expands the value notation (`1+2x3 _ stale _x2 {{count:1}}x2 ...`); None = no sample.
pub fn parse_values(s: &str) -> Result<Vec<Option<SeriesValue>>, String> {
    let mut out = Vec::new();
    for item in split_items(s)? {
        if item.starts_with("{{") {
            expand_histogram(item, &mut out)?;
            continue;
        }
        if item == "_" {
            out.push(None);
            continue;
        }
        if let Some(n) = item.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|_| format!("bad item {item}"))?;
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        if item == "stale" {
            out.push(Some(SeriesValue::Float(stale_nan())));
            continue;
        }
        if let Some(n) = item.strip_prefix("stalex") {
            let n: usize = n.parse().map_err(|_| format!("bad item {item}"))?;
            out.extend(std::iter::repeat_n(
                Some(SeriesValue::Float(stale_nan())),
                n + 1,
            ));
            continue;
        }
        // a[+-]bxN or axN or a
        let (head, times) = match item.rfind('x') {
            Some(p) if item[p + 1..].bytes().all(|c| c.is_ascii_digit()) && p + 1 < item.len() => (
                &item[..p],
                Some(item[p + 1..].parse::<usize>().map_err(|e| e.to_string())?),
            ),
            _ => (item, None),
        };
        let hb = head.as_bytes();
        let mut split = None;
        for j in 1..hb.len() {
            if (hb[j] == b'+' || hb[j] == b'-') && !matches!(hb[j - 1], b'e' | b'E') {
                split = Some(j);
            }
        }
        let f = |v| Some(SeriesValue::Float(v));
        match (split, times) {
            (Some(j), Some(n)) => {
                let a = parse_number(&head[..j]).ok_or(format!("bad number in {item}"))?;
                let d = parse_number(&head[j + 1..]).ok_or(format!("bad number in {item}"))?;
                let d = if hb[j] == b'-' { -d } else { d };
                let mut v = a;
                for _ in 0..=n {
                    out.push(f(v));
                    v += d;
                }
            }
            (None, Some(n)) => {
                let a = parse_number(head).ok_or(format!("bad number in {item}"))?;
                out.extend(std::iter::repeat_n(f(a), n + 1));
            }
            (None, None) => out.push(f(parse_number(head).ok_or(format!("bad item {item}"))?)),
            (Some(_), None) => return Err(format!("bad item {item}")),
        }
    }
    Ok(out)
}

/// `{{…}}`, `{{…}}xN`, `{{…}}+{{…}}xN` or `{{…}}-{{…}}xN`.
fn expand_histogram(item: &str, out: &mut Vec<Option<SeriesValue>>) -> Result<(), String> {
    let end = item
        .find("}}")
        .ok_or_else(|| format!("bad histogram {item}"))?
        + 2;
    let base = parse_histogram(&item[..end])?;
    let rest = &item[end..];
    if rest.is_empty() {
        out.push(Some(SeriesValue::Histogram(Box::new(base))));
        return Ok(());
    }
    let times = |s: &str| -> Result<usize, String> {
        s.strip_prefix('x')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| format!("bad histogram repetition in {item}"))
    };
    if let Some(sign @ ('+' | '-')) = rest.chars().next() {
        let inc_end = rest
            .find("}}")
            .ok_or_else(|| format!("bad histogram {item}"))?
            + 2;
        let inc = parse_histogram(&rest[1..inc_end])?;
        let n = times(&rest[inc_end..])?;
        let mut cur = base;
        for i in 0..=n {
            if i > 0 {
                if cur.schema > inc.schema && !inc.uses_custom_buckets() {
                    return Err(format!(
                        "error combining histograms: cannot merge from schema {} to {}",
                        inc.schema, cur.schema
                    ));
                }
                let r = if sign == '+' {
                    cur.add(&inc)
                } else {
                    cur.sub(&inc)
                };
                r.map_err(|e| format!("error combining histograms: {e}"))?;
                cur.compact();
            }
            out.push(Some(SeriesValue::Histogram(Box::new(cur.clone()))));
        }
        return Ok(());
    }
    let n = times(rest)?;
    for _ in 0..=n {
        out.push(Some(SeriesValue::Histogram(Box::new(base.clone()))));
    }
    Ok(())
}

/// Parses one `{{key:value ...}}` histogram.
pub fn parse_histogram(s: &str) -> Result<FloatHistogram, String> {
    let inner = s
        .strip_prefix("{{")
        .and_then(|x| x.strip_suffix("}}"))
        .ok_or_else(|| format!("bad histogram {s}"))?;
    let mut h = FloatHistogram::default();
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    let (mut pos_off, mut neg_off) = (0i32, 0i32);
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let colon = rest
            .find(':')
            .ok_or_else(|| format!("bad histogram field {rest:?} in {s}"))?;
        let key = rest[..colon].trim();
        rest = rest[colon + 1..].trim_start();
        let (val, after) = if rest.starts_with('[') {
            let close = rest
                .find(']')
                .ok_or_else(|| format!("unterminated [ in {s}"))?;
            (&rest[..=close], &rest[close + 1..])
        } else {
            let e = rest.find(char::is_whitespace).unwrap_or(rest.len());
            (&rest[..e], &rest[e..])
        };
        rest = after.trim_start();
        let num = || parse_number(val).ok_or_else(|| format!("bad value {val:?} for {key} in {s}"));
        let list = || -> Result<Vec<f64>, String> {
            val.strip_prefix('[')
                .and_then(|v| v.strip_suffix(']'))
                .ok_or_else(|| format!("{key} needs a [list] in {s}"))?
                .split_whitespace()
                .map(|x| parse_number(x).ok_or_else(|| format!("bad value {x:?} in {s}")))
                .collect()
        };
        let int = || -> Result<i32, String> {
            val.parse::<i32>()
                .map_err(|_| format!("bad integer {val:?} for {key} in {s}"))
        };
        match key {
            "schema" => h.schema = int()?,
            "sum" => h.sum = num()?,
            "count" => h.count = num()?,
            "z_bucket" => h.zero_count = num()?,
            "z_bucket_w" => h.zero_threshold = num()?,
            "buckets" => pos = list()?,
            "offset" => pos_off = int()?,
            "n_buckets" => neg = list()?,
            "n_offset" => neg_off = int()?,
            "custom_values" => h.custom_values = list()?,
            "counter_reset_hint" => {
                h.counter_reset_hint = match val {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::Reset,
                    "not_reset" => CounterResetHint::NotReset,
                    "gauge" => CounterResetHint::Gauge,
                    _ => return Err(format!("bad counter_reset_hint {val:?} in {s}")),
                }
            }
            _ => return Err(format!("unknown histogram field {key:?} in {s}")),
        }
    }
    if !h.custom_values.is_empty() {
        h.schema = CUSTOM_BUCKETS_SCHEMA;
    }
    let idx = |off: i32, v: Vec<f64>| -> Vec<(i32, f64)> {
        v.into_iter()
            .enumerate()
            .map(|(i, c)| (off + i as i32, c))
            .collect()
    };
    h.set_positive(&idx(pos_off, pos));
    h.set_negative(&idx(neg_off, neg));
    Ok(h)
}

/// A histogram in the notation, exactly as Prometheus's `TestExpression` prints it: zero
/// fields left out, each bucket side compacted to one span.
pub fn histogram_expression(h: &FloatHistogram) -> String {
    use crate::rules::gofmt::format_g;
    let g = |v: f64| format_g(v, None);
    let mut parts: Vec<String> = Vec::new();
    if h.schema != 0 {
        parts.push(format!("schema:{}", h.schema));
    }
    if h.count != 0.0 {
        parts.push(format!("count:{}", g(h.count)));
    }
    if h.sum != 0.0 {
        parts.push(format!("sum:{}", g(h.sum)));
    }
    if h.zero_count != 0.0 {
        parts.push(format!("z_bucket:{}", g(h.zero_count)));
    }
    if h.zero_threshold != 0.0 {
        parts.push(format!("z_bucket_w:{}", g(h.zero_threshold)));
    }
    if h.uses_custom_buckets() {
        let cv: Vec<String> = h.custom_values.iter().map(|v| g(*v)).collect();
        parts.push(format!("custom_values:[{}]", cv.join(" ")));
    }
    match h.counter_reset_hint {
        CounterResetHint::Unknown => {}
        CounterResetHint::Reset => parts.push("counter_reset_hint:reset".into()),
        CounterResetHint::NotReset => parts.push("counter_reset_hint:not_reset".into()),
        CounterResetHint::Gauge => parts.push("counter_reset_hint:gauge".into()),
    }
    for (pairs, bkey, okey) in [
        (h.positive(), "buckets", "offset"),
        (h.negative(), "n_buckets", "n_offset"),
    ] {
        // One span from the first to the last populated bucket (Compact(MaxInt)).
        let first = pairs.iter().position(|p| p.1 != 0.0);
        let last = pairs.iter().rposition(|p| p.1 != 0.0);
        let (Some(first), Some(last)) = (first, last) else {
            continue;
        };
        let (lo, hi) = (pairs[first].0, pairs[last].0);
        if lo != 0 {
            parts.push(format!("{okey}:{lo}"));
        }
        let mut counts = vec![0.0; (hi - lo + 1) as usize];
        for &(i, c) in &pairs[first..=last] {
            counts[(i - lo) as usize] = c;
        }
        let cs: Vec<String> = counts.iter().map(|c| g(*c)).collect();
        parts.push(format!("{bkey}:[{}]", cs.join(" ")));
    }
    format!("{{{{{}}}}}", parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(s: &str) -> FloatHistogram {
        parse_histogram(s).unwrap()
    }

    #[test]
    fn histogram_notation_parses_every_field() {
        let h = hist("{{schema:1 sum:-0.3 count:32.1 z_bucket:7.1 z_bucket_w:0.05 buckets:[5.1 10 7] offset:-3 n_buckets:[4.1 5] n_offset:-5}}");
        assert_eq!(h.schema, 1);
        assert_eq!(
            (h.sum, h.count, h.zero_count, h.zero_threshold),
            (-0.3, 32.1, 7.1, 0.05)
        );
        assert_eq!(h.positive(), vec![(-3, 5.1), (-2, 10.0), (-1, 7.0)]);
        assert_eq!(h.negative(), vec![(-5, 4.1), (-4, 5.0)]);
        let g = hist("{{custom_values:[1 2] buckets:[1 2 3] counter_reset_hint:gauge}}");
        assert_eq!(g.schema, CUSTOM_BUCKETS_SCHEMA);
        assert_eq!(g.counter_reset_hint, CounterResetHint::Gauge);
    }

    #[test]
    fn histogram_notation_rejects_bad_fields() {
        assert!(parse_histogram("{{nope:1}}").is_err());
        assert!(parse_histogram("{{count:x}}").is_err());
        assert!(parse_histogram("{{buckets:[1 2}}").is_err());
        assert!(parse_values("{{count:1").is_err());
        assert!(parse_values("{{count:1}}y2").is_err());
    }

    #[test]
    fn histogram_expression_prints_like_promtool() {
        let s = "{{schema:1 count:32.1 sum:-0.3 z_bucket:7.1 z_bucket_w:0.05 offset:-3 buckets:[5.1 10 7] n_offset:-5 n_buckets:[4.1 5]}}";
        assert_eq!(histogram_expression(&hist(s)), s);
        // Empty buckets at the ends go; gaps are filled with zeros.
        let mut h = hist("{{buckets:[0 1] offset:1}}");
        let mut p = h.positive();
        p.push((5, 2.0));
        h.set_positive(&p);
        assert_eq!(histogram_expression(&h), "{{offset:2 buckets:[1 0 0 2]}}");
    }

    #[test]
    fn histogram_values_expand_repeats_and_increments() {
        let v = parse_values(
            "{{sum:3 count:2 buckets:[2]}}+{{sum:1.3 count:1 buckets:[1]}}x2 _ {{count:1}}x1",
        )
        .unwrap();
        assert_eq!(v.len(), 6);
        let Some(SeriesValue::Histogram(h)) = &v[2] else {
            panic!("histogram expected");
        };
        assert_eq!(histogram_expression(h), "{{count:4 sum:5.6 buckets:[4]}}");
        assert!(v[3].is_none());
        assert_eq!(v[5], v[4]);
    }

    #[test]
    fn float_values_still_expand() {
        let v = parse_values("1+1x2 _x2 stale 5").unwrap();
        let f: Vec<Option<f64>> = v
            .iter()
            .map(|x| x.as_ref().and_then(|x| x.as_float()))
            .collect();
        assert_eq!(f.len(), 7);
        assert_eq!(&f[..3], &[Some(1.0), Some(2.0), Some(3.0)]);
        assert_eq!(f[6], Some(5.0));
    }
}
