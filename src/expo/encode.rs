//! Text 0.0.4 and OpenMetrics 1.0 encoders for a [`MetricSet`].

use super::{HeaderKey, MetricSet, MetricType, SampleRec};
use std::io::Write;
use std::ops::Range;

pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Formats a float the way Go's `strconv.FormatFloat(v, 'g', -1, 64)` does, which is what
/// node_exporter and Prometheus print: shortest round-trip digits, exponent form when the
/// decimal exponent is < -4 or >= 6 (Go's `%g` decides with precision 6 for shortest output).
#[cfg_attr(promlet_speed, optimize(speed))]
pub fn format_float(v: f64, out: &mut Vec<u8>) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
        return;
    }
    if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
        return;
    }
    if v == 0.0 {
        out.extend_from_slice(if v.is_sign_negative() { b"-0" } else { b"0" });
        return;
    }
    // Most node metrics are integers (counters, bytes, ids). Below 2^53 every integer is a
    // double, so the shortest round-trip digits of an integral value are its own decimal
    // digits without trailing zeros: printed directly, without the float formatter (a third
    // of the text encoder's time went there).
    // Integral is tested with a cast round trip, not `fract()`: without SSE4.1 that is a call
    // to a software `trunc`.
    let int = v as i64;
    if v.abs() < 9_007_199_254_740_992.0 && int as f64 == v {
        let mut buf = [0u8; 20];
        let digits = decimal_digits(int.unsigned_abs(), &mut buf);
        if v < 0.0 {
            out.push(b'-');
        }
        let exp = digits.len() as i32 - 1;
        if exp < 6 {
            out.extend_from_slice(digits);
        } else {
            let end = digits.iter().rposition(|&d| d != b'0').map_or(1, |i| i + 1);
            write_exp(&digits[..end], exp, out);
        }
        return;
    }
    // Most of the rest are short decimals: seconds to 1/100, load averages, nanoseconds as
    // seconds (`1.0636e-05`), millisecond timestamps (`1.795382295712e+09`). Their shortest
    // round-trip digits are those of the first scale 10^d at which m = round(|v| 10^d)
    // divides back to v exactly: the division of two exact doubles (m < 2^50, 10^d <= 10^9)
    // rounds as parsing "m e-d" does, so m e-d round-trips, and no fewer decimals did. With
    // m < 2^50, v's spacing is below a quarter of 10^-d, so no other m of d decimals lies in
    // v's rounding interval for the shortest-digit search to prefer; and the product |v| 10^d
    // is within far less than 0.5 of m, so the truncation of +0.5 finds it. Saves the float
    // formatter (~3,000 instructions a value).
    let a = v.abs();
    let mut scale = 1.0;
    for decimals in 1..=9 {
        scale *= 10.0;
        let scaled = a * scale;
        if scaled >= 1_125_899_906_842_624.0 {
            break;
        }
        // +0.5 and truncate: `round()` is a software call without SSE4.1.
        let m = (scaled + 0.5) as u64;
        if m as f64 / scale == a {
            let mut buf = [0u8; 20];
            let digits = decimal_digits(m, &mut buf);
            write_digits(v < 0.0, digits, digits.len() as i32 - 1 - decimals, out);
            return;
        }
    }
    // Rust's `{:e}` gives the shortest round-trip digits as `d.ddde<exp>`.
    let mut buf = [0u8; 40];
    let mut cur = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cur, "{:e}", v.abs());
    let len = cur.position() as usize;
    let s = &buf[..len];
    let e_at = s.iter().position(|&b| b == b'e').unwrap_or(len);
    let exp: i32 = std::str::from_utf8(s.get(e_at + 1..).unwrap_or(b"0"))
        .ok()
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    let mut digits = [0u8; 40];
    let mut nd = 0;
    for &b in &s[..e_at] {
        if b != b'.' {
            digits[nd] = b;
            nd += 1;
        }
    }
    write_digits(v < 0.0, &digits[..nd], exp, out);
}

/// Prints significant `digits` (no trailing zeros) with decimal exponent `exp` (of the first
/// digit) as Go's `%g` does: exponent form when `exp` is < -4 or >= 6, else plain.
fn write_digits(negative: bool, digits: &[u8], exp: i32, out: &mut Vec<u8>) {
    if negative {
        out.push(b'-');
    }
    if !(-4..6).contains(&exp) {
        write_exp(digits, exp, out);
    } else if exp < 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-exp - 1) as usize));
        out.extend_from_slice(digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.extend_from_slice(digits);
            out.extend(std::iter::repeat_n(b'0', int_len - digits.len()));
        } else {
            out.extend_from_slice(&digits[..int_len]);
            out.push(b'.');
            out.extend_from_slice(&digits[int_len..]);
        }
    }
}

/// The decimal digits of `n` (none for 0), at the end of `buf`.
fn decimal_digits(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    while n > 0 {
        // n / 10 as a multiply by 2^67 / 10 (rounded up), exact for every u64: at opt-level
        // "z" the compiler emits a 64-bit `div` here otherwise (~40 cycles a digit, most of
        // format_float's time).
        let q = ((n as u128 * 0xCCCC_CCCC_CCCC_CCCD) >> 67) as u64;
        start -= 1;
        buf[start] = b'0' + (n - q * 10) as u8;
        n = q;
    }
    &buf[start..]
}

/// `d.ddde±XX` from significant digits (no trailing zeros) and the decimal exponent.
fn write_exp(digits: &[u8], exp: i32, out: &mut Vec<u8>) {
    out.push(digits[0]);
    if digits.len() > 1 {
        out.push(b'.');
        out.extend_from_slice(&digits[1..]);
    }
    out.extend_from_slice(if exp < 0 { b"e-" } else { b"e+" });
    let e = exp.unsigned_abs();
    if e >= 100 {
        out.push(b'0' + (e / 100) as u8);
    }
    out.push(b'0' + (e / 10 % 10) as u8);
    out.push(b'0' + (e % 10) as u8);
}

/// Whether `s` holds a byte that [`escape_into`] must escape: `\\`, a newline, and with `quote`
/// a `"`. Eight bytes at a time (HELP texts are ~50 bytes; byte by byte this was 1 % of a
/// scrape).
fn needs_escape(s: &[u8], quote: bool) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    // Non-zero iff some byte of `x` is zero (the classic SWAR test: exact as a yes/no).
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH != 0;
    let has = |x: u64, b: u8| has_zero(x ^ (ONES * b as u64));
    let special = |b: u8| b == b'\\' || b == b'\n' || (quote && b == b'"');
    let mut chunks = s.chunks_exact(8);
    for chunk in &mut chunks {
        let x = u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8]));
        if has(x, b'\\') || has(x, b'\n') || (quote && has(x, b'"')) {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| special(b))
}

