//! The `time` collector: the wall clock, the local time zone offset, and the kernel's
//! clocksources from `/sys/devices/system/clocksource/clocksourceN/`.
//!
//! Must not touch: NTP state (the `timex` collector). The wall clock comes from the
//! collection context (`Context::now_ms`), not from a clock read here.
//! The time zone is the process's local zone (`TZ`, else `/etc/localtime`), as in
//! node_exporter; it is not read under `--path.rootfs`.

use super::sysfs::{KeptAttrs, KeptListing};
use super::util::words;
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};
use std::path::PathBuf;

pub struct Time {
    /// `/sys/devices/system/clocksource`, listed again only when a device came or went.
    devices: KeptListing,
    path: PathBuf,
    buf: Vec<u8>,
    zone: String,
    /// `available_clocksource` and `current_clocksource` of each clocksource device, kept
    /// open between scrapes (2 preads instead of 14 syscalls on a typical one-device system).
    kept: KeptAttrs,
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::new(Time {
        kept: KeptAttrs::new(2, 8),
        devices: KeptListing::default(),
        path: PathBuf::new(),
        buf: Vec::new(),
        zone: String::new(),
    }))
}

// localtime_r with a 64-bit time argument on every target. 32-bit musl (1.2+) has a 64-bit
// time_t and exports the time64 entry point as `__localtime64_r`; the `libc` crate still
// declares the old 32-bit `time_t` there, so the symbol is declared here. `struct tm` has no
// time_t field, so `libc::tm` fits all of them.
#[cfg(all(target_env = "musl", target_pointer_width = "32"))]
extern "C" {
    #[link_name = "__localtime64_r"]
    fn localtime64_r(t: *const i64, tm: *mut libc::tm) -> *mut libc::tm;
}
#[cfg(all(target_env = "musl", target_pointer_width = "64"))]
extern "C" {
    #[link_name = "localtime_r"]
    fn localtime64_r(t: *const i64, tm: *mut libc::tm) -> *mut libc::tm;
}
#[cfg(not(target_env = "musl"))]
unsafe fn localtime64_r(t: *const i64, tm: *mut libc::tm) -> *mut libc::tm {
    // glibc: time_t is the target's native width (32-bit on armv7 gnueabihf).
    let native = *t as libc::time_t;
    libc::localtime_r(&native, tm)
}

/// The local zone's abbreviation and UTC offset in seconds at `unix_secs`.
fn local_zone(unix_secs: i64, name: &mut String) -> i64 {
    name.clear();
    // SAFETY: `tm` is plain data that localtime_r fills in; both pointers are valid for the
    // call, and tm_zone (if set) points at static or TZ-owned storage valid until the next
    // tzset, which we copy out immediately.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if localtime64_r(&unix_secs, &mut tm).is_null() {
            name.push_str("UTC");
            return 0;
        }
        if !tm.tm_zone.is_null() {
            name.push_str(&std::ffi::CStr::from_ptr(tm.tm_zone).to_string_lossy());
        }
        tm.tm_gmtoff as i64
    }
}

impl Collector for Time {
    fn name(&self) -> &'static str {
        "time"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        out.single_static(
            "node_time_seconds",
            "System time in seconds since epoch (1970).",
            MetricType::Gauge,
            ctx.now_ms as f64 / 1000.0,
        );
        let offset = local_zone(ctx.now_ms.div_euclid(1000), &mut self.zone);
        let f = out.family_static(
            "node_time_zone_offset_seconds",
            "System time zone offset in seconds.",
            MetricType::Gauge,
        );
        out.sample(f, &[("time_zone", &self.zone)], offset as f64);

