//! Conformance: runs Prometheus's own promqltest `*.test` scripts (../shared/promql-tests) against
//! our engine over an in-memory store, including the upstream runner's extra checks (each
//! instant eval re-run with `@` at other times, and as a range query). Evals that use native
//! histograms run on the in-memory store only (the ring TSDB stores floats); those over series
//! loaded with `load_with_nhcb` (classic histograms converted to custom-bucket native ones) and
//! evals of experimental features are skipped and counted. Fails when a store's pass count
//! drops below its floor in tests/promqltest-floor.txt.
//!
//! `PROMQLTEST_VERBOSE=1` prints every failure; `PROMQLTEST_FILE=name` runs one file.

use crate::common;
use promlet::histogram::{CounterResetHint, FloatHistogram};
use promlet::model::Labels;
use promlet::promql::ast::{AtModifier, Expr};
use promlet::promql::engine::{go_labels, Value};
use promlet::promql::functions::almost_equal;
use promlet::promql::lexer::{lex, parse_duration, Tok};
use promlet::promql::testing::MemStorage;
use promlet::promql::{instant_query, parse, range_query, EngineOpts};
use promlet::rules::notation::{
    histogram_expression, parse_number, parse_series, parse_values, SeriesValue,
};
use promlet::tsdb::Appender;
use promlet::tsdb::Querier;
use std::collections::{HashMap, HashSet};

/// Files that are about a feature we do not implement; reported, not required.
const FEATURE_FILES: &[&str] = &[
    "native_histograms.test",
    "limit.test",
    "info.test",
    "fill-modifier.test",
    "extended_vectors.test",
    "duration_expression.test",
    "start_timestamps.test",
    "type_and_unit.test",
];

#[derive(Debug, Clone)]
enum Expected {
    /// Label set -> values (None = `_`).
    Series(Vec<(Labels, Vec<Option<SeriesValue>>)>),
    Scalar(f64),
    Str(String),
}

#[derive(Debug, Clone, Default)]
struct AnnoExpect {
    fail: Option<Option<(bool, String)>>, // Some(None) = any failure; (is_regex, text)
    warn: Vec<Option<(bool, String)>>,
    info: Vec<Option<(bool, String)>>,
    no_warn: bool,
    no_info: bool,
    ordered: bool,
}

#[derive(Debug, Clone)]
struct Eval {
    line: usize,
    query: String,
    range: Option<(i64, i64, i64)>,
    at: i64,
    /// `expect range vector from .. to .. step ..` on an instant eval.
    range_vector: Option<(i64, i64, i64)>,
    expect: AnnoExpect,
    expected: Expected,
}

#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    pass: usize,
    fail: usize,
    skip: usize,
}

fn parse_dur(s: &str) -> Result<i64, String> {
    parse_duration(s).ok_or_else(|| format!("bad duration {s:?}"))
}

fn parse_expect_text(rest: &str) -> Option<(bool, String)> {
    let r = rest.trim();
    if let Some(m) = r.strip_prefix("msg:") {
        return Some((false, m.trim().to_string()));
    }
    if let Some(m) = r.strip_prefix("regex:") {
        return Some((true, m.trim().to_string()));
    }
    None
}

