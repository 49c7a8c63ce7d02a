//! `--web.config.file`: the Prometheus exporter-toolkit web configuration (basic auth users
//! with bcrypt hashes, response headers, and `tls_server_config`), and the request gate that
//! applies it.
//!
//! Owns: decoding the file into [`WebConfig`] with `FILE:LINE:COL` errors (through the config
//! YAML layer), re-reading it when it changes, and [`Gate`]: the 401 for missing or wrong
//! credentials, the cache of successful bcrypt checks, the limit on failing checks (a cache
//! of recently failed pairs and a token bucket, 429 when empty) and the configured response
//! headers.
//! Must not touch: TLS handshakes (src/tls.rs builds rustls configs from [`TlsServerConfig`]).
//!
//! Like exporter-toolkit, the file is re-read while running: [`Gate`] stats it on every
//! request (one `statx`, cheap beside a request) and decodes it again when its size, mtime or
//! inode changed. If the changed file is invalid, requests get 500 until it is fixed (as
//! exporter-toolkit does): keeping the old users could keep a removed user working. Whether
//! the server speaks TLS is decided at start-up; certificate files are re-read when they
//! change (src/tls.rs).

use super::bcrypt;
use super::{Request, Response};
use crate::config::yaml::{self, Node, Value};
use crate::config::{ConfigError, Decoder};
use std::cell::RefCell;
use std::path::{Path, PathBuf};

const TOP_KEYS: &[&str] = &[
    "tls_server_config",
    "http_server_config",
    "basic_auth_users",
];
const TLS_KEYS: &[&str] = &[
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
];
const HTTP_KEYS: &[&str] = &["http2", "headers"];
/// The response headers exporter-toolkit lets a web config set.
const ALLOWED_HEADERS: &[&str] = &[
    "Content-Security-Policy",
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
];
/// Successful checks remembered: a handful of scrapers and browsers, each with one password.
const CACHE_ENTRIES: usize = 32;
/// Failed (user, password) pairs remembered, so a client retrying a stale password (a
/// scraper after a password change) gets its 401 without another bcrypt check.
const FAILED_ENTRIES: usize = 64;
/// Failing bcrypt checks allowed in a burst, and the pace they refill at: at most about 5 a
/// second, i.e. ~350 ms of bcrypt (cost 10) per second on the one work thread, however many
/// distinct wrong passwords arrive. Past that, unverified credentials get 429 until a token
/// refills; credentials that already passed (cached) are never throttled.
const FAILED_BURST: u32 = 10;
const FAILED_REFILL: std::time::Duration = std::time::Duration::from_millis(200);

/// Go's `tls.ClientAuthType` names, as exporter-toolkit spells them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    #[default]
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

/// TLS protocol versions; rustls speaks only 1.2 and 1.3, so 1.0 and 1.1 are refused when
/// the file is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// `tls_server_config`, with paths resolved against the web config file's directory.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsServerConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_auth: ClientAuth,
    pub client_ca_file: Option<PathBuf>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// TLS 1.2 suites by IANA name (Go's names); empty means rustls's defaults. TLS 1.3 suites
    /// are not configurable (as in Go).
    pub cipher_suites: Vec<String>,
}

/// One decoded web config file.
#[derive(Clone, Debug, Default)]
pub struct WebConfig {
    /// User name, parsed hash, and the hash text (part of the cache key).
    pub users: Vec<(String, bcrypt::Hash, String)>,
    /// Extra response headers (`http_server_config.headers`).
    pub headers: Vec<(String, String)>,
    pub tls: Option<TlsServerConfig>,
}

