//! Silences: Alertmanager's `/api/v2/silences` subset, persisted, applied to local routing.
//!
//! Owns: [`SilenceStore`] (create, update, expire, match, persist to `<dir>/silences.json`
//! by write-temp-then-rename), the JSON of `postableSilence`/`gettableSilence`, a small JSON
//! reader for request bodies, RFC 3339 parsing, and [`SilenceStore::handle`], which answers
//! `POST /api/v2/silences`, `GET /api/v2/silences`, `GET` and `DELETE /api/v2/silence/<id>`.
//! Must not touch: sockets (the agent mounts `handle` on its router), the clock (`now` is
//! wall-clock ms passed in).
//!
//! Writes are refused (403) unless the agent runs with `--web.enable-silences`, following the
//! convention that state-changing endpoints are off unless enabled (DESIGN.md §9); reads are
//! always served. Expired silences are kept for a day, then forgotten.

use super::rfc3339;
use crate::http::json::{Json, Value};
use crate::model::{Labels, MatchOp, Matcher};
use std::path::PathBuf;

/// How long an expired silence stays listed (Alertmanager's default `--data.retention` is 120h;
/// a device keeps less).
pub const EXPIRED_RETENTION_MS: i64 = 24 * 3600 * 1000;
/// Request bodies and the store are bounded: at most this many silences.
pub const MAX_SILENCES: usize = 1000;

#[derive(Clone, Debug, PartialEq)]
pub struct SilenceMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    pub is_equal: bool,
}

#[derive(Clone, Debug)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<SilenceMatcher>,
    compiled: Vec<Matcher>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub updated_at: i64,
    pub created_by: String,
    pub comment: String,
}

impl Silence {
    pub fn state(&self, now: i64) -> &'static str {
        if now < self.starts_at {
            "pending"
        } else if now < self.ends_at {
            "active"
        } else {
            "expired"
        }
    }
}

/// See the module doc.
#[derive(Default)]
pub struct SilenceStore {
    silences: Vec<Silence>,
    path: Option<PathBuf>,
    next: u64,
}

/// An HTTP answer: status and JSON (or text) body.
pub type Answer = (u16, Vec<u8>);

impl SilenceStore {
    /// Loads `<dir>/silences.json` (None: memory only). A damaged file is renamed aside
    /// (`.bad`) and logged; the store starts empty rather than refusing to start.
    pub fn open(dir: Option<PathBuf>) -> SilenceStore {
        let mut s = SilenceStore {
            path: dir.map(|d| d.join("silences.json")),
            ..Default::default()
        };
        let Some(path) = s.path.clone() else { return s };
        let Ok(text) = std::fs::read_to_string(&path) else {
            return s;
        };
        match Value::parse(&text).and_then(|v| match v {
            Value::Arr(items) => items.iter().map(silence_from_json).collect(),
            _ => Err("not an array".into()),
        }) {
            Ok(list) => s.silences = list,
            Err(e) => {
                crate::log::warn(&format!("{}: {e}; set aside as .bad", path.display()));
                let _ = std::fs::rename(&path, path.with_extension("bad"));
            }
        }
        s.next = s.silences.len() as u64;
        s
    }

    pub fn list(&self) -> &[Silence] {
        &self.silences
    }

    /// Whether an active silence mutes `labels`.
    pub fn is_silenced(&self, labels: &Labels, now: i64) -> bool {
        self.silences.iter().any(|s| {
            s.state(now) == "active"
                && s.compiled
                    .iter()
                    .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
        })
    }