enum Cmd {
    Clear,
    Load(Vec<(Labels, Vec<Option<SeriesValue>>)>, i64),
    /// An eval and why it is skipped: on every store, or (native histograms) only on stores
    /// that cannot hold histograms.
    Eval(Box<Eval>, Option<&'static str>),
}

/// A range result as (labels, [(t, v)]).
type Points = Vec<(Labels, Vec<(i64, SeriesValue)>)>;

/// Why an eval over native histograms is skipped on a store without histograms.
const NATIVE_HISTOGRAM: &str = "native histogram";

/// Why an eval is skipped: native histograms or an experimental feature.
fn skip_reason(
    query: &str,
    expected_text: &str,
    nh_names: &HashSet<String>,
    nh_series: &[Labels],
    st_section: bool,
) -> Option<&'static str> {
    // Any selector that can select a series loaded with native histograms.
    if let Ok(e) = parse(query) {
        let mut hit = false;
        e.walk(&mut |n| {
            if let Expr::Vector(vs) | Expr::Matrix { vs, .. } = n {
                if nh_series.iter().any(|l| {
                    vs.matchers
                        .iter()
                        .all(|m| m.matches(l.get(&m.name).unwrap_or("")))
                }) {
                    hit = true;
                }
            }
        });
        if hit {
            return Some("native histogram");
        }
    }
    if expected_text.contains("{{") {
        return Some("native histogram");
    }
    for f in [
        "histogram_count",
        "histogram_sum",
        "histogram_avg",
        "histogram_stddev",
        "histogram_stdvar",
    ] {
        if query.contains(f) {
            return Some("native histogram");
        }
    }
    let idents: Vec<String> = match lex(query) {
        Ok(t) => t
            .iter()
            .filter_map(|t| match &t.tok {
                Tok::Ident(s) | Tok::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        Err(_) => vec![],
    };
    for n in nh_names {
        if idents.iter().any(|i| i == n) {
            return Some("native histogram");
        }
        // Regex name matchers that may select a histogram.
        if let Ok(toks) = lex(query) {
            for w in toks.windows(3) {
                if let (Tok::Ident(l), Tok::EqlRegex, Tok::Str(re)) =
                    (&w[0].tok, &w[1].tok, &w[2].tok)
                {
                    if l == "__name__" {
                        if let Ok(r) = regex_lite::Regex::new(&format!("^(?:{re})$")) {
                            if r.is_match(n) {
                                return Some("native histogram");
                            }
                        }
                    }
                }
            }
        }
    }
    const EXPER: &[&str] = &[
        "anchored",
        "smoothed",
        "fill",
        "fill_left",
        "fill_right",
        "info",
        "limitk",
        "limit_ratio",
        "histogram_quantiles",
        "double_exponential_smoothing",
        "mad_over_time",
        "ts_of_first_over_time",
        "ts_of_last_over_time",
        "ts_of_min_over_time",
        "ts_of_max_over_time",
        "sort_by_label",
        "sort_by_label_desc",
        "start_timestamp",
        "max_of",
        "min_of",
        "first_over_time",
        "__type__",
        "__unit__",
    ];
    // The histogram trim operators `</` and `>/`.
    if query.contains("</") || query.contains(">/") {
        return Some("experimental");
    }
    if let Ok(toks) = lex(query) {
        for (i, t) in toks.iter().enumerate() {
            if let Tok::Ident(s) = &t.tok {
                if EXPER.contains(&s.as_str()) {
                    return Some("experimental");
                }
                // start()/end()/range()/step() as functions (not after `@`).
                if ["start", "end", "range", "step"].contains(&s.as_str())
                    && toks.get(i + 1).map(|t| &t.tok) == Some(&Tok::LParen)
                    && (i == 0 || toks[i - 1].tok != Tok::At)
                {
                    return Some("experimental");
                }
            }
            if let Tok::Str(s) = &t.tok {
                if s == "__type__" || s == "__unit__" {
                    return Some("experimental");
                }
            }
            // Duration expressions: anything but a literal inside [..] or after offset/@.
            if t.tok == Tok::LBracket {
                let mut j = i + 1;
                while j < toks.len() && !matches!(toks[j].tok, Tok::RBracket) {
                    if !matches!(toks[j].tok, Tok::Duration(_) | Tok::Number(_) | Tok::Colon) {
                        return Some("experimental");
                    }
                    j += 1;
                }
            }
            if matches!(&t.tok, Tok::Ident(s) if s == "offset") {
                let mut j = i + 1;
                if matches!(toks.get(j).map(|t| &t.tok), Some(Tok::Sub | Tok::Add)) {
                    j += 1;
                }
                if !matches!(
                    toks.get(j).map(|t| &t.tok),
                    Some(Tok::Duration(_) | Tok::Number(_))
                ) {
                    return Some("experimental");
                }
                if matches!(
                    toks.get(j + 1).map(|t| &t.tok),
                    Some(Tok::Add | Tok::Sub | Tok::Mul | Tok::Div | Tok::Mod | Tok::Pow)
                ) && matches!(toks.get(j + 2).map(|t| &t.tok), Some(Tok::Duration(_)))
                {
                    return Some("experimental");
                }
            }
        }
    }
    if st_section {
        return Some("start timestamps");
    }
    None
}

fn parse_file(text: &str) -> Result<Vec<Cmd>, String> {
    let lines: Vec<String> = text
        .split('\n')
        .map(|l| {
            let t = l.trim();
            if t.starts_with('#') {
                String::new()
            } else {
                t.to_string()
            }
        })
        .collect();
    let mut cmds = Vec::new();
    let mut nh_names: HashSet<String> = HashSet::new();
    let mut nh_series: Vec<Labels> = Vec::new();
    // Series `load_with_nhcb` would add as custom-bucket histograms (not loaded here).
    let mut nhcb_names: HashSet<String> = HashSet::new();
    let mut nhcb_series: Vec<Labels> = Vec::new();
    let mut st_section = false;
    // Series carrying `__type__`/`__unit__` belong to the experimental type-and-unit labels feature.
    let mut tu_section = false;
    let mut i = 0;
    while i < lines.len() {
        let l = &lines[i];
        if l.is_empty() {
            i += 1;
            continue;
        }
        let word = l
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let start_line = i + 1;
        let mut block = Vec::new();
        i += 1;
        while word != "clear" && i < lines.len() && !lines[i].is_empty() {
            block.push(lines[i].clone());
            i += 1;
        }
        if word == "clear" {
            nh_names.clear();
            nh_series.clear();
            nhcb_names.clear();
            nhcb_series.clear();
            st_section = false;
            tu_section = false;
            cmds.push(Cmd::Clear);
        } else if word.starts_with("load") {
            let step = parse_dur(l.split_whitespace().nth(1).ok_or("load without step")?)?;
            let nhcb = word == "load_with_nhcb";
            let mut series = Vec::new();
            for b in &block {
                let first = b.split_whitespace().next().unwrap_or("");
                if first.ends_with("@st") {
                    st_section = true;
                    continue;
                }
                let (labels, rest) = parse_series(b)?;
                if labels.get("__type__").is_some() || labels.get("__unit__").is_some() {
                    tu_section = true;
                }
                let v = parse_values(&rest).map_err(|e| format!("line {start_line}: {e}"))?;
                if v.iter().flatten().any(|x| x.as_float().is_none()) {
                    nh_names.insert(labels.name().unwrap_or("").to_string());
                    nh_series.push(labels.clone());
                }
                series.push((labels, v));
            }
            if nhcb {
                for (l, _) in &series {
                    if let Some(n) = l.name() {
                        for suf in ["_bucket", "_count", "_sum"] {
                            if let Some(base) = n.strip_suffix(suf) {
                                nhcb_names.insert(base.to_string());
                                let mut nl = l.clone();
                                nl.remove("le");
                                nl.set("__name__".into(), base.to_string());
                                nhcb_series.push(nl);
                            }
                        }
                    }
                }
            }
            // Within one block a repeated label set replaces the earlier line entirely.
            let mut seen: HashSet<Labels> = HashSet::new();
            let mut deduped: Vec<(Labels, Vec<Option<SeriesValue>>)> = Vec::new();
            for (l, v) in series.into_iter().rev() {
                if seen.insert(l.clone()) {
                    deduped.push((l, v));
                }
            }
            deduped.reverse();
            cmds.push(Cmd::Load(deduped, step));
        } else if word.starts_with("eval") {
            let rest = l[word.len()..].trim();
            let mut ev = Eval {
                line: start_line,
                query: String::new(),
                range: None,
                at: 0,
                range_vector: None,
                expect: AnnoExpect::default(),
                expected: Expected::Series(vec![]),
            };
            if word == "eval_fail" {
                ev.expect.fail = Some(None);
            }
            if word == "eval_ordered" {
                ev.expect.ordered = true;
            }
            let parts: Vec<&str> = rest.splitn(3, ' ').collect();
            if parts[0] == "instant" {
                let p: Vec<&str> = rest.splitn(4, ' ').collect();
                if p.len() < 4 || p[1] != "at" {
                    return Err(format!("line {start_line}: bad eval"));
                }
                ev.at = parse_dur(p[2])?;
                ev.query = p[3].trim().to_string();
            } else if parts[0] == "range" {
                let p: Vec<&str> = rest.splitn(8, ' ').collect();
                if p.len() < 8 {
                    return Err(format!("line {start_line}: bad range eval"));
                }
                ev.range = Some((parse_dur(p[2])?, parse_dur(p[4])?, parse_dur(p[6])?));
                ev.query = p[7].trim().to_string();
            } else {
                return Err(format!("line {start_line}: bad eval {rest}"));
            }
            let mut series = Vec::new();
            let mut expected_text = String::new();
            for b in &block {
                expected_text.push_str(b);
                expected_text.push('\n');
                if let Some(r) = b.strip_prefix("expect ") {
                    let r = r.trim();
                    let (kind, tail) = r.split_once(' ').unwrap_or((r, ""));
                    match kind {
                        "fail" => ev.expect.fail = Some(parse_expect_text(tail)),
                        "warn" => ev.expect.warn.push(parse_expect_text(tail)),
                        "info" => ev.expect.info.push(parse_expect_text(tail)),
                        "no_warn" => ev.expect.no_warn = true,
                        "no_info" => ev.expect.no_info = true,
                        "ordered" => ev.expect.ordered = true,
                        "range" => {
                            let p: Vec<&str> = tail.split_whitespace().collect();
                            if p.len() != 7 {
                                return Err(format!("line {start_line}: bad expect range"));
                            }
                            ev.range_vector =
                                Some((parse_dur(p[2])?, parse_dur(p[4])?, parse_dur(p[6])?));
                        }
                        "string" => {
                            let s = tail.trim();
                            ev.expected =
                                Expected::Str(s[1..s.len().saturating_sub(1)].to_string());
                        }
                        _ => return Err(format!("line {start_line}: unknown expect {kind}")),
                    }
                    continue;
                }
                if let Some(v) = parse_number(b.trim()) {
                    if !b.trim().contains(char::is_whitespace) {
                        ev.expected = Expected::Scalar(v);
                        break;
                    }
                }
                let (labels, rest) = parse_series(b)?;
                let v = parse_values(&rest).map_err(|e| format!("line {start_line}: {e}"))?;
                series.push((labels, v));
            }
            if !series.is_empty() {
                ev.expected = Expected::Series(series);
            }
            // Reasons other than native histograms win: those evals are skipped everywhere.
            let none = HashSet::new();
            let skip = match skip_reason(&ev.query, "", &none, &[], st_section) {
                Some(r) if r != NATIVE_HISTOGRAM => Some(r),
                _ => match skip_reason(&ev.query, "", &nhcb_names, &nhcb_series, st_section) {
                    Some(NATIVE_HISTOGRAM) => Some("custom-bucket histograms from load_with_nhcb"),
                    _ => skip_reason(&ev.query, &expected_text, &nh_names, &nh_series, st_section),
                },
            };
            let _ = tu_section;
            cmds.push(Cmd::Eval(Box::new(ev), skip));
        } else {
            return Err(format!("line {start_line}: unknown command {word}"));
        }
    }
    Ok(cmds)
}

fn text_matches(spec: &Option<(bool, String)>, got: &str) -> bool {
    match spec {
        None => true,
        Some((false, m)) => got.trim() == m.trim(),
        Some((true, re)) => regex_lite::Regex::new(re)
            .map(|r| r.is_match(got))
            .unwrap_or(false),
    }
}

fn check_annotations(e: &AnnoExpect, warns: &[String], infos: &[String]) -> Result<(), String> {
    for (kind, specs, got, none) in [
        ("warn", &e.warn, warns, e.no_warn),
        ("info", &e.info, infos, e.no_info),
    ] {
        if none && !got.is_empty() {
            return Err(format!("unexpected {kind} annotations: {got:?}"));
        }
        if specs.is_empty() {
            continue;
        }
        if got.is_empty() {
            return Err(format!("expected {kind} annotations, got none"));
        }
        for s in specs {
            if !got.iter().any(|g| text_matches(s, g)) {
                return Err(format!("no {kind} annotation matches {s:?}; got {got:?}"));
            }
        }
        if specs.iter().all(|s| s.is_some()) {
            for g in got {
                if !specs.iter().any(|s| text_matches(s, g)) {
                    return Err(format!("unexpected {kind} annotation {g:?}"));
                }
            }
        }
    }
    Ok(())
}

fn eq(a: f64, b: f64) -> bool {
    if promlet::model::is_stale_nan(a) || promlet::model::is_stale_nan(b) {
        return promlet::model::is_stale_nan(a) && promlet::model::is_stale_nan(b);
    }
    almost_equal(a, b, 1e-6)
}

/// Histograms compare as upstream's runner does: empty buckets dropped on both sides, floats
/// within the tolerance, layout exact; the counter-reset hint only when the test names one.
fn hist_eq(exp: &FloatHistogram, got: &FloatHistogram) -> bool {
    let (mut e, mut g) = (exp.clone(), got.clone());
    e.compact();
    g.compact();
    let close =
        |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| eq(*x, *y));
    e.schema == g.schema
        && eq(e.count, g.count)
        && eq(e.sum, g.sum)
        && e.zero_threshold == g.zero_threshold
        && eq(e.zero_count, g.zero_count)
        && e.custom_values == g.custom_values
        && e.positive_spans == g.positive_spans
        && close(&e.positive_buckets, &g.positive_buckets)
        && e.negative_spans == g.negative_spans
        && close(&e.negative_buckets, &g.negative_buckets)
        && (e.counter_reset_hint == CounterResetHint::Unknown
            || e.counter_reset_hint == g.counter_reset_hint)
}

fn val_eq(exp: &SeriesValue, got: &SeriesValue) -> bool {
    match (exp, got) {
        (SeriesValue::Float(a), SeriesValue::Float(b)) => eq(*a, *b),
        (SeriesValue::Histogram(a), SeriesValue::Histogram(b)) => hist_eq(a, b),
        _ => false,
    }
}

fn show(v: &SeriesValue) -> String {
    match v {
        SeriesValue::Float(f) => f.to_string(),
        SeriesValue::Histogram(h) => histogram_expression(h),
    }
}

fn sample_value(s: &promlet::promql::engine::VecSample) -> SeriesValue {
    match &s.h {
        Some(h) => SeriesValue::Histogram(Box::new((**h).clone())),
        None => SeriesValue::Float(s.v),
    }
}

/// Compares an instant vector (label set, value) against single-value expectations.
fn compare_vector(
    got: &[(Labels, SeriesValue)],
    exp: &Expected,
    ordered: bool,
) -> Result<(), String> {
    match exp {
        Expected::Series(s) => {
            let mut want: HashMap<&Labels, (usize, SeriesValue)> = HashMap::new();
            for (i, (l, v)) in s.iter().enumerate() {
                if v.len() != 1 {
                    return Err(format!("expected one value for {l}"));
                }
                let w = v[0].clone().unwrap_or(SeriesValue::Float(f64::NAN));
                want.insert(l, (i, w));
            }
            if got.len() != want.len() {
                return Err(format!(
                    "expected {} samples, got {}: {:?}",
                    want.len(),
                    got.len(),
                    got.iter()
                        .map(|(l, v)| format!("{} {}", go_labels(l), show(v)))
                        .collect::<Vec<_>>()
                ));
            }
            for (pos, (l, v)) in got.iter().enumerate() {
                let Some((i, w)) = want.get(l) else {
                    return Err(format!("unexpected series {} {}", go_labels(l), show(v)));
                };
                if ordered && *i != pos {
                    return Err(format!("{} at position {pos}, expected {i}", go_labels(l)));
                }
                if !val_eq(w, v) {
                    return Err(format!(
                        "{}: expected {}, got {}",
                        go_labels(l),
                        show(w),
                        show(v)
                    ));
                }
            }
            Ok(())
        }
        Expected::Scalar(_) => Err("expected scalar, got vector".into()),
        Expected::Str(_) => Err("expected string, got vector".into()),
    }
}

fn compare_matrix(
    got: &[(Labels, Vec<(i64, SeriesValue)>)],
    exp: &Expected,
    start: i64,
    step: i64,
    check_sorted: bool,
) -> Result<(), String> {
    let Expected::Series(s) = exp else {
        return Err("expected series".into());
    };
    if check_sorted && got.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err("matrix result not sorted by labels".into());
    }
    let want: HashMap<&Labels, &Vec<Option<SeriesValue>>> = s.iter().map(|(l, v)| (l, v)).collect();
    for (l, pts) in got {
        let Some(w) = want.get(l) else {
            return Err(format!("unexpected series {} {pts:?}", go_labels(l)));
        };
        let expected_pts: Vec<(i64, SeriesValue)> = w
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.clone().map(|v| (start + i as i64 * step, v)))
            .collect();
        if expected_pts.len() != pts.len() {
            return Err(format!(
                "{}: expected {} points {expected_pts:?}, got {} {pts:?}",
                go_labels(l),
                expected_pts.len(),
                pts.len()
            ));
        }
        for ((et, ev), (gt, gv)) in expected_pts.iter().zip(pts) {
            if et != gt || !val_eq(ev, gv) {
                return Err(format!(
                    "{}: expected {}@{et}, got {}@{gt}",
                    go_labels(l),
                    show(ev),
                    show(gv)
                ));
            }
        }
    }
    for (l, _) in s {
        if !got.iter().any(|(g, _)| g == l) {
            return Err(format!("expected series {} not found", go_labels(l)));
        }
    }
    Ok(())
}

