//! The exposition parser against the real `promtool check metrics` (Prometheus 3.5): for a
//! corpus of good and bad text-format bodies, both must agree on accept or reject.
//! promtool exits 1 on a parse error and 3 on lint warnings only (still a valid body).

use crate::common;
use promlet::expo::MetricSet;
use promlet::scrape::parse::{parse, Format, Limits, NameScheme, Options};
use std::io::Write;
use std::process::{Command, Stdio};

/// Text-format bodies: valid ones first, then malformed ones. Each is fed to promtool and to
/// our parser; the verdicts must match.
const CORPUS: &[(&str, &str)] = &[
    ("empty", ""),
    ("blank lines", "\n\n  \n"),
    ("one sample", "a 1\n"),
    ("help type sample", "# HELP a Help.\n# TYPE a gauge\na 1\n"),
    ("labels", "a{x=\"1\",y=\"2\"} 1\n"),
    ("trailing comma", "a{x=\"1\",} 1\n"),
    ("empty braces", "a{} 1\n"),
    ("space before brace", "a {x=\"1\"} 1\n"),
    ("spaces around equals", "a{x = \"1\" , y=\"2\" } 1\n"),
    ("tabs", "a\t1\t5\n"),
    ("leading blanks", "   a 1\n"),
    ("timestamp", "a 1 1441205977284\n"),
    ("negative timestamp", "a 1 -5\n"),
    ("plus timestamp", "a 1 +5\n"),
    (
        "nan inf",
        "a NaN\nb +Inf\nc -Inf\nd inf\ne -infinity\nf nan\n",
    ),
    ("exponent floats", "a 1e3\nb -1.5E-7\nc .5\nd 5.\n"),
    ("escapes in value", "a{x=\"q\\\"\\\\\\n\"} 1\n"),
    (
        "help escapes",
        "# HELP a back\\\\slash new\\nline \\\"quote\n",
    ),
    ("help with raw quote", "# HELP a say \"hi\"\na 1\n"),
    ("type case insensitive", "# TYPE a Gauge\na 1\n"),
    ("untyped keyword", "# TYPE a untyped\na 1\n"),
    (
        "random comment",
        "# just a comment\n#HELP not a help line\n",
    ),
    ("bare comment keywords", "# HELP\n# TYPE\n# HELP a\n"),
    ("help after samples", "a 1\n# HELP a later\n"),
    ("split family", "a{x=\"1\"} 1\nb 2\na{x=\"2\"} 3\n"),
    ("duplicate series (lint only)", "a 1\na 2\n"),
    ("quoted legacy name", "{\"a_b\"} 1\n"),
    ("quoted label name", "a{\"x\"=\"1\"} 1\n"),
    (
        "summary",
        "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n",
    ),
    (
        "histogram",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n",
    ),
    (
        "histogram without inf (go accepts)",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\n",
    ),
    ("gauge_histogram sample", "# TYPE a gauge_histogram\na 1\n"),
    (
        "repeated bucket",
        "# TYPE a histogram\na_bucket{le=\"1\"} 1\na_bucket{le=\"1\"} 1\n",
    ),
    ("le on untyped", "# TYPE a untyped\na_bucket{le=\"x\"} 1\n"),
    ("colon name", "a:b:c 1\n"),
    (
        "plain then quoted name (Go joins them)",
        "a\"b\" 1\n{_bucket\"b\"} 1\nx{l\"m\"=\"1\"} 1\n",
    ),
    ("utf8 in label value", "a{x=\"Grüße ✓\"} 1\n"),
    ("counter", "# TYPE c_total counter\nc_total 3\n"),
    ("whitespace only last line", "a 1\n   "),
    // Malformed.
    ("no final newline", "a 1"),
    ("comment without final newline", "a 1\n# comment"),
    ("missing value", "a\n"),
    ("labels without value", "a{x=\"1\"}\n"),
    ("trailing blank after value", "a 1 \n"),
    ("float timestamp", "a 1 1.5\n"),
    ("timestamp overflow", "a 1 9223372036854775808\n"),
    ("three tokens", "a 1 2 3\n"),
    ("bad value", "a one\n"),
    ("hex value", "a 0x1p3\n"),
    ("underscore value", "a 1_000\n"),
    ("signed nan", "a +nan\n"),
    ("overflow value", "a 1e400\n"),
    ("carriage return", "a 1\r\n"),
    ("second type", "# TYPE a gauge\n# TYPE a gauge\n"),
    ("type after samples", "a 1\n# TYPE a gauge\n"),
    (
        "type after split samples",
        "# TYPE a counter\na 1\nb 1\n# TYPE a gauge\n",
    ),
    ("second help", "# HELP a x\n# HELP a y\n"),
    ("unknown type", "# TYPE a foo\n"),
    (
        "backslashes in type are dropped",
        "# TYPE a gau\\ge\\\na 1\n",
    ),
    ("backslash-only type", "# TYPE a \\x\n"),
    ("type with extra word", "# TYPE a gauge extra\n"),
    ("invalid name in comment", "# HELP 1a x\n"),
    ("name starts with digit", "1a 1\n"),
    ("non-ascii name", "\u{e4} 1\n"),
    ("dotted quoted name", "{\"a.b\"} 1\n"),
    ("dotted quoted label", "a{\"x.y\"=\"1\"} 1\n"),
    ("no name in braces", "{x=\"1\"} 1\n"),
    ("double comma", "a{x=\"1\",,} 1\n"),
    ("lone comma", "a{,} 1\n"),
    ("missing comma", "a{x=\"1\" y=\"2\"} 1\n"),
    ("unquoted value", "a{x=1} 1\n"),
    ("unterminated value", "a{x=\"1} 1\n"),
    ("unterminated braces", "a{x=\"1\" 1\n"),
    ("bad label char", "a{x-y=\"1\"} 1\n"),
    ("invalid escape in value", "a{x=\"\\q\"} 1\n"),
    ("invalid escape in help", "# HELP a \\t\n"),
    ("reserved label", "a{__name__=\"b\"} 1\n"),
    ("duplicate label", "a{x=\"1\",x=\"2\"} 1\n"),
    (
        "bad quantile",
        "# TYPE a summary\na_count 1\na{quantile=\"x\"} 1\n",
    ),
    ("bad le", "# TYPE a histogram\na_bucket{le=\"x\"} 1\n"),
    ("two names in braces", "{\"a\", \"b\"} 1\n"),
    ("two names around a label", "{\"a\", x=\"1\", \"b\"} 1\n"),
    ("name as label", "a{\"b\"} 1\n"),
    (
        "bad quantile on count",
        "# TYPE a summary\na_count{quantile=\"x\"} 1\n",
    ),
    (
        "bad le on gauge_histogram",
        "# TYPE a gauge_histogram\na_bucket{le=\"x\"} 1\n",
    ),
    ("invalid utf8 label value", "a{x=\"\u{fffd}\"} 1\n"),
];