    /// The REST subset; `writable` is `--web.enable-silences`.
    pub fn handle(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
        now: i64,
        writable: bool,
    ) -> Answer {
        self.silences
            .retain(|s| s.ends_at + EXPIRED_RETENTION_MS > now);
        let write = matches!(method, "POST" | "DELETE");
        if write && !writable {
            return text(
                403,
                "silences are read-only: start promlet with --web.enable-silences",
            );
        }
        match (method, path) {
            ("GET", "/api/v2/silences") => {
                let mut j = Json::new();
                j.begin_array();
                for s in &self.silences {
                    silence_json(&mut j, s, now);
                }
                j.end_array();
                (200, j.into_bytes())
            }
            ("POST", "/api/v2/silences") => match self.post(body, now) {
                Ok(id) => {
                    let mut j = Json::new();
                    j.begin_object().key("silenceID").string(&id).end_object();
                    (200, j.into_bytes())
                }
                Err(e) => text(400, &e),
            },
            (_, p) if p.starts_with("/api/v2/silence/") => {
                let id = &p["/api/v2/silence/".len()..];
                let Some(i) = self.silences.iter().position(|s| s.id == id) else {
                    return text(404, &format!("silence {id} not found"));
                };
                match method {
                    "GET" => {
                        let mut j = Json::new();
                        silence_json(&mut j, &self.silences[i], now);
                        (200, j.into_bytes())
                    }
                    "DELETE" => {
                        let s = &mut self.silences[i];
                        if s.state(now) == "expired" {
                            return text(500, &format!("silence {id} already expired"));
                        }
                        s.starts_at = s.starts_at.min(now);
                        s.ends_at = now;
                        s.updated_at = now;
                        self.save();
                        (200, Vec::new())
                    }
                    _ => text(405, "method not allowed"),
                }
            }
            _ => text(404, "not found"),
        }
    }

    fn post(&mut self, body: &[u8], now: i64) -> Result<String, String> {
        let text = std::str::from_utf8(body).map_err(|_| "body is not UTF-8".to_string())?;
        let v = Value::parse(text).map_err(|e| format!("JSON: {e}"))?;
        let mut s = silence_from_json(&v)?;
        if s.ends_at <= s.starts_at {
            return Err("endsAt must be after startsAt".into());
        }
        if s.ends_at <= now {
            return Err("endsAt is in the past".into());
        }
        s.updated_at = now;
        if !s.id.is_empty() {
            let Some(old) = self.silences.iter_mut().find(|o| o.id == s.id) else {
                return Err(format!("silence {} not found", s.id));
            };
            *old = s.clone();
        } else {
            if self.silences.len() >= MAX_SILENCES {
                return Err(format!("too many silences (limit {MAX_SILENCES})"));
            }
            self.next += 1;
            s.id = new_id(now, self.next);
            self.silences.push(s.clone());
        }
        self.save();
        Ok(s.id)
    }

    fn save(&mut self) {
        let Some(path) = &self.path else { return };
        let mut j = Json::new();
        j.begin_array();
        for s in &self.silences {
            silence_json(&mut j, s, s.updated_at);
        }
        j.end_array();
        let tmp = path.with_extension("tmp");
        let r = std::fs::create_dir_all(path.parent().unwrap_or(path))
            .and_then(|_| std::fs::write(&tmp, j.into_bytes()))
            .and_then(|_| std::fs::rename(&tmp, path));
        if let Err(e) = r {
            crate::log::warn(&format!("{}: {e}; silences kept in memory", path.display()));
        }
    }
}

fn text(status: u16, s: &str) -> Answer {
    (status, s.as_bytes().to_vec())
}

/// A UUID-shaped id (version 4 layout) from the time and a counter: unique per store.
fn new_id(now: i64, n: u64) -> String {
    let mut h = super::dispatch::fingerprint(&Labels::from_pairs([
        ("t", now.to_string()),
        ("n", n.to_string()),
        ("p", std::process::id().to_string()),
    ]));
    let a = h;
    h = h.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15;
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        h >> 52,
        h & 0xffff_ffff_ffff
    )
}

fn silence_json(j: &mut Json, s: &Silence, now: i64) {
    j.begin_object();
    j.key("id").string(&s.id);
    j.key("status")
        .begin_object()
        .key("state")
        .string(s.state(now))
        .end_object();
    j.key("updatedAt").string(&rfc3339(s.updated_at));
    j.key("comment").string(&s.comment);
    j.key("createdBy").string(&s.created_by);
    j.key("endsAt").string(&rfc3339(s.ends_at));
    j.key("matchers").begin_array();
    for m in &s.matchers {
        j.begin_object();
        j.key("isEqual")
            .raw(if m.is_equal { "true" } else { "false" });
        j.key("isRegex")
            .raw(if m.is_regex { "true" } else { "false" });
        j.key("name").string(&m.name);
        j.key("value").string(&m.value);
        j.end_object();
    }
    j.end_array();
    j.key("startsAt").string(&rfc3339(s.starts_at));
    j.end_object();
}