fn matrix_of(v: &Value) -> Option<Points> {
    match v {
        Value::Matrix(m) => {
            Some(
                m.iter()
                    .map(|s| {
                        let mut pts: Vec<(i64, SeriesValue)> =
                            s.points
                                .iter()
                                .map(|p| (p.t, SeriesValue::Float(p.v)))
                                .chain(s.hpoints.iter().map(|p| {
                                    (p.t, SeriesValue::Histogram(Box::new((*p.h).clone())))
                                }))
                                .collect();
                        pts.sort_by_key(|p| p.0);
                        ((*s.labels).clone(), pts)
                    })
                    .collect(),
            )
        }
        _ => None,
    }
}

/// Runs an instant query at `t` and compares it with the eval's expectations.
fn check_instant(
    store: &dyn Querier,
    ev: &Eval,
    query: &str,
    t: i64,
    check_annos: bool,
    opts: &EngineOpts,
) -> Result<(), String> {
    let res = parse(query)
        .map_err(|e| e.to_string())
        .and_then(|e| instant_query(store, query, &e, t, opts).map_err(|e| e.to_string()));
    let res = match (res, &ev.expect.fail) {
        (Err(e), Some(spec)) => {
            return if text_matches(spec, &e) {
                Ok(())
            } else {
                Err(format!("error {e:?} does not match {spec:?}"))
            };
        }
        (Err(e), None) => return Err(format!("unexpected error: {e}")),
        (Ok(_), Some(_)) => return Err("expected failure, query succeeded".into()),
        (Ok(r), None) => r,
    };
    if check_annos {
        check_annotations(
            &ev.expect,
            &res.annotations.warnings,
            &res.annotations.infos,
        )?;
    }
    match (&res.value, &ev.expected) {
        (Value::Scalar(v), Expected::Scalar(w)) => {
            if eq(*v, *w) {
                Ok(())
            } else {
                Err(format!("expected scalar {w}, got {v}"))
            }
        }
        (Value::Scalar(v), _) => Err(format!("unexpected scalar {v}")),
        (Value::Str(s), Expected::Str(w)) => {
            if s == w {
                Ok(())
            } else {
                Err(format!("expected string {w:?}, got {s:?}"))
            }
        }
        (Value::Str(s), _) => Err(format!("unexpected string {s:?}")),
        (Value::Vector(v), exp) => {
            if ev.range_vector.is_some() {
                return Err("expected range vector, got instant vector".into());
            }
            let got: Vec<(Labels, SeriesValue)> = v
                .iter()
                .map(|s| ((*s.labels).clone(), sample_value(s)))
                .collect();
            compare_vector(&got, exp, ev.expect.ordered)
        }
        (Value::Matrix(_), exp) => {
            let Some((start, _end, step)) = ev.range_vector else {
                return Err("unexpected range vector result".into());
            };
            compare_matrix(
                &matrix_of(&res.value).unwrap_or_default(),
                exp,
                start,
                step,
                false,
            )
        }
    }
}

