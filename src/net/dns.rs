//! A small async DNS client: message encoding and parsing (RFC 1035), UDP exchanges with a
//! fall back to TCP when an answer is truncated, the nameserver choice and `/etc/hosts`.
//!
//! Owns: queries of any type on `Async<UdpSocket>`/`Async<TcpStream>` — no resolver thread,
//! no thread per lookup (glibc's getaddrinfo blocks; async-net's resolver runs it on a thread
//! pool) — the nameserver choice (`/etc/resolv.conf`, or `PROMLET_DNS_SERVER=ip:port` to point
//! at a test or local server), `/etc/hosts` for plain names, host resolution for outbound
//! connections, and the text form of records (miekg/dns's `RR.String()`, which the probe
//! module's regexps are written against).
//! Must not touch: the TSDB, scrape or probe state.
//!
//! Not done: the `search`/`ndots` rules (names are used as written), EDNS0, DNSSEC.

use crate::rt::{Async, Timer};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// Per-query timeout of [`lookup`]; a query is tried twice per server.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest message over TCP (the length prefix is 16 bits).
const MAX_TCP_MESSAGE: usize = 65535;

pub const T_A: u16 = 1;
pub const T_NS: u16 = 2;
pub const T_CNAME: u16 = 5;
pub const T_SOA: u16 = 6;
pub const T_PTR: u16 = 12;
pub const T_MX: u16 = 15;
pub const T_TXT: u16 = 16;
pub const T_AAAA: u16 = 28;
pub const T_SRV: u16 = 33;
pub const T_ANY: u16 = 255;

/// Record type names as miekg/dns spells them, for configs and record text.
const TYPE_NAMES: &[(&str, u16)] = &[
    ("A", T_A),
    ("NS", T_NS),
    ("CNAME", T_CNAME),
    ("SOA", T_SOA),
    ("PTR", T_PTR),
    ("MX", T_MX),
    ("TXT", T_TXT),
    ("AAAA", T_AAAA),
    ("SRV", T_SRV),
    ("ANY", T_ANY),
];

/// Response codes by name (miekg/dns's `StringToRcode`, the ones a resolver answers).
pub const RCODE_NAMES: &[(&str, u8)] = &[
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("REFUSED", 5),
    ("YXDOMAIN", 6),
    ("YXRRSET", 7),
    ("NXRRSET", 8),
    ("NOTAUTH", 9),
    ("NOTZONE", 10),
];

/// The type code for a name (`A`, `srv`); None for types we do not know.
pub fn type_code(name: &str) -> Option<u16> {
    TYPE_NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, c)| *c)
}

fn type_name(code: u16) -> String {
    match TYPE_NAMES.iter().find(|(_, c)| *c == code) {
        Some((n, _)) => n.to_string(),
        None => format!("TYPE{code}"),
    }
}

/// Transport of one exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// One answer record as [`lookup`] callers use it.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Addr(IpAddr),
    Srv { port: u16, target: String },
}

/// A record's data, decoded for the types we know.
#[derive(Clone, Debug, PartialEq)]
pub enum RData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    /// NS, CNAME, PTR: one domain name.
    Name(String),
    Mx {
        preference: u16,
        host: String,
    },
    Txt(Vec<String>),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    Soa {
        mname: String,
        rname: String,
        serial: u32,
        refresh: u32,
        retry: u32,
        expire: u32,
        minimum: u32,
    },
    Other(Vec<u8>),
}

/// One resource record.
#[derive(Clone, Debug, PartialEq)]
pub struct Rr {
    /// Fully qualified (trailing dot).
    pub name: String,
    pub typ: u16,
    pub class: u16,
    pub ttl: u32,
    pub data: RData,
}