impl WebConfig {
    /// Reads and decodes `path`.
    pub fn load(path: &Path) -> Result<WebConfig, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(file.clone(), None, format!("cannot read web config: {e}"))
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        WebConfig::parse(&text, &file, dir)
    }

    /// Decodes `text`; relative paths are taken from `dir`.
    pub fn parse(text: &str, file: &str, dir: &Path) -> Result<WebConfig, ConfigError> {
        let d = Decoder { file };
        let root = yaml::parse(text).map_err(|e| d.err(e.pos, e.msg))?;
        let mut cfg = WebConfig::default();
        for (k, v) in d.entries(&root, TOP_KEYS, "the web config")? {
            match d.key(k) {
                "basic_auth_users" => {
                    for (user, hash) in d.entries(v, &[], "basic_auth_users")? {
                        let name = d.key(user);
                        if name.contains(':') {
                            return Err(d.err(user.pos, "user names cannot contain ':'"));
                        }
                        let text = d.string(hash, "a bcrypt hash")?;
                        let parsed = bcrypt::Hash::parse(text)
                            .map_err(|e| d.err(hash.pos, format!("user {name:?}: {e}")))?;
                        cfg.users.push((name.to_string(), parsed, text.to_string()));
                    }
                }
                "http_server_config" => {
                    for (k, v) in d.entries(v, HTTP_KEYS, "http_server_config")? {
                        match d.key(k) {
                            // HTTP/2 is not served; accepted so exporter-toolkit files load.
                            "http2" => {
                                d.boolean(v, "http2")?;
                            }
                            _ => cfg.headers = decode_headers(&d, v)?,
                        }
                    }
                }
                _ => cfg.tls = Some(decode_tls(&d, v, dir)?),
            }
        }
        Ok(cfg)
    }
}

fn decode_headers(d: &Decoder<'_>, node: &Node) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (k, v) in d.entries(node, &[], "headers")? {
        let name = d.key(k);
        let Some(canonical) = ALLOWED_HEADERS
            .iter()
            .find(|h| h.eq_ignore_ascii_case(name))
        else {
            return Err(d.err(
                k.pos,
                format!(
                    "header {name:?} cannot be set (allowed: {})",
                    ALLOWED_HEADERS.join(", ")
                ),
            ));
        };
        let value = d.string(v, "a header value")?;
        if value.contains(['\r', '\n']) {
            return Err(d.err(v.pos, "header values cannot contain line breaks"));
        }
        let ok = match *canonical {
            "X-Content-Type-Options" => value.eq_ignore_ascii_case("nosniff"),
            "X-Frame-Options" => {
                value.eq_ignore_ascii_case("deny") || value.eq_ignore_ascii_case("sameorigin")
            }
            _ => true,
        };
        if !ok {
            return Err(d.err(v.pos, format!("invalid value {value:?} for {canonical}")));
        }
        out.push((canonical.to_string(), value.to_string()));
    }
    Ok(out)
}

fn decode_version(d: &Decoder<'_>, v: &Node) -> Result<TlsVersion, ConfigError> {
    match d.string(v, "a TLS version")? {
        "TLS12" => Ok(TlsVersion::Tls12),
        "TLS13" => Ok(TlsVersion::Tls13),
        "TLS10" | "TLS11" => Err(d.err(
            v.pos,
            "TLS 1.0 and 1.1 are not supported (rustls speaks TLS12 and TLS13)",
        )),
        other => Err(d.err(
            v.pos,
            format!("unknown TLS version {other:?} (expected TLS12 or TLS13)"),
        )),
    }
}

