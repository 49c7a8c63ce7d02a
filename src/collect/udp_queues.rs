//! `udp_queues`: bytes queued in UDP sockets, summed over /proc/net/udp and /proc/net/udp6
//! (`tx_queue:rx_queue` column, hex), as `node_udp_queues{ip,queue}`. No udp6 (IPv6 off) drops
//! the v6 samples; no udp at all is `NotFound`.

use super::util::{hex, lines, KeptFile};
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};
use std::path::Path;

pub struct UdpQueues {
    buf: String,
    udp: KeptFile,
    udp6: KeptFile,
}

impl Default for UdpQueues {
    fn default() -> Self {
        UdpQueues {
            buf: String::new(),
            udp: KeptFile::new("net/udp").short_read_ends(256),
            udp6: KeptFile::new("net/udp6").short_read_ends(256),
        }
    }
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::<UdpQueues>::default())
}

/// Sums (tx, rx) over the socket lines after the header.
fn sum(text: &str, path: &Path) -> Result<(u64, u64), CollectError> {
    let mut lines = lines(text);
    let header = lines.next().unwrap_or("");
    if !header.trim_start().starts_with("sl") {
        return Err(CollectError::parse(path, "missing header line"));
    }
    let (mut tx, mut rx) = (0u64, 0u64);
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let queues = line
            .split_ascii_whitespace()
            .nth(4)
            .ok_or_else(|| CollectError::parse(path, format!("short line {line:?}")))?;
        let (t, r) = queues
            .split_once(':')
            .ok_or_else(|| CollectError::parse(path, format!("bad queues {queues:?}")))?;
        tx = tx.wrapping_add(hex(t, path)?);
        rx = rx.wrapping_add(hex(r, path)?);
    }
    Ok((tx, rx))
}

impl Collector for UdpQueues {
    fn name(&self) -> &'static str {
        "udp_queues"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        self.udp.read(&ctx.roots.procfs, &mut self.buf)?;
        let v4 = sum(&self.buf, self.udp.path())?;
        let v6 = match self.udp6.read(&ctx.roots.procfs, &mut self.buf) {
            Err(ref e) if e.is_not_found() => None,
            r => {
                r?;
                Some(sum(&self.buf, self.udp6.path())?)
            }
        };
        let fam = out.family_static(
            "node_udp_queues",
            "Number of allocated memory in the kernel for UDP datagrams in bytes.",
            MetricType::Gauge,
        );
        for (ip, q) in [("v4", Some(v4)), ("v6", v6)] {
            if let Some((tx, rx)) = q {
                out.sample(fam, &[("queue", &"tx"), ("ip", &ip)], tx as f64);
                out.sample(fam, &[("queue", &"rx"), ("ip", &ip)], rx as f64);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::util::testing::run;

    const UDP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:0016 00000000:0000 0A 00000015:00000001 00:00000000 00000000     0        0 2740 1\n\
   1: 00000000:0017 00000000:0000 0A 00000001:00000010 00:00000000 00000000     0        0 2741 1\n";

    #[test]
    fn queues_are_summed_per_family() {
        let (r, text) = run(
            &mut UdpQueues::default(),
            &[("proc/net/udp", UDP), ("proc/net/udp6", UDP)],
        );
        r.unwrap();
        assert!(text.contains("node_udp_queues{queue=\"tx\",ip=\"v4\"} 22\n"));
        assert!(text.contains("node_udp_queues{queue=\"rx\",ip=\"v6\"} 17\n"));
    }

    #[test]
    fn missing_header_is_an_error() {
        let (r, _) = run(
            &mut UdpQueues::default(),
            &[("proc/net/udp", "   0: 0:0 0:0 0A 1:1\n")],
        );
        assert!(r.is_err());
    }
}
