//! The `edac` collector: ECC memory error counters from
//! `/sys/devices/system/edac/mc/mc<N>/` and its `csrow<M>/` rows.
//!
//! Must not touch: anything else. Errors the controller cannot attribute to a row
//! (`*_noinfo_count`) are reported with `csrow="unknown"`, as in node_exporter.

use super::sysfs::{list_dir, read_num};
use super::{CollectError, CollectErrorKind, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};
use std::path::PathBuf;

pub struct Edac {
    controllers: Vec<String>,
    rows: Vec<String>,
    path: PathBuf,
    buf: Vec<u8>,
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::new(Edac {
        controllers: Vec::new(),
        rows: Vec::new(),
        path: PathBuf::new(),
        buf: Vec::new(),
    }))
}

/// The number after `prefix` in a directory name (`mc0` → `0`).
fn suffix_num<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    name.strip_prefix(prefix)
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

impl Edac {
    /// Reads `<path>/<file>`: absent is an error here, since every EDAC controller has it.
    fn count(&mut self, file: &str) -> Result<f64, CollectError> {
        self.path.push(file);
        let r = read_num::<u64>(&self.path, &mut self.buf);
        let r = match r {
            Ok(Some(v)) => Ok(v as f64),
            Ok(None) => Err(CollectErrorKind::Io(
                self.path.clone(),
                std::io::Error::other("unreadable EDAC counter"),
            )
            .into()),
            Err(e) => Err(e),
        };
        self.path.pop();
        r
    }
}

impl Collector for Edac {
    fn name(&self) -> &'static str {
        "edac"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        let dir = ctx.roots.sys("devices/system/edac/mc");
        list_dir(&dir, &mut self.controllers)?;
        let ce_f = out.family_static(
            "node_edac_correctable_errors_total",
            "Total correctable memory errors.",
            MetricType::Counter,
        );
        let ue_f = out.family_static(
            "node_edac_uncorrectable_errors_total",
            "Total uncorrectable memory errors.",
            MetricType::Counter,
        );
        let row_ce_f = out.family_static(
            "node_edac_csrow_correctable_errors_total",
            "Total correctable memory errors for this csrow.",
            MetricType::Counter,
        );
        let row_ue_f = out.family_static(
            "node_edac_csrow_uncorrectable_errors_total",
            "Total uncorrectable memory errors for this csrow.",
            MetricType::Counter,
        );
        let controllers = std::mem::take(&mut self.controllers);
        let r = (|| {
            for mc in &controllers {
                let Some(n) = suffix_num(mc, "mc") else {
                    continue;
                };
                self.path.clear();
                self.path.push(&dir);
                self.path.push(mc);
                let c: [(&str, &dyn crate::expo::LabelValue); 1] = [("controller", &n)];
                out.sample(ce_f, &c, self.count("ce_count")?);
                out.sample(ue_f, &c, self.count("ue_count")?);
                let unknown = [
                    ("controller", &n as &dyn crate::expo::LabelValue),
                    ("csrow", &"unknown"),
                ];
                out.sample(row_ce_f, &unknown, self.count("ce_noinfo_count")?);
                out.sample(row_ue_f, &unknown, self.count("ue_noinfo_count")?);
                let mut rows = std::mem::take(&mut self.rows);
                list_dir(&self.path, &mut rows)?;
                for row in &rows {
                    let Some(r) = suffix_num(row, "csrow") else {
                        continue;
                    };
                    self.path.push(row);
                    let l: [(&str, &dyn crate::expo::LabelValue); 2] =
                        [("controller", &n), ("csrow", &r)];
                    let ce = self.count("ce_count");
                    let ue = self.count("ue_count");
                    self.path.pop();
                    out.sample(row_ce_f, &l, ce?);
                    out.sample(row_ue_f, &l, ue?);
                }
                self.rows = rows;
            }
            Ok(())
        })();
        self.controllers = controllers;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fixtures::{assert_golden, golden, node_fixtures, roots_at, run, Scratch};

    #[test]
    fn edac_matches_node_exporter_on_fixtures() {
        let Some(dir) = node_fixtures() else { return };
        let mut c = new(&CollectorOptions::default()).unwrap();
        let text = run(c.as_mut(), &roots_at(&dir)).unwrap();
        let gold = golden(&dir);
        let want: Vec<&str> = gold
            .keys()
            .filter(|k| k.starts_with("node_edac_"))
            .map(|k| k.as_str())
            .collect();
        assert_eq!(want.len(), 4);
        assert_golden(&dir, &text, &want);
    }

    #[test]
    fn edac_truncated_counter_is_an_error() {
        let Some(dir) = node_fixtures() else { return };
        let s = Scratch::new("edac");
        let mut c = new(&CollectorOptions::default()).unwrap();
        assert!(matches!(
            run(c.as_mut(), &s.roots()),
            Err(ref e) if e.is_not_found()
        ));
        s.copy_tree(&dir, "sys/devices/system/edac");
        s.write("sys/devices/system/edac/mc/mc0/csrow0/ce_count", b"");
        assert!(matches!(
            run(c.as_mut(), &s.roots()),
            Err(ref e) if e.is_parse()
        ));
    }
}
