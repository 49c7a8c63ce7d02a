//! Native node metrics from /proc and /sys, named as node_exporter names them.
//!
//! Owns: one reader per node_exporter collector (`cpu`, `meminfo`, ...), the table of
//! collectors with their default on/off state, and the driver that runs the enabled ones and
//! adds `node_scrape_collector_duration_seconds` / `node_scrape_collector_success`.
//! Must not touch: the network, the TSDB, hard-coded `/proc` or `/sys` paths (every path is
//! built from [`Roots`], so recorded fixture trees and `--path.*` work).
//!
//! A source that does not exist on this device (no hwmon on a VM, no conntrack module) makes its
//! collector fail with [`CollectErrorKind::NotFound`]: success 0, logged once at debug, not per scrape.
//!
//! Not implemented on purpose: `wifi`. node_exporter reads every wifi value (interface
//! frequency, per-station signal, bitrates, byte/packet/retry counters, beacon loss, connected
//! time) from nl80211 over generic netlink. sysfs has none of them, and `/proc/net/wireless`
//! only has link quality, signal and noise of the associated AP without its MAC address (the
//! `mac_address` label), so the families cannot be reproduced from files; the collector is off
//! by default in node_exporter too.

pub mod arp;
pub mod conntrack;
pub mod cpu;
pub mod cpufreq;
pub mod diskstats;
pub mod dmi;
pub mod edac;
pub mod entropy;
pub mod filefd;
pub mod filesystem;
#[cfg(test)]
mod fixtures;
pub mod hwmon;
pub mod ipvs;
pub mod kernel_hung;
pub mod loadavg;
pub mod mdadm;
pub mod meminfo;
pub mod netclass;
pub mod netdev;
pub mod netstat;
pub mod nfs;
pub mod nfsd;
pub mod nvme;
pub mod os;
pub mod powersupplyclass;
pub mod pressure;
pub mod rapl;
pub mod rtnetlink;
pub mod schedstat;
pub mod sockstat;
pub mod softnet;
pub mod stat;
pub mod sysfs;
pub mod textfile;
pub mod thermal_zone;
pub mod time;
pub mod timex;
pub mod udp_queues;
pub mod uname;
pub mod util;
pub mod vmstat;
pub mod watchdog;
pub mod zfs;

use crate::expo::{MetricSet, MetricType};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the filesystems are, from `--path.procfs`, `--path.sysfs`, `--path.rootfs`,
/// `--path.udev.data`.
#[derive(Clone, Debug)]
pub struct Roots {
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub rootfs: PathBuf,
    pub udev_data: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            procfs: "/proc".into(),
            sysfs: "/sys".into(),
            rootfs: "/".into(),
            udev_data: "/run/udev/data".into(),
        }
    }
}

impl Roots {
    pub fn proc(&self, rel: &str) -> PathBuf {
        self.procfs.join(rel)
    }
    pub fn sys(&self, rel: &str) -> PathBuf {
        self.sysfs.join(rel)
    }
    pub fn root(&self, rel: &str) -> PathBuf {
        self.rootfs.join(rel.trim_start_matches('/'))
    }
}

/// Why a collector produced nothing (or only part): a [`CollectErrorKind`], boxed so that a
/// `Result<_, CollectError>` is one pointer wide (every read helper returns one, and with the
/// kind inline each `?` moved 56 bytes; boxed, the x86_64 release binary is 15,488 bytes
/// smaller). Only the error path allocates.
pub struct CollectError(Box<CollectErrorKind>);

/// What went wrong in a [`CollectError`].
#[derive(Debug)]
pub enum CollectErrorKind {
    /// The source is absent on this device; reported as success 0 without an error log.
    NotFound(PathBuf),
    /// The source exists but could not be read.
    Io(PathBuf, std::io::Error),
    /// The source was read but its content made no sense (truncated, garbage).
    Parse(PathBuf, String),
}

impl From<CollectErrorKind> for CollectError {
    fn from(kind: CollectErrorKind) -> Self {
        CollectError(Box::new(kind))
    }
}

