//! The `uname` collector: `node_uname_info` from `uname(2)`.
//!
//! Must not touch: files. The kernel's answer is the running kernel's, whatever
//! `--path.rootfs` says (node_exporter behaves the same).

use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};

pub struct Uname;

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::new(Uname))
}

impl Collector for Uname {
    fn name(&self) -> &'static str {
        "uname"
    }

    fn collect(&mut self, _ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        let u = rustix::system::uname();
        let f = out.family_static(
            "node_uname_info",
            "Labeled system information as provided by the uname system call.",
            MetricType::Gauge,
        );
        out.sample(
            f,
            &[
                ("domainname", &u.domainname().to_string_lossy()),
                ("machine", &u.machine().to_string_lossy()),
                ("nodename", &u.nodename().to_string_lossy()),
                ("release", &u.release().to_string_lossy()),
                ("sysname", &u.sysname().to_string_lossy()),
                ("version", &u.version().to_string_lossy()),
            ],
            1.0,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fixtures::run;

    #[test]
    fn uname_reports_the_running_kernel() {
        let mut c = new(&CollectorOptions::default()).unwrap();
        let text = run(c.as_mut(), &crate::collect::Roots::default()).unwrap();
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert!(
            text.contains(&format!("release=\"{}\"", release.trim())),
            "{text}"
        );
        assert!(text.contains("sysname=\"Linux\""));
    }
}
