//! Probe modules in blackbox_exporter's config format (a subset), and promlet's `probes:`
//! section that schedules them.
//!
//! Owns: decoding modules (`prober`, `timeout`, and the `http`/`tcp`/`dns`/`icmp` options
//! listed on [`HttpModule`] and friends), the built-in modules, reading a blackbox `modules:`
//! file named by `modules_file`, and the `jobs:` list of scheduled probes.
//! Must not touch: sockets, the TSDB.
//!
//! Keys blackbox_exporter has and promlet does not (TLS settings, proxies, OAuth, gRPC, …) are
//! errors, not silently ignored: a module that loads behaves as written.
//!
//! ```yaml
//! probes:
//!   modules_file: /etc/prometheus/blackbox.yml   # optional, blackbox's own file
//!   modules:                                     # inline, same format
//!     dns_uplink:
//!       prober: dns
//!       dns: {query_name: example.com, query_type: A}
//!   jobs:
//!     - job_name: uplink
//!       module: icmp
//!       interval: 15s                # default: global.scrape_interval
//!       timeout: 5s                  # default: the module's, else global.scrape_timeout
//!       targets: [192.0.2.1]
//!       default_gateway: true        # also probe the default IPv4 gateway (/proc/net/route)
//!       resolv_conf_nameservers: true  # also probe each nameserver in /etc/resolv.conf
//!       labels: {site: attic}
//! ```

use crate::config::yaml::{Node, Value};
use crate::config::{is_label_name, ConfigError, Decoder, Global};
use regex_lite::Regex;
use std::time::Duration;

/// Which prober a module uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prober {
    Http,
    Tcp,
    Dns,
    Icmp,
}

impl Prober {
    /// The name in blackbox's config.
    pub fn name(self) -> &'static str {
        match self {
            Prober::Http => "http",
            Prober::Tcp => "tcp",
            Prober::Dns => "dns",
            Prober::Icmp => "icmp",
        }
    }
}

/// `preferred_ip_protocol` + `ip_protocol_fallback`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpChoice {
    /// True for `ip4`; blackbox's default is `ip6`.
    pub prefer_v4: bool,
    pub fallback: bool,
}

impl Default for IpChoice {
    fn default() -> Self {
        IpChoice {
            prefer_v4: false,
            fallback: true,
        }
    }
}

/// A compiled regexp that remembers its source (modules compare by source).
#[derive(Clone, Debug)]
pub struct Pattern(pub Regex);

