//! `zfs`: OpenZFS kstats from /proc/spl/kstat/zfs as node_exporter names them: every 64-bit
//! integer of the global kstat files (`node_zfs_<subsystem>_<name>`), per-pool I/O
//! (`node_zfs_zpool_*{zpool}`), per-dataset object-set stats
//! (`node_zfs_zpool_dataset_*{zpool,dataset}`) and pool state (`node_zfs_zpool_state`).
//! No ZFS module (no /proc/spl/kstat/zfs) is `NotFound`.
//!
//! HELP is the kstat path (`kstat.zfs.misc.arcstats.hits`), as in node_exporter.

use super::util::{lines, read_into, words, KeptFile};
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// (subsystem, kstat file, path under procfs) of the global kstat files; absent files are
/// skipped (they come and go with ZFS versions).
const FILES: [(&str, &str, &str); 11] = [
    ("zfs_abd", "abdstats", "spl/kstat/zfs/abdstats"),
    ("zfs_arc", "arcstats", "spl/kstat/zfs/arcstats"),
    ("zfs_dbuf", "dbufstats", "spl/kstat/zfs/dbufstats"),
    ("zfs_dmu_tx", "dmu_tx", "spl/kstat/zfs/dmu_tx"),
    ("zfs_dnode", "dnodestats", "spl/kstat/zfs/dnodestats"),
    ("zfs_fm", "fm", "spl/kstat/zfs/fm"),
    (
        "zfs_vdev_cache",
        "vdev_cache_stats",
        "spl/kstat/zfs/vdev_cache_stats",
    ),
    (
        "zfs_vdev_mirror",
        "vdev_mirror_stats",
        "spl/kstat/zfs/vdev_mirror_stats",
    ),
    ("zfs_xuio", "xuio_stats", "spl/kstat/zfs/xuio_stats"),
    ("zfs_zfetch", "zfetchstats", "spl/kstat/zfs/zfetchstats"),
    ("zfs_zil", "zil", "spl/kstat/zfs/zil"),
];

/// Pool states, one-hot in `node_zfs_zpool_state`.
const STATES: [&str; 7] = [
    "online",
    "degraded",
    "faulted",
    "offline",
    "removed",
    "unavail",
    "suspended",
];

/// kstat data types node_exporter exports: KSTAT_DATA_INT64 and KSTAT_DATA_UINT64.
const INT64: &str = "3";
const UINT64: &str = "4";

pub struct Zfs {
    /// The global kstat files, as in [`FILES`].
    files: [KeptFile; 11],
    buf: String,
    name: String,
    help: String,
    path: PathBuf,
}

impl Default for Zfs {
    fn default() -> Self {
        Zfs {
            files: FILES.map(|(_, _, rel)| KeptFile::new(rel)),
            buf: String::new(),
            name: String::new(),
            help: String::new(),
            path: PathBuf::new(),
        }
    }
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::<Zfs>::default())
}

/// `name type data` lines after the `name type data` header: (name, type, rest of the line).
fn kstat_lines(text: &str) -> Option<impl Iterator<Item = (&str, &str, &str)>> {
    let mut lines = lines(text);
    lines.by_ref().find(|l| {
        let mut t = words(l);
        (t.next(), t.next(), t.next(), t.next()) == (Some("name"), Some("type"), Some("data"), None)
    })?;
    Some(lines.filter_map(|l| {
        let l = l.trim_start();
        let (name, rest) = l.split_once(|c: char| c.is_ascii_whitespace())?;
        let rest = rest.trim_start();
        let (typ, data) = rest.split_once(|c: char| c.is_ascii_whitespace())?;
        Some((name, typ, data.trim()))
    }))
}

fn metric_name(out: &mut String, prefix: &str, field: &str) {
    out.clear();
    out.push_str(prefix);
    out.extend(field.chars().map(|c| if c == '-' { '_' } else { c }));
}

