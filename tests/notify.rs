//! Alert delivery against a real Alertmanager 0.33 (`prometheus-alertmanager` from the stack).
//!
//! Most tests drive promlet's [`Notifier`] (the code the agent runs: persisted queue, POSTs as
//! tasks through the scrape HTTP client) from the test process, so queue persistence can be
//! checked exactly: a "promlet restart" there is dropping the notifier and opening a new one on
//! the same queue directory. `rule_alert_from_the_real_binary_…` and
//! `rule_resolution_from_the_real_binary_…` run the whole path in real processes: a rule file in
//! the promlet binary, a real Alertmanager. What arrived is read back through Alertmanager's
//! own `GET /api/v2/alerts` and its `/metrics` (resolved alerts are not listed there).

use crate::common::TempDir;
use crate::common::{free_port, http_get, missing, stack_bin, wait_for_port, ChildGuard};
use promlet::model::Labels;
use promlet::notify::config::{AlertingConfig, AlertmanagerConfig};
use promlet::notify::{rfc3339, Notifier, OutgoingAlert};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const AM_CONFIG: &str = "route:\n  receiver: blackhole\nreceivers:\n- name: blackhole\n";

/// Starts Alertmanager on `port` with its state in `dir` and `extra` flags, kept off the
/// cluster network.
///
/// Debian's build reads its default templates from /usr/share/prometheus/alertmanager, a
/// compiled-in path. Where that is absent, the templates that scripts/install-stack.sh keeps in
/// `<stack>/share` are overlaid onto /usr/share inside a user + mount namespace (`unshare`), so
/// the host is not changed; `unshare` execs, so the guarded PID is Alertmanager's.
fn start_alertmanager_with(
    bin: &Path,
    port: u16,
    dir: &Path,
    extra: &[String],
) -> Option<ChildGuard> {
    let cfg = dir.join("am.yml");
    std::fs::write(&cfg, AM_CONFIG).unwrap();
    let mut args = vec![
        format!("--config.file={}", cfg.display()),
        format!("--storage.path={}", dir.join("data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--cluster.listen-address=".to_string(),
        "--log.level=warn".to_string(),
    ];
    args.extend_from_slice(extra);
    let mut cmd = if Path::new("/usr/share/prometheus/alertmanager/default.tmpl").exists() {
        Command::new(bin)
    } else {
        let share = bin.parent()?.parent()?.join("share");
        if !share.join("prometheus/alertmanager/default.tmpl").exists() {
            return missing(&format!(
                "Alertmanager templates in {} (rerun scripts/install-stack.sh)",
                share.display()
            ));
        }
        let mut c = Command::new("unshare");
        c.args(["--user", "--map-root-user", "--mount", "sh", "-c"])
            .arg(format!(
            "mount -t overlay overlay -o lowerdir={}:/usr/share /usr/share && exec \"$0\" \"$@\"",
            share.display()
        ));
        c.arg(bin);
        c
    };
    let child = ChildGuard::spawn(
        cmd.args(&args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("am.log")).unwrap()),
    );
    assert!(
        wait_for_port(port),
        "alertmanager did not listen on {port}: {}",
        std::fs::read_to_string(dir.join("am.log")).unwrap_or_default()
    );
    Some(child)
}

/// A real Alertmanager on one port and directory that a test stops and starts again (its
/// alerts live in memory only: a restart forgets them, as in an outage with a reboot).
pub(crate) struct Alertmanager {
    bin: PathBuf,
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<ChildGuard>,
}

impl Alertmanager {
    /// Starts one on a free port with its state in `dir` and `extra` flags; None (a loud
    /// skip) without the binary or its templates.
    pub(crate) fn start(dir: &Path, extra: &[String]) -> Option<Alertmanager> {
        let bin = stack_bin("prometheus-alertmanager")?;
        let port = free_port();
        let child = start_alertmanager_with(&bin, port, dir, extra)?;
        Some(Alertmanager {
            bin,
            port,
            dir: dir.to_path_buf(),
            extra: extra.to_vec(),
            child: Some(child),
        })
    }

    /// Kills it: the outage begins.
    pub(crate) fn stop(&mut self) {
        self.child = None;
    }

    /// Starts it again on the same port and directory, with no alerts.
    pub(crate) fn restart(&mut self) {
        self.child = None;
        self.child = start_alertmanager_with(&self.bin, self.port, &self.dir, &self.extra);
        assert!(self.child.is_some(), "alertmanager did not start again");
    }

    /// `GET /api/v2/alerts`.
    pub(crate) fn alerts(&self) -> String {
        am_alerts(self.port)
    }

    /// A sample of its own /metrics (see [`am_metric`]).
    pub(crate) fn metric(&self, series: &str) -> f64 {
        am_metric(self.port, series)
    }

    /// How many alerts with `status` ("firing" or "resolved") it has received.
    pub(crate) fn received(&self, status: &str) -> f64 {
        self.metric(&format!(
            "alertmanager_alerts_received_total{{status=\"{status}\",version=\"v2\"}}"
        ))
    }

    /// How many alerts it holds as active.
    pub(crate) fn active(&self) -> f64 {
        self.metric("alertmanager_alerts{state=\"active\"}")
    }
}

/// The notifier the agent runs, posting to the Alertmanager on `port`, its queue in `queue`.
fn open_notifier(port: u16, queue: Option<&Path>) -> Notifier {
    Notifier::new(
        &alerting(port),
        Labels::new(),
        queue,
        100,
        Default::default(),
    )
    .unwrap()
}

pub(crate) fn alerting(port: u16) -> AlertingConfig {
    AlertingConfig {
        alertmanagers: vec![AlertmanagerConfig {
            targets: vec![format!("127.0.0.1:{port}")],
            timeout: Duration::from_secs(2),
            ..Default::default()
        }],
        alert_relabel_configs: Vec::new(),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A firing alert as a rule group sends it: endsAt = now + 4 × resend delay (Prometheus).
fn firing(name: &str, severity: &str) -> OutgoingAlert {
    let t = now_ms();
    OutgoingAlert {
        labels: Labels::from_pairs([("alertname", name), ("severity", severity)]),
        annotations: Labels::from_pairs([
            ("summary", format!("{name} on the device")),
            ("description", "value is 0.93 \"quoted\"".to_string()),
        ]),
        starts_at: t - 60_000,
        ends_at: t + 4 * 60_000,
        generator_url: format!("http://pi.local:9099/graph?g0.expr=up+%3D%3D+0&name={name}"),
    }
}

/// Polls `n` on its own monotonic clock until `done` or `limit`.
fn drive(n: &mut Notifier, limit: Duration, done: impl Fn(&Notifier) -> bool) -> bool {
    let start = Instant::now();
    while !done(n) {
        if start.elapsed() > limit {
            return false;
        }
        n.poll(start.elapsed().as_millis() as i64);
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

pub(crate) fn am_alerts(port: u16) -> String {
    let (status, _, body) = http_get(port, "/api/v2/alerts", "");
    assert_eq!(status, 200);
    String::from_utf8(body).unwrap()
}

/// The top-level objects of a JSON array (brace depth outside strings), as text.
fn array_objects(json: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start, mut in_str, mut esc) = (Vec::new(), 0, 0, false, false);
    for (i, c) in json.char_indices() {
        match (in_str, esc, c) {
            (true, true, _) => esc = false,
            (true, false, '\\') => esc = true,
            (true, false, '"') => in_str = false,
            (true, false, _) => {}
            (false, _, '"') => in_str = true,
            (false, _, '{') => {
                if depth == 0 {
                    start = i;
                }
                depth += 1;
            }
            (false, _, '}') => {
                depth -= 1;
                if depth == 0 {
                    out.push(&json[start..=i]);
                }
            }
            _ => {}
        }
    }
    out
}

/// The JSON object of the alert named `name` in Alertmanager's answer.
pub(crate) fn alert_object<'a>(json: &'a str, name: &str) -> Option<&'a str> {
    let want = format!("\"alertname\":\"{name}\"");
    array_objects(json).into_iter().find(|o| o.contains(&want))
}

#[test]
fn alerts_arrive_with_labels_annotations_times_and_generator_url() {
    let dir = TempDir::new("arrive");
    let Some(am) = Alertmanager::start(&dir, &[]) else {
        return;
    };
    let port = am.port;
    let ext = Labels::from_pairs([("site", "garage")]);
    let mut n = Notifier::new(
        &alerting(port),
        ext,
        Some(&dir.join("queue")),
        100,
        Default::default(),
    )
    .unwrap();
    let a = firing("DiskFull", "critical");
    n.send(std::slice::from_ref(&a));
    assert!(drive(&mut n, Duration::from_secs(10), |n| n.metrics().sent == 1));
    assert_eq!(n.metrics().queue_length, 0);
    let json = am.alerts();
    let obj = alert_object(&json, "DiskFull").unwrap_or_else(|| panic!("not in {json}"));
    for want in [
        "\"severity\":\"critical\"".to_string(),
        "\"site\":\"garage\"".to_string(),
        "\"summary\":\"DiskFull on the device\"".to_string(),
        r#""description":"value is 0.93 \"quoted\"""#.to_string(),
        format!("\"startsAt\":\"{}\"", rfc3339(a.starts_at)),
        format!("\"endsAt\":\"{}\"", rfc3339(a.ends_at)),
        format!(
            "\"generatorURL\":\"{}\"",
            a.generator_url.replace('&', "\\u0026")
        ),
        "\"state\":\"active\"".to_string(),
    ] {
        assert!(obj.contains(&want), "{want} not in {obj}");
    }
}

#[test]
fn queued_alerts_arrive_after_an_alertmanager_outage_and_a_promlet_restart() {
    let dir = TempDir::new("outage");
    let queue = dir.join("queue");
    let Some(mut am) = Alertmanager::start(&dir, &[]) else {
        return;
    };
    let mut n = open_notifier(am.port, Some(&queue));
    n.send(&[firing("Before", "info")]);
    assert!(drive(&mut n, Duration::from_secs(10), |n| n.metrics().sent == 1));
    assert!(alert_object(&am.alerts(), "Before").is_some());

    // Alertmanager goes away; two alerts fire and fail to go out.
    am.stop();
    n.send(&[
        firing("DuringOutage", "critical"),
        firing("Heartbeat", "none"),
    ]);
    assert!(drive(&mut n, Duration::from_secs(10), |n| n
        .metrics()
        .errors
        >= 4));
    assert_eq!(n.metrics().queue_length, 2);

    // promlet restarts while Alertmanager is still down.
    drop(n);
    let mut n = open_notifier(am.port, Some(&queue));
    assert_eq!(n.metrics().queue_length, 2, "the queue did not survive");
    assert!(drive(&mut n, Duration::from_secs(10), |n| n
        .metrics()
        .errors
        >= 2));

    // Alertmanager returns (its own in-memory alerts are gone); the queue drains into it.
    am.restart();
    assert!(
        drive(&mut n, Duration::from_secs(30), |n| n.metrics().sent == 2),
        "{:?}",
        n.metrics()
    );
    assert_eq!(n.metrics().queue_length, 0);
    let json = am.alerts();
    for name in ["DuringOutage", "Heartbeat"] {
        let obj = alert_object(&json, name).unwrap_or_else(|| panic!("{name} not in {json}"));
        assert!(
            obj.contains("\"generatorURL\":\"http://pi.local:9099/graph"),
            "{obj}"
        );
    }
    // Reopened once more, nothing is left to send.
    drop(n);
    assert_eq!(
        open_notifier(am.port, Some(&queue)).metrics().queue_length,
        0
    );
}

/// The value of the sample `series` (name and labels exactly as exposed) in Alertmanager's own
/// /metrics; 0 when absent (a counter not yet incremented).
fn am_metric(port: u16, series: &str) -> f64 {
    let (status, _, body) = http_get(port, "/metrics", "");
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// A resolution that fails to go out is queued and retried like a firing alert, persisted across
/// a promlet restart; an Alertmanager that restarted meanwhile (its memory gone) ends up with the
/// alert resolved: it receives the resolved state (endsAt set) and never the stale firing one.
#[test]
fn resolved_alert_queued_during_an_outage_resolves_it_in_a_restarted_alertmanager() {
    let dir = TempDir::new("resolved");
    let queue = dir.join("queue");
    let Some(mut am) = Alertmanager::start(&dir, &[]) else {
        return;
    };
    let port = am.port;
    let open = || open_notifier(port, Some(&queue));
    let mut n = open();
    let fire = firing("Flapping", "warning");
    n.send(std::slice::from_ref(&fire));
    assert!(drive(&mut n, Duration::from_secs(10), |n| n.metrics().sent == 1));
    assert!(alert_object(&am.alerts(), "Flapping").is_some());
    assert_eq!(am.active(), 1.0);

    // Alertmanager goes away; the alert resolves and the resolution cannot be delivered.
    am.stop();
    let mut resolved = fire.clone();
    resolved.ends_at = now_ms() - 1000;
    n.send(std::slice::from_ref(&resolved));
    assert!(drive(&mut n, Duration::from_secs(10), |n| n
        .metrics()
        .errors
        >= 2));
    assert_eq!((n.metrics().sent, n.metrics().queue_length), (1, 1));

    // promlet restarts during the outage: the queued resolution survives it.
    drop(n);
    let mut n = open();
    assert_eq!(
        n.metrics().queue_length,
        1,
        "the resolution did not survive"
    );

    // Alertmanager returns with no memory of the alert and receives the resolved state.
    am.restart();
    assert!(
        drive(&mut n, Duration::from_secs(30), |n| n.metrics().sent == 1),
        "{:?}",
        n.metrics()
    );
    assert_eq!(n.metrics().queue_length, 0);
    assert_eq!((am.received("resolved"), am.received("firing")), (1.0, 0.0));
    assert_eq!(am.active(), 0.0);
    let json = am.alerts();
    assert!(
        alert_object(&json, "Flapping").is_none(),
        "still firing: {json}"
    );
    drop(n);
    assert_eq!(open().metrics().queue_length, 0);
}

/// Webhook bodies with the ms since the test's start when each arrived.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(u128, String)>>>;

/// A webhook receiver: answers 200 to every POST and records (ms since `start`, body).
fn webhook_listener(start: Instant) -> (u16, Received) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { return };
            let mut r = BufReader::new(c);
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).is_err() {
                        break;
                    }
                    let at = start.elapsed().as_millis();
                    sink.lock()
                        .unwrap()
                        .push((at, String::from_utf8_lossy(&body).into_owned()));
                    let _ = r
                        .get_mut()
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                }
            }
        }
    });
    (port, got)
}

