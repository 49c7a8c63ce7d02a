//! The `os` collector: `node_os_info`, `node_os_version` and
//! `node_os_support_end_timestamp_seconds` from os-release(5) under `--path.rootfs`
//! (`etc/os-release`, else `usr/lib/os-release`).
//!
//! Must not touch: anything but those two files.

use super::util::{fingerprint, lines, split_once_byte, still_absent};
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};

const FILES: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];

/// The os-release keys exported as labels, in label order, with their label names.
const KEYS: [(&str, &str); 12] = [
    ("BUILD_ID", "build_id"),
    ("ID", "id"),
    ("ID_LIKE", "id_like"),
    ("IMAGE_ID", "image_id"),
    ("IMAGE_VERSION", "image_version"),
    ("NAME", "name"),
    ("PRETTY_NAME", "pretty_name"),
    ("VARIANT", "variant"),
    ("VARIANT_ID", "variant_id"),
    ("VERSION", "version"),
    ("VERSION_CODENAME", "version_codename"),
    ("VERSION_ID", "version_id"),
];

pub struct Os {
    text: String,
    /// The file `text` was read from, kept open: as node_exporter does, the file is read again
    /// only when it (or its mtime) changes, and that is checked with one `fstat` per scrape
    /// (a `stat` by path walks the path: several times the cost).
    read_from: Option<Kept>,
    /// The labels parsed from `text`, in [`KEYS`] order (parsed when `text` is read).
    values: [String; 12],
    support_end: String,
    support_end_ts: Option<i64>,
}

/// An os-release file kept open, and what [`Os`] compares to see whether it changed.
///
/// Why the kept descriptor sees the changes that matter: an edit in place changes its mtime,
/// and a replacement by rename (how packages install it) drops the old file's link count to
/// 0. What it cannot see (a symlink pointed elsewhere, `etc/os-release` created while
/// `usr/lib/os-release` is used) is seen when the files are looked up by path again, at
/// least every [`REPROBE_ABSENT_MS`](super::util::REPROBE_ABSENT_MS), and at once under
/// another `--path.rootfs`.
struct Kept {
    file: std::fs::File,
    /// Index in [`FILES`].
    which: usize,
    /// Length and [`fingerprint`] of the rootfs path it was found under.
    root: (usize, u64),
    /// (device, inode, link count, mtime).
    stamp: (u64, u64, u64, i64, i64),
    /// When it was looked up by path (wall ms).
    found_at: i64,
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::new(Os {
        text: String::new(),
        read_from: None,
        values: Default::default(),
        support_end: String::new(),
        support_end_ts: None,
    }))
}

fn stamp(m: &std::fs::Metadata) -> (u64, u64, u64, i64, i64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino(), m.nlink(), m.mtime(), m.mtime_nsec())
}

impl Os {
    /// Makes `text` the content of the first os-release file under `ctx`'s rootfs, reading it
    /// only when it changed: `Some(index in FILES)` when it was read now.
    fn refresh(&mut self, ctx: &Context<'_>) -> Result<Option<usize>, CollectError> {
        use std::io::Read;
        let rootfs = ctx.roots.rootfs.as_os_str().as_encoded_bytes();
        let root = (rootfs.len(), fingerprint(rootfs));
        if let Some(k) = &self.read_from {
            if k.root == root
                && still_absent(k.found_at, ctx.now_ms)
                && k.file.metadata().is_ok_and(|m| stamp(&m) == k.stamp)
            {
                return Ok(None);
            }
        }
        for (which, f) in FILES.iter().enumerate() {
            let p = ctx.roots.root(f);
            let io = |e| CollectError::io(&p, e);
            let mut file = match std::fs::File::open(&p) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(e)),
            };
            let stamp = stamp(&file.metadata().map_err(io)?);
            let unchanged = self
                .read_from
                .as_ref()
                .is_some_and(|k| (k.which, k.root, k.stamp) == (which, root, stamp));
            if !unchanged {
                self.read_from = None;
                self.text.clear();
                file.read_to_string(&mut self.text).map_err(io)?;
            }
            self.read_from = Some(Kept {
                file,
                which,
                root,
                stamp,
                found_at: ctx.now_ms,
            });
            return Ok((!unchanged).then_some(which));
        }
        self.read_from = None;
        Err(CollectError::not_found(ctx.roots.root(FILES[1])))
    }

    /// Parses `text` into `values` and `support_end_ts`.
    fn parse(&mut self) -> Result<(), String> {
        self.values.iter_mut().for_each(String::clear);
        self.support_end.clear();
        self.support_end_ts = None;
        for line in lines(&self.text) {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = split_once_byte(line, b'=') else {
                return Err(format!("not KEY=value: {:?}", super::sysfs::short(line)));
            };
            let slot = if k == "SUPPORT_END" {
                Some(&mut self.support_end)
            } else {
                KEYS.iter()
                    .position(|(key, _)| *key == k)
                    .map(|i| &mut self.values[i])
            };
            if let Some(slot) = slot {
                unquote(v, slot)?;
            }
        }
        if !self.support_end.is_empty() {
            self.support_end_ts = Some(
                date_to_unix(&self.support_end)
                    .ok_or_else(|| format!("bad SUPPORT_END {:?}", self.support_end))?,
            );
        }
        Ok(())
    }
}

