//! The `cpu` collector: per-CPU time from `/proc/stat`, guest time, thermal throttle counters
//! and isolated CPUs from sysfs, and (with `cpu.info`) `/proc/cpuinfo` as info metrics.
//!
//! Must not touch: cpufreq (its own collector), `/proc/stat`'s other lines (the `stat`
//! collector owns them).
//!
//! Like node_exporter, counters are kept monotonic: a value that goes backwards keeps the last
//! one, and an idle counter that drops by 3 s or more means a hot-plugged CPU, whose cache is
//! reset. `/proc/stat` counts in USER_HZ, which Linux fixes at 100 on every architecture.

use super::sysfs::{
    opt_bool, opt_regex, parse_cpu_list, short, KeptAttrs, KeptListing, ListingEntries,
};
use super::util::{lines, parse_u64, split_once_byte, words, KeptFile};
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};
use regex_lite::Regex;
use std::path::PathBuf;

const USER_HZ: f64 = 100.0;
/// An idle counter dropping by this many seconds resets a CPU's cache (node_exporter's value).
const JUMP_BACK_SECONDS: f64 = 3.0;
/// Per-CPU fields of `/proc/stat`, in file order.
const FIELDS: usize = 10;
const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

pub struct Cpu {
    guest: bool,
    info: bool,
    flags_include: Option<Regex>,
    bugs_include: Option<Regex>,
    text: String,
    stat_file: KeptFile,
    cpuinfo_file: KeptFile,
    isolated_file: KeptFile,
    attr: Vec<u8>,
    /// `/sys/devices/system/cpu`, listed again only when a CPU directory came or went.
    cpu_dirs: KeptListing,
    /// The `cpuN` entries of `cpu_dirs`.
    cpu_entries: ListingEntries<()>,
    path: PathBuf,
    /// Last exported counters per CPU index, and whether the CPU was seen in this cycle.
    cache: Vec<Option<[f64; FIELDS]>>,
    seen: Vec<bool>,
    /// (package, core, core_throttle_count) and (package, package_throttle_count).
    cores: Vec<(u64, u64, Option<u64>)>,
    packages: Vec<(u64, Option<u64>)>,
    isolated: Vec<u32>,
    /// (cpu, contents of `cpuN/online` == "1", or None when unreadable).
    online: Vec<(u32, Option<bool>)>,
    /// (cpu, online, physical_package_id, core_id) as last read. The topology of a
    /// CPU cannot change while it stays online (its `topology/` files exist only while it is
    /// online, and come back with the same values for the same CPU), so they are read again
    /// only when `cpuN/online` reads differently from last time: 2 reads per CPU per scrape
    /// saved. One entry per CPU number, so this never outgrows the CPU directories.
    topology: Vec<(u32, Option<bool>, u64, u64)>,
    /// `cpuN/online`, topology and throttle files, kept open between cycles (3 per CPU here:
    /// 42 syscalls per scrape on 2 CPUs became 6).
    kept: KeptAttrs,
}

/// Slots of [`Cpu::kept`]: per-CPU sysfs files, path relative to `cpuN/`.
const CPU_FILES: [&str; 5] = [
    "online",
    "topology/physical_package_id",
    "topology/core_id",
    "thermal_throttle/core_throttle_count",
    "thermal_throttle/package_throttle_count",
];

/// Open files [`Cpu::kept`] holds at most: 3 per CPU for 10 CPUs; beyond that they are
/// opened per read as before.
const KEPT_CPU_FILES: usize = 30;

pub const OPTIONS: &[super::CollectorOption] = &[
    super::CollectorOption {
        name: "cpu.guest",
        default: "true",
        help: "Enables metric node_cpu_guest_seconds_total",
    },
    super::CollectorOption {
        name: "cpu.info",
        default: "false",
        help: "Enables metric cpu_info",
    },
    super::CollectorOption {
        name: "cpu.info.flags-include",
        default: "",
        help: "Filter the `flags` field in cpuInfo with a value that must be a regular expression",
    },
    super::CollectorOption {
        name: "cpu.info.bugs-include",
        default: "",
        help: "Filter the `bugs` field in cpuInfo with a value that must be a regular expression",
    },
];

