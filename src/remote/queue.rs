//! One remote-write queue: batches read from the TSDB after a per-series position, the
//! position's advance on acknowledgement, loss accounting, and its durable cursor.
//!
//! Owns: [`Queue`] (no I/O except the cursor file) and [`run`], the task that sends its
//! batches over `scrape::client` with retries, backoff and the catch-up rate limit.
//! Must not touch: the TSDB's contents (read only), other queues.
//!
//! # Order and exactly-once
//! A series accepts samples only in timestamp order, so "sent through t" per series is an
//! exact position. A batch takes, for each series, the samples after its position up to a
//! time window's end (the oldest unsent sample + [`CATCHUP_WINDOW_MS`]), so a backlog goes out
//! roughly in time order, as a receiving Prometheus needs (it refuses samples far older than
//! its head). Positions advance only after a 2xx, or after a non-retryable 4xx (the batch is
//! dropped and counted, as Prometheus does). What can be sent twice: a batch whose 2xx was
//! lost (timeout after the receiver stored it), and the batches acknowledged after the last
//! cursor write when the process dies without a clean shutdown (cursor writes are at most
//! every [`PERSIST_EVERY`]; SIGTERM writes it). A receiving Prometheus ignores an identical
//! repeated sample.

use super::config::RemoteWriteConfig;
use super::cursor::{self, series_key, Position};
use super::proto;
use crate::model::{Labels, Sample, Timestamp};
use crate::rt::Timer;
use crate::scrape::client;
use crate::tsdb::{SharedStore, Store};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Width of the time window one batch draws from during catch-up.
pub const CATCHUP_WINDOW_MS: i64 = 5 * 60 * 1000;
/// The cursor file is written after an acknowledged batch at most this often (flash wear).
pub const PERSIST_EVERY: Duration = Duration::from_secs(60);

/// A series whose newest sample is this close to the watermark may still receive older
/// samples (late scrapes), so the cursor file lists it explicitly.
pub const LATE_MS: i64 = 10 * 60 * 1000;

/// Counters behind the `prometheus_remote_storage_*` and `promlet_remote_write_*` metrics.
#[derive(Clone, Debug, Default)]
pub struct QueueStats {
    pub samples: u64,
    pub failed: u64,
    pub retried: u64,
    pub dropped: u64,
    pub bytes: u64,
    pub lost: u64,
    pub backlog: u64,
    pub highest_sent_ms: Timestamp,
    pub highest_seen_ms: Timestamp,
    pub cursor_writes: u64,
    pub cursor_write_errors: u64,
    pub last_error: String,
}

struct SeriesState {
    /// Sent (or deliberately skipped) through this timestamp.
    sent: Timestamp,
    last_t: Timestamp,
    /// Evicted samples already accounted for.
    seen_evicted: u64,
    /// Encoded labels after external labels and write relabeling; Some(None) = dropped.
    labels: Option<Option<Box<[u8]>>>,
    gen: u32,
}

/// One queue's state, shared between its task and the agent (metrics, shutdown).
pub struct Queue {
    /// Shared with the send in flight, which holds it across awaits (an `Rc`, so a send does
    /// not copy the headers, auth and TLS settings).
    pub cfg: Rc<RemoteWriteConfig>,
    external: Vec<(String, String)>,
    cursor_path: Option<PathBuf>,
    /// Position of series not yet seen.
    floor: Timestamp,
    series: HashMap<u64, SeriesState>,
    gen: u32,
    /// Positions the in-flight batch advances to on success.
    pending: Vec<(u64, Timestamp)>,
    pending_highest: Timestamp,
    scratch: Vec<Sample>,
    /// Series keys in the order the first pass of a batch visited them (the second pass
    /// visits the same series in the same order under the same borrow, so it need not hash).
    keys: Vec<u64>,
    body: Vec<u8>,
    /// The compressed batch ready to send.
    pub wire: Vec<u8>,
    pub stats: QueueStats,
    last_persist: Option<Instant>,
    dirty: bool,
    /// The TLS client for an https URL, built at the first send after (re)configuration
    /// (reading a CA bundle is not worth repeating per batch).
    tls: Option<Result<client::ClientTls, String>>,
}

