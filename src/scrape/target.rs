//! One scrape target: its labels (from discovery through `relabel_configs`), and what one
//! scrape does with a response (parse, label, relabel, limit, append, report, staleness).
//!
//! Owns: [`populate`] (Prometheus's target label rules), [`ScrapeState`] with the series
//! cache that makes repeat scrapes allocation-free per sample and finds vanished series.
//! Must not touch: sockets (the loop hands in the response), the clock (times are arguments).

use super::client::Response;
use super::config::ScrapeConfig;
use super::parse::{self, Format, Limits, NameScheme, Options, Parser};
use crate::config::format_duration;
use crate::expo::MetricSet;
use crate::model::{stale_nan, Labels, Timestamp, METRIC_NAME};
use crate::relabel;
use crate::tsdb::Appender;
use std::collections::HashMap;
use std::time::Duration;

/// A target after relabeling: what to scrape and how to label it.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetSpec {
    /// Final labels (job, instance, and the rest without `__` prefixes).
    pub labels: Labels,
    /// Labels as discovery produced them, before relabeling.
    pub discovered: Labels,
    /// `host:port`.
    pub address: String,
    /// Path and query string.
    pub path: String,
    pub url: String,
}

/// Applies Prometheus's target labeling: defaults (`job`, `__scheme__`, `__metrics_path__`,
/// `__scrape_interval__`, `__scrape_timeout__`, `__param_*`), `relabel_configs`, then
/// `instance` from `__address__` and removal of `__`-prefixed labels. `Ok(None)`: dropped by
/// relabeling. `Err`: unusable (no address).
pub fn populate(sc: &ScrapeConfig, discovered: &Labels) -> Result<Option<TargetSpec>, String> {
    let mut l = discovered.clone();
    let mut default = |name: &str, value: String| {
        if l.get(name).is_none() {
            l.set(name.to_string(), value);
        }
    };
    default("job", sc.job_name.clone());
    default("__scheme__", sc.scheme.clone());
    default("__metrics_path__", sc.metrics_path.clone());
    default("__scrape_interval__", format_duration(sc.scrape_interval));
    default("__scrape_timeout__", format_duration(sc.scrape_timeout));
    for (name, values) in &sc.params {
        if let Some(v) = values.first() {
            default(&format!("__param_{name}"), v.clone());
        }
    }
    if !relabel::process(&mut l, &sc.relabel_configs) {
        return Ok(None);
    }
    let Some(address) = l.get("__address__").map(str::to_string) else {
        return Err("no address".into());
    };
    if address.contains('/') {
        return Err(format!("{address:?} is not a valid hostname"));
    }
    let path = l.get("__metrics_path__").unwrap_or("/metrics").to_string();
    let mut query = String::new();
    for (name, value) in l.iter() {
        if let Some(p) = name.strip_prefix("__param_") {
            query.push(if query.is_empty() { '?' } else { '&' });
            query.push_str(&url_escape(p));
            query.push('=');
            query.push_str(&url_escape(value));
        }
    }
    // Extra values of multi-valued params follow the first (which a label may override).
    for (name, values) in &sc.params {
        for v in values.iter().skip(1) {
            query.push(if query.is_empty() { '?' } else { '&' });
            query.push_str(&url_escape(name));
            query.push('=');
            query.push_str(&url_escape(v));
        }
    }
    if l.get("instance").is_none() {
        l.set("instance".into(), address.clone());
    }
    let final_labels = Labels::from_pairs(
        l.iter()
            .filter(|(n, _)| !n.starts_with("__"))
            .map(|(n, v)| (n.to_string(), v.to_string())),
    );
    let path = format!("{path}{query}");
    let scheme = l.get("__scheme__").unwrap_or("http");
    Ok(Some(TargetSpec {
        url: format!("{scheme}://{address}{path}"),
        labels: final_labels,
        discovered: discovered.clone(),
        address,
        path,
    }))
}

fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where the target stands, as `/api/v1/targets` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Up,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// A series this target exposed, keyed by its raw name and labels.
struct Entry {
    /// Final labels; None when metric relabeling dropped it.
    labels: Option<Labels>,
    /// Scrape iteration that last saw it.
    seen: u64,
    /// Scrape iteration that last appended it (a duplicate in one body appends once).
    appended: u64,
    /// It carried its own timestamp: no staleness markers (Prometheus does the same).
    explicit_ts: bool,
    too_many_labels: bool,
}

/// The synthetic series a scrape reports.
const REPORT_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// One target's scrape state and reusable buffers.
pub struct ScrapeState {
    pub health: Health,
    pub last_error: String,
    /// Wall-clock ms of the last scrape's start; 0 before the first.
    pub last_scrape_ms: Timestamp,
    pub last_duration: Duration,
    /// Samples in the last body and after metric relabeling.
    pub last_samples: usize,
    /// Without `sample_limit` and metric relabeling, a body may hold at most this many samples
    /// (the store's max-series; 0: no cap): more could not be stored, and parsing them all
    /// would let one target take the device's memory (a 12 MB body of 550,000 tiny series
    /// peaked at 426 MiB before this cap).
    pub series_cap: usize,
    pub last_post_relabel: usize,
    iteration: u64,
    cache: HashMap<Vec<u8>, Entry>,
    report: Vec<Labels>,
    parser: Parser,
    set: MetricSet,
    key: Vec<u8>,
    /// Buffers the loop lends to the HTTP client.
    pub raw: Vec<u8>,
    pub body: Vec<u8>,
}

/// A scrape's outcome as the loop saw it.
pub type Fetched = Result<Response, String>;

