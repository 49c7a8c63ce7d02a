//! The textfile collector: metrics that scripts on the device drop as `*.prom` files, exposed
//! with node_exporter's names and rules.
//!
//! Owns: reading `--collector.textfile.directory` (a directory or a glob of directories,
//! default empty = read nothing), parsing each `*.prom` file with the text-format parser
//! ([`crate::scrape::parse`], legacy names as node_exporter), merging files, and
//! `node_textfile_mtime_seconds{file}` / `node_textfile_scrape_error`.
//! Must not touch: anything outside the configured directories; the clock.
//!
//! # Rules (node_exporter 1.11's, checked against its own test cases)
//! * A file that cannot be read or parsed, or that carries client-side timestamps, is skipped
//!   as a whole and sets `node_textfile_scrape_error` to 1; the other files are unaffected.
//!   Only files read successfully get an mtime sample.
//! * A family without HELP gets `Metric read from <file>[, <file>...]`.
//! * The same family with a different HELP in a later file: that later family is dropped and
//!   the error metric is set.
//! * Across files, the first file decides a family's TYPE and HELP; a later sample of another
//!   type or HELP, or a series already seen (same name and labels), is dropped and logged, as
//!   node_exporter's registry does (the error metric stays 0 in that case, as there).
//! * Within a file, a family's series are padded with `""` for labels that other series of
//!   the family have; summaries and histograms are regrouped per label set, quantiles and
//!   buckets sorted, a `+Inf` bucket added from `_count` when missing. Counts of
//!   summaries and histograms are whole numbers (Go's `uint64`); a histogram with a
//!   fractional count reads as all-zero counts, exactly as node_exporter 1.11 shows it.
//!
//! # Writing files from scripts: write, then rename
//! The collector may read a file at any moment, so a script must never write the final file
//! in place: a reader could see half of it (skipped, and an error for that scrape). Write a
//! temporary file in the **same directory** (so the rename stays on one filesystem) with a
//! name that does not end in `.prom`, then `mv` it over the real name; `rename(2)` is atomic,
//! so readers see the old file or the new one, never a mix:
//!
//! ```sh
//! dir=/var/lib/promlet/textfile
//! backup_status > "$dir/backup.prom.$$" && mv "$dir/backup.prom.$$" "$dir/backup.prom"
//! ```
//!
//! Samples must not carry timestamps (the file is skipped); use a gauge such as
//! `backup_last_success_timestamp_seconds` instead, and watch `node_textfile_mtime_seconds`
//! to catch a script that stopped running.

use super::{CollectError, Collector, CollectorOption, CollectorOptions, Context};
use crate::expo::{format_float, MetricSet, MetricType};
use crate::scrape::parse::{Format, Limits, NameScheme, Options, Parser};
use std::collections::{HashMap, HashSet};
use std::path::Path;

pub const OPTIONS: &[CollectorOption] = &[CollectorOption {
    name: "textfile.directory",
    default: "",
    help: "Directory to read text files with metrics from, supports glob matching.",
}];

/// Builds the collector from `--collector.textfile.directory`.
pub fn new(opts: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::new(Textfile::new(opts.get("textfile.directory"))))
}

/// A textfile bigger than this is skipped with an error: it is a script gone wrong, and
/// reading it whole would cost a small device its memory.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

pub struct Textfile {
    pattern: String,
    parser: Parser,
    file_set: MetricSet,
    buf: Vec<u8>,
}

impl Textfile {
    pub fn new(pattern: &str) -> Self {
        Textfile {
            pattern: pattern.to_string(),
            parser: Parser::new(),
            file_set: MetricSet::new(),
            buf: Vec::new(),
        }
    }
}

/// The value part of one series after Go's regrouping.
#[derive(Clone, Debug)]
enum Body {
    Value(f64),
    Summary {
        quantiles: Vec<(f64, f64)>,
        sum: f64,
        count: f64,
    },
    Histogram {
        buckets: Vec<(f64, f64)>,
        sum: f64,
        count: f64,
        fractional: bool,
    },
}

#[derive(Clone, Debug)]
struct Series {
    /// Sorted by name, padded.
    labels: Vec<(String, String)>,
    body: Body,
}

/// One family as read from one file.
#[derive(Debug)]
struct FileFamily {
    name: String,
    help: Option<String>,
    typ: MetricType,
    series: Vec<Series>,
}

/// The merged family that is exposed.
struct OutFamily {
    name: String,
    help: String,
    typ: MetricType,
    series: Vec<Series>,
    seen: HashSet<Vec<(String, String)>>,
}

