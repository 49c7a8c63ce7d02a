//! The `cpufreq` collector: per-CPU frequency limits and governor from
//! `/sys/devices/system/cpu/cpuN/cpufreq/` (values there are kHz; exported in Hz).
//!
//! Must not touch: `/proc/cpuinfo` (the `cpu` collector's `cpu.info` part reads it).
//! A CPU without a cpufreq directory (VMs, fixed-clock boards) is skipped, as node_exporter
//! does; only a missing `/sys/devices/system/cpu` is "not present". A missing cpufreq directory
//! is looked for again only every [`REPROBE_ABSENT_MS`](super::util::REPROBE_ABSENT_MS).

use super::sysfs::{read_attr, read_num, KeptListing, ListingEntries};
use super::util::still_absent;
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};
use std::path::PathBuf;

/// (file, family, help) for the numeric kHz attributes, in node_exporter's order.
const FREQS: [(&str, &str, &str); 6] = [
    (
        "cpuinfo_cur_freq",
        "node_cpu_frequency_hertz",
        "Current cpu thread frequency in hertz.",
    ),
    (
        "cpuinfo_min_freq",
        "node_cpu_frequency_min_hertz",
        "Minimum cpu thread frequency in hertz.",
    ),
    (
        "cpuinfo_max_freq",
        "node_cpu_frequency_max_hertz",
        "Maximum cpu thread frequency in hertz.",
    ),
    (
        "scaling_cur_freq",
        "node_cpu_scaling_frequency_hertz",
        "Current scaled CPU thread frequency in hertz.",
    ),
    (
        "scaling_min_freq",
        "node_cpu_scaling_frequency_min_hertz",
        "Minimum scaled CPU thread frequency in hertz.",
    ),
    (
        "scaling_max_freq",
        "node_cpu_scaling_frequency_max_hertz",
        "Maximum scaled CPU thread frequency in hertz.",
    ),
];

pub struct CpuFreq {
    /// `/sys/devices/system/cpu`, listed again only when a CPU directory came or went.
    cpu_dirs: KeptListing,
    path: PathBuf,
    attr: Vec<u8>,
    governors: String,
    /// The `cpuN` entries of `cpu_dirs`, each with when its cpufreq directory was found
    /// missing (no driver on a VM).
    cpus: ListingEntries<Option<i64>>,
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::new(CpuFreq {
        cpu_dirs: KeptListing::default(),
        path: PathBuf::new(),
        attr: Vec::new(),
        governors: String::new(),
        cpus: ListingEntries::default(),
    }))
}

impl Collector for CpuFreq {
    fn name(&self) -> &'static str {
        "cpufreq"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        let dir = ctx.roots.sys("devices/system/cpu");
        let (names, listing) = self.cpu_dirs.list_numbered(&dir, ctx.now_ms)?;
        let fams = FREQS.map(|(_, name, help)| out.family_static(name, help, MetricType::Gauge));
        let gov_f = out.family_static(
            "node_cpu_scaling_governor",
            "Current enabled CPU frequency governor.",
            MetricType::Gauge,
        );
        let is_cpu = |n: &str| {
            n.strip_prefix("cpu")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        self.cpus.update(listing, names, is_cpu);
        for (at, absent_since) in &mut self.cpus.entries {
            if absent_since.is_some_and(|t| still_absent(t, ctx.now_ms)) {
                continue;
            }
            let name = &names[*at];
            let cpu = &name[3..];
            self.path.clear();
            self.path.push(&dir);
            self.path.push(name);
            self.path.push("cpufreq");
            let is_dir = match std::fs::metadata(&self.path) {
                Ok(m) => m.is_dir(),
                Err(e) => {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        *absent_since = Some(ctx.now_ms);
                    }
                    false
                }
            };
            if !is_dir {
                continue;
            }
            *absent_since = None;
            for ((file, _, _), fam) in FREQS.iter().zip(fams) {
                self.path.push(file);
                let v = read_num::<u64>(&self.path, &mut self.attr);
                self.path.pop();
                if let Some(khz) = v? {
                    out.sample(fam, &[("cpu", &cpu)], khz as f64 * 1000.0);
                }
            }
            self.path.push("scaling_available_governors");
            self.governors.clear();
            if let Some(g) = read_attr(&self.path, &mut self.attr) {
                self.governors.push_str(&g);
            }
            self.path.set_file_name("scaling_governor");
            let Some(current) = read_attr(&self.path, &mut self.attr) else {
                continue;
            };
            if current.is_empty() {
                continue;
            }
            for g in self.governors.split(' ') {
                let state = if g == current { 1.0 } else { 0.0 };
                out.sample(gov_f, &[("cpu", &cpu), ("governor", &g)], state);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fixtures::{assert_golden, node_fixtures, roots_at, run, Scratch};

    #[test]
    fn cpufreq_matches_node_exporter_on_fixtures() {
        let Some(dir) = node_fixtures() else { return };
        let mut c = new(&CollectorOptions::default()).unwrap();
        let text = run(c.as_mut(), &roots_at(&dir)).unwrap();
        assert_golden(
            &dir,
            &text,
            &[
                "node_cpu_scaling_frequency_hertz",
                "node_cpu_scaling_frequency_max_hertz",
                "node_cpu_scaling_frequency_min_hertz",
                "node_cpu_scaling_governor",
            ],
        );
    }

    #[test]
    fn cpufreq_garbage_frequency_is_an_error_and_absent_sysfs_is_not_found() {
        let Some(dir) = node_fixtures() else { return };
        let s = Scratch::new("cpufreq");
        let mut c = new(&CollectorOptions::default()).unwrap();
        assert!(matches!(
            run(c.as_mut(), &s.roots()),
            Err(ref e) if e.is_not_found()
        ));
        s.copy_tree(&dir, "sys/devices/system/cpu");
        s.write(
            "sys/devices/system/cpu/cpu1/cpufreq/scaling_cur_freq",
            b"17\x00",
        );
        assert!(matches!(
            run(c.as_mut(), &s.roots()),
            Err(ref e) if e.is_parse()
        ));
        s.write("sys/devices/system/cpu/cpu1/cpufreq/scaling_cur_freq", b"");
        assert!(run(c.as_mut(), &s.roots()).is_err());
    }

    /// A CPU whose cpufreq directory is missing (no driver yet) is looked for again after the
    /// re-probe time, not on every scrape, and then reported.
    #[test]
    fn cpufreq_directory_that_appears_later_is_found_after_the_reprobe_time() {
        use crate::collect::fixtures::run_at;
        use crate::collect::util::REPROBE_ABSENT_MS;
        let s = Scratch::new("cpufreq-late");
        s.write("sys/devices/system/cpu/cpu0/online", b"1\n");
        let mut c = new(&CollectorOptions::default()).unwrap();
        let t0 = 1_000_000;
        let text = run_at(c.as_mut(), &s.roots(), t0).unwrap();
        assert!(!text.contains("cpu=\"0\""), "{text}");
        s.write(
            "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq",
            b"1200000\n",
        );
        let text = run_at(c.as_mut(), &s.roots(), t0 + REPROBE_ABSENT_MS - 1).unwrap();
        assert!(!text.contains("cpu=\"0\""), "{text}");
        let text = run_at(c.as_mut(), &s.roots(), t0 + REPROBE_ABSENT_MS).unwrap();
        assert!(
            text.contains("node_cpu_scaling_frequency_hertz{cpu=\"0\"} 1.2e+09\n"),
            "{text}"
        );
    }
}
