//! Helpers shared by the integration tests: where test data and the real Prometheus stack
//! live, free ports, child processes that die with the test.
#![allow(dead_code)]

pub mod alloc_counter;
pub mod exposition;
pub mod node_fixtures;
pub mod procs;

#[allow(unused_imports)] // benches include this module without using these
pub use procs::{Agent, Prometheus, TempDir};

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// True when running under CI, where missing data or components are failures.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Reports a missing prerequisite: a failure under CI, a loud skip elsewhere. Returns `None`
/// so callers can `let Some(x) = ... else { return };`.
pub fn missing<T>(what: &str) -> Option<T> {
    if in_ci() {
        panic!("CI=true and a test prerequisite is missing: {what}");
    }
    eprintln!("SKIPPED: {what}");
    None
}

/// The shared test-data directory: `$PROMLET_SHARED`, else `../shared` beside the checkout.
pub fn shared_dir(sub: &str) -> Option<PathBuf> {
    let base = std::env::var_os("PROMLET_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared"));
    let p = base.join(sub);
    if p.exists() {
        Some(p)
    } else {
        missing(&format!(
            "test data {} (set PROMLET_SHARED to the folder holding {sub})",
            p.display()
        ))
    }
}

/// A binary of the real Prometheus stack: `$PROMLET_STACK_DIR/bin/NAME`, default
/// `<repo>/.stack/bin/NAME` (installed by `scripts/install-stack.sh`).
pub fn stack_bin(name: &str) -> Option<PathBuf> {
    let base = std::env::var_os("PROMLET_STACK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".stack"));
    let p = base.join("bin").join(name);
    if p.is_file() {
        Some(p)
    } else {
        missing(&format!(
            "{} (run scripts/install-stack.sh or set PROMLET_STACK_DIR)",
            p.display()
        ))
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The promlet binary built for this test run.
pub fn promlet_bin() -> &'static Path {
    // The embedded default configuration probes this machine's default gateway and
    // nameservers; no test may (only loopback is ours). Every promlet a test starts inherits it.
    std::env::set_var("PROMLET_UPLINK_PROBES", "off");
    Path::new(env!("CARGO_BIN_EXE_promlet"))
}

/// A child process killed (by PID) when dropped.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    pub fn spawn(cmd: &mut Command) -> ChildGuard {
        ChildGuard(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}")),
        )
    }
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something accepts TCP connections on `port` (up to ~10 s).
pub fn wait_for_port(port: u16) -> bool {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

/// A plain HTTP/1.1 GET over a fresh connection; returns (status, headers, body).
pub fn http_get(port: u16, path: &str, extra_headers: &str) -> (u16, String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra_headers}\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut body = buf[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let n =
            usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap().trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[nl + 2 + n + 2..];
    }
    out
}

/// A self-signed certificate for 127.0.0.1 and localhost (CA:FALSE: webpki refuses a CA
/// certificate as the peer's own) with the extended key `usage` (`serverAuth`, `clientAuth`)
/// and its key, made by the openssl CLI in `dir`; None (a failure in CI) without openssl.
#[cfg(feature = "tls")]
pub fn self_signed_cert(dir: &Path, name: &str, usage: &str) -> Option<(PathBuf, PathBuf)> {
    if Command::new("openssl").arg("version").output().is_err() {
        return missing("the openssl CLI (apt-get install openssl)");
    }
    let (crt, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", &format!("extendedKeyUsage={usage}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some((crt, key))
}
