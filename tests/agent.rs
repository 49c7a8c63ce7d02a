//! The real `promlet` binary: /metrics (checked by the real promtool), content negotiation,
//! gzip, lifecycle endpoints, reload by SIGHUP and HTTP with good and bad configs, clean exit
//! on SIGTERM/SIGINT, and bad input (garbage, a 1 MiB header, 1,000 slow connections) with
//! the thread count and RSS read from /proc/<pid>/status.

use crate::common::{self, Agent, ChildGuard, Prometheus, TempDir};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `promtool check metrics` on `body`; (exit code, stderr).
fn promtool_check(body: &[u8]) -> Option<(i32, String)> {
    let promtool = common::stack_bin("promtool")?;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.code().unwrap_or(-1), text))
}

fn write(p: &Path, text: &str) {
    std::fs::write(p, text).unwrap();
}

/// /metrics in text 0.0.4 passes `promtool check metrics` without errors (exit 0, or 3 for
/// lint warnings only) and carries the self-metrics. The OpenMetrics output is checked by
/// parts that read OpenMetrics: `promtool check metrics` parses only text 0.0.4 (it rejects
/// OpenMetrics' `unknown` type), so our strict OpenMetrics parser reads it, and a real
/// Prometheus 3.5 limited to `OpenMetricsText1.0.0` scrapes it with `up` 1, no scrape error,
/// and `scrape_samples_scraped` equal to the sample count our parser found.
#[test]
fn metrics_pass_promtool_in_text_and_openmetrics() {
    let agent = Agent::start(&[]);
    let (status, head, body) = agent.get("/metrics", "");
    assert_eq!(status, 200);
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    let text = String::from_utf8(body.clone()).unwrap();
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_start_time_seconds",
        "process_open_fds",
        "process_max_fds",
        "promlet_threads",
        "promlet_clock_steps_total",
        "promlet_config_last_reload_successful",
    ] {
        assert!(
            text.contains(&format!("\n{name} ")),
            "{name} missing:\n{text}"
        );
    }
    assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"));
    assert!(text.contains("promlet_build_info{revision=\""));
    assert_eq!(agent.metric("promlet_threads"), Some(1.0));

    let om = openmetrics_body(&agent);
    let om_text = String::from_utf8(om.clone()).unwrap();
    assert!(om_text.ends_with("# EOF\n"));
    assert!(
        om_text.contains("# TYPE promlet_clock_steps counter\n"),
        "{om_text}"
    );
    assert!(
        om_text.contains("\npromlet_clock_steps_total "),
        "{om_text}"
    );
    let om_samples = openmetrics_samples(&om);
    assert!(om_samples > 100, "only {om_samples} samples");

    let Some((code, out)) = promtool_check(&body) else {
        return;
    };
    assert!(
        code == 0 || code == 3,
        "promtool on text: exit {code}\n{out}"
    );

    let Some(prom) =
        Prometheus::start(agent.port, "    scrape_protocols: [OpenMetricsText1.0.0]\n")
    else {
        return;
    };
    prom.wait_for("up", "1");
    let targets = prom.get("/api/v1/targets");
    assert!(targets.contains("\"lastError\":\"\""), "{targets}");
    // The exposition can change between two requests (a mount or an interface comes or
    // goes), so compare Prometheus's count with ours from a fetch close to one of its scrapes.
    let t0 = Instant::now();
    let mut last = (0, String::new());
    while t0.elapsed() < Duration::from_secs(20) {
        let ours = openmetrics_samples(&openmetrics_body(&agent));
        let theirs = prom.query("scrape_samples_scraped");
        if theirs.contains(&format!(",\"{ours}\"]")) {
            return;
        }
        last = (ours, theirs);
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!(
        "scrape_samples_scraped never matched our parser's {} samples: {}",
        last.0, last.1
    );
}

