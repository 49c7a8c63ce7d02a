//! Prometheus HTTP API v1 handlers as pure functions: request parameters in, status code and
//! JSON body out. The router in `http::mod` decodes the request (query string or form body)
//! and passes the parameters; nothing here does I/O or reads the clock.
//!
//! Owns: parameter parsing, the `{status, data, errorType, error, warnings, infos}` envelope
//! and the error-type → status mapping. Must not touch: sockets, storage internals.

use super::json::Json;
use crate::histogram::FloatHistogram;
use crate::model::{Labels, Matcher};
use crate::promql::engine::Value;
use crate::promql::{self, EngineOpts, EvalError};
use crate::tsdb::Querier;

/// What a handler returns; the body is always `application/json`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl From<ApiResponse> for super::Response {
    fn from(r: ApiResponse) -> super::Response {
        super::Response::new(r.status)
            .header("Content-Type", "application/json")
            .body(r.body)
    }
}

/// Most points a range query may return per series (Prometheus's limit).
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Earliest and latest times accepted when `start`/`end` are omitted.
pub const MIN_TIME: i64 = i64::MIN / 2;
pub const MAX_TIME: i64 = i64::MAX / 2;

/// Metadata of one metric family, as `/api/v1/metadata` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricMetadata {
    pub metric: String,
    pub kind: String,
    pub help: String,
    pub unit: String,
}

/// Fields of `/api/v1/status/buildinfo`.
#[derive(Debug, Clone, Default)]
pub struct BuildInfo {
    pub version: String,
    pub revision: String,
    pub branch: String,
    pub build_user: String,
    pub build_date: String,
    pub go_version: String,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum ErrorType {
    BadData,
    Execution,
    Timeout,
    Internal,
}

impl ErrorType {
    fn name(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Internal => "internal",
        }
    }
    fn status(self) -> u16 {
        match self {
            ErrorType::BadData => 400,
            ErrorType::Execution => 422,
            ErrorType::Timeout => 503,
            ErrorType::Internal => 500,
        }
    }
}

fn error(t: ErrorType, msg: &str) -> ApiResponse {
    let mut j = Json::new();
    j.begin_object();
    j.key("status").string("error");
    j.key("errorType").string(t.name());
    j.key("error").string(msg);
    j.end_object();
    ApiResponse {
        status: t.status(),
        body: j.into_bytes(),
    }
}

fn bad_param(name: &str, msg: &str) -> ApiResponse {
    error(
        ErrorType::BadData,
        &format!("invalid parameter \"{name}\": {msg}"),
    )
}

/// Wraps `data` (written by `f`) in a success envelope with optional annotations.
fn success(warnings: &[String], infos: &[String], f: impl FnOnce(&mut Json)) -> ApiResponse {
    let mut j = success_head();
    f(&mut j);
    success_tail(j, warnings, infos)
}

/// The envelope up to the `data` value, which the caller writes next.
fn success_head() -> Json {
    let mut j = Json::new();
    j.begin_object();
    j.key("status").string("success");
    j.key("data");
    j
}

/// Closes what [`success_head`] began, after the `data` value.
fn success_tail(mut j: Json, warnings: &[String], infos: &[String]) -> ApiResponse {
    for (k, list) in [("warnings", warnings), ("infos", infos)] {
        if !list.is_empty() {
            j.key(k).begin_array();
            for w in list {
                j.string(w);
            }
            j.end_array();
        }
    }
    j.end_object();
    ApiResponse {
        status: 200,
        body: j.into_bytes(),
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn params_all<'a>(params: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    params
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// A time parameter: float Unix seconds or RFC 3339.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let bad = || format!("cannot parse \"{s}\" to a valid timestamp");
    // Bounded like MIN_TIME/MAX_TIME so that time arithmetic downstream cannot overflow.
    let ms = if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() {
            return Err(bad());
        }
        (f * 1000.0).round() as i64
    } else {
        parse_rfc3339(s).ok_or_else(bad)?
    };
    Ok(ms.clamp(MIN_TIME, MAX_TIME))
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &s[st..i];
        let f3: String = frac.chars().chain("000".chars()).take(3).collect();
        ms = f3.parse().ok()?;
    }
    let off = match &s[i..] {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let oh: i64 = o[1..3].parse().ok()?;
            let om: i64 = o[4..6].parse().ok()?;
            let v = (oh * 60 + om) * 60_000;
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = crate::log::days_from_civil(y, mo, d);
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) * 1000) + ms - off)
}

/// A duration parameter: float seconds or a Prometheus duration (`5m`).
pub fn parse_duration_param(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() && f.abs() < 9.2e15 {
            return Ok((f * 1000.0).round() as i64);
        }
    }
    promql::lexer::parse_duration(s)
        .ok_or_else(|| format!("cannot parse \"{s}\" to a valid duration"))
}