impl ScrapeState {
    pub fn new(spec: &TargetSpec) -> Self {
        let report = REPORT_NAMES
            .iter()
            .map(|n| {
                let mut l = spec.labels.clone();
                l.set(METRIC_NAME.into(), (*n).into());
                l
            })
            .collect();
        ScrapeState {
            health: Health::Unknown,
            last_error: String::new(),
            last_scrape_ms: 0,
            last_duration: Duration::ZERO,
            last_samples: 0,
            series_cap: 0,
            last_post_relabel: 0,
            iteration: 0,
            cache: HashMap::new(),
            report,
            parser: Parser::new(),
            set: MetricSet::new(),
            key: Vec::new(),
            raw: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Families of the last parsed body (for `/api/v1/targets/metadata`): read from the
    /// parser's arena, so keeping metadata costs the scrape nothing.
    pub fn families(&self) -> impl Iterator<Item = crate::expo::FamilyRef<'_>> {
        self.set.families()
    }

    /// Number of series the last successful scrape appended (cache size bound).
    pub fn series(&self) -> usize {
        self.cache.values().filter(|e| e.labels.is_some()).count()
    }

    /// Handles one scrape result: `fetched` is the response (its body in `self.body`) or the
    /// transport error; `t` the scrape's start (wall ms), `took` its duration.
    pub fn finish(
        &mut self,
        sc: &ScrapeConfig,
        spec: &TargetSpec,
        fetched: Fetched,
        t: Timestamp,
        took: Duration,
        app: &mut dyn Appender,
    ) {
        self.iteration += 1;
        self.last_scrape_ms = t;
        self.last_duration = took;
        let outcome = fetched.and_then(|resp| self.ingest(sc, spec, &resp, t, app));
        let (up, scraped, post, added) = match outcome {
            Ok((scraped, post, added)) => {
                self.health = Health::Up;
                self.last_error.clear();
                (1.0, scraped, post, added)
            }
            Err(e) => {
                self.health = Health::Down;
                self.last_error = e;
                (0.0, 0, 0, 0)
            }
        };
        self.last_samples = scraped;
        self.last_post_relabel = post;
        // Series not seen this time go stale; a failed scrape sees nothing.
        let now = self.iteration;
        for e in self.cache.values() {
            if e.seen + 1 == now && !e.explicit_ts {
                if let Some(l) = &e.labels {
                    let _ = app.append(l, t, stale_nan());
                }
            }
        }
        self.cache.retain(|_, e| e.seen == now);
        let values = [
            up,
            took.as_secs_f64(),
            scraped as f64,
            post as f64,
            added as f64,
        ];
        for (l, v) in self.report.iter().zip(values) {
            let _ = app.append(l, t, v);
        }
    }

    /// Marks every series this target last reported stale (the target went away).
    pub fn mark_all_stale(&mut self, t: Timestamp, app: &mut dyn Appender) {
        for e in self.cache.values() {
            if e.seen == self.iteration && !e.explicit_ts {
                if let Some(l) = &e.labels {
                    let _ = app.append(l, t, stale_nan());
                }
            }
        }
        if self.iteration > 0 {
            for l in &self.report {
                let _ = app.append(l, t, stale_nan());
            }
        }
        self.cache.clear();
    }

    /// Parses and appends; returns (samples scraped, after metric relabeling, series added).
    fn ingest(
        &mut self,
        sc: &ScrapeConfig,
        spec: &TargetSpec,
        resp: &Response,
        t: Timestamp,
        app: &mut dyn Appender,
    ) -> Result<(usize, usize, usize), String> {
        if resp.status != 200 {
            return Err(format!(
                "server returned HTTP status {}",
                status_text(resp.status)
            ));
        }
        let format = parse::format_for_content_type(resp.content_type.as_deref(), None)?;
        // Without metric relabeling every parsed sample counts against `sample_limit`, so the
        // parser can stop at the limit instead of building (and caching keys for) a body of a
        // million series on the one work thread. With relabeling, drops are only known after.
        let max_samples = match (sc.metric_relabel_configs.is_empty(), sc.sample_limit) {
            (false, _) => 0,
            (true, 0) => self.series_cap,
            (true, limit) => limit,
        };
        let implicit = sc.sample_limit == 0 && max_samples > 0;
        let opts = Options {
            format,
            names: NameScheme::Utf8,
            limits: Limits {
                max_samples,
                ..Limits::default()
            },
        };
        self.set.clear();
        let stats = self
            .parser
            .parse(&self.body, &opts, &mut self.set)
            .map_err(|e| {
                if max_samples > 0 && e.msg.starts_with("sample limit exceeded") {
                    if implicit {
                        return format!(
                            "more than {max_samples} samples: the store keeps at most \
                             {max_samples} series (--storage.tsdb.max-series); set sample_limit \
                             to choose another limit"
                        );
                    }
                    return format!(
                        "sample limit exceeded: more than {max_samples} samples, limit {max_samples}"
                    );
                }
                let kind = match format {
                    Format::Text => "text",
                    Format::OpenMetrics => "OpenMetrics",
                };
                format!("{kind} parse error: {e}")
            })?;
        let now = self.iteration;
        // Pass 1: resolve every sample's final labels (cached), count, check limits.
        let mut post = 0usize;
        let mut added = 0usize;
        for i in 0..self.set.sample_count() {
            let s = self.set.sample_ref(i);
            build_key(&mut self.key, s.family_name(), s.suffix(), s.labels());
            let entry = match self.cache.get_mut(&self.key[..]) {
                Some(e) => e,
                None => {
                    let (labels, too_many) = target_labels_for(sc, spec, &s);
                    if labels.is_some() && !too_many {
                        added += 1;
                    }
                    self.cache.entry(self.key.clone()).or_insert(Entry {
                        labels,
                        seen: 0,
                        appended: 0,
                        explicit_ts: false,
                        too_many_labels: too_many,
                    })
                }
            };
            if entry.seen == now {
                continue; // a duplicate series in one body: the first wins
            }
            entry.seen = now;
            entry.explicit_ts = sc.honor_timestamps && s.timestamp().is_some();
            if entry.labels.is_some() {
                if entry.too_many_labels {
                    return Err(format!(
                        "label_limit exceeded (metric: {})",
                        s.family_name()
                    ));
                }
                post += 1;
            }
        }
        if sc.sample_limit > 0 && post > sc.sample_limit {
            // Nothing was appended: every series of the previous scrape goes stale below.
            for e in self.cache.values_mut() {
                if e.seen == now {
                    e.seen = now - 1;
                }
            }
            return Err(format!(
                "sample limit exceeded: {post} samples, limit {}",
                sc.sample_limit
            ));
        }
        // Pass 2: append.
        for i in 0..self.set.sample_count() {
            let s = self.set.sample_ref(i);
            build_key(&mut self.key, s.family_name(), s.suffix(), s.labels());
            let Some(e) = self.cache.get_mut(&self.key[..]) else {
                continue;
            };
            if e.appended == now {
                continue;
            }
            e.appended = now;
            if let Some(l) = &e.labels {
                let ts = match s.timestamp() {
                    Some(ts) if sc.honor_timestamps => ts,
                    _ => t,
                };
                // Refusals (out of order, series cap) are counted by the store.
                let _ = app.append(l, ts, s.value());
            }
        }
        Ok((stats.samples, post, added))
    }
}

fn build_key<'a>(
    key: &mut Vec<u8>,
    family: &str,
    suffix: &str,
    labels: impl Iterator<Item = (&'a str, &'a str)>,
) {
    key.clear();
    key.extend_from_slice(family.as_bytes());
    key.extend_from_slice(suffix.as_bytes());
    for (n, v) in labels {
        key.push(0xff);
        key.extend_from_slice(n.as_bytes());
        key.push(0xfe);
        key.extend_from_slice(v.as_bytes());
    }
}

