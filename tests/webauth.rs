//! `--web.config.file` on the real binary: basic auth at the wire level (401 and its challenge
//! for missing, wrong, unknown and malformed credentials, on every endpoint), the cache of
//! successful bcrypt checks, response headers, re-reading a changed file, positioned errors.
//! With `--features tls`: a self-signed certificate made by the `openssl` CLI, checked with
//! curl and with a real Prometheus 3.5 scraping promlet over https with basic auth; mTLS; and
//! promlet itself scraping an https target (`scheme: https` + `tls_config`).

use crate::common;
use crate::common::{Agent, TempDir};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// "password" at cost 10 (made with libxcrypt's crypt(3)): a check takes ~70 ms optimised.
const ALICE_HASH: &str = "$2y$10$saltsaltsaltsaltsaltsu2fE6IJ7L1HhjdQmAKB.R6F1r9A9qZ9e";
/// "" at cost 4.
const EMPTY_HASH: &str = "$2b$04$abcdefghijklmnopqrstuubyCG3zY1GIXMyxfivm.ClDiInHzxjiq";

fn b64(raw: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in raw.as_bytes().chunks(3) {
        let n = chunk.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                A[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

fn basic(user: &str, pw: &str) -> String {
    format!("Authorization: Basic {}\r\n", b64(&format!("{user}:{pw}")))
}

/// A raw request; (status, whole response text).
fn raw(port: u16, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn get(port: u16, path: &str, headers: &str) -> (u16, String) {
    raw(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n"),
    )
}

/// An agent with `web.yml` = `text` in its directory (plus `extra` flags).
fn agent_with(text: &str, extra: &[&str]) -> (Agent, PathBuf) {
    let dir = TempDir::new("webauth");
    let web = dir.0.join("web.yml");
    std::fs::write(&web, text).unwrap();
    let arg = format!("--web.config.file={}", web.display());
    let mut args = vec![arg.as_str()];
    args.extend_from_slice(extra);
    (Agent::start_in(dir, &args), web)
}

fn users() -> String {
    format!("basic_auth_users:\n  alice: '{ALICE_HASH}'\n  eve: '{EMPTY_HASH}'\n")
}

/// Missing credentials get 401 with `WWW-Authenticate: Basic` on every endpoint; the right
/// ones get 200; a wrong password, an unknown user and malformed headers get 401.
#[test]
fn missing_wrong_and_malformed_credentials_get_401_with_basic_challenge() {
    let (agent, _) = agent_with(&users(), &[]);
    let p = agent.port;
    for path in [
        "/metrics",
        "/-/healthy",
        "/-/ready",
        "/api/v1/query?query=up",
        "/federate?match[]=up",
        "/",
        "/no/such/path",
    ] {
        let (status, text) = get(p, path, "");
        assert_eq!(status, 401, "{path}: {text}");
        assert!(text.contains("\r\nWWW-Authenticate: Basic\r\n"), "{text}");
    }
    let (status, text) = get(p, "/metrics", &basic("alice", "password"));
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("promlet_threads"), "{text}");
    assert_eq!(get(p, "/-/healthy", &basic("eve", "")).0, 200);
    assert_eq!(get(p, "/metrics", &basic("alice", "Password")).0, 401);
    assert_eq!(get(p, "/metrics", &basic("alice", "")).0, 401);
    assert_eq!(get(p, "/metrics", &basic("mallory", "password")).0, 401);
    assert_eq!(get(p, "/metrics", &basic("Alice", "password")).0, 401);
    for bad in [
        "Authorization: Basic\r\n",
        "Authorization: Basic !!!!\r\n",
        "Authorization: Bearer YWxpY2U6cGFzc3dvcmQ=\r\n",
        // "alicepassword": no colon.
        "Authorization: Basic YWxpY2VwYXNzd29yZA==\r\n",
        "Authorization: YWxpY2U6cGFzc3dvcmQ=\r\n",
    ] {
        let (status, text) = get(p, "/metrics", bad);
        assert_eq!(status, 401, "{bad}: {text}");
    }
    // A POST without credentials is refused before its handler runs.
    let (status, _) = raw(
        p,
        "POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 401);
}

fn bcrypt_checks(port: u16) -> f64 {
    let (status, text) = get(port, "/metrics", &basic("eve", ""));
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("promlet_web_auth_bcrypt_checks_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("promlet_web_auth_bcrypt_checks_total")
}

/// The first success runs bcrypt (cost 10); the second is served from the cache and is
/// faster; a wrong password after that still runs bcrypt and is still refused.
#[test]
fn successful_checks_are_cached_and_wrong_passwords_never_are() {
    let (agent, _) = agent_with(&users(), &[]);
    let p = agent.port;
    let base = bcrypt_checks(p); // eve's own check, then cached
    let t = Instant::now();
    assert_eq!(get(p, "/-/healthy", &basic("alice", "password")).0, 200);
    let first = t.elapsed();
    let t = Instant::now();
    assert_eq!(get(p, "/-/healthy", &basic("alice", "password")).0, 200);
    let second = t.elapsed();
    assert_eq!(
        bcrypt_checks(p),
        base + 1.0,
        "one bcrypt check for two requests"
    );
    assert!(
        second * 3 < first,
        "cached check ({second:?}) not clearly faster than bcrypt ({first:?})"
    );
    let t = Instant::now();
    assert_eq!(get(p, "/-/healthy", &basic("alice", "passwordX")).0, 401);
    let wrong = t.elapsed();
    assert_eq!(get(p, "/-/healthy", &basic("alice", "passwor")).0, 401);
    assert_eq!(
        bcrypt_checks(p),
        base + 3.0,
        "wrong passwords always run bcrypt"
    );
    assert!(
        wrong * 3 > first,
        "a wrong password ({wrong:?}) must cost a bcrypt check ({first:?})"
    );
    assert_eq!(get(p, "/-/healthy", &basic("alice", "password")).0, 200);
    assert_eq!(
        bcrypt_checks(p),
        base + 3.0,
        "the right password is still cached"
    );
}

/// `http_server_config.headers` are added to every response (401s too); a changed file is
/// picked up without a restart; an invalid change answers 500 until it is fixed.
#[test]
fn headers_and_changes_to_the_file_apply_while_running() {
    let text = format!(
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    \
         Strict-Transport-Security: max-age=31536000\n{}",
        users()
    );
    let (agent, web) = agent_with(&text, &[]);
    let p = agent.port;
    let (status, resp) = get(p, "/-/healthy", "");
    assert_eq!(status, 401);
    assert!(resp.contains("\r\nX-Frame-Options: deny\r\n"), "{resp}");
    let (status, resp) = get(p, "/-/healthy", &basic("eve", ""));
    assert_eq!(status, 200);
    assert!(
        resp.contains("\r\nStrict-Transport-Security: max-age=31536000\r\n"),
        "{resp}"
    );

    // Remove eve, add bob ("" at cost 4, like eve's).
    std::fs::write(&web, format!("basic_auth_users:\n  bob: '{EMPTY_HASH}'\n")).unwrap();
    assert_eq!(get(p, "/-/healthy", &basic("bob", "")).0, 200);
    assert_eq!(get(p, "/-/healthy", &basic("eve", "")).0, 401);
    // Broken: fail closed.
    std::fs::write(&web, "basic_auth_users:\n  bob: plaintext-password\n").unwrap();
    assert_eq!(get(p, "/-/healthy", &basic("bob", "")).0, 500);
    assert!(agent.stderr().contains("web.yml:2:8"), "{}", agent.stderr());
    // No users: open again.
    std::fs::write(&web, "basic_auth_users: {}\n").unwrap();
    assert_eq!(get(p, "/-/healthy", "").0, 200);
}

/// Runs promlet with `args` and expects it to exit with 1 within 10 s; its stderr.
fn expect_startup_failure(args: &[&str]) -> String {
    let dir = TempDir::new("webauth-fail");
    let mut child = common::ChildGuard::spawn(
        Command::new(common::promlet_bin())
            .arg(format!(
                "--web.listen-address=127.0.0.1:{}",
                common::free_port()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped()),
    );
    let t = Instant::now();
    let code = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st.code();
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "promlet kept running"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(code, Some(1), "{err}");
    err
}

/// A bad web config stops start-up with FILE:LINE:COL, and `promlet check web-config` says
/// the same.
#[test]
fn bad_web_config_is_a_positioned_startup_error() {
    let dir = TempDir::new("webauth-bad");
    let web = dir.0.join("web.yml");
    std::fs::write(&web, "basic_auth_users:\n  alice: '$2b$04$short'\n").unwrap();
    let err = expect_startup_failure(&[&format!("--web.config.file={}", web.display())]);
    let want = format!("{}:2:10: user ", web.display());
    assert!(err.contains(&want), "{err}");
    assert!(err.contains("bcrypt hash must be 60 characters"), "{err}");

    let out = Command::new(common::promlet_bin())
        .args(["check", "web-config"])
        .arg(&web)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{want}\"alice\": bcrypt hash must be 60")),
        "{stderr}"
    );
    std::fs::write(&web, users()).unwrap();
    let out = Command::new(common::promlet_bin())
        .args(["check", "web-config"])
        .arg(&web)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 2 users, TLS off"));
}

/// Without the `tls` feature, a web config asking for TLS is a clear start-up error.
#[cfg(not(feature = "tls"))]
#[test]
fn tls_server_config_needs_the_tls_feature() {
    let dir = TempDir::new("webauth-notls");
    let web = dir.0.join("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n",
    )
    .unwrap();
    let err = expect_startup_failure(&[&format!("--web.config.file={}", web.display())]);
    assert!(
        err.contains("needs a promlet built with the `tls` feature"),
        "{err}"
    );
}

#[cfg(feature = "tls")]
mod tls {
    use super::*;
    use crate::common::Prometheus;

    fn curl(args: &[&str]) -> (bool, String) {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "20",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args(args)
            .output()
            .expect("curl");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// A TLS agent with alice; the certificate files live beside web.yml (relative paths).
    fn tls_agent(tag: &str, extra_tls: &str) -> Option<(Agent, PathBuf)> {
        let dir = TempDir::new(tag);
        let (cert, _) = common::self_signed_cert(&dir.0, "server", "serverAuth")?;
        let web = dir.0.join("web.yml");
        std::fs::write(
            &web,
            format!(
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra_tls}{}",
                users()
            ),
        )
        .unwrap();
        let arg = format!("--web.config.file={}", web.display());
        let agent = Agent::start_in(dir, &[&arg]);
        Some((agent, cert))
    }

    /// curl with `--cacert` (the self-signed certificate) and basic auth gets 200 over https;
    /// without credentials 401; without the CA the handshake fails; plain http gets nothing.
    #[test]
    fn self_signed_certificate_works_with_curl() {
        let Some((agent, cert)) = tls_agent("webauth-curl", "") else {
            return;
        };
        let url = format!("https://127.0.0.1:{}/metrics", agent.port);
        let ca = cert.to_str().unwrap();
        let (ok, out) = curl(&["--cacert", ca, "-u", "alice:password", &url]);
        assert!(ok && out == "200", "{out}");
        let (ok, out) = curl(&["--cacert", ca, &url]);
        assert!(ok && out == "401", "{out}");
        let (ok, out) = curl(&["-u", "alice:password", &url]);
        assert!(!ok, "an unknown CA must fail verification: {out}");
        let (status, _) = get(agent.port, "/metrics", &basic("alice", "password"));
        assert_eq!(status, 0, "plain HTTP on the TLS port gets no HTTP answer");
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "20",
                "--cacert",
                ca,
                "-u",
                "alice:password",
                &url,
            ])
            .output()
            .unwrap();
        let metrics = String::from_utf8_lossy(&out.stdout);
        let failed: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("promlet_http_tls_handshake_errors_total "))
            .and_then(|v| v.trim().parse().ok())
            .expect("promlet_http_tls_handshake_errors_total");
        assert!(
            failed >= 2.0,
            "the unknown-CA curl and the plain request: {failed}"
        );
        // TLS 1.2 works as well as 1.3.
        let (ok, out) = curl(&[
            "--cacert",
            ca,
            "-u",
            "alice:password",
            "--tls-max",
            "1.2",
            &url,
        ]);
        assert!(ok && out == "200", "TLS 1.2: {out}");
    }

    /// A real Prometheus 3.5 scrapes promlet over https with basic auth: up == 1.
    #[test]
    fn real_prometheus_scrapes_promlet_over_https_with_basic_auth() {
        let Some((agent, cert)) = tls_agent("webauth-prom", "") else {
            return;
        };
        let extra = format!(
            "    scheme: https\n    tls_config:\n      ca_file: {}\n    basic_auth:\n      \
             username: alice\n      password: password\n",
            cert.display()
        );
        let Some(prom) = Prometheus::start(agent.port, &extra) else {
            return;
        };
        prom.wait_for("up", "1");
        prom.wait_for("promlet_threads", "1");
        let targets = prom.get("/api/v1/targets");
        assert!(
            targets.contains("\"scrapeUrl\":\"https://127.0.0.1:"),
            "{targets}"
        );
    }

    /// RequireAndVerifyClientCert: a client without a certificate is refused in the
    /// handshake; one with a certificate from client_ca_file gets through.
    #[test]
    fn mtls_rejects_a_client_without_certificate() {
        let dir = TempDir::new("webauth-mtls-client");
        let Some((client_cert, client_key)) =
            common::self_signed_cert(&dir.0, "client", "clientAuth")
        else {
            return;
        };
        let extra = format!(
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
            client_cert.display()
        );
        let Some((agent, cert)) = tls_agent("webauth-mtls", &extra) else {
            return;
        };
        let url = format!("https://127.0.0.1:{}/-/healthy", agent.port);
        let ca = cert.to_str().unwrap();
        let (ok, out) = curl(&["--cacert", ca, "-u", "alice:password", &url]);
        assert!(
            !ok && out.starts_with("000"),
            "no client certificate: {out}"
        );
        let (ok, out) = curl(&[
            "--cacert",
            ca,
            "-u",
            "alice:password",
            "--cert",
            client_cert.to_str().unwrap(),
            "--key",
            client_key.to_str().unwrap(),
            &url,
        ]);
        assert!(ok && out == "200", "with a client certificate: {out}");
        // A certificate the server does not trust is refused too.
        let (other, other_key) = common::self_signed_cert(&dir.0, "other", "clientAuth").unwrap();
        let (ok, out) = curl(&[
            "--cacert",
            ca,
            "--cert",
            other.to_str().unwrap(),
            "--key",
            other_key.to_str().unwrap(),
            &url,
        ]);
        assert!(!ok, "untrusted client certificate: {out}");
    }

    /// promlet scrapes an https promlet (`scheme: https`, `tls_config.ca_file`, basic auth):
    /// up == 1; with the wrong CA the target is down with a certificate error, and
    /// `insecure_skip_verify` makes it up again.
    #[test]
    fn promlet_scrapes_an_https_target_with_tls_config() {
        let Some((target, cert)) = tls_agent("webauth-target", "") else {
            return;
        };
        let dir = TempDir::new("webauth-scraper");
        let (wrong_ca, _) = common::self_signed_cert(&dir.0, "wrong", "serverAuth").unwrap();
        let job = |name: &str, tls: &str| {
            format!(
                "  - job_name: {name}\n    scrape_interval: 1s\n    scheme: https\n    \
                 basic_auth: {{username: alice, password: password}}\n    tls_config: {tls}\n    \
                 static_configs: [{{targets: ['127.0.0.1:{}']}}]\n",
                target.port
            )
        };
        let cfg = dir.0.join("promlet.yml");
        std::fs::write(
            &cfg,
            format!(
                "scrape_configs:\n{}{}{}",
                job("good", &format!("{{ca_file: {}}}", cert.display())),
                job("wrong", &format!("{{ca_file: {}}}", wrong_ca.display())),
                job("skip", "{insecure_skip_verify: true}"),
            ),
        )
        .unwrap();
        let arg = format!("--config.file={}", cfg.display());
        let scraper = Agent::start_in(dir, &[&arg]);
        let up = |job: &str| {
            let (_, _, body) = scraper.get(
                &format!("/api/v1/query?query=up%7Bjob%3D%22{job}%22%7D"),
                "",
            );
            String::from_utf8_lossy(&body).to_string()
        };
        let t = Instant::now();
        loop {
            let (g, w, s) = (up("good"), up("wrong"), up("skip"));
            if g.contains(",\"1\"]") && w.contains(",\"0\"]") && s.contains(",\"1\"]") {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "good {g}\nwrong {w}\nskip {s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let (_, _, targets) = scraper.get("/api/v1/targets", "");
        let targets = String::from_utf8_lossy(&targets);
        assert!(targets.contains("https://127.0.0.1:"), "{targets}");
        assert!(targets.to_lowercase().contains("certificate"), "{targets}");
    }
}
