//! Differential test: the same generated data in a real Prometheus 3.5 (imported with
//! `promtool tsdb create-blocks-from openmetrics`) and in our engine; a list of instant and range
//! queries goes through Prometheus's HTTP API and through our `api_v1` handlers over our
//! ring-buffer TSDB (`tsdb::Store`), and the decoded
//! results must agree (labels exactly, values within 1e-6 relative, NaN equals NaN).
//!
//! Two Prometheus instances run on copies of the same blocks: one with
//! `--enable-feature=promql-delayed-name-removal` (our engine's default, and what the upstream
//! conformance suite uses), one with the default immediate removal, compared with our engine's
//! `delayed_name_removal: false`.

use crate::common::{self, ChildGuard, TempDir};
use promlet::http::api_v1;
use promlet::model::Labels;
use promlet::promql::functions::almost_equal;
use promlet::promql::EngineOpts;
use promlet::tsdb::{Appender, Querier, Store};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::Command;

/// Start of the generated data (2023-11-14T22:13:20Z), 15 s apart, two hours.
const T0: i64 = 1_700_000_000_000;
const STEP: i64 = 15_000;
const POINTS: i64 = 481;

/// Deterministic pseudo-random numbers (an LCG), so both stores get identical data.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

type Series = Vec<(Labels, Vec<(i64, f64)>)>;

/// The data in promlet's ring-buffer TSDB (in memory; the default budget holds it all).
fn load_store(data: &Series) -> Store {
    let mut store = Store::new(promlet::tsdb::Options::default());
    for (l, pts) in data {
        for (t, v) in pts {
            store.append(l, *t, *v).unwrap();
        }
    }
    store
}

/// Generated series: counters with a reset, gauges, classic histogram buckets, a series that
/// stops half-way.
fn generate() -> Series {
    let mut rng = Lcg(42);
    let mut out = Vec::new();
    for job in ["api", "web"] {
        for inst in ["0", "1", "2"] {
            for code in ["200", "500"] {
                let l = Labels::from_pairs([
                    ("__name__", "http_requests_total"),
                    ("job", job),
                    ("instance", inst),
                    ("code", code),
                ]);
                let mut v = 0.0;
                let mut pts = Vec::new();
                for i in 0..POINTS {
                    if job == "web" && inst == "1" && i == 200 {
                        v = 0.0; // counter reset
                    }
                    v += (rng.next() * 10.0).floor() * if code == "500" { 0.1 } else { 1.0 };
                    pts.push((T0 + i * STEP, v));
                }
                out.push((l, pts));
            }
        }
    }
    for (room, base) in [("a", 20.0), ("b", 22.5), ("c", 18.25)] {
        let l = Labels::from_pairs([("__name__", "temp_celsius"), ("room", room)]);
        let pts = (0..POINTS)
            .map(|i| {
                (
                    T0 + i * STEP,
                    base + 3.0 * (i as f64 / 40.0).sin() + rng.next(),
                )
            })
            .collect();
        out.push((l, pts));
    }
    for job in ["api", "web"] {
        let mut counts = [0.0f64; 4];
        let les = ["0.1", "0.5", "1", "+Inf"];
        let mut series: Vec<Vec<(i64, f64)>> = vec![vec![]; 4];
        for i in 0..POINTS {
            for _ in 0..5 {
                let x = rng.next() * 1.5;
                for (k, ub) in [0.1, 0.5, 1.0, f64::INFINITY].iter().enumerate() {
                    if x <= *ub {
                        counts[k] += 1.0;
                    }
                }
            }
            for k in 0..4 {
                series[k].push((T0 + i * STEP, counts[k]));
            }
        }
        for (k, pts) in series.into_iter().enumerate() {
            let l = Labels::from_pairs([
                ("__name__", "req_duration_seconds_bucket"),
                ("job", job),
                ("le", les[k]),
            ]);
            out.push((l, pts));
        }
    }
    let l = Labels::from_pairs([("__name__", "batch_last_run"), ("job", "batch")]);
    let pts = (0..POINTS / 2)
        .map(|i| (T0 + i * STEP, (T0 + i * STEP) as f64 / 1000.0))
        .collect();
    out.push((l, pts));
    out
}

