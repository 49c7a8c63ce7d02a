//! The Grafana dashboard `packaging/grafana/promlet-device.json`: every panel's PromQL and every
//! template variable's query, with the variables substituted as Grafana does, run against live
//! promlets and against a real Prometheus 3.5 that federates them. Each query must parse and
//! return data.
//!
//! Two promlets run with the default collectors and a 1 s collection interval:
//! - `a.local` reads this machine's /proc and /sys;
//! - `b.local` reads this machine's /proc but node_exporter's recorded /sys tree
//!   (`tests/common/node_fixtures.rs`), which has the hwmon sensors and thermal zones a VM lacks.
//!
//! The temperature panels (`HARDWARE_METRICS`) are the only exemption: they must return data from
//! `b.local` and, when this machine has sensors, from `a.local` too. Every other query must
//! return data from both promlets directly, and from Prometheus for each instance and for "All".

use crate::common::{self, Agent, Prometheus, TempDir};
use promlet::http::json::Value as JsonValue;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Metrics that exist only where /sys has sensors.
const HARDWARE_METRICS: &[&str] = &["node_hwmon_temp_celsius", "node_thermal_zone_temp"];

/// Grafana's data-source "scrape interval" for these servers (promlet collects every 1 s and
/// Prometheus federates every 1 s), and the `$__interval` of a 1 s-step range query.
const SCRAPE_INTERVAL_S: u64 = 1;
const INTERVAL_S: u64 = 1;
/// The dashboard time range the test queries (`$__range`).
const RANGE_S: u64 = 30;

fn dashboard() -> JsonValue {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packaging/grafana/promlet-device.json");
    let text = std::fs::read_to_string(&path).unwrap();
    parse_json(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse_json(s: &str) -> Result<JsonValue, String> {
    JsonValue::parse(s)
}

fn field<'a>(v: &'a JsonValue, key: &str) -> Option<&'a JsonValue> {
    v.get(key)
}

fn string(v: &JsonValue, key: &str) -> Option<String> {
    match field(v, key)? {
        JsonValue::Str(s) => Some(s.clone()),
        _ => None,
    }
}

fn array<'a>(v: &'a JsonValue, key: &str) -> &'a [JsonValue] {
    match field(v, key) {
        Some(JsonValue::Arr(a)) => a,
        _ => &[],
    }
}

/// One query of a panel: where it comes from, its text, and whether Grafana runs it as an
/// instant (table) query or a range query.
#[derive(Debug)]
struct PanelQuery {
    origin: String,
    expr: String,
    instant: bool,
}

/// Every target of every panel, including panels nested in collapsed rows.
fn panel_queries(dash: &JsonValue) -> Vec<PanelQuery> {
    fn walk(panels: &[JsonValue], out: &mut Vec<PanelQuery>) {
        for p in panels {
            let title = string(p, "title").unwrap_or_default();
            for t in array(p, "targets") {
                let expr = string(t, "expr").unwrap_or_default();
                let instant = matches!(field(t, "instant"), Some(JsonValue::Bool(true)));
                let ref_id = string(t, "refId").unwrap_or_default();
                out.push(PanelQuery {
                    origin: format!("panel {title:?} target {ref_id}"),
                    expr,
                    instant,
                });
            }
            walk(array(p, "panels"), out);
        }
    }
    let mut out = Vec::new();
    walk(array(dash, "panels"), &mut out);
    out
}

/// A query variable: `label_values(SELECTOR, LABEL)`.
#[derive(Debug)]
struct LabelVariable {
    name: String,
    selector: String,
    label: String,
    all_value: String,
}

fn variables(dash: &JsonValue) -> Vec<LabelVariable> {
    let templating = field(dash, "templating").expect("templating");
    let mut out = Vec::new();
    for v in array(templating, "list") {
        if string(v, "type").as_deref() != Some("query") {
            continue;
        }
        let name = string(v, "name").unwrap();
        let q = match field(v, "query") {
            Some(JsonValue::Str(s)) => s.clone(),
            Some(obj) => string(obj, "query").unwrap(),
            None => panic!("variable {name} has no query"),
        };
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {name}: only label_values(...) is handled: {q}"));
        let (selector, label) = inner.rsplit_once(',').unwrap();
        assert_eq!(
            field(v, "includeAll"),
            Some(&JsonValue::Bool(true)),
            "variable {name}: without All, promlet's unlabelled series could not be selected"
        );
        out.push(LabelVariable {
            name,
            selector: selector.trim().to_string(),
            label: label.trim().to_string(),
            all_value: string(v, "allValue").unwrap_or_else(|| ".*".into()),
        });
    }
    out
}