fn decode_tls(d: &Decoder<'_>, node: &Node, dir: &Path) -> Result<TlsServerConfig, ConfigError> {
    let mut cert = None;
    let mut key = None;
    let mut cfg = TlsServerConfig {
        cert_file: PathBuf::new(),
        key_file: PathBuf::new(),
        client_auth: ClientAuth::NoClientCert,
        client_ca_file: None,
        min_version: TlsVersion::Tls12,
        max_version: TlsVersion::Tls13,
        cipher_suites: Vec::new(),
    };
    let path = |v: &Node, what: &str| -> Result<PathBuf, ConfigError> {
        let p = d.string(v, what)?;
        if p.is_empty() {
            return Err(d.err(v.pos, format!("{what} is empty")));
        }
        Ok(dir.join(p))
    };
    let mut auth_pos = None;
    for (k, v) in d.entries(node, TLS_KEYS, "tls_server_config")? {
        match d.key(k) {
            "cert_file" => cert = Some(path(v, "cert_file")?),
            "key_file" => key = Some(path(v, "key_file")?),
            "client_ca_file" => cfg.client_ca_file = Some(path(v, "client_ca_file")?),
            "client_auth_type" => {
                auth_pos = Some(v.pos);
                cfg.client_auth = match d.string(v, "client_auth_type")? {
                    "" | "NoClientCert" => ClientAuth::NoClientCert,
                    "RequestClientCert" => ClientAuth::RequestClientCert,
                    "RequireAnyClientCert" => ClientAuth::RequireAnyClientCert,
                    "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
                    "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
                    other => {
                        return Err(d.err(
                            v.pos,
                            format!("unknown client_auth_type {other:?} (expected NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert)"),
                        ))
                    }
                }
            }
            "min_version" => cfg.min_version = decode_version(d, v)?,
            "max_version" => cfg.max_version = decode_version(d, v)?,
            "cipher_suites" => {
                let Value::Seq(items) = &v.value else {
                    return Err(d.err(v.pos, "cipher_suites must be a list"));
                };
                for it in items {
                    cfg.cipher_suites
                        .push(d.string(it, "a cipher suite name")?.to_string());
                }
            }
            // rustls always picks by the server's order; accepted for compatibility.
            _ => {
                d.boolean(v, "prefer_server_cipher_suites")?;
            }
        }
    }
    let (Some(cert), Some(key)) = (cert, key) else {
        return Err(d.err(
            node.pos,
            "tls_server_config needs both cert_file and key_file",
        ));
    };
    cfg.cert_file = cert;
    cfg.key_file = key;
    if cfg.min_version > cfg.max_version {
        return Err(d.err(node.pos, "min_version is greater than max_version"));
    }
    let verifies = matches!(
        cfg.client_auth,
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
    );
    if verifies && cfg.client_ca_file.is_none() {
        return Err(d.err(
            auth_pos.unwrap_or(node.pos),
            "client_auth_type verifies client certificates: client_ca_file is required",
        ));
    }
    if !verifies && cfg.client_ca_file.is_some() {
        return Err(d.err(
            auth_pos.unwrap_or(node.pos),
            "client_ca_file is set but client_auth_type does not verify client certificates \
             (use VerifyClientCertIfGiven or RequireAndVerifyClientCert)",
        ));
    }
    Ok(cfg)
}

/// What identifies a version of a file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    mtime_ns: i128,
    ino: u64,
}

impl FileStamp {
    pub fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ino: m.ino(),
        })
    }
}

/// A successful check: the user, the hash it was checked against (so a changed hash drops
/// it) and the password that matched, compared in constant time. Wrong passwords never match
/// an entry, so they always pay for a full bcrypt check.
struct CacheEntry {
    user: String,
    hash: String,
    password: Vec<u8>,
}

struct GateState {
    /// The current decode of the file; Err (logged once per change) makes requests fail.
    config: Result<WebConfig, String>,
    stamp: Option<FileStamp>,
    cache: Vec<CacheEntry>,
    /// Keyed hashes of (user, hash text, password) that failed, oldest first. A hash, not the
    /// password: it only recognises a repeat.
    failed: Vec<u64>,
    /// Tokens for failing checks and when they were last counted.
    tokens: u32,
    refilled: Option<std::time::Instant>,
    /// bcrypt checks run (cache misses), for tests and self-metrics.
    checks: u64,
    /// Requests refused without a check: a remembered failure, or no token left (429).
    failed_cached: u64,
    throttled: u64,
}