fn openmetrics(data: &[(Labels, Vec<(i64, f64)>)]) -> String {
    let mut s = String::new();
    for (l, pts) in data {
        let name = l.name().unwrap_or("");
        let labels: Vec<String> = l
            .iter()
            .filter(|(n, _)| *n != "__name__")
            .map(|(n, v)| format!("{n}=\"{v}\""))
            .collect();
        for (t, v) in pts {
            s.push_str(&format!(
                "{name}{{{}}} {v:?} {}.{:03}\n",
                labels.join(","),
                t / 1000,
                t % 1000
            ));
        }
    }
    s.push_str("# EOF\n");
    s
}

// ---- reading API responses (promlet's own JSON reader; lenient accessors) ----

use promlet::http::json::Value as J;

trait Lenient {
    fn str(&self) -> &str;
    fn arr(&self) -> &[J];
}

impl Lenient for J {
    fn str(&self) -> &str {
        self.as_str().unwrap_or("")
    }
    fn arr(&self) -> &[J] {
        self.as_array().unwrap_or(&[])
    }
}

/// A decoded query result: result type (with the annotations appended), label set (as sorted
/// pairs) -> points (t ms, value).
type Decoded = (String, BTreeMap<Vec<(String, String)>, Vec<(i64, f64)>>);

fn num(s: &str) -> f64 {
    match s {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        s => s.parse().unwrap_or(f64::NAN),
    }
}

fn point(p: &J) -> (i64, f64) {
    let a = p.arr();
    let t = match a.first() {
        Some(J::Num(x)) => (x * 1000.0).round() as i64,
        _ => i64::MIN,
    };
    (t, num(a.get(1).map(|v| v.str()).unwrap_or("")))
}

fn decode(body: &[u8]) -> Result<Decoded, String> {
    let text = String::from_utf8_lossy(body);
    let j = J::parse(&text)?;
    if j.get("status").map(|s| s.str()) != Some("success") {
        // Errors compare by type only: messages are worded differently.
        let t = j.get("errorType").map(|s| s.str()).unwrap_or("?");
        return Ok((format!("error:{t}"), BTreeMap::new()));
    }
    let data = j.get("data").ok_or("no data")?;
    let mut rt = data
        .get("resultType")
        .map(|s| s.str().to_string())
        .unwrap_or_default();
    let kind = rt.clone();
    // Annotations are part of the answer: compare them too.
    for k in ["warnings", "infos"] {
        for w in j.get(k).map(|a| a.arr()).unwrap_or(&[]) {
            rt.push_str(&format!(" {k}:{}", w.str()));
        }
    }
    let mut out = BTreeMap::new();
    let result = data.get("result").ok_or("no result")?;
    match kind.as_str() {
        "scalar" | "string" => {
            out.insert(vec![], vec![point(result)]);
        }
        _ => {
            for s in result.arr() {
                let labels: Vec<(String, String)> = match s.get("metric") {
                    Some(J::Obj(m)) => {
                        let mut v: Vec<_> = m
                            .iter()
                            .map(|(k, v)| (k.clone(), v.str().to_string()))
                            .collect();
                        v.sort();
                        v
                    }
                    _ => vec![],
                };
                let pts = match (s.get("value"), s.get("values")) {
                    (Some(p), _) => vec![point(p)],
                    (_, Some(ps)) => ps.arr().iter().map(point).collect(),
                    _ => vec![],
                };
                if out.insert(labels.clone(), pts).is_some() {
                    return Err(format!("duplicate series {labels:?}"));
                }
            }
        }
    }
    Ok((rt, out))
}

fn same(a: &Decoded, b: &Decoded) -> Result<(), String> {
    if a.0 != b.0 {
        return Err(format!("result type {} vs {}", a.0, b.0));
    }
    if a.1.len() != b.1.len() || a.1.keys().zip(b.1.keys()).any(|(x, y)| x != y) {
        return Err(format!(
            "series differ:\n  prometheus {:?}\n  promlet    {:?}",
            a.1.keys().collect::<Vec<_>>(),
            b.1.keys().collect::<Vec<_>>()
        ));
    }
    for ((l, pa), pb) in a.1.iter().zip(b.1.values()) {
        if pa.len() != pb.len() {
            return Err(format!("{l:?}: {} points vs {}", pa.len(), pb.len()));
        }
        for (x, y) in pa.iter().zip(pb) {
            if x.0 != y.0 || !almost_equal(x.1, y.1, 1e-6) {
                return Err(format!("{l:?}: prometheus {x:?} vs promlet {y:?}"));
            }
        }
    }
    Ok(())
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (c as char).to_string()
            }
            _ => format!("%{c:02X}"),
        })
        .collect()
}