impl Queue {
    /// A queue for `cfg`, resuming from its cursor in `dir` if there is one. Without a cursor
    /// the queue sends samples newer than `start_after`; with an unreadable one it starts
    /// from the oldest sample held (duplicates rather than loss).
    pub fn new(
        cfg: RemoteWriteConfig,
        external: Vec<(String, String)>,
        dir: Option<&std::path::Path>,
        start_after: Timestamp,
    ) -> Queue {
        let cursor_path = dir.map(|d| d.join(format!("{:016x}.cursor", queue_id(&cfg))));
        let mut q = Queue {
            cfg: Rc::new(cfg),
            external,
            cursor_path,
            floor: start_after,
            series: HashMap::new(),
            gen: 0,
            pending: Vec::new(),
            pending_highest: Timestamp::MIN,
            scratch: Vec::new(),
            keys: Vec::new(),
            body: Vec::new(),
            wire: Vec::new(),
            stats: QueueStats::default(),
            last_persist: None,
            dirty: false,
            tls: None,
        };
        if let Some(path) = q.cursor_path.clone() {
            if let Some(d) = path.parent() {
                let _ = std::fs::create_dir_all(d);
            }
            match cursor::load(&path) {
                Ok(Some(p)) => {
                    // Nothing the store holds is newer than `start_after`: a cursor beyond it
                    // sent samples the store no longer has (lost after its last flush, or cut
                    // because the clock was behind them). Samples appended from now on must
                    // not be skipped for being older than those.
                    q.floor = p.watermark.min(start_after);
                    for (k, t) in p.lagging {
                        q.series.insert(k, SeriesState::new(t.min(start_after)));
                    }
                    crate::log::info(&format!(
                        "remote_write {}: resuming from cursor (sent through t={}, {} series behind)",
                        q.cfg.url,
                        p.watermark,
                        q.series.len()
                    ));
                }
                Ok(None) => q.dirty = true,
                Err(e) => {
                    crate::log::warn(&format!(
                        "remote_write {}: cursor {} unusable ({e}); resending everything the \
                         TSDB holds",
                        q.cfg.url,
                        path.display()
                    ));
                    q.floor = Timestamp::MIN;
                    q.dirty = true;
                }
            }
        }
        q
    }

    /// Moves every position back to `t` at most: the store dropped the samples after `t`
    /// (a wall clock that was ahead stamped them), and samples appended from now on may be
    /// older than what was sent. A batch in flight advances to `t` at most when acknowledged.
    pub fn rewind(&mut self, t: Timestamp) {
        self.floor = self.floor.min(t);
        for s in self.series.values_mut() {
            s.sent = s.sent.min(t);
            s.last_t = s.last_t.min(t);
        }
        for p in &mut self.pending {
            p.1 = p.1.min(t);
        }
        self.pending_highest = self.pending_highest.min(t);
        self.stats.highest_sent_ms = self.stats.highest_sent_ms.min(t);
        self.dirty = true;
    }

    pub fn external(&self) -> &[(String, String)] {
        &self.external
    }

    /// Takes a new configuration for the same queue identity: keeps positions, drops the
    /// label cache (external labels or relabeling may have changed).
    pub fn reconfigure(&mut self, cfg: RemoteWriteConfig, external: Vec<(String, String)>) {
        self.cfg = Rc::new(cfg);
        self.tls = None;
        self.external = external;
        for s in self.series.values_mut() {
            s.labels = None;
        }
    }

