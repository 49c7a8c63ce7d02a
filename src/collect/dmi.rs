//! The `dmi` collector: `node_dmi_info` from `/sys/class/dmi/id/` (firmware, board, chassis
//! and product strings).
//!
//! Must not touch: anything else. A field whose file is missing or unreadable (the serial
//! numbers are root-only) is left out of the labels; an empty file gives an empty label, as
//! in node_exporter.

use super::sysfs::read_attr;
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};
use std::path::PathBuf;

/// (file, label), in label order.
const FIELDS: [(&str, &str); 20] = [
    ("bios_date", "bios_date"),
    ("bios_release", "bios_release"),
    ("bios_vendor", "bios_vendor"),
    ("bios_version", "bios_version"),
    ("board_asset_tag", "board_asset_tag"),
    ("board_name", "board_name"),
    ("board_serial", "board_serial"),
    ("board_vendor", "board_vendor"),
    ("board_version", "board_version"),
    ("chassis_asset_tag", "chassis_asset_tag"),
    ("chassis_serial", "chassis_serial"),
    ("chassis_vendor", "chassis_vendor"),
    ("chassis_version", "chassis_version"),
    ("product_family", "product_family"),
    ("product_name", "product_name"),
    ("product_serial", "product_serial"),
    ("product_sku", "product_sku"),
    ("product_uuid", "product_uuid"),
    ("product_version", "product_version"),
    ("sys_vendor", "system_vendor"),
];

pub struct Dmi {
    values: [Option<String>; 20],
    path: PathBuf,
    buf: Vec<u8>,
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::new(Dmi {
        values: Default::default(),
        path: PathBuf::new(),
        buf: Vec::new(),
    }))
}

impl Collector for Dmi {
    fn name(&self) -> &'static str {
        "dmi"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        let dir = ctx.roots.sys("class/dmi/id");
        if !dir.is_dir() {
            return Err(CollectError::not_found(dir));
        }
        for (slot, (file, _)) in self.values.iter_mut().zip(FIELDS) {
            self.path.clear();
            self.path.push(&dir);
            self.path.push(file);
            match read_attr(&self.path, &mut self.buf) {
                Some(v) => {
                    let s = slot.get_or_insert_with(String::new);
                    s.clear();
                    s.push_str(&v);
                }
                None => *slot = None,
            }
        }
        let mut labels: [(&str, &dyn crate::expo::LabelValue); 20] = [("", &""); 20];
        let mut n = 0;
        for (v, (_, label)) in self.values.iter().zip(FIELDS) {
            if let Some(v) = v {
                labels[n] = (label, v);
                n += 1;
            }
        }
        let f = out.family_static(
            "node_dmi_info",
            "A metric with a constant '1' value labeled by bios_date, bios_release, bios_vendor, bios_version, board_asset_tag, board_name, board_serial, board_vendor, board_version, chassis_asset_tag, chassis_serial, chassis_vendor, chassis_version, product_family, product_name, product_serial, product_sku, product_uuid, product_version, system_vendor if provided by DMI.",
            MetricType::Gauge,
        );
        out.sample(f, &labels[..n], 1.0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fixtures::{assert_golden, node_fixtures, roots_at, run, Scratch};

    #[test]
    fn dmi_matches_node_exporter_on_fixtures() {
        let Some(dir) = node_fixtures() else { return };
        let mut c = new(&CollectorOptions::default()).unwrap();
        let text = run(c.as_mut(), &roots_at(&dir)).unwrap();
        assert_golden(&dir, &text, &["node_dmi_info"]);
    }

    #[test]
    fn dmi_absent_is_not_found_and_garbage_bytes_stay_valid_utf8() {
        let s = Scratch::new("dmi");
        let mut c = new(&CollectorOptions::default()).unwrap();
        assert!(matches!(
            run(c.as_mut(), &s.roots()),
            Err(ref e) if e.is_not_found()
        ));
        s.write("sys/class/dmi/id/board_name", b"\xff\xfe\x1c\"x\n");
        let text = run(c.as_mut(), &s.roots()).unwrap();
        assert!(
            text.contains("node_dmi_info{board_name=\"\u{fffd}\u{fffd}\u{1c}\\\"x\"} 1"),
            "{text}"
        );
    }
}
