//! `promlet test rules FILE…`: promtool's rule unit-test format, run against our rule groups,
//! engine and an in-memory store.
//!
//! Owns: reading test files (strict keys unless `--ignore-unknown-fields`), the evaluation loop
//! (lazy loading of input series, every group evaluated at each `evaluation_interval` step),
//! alert and PromQL checks, and promtool-shaped failure output. Exit code 0 if every test group
//! passes, 1 otherwise. Must not touch: the real TSDB. Native histograms (`{{…}}` in
//! `input_series`, `histogram:` in expected samples) are loaded into the in-memory store and
//! compared as promtool does: through their printed series notation.

use super::backend::EngineBackend;
use super::file::{RuleFile, RuleKind};
use super::group::{AlertState, EvalContext, Group};
use super::manager::glob;
use super::notation::{
    histogram_expression, parse_histogram, parse_series, parse_values, SeriesValue,
};
use crate::config::yaml::{self, Node, Value};
use crate::model::Labels;
use crate::promql::testing::MemStorage;
use crate::promql::EngineOpts;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Options of `promlet test rules`.
#[derive(Clone, Debug, Default)]
pub struct TestOptions {
    /// `--run REGEX`: only test groups whose name matches one of these.
    pub run: Vec<String>,
    /// `--ignore-unknown-fields`: unknown keys in test and rule files are not errors.
    pub ignore_unknown_fields: bool,
}

/// Runs every file; prints promtool-style results to `out`; returns the exit code.
pub fn run_files(files: &[PathBuf], opts: &TestOptions, out: &mut dyn Write) -> i32 {
    let mut run = Vec::new();
    for r in &opts.run {
        match regex_lite::Regex::new(r) {
            Ok(re) => run.push(re),
            Err(e) => {
                let _ = writeln!(out, "invalid --run regex {r:?}: {e}");
                return 1;
            }
        }
    }
    let mut code = 0;
    for f in files {
        eprintln!("Unit Testing:  {}", f.display());
        let errors = match run_file(f, opts, &run) {
            Ok(errs) => errs,
            Err(e) => vec![e],
        };
        if errors.is_empty() {
            let _ = writeln!(out, "  SUCCESS\n");
        } else {
            code = 1;
            let _ = writeln!(out, "  FAILED:");
            for e in errors {
                let _ = writeln!(out, "{e}");
            }
            let _ = writeln!(out);
        }
    }
    code
}

struct TestFile {
    rule_files: Vec<String>,
    evaluation_interval: i64,
    fuzzy: bool,
    group_eval_order: Vec<String>,
    groups: Vec<TestGroup>,
}

#[derive(Default)]
struct TestGroup {
    name: String,
    interval: Option<i64>,
    start: i64,
    external_labels: Labels,
    external_url: String,
    input: Vec<(String, String)>,
    alert_tests: Vec<AlertTest>,
    promql_tests: Vec<PromqlTest>,
}

struct AlertTest {
    eval_time: i64,
    alertname: String,
    exp: Vec<(Labels, Labels)>,
}

struct PromqlTest {
    expr: String,
    eval_time: i64,
    /// (labels text, value, histogram in the series notation).
    exp: Vec<(String, f64, Option<String>)>,
}

/// Strict-key reading of the test file's YAML.
struct Reader {
    strict: bool,
}

fn scalar(n: &Node) -> Result<&str, String> {
    match &n.value {
        Value::Scalar { text, .. } => Ok(text),
        _ => Err(format!(
            "{}:{}: expected a scalar, got a {}",
            n.pos.line,
            n.pos.col,
            n.kind()
        )),
    }
}

fn seq(n: &Node) -> Result<&[Node], String> {
    match &n.value {
        Value::Seq(s) => Ok(s),
        _ if n.is_null() => Ok(&[]),
        _ => Err(format!(
            "{}:{}: expected a sequence, got a {}",
            n.pos.line,
            n.pos.col,
            n.kind()
        )),
    }
}

fn dur_ms(n: &Node) -> Result<i64, String> {
    let t = scalar(n)?;
    crate::config::parse_duration(t)
        .map(|d| d.as_millis() as i64)
        .map_err(|e| format!("{}:{}: {e}", n.pos.line, n.pos.col))
}