    /// Builds the next batch into [`Queue::wire`]; returns its sample count (0: nothing to
    /// send). Also accounts evictions past the position and the backlog.
    pub fn build_batch(&mut self, store: &Store) -> usize {
        self.gen = self.gen.wrapping_add(1);
        let gen = self.gen;
        let floor = self.floor;
        let mut lo = Timestamp::MAX;
        let mut backlog = 0u64;
        let mut lost = 0u64;
        let mut dropped = 0u64;
        let series = &mut self.series;
        let keys = &mut self.keys;
        keys.clear();
        let (cfg, external) = (&self.cfg, &self.external);
        store.for_each_series(&mut |v| {
            let key = series_key(v.pairs());
            keys.push(key);
            let st = series.entry(key).or_insert_with(|| SeriesState::new(floor));
            st.gen = gen;
            st.last_t = v.last_t().unwrap_or(Timestamp::MIN);
            let ev = v.evicted();
            if ev.samples > st.seen_evicted {
                if ev.last_maxt > st.sent {
                    lost += lost_estimate(ev, st.seen_evicted, st.sent);
                    st.sent = ev.last_maxt;
                }
                st.seen_evicted = ev.samples;
            }
            let labels = st
                .labels
                .get_or_insert_with(|| encode_series_labels(v.pairs(), external, cfg));
            if labels.is_none() {
                // Dropped by write_relabel_configs: skipped for good, never backlog.
                if st.last_t > st.sent {
                    dropped += v.count_after(st.sent);
                    st.sent = st.last_t;
                }
                return;
            }
            if let Some(f) = v.first_after(st.sent) {
                lo = lo.min(f);
            }
        });
        series.retain(|_, s| s.gen == gen);
        self.stats.lost += lost;
        self.stats.dropped += dropped;
        if dropped > 0 {
            self.dirty = true;
        }
        self.pending.clear();
        self.pending_highest = Timestamp::MIN;
        self.body.clear();
        self.wire.clear();
        if lo == Timestamp::MAX {
            self.stats.backlog = 0;
            return 0;
        }
        let upto = lo.saturating_add(CATCHUP_WINDOW_MS);
        let cap = self.cfg.queue.max_samples_per_send;
        let mut n = 0;
        let (scratch, body, pending) = (&mut self.scratch, &mut self.body, &mut self.pending);
        let mut highest = Timestamp::MIN;
        let keys = &self.keys;
        let mut visit = 0;
        store.for_each_series(&mut |v| {
            let Some(&key) = keys.get(visit) else {
                return;
            };
            visit += 1;
            let Some(st) = series.get_mut(&key) else {
                return;
            };
            let Some(Some(labels)) = &st.labels else {
                return;
            };
            if st.last_t <= st.sent {
                return;
            }
            // The backlog is counted here rather than in the first pass, so in steady state
            // each chunk is decoded once per batch.
            if n >= cap {
                backlog += v.count_after(st.sent);
                return;
            }
            scratch.clear();
            v.samples_after(st.sent, upto, scratch);
            backlog += scratch.len() as u64;
            if st.last_t > upto {
                backlog += v.count_after(upto);
            }
            if scratch.is_empty() {
                return;
            }
            let take = scratch.len().min(cap - n);
            let part = &scratch[..take];
            proto::encode_series(labels, part, body);
            n += take;
            let last = part[take - 1].t;
            highest = highest.max(last);
            pending.push((key, last));
        });
        self.stats.backlog = backlog;
        self.pending_highest = highest;
        if n > 0 {
            super::snappy::compress(&self.body, &mut self.wire);
        }
        n
    }

    /// The receiver took the batch (2xx): advance positions.
    pub fn acknowledge(&mut self, n: usize) {
        self.stats.samples += n as u64;
        self.stats.bytes += self.wire.len() as u64;
        self.stats.highest_sent_ms = self.stats.highest_sent_ms.max(self.pending_highest);
        self.advance();
    }

    /// The receiver refused the batch for good (4xx other than 429): count and skip it.
    pub fn reject(&mut self, n: usize) {
        self.stats.failed += n as u64;
        self.advance();
    }

