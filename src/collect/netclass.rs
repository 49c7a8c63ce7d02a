//! The `netclass` collector (node_exporter's default sysfs mode): link properties of every
//! interface from `/sys/class/net/<iface>/`: operstate, carrier, MTU, speed, flags, ...
//!
//! Must not touch: traffic counters (the `netdev` collector).
//!
//! Source: when `--path.sysfs` is the host's `/sys`, one rtnetlink link dump per scrape
//! (src/collect/rtnetlink.rs) gives the interface list and 16 of the 22 attributes of every
//! interface; sysfs is read only for the other 6, and of those `speed`/`duplex` only on a device
//! that is up (the kernel refuses them otherwise). The values are those sysfs shows (a test
//! compares both on this machine). Any other sysfs root (recorded trees), or a netlink error,
//! lists `/sys/class/net` and reads every attribute from sysfs.
//!
//! Attributes a driver refuses to read right now (EINVAL for `speed` on a link that is down)
//! are skipped; an attribute that reads but is not an integer is a parse error, reported after
//! the other interfaces were exported. Integers use Go's base-0 syntax (`flags` is `0x1003`).

use super::rtnetlink::{self as nl, Link, LinkDump};
use super::sysfs::{list_dir, opt_bool, short, KeptAttrs};
use super::util::{fingerprint, intern, RememberedRegex};
use super::{CollectError, Collector, CollectorOption, CollectorOptions, Context};
use crate::expo::{FamilyId, MetricSet, MetricType};
use regex_lite::Regex;
use std::path::{Path, PathBuf};

pub const OPTIONS: &[CollectorOption] = &[
    CollectorOption {
        name: "netclass.ignored-devices",
        default: "^$",
        help: "Regexp of net devices to ignore for netclass collector.",
    },
    CollectorOption {
        name: "netclass.ignore-invalid-speed",
        default: "false",
        help:
            "Ignore devices where the speed is invalid. This will be the default behavior in 2.x.",
    },
];

/// Where a numeric attribute comes from when the link dump is used.
#[derive(Clone, Copy)]
enum FromLink {
    /// sysfs, read again only when [`Steady::still_valid`] says it may have changed: rtnetlink
    /// does not carry `addr_assign_type`, `dev_id` and `name_assign_type`. The value is this
    /// attribute's slot in [`Steady::values`].
    SysfsSteady(usize),
    /// sysfs on every collection: rtnetlink does not carry it as sysfs shows it
    /// (`flags`): sysfs `flags` is `dev->flags`, netlink sends
    /// `dev_get_flags()` (PROMISC/ALLMULTI as user space asked, RUNNING/LOWER_UP/DORMANT
    /// computed), and some vendor drivers keep IFF_RUNNING in `dev->flags` themselves.
    Sysfs,
    /// sysfs when [`ethtool_readable`], else absent (ethtool's `speed`).
    SysfsEthtool,
    /// A `u32` attribute.
    Word(u16),
    /// A `u8` attribute.
    Byte(u16),
    /// `IFLA_CARRIER`, which sysfs shows only while the device is up.
    Carrier,
    /// IFF_DORMANT of the dump flags (set only while up, when sysfs shows `dormant` at all).
    Dormant,
    Index,
    /// `IFLA_LINK`, which the kernel omits when it is the device's own index.
    Iflink,
    Kind,
}

/// (sysfs file, metric suffix, is a counter, netlink source), in node_exporter's emission order.
const NUMERIC: [(&str, &str, bool, FromLink); 17] = [
    (
        "addr_assign_type",
        "address_assign_type",
        false,
        FromLink::SysfsSteady(0),
    ),
    ("carrier", "carrier", false, FromLink::Carrier),
    (
        "carrier_changes",
        "carrier_changes_total",
        true,
        FromLink::Word(nl::IFLA_CARRIER_CHANGES),
    ),
    (
        "carrier_up_count",
        "carrier_up_changes_total",
        true,
        FromLink::Word(nl::IFLA_CARRIER_UP_COUNT),
    ),
    (
        "carrier_down_count",
        "carrier_down_changes_total",
        true,
        FromLink::Word(nl::IFLA_CARRIER_DOWN_COUNT),
    ),
    ("dev_id", "device_id", false, FromLink::SysfsSteady(1)),
    ("dormant", "dormant", false, FromLink::Dormant),
    ("flags", "flags", false, FromLink::Sysfs),
    ("ifindex", "iface_id", false, FromLink::Index),
    ("iflink", "iface_link", false, FromLink::Iflink),
    (
        "link_mode",
        "iface_link_mode",
        false,
        FromLink::Byte(nl::IFLA_LINKMODE),
    ),
    ("mtu", "mtu_bytes", false, FromLink::Word(nl::IFLA_MTU)),
    (
        "name_assign_type",
        "name_assign_type",
        false,
        FromLink::SysfsSteady(2),
    ),
    (
        "netdev_group",
        "net_dev_group",
        false,
        FromLink::Word(nl::IFLA_GROUP),
    ),
    ("speed", "speed_bytes", false, FromLink::SysfsEthtool),
    (
        "tx_queue_len",
        "transmit_queue_length",
        false,
        FromLink::Word(nl::IFLA_TXQLEN),
    ),
    ("type", "protocol_type", false, FromLink::Kind),
];