impl Reader {
    fn map<'n>(
        &self,
        n: &'n Node,
        allowed: &[&str],
        what: &str,
    ) -> Result<Vec<(&'n str, &'n Node)>, String> {
        if n.is_null() {
            return Ok(Vec::new());
        }
        let Value::Map(entries) = &n.value else {
            return Err(format!(
                "{}:{}: {what}: expected a mapping",
                n.pos.line, n.pos.col
            ));
        };
        let mut out = Vec::new();
        for (k, v) in entries {
            let key = scalar(k)?;
            if !allowed.is_empty() && !allowed.contains(&key) {
                if self.strict {
                    return Err(format!(
                        "yaml: unmarshal errors:\n  line {}: field {key} not found in type {what}",
                        k.pos.line
                    ));
                }
                continue;
            }
            out.push((key, v));
        }
        Ok(out)
    }

    fn string_map(&self, n: &Node, what: &str) -> Result<Labels, String> {
        let mut l = Labels::new();
        for (k, v) in self.map(n, &[], what)? {
            l.set(
                k.to_string(),
                if v.is_null() {
                    String::new()
                } else {
                    scalar(v)?.to_string()
                },
            );
        }
        Ok(l)
    }

    fn file(&self, root: &Node) -> Result<TestFile, String> {
        let mut f = TestFile {
            rule_files: Vec::new(),
            evaluation_interval: 60_000,
            fuzzy: false,
            group_eval_order: Vec::new(),
            groups: Vec::new(),
        };
        const KEYS: &[&str] = &[
            "rule_files",
            "evaluation_interval",
            "fuzzy_compare",
            "group_eval_order",
            "tests",
        ];
        for (k, v) in self.map(root, KEYS, "main.unitTestFile")? {
            match k {
                "rule_files" => {
                    for r in seq(v)? {
                        f.rule_files.push(scalar(r)?.to_string());
                    }
                }
                "evaluation_interval" => f.evaluation_interval = dur_ms(v)?,
                "fuzzy_compare" => f.fuzzy = scalar(v)? == "true",
                "group_eval_order" => {
                    for g in seq(v)? {
                        f.group_eval_order.push(scalar(g)?.to_string());
                    }
                }
                _ => {
                    for t in seq(v)? {
                        f.groups.push(self.group(t)?);
                    }
                }
            }
        }
        Ok(f)
    }

    fn group(&self, n: &Node) -> Result<TestGroup, String> {
        let mut g = TestGroup::default();
        const KEYS: &[&str] = &[
            "name",
            "interval",
            "start_timestamp",
            "external_labels",
            "external_url",
            "input_series",
            "alert_rule_test",
            "promql_expr_test",
        ];
        for (k, v) in self.map(n, KEYS, "main.testGroup")? {
            match k {
                "name" => g.name = scalar(v)?.to_string(),
                "interval" => g.interval = Some(dur_ms(v)?),
                "start_timestamp" => g.start = parse_start(scalar(v)?)?,
                "external_labels" => g.external_labels = self.string_map(v, "external_labels")?,
                "external_url" => g.external_url = scalar(v)?.to_string(),
                "input_series" => {
                    for s in seq(v)? {
                        let mut series = String::new();
                        let mut values = String::new();
                        for (k2, v2) in self.map(s, &["series", "values"], "main.series")? {
                            if k2 == "series" {
                                series = scalar(v2)?.to_string();
                            } else {
                                values = scalar(v2)?.to_string();
                            }
                        }
                        g.input.push((series, values));
                    }
                }
                "alert_rule_test" => {
                    for a in seq(v)? {
                        let mut t = AlertTest {
                            eval_time: 0,
                            alertname: String::new(),
                            exp: Vec::new(),
                        };
                        for (k2, v2) in self.map(
                            a,
                            &["eval_time", "alertname", "exp_alerts"],
                            "main.alertTestCase",
                        )? {
                            match k2 {
                                "eval_time" => t.eval_time = dur_ms(v2)?,
                                "alertname" => t.alertname = scalar(v2)?.to_string(),
                                _ => {
                                    for e in seq(v2)? {
                                        let mut labels = Labels::new();
                                        let mut annotations = Labels::new();
                                        for (k3, v3) in self.map(
                                            e,
                                            &["exp_labels", "exp_annotations"],
                                            "main.alert",
                                        )? {
                                            if k3 == "exp_labels" {
                                                labels = self.string_map(v3, "exp_labels")?;
                                            } else {
                                                annotations =
                                                    self.string_map(v3, "exp_annotations")?;
                                            }
                                        }
                                        t.exp.push((labels, annotations));
                                    }
                                }
                            }
                        }
                        g.alert_tests.push(t);
                    }
                }
                _ => {
                    for p in seq(v)? {
                        let mut t = PromqlTest {
                            expr: String::new(),
                            eval_time: 0,
                            exp: Vec::new(),
                        };
                        for (k2, v2) in self.map(
                            p,
                            &["expr", "eval_time", "exp_samples"],
                            "main.promqlTestCase",
                        )? {
                            match k2 {
                                "expr" => t.expr = scalar(v2)?.to_string(),
                                "eval_time" => t.eval_time = dur_ms(v2)?,
                                _ => {
                                    for s in seq(v2)? {
                                        let mut labels = String::new();
                                        let mut value = 0.0;
                                        let mut hist = None;
                                        for (k3, v3) in self.map(
                                            s,
                                            &["labels", "value", "histogram"],
                                            "main.sample",
                                        )? {
                                            match k3 {
                                                "labels" => {
                                                    labels = if v3.is_null() {
                                                        String::new()
                                                    } else {
                                                        scalar(v3)?.to_string()
                                                    }
                                                }
                                                "value" => {
                                                    let t = scalar(v3)?;
                                                    value = super::notation::parse_number(t)
                                                        .ok_or_else(|| {
                                                            format!(
                                                                "{}:{}: bad sample value {t:?}",
                                                                v3.pos.line, v3.pos.col
                                                            )
                                                        })?;
                                                }
                                                _ => hist = Some(scalar(v3)?.to_string()),
                                            }
                                        }
                                        t.exp.push((labels, value, hist));
                                    }
                                }
                            }
                        }
                        g.promql_tests.push(t);
                    }
                }
            }
        }
        Ok(g)
    }
}

