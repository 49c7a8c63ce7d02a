//! The YAML configuration: loading, validation into typed structs, positioned errors.
//!
//! Owns: [`Config`] (shaped like prometheus.yml: `global`, plus promlet's `collectors`
//! section), the embedded default config, Prometheus duration syntax, and errors of the form
//! `FILE:LINE:COLUMN: what is wrong`. Unknown keys are errors, so typos are caught.
//! Must not touch: sockets, the TSDB. Loading reads the one file it is given.
//!
//! Later sections (`scrape_configs`, `rule_files`, `alerting`, `remote_write`) each get a
//! typed field on [`Config`], a key in [`TOP_LEVEL_KEYS`] and a `decode_*` function beside
//! [`decode_global`].

pub mod yaml;

use crate::collect::{CollectorDef, CollectorOptions, COLLECTORS};
use std::path::Path;
use std::time::Duration;
use yaml::{Node, Pos, Value};

/// The configuration promlet runs with when no `--config.file` is given.
pub const DEFAULT_CONFIG: &str = include_str!("default.yml");

/// A configuration error: where (when known) and what. Its fields ([`ConfigErrorInfo`]) are
/// read through `Deref`.
///
/// One pointer wide: every decoder returns `Result<_, ConfigError>` and passes it up with `?`
/// hundreds of times, and with the three fields inline each of those moved 72 bytes (boxed:
/// the x86_64 release binary 24,448 bytes smaller).
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigError(Box<ConfigErrorInfo>);

/// What a [`ConfigError`] says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrorInfo {
    pub file: String,
    /// None for errors about the whole file (unreadable).
    pub pos: Option<(usize, usize)>,
    pub msg: String,
}

impl ConfigError {
    pub fn new(file: String, pos: Option<(usize, usize)>, msg: String) -> ConfigError {
        ConfigError(Box::new(ConfigErrorInfo { file, pos, msg }))
    }
}

impl std::ops::Deref for ConfigError {
    type Target = ConfigErrorInfo;
    fn deref(&self) -> &ConfigErrorInfo {
        &self.0
    }
}

impl std::fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As the derived Debug printed it when the fields were inline.
        f.debug_struct("ConfigError")
            .field("file", &self.file)
            .field("pos", &self.pos)
            .field("msg", &self.msg)
            .finish()
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pos {
            Some((l, c)) => write!(f, "{}:{l}:{c}: {}", self.file, self.msg),
            None => write!(f, "{}: {}", self.file, self.msg),
        }
    }
}

impl std::error::Error for ConfigError {}

/// `global:` as in prometheus.yml.
#[derive(Clone, Debug, PartialEq)]
pub struct Global {
    /// How often the agent collects (and later scrapes). Prometheus's default: 1m.
    pub scrape_interval: Duration,
    /// Defaults to min(10s, scrape_interval); must not exceed scrape_interval.
    pub scrape_timeout: Duration,
    pub evaluation_interval: Duration,
    /// Added to series leaving this agent (federation, remote write, alerts), sorted by name.
    pub external_labels: Vec<(String, String)>,
}

impl Default for Global {
    fn default() -> Self {
        Global {
            scrape_interval: Duration::from_secs(60),
            scrape_timeout: Duration::from_secs(10),
            evaluation_interval: Duration::from_secs(60),
            external_labels: Vec::new(),
        }
    }
}

/// `collectors:`, promlet's own section:
///
/// ```yaml
/// collectors:
///   disable_defaults: false      # like --collector.disable-defaults
///   wifi: true                   # enable or disable one collector
///   filesystem:                  # or enable it and set its options
///     enabled: true
///     mount-points-exclude: "^/(dev|proc|sys)($|/)"
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CollectorsConfig {
    pub disable_defaults: bool,
    /// Explicit on/off per collector name, in file order.
    pub switches: Vec<(String, bool)>,
    /// Options by their table name (`filesystem.mount-points-exclude`), in file order.
    pub options: Vec<(String, String)>,
}

/// The whole configuration, validated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub global: Global,
    pub collectors: CollectorsConfig,
    /// `alerting:` (Alertmanagers, alert relabeling); decoded in `notify::config`.
    pub alerting: crate::notify::config::AlertingConfig,
    /// `notify:` (the local route tree, Alertmanager's format); decoded in `notify::route`.
    pub notify: crate::notify::route::RouteConfig,
    /// `scrape_configs:`, decoded by [`crate::scrape::config`].
    pub scrape_configs: Vec<crate::scrape::config::ScrapeConfig>,
    /// `rule_files:` globs, relative to the config file's directory (resolved by `rules`).
    pub rule_files: Vec<String>,
    /// `remote_write:`, decoded by [`crate::remote::config`].
    pub remote_write: Vec<crate::remote::config::RemoteWriteConfig>,
    /// `probes:` (blackbox modules and scheduled probe jobs), decoded in `probe::config`.
    pub probes: crate::probe::config::ProbesConfig,
}

