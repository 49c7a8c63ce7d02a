//! Test support for collector unit tests: finds node_exporter's recorded fixture trees
//! (`node-fixtures` in the shared test-data folder), runs a collector over them, and compares
//! its families with node_exporter 1.11.1's own scrape of the same trees.
//!
//! Owns: fixture lookup, normalisation of text expositions, scratch trees for
//! truncated/garbage inputs. Must not touch: anything outside `#[cfg(test)]`.

use super::{CollectError, Collector, Context, Roots};
use crate::expo::{encode_text, MetricSet};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// node_exporter 1.11.1's raw scrape over the fixtures (see node-fixtures/README.md).
const GOLDEN: &str = "node_exporter-1.11.1-on-fixtures.prom";

/// The `node-fixtures` folder: `$PROMLET_SHARED/node-fixtures`, else `../shared/node-fixtures`
/// beside the checkout. Missing data skips the test loudly, and fails it under CI=true.
///
/// Returns a faithful copy (see [`restore_symlinks`]) when the shared tree was checked out
/// without symlinks, which happens on file systems or checkouts that flatten them.
pub fn node_fixtures() -> Option<PathBuf> {
    static DIR: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("PROMLET_SHARED")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
        let p = base.join("node-fixtures");
        if p.join(GOLDEN).is_file() {
            return Some(restore_symlinks(&p));
        }
        let ci = std::env::var("CI")
            .map(|v| v == "true" || v == "1")
            .unwrap_or(false);
        if ci {
            panic!("CI=true and test data is missing: {}", p.display());
        }
        eprintln!(
            "SKIPPED: test data {} missing (set PROMLET_SHARED)",
            p.display()
        );
        None
    })
    .clone()
}

/// Empty directories of upstream's tree that copies made through git lose; the golden scrape
/// has `node_watchdog_info{name="watchdog1"}` from this one.
const EMPTY_DIRS: &[&str] = &["sys/class/watchdog/watchdog1"];

/// The recorded sysfs relies on relative symlinks (`class/hwmon/hwmon0 ->
/// ../../devices/platform/coretemp.0/hwmon/hwmon0`, `proc/self -> 10`). A checkout made with
/// symlinks off stores each link as a small regular file holding its target. If `src` looks
/// like that, this builds (once, shared by test processes) a copy in the temp dir where such
/// files are links again, and returns it; otherwise it returns `src` unchanged.
fn restore_symlinks(src: &Path) -> PathBuf {
    let probe = src.join("sys/class/hwmon/hwmon0");
    let flattened = std::fs::symlink_metadata(&probe).is_ok_and(|m| m.file_type().is_file());
    let lost_dirs = EMPTY_DIRS.iter().any(|d| !src.join(d).is_dir());
    if !flattened && !lost_dirs {
        return src.to_path_buf();
    }
    let dst = std::env::temp_dir().join("promlet-node-fixtures-relinked-v2");
    if dst.join(GOLDEN).is_file() {
        return dst;
    }
    let tmp = std::env::temp_dir().join(format!(
        "promlet-node-fixtures-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    relink_rec(src, &tmp);
    for d in EMPTY_DIRS {
        std::fs::create_dir_all(tmp.join(d)).unwrap();
    }
    if std::fs::rename(&tmp, &dst).is_err() {
        // Another test process finished first; use its copy.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    eprintln!(
        "note: {} has its symlinks flattened into files; using a relinked copy at {}",
        src.display(),
        dst.display()
    );
    dst
}

fn relink_rec(src: &Path, dst: &Path) {
    let meta = std::fs::symlink_metadata(src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
    if meta.is_dir() {
        std::fs::create_dir_all(dst).unwrap();
        for e in std::fs::read_dir(src).unwrap() {
            let e = e.unwrap();
            relink_rec(&e.path(), &dst.join(e.file_name()));
        }
        return;
    }
    if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(src).unwrap(), dst).unwrap();
        return;
    }
    let content = std::fs::read(src).unwrap_or_default();
    let is_proc_self =
        src.ends_with("proc/self") && !content.is_empty() && content.iter().all(u8::is_ascii_digit);
    let looks_like_link = meta.len() < 512
        && content.starts_with(b"../")
        && !content.contains(&b'\n')
        && !content.contains(&0);
    if is_proc_self || looks_like_link {
        let target = String::from_utf8_lossy(&content).into_owned();
        std::os::unix::fs::symlink(target, dst).unwrap();
    } else {
        std::fs::write(dst, &content).unwrap();
    }
}

/// Roots as node_exporter's end-to-end test passes them over a fixture folder.
pub fn roots_at(dir: &Path) -> Roots {
    Roots {
        procfs: dir.join("proc"),
        sysfs: dir.join("sys"),
        rootfs: dir.to_path_buf(),
        udev_data: dir.join("udev/data"),
    }
}

/// Runs `c` once over `roots` and returns the text exposition (families sorted by name).
pub fn run(c: &mut dyn Collector, roots: &Roots) -> Result<String, CollectError> {
    run_at(c, roots, 0)
}

pub fn run_at(c: &mut dyn Collector, roots: &Roots, now_ms: i64) -> Result<String, CollectError> {
    let mut set = MetricSet::new();
    let ctx = Context { roots, now_ms };
    c.collect(&ctx, &mut set)?;
    let mut out = Vec::new();
    encode_text(&set, &mut out);
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// One family of an exposition: HELP, TYPE, and its sample lines with labels sorted by name,
/// the lines themselves sorted, so expositions compare independent of emission order.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct FamilyText {
    pub help: String,
    pub typ: String,
    pub samples: Vec<String>,
}

/// Parses a text-format exposition into normalised families keyed by name.
pub fn families(text: &str) -> BTreeMap<String, FamilyText> {
    let mut out: BTreeMap<String, FamilyText> = BTreeMap::new();
    let blank = || FamilyText {
        help: String::new(),
        typ: String::new(),
        samples: Vec::new(),
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.entry(name.to_string()).or_insert_with(blank).help = help.to_string();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, typ) = rest.split_once(' ').unwrap_or((rest, ""));
            out.entry(name.to_string()).or_insert_with(blank).typ = typ.to_string();
        } else if !line.is_empty() && !line.starts_with('#') {
            let (name, norm) = normalise_sample(line);
            out.entry(name).or_insert_with(blank).samples.push(norm);
        }
    }
    for f in out.values_mut() {
        f.samples.sort();
    }
    out
}

