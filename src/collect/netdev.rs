//! The `netdev` collector: per-interface traffic counters from `/proc/net/dev`.
//!
//! Must not touch: link properties (the `netclass` collector), the netlink socket.
//!
//! node_exporter 1.11 reads these counters over rtnetlink by default; the counters are the
//! same kernel `rtnl_link_stats64` fields that `/proc/net/dev` prints, so the names and values
//! agree. The one field netlink has and the file lacks, `rx_nohandler`, is read from
//! `/sys/class/net/<iface>/statistics/rx_nohandler` when the kernel has it, or taken from the
//! link dump the `netclass` collector made in the same collection (same counter, no read).
//! Column names come from the file's header, so a kernel that adds columns still parses.

use super::sysfs::{DeviceFilter, KeptAttrs};
use super::util::{lines, parse_u64, split_once_byte, words, KeptFile, KnownTexts};
use super::{CollectError, Collector, CollectorOption, CollectorOptions, Context};
use crate::expo::{FamilyId, MetricSet, MetricType};
use std::path::PathBuf;

pub const OPTIONS: &[CollectorOption] = &[
    CollectorOption {
        name: "netdev.device-include",
        default: "",
        help: "Regexp of net devices to include (mutually exclusive to device-exclude).",
    },
    CollectorOption {
        name: "netdev.device-exclude",
        default: "",
        help: "Regexp of net devices to exclude (mutually exclusive to device-include).",
    },
];

/// Upper bound on columns; the kernel prints 16.
const MAX_COLUMNS: usize = 32;

pub struct NetDev {
    filter: DeviceFilter,
    text: String,
    file: KeptFile,
    families: Vec<FamilyId>,
    /// Metric name and HELP per (direction, column).
    texts: KnownTexts,
    path: PathBuf,
    buf: Vec<u8>,
    /// `statistics/rx_nohandler` per interface, kept open (see [`KeptAttrs`]).
    kept: KeptAttrs,
}

pub fn new(opts: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::new(NetDev {
        filter: DeviceFilter::from_opts(opts, "netdev.device-include", "netdev.device-exclude")?,
        text: String::new(),
        file: KeptFile::new("net/dev").short_read_ends(512),
        families: Vec::new(),
        texts: KnownTexts::default(),
        path: PathBuf::new(),
        buf: Vec::new(),
        kept: KeptAttrs::new(1, 64),
    }))
}

impl NetDev {
    fn declare(&mut self, out: &mut MetricSet, dir: &'static str, field: &str) -> FamilyId {
        // The same ~17 columns every scrape: their texts are built and interned once.
        let (name, help) = self.texts.get(dir, field, |dir, field| {
            (
                format!("node_network_{dir}_{field}_total"),
                format!("Network device statistic {dir}_{field}."),
            )
        });
        out.family_static(name, help, MetricType::Counter)
    }
}

impl Collector for NetDev {
    fn name(&self) -> &'static str {
        "netdev"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        self.file.read(&ctx.roots.procfs, &mut self.text)?;
        let text = std::mem::take(&mut self.text);
        let path = self.file.path().to_path_buf();
        let r = self.parse(ctx, &path, &text, out);
        self.text = text;
        r
    }
}

