//! A small parser for text exposition format 0.0.4, for tests only: it turns a scrape into
//! families (name, TYPE, HELP, samples with sorted labels) so two expositions can be compared
//! family by family. Strict where a comparison would otherwise lie (bad escapes, bad values,
//! a sample line without a value are errors); lenient about order (HELP after TYPE is fine).
//! The production parser belongs to `src/scrape`.

use std::collections::BTreeMap;

/// One sample line: full metric name (with any `_sum`/`_count`/`_bucket` suffix), labels sorted
/// by name, value.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedSample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl ParsedSample {
    /// `name{a="x",b="y"}`, for messages and as a lookup key.
    pub fn key(&self) -> String {
        let mut s = self.name.clone();
        if !self.labels.is_empty() {
            s.push('{');
            for (i, (n, v)) in self.labels.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                s.push_str(&format!("{n}={v:?}"));
            }
            s.push('}');
        }
        s
    }
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One family: everything under one `# TYPE` name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParsedFamily {
    pub name: String,
    /// `counter`, `gauge`, `summary`, `histogram` or `untyped` (also when no TYPE line).
    pub typ: String,
    pub help: String,
    pub samples: Vec<ParsedSample>,
}

impl ParsedFamily {
    /// The distinct label-name sets of the samples, ignoring `le`/`quantile`.
    pub fn label_name_sets(&self) -> Vec<Vec<String>> {
        let mut sets: Vec<Vec<String>> = self
            .samples
            .iter()
            .map(|s| {
                s.labels
                    .iter()
                    .map(|(n, _)| n.clone())
                    .filter(|n| n != "le" && n != "quantile")
                    .collect()
            })
            .collect();
        sets.sort();
        sets.dedup();
        sets
    }
}

/// Families by name.
pub type Families = BTreeMap<String, ParsedFamily>;

fn unescape(s: &str, line: usize) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('"') => out.push('"'),
                other => return Err(format!("line {line}: bad escape \\{other:?}")),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn parse_value(s: &str, line: usize) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s
            .parse()
            .map_err(|_| format!("line {line}: bad value {s:?}")),
    }
}

/// Splits `name{labels} value [ts]` into name, labels and value.
fn parse_sample(line: &str, n: usize) -> Result<ParsedSample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| format!("line {n}: sample without value: {line:?}"))?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest
                .find('=')
                .ok_or_else(|| format!("line {n}: label without '='"))?;
            let lname = rest[..eq].trim().to_string();
            rest = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or_else(|| format!("line {n}: label value not quoted"))?;
            // Find the closing quote, skipping escaped characters.
            let bytes = rest.as_bytes();
            let mut i = 0;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            if i >= bytes.len() {
                return Err(format!("line {n}: unterminated label value"));
            }
            labels.push((lname, unescape(&rest[..i], n)?));
            rest = &rest[i + 1..];
        }
    }
    let mut fields = rest.split_whitespace();
    let value = parse_value(
        fields
            .next()
            .ok_or_else(|| format!("line {n}: sample without value"))?,
        n,
    )?;
    labels.sort();
    Ok(ParsedSample {
        name,
        labels,
        value,
    })
}

/// The family a sample called `sample` belongs to, given the families declared so far.
fn owner_of<'a>(fams: &'a Families, sample: &str) -> Option<&'a str> {
    if fams.contains_key(sample) {
        return Some(fams.get_key_value(sample).unwrap().0);
    }
    for suffix in ["_sum", "_count", "_bucket"] {
        if let Some(base) = sample.strip_suffix(suffix) {
            if let Some((k, f)) = fams.get_key_value(base) {
                if f.typ == "summary" || f.typ == "histogram" {
                    return Some(k);
                }
            }
        }
    }
    None
}

/// Parses a whole text 0.0.4 exposition.
pub fn parse_text(text: &str) -> Result<Families, String> {
    let mut fams = Families::new();
    let new_family = |name: &str| ParsedFamily {
        name: name.to_string(),
        typ: "untyped".to_string(),
        ..Default::default()
    };
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let f = fams
                .entry(name.to_string())
                .or_insert_with(|| new_family(name));
            f.help = unescape(help, n)?;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, typ) = rest
                .split_once(' ')
                .ok_or_else(|| format!("line {n}: TYPE without type"))?;
            let f = fams
                .entry(name.to_string())
                .or_insert_with(|| new_family(name));
            f.typ = typ.trim().to_string();
        } else if line.starts_with('#') {
            continue;
        } else {
            let s = parse_sample(line, n)?;
            let owner = owner_of(&fams, &s.name).unwrap_or(&s.name).to_string();
            fams.entry(owner.clone())
                .or_insert_with(|| new_family(&owner))
                .samples
                .push(s);
        }
    }
    Ok(fams)
}

/// Equal, or within 1e-9 relative (NaN equals NaN).
pub fn values_agree(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}