        let dir = ctx.roots.sys("devices/system/clocksource");
        let names = match self.devices.list(&dir, ctx.now_ms) {
            Ok(names) => names,
            // No clocksource directory (some containers): the clock metrics still stand.
            Err(ref e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        let avail_f = out.family_static(
            "node_time_clocksource_available_info",
            "Available clocksources read from '/sys/devices/system/clocksource'.",
            MetricType::Gauge,
        );
        let cur_f = out.family_static(
            "node_time_clocksource_current_info",
            "Current clocksource read from '/sys/devices/system/clocksource'.",
            MetricType::Gauge,
        );
        self.kept.begin_cycle(ctx.now_ms);
        for name in names {
            let Some(device) = name
                .strip_prefix("clocksource")
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            self.path.clear();
            self.path.push(&dir);
            self.path.push(name);
            self.path.push("available_clocksource");
            if let Some(list) = self.kept.read(name, 0, &self.path, &mut self.buf) {
                for cs in words(&list) {
                    out.sample(avail_f, &[("clocksource", &cs), ("device", &device)], 1.0);
                }
            }
            self.path.set_file_name("current_clocksource");
            if let Some(cur) = self.kept.read(name, 1, &self.path, &mut self.buf) {
                if !cur.is_empty() {
                    out.sample(cur_f, &[("clocksource", &cur), ("device", &device)], 1.0);
                }
            }
        }
        self.kept.end_cycle();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fixtures::{
        assert_golden, families, node_fixtures, roots_at, run_at, Scratch,
    };

    #[test]
    fn time_clocksources_match_node_exporter_on_fixtures() {
        let Some(dir) = node_fixtures() else { return };
        let mut c = new(&CollectorOptions::default()).unwrap();
        let text = run_at(c.as_mut(), &roots_at(&dir), 1_795_302_525_549).unwrap();
        // Clock families hold this host's clock; compare them by metadata only.
        let mut fams = families(&text);
        let gold = crate::collect::fixtures::golden(&dir);
        for n in ["node_time_seconds", "node_time_zone_offset_seconds"] {
            let f = fams.remove(n).unwrap();
            assert_eq!((&f.help, &f.typ), (&gold[n].help, &gold[n].typ), "{n}");
        }
        assert!(
            text.contains("node_time_seconds 1.795302525549e+09\n"),
            "{text}"
        );
        let only_clocksource: String = text
            .lines()
            .filter(|l| l.contains("clocksource"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_golden(
            &dir,
            &only_clocksource,
            &[
                "node_time_clocksource_available_info",
                "node_time_clocksource_current_info",
            ],
        );
    }

    #[test]
    fn time_zone_offset_follows_tz() {
        // localtime_r reads TZ; this test only checks the UTC case the CI hosts use, plus
        // that the name is filled in.
        let mut name = String::new();
        let off = local_zone(0, &mut name);
        assert!(!name.is_empty());
        assert!((-14 * 3600..=14 * 3600).contains(&off));
    }

    #[test]
    fn time_sees_a_changed_and_an_added_clocksource() {
        let s = Scratch::new("time-cs");
        let cs0 = "sys/devices/system/clocksource/clocksource0";
        s.write(&format!("{cs0}/available_clocksource"), b"tsc hpet\n");
        s.write(&format!("{cs0}/current_clocksource"), b"tsc\n");
        let mut c = new(&CollectorOptions::default()).unwrap();
        let t = run_at(c.as_mut(), &s.roots(), 1000).unwrap();
        let cur = |cs: &str, dev: &str| {
            format!(
                "node_time_clocksource_current_info{{clocksource=\"{cs}\",device=\"{dev}\"}} 1\n"
            )
        };
        assert!(t.contains(&cur("tsc", "0")), "{t}");
        s.write(&format!("{cs0}/current_clocksource"), b"hpet\n");
        s.write(
            "sys/devices/system/clocksource/clocksource1/current_clocksource",
            b"acpi_pm\n",
        );
        let t = run_at(c.as_mut(), &s.roots(), 1001).unwrap();
        assert!(t.contains(&cur("hpet", "0")), "{t}");
        assert!(t.contains(&cur("acpi_pm", "1")), "{t}");
    }

    #[test]
    fn time_without_clocksource_dir_still_succeeds() {
        let s = Scratch::new("time");
        let mut c = new(&CollectorOptions::default()).unwrap();
        let text = run_at(c.as_mut(), &s.roots(), 1500).unwrap();
        assert!(text.contains("node_time_seconds 1.5\n"));
        assert!(!text.contains("clocksource"));
    }
}
