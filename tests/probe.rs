//! Probes against real peers on loopback: a test HTTP server (status codes, body regexps,
//! redirects, a response slower than the timeout), open and closed TCP ports with
//! query/expect, Debian's dnsmasq serving A, AAAA and SRV records, ICMP echo to 127.0.0.1;
//! `/probe` and scheduled probes in the real binary; and a differential run against the real
//! blackbox_exporter 0.28 with the same module file and targets.

use crate::common::{self, ChildGuard};
use crate::common::{Agent, TempDir};
use promlet::config::Config;
use promlet::probe::{self, config::Module, Report};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A small HTTP/1.1 server on a thread, one thread per connection (test code only).
///   /ok        200 "hello world\n" with Last-Modified
///   /404       404
///   /redir     302 to /ok;  /redir2 301 to /redir (two hops)
///   /chunked   200, chunked body "hello " "chunked"
///   /slow      200 after 3 s
///   /post      200 for POST (and its body must be empty), 405 otherwise
fn http_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || serve_one(s));
        }
    });
    port
}

fn serve_one(mut s: TcpStream) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
    }
    let simple = |code: u16, reason: &str, extra: &str, body: &str| {
        format!(
            "HTTP/1.1 {code} {reason}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let resp = match path.as_str() {
        "/ok" => simple(200, "OK", "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n", "hello world\n"),
        "/404" => simple(404, "Not Found", "", "nope\n"),
        "/redir" => simple(302, "Found", "Location: /ok\r\n", ""),
        "/redir2" => simple(301, "Moved Permanently", "Location: /redir\r\n", ""),
        "/chunked" => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n6\r\nhello \r\n7\r\nchunked\r\n0\r\n\r\n".to_string(),
        "/slow" => {
            std::thread::sleep(Duration::from_secs(3));
            simple(200, "OK", "", "late\n")
        }
        "/post" if method == "POST" => simple(200, "OK", "", "posted\n"),
        "/post" => simple(405, "Method Not Allowed", "", ""),
        _ => simple(404, "Not Found", "", ""),
    };
    let _ = s.write_all(resp.as_bytes());
}

/// A line server: greets with `SSH-2.0-promlet-test`, then answers `PING x` with `PONG x`
/// and hangs up on `BYE`.
fn line_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let _ = w.write_all(b"SSH-2.0-promlet-test\r\n");
                let mut r = BufReader::new(s);
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 0 {
                    if line.trim() == "BYE" {
                        break;
                    }
                    if let Some(x) = line.trim().strip_prefix("PING ") {
                        let _ = w.write_all(format!("PONG {x}\n").as_bytes());
                    }
                    line.clear();
                }
            });
        }
    });
    port
}

fn closed_port() -> u16 {
    common::free_port()
}

fn modules(yaml: &str) -> Config {
    Config::parse(&format!("probes:\n  modules:\n{yaml}"), "test.yml")
        .unwrap_or_else(|e| panic!("{e}"))
}

fn run(module: &Module, target: &str, timeout: Duration) -> (bool, Report) {
    let mut r = Report::new(true);
    let ok = promlet::rt::block_on(probe::run(module, target, timeout, &mut r));
    (ok, r)
}

const T: Duration = Duration::from_secs(5);

