//! The exposition parser: Prometheus text format 0.0.4 and OpenMetrics 1.0, from a byte body
//! into a caller-owned [`MetricSet`].
//!
//! Owns: the two grammars, their rules (HELP/TYPE placement, escapes, numbers, timestamps,
//! quoted UTF-8 names, `# EOF`, histogram/summary suffixes), the limits a caller passes in,
//! and [`format_for_content_type`], which picks the grammar from a `Content-Type` header the
//! way Prometheus 3 does. Must not touch: sockets, files, the TSDB, the clock.
//!
//! # Which rules, and whose
//! * **Text 0.0.4** follows what Go's `expfmt.TextParser` accepts, because that is what
//!   `promtool check metrics` and node_exporter's textfile collector use; tests run the real
//!   promtool over a corpus and over random mutations of it and require the same
//!   accept/reject verdicts. Consequences: a family may be split into several groups (they
//!   are merged by name, as Go does, and Prometheus's scraper accepts it too: the spec's
//!   "one group per name" is therefore not enforced for this format); trailing blanks after
//!   the value are an error; HELP understands `\\`, `\n` and `\"`; `TYPE` after a sample of
//!   the family is an error; backslashes in a TYPE value are dropped and a quoted part right
//!   after plain name characters joins the name (`a"b"` is `ab`), both Go quirks; a
//!   duplicate series is counted in [`ParseStats::duplicates`], not rejected (promtool only
//!   lints it; Prometheus drops the second sample and keeps the scrape).
//! * **OpenMetrics 1.0** is strict, as its spec says a partial or invalid exposition is
//!   invalid as a whole: `# EOF` required and last, no blank lines, single spaces, families
//!   contiguous with metadata first and at most once, counter/histogram/summary/info/stateset
//!   sample names and values checked; each histogram (label set) has increasing, cumulative
//!   buckets ending in `+Inf`, buckets before `_count`/`_sum`, both or neither of those,
//!   `_count` equal to the `+Inf` bucket, no `_sum` with negative buckets; duplicate series
//!   are rejected unless their timestamps increase. Unknown escapes (`\t`) are kept as
//!   written, as Prometheus's OpenMetrics parser does. Timestamps are seconds and
//!   are converted to ms (rounded). Exemplars are checked and dropped. UNIT is checked and
//!   dropped (a `MetricSet` has no unit). `stateset`/`info` families are stored as gauges and
//!   `gaugehistogram` as histogram (their samples keep their own suffixes).
//!
//! # Representation
//! A family keeps the name of its metadata; samples carry the rest of their name as a suffix
//! (`_bucket`, `_sum`, `_count`, and in OpenMetrics also `_total`, `_created`, `_info`,
//! `_gcount`, `_gsum`). Text-format counters keep their full name (`foo_total`) as family name,
//! as Go's parser does. Families that only had metadata are kept with no samples.
//!
//! # Cost
//! Names and label values are copied once into the set's arena; escaped values are unescaped
//! into reusable scratch buffers first. A reused [`Parser`] allocates nothing per sample once
//! its tables have grown. On error the set is rolled back to where it was, so a bad body never
//! leaves half a scrape behind.

use crate::expo::{FamilyId, MetricSet, MetricType};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

/// The two text grammars.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

/// What promlet sends as `Accept` when it scrapes: Prometheus 3's default list without
/// protobuf, which promlet does not parse.
pub const SCRAPE_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,\
application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,\
text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

/// Picks the grammar for a scrape response as Prometheus 3 does: `application/openmetrics-text`
/// is OpenMetrics, `text/plain` is text; a missing, unparsable or unsupported type (protobuf
/// included) is an error unless a `fallback` is configured (`fallback_scrape_protocol`).
pub fn format_for_content_type(
    content_type: Option<&str>,
    fallback: Option<Format>,
) -> Result<Format, String> {
    let ct = content_type.map(str::trim).unwrap_or("");
    if ct.is_empty() {
        return fallback.ok_or_else(|| {
            "non-compliant scrape target sending blank Content-Type and no \
             fallback_scrape_protocol specified"
                .to_string()
        });
    }
    let media = ct.split(';').next().unwrap_or("").trim();
    let valid = media
        .split_once('/')
        .map(|(a, b)| is_mime_token(a) && is_mime_token(b))
        .unwrap_or(false);
    if !valid {
        return fallback.ok_or_else(|| {
            format!("cannot parse Content-Type {ct:?} and no fallback_scrape_protocol specified")
        });
    }
    if media.eq_ignore_ascii_case("application/openmetrics-text") {
        Ok(Format::OpenMetrics)
    } else if media.eq_ignore_ascii_case("text/plain") {
        Ok(Format::Text)
    } else {
        fallback.ok_or_else(|| {
            format!(
                "received unsupported Content-Type {ct:?} and no fallback_scrape_protocol specified"
            )
        })
    }
}

/// [`format_for_content_type`] with text as the fallback: what a lenient caller (the
/// Pushgateway API, a test) wants.
pub fn format_or_text(content_type: Option<&str>) -> Format {
    format_for_content_type(content_type, Some(Format::Text)).unwrap_or(Format::Text)
}

fn is_mime_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

/// Bounds on one body. Exceeding one fails the whole parse with an error naming the limit,
/// as Prometheus fails a scrape over `sample_limit` / `label_limit`. `0` means no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Samples in the body (`sample_limit`).
    pub max_samples: usize,
    /// Labels on one sample (`label_limit`).
    pub max_labels: usize,
    /// Bytes in one line, newline excluded. Bounds the work a single hostile line can cause.
    pub max_line_len: usize,
}

impl Limits {
    pub const NONE: Limits = Limits {
        max_samples: 0,
        max_labels: 0,
        max_line_len: 0,
    };
}

impl Default for Limits {
    /// No sample or label limit; lines up to 1 MiB (far beyond any real exposition line).
    fn default() -> Self {
        Limits {
            max_line_len: 1 << 20,
            ..Limits::NONE
        }
    }
}

/// Which metric and label names are accepted, as Prometheus's `metric_name_validation_scheme`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NameScheme {
    /// `[a-zA-Z_:][a-zA-Z0-9_:]*` (labels without `:`), even when quoted. node_exporter's
    /// textfile collector and promtool use this.
    Legacy,
    /// Any non-empty UTF-8 name; names outside the legacy set must be quoted. Prometheus 3's
    /// default for scrapes.
    #[default]
    Utf8,
}

/// How to parse one body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    pub format: Format,
    pub names: NameScheme,
    pub limits: Limits,
}

impl Options {
    pub fn text() -> Self {
        Options {
            format: Format::Text,
            names: NameScheme::Utf8,
            limits: Limits::default(),
        }
    }
    pub fn openmetrics() -> Self {
        Options {
            format: Format::OpenMetrics,
            ..Options::text()
        }
    }
}

/// A malformed body: the 1-based line and what is wrong there. One pointer wide (fields read
/// through `Deref`), so the parser's many `Result`s stay small (smaller code; the error path
/// alone allocates).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(Box<ParseErrorAt>);

/// The fields of a [`ParseError`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseErrorAt {
    pub line: usize,
    pub msg: String,
}

impl std::ops::Deref for ParseError {
    type Target = ParseErrorAt;
    fn deref(&self) -> &ParseErrorAt {
        &self.0
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

impl std::error::Error for ParseError {}

/// What a successful parse added.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParseStats {
    pub samples: usize,
    /// Text format only: samples whose name and label set appeared before in the body.
    pub duplicates: usize,
}

/// Parses `body` into `out` with a throw-away [`Parser`]. Scrape loops should keep a
/// `Parser` per target instead, so its tables are reused.
pub fn parse(body: &[u8], opts: &Options, out: &mut MetricSet) -> Result<ParseStats, ParseError> {
    Parser::new().parse(body, opts, out)
}

/// The parser's own notion of a family type (OpenMetrics has more than [`MetricType`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Summary,
    Histogram,
    Unknown,
    StateSet,
    Info,
    GaugeHistogram,
}

impl Kind {
    fn metric_type(self) -> MetricType {
        match self {
            Kind::Counter => MetricType::Counter,
            Kind::Gauge | Kind::StateSet | Kind::Info => MetricType::Gauge,
            Kind::Summary => MetricType::Summary,
            Kind::Histogram | Kind::GaugeHistogram => MetricType::Histogram,
            Kind::Unknown => MetricType::Untyped,
        }
    }

    fn om_name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
            Kind::Histogram => "histogram",
            Kind::Unknown => "unknown",
            Kind::StateSet => "stateset",
            Kind::Info => "info",
            Kind::GaugeHistogram => "gaugehistogram",
        }
    }

    fn from_om(s: &[u8]) -> Option<Kind> {
        Some(match s {
            b"counter" => Kind::Counter,
            b"gauge" => Kind::Gauge,
            b"summary" => Kind::Summary,
            b"histogram" => Kind::Histogram,
            b"unknown" => Kind::Unknown,
            b"stateset" => Kind::StateSet,
            b"info" => Kind::Info,
            b"gaugehistogram" => Kind::GaugeHistogram,
            _ => return None,
        })
    }

    /// The sample-name suffixes OpenMetrics allows for this type.
    fn om_suffixes(self) -> &'static [&'static str] {
        match self {
            Kind::Counter => &["_total", "_created"],
            Kind::Gauge | Kind::Unknown | Kind::StateSet => &[""],
            Kind::Info => &["_info"],
            Kind::Summary => &["", "_sum", "_count", "_created"],
            Kind::Histogram => &["_bucket", "_sum", "_count", "_created"],
            Kind::GaugeHistogram => &["_bucket", "_gsum", "_gcount"],
        }
    }
}

