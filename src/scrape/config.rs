//! `scrape_configs:` decoded into typed [`ScrapeConfig`]s with positioned errors.
//!
//! Owns: the keys Prometheus's scrape_config has that promlet supports, their defaults
//! (inherited from `global:`), and validation. Unknown keys are errors.
//! Must not touch: sockets, files other than the config (file_sd files are read by
//! discovery, not here).
//!
//! `scheme: https` and `tls_config` need a build with the `tls` cargo feature; without it they
//! are refused when the config is loaded. Kubernetes, Consul and the other cloud discoveries are not offered: they belong on
//! the central Prometheus, which sees the cluster; a device scrapes what runs on it.

use crate::config::yaml::{Node, Value};
use crate::config::{is_label_name, ConfigError, Decoder, Global};
use crate::relabel::{self, RelabelConfig};
use std::time::Duration;

/// HTTP credentials for a scrape.
#[derive(Clone, Debug, PartialEq)]
pub enum Auth {
    None,
    Basic {
        username: String,
        password: String,
    },
    /// `authorization: {type, credentials}`; `type` defaults to `Bearer`.
    Header {
        scheme: String,
        credentials: String,
    },
}

/// `tls_config` as in Prometheus (the subset promlet supports). Relative paths are taken from
/// the config file's directory. Used only with `scheme: https`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// Trust roots; default: the system bundle (src/tls.rs, `SYSTEM_CA_BUNDLES`).
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate and key, for targets that require one.
    pub cert_file: Option<std::path::PathBuf>,
    pub key_file: Option<std::path::PathBuf>,
    /// SNI and the name the certificate must match; default: the target's host.
    pub server_name: Option<String>,
    /// Accept any certificate (the handshake's signatures are still checked).
    pub insecure_skip_verify: bool,
}

/// One `static_configs` entry.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct StaticConfig {
    pub targets: Vec<String>,
    pub labels: Vec<(String, String)>,
}

/// One `file_sd_configs` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct FileSdConfig {
    pub files: Vec<String>,
    pub refresh_interval: Duration,
}

/// DNS record type for `dns_sd_configs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsType {
    A,
    Aaaa,
    Srv,
}

/// One `dns_sd_configs` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct DnsSdConfig {
    pub names: Vec<String>,
    pub typ: DnsType,
    /// Required for A and AAAA.
    pub port: u16,
    pub refresh_interval: Duration,
}

/// One validated `scrape_configs` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct ScrapeConfig {
    pub job_name: String,
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
    pub metrics_path: String,
    pub scheme: String,
    pub params: Vec<(String, Vec<String>)>,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub auth: Auth,
    pub tls_config: TlsConfig,
    pub static_configs: Vec<StaticConfig>,
    pub file_sd_configs: Vec<FileSdConfig>,
    pub dns_sd_configs: Vec<DnsSdConfig>,
    pub relabel_configs: Vec<RelabelConfig>,
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// 0 = no limit.
    pub sample_limit: usize,
    pub label_limit: usize,
    pub body_size_limit: usize,
}

const KEYS: &[&str] = &[
    "job_name",
    "scrape_interval",
    "scrape_timeout",
    "metrics_path",
    "scheme",
    "params",
    "honor_labels",
    "honor_timestamps",
    "basic_auth",
    "authorization",
    "tls_config",
    "static_configs",
    "file_sd_configs",
    "dns_sd_configs",
    "relabel_configs",
    "metric_relabel_configs",
    "sample_limit",
    "label_limit",
    "body_size_limit",
];

/// Decodes the `scrape_configs:` sequence. `global` must already be decoded.
pub(crate) fn decode_list(
    d: &Decoder<'_>,
    node: &Node,
    global: &Global,
) -> Result<Vec<ScrapeConfig>, ConfigError> {
    let items: &[Node] = match &node.value {
        Value::Seq(items) => items,
        _ if node.is_null() => &[],
        _ => {
            return Err(d.err(
                node.pos,
                format!("scrape_configs must be a sequence, not a {}", node.kind()),
            ))
        }
    };
    let mut out: Vec<ScrapeConfig> = Vec::new();
    for item in items {
        let sc = decode_one(d, item, global)?;
        if out.iter().any(|o| o.job_name == sc.job_name) {
            return Err(d.err(
                item.pos,
                format!(
                    "found multiple scrape configs with job name {:?}",
                    sc.job_name
                ),
            ));
        }
        out.push(sc);
    }
    Ok(out)
}

