//! The `arp` collector: ARP entries per interface from `/proc/net/arp`.
//!
//! Must not touch: netlink. node_exporter 1.11 defaults to netlink (`arp.netlink`); promlet
//! always reads the file, which node_exporter also reads with `--no-collector.arp.netlink`.
//! The netlink-only `node_arp_states` family is therefore not produced.

use super::sysfs::DeviceFilter;
use super::util::{lines, words, KeptFile};
use super::{CollectError, Collector, CollectorOption, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};
use std::ops::Range;

pub const OPTIONS: &[CollectorOption] = &[
    CollectorOption {
        name: "arp.device-include",
        default: "",
        help: "Regexp of arp devices to include (mutually exclusive to device-exclude).",
    },
    CollectorOption {
        name: "arp.device-exclude",
        default: "",
        help: "Regexp of arp devices to exclude (mutually exclusive to device-include).",
    },
];

pub struct Arp {
    filter: DeviceFilter,
    text: String,
    file: KeptFile,
    /// (device name as a range into `text`, entries)
    counts: Vec<(Range<usize>, u32)>,
}

pub fn new(opts: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::new(Arp {
        filter: DeviceFilter::from_opts(opts, "arp.device-include", "arp.device-exclude")?,
        text: String::new(),
        file: KeptFile::new("net/arp").short_read_ends(256),
        counts: Vec::new(),
    }))
}

impl Collector for Arp {
    fn name(&self) -> &'static str {
        "arp"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        self.file.read(&ctx.roots.procfs, &mut self.text)?;
        let path = self.file.path();
        self.counts.clear();
        let base = self.text.as_ptr() as usize;
        for line in lines(&self.text).skip(1) {
            if line.trim().is_empty() {
                continue;
            }
            // IP address, HW type, Flags, HW address, Mask, Device
            let fields = words(line).count();
            let dev = words(line).last().unwrap_or("");
            if fields != 6 {
                return Err(CollectError::parse(
                    path,
                    format!("bad line {:?}", super::sysfs::short(line)),
                ));
            }
            let start = dev.as_ptr() as usize - base;
            let range = start..start + dev.len();
            match self
                .counts
                .iter_mut()
                .find(|(r, _)| self.text[r.clone()] == *dev)
            {
                Some((_, n)) => *n += 1,
                None => self.counts.push((range, 1)),
            }
        }
        let f = out.family_static(
            "node_arp_entries",
            "ARP entries by device",
            MetricType::Gauge,
        );
        for (r, n) in &self.counts {
            let dev = &self.text[r.clone()];
            if !self.filter.ignored(dev) {
                out.sample(f, &[("device", &dev)], *n as f64);
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
    fn arp_matches_node_exporter_on_fixtures() {
        let Some(dir) = node_fixtures() else { return };
        let mut o = CollectorOptions::default();
        o.set("arp.device-exclude", "nope");
        let mut c = new(&o).unwrap();
        let text = run(c.as_mut(), &roots_at(&dir)).unwrap();
        assert_golden(&dir, &text, &["node_arp_entries"]);
    }

    #[test]
    fn arp_truncated_line_is_an_error() {
        let s = Scratch::new("arp");
        s.write(
            "proc/net/arp",
            b"IP address HW type Flags HW address Mask Device\n192.168.1.1 0x1 0x2 cc:aa",
        );
        let mut c = new(&CollectorOptions::default()).unwrap();
        assert!(matches!(
            run(c.as_mut(), &s.roots()),
            Err(ref e) if e.is_parse()
        ));
    }
}
