//! The scrape manager against real targets: the real node_exporter, a target serving garbage,
//! a target that goes away (file_sd rewritten, process killed), DNS SRV discovery through a
//! real dnsmasq. The manager runs on a LocalExecutor on the test thread, appending into a real
//! TSDB `Store`; results are read back through the PromQL API handler.

use crate::common::{self, ChildGuard, TempDir};
use async_executor::LocalExecutor;
use promlet::config::Config;
use promlet::http::api_v1;
use promlet::model::{is_stale_nan, Clock, Labels, MatchOp, Matcher, SystemClock};
use promlet::promql::EngineOpts;
use promlet::scrape::manager::{Env, Manager};
use promlet::tsdb::{Appender, Options, Querier, Store};
use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

struct Rig {
    ex: Rc<LocalExecutor<'static>>,
    store: Rc<RefCell<Store>>,
    mgr: Rc<RefCell<Manager>>,
}

impl Rig {
    fn new(yaml: &str) -> Rig {
        let cfg = Config::parse(yaml, "test.yml").unwrap_or_else(|e| panic!("{e}"));
        let ex = Rc::new(LocalExecutor::new());
        let store = Rc::new(RefCell::new(Store::new(Options::default())));
        let app: Rc<RefCell<dyn Appender>> = store.clone();
        let mgr = Manager::new(Env {
            ex: ex.clone(),
            app,
            clock: Rc::new(SystemClock),
            series_cap: 0,
        });
        Manager::apply_config(&mgr, &cfg.scrape_configs);
        Rig { ex, store, mgr }
    }

    /// Runs the work thread's executor for `d`.
    fn run_for(&self, d: Duration) {
        promlet::rt::block_on(self.ex.run(promlet::rt::Timer::after(d)));
    }

    /// Runs until `cond` holds or `limit` passes.
    fn run_until(&self, limit: Duration, mut cond: impl FnMut(&Rig) -> bool) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            self.run_for(Duration::from_millis(200));
            if cond(self) {
                return true;
            }
        }
        false
    }

    fn query(&self, q: &str) -> String {
        let now = SystemClock.wall_ms();
        let params = vec![("query".to_string(), q.to_string())];
        let r = api_v1::query(&params, &*self.store.borrow(), now, &EngineOpts::default());
        String::from_utf8(r.body).unwrap()
    }

    /// All samples of series named `name` (with label `job`), newest last.
    fn samples(&self, name: &str, job: &str) -> Vec<(Labels, Vec<f64>)> {
        let m = [
            Matcher::new(MatchOp::Equal, "__name__", name).unwrap(),
            Matcher::new(MatchOp::Equal, "job", job).unwrap(),
        ];
        self.store
            .borrow()
            .select(&m, 0, i64::MAX / 2)
            .into_iter()
            .map(|s| (s.labels, s.samples.iter().map(|x| x.v).collect()))
            .collect()
    }

    fn targets(&self) -> String {
        String::from_utf8(self.mgr.borrow().targets_json("", "")).unwrap()
    }
}

fn node_exporter() -> Option<(ChildGuard, u16)> {
    let bin = common::stack_bin("prometheus-node-exporter")?;
    let port = common::free_port();
    let child = ChildGuard::spawn(
        Command::new(bin)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--no-collector.systemd")
            .stderr(std::process::Stdio::null()),
    );
    assert!(common::wait_for_port(port), "node_exporter did not start");
    Some((child, port))
}

