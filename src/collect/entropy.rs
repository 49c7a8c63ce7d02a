//! `entropy`: the kernel random pool from /proc/sys/kernel/random/{entropy_avail,poolsize}.

use super::util::KeptFile;
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};

pub struct Entropy {
    buf: String,
    avail: KeptFile,
    pool: KeptFile,
    /// `poolsize` of the running kernel, once read: the sysctl is read-only (mode 0444 since
    /// Linux 2.6; a constant since 5.18), so the live /proc is asked once, not every scrape.
    live_pool: Option<u64>,
}

impl Default for Entropy {
    fn default() -> Self {
        Entropy {
            buf: String::new(),
            avail: KeptFile::new("sys/kernel/random/entropy_avail").short_read_ends(0),
            pool: KeptFile::new("sys/kernel/random/poolsize").short_read_ends(0),
            live_pool: None,
        }
    }
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::<Entropy>::default())
}

impl Collector for Entropy {
    fn name(&self) -> &'static str {
        "entropy"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        let avail = self.avail.read_u64(&ctx.roots.procfs, &mut self.buf)?;
        let live = ctx.roots.procfs == std::path::Path::new("/proc");
        let pool = match self.live_pool.filter(|_| live) {
            Some(pool) => pool,
            None => {
                let pool = self.pool.read_u64(&ctx.roots.procfs, &mut self.buf)?;
                self.live_pool = live.then_some(pool);
                pool
            }
        };
        out.single_static(
            "node_entropy_available_bits",
            "Bits of available entropy.",
            MetricType::Gauge,
            avail as f64,
        );
        out.single_static(
            "node_entropy_pool_size_bits",
            "Bits of entropy pool.",
            MetricType::Gauge,
            pool as f64,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fixtures::run;
    use crate::collect::util::testing;

    #[test]
    fn a_recorded_tree_is_read_every_time_and_the_live_pool_size_once() {
        let mut c = Entropy::default();
        let files = |pool: &'static str| {
            [
                ("proc/sys/kernel/random/entropy_avail", "100\n"),
                ("proc/sys/kernel/random/poolsize", pool),
            ]
        };
        let (r, text) = testing::run(&mut c, &files("4096\n"));
        r.unwrap();
        assert!(
            text.contains("node_entropy_pool_size_bits 4096\n"),
            "{text}"
        );
        let (r, text) = testing::run(&mut c, &files("256\n"));
        r.unwrap();
        assert!(text.contains("node_entropy_pool_size_bits 256\n"), "{text}");
        // The live /proc: the same value as the file, from the first read on.
        let Ok(want) = std::fs::read_to_string("/proc/sys/kernel/random/poolsize") else {
            return;
        };
        let roots = crate::collect::Roots {
            procfs: "/proc".into(),
            ..Default::default()
        };
        for _ in 0..2 {
            let text = run(&mut c, &roots).unwrap();
            let line = format!("node_entropy_pool_size_bits {}\n", want.trim());
            assert!(text.contains(&line), "{text}");
        }
        assert_eq!(c.live_pool, want.trim().parse().ok());
    }
}
