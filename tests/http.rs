//! The HTTP/1.1 server at the wire: raw request bytes in, exact reply bytes out (mini-redis
//! style), limits and timeouts. The server runs on its own thread here only because the test
//! client is blocking; in promlet it shares the work thread.

use promlet::http::{Limits, Request, Response, Router, Server, Shutdown};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

struct TestServer {
    port: u16,
    shutdown: Shutdown,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn router() -> Router {
    let mut r = Router::new();
    r.get("/hello", |_| Response::text(200, "hi"));
    r.route(&["GET", "POST"], "/echo", |req: &Request| {
        match req.params() {
            Ok(p) => {
                let s: Vec<String> = p.iter().map(|(n, v)| format!("{n}={v}")).collect();
                Response::text(200, s.join("|"))
            }
            Err(e) => Response::text(400, e.to_string()),
        }
    });
    r.get("/big", |_| Response::text(200, "x".repeat(8 << 20)));
    r
}

fn start(limits: Limits) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let shutdown = Shutdown::new();
    let sd = shutdown.clone();
    let thread = std::thread::spawn(move || {
        let listener = promlet::rt::Async::new(listener).unwrap();
        let r = router();
        let server = Server::new(limits);
        promlet::rt::block_on(server.serve(listener, move |q| r.handle(q), sd.wait())).unwrap();
    });
    TestServer {
        port,
        shutdown,
        thread: Some(thread),
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Sends `req` and reads until the server closes.
fn exchange(port: u16, req: &[u8]) -> String {
    let mut s = connect(port);
    s.write_all(req).unwrap();
    read_all(&mut s)
}

fn read_all(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads exactly one response with a Content-Length body from a kept-alive connection.
fn read_one(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while !out.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "connection closed mid-head");
        out.push(b[0]);
    }
    let head = String::from_utf8_lossy(&out).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    out.extend_from_slice(&body);
    String::from_utf8_lossy(&out).into_owned()
}

const HI: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\nhi";

/// A plain GET with `Connection: close` gets exactly one response and the close.
#[test]
fn get_with_close_gets_exact_reply_and_close() {
    let srv = start(Limits::default());
    let reply = exchange(
        srv.port,
        b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        reply,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
    );
}

/// Two pipelined requests on one connection get two replies, in order.
#[test]
fn keep_alive_serves_pipelined_requests_in_order() {
    let srv = start(Limits::default());
    let mut s = connect(srv.port);
    s.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /echo?a=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_one(&mut s), HI);
    assert!(read_one(&mut s).ends_with("Content-Length: 3\r\n\r\na=1"));
    s.write_all(b"GET /hello HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_one(&mut s), HI);
}

/// An absolute-form target is served by its path.
#[test]
fn absolute_form_target_is_reduced_to_its_path() {
    let srv = start(Limits::default());
    let r = exchange(
        srv.port,
        b"GET http://127.0.0.1/echo?x=1 HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert!(r.ends_with("\r\n\r\nx=1"), "{r}");
}

/// HEAD gets the GET headers, including its Content-Length, and no body.
#[test]
fn head_gets_headers_without_body() {
    let srv = start(Limits::default());
    let reply = exchange(srv.port, b"HEAD /hello HTTP/1.0\r\n\r\n");
    assert_eq!(
        reply,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
    );
}

/// HTTP/1.0 without keep-alive is closed after one reply.
#[test]
fn http10_closes_by_default() {
    let srv = start(Limits::default());
    let reply = exchange(srv.port, b"GET /hello HTTP/1.0\r\n\r\n");
    assert!(reply.contains("Connection: close\r\n"), "{reply}");
    assert!(reply.ends_with("\r\n\r\nhi"));
}

#[test]
fn unknown_path_is_404_and_wrong_method_is_405() {
    let srv = start(Limits::default());
    let r = exchange(srv.port, b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");
    let r = exchange(
        srv.port,
        b"DELETE /hello HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{r}");
    assert!(r.contains("\r\nAllow: GET, HEAD\r\n"), "{r}");
}

/// A form POST: body pairs first, then the query; repeated `match[]` kept in order.
#[test]
fn form_post_and_query_are_decoded_in_go_order() {
    let srv = start(Limits::default());
    let body = "match%5B%5D=up&match[]=a%7Bb%3D%22c%22%7D&q=1+%2B+2";
    let req = format!(
        "POST /echo?match[]=last HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = exchange(srv.port, req.as_bytes());
    assert!(
        r.ends_with("\r\n\r\nmatch[]=up|match[]=a{b=\"c\"}|q=1 + 2|match[]=last"),
        "{r}"
    );
}

/// curl sends `Expect: 100-continue` for larger bodies and waits for the interim reply.
#[test]
fn expect_continue_gets_interim_reply_before_body() {
    let srv = start(Limits::default());
    let mut s = connect(srv.port);
    s.write_all(
        b"POST /echo HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 3\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"a=b").unwrap();
    assert!(read_all(&mut s).ends_with("\r\n\r\na=b"));
}

/// Garbage gets 400 and a close; the server keeps serving others.
#[test]
fn garbage_gets_400_and_close() {
    let srv = start(Limits::default());
    let r = exchange(
        srv.port,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{r}");
    assert!(r.contains("Connection: close\r\n"));
    let r = exchange(srv.port, b"GET /he llo HTTP/1.1\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
    let r = exchange(srv.port, b"GET /%zz HTTP/1.1\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
    assert!(exchange(srv.port, b"GET /hello HTTP/1.0\r\n\r\n").ends_with("hi"));
}

/// A header bomb is cut at the limit with 431; a 1 MiB header does not make the server hold 1 MiB.
#[test]
fn oversized_header_gets_431() {
    let srv = start(Limits::default());
    let mut s = connect(srv.port);
    s.write_all(b"GET /hello HTTP/1.1\r\nX-Bomb: ").unwrap();
    // The server answers once it has seen 8 KiB; the rest of our write may fail with a reset.
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..16 {
        if s.write_all(&chunk).is_err() {
            break;
        }
    }
    let r = read_all(&mut s);
    assert!(
        r.is_empty() || r.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{r}"
    );
    let too_many: String = (0..100).map(|i| format!("X-{i}: v\r\n")).collect();
    let r = exchange(
        srv.port,
        format!("GET /hello HTTP/1.1\r\n{too_many}\r\n").as_bytes(),
    );
    assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
    assert!(exchange(srv.port, b"GET /hello HTTP/1.0\r\n\r\n").ends_with("hi"));
}

#[test]
fn oversized_body_gets_413_and_chunked_body_gets_411() {
    let srv = start(Limits {
        max_body_bytes: 100,
        ..Limits::default()
    });
    let r = exchange(
        srv.port,
        b"POST /echo HTTP/1.1\r\nContent-Length: 101\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 413 Content Too Large\r\n"), "{r}");
    let r = exchange(
        srv.port,
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\na=b\r\n0\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 411 Length Required\r\n"), "{r}");
    let r = exchange(
        srv.port,
        b"POST /echo HTTP/1.1\r\nContent-Length: x\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
}

/// A request that stops half-way gets 408 after the read timeout; an idle keep-alive
/// connection is closed after the idle timeout.
#[test]
fn read_and_idle_timeouts_close_connections() {
    let srv = start(Limits {
        read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    });
    let t0 = Instant::now();
    let r = exchange(srv.port, b"GET /hello HTTP/1.1\r\nHost:");
    assert!(r.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{r}");
    assert!(t0.elapsed() >= Duration::from_millis(250));

    let mut s = connect(srv.port);
    s.write_all(b"GET /hello HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_one(&mut s), HI);
    let t0 = Instant::now();
    let mut b = [0u8; 1];
    assert_eq!(
        s.read(&mut b).unwrap(),
        0,
        "server should close the idle connection"
    );
    let idle = t0.elapsed();
    assert!(
        idle >= Duration::from_millis(200) && idle < Duration::from_secs(5),
        "{idle:?}"
    );
}

/// Deadlines are watched by one sweeper for all connections: a short read deadline that
/// arrives while the sweeper sleeps until a long idle deadline still fires on time, and the
/// idle connection is left alone until its own deadline.
#[test]
fn a_short_read_deadline_fires_while_a_long_idle_one_is_pending() {
    let srv = start(Limits {
        read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(20),
        ..Limits::default()
    });
    let mut idle = connect(srv.port);
    idle.write_all(b"GET /hello HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_one(&mut idle), HI);
    // The idle connection now waits with a 20 s deadline; a half request needs 300 ms.
    let t0 = Instant::now();
    let r = exchange(srv.port, b"GET /hello HTTP/1.1\r\nHost:");
    assert!(r.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{r}");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    // The idle connection was not timed out with it: it still answers.
    idle.write_all(b"GET /hello HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_one(&mut idle), HI);
}

/// At the cap, a new connection evicts the longest-waiting idle one; when every connection is
/// busy answering, the newcomer gets 503.
#[test]
fn connection_cap_evicts_idle_then_rejects_with_503() {
    let srv = start(Limits {
        max_connections: 2,
        ..Limits::default()
    });
    let mut idle1 = connect(srv.port);
    std::thread::sleep(Duration::from_millis(50));
    let _idle2 = connect(srv.port);
    std::thread::sleep(Duration::from_millis(50));
    let r = exchange(
        srv.port,
        b"GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert!(r.ends_with("hi"), "{r}");
    let mut b = [0u8; 1];
    assert_eq!(
        idle1.read(&mut b).unwrap_or(0),
        0,
        "oldest idle connection evicted"
    );

    // Two connections busy writing 8 MiB replies that nobody reads.
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut s = connect(srv.port);
        s.write_all(b"GET /big HTTP/1.1\r\n\r\n").unwrap();
        busy.push(s);
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = exchange(srv.port, b"GET /hello HTTP/1.1\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{r}");
}

/// A 3 MiB form body under the 4 MiB default limit arrives whole.
#[test]
fn large_body_within_limit_is_received_whole() {
    let srv = start(Limits::default());
    let value = "v".repeat(3 << 20);
    let body = format!("a={value}");
    let req = format!(
        "POST /echo HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = exchange(srv.port, req.as_bytes());
    assert!(
        r.starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        &r[..100.min(r.len())]
    );
    assert!(r.ends_with(&format!("\r\n\r\na={value}")));
}
