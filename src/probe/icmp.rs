//! The ICMP prober: one echo request, its reply, and the round trip.
//!
//! Owns: the socket choice — an unprivileged ICMP datagram socket where the kernel allows it
//! (`net.ipv4.ping_group_range` includes our group; IPv6 shares the setting), else a raw
//! socket (root or CAP_NET_RAW), else a clear error saying which of the two to grant — the
//! echo packet, matching the reply (identifier, sequence, source) and the
//! `probe_icmp_*` gauges.
//! Must not touch: the TSDB.
//!
//! `probe_icmp_reply_hop_limit` comes from the IPv4 header, which only raw sockets see: with a
//! datagram socket (and for IPv6) it is not reported.

use super::config::IcmpModule;
use super::{resolve, Report};
use async_io::Async;
use rustix::net::{ipproto, AddressFamily, RecvFlags, SendFlags, SocketType};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::time::Instant;

const DURATION: &str = "probe_icmp_duration_seconds";
const DURATION_HELP: &str = "Duration of icmp request by phase";
/// Payload when the module sets no `payload_size`.
const DEFAULT_PAYLOAD: &[u8] = b"promlet ICMP probe payload 01234567";

/// The kind of socket that was allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketKind {
    Datagram,
    Raw,
}

/// Opens the best ICMP socket for `v6`: datagram, else raw, else an error naming both fixes.
pub fn open_socket(v6: bool) -> Result<(OwnedFd, SocketKind), String> {
    let (family, proto) = if v6 {
        (AddressFamily::INET6, ipproto::ICMPV6)
    } else {
        (AddressFamily::INET, ipproto::ICMP)
    };
    let dgram = rustix::net::socket(family, SocketType::DGRAM, Some(proto));
    let dgram_err = match dgram {
        Ok(fd) => return Ok((fd, SocketKind::Datagram)),
        Err(e) => e,
    };
    match rustix::net::socket(family, SocketType::RAW, Some(proto)) {
        Ok(fd) => Ok((fd, SocketKind::Raw)),
        Err(raw_err) => Err(format!(
            "cannot open an ICMP socket: unprivileged ICMP sockets are not allowed ({dgram_err}; \
             widen net.ipv4.ping_group_range to include this process's group) and raw sockets \
             are not allowed ({raw_err}; run as root or grant CAP_NET_RAW)"
        )),
    }
}

