//! `kernel_hung`: /proc/sys/kernel/hung_task_detect_count (kernel 6.10+) as
//! `node_kernel_hung_tasks_total`. Older kernels lack the file: `NotFound`.

use super::util::KeptFile;
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};

pub struct KernelHung {
    buf: String,
    file: KeptFile,
}

impl Default for KernelHung {
    fn default() -> Self {
        KernelHung {
            buf: String::new(),
            file: KeptFile::new("sys/kernel/hung_task_detect_count").short_read_ends(0),
        }
    }
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::<KernelHung>::default())
}

impl Collector for KernelHung {
    fn name(&self) -> &'static str {
        "kernel_hung"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        let n = self.file.read_u64(&ctx.roots.procfs, &mut self.buf)?;
        out.single_static(
            "node_kernel_hung_tasks_total",
            "Total number of tasks that have been detected as hung since the system booted.",
            MetricType::Counter,
            n as f64,
        );
        Ok(())
    }
}
