//! A minimal rtnetlink client for the `netclass` collector: one `RTM_GETLINK` dump returns the
//! link attributes of every interface in two or three syscalls, where sysfs needs one `pread`
//! per attribute and interface.
//!
//! Owns: the `NETLINK_ROUTE` socket, the dump request, and finding each `RTM_NEWLINK` message's
//! attributes in the received bytes. Must not touch: metric names and values (netclass maps
//! links to metrics), sysfs.
//!
//! The dump is kept as received: each link is a table of attribute offsets into one buffer, so
//! a dump decodes nothing it is not asked for and allocates nothing once warmed up (and the
//! code stays small: no per-attribute fields or strings).
//!
//! The socket is read with `MSG_DONTWAIT`: the kernel queues the first part of a dump while
//! handling the request and each further part while a `recv` takes the previous one, so a
//! complete dump never waits; anything else (a reply that stops early) is an error and the
//! caller falls back to sysfs rather than block the work thread.

use rustix::fd::OwnedFd;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

const NLMSG_HDR: usize = 16;
const IFINFOMSG: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;

pub const IFLA_ADDRESS: u16 = 1;
pub const IFLA_BROADCAST: u16 = 2;
pub const IFLA_IFNAME: u16 = 3;
pub const IFLA_MTU: u16 = 4;
pub const IFLA_LINK: u16 = 5;
pub const IFLA_TXQLEN: u16 = 13;
pub const IFLA_OPERSTATE: u16 = 16;
pub const IFLA_LINKMODE: u16 = 17;
pub const IFLA_IFALIAS: u16 = 20;
pub const IFLA_GROUP: u16 = 27;
pub const IFLA_PROMISCUITY: u16 = 30;
pub const IFLA_CARRIER: u16 = 33;
pub const IFLA_CARRIER_CHANGES: u16 = 35;
pub const IFLA_CARRIER_UP_COUNT: u16 = 47;
pub const IFLA_CARRIER_DOWN_COUNT: u16 = 48;
/// Linux 6.1+.
pub const IFLA_ALLMULTI: u16 = 61;
/// `struct rtnl_link_stats64`: the device counters /proc/net/dev prints, and more.
pub const IFLA_STATS64: u16 = 23;
/// Byte offset of `rx_nohandler` in `rtnl_link_stats64` (its 24th u64, Linux 4.6+).
const STATS64_RX_NOHANDLER: usize = 23 * 8;

/// Attribute types below this are indexed (the highest one read is [`IFLA_ALLMULTI`]).
const SLOTS: usize = 64;
/// Receive room per part (the kernel sizes dump parts to at most 32 KiB).
const RECV_BUF: usize = 32 * 1024;

/// Where one link's message is in the dump buffer: slot 0 is the offset of its `ifinfomsg`,
/// slot `t` the offset of its attribute of type `t` (0: not sent).
type Offsets = [u32; SLOTS];

/// Why a dump failed; the caller falls back to sysfs.
#[derive(Debug)]
pub enum DumpError {
    Io(rustix::io::Errno),
    /// The kernel answered with an error code (negative errno).
    Kernel(i32),
    Malformed(&'static str),
}

/// A kept-open `NETLINK_ROUTE` socket and the last dump (buffers reused).
#[derive(Default)]
pub struct LinkDump {
    sock: Option<OwnedFd>,
    seq: u32,
    buf: Vec<u8>,
    links: Vec<Offsets>,
    count: usize,
}

/// One interface of a dump: `struct ifinfomsg` and the attributes as the kernel sent them.
#[derive(Clone, Copy)]
pub struct Link<'a> {
    buf: &'a [u8],
    at: &'a Offsets,
}

impl<'a> Link<'a> {
    /// `rx_nohandler` from `IFLA_STATS64` (what sysfs `statistics/rx_nohandler` prints).
    pub fn rx_nohandler(&self) -> Option<u64> {
        let v = self.attr(IFLA_STATS64)?;
        let w = v.get(STATS64_RX_NOHANDLER..STATS64_RX_NOHANDLER + 8)?;
        Some(u64::from_ne_bytes(w.try_into().ok()?))
    }