/// /metrics as OpenMetrics (the Accept header Prometheus sends), checked for the content type.
fn openmetrics_body(agent: &Agent) -> Vec<u8> {
    let (status, head, om) = agent.get(
        "/metrics",
        "Accept: application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4\r\n",
    );
    assert_eq!(status, 200);
    assert!(
        head.contains("application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    om
}

/// Samples in an OpenMetrics body, read by our strict OpenMetrics parser (which fails on
/// anything the spec forbids).
fn openmetrics_samples(body: &[u8]) -> usize {
    use promlet::scrape::parse::{parse, Options};
    let mut set = promlet::expo::MetricSet::new();
    match parse(body, &Options::openmetrics(), &mut set) {
        Ok(stats) => stats.samples,
        Err(e) => panic!(
            "OpenMetrics body rejected: {e}\n{}",
            String::from_utf8_lossy(body)
        ),
    }
}

/// With `Accept-Encoding: gzip` the body is a gzip member that inflates to the exposition.
#[test]
fn metrics_are_gzipped_when_asked() {
    let agent = Agent::start(&[]);
    let (status, head, body) = agent.get("/metrics", "Accept-Encoding: gzip\r\n");
    assert_eq!(status, 200);
    assert!(head.contains("Content-Encoding: gzip"), "{head}");
    assert_eq!(&body[..2], &[0x1f, 0x8b]);
    let inflated = miniz_oxide::inflate::decompress_to_vec(&body[10..body.len() - 8]).unwrap();
    let text = String::from_utf8(inflated).unwrap();
    assert!(text.contains("\npromlet_threads 1\n"), "{text}");
    let (_, head, _) = agent.get("/metrics", "");
    assert!(!head.contains("Content-Encoding"), "{head}");
}

#[test]
fn healthy_and_ready_answer_200() {
    let agent = Agent::start(&[]);
    let (s, _, b) = agent.get("/-/healthy", "");
    assert_eq!((s, b.as_slice()), (200, &b"promlet is Healthy.\n"[..]));
    let (s, _, b) = agent.get("/-/ready", "");
    assert_eq!((s, b.as_slice()), (200, &b"promlet is Ready.\n"[..]));
}

/// Without --web.enable-lifecycle, reload and quit are refused with 403, as in Prometheus;
/// GET on them is 405.
#[test]
fn lifecycle_endpoints_are_off_by_default() {
    let agent = Agent::start(&[]);
    assert_eq!(agent.request("POST", "/-/reload").0, 403);
    assert_eq!(agent.request("PUT", "/-/quit").0, 403);
    assert_eq!(agent.request("GET", "/-/reload").0, 405);
    assert_eq!(agent.get("/-/healthy", "").0, 200, "still running");
}

/// POST /-/reload and SIGHUP reload the config; a bad config is refused, the running one kept
/// (the agent keeps serving), and promlet_config_last_reload_successful says so.
#[test]
fn reload_by_http_and_sighup_with_good_and_bad_config() {
    let dir = TempDir::new("reload");
    let cfg = dir.0.join("promlet.yml");
    write(&cfg, "global:\n  scrape_interval: 15s\n");
    let arg = format!("--config.file={}", cfg.display());
    let agent = Agent::start_in(dir, &[&arg, "--web.enable-lifecycle"]);

    write(&cfg, "global:\n  scrape_interval: 30s\n");
    let (status, _) = agent.request("POST", "/-/reload");
    assert_eq!(status, 200);
    assert_eq!(
        agent.metric("promlet_config_last_reload_successful"),
        Some(1.0)
    );

    write(&cfg, "global:\n  scrape_intervall: 30s\n");
    let (status, body) = agent.request("POST", "/-/reload");
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("promlet.yml:2:3: unknown key \"scrape_intervall\""),
        "{body}"
    );
    assert_eq!(
        agent.metric("promlet_config_last_reload_successful"),
        Some(0.0)
    );
    assert!(agent.stderr().contains("keeping the running one"));

    write(&cfg, "global:\n  scrape_interval: 1m\n");
    agent.signal("HUP");
    agent.eventually("SIGHUP reload succeeds", |a| {
        a.metric("promlet_config_last_reload_successful") == Some(1.0)
    });

    write(&cfg, "global: [\n");
    agent.signal("HUP");
    agent.eventually("SIGHUP reload fails", |a| {
        a.metric("promlet_config_last_reload_successful") == Some(0.0)
    });
    assert_eq!(agent.get("/-/healthy", "").0, 200);
    assert_eq!(agent.metric("promlet_threads"), Some(1.0));
}

#[test]
fn sigterm_and_sigint_exit_cleanly_with_0() {
    for sig in ["TERM", "INT"] {
        let mut agent = Agent::start(&[]);
        agent.signal(sig);
        assert_eq!(agent.wait_exit(Duration::from_secs(5)), Some(0), "SIG{sig}");
        assert!(agent.stderr().contains("exiting gracefully"));
    }
}

#[test]
fn quit_endpoint_exits_with_0_when_lifecycle_enabled() {
    let mut agent = Agent::start(&["--web.enable-lifecycle"]);
    let (status, body) = agent.request("POST", "/-/quit");
    assert_eq!(status, 200, "{body}");
    assert_eq!(agent.wait_exit(Duration::from_secs(5)), Some(0));
}

#[test]
fn json_log_format_writes_json_lines() {
    let mut agent = Agent::start(&["--log.format=json", "--log.level=debug"]);
    agent.signal("TERM");
    assert_eq!(agent.wait_exit(Duration::from_secs(5)), Some(0));
    let err = agent.stderr();
    assert!(!err.is_empty());
    for line in err.lines() {
        assert!(
            line.starts_with("{\"time\":\"") && line.ends_with('}') && line.contains("\"level\":"),
            "{line}"
        );
    }
}

/// A config error at start-up is fatal with the file position (exit 1); so is an unusable
/// storage path.
#[test]
fn bad_config_or_storage_path_fails_start_with_exit_1() {
    let dir = TempDir::new("badstart");
    let cfg = dir.0.join("bad.yml");
    write(
        &cfg,
        "global:\n  scrape_interval: 15s\n  evaluation_intervall: 1m\n",
    );
    let out = Command::new(common::promlet_bin())
        .arg(format!("--config.file={}", cfg.display()))
        .arg("--web.listen-address=127.0.0.1:0")
        .arg(format!("--storage.tsdb.path={}", dir.0.join("d").display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yml:3:3: unknown key"), "{err}");

    let file = dir.0.join("file");
    write(&file, "");
    let out = Command::new(common::promlet_bin())
        .arg("--web.listen-address=127.0.0.1:0")
        .arg(format!(
            "--storage.tsdb.path={}",
            file.join("sub").display()
        ))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot create storage directory"));
}

/// Garbage gets 400 and a close; a 1 MiB header gets 431 (or a close); the agent keeps
/// serving /metrics afterwards.
#[test]
fn garbage_and_header_bomb_are_refused_and_service_continues() {
    let agent = Agent::start(&[]);
    let mut s = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"\x00\x01\x02 not http at all\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");

    let mut s = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = b"GET /metrics HTTP/1.1\r\nX-Bomb: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 1 << 20));
    req.extend_from_slice(b"\r\n\r\n");
    let _ = s.write_all(&req);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.is_empty() || out.starts_with("HTTP/1.1 431 "),
        "expected 431 or a close, got {out}"
    );
    assert!(agent.metrics().contains("promlet_threads 1"));
    assert!(
        agent.status_field("VmHWM") < 32 * 1024,
        "peak RSS above 32 MiB"
    );
}

/// 1,000 slow connections held open: /metrics keeps being served to others, the thread count
/// stays 1 and RSS stays bounded.
#[test]
fn thousand_slow_connections_do_not_starve_metrics() {
    let agent = Agent::start(&[]);
    // The baseline after one /metrics: what the first scrape keeps (encode caches, buffers,
    // ~0.4 MiB in a debug build) is not the connections' doing.
    assert!(agent.metrics().contains("promlet_threads 1"));
    let rss_before = agent.status_field("VmRSS");
    let mut slow = Vec::new();
    for i in 0..1000 {
        let mut s = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
        // Half send a partial request line, half send nothing at all.
        if i % 2 == 0 {
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ");
        }
        slow.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        let t0 = Instant::now();
        let body = agent.metrics();
        assert!(body.contains("promlet_threads 1"), "{body}");
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "slow /metrics: {:?}",
            t0.elapsed()
        );
    }
    assert_eq!(agent.status_field("Threads"), 1);
    let rss = agent.status_field("VmRSS");
    let open = agent.metric("promlet_http_connections").unwrap();
    assert!(open <= 512.0, "connection cap exceeded: {open}");
    // Connections beyond the listen backlog may still be in SYN retry: wait for them.
    agent.eventually("slow connections beyond the cap are evicted", |a| {
        a.metric("promlet_http_connections_evicted_total").unwrap() >= 488.0
    });
    eprintln!("RSS {rss_before} kB idle, {rss} kB with 1,000 slow connections, {open} open");
    // Bounded by the connection cap: a few KiB per open connection, whatever the baseline
    // (a `tls` build starts ~2 MiB higher).
    assert!(
        rss.saturating_sub(rss_before) < 4 * 1024,
        "RSS grew from {rss_before} to {rss} kB with 1,000 slow connections"
    );
    assert!(rss < 24 * 1024, "RSS {rss} kB with 1,000 slow connections");
    drop(slow);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(agent.get("/-/healthy", "").0, 200);
}

