//! The reference workload for the store's measurements: node-like series at a fixed interval.
//!
//! Owns: a deterministic generator used by tests, benches and the crash-test writer, so every
//! figure promlet prints about bytes per sample or write amplification comes from the same data.
//! Must not touch: the store's internals (it only produces label sets and samples).
//!
//! The mix imitates what node_exporter-style collection produces on a small Linux box (about
//! 500 series): CPU seconds counters in 1/100 s steps, byte and packet counters growing by
//! random amounts, memory gauges moving in 4 KiB pages, load averages with two decimals, and
//! many series that never change (error counters at 0, sizes, info metrics). Timestamps share
//! one tick per collection with a small jitter, as a timer-driven loop stamps them.

use crate::model::{Labels, Timestamp};

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Counter growing by `rate` ± 50 % per tick, quantised to `step`.
    Counter {
        rate: f64,
        step: f64,
    },
    /// Gauge doing a bounded random walk of `step`-sized moves.
    Gauge {
        step: f64,
        every: u32,
    },
    Constant,
}

struct Series {
    labels: Labels,
    kind: Kind,
    value: f64,
}

/// Node-like series advanced one collection at a time.
pub struct NodeWorkload {
    series: Vec<Series>,
    rng: u64,
    tick: i64,
    pub start: Timestamp,
    pub interval_ms: i64,
    /// Timestamps vary by up to ± this many ms around the tick.
    pub jitter_ms: i64,
}

