//! Prometheus `relabel_config`: decoding from YAML and applying a list of rules to a label set.
//!
//! Owns: [`RelabelConfig`] (every action Prometheus 3 has: replace, keep, drop, keepequal,
//! dropequal, labelmap, labeldrop, labelkeep, hashmod, lowercase, uppercase), its validation
//! (the same rules and messages as Prometheus's `relabel.Config.Validate`), `$1`/`${name}`
//! expansion with Go's `Regexp.Expand` rules, and the md5-based hash `hashmod` uses.
//! Must not touch: sockets, the TSDB, the clock. Used by scrape (target and metric relabeling)
//! and notify (alert relabeling).
//!
//! Regexes are fully anchored as in Prometheus (`^(?s:…)$`) and use regex-lite: linear time,
//! but no `\p{..}` Unicode classes. Label names follow the classic syntax
//! (`[a-zA-Z_][a-zA-Z0-9_]*`); Prometheus 3's UTF-8 label names are not accepted as targets.

use crate::config::yaml::{Node, Value};
use crate::config::{is_label_name, ConfigError, Decoder};
use crate::model::Labels;
use regex_lite::{Captures, Regex};

/// What a rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl Action {
    const ALL: &'static [(&'static str, Action)] = &[
        ("replace", Action::Replace),
        ("keep", Action::Keep),
        ("drop", Action::Drop),
        ("keepequal", Action::KeepEqual),
        ("dropequal", Action::DropEqual),
        ("hashmod", Action::HashMod),
        ("labelmap", Action::LabelMap),
        ("labeldrop", Action::LabelDrop),
        ("labelkeep", Action::LabelKeep),
        ("lowercase", Action::Lowercase),
        ("uppercase", Action::Uppercase),
    ];

    /// Parses an action name; case does not matter, as in Prometheus.
    pub fn parse(s: &str) -> Option<Action> {
        let lower = s.to_ascii_lowercase();
        Action::ALL
            .iter()
            .find(|(n, _)| *n == lower)
            .map(|(_, a)| *a)
    }

    pub fn as_str(self) -> &'static str {
        Action::ALL
            .iter()
            .find(|(_, a)| *a == self)
            .map(|(n, _)| *n)
            .unwrap_or("replace")
    }
}

/// The defaults Prometheus fills in for omitted fields.
pub const DEFAULT_SEPARATOR: &str = ";";
pub const DEFAULT_REGEX: &str = "(.*)";
pub const DEFAULT_REPLACEMENT: &str = "$1";

/// One validated relabeling rule.
#[derive(Clone, Debug)]
pub struct RelabelConfig {
    pub action: Action,
    pub source_labels: Vec<String>,
    pub separator: String,
    pub target_label: String,
    /// The regex as written (unanchored); [`RelabelConfig::regex`] is the anchored compiled form.
    pub regex_text: String,
    regex: Regex,
    pub modulus: u64,
    pub replacement: String,
}

impl PartialEq for RelabelConfig {
    fn eq(&self, o: &Self) -> bool {
        self.action == o.action
            && self.source_labels == o.source_labels
            && self.separator == o.separator
            && self.target_label == o.target_label
            && self.regex_text == o.regex_text
            && self.modulus == o.modulus
            && self.replacement == o.replacement
    }
}

/// Compiles a relabel regex anchored at both ends, as Prometheus does.
pub fn compile_regex(text: &str) -> Result<Regex, regex_lite::Error> {
    Regex::new(&format!("^(?s:{text})$"))
}

/// True when `s` contains a `$name`/`${name}` reference (Prometheus's `varInRegexTemplate`).
fn has_template_var(s: &str) -> bool {
    s.contains('$')
}

