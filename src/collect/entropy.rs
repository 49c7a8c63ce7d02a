//! `entropy`: the kernel random pool from /proc/sys/kernel/random/{entropy_avail,poolsize}.

use super::util::KeptFile;
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};

pub struct Entropy {
    buf: String,
    avail: KeptFile,
    pool: KeptFile,
}

impl Default for Entropy {
    fn default() -> Self {
        Entropy {
            buf: String::new(),
            avail: KeptFile::new("sys/kernel/random/entropy_avail").short_read_ends(0),
            pool: KeptFile::new("sys/kernel/random/poolsize").short_read_ends(0),
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
        let pool = self.pool.read_u64(&ctx.roots.procfs, &mut self.buf)?;
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