/// Applies per-request `timeout` and `lookback_delta`, never loosening the server's timeout.
fn request_opts(params: &[(String, String)], opts: &EngineOpts) -> Result<EngineOpts, ApiResponse> {
    let mut o = opts.clone();
    if let Some(t) = param(params, "timeout").filter(|s| !s.is_empty()) {
        let ms = parse_duration_param(t).map_err(|e| bad_param("timeout", &e))?;
        if ms > 0 {
            o.timeout = o.timeout.min(std::time::Duration::from_millis(ms as u64));
        }
    }
    if let Some(l) = param(params, "lookback_delta").filter(|s| !s.is_empty()) {
        let ms = parse_duration_param(l).map_err(|e| bad_param("lookback_delta", &e))?;
        if ms > 0 {
            o.lookback_delta = ms;
        }
    }
    Ok(o)
}

fn parse_limit(params: &[(String, String)]) -> Result<usize, ApiResponse> {
    match param(params, "limit").filter(|s| !s.is_empty()) {
        None => Ok(0),
        Some(s) => s
            .parse::<usize>()
            .map_err(|_| bad_param("limit", &format!("cannot parse \"{s}\" to a valid limit"))),
    }
}

fn eval_error(e: &EvalError) -> ApiResponse {
    let t = match e {
        EvalError::Timeout => ErrorType::Timeout,
        EvalError::TooManySamples | EvalError::Execution(_) => ErrorType::Execution,
    };
    error(t, &e.to_string())
}

fn write_labels(j: &mut Json, l: &Labels) {
    j.string_object(l.iter());
}

fn write_point(j: &mut Json, t: i64, v: f64) {
    j.point(t, v);
}

/// `[<ts>, {"count":"c","sum":"s","buckets":[[<boundary rule>,"lo","hi","n"],…]}]`: populated
/// buckets only; the rule says which ends are inclusive (0 = (lo,hi], 1 = [lo,hi),
/// 2 = (lo,hi), 3 = [lo,hi]).
fn write_histogram_point(j: &mut Json, t: i64, h: &FloatHistogram) {
    j.begin_array().ts(t);
    j.begin_object();
    j.key("count").value(h.count);
    j.key("sum").value(h.sum);
    let buckets: Vec<_> = h
        .all_buckets()
        .into_iter()
        .filter(|b| b.count != 0.0)
        .collect();
    if !buckets.is_empty() {
        j.key("buckets").begin_array();
        for b in buckets {
            let rule = match (b.lower_inclusive, b.upper_inclusive) {
                (false, true) => "0",
                (true, false) => "1",
                (false, false) => "2",
                (true, true) => "3",
            };
            j.begin_array();
            j.raw(rule);
            j.value(b.lower).value(b.upper).value(b.count);
            j.end_array();
        }
        j.end_array();
    }
    j.end_object();
    j.end_array();
}

fn write_value(j: &mut Json, v: &Value, t: i64, limit: usize) {
    j.begin_object();
    match v {
        Value::Scalar(x) => {
            j.key("resultType").string("scalar");
            j.key("result");
            write_point(j, t, *x);
        }
        Value::Str(s) => {
            j.key("resultType").string("string");
            j.key("result").begin_array();
            j.ts(t);
            j.string(s);
            j.end_array();
        }
        Value::Vector(vs) => {
            j.key("resultType").string("vector");
            j.key("result").begin_array();
            for s in vs.iter().take(if limit == 0 { usize::MAX } else { limit }) {
                j.begin_object();
                j.key("metric");
                write_labels(j, &s.labels);
                match &s.h {
                    Some(h) => {
                        j.key("histogram");
                        write_histogram_point(j, t, h);
                    }
                    None => {
                        j.key("value");
                        write_point(j, t, s.v);
                    }
                }
                j.end_object();
            }
            j.end_array();
        }
        Value::Matrix(m) => {
            j.key("resultType").string("matrix");
            j.key("result").begin_array();
            for s in m.iter().take(if limit == 0 { usize::MAX } else { limit }) {
                j.begin_object();
                j.key("metric");
                write_labels(j, &s.labels);
                // `values` and/or `histograms`, as the series has them.
                if !s.points.is_empty() || s.hpoints.is_empty() {
                    j.key("values").begin_array();
                    for p in &s.points {
                        write_point(j, p.t, p.v);
                    }
                    j.end_array();
                }
                if !s.hpoints.is_empty() {
                    j.key("histograms").begin_array();
                    for p in &s.hpoints {
                        write_histogram_point(j, p.t, &p.h);
                    }
                    j.end_array();
                }
                j.end_object();
            }
            j.end_array();
        }
    }
    j.end_object();
}

fn result_len(v: &Value) -> usize {
    match v {
        Value::Vector(v) => v.len(),
        Value::Matrix(m) => m.len(),
        _ => 0,
    }
}