pub fn new(opts: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    let flags_include = opt_regex(opts, "cpu.info.flags-include")?;
    let bugs_include = opt_regex(opts, "cpu.info.bugs-include")?;
    // As in node_exporter, setting an include filter turns cpu.info on.
    let info = opt_bool(opts, "cpu.info") || flags_include.is_some() || bugs_include.is_some();
    Ok(Box::new(Cpu {
        guest: opt_bool(opts, "cpu.guest"),
        info,
        flags_include,
        bugs_include,
        text: String::new(),
        stat_file: KeptFile::new("stat").short_read_ends(0),
        cpuinfo_file: KeptFile::new("cpuinfo"),
        isolated_file: KeptFile::new("devices/system/cpu/isolated").short_read_ends(0),
        kept: KeptAttrs::new(CPU_FILES.len(), KEPT_CPU_FILES),
        attr: Vec::new(),
        cpu_dirs: KeptListing::default(),
        cpu_entries: ListingEntries::default(),
        path: PathBuf::new(),
        cache: Vec::new(),
        seen: Vec::new(),
        cores: Vec::new(),
        packages: Vec::new(),
        isolated: Vec::new(),
        online: Vec::new(),
        topology: Vec::new(),
    }))
}

impl Collector for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        if self.info {
            self.collect_info(ctx, out)?;
        }
        self.collect_stat(ctx, out)?;
        self.collect_isolated(ctx, out)?;
        self.collect_throttles(ctx, out)
    }
}

impl Cpu {
    fn collect_stat(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        self.stat_file
            .read_and_share(&ctx.roots.procfs, &mut self.text, ctx.now_ms)?;
        let path = self.stat_file.path();
        self.seen.iter_mut().for_each(|s| *s = false);
        let mut any = false;
        for line in lines(&self.text) {
            let Some(rest) = line.strip_prefix("cpu") else {
                continue;
            };
            if !rest.starts_with(|c: char| c.is_ascii_digit()) {
                continue; // the aggregate "cpu " line
            }
            let mut it = words(rest);
            let bad = || CollectError::parse(path, format!("bad cpu line {:?}", short(line)));
            let idx: usize = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            if idx > 65_535 {
                return Err(bad());
            }
            let mut v = [0f64; FIELDS];
            let mut n = 0;
            for (slot, tok) in v.iter_mut().zip(&mut it) {
                *slot = parse_u64(tok).ok_or_else(bad)? as f64 / USER_HZ;
                n += 1;
            }
            // Kernels older than 2.6.11 had fewer fields; fewer than idle is truncation.
            if n < 4 {
                return Err(bad());
            }
            any = true;
            if self.cache.len() <= idx {
                self.cache.resize(idx + 1, None);
                self.seen.resize(idx + 1, false);
            }
            self.seen[idx] = true;
            let merged = match self.cache[idx] {
                Some(old) if old[3] - v[3] < JUMP_BACK_SECONDS => {
                    let mut m = old;
                    for (m, new) in m.iter_mut().zip(v) {
                        if new >= *m {
                            *m = new;
                        }
                    }
                    m
                }
                _ => v,
            };
            self.cache[idx] = Some(merged);
        }
        if !any {
            return Err(CollectError::parse(path, "no per-CPU lines"));
        }
        let secs = out.family_static(
            "node_cpu_seconds_total",
            "Seconds the CPUs spent in each mode.",
            MetricType::Counter,
        );
        let guest = out.family_static(
            "node_cpu_guest_seconds_total",
            "Seconds the CPUs spent in guests (VMs) for each mode.",
            MetricType::Counter,
        );
        for (cpu, v) in self.cache.iter_mut().enumerate() {
            if !self.seen[cpu] {
                *v = None; // offline now: forget it, as node_exporter does
                continue;
            }
            let Some(v) = v else { continue };
            for (mode, val) in MODES.iter().zip(v.iter()) {
                out.sample(secs, &[("cpu", &cpu), ("mode", mode)], *val);
            }
            if self.guest {
                out.sample(guest, &[("cpu", &cpu), ("mode", &"nice")], v[9]);
                out.sample(guest, &[("cpu", &cpu), ("mode", &"user")], v[8]);
            }
        }
        Ok(())
    }