/// Whether sysfs shows ethtool's `speed` and `duplex` of `link`: the kernel refuses them
/// (EINVAL) unless the device runs (`netif_running`; IFF_UP is set once a device is opened and
/// cleared as it is closed) and its driver reports link settings, which the loopback driver
/// (the only one of type ARPHRD_LOOPBACK) does not.
fn ethtool_readable(link: &Link<'_>) -> bool {
    link.flags() & IFF_UP as u32 != 0 && link.kind() != ARPHRD_LOOPBACK
}

/// `src`'s value of `link`; `None`: read it from sysfs.
fn link_value(src: FromLink, link: &Link<'_>) -> Option<Option<i64>> {
    let up = link.flags() & IFF_UP as u32 != 0;
    Some(match src {
        FromLink::Sysfs | FromLink::SysfsSteady(_) => return None,
        FromLink::SysfsEthtool if ethtool_readable(link) => return None,
        FromLink::SysfsEthtool => None,
        FromLink::Word(kind) => link.word(kind).map(i64::from),
        FromLink::Byte(kind) => link.byte(kind).map(i64::from),
        FromLink::Carrier => link
            .byte(nl::IFLA_CARRIER)
            .filter(|_| up)
            .map(|c| i64::from(c != 0)),
        FromLink::Dormant => up.then(|| i64::from(link.flags() & IFF_DORMANT != 0)),
        FromLink::Index => Some(i64::from(link.index())),
        FromLink::Iflink => Some(
            link.word(nl::IFLA_LINK)
                .map_or(i64::from(link.index()), i64::from),
        ),
        FromLink::Kind => Some(i64::from(link.kind())),
    })
}

/// String attributes that become labels of `node_network_info`, in label order.
const STRINGS: [&str; 5] = ["address", "broadcast", "duplex", "ifalias", "operstate"];

const IFF_UP: i64 = 0x1;

pub struct NetClass {
    ignored: RememberedRegex,
    names: Vec<String>,
    /// Link attributes from one rtnetlink dump per scrape, when sysfs is the host's `/sys`.
    netlink: LinkDump,
    use_netlink: bool,
    /// Indexes of the dumped links in name order.
    order: Vec<usize>,
    /// `/sys/class/net` was found once: netlink mode does not look again on every scrape.
    class_seen: bool,
    /// Kept apart from the device list and the dump, so a dumped link can be read into it.
    attrs: Attrs,
}

/// One device's attributes as they are read, and the sysfs files and buffers that read them.
struct Attrs {
    ignore_invalid_speed: bool,
    path: PathBuf,
    buf: Vec<u8>,
    strings: [String; 5],
    families: Vec<FamilyId>,
    /// Name and HELP of each [`NUMERIC`] family, built and interned once.
    numeric_texts: Vec<(&'static str, &'static str)>,
    kept: KeptAttrs,
    /// The current device's attribute values, in [`NUMERIC`] order.
    values: [Option<i64>; NUMERIC.len()],
    /// The [`FromLink::SysfsSteady`] attributes of the dumped interfaces, as last read.
    steady: Vec<Steady>,
    /// Wall-clock ms of the current collection.
    now_ms: i64,
}

