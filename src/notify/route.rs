//! The local route tree, in Alertmanager's config format (a subset), under promlet's `notify:`
//! section.
//!
//! Owns: decoding `route`, `inhibit_rules` and `receivers` into [`RouteConfig`], matcher syntax
//! (new-style `matchers` and the older `match`/`match_re`), inheritance of receiver, group_by
//! and timings from parent routes, and Alertmanager's matching walk ([`RouteConfig::matching`]).
//! Must not touch: time, delivery ([`super::dispatch`] does both).
//!
//! ```yaml
//! notify:
//!   route:
//!     receiver: log
//!     group_by: [alertname]          # or ['...'] for every label
//!     group_wait: 30s
//!     group_interval: 5m
//!     repeat_interval: 4h
//!     routes:
//!     - matchers: ['severity="critical"']
//!       receiver: buzzer
//!       continue: true
//!   inhibit_rules:
//!   - source_matchers: ['severity="critical"']
//!     target_matchers: ['severity="warning"']
//!     equal: [instance]
//!   receivers:
//!   - name: log
//!     log_configs: [{}]
//!   - name: buzzer
//!     exec_configs: [{command: [/usr/local/bin/buzz, --twice], timeout: 10s}]
//!     webhook_configs: [{url: 'http://127.0.0.1:5001/hook'}]
//! ```
//!
//! `exec_configs` and `log_configs` are promlet's own receiver kinds, named like
//! Alertmanager's `*_configs`. Other Alertmanager integrations (email, Slack, …) and time
//! intervals are refused at load time.

use super::sender::{HttpUrl, HTTPS_SUPPORTED};
use crate::config::yaml::{Node, Value};
use crate::config::{ConfigError, Decoder};
use crate::model::{Labels, MatchOp, Matcher};
use std::time::Duration;

/// `notify:`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteConfig {
    /// Routes flattened depth-first; index 0 is the root. Empty: no local routing.
    pub routes: Vec<Route>,
    pub inhibit_rules: Vec<InhibitRule>,
    pub receivers: Vec<Receiver>,
}

