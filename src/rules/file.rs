//! Rule files in Prometheus's format: loading and validation (what `promtool check rules`
//! checks), with positioned errors.
//!
//! Owns: [`RuleFile`], [`GroupDef`], [`RuleDef`] and [`RuleError`]. Must not touch: evaluation
//! state (see `group`), the engine beyond parsing expressions.
//!
//! Names follow Prometheus 3 (UTF-8 metric and label names): any non-empty name is valid except
//! that a recording rule's name must not contain braces and `__name__` may not be set by
//! `labels`. Templates in alerting rules' labels and annotations are parsed at load time, so a
//! file that loads never meets an unsupported template construct at run time.

use super::template::Template;
use crate::config::yaml::{self, Node, Pos, Value};
use crate::model::Labels;
use crate::promql::Expr;
use std::path::Path;
use std::time::Duration;

/// One problem in a rule file: `FILE:LINE:COL: group "g", rule 2, "Name": what`.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleError {
    pub file: String,
    pub pos: Option<Pos>,
    /// `group "g", rule 2, "Name": ` or empty.
    pub context: String,
    pub msg: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pos {
            Some(p) => write!(
                f,
                "{}:{}:{}: {}{}",
                self.file, p.line, p.col, self.context, self.msg
            ),
            None => write!(f, "{}: {}{}", self.file, self.context, self.msg),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleKind {
    Recording,
    Alerting,
}

/// One rule as written, validated.
#[derive(Clone, Debug)]
pub struct RuleDef {
    pub kind: RuleKind,
    /// `record` or `alert`.
    pub name: String,
    pub expr_text: String,
    pub expr: Expr,
    pub for_: Duration,
    pub keep_firing_for: Duration,
    /// Raw label values (recording rules use them as-is).
    pub labels: Vec<(String, String)>,
    /// Alerting rules: parsed label templates, same order as `labels`.
    pub label_templates: Vec<Template>,
    pub annotations: Vec<(String, Template)>,
    /// Raw annotation text, for the API.
    pub annotation_texts: Vec<(String, String)>,
    pub pos: Pos,
}

/// One group as written, validated.
#[derive(Clone, Debug)]
pub struct GroupDef {
    pub name: String,
    /// None: the global `evaluation_interval`.
    pub interval: Option<Duration>,
    /// 0: no limit.
    pub limit: usize,
    pub query_offset: Option<Duration>,
    pub labels: Labels,
    pub rules: Vec<RuleDef>,
    pub file: String,
}

/// A loaded rule file.
#[derive(Clone, Debug, Default)]
pub struct RuleFile {
    pub groups: Vec<GroupDef>,
}

impl RuleFile {
    /// Total number of rules (`promtool check rules` prints it).
    pub fn rule_count(&self) -> usize {
        self.groups.iter().map(|g| g.rules.len()).sum()
    }

    /// Reads and validates `path`; every problem found is returned.
    pub fn load(path: &Path, ignore_unknown_fields: bool) -> Result<RuleFile, Vec<RuleError>> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![RuleError {
                file: name.clone(),
                pos: None,
                context: String::new(),
                msg: format!("cannot read: {e}"),
            }]
        })?;
        RuleFile::parse(&text, &name, ignore_unknown_fields)
    }

    /// Parses and validates `text`; `file` names it in errors.
    pub fn parse(
        text: &str,
        file: &str,
        ignore_unknown_fields: bool,
    ) -> Result<RuleFile, Vec<RuleError>> {
        let mut c = Checker {
            file,
            strict: !ignore_unknown_fields,
            errors: Vec::new(),
        };
        let root = match yaml::parse(text) {
            Ok(r) => r,
            Err(e) => {
                c.push(Some(e.pos), String::new(), format!("yaml: {}", e.msg));
                return Err(c.errors);
            }
        };
        let out = c.file_node(&root);
        if c.errors.is_empty() {
            Ok(out)
        } else {
            Err(c.errors)
        }
    }
}

const FILE_KEYS: &[&str] = &["groups"];
const GROUP_KEYS: &[&str] = &[
    "name",
    "interval",
    "query_offset",
    "limit",
    "rules",
    "labels",
];
const RULE_KEYS: &[&str] = &[
    "record",
    "alert",
    "expr",
    "for",
    "keep_firing_for",
    "labels",
    "annotations",
];

struct Checker<'a> {
    file: &'a str,
    strict: bool,
    errors: Vec<RuleError>,
}

