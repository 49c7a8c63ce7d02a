//! The `nvme` collector: controllers and namespaces from `/sys/class/nvme/<ctrl>/`.
//!
//! Must not touch: the block devices themselves (no ioctls, no SMART log).
//! Namespaces are the `<ctrl>` subdirectories named `nvme<A>n<N>` or, with native multipath,
//! `nvme<A>c<B>n<N>`; `nsid` is `<N>`. Sizes follow node_exporter 1.11 upstream: `size` and
//! `nuse` are multiplied by the namespace's logical block size. (Debian's 1.11.1 build links
//! an older procfs that misses multipath namespace directories, so it lacks these families.)

use super::sysfs::{list_dir, read_attr, read_num};
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};
use std::path::PathBuf;

/// Controller info labels (file, label), sorted by label with `device` in its place.
const INFO: [(&str, &str); 5] = [
    ("cntlid", "cntlid"),
    ("firmware_rev", "firmware_revision"),
    ("model", "model"),
    ("serial", "serial"),
    ("state", "state"),
];

pub struct Nvme {
    names: Vec<String>,
    /// The class directory, not re-listed per scrape while empty.
    class_dir: super::sysfs::ClassDir,
    subdirs: Vec<String>,
    path: PathBuf,
    buf: Vec<u8>,
    info: [String; 5],
    ana: String,
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::new(Nvme {
        names: Vec::new(),
        class_dir: Default::default(),
        subdirs: Vec::new(),
        path: PathBuf::new(),
        buf: Vec::new(),
        info: Default::default(),
        ana: String::new(),
    }))
}

/// The namespace id of a directory `nvme0n1` / `nvme0c0n1` under controller `nvme0`.
fn nsid<'a>(ctrl: &str, dir: &'a str) -> Option<&'a str> {
    let rest = dir.strip_prefix(ctrl)?;
    let rest = match rest.strip_prefix('c') {
        Some(r) => r.trim_start_matches(|c: char| c.is_ascii_digit()),
        None => rest,
    };
    let n = rest.strip_prefix('n')?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(n)
}