/// Status codes, valid_status_codes, redirects (followed, counted, or not followed), body
/// regexps on plain and chunked bodies, POST, and https failing cleanly without TLS.
#[test]
fn http_status_codes_redirects_and_body_regexps() {
    let port = http_server();
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let cfg = modules(
        "    h404: {prober: http, http: {valid_status_codes: [404]}}
    nofollow: {prober: http, http: {follow_redirects: false}}
    bad_body: {prober: http, http: {fail_if_body_matches_regexp: ['wor.d']}}
    need_body: {prober: http, http: {fail_if_body_not_matches_regexp: ['^hello chunked$']}}
    tls_only: {prober: http, http: {fail_if_not_ssl: true}}
",
    );
    let m = |n: &str| cfg.probes.module(n).unwrap();
    let (ok, r) = run(&m("http_2xx"), &url("/ok"), T);
    assert!(ok, "{:?}", r.log_lines());
    assert_eq!(r.value("probe_http_status_code"), Some(200.0));
    assert_eq!(r.value("probe_http_content_length"), Some(12.0));
    assert_eq!(r.value("probe_http_uncompressed_body_length"), Some(12.0));
    assert_eq!(r.value("probe_http_version"), Some(1.1));
    assert_eq!(
        r.value("probe_http_last_modified_timestamp_seconds"),
        Some(784111777.0)
    );
    // Without a scheme, http:// is assumed.
    assert!(run(&m("http_2xx"), &format!("127.0.0.1:{port}/ok"), T).0);

    let (ok, r) = run(&m("http_2xx"), &url("/404"), T);
    assert!(!ok);
    assert_eq!(r.value("probe_http_status_code"), Some(404.0));
    assert!(run(&m("h404"), &url("/404"), T).0);

    let (ok, r) = run(&m("http_2xx"), &url("/redir2"), T);
    assert!(ok, "{:?}", r.log_lines());
    assert_eq!(r.value("probe_http_redirects"), Some(2.0));
    assert_eq!(r.value("probe_http_status_code"), Some(200.0));
    let (ok, r) = run(&m("nofollow"), &url("/redir"), T);
    assert!(!ok);
    assert_eq!(r.value("probe_http_status_code"), Some(302.0));
    assert_eq!(r.value("probe_http_redirects"), Some(1.0));

    let (ok, r) = run(&m("bad_body"), &url("/ok"), T);
    assert!(!ok);
    assert_eq!(r.value("probe_failed_due_to_regex"), Some(1.0));
    let (ok, r) = run(&m("need_body"), &url("/chunked"), T);
    assert!(ok, "{:?}", r.log_lines());
    assert_eq!(r.value("probe_failed_due_to_regex"), Some(0.0));
    assert_eq!(r.value("probe_http_content_length"), Some(-1.0));
    assert_eq!(r.value("probe_http_uncompressed_body_length"), Some(13.0));
    assert!(!run(&m("need_body"), &url("/ok"), T).0);

    assert!(run(&m("http_post_2xx"), &url("/post"), T).0);
    assert!(!run(&m("http_2xx"), &url("/post"), T).0);

    // Without the tls feature https fails cleanly and says so (https_probes_match_blackbox_exporter
    // covers a tls build); fail_if_not_ssl fails a plain http target either way.
    if !cfg!(feature = "tls") {
        let (ok, r) = run(&m("http_2xx"), &format!("https://127.0.0.1:{port}/ok"), T);
        assert!(!ok);
        assert_eq!(r.value("probe_http_ssl"), Some(0.0));
        assert!(
            r.log_lines().iter().any(|l| l.contains("`tls` feature")),
            "{:?}",
            r.log_lines()
        );
    }
    assert!(!run(&m("tls_only"), &url("/ok"), T).0);

    // A refused connection fails with status 0.
    let (ok, r) = run(
        &m("http_2xx"),
        &format!("http://127.0.0.1:{}/", closed_port()),
        T,
    );
    assert!(!ok);
    assert_eq!(r.value("probe_http_status_code"), Some(0.0));
}

/// A response slower than the timeout fails at the deadline, not when the server answers.
#[test]
fn http_slow_response_hits_the_timeout() {
    let port = http_server();
    let cfg = modules("    quick: {prober: http, timeout: 500ms}\n");
    let m = cfg.probes.module("quick").unwrap();
    let start = Instant::now();
    let (ok, r) = run(
        &m,
        &format!("http://127.0.0.1:{port}/slow"),
        m.timeout.unwrap(),
    );
    let took = start.elapsed();
    assert!(!ok);
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    assert_eq!(r.value("probe_http_status_code"), Some(0.0));
    let d = r.value("probe_duration_seconds").unwrap();
    assert!((0.45..1.5).contains(&d), "{d}");
}

