//! The `watchdog` collector: hardware/software watchdogs from `/sys/class/watchdog/<wdt>/`
//! (state, timeouts, time left), one info series per device.
//!
//! Must not touch: `/dev/watchdog*` (opening it would arm the watchdog).

use super::sysfs::{read_attr, short};
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};
use std::path::PathBuf;

/// (file, metric name, help).
const NUMERIC: [(&str, &str, &str); 7] = [
    (
        "bootstatus",
        "node_watchdog_bootstatus",
        "Value of /sys/class/watchdog/<watchdog>/bootstatus",
    ),
    (
        "fw_version",
        "node_watchdog_fw_version",
        "Value of /sys/class/watchdog/<watchdog>/fw_version",
    ),
    (
        "nowayout",
        "node_watchdog_nowayout",
        "Value of /sys/class/watchdog/<watchdog>/nowayout",
    ),
    (
        "timeleft",
        "node_watchdog_timeleft_seconds",
        "Value of /sys/class/watchdog/<watchdog>/timeleft",
    ),
    (
        "timeout",
        "node_watchdog_timeout_seconds",
        "Value of /sys/class/watchdog/<watchdog>/timeout",
    ),
    (
        "pretimeout",
        "node_watchdog_pretimeout_seconds",
        "Value of /sys/class/watchdog/<watchdog>/pretimeout",
    ),
    (
        "access_cs0",
        "node_watchdog_access_cs0",
        "Value of /sys/class/watchdog/<watchdog>/access_cs0",
    ),
];

/// Info labels besides `name`, sorted (`name` goes between `identity` and `options`).
const STRINGS: [&str; 5] = [
    "identity",
    "options",
    "pretimeout_governor",
    "state",
    "status",
];

pub struct Watchdog {
    names: Vec<String>,
    /// The class directory, not re-listed per scrape while empty.
    class_dir: super::sysfs::ClassDir,
    path: PathBuf,
    buf: Vec<u8>,
    strings: [String; 5],
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::new(Watchdog {
        names: Vec::new(),
        class_dir: Default::default(),
        path: PathBuf::new(),
        buf: Vec::new(),
        strings: Default::default(),
    }))
}

impl Collector for Watchdog {
    fn name(&self) -> &'static str {
        "watchdog"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        let class = ctx.roots.sys("class/watchdog");
        self.class_dir.list(&class, &mut self.names, ctx.now_ms)?;
        let fams = NUMERIC.map(|(_, name, help)| out.family_static(name, help, MetricType::Gauge));
        let info_f = out.family_static(
            "node_watchdog_info",
            "Info of /sys/class/watchdog/<watchdog>",
            MetricType::Gauge,
        );
        let mut first_err = None;
        for wdt in &self.names {
            self.path.clear();
            self.path.push(&class);
            self.path.push(wdt);
            if !self.path.is_dir() {
                continue;
            }
            for ((file, _, _), fam) in NUMERIC.iter().zip(fams) {
                self.path.push(file);
                if let Some(v) = read_attr(&self.path, &mut self.buf) {
                    match v.parse::<i64>() {
                        Ok(n) => out.sample(fam, &[("name", wdt)], n as f64),
                        Err(_) => {
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
            }
            for (s, file) in self.strings.iter_mut().zip(STRINGS) {
                s.clear();
                self.path.push(file);
                if let Some(v) = read_attr(&self.path, &mut self.buf) {
                    s.push_str(&v);
                }
                self.path.pop();
            }
            let [identity, options, governor, state, status] = &self.strings;
            out.sample(
                info_f,
                &[
                    ("identity", identity),
                    ("name", wdt),
                    ("options", options),
                    ("pretimeout_governor", governor),
                    ("state", state),
                    ("status", status),
                ],
                1.0,
            );
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fixtures::{assert_golden, golden, node_fixtures, roots_at, run, Scratch};

    #[test]
    fn watchdog_matches_node_exporter_on_fixtures() {
        let Some(dir) = node_fixtures() else { return };
        let mut c = new(&CollectorOptions::default()).unwrap();
        let text = run(c.as_mut(), &roots_at(&dir)).unwrap();
        let gold = golden(&dir);
        let want: Vec<&str> = gold
            .keys()
            .filter(|k| k.starts_with("node_watchdog_"))
            .map(|k| k.as_str())
            .collect();
        assert_eq!(want.len(), 8);
        assert_golden(&dir, &text, &want);
    }

    #[test]
    fn watchdog_garbage_is_an_error_and_absent_class_is_not_found() {
        let s = Scratch::new("wdt");
        let mut c = new(&CollectorOptions::default()).unwrap();
        assert!(matches!(
            run(c.as_mut(), &s.roots()),
            Err(ref e) if e.is_not_found()
        ));
        s.write("sys/class/watchdog/watchdog0/timeout", b"sixty\n");
        s.write("sys/class/watchdog/watchdog0/state", b"active\n");
        assert!(matches!(
            run(c.as_mut(), &s.roots()),
            Err(ref e) if e.is_parse()
        ));
    }
}
