//! The `hwmon` collector: every sensor under `/sys/class/hwmon/*` (and its `device/`
//! directory), named and scaled as node_exporter names and scales them.
//!
//! Must not touch: thermal zones (`thermal_zone`), power supplies (`powersupplyclass`).
//!
//! Sensor files are `<type><n>_<property>` (`temp1_input`, `fan2_min`, `pwm1`); the type picks
//! the unit and scale, the property the metric suffix. Chips are named from their device path
//! (`platform_coretemp_0`), else their `name` file, else the `hwmonN` directory. Attribute
//! text is kept in one reusable arena, so a scrape allocates only for directory listings.
//! An empty attribute is skipped (drivers leave some empty); non-numeric text is reported as a
//! parse error after every other sensor has been exported.

use super::sysfs::{list_dir, read_attr_nl, DeviceFilter};
use super::{CollectError, Collector, CollectorOption, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};
use std::fmt::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Sensor types node_exporter exports; other files (`name`, `uevent`, ...) are ignored.
const SENSOR_TYPES: [&str; 14] = [
    "vrm",
    "beep_enable",
    "update_interval",
    "in",
    "cpu",
    "fan",
    "pwm",
    "temp",
    "curr",
    "power",
    "energy",
    "humidity",
    "intrusion",
    "freq",
];

pub const OPTIONS: &[CollectorOption] = &[
    CollectorOption {
        name: "hwmon.chip-include",
        default: "",
        help: "Regexp of hwmon chip to include (mutually exclusive to device-exclude).",
    },
    CollectorOption {
        name: "hwmon.chip-exclude",
        default: "",
        help: "Regexp of hwmon chip to exclude (mutually exclusive to device-include).",
    },
    CollectorOption {
        name: "hwmon.sensor-include",
        default: "",
        help: "Regexp of hwmon sensor to include (mutually exclusive to sensor-exclude).",
    },
    CollectorOption {
        name: "hwmon.sensor-exclude",
        default: "",
        help: "Regexp of hwmon sensor to exclude (mutually exclusive to sensor-include).",
    },
];

/// One attribute file of a chip, as ranges into `Hwmon::arena`.
#[derive(Clone)]
struct Attr {
    typ: &'static str,
    num: u32,
    prop: Range<usize>,
    value: Range<usize>,
}

pub struct Hwmon {
    chips: DeviceFilter,
    sensors: DeviceFilter,
    names: Vec<String>,
    /// The class directory, not re-listed per scrape while empty.
    class_dir: super::sysfs::ClassDir,
    files: Vec<String>,
    attrs: Vec<Attr>,
    arena: String,
    buf: Vec<u8>,
    path: PathBuf,
    chip: String,
    name: String,
    help: String,
    name_buf: String,
    dev: PathBuf,
    label_buf: String,
    sensor: String,
}

pub fn new(opts: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::new(Hwmon {
        chips: DeviceFilter::from_opts(opts, "hwmon.chip-include", "hwmon.chip-exclude")?,
        sensors: DeviceFilter::from_opts(opts, "hwmon.sensor-include", "hwmon.sensor-exclude")?,
        names: Vec::new(),
        class_dir: Default::default(),
        files: Vec::new(),
        attrs: Vec::new(),
        arena: String::new(),
        buf: Vec::new(),
        path: PathBuf::new(),
        chip: String::new(),
        name: String::new(),
        help: String::new(),
        name_buf: String::new(),
        dev: PathBuf::new(),
        label_buf: String::new(),
        sensor: String::new(),
    }))
}

/// node_exporter's `cleanMetricName`: lower-case, `[^a-z0-9:_]` → `_`, trim `_`.
fn clean_into(s: &str, out: &mut String) {
    let start = out.len();
    for c in s.chars().flat_map(char::to_lowercase) {
        out.push(
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == ':' || c == '_' {
                c
            } else {
                '_'
            },
        );
    }
    let trimmed_end = out[start..].trim_end_matches('_').len() + start;
    out.truncate(trimmed_end);
    let lead = out[start..].len() - out[start..].trim_start_matches('_').len();
    out.replace_range(start..start + lead, "");
}