#[cfg_attr(promlet_speed, optimize(speed))]
fn escape_into(s: &[u8], quote: bool, out: &mut Vec<u8>) {
    // Almost every label value and HELP text has nothing to escape: copy it whole.
    if !needs_escape(s, quote) {
        out.extend_from_slice(s);
        return;
    }
    for &b in s {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'"' if quote => out.extend_from_slice(b"\\\""),
            _ => out.push(b),
        }
    }
}

/// Lexicographic byte order (that of `str`), 8 bytes at a time and inline: `<[u8]>::cmp` calls
/// `memcmp`, which the static musl build takes from compiler_rt as a byte loop, and family
/// names share long prefixes (`node_memory_Active_anon_bytes`, `node_memory_Active_bytes`).
fn cmp_bytes(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let common = a.len().min(b.len());
    let whole = common / 8 * 8;
    for (x, y) in a[..whole].chunks_exact(8).zip(b[..whole].chunks_exact(8)) {
        // A fixed-size load (`copy_from_slice` of a chunk became a `memcpy` call).
        let word = |w: &[u8]| u64::from_be_bytes(w.try_into().unwrap_or([0; 8]));
        let (x, y) = (word(x), word(y));
        if x != y {
            return x.cmp(&y);
        }
    }
    for (x, y) in a[whole..common].iter().zip(&b[whole..common]) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// The output order of a set: families grouped by name (sorted; the first declaration of a
/// name gives HELP and TYPE) and, within a group, samples in declaration order.
struct Layout {
    /// Per group: its first family and its range in `order`.
    groups: Vec<(usize, Range<usize>)>,
    /// Sample indices in output order.
    order: Vec<u32>,
}

/// The family order of the last set laid out on this thread, and what is needed to tell
/// whether the next set still sorts the same way.
///
/// A scrape declares the same families in the same order as the one before, so the next call
/// checks the order instead of sorting again (the sort's name comparisons were most of
/// `layout`'s time). The check itself compares no bytes for a pair of families whose names
/// are the same literals as last time (same address and length): their order cannot have
/// changed. Only pairs with a name in the arena (names built at run time: vmstat, netstat, ...)
/// are compared, with [`cmp_bytes`] (comparing all ~300 pairs through the static musl build's
/// byte-loop `memcmp` was 1 % of a scrape). Another set (e.g. /federate's) fails the check, is
/// sorted and replaces it.
struct FamilyOrder {
    /// Declaration indices sorted by (name, index).
    order: Vec<u32>,
    /// Per position in `order`: its name differs from the previous position's (a new group).
    starts_group: Vec<bool>,
    /// Per declaration index: [`MetricSet::static_name_key`] of its name.
    name_keys: Vec<(usize, usize)>,
    /// Scratch, per declaration index: the name is the same literal as in the last set.
    unchanged: Vec<bool>,
}

impl FamilyOrder {
    const EMPTY: Self = FamilyOrder {
        order: Vec::new(),
        starts_group: Vec::new(),
        name_keys: Vec::new(),
        unchanged: Vec::new(),
    };

    /// Whether `order` still sorts `set`'s families (same count, strictly increasing (name,
    /// index) pairs: exactly what sorting gives); refreshes the keys and group starts on the way.
    fn still_sorts(&mut self, set: &MetricSet) -> bool {
        let n = set.families.len();
        if self.order.len() != n || self.name_keys.len() != n {
            return false;
        }
        self.unchanged.clear();
        for f in 0..n as u32 {
            let key = set.static_name_key(f);
            let slot = &mut self.name_keys[f as usize];
            self.unchanged.push(key.0 != 0 && key == *slot);
            *slot = key;
        }
        for i in 1..n {
            let (a, b) = (self.order[i - 1], self.order[i]);
            if self.unchanged[a as usize] && self.unchanged[b as usize] {
                continue;
            }
            match cmp_bytes(set.family_name_bytes(a), set.family_name_bytes(b)) {
                std::cmp::Ordering::Less => self.starts_group[i] = true,
                std::cmp::Ordering::Equal if a < b => self.starts_group[i] = false,
                _ => return false,
            }
        }
        true
    }

    /// Sorts `set`'s families from scratch.
    fn sort(&mut self, set: &MetricSet) {
        let n = set.families.len() as u32;
        let name = |f: u32| set.family_name_bytes(f);
        self.order.clear();
        self.order.extend(0..n);
        self.order
            .sort_unstable_by(|&a, &b| cmp_bytes(name(a), name(b)).then(a.cmp(&b)));
        self.starts_group.clear();
        self.starts_group.extend(
            self.order
                .iter()
                .enumerate()
                .map(|(i, &f)| i == 0 || name(self.order[i - 1]) != name(f)),
        );
        self.name_keys.clear();
        self.name_keys
            .extend((0..n).map(|f| set.static_name_key(f)));
    }
}

/// Everything `layout` keeps between calls on one thread: the family order of the last set,
/// the buffers of the last [`Layout`] (allocating and zeroing them per scrape was ~0.3 %) and
/// the rendered family headers.
struct LayoutCache {
    families: FamilyOrder,
    layout: Layout,
    /// Per declaration index: its group.
    group_of: Vec<u32>,
    /// Per group: the next free place in `layout.order` (after a count, then prefix sums).
    next: Vec<usize>,
    headers: Headers,
    prefixes: Prefixes,
}

thread_local! {
    static LAYOUT_CACHE: std::cell::Cell<LayoutCache> =
        const { std::cell::Cell::new(LayoutCache::EMPTY) };
}

/// Lays `set` out and encodes it in text 0.0.4 or OpenMetrics: no allocation once the buffers
/// have grown to the set's size (a counting sort of the samples by group).
fn encode_with_cache(set: &MetricSet, openmetrics: bool, out: &mut Vec<u8>) {
    let mut cache = LAYOUT_CACHE.replace(LayoutCache::EMPTY);
    if !cache.families.still_sorts(set) {
        cache.families.sort(set);
    }
    cache.place_samples(set);
    cache
        .headers
        .refresh(set, &cache.layout.groups, openmetrics);
    cache.prefixes.begin(set.samples.len());
    let LayoutCache {
        layout,
        headers,
        prefixes,
        ..
    } = &mut cache;
    if openmetrics {
        encode_openmetrics_in(set, layout, headers, prefixes, out);
    } else {
        encode_text_in(set, layout, headers, prefixes, out);
    }
    // Kept only while sized for a node's /metrics (~500 samples, ~300 families: ~60 KB with
    // the headers): a large set (a /federate of many series) would otherwise pin its peak for
    // good.
    // The kept prefixes too (~25 KB for a node): long label values must not pin much either.
    const KEEP_MAX: usize = 4096;
    if set.samples.len() <= KEEP_MAX
        && set.families.len() <= KEEP_MAX
        && cache.prefixes.text.len() + cache.prefixes.src.len() <= KEEP_MAX * 64
    {
        LAYOUT_CACHE.set(cache);
    }
}

/// The rendered headers (`# HELP …` and `# TYPE …` lines) of the last set's groups, so a
/// scrape copies each family's header whole instead of assembling it from five pieces and
/// escaping its HELP text again (~300 families, ~37 KB of headers a scrape). Only headers of a
/// literal name and help are kept ([`MetricSet::static_header_key`]): their bytes cannot
/// change behind an equal key. Others are rendered each time.
struct Headers {
    /// The format `text` is in.
    openmetrics: bool,
    /// Per group: the key its header was rendered from; `None`: not kept.
    keys: Vec<Option<HeaderKey>>,
    /// Per group: the end of its header in `text` (it starts at the previous group's end).
    ends: Vec<u32>,
    text: Vec<u8>,
}

impl Headers {
    const EMPTY: Self = Headers {
        openmetrics: false,
        keys: Vec::new(),
        ends: Vec::new(),
        text: Vec::new(),
    };

    /// Renders the headers again unless every group's first family has the key it had.
    fn refresh(&mut self, set: &MetricSet, groups: &[(usize, Range<usize>)], openmetrics: bool) {
        if self.openmetrics == openmetrics
            && self.keys.len() == groups.len()
            && groups
                .iter()
                .zip(&self.keys)
                .all(|((f, _), key)| set.static_header_key(*f as u32) == *key)
        {
            return;
        }
        self.openmetrics = openmetrics;
        self.keys.clear();
        self.ends.clear();
        self.text.clear();
        for (f, _) in groups {
            let key = set.static_header_key(*f as u32);
            if key.is_some() {
                write_header(set, *f, openmetrics, &mut self.text);
            }
            self.keys.push(key);
            self.ends.push(self.text.len() as u32);
        }
    }

    /// Writes group `g`'s header (of family `f`), from `text` when kept.
    fn write(&self, set: &MetricSet, g: usize, f: usize, out: &mut Vec<u8>) {
        if self.keys[g].is_some() {
            let start = if g == 0 { 0 } else { self.ends[g - 1] };
            out.extend_from_slice(&self.text[start as usize..self.ends[g] as usize]);
        } else {
            write_header(set, f, self.openmetrics, out);
        }
    }
}

/// The name OpenMetrics gives family `name` of type `typ` in its metadata lines, and the suffix
/// its samples without one get: counters are named without `_total` in metadata and with it on
/// samples.
fn openmetrics_names(name: &str, typ: MetricType) -> (&str, &'static str) {
    match typ {
        MetricType::Counter => match name.strip_suffix("_total") {
            Some(meta) => (meta, ""),
            None => (name, "_total"),
        },
        _ => (name, ""),
    }
}

/// The metadata lines of family `f` (by declaration index) that precede its group's samples.
fn write_header(set: &MetricSet, f: usize, openmetrics: bool, out: &mut Vec<u8>) {
    let f = set.family_ref(super::FamilyId(f as u32));
    if openmetrics {
        let (meta_name, _) = openmetrics_names(f.name, f.typ);
        let typ = match f.typ {
            MetricType::Untyped => "unknown",
            t => t.as_text(),
        };
        out.extend_from_slice(b"# TYPE ");
        out.extend_from_slice(meta_name.as_bytes());
        out.push(b' ');
        out.extend_from_slice(typ.as_bytes());
        if !f.help.is_empty() {
            out.extend_from_slice(b"\n# HELP ");
            out.extend_from_slice(meta_name.as_bytes());
            out.push(b' ');
            escape_into(f.help.as_bytes(), true, out);
        }
        out.push(b'\n');
        return;
    }
    // No help, no HELP line (as expfmt writes a family without one, e.g. /federate's).
    if !f.help.is_empty() {
        out.extend_from_slice(b"# HELP ");
        out.extend_from_slice(f.name.as_bytes());
        out.push(b' ');
        escape_into(f.help.as_bytes(), false, out);
        out.push(b'\n');
    }
    out.extend_from_slice(b"# TYPE ");
    out.extend_from_slice(f.name.as_bytes());
    out.push(b' ');
    out.extend_from_slice(f.typ.as_text().as_bytes());
    out.push(b'\n');
}

impl LayoutCache {
    const EMPTY: Self = LayoutCache {
        families: FamilyOrder::EMPTY,
        layout: Layout {
            groups: Vec::new(),
            order: Vec::new(),
        },
        group_of: Vec::new(),
        next: Vec::new(),
        headers: Headers::EMPTY,
        prefixes: Prefixes::EMPTY,
    };

    /// Fills `layout` from `families` (sorted and grouped already) and the set's samples.
    #[cfg_attr(promlet_speed, optimize(speed))]
    fn place_samples(&mut self, set: &MetricSet) {
        let FamilyOrder {
            order: fam_order,
            starts_group,
            ..
        } = &self.families;
        let Layout { groups, order } = &mut self.layout;
        self.group_of.clear();
        self.group_of.resize(set.families.len(), 0);
        groups.clear();
        for (&f, &starts) in fam_order.iter().zip(starts_group) {
            if starts {
                groups.push((f as usize, 0..0));
            }
            self.group_of[f as usize] = groups.len() as u32 - 1;
        }
        // Count per group, turn counts into start offsets, then place samples stably.
        let next = &mut self.next;
        next.clear();
        next.resize(groups.len() + 1, 0);
        for s in &set.samples {
            next[self.group_of[s.family as usize] as usize + 1] += 1;
        }
        for i in 1..next.len() {
            next[i] += next[i - 1];
        }
        for (g, (_, range)) in groups.iter_mut().enumerate() {
            *range = next[g]..next[g + 1];
        }
        order.clear();
        order.resize(set.samples.len(), 0);
        for (i, s) in set.samples.iter().enumerate() {
            let g = self.group_of[s.family as usize] as usize;
            order[next[g]] = i as u32;
            next[g] += 1;
        }
    }
}

/// Whether `a` and `b` hold the same bytes: 8 at a time and inline (slice `==` calls the static
/// build's byte-loop `bcmp`).
#[cfg_attr(promlet_speed, optimize(speed))]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |w: &[u8], i: usize| u64::from_ne_bytes(w[i..i + 8].try_into().unwrap_or([0; 8]));
    if n < 8 {
        let mut i = 0;
        while i < n {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        return true;
    }
    let mut i = 0;
    while i + 8 < n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    // The last 8 bytes (overlapping the last whole word): no byte loop for the rest.
    word(a, n - 8) == word(b, n - 8)
}

/// The rendered line prefixes (`name{l="v",...} `) of the last set's samples, by place in the
/// layout, so an unchanged sample's prefix is one copy instead of five pieces per label and an
/// escape check per value (~500 samples a scrape, nearly all with the same name and labels as
/// the scrape before).
///
/// A kept prefix is valid for a sample with the same name (a literal at the same address, or
/// equal bytes), the same OpenMetrics name suffix (a literal) and the same source in the arena:
/// suffix and label pairs as one contiguous run (as `sample_full` writes them) of equal bytes,
/// split at the same places. Samples whose source is not contiguous are rendered each time.
struct Prefixes {
    /// Per layout place.
    entries: Vec<PrefixEntry>,
    /// The prefixes, in `entries`' ranges; a replaced one stays here until the next `begin`
    /// finds too much of `text` unused and starts over.
    text: Vec<u8>,
    /// The arena bytes each prefix was rendered from, in `entries`' ranges.
    src: Vec<u8>,
    /// Per prefix: the ends of its source's pieces (suffix, then each label name and value)
    /// relative to the source's start.
    ends: Vec<u32>,
    /// Bytes of `text` in use by `entries`.
    live: usize,
}

#[derive(Clone, Copy)]
struct PrefixEntry {
    text: u32,
    text_end: u32,
    src: u32,
    src_end: u32,
    ends: u32,
    /// Number of piece ends (1 + 2 per label); 0: nothing kept.
    pieces: u32,
    /// Address and length of the name; `static_name`: a literal (equal address and length mean
    /// equal bytes); else its bytes are compared with the start of the prefix.
    name: (usize, usize),
    static_name: bool,
    name_suffix: (usize, usize),
}

impl PrefixEntry {
    const NONE: Self = PrefixEntry {
        text: 0,
        text_end: 0,
        src: 0,
        src_end: 0,
        ends: 0,
        pieces: 0,
        name: (0, 0),
        static_name: false,
        name_suffix: (0, 0),
    };
}

/// The contiguous arena run of a sample's suffix and labels, and where its pieces end.
fn source_run(rec: &SampleRec, labels: &[(Range<u32>, Range<u32>)]) -> Option<Range<u32>> {
    let mut end = rec.suffix.end;
    for (n, v) in labels {
        if n.start != end || v.start != n.end {
            return None;
        }
        end = v.end;
    }
    Some(rec.suffix.start..end)
}

impl Prefixes {
    const EMPTY: Self = Prefixes {
        entries: Vec::new(),
        text: Vec::new(),
        src: Vec::new(),
        ends: Vec::new(),
        live: 0,
    };

    /// Sizes `entries` for a set of `samples`; drops everything kept when more than half of
    /// `text` is no longer used (prefixes replaced as samples changed), bounding memory.
    fn begin(&mut self, samples: usize) {
        if self.text.len() > 2 * self.live + 4096 {
            self.entries.clear();
            self.text.clear();
            self.src.clear();
            self.ends.clear();
            self.live = 0;
        }
        for e in self.entries.iter().skip(samples) {
            self.live -= (e.text_end - e.text) as usize;
        }
        self.entries.resize(samples, PrefixEntry::NONE);
    }

    /// Whether the kept prefix `e` was rendered from this sample (see the type's docs). `run`:
    /// the sample's [`source_run`].
    #[allow(clippy::too_many_arguments)]
    fn matches(
        &self,
        e: &PrefixEntry,
        set: &MetricSet,
        rec: &SampleRec,
        run: &Range<u32>,
        labels: &[(Range<u32>, Range<u32>)],
        name: &str,
        static_name: bool,
        name_suffix: &str,
    ) -> bool {
        if e.pieces as usize != 1 + 2 * labels.len()
            || e.name_suffix != (name_suffix.as_ptr() as usize, name_suffix.len())
            || e.name.1 != name.len()
        {
            return false;
        }
        let name_same = if static_name && e.static_name {
            e.name.0 == name.as_ptr() as usize
        } else {
            let kept = &self.text[e.text as usize..e.text_end as usize];
            kept.len() >= name.len() && same_bytes(name.as_bytes(), &kept[..name.len()])
        };
        if !name_same {
            return false;
        }
        let ends = &self.ends[e.ends as usize..(e.ends + e.pieces) as usize];
        let base = run.start;
        if ends[0] != rec.suffix.end - base {
            return false;
        }
        for (i, (n, v)) in labels.iter().enumerate() {
            if ends[1 + 2 * i] != n.end - base || ends[2 + 2 * i] != v.end - base {
                return false;
            }
        }
        let source = set
            .text
            .as_bytes()
            .get(run.start as usize..run.end as usize);
        let kept = &self.src[e.src as usize..e.src_end as usize];
        source.is_some_and(|s| same_bytes(s, kept))
    }

    /// Writes the prefix of the sample at layout place `place`: the kept one when it matches,
    /// else rendered (and kept for next time when its source is one run). `static_name`: `name`
    /// is a literal.
    #[allow(clippy::too_many_arguments)]
    #[cfg_attr(promlet_speed, optimize(speed))]
    fn write(
        &mut self,
        place: usize,
        set: &MetricSet,
        rec: &SampleRec,
        name: &str,
        static_name: bool,
        name_suffix: &str,
        out: &mut Vec<u8>,
    ) {
        let labels = &set.labels[rec.labels.start as usize..rec.labels.end as usize];
        let run = source_run(rec, labels);
        let e = self.entries[place];
        if let Some(run) = &run {
            if self.matches(&e, set, rec, run, labels, name, static_name, name_suffix) {
                out.extend_from_slice(&self.text[e.text as usize..e.text_end as usize]);
                return;
            }
        }
        let start = out.len();
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(set.bytes(&rec.suffix));
        out.extend_from_slice(name_suffix.as_bytes());
        let mut sep = b'{';
        for (n, v) in labels {
            out.push(sep);
            sep = b',';
            out.extend_from_slice(set.bytes(n));
            out.extend_from_slice(b"=\"");
            escape_into(set.bytes(v), true, out);
            out.push(b'"');
        }
        out.extend_from_slice(if labels.is_empty() { b" " } else { b"} " });
        self.live -= (e.text_end - e.text) as usize;
        self.entries[place] = PrefixEntry::NONE;
        let Some(run) = run else {
            return;
        };
        let base = run.start;
        let kept = PrefixEntry {
            text: self.text.len() as u32,
            text_end: (self.text.len() + out.len() - start) as u32,
            src: self.src.len() as u32,
            src_end: (self.src.len() + run.len()) as u32,
            ends: self.ends.len() as u32,
            pieces: 1 + 2 * labels.len() as u32,
            name: (name.as_ptr() as usize, name.len()),
            static_name,
            name_suffix: (name_suffix.as_ptr() as usize, name_suffix.len()),
        };
        self.text.extend_from_slice(&out[start..]);
        self.src.extend_from_slice(set.bytes(&run));
        self.ends.push(rec.suffix.end - base);
        for (n, v) in labels {
            self.ends.extend([n.end - base, v.end - base]);
        }
        self.live += out.len() - start;
        self.entries[place] = kept;
    }
}

/// One sample line: its prefix (see [`Prefixes`]) then value and timestamp.
/// `name` is its group's name, taken once per group rather than looked up per sample;
/// `name_suffix` comes after the sample's own suffix (OpenMetrics' `_total`).
#[allow(clippy::too_many_arguments)]
#[cfg_attr(promlet_speed, optimize(speed))]
fn write_sample(
    set: &MetricSet,
    prefixes: &mut Prefixes,
    place: usize,
    rec: &SampleRec,
    name: &str,
    static_name: bool,
    name_suffix: &str,
    openmetrics: bool,
    out: &mut Vec<u8>,
) {
    prefixes.write(place, set, rec, name, static_name, name_suffix, out);
    format_float(rec.value, out);
    if let Some(ts) = rec.timestamp {
        if openmetrics {
            let _ = write!(out, " {}.{:03}", ts.div_euclid(1000), ts.rem_euclid(1000));
        } else {
            let _ = write!(out, " {ts}");
        }
    }
    out.push(b'\n');
}

/// Text format 0.0.4: families sorted by name, each contiguous with HELP and TYPE first.
pub fn encode_text(set: &MetricSet, out: &mut Vec<u8>) {
    encode_with_cache(set, false, out);
}

#[cfg_attr(promlet_speed, optimize(speed))]
fn encode_text_in(
    set: &MetricSet,
    layout: &Layout,
    headers: &Headers,
    prefixes: &mut Prefixes,
    out: &mut Vec<u8>,
) {
    for (g, (fam, samples)) in layout.groups.iter().enumerate() {
        if samples.is_empty() {
            continue;
        }
        headers.write(set, g, *fam, out);
        let name = set.family_ref(super::FamilyId(*fam as u32)).name;
        let static_name = set.static_name_key(*fam as u32).0 != 0;
        for place in samples.clone() {
            let rec = &set.samples[layout.order[place] as usize];
            write_sample(set, prefixes, place, rec, name, static_name, "", false, out);
        }
    }
}

/// OpenMetrics 1.0: `unknown` for untyped, counters named without `_total` in metadata and with
/// it on samples, seconds timestamps, `# EOF` at the end.
pub fn encode_openmetrics(set: &MetricSet, out: &mut Vec<u8>) {
    encode_with_cache(set, true, out);
    out.extend_from_slice(b"# EOF\n");
}

fn encode_openmetrics_in(
    set: &MetricSet,
    layout: &Layout,
    headers: &Headers,
    prefixes: &mut Prefixes,
    out: &mut Vec<u8>,
) {
    for (g, (fam, samples)) in layout.groups.iter().enumerate() {
        if samples.is_empty() {
            continue;
        }
        headers.write(set, g, *fam, out);
        let f = set.family_ref(super::FamilyId(*fam as u32));
        let (_, sample_suffix) = openmetrics_names(f.name, f.typ);
        let static_name = set.static_name_key(*fam as u32).0 != 0;
        for place in samples.clone() {
            let rec = &set.samples[layout.order[place] as usize];
            let suffix = if rec.suffix.is_empty() {
                sample_suffix
            } else {
                ""
            };
            write_sample(
                set,
                prefixes,
                place,
                rec,
                f.name,
                static_name,
                suffix,
                true,
                out,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text or OpenMetrics through the kept layout cache.
    fn encode_as(set: &MetricSet, openmetrics: bool) -> String {
        let mut out = Vec::new();
        if openmetrics {
            encode_openmetrics(set, &mut out);
        } else {
            encode_text(set, &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    /// [`encode_as`] with an empty cache, leaving the kept one (of the previous set) in place.
    fn fresh_encode_as(set: &MetricSet, openmetrics: bool) -> String {
        let kept = LAYOUT_CACHE.replace(LayoutCache::EMPTY);
        let fresh = encode_as(set, openmetrics);
        LAYOUT_CACHE.set(kept);
        fresh
    }

    fn fmt(v: f64) -> String {
        let mut o = Vec::new();
        format_float(v, &mut o);
        String::from_utf8(o).unwrap()
    }

    #[test]
    fn floats_format_like_go() {
        assert_eq!(fmt(0.0), "0");
        assert_eq!(fmt(1.5), "1.5");
        assert_eq!(fmt(123456.0), "123456");
        assert_eq!(fmt(1234567.0), "1.234567e+06");
        assert_eq!(fmt(16430284000.0), "1.6430284e+10");
        assert_eq!(fmt(0.0001), "0.0001");
        assert_eq!(fmt(0.00001), "1e-05");
        assert_eq!(fmt(f64::INFINITY), "+Inf");
        assert_eq!(fmt(f64::NEG_INFINITY), "-Inf");
        assert_eq!(fmt(f64::NAN), "NaN");
        assert_eq!(fmt(-2.5e-7), "-2.5e-07");
    }

    /// The formatter before the integer and single-pass shortcuts: `{:e}` for the digits and
    /// exponent, then `{}` for the plain form. The fast paths must print exactly the same.
    fn reference(v: f64) -> String {
        if v.is_nan() || v.is_infinite() || v == 0.0 {
            return fmt(v);
        }
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').unwrap();
        let exp: i32 = exp.parse().unwrap();
        if !(-4..6).contains(&exp) {
            let sign = if exp < 0 { '-' } else { '+' };
            format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
        } else {
            format!("{v}")
        }
    }

    #[test]
    fn float_shortcuts_print_what_the_two_pass_formatter_printed() {
        for v in [
            1.0,
            -1.0,
            9.0,
            10.0,
            100000.0,
            999999.0,
            1e6,
            1234567.0,
            -1234567.0,
            123e6,
            1e15,
            9007199254740991.0,
            9007199254740992.0,
            1e17,
            1.5e300,
            0.5,
            0.1,
            0.25e-3,
            1e-4,
            1.5e-5,
            123.456,
            -0.001,
            99999.99,
            5e-324,
            1.7976931348623157e308,
        ] {
            assert_eq!(fmt(v), reference(v), "{v:e}");
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bits = f64::from_bits(x);
            let int = (x >> 11) as f64 / [1.0, 1e3, 1e9, 1.0][(x & 3) as usize];
            for v in [bits, int.trunc(), -int.trunc(), int] {
                assert_eq!(fmt(v), reference(v), "{v:e}");
            }
        }
    }

    #[test]
    fn integral_values_print_every_digit_and_sign() {
        assert_eq!(fmt(-0.0), "-0");
        assert_eq!(fmt(7.0), "7");
        assert_eq!(fmt(-42.0), "-42");
        assert_eq!(fmt(999_999.0), "999999");
        assert_eq!(fmt(1_000_000.0), "1e+06");
        assert_eq!(fmt(-1_000_001.0), "-1.000001e+06");
        assert_eq!(fmt(9_007_199_254_740_991.0), "9.007199254740991e+15");
        assert_eq!(fmt(9_007_199_254_740_993.0), "9.007199254740992e+15");
        assert_eq!(fmt(-9_223_372_036_854_775_808.0), "-9.223372036854776e+18");
        assert_eq!(fmt(1.0e19), "1e+19");
        assert_eq!(fmt(0.5), "0.5");
        assert_eq!(fmt(-1.5), "-1.5");
        assert_eq!(fmt(f64::NAN), "NaN");
        // Every digit value in every position, against the float formatter.
        for d in 0..10u64 {
            for p in 0..16 {
                let v = (d * 10u64.pow(p) + 10u64.pow(p) - 1) as f64;
                assert_eq!(fmt(v), reference(v), "{v}");
            }
        }
    }

    #[test]
    fn few_decimal_values_print_like_the_float_formatter() {
        for v in [
            0.1,
            0.2,
            0.1 + 0.2,
            0.3,
            908.38,
            -908.38,
            480.555,
            72435.792,
            81.57900000000001,
            2273.2000000000003,
            0.05,
            0.001,
            0.0005,
            0.00051,
            -0.0001,
            0.00015,
            999999.9,
            999999.99999,
            999999.999999,
            123456.7891,
            0.9999,
            0.99995,
            1.0000001,
            5e-324,
        ] {
            assert_eq!(fmt(v), reference(v), "{v:e}");
        }
        // Every m / 10^d below 1e6 and some neighbours one or two ulps away.
        let mut x = 0x1234_5678_9abc_def1u64;
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let d = (x % 6) as i32;
            let m = (x >> 8) % [10, 1_000, 1_000_000, 10_000_000_000][(x >> 4) as usize % 4];
            let v = m as f64 / 10f64.powi(d);
            let next = f64::from_bits(v.to_bits() + 1 + (x >> 62));
            for v in [v, -v, next] {
                assert_eq!(fmt(v), reference(v), "{v:e}");
            }
        }
    }

    #[test]
    fn short_decimals_of_any_magnitude_print_like_the_float_formatter() {
        // Values from a real /metrics body that the float formatter used to print.
        for v in [
            1.0636e-05,
            4.81e-07,
            0.000102403,
            0.082971091,
            30645.927752,
            1053.528935,
            1.795382295712e+09,
            1.7953822933e+09,
            560.5840000000001,
            84950.45300000001,
            1.8446744073709552e+19,
            1234567.5,
            -9.99999999e-5,
            1e-9,
            1.5e-10,
        ] {
            assert_eq!(fmt(v), reference(v), "{v:e}");
        }
        // m / 10^d for up to 12 decimals and m up to 2^53, and neighbours a few ulps away.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let d = (x % 13) as i32;
            let m = (x >> 8) % [1_000, 1_000_000, 10_000_000_000, 1 << 53][(x >> 4) as usize % 4];
            let v = m as f64 / 10f64.powi(d);
            let near = f64::from_bits(v.to_bits().wrapping_add((x >> 61) + 1));
            let below = f64::from_bits(v.to_bits().wrapping_sub(1));
            for v in [v, -v, near, below] {
                if v.is_finite() {
                    assert_eq!(fmt(v), reference(v), "{v:e}");
                }
            }
        }
    }

    #[test]
    fn text_groups_families_and_escapes() {
        let mut set = MetricSet::new();
        let b = set.family("b_total", "B \\ help\nline", MetricType::Counter);
        let a = set.family("a", "A \"quoted\"", MetricType::Gauge);
        set.sample(b, &[("x", &"q\"\\\n")], 1.0);
        set.sample(a, &[], 2.0);
        let b2 = set.family("b_total", "ignored", MetricType::Counter);
        set.sample(b2, &[("x", &7)], 3.0);
        let mut out = Vec::new();
        encode_text(&set, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# HELP a A \"quoted\"\n# TYPE a gauge\na 2\n\
             # HELP b_total B \\\\ help\\nline\n# TYPE b_total counter\nb_total{x=\"q\\\"\\\\\\n\"} 1\nb_total{x=\"7\"} 3\n"
        );
    }

    #[test]
    fn openmetrics_names_counters_and_ends_with_eof() {
        let mut set = MetricSet::new();
        let c = set.family("c_total", "C.", MetricType::Counter);
        set.sample_full(c, "", &[], 1.0, Some(1500));
        let u = set.family("u", "", MetricType::Untyped);
        set.sample(u, &[], 1.0);
        let mut out = Vec::new();
        encode_openmetrics(&set, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# TYPE c counter\n# HELP c C.\nc_total 1 1.500\n# TYPE u unknown\nu 1\n# EOF\n"
        );
    }

    #[test]
    fn text_omits_help_line_when_help_is_empty() {
        let mut set = MetricSet::new();
        let u = set.family("u", "", MetricType::Untyped);
        set.sample_full(u, "", &[], 2.0, Some(1500));
        let mut out = Vec::new();
        encode_text(&set, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# TYPE u untyped\nu 2 1500\n"
        );
    }

    #[test]
    fn clear_keeps_capacity_and_empties() {
        let mut set = MetricSet::new();
        set.single("x", "h", MetricType::Gauge, 1.0);
        set.clear();
        assert!(set.is_empty());
    }

    #[test]
    fn family_order_of_a_previous_set_is_reused_only_while_it_still_sorts() {
        let build = |names: &[&str]| {
            let mut set = MetricSet::new();
            for n in names {
                set.single(n, "", MetricType::Gauge, 1.0);
            }
            let mut out = Vec::new();
            encode_text(&set, &mut out);
            String::from_utf8(out).unwrap()
        };
        let names = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| l.split(' ').next().unwrap().to_string())
                .collect()
        };
        // Same family count each time; the names and their declaration order change.
        assert_eq!(names(&build(&["c", "a", "b"])), ["a", "b", "c"]);
        assert_eq!(names(&build(&["c", "a", "b"])), ["a", "b", "c"]);
        assert_eq!(names(&build(&["a", "c", "b"])), ["a", "b", "c"]);
        assert_eq!(names(&build(&["z", "a", "b"])), ["a", "b", "z"]);
        // Two declarations of one name stay one group, HELP/TYPE once.
        let text = build(&["b", "a", "b"]);
        assert_eq!(names(&text), ["a", "b", "b"]);
        assert_eq!(text.matches("# TYPE b gauge").count(), 1);
    }

    #[test]
    fn static_families_encode_like_copied_ones_through_merge_and_rollback() {
        let fill = |set: &mut MetricSet, literal: bool| {
            let (name, help) = ("node_a_total", "Help with \\ and \n.");
            let f = if literal {
                set.family_static(name, help, MetricType::Counter)
            } else {
                set.family(name, help, MetricType::Counter)
            };
            set.sample(f, &[("cpu", &3)], 1.5);
            let mark = set.mark();
            set.family("node_dropped", "gone", MetricType::Gauge);
            set.rollback(mark);
            if literal {
                set.single_static("node_b", "B.", MetricType::Gauge, 2.0);
            } else {
                set.single("node_b", "B.", MetricType::Gauge, 2.0);
            }
        };
        let encode = |literal: bool| {
            let mut part = MetricSet::new();
            fill(&mut part, literal);
            let mut set = MetricSet::new();
            set.single("node_0", "First.", MetricType::Untyped, 0.0);
            set.extend_from(&part);
            let (mut text, mut om) = (Vec::new(), Vec::new());
            encode_text(&set, &mut text);
            encode_openmetrics(&set, &mut om);
            (
                String::from_utf8(text).unwrap(),
                String::from_utf8(om).unwrap(),
            )
        };
        let (copied, literal) = (encode(false), encode(true));
        assert_eq!(copied, literal);
        assert!(copied
            .0
            .contains("# HELP node_a_total Help with \\\\ and \\n.\n"));
        assert!(copied
            .0
            .contains("node_a_total{cpu=\"3\"} 1.5\n# HELP node_b B.\n"));
        assert!(!copied.0.contains("node_dropped"));
    }

    /// What `encode_text` must print for `decls` (name, help, value per family, one unlabelled
    /// sample each), built without `layout`: names sorted, declaration order within a name,
    /// HELP and TYPE of the first declaration.
    fn expected_text(decls: &[(&str, &str, f64)]) -> String {
        let mut by_name: std::collections::BTreeMap<&str, Vec<(&str, f64)>> = Default::default();
        for &(n, h, v) in decls {
            by_name.entry(n).or_default().push((h, v));
        }
        let mut out = String::new();
        for (n, fams) in by_name {
            if !fams[0].0.is_empty() {
                out += &format!("# HELP {n} {}\n", fams[0].0);
            }
            out += &format!("# TYPE {n} gauge\n");
            for (_, v) in fams {
                out += &format!("{n} {v}\n");
            }
        }
        out
    }

    #[test]
    fn layout_reuse_follows_changing_static_and_arena_names_between_scrapes() {
        // Literals (shared by address between declarations) and arena copies of the same and
        // other names; one set reused across scrapes (as the agent does), so arena names of a
        // new scrape sit at the addresses of the last one's.
        const LITERALS: [&str; 6] = ["node_a", "node_b", "node_c", "node_b", "x", ""];
        const ARENA: [&str; 5] = ["node_a", "node_bb", "node_b", "a", "zz"];
        let mut set = MetricSet::new();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |m: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % m
        };
        let mut decls: Vec<(bool, usize)> = (0..8).map(|i| (i % 2 == 0, i % 5)).collect();
        for scrape in 0..400 {
            // Mostly the same families as last time (the reuse path), sometimes one changes,
            // swaps places, is added or dropped.
            match next(6) {
                0 => {
                    let i = next(decls.len() as u64) as usize;
                    decls[i] = (next(2) == 0, next(6) as usize);
                }
                1 if decls.len() > 1 => {
                    let (i, j) = (next(decls.len() as u64), next(decls.len() as u64));
                    decls.swap(i as usize, j as usize);
                }
                2 if decls.len() < 12 => decls.push((next(2) == 0, next(6) as usize)),
                3 if decls.len() > 1 => {
                    decls.pop();
                }
                _ => {}
            }
            set.clear();
            let mut want = Vec::new();
            for (k, &(literal, i)) in decls.iter().enumerate() {
                let v = (scrape * 100 + k) as f64;
                let name = if literal {
                    let f = set.family_static(LITERALS[i], "H", MetricType::Gauge);
                    set.sample(f, &[], v);
                    LITERALS[i]
                } else {
                    let name = ARENA[i % ARENA.len()];
                    set.single(name, "", MetricType::Gauge, v);
                    name
                };
                want.push((name, if literal { "H" } else { "" }, v));
            }
            let mut out = Vec::new();
            encode_text(&set, &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                expected_text(&want),
                "scrape {scrape}: {decls:?}"
            );
        }
    }

    #[test]
    fn one_literal_declared_by_several_families_stays_one_group_when_reused() {
        let encode = |names: &[&'static str]| {
            let mut set = MetricSet::new();
            for (i, n) in names.iter().enumerate() {
                let f = set.family_static(n, "H", MetricType::Gauge);
                set.sample(f, &[], i as f64);
            }
            let mut out = Vec::new();
            encode_text(&set, &mut out);
            String::from_utf8(out).unwrap()
        };
        let first = encode(&["m", "a", "m"]);
        assert_eq!(
            first,
            "# HELP a H\n# TYPE a gauge\na 1\n# HELP m H\n# TYPE m gauge\nm 0\nm 2\n"
        );
        // Same literals at the same places: the order is reused, still one group per name.
        assert_eq!(encode(&["m", "a", "m"]), first);
        // Same count, the literal moved: not reusable.
        assert_eq!(
            encode(&["m", "m", "a"]),
            "# HELP a H\n# TYPE a gauge\na 2\n# HELP m H\n# TYPE m gauge\nm 0\nm 1\n"
        );
    }

    #[test]
    fn kept_headers_print_what_a_fresh_encode_prints_as_help_and_type_change() {
        let build = |help: &'static str, typ: MetricType| {
            let mut set = MetricSet::new();
            let a = set.family_static("node_a_total", help, typ);
            set.sample(a, &[("cpu", &0)], 1.0);
            set.single_static("node_b", "B \\ with \"quotes\"\n.", MetricType::Gauge, 2.0);
            set.single("node_c", "Arena \\ help.", MetricType::Counter, 3.0);
            let a2 = set.family_static("node_a_total", "Second declaration.", MetricType::Gauge);
            set.sample(a2, &[("cpu", &1)], 4.0);
            set
        };
        // One format at a time: a kept header is in the format of the last encode.
        let kept_count = || {
            let cache = LAYOUT_CACHE.replace(LayoutCache::EMPTY);
            let kept = cache.headers.keys.iter().filter(|k| k.is_some()).count();
            LAYOUT_CACHE.set(cache);
            kept
        };
        let changes = [
            ("A.", MetricType::Counter),
            ("A.", MetricType::Counter),
            ("Other \\ \"A\"\n.", MetricType::Counter),
            ("Other \\ \"A\"\n.", MetricType::Gauge),
            ("", MetricType::Gauge),
            ("A.", MetricType::Counter),
        ];
        for openmetrics in [false, true, false] {
            for (help, typ) in changes {
                let set = build(help, typ);
                let fresh = fresh_encode_as(&set, openmetrics);
                // The first encode starts from the previous set's headers (same layout, maybe
                // another HELP or TYPE), the second copies this set's.
                assert_eq!(encode_as(&set, openmetrics), fresh, "{help:?} {typ:?}");
                assert_eq!(kept_count(), 2, "node_a_total and node_b kept, node_c not");
                assert_eq!(encode_as(&set, openmetrics), fresh, "{help:?} {typ:?}");
                if openmetrics {
                    assert!(fresh.contains(
                        "# TYPE node_b gauge\n# HELP node_b B \\\\ with \\\"quotes\\\"\\n.\n"
                    ));
                    continue;
                }
                let help_line = if help.is_empty() {
                    String::new()
                } else {
                    let escaped = help.replace('\\', "\\\\").replace('\n', "\\n");
                    format!("# HELP node_a_total {escaped}\n")
                };
                let want = format!(
                    "{help_line}# TYPE node_a_total {}\n\
                     node_a_total{{cpu=\"0\"}} 1\nnode_a_total{{cpu=\"1\"}} 4\n\
                     # HELP node_b B \\\\ with \"quotes\"\\n.\n# TYPE node_b gauge\nnode_b 2\n\
                     # HELP node_c Arena \\\\ help.\n# TYPE node_c counter\nnode_c 3\n",
                    typ.as_text()
                );
                assert_eq!(fresh, want);
            }
        }
    }

    #[test]
    fn kept_sample_prefixes_print_what_a_fresh_encode_prints_as_samples_change() {
        // Scrape `k` of a changing set: label values, label sets, sample counts, suffixes,
        // literal and arena names, escaped values, and a parser-built sample (suffix after its
        // labels in the arena: not one run) vary with `k`.
        let build = |k: usize| {
            let mut set = MetricSet::new();
            let a = set.family_static("node_a_total", "A.", MetricType::Counter);
            for cpu in 0..(1 + k % 3) {
                set.sample(a, &[("cpu", &cpu), ("mode", &["idle", "user"][k % 2])], 1.0);
            }
            let dev = ["sda", "sd\"a", "sdb\n", "sdaa", "sd"][k % 5];
            let b = set.family_static("node_b", "B.", MetricType::Gauge);
            set.sample(b, &[("device", &dev)], 2.5);
            if k % 4 != 1 {
                set.sample(b, &[("device", &"x"), ("extra", &k)], 3.0);
            }
            let name = ["node_c", "node_d", "node_cc"][k % 3];
            let c = set.family(name, "Arena.", MetricType::Histogram);
            set.sample_suffixed(c, ["_bucket", "_count"][k % 2], &[("le", &"+Inf")], 4.0);
            set.sample_suffixed(c, "_sum", &[], 5.0);
            if k % 2 == 0 {
                set.single_static("node_e", "E.", MetricType::Gauge, 6.0);
            }
            // The same bytes in the arena, split at other places.
            let f = set.family_static("node_f", "F.", MetricType::Gauge);
            let ([n1, v1], [n2, v2]) =
                [(["x", "ab"], ["yz", "c"]), (["x", "aby"], ["z", "c"])][k % 2];
            set.sample(f, &[(n1, &v1), (n2, &v2)], 9.0);
            let p = set.family("node_p", "Parsed.", MetricType::Summary);
            let first = set.label_mark();
            set.push_label("quantile", ["0.5", "0.9"][k % 2]);
            set.push_sample(p, "", first, 7.0, Some(1000 + k as i64));
            set.sample(
                a,
                &[("cpu", &"last"), ("mode", &k.to_string().repeat(k % 4))],
                8.0,
            );
            set
        };
        let kept_prefixes = || {
            let cache = LAYOUT_CACHE.replace(LayoutCache::EMPTY);
            let kept = cache
                .prefixes
                .entries
                .iter()
                .filter(|e| e.pieces != 0)
                .count();
            LAYOUT_CACHE.set(cache);
            kept
        };
        for openmetrics in [false, true, false] {
            for k in 0..40 {
                let set = build(k);
                let fresh = fresh_encode_as(&set, openmetrics);
                assert_eq!(
                    encode_as(&set, openmetrics),
                    fresh,
                    "k={k} om={openmetrics}"
                );
                assert_eq!(
                    encode_as(&set, openmetrics),
                    fresh,
                    "k={k} om={openmetrics}"
                );
                // Every sample but the parser-built one is kept.
                assert_eq!(kept_prefixes(), set.sample_count() - 1, "k={k}");
            }
        }
        let text = fresh_encode_as(&build(1), false);
        assert!(text.contains("node_b{device=\"sd\\\"a\"} 2.5\n"), "{text}");
        assert!(text.contains("node_p{quantile=\"0.9\"} 7 1001\n"), "{text}");
    }

    #[test]
    fn escape_check_finds_each_special_byte_at_every_offset() {
        let plain = "abcdefghijklmnopqrstuvwxyz0123456789 ABCDEFGHIJ";
        for len in 0..plain.len() {
            for at in 0..len {
                for (special, quoted_only) in [('\\', false), ('\n', false), ('"', true)] {
                    let mut s: Vec<u8> = plain.as_bytes()[..len].to_vec();
                    s[at] = special as u8;
                    assert!(needs_escape(&s, true), "{special:?} at {at} of {len}");
                    assert_eq!(needs_escape(&s, false), !quoted_only, "{special:?} at {at}");
                }
            }
            assert!(!needs_escape(&plain.as_bytes()[..len], true));
        }
        // Bytes next to the special ones (and high bytes, UTF-8) are no false alarm.
        assert!(!needs_escape(
            "[]!#\x0b\x0c\x1b]\u{e9}\u{5c5c}\u{2022}é".as_bytes(),
            true
        ));
        let mut out = Vec::new();
        escape_into(b"0123456789\\x\ny\"z", true, &mut out);
        assert_eq!(out, b"0123456789\\\\x\\ny\\\"z");
    }

    #[test]
    fn byte_order_is_str_order() {
        let words = [
            "",
            "a",
            "ab",
            "abcdefgh",
            "abcdefgh0",
            "abcdefgi",
            "abcdefg",
            "node_memory_Active_bytes",
            "node_memory_Active_anon_bytes",
            "node_memory_Active_anon_bytez",
            "\u{e9}",
            "z",
            "\x7f",
            "node_memory_Active_bytes_",
            "abcdefghabcdefgh",
            "abcdefghabcdefgg",
        ];
        for a in words {
            for b in words {
                assert_eq!(
                    cmp_bytes(a.as_bytes(), b.as_bytes()),
                    a.cmp(b),
                    "{a:?} {b:?}"
                );
            }
        }
    }

    #[test]
    fn a_set_of_long_label_values_is_encoded_but_not_kept() {
        let long = "v".repeat(100_000);
        let mut set = MetricSet::new();
        let f = set.family_static("node_long", "Long.", MetricType::Gauge);
        for i in 0..3 {
            set.sample(f, &[("i", &i), ("value", &long)], 1.0);
        }
        let mut out = Vec::new();
        encode_text(&set, &mut out);
        assert_eq!(
            out.len(),
            "# HELP node_long Long.\n# TYPE node_long gauge\n".len() + 3 * (long.len() + 28)
        );
        LAYOUT_CACHE.with(|c| {
            let cache = c.replace(LayoutCache::EMPTY);
            assert_eq!(cache.prefixes.text.capacity(), 0);
            assert_eq!(cache.prefixes.entries.capacity(), 0);
        });
    }

    #[test]
    fn a_large_set_is_laid_out_right_and_not_kept() {
        let mut set = MetricSet::new();
        for i in (0..5000).rev() {
            let f = set.family(&format!("m{i:05}"), "", MetricType::Gauge);
            set.sample(f, &[], i as f64);
        }
        let mut out = Vec::new();
        encode_text(&set, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("# TYPE m00000 gauge\nm00000 0\n# TYPE m00001 gauge\n"));
        assert!(text.ends_with("# TYPE m04999 gauge\nm04999 4999\n"));
        LAYOUT_CACHE.with(|c| {
            let cache = c.replace(LayoutCache::EMPTY);
            assert_eq!(cache.families.order.capacity(), 0);
            assert_eq!(cache.layout.order.capacity(), 0);
        });
    }
}
