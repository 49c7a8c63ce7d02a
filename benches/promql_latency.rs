//! Query latency side by side with a real Prometheus 3.5 on the same data: 1,000 series × 24 h
//! at a 60 s interval, imported into Prometheus with `promtool tsdb create-blocks-from
//! openmetrics` and appended to our ring-buffer TSDB (in memory) behind our API handlers on a
//! minimal HTTP stand-in. Both are asked over HTTP, one fresh connection per request, queries
//! interleaved; p50 of each is printed with the ratio.
//!
//! Run: `PROMLET_STACK_DIR=/work/stack cargo bench --bench promql_latency`.

#[path = "../tests/common/mod.rs"]
mod common;

use promlet::http::api_v1;
use promlet::model::Labels;
use promlet::promql::EngineOpts;
use promlet::tsdb::Appender;
use std::io::{BufRead, BufReader, Write};
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "support/promql_workload.rs"]
mod workload;

use workload::END;

fn serve(data: Vec<(Labels, Vec<(i64, f64)>)>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        // promlet's ring-buffer TSDB, in memory, on the serving thread like the agent's.
        let mut store = promlet::tsdb::Store::new(promlet::tsdb::Options::default());
        for (l, pts) in &data {
            for (t, v) in pts {
                store.append(l, *t, *v).unwrap();
            }
        }
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
            }
            let target = line.split(' ').nth(1).unwrap_or("/");
            let (path, qs) = target.split_once('?').unwrap_or((target, ""));
            let params = promlet::http::parse_urlencoded(qs).unwrap_or_default();
            let opts = EngineOpts::default();
            let resp = match path {
                "/api/v1/query" => api_v1::query(&params, &store, END, &opts),
                "/api/v1/query_range" => api_v1::query_range(&params, &store, END, &opts),
                _ => api_v1::ApiResponse {
                    status: 404,
                    body: vec![],
                },
            };
            // As src/http/server.rs answers: no Nagle delay, the head in one write, then the
            // body (writing the head piece by piece cost the stand-in several syscalls).
            let _ = conn.set_nodelay(true);
            let mut head = Vec::new();
            let _ = write!(
                head,
                "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                resp.status,
                resp.body.len()
            );
            let _ = conn.write_all(&head);
            let _ = conn.write_all(&resp.body);
        }
    });
    port
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (c as char).to_string(),
            _ => format!("%{c:02X}"),
        })
        .collect()
}

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let (Some(prom), Some(promtool)) = (
        common::stack_bin("prometheus"),
        common::stack_bin("promtool"),
    ) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("promlet-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let data = workload::series();
    let mut om = String::new();
    for (l, pts) in &data {
        let labels = format!(
            "job=\"{}\",instance=\"{}\"",
            l.get("job").unwrap_or(""),
            l.get("instance").unwrap_or("")
        );
        for (t, v) in pts {
            om.push_str(&format!(
                "bench_requests_total{{{labels}}} {v} {}\n",
                t / 1000
            ));
        }
    }
    om.push_str("# EOF\n");
    std::fs::write(dir.join("data.om"), om).unwrap();
    let t = Instant::now();
    let out = Command::new(&promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(dir.join("data.om"))
        .arg(dir.join("data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("imported into Prometheus in {:?}", t.elapsed());
    std::fs::write(
        dir.join("prometheus.yml"),
        "global:\n  scrape_interval: 1h\n",
    )
    .unwrap();
    let port = common::free_port();
    let _guard = common::ChildGuard::spawn(
        Command::new(&prom)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg("--storage.tsdb.retention.time=100y")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    assert!(common::wait_for_port(port));
    while common::http_get(port, "/-/ready", "").0 != 200 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let ours = serve(data.clone());
    let path = |case: &workload::Case| {
        let api = if case.range_step.is_some() {
            "query_range"
        } else {
            "query"
        };
        let params: Vec<String> = case
            .params()
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        format!("/api/v1/{api}?{}", params.join("&"))
    };
    let runs = 21;
    println!(
        "{:<24} {:>12} {:>12} {:>7}",
        "query (1000 series x 24h)", "prometheus", "promlet", "ratio"
    );
    for case in workload::CASES {
        let (name, path) = (case.title, path(case));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let t = Instant::now();
            let (st, _, _) = common::http_get(port, &path, "");
            a.push(t.elapsed());
            assert_eq!(st, 200);
            let t = Instant::now();
            let (st, _, _) = common::http_get(ours, &path, "");
            b.push(t.elapsed());
            assert_eq!(st, 200);
        }
        let (pa, pb) = (p50(a), p50(b));
        println!(
            "{name:<24} {:>10.2}ms {:>10.2}ms {:>7.2}",
            pa.as_secs_f64() * 1e3,
            pb.as_secs_f64() * 1e3,
            pb.as_secs_f64() / pa.as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