impl Rr {
    /// The record in zone-file form, tab-separated as miekg/dns prints it:
    /// `node1.lan.\t300\tIN\tA\t10.0.0.2`.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let class = match self.class {
            1 => "IN".to_string(),
            3 => "CH".to_string(),
            c => format!("CLASS{c}"),
        };
        let mut s = format!(
            "{}\t{}\t{class}\t{}\t",
            self.name,
            self.ttl,
            type_name(self.typ)
        );
        match &self.data {
            RData::A(ip) => write!(s, "{ip}"),
            RData::Aaaa(ip) => write!(s, "{ip}"),
            RData::Name(n) => write!(s, "{n}"),
            RData::Mx { preference, host } => write!(s, "{preference} {host}"),
            RData::Txt(parts) => {
                let quoted: Vec<String> = parts.iter().map(|p| format!("{p:?}")).collect();
                write!(s, "{}", quoted.join(" "))
            }
            RData::Srv {
                priority,
                weight,
                port,
                target,
            } => write!(s, "{priority} {weight} {port} {target}"),
            RData::Soa {
                mname,
                rname,
                serial,
                refresh,
                retry,
                expire,
                minimum,
            } => write!(
                s,
                "{mname} {rname} {serial} {refresh} {retry} {expire} {minimum}"
            ),
            RData::Other(b) => {
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                write!(s, "\\# {} {hex}", b.len())
            }
        }
        .expect("writing to a String");
        s
    }
}

/// A parsed response.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Message {
    pub rcode: u8,
    /// TC: the answer did not fit the UDP datagram.
    pub truncated: bool,
    pub answer: Vec<Rr>,
    pub authority: Vec<Rr>,
    pub additional: Vec<Rr>,
}

/// The nameservers to ask: `PROMLET_DNS_SERVER`, else /etc/resolv.conf's, else 127.0.0.1:53.
pub fn nameservers() -> Vec<SocketAddr> {
    if let Ok(s) = std::env::var("PROMLET_DNS_SERVER") {
        if let Ok(a) = s.parse() {
            return vec![a];
        }
    }
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut out = resolv_conf_nameservers(&text);
    if out.is_empty() {
        out.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53));
    }
    out
}

/// The `nameserver` lines of a resolv.conf.
pub fn resolv_conf_nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Encodes a query for `name` (a trailing dot is optional), class IN.
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    encode_query_with(id, name, qtype, true)
}

/// [`encode_query`] with the RD (recursion desired) bit chosen.
pub fn encode_query_with(
    id: u16,
    name: &str,
    qtype: u16,
    recursion_desired: bool,
) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.push(if recursion_desired { 0x01 } else { 0x00 });
    q.extend_from_slice(&[0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // one question
    let trimmed = name.trim_end_matches('.');
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(format!("invalid DNS name {name:?}"));
            }
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
    }
    q.push(0);
    if q.len() > 12 + 255 + 1 {
        return Err(format!("DNS name {name:?} is too long"));
    }
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    Ok(q)
}

/// Reads a possibly compressed name at `at`; returns it (fully qualified) and the offset
/// after it.
fn read_name(msg: &[u8], mut at: usize) -> Result<(String, usize), String> {
    let mut name = String::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *msg.get(at).ok_or("truncated name")? as usize;
        if len & 0xc0 == 0xc0 {
            let lo = *msg.get(at + 1).ok_or("truncated pointer")? as usize;
            end.get_or_insert(at + 2);
            at = (len & 0x3f) << 8 | lo;
            continue;
        }
        if len == 0 {
            if name.is_empty() {
                name.push('.');
            }
            return Ok((name, end.unwrap_or(at + 1)));
        }
        let label = msg.get(at + 1..at + 1 + len).ok_or("truncated label")?;
        name.push_str(&String::from_utf8_lossy(label));
        name.push('.');
        at += 1 + len;
    }
    Err("name compression loop".into())
}

fn u16_at(msg: &[u8], at: usize) -> Result<u16, String> {
    msg.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| "truncated message".to_string())
}

fn u32_at(msg: &[u8], at: usize) -> Result<u32, String> {
    msg.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| "truncated message".to_string())
}