/// Runs the query as a range query T-1m..T+1m and compares the points at T.
fn check_as_range(
    store: &dyn Querier,
    ev: &Eval,
    query: &str,
    t: i64,
    opts: &EngineOpts,
) -> Result<(), String> {
    let res = parse(query).map_err(|e| e.to_string()).and_then(|e| {
        range_query(store, query, &e, t - 60_000, t + 60_000, 60_000, opts)
            .map_err(|e| e.to_string())
    });
    let res = match (res, &ev.expect.fail) {
        (Err(_), Some(_)) => return Ok(()),
        (Err(e), None) => return Err(format!("range mode: unexpected error: {e}")),
        (Ok(_), Some(_)) => return Err("range mode: expected failure".into()),
        (Ok(r), None) => r,
    };
    let m = matrix_of(&res.value).ok_or("range mode: not a matrix")?;
    if m.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err("range mode: matrix not sorted".into());
    }
    let at_t: Vec<(Labels, SeriesValue)> = m
        .iter()
        .filter_map(|(l, pts)| {
            pts.iter()
                .find(|p| p.0 == t)
                .map(|p| (l.clone(), p.1.clone()))
        })
        .collect();
    match &ev.expected {
        Expected::Scalar(w) => {
            let v = at_t
                .first()
                .and_then(|x| x.1.as_float())
                .ok_or("range mode: no scalar point")?;
            if eq(v, *w) {
                Ok(())
            } else {
                Err(format!("range mode: expected {w}, got {v}"))
            }
        }
        exp => compare_vector(&at_t, exp, false).map_err(|e| format!("range mode: {e}")),
    }
}