/// TCP: an open port, a closed one, and query_response steps that match (with `${1}`
/// expansion) and that do not.
#[test]
fn tcp_open_closed_and_query_expect() {
    let http = http_server();
    let lines = line_server();
    let cfg = modules(
        "    ssh: {prober: tcp, tcp: {query_response: [{expect: '^SSH-2.0-(\\S+)', send: 'PING ${1}'}, {expect: '^PONG promlet-test$'}]}}
    wrong: {prober: tcp, tcp: {query_response: [{send: BYE}, {expect: '^220 '}]}}
",
    );
    let m = |n: &str| cfg.probes.module(n).unwrap();
    let (ok, r) = run(&m("tcp_connect"), &format!("127.0.0.1:{http}"), T);
    assert!(ok);
    assert_eq!(r.value("probe_failed_due_to_regex"), Some(0.0));
    let (ok, r) = run(
        &m("tcp_connect"),
        &format!("127.0.0.1:{}", closed_port()),
        T,
    );
    assert!(!ok);
    assert_eq!(
        r.value("probe_failed_due_to_regex"),
        None,
        "registered only after connecting"
    );
    let (ok, r) = run(&m("ssh"), &format!("127.0.0.1:{lines}"), T);
    assert!(ok, "{:?}", r.log_lines());
    let (ok, r) = run(&m("wrong"), &format!("127.0.0.1:{lines}"), T);
    assert!(!ok);
    assert_eq!(r.value("probe_failed_due_to_regex"), Some(1.0));
    // A server that never sends the line: the deadline ends it, and the regexp is not blamed.
    let (ok, r) = run(
        &m("wrong"),
        &format!("127.0.0.1:{http}"),
        Duration::from_millis(500),
    );
    assert!(!ok);
    assert_eq!(r.value("probe_failed_due_to_regex"), Some(0.0));
    // A target without a port is an error, not a panic.
    assert!(!run(&m("tcp_connect"), "127.0.0.1", T).0);
}

/// Debian's dnsmasq on a loopback port, serving A, AAAA, SRV, MX and TXT records.
fn dnsmasq() -> Option<(ChildGuard, u16)> {
    let bin = std::path::Path::new("/usr/sbin/dnsmasq");
    if !bin.exists() {
        return common::missing("dnsmasq (scripts/install-test-peers.sh)");
    }
    // A port free for both UDP and TCP; another test may take it in between, so a dnsmasq
    // that exits (address in use) is retried on a fresh port.
    for _ in 0..5 {
        let port = loop {
            let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let p = u.local_addr().unwrap().port();
            if TcpListener::bind(("127.0.0.1", p)).is_ok() {
                break p;
            }
        };
        let mut child = ChildGuard::spawn(
            Command::new(bin)
                .args([
                    "--no-daemon",
                    "--no-resolv",
                    "--no-hosts",
                    "--conf-file=/dev/null",
                    "--listen-address=127.0.0.1",
                    "--bind-interfaces",
                    &format!("--port={port}"),
                    "--srv-host=_node._tcp.promlet.test,node1.promlet.test,9100",
                    "--host-record=node1.promlet.test,127.0.0.1,::1",
                    "--txt-record=txt.promlet.test,hello probes",
                    "--mx-host=promlet.test,mail.promlet.test,10",
                    // Authoritative for the test domain: unknown names are NXDOMAIN, not REFUSED.
                    "--local=/promlet.test/",
                ])
                .stderr(Stdio::null()),
        );
        // dnsmasq answers on TCP too; wait for that socket (or for it to give up).
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some((child, port));
            }
            if child.0.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("dnsmasq did not start on any of 5 ports");
}