/// `addr_assign_type`, `dev_id` and `name_assign_type` of one interface as last read from
/// sysfs (`None`: unreadable, like `name_assign_type` of a device named without one, which
/// the kernel refuses with EINVAL), and the link state they were read under. Reading them
/// on every scrape cost 3 sysfs reads per interface (9 µs each here, cold).
///
/// What changes them (net/core/dev.c, net-sysfs.c):
/// - `name_assign_type`: fixed at allocation, except that `dev_change_name` sets
///   NET_NAME_RENAMED: a rename shows as a new name for the same ifindex.
/// - `addr_assign_type`: set by the driver with the address (`eth_hw_addr_random` →
///   NET_ADDR_RANDOM), and by `dev_set_mac_address` (SIOCSIFHWADDR, `ip link set address`)
///   to NET_ADDR_SET, which comes with a new `IFLA_ADDRESS` in the dump, except when the
///   same address is set again (newer kernels skip the driver call but still mark it SET).
/// - `dev_id`: set by the driver before it registers the device.
///
/// A deleted and re-created device gets a new ifindex. What the dump cannot show (the same
/// address set again, a driver changing `dev_id` later) is seen within [`STEADY_REREAD_MS`].
struct Steady {
    index: i32,
    /// Length and [`fingerprint`] of the name and of the hardware address they were read
    /// under (kept copies were cold memory at the next scrape; see [`fingerprint`] for why a
    /// hash is safe here).
    name: (usize, u64),
    address: (usize, u64),
    read_ms: i64,
    values: [Option<i64>; 3],
    /// Met in the current collection (entries of interfaces that went away are dropped).
    seen: bool,
}

fn print(bytes: &[u8]) -> (usize, u64) {
    (bytes.len(), fingerprint(bytes))
}

/// The longest a [`Steady`] value is shown without reading it again.
const STEADY_REREAD_MS: i64 = 5 * 60 * 1000;

impl Steady {
    /// Whether these values still hold for `link` (named `dev`) at `now_ms`.
    fn still_valid(&self, dev: &str, link: &Link<'_>, now_ms: i64) -> bool {
        self.index == link.index()
            && self.name == print(dev.as_bytes())
            && self.address == print(link.attr(nl::IFLA_ADDRESS).unwrap_or_default())
            && (0..STEADY_REREAD_MS).contains(&now_ms.saturating_sub(self.read_ms))
    }
}

/// Attribute files netclass keeps open at most (22 per interface; see [`KeptAttrs`]).
const KEPT_FILES: usize = 256;

pub fn new(opts: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(build(opts)?)
}

/// The collector, built in its box (moving a built one into a box costs code per field).
fn build(opts: &CollectorOptions) -> Result<Box<NetClass>, String> {
    let pat = opts.get("netclass.ignored-devices");
    let ignored = Regex::new(pat).map_err(|e| {
        format!("--collector.netclass.ignored-devices: invalid regular expression {pat:?}: {e}")
    })?;
    Ok(Box::new(NetClass {
        ignored: RememberedRegex::new(ignored),
        names: Vec::new(),
        netlink: LinkDump::default(),
        use_netlink: true,
        order: Vec::new(),
        class_seen: false,
        attrs: Attrs {
            ignore_invalid_speed: opt_bool(opts, "netclass.ignore-invalid-speed"),
            path: PathBuf::new(),
            buf: Vec::new(),
            strings: Default::default(),
            families: Vec::new(),
            numeric_texts: Vec::new(),
            kept: KeptAttrs::new(STRINGS.len() + NUMERIC.len(), KEPT_FILES),
            values: [None; NUMERIC.len()],
            steady: Vec::new(),
            now_ms: 0,
        },
    }))
}

