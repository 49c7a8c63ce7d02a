//! The ICMP prober: one echo request, its reply, and the round trip.
//!
//! Owns: the socket choice — an unprivileged ICMP datagram socket where the kernel allows it
//! (`net.ipv4.ping_group_range` includes our group; IPv6 shares the setting), else a raw
//! socket (root or CAP_NET_RAW), else a clear error saying which of the two to grant — the
//! echo packet, matching the reply (identifier, sequence, source) and the
//! `probe_icmp_*` gauges.
//! Must not touch: the TSDB.
//!
//! `probe_icmp_reply_hop_limit` comes from the IP_TTL / IPV6_HOPLIMIT control message the
//! kernel attaches when asked (IP_RECVTTL / IPV6_RECVHOPLIMIT), so datagram and raw sockets
//! report it alike; raw IPv4 sockets also see it in the IP header.

use super::config::IcmpModule;
use super::{resolve, Report};
use crate::rt::Async;
use rustix::net::{ipproto, AddressFamily, SendFlags, SocketType};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
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
    ask_for_hop_limit(&fd, v6);
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
        let (n, from_ip, hop_limit) = sock
            .read_with(|fd| recv_with_hop_limit(std::os::fd::AsFd::as_fd(fd), &mut buf))
            .await
            .map_err(|e| format!("reading ICMP reply: {e}"))?;
        if from_ip != Some(ip) {
            continue;
        }
        if let Some(header_ttl) = match_reply(&buf[..n], v6, kind, id, seq) {
            let ttl = hop_limit.or(header_ttl);
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

/// Asks the kernel to attach the reply's TTL (IPv4) or hop limit (IPv6) to each datagram.
/// Best effort: without it the gauge is only missing.
fn ask_for_hop_limit(fd: &OwnedFd, v6: bool) {
    let one: libc::c_int = 1;
    let (level, name) = if v6 {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT)
    } else {
        (libc::IPPROTO_IP, libc::IP_RECVTTL)
    };
    // SAFETY: a valid socket, a pointer to a live c_int and its size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// `recvmsg(2)`: the datagram into `buf`, its source address and the TTL/hop-limit control
/// message if there is one. (rustix's ancillary-data support has no IP_TTL.)
fn recv_with_hop_limit(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
) -> std::io::Result<(usize, Option<IpAddr>, Option<u8>)> {
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // u64s keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut addr as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg points at live buffers of the sizes it states.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut hop_limit = None;
    // SAFETY: the CMSG_* walk stays inside msg_control/msg_controllen, which the kernel set.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let h = &*c;
            let is_ttl = (h.cmsg_level == libc::IPPROTO_IP && h.cmsg_type == libc::IP_TTL)
                || (h.cmsg_level == libc::IPPROTO_IPV6 && h.cmsg_type == libc::IPV6_HOPLIMIT);
            if is_ttl {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                hop_limit = u8::try_from(v).ok();
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let from = match addr.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a =
                unsafe { &*(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a =
                unsafe { &*(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr)))
        }
        _ => None,
    };
    Ok((n as usize, from, hop_limit))
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