/// Bodies that are not valid UTF-8 cannot live in `&str`.
const BYTE_CORPUS: &[(&str, &[u8])] = &[
    ("invalid utf8 in label value", b"a{x=\"\xff\"} 1\n"),
    ("invalid utf8 in help", b"# HELP a \xff\na 1\n"),
    ("invalid utf8 as name", b"\xff 1\n"),
];

fn promtool_accepts(promtool: &std::path::Path, body: &[u8]) -> (bool, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    assert!(
        matches!(code, 0 | 1 | 3),
        "promtool exited {code}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code != 1, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn ours(body: &[u8]) -> Result<(), String> {
    let opts = Options {
        format: Format::Text,
        names: NameScheme::Legacy,
        limits: Limits::default(),
    };
    let mut set = MetricSet::new();
    parse(body, &opts, &mut set)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Every corpus body gets the same verdict from promtool and from our parser.
#[test]
fn text_parser_agrees_with_promtool() {
    let Some(promtool) = common::stack_bin("promtool") else {
        return;
    };
    let cases = CORPUS
        .iter()
        .map(|(n, b)| (*n, b.as_bytes()))
        .chain(BYTE_CORPUS.iter().copied());
    let mut disagreements = Vec::new();
    let (mut accepted, mut rejected) = (0, 0);
    for (name, body) in cases {
        let (theirs, stderr) = promtool_accepts(&promtool, body);
        let mine = ours(body);
        if theirs {
            accepted += 1;
        } else {
            rejected += 1;
        }
        if theirs != mine.is_ok() {
            disagreements.push(format!(
                "{name}: promtool {} ({}), promlet {:?}",
                if theirs { "accepts" } else { "rejects" },
                stderr.trim(),
                mine
            ));
        }
    }
    eprintln!("promtool corpus: {accepted} accepted, {rejected} rejected");
    assert!(accepted >= 30 && rejected >= 30, "corpus lost its balance");
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}

/// Tiny deterministic RNG (xorshift) for the mutation test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Bytes the mutations insert: the format's own punctuation and keywords.
const TOKENS: &[&[u8]] = &[
    b" ",
    b"\t",
    b"\n",
    b"{",
    b"}",
    b"\"",
    b",",
    b"=",
    b"\\",
    b"#",
    b"# HELP ",
    b"# TYPE ",
    b"counter",
    b"summary",
    b"histogram",
    b"_sum",
    b"_count",
    b"_bucket",
    b"le",
    b"quantile",
    b"NaN",
    b"+Inf",
    b"1e3",
    b"-1",
    b"x",
    b"9",
    b".",
    b"\xc3\xa4",
];

fn mutate(rng: &mut Rng, body: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = if b.is_empty() {
            0
        } else {
            rng.below(b.len() + 1)
        };
        match rng.below(3) {
            0 if !b.is_empty() && at < b.len() => {
                let end = (at + 1 + rng.below(3)).min(b.len());
                b.drain(at..end);
            }
            _ => {
                let t = TOKENS[rng.below(TOKENS.len())];
                b.splice(at..at, t.iter().copied());
            }
        }
    }
    b
}

/// Differential test: 300 random mutations of the corpus bodies (more with
/// `PROMLET_MUTATION_ROUNDS`, another sequence with `PROMLET_MUTATION_SEED`), each judged by
/// promtool and by us. Agreement must be total.
#[test]
fn mutated_bodies_get_promtools_verdict() {
    let Some(promtool) = common::stack_bin("promtool") else {
        return;
    };
    let seed = std::env::var("PROMLET_MUTATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_9876);
    let rounds = std::env::var("PROMLET_MUTATION_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let mut rng = Rng(seed);
    let mut disagreements = Vec::new();
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..rounds {
        let (_, base) = CORPUS[rng.below(CORPUS.len())];
        let body = mutate(&mut rng, base.as_bytes());
        let (theirs, stderr) = promtool_accepts(&promtool, &body);
        let mine = ours(&body);
        if theirs {
            accepted += 1;
        } else {
            rejected += 1;
        }
        if theirs != mine.is_ok() {
            disagreements.push(format!(
                "{:?}: promtool {} ({}), promlet {:?}",
                String::from_utf8_lossy(&body),
                if theirs { "accepts" } else { "rejects" },
                stderr.trim(),
                mine
            ));
        }
    }
    eprintln!("mutations: {accepted} accepted, {rejected} rejected by promtool");
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}