/// Go's `strconv.ParseInt(s, 0, 64)`: optional sign, then `0x`/`0o`/`0b`/leading-`0` prefixes.
pub fn parse_int_base0(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.get(..2).map(|p| p.to_ascii_lowercase());
    let (radix, digits) = match lower.as_deref() {
        Some("0x") => (16, &body[2..]),
        Some("0o") => (8, &body[2..]),
        Some("0b") => (2, &body[2..]),
        _ if body.len() > 1 && body.starts_with('0') => (8, &body[1..]),
        _ => (10, body),
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let v = i64::from_str_radix(digits, radix).ok()?;
    Some(if neg { -v } else { v })
}

/// sysfs `operstate` names, indexed by the kernel's IF_OPER_* value (what netlink sends).
const OPERSTATES: [&str; 7] = [
    "unknown",
    "notpresent",
    "down",
    "lowerlayerdown",
    "testing",
    "dormant",
    "up",
];

/// `aa:bb:cc`, lower-case hex, as sysfs shows `address` and `broadcast` (empty when the
/// device has no hardware address: the kernel then sends neither attribute).
fn format_hw_address(out: &mut String, v: Option<&[u8]>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.clear();
    for (i, byte) in v.unwrap_or_default().iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
}

const IFF_DORMANT: u32 = 0x20000;
const ARPHRD_LOOPBACK: u16 = 772;
/// Indexes of `flags` and `speed` in [`NUMERIC`].
const FLAGS: usize = 7;
const SPEED: usize = 14;
/// Index of `duplex` in [`STRINGS`].
const DUPLEX: usize = 2;

impl Attrs {
    /// Reads attribute `slot` (`file`) of `dev` from sysfs into `value`; a value that is not an
    /// integer is remembered in `first_err`.
    fn read_numeric(
        &mut self,
        dev: &str,
        slot: usize,
        file: &str,
        first_err: &mut Option<CollectError>,
    ) -> Option<i64> {
        self.path.push(file);
        let v = self.kept.read(dev, slot, &self.path, &mut self.buf);
        let parsed = v.and_then(|v| match parse_int_base0(&v) {
            Some(n) => Some(n),
            None => {
                first_err.get_or_insert_with(|| {
                    CollectError::parse(&self.path, format!("not an integer: {:?}", short(&v)))
                });
                None
            }
        });
        self.path.pop();
        parsed
    }

    /// Reads string attribute `i` of `dev` from sysfs into `self.strings[i]`.
    fn read_string(&mut self, dev: &str, i: usize) {
        self.strings[i].clear();
        self.path.push(STRINGS[i]);
        if let Some(v) = self.kept.read(dev, i, &self.path, &mut self.buf) {
            self.strings[i].push_str(&v);
        }
        self.path.pop();
    }

    /// The attributes of `dev` (its sysfs directory is `self.path`): from its link dump
    /// entry `link` where netlink has them, else from sysfs. Values are what sysfs would show:
    /// an attribute sysfs refuses (carrier, dormant, speed, duplex on a device that is not up;
    /// speed and duplex of loopback) is absent from the link values too, and not asked of sysfs.
    fn read_device(
        &mut self,
        dev: &str,
        link: Option<&Link<'_>>,
        first_err: &mut Option<CollectError>,
    ) {
        if let Some(link) = link {
            let [address, broadcast, duplex, ifalias, operstate] = &mut self.strings;
            format_hw_address(address, link.attr(nl::IFLA_ADDRESS));
            format_hw_address(broadcast, link.attr(nl::IFLA_BROADCAST));
            ifalias.clear();
            if let Some(alias) = link.c_bytes(nl::IFLA_IFALIAS) {
                // As read from sysfs: lossy UTF-8, trimmed.
                ifalias.push_str(String::from_utf8_lossy(alias).trim());
            }
            let state = link.byte(nl::IFLA_OPERSTATE);
            operstate.clear();
            operstate.push_str(
                state
                    .and_then(|o| OPERSTATES.get(usize::from(o)))
                    .map_or("", |s| s),
            );
            duplex.clear();
        }
        // With a link, of the strings only ethtool's duplex is read, and only when sysfs has it.
        let ethtool = link.is_none_or(ethtool_readable);
        for i in 0..STRINGS.len() {
            if link.is_none() || (i == DUPLEX && ethtool) {
                self.read_string(dev, i);
            }
        }
        let entry = link.and_then(|l| self.steady.iter().position(|s| s.index == l.index()));
        let valid = entry
            .zip(link)
            .and_then(|(e, l)| self.steady[e].still_valid(dev, l, self.now_ms).then_some(e));
        // A value that does not parse is not kept, so it is reported on every collection.
        let mut steady_err = None;
        for (i, (file, _, _, src)) in NUMERIC.iter().enumerate() {
            self.values[i] = match (link.and_then(|l| link_value(*src, l)), *src) {
                (Some(v), _) => v,
                (None, FromLink::SysfsSteady(k)) => match valid {
                    Some(e) => self.steady[e].values[k],
                    None => self.read_numeric(dev, STRINGS.len() + i, file, &mut steady_err),
                },
                (None, _) => self.read_numeric(dev, STRINGS.len() + i, file, first_err),
            };
        }
        let Some(link) = link else { return };
        if let Some(e) = valid {
            self.steady[e].seen = true;
            return;
        }
        if let Some(e) = entry {
            self.steady.swap_remove(e);
        }
        if let Some(err) = steady_err {
            first_err.get_or_insert(err);
            return;
        }
        let mut values = [None; 3];
        for (i, (_, _, _, src)) in NUMERIC.iter().enumerate() {
            if let FromLink::SysfsSteady(k) = src {
                values[*k] = self.values[i];
            }
        }
        self.steady.push(Steady {
            index: link.index(),
            name: print(dev.as_bytes()),
            address: print(link.attr(nl::IFLA_ADDRESS).unwrap_or_default()),
            read_ms: self.now_ms,
            values,
            seen: true,
        });
    }

    /// The samples of one device from `self.strings` and `self.values`.
    fn emit(&self, dev: &str, up_f: FamilyId, info_f: FamilyId, out: &mut MetricSet) {
        let labels: [(&str, &dyn crate::expo::LabelValue); 1] = [("device", &dev)];
        let [address, broadcast, duplex, ifalias, operstate] = &self.strings;
        let up = if operstate == "up" { 1.0 } else { 0.0 };
        out.sample(up_f, &labels, up);
        let admin = match self.values[FLAGS] {
            Some(f) if f & IFF_UP != 0 => "up",
            _ => "down",
        };
        out.sample(
            info_f,
            &[
                ("address", address),
                ("adminstate", &admin),
                ("broadcast", broadcast),
                ("device", &dev),
                ("duplex", duplex),
                ("ifalias", ifalias),
                ("operstate", operstate),
            ],
            1.0,
        );
        for (i, (v, fam)) in self.values.iter().zip(&self.families).enumerate() {
            let Some(v) = *v else { continue };
            let v = if i == SPEED {
                // Mbit/s → bytes/s; drivers report -1 when the speed is unknown.
                if v < 0 && self.ignore_invalid_speed {
                    continue;
                }
                v.saturating_mul(1000 * 1000 / 8)
            } else {
                v
            };
            out.sample(*fam, &labels, v as f64);
        }
    }
}

impl Collector for NetClass {
    fn name(&self) -> &'static str {
        "netclass"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        let NetClass {
            ignored,
            names,
            netlink,
            use_netlink,
            order,
            class_seen,
            attrs: a,
        } = self;
        let class = ctx.roots.sys("class/net");
        // netlink describes this process's own kernel and network namespace, so only when
        // sysfs is the default `/sys` (a root mounted for another namespace is not told apart).
        let links = if *use_netlink && ctx.roots.sysfs == Path::new("/sys") {
            if !*class_seen && !class.is_dir() {
                return Err(CollectError::not_found(class));
            }
            *class_seen = true;
            let dumped = netlink.dump().ok();
            if let Some(n) = dumped {
                nl::share_rx_nohandler(netlink, n, ctx.now_ms);
            }
            dumped
        } else {
            None
        };
        if links.is_none() {
            list_dir(&class, names)?;
        }
        let up_f = out.family_static(
            "node_network_up",
            "Value is 1 if operstate is 'up', 0 otherwise.",
            MetricType::Gauge,
        );
        let info_f = out.family_static(
            "node_network_info",
            "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
            MetricType::Gauge,
        );
        if a.numeric_texts.is_empty() {
            a.numeric_texts = NUMERIC
                .iter()
                .map(|(_, suffix, _, _)| {
                    (
                        intern(format!("node_network_{suffix}")),
                        intern(format!("Network device property: {suffix}")),
                    )
                })
                .collect();
        }
        a.families.clear();
        for ((_, _, counter, _), &(name, help)) in NUMERIC.iter().zip(&a.numeric_texts) {
            let t = if *counter {
                MetricType::Counter
            } else {
                MetricType::Gauge
            };
            a.families.push(out.family_static(name, help, t));
        }
        let mut first_err = None;
        a.kept.begin_cycle(ctx.now_ms);
        a.now_ms = ctx.now_ms;
        a.steady.iter_mut().for_each(|s| s.seen = false);
        if let Some(count) = links {
            // sysfs lists devices by name; keep that order: each link goes where as many
            // names sort before it as there are (names are unique in a namespace). Quadratic,
            // but for a handful of interfaces, and no sort instantiation (size).
            order.clear();
            order.resize(count, 0);
            for i in 0..count {
                let name = netlink.link(i).name();
                let rank = (0..count)
                    .filter(|&j| netlink.link(j).name() < name)
                    .count();
                order[rank] = i;
            }
        }
        for k in 0..links.unwrap_or(names.len()) {
            let link = links.map(|_| netlink.link(order[k]));
            let dev = match &link {
                Some(l) => l.name(),
                None => &names[k],
            };
            if ignored.is_match(dev) {
                continue;
            }
            a.path.clear();
            a.path.push(&class);
            a.path.push(dev);
            // Interfaces are directories (or links to them); `bonding_masters` is a file.
            // An interface with attribute files kept open is known to be one (saves a `stat`
            // through the class symlink per interface and scrape); netlink lists only
            // interfaces.
            if link.is_none() && !a.kept.has_open_files(dev) && !a.path.is_dir() {
                continue;
            }
            a.read_device(dev, link.as_ref(), &mut first_err);
            a.emit(dev, up_f, info_f, out);
        }
        a.kept.end_cycle();
        a.steady.retain(|s| s.seen);
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fixtures::{assert_golden, golden, node_fixtures, roots_at, run, Scratch};

    #[test]
    fn netclass_matches_node_exporter_on_fixtures() {
        let Some(dir) = node_fixtures() else { return };
        let mut o = CollectorOptions::default();
        o.set("netclass.ignore-invalid-speed", "true");
        o.set("netclass.ignored-devices", "(dmz|int)");
        let mut c = new(&o).unwrap();
        let text = run(c.as_mut(), &roots_at(&dir)).unwrap();
        let gold = golden(&dir);
        // Everything node_network_* except netdev's traffic counters.
        let want: Vec<&str> = gold
            .keys()
            .filter(|k| k.starts_with("node_network_"))
            .filter(|k| !k.ends_with("_total") || k.starts_with("node_network_carrier"))
            .map(|k| k.as_str())
            .collect();
        assert_eq!(want.len(), 19, "{want:?}");
        assert_golden(&dir, &text, &want);
    }

    #[test]
    fn netclass_keeps_invalid_speed_unless_told_and_ignores_devices() {
        let Some(dir) = node_fixtures() else { return };
        let mut c = new(&CollectorOptions::default()).unwrap();
        let text = run(c.as_mut(), &roots_at(&dir)).unwrap();
        assert!(text.contains("node_network_speed_bytes{device=\"bond0\"} -125000\n"));
        assert!(text.contains("device=\"dmz\""));
    }

    /// The netlink path must show exactly what sysfs shows for this machine's interfaces.
    #[test]
    fn netclass_from_netlink_matches_sysfs_on_this_machine() {
        let roots = crate::collect::Roots::default();
        if !roots.sys("class/net").is_dir() {
            eprintln!("no /sys/class/net here: nothing to compare");
            return;
        }
        let mut via_sysfs = build(&CollectorOptions::default()).unwrap();
        via_sysfs.use_netlink = false;
        let mut via_netlink = build(&CollectorOptions::default()).unwrap();
        // Twice each, interleaved: the second netlink collection reuses the dump's buffers
        // and the kept sysfs files.
        let mut texts = Vec::new();
        for _ in 0..2 {
            texts.push((
                run(via_sysfs.as_mut(), &roots).unwrap(),
                run(via_netlink.as_mut(), &roots).unwrap(),
            ));
        }
        let used_netlink = via_netlink.netlink.dump().is_ok_and(|n| n > 0);
        if cfg!(target_arch = "x86_64") {
            assert!(used_netlink, "rtnetlink dump failed on x86_64");
        }
        for (sysfs, netlink) in texts {
            assert!(
                sysfs.contains("node_network_mtu_bytes{device=\"lo\"}"),
                "{sysfs}"
            );
            assert_eq!(netlink, sysfs);
        }
    }

    /// On a device that is down, carrier, dormant, speed and duplex are neither shown nor
    /// asked of sysfs (the kernel refuses them), nor speed and duplex of loopback; on a device
    /// that is up they are. The sysfs files here hold values for all, so a read would show.
    #[test]
    fn netclass_does_not_read_what_the_kernel_refuses_on_a_down_link() {
        use crate::collect::rtnetlink::testing::{attr, dump_of, newlink};
        let s = Scratch::new("netclass-down");
        let devices = [
            // name, ifindex, ARPHRD, dump flags, IF_OPER_*, sysfs flags
            ("dn0", 5, 1, 0x1002, 2, "0x1002"),
            ("up0", 6, 1, 0x11043, 6, "0x1003"),
            ("lo", 1, ARPHRD_LOOPBACK, 0x10049, 0, "0x9"),
        ];
        let mut links = Vec::new();
        for (dev, index, kind, flags, state, sysfs_flags) in devices {
            for (file, v) in [
                ("speed", "1000"),
                ("duplex", "full"),
                ("carrier", "1"),
                ("dormant", "0"),
                ("flags", sysfs_flags),
                ("dev_id", "0x0"),
            ] {
                s.write(&format!("sys/class/net/{dev}/{file}"), v.as_bytes());
            }
            let name = format!("{dev}\0");
            links.push(newlink(
                index,
                kind,
                flags,
                &[
                    attr(nl::IFLA_IFNAME, name.as_bytes()),
                    attr(nl::IFLA_CARRIER, &[1]),
                    attr(nl::IFLA_OPERSTATE, &[state]),
                    attr(nl::IFLA_IFALIAS, b" spaced \0"),
                    attr(nl::IFLA_ADDRESS, &[0x0a, 0xff]),
                ],
            ));
        }
        let dump = dump_of(9, &links);
        let mut c = build(&CollectorOptions::default()).unwrap();
        let value = |c: &NetClass, file: &str| {
            let i = NUMERIC.iter().position(|(f, ..)| *f == file).unwrap();
            c.attrs.values[i]
        };
        let mut err = None;
        for (i, (dev, index, kind, _, _, sysfs_flags)) in devices.into_iter().enumerate() {
            let l = dump.link(i);
            assert_eq!(l.name(), dev);
            c.attrs.path = s.dir.join("sys/class/net").join(dev);
            c.attrs.read_device(dev, Some(&l), &mut err);
            let up = dev != "dn0";
            let ethtool = dev == "up0";
            let only = |yes: bool, v: i64| yes.then_some(v);
            assert_eq!(value(&c, "speed"), only(ethtool, 1000), "{dev}");
            assert_eq!(value(&c, "carrier"), only(up, 1), "{dev}");
            assert_eq!(value(&c, "dormant"), only(up, 0), "{dev}");
            assert_eq!(c.attrs.strings[2], if ethtool { "full" } else { "" });
            // From sysfs either way, and from the dump.
            let flags = parse_int_base0(sysfs_flags);
            assert_eq!(value(&c, "flags"), flags, "{dev}");
            assert_eq!(value(&c, "dev_id"), Some(0));
            assert_eq!(value(&c, "ifindex"), Some(index.into()));
            assert_eq!(value(&c, "iflink"), Some(index.into()));
            assert_eq!(value(&c, "type"), Some(kind.into()));
            assert_eq!(value(&c, "mtu"), None);
            let state = ["down", "up", "unknown"][i];
            let a = &c.attrs.strings;
            assert_eq!(
                [&a[0], &a[1], &a[3], &a[4]],
                ["0a:ff", "", "spaced", state],
                "{dev}"
            );
        }
        assert!(err.is_none());
    }

    /// addr_assign_type, dev_id and name_assign_type are read from sysfs once per interface and
    /// read again only after what can change them changed in the dump (address, name, ifindex)
    /// or after [`STEADY_REREAD_MS`]; flags is read on every collection.
    #[test]
    fn netclass_rereads_steady_attributes_only_when_the_link_changed_or_in_time() {
        use crate::collect::rtnetlink::testing::{attr, dump_of, newlink};
        let s = Scratch::new("netclass-steady");
        let set = |addr: &str, id: &str, name: &str, flags: &str| {
            for (file, v) in [
                ("addr_assign_type", addr),
                ("dev_id", id),
                ("name_assign_type", name),
                ("flags", flags),
            ] {
                s.write(&format!("sys/class/net/e0/{file}"), v.as_bytes());
            }
        };
        let dump = |index: i32, name: &str, mac: u8| {
            let name = format!("{name}\0");
            dump_of(
                1,
                &[newlink(
                    index,
                    1,
                    0x1002,
                    &[
                        attr(nl::IFLA_IFNAME, name.as_bytes()),
                        attr(nl::IFLA_ADDRESS, &[2, 0, 0, 0, 0, mac]),
                    ],
                )],
            )
        };
        let mut c = build(&CollectorOptions::default()).unwrap();
        // (addr_assign_type, dev_id, name_assign_type, flags) as shown at `now_ms`.
        let mut shown = |d: &LinkDump, now_ms: i64| {
            let l = d.link(0);
            c.attrs.now_ms = now_ms;
            c.attrs.path = s.dir.join("sys/class/net/e0");
            let mut err = None;
            c.attrs.read_device(l.name(), Some(&l), &mut err);
            assert!(err.is_none());
            let v = |file: &str| {
                let i = NUMERIC.iter().position(|(f, ..)| *f == file).unwrap();
                c.attrs.values[i].unwrap()
            };
            [
                v("addr_assign_type"),
                v("dev_id"),
                v("name_assign_type"),
                v("flags"),
            ]
        };
        let first = dump(5, "e0", 1);
        set("0", "0x0", "1", "0x1002");
        assert_eq!(shown(&first, 0), [0, 0, 1, 0x1002]);
        // Files changed, the link did not: kept (flags is read anyway).
        set("3", "0x1", "4", "0x1003");
        assert_eq!(shown(&first, 1000), [0, 0, 1, 0x1003]);
        assert_eq!(shown(&first, STEADY_REREAD_MS - 1), [0, 0, 1, 0x1003]);
        // A bounded time later: read again.
        assert_eq!(shown(&first, STEADY_REREAD_MS), [3, 1, 4, 0x1003]);
        // A new address (dev_set_mac_address marks NET_ADDR_SET).
        set("1", "0x0", "2", "0x1003");
        let t = STEADY_REREAD_MS + 1;
        assert_eq!(shown(&first, t), [3, 1, 4, 0x1003]);
        assert_eq!(shown(&dump(5, "e0", 2), t), [1, 0, 2, 0x1003]);
        // A rename (dev_change_name marks NET_NAME_RENAMED).
        set("0", "0x0", "4", "0x1003");
        assert_eq!(shown(&dump(5, "e0", 2), t), [1, 0, 2, 0x1003]);
        assert_eq!(shown(&dump(5, "e1", 2), t), [0, 0, 4, 0x1003]);
        // A new ifindex (deleted and created again).
        set("1", "0x2", "3", "0x1003");
        assert_eq!(shown(&dump(5, "e1", 2), t), [0, 0, 4, 0x1003]);
        assert_eq!(shown(&dump(9, "e1", 2), t), [1, 2, 3, 0x1003]);
        // A clock that went back reads again too.
        set("0", "0x0", "1", "0x1003");
        assert_eq!(shown(&dump(9, "e1", 2), t - 1), [0, 0, 1, 0x1003]);
    }

    /// A steady attribute that does not parse is not kept: reported on every collection.
    #[test]
    fn netclass_steady_attribute_that_does_not_parse_is_reported_every_time() {
        use crate::collect::rtnetlink::testing::{attr, dump_of, newlink};
        let s = Scratch::new("netclass-steady-garbage");
        s.write("sys/class/net/e0/dev_id", b"0xzz");
        let d = dump_of(
            1,
            &[newlink(5, 1, 0x1002, &[attr(nl::IFLA_IFNAME, b"e0\0")])],
        );
        let mut c = build(&CollectorOptions::default()).unwrap();
        c.attrs.path = s.dir.join("sys/class/net/e0");
        for now_ms in [0, 1] {
            c.attrs.now_ms = now_ms;
            let mut err = None;
            c.attrs.read_device("e0", Some(&d.link(0)), &mut err);
            assert!(err.is_some_and(|e| e.is_parse()), "{now_ms}");
        }
    }

    #[test]
    fn netclass_parses_go_base0_integers() {
        assert_eq!(parse_int_base0("0x1303"), Some(4867));
        assert_eq!(parse_int_base0("-1"), Some(-1));
        assert_eq!(parse_int_base0("010"), Some(8));
        assert_eq!(parse_int_base0("0"), Some(0));
        assert_eq!(parse_int_base0("0x"), None);
        assert_eq!(parse_int_base0("--1"), None);
        assert_eq!(parse_int_base0("12abc"), None);
        assert_eq!(parse_int_base0(""), None);
    }

    #[test]
    fn netclass_garbage_attribute_is_an_error_but_other_devices_are_kept() {
        let s = Scratch::new("netclass");
        let mut c = new(&CollectorOptions::default()).unwrap();
        assert!(matches!(
            run(c.as_mut(), &s.roots()),
            Err(ref e) if e.is_not_found()
        ));
        s.write("sys/class/net/a0/mtu", b"1500\n");
        s.write("sys/class/net/a0/operstate", b"up\n");
        s.write("sys/class/net/b0/mtu", b"15\x0000\n");
        let mut set = MetricSet::new();
        let roots = s.roots();
        let ctx = Context {
            roots: &roots,
            now_ms: 0,
        };
        assert!(matches!(
            c.collect(&ctx, &mut set),
            Err(ref e) if e.is_parse()
        ));
        let mut text = Vec::new();
        crate::expo::encode_text(&set, &mut text);
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("node_network_mtu_bytes{device=\"a0\"} 1500"));
        assert!(text.contains("node_network_up{device=\"a0\"} 1"));
    }
}