/// `start_timestamp`: Unix seconds or RFC 3339 (`2024-01-01T00:00:00Z`, with an offset).
fn parse_start(s: &str) -> Result<i64, String> {
    if let Ok(v) = s.parse::<f64>() {
        return Ok((v * 1000.0).round() as i64);
    }
    let bad = || format!("cannot parse start_timestamp {s:?}: want Unix seconds or RFC 3339");
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num =
        |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<i64>().ok()).ok_or_else(bad);
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    let mut rest = &s[19..];
    let mut frac_ms = 0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        let f = &r[..digits];
        frac_ms = format!("{:0<3}", &f[..f.len().min(3)])
            .parse::<i64>()
            .map_err(|_| bad())?;
        rest = &r[digits..];
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        r if r.len() == 6 && (r.starts_with('+') || r.starts_with('-')) => {
            let hh: i64 = r[1..3].parse().map_err(|_| bad())?;
            let mm: i64 = r[4..6].parse().map_err(|_| bad())?;
            let o = hh * 3600 + mm * 60;
            if r.starts_with('-') {
                -o
            } else {
                o
            }
        }
        _ => return Err(bad()),
    };
    let days = crate::log::days_from_civil(y, mo, d);
    Ok(((days * 86_400 + h * 3600 + mi * 60 + se - offset_s) * 1000) + frac_ms)
}

