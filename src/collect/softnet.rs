//! `softnet`: /proc/net/softnet_stat, one row of hex counters per CPU, as
//! `node_softnet_*{cpu}`.
//!
//! Columns (kernel net/core/net-procfs.c): 0 processed, 1 dropped, 2 time_squeezed,
//! 8 cpu_collision, 9 received_rps, 10 flow_limit_count, 11 backlog length, 12 CPU id. Older
//! kernels print fewer columns; then the CPU is the row number and missing values are 0.

use super::util::{hex, lines, words, KeptFile};
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};

pub struct Softnet {
    buf: String,
    file: KeptFile,
}

impl Default for Softnet {
    fn default() -> Self {
        Softnet {
            buf: String::new(),
            file: KeptFile::new("net/softnet_stat").short_read_ends(512),
        }
    }
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::<Softnet>::default())
}

/// (column, name, HELP, type) of each family.
const COLUMNS: [(usize, &str, &str, MetricType); 7] = [
    (
        0,
        "node_softnet_processed_total",
        "Number of processed packets",
        MetricType::Counter,
    ),
    (
        1,
        "node_softnet_dropped_total",
        "Number of dropped packets",
        MetricType::Counter,
    ),
    (
        2,
        "node_softnet_times_squeezed_total",
        "Number of times processing packets ran out of quota",
        MetricType::Counter,
    ),
    (
        8,
        "node_softnet_cpu_collision_total",
        "Number of collision occur while obtaining device lock while transmitting",
        MetricType::Counter,
    ),
    (
        9,
        "node_softnet_received_rps_total",
        "Number of times cpu woken up received_rps",
        MetricType::Counter,
    ),
    (
        10,
        "node_softnet_flow_limit_count_total",
        "Number of times flow limit has been reached",
        MetricType::Counter,
    ),
    (
        11,
        "node_softnet_backlog_len",
        "Softnet backlog status",
        MetricType::Gauge,
    ),
];

impl Collector for Softnet {
    fn name(&self) -> &'static str {
        "softnet"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        self.file.read(&ctx.roots.procfs, &mut self.buf)?;
        let path = self.file.path();
        // Parse every row first so garbage yields an error, not half a family set.
        let mut rows = 0;
        for line in lines(&self.buf).filter(|l| !l.trim().is_empty()) {
            let n = words(line).count();
            if n < 9 {
                return Err(CollectError::parse(
                    path,
                    format!("{n} columns, want at least 9"),
                ));
            }
            for tok in words(line) {
                hex(tok, path)?;
            }
            rows += 1;
        }
        if rows == 0 {
            return Err(CollectError::parse(path, "empty"));
        }
        let fams = COLUMNS.map(|(_, name, help, typ)| out.family_static(name, help, typ));
        for (row, line) in self
            .buf
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
        {
            let col = |i: usize| {
                words(line)
                    .nth(i)
                    .and_then(|t| u64::from_str_radix(t, 16).ok())
            };
            let cpu = col(12).unwrap_or(row as u64);
            for ((c, ..), fam) in COLUMNS.iter().zip(fams) {
                out.sample(fam, &[("cpu", &cpu)], col(*c).unwrap_or(0) as f64);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::util::testing::run;

    #[test]
    fn cpu_label_comes_from_the_id_column_when_present() {
        // Kernel 6.x: 13 columns, the last is the CPU id (here CPUs 0 and 2; 1 is offline).
        let row = |id: &str| {
            format!(
                "0000000a 00000001 00000002 0 0 0 0 0 00000003 00000004 00000005 00000006 {id}\n"
            )
        };
        let file = row("00000000") + &row("00000002");
        let (r, text) = run(&mut Softnet::default(), &[("proc/net/softnet_stat", &file)]);
        r.unwrap();
        assert!(text.contains("node_softnet_processed_total{cpu=\"2\"} 10\n"));
        assert!(text.contains("node_softnet_backlog_len{cpu=\"0\"} 6\n"));
        assert!(!text.contains("cpu=\"1\""));
    }

    #[test]
    fn old_kernels_number_cpus_by_row() {
        let (r, text) = run(
            &mut Softnet::default(),
            &[(
                "proc/net/softnet_stat",
                "1 0 0 0 0 0 0 0 0\n2 0 0 0 0 0 0 0 0\n",
            )],
        );
        r.unwrap();
        assert!(text.contains("node_softnet_processed_total{cpu=\"1\"} 2\n"));
        assert!(text.contains("node_softnet_flow_limit_count_total{cpu=\"1\"} 0\n"));
    }
}