impl Collector for Nvme {
    fn name(&self) -> &'static str {
        "nvme"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        let class = ctx.roots.sys("class/nvme");
        self.class_dir.list(&class, &mut self.names, ctx.now_ms)?;
        let info_f = out.family_static(
            "node_nvme_info",
            "Non-numeric data from /sys/class/nvme/<device>, value is always 1.",
            MetricType::Gauge,
        );
        let ns_info_f = out.family_static(
            "node_nvme_namespace_info",
            "Information about NVMe namespaces. Value is always 1",
            MetricType::Gauge,
        );
        let cap_f = out.family_static(
            "node_nvme_namespace_capacity_bytes",
            "Capacity of the NVMe namespace in bytes. Computed as namespace_size * namespace_logical_block_size",
            MetricType::Gauge,
        );
        let size_f = out.family_static(
            "node_nvme_namespace_size_bytes",
            "Size of the NVMe namespace in bytes. Available in /sys/class/nvme/<device>/<namespace>/size",
            MetricType::Gauge,
        );
        let used_f = out.family_static(
            "node_nvme_namespace_used_bytes",
            "Used space of the NVMe namespace in bytes. Available in /sys/class/nvme/<device>/<namespace>/nuse",
            MetricType::Gauge,
        );
        let lbs_f = out.family_static(
            "node_nvme_namespace_logical_block_size_bytes",
            "Logical block size of the NVMe namespace in bytes. Usually 4Kb. Available in /sys/class/nvme/<device>/<namespace>/queue/logical_block_size",
            MetricType::Gauge,
        );
        let mut first_err = None;
        for ctrl in &self.names {
            self.path.clear();
            self.path.push(&class);
            self.path.push(ctrl);
            if !self.path.is_dir() {
                continue;
            }
            for (s, (file, _)) in self.info.iter_mut().zip(INFO) {
                s.clear();
                self.path.push(file);
                if let Some(v) = read_attr(&self.path, &mut self.buf) {
                    s.push_str(&v);
                }
                self.path.pop();
            }
            let [cntlid, fw, model, serial, state] = &self.info;
            out.sample(
                info_f,
                &[
                    ("cntlid", cntlid),
                    ("device", ctrl),
                    ("firmware_revision", fw),
                    ("model", model),
                    ("serial", serial),
                    ("state", state),
                ],
                1.0,
            );
            if list_dir(&self.path, &mut self.subdirs).is_err() {
                continue;
            }
            for dir in &self.subdirs {
                let Some(ns) = nsid(ctrl, dir) else { continue };
                self.path.push(dir);
                let mut num = |rel: &str, path: &mut PathBuf, buf: &mut Vec<u8>| {
                    path.push(rel);
                    let r = read_num::<u64>(path, buf);
                    path.pop();
                    if rel.contains('/') {
                        path.pop();
                    }
                    r.unwrap_or_else(|e| {
                        first_err.get_or_insert(e);
                        None
                    })
                };
                let size = num("size", &mut self.path, &mut self.buf);
                let nuse = num("nuse", &mut self.path, &mut self.buf);
                let lbs = num("queue/logical_block_size", &mut self.path, &mut self.buf);
                self.path.push("ana_state");
                self.ana.clear();
                if let Some(a) = read_attr(&self.path, &mut self.buf) {
                    self.ana.push_str(&a);
                }
                self.path.pop();
                self.path.pop();
                let labels: [(&str, &dyn crate::expo::LabelValue); 2] =
                    [("device", ctrl), ("nsid", &ns)];
                out.sample(
                    ns_info_f,
                    &[("ana_state", &self.ana), ("device", ctrl), ("nsid", &ns)],
                    1.0,
                );
                let Some(lbs) = lbs else { continue };
                out.sample(lbs_f, &labels, lbs as f64);
                if let Some(size) = size {
                    let bytes = size as f64 * lbs as f64;
                    out.sample(size_f, &labels, bytes);
                    out.sample(cap_f, &labels, bytes);
                }
                if let Some(nuse) = nuse {
                    out.sample(used_f, &labels, nuse as f64 * lbs as f64);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fixtures::{
        assert_golden, families, node_fixtures, roots_at, run, Scratch,
    };

    #[test]
    fn nvme_matches_node_exporter_on_fixtures() {
        let Some(dir) = node_fixtures() else { return };
        let mut c = new(&CollectorOptions::default()).unwrap();
        let text = run(c.as_mut(), &roots_at(&dir)).unwrap();
        let info: String = text
            .lines()
            .filter(|l| l.contains("node_nvme_info"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_golden(&dir, &info, &["node_nvme_info"]);
        // Namespaces: upstream's expected output (Debian's build lacks them; see module docs).
        let upstream = families(&std::fs::read_to_string(dir.join("e2e-output.txt")).unwrap());
        let ours = families(&text);
        for name in [
            "node_nvme_namespace_info",
            "node_nvme_namespace_capacity_bytes",
            "node_nvme_namespace_size_bytes",
            "node_nvme_namespace_used_bytes",
            "node_nvme_namespace_logical_block_size_bytes",
        ] {
            assert_eq!(ours[name], upstream[name], "{name}");
        }
    }

    #[test]
    fn nvme_namespace_dirs_are_recognised() {
        assert_eq!(nsid("nvme0", "nvme0n1"), Some("1"));
        assert_eq!(nsid("nvme0", "nvme0c0n0"), Some("0"));
        assert_eq!(nsid("nvme0", "nvme0c0"), None);
        assert_eq!(nsid("nvme1", "nvme10n1"), None);
        assert_eq!(nsid("nvme0", "power"), None);
    }

    #[test]
    fn nvme_garbage_size_is_an_error() {
        let s = Scratch::new("nvme");
        let mut c = new(&CollectorOptions::default()).unwrap();
        assert!(matches!(
            run(c.as_mut(), &s.roots()),
            Err(ref e) if e.is_not_found()
        ));
        s.write("sys/class/nvme/nvme0/model", b"X\n");
        s.write("sys/class/nvme/nvme0/nvme0n1/size", b"-3\n");
        s.write(
            "sys/class/nvme/nvme0/nvme0n1/queue/logical_block_size",
            b"512\n",
        );
        assert!(matches!(
            run(c.as_mut(), &s.roots()),
            Err(ref e) if e.is_parse()
        ));
    }
}