/// Prometheus's `model.Duration` text: `0s`, `5m`, `1d`, `2m59s999ms`.
pub fn format_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms.unsigned_abs();
    if ms < 0 {
        out.push('-');
    }
    for (unit, size) in [
        ("y", 31_536_000_000u64),
        ("w", 604_800_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

/// Go's `strconv.FormatFloat(v, 'E', -1, 64)`.
fn format_e_upper(v: f64) -> String {
    if !v.is_finite() {
        return super::gofmt::format_g(v, None);
    }
    let s = format!("{v:E}");
    let (m, e) = s.split_once('E').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    format!(
        "{m}E{}{:02}",
        if e < 0 { '-' } else { '+' },
        e.unsigned_abs()
    )
}

/// Runs one test file: Ok(failure messages) or Err(a file-level failure).
fn run_file(
    path: &Path,
    opts: &TestOptions,
    run: &[regex_lite::Regex],
) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let root = yaml::parse(&text).map_err(|e| {
        format!(
            "{}:{}:{}: yaml: {}",
            path.display(),
            e.pos.line,
            e.pos.col,
            e.msg
        )
    })?;
    let reader = Reader {
        strict: !opts.ignore_unknown_fields,
    };
    let tf = reader
        .file(&root)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut defs = Vec::new();
    for pattern in &tf.rule_files {
        for f in glob(base, pattern) {
            let shown = f.strip_prefix(base).unwrap_or(&f).display().to_string();
            let text = std::fs::read_to_string(&f).map_err(|e| format!("{shown}: {e}"))?;
            let rf =
                RuleFile::parse(&text, &shown, opts.ignore_unknown_fields).map_err(|errs| {
                    errs.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                })?;
            defs.extend(rf.groups);
        }
    }
    // Groups named in group_eval_order first, in that order; the rest in file order.
    let mut ordered = Vec::new();
    for name in &tf.group_eval_order {
        if let Some(i) = defs.iter().position(|g| &g.name == name) {
            ordered.push(defs.remove(i));
        }
    }
    ordered.extend(defs);
    let mut errors = Vec::new();
    for tg in &tf.groups {
        if !run.is_empty() && !run.iter().any(|r| r.is_match(&tg.name)) {
            continue;
        }
        errors.extend(run_group(tg, &tf, &ordered));
    }
    Ok(errors)
}

fn run_group(tg: &TestGroup, tf: &TestFile, defs: &[super::file::GroupDef]) -> Vec<String> {
    let name_line = if tg.name.is_empty() {
        String::new()
    } else {
        format!("    name: {},\n", tg.name)
    };
    let eval_iv = tf.evaluation_interval.max(1);
    let interval = tg.interval.unwrap_or(eval_iv).max(1);
    // Input samples, sorted by time for lazy loading.
    let mut input: Vec<(i64, Labels, SeriesValue)> = Vec::new();
    for (series, values) in &tg.input {
        let (labels, _) = match parse_series(series) {
            Ok(l) => l,
            Err(e) => return vec![format!("{series}: {e}")],
        };
        let vals = match parse_values(values) {
            Ok(v) => v,
            Err(e) => return vec![format!("{series}: {e}")],
        };
        for (i, v) in vals.into_iter().enumerate() {
            if let Some(v) = v {
                input.push((tg.start + i as i64 * interval, labels.clone(), v));
            }
        }
    }
    crate::sort::sort_by_key(&mut input, |s| s.0);
    let mut groups: Vec<Group> = defs
        .iter()
        .map(|d| {
            let mut g = Group::new(d.clone(), Duration::from_millis(interval as u64));
            g.mark_restored();
            g
        })
        .collect();
    let opts = EngineOpts {
        timeout: Duration::from_secs(100),
        lookback_delta: 300_000,
        default_subquery_step: eval_iv,
        ..EngineOpts::default()
    };
    let mut store = MemStorage::new();
    let max_eval = tg
        .alert_tests
        .iter()
        .map(|a| a.eval_time)
        .chain(tg.promql_tests.iter().map(|p| p.eval_time))
        .max()
        .unwrap_or(0);
    let ctx = EvalContext {
        external_labels: &tg.external_labels,
        external_url: &tg.external_url,
        resend_delay_ms: super::group::DEFAULT_RESEND_DELAY_MS,
    };
    let mut errors = Vec::new();
    let mut loaded = 0;
    let mut ts = tg.start;
    let end = tg.start + max_eval;
    let mut notify = |_: &str, _: &[super::group::OutgoingAlert]| {};
    while ts <= end {
        while loaded < input.len() && input[loaded].0 <= ts {
            let (t, l, v) = &input[loaded];
            let _ = match v {
                SeriesValue::Float(v) => crate::tsdb::Appender::append(&mut store, l, *t, *v),
                SeriesValue::Histogram(h) => {
                    crate::tsdb::Appender::append_histogram(&mut store, l, *t, (**h).clone())
                }
            };
            loaded += 1;
        }
        let mut backend = EngineBackend::new(&mut store, &opts);
        for g in groups.iter_mut() {
            for e in g.eval(ts, &mut backend, &ctx, &mut notify) {
                errors.push(format!(
                    "    rule: {}, time: {}, err: {}",
                    e.rule,
                    format_duration(ts - tg.start),
                    e.msg
                ));
            }
        }
        if !errors.is_empty() {
            return errors;
        }
        for at in &tg.alert_tests {
            let rel = ts - tg.start;
            if !(rel <= at.eval_time && at.eval_time < rel + eval_iv) {
                continue;
            }
            let mut got: Vec<(Labels, Labels)> = Vec::new();
            for g in &groups {
                for (r, a) in g.alerts() {
                    if r.kind == RuleKind::Alerting
                        && r.name == at.alertname
                        && a.state == AlertState::Firing
                    {
                        got.push((a.labels.clone(), a.annotations.clone()));
                    }
                }
            }
            let mut exp: Vec<(Labels, Labels)> = at
                .exp
                .iter()
                .map(|(l, a)| {
                    let mut l = l.clone();
                    l.set("alertname".into(), at.alertname.clone());
                    (l, a.clone())
                })
                .collect();
            crate::sort::sort_by(&mut got, |a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
            crate::sort::sort_by(&mut exp, |a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
            if got != exp {
                errors.push(format!(
                    "{name_line}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}\n",
                    at.alertname,
                    format_duration(at.eval_time),
                    alert_list(&exp),
                    alert_list(&got)
                ));
            }
        }
        ts += eval_iv;
    }
    for pt in &tg.promql_tests {
        if let Some(e) = check_promql(pt, tg, tf.fuzzy, &store, &opts) {
            errors.push(e);
        }
    }
    errors
}

fn alert_list(a: &[(Labels, Labels)]) -> String {
    if a.is_empty() {
        return "[]".into();
    }
    let mut s = String::from("[\n");
    for (i, (l, an)) in a.iter().enumerate() {
        s.push_str(&format!(
            "            {i}:\n              Labels:{}\n              Annotations:{}\n",
            crate::promql::engine::go_labels(l),
            go_annotations(an)
        ));
    }
    s.push_str("            ]");
    s
}

/// Annotations as promtool prints them: `{name="value", ...}` (unquoted names).
fn go_annotations(l: &Labels) -> String {
    crate::promql::engine::go_labels(l)
}

fn values_equal(a: f64, b: f64, fuzzy: bool) -> bool {
    if a == b {
        return true;
    }
    if !fuzzy || !a.is_finite() || !b.is_finite() {
        return false;
    }
    // One ULP either way.
    let next_up = f64::from_bits(if a >= 0.0 {
        a.to_bits() + 1
    } else {
        a.to_bits() - 1
    });
    let next_down = f64::from_bits(if a > 0.0 {
        a.to_bits() - 1
    } else {
        a.to_bits() + 1
    });
    b == next_up || b == next_down
}

/// (labels, float value, histogram in the series notation).
type Expected = (Labels, f64, Option<String>);

/// Runs `expr` at `t`, keeping native histograms (printed in the series notation) apart from
/// floats.
fn query_histogram_samples(
    store: &MemStorage,
    opts: &EngineOpts,
    expr: &crate::promql::Expr,
    text: &str,
    t: i64,
) -> Result<Vec<Expected>, String> {
    use crate::promql::Value;
    let res =
        crate::promql::instant_query(store, text, expr, t, opts).map_err(|e| e.to_string())?;
    match res.value {
        Value::Vector(v) => Ok(v
            .into_iter()
            .map(|s| {
                let h = s.h.as_deref().map(histogram_expression);
                ((*s.labels).clone(), s.v, h)
            })
            .collect()),
        Value::Scalar(v) => Ok(vec![(Labels::new(), v, None)]),
        Value::Matrix(_) | Value::Str(_) => Err("rule result is not a vector or scalar".into()),
    }
}

fn check_promql(
    pt: &PromqlTest,
    tg: &TestGroup,
    fuzzy: bool,
    store: &MemStorage,
    opts: &EngineOpts,
) -> Option<String> {
    let name_line = if tg.name.is_empty() {
        String::new()
    } else {
        format!("    name: {},\n", tg.name)
    };
    let head = format!(
        "{name_line}    expr: {:?}, time: {}",
        pt.expr,
        format_duration(pt.eval_time)
    );
    let expr = match crate::promql::parse(&pt.expr) {
        Ok(e) => e,
        Err(e) => return Some(format!("{head}, err: {e}\n")),
    };
    let got = match query_histogram_samples(store, opts, &expr, &pt.expr, tg.start + pt.eval_time) {
        Ok(g) => g,
        Err(e) => return Some(format!("{head}, err: {e}\n")),
    };
    let mut exp: Vec<Expected> = Vec::new();
    for (l, v, h) in &pt.exp {
        let labels = if l.trim().is_empty() {
            Labels::new()
        } else {
            match parse_series(l) {
                Ok((labels, _)) => labels,
                Err(e) => return Some(format!("{head}, err: expected sample {l:?}: {e}\n")),
            }
        };
        // Compared as promtool does: through the printed form, so layout differences that
        // print the same (empty buckets, span splits) do not count.
        let hist = match h {
            Some(h) => match parse_histogram(h.trim()) {
                Ok(h) => Some(histogram_expression(&h)),
                Err(e) => return Some(format!("{head}, err: labels {l:?}: {e}\n")),
            },
            None => None,
        };
        exp.push((labels, *v, hist));
    }
    let mut got = got;
    crate::sort::sort_by(&mut got, |a, b| a.0.cmp(&b.0));
    crate::sort::sort_by(&mut exp, |a, b| a.0.cmp(&b.0));
    let same = got.len() == exp.len()
        && got
            .iter()
            .zip(&exp)
            .all(|(g, e)| g.0 == e.0 && values_equal(e.1, g.1, fuzzy) && g.2 == e.2);
    if same {
        return None;
    }
    let show = |v: &[Expected]| {
        if v.is_empty() {
            return "nil".to_string();
        }
        v.iter()
            .map(|(l, x, h)| {
                let value = match h {
                    Some(h) => h.clone(),
                    None => format_e_upper(*x),
                };
                format!("{} {value}", crate::promql::engine::go_labels(l))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(format!(
        "{head},\n        exp: {}\n        got: {}\n",
        show(&exp),
        show(&got)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_model_duration() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(300_000), "5m");
        assert_eq!(format_duration(86_400_000), "1d");
        assert_eq!(format_duration(179_999), "2m59s999ms");
    }

    #[test]
    fn start_timestamps_parse() {
        assert_eq!(parse_start("1609459200").unwrap(), 1_609_459_200_000);
        assert_eq!(
            parse_start("2024-01-01T00:00:00Z").unwrap(),
            1_704_067_200_000
        );
        assert_eq!(
            parse_start("2024-01-01T01:00:00+01:00").unwrap(),
            1_704_067_200_000
        );
        assert!(parse_start("yesterday").is_err());
    }

    #[test]
    fn fuzzy_compare_allows_one_ulp() {
        assert!(values_equal(3.0, 2.9999999999999996, true));
        assert!(values_equal(3.0, 3.0000000000000004, true));
        assert!(!values_equal(3.0, 2.9999999999999987, true));
        assert!(!values_equal(3.0, 3.0000000000000004, false));
        assert!(!values_equal(f64::NAN, f64::NAN, true));
    }

    #[test]
    fn floats_print_like_go_upper_e() {
        assert_eq!(format_e_upper(1.0), "1E+00");
        assert_eq!(format_e_upper(2.9999999999999996), "2.9999999999999996E+00");
        assert_eq!(format_e_upper(0.0), "0E+00");
    }
}