/// DNS: A, AAAA, SRV, MX and TXT answers, NXDOMAIN against valid_rcodes, record regexps,
/// TCP transport, and a server that is not there.
#[test]
fn dns_against_real_dnsmasq() {
    let Some((_dns, port)) = dnsmasq() else {
        return;
    };
    let cfg = modules(
        "    a: {prober: dns, dns: {query_name: node1.promlet.test, query_type: A, validate_answer_rrs: {fail_if_not_matches_regexp: ['\\tIN\\tA\\t127\\.0\\.0\\.1$']}}}
    aaaa: {prober: dns, dns: {query_name: node1.promlet.test, query_type: AAAA, transport_protocol: tcp, validate_answer_rrs: {fail_if_none_matches_regexp: ['::1$']}}}
    srv: {prober: dns, dns: {query_name: _node._tcp.promlet.test, query_type: SRV, validate_answer_rrs: {fail_if_not_matches_regexp: ['9100 node1\\.promlet\\.test\\.$']}}}
    srv_wrong: {prober: dns, dns: {query_name: _node._tcp.promlet.test, query_type: SRV, validate_answer_rrs: {fail_if_matches_regexp: ['9100']}}}
    mx: {prober: dns, dns: {query_name: promlet.test, query_type: MX, validate_answer_rrs: {fail_if_not_matches_regexp: ['MX\\t10 mail\\.promlet\\.test\\.$']}}}
    txt: {prober: dns, dns: {query_name: txt.promlet.test, query_type: TXT, validate_answer_rrs: {fail_if_not_matches_regexp: ['\"hello probes\"']}}}
    nx: {prober: dns, dns: {query_name: nope.promlet.test, query_type: A}}
    nx_ok: {prober: dns, dns: {query_name: nope.promlet.test, query_type: A, valid_rcodes: [NXDOMAIN]}}
",
    );
    let target = format!("127.0.0.1:{port}");
    let m = |n: &str| cfg.probes.module(n).unwrap();
    for name in ["a", "aaaa", "srv", "mx", "txt", "nx_ok"] {
        let (ok, r) = run(&m(name), &target, T);
        assert!(ok, "{name}: {:?}", r.log_lines());
        assert_eq!(r.value("probe_dns_query_succeeded"), Some(1.0), "{name}");
    }
    let (_, r) = run(&m("srv"), &target, T);
    assert_eq!(r.value("probe_dns_answer_rrs"), Some(1.0));
    // dnsmasq adds the SRV target's addresses.
    assert_eq!(r.value("probe_dns_additional_rrs"), Some(2.0));
    let (ok, r) = run(&m("nx"), &target, T);
    assert!(!ok);
    assert_eq!(r.value("probe_dns_answer_rrs"), Some(0.0));
    assert!(!run(&m("srv_wrong"), &target, T).0);
    // Nobody listening: the query fails within the timeout.
    let start = Instant::now();
    let (ok, r) = run(
        &m("a"),
        &format!("127.0.0.1:{}", closed_port()),
        Duration::from_secs(1),
    );
    assert!(!ok);
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(r.value("probe_dns_query_succeeded"), Some(0.0));
}

/// ICMP echo to 127.0.0.1 over whichever socket the kernel allows (we run as root here and in
/// CI: a raw socket unless ping_group_range allows datagram sockets).
#[test]
fn icmp_echo_to_loopback() {
    if let Err(e) = promlet::probe::icmp::open_socket(false) {
        common::missing::<()>(&format!("an ICMP socket: {e}"));
        return;
    }
    let m = promlet::probe::config::builtin("icmp").unwrap();
    let (ok, r) = run(&m, "127.0.0.1", T);
    assert!(ok, "{:?}", r.log_lines());
    assert_eq!(r.value("probe_ip_protocol"), Some(4.0));
    // From the TTL control message, whichever socket kind was allowed.
    assert_eq!(r.value("probe_icmp_reply_hop_limit"), Some(64.0));
    if promlet::probe::icmp::open_socket(true).is_ok() {
        let (ok, r) = run(&m, "::1", T);
        assert!(ok, "{:?}", r.log_lines());
        assert_eq!(r.value("probe_ip_protocol"), Some(6.0));
        assert_eq!(r.value("probe_icmp_reply_hop_limit"), Some(64.0));
    }
    // 192.0.2.0/24 (TEST-NET-1) must not answer: a timeout, not a hang.
    let start = Instant::now();
    let (ok, _) = run(&m, "192.0.2.123", Duration::from_millis(300));
    assert!(!ok);
    assert!(start.elapsed() < Duration::from_secs(2));
}

/// Parses a text exposition into `name{labels}` → value (comments skipped).
fn series(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn help_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("# HELP") || l.starts_with("# TYPE"))
        .map(str::to_string)
        .collect()
}

