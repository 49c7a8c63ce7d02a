//! The Pushgateway-compatible API of the real binary: raw HTTP push/replace/delete, restart,
//! the TSDB, and a differential run against the real Pushgateway driven by prometheus_client.

use crate::common::TempDir;
use crate::common::{free_port, http_get, missing, stack_bin, wait_for_port, ChildGuard};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn start_promlet(port: u16, dir: &Path, extra: &[&str]) -> ChildGuard {
    let cfg = dir.join("promlet.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 1s\n").unwrap();
    let child = ChildGuard::spawn(
        Command::new(crate::common::promlet_bin())
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--config.file={}", cfg.display()))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    assert!(wait_for_port(port), "promlet did not listen on {port}");
    child
}

/// One request with a body over a fresh connection; returns (status, body).
fn send(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let status = buf
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn metrics(port: u16) -> String {
    let (status, _, body) = http_get(port, "/metrics", "");
    assert_eq!(status, 200);
    String::from_utf8(body).unwrap()
}

const GROUP: &str = "/metrics/job/backup/path@base64/L3Zhci90bXA";

#[test]
fn push_replace_merge_delete_over_http_survive_a_restart() {
    let dir = TempDir::new("http");
    let port = free_port();
    let promlet = start_promlet(port, &dir, &["--web.enable-push"]);

    let body = "# HELP done Jobs done.\n# TYPE done counter\ndone{job=\"x\",kind=\"a\"} 3\n\
                # TYPE size gauge\nsize 10\n";
    assert_eq!(send(port, "PUT", GROUP, body).0, 200);
    let m = metrics(port);
    // The grouping label overrides the pushed job="x"; instance="" is added.
    assert!(
        m.contains("done{instance=\"\",job=\"backup\",kind=\"a\",path=\"/var/tmp\"} 3\n"),
        "{m}"
    );
    assert!(m.contains("push_time_seconds{instance=\"\",job=\"backup\",path=\"/var/tmp\"} "));

    // POST replaces only `size`; `done` stays.
    assert_eq!(send(port, "POST", GROUP, "size 11\n").0, 200);
    let m = metrics(port);
    assert!(
        m.contains("size{instance=\"\",job=\"backup\",path=\"/var/tmp\"} 11\n"),
        "{m}"
    );
    assert!(m.contains("done{instance=\"\",job=\"backup\""), "{m}");

    // Refused: timestamps, a malformed body, a missing job; the group is unchanged.
    assert_eq!(send(port, "PUT", GROUP, "size 12 1000\n").0, 400);
    assert_eq!(send(port, "PUT", GROUP, "size{ 12\n").0, 400);
    assert_eq!(send(port, "PUT", "/metrics/job/", "size 1\n").0, 400);
    assert_eq!(send(port, "PUT", "/metrics/job/a/b", "size 1\n").0, 400);
    let m = metrics(port);
    assert!(
        m.contains("size{instance=\"\",job=\"backup\",path=\"/var/tmp\"} 11\n"),
        "{m}"
    );

    // PUT replaces the whole group.
    assert_eq!(send(port, "PUT", GROUP, "size 13\n").0, 200);
    let m = metrics(port);
    assert!(!m.contains("done{"), "{m}");

    // The cycle stores pushed samples in the TSDB.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, _, b) = http_get(port, "/api/v1/query?query=size%7Bjob%3D%22backup%22%7D", "");
        let b = String::from_utf8_lossy(&b).to_string();
        if b.contains("\"13\"") && b.contains("/var/tmp") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pushed sample never reached the TSDB: {b}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // A second group, then a restart: both come back.
    assert_eq!(
        send(port, "PUT", "/metrics/job/other/e@base64/=", "g 1\n").0,
        200
    );
    drop(promlet);
    let promlet = start_promlet(port, &dir, &["--web.enable-push"]);
    let m = metrics(port);
    assert!(
        m.contains("size{instance=\"\",job=\"backup\",path=\"/var/tmp\"} 13\n"),
        "{m}"
    );
    assert!(
        m.contains("g{e=\"\",instance=\"\",job=\"other\"} 1\n"),
        "{m}"
    );

    assert_eq!(send(port, "DELETE", GROUP, "").0, 202);
    let m = metrics(port);
    assert!(!m.contains("job=\"backup\""), "{m}");
    assert!(m.contains("job=\"other\""), "{m}");
    drop(promlet);

    // Without --web.enable-push the endpoints refuse and the saved groups are not exposed.
    let promlet = start_promlet(port, &dir, &[]);
    assert_eq!(send(port, "PUT", GROUP, "size 1\n").0, 403);
    assert!(!metrics(port).contains("job=\"other\""));
    drop(promlet);
}

#[test]
fn prometheus_client_pushes_look_the_same_on_pushgateway_and_promlet() {
    let Some(pgw) = stack_bin("prometheus-pushgateway") else {
        return;
    };
    let has_client = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_client {
        missing::<()>("python3 with prometheus_client (python3 -m pip install prometheus_client)");
        return;
    }
    let dir = TempDir::new("diff");
    let (gport, pport) = (free_port(), free_port());
    let _gateway = ChildGuard::spawn(
        Command::new(pgw)
            .arg(format!("--web.listen-address=127.0.0.1:{gport}"))
            .arg(format!(
                "--persistence.file={}",
                dir.join("pgw.data").display()
            ))
            .arg("--log.level=error")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    assert!(
        wait_for_port(gport),
        "pushgateway did not listen on {gport}"
    );
    let _promlet = start_promlet(pport, &dir, &["--web.enable-push"]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/push_diff.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(format!("127.0.0.1:{gport}"))
        .arg(format!("127.0.0.1:{pport}"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "differences:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let compared: usize = stdout
        .trim()
        .strip_prefix("compared ")
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(compared >= 30, "too little compared: {stdout}");
}