/// Keys allowed at the top level.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "global",
    "collectors",
    "scrape_configs",
    "rule_files",
    "alerting",
    "notify",
    "remote_write",
    "probes",
];
const GLOBAL_KEYS: &[&str] = &[
    "scrape_interval",
    "scrape_timeout",
    "evaluation_interval",
    "external_labels",
];

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(name.clone(), None, format!("cannot read: {e}")))?;
        Config::parse(&text, &name)
    }

    /// The embedded default configuration.
    pub fn embedded() -> Config {
        Config::parse(DEFAULT_CONFIG, "<embedded>").expect("the embedded config is valid")
    }

    /// Parses and validates `text`; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        Config::parse_with(text, file, COLLECTORS)
    }

    /// [`Config::parse`] against a given collector table (tests use a small one).
    pub fn parse_with(
        text: &str,
        file: &str,
        collectors: &[CollectorDef],
    ) -> Result<Config, ConfigError> {
        let d = Decoder { file };
        let root = yaml::parse(text).map_err(|e| d.err(e.pos, e.msg))?;
        let mut cfg = Config::default();
        let mut timeout_set = false;
        // Decoded after `global:`, whose intervals they inherit, wherever it appears.
        let mut scrape_node = None;
        let mut probes_node = None;
        for (k, v) in d.entries(&root, TOP_LEVEL_KEYS, "the top level")? {
            match d.key(k) {
                "global" => timeout_set = decode_global(&d, v, &mut cfg.global)?,
                "collectors" => cfg.collectors = decode_collectors(&d, v, collectors)?,
                "alerting" => cfg.alerting = crate::notify::config::decode_alerting(&d, v)?,
                "notify" => cfg.notify = crate::notify::route::decode_notify(&d, v)?,
                "scrape_configs" => scrape_node = Some(v),
                "rule_files" => cfg.rule_files = decode_rule_files(&d, v)?,
                "remote_write" => cfg.remote_write = crate::remote::config::decode_list(&d, v)?,
                "probes" => probes_node = Some(v),
                _ => unreachable!("entries() rejects unknown keys"),
            }
        }
        let g = &mut cfg.global;
        if !timeout_set {
            g.scrape_timeout = g.scrape_timeout.min(g.scrape_interval);
        } else if g.scrape_timeout > g.scrape_interval {
            let pos = find_key(&root, &["global", "scrape_timeout"]).unwrap_or_default();
            return Err(d.err(
                pos,
                format!(
                    "scrape_timeout ({}) is greater than scrape_interval ({})",
                    format_duration(g.scrape_timeout),
                    format_duration(g.scrape_interval)
                ),
            ));
        }
        if let Some(n) = scrape_node {
            cfg.scrape_configs = crate::scrape::config::decode_list(&d, n, &cfg.global)?;
        }
        if let Some(n) = probes_node {
            cfg.probes = crate::probe::config::decode_probes(&d, n, &cfg.global)?;
        }
        Ok(cfg)
    }
}

fn find_key(root: &Node, path: &[&str]) -> Option<Pos> {
    let mut node = root;
    let mut pos = None;
    for want in path {
        let Value::Map(entries) = &node.value else {
            return None;
        };
        let (k, v) = entries
            .iter()
            .find(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == want))?;
        pos = Some(k.pos);
        node = v;
    }
    pos
}

/// Turns YAML nodes into typed values with positioned errors; shared with the modules that
/// decode their own sections (relabel, scrape).
pub(crate) struct Decoder<'a> {
    pub(crate) file: &'a str,
}

