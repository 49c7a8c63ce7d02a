//! The `os` collector: `node_os_info`, `node_os_version` and
//! `node_os_support_end_timestamp_seconds` from os-release(5) under `--path.rootfs`
//! (`etc/os-release`, else `usr/lib/os-release`).
//!
//! Must not touch: anything but those two files.

use super::util::{lines, read_into, split_once_byte};
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
    /// The file `text` holds and its modification time: as node_exporter does, the file is
    /// read again only when either changes (one `stat` per scrape instead of six syscalls).
    read_from: Option<(std::path::PathBuf, std::time::SystemTime)>,
    values: [String; 12],
    support_end: String,
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::new(Os {
        text: String::new(),
        read_from: None,
        values: Default::default(),
        support_end: String::new(),
    }))
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
        let mut found = None;
        for f in FILES {
            let p = ctx.roots.root(f);
            let mtime = match std::fs::metadata(&p).and_then(|m| m.modified()) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(CollectError::io(&p, e)),
            };
            if self
                .read_from
                .as_ref()
                .is_some_and(|(path, t)| *path == p && *t == mtime)
            {
                found = Some(p);
                break;
            }
            self.read_from = None;
            match read_into(&p, &mut self.text) {
                Ok(()) => {
                    self.read_from = Some((p.clone(), mtime));
                    found = Some(p);
                    break;
                }
                Err(ref e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            }
        }
        let Some(path) = found else {
            return Err(CollectError::not_found(ctx.roots.root(FILES[1])));
        };
        self.values.iter_mut().for_each(String::clear);
        self.support_end.clear();
        for line in lines(&self.text) {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = split_once_byte(line, b'=') else {
                return Err(CollectError::parse(
                    &path,
                    format!("not KEY=value: {:?}", super::sysfs::short(line)),
                ));
            };
            let slot = if k == "SUPPORT_END" {
                Some(&mut self.support_end)
            } else {
                KEYS.iter()
                    .position(|(key, _)| *key == k)
                    .map(|i| &mut self.values[i])
            };
            if let Some(slot) = slot {
                unquote(v, slot).map_err(|e| CollectError::parse(&path, e))?;
            }
        }
        let support_end = if self.support_end.is_empty() {
            None
        } else {
            Some(date_to_unix(&self.support_end).ok_or_else(|| {
                CollectError::parse(&path, format!("bad SUPPORT_END {:?}", self.support_end))
            })?)
        };
        let f = out.family_static(
            "node_os_info",
            "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, image_version, name, pretty_name, variant, variant_id, version, version_codename, version_id.",
            MetricType::Gauge,
        );
        let mut labels: [(&str, &dyn std::fmt::Display); 12] = [("", &""); 12];
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
        if let Some(t) = support_end {
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