impl CollectError {
    /// Maps an I/O error on `path` to `NotFound` or `Io`.
    pub fn io(path: &Path, e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::NotFound {
            CollectError::not_found(path.to_path_buf())
        } else {
            CollectErrorKind::Io(path.to_path_buf(), e).into()
        }
    }
    pub fn parse(path: &Path, what: impl Into<String>) -> Self {
        CollectErrorKind::Parse(path.to_path_buf(), what.into()).into()
    }
    pub fn not_found(path: PathBuf) -> Self {
        CollectErrorKind::NotFound(path).into()
    }
    pub fn kind(&self) -> &CollectErrorKind {
        &self.0
    }
    /// The source is absent on this device.
    pub fn is_not_found(&self) -> bool {
        matches!(*self.0, CollectErrorKind::NotFound(_))
    }
    /// The source was read but made no sense.
    pub fn is_parse(&self) -> bool {
        matches!(*self.0, CollectErrorKind::Parse(..))
    }
    /// The file (or call) the error is about.
    pub fn path(&self) -> &Path {
        match &*self.0 {
            CollectErrorKind::NotFound(p)
            | CollectErrorKind::Io(p, _)
            | CollectErrorKind::Parse(p, _) => p,
        }
    }
}

impl std::fmt::Debug for CollectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for CollectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0 {
            CollectErrorKind::NotFound(p) => {
                write!(f, "{}: not present on this system", p.display())
            }
            CollectErrorKind::Io(p, e) => write!(f, "{}: {e}", p.display()),
            CollectErrorKind::Parse(p, w) => write!(f, "{}: {w}", p.display()),
        }
    }
}

impl std::error::Error for CollectError {}

/// What a collector gets for one run.
pub struct Context<'a> {
    pub roots: &'a Roots,
    /// Wall-clock time of this collection, in ms (for `node_time_seconds`).
    pub now_ms: i64,
}

/// One node_exporter collector.
pub trait Collector {
    /// The collector name as node_exporter spells it (`cpu`, `meminfo`, ...).
    fn name(&self) -> &'static str;
    /// Reads the source and appends families to `out`.
    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError>;
}

/// A collector option, named as node_exporter's flag without the `--collector.` prefix
/// (`filesystem.mount-points-exclude`); the flag table turns each into `--collector.<name>`.
pub struct CollectorOption {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

/// Option values given by flags or the config file, keyed by [`CollectorOption::name`].
#[derive(Clone, Debug, Default)]
pub struct CollectorOptions {
    values: std::collections::BTreeMap<String, String>,
}

impl CollectorOptions {
    pub fn set(&mut self, name: &str, value: &str) {
        self.values.insert(name.to_string(), value.to_string());
    }
    /// Whether `name` was given explicitly (node_exporter treats an explicit exclude next to
    /// an include differently from the default exclude).
    pub fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }
    /// The value of `name`, or the default declared in the collector table.
    pub fn get(&self, name: &str) -> &str {
        if let Some(v) = self.values.get(name) {
            return v;
        }
        COLLECTORS
            .iter()
            .flat_map(|d| d.options.iter())
            .find(|o| o.name == name)
            .map(|o| o.default)
            .unwrap_or("")
    }
}

/// One row of the collector table: name, on by default, options, constructor. The constructor
/// validates options (e.g. compiles regexes) and fails with a message naming the option.
pub struct CollectorDef {
    pub name: &'static str,
    pub default_enabled: bool,
    pub options: &'static [CollectorOption],
    pub new: fn(&CollectorOptions) -> Result<Box<dyn Collector>, String>,
}