/// A minimal HTTP/1.1 server (one thread, one request per connection) that routes the API paths
/// to our handlers; it stands in for promlet's server so real clients can be pointed at them.
fn serve_api(data: Series) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        // The store lives on the server thread, like the agent's.
        let store = load_store(&data);
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let target = line.split(' ').nth(1).unwrap_or("/");
            let (path, qs) = target.split_once('?').unwrap_or((target, ""));
            let mut params = promlet::http::parse_urlencoded(qs).unwrap_or_default();
            params.extend(
                promlet::http::parse_urlencoded(&String::from_utf8_lossy(&body))
                    .unwrap_or_default(),
            );
            let opts = EngineOpts::default();
            let now = T0 + 7_200_000;
            let resp = match path {
                "/api/v1/query" => api_v1::query(&params, &store, now, &opts),
                "/api/v1/query_range" => api_v1::query_range(&params, &store, now, &opts),
                "/api/v1/series" => api_v1::series(&params, &store),
                "/api/v1/labels" => api_v1::labels(&params, &store),
                p if p.starts_with("/api/v1/label/") && p.ends_with("/values") => {
                    let name = &p["/api/v1/label/".len()..p.len() - "/values".len()];
                    api_v1::label_values(name, &params, &store)
                }
                _ => api_v1::ApiResponse {
                    status: 404,
                    body: b"{}".to_vec(),
                },
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                resp.status,
                resp.body.len()
            );
            let _ = conn.write_all(&resp.body);
        }
    });
    port
}