/// Every suffix any OpenMetrics type uses, for detecting a family that comes back.
const OM_SUFFIXES: &[&str] = &[
    "_total", "_created", "_info", "_sum", "_count", "_bucket", "_gsum", "_gcount",
];

/// Per-family state of one parse.
#[derive(Clone, Debug)]
struct Fam {
    id: FamilyId,
    /// Explicit TYPE, or (text) the implicit untyped fixed by the first sample.
    kind: Option<Kind>,
    has_help: bool,
    has_unit: bool,
    has_samples: bool,
}

/// OpenMetrics checks of the histogram (one label set of a histogram family) being read;
/// settled when the next label set, family or `# EOF` comes.
#[derive(Clone, Copy, Debug, Default)]
struct BucketRun {
    /// Hash of the labels without `le`, once a sample of the histogram was seen.
    group: Option<u64>,
    last_le: f64,
    last_count: f64,
    has_inf: bool,
    inf_count: f64,
    negative_bucket: bool,
    count: Option<f64>,
    sum: Option<f64>,
}

/// Reusable scratch for unescaping.
#[derive(Default, Debug)]
struct Scratch {
    name: String,
    label: String,
    value: String,
    help: String,
}

/// Reusable parser state. Keep one per scrape target: its tables keep their capacity.
#[derive(Default, Debug)]
pub struct Parser {
    fams: Vec<Fam>,
    /// Family-name hash → first index in `fams` with that hash; `chain` links the rest.
    by_name: HashMap<u64, u32, BuildHasherDefault<IdHasher>>,
    chain: Vec<u32>,
    /// Series hash → index of its latest sample in the output set.
    series: HashMap<u64, u32, BuildHasherDefault<IdHasher>>,
    scratch: Scratch,
    /// Text format: the last plain sample name and what it resolved to. Resolutions never
    /// change within one body (see `text_family`), and consecutive samples mostly share a name.
    last_name: String,
    last_resolved: Option<(usize, &'static str)>,
}

const NO_NEXT: u32 = u32::MAX;

/// A hasher for keys that already are good 64-bit hashes.
#[derive(Default, Debug)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// splitmix64's finalizer: spreads FNV's weak low bits before the sum in `labels_hash`.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Order-independent hash of a label set (so `{a,b}` and `{b,a}` are one series).
fn labels_hash<'a>(labels: impl Iterator<Item = (&'a str, &'a str)>, skip: &str) -> u64 {
    let mut acc = 0u64;
    for (n, v) in labels {
        if n == skip {
            continue;
        }
        let h = fnv(fnv(fnv(FNV_OFFSET, n.as_bytes()), &[0xff]), v.as_bytes());
        acc = acc.wrapping_add(mix(h));
    }
    acc
}

fn is_legacy_metric_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b':')
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

fn is_legacy_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_')
}

fn is_name_start(b: u8, metric: bool) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || (metric && b == b':')
}

fn is_name_cont(b: u8, metric: bool) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || (metric && b == b':')
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Parses a float as Go's `strconv.ParseFloat` does after Prometheus's guard against `p`/`_`:
/// decimal and exponent forms, `Inf`/`Infinity` with an optional sign and `NaN` without one
/// (any case); hexadecimal, underscores and out-of-range values are errors.
pub fn parse_float(s: &[u8]) -> Option<f64> {
    let (sign, rest) = match s.first() {
        Some(b'+') => (1.0, &s[1..]),
        Some(b'-') => (-1.0, &s[1..]),
        _ => (1.0, s),
    };
    if rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"infinity") {
        return Some(sign * f64::INFINITY);
    }
    if s.eq_ignore_ascii_case(b"nan") {
        return Some(f64::NAN);
    }
    if rest.is_empty()
        || !rest
            .iter()
            .all(|&b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    let v: f64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    // Rust saturates to infinity where Go reports a range error.
    if v.is_infinite() {
        return None;
    }
    Some(v)
}

/// Go-style `%q` of a byte string, for messages that quote the input.
fn q(b: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(b))
}

/// Go-style `%q` of one byte (`'x'`).
fn qb(b: Option<u8>) -> String {
    match b {
        None => "'\\n'".to_string(),
        Some(b'\'') => "'\\''".to_string(),
        Some(c) if c.is_ascii_graphic() || c == b' ' => format!("'{}'", c as char),
        Some(b'\t') => "'\\t'".to_string(),
        Some(b'\r') => "'\\r'".to_string(),
        Some(c) => format!("'\\x{c:02x}'"),
    }
}

/// A cursor over one line (newline excluded).
struct Cur<'b> {
    s: &'b [u8],
    i: usize,
}

impl<'b> Cur<'b> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }
    fn skip_blanks(&mut self) {
        while self.peek().is_some_and(is_blank) {
            self.i += 1;
        }
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    /// Bytes up to the next blank (text) or space (OpenMetrics), or the end.
    fn token(&mut self, tabs: bool) -> &'b [u8] {
        let start = self.i;
        while let Some(b) = self.peek() {
            if b == b' ' || (tabs && b == b'\t') {
                break;
            }
            self.i += 1;
        }
        &self.s[start..self.i]
    }
    fn rest(&self) -> &'b [u8] {
        &self.s[self.i.min(self.s.len())..]
    }
}

/// Unescapes `raw` (the bytes between quotes, or a HELP text) into `buf`. `quote` says whether
/// `\"` is an escape. `lenient` keeps an unknown escape as it is (`\t` stays two characters),
/// as Prometheus's OpenMetrics parser does; otherwise it is an error naming the escape.
fn unescape_into(raw: &[u8], quote: bool, lenient: bool, buf: &mut Vec<u8>) -> Result<(), String> {
    let mut it = raw.iter();
    while let Some(&b) = it.next() {
        if b != b'\\' {
            buf.push(b);
            continue;
        }
        match it.next() {
            Some(b'\\') => buf.push(b'\\'),
            Some(b'n') => buf.push(b'\n'),
            Some(b'"') if quote => buf.push(b'"'),
            Some(&c) if lenient => buf.extend_from_slice(&[b'\\', c]),
            Some(&c) => {
                return Err(format!(
                    "invalid escape sequence '\\{}'",
                    String::from_utf8_lossy(&[c])
                ))
            }
            None if lenient => buf.push(b'\\'),
            None => return Err("invalid escape sequence '\\\\n'".to_string()),
        }
    }
    Ok(())
}

/// Reads a quoted string starting at the opening `"`; returns the raw bytes between the
/// quotes (escapes still in) and whether there was any escape. `None` if the line ends first.
fn read_quoted<'b>(c: &mut Cur<'b>) -> Option<(&'b [u8], bool)> {
    debug_assert_eq!(c.peek(), Some(b'"'));
    c.i += 1;
    let start = c.i;
    let mut escaped = false;
    let mut any = false;
    while let Some(b) = c.peek() {
        c.i += 1;
        if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
            any = true;
        } else if b == b'"' {
            return Some((&c.s[start..c.i - 1], any));
        }
    }
    None
}

/// Resolves a raw quoted string into `&str`, unescaping into `scratch` when needed.
fn quoted_str<'a>(
    raw: &'a [u8],
    escaped: bool,
    lenient: bool,
    scratch: &'a mut String,
) -> Result<Cow<'a, str>, String> {
    if !escaped {
        return std::str::from_utf8(raw)
            .map(Cow::Borrowed)
            .map_err(|_| "invalid UTF-8".to_string());
    }
    let mut buf = std::mem::take(scratch).into_bytes();
    buf.clear();
    let r = unescape_into(raw, true, lenient, &mut buf);
    match String::from_utf8(buf) {
        Ok(s) => *scratch = s,
        Err(e) => {
            let mut v = e.into_bytes();
            v.clear();
            *scratch = String::from_utf8(v).unwrap_or_default();
            r?;
            return Err("invalid UTF-8".to_string());
        }
    }
    r?;
    Ok(Cow::Borrowed(scratch.as_str()))
}

/// A name token: unquoted legacy characters, or a quoted string.
enum NameTok<'b> {
    Plain(&'b [u8]),
    Quoted(&'b [u8], bool),
    /// Go's reader lets a quoted part follow plain characters (`ab"c"` reads as `abc`).
    Mixed(&'b [u8], &'b [u8], bool),
}

fn read_name_tok<'b>(c: &mut Cur<'b>, metric: bool) -> Option<NameTok<'b>> {
    match c.peek() {
        Some(b'"') => read_quoted(c).map(|(raw, esc)| NameTok::Quoted(raw, esc)),
        Some(b) if is_name_start(b, metric) => {
            let start = c.i;
            while c.peek().is_some_and(|b| is_name_cont(b, metric)) {
                c.i += 1;
            }
            let plain = &c.s[start..c.i];
            if c.peek() == Some(b'"') {
                return read_quoted(c).map(|(raw, esc)| NameTok::Mixed(plain, raw, esc));
            }
            Some(NameTok::Plain(plain))
        }
        _ => Some(NameTok::Plain(&[])),
    }
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `body` into `out` (appending). On error `out` is left as it was.
    pub fn parse(
        &mut self,
        body: &[u8],
        opts: &Options,
        out: &mut MetricSet,
    ) -> Result<ParseStats, ParseError> {
        self.fams.clear();
        self.by_name.clear();
        self.chain.clear();
        self.series.clear();
        self.last_resolved = None;
        let mark = out.mark();
        let first_sample = out.sample_count();
        let mut run = Run {
            p: self,
            out,
            opts,
            stats: ParseStats::default(),
            line: 0,
            current: None,
            buckets: BucketRun::default(),
            first_sample,
        };
        let r = match opts.format {
            Format::Text => run.text(body),
            Format::OpenMetrics => run.openmetrics(body),
        };
        let stats = run.stats;
        match r {
            Ok(()) => Ok(stats),
            Err(e) => {
                out.rollback(mark);
                Err(e)
            }
        }
    }
}

