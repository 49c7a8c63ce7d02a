//! The Prometheus HTTP API of the real promlet binary over its own store: a promlet with a
//! temp data dir and a 1 s collection interval answers `/api/v1/*` with the values /proc
//! holds, in Prometheus's envelope; the real `promtool query` and our `promlet query` work
//! against it; a real Prometheus 3.5 scraping the same promlet gives the same answers; data
//! survives a clean restart; `--query.timeout` stops a runaway query.

use crate::common;
use crate::common::{Agent, Prometheus, TempDir};
use promlet::http::json::Value as Json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A promlet collecting every second (plus `args`), after two cycles went into its store.
fn collecting_agent(args: &[&str]) -> Agent {
    let dir = TempDir::new("api");
    let cfg = dir.0.join("promlet.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 1s\n").unwrap();
    let mut all = vec![format!("--config.file={}", cfg.display())];
    all.extend(args.iter().map(|s| s.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let agent = Agent::start_in(dir, &all);
    agent.eventually("two collection cycles", |a| {
        a.metric("promlet_collection_cycles_total")
            .is_some_and(|n| n >= 2.0)
    });
    agent
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Form-encodes a value (everything but unreserved bytes escaped).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// GET `path` on `port`; (status, content type, parsed JSON body).
fn get_json(port: u16, path: &str) -> (u16, String, Json) {
    let (status, head, body) = common::http_get(port, path, "");
    let ct = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or("")
        .to_string();
    let text = String::from_utf8(body).unwrap();
    let json = Json::parse(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
    (status, ct, json)
}

/// POST a form to `path`; (status, parsed JSON body).
fn post_json(port: u16, path: &str, form: &str) -> (u16, Json) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (
        status,
        Json::parse(body).unwrap_or_else(|e| panic!("{e}: {body}")),
    )
}

fn query(port: u16, q: &str) -> Json {
    let (status, ct, j) = get_json(port, &format!("/api/v1/query?query={}", enc(q)));
    assert_eq!(status, 200, "{q}: {j:?}");
    assert_eq!(ct, "application/json");
    j
}

/// The keys of an object, in order.
fn keys(j: &Json) -> Vec<&str> {
    match j {
        Json::Obj(p) => p.iter().map(|(k, _)| k.as_str()).collect(),
        other => panic!("not an object: {other:?}"),
    }
}

fn result(j: &Json) -> &[Json] {
    j.get("data")
        .and_then(|d| d.get("result"))
        .and_then(Json::as_array)
        .unwrap_or_else(|| panic!("no data.result: {j:?}"))
}

/// The value of a vector sample or scalar point `[ts, "v"]`.
fn point_value(p: &Json) -> f64 {
    let a = p.as_array().unwrap();
    assert!(matches!(a[0], Json::Num(_)), "timestamp is a number: {p:?}");
    a[1].as_str().expect("value is a string").parse().unwrap()
}

fn sample_value(s: &Json) -> f64 {
    point_value(s.get("value").unwrap())
}

fn strings(j: &Json) -> Vec<String> {
    j.get("data")
        .and_then(Json::as_array)
        .unwrap_or_else(|| panic!("data is not a list: {j:?}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn meminfo_bytes(field: &str) -> f64 {
    let m = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024.0
}

/// Instant, range, metadata and status endpoints with GET and POST: values from /proc,
/// Prometheus's envelope and shapes, bad input as `bad_data` 400 with a position.
#[test]
fn api_answers_from_the_store_in_prometheus_shape() {
    let agent = collecting_agent(&[]);
    // Three seconds of data for the range queries below.
    std::thread::sleep(Duration::from_secs(2));
    let port = agent.port;

    let j = query(port, "node_memory_MemTotal_bytes");
    assert_eq!(
        keys(&j),
        ["status", "data"],
        "no error/warnings keys on success"
    );
    assert_eq!(j.get("status").unwrap().as_str(), Some("success"));
    let data = j.get("data").unwrap();
    assert_eq!(keys(data), ["resultType", "result"]);
    assert_eq!(data.get("resultType").unwrap().as_str(), Some("vector"));
    let r = result(&j);
    assert_eq!(r.len(), 1, "{j:?}");
    assert_eq!(keys(&r[0]), ["metric", "value"]);
    assert_eq!(
        r[0].get("metric")
            .unwrap()
            .get("__name__")
            .unwrap()
            .as_str(),
        Some("node_memory_MemTotal_bytes")
    );
    assert_eq!(sample_value(&r[0]), meminfo_bytes("MemTotal"));

    // rate() over the counters of two or more cycles: one per cpu and mode, names dropped.
    let j = query(port, "rate(node_cpu_seconds_total[10s])");
    let r = result(&j);
    let modes = query(port, "node_cpu_seconds_total");
    assert_eq!(r.len(), result(&modes).len(), "{j:?}");
    for s in r {
        let m = s.get("metric").unwrap();
        assert!(m.get("__name__").is_none(), "{m:?}");
        assert!(m.get("cpu").is_some() && m.get("mode").is_some(), "{m:?}");
        let v = sample_value(s);
        assert!(v.is_finite() && v >= 0.0, "{v}");
    }
    // Every cpu spends each second in some mode: the modes' rates sum to ~1 per cpu. (irate:
    // rate() over a window much longer than the data extrapolates only part of the way.)
    let busy = query(port, "sum(irate(node_cpu_seconds_total[10s]))");
    let cpus = result(&query(port, "count(node_cpu_seconds_total{mode=\"idle\"})"))[0].clone();
    let (busy, cpus) = (sample_value(&result(&busy)[0]), sample_value(&cpus));
    assert!(
        busy > 0.5 * cpus && busy < 1.5 * cpus,
        "all modes of all cpus sum to ~1 per cpu: {busy} for {cpus}"
    );

    // query_range: one matrix series with points every step, timestamps as numbers.
    let end = now_s().floor();
    let (status, _, j) = get_json(
        port,
        &format!(
            "/api/v1/query_range?query=node_load1&start={}&end={end}&step=1",
            end - 3.0
        ),
    );
    assert_eq!(status, 200, "{j:?}");
    assert_eq!(
        j.get("data").unwrap().get("resultType").unwrap().as_str(),
        Some("matrix")
    );
    let r = result(&j);
    assert_eq!(r.len(), 1);
    assert_eq!(keys(&r[0]), ["metric", "values"]);
    let pts = r[0].get("values").unwrap().as_array().unwrap();
    assert!(pts.len() >= 2, "{pts:?}");
    let ts: Vec<f64> = pts
        .iter()
        .map(|p| match p.as_array().unwrap()[0] {
            Json::Num(t) => t,
            _ => panic!(),
        })
        .collect();
    assert!(ts.windows(2).all(|w| w[1] - w[0] == 1.0), "{ts:?}");
    assert_eq!(*ts.last().unwrap(), end);

    // Too many points per series is bad_data before any evaluation.
    let (status, _, j) = get_json(
        port,
        "/api/v1/query_range?query=node_load1&start=0&end=100000&step=1",
    );
    assert_eq!(status, 400);
    assert_eq!(j.get("errorType").unwrap().as_str(), Some("bad_data"));

    // series, labels, label values.
    let (status, _, j) = get_json(port, "/api/v1/series?match[]=node_load1");
    assert_eq!(status, 200);
    let d = j.get("data").unwrap().as_array().unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(keys(&d[0]), ["__name__"]);
    let (_, _, j) = get_json(port, "/api/v1/labels");
    let names = strings(&j);
    for n in ["__name__", "cpu", "mode", "device"] {
        assert!(names.contains(&n.to_string()), "{n} not in {names:?}");
    }
    assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
    let (_, _, j) = get_json(port, "/api/v1/label/mode/values");
    let modes = strings(&j);
    assert!(modes.contains(&"idle".to_string()) && modes.contains(&"user".to_string()));
    let (_, _, j) = get_json(port, "/api/v1/label/__name__/values");
    let metric_names = strings(&j);
    for n in [
        "node_load1",
        "promlet_tsdb_series",
        "process_resident_memory_bytes",
    ] {
        assert!(metric_names.contains(&n.to_string()), "{n} not stored");
    }
    let (status, _, j) = get_json(port, "/api/v1/series");
    assert_eq!(status, 400);
    assert_eq!(
        j.get("error").unwrap().as_str(),
        Some("no match[] parameter provided")
    );

    // POST forms: the same answers as GET.
    let (status, j) = post_json(
        port,
        "/api/v1/query",
        "query=node_memory_MemTotal_bytes%20%2A%202",
    );
    assert_eq!(status, 200, "{j:?}");
    assert_eq!(
        sample_value(&result(&j)[0]),
        2.0 * meminfo_bytes("MemTotal")
    );
    let (status, j) = post_json(port, "/api/v1/series", "match%5B%5D=node_load5");
    assert_eq!(status, 200);
    assert_eq!(j.get("data").unwrap().as_array().unwrap().len(), 1);
    let (status, j) = post_json(
        port,
        "/api/v1/query_range",
        &format!("query=node_load1&start={}&end={end}&step=1s", end - 2.0),
    );
    assert_eq!(status, 200, "{j:?}");
    assert_eq!(result(&j).len(), 1);

    // A parse error: bad_data 400 with Prometheus's position and wording.
    let (status, ct, j) = get_json(port, &format!("/api/v1/query?query={}", enc("sum(")));
    assert_eq!((status, ct.as_str()), (400, "application/json"));
    assert_eq!(keys(&j), ["status", "errorType", "error"]);
    assert_eq!(j.get("status").unwrap().as_str(), Some("error"));
    assert_eq!(j.get("errorType").unwrap().as_str(), Some("bad_data"));
    assert_eq!(
        j.get("error").unwrap().as_str(),
        Some("invalid parameter \"query\": 1:5: parse error: unclosed left parenthesis")
    );
    // A runtime error is "execution" 422.
    let (status, _, j) = get_json(
        port,
        &format!(
            "/api/v1/query?query={}",
            enc("node_cpu_seconds_total / on(cpu) node_cpu_seconds_total")
        ),
    );
    assert_eq!(status, 422, "{j:?}");
    assert_eq!(j.get("errorType").unwrap().as_str(), Some("execution"));

    // Metadata from the collectors, status endpoints.
    let (_, _, j) = get_json(port, "/api/v1/metadata?metric=node_cpu_seconds_total");
    let m = j
        .get("data")
        .unwrap()
        .get("node_cpu_seconds_total")
        .unwrap()
        .as_array()
        .unwrap();
    assert_eq!(m[0].get("type").unwrap().as_str(), Some("counter"));
    let (_, _, j) = get_json(port, "/api/v1/status/buildinfo");
    assert_eq!(
        j.get("data").unwrap().get("version").unwrap().as_str(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    let (_, _, j) = get_json(port, "/api/v1/status/config");
    let yaml = j
        .get("data")
        .unwrap()
        .get("yaml")
        .unwrap()
        .as_str()
        .unwrap();
    assert!(yaml.contains("scrape_interval: 1s"), "{yaml}");
    let (_, _, j) = get_json(port, "/api/v1/status/flags");
    let flags = j.get("data").unwrap();
    assert_eq!(flags.get("query.timeout").unwrap().as_str(), Some("30s"));
    assert_eq!(
        flags.get("web.listen-address").unwrap().as_str(),
        Some(format!("127.0.0.1:{port}").as_str())
    );
    let (_, _, j) = get_json(port, "/api/v1/status/runtimeinfo");
    let d = j.get("data").unwrap();
    assert_eq!(d.get("reloadConfigSuccess"), Some(&Json::Bool(true)));
    assert_eq!(d.get("corruptionCount"), Some(&Json::Num(0.0)));

    let (status, _, j) = get_json(
        port,
        &format!("/api/v1/format_query?query={}", enc("sum by(mode)(x)")),
    );
    assert_eq!(status, 200);
    assert_eq!(j.get("data").unwrap().as_str(), Some("sum by (mode) (x)"));
    let (status, _, j) = get_json(port, "/api/v1/status/tsdb");
    assert_eq!(status, 200, "{j:?}");
    let stored = j
        .get("data")
        .unwrap()
        .get("headStats")
        .unwrap()
        .get("numSeries")
        .unwrap();
    let Json::Num(stored) = *stored else {
        panic!("{j:?}")
    };
    assert!(stored > 100.0, "{j:?}");

    // The store reports itself on /metrics, and the API did not disturb the thread count.
    assert!(agent.metric("promlet_tsdb_series").unwrap() > 100.0);
    assert_eq!(agent.metric("promlet_append_errors_total"), Some(0.0));
    assert_eq!(agent.metric("promlet_threads"), Some(1.0));
}

/// `--query.timeout` stops a query that would run for a long time: 503 "timeout" soon after
/// the limit, and the agent keeps collecting and answering.
#[test]
fn query_timeout_flag_stops_a_runaway_query() {
    let agent = collecting_agent(&["--query.timeout=1s"]);
    // 216 M evaluations (3,600 outer steps × 60,000 inner ones) whatever the data: far longer
    // than 1 s, while each inner subquery holds only 60,000 points (under --query.max-samples).
    // A subquery over node_load1 alone was cheap once empty steps got cheap: it finished in
    // under 1 s on a freshly started agent.
    let q = enc("count_over_time(count_over_time(vector(1)[1m:1ms])[1h:1s])");
    let t0 = Instant::now();
    let (status, _, j) = get_json(agent.port, &format!("/api/v1/query?query={q}"));
    let took = t0.elapsed();
    assert_eq!(status, 503, "{j:?}");
    assert_eq!(j.get("errorType").unwrap().as_str(), Some("timeout"));
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(6),
        "{took:?}"
    );
    let cycles = agent.metric("promlet_collection_cycles_total").unwrap();
    agent.eventually("collection continues", |a| {
        a.metric("promlet_collection_cycles_total")
            .is_some_and(|n| n > cycles)
    });
    let j = query(agent.port, "node_load1");
    assert_eq!(result(&j).len(), 1);
}

/// What was collected before a clean shutdown (SIGTERM flushes) is queryable after restart.
#[test]
fn stored_data_survives_a_clean_restart() {
    let keep = TempDir::new("api-keep");
    let path = format!("--storage.tsdb.path={}", keep.0.join("data").display());
    let mut first = collecting_agent(&[&path]);
    let before = now_s();
    first.signal("TERM");
    assert_eq!(first.wait_exit(Duration::from_secs(10)), Some(0));
    let second = collecting_agent(&[&path]);
    let log = second.stderr();
    assert!(
        log.contains("samples recovered") && !log.contains(" 0 samples recovered"),
        "{log}"
    );
    let j = query(
        second.port,
        &format!("count_over_time(node_load1[1h] @ {before:.3})"),
    );
    let n = sample_value(&result(&j)[0]);
    assert!(n >= 2.0, "samples from before the restart: {n}");
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The real `promtool query instant|range|series|labels` and our `promlet query` against a
/// running promlet.
#[test]
fn promtool_and_promlet_query_work_against_promlet() {
    let agent = collecting_agent(&[]);
    // Three seconds of data for the range queries below.
    std::thread::sleep(Duration::from_secs(2));
    let server = format!("http://127.0.0.1:{}", agent.port);
    let mem = meminfo_bytes("MemTotal");

    let (code, out, err) = run(Command::new(common::promlet_bin()).args([
        "query",
        &format!("--server={server}"),
        "node_memory_MemTotal_bytes",
    ]));
    assert_eq!(code, 0, "{err}");
    let line = out.lines().next().unwrap_or("");
    assert!(
        line.starts_with(&format!("node_memory_MemTotal_bytes => {mem} @[")),
        "{out}"
    );
    let (code, out, err) = run(Command::new(common::promlet_bin()).args([
        "query",
        "--range",
        "--step=1s",
        &format!("--start={}", now_s() - 3.0),
        &format!("--server={server}"),
        "node_load1",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("node_load1 =>\n"), "{out}");
    assert!(out.lines().count() >= 3, "{out}");
    let (code, _, err) = run(Command::new(common::promlet_bin()).args([
        "query",
        &format!("--server={server}"),
        "sum(",
    ]));
    assert_eq!(code, 1);
    assert!(
        err.contains("bad_data: invalid parameter \"query\": 1:5: parse error"),
        "{err}"
    );

    let Some(promtool) = common::stack_bin("promtool") else {
        return;
    };
    let (code, out, err) = run(Command::new(&promtool).args([
        "query",
        "instant",
        &server,
        "node_memory_MemTotal_bytes",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("node_memory_MemTotal_bytes => {mem} @[")),
        "{out}"
    );
    let (code, out, err) = run(Command::new(&promtool).args([
        "query",
        "range",
        &format!("--start={}", (now_s() - 3.0).floor()),
        "--step=1s",
        &server,
        "node_load1",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("node_load1 =>\n"), "{out}");
    assert!(out.lines().count() >= 3, "{out}");
    let (code, out, err) =
        run(Command::new(&promtool).args(["query", "series", "--match=node_load1", &server]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "{__name__=\"node_load1\"}");
    let (code, out, err) = run(Command::new(&promtool).args(["query", "labels", &server, "mode"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines().any(|l| l == "idle") && out.lines().any(|l| l == "user"),
        "{out}"
    );
    let (code, _, err) = run(Command::new(&promtool).args(["query", "instant", &server, "sum("]));
    assert_eq!(code, 1);
    assert!(err.contains("1:5: parse error"), "{err}");
}

/// The same queries at the same moment against promlet's own store and against a real
/// Prometheus 3.5 that scrapes that promlet: the answers agree.
#[test]
fn promlet_and_real_prometheus_scraping_it_agree() {
    let agent = collecting_agent(&[]);
    let Some(prom) = Prometheus::start(agent.port, "") else {
        return;
    };
    prom.wait_for("up", "1");
    // Let Prometheus gather a few scrapes, so rate() has data on both sides.
    std::thread::sleep(Duration::from_secs(4));
    let at = format!("{:.3}", now_s() - 1.0);
    let both = |q: &str| -> (Json, Json) {
        let path = format!("/api/v1/query?query={}&time={at}", enc(q));
        let (s1, _, ours) = get_json(agent.port, &path);
        let (s2, _, theirs) = get_json(prom.port, &path);
        assert_eq!((s1, s2), (200, 200), "{q}: {ours:?} / {theirs:?}");
        (ours, theirs)
    };
    let one = |j: &Json| -> f64 {
        let r = result(j);
        assert_eq!(r.len(), 1, "{j:?}");
        sample_value(&r[0])
    };
    // A constant gauge: exactly equal.
    let (ours, theirs) = both("sum(node_memory_MemTotal_bytes)");
    assert_eq!(one(&ours), one(&theirs));
    assert_eq!(one(&ours), meminfo_bytes("MemTotal"));
    // Same series count on both sides.
    for q in [
        "count(node_cpu_seconds_total)",
        "count(node_network_receive_bytes_total)",
    ] {
        let (ours, theirs) = both(q);
        assert_eq!(one(&ours), one(&theirs), "{q}");
    }
    // Moving values sampled at slightly different moments: close, not equal.
    for (q, tol) in [
        ("sum(node_memory_MemAvailable_bytes)", 0.05),
        ("sum(irate(node_cpu_seconds_total[5s]))", 0.25),
    ] {
        let (ours, theirs) = both(q);
        let (a, b) = (one(&ours), one(&theirs));
        assert!(
            (a - b).abs() <= tol * a.abs().max(b.abs()),
            "{q}: promlet {a} vs Prometheus {b}"
        );
    }
    // The same parse error, word for word.
    let path = format!("/api/v1/query?query={}", enc("rate(x[5m]"));
    let (s1, _, ours) = get_json(agent.port, &path);
    let (s2, _, theirs) = get_json(prom.port, &path);
    assert_eq!((s1, s2), (400, 400));
    assert_eq!(ours.get("error"), theirs.get("error"));
    assert_eq!(ours.get("errorType"), theirs.get("errorType"));
}

/// `--query.max-samples` refuses a query that would hold more samples, as Prometheus does
/// (422 "execution"), while small queries still work.
#[test]
fn query_max_samples_flag_refuses_big_queries() {
    let agent = collecting_agent(&["--query.max-samples=100"]);
    let q = enc("{__name__=~\"node_.+\"}[1m]");
    let (status, _, j) = get_json(agent.port, &format!("/api/v1/query?query={q}"));
    assert_eq!(status, 422, "{j:?}");
    assert_eq!(j.get("errorType").unwrap().as_str(), Some("execution"));
    assert!(
        j.get("error")
            .unwrap()
            .as_str()
            .unwrap()
            .contains("too many samples"),
        "{j:?}"
    );
    let j = query(agent.port, "node_load1");
    assert_eq!(result(&j).len(), 1);
}

/// A promlet and a real Prometheus 3.5 scraping the same target (another promlet) answer the
/// discovery-side endpoints alike: `/api/v1/targets/metadata` (filters, `limit`, the `metric`
/// field left out when filtered on), `/api/v1/metadata` for a scraped metric,
/// `/api/v1/scrape_pools`, `/api/v1/alertmanagers`, `/api/v1/query_exemplars`,
/// `/api/v1/status/walreplay`.
#[test]
fn target_metadata_and_small_endpoints_match_real_prometheus() {
    let target = collecting_agent(&[]);
    let dir = TempDir::new("api-scraper");
    let cfg = dir.0.join("promlet.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: promlet\n    \
             static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            target.port
        ),
    )
    .unwrap();
    let scraper = Agent::start_in(dir, &[&format!("--config.file={}", cfg.display())]);
    let Some(prom) = Prometheus::start(target.port, "") else {
        return;
    };
    prom.wait_for("up", "1");
    scraper.eventually("a scrape of the target", |a| {
        let (_, _, j) = get_json(a.port, "/api/v1/query?query=up");
        result(&j).len() == 1 && sample_value(&result(&j)[0]) == 1.0
    });
    // Metadata is Go-map ordered in Prometheus: compare as sorted JSON texts.
    let entries = |port: u16, path: &str| -> Vec<String> {
        let (status, _, j) = get_json(port, path);
        assert_eq!(status, 200, "{path}: {j:?}");
        let mut v: Vec<String> = j
            .get("data")
            .and_then(Json::as_array)
            .unwrap_or_else(|| panic!("{path}: {j:?}"))
            .iter()
            .map(|e| {
                let mut s = String::new();
                e.write(&mut s);
                s
            })
            .collect();
        v.sort();
        v
    };
    let one_metric = "/api/v1/targets/metadata?metric=node_load1";
    let ours = entries(scraper.port, one_metric);
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert!(!ours[0].contains("\"metric\""), "{ours:?}");
    assert_eq!(ours, entries(prom.port, one_metric));
    let by_target = format!(
        "/api/v1/targets/metadata?match_target={}",
        enc("{job=\"promlet\"}")
    );
    let (a, b) = (
        entries(scraper.port, &by_target),
        entries(prom.port, &by_target),
    );
    // Both list every family of the target with its name; promlet's own self-metrics move
    // between scrapes, so compare the node_* families only.
    let node = |v: &[String]| -> Vec<String> {
        v.iter()
            .filter(|e| e.contains("\"metric\":\"node_"))
            .cloned()
            .collect()
    };
    assert!(node(&a).len() > 50, "{}", a.len());
    assert_eq!(node(&a), node(&b));
    for path in [
        format!(
            "/api/v1/targets/metadata?match_target={}",
            enc("{job=\"nope\"}")
        ),
        "/api/v1/targets/metadata?metric=no_such_metric".to_string(),
        "/api/v1/targets/metadata?limit=0".to_string(),
    ] {
        assert_eq!(entries(scraper.port, &path), Vec::<String>::new(), "{path}");
        assert_eq!(entries(prom.port, &path), Vec::<String>::new(), "{path}");
    }
    assert_eq!(
        entries(scraper.port, "/api/v1/targets/metadata?limit=2").len(),
        2
    );
    let bad = format!("/api/v1/targets/metadata?match_target={}", enc("bad{"));
    let (s1, _, e1) = get_json(scraper.port, &bad);
    let (s2, _, e2) = get_json(prom.port, &bad);
    assert_eq!((s1, e1.get("errorType")), (s2, e2.get("errorType")));
    assert_eq!(e1.get("error"), e2.get("error"));
    // /api/v1/metadata merges what the scraper collects itself with what it scraped; the
    // same family from both is listed once, as Prometheus lists it once for its target.
    let meta = "/api/v1/metadata?metric=node_load5";
    let (_, _, m1) = get_json(scraper.port, meta);
    let (_, _, m2) = get_json(prom.port, meta);
    assert_eq!(m1.get("data"), m2.get("data"));
    for path in [
        "/api/v1/scrape_pools",
        "/api/v1/alertmanagers",
        "/api/v1/status/walreplay",
        "/api/v1/query_exemplars?query=up&start=1&end=2",
        "/api/v1/query_exemplars?query=up(",
        "/api/v1/query_exemplars",
    ] {
        let (s1, _, j1) = get_json(scraper.port, path);
        let (s2, _, j2) = get_json(prom.port, path);
        assert_eq!((s1, &j1), (s2, &j2), "{path}");
    }
}