    /// The value bytes of attribute `kind`, if the kernel sent it.
    pub fn attr(&self, kind: u16) -> Option<&'a [u8]> {
        let at = *self.at.get(usize::from(kind)).filter(|_| kind != 0)? as usize;
        if at == 0 {
            return None;
        }
        let len = usize::from(u16_at(self.buf, at));
        self.buf.get(at + 4..at + len)
    }

    /// A `u32` attribute (`None` when absent or too short).
    pub fn word(&self, kind: u16) -> Option<u32> {
        self.attr(kind)
            .filter(|v| v.len() >= 4)
            .map(|v| u32_at(v, 0))
    }

    /// A `u8` attribute.
    pub fn byte(&self, kind: u16) -> Option<u8> {
        self.attr(kind)?.first().copied()
    }

    /// A string attribute up to its NUL (names and aliases are NUL-terminated).
    pub fn c_bytes(&self, kind: u16) -> Option<&'a [u8]> {
        let v = self.attr(kind)?;
        Some(&v[..v.iter().position(|&c| c == 0).unwrap_or(v.len())])
    }

    /// The interface name (a dump keeps only links whose name is UTF-8 and not empty).
    pub fn name(&self) -> &'a str {
        std::str::from_utf8(self.c_bytes(IFLA_IFNAME).unwrap_or_default()).unwrap_or_default()
    }

    fn head(&self, at: usize) -> u32 {
        u32_at(self.buf, self.at[0] as usize + at)
    }

    /// `ifi_type`: ARPHRD_* (sysfs `type`).
    pub fn kind(&self) -> u16 {
        u16_at(self.buf, self.at[0] as usize + 2)
    }

    /// `ifi_index`.
    pub fn index(&self) -> i32 {
        self.head(4) as i32
    }

    /// `ifi_flags`: `dev_get_flags()`, the device flags with IFF_RUNNING/LOWER_UP/DORMANT
    /// computed and PROMISC/ALLMULTI as user space asked for them; not sysfs `flags`.
    pub fn flags(&self) -> u32 {
        self.head(8)
    }
}

impl LinkDump {
    /// Dumps every interface of this network namespace (kernel order, by ifindex) and returns
    /// how many there are; [`Self::link`] reads them.
    pub fn dump(&mut self) -> Result<usize, DumpError> {
        let result = self.try_dump();
        if result.is_err() {
            // A dump left half-read would make the next request fail with EBUSY: start over
            // with a new socket next time.
            self.sock = None;
            self.count = 0;
        }
        result.map(|()| self.count)
    }

    /// Link `i` (< the count [`Self::dump`] returned) of the last dump.
    pub fn link(&self, i: usize) -> Link<'_> {
        Link {
            buf: &self.buf,
            at: &self.links[i],
        }
    }

    fn try_dump(&mut self) -> Result<(), DumpError> {
        let sock = match &mut self.sock {
            Some(s) => s,
            none => none.insert(
                rustix::net::socket_with(
                    AddressFamily::NETLINK,
                    SocketType::RAW,
                    SocketFlags::CLOEXEC,
                    None,
                )
                .map_err(DumpError::Io)?,
            ),
        };
        self.seq = self.seq.wrapping_add(1);
        rustix::net::send(&*sock, &dump_request(self.seq), SendFlags::empty())
            .map_err(DumpError::Io)?;
        self.count = 0;
        // Parts are appended, so every link's offsets stay valid until the next dump.
        let mut used = 0;
        loop {
            if self.buf.len() < used + RECV_BUF {
                self.buf.resize(used + RECV_BUF, 0);
            }
            let room = &mut self.buf[used..];
            let room_len = room.len();
            let (_, len) = rustix::net::recv(&*sock, room, RecvFlags::DONTWAIT | RecvFlags::TRUNC)
                .map_err(DumpError::Io)?;
            if len > room_len {
                return Err(DumpError::Malformed("dump part larger than the buffer"));
            }
            let end = used + len;
            if parse_part(
                &self.buf[..end],
                used,
                self.seq,
                &mut self.links,
                &mut self.count,
            )? {
                return Ok(());
            }
            used = end;
        }
    }
}