/// `name{b="2",a="1"} v` → (`name`, `name{a="1",b="2"} v`). Label values keep their escapes.
fn normalise_sample(line: &str) -> (String, String) {
    let Some(brace) = line.find('{') else {
        let name = line.split(' ').next().unwrap_or(line);
        return (name.to_string(), line.to_string());
    };
    let name = &line[..brace];
    let bytes = line.as_bytes();
    let mut labels = Vec::new();
    let mut i = brace + 1;
    let mut start = i;
    let mut in_quotes = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_quotes => i += 1,
            b'"' => in_quotes = !in_quotes,
            b',' | b'}' if !in_quotes => {
                if i > start {
                    labels.push(&line[start..i]);
                }
                start = i + 1;
                if bytes[i] == b'}' {
                    break;
                }
            }
            _ => {}
        }
        i += 1;
    }
    labels.sort();
    let value = line[(i + 1).min(line.len())..].trim();
    (
        name.to_string(),
        format!("{name}{{{}}} {value}", labels.join(",")),
    )
}

/// node_exporter's scrape of the fixtures, normalised.
pub fn golden(dir: &Path) -> BTreeMap<String, FamilyText> {
    let text = std::fs::read(dir.join(GOLDEN)).expect("golden scrape");
    families(&String::from_utf8_lossy(&text))
}

/// Asserts that `ours` holds exactly the families `expected` (by name) and that each equals
/// node_exporter's family in the golden scrape: HELP, TYPE, every sample with labels and value.
/// `fix` rewrites our text first (e.g. path labels that differ only by the fixture prefix).
pub fn assert_golden(dir: &Path, ours: &str, expected: &[&str]) {
    let gold = golden(dir);
    let mine = families(ours);
    let mut names: Vec<&str> = mine.keys().map(|s| s.as_str()).collect();
    names.sort();
    let mut want: Vec<&str> = expected.to_vec();
    want.sort();
    assert_eq!(names, want, "family set differs from the expected list");
    for name in expected {
        let g = gold
            .get(*name)
            .unwrap_or_else(|| panic!("{name} is not in node_exporter's scrape"));
        let m = &mine[*name];
        assert_eq!(m.help, g.help, "HELP of {name}");
        assert_eq!(m.typ, g.typ, "TYPE of {name}");
        assert_eq!(m.samples, g.samples, "samples of {name}");
    }
}

/// A scratch directory removed on drop, for truncated/garbage copies of fixture files.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        use std::sync::atomic::{AtomicU32, Ordering};
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "promlet-test-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch { dir }
    }

    /// Writes `content` at `rel` (creating parents).
    pub fn write(&self, rel: &str, content: &[u8]) -> &Self {
        let p = self.dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    /// Copies the fixture subtree `rel` of `from` into the scratch tree (symlinks kept as
    /// symlinks, so dangling links stay dangling).
    pub fn copy_tree(&self, from: &Path, rel: &str) -> &Self {
        copy_rec(&from.join(rel), &self.dir.join(rel));
        self
    }

    pub fn roots(&self) -> Roots {
        roots_at(&self.dir)
    }
}

fn copy_rec(src: &Path, dst: &Path) {
    let meta = std::fs::symlink_metadata(src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(src).unwrap();
        std::os::unix::fs::symlink(target, dst).unwrap();
    } else if meta.is_dir() {
        std::fs::create_dir_all(dst).unwrap();
        for e in std::fs::read_dir(src).unwrap() {
            let e = e.unwrap();
            copy_rec(&e.path(), &dst.join(e.file_name()));
        }
    } else {
        std::fs::copy(src, dst).unwrap();
        // Fixture files are read-only; tests overwrite some copies.
        let mut perm = std::fs::metadata(dst).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perm.set_readonly(false);
        std::fs::set_permissions(dst, perm).unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_sorts_labels_and_keeps_escaped_commas() {
        let (n, s) = normalise_sample(r#"m{z="a,\"b",a="}"} 1.5"#);
        assert_eq!(n, "m");
        assert_eq!(s, r#"m{a="}",z="a,\"b"} 1.5"#);
    }
}

/// Counts heap allocations made by the current thread, so tests can check that a warmed-up
/// collector does not allocate per sample.
pub mod alloc_count {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static COUNT: Cell<u64> = const { Cell::new(0) };
    }

    pub struct Counting;

    // SAFETY: forwards to the system allocator; the counter is a thread-local Cell.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
            System.alloc(l)
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            System.dealloc(p, l)
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
            System.realloc(p, l, n)
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    /// Allocations made by this thread so far.
    pub fn now() -> u64 {
        COUNT.with(|c| c.get())
    }
}
