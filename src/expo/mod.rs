//! Metric families in memory and their text expositions.
//!
//! Owns [`MetricSet`], the reusable buffer that collectors (and later scrape and push) fill
//! with families and samples, and the encoders for text format 0.0.4 and OpenMetrics 1.0.
//! Must not touch: files, sockets, the TSDB. Encoding is a pure function of a `MetricSet`.
//!
//! `MetricSet` keeps every name, help text and label in one string arena, so after the first
//! cycle a collection allocates nothing: `clear()` keeps the capacity.

mod encode;

pub use encode::{
    encode_openmetrics, encode_text, format_float, CONTENT_TYPE_OPENMETRICS, CONTENT_TYPE_TEXT,
};

use std::ops::Range;

/// A label value a [`MetricSet`] copies into its arena. Text is appended as is and integers
/// by a digit loop: going through `Display` cost ~170 instructions per label in `core::fmt`
/// (Formatter setup and `pad`), ~2 % of a scrape's user time for node metrics.
pub trait LabelValue {
    fn append_to(&self, out: &mut String);
}

impl LabelValue for str {
    fn append_to(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl LabelValue for String {
    fn append_to(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl LabelValue for std::borrow::Cow<'_, str> {
    fn append_to(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl<T: LabelValue + ?Sized> LabelValue for &T {
    fn append_to(&self, out: &mut String) {
        (**self).append_to(out);
    }
}

/// Appends the decimal digits of `n`.
fn append_decimal(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &buf[start..] {
        out.push(d as char);
    }
}

macro_rules! unsigned_label_values {
    ($($t:ty),*) => {$(
        impl LabelValue for $t {
            fn append_to(&self, out: &mut String) {
                append_decimal(out, *self as u64);
            }
        }
    )*};
}
unsigned_label_values!(u8, u16, u32, u64, usize);

macro_rules! signed_label_values {
    ($($t:ty),*) => {$(
        impl LabelValue for $t {
            fn append_to(&self, out: &mut String) {
                if *self < 0 {
                    out.push('-');
                }
                append_decimal(out, self.unsigned_abs() as u64);
            }
        }
    )*};
}
signed_label_values!(i32, i64);

/// The metric types of the exposition formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricType {
    Counter,
    Gauge,
    Summary,
    Histogram,
    Untyped,
}

impl MetricType {
    /// The keyword used by text format 0.0.4.
    pub fn as_text(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Summary => "summary",
            MetricType::Histogram => "histogram",
            MetricType::Untyped => "untyped",
        }
    }
}

/// Index of a family inside one [`MetricSet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FamilyId(u32);

impl FamilyId {
    /// The position of the family in its set (0-based, declaration order).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A family's name or help: in the arena, or a `&'static str` kept as a pointer (almost every
/// collector's are literals; copying them into the arena each scrape was 2 % of promlet's CPU).
#[derive(Clone, Debug)]
enum Text {
    Arena(Range<u32>),
    Static(&'static str),
}

#[derive(Clone, Debug)]
struct Family {
    name: Text,
    help: Text,
    typ: MetricType,
}

/// See [`MetricSet::static_header_key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HeaderKey {
    name: (usize, usize),
    help: (usize, usize),
    typ: MetricType,
}

#[derive(Clone, Debug)]
struct SampleRec {
    family: u32,
    /// Suffix appended to the family name (`_sum`, `_count`, `_bucket`), or empty.
    suffix: Range<u32>,
    /// Label pairs, as a range into `MetricSet::labels`.
    labels: Range<u32>,
    value: f64,
    /// Explicit timestamp in ms, if the source carried one.
    timestamp: Option<i64>,
}

/// A borrowed view of one sample.
#[derive(Clone, Copy, Debug)]
pub struct SampleRef<'a> {
    set: &'a MetricSet,
    rec: &'a SampleRec,
}

impl<'a> SampleRef<'a> {
    /// The family this sample belongs to.
    pub fn family_id(&self) -> FamilyId {
        FamilyId(self.rec.family)
    }
    pub fn family_name(&self) -> &'a str {
        self.set
            .text_of(&self.set.families[self.rec.family as usize].name)
    }
    /// The suffix after the family name (`""`, `"_sum"`, `"_count"`, `"_bucket"`, ...).
    pub fn suffix(&self) -> &'a str {
        self.set.str(&self.rec.suffix)
    }
    pub fn typ(&self) -> MetricType {
        self.set.families[self.rec.family as usize].typ
    }
    pub fn value(&self) -> f64 {
        self.rec.value
    }
    pub fn timestamp(&self) -> Option<i64> {
        self.rec.timestamp
    }
    /// Label pairs in the order they were given.
    pub fn labels(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let set = self.set;
        set.labels[self.rec.labels.start as usize..self.rec.labels.end as usize]
            .iter()
            .map(move |(n, v)| (set.str(n), set.str(v)))
    }
}

/// A borrowed view of one family.
#[derive(Clone, Copy, Debug)]
pub struct FamilyRef<'a> {
    pub name: &'a str,
    pub help: &'a str,
    pub typ: MetricType,
}