/// Adds `@ t` to every selector and subquery lacking one (not inside subqueries that have one).
fn add_at(e: &mut Expr, t: i64) {
    match e {
        Expr::Vector(vs) | Expr::Matrix { vs, .. } if vs.at.is_none() => {
            vs.at = Some(AtModifier::Time(t));
        }
        Expr::Subquery { expr, at, .. } => {
            // Inner selectors are evaluated relative to the subquery's own steps.
            let _ = expr;
            if at.is_none() {
                *at = Some(AtModifier::Time(t));
            }
        }
        Expr::Paren(x, _) | Expr::Neg(x, _) => add_at(x, t),
        Expr::Binary { lhs, rhs, .. } => {
            add_at(lhs, t);
            add_at(rhs, t);
        }
        Expr::Aggregate { expr, param, .. } => {
            if let Some(p) = param {
                add_at(p, t);
            }
            add_at(expr, t);
        }
        Expr::Call { args, .. } => args.iter_mut().for_each(|a| add_at(a, t)),
        _ => {}
    }
}

fn at_variant_allowed(e: &Expr) -> bool {
    let mut ok = true;
    e.walk(&mut |n| {
        if let Expr::Call { func, .. } = n {
            if matches!(
                func.name,
                "time"
                    | "timestamp"
                    | "predict_linear"
                    | "day_of_month"
                    | "day_of_week"
                    | "day_of_year"
                    | "days_in_month"
                    | "hour"
                    | "minute"
                    | "month"
                    | "year"
            ) {
                ok = false;
            }
        }
        match n {
            Expr::Vector(vs) | Expr::Matrix { vs, .. } => {
                if matches!(vs.at, Some(AtModifier::Start | AtModifier::End)) {
                    ok = false;
                }
            }
            Expr::Subquery {
                at: Some(AtModifier::Start | AtModifier::End),
                ..
            } => ok = false,
            _ => {}
        }
    });
    ok
}

