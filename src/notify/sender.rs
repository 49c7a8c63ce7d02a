//! Outbound notification HTTP: POSTs to Alertmanagers and webhooks as tasks on the work
//! thread's executor, through [`crate::scrape::client`] — no thread of its own, and the work
//! loop never waits on the network.
//!
//! Owns: job ids, one task per (job, target) so several Alertmanagers are tried at once, the
//! bound on requests in flight ([`MAX_IN_FLIGHT`]), splitting URLs ([`HttpUrl`]), resolving host
//! names with the scrape layer's async DNS client ([`crate::scrape::dns`]; glibc's resolver
//! would block), and keeping outcomes until their owner collects them by id. Must not touch:
//! queues or retry policy (the caller decides what a failure means).
//!
//! Each request runs under its target's timeout from name resolution to the last byte of the
//! answer; a peer that accepts and then says nothing costs a socket until then, never the loop.
//! https (feature `tls`): a target carries its [`client::ClientTls`] (from `tls_config`, or
//! the system's CA bundle); without the feature https configs are refused at load.

use crate::rt::Timer;
use crate::scrape::{client, dns};
use async_executor::LocalExecutor;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

/// Requests in flight at once (Alertmanager POSTs and webhooks together). A job that would
/// exceed it is refused and the caller keeps it for later; a job larger than the bound is taken
/// when nothing else is in flight.
pub const MAX_IN_FLIGHT: usize = 16;

/// Whether outbound https works in this build; without it configs asking for https are
/// refused at load (`config.rs`, `route.rs`) instead of failing at every delivery.
pub const HTTPS_SUPPORTED: bool = cfg!(feature = "tls");

/// Largest answer read from a receiver; only an error's first bytes are kept.
const ANSWER_LIMIT: usize = 256 << 10;
const ERROR_EXCERPT: usize = 512;
/// Tasks run per [`SharedSender`] call when it drives its own executor (see [`SharedSender`]).
const SELF_TICKS: usize = 64;

/// One POST target.
#[derive(Clone, Debug)]
pub struct Target {
    pub url: String,
    /// A ready `Authorization` header value.
    pub authorization: Option<String>,
    pub timeout: Duration,
    /// For an https URL: the TLS client, or why there is none (a bad `tls_config`).
    pub tls: Result<Option<client::ClientTls>, String>,
}

impl Target {
    /// A target for `url`; for https, a TLS client from `tls` (system roots when None).
    pub fn new(
        url: String,
        authorization: Option<String>,
        timeout: Duration,
        tls: Option<&crate::scrape::config::TlsConfig>,
    ) -> Target {
        Target::with_tls(url, authorization, timeout, || {
            client::client_tls(tls.unwrap_or(&Default::default()))
        })
    }

    /// A target for `url` whose https client comes from `cache` (system roots), built once
    /// for all deliveries to it (a webhook receiver).
    pub fn cached(
        url: String,
        authorization: Option<String>,
        timeout: Duration,
        cache: &client::TlsClientCache,
    ) -> Target {
        Target::with_tls(url, authorization, timeout, || {
            cache.get(&Default::default())
        })
    }

    /// The TLS client is only asked for when `url` is https.
    fn with_tls(
        url: String,
        authorization: Option<String>,
        timeout: Duration,
        tls: impl FnOnce() -> Result<client::ClientTls, String>,
    ) -> Target {
        let tls = if url.starts_with("https://") {
            tls().map(Some)
        } else {
            Ok(None)
        };
        Target {
            url,
            authorization,
            timeout,
            tls,
        }
    }
}

/// What happened to a job.
#[derive(Debug)]
pub struct Outcome {
    pub id: u64,
    /// Targets that answered 2xx.
    pub delivered: usize,
    /// One line per target that failed: `url: reason`.
    pub errors: Vec<String>,
}

/// Bookkeeping shared with the request tasks.
#[derive(Default)]
struct Book {
    in_flight: usize,
    /// Jobs with requests still running, and how many.
    running: Vec<(Outcome, usize)>,
    done: Vec<Outcome>,
    /// Jobs finished so far, and who waits for the next one (see [`SharedSender::finished`]).
    finished: u64,
    waiter: Option<Waker>,
}

impl Book {
    fn finish(&mut self, id: u64, url: &str, result: Result<(), String>) {
        self.in_flight -= 1;
        let Some(i) = self.running.iter().position(|(o, _)| o.id == id) else {
            return;
        };
        let (out, left) = &mut self.running[i];
        match result {
            Ok(()) => out.delivered += 1,
            Err(e) => out.errors.push(format!("{url}: {e}")),
        }
        *left -= 1;
        if *left == 0 {
            let (out, _) = self.running.swap_remove(i);
            self.done.push(out);
            self.finished += 1;
            if let Some(w) = self.waiter.take() {
                w.wake();
            }
        }
    }
}

