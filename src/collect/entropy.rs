//! `entropy`: the kernel random pool from /proc/sys/kernel/random/{entropy_avail,poolsize}.

use super::util::read_u64;
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};

#[derive(Default)]
pub struct Entropy {
    buf: String,
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::<Entropy>::default())
}

impl Collector for Entropy {
    fn name(&self) -> &'static str {
        "entropy"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        let avail = read_u64(
            &ctx.roots.proc("sys/kernel/random/entropy_avail"),
            &mut self.buf,
        )?;
        let pool = read_u64(&ctx.roots.proc("sys/kernel/random/poolsize"), &mut self.buf)?;
        out.single(
            "node_entropy_available_bits",
            "Bits of available entropy.",
            MetricType::Gauge,
            avail as f64,
        );
        out.single(
            "node_entropy_pool_size_bits",
            "Bits of entropy pool.",
            MetricType::Gauge,
            pool as f64,
        );
        Ok(())
    }
}
