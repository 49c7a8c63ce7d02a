//! Cost of probes on the work thread: CPU time and heap per probe for each prober against
//! loopback peers, how many probes per second one core sustains, and how late a 100 ms
//! "collection" tick runs while probes run at a given rate.
//!
//! CPU is the work thread's own (`getrusage(RUSAGE_THREAD)`): the peers (an HTTP server, a TCP
//! listener, a DNS responder) run on other threads and are not counted; ICMP goes to the
//! kernel's echo responder on 127.0.0.1. Heap is counted by a global allocator wrapper on this
//! thread: bytes allocated per probe and the peak of live bytes above the baseline.
//!
//! Run: `cargo bench --bench probe`. Env: `PROMLET_BENCH_SECS` (per case, default 2).
//! ICMP needs a raw socket (root) or ping_group_range; it is skipped with a note otherwise.

use async_executor::LocalExecutor;
use promlet::config::Config;
use promlet::probe::{self, config::Module, Report};
use promlet::rt::Timer;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::rc::Rc;
use std::time::{Duration, Instant};

struct Counting;

thread_local! {
    static BYTES: Cell<u64> = const { Cell::new(0) };
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn note_alloc(n: usize) {
    let _ = BYTES.try_with(|c| c.set(c.get() + n as u64));
    let _ = LIVE.try_with(|l| {
        l.set(l.get() + n as i64);
        let _ = PEAK.try_with(|p| p.set(p.get().max(l.get())));
    });
}

fn note_free(n: usize) {
    let _ = LIVE.try_with(|l| l.set(l.get() - n as i64));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_free(layout.size());
        note_alloc(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    Duration::from_micros(
        (ru.ru_utime.tv_sec * 1_000_000
            + ru.ru_utime.tv_usec
            + ru.ru_stime.tv_sec * 1_000_000
            + ru.ru_stime.tv_usec) as u64,
    )
}

fn http_peer() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: close\r\n\r\nhello world\n",
            );
        }
    });
    port
}

fn tcp_peer() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || for _s in l.incoming() {});
    port
}

/// Answers every query with one A record (127.0.0.1).
fn dns_peer() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = s.recv_from(&mut buf) {
            let mut r = buf[..n].to_vec();
            r[2] = 0x81;
            r[3] = 0x80;
            r[7] = 1;
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
            let _ = s.send_to(&r, peer);
        }
    });
    port
}

struct Case {
    name: &'static str,
    module: Module,
    target: String,
}

fn cases() -> Vec<Case> {
    let cfg = Config::parse(
        "probes:\n  modules:\n    dns_a: {prober: dns, dns: {query_name: bench.lan, query_type: A}}\n    http_re: {prober: http, http: {fail_if_body_not_matches_regexp: ['hello']}}\n",
        "bench.yml",
    )
    .unwrap();
    let m = |n: &str| cfg.probes.module(n).unwrap();
    let http = http_peer();
    let mut out = vec![
        Case {
            name: "tcp_connect",
            module: m("tcp_connect"),
            target: format!("127.0.0.1:{}", tcp_peer()),
        },
        Case {
            name: "http_2xx",
            module: m("http_2xx"),
            target: format!("http://127.0.0.1:{http}/"),
        },
        Case {
            name: "http body regexp",
            module: m("http_re"),
            target: format!("http://127.0.0.1:{http}/"),
        },
        Case {
            name: "dns A (udp)",
            module: m("dns_a"),
            target: format!("127.0.0.1:{}", dns_peer()),
        },
    ];
    if probe::icmp::open_socket(false).is_ok() {
        out.push(Case {
            name: "icmp",
            module: m("icmp"),
            target: "127.0.0.1".into(),
        });
    } else {
        eprintln!("note: no ICMP socket allowed; icmp skipped");
    }
    out
}

const TIMEOUT: Duration = Duration::from_secs(5);

