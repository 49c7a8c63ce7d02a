//! Rule evaluation benchmarks (run: `cargo bench --bench rules`). Prints figures; asserts
//! nothing timed. Issue 5's numbers: evaluation cost of one group of 100 rules over an hour of
//! node-like metrics in the real ring-buffer store, heap bytes per active alert, and the
//! notification queue's bytes per alert (on disk and in memory).

use promlet::model::Labels;
use promlet::notify::queue::Queue;
use promlet::promql::EngineOpts;
use promlet::rules::{EngineBackend, EvalContext, Group, OutgoingAlert, RuleFile};
use promlet::tsdb::workload::NodeWorkload;
use promlet::tsdb::{Options, Store};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

/// Live heap bytes, to measure what active alerts hold.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const T0: i64 = 1_700_000_000_000;

/// Ten rule shapes from common node_exporter rule sets, repeated with different thresholds.
fn hundred_rules() -> String {
    let shapes = [
        "  - record: instance:node_cpu_utilisation:rate5m_{i}\n    expr: 1 - avg without (cpu) (sum without (mode) (rate(node_cpu_seconds_total{{mode=~\"idle|iowait|steal\"}}[5m])))\n",
        "  - record: instance:node_load1_per_cpu:ratio_{i}\n    expr: node_load1 / on (instance) count without (cpu, mode) (node_cpu_seconds_total{{mode=\"idle\"}})\n",
        "  - record: instance:node_memory_utilisation:ratio_{i}\n    expr: 1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes\n",
        "  - record: instance:node_network_receive_bytes:rate5m_{i}\n    expr: sum without (device) (rate(node_network_receive_bytes_total{{device!=\"lo\"}}[5m]))\n",
        "  - record: instance_device:node_disk_io_time_seconds:rate5m_{i}\n    expr: rate(node_disk_io_time_seconds_total[5m])\n",
        "  - alert: HostHighCpuLoad_{i}\n    expr: sum by (instance) (rate(node_cpu_seconds_total{{mode!=\"idle\"}}[2m])) > {i}\n    for: 5m\n    labels:\n      severity: warning\n    annotations:\n      summary: 'CPU load is {{{{ $value | humanizePercentage }}}} on {{{{ $labels.instance }}}}'\n",
        "  - alert: HostOutOfMemory_{i}\n    expr: node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes * 100 < {i}\n    for: 2m\n    annotations:\n      summary: 'Memory left {{{{ printf \"%.1f\" $value }}}}%'\n",
        "  - alert: HostDiskFull_{i}\n    expr: node_filesystem_avail_bytes / node_filesystem_size_bytes * 100 < {i}\n    for: 2m\n    annotations:\n      summary: '{{{{ $labels.mountpoint }}}}: {{{{ $value | humanize }}}}% left'\n",
        "  - alert: HostHighLoad_{i}\n    expr: node_load5 > {i}\n    for: 10m\n",
        "  - alert: HostClockSkew_{i}\n    expr: abs(node_time_seconds - timestamp(node_time_seconds)) > {i}\n    for: 2m\n",
    ];
    let mut y = String::from("groups:\n- name: node\n  interval: 15s\n  rules:\n");
    for i in 0..100 {
        y.push_str(
            &shapes[i % 10]
                .replace("{i}", &(i / 10 * 10 + 5).to_string())
                .replace("{{", "{")
                .replace("}}", "}"),
        );
    }
    y
}