/// `GET|POST /api/v1/query`.
pub fn query(
    params: &[(String, String)],
    querier: &dyn Querier,
    now_ms: i64,
    opts: &EngineOpts,
) -> ApiResponse {
    let q = param(params, "query").unwrap_or("");
    let t = match param(params, "time").filter(|s| !s.is_empty()) {
        None => now_ms,
        Some(s) => match parse_time(s) {
            Ok(t) => t,
            Err(e) => return bad_param("time", &e),
        },
    };
    let o = match request_opts(params, opts) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let limit = match parse_limit(params) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let expr = match promql::parse(q) {
        Ok(e) => e,
        Err(e) => return bad_param("query", &e.to_string()),
    };
    if let Some(resp) = query_plain_selector(querier, &expr, t, &o, limit) {
        return resp;
    }
    match promql::instant_query(querier, q, &expr, t, &o) {
        Ok(res) => {
            let mut warnings = res.annotations.warnings.clone();
            if limit > 0 && result_len(&res.value) > limit {
                warnings.push("results truncated due to limit".into());
            }
            success(&warnings, &res.annotations.infos, |j| {
                write_value(j, &res.value, t, limit)
            })
        }
        Err(e) => eval_error(&e),
    }
}

/// An instant query of a plain selector (`foo{job="x"}`: the most common query, often over
/// every series of a metric), written into the answer as the store yields each series: no
/// label set or sample buffer is built per series (that and freeing them again was half of
/// such a query). The same bytes as the engine's answer; `None` when the engine must answer.
fn query_plain_selector(
    querier: &dyn Querier,
    expr: &promql::Expr,
    t: i64,
    opts: &EngineOpts,
    limit: usize,
) -> Option<ApiResponse> {
    let mut j = success_head();
    j.begin_object();
    j.key("resultType").string("vector");
    j.key("result").begin_array();
    let cap = if limit == 0 { usize::MAX } else { limit };
    let mut written = 0;
    let streamed = promql::instant_selector_each(querier, expr, t, opts, &mut |pairs, v| {
        if written == cap {
            return;
        }
        written += 1;
        j.begin_object();
        j.key("metric").string_object(pairs.iter().copied());
        j.key("value").point(t, v);
        j.end_object();
    })?;
    let n = match streamed {
        Ok(n) => n,
        Err(e) => return Some(eval_error(&e)),
    };
    j.end_array();
    j.end_object();
    let warnings = if n > written {
        vec!["results truncated due to limit".to_string()]
    } else {
        Vec::new()
    };
    Some(success_tail(j, &warnings, &[]))
}

/// `GET|POST /api/v1/query_range`.
pub fn query_range(
    params: &[(String, String)],
    querier: &dyn Querier,
    _now_ms: i64,
    opts: &EngineOpts,
) -> ApiResponse {
    let q = param(params, "query").unwrap_or("");
    let start = match parse_time(param(params, "start").unwrap_or("")) {
        Ok(t) => t,
        Err(e) => return bad_param("start", &e),
    };
    let end = match parse_time(param(params, "end").unwrap_or("")) {
        Ok(t) => t,
        Err(e) => return bad_param("end", &e),
    };
    if end < start {
        return bad_param("end", "end timestamp must not be before start time");
    }
    let step = match parse_duration_param(param(params, "step").unwrap_or("")) {
        Ok(s) => s,
        Err(e) => return bad_param("step", &e),
    };
    if step <= 0 {
        return bad_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        );
    }
    if (end - start) / step > MAX_POINTS_PER_SERIES {
        return error(
            ErrorType::BadData,
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        );
    }
    let o = match request_opts(params, opts) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let limit = match parse_limit(params) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let expr = match promql::parse(q) {
        Ok(e) => e,
        Err(e) => return bad_param("query", &e.to_string()),
    };
    match promql::range_query(querier, q, &expr, start, end, step, &o) {
        Ok(res) => {
            let mut warnings = res.annotations.warnings.clone();
            if limit > 0 && result_len(&res.value) > limit {
                warnings.push("results truncated due to limit".into());
            }
            success(&warnings, &res.annotations.infos, |j| {
                write_value(j, &res.value, end, limit)
            })
        }
        Err(EvalError::Execution(m)) if m.starts_with("invalid expression type") => {
            bad_param("query", &m)
        }
        Err(e) => eval_error(&e),
    }
}

