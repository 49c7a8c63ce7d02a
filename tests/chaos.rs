//! Chaos tests: the real agent (or its real parts) under abuse a device in the field meets.
//! Each test prints one `chaos:` line saying what it held and what it lost (goal: nothing) and
//! asserts it. Kept short for CI (≈ 1 min together); the SIGKILL loop of the whole agent is in
//! tsdb_crash.rs, disk-full runs in tsdb_crash.rs and tsdb_faults.rs.
//!
//! Not here yet: "remote-write receiver unreachable for an hour of simulated time" — see
//! [`remote_write_receiver_unreachable_for_an_hour_hook`].

use crate::common::{free_port, http_get, promlet_bin, stack_bin, wait_for_port, ChildGuard};
use promlet::model::Labels;
use promlet::notify::notifier::Notifier;
use promlet::rules::OutgoingAlert;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// (VmRSS, VmHWM) of `pid` in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Time for one GET on a fresh connection, or None if it failed or answered non-200.
fn timed_get(port: u16, path: &str, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    buf.starts_with(b"HTTP/1.1 200").then(|| t.elapsed())
}

fn start_promlet(dir: &Path, config: &str, extra: &[&str]) -> (ChildGuard, u16) {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("promlet.yml");
    std::fs::write(&cfg, config).unwrap();
    let port = free_port();
    let child = ChildGuard::spawn(
        Command::new(promlet_bin())
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("promlet.log")).unwrap()),
    );
    assert!(wait_for_port(port), "promlet did not listen");
    (child, port)
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("promlet-chaos-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Raises this process's open-file limit to its hard limit (the flood needs > 1,000 sockets).
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    lim.rlim_cur
}

