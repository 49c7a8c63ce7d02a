//! The HTTP/1.1 wire protocol: accepting, reading requests under limits, writing responses.
//!
//! Every connection is a task on a `LocalExecutor` that [`serve`] runs inside the caller's
//! future, so the server adds no thread. Bounds, each a field of [`Limits`]:
//! - at most `max_connections` open connections. At the cap, a new connection first evicts the
//!   connection that has waited longest for its request bytes (slow-loris clients lose, scrapers
//!   win); only when every connection is busy answering does the newcomer get 503 and a close;
//! - a request head (request line + headers) above `max_header_bytes`, or with more than
//!   [`MAX_HEADERS`] headers, gets 431 and a close; a body above `max_body_bytes` gets 413;
//! - a request must arrive completely within `read_timeout` of its first byte (of the accept for
//!   a new connection); a keep-alive connection with no new request for `idle_timeout` is closed;
//!   writing a response must finish within `read_timeout`.
//!
//! Requests with `Transfer-Encoding` bodies get 411 (send `Content-Length`); protocol errors get
//! 400 and a close. Responses always carry `Content-Length`; HEAD gets the GET headers only.
//!
//! With the `tls` feature and [`Server::with_tls`], each accepted connection first completes a
//! TLS handshake (within `read_timeout`, evictable like a reader) in its own task; after that
//! plain and TLS connections run the same code over [`Stream`].

use super::{reason, Request, Response};
use crate::rt::{Async, Timer};
use async_executor::LocalExecutor;
use futures_lite::{future, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::pin::{pin, Pin};
use std::rc::{Rc, Weak};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Default connection cap: Prometheus's `--web.max-connections` default. Each idle
/// connection costs a task and a small buffer, so this bounds memory at a few MiB.
pub const MAX_CONNECTIONS: usize = 512;
/// Default request-head limit. Real clients send well under 2 KiB; this is nginx's default
/// large header buffer, and it caps what a header bomb can make us hold.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Headers per request; httparse needs a fixed array, and more means abuse.
pub const MAX_HEADERS: usize = 64;
/// Default body limit: form-encoded queries are small; pushed or remote-written batches of a
/// small device stay far below this.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Default time for a whole request to arrive (and for a response to be written).
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default keep-alive idle time: longer than a 1 m scrape interval so scrapers keep their
/// connection, short enough that abandoned connections go.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(75);

/// How long shutdown waits for responses being written.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The server's bounds. See the module docs for what happens at each.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub max_body_bytes: usize,
    pub read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            max_header_bytes: MAX_HEADER_BYTES,
            max_body_bytes: MAX_BODY_BYTES,
            read_timeout: READ_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// Counters the agent exposes as self-metrics.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub open: Cell<usize>,
    pub accepted: Cell<u64>,
    /// Refused with 503 at the connection cap.
    pub rejected: Cell<u64>,
    /// Closed at the cap to make room (they were waiting longest for request bytes).
    pub evicted: Cell<u64>,
    /// Closed by the read, idle or write timeout.
    pub timeouts: Cell<u64>,
    /// Answered with a 4xx by the protocol layer (400, 411, 413, 431).
    pub protocol_errors: Cell<u64>,
    /// TLS handshakes that failed or timed out (feature `tls`).
    pub tls_handshake_errors: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

/// A one-shot signal that can be fired from anywhere (a signal handler task, an HTTP handler,
/// another thread in tests) and awaited by any number of futures.
#[derive(Clone, Debug, Default)]
pub struct Shutdown(Arc<Mutex<(bool, Vec<Waker>)>>);

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    pub fn trigger(&self) {
        let wakers = {
            let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
            g.0 = true;
            std::mem::take(&mut g.1)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    pub fn is_triggered(&self) -> bool {
        self.0.lock().map(|g| g.0).unwrap_or(true)
    }

    /// Resolves once [`Shutdown::trigger`] has been called.
    pub fn wait(&self) -> impl Future<Output = ()> + '_ {
        future::poll_fn(move |cx| {
            let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if g.0 {
                return Poll::Ready(());
            }
            if !g.1.iter().any(|w| w.will_wake(cx.waker())) {
                g.1.push(cx.waker().clone());
            }
            Poll::Pending
        })
    }
}

/// Gives the rustls config for each new connection (so certificates can change while running).
#[cfg(feature = "tls")]
pub type TlsSource = Rc<dyn Fn() -> Result<Arc<rustls::ServerConfig>, String>>;

/// A connection's byte stream: plain TCP, or TLS over it. Both are `Unpin`.
enum Stream {
    Plain(Async<TcpStream>),
    #[cfg(feature = "tls")]
    Tls(Box<crate::tls::ServerStream<Async<TcpStream>>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    /// TLS: sends close_notify, then half-closes TCP; plain: half-closes TCP.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_close(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut **s).poll_close(cx),
        }
    }
}