fn read_rr(msg: &[u8], at: usize) -> Result<(Rr, usize), String> {
    let (name, after) = read_name(msg, at)?;
    let typ = u16_at(msg, after)?;
    let class = u16_at(msg, after + 2)?;
    let ttl = u32_at(msg, after + 4)?;
    let rdlen = u16_at(msg, after + 8)? as usize;
    let rd = after + 10;
    let data = msg.get(rd..rd + rdlen).ok_or("truncated record")?;
    let rdata = match typ {
        T_A if rdlen == 4 => RData::A(Ipv4Addr::new(data[0], data[1], data[2], data[3])),
        T_AAAA if rdlen == 16 => {
            let b: [u8; 16] = data.try_into().expect("16 bytes");
            RData::Aaaa(Ipv6Addr::from(b))
        }
        T_NS | T_CNAME | T_PTR => RData::Name(read_name(msg, rd)?.0),
        T_MX if rdlen >= 3 => RData::Mx {
            preference: u16_at(msg, rd)?,
            host: read_name(msg, rd + 2)?.0,
        },
        T_SRV if rdlen >= 7 => RData::Srv {
            priority: u16_at(msg, rd)?,
            weight: u16_at(msg, rd + 2)?,
            port: u16_at(msg, rd + 4)?,
            target: read_name(msg, rd + 6)?.0,
        },
        T_TXT => {
            let mut parts = Vec::new();
            let mut i = 0;
            while i < data.len() {
                let n = data[i] as usize;
                let s = data.get(i + 1..i + 1 + n).ok_or("truncated TXT")?;
                parts.push(String::from_utf8_lossy(s).into_owned());
                i += 1 + n;
            }
            RData::Txt(parts)
        }
        T_SOA => {
            let (mname, a) = read_name(msg, rd)?;
            let (rname, b) = read_name(msg, a)?;
            RData::Soa {
                mname,
                rname,
                serial: u32_at(msg, b)?,
                refresh: u32_at(msg, b + 4)?,
                retry: u32_at(msg, b + 8)?,
                expire: u32_at(msg, b + 12)?,
                minimum: u32_at(msg, b + 16)?,
            }
        }
        _ => RData::Other(data.to_vec()),
    };
    Ok((
        Rr {
            name,
            typ,
            class,
            ttl,
            data: rdata,
        },
        rd + rdlen,
    ))
}

/// Parses a response to query `id`. A truncated (TC) response parses as far as it goes.
pub fn parse_message(msg: &[u8], id: u16) -> Result<Message, String> {
    if msg.len() < 12 || u16_at(msg, 0)? != id {
        return Err("response does not match the query".into());
    }
    let flags = u16_at(msg, 2)?;
    if flags & 0x8000 == 0 {
        return Err("not a DNS response".into());
    }
    let mut out = Message {
        rcode: (flags & 0xf) as u8,
        truncated: flags & 0x0200 != 0,
        ..Message::default()
    };
    let qd = u16_at(msg, 4)?;
    let counts = [u16_at(msg, 6)?, u16_at(msg, 8)?, u16_at(msg, 10)?];
    let mut at = 12;
    for _ in 0..qd {
        at = read_name(msg, at)?.1 + 4;
    }
    for (section, count) in counts.into_iter().enumerate() {
        for _ in 0..count {
            let (rr, next) = match read_rr(msg, at) {
                Ok(r) => r,
                // A truncated UDP answer may stop mid-record; keep what arrived.
                Err(_) if out.truncated => return Ok(out),
                Err(e) => return Err(e),
            };
            at = next;
            match section {
                0 => out.answer.push(rr),
                1 => out.authority.push(rr),
                _ => out.additional.push(rr),
            }
        }
    }
    Ok(out)
}

/// Parses a response to query `id`: the answer records of type `qtype`. NXDOMAIN is an
/// empty answer; other error rcodes are errors.
pub fn parse_response(msg: &[u8], id: u16, qtype: u16) -> Result<Vec<Record>, String> {
    records(parse_message(msg, id)?, qtype)
}

fn records(m: Message, qtype: u16) -> Result<Vec<Record>, String> {
    match m.rcode {
        0 => {}
        3 => return Ok(Vec::new()), // NXDOMAIN: no targets
        r => return Err(format!("DNS server answered rcode {r}")),
    }
    let mut out = Vec::new();
    for rr in m.answer {
        if rr.typ != qtype {
            continue; // CNAMEs and others: the resolver already followed them
        }
        match rr.data {
            RData::A(ip) => out.push(Record::Addr(IpAddr::V4(ip))),
            RData::Aaaa(ip) => out.push(Record::Addr(IpAddr::V6(ip))),
            RData::Srv { port, target, .. } => out.push(Record::Srv { port, target }),
            _ => {}
        }
    }
    Ok(out)
}

/// A query id: only has to tell our answer from a stray one on a fresh socket, but should not
/// be guessable by an off-path spoofer either, so it mixes the clock in.
pub fn query_id(name: &str, qtype: u16) -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut h: u32 = 0x811c_9dc5 ^ nanos ^ std::process::id();
    for b in name.bytes().chain(qtype.to_be_bytes()) {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    (h ^ (h >> 16)) as u16
}