    fn collect_info(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        self.cpuinfo_file.read(&ctx.roots.procfs, &mut self.text)?;
        let path = self.cpuinfo_file.path();
        let info = out.family_static(
            "node_cpu_info",
            "CPU information from /proc/cpuinfo.",
            MetricType::Gauge,
        );
        let freq = out.family_static(
            "node_cpu_frequency_hertz",
            "CPU frequency in hertz from /proc/cpuinfo.",
            MetricType::Gauge,
        );
        let flag_f = out.family_static(
            "node_cpu_flag_info",
            "The `flags` field of CPU information from /proc/cpuinfo taken from the first core.",
            MetricType::Gauge,
        );
        let bug_f = out.family_static(
            "node_cpu_bug_info",
            "The `bugs` field of CPU information from /proc/cpuinfo taken from the first core.",
            MetricType::Gauge,
        );
        let mut first = true;
        for block in self.text.split("\n\n") {
            let mut b = CpuInfoBlock::default();
            for line in lines(block) {
                let Some((k, v)) = split_once_byte(line, b':') else {
                    continue;
                };
                let v = v.trim();
                match k.trim() {
                    "processor" => b.processor = Some(v),
                    "vendor_id" => b.vendor = v,
                    "cpu family" => b.family = v,
                    "model" => b.model = v,
                    "model name" => b.model_name = v,
                    "stepping" => b.stepping = v,
                    "microcode" => b.microcode = v,
                    "cache size" => b.cachesize = v,
                    "physical id" => b.package = v,
                    "core id" => b.core = v,
                    "cpu MHz" => b.mhz = Some(v),
                    "flags" => b.flags = v,
                    "bugs" => b.bugs = v,
                    _ => {}
                }
            }
            let Some(cpu) = b.processor else { continue };
            let bad = |what: &str| CollectError::parse(path, format!("bad {what} for cpu {cpu}"));
            let cpu_num: u32 = cpu.parse().map_err(|_| bad("processor"))?;
            out.sample(
                info,
                &[
                    ("cachesize", &b.cachesize),
                    ("core", &b.core),
                    ("cpu", &cpu_num),
                    ("family", &b.family),
                    ("microcode", &b.microcode),
                    ("model", &b.model),
                    ("model_name", &b.model_name),
                    ("package", &b.package),
                    ("stepping", &b.stepping),
                    ("vendor", &b.vendor),
                ],
                1.0,
            );
            // node_exporter emits this only while its cpufreq collector is enabled (the
            // default); promlet always emits it with cpu.info.
            if let Some(mhz) = b.mhz {
                let mhz: f64 = mhz.parse().map_err(|_| bad("cpu MHz"))?;
                out.sample(
                    freq,
                    &[
                        ("core", &b.core),
                        ("cpu", &cpu_num),
                        ("package", &b.package),
                    ],
                    mhz * 1e6,
                );
            }
            if first {
                first = false;
                for (filter, list, fam, label) in [
                    (&self.flags_include, b.flags, flag_f, "flag"),
                    (&self.bugs_include, b.bugs, bug_f, "bug"),
                ] {
                    let Some(re) = filter else { continue };
                    for item in words(list).filter(|i| re.is_match(i)) {
                        out.sample(fam, &[(label, &item)], 1.0);
                    }
                }
            }
        }
        Ok(())
    }

