//! `stat`: system-wide counters from /proc/stat: boot time, context switches, forks,
//! interrupts, running/blocked processes, and per-vector softirqs with `stat.softirq`.
//! (The per-CPU `cpu` lines belong to the `cpu` collector.)

use super::util::{lines, num, words, KeptFile};
use super::{CollectError, Collector, CollectorOption, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};

pub const OPTIONS: &[CollectorOption] = &[CollectorOption {
    name: "stat.softirq",
    default: "false",
    help: "Export softirq calls per vector",
}];

/// Softirq vectors in /proc/stat column order (kernel `softirq_to_name`).
const VECTORS: &[&str] = &[
    "hi",
    "timer",
    "net_tx",
    "net_rx",
    "block",
    "block_iopoll",
    "tasklet",
    "sched",
    "hrtimer",
    "rcu",
];

/// (line key, metric, HELP, type).
const SINGLES: &[(&str, &str, &str, MetricType)] = &[
    (
        "intr",
        "node_intr_total",
        "Total number of interrupts serviced.",
        MetricType::Counter,
    ),
    (
        "ctxt",
        "node_context_switches_total",
        "Total number of context switches.",
        MetricType::Counter,
    ),
    (
        "btime",
        "node_boot_time_seconds",
        "Node boot time, in unixtime.",
        MetricType::Gauge,
    ),
    (
        "processes",
        "node_forks_total",
        "Total number of forks.",
        MetricType::Counter,
    ),
    (
        "procs_running",
        "node_procs_running",
        "Number of processes in runnable state.",
        MetricType::Gauge,
    ),
    (
        "procs_blocked",
        "node_procs_blocked",
        "Number of processes blocked waiting for I/O to complete.",
        MetricType::Gauge,
    ),
];

pub struct Stat {
    buf: String,
    file: KeptFile,
    softirq: bool,
}

pub fn new(opts: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    let softirq = super::util::option_bool("stat.softirq", opts.get("stat.softirq"))?;
    Ok(Box::new(Stat {
        buf: String::new(),
        file: KeptFile::new("stat").short_read_ends(0),
        softirq,
    }))
}

impl Collector for Stat {
    fn name(&self) -> &'static str {
        "stat"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        self.file
            .take_shared(&ctx.roots.procfs, &mut self.buf, ctx.now_ms)?;
        let path = self.file.path();
        let mut values = [None; SINGLES.len()];
        let mut softirqs = None;
        for line in lines(&self.buf) {
            let mut toks = words(line);
            let key = toks.next().unwrap_or("");
            if let Some(i) = SINGLES.iter().position(|s| s.0 == key) {
                let v = toks
                    .next()
                    .ok_or_else(|| CollectError::parse(path, format!("{key} without value")))?;
                values[i] = Some(num(v, path)?);
            } else if key == "softirq" {
                softirqs = Some(line);
            }
        }
        // btime, ctxt and processes exist in every kernel since 2.6; their absence means a
        // truncated or foreign file.
        for (i, s) in SINGLES.iter().enumerate().take(4) {
            if values[i].is_none() {
                return Err(CollectError::parse(path, format!("no {} line", s.0)));
            }
        }
        for (s, v) in SINGLES.iter().zip(values) {
            if let Some(v) = v {
                out.single_static(s.1, s.2, s.3, v);
            }
        }
        if self.softirq {
            let line = softirqs.ok_or_else(|| CollectError::parse(path, "no softirq line"))?;
            let fam = out.family_static(
                "node_softirqs_total",
                "Number of softirq calls.",
                MetricType::Counter,
            );
            // Skip the key and the total.
            for (vector, tok) in VECTORS.iter().zip(words(line).skip(2)) {
                let v = num(tok, path)?;
                out.sample(fam, &[("vector", vector)], v);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::util::testing::run;

    const STAT: &str = "cpu 1 2 3\nintr 100 1 2\nctxt 5\nbtime 1418183276\nprocesses 7\nprocs_running 2\nprocs_blocked 0\nsoftirq 30 1 2 3 4 5 6 7 8 9 10\n";

    #[test]
    fn stat_takes_the_text_cpu_read_in_the_same_collection_once() {
        use crate::collect::fixtures::{run_at, Scratch};
        let s = Scratch::new("stat-shared");
        let stat = |ctxt: u32| {
            format!("cpu 1 1 1 1\ncpu0 1 1 1 1\nintr 1\nctxt {ctxt}\nbtime 1\nprocesses 7\n")
        };
        let opts = CollectorOptions::default();
        let (mut cpu, mut st) = (
            crate::collect::cpu::new(&opts).unwrap(),
            new(&opts).unwrap(),
        );
        let switches = |n: u32| format!("node_context_switches_total {n}\n");
        s.write("proc/stat", stat(5).as_bytes());
        run_at(cpu.as_mut(), &s.roots(), 1000).unwrap();
        // Rewritten between the two readers of one collection: stat gets cpu's text...
        s.write("proc/stat", stat(6).as_bytes());
        let t = run_at(st.as_mut(), &s.roots(), 1000).unwrap();
        assert!(t.contains(&switches(5)), "{t}");
        // ...once: run again (same ms), it reads the file.
        let t = run_at(st.as_mut(), &s.roots(), 1000).unwrap();
        assert!(t.contains(&switches(6)), "{t}");
        // cpu's text of another collection is not taken.
        run_at(cpu.as_mut(), &s.roots(), 1000).unwrap();
        s.write("proc/stat", stat(7).as_bytes());
        let t = run_at(st.as_mut(), &s.roots(), 2000).unwrap();
        assert!(t.contains(&switches(7)), "{t}");
        // Nor cpu's text of another tree.
        let other = Scratch::new("stat-shared-other");
        other.write("proc/stat", stat(8).as_bytes());
        run_at(cpu.as_mut(), &other.roots(), 3000).unwrap();
        let t = run_at(st.as_mut(), &s.roots(), 3000).unwrap();
        assert!(t.contains(&switches(7)), "{t}");
    }

    #[test]
    fn singles_and_optional_softirqs() {
        let (r, text) = run(
            &mut *new(&CollectorOptions::default()).unwrap(),
            &[("proc/stat", STAT)],
        );
        r.unwrap();
        assert!(text.contains("node_boot_time_seconds 1.418183276e+09\n"));
        assert!(text.contains("node_intr_total 100\n"));
        assert!(!text.contains("node_softirqs_total"));
        let mut opts = CollectorOptions::default();
        opts.set("stat.softirq", "true");
        let (r, text) = run(&mut *new(&opts).unwrap(), &[("proc/stat", STAT)]);
        r.unwrap();
        assert!(text.contains("node_softirqs_total{vector=\"rcu\"} 10\n"));
        assert!(text.contains("node_softirqs_total{vector=\"hi\"} 1\n"));
    }

    #[test]
    fn missing_btime_is_an_error_and_bad_bool_option_is_rejected() {
        let (r, _) = run(
            &mut *new(&CollectorOptions::default()).unwrap(),
            &[("proc/stat", "ctxt 5\n")],
        );
        assert!(r.is_err());
        let mut opts = CollectorOptions::default();
        opts.set("stat.softirq", "yes please");
        assert!(new(&opts).is_err());
    }
}