/// The sender shared by the Alertmanager notifier and the local receivers (webhooks): spawns
/// requests on an executor, hands out job ids, and keeps outcomes until their owner asks for
/// them by id.
///
/// The agent builds it [`on`](SharedSender::on) the work thread's executor. `Default` gives it
/// an executor of its own that nothing else runs, so it runs that one itself (a few tasks per
/// `submit`/`take`): tests and tools drive a notifier by polling, as the agent does.
pub struct SharedSender {
    ex: Rc<LocalExecutor<'static>>,
    runs_own_executor: bool,
    book: Rc<RefCell<Book>>,
    next_id: Cell<u64>,
}

impl Default for SharedSender {
    fn default() -> Self {
        SharedSender {
            ex: Rc::new(LocalExecutor::new()),
            runs_own_executor: true,
            book: Rc::default(),
            next_id: Cell::new(0),
        }
    }
}

impl SharedSender {
    /// Requests become tasks on `ex`, which the caller runs.
    pub fn on(ex: Rc<LocalExecutor<'static>>) -> SharedSender {
        SharedSender {
            ex,
            runs_own_executor: false,
            ..SharedSender::default()
        }
    }

    /// Starts POSTs of `body` to every target at once; returns the job's id, or None when
    /// [`MAX_IN_FLIGHT`] requests are already running (the caller retries later).
    pub fn submit(
        &self,
        targets: Vec<Target>,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Option<u64> {
        self.run_own_executor();
        let mut book = self.book.borrow_mut();
        if book.in_flight > 0 && book.in_flight + targets.len() > MAX_IN_FLIGHT {
            return None;
        }
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        let outcome = Outcome {
            id,
            delivered: 0,
            errors: Vec::new(),
        };
        if targets.is_empty() {
            book.done.push(outcome);
            return Some(id);
        }
        book.in_flight += targets.len();
        book.running.push((outcome, targets.len()));
        drop(book);
        let body: Rc<[u8]> = body.into();
        for t in targets {
            let book = self.book.clone();
            let body = body.clone();
            crate::task::spawn(&self.ex, async move {
                let r = post(&t, content_type, &body).await;
                book.borrow_mut().finish(id, &t.url, r);
            })
            .detach();
        }
        Some(id)
    }

    /// The outcome of job `id`, once all its requests are done.
    pub fn take(&self, id: u64) -> Option<Outcome> {
        self.run_own_executor();
        let mut book = self.book.borrow_mut();
        let i = book.done.iter().position(|o| o.id == id)?;
        Some(book.done.swap_remove(i))
    }

    /// Completes once a job finishes after this call: the work loop waits on it next to its
    /// timer, so an outcome is collected at once instead of at the next poll. One waiter at a
    /// time (the agent's notify loop); a newer call replaces an older one's wake-up.
    pub fn finished(&self) -> impl std::future::Future<Output = ()> + 'static {
        let book = self.book.clone();
        let seen = book.borrow().finished;
        futures_lite::future::poll_fn(move |cx| {
            let mut b = book.borrow_mut();
            if b.finished != seen {
                return Poll::Ready(());
            }
            b.waiter = Some(cx.waker().clone());
            Poll::Pending
        })
    }

    /// Requests running now.
    pub fn in_flight(&self) -> usize {
        self.book.borrow().in_flight
    }

    /// Jobs submitted so far (tests).
    pub fn jobs_submitted(&self) -> u64 {
        self.next_id.get()
    }

    fn run_own_executor(&self) {
        if self.runs_own_executor {
            // Nothing else runs this thread's reactor: collect its readiness first.
            if let Err(e) = crate::rt::poll_io() {
                crate::log::warn(&format!("notify: polling sockets failed: {e}"));
            }
            for _ in 0..SELF_TICKS {
                if !self.ex.try_tick() {
                    break;
                }
            }
        }
    }
}