/// The target syntax Prometheus accepts for replace/labelmap templates:
/// label-name characters and `$name`/`${name}` references, starting with a letter, `_` or `$`.
fn is_relabel_target(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() {
        return false;
    }
    let mut i = 0;
    let mut first = true;
    while i < b.len() {
        let c = b[i];
        if c == b'$' {
            i += 1;
            if i < b.len() && b[i] == b'{' {
                let start = i + 1;
                let end = start + b[start..].iter().take_while(|c| is_word(**c)).count();
                if end == start || end >= b.len() || b[end] != b'}' {
                    return false;
                }
                i = end + 1;
            } else {
                let n = b[i..].iter().take_while(|c| is_word(**c)).count();
                if n == 0 {
                    return false;
                }
                i += n;
            }
        } else if c.is_ascii_alphabetic() || c == b'_' || (!first && c.is_ascii_digit()) {
            i += 1;
        } else {
            return false;
        }
        first = false;
    }
    true
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

impl RelabelConfig {
    /// Builds and validates a rule; the error text matches Prometheus's where it has one.
    pub fn new(
        action: Action,
        source_labels: Vec<String>,
        separator: Option<String>,
        target_label: String,
        regex: Option<String>,
        modulus: u64,
        replacement: Option<String>,
    ) -> Result<RelabelConfig, String> {
        let a = action.as_str();
        let separator_set = separator.is_some();
        let regex_set = regex.is_some();
        let replacement_set = replacement.is_some();
        let regex_text = regex.unwrap_or_else(|| DEFAULT_REGEX.to_string());
        let compiled =
            compile_regex(&regex_text).map_err(|e| format!("invalid regex {regex_text:?}: {e}"))?;
        let c = RelabelConfig {
            action,
            source_labels,
            separator: separator.unwrap_or_else(|| DEFAULT_SEPARATOR.to_string()),
            target_label,
            regex_text,
            regex: compiled,
            modulus,
            replacement: replacement.unwrap_or_else(|| DEFAULT_REPLACEMENT.to_string()),
        };
        use Action::*;
        for l in &c.source_labels {
            if !is_label_name(l) {
                return Err(format!("{l:?} is not a valid label name in source_labels"));
            }
        }
        if action == HashMod && c.modulus == 0 {
            return Err("relabel configuration for hashmod requires non-zero modulus".into());
        }
        let needs_target = matches!(
            action,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        );
        if needs_target && c.target_label.is_empty() {
            return Err(format!(
                "relabel configuration for {a} action requires 'target_label' value"
            ));
        }
        let target_ok = match action {
            Replace if has_template_var(&c.target_label) => is_relabel_target(&c.target_label),
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual => {
                is_label_name(&c.target_label)
            }
            _ => true,
        };
        if !target_ok {
            return Err(format!(
                "{:?} is invalid 'target_label' for {a} action",
                c.target_label
            ));
        }
        if matches!(action, Lowercase | Uppercase | KeepEqual | DropEqual)
            && replacement_set
            && c.replacement != DEFAULT_REPLACEMENT
        {
            return Err(format!("'replacement' can not be set for {a} action"));
        }
        if action == LabelMap && !is_relabel_target(&c.replacement) {
            return Err(format!(
                "{:?} is invalid 'replacement' for {a} action",
                c.replacement
            ));
        }
        if matches!(action, KeepEqual | DropEqual)
            && ((regex_set && c.regex_text != DEFAULT_REGEX)
                || c.modulus != 0
                || (separator_set && c.separator != DEFAULT_SEPARATOR)
                || (replacement_set && c.replacement != DEFAULT_REPLACEMENT))
        {
            return Err(format!(
                "{a} action requires only 'source_labels' and `target_label`, and no other fields"
            ));
        }
        if matches!(action, LabelDrop | LabelKeep)
            && (!c.source_labels.is_empty()
                || !c.target_label.is_empty()
                || c.modulus != 0
                || c.separator != DEFAULT_SEPARATOR
                || c.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(format!(
                "{a} action requires only 'regex', and no other fields"
            ));
        }
        Ok(c)
    }

    /// The anchored, compiled regex.
    pub fn regex(&self) -> &Regex {
        &self.regex
    }

    /// Joins the source label values with the separator (a missing label is "") into `buf`.
    fn source_value<'b>(&self, labels: &Labels, buf: &'b mut String) -> &'b str {
        buf.clear();
        for (i, name) in self.source_labels.iter().enumerate() {
            if i > 0 {
                buf.push_str(&self.separator);
            }
            buf.push_str(labels.get(name).unwrap_or(""));
        }
        buf
    }
}