/// Every collector promlet has, in `--help` order. Collectors are added here as they land.
/// Keep it alphabetical.
pub const COLLECTORS: &[CollectorDef] = &[
    CollectorDef {
        name: "arp",
        default_enabled: true,
        options: arp::OPTIONS,
        new: arp::new,
    },
    CollectorDef {
        name: "conntrack",
        default_enabled: true,
        options: &[],
        new: conntrack::new,
    },
    CollectorDef {
        name: "cpu",
        default_enabled: true,
        options: cpu::OPTIONS,
        new: cpu::new,
    },
    CollectorDef {
        name: "cpufreq",
        default_enabled: true,
        options: &[],
        new: cpufreq::new,
    },
    CollectorDef {
        name: "diskstats",
        default_enabled: true,
        options: diskstats::OPTIONS,
        new: diskstats::new,
    },
    CollectorDef {
        name: "dmi",
        default_enabled: true,
        options: &[],
        new: dmi::new,
    },
    CollectorDef {
        name: "edac",
        default_enabled: true,
        options: &[],
        new: edac::new,
    },
    CollectorDef {
        name: "entropy",
        default_enabled: true,
        options: &[],
        new: entropy::new,
    },
    CollectorDef {
        name: "filefd",
        default_enabled: true,
        options: &[],
        new: filefd::new,
    },
    CollectorDef {
        name: "filesystem",
        default_enabled: true,
        options: filesystem::OPTIONS,
        new: filesystem::new,
    },
    CollectorDef {
        name: "hwmon",
        default_enabled: true,
        options: hwmon::OPTIONS,
        new: hwmon::new,
    },
    CollectorDef {
        name: "ipvs",
        default_enabled: true,
        options: ipvs::OPTIONS,
        new: ipvs::new,
    },
    CollectorDef {
        name: "kernel_hung",
        default_enabled: true,
        options: &[],
        new: kernel_hung::new,
    },
    CollectorDef {
        name: "loadavg",
        default_enabled: true,
        options: &[],
        new: loadavg::new,
    },
    CollectorDef {
        name: "mdadm",
        default_enabled: true,
        options: &[],
        new: mdadm::new,
    },
    CollectorDef {
        name: "meminfo",
        default_enabled: true,
        options: &[],
        new: meminfo::new,
    },
    CollectorDef {
        name: "netclass",
        default_enabled: true,
        options: netclass::OPTIONS,
        new: netclass::new,
    },
    CollectorDef {
        name: "netdev",
        default_enabled: true,
        options: netdev::OPTIONS,
        new: netdev::new,
    },
    CollectorDef {
        name: "netstat",
        default_enabled: true,
        options: netstat::OPTIONS,
        new: netstat::new,
    },
    CollectorDef {
        name: "nfs",
        default_enabled: true,
        options: &[],
        new: nfs::new,
    },
    CollectorDef {
        name: "nfsd",
        default_enabled: true,
        options: &[],
        new: nfsd::new,
    },
    CollectorDef {
        name: "nvme",
        default_enabled: true,
        options: &[],
        new: nvme::new,
    },
    CollectorDef {
        name: "os",
        default_enabled: true,
        options: &[],
        new: os::new,
    },
    CollectorDef {
        name: "powersupplyclass",
        default_enabled: true,
        options: powersupplyclass::OPTIONS,
        new: powersupplyclass::new,
    },
    CollectorDef {
        name: "pressure",
        default_enabled: true,
        options: &[],
        new: pressure::new,
    },
    CollectorDef {
        name: "rapl",
        default_enabled: true,
        options: rapl::OPTIONS,
        new: rapl::new,
    },
    CollectorDef {
        name: "schedstat",
        default_enabled: true,
        options: &[],
        new: schedstat::new,
    },
    CollectorDef {
        name: "sockstat",
        default_enabled: true,
        options: &[],
        new: sockstat::new,
    },
    CollectorDef {
        name: "softnet",
        default_enabled: true,
        options: &[],
        new: softnet::new,
    },
    CollectorDef {
        name: "stat",
        default_enabled: true,
        options: stat::OPTIONS,
        new: stat::new,
    },
    CollectorDef {
        name: "textfile",
        default_enabled: true,
        options: textfile::OPTIONS,
        new: textfile::new,
    },
    CollectorDef {
        name: "thermal_zone",
        default_enabled: true,
        options: &[],
        new: thermal_zone::new,
    },
    CollectorDef {
        name: "time",
        default_enabled: true,
        options: &[],
        new: time::new,
    },
    CollectorDef {
        name: "timex",
        default_enabled: true,
        options: &[],
        new: timex::new,
    },
    CollectorDef {
        name: "udp_queues",
        default_enabled: true,
        options: &[],
        new: udp_queues::new,
    },
    CollectorDef {
        name: "uname",
        default_enabled: true,
        options: &[],
        new: uname::new,
    },
    CollectorDef {
        name: "vmstat",
        default_enabled: true,
        options: vmstat::OPTIONS,
        new: vmstat::new,
    },
    CollectorDef {
        name: "watchdog",
        default_enabled: true,
        options: &[],
        new: watchdog::new,
    },
    CollectorDef {
        name: "zfs",
        default_enabled: true,
        options: &[],
        new: zfs::new,
    },
];