/// Serves `body` as text/plain to every connection until the test ends.
fn garbage_server(body: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn last_is_stale(v: &[f64]) -> bool {
    v.last().is_some_and(|x| is_stale_nan(*x))
}

/// promlet scrapes a real node_exporter: `up` is 1, node_* series are queryable through the
/// PromQL API, the report series are there, and /api/v1/targets says "up".
#[test]
fn scrape_real_node_exporter() {
    let Some((_ne, port)) = node_exporter() else {
        return;
    };
    let rig = Rig::new(&format!(
        "scrape_configs:\n  - job_name: node\n    scrape_interval: 1s\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    ));
    let ok = rig.run_until(Duration::from_secs(8), |r| {
        r.samples("up", "node")
            .first()
            .is_some_and(|(_, v)| v.len() >= 2)
    });
    assert!(ok, "no two scrapes in 8 s; targets: {}", rig.targets());
    let up = rig.samples("up", "node");
    assert_eq!(up.len(), 1);
    assert_eq!(
        up[0].0.get("instance"),
        Some(format!("127.0.0.1:{port}").as_str())
    );
    assert!(up[0].1.iter().all(|v| *v == 1.0), "{:?}", up[0].1);
    let q = rig.query("count({__name__=~\"node_.+\", job=\"node\"})");
    assert!(q.contains("\"status\":\"success\""), "{q}");
    // {"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[T,"N"]}]}}
    let count: f64 = q
        .split("\"value\":[")
        .nth(1)
        .and_then(|v| v.split('"').nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no value in {q}"));
    assert!(count > 200.0, "only {count} node_* series: {q}");
    let scraped = rig.samples("scrape_samples_scraped", "node");
    assert!(scraped[0].1.last().copied().unwrap() > 300.0);
    let added = rig.samples("scrape_series_added", "node");
    assert!(
        added[0].1[0] > 300.0 && added[0].1[1] == 0.0,
        "{:?}",
        added[0].1
    );
    let t = rig.targets();
    assert!(t.contains("\"health\":\"up\""), "{t}");
    assert!(
        t.contains(&format!(
            "\"scrapeUrl\":\"http://127.0.0.1:{port}/metrics\""
        )),
        "{t}"
    );
    assert!(t.contains("\"lastError\":\"\""), "{t}");
}

/// A target serving garbage gets up == 0 and a lastError naming the parse error; the manager
/// (and the test's executor) carries on.
#[test]
fn garbage_target_is_down_with_last_error() {
    let port = garbage_server("ok_metric 1\nthis is { not exposition\n");
    let rig = Rig::new(&format!(
        "scrape_configs:\n  - job_name: junk\n    scrape_interval: 1s\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    ));
    assert!(rig.run_until(Duration::from_secs(5), |r| !r
        .samples("up", "junk")
        .is_empty()));
    let up = rig.samples("up", "junk");
    assert_eq!(up[0].1[0], 0.0);
    let t = rig.targets();
    assert!(t.contains("\"health\":\"down\""), "{t}");
    assert!(
        t.contains("\"lastError\":\"text parse error: line 2"),
        "{t}"
    );
    assert!(
        rig.samples("ok_metric", "junk").is_empty(),
        "a failed scrape appends nothing"
    );
}

/// A target removed from its file_sd file gets stale markers for its series and its `up`;
/// a killed target gets up == 0 and stale markers.
#[test]
fn vanished_target_gets_stale_markers() {
    let Some((ne, port)) = node_exporter() else {
        return;
    };
    let dir = TempDir::new("scrape-sd");
    let file = dir.join("targets.json");
    std::fs::write(
        &file,
        format!(r#"[{{"targets": ["127.0.0.1:{port}"], "labels": {{"role": "a"}}}}]"#),
    )
    .unwrap();
    let rig = Rig::new(&format!(
        "scrape_configs:\n  - job_name: fs\n    scrape_interval: 1s\n    file_sd_configs: [{{files: ['{}/*.json']}}]\n",
        dir.display()
    ));
    assert!(rig.run_until(Duration::from_secs(6), |r| !r
        .samples("up", "fs")
        .is_empty()));
    let up = rig.samples("up", "fs");
    assert_eq!(up[0].0.get("role"), Some("a"));
    assert!(rig.targets().contains("__meta_filepath"));

    // Remove the target from the file: picked up by the mtime poll, marked stale.
    std::fs::write(&file, "[]").unwrap();
    let ok = rig.run_until(Duration::from_secs(12), |r| {
        r.samples("up", "fs")
            .first()
            .is_some_and(|(_, v)| last_is_stale(v))
    });
    assert!(
        ok,
        "up not stale after the target left the file: {:?}",
        rig.samples("up", "fs")
    );
    let load = rig.samples("node_load1", "fs");
    assert!(last_is_stale(&load[0].1), "{:?}", load[0].1);
    assert!(rig.targets().contains("\"activeTargets\":[]"));

    // Back in the file, then the process dies: up == 0, node series stale.
    std::fs::write(
        &file,
        format!(r#"[{{"targets": ["127.0.0.1:{port}"], "labels": {{"role": "a"}}}}]"#),
    )
    .unwrap();
    let ok = rig.run_until(Duration::from_secs(12), |r| {
        r.samples("up", "fs")
            .first()
            .is_some_and(|(_, v)| v.last() == Some(&1.0))
    });
    assert!(ok, "target not scraped again after returning to the file");
    drop(ne);
    let ok = rig.run_until(Duration::from_secs(6), |r| {
        r.samples("up", "fs")
            .first()
            .is_some_and(|(_, v)| v.last() == Some(&0.0))
    });
    assert!(ok, "up did not drop to 0 after the process died");
    let load = rig.samples("node_load1", "fs");
    assert!(last_is_stale(&load[0].1), "{:?}", load[0].1);
    assert!(
        rig.targets().contains("connection refused")
            || rig.targets().contains("Connection refused"),
        "{}",
        rig.targets()
    );
}

/// dns_sd_configs with SRV, A and AAAA records served by a real dnsmasq on loopback: targets are found,
/// its host name resolved through the same server, and it is scraped.
#[test]
fn dns_sd_srv_a_aaaa_against_real_dnsmasq() {
    let Some((_ne, port)) = node_exporter() else {
        return;
    };
    let dnsmasq = std::path::Path::new("/usr/sbin/dnsmasq");
    if !dnsmasq.exists() {
        common::missing::<()>("dnsmasq (scripts/install-test-peers.sh)");
        return;
    }
    let dns_port = free_udp_port();
    let _dns = ChildGuard::spawn(
        Command::new(dnsmasq)
            .args([
                "--no-daemon",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                &format!("--port={dns_port}"),
                &format!("--srv-host=_node._tcp.promlet.test,node1.promlet.test,{port}"),
                "--host-record=node1.promlet.test,127.0.0.1,::1",
            ])
            .stderr(std::process::Stdio::null()),
    );
    // Started, not yet answering: wait until it answers the A query the test relies on (a fixed
    // sleep was too short on a loaded machine, and every discovery then started with a failure).
    let answers = (0..50).any(|_| dns_answers(dns_port, "node1.promlet.test"));
    assert!(answers, "dnsmasq on 127.0.0.1:{dns_port} did not answer");
    // The process-wide nameserver override; only this test sets it, and the guard removes it
    // when the test ends (also on a failed assertion), so no later test asks a dead dnsmasq.
    let _dns_override = EnvVarGuard::set("PROMLET_DNS_SERVER", &format!("127.0.0.1:{dns_port}"));
    let rig = Rig::new(
        &format!("scrape_configs:\n  - job_name: dns\n    scrape_interval: 1s\n    dns_sd_configs: [{{names: [_node._tcp.promlet.test], refresh_interval: 1s}}]\n  - job_name: dns_a\n    scrape_interval: 1s\n    dns_sd_configs: [{{names: [node1.promlet.test], type: A, port: {port}}}]\n  - job_name: dns_aaaa\n    scrape_interval: 1s\n    dns_sd_configs: [{{names: [node1.promlet.test], type: AAAA, port: {port}}}]\n"),
    );
    let ok = rig.run_until(Duration::from_secs(20), |r| {
        r.samples("up", "dns")
            .first()
            .is_some_and(|(_, v)| v.last() == Some(&1.0))
    });
    assert!(ok, "SRV target not scraped: {}", rig.targets());
    let t = rig.targets();
    assert!(
        t.contains(&format!("\"instance\":\"node1.promlet.test:{port}\"")),
        "{t}"
    );
    assert!(
        t.contains("\"__meta_dns_srv_record_target\":\"node1.promlet.test\""),
        "{t}"
    );
    assert!(!rig.samples("node_load1", "dns").is_empty());
    // A record: scraped at the address. AAAA: found as [::1]:port, where node_exporter (bound
    // to 127.0.0.1) does not listen, so it is down with the connection error.
    let ok = rig.run_until(Duration::from_secs(6), |r| {
        r.samples("up", "dns_a")
            .first()
            .is_some_and(|(_, v)| v.last() == Some(&1.0))
            && !r.samples("up", "dns_aaaa").is_empty()
    });
    assert!(ok, "{}", rig.targets());
    let t = rig.targets();
    assert!(
        t.contains(&format!("\"instance\":\"127.0.0.1:{port}\"")),
        "{t}"
    );
    assert!(t.contains(&format!("\"instance\":\"[::1]:{port}\"")), "{t}");
    assert_eq!(rig.samples("up", "dns_aaaa")[0].1[0], 0.0);
}

/// Sets an environment variable of this test process and removes it on drop.
struct EnvVarGuard(&'static str);

impl EnvVarGuard {
    fn set(name: &'static str, value: &str) -> EnvVarGuard {
        std::env::set_var(name, value);
        EnvVarGuard(name)
    }
}

impl Drop for EnvVarGuard {
    fn drop(&mut self) {
        std::env::remove_var(self.0);
    }
}

/// Whether the DNS server on 127.0.0.1:`port` answers an A query for `name` with an address
/// within 200 ms.
fn dns_answers(port: u16, name: &str) -> bool {
    use promlet::net::dns::{encode_query, parse_response, T_A};
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let query = encode_query(7, name, T_A).unwrap();
    if sock.send_to(&query, ("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(200));
        return false;
    }
    let mut buf = [0u8; 512];
    match sock.recv(&mut buf) {
        Ok(n) => parse_response(&buf[..n], 7, T_A).is_ok_and(|r| !r.is_empty()),
        Err(_) => false,
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The promlet binary with scrape_configs: scrapes a real node_exporter (`up` == 1 and node_*
/// series through its own /api/v1/query, /api/v1/targets "up"); after SIGHUP with a config
/// that adds a garbage target, that target is down with a lastError, the agent keeps going.
#[test]
fn agent_scrapes_node_exporter_and_reloads_on_sighup() {
    use crate::common::{Agent, TempDir};
    let Some((_ne, ne_port)) = node_exporter() else {
        return;
    };
    let junk_port = garbage_server("# TYPE x counter\nx{ 1\n");
    let dir = TempDir::new("scrape-agent");
    let cfg = dir.0.join("promlet.yml");
    let base = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: node\n    static_configs: [{{targets: ['127.0.0.1:{ne_port}']}}]\n"
    );
    std::fs::write(&cfg, &base).unwrap();
    let agent = Agent::start(&[&format!("--config.file={}", cfg.display())]);
    let query = |q: &str| {
        let path = format!(
            "/api/v1/query?query={}",
            q.replace(' ', "%20")
                .replace('{', "%7B")
                .replace('}', "%7D")
                .replace('"', "%22")
                .replace('=', "%3D")
        );
        let (status, _, body) = agent.get(&path, "");
        assert_eq!(status, 200);
        String::from_utf8(body).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut q = String::new();
    while Instant::now() < deadline {
        q = query("up{job=\"node\"}");
        if q.contains("\"value\":[") {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        q.contains(&format!("\"instance\":\"127.0.0.1:{ne_port}\"")),
        "{q}"
    );
    assert!(q.ends_with(",\"1\"]}]}}"), "{q}");
    let q = query("count(node_load1{job=\"node\"})");
    assert!(q.contains(",\"1\"]"), "{q}");
    let (status, _, t) = agent.get("/api/v1/targets?state=active", "");
    let t = String::from_utf8(t).unwrap();
    assert_eq!(status, 200);
    assert!(
        t.contains("\"scrapePool\":\"node\"") && t.contains("\"health\":\"up\""),
        "{t}"
    );

    std::fs::write(
        &cfg,
        format!("{base}  - job_name: junk\n    static_configs: [{{targets: ['127.0.0.1:{junk_port}']}}]\n"),
    )
    .unwrap();
    let kill = Command::new("kill")
        .args(["-HUP", &agent.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut t = String::new();
    while Instant::now() < deadline {
        t = String::from_utf8(agent.get("/api/v1/targets?scrapePool=junk", "").2).unwrap();
        if t.contains("\"health\":\"down\"") {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        t.contains("\"lastError\":\"text parse error: line 2"),
        "{t}"
    );
    assert!(
        !t.contains("\"scrapePool\":\"node\""),
        "scrapePool filter: {t}"
    );
    let q = query("up{job=\"junk\"}");
    assert!(q.ends_with(",\"0\"]}]}}"), "{q}");
    let q = query("up{job=\"node\"}");
    assert!(
        q.ends_with(",\"1\"]}]}}"),
        "the node job kept running across the reload: {q}"
    );
}

/// Target relabeling (hashmod's md5, labelmap, lowercase/uppercase, replace with groups,
/// keep/drop, keepequal) gives exactly the target labels a real Prometheus 3.5 shows in its
/// /api/v1/targets for the same config and targets.
#[test]
fn target_relabeling_matches_real_prometheus() {
    use promlet::scrape::target::populate;
    let dir = crate::common::TempDir::new("relabel-diff");
    // Ports nothing listens on; scrapes are an hour apart anyway.
    let targets: Vec<String> = (0..40)
        .map(|i| format!("127.0.0.1:{}", 1 + i * 7))
        .collect();
    let quoted: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    let yaml = format!(
        "global:\n  scrape_interval: 1h\nscrape_configs:
  - job_name: rl
    static_configs:
      - targets: [{}]
        labels: {{__meta_x_team: Db, env: Prod, copy: '127.0.0.1'}}
    relabel_configs:
      - {{source_labels: [__address__], modulus: 7, target_label: shard, action: hashmod}}
      - {{source_labels: [__address__, env], modulus: 1000, target_label: bucket, action: hashmod}}
      - {{source_labels: [env], target_label: env_lc, action: lowercase}}
      - {{source_labels: [__meta_x_team], target_label: team_uc, action: uppercase}}
      - {{regex: '__meta_x_(.+)', action: labelmap, replacement: 'meta_$1'}}
      - {{source_labels: [__address__], regex: '([^:]+):(\\d+)', target_label: 'port_${{2}}', replacement: '$1/$2'}}
      - {{source_labels: [shard], regex: '6', action: drop}}
      - {{source_labels: [bucket], regex: '.*[05]', action: drop}}
      - {{source_labels: [host_missing], target_label: none, action: keepequal}}
      - {{regex: 'copy', action: labeldrop}}
",
        quoted.join(", ")
    );
    let Some(prom) = crate::common::Prometheus::launch_in(dir, &yaml, &[]) else {
        return;
    };
    let port = prom.port;
    let mut theirs: Vec<String> = Vec::new();
    for _ in 0..100 {
        let body = String::from_utf8(common::http_get(port, "/api/v1/targets?state=active", "").2)
            .unwrap();
        theirs = body
            .split("\"labels\":")
            .skip(1)
            .map(|s| s[..=s.find('}').unwrap()].to_string())
            .collect();
        if !theirs.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!theirs.is_empty(), "Prometheus shows no targets");
    theirs.sort();

    let cfg = Config::parse(&yaml, "prometheus.yml").unwrap_or_else(|e| panic!("{e}"));
    let sc = &cfg.scrape_configs[0];
    let mut ours: Vec<String> = Vec::new();
    for t in &targets {
        let d = Labels::from_pairs([
            ("__address__", t.as_str()),
            ("__meta_x_team", "Db"),
            ("env", "Prod"),
            ("copy", "127.0.0.1"),
        ]);
        if let Some(spec) = populate(sc, &d).unwrap() {
            let mut j = promlet::http::json::Json::new();
            j.begin_object();
            for (n, v) in spec.labels.iter() {
                j.key(n).string(v);
            }
            j.end_object();
            ours.push(String::from_utf8(j.into_bytes()).unwrap());
        }
    }
    ours.sort();
    assert!(
        ours.len() > 10 && ours.len() < 40,
        "drops did something: {}",
        ours.len()
    );
    assert_eq!(ours, theirs);
}

/// A repeat scrape of an unchanged body allocates nothing per sample: the series cache maps
/// each raw series to its final labels, the parser and buffers are reused. Measured over
/// node_exporter's own end-to-end output (thousands of samples) with a real store.
#[test]
fn repeat_scrape_allocates_nothing_per_sample() {
    use promlet::scrape::client::Response;
    use promlet::scrape::target::{populate, ScrapeState};
    let Some(dir) = common::shared_dir("node-fixtures") else {
        return;
    };
    let body = std::fs::read(dir.join("e2e-output.txt")).unwrap();
    let cfg = Config::parse(
        "scrape_configs:\n  - job_name: node\n    metric_relabel_configs: [{source_labels: [__name__], regex: 'go_.*', action: drop}]\n",
        "t.yml",
    )
    .unwrap();
    let sc = &cfg.scrape_configs[0];
    let spec = populate(sc, &Labels::from_pairs([("__address__", "127.0.0.1:9100")]))
        .unwrap()
        .unwrap();
    let mut st = ScrapeState::new(&spec);
    let mut store = Store::new(Options::default());
    let resp = || Response {
        status: 200,
        content_type: Some("text/plain; version=0.0.4; charset=utf-8".into()),
    };
    let t0 = 1_700_000_000_000;
    for i in 0..3 {
        st.body = body.clone();
        st.finish(
            sc,
            &spec,
            Ok(resp()),
            t0 + i * 15_000,
            Duration::from_millis(3),
            &mut store,
        );
    }
    assert_eq!(st.last_error, "");
    let samples = st.last_samples;
    assert!(samples > 1000, "{samples}");
    let ((), allocs) = common::alloc_counter::count_allocations(|| {
        st.finish(
            sc,
            &spec,
            Ok(resp()),
            t0 + 3 * 15_000,
            Duration::from_millis(3),
            &mut store,
        )
    });
    println!("repeat scrape: {samples} samples, {allocs} allocations (scrape path + store)");
    assert!(
        allocs * 20 < samples as u64,
        "{allocs} allocations for {samples} samples"
    );
}

/// Many targets of one job get start offsets spread over the interval, not bunched.
#[test]
fn start_offsets_spread_targets_over_the_interval() {
    use promlet::scrape::target::{populate, start_offset};
    let cfg = Config::parse("scrape_configs:\n  - job_name: j\n", "t.yml").unwrap();
    let interval = Duration::from_secs(10);
    let mut buckets = [0usize; 10];
    for i in 0..100 {
        let d = Labels::from_pairs([("__address__", format!("10.0.0.{i}:9100"))]);
        let spec = populate(&cfg.scrape_configs[0], &d).unwrap().unwrap();
        buckets[start_offset(&spec, interval).as_secs() as usize] += 1;
    }
    assert!(buckets.iter().all(|b| (2..=25).contains(b)), "{buckets:?}");
}

/// A target that accepts but never answers fails at scrape_timeout with Prometheus's
/// "context deadline exceeded"; a gzipped node_exporter body over body_size_limit fails with
/// "body size limit exceeded"; a 404 names the status. None of them stop the others.
#[test]
fn timeouts_body_limits_and_http_errors_fail_one_scrape() {
    let Some((_ne, ne_port)) = node_exporter() else {
        return;
    };
    let hang = TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_port = hang.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in hang.incoming().flatten() {
            held.push(c); // never answered
        }
    });
    let rig = Rig::new(&format!(
        "scrape_configs:
  - job_name: hang
    scrape_interval: 1s
    scrape_timeout: 300ms
    static_configs: [{{targets: ['127.0.0.1:{hang_port}']}}]
  - job_name: big
    scrape_interval: 1s
    body_size_limit: 4KB
    static_configs: [{{targets: ['127.0.0.1:{ne_port}']}}]
  - job_name: notfound
    scrape_interval: 1s
    metrics_path: /nope
    static_configs: [{{targets: ['127.0.0.1:{ne_port}']}}]
"
    ));
    let ok = rig.run_until(Duration::from_secs(6), |r| {
        ["hang", "big", "notfound"]
            .iter()
            .all(|j| !r.samples("up", j).is_empty())
    });
    assert!(ok, "{}", rig.targets());
    for j in ["hang", "big", "notfound"] {
        assert_eq!(rig.samples("up", j)[0].1[0], 0.0, "{j}");
    }
    let d = rig.samples("scrape_duration_seconds", "hang")[0].1[0];
    assert!((0.29..1.0).contains(&d), "timeout took {d} s");
    let t = rig.targets();
    assert!(t.contains(&format!("\"lastError\":\"Get \\\"http://127.0.0.1:{hang_port}/metrics\\\": context deadline exceeded\"")), "{t}");
    assert!(
        t.contains("\"lastError\":\"body size limit exceeded (limit: 4096 bytes)\""),
        "{t}"
    );
    assert!(
        t.contains("\"lastError\":\"server returned HTTP status 404 Not Found\""),
        "{t}"
    );
}

/// Serves `auth_ok 1` only to requests carrying `want` as their Authorization header, 401
/// otherwise; also records whether the request asked for gzip and sent the timeout header.
fn auth_server(want: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = vec![0u8; 8192];
            let n = c.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let ok = req
                .lines()
                .any(|h| h.eq_ignore_ascii_case(&format!("authorization: {want}")))
                && req.contains("X-Prometheus-Scrape-Timeout-Seconds: ")
                && req.contains("Accept: application/openmetrics-text");
            let (status, body) = if ok {
                ("200 OK", "auth_ok 1\n")
            } else {
                ("401 Unauthorized", "no\n")
            };
            let _ = write!(
                c,
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// basic_auth and authorization credentials reach the target as Prometheus sends them.
#[test]
fn basic_auth_and_bearer_credentials_are_sent() {
    let basic = auth_server("Basic dXNlcjpzM2NyZXQ="); // user:s3cret
    let bearer = auth_server("Bearer tok-123");
    let wrong = auth_server("Bearer other");
    let dir = crate::common::TempDir::new("scrape-auth");
    std::fs::write(dir.0.join("token"), "tok-123\n").unwrap();
    let rig = Rig::new(&format!(
        "scrape_configs:
  - job_name: basic
    scrape_interval: 1s
    basic_auth: {{username: user, password: s3cret}}
    static_configs: [{{targets: ['127.0.0.1:{basic}']}}]
  - job_name: bearer
    scrape_interval: 1s
    authorization: {{credentials_file: {}}}
    static_configs: [{{targets: ['127.0.0.1:{bearer}']}}]
  - job_name: wrong
    scrape_interval: 1s
    authorization: {{credentials: tok-123}}
    static_configs: [{{targets: ['127.0.0.1:{wrong}']}}]
",
        dir.0.join("token").display()
    ));
    let ok = rig.run_until(Duration::from_secs(6), |r| {
        ["basic", "bearer", "wrong"]
            .iter()
            .all(|j| !r.samples("up", j).is_empty())
    });
    assert!(ok, "{}", rig.targets());
    assert_eq!(rig.samples("up", "basic")[0].1[0], 1.0, "{}", rig.targets());
    assert_eq!(
        rig.samples("up", "bearer")[0].1[0],
        1.0,
        "{}",
        rig.targets()
    );
    assert_eq!(rig.samples("up", "wrong")[0].1[0], 0.0);
    assert_eq!(rig.samples("auth_ok", "basic")[0].1[0], 1.0);
    assert!(rig
        .targets()
        .contains("server returned HTTP status 401 Unauthorized"));
}

/// Serves exactly `reply` (raw bytes) to each connection, then closes it.
fn raw_server(reply: Vec<u8>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = c.write_all(&reply);
        }
    });
    port
}

/// Hostile or broken HTTP responses end in an error naming the problem, never a panic or
/// an unbounded buffer.
#[test]
fn hostile_responses_are_errors() {
    use promlet::scrape::client::{send, Request};
    let long_header = {
        let mut v = b"HTTP/1.1 200 OK\r\nX-Junk: ".to_vec();
        v.extend(std::iter::repeat_n(b'a', 100_000));
        v
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (long_header, "response header too large"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\nx".to_vec(), "body size limit exceeded"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort".to_vec(), "connection closed before the body was complete"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(), "bad chunk size"),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 20\r\n\r\nnot gzip at all!!!!!".to_vec(), "gzip: not a gzip stream"),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\n\r\n".to_vec(), "unsupported Content-Encoding"),
        (b"SMTP ready\r\n\r\n".to_vec(), "malformed HTTP response"),
        (Vec::new(), "connection closed before the response header"),
    ];
    for (reply, want) in cases {
        let port = raw_server(reply);
        let addr = format!("127.0.0.1:{port}");
        let req = Request {
            method: "GET",
            addr: addr.parse().unwrap(),
            host: &addr,
            target: "/metrics",
            accept: "text/plain",
            authorization: None,
            extra_headers: "",
            body: &[],
            timeout: Duration::from_secs(5),
            body_limit: 1 << 20,
            gzip: true,
        };
        let (mut raw, mut body) = (Vec::new(), Vec::new());
        let r = promlet::rt::block_on(send(&req, &mut raw, &mut body));
        let e = r.expect_err(want);
        assert!(e.contains(want), "want {want:?}, got {e:?}");
    }
}