/// Applies `rules` in order to `labels`. Returns false when the label set is dropped (by
/// keep/drop/keepequal/dropequal); `labels` is then in an unspecified state.
pub fn process(labels: &mut Labels, rules: &[RelabelConfig]) -> bool {
    let mut buf = String::new();
    for rule in rules {
        if !apply(labels, rule, &mut buf) {
            return false;
        }
    }
    true
}

fn apply(labels: &mut Labels, rule: &RelabelConfig, buf: &mut String) -> bool {
    match rule.action {
        Action::Drop => {
            if rule.regex.is_match(rule.source_value(labels, buf)) {
                return false;
            }
        }
        Action::Keep => {
            if !rule.regex.is_match(rule.source_value(labels, buf)) {
                return false;
            }
        }
        Action::DropEqual => {
            let v = rule.source_value(labels, buf);
            if labels.get(&rule.target_label).unwrap_or("") == v {
                return false;
            }
        }
        Action::KeepEqual => {
            let v = rule.source_value(labels, buf);
            if labels.get(&rule.target_label).unwrap_or("") != v {
                return false;
            }
        }
        Action::Replace => {
            // Fast path as in Prometheus: the default regex matches anything and a template
            // without variables needs no captures.
            if rule.regex_text == DEFAULT_REGEX
                && !has_template_var(&rule.target_label)
                && !has_template_var(&rule.replacement)
            {
                labels.set(rule.target_label.clone(), rule.replacement.clone());
                return true;
            }
            let v = rule.source_value(labels, buf).to_string();
            let Some(caps) = rule.regex.captures(&v) else {
                return true;
            };
            let mut target = String::new();
            expand(&caps, &rule.target_label, &mut target);
            if !is_label_name(&target) {
                return true;
            }
            let mut value = String::new();
            expand(&caps, &rule.replacement, &mut value);
            if value.is_empty() {
                labels.remove(&target);
            } else {
                labels.set(target, value);
            }
        }
        Action::Lowercase => {
            let v = rule.source_value(labels, buf).to_lowercase();
            labels.set(rule.target_label.clone(), v);
        }
        Action::Uppercase => {
            let v = rule.source_value(labels, buf).to_uppercase();
            labels.set(rule.target_label.clone(), v);
        }
        Action::HashMod => {
            let v = rule.source_value(labels, buf);
            let m = hash_sum64(v.as_bytes()) % rule.modulus;
            labels.set(rule.target_label.clone(), m.to_string());
        }
        Action::LabelMap => {
            let mut added = Vec::new();
            for (name, value) in labels.iter() {
                if let Some(caps) = rule.regex.captures(name) {
                    let mut new_name = String::new();
                    expand(&caps, &rule.replacement, &mut new_name);
                    added.push((new_name, value.to_string()));
                }
            }
            for (n, v) in added {
                labels.set(n, v);
            }
        }
        Action::LabelDrop | Action::LabelKeep => {
            let keep_matching = rule.action == Action::LabelKeep;
            let doomed: Vec<String> = labels
                .iter()
                .filter(|(n, _)| rule.regex.is_match(n) != keep_matching)
                .map(|(n, _)| n.to_string())
                .collect();
            for n in doomed {
                labels.remove(&n);
            }
        }
    }
    true
}