/// One parse in progress.
struct Run<'p> {
    p: &'p mut Parser,
    out: &'p mut MetricSet,
    opts: &'p Options,
    stats: ParseStats,
    line: usize,
    /// OpenMetrics: index in `fams` of the family being read.
    current: Option<usize>,
    buckets: BucketRun,
    first_sample: usize,
}

type R<T> = Result<T, ParseError>;

impl Run<'_> {
    fn err<T>(&self, msg: impl Into<String>) -> R<T> {
        Err(ParseError(Box::new(ParseErrorAt {
            line: self.line,
            msg: msg.into(),
        })))
    }

    fn lines<'b>(
        &mut self,
        body: &'b [u8],
        mut f: impl FnMut(&mut Self, &'b [u8], bool) -> R<()>,
    ) -> R<()> {
        let mut pos = 0;
        while pos < body.len() {
            self.line += 1;
            let (line, terminated, next) = match body[pos..].iter().position(|&b| b == b'\n') {
                Some(i) => (&body[pos..pos + i], true, pos + i + 1),
                None => (&body[pos..], false, body.len()),
            };
            let max = self.opts.limits.max_line_len;
            if max > 0 && line.len() > max {
                return self.err(format!(
                    "line is {} bytes long, over the limit of {max}",
                    line.len()
                ));
            }
            f(self, line, terminated)?;
            pos = next;
        }
        Ok(())
    }

    // ---- families -------------------------------------------------------------------------

    fn lenient(&self) -> bool {
        self.opts.format == Format::OpenMetrics
    }

    fn fname(&self, fi: usize) -> String {
        self.family_name(fi).to_string()
    }

    fn family_name(&self, fi: usize) -> &str {
        self.out.family_ref(self.p.fams[fi].id).name
    }

    fn find_family(&self, name: &str) -> Option<usize> {
        let h = fnv(FNV_OFFSET, name.as_bytes());
        let mut at = *self.p.by_name.get(&h)?;
        while at != NO_NEXT {
            if self.family_name(at as usize) == name {
                return Some(at as usize);
            }
            at = self.p.chain[at as usize];
        }
        None
    }

    fn new_family(&mut self, name: &str, kind: Option<Kind>) -> usize {
        let typ = kind.map(Kind::metric_type).unwrap_or(MetricType::Untyped);
        let id = self.out.family(name, "", typ);
        let fi = self.p.fams.len();
        self.p.fams.push(Fam {
            id,
            kind,
            has_help: false,
            has_unit: false,
            has_samples: false,
        });
        let h = fnv(FNV_OFFSET, name.as_bytes());
        let next = self.p.by_name.insert(h, fi as u32).unwrap_or(NO_NEXT);
        self.p.chain.push(next);
        fi
    }

    fn set_kind(&mut self, fi: usize, kind: Kind) {
        self.p.fams[fi].kind = Some(kind);
        self.out.set_type(self.p.fams[fi].id, kind.metric_type());
    }

    /// Text format: the family a name belongs to, as Go's parser decides: the exact name,
    /// else `_sum`/`_count` of a summary, else `_sum`/`_count`/`_bucket` of a histogram, else
    /// a new family.
    fn text_family(&mut self, name: &str) -> (usize, &'static str) {
        if let Some(fi) = self.find_family(name) {
            return (fi, "");
        }
        for (suffix, kinds) in [
            (
                "_count",
                &[Kind::Summary, Kind::Histogram, Kind::GaugeHistogram][..],
            ),
            (
                "_sum",
                &[Kind::Summary, Kind::Histogram, Kind::GaugeHistogram][..],
            ),
            ("_bucket", &[Kind::Histogram, Kind::GaugeHistogram][..]),
        ] {
            if name.len() > suffix.len() {
                if let Some(base) = name.strip_suffix(suffix) {
                    if let Some(fi) = self.find_family(base) {
                        if self.p.fams[fi].kind.is_some_and(|k| kinds.contains(&k)) {
                            return (fi, suffix);
                        }
                    }
                }
            }
        }
        (self.new_family(name, None), "")
    }

    fn check_name(&self, name: &str, metric: bool) -> R<()> {
        let ok = match self.opts.names {
            NameScheme::Legacy if metric => is_legacy_metric_name(name),
            NameScheme::Legacy => is_legacy_label_name(name),
            NameScheme::Utf8 => !name.is_empty(),
        };
        if ok {
            Ok(())
        } else if metric {
            self.err(format!("invalid metric name {name:?}"))
        } else {
            self.err(format!("invalid label name {name:?}"))
        }
    }

    /// Reads a metric name token and returns it as `&str` (unescaped into scratch if quoted).
    fn metric_name<'s>(&self, tok: NameTok<'s>, scratch: &'s mut String) -> R<Cow<'s, str>> {
        let name = self.tok_str(tok, scratch, "metric")?;
        self.check_name(&name, true)?;
        Ok(name)
    }

    /// A name token as text. Plain tokens are ASCII by construction; quoted ones are
    /// unescaped into `scratch` when needed.
    fn tok_str<'s>(
        &self,
        tok: NameTok<'s>,
        scratch: &'s mut String,
        what: &str,
    ) -> R<Cow<'s, str>> {
        match tok {
            NameTok::Plain(raw) => Ok(Cow::Borrowed(std::str::from_utf8(raw).unwrap_or(""))),
            NameTok::Quoted(raw, esc) => quoted_str(raw, esc, self.lenient(), scratch)
                .or_else(|e| self.err(format!("{what} name {}: {e}", q(raw)))),
            NameTok::Mixed(plain, raw, esc) => {
                if self.opts.format == Format::OpenMetrics {
                    return self.err(format!("invalid {what} name {}", q(plain)));
                }
                let mut tmp = String::new();
                let quoted = quoted_str(raw, esc, false, &mut tmp)
                    .map(|c| c.into_owned())
                    .or_else(|e| self.err(format!("{what} name {}: {e}", q(raw))))?;
                scratch.clear();
                scratch.push_str(std::str::from_utf8(plain).unwrap_or(""));
                scratch.push_str(&quoted);
                Ok(Cow::Borrowed(scratch.as_str()))
            }
        }
    }

    // ---- text format ----------------------------------------------------------------------

    fn text(&mut self, body: &[u8]) -> R<()> {
        self.lines(body, |run, line, terminated| {
            let mut c = Cur { s: line, i: 0 };
            c.skip_blanks();
            if c.at_end() {
                return Ok(());
            }
            if !terminated {
                return run
                    .err("unexpected end of input stream (the last line must end with a newline)");
            }
            if c.peek() == Some(b'#') {
                c.i += 1;
                run.text_comment(c)
            } else {
                run.text_sample(c)
            }
        })
    }

    fn text_comment(&mut self, mut c: Cur<'_>) -> R<()> {
        c.skip_blanks();
        let kw = c.token(true);
        if c.at_end() || (kw != b"HELP" && kw != b"TYPE") {
            return Ok(()); // an ordinary comment
        }
        c.skip_blanks();
        if c.at_end() {
            return Ok(());
        }
        let Some(tok) = read_name_tok(&mut c, true) else {
            return self.err("metric name in comment contains unescaped new-line");
        };
        if let NameTok::Plain([]) = tok {
            return self.err("invalid metric name in comment");
        }
        if c.at_end() {
            return Ok(());
        }
        if !c.peek().is_some_and(is_blank) {
            return self.err("invalid metric name in comment");
        }
        let mut scratch = std::mem::take(&mut self.p.scratch.name);
        let r = self
            .metric_name(tok, &mut scratch)
            .map(|n| self.text_family(&n));
        self.p.scratch.name = scratch;
        let (fi, _) = r?;
        c.skip_blanks();
        if c.at_end() {
            return Ok(());
        }
        let rest = c.rest();
        if kw == b"HELP" {
            if self.p.fams[fi].has_help {
                let n = self.family_name(fi).to_string();
                return self.err(format!("second HELP line for metric name {n:?}"));
            }
            let mut buf = std::mem::take(&mut self.p.scratch.help).into_bytes();
            buf.clear();
            let r = unescape_into(rest, true, false, &mut buf);
            let help = String::from_utf8_lossy(&buf);
            if r.is_ok() {
                self.out.set_help(self.p.fams[fi].id, &help);
            }
            drop(help);
            buf.clear();
            self.p.scratch.help = String::from_utf8(buf).unwrap_or_default();
            if let Err(e) = r {
                return self.err(e);
            }
            self.p.fams[fi].has_help = true;
        } else {
            if self.p.fams[fi].kind.is_some() {
                let n = self.family_name(fi).to_string();
                return self.err(format!(
                    "second TYPE line for metric name {n:?}, or TYPE reported after samples"
                ));
            }
            // Go's parser reads GAUGE_HISTOGRAM (a protobuf type) like a histogram.
            let kinds = [
                (&b"COUNTER"[..], Kind::Counter),
                (b"GAUGE", Kind::Gauge),
                (b"SUMMARY", Kind::Summary),
                (b"HISTOGRAM", Kind::Histogram),
                (b"UNTYPED", Kind::Unknown),
                (b"GAUGE_HISTOGRAM", Kind::GaugeHistogram),
            ];
            // Go drops every backslash of the TYPE value (it reads it "without escapes").
            let unslashed = || rest.iter().filter(|&&b| b != b'\\');
            let Some(&(_, kind)) = kinds.iter().find(|(k, _)| {
                unslashed().count() == k.len()
                    && unslashed()
                        .zip(k.iter())
                        .all(|(a, b)| a.eq_ignore_ascii_case(b))
            }) else {
                return self.err(format!("unknown metric type {}", q(rest)));
            };
            self.set_kind(fi, kind);
        }
        Ok(())
    }

    fn text_sample(&mut self, mut c: Cur<'_>) -> R<()> {
        let braces = c.peek() == Some(b'{');
        let mut fam: Option<(usize, &'static str)> = None;
        if !braces {
            let Some(tok) = read_name_tok(&mut c, true) else {
                return self.err("metric name contains unescaped new-line");
            };
            if let NameTok::Plain([]) = tok {
                return self.err("invalid metric name");
            }
            fam = Some(self.resolve_text_name(tok)?);
            c.skip_blanks();
        }
        let first_label = self.out.label_mark();
        if c.peek() == Some(b'{') {
            c.i += 1;
            self.labels(&mut c, &mut fam, braces, first_label, false)?;
            c.skip_blanks();
        }
        let Some((fi, suffix)) = fam else {
            return self.err("invalid metric name");
        };
        if self.p.fams[fi].kind.is_none() {
            self.p.fams[fi].kind = Some(Kind::Unknown);
        }
        let tok = c.token(true);
        let Some(value) = parse_float(tok) else {
            return self.err(format!("expected float as value, got {}", q(tok)));
        };
        let mut ts = None;
        if !c.at_end() {
            c.skip_blanks();
            let tok = c.token(true);
            let Some(t) = std::str::from_utf8(tok)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
            else {
                return self.err(format!("expected integer as timestamp, got {}", q(tok)));
            };
            ts = Some(t);
            if !c.at_end() {
                return self.err(format!("spurious string after timestamp: {}", q(c.rest())));
            }
        }
        self.finish_sample(fi, suffix, first_label, value, ts)
    }

    fn resolve_text_name(&mut self, tok: NameTok<'_>) -> R<(usize, &'static str)> {
        if let (NameTok::Plain(raw), Some(hit)) = (&tok, self.p.last_resolved) {
            if *raw == self.p.last_name.as_bytes() {
                return Ok(hit);
            }
        }
        let plain = match tok {
            NameTok::Plain(raw) => Some(raw),
            NameTok::Quoted(..) | NameTok::Mixed(..) => None,
        };
        let r = self.resolve_text_name_slow(tok)?;
        if let Some(raw) = plain {
            self.p.last_name.clear();
            // Plain names are ASCII by construction.
            self.p
                .last_name
                .push_str(std::str::from_utf8(raw).unwrap_or(""));
            self.p.last_resolved = Some(r);
        }
        Ok(r)
    }

    fn resolve_text_name_slow(&mut self, tok: NameTok<'_>) -> R<(usize, &'static str)> {
        let mut scratch = std::mem::take(&mut self.p.scratch.name);
        let r = self
            .metric_name(tok, &mut scratch)
            .map(|n| self.text_family(&n));
        self.p.scratch.name = scratch;
        r
    }

    /// Label pairs after `{`, up to and including `}`. In braces form (`{"name", l="v"}`) a
    /// lone quoted string is the metric name. `om` selects OpenMetrics' strict spacing.
    fn labels(
        &mut self,
        c: &mut Cur<'_>,
        fam: &mut Option<(usize, &'static str)>,
        braces: bool,
        first_label: usize,
        om: bool,
    ) -> R<()> {
        let mut count = 0usize;
        let mut first = true;
        loop {
            if !om {
                c.skip_blanks();
            }
            if c.eat(b'}') {
                if om && !first {
                    return self.err("trailing comma in label set (not allowed in OpenMetrics)");
                }
                return Ok(());
            }
            first = false;
            let Some(tok) = read_name_tok(c, false) else {
                return self.err("label name contains unescaped new-line");
            };
            if let NameTok::Plain([]) = tok {
                let n = fam
                    .map(|(fi, _)| self.family_name(fi).to_string())
                    .unwrap_or_default();
                return self.err(format!("invalid label name for metric {n:?}"));
            }
            if !om {
                c.skip_blanks();
            }
            if c.peek() != Some(b'=') {
                if braces && matches!(c.peek(), Some(b',') | Some(b'}')) {
                    if fam.is_some() {
                        let n = self.fname(fam.map(|(fi, _)| fi).unwrap_or(0));
                        return self.err(format!("multiple metric names for metric {n:?}"));
                    }
                    *fam = Some(self.resolve_text_or_om(tok, om)?);
                    if c.eat(b',') {
                        continue;
                    }
                    c.i += 1;
                    return Ok(());
                }
                if braces {
                    return self.err(format!("unexpected end of metric value {}", qb(c.peek())));
                }
                return self.err(format!(
                    "expected '=' after label name, found {}",
                    qb(c.peek())
                ));
            }
            c.i += 1;
            // Resolve the label name.
            let mut lscratch = std::mem::take(&mut self.p.scratch.label);
            let lname = self.tok_str(tok, &mut lscratch, "label");
            let r = self.label_value(c, &*fam, lname, first_label, om);
            self.p.scratch.label = lscratch;
            r?;
            count += 1;
            let max = self.opts.limits.max_labels;
            if max > 0 && count > max {
                return self.err(format!("too many labels: more than the limit of {max}"));
            }
            if !om {
                c.skip_blanks();
            }
            match c.peek() {
                Some(b',') => c.i += 1,
                Some(b'}') => {
                    c.i += 1;
                    return Ok(());
                }
                _ => {
                    let v: Vec<u8> = self
                        .out
                        .pending_labels(first_label)
                        .last()
                        .map(|(_, v)| v.as_bytes().to_vec())
                        .unwrap_or_default();
                    return self.err(format!("unexpected end of label value {}", q(&v)));
                }
            }
        }
    }

    fn resolve_text_or_om(&mut self, tok: NameTok<'_>, om: bool) -> R<(usize, &'static str)> {
        if om {
            self.resolve_om_name(tok)
        } else {
            self.resolve_text_name(tok)
        }
    }

    /// After `name=`: the quoted value; checks and pushes the pair.
    fn label_value(
        &mut self,
        c: &mut Cur<'_>,
        fam: &Option<(usize, &'static str)>,
        lname: R<Cow<'_, str>>,
        first_label: usize,
        om: bool,
    ) -> R<()> {
        let lname = lname?;
        self.check_name(&lname, false)?;
        if lname == "__name__" {
            return self.err("label name \"__name__\" is reserved");
        }
        if !om {
            c.skip_blanks();
        }
        if c.peek() != Some(b'"') {
            return self.err(format!(
                "expected '\"' at start of label value, found {}",
                qb(c.peek())
            ));
        }
        let Some((raw, esc)) = read_quoted(c) else {
            let partial = &c.s[c.s.len().min(c.i)..];
            let _ = partial;
            return self
                .err("label value contains unescaped new-line (or misses its closing quote)");
        };
        let mut vscratch = std::mem::take(&mut self.p.scratch.value);
        let r = match quoted_str(raw, esc, self.lenient(), &mut vscratch) {
            Ok(value) => self.push_label(fam, &lname, &value, first_label),
            Err(e) if e.starts_with("invalid escape") => self.err(e),
            Err(_) => self.err(format!("invalid label value {}", q(raw))),
        };
        self.p.scratch.value = vscratch;
        r
    }

    fn push_label(
        &mut self,
        fam: &Option<(usize, &'static str)>,
        name: &str,
        value: &str,
        first_label: usize,
    ) -> R<()> {
        let kind = fam.and_then(|(fi, _)| self.p.fams[fi].kind);
        let special = match kind {
            Some(Kind::Summary) if name == "quantile" => true,
            Some(Kind::Histogram | Kind::GaugeHistogram) if name == "le" => true,
            _ => false,
        };
        if special && self.opts.format == Format::Text && parse_float(value.as_bytes()).is_none() {
            return self.err(format!(
                "expected float as value for '{name}' label, got {value:?}"
            ));
        }
        // Go skips the special label in its duplicate check; so do we in text format.
        let skip_dup = special && self.opts.format == Format::Text;
        if !skip_dup && self.out.pending_labels(first_label).any(|(n, _)| n == name) {
            let n = fam
                .map(|(fi, _)| self.family_name(fi).to_string())
                .unwrap_or_default();
            return self.err(format!("duplicate label names for metric {n:?}"));
        }
        self.out.push_label(name, value);
        Ok(())
    }

    /// Records the sample whose labels were pushed since `first_label`; duplicate and limit
    /// checks.
    fn finish_sample(
        &mut self,
        fi: usize,
        suffix: &str,
        first_label: usize,
        value: f64,
        ts: Option<i64>,
    ) -> R<()> {
        let max = self.opts.limits.max_samples;
        if max > 0 && self.stats.samples >= max {
            return self.err(format!("sample limit exceeded: more than {max} samples"));
        }
        let id = self.p.fams[fi].id;
        self.p.fams[fi].has_samples = true;
        let h = {
            let name = self.out.family_ref(id).name;
            fnv(fnv(FNV_OFFSET, name.as_bytes()), suffix.as_bytes())
                ^ mix(labels_hash(self.out.pending_labels(first_label), ""))
        };
        self.out.push_sample(id, suffix, first_label, value, ts);
        self.stats.samples += 1;
        let idx = self.out.sample_count() - 1;
        if let Some(&prev) = self.p.series.get(&h) {
            if same_series(self.out, prev as usize, idx) {
                let prev_ts = self.out.sample_ref(prev as usize).timestamp();
                match self.opts.format {
                    Format::Text => self.stats.duplicates += 1,
                    Format::OpenMetrics => match (prev_ts, ts) {
                        (Some(a), Some(b)) if b > a => {}
                        (Some(_), Some(_)) => {
                            return self.err(format!(
                                "timestamps of series {} must increase",
                                series_text(self.out, idx)
                            ))
                        }
                        _ => {
                            return self
                                .err(format!("duplicate series {}", series_text(self.out, idx)))
                        }
                    },
                }
            }
        }
        debug_assert!(idx >= self.first_sample);
        self.p.series.insert(h, idx as u32);
        Ok(())
    }

    // ---- OpenMetrics ----------------------------------------------------------------------

    fn openmetrics(&mut self, body: &[u8]) -> R<()> {
        let mut eof = false;
        self.lines(body, |run, line, terminated| {
            if eof {
                return run.err("unexpected data after # EOF");
            }
            if line == b"# EOF" {
                eof = true;
                return run.end_family();
            }
            if line.is_empty() {
                return run.err("empty line (not allowed in OpenMetrics)");
            }
            let _ = terminated;
            let c = Cur { s: line, i: 0 };
            if line[0] == b'#' {
                run.om_metadata(c)
            } else {
                run.om_sample(c)
            }
        })?;
        if !eof {
            self.line += 1;
            return self.err("missing \"# EOF\" at the end (OpenMetrics requires it)");
        }
        Ok(())
    }

    /// Closes the current family: histogram bucket checks that need the whole run.
    fn end_family(&mut self) -> R<()> {
        self.end_bucket_group()?;
        self.current = None;
        Ok(())
    }

    fn end_bucket_group(&mut self) -> R<()> {
        let run = std::mem::take(&mut self.buckets);
        let (Some(_), Some(fi)) = (run.group, self.current) else {
            return Ok(());
        };
        let n = || self.fname(fi);
        let gauge = self.p.fams[fi].kind == Some(Kind::GaugeHistogram);
        let (count, sum) = if gauge {
            ("_gcount", "_gsum")
        } else {
            ("_count", "_sum")
        };
        if !run.has_inf {
            return self.err(format!("histogram {:?} has no +Inf bucket", n()));
        }
        if run.count.is_some() != run.sum.is_some() {
            return self.err(format!(
                "histogram {:?} must have both {count} and {sum}, or neither",
                n()
            ));
        }
        if let Some(c) = run.count {
            if c != run.inf_count {
                return self.err(format!(
                    "{count} of histogram {:?} is {c}, but its +Inf bucket is {}",
                    n(),
                    run.inf_count
                ));
            }
        }
        if run.negative_bucket && run.sum.is_some() && !gauge {
            return self.err(format!(
                "histogram {:?} has negative buckets, so it must not have {sum}",
                n()
            ));
        }
        Ok(())
    }

    /// Switches to family `fi` (new, or the current one).
    fn enter_family(&mut self, fi: usize) -> R<()> {
        if self.current != Some(fi) {
            self.end_family()?;
            self.current = Some(fi);
        }
        Ok(())
    }

    /// The family named `name` for a new metadata line or sample run; errors when it was
    /// seen before and another family came in between.
    fn om_family_start(&mut self, name: &str, kind: Option<Kind>) -> R<usize> {
        if let Some(fi) = self.find_family(name) {
            if self.current == Some(fi) {
                return Ok(fi);
            }
            return self.err(format!(
                "metric family {name:?} appears in two places; families must not be interleaved"
            ));
        }
        for s in OM_SUFFIXES {
            if let Some(base) = name.strip_suffix(s) {
                if let Some(fi) = self.find_family(base) {
                    let kind = self.p.fams[fi].kind.unwrap_or(Kind::Unknown);
                    if kind.om_suffixes().contains(s) && self.current != Some(fi) {
                        return self.err(format!(
                            "sample {name:?} of metric family {base:?} appears after another \
                             family; families must not be interleaved"
                        ));
                    }
                }
            }
        }
        let fi = self.new_family(name, kind);
        self.enter_family(fi)?;
        Ok(fi)
    }

    fn om_metadata(&mut self, mut c: Cur<'_>) -> R<()> {
        let kw: &[u8] = if c.s.starts_with(b"# HELP ") {
            b"HELP"
        } else if c.s.starts_with(b"# TYPE ") {
            b"TYPE"
        } else if c.s.starts_with(b"# UNIT ") {
            b"UNIT"
        } else {
            return self.err(
                "invalid comment line (OpenMetrics allows only # HELP, # TYPE, # UNIT and # EOF)",
            );
        };
        c.i = 7;
        let Some(tok) = read_name_tok(&mut c, true) else {
            return self.err("metric name misses its closing quote");
        };
        if let NameTok::Plain([]) = tok {
            return self.err(format!(
                "invalid metric name in {} line",
                String::from_utf8_lossy(kw)
            ));
        }
        let mut scratch = std::mem::take(&mut self.p.scratch.name);
        let r = self
            .metric_name(tok, &mut scratch)
            .and_then(|n| self.om_family_start(&n, None));
        self.p.scratch.name = scratch;
        let fi = r?;
        let text = if c.at_end() {
            &[][..]
        } else if c.eat(b' ') {
            c.rest()
        } else {
            return self.err(format!(
                "expected a space after the metric name in {} line",
                String::from_utf8_lossy(kw)
            ));
        };
        if self.p.fams[fi].has_samples {
            return self.err(format!(
                "{} line for {:?} after its samples; metadata must come first",
                String::from_utf8_lossy(kw),
                self.family_name(fi)
            ));
        }
        match kw {
            b"TYPE" => {
                if self.p.fams[fi].kind.is_some() {
                    return self.err(format!("second TYPE line for {:?}", self.family_name(fi)));
                }
                let Some(kind) = Kind::from_om(text) else {
                    return self.err(format!("invalid metric type {}", q(text)));
                };
                self.set_kind(fi, kind);
            }
            b"HELP" => {
                if self.p.fams[fi].has_help {
                    return self.err(format!("second HELP line for {:?}", self.family_name(fi)));
                }
                let mut buf = std::mem::take(&mut self.p.scratch.help).into_bytes();
                buf.clear();
                let r = unescape_into(text, true, true, &mut buf);
                let r = r.and_then(|()| match std::str::from_utf8(&buf) {
                    Ok(help) => {
                        self.out.set_help(self.p.fams[fi].id, help);
                        Ok(())
                    }
                    Err(_) => Err("HELP text is not valid UTF-8".to_string()),
                });
                buf.clear();
                self.p.scratch.help = String::from_utf8(buf).unwrap_or_default();
                if let Err(e) = r {
                    return self.err(e);
                }
                self.p.fams[fi].has_help = true;
            }
            _ => {
                if self.p.fams[fi].has_unit {
                    return self.err(format!("second UNIT line for {:?}", self.family_name(fi)));
                }
                self.p.fams[fi].has_unit = true;
                if !text.is_empty() {
                    let name = self.family_name(fi);
                    let unit = String::from_utf8_lossy(text);
                    let ok = name.len() > unit.len()
                        && name.ends_with(unit.as_ref())
                        && name.as_bytes()[name.len() - unit.len() - 1] == b'_';
                    if !ok {
                        return self.err(format!(
                            "unit {unit:?} is not a suffix of metric family {name:?}"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn resolve_om_name(&mut self, tok: NameTok<'_>) -> R<(usize, &'static str)> {
        let mut scratch = std::mem::take(&mut self.p.scratch.name);
        let r = self
            .metric_name(tok, &mut scratch)
            .and_then(|n| self.om_family(&n));
        self.p.scratch.name = scratch;
        r
    }

    /// OpenMetrics: the family and suffix of a sample name.
    fn om_family(&mut self, name: &str) -> R<(usize, &'static str)> {
        if let Some(fi) = self.current {
            let kind = self.p.fams[fi].kind.unwrap_or(Kind::Unknown);
            let base = self.family_name(fi);
            if let Some(rest) = name.strip_prefix(base) {
                if let Some(s) = kind.om_suffixes().iter().find(|s| **s == rest) {
                    return Ok((fi, s));
                }
                if rest.is_empty() {
                    return self.err(format!(
                        "sample name {name:?} is not valid for {} family {name:?} (expected \
                         one of the suffixes {:?})",
                        kind.om_name(),
                        kind.om_suffixes()
                    ));
                }
            }
        }
        let fi = self.om_family_start(name, None)?;
        Ok((fi, ""))
    }

    fn om_sample(&mut self, mut c: Cur<'_>) -> R<()> {
        let braces = c.peek() == Some(b'{');
        let mut fam = None;
        if !braces {
            let Some(tok) = read_name_tok(&mut c, true) else {
                return self.err("metric name misses its closing quote");
            };
            if let NameTok::Plain([]) = tok {
                return self.err("invalid metric name");
            }
            fam = Some(self.resolve_om_name(tok)?);
        }
        let first_label = self.out.label_mark();
        if c.eat(b'{') {
            if braces {
                // The name must come first inside the braces.
                let Some(tok) = read_name_tok(&mut c, true) else {
                    return self.err("metric name misses its closing quote");
                };
                if !matches!(tok, NameTok::Quoted(..)) {
                    return self.err("expected a quoted metric name after '{'");
                }
                fam = Some(self.resolve_om_name(tok)?);
                if !c.eat(b',') {
                    if !c.eat(b'}') {
                        return self.err(format!(
                            "expected ',' or '}}' after the metric name, found {}",
                            qb(c.peek())
                        ));
                    }
                } else {
                    self.labels(&mut c, &mut fam, false, first_label, true)?;
                }
            } else {
                self.labels(&mut c, &mut fam, false, first_label, true)?;
            }
        }
        let Some((fi, suffix)) = fam else {
            return self.err("invalid metric name");
        };
        if !c.eat(b' ') {
            return self.err(format!(
                "expected a single space before the value, found {}",
                qb(c.peek())
            ));
        }
        let tok = c.token(false);
        let Some(value) = parse_float(tok) else {
            return self.err(format!("expected float as value, got {}", q(tok)));
        };
        let mut ts = None;
        let mut exemplar = false;
        if !c.at_end() {
            if !c.eat(b' ') {
                return self.err("expected a single space after the value");
            }
            if c.peek() == Some(b'#') {
                exemplar = true;
            } else {
                let tok = c.token(false);
                ts = Some(self.om_timestamp(tok)?);
                if !c.at_end() {
                    if !c.eat(b' ') || c.peek() != Some(b'#') {
                        return self.err(format!(
                            "unexpected text after the timestamp: {}",
                            q(c.rest())
                        ));
                    }
                    exemplar = true;
                }
            }
        }
        let kind = self.p.fams[fi].kind.unwrap_or(Kind::Unknown);
        if exemplar {
            let allowed = matches!(
                (kind, suffix),
                (Kind::Counter, "_total") | (Kind::Histogram | Kind::GaugeHistogram, "_bucket")
            );
            if !allowed {
                return self.err(
                    "exemplars are only allowed on counter _total and histogram _bucket samples",
                );
            }
            self.om_exemplar(&mut c)?;
        }
        self.om_check_value(fi, kind, suffix, first_label, value)?;
        self.finish_sample(fi, suffix, first_label, value, ts)
    }

    fn om_timestamp(&self, tok: &[u8]) -> R<i64> {
        match parse_float(tok) {
            Some(t) if t.is_finite() => {
                let ms = (t * 1000.0).round();
                if ms.abs() < 9.2e18 {
                    Ok(ms as i64)
                } else {
                    self.err(format!("timestamp {} out of range", q(tok)))
                }
            }
            _ => self.err(format!(
                "expected a number of seconds as timestamp, got {}",
                q(tok)
            )),
        }
    }

    /// ` # {labels} value [timestamp]` after a sample; checked, then dropped.
    fn om_exemplar(&mut self, c: &mut Cur<'_>) -> R<()> {
        if !(c.eat(b'#') && c.eat(b' ') && c.eat(b'{')) {
            return self.err("malformed exemplar (expected \" # {labels} value\")");
        }
        // Parse the labels into the arena, then drop them again.
        let mark = self.out.mark();
        let first = self.out.label_mark();
        let mut none = None;
        let r = self.labels(c, &mut none, false, first, true);
        let runes: usize = self
            .out
            .pending_labels(first)
            .map(|(n, v)| n.chars().count() + v.chars().count())
            .sum();
        self.out.rollback(mark);
        r?;
        if runes > 128 {
            return self.err(format!(
                "exemplar labels have {runes} characters, over the limit of 128"
            ));
        }
        if !c.eat(b' ') {
            return self.err("expected a space before the exemplar value");
        }
        let tok = c.token(false);
        if parse_float(tok).is_none() {
            return self.err(format!("expected float as exemplar value, got {}", q(tok)));
        }
        if c.eat(b' ') {
            let tok = c.token(false);
            self.om_timestamp(tok)?;
        }
        if !c.at_end() {
            return self.err(format!(
                "unexpected text after the exemplar: {}",
                q(c.rest())
            ));
        }
        Ok(())
    }

    fn label_of(&self, first_label: usize, name: &str) -> Option<String> {
        self.out
            .pending_labels(first_label)
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    }

    fn label_float(&self, first_label: usize, name: &str) -> Option<f64> {
        self.out
            .pending_labels(first_label)
            .find(|(n, _)| *n == name)
            .map(|(_, v)| parse_float(v.as_bytes()).unwrap_or(f64::NAN))
    }

    /// The per-type rules of OpenMetrics on one sample.
    fn om_check_value(
        &mut self,
        fi: usize,
        kind: Kind,
        suffix: &str,
        first_label: usize,
        value: f64,
    ) -> R<()> {
        match (kind, suffix) {
            (Kind::Counter, "_total") if value.is_nan() || value < 0.0 => self.err(format!(
                "counter {:?} has value {value}; a counter total must be a non-negative number",
                self.fname(fi)
            )),
            (Kind::Histogram | Kind::GaugeHistogram, suffix) if suffix != "_created" => {
                let group = labels_hash(self.out.pending_labels(first_label), "le");
                if self.buckets.group != Some(group) {
                    self.end_bucket_group()?;
                    self.buckets = BucketRun {
                        group: Some(group),
                        last_le: f64::NEG_INFINITY,
                        ..BucketRun::default()
                    };
                }
                if suffix != "_bucket" {
                    let negative_ok = suffix == "_gsum";
                    if value.is_nan() || (value < 0.0 && !negative_ok) {
                        return self.err(format!(
                            "{suffix} of histogram {:?} is {value}; it must be a non-negative number",
                            self.fname(fi)
                        ));
                    }
                    if suffix.ends_with("count") {
                        self.buckets.count = Some(value);
                    } else {
                        self.buckets.sum = Some(value);
                    }
                    return Ok(());
                }
                let Some(le) = self.label_float(first_label, "le") else {
                    return self.err(format!(
                        "bucket of histogram {:?} has no le label",
                        self.fname(fi)
                    ));
                };
                if le.is_nan() {
                    let v = self.label_of(first_label, "le").unwrap_or_default();
                    return self.err(format!("invalid le label value {v:?}"));
                }
                if value.is_nan() || value < 0.0 {
                    return self.err(format!(
                        "bucket of histogram {:?} has count {value}; counts must be non-negative",
                        self.fname(fi)
                    ));
                }
                if self.buckets.count.is_some() || self.buckets.sum.is_some() {
                    return self.err(format!(
                        "buckets of histogram {:?} must come before its count and sum",
                        self.fname(fi)
                    ));
                }
                if le <= self.buckets.last_le {
                    return self.err(format!(
                        "buckets of histogram {:?} must be in increasing le order",
                        self.fname(fi)
                    ));
                }
                if value < self.buckets.last_count {
                    return self.err(format!(
                        "buckets of histogram {:?} must be cumulative (counts never decrease)",
                        self.fname(fi)
                    ));
                }
                self.buckets.last_le = le;
                self.buckets.last_count = value;
                self.buckets.negative_bucket |= le < 0.0;
                if le == f64::INFINITY {
                    self.buckets.has_inf = true;
                    self.buckets.inf_count = value;
                }
                Ok(())
            }
            (Kind::Summary, "_sum" | "_count") if value.is_nan() || value < 0.0 => {
                self.err(format!(
                    "{suffix} of summary {:?} is {value}; it must be a non-negative number",
                    self.fname(fi)
                ))
            }
            (Kind::Summary, "") => match self.label_float(first_label, "quantile") {
                Some(qv) if (0.0..=1.0).contains(&qv) => Ok(()),
                Some(_) => {
                    let v = self.label_of(first_label, "quantile").unwrap_or_default();
                    self.err(format!("invalid quantile {v:?} (must be between 0 and 1)"))
                }
                None => self.err(format!(
                    "sample of summary {:?} has no quantile label",
                    self.fname(fi)
                )),
            },
            (Kind::StateSet, "") => {
                let n = self.fname(fi);
                if self.label_of(first_label, &n).is_none() {
                    return self.err(format!("stateset {n:?} sample has no label named {n:?}"));
                }
                if value != 0.0 && value != 1.0 {
                    return self.err(format!("stateset {n:?} value must be 0 or 1, got {value}"));
                }
                Ok(())
            }
            (Kind::Info, "_info") if value != 1.0 => self.err(format!(
                "info {:?} value must be 1, got {value}",
                self.fname(fi)
            )),
            _ => Ok(()),
        }
    }
}

fn same_series(set: &MetricSet, a: usize, b: usize) -> bool {
    let (a, b) = (set.sample_ref(a), set.sample_ref(b));
    let (an, asuf, bn, bsuf) = (a.family_name(), a.suffix(), b.family_name(), b.suffix());
    let same_name = an.len() + asuf.len() == bn.len() + bsuf.len()
        && an
            .bytes()
            .chain(asuf.bytes())
            .eq(bn.bytes().chain(bsuf.bytes()));
    if !same_name || a.labels().count() != b.labels().count() {
        return false;
    }
    a.labels().all(|pair| b.labels().any(|other| other == pair))
}

fn series_text(set: &MetricSet, i: usize) -> String {
    let s = set.sample_ref(i);
    let mut t = format!("{}{}{{", s.family_name(), s.suffix());
    for (k, (n, v)) in s.labels().enumerate() {
        if k > 0 {
            t.push(',');
        }
        t.push_str(&format!("{n}={v:?}"));
    }
    t.push('}');
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expo::format_float;

    /// One line per family (`# name type "help"`) and per sample
    /// (`name+suffix{labels} value [ts]`), in set order.
    fn dump(set: &MetricSet) -> String {
        let mut s = String::new();
        for f in set.families() {
            s.push_str(&format!("# {} {} {:?}\n", f.name, f.typ.as_text(), f.help));
        }
        for x in set.samples() {
            let mut v = Vec::new();
            format_float(x.value(), &mut v);
            let labels: Vec<String> = x.labels().map(|(n, v)| format!("{n}={v:?}")).collect();
            s.push_str(&format!(
                "{}{}{{{}}} {}",
                x.family_name(),
                x.suffix(),
                labels.join(","),
                String::from_utf8(v).unwrap()
            ));
            if let Some(t) = x.timestamp() {
                s.push_str(&format!(" @{t}"));
            }
            s.push('\n');
        }
        s
    }

    fn text(body: &str) -> Result<String, String> {
        let mut set = MetricSet::new();
        parse(body.as_bytes(), &Options::text(), &mut set)
            .map(|_| dump(&set))
            .map_err(|e| e.to_string())
    }

    fn legacy(body: &str) -> Result<String, String> {
        let mut set = MetricSet::new();
        let opts = Options {
            names: NameScheme::Legacy,
            ..Options::text()
        };
        parse(body.as_bytes(), &opts, &mut set)
            .map(|_| dump(&set))
            .map_err(|e| e.to_string())
    }

    fn om(body: &str) -> Result<String, String> {
        let mut set = MetricSet::new();
        parse(body.as_bytes(), &Options::openmetrics(), &mut set)
            .map(|_| dump(&set))
            .map_err(|e| e.to_string())
    }

    fn text_err(body: &str) -> String {
        text(body).expect_err(body)
    }

    fn om_err(body: &str) -> String {
        om(body).expect_err(body)
    }

    #[test]
    fn text_reads_families_labels_values_and_timestamps() {
        let body = "# HELP a Help with \\\\ and \\n.\n# TYPE a counter\n\
                    a{x=\"1\",y=\"q\\\"\\\\\\n\",} 1.5 -1000\n\
                    b\t+Inf\n{\"c\", z=\"\"} NaN\n";
        assert_eq!(
            text(body).unwrap(),
            "# a counter \"Help with \\\\ and \\n.\"\n# b untyped \"\"\n# c untyped \"\"\n\
             a{x=\"1\",y=\"q\\\"\\\\\\n\"} 1.5 @-1000\nb{} +Inf\nc{z=\"\"} NaN\n"
        );
    }

    #[test]
    fn text_groups_summary_and_histogram_suffixes_under_their_family() {
        let body = "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n\
                    # TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n\
                    # TYPE g gauge\ng_sum 1\n";
        assert_eq!(
            text(body).unwrap(),
            "# s summary \"\"\n# h histogram \"\"\n# g gauge \"\"\n# g_sum untyped \"\"\n\
             s{quantile=\"0.5\"} 1\ns_sum{} 2\ns_count{} 3\nh_bucket{le=\"+Inf\"} 2\n\
             h_sum{} 3\nh_count{} 2\ng_sum{} 1\n"
        );
    }

    #[test]
    fn text_merges_a_split_family_and_counts_duplicates() {
        let mut set = MetricSet::new();
        let stats = parse(
            b"a{x=\"1\"} 1\nb 2\na{x=\"2\"} 3\na{x=\"1\"} 4\n",
            &Options::text(),
            &mut set,
        )
        .unwrap();
        assert_eq!(
            stats,
            ParseStats {
                samples: 4,
                duplicates: 1
            }
        );
        assert_eq!(set.families().count(), 2);
    }

    #[test]
    fn text_numbers_follow_go_parse_float() {
        for (v, want) in [
            ("1e3", 1000.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("-Infinity", f64::NEG_INFINITY),
            ("inf", f64::INFINITY),
        ] {
            assert_eq!(parse_float(v.as_bytes()), Some(want), "{v}");
        }
        assert!(parse_float(b"nan").unwrap().is_nan());
        for bad in [
            "+nan", "0x10", "0x1p3", "1_0", "1e400", "", "infin", "1e", ".",
        ] {
            assert_eq!(parse_float(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn text_errors_name_the_line_and_the_problem() {
        let cases = [
            (
                "a 1",
                "line 1: unexpected end of input stream (the last line must end with a newline)",
            ),
            ("a 1\nb\n", "line 2: expected float as value, got \"\""),
            ("a 1 \n", "line 1: expected integer as timestamp, got \"\""),
            (
                "a 1 1.5\n",
                "line 1: expected integer as timestamp, got \"1.5\"",
            ),
            (
                "a 1 2 3\n",
                "line 1: spurious string after timestamp: \" 3\"",
            ),
            (
                "# TYPE a gauge\n# TYPE a gauge\n",
                "line 2: second TYPE line for metric name \"a\", or TYPE reported after samples",
            ),
            (
                "a 1\n# TYPE a gauge\n",
                "line 2: second TYPE line for metric name \"a\", or TYPE reported after samples",
            ),
            (
                "# HELP a x\n# HELP a y\n",
                "line 2: second HELP line for metric name \"a\"",
            ),
            ("# TYPE a foo\n", "line 1: unknown metric type \"foo\""),
            (
                "a{x=\"1\",x=\"2\"} 1\n",
                "line 1: duplicate label names for metric \"a\"",
            ),
            (
                "a{__name__=\"b\"} 1\n",
                "line 1: label name \"__name__\" is reserved",
            ),
            ("a{x=\"\\q\"} 1\n", "line 1: invalid escape sequence '\\q'"),
            (
                "a{x=1} 1\n",
                "line 1: expected '\"' at start of label value, found '1'",
            ),
            (
                "a{x=\"1\" y=\"2\"} 1\n",
                "line 1: unexpected end of label value \"1\"",
            ),
            (
                "a{x-y=\"1\"} 1\n",
                "line 1: expected '=' after label name, found '-'",
            ),
            ("a{,} 1\n", "line 1: invalid label name for metric \"a\""),
            ("{x=\"1\"} 1\n", "line 1: invalid metric name"),
            (
                "{\"a\", \"b\"} 1\n",
                "line 1: multiple metric names for metric \"a\"",
            ),
            (
                "# TYPE s summary\ns{quantile=\"x\"} 1\n",
                "line 2: expected float as value for 'quantile' label, got \"x\"",
            ),
            (
                "a 0x1p3\n",
                "line 1: expected float as value, got \"0x1p3\"",
            ),
            (
                "a{x=\"1} 1\n",
                "line 1: label value contains unescaped new-line (or misses its closing quote)",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(text_err(body), want, "{body:?}");
        }
        assert_eq!(
            legacy("{\"a.b\"} 1\n").unwrap_err(),
            "line 1: invalid metric name \"a.b\""
        );
        assert_eq!(
            legacy("a{\"x.y\"=\"1\"} 1\n").unwrap_err(),
            "line 1: invalid label name \"x.y\""
        );
        assert!(
            text("{\"a.b\", \"x.y\"=\"1\"} 1\n").is_ok(),
            "UTF-8 names are fine by default"
        );
    }

    #[test]
    fn limits_fail_the_parse_and_leave_the_set_unchanged() {
        let mut set = MetricSet::new();
        set.single_static("before", "kept", MetricType::Gauge, 1.0);
        let mut opts = Options::text();
        opts.limits.max_samples = 2;
        let e = parse(b"a 1\nb 2\nc 3\n", &opts, &mut set).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 3: sample limit exceeded: more than 2 samples"
        );
        assert_eq!(dump(&set), "# before gauge \"kept\"\nbefore{} 1\n");
        let mut opts = Options::text();
        opts.limits.max_labels = 1;
        let e = parse(b"a{x=\"1\",y=\"2\"} 1\n", &opts, &mut set).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: too many labels: more than the limit of 1"
        );
        let mut opts = Options::text();
        opts.limits.max_line_len = 8;
        let e = parse(b"a 1\nabcdefghij 1\n", &opts, &mut set).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: line is 12 bytes long, over the limit of 8"
        );
        assert_eq!(set.sample_count(), 1);
    }

    #[test]
    fn openmetrics_reads_suffixes_seconds_and_drops_exemplars() {
        let body = "# TYPE c counter\n# UNIT c \n# HELP c A \\\"counter\\\".\n\
                    c_total{x=\"1\"} 3 1520879607.789 # {trace_id=\"abc\"} 0.67 1520879607.7\n\
                    c_created{x=\"1\"} 1520000000\n\
                    # TYPE h_seconds histogram\n# UNIT h_seconds seconds\n\
                    h_seconds_bucket{le=\"1.0\"} 1 # {} 1\nh_seconds_bucket{le=\"+Inf\"} 2\n\
                    h_seconds_count 2\nh_seconds_sum 1.5\n\
                    # TYPE i info\ni_info{v=\"1.0\"} 1\n# TYPE s stateset\ns{s=\"on\"} 1\ns{s=\"off\"} 0\n\
                    u 1\n# EOF\n";
        assert_eq!(
            om(body).unwrap(),
            "# c counter \"A \\\"counter\\\".\"\n# h_seconds histogram \"\"\n# i gauge \"\"\n\
             # s gauge \"\"\n# u untyped \"\"\n\
             c_total{x=\"1\"} 3 @1520879607789\nc_created{x=\"1\"} 1.52e+09\n\
             h_seconds_bucket{le=\"1.0\"} 1\nh_seconds_bucket{le=\"+Inf\"} 2\nh_seconds_count{} 2\n\
             h_seconds_sum{} 1.5\ni_info{v=\"1.0\"} 1\ns{s=\"on\"} 1\ns{s=\"off\"} 0\nu{} 1\n"
        );
        assert!(
            om("# EOF").is_ok(),
            "the final newline after # EOF is optional"
        );
    }

    #[test]
    fn openmetrics_errors_name_the_line_and_the_rule() {
        let cases = [
            ("a 1\n", "line 2: missing \"# EOF\" at the end (OpenMetrics requires it)"),
            ("a 1\n# EOF\nb 1\n", "line 3: unexpected data after # EOF"),
            ("a 1\n\n# EOF\n", "line 2: empty line (not allowed in OpenMetrics)"),
            ("# random\n# EOF\n", "line 1: invalid comment line (OpenMetrics allows only # HELP, # TYPE, # UNIT and # EOF)"),
            ("a 1\nb 1\na 2\n# EOF\n", "line 3: metric family \"a\" appears in two places; families must not be interleaved"),
            ("# TYPE a counter\na_total 1\nb 1\na_total 2\n# EOF\n", "line 4: sample \"a_total\" of metric family \"a\" appears after another family; families must not be interleaved"),
            ("# TYPE a gauge\n# TYPE a gauge\n# EOF\n", "line 2: second TYPE line for \"a\""),
            ("a 1\n# HELP a x\n# EOF\n", "line 2: HELP line for \"a\" after its samples; metadata must come first"),
            ("# TYPE a Gauge\n# EOF\n", "line 1: invalid metric type \"Gauge\""),
            ("# TYPE a_seconds gauge\n# UNIT a_seconds bytes\n# EOF\n", "line 2: unit \"bytes\" is not a suffix of metric family \"a_seconds\""),
            ("# TYPE a counter\na 1\n# EOF\n", "line 2: sample name \"a\" is not valid for counter family \"a\" (expected one of the suffixes [\"_total\", \"_created\"])"),
            ("# TYPE a counter\na_total -1\n# EOF\n", "line 2: counter \"a\" has value -1; a counter total must be a non-negative number"),
            ("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\n# EOF\n", "line 4: histogram \"h\" has no +Inf bucket"),
            ("# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n# EOF\n", "line 3: buckets of histogram \"h\" must be in increasing le order"),
            ("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n# EOF\n", "line 3: buckets of histogram \"h\" must be cumulative (counts never decrease)"),
            ("# TYPE h histogram\nh_bucket 1\n# EOF\n", "line 2: bucket of histogram \"h\" has no le label"),
            ("# TYPE s summary\ns{quantile=\"2\"} 1\n# EOF\n", "line 2: invalid quantile \"2\" (must be between 0 and 1)"),
            ("a{x=\"1\",} 1\n# EOF\n", "line 1: trailing comma in label set (not allowed in OpenMetrics)"),
            ("a  1\n# EOF\n", "line 1: expected float as value, got \"\""),
            ("a 1\na 2\n# EOF\n", "line 2: duplicate series a{}"),
            ("a 1 2\na 2 1\n# EOF\n", "line 2: timestamps of series a{} must increase"),
            ("a 1 # {} 1\n# EOF\n", "line 1: exemplars are only allowed on counter _total and histogram _bucket samples"),
            ("# TYPE i info\ni_info 2\n# EOF\n", "line 2: info \"i\" value must be 1, got 2"),
        ];
        for (body, want) in cases {
            assert_eq!(om_err(body), want, "{body:?}");
        }
        assert!(
            om("a 1 1\na 2 2\n# EOF\n").is_ok(),
            "increasing timestamps are points of one series"
        );
    }

    /// The histogram rules of OpenMetrics, settled per label set.
    #[test]
    fn openmetrics_checks_each_histogram_as_a_whole() {
        let cases = [
            ("# TYPE a histogram\na_sum{a=\"1\"} 0\na_count{a=\"1\"} 0\na_sum{a=\"2\"} 0\n# EOF\n", "line 4: histogram \"a\" has no +Inf bucket"),
            ("# TYPE a gaugehistogram\na_bucket{le=\"+Inf\"} 0\na_gsum 0\n# EOF\n", "line 4: histogram \"a\" must have both _gcount and _gsum, or neither"),
            ("# TYPE a histogram\na_bucket{le=\"+Inf\"} 0\na_count 1\na_sum 0\n# EOF\n", "line 5: _count of histogram \"a\" is 1, but its +Inf bucket is 0"),
            ("# TYPE a histogram\na_bucket{le=\"-1.0\"} 1\na_bucket{le=\"+Inf\"} 2\na_count 2\na_sum 1\n# EOF\n", "line 6: histogram \"a\" has negative buckets, so it must not have _sum"),
            ("# TYPE a histogram\na_count 1\na_bucket{le=\"+Inf\"} 1\n# EOF\n", "line 3: buckets of histogram \"a\" must come before its count and sum"),
            ("# TYPE a histogram\na_bucket{le=\"+Inf\"} NaN\n# EOF\n", "line 2: bucket of histogram \"a\" has count NaN; counts must be non-negative"),
            ("# TYPE a histogram\na_bucket{le=\"+Inf\"} 1\na_count 1\na_sum -1\n# EOF\n", "line 4: _sum of histogram \"a\" is -1; it must be a non-negative number"),
            ("# TYPE a histogram\na_bucket{a=\"1\",le=\"1\"} 0\na_bucket{a=\"2\",le=\"+Inf\"} 0\na_bucket{a=\"1\",le=\"+Inf\"} 0\n# EOF\n", "line 3: histogram \"a\" has no +Inf bucket"),
            ("# TYPE s summary\ns_count -1\n# EOF\n", "line 2: _count of summary \"s\" is -1; it must be a non-negative number"),
        ];
        for (body, want) in cases {
            assert_eq!(om_err(body), want, "{body:?}");
        }
        let good = "# TYPE a gaugehistogram\na_bucket{le=\"-1\"} 1\na_bucket{le=\"+Inf\"} 2\n\
                    a_gcount 2\na_gsum -3\n# TYPE b histogram\nb_bucket{x=\"1\",le=\"+Inf\"} 1\n\
                    b_count{x=\"1\"} 1\nb_sum{x=\"1\"} 0.5\nb_created{x=\"1\"} 1.5e9\n\
                    b_bucket{x=\"2\",le=\"+Inf\"} 0\n# EOF\n";
        assert!(om(good).is_ok(), "{:?}", om(good));
    }

    #[test]
    fn openmetrics_exemplars_are_checked_strictly() {
        let long = "x".repeat(128);
        let ok = format!(
            "# TYPE a counter\na_total 1 # {{a=\"{}\"}} 1 1\n# EOF\n",
            &long[..127]
        );
        assert!(om(&ok).is_ok(), "{:?}", om(&ok));
        let wide = format!(
            "# TYPE a counter\na_total 1 # {{a=\"\u{2603}{}\"}} 1\n# EOF\n",
            &long[..126]
        );
        assert!(
            om(&wide).is_ok(),
            "128 code points, more bytes: {:?}",
            om(&wide)
        );
        let too_long = format!("# TYPE a counter\na_total 1 # {{a=\"{long}\"}} 1\n# EOF\n");
        assert_eq!(
            om_err(&too_long),
            "line 2: exemplar labels have 129 characters, over the limit of 128"
        );
        for bad in [
            "a_total 1 #\n",
            "a_total 1# {} 1\n",
            "a_total 1 #{} 1\n",
            "a_total 1 # {}1\n",
            "a_total 1 # {} 1 \n",
            "a_total 1 # {} 1 1 \n",
            "a_total 1 # {} 0x1p-3\n",
            "a_total 1 # {} 1 0x1p-3\n",
            "a_total 1 # {a=\"b\"} 0.5 Inf\n",
        ] {
            let body = format!("# TYPE a counter\n{bad}# EOF\n");
            assert!(om(&body).is_err(), "{body:?} was accepted");
        }
    }

    #[test]
    fn openmetrics_keeps_unknown_escapes_like_prometheus() {
        assert_eq!(
            om("# TYPE a counter\n# HELP a he\\n\\\\l\\tp\na_total{foo=\"b\\\\a\\z\"} 2\n# EOF\n")
                .unwrap(),
            "# a counter \"he\\n\\\\l\\\\tp\"\na_total{foo=\"b\\\\a\\\\z\"} 2\n"
        );
        assert_eq!(
            text_err("a{x=\"\\z\"} 1\n"),
            "line 1: invalid escape sequence '\\z'"
        );
    }

    #[test]
    fn content_type_maps_like_prometheus() {
        let f = |ct: &str| format_for_content_type(Some(ct), None);
        assert_eq!(
            f("text/plain; version=0.0.4; charset=utf-8"),
            Ok(Format::Text)
        );
        assert_eq!(f("text/plain"), Ok(Format::Text));
        assert_eq!(
            f("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            Ok(Format::OpenMetrics)
        );
        assert_eq!(
            f("Application/OpenMetrics-Text;version=0.0.1"),
            Ok(Format::OpenMetrics)
        );
        assert_eq!(
            f("application/json"),
            Err("received unsupported Content-Type \"application/json\" and no fallback_scrape_protocol specified".into())
        );
        assert!(format_for_content_type(None, None).is_err());
        assert!(f("garbage").is_err());
        assert_eq!(format_or_text(Some("application/json")), Format::Text);
        assert_eq!(format_or_text(None), Format::Text);
        assert_eq!(
            format_or_text(Some("application/openmetrics-text")),
            Format::OpenMetrics
        );
    }

    #[test]
    fn reused_parser_keeps_results_independent() {
        let mut p = Parser::new();
        let mut set = MetricSet::new();
        p.parse(b"a 1\n", &Options::text(), &mut set).unwrap();
        // A second body with the same series is not a duplicate of the first body's sample.
        let stats = p.parse(b"a 2\n", &Options::text(), &mut set).unwrap();
        assert_eq!(stats.duplicates, 0);
        assert_eq!(set.sample_count(), 2);
    }
}