/// Decodes an os-release value: double or single quotes, backslash escapes in double quotes.
fn unquote(raw: &str, out: &mut String) -> Result<(), String> {
    out.clear();
    let raw = raw.trim();
    let mut chars = raw.chars();
    match raw.chars().next() {
        Some(q @ ('"' | '\'')) => {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                if c == q {
                    closed = true;
                    break;
                }
                if c == '\\' && q == '"' {
                    match chars.next() {
                        Some(e) => out.push(e),
                        None => break,
                    }
                } else {
                    out.push(c);
                }
            }
            if !closed {
                return Err(format!("unterminated quote in {raw:?}"));
            }
        }
        _ => out.push_str(raw),
    }
    Ok(())
}

/// `YYYY-MM-DD` → seconds since the epoch at 00:00 UTC.
fn date_to_unix(s: &str) -> Option<i64> {
    let mut it = s.split('-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    if it.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) || s.len() != 10 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400)
}

/// node_exporter's `^[0-9]+\.?[0-9]*` prefix of VERSION_ID.
fn major_minor(v: &str) -> Option<f64> {
    let digits = v.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let mut end = digits;
    if v[end..].starts_with('.') {
        end += 1;
        end += v[end..].bytes().take_while(u8::is_ascii_digit).count();
    }
    v[..end].trim_end_matches('.').parse().ok()
}

impl Collector for Os {
    fn name(&self) -> &'static str {
        "os"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        if let Some(which) = self.refresh(ctx)? {
            if let Err(e) = self.parse() {
                // Read (and fail) again next time, so the error is reported on every scrape.
                self.read_from = None;
                return Err(CollectError::parse(&ctx.roots.root(FILES[which]), e));
            }
        }
        let f = out.family_static(
            "node_os_info",
            "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, image_version, name, pretty_name, variant, variant_id, version, version_codename, version_id.",
            MetricType::Gauge,
        );
        let mut labels: [(&str, &dyn crate::expo::LabelValue); 12] = [("", &""); 12];
        for (slot, ((_, label), v)) in labels.iter_mut().zip(KEYS.iter().zip(&self.values)) {
            *slot = (label, v);
        }
        out.sample(f, &labels, 1.0);
        let [_, id, id_like, _, _, name, .., version_id] = &self.values;
        if let Some(v) = major_minor(version_id).filter(|v| *v > 0.0) {
            let f = out.family_static(
                "node_os_version",
                "Metric containing the major.minor part of the OS version.",
                MetricType::Gauge,
            );
            out.sample(f, &[("id", id), ("id_like", id_like), ("name", name)], v);
        }
        if let Some(t) = self.support_end_ts {
            out.single_static(
                "node_os_support_end_timestamp_seconds",
                "Metric containing the end-of-life date timestamp of the OS.",
                MetricType::Gauge,
                t as f64,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fixtures::{assert_golden, node_fixtures, roots_at, run, Scratch};

    /// As node_exporter: os-release is parsed again only when its path or mtime changes.
    #[test]
    fn os_release_is_reread_only_when_its_mtime_changes() {
        let s = Scratch::new("os-mtime");
        let roots = s.roots();
        let file = s.dir.join("etc/os-release");
        let set_mtime = |secs: u64| {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            std::fs::File::options()
                .write(true)
                .open(&file)
                .unwrap()
                .set_modified(t)
                .unwrap();
        };
        let mut c = new(&CollectorOptions::default()).unwrap();
        s.write("etc/os-release", b"ID=first\n");
        set_mtime(1_000);
        assert!(run(c.as_mut(), &roots).unwrap().contains("id=\"first\""));
        s.write("etc/os-release", b"ID=second\n");
        set_mtime(1_000);
        assert!(run(c.as_mut(), &roots).unwrap().contains("id=\"first\""));
        set_mtime(2_000);
        assert!(run(c.as_mut(), &roots).unwrap().contains("id=\"second\""));
    }

    /// The file is kept open between scrapes: a replacement by rename is seen at once (same
    /// mtime and size), a newly created `etc/os-release` after the re-probe time, and another
    /// rootfs at once.
    #[test]
    fn os_release_kept_open_sees_renames_at_once_and_new_files_after_the_reprobe_time() {
        use crate::collect::fixtures::run_at;
        use crate::collect::util::REPROBE_ABSENT_MS;
        let s = Scratch::new("os-kept");
        let roots = s.roots();
        let mut c = new(&CollectorOptions::default()).unwrap();
        s.write("usr/lib/os-release", b"ID=one\n");
        let t0 = 7_000_000;
        assert!(run_at(c.as_mut(), &roots, t0)
            .unwrap()
            .contains("id=\"one\""));
        let lib = s.dir.join("usr/lib/os-release");
        let mtime = std::fs::metadata(&lib).unwrap().modified().unwrap();
        s.write("usr/lib/new", b"ID=two\n");
        let new_file = std::fs::File::options()
            .write(true)
            .open(s.dir.join("usr/lib/new"))
            .unwrap();
        new_file.set_modified(mtime).unwrap();
        std::fs::rename(s.dir.join("usr/lib/new"), &lib).unwrap();
        assert!(run_at(c.as_mut(), &roots, t0 + 1)
            .unwrap()
            .contains("id=\"two\""));
        s.write("etc/os-release", b"ID=three\n");
        let before = t0 + 1 + REPROBE_ABSENT_MS - 1;
        assert!(run_at(c.as_mut(), &roots, before)
            .unwrap()
            .contains("id=\"two\""));
        let after = t0 + 1 + REPROBE_ABSENT_MS;
        assert!(run_at(c.as_mut(), &roots, after)
            .unwrap()
            .contains("id=\"three\""));
        let other = Scratch::new("os-kept-other");
        other.write("etc/os-release", b"ID=four\n");
        assert!(run_at(c.as_mut(), &other.roots(), after)
            .unwrap()
            .contains("id=\"four\""));
    }

    #[test]
    fn os_matches_node_exporter_on_fixtures() {
        let Some(dir) = node_fixtures() else { return };
        let mut c = new(&CollectorOptions::default()).unwrap();
        let text = run(c.as_mut(), &roots_at(&dir)).unwrap();
        assert_golden(&dir, &text, &["node_os_info", "node_os_version"]);
    }

    #[test]
    fn os_parses_quotes_support_end_and_version_prefixes() {
        let s = Scratch::new("os");
        s.write(
            "etc/os-release",
            b"NAME='Amazon Linux'\nID=amzn\nVERSION_ID=\"2\"\nPRETTY_NAME=\"A \\\"q\\\"\"\nSUPPORT_END=\"2028-03-15\"\n",
        );
        let mut c = new(&CollectorOptions::default()).unwrap();
        let text = run(c.as_mut(), &s.roots()).unwrap();
        assert!(text.contains("pretty_name=\"A \\\"q\\\"\""), "{text}");
        assert!(
            text.contains("node_os_version{id=\"amzn\",id_like=\"\",name=\"Amazon Linux\"} 2\n")
        );
        assert!(
            text.contains("node_os_support_end_timestamp_seconds 1.8366912e+09\n"),
            "{text}"
        );
        assert_eq!(major_minor("20.04.2"), Some(20.04));
        assert_eq!(major_minor("rolling"), None);
        assert_eq!(date_to_unix("1970-01-02"), Some(86_400));
    }

    #[test]
    fn os_garbage_is_an_error_and_missing_file_is_not_found() {
        let s = Scratch::new("os-bad");
        let mut c = new(&CollectorOptions::default()).unwrap();
        assert!(matches!(
            run(c.as_mut(), &s.roots()),
            Err(ref e) if e.is_not_found()
        ));
        for bad in [
            &b"NAME=\"Ubu"[..],
            b"\x00\x01garbage",
            b"SUPPORT_END=2028-13-01\n",
        ] {
            s.write("usr/lib/os-release", bad);
            assert!(run(c.as_mut(), &s.roots()).is_err(), "{bad:?}");
        }
    }
}