/// Runs the enabled collectors and reports per-collector duration and success.
pub struct Driver {
    collectors: Vec<Box<dyn Collector>>,
    /// Per collector: when its source was last found missing (wall ms). Such a collector is
    /// not run again until [`util::REPROBE_ABSENT_MS`] later (it reports success 0 meanwhile),
    /// so a steady-state scrape makes no failed `open` for ipvs, nfs, zfs, ...; a change of
    /// state is logged once.
    absent_since: Vec<Option<i64>>,
}

impl Driver {
    /// Builds the collectors whose names `enabled` says yes to.
    pub fn new(
        enabled: impl Fn(&CollectorDef) -> bool,
        opts: &CollectorOptions,
    ) -> Result<Self, String> {
        let mut collectors = Vec::new();
        for d in COLLECTORS.iter().filter(|d| enabled(d)) {
            collectors.push((d.new)(opts).map_err(|e| format!("collector {}: {e}", d.name))?);
        }
        let absent_since = vec![None; collectors.len()];
        Ok(Driver {
            collectors,
            absent_since,
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.collectors.iter().map(|c| c.name())
    }

    /// One full collection cycle into `out`.
    pub fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) {
        let dur = out.family_static(
            "node_scrape_collector_duration_seconds",
            "node_exporter: Duration of a collector scrape.",
            MetricType::Gauge,
        );
        let ok = out.family_static(
            "node_scrape_collector_success",
            "node_exporter: Whether a collector succeeded.",
            MetricType::Gauge,
        );
        // One clock read per collector: each one's end is the next one's start, so a duration
        // also holds the bookkeeping of the collector before it (well under a microsecond).
        let mut start = Instant::now();
        for (i, c) in self.collectors.iter_mut().enumerate() {
            let name = c.name();
            let absent = &mut self.absent_since[i];
            if absent.is_some_and(|t| util::still_absent(t, ctx.now_ms)) {
                collector_sample(out, dur, name, 0.0);
                collector_sample(out, ok, name, 0.0);
                continue;
            }
            let samples_before = out.sample_count();
            let result = c.collect(ctx, out);
            let end = Instant::now();
            let secs = end.saturating_duration_since(start).as_secs_f64();
            start = end;
            // Only a collector that produced nothing is skipped while absent: one that found
            // part of its sources keeps running.
            let produced = out.sample_count() != samples_before;
            let success = match result {
                Ok(()) => {
                    if absent.take().is_some() {
                        crate::log::debug(&format!("collector {name}: source present again"));
                    }
                    1.0
                }
                Err(ref e) if e.is_not_found() && produced => {
                    *absent = None;
                    0.0
                }
                Err(ref e) if e.is_not_found() => {
                    if absent.replace(ctx.now_ms).is_none() {
                        crate::log::debug(&format!(
                            "collector {name}: {} not present; reporting success 0",
                            e.path().display()
                        ));
                    }
                    0.0
                }
                Err(e) => {
                    *absent = None;
                    crate::log::error(&format!("collector {name} failed: {e}"));
                    0.0
                }
            };
            collector_sample(out, dur, name, secs);
            collector_sample(out, ok, name, success);
        }
    }
}

/// A sample of `family` labelled `collector="<name>"`, through the parser-level API: the
/// name is copied as it is, without the formatting machinery `MetricSet::sample` runs for
/// every label value (two samples per collector: ~0.3 % of a scrape).
fn collector_sample(out: &mut MetricSet, family: crate::expo::FamilyId, name: &str, value: f64) {
    let first = out.label_mark();
    out.push_label("collector", name);
    out.push_sample(family, "", first, value, None);
}

#[cfg(test)]
mod tests {
    use super::fixtures::{alloc_count, node_fixtures, roots_at};
    use super::*;