impl Decoder<'_> {
    pub(crate) fn err(&self, pos: Pos, msg: impl Into<String>) -> ConfigError {
        ConfigError::new(self.file.to_string(), Some((pos.line, pos.col)), msg.into())
    }

    pub(crate) fn key<'n>(&self, k: &'n Node) -> &'n str {
        match &k.value {
            Value::Scalar { text, .. } => text,
            _ => "",
        }
    }

    /// The entries of a mapping (a null section is empty), with every key checked against
    /// `allowed` (None: any scalar key) and duplicates rejected.
    pub(crate) fn entries<'n>(
        &self,
        node: &'n Node,
        allowed: &[&str],
        section: &str,
    ) -> Result<&'n [(Node, Node)], ConfigError> {
        let entries: &[(Node, Node)] = match &node.value {
            Value::Map(e) => e,
            _ if node.is_null() => &[],
            _ => {
                return Err(self.err(
                    node.pos,
                    format!("{section} must be a mapping, not a {}", node.kind()),
                ))
            }
        };
        for (i, (k, _)) in entries.iter().enumerate() {
            let Value::Scalar { text, .. } = &k.value else {
                return Err(self.err(k.pos, format!("keys in {section} must be scalars")));
            };
            if !allowed.is_empty() && !allowed.contains(&text.as_str()) {
                return Err(self.err(
                    k.pos,
                    format!(
                        "unknown key {text:?} in {section} (expected one of: {})",
                        allowed.join(", ")
                    ),
                ));
            }
            if entries[..i].iter().any(|(p, _)| self.key(p) == text) {
                return Err(self.err(k.pos, format!("duplicate key {text:?} in {section}")));
            }
        }
        Ok(entries)
    }

    pub(crate) fn string<'n>(&self, node: &'n Node, what: &str) -> Result<&'n str, ConfigError> {
        match &node.value {
            Value::Scalar { text, .. } if !node.is_null() || what.is_empty() => Ok(text),
            _ => Err(self.err(
                node.pos,
                format!("{what} must be a string, not a {}", node.kind()),
            )),
        }
    }

    pub(crate) fn duration(&self, node: &Node, what: &str) -> Result<Duration, ConfigError> {
        let s = self.string(node, what)?;
        parse_duration(s).map_err(|e| self.err(node.pos, format!("{what}: {e}")))
    }

    pub(crate) fn boolean(&self, node: &Node, what: &str) -> Result<bool, ConfigError> {
        match &node.value {
            Value::Scalar {
                text,
                quoted: false,
            } => match text.as_str() {
                "true" | "True" | "TRUE" => Ok(true),
                "false" | "False" | "FALSE" => Ok(false),
                _ => Err(self.err(
                    node.pos,
                    format!("{what} must be true or false, not {text:?}"),
                )),
            },
            _ => Err(self.err(node.pos, format!("{what} must be true or false"))),
        }
    }
}

/// Decodes `global:`; returns whether scrape_timeout was given.
fn decode_global(d: &Decoder<'_>, node: &Node, g: &mut Global) -> Result<bool, ConfigError> {
    let mut timeout_set = false;
    for (k, v) in d.entries(node, GLOBAL_KEYS, "global")? {
        let key = d.key(k);
        match key {
            "scrape_interval" => g.scrape_interval = positive(d, v, key)?,
            "scrape_timeout" => {
                g.scrape_timeout = positive(d, v, key)?;
                timeout_set = true;
            }
            "evaluation_interval" => g.evaluation_interval = positive(d, v, key)?,
            "external_labels" => {
                g.external_labels.clear();
                for (ln, lv) in d.entries(v, &[], "external_labels")? {
                    let name = d.key(ln);
                    if !is_label_name(name) {
                        return Err(d.err(ln.pos, format!("{name:?} is not a valid label name")));
                    }
                    let value = d.string(lv, "a label value")?;
                    g.external_labels
                        .push((name.to_string(), value.to_string()));
                }
                g.external_labels.sort_unstable();
            }
            _ => unreachable!(),
        }
    }
    Ok(timeout_set)
}

