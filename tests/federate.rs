//! `/federate` on the real binary: empty and bad requests, the node_load families with
//! timestamps, `untyped`, sorted, external labels and `instance=""`, GET and POST, OpenMetrics
//! and gzip; and a real Prometheus 3.5 federating promlet and storing what it got.

use crate::common::{Agent, Prometheus, TempDir};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `{__name__=~"node_load.*"}`, URL-encoded.
const NODE_LOAD: &str = "%7B__name__%3D~%22node_load.*%22%7D";

/// A promlet collecting every second with external label `site="home"`, after two cycles.
fn federating_agent() -> Agent {
    let dir = TempDir::new("federate");
    let cfg = dir.0.join("promlet.yml");
    std::fs::write(
        &cfg,
        "global:\n  scrape_interval: 1s\n  external_labels:\n    site: home\n",
    )
    .unwrap();
    let arg = format!("--config.file={}", cfg.display());
    let agent = Agent::start_in(dir, &[&arg]);
    agent.eventually("two collection cycles", |a| {
        a.metric("promlet_collection_cycles_total")
            .is_some_and(|n| n >= 2.0)
    });
    agent
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// POSTs a form body to `path`; (status, head, body).
fn post_form(agent: &Agent, path: &str, form: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// Sample lines of a text exposition.
fn samples(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

#[test]
fn federate_without_match_is_empty_and_bad_selector_is_400() {
    let agent = Agent::start(&[]);
    let (status, _, body) = agent.get("/federate", "");
    assert_eq!(status, 200);
    assert!(body.is_empty(), "{}", String::from_utf8_lossy(&body));
    let (status, head, body) = agent.get("/federate?match[]=up%7B", "");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{body}");
    assert!(head.contains("text/plain"), "{head}");
    assert!(body.contains("parse error"), "{body}");
    // A function call is an expression, not a selector.
    let (status, _, _) = agent.get("/federate?match[]=rate(up%5B1m%5D)", "");
    assert_eq!(status, 400);
}

#[test]
fn federate_returns_latest_node_load_untyped_sorted_with_external_labels() {
    let agent = federating_agent();
    let (status, head, body) = agent.get(&format!("/federate?match[]={NODE_LOAD}"), "");
    let text = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    // Untyped families without help, as Prometheus federates them: TYPE line, no HELP line.
    assert!(!text.contains("# HELP"), "{text}");
    for name in ["node_load1", "node_load15", "node_load5"] {
        let type_line = format!("# TYPE {name} untyped\n");
        assert!(text.contains(&type_line), "{text}");
    }
    let lines = samples(&text);
    let names: Vec<&str> = lines.iter().map(|l| l.split('{').next().unwrap()).collect();
    assert_eq!(names, ["node_load1", "node_load15", "node_load5"], "{text}");
    let now = now_ms();
    for l in &lines {
        let (series, rest) = l.split_once("} ").unwrap();
        assert!(
            series.ends_with("{instance=\"\",site=\"home\""),
            "labels: {l}"
        );
        let mut it = rest.split(' ');
        let v: f64 = it.next().unwrap().parse().unwrap();
        let ts: i64 = it.next().expect("a timestamp").parse().unwrap();
        assert!(v >= 0.0, "{l}");
        // The latest sample of a 1 s collection: recent, never from the future.
        assert!(ts <= now && ts > now - 10_000, "{l} (now {now})");
    }

    // POST form body: the same series.
    let (status, _, posted) = post_form(&agent, "/federate", &format!("match[]={NODE_LOAD}"));
    assert_eq!(status, 200, "{posted}");
    let posted_names: Vec<&str> = samples(&posted)
        .iter()
        .map(|l| l.split('{').next().unwrap())
        .collect();
    assert_eq!(posted_names, names);

    // Negotiated like /metrics: OpenMetrics calls untyped `unknown` and ends with # EOF.
    let (_, head, body) = agent.get(
        &format!("/federate?match[]={NODE_LOAD}"),
        "Accept: application/openmetrics-text;version=1.0.0\r\n",
    );
    let om = String::from_utf8(body).unwrap();
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(om.contains("# TYPE node_load1 unknown\n"), "{om}");
    assert!(om.ends_with("# EOF\n"), "{om}");

    // Gzip when asked.
    let (_, head, body) = agent.get(
        &format!("/federate?match[]={NODE_LOAD}"),
        "Accept-Encoding: gzip\r\n",
    );
    assert!(head.contains("Content-Encoding: gzip"), "{head}");
    let inflated = miniz_oxide::inflate::decompress_to_vec(&body[10..body.len() - 8]).unwrap();
    let text = String::from_utf8(inflated).unwrap();
    assert!(text.contains("# TYPE node_load5 untyped\n"), "{text}");
}

/// The value of the first sample of an instant-query answer.
fn first_value(json: &str) -> Option<f64> {
    let rest = json.split("\"value\":[").nth(1)?;
    let v = rest.split(",\"").nth(1)?.split('"').next()?;
    v.parse().ok()
}

#[test]
fn real_prometheus_federates_promlet_with_external_labels() {
    let agent = federating_agent();
    let extra = "    honor_labels: true\n    metrics_path: /federate\n    params:\n      \
                 'match[]': ['{__name__=~\"node_memory_MemTotal_bytes|node_load1\"}']\n";
    let Some(prom) = Prometheus::start(agent.port, extra) else {
        return;
    };
    // `node_memory_MemTotal_bytes{site="home"}`, URL-encoded.
    let q = "node_memory_MemTotal_bytes%7Bsite%3D%22home%22%7D";
    prom.wait_for("up", "1");
    let targets = prom.get("/api/v1/targets");
    assert!(targets.contains("\"lastError\":\"\""), "{targets}");
    let mut theirs = None;
    for _ in 0..120 {
        theirs = first_value(&prom.query(q));
        if theirs.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let theirs = theirs.unwrap_or_else(|| panic!("never arrived: {}", prom.query(q)));
    let (status, _, ours) = agent.get("/api/v1/query?query=node_memory_MemTotal_bytes", "");
    let ours = String::from_utf8(ours).unwrap();
    assert_eq!(status, 200, "{ours}");
    assert_eq!(first_value(&ours), Some(theirs), "{ours}");
    assert!(theirs > 0.0);
    // The series carries the external label and the job Prometheus adds; it has no instance
    // (federation sends instance="" so honor_labels keeps the target's address off).
    let series = prom.query(q);
    assert!(series.contains("\"site\":\"home\""), "{series}");
    assert!(series.contains("\"job\":\"promlet\""), "{series}");
    assert!(!series.contains("\"instance\""), "{series}");
}
