//! `remote_write:` decoded into typed [`RemoteWriteConfig`]s with positioned errors.
//!
//! Owns: the keys of Prometheus's remote_write config that promlet supports, their defaults,
//! validation, and promlet's one extension (`queue_config.max_samples_per_second`).
//! Must not touch: sockets, the TSDB.
//!
//! `https` URLs are refused until the outbound client gains TLS (the `tls` cargo feature).
//! `capacity` and the shard settings are accepted for compatibility and unused: the sender
//! reads from the TSDB instead of a memory queue, and one connection at a time is plenty for
//! one device.

use crate::config::yaml::Node;
use crate::config::{ConfigError, Decoder};
use crate::relabel::{self, RelabelConfig};
use crate::scrape::config::{get, secret, seq, uint, Auth};
use std::time::Duration;

/// `queue_config:`.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueConfig {
    /// Accepted, unused (the backlog lives in the TSDB).
    pub capacity: usize,
    /// Accepted, unused (one shard).
    pub max_shards: usize,
    pub max_samples_per_send: usize,
    pub batch_send_deadline: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub retry_on_http_429: bool,
    /// promlet extension: average samples per second the queue sends at most (0 = no limit),
    /// so a link that comes back after an outage is not flooded with the backlog.
    pub max_samples_per_second: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: 10_000,
            max_shards: 50,
            max_samples_per_send: 2000,
            batch_send_deadline: Duration::from_secs(5),
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
            retry_on_http_429: true,
            max_samples_per_second: DEFAULT_MAX_SAMPLES_PER_SECOND,
        }
    }
}

/// Default catch-up rate: a node's few hundred series at 15 s produce ~30 samples/s, so the
/// backlog of an hour's outage (~110k samples) drains in about a minute without saturating a
/// slow uplink (~8 KB/s at the measured ~4 bytes per sample on the wire during catch-up).
pub const DEFAULT_MAX_SAMPLES_PER_SECOND: usize = 2000;

/// One validated `remote_write` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteWriteConfig {
    pub url: String,
    /// `https://` (feature `tls`; [`RemoteWriteConfig::tls_config`] applies).
    pub https: bool,
    pub tls_config: crate::scrape::config::TlsConfig,
    /// Host (as written, for `Host:` and resolution), port and path+query of `url`.
    pub host: String,
    pub port: u16,
    pub path: String,
    pub name: String,
    pub remote_timeout: Duration,
    /// Extra request headers, sorted by name.
    pub headers: Vec<(String, String)>,
    pub auth: Auth,
    pub write_relabel_configs: Vec<RelabelConfig>,
    pub queue: QueueConfig,
}

impl RemoteWriteConfig {
    /// What keeps a queue's cursor across reloads: the same URL and name.
    pub fn identity(&self) -> (String, String) {
        (self.url.clone(), self.name.clone())
    }
}

const KEYS: &[&str] = &[
    "url",
    "name",
    "remote_timeout",
    "headers",
    "basic_auth",
    "authorization",
    "bearer_token",
    "bearer_token_file",
    "write_relabel_configs",
    "queue_config",
    "tls_config",
];

const QUEUE_KEYS: &[&str] = &[
    "capacity",
    "max_shards",
    "min_shards",
    "max_samples_per_send",
    "batch_send_deadline",
    "min_backoff",
    "max_backoff",
    "retry_on_http_429",
    "max_samples_per_second",
];

/// Headers the sender sets itself; Prometheus refuses them in `headers` too.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "content-encoding",
    "content-type",
    "content-length",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
    "x-prometheus-remote-write-version",
    "x-prometheus-remote-read-version",
    "transfer-encoding",
];