/// Expands `$1`, `${1}`, `$name`, `${name}` and `$$` in `template` as Go's `Regexp.Expand`
/// does: a name is the longest run of letters, digits and `_`; an unknown group or an
/// out-of-range number expands to nothing; a malformed reference is kept as text.
pub fn expand(caps: &Captures<'_>, template: &str, out: &mut String) {
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let (name, after) = match rest.strip_prefix('{') {
            Some(inner) => {
                let n = inner.bytes().take_while(|c| is_word(*c)).count();
                if n == 0 || inner.as_bytes().get(n) != Some(&b'}') {
                    out.push('$');
                    continue;
                }
                (&inner[..n], &inner[n + 1..])
            }
            None => {
                let n = rest.bytes().take_while(|c| is_word(*c)).count();
                if n == 0 {
                    out.push('$');
                    continue;
                }
                (&rest[..n], &rest[n..])
            }
        };
        rest = after;
        let group = if name.bytes().all(|c| c.is_ascii_digit()) {
            name.parse::<usize>().ok().and_then(|i| caps.get(i))
        } else {
            caps.name(name)
        };
        if let Some(m) = group {
            out.push_str(m.as_str());
        }
    }
    out.push_str(rest);
}

/// The number `hashmod` takes the modulus of: the last 8 bytes of the MD5 digest, big-endian
/// (what Prometheus's `sum64(md5.Sum(...))` computes, since the shifts of the first 8 bytes
/// overflow away).
pub fn hash_sum64(data: &[u8]) -> u64 {
    let d = md5(data);
    u64::from_be_bytes(d[8..16].try_into().expect("16-byte digest"))
}