pub(crate) fn seq<'n>(
    d: &Decoder<'_>,
    node: &'n Node,
    what: &str,
) -> Result<&'n [Node], ConfigError> {
    match &node.value {
        Value::Seq(items) => Ok(items),
        _ if node.is_null() => Ok(&[]),
        _ => Err(d.err(
            node.pos,
            format!("{what} must be a sequence, not a {}", node.kind()),
        )),
    }
}

pub(crate) fn uint(d: &Decoder<'_>, v: &Node, key: &str) -> Result<usize, ConfigError> {
    let s = d.string(v, key)?;
    s.parse().map_err(|_| {
        d.err(
            v.pos,
            format!("{key} must be a non-negative integer, not {s:?}"),
        )
    })
}

/// Parses a byte size the way Prometheus's `body_size_limit` does (Go's base-2 units:
/// `KB` and `KiB` both mean 1024): `0`, `512`, `10MB`, `1GiB`.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let bad = || format!("not a valid byte size: {s:?}");
    if digits == 0 {
        return Err(bad());
    }
    let n: usize = s[..digits].parse().map_err(|_| bad())?;
    let mult: usize = match &s[digits..] {
        "" | "B" => 1,
        "KB" | "KiB" => 1 << 10,
        "MB" | "MiB" => 1 << 20,
        "GB" | "GiB" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

fn labels_map(d: &Decoder<'_>, v: &Node, what: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (ln, lv) in d.entries(v, &[], what)? {
        let name = d.key(ln);
        if !is_label_name(name) {
            return Err(d.err(ln.pos, format!("{name:?} is not a valid label name")));
        }
        out.push((name.to_string(), d.string(lv, "a label value")?.to_string()));
    }
    Ok(out)
}

pub(crate) fn secret(
    d: &Decoder<'_>,
    value: Option<&Node>,
    file: Option<&Node>,
    what: &str,
) -> Result<String, ConfigError> {
    match (value, file) {
        (Some(v), None) => Ok(d.string(v, what)?.to_string()),
        (None, Some(f)) => {
            let path = d.string(f, what)?;
            std::fs::read_to_string(path)
                .map(|s| s.trim().to_string())
                .map_err(|e| d.err(f.pos, format!("cannot read {path}: {e}")))
        }
        (Some(v), Some(_)) => Err(d.err(
            v.pos,
            format!("at most one of {what} and {what}_file must be configured"),
        )),
        (None, None) => Ok(String::new()),
    }
}

pub(crate) fn get<'n>(entries: &'n [(Node, Node)], d: &Decoder<'_>, key: &str) -> Option<&'n Node> {
    entries
        .iter()
        .find(|(k, _)| d.key(k) == key)
        .map(|(_, v)| v)
}

/// `basic_auth: {username, password | password_file}` (scrape configs, remote_write).
pub(crate) fn decode_basic_auth(d: &Decoder<'_>, v: &Node) -> Result<Auth, ConfigError> {
    let e = d.entries(v, &["username", "password", "password_file"], "basic_auth")?;
    let username = get(e, d, "username")
        .map(|n| d.string(n, "username"))
        .transpose()?
        .unwrap_or("")
        .to_string();
    let password = secret(
        d,
        get(e, d, "password"),
        get(e, d, "password_file"),
        "password",
    )?;
    Ok(Auth::Basic { username, password })
}

/// `authorization: {type (default Bearer), credentials | credentials_file}`.
pub(crate) fn decode_authorization(d: &Decoder<'_>, v: &Node) -> Result<Auth, ConfigError> {
    let e = d.entries(
        v,
        &["type", "credentials", "credentials_file"],
        "authorization",
    )?;
    let scheme = match get(e, d, "type") {
        Some(n) => d.string(n, "type")?.to_string(),
        None => "Bearer".into(),
    };
    if scheme.eq_ignore_ascii_case("basic") {
        return Err(d.err(
            v.pos,
            "authorization type cannot be set to \"basic\", use \"basic_auth\" instead",
        ));
    }
    let credentials = secret(
        d,
        get(e, d, "credentials"),
        get(e, d, "credentials_file"),
        "credentials",
    )?;
    Ok(Auth::Header {
        scheme,
        credentials,
    })
}