/// One route with everything inherited already applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub receiver: String,
    /// None: `['...']`, group by every label.
    pub group_by: Option<Vec<String>>,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    pub matchers: Vec<Matcher>,
    pub continue_matching: bool,
    /// Indices of child routes in [`RouteConfig::routes`].
    pub children: Vec<usize>,
    /// Alertmanager's route key (`{}/{severity="critical"}`), the first part of a group key.
    pub key: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InhibitRule {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Receiver {
    pub name: String,
    pub webhooks: Vec<WebhookConfig>,
    pub execs: Vec<ExecConfig>,
    pub logs: Vec<LogConfig>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WebhookConfig {
    pub url: String,
    pub send_resolved: bool,
    /// 0: no limit.
    pub max_alerts: usize,
    pub timeout: Duration,
    /// For an https url: the client (system roots), built at the first delivery.
    pub tls_client: crate::scrape::client::TlsClientCache,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExecConfig {
    /// argv; the payload arrives on stdin.
    pub command: Vec<String>,
    pub send_resolved: bool,
    /// The command is killed after this.
    pub timeout: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    pub send_resolved: bool,
}

impl RouteConfig {
    /// Alertmanager's walk: a matching route hands the alert to its first matching child (and
    /// further children while they have `continue`); a route no child takes keeps it.
    pub fn matching(&self, labels: &Labels) -> Vec<usize> {
        let mut out = Vec::new();
        if !self.routes.is_empty() {
            self.walk(0, labels, &mut out);
        }
        out
    }

    fn walk(&self, i: usize, labels: &Labels, out: &mut Vec<usize>) -> bool {
        let r = &self.routes[i];
        if !matches_all(&r.matchers, labels) {
            return false;
        }
        let before = out.len();
        for &c in &r.children {
            if self.walk(c, labels, out) && !self.routes[c].continue_matching {
                break;
            }
        }
        if out.len() == before {
            out.push(i);
        }
        true
    }

    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.name == name)
    }
}

pub fn matches_all(ms: &[Matcher], labels: &Labels) -> bool {
    ms.iter()
        .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
}

/// Parses one new-style matcher: `name="value"`, `name=~"re"`, `name!=value`, …
pub fn parse_matcher(s: &str) -> Result<Matcher, String> {
    let s = s.trim();
    let ops = [
        ("=~", MatchOp::Regex),
        ("!~", MatchOp::NotRegex),
        ("!=", MatchOp::NotEqual),
        ("=", MatchOp::Equal),
    ];
    let (at, len, op) = ops
        .iter()
        .filter_map(|(t, op)| s.find(t).map(|i| (i, t.len(), *op)))
        .min_by_key(|(i, l, _)| (*i, usize::MAX - l))
        .ok_or_else(|| format!("matcher {s:?} has no operator (=, !=, =~, !~)"))?;
    let name = s[..at].trim();
    let raw = s[at + len..].trim();
    if name.is_empty() {
        return Err(format!("matcher {s:?} has no label name"));
    }
    let value = if let Some(inner) = raw.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .ok_or_else(|| format!("matcher {s:?}: unterminated quote"))?;
        unescape(inner)
    } else {
        raw.to_string()
    };
    Matcher::new(op, name, value).map_err(|e| format!("matcher {s:?}: {e}"))
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn matchers_text(ms: &[Matcher]) -> String {
    let parts: Vec<String> = ms
        .iter()
        .map(|m| format!("{}{}{:?}", m.name, m.op.as_str(), m.value))
        .collect();
    format!("{{{}}}", parts.join(","))
}

const ROUTE_KEYS: &[&str] = &[
    "receiver",
    "group_by",
    "group_wait",
    "group_interval",
    "repeat_interval",
    "matchers",
    "match",
    "match_re",
    "continue",
    "routes",
];
const RECEIVER_KEYS: &[&str] = &["name", "webhook_configs", "exec_configs", "log_configs"];

/// Decodes `notify:`.
pub(crate) fn decode_notify(d: &Decoder<'_>, node: &Node) -> Result<RouteConfig, ConfigError> {
    let mut cfg = RouteConfig::default();
    let mut route_node = None;
    for (k, v) in d.entries(node, &["route", "inhibit_rules", "receivers"], "notify")? {
        match d.key(k) {
            "route" => route_node = Some((k, v)),
            "inhibit_rules" => {
                for r in seq(d, v, "inhibit_rules")? {
                    cfg.inhibit_rules.push(decode_inhibit(d, r)?);
                }
            }
            _ => {
                for r in seq(d, v, "receivers")? {
                    let rc = decode_receiver(d, r)?;
                    if cfg.receiver(&rc.name).is_some() {
                        return Err(d.err(r.pos, format!("receiver {:?} defined twice", rc.name)));
                    }
                    cfg.receivers.push(rc);
                }
            }
        }
    }
    let Some((k, v)) = route_node else {
        if cfg.receivers.is_empty() {
            return Ok(cfg);
        }
        return Err(d.err(node.pos, "notify: receivers need a route"));
    };
    let root = Route {
        receiver: String::new(),
        group_by: Some(Vec::new()),
        group_wait: Duration::from_secs(30),
        group_interval: Duration::from_secs(300),
        repeat_interval: Duration::from_secs(4 * 3600),
        matchers: Vec::new(),
        continue_matching: false,
        children: Vec::new(),
        key: "{}".into(),
    };
    decode_route(d, v, &root, true, &mut cfg)?;
    if cfg.routes[0].receiver.is_empty() {
        return Err(d.err(k.pos, "the root route needs a receiver"));
    }
    Ok(cfg)
}

fn decode_route(
    d: &Decoder<'_>,
    node: &Node,
    parent: &Route,
    is_root: bool,
    cfg: &mut RouteConfig,
) -> Result<usize, ConfigError> {
    let mut r = parent.clone();
    r.matchers.clear();
    r.children.clear();
    r.continue_matching = false;
    let idx = cfg.routes.len();
    cfg.routes.push(r.clone());
    let mut children = Vec::new();
    for (k, v) in d.entries(node, ROUTE_KEYS, "a route")? {
        match d.key(k) {
            "receiver" => {
                let name = d.string(v, "receiver")?;
                if cfg.receiver(name).is_none() {
                    return Err(d.err(v.pos, format!("undefined receiver {name:?}")));
                }
                r.receiver = name.to_string();
            }
            "group_by" => {
                let mut names = Vec::new();
                for n in seq(d, v, "group_by")? {
                    names.push(d.string(n, "a group_by label")?.to_string());
                }
                r.group_by = if names.iter().any(|n| n == "...") {
                    if names.len() > 1 {
                        return Err(d.err(v.pos, "group_by '...' must be alone"));
                    }
                    None
                } else {
                    Some(names)
                };
            }
            "group_wait" => r.group_wait = d.duration(v, "group_wait")?,
            "group_interval" => r.group_interval = positive(d, v, "group_interval")?,
            "repeat_interval" => r.repeat_interval = positive(d, v, "repeat_interval")?,
            "matchers" => {
                for m in seq(d, v, "matchers")? {
                    let s = d.string(m, "a matcher")?;
                    r.matchers
                        .push(parse_matcher(s).map_err(|e| d.err(m.pos, e))?);
                }
            }
            "match" | "match_re" => {
                let op = if d.key(k) == "match" {
                    MatchOp::Equal
                } else {
                    MatchOp::Regex
                };
                for (mk, mv) in d.entries(v, &[], d.key(k))? {
                    let val = d.string(mv, "a match value")?;
                    let m = Matcher::new(op, d.key(mk), val)
                        .map_err(|e| d.err(mv.pos, format!("bad regex: {e}")))?;
                    r.matchers.push(m);
                }
            }
            "continue" => r.continue_matching = d.boolean(v, "continue")?,
            _ => children.extend(seq(d, v, "routes")?),
        }
    }
    if is_root && (!r.matchers.is_empty() || r.continue_matching) {
        return Err(d.err(
            node.pos,
            "the root route must not have matchers or continue",
        ));
    }
    if !is_root {
        r.key = format!("{}/{}", parent.key, matchers_text(&r.matchers));
    }
    cfg.routes[idx] = r.clone();
    for c in children {
        let ci = decode_route(d, c, &r, false, cfg)?;
        cfg.routes[idx].children.push(ci);
    }
    Ok(idx)
}

fn positive(d: &Decoder<'_>, v: &Node, what: &str) -> Result<Duration, ConfigError> {
    let t = d.duration(v, what)?;
    if t.is_zero() {
        return Err(d.err(v.pos, format!("{what} must be greater than 0")));
    }
    Ok(t)
}

fn decode_inhibit(d: &Decoder<'_>, node: &Node) -> Result<InhibitRule, ConfigError> {
    let mut r = InhibitRule {
        source: Vec::new(),
        target: Vec::new(),
        equal: Vec::new(),
    };
    let keys = [
        "source_matchers",
        "target_matchers",
        "source_match",
        "target_match",
        "source_match_re",
        "target_match_re",
        "equal",
    ];
    for (k, v) in d.entries(node, &keys, "an inhibit rule")? {
        let key = d.key(k);
        let dest = if key.starts_with("source") {
            &mut r.source
        } else {
            &mut r.target
        };
        match key {
            "equal" => {
                for n in seq(d, v, "equal")? {
                    r.equal.push(d.string(n, "a label name")?.to_string());
                }
            }
            "source_matchers" | "target_matchers" => {
                for m in seq(d, v, key)? {
                    let s = d.string(m, "a matcher")?;
                    dest.push(parse_matcher(s).map_err(|e| d.err(m.pos, e))?);
                }
            }
            _ => {
                let op = if key.ends_with("_re") {
                    MatchOp::Regex
                } else {
                    MatchOp::Equal
                };
                for (mk, mv) in d.entries(v, &[], key)? {
                    let val = d.string(mv, "a match value")?;
                    dest.push(
                        Matcher::new(op, d.key(mk), val)
                            .map_err(|e| d.err(mv.pos, format!("bad regex: {e}")))?,
                    );
                }
            }
        }
    }
    Ok(r)
}

fn decode_receiver(d: &Decoder<'_>, node: &Node) -> Result<Receiver, ConfigError> {
    let mut rc = Receiver {
        name: String::new(),
        webhooks: Vec::new(),
        execs: Vec::new(),
        logs: Vec::new(),
    };
    for (k, v) in d.entries(
        node,
        RECEIVER_KEYS,
        "a receiver (supported: webhook_configs, exec_configs, log_configs)",
    )? {
        match d.key(k) {
            "name" => rc.name = d.string(v, "name")?.to_string(),
            "webhook_configs" => {
                for w in seq(d, v, "webhook_configs")? {
                    let mut wc = WebhookConfig {
                        url: String::new(),
                        send_resolved: true,
                        max_alerts: 0,
                        timeout: Duration::from_secs(10),
                        tls_client: Default::default(),
                    };
                    for (wk, wv) in d.entries(
                        w,
                        &["url", "send_resolved", "max_alerts", "timeout"],
                        "a webhook_config",
                    )? {
                        match d.key(wk) {
                            "url" => {
                                let u = d.string(wv, "url")?;
                                let url = HttpUrl::parse(u).map_err(|e| d.err(wv.pos, e))?;
                                if url.https && !HTTPS_SUPPORTED {
                                    return Err(d.err(wv.pos, format!("webhook url {u:?}: https needs a promlet built with the `tls` feature")));
                                }
                                wc.url = u.to_string();
                            }
                            "send_resolved" => wc.send_resolved = d.boolean(wv, "send_resolved")?,
                            "max_alerts" => {
                                let s = d.string(wv, "max_alerts")?;
                                wc.max_alerts = s.parse().map_err(|_| {
                                    d.err(wv.pos, format!("max_alerts {s:?} is not a count"))
                                })?;
                            }
                            _ => wc.timeout = positive(d, wv, "timeout")?,
                        }
                    }
                    if wc.url.is_empty() {
                        return Err(d.err(w.pos, "a webhook_config needs a url"));
                    }
                    rc.webhooks.push(wc);
                }
            }
            "exec_configs" => {
                for e in seq(d, v, "exec_configs")? {
                    let mut ec = ExecConfig {
                        command: Vec::new(),
                        send_resolved: true,
                        timeout: Duration::from_secs(30),
                    };
                    for (ek, ev) in d.entries(
                        e,
                        &["command", "send_resolved", "timeout"],
                        "an exec_config",
                    )? {
                        match d.key(ek) {
                            "command" => {
                                for a in seq(d, ev, "command")? {
                                    ec.command
                                        .push(d.string(a, "a command argument")?.to_string());
                                }
                            }
                            "send_resolved" => ec.send_resolved = d.boolean(ev, "send_resolved")?,
                            _ => ec.timeout = positive(d, ev, "timeout")?,
                        }
                    }
                    if ec.command.is_empty() {
                        return Err(d.err(
                            e.pos,
                            "an exec_config needs a command (a list: program and arguments)",
                        ));
                    }
                    rc.execs.push(ec);
                }
            }
            _ => {
                for l in seq(d, v, "log_configs")? {
                    let mut lc = LogConfig {
                        send_resolved: true,
                    };
                    for (lk, lv) in d.entries(l, &["send_resolved"], "a log_config")? {
                        if d.key(lk) == "send_resolved" {
                            lc.send_resolved = d.boolean(lv, "send_resolved")?;
                        }
                    }
                    rc.logs.push(lc);
                }
            }
        }
    }
    if rc.name.is_empty() {
        return Err(d.err(node.pos, "a receiver needs a name"));
    }
    Ok(rc)
}

fn seq<'n>(d: &Decoder<'_>, node: &'n Node, what: &str) -> Result<&'n [Node], ConfigError> {
    match &node.value {
        Value::Seq(items) => Ok(items),
        _ if node.is_null() => Ok(&[]),
        _ => Err(d.err(
            node.pos,
            format!("{what} must be a sequence, not a {}", node.kind()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    pub(crate) const TREE: &str = "notify:
  route:
    receiver: default
    group_by: [alertname]
    routes:
    - matchers: ['severity=\"critical\"']
      receiver: pager
      continue: true
      routes:
      - match: {team: db}
        receiver: db
    - match_re: {severity: 'warn.*'}
      receiver: warn
      group_by: ['...']
      group_wait: 1s
  receivers:
  - name: default
    log_configs: [{}]
  - name: pager
    webhook_configs: [{url: 'http://127.0.0.1:1/hook', send_resolved: false}]
  - name: db
    exec_configs: [{command: [cat]}]
  - name: warn
";

    fn tree() -> RouteConfig {
        Config::parse(TREE, "t.yml").unwrap().notify
    }

    fn names(c: &RouteConfig, l: &[(&str, &str)]) -> Vec<String> {
        c.matching(&Labels::from_pairs(l.iter().copied()))
            .iter()
            .map(|&i| c.routes[i].receiver.clone())
            .collect()
    }

    #[test]
    fn routing_walks_children_with_continue_like_alertmanager() {
        let c = tree();
        assert_eq!(names(&c, &[("alertname", "x")]), ["default"]);
        assert_eq!(names(&c, &[("severity", "critical")]), ["pager"]);
        assert_eq!(
            names(&c, &[("severity", "critical"), ("team", "db")]),
            ["db"]
        );
        assert_eq!(names(&c, &[("severity", "warning")]), ["warn"]);
    }

    #[test]
    fn children_inherit_and_keys_name_their_matchers() {
        let c = tree();
        let warn = &c.routes[c.matching(&Labels::from_pairs([("severity", "warn")]))[0]];
        assert_eq!(warn.group_by, None);
        assert_eq!(warn.group_wait, Duration::from_secs(1));
        assert_eq!(warn.repeat_interval, Duration::from_secs(4 * 3600));
        let db = &c.routes[c.matching(&Labels::from_pairs([
            ("severity", "critical"),
            ("team", "db"),
        ]))[0]];
        assert_eq!(db.group_by.as_deref(), Some(&["alertname".to_string()][..]));
        assert_eq!(db.key, "{}/{severity=\"critical\"}/{team=\"db\"}");
    }

    #[test]
    fn new_style_matchers_parse_quotes_and_operators() {
        let m = parse_matcher(r#"job=~"node|pi""#).unwrap();
        assert_eq!((m.op, m.value.as_str()), (MatchOp::Regex, "node|pi"));
        let m = parse_matcher("severity != warning").unwrap();
        assert_eq!(
            (m.op, m.name.as_str(), m.value.as_str()),
            (MatchOp::NotEqual, "severity", "warning")
        );
        let m = parse_matcher(r#"msg="a \"b\"""#).unwrap();
        assert_eq!(m.value, "a \"b\"");
        assert!(parse_matcher("novalue").is_err());
        assert!(parse_matcher("x=~\"(\"").is_err());
    }

    #[test]
    fn bad_trees_are_refused_with_positions() {
        let e = |y: &str| Config::parse(y, "t.yml").unwrap_err().to_string();
        assert!(e("notify:\n  route: {receiver: nope}\n").contains("undefined receiver"));
        assert!(e(
            "notify:\n  route: {receiver: a}\n  receivers:\n  - name: a\n    email_configs: []\n"
        )
        .contains("t.yml:5:5"));
        assert!(e(
            "notify:\n  route: {receiver: a, matchers: ['a=b']}\n  receivers: [{name: a}]\n"
        )
        .contains("root route"));
        assert!(e(
            "notify:\n  route: {receiver: a, group_interval: 0s}\n  receivers: [{name: a}]\n"
        )
        .contains("greater than 0"));
        let hook = |url: &str| {
            e(&format!(
                "notify:\n  route: {{receiver: a}}\n  receivers:\n  - name: a\n    webhook_configs: [{{url: '{url}'}}]\n"
            ))
        };
        if !cfg!(feature = "tls") {
            let https = hook("https://hooks.lan/x");
            assert!(
                https.contains("t.yml:5:29") && https.contains("`tls` feature"),
                "{https}"
            );
        }
        assert!(hook("ftp://h/x").contains("http:// or https://"));
        assert!(hook("http://h:99999/x").contains("bad port"));
    }
}