/// `rx_nohandler` per interface from this collection's link dump, left by `netclass` for
/// `netdev` (which runs after it): the dump carries the counter that netdev otherwise reads
/// from sysfs, one `pread` per interface and scrape. (collection time, names, values)
type SharedNohandler = (Option<i64>, String, Vec<(std::ops::Range<usize>, u64)>);

thread_local! {
    static RX_NOHANDLER: std::cell::RefCell<SharedNohandler> =
        const { std::cell::RefCell::new((None, String::new(), Vec::new())) };
}

/// Leaves the `rx_nohandler` of the first `count` links of `dump` for [`rx_nohandler_of`]
/// in the collection at `now_ms`.
pub fn share_rx_nohandler(dump: &LinkDump, count: usize, now_ms: i64) {
    RX_NOHANDLER.with(|cell| {
        let (at, names, values) = &mut *cell.borrow_mut();
        names.clear();
        values.clear();
        for i in 0..count {
            let link = dump.link(i);
            if let Some(v) = link.rx_nohandler() {
                let start = names.len();
                names.push_str(link.name());
                values.push((start..names.len(), v));
            }
        }
        *at = Some(now_ms);
    });
}

/// `dev`'s `rx_nohandler` as shared by [`share_rx_nohandler`] in the collection at `now_ms`;
/// `None` when nothing was shared then or the interface was not in the dump.
pub fn rx_nohandler_of(dev: &str, now_ms: i64) -> Option<u64> {
    RX_NOHANDLER.with(|cell| {
        let (at, names, values) = &*cell.borrow();
        if *at != Some(now_ms) {
            return None;
        }
        let found = values
            .iter()
            .find(|(r, _)| names.get(r.clone()) == Some(dev));
        found.map(|&(_, v)| v)
    })
}

/// `IFLA_EXT_MASK`: a `u32` of `RTEXT_FILTER_*` bits in a link request.
const IFLA_EXT_MASK: u16 = 29;
/// Leaves out each device's IPv6 statistics (`IFLA_INET6_STATS`, `IFLA_INET6_ICMP6STATS`:
/// 368 bytes per link, each summed over all CPUs) and SR-IOV VF statistics; netclass reads none.
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;
const DUMP_REQUEST_LEN: usize = NLMSG_HDR + IFINFOMSG + 8;

