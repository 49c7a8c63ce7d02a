//! Real processes the integration tests start: promlet itself ([`Agent`]) and Prometheus 3.5
//! ([`Prometheus`]), each on a free port in its own [`TempDir`], killed on drop.

use super::{self as common, ChildGuard};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A temp directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("promlet-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

/// A `TempDir` reads as its path, so tests pass `&dir` or call `dir.join(..)` directly.
impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for TempDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for TempDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running promlet on a free port, with its own data dir; killed on drop.
pub struct Agent {
    pub child: ChildGuard,
    pub port: u16,
    /// Kept for its Drop: the data dir and logs go with the agent.
    _dir: TempDir,
    stderr_path: PathBuf,
}

impl Agent {
    pub fn start(args: &[&str]) -> Agent {
        let dir = TempDir::new("agent");
        Agent::start_in(dir, args)
    }

    pub fn start_in(dir: TempDir, args: &[&str]) -> Agent {
        let port = common::free_port();
        let stderr_path = dir.0.join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let child = ChildGuard::spawn(
            Command::new(common::promlet_bin())
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.0.join("data").display()
                ))
                .args(args)
                .stdout(Stdio::null())
                .stderr(stderr),
        );
        assert!(
            common::wait_for_port(port),
            "promlet did not start listening"
        );
        Agent {
            child,
            port,
            _dir: dir,
            stderr_path,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Stops the process (killing it if still running) and hands back its directory, so a
    /// test can start the agent again on the same data.
    pub fn into_dir(self) -> TempDir {
        drop(self.child);
        self._dir
    }

    pub fn get(&self, path: &str, headers: &str) -> (u16, String, Vec<u8>) {
        common::http_get(self.port, path, headers)
    }

    pub fn metrics(&self) -> String {
        let (status, _, body) = self.get("/metrics", "");
        assert_eq!(status, 200);
        String::from_utf8(body).unwrap()
    }

    /// The value of an unlabelled sample in the text exposition.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
    }

    pub fn request(&self, method: &str, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status = out
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, out)
    }

    /// A field of /proc/<pid>/status, in its first unit (kB for memory).
    pub fn status_field(&self, field: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/<pid>/status"))
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit; its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let t0 = Instant::now();
        while t0.elapsed() < within {
            if let Some(st) = self.child.0.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Polls until `f` holds (up to 5 s).
    pub fn eventually(&self, what: &str, f: impl Fn(&Agent) -> bool) {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if f(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for: {what}\nstderr:\n{}", self.stderr());
    }
}

/// A real Prometheus 3.5 on a free port with its own directory; killed on drop.
pub struct Prometheus {
    _child: ChildGuard,
    pub port: u16,
    /// Its working directory: prometheus.yml, data/, and whatever the test put there.
    pub dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus with a 1 s scrape of `127.0.0.1:target`; `scrape_extra` is appended
    /// to the scrape config (indented four spaces). None (a loud skip) without the binary.
    pub fn start(target: u16, scrape_extra: &str) -> Option<Prometheus> {
        Prometheus::launch(
            &format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: promlet\n    \
                 static_configs:\n      - targets: ['127.0.0.1:{target}']\n{scrape_extra}"
            ),
            &[],
        )
    }

    /// Starts Prometheus in a fresh directory with `config` as its prometheus.yml.
    pub fn launch(config: &str, args: &[&str]) -> Option<Prometheus> {
        Prometheus::launch_in(TempDir::new("prom"), config, args)
    }

    /// Starts Prometheus in `dir` (files the test put there resolve relative to it) with
    /// `config` as its prometheus.yml, storage in `dir/data`, and `args` after those flags.
    /// Returns once it listens; it may still answer 503 (see [`Prometheus::wait_ready`]).
    /// None (a loud skip) without the binary.
    pub fn launch_in(dir: TempDir, config: &str, args: &[&str]) -> Option<Prometheus> {
        let prometheus = common::stack_bin("prometheus")?;
        std::fs::write(dir.0.join("prometheus.yml"), config).unwrap();
        let port = common::free_port();
        let child = ChildGuard::spawn(
            Command::new(prometheus)
                .current_dir(&dir.0)
                .arg("--config.file=prometheus.yml")
                .arg("--storage.tsdb.path=data")
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        assert!(common::wait_for_port(port), "prometheus did not start");
        Some(Prometheus {
            _child: child,
            port,
            dir,
        })
    }

    /// Waits (up to 30 s) until /-/ready answers 200 (plain http only).
    pub fn wait_ready(&self) {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if common::http_get(self.port, "/-/ready", "").0 == 200 {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("prometheus on port {} did not become ready", self.port);
    }

    /// GET `path`; "STATUS BODY".
    pub fn get(&self, path: &str) -> String {
        let (status, _, body) = common::http_get(self.port, path, "");
        format!("{status} {}", String::from_utf8_lossy(&body))
    }

    /// An instant query (the expression must need no URL escaping); "STATUS BODY".
    pub fn query(&self, q: &str) -> String {
        self.get(&format!("/api/v1/query?query={q}"))
    }

    /// Waits (up to 30 s) until `q` returns a sample with value `v`. Prometheus answers 503
    /// while it is still starting; this waits that out.
    pub fn wait_for(&self, q: &str, v: &str) {
        let t0 = Instant::now();
        let mut last = String::new();
        while t0.elapsed() < Duration::from_secs(30) {
            last = self.query(q);
            if last.contains("\"value\":[") && last.contains(&format!(",\"{v}\"]")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "{q} never became {v}: {last}\ntargets: {}",
            self.get("/api/v1/targets")
        );
    }
}