/// A server: limits plus the counters it keeps.
pub struct Server {
    limits: Limits,
    stats: Rc<ServerStats>,
    #[cfg(feature = "tls")]
    tls: Option<TlsSource>,
}

impl Server {
    pub fn new(limits: Limits) -> Server {
        Server {
            limits,
            stats: Rc::new(ServerStats::default()),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Speak TLS on every connection, with the config `source` gives at each accept.
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, source: TlsSource) -> Server {
        self.tls = Some(source);
        self
    }

    pub fn stats(&self) -> Rc<ServerStats> {
        self.stats.clone()
    }

    /// Serves `listener` until `shutdown` resolves; open connections are then dropped.
    pub async fn serve<H>(
        &self,
        listener: Async<TcpListener>,
        handler: H,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()>
    where
        H: Fn(&Request) -> Response + 'static,
    {
        let ex = LocalExecutor::new();
        let handler: Rc<dyn Fn(&Request) -> Response> = Rc::new(handler);
        let table = Rc::new(ConnTable::default());
        let mut shutdown = pin!(shutdown);
        let mut last_accept_error: Option<Instant> = None;
        // Responses go out in one write each: no Nagle delay. Set once on the listener, as
        // Linux copies TCP options into every accepted socket (one setsockopt per connection
        // saved; `accepted_sockets_inherit_nodelay_from_the_listener` checks it).
        let _ = rustix::net::sockopt::set_tcp_nodelay(listener.get_ref(), true);
        ex.run(async {
            // One sweeper for the server's lifetime (its timer and armed deadline persist).
            let mut sweeper = pin!(sweep(&table));
            loop {
                let accepted = future::or(
                    future::or(async { Some(accept(&listener).await) }, async {
                        (&mut shutdown).await;
                        None
                    }),
                    async {
                        (&mut sweeper).await;
                        None
                    },
                )
                .await;
                let stream = match accepted {
                    None => break,
                    Some(Ok(stream)) => stream,
                    Some(Err(e)) => {
                        // Out of file descriptors (the collectors and the store hold some too):
                        // free one by evicting the longest-waiting idle reader, as at the cap,
                        // so a slow-client flood cannot lock out everyone else.
                        if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
                            && table.evict_oldest_reader(&self.stats)
                        {
                            Timer::after(Duration::from_millis(1)).await;
                            continue;
                        }
                        // Other errors: log at most once a second, back off briefly so a
                        // full fd table does not spin the work thread.
                        if last_accept_error.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                            crate::log::warn(&format!("http: accept failed: {e}"));
                            last_accept_error = Some(Instant::now());
                        }
                        Timer::after(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                bump(&self.stats.accepted);
                let Some(state) = table.admit(self.limits.max_connections, &self.stats) else {
                    bump(&self.stats.rejected);
                    #[cfg(feature = "tls")]
                    if self.tls.is_some() {
                        continue; // no handshake for a connection we refuse
                    }
                    // Non-blocking best effort: a 503 fits in any socket buffer.
                    let _ = stream.get_ref().write(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
                          Content-Length: 24\r\nConnection: close\r\n\r\ntoo many open connections",
                    );
                    continue;
                };
                let limits = self.limits.clone();
                let stats = self.stats.clone();
                let handler = handler.clone();
                let table = table.clone();
                #[cfg(feature = "tls")]
                let tls = self.tls.clone();
                crate::task::spawn(&ex, async move {
                    #[cfg(feature = "tls")]
                    let stream = match tls {
                        None => Stream::Plain(stream),
                        Some(source) => match handshake(stream, &source, &limits, &state.0).await {
                            Some(s) => s,
                            None => {
                                bump(&stats.tls_handshake_errors);
                                return;
                            }
                        },
                    };
                    #[cfg(not(feature = "tls"))]
                    let stream = Stream::Plain(stream);
                    let conn = Conn {
                        stream,
                        table,
                        limits,
                        stats,
                        state,
                        handler,
                    };
                    conn.run().await
                })
                .detach();
            }
            // Let responses already being written finish (the "Goodbye" of /-/quit, a scrape
            // in flight); idle and half-read connections are simply dropped.
            let grace = Instant::now() + SHUTDOWN_GRACE;
            while table.any_answering() && Instant::now() < grace {
                Timer::after(Duration::from_millis(10)).await;
            }
            Ok(())
        })
        .await
    }
}

/// Enforces the read deadlines of `table`'s connections (see [`ConnTable`]); never returns.
async fn sweep(table: &ConnTable) {
    let mut timer = Timer::never();
    loop {
        future::poll_fn(|cx| {
            if table.nudged.replace(false) {
                return Poll::Ready(());
            }
            let mut slot = table.sweeper.borrow_mut();
            if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *slot = Some(cx.waker().clone());
            }
            Pin::new(&mut timer).poll(cx).map(|_| ())
        })
        .await;
        let next = table.expire(Instant::now());
        table.armed.set(next);
        match next {
            Some(at) => timer.set_at(at),
            None => timer = Timer::never(),
        }
    }
}

/// The next connection on `listener`: `accept4` with `SOCK_NONBLOCK`, so the stream is
/// registered without another `ioctl`. `read_with` retries only after the reactor reports the
/// listener ready again (this loop runs in the executor's main future, which is polled
/// whenever any connection task is woken: those polls cost no syscall).
async fn accept(listener: &Async<TcpListener>) -> io::Result<Async<TcpStream>> {
    use rustix::net::SocketFlags;
    let fd = listener
        .read_with(|l| {
            rustix::net::accept_with(l, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)
                .map_err(io::Error::from)
        })
        .await?;
    Async::new_nonblocking(TcpStream::from(fd))
}

/// Completes the TLS handshake within the read timeout (evictable meanwhile); None if it
/// failed, timed out or the connection was evicted.
#[cfg(feature = "tls")]
async fn handshake(
    tcp: Async<TcpStream>,
    source: &TlsSource,
    limits: &Limits,
    state: &ConnState,
) -> Option<Stream> {
    let config = match source() {
        Ok(c) => c,
        Err(e) => {
            crate::log::error(&format!(
                "http: TLS settings do not load, refusing connection: {e}"
            ));
            return None;
        }
    };
    let accept = async {
        crate::tls::TlsAcceptor::from(config)
            .accept(tcp)
            .await
            .map_err(|e| crate::log::debug(&format!("http: TLS handshake failed: {e}")))
            .ok()
    };
    let timeout = async {
        Timer::after(limits.read_timeout).await;
        None
    };
    let killed = async {
        state.killed().await;
        None
    };
    future::or(accept, future::or(timeout, killed))
        .await
        .map(|s| Stream::Tls(Box::new(s)))
}

/// Serves `listener` with `handler` under `limits` until `shutdown` resolves.
pub async fn serve<H>(
    listener: Async<TcpListener>,
    handler: H,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    H: Fn(&Request) -> Response + 'static,
{
    Server::new(limits).serve(listener, handler, shutdown).await
}

/// Per-connection state the table can see: what the connection is doing and since when.
#[derive(Debug)]
struct ConnState {
    /// True while waiting for request bytes (evictable), false while answering.
    reading: Cell<bool>,
    since: Cell<Instant>,
    killed: Cell<bool>,
    /// When the current read gives up; watched by the table's sweeper (see [`ConnTable`]).
    deadline: Cell<Option<Instant>>,
    /// Set by the sweeper when `deadline` passed; taken by the read that was waiting.
    timed_out: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl ConnState {
    fn kill(&self) {
        self.killed.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    fn time_out(&self) {
        self.timed_out.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Resolves when the table evicts this connection or its read deadline passes.
    fn interrupted(&self) -> impl Future<Output = ()> + '_ {
        future::poll_fn(move |cx| {
            if self.killed.get() || self.timed_out.get() {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }

    fn set_phase(&self, reading: bool) {
        self.reading.set(reading);
        self.since.set(Instant::now());
    }

    /// Resolves when the table evicts this connection.
    #[cfg(feature = "tls")]
    fn killed(&self) -> impl Future<Output = ()> + '_ {
        future::poll_fn(move |cx| {
            if self.killed.get() {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

/// The open connections, weakly held: a connection's task owns its state and the count drops
/// when the task ends.
///
/// Read deadlines are enforced by one sweeper ([`sweep`]) for all connections instead of a
/// timer per read: with async-io (used before src/rt.rs) every timer a read registered was a
/// wake-up of its reactor thread (eventfd write, timerfd re-arm). `rt::Timer` costs no syscall,
/// but one timer still beats a map insert and removal per read. The sweeper sleeps until the
/// earliest deadline it knows of and is nudged only when a read needs an earlier one, which in
/// steady state (equal timeouts) never happens.
#[derive(Default)]
struct ConnTable {
    conns: RefCell<Vec<Weak<ConnState>>>,
    /// The deadline the sweeper sleeps until (may belong to a connection already gone).
    armed: Cell<Option<Instant>>,
    nudged: Cell<bool>,
    sweeper: RefCell<Option<Waker>>,
}

/// Decrements the open count when a connection task ends (or is dropped at shutdown).
struct OpenGuard(Rc<ServerStats>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get().saturating_sub(1));
    }
}

impl ConnTable {
    /// Gives `state` a read deadline, waking the sweeper if it sleeps past it.
    fn watch(&self, state: &ConnState, deadline: Instant) {
        state.deadline.set(Some(deadline));
        if self.armed.get().is_none_or(|armed| deadline < armed) {
            self.armed.set(Some(deadline));
            self.nudged.set(true);
            if let Some(w) = self.sweeper.borrow_mut().take() {
                w.wake();
            }
        }
    }

    /// Times out the connections whose deadline passed; the earliest deadline still ahead.
    fn expire(&self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for c in self.conns.borrow().iter().filter_map(Weak::upgrade) {
            match c.deadline.get() {
                Some(d) if d <= now => {
                    c.deadline.set(None);
                    c.time_out();
                }
                Some(d) => next = Some(next.map_or(d, |n| n.min(d))),
                None => {}
            }
        }
        next
    }

    fn any_answering(&self) -> bool {
        self.conns
            .borrow()
            .iter()
            .filter_map(Weak::upgrade)
            .any(|c| !c.reading.get() && !c.killed.get())
    }

    /// Kills the connection that has waited longest for request bytes; false if none is idle.
    fn evict_oldest_reader(&self, stats: &Rc<ServerStats>) -> bool {
        let mut conns = self.conns.borrow_mut();
        conns.retain(|w| w.upgrade().is_some_and(|c| !c.killed.get()));
        let Some((i, victim)) = conns
            .iter()
            .enumerate()
            .filter_map(|(i, w)| w.upgrade().map(|c| (i, c)))
            .filter(|(_, c)| c.reading.get())
            .min_by_key(|(_, c)| c.since.get())
        else {
            return false;
        };
        victim.kill();
        conns.swap_remove(i);
        bump(&stats.evicted);
        true
    }

    /// A slot for a new connection, evicting the longest-waiting reader at the cap; None when
    /// every connection is busy answering.
    fn admit(&self, cap: usize, stats: &Rc<ServerStats>) -> Option<(Rc<ConnState>, OpenGuard)> {
        let mut conns = self.conns.borrow_mut();
        conns.retain(|w| w.upgrade().is_some_and(|c| !c.killed.get()));
        if conns.len() >= cap {
            drop(conns);
            if !self.evict_oldest_reader(stats) {
                return None;
            }
            conns = self.conns.borrow_mut();
        }
        let state = Rc::new(ConnState {
            reading: Cell::new(true),
            since: Cell::new(Instant::now()),
            killed: Cell::new(false),
            deadline: Cell::new(None),
            timed_out: Cell::new(false),
            waker: RefCell::new(None),
        });
        conns.push(Rc::downgrade(&state));
        stats.open.set(stats.open.get() + 1);
        Some((state, OpenGuard(stats.clone())))
    }
}

struct Conn {
    stream: Stream,
    table: Rc<ConnTable>,
    limits: Limits,
    stats: Rc<ServerStats>,
    state: (Rc<ConnState>, OpenGuard),
    handler: Rc<dyn Fn(&Request) -> Response>,
}

/// Why reading stopped.
enum ReadEnd {
    Eof,
    Timeout,
    Killed,
    Error,
}

/// What parsing the buffered bytes gave.
enum Parsed {
    /// Need more bytes.
    Partial,
    /// A complete head of `len` bytes.
    Head(Head, usize),
    /// A protocol error to answer with this status, then close.
    Reject(u16, &'static str),
}

struct Head {
    method: String,
    target: String,
    minor_version: u8,
    headers: Vec<(String, String)>,
}

fn parse_head(buf: &[u8], max_header_bytes: usize) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) => {
            if buf.len() >= max_header_bytes {
                Parsed::Reject(431, "request header too large")
            } else {
                Parsed::Partial
            }
        }
        Ok(httparse::Status::Complete(len)) => {
            if len > max_header_bytes {
                return Parsed::Reject(431, "request header too large");
            }
            let head = Head {
                method: req.method.unwrap_or("").to_string(),
                target: req.path.unwrap_or("").to_string(),
                minor_version: req.version.unwrap_or(1),
                headers: req
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect(),
            };
            Parsed::Head(head, len)
        }
        Err(httparse::Error::TooManyHeaders) => Parsed::Reject(431, "too many request headers"),
        Err(_) => Parsed::Reject(400, "malformed request"),
    }
}

/// What a request head decides before its body is read: the body's length, whether the
/// connection stays open, and the routed path and query.
struct Framing {
    body_len: usize,
    expect_continue: bool,
    keep_alive: bool,
    is_head: bool,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
}

impl Framing {
    fn into_request(self, body: &[u8]) -> Request {
        Request {
            method: self.method,
            path: self.path,
            query: self.query,
            headers: self.headers,
            body: body.to_vec(),
        }
    }
}

/// Frames a parsed head, or the status and message to reject it with (then close).
fn frame(head: Head, max_body_bytes: usize) -> Result<Framing, (u16, &'static str)> {
    let header = |name: &str| {
        head.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    // Body: Content-Length only.
    if header("transfer-encoding").is_some_and(|te| !te.eq_ignore_ascii_case("identity")) {
        return Err((411, "send the body with Content-Length"));
    }
    let body_len = match header("content-length").map(|v| v.trim().parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return Err((400, "invalid Content-Length")),
    };
    if body_len > max_body_bytes {
        return Err((413, "request body too large"));
    }
    let expect_continue = header("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue"));
    // Keep-alive per RFC 9112: 1.1 unless "close", 1.0 only with "keep-alive".
    let conn_hdr = header("connection").unwrap_or("");
    let has = |tok: &str| {
        conn_hdr
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(tok))
    };
    let keep_alive = if head.minor_version == 0 {
        has("keep-alive")
    } else {
        !has("close")
    };
    // Absolute-form targets (`GET http://host/metrics`, sent through proxies) are reduced to
    // their path, as RFC 9112 §3.2.2 asks of servers.
    let target = match head
        .target
        .strip_prefix("http://")
        .or_else(|| head.target.strip_prefix("https://"))
    {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => head.target.as_str(),
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let Ok(path) = super::percent_decode(path) else {
        return Err((400, "invalid escape in request path"));
    };
    let query = query.to_string();
    Ok(Framing {
        body_len,
        expect_continue,
        keep_alive,
        is_head: head.method == "HEAD",
        method: head.method,
        path,
        query,
        headers: head.headers,
    })
}

/// The status line and headers of `resp` (with `Content-Length`), ending in the blank line.
fn encode_head(resp: &Response, keep_alive: bool) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    let _ = write!(head, "HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (n, v) in &resp.headers {
        // Values come from our own handlers, but never let one split the response.
        if v.contains(['\r', '\n']) || n.contains(['\r', '\n', ':']) {
            continue;
        }
        let _ = write!(head, "{n}: {v}\r\n");
    }
    let _ = write!(head, "Content-Length: {}\r\n", resp.body.len());
    if !keep_alive {
        head.extend_from_slice(b"Connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// The connection loop without the socket: answers every complete request in `input` the way
/// a connection would (pipelined, keep-alive, protocol errors close) and returns the bytes it
/// would write. An incomplete last request is left unanswered, as a connection would wait for
/// it. Lets the fuzzer and tests drive request handling from bytes.
pub fn answer_bytes(
    input: &[u8],
    limits: &Limits,
    handler: &dyn Fn(&Request) -> Response,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = input;
    while !buf.is_empty() {
        let (head, head_len) = match parse_head(buf, limits.max_header_bytes) {
            Parsed::Partial => break,
            Parsed::Head(h, len) => (h, len),
            Parsed::Reject(status, msg) => {
                let resp = Response::text(status, format!("{msg}\n"));
                out.extend_from_slice(&encode_head(&resp, false));
                out.extend_from_slice(&resp.body);
                break;
            }
        };
        let framed = match frame(head, limits.max_body_bytes) {
            Ok(f) => f,
            Err((status, msg)) => {
                let resp = Response::text(status, format!("{msg}\n"));
                out.extend_from_slice(&encode_head(&resp, false));
                out.extend_from_slice(&resp.body);
                break;
            }
        };
        let end = head_len + framed.body_len;
        if buf.len() < end {
            break;
        }
        let (keep_alive, is_head) = (framed.keep_alive, framed.is_head);
        let req = framed.into_request(&buf[head_len..end]);
        buf = &buf[end..];
        let resp = handler(&req);
        out.extend_from_slice(&encode_head(&resp, keep_alive));
        if !is_head {
            out.extend_from_slice(&resp.body);
        }
        if !keep_alive {
            break;
        }
    }
    out
}

impl Conn {
    async fn run(mut self) {
        let mut buf: Vec<u8> = Vec::new();
        let mut first = true;
        loop {
            // Wait for the start of the next request: the read timeout for a new connection,
            // the idle timeout between keep-alive requests.
            self.state.0.set_phase(true);
            let start_wait = if first {
                self.limits.read_timeout
            } else {
                self.limits.idle_timeout
            };
            first = false;
            let mut deadline = Instant::now() + start_wait;
            let mut started = !buf.is_empty();
            if started {
                deadline = Instant::now() + self.limits.read_timeout;
            }
            let (head, head_len) = loop {
                if started {
                    match parse_head(&buf, self.limits.max_header_bytes) {
                        Parsed::Partial => {}
                        Parsed::Head(h, len) => break (h, len),
                        Parsed::Reject(status, msg) => {
                            bump(&self.stats.protocol_errors);
                            self.reply_error(status, msg).await;
                            return;
                        }
                    }
                }
                match self.read_more(&mut buf, deadline).await {
                    Ok(()) => {
                        if !started {
                            started = true;
                            deadline = Instant::now() + self.limits.read_timeout;
                        }
                    }
                    Err(ReadEnd::Timeout) => {
                        bump(&self.stats.timeouts);
                        if started {
                            self.reply_error(408, "request timeout").await;
                        }
                        return;
                    }
                    Err(ReadEnd::Eof | ReadEnd::Killed | ReadEnd::Error) => return,
                }
            };

            let framed = match frame(head, self.limits.max_body_bytes) {
                Ok(f) => f,
                Err((status, msg)) => {
                    bump(&self.stats.protocol_errors);
                    self.reply_error(status, msg).await;
                    return;
                }
            };
            let body_len = framed.body_len;
            if framed.expect_continue
                && buf.len() < head_len + body_len
                && self
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\n", deadline)
                    .await
                    .is_err()
            {
                return;
            }
            while buf.len() < head_len + body_len {
                match self.read_more(&mut buf, deadline).await {
                    Ok(()) => {}
                    Err(ReadEnd::Timeout) => {
                        bump(&self.stats.timeouts);
                        self.reply_error(408, "request timeout").await;
                        return;
                    }
                    Err(_) => return,
                }
            }
            let (keep_alive, is_head) = (framed.keep_alive, framed.is_head);
            let req = framed.into_request(&buf[head_len..head_len + body_len]);
            buf.drain(..head_len + body_len);

            self.state.0.set_phase(false);
            let mut resp = (self.handler)(&req);
            drop(req);
            if let Some(later) = resp.deferred.take().and_then(|d| d.take()) {
                resp = later.await;
            }
            let deadline = Instant::now() + self.limits.read_timeout;
            if self
                .write_response(&resp, is_head, keep_alive, deadline)
                .await
                .is_err()
                || !keep_alive
            {
                return;
            }
            // Keep the buffer small between requests on long-lived connections.
            if buf.is_empty() && buf.capacity() > 4096 {
                buf = Vec::new();
            }
        }
    }

    /// Reads more bytes into `buf`, racing the deadline and eviction.
    async fn read_more(&mut self, buf: &mut Vec<u8>, deadline: Instant) -> Result<(), ReadEnd> {
        // Grow by the buffer's size (1 KiB at least, 256 KiB at most): idle and slow
        // connections hold ~1 KiB, a large body is read in few, large reads.
        let old = buf.len();
        buf.resize(old + old.clamp(1024, 256 * 1024), 0);
        let stream = &mut self.stream;
        let state = &self.state.0;
        let mut read = pin!(async {
            match stream.read(&mut buf[old..]).await {
                Ok(0) => Err(ReadEnd::Eof),
                Ok(n) => Ok(n),
                Err(_) => Err(ReadEnd::Error),
            }
        });
        // Bytes already there (the usual first read): no deadline to watch.
        let r = match future::poll_once(read.as_mut()).await {
            Some(r) => r,
            None => {
                self.table.watch(state, deadline);
                let interrupted = async {
                    state.interrupted().await;
                    if state.timed_out.replace(false) {
                        Err(ReadEnd::Timeout)
                    } else {
                        Err(ReadEnd::Killed)
                    }
                };
                let r = future::or(read, interrupted).await;
                state.deadline.set(None);
                r
            }
        };
        let n = *r.as_ref().unwrap_or(&0);
        buf.truncate(old + n);
        r.map(|_| ())
    }

    async fn write_all(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), ()> {
        let stream = &mut self.stream;
        let stats = &self.stats;
        let write = async {
            // flush: TLS buffers records until asked (a no-op for plain TCP).
            stream.write_all(bytes).await.map_err(|_| ())?;
            stream.flush().await.map_err(|_| ())
        };
        let timeout = async {
            Timer::at(deadline).await;
            bump(&stats.timeouts);
            Err(())
        };
        future::or(write, timeout).await
    }

    async fn write_response(
        &mut self,
        resp: &Response,
        is_head: bool,
        keep_alive: bool,
        deadline: Instant,
    ) -> Result<(), ()> {
        let mut head = encode_head(resp, keep_alive);
        if !is_head && resp.body.len() <= 16 * 1024 {
            // One write for small responses: one packet, no Nagle/delayed-ACK interplay.
            head.extend_from_slice(&resp.body);
            return self.write_all(&head, deadline).await;
        }
        self.write_all(&head, deadline).await?;
        if !is_head {
            self.write_all(&resp.body, deadline).await?;
        }
        Ok(())
    }

    /// Answers a protocol error and closes.
    async fn reply_error(&mut self, status: u16, msg: &str) {
        self.state.0.set_phase(false);
        let resp = Response::text(status, format!("{msg}\n"));
        let deadline = Instant::now() + Duration::from_secs(1).min(self.limits.read_timeout);
        let _ = self.write_response(&resp, false, false, deadline).await;
        // Half-close and let the client read the reply before the socket goes away, so it sees
        // the status instead of a reset caused by its own unread bytes.
        let stream = &mut self.stream;
        let close = async {
            let _ = stream.close().await;
        };
        future::or(close, async {
            Timer::after(Duration::from_millis(200)).await;
        })
        .await;
        let mut sink = [0u8; 512];
        let drain = async {
            let s = &mut self.stream;
            let mut total = 0usize;
            while let Ok(n) = s.read(&mut sink).await {
                total += n;
                if n == 0 || total > 64 * 1024 {
                    break;
                }
            }
        };
        future::or(drain, async {
            Timer::after(Duration::from_millis(200)).await;
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_sockets_inherit_nodelay_from_the_listener() {
        // `serve` sets TCP_NODELAY on the listener only; this is the kernel behaviour it uses.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        rustix::net::sockopt::set_tcp_nodelay(&l, true).unwrap();
        let _c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        assert!(s.nodelay().unwrap());
    }

    #[test]
    fn parse_head_reports_partial_complete_and_limits() {
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\n", 8192),
            Parsed::Partial
        ));
        match parse_head(b"GET /a?b=1 HTTP/1.0\r\nHost: x\r\n\r\nrest", 8192) {
            Parsed::Head(h, len) => {
                assert_eq!(h.target, "/a?b=1");
                assert_eq!(h.minor_version, 0);
                assert_eq!(h.headers, vec![("host".to_string(), "x".to_string())]);
                assert_eq!(len, 32);
            }
            _ => panic!("expected a complete head"),
        }
        assert!(matches!(
            parse_head(b"\x01\x02 garbage\r\n\r\n", 64),
            Parsed::Reject(400, _)
        ));
        let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(100));
        assert!(matches!(
            parse_head(long.as_bytes(), 64),
            Parsed::Reject(431, _)
        ));
    }

    #[test]
    fn answer_bytes_serves_pipelined_requests_and_stops_at_a_rejected_one() {
        let limits = Limits::default();
        let echo = |req: &Request| Response::text(200, format!("{} {}", req.method, req.path));
        let out = answer_bytes(
            b"GET /a%20b?x=1 HTTP/1.1\r\n\r\nPOST /p HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi\
              GET /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nGET /never HTTP/1.1\r\n\r\n",
            &limits,
            &echo,
        );
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("GET /a b") && out.contains("POST /p"), "{out}");
        assert!(out.contains("HTTP/1.1 411 "), "{out}");
        assert!(
            !out.contains("/never"),
            "answered after a rejected request: {out}"
        );
        // An incomplete request (body still missing) is not answered.
        let partial = answer_bytes(
            b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nab",
            &limits,
            &echo,
        );
        assert!(partial.is_empty());
    }

    #[test]
    fn shutdown_wakes_waiters_and_stays_triggered() {
        let s = Shutdown::new();
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.trigger());
        future::block_on(s.wait());
        t.join().unwrap();
        assert!(s.is_triggered());
        future::block_on(s.wait());
    }
}
