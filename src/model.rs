//! Shared vocabulary: time, labels and samples.
//!
//! Owns the small types every other module speaks (`Timestamp`, `Sample`, `Labels`, `Clock`).
//! Must not touch: I/O of any kind. Everything here is plain data.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, as Prometheus stamps samples.
pub type Timestamp = i64;

/// One float sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub t: Timestamp,
    pub v: f64,
}

/// The special NaN Prometheus writes to mark a series stale (value.StaleNaN).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// A staleness marker value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// True if `v` is the staleness marker (not merely any NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// The reserved label holding the metric name.
pub const METRIC_NAME: &str = "__name__";

/// A label set, kept sorted by name, names unique. `__name__` sorts first like any other
/// name beginning with `_` would not, so it is stored in order like the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    pub fn new() -> Self {
        Labels(Vec::new())
    }

    /// Builds a label set from pairs in any order; later duplicates replace earlier ones and
    /// empty values are dropped (an empty label value means "no such label" in Prometheus).
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut l = Labels::new();
        for (n, v) in pairs {
            l.set(n.into(), v.into());
        }
        l
    }

    /// [`Labels::from_pairs`] for pairs that usually come sorted by name and unique (as the
    /// TSDB index holds them): one allocation for the list and no search per pair. A pair out
    /// of order is still placed by `from_pairs`' rules.
    pub fn from_sorted_pairs<'a>(pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut l = Labels(Vec::with_capacity(pairs.len()));
        for (n, v) in pairs {
            match l.0.last() {
                Some((last, _)) if last.as_str() >= n => l.set(n.into(), v.into()),
                _ if v.is_empty() => {}
                _ => l.0.push((n.into(), v.into())),
            }
        }
        l
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// Sets a label; an empty value removes it.
    pub fn set(&mut self, name: String, value: String) {
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].1 = value,
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, (name, value)),
        }
    }

    pub fn remove(&mut self, name: &str) {
        if let Ok(i) = self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            self.0.remove(i);
        }
    }

    pub fn name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for Labels {
    /// `name{a="b", c="d"}` as Prometheus prints series.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.name().unwrap_or("");
        f.write_str(name)?;
        let mut first = true;
        for (n, v) in self.iter().filter(|(n, _)| *n != METRIC_NAME) {
            f.write_str(if first { "{" } else { ", " })?;
            first = false;
            write!(f, "{n}=\"{}\"", v.escape_default())?;
        }
        if !first || name.is_empty() {
            f.write_str(if first { "{}" } else { "}" })?;
        }
        Ok(())
    }
}

/// Where time comes from. `main` owns the real clock; tests pass a fake one that can step the
/// wall clock by days (a Pi without RTC syncing NTP after boot, prometheus#10028).
pub trait Clock {
    /// Monotonic time, for scheduling.
    fn monotonic(&self) -> Instant;
    /// Wall-clock milliseconds since the epoch, for stamping samples.
    fn wall_ms(&self) -> Timestamp;
}

/// The machine's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn monotonic(&self) -> Instant {
        Instant::now()
    }
    fn wall_ms(&self) -> Timestamp {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_millis() as i64,
            Err(e) => -(e.duration().as_millis() as i64),
        }
    }
}

/// Detects wall-clock steps by comparing how far the wall clock moved with how far the
/// monotonic clock moved between two observations.
#[derive(Debug)]
pub struct StepDetector {
    last: Option<(Instant, Timestamp)>,
    /// Differences smaller than this are drift or scheduling jitter, not a step.
    pub tolerance: Duration,
}

impl StepDetector {
    pub fn new(tolerance: Duration) -> Self {
        StepDetector {
            last: None,
            tolerance,
        }
    }

    /// Records an observation; returns the step in ms (wall moved minus monotonic moved) when it
    /// exceeds the tolerance.
    pub fn observe(&mut self, mono: Instant, wall: Timestamp) -> Option<i64> {
        let step = self.last.map(|(m0, w0)| {
            let mono_ms = mono.saturating_duration_since(m0).as_millis() as i64;
            (wall - w0) - mono_ms
        });
        self.last = Some((mono, wall));
        step.filter(|s| s.unsigned_abs() as u128 > self.tolerance.as_millis())
    }
}