fn run_eval(store: &dyn Querier, ev: &Eval, opts: &EngineOpts) -> Result<(), String> {
    if let Some((start, end, step)) = ev.range {
        let res = parse(&ev.query).map_err(|e| e.to_string()).and_then(|e| {
            range_query(store, &ev.query, &e, start, end, step, opts).map_err(|e| e.to_string())
        });
        let res = match (res, &ev.expect.fail) {
            (Err(e), Some(spec)) => {
                return if text_matches(spec, &e) {
                    Ok(())
                } else {
                    Err(format!("error {e:?} does not match"))
                };
            }
            (Err(e), None) => return Err(format!("unexpected error: {e}")),
            (Ok(_), Some(_)) => return Err("expected failure".into()),
            (Ok(r), None) => r,
        };
        check_annotations(
            &ev.expect,
            &res.annotations.warnings,
            &res.annotations.infos,
        )?;
        let m = matrix_of(&res.value).ok_or("not a matrix")?;
        let exp = match &ev.expected {
            Expected::Scalar(v) => {
                Expected::Series(vec![(Labels::new(), vec![Some(SeriesValue::Float(*v))])])
            }
            e => e.clone(),
        };
        return compare_matrix(&m, &exp, start, step, true);
    }
    let t = match ev.range_vector {
        Some((_, end, _)) => end,
        None => ev.at,
    };
    check_instant(store, ev, &ev.query, t, true, opts)?;
    let range_check =
        ev.range_vector.is_none() && !matches!(ev.expected, Expected::Str(_)) && !ev.expect.ordered;
    if range_check {
        check_as_range(store, ev, &ev.query, t, opts)?;
    }
    // The @-modifier invariance check.
    if let Ok(mut e) = parse(&ev.query) {
        if at_variant_allowed(&e) && ev.range_vector.is_none() {
            add_at(&mut e, t);
            let q = e.to_string();
            let times: Vec<i64> = if t == 0 {
                vec![-1000, 0, 1000]
            } else {
                vec![-10 * t, 0, t / 5, t, 10 * t]
            };
            for at in times {
                check_instant(store, ev, &q, at, false, opts)
                    .map_err(|err| format!("@-variant {q} at {at}: {err}"))?;
                if range_check {
                    check_as_range(store, ev, &q, at, opts)
                        .map_err(|err| format!("@-variant {q} at {at}: {err}"))?;
                }
            }
        }
    }
    Ok(())
}