/// Sequential probes: CPU, wall and heap per probe.
fn per_probe(c: &Case, secs: f64) {
    // Peak heap of one probe: live bytes above what was live when it started.
    let max_peak = Cell::new(0i64);
    let one = || {
        let before = LIVE.with(|l| l.get());
        PEAK.with(|p| p.set(before));
        let mut r = Report::new(false);
        let ok = promlet::rt::block_on(probe::run(&c.module, &c.target, TIMEOUT, &mut r));
        assert!(ok, "{} failed", c.name);
        drop(r);
        max_peak.set(max_peak.get().max(PEAK.with(|p| p.get()) - before));
    };
    for _ in 0..50 {
        one();
    }
    let mut n = 0u64;
    max_peak.set(0);
    let (b0, cpu0, start) = (BYTES.with(|b| b.get()), thread_cpu(), Instant::now());
    while start.elapsed().as_secs_f64() < secs {
        one();
        n += 1;
    }
    let wall = start.elapsed();
    let cpu = thread_cpu() - cpu0;
    let bytes = BYTES.with(|b| b.get()) - b0;
    let peak = max_peak.get();
    println!(
        "{:<18} {:>7} probes  cpu {:>6.1} µs/probe  wall {:>6.1} µs/probe  heap {:>6} B allocated/probe, peak {:>6} B live (max over probes)",
        c.name,
        n,
        cpu.as_secs_f64() * 1e6 / n as f64,
        wall.as_secs_f64() * 1e6 / n as f64,
        bytes / n,
        peak
    );
}

/// Probes at `rate`/s spread over a second, with a 100 ms tick standing in for the collection
/// loop: reports the achieved rate, the thread's CPU share and how late the tick ran.
fn under_load(c: &Case, rate: u32, secs: f64) -> (f64, f64, Duration, Duration) {
    let ex = Rc::new(LocalExecutor::new());
    let done = Rc::new(Cell::new(0u64));
    let lateness = Rc::new(std::cell::RefCell::new(Vec::new()));
    let stop = Instant::now() + Duration::from_secs_f64(secs);
    let cpu0 = thread_cpu();
    let start = Instant::now();
    promlet::rt::block_on(ex.run(async {
        let tick = {
            let lateness = lateness.clone();
            ex.spawn(async move {
                let mut next = Instant::now();
                while Instant::now() < stop {
                    next += Duration::from_millis(100);
                    Timer::at(next).await;
                    lateness
                        .borrow_mut()
                        .push(Instant::now().saturating_duration_since(next));
                }
            })
        };
        let gap = Duration::from_secs_f64(1.0 / rate as f64);
        let mut next = Instant::now();
        let mut tasks = Vec::new();
        while Instant::now() < stop {
            Timer::at(next).await;
            next += gap;
            let (m, t, done) = (c.module.clone(), c.target.clone(), done.clone());
            tasks.push(ex.spawn(async move {
                let mut r = Report::new(false);
                if probe::run(&m, &t, TIMEOUT, &mut r).await {
                    done.set(done.get() + 1);
                }
            }));
            tasks.retain(|t: &async_executor::Task<()>| !t.is_finished());
        }
        for t in tasks {
            t.await;
        }
        tick.await;
    }));
    let wall = start.elapsed().as_secs_f64();
    let cpu = (thread_cpu() - cpu0).as_secs_f64();
    let mut l = lateness.borrow().clone();
    l.sort_unstable();
    let p99 = l[((l.len() - 1) as f64 * 0.99) as usize];
    (done.get() as f64 / wall, cpu / wall, l[l.len() / 2], p99)
}

fn main() {
    let secs: f64 = std::env::var("PROMLET_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let cases = cases();
    println!("# per probe, sequential (work thread only)");
    for c in &cases {
        if filter.as_deref().is_none_or(|f| c.name.contains(f)) {
            per_probe(c, secs);
        }
    }
    println!("# at a fixed rate, with a 100 ms tick on the same thread");
    for c in &cases {
        if !filter.as_deref().is_none_or(|f| c.name.contains(f)) {
            continue;
        }
        for rate in [100, 1000, 3000] {
            let (done, cpu_share, median, p99) = under_load(c, rate, secs);
            println!(
                "{:<18} {:>5}/s asked: {:>7.0} ok/s  cpu {:>5.1}% of a core  tick late median {:>7.1} µs p99 {:>8.1} µs",
                c.name,
                rate,
                done,
                cpu_share * 100.0,
                median.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6
            );
        }
    }
}