fn silence_from_json(o: &Value) -> Result<Silence, String> {
    let Value::Obj(_) = o else {
        return Err("a silence must be a JSON object".into());
    };
    let s = |k: &str| -> Result<String, String> {
        match o.get(k) {
            Some(Value::Str(s)) => Ok(s.clone()),
            None | Some(Value::Null) => Ok(String::new()),
            _ => Err(format!("{k} must be a string")),
        }
    };
    let time = |k: &str| -> Result<i64, String> {
        parse_rfc3339(&s(k)?).ok_or_else(|| format!("{k} must be an RFC 3339 time"))
    };
    let Some(Value::Arr(ms)) = o.get("matchers") else {
        return Err("matchers (an array) is required".into());
    };
    let mut matchers = Vec::new();
    let mut compiled = Vec::new();
    for m in ms {
        let mo = m;
        let Value::Obj(_) = mo else {
            return Err("each matcher must be an object".into());
        };
        let field = |k: &str| match mo.get(k) {
            Some(Value::Str(s)) => Ok(s.clone()),
            _ => Err(format!("matcher {k} must be a string")),
        };
        let flag = |k: &str, default: bool| match mo.get(k) {
            Some(Value::Bool(b)) => Ok(*b),
            None => Ok(default),
            _ => Err(format!("matcher {k} must be true or false")),
        };
        let sm = SilenceMatcher {
            name: field("name")?,
            value: field("value")?,
            is_regex: flag("isRegex", false)?,
            is_equal: flag("isEqual", true)?,
        };
        let op = match (sm.is_regex, sm.is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        };
        compiled.push(
            Matcher::new(op, sm.name.clone(), sm.value.clone())
                .map_err(|e| format!("matcher {}: {e}", sm.name))?,
        );
        matchers.push(sm);
    }
    if matchers.is_empty() {
        return Err("a silence needs at least one matcher".into());
    }
    if compiled.iter().all(|m| m.matches("")) {
        return Err("at least one matcher must not match the empty string".into());
    }
    Ok(Silence {
        id: s("id")?,
        matchers,
        compiled,
        starts_at: time("startsAt")?,
        ends_at: time("endsAt")?,
        updated_at: parse_rfc3339(&s("updatedAt")?).unwrap_or(0),
        created_by: s("createdBy")?,
        comment: s("comment")?,
    })
}