/// What the runner loads data into and queries: our test store or the real TSDB.
trait TestStore: Querier + Appender {
    /// Whether native histograms can be loaded (the ring TSDB stores floats only).
    fn holds_histograms(&self) -> bool;
}

impl TestStore for MemStorage {
    fn holds_histograms(&self) -> bool {
        true
    }
}

impl TestStore for promlet::tsdb::Store {
    fn holds_histograms(&self) -> bool {
        false
    }
}

/// The stores the suite runs against, each starting empty.
type NewStore = fn() -> Box<dyn TestStore>;

const STORES: &[(&str, NewStore)] = &[
    ("memstore", || Box::new(MemStorage::new())),
    ("tsdb", || {
        Box::new(promlet::tsdb::Store::new(promlet::tsdb::Options::default()))
    }),
];

fn run_file(name: &str, text: &str, verbose: bool, new_store: NewStore) -> Result<Counts, String> {
    let cmds = parse_file(text)?;
    let mut store = new_store();
    let histograms = store.holds_histograms();
    let mut c = Counts::default();
    let opts = EngineOpts {
        max_samples: 10_000,
        ..EngineOpts::default()
    };
    for cmd in cmds {
        match cmd {
            Cmd::Clear => store = new_store(),
            Cmd::Load(series, step) => {
                for (labels, vals) in series {
                    for (i, v) in vals.into_iter().enumerate() {
                        let t = i as i64 * step;
                        match v {
                            Some(SeriesValue::Float(v)) => store
                                .append(&labels, t, v)
                                .map_err(|e| format!("load {labels} @ {t}: {e:?}"))?,
                            Some(SeriesValue::Histogram(h)) if histograms => store
                                .append_histogram(&labels, t, *h)
                                .map_err(|e| format!("load {labels} @ {t}: {e:?}"))?,
                            // A store without histograms skips the evals that use them.
                            Some(SeriesValue::Histogram(_)) => {}
                            None => {}
                        }
                    }
                }
            }
            Cmd::Eval(ev, Some(NATIVE_HISTOGRAM)) if histograms => {
                match run_eval(&*store, &ev, &opts) {
                    Ok(()) => c.pass += 1,
                    Err(e) => {
                        c.fail += 1;
                        if verbose {
                            println!("FAIL {name}:{} {}\n     {e}", ev.line, ev.query);
                        }
                    }
                }
            }
            Cmd::Eval(ev, Some(why)) => {
                if std::env::var_os("PROMQLTEST_SHOW_SKIPS").is_some() {
                    println!("SKIP {name}:{} ({why}) {}", ev.line, ev.query);
                }
                c.skip += 1;
            }
            Cmd::Eval(ev, None) => match run_eval(&*store, &ev, &opts) {
                Ok(()) => c.pass += 1,
                Err(e) => {
                    c.fail += 1;
                    if verbose {
                        println!("FAIL {name}:{} {}\n     {e}", ev.line, ev.query);
                    }
                }
            },
        }
    }
    Ok(c)
}

