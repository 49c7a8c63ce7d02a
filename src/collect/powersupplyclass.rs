//! The `powersupplyclass` collector: batteries, mains and USB supplies from
//! `/sys/class/power_supply/<supply>/` (a UPS HAT or a laptop battery on an edge box).
//!
//! Must not touch: hwmon. Values in µV/µA/µWh are exported in V/A/Wh, temperatures (tenths
//! of a degree) in °C, as node_exporter does. An attribute the driver refuses to read is
//! skipped; one that reads but is not an integer is a parse error.

use super::sysfs::{read_attr, short};
use super::{CollectError, Collector, CollectorOption, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};
use regex_lite::Regex;
use std::path::PathBuf;

pub const OPTIONS: &[CollectorOption] = &[CollectorOption {
    name: "powersupply.ignored-supplies",
    default: "^$",
    help: "Regexp of power supplies to ignore for powersupplyclass collector.",
}];

/// (sysfs file, metric suffix, divisor).
const NUMERIC: [(&str, &str, f64); 49] = [
    ("authentic", "authentic", 1.0),
    ("calibrate", "calibrate", 1.0),
    ("capacity", "capacity", 1.0),
    ("capacity_alert_max", "capacity_alert_max", 1.0),
    ("capacity_alert_min", "capacity_alert_min", 1.0),
    ("cycle_count", "cyclecount", 1.0),
    ("online", "online", 1.0),
    ("present", "present", 1.0),
    ("time_to_empty_now", "time_to_empty_seconds", 1.0),
    ("time_to_full_now", "time_to_full_seconds", 1.0),
    ("current_boot", "current_boot", 1e6),
    ("current_max", "current_max", 1e6),
    ("current_now", "current_ampere", 1e6),
    ("energy_empty", "energy_empty", 1e6),
    ("energy_empty_design", "energy_empty_design", 1e6),
    ("energy_full", "energy_full", 1e6),
    ("energy_full_design", "energy_full_design", 1e6),
    ("energy_now", "energy_watthour", 1e6),
    ("voltage_boot", "voltage_boot", 1e6),
    ("voltage_max", "voltage_max", 1e6),
    ("voltage_max_design", "voltage_max_design", 1e6),
    ("voltage_min", "voltage_min", 1e6),
    ("voltage_min_design", "voltage_min_design", 1e6),
    ("voltage_now", "voltage_volt", 1e6),
    ("voltage_ocv", "voltage_ocv", 1e6),
    ("charge_control_limit", "charge_control_limit", 1e6),
    ("charge_control_limit_max", "charge_control_limit_max", 1e6),
    ("charge_counter", "charge_counter", 1e6),
    ("charge_empty", "charge_empty", 1e6),
    ("charge_empty_design", "charge_empty_design", 1e6),
    ("charge_full", "charge_full", 1e6),
    ("charge_full_design", "charge_full_design", 1e6),
    ("charge_now", "charge_ampere", 1e6),
    ("charge_term_current", "charge_term_current", 1e6),
    ("constant_charge_current", "constant_charge_current", 1e6),
    (
        "constant_charge_current_max",
        "constant_charge_current_max",
        1e6,
    ),
    ("constant_charge_voltage", "constant_charge_voltage", 1e6),
    (
        "constant_charge_voltage_max",
        "constant_charge_voltage_max",
        1e6,
    ),
    ("precharge_current", "precharge_current", 1e6),
    ("input_current_limit", "input_current_limit", 1e6),
    ("power_now", "power_watt", 1e6),
    ("temp", "temp_celsius", 10.0),
    ("temp_alert_max", "temp_alert_max_celsius", 10.0),
    ("temp_alert_min", "temp_alert_min_celsius", 10.0),
    ("temp_ambient", "temp_ambient_celsius", 10.0),
    ("temp_ambient_max", "temp_ambient_max_celsius", 10.0),
    ("temp_ambient_min", "temp_ambient_min_celsius", 10.0),
    ("temp_max", "temp_max_celsius", 10.0),
    ("temp_min", "temp_min_celsius", 10.0),
];

/// String attributes that label `node_power_supply_info` (with the supply's name), sorted.
const STRINGS: [&str; 11] = [
    "capacity_level",
    "charge_type",
    "health",
    "manufacturer",
    "model_name",
    "scope",
    "serial_number",
    "status",
    "technology",
    "type",
    "usb_type",
];

pub struct PowerSupplyClass {
    ignored: Regex,
    names: Vec<String>,
    /// The class directory, not re-listed per scrape while empty.
    class_dir: super::sysfs::ClassDir,
    path: PathBuf,
    buf: Vec<u8>,
    strings: [String; 11],
    name_buf: String,
    help_buf: String,
}