/// Splits `http(s)://host[:port][/path]` into (https, host, port, path); https needs the
/// `tls` feature.
pub fn split_url(url: &str) -> Result<(bool, String, u16, String), String> {
    let (https, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        if !cfg!(feature = "tls") {
            return Err(format!(
                "{url:?}: https needs a promlet built with the `tls` feature"
            ));
        }
        (true, r)
    } else {
        return Err(format!("{url:?} is not an http:// or https:// URL"));
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err(format!(
            "{url:?}: put credentials in basic_auth, not the URL"
        ));
    }
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => {
            let p = &authority[i + 1..];
            let port = p
                .parse::<u16>()
                .map_err(|_| format!("{url:?}: bad port {p:?}"))?;
            (&authority[..i], port)
        }
        _ => (authority, if https { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    Ok((https, host.to_string(), port, path))
}

/// Decodes the `remote_write:` sequence.
pub(crate) fn decode_list(
    d: &Decoder<'_>,
    node: &Node,
) -> Result<Vec<RemoteWriteConfig>, ConfigError> {
    let mut out: Vec<RemoteWriteConfig> = Vec::new();
    for item in seq(d, node, "remote_write")? {
        let rw = decode_one(d, item)?;
        if out.iter().any(|o| o.identity() == rw.identity()) {
            return Err(d.err(
                item.pos,
                format!("duplicate remote_write entry for url {:?}", rw.url),
            ));
        }
        if !rw.name.is_empty() && out.iter().any(|o| o.name == rw.name) {
            return Err(d.err(
                item.pos,
                format!("duplicate remote_write name {:?}", rw.name),
            ));
        }
        out.push(rw);
    }
    Ok(out)
}

fn positive(d: &Decoder<'_>, v: &Node, key: &str) -> Result<Duration, ConfigError> {
    let dur = d.duration(v, key)?;
    if dur.is_zero() {
        return Err(d.err(v.pos, format!("{key} must be greater than 0")));
    }
    Ok(dur)
}

fn decode_one(d: &Decoder<'_>, node: &Node) -> Result<RemoteWriteConfig, ConfigError> {
    let entries = d.entries(node, KEYS, "a remote_write config")?;
    let Some(url_node) = get(entries, d, "url") else {
        return Err(d.err(node.pos, "remote_write: url is required"));
    };
    let url = d.string(url_node, "url")?.to_string();
    let (https, host, port, path) = split_url(&url).map_err(|e| d.err(url_node.pos, e))?;
    let mut rw = RemoteWriteConfig {
        url,
        https,
        tls_config: Default::default(),
        host,
        port,
        path,
        name: String::new(),
        remote_timeout: Duration::from_secs(30),
        headers: Vec::new(),
        auth: Auth::None,
        write_relabel_configs: Vec::new(),
        queue: QueueConfig::default(),
    };
    let mut auth_key: Option<&str> = None;
    for (k, v) in entries {
        let key = d.key(k);
        let mut set_auth = |rw: &mut RemoteWriteConfig, a: Auth| {
            if let Some(prev) = auth_key {
                return Err(d.err(
                    k.pos,
                    format!("at most one of {prev} and {key} must be configured"),
                ));
            }
            auth_key = Some(key);
            rw.auth = a;
            Ok(())
        };
        match key {
            "url" => {}
            "name" => rw.name = d.string(v, key)?.to_string(),
            "tls_config" => {
                rw.tls_config = crate::scrape::config::decode_tls_config(d, v)?;
            }
            "remote_timeout" => rw.remote_timeout = positive(d, v, key)?,
            "headers" => {
                for (hk, hv) in d.entries(v, &[], "headers")? {
                    let name = d.key(hk);
                    let ok = !name.is_empty()
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                    if !ok {
                        return Err(d.err(hk.pos, format!("{name:?} is not a valid header name")));
                    }
                    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                        return Err(d.err(hk.pos, format!("{name} is a reserved header")));
                    }
                    let value = d.string(hv, "a header value")?;
                    if value.contains(['\r', '\n']) {
                        return Err(d.err(hv.pos, "header values cannot contain line breaks"));
                    }
                    rw.headers.push((name.to_string(), value.to_string()));
                }
                crate::sort::sort(&mut rw.headers);
            }
            "basic_auth" => set_auth(&mut rw, crate::scrape::config::decode_basic_auth(d, v)?)?,
            "authorization" => {
                set_auth(&mut rw, crate::scrape::config::decode_authorization(d, v)?)?
            }
            "bearer_token" | "bearer_token_file" => {
                if key == "bearer_token_file" && get(entries, d, "bearer_token").is_some() {
                    continue; // reported once, below, by secret()
                }
                let credentials = secret(
                    d,
                    get(entries, d, "bearer_token"),
                    get(entries, d, "bearer_token_file"),
                    "bearer_token",
                )?;
                set_auth(
                    &mut rw,
                    Auth::Header {
                        scheme: "Bearer".into(),
                        credentials,
                    },
                )?;
            }
            "write_relabel_configs" => {
                rw.write_relabel_configs = relabel::decode_list(d, v, "write_relabel_configs")?;
            }
            "queue_config" => rw.queue = decode_queue(d, v)?,
            _ => unreachable!("entries() rejects unknown keys"),
        }
    }
    Ok(rw)
}

fn decode_queue(d: &Decoder<'_>, node: &Node) -> Result<QueueConfig, ConfigError> {
    let mut q = QueueConfig::default();
    for (k, v) in d.entries(node, QUEUE_KEYS, "queue_config")? {
        let key = d.key(k);
        match key {
            "capacity" => q.capacity = uint(d, v, key)?,
            "max_shards" => q.max_shards = uint(d, v, key)?,
            "min_shards" => {
                uint(d, v, key)?;
            }
            "max_samples_per_send" => {
                q.max_samples_per_send = uint(d, v, key)?;
                if q.max_samples_per_send == 0 {
                    return Err(d.err(v.pos, "max_samples_per_send must be greater than 0"));
                }
            }
            "batch_send_deadline" => q.batch_send_deadline = positive(d, v, key)?,
            "min_backoff" => q.min_backoff = positive(d, v, key)?,
            "max_backoff" => q.max_backoff = positive(d, v, key)?,
            "retry_on_http_429" => q.retry_on_http_429 = d.boolean(v, key)?,
            "max_samples_per_second" => q.max_samples_per_second = uint(d, v, key)?,
            _ => unreachable!(),
        }
    }
    if q.min_backoff > q.max_backoff {
        return Err(d.err(node.pos, "min_backoff must not be greater than max_backoff"));
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse(y: &str) -> Result<Vec<RemoteWriteConfig>, ConfigError> {
        Config::parse(y, "t.yml").map(|c| c.remote_write)
    }

    #[test]
    fn decodes_every_supported_key() {
        let rw = parse(
            "remote_write:
  - url: http://central:9090/api/v1/write
    name: central
    remote_timeout: 10s
    headers: {X-Scope-OrgID: dev1}
    basic_auth: {username: u, password: p}
    write_relabel_configs:
      - source_labels: [__name__]
        regex: go_.*
        action: drop
    queue_config:
      capacity: 5
      max_shards: 1
      min_shards: 1
      max_samples_per_send: 500
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 10s
      retry_on_http_429: false
      max_samples_per_second: 300
",
        )
        .unwrap();
        let r = &rw[0];
        assert_eq!(
            (r.host.as_str(), r.port, r.path.as_str()),
            ("central", 9090, "/api/v1/write")
        );
        assert_eq!(r.name, "central");
        assert_eq!(r.remote_timeout, Duration::from_secs(10));
        assert_eq!(r.headers, vec![("X-Scope-OrgID".into(), "dev1".into())]);
        assert_eq!(
            r.auth,
            Auth::Basic {
                username: "u".into(),
                password: "p".into()
            }
        );
        assert_eq!(r.write_relabel_configs.len(), 1);
        assert_eq!(r.queue.max_samples_per_send, 500);
        assert_eq!(r.queue.batch_send_deadline, Duration::from_secs(1));
        assert_eq!(r.queue.min_backoff, Duration::from_millis(100));
        assert!(!r.queue.retry_on_http_429);
        assert_eq!(r.queue.max_samples_per_second, 300);
    }

    #[test]
    fn defaults_follow_prometheus() {
        let r = &parse("remote_write: [{url: 'http://h/w', bearer_token: t}]").unwrap()[0];
        assert_eq!(r.port, 80);
        assert_eq!(r.remote_timeout, Duration::from_secs(30));
        assert_eq!(r.queue.max_samples_per_send, 2000);
        assert_eq!(r.queue.batch_send_deadline, Duration::from_secs(5));
        assert_eq!(
            r.auth,
            Auth::Header {
                scheme: "Bearer".into(),
                credentials: "t".into()
            }
        );
    }

    #[test]
    fn bad_entries_are_positioned_errors() {
        let cases = [
            #[cfg(not(feature = "tls"))]
            ("remote_write:\n  - url: https://h/w\n", "2:10", "`tls` feature"),
            ("remote_write:\n  - url: ftp://h/w\n", "2:10", "not an http"),
            ("remote_write:\n  - name: x\n", "2:5", "url is required"),
            ("remote_write:\n  - url: http://h/\n    urll: 1\n", "3:5", "unknown key \"urll\""),
            (
                "remote_write:\n  - url: http://h/\n    queue_config: {max_shard: 1}\n",
                "3:20",
                "unknown key \"max_shard\"",
            ),
            (
                "remote_write:\n  - url: http://h/\n    headers: {Authorization: x}\n",
                "3:15",
                "reserved header",
            ),
            (
                "remote_write:\n  - url: http://h/\n    bearer_token: a\n    basic_auth: {username: u}\n",
                "4:5",
                "at most one of",
            ),
            ("remote_write:\n  - url: http://h:99999/\n", "2:10", "bad port"),
            (
                "remote_write:\n  - url: http://h/\n  - url: http://h/\n",
                "3:5",
                "duplicate remote_write",
            ),
        ];
        for (y, pos, want) in cases {
            let e = parse(y).unwrap_err().to_string();
            assert!(e.starts_with(&format!("t.yml:{pos}:")), "{y}: {e}");
            assert!(e.contains(want), "{y}: {e}");
        }
    }
}