/// promtool's output for `args` against a server, with lines sorted (vector order is free).
fn promtool_output(promtool: &std::path::Path, args: &[String]) -> String {
    let out = Command::new(promtool).args(args).output().unwrap();
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.to_string())
        .collect();
    lines.sort();
    format!(
        "exit {}\n{}\n{}",
        out.status.code().unwrap_or(-1),
        lines.join("\n"),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

const INSTANT: &[&str] = &[
    "http_requests_total",
    "rate(http_requests_total[5m])",
    "irate(http_requests_total[5m])",
    "increase(http_requests_total[10m])",
    "resets(http_requests_total[1h])",
    "changes(temp_celsius[10m])",
    "sum by (job) (rate(http_requests_total[5m]))",
    "avg without (instance) (rate(http_requests_total[5m]))",
    "sum(rate(http_requests_total{code=\"500\"}[5m])) / sum(rate(http_requests_total[5m]))",
    "topk(3, http_requests_total)",
    "bottomk(2, temp_celsius)",
    "topk by (job) (1, rate(http_requests_total[5m]))",
    "quantile(0.9, temp_celsius)",
    "quantile by (job) (0.25, rate(http_requests_total[5m]))",
    "count_values(\"rounded\", round(temp_celsius))",
    "stddev(temp_celsius)",
    "stdvar by (job) (http_requests_total)",
    "max(temp_celsius) - min(temp_celsius)",
    "group by (job) (http_requests_total)",
    "count without (code) (http_requests_total)",
    "histogram_quantile(0.9, sum by (le) (rate(req_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.5, rate(req_duration_seconds_bucket[10m]))",
    "delta(temp_celsius[10m])",
    "idelta(temp_celsius[10m])",
    "deriv(temp_celsius[10m])",
    "predict_linear(temp_celsius[15m], 3600)",
    "avg_over_time(temp_celsius[10m])",
    "min_over_time(temp_celsius[10m])",
    "max_over_time(temp_celsius[10m])",
    "sum_over_time(temp_celsius[10m])",
    "count_over_time(temp_celsius[10m])",
    "stddev_over_time(temp_celsius[10m])",
    "stdvar_over_time(temp_celsius[10m])",
    "last_over_time(temp_celsius[10m])",
    "present_over_time(batch_last_run[10m])",
    "quantile_over_time(0.3, temp_celsius[10m])",
    "absent(nonexistent{job=\"x\"})",
    "absent_over_time(batch_last_run[5m])",
    "batch_last_run",
    "label_replace(temp_celsius, \"r\", \"room-$1\", \"room\", \"(.*)\")",
    "label_join(http_requests_total, \"id\", \"/\", \"job\", \"instance\", \"code\")",
    "clamp(temp_celsius, 19, 21)",
    "clamp_min(temp_celsius, 21)",
    "clamp_max(temp_celsius, 21)",
    "round(temp_celsius, 0.25)",
    "abs(-temp_celsius) + ceil(temp_celsius) - floor(temp_celsius)",
    "sqrt(temp_celsius) * ln(temp_celsius) / log2(temp_celsius) + log10(temp_celsius) - exp(temp_celsius / 10)",
    "sin(temp_celsius) + cos(temp_celsius) + tan(temp_celsius) + atan(temp_celsius) + sinh(temp_celsius / 10) + deg(temp_celsius) + rad(temp_celsius)",
    "sgn(temp_celsius - 20)",
    "temp_celsius > 20",
    "temp_celsius > bool 20",
    "20 < temp_celsius",
    "http_requests_total > on (job, instance, code) group_left () (http_requests_total * 0 + 100)",
    "http_requests_total / ignoring (code) group_left sum without (code) (http_requests_total)",
    "sum without (code) (http_requests_total) / ignoring (code) group_right http_requests_total",
    "http_requests_total{code=\"200\"} and on (instance) http_requests_total{job=\"api\"}",
    "temp_celsius or http_requests_total{instance=\"0\"}",
    "http_requests_total unless on (job) http_requests_total{job=\"web\"}",
    "temp_celsius % 3 ^ 2",
    "2 ^ 3 ^ 2",
    "http_requests_total + on (job) http_requests_total",
    "sum(",
    "rate(temp_celsius)",
    "\"a string\"",
    "temp_celsius[2m]",
    "label_replace(temp_celsius, \"x\", \"$1\", \"room\", \"(\")",
    "topk(0, temp_celsius)",
    "quantile(1.5, temp_celsius)",
    "rate(temp_celsius[5m])",
    "sum by (__name__) (rate(http_requests_total[5m]))",
    "label_replace(rate(http_requests_total[5m]), \"n\", \"$1\", \"__name__\", \"(.*)\")",
    "rate({__name__=~\"http_requests_total|temp_celsius\"}[5m])",
    "histogram_quantile(0.5, {__name__=~\"req_duration_seconds_bucket|temp_celsius\"})",
    "count_values(\"value\", floor(temp_celsius))",
    "sum(temp_celsius) by (nonexistent)",
    "temp_celsius == bool on (room) temp_celsius",
    "1 / 0 + -1 / 0",
    "-(2 ^ 0.5) * NaN",
    "temp_celsius atan2 on (room) temp_celsius",
    "timestamp(temp_celsius)",
    "time()",
    "vector(time()) - scalar(sum(temp_celsius))",
    "hour(timestamp(temp_celsius)) + minute() + day_of_week() + day_of_month() + day_of_year() + days_in_month() + month() + year()",
    "max_over_time(rate(http_requests_total[5m])[30m:1m])",
    "avg_over_time(temp_celsius[20m:45s] offset 5m)",
    "rate(http_requests_total[5m] offset 10m)",
    "temp_celsius @ 1700003600",
    "sum(temp_celsius offset -5m)",
    "sort_desc(sum by (job, instance) (http_requests_total))",
    "-temp_celsius",
    "{__name__=~\"temp.*|batch.*\"}",
    "count({__name__!=\"\"})",
    // Bounds on bucket boundaries: Prometheus 3.5 and the newer semantics of the conformance
    // files (no interpolation in the lowest bucket below 0 in 3.5) agree there.
    "histogram_fraction(0.1, 1, rate(req_duration_seconds_bucket[5m]))",
];

const RANGE: &[&str] = &[
    "temp_celsius[2m]",
    "\"a string\"",
    "1 + 1",
    "rate(http_requests_total[5m])",
    "sum by (job) (increase(http_requests_total[10m]))",
    "histogram_quantile(0.95, sum by (le) (rate(req_duration_seconds_bucket[5m])))",
    "temp_celsius > bool 21",
    "batch_last_run",
    "avg_over_time(temp_celsius[7m]) - temp_celsius",
    "scalar(max(temp_celsius))",
    "max_over_time(deriv(temp_celsius[5m])[10m:30s])",
    "time() - timestamp(temp_celsius)",
];

/// Runs every query of INSTANT and RANGE through Prometheus (`port`) and our handlers; returns
/// (comparisons, with data, with annotations) and appends mismatches to `failures`.
fn compare_queries(
    port: u16,
    store: &dyn Querier,
    opts: &EngineOpts,
    failures: &mut Vec<String>,
) -> (usize, usize, usize) {
    let mut compared = 0;
    let mut non_empty = 0;
    let mut annotated = 0;
    let instant_times = [
        T0 + 3_600_000,
        T0 + 5_400_000 + 7_000,
        T0 + 7_200_000 + 240_000,
    ];
    for q in INSTANT {
        for t in instant_times {
            let ts = format!("{}.{:03}", t / 1000, t % 1000);
            let path = format!("/api/v1/query?query={}&time={ts}", url_encode(q));
            let (_, _, body) = common::http_get(port, &path, "");
            let ours = api_v1::query(
                &[("query".into(), q.to_string()), ("time".into(), ts.clone())],
                store,
                t,
                opts,
            );
            compared += 1;
            match (decode(&body), decode(&ours.body)) {
                (Ok(a), Ok(b)) => {
                    non_empty += usize::from(!a.1.is_empty());
                    annotated += usize::from(a.0.contains("warnings:") || a.0.contains("infos:"));
                    if let Err(e) = same(&a, &b) {
                        failures.push(format!("{q} @ {ts}: {e}"));
                    }
                }
                (a, b) => failures.push(format!("{q} @ {ts}: prometheus {a:?} / promlet {b:?}")),
            }
        }
    }
    for q in RANGE {
        for (start, end, step) in [
            (T0 + 1_800_000, T0 + 7_200_000, "60"),
            (T0 + 600_000, T0 + 8_000_000, "37"),
        ] {
            let (s, e) = (format!("{}", start / 1000), format!("{}", end / 1000));
            let path = format!(
                "/api/v1/query_range?query={}&start={s}&end={e}&step={step}",
                url_encode(q)
            );
            let (_, _, body) = common::http_get(port, &path, "");
            let ours = api_v1::query_range(
                &[
                    ("query".into(), q.to_string()),
                    ("start".into(), s.clone()),
                    ("end".into(), e.clone()),
                    ("step".into(), step.to_string()),
                ],
                store,
                end,
                opts,
            );
            compared += 1;
            match (decode(&body), decode(&ours.body)) {
                (Ok(a), Ok(b)) => {
                    non_empty += usize::from(!a.1.is_empty());
                    if let Err(err) = same(&a, &b) {
                        failures.push(format!("range {q} step {step}: {err}"));
                    }
                }
                (a, b) => failures.push(format!("range {q}: prometheus {a:?} / promlet {b:?}")),
            }
        }
    }
    (compared, non_empty, annotated)
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Starts Prometheus on the blocks in `dir/data`, ready to answer; with `delayed`, using the
/// delayed `__name__` removal our engine defaults to.
fn start_prometheus(
    prom: &std::path::Path,
    dir: &std::path::Path,
    data: &str,
    delayed: bool,
) -> (ChildGuard, u16) {
    let port = common::free_port();
    let mut cmd = Command::new(prom);
    cmd.arg(format!(
        "--config.file={}",
        dir.join("prometheus.yml").display()
    ))
    .arg(format!("--storage.tsdb.path={}", dir.join(data).display()))
    .arg("--storage.tsdb.retention.time=100y")
    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    if delayed {
        cmd.arg("--enable-feature=promql-delayed-name-removal");
    }
    let guard = ChildGuard::spawn(&mut cmd);
    assert!(common::wait_for_port(port), "prometheus did not start");
    for _ in 0..100 {
        if common::http_get(port, "/-/ready", "").0 == 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    (guard, port)
}

#[test]
fn results_match_real_prometheus_3_5() {
    let (Some(prom), Some(promtool)) = (
        common::stack_bin("prometheus"),
        common::stack_bin("promtool"),
    ) else {
        return;
    };
    let dir = TempDir::new("diff");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let data = generate();
    std::fs::write(dir.join("data.om"), openmetrics(&data)).unwrap();
    let out = Command::new(&promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(dir.join("data.om"))
        .arg(dir.join("data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        dir.join("prometheus.yml"),
        "global:\n  scrape_interval: 1h\n",
    )
    .unwrap();
    // A second copy of the blocks for a Prometheus with default (immediate) name removal.
    copy_dir(&dir.join("data"), &dir.join("data2"));
    let (_guard, port) = start_prometheus(&prom, &dir, "data", true);
    let (_guard2, port2) = start_prometheus(&prom, &dir, "data2", false);
    let store = load_store(&data);
    let mut failures = Vec::new();
    let delayed = EngineOpts::default();
    let (compared, non_empty, annotated) = compare_queries(port, &store, &delayed, &mut failures);
    let immediate = EngineOpts {
        delayed_name_removal: false,
        ..EngineOpts::default()
    };
    let mut failures2 = Vec::new();
    let (compared2, _, _) = compare_queries(port2, &store, &immediate, &mut failures2);
    println!(
        "immediate name removal: {compared2} comparisons, {} mismatches",
        failures2.len()
    );
    failures.extend(failures2.into_iter().map(|f| format!("(immediate) {f}")));
    // Real client: promtool query against Prometheus and against our handlers.
    let ours = serve_api(data.clone());
    let mut promtool_runs = 0;
    let t = format!("{}", (T0 + 3_600_000) / 1000);
    let (s, e) = (
        format!("{}", (T0 + 1_800_000) / 1000),
        format!("{}", (T0 + 2_400_000) / 1000),
    );
    let cases: Vec<Vec<String>> = vec![
        vec![
            "query".into(),
            "instant".into(),
            format!("--time={t}"),
            "SERVER".into(),
            "sum by (job) (rate(http_requests_total[5m]))".into(),
        ],
        vec![
            "query".into(),
            "instant".into(),
            format!("--time={t}"),
            "SERVER".into(),
            "temp_celsius".into(),
        ],
        vec![
            "query".into(),
            "instant".into(),
            format!("--time={t}"),
            "SERVER".into(),
            "scalar(max(temp_celsius))".into(),
        ],
        vec![
            "query".into(),
            "instant".into(),
            format!("--time={t}"),
            "SERVER".into(),
            "sum(".into(),
        ],
        vec![
            "query".into(),
            "-o".into(),
            "json".into(),
            "instant".into(),
            format!("--time={t}"),
            "SERVER".into(),
            "topk(2, temp_celsius)".into(),
        ],
        vec![
            "query".into(),
            "range".into(),
            format!("--start={s}"),
            format!("--end={e}"),
            "--step=120s".into(),
            "SERVER".into(),
            "max by (room) (temp_celsius)".into(),
        ],
        vec![
            "query".into(),
            "series".into(),
            "--match=temp_celsius".into(),
            "--match={job=\"batch\"}".into(),
            format!("--start={s}"),
            format!("--end={e}"),
            "SERVER".into(),
        ],
        vec![
            "query".into(),
            "labels".into(),
            format!("--start={s}"),
            format!("--end={e}"),
            "SERVER".into(),
            "job".into(),
        ],
    ];
    for case in cases {
        let with = |p: u16| -> Vec<String> {
            case.iter()
                .map(|a| {
                    if a == "SERVER" {
                        format!("http://127.0.0.1:{p}")
                    } else {
                        a.clone()
                    }
                })
                .collect()
        };
        let theirs_out = promtool_output(&promtool, &with(port));
        let ours_out = promtool_output(&promtool, &with(ours));
        promtool_runs += 1;
        assert!(
            theirs_out.len() > 8,
            "promtool printed nothing for {case:?}: {theirs_out}"
        );
        if theirs_out != ours_out {
            failures.push(format!(
                "promtool {case:?}:\n  prometheus: {theirs_out}\n  promlet:    {ours_out}"
            ));
        }
    }
    println!("promtool: {promtool_runs} commands compared");
    println!(
        "differential: {compared} comparisons ({non_empty} with data, {annotated} with annotations), {} mismatches",
        failures.len()
    );
    assert!(
        annotated >= 6,
        "expected warnings/infos on some queries, saw {annotated}"
    );
    // Guards against a broken import making everything trivially equal (empty).
    assert!(
        non_empty * 10 >= compared * 8,
        "too few non-empty results: {non_empty}/{compared}"
    );
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}