/// `/probe` on the real binary: built-in modules with no configuration, errors for a missing
/// target or unknown module, `debug=true`, and the scrape-timeout header.
#[test]
fn probe_endpoint_of_the_binary() {
    let port = http_server();
    let dir = TempDir::new("probe-ep");
    let cfg = dir.0.join("promlet.yml");
    std::fs::write(
        &cfg,
        "global: {scrape_interval: 1h}\ncollectors: {disable_defaults: true}\n",
    )
    .unwrap();
    let agent = Agent::start_in(dir, &[&format!("--config.file={}", cfg.display())]);
    let (status, _, body) = agent.get(
        &format!("/probe?target=http://127.0.0.1:{port}/ok&module=http_2xx"),
        "",
    );
    assert_eq!(status, 200);
    let s = series(&String::from_utf8_lossy(&body));
    assert_eq!(s["probe_success"], 1.0);
    assert_eq!(s["probe_http_status_code"], 200.0);
    // The module defaults to http_2xx, as in blackbox_exporter.
    let (_, _, body) = agent.get(&format!("/probe?target=127.0.0.1:{port}/404"), "");
    assert_eq!(
        series(&String::from_utf8_lossy(&body))["probe_success"],
        0.0
    );
    let (status, _, body) = agent.get("/probe?module=http_2xx", "");
    assert_eq!(
        (status, String::from_utf8_lossy(&body).trim()),
        (400, "Target parameter is missing")
    );
    let (status, _, body) = agent.get("/probe?target=x&module=nope", "");
    assert_eq!(
        (status, String::from_utf8_lossy(&body).trim()),
        (400, "Unknown module \"nope\"")
    );
    let (status, _, body) = agent.get(
        &format!("/probe?target=127.0.0.1:{port}&module=tcp_connect&debug=true"),
        "",
    );
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 200);
    assert!(text.starts_with("Logs for the probe:\n"), "{text}");
    assert!(
        text.contains("Metrics that would have been returned:\nprobe_dns_lookup_time_seconds")
            || text.contains("# HELP probe_dns_lookup_time_seconds"),
        "{text}"
    );
    // Prometheus's timeout header (minus 0.5 s) bounds a slow probe; the server stays
    // responsive meanwhile.
    let start = Instant::now();
    let slow = std::thread::spawn({
        let p = agent.port;
        move || {
            common::http_get(
                p,
                &format!("/probe?target=http://127.0.0.1:{port}/slow"),
                "X-Prometheus-Scrape-Timeout-Seconds: 1.5\r\n",
            )
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let (status, _, _) = agent.get("/-/healthy", "");
    assert_eq!(status, 200);
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "the work thread was blocked"
    );
    let (_, _, body) = slow.join().unwrap();
    assert_eq!(
        series(&String::from_utf8_lossy(&body))["probe_success"],
        0.0
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_millis(2500),
        "{took:?}"
    );
}

/// Scheduled probes land in the TSDB with job/instance/target/module labels, and a failing
/// `uplink_*` job puts the UplinkDown rule into pending.
#[test]
fn scheduled_probes_are_stored_and_drive_uplink_down() {
    let port = http_server();
    let dir = TempDir::new("probe-sched");
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rules/uplink.yml");
    let cfg = dir.0.join("promlet.yml");
    std::fs::write(
        &cfg,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}
collectors: {{disable_defaults: true}}
rule_files: [{}]
probes:
  jobs:
    - job_name: web
      module: http_2xx
      interval: 1s
      targets: ['http://127.0.0.1:{port}/ok']
      labels: {{site: lab}}
    - job_name: uplink_test
      module: tcp_connect
      interval: 1s
      targets: ['127.0.0.1:{}']
",
            rules.display(),
            closed_port()
        ),
    )
    .unwrap();
    let agent = Agent::start_in(dir, &[&format!("--config.file={}", cfg.display())]);
    let query = |q: &str| {
        let (_, _, body) = agent.get(&format!("/api/v1/query?query={q}"), "");
        String::from_utf8_lossy(&body).to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let (mut web, mut alerts) = (String::new(), String::new());
    while Instant::now() < deadline {
        web = query("probe_success%7Bjob%3D%22web%22%7D");
        let (_, _, body) = agent.get("/api/v1/alerts", "");
        alerts = String::from_utf8_lossy(&body).to_string();
        if web.contains("\"1\"]") && alerts.contains("UplinkDown") {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let target = format!("http://127.0.0.1:{port}/ok");
    for want in [
        "\"job\":\"web\"".to_string(),
        "\"module\":\"http_2xx\"".into(),
        format!("\"instance\":\"{target}\""),
        format!("\"target\":\"{target}\""),
        "\"site\":\"lab\"".into(),
        "\"1\"]".into(),
    ] {
        assert!(web.contains(&want), "{want} not in {web}");
    }
    assert!(alerts.contains("\"alertname\":\"UplinkDown\""), "{alerts}");
    assert!(alerts.contains("\"state\":\"pending\""), "{alerts}");
    let phases = query("probe_http_duration_seconds%7Bjob%3D%22web%22%7D");
    assert_eq!(phases.matches("\"phase\"").count(), 5, "{phases}");
    let failed = query("probe_success%7Bjob%3D%22uplink_test%22%7D");
    assert!(failed.contains("\"0\"]"), "{failed}");
}

/// The real blackbox_exporter and a promlet, both loading `dir/blackbox.yml`: (blackbox's
/// guard, its port, the agent).
fn blackbox_and_promlet(bb: &std::path::Path, dir: TempDir) -> (ChildGuard, u16, Agent) {
    let modules_file = dir.0.join("blackbox.yml");
    let bb_port = common::free_port();
    let guard = ChildGuard::spawn(
        Command::new(bb)
            .arg(format!("--config.file={}", modules_file.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{bb_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    assert!(
        common::wait_for_port(bb_port),
        "blackbox_exporter did not start"
    );
    let cfg = dir.0.join("promlet.yml");
    std::fs::write(
        &cfg,
        "global: {scrape_interval: 1h}\ncollectors: {disable_defaults: true}\nprobes:\n  modules_file: blackbox.yml\n",
    )
    .unwrap();
    let agent = Agent::start_in(dir, &[&format!("--config.file={}", cfg.display())]);
    (guard, bb_port, agent)
}

/// The same module file and targets through the real blackbox_exporter 0.28 and promlet's
/// `/probe`: the same metric names, label sets, HELP/TYPE lines and success values (and the
/// same values for the gauges that are not timings).
#[test]
fn differential_against_blackbox_exporter() {
    let Some(bb) = common::stack_bin("prometheus-blackbox-exporter") else {
        return;
    };
    let Some((_dns, dns_port)) = dnsmasq() else {
        return;
    };
    let http = http_server();
    let lines = line_server();
    let dir = TempDir::new("probe-diff");
    let modules_file = dir.0.join("blackbox.yml");
    std::fs::write(
        &modules_file,
        "modules:
  http_2xx:
    prober: http
    timeout: 2s
    http:
      preferred_ip_protocol: ip4
  http_404_ok:
    prober: http
    timeout: 2s
    http:
      valid_status_codes: [404]
  http_nofollow:
    prober: http
    timeout: 2s
    http:
      follow_redirects: false
  http_body:
    prober: http
    timeout: 2s
    http:
      fail_if_body_not_matches_regexp: ['chunked']
  http_post_2xx:
    prober: http
    timeout: 2s
    http:
      method: POST
  tcp_connect:
    prober: tcp
    timeout: 2s
  tcp_ssh:
    prober: tcp
    timeout: 2s
    tcp:
      query_response:
        - expect: '^SSH-2.0-(\\S+)'
          send: 'PING ${1}'
        - expect: '^PONG promlet-test$'
  tcp_wrong:
    prober: tcp
    timeout: 1s
    tcp:
      query_response:
        - send: BYE
        - expect: '^220 '
  icmp:
    prober: icmp
    timeout: 2s
  dns_a:
    prober: dns
    timeout: 2s
    dns:
      query_name: node1.promlet.test
      query_type: A
  dns_srv:
    prober: dns
    timeout: 2s
    dns:
      query_name: _node._tcp.promlet.test
      query_type: SRV
      preferred_ip_protocol: ip4
      validate_answer_rrs:
        fail_if_not_matches_regexp: ['9100 node1\\.promlet\\.test\\.$']
  dns_aaaa_tcp:
    prober: dns
    timeout: 2s
    dns:
      query_name: node1.promlet.test
      query_type: AAAA
      transport_protocol: tcp
  dns_nx:
    prober: dns
    timeout: 2s
    dns:
      query_name: nope.promlet.test
      query_type: A
",
    )
    .unwrap();
    let (_bb, bb_port, agent) = blackbox_and_promlet(&bb, dir);
    let icmp_ok = promlet::probe::icmp::open_socket(false).is_ok();
    let dns = format!("127.0.0.1:{dns_port}");
    let mut cases: Vec<(String, &str, f64)> = vec![
        (format!("http://127.0.0.1:{http}/ok"), "http_2xx", 1.0),
        (format!("http://127.0.0.1:{http}/404"), "http_2xx", 0.0),
        (format!("http://127.0.0.1:{http}/404"), "http_404_ok", 1.0),
        (format!("http://127.0.0.1:{http}/redir2"), "http_2xx", 1.0),
        (
            format!("http://127.0.0.1:{http}/redir"),
            "http_nofollow",
            0.0,
        ),
        (format!("http://127.0.0.1:{http}/chunked"), "http_body", 1.0),
        (format!("http://127.0.0.1:{http}/ok"), "http_body", 0.0),
        (
            format!("http://127.0.0.1:{http}/post"),
            "http_post_2xx",
            1.0,
        ),
        (format!("http://127.0.0.1:{http}/slow"), "http_2xx", 0.0),
        (
            format!("http://127.0.0.1:{}/", closed_port()),
            "http_2xx",
            0.0,
        ),
        (format!("127.0.0.1:{http}"), "tcp_connect", 1.0),
        (format!("127.0.0.1:{}", closed_port()), "tcp_connect", 0.0),
        (format!("127.0.0.1:{lines}"), "tcp_ssh", 1.0),
        (format!("127.0.0.1:{http}"), "tcp_wrong", 0.0),
        (format!("127.0.0.1:{lines}"), "tcp_wrong", 0.0),
        (dns.clone(), "dns_a", 1.0),
        (dns.clone(), "dns_srv", 1.0),
        (dns.clone(), "dns_aaaa_tcp", 1.0),
        (dns.clone(), "dns_nx", 0.0),
    ];
    if icmp_ok {
        cases.push(("127.0.0.1".into(), "icmp", 1.0));
        if promlet::probe::icmp::open_socket(true).is_ok() {
            cases.push(("::1".into(), "icmp", 1.0));
        }
    }
    // Gauges whose values are not timings or host-specific must agree too.
    let exact = [
        "probe_success",
        "probe_http_status_code",
        "probe_http_redirects",
        "probe_http_ssl",
        "probe_http_version",
        "probe_http_content_length",
        "probe_http_uncompressed_body_length",
        "probe_failed_due_to_regex",
        "probe_failed_due_to_bytes",
        "probe_ip_protocol",
        "probe_ip_addr_hash",
        "probe_dns_answer_rrs",
        "probe_dns_authority_rrs",
        "probe_dns_additional_rrs",
        "probe_dns_query_succeeded",
        "probe_icmp_reply_hop_limit",
    ];
    for (target, module, success) in &cases {
        let path = format!("/probe?target={target}&module={module}");
        let (s1, _, theirs) = common::http_get(bb_port, &path, "");
        let (s2, _, ours) = agent.get(&path, "");
        assert_eq!((s1, s2), (200, 200), "{path}");
        let (theirs, ours) = (
            String::from_utf8_lossy(&theirs),
            String::from_utf8_lossy(&ours),
        );
        assert_eq!(help_lines(&ours), help_lines(&theirs), "{module} {target}");
        let (t, o) = (series(&theirs), series(&ours));
        assert_eq!(
            t.get("probe_success"),
            Some(success),
            "{module} {target}: blackbox\n{theirs}"
        );
        assert_eq!(
            o.keys().collect::<Vec<_>>(),
            t.keys().collect::<Vec<_>>(),
            "{module} {target}\nblackbox:\n{theirs}\npromlet:\n{ours}"
        );
        for name in exact {
            assert_eq!(
                o.get(name),
                t.get(name),
                "{name} for {module} {target}\nblackbox:\n{theirs}\npromlet:\n{ours}"
            );
        }
    }
}

/// https probes (feature `tls`) against `openssl s_server` with a self-signed certificate,
/// through the real blackbox_exporter 0.28 and promlet's `/probe` with the same module file:
/// the same success values, `probe_http_ssl`, TLS version and cipher, and certificate expiry.
/// blackbox's `probe_ssl_last_chain_info` (subject, issuer, SANs, fingerprint) is the one gauge
/// promlet does not report.
#[cfg(feature = "tls")]
#[test]
fn https_probes_match_blackbox_exporter() {
    let Some(bb) = common::stack_bin("prometheus-blackbox-exporter") else {
        return;
    };
    let dir = TempDir::new("probe-tls");
    let Some((crt, key)) = common::self_signed_cert(&dir.0, "server", "serverAuth") else {
        return;
    };
    let tls_port = common::free_port();
    let _server = ChildGuard::spawn(
        Command::new("openssl")
            .args(["s_server", "-www", "-quiet", "-accept"])
            .arg(format!("127.0.0.1:{tls_port}"))
            .arg("-cert")
            .arg(&crt)
            .arg("-key")
            .arg(&key)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    assert!(
        common::wait_for_port(tls_port),
        "openssl s_server did not start"
    );
    let modules_file = dir.0.join("blackbox.yml");
    std::fs::write(
        &modules_file,
        format!(
            "modules:
  https_ok:
    prober: http
    timeout: 3s
    http:
      tls_config: {{ca_file: {ca}}}
  https_refuse_ssl:
    prober: http
    timeout: 3s
    http:
      fail_if_ssl: true
      tls_config: {{ca_file: {ca}}}
  https_untrusted:
    prober: http
    timeout: 3s
",
            ca = crt.display()
        ),
    )
    .unwrap();
    let (_bb, bb_port, agent) = blackbox_and_promlet(&bb, dir);
    let target = format!("https://127.0.0.1:{tls_port}/");
    // The negotiated cipher is the client's preference (Go puts AES-128 first, rustls
    // AES-256): compared as "one was reported".
    let comparable = |text: &str| -> String {
        text.lines()
            .filter(|l| !l.contains("probe_ssl_last_chain_info"))
            .map(|l| match l.find("cipher=\"") {
                Some(i) => format!("{}cipher=\"*\"}} 1", &l[..i]),
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (module, success) in [
        ("https_ok", 1.0),
        ("https_refuse_ssl", 0.0),
        ("https_untrusted", 0.0),
    ] {
        let path = format!("/probe?target={target}&module={module}");
        let (s1, _, theirs) = common::http_get(bb_port, &path, "");
        let (s2, _, ours) = agent.get(&path, "");
        assert_eq!((s1, s2), (200, 200), "{path}");
        let theirs = comparable(&String::from_utf8_lossy(&theirs));
        let ours = comparable(&String::from_utf8_lossy(&ours));
        let (t, o) = (series(&theirs), series(&ours));
        assert_eq!(
            t.get("probe_success"),
            Some(&success),
            "{module}: blackbox\n{theirs}"
        );
        assert_eq!(help_lines(&ours), help_lines(&theirs), "{module}");
        assert_eq!(
            o.keys().collect::<Vec<_>>(),
            t.keys().collect::<Vec<_>>(),
            "{module}\nblackbox:\n{theirs}\npromlet:\n{ours}"
        );
        for (name, value) in &t {
            // s_server's page describes the client's handshake, so its length differs.
            let varies = name.contains("duration")
                || name.contains("lookup_time")
                || name == "probe_http_uncompressed_body_length";
            if !varies {
                assert_eq!(
                    o.get(name),
                    Some(value),
                    "{name} for {module}\nblackbox:\n{theirs}\npromlet:\n{ours}"
                );
            }
        }
    }
}
