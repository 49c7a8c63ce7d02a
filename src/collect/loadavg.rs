//! `loadavg`: node_load1, node_load5, node_load15 from /proc/loadavg.

use super::util::{words, KeptFile};
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};

pub struct Loadavg {
    buf: String,
    file: KeptFile,
}

impl Default for Loadavg {
    fn default() -> Self {
        Loadavg {
            buf: String::new(),
            file: KeptFile::new("loadavg").short_read_ends(0),
        }
    }
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::<Loadavg>::default())
}

/// The three load averages, the first three fields of /proc/loadavg.
fn parse(text: &str) -> Option<[f64; 3]> {
    let mut f = words(text);
    let mut out = [0.0; 3];
    for v in &mut out {
        *v = f.next()?.parse().ok()?;
    }
    Some(out)
}

impl Collector for Loadavg {
    fn name(&self) -> &'static str {
        "loadavg"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        self.file.read(&ctx.roots.procfs, &mut self.buf)?;
        let path = self.file.path();
        let [l1, l5, l15] =
            parse(&self.buf).ok_or_else(|| CollectError::parse(path, "expected three numbers"))?;
        out.single_static("node_load1", "1m load average.", MetricType::Gauge, l1);
        out.single_static("node_load5", "5m load average.", MetricType::Gauge, l5);
        out.single_static("node_load15", "15m load average.", MetricType::Gauge, l15);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_averages() {
        assert_eq!(
            parse("0.21 0.37 0.39 1/719 19737\n"),
            Some([0.21, 0.37, 0.39])
        );
    }

    #[test]
    fn truncated_or_garbage_is_none() {
        assert_eq!(parse("0.21 0.37"), None);
        assert_eq!(parse("a b c"), None);
        assert_eq!(parse(""), None);
    }
}