impl GateState {
    fn new(config: Result<WebConfig, String>, stamp: Option<FileStamp>) -> GateState {
        GateState {
            config,
            stamp,
            cache: Vec::new(),
            failed: Vec::new(),
            tokens: FAILED_BURST,
            refilled: None,
            checks: 0,
            failed_cached: 0,
            throttled: 0,
        }
    }

    /// Adds the tokens earned since the last refill; true if one is available.
    fn token_available(&mut self, now: std::time::Instant) -> bool {
        let last = *self.refilled.get_or_insert(now);
        let earned = now.saturating_duration_since(last).as_millis() / FAILED_REFILL.as_millis();
        if earned > 0 {
            self.tokens = (self.tokens as u128 + earned).min(FAILED_BURST as u128) as u32;
            self.refilled = Some(last + FAILED_REFILL * earned as u32);
        }
        if self.tokens == FAILED_BURST {
            self.refilled = Some(now);
        }
        self.tokens > 0
    }
}

/// Applies the web config to every request. See the module docs.
pub struct Gate {
    path: PathBuf,
    state: RefCell<GateState>,
    /// Random per process: the failed-pair hashes cannot be precomputed.
    key: std::collections::hash_map::RandomState,
}

/// What the gate decided.
pub enum Verdict {
    /// Serve the request (and add the headers with [`Gate::finish`]).
    Pass,
    /// Answer this instead.
    Refuse(Response),
}

impl Gate {
    /// Loads `path`; an error here should stop start-up.
    pub fn open(path: &Path) -> Result<Gate, ConfigError> {
        let stamp = FileStamp::of(path);
        let config = WebConfig::load(path)?;
        Ok(Gate {
            path: path.to_path_buf(),
            state: RefCell::new(GateState::new(Ok(config), stamp)),
            key: std::collections::hash_map::RandomState::new(),
        })
    }

    /// The config in force (re-read first if the file changed); Err if the file is now invalid.
    pub fn current(&self) -> Result<WebConfig, String> {
        self.refresh();
        self.state.borrow().config.clone()
    }

    /// Number of bcrypt checks run so far (successful cached checks do not count).
    pub fn bcrypt_checks(&self) -> u64 {
        self.state.borrow().checks
    }

    /// Requests refused without a bcrypt check: (a remembered failed pair, throttled with 429).
    pub fn refused_unchecked(&self) -> (u64, u64) {
        let st = self.state.borrow();
        (st.failed_cached, st.throttled)
    }

    fn refresh(&self) {
        let stamp = FileStamp::of(&self.path);
        let mut st = self.state.borrow_mut();
        if stamp == st.stamp {
            return;
        }
        st.stamp = stamp;
        st.config = WebConfig::load(&self.path).map_err(|e| e.to_string());
        st.cache.clear();
        // A changed hash may make a remembered failure right.
        st.failed.clear();
        match &st.config {
            Ok(_) => crate::log::info(&format!("web config {} reloaded", self.path.display())),
            Err(e) => crate::log::error(&format!(
                "web config is invalid, answering 500 until it is fixed: {e}"
            )),
        }
    }