fn text(n: &Node) -> Option<&str> {
    match &n.value {
        Value::Scalar { text, .. } => Some(text),
        _ => None,
    }
}

impl Checker<'_> {
    fn push(&mut self, pos: Option<Pos>, context: String, msg: String) {
        self.errors.push(RuleError {
            file: self.file.to_string(),
            pos,
            context,
            msg,
        });
    }

    /// A mapping's entries with unknown and repeated keys reported (null = empty).
    fn entries<'n>(
        &mut self,
        node: &'n Node,
        allowed: &[&str],
        what: &str,
        ctx: &str,
    ) -> Vec<(&'n str, &'n Node, Pos)> {
        let mut out: Vec<(&str, &Node, Pos)> = Vec::new();
        if node.is_null() {
            return out;
        }
        let Value::Map(entries) = &node.value else {
            self.push(
                Some(node.pos),
                ctx.to_string(),
                format!("{what}: expected a mapping, got a {}", node.kind()),
            );
            return out;
        };
        for (k, v) in entries {
            let key = text(k).unwrap_or("");
            if let Some((_, _, first)) = out.iter().find(|(n, _, _)| *n == key) {
                let line = first.line;
                self.push(
                    Some(k.pos),
                    ctx.to_string(),
                    format!("mapping key {key:?} already defined at line {line}"),
                );
                continue;
            }
            if !allowed.is_empty() && !allowed.contains(&key) {
                if self.strict {
                    self.push(
                        Some(k.pos),
                        ctx.to_string(),
                        format!("field {key} not found in {what}"),
                    );
                }
                continue;
            }
            out.push((key, v, k.pos));
        }
        out
    }

    fn scalar<'n>(&mut self, n: &'n Node, what: &str, ctx: &str) -> Option<&'n str> {
        match text(n) {
            Some(t) => Some(t),
            None => {
                self.push(
                    Some(n.pos),
                    ctx.to_string(),
                    format!("{what}: expected a string, got a {}", n.kind()),
                );
                None
            }
        }
    }

    fn duration(&mut self, n: &Node, what: &str, ctx: &str) -> Option<Duration> {
        let t = self.scalar(n, what, ctx)?;
        match crate::config::parse_duration(t) {
            Ok(d) => Some(d),
            Err(e) => {
                self.push(Some(n.pos), ctx.to_string(), format!("{what}: {e}"));
                None
            }
        }
    }

    /// A `name: value` string map, names validated.
    fn string_map(&mut self, n: &Node, what: &str, ctx: &str) -> Vec<(String, String, Pos)> {
        let mut out = Vec::new();
        for (k, v, pos) in self.entries(n, &[], what, ctx) {
            if k.is_empty() || k == "__name__" {
                self.push(
                    Some(pos),
                    ctx.to_string(),
                    format!("invalid label name: {k}"),
                );
                continue;
            }
            let val = if v.is_null() {
                Some("")
            } else {
                self.scalar(v, what, ctx)
            };
            if let Some(val) = val {
                out.push((k.to_string(), val.to_string(), pos));
            }
        }
        out
    }

    fn file_node(&mut self, root: &Node) -> RuleFile {
        let mut out = RuleFile::default();
        let mut names: Vec<String> = Vec::new();
        for (key, v, _) in self.entries(root, FILE_KEYS, "rule file", "") {
            if key != "groups" || v.is_null() {
                continue;
            }
            let Value::Seq(groups) = &v.value else {
                self.push(
                    Some(v.pos),
                    String::new(),
                    "groups: expected a sequence".into(),
                );
                continue;
            };
            for g in groups {
                if let Some(group) = self.group(g) {
                    if names.contains(&group.name) {
                        self.push(
                            Some(g.pos),
                            String::new(),
                            format!("groupname: {:?} is repeated in the same file", group.name),
                        );
                    }
                    names.push(group.name.clone());
                    out.groups.push(group);
                }
            }
        }
        out
    }

    fn group(&mut self, node: &Node) -> Option<GroupDef> {
        let mut g = GroupDef {
            name: String::new(),
            interval: None,
            limit: 0,
            query_offset: None,
            labels: Labels::new(),
            rules: Vec::new(),
            file: self.file.to_string(),
        };
        let entries = self.entries(node, GROUP_KEYS, "rule group", "");
        for (k, v, _) in &entries {
            if *k == "name" {
                g.name = self.scalar(v, "name", "").unwrap_or("").to_string();
            }
        }
        if g.name.is_empty() {
            self.push(
                Some(node.pos),
                String::new(),
                "Groupname must not be empty".into(),
            );
            return None;
        }
        let gctx = format!("group {:?}: ", g.name);
        let mut rules_node = None;
        for (k, v, _) in entries {
            match k {
                "interval" => g.interval = self.duration(v, "interval", &gctx),
                "query_offset" => g.query_offset = self.duration(v, "query_offset", &gctx),
                "limit" => match self.scalar(v, "limit", &gctx).map(str::parse::<i64>) {
                    Some(Ok(l)) => g.limit = l.max(0) as usize,
                    Some(Err(_)) => self.push(
                        Some(v.pos),
                        gctx.clone(),
                        "limit: expected an integer".into(),
                    ),
                    None => {}
                },
                "labels" => {
                    for (n, val, _) in self.string_map(v, "labels", &gctx) {
                        g.labels.set(n, val);
                    }
                }
                "rules" => rules_node = Some(v),
                _ => {}
            }
        }
        if let Some(r) = rules_node.filter(|r| !r.is_null()) {
            match &r.value {
                Value::Seq(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(rule) = self.rule(item, &g.name, i + 1) {
                            g.rules.push(rule);
                        }
                    }
                }
                _ => self.push(Some(r.pos), gctx, "rules: expected a sequence".into()),
            }
        }
        Some(g)
    }

    fn rule(&mut self, node: &Node, group: &str, index: usize) -> Option<RuleDef> {
        let pre = self.errors.len();
        let entries = self.entries(
            node,
            RULE_KEYS,
            "rule",
            &format!("group {group:?}, rule {index}: "),
        );
        let get = |k: &str| {
            entries
                .iter()
                .find(|(n, _, _)| *n == k)
                .map(|(_, v, p)| (*v, *p))
        };
        let record = get("record");
        let alert = get("alert");
        let name_node = record.or(alert);
        let name = name_node
            .and_then(|(v, _)| text(v))
            .unwrap_or("")
            .to_string();
        let ctx = format!("group {group:?}, rule {index}, {name:?}: ");
        let name_pos = name_node.map(|(v, _)| v.pos);
        let kind = match (record, alert) {
            (Some(_), Some(_)) => {
                self.push(
                    name_pos,
                    ctx,
                    "only one of 'record' and 'alert' must be set".into(),
                );
                return None;
            }
            (None, None) => {
                self.push(
                    Some(node.pos),
                    ctx,
                    "one of 'record' or 'alert' must be set".into(),
                );
                return None;
            }
            (Some(_), None) => RuleKind::Recording,
            (None, Some(_)) => RuleKind::Alerting,
        };
        if name.is_empty() {
            self.push(name_pos, ctx.clone(), "rule name must not be empty".into());
        }
        if kind == RuleKind::Recording {
            if name.contains(['{', '}']) {
                self.push(
                    name_pos,
                    ctx.clone(),
                    format!(
                        "braces present in the recording rule name; should it be in expr?: {name}"
                    ),
                );
            }
            for bad in ["for", "keep_firing_for", "annotations"] {
                if get(bad).is_some() {
                    self.push(
                        name_pos,
                        ctx.clone(),
                        format!("invalid field '{bad}' in recording rule"),
                    );
                }
            }
        }
        let mut expr_text = String::new();
        let mut expr = None;
        match get("expr") {
            None => self.push(
                Some(node.pos),
                ctx.clone(),
                "field 'expr' must be set in rule".into(),
            ),
            Some((v, _)) => {
                if let Some(t) = self.scalar(v, "expr", &ctx) {
                    expr_text = t.to_string();
                    if t.trim().is_empty() {
                        self.push(
                            Some(v.pos),
                            ctx.clone(),
                            "field 'expr' must be set in rule".into(),
                        );
                    } else {
                        match crate::promql::parse(t) {
                            Ok(e) => expr = Some(e),
                            Err(e) => self.push(
                                Some(v.pos),
                                ctx.clone(),
                                format!("could not parse expression: {e}"),
                            ),
                        }
                    }
                }
            }
        }
        let for_ = get("for")
            .and_then(|(v, _)| self.duration(v, "for", &ctx))
            .unwrap_or_default();
        let keep = get("keep_firing_for")
            .and_then(|(v, _)| self.duration(v, "keep_firing_for", &ctx))
            .unwrap_or_default();
        let tname = format!("__alert_{name}");
        let mut labels = Vec::new();
        let mut label_templates = Vec::new();
        if let Some((v, _)) = get("labels") {
            for (n, val, pos) in self.string_map(v, "labels", &ctx) {
                if kind == RuleKind::Alerting {
                    match Template::parse(&tname, &val) {
                        Ok(t) => label_templates.push(t),
                        Err(e) => {
                            self.push(Some(pos), ctx.clone(), format!("label {n:?}: {e}"));
                            continue;
                        }
                    }
                }
                labels.push((n, val));
            }
        }
        let mut annotations = Vec::new();
        let mut annotation_texts = Vec::new();
        if let Some((v, _)) = get("annotations").filter(|_| kind == RuleKind::Alerting) {
            for (k, val, pos) in self.entries(v, &[], "annotations", &ctx) {
                let Some(t) = (if val.is_null() {
                    Some("")
                } else {
                    self.scalar(val, "annotations", &ctx)
                }) else {
                    continue;
                };
                if k.is_empty() {
                    self.push(Some(pos), ctx.clone(), "invalid annotation name: ".into());
                    continue;
                }
                match Template::parse(&tname, t) {
                    Ok(tpl) => {
                        annotations.push((k.to_string(), tpl));
                        annotation_texts.push((k.to_string(), t.to_string()));
                    }
                    Err(e) => self.push(Some(pos), ctx.clone(), format!("annotation {k:?}: {e}")),
                }
            }
        }
        if self.errors.len() > pre {
            return None;
        }
        Some(RuleDef {
            kind,
            name,
            expr_text,
            expr: expr?,
            for_,
            keep_firing_for: keep,
            labels,
            label_templates,
            annotations,
            annotation_texts,
            pos: node.pos,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(text: &str) -> Vec<String> {
        match RuleFile::parse(text, "r.yml", false) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_full_group_loads() {
        let f = RuleFile::parse(
            "groups:\n- name: g\n  interval: 30s\n  limit: 5\n  query_offset: 1m\n  labels: {team: a}\n  rules:\n  - record: job:up:sum\n    expr: sum by (job) (up)\n    labels: {x: y}\n  - alert: Down\n    expr: up == 0\n    for: 5m\n    keep_firing_for: 1m\n    annotations:\n      s: '{{ $labels.job }}'\n",
            "r.yml",
            false,
        )
        .unwrap();
        let g = &f.groups[0];
        assert_eq!(g.interval, Some(Duration::from_secs(30)));
        assert_eq!(g.limit, 5);
        assert_eq!(g.query_offset, Some(Duration::from_secs(60)));
        assert_eq!(g.labels.get("team"), Some("a"));
        assert_eq!(g.rules[1].for_, Duration::from_secs(300));
        assert_eq!(g.rules[1].keep_firing_for, Duration::from_secs(60));
        assert_eq!(f.rule_count(), 2);
    }

    #[test]
    fn errors_name_position_group_rule_and_reason() {
        assert_eq!(
            errs("groups:\n  - name: bad-syntax\n    rules:\n      - record: x\n        expr: 'test +'\n"),
            vec!["r.yml:5:15: group \"bad-syntax\", rule 1, \"x\": could not parse expression: 1:7: parse error: unexpected end of input"]
        );
        assert_eq!(
            errs("groups:\n- name: a\n  rules:\n  - alert: A\n    expr: up\n    annotations:\n      s: '{{ $label.x }}'\n"),
            vec!["r.yml:7:7: group \"a\", rule 1, \"A\": annotation \"s\": template: __alert_A:1: undefined variable \"$label\""]
        );
        let e = errs("groups:\n- name: a\n  rules: []\n- name: a\n  rules: []\n");
        assert!(
            e[0].contains("groupname: \"a\" is repeated in the same file"),
            "{e:?}"
        );
        let e = errs("groups:\n- name: a\n  rules:\n  - alert: A\n    expr: up\n    severity: x\n");
        assert_eq!(
            e,
            vec!["r.yml:6:5: group \"a\", rule 1: field severity not found in rule"]
        );
        let e =
            errs("groups:\n- name: a\n  rules:\n  - record: 'a{b}'\n    expr: up\n    for: 1m\n");
        assert_eq!(e.len(), 2, "{e:?}");
    }

    #[test]
    fn unknown_fields_can_be_ignored() {
        let t = "groups:\n- name: a\n  owner: x\n  rules: []\n";
        assert!(RuleFile::parse(t, "r.yml", false).is_err());
        assert!(RuleFile::parse(t, "r.yml", true).is_ok());
    }
}