pub(crate) fn decode_tls_config(d: &Decoder<'_>, node: &Node) -> Result<TlsConfig, ConfigError> {
    const TLS_KEYS: &[&str] = &[
        "ca_file",
        "cert_file",
        "key_file",
        "server_name",
        "insecure_skip_verify",
    ];
    if !cfg!(feature = "tls") {
        return Err(d.err(
            node.pos,
            "tls_config needs a promlet built with the `tls` feature (cargo build --features tls)",
        ));
    }
    let dir = std::path::Path::new(d.file)
        .parent()
        .unwrap_or(std::path::Path::new("."));
    let mut t = TlsConfig::default();
    for (k, v) in d.entries(node, TLS_KEYS, "tls_config")? {
        let key = d.key(k);
        match key {
            "insecure_skip_verify" => t.insecure_skip_verify = d.boolean(v, key)?,
            "server_name" => t.server_name = Some(d.string(v, key)?.to_string()),
            _ => {
                let p = dir.join(d.string(v, key)?);
                match key {
                    "ca_file" => t.ca_file = Some(p),
                    "cert_file" => t.cert_file = Some(p),
                    _ => t.key_file = Some(p),
                }
            }
        }
    }
    if t.cert_file.is_some() != t.key_file.is_some() {
        return Err(d.err(
            node.pos,
            "tls_config needs both cert_file and key_file, or neither",
        ));
    }
    Ok(t)
}

fn decode_one(d: &Decoder<'_>, node: &Node, global: &Global) -> Result<ScrapeConfig, ConfigError> {
    let entries = d.entries(node, KEYS, "a scrape config")?;
    let mut sc = ScrapeConfig {
        job_name: String::new(),
        scrape_interval: global.scrape_interval,
        scrape_timeout: global.scrape_timeout,
        metrics_path: "/metrics".into(),
        scheme: "http".into(),
        params: Vec::new(),
        honor_labels: false,
        honor_timestamps: true,
        auth: Auth::None,
        tls_config: TlsConfig::default(),
        static_configs: Vec::new(),
        file_sd_configs: Vec::new(),
        dns_sd_configs: Vec::new(),
        relabel_configs: Vec::new(),
        metric_relabel_configs: Vec::new(),
        sample_limit: 0,
        label_limit: 0,
        body_size_limit: 0,
    };
    let mut timeout_set = false;
    for (k, v) in entries {
        let key = d.key(k);
        match key {
            "job_name" => sc.job_name = d.string(v, key)?.to_string(),
            "scrape_interval" => sc.scrape_interval = positive(d, v, key)?,
            "scrape_timeout" => {
                sc.scrape_timeout = positive(d, v, key)?;
                timeout_set = true;
            }
            "metrics_path" => sc.metrics_path = d.string(v, key)?.to_string(),
            "scheme" => {
                let s = d.string(v, key)?;
                match s {
                    "http" => {}
                    "https" if cfg!(feature = "tls") => {}
                    "https" => {
                        return Err(d.err(
                            v.pos,
                            "scheme https needs a promlet built with the `tls` feature \
                             (cargo build --features tls)",
                        ))
                    }
                    _ => return Err(d.err(v.pos, format!("unknown scheme {s:?}"))),
                }
                sc.scheme = s.to_string();
            }
            "params" => {
                for (pk, pv) in d.entries(v, &[], "params")? {
                    let mut vals = Vec::new();
                    for it in seq(d, pv, "a params value")? {
                        vals.push(d.string(it, "a params value")?.to_string());
                    }
                    sc.params.push((d.key(pk).to_string(), vals));
                }
            }
            "honor_labels" => sc.honor_labels = d.boolean(v, key)?,
            "honor_timestamps" => sc.honor_timestamps = d.boolean(v, key)?,
            "basic_auth" => sc.auth = decode_basic_auth(d, v)?,
            "authorization" => sc.auth = decode_authorization(d, v)?,
            "tls_config" => sc.tls_config = decode_tls_config(d, v)?,
            "static_configs" => {
                for it in seq(d, v, key)? {
                    let e = d.entries(it, &["targets", "labels"], "a static config")?;
                    let mut s = StaticConfig::default();
                    if let Some(t) = get(e, d, "targets") {
                        for tn in seq(d, t, "targets")? {
                            s.targets.push(d.string(tn, "a target")?.to_string());
                        }
                    }
                    if let Some(l) = get(e, d, "labels") {
                        s.labels = labels_map(d, l, "labels")?;
                    }
                    sc.static_configs.push(s);
                }
            }
            "file_sd_configs" => {
                for it in seq(d, v, key)? {
                    let e = d.entries(it, &["files", "refresh_interval"], "a file_sd config")?;
                    let mut files = Vec::new();
                    if let Some(f) = get(e, d, "files") {
                        for n in seq(d, f, "files")? {
                            files.push(d.string(n, "a file pattern")?.to_string());
                        }
                    }
                    if files.is_empty() {
                        return Err(d.err(
                            it.pos,
                            "file service discovery config must contain at least one path name",
                        ));
                    }
                    let refresh_interval = match get(e, d, "refresh_interval") {
                        Some(n) => positive(d, n, "refresh_interval")?,
                        None => Duration::from_secs(300),
                    };
                    sc.file_sd_configs.push(FileSdConfig {
                        files,
                        refresh_interval,
                    });
                }
            }
            "dns_sd_configs" => {
                for it in seq(d, v, key)? {
                    let e = d.entries(
                        it,
                        &["names", "type", "port", "refresh_interval"],
                        "a dns_sd config",
                    )?;
                    let mut names = Vec::new();
                    if let Some(f) = get(e, d, "names") {
                        for n in seq(d, f, "names")? {
                            names.push(d.string(n, "a DNS name")?.to_string());
                        }
                    }
                    if names.is_empty() {
                        return Err(d.err(
                            it.pos,
                            "DNS-SD config must contain at least one SRV record name",
                        ));
                    }
                    let typ = match get(e, d, "type") {
                        None => DnsType::Srv,
                        Some(n) => match d.string(n, "type")?.to_ascii_uppercase().as_str() {
                            "SRV" => DnsType::Srv,
                            "A" => DnsType::A,
                            "AAAA" => DnsType::Aaaa,
                            other => {
                                return Err(
                                    d.err(n.pos, format!("invalid DNS-SD records type {other:?}"))
                                )
                            }
                        },
                    };
                    let port = match get(e, d, "port") {
                        Some(n) => u16::try_from(uint(d, n, "port")?)
                            .map_err(|_| d.err(n.pos, "port out of range"))?,
                        None => 0,
                    };
                    if typ != DnsType::Srv && port == 0 {
                        return Err(d.err(
                            it.pos,
                            "a port is required in DNS-SD configs for all record types except SRV",
                        ));
                    }
                    let refresh_interval = match get(e, d, "refresh_interval") {
                        Some(n) => positive(d, n, "refresh_interval")?,
                        None => Duration::from_secs(30),
                    };
                    sc.dns_sd_configs.push(DnsSdConfig {
                        names,
                        typ,
                        port,
                        refresh_interval,
                    });
                }
            }
            "relabel_configs" => sc.relabel_configs = relabel::decode_list(d, v, key)?,
            "metric_relabel_configs" => {
                sc.metric_relabel_configs = relabel::decode_list(d, v, key)?
            }
            "sample_limit" => sc.sample_limit = uint(d, v, key)?,
            "label_limit" => sc.label_limit = uint(d, v, key)?,
            "body_size_limit" => {
                let s = d.string(v, key)?;
                sc.body_size_limit = parse_bytes(s).map_err(|e| d.err(v.pos, e))?;
            }
            _ => unreachable!("entries() rejects unknown keys"),
        }
    }
    if sc.job_name.is_empty() {
        return Err(d.err(node.pos, "job_name is empty"));
    }
    if !sc.metrics_path.starts_with('/') {
        let p = get(entries, d, "metrics_path")
            .map(|n| n.pos)
            .unwrap_or(node.pos);
        return Err(d.err(p, "metrics_path must start with /"));
    }
    if !timeout_set {
        sc.scrape_timeout = global.scrape_timeout.min(sc.scrape_interval);
    } else if sc.scrape_timeout > sc.scrape_interval {
        let p = get(entries, d, "scrape_timeout")
            .map(|n| n.pos)
            .unwrap_or(node.pos);
        return Err(d.err(
            p,
            format!(
                "scrape timeout greater than scrape interval for scrape config with job name {:?}",
                sc.job_name
            ),
        ));
    }
    Ok(sc)
}