/// A scraped sample's final labels: target labels merged (honor_labels rules), then
/// metric_relabel_configs. Returns (None if dropped, over label_limit).
fn target_labels_for(
    sc: &ScrapeConfig,
    spec: &TargetSpec,
    s: &crate::expo::SampleRef<'_>,
) -> (Option<Labels>, bool) {
    let mut name = String::with_capacity(s.family_name().len() + s.suffix().len());
    name.push_str(s.family_name());
    name.push_str(s.suffix());
    let mut l = Labels::from_pairs(s.labels().map(|(n, v)| (n.to_string(), v.to_string())));
    l.set(METRIC_NAME.into(), name);
    for (tn, tv) in spec.labels.iter() {
        match l.get(tn) {
            Some(_) if sc.honor_labels => {}
            Some(existing) => {
                // Keep the exposed value under exported_<name> (more prefixes if taken).
                let existing = existing.to_string();
                let mut renamed = format!("exported_{tn}");
                while l.get(&renamed).is_some() {
                    renamed.insert_str(0, "exported_");
                }
                l.set(renamed, existing);
                l.set(tn.to_string(), tv.to_string());
            }
            None => l.set(tn.to_string(), tv.to_string()),
        }
    }
    if !relabel::process(&mut l, &sc.metric_relabel_configs) || l.is_empty() {
        return (None, false);
    }
    let too_many = sc.label_limit > 0 && l.len() > sc.label_limit;
    (Some(l), too_many)
}

fn status_text(code: u16) -> String {
    let reason = match code {
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "",
    };
    format!("{code} {reason}").trim_end().to_string()
}

