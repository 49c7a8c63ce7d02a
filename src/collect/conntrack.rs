//! `conntrack`: netfilter connection tracking from /proc/sys/net/netfilter/nf_conntrack_{count,max}
//! and the per-CPU /proc/net/stat/nf_conntrack table (summed over CPUs), as `node_nf_conntrack_*`.
//! No nf_conntrack module loaded (no such files) is `NotFound`.

use super::util::{fingerprint, hex, lines, words, KeptFile};
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};

pub struct Conntrack {
    buf: String,
    count: KeptFile,
    max: KeptFile,
    stat: KeptFile,
    /// The stat file's header line as last read (length and fingerprint), its number of
    /// columns and the column of each of [`STATS`].
    header: Option<((usize, u64), usize, [usize; STATS.len()])>,
}

impl Default for Conntrack {
    fn default() -> Self {
        Conntrack {
            buf: String::new(),
            count: KeptFile::new("sys/net/netfilter/nf_conntrack_count").short_read_ends(0),
            max: KeptFile::new("sys/net/netfilter/nf_conntrack_max").short_read_ends(0),
            stat: KeptFile::new("net/stat/nf_conntrack").short_read_ends(512),
            header: None,
        }
    }
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::<Conntrack>::default())
}

/// (column in the stat table, metric, HELP); all gauges, as node_exporter types them.
const STATS: &[(&str, &str, &str)] = &[
    ("found", "node_nf_conntrack_stat_found", "Number of searched entries which were successful."),
    ("invalid", "node_nf_conntrack_stat_invalid", "Number of packets seen which can not be tracked."),
    ("ignore", "node_nf_conntrack_stat_ignore", "Number of packets seen which are already connected to a conntrack entry."),
    ("insert", "node_nf_conntrack_stat_insert", "Number of entries inserted into the list."),
    ("insert_failed", "node_nf_conntrack_stat_insert_failed", "Number of entries for which list insertion was attempted but failed."),
    ("drop", "node_nf_conntrack_stat_drop", "Number of packets dropped due to conntrack failure."),
    ("early_drop", "node_nf_conntrack_stat_early_drop", "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached."),
    ("search_restart", "node_nf_conntrack_stat_search_restart", "Number of conntrack table lookups which had to be restarted due to hashtable resizes."),
];

impl Collector for Conntrack {
    fn name(&self) -> &'static str {
        "conntrack"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        let count = self.count.read_u64(&ctx.roots.procfs, &mut self.buf)?;
        let max = self.max.read_u64(&ctx.roots.procfs, &mut self.buf)?;
        out.single_static(
            "node_nf_conntrack_entries",
            "Number of currently allocated flow entries for connection tracking.",
            MetricType::Gauge,
            count as f64,
        );
        out.single_static(
            "node_nf_conntrack_entries_limit",
            "Maximum size of connection tracking table.",
            MetricType::Gauge,
            max as f64,
        );

        self.stat.read(&ctx.roots.procfs, &mut self.buf)?;
        let path = self.stat.path();
        let mut lines = lines(&self.buf).filter(|l| !l.trim().is_empty());
        let header = lines
            .next()
            .ok_or_else(|| CollectError::parse(path, "empty"))?;
        // Column index of each exported stat; kernels name the columns in the header. The
        // kernel prints the same header every time: its columns are matched only when the
        // line (length and fingerprint) differs from the last one.
        let print = (header.len(), fingerprint(header.as_bytes()));
        let (columns, index) = match self.header {
            Some((p, columns, index)) if p == print => (columns, index),
            _ => {
                let columns = words(header).count();
                let mut index = [usize::MAX; STATS.len()];
                for (i, col) in words(header).enumerate() {
                    if let Some(s) = STATS.iter().position(|(c, ..)| *c == col) {
                        index[s] = i;
                    }
                }
                self.header = Some((print, columns, index));
                (columns, index)
            }
        };
        if index.contains(&usize::MAX) {
            return Err(CollectError::parse(
                path,
                format!("header lacks a known column: {header:?}"),
            ));
        }
        let mut sums = [0u64; STATS.len()];
        for line in lines {
            if words(line).count() != columns {
                return Err(CollectError::parse(
                    path,
                    format!("row has not {columns} columns"),
                ));
            }
            for (i, tok) in words(line).enumerate() {
                let v = hex(tok, path)?;
                if let Some(s) = index.iter().position(|&x| x == i) {
                    sums[s] = sums[s].wrapping_add(v);
                }
            }
        }
        for ((_, name, help), v) in STATS.iter().zip(sums) {
            out.single_static(name, help, MetricType::Gauge, v as f64);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::util::testing::run;

    #[test]
    fn stats_are_summed_over_cpus_by_header_name() {
        let stat = "entries clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error expect_new expect_create expect_delete search_restart\n\
                    00000001 0 0000000a 0 1 2 0 0 3 4 5 6 0 0 0 0 7\n\
                    00000001 0 00000001 0 1 2 0 0 3 4 5 6 0 0 0 0 7\n";
        let (r, text) = run(
            &mut Conntrack::default(),
            &[
                ("proc/sys/net/netfilter/nf_conntrack_count", "3\n"),
                ("proc/sys/net/netfilter/nf_conntrack_max", "65536\n"),
                ("proc/net/stat/nf_conntrack", stat),
            ],
        );
        r.unwrap();
        assert!(text.contains("node_nf_conntrack_stat_found 11\n"));
        assert!(text.contains("node_nf_conntrack_stat_search_restart 14\n"));
        assert!(text.contains("node_nf_conntrack_entries_limit 65536\n"));
    }

    #[test]
    fn no_module_is_not_found() {
        let (r, text) = run(&mut Conntrack::default(), &[]);
        assert!(matches!(r, Err(ref e) if e.is_not_found()));
        assert!(text.is_empty());
    }
}