fn positive(d: &Decoder<'_>, v: &Node, key: &str) -> Result<Duration, ConfigError> {
    let dur = d.duration(v, key)?;
    if dur.is_zero() {
        return Err(d.err(v.pos, format!("{key} must be greater than 0")));
    }
    Ok(dur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse(y: &str) -> Result<Vec<ScrapeConfig>, ConfigError> {
        Config::parse(y, "p.yml").map(|c| c.scrape_configs)
    }

    #[test]
    fn defaults_come_from_global() {
        let c = parse(
            "scrape_configs:\n  - job_name: n\n    static_configs: [{targets: ['127.0.0.1:9100']}]\nglobal:\n  scrape_interval: 5s\n",
        )
        .unwrap();
        assert_eq!(c[0].scrape_interval, Duration::from_secs(5));
        assert_eq!(c[0].scrape_timeout, Duration::from_secs(5));
        assert_eq!(c[0].metrics_path, "/metrics");
        assert!(c[0].honor_timestamps && !c[0].honor_labels);
        assert_eq!(c[0].static_configs[0].targets, vec!["127.0.0.1:9100"]);
    }

    #[test]
    fn every_supported_key_decodes() {
        let c = parse(
            "scrape_configs:
  - job_name: app
    scrape_interval: 30s
    scrape_timeout: 3s
    metrics_path: /m
    scheme: http
    params: {module: [a, b]}
    honor_labels: true
    honor_timestamps: false
    authorization: {credentials: tok}
    static_configs:
      - targets: [a:1, b:2]
        labels: {env: prod}
    file_sd_configs: [{files: [/x/*.json], refresh_interval: 1m}]
    dns_sd_configs: [{names: [_m._tcp.example], type: SRV}]
    relabel_configs: [{source_labels: [env], target_label: e}]
    metric_relabel_configs: [{regex: go_.*, source_labels: [__name__], action: drop}]
    sample_limit: 100
    label_limit: 30
    body_size_limit: 10MB
",
        )
        .unwrap();
        let s = &c[0];
        assert_eq!(s.scrape_timeout, Duration::from_secs(3));
        assert_eq!(
            s.params,
            vec![("module".to_string(), vec!["a".to_string(), "b".to_string()])]
        );
        assert_eq!(
            s.auth,
            Auth::Header {
                scheme: "Bearer".into(),
                credentials: "tok".into()
            }
        );
        assert_eq!(
            s.static_configs[0].labels,
            vec![("env".to_string(), "prod".to_string())]
        );
        assert_eq!(
            s.file_sd_configs[0].refresh_interval,
            Duration::from_secs(60)
        );
        assert_eq!(s.dns_sd_configs[0].typ, DnsType::Srv);
        assert_eq!(s.relabel_configs.len(), 1);
        assert_eq!(s.metric_relabel_configs.len(), 1);
        assert_eq!(
            (s.sample_limit, s.label_limit, s.body_size_limit),
            (100, 30, 10 << 20)
        );
    }

    #[test]
    fn errors_are_positioned() {
        let e = parse("scrape_configs:\n  - job_name: a\n    scrape_intervall: 1s\n").unwrap_err();
        assert_eq!(e.pos, Some((3, 5)));
        assert!(e.msg.starts_with("unknown key \"scrape_intervall\""), "{e}");
        let e = parse("scrape_configs:\n  - job_name: a\n  - job_name: a\n").unwrap_err();
        assert_eq!(e.pos, Some((3, 5)));
        if !cfg!(feature = "tls") {
            let e = parse("scrape_configs:\n  - job_name: a\n    scheme: https\n").unwrap_err();
            assert_eq!(e.pos, Some((3, 13)));
            assert!(e.msg.contains("`tls` feature"), "{e}");
        }
        let e = parse(
            "scrape_configs:\n  - job_name: a\n    scrape_interval: 1s\n    scrape_timeout: 2s\n",
        )
        .unwrap_err();
        assert_eq!(e.pos, Some((4, 21)));
        let e = parse("scrape_configs:\n  - job_name: a\n    relabel_configs: [{action: hashmod, target_label: x}]\n").unwrap_err();
        assert_eq!(
            e.msg,
            "relabel configuration for hashmod requires non-zero modulus"
        );
        let e = parse("scrape_configs:\n  - job_name: a\n    body_size_limit: 10 apples\n")
            .unwrap_err();
        assert_eq!(e.pos, Some((3, 22)));
        let e = parse(
            "scrape_configs:\n  - job_name: a\n    dns_sd_configs: [{names: [x], type: A}]\n",
        )
        .unwrap_err();
        assert!(e.msg.contains("port is required"), "{e}");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_config_paths_are_relative_to_the_config_file() {
        let text = "scrape_configs:\n  - job_name: a\n    scheme: https\n    tls_config:\n      \
                    ca_file: ca.crt\n      server_name: node1\n      insecure_skip_verify: true\n";
        let cfg = crate::config::Config::parse(text, "/etc/promlet/promlet.yml").unwrap();
        let t = &cfg.scrape_configs[0].tls_config;
        assert_eq!(
            t.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/promlet/ca.crt"))
        );
        assert_eq!(t.server_name.as_deref(), Some("node1"));
        assert!(t.insecure_skip_verify);
        let e = parse("scrape_configs:\n  - job_name: a\n    tls_config: {cert_file: c}\n")
            .unwrap_err();
        assert!(e.msg.contains("both cert_file and key_file"), "{e}");
    }

    #[test]
    fn byte_sizes_use_base_two_units() {
        assert_eq!(parse_bytes("0"), Ok(0));
        assert_eq!(parse_bytes("1KB"), Ok(1024));
        assert_eq!(parse_bytes("2MiB"), Ok(2 << 20));
        assert!(parse_bytes("MB").is_err());
    }
}