fn main() {
    let mut store = Store::new(Options {
        retention_bytes: 64 << 20,
        ..Options::default()
    });
    let mut w = NodeWorkload::new(1, T0, 15_000, 0);
    for _ in 0..240 {
        w.collect(|l, t, v| promlet::tsdb::Appender::append(&mut store, l, t, v).unwrap());
    }
    let rf = RuleFile::parse(&hundred_rules(), "bench.yml", false).unwrap();
    assert_eq!(rf.rule_count(), 100);
    let mut g = Group::new(rf.groups[0].clone(), Duration::from_secs(15));
    g.mark_restored();
    let opts = EngineOpts::default();
    let ext = Labels::new();
    let ctx = EvalContext {
        external_labels: &ext,
        external_url: "http://pi:9099",
        resend_delay_ms: 60_000,
    };
    let mut sent = 0usize;
    let mut notify = |_: &str, a: &[OutgoingAlert]| sent += a.len();
    let reps = 40;
    let mut el = Duration::ZERO;
    let mut t = 0;
    for _ in 0..reps {
        // New data every interval, as in the agent; only the evaluation is timed.
        t = w.next_t();
        w.collect(|l, t, v| promlet::tsdb::Appender::append(&mut store, l, t, v).unwrap());
        let start = Instant::now();
        let mut b = EngineBackend::new(&mut store, &opts);
        let errs = g.eval(t, &mut b, &ctx, &mut notify);
        el += start.elapsed();
        assert!(errs.is_empty(), "{errs:?}");
    }
    println!(
        "group of 100 rules over {} node-like series (1 h at 15 s, real store): {:.2} ms per evaluation ({:.1} us per rule)",
        w.series_count(),
        el.as_secs_f64() * 1e3 / reps as f64,
        el.as_secs_f64() * 1e6 / reps as f64 / 100.0
    );

    // Heap held per active alert: one rule whose every output sample is an alert.
    let many = "groups:\n- name: many\n  rules:\n  - alert: Every\n    expr: node_cpu_seconds_total >= 0\n    for: 1h\n    labels: {severity: page}\n    annotations: {summary: '{{ $labels.cpu }}/{{ $labels.mode }} is {{ $value | humanize }}'}\n";
    let rf = RuleFile::parse(many, "many.yml", false).unwrap();
    // Not restored yet: the first evaluation writes no ALERTS series, so the store's growth is
    // not counted as alert state.
    let mut g = Group::new(rf.groups[0].clone(), Duration::from_secs(15));
    let mut b = EngineBackend::new(&mut store, &opts);
    let before = LIVE.load(Ordering::Relaxed);
    g.eval(t, &mut b, &ctx, &mut notify);
    let after = LIVE.load(Ordering::Relaxed);
    let n = g.alerts().count();
    println!(
        "active alerts: {n}, heap held {:.0} bytes per alert (labels, annotations, state)",
        (after - before) as f64 / n as f64
    );

    // Notification queue bytes per alert: every alert of a rule that fires at once, as the
    // group hands them over, queued (Alertmanager unreachable) in the persisted queue.
    let firing = "groups:\n- name: queued\n  rules:\n  - alert: Every\n    expr: node_cpu_seconds_total >= 0\n    labels: {severity: page}\n    annotations: {summary: '{{ $labels.cpu }}/{{ $labels.mode }} is {{ $value | humanize }}'}\n";
    let rf = RuleFile::parse(firing, "queued.yml", false).unwrap();
    let mut g = Group::new(rf.groups[0].clone(), Duration::from_secs(15));
    g.mark_restored();
    let mut handed: Vec<OutgoingAlert> = Vec::new();
    let mut b = EngineBackend::new(&mut store, &opts);
    g.eval(t, &mut b, &ctx, &mut |_: &str, a: &[OutgoingAlert]| {
        handed.extend_from_slice(a)
    });
    let dir = std::env::temp_dir().join(format!("promlet-bench-queue-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let before = LIVE.load(Ordering::Relaxed);
    let mut q = Queue::open(&dir, 100_000).unwrap();
    for a in &handed {
        q.push(a.clone());
    }
    let heap = LIVE.load(Ordering::Relaxed) - before;
    let disk = std::fs::metadata(dir.join("alert-queue.log"))
        .unwrap()
        .len();
    let n = q.len();
    assert_eq!(n, handed.len());
    println!(
        "notification queue: {n} alerts, {:.0} bytes per alert on disk, {:.0} bytes per alert in memory",
        disk as f64 / n as f64,
        heap as f64 / n as f64
    );
    drop(q);
    let _ = std::fs::remove_dir_all(&dir);
}
