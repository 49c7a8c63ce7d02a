//! remote_write benchmarks (issue 6: "remote-write bytes on the wire per sample; CPU per
//! 1,000 samples forwarded"). Run: `cargo bench --bench remote_write`.
//!
//! The node-like reference workload (`tsdb::workload`, ~450 series at 15 s) goes into an
//! in-memory store; a queue then builds batches from it exactly as the sender task does
//! (series scan, chunk decode, external labels + relabel cache, protobuf encode, snappy).
//! Two shapes: catch-up (an hour of backlog, 2,000-sample batches) and steady state (one
//! collection per batch). Time is the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`); the
//! network itself is not included (that is the kernel's and the receiver's). Also counts
//! heap allocations per forwarded sample once warm.

use promlet::config::Config;
use promlet::model::Timestamp;
use promlet::remote::queue::Queue;
use promlet::tsdb::workload::NodeWorkload;
use promlet::tsdb::{Appender, Options, Store};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a live timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn queue(max_per_send: usize) -> Queue {
    let text = format!(
        "global:\n  external_labels: {{site: home}}\nremote_write:\n  - url: http://127.0.0.1:1/w\n    \
         write_relabel_configs:\n      - {{source_labels: [__name__], regex: 'go_.*', action: drop}}\n    \
         queue_config: {{max_samples_per_send: {max_per_send}}}\n"
    );
    let cfg = Config::parse(&text, "bench").expect("bench config");
    Queue::new(
        cfg.remote_write[0].clone(),
        cfg.global.external_labels.clone(),
        None,
        Timestamp::MIN,
    )
}

struct Totals {
    samples: u64,
    wire: u64,
    cpu: f64,
    allocs: u64,
    /// Protobuf bytes before compression.
    pb: u64,
}

fn drain(q: &mut Queue, store: &Store) -> Totals {
    let mut t = Totals {
        samples: 0,
        wire: 0,
        cpu: 0.0,
        allocs: 0,
        pb: 0,
    };
    let mut body = Vec::new();
    loop {
        let a0 = ALLOCS.load(Ordering::Relaxed);
        let c0 = thread_cpu_s();
        let n = q.build_batch(store);
        t.cpu += thread_cpu_s() - c0;
        t.allocs += ALLOCS.load(Ordering::Relaxed) - a0;
        if n == 0 {
            return t;
        }
        t.samples += n as u64;
        t.wire += q.wire.len() as u64;
        promlet::remote::snappy::decompress(&q.wire, &mut body).expect("our own output");
        t.pb += body.len() as u64;
        q.acknowledge(n);
    }
}

fn main() {
    let interval = 15_000;
    let mut w = NodeWorkload::new(1, 1_700_000_000_000, interval, 20);
    let mut store = Store::new(Options {
        retention_bytes: 64 << 20,
        ..Options::default()
    });
    // Catch-up: one hour of backlog.
    for _ in 0..240 {
        w.collect(|l, t, v| {
            let _ = store.append(l, t, v);
        });
    }
    let mut q = queue(2000);
    let c = drain(&mut q, &store);
    println!(
        "remote_write bench: {} series, reference workload at 15 s",
        w.series_count()
    );
    println!(
        "catch-up (1 h backlog, 2000/batch): {} samples, {:.2} wire bytes/sample (snappy; \
         protobuf {:.1}), {:.3} ms CPU per 1,000 samples, {:.4} allocations/sample",
        c.samples,
        c.wire as f64 / c.samples as f64,
        c.pb as f64 / c.samples as f64,
        c.cpu * 1e6 / c.samples as f64,
        c.allocs as f64 / c.samples as f64
    );
    // Steady state: one collection, one batch; warm label cache.
    let mut s = Totals {
        samples: 0,
        wire: 0,
        cpu: 0.0,
        allocs: 0,
        pb: 0,
    };
    for _ in 0..200 {
        w.collect(|l, t, v| {
            let _ = store.append(l, t, v);
        });
        let r = drain(&mut q, &store);
        s.samples += r.samples;
        s.wire += r.wire;
        s.cpu += r.cpu;
        s.allocs += r.allocs;
        s.pb += r.pb;
    }
    println!(
        "steady state (one collection per batch): {:.2} wire bytes/sample (snappy; protobuf \
         {:.1} bytes/sample before compression), {:.3} ms CPU per 1,000 samples, \
         {:.4} allocations/sample",
        s.wire as f64 / s.samples as f64,
        s.pb as f64 / s.samples as f64,
        s.cpu * 1e6 / s.samples as f64,
        s.allocs as f64 / s.samples as f64
    );
    assert!(c.samples > 0 && s.samples > 0);
}
