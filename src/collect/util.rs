//! Small, allocation-light helpers the collectors share for reading /proc and /sys files.

use super::CollectError;
use std::io::Read;
use std::path::Path;

/// Reads `path` into `buf` (cleared first), mapping errors to `CollectError`.
pub fn read_into(path: &Path, buf: &mut String) -> Result<(), CollectError> {
    buf.clear();
    let mut f = std::fs::File::open(path).map_err(|e| CollectError::io(path, e))?;
    f.read_to_string(buf)
        .map_err(|e| CollectError::io(path, e))?;
    Ok(())
}

/// Reads a one-value sysfs file and trims it; `None` when absent or unreadable.
pub fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Parses a sysfs/procfs number; `None` on garbage.
pub fn parse_f64(s: &str) -> Option<f64> {
    s.trim().parse().ok()
}

/// Reads a file that holds one unsigned number (`/proc/sys/...`), into `buf`.
pub fn read_u64(path: &Path, buf: &mut String) -> Result<u64, CollectError> {
    read_into(path, buf)?;
    buf.trim()
        .parse()
        .map_err(|_| CollectError::parse(path, "expected one unsigned number"))
}

/// Parses a decimal token as f64 the way Go's `ParseFloat` accepts /proc numbers.
pub fn num(tok: &str, path: &Path) -> Result<f64, CollectError> {
    tok.parse()
        .map_err(|_| CollectError::parse(path, format!("bad number {tok:?}")))
}

/// Parses a hexadecimal token (`0000588a`) as u64.
pub fn hex(tok: &str, path: &Path) -> Result<u64, CollectError> {
    u64::from_str_radix(tok, 16)
        .map_err(|_| CollectError::parse(path, format!("bad hex number {tok:?}")))
}

/// Compiles a collector option regex with node_exporter's semantics: Go's `MatchString` is an
/// unanchored search, so patterns anchor themselves with `^`/`$` where they mean to.
pub fn option_regex(option: &str, pattern: &str) -> Result<regex_lite::Regex, String> {
    regex_lite::Regex::new(pattern).map_err(|e| format!("--collector.{option}: {e}"))
}

/// Parses a boolean option (`true`/`false`, as kingpin's bool flags print).
pub fn option_bool(option: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" | "" => Ok(false),
        v => Err(format!(
            "--collector.{option}: want true or false, got {v:?}"
        )),
    }
}

/// Which fields of a key/value file (`vmstat`, `netstat`) a `fields` regex selects, with the
/// metric name and HELP of each selected field. The regex runs once per new field name; later
/// scrapes are a hash lookup by `&str`, so steady-state collection allocates nothing.
pub struct FieldSelection {
    pattern: regex_lite::Regex,
    seen: std::collections::HashMap<Box<str>, Option<u32>>,
    selected: Vec<(Box<str>, Box<str>)>,
}

impl FieldSelection {
    pub fn new(pattern: regex_lite::Regex) -> Self {
        FieldSelection {
            pattern,
            seen: Default::default(),
            selected: Vec::new(),
        }
    }

    /// The (metric name, HELP) for `field`, or `None` when the regex rejects it. `describe`
    /// builds them the first time a selected field is seen.
    pub fn get(
        &mut self,
        field: &str,
        describe: impl FnOnce(&str) -> (String, String),
    ) -> Option<(&str, &str)> {
        let idx = match self.seen.get(field) {
            Some(i) => *i,
            None => {
                let idx = if self.pattern.is_match(field) {
                    let (name, help) = describe(field);
                    self.selected.push((name.into(), help.into()));
                    Some(self.selected.len() as u32 - 1)
                } else {
                    None
                };
                self.seen.insert(field.into(), idx);
                idx
            }
        }?;
        let (n, h) = &self.selected[idx as usize];
        Some((n, h))
    }
}

/// Test helper: runs a collector over a temp procfs/sysfs tree built from `(path, content)`
/// pairs (paths relative to the tree root, e.g. `proc/meminfo`).
#[cfg(test)]
pub(crate) mod testing {
    use crate::collect::{CollectError, Collector, Context, Roots};
    use crate::expo::{encode_text, MetricSet};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// The collector's result and its text exposition.
    pub fn run(
        c: &mut dyn Collector,
        files: &[(&str, &str)],
    ) -> (Result<(), CollectError>, String) {
        static N: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "promlet-unit-{}-{}-{}",
            c.name(),
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        for (path, content) in files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        let roots = Roots {
            procfs: root.join("proc"),
            sysfs: root.join("sys"),
            rootfs: root.clone(),
            udev_data: root.join("udev"),
        };
        let mut set = MetricSet::new();
        let r = c.collect(
            &Context {
                roots: &roots,
                now_ms: 0,
            },
            &mut set,
        );
        let _ = std::fs::remove_dir_all(&root);
        let mut out = Vec::new();
        encode_text(&set, &mut out);
        (r, String::from_utf8(out).unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_selection_matches_unanchored_like_go() {
        let re = option_regex("x", "pg.*fault").unwrap();
        let mut sel = FieldSelection::new(re);
        let d = |f: &str| (format!("node_{f}"), format!("help {f}"));
        assert_eq!(
            sel.get("xpgmajfault", d),
            Some(("node_xpgmajfault", "help xpgmajfault"))
        );
        assert_eq!(sel.get("nr_free", d), None);
        // Second lookup hits the cache and returns the same description.
        assert_eq!(
            sel.get("xpgmajfault", |_| unreachable!()).map(|x| x.0),
            Some("node_xpgmajfault")
        );
    }

    #[test]
    fn hex_and_num_reject_garbage() {
        let p = Path::new("f");
        assert_eq!(hex("0000588a", p).unwrap(), 0x588a);
        assert!(hex("zz", p).is_err());
        assert!(num("1.5", p).is_ok());
        assert!(num("", p).is_err());
    }
}