/// One POST, resolution included, under `t.timeout`; Ok when the answer is 2xx.
async fn post(t: &Target, content_type: &str, body: &[u8]) -> Result<(), String> {
    let url = HttpUrl::parse(&t.url)?;
    let tls = t
        .tls
        .as_ref()
        .map_err(|e| format!("tls_config: {e}"))?
        .as_ref();
    let work = async {
        let addr = dns::resolve_host(&url.host, url.port, t.timeout).await?;
        let headers = format!("Content-Type: {content_type}\r\n");
        let req = client::Request {
            method: "POST",
            addr,
            host: &url.authority,
            target: &url.path,
            accept: "*/*",
            authorization: t.authorization.as_deref(),
            extra_headers: &headers,
            body,
            timeout: t.timeout,
            body_limit: ANSWER_LIMIT,
            gzip: false,
        };
        let (mut raw, mut answer) = (Vec::new(), Vec::new());
        let resp = client::send_with_tls(&req, tls, &mut raw, &mut answer).await?;
        if (200..300).contains(&resp.status) {
            return Ok(());
        }
        // The first bytes of the answer say why (Alertmanager explains its 400s).
        let why = String::from_utf8_lossy(&answer[..answer.len().min(ERROR_EXCERPT)]);
        Err(format!("HTTP {}: {}", resp.status, why.trim()))
    };
    futures_lite::future::or(work, async {
        Timer::after(t.timeout).await;
        // Worded as the client's own deadline (and Go's), whichever timer fires first.
        Err(format!("Post \"{}\": context deadline exceeded", t.url))
    })
    .await
}