/// Splits `temp1_crit_alarm` into (`temp`, 1, `crit_alarm`); `None` for non-sensor files.
fn split_sensor_file(name: &str) -> Option<(&'static str, u32, &str)> {
    let digits_at = name
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(name.len());
    let (head, rest) = name.split_at(digits_at);
    if head.is_empty() {
        return None;
    }
    let num_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (num, tail) = rest.split_at(num_end);
    let prop = if tail.is_empty() {
        ""
    } else {
        tail.strip_prefix('_').filter(|p| !p.is_empty())?
    };
    let num = if num.is_empty() { 0 } else { num.parse().ok()? };
    let typ = SENSOR_TYPES.iter().find(|t| **t == head)?;
    Some((typ, num, prop))
}

impl Collector for Hwmon {
    fn name(&self) -> &'static str {
        "hwmon"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        let class = ctx.roots.sys("class/hwmon");
        self.class_dir.list(&class, &mut self.names, ctx.now_ms)?;
        let mut first_err = None;
        let names = std::mem::take(&mut self.names);
        let mut dir = PathBuf::new();
        for n in &names {
            dir.clear();
            dir.push(&class);
            dir.push(n);
            // Follow the class symlink; dangling links and plain files are skipped.
            if !std::fs::metadata(&dir).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            if let Err(e) = self.chip(&dir, out) {
                first_err.get_or_insert(e);
            }
        }
        self.names = names;
        first_err.map_or(Ok(()), Err)
    }
}

impl Hwmon {
    fn chip_name(&mut self, dir: &Path) -> Result<(), CollectError> {
        self.chip.clear();
        // 1: the device path (`.../platform/coretemp.0` → `platform_coretemp_0`), unique.
        self.path.clear();
        self.path.push(dir);
        self.path.push("device");
        if let Ok(dev) = std::fs::canonicalize(&self.path) {
            let dev_name = dev.file_name().and_then(|s| s.to_str()).unwrap_or("");
            let dev_type = dev
                .parent()
                .and_then(|p| p.file_name())
                .and_then(|s| s.to_str())
                .unwrap_or("");
            clean_into(dev_type, &mut self.chip);
            let type_len = self.chip.len();
            if type_len > 0 {
                self.chip.push('_');
            }
            clean_into(dev_name, &mut self.chip);
            if self.chip.len() == type_len + 1 && type_len > 0 {
                self.chip.clear(); // no usable device name
            } else if !self.chip.is_empty() {
                return Ok(());
            }
        }
        // 2: the chip's `name` file.
        self.path.clear();
        self.path.push(dir);
        self.path.push("name");
        if let Some(n) = read_attr_nl(&self.path, &mut self.buf) {
            clean_into(&n, &mut self.chip);
            if !self.chip.is_empty() {
                return Ok(());
            }
        }
        // 3: the resolved directory name (`hwmon4`).
        let real = std::fs::canonicalize(dir).map_err(|e| CollectError::io(dir, e))?;
        clean_into(
            real.file_name().and_then(|s| s.to_str()).unwrap_or(""),
            &mut self.chip,
        );
        if self.chip.is_empty() {
            return Err(CollectError::parse(dir, "cannot derive a chip name"));
        }
        Ok(())
    }

    /// Reads the sensor attributes of `dir` into the arena.
    fn gather(&mut self, dir: &Path) -> Result<(), CollectError> {
        list_dir(dir, &mut self.files)?;
        for f in &self.files {
            let Some((typ, num, prop)) = split_sensor_file(f) else {
                continue;
            };
            self.path.clear();
            self.path.push(dir);
            self.path.push(f);
            let Some(v) = read_attr_nl(&self.path, &mut self.buf) else {
                continue;
            };
            let p0 = self.arena.len();
            self.arena.push_str(prop);
            let v0 = self.arena.len();
            self.arena.push_str(&v);
            let attr = Attr {
                typ,
                num,
                prop: p0..v0,
                value: v0..self.arena.len(),
            };
            // A later directory (device/) overrides an earlier one, as in node_exporter.
            let dup = self
                .attrs
                .iter()
                .position(|a| a.typ == typ && a.num == num && self.arena[a.prop.clone()] == *prop);
            match dup {
                Some(i) => self.attrs[i] = attr,
                None => self.attrs.push(attr),
            }
        }
        Ok(())
    }