/// `RTM_GETLINK` with `NLM_F_DUMP`, every device, without the statistics we do not read.
fn dump_request(seq: u32) -> [u8; DUMP_REQUEST_LEN] {
    let [l0, l1, l2, l3] = (DUMP_REQUEST_LEN as u32).to_ne_bytes();
    let [t0, t1] = RTM_GETLINK.to_ne_bytes();
    let [f0, f1] = (NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes();
    let [s0, s1, s2, s3] = seq.to_ne_bytes();
    let [a0, a1] = 8u16.to_ne_bytes();
    let [x0, x1] = IFLA_EXT_MASK.to_ne_bytes();
    let [m0, m1, m2, m3] = RTEXT_FILTER_SKIP_STATS.to_ne_bytes();
    // pid 0 (the kernel fills in ours); ifinfomsg all zero (AF_UNSPEC, every device).
    let mut req = [0; DUMP_REQUEST_LEN];
    req[..12].copy_from_slice(&[l0, l1, l2, l3, t0, t1, f0, f1, s0, s1, s2, s3]);
    req[NLMSG_HDR + IFINFOMSG..].copy_from_slice(&[a0, a1, x0, x1, m0, m1, m2, m3]);
    req
}

/// The `u16` at `at`; 0 past the end (callers check lengths first; no panic path).
fn u16_at(b: &[u8], at: usize) -> u16 {
    match b.get(at..at.wrapping_add(2)) {
        Some(&[x, y]) => u16::from_ne_bytes([x, y]),
        _ => 0,
    }
}

/// The `u32` at `at`; 0 past the end.
fn u32_at(b: &[u8], at: usize) -> u32 {
    match b.get(at..at.wrapping_add(4)) {
        Some(&[w, x, y, z]) => u32::from_ne_bytes([w, x, y, z]),
        _ => 0,
    }
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Indexes the messages of one received part, `buf[pos..]`, into `links[*count..]` (reusing
/// entries); `true` when it ends the dump. Messages of other sequence numbers (a stale reply)
/// are skipped.
fn parse_part(
    buf: &[u8],
    mut pos: usize,
    seq: u32,
    links: &mut Vec<Offsets>,
    count: &mut usize,
) -> Result<bool, DumpError> {
    while buf.len() - pos >= NLMSG_HDR {
        let len = u32_at(buf, pos) as usize;
        if len < NLMSG_HDR || len > buf.len() - pos {
            return Err(DumpError::Malformed("netlink message length out of range"));
        }
        let (kind, msg_seq) = (u16_at(buf, pos + 4), u32_at(buf, pos + 8));
        let body = pos + NLMSG_HDR;
        let end = pos + len;
        pos += align4(len).min(buf.len() - pos);
        if msg_seq != seq {
            continue;
        }
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let code = if len >= NLMSG_HDR + 4 {
                    u32_at(buf, body) as i32
                } else {
                    -1
                };
                return Err(DumpError::Kernel(code));
            }
            RTM_NEWLINK => {
                if *count == links.len() {
                    links.push([0; SLOTS]);
                }
                let slot = &mut links[*count];
                index_link(&buf[..end], body, slot)?;
                // A name that is not UTF-8 cannot be a label (`name` is then empty); sysfs
                // listings skip it too.
                if !(Link { buf, at: slot }).name().is_empty() {
                    *count += 1;
                }
            }
            _ => {}
        }
    }
    Ok(false)
}

/// Records where `struct ifinfomsg` (at `pos`) and each attribute of one `RTM_NEWLINK` message
/// (it ends at `buf.len()`) are.
fn index_link(buf: &[u8], mut pos: usize, at: &mut Offsets) -> Result<(), DumpError> {
    if buf.len() - pos < IFINFOMSG {
        return Err(DumpError::Malformed("RTM_NEWLINK shorter than ifinfomsg"));
    }
    *at = [0; SLOTS];
    at[0] = pos as u32;
    pos += IFINFOMSG;
    while buf.len() - pos >= 4 {
        let len = usize::from(u16_at(buf, pos));
        if len < 4 || len > buf.len() - pos {
            return Err(DumpError::Malformed("link attribute length out of range"));
        }
        // The top two bits are NLA_F_NESTED / NLA_F_NET_BYTEORDER.
        let kind = usize::from(u16_at(buf, pos + 2) & 0x3fff);
        if let Some(slot) = at.get_mut(kind).filter(|_| kind != 0) {
            *slot = pos as u32;
        }
        pos += align4(len).min(buf.len() - pos);
    }
    if (Link { buf, at })
        .c_bytes(IFLA_IFNAME)
        .is_none_or(<[u8]>::is_empty)
    {
        return Err(DumpError::Malformed("link without IFLA_IFNAME"));
    }
    Ok(())
}

#[cfg(test)]
impl LinkDump {
    /// A dump of the received parts `parts` (answering request `seq`), for tests that feed
    /// crafted bytes.
    pub fn from_parts(parts: &[Vec<u8>], seq: u32) -> Result<LinkDump, DumpError> {
        let mut d = LinkDump {
            seq,
            ..LinkDump::default()
        };
        let mut last = false;
        for p in parts {
            let used = d.buf.len();
            d.buf.extend_from_slice(p);
            last = parse_part(&d.buf, used, seq, &mut d.links, &mut d.count)?;
        }
        if !last {
            return Err(DumpError::Malformed("no NLMSG_DONE"));
        }
        Ok(d)
    }
}

#[cfg(test)]
pub mod testing {
    //! Builders of netlink messages for tests.
    use super::*;

    /// A netlink message of `kind`/`seq` around `payload`.
    pub fn message(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDR + payload.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0x2u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        m.resize(align4(m.len()), 0);
        m
    }

    pub fn attr(kind: u16, v: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(v);
        a.resize(align4(a.len()), 0);
        a
    }

    /// An `RTM_NEWLINK` payload: ifinfomsg, then `attrs`.
    pub fn newlink(index: i32, kind: u16, flags: u32, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut p = vec![0u8, 0];
        p.extend_from_slice(&kind.to_ne_bytes());
        p.extend_from_slice(&index.to_ne_bytes());
        p.extend_from_slice(&flags.to_ne_bytes());
        p.extend_from_slice(&0u32.to_ne_bytes());
        for a in attrs {
            p.extend_from_slice(a);
        }
        p
    }

    /// One complete dump (one part) of the links `payloads`.
    pub fn dump_of(seq: u32, payloads: &[Vec<u8>]) -> LinkDump {
        let mut part = Vec::new();
        for p in payloads {
            part.extend(message(RTM_NEWLINK, seq, p));
        }
        part.extend(message(NLMSG_DONE, seq, &0u32.to_ne_bytes()));
        LinkDump::from_parts(&[part], seq).expect("valid dump")
    }

    pub const DONE: u16 = NLMSG_DONE;
    pub const ERROR: u16 = NLMSG_ERROR;
    pub const NEWLINK: u16 = RTM_NEWLINK;
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    fn eth0() -> Vec<u8> {
        newlink(
            2,
            1,
            0x11043,
            &[
                attr(IFLA_IFNAME, b"eth0\0"),
                attr(IFLA_ADDRESS, &[0x02, 0x00, 0x5e, 0x10, 0xab, 0x0f]),
                attr(IFLA_BROADCAST, &[0xff; 6]),
                attr(IFLA_MTU, &1500u32.to_ne_bytes()),
                attr(IFLA_OPERSTATE, &[6]),
                attr(IFLA_CARRIER, &[1]),
                attr(IFLA_CARRIER_CHANGES, &3u32.to_ne_bytes()),
                attr(IFLA_IFALIAS, b"uplink\0"),
                attr(999, b"unknown attributes are skipped"),
                // NLA_F_NESTED set: still found by its type.
                attr(IFLA_GROUP | 0x8000, &7u32.to_ne_bytes()),
            ],
        )
    }

    #[test]
    fn rtnetlink_indexes_a_dump_across_parts() {
        let lo = newlink(
            1,
            772,
            0x10049,
            &[
                attr(IFLA_IFNAME, b"lo\0"),
                attr(IFLA_LINK, &5u32.to_ne_bytes()),
            ],
        );
        let mut part1 = message(NEWLINK, 7, &eth0());
        part1.extend(message(NEWLINK, 6, &lo)); // stale: skipped
        let mut part2 = message(NEWLINK, 7, &lo);
        part2.extend(message(DONE, 7, &0u32.to_ne_bytes()));
        let d = LinkDump::from_parts(&[part1, part2], 7).unwrap();
        assert_eq!(d.count, 2);
        let eth = d.link(0);
        assert_eq!(
            (eth.name(), eth.index(), eth.kind(), eth.flags()),
            ("eth0", 2, 1, 0x11043)
        );
        assert_eq!(
            eth.attr(IFLA_ADDRESS),
            Some(&[0x02, 0x00, 0x5e, 0x10, 0xab, 0x0f][..])
        );
        assert_eq!(eth.c_bytes(IFLA_IFALIAS), Some(&b"uplink"[..]));
        assert_eq!(
            (
                eth.word(IFLA_MTU),
                eth.byte(IFLA_OPERSTATE),
                eth.byte(IFLA_CARRIER)
            ),
            (Some(1500), Some(6), Some(1))
        );
        assert_eq!(
            (eth.word(IFLA_CARRIER_CHANGES), eth.word(IFLA_GROUP)),
            (Some(3), Some(7))
        );
        assert_eq!(
            (eth.word(IFLA_CARRIER_UP_COUNT), eth.word(IFLA_LINK)),
            (None, None)
        );
        // Out-of-range types ask for nothing.
        assert_eq!((eth.attr(0), eth.attr(999)), (None, None));
        let lo = d.link(1);
        assert_eq!((lo.name(), lo.word(IFLA_LINK)), ("lo", Some(5)));
        assert_eq!(lo.attr(IFLA_ADDRESS), None);
    }

    #[test]
    fn rtnetlink_reports_kernel_errors_and_short_attributes_read_as_absent() {
        let err = message(ERROR, 4, &(-16i32).to_ne_bytes());
        assert!(matches!(
            LinkDump::from_parts(&[err], 4),
            Err(DumpError::Kernel(-16))
        ));
        // A u32 attribute of 2 bytes is not a value.
        let d = dump_of(
            1,
            &[newlink(
                3,
                1,
                0,
                &[attr(IFLA_IFNAME, b"x"), attr(IFLA_MTU, &[1, 2])],
            )],
        );
        assert_eq!((d.link(0).name(), d.link(0).word(IFLA_MTU)), ("x", None));
    }

    #[test]
    fn rtnetlink_rejects_truncated_and_garbage_messages() {
        let good = message(NEWLINK, 1, &eth0());
        // Every cut of a valid message is an error or "more to come", never a panic.
        for cut in 0..good.len() {
            let mut links = Vec::new();
            let mut count = 0;
            let _ = parse_part(&good[..cut], 0, 1, &mut links, &mut count);
            assert_eq!(count, 0, "cut at {cut} indexed a link");
        }
        let malformed =
            |b: Vec<u8>| matches!(LinkDump::from_parts(&[b], 1), Err(DumpError::Malformed(_)));
        let mut bad_len = good.clone();
        bad_len[0..4].copy_from_slice(&(good.len() as u32 + 4).to_ne_bytes());
        assert!(malformed(bad_len));
        let mut tiny_len = good.clone();
        tiny_len[0..4].copy_from_slice(&8u32.to_ne_bytes());
        assert!(malformed(tiny_len));
        let mut bad_attr = message(NEWLINK, 1, &newlink(1, 1, 0, &[attr(IFLA_IFNAME, b"x\0")]));
        let at = NLMSG_HDR + IFINFOMSG;
        bad_attr[at..at + 2].copy_from_slice(&200u16.to_ne_bytes());
        assert!(malformed(bad_attr.clone()));
        bad_attr[at..at + 2].copy_from_slice(&2u16.to_ne_bytes());
        assert!(malformed(bad_attr));
        assert!(malformed(message(NEWLINK, 1, &newlink(1, 1, 0, &[]))));
        assert!(malformed(message(
            NEWLINK,
            1,
            &newlink(1, 1, 0, &[attr(IFLA_IFNAME, b"\0")])
        )));
        // A name that is not UTF-8 is left out, the rest of the dump kept.
        let d = dump_of(
            1,
            &[
                newlink(1, 1, 0, &[attr(IFLA_IFNAME, b"\xff\xfe\0")]),
                newlink(2, 1, 0, &[attr(IFLA_IFNAME, b"ok\0")]),
            ],
        );
        assert_eq!((d.count, d.link(0).name()), (1, "ok"));
        assert!(malformed(message(NEWLINK, 1, &[0u8; 8])));
        // Random bytes: no panic, and whatever is accepted reads without panicking.
        let mut rng = 0x9e37_79b9_u32;
        for _ in 0..4000 {
            let mut junk = good.clone();
            junk.extend(message(DONE, 1, &[0; 4]));
            for _ in 0..3 {
                rng ^= rng << 13;
                rng ^= rng >> 17;
                rng ^= rng << 5;
                let i = rng as usize % junk.len();
                junk[i] = (rng >> 8) as u8;
            }
            if let Ok(d) = LinkDump::from_parts(&[junk], 1) {
                for i in 0..d.count {
                    let l = d.link(i);
                    let _ = (l.name(), l.kind(), l.index(), l.flags());
                    for t in 0..70 {
                        let _ = (l.word(t), l.byte(t), l.c_bytes(t));
                    }
                }
            }
        }
    }

    #[test]
    fn rx_nohandler_is_shared_for_one_collection_only() {
        let stats = |fields: u64| -> Vec<u8> {
            (0..fields).flat_map(|i| (100 + i).to_ne_bytes()).collect()
        };
        let link = |index: i32, name: &[u8], fields: u64| {
            newlink(
                index,
                1,
                0,
                &[attr(IFLA_IFNAME, name), attr(IFLA_STATS64, &stats(fields))],
            )
        };
        // A kernel older than 4.6 sends 23 counters: no rx_nohandler.
        let dump = dump_of(
            9,
            &[
                link(2, b"eth0\0", 24),
                link(3, b"old0\0", 23),
                link(4, b"new0\0", 25),
            ],
        );
        assert_eq!(dump.link(0).rx_nohandler(), Some(123));
        assert_eq!(dump.link(1).rx_nohandler(), None);
        share_rx_nohandler(&dump, 3, 1_000);
        assert_eq!(rx_nohandler_of("eth0", 1_000), Some(123));
        assert_eq!(rx_nohandler_of("new0", 1_000), Some(123));
        assert_eq!(rx_nohandler_of("old0", 1_000), None);
        assert_eq!(rx_nohandler_of("eth", 1_000), None);
        // Another collection does not see it.
        assert_eq!(rx_nohandler_of("eth0", 1_001), None);
    }

    #[test]
    fn rtnetlink_dumps_this_machines_loopback() {
        let mut dump = LinkDump::default();
        let names = |d: &LinkDump, n: usize| -> Vec<String> {
            (0..n).map(|i| d.link(i).name().to_string()).collect()
        };
        let n = match dump.dump() {
            Ok(n) => n,
            // qemu-user may not translate rtnetlink; netclass then reads sysfs.
            Err(e) if cfg!(not(target_arch = "x86_64")) => {
                eprintln!("rtnetlink unavailable here: {e:?}");
                return;
            }
            Err(e) => panic!("RTM_GETLINK dump failed: {e:?}"),
        };
        let first = names(&dump, n);
        let lo = (0..n)
            .map(|i| dump.link(i))
            .find(|l| l.name() == "lo")
            .expect("lo in the dump");
        assert_eq!(lo.kind(), 772, "ARPHRD_LOOPBACK");
        // The stats64 layout as sysfs reads it (loopback never drops for want of a handler).
        if let Ok(v) = std::fs::read_to_string("/sys/class/net/lo/statistics/rx_nohandler") {
            assert_eq!(lo.rx_nohandler(), v.trim().parse().ok());
        }
        assert_eq!(lo.attr(IFLA_ADDRESS), Some(&[0u8; 6][..]));
        assert!(lo.word(IFLA_MTU).is_some_and(|m| m > 0));
        // The socket is kept: a second dump gives the same interfaces.
        let again = dump.dump().unwrap();
        assert_eq!(names(&dump, again), first);
        // RTEXT_FILTER_SKIP_STATS took effect: no per-device IPv6 statistics in any link.
        const IFLA_AF_SPEC: u16 = 26;
        const IFLA_INET6_STATS: u16 = 3;
        let nested = |b: &[u8]| -> Vec<(u16, Vec<u8>)> {
            let mut out = Vec::new();
            let mut at = 0;
            while at + 4 <= b.len() {
                let len = u16_at(b, at) as usize;
                if len < 4 || at + len > b.len() {
                    break;
                }
                out.push((u16_at(b, at + 2) & 0x3fff, b[at + 4..at + len].to_vec()));
                at += align4(len);
            }
            out
        };
        for i in 0..again {
            let Some(spec) = dump.link(i).attr(IFLA_AF_SPEC) else {
                continue;
            };
            for (family, body) in nested(spec) {
                if family == 10 {
                    assert!(
                        nested(&body).iter().all(|(t, _)| *t != IFLA_INET6_STATS),
                        "IPv6 stats sent for {}",
                        dump.link(i).name()
                    );
                }
            }
        }
    }
}
