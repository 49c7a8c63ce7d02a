//! The `netclass` collector (node_exporter's default sysfs mode): link properties of every
//! interface from `/sys/class/net/<iface>/`: operstate, carrier, MTU, speed, flags, ...
//!
//! Must not touch: traffic counters (the `netdev` collector), netlink (not used by promlet).
//!
//! Attributes a driver refuses to read right now (EINVAL for `speed` on a link that is down)
//! are skipped; an attribute that reads but is not an integer is a parse error, reported after
//! the other interfaces were exported. Integers use Go's base-0 syntax (`flags` is `0x1003`).

use super::sysfs::{list_dir, opt_bool, short, KeptAttrs};
use super::{CollectError, Collector, CollectorOption, CollectorOptions, Context};
use crate::expo::{FamilyId, MetricSet, MetricType};
use regex_lite::Regex;
use std::path::PathBuf;

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

/// (sysfs file, metric suffix, is a counter), in node_exporter's emission order.
const NUMERIC: [(&str, &str, bool); 17] = [
    ("addr_assign_type", "address_assign_type", false),
    ("carrier", "carrier", false),
    ("carrier_changes", "carrier_changes_total", true),
    ("carrier_up_count", "carrier_up_changes_total", true),
    ("carrier_down_count", "carrier_down_changes_total", true),
    ("dev_id", "device_id", false),
    ("dormant", "dormant", false),
    ("flags", "flags", false),
    ("ifindex", "iface_id", false),
    ("iflink", "iface_link", false),
    ("link_mode", "iface_link_mode", false),
    ("mtu", "mtu_bytes", false),
    ("name_assign_type", "name_assign_type", false),
    ("netdev_group", "net_dev_group", false),
    ("speed", "speed_bytes", false),
    ("tx_queue_len", "transmit_queue_length", false),
    ("type", "protocol_type", false),
];

/// String attributes that become labels of `node_network_info`, in label order.
const STRINGS: [&str; 5] = ["address", "broadcast", "duplex", "ifalias", "operstate"];

const IFF_UP: i64 = 0x1;

pub struct NetClass {
    ignored: Regex,
    ignore_invalid_speed: bool,
    names: Vec<String>,
    path: PathBuf,
    buf: Vec<u8>,
    strings: [String; 5],
    families: Vec<FamilyId>,
    name_buf: String,
    help_buf: String,
    kept: KeptAttrs,
}

/// Attribute files netclass keeps open at most (22 per interface; see [`KeptAttrs`]).
const KEPT_FILES: usize = 256;

pub fn new(opts: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    let pat = opts.get("netclass.ignored-devices");
    let ignored = Regex::new(pat).map_err(|e| {
        format!("--collector.netclass.ignored-devices: invalid regular expression {pat:?}: {e}")
    })?;
    Ok(Box::new(NetClass {
        ignored,
        ignore_invalid_speed: opt_bool(opts, "netclass.ignore-invalid-speed"),
        names: Vec::new(),
        path: PathBuf::new(),
        buf: Vec::new(),
        strings: Default::default(),
        families: Vec::new(),
        name_buf: String::new(),
        help_buf: String::new(),
        kept: KeptAttrs::new(STRINGS.len() + NUMERIC.len(), KEPT_FILES),
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

impl Collector for NetClass {
    fn name(&self) -> &'static str {
        "netclass"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        let class = ctx.roots.sys("class/net");
        list_dir(&class, &mut self.names)?;
        let up_f = out.family(
            "node_network_up",
            "Value is 1 if operstate is 'up', 0 otherwise.",
            MetricType::Gauge,
        );
        let info_f = out.family(
            "node_network_info",
            "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
            MetricType::Gauge,
        );
        self.families.clear();
        for (_, suffix, counter) in NUMERIC {
            self.name_buf.clear();
            self.name_buf.push_str("node_network_");
            self.name_buf.push_str(suffix);
            self.help_buf.clear();
            self.help_buf.push_str("Network device property: ");
            self.help_buf.push_str(suffix);
            let t = if counter {
                MetricType::Counter
            } else {
                MetricType::Gauge
            };
            self.families
                .push(out.family(&self.name_buf, &self.help_buf, t));
        }
        let mut first_err = None;
        self.kept.begin_cycle(ctx.now_ms);
        for dev in &self.names {
            if self.ignored.is_match(dev) {
                continue;
            }
            self.path.clear();
            self.path.push(&class);
            self.path.push(dev);
            // Interfaces are directories (or links to them); `bonding_masters` is a file. An
            // interface with attribute files kept open is known to be one (saves a `stat`
            // through the class symlink per interface and scrape).
            if !self.kept.has_open_files(dev) && !self.path.is_dir() {
                continue;
            }
            let labels: [(&str, &dyn std::fmt::Display); 1] = [("device", dev)];
            for (i, (s, file)) in self.strings.iter_mut().zip(STRINGS).enumerate() {
                s.clear();
                self.path.push(file);
                if let Some(v) = self.kept.read(dev, i, &self.path, &mut self.buf) {
                    s.push_str(&v);
                }
                self.path.pop();
            }
            let mut flags = None;
            let mut values = [None; 17];
            for (i, (slot, (file, _, _))) in values.iter_mut().zip(NUMERIC).enumerate() {
                self.path.push(file);
                let kept = self
                    .kept
                    .read(dev, STRINGS.len() + i, &self.path, &mut self.buf);
                if let Some(v) = kept {
                    match parse_int_base0(&v) {
                        Some(n) => *slot = Some(n),
                        None => {
                            first_err.get_or_insert_with(|| {
                                CollectError::parse(
                                    &self.path,
                                    format!("not an integer: {:?}", short(&v)),
                                )
                            });
                        }
                    }
                }
                self.path.pop();
                if file == "flags" {
                    flags = *slot;
                }
            }
            let operstate = &self.strings[4];
            let up = if operstate == "up" { 1.0 } else { 0.0 };
            out.sample(up_f, &labels, up);
            let admin = match flags {
                Some(f) if f & IFF_UP != 0 => "up",
                _ => "down",
            };
            let [address, broadcast, duplex, ifalias, operstate] = &self.strings;
            out.sample(
                info_f,
                &[
                    ("address", address),
                    ("adminstate", &admin),
                    ("broadcast", broadcast),
                    ("device", dev),
                    ("duplex", duplex),
                    ("ifalias", ifalias),
                    ("operstate", operstate),
                ],
                1.0,
            );
            for ((v, (file, _, _)), fam) in values.iter().zip(NUMERIC).zip(&self.families) {
                let Some(v) = *v else { continue };
                let v = if file == "speed" {
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
        self.kept.end_cycle();
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