#[test]
fn local_route_tree_groups_dedups_and_repeats_to_webhook_and_exec() {
    use promlet::config::Config;
    use promlet::notify::dispatch::Dispatcher;
    let dir = TempDir::new("route");
    let out = dir.join("exec-out");
    std::fs::create_dir_all(&out).unwrap();
    let start = Instant::now();
    let (port, hooks) = webhook_listener(start);
    let yaml = format!(
        "notify:
  route:
    receiver: device
    group_by: [alertname]
    group_wait: 1s
    group_interval: 1s
    repeat_interval: 3s
  receivers:
  - name: device
    webhook_configs: [{{url: 'http://127.0.0.1:{port}/hook'}}]
    exec_configs:
    - command: [sh, -c, 'cat > \"$0/$(date +%s%N).json\"', '{}']
      timeout: 5s
",
        out.display()
    );
    let cfg = Config::parse(&yaml, "t.yml").unwrap().notify;
    let mut d = Dispatcher::new(
        cfg,
        "http://pi:9099".into(),
        dir.to_path_buf(),
        Default::default(),
        promlet::notify::silence::SilenceStore::open(None),
    );
    let t0 = now_ms();
    let mut h1 = firing("A", "h1");
    h1.labels = Labels::from_pairs([("alertname", "A"), ("host", "h1")]);
    h1.ends_at = 0;
    let mut h2 = h1.clone();
    h2.labels = Labels::from_pairs([("alertname", "A"), ("host", "h2")]);
    h1.starts_at = t0;
    h2.starts_at = t0;
    // The rule engine resends firing alerts on every evaluation; these ingests stand in for it.
    let mut sent_h2 = false;
    let mut resolved_h1 = false;
    while start.elapsed() < Duration::from_millis(6600) {
        let el = start.elapsed().as_millis();
        let now = now_ms();
        let mut batch = vec![h1.clone()];
        if el >= 1200 {
            batch.push(h2.clone());
            sent_h2 = true;
        }
        if el >= 5500 && !resolved_h1 {
            h1.ends_at = now;
            batch[0] = h1.clone();
            resolved_h1 = true;
        }
        if el < 5500 || el % 500 < 30 {
            d.ingest(&batch, now);
        }
        d.poll(now);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(sent_h2 && resolved_h1);
    // Let the last webhook and command finish.
    for _ in 0..100 {
        d.poll(now_ms());
        std::thread::sleep(Duration::from_millis(20));
    }
    let hooks = hooks.lock().unwrap().clone();
    let times: Vec<u128> = hooks.iter().map(|h| h.0).collect();
    assert_eq!(hooks.len(), 4, "webhook notifications at {times:?} ms");
    // group_wait, then the new alert at the next group_interval, then nothing new until
    // repeat_interval, then the resolution.
    assert!((1000..1700).contains(&times[0]), "{times:?}");
    assert!((2000..2700).contains(&times[1]), "{times:?}");
    // repeat_interval counts from when the previous notification was flushed; the times here are
    // arrivals, so the previous one's delivery time (tens of ms under load) may come off the gap.
    assert!(
        times[2] + 100 >= times[1] + 3000 && times[2] < times[1] + 4200,
        "{times:?}"
    );
    assert!(times[3] >= 5500, "{times:?}");
    let count = |s: &str, pat: &str| s.matches(pat).count();
    assert_eq!(count(&hooks[0].1, "\"fingerprint\""), 1);
    assert_eq!(count(&hooks[1].1, "\"fingerprint\""), 2);
    assert_eq!(count(&hooks[2].1, "\"fingerprint\""), 2);
    for h in &hooks {
        assert!(
            h.1.contains(r#""version":"4","groupKey":"{}:{alertname=\"A\"}""#),
            "{}",
            h.1
        );
        assert!(
            h.1.contains(r#""groupLabels":{"alertname":"A"}"#),
            "{}",
            h.1
        );
    }
    assert!(
        hooks[3]
            .1
            .contains(r#"{"status":"resolved","labels":{"alertname":"A","host":"h1"}"#),
        "{}",
        hooks[3].1
    );
    // The exec receiver got the same four payloads on stdin.
    let mut files: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let execs: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let bodies: Vec<String> = hooks.iter().map(|h| h.1.clone()).collect();
    assert_eq!(execs, bodies);
    let m = d.metrics();
    assert_eq!((m.notifications, m.failed), (8, 0));
}

/// Starts the real promlet with its storage in `dir`.
fn start_promlet(port: u16, dir: &Path, extra: &[&str]) -> ChildGuard {
    let child = ChildGuard::spawn(
        Command::new(crate::common::promlet_bin())
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--storage.tsdb.path={}", dir.display()))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    assert!(wait_for_port(port), "promlet did not listen on {port}");
    child
}

fn amtool(bin: &Path, port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin)
        .arg(format!("--alertmanager.url=http://127.0.0.1:{port}"))
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The real amtool manages promlet's silences: add, query, persist across a restart, expire;
/// writes are refused without `--web.enable-silences`.
#[test]
fn amtool_adds_queries_and_expires_silences_that_survive_a_restart() {
    let Some(am) = stack_bin("amtool") else {
        return;
    };
    let dir = TempDir::new("silences");
    let port = free_port();
    {
        let _p = start_promlet(port, &dir, &[]);
        let (ok, out) = amtool(&am, port, &["silence", "add", "alertname=X", "--comment=c"]);
        assert!(
            !ok,
            "a write without --web.enable-silences succeeded: {out}"
        );
        assert!(out.contains("403") || out.contains("read-only"), "{out}");
    }
    let id = {
        let _p = start_promlet(port, &dir, &["--web.enable-silences"]);
        let (ok, out) = amtool(
            &am,
            port,
            &[
                "silence",
                "add",
                "alertname=DiskFull",
                "host=~h[12]",
                "--comment=maintenance",
                "--author=ops",
                "--duration=1h",
            ],
        );
        assert!(ok, "{out}");
        let id = out.trim().to_string();
        assert_eq!(id.len(), 36, "{out}");
        id
    };
    // Restarted: the silence is still there, with its matchers.
    let _p = start_promlet(port, &dir, &["--web.enable-silences"]);
    let (ok, out) = amtool(&am, port, &["silence", "query"]);
    assert!(ok, "{out}");
    assert!(out.contains(&id), "{out}");
    assert!(
        out.contains("alertname=\"DiskFull\" host=~\"h[12]\""),
        "{out}"
    );
    assert!(out.contains("maintenance") && out.contains("ops"), "{out}");
    let (ok, out) = amtool(&am, port, &["silence", "expire", &id]);
    assert!(ok, "{out}");
    let (_, active) = amtool(&am, port, &["silence", "query", "-q"]);
    assert!(!active.contains(&id), "{active}");
    let (_, expired) = amtool(&am, port, &["silence", "query", "--expired", "-q"]);
    assert!(expired.contains(&id), "{expired}");
}

/// `promlet check config` accepts a full alerting + notify config and rejects an unsupported
/// receiver with its position; the running binary exposes the notifier's self-metrics.
#[test]
fn check_config_and_self_metrics_of_the_real_binary() {
    let dir = TempDir::new("check");
    let good = dir.join("good.yml");
    std::fs::write(
        &good,
        "global: {external_labels: {site: garage}}
alerting:
  alert_relabel_configs: [{source_labels: [severity], regex: debug, action: drop}]
  alertmanagers: [{static_configs: [{targets: ['127.0.0.1:9093']}], timeout: 3s}]
notify:
  route: {receiver: log, group_by: ['...'], routes: [{matchers: ['severity=\"critical\"'], receiver: log}]}
  inhibit_rules: [{source_matchers: ['severity=\"critical\"'], target_matchers: ['severity=\"warning\"'], equal: [instance]}]
  receivers: [{name: log, log_configs: [{}]}]
",
    )
    .unwrap();
    let bad = dir.join("bad.yml");
    std::fs::write(
        &bad,
        "notify:\n  route: {receiver: x}\n  receivers:\n  - name: x\n    slack_configs: []\n",
    )
    .unwrap();
    let run = |f: &Path| {
        Command::new(crate::common::promlet_bin())
            .args(["check", "config"])
            .arg(f)
            .output()
            .unwrap()
    };
    let out = run(&good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&bad);
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        err.contains("bad.yml:5:5") && err.contains("slack_configs"),
        "{err}"
    );

    let port = free_port();
    let _p = start_promlet(
        port,
        &dir.join("data"),
        &[&format!("--config.file={}", good.display())],
    );
    let (_, _, body) = http_get(port, "/metrics", "");
    let body = String::from_utf8(body).unwrap();
    assert!(
        body.contains("\npromlet_notifications_queue_capacity 10000\n"),
        "{body}"
    );
    assert!(
        body.contains("\npromlet_notifications_alertmanagers_discovered 1\n"),
        "{body}"
    );
}

/// The whole path in real processes: a rule file in the real promlet fires, the alert reaches a
/// real Alertmanager with its labels, annotation (template expanded) and generatorURL; after an
/// Alertmanager outage (its memory lost) and a promlet SIGKILL + restart, it arrives again.
#[test]
fn rule_alert_from_the_real_binary_reaches_alertmanager_across_outage_and_restart() {
    let dir = TempDir::new("e2e");
    let Some(mut am) = Alertmanager::start(&dir, &[]) else {
        return;
    };
    let am_port = am.port;
    std::fs::write(
        dir.join("rules.yml"),
        "groups:\n- name: edge\n  interval: 1s\n  rules:\n  - alert: AlwaysFiring\n    \
         expr: vector(42)\n    labels:\n      severity: test\n    annotations:\n      \
         summary: 'value is {{ $value }}'\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("promlet.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  external_labels:\n    \
             site: e2e\nrule_files:\n- rules.yml\nalerting:\n  alertmanagers:\n  - static_configs:\n    \
             - targets: ['127.0.0.1:{am_port}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let data = dir.join("data");
    let config = format!("--config.file={}", dir.join("promlet.yml").display());
    let extra = [config.as_str(), "--rules.alert.resend-delay=1s"];
    let promlet = start_promlet(port, &data, &extra);
    let arrived = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(obj) = alert_object(&am_alerts(am_port), "AlwaysFiring") {
                return obj.to_string();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("AlwaysFiring did not reach Alertmanager {what}");
    };
    let obj = arrived("at first");
    for want in [
        "\"severity\":\"test\"",
        "\"site\":\"e2e\"",
        "\"summary\":\"value is 42\"",
        "\"generatorURL\":\"http://",
    ] {
        assert!(obj.contains(want), "{want} missing in {obj}");
    }
    // Alertmanager goes away and comes back empty: the resend brings the alert back.
    am.stop();
    std::thread::sleep(Duration::from_secs(3));
    am.restart();
    arrived("after an Alertmanager outage");
    // promlet is killed and restarted while Alertmanager is down again.
    am.stop();
    drop(promlet);
    let _promlet = start_promlet(port, &data, &extra);
    std::thread::sleep(Duration::from_secs(3));
    am.restart();
    arrived("after a promlet restart during an outage");
}

/// A sample's value in the real promlet's /metrics (None when absent).
fn promlet_metric(port: u16, series: &str) -> Option<f64> {
    let (_, _, body) = http_get(port, "/metrics", "");
    let text = String::from_utf8(body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

/// The whole path for a resolution: a rule in the real promlet stops firing while Alertmanager
/// is down; promlet is SIGKILLed and restarted (its rule state no longer knows the alert, so only
/// the persisted queue does); Alertmanager comes back empty and receives the resolved alert,
/// never a firing one. While deliveries fail and retry, promlet runs on its 1 thread.
#[test]
fn rule_resolution_from_the_real_binary_survives_outage_and_restart() {
    let dir = TempDir::new("e2e-resolved");
    let Some(mut am) = Alertmanager::start(&dir, &[]) else {
        return;
    };
    let am_port = am.port;
    // Fires until `until` (Unix seconds), then resolves.
    let until = now_ms() / 1000 + 15;
    std::fs::write(
        dir.join("rules.yml"),
        format!(
            "groups:\n- name: edge\n  interval: 1s\n  rules:\n  - alert: UntilDeadline\n    \
             expr: vector(time()) < {until}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("promlet.yml"),
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files:\n- rules.yml\nalerting:\n  \
             alertmanagers:\n  - static_configs:\n    - targets: ['127.0.0.1:{am_port}']\n    \
             timeout: 1s\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let data = dir.join("data");
    let config = format!("--config.file={}", dir.join("promlet.yml").display());
    let extra = [config.as_str(), "--rules.alert.resend-delay=1s"];
    let promlet = start_promlet(port, &data, &extra);
    let deadline = Instant::now() + Duration::from_secs(12);
    while alert_object(&am.alerts(), "UntilDeadline").is_none() {
        assert!(Instant::now() < deadline, "the firing alert did not arrive");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        now_ms() / 1000 < until - 1,
        "arrived too late to test a resolution"
    );
    am.stop();
    // The rule resolves while Alertmanager is down; its resolution waits in the queue.
    while now_ms() / 1000 < until + 3 {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        promlet_metric(port, "promlet_notifications_queue_length"),
        Some(1.0)
    );
    assert!(promlet_metric(port, "promlet_notifications_errors_total").unwrap() >= 1.0);
    assert_eq!(promlet_metric(port, "promlet_threads"), Some(1.0));
    drop(promlet);
    let _promlet = start_promlet(port, &data, &extra);
    std::thread::sleep(Duration::from_secs(2));
    am.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while am.received("resolved") < 1.0 {
        assert!(Instant::now() < deadline, "the resolution never arrived");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(am.received("firing"), 0.0);
    assert_eq!(am.active(), 0.0);
    assert_eq!(
        promlet_metric(port, "promlet_notifications_queue_length"),
        Some(0.0)
    );
}

/// Alertmanagers are posted to at once, as tasks on the work thread: one that accepts
/// connections and never answers (until its 20 s timeout) does not hold up the real one, and
/// the process stays at 1 thread.
#[test]
fn a_silent_alertmanager_does_not_delay_the_real_one_and_adds_no_thread() {
    let dir = TempDir::new("parallel");
    let Some(am) = Alertmanager::start(&dir, &[]) else {
        return;
    };
    let am_port = am.port;
    // The kernel completes connections into the backlog; nothing ever reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    std::fs::write(
        dir.join("rules.yml"),
        "groups:\n- name: edge\n  interval: 1s\n  rules:\n  - alert: AlwaysFiring\n    expr: vector(1)\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("promlet.yml"),
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files:\n- rules.yml\nalerting:\n  \
             alertmanagers:\n  - static_configs:\n    - targets: ['{silent_addr}', 'localhost:{am_port}']\n    \
             timeout: 20s\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let config = format!("--config.file={}", dir.join("promlet.yml").display());
    let started = Instant::now();
    let _promlet = start_promlet(port, &dir.join("data"), &[config.as_str()]);
    while alert_object(&am.alerts(), "AlwaysFiring").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the alert waited for the silent Alertmanager"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The POST to the silent one is still open (20 s timeout): delivery is under way.
    assert_eq!(promlet_metric(port, "promlet_threads"), Some(1.0));
    assert_eq!(
        promlet_metric(port, "promlet_notifications_alertmanagers_discovered"),
        Some(2.0)
    );
    drop(silent);
}

/// `scheme: https` (feature `tls`): alerts reach a real Alertmanager serving TLS with a
/// self-signed certificate that `tls_config.ca_file` trusts; with the wrong CA nothing is
/// delivered and the alert stays queued.
#[cfg(feature = "tls")]
#[test]
fn alerts_reach_an_alertmanager_over_https() {
    let dir = TempDir::new("https");
    let Some((crt, key)) = crate::common::self_signed_cert(&dir, "am", "serverAuth") else {
        return;
    };
    let (other_ca, _) = crate::common::self_signed_cert(&dir, "other", "serverAuth").unwrap();
    let web = dir.join("am-web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
            crt.display(),
            key.display()
        ),
    )
    .unwrap();
    let web_flag = format!("--web.config.file={}", web.display());
    let Some(am) = Alertmanager::start(&dir, &[web_flag]) else {
        return;
    };
    let port = am.port;
    let https = |ca: &Path| {
        let mut cfg = alerting(port);
        cfg.alertmanagers[0].scheme = "https".into();
        cfg.alertmanagers[0].tls = Some(promlet::notify::config::TlsConfig {
            ca_file: Some(ca.to_path_buf()),
            ..Default::default()
        });
        cfg
    };
    // Untrusted certificate: refused, kept in the queue.
    let mut wrong = Notifier::new(
        &https(&other_ca),
        Labels::new(),
        None,
        100,
        Default::default(),
    )
    .unwrap();
    wrong.send(&[firing("Untrusted", "info")]);
    assert!(drive(&mut wrong, Duration::from_secs(10), |n| n
        .metrics()
        .errors
        > 0));
    assert_eq!((wrong.metrics().sent, wrong.metrics().queue_length), (0, 1));
    // Trusted: delivered, and Alertmanager (asked over TLS by curl) lists it.
    let mut n = Notifier::new(&https(&crt), Labels::new(), None, 100, Default::default()).unwrap();
    n.send(&[firing("OverTls", "info")]);
    assert!(
        drive(&mut n, Duration::from_secs(10), |n| n.metrics().sent == 1),
        "{:?}",
        n.metrics()
    );
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(&crt)
        .arg(format!("https://127.0.0.1:{port}/api/v2/alerts"))
        .output()
        .expect("curl");
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(alert_object(&json, "OverTls").is_some(), "{json}");
    assert!(alert_object(&json, "Untrusted").is_none(), "{json}");
}