/// MD5 (RFC 1321). Written here rather than pulled in: ~50 lines against a crate, and hashmod
/// is its only user (it runs once per target per discovery, not per sample).
pub fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    // K[i] = floor(abs(sin(i + 1)) * 2^32), computed once per call: cheaper to keep in code
    // than a 64-entry table to review by eye.
    let mut k = [0u32; 64];
    for (i, v) in k.iter_mut().enumerate() {
        *v = (((i as f64) + 1.0).sin().abs() * 4_294_967_296.0) as u32;
    }
    let mut h: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let bit_len = (data.len() as u64).wrapping_mul(8);
    let mut tail = Vec::with_capacity(128);
    let full = data.len() / 64 * 64;
    tail.extend_from_slice(&data[full..]);
    tail.push(0x80);
    while tail.len() % 64 != 56 {
        tail.push(0);
    }
    tail.extend_from_slice(&bit_len.to_le_bytes());
    for block in data[..full].chunks_exact(64).chain(tail.chunks_exact(64)) {
        let mut m = [0u32; 16];
        for (i, w) in m.iter_mut().enumerate() {
            *w = u32::from_le_bytes(block[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
        }
        let [mut a, mut b, mut c, mut d] = h;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        h[0] = h[0].wrapping_add(a);
        h[1] = h[1].wrapping_add(b);
        h[2] = h[2].wrapping_add(c);
        h[3] = h[3].wrapping_add(d);
    }
    let mut out = [0u8; 16];
    for (i, w) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

const RELABEL_KEYS: &[&str] = &[
    "source_labels",
    "separator",
    "target_label",
    "regex",
    "modulus",
    "replacement",
    "action",
];

/// Decodes a YAML sequence of relabel_config mappings (`what` names it in errors, e.g.
/// `relabel_configs`). A null node is an empty list.
pub(crate) fn decode_list(
    d: &Decoder<'_>,
    node: &Node,
    what: &str,
) -> Result<Vec<RelabelConfig>, ConfigError> {
    let items: &[Node] = match &node.value {
        Value::Seq(items) => items,
        _ if node.is_null() => &[],
        _ => {
            return Err(d.err(
                node.pos,
                format!("{what} must be a sequence, not a {}", node.kind()),
            ))
        }
    };
    items.iter().map(|n| decode_one(d, n, what)).collect()
}

/// Decodes one relabel_config mapping.
pub(crate) fn decode_one(
    d: &Decoder<'_>,
    node: &Node,
    what: &str,
) -> Result<RelabelConfig, ConfigError> {
    let mut action = Action::Replace;
    let mut source_labels = Vec::new();
    let (mut separator, mut regex, mut replacement) = (None, None, None);
    let mut target_label = String::new();
    let mut modulus = 0u64;
    for (k, v) in d.entries(node, RELABEL_KEYS, what)? {
        let key = d.key(k);
        match key {
            "action" => {
                let s = d.string(v, key)?;
                action = Action::parse(s)
                    .ok_or_else(|| d.err(v.pos, format!("unknown relabel action {s:?}")))?;
            }
            "source_labels" => match &v.value {
                Value::Seq(items) => {
                    for it in items {
                        source_labels.push(d.string(it, "a source label")?.to_string());
                    }
                }
                _ if v.is_null() => {}
                _ => return Err(d.err(v.pos, "source_labels must be a sequence")),
            },
            "separator" => separator = Some(scalar_text(d, v, key)?),
            "target_label" => target_label = d.string(v, key)?.to_string(),
            "regex" => regex = Some(scalar_text(d, v, key)?),
            "replacement" => replacement = Some(scalar_text(d, v, key)?),
            "modulus" => {
                let s = d.string(v, key)?;
                modulus = s.parse().map_err(|_| {
                    d.err(
                        v.pos,
                        format!("modulus must be a non-negative integer, not {s:?}"),
                    )
                })?;
            }
            _ => unreachable!("entries() rejects unknown keys"),
        }
    }
    RelabelConfig::new(
        action,
        source_labels,
        separator,
        target_label,
        regex,
        modulus,
        replacement,
    )
    .map_err(|e| d.err(node.pos, e))
}

/// A scalar's text; an explicit null is the empty string (`replacement: ""` and
/// `replacement:` both mean empty, as in Go's YAML decoding into a string).
fn scalar_text(d: &Decoder<'_>, v: &Node, key: &str) -> Result<String, ConfigError> {
    match &v.value {
        Value::Scalar { .. } if v.is_null() => Ok(String::new()),
        Value::Scalar { text, .. } => Ok(text.clone()),
        _ => Err(d.err(v.pos, format!("{key} must be a string, not a {}", v.kind()))),
    }
}

/// Parses a standalone YAML list of relabel configs (tests and tools).
pub fn parse_list(text: &str, file: &str) -> Result<Vec<RelabelConfig>, ConfigError> {
    let d = Decoder { file };
    let root = crate::config::yaml::parse(text).map_err(|e| d.err(e.pos, e.msg))?;
    decode_list(&d, &root, "relabel_configs")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    fn run(yaml: &str, input: &[(&str, &str)]) -> Option<Labels> {
        let rules = parse_list(yaml, "t.yml").unwrap_or_else(|e| panic!("{e}"));
        let mut l = labels(input);
        process(&mut l, &rules).then_some(l)
    }

    fn hex(d: [u8; 16]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn md5_matches_rfc1321_test_suite() {
        assert_eq!(hex(md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(md5(b"a")), "0cc175b9c0f1b6a831c399e269772661");
        assert_eq!(hex(md5(b"abc")), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            hex(md5(b"message digest")),
            "f96b697d7cb7938d525a2f31aaf161d0"
        );
        assert_eq!(
            hex(md5(
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"
            )),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
        // 56 and 64 bytes: the padding spills into a second block (values from Python hashlib).
        assert_eq!(hex(md5(&[b'x'; 56])), "668a72d5ba17f08e62dabcafad6db14b");
        assert_eq!(hex(md5(&[b'y'; 64])), "b0c4864f4e28d2d76929c38d87db7ed5");
        assert_eq!(
            hex(md5(b"The quick brown fox jumps over the lazy dog")),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
    }

    #[test]
    fn hashmod_takes_the_low_eight_digest_bytes() {
        // md5("abc") = 900150983cd24fb0 d6963f7d28e17f72; the low half big-endian:
        assert_eq!(hash_sum64(b"abc"), 0xd696_3f7d_28e1_7f72);
        let out = run(
            "- source_labels: [a]\n  action: hashmod\n  modulus: 1000\n  target_label: h\n",
            &[("a", "abc")],
        )
        .unwrap();
        assert_eq!(
            out.get("h"),
            Some((0xd696_3f7d_28e1_7f72u64 % 1000).to_string().as_str())
        );
    }

    #[test]
    fn replace_joins_sources_and_expands_groups() {
        let out = run(
            "- source_labels: [a, b]\n  regex: '(.*);(.*)'\n  target_label: c\n  replacement: '${2}-$1'\n",
            &[("a", "x"), ("b", "y")],
        )
        .unwrap();
        assert_eq!(out.get("c"), Some("y-x"));
    }

    #[test]
    fn replace_with_defaults_copies_the_value() {
        let out = run(
            "- source_labels: [__address__]\n  target_label: instance\n",
            &[("__address__", "h:9100")],
        )
        .unwrap();
        assert_eq!(out.get("instance"), Some("h:9100"));
    }

    #[test]
    fn replace_without_match_leaves_labels_alone() {
        let out = run(
            "- source_labels: [a]\n  regex: 'z(.*)'\n  target_label: c\n",
            &[("a", "x")],
        )
        .unwrap();
        assert_eq!(out, labels(&[("a", "x")]));
    }

    #[test]
    fn replace_regex_is_anchored() {
        let out = run(
            "- source_labels: [a]\n  regex: 'b'\n  target_label: c\n  replacement: hit\n",
            &[("a", "abc")],
        )
        .unwrap();
        assert_eq!(out.get("c"), None);
    }

    #[test]
    fn replace_to_empty_deletes_the_target() {
        let out = run(
            "- source_labels: [a]\n  regex: '.*'\n  target_label: b\n  replacement: ''\n",
            &[("a", "x"), ("b", "y")],
        )
        .unwrap();
        assert_eq!(out, labels(&[("a", "x")]));
    }

    #[test]
    fn replace_target_from_template_must_be_a_valid_name() {
        let out = run(
            "- source_labels: [a]\n  regex: '(.*)'\n  target_label: 'l_$1'\n  replacement: v\n",
            &[("a", "ok")],
        )
        .unwrap();
        assert_eq!(out.get("l_ok"), Some("v"));
        let out = run(
            "- source_labels: [a]\n  regex: '(.*)'\n  target_label: '$1'\n  replacement: v\n",
            &[("a", "1bad")],
        )
        .unwrap();
        assert_eq!(out, labels(&[("a", "1bad")]));
    }

    #[test]
    fn named_groups_and_go_expansion_rules() {
        let re = compile_regex("(?P<host>[^:]+):(?P<port>\\d+)").unwrap();
        let caps = re.captures("node:9100").unwrap();
        let mut s = String::new();
        expand(&caps, "${host}_$port $$ $1x ${9} $ ${bad", &mut s);
        // `$1x` names group "1x" (none): empty; `${9}`: out of range: empty; lone `$` and
        // unterminated `${` stay as text.
        assert_eq!(s, "node_9100 $   $ ${bad");
    }

    #[test]
    fn keep_and_drop_match_the_joined_value() {
        let y = "- source_labels: [job]\n  regex: 'node|api'\n  action: keep\n";
        assert!(run(y, &[("job", "node")]).is_some());
        assert!(run(y, &[("job", "nodes")]).is_none());
        let y = "- source_labels: [job]\n  regex: 'node'\n  action: drop\n";
        assert!(run(y, &[("job", "node")]).is_none());
        assert!(run(y, &[("job", "x")]).is_some());
        // A missing label is the empty string.
        let y = "- source_labels: [missing]\n  regex: ''\n  action: keep\n";
        assert!(run(y, &[("job", "x")]).is_some());
    }

    #[test]
    fn keepequal_and_dropequal_compare_with_the_target_label() {
        let y = "- source_labels: [a]\n  target_label: b\n  action: keepequal\n";
        assert!(run(y, &[("a", "1"), ("b", "1")]).is_some());
        assert!(run(y, &[("a", "1"), ("b", "2")]).is_none());
        let y = "- source_labels: [a]\n  target_label: b\n  action: DropEqual\n";
        assert!(run(y, &[("a", "1"), ("b", "1")]).is_none());
        assert!(run(y, &[("a", "1")]).is_some());
    }

    #[test]
    fn labelmap_copies_matching_names() {
        let out = run(
            "- regex: '__meta_kv_(.+)'\n  action: labelmap\n",
            &[
                ("__meta_kv_team", "db"),
                ("__meta_kv_env", "prod"),
                ("x", "1"),
            ],
        )
        .unwrap();
        assert_eq!(out.get("team"), Some("db"));
        assert_eq!(out.get("env"), Some("prod"));
        assert_eq!(
            out.get("__meta_kv_team"),
            Some("db"),
            "labelmap copies, not moves"
        );
        assert_eq!(out.len(), 5);
    }

    #[test]
    fn labeldrop_and_labelkeep_work_on_names() {
        let out = run(
            "- regex: 'tmp_.*'\n  action: labeldrop\n",
            &[("tmp_a", "1"), ("tmp_b", "2"), ("keep", "3")],
        )
        .unwrap();
        assert_eq!(out, labels(&[("keep", "3")]));
        let out = run(
            "- regex: '__name__|job'\n  action: labelkeep\n",
            &[("__name__", "up"), ("job", "n"), ("other", "x")],
        )
        .unwrap();
        assert_eq!(out, labels(&[("__name__", "up"), ("job", "n")]));
    }

    #[test]
    fn lowercase_and_uppercase_set_the_target() {
        let out = run(
            "- source_labels: [a]\n  target_label: lo\n  action: lowercase\n- source_labels: [a]\n  target_label: up\n  action: uppercase\n",
            &[("a", "MiXed")],
        )
        .unwrap();
        assert_eq!(out.get("lo"), Some("mixed"));
        assert_eq!(out.get("up"), Some("MIXED"));
    }

    #[test]
    fn rules_apply_in_order() {
        let out = run(
            "- source_labels: [a]\n  target_label: b\n- source_labels: [b]\n  regex: x\n  action: drop\n",
            &[("a", "x")],
        );
        assert!(out.is_none());
    }

    #[test]
    fn validation_errors_match_prometheus_and_carry_positions() {
        let cases = [
            ("- action: hashmod\n  target_label: h\n", "relabel configuration for hashmod requires non-zero modulus"),
            ("- action: replace\n  source_labels: [a]\n", "relabel configuration for replace action requires 'target_label' value"),
            ("- action: lowercase\n  target_label: 'a-b'\n", "\"a-b\" is invalid 'target_label' for lowercase action"),
            ("- action: uppercase\n  target_label: a\n  replacement: x\n", "'replacement' can not be set for uppercase action"),
            ("- action: labeldrop\n  regex: a\n  target_label: b\n", "labeldrop action requires only 'regex', and no other fields"),
            ("- action: keepequal\n  target_label: b\n  regex: x\n", "keepequal action requires only 'source_labels' and `target_label`, and no other fields"),
            ("- action: labelmap\n  regex: a\n  replacement: '-x'\n", "\"-x\" is invalid 'replacement' for labelmap action"),
        ];
        for (yaml, want) in cases {
            let e = parse_list(yaml, "r.yml").unwrap_err();
            assert_eq!(e.msg, want, "{yaml}");
            assert_eq!(e.pos, Some((1, 3)), "{yaml}");
        }
        let e = parse_list("- action: explode\n", "r.yml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "r.yml:1:11: unknown relabel action \"explode\""
        );
        let e = parse_list("- regex: '('\n", "r.yml").unwrap_err();
        assert!(e.msg.starts_with("invalid regex \"(\""), "{e}");
        let e = parse_list("- sauce_labels: [a]\n", "r.yml").unwrap_err();
        assert!(e.msg.starts_with("unknown key \"sauce_labels\""), "{e}");
    }
}