/// Go's `uint64(f)` on amd64, which node_exporter applies to summary and histogram counts.
fn go_uint64(v: f64) -> f64 {
    if v < 0.0 {
        (v as i64) as u64 as f64
    } else {
        (v as u64) as f64
    }
}

fn label_key(labels: &[(String, String)], skip: &str) -> Vec<(String, String)> {
    let mut k: Vec<(String, String)> = labels.iter().filter(|(n, _)| n != skip).cloned().collect();
    k.sort_unstable();
    k
}

/// Regroups the flat samples of one parsed file into node_exporter's per-series form.
fn file_families(set: &MetricSet) -> Vec<FileFamily> {
    let mut fams: Vec<FileFamily> = set
        .family_ids()
        .map(|id| {
            let f = set.family_ref(id);
            FileFamily {
                name: f.name.to_string(),
                help: (!f.help.is_empty()).then(|| f.help.to_string()),
                typ: f.typ,
                series: Vec::new(),
            }
        })
        .collect();
    // (family, labels without le/quantile) → series index, for summaries and histograms.
    let mut groups: HashMap<(usize, Vec<(String, String)>), usize> = HashMap::new();
    for s in set.samples() {
        let fi = s.family_id().index();
        let fam = &mut fams[fi];
        let labels: Vec<(String, String)> = s
            .labels()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let value = s.value();
        match fam.typ {
            MetricType::Counter | MetricType::Gauge | MetricType::Untyped => {
                fam.series.push(Series {
                    labels,
                    body: Body::Value(value),
                });
            }
            MetricType::Summary | MetricType::Histogram => {
                let special = if fam.typ == MetricType::Summary {
                    "quantile"
                } else {
                    "le"
                };
                let key = label_key(&labels, special);
                let si = *groups.entry((fi, key)).or_insert_with(|| {
                    let body = if fam.typ == MetricType::Summary {
                        Body::Summary {
                            quantiles: Vec::new(),
                            sum: 0.0,
                            count: 0.0,
                        }
                    } else {
                        Body::Histogram {
                            buckets: Vec::new(),
                            sum: 0.0,
                            count: 0.0,
                            fractional: false,
                        }
                    };
                    fam.series.push(Series {
                        labels: labels
                            .iter()
                            .filter(|(n, _)| n != special)
                            .cloned()
                            .collect(),
                        body,
                    });
                    fam.series.len() - 1
                });
                let bound = labels
                    .iter()
                    .find(|(n, _)| n == special)
                    .and_then(|(_, v)| v.parse::<f64>().ok());
                match (&mut fam.series[si].body, s.suffix()) {
                    (Body::Summary { count, .. }, "_count") => *count = go_uint64(value),
                    (Body::Summary { sum, .. }, "_sum") => *sum = value,
                    (Body::Summary { quantiles, .. }, "") => {
                        if let Some(q) = bound {
                            set_point(quantiles, q, value);
                        }
                    }
                    (
                        Body::Histogram {
                            count, fractional, ..
                        },
                        "_count",
                    ) => {
                        *fractional |= value.fract() != 0.0;
                        *count = go_uint64(value);
                    }
                    (Body::Histogram { sum, .. }, "_sum") => *sum = value,
                    (
                        Body::Histogram {
                            buckets,
                            fractional,
                            ..
                        },
                        "_bucket",
                    ) => {
                        if let Some(le) = bound {
                            *fractional |= value.fract() != 0.0;
                            set_point(buckets, le, go_uint64(value));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    // Go drops families that only had metadata.
    fams.retain(|f| !f.series.is_empty());
    for fam in &mut fams {
        pad_labels(&mut fam.series);
    }
    fams
}

/// A later point with the same bound replaces the earlier one (Go keeps them in a map).
fn set_point(points: &mut Vec<(f64, f64)>, bound: f64, value: f64) {
    match points.iter_mut().find(|(b, _)| *b == bound) {
        Some(p) => p.1 = value,
        None => points.push((bound, value)),
    }
}

/// Adds `name=""` for every label name some other series of the family has, and sorts.
fn pad_labels(series: &mut [Series]) {
    let mut names: Vec<String> = series
        .iter()
        .flat_map(|s| s.labels.iter().map(|(n, _)| n.clone()))
        .collect();
    names.sort_unstable();
    names.dedup();
    for s in series {
        for n in &names {
            if !s.labels.iter().any(|(m, _)| m == n) {
                s.labels.push((n.clone(), String::new()));
            }
        }
        s.labels.sort_unstable();
    }
}

/// Go's `filepath.Join`: joined and cleaned (no `//`, no `./`, `..` resolved where it can be).
fn join_clean(dir: &str, name: &str) -> String {
    let joined = if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    };
    let abs = joined.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for p in joined.split('/') {
        match p {
            "" | "." => {}
            ".." if parts.last().is_some_and(|l| *l != "..") => {
                parts.pop();
            }
            ".." if abs => {}
            p => parts.push(p),
        }
    }
    let body = parts.join("/");
    match (abs, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_string(),
        (false, false) => body,
    }
}

/// `filepath.Match` for one path component: `*`, `?`, `[...]` with ranges and `^` negation,
/// `\` escapes.
fn glob_match(pat: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let (mut star_p, mut star_n) = (usize::MAX, 0);
    while n < name.len() {
        if p < pat.len() {
            match pat[p] {
                b'*' => {
                    star_p = p;
                    star_n = n;
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    n += 1;
                    continue;
                }
                b'[' => {
                    if let Some((ok, len)) = class_match(&pat[p..], name[n]) {
                        if ok {
                            p += len;
                            n += 1;
                            continue;
                        }
                    }
                }
                b'\\' if p + 1 < pat.len() && pat[p + 1] == name[n] => {
                    p += 2;
                    n += 1;
                    continue;
                }
                b'\\' if p + 1 < pat.len() => {}
                c if c == name[n] => {
                    p += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
        }
        if star_p == usize::MAX {
            return false;
        }
        star_n += 1;
        n = star_n;
        p = star_p + 1;
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class at the start of `pat` (`[...]`); returns (matched, length).
fn class_match(pat: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = pat.get(1) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pat.len() && (pat[i] != b']' || first) {
        first = false;
        let lo = pat[i];
        if i + 2 < pat.len() && pat[i + 1] == b'-' && pat[i + 2] != b']' {
            matched |= lo <= c && c <= pat[i + 2];
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
    if i >= pat.len() {
        return None;
    }
    Some((matched != negate, i + 1))
}

/// Expands a glob over directories as `filepath.Glob`; `None` when nothing matches (the
/// caller then uses the pattern as a plain path, as node_exporter does).
fn expand_glob(pattern: &str) -> Option<Vec<String>> {
    if !pattern.bytes().any(|b| matches!(b, b'*' | b'?' | b'[')) {
        return None;
    }
    let abs = pattern.starts_with('/');
    let mut current: Vec<String> = vec![if abs { "/".into() } else { String::new() }];
    for comp in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        for base in &current {
            if comp.bytes().any(|b| matches!(b, b'*' | b'?' | b'[')) {
                let dir = if base.is_empty() { "." } else { base.as_str() };
                let Ok(rd) = std::fs::read_dir(dir) else {
                    continue;
                };
                let mut names: Vec<String> = rd
                    .flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| glob_match(comp.as_bytes(), n.as_bytes()))
                    .collect();
                names.sort_unstable();
                next.extend(names.into_iter().map(|n| join_clean(base, &n)));
            } else {
                let p = join_clean(base, comp);
                if Path::new(&p).exists() {
                    next.push(p);
                }
            }
        }
        current = next;
    }
    (!current.is_empty()).then_some(current)
}

impl Textfile {
    /// Reads and parses one file into `file_set`; returns its mtime in whole seconds.
    fn process_file(&mut self, path: &str) -> Result<f64, String> {
        use std::io::Read;
        // A FIFO or device named *.prom would block the one work thread forever on open or
        // read (node_exporter hangs there too); only regular files are read.
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err(format!(
                    "textfile {path:?} is not a regular file, skipping it"
                ))
            }
            Err(e) => return Err(format!("failed to open textfile data file {path:?}: {e}")),
        }
        let f = std::fs::File::open(path)
            .map_err(|e| format!("failed to open textfile data file {path:?}: {e}"))?;
        self.buf.clear();
        f.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut self.buf)
            .map_err(|e| format!("failed to read textfile data file {path:?}: {e}"))?;
        if self.buf.len() as u64 > MAX_FILE_BYTES {
            return Err(format!(
                "textfile {path:?} is larger than {MAX_FILE_BYTES} bytes, skipping it"
            ));
        }
        self.file_set.clear();
        let opts = Options {
            format: Format::Text,
            names: NameScheme::Legacy,
            limits: Limits::default(),
        };
        self.parser
            .parse(&self.buf, &opts, &mut self.file_set)
            .map_err(|e| format!("failed to parse textfile data from {path:?}: {e}"))?;
        if self.file_set.samples().any(|s| s.timestamp().is_some()) {
            return Err(format!(
                "textfile {path:?} contains unsupported client-side timestamps, skipping entire file"
            ));
        }
        // Stat only after a successful parse, so a broken file never looks fresh.
        let meta = std::fs::metadata(path).map_err(|e| format!("failed to stat {path:?}: {e}"))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as f64)
            .unwrap_or(0.0);
        Ok(mtime)
    }

    fn directories(&self) -> Vec<String> {
        expand_glob(&self.pattern).unwrap_or_else(|| vec![self.pattern.clone()])
    }
}

impl Collector for Textfile {
    fn name(&self) -> &'static str {
        "textfile"
    }

    fn collect(&mut self, _ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        let mut errored = false;
        let mut parsed: Vec<FileFamily> = Vec::new();
        let mut files_of: HashMap<String, Vec<String>> = HashMap::new();
        let mut helps: HashMap<String, (String, String)> = HashMap::new();
        let mut mtimes: Vec<(String, f64)> = Vec::new();

        for dir in self.directories() {
            // No directory configured (the default): nothing to list, and no failed open of
            // "" on every scrape.
            if dir.is_empty() {
                continue;
            }
            let entries = match std::fs::read_dir(&dir) {
                Ok(rd) => {
                    let mut names: Vec<String> = rd
                        .flatten()
                        .filter_map(|e| e.file_name().into_string().ok())
                        .collect();
                    names.sort_unstable();
                    names
                }
                Err(e) => {
                    if !dir.is_empty() {
                        errored = true;
                        crate::log::error(&format!(
                            "failed to read textfile collector directory path={dir:?} err={e:?}"
                        ));
                    }
                    Vec::new()
                }
            };
            for name in entries.iter().filter(|n| n.ends_with(".prom")) {
                let path = join_clean(&dir, name);
                let mtime = match self.process_file(&path) {
                    Ok(m) => m,
                    Err(e) => {
                        errored = true;
                        crate::log::error(&format!(
                            "failed to collect textfile data file={name:?} err={e:?}"
                        ));
                        continue;
                    }
                };
                for fam in file_families(&self.file_set) {
                    if let Some((first, conflict)) = helps.get(&fam.name) {
                        let differs = fam.help.as_ref().is_some_and(|h| h != first);
                        if differs || !conflict.is_empty() {
                            let new_help = fam.help.clone().unwrap_or_default();
                            crate::log::error(&format!(
                                "inconsistent metric help text metric={:?} original_help_text={first:?} \
                                 new_help_text={new_help:?} file={:?}",
                                fam.name,
                                files_of.get(&fam.name).and_then(|f| f.first()).cloned().unwrap_or_default()
                            ));
                            let first = first.clone();
                            helps.insert(fam.name.clone(), (first, new_help));
                            errored = true;
                            continue;
                        }
                    }
                    if let Some(h) = &fam.help {
                        helps.insert(fam.name.clone(), (h.clone(), String::new()));
                    }
                    files_of
                        .entry(fam.name.clone())
                        .or_default()
                        .push(path.clone());
                    parsed.push(fam);
                }
                mtimes.push((path, mtime));
            }
        }

        // Families without HELP say where they came from.
        for fam in &mut parsed {
            if fam.help.is_none() {
                fam.help = Some(format!(
                    "Metric read from {}",
                    files_of
                        .get(&fam.name)
                        .map(|f| f.join(", "))
                        .unwrap_or_default()
                ));
            }
        }

        // Merge as node_exporter's registry does: first TYPE/HELP wins, repeats are dropped.
        let mut merged: Vec<OutFamily> = Vec::new();
        for fam in parsed {
            let help = fam.help.unwrap_or_default();
            let at = match merged.iter().position(|m| m.name == fam.name) {
                Some(i) => i,
                None => {
                    merged.push(OutFamily {
                        name: fam.name.clone(),
                        help: help.clone(),
                        typ: fam.typ,
                        series: Vec::new(),
                        seen: HashSet::new(),
                    });
                    merged.len() - 1
                }
            };
            let m = &mut merged[at];
            for s in fam.series {
                let problem = if m.typ != fam.typ {
                    Some(format!("should be a {}", m.typ.as_text()))
                } else if m.help != help {
                    Some(format!("has help {help:?} but should have {:?}", m.help))
                } else if !m.seen.insert(s.labels.clone()) {
                    Some("was collected before with the same name and label values".to_string())
                } else {
                    None
                };
                match problem {
                    Some(p) => crate::log::error(&format!(
                        "textfile: dropping series {}{{{}}}: {p}",
                        m.name,
                        s.labels
                            .iter()
                            .map(|(n, v)| format!("{n}={v:?}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    )),
                    None => m.series.push(s),
                }
            }
        }
        crate::sort::sort_by(&mut merged, |a, b| a.name.cmp(&b.name));
        for m in &mut merged {
            // Go sorts series by their label values (labels sorted by name).
            crate::sort::sort_by(&mut m.series, |a, b| {
                a.labels
                    .iter()
                    .map(|(_, v)| v)
                    .cmp(b.labels.iter().map(|(_, v)| v))
            });
            emit(m, out);
        }

        if !mtimes.is_empty() {
            crate::sort::sort_by(&mut mtimes, |a, b| a.0.cmp(&b.0));
            let f = out.family_static(
                "node_textfile_mtime_seconds",
                "Unixtime mtime of textfiles successfully read.",
                MetricType::Gauge,
            );
            for (path, mtime) in &mtimes {
                out.sample(f, &[("file", path)], *mtime);
            }
        }
        out.single_static(
            "node_textfile_scrape_error",
            "1 if there was an error opening or reading a file, 0 otherwise",
            MetricType::Gauge,
            if errored { 1.0 } else { 0.0 },
        );
        Ok(())
    }
}

fn float_text(v: f64) -> String {
    let mut b = Vec::new();
    format_float(v, &mut b);
    String::from_utf8(b).unwrap_or_default()
}

fn emit(m: &OutFamily, out: &mut MetricSet) {
    let f = out.family(&m.name, &m.help, m.typ);
    for s in &m.series {
        let push = |out: &mut MetricSet, suffix: &str, extra: Option<(&str, &str)>, v: f64| {
            let first = out.label_mark();
            for (n, val) in &s.labels {
                out.push_label(n, val);
            }
            if let Some((n, val)) = extra {
                out.push_label(n, val);
            }
            out.push_sample(f, suffix, first, v, None);
        };
        match &s.body {
            Body::Value(v) => push(out, "", None, *v),
            Body::Summary {
                quantiles,
                sum,
                count,
            } => {
                let mut q = quantiles.clone();
                crate::sort::sort_by(&mut q, |a, b| a.0.total_cmp(&b.0));
                for (bound, v) in q {
                    push(out, "", Some(("quantile", &float_text(bound))), v);
                }
                push(out, "_sum", None, *sum);
                push(out, "_count", None, *count);
            }
            Body::Histogram {
                buckets,
                sum,
                count,
                fractional,
            } => {
                let zero = |v: f64| if *fractional { 0.0 } else { v };
                let mut b = buckets.clone();
                crate::sort::sort_by(&mut b, |x, y| x.0.total_cmp(&y.0));
                let has_inf = b.iter().any(|(le, _)| *le == f64::INFINITY);
                for (le, v) in b {
                    push(out, "_bucket", Some(("le", &float_text(le))), zero(v));
                }
                if !has_inf {
                    push(out, "_bucket", Some(("le", "+Inf")), zero(*count));
                }
                push(out, "_sum", None, *sum);
                push(out, "_count", None, zero(*count));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_clean_matches_go_filepath_join() {
        assert_eq!(join_clean("/a/b/", "c.prom"), "/a/b/c.prom");
        assert_eq!(join_clean("a//b/./", "c.prom"), "a/b/c.prom");
        assert_eq!(join_clean("/a/../b", "c"), "/b/c");
        assert_eq!(join_clean("", "c"), "c");
    }

    #[test]
    fn glob_match_handles_stars_classes_and_escapes() {
        assert!(glob_match(b"*_dimension", b"histogram_extra_dimension"));
        assert!(!glob_match(b"*_dimension", b"histogram"));
        assert!(glob_match(b"h?st*", b"histogram"));
        assert!(glob_match(b"[a-c]x", b"bx"));
        assert!(!glob_match(b"[^a-c]x", b"bx"));
        assert!(glob_match(b"a\\*", b"a*"));
        assert!(!glob_match(b"a\\*", b"ab"));
    }

    #[test]
    fn go_uint64_wraps_negative_counts_like_amd64() {
        assert_eq!(go_uint64(3.7), 3.0);
        assert_eq!(go_uint64(-3.0), 18446744073709551613.0);
    }
}
