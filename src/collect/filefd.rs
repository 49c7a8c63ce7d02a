//! `filefd`: /proc/sys/fs/file-nr (allocated, unused, maximum) as `node_filefd_*`.

use super::util::{num, words, KeptFile};
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};

pub struct Filefd {
    buf: String,
    file: KeptFile,
}

impl Default for Filefd {
    fn default() -> Self {
        Filefd {
            buf: String::new(),
            file: KeptFile::new("sys/fs/file-nr").short_read_ends(0),
        }
    }
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::<Filefd>::default())
}

impl Collector for Filefd {
    fn name(&self) -> &'static str {
        "filefd"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        self.file.read(&ctx.roots.procfs, &mut self.buf)?;
        let path = self.file.path();
        let mut toks = words(&self.buf);
        let (Some(allocated), Some(_unused), Some(maximum), None) =
            (toks.next(), toks.next(), toks.next(), toks.next())
        else {
            return Err(CollectError::parse(path, "expected three numbers"));
        };
        let (allocated, maximum) = (num(allocated, path)?, num(maximum, path)?);
        out.single_static(
            "node_filefd_allocated",
            "File descriptor statistics: allocated.",
            MetricType::Gauge,
            allocated,
        );
        out.single_static(
            "node_filefd_maximum",
            "File descriptor statistics: maximum.",
            MetricType::Gauge,
            maximum,
        );
        Ok(())
    }
}