impl PartialEq for Pattern {
    fn eq(&self, o: &Self) -> bool {
        self.0.as_str() == o.0.as_str()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpModule {
    /// Empty: any 2xx.
    pub valid_status_codes: Vec<u16>,
    pub method: String,
    /// In file order; a `Host` header sets the request's Host.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub follow_redirects: bool,
    pub fail_if_ssl: bool,
    pub fail_if_not_ssl: bool,
    pub fail_if_body_matches: Vec<Pattern>,
    pub fail_if_body_not_matches: Vec<Pattern>,
    pub ip: IpChoice,
    /// `tls_config` for https targets (feature `tls`; the system CA bundle without `ca_file`).
    pub tls_config: crate::scrape::config::TlsConfig,
    /// The client for `tls_config`, built at the first https probe of this module.
    pub tls_client: crate::scrape::client::TlsClientCache,
}

impl Default for HttpModule {
    fn default() -> Self {
        HttpModule {
            valid_status_codes: Vec::new(),
            method: "GET".into(),
            headers: Vec::new(),
            body: String::new(),
            follow_redirects: true,
            fail_if_ssl: false,
            fail_if_not_ssl: false,
            tls_config: Default::default(),
            tls_client: Default::default(),
            fail_if_body_matches: Vec::new(),
            fail_if_body_not_matches: Vec::new(),
            ip: IpChoice::default(),
        }
    }
}

/// One `query_response` step of a TCP module.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResponse {
    /// Read lines until one matches.
    pub expect: Option<Pattern>,
    /// Sent followed by `\n`, after `expect` (with `${1}` expanded from its match).
    pub send: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TcpModule {
    pub ip: IpChoice,
    pub query_response: Vec<QueryResponse>,
}

/// `validate_*_rrs`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RrValidator {
    pub fail_if_matches: Vec<Pattern>,
    pub fail_if_not_matches: Vec<Pattern>,
    pub fail_if_all_match: Vec<Pattern>,
    pub fail_if_none_matches: Vec<Pattern>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DnsModule {
    pub ip: IpChoice,
    pub query_name: String,
    /// Type code; blackbox's default is ANY.
    pub query_type: u16,
    pub tcp: bool,
    pub recursion_desired: bool,
    /// Empty: NOERROR only.
    pub valid_rcodes: Vec<u8>,
    pub answer: RrValidator,
    pub authority: RrValidator,
    pub additional: RrValidator,
}

impl Default for DnsModule {
    fn default() -> Self {
        DnsModule {
            ip: IpChoice::default(),
            query_name: String::new(),
            query_type: crate::net::dns::T_ANY,
            tcp: false,
            recursion_desired: true,
            valid_rcodes: Vec::new(),
            answer: RrValidator::default(),
            authority: RrValidator::default(),
            additional: RrValidator::default(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct IcmpModule {
    pub ip: IpChoice,
    /// Echo payload bytes (blackbox: `payload_size`, default 0 → its own 36-byte payload).
    pub payload_size: usize,
}

/// One module.
#[derive(Clone, Debug, PartialEq)]
pub struct Module {
    pub prober: Prober,
    /// None: the caller's (scrape timeout header, or the job's).
    pub timeout: Option<Duration>,
    pub http: HttpModule,
    pub tcp: TcpModule,
    pub dns: DnsModule,
    pub icmp: IcmpModule,
}

impl Module {
    fn new(prober: Prober) -> Module {
        Module {
            prober,
            timeout: None,
            http: HttpModule::default(),
            tcp: TcpModule::default(),
            dns: DnsModule::default(),
            icmp: IcmpModule::default(),
        }
    }
}

/// The modules of blackbox_exporter's example config that make sense on a device; a
/// configured module of the same name replaces one.
pub const BUILTIN_MODULES: &str = "\
http_2xx:
  prober: http
  http:
    preferred_ip_protocol: ip4
http_post_2xx:
  prober: http
  http:
    method: POST
tcp_connect:
  prober: tcp
icmp:
  prober: icmp
";

/// One scheduled probe job.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeJob {
    pub job_name: String,
    pub module: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub targets: Vec<String>,
    pub default_gateway: bool,
    pub resolv_conf_nameservers: bool,
    pub labels: Vec<(String, String)>,
}

/// `probes:`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProbesConfig {
    /// Configured modules (file first, then inline, later names replacing earlier ones);
    /// built-ins are looked up after these.
    pub modules: Vec<(String, Module)>,
    pub jobs: Vec<ProbeJob>,
}

impl ProbesConfig {
    /// The module called `name`: configured, else built in.
    pub fn module(&self, name: &str) -> Option<Module> {
        if let Some((_, m)) = self.modules.iter().rev().find(|(n, _)| n == name) {
            return Some(m.clone());
        }
        builtin(name)
    }
}

/// The built-in module `name`.
pub fn builtin(name: &str) -> Option<Module> {
    let node = crate::config::yaml::parse(BUILTIN_MODULES).ok()?;
    let d = Decoder { file: "<builtin>" };
    decode_modules(&d, &node)
        .ok()?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, m)| m)
}

/// Parses a blackbox_exporter config file (`modules:` at the top level).
pub fn parse_modules_file(text: &str, file: &str) -> Result<Vec<(String, Module)>, ConfigError> {
    let d = Decoder { file };
    let root = crate::config::yaml::parse(text).map_err(|e| d.err(e.pos, e.msg))?;
    for (k, v) in d.entries(&root, &["modules"], "a blackbox_exporter config")? {
        if d.key(k) == "modules" {
            return decode_modules(&d, v);
        }
    }
    Ok(Vec::new())
}

pub(crate) fn decode_probes(
    d: &Decoder<'_>,
    node: &Node,
    global: &Global,
) -> Result<ProbesConfig, ConfigError> {
    let mut cfg = ProbesConfig::default();
    let mut jobs_node = None;
    for (k, v) in d.entries(node, &["modules_file", "modules", "jobs"], "probes")? {
        match d.key(k) {
            "modules_file" => {
                let name = d.string(v, "modules_file")?;
                // Relative to the directory of the config file naming it.
                let path = std::path::Path::new(d.file)
                    .parent()
                    .map(|p| p.join(name))
                    .unwrap_or_else(|| name.into());
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| d.err(v.pos, format!("modules_file {}: {e}", path.display())))?;
                let file_modules = parse_modules_file(&text, &path.display().to_string())?;
                // File modules come first so inline ones override them.
                let inline = std::mem::take(&mut cfg.modules);
                cfg.modules = file_modules;
                cfg.modules.extend(inline);
            }
            "modules" => cfg.modules.extend(decode_modules(d, v)?),
            "jobs" => jobs_node = Some(v),
            _ => unreachable!(),
        }
    }
    if let Some(n) = jobs_node {
        let Value::Seq(items) = &n.value else {
            if n.is_null() {
                return Ok(cfg);
            }
            return Err(d.err(n.pos, "probes.jobs must be a sequence"));
        };
        for item in items {
            let job = decode_job(d, item, global, &cfg)?;
            if cfg.jobs.iter().any(|j| j.job_name == job.job_name) {
                return Err(d.err(
                    item.pos,
                    format!("found multiple probe jobs named {:?}", job.job_name),
                ));
            }
            cfg.jobs.push(job);
        }
    }
    Ok(cfg)
}

fn decode_job(
    d: &Decoder<'_>,
    node: &Node,
    global: &Global,
    cfg: &ProbesConfig,
) -> Result<ProbeJob, ConfigError> {
    const KEYS: &[&str] = &[
        "job_name",
        "module",
        "interval",
        "timeout",
        "targets",
        "default_gateway",
        "resolv_conf_nameservers",
        "labels",
    ];
    let mut job = ProbeJob {
        job_name: String::new(),
        module: String::new(),
        interval: global.scrape_interval,
        timeout: Duration::ZERO,
        targets: Vec::new(),
        default_gateway: false,
        resolv_conf_nameservers: false,
        labels: Vec::new(),
    };
    let mut timeout_node = None;
    let mut module_pos = node.pos;
    for (k, v) in d.entries(node, KEYS, "a probe job")? {
        match d.key(k) {
            "job_name" => job.job_name = d.string(v, "job_name")?.to_string(),
            "module" => {
                job.module = d.string(v, "module")?.to_string();
                module_pos = v.pos;
            }
            "interval" => job.interval = nonzero(d, v, "interval")?,
            "timeout" => {
                job.timeout = nonzero(d, v, "timeout")?;
                timeout_node = Some(v);
            }
            "targets" => job.targets = strings(d, v, "targets")?,
            "default_gateway" => job.default_gateway = d.boolean(v, "default_gateway")?,
            "resolv_conf_nameservers" => {
                job.resolv_conf_nameservers = d.boolean(v, "resolv_conf_nameservers")?
            }
            "labels" => {
                for (ln, lv) in d.entries(v, &[], "labels")? {
                    let name = d.key(ln);
                    if !is_label_name(name) || name.starts_with("__") {
                        return Err(d.err(ln.pos, format!("{name:?} is not a valid label name")));
                    }
                    job.labels
                        .push((name.to_string(), d.string(lv, "a label value")?.to_string()));
                }
            }
            _ => unreachable!(),
        }
    }
    if job.job_name.is_empty() {
        return Err(d.err(node.pos, "a probe job needs a job_name"));
    }
    let Some(module) = cfg.module(&job.module) else {
        return Err(d.err(
            module_pos,
            format!(
                "probe job {:?}: unknown module {:?}",
                job.job_name, job.module
            ),
        ));
    };
    if job.timeout.is_zero() {
        job.timeout = module
            .timeout
            .unwrap_or(global.scrape_timeout)
            .min(job.interval);
    } else if job.timeout > job.interval {
        return Err(d.err(
            timeout_node.map_or(node.pos, |n| n.pos),
            "a probe job's timeout must not exceed its interval",
        ));
    }
    Ok(job)
}

fn nonzero(d: &Decoder<'_>, v: &Node, what: &str) -> Result<Duration, ConfigError> {
    let t = d.duration(v, what)?;
    if t.is_zero() {
        return Err(d.err(v.pos, format!("{what} must be greater than zero")));
    }
    Ok(t)
}

fn strings(d: &Decoder<'_>, v: &Node, what: &str) -> Result<Vec<String>, ConfigError> {
    match &v.value {
        Value::Seq(items) => items
            .iter()
            .map(|i| d.string(i, what).map(str::to_string))
            .collect(),
        _ if v.is_null() => Ok(Vec::new()),
        _ => Err(d.err(v.pos, format!("{what} must be a list"))),
    }
}

fn patterns(d: &Decoder<'_>, v: &Node, what: &str) -> Result<Vec<Pattern>, ConfigError> {
    let mut out = Vec::new();
    let Value::Seq(items) = &v.value else {
        return Err(d.err(v.pos, format!("{what} must be a list of regexps")));
    };
    for i in items {
        out.push(pattern(d, i, what)?);
    }
    Ok(out)
}

fn pattern(d: &Decoder<'_>, v: &Node, what: &str) -> Result<Pattern, ConfigError> {
    let s = d.string(v, what)?;
    Regex::new(s)
        .map(Pattern)
        .map_err(|e| d.err(v.pos, format!("{what}: invalid regexp {s:?}: {e}")))
}

fn ip_choice(d: &Decoder<'_>, k: &str, v: &Node, ip: &mut IpChoice) -> Result<(), ConfigError> {
    match k {
        "preferred_ip_protocol" => match d.string(v, k)? {
            "ip4" => ip.prefer_v4 = true,
            "ip6" => ip.prefer_v4 = false,
            other => {
                return Err(d.err(
                    v.pos,
                    format!("preferred_ip_protocol must be ip4 or ip6, not {other:?}"),
                ))
            }
        },
        "ip_protocol_fallback" => ip.fallback = d.boolean(v, k)?,
        _ => unreachable!(),
    }
    Ok(())
}

/// Decodes a `modules:` mapping.
pub(crate) fn decode_modules(
    d: &Decoder<'_>,
    node: &Node,
) -> Result<Vec<(String, Module)>, ConfigError> {
    let mut out = Vec::new();
    for (k, v) in d.entries(node, &[], "modules")? {
        out.push((d.key(k).to_string(), decode_module(d, v)?));
    }
    Ok(out)
}

fn decode_module(d: &Decoder<'_>, node: &Node) -> Result<Module, ConfigError> {
    let entries = d.entries(
        node,
        &["prober", "timeout", "http", "tcp", "dns", "icmp"],
        "a module",
    )?;
    let Some((_, p)) = entries.iter().find(|(k, _)| d.key(k) == "prober") else {
        return Err(d.err(node.pos, "a module needs a prober (http, tcp, dns or icmp)"));
    };
    let prober = match d.string(p, "prober")? {
        "http" => Prober::Http,
        "tcp" => Prober::Tcp,
        "dns" => Prober::Dns,
        "icmp" => Prober::Icmp,
        other => {
            return Err(d.err(
                p.pos,
                format!("prober {other:?} is not supported (http, tcp, dns, icmp)"),
            ))
        }
    };
    let mut m = Module::new(prober);
    for (k, v) in entries {
        match d.key(k) {
            "prober" => {}
            "timeout" => m.timeout = Some(nonzero(d, v, "timeout")?),
            "http" => decode_http(d, v, &mut m.http)?,
            "tcp" => decode_tcp(d, v, &mut m.tcp)?,
            "dns" => decode_dns(d, v, &mut m.dns)?,
            "icmp" => decode_icmp(d, v, &mut m.icmp)?,
            _ => unreachable!(),
        }
    }
    if prober == Prober::Dns && m.dns.query_name.is_empty() {
        return Err(d.err(node.pos, "a dns module needs dns.query_name"));
    }
    Ok(m)
}

fn decode_http(d: &Decoder<'_>, node: &Node, h: &mut HttpModule) -> Result<(), ConfigError> {
    const KEYS: &[&str] = &[
        "valid_status_codes",
        "method",
        "headers",
        "body",
        "follow_redirects",
        "no_follow_redirects",
        "fail_if_ssl",
        "fail_if_not_ssl",
        "fail_if_body_matches_regexp",
        "fail_if_body_not_matches_regexp",
        "preferred_ip_protocol",
        "ip_protocol_fallback",
        "enable_http2",
        "tls_config",
    ];
    for (k, v) in d.entries(node, KEYS, "http")? {
        let key = d.key(k);
        match key {
            "valid_status_codes" => {
                for s in strings(d, v, key)? {
                    let code = s
                        .parse::<u16>()
                        .ok()
                        .filter(|c| (100..1000).contains(c))
                        .ok_or_else(|| {
                            d.err(v.pos, format!("{key}: {s:?} is not a status code"))
                        })?;
                    h.valid_status_codes.push(code);
                }
            }
            "method" => h.method = d.string(v, key)?.to_ascii_uppercase(),
            "headers" => {
                for (hn, hv) in d.entries(v, &[], "headers")? {
                    h.headers.push((
                        d.key(hn).to_string(),
                        d.string(hv, "a header value")?.to_string(),
                    ));
                }
            }
            "body" => h.body = d.string(v, key)?.to_string(),
            "follow_redirects" => h.follow_redirects = d.boolean(v, key)?,
            "no_follow_redirects" => h.follow_redirects = !d.boolean(v, key)?,
            "tls_config" => h.tls_config = crate::scrape::config::decode_tls_config(d, v)?,
            "fail_if_ssl" => h.fail_if_ssl = d.boolean(v, key)?,
            "fail_if_not_ssl" => h.fail_if_not_ssl = d.boolean(v, key)?,
            "fail_if_body_matches_regexp" => h.fail_if_body_matches = patterns(d, v, key)?,
            "fail_if_body_not_matches_regexp" => h.fail_if_body_not_matches = patterns(d, v, key)?,
            // HTTP/1.1 only; accepted so blackbox files that set it load.
            "enable_http2" => {
                d.boolean(v, key)?;
            }
            _ => ip_choice(d, key, v, &mut h.ip)?,
        }
    }
    Ok(())
}

fn decode_tcp(d: &Decoder<'_>, node: &Node, t: &mut TcpModule) -> Result<(), ConfigError> {
    const KEYS: &[&str] = &[
        "query_response",
        "preferred_ip_protocol",
        "ip_protocol_fallback",
    ];
    for (k, v) in d.entries(node, KEYS, "tcp")? {
        let key = d.key(k);
        if key != "query_response" {
            ip_choice(d, key, v, &mut t.ip)?;
            continue;
        }
        let Value::Seq(items) = &v.value else {
            return Err(d.err(v.pos, "query_response must be a list"));
        };
        for item in items {
            let mut step = QueryResponse {
                expect: None,
                send: String::new(),
            };
            for (sk, sv) in d.entries(item, &["expect", "send"], "a query_response step")? {
                match d.key(sk) {
                    "expect" => step.expect = Some(pattern(d, sv, "expect")?),
                    _ => step.send = d.string(sv, "send")?.to_string(),
                }
            }
            t.query_response.push(step);
        }
    }
    Ok(())
}

fn decode_validator(d: &Decoder<'_>, node: &Node, what: &str) -> Result<RrValidator, ConfigError> {
    const KEYS: &[&str] = &[
        "fail_if_matches_regexp",
        "fail_if_not_matches_regexp",
        "fail_if_all_match_regexp",
        "fail_if_none_matches_regexp",
    ];
    let mut r = RrValidator::default();
    for (k, v) in d.entries(node, KEYS, what)? {
        let key = d.key(k);
        let p = patterns(d, v, key)?;
        match key {
            "fail_if_matches_regexp" => r.fail_if_matches = p,
            "fail_if_not_matches_regexp" => r.fail_if_not_matches = p,
            "fail_if_all_match_regexp" => r.fail_if_all_match = p,
            _ => r.fail_if_none_matches = p,
        }
    }
    Ok(r)
}

fn decode_dns(d: &Decoder<'_>, node: &Node, m: &mut DnsModule) -> Result<(), ConfigError> {
    const KEYS: &[&str] = &[
        "query_name",
        "query_type",
        "transport_protocol",
        "recursion_desired",
        "valid_rcodes",
        "validate_answer_rrs",
        "validate_authority_rrs",
        "validate_additional_rrs",
        "preferred_ip_protocol",
        "ip_protocol_fallback",
    ];
    for (k, v) in d.entries(node, KEYS, "dns")? {
        let key = d.key(k);
        match key {
            "query_name" => m.query_name = d.string(v, key)?.to_string(),
            "query_type" => {
                let t = d.string(v, key)?;
                m.query_type = crate::net::dns::type_code(t).ok_or_else(|| {
                    d.err(
                        v.pos,
                        format!("query_type {t:?} is not supported (A, AAAA, SRV, MX, TXT, NS, CNAME, SOA, PTR, ANY)"),
                    )
                })?;
            }
            "transport_protocol" => {
                m.tcp = match d.string(v, key)? {
                    "udp" => false,
                    "tcp" => true,
                    other => {
                        return Err(d.err(
                            v.pos,
                            format!("transport_protocol must be udp or tcp, not {other:?}"),
                        ))
                    }
                }
            }
            "recursion_desired" => m.recursion_desired = d.boolean(v, key)?,
            "valid_rcodes" => {
                for s in strings(d, v, key)? {
                    let code = crate::net::dns::RCODE_NAMES
                        .iter()
                        .find(|(n, _)| *n == s)
                        .map(|(_, c)| *c)
                        .ok_or_else(|| {
                            d.err(v.pos, format!("valid_rcodes: unknown rcode {s:?}"))
                        })?;
                    m.valid_rcodes.push(code);
                }
            }
            "validate_answer_rrs" => m.answer = decode_validator(d, v, key)?,
            "validate_authority_rrs" => m.authority = decode_validator(d, v, key)?,
            "validate_additional_rrs" => m.additional = decode_validator(d, v, key)?,
            _ => ip_choice(d, key, v, &mut m.ip)?,
        }
    }
    Ok(())
}

fn decode_icmp(d: &Decoder<'_>, node: &Node, m: &mut IcmpModule) -> Result<(), ConfigError> {
    const KEYS: &[&str] = &[
        "payload_size",
        "preferred_ip_protocol",
        "ip_protocol_fallback",
    ];
    for (k, v) in d.entries(node, KEYS, "icmp")? {
        let key = d.key(k);
        if key == "payload_size" {
            let s = d.string(v, key)?;
            m.payload_size = s
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= 65000)
                .ok_or_else(|| d.err(v.pos, format!("payload_size {s:?} is not a size")))?;
        } else {
            ip_choice(d, key, v, &mut m.ip)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ProbesConfig, ConfigError> {
        let d = Decoder { file: "t.yml" };
        let root = crate::config::yaml::parse(text).unwrap();
        decode_probes(&d, &root, &Global::default())
    }

    #[test]
    fn builtins_decode_and_inline_modules_replace_them() {
        for name in ["http_2xx", "http_post_2xx", "tcp_connect", "icmp"] {
            assert!(builtin(name).is_some(), "{name}");
        }
        assert_eq!(builtin("http_post_2xx").unwrap().http.method, "POST");
        assert!(builtin("http_2xx").unwrap().http.ip.prefer_v4);
        let cfg = parse("modules:\n  http_2xx:\n    prober: http\n    timeout: 3s\n").unwrap();
        let m = cfg.module("http_2xx").unwrap();
        assert_eq!(m.timeout, Some(Duration::from_secs(3)));
        assert!(!m.http.ip.prefer_v4);
    }

    #[test]
    fn blackbox_module_options_decode() {
        let cfg = parse(
            "modules:
  d:
    prober: dns
    dns:
      query_name: example.com
      query_type: SRV
      valid_rcodes: [NOERROR, NXDOMAIN]
      transport_protocol: tcp
      validate_answer_rrs:
        fail_if_not_matches_regexp: ['.*\\t9100\\t.*']
  t:
    prober: tcp
    tcp:
      query_response:
        - expect: '^SSH-2.0-'
        - send: 'QUIT'
  h:
    prober: http
    http:
      valid_status_codes: [200, 301]
      no_follow_redirects: true
      headers: {Host: example.org}
      fail_if_body_matches_regexp: [error]
",
        )
        .unwrap();
        let d = cfg.module("d").unwrap().dns;
        assert_eq!(d.query_type, crate::net::dns::T_SRV);
        assert_eq!(d.valid_rcodes, vec![0, 3]);
        assert!(d.tcp);
        assert_eq!(d.answer.fail_if_not_matches.len(), 1);
        let t = cfg.module("t").unwrap().tcp;
        assert_eq!(t.query_response.len(), 2);
        let h = cfg.module("h").unwrap().http;
        assert_eq!(h.valid_status_codes, vec![200, 301]);
        assert!(!h.follow_redirects);
    }

    #[test]
    fn unsupported_options_and_bad_values_are_positioned_errors() {
        let cases = [
            ("modules:\n  x:\n    prober: grpc\n", "3:13"),
            ("modules:\n  x:\n    prober: http\n    http:\n      tls_confi: {}\n", "5:7"),
            ("modules:\n  x:\n    prober: dns\n    dns: {query_name: a, query_type: HINFO}\n", "4:"),
            ("modules:\n  x:\n    prober: dns\n", "3:5"),
            ("modules:\n  x:\n    prober: http\n    http:\n      fail_if_body_matches_regexp: ['(']\n", "5:"),
            ("jobs:\n  - job_name: a\n    module: nope\n", "3:13"),
            ("jobs:\n  - job_name: a\n    module: icmp\n    interval: 5s\n    timeout: 10s\n", "5:14"),
        ];
        for (text, pos) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(&format!("t.yml:{pos}")), "{text:?}: {e}");
        }
    }

    #[test]
    fn job_timeout_defaults_to_module_then_global_capped_by_interval() {
        let cfg = parse(
            "modules:\n  slow: {prober: tcp, timeout: 30s}\njobs:\n  - {job_name: a, module: slow, interval: 20s}\n  - {job_name: b, module: icmp, targets: [127.0.0.1], default_gateway: true}\n",
        )
        .unwrap();
        assert_eq!(cfg.jobs[0].timeout, Duration::from_secs(20));
        assert_eq!(cfg.jobs[1].timeout, Global::default().scrape_timeout);
        assert!(cfg.jobs[1].default_gateway);
        assert!(
            parse("jobs:\n  - {job_name: a, module: icmp}\n  - {job_name: a, module: icmp}\n")
                .is_err()
        );
    }
}