pub fn new(opts: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    let pat = opts.get("powersupply.ignored-supplies");
    let ignored = Regex::new(pat).map_err(|e| {
        format!("--collector.powersupply.ignored-supplies: invalid regular expression {pat:?}: {e}")
    })?;
    Ok(Box::new(PowerSupplyClass {
        ignored,
        names: Vec::new(),
        class_dir: Default::default(),
        path: PathBuf::new(),
        buf: Vec::new(),
        strings: Default::default(),
        name_buf: String::new(),
        help_buf: String::new(),
    }))
}

impl Collector for PowerSupplyClass {
    fn name(&self) -> &'static str {
        "powersupplyclass"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        let class = ctx.roots.sys("class/power_supply");
        self.class_dir.list(&class, &mut self.names, ctx.now_ms)?;
        let mut first_err = None;
        for supply in &self.names {
            if self.ignored.is_match(supply) {
                continue;
            }
            self.path.clear();
            self.path.push(&class);
            self.path.push(supply);
            if !self.path.is_dir() {
                continue;
            }
            let labels: [(&str, &dyn crate::expo::LabelValue); 1] = [("power_supply", supply)];
            for (file, suffix, div) in NUMERIC {
                self.path.push(file);
                let v = read_attr(&self.path, &mut self.buf).map(|s| (s.parse::<i64>(), s));
                match v {
                    None => {}
                    Some((Ok(n), _)) => {
                        self.name_buf.clear();
                        self.name_buf.push_str("node_power_supply_");
                        self.name_buf.push_str(suffix);
                        self.help_buf.clear();
                        self.help_buf.push_str(suffix);
                        self.help_buf
                            .push_str(" value of /sys/class/power_supply/<power_supply>.");
                        let f = out.family(&self.name_buf, &self.help_buf, MetricType::Gauge);
                        out.sample(f, &labels, n as f64 / div);
                    }
                    Some((Err(_), s)) => {
                        first_err.get_or_insert_with(|| {
                            CollectError::parse(
                                &self.path,
                                format!("not an integer: {:?}", short(&s)),
                            )
                        });
                    }
                }
                self.path.pop();
            }
            for (s, file) in self.strings.iter_mut().zip(STRINGS) {
                s.clear();
                self.path.push(file);
                if let Some(v) = read_attr(&self.path, &mut self.buf) {
                    s.push_str(&v);
                }
                self.path.pop();
            }
            // Only non-empty strings become labels, plus the supply's name (sorted position 6).
            let mut info: [(&str, &dyn crate::expo::LabelValue); 12] = [("", &""); 12];
            let mut n = 0;
            for (i, (s, label)) in self.strings.iter().zip(STRINGS).enumerate() {
                if i == 5 {
                    info[n] = ("power_supply", supply);
                    n += 1;
                }
                if !s.is_empty() {
                    info[n] = (label, s);
                    n += 1;
                }
            }
            let f = out.family_static(
                "node_power_supply_info",
                "info of /sys/class/power_supply/<power_supply>.",
                MetricType::Gauge,
            );
            out.sample(f, &info[..n], 1.0);
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fixtures::{assert_golden, golden, node_fixtures, roots_at, run, Scratch};

    #[test]
    fn powersupplyclass_matches_node_exporter_on_fixtures() {
        let Some(dir) = node_fixtures() else { return };
        let mut c = new(&CollectorOptions::default()).unwrap();
        let text = run(c.as_mut(), &roots_at(&dir)).unwrap();
        let gold = golden(&dir);
        let want: Vec<&str> = gold
            .keys()
            .filter(|k| k.starts_with("node_power_supply_"))
            .map(|k| k.as_str())
            .collect();
        assert_eq!(want.len(), 11);
        assert_golden(&dir, &text, &want);
    }

    #[test]
    fn powersupplyclass_garbage_is_an_error_and_ignored_supplies_apply() {
        let Some(dir) = node_fixtures() else { return };
        let s = Scratch::new("psu");
        s.copy_tree(&dir, "sys/class/power_supply");
        s.write("sys/class/power_supply/BAT0/capacity", b"81%\n");
        let mut c = new(&CollectorOptions::default()).unwrap();
        assert!(matches!(
            run(c.as_mut(), &s.roots()),
            Err(ref e) if e.is_parse()
        ));
        let mut o = CollectorOptions::default();
        o.set("powersupply.ignored-supplies", "^BAT");
        let mut c = new(&o).unwrap();
        let text = run(c.as_mut(), &s.roots()).unwrap();
        assert!(!text.contains("BAT0"));
        assert!(text.contains("node_power_supply_online{power_supply=\"AC\"} 0"));
    }
}
