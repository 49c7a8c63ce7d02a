//! `dns_sd_configs` and host name resolution with a small async DNS client over UDP.
//!
//! Owns: DNS queries (A, AAAA, SRV) on `Async<UdpSocket>` — no resolver thread, no thread per
//! lookup (glibc's getaddrinfo blocks; async-net's resolver runs it on a thread pool) — the
//! nameserver choice (`/etc/resolv.conf`, or `PROMLET_DNS_SERVER=ip:port` to point at a test
//! or local server), `/etc/hosts` for plain names, and the labels Prometheus gives DNS
//! targets (`__meta_dns_name`, `__meta_dns_srv_record_target`, `__meta_dns_srv_record_port`).
//! Must not touch: the TSDB, scrape state.
//!
//! Not done: TCP fallback for truncated answers (a device's SRV sets fit in 512 bytes), the
//! `search`/`ndots` rules (names are used as written), MX and NS record types.

use super::config::{DnsSdConfig, DnsType};
use crate::model::Labels;
use async_io::{Async, Timer};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

/// Per-query timeout; a query is tried twice per server.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

const T_A: u16 = 1;
const T_AAAA: u16 = 28;
const T_SRV: u16 = 33;

/// One answer record we understand.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Addr(IpAddr),
    Srv { port: u16, target: String },
}

/// The nameservers to ask: `PROMLET_DNS_SERVER`, else /etc/resolv.conf's, else 127.0.0.1:53.
pub fn nameservers() -> Vec<SocketAddr> {
    if let Ok(s) = std::env::var("PROMLET_DNS_SERVER") {
        if let Ok(a) = s.parse() {
            return vec![a];
        }
    }
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut out: Vec<SocketAddr> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
    if out.is_empty() {
        out.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53));
    }
    out
}

/// Encodes a query for `name` (a trailing dot is optional).
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("invalid DNS name {name:?}"));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    Ok(q)
}

/// Reads a possibly compressed name at `at`; returns it and the offset after it.
fn read_name(msg: &[u8], mut at: usize) -> Result<(String, usize), String> {
    let mut name = String::new();
    let mut end = None;
    for _ in 0..64 {
        let len = *msg.get(at).ok_or("truncated name")? as usize;
        if len & 0xc0 == 0xc0 {
            let lo = *msg.get(at + 1).ok_or("truncated pointer")? as usize;
            end.get_or_insert(at + 2);
            at = (len & 0x3f) << 8 | lo;
            continue;
        }
        if len == 0 {
            return Ok((name, end.unwrap_or(at + 1)));
        }
        let label = msg.get(at + 1..at + 1 + len).ok_or("truncated label")?;
        if !name.is_empty() {
            name.push('.');
        }
        name.push_str(&String::from_utf8_lossy(label));
        at += 1 + len;
    }
    Err("name compression loop".into())
}

fn u16_at(msg: &[u8], at: usize) -> Result<u16, String> {
    msg.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| "truncated message".to_string())
}

/// Parses a response to query `id`: the answer records of type `qtype`.
pub fn parse_response(msg: &[u8], id: u16, qtype: u16) -> Result<Vec<Record>, String> {
    if msg.len() < 12 || u16_at(msg, 0)? != id {
        return Err("response does not match the query".into());
    }
    let flags = u16_at(msg, 2)?;
    match flags & 0xf {
        0 => {}
        3 => return Ok(Vec::new()), // NXDOMAIN: no targets
        r => return Err(format!("DNS server answered rcode {r}")),
    }
    let qd = u16_at(msg, 4)?;
    let an = u16_at(msg, 6)?;
    let mut at = 12;
    for _ in 0..qd {
        at = read_name(msg, at)?.1 + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        let (_, after) = read_name(msg, at)?;
        let typ = u16_at(msg, after)?;
        let rdlen = u16_at(msg, after + 8)? as usize;
        let rd = after + 10;
        let data = msg.get(rd..rd + rdlen).ok_or("truncated record")?;
        match (typ, qtype) {
            (T_A, T_A) if rdlen == 4 => out.push(Record::Addr(IpAddr::V4(Ipv4Addr::new(
                data[0], data[1], data[2], data[3],
            )))),
            (T_AAAA, T_AAAA) if rdlen == 16 => {
                let b: [u8; 16] = data.try_into().expect("16 bytes");
                out.push(Record::Addr(IpAddr::V6(Ipv6Addr::from(b))))
            }
            (T_SRV, T_SRV) if rdlen >= 7 => {
                let port = u16_at(msg, rd + 4)?;
                let (target, _) = read_name(msg, rd + 6)?;
                out.push(Record::Srv { port, target });
            }
            _ => {} // CNAMEs and others: the resolver already followed them
        }
        at = rd + rdlen;
    }
    Ok(out)
}