impl NetDev {
    fn parse(
        &mut self,
        ctx: &Context<'_>,
        path: &std::path::Path,
        text: &str,
        out: &mut MetricSet,
    ) -> Result<(), CollectError> {
        let mut lines = lines(text);
        let _title = lines.next();
        let header = lines
            .next()
            .ok_or_else(|| CollectError::parse(path, "missing column header"))?;
        // " face |bytes packets ...|bytes packets ..."
        let mut parts = header.split('|');
        let (_, rx, tx) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => return Err(CollectError::parse(path, "bad column header")),
        };
        self.families.clear();
        self.texts.restart();
        for f in words(rx) {
            let id = self.declare(out, "receive", f);
            self.families.push(id);
        }
        let n_rx = self.families.len();
        for f in words(tx) {
            let id = self.declare(out, "transmit", f);
            self.families.push(id);
        }
        if self.families.is_empty() || self.families.len() > MAX_COLUMNS {
            return Err(CollectError::parse(path, "bad column header"));
        }
        let nohandler = self.declare(out, "receive", "nohandler");
        let mut values = [0f64; MAX_COLUMNS];
        let host_sysfs = ctx.roots.sysfs == std::path::Path::new("/sys");
        self.kept.begin_cycle(ctx.now_ms);
        for line in lines {
            let bad =
                || CollectError::parse(path, format!("bad line {:?}", super::sysfs::short(line)));
            let (dev, rest) = split_once_byte(line, b':').ok_or_else(bad)?;
            let dev = dev.trim();
            let mut n = 0;
            for tok in words(rest) {
                if n == self.families.len() {
                    return Err(bad());
                }
                values[n] = parse_u64(tok).ok_or_else(bad)? as f64;
                n += 1;
            }
            if n != self.families.len() || dev.is_empty() {
                return Err(bad());
            }
            if self.filter.ignored(dev) {
                continue;
            }
            let labels: [(&str, &dyn crate::expo::LabelValue); 1] = [("device", &dev)];
            for (i, fam) in self.families.iter().enumerate() {
                out.sample(*fam, &labels, values[i]);
                if i + 1 == n_rx {
                    // From netclass's link dump of this collection when it made one (it
                    // describes the same `/sys`), else from sysfs.
                    let shared = host_sysfs
                        .then(|| super::rtnetlink::rx_nohandler_of(dev, ctx.now_ms))
                        .flatten();
                    if let Some(v) = shared {
                        out.sample(nohandler, &labels, v as f64);
                        continue;
                    }
                    self.path.clear();
                    self.path.push(&ctx.roots.sysfs);
                    self.path.push("class/net");
                    self.path.push(dev);
                    self.path.push("statistics/rx_nohandler");
                    let v = self.kept.read(dev, 0, &self.path, &mut self.buf);
                    if let Some(v) = v.and_then(|v| v.parse::<u64>().ok()) {
                        out.sample(nohandler, &labels, v as f64);
                    }
                }
            }
        }
        self.kept.end_cycle();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fixtures::{golden, node_fixtures, run, Scratch};

    const SAMPLE: &[u8] = b"Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 1655489    1292    0    0    0     0          0         0  1655489    1292    0    0    0     0       0          0
  eth0: 466832035   16939    1    2    3     4          5         6   823103   10415    7    8    9    10      11          12
";

    #[test]
    fn netdev_names_match_node_exporter_and_values_come_from_the_file() {
        let s = Scratch::new("netdev");
        s.write("proc/net/dev", SAMPLE);
        s.write("sys/class/net/eth0/statistics/rx_nohandler", b"13\n");
        let mut c = new(&CollectorOptions::default()).unwrap();
        let text = run(c.as_mut(), &s.roots()).unwrap();
        assert!(text.contains("node_network_receive_bytes_total{device=\"eth0\"} 4.66832035e+08\n"));
        assert!(text.contains("node_network_transmit_compressed_total{device=\"eth0\"} 12\n"));
        assert!(text.contains("node_network_receive_nohandler_total{device=\"eth0\"} 13\n"));
        assert!(!text.contains("node_network_receive_nohandler_total{device=\"lo\"}"));
        // Every family name, HELP and TYPE equals node_exporter's (values there are the
        // recording host's, so only the metadata is compared).
        let Some(dir) = node_fixtures() else { return };
        let gold = golden(&dir);
        let ours = crate::collect::fixtures::families(&text);
        assert_eq!(ours.len(), 17);
        for (name, f) in &ours {
            let g = &gold[name];
            assert_eq!((&f.help, &f.typ), (&g.help, &g.typ), "{name}");
        }
    }

    #[test]
    fn netdev_device_include_filters() {
        let s = Scratch::new("netdev-inc");
        s.write("proc/net/dev", SAMPLE);
        let mut o = CollectorOptions::default();
        o.set("netdev.device-include", "^lo$");
        let mut c = new(&o).unwrap();
        let text = run(c.as_mut(), &s.roots()).unwrap();
        assert!(!text.contains("eth0"));
        assert!(text.contains("node_network_receive_packets_total{device=\"lo\"} 1292"));
    }

    #[test]
    fn netdev_truncated_or_garbage_file_is_an_error() {
        let s = Scratch::new("netdev-bad");
        let mut c = new(&CollectorOptions::default()).unwrap();
        assert!(matches!(
            run(c.as_mut(), &s.roots()),
            Err(ref e) if e.is_not_found()
        ));
        let cut = &SAMPLE[..SAMPLE.len() - 20];
        for bad in [cut, &SAMPLE[..30], b"garbage\nmore garbage\nx: 1 2\n"] {
            s.write("proc/net/dev", bad);
            assert!(
                matches!(run(c.as_mut(), &s.roots()), Err(ref e) if e.is_parse()),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
