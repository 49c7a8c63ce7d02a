//! The Pushgateway-compatible API: pushed groups, validation, persistence.
//!
//! A group is named by its grouping key (`job` plus the labels of the URL path). Each group
//! keeps its samples with the grouping labels (and `instance=""` when absent) already applied,
//! as the Pushgateway stores them, plus `push_time_seconds` / `push_failure_time_seconds`.
//! Every change rewrites `<dir>/push_groups.bin` (crc32-checked, write-then-rename) so groups
//! survive a restart. Time is passed in by the agent.
//!
//! Must not touch: scheduling, other modules' state, the HTTP layer (the agent maps results
//! to responses).

use crate::vecmap::VecMap;
use std::path::{Path, PathBuf};

use crate::expo::{self, FamilyId, MetricSet, MetricType};
use crate::scrape::parse;

pub mod protobuf;

/// Largest body a gzipped push may inflate to.
const MAX_DECODED_BODY: usize = 16 << 20;

/// The text-format bytes of a push body, whatever way it came: plain text, gzip
/// (`Content-Encoding: gzip`) and/or delimited protobuf, as the Pushgateway accepts.
pub fn body_as_text<'a>(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &'a [u8],
) -> Result<std::borrow::Cow<'a, [u8]>, PushError> {
    let mut bytes = std::borrow::Cow::Borrowed(body);
    match content_encoding.map(str::trim) {
        None | Some("") | Some("identity") => {}
        Some(e) if e.eq_ignore_ascii_case("gzip") => {
            let mut out = Vec::new();
            crate::scrape::client::gunzip(body, MAX_DECODED_BODY, &mut out)
                .map_err(|e| PushError(format!("failed to decompress body: {e}")))?;
            bytes = std::borrow::Cow::Owned(out);
        }
        Some(e) => return Err(PushError(format!("unsupported Content-Encoding {e:?}"))),
    }
    if content_type.is_some_and(protobuf::is_delimited_protobuf) {
        let text = protobuf::to_text(&bytes)
            .map_err(|e| PushError(format!("failed to parse protobuf: {e}")))?;
        bytes = std::borrow::Cow::Owned(text.into_bytes());
    }
    Ok(bytes)
}

/// Sorted grouping labels, `job` included.
pub type GroupKey = Vec<(String, String)>;

const FILE_NAME: &str = "push_groups.bin";
const MAGIC: &[u8; 8] = b"PLPUSH01";
const PUSH_TIME_FAMILIES: [&str; 2] = ["push_time_seconds", "push_failure_time_seconds"];

/// What a push asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// PUT: the body replaces the whole group.
    Replace,
    /// POST: the body replaces only the families it contains.
    Merge,
}

/// A refused push; the group is unchanged (except its failure time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushError(pub String);

impl std::fmt::Display for PushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug, Default)]
struct Group {
    set: MetricSet,
    push_time_s: f64,
    failure_time_s: f64,
}

/// All pushed groups. See the module docs.
#[derive(Debug, Default)]
pub struct Store {
    groups: VecMap<GroupKey, Group>,
    dir: Option<PathBuf>,
    /// Writes of the groups file that failed (exposed as a self-metric).
    pub persist_errors: u64,
}

/// Parses the part of the path after `/metrics/` (`job/<job>{/<label>/<value>}`), decoding
/// `<label>@base64` values (URL-safe base64, padding optional, `=` for the empty value).
pub fn grouping_key(rest: &str) -> Result<GroupKey, PushError> {
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.len() < 2 || parts.len() % 2 != 0 {
        return Err(PushError(format!(
            "odd number of components in grouping key path: {rest:?}"
        )));
    }
    let mut key: GroupKey = Vec::new();
    for pair in parts.chunks(2) {
        let (mut name, mut value) = (pair[0], pair[1].to_string());
        if let Some(n) = name.strip_suffix("@base64") {
            name = n;
            value = decode_base64(&value)
                .ok_or_else(|| PushError(format!("invalid base64 encoding in {value:?}")))?;
        }
        if !valid_label_name(name) || name.starts_with("__") {
            return Err(PushError(format!("invalid label name {name:?}")));
        }
        if key.iter().any(|(n, _)| n == name) {
            return Err(PushError(format!("duplicate label name {name:?}")));
        }
        key.push((name.to_string(), value));
    }
    if key[0].0 != "job" {
        return Err(PushError("first grouping label must be job".into()));
    }
    if key[0].1.is_empty() {
        return Err(PushError("job name is required".into()));
    }
    key.sort_unstable();
    Ok(key)
}

