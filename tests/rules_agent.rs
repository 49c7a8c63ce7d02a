//! Rules in the real binary: `rule_files` globs evaluated on the work thread at each group's
//! interval, recorded series queryable, `/api/v1/rules` and `/api/v1/alerts`, reload on SIGHUP
//! (a bad rule file keeps the running rules), refusing to start on a bad rule file, and `for`
//! progress of a pending alert restored after a restart from `ALERTS_FOR_STATE`.

use crate::common;
use crate::common::{Agent, TempDir};
use promlet::http::json::Value as Json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const CONFIG: &str = "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  external_labels:\n    site: attic\nrule_files: ['rules/*.yml']\n";

const RULES: &str = "groups:\n- name: node\n  rules:\n  - record: node_load1:doubled\n    expr: node_load1 * 2\n  - alert: Always\n    expr: vector(1)\n    annotations:\n      summary: 'on {{ $externalLabels.site }}'\n  - alert: Slow\n    expr: vector(1)\n    for: 1h\n";

fn setup(tag: &str) -> (TempDir, String) {
    let dir = TempDir::new(tag);
    std::fs::create_dir_all(dir.0.join("rules")).unwrap();
    std::fs::write(dir.0.join("promlet.yml"), CONFIG).unwrap();
    std::fs::write(dir.0.join("rules/a.yml"), RULES).unwrap();
    let arg = format!("--config.file={}", dir.0.join("promlet.yml").display());
    (dir, arg)
}

fn get(agent: &Agent, path: &str) -> Json {
    let (status, _, body) = agent.get(path, "");
    let text = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{path}: {text}");
    Json::parse(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
}

fn body(agent: &Agent, path: &str) -> String {
    String::from_utf8(agent.get(path, "").2).unwrap()
}

/// Seconds since the epoch of an RFC 3339 UTC time (`2026-11-22T01:02:03.5Z`).
fn rfc3339_secs(s: &str) -> f64 {
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19);
    let frac: f64 = s[19..s.len() - 1]
        .strip_prefix('.')
        .map(|f| format!("0.{f}").parse().unwrap())
        .unwrap_or(0.0);
    secs as f64 + frac
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The `activeAt` of the alert named `name` in /api/v1/alerts.
fn active_at(agent: &Agent, name: &str) -> Option<f64> {
    let j = get(agent, "/api/v1/alerts");
    j.get("data")?
        .get("alerts")?
        .as_array()?
        .iter()
        .find(|a| {
            a.get("labels")
                .and_then(|l| l.get("alertname"))
                .and_then(Json::as_str)
                == Some(name)
        })
        .and_then(|a| a.get("activeAt")?.as_str().map(rfc3339_secs))
}

#[test]
fn agent_evaluates_rules_serves_them_and_reloads() {
    let (dir, arg) = setup("rules-agent");
    let root = dir.0.clone();
    let agent = Agent::start_in(dir, &[&arg]);
    agent.eventually("the recording rule's series", |a| {
        body(a, "/api/v1/query?query=node_load1:doubled")
            .contains("\"__name__\":\"node_load1:doubled\"")
    });
    agent.eventually("Always firing", |a| {
        body(a, "/api/v1/alerts").contains("\"state\":\"firing\"")
    });
    let alerts = body(&agent, "/api/v1/alerts");
    assert!(alerts.contains("\"summary\":\"on attic\""), "{alerts}");
    assert!(
        alerts.contains(
            "{\"labels\":{\"alertname\":\"Slow\"},\"annotations\":{},\"state\":\"pending\""
        ),
        "{alerts}"
    );
    let rules = get(&agent, "/api/v1/rules");
    let groups = rules
        .get("data")
        .unwrap()
        .get("groups")
        .unwrap()
        .as_array()
        .unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(
        groups[0].get("file").and_then(Json::as_str),
        Some(root.join("rules/a.yml").to_str().unwrap())
    );
    let rs = groups[0].get("rules").unwrap().as_array().unwrap();
    assert_eq!(rs.len(), 3);
    assert!(rs
        .iter()
        .all(|r| r.get("health").and_then(Json::as_str) == Some("ok")));
    // ALERTS went into the store with the alert's state (from the second evaluation on: the
    // first one restores `for` state and writes none, as in Prometheus).
    agent.eventually("ALERTS in the store", |a| {
        body(
            a,
            "/api/v1/query?query=ALERTS%7Balertstate%3D%22pending%22%7D",
        )
        .contains("\"alertname\":\"Slow\"")
    });
    assert!(agent
        .metric("promlet_rule_evaluations_total")
        .is_some_and(|n| n >= 3.0));
    // Firing alerts are handed to the notify hub (the agent always has one).
    assert!(agent
        .metric("promlet_alerts_sent_total")
        .is_some_and(|n| n >= 1.0));
    assert_eq!(agent.metric("promlet_alerts_dropped_total"), Some(0.0));
    assert_eq!(agent.metric("promlet_rule_group_count"), Some(1.0));
    let bad = body(&agent, "/api/v1/rules?type=bogus");
    assert!(bad.contains("\"errorType\":\"bad_data\""), "{bad}");
    let only_rec = body(&agent, "/api/v1/rules?type=record");
    assert!(only_rec.contains("node_load1:doubled") && !only_rec.contains("Always"));

    // SIGHUP picks up a new file matching the glob; the running alert keeps its state.
    let before = active_at(&agent, "Slow").unwrap();
    std::fs::write(
        root.join("rules/b.yml"),
        "groups:\n- name: extra\n  rules:\n  - record: seven\n    expr: vector(7)\n",
    )
    .unwrap();
    agent.signal("HUP");
    agent.eventually("the new group's series", |a| {
        body(a, "/api/v1/query?query=seven").contains("\"7\"")
    });
    assert_eq!(agent.metric("promlet_rule_group_count"), Some(2.0));
    assert_eq!(active_at(&agent, "Slow"), Some(before));

    // A bad rule file fails the reload; the running rules stay.
    std::fs::write(
        root.join("rules/c.yml"),
        "groups:\n- name: bad\n  rules:\n  - record: x\n    expr: 'up +'\n",
    )
    .unwrap();
    agent.signal("HUP");
    agent.eventually("a failed reload", |a| {
        a.metric("promlet_config_last_reload_successful") == Some(0.0)
    });
    let log = agent.stderr();
    assert!(
        log.contains("c.yml:5:11: group ") && log.contains("could not parse expression"),
        "{log}"
    );
    assert_eq!(agent.metric("promlet_rule_group_count"), Some(2.0));
}

#[test]
fn agent_refuses_to_start_on_a_bad_rule_file() {
    let (dir, arg) = setup("rules-agent-bad");
    std::fs::write(dir.0.join("rules/a.yml"), "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotations:\n      s: '{{ $nope }}'\n").unwrap();
    let out = std::process::Command::new(common::promlet_bin())
        .arg(&arg)
        .arg("--web.listen-address=127.0.0.1:0")
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.0.join("data").display()
        ))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    // The log line is logfmt, so quotes inside the message are escaped.
    assert!(
        err.contains("a.yml:7:7: group ") && err.contains("undefined variable"),
        "{err}"
    );
}