/// 1,000 slow-loris clients (each sends a header byte a second and reconnects when dropped)
/// against the real agent for 15 s: /-/healthy and /metrics must keep answering within 2 s
/// and the agent's peak RSS must stay under 48 MiB.
#[test]
fn chaos_thousand_slow_connections() {
    const CLIENTS: usize = 1000;
    const FLOOD: Duration = Duration::from_secs(15);
    const BOUND: Duration = Duration::from_secs(2);
    assert!(
        raise_nofile() > CLIENTS as u64 + 100,
        "open-file limit too low"
    );
    let dir = temp_dir("slowloris");
    let (agent, port) = start_promlet(&dir, "global:\n  scrape_interval: 5s\n", &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let reconnects = Arc::new(AtomicUsize::new(0));
    let flood = {
        let (stop, reconnects) = (stop.clone(), reconnects.clone());
        std::thread::spawn(move || {
            let open = |n: &AtomicUsize| {
                n.fetch_add(1, Ordering::Relaxed);
                let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
                s.set_nonblocking(true).ok()?;
                let mut s2 = &s;
                s2.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    .ok()?;
                Some(s)
            };
            let mut conns: Vec<Option<TcpStream>> =
                (0..CLIENTS).map(|_| open(&reconnects)).collect();
            while !stop.load(Ordering::Relaxed) {
                for c in conns.iter_mut() {
                    let alive = c.as_mut().is_some_and(|s| s.write(b"a").is_ok());
                    if !alive {
                        *c = open(&reconnects);
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            conns.len()
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let start = Instant::now();
    let (mut checks, mut answered, mut worst) = (0, 0, Duration::ZERO);
    let mut peak_rss = 0;
    while start.elapsed() < FLOOD {
        for path in ["/-/healthy", "/metrics"] {
            checks += 1;
            if let Some(d) = timed_get(port, path, BOUND) {
                answered += 1;
                worst = worst.max(d);
            }
        }
        peak_rss = peak_rss.max(rss_kib(agent.pid()).0);
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::Relaxed);
    let held = flood.join().unwrap();
    let (_, hwm) = rss_kib(agent.pid());
    let (_, _, metrics) = http_get(port, "/metrics", "");
    let metrics = String::from_utf8_lossy(&metrics);
    let evicted = metrics
        .lines()
        .find(|l| l.starts_with("promlet_http_connections_evicted_total"))
        .unwrap_or("(no eviction metric)")
        .to_string();
    println!(
        "chaos: slowloris: {held} slow clients ({} connects) for {}s; held {answered}/{checks} \
         health+metrics requests (worst {worst:?}), lost {}; peak RSS {} KiB (VmHWM {hwm} KiB); {evicted}",
        reconnects.load(Ordering::Relaxed),
        FLOOD.as_secs(),
        checks - answered,
        peak_rss,
    );
    assert_eq!(
        answered, checks,
        "requests failed or exceeded {BOUND:?} under the flood"
    );
    assert!(hwm < 48 * 1024, "peak RSS {hwm} KiB over 48 MiB");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Serves `body` as a text exposition to every GET (one thread per connection, closes after).
fn exposition_server(body: Arc<Vec<u8>>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let body = body.clone();
            std::thread::spawn(move || {
                let mut s = s;
                let mut head = Vec::new();
                let mut b = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&b[..n]),
                    }
                }
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(&body);
            });
        }
    });
    port
}

fn query_value(port: u16, expr: &str) -> Option<f64> {
    let q: String = expr
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (status, _, body) = http_get(port, &format!("/api/v1/query?query={q}"), "");
    assert_eq!(status, 200);
    let body = String::from_utf8(body).unwrap();
    // {"status":"success","data":{"resultType":"vector","result":[{"metric":{..},"value":[t,"v"]}]}}
    let v = body.split("\"value\":[").nth(1)?;
    v.split('"').nth(1)?.parse().ok()
}

/// A scrape target exposing 1,000,000 series (~27 MB) scraped by two jobs: one with the
/// default body limit (16 MiB), one with `sample_limit: 10000`. Both scrapes must fail cleanly
/// (up 0), the agent's peak RSS must stay within its budget (TSDB retention.size + the body
/// limit + 24 MiB of baseline) and /-/healthy must answer within 1 s throughout.
#[test]
fn chaos_scrape_target_with_a_million_series() {
    const SERIES: usize = 1_000_000;
    let mut body = Vec::with_capacity(SERIES * 28);
    body.extend_from_slice(b"# TYPE chaos_series gauge\n");
    for i in 0..SERIES {
        let _ = writeln!(body, "chaos_series{{i=\"{i:07}\"}} {i}");
    }
    let size = body.len();
    let target = exposition_server(Arc::new(body));
    let dir = temp_dir("million");
    let config = format!(
        "global:\n  scrape_interval: 3s\n  scrape_timeout: 3s\nscrape_configs:\n\
         - job_name: default_limits\n  static_configs:\n  - targets: ['127.0.0.1:{target}']\n\
         - job_name: sample_limit\n  sample_limit: 10000\n  body_size_limit: 32MB\n  \
         static_configs:\n  - targets: ['127.0.0.1:{target}']\n"
    );
    let retention_mib = 8;
    let (agent, port) = start_promlet(
        &dir,
        &config,
        &[&format!("--storage.tsdb.retention.size={retention_mib}MB")],
    );
    let start = Instant::now();
    let (mut checks, mut worst) = (0, Duration::ZERO);
    while start.elapsed() < Duration::from_secs(12) {
        checks += 1;
        let d = timed_get(port, "/-/healthy", Duration::from_secs(1));
        assert!(
            d.is_some(),
            "/-/healthy failed or took over 1 s while scraping"
        );
        worst = worst.max(d.unwrap());
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, hwm) = rss_kib(agent.pid());
    let up_default = query_value(port, "up{job=\"default_limits\"}");
    let up_limited = query_value(port, "up{job=\"sample_limit\"}");
    let stored = query_value(port, "count(chaos_series)").unwrap_or(0.0);
    let budget_kib = (retention_mib + 32 + 24) * 1024;
    println!(
        "chaos: 1,000,000-series target ({size} bytes): up {up_default:?} (default limits), \
         {up_limited:?} (sample_limit); {stored} of its series stored; held {checks}/{checks} \
         health checks (worst {worst:?}); peak RSS {hwm} KiB of a {budget_kib} KiB budget"
    );
    assert_eq!(
        up_default,
        Some(0.0),
        "the 16 MiB body limit did not stop the scrape"
    );
    assert_eq!(
        up_limited,
        Some(0.0),
        "sample_limit did not fail the scrape"
    );
    assert_eq!(stored, 0.0, "a failed scrape must store nothing");
    assert!(
        hwm < budget_kib,
        "peak RSS {hwm} KiB over budget {budget_kib} KiB"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn alert(name: &str, wall_now: i64) -> OutgoingAlert {
    OutgoingAlert {
        labels: Labels::from_pairs([("alertname", name), ("severity", "page")]),
        annotations: Labels::from_pairs([("summary", "chaos")]),
        starts_at: wall_now - 60_000,
        ends_at: wall_now + 3_600_000,
        generator_url: "http://promlet.local/graph".into(),
    }
}

/// Alertmanager unreachable for an hour of simulated time: the notifier runs on a simulated
/// monotonic clock (1 s per step), 40 alerts fire and are resent every minute as a rule group
/// would, 12 more fire during the hour. The queue must stay bounded by the distinct alerts, and
/// when a real Alertmanager comes up every alert must arrive.
#[test]
fn chaos_alertmanager_unreachable_for_a_simulated_hour() {
    let Some(bin) = stack_bin("prometheus-alertmanager") else {
        return;
    };
    let dir = temp_dir("am-hour");
    let am_port = free_port();
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut n = Notifier::new(
        &crate::notify::alerting(am_port),
        Labels::new(),
        Some(&dir.join("queue")),
        1000,
        Default::default(),
    )
    .unwrap();
    let mut names: Vec<String> = (0..40).map(|i| format!("Chaos{i:02}")).collect();
    let mut now = 0i64;
    let mut max_queue = 0;
    let mut next_poll = 0i64;
    let mut polls = 0;
    while now < 3_600_000 {
        if now % 300_000 == 0 && now > 0 {
            names.push(format!("ChaosLate{:02}", now / 300_000));
        }
        if now % 60_000 == 0 {
            let batch: Vec<_> = names.iter().map(|a| alert(a, wall)).collect();
            n.send(&batch);
        }
        if now >= next_poll {
            next_poll = n.poll(now).unwrap_or(now + 1000);
            polls += 1;
            // Let the sender's connection attempt finish (refused at once on loopback).
            std::thread::sleep(Duration::from_millis(1));
        }
        max_queue = max_queue.max(n.metrics().queue_length);
        now += 1000;
    }
    let during = n.metrics();
    assert_eq!(
        during.sent, 0,
        "nothing can have been sent with no Alertmanager"
    );
    assert!(during.errors > 0, "{during:?}");
    let Some(_am) = crate::notify::start_alertmanager(&bin, am_port, &dir) else {
        return;
    };
    // Backoff is capped at a minute of notifier time: advance simulated time until drained.
    let real = Instant::now();
    while n.metrics().queue_length > 0 && real.elapsed() < Duration::from_secs(30) {
        n.poll(now);
        now += 1000;
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = n.metrics();
    let json = crate::notify::am_alerts(am_port);
    let lost: Vec<&String> = names
        .iter()
        .filter(|a| crate::notify::alert_object(&json, a).is_none())
        .collect();
    println!(
        "chaos: Alertmanager down for 1 h (simulated, {polls} polls): {} alerts, queue peak \
         {max_queue}; held {} delivered after it returned, lost {}; {after:?}",
        names.len(),
        names.len() - lost.len(),
        lost.len()
    );
    assert!(
        max_queue <= names.len(),
        "queue grew to {max_queue} > {} distinct alerts",
        names.len()
    );
    assert!(lost.is_empty(), "never delivered: {lost:?}");
    assert_eq!(after.queue_length, 0);
    assert_eq!(after.dropped, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// TODO(remote_write): the "remote-write receiver unreachable for an hour of simulated time"
/// chaos case. remote_write is being built on another branch; when it lands, turn this into a
/// `#[test]`: start a real Prometheus with `--web.enable-remote-write-receiver` on a port that
/// is closed for an hour of simulated time (the remote-write queue should take `now` the way
/// `Notifier::poll` does, as in [`chaos_alertmanager_unreachable_for_a_simulated_hour`]), then
/// open it and check that every sample arrives and that the queue stayed within its bound.
#[allow(dead_code)]
fn remote_write_receiver_unreachable_for_an_hour_hook() {
    unimplemented!("remote_write has not landed yet")
}