    fn advance(&mut self) {
        for &(k, t) in &self.pending {
            if let Some(s) = self.series.get_mut(&k) {
                s.sent = s.sent.max(t);
            }
        }
        self.pending.clear();
        self.dirty = true;
    }

    /// Writes the cursor if it changed and (unless `force`) [`PERSIST_EVERY`] has passed.
    pub fn persist(&mut self, now: Instant, force: bool) {
        let Some(path) = &self.cursor_path else {
            return;
        };
        if !self.dirty || (!force && self.last_persist.is_some_and(|l| now < l + PERSIST_EVERY)) {
            return;
        }
        let watermark = self
            .series
            .values()
            .map(|s| s.sent)
            .max()
            .unwrap_or(self.floor)
            .max(self.floor);
        // Series behind the watermark need their own entry if they have unsent samples, or
        // may still get samples older than the watermark (a scrape stamped at its start and
        // appended when it ends). Series idle for longer than LATE_MS are complete through
        // the watermark, which keeps the file small.
        let mut lagging: Vec<(u64, Timestamp)> = self
            .series
            .iter()
            .filter(|(_, s)| {
                s.sent < watermark && (s.last_t > s.sent || watermark - s.sent < LATE_MS)
            })
            .map(|(&k, s)| (k, s.sent))
            .collect();
        lagging.sort_unstable();
        let mut bytes = Vec::new();
        cursor::encode(&Position { watermark, lagging }, &mut bytes);
        match cursor::store(path, &bytes) {
            Ok(()) => {
                self.stats.cursor_writes += 1;
                self.dirty = false;
                self.last_persist = Some(now);
            }
            Err(e) => {
                self.stats.cursor_write_errors += 1;
                crate::log::warn(&format!(
                    "remote_write {}: cannot write cursor {}: {e}",
                    self.cfg.url,
                    path.display()
                ));
                self.last_persist = Some(now);
            }
        }
    }
}

impl SeriesState {
    fn new(sent: Timestamp) -> SeriesState {
        SeriesState {
            sent,
            last_t: Timestamp::MIN,
            seen_evicted: 0,
            labels: None,
            gen: 0,
        }
    }
}

/// Unsent samples among those evicted since `seen` samples had been: chunks older than the
/// newest evicted one count whole when the position is before that one; the newest counts
/// the part after the position (proportionally by time when the position falls inside it).
fn lost_estimate(ev: crate::tsdb::Evicted, seen: u64, sent: Timestamp) -> u64 {
    let delta = ev.samples - seen;
    let last = u64::from(ev.last_count).min(delta);
    if sent < ev.last_mint {
        return delta;
    }
    let span = (ev.last_maxt - ev.last_mint).max(1) as f64;
    (last as f64 * (ev.last_maxt - sent) as f64 / span).round() as u64
}

/// The queue's identity as a number (cursor file name).
pub fn queue_id(cfg: &RemoteWriteConfig) -> u64 {
    series_key([(cfg.url.as_str(), cfg.name.as_str())].into_iter())
}

/// Labels as sent: the series' own, external labels where the series has none of that
/// name, then write_relabel_configs. None: dropped.
fn encode_series_labels<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
    external: &[(String, String)],
    cfg: &RemoteWriteConfig,
) -> Option<Box<[u8]>> {
    let mut labels = Labels::from_pairs(pairs);
    for (n, v) in external {
        if labels.get(n).is_none() {
            labels.set(n.clone(), v.clone());
        }
    }
    if !crate::relabel::process(&mut labels, &cfg.write_relabel_configs) || labels.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    proto::encode_labels(labels.iter(), &mut out);
    Some(out.into_boxed_slice())
}

/// How a send ended.
enum Outcome {
    Ok,
    Retry(String),
    Reject(String),
}