#[test]
fn promqltest_suite_passes_at_least_the_stored_floor() {
    let Some(dir) = common::shared_dir("promql-tests") else {
        return;
    };
    let verbose = std::env::var_os("PROMQLTEST_VERBOSE").is_some();
    let only = std::env::var("PROMQLTEST_FILE").ok();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("read promql-tests")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    // Per store: (core, feature) totals.
    let mut totals = vec![(Counts::default(), Counts::default()); STORES.len()];
    print!("{:<28} {:>5}", "file", "skip");
    for (store, _) in STORES {
        print!(" {:>9} {:>5}", format!("{store} ok"), "fail");
    }
    println!();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("read test file");
        let feature_file = FEATURE_FILES.contains(&name.as_str());
        let mut line = String::new();
        let mut skip = 0;
        for (k, (store, new_store)) in STORES.iter().enumerate() {
            let c = match run_file(&format!("{name} [{store}]"), &text, verbose, *new_store) {
                Ok(c) => c,
                Err(e) => {
                    println!("{name}: file did not parse: {e}");
                    Counts {
                        fail: 1,
                        ..Counts::default()
                    }
                }
            };
            skip = c.skip;
            line.push_str(&format!(" {:>9} {:>5}", c.pass, c.fail));
            let acc = if feature_file {
                &mut totals[k].1
            } else {
                &mut totals[k].0
            };
            acc.pass += c.pass;
            acc.fail += c.fail;
            acc.skip += c.skip;
        }
        let tag = if feature_file { " (feature file)" } else { "" };
        println!("{name:<28} {skip:>5}{line}{tag}");
    }
    let floor_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/promqltest-floor.txt");
    // One `store passes` line per store.
    let floors: HashMap<String, usize> = std::fs::read_to_string(&floor_path)
        .expect("tests/promqltest-floor.txt")
        .lines()
        .filter_map(|l| {
            let (store, n) = l.trim().split_once(' ')?;
            Some((
                store.to_string(),
                n.trim().parse().expect("floor is a number"),
            ))
        })
        .collect();
    for ((store, _), (core, feature)) in STORES.iter().zip(&totals) {
        let floor = *floors
            .get(*store)
            .unwrap_or_else(|| panic!("no floor for {store} in tests/promqltest-floor.txt"));
        let total = core.pass + feature.pass;
        println!(
            "{store}: core files pass {} fail {} skip {}; feature files pass {} fail {} skip {}; total pass {total}, floor {floor}",
            core.pass, core.fail, core.skip, feature.pass, feature.fail, feature.skip
        );
        if only.is_none() {
            assert!(
                total >= floor,
                "promqltest passes on {store} fell to {total}, below the floor of {floor}"
            );
        }
    }
}

#[test]
fn series_value_notation_expands_like_upstream() {
    let floats = |s: &str| -> Vec<Option<f64>> {
        parse_values(s)
            .unwrap()
            .into_iter()
            .map(|v| v.map(|v| v.as_float().expect("float")))
            .collect()
    };
    let v = floats("1+2x2 _x2 5x1 -2-1x1 stale 0x3d");
    let want = [
        Some(1.0),
        Some(3.0),
        Some(5.0),
        None,
        None,
        Some(5.0),
        Some(5.0),
        Some(-2.0),
        Some(-3.0),
    ];
    assert_eq!(&v[..9], &want);
    assert!(promlet::model::is_stale_nan(v[9].unwrap()));
    assert_eq!(v[10], Some(61.0));
    assert_eq!(floats("0x2"), vec![Some(0.0); 3]);
    let (l, rest) = parse_series("foo{a=\"b\", \"c d\"=\"e}\"} 1 2").unwrap();
    assert_eq!(l.get("a"), Some("b"));
    assert_eq!(l.get("c d"), Some("e}"));
    assert_eq!(rest, "1 2");
}
