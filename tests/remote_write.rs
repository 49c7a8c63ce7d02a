//! remote_write against a real Prometheus 3.5 started with `--web.enable-remote-write-receiver`.
//!
//! Between promlet and Prometheus sits a recording TCP relay (not a stand-in: every request
//! goes to the real Prometheus and its real answer goes back). It keeps each acknowledged
//! request, decoded with promlet's own snappy and protobuf decoders, so a test can count how
//! often each sample crossed the wire; it can also refuse connections (link down).

use crate::common::{self, ChildGuard};
use crate::common::{Agent, TempDir};
use promlet::http::json::Value as Json;
use promlet::remote::{proto, snappy};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

type SeriesKey = Vec<(String, String)>;

/// One acknowledged remote-write request.
struct Delivery {
    at: Instant,
    head: String,
    series: Vec<proto::DecodedSeries>,
}

struct Relay {
    port: u16,
    down: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Delivery>>>,
}

impl Relay {
    fn start(upstream: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (d, l) = (down.clone(), log.clone());
        // Lives until the test binary exits (blocked in accept).
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                relay_one(client, upstream, &d, &l);
            }
        });
        Relay { port, down, log }
    }

    fn deliveries(&self) -> usize {
        self.log.lock().unwrap().len()
    }
}

fn relay_one(mut client: TcpStream, upstream: u16, down: &AtomicBool, log: &Mutex<Vec<Delivery>>) {
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut req = Vec::new();
    let mut buf = [0u8; 16384];
    let head_end = loop {
        if let Some(p) = req.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&req[..head_end]).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    while req.len() < head_end + len {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    if down.load(Ordering::SeqCst) {
        return; // the link is down: the connection just closes
    }
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    up.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    up.write_all(&req).unwrap();
    let mut resp = Vec::new();
    let _ = up.read_to_end(&mut resp);
    let _ = client.write_all(&resp);
    let status: u16 = String::from_utf8_lossy(&resp)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if (200..300).contains(&status) {
        let mut raw = Vec::new();
        snappy::decompress(&req[head_end..], &mut raw).expect("a valid snappy body");
        let series = proto::decode_write_request(&raw).expect("a valid WriteRequest");
        log.lock().unwrap().push(Delivery {
            at: Instant::now(),
            head,
            series,
        });
    }
}

/// A real Prometheus receiving remote writes; stop and start keep its port and data.
struct Receiver {
    child: Option<ChildGuard>,
    port: u16,
    dir: TempDir,
    bin: PathBuf,
}

impl Receiver {
    fn start() -> Option<Receiver> {
        let bin = common::stack_bin("prometheus")?;
        let dir = TempDir::new("rw-prom");
        std::fs::write(
            dir.0.join("prometheus.yml"),
            "global:\n  scrape_interval: 1m\n",
        )
        .unwrap();
        let mut r = Receiver {
            child: None,
            port: common::free_port(),
            dir,
            bin,
        };
        r.up();
        Some(r)
    }

    fn up(&mut self) {
        let child = ChildGuard::spawn(
            Command::new(&self.bin)
                .arg(format!(
                    "--config.file={}",
                    self.dir.0.join("prometheus.yml").display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    self.dir.0.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
                .arg("--web.enable-remote-write-receiver")
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        self.child = Some(child);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && common::http_get(self.port, "/-/ready", "").0 == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("prometheus did not become ready");
    }

    /// SIGTERM and wait: Prometheus writes its head out; the data dir stays.
    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.pid().to_string()])
                .status();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(30) {
                if c.0.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Raw samples of a matrix answer, by label set (without `drop_label`), as (ms, value bits).
fn matrix(body: &str, drop_label: &str) -> BTreeMap<SeriesKey, Vec<(i64, u64)>> {
    let json = Json::parse(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(
        json.get("status").and_then(Json::as_str),
        Some("success"),
        "{body}"
    );
    let data = json.get("data").unwrap();
    assert_eq!(
        data.get("resultType").and_then(Json::as_str),
        Some("matrix"),
        "{body}"
    );
    let mut out = BTreeMap::new();
    for s in data.get("result").and_then(Json::as_array).unwrap() {
        let Some(Json::Obj(metric)) = s.get("metric") else {
            panic!("{body}")
        };
        let key: SeriesKey = metric
            .iter()
            .filter(|(k, _)| k != drop_label)
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let values = s
            .get("values")
            .and_then(Json::as_array)
            .unwrap()
            .iter()
            .map(|p| {
                let p = p.as_array().unwrap();
                let Json::Num(t) = p[0] else { panic!("{body}") };
                let v: f64 = p[1].as_str().unwrap().parse().unwrap();
                ((t * 1000.0).round() as i64, v.to_bits())
            })
            .collect();
        out.insert(key, values);
    }
    out
}

/// Every sample of the selector within 10 minutes before `at_ms`.
fn raw_samples(
    port: u16,
    selector: &str,
    at_ms: i64,
    drop_label: &str,
) -> BTreeMap<SeriesKey, Vec<(i64, u64)>> {
    let q = urlencode(&format!("{selector}[10m]"));
    let path = format!(
        "/api/v1/query?query={q}&time={}.{:03}",
        at_ms / 1000,
        at_ms % 1000
    );
    let (status, _, body) = common::http_get(port, &path, "");
    let body = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{body}");
    matrix(&body, drop_label)
}

/// Samples the relay saw acknowledged, with how often each (series, t) crossed.
fn delivered(relay: &Relay, upto_ms: i64) -> BTreeMap<SeriesKey, BTreeMap<i64, (u64, usize)>> {
    let mut out: BTreeMap<SeriesKey, BTreeMap<i64, (u64, usize)>> = BTreeMap::new();
    for d in relay.log.lock().unwrap().iter() {
        for s in &d.series {
            let key: SeriesKey = s
                .labels
                .iter()
                .filter(|(k, _)| k != "site")
                .cloned()
                .collect();
            for x in &s.samples {
                if x.t <= upto_ms {
                    let e = out
                        .entry(key.clone())
                        .or_default()
                        .entry(x.t)
                        .or_insert((x.v.to_bits(), 0));
                    e.1 += 1;
                }
            }
        }
    }
    out
}

/// The labelled value of `name` in promlet's /metrics.
fn labelled_metric(agent: &Agent, name: &str) -> Option<f64> {
    agent
        .metrics()
        .lines()
        .find(|l| l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for: {what}");
}

fn promlet_config(dir: &TempDir, relay_port: u16, keep: &str, queue: &str) -> String {
    let cfg = dir.0.join("promlet.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  external_labels:\n    site: home\n\
             collectors:\n  disable_defaults: true\n  loadavg: true\n  meminfo: true\n\
             remote_write:\n  - url: http://127.0.0.1:{relay_port}/api/v1/write\n    name: central\n\
             \x20   write_relabel_configs:\n      - source_labels: [__name__]\n        regex: '{keep}'\n        action: keep\n\
             \x20   queue_config:\n{queue}"
        ),
    )
    .unwrap();
    format!("--config.file={}", cfg.display())
}

#[test]
fn outage_and_restart_deliver_every_sample_exactly_once() {
    let Some(mut prom) = Receiver::start() else {
        return;
    };
    let relay = Relay::start(prom.port);
    let dir = TempDir::new("rw-agent");
    let keep = "node_load.*|node_memory_.*";
    let arg = promlet_config(
        &dir,
        relay.port,
        keep,
        "      batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 1s\n      \
         max_samples_per_send: 50\n",
    );
    let agent = Agent::start_in(dir, &[&arg]);
    wait_until(
        "three acknowledged batches",
        Duration::from_secs(30),
        || relay.deliveries() >= 3,
    );
    {
        let log = relay.log.lock().unwrap();
        let head = &log[0].head;
        for h in [
            "POST /api/v1/write HTTP/1.1",
            "Content-Encoding: snappy",
            "Content-Type: application/x-protobuf",
            "X-Prometheus-Remote-Write-Version: 0.1.0",
            "User-Agent: promlet/",
        ] {
            assert!(head.contains(h), "{h} missing in {head}");
        }
        let labels = &log[0].series[0].labels;
        assert!(
            labels.iter().any(|(k, v)| k == "site" && v == "home"),
            "{labels:?}"
        );
    }

    // Link down for minutes (as the issue asks): Prometheus stops; promlet keeps collecting
    // and retrying, restarts half way, and is reloaded.
    prom.down();
    let outage = Instant::now();
    std::thread::sleep(Duration::from_secs(60));
    assert!(
        labelled_metric(&agent, "prometheus_remote_storage_samples_retried_total").unwrap() > 0.0
    );
    let backlog = labelled_metric(&agent, "promlet_remote_write_backlog_samples").unwrap();
    assert!(backlog > 0.0, "a backlog builds up during the outage");
    // promlet restarts during the outage (clean stop: TSDB and cursor written).
    agent.signal("TERM");
    let mut agent = agent;
    assert_eq!(
        agent.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        agent.stderr()
    );
    let dir = agent.into_dir();
    // Reload with other queue settings for the same url and name: the queue keeps its place.
    let reload_dir = TempDir(dir.0.clone());
    let agent = Agent::start_in(dir, &[&arg]);
    std::thread::sleep(Duration::from_secs(2));
    promlet_config(
        &reload_dir,
        relay.port,
        keep,
        "      batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 1s\n      \
         max_samples_per_send: 40\n",
    );
    std::mem::forget(reload_dir); // the agent owns the directory
    agent.signal("HUP");
    std::thread::sleep(Duration::from_secs(2));
    let log = agent.stderr();
    assert!(log.contains("completed loading of configuration"), "{log}");
    assert_eq!(log.matches("starting queue").count(), 1, "{log}");
    assert!(
        agent.stderr().contains("resuming from cursor"),
        "{}",
        agent.stderr()
    );
    let before = relay.deliveries();
    // The second half of the outage, on the restarted promlet.
    std::thread::sleep(Duration::from_secs(120).saturating_sub(outage.elapsed()));
    assert!(outage.elapsed() >= Duration::from_secs(120));

    // Link back after two minutes: the backlog drains.
    prom.up();
    wait_until("the backlog drains", Duration::from_secs(60), || {
        relay.deliveries() > before
            && labelled_metric(&agent, "promlet_remote_write_backlog_samples")
                .is_some_and(|b| b < 150.0)
    });
    std::thread::sleep(Duration::from_secs(4));
    let cut = now_ms() - 3000;
    let high = labelled_metric(
        &agent,
        "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
    )
    .unwrap();
    assert!(
        (high * 1000.0) as i64 >= cut,
        "sent through {high}, cut {cut}"
    );
    assert_eq!(
        labelled_metric(&agent, "promlet_remote_write_lost_samples_total"),
        Some(0.0)
    );
    assert_eq!(
        labelled_metric(&agent, "prometheus_remote_storage_samples_failed_total"),
        Some(0.0)
    );

    // The reloaded batch size is in force: after the batch built before the reload (retried
    // as it was), the backlog went out in full batches of 40.
    let sizes: Vec<usize> = relay.log.lock().unwrap()[before..]
        .iter()
        .map(|d| d.series.iter().map(|s| s.samples.len()).sum())
        .collect();
    assert!(sizes[0] <= 50, "{sizes:?}");
    assert_eq!(sizes[1..].iter().max(), Some(&40), "{sizes:?}");
    let selector = format!("{{__name__=~\"{keep}\"}}");
    let ours = raw_samples(agent.port, &selector, cut, "");
    let theirs = raw_samples(prom.port, &selector, cut, "site");
    let wire = delivered(&relay, cut);
    let total: usize = ours.values().map(Vec::len).sum();
    assert!(
        ours.len() >= 10 && total > 500,
        "{} series, {total} samples",
        ours.len()
    );
    // Exactly once on the wire: no (series, timestamp) acknowledged twice.
    for (k, ts) in &wire {
        for (t, (_, n)) in ts {
            assert_eq!(*n, 1, "{k:?} at {t} was delivered {n} times");
        }
    }
    // Everything promlet holds arrived, with the same values, and nothing else.
    let wire_flat: BTreeMap<SeriesKey, Vec<(i64, u64)>> = wire
        .into_iter()
        .map(|(k, ts)| (k, ts.into_iter().map(|(t, (v, _))| (t, v)).collect()))
        .collect();
    assert_eq!(
        wire_flat.keys().collect::<Vec<_>>(),
        ours.keys().collect::<Vec<_>>()
    );
    for (k, v) in &ours {
        assert_eq!(
            wire_flat.get(k),
            Some(v),
            "series {k:?}: wire differs from promlet"
        );
        assert_eq!(
            theirs.get(k),
            Some(v),
            "series {k:?}: Prometheus differs from promlet"
        );
    }
    assert_eq!(theirs.len(), ours.len());
}

#[test]
fn backlog_goes_out_no_faster_than_the_rate_limit() {
    let Some(prom) = Receiver::start() else {
        return;
    };
    let relay = Relay::start(prom.port);
    let dir = TempDir::new("rw-rate");
    let rate = 10.0;
    let arg = promlet_config(
        &dir,
        relay.port,
        "node_load.*",
        "      batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 500ms\n      \
         max_samples_per_send: 5\n      max_samples_per_second: 10\n",
    );
    let agent = Agent::start_in(dir, &[&arg]);
    wait_until("a first batch", Duration::from_secs(30), || {
        relay.deliveries() >= 1
    });
    relay.down.store(true, Ordering::SeqCst);
    let down_at = now_ms();
    std::thread::sleep(Duration::from_secs(12));
    let before = relay.deliveries();
    relay.down.store(false, Ordering::SeqCst);
    let up = Instant::now();
    let up_ms = now_ms();
    // 3 series at 1 s: ~36 samples of backlog, drained at 10/s while 3/s keep coming.
    wait_until("the backlog drains", Duration::from_secs(40), || {
        let log = relay.log.lock().unwrap();
        let caught_up = |name: &str| {
            log[before..].iter().any(|d| {
                d.series
                    .iter()
                    .any(|s| s.labels[0].1 == name && s.samples.iter().any(|x| x.t >= up_ms))
            })
        };
        ["node_load1", "node_load5", "node_load15"]
            .into_iter()
            .all(caught_up)
    });
    let log = relay.log.lock().unwrap();
    let after: Vec<(f64, usize, i64)> = log[before..]
        .iter()
        .map(|d| {
            let n = d.series.iter().map(|s| s.samples.len()).sum();
            let oldest = d
                .series
                .iter()
                .flat_map(|s| s.samples.iter().map(|x| x.t))
                .min()
                .unwrap();
            (d.at.duration_since(up).as_secs_f64(), n, oldest)
        })
        .collect();
    let backlog: usize = after.iter().filter(|a| a.2 < up_ms).map(|a| a.1).sum();
    let detail: Vec<Vec<(String, i64, i64, usize)>> = log[before..]
        .iter()
        .map(|d| {
            d.series
                .iter()
                .map(|s| {
                    let last = s.samples[s.samples.len() - 1].t;
                    (
                        s.labels[0].1.clone(),
                        s.samples[0].t - up_ms,
                        last - up_ms,
                        s.samples.len(),
                    )
                })
                .collect()
        })
        .collect();
    assert!(
        backlog >= 30,
        "backlog sent after the outage: {backlog} ({after:?}) {detail:?} down {}",
        up_ms - down_at
    );
    assert!(
        after.iter().any(|a| a.2 < down_at + 2000),
        "the outage's oldest samples went out"
    );
    // Any stretch of deliveries: samples after the first ≤ rate × time + one batch of slack.
    for i in 0..after.len() {
        for j in i + 1..after.len() {
            let n: usize = after[i + 1..=j].iter().map(|a| a.1).sum();
            let dt = after[j].0 - after[i].0;
            assert!(
                n as f64 <= rate * dt * 1.1 + 5.0,
                "{n} samples in {dt:.2} s between deliveries {i} and {j}: {after:?}"
            );
        }
    }
    // And the limit is what made it take this long: at least backlog/rate, minus a batch.
    let drained = after
        .iter()
        .filter(|a| a.2 < up_ms)
        .map(|a| a.0)
        .fold(0.0, f64::max);
    assert!(
        drained >= (backlog as f64 - 10.0) / rate,
        "{backlog} samples drained in {drained:.2} s"
    );
    drop(agent);
}

/// `https://` with `tls_config.ca_file` (feature `tls`): promlet's samples reach a real
/// Prometheus 3.5 whose remote-write receiver serves TLS with a self-signed certificate.
#[cfg(feature = "tls")]
#[test]
fn remote_write_over_https_reaches_a_tls_prometheus() {
    let dir = TempDir::new("rw-tls");
    let Some((crt, key)) = common::self_signed_cert(&dir.0, "prom", "serverAuth") else {
        return;
    };
    std::fs::write(
        dir.0.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
            crt.display(),
            key.display()
        ),
    )
    .unwrap();
    let Some(prom) = crate::common::Prometheus::launch_in(
        dir,
        "global:\n  scrape_interval: 1m\n",
        &[
            "--web.config.file=web.yml",
            "--web.enable-remote-write-receiver",
        ],
    ) else {
        return;
    };
    let port = prom.port;
    let query = |q: &str| -> String {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "5", "--cacert"])
            .arg(&crt)
            .arg(format!(
                "https://127.0.0.1:{port}/api/v1/query?query={}",
                urlencode(q)
            ))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_until("Prometheus over TLS", Duration::from_secs(30), || {
        query("vector(1)").contains("success")
    });
    let promlet_dir = TempDir::new("rw-tls-promlet");
    let cfg = promlet_dir.0.join("promlet.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  external_labels:\n    site: tls\n\
             collectors:\n  disable_defaults: true\n  loadavg: true\n\
             remote_write:\n  - url: https://127.0.0.1:{port}/api/v1/write\n\
             \x20   tls_config:\n      ca_file: {}\n\
             \x20   queue_config:\n      batch_send_deadline: 1s\n",
            crt.display()
        ),
    )
    .unwrap();
    let agent = Agent::start_in(promlet_dir, &[&format!("--config.file={}", cfg.display())]);
    wait_until(
        "node_load1 from promlet over https",
        Duration::from_secs(30),
        || query("node_load1{site=\"tls\"}").contains("\"node_load1\""),
    );
    assert_eq!(
        labelled_metric(&agent, "prometheus_remote_storage_samples_failed_total"),
        Some(0.0)
    );
}