impl NodeWorkload {
    pub fn new(seed: u64, start: Timestamp, interval_ms: i64, jitter_ms: i64) -> NodeWorkload {
        let mut series = Vec::new();
        let mut add = |name: &str, extra: &[(&str, &str)], kind: Kind, value: f64| {
            let mut l = Labels::from_pairs(extra.iter().copied());
            l.set("__name__".into(), name.into());
            l.set("instance".into(), "pi:9100".into());
            l.set("job".into(), "node".into());
            series.push(Series {
                labels: l,
                kind,
                value,
            });
        };
        let modes = [
            ("idle", 3.4),
            ("user", 0.3),
            ("system", 0.15),
            ("iowait", 0.02),
            ("nice", 0.0),
            ("irq", 0.0),
            ("softirq", 0.01),
            ("steal", 0.0),
        ];
        for cpu in ["0", "1", "2", "3"] {
            for (mode, rate) in modes {
                let kind = if rate == 0.0 {
                    Kind::Constant
                } else {
                    Kind::Counter {
                        rate: rate * 15.0,
                        step: 0.01,
                    }
                };
                add(
                    "node_cpu_seconds_total",
                    &[("cpu", cpu), ("mode", mode)],
                    kind,
                    123_456.78,
                );
            }
        }
        for (i, m) in [
            "MemTotal",
            "MemFree",
            "MemAvailable",
            "Buffers",
            "Cached",
            "SwapCached",
            "Active",
            "Inactive",
            "Active_anon",
            "Inactive_anon",
            "Active_file",
            "Inactive_file",
            "Unevictable",
            "Mlocked",
            "SwapTotal",
            "SwapFree",
            "Dirty",
            "Writeback",
            "AnonPages",
            "Mapped",
            "Shmem",
            "KReclaimable",
            "Slab",
            "SReclaimable",
            "SUnreclaim",
            "KernelStack",
            "PageTables",
            "NFS_Unstable",
            "Bounce",
            "WritebackTmp",
            "CommitLimit",
            "Committed_AS",
            "VmallocTotal",
            "VmallocUsed",
            "VmallocChunk",
            "Percpu",
            "HardwareCorrupted",
            "CmaTotal",
            "CmaFree",
            "Hugepagesize",
        ]
        .iter()
        .enumerate()
        {
            let kind = if i % 3 == 0 {
                Kind::Constant
            } else {
                Kind::Gauge {
                    step: 4096.0,
                    every: 1 + (i as u32 % 4),
                }
            };
            add(
                &format!("node_memory_{m}_bytes"),
                &[],
                kind,
                1e8 + i as f64 * 1e6,
            );
        }
        for dev in ["lo", "eth0", "wlan0"] {
            for (dir, rate) in [("receive", 2000.0), ("transmit", 800.0)] {
                let active = dev != "wlan0";
                let r = if active { rate } else { 0.0 };
                add(
                    &format!("node_network_{dir}_bytes_total"),
                    &[("device", dev)],
                    if active {
                        Kind::Counter {
                            rate: r * 15.0,
                            step: 1.0,
                        }
                    } else {
                        Kind::Constant
                    },
                    5e7,
                );
                add(
                    &format!("node_network_{dir}_packets_total"),
                    &[("device", dev)],
                    if active {
                        Kind::Counter {
                            rate: r / 500.0 * 15.0,
                            step: 1.0,
                        }
                    } else {
                        Kind::Constant
                    },
                    4e5,
                );
                for f in ["errs", "drop", "fifo", "frame", "compressed", "multicast"] {
                    add(
                        &format!("node_network_{dir}_{f}_total"),
                        &[("device", dev)],
                        Kind::Constant,
                        0.0,
                    );
                }
            }
            for g in [
                "mtu_bytes",
                "up",
                "speed_bytes",
                "carrier",
                "flags",
                "iface_id",
            ] {
                add(
                    &format!("node_network_{g}"),
                    &[("device", dev)],
                    Kind::Constant,
                    1500.0,
                );
            }
        }
        for dev in ["mmcblk0", "mmcblk0p1", "mmcblk0p2"] {
            for (f, rate, step) in [
                ("reads_completed_total", 0.2, 1.0),
                ("writes_completed_total", 1.5, 1.0),
                ("read_bytes_total", 800.0, 512.0),
                ("written_bytes_total", 6000.0, 512.0),
                ("io_time_seconds_total", 0.01, 0.001),
                ("read_time_seconds_total", 0.001, 0.001),
                ("write_time_seconds_total", 0.02, 0.001),
                ("io_time_weighted_seconds_total", 0.03, 0.001),
                ("reads_merged_total", 0.01, 1.0),
                ("writes_merged_total", 0.5, 1.0),
            ] {
                add(
                    &format!("node_disk_{f}"),
                    &[("device", dev)],
                    Kind::Counter {
                        rate: rate * 15.0,
                        step,
                    },
                    1e6,
                );
            }
            for f in [
                "io_now",
                "discards_completed_total",
                "discarded_sectors_total",
                "flush_requests_total",
            ] {
                add(
                    &format!("node_disk_{f}"),
                    &[("device", dev)],
                    Kind::Constant,
                    0.0,
                );
            }
        }
        for (mp, dev) in [
            ("/", "/dev/root"),
            ("/boot", "/dev/mmcblk0p1"),
            ("/run", "tmpfs"),
            ("/tmp", "tmpfs"),
            ("/run/user/1000", "tmpfs"),
        ] {
            for f in ["size_bytes", "files", "readonly", "device_error"] {
                add(
                    &format!("node_filesystem_{f}"),
                    &[("device", dev), ("fstype", "ext4"), ("mountpoint", mp)],
                    Kind::Constant,
                    3e10,
                );
            }
            for f in ["avail_bytes", "free_bytes", "files_free"] {
                add(
                    &format!("node_filesystem_{f}"),
                    &[("device", dev), ("fstype", "ext4"), ("mountpoint", mp)],
                    Kind::Gauge {
                        step: 4096.0,
                        every: 8,
                    },
                    1e10,
                );
            }
        }
        for (n, step) in [
            ("node_load1", 0.01),
            ("node_load5", 0.01),
            ("node_load15", 0.01),
        ] {
            add(n, &[], Kind::Gauge { step, every: 1 }, 0.42);
        }
        for i in 0..150 {
            let name = format!("node_vmstat_field_{i}");
            let kind = if i % 3 == 0 {
                Kind::Counter {
                    rate: (i % 17) as f64 * 3.0 + 1.0,
                    step: 1.0,
                }
            } else {
                Kind::Constant
            };
            add(&name, &[], kind, 1e5);
        }
        for (n, kind, v) in [
            (
                "node_context_switches_total",
                Kind::Counter {
                    rate: 15.0 * 400.0,
                    step: 1.0,
                },
                1e7,
            ),
            (
                "node_intr_total",
                Kind::Counter {
                    rate: 15.0 * 300.0,
                    step: 1.0,
                },
                1e7,
            ),
            (
                "node_forks_total",
                Kind::Counter {
                    rate: 15.0 * 2.0,
                    step: 1.0,
                },
                1e4,
            ),
            (
                "node_procs_running",
                Kind::Gauge {
                    step: 1.0,
                    every: 1,
                },
                2.0,
            ),
            (
                "node_procs_blocked",
                Kind::Gauge {
                    step: 1.0,
                    every: 5,
                },
                0.0,
            ),
            (
                "node_entropy_available_bits",
                Kind::Gauge {
                    step: 1.0,
                    every: 2,
                },
                256.0,
            ),
            (
                "node_filefd_allocated",
                Kind::Gauge {
                    step: 1.0,
                    every: 1,
                },
                800.0,
            ),
            (
                "node_time_seconds",
                Kind::Counter {
                    rate: 15.0,
                    step: 0.000001,
                },
                1.7e9,
            ),
            ("node_boot_time_seconds", Kind::Constant, 1.7e9),
            (
                "node_hwmon_temp_celsius",
                Kind::Gauge {
                    step: 0.538,
                    every: 1,
                },
                48.3,
            ),
            (
                "node_thermal_zone_temp",
                Kind::Gauge {
                    step: 0.538,
                    every: 1,
                },
                48.3,
            ),
            (
                "node_cpu_scaling_frequency_hertz",
                Kind::Gauge {
                    step: 1e8,
                    every: 3,
                },
                1.2e9,
            ),
        ] {
            add(n, &[], kind, v);
        }
        for i in 0..70 {
            add(
                &format!("node_info_like_{i}"),
                &[("version", "6.1.0")],
                Kind::Constant,
                1.0,
            );
        }
        for sc in ["scrape_duration_seconds", "scrape_samples_scraped", "up"] {
            add(
                &format!("promlet_{sc}"),
                &[],
                if sc == "scrape_duration_seconds" {
                    Kind::Gauge {
                        step: 0.000137,
                        every: 1,
                    }
                } else {
                    Kind::Constant
                },
                0.004,
            );
        }
        NodeWorkload {
            series,
            rng: seed | 1,
            tick: 0,
            start,
            interval_ms,
            jitter_ms,
        }
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    fn next_rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn unit(&mut self) -> f64 {
        (self.next_rand() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Timestamp of the next collection.
    pub fn next_t(&self) -> Timestamp {
        self.start + self.tick * self.interval_ms
    }

    /// Advances one collection and calls `f` with each series and its sample.
    pub fn collect(&mut self, mut f: impl FnMut(&Labels, Timestamp, f64)) {
        let jitter = if self.jitter_ms > 0 {
            (self.next_rand() % (2 * self.jitter_ms as u64 + 1)) as i64 - self.jitter_ms
        } else {
            0
        };
        let t = self.start + self.tick * self.interval_ms + jitter;
        let tick = self.tick;
        for i in 0..self.series.len() {
            let kind = self.series[i].kind;
            let u = self.unit();
            let s = &mut self.series[i];
            match kind {
                Kind::Counter { rate, step } => {
                    let inc = (rate * (0.5 + u) / step).round() * step;
                    s.value = ((s.value + inc) / step).round() * step;
                }
                Kind::Gauge { step, every } => {
                    if tick % every as i64 == 0 {
                        let moves = (u * 5.0) as i64 - 2;
                        s.value += moves as f64 * step;
                    }
                }
                Kind::Constant => {}
            }
            f(&s.labels, t, s.value);
        }
        self.tick += 1;
    }
}