/// A kstat integer: signed for KSTAT_DATA_INT64 (`memory_available_bytes` goes negative).
fn parse_int(s: &str, typ: &str, key: &str, path: &Path) -> Result<f64, CollectError> {
    let v = if typ == INT64 {
        s.parse::<i64>().map(|v| v as f64).ok()
    } else {
        s.parse::<u64>().map(|v| v as f64).ok()
    };
    v.ok_or_else(|| CollectError::parse(path, format!("{key}: bad integer {s:?}")))
}

impl Zfs {
    /// Global kstat file `i` of [`FILES`].
    fn kstat_file(
        &mut self,
        i: usize,
        root: &Path,
        out: &mut MetricSet,
    ) -> Result<(), CollectError> {
        let (subsystem, file, _) = FILES[i];
        let kept = &mut self.files[i];
        match kept.read(root, &mut self.buf) {
            Err(ref e) if e.is_not_found() => return Ok(()),
            r => r?,
        }
        let path = kept.path();
        let lines = kstat_lines(&self.buf)
            .ok_or_else(|| CollectError::parse(path, "no 'name type data' header"))?;
        for (field, typ, data) in lines {
            if typ != INT64 && typ != UINT64 {
                continue;
            }
            metric_name(&mut self.name, "node_", subsystem);
            self.name.push('_');
            self.name
                .extend(field.chars().map(|c| if c == '-' { '_' } else { c }));
            self.help.clear();
            let _ = write!(self.help, "kstat.zfs.misc.{file}.{field}");
            let v = parse_int(data, typ, &self.help, path)?;
            out.single(&self.name, &self.help, MetricType::Untyped, v);
        }
        Ok(())
    }

    /// `<pool>/io`: a header line starting with `nread`, then one line of values.
    fn pool_io(
        &mut self,
        pool: &str,
        path: &Path,
        out: &mut MetricSet,
    ) -> Result<(), CollectError> {
        read_into(path, &mut self.buf)?;
        let mut lines = lines(&self.buf);
        let Some(header) = lines
            .by_ref()
            .find(|l| words(l).next() == Some("nread") && words(l).count() >= 12)
        else {
            return Ok(());
        };
        for line in lines.filter(|l| !l.trim().is_empty()) {
            if words(line).count() != words(header).count() {
                return Err(CollectError::parse(path, "value count differs from header"));
            }
            for (field, v) in header.split_ascii_whitespace().zip(words(line)) {
                metric_name(&mut self.name, "node_zfs_zpool_", field);
                self.help.clear();
                let _ = write!(self.help, "kstat.zfs.misc.io.{field}");
                let v = parse_int(v, UINT64, &self.help, path)?;
                let f = out.family(&self.name, &self.help, MetricType::Untyped);
                out.sample(f, &[("zpool", &pool)], v);
            }
        }
        Ok(())
    }

    /// `<pool>/objset-*`: kstat lines; `dataset_name` names the dataset, uint64 lines are stats.
    fn pool_objset(
        &mut self,
        pool: &str,
        path: &Path,
        out: &mut MetricSet,
    ) -> Result<(), CollectError> {
        read_into(path, &mut self.buf)?;
        let lines = kstat_lines(&self.buf)
            .ok_or_else(|| CollectError::parse(path, "no 'name type data' header"))?;
        let mut dataset = "";
        for (field, typ, data) in lines {
            if field == "dataset_name" {
                dataset = data;
                continue;
            }
            if typ != UINT64 {
                continue;
            }
            metric_name(&mut self.name, "node_zfs_zpool_dataset_", field);
            self.help.clear();
            let _ = write!(self.help, "kstat.zfs.misc.objset.{field}");
            let v = parse_int(data, typ, &self.help, path)?;
            let f = out.family(&self.name, &self.help, MetricType::Untyped);
            out.sample(f, &[("dataset", &dataset), ("zpool", &pool)], v);
        }
        Ok(())
    }