/// What a variable is set to: Grafana's "All" or some values.
#[derive(Clone, Debug)]
enum Selection {
    All,
    Values(Vec<String>),
}

/// Grafana's Prometheus data source escapes a multi-value variable's values for use in a regex
/// matcher: each regex metacharacter gets two backslashes (one for the PromQL string, one for
/// the regex), and several values become `(a|b)`.
fn grafana_regex_value(values: &[String]) -> String {
    let esc: Vec<String> = values
        .iter()
        .map(|v| {
            let mut s = String::new();
            for c in v.chars() {
                if "$^*+?.()|\\{}[]'".contains(c) {
                    s.push_str("\\\\");
                }
                s.push(c);
            }
            s
        })
        .collect();
    if esc.len() == 1 {
        esc[0].clone()
    } else {
        format!("({})", esc.join("|"))
    }
}

/// Substitutes Grafana's global variables and the template variables into `expr`.
fn interpolate(
    expr: &str,
    vars: &[LabelVariable],
    selection: &BTreeMap<String, Selection>,
) -> String {
    // $__rate_interval = max($__interval + scrape interval, 4 × scrape interval).
    let rate_interval = (INTERVAL_S + SCRAPE_INTERVAL_S).max(4 * SCRAPE_INTERVAL_S);
    let mut out = expr
        .replace("$__rate_interval", &format!("{rate_interval}s"))
        .replace("${__rate_interval}", &format!("{rate_interval}s"))
        .replace("$__interval_ms", &(INTERVAL_S * 1000).to_string())
        .replace("$__interval", &format!("{INTERVAL_S}s"))
        .replace("$__range_ms", &(RANGE_S * 1000).to_string())
        .replace("$__range_s", &RANGE_S.to_string())
        .replace("$__range", &format!("{RANGE_S}s"));
    // Longest names first, so `$instance` is not taken for `$inst`.
    let mut names: Vec<&LabelVariable> = vars.iter().collect();
    names.sort_by_key(|v| std::cmp::Reverse(v.name.len()));
    for v in names {
        let value = match selection.get(&v.name).unwrap_or(&Selection::All) {
            Selection::All => v.all_value.clone(),
            Selection::Values(vals) => grafana_regex_value(vals),
        };
        out = out
            .replace(&format!("${{{}}}", v.name), &value)
            .replace(&format!("${}", v.name), &value);
    }
    assert!(
        !out.contains('$'),
        "a variable the test does not substitute is left in {out}"
    );
    out
}

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A server speaking the Prometheus HTTP API.
struct Server {
    name: String,
    port: u16,
}

impl Server {
    /// GET `path`: the parsed envelope, or an error naming the status and body.
    fn api(&self, path: &str) -> Result<JsonValue, String> {
        let (status, _, body) = common::http_get(self.port, path, "");
        let body = String::from_utf8_lossy(&body).to_string();
        let json = parse_json(&body).map_err(|e| format!("{status} {e}: {body}"))?;
        if status != 200 || string(&json, "status").as_deref() != Some("success") {
            return Err(format!("{status} {body}"));
        }
        Ok(json)
    }

    /// Runs `expr` as Grafana would (instant or range over the last `RANGE_S`); the number of
    /// series returned.
    fn run(&self, expr: &str, instant: bool) -> Result<usize, String> {
        let now = now_s();
        let path = if instant {
            format!("/api/v1/query?query={}&time={now:.3}", url_encode(expr))
        } else {
            format!(
                "/api/v1/query_range?query={}&start={:.3}&end={now:.3}&step={INTERVAL_S}",
                url_encode(expr),
                now - RANGE_S as f64
            )
        };
        let json = self.api(&path)?;
        let data = field(&json, "data").ok_or("no data")?;
        Ok(array(data, "result").len())
    }

    /// `label_values(selector, label)` as Grafana asks it of a Prometheus data source.
    fn label_values(&self, selector: &str, label: &str) -> Result<Vec<String>, String> {
        let now = now_s();
        let json = self.api(&format!(
            "/api/v1/label/{label}/values?match[]={}&start={:.3}&end={now:.3}",
            url_encode(selector),
            now - RANGE_S as f64
        ))?;
        Ok(array(&json, "data")
            .iter()
            .filter_map(|v| match v {
                JsonValue::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect())
    }
}

/// A promlet collecting every second with `instance` as its external label and a rule file
/// whose alert always fires (so `ALERTS` has data); `extra` are more flags.
fn device(instance: &str, extra: &[&str]) -> Agent {
    let dir = TempDir::new("grafana");
    let rules = dir.0.join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: heartbeat\n    interval: 1s\n    rules:\n      - alert: Heartbeat\n        \
         expr: vector(1)\n        labels:\n          severity: none\n",
    )
    .unwrap();
    let cfg = dir.0.join("promlet.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  external_labels:\n    \
             instance: {instance}\nrule_files: [rules.yml]\n"
        ),
    )
    .unwrap();
    let arg = format!("--config.file={}", cfg.display());
    let mut args = vec![arg.as_str()];
    args.extend_from_slice(extra);
    Agent::start_in(dir, &args)
}