/// The queue's task: build, pace, send, retry, acknowledge, persist; until dropped.
pub async fn run(queue: Rc<RefCell<Queue>>, store: SharedStore) {
    let mut last_full = false;
    let mut next_send = Instant::now();
    let (mut raw, mut resp_body) = (Vec::new(), Vec::new());
    loop {
        let deadline = queue.borrow().cfg.queue.batch_send_deadline;
        if !last_full {
            Timer::after(deadline).await;
        }
        let n = {
            let st = store.0.borrow();
            queue.borrow_mut().build_batch(&st)
        };
        if n == 0 {
            last_full = false;
            queue.borrow_mut().persist(Instant::now(), false);
            continue;
        }
        let (max_per_send, rate) = {
            let q = queue.borrow();
            (
                q.cfg.queue.max_samples_per_send,
                q.cfg.queue.max_samples_per_second,
            )
        };
        last_full = n >= max_per_send;
        // Pacing: a batch of n samples occupies n / rate seconds, so the average rate stays
        // under the limit however large the backlog is.
        Timer::at(next_send).await;
        let mut backoff = queue.borrow().cfg.queue.min_backoff;
        loop {
            let outcome = send_once(&queue, &mut raw, &mut resp_body).await;
            let max_backoff = {
                let mut q = queue.borrow_mut();
                match outcome {
                    Outcome::Ok => {
                        q.acknowledge(n);
                        // The next failure, even the same one, is news worth a log line.
                        q.stats.last_error.clear();
                        None
                    }
                    Outcome::Reject(e) => {
                        crate::log::warn(&format!(
                            "remote_write {}: dropped a batch of {n} samples: {e}",
                            q.cfg.url
                        ));
                        q.stats.last_error = e;
                        q.reject(n);
                        None
                    }
                    Outcome::Retry(e) => {
                        if q.stats.last_error != e {
                            crate::log::warn(&format!(
                                "remote_write {}: {e}; retrying with backoff",
                                q.cfg.url
                            ));
                        }
                        q.stats.last_error = e;
                        q.stats.retried += n as u64;
                        Some(q.cfg.queue.max_backoff)
                    }
                }
            };
            let Some(max) = max_backoff else { break };
            Timer::after(backoff).await;
            backoff = (backoff * 2).min(max);
        }
        if rate > 0 {
            // Counted from the end of the send, so a batch retried through an outage does not
            // let the next one out at once.
            next_send = Instant::now() + Duration::from_secs_f64(n as f64 / rate as f64);
        }
        queue.borrow_mut().persist(Instant::now(), false);
    }
}

