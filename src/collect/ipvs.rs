//! `ipvs`: IP Virtual Server (Linux load balancer) totals from /proc/net/ip_vs_stats and
//! per-backend state from /proc/net/ip_vs, as `node_ipvs_*`. No IPVS module (no stats file) is
//! `NotFound`.
//!
//! `ipvs.backend-labels` picks the backend labels; backends that agree on the picked labels are
//! summed, as node_exporter does.

use super::util::{hex, lines, words, KeptFile};
use super::{CollectError, Collector, CollectorOption, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};
use std::cmp::Ordering;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// Every backend label, in node_exporter's order (which is also the flag's default).
const LABELS: [&str; 6] = [
    "local_address",
    "local_port",
    "remote_address",
    "remote_port",
    "proto",
    "local_mark",
];

pub const OPTIONS: &[CollectorOption] = &[CollectorOption {
    name: "ipvs.backend-labels",
    default: "local_address,local_port,remote_address,remote_port,proto,local_mark",
    help: "Comma separated list for IPVS backend stats labels.",
}];

pub struct Ipvs {
    /// Indices into [`LABELS`] of the picked labels, sorted by label name (exposition order).
    picked: Vec<usize>,
    buf: String,
    stats: KeptFile,
    backends: KeptFile,
}

pub fn new(opts: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    let mut picked = Vec::new();
    for l in opts
        .get("ipvs.backend-labels")
        .split(',')
        .filter(|l| !l.is_empty())
    {
        let i = LABELS
            .iter()
            .position(|x| *x == l)
            .ok_or_else(|| format!("--collector.ipvs.backend-labels: unknown label {l:?}"))?;
        if !picked.contains(&i) {
            picked.push(i);
        }
    }
    crate::sort::sort_by_key(&mut picked, |&i| LABELS[i]);
    Ok(Box::new(Ipvs {
        picked,
        buf: String::new(),
        stats: KeptFile::new("net/ip_vs_stats"),
        backends: KeptFile::new("net/ip_vs"),
    }))
}

/// An address as Go's `net.IP.String()` prints it: "" for none, dotted quad for IPv4 and
/// IPv4-mapped IPv6.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Addr(Option<IpAddr>);

impl crate::expo::LabelValue for Addr {
    fn append_to(&self, out: &mut String) {
        use fmt::Write;
        let _ = write!(out, "{self}");
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => Ok(()),
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => write!(f, "{v4}"),
                None => write!(f, "{v6}"),
            },
            Some(ip) => write!(f, "{ip}"),
        }
    }
}

struct Backend<'a> {
    local: Addr,
    local_port: u16,
    remote: Addr,
    remote_port: u16,
    proto: &'a str,
    mark: &'a str,
    active: u64,
    inactive: u64,
    weight: u64,
}

impl Backend<'_> {
    fn label(&self, i: usize) -> &dyn crate::expo::LabelValue {
        match i {
            0 => &self.local,
            1 => &self.local_port,
            2 => &self.remote,
            3 => &self.remote_port,
            4 => &self.proto,
            _ => &self.mark,
        }
    }

    fn cmp_on(&self, other: &Self, i: usize) -> Ordering {
        match i {
            0 => self.local.cmp(&other.local),
            1 => self.local_port.cmp(&other.local_port),
            2 => self.remote.cmp(&other.remote),
            3 => self.remote_port.cmp(&other.remote_port),
            4 => self.proto.cmp(other.proto),
            _ => self.mark.cmp(other.mark),
        }
    }
}

/// `C0A80016:0CEA` (IPv4) or `[2620:0000:…:0001]:0050` (IPv6), hex.
fn parse_addr_port(s: &str, path: &Path) -> Result<(Addr, u16), CollectError> {
    let bad = || CollectError::parse(path, format!("bad address {s:?}"));
    let (addr, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let ip = if let Some(v6) = addr.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
        IpAddr::V6(v6.parse::<Ipv6Addr>().map_err(|_| bad())?)
    } else if addr.len() == 8 {
        IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(addr, 16).map_err(|_| bad())?,
        ))
    } else {
        return Err(bad());
    };
    let port = u16::from_str_radix(port, 16).map_err(|_| bad())?;
    Ok((Addr(Some(ip)), port))
}

fn parse_backends<'a>(text: &'a str, path: &Path) -> Result<Vec<Backend<'a>>, CollectError> {
    let mut out = Vec::new();
    let mut lines = lines(text);
    if !lines.next().unwrap_or("").starts_with("IP Virtual Server") {
        return Err(CollectError::parse(path, "no 'IP Virtual Server' header"));
    }
    // The two column-header lines.
    lines.next();
    lines.next();
    let mut service: Option<(Addr, u16, &str, &str)> = None;
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f: [Option<&str>; 6] = {
            let mut it = words(line);
            std::array::from_fn(|_| it.next())
        };
        match f[0] {
            Some("TCP" | "UDP" | "SCTP") => {
                let (a, p) = parse_addr_port(f[1].unwrap_or(""), path)?;
                service = Some((a, p, f[0].unwrap_or(""), ""));
            }
            Some("FWM") => {
                let mark = f[1].ok_or_else(|| CollectError::parse(path, "FWM without mark"))?;
                service = Some((Addr(None), 0, "FWM", mark));
            }
            Some("->") => {
                let (local, local_port, proto, mark) = service
                    .ok_or_else(|| CollectError::parse(path, "backend before any service"))?;
                let (remote, remote_port) = parse_addr_port(f[1].unwrap_or(""), path)?;
                let n = |i: usize| -> Result<u64, CollectError> {
                    let t = f[i].unwrap_or("");
                    t.parse()
                        .map_err(|_| CollectError::parse(path, format!("bad number {t:?}")))
                };
                out.push(Backend {
                    local,
                    local_port,
                    remote,
                    remote_port,
                    proto,
                    mark,
                    weight: n(3)?,
                    active: n(4)?,
                    inactive: n(5)?,
                });
            }
            _ => return Err(CollectError::parse(path, format!("bad line {line:?}"))),
        }
    }
    Ok(out)
}