/// Stamps periodic samples on a regular grid: when a cycle runs within `tolerance` of where
/// the schedule says (previous stamp + interval), it gets exactly that stamp. Timer jitter of a
/// few ms otherwise costs ~0.7 bytes/sample in delta-of-delta chunks (measured: 2.0 vs 1.3 B).
/// Prometheus aligns scrape timestamps for the same reason (with a 2 ms tolerance).
#[derive(Debug)]
pub struct StampAligner {
    last: Option<Timestamp>,
    pub tolerance_ms: i64,
}

impl StampAligner {
    pub fn new(tolerance_ms: i64) -> Self {
        StampAligner {
            last: None,
            tolerance_ms,
        }
    }

    /// The stamp for a cycle that runs at wall time `now` on a schedule of `interval_ms`.
    pub fn stamp(&mut self, now: Timestamp, interval_ms: i64) -> Timestamp {
        let t = match self.last {
            Some(last) if (now - (last + interval_ms)).abs() <= self.tolerance_ms => {
                last + interval_ms
            }
            _ => now,
        };
        self.last = Some(t);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_sorted_pairs_equals_from_pairs_in_any_order() {
        let cases: &[&[(&str, &str)]] = &[
            &[("__name__", "up"), ("instance", "a"), ("job", "x")],
            &[("job", "x"), ("__name__", "up"), ("job", "y"), ("a", "")],
            &[("a", ""), ("b", "1")],
            &[("b", "1"), ("b", "")],
            &[],
        ];
        for pairs in cases {
            assert_eq!(
                Labels::from_sorted_pairs(pairs.iter().copied()),
                Labels::from_pairs(pairs.iter().copied()),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn labels_stay_sorted_and_drop_empty_values() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", ""), ("__name__", "up")]);
        let v: Vec<_> = l.iter().collect();
        assert_eq!(v, vec![("__name__", "up"), ("a", "1"), ("b", "2")]);
        assert_eq!(l.to_string(), "up{a=\"1\", b=\"2\"}");
    }

    #[test]
    fn stale_nan_is_distinguished_from_other_nans() {
        assert!(is_stale_nan(stale_nan()));
        assert!(!is_stale_nan(f64::NAN));
    }

    #[test]
    fn stamp_aligner_snaps_jitter_but_follows_real_gaps() {
        let mut a = StampAligner::new(25);
        assert_eq!(a.stamp(1_000_003, 15_000), 1_000_003);
        assert_eq!(a.stamp(1_015_010, 15_000), 1_015_003);
        assert_eq!(a.stamp(1_029_990, 15_000), 1_030_003);
        // a late cycle (or a clock step) starts a new grid
        assert_eq!(a.stamp(1_060_500, 15_000), 1_060_500);
    }

    #[test]
    fn step_detector_reports_wall_clock_jump() {
        let mut d = StepDetector::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(d.observe(t0, 1_000_000), None);
        assert_eq!(d.observe(t0 + Duration::from_secs(15), 1_015_000), None);
        let three_days = 3 * 86_400_000;
        assert_eq!(
            d.observe(t0 + Duration::from_secs(30), 1_030_000 + three_days),
            Some(three_days)
        );
    }
}

/// How a label matcher compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// A label matcher as in PromQL selectors. Regexes are fully anchored (`^(?:…)$`), like
/// Prometheus's, and use regex-lite: linear time, but no `\p{..}` classes.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<regex_lite::Regex>,
}

impl Matcher {
    /// Builds a matcher; fails only for an invalid regex.
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Matcher, regex_lite::Error> {
        let value = value.into();
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                Some(regex_lite::Regex::new(&format!("^(?s:{value})$"))?)
            }
            _ => None,
        };
        Ok(Matcher {
            name: name.into(),
            op,
            value,
            regex,
        })
    }

    /// Does a label value match? A missing label is the empty string, as in Prometheus.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// True if this matcher accepts the empty string (so it also selects series without the label).
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Matcher) -> bool {
        self.name == o.name && self.op == o.op && self.value == o.value
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}{}\"{}\"",
            self.name,
            self.op.as_str(),
            self.value.escape_default()
        )
    }
}

#[cfg(test)]
mod matcher_tests {
    use super::*;

    #[test]
    fn regex_matchers_are_fully_anchored() {
        let m = Matcher::new(MatchOp::Regex, "job", "api|web").unwrap();
        assert!(m.matches("api"));
        assert!(!m.matches("apiserver"));
        let n = Matcher::new(MatchOp::NotRegex, "job", "a.*").unwrap();
        assert!(n.matches("ba"));
        assert!(!n.matches("abc"));
        assert!(n.matches_empty());
    }
}