/// A position in a [`MetricSet`] that [`MetricSet::rollback`] returns to, so a parser can
/// drop everything a malformed input added without touching what was there before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    text: u32,
    families: u32,
    samples: u32,
    labels: u32,
}

/// Families and samples of one collection, in one arena. See the module docs.
#[derive(Clone, Debug, Default)]
pub struct MetricSet {
    text: String,
    families: Vec<Family>,
    samples: Vec<SampleRec>,
    labels: Vec<(Range<u32>, Range<u32>)>,
}

impl MetricSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Empties the set but keeps its capacity, so the next cycle does not allocate.
    pub fn clear(&mut self) {
        self.text.clear();
        self.families.clear();
        self.samples.clear();
        self.labels.clear();
    }

    fn push_str(&mut self, s: &str) -> Range<u32> {
        let start = self.text.len() as u32;
        // Most samples have no suffix: no call to copy nothing.
        if s.is_empty() {
            return start..start;
        }
        self.text.push_str(s);
        start..self.text.len() as u32
    }

    fn push_label_value(&mut self, v: &dyn LabelValue) -> Range<u32> {
        let start = self.text.len() as u32;
        v.append_to(&mut self.text);
        start..self.text.len() as u32
    }

    fn str(&self, r: &Range<u32>) -> &str {
        // Safe slicing (char-boundary checks at both ends) on purpose: skipping them would rest
        // on every kept range lying inside the kept text, which a `Mark` from another set or
        // from before a `clear` could break in safe code.
        &self.text[r.start as usize..r.end as usize]
    }

    /// The bytes of a kept range: for the encoders, which copy bytes and need no `str` (slicing
    /// a `str` checks both ends for char boundaries, out of line; that was ~1 % of a scrape).
    fn bytes(&self, r: &Range<u32>) -> &[u8] {
        &self.text.as_bytes()[r.start as usize..r.end as usize]
    }

    /// The bytes of the name of the family at declaration index `f`.
    fn family_name_bytes(&self, f: u32) -> &[u8] {
        match &self.families[f as usize].name {
            Text::Arena(r) => self.bytes(r),
            Text::Static(s) => s.as_bytes(),
        }
    }

    fn text_of<'s>(&'s self, t: &Text) -> &'s str {
        match t {
            Text::Arena(r) => self.str(r),
            Text::Static(s) => s,
        }
    }

    /// The address and length of the name of family `f` when it is a `&'static str`, whose
    /// bytes can never change (so an equal key means an equal name, without comparing bytes);
    /// `(0, 0)` for a name in the arena, whose bytes a later set may have overwritten.
    fn static_name_key(&self, f: u32) -> (usize, usize) {
        match self.families[f as usize].name {
            Text::Static(s) => (s.as_ptr() as usize, s.len()),
            Text::Arena(_) => (0, 0),
        }
    }

    /// What the header (HELP and TYPE lines) of family `f` is rendered from, when name and help
    /// are both `&'static str` (addresses and lengths: equal keys mean equal bytes, as with
    /// [`MetricSet::static_name_key`]); `None` when either is in the arena.
    fn static_header_key(&self, f: u32) -> Option<HeaderKey> {
        match &self.families[f as usize] {
            Family {
                name: Text::Static(name),
                help: Text::Static(help),
                typ,
            } => Some(HeaderKey {
                name: (name.as_ptr() as usize, name.len()),
                help: (help.as_ptr() as usize, help.len()),
                typ: *typ,
            }),
            _ => None,
        }
    }

    /// Declares a family. Declaring the same name again (e.g. once per collector) is allowed:
    /// the encoders merge families of equal name, keeping the first HELP and TYPE.
    pub fn family(&mut self, name: &str, help: &str, typ: MetricType) -> FamilyId {
        let name = Text::Arena(self.push_str(name));
        let help = Text::Arena(self.push_str(help));
        self.families.push(Family { name, help, typ });
        FamilyId(self.families.len() as u32 - 1)
    }

    /// [`MetricSet::family`] for literal name and help: kept as pointers, nothing copied.
    #[cfg_attr(promlet_speed, optimize(speed))]
    pub fn family_static(
        &mut self,
        name: &'static str,
        help: &'static str,
        typ: MetricType,
    ) -> FamilyId {
        self.families.push(Family {
            name: Text::Static(name),
            help: Text::Static(help),
            typ,
        });
        FamilyId(self.families.len() as u32 - 1)
    }

    /// Adds a sample to `family`. Label values are written straight into the arena, so numbers
    /// (`&cpu_index`) need no temporary `String`.
    pub fn sample(&mut self, family: FamilyId, labels: &[(&str, &dyn LabelValue)], value: f64) {
        self.sample_full(family, "", labels, value, None);
    }

    /// Adds a sample whose name is the family name plus `suffix` (`_sum`, `_count`, `_bucket`).
    pub fn sample_suffixed(
        &mut self,
        family: FamilyId,
        suffix: &str,
        labels: &[(&str, &dyn LabelValue)],
        value: f64,
    ) {
        self.sample_full(family, suffix, labels, value, None);
    }

    /// The general form: suffix and optional explicit timestamp (ms).
    #[cfg_attr(promlet_speed, optimize(speed))]
    pub fn sample_full(
        &mut self,
        family: FamilyId,
        suffix: &str,
        labels: &[(&str, &dyn LabelValue)],
        value: f64,
        timestamp: Option<i64>,
    ) {
        let suffix = self.push_str(suffix);
        let first = self.labels.len() as u32;
        for (n, v) in labels {
            let n = self.push_str(n);
            let v = self.push_label_value(*v);
            self.labels.push((n, v));
        }
        let labels = first..self.labels.len() as u32;
        self.samples.push(SampleRec {
            family: family.0,
            suffix,
            labels,
            value,
            timestamp,
        });
    }

    /// Convenience: a family with exactly one unlabelled sample.
    pub fn single(&mut self, name: &str, help: &str, typ: MetricType, value: f64) {
        let f = self.family(name, help, typ);
        self.sample(f, &[], value);
    }

    /// [`MetricSet::single`] for literal name and help (nothing copied).
    #[cfg_attr(promlet_speed, optimize(speed))]
    pub fn single_static(
        &mut self,
        name: &'static str,
        help: &'static str,
        typ: MetricType,
        value: f64,
    ) {
        let f = self.family_static(name, help, typ);
        self.sample(f, &[], value);
    }

    pub fn family_ref(&self, id: FamilyId) -> FamilyRef<'_> {
        let f = &self.families[id.0 as usize];
        FamilyRef {
            name: self.text_of(&f.name),
            help: self.text_of(&f.help),
            typ: f.typ,
        }
    }

    pub fn families(&self) -> impl Iterator<Item = FamilyRef<'_>> {
        (0..self.families.len() as u32).map(|i| self.family_ref(FamilyId(i)))
    }

    /// The sample at `index` (0-based, in insertion order).
    ///
    /// # Panics
    /// When `index >= sample_count()`.
    pub fn sample_ref(&self, index: usize) -> SampleRef<'_> {
        SampleRef {
            set: self,
            rec: &self.samples[index],
        }
    }

    /// The ids of all families, in declaration order.
    pub fn family_ids(&self) -> impl Iterator<Item = FamilyId> {
        (0..self.families.len() as u32).map(FamilyId)
    }

    pub fn samples(&self) -> impl Iterator<Item = SampleRef<'_>> {
        self.samples.iter().map(|rec| SampleRef { set: self, rec })
    }

    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty() && self.families.is_empty()
    }

    /// The current end of the set, for [`MetricSet::rollback`].
    pub fn mark(&self) -> Mark {
        Mark {
            text: self.text.len() as u32,
            families: self.families.len() as u32,
            samples: self.samples.len() as u32,
            labels: self.labels.len() as u32,
        }
    }

    /// Drops everything added after `mark` (capacity is kept).
    pub fn rollback(&mut self, mark: Mark) {
        self.text.truncate(mark.text as usize);
        self.families.truncate(mark.families as usize);
        self.samples.truncate(mark.samples as usize);
        self.labels.truncate(mark.labels as usize);
    }

    /// Replaces the HELP of a family (parsers learn it after the family is created).
    pub fn set_help(&mut self, id: FamilyId, help: &str) {
        let help = Text::Arena(self.push_str(help));
        self.families[id.0 as usize].help = help;
    }

    /// Replaces the TYPE of a family.
    pub fn set_type(&mut self, id: FamilyId, typ: MetricType) {
        self.families[id.0 as usize].typ = typ;
    }

    /// Parser-level sample building, step 1: the index the next pushed label will get.
    /// Push labels with [`MetricSet::push_label`], then record the sample with
    /// [`MetricSet::push_sample`]. Copies bytes into the arena; allocates nothing once warm.
    pub fn label_mark(&self) -> usize {
        self.labels.len()
    }

    /// Step 2: appends one label pair (already unescaped) to the pending sample.
    pub fn push_label(&mut self, name: &str, value: &str) {
        let n = self.push_str(name);
        let v = self.push_str(value);
        self.labels.push((n, v));
    }

    /// The labels pushed since `first` (a [`MetricSet::label_mark`]), in order.
    pub fn pending_labels(&self, first: usize) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.labels[first..]
            .iter()
            .map(move |(n, v)| (self.str(n), self.str(v)))
    }

    /// Step 3: records a sample whose labels are those pushed since `first_label`.
    pub fn push_sample(
        &mut self,
        family: FamilyId,
        suffix: &str,
        first_label: usize,
        value: f64,
        timestamp: Option<i64>,
    ) {
        let suffix = self.push_str(suffix);
        self.samples.push(SampleRec {
            family: family.0,
            suffix,
            labels: first_label as u32..self.labels.len() as u32,
            value,
            timestamp,
        });
    }

    /// Appends everything of `other` (used to merge per-collector sets).
    pub fn extend_from(&mut self, other: &MetricSet) {
        let base_fam = self.families.len() as u32;
        let off = self.text.len() as u32;
        let base_lab = self.labels.len() as u32;
        self.text.push_str(&other.text);
        let shift = |r: &Range<u32>| r.start + off..r.end + off;
        let shift_text = |t: &Text| match t {
            Text::Arena(r) => Text::Arena(shift(r)),
            Text::Static(s) => Text::Static(s),
        };
        self.families.extend(other.families.iter().map(|f| Family {
            name: shift_text(&f.name),
            help: shift_text(&f.help),
            typ: f.typ,
        }));
        self.labels
            .extend(other.labels.iter().map(|(n, v)| (shift(n), shift(v))));
        self.samples.extend(other.samples.iter().map(|s| SampleRec {
            family: s.family + base_fam,
            suffix: shift(&s.suffix),
            labels: s.labels.start + base_lab..s.labels.end + base_lab,
            value: s.value,
            timestamp: s.timestamp,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_append_what_display_prints() {
        fn check(v: &dyn LabelValue, want: &str) {
            let mut out = String::from("x");
            v.append_to(&mut out);
            assert_eq!(out, format!("x{want}"));
        }
        for n in [0u64, 7, 10, 99, 1234567890, u64::MAX] {
            check(&n, &n.to_string());
            check(&(n as usize), &(n as usize).to_string());
        }
        for n in [0i64, -1, 42, i64::MIN, i64::MAX] {
            check(&n, &n.to_string());
        }
        for n in [i32::MIN, -7, 0, i32::MAX] {
            check(&n, &n.to_string());
        }
        check(&255u8, "255");
        check(&65535u16, "65535");
        check(&u32::MAX, "4294967295");
        check(&"eth0", "eth0");
        check(&String::from("cpu\"1\""), "cpu\"1\"");
        check(&std::borrow::Cow::Borrowed("lo"), "lo");
    }

    #[test]
    fn samples_keep_integer_and_text_label_values() {
        let mut set = MetricSet::new();
        let f = set.family_static("m", "help", MetricType::Gauge);
        set.sample(f, &[("cpu", &3usize), ("mode", &"idle")], 1.0);
        set.sample(f, &[("cpu", &-2i32), ("mode", &String::from("user"))], 2.0);
        let got: Vec<Vec<(String, String)>> = set
            .samples()
            .map(|s| s.labels().map(|(n, v)| (n.into(), v.into())).collect())
            .collect();
        let pair = |n: &str, v: &str| (n.to_string(), v.to_string());
        assert_eq!(
            got,
            vec![
                vec![pair("cpu", "3"), pair("mode", "idle")],
                vec![pair("cpu", "-2"), pair("mode", "user")],
            ]
        );
    }
}