/// Under a low open-files limit the connection cap shrinks to fit, so 400 idle connections
/// are evicted instead of exhausting fds (EMFILE would lock everyone out).
#[test]
fn low_fd_limit_shrinks_the_cap_instead_of_running_out() {
    let dir = TempDir::new("fdlimit");
    let port = common::free_port();
    let stderr = std::fs::File::create(dir.0.join("stderr.log")).unwrap();
    let script = format!(
        "ulimit -n 512 && exec {} --web.listen-address=127.0.0.1:{port} --storage.tsdb.path={}",
        common::promlet_bin().display(),
        dir.0.join("data").display()
    );
    let _child = ChildGuard::spawn(Command::new("sh").args(["-c", &script]).stderr(stderr));
    assert!(common::wait_for_port(port));
    let idle: Vec<TcpStream> = (0..400)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (status, _, body) = common::http_get(port, "/metrics", "");
    assert_eq!(status, 200);
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains("\nprocess_max_fds 512\n"), "{body}");
    assert!(body.contains("\npromlet_threads 1\n"));
    let log = std::fs::read_to_string(dir.0.join("stderr.log")).unwrap();
    assert!(log.contains("allows only 256 connections"), "{log}");
    drop(idle);
}

/// The real Prometheus 3 scrapes promlet (it negotiates OpenMetrics and gzip) and stores
/// what it gets: `up` is 1 and promlet's self-metrics arrive with their values.
#[test]
fn real_prometheus_scrapes_promlet() {
    let agent = Agent::start(&[]);
    let Some(prom) = Prometheus::start(agent.port, "") else {
        return;
    };
    prom.wait_for("up", "1");
    let targets = prom.get("/api/v1/targets");
    assert!(targets.contains("\"lastError\":\"\""), "{targets}");
    let threads = prom.query("promlet_threads");
    assert!(threads.contains(",\"1\"]"), "{threads}");
    // OpenMetrics counters arrive under their _total name.
    let steps = prom.query("promlet_clock_steps_total");
    assert!(steps.contains(",\"0\"]"), "{steps}");
}