/// Timings of one exchange: connecting (TCP handshake; UDP `connect` is local) and the
/// request itself, as blackbox_exporter's `probe_dns_duration_seconds` phases.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    pub connect: Duration,
    pub request: Duration,
}

/// Sends `query` (encoded with `id`) to `server` over `transport` and parses the answer. No
/// timeout of its own: callers race it with theirs. `timings` is filled as phases complete.
pub async fn exchange(
    server: SocketAddr,
    query: &[u8],
    id: u16,
    transport: Transport,
    timings: &mut Timings,
) -> Result<Message, String> {
    let start = Instant::now();
    match transport {
        Transport::Udp => {
            let bind: SocketAddr = if server.is_ipv4() {
                (Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let sock = Async::<UdpSocket>::bind(bind).map_err(|e| e.to_string())?;
            sock.get_ref().connect(server).map_err(|e| e.to_string())?;
            let sent = Instant::now();
            timings.connect = sent - start;
            sock.send(query).await.map_err(|e| e.to_string())?;
            let mut buf = [0u8; 1500];
            loop {
                let n = match sock.recv(&mut buf).await {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        return Err(format!("read udp {server}: connection refused"))
                    }
                    Err(e) => return Err(e.to_string()),
                };
                if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                    timings.request = sent.elapsed();
                    return parse_message(&buf[..n], id);
                }
            }
        }
        Transport::Tcp => {
            let mut s = Async::<TcpStream>::connect(server)
                .await
                .map_err(|e| format!("dial tcp {server}: {e}"))?;
            let sent = Instant::now();
            timings.connect = sent - start;
            let mut framed = Vec::with_capacity(query.len() + 2);
            framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
            framed.extend_from_slice(query);
            s.write_all(&framed).await.map_err(|e| e.to_string())?;
            let mut len = [0u8; 2];
            s.read_exact(&mut len)
                .await
                .map_err(|e| format!("read tcp {server}: {e}"))?;
            let n = u16::from_be_bytes(len) as usize;
            let mut buf = vec![0u8; n.min(MAX_TCP_MESSAGE)];
            s.read_exact(&mut buf)
                .await
                .map_err(|e| format!("read tcp {server}: {e}"))?;
            timings.request = sent.elapsed();
            parse_message(&buf, id)
        }
    }
}

/// One question to one server under `timeout`: UDP first, TCP when the answer is truncated.
pub async fn query(
    server: SocketAddr,
    name: &str,
    qtype: u16,
    timeout: Duration,
) -> Result<Message, String> {
    let id = query_id(name, qtype);
    let q = encode_query(id, name, qtype)?;
    let work = async {
        let mut t = Timings::default();
        let m = exchange(server, &q, id, Transport::Udp, &mut t).await?;
        if !m.truncated {
            return Ok(m);
        }
        exchange(server, &q, id, Transport::Tcp, &mut t).await
    };
    futures_lite::future::or(work, async {
        Timer::after(timeout).await;
        Err(format!("i/o timeout asking {server}"))
    })
    .await
}

/// Asks the nameservers for `name`'s records of `qtype` (A, AAAA or SRV).
pub async fn lookup(name: &str, qtype: u16) -> Result<Vec<Record>, String> {
    let mut last = String::from("no nameserver");
    for server in nameservers() {
        for _ in 0..2 {
            match query(server, name, qtype, QUERY_TIMEOUT).await {
                Ok(m) => return records(m, qtype).map_err(|e| format!("lookup {name}: {e}")),
                Err(e) => last = e,
            }
        }
    }
    Err(format!("lookup {name}: {last}"))
}