    fn collect_isolated(
        &mut self,
        ctx: &Context<'_>,
        out: &mut MetricSet,
    ) -> Result<(), CollectError> {
        match self.isolated_file.read(&ctx.roots.sysfs, &mut self.text) {
            Ok(()) => {}
            Err(ref e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        }
        parse_cpu_list(&self.text, &mut self.isolated)
            .map_err(|e| CollectError::parse(self.isolated_file.path(), e))?;
        let f = out.family_static(
            "node_cpu_isolated",
            "Whether each core is isolated, information from /sys/devices/system/cpu/isolated.",
            MetricType::Gauge,
        );
        for cpu in &self.isolated {
            out.sample(f, &[("cpu", cpu)], 1.0);
        }
        Ok(())
    }

    /// Core and package throttle counts, read once per core and once per package.
    fn collect_throttles(
        &mut self,
        ctx: &Context<'_>,
        out: &mut MetricSet,
    ) -> Result<(), CollectError> {
        let dir = ctx.roots.sys("devices/system/cpu");
        let (names, listing) = match self.cpu_dirs.list_numbered(&dir, ctx.now_ms) {
            Ok(listed) => listed,
            Err(ref e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        let is_cpu = |n: &str| {
            n.strip_prefix("cpu")
                .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit()))
        };
        self.cpu_entries.update(listing, names, is_cpu);
        self.cores.clear();
        self.packages.clear();
        self.online.clear();
        self.kept.begin_cycle(ctx.now_ms);
        for &(at, ()) in &self.cpu_entries.entries {
            let name = &names[at];
            self.path.clear();
            self.path.push(&dir);
            self.path.push(name);
            let mut read = |slot: usize| {
                let rel = CPU_FILES[slot];
                self.path.push(rel);
                let r = match self.kept.read(name, slot, &self.path, &mut self.attr) {
                    None => Ok(None),
                    Some(v) if slot == 0 => Ok(Some(u64::from(v == "1"))),
                    Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
                        CollectError::parse(&self.path, format!("not a number: {:?}", short(&v)))
                    }),
                };
                rel.split('/').for_each(|_| {
                    self.path.pop();
                });
                r
            };
            let number = name.strip_prefix("cpu").and_then(|n| n.parse::<u32>().ok());
            let mut online = None;
            if let Some(n) = number {
                online = read(0)?.map(|v| v == 1);
                self.online.push((n, online));
            }
            let known = number.and_then(|n| self.topology.iter().position(|t| t.0 == n));
            let (package, core) = match known.map(|i| self.topology[i]) {
                Some((_, was_online, package, core)) if was_online == online => (package, core),
                _ => {
                    if let Some(i) = known {
                        self.topology.swap_remove(i);
                    }
                    let Some(package) = read(1)? else {
                        continue;
                    };
                    let Some(core) = read(2)? else {
                        continue;
                    };
                    if let Some(n) = number {
                        self.topology.push((n, online, package, core));
                    }
                    (package, core)
                }
            };
            if !self.cores.iter().any(|c| c.0 == package && c.1 == core) {
                let n = read(3)?;
                self.cores.push((package, core, n));
            }
            if !self.packages.iter().any(|p| p.0 == package) {
                let n = read(4)?;
                self.packages.push((package, n));
            }
        }
        self.kept.end_cycle();
        // As node_exporter: no `online` file on the first CPU (x86 cannot offline cpu0) means
        // the system does not report it; otherwise a CPU without a readable "1" is offline.
        self.online.sort_unstable_by_key(|o| o.0);
        if self.online.first().is_some_and(|o| o.1.is_some()) {
            let f = out.family_static(
                "node_cpu_online",
                "CPUs that are online and being scheduled.",
                MetricType::Gauge,
            );
            for (cpu, online) in &self.online {
                let v = if *online == Some(true) { 1.0 } else { 0.0 };
                out.sample(f, &[("cpu", cpu)], v);
            }
        }
        let pf = out.family_static(
            "node_cpu_package_throttles_total",
            "Number of times this CPU package has been throttled.",
            MetricType::Counter,
        );
        for (package, n) in &self.packages {
            if let Some(n) = n {
                out.sample(pf, &[("package", package)], *n as f64);
            }
        }
        let cf = out.family_static(
            "node_cpu_core_throttles_total",
            "Number of times this CPU core has been throttled.",
            MetricType::Counter,
        );
        for (package, core, n) in &self.cores {
            if let Some(n) = n {
                out.sample(cf, &[("core", core), ("package", package)], *n as f64);
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct CpuInfoBlock<'a> {
    processor: Option<&'a str>,
    vendor: &'a str,
    family: &'a str,
    model: &'a str,
    model_name: &'a str,
    stepping: &'a str,
    microcode: &'a str,
    cachesize: &'a str,
    package: &'a str,
    core: &'a str,
    mhz: Option<&'a str>,
    flags: &'a str,
    bugs: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fixtures::{assert_golden, node_fixtures, roots_at, run, Scratch};

    fn e2e_opts() -> CollectorOptions {
        let mut o = CollectorOptions::default();
        o.set("cpu.info", "true");
        o.set("cpu.info.bugs-include", "^(cpu_meltdown|spectre_.*|mds)$");
        o.set("cpu.info.flags-include", "^(aes|avx.?|constant_tsc)$");
        o
    }

    const FAMILIES: &[&str] = &[
        "node_cpu_bug_info",
        "node_cpu_core_throttles_total",
        "node_cpu_flag_info",
        "node_cpu_frequency_hertz",
        "node_cpu_guest_seconds_total",
        "node_cpu_info",
        "node_cpu_isolated",
        "node_cpu_package_throttles_total",
        "node_cpu_seconds_total",
    ];

    #[test]
    fn cpu_matches_node_exporter_on_fixtures() {
        let Some(dir) = node_fixtures() else { return };
        let mut c = new(&e2e_opts()).unwrap();
        let text = run(c.as_mut(), &roots_at(&dir)).unwrap();
        assert_golden(&dir, &text, FAMILIES);
    }

    #[test]
    fn cpu_without_info_emits_no_info_families() {
        let Some(dir) = node_fixtures() else { return };
        let mut c = new(&CollectorOptions::default()).unwrap();
        let text = run(c.as_mut(), &roots_at(&dir)).unwrap();
        assert!(!text.contains("node_cpu_info"));
        assert!(text.contains("node_cpu_seconds_total{cpu=\"7\",mode=\"idle\"} 11392.82"));
    }

    #[test]
    fn cpu_counters_never_go_backwards_and_reset_on_hotplug() {
        let s = Scratch::new("cpu-mono");
        let mut c = new(&CollectorOptions::default()).unwrap();
        s.write(
            "proc/stat",
            b"cpu  1 1 1 1\ncpu0 500 10 10 1000 0 0 0 0 0 0\n",
        );
        run(c.as_mut(), &s.roots()).unwrap();
        // user goes backwards by a bit: the old value stays.
        s.write(
            "proc/stat",
            b"cpu  1 1 1 1\ncpu0 400 10 10 1001 0 0 0 0 0 0\n",
        );
        let t = run(c.as_mut(), &s.roots()).unwrap();
        assert!(
            t.contains("node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 5\n"),
            "{t}"
        );
        // idle drops by more than 3 s: a hot-plugged CPU, values start over.
        s.write(
            "proc/stat",
            b"cpu  1 1 1 1\ncpu0 100 10 10 10 0 0 0 0 0 0\n",
        );
        let t = run(c.as_mut(), &s.roots()).unwrap();
        assert!(
            t.contains("node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 1\n"),
            "{t}"
        );
    }

    #[test]
    fn cpu_reports_truncated_and_garbage_stat_as_errors() {
        let s = Scratch::new("cpu-bad");
        let mut c = new(&CollectorOptions::default()).unwrap();
        for bad in [
            &b"cpu  1 2 3\ncpu0 1 2"[..],
            b"cpu0 1 2 x 4 5\n",
            b"\x00\xff garbage",
            b"",
        ] {
            s.write("proc/stat", bad);
            match run(c.as_mut(), &s.roots()) {
                // Invalid UTF-8 surfaces as an I/O error (InvalidData) from the reader.
                Err(ref e) if !e.is_not_found() => {}
                other => panic!("{bad:?}: expected an error, got {other:?}"),
            }
        }
    }

    #[test]
    fn cpu_garbage_sysfs_topology_is_an_error_and_missing_sysfs_is_fine() {
        let Some(dir) = node_fixtures() else { return };
        let s = Scratch::new("cpu-sys");
        std::fs::create_dir_all(s.dir.join("proc")).unwrap();
        std::fs::copy(dir.join("proc/stat"), s.dir.join("proc/stat")).unwrap();
        let mut c = new(&CollectorOptions::default()).unwrap();
        // No sysfs at all: /proc/stat alone still succeeds.
        assert!(run(c.as_mut(), &s.roots()).is_ok());
        s.copy_tree(&dir, "sys/devices/system/cpu");
        s.write("sys/devices/system/cpu/cpu0/topology/core_id", b"zero\n");
        assert!(matches!(
            run(c.as_mut(), &s.roots()),
            Err(ref e) if e.is_parse()
        ));
        s.write("sys/devices/system/cpu/cpu0/topology/core_id", b"0\n");
        s.write("sys/devices/system/cpu/isolated", b"1,3-");
        assert!(matches!(
            run(c.as_mut(), &s.roots()),
            Err(ref e) if e.is_parse()
        ));
    }

    #[test]
    fn cpu_online_is_reported_only_when_cpu0_has_the_file() {
        let s = Scratch::new("cpu-online");
        s.write("proc/stat", b"cpu  1 1 1 1\ncpu0 1 1 1 1\ncpu1 1 1 1 1\n");
        s.write("sys/devices/system/cpu/cpu1/online", b"0\n");
        std::fs::create_dir_all(s.dir.join("sys/devices/system/cpu/cpu0")).unwrap();
        let mut c = new(&CollectorOptions::default()).unwrap();
        let t = run(c.as_mut(), &s.roots()).unwrap();
        assert!(!t.contains("node_cpu_online"), "{t}");
        s.write("sys/devices/system/cpu/cpu0/online", b"1\n");
        // A file found absent is looked for again after the re-probe time.
        let later = crate::collect::util::REPROBE_ABSENT_MS;
        let t = crate::collect::fixtures::run_at(c.as_mut(), &s.roots(), later).unwrap();
        assert!(t.contains("node_cpu_online{cpu=\"0\"} 1\n"), "{t}");
        assert!(t.contains("node_cpu_online{cpu=\"1\"} 0\n"), "{t}");
    }

    #[test]
    fn cpu_directory_added_between_collections_is_picked_up() {
        let s = Scratch::new("cpu-hotadd");
        s.write("proc/stat", b"cpu  1 1 1 1\ncpu0 1 1 1 1\n");
        s.write("sys/devices/system/cpu/cpu0/online", b"1\n");
        let mut c = new(&CollectorOptions::default()).unwrap();
        let run_at = crate::collect::fixtures::run_at;
        let t = run_at(c.as_mut(), &s.roots(), 1000).unwrap();
        assert!(!t.contains("cpu=\"1\""), "{t}");
        // A hot-added CPU, still offline: its directory is the only trace of it.
        s.write("sys/devices/system/cpu/cpu1/online", b"0\n");
        let t = run_at(c.as_mut(), &s.roots(), 1001).unwrap();
        assert!(t.contains("node_cpu_online{cpu=\"1\"} 0\n"), "{t}");
        std::fs::remove_dir_all(s.dir.join("sys/devices/system/cpu/cpu1")).unwrap();
        let t = run_at(c.as_mut(), &s.roots(), 1002).unwrap();
        assert!(!t.contains("cpu=\"1\""), "{t}");
    }

    #[test]
    fn cpu_topology_is_read_again_when_a_cpu_goes_offline_or_online() {
        let s = Scratch::new("cpu-topo");
        s.write("proc/stat", b"cpu  1 1 1 1\ncpu0 1 1 1 1\ncpu1 1 1 1 1\n");
        for (cpu, core) in [("cpu0", "0"), ("cpu1", "1")] {
            let base = format!("sys/devices/system/cpu/{cpu}");
            s.write(&format!("{base}/online"), b"1\n");
            s.write(&format!("{base}/topology/physical_package_id"), b"0\n");
            s.write(&format!("{base}/topology/core_id"), core.as_bytes());
            s.write(
                &format!("{base}/thermal_throttle/core_throttle_count"),
                b"5\n",
            );
        }
        let mut c = new(&CollectorOptions::default()).unwrap();
        let run_at = crate::collect::fixtures::run_at;
        let core1 = "node_cpu_core_throttles_total{core=\"1\",package=\"0\"} 5\n";
        let t = run_at(c.as_mut(), &s.roots(), 1000).unwrap();
        assert!(t.contains(core1), "{t}");
        // While cpu1 stays online its topology is not read again...
        let core1_file = "sys/devices/system/cpu/cpu1/topology/core_id";
        s.write(core1_file, b"7\n");
        let t = run_at(c.as_mut(), &s.roots(), 1001).unwrap();
        assert!(t.contains(core1), "{t}");
        // ...but is once `online` reads differently (offline: x86 removes topology/, other
        // architectures may keep it), and again when it comes back.
        s.write("sys/devices/system/cpu/cpu1/online", b"0\n");
        let t = run_at(c.as_mut(), &s.roots(), 1002).unwrap();
        assert!(t.contains("{core=\"7\",package=\"0\"} 5\n"), "{t}");
        s.write(core1_file, b"3\n");
        s.write("sys/devices/system/cpu/cpu1/online", b"1\n");
        let t = run_at(c.as_mut(), &s.roots(), 1003).unwrap();
        assert!(t.contains("{core=\"3\",package=\"0\"} 5\n"), "{t}");
    }

    #[test]
    fn cpu_bad_include_regex_is_rejected_at_construction() {
        let mut o = CollectorOptions::default();
        o.set("cpu.info.flags-include", "(");
        let e = new(&o).err().unwrap();
        assert!(e.contains("cpu.info.flags-include"), "{e}");
    }
}