    /// A sysfs class directory whose entries are dangling links (a device that went away, or
    /// node_exporter's partial fixture tree) yields no samples and no error.
    #[test]
    fn dangling_class_links_are_skipped_not_errors() {
        let s = super::fixtures::Scratch::new("dangling");
        for class in [
            "hwmon/hwmon9",
            "net/eth9",
            "thermal/thermal_zone9",
            "power_supply/BAT9",
            "watchdog/watchdog9",
            "nvme/nvme9",
            "powercap/intel-rapl:9",
        ] {
            let link = s.dir.join("sys/class").join(class);
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink("../../devices/gone/away", &link).unwrap();
        }
        let roots = s.roots();
        for name in [
            "hwmon",
            "netclass",
            "thermal_zone",
            "powersupplyclass",
            "watchdog",
            "nvme",
            "rapl",
        ] {
            let d = COLLECTORS.iter().find(|d| d.name == name).unwrap();
            let mut c = (d.new)(&CollectorOptions::default()).unwrap();
            let mut set = MetricSet::new();
            let ctx = Context {
                roots: &roots,
                now_ms: 0,
            };
            let r = c.collect(&ctx, &mut set);
            assert!(r.is_ok(), "{name}: {r:?}");
            assert_eq!(set.sample_count(), 0, "{name}");
        }
    }