/// Prometheus 3.5 federating every series of the given promlets (honor_labels, as the
/// federation docs advise), scraping every second.
fn federating_prometheus(targets: &[u16]) -> Option<Prometheus> {
    let list: Vec<String> = targets.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
    Prometheus::launch(
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: promlet\n    \
             honor_labels: true\n    metrics_path: /federate\n    params:\n      \
             'match[]': ['{{__name__=~\".+\"}}']\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        ),
        &[],
    )
}

fn is_hardware(expr: &str) -> bool {
    HARDWARE_METRICS.iter().any(|m| expr.contains(m))
}

/// Runs every panel query on `server` with `selection`; returns the failures (parse errors,
/// and empty results unless `may_be_empty` says the query is exempt there).
fn check_all(
    server: &Server,
    queries: &[PanelQuery],
    vars: &[LabelVariable],
    selection: &BTreeMap<String, Selection>,
    may_be_empty: &dyn Fn(&PanelQuery) -> bool,
) -> Vec<String> {
    let mut failures = Vec::new();
    for q in queries {
        let expr = interpolate(&q.expr, vars, selection);
        match server.run(&expr, q.instant) {
            Ok(0) if !may_be_empty(q) => failures.push(format!(
                "{} ({selection:?}): {} returned no data: {expr}",
                server.name, q.origin
            )),
            Ok(_) => {}
            Err(e) => failures.push(format!(
                "{} ({selection:?}): {} failed: {expr}: {e}",
                server.name, q.origin
            )),
        }
    }
    failures
}