    fn chip(&mut self, dir: &Path, out: &mut MetricSet) -> Result<(), CollectError> {
        self.chip_name(dir)?;
        if self.chips.ignored(&self.chip) {
            return Ok(());
        }
        self.attrs.clear();
        self.arena.clear();
        self.gather(dir)?;
        let mut dev = std::mem::take(&mut self.dev);
        dev.clear();
        dev.push(dir);
        dev.push("device");
        let r = if dev.exists() {
            self.gather(&dev)
        } else {
            Ok(())
        };
        self.dev = dev;
        r?;
        self.attrs.sort_unstable_by(|a, b| {
            (a.typ, a.num)
                .cmp(&(b.typ, b.num))
                .then(a.prop.start.cmp(&b.prop.start))
        });

        self.path.clear();
        self.path.push(dir);
        self.path.push("name");
        if let Some(n) = read_attr_nl(&self.path, &mut self.buf) {
            let mut human = std::mem::take(&mut self.name);
            human.clear();
            clean_into(&n, &mut human);
            if !human.is_empty() {
                let f = out.family(
                    "node_hwmon_chip_names",
                    "Annotation metric for human-readable chip names",
                    MetricType::Gauge,
                );
                out.sample(f, &[("chip", &self.chip), ("chip_name", &human)], 1.0);
            }
            self.name = human;
        }

        let mut first_err: Option<CollectError> = None;
        let mut i = 0;
        while i < self.attrs.len() {
            let (typ, num) = (self.attrs[i].typ, self.attrs[i].num);
            let end = self.attrs[i..]
                .iter()
                .position(|a| a.typ != typ || a.num != num)
                .map_or(self.attrs.len(), |p| i + p);
            if let Err(e) = self.sensor(out, i..end, dir) {
                first_err.get_or_insert(e);
            }
            i = end;
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Exports one sensor (`temp1`), whose attributes are `self.attrs[range]`.
    fn sensor(
        &mut self,
        out: &mut MetricSet,
        range: Range<usize>,
        dir: &Path,
    ) -> Result<(), CollectError> {
        let attrs = &self.attrs[range];
        let typ = attrs[0].typ;
        self.sensor.clear();
        let _ = write!(self.sensor, "{typ}{}", attrs[0].num);
        self.name.clear();
        let _ = write!(self.name, "{};{}", self.chip, self.sensor);
        if self.sensors.ignored(&self.name) {
            return Ok(());
        }
        let arena = &self.arena;
        let prop = |a: &Attr| &arena[a.prop.clone()];
        let value = |a: &Attr| &arena[a.value.clone()];
        let find = |p: &str| attrs.iter().find(|a| prop(a) == p).map(value);
        let chip: &str = &self.chip;
        let sensor: &str = &self.sensor;
        let labels: [(&str, &dyn crate::expo::LabelValue); 2] =
            [("chip", &chip), ("sensor", &sensor)];

        let label = find("label");
        if let Some(l) = label {
            let f = out.family(
                "node_hwmon_sensor_label",
                "Label for given chip and sensor",
                MetricType::Gauge,
            );
            out.sample(
                f,
                &[("chip", &chip), ("label", &l), ("sensor", &sensor)],
                1.0,
            );
        }
        let bad = |a: &Attr| {
            CollectError::parse(
                &dir.join(format!("{typ}{}_{}", a.num, prop(a))),
                format!("not a number: {:?}", super::sysfs::short(value(a))),
            )
        };
        let plain = find("").unwrap_or("");
        match typ {
            "beep_enable" => {
                let f = out.family(
                    "node_hwmon_beep_enabled",
                    "Hardware beep enabled",
                    MetricType::Gauge,
                );
                out.sample(f, &labels, if plain == "1" { 1.0 } else { 0.0 });
                return Ok(());
            }
            "vrm" | "update_interval" => {
                let Ok(v) = plain.parse::<f64>() else {
                    return Ok(());
                };
                let (name, help, v) = if typ == "vrm" {
                    (
                        "node_hwmon_voltage_regulator_version",
                        "Hardware voltage regulator",
                        v,
                    )
                } else {
                    (
                        "node_hwmon_update_interval_seconds",
                        "Hardware monitor update interval",
                        v * 0.001,
                    )
                };
                let f = out.family(name, help, MetricType::Gauge);
                out.sample(f, &labels, v);
                return Ok(());
            }
            _ => {}
        }
        let has_plain = attrs.iter().any(|a| prop(a).is_empty());
        let mut first_err = None;
        // Reused buffers, taken out of `self` while `attrs`/`arena` are borrowed.
        let mut name = std::mem::take(&mut self.name_buf);
        let mut help = std::mem::take(&mut self.help);
        let mut label_buf = std::mem::take(&mut self.label_buf);
        for a in attrs {
            let element = prop(a);
            if element == "label" {
                continue;
            }
            let raw = value(a);
            if raw.trim().is_empty() {
                continue;
            }
            let Ok(v) = raw.trim().parse::<f64>() else {
                first_err.get_or_insert_with(|| bad(a));
                continue;
            };
            name.clear();
            name.push_str("node_hwmon_");
            name.push_str(typ);
            if element == "input" {
                if has_plain {
                    name.push_str("_input");
                }
            } else if !element.is_empty() {
                name.push('_');
                clean_into(element, &mut name);
            }
            help.clear();
            let mut typ_m = MetricType::Gauge;
            let mut freq_label = false;
            let v = if element == "fault" || element == "alarm" {
                let _ = write!(help, "Hardware sensor {element} status ({typ})");
                v
            } else if element == "beep" {
                name.push_str("_enabled");
                help.push_str("Hardware monitor sensor has beeping enabled");
                v
            } else if typ == "in" || typ == "cpu" {
                name.push_str("_volts");
                let _ = write!(help, "Hardware monitor for voltage ({element})");
                v * 0.001
            } else if typ == "temp" && element != "type" {
                name.push_str("_celsius");
                let el = if element.is_empty() { "input" } else { element };
                let _ = write!(help, "Hardware monitor for temperature ({el})");
                v * 0.001
            } else if typ == "curr" {
                name.push_str("_amps");
                let _ = write!(help, "Hardware monitor for current ({element})");
                v * 0.001
            } else if typ == "energy" {
                name.push_str("_joule_total");
                let _ = write!(help, "Hardware monitor for joules used so far ({element})");
                typ_m = MetricType::Counter;
                v / 1e6
            } else if typ == "power" && element == "accuracy" {
                help.push_str("Hardware monitor power meter accuracy, as a ratio");
                v / 1e6
            } else if typ == "power"
                && matches!(
                    element,
                    "average_interval" | "average_interval_min" | "average_interval_max"
                )
            {
                name.push_str("_seconds");
                let _ = write!(
                    help,
                    "Hardware monitor power usage update interval ({element})"
                );
                v * 0.001
            } else if typ == "power" {
                name.push_str("_watt");
                let _ = write!(
                    help,
                    "Hardware monitor for power usage in watts ({element})"
                );
                v / 1e6
            } else if typ == "humidity" {
                let _ = write!(help, "Hardware monitor for humidity, as a ratio (multiply with 100.0 to get the humidity as a percentage) ({element})");
                v / 1e6
            } else if typ == "fan" && matches!(element, "input" | "min" | "max" | "target") {
                name.push_str("_rpm");
                let _ = write!(
                    help,
                    "Hardware monitor for fan revolutions per minute ({element})"
                );
                v
            } else if typ == "freq" && element == "input" {
                // Exported only with a label, which then names the sensor (`sclk`).
                let Some(l) = label else { continue };
                label_buf.clear();
                clean_into(l, &mut label_buf);
                freq_label = true;
                name.push_str("_freq_mhz");
                help.push_str("Hardware monitor for GPU frequency in MHz");
                v / 1e6
            } else {
                let _ = write!(help, "Hardware monitor {typ} element {element}");
                v
            };
            let f = out.family(&name, &help, typ_m);
            match freq_label {
                true => out.sample(f, &[("chip", &chip), ("sensor", &label_buf)], v),
                false => out.sample(f, &labels, v),
            }
        }
        self.name_buf = name;
        self.help = help;
        self.label_buf = label_buf;
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fixtures::{assert_golden, golden, node_fixtures, roots_at, run, Scratch};

    fn e2e() -> CollectorOptions {
        let mut o = CollectorOptions::default();
        o.set("hwmon.chip-include", "(applesmc|coretemp|hwmon4|nct6779)");
        o
    }

    #[test]
    fn hwmon_matches_node_exporter_on_fixtures() {
        let Some(dir) = node_fixtures() else { return };
        let mut c = new(&e2e()).unwrap();
        let text = run(c.as_mut(), &roots_at(&dir)).unwrap();
        let gold = golden(&dir);
        let want: Vec<&str> = gold
            .keys()
            .filter(|k| k.starts_with("node_hwmon_"))
            .map(|k| k.as_str())
            .collect();
        assert!(want.len() > 50, "{}", want.len());
        assert_golden(&dir, &text, &want);
    }

    #[test]
    fn hwmon_splits_sensor_file_names_like_node_exporter() {
        assert_eq!(
            split_sensor_file("temp1_crit_alarm"),
            Some(("temp", 1, "crit_alarm"))
        );
        assert_eq!(split_sensor_file("pwm1"), Some(("pwm", 1, "")));
        assert_eq!(
            split_sensor_file("beep_enable"),
            Some(("beep_enable", 0, ""))
        );
        assert_eq!(split_sensor_file("name"), None);
        assert_eq!(split_sensor_file("temp1_"), None);
        assert_eq!(split_sensor_file("1temp"), None);
        let mut s = String::new();
        clean_into("__Core 0.Ü_", &mut s);
        assert_eq!(s, "core_0");
    }

    #[test]
    fn hwmon_chip_exclude_and_sensor_filter_apply() {
        let Some(dir) = node_fixtures() else { return };
        let mut o = CollectorOptions::default();
        o.set("hwmon.chip-exclude", "coretemp");
        o.set("hwmon.sensor-exclude", "^nct6779;in");
        let mut c = new(&o).unwrap();
        let text = run(c.as_mut(), &roots_at(&dir)).unwrap();
        assert!(!text.contains("coretemp"));
        assert!(!text.contains("node_hwmon_in_volts"));
        assert!(text.contains("node_hwmon_fan_rpm{chip=\"nct6779\",sensor=\"fan2\"} 1098"));
        // bogus.0 has no recognised sensor types but still names its chip.
        assert!(text.contains("chip_name=\"bogus\""));
    }

    #[test]
    fn hwmon_garbage_value_is_an_error_but_other_sensors_survive() {
        let s = Scratch::new("hwmon");
        s.write("sys/class/hwmon/hwmon0/name", b"chip\n");
        s.write("sys/class/hwmon/hwmon0/temp1_input", b"41000\n");
        s.write("sys/class/hwmon/hwmon0/temp2_input", b"\xff\xfegarbage");
        s.write("sys/class/hwmon/hwmon0/fan1_input", b"");
        let mut c = new(&CollectorOptions::default()).unwrap();
        let mut set = MetricSet::new();
        let roots = s.roots();
        let ctx = Context {
            roots: &roots,
            now_ms: 0,
        };
        let r = c.collect(&ctx, &mut set);
        assert!(matches!(r, Err(ref e) if e.is_parse()), "{r:?}");
        let mut text = Vec::new();
        crate::expo::encode_text(&set, &mut text);
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("node_hwmon_temp_celsius{chip=\"chip\",sensor=\"temp1\"} 41"),
            "{text}"
        );
        assert!(!text.contains("fan1"));
    }

    #[test]
    fn hwmon_absent_class_dir_is_not_found() {
        let s = Scratch::new("hwmon-none");
        let mut c = new(&CollectorOptions::default()).unwrap();
        assert!(matches!(
            run(c.as_mut(), &s.roots()),
            Err(ref e) if e.is_not_found()
        ));
    }
}