/// A pending alert with `for: 1h` keeps the time it spent pending across a clean restart
/// (restored from ALERTS_FOR_STATE, shifted by the downtime), instead of starting over.
#[test]
fn pending_alert_keeps_its_for_progress_across_a_restart() {
    let (dir, arg) = setup("rules-agent-restore");
    let keep = TempDir::new("rules-agent-restore-data");
    let data = format!("--storage.tsdb.path={}", keep.0.join("data").display());
    let mut first = Agent::start_in(dir, &[&arg, &data]);
    first.eventually("Slow pending", |a| active_at(a, "Slow").is_some());
    let original = active_at(&first, "Slow").unwrap();
    std::thread::sleep(Duration::from_secs(5));
    first.signal("TERM");
    assert_eq!(first.wait_exit(Duration::from_secs(10)), Some(0));
    let restart = now_s();
    let (dir2, arg2) = setup("rules-agent-restore-2");
    let second = Agent::start_in(dir2, &[&arg2, &data]);
    second.eventually("Slow pending again", |a| active_at(a, "Slow").is_some());
    let restored = active_at(&second, "Slow").unwrap();
    // Not restarted from scratch (that would be >= the restart time) but the old start moved
    // by the downtime (about a second here).
    assert!(
        restored < restart - 3.0,
        "original {original}, restart {restart}, restored {restored}"
    );
    assert!(
        restored >= original.floor(),
        "original {original}, restored {restored}"
    );
}

/// With no config file, promlet runs its embedded defaults, which ship the heartbeat ("dead
/// man's switch") rule: it is loaded and listed by /api/v1/rules. (Its group runs every minute
/// at a hashed offset, so it is not waited for here; evaluation itself is tested above.)
#[test]
fn embedded_defaults_evaluate_the_heartbeat_rule() {
    let agent = Agent::start(&[]);
    let rules = body(&agent, "/api/v1/rules");
    assert!(rules.contains("\"name\":\"promlet-heartbeat\""), "{rules}");
    assert!(rules.contains("\"name\":\"Heartbeat\""), "{rules}");
    assert!(rules.contains("\"query\":\"vector(1)\""), "{rules}");
}