/// Resolves a host name for an outbound connection: `localhost`, /etc/hosts, then an A then
/// AAAA query.
pub async fn resolve_host(host: &str, port: u16, timeout: Duration) -> Result<SocketAddr, String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    if host == "localhost" {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Some(ip) = hosts_file_lookup(host).into_iter().next() {
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

/// Every address /etc/hosts gives `host`, in file order.
pub fn hosts_file_lookup(host: &str) -> Vec<IpAddr> {
    let text = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    hosts_lookup_in(&text, host)
}

fn hosts_lookup_in(text: &str, host: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut f = line.split_whitespace();
        let Some(ip) = f.next().and_then(|i| i.parse::<IpAddr>().ok()) else {
            continue;
        };
        if f.any(|n| n.eq_ignore_ascii_case(host)) && !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
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
        assert!(encode_query(1, &"a.".repeat(200), T_A).is_err());
        // The root name is a single zero byte.
        assert_eq!(
            &encode_query(1, ".", T_NS).unwrap()[12..],
            b"\x00\x00\x02\x00\x01"
        );
        assert_eq!(encode_query_with(1, "a", T_A, false).unwrap()[2], 0);
    }

    fn srv_response() -> Vec<u8> {
        let mut m = encode_query(7, "s.lan", T_SRV).unwrap();
        m[2] = 0x81;
        m[3] = 0x80;
        m[7] = 1; // one answer
                  // Answer: name = pointer to offset 12; SRV 0 0 9100 target "h" + pointer to "lan".
        m.extend_from_slice(&[0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 60]);
        let rdata = [0u8, 0, 0, 0, 0x23, 0x8c, 1, b'h', 0xc0, 14];
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(&rdata);
        m
    }

    #[test]
    fn responses_with_compression_parse() {
        let m = srv_response();
        assert_eq!(
            parse_response(&m, 7, T_SRV).unwrap(),
            vec![Record::Srv {
                port: 9100,
                target: "h.lan.".into()
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

    #[test]
    fn records_print_like_miekg_dns() {
        let m = parse_message(&srv_response(), 7).unwrap();
        assert_eq!(
            m.answer[0].to_text(),
            "s.lan.\t60\tIN\tSRV\t0 0 9100 h.lan."
        );
        let txt = Rr {
            name: "t.lan.".into(),
            typ: T_TXT,
            class: 1,
            ttl: 5,
            data: RData::Txt(vec!["hello world".into()]),
        };
        assert_eq!(txt.to_text(), "t.lan.\t5\tIN\tTXT\t\"hello world\"");
    }

    #[test]
    fn truncated_udp_answer_keeps_what_arrived_and_flags_it() {
        let mut m = srv_response();
        m[2] |= 0x02; // TC
        m[7] = 2; // claims two answers; only one is there
        let parsed = parse_message(&m, 7).unwrap();
        assert!(parsed.truncated);
        assert_eq!(parsed.answer.len(), 1);
    }

    #[test]
    fn queries_are_not_answers() {
        let q = encode_query(9, "a.lan", T_A).unwrap();
        assert!(parse_message(&q, 9).is_err());
    }

    #[test]
    fn hosts_file_gives_every_address_in_order() {
        let hosts =
            "127.0.0.1 localhost\n::1 localhost ip6-localhost # comment\n#10.0.0.1 localhost\n";
        assert_eq!(
            hosts_lookup_in(hosts, "LOCALHOST"),
            vec![
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert!(hosts_lookup_in(hosts, "nope").is_empty());
    }

    /// A server that answers UDP with TC set and the full answer over TCP on the same port:
    /// [`query`] retries over TCP and returns the TCP answer.
    #[test]
    fn truncated_answers_are_retried_over_tcp() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut buf = [0u8; 512];
            let (n, peer) = udp.recv_from(&mut buf).unwrap();
            let mut resp = buf[..n].to_vec();
            resp[2] = 0x83; // QR, TC, RD
            resp[3] = 0x80;
            udp.send_to(&resp, peer).unwrap();
            let (mut s, _) = tcp.accept().unwrap();
            let mut len = [0u8; 2];
            s.read_exact(&mut len).unwrap();
            let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
            s.read_exact(&mut q).unwrap();
            let mut resp = q.clone();
            resp[2] = 0x81;
            resp[3] = 0x80;
            resp[7] = 1;
            resp.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 1, 2, 3]);
            let mut framed = (resp.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&resp);
            s.write_all(&framed).unwrap();
        });
        let server_addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let m = crate::rt::block_on(query(server_addr, "big.lan", T_A, Duration::from_secs(5)))
            .unwrap();
        server.join().unwrap();
        assert!(!m.truncated);
        assert_eq!(m.answer[0].data, RData::A(Ipv4Addr::new(10, 1, 2, 3)));
    }
}