    /// Checks `req`'s credentials against the users (if any are configured), at `now` (for the
    /// limit on failing checks).
    pub fn check(&self, req: &Request, now: std::time::Instant) -> Verdict {
        self.refresh();
        let st = self.state.borrow();
        let users = match &st.config {
            Ok(c) => &c.users,
            Err(_) => {
                return Verdict::Refuse(Response::text(500, "Internal Server Error\n"));
            }
        };
        if users.is_empty() {
            return Verdict::Pass;
        }
        let unauthorized = || {
            Verdict::Refuse(
                Response::text(401, "Unauthorized\n").header("WWW-Authenticate", "Basic"),
            )
        };
        let Some((user, password)) = req.header("authorization").and_then(parse_basic) else {
            return unauthorized();
        };
        let known = users.iter().find(|(u, _, _)| *u == user);
        if let Some((_, _, text)) = known {
            let hit = st.cache.iter().any(|e| {
                e.user == user
                    && e.hash == *text
                    && bcrypt::constant_time_eq(&e.password, &password)
            });
            if hit {
                return Verdict::Pass;
            }
        }
        // An unknown user costs a check against a configured hash too, so response times
        // do not reveal which user names exist.
        let (hash, text) = match known {
            Some((_, h, t)) => (h.clone(), Some(t.clone())),
            None => (users[0].1.clone(), None),
        };
        drop(st);
        let pair = {
            use std::hash::BuildHasher;
            self.key
                .hash_one((&user, text.as_deref().unwrap_or(""), &password))
        };
        let mut st = self.state.borrow_mut();
        if st.failed.contains(&pair) {
            st.failed_cached += 1;
            return unauthorized();
        }
        if !st.token_available(now) {
            st.throttled += 1;
            return Verdict::Refuse(
                Response::text(429, "Too Many Requests: too many failed logins\n")
                    .header("Retry-After", "1"),
            );
        }
        drop(st);
        let ok = hash.verify(&password);
        let mut st = self.state.borrow_mut();
        st.checks += 1;
        match (ok, text) {
            (true, Some(text)) => {
                if st.cache.len() >= CACHE_ENTRIES {
                    st.cache.remove(0);
                }
                st.cache.push(CacheEntry {
                    user,
                    hash: text,
                    password,
                });
                Verdict::Pass
            }
            _ => {
                st.tokens -= 1;
                if st.failed.len() >= FAILED_ENTRIES {
                    st.failed.remove(0);
                }
                st.failed.push(pair);
                unauthorized()
            }
        }
    }

    /// Adds the configured response headers.
    pub fn finish(&self, mut resp: Response) -> Response {
        if let Ok(c) = &self.state.borrow().config {
            for (n, v) in &c.headers {
                if resp.get_header(n).is_none() {
                    resp.headers.push((n.clone(), v.clone()));
                }
            }
        }
        resp
    }
}

/// `Basic base64(user:password)` → (user, password); None if malformed.
pub fn parse_basic(header: &str) -> Option<(String, Vec<u8>)> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = decode_base64_std(rest.trim())?;
    let colon = raw.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(raw[..colon].to_vec()).ok()?;
    Some((user, raw[colon + 1..].to_vec()))
}