/// Asks the nameservers for `name`'s records of `qtype`.
pub async fn lookup(name: &str, qtype: u16) -> Result<Vec<Record>, String> {
    let mut last = String::from("no nameserver");
    for server in nameservers() {
        for _ in 0..2 {
            match query_one(server, name, qtype).await {
                Ok(r) => return Ok(r),
                Err(e) => last = e,
            }
        }
    }
    Err(format!("lookup {name}: {last}"))
}

async fn query_one(server: SocketAddr, name: &str, qtype: u16) -> Result<Vec<Record>, String> {
    let bind: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = Async::<UdpSocket>::bind(bind).map_err(|e| e.to_string())?;
    sock.get_ref().connect(server).map_err(|e| e.to_string())?;
    // The id only has to tell our answer from a stray one on this fresh socket.
    let id = (std::process::id() as u16) ^ (name.len() as u16).wrapping_mul(40503) ^ qtype;
    let q = encode_query(id, name, qtype)?;
    sock.send(&q).await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1500];
    let recv = async {
        loop {
            let n = sock.recv(&mut buf).await.map_err(|e| e.to_string())?;
            if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                return parse_response(&buf[..n], id, qtype);
            }
        }
    };
    futures_lite::future::or(recv, async {
        Timer::after(QUERY_TIMEOUT).await;
        Err(format!("i/o timeout asking {server}"))
    })
    .await
}

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

/// Resolves a host name for a scrape: `localhost`, /etc/hosts, then an A then AAAA query.
pub async fn resolve_host(host: &str, port: u16, timeout: Duration) -> Result<SocketAddr, String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    if host == "localhost" {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Some(ip) = hosts_file_lookup(host) {
        return Ok(SocketAddr::new(ip, port));
    }
    let work = async {
        for qtype in [T_A, T_AAAA] {
            if let Some(Record::Addr(ip)) = lookup(host, qtype).await?.into_iter().next() {
                return Ok(SocketAddr::new(ip, port));
            }
        }
        Err(format!("lookup {host}: no such host"))
    };
    futures_lite::future::or(work, async {
        Timer::after(timeout).await;
        Err(format!("lookup {host}: i/o timeout"))
    })
    .await
}

fn hosts_file_lookup(host: &str) -> Option<IpAddr> {
    let text = std::fs::read_to_string("/etc/hosts").ok()?;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut f = line.split_whitespace();
        let Some(ip) = f.next().and_then(|i| i.parse::<IpAddr>().ok()) else {
            continue;
        };
        if f.any(|n| n.eq_ignore_ascii_case(host)) {
            return Some(ip);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encoding_matches_rfc1035() {
        let q = encode_query(0x1234, "_m._tcp.lan.", T_SRV).unwrap();
        assert_eq!(
            q,
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x02_m\x04_tcp\x03lan\x00\x00\x21\x00\x01"
        );
        assert!(encode_query(1, "a..b", T_A).is_err());
    }

    #[test]
    fn responses_with_compression_parse() {
        let mut m = encode_query(7, "s.lan", T_SRV).unwrap();
        m[2] = 0x81;
        m[3] = 0x80;
        m[7] = 1; // one answer
                  // Answer: name = pointer to offset 12; SRV 0 0 9100 target "h" + pointer to "lan".
        m.extend_from_slice(&[0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 60]);
        let rdata = [0u8, 0, 0, 0, 0x23, 0x8c, 1, b'h', 0xc0, 14];
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(&rdata);
        assert_eq!(
            parse_response(&m, 7, T_SRV).unwrap(),
            vec![Record::Srv {
                port: 9100,
                target: "h.lan".into()
            }]
        );
        assert!(parse_response(&m, 8, T_SRV).is_err());
        assert!(parse_response(&m[..m.len() - 3], 7, T_SRV).is_err());
        // A pointer loop is an error, not a hang.
        let mut l = m.clone();
        let n = l.len();
        l[n - 2] = 0xc0;
        l[n - 1] = (n - 2) as u8;
        assert!(parse_response(&l, 7, T_SRV).is_err());
    }
}