async fn send_once(queue: &Rc<RefCell<Queue>>, raw: &mut Vec<u8>, resp: &mut Vec<u8>) -> Outcome {
    let (cfg, wire, tls) = {
        let mut q = queue.borrow_mut();
        let q = &mut *q;
        let tls = if q.cfg.https {
            let cfg = &q.cfg.tls_config;
            match q.tls.get_or_insert_with(|| client::client_tls(cfg)) {
                Ok(t) => Some(t.clone()),
                Err(e) => return Outcome::Retry(format!("tls_config: {e}")),
            }
        } else {
            None
        };
        (q.cfg.clone(), std::mem::take(&mut q.wire), tls)
    };
    let addr = match crate::net::dns::resolve_host(&cfg.host, cfg.port, cfg.remote_timeout).await {
        Ok(a) => a,
        Err(e) => {
            queue.borrow_mut().wire = wire;
            return Outcome::Retry(e);
        }
    };
    let authorization = match &cfg.auth {
        crate::scrape::config::Auth::None => None,
        crate::scrape::config::Auth::Basic { username, password } => Some(format!(
            "Basic {}",
            crate::scrape::manager::base64(format!("{username}:{password}").as_bytes())
        )),
        crate::scrape::config::Auth::Header {
            scheme,
            credentials,
        } => Some(format!("{scheme} {credentials}")),
    };
    let mut headers = String::from(
        "Content-Encoding: snappy\r\nContent-Type: application/x-protobuf\r\n\
         X-Prometheus-Remote-Write-Version: 0.1.0\r\n",
    );
    for (k, v) in &cfg.headers {
        headers.push_str(&format!("{k}: {v}\r\n"));
    }
    let default_port = if cfg.https { 443 } else { 80 };
    let host = if cfg.port == default_port {
        cfg.host.clone()
    } else {
        format!("{}:{}", cfg.host, cfg.port)
    };
    let req = client::Request {
        method: "POST",
        addr,
        host: &host,
        target: &cfg.path,
        accept: "*/*",
        authorization: authorization.as_deref(),
        extra_headers: &headers,
        body: &wire,
        timeout: cfg.remote_timeout,
        body_limit: 1 << 20,
        gzip: false,
    };
    let result = client::send_with_tls(&req, tls.as_ref(), raw, resp).await;
    queue.borrow_mut().wire = wire;
    match result {
        Ok(r) if (200..300).contains(&r.status) => Outcome::Ok,
        Ok(r) => {
            let text = String::from_utf8_lossy(&resp[..resp.len().min(256)]);
            let e = format!("server returned HTTP status {}: {}", r.status, text.trim());
            if r.status >= 500 || (r.status == 429 && cfg.queue.retry_on_http_429) {
                Outcome::Retry(e)
            } else {
                Outcome::Reject(e)
            }
        }
        Err(e) => Outcome::Retry(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::{Appender, Options};

    fn cfg(extra: &str) -> RemoteWriteConfig {
        let text = format!("remote_write:\n  - url: http://127.0.0.1:1/w\n{extra}");
        crate::config::Config::parse(&text, "t")
            .unwrap()
            .remote_write
            .remove(0)
    }

    fn lbl(name: &str, i: usize) -> Labels {
        Labels::from_pairs([("__name__", name.to_string()), ("i", i.to_string())])
    }

    fn decode(q: &Queue) -> Vec<proto::DecodedSeries> {
        let mut raw = Vec::new();
        super::super::snappy::decompress(&q.wire, &mut raw).unwrap();
        proto::decode_write_request(&raw).unwrap()
    }

    #[test]
    fn sends_each_sample_once_in_batches_and_only_after_acknowledgement() {
        let mut st = Store::new(Options::default());
        let mut q = Queue::new(
            cfg("    queue_config: {max_samples_per_send: 7}\n"),
            vec![],
            None,
            0,
        );
        for t in 1..=10 {
            for i in 0..3 {
                st.append(&lbl("m", i), t * 1000, t as f64).unwrap();
            }
        }
        let mut seen = Vec::new();
        // An unacknowledged batch is built again the same.
        let n = q.build_batch(&st);
        assert_eq!(n, 7);
        assert_eq!(
            q.stats.backlog, 30,
            "everything is unsent, in the batch or not"
        );
        let first = decode(&q);
        assert_eq!(q.build_batch(&st), 7);
        assert_eq!(decode(&q), first);
        loop {
            let n = q.build_batch(&st);
            if n == 0 {
                break;
            }
            for s in decode(&q) {
                for x in s.samples {
                    seen.push((s.labels[1].1.clone(), x.t));
                }
            }
            q.acknowledge(n);
        }
        assert_eq!(q.stats.backlog, 0);
        seen.sort();
        let before = seen.len();
        seen.dedup();
        assert_eq!((before, seen.len()), (30, 30));
        assert_eq!(q.stats.samples, 30);
        assert_eq!(q.stats.highest_sent_ms, 10_000);
        // New samples: only they go out.
        st.append(&lbl("m", 0), 11_000, 1.0).unwrap();
        assert_eq!(q.build_batch(&st), 1);
    }

    #[test]
    fn external_labels_and_write_relabeling_shape_what_is_sent() {
        let mut st = Store::new(Options::default());
        let c = cfg("    write_relabel_configs:\n      - {source_labels: [__name__], regex: drop_me, action: drop}\n");
        let ext = vec![
            ("device".to_string(), "d1".to_string()),
            ("i".to_string(), "ext".to_string()),
        ];
        let mut q = Queue::new(c, ext, None, 0);
        st.append(&lbl("keep", 1), 1000, 1.0).unwrap();
        st.append(&lbl("drop_me", 1), 1000, 1.0).unwrap();
        assert_eq!(q.build_batch(&st), 1);
        let got = decode(&q);
        assert_eq!(
            got[0].labels,
            vec![
                ("__name__".to_string(), "keep".to_string()),
                ("device".into(), "d1".into()),
                ("i".into(), "1".into()) // the series' own label wins
            ]
        );
        assert_eq!(q.stats.dropped, 1);
    }

    #[test]
    fn cursor_survives_a_restart_and_lagging_series_resume_exactly() {
        let dir = std::env::temp_dir().join(format!("promlet-rwq-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut st = Store::new(Options::default());
        for t in 1..=5 {
            st.append(&lbl("a", 0), t * 1000, 0.0).unwrap();
            st.append(&lbl("b", 0), t * 1000 + 500, 0.0).unwrap();
        }
        let c = cfg("    queue_config: {max_samples_per_send: 6}\n");
        let mut q = Queue::new(c.clone(), vec![], Some(&dir), 0);
        let n = q.build_batch(&st); // a: 1..5 s, b: 1.5 s
        assert_eq!(n, 6);
        q.acknowledge(n);
        q.persist(Instant::now(), true);
        drop(q);
        // As the manager does: a restarted queue is told the store's newest sample.
        let mut q = Queue::new(c, vec![], Some(&dir), st.max_t().unwrap());
        let n = q.build_batch(&st);
        let got = decode(&q);
        assert_eq!(n, 4, "{got:?}");
        assert_eq!(got[0].samples[0].t, 2500);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_late_sample_older_than_the_watermark_is_still_sent_after_a_restart() {
        let dir = std::env::temp_dir().join(format!("promlet-rwlate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut st = Store::new(Options::default());
        st.append(&lbl("collected", 0), 5000, 1.0).unwrap();
        st.append(&lbl("scraped", 0), 3000, 1.0).unwrap();
        let c = cfg("");
        let mut q = Queue::new(c.clone(), vec![], Some(&dir), 0);
        let n = q.build_batch(&st);
        q.acknowledge(n);
        q.persist(Instant::now(), true);
        drop(q);
        // The scrape that started at 4 s finishes after the cursor was written.
        st.append(&lbl("scraped", 0), 4000, 2.0).unwrap();
        let mut q = Queue::new(c, vec![], Some(&dir), st.max_t().unwrap());
        assert_eq!(q.build_batch(&st), 1);
        assert_eq!(decode(&q)[0].samples, vec![Sample { t: 4000, v: 2.0 }]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The store cut the samples a clock that was ahead stamped: after `rewind` the samples
    /// appended at the corrected (older) time are sent, also by a queue restarted from a
    /// cursor written before the rewind (a crash between the store's flush and the cursor's).
    #[test]
    fn samples_after_a_clock_cut_are_sent_not_skipped() {
        let dir = std::env::temp_dir().join(format!("promlet-rwcut-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut st = Store::new(Options::default());
        let ahead = 3 * 86_400_000;
        for t in 1..=5 {
            st.append(&lbl("a", 0), ahead + t * 1000, 1.0).unwrap();
        }
        let c = cfg("");
        let mut q = Queue::new(c.clone(), vec![], Some(&dir), 0);
        let n = q.build_batch(&st);
        assert_eq!(n, 5);
        q.acknowledge(n);
        q.persist(Instant::now(), true);
        st.discard_from(1000);
        // A queue restarted from the old cursor (the agent writes it right after the cut).
        let mut restarted = Queue::new(c, vec![], Some(&dir), st.max_t().unwrap_or(i64::MIN));
        for t in 1..=3 {
            st.append(&lbl("a", 0), t * 1000, 2.0).unwrap();
        }
        // The running queue, told by the agent.
        q.rewind(999);
        for q in [&mut q, &mut restarted] {
            assert_eq!(q.build_batch(&st), 3);
            assert_eq!(decode(q)[0].samples.len(), 3);
            q.acknowledge(3);
            assert_eq!(q.build_batch(&st), 0);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn evicted_unsent_samples_are_counted_lost_and_skipped() {
        let mut st = Store::new(Options {
            retention_bytes: 64 << 10,
            ..Options::default()
        });
        let mut q = Queue::new(cfg(""), vec![], None, 0);
        assert_eq!(q.build_batch(&st), 0);
        let mut t = 0;
        while st.stats().chunks_evicted < 20 {
            t += 1;
            for i in 0..20 {
                st.append(&lbl("m", i), t * 1000, (t * i as i64) as f64)
                    .unwrap();
            }
        }
        let held = st.sample_count();
        let mut sent = 0;
        loop {
            let n = q.build_batch(&st);
            if n == 0 {
                break;
            }
            sent += n as u64;
            q.acknowledge(n);
        }
        assert_eq!(sent, held);
        let appended = st.stats().samples_appended;
        assert_eq!(
            q.stats.lost,
            appended - held,
            "lost is exact when nothing was sent"
        );
    }

    #[test]
    fn the_task_retries_5xx_and_drops_a_batch_on_400_as_prometheus_does() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let mut heads = Vec::new();
            for status in [
                "503 Service Unavailable",
                "400 Bad Request",
                "204 No Content",
            ] {
                let (mut s, _) = listener.accept().unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = s.read(&mut buf).unwrap();
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some((head, _)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .map_or(0, |v| v.parse().unwrap());
                        if got.len() - head.len() - 4 >= len || n == 0 {
                            heads.push(head.to_string());
                            break;
                        }
                    }
                }
                write!(s, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").unwrap();
            }
            heads
        });
        let mut c = cfg(
            "    queue_config: {batch_send_deadline: 10ms, min_backoff: 10ms, max_samples_per_send: 2}\n",
        );
        c.port = port;
        c.url = format!("http://127.0.0.1:{port}/w");
        let mut store = Store::new(Options::default());
        for t in 1..=4 {
            store.append(&lbl("m", 0), t * 1000, 1.0).unwrap();
        }
        let shared = SharedStore::new(store);
        let q = Rc::new(RefCell::new(Queue::new(c, vec![], None, 0)));
        let ex = async_executor::LocalExecutor::new();
        crate::rt::block_on(ex.run(async {
            let _task = ex.spawn(run(q.clone(), shared.clone()));
            let t0 = Instant::now();
            while q.borrow().stats.samples < 2 && t0.elapsed() < Duration::from_secs(10) {
                Timer::after(Duration::from_millis(10)).await;
            }
        }));
        let heads = server.join().unwrap();
        let s = &q.borrow().stats;
        assert_eq!((s.retried, s.failed, s.samples), (2, 2, 2), "{s:?}");
        assert!(heads[0].starts_with("POST /w HTTP/1.1"), "{}", heads[0]);
        assert!(
            heads[0].contains("Content-Encoding: snappy"),
            "{}",
            heads[0]
        );
    }

    #[test]
    fn lost_estimate_counts_the_unsent_part() {
        let ev = crate::tsdb::Evicted {
            samples: 300,
            last_mint: 1000,
            last_maxt: 2000,
            last_count: 100,
        };
        assert_eq!(lost_estimate(ev, 100, 0), 200);
        assert_eq!(lost_estimate(ev, 200, 1500), 50);
        assert_eq!(lost_estimate(ev, 200, 2000), 0);
    }
}