fn time_range(params: &[(String, String)]) -> Result<(i64, i64), ApiResponse> {
    let start = match param(params, "start").filter(|s| !s.is_empty()) {
        None => MIN_TIME,
        Some(s) => parse_time(s).map_err(|e| bad_param("start", &e))?,
    };
    let end = match param(params, "end").filter(|s| !s.is_empty()) {
        None => MAX_TIME,
        Some(s) => parse_time(s).map_err(|e| bad_param("end", &e))?,
    };
    if end < start {
        return Err(bad_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    Ok((start, end))
}

/// The parameters `/series`, `/labels` and `/label/<name>/values` share.
struct Selection {
    sets: Vec<Vec<Matcher>>,
    start: i64,
    end: i64,
    limit: usize,
}

fn selection(params: &[(String, String)]) -> Result<Selection, ApiResponse> {
    let sets = matcher_sets(params)?;
    let (start, end) = time_range(params)?;
    let limit = parse_limit(params)?;
    Ok(Selection {
        sets,
        start,
        end,
        limit,
    })
}

fn matcher_sets(params: &[(String, String)]) -> Result<Vec<Vec<Matcher>>, ApiResponse> {
    params_all(params, "match[]")
        .into_iter()
        .map(|m| promql::parse_selector(m).map_err(|e| bad_param("match[]", &e.to_string())))
        .collect()
}

fn string_list(items: &[String], limit: usize) -> ApiResponse {
    let mut warnings = vec![];
    let n = if limit > 0 && items.len() > limit {
        warnings.push("results truncated due to limit".to_string());
        limit
    } else {
        items.len()
    };
    success(&warnings, &[], |j| {
        j.begin_array();
        for s in &items[..n] {
            j.string(s);
        }
        j.end_array();
    })
}

/// `GET|POST /api/v1/series`.
pub fn series(params: &[(String, String)], querier: &dyn Querier) -> ApiResponse {
    let Selection {
        sets,
        start,
        end,
        limit,
    } = match selection(params) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if sets.is_empty() {
        return error(ErrorType::BadData, "no match[] parameter provided");
    }
    // Label sets only: streaming keeps the samples of every matching series out of memory.
    let mut all: Vec<Labels> = Vec::new();
    for m in &sets {
        querier.select_each(m, start, end, &mut |labels, _| all.push(labels.clone()));
    }
    all.sort_unstable();
    all.dedup();
    let mut warnings = vec![];
    if limit > 0 && all.len() > limit {
        all.truncate(limit);
        warnings.push("results truncated due to limit".to_string());
    }
    success(&warnings, &[], |j| {
        j.begin_array();
        for l in &all {
            write_labels(j, l);
        }
        j.end_array();
    })
}

/// `GET|POST /api/v1/labels`.
pub fn labels(params: &[(String, String)], querier: &dyn Querier) -> ApiResponse {
    let Selection {
        sets,
        start,
        end,
        limit,
    } = match selection(params) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut names: Vec<String> = if sets.is_empty() {
        querier.label_names(&[], start, end)
    } else {
        sets.iter()
            .flat_map(|m| querier.label_names(m, start, end))
            .collect()
    };
    names.sort_unstable();
    names.dedup();
    string_list(&names, limit)
}

/// Undoes the `U__` label-name escaping (`U__http_2e_status` = `http.status`).
fn unescape_label_name(s: &str) -> Option<String> {
    let Some(rest) = s.strip_prefix("U__") else {
        return Some(s.to_string());
    };
    let mut out = String::new();
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'_' {
            if b.get(i + 1) == Some(&b'_') {
                out.push('_');
                i += 2;
                continue;
            }
            let end = rest[i + 1..].find('_')? + i + 1;
            let cp = u32::from_str_radix(&rest[i + 1..end], 16).ok()?;
            out.push(char::from_u32(cp)?);
            i = end + 1;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    Some(out)
}

/// `GET /api/v1/label/<name>/values`.
pub fn label_values(name: &str, params: &[(String, String)], querier: &dyn Querier) -> ApiResponse {
    let name = match unescape_label_name(name) {
        Some(n) if !n.is_empty() => n,
        _ => {
            return error(
                ErrorType::BadData,
                &format!("invalid label name: \"{name}\""),
            )
        }
    };
    let Selection {
        sets,
        start,
        end,
        limit,
    } = match selection(params) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut vals: Vec<String> = if sets.is_empty() {
        querier.label_values(&name, &[], start, end)
    } else {
        sets.iter()
            .flat_map(|m| querier.label_values(&name, m, start, end))
            .collect()
    };
    vals.sort_unstable();
    vals.dedup();
    string_list(&vals, limit)
}

/// `GET /api/v1/metadata` over the metadata the caller knows (scrape targets, collectors).
pub fn metadata(params: &[(String, String)], known: &[MetricMetadata]) -> ApiResponse {
    let parse_n = |k: &str| -> Result<i64, ApiResponse> {
        match param(params, k).filter(|s| !s.is_empty()) {
            None => Ok(-1),
            Some(s) => s
                .parse::<i64>()
                .map_err(|_| bad_param(k, &format!("cannot parse \"{s}\" to a valid limit"))),
        }
    };
    let limit = match parse_n("limit") {
        Ok(l) => l,
        Err(r) => return r,
    };
    let per_metric = match parse_n("limit_per_metric") {
        Ok(l) => l,
        Err(r) => return r,
    };
    let only = param(params, "metric").filter(|s| !s.is_empty());
    // metric -> unique (type, help, unit), in first-seen order; metrics sorted by name.
    let mut by_metric: std::collections::BTreeMap<&str, Vec<&MetricMetadata>> =
        std::collections::BTreeMap::new();
    for m in known {
        if only.is_some_and(|o| o != m.metric) {
            continue;
        }
        let e = by_metric.entry(&m.metric).or_default();
        if !e
            .iter()
            .any(|x| x.kind == m.kind && x.help == m.help && x.unit == m.unit)
        {
            e.push(m);
        }
    }
    success(&[], &[], |j| {
        j.begin_object();
        for (i, (name, list)) in by_metric.iter().enumerate() {
            if limit >= 0 && i as i64 >= limit {
                break;
            }
            j.key(name).begin_array();
            for (k, m) in list.iter().enumerate() {
                if per_metric > 0 && k as i64 >= per_metric {
                    break;
                }
                // Prometheus 3.5's key order here (its targets/metadata differs).
                j.begin_object();
                j.key("type").string(&m.kind);
                j.key("unit").string(&m.unit);
                j.key("help").string(&m.help);
                j.end_object();
            }
            j.end_array();
        }
        j.end_object();
    })
}

/// `GET /api/v1/targets/metadata`: `entries` are (target labels, metadata) in target order.
/// `match_target` selects targets by their labels, `metric` one metric (then left out of each
/// entry, as Prometheus does), `limit` caps the entries.
pub fn targets_metadata(
    params: &[(String, String)],
    entries: &[(Labels, MetricMetadata)],
) -> ApiResponse {
    let matchers = match param(params, "match_target").filter(|s| !s.is_empty()) {
        None => Vec::new(),
        Some(m) => match promql::parse_selector(m) {
            Ok(m) => m,
            Err(e) => return bad_param("match_target", &e.to_string()),
        },
    };
    let limit = match param(params, "limit").filter(|s| !s.is_empty()) {
        None => -1,
        Some(s) => match s.parse::<i64>() {
            Ok(n) => n,
            Err(_) => return bad_param("limit", &format!("cannot parse \"{s}\" to a valid limit")),
        },
    };
    let only = param(params, "metric").filter(|s| !s.is_empty());
    let selected = entries.iter().filter(|(target, m)| {
        only.is_none_or(|o| o == m.metric)
            && matchers
                .iter()
                .all(|mt| mt.matches(target.get(&mt.name).unwrap_or("")))
    });
    let n = if limit < 0 {
        usize::MAX
    } else {
        limit as usize
    };
    success(&[], &[], |j| {
        j.begin_array();
        for (target, m) in selected.take(n) {
            j.begin_object();
            j.key("target");
            write_labels(j, target);
            if only.is_none() {
                j.key("metric").string(&m.metric);
            }
            j.key("type").string(&m.kind);
            j.key("help").string(&m.help);
            j.key("unit").string(&m.unit);
            j.end_object();
        }
        j.end_array();
    })
}

/// `GET /api/v1/scrape_pools`.
pub fn scrape_pools(names: &[String]) -> ApiResponse {
    success(&[], &[], |j| {
        j.begin_object();
        j.key("scrapePools").begin_array();
        for n in names {
            j.string(n);
        }
        j.end_array();
        j.end_object();
    })
}

/// `GET /api/v1/alertmanagers`: the Alertmanagers alerts are sent to (static targets only,
/// so none is ever dropped by discovery).
pub fn alertmanagers(urls: &[String]) -> ApiResponse {
    success(&[], &[], |j| {
        j.begin_object();
        j.key("activeAlertmanagers").begin_array();
        for u in urls {
            j.begin_object();
            j.key("url").string(u);
            j.end_object();
        }
        j.end_array();
        j.key("droppedAlertmanagers").begin_array();
        j.end_array();
        j.end_object();
    })
}

/// `GET|POST /api/v1/query_exemplars`: the query is checked like Prometheus checks it, and
/// the answer is always empty — the TSDB keeps no exemplars (a fixed budget spent on samples).
pub fn query_exemplars(params: &[(String, String)]) -> ApiResponse {
    // Unlike /query, Prometheus words these errors without naming the parameter.
    if let Err(e) = promql::parse(param(params, "query").unwrap_or("")) {
        return error(ErrorType::BadData, &e.to_string());
    }
    if let Err(r) = time_range(params) {
        return r;
    }
    success(&[], &[], |j| {
        j.begin_array();
        j.end_array();
    })
}

/// `GET /api/v1/status/walreplay`: promlet replays its segments before it listens, so the
/// replay is always complete by the time anyone can ask.
pub fn status_walreplay() -> ApiResponse {
    success(&[], &[], |j| {
        j.begin_object();
        j.key("min").raw("0");
        j.key("max").raw("0");
        j.key("current").raw("0");
        j.end_object();
    })
}

/// `GET /api/v1/status/buildinfo`.
pub fn buildinfo(info: &BuildInfo) -> ApiResponse {
    success(&[], &[], |j| {
        j.begin_object();
        j.key("version").string(&info.version);
        j.key("revision").string(&info.revision);
        j.key("branch").string(&info.branch);
        j.key("buildUser").string(&info.build_user);
        j.key("buildDate").string(&info.build_date);
        j.key("goVersion").string(&info.go_version);
        j.end_object();
    })
}

/// `GET /api/v1/status/config`: the loaded configuration as YAML text.
pub fn status_config(yaml: &str) -> ApiResponse {
    success(&[], &[], |j| {
        j.begin_object();
        j.key("yaml").string(yaml);
        j.end_object();
    })
}

/// `GET /api/v1/status/flags`: flag name → value as given.
pub fn status_flags(flags: &[(String, String)]) -> ApiResponse {
    success(&[], &[], |j| {
        j.begin_object();
        for (k, v) in flags {
            j.key(k).string(v);
        }
        j.end_object();
    })
}

/// `GET /api/v1/status/runtimeinfo`: fields as (name, pre-rendered JSON value).
pub fn status_runtimeinfo(fields: &[(String, String)]) -> ApiResponse {
    success(&[], &[], |j| {
        j.begin_object();
        for (k, v) in fields {
            j.key(k).raw(v);
        }
        j.end_object();
    })
}

/// `GET /api/v1/status/tsdb`: cardinality statistics over what the querier holds.
pub fn status_tsdb(params: &[(String, String)], querier: &dyn Querier, now_ms: i64) -> ApiResponse {
    let limit = match param(params, "limit").filter(|s| !s.is_empty()) {
        None => 10,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => return bad_param("limit", &format!("cannot parse \"{s}\" to a valid limit")),
        },
    };
    let any = match Matcher::new(
        crate::model::MatchOp::Regex,
        crate::model::METRIC_NAME,
        ".+",
    ) {
        Ok(m) => m,
        Err(e) => return error(ErrorType::Internal, &e.to_string()),
    };
    // Streamed: the store lends one series at a time, so this never holds every sample.
    let (mut min_t, mut max_t, mut chunks) = (i64::MAX, i64::MIN, 0usize);
    let mut num_series = 0usize;
    let mut by_name: std::collections::HashMap<String, u64> = Default::default();
    let mut values_by_label: std::collections::HashMap<String, std::collections::HashSet<String>> =
        Default::default();
    let mut bytes_by_label: std::collections::HashMap<String, u64> = Default::default();
    let mut by_pair: std::collections::HashMap<String, u64> = Default::default();
    let mut pairs: std::collections::HashSet<(String, String)> = Default::default();
    querier.select_each(&[any], MIN_TIME, MAX_TIME, &mut |labels, samples| {
        num_series += 1;
        if let (Some(f), Some(l)) = (samples.first(), samples.last()) {
            min_t = min_t.min(f.t);
            max_t = max_t.max(l.t);
        }
        chunks += samples.len().div_ceil(120);
        *by_name
            .entry(labels.name().unwrap_or("").to_string())
            .or_default() += 1;
        for (n, v) in labels.iter() {
            if values_by_label
                .entry(n.to_string())
                .or_default()
                .insert(v.to_string())
            {
                *bytes_by_label.entry(n.to_string()).or_default() += v.len() as u64;
            }
            *by_pair.entry(format!("{n}={v}")).or_default() += 1;
            pairs.insert((n.to_string(), v.to_string()));
        }
    });
    if num_series == 0 {
        min_t = now_ms;
        max_t = now_ms;
    }
    let top = |m: std::collections::HashMap<String, u64>| {
        let mut v: Vec<(String, u64)> = m.into_iter().collect();
        crate::sort::sort_by(&mut v, |a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(limit);
        v
    };
    let write_stats = |j: &mut Json, key: &str, v: Vec<(String, u64)>| {
        j.key(key).begin_array();
        for (n, c) in v {
            j.begin_object();
            j.key("name").string(&n);
            j.key("value").raw(&c.to_string());
            j.end_object();
        }
        j.end_array();
    };
    let label_counts = values_by_label
        .iter()
        .map(|(k, v)| (k.clone(), v.len() as u64))
        .collect();
    success(&[], &[], |j| {
        j.begin_object();
        j.key("headStats").begin_object();
        j.key("numSeries").raw(&num_series.to_string());
        j.key("numLabelPairs").raw(&pairs.len().to_string());
        j.key("chunkCount").raw(&chunks.to_string());
        j.key("minTime").raw(&min_t.to_string());
        j.key("maxTime").raw(&max_t.to_string());
        j.end_object();
        write_stats(j, "seriesCountByMetricName", top(by_name));
        write_stats(j, "labelValueCountByLabelName", top(label_counts));
        write_stats(j, "memoryInBytesByLabelName", top(bytes_by_label));
        write_stats(j, "seriesCountByLabelValuePair", top(by_pair));
        j.end_object();
    })
}

/// `GET|POST /api/v1/format_query`: the query re-printed in canonical form.
pub fn format_query(params: &[(String, String)]) -> ApiResponse {
    let q = param(params, "query").unwrap_or("");
    match promql::parse(q) {
        Ok(e) => {
            let s = e.to_string();
            success(&[], &[], |j| {
                j.string(&s);
            })
        }
        Err(e) => bad_param("query", &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::testing::MemStorage;
    use crate::tsdb::Appender;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn store() -> MemStorage {
        let mut s = MemStorage::new();
        for (job, inst, base) in [("api", "a", 1.0), ("api", "b", 10.0), ("db", "c", 100.0)] {
            let l =
                Labels::from_pairs([("__name__", "up_total"), ("job", job), ("instance", inst)]);
            for i in 0..5 {
                s.append(&l, i * 15_000, base + i as f64).unwrap();
            }
        }
        s
    }

    fn body(r: &ApiResponse) -> String {
        String::from_utf8(r.body.clone()).unwrap()
    }

    /// A ring store behind a querier that only selects, so the engine answers every query.
    struct EngineOnly<'a>(&'a crate::tsdb::Store);

    impl Querier for EngineOnly<'_> {
        fn select(
            &self,
            ms: &[crate::model::Matcher],
            mint: i64,
            maxt: i64,
        ) -> Vec<crate::tsdb::SeriesSamples> {
            self.0.select(ms, mint, maxt)
        }
        fn label_names(&self, ms: &[crate::model::Matcher], mint: i64, maxt: i64) -> Vec<String> {
            self.0.label_names(ms, mint, maxt)
        }
        fn label_values(
            &self,
            name: &str,
            ms: &[crate::model::Matcher],
            mint: i64,
            maxt: i64,
        ) -> Vec<String> {
            self.0.label_values(name, ms, mint, maxt)
        }
    }

    #[test]
    fn plain_selector_answers_are_the_bytes_the_engine_writes() {
        let mut st = crate::tsdb::Store::new(crate::tsdb::Options::default());
        for i in 0..400i64 {
            for (k, inst) in ["a", "b\"<&>", "c"].into_iter().enumerate() {
                let l = Labels::from_pairs([
                    ("__name__", "up_total"),
                    ("job", if k == 2 { "db" } else { "api" }),
                    ("instance", inst),
                ]);
                st.append(&l, i * 15_000, (i * (k as i64 + 1)) as f64 / 3.0)
                    .unwrap();
            }
        }
        let o = EngineOpts::default();
        for q in [
            "up_total",
            "up_total{job=\"api\"} offset 1m",
            "(up_total)",
            "nope",
        ] {
            for time in ["0", "1000", "3000.5", "6000"] {
                for limit in ["", "1", "2", "3", "9"] {
                    let params = p(&[("query", q), ("time", time), ("limit", limit)]);
                    let fast = query(&params, &st, 0, &o);
                    let slow = query(&params, &EngineOnly(&st), 0, &o);
                    assert_eq!(body(&fast), body(&slow), "{q} at {time} limit {limit:?}");
                    assert_eq!(fast.status, slow.status);
                }
            }
        }
        let b = body(&query(
            &p(&[("query", "up_total"), ("time", "1000"), ("limit", "1")]),
            &st,
            0,
            &o,
        ));
        assert!(b.contains("results truncated due to limit"), "{b}");
        assert!(b.contains(r#""instance":"a""#), "{b}");
        // The sample limit is an execution error, as from the engine.
        let tight = EngineOpts {
            max_samples: 2,
            ..EngineOpts::default()
        };
        let r = query(
            &p(&[("query", "up_total"), ("time", "1000")]),
            &st,
            0,
            &tight,
        );
        assert_eq!(r.status, 422, "{}", body(&r));
    }

    #[test]
    fn instant_query_returns_vector_with_string_values() {
        let r = query(
            &p(&[("query", "sum by (job) (up_total)"), ("time", "60")]),
            &store(),
            0,
            &EngineOpts::default(),
        );
        assert_eq!(r.status, 200);
        let b = body(&r);
        assert!(
            b.starts_with(r#"{"status":"success","data":{"resultType":"vector","result":["#),
            "{b}"
        );
        assert!(
            b.contains(r#"{"metric":{"job":"api"},"value":[60,"19"]}"#),
            "{b}"
        );
        assert!(
            b.contains(r#"{"metric":{"job":"db"},"value":[60,"104"]}"#),
            "{b}"
        );
    }

    #[test]
    fn native_histograms_render_with_bucket_boundary_rules() {
        let mut s = MemStorage::new();
        let l = Labels::from_pairs([("__name__", "lat")]);
        let h = crate::rules::notation::parse_histogram(
            "{{schema:0 count:4 sum:2.5 z_bucket:1 z_bucket_w:0.001 buckets:[1 0 1] n_buckets:[1]}}",
        )
        .unwrap();
        s.append_histogram(&l, 0, h.clone()).unwrap();
        s.append_histogram(&l, 15_000, h).unwrap();
        let r = query(
            &p(&[("query", "lat"), ("time", "15")]),
            &s,
            0,
            &EngineOpts::default(),
        );
        let buckets = r#"{"count":"4","sum":"2.5","buckets":[[1,"-1","-0.5","1"],[3,"-0.001","0.001","1"],[0,"0.5","1","1"],[0,"2","4","1"]]}"#;
        assert_eq!(
            body(&r),
            format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"__name__":"lat"}},"histogram":[15,{buckets}]}}]}}}}"#
            )
        );
        let r = query_range(
            &p(&[
                ("query", "lat"),
                ("start", "0"),
                ("end", "15"),
                ("step", "15s"),
            ]),
            &s,
            0,
            &EngineOpts::default(),
        );
        assert_eq!(
            body(&r),
            format!(
                r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{"__name__":"lat"}},"histograms":[[0,{buckets}],[15,{buckets}]]}}]}}}}"#
            )
        );
    }

    #[test]
    fn scalar_and_range_results_have_exact_json() {
        let r = query(
            &p(&[("query", "1.5"), ("time", "1.781")]),
            &store(),
            0,
            &EngineOpts::default(),
        );
        assert_eq!(
            body(&r),
            r#"{"status":"success","data":{"resultType":"scalar","result":[1.781,"1.5"]}}"#
        );
        let r = query_range(
            &p(&[
                ("query", "up_total{instance=\"c\"}"),
                ("start", "0"),
                ("end", "30"),
                ("step", "15s"),
            ]),
            &store(),
            0,
            &EngineOpts::default(),
        );
        assert_eq!(
            body(&r),
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up_total","instance":"c","job":"db"},"values":[[0,"100"],[15,"101"],[30,"102"]]}]}}"#
        );
    }

    #[test]
    fn errors_map_to_prometheus_types_and_codes() {
        let s = store();
        let o = EngineOpts::default();
        let r = query(&p(&[("query", "sum(")]), &s, 0, &o);
        assert_eq!(r.status, 400);
        assert_eq!(
            body(&r),
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error: unclosed left parenthesis"}"#
        );
        let r = query(
            &p(&[("query", "up_total + on() up_total"), ("time", "60")]),
            &s,
            0,
            &o,
        );
        assert_eq!(r.status, 422, "{}", body(&r));
        assert!(body(&r).contains(r#""errorType":"execution""#));
        let r = query_range(
            &p(&[
                ("query", "1"),
                ("start", "0"),
                ("end", "100000"),
                ("step", "1"),
            ]),
            &s,
            0,
            &o,
        );
        assert_eq!(r.status, 400);
        assert!(body(&r).contains("11,000 points"));
        let r = query_range(
            &p(&[("query", "1"), ("start", "10"), ("end", "0"), ("step", "1")]),
            &s,
            0,
            &o,
        );
        assert_eq!(r.status, 400);
        let r = series(&p(&[]), &s);
        assert_eq!(
            body(&r),
            r#"{"status":"error","errorType":"bad_data","error":"no match[] parameter provided"}"#
        );
    }

    #[test]
    fn series_labels_and_values_are_sorted_and_deduplicated() {
        let s = store();
        let r = series(
            &p(&[
                ("match[]", "up_total{job=\"api\"}"),
                ("match[]", "up_total{instance=\"a\"}"),
            ]),
            &s,
        );
        assert_eq!(
            body(&r),
            r#"{"status":"success","data":[{"__name__":"up_total","instance":"a","job":"api"},{"__name__":"up_total","instance":"b","job":"api"}]}"#
        );
        assert_eq!(
            body(&labels(&p(&[]), &s)),
            r#"{"status":"success","data":["__name__","instance","job"]}"#
        );
        assert_eq!(
            body(&label_values("job", &p(&[]), &s)),
            r#"{"status":"success","data":["api","db"]}"#
        );
        assert_eq!(
            body(&label_values("job", &p(&[("limit", "1")]), &s)),
            r#"{"status":"success","data":["api"],"warnings":["results truncated due to limit"]}"#
        );
    }

    #[test]
    fn metadata_and_buildinfo_envelopes() {
        let m = vec![MetricMetadata {
            metric: "up_total".into(),
            kind: "counter".into(),
            help: "Up.".into(),
            unit: "".into(),
        }];
        assert_eq!(
            body(&metadata(&p(&[]), &m)),
            r#"{"status":"success","data":{"up_total":[{"type":"counter","unit":"","help":"Up."}]}}"#
        );
        let b = buildinfo(&BuildInfo {
            version: "0.1.0".into(),
            ..BuildInfo::default()
        });
        assert_eq!(
            body(&b),
            r#"{"status":"success","data":{"version":"0.1.0","revision":"","branch":"","buildUser":"","buildDate":"","goVersion":""}}"#
        );
    }

    #[test]
    fn times_parse_as_float_seconds_or_rfc3339() {
        assert_eq!(parse_time("1435781451.781"), Ok(1_435_781_451_781));
        assert_eq!(
            parse_time("2015-07-01T20:10:51.781Z"),
            Ok(1_435_781_451_781)
        );
        assert_eq!(
            parse_time("2015-07-01T22:10:51.781+02:00"),
            Ok(1_435_781_451_781)
        );
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_duration_param("1m30s"), Ok(90_000));
        assert_eq!(parse_duration_param("15"), Ok(15_000));
    }
}