    fn pool_state(
        &mut self,
        pool: &str,
        path: &Path,
        out: &mut MetricSet,
    ) -> Result<(), CollectError> {
        read_into(path, &mut self.buf)?;
        let state = lines(&self.buf).next().unwrap_or("").trim();
        let f = out.family_static(
            "node_zfs_zpool_state",
            "kstat.zfs.misc.state",
            MetricType::Gauge,
        );
        for s in STATES {
            let on = if state.eq_ignore_ascii_case(s) {
                1.0
            } else {
                0.0
            };
            out.sample(f, &[("state", &s), ("zpool", &pool)], on);
        }
        Ok(())
    }
}

impl Collector for Zfs {
    fn name(&self) -> &'static str {
        "zfs"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        let base = ctx.roots.proc("spl/kstat/zfs");
        let pools = std::fs::read_dir(&base).map_err(|e| CollectError::io(&base, e))?;
        for i in 0..FILES.len() {
            self.kstat_file(i, &ctx.roots.procfs, out)?;
        }
        let mut p = std::mem::take(&mut self.path);
        let mut result = Ok(());
        for e in pools.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let pool = e.file_name();
            let Some(pool) = pool.to_str() else { continue };
            p.as_mut_os_string().clear();
            p.push(e.path());
            p.push("io");
            // Files vanish while a pool is exported: a missing file is skipped, not an error.
            let skip_missing = |r: Result<(), CollectError>| match r {
                Err(ref e) if e.is_not_found() => Ok(()),
                r => r,
            };
            result = skip_missing(self.pool_io(pool, &p, out));
            if result.is_ok() {
                p.set_file_name("state");
                result = skip_missing(self.pool_state(pool, &p, out));
            }
            if result.is_ok() {
                p.pop();
                if let Ok(files) = std::fs::read_dir(&p) {
                    for f in files.flatten() {
                        let name = f.file_name();
                        if name.to_str().is_some_and(|n| n.starts_with("objset-")) {
                            result = skip_missing(self.pool_objset(pool, &f.path(), out));
                            if result.is_err() {
                                break;
                            }
                        }
                    }
                }
            }
            if result.is_err() {
                break;
            }
        }
        self.path = p;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::util::testing::run;

    #[test]
    fn kstats_become_untyped_families_with_the_kstat_path_as_help() {
        let arc = "6 1 0x01 3 144 1 2\nname                            type data\nhits                            4    8772612\nc-max                           4    1\nstr                             7    text\n";
        let objset = "23 1 0x01 7 2160 1 2\nname type data\ndataset_name 7 pool3/dataset with  space\nnread 4 28\n";
        let (r, text) = run(
            &mut Zfs::default(),
            &[
                ("proc/spl/kstat/zfs/arcstats", arc),
                ("proc/spl/kstat/zfs/pool3/objset-2", objset),
                ("proc/spl/kstat/zfs/pool3/state", "DEGRADED\n"),
            ],
        );
        r.unwrap();
        assert!(text.contains("# HELP node_zfs_arc_hits kstat.zfs.misc.arcstats.hits\n# TYPE node_zfs_arc_hits untyped\nnode_zfs_arc_hits 8.772612e+06\n"));
        assert!(text.contains("node_zfs_arc_c_max 1\n"));
        assert!(!text.contains("str"));
        assert!(text.contains("node_zfs_zpool_dataset_nread{dataset=\"pool3/dataset with  space\",zpool=\"pool3\"} 28\n"));
        assert!(text.contains("node_zfs_zpool_state{state=\"degraded\",zpool=\"pool3\"} 1\n"));
    }

    #[test]
    fn no_zfs_is_not_found_and_headerless_kstat_is_an_error() {
        assert!(matches!(
            run(&mut Zfs::default(), &[]).0,
            Err(ref e) if e.is_not_found()
        ));
        let bad = [("proc/spl/kstat/zfs/arcstats", "hits 4 1\n")];
        assert!(matches!(
            run(&mut Zfs::default(), &bad).0,
            Err(ref e) if e.is_parse()
        ));
    }
}