/// The target's start offset within its interval: a hash of its labels, so scrapes of many
/// targets spread over the interval and each target keeps its slot across restarts.
pub fn start_offset(spec: &TargetSpec, interval: Duration) -> Duration {
    let ms = interval.as_millis().max(1) as u64;
    let key = format!("{}{}", spec.labels, spec.url);
    Duration::from_millis(relabel::hash_sum64(key.as_bytes()) % ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::model::is_stale_nan;

    #[derive(Default)]
    struct Rec(Vec<(String, i64, f64)>);
    impl Appender for Rec {
        fn append(
            &mut self,
            l: &Labels,
            t: Timestamp,
            v: f64,
        ) -> Result<(), crate::tsdb::AppendError> {
            self.0.push((l.to_string(), t, v));
            Ok(())
        }
    }
    impl Rec {
        fn value(&self, series: &str, t: i64) -> Option<f64> {
            self.0
                .iter()
                .find(|(s, tt, _)| s == series && *tt == t)
                .map(|x| x.2)
        }
    }

    fn job(extra: &str) -> ScrapeConfig {
        let y = format!(
            "scrape_configs:\n  - job_name: j\n    static_configs: [{{targets: ['h:1'], labels: {{env: p}}}}]\n{extra}"
        );
        Config::parse(&y, "t").unwrap().scrape_configs.remove(0)
    }

    fn spec(sc: &ScrapeConfig) -> TargetSpec {
        let d = Labels::from_pairs([("__address__", "h:1"), ("env", "p")]);
        populate(sc, &d).unwrap().unwrap()
    }

    fn scrape(
        st: &mut ScrapeState,
        sc: &ScrapeConfig,
        sp: &TargetSpec,
        body: &str,
        t: i64,
        app: &mut Rec,
    ) {
        st.body = body.as_bytes().to_vec();
        let resp = Response {
            status: 200,
            content_type: Some("text/plain; version=0.0.4".into()),
        };
        st.finish(sc, sp, Ok(resp), t, Duration::from_millis(5), app);
    }

    #[test]
    fn populate_sets_instance_job_and_url() {
        let sc = job("    params: {module: [x]}\n");
        let s = spec(&sc);
        assert_eq!(
            s.labels.to_string(),
            r#"{env="p", instance="h:1", job="j"}"#
        );
        assert_eq!(s.url, "http://h:1/metrics?module=x");
    }

    #[test]
    fn populate_applies_relabel_configs_and_drops() {
        let sc = job("    relabel_configs: [{source_labels: [env], regex: p, action: drop}]\n");
        let d = Labels::from_pairs([("__address__", "h:1"), ("env", "p")]);
        assert_eq!(populate(&sc, &d), Ok(None));
        let sc = job("    relabel_configs: [{target_label: instance, replacement: box}]\n");
        assert_eq!(spec(&sc).labels.get("instance"), Some("box"));
        let sc = job("    relabel_configs: [{regex: __address__, action: labeldrop}]\n");
        assert!(populate(&sc, &Labels::from_pairs([("__address__", "h:1")])).is_err());
    }

    #[test]
    fn scrape_appends_samples_and_report_series() {
        let sc = job("");
        let sp = spec(&sc);
        let mut st = ScrapeState::new(&sp);
        let mut app = Rec::default();
        scrape(
            &mut st,
            &sc,
            &sp,
            "# TYPE a counter\na_total{x=\"1\"} 3\nb 2 1000\n",
            5000,
            &mut app,
        );
        assert_eq!(st.health, Health::Up);
        assert_eq!(
            app.value(r#"a_total{env="p", instance="h:1", job="j", x="1"}"#, 5000),
            Some(3.0)
        );
        // honor_timestamps: the exposed timestamp is kept.
        assert_eq!(
            app.value(r#"b{env="p", instance="h:1", job="j"}"#, 1000),
            Some(2.0)
        );
        assert_eq!(
            app.value(r#"up{env="p", instance="h:1", job="j"}"#, 5000),
            Some(1.0)
        );
        assert_eq!(
            app.value(
                r#"scrape_samples_scraped{env="p", instance="h:1", job="j"}"#,
                5000
            ),
            Some(2.0)
        );
        assert_eq!(
            app.value(
                r#"scrape_series_added{env="p", instance="h:1", job="j"}"#,
                5000
            ),
            Some(2.0)
        );
        scrape(
            &mut st,
            &sc,
            &sp,
            "# TYPE a counter\na_total{x=\"1\"} 4\n",
            6000,
            &mut app,
        );
        assert_eq!(
            app.value(
                r#"scrape_series_added{env="p", instance="h:1", job="j"}"#,
                6000
            ),
            Some(0.0)
        );
    }

    #[test]
    fn vanished_series_and_failed_scrapes_write_stale_markers() {
        let sc = job("");
        let sp = spec(&sc);
        let mut st = ScrapeState::new(&sp);
        let mut app = Rec::default();
        scrape(&mut st, &sc, &sp, "a 1\nb 1\n", 1000, &mut app);
        scrape(&mut st, &sc, &sp, "a 2\n", 2000, &mut app);
        let b = r#"b{env="p", instance="h:1", job="j"}"#;
        let a = r#"a{env="p", instance="h:1", job="j"}"#;
        assert!(is_stale_nan(app.value(b, 2000).unwrap()));
        assert_eq!(app.value(a, 2000), Some(2.0));
        scrape(
            &mut st,
            &sc,
            &sp,
            "a 2\nthis is { not a metric\n",
            3000,
            &mut app,
        );
        assert_eq!(st.health, Health::Down);
        assert!(
            st.last_error.starts_with("text parse error: line 2"),
            "{}",
            st.last_error
        );
        assert!(is_stale_nan(app.value(a, 3000).unwrap()));
        assert_eq!(
            app.value(r#"up{env="p", instance="h:1", job="j"}"#, 3000),
            Some(0.0)
        );
    }

    #[test]
    fn honor_labels_false_renames_conflicts() {
        let sc = job("");
        let sp = spec(&sc);
        let mut st = ScrapeState::new(&sp);
        let mut app = Rec::default();
        scrape(&mut st, &sc, &sp, "a{job=\"other\"} 1\n", 1000, &mut app);
        assert_eq!(
            app.value(
                r#"a{env="p", exported_job="other", instance="h:1", job="j"}"#,
                1000
            ),
            Some(1.0)
        );
        let sc = job("    honor_labels: true\n");
        let mut st = ScrapeState::new(&sp);
        scrape(&mut st, &sc, &sp, "a{job=\"other\"} 1\n", 2000, &mut app);
        assert_eq!(
            app.value(r#"a{env="p", instance="h:1", job="other"}"#, 2000),
            Some(1.0)
        );
    }

    #[test]
    fn metric_relabel_and_limits() {
        let sc = job("    metric_relabel_configs: [{source_labels: [__name__], regex: go_.*, action: drop}]\n");
        let sp = spec(&sc);
        let mut st = ScrapeState::new(&sp);
        let mut app = Rec::default();
        scrape(&mut st, &sc, &sp, "go_x 1\na 1\n", 1000, &mut app);
        assert_eq!(st.last_samples, 2);
        assert_eq!(st.last_post_relabel, 1);
        assert!(app.0.iter().all(|(s, _, _)| !s.starts_with("go_x")));

        let sc = job("    sample_limit: 1\n");
        let mut st = ScrapeState::new(&sp);
        scrape(&mut st, &sc, &sp, "a 1\nb 1\n", 1000, &mut app);
        assert_eq!(st.health, Health::Down);
        assert_eq!(
            st.last_error,
            "sample limit exceeded: more than 1 samples, limit 1"
        );
        // With metric relabeling the limit applies after it: counted, not cut short.
        let sc = job("    sample_limit: 1\n    metric_relabel_configs: [{source_labels: [__name__], regex: go_.*, action: drop}]\n");
        let mut st = ScrapeState::new(&sp);
        scrape(&mut st, &sc, &sp, "go_a 1\ngo_b 1\na 1\n", 1000, &mut app);
        assert_eq!(st.health, Health::Up, "{}", st.last_error);
        scrape(&mut st, &sc, &sp, "go_a 1\na 1\nb 1\n", 2000, &mut app);
        assert_eq!(st.last_error, "sample limit exceeded: 2 samples, limit 1");
        let sc = job("    label_limit: 3\n");
        let mut st = ScrapeState::new(&sp);
        scrape(&mut st, &sc, &sp, "a{x=\"1\"} 1\n", 1000, &mut app);
        assert_eq!(st.last_error, "label_limit exceeded (metric: a)");
    }

    /// Before: with no sample_limit, a body of 550,000 tiny series was parsed (and its keys
    /// cached) whole although the store would keep at most max-series of them: 426 MiB.
    #[test]
    fn bodies_beyond_the_store_series_cap_stop_parsing_without_sample_limit() {
        let sc = job("");
        let sp = spec(&sc);
        let mut app = Rec::default();
        let mut st = ScrapeState::new(&sp);
        st.series_cap = 2;
        scrape(&mut st, &sc, &sp, "a 1\nb 1\n", 1000, &mut app);
        assert_eq!(st.health, Health::Up, "{}", st.last_error);
        scrape(&mut st, &sc, &sp, "a 1\nb 1\nc 1\n", 2000, &mut app);
        assert_eq!(st.health, Health::Down);
        assert!(
            st.last_error
                .starts_with("more than 2 samples: the store keeps at most 2 series"),
            "{}",
            st.last_error
        );
        assert!(st.cache.len() <= 3, "{}", st.cache.len());
        // An explicit sample_limit is the user's choice and wins over the cap.
        let sc = job("    sample_limit: 5\n");
        scrape(&mut st, &sc, &sp, "a 1\nb 1\nc 1\n", 3000, &mut app);
        assert_eq!(st.health, Health::Up, "{}", st.last_error);
    }

    #[test]
    fn blank_content_type_fails_like_prometheus() {
        let sc = job("");
        let sp = spec(&sc);
        let mut st = ScrapeState::new(&sp);
        let mut app = Rec::default();
        st.body = b"a 1\n".to_vec();
        let resp = Response {
            status: 200,
            content_type: None,
        };
        st.finish(&sc, &sp, Ok(resp), 1, Duration::ZERO, &mut app);
        assert!(
            st.last_error.contains("blank Content-Type"),
            "{}",
            st.last_error
        );
        let resp = Response {
            status: 500,
            content_type: None,
        };
        st.finish(&sc, &sp, Ok(resp), 2, Duration::ZERO, &mut app);
        assert_eq!(
            st.last_error,
            "server returned HTTP status 500 Internal Server Error"
        );
    }

    #[test]
    fn openmetrics_bodies_are_parsed_by_content_type_and_honor_timestamps_false_restamps() {
        let sc = job("    honor_timestamps: false\n");
        let sp = spec(&sc);
        let mut st = ScrapeState::new(&sp);
        let mut app = Rec::default();
        st.body = b"# TYPE c counter\nc_total 7 1.5\n# EOF\n".to_vec();
        let resp = Response {
            status: 200,
            content_type: Some("application/openmetrics-text; version=1.0.0; charset=utf-8".into()),
        };
        st.finish(&sc, &sp, Ok(resp), 9000, Duration::ZERO, &mut app);
        assert_eq!(st.last_error, "");
        // The exposed 1.5 s timestamp is ignored: the scrape's own time is used.
        assert_eq!(
            app.value(r#"c_total{env="p", instance="h:1", job="j"}"#, 9000),
            Some(7.0)
        );
        // The same body without `# EOF` is invalid OpenMetrics.
        st.body = b"# TYPE c counter\nc_total 7\n".to_vec();
        let resp = Response {
            status: 200,
            content_type: Some("application/openmetrics-text; version=1.0.0".into()),
        };
        st.finish(&sc, &sp, Ok(resp), 10_000, Duration::ZERO, &mut app);
        assert!(
            st.last_error.starts_with("OpenMetrics parse error"),
            "{}",
            st.last_error
        );
        assert!(is_stale_nan(
            app.value(r#"c_total{env="p", instance="h:1", job="j"}"#, 10_000)
                .unwrap()
        ));
    }

    #[test]
    fn start_offsets_are_stable_and_within_the_interval() {
        let sc = job("");
        let sp = spec(&sc);
        let i = Duration::from_secs(15);
        assert_eq!(start_offset(&sp, i), start_offset(&sp, i));
        assert!(start_offset(&sp, i) < i);
    }
}