/// `2026-11-22T01:02:03.456Z` or with an offset (`+01:00`) to ms since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut ms = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let digits = &frac[..n];
        ms = format!("{:0<3}", &digits[..n.min(3)]).parse::<i64>().ok()?;
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(&rest[..1], "+" | "-") && &rest[3..4] == ":" => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (rest[1..3].parse::<i64>().ok()? * 60 + rest[4..6].parse::<i64>().ok()?)
        }
        _ => return None,
    };
    let days = crate::log::days_from_civil(y, mo, d);
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) - offset * 60) * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_309_323_000; // 2026-11-22T01:02:03Z

    fn body(start: &str, end: &str) -> Vec<u8> {
        format!(
            r#"{{"matchers":[{{"name":"alertname","value":"Disk.*","isRegex":true}},{{"name":"host","value":"h1","isRegex":false,"isEqual":true}}],
               "startsAt":"{start}","endsAt":"{end}","createdBy":"me","comment":"maintenance \u00e9"}}"#
        )
        .into_bytes()
    }

    #[test]
    fn rfc3339_round_trips_and_takes_offsets() {
        assert_eq!(parse_rfc3339("2026-11-22T01:02:03.456Z"), Some(T0 + 456));
        assert_eq!(parse_rfc3339("2026-11-22T02:02:03+01:00"), Some(T0));
        assert_eq!(
            parse_rfc3339("2026-11-22T01:02:03.123456789Z"),
            Some(T0 + 123)
        );
        assert_eq!(
            parse_rfc3339(&rfc3339(951_782_400_123)),
            Some(951_782_400_123)
        );
        assert_eq!(parse_rfc3339("2026-13-22T01:02:03Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn create_list_get_expire_and_match() {
        let mut s = SilenceStore::open(None);
        let (st, b) = s.handle(
            "POST",
            "/api/v2/silences",
            &body("2026-11-22T01:00:00Z", "2026-11-22T03:00:00Z"),
            T0,
            true,
        );
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));
        let o = Value::parse(std::str::from_utf8(&b).unwrap()).unwrap();
        let Some(Value::Str(id)) = o.get("silenceID") else {
            panic!()
        };
        let hit = Labels::from_pairs([("alertname", "DiskFull"), ("host", "h1")]);
        let miss = Labels::from_pairs([("alertname", "DiskFull"), ("host", "h2")]);
        assert!(s.is_silenced(&hit, T0));
        assert!(!s.is_silenced(&miss, T0));
        let (st, b) = s.handle("GET", "/api/v2/silences", b"", T0, false);
        let list = String::from_utf8(b).unwrap();
        assert_eq!(st, 200);
        assert!(list.contains(r#""status":{"state":"active"}"#), "{list}");
        assert!(list.contains(r#""comment":"maintenance é""#), "{list}");
        let (st, _) = s.handle("GET", &format!("/api/v2/silence/{id}"), b"", T0, false);
        assert_eq!(st, 200);
        assert_eq!(
            s.handle("DELETE", &format!("/api/v2/silence/{id}"), b"", T0, false)
                .0,
            403
        );
        assert_eq!(
            s.handle(
                "DELETE",
                &format!("/api/v2/silence/{id}"),
                b"",
                T0 + 1,
                true
            )
            .0,
            200
        );
        assert!(!s.is_silenced(&hit, T0 + 2));
        let (_, b) = s.handle("GET", &format!("/api/v2/silence/{id}"), b"", T0 + 2, false);
        assert!(String::from_utf8(b)
            .unwrap()
            .contains(r#""state":"expired""#));
        assert_eq!(
            s.handle("GET", "/api/v2/silence/nope", b"", T0, false).0,
            404
        );
    }

    #[test]
    fn bad_bodies_are_400_with_a_reason() {
        let mut s = SilenceStore::open(None);
        for (b, why) in [
            (&b"{"[..], "JSON"),
            (br#"{"matchers":[],"startsAt":"2026-11-22T01:00:00Z","endsAt":"2026-11-22T03:00:00Z"}"#, "at least one"),
            (br#"{"matchers":[{"name":"a","value":".*","isRegex":true}],"startsAt":"2026-11-22T01:00:00Z","endsAt":"2026-11-22T03:00:00Z"}"#, "empty string"),
            (&body("2026-11-22T03:00:00Z", "2026-11-22T01:00:00Z")[..], "after startsAt"),
            (&body("x", "2026-11-22T01:00:00Z")[..], "RFC 3339"),
            (&[b'['; 100][..], "deep"),
        ] {
            let (st, msg) = s.handle("POST", "/api/v2/silences", b, T0, true);
            let msg = String::from_utf8(msg).unwrap();
            assert_eq!(st, 400, "{msg}");
            assert!(msg.contains(why), "{why} not in {msg}");
        }
        assert!(s.list().is_empty());
    }

    #[test]
    fn silences_survive_a_restart_and_a_damaged_file_is_set_aside() {
        let dir = std::env::temp_dir().join(format!("promlet-silences-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut s = SilenceStore::open(Some(dir.clone()));
        s.handle(
            "POST",
            "/api/v2/silences",
            &body("2026-11-22T01:00:00Z", "2026-11-22T03:00:00Z"),
            T0,
            true,
        );
        let id = s.list()[0].id.clone();
        let s = SilenceStore::open(Some(dir.clone()));
        assert_eq!(s.list().len(), 1);
        assert_eq!(s.list()[0].id, id);
        assert!(s.is_silenced(
            &Labels::from_pairs([("alertname", "Disk"), ("host", "h1")]),
            T0
        ));
        std::fs::write(dir.join("silences.json"), "[{garbage").unwrap();
        let s = SilenceStore::open(Some(dir.clone()));
        assert!(s.list().is_empty());
        assert!(dir.join("silences.bad").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