/// Decodes `rule_files:`, a list of file names or globs (`*`, `?`).
fn decode_rule_files(d: &Decoder<'_>, node: &Node) -> Result<Vec<String>, ConfigError> {
    if node.is_null() {
        return Ok(Vec::new());
    }
    let Value::Seq(items) = &node.value else {
        return Err(d.err(node.pos, "rule_files must be a list of file names or globs"));
    };
    let mut out = Vec::new();
    for item in items {
        let s = d.string(item, "a rule file")?;
        if s.contains('[') {
            return Err(d.err(
                item.pos,
                format!("{s:?}: only * and ? are supported in rule_files globs"),
            ));
        }
        out.push(s.to_string());
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

fn decode_collectors(
    d: &Decoder<'_>,
    node: &Node,
    table: &[CollectorDef],
) -> Result<CollectorsConfig, ConfigError> {
    let mut allowed: Vec<&str> = vec!["disable_defaults"];
    allowed.extend(table.iter().map(|c| c.name));
    let mut out = CollectorsConfig::default();
    for (k, v) in d.entries(node, &allowed, "collectors")? {
        let name = d.key(k);
        if name == "disable_defaults" {
            out.disable_defaults = d.boolean(v, name)?;
            continue;
        }
        let def = table
            .iter()
            .find(|c| c.name == name)
            .expect("checked above");
        if let Value::Scalar { .. } = v.value {
            out.switches.push((name.to_string(), d.boolean(v, name)?));
            continue;
        }
        let mut keys: Vec<&str> = vec!["enabled"];
        let prefix = format!("{name}.");
        keys.extend(
            def.options
                .iter()
                .filter_map(|o| o.name.strip_prefix(&prefix)),
        );
        let section = format!("collectors.{name}");
        let mut enabled = true;
        let mut opts = CollectorOptions::default();
        let mut has_options = false;
        for (ok, ov) in d.entries(v, &keys, &section)? {
            let key = d.key(ok);
            if key == "enabled" {
                enabled = d.boolean(ov, key)?;
                continue;
            }
            let full = format!("{prefix}{key}");
            let value = d.string(ov, key)?;
            opts.set(&full, value);
            has_options = true;
            out.options.push((full, value.to_string()));
        }
        // Validate option values where the collector can tell (regexes compile, ...).
        if enabled && has_options {
            if let Err(e) = (def.new)(&opts) {
                return Err(d.err(k.pos, format!("collector {name}: {e}")));
            }
        }
        out.switches.push((name.to_string(), enabled));
    }
    Ok(out)
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, the label name syntax.
pub fn is_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Parses a Prometheus duration: units `y w d h m s ms`, each at most once and in that order
/// (`1h30m`, `90s`, `1w`); `0` alone is allowed. A year is 365 days.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    const UNITS: &[(&str, u64)] = &[
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let bad = || format!("not a valid duration string: {s:?}");
    if s.is_empty() {
        return Err(bad());
    }
    let mut rest = s;
    let mut next_unit = 0;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let i = UNITS[next_unit..]
            .iter()
            .position(|(u, _)| *u == unit)
            .ok_or_else(bad)?
            + next_unit;
        next_unit = i + 1;
        total = n
            .checked_mul(UNITS[i].1)
            .and_then(|v| total.checked_add(v))
            .filter(|v| *v <= i64::MAX as u64)
            .ok_or_else(|| format!("duration out of range: {s:?}"))?;
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration the way Prometheus prints them (`1m30s`, `500ms`, `0s`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("y", 365 * 86_400_000u64),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::{Collector, CollectorOption};

    fn refuse_bad_regex(o: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
        let v = o.get("filesystem.mount-points-exclude");
        regex_lite::Regex::new(v).map_err(|e| format!("mount-points-exclude: {e}"))?;
        Err("test collector".into())
    }

    static TABLE: &[CollectorDef] = &[
        CollectorDef {
            name: "filesystem",
            default_enabled: true,
            options: &[CollectorOption {
                name: "filesystem.mount-points-exclude",
                default: "^/(dev|proc)($|/)",
                help: "",
            }],
            new: refuse_bad_regex,
        },
        CollectorDef {
            name: "wifi",
            default_enabled: false,
            options: &[],
            new: refuse_bad_regex,
        },
    ];

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse_with(text, "promlet.yml", TABLE)
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn embedded_config_is_valid_and_collects_every_15s() {
        let c = Config::embedded();
        assert_eq!(c.global.scrape_interval, Duration::from_secs(15));
        assert_eq!(c.global.scrape_timeout, Duration::from_secs(10));
    }

    #[test]
    fn global_section_decodes_durations_and_sorted_external_labels() {
        let c = parse(
            "global:\n  scrape_interval: 1m30s\n  evaluation_interval: 30s\n  \
             external_labels:\n    site: home\n    device: pi\n",
        )
        .unwrap();
        assert_eq!(c.global.scrape_interval, Duration::from_secs(90));
        assert_eq!(c.global.evaluation_interval, Duration::from_secs(30));
        assert_eq!(c.global.scrape_timeout, Duration::from_secs(10));
        assert_eq!(
            c.global.external_labels,
            vec![
                ("device".into(), "pi".into()),
                ("site".into(), "home".into())
            ]
        );
    }

    #[test]
    fn unset_timeout_follows_a_short_interval_and_a_long_timeout_is_an_error() {
        let c = parse("global:\n  scrape_interval: 5s\n").unwrap();
        assert_eq!(c.global.scrape_timeout, Duration::from_secs(5));
        assert_eq!(
            err("global:\n  scrape_interval: 5s\n  scrape_timeout: 6s\n"),
            "promlet.yml:3:3: scrape_timeout (6s) is greater than scrape_interval (5s)"
        );
    }

    #[test]
    fn typo_key_is_reported_with_line_and_column() {
        assert_eq!(
            err("global:\n  scrape_intervall: 15s\n"),
            "promlet.yml:2:3: unknown key \"scrape_intervall\" in global (expected one of: \
             scrape_interval, scrape_timeout, evaluation_interval, external_labels)"
        );
        assert!(err("globl: {}\n").starts_with("promlet.yml:1:1: unknown key \"globl\""));
    }

    #[test]
    fn bad_values_are_positioned() {
        assert_eq!(
            err("global:\n  scrape_interval: 15 s\n"),
            "promlet.yml:2:20: scrape_interval: not a valid duration string: \"15 s\""
        );
        assert_eq!(
            err("global:\n  external_labels:\n    0bad: x\n"),
            "promlet.yml:3:5: \"0bad\" is not a valid label name"
        );
        assert_eq!(
            err("global: [1]\n"),
            "promlet.yml:1:9: global must be a mapping, not a sequence"
        );
        assert!(err("a: b: c\n").starts_with("promlet.yml:1:"));
        assert_eq!(
            err("global:\n  scrape_interval: 1s\n  scrape_interval: 2s\n"),
            "promlet.yml:3:3: duplicate key \"scrape_interval\" in global"
        );
    }

    #[test]
    fn collectors_section_switches_and_options() {
        let c = parse(
            "collectors:\n  disable_defaults: true\n  wifi: true\n  filesystem:\n    \
             mount-points-exclude: \"^/x\"\n",
        );
        // The test table's constructor always refuses, after checking the regex.
        assert_eq!(
            c.unwrap_err().to_string(),
            "promlet.yml:4:3: collector filesystem: test collector"
        );
        let c = parse("collectors:\n  disable_defaults: true\n  wifi: true\n  filesystem: false\n")
            .unwrap();
        assert!(c.collectors.disable_defaults);
        assert_eq!(
            c.collectors.switches,
            vec![("wifi".into(), true), ("filesystem".into(), false)]
        );
        let c = parse(
            "collectors:\n  filesystem:\n    enabled: false\n    mount-points-exclude: \"^/x\"\n",
        )
        .unwrap();
        assert_eq!(
            c.collectors.options,
            vec![("filesystem.mount-points-exclude".into(), "^/x".into())]
        );
        assert_eq!(
            err("collectors:\n  filesystem:\n    mount-points-exclude: \"(\"\n"),
            "promlet.yml:2:3: collector filesystem: mount-points-exclude: \
             regex parse error: unclosed group"
                .replace("regex parse error: unclosed group", &regex_err())
        );
        assert!(err("collectors:\n  cpuu: true\n")
            .starts_with("promlet.yml:2:3: unknown key \"cpuu\" in collectors"));
        assert!(
            err("collectors:\n  filesystem:\n    mount-point-exclude: x\n")
                .starts_with("promlet.yml:3:5: unknown key \"mount-point-exclude\"")
        );
    }

    fn regex_err() -> String {
        regex_lite::Regex::new("(").unwrap_err().to_string()
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
        assert_eq!(parse("# only a comment\n").unwrap(), Config::default());
    }

    #[test]
    fn durations_parse_like_prometheus() {
        let ms = |s: &str| parse_duration(s).map(|d| d.as_millis() as u64);
        assert_eq!(ms("15s"), Ok(15_000));
        assert_eq!(ms("1m30s"), Ok(90_000));
        assert_eq!(ms("1h"), Ok(3_600_000));
        assert_eq!(ms("2d12h"), Ok(216_000_000));
        assert_eq!(ms("1y"), Ok(31_536_000_000));
        assert_eq!(ms("500ms"), Ok(500));
        assert_eq!(ms("0"), Ok(0));
        for bad in ["", "15", "1.5s", "s", "1s1m", "1m1m", "-1s", "1x", " 1s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(format_duration(Duration::from_millis(90_500)), "1m30s500ms");
    }

    #[test]
    fn rule_files_are_a_list_of_globs() {
        let c = Config::parse("rule_files:\n  - rules/*.yml\n  - extra.yml\n", "c.yml").unwrap();
        assert_eq!(c.rule_files, ["rules/*.yml", "extra.yml"]);
        let e = Config::parse("rule_files: rules.yml\n", "c.yml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "c.yml:1:13: rule_files must be a list of file names or globs"
        );
        assert!(Config::parse("rule_files: ['[ab].yml']\n", "c.yml").is_err());
    }
}
