//! Chaos tests: the real agent (or its real parts) under abuse a device in the field meets.
//! Run: `cargo test --test tests chaos -- --nocapture` to see the `chaos:` lines.
//! Each test prints one `chaos:` line saying what it held and what it lost (goal: nothing) and
//! asserts it. Kept short for CI (≈ 1 min together); the SIGKILL loop of the whole agent is in
//! tsdb_crash.rs, disk-full runs in tsdb_crash.rs and tsdb_faults.rs.
//!

use crate::common::{
    free_port, http_get, promlet_bin, stack_bin, wait_for_port, ChildGuard, TempDir,
};
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
    let dir = TempDir::new("slowloris");
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
/// default body limit (16 MiB), one with `sample_limit: 10000`; and a target of 550,000 tiny
/// series (under the body limit) with no sample_limit, which the store's max-series caps.
/// Every scrape must fail cleanly (up 0), the agent's peak RSS must stay within its budget
/// (TSDB retention.size + the jobs' body limits + 24 MiB of baseline) and /-/healthy must
/// answer within 2 s throughout.
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
    // 550,000 tiny series fit under the default 16 MiB body limit: before the store's
    // max-series capped the parse, this one took 426 MiB.
    let mut tiny = Vec::new();
    for i in 0..550_000 {
        let _ = writeln!(tiny, "t{{i=\"{i}\"}} 1");
    }
    let tiny_size = tiny.len();
    let tiny_target = exposition_server(Arc::new(tiny));
    let dir = TempDir::new("million");
    let config = format!(
        "global:\n  scrape_interval: 3s\n  scrape_timeout: 3s\nscrape_configs:\n\
         - job_name: default_limits\n  static_configs:\n  - targets: ['127.0.0.1:{target}']\n\
         - job_name: sample_limit\n  sample_limit: 10000\n  body_size_limit: 32MB\n  \
         static_configs:\n  - targets: ['127.0.0.1:{target}']\n\
         - job_name: tiny_series\n  static_configs:\n  - targets: ['127.0.0.1:{tiny_target}']\n"
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
        let d = timed_get(port, "/-/healthy", Duration::from_secs(2));
        assert!(
            d.is_some(),
            "/-/healthy failed or took over 2 s while scraping"
        );
        worst = worst.max(d.unwrap());
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, hwm) = rss_kib(agent.pid());
    let up_default = query_value(port, "up{job=\"default_limits\"}");
    let up_limited = query_value(port, "up{job=\"sample_limit\"}");
    let up_tiny = query_value(port, "up{job=\"tiny_series\"}");
    let stored = query_value(port, "count(chaos_series)").unwrap_or(0.0)
        + query_value(port, "count(t)").unwrap_or(0.0);
    // Each job may hold its body limit while it scrapes (32 MiB, and 16 MiB for tiny_series).
    let budget_kib = (retention_mib + 32 + 16 + 24) * 1024;
    println!(
        "chaos: 1,000,000-series target ({size} bytes): up {up_default:?} (default limits), \
         {up_limited:?} (sample_limit); 550,000 tiny series ({tiny_size} bytes): up \
         {up_tiny:?}; {stored} of their series stored; held {checks}/{checks} \
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
    assert_eq!(
        up_tiny,
        Some(0.0),
        "the store's max-series did not cap the tiny-series scrape"
    );
    assert_eq!(stored, 0.0, "a failed scrape must store nothing");
    assert!(
        hwm < budget_kib,
        "peak RSS {hwm} KiB over budget {budget_kib} KiB"
    );
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
    let dir = TempDir::new("am-hour");
    // Started to reserve its port and stopped at once: the hour runs with it down.
    let Some(mut am) = crate::notify::Alertmanager::start(&dir, &[]) else {
        return;
    };
    am.stop();
    let am_port = am.port;
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
    am.restart();
    // Backoff is capped at a minute of notifier time: advance simulated time until drained.
    let real = Instant::now();
    while n.metrics().queue_length > 0 && real.elapsed() < Duration::from_secs(30) {
        n.poll(now);
        now += 1000;
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = n.metrics();
    let json = am.alerts();
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
}

/// The remote-write receiver is unreachable while an hour of samples piles up in the ring
/// (timestamps spanning the last hour: the hour is simulated, the wait is seconds): the queue
/// keeps retrying with backoff, holds nothing of its own (the ring is its buffer, so its memory
/// is the store's budget), and once a real Prometheus 3.5 receiver comes up, every sample of
/// the hour arrives.
#[test]
fn chaos_remote_write_receiver_unreachable_for_a_simulated_hour() {
    use promlet::remote::queue::{run, Queue};
    use promlet::tsdb::{Appender, SharedStore, Store};
    let Some(prom_bin) = stack_bin("prometheus") else {
        return;
    };
    let port = free_port();
    let cfg = promlet::config::Config::parse(
        &format!(
            "remote_write:\n  - url: http://127.0.0.1:{port}/api/v1/write\n    queue_config:\n      \
             batch_send_deadline: 200ms\n      min_backoff: 50ms\n      max_backoff: 400ms\n      \
             max_samples_per_send: 2000\n      max_samples_per_second: 0\n"
        ),
        "chaos.yml",
    )
    .unwrap()
    .remote_write
    .remove(0);
    let (series, step_ms) = (100usize, 15_000i64);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let now = now - now % step_ms;
    let t0 = now - 3_600_000;
    let store = SharedStore::new(Store::new(Default::default()));
    let mut held = 0u64;
    {
        let mut st = store.0.borrow_mut();
        for i in 0..=240 {
            let t = t0 + i * step_ms;
            for s in 0..series {
                let l = Labels::from_pairs([
                    ("__name__", "chaos_rw_samples_total"),
                    ("series", s.to_string().as_str()),
                ]);
                st.append(&l, t, (i * (s as i64 + 1)) as f64).unwrap();
                held += 1;
            }
        }
    }
    let dir = TempDir::new("chaos-rw");
    let queue = std::rc::Rc::new(std::cell::RefCell::new(Queue::new(
        cfg,
        Vec::new(),
        Some(&dir),
        t0 - 1,
    )));
    let ex = async_executor::LocalExecutor::new();
    let _task = ex.spawn(run(queue.clone(), store.clone()));
    let run_for = |d: Duration| {
        promlet::rt::block_on(ex.run(promlet::rt::Timer::after(d)));
    };
    // The outage: nothing listens on the port.
    run_for(Duration::from_secs(3));
    let (retried, sent_down) = {
        let q = queue.borrow();
        (q.stats.retried, q.stats.samples)
    };
    assert_eq!(sent_down, 0);
    assert!(retried > 0, "the queue did not try during the outage");
    // The receiver comes back.
    let pdir = TempDir::new("chaos-rw-prom");
    std::fs::write(pdir.join("p.yml"), "global: {scrape_interval: 1m}\n").unwrap();
    let _prom = ChildGuard::spawn(
        Command::new(prom_bin)
            .arg(format!("--config.file={}", pdir.join("p.yml").display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                pdir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let start = Instant::now();
    while queue.borrow().stats.samples < held && start.elapsed() < Duration::from_secs(90) {
        run_for(Duration::from_millis(200));
    }
    let stats = {
        let q = queue.borrow();
        (q.stats.samples, q.stats.failed, q.stats.lost)
    };
    // What the receiver holds, from its own API.
    let q = format!(
        "/api/v1/query?query=sum(count_over_time(chaos_rw_samples_total%5B2h%5D))&time={}",
        now as f64 / 1000.0 + 1.0
    );
    let (status, _, body) = http_get(port, &q, "");
    let body = String::from_utf8_lossy(&body).to_string();
    let received: u64 = body
        .rsplit_once(",\"")
        .and_then(|(_, v)| v.split('"').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    println!(
        "chaos: remote_write receiver down {} s while an hour of samples ({held}) piled up, \
         retried {retried} samples meanwhile; after it came back: acknowledged {}, refused {}, \
         evicted before sending {}, the receiver holds {received}; lost {}",
        3,
        stats.0,
        stats.1,
        stats.2,
        held.saturating_sub(received)
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!((stats.0, stats.1, stats.2), (held, 0, 0));
    assert_eq!(received, held, "{body}");
}

/// A clock whose wall time the test steps; monotonic time only moves forward.
struct SteppedClock {
    mono: std::cell::Cell<Instant>,
    wall: std::cell::Cell<i64>,
}

impl promlet::model::Clock for SteppedClock {
    fn monotonic(&self) -> Instant {
        self.mono.get()
    }
    fn wall_ms(&self) -> i64 {
        self.wall.get()
    }
}

/// Samples (all series) whose timestamps fall in `[from, to)`.
fn samples_in(store: &promlet::tsdb::SharedStore, from: i64, to: i64) -> usize {
    use promlet::tsdb::Querier;
    store
        .select(&[], from, to - 1)
        .iter()
        .map(|s| s.samples.len())
        .sum()
}

/// What one clock-jump run saw.
struct ClockRun {
    /// Samples per phase: (held right after the phase, at the end, after reopening).
    phases: [(usize, usize, usize); 3],
    steps: u64,
    /// The cycle (1-based) at which the `for: 3m` alert, active from cycle 16, first fired.
    fired_at_cycle: Option<usize>,
    discarded: u64,
}

/// Runs the agent's collection cycle (real collectors, the real persistent store) and rule
/// evaluation on an injected clock: 20 cycles on true time, 20 with the wall clock stepped by
/// `jump_days`, 20 after it steps back to true time.
fn clock_jump_run(jump_days: i64) -> ClockRun {
    use promlet::agent::{build_driver, State};
    use promlet::tsdb::{Options, OsFs, SharedStore, Store};
    let dir = TempDir::new(&format!("clock{jump_days}"));
    let args = promlet::cli::Args::default();
    let cfg = promlet::config::Config::embedded();
    let driver = build_driver(&cfg, &args).unwrap();
    let mut st = State::new(args, cfg, driver);
    // Active from the 16th cycle, 5 cycles before the first step; `for: 3m` is 12 cycles.
    let rules = "groups:\n- name: clock\n  interval: 15s\n  rules:\n  - alert: Stepped\n    \
                 expr: promlet_collection_cycles_total > 15\n    for: 3m\n";
    let groups = promlet::rules::RuleFile::parse(rules, "clock.yml", false)
        .unwrap()
        .groups;
    st.rules.update(groups, Duration::from_secs(15));
    let store = SharedStore::new(Store::open(Options::default(), &dir, Box::new(OsFs)));
    st.appender = Some(Box::new(store.clone()));
    st.tsdb = Some(store.clone());
    let server = promlet::http::ServerStats::default();
    let t0 = 1_760_000_000_000i64; // a fixed true time, not the machine's clock
    let clock = SteppedClock {
        mono: std::cell::Cell::new(Instant::now()),
        wall: std::cell::Cell::new(t0),
    };
    let jump = jump_days * 86_400_000;
    let step = 15_000;
    let phase_len = 20 * step;
    // Wall-time windows of the three phases.
    let windows = [
        (t0, t0 + phase_len),
        (t0 + phase_len + jump, t0 + 2 * phase_len + jump),
        (t0 + 2 * phase_len, t0 + 3 * phase_len),
    ];
    let mut right_after = [0usize; 3];
    let mut fired_at_cycle = None;
    let mut cycle = 0;
    for (phase, &(from, _)) in windows.iter().enumerate() {
        clock.wall.set(from);
        for _ in 0..20 {
            st.cycle(&clock, &server);
            cycle += 1;
            // The group's slot in this interval comes after the cycle (as when the rule loop
            // runs after a collection), so each evaluation sees the cycle's samples; an
            // evaluation right after a step that came first would see a gap, as any gap.
            st.run_rules(clock.wall.get() + step - 1);
            let firing = st.rules.groups()[0]
                .alerts()
                .any(|(_, a)| a.state == promlet::rules::AlertState::Firing);
            if firing && fired_at_cycle.is_none() {
                fired_at_cycle = Some(cycle);
            }
            clock
                .mono
                .set(clock.mono.get() + Duration::from_millis(step as u64));
            clock.wall.set(clock.wall.get() + step);
        }
        right_after[phase] = samples_in(&store, windows[phase].0, windows[phase].1);
    }
    store.0.borrow_mut().flush(Instant::now());
    let steps = st.stats.clock_steps;
    let discarded = store.0.borrow().stats().clock_step_discarded;
    drop(st);
    let reopened = SharedStore::new(Store::open(Options::default(), &dir, Box::new(OsFs)));
    let mut phases = [(0, 0, 0); 3];
    for (i, &(from, to)) in windows.iter().enumerate() {
        phases[i] = (
            right_after[i],
            samples_in(&store, from, to),
            samples_in(&reopened, from, to),
        );
    }
    ClockRun {
        phases,
        steps,
        fired_at_cycle,
        discarded,
    }
}

/// Wall clock jumps by +3 days and back, and by -3 days and back, through an injected clock
/// (never the machine's). The agent keeps collecting and storing in every phase, counts each
/// step, and the data directory reopens to what memory held. A step back is trusted (NTP or
/// an admin corrected a clock that was ahead): the samples stamped after the new time are
/// discarded in every series at once (agent::State::observe_clock, tsdb Store::discard_from),
/// so storing continues at the corrected time instead of being refused until the wall clock
/// catches up. After +3 d and back that drops exactly the future-stamped phase; after -3 d the
/// true history before the step is newer than the new time and goes (promlet cannot tell
/// which clock was right; it trusts the newest). A `for: 3m` alert active since before the
/// step fires 3 minutes of real time after it became active, whichever way the clock went.
#[test]
fn chaos_wall_clock_jumps_three_days_both_ways() {
    for days in [3i64, -3] {
        let run = clock_jump_run(days);
        let [(a0, a1, a2), (b0, b1, b2), (c0, c1, c2)] = run.phases;
        let gone = (a0 - a1.min(a0)) + (b0 - b1.min(b0)) + (c0 - c1.min(c0));
        println!(
            "chaos: wall clock {days:+} d and back: {} steps counted; samples held \
             (right after / at the end / after reopening): before {a0}/{a1}/{a2}, during \
             {b0}/{b1}/{b2}, after {c0}/{c1}/{c2}; discarded as stamped by a clock that was \
             ahead: {}; lost otherwise: {}; `for: 3m` alert fired at cycle {:?} (16 + 12 \
             expected)",
            run.steps,
            run.discarded,
            gone.saturating_sub(run.discarded as usize),
            run.fired_at_cycle,
        );
        assert_eq!(run.steps, 2, "both steps must be counted");
        assert!(a0 > 0 && b0 > 0 && c0 > 0, "a phase stored nothing");
        // Every cycle of every phase stored its samples (nothing refused as out of order).
        assert!(b0 * 10 >= a0 * 9 && c0 * 10 >= a0 * 9, "{a0} {b0} {c0}");
        // Nothing stored after the clock settled is lost, and disk equals memory.
        assert_eq!(c1, c0);
        assert_eq!(
            (a2, b2, c2),
            (a1, b1, c1),
            "reopened data differs from memory"
        );
        if days > 0 {
            assert_eq!(a1, a0, "true history lost after a forward jump");
            assert_eq!(
                b1, 0,
                "future-stamped samples kept after the clock came back"
            );
            // Plus the rule's stale markers (not counted by the query).
            assert!((b0..b0 + 10).contains(&(run.discarded as usize)));
        } else {
            assert_eq!(b1, b0, "samples of the stepped-back phase lost");
            assert_eq!(a1, 0, "the step back should have dropped the newer history");
            assert!((a0..a0 + 10).contains(&(run.discarded as usize)));
        }
        assert_eq!(run.fired_at_cycle, Some(28), "`for` must count real time");
    }
}