/// An `http://` or `https://` URL split for a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    pub https: bool,
    /// `host[:port]` as written: the `Host:` header.
    pub authority: String,
    /// The host without brackets (an IPv6 literal stays a literal).
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`; a fragment is dropped.
    pub path: String,
}

impl HttpUrl {
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        let bad = |why: &str| Err(format!("url {url:?}: {why}"));
        if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return bad("contains spaces or control characters");
        }
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        let (https, rest) = if lower.starts_with("http://") {
            (false, &url[7..])
        } else if lower.starts_with("https://") {
            (true, &url[8..])
        } else {
            return bad("must start with http:// or https://");
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.contains('@') {
            return bad("user info in a url is not supported (use basic_auth)");
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let Some((h, after)) = v6.split_once(']') else {
                    return bad("unclosed [ in the host");
                };
                if !after.is_empty() && !after.starts_with(':') {
                    return bad("junk after the IPv6 address");
                }
                (h, after.strip_prefix(':'))
            }
            None => match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            },
        };
        if host.is_empty() {
            return bad("no host");
        }
        let port = match port {
            None => {
                if https {
                    443
                } else {
                    80
                }
            }
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return bad("bad port"),
            },
        };
        let path = path.split('#').next().unwrap_or("");
        let path = match path.chars().next() {
            None => "/".to_string(),
            Some('?') => format!("/{path}"),
            Some(_) => path.to_string(),
        };
        Ok(HttpUrl {
            https,
            authority: authority.to_string(),
            host: host.to_string(),
            port,
            path,
        })
    }
}

/// `Basic base64(user:pass)`.
pub fn basic_authorization(user: &str, pass: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{user}:{pass}");
    let mut out = String::from("Basic ");
    for chunk in raw.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Instant;

    fn target(url: String, timeout_ms: u64) -> Target {
        Target::new(url, None, Duration::from_millis(timeout_ms), None)
    }

    /// Polls `s` for job `id` for up to 5 s; also returns how long it took.
    fn wait(s: &SharedSender, id: u64) -> (Outcome, Duration) {
        let start = Instant::now();
        loop {
            if let Some(o) = s.take(id) {
                return (o, start.elapsed());
            }
            assert!(start.elapsed() < Duration::from_secs(5), "no outcome");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Reads one request head and body (by Content-Length) from `c`.
    fn read_request(c: &mut std::net::TcpStream) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some(head_end) = text.find("\r\n\r\n") {
                let len: usize = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if got.len() >= head_end + 4 + len {
                    return text;
                }
            }
        }
    }

    #[test]
    fn basic_authorization_is_rfc7617_base64() {
        assert_eq!(
            basic_authorization("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(basic_authorization("a", ""), "Basic YTo=");
        assert_eq!(basic_authorization("ab", "c"), "Basic YWI6Yw==");
    }

    #[test]
    fn refused_connection_is_an_error_outcome_not_a_hang() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s = SharedSender::default();
        let url = format!("http://127.0.0.1:{port}/api/v2/alerts");
        let id = s.submit(vec![target(url, 2000)], "application/json", b"[]".to_vec());
        let (out, _) = wait(&s, id.unwrap());
        assert_eq!((out.delivered, out.errors.len()), (0, 1));
        assert!(out.errors[0].contains("dial tcp"), "{:?}", out.errors);
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn a_peer_that_never_answers_fails_at_the_timeout() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let s = SharedSender::default();
        let id = s.submit(vec![target(url, 300)], "application/json", b"{}".to_vec());
        let (out, took) = wait(&s, id.unwrap());
        assert_eq!(out.delivered, 0);
        assert!(out.errors[0].contains("deadline"), "{:?}", out.errors);
        assert!(took < Duration::from_millis(1500), "{took:?}");
        drop(l);
    }

    /// Two Alertmanagers that each answer only once both have a request: sequential POSTs
    /// would time out on the first.
    #[test]
    fn every_target_of_a_job_is_posted_at_once_with_headers_and_body() {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let mut urls = Vec::new();
        let mut servers = Vec::new();
        for status in ["200 OK", "400 Bad Request"] {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            urls.push(format!(
                "http://localhost:{}/am/api/v2/alerts",
                l.local_addr().unwrap().port()
            ));
            let b = barrier.clone();
            servers.push(std::thread::spawn(move || {
                let (mut c, _) = l.accept().unwrap();
                let req = read_request(&mut c);
                b.wait();
                let body = "bad alert";
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                c.write_all(resp.as_bytes()).unwrap();
                req
            }));
        }
        let s = SharedSender::default();
        let targets = urls
            .iter()
            .map(|u| Target {
                authorization: Some("Basic YTo=".into()),
                ..target(u.clone(), 3000)
            })
            .collect();
        let id = s
            .submit(targets, "application/json", b"[{}]".to_vec())
            .unwrap();
        let (out, _) = wait(&s, id);
        assert_eq!(out.delivered, 1, "{:?}", out.errors);
        assert_eq!(out.errors.len(), 1);
        assert!(
            out.errors[0].ends_with("HTTP 400: bad alert"),
            "{:?}",
            out.errors
        );
        for s in servers {
            let req = s.join().unwrap();
            assert!(
                req.starts_with("POST /am/api/v2/alerts HTTP/1.1\r\n"),
                "{req}"
            );
            for h in [
                "Host: localhost:",
                "Content-Type: application/json\r\n",
                "Authorization: Basic YTo=\r\n",
                "Content-Length: 4\r\n",
            ] {
                assert!(req.contains(h), "{h} not in {req}");
            }
            assert!(req.ends_with("\r\n\r\n[{}]"), "{req}");
        }
    }

    #[test]
    fn finished_wakes_its_waiter_when_a_job_ends() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        let ex = Rc::new(LocalExecutor::new());
        let s = SharedSender::on(ex.clone());
        let start = Instant::now();
        let id = s
            .submit(vec![target(url, 200)], "text/plain", Vec::new())
            .unwrap();
        let done = s.finished();
        // Far longer than the request's timeout: only the job's end can finish this.
        let timer = async {
            Timer::after(Duration::from_secs(10)).await;
        };
        crate::rt::block_on(ex.run(futures_lite::future::or(done, timer)));
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(s.take(id).unwrap().errors.len(), 1);
        drop(l);
    }

    #[test]
    fn requests_in_flight_are_bounded() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        let s = SharedSender::default();
        let many = vec![target(url.clone(), 500); MAX_IN_FLIGHT];
        let first = s.submit(many, "application/json", Vec::new()).unwrap();
        assert_eq!(s.in_flight(), MAX_IN_FLIGHT);
        assert_eq!(
            s.submit(
                vec![target(url.clone(), 500)],
                "application/json",
                Vec::new()
            ),
            None
        );
        let (out, _) = wait(&s, first);
        assert_eq!(out.errors.len(), MAX_IN_FLIGHT);
        assert!(s
            .submit(vec![target(url, 500)], "application/json", Vec::new())
            .is_some());
        drop(l);
    }

    #[test]
    fn urls_split_into_authority_host_port_and_path() {
        let u = HttpUrl::parse("http://am.lan:9093/x/api?a=1#frag").unwrap();
        assert_eq!(
            (
                u.https,
                u.authority.as_str(),
                u.host.as_str(),
                u.port,
                u.path.as_str()
            ),
            (false, "am.lan:9093", "am.lan", 9093, "/x/api?a=1")
        );
        let u = HttpUrl::parse("HTTPS://[::1]?q").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.path.as_str()),
            (true, "::1", 443, "/?q")
        );
        assert_eq!(HttpUrl::parse("http://h").unwrap().port, 80);
        for bad in [
            "ftp://h/",
            "http://",
            "http://h:99999/",
            "http://h:0/",
            "http://u:p@h/",
            "http://h/a b",
            "http://h/\r\nX-Injected: 1",
            "http://[::1/",
            "http://[::1]x/",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
