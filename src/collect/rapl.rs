//! The `rapl` collector: Intel/AMD RAPL energy counters from `/sys/class/powercap/*/energy_uj`.
//!
//! Must not touch: power limits (not exported by node_exporter either). Zones are named by
//! their `name` file; `package-N` becomes `package` with index N, other names are indexed by
//! how often the name occurred. With `rapl.enable-zone-label` all zones share
//! `node_rapl_joules_total` with a `rapl_zone` label instead. Entries without a `name` (the `intel-rapl` control type) are skipped; an
//! `energy_uj` that is not a number is a parse error; EACCES (unprivileged reads are blocked
//! since CVE-2020-8694) is "not present", as node_exporter treats it.

use super::sysfs::{opt_bool, read_attr, short};
use super::{CollectError, Collector, CollectorOption, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};
use std::io::Read;
use std::path::PathBuf;

pub const OPTIONS: &[CollectorOption] = &[CollectorOption {
    name: "rapl.enable-zone-label",
    default: "false",
    // node_exporter 1.11's help text for this flag is a copy-paste slip (it talks about
    // systemd's unit_start_time_seconds); this says what the option does.
    help: "Enables RAPL zone labels",
}];

pub struct Rapl {
    zone_label: bool,
    names: Vec<String>,
    /// The class directory, not re-listed per scrape while empty.
    class_dir: super::sysfs::ClassDir,
    seen: Vec<(String, u32)>,
    path: PathBuf,
    buf: Vec<u8>,
    zone: String,
    name_buf: String,
    help_buf: String,
}

pub fn new(opts: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::new(Rapl {
        zone_label: opt_bool(opts, "rapl.enable-zone-label"),
        names: Vec::new(),
        class_dir: Default::default(),
        seen: Vec::new(),
        path: PathBuf::new(),
        buf: Vec::new(),
        zone: String::new(),
        name_buf: String::new(),
        help_buf: String::new(),
    }))
}

impl Collector for Rapl {
    fn name(&self) -> &'static str {
        "rapl"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        let class = ctx.roots.sys("class/powercap");
        self.class_dir.list(&class, &mut self.names, ctx.now_ms)?;
        self.seen.clear();
        for entry in &self.names {
            self.path.clear();
            self.path.push(&class);
            self.path.push(entry);
            self.path.push("name");
            let Some(name) = read_attr(&self.path, &mut self.buf) else {
                continue;
            };
            let (base, index) = match name.strip_prefix("package-").map(str::parse::<u32>) {
                Some(Ok(n)) => ("package", n),
                _ => {
                    let n = match self.seen.iter_mut().find(|(s, _)| *s == *name) {
                        Some((_, c)) => {
                            *c += 1;
                            *c - 1
                        }
                        None => {
                            self.seen.push((name.to_string(), 1));
                            0
                        }
                    };
                    (&*name, n)
                }
            };
            self.zone.clear();
            self.zone.push_str(base);
            self.path.set_file_name("energy_uj");
            self.buf.clear();
            let read =
                std::fs::File::open(&self.path).and_then(|mut f| f.read_to_end(&mut self.buf));
            match read {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    return Err(CollectError::not_found(self.path.clone()))
                }
                Err(e) => return Err(CollectError::io(&self.path, e)),
            }
            let text = String::from_utf8_lossy(&self.buf);
            let uj: u64 = text.trim().parse().map_err(|_| {
                CollectError::parse(
                    &self.path,
                    format!("not a number: {:?}", short(text.trim())),
                )
            })?;
            // Metric names allow [a-zA-Z0-9_:]; zone names like "psys" or "dram" already do.
            self.name_buf.clear();
            self.name_buf.push_str("node_rapl_");
            for c in self.zone.chars() {
                self.name_buf
                    .push(if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                        c
                    } else {
                        '_'
                    });
            }
            self.name_buf.push_str("_joules_total");
            self.help_buf.clear();
            self.help_buf.push_str("Current RAPL ");
            self.help_buf.push_str(&self.zone);
            self.help_buf.push_str(" value in joules");
            self.path.pop();
            let zone_path = self.path.to_string_lossy();
            if self.zone_label {
                let f = out.family_static(
                    "node_rapl_joules_total",
                    "Current RAPL value in joules",
                    MetricType::Counter,
                );
                out.sample(
                    f,
                    &[
                        ("index", &index),
                        ("path", &zone_path),
                        ("rapl_zone", &self.zone),
                    ],
                    uj as f64 / 1e6,
                );
            } else {
                let f = out.family(&self.name_buf, &self.help_buf, MetricType::Counter);
                out.sample(
                    f,
                    &[("index", &index), ("path", &zone_path)],
                    uj as f64 / 1e6,
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fixtures::{assert_golden, node_fixtures, roots_at, run, Scratch};

    #[test]
    fn rapl_matches_node_exporter_on_fixtures() {
        let Some(dir) = node_fixtures() else { return };
        let mut c = new(&CollectorOptions::default()).unwrap();
        let text = run(c.as_mut(), &roots_at(&dir)).unwrap();
        // node_exporter ran with --path.sysfs=collector/fixtures/sys; the path label carries it.
        let text = text.replace(&format!("{}/", dir.display()), "collector/fixtures/");
        assert_golden(
            &dir,
            &text,
            &[
                "node_rapl_core_joules_total",
                "node_rapl_package_joules_total",
            ],
        );
    }

    #[test]
    fn rapl_zone_label_option_folds_zones_into_one_family() {
        let Some(dir) = node_fixtures() else { return };
        let mut o = CollectorOptions::default();
        o.set("rapl.enable-zone-label", "true");
        let mut c = new(&o).unwrap();
        let text = run(c.as_mut(), &roots_at(&dir)).unwrap();
        assert!(text.contains("# HELP node_rapl_joules_total Current RAPL value in joules\n"));
        assert!(
            text.contains("rapl_zone=\"package\"} 240422.366267\n"),
            "{text}"
        );
        assert!(
            text.contains("rapl_zone=\"core\"} 118821.284256\n"),
            "{text}"
        );
        assert!(!text.contains("node_rapl_core_joules_total"));
    }

    #[test]
    fn rapl_garbage_energy_is_an_error_and_no_powercap_is_not_found() {
        let s = Scratch::new("rapl");
        let mut c = new(&CollectorOptions::default()).unwrap();
        assert!(matches!(
            run(c.as_mut(), &s.roots()),
            Err(ref e) if e.is_not_found()
        ));
        s.write("sys/class/powercap/intel-rapl:0/name", b"dram\n");
        s.write("sys/class/powercap/intel-rapl:0/energy_uj", b"12x\n");
        assert!(matches!(
            run(c.as_mut(), &s.roots()),
            Err(ref e) if e.is_parse()
        ));
        s.write("sys/class/powercap/intel-rapl:0/energy_uj", b"1500000\n");
        s.write("sys/class/powercap/intel-rapl:1/name", b"dram\n");
        s.write("sys/class/powercap/intel-rapl:1/energy_uj", b"1\n");
        let t = run(c.as_mut(), &s.roots()).unwrap();
        assert!(
            t.contains("node_rapl_dram_joules_total{index=\"0\","),
            "{t}"
        );
        assert!(
            t.contains("node_rapl_dram_joules_total{index=\"1\","),
            "{t}"
        );
    }
}