    /// Every file of the fixture trees truncated mid-line, replaced by garbage of the same
    /// length, or emptied: every collector returns (an error or partial data), none panics,
    /// and most of the file-based ones report the damage as an error.
    #[test]
    fn every_collector_survives_truncated_garbage_and_empty_files() {
        let Some(dir) = node_fixtures() else { return };
        let mut opts = CollectorOptions::default();
        opts.set("cpu.info", "true");
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        // One copy, rewritten in place per variant from the original contents.
        let s = super::fixtures::Scratch::new("damaged");
        for sub in ["proc", "sys", "usr", "udev"] {
            s.copy_tree(&dir, sub);
        }
        let mut files = Vec::new();
        let mut stack = vec![s.dir.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let meta = std::fs::symlink_metadata(&p).unwrap();
                if meta.is_dir() {
                    stack.push(p);
                } else if meta.is_file() {
                    let content = std::fs::read(&p).unwrap();
                    files.push((p, content));
                }
            }
        }
        for variant in ["truncated", "garbage", "empty"] {
            for (p, content) in &files {
                let new: Vec<u8> = match variant {
                    "truncated" => content[..content.len() / 2].to_vec(),
                    "garbage" => content
                        .iter()
                        .map(|_| {
                            seed ^= seed << 13;
                            seed ^= seed >> 7;
                            seed ^= seed << 17;
                            seed as u8
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                std::fs::write(p, new).unwrap();
            }
            let roots = s.roots();
            let mut failed = Vec::new();
            for d in COLLECTORS {
                let mut c = (d.new)(&opts).unwrap();
                let mut set = MetricSet::new();
                let ctx = Context {
                    roots: &roots,
                    now_ms: 0,
                };
                if c.collect(&ctx, &mut set).is_err() {
                    failed.push(d.name);
                }
                // The partial output still encodes.
                let mut out = Vec::new();
                crate::expo::encode_text(&set, &mut out);
            }
            println!(
                "{variant}: {} of {} collectors reported an error: {failed:?}",
                failed.len(),
                COLLECTORS.len()
            );
            if variant == "garbage" {
                assert!(failed.len() * 2 > COLLECTORS.len(), "{failed:?}");
            }
        }
    }

    /// After one warm-up cycle, a collection over the full fixture trees allocates far less
    /// than once per sample: label values go straight into the MetricSet arena and file
    /// buffers are reused. What remains is directory listings (std's read_dir allocates per
    /// entry) and path joins per device.
    #[test]
    fn warmed_up_collectors_allocate_less_than_once_per_sample() {
        let Some(dir) = node_fixtures() else { return };
        let roots = roots_at(&dir);
        let mut opts = CollectorOptions::default();
        opts.set("cpu.info", "true");
        for d in COLLECTORS {
            let mut c = (d.new)(&opts).unwrap();
            let mut set = MetricSet::new();
            let ctx = Context {
                roots: &roots,
                now_ms: 0,
            };
            let _ = c.collect(&ctx, &mut set);
            set.clear();
            let before = alloc_count::now();
            let _ = c.collect(&ctx, &mut set);
            let allocs = alloc_count::now() - before;
            let samples = set.sample_count() as u64;
            println!(
                "{:<18} {:>5} samples {:>5} allocations",
                d.name, samples, allocs
            );
            if samples >= 20 {
                assert!(
                    allocs < samples,
                    "{}: {allocs} allocations for {samples} samples",
                    d.name
                );
            }
        }
    }

    /// A collector whose whole source is absent is not run again until the re-probe time has
    /// passed (success 0 meanwhile, no failed open per scrape); a source that appears later
    /// (a module loaded) is reported at the first collection after that time, and a wall
    /// clock that stepped back re-probes at once.
    #[test]
    fn absent_collector_is_skipped_until_the_reprobe_time_and_then_picked_up() {
        let s = super::fixtures::Scratch::new("reprobe");
        std::fs::create_dir_all(s.dir.join("proc")).unwrap();
        let roots = s.roots();
        let mut d = Driver::new(|c| c.name == "kernel_hung", &CollectorOptions::default()).unwrap();
        let run = |d: &mut Driver, now_ms: i64| {
            let mut set = MetricSet::new();
            d.collect(
                &Context {
                    roots: &roots,
                    now_ms,
                },
                &mut set,
            );
            let mut out = Vec::new();
            crate::expo::encode_text(&set, &mut out);
            String::from_utf8(out).unwrap()
        };
        let success = |text: &str, v: &str| {
            text.contains(&format!(
                "node_scrape_collector_success{{collector=\"kernel_hung\"}} {v}\n"
            ))
        };
        let t0 = 1_700_000_000_000;
        assert!(success(&run(&mut d, t0), "0"));
        s.write("proc/sys/kernel/hung_task_detect_count", b"3\n");
        // Within the re-probe time the collector is not run: still absent.
        let text = run(&mut d, t0 + util::REPROBE_ABSENT_MS - 1);
        assert!(success(&text, "0"), "{text}");
        assert!(!text.contains("node_kernel_hung_tasks_total"));
        // Then it is probed again and found.
        let text = run(&mut d, t0 + util::REPROBE_ABSENT_MS);
        assert!(success(&text, "1"), "{text}");
        assert!(text.contains("node_kernel_hung_tasks_total 3\n"));
        // Absent on another device, then present while the wall clock steps back (NTP on a
        // board without RTC): re-probed at once.
        std::fs::remove_file(s.dir.join("proc/sys/kernel/hung_task_detect_count")).unwrap();
        let mut d = Driver::new(|c| c.name == "kernel_hung", &CollectorOptions::default()).unwrap();
        assert!(success(&run(&mut d, t0), "0"));
        s.write("proc/sys/kernel/hung_task_detect_count", b"4\n");
        let text = run(&mut d, t0 - 60_000);
        assert!(text.contains("node_kernel_hung_tasks_total 4\n"), "{text}");
    }
}
