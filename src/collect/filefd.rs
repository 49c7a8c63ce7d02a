//! `filefd`: /proc/sys/fs/file-nr (allocated, unused, maximum) as `node_filefd_*`.

use super::util::{num, read_into};
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};

#[derive(Default)]
pub struct Filefd {
    buf: String,
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::<Filefd>::default())
}

impl Collector for Filefd {
    fn name(&self) -> &'static str {
        "filefd"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        let path = ctx.roots.proc("sys/fs/file-nr");
        read_into(&path, &mut self.buf)?;
        let mut toks = self.buf.split_ascii_whitespace();
        let (Some(allocated), Some(_unused), Some(maximum), None) =
            (toks.next(), toks.next(), toks.next(), toks.next())
        else {
            return Err(CollectError::parse(&path, "expected three numbers"));
        };
        let (allocated, maximum) = (num(allocated, &path)?, num(maximum, &path)?);
        out.single(
            "node_filefd_allocated",
            "File descriptor statistics: allocated.",
            MetricType::Gauge,
            allocated,
        );
        out.single(
            "node_filefd_maximum",
            "File descriptor statistics: maximum.",
            MetricType::Gauge,
            maximum,
        );
        Ok(())
    }
}