fn valid_label_name(n: &str) -> bool {
    let mut b = n.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// URL-safe base64 (also accepts the standard alphabet), padding optional.
fn decode_base64(s: &str) -> Option<String> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return None; // a single leftover character cannot encode a byte
    }
    String::from_utf8(out).ok()
}

impl Store {
    /// Memory only (tests, or no data directory).
    pub fn new() -> Store {
        Store::default()
    }

    /// Loads the groups saved in `dir`. A damaged file is renamed aside (`.bad`) and the
    /// store starts empty: losing pushed groups beats refusing to start.
    pub fn open(dir: &Path) -> Result<Store, String> {
        let path = dir.join(FILE_NAME);
        let mut store = Store {
            dir: Some(dir.to_path_buf()),
            ..Store::default()
        };
        match std::fs::read(&path) {
            Ok(bytes) => match decode_file(&bytes) {
                Ok(groups) => store.groups = groups,
                Err(e) => {
                    crate::log::warn(&format!(
                        "pushed groups file {} is damaged ({e}); starting without pushed groups",
                        path.display()
                    ));
                    let _ = std::fs::rename(&path, path.with_extension("bad"));
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
        Ok(store)
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Applies a PUT/POST of `body` (text 0.0.4) to the group `key` at `now_s`.
    pub fn push(
        &mut self,
        key: &GroupKey,
        method: Method,
        body: &[u8],
        now_s: f64,
    ) -> Result<(), PushError> {
        // A body that does not parse changes nothing (the Pushgateway fails it before its
        // storage sees it); a parsed but invalid push marks the group failed, creating it.
        let mut parsed = MetricSet::new();
        let opts = parse::Options {
            names: parse::NameScheme::Legacy,
            ..parse::Options::text()
        };
        parse::parse(body, &opts, &mut parsed)
            .map_err(|e| PushError(format!("failed to parse text: {e}")))?;
        match self.build(key, method, &parsed) {
            Ok(set) => {
                let g = self.groups.get_or_insert_with(key.clone(), Group::default);
                g.set = set;
                g.push_time_s = now_s;
                self.save();
                Ok(())
            }
            Err(e) => {
                self.groups
                    .get_or_insert_with(key.clone(), Group::default)
                    .failure_time_s = now_s;
                self.save();
                Err(e)
            }
        }
    }

    /// Deletes the group `key` (absent: nothing to do, as the Pushgateway).
    pub fn delete(&mut self, key: &GroupKey) {
        if self.groups.remove(key).is_some() {
            self.save();
        }
    }

    /// The group's new sample set, or why the push is refused.
    fn build(
        &self,
        key: &GroupKey,
        method: Method,
        parsed: &MetricSet,
    ) -> Result<MetricSet, PushError> {
        if parsed.samples().any(|s| s.timestamp().is_some()) {
            return Err(PushError("pushed metrics must not have timestamps".into()));
        }
        let mut set = MetricSet::new();
        if method == Method::Merge {
            if let Some(old) = self.groups.get(key) {
                let replaced: Vec<&str> = parsed.families().map(|f| f.name).collect();
                for id in old.set.family_ids() {
                    if !replaced.contains(&old.set.family_ref(id).name) {
                        copy_family(&old.set, id, &mut set, &[]);
                    }
                }
            }
        }
        // The group's own push times win over pushed families of those names (the
        // Pushgateway keeps one family per name and sets these last).
        for id in parsed.family_ids() {
            if !PUSH_TIME_FAMILIES.contains(&parsed.family_ref(id).name) {
                copy_family(parsed, id, &mut set, key);
            }
        }
        self.check_consistency(key, &set)?;
        Ok(set)
    }

    /// Families of one name must agree on type across groups, and no series may appear
    /// twice, so the combined exposition stays valid. Help may differ (the Pushgateway
    /// accepts that and exposes the first).
    fn check_consistency(&self, key: &GroupKey, set: &MetricSet) -> Result<(), PushError> {
        for f in set.families() {
            for (k, g) in self.groups.iter() {
                if k == key {
                    continue;
                }
                if let Some(other) = g.set.families().find(|o| o.name == f.name) {
                    if other.typ != f.typ {
                        return Err(PushError(format!(
                            "pushed metrics are inconsistent with existing metrics: {} is a {} \
                             in another group, got {}",
                            f.name,
                            other.typ.as_text(),
                            f.typ.as_text()
                        )));
                    }
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for s in set.samples() {
            let mut id = format!("{}{}", s.family_name(), s.suffix());
            for (n, v) in s.labels() {
                id.push_str(&format!("\u{0}{n}\u{0}{v}"));
            }
            if !seen.insert(id) {
                return Err(PushError(format!(
                    "duplicate series in pushed metrics: {}{}",
                    s.family_name(),
                    s.suffix()
                )));
            }
        }
        Ok(())
    }

    /// Adds every group's samples and the push time families to `out` (for `/metrics` and
    /// the collection cycle).
    pub fn write_metrics(&self, out: &mut MetricSet) {
        if self.groups.is_empty() {
            return;
        }
        for g in self.groups.values() {
            out.extend_from(&g.set);
        }
        let ok = out.family_static(
            "push_time_seconds",
            "Last Unix time when changing this group in the Pushgateway succeeded.",
            MetricType::Gauge,
        );
        for (k, g) in self.groups.iter() {
            push_group_sample(out, ok, k, g.push_time_s);
        }
        let failed = out.family_static(
            "push_failure_time_seconds",
            "Last Unix time when changing this group in the Pushgateway failed.",
            MetricType::Gauge,
        );
        for (k, g) in self.groups.iter() {
            push_group_sample(out, failed, k, g.failure_time_s);
        }
    }

    /// Rewrites the groups file: write a temporary file, fsync, rename over the old one.
    fn save(&mut self) {
        let Some(dir) = &self.dir else { return };
        let bytes = encode_file(&self.groups);
        let path = dir.join(FILE_NAME);
        let tmp = dir.join(format!("{FILE_NAME}.tmp"));
        let result = std::fs::File::create(&tmp)
            .and_then(|mut f| {
                use std::io::Write;
                f.write_all(&bytes)?;
                f.sync_all()
            })
            .and_then(|_| std::fs::rename(&tmp, &path));
        if let Err(e) = result {
            self.persist_errors += 1;
            crate::log::warn(&format!(
                "cannot save pushed groups to {}: {e}",
                path.display()
            ));
        }
    }
}

fn push_group_sample(out: &mut MetricSet, fam: FamilyId, key: &GroupKey, value: f64) {
    let first = out.label_mark();
    let has_instance = key.iter().any(|(n, _)| n == "instance");
    let mut pending: Vec<(&str, &str)> = key.iter().map(|(n, v)| (&n[..], &v[..])).collect();
    if !has_instance {
        pending.push(("instance", ""));
        pending.sort_unstable();
    }
    for (n, v) in pending {
        out.push_label(n, v);
    }
    out.push_sample(fam, "", first, value, None);
}

/// Copies family `id` of `src` into `dst`, overriding/adding the grouping labels `key` on each
/// sample and adding `instance=""` when no instance label results (as the Pushgateway does).
/// An empty `key` copies samples unchanged (they were sanitized when pushed).
fn copy_family(src: &MetricSet, id: FamilyId, dst: &mut MetricSet, key: &[(String, String)]) {
    let f = src.family_ref(id);
    let fam = dst.family(f.name, f.help, f.typ);
    // Bucket bounds and quantiles are numbers to the Pushgateway: it re-exposes `le="10.0"`
    // as `le="10"`. Same here, so both expose identical series.
    let numeric = match f.typ {
        MetricType::Histogram => "le",
        MetricType::Summary => "quantile",
        _ => "",
    };
    for s in src.samples().filter(|s| s.family_id() == id) {
        let normalized: Option<String> = s
            .labels()
            .find(|(n, _)| !key.is_empty() && *n == numeric)
            .and_then(|(_, v)| parse::parse_float(v.as_bytes()))
            .map(|x| {
                let mut buf = Vec::new();
                expo::format_float(x, &mut buf);
                String::from_utf8_lossy(&buf).into_owned()
            });
        let mut labels: Vec<(&str, &str)> = Vec::new();
        for (n, v) in s.labels() {
            match key.iter().find(|(kn, _)| kn == n) {
                Some((_, kv)) => labels.push((n, kv)),
                None if n == numeric && normalized.is_some() => {
                    labels.push((n, normalized.as_deref().unwrap_or(v)))
                }
                None => labels.push((n, v)),
            }
        }
        for (kn, kv) in key {
            if !labels.iter().any(|(n, _)| n == kn) {
                labels.push((kn, kv));
            }
        }
        if !key.is_empty() && !labels.iter().any(|(n, _)| *n == "instance") {
            labels.push(("instance", ""));
        }
        labels.sort_unstable();
        let first = dst.label_mark();
        for (n, v) in &labels {
            dst.push_label(n, v);
        }
        dst.push_sample(fam, s.suffix(), first, s.value(), None);
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// `MAGIC`, crc32 of the payload, payload: per group its labels, times and the text 0.0.4
/// of its samples (families with no samples are kept as HELP/TYPE only by the parser).
fn encode_file(groups: &VecMap<GroupKey, Group>) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&(groups.len() as u32).to_le_bytes());
    let mut text = Vec::new();
    for (k, g) in groups.iter() {
        payload.extend_from_slice(&(k.len() as u32).to_le_bytes());
        for (n, v) in k {
            put_bytes(&mut payload, n.as_bytes());
            put_bytes(&mut payload, v.as_bytes());
        }
        payload.extend_from_slice(&g.push_time_s.to_le_bytes());
        payload.extend_from_slice(&g.failure_time_s.to_le_bytes());
        text.clear();
        expo::encode_text(&g.set, &mut text);
        put_bytes(&mut payload, &text);
    }
    let mut out = Vec::with_capacity(payload.len() + 12);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or([0; 4]),
        ))
    }
    fn f64(&mut self) -> Result<f64, String> {
        Ok(f64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or([0; 8]),
        ))
    }
    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| "invalid UTF-8".to_string())
    }
}

fn decode_file(bytes: &[u8]) -> Result<VecMap<GroupKey, Group>, String> {
    let mut r = Reader(bytes);
    if r.take(MAGIC.len())? != MAGIC {
        return Err("bad magic".into());
    }
    let crc = r.u32()?;
    if crc32fast::hash(r.0) != crc {
        return Err("checksum mismatch".into());
    }
    let mut groups = VecMap::new();
    for _ in 0..r.u32()? {
        let mut key = Vec::new();
        for _ in 0..r.u32()? {
            key.push((r.string()?, r.string()?));
        }
        let push_time_s = r.f64()?;
        let failure_time_s = r.f64()?;
        let mut set = MetricSet::new();
        parse::parse(r.bytes()?, &parse::Options::text(), &mut set).map_err(|e| e.to_string())?;
        groups.insert(
            key,
            Group {
                set,
                push_time_s,
                failure_time_s,
            },
        );
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(store: &Store) -> String {
        let mut set = MetricSet::new();
        store.write_metrics(&mut set);
        let mut out = Vec::new();
        expo::encode_text(&set, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn grouping_key_decodes_base64_and_requires_job() {
        let k = grouping_key("job/a/path@base64/L3Zhci90bXA").unwrap();
        assert_eq!(k[1], ("path".into(), "/var/tmp".into()));
        let k = grouping_key("job/a/empty@base64/=").unwrap();
        assert_eq!(k[0], ("empty".into(), "".into()));
        assert!(grouping_key("job").is_err());
        assert!(grouping_key("instance/x/job/a").is_err());
        assert!(grouping_key("job/a/b@base64/!!").is_err());
        assert!(grouping_key("job/a/1bad/x").is_err());
        assert_eq!(decode_base64("Zm9vYg==").as_deref(), Some("foob"));
        assert_eq!(decode_base64("Zm9vYg").as_deref(), Some("foob"));
    }

    #[test]
    fn grouping_labels_override_pushed_labels_and_instance_is_added() {
        let mut s = Store::new();
        let k = grouping_key("job/j/a/1").unwrap();
        s.push(&k, Method::Replace, b"m{a=\"x\",b=\"y\"} 3\n", 10.0)
            .unwrap();
        let t = text(&s);
        assert!(
            t.contains("m{a=\"1\",b=\"y\",instance=\"\",job=\"j\"} 3\n"),
            "{t}"
        );
        assert!(
            t.contains("push_time_seconds{a=\"1\",instance=\"\",job=\"j\"} 10\n"),
            "{t}"
        );
        assert!(t.contains("push_failure_time_seconds{a=\"1\",instance=\"\",job=\"j\"} 0\n"));
    }

    #[test]
    fn post_replaces_only_pushed_families_and_put_replaces_all() {
        let mut s = Store::new();
        let k = grouping_key("job/j").unwrap();
        s.push(&k, Method::Replace, b"a 1\nb 2\n", 1.0).unwrap();
        s.push(&k, Method::Merge, b"b 3\n", 2.0).unwrap();
        let t = text(&s);
        assert!(
            t.contains("a{instance=\"\",job=\"j\"} 1\n")
                && t.contains("b{instance=\"\",job=\"j\"} 3\n"),
            "{t}"
        );
        s.push(&k, Method::Replace, b"c 4\n", 3.0).unwrap();
        let t = text(&s);
        assert!(!t.contains("\na{") && t.contains("\nc{"), "{t}");
        s.delete(&k);
        assert_eq!(text(&s), "");
    }

    #[test]
    fn other_help_is_accepted_and_pushed_push_times_are_dropped() {
        let mut s = Store::new();
        let a = grouping_key("job/a").unwrap();
        let b = grouping_key("job/b").unwrap();
        s.push(
            &a,
            Method::Replace,
            b"# HELP t one\n# TYPE t gauge\nt 1\n",
            1.0,
        )
        .unwrap();
        s.push(
            &b,
            Method::Replace,
            b"# HELP t two\n# TYPE t gauge\nt 2\npush_time_seconds 7\n",
            2.0,
        )
        .unwrap();
        let t = text(&s);
        assert!(
            t.contains("# HELP t one\n") && t.contains("t{instance=\"\",job=\"b\"} 2\n"),
            "{t}"
        );
        assert!(
            t.contains("push_time_seconds{instance=\"\",job=\"b\"} 2\n"),
            "{t}"
        );
        assert!(!t.contains(" 7\n"), "{t}");
    }

    #[test]
    fn bucket_bounds_are_normalized_like_the_pushgateway() {
        let mut s = Store::new();
        let k = grouping_key("job/j").unwrap();
        let body = b"# TYPE h histogram\nh_bucket{le=\"10.0\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n";
        s.push(&k, Method::Replace, body, 1.0).unwrap();
        let t = text(&s);
        assert!(
            t.contains("h_bucket{instance=\"\",job=\"j\",le=\"10\"} 1\n"),
            "{t}"
        );
        assert!(t.contains("le=\"+Inf\"} 2\n"), "{t}");
    }

    #[test]
    fn bad_pushes_change_nothing_but_the_failure_time() {
        let mut s = Store::new();
        let k = grouping_key("job/j").unwrap();
        s.push(&k, Method::Replace, b"# TYPE a gauge\na 1\n", 1.0)
            .unwrap();
        assert!(s.push(&k, Method::Replace, b"a 1 1000\n", 5.0).is_err());
        assert!(s.push(&k, Method::Replace, b"a{ 1\n", 6.0).is_err());
        let other = grouping_key("job/other").unwrap();
        assert!(s
            .push(&other, Method::Replace, b"# TYPE a counter\na 1\n", 7.0)
            .is_err());
        // Refused after parsing: the group is marked failed (created, as the Pushgateway does).
        assert_eq!(s.group_count(), 2);
        let t = text(&s);
        assert!(t.contains("a{instance=\"\",job=\"j\"} 1\n"), "{t}");
        assert!(!t.contains("a{instance=\"\",job=\"other\"}"), "{t}");
        // The parse error (at 6.0) is refused before the group is touched.
        assert!(
            t.contains("push_failure_time_seconds{instance=\"\",job=\"j\"} 5\n"),
            "{t}"
        );
        assert!(
            t.contains("push_time_seconds{instance=\"\",job=\"other\"} 0\n"),
            "{t}"
        );
    }

    #[test]
    fn groups_survive_a_reopen_and_damage_is_set_aside() {
        let dir = std::env::temp_dir().join(format!("promlet-push-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = Store::open(&dir).unwrap();
        let k = grouping_key("job/j/path@base64/L3g").unwrap();
        s.push(
            &k,
            Method::Replace,
            b"# HELP a h\n# TYPE a gauge\na 1\n",
            1.0,
        )
        .unwrap();
        let before = text(&s);
        assert_eq!(text(&Store::open(&dir).unwrap()), before);
        let path = dir.join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(Store::open(&dir).unwrap().group_count(), 0);
        assert!(path.with_extension("bad").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