impl Collector for Ipvs {
    fn name(&self) -> &'static str {
        "ipvs"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        self.stats.read(&ctx.roots.procfs, &mut self.buf)?;
        let path = self.stats.path();
        // Two header lines, then conns, in packets, out packets, in bytes, out bytes (hex).
        let totals = self
            .buf
            .lines()
            .nth(2)
            .ok_or_else(|| CollectError::parse(path, "no totals line"))?;
        let mut t = [0u64; 5];
        let mut toks = words(totals);
        for v in &mut t {
            *v = hex(toks.next().unwrap_or(""), path)?;
        }
        let c = MetricType::Counter;
        out.single_static(
            "node_ipvs_connections_total",
            "The total number of connections made.",
            c,
            t[0] as f64,
        );
        out.single_static(
            "node_ipvs_incoming_packets_total",
            "The total number of incoming packets.",
            c,
            t[1] as f64,
        );
        out.single_static(
            "node_ipvs_outgoing_packets_total",
            "The total number of outgoing packets.",
            c,
            t[2] as f64,
        );
        out.single_static(
            "node_ipvs_incoming_bytes_total",
            "The total amount of incoming data.",
            c,
            t[3] as f64,
        );
        out.single_static(
            "node_ipvs_outgoing_bytes_total",
            "The total amount of outgoing data.",
            c,
            t[4] as f64,
        );

        self.backends.read(&ctx.roots.procfs, &mut self.buf)?;
        let mut backends = parse_backends(&self.buf, self.backends.path())?;
        let picked = &self.picked;
        let key_cmp = |a: &Backend<'_>, b: &Backend<'_>| {
            picked
                .iter()
                .map(|&i| a.cmp_on(b, i))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        };
        crate::sort::sort_by(&mut backends, key_cmp);
        let g = MetricType::Gauge;
        let active = out.family_static(
            "node_ipvs_backend_connections_active",
            "The current active connections by local and remote address.",
            g,
        );
        let inactive = out.family_static(
            "node_ipvs_backend_connections_inactive",
            "The current inactive connections by local and remote address.",
            g,
        );
        let weight = out.family_static(
            "node_ipvs_backend_weight",
            "The current backend weight by local and remote address.",
            g,
        );
        for group in backends.chunk_by(|a, b| key_cmp(a, b).is_eq()) {
            let first = &group[0];
            let mut labels: [(&str, &dyn crate::expo::LabelValue); 6] = [("", &""); 6];
            for (slot, &i) in labels.iter_mut().zip(picked) {
                *slot = (LABELS[i], first.label(i));
            }
            let labels = &labels[..picked.len()];
            let sum = |f: fn(&Backend<'_>) -> u64| group.iter().map(f).sum::<u64>() as f64;
            out.sample(active, labels, sum(|b| b.active));
            out.sample(inactive, labels, sum(|b| b.inactive));
            out.sample(weight, labels, sum(|b| b.weight));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::util::testing::run;

    const STATS: &str = "   Total Incoming Outgoing         Incoming         Outgoing\n   Conns  Packets  Packets            Bytes            Bytes\n 16AA370 E33656E5        0     51D8C8883AB3                0\n";
    const IPVS: &str = "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n\
TCP  C0A80016:0CEA wlc\n  -> C0A85216:0CEA      Tunnel  100    248        2\n  -> C0A85318:0CEA      Tunnel  100    248        1\n\
TCP  [2620:0000:0000:0000:0000:0000:0000:0001]:0050 sed\n  -> [2620:0000:0000:0000:0000:0000:0000:0002]:0050      Route   10     1          0\n\
FWM  10001000 wlc\n  -> C0A8321A:0CEA      Tunnel  20     64         1\n";

    #[test]
    fn backends_get_node_exporter_labels() {
        let mut c = new(&CollectorOptions::default()).unwrap();
        let (r, text) = run(
            &mut *c,
            &[("proc/net/ip_vs_stats", STATS), ("proc/net/ip_vs", IPVS)],
        );
        r.unwrap();
        assert!(text.contains("node_ipvs_connections_total 2.3765872e+07\n"));
        assert!(text.contains("node_ipvs_backend_weight{local_address=\"\",local_mark=\"10001000\",local_port=\"0\",proto=\"FWM\",remote_address=\"192.168.50.26\",remote_port=\"3306\"} 20\n"));
        assert!(text.contains("local_address=\"2620::1\",local_mark=\"\",local_port=\"80\",proto=\"TCP\",remote_address=\"2620::2\""));
    }

    #[test]
    fn fewer_labels_sum_backends() {
        let mut opts = CollectorOptions::default();
        opts.set("ipvs.backend-labels", "local_address,local_port");
        let mut c = new(&opts).unwrap();
        let (r, text) = run(
            &mut *c,
            &[("proc/net/ip_vs_stats", STATS), ("proc/net/ip_vs", IPVS)],
        );
        r.unwrap();
        assert!(text.contains("node_ipvs_backend_connections_active{local_address=\"192.168.0.22\",local_port=\"3306\"} 496\n"));
        opts.set("ipvs.backend-labels", "local_address,bogus");
        assert!(new(&opts).is_err());
    }
}