/// The Internet checksum (RFC 1071).
fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in b.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += word as u32;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request; for IPv6 the kernel fills in the checksum (it needs the pseudo-header).
fn echo_request(v6: bool, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    if !v6 {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// The echo reply in `packet` (as received on a `kind` socket): Some(hop limit if known) when
/// it answers (`id`, `seq`). Datagram sockets get their identifier rewritten by the kernel,
/// which also filters replies per socket, so only the sequence is checked there.
fn match_reply(packet: &[u8], v6: bool, kind: SocketKind, id: u16, seq: u16) -> Option<Option<u8>> {
    let (icmp, ttl) = if !v6 && kind == SocketKind::Raw {
        let ihl = (*packet.first()? as usize & 0x0f) * 4;
        (packet.get(ihl..)?, Some(*packet.get(8)?))
    } else {
        (packet, None)
    };
    let want_type = if v6 { 129 } else { 0 };
    if icmp.len() < 8 || icmp[0] != want_type || icmp[1] != 0 {
        return None;
    }
    let got_id = u16::from_be_bytes([icmp[4], icmp[5]]);
    let got_seq = u16::from_be_bytes([icmp[6], icmp[7]]);
    if got_seq != seq || (kind == SocketKind::Raw && got_id != id) {
        return None;
    }
    Some(ttl)
}

/// Probes `target` (a host or address).
pub async fn probe(target: &str, m: &IcmpModule, r: &mut Report) -> bool {
    for p in ["resolve", "setup", "rtt"] {
        r.register_labeled(DURATION, DURATION_HELP, "phase", p);
    }
    let Ok((ip, lookup)) = resolve(target, m.ip, r).await else {
        return false;
    };
    r.add_labeled(DURATION, DURATION_HELP, "phase", "resolve", lookup);
    match echo(ip, m, r).await {
        Ok(()) => true,
        Err(e) => {
            r.log(|| e);
            false
        }
    }
}

async fn echo(ip: IpAddr, m: &IcmpModule, r: &mut Report) -> Result<(), String> {
    let setup = Instant::now();
    let v6 = ip.is_ipv6();
    let (fd, kind) = open_socket(v6)?;
    let sock = Async::new(fd).map_err(|e| format!("ICMP socket: {e}"))?;
    let id = (std::process::id() as u16) ^ 0x5a5a;
    let seq = super::super::net::dns::query_id("icmp", ip.is_ipv4() as u16);
    let payload: Vec<u8> = if m.payload_size == 0 {
        DEFAULT_PAYLOAD.to_vec()
    } else {
        DEFAULT_PAYLOAD
            .iter()
            .copied()
            .cycle()
            .take(m.payload_size)
            .collect()
    };
    let packet = echo_request(v6, id, seq, &payload);
    let to = SocketAddr::new(ip, 0);
    r.add_labeled(
        DURATION,
        DURATION_HELP,
        "phase",
        "setup",
        setup.elapsed().as_secs_f64(),
    );
    r.log(|| format!("sending ICMP echo to {ip} over a {kind:?} socket"));
    let sent = Instant::now();
    sock.write_with(|fd| {
        rustix::net::sendto(fd, &packet, SendFlags::empty(), &to).map_err(std::io::Error::from)
    })
    .await
    .map_err(|e| format!("sending ICMP echo to {ip}: {e}"))?;
    let mut buf = [0u8; 1500];
    loop {
        let (n, from) = sock
            .read_with(|fd| {
                rustix::net::recvfrom(fd, &mut buf[..], RecvFlags::empty())
                    .map(|(n, _, from)| (n, from))
                    .map_err(std::io::Error::from)
            })
            .await
            .map_err(|e| format!("reading ICMP reply: {e}"))?;
        let from_ip = from
            .and_then(|a| SocketAddr::try_from(a).ok())
            .map(|a| a.ip());
        if from_ip != Some(ip) {
            continue;
        }
        if let Some(ttl) = match_reply(&buf[..n], v6, kind, id, seq) {
            r.add_labeled(
                DURATION,
                DURATION_HELP,
                "phase",
                "rtt",
                sent.elapsed().as_secs_f64(),
            );
            if let Some(ttl) = ttl {
                r.set(
                    "probe_icmp_reply_hop_limit",
                    "Replied packet hop limit (TTL for ipv4)",
                    ttl as f64,
                );
            }
            r.log(|| format!("found matching ICMP reply from {ip}"));
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_requests_carry_a_valid_checksum() {
        let p = echo_request(false, 0x1234, 7, b"abc");
        assert_eq!(&p[..2], &[8, 0]);
        // A packet including its checksum sums to zero.
        assert_eq!(checksum(&p), 0);
        assert_eq!(&echo_request(true, 1, 2, b"")[..4], &[128, 0, 0, 0]);
    }

    #[test]
    fn replies_match_by_sequence_and_on_raw_sockets_by_identifier() {
        let mut reply = echo_request(false, 9, 3, b"x");
        reply[0] = 0;
        assert_eq!(
            match_reply(&reply, false, SocketKind::Datagram, 1, 3),
            Some(None)
        );
        assert_eq!(match_reply(&reply, false, SocketKind::Datagram, 1, 4), None);
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 61, 1, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        ip.extend_from_slice(&reply);
        assert_eq!(
            match_reply(&ip, false, SocketKind::Raw, 9, 3),
            Some(Some(61))
        );
        assert_eq!(match_reply(&ip, false, SocketKind::Raw, 8, 3), None);
        // Our own request looped back on a raw socket is not a reply.
        let mut req = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        req.extend_from_slice(&echo_request(false, 9, 3, b"x"));
        assert_eq!(match_reply(&req, false, SocketKind::Raw, 9, 3), None);
        assert_eq!(match_reply(&[0x45], false, SocketKind::Raw, 9, 3), None);
    }
}