/// Retries `check` until it reports no failures or `within` passes (rates need two samples in
/// their window, federation a few scrapes); the last failures otherwise.
fn settle(within: Duration, check: impl Fn() -> Vec<String>) -> Vec<String> {
    let t0 = Instant::now();
    loop {
        let failures = check();
        if failures.is_empty() || t0.elapsed() > within {
            return failures;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn dashboard_is_well_formed_and_covers_each_area() {
    let dash = dashboard();
    assert_eq!(string(&dash, "uid").as_deref(), Some("promlet-device"));
    let queries = panel_queries(&dash);
    let vars = variables(&dash);
    let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["job", "instance"]);
    let templating = field(&dash, "templating").unwrap();
    assert!(
        array(templating, "list")
            .iter()
            .any(|v| string(v, "type").as_deref() == Some("datasource")),
        "no data source variable"
    );
    for area in [
        "node_cpu_seconds_total",
        "node_memory_MemAvailable_bytes",
        "node_filesystem_avail_bytes",
        "node_disk_written_bytes_total",
        "node_network_receive_bytes_total",
        "node_hwmon_temp_celsius",
        "node_thermal_zone_temp",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "promlet_tsdb_bytes_used",
        "promlet_tsdb_series",
        "ALERTS",
    ] {
        assert!(
            queries.iter().any(|q| q.expr.contains(area)),
            "no panel queries {area}"
        );
    }
    for q in &queries {
        // Every selector is narrowed by both variables, so a central Prometheus holding many
        // devices shows the chosen ones only.
        assert!(
            q.expr.contains("instance=~\"$instance\"") && q.expr.contains("job=~\"$job\""),
            "{} does not select by $job and $instance: {}",
            q.origin,
            q.expr
        );
    }
    // Every panel names the data source variable, so switching it switches every panel.
    fn walk(panels: &[JsonValue]) {
        for p in panels {
            if string(p, "type").as_deref() != Some("row") {
                let ds = field(p, "datasource").expect("panel without datasource");
                assert_eq!(string(ds, "uid").as_deref(), Some("${datasource}"), "{p:?}");
            }
            walk(array(p, "panels"));
        }
    }
    walk(array(&dash, "panels"));
    assert!(queries.len() >= 30, "only {} queries", queries.len());
}

#[test]
fn grafana_interpolation_matches_grafana_escaping() {
    let vars = vec![LabelVariable {
        name: "instance".into(),
        selector: "up".into(),
        label: "instance".into(),
        all_value: ".*".into(),
    }];
    let mut sel = BTreeMap::new();
    sel.insert(
        "instance".to_string(),
        Selection::Values(vec!["pi.lan:9099".into()]),
    );
    assert_eq!(
        interpolate(
            "rate(x{instance=~\"$instance\"}[$__rate_interval])",
            &vars,
            &sel
        ),
        "rate(x{instance=~\"pi\\\\.lan:9099\"}[4s])"
    );
    sel.insert(
        "instance".to_string(),
        Selection::Values(vec!["a".into(), "b".into()]),
    );
    assert_eq!(
        interpolate("x{instance=~\"${instance}\"}", &vars, &sel),
        "x{instance=~\"(a|b)\"}"
    );
    sel.insert("instance".to_string(), Selection::All);
    assert_eq!(
        interpolate("x{instance=~\"$instance\"}", &vars, &sel),
        "x{instance=~\".*\"}"
    );
}

#[test]
fn every_dashboard_query_returns_data_from_promlet_and_federating_prometheus() {
    let dash = dashboard();
    let queries = panel_queries(&dash);
    let vars = variables(&dash);
    let Some(shared) = common::shared_dir("node-fixtures") else {
        return;
    };
    let fixtures = common::node_fixtures::NodeFixtures::new(&shared, "grafana");
    let sysfs = format!("--path.sysfs={}", fixtures.root().join("sys").display());

    let a = device("a.local", &[]);
    let b = device("b.local", &[&sysfs]);
    let direct_a = Server {
        name: "promlet a.local (this machine's /sys)".into(),
        port: a.port,
    };
    let direct_b = Server {
        name: "promlet b.local (fixture /sys)".into(),
        port: b.port,
    };
    // Does this machine have sensors? Then the temperature panels must show them.
    let metrics = a.metrics();
    let has_sensors = |q: &PanelQuery| {
        HARDWARE_METRICS
            .iter()
            .any(|m| q.expr.contains(m) && metrics.contains(&format!("\n{m}{{")))
    };
    let all = BTreeMap::new();
    let mut failures = settle(Duration::from_secs(30), || {
        let mut f = check_all(&direct_a, &queries, &vars, &all, &|q| {
            is_hardware(&q.expr) && !has_sensors(q)
        });
        f.extend(check_all(&direct_b, &queries, &vars, &all, &|_| false));
        f
    });
    // On promlet itself the variables list nothing (its own series carry no job or instance
    // label: external labels are for federation and remote write), so Grafana offers only
    // "All", whose `.*` matches the unlabelled series; the queries above ran that way.
    for v in &vars {
        for s in [&direct_a, &direct_b] {
            if let Err(e) = s.label_values(&v.selector, &v.label) {
                failures.push(format!("{}: variable {}: {e}", s.name, v.name));
            }
        }
    }
    let tested_temperature = queries.iter().filter(|q| is_hardware(&q.expr)).count();
    eprintln!(
        "grafana: {} panel queries ran on both promlets ({tested_temperature} temperature \
         queries need sensors: {} here, fixture /sys on b.local)",
        queries.len(),
        if queries.iter().any(has_sensors) {
            "present"
        } else {
            "absent"
        }
    );

    if let Some(prom) = federating_prometheus(&[a.port, b.port]) {
        let port = prom.port;
        let prom = Server {
            name: "Prometheus 3.5 federating both".into(),
            port,
        };
        // The variables as Grafana fills them from the central server.
        let values = |name: &str| -> Vec<String> {
            let v = vars.iter().find(|v| v.name == name).unwrap();
            let selector = v.selector.replace("$job", ".*");
            prom.label_values(&selector, &v.label).unwrap_or_default()
        };
        let t0 = Instant::now();
        while values("instance").len() < 2 && t0.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(250));
        }
        let instances = values("instance");
        assert_eq!(instances, ["a.local", "b.local"], "instance variable");
        let jobs = values("job");
        assert_eq!(jobs, ["promlet"], "job variable");
        let mut selections = vec![BTreeMap::new()];
        for i in &instances {
            let mut s = BTreeMap::new();
            s.insert("job".to_string(), Selection::Values(jobs.clone()));
            s.insert("instance".to_string(), Selection::Values(vec![i.clone()]));
            selections.push(s);
        }
        failures.extend(settle(Duration::from_secs(30), || {
            let mut f = Vec::new();
            for s in &selections {
                let on_a =
                    matches!(s.get("instance"), Some(Selection::Values(v)) if v[0] == "a.local");
                f.extend(check_all(&prom, &queries, &vars, s, &|q| {
                    on_a && is_hardware(&q.expr) && !has_sensors(q)
                }));
            }
            f
        }));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
