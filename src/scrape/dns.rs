//! `dns_sd_configs`: targets from A, AAAA and SRV records, labeled as Prometheus labels DNS
//! targets (`__meta_dns_name`, `__meta_dns_srv_record_target`, `__meta_dns_srv_record_port`).
//!
//! Owns: turning records into target label sets. The resolver itself (queries, TCP fallback,
//! nameservers, /etc/hosts) is [`crate::net::dns`], shared with the probes.
//! Must not touch: the TSDB, scrape state.

use super::config::{DnsSdConfig, DnsType};
use crate::model::Labels;
pub use crate::net::dns::{lookup, resolve_host, Record, T_A, T_AAAA, T_SRV};
use std::net::SocketAddr;

/// Discovered targets for one `dns_sd_configs` entry, labeled as Prometheus labels them.
pub async fn discover(cfg: &DnsSdConfig) -> Result<Vec<Labels>, String> {
    let mut out = Vec::new();
    for name in &cfg.names {
        let qtype = match cfg.typ {
            DnsType::A => T_A,
            DnsType::Aaaa => T_AAAA,
            DnsType::Srv => T_SRV,
        };
        for r in lookup(name, qtype).await? {
            let mut l = Labels::new();
            l.set("__meta_dns_name".into(), name.clone());
            match r {
                Record::Addr(ip) => {
                    l.set(
                        "__address__".into(),
                        SocketAddr::new(ip, cfg.port).to_string(),
                    );
                }
                Record::Srv { port, target } => {
                    let target = target.trim_end_matches('.').to_string();
                    l.set("__address__".into(), format!("{target}:{port}"));
                    l.set("__meta_dns_srv_record_target".into(), target);
                    l.set("__meta_dns_srv_record_port".into(), port.to_string());
                }
            }
            out.push(l);
        }
    }
    Ok(out)
}
