//! The `thermal_zone` collector: zone temperatures and cooling-device states from
//! `/sys/class/thermal` (the SoC sensor on a Raspberry Pi lives here, not in hwmon).
//!
//! Must not touch: hwmon chips. A zone whose `temp` cannot be read right now (drivers answer
//! EAGAIN/ENODATA while a sensor is off) is skipped; a `temp` holding text is a parse error.

use super::sysfs::{read_attr, read_num};
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};
use std::path::PathBuf;

pub struct ThermalZone {
    names: Vec<String>,
    /// The class directory, not re-listed per scrape while empty.
    class_dir: super::sysfs::ClassDir,
    path: PathBuf,
    buf: Vec<u8>,
    typ: String,
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::new(ThermalZone {
        names: Vec::new(),
        class_dir: Default::default(),
        path: PathBuf::new(),
        buf: Vec::new(),
        typ: String::new(),
    }))
}

impl Collector for ThermalZone {
    fn name(&self) -> &'static str {
        "thermal_zone"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        let class = ctx.roots.sys("class/thermal");
        self.class_dir.list(&class, &mut self.names, ctx.now_ms)?;
        let zone_f = out.family_static(
            "node_thermal_zone_temp",
            "Zone temperature in Celsius",
            MetricType::Gauge,
        );
        let cur_f = out.family_static(
            "node_cooling_device_cur_state",
            "Current throttle state of the cooling device",
            MetricType::Gauge,
        );
        let max_f = out.family_static(
            "node_cooling_device_max_state",
            "Maximum throttle state of the cooling device",
            MetricType::Gauge,
        );
        let mut first_err = None;
        for name in &self.names {
            let (zone, cooling) = if let Some(z) = name.strip_prefix("thermal_zone") {
                (z, false)
            } else if let Some(c) = name.strip_prefix("cooling_device") {
                (c, true)
            } else {
                continue;
            };
            self.path.clear();
            self.path.push(&class);
            self.path.push(name);
            self.path.push("type");
            self.typ.clear();
            match read_attr(&self.path, &mut self.buf) {
                Some(t) => self.typ.push_str(&t),
                None => continue, // dangling link or vanished device
            }
            let labels: [(&str, &dyn crate::expo::LabelValue); 2] = if cooling {
                [("name", &zone), ("type", &self.typ)]
            } else {
                [("type", &self.typ), ("zone", &zone)]
            };
            let mut read = |file: &str, path: &mut PathBuf, buf: &mut Vec<u8>| {
                path.set_file_name(file);
                match read_num::<i64>(path, buf) {
                    Ok(v) => v,
                    Err(e) => {
                        first_err.get_or_insert(e);
                        None
                    }
                }
            };
            if cooling {
                if let Some(max) = read("max_state", &mut self.path, &mut self.buf) {
                    out.sample(max_f, &labels, max as f64);
                }
                if let Some(cur) = read("cur_state", &mut self.path, &mut self.buf) {
                    out.sample(cur_f, &labels, cur as f64);
                }
            } else if let Some(t) = read("temp", &mut self.path, &mut self.buf) {
                out.sample(zone_f, &labels, t as f64 / 1000.0);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fixtures::{assert_golden, node_fixtures, roots_at, run, Scratch};

    #[test]
    fn thermal_zone_matches_node_exporter_on_fixtures() {
        let Some(dir) = node_fixtures() else { return };
        let mut c = new(&CollectorOptions::default()).unwrap();
        let text = run(c.as_mut(), &roots_at(&dir)).unwrap();
        assert_golden(
            &dir,
            &text,
            &[
                "node_cooling_device_cur_state",
                "node_cooling_device_max_state",
                "node_thermal_zone_temp",
            ],
        );
    }

    #[test]
    fn thermal_zone_garbage_temp_is_an_error_and_missing_class_is_not_found() {
        let s = Scratch::new("thermal");
        let mut c = new(&CollectorOptions::default()).unwrap();
        assert!(matches!(
            run(c.as_mut(), &s.roots()),
            Err(ref e) if e.is_not_found()
        ));
        s.write("sys/class/thermal/thermal_zone0/type", b"cpu-thermal\n");
        s.write("sys/class/thermal/thermal_zone0/temp", b"12.3.4\n");
        assert!(matches!(
            run(c.as_mut(), &s.roots()),
            Err(ref e) if e.is_parse()
        ));
        s.write("sys/class/thermal/thermal_zone0/temp", b"-5000\n");
        let t = run(c.as_mut(), &s.roots()).unwrap();
        assert!(t.contains("node_thermal_zone_temp{type=\"cpu-thermal\",zone=\"0\"} -5\n"));
    }
}