/// RFC 4648 base64 with optional padding.
fn decode_base64_std(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // A lone sextet cannot encode a byte.
    (bits < 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2b$04$abcdefghijklmnopqrstuubyCG3zY1GIXMyxfivm.ClDiInHzxjiq"; // ""
    const HASH_PW: &str = "$2y$10$saltsaltsaltsaltsaltsu2fE6IJ7L1HhjdQmAKB.R6F1r9A9qZ9e"; // "password"

    fn parse(text: &str) -> Result<WebConfig, String> {
        WebConfig::parse(text, "web.yml", Path::new("/etc/promlet")).map_err(|e| e.to_string())
    }

    fn req(auth: Option<&str>) -> Request {
        Request {
            method: "GET".into(),
            path: "/metrics".into(),
            headers: auth
                .map(|a| vec![("authorization".to_string(), a.to_string())])
                .unwrap_or_default(),
            ..Request::default()
        }
    }

    fn basic(user: &str, pw: &str) -> String {
        let raw = format!("{user}:{pw}");
        let mut out = String::from("Basic ");
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for chunk in raw.as_bytes().chunks(3) {
            let n =
                chunk.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b)) << (8 * (3 - chunk.len()));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn full_file_decodes_with_paths_relative_to_its_directory() {
        let c = parse(
            &("tls_server_config:\n  cert_file: a.crt\n  key_file: /k/a.key\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  \
             min_version: TLS13\nhttp_server_config:\n  headers:\n    \
             x-frame-options: deny\nbasic_auth_users:\n  alice: "
                .to_string()
                + HASH
                + "\n"),
        )
        .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert_file, Path::new("/etc/promlet/a.crt"));
        assert_eq!(tls.key_file, Path::new("/k/a.key"));
        assert_eq!(tls.client_auth, ClientAuth::RequireAndVerifyClientCert);
        assert_eq!(tls.min_version, TlsVersion::Tls13);
        assert_eq!(c.headers, vec![("X-Frame-Options".into(), "deny".into())]);
        assert_eq!(c.users[0].0, "alice");
    }

    #[test]
    fn errors_carry_file_line_and_column() {
        assert_eq!(
            parse("basic_auth_users:\n  bob: notahash\n").unwrap_err(),
            "web.yml:2:8: user \"bob\": bcrypt hash must be 60 characters ($2b$NN$ + 53), got 8"
        );
        assert!(parse("basic_auth_user: {}\n")
            .unwrap_err()
            .starts_with("web.yml:1:1: unknown key \"basic_auth_user\""));
        assert!(
            parse("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS11\n")
                .unwrap_err()
                .starts_with("web.yml:4:16: TLS 1.0 and 1.1")
        );
        assert!(parse("tls_server_config:\n  cert_file: a\n")
            .unwrap_err()
            .contains("needs both cert_file and key_file"));
        assert!(parse(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n"
        )
        .unwrap_err()
        .contains("client_ca_file is required"));
        assert!(parse("http_server_config:\n  headers:\n    Server: x\n")
            .unwrap_err()
            .contains("cannot be set"));
    }

    #[test]
    fn basic_header_parsing_rejects_malformed_values() {
        assert_eq!(
            parse_basic(&basic("alice", "p:w")),
            Some(("alice".into(), b"p:w".to_vec()))
        );
        assert_eq!(
            parse_basic("basic YWxpY2U6"),
            Some(("alice".into(), vec![]))
        );
        assert_eq!(parse_basic("Bearer YWxpY2U6"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(parse_basic("Basic YWxpY2U"), None); // "alice", no colon
        assert_eq!(parse_basic("Basic"), None);
        assert_eq!(parse_basic("Basic Y"), None);
    }

    fn gate(text: &str) -> (Gate, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "promlet-webconfig-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("web.yml");
        std::fs::write(&p, text).unwrap();
        (Gate::open(&p).unwrap(), p)
    }

    fn status(g: &Gate, auth: Option<&str>) -> u16 {
        status_at(g, auth, std::time::Instant::now())
    }

    fn status_at(g: &Gate, auth: Option<&str>, now: std::time::Instant) -> u16 {
        match g.check(&req(auth), now) {
            Verdict::Pass => 200,
            Verdict::Refuse(r) => {
                if r.status == 401 {
                    assert_eq!(r.get_header("www-authenticate"), Some("Basic"));
                }
                r.status
            }
        }
    }

    #[test]
    fn gate_caches_successes_but_never_wrong_passwords() {
        let text = format!("basic_auth_users:\n  alice: '{HASH_PW}'\n  eve: '{HASH}'\n");
        let (g, _) = gate(&text);
        assert_eq!(status(&g, None), 401);
        assert_eq!(status(&g, Some("Basic !")), 401);
        assert_eq!(g.bcrypt_checks(), 0);
        assert_eq!(status(&g, Some(&basic("alice", "password"))), 200);
        assert_eq!(status(&g, Some(&basic("alice", "password"))), 200);
        assert_eq!(
            g.bcrypt_checks(),
            1,
            "the second success came from the cache"
        );
        assert_eq!(status(&g, Some(&basic("alice", "passwordx"))), 401);
        assert_eq!(status(&g, Some(&basic("alice", "passwor"))), 401);
        assert_eq!(g.bcrypt_checks(), 3, "wrong passwords are always checked");
        // Another user's cached password does not open this user.
        assert_eq!(status(&g, Some(&basic("eve", "password"))), 401);
        assert_eq!(status(&g, Some(&basic("mallory", "password"))), 401);
        assert_eq!(g.bcrypt_checks(), 5, "unknown users cost a check too");
        assert_eq!(status(&g, Some(&basic("eve", ""))), 200);
    }

    /// A repeated wrong password is refused from memory; a stream of distinct wrong ones gets
    /// a burst of bcrypt checks, then 429 at the refill pace (about 5 checks a second),
    /// while a cached right password keeps passing; a changed file forgets the failures.
    #[test]
    fn failing_checks_are_remembered_and_throttled() {
        let text = format!("basic_auth_users:\n  alice: '{HASH}'\n  bob: '{HASH}'\n");
        let (g, p) = gate(&text);
        let t0 = std::time::Instant::now();
        assert_eq!(status_at(&g, Some(&basic("alice", "")), t0), 200);
        assert_eq!(status_at(&g, Some(&basic("alice", "old")), t0), 401);
        for _ in 0..20 {
            assert_eq!(status_at(&g, Some(&basic("alice", "old")), t0), 401);
        }
        assert_eq!(
            g.bcrypt_checks(),
            2,
            "a repeated failure is not checked again"
        );
        assert_eq!(g.refused_unchecked(), (20, 0));
        // An attacker's distinct guesses: the rest of the burst, then 429.
        let mut codes = Vec::new();
        for i in 0..(FAILED_BURST + 5) {
            codes.push(status_at(&g, Some(&basic("bob", &format!("guess{i}"))), t0));
        }
        let checked = codes.iter().filter(|&&c| c == 401).count();
        assert_eq!(checked, FAILED_BURST as usize - 1);
        assert!(codes[checked..].iter().all(|&c| c == 429), "{codes:?}");
        assert_eq!(g.bcrypt_checks(), 2 + checked as u64);
        // Cached credentials are never throttled; bob's right password must wait a token.
        assert_eq!(status_at(&g, Some(&basic("alice", "")), t0), 200);
        assert_eq!(status_at(&g, Some(&basic("bob", "")), t0), 429);
        // One second later: five tokens.
        let t1 = t0 + std::time::Duration::from_secs(1);
        assert_eq!(status_at(&g, Some(&basic("bob", "")), t1), 200);
        let later: Vec<u16> = (0..6)
            .map(|i| status_at(&g, Some(&basic("bob", &format!("again{i}"))), t1))
            .collect();
        assert_eq!(later, vec![401, 401, 401, 401, 401, 429]);
        // A changed file (alice's hash now matches "password") forgets remembered failures.
        let t2 = t1 + std::time::Duration::from_secs(60);
        assert_eq!(status_at(&g, Some(&basic("alice", "password")), t2), 401);
        let n = g.bcrypt_checks();
        assert_eq!(status_at(&g, Some(&basic("alice", "password")), t2), 401);
        assert_eq!(g.bcrypt_checks(), n);
        std::fs::write(&p, format!("basic_auth_users:\n  alice: '{HASH_PW}'\n")).unwrap();
        assert_eq!(status_at(&g, Some(&basic("alice", "password")), t2), 200);
    }

    #[test]
    fn gate_rereads_a_changed_file_and_fails_closed_on_errors() {
        let text = format!("basic_auth_users:\n  eve: '{HASH}'\n");
        let (g, p) = gate(&text);
        assert_eq!(status(&g, Some(&basic("eve", ""))), 200);
        std::fs::write(&p, "basic_auth_users:\n  eve: 'broken'\n").unwrap();
        assert_eq!(status(&g, Some(&basic("eve", ""))), 500);
        std::fs::write(
            &p,
            "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n",
        )
        .unwrap();
        assert_eq!(status(&g, None), 200, "no users: no auth");
        let r = g.finish(Response::text(200, "x"));
        assert_eq!(r.get_header("x-content-type-options"), Some("nosniff"));
    }
}
