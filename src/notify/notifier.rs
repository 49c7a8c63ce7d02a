//! The Alertmanager notifier as the work thread sees it: `send` alerts in, `poll(now)` out.
//!
//! Owns: adding external labels, batching the queue head into one POST to every configured
//! Alertmanager, acknowledging a batch once any Alertmanager accepted it (Prometheus's rule),
//! exponential backoff while none does, and the self-metrics. Must not touch: rule state
//! (resending every `--rules.alert.resend-delay` is the rule group's job, as in Prometheus), the
//! clock: `now` is monotonic ms passed in by the caller.
//!
//! Self-metrics use promlet_ names because their meaning differs from Prometheus's
//! `prometheus_notifications_*`: `promlet_notifications_sent_total` counts alerts that an
//! Alertmanager accepted (Prometheus counts attempts), `..._errors_total` counts alerts in
//! failed POSTs (per target), `..._dropped_total` alerts pushed out of a full queue, plus
//! `..._queue_length`, `..._queue_capacity` and `promlet_notifications_alertmanagers`.

use super::config::AlertingConfig;
use super::queue::Queue;
use super::sender::{basic_authorization, SharedSender, Target};
use super::{encode_v2, OutgoingAlert};
use crate::model::Labels;
use std::path::Path;
use std::rc::Rc;

/// Alerts per POST, as Prometheus's notifier (`maxBatchSize`).
pub const BATCH_SIZE: usize = 256;
/// Queue bound in distinct alerts; Prometheus's `--alertmanager.notification-queue-capacity`.
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
/// First retry delay after a batch no Alertmanager accepted; doubles up to [`MAX_BACKOFF_MS`].
pub const MIN_BACKOFF_MS: i64 = 1000;
pub const MAX_BACKOFF_MS: i64 = 60_000;
/// How soon to look for the outcome of a POST in flight when nothing wakes the caller earlier
/// (the agent's loop also wakes when a POST finishes: `Hub::delivery_finished`).
const IN_FLIGHT_POLL_MS: i64 = 1000;

/// Counters and gauges for /metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NotifierMetrics {
    pub sent: u64,
    pub errors: u64,
    pub dropped: u64,
    pub relabel_dropped: u64,
    pub queue_length: usize,
    pub queue_capacity: usize,
    pub alertmanagers: usize,
}

struct InFlight {
    job: u64,
    seqs: Vec<u64>,
}

/// See the module doc.
pub struct Notifier {
    queue: Queue,
    targets: Vec<Target>,
    relabel: Vec<crate::relabel::RelabelConfig>,
    /// Alerts dropped by `alert_relabel_configs`.
    relabel_dropped: u64,
    external_labels: Labels,
    sender: Rc<SharedSender>,
    in_flight: Option<InFlight>,
    backoff_ms: i64,
    retry_at: i64,
    sent: u64,
    errors: u64,
    /// Why the last batch failed, for the log (logged when it changes).
    last_error: String,
}

impl Notifier {
    /// A notifier whose queue lives in `dir` (None: memory only).
    pub fn new(
        cfg: &AlertingConfig,
        external_labels: Labels,
        dir: Option<&Path>,
        capacity: usize,
        sender: Rc<SharedSender>,
    ) -> std::io::Result<Notifier> {
        let queue = match dir {
            Some(d) => Queue::open(d, capacity)?,
            None => Queue::in_memory(capacity),
        };
        if queue.corrupt_records > 0 {
            crate::log::warn(&format!(
                "alert queue: skipped {} corrupt record(s)",
                queue.corrupt_records
            ));
        }
        let mut n = Notifier {
            queue,
            targets: Vec::new(),
            relabel: Vec::new(),
            relabel_dropped: 0,
            external_labels,
            sender,
            in_flight: None,
            backoff_ms: MIN_BACKOFF_MS,
            retry_at: i64::MIN,
            sent: 0,
            errors: 0,
            last_error: String::new(),
        };
        n.apply_config(cfg);
        Ok(n)
    }

    /// Takes a new `alerting:` section (reload). Queued alerts stay queued.
    pub fn apply_config(&mut self, cfg: &AlertingConfig) {
        self.relabel = cfg.alert_relabel_configs.clone();
        self.targets = cfg
            .alertmanagers
            .iter()
            .flat_map(|am| {
                let auth = am
                    .basic_auth
                    .as_ref()
                    .map(|b| basic_authorization(&b.username, &b.password));
                am.urls().map(move |url| Target {
                    url,
                    authorization: auth.clone(),
                    timeout: am.timeout,
                })
            })
            .collect();
    }

    /// Queues alerts for every Alertmanager (nothing happens without one, as in Prometheus).
    /// External labels are added where the alert has no label of that name, then
    /// `alert_relabel_configs` apply (an alert they drop is counted, not sent).
    pub fn send(&mut self, alerts: &[OutgoingAlert]) {
        if self.targets.is_empty() {
            return;
        }
        for a in alerts {
            let mut a = a.clone();
            for (n, v) in self.external_labels.iter() {
                if a.labels.get(n).is_none() {
                    a.labels.set(n.to_string(), v.to_string());
                }
            }
            if !crate::relabel::process(&mut a.labels, &self.relabel) || a.labels.is_empty() {
                self.relabel_dropped += 1;
                continue;
            }
            self.queue.push(a);
        }
    }

    /// Collects finished POSTs and starts the next one; returns when to be polled again
    /// (None: only after the next [`Notifier::send`]).
    pub fn poll(&mut self, now: i64) -> Option<i64> {
        self.collect_outcomes(now);
        if self.in_flight.is_none() && !self.queue.is_empty() && !self.targets.is_empty() {
            if now < self.retry_at {
                return Some(self.retry_at);
            }
            self.start_batch(now);
        }
        if self.in_flight.is_some() {
            return Some(now + IN_FLIGHT_POLL_MS);
        }
        (!self.queue.is_empty() && !self.targets.is_empty()).then_some(self.retry_at.max(now))
    }

    fn collect_outcomes(&mut self, now: i64) {
        let Some(f) = &self.in_flight else { return };
        let Some(out) = self.sender.take(f.job) else {
            return;
        };
        let Some(f) = self.in_flight.take() else {
            return;
        };
        let n = f.seqs.len() as u64;
        self.errors += n * out.errors.len() as u64;
        if out.delivered > 0 {
            self.queue.ack(&f.seqs);
            self.sent += n;
            self.backoff_ms = MIN_BACKOFF_MS;
            self.retry_at = i64::MIN;
            if !self.last_error.is_empty() {
                crate::log::info("alertmanager delivery resumed");
                self.last_error.clear();
            }
        } else {
            self.retry_at = now + self.backoff_ms;
            self.backoff_ms = (self.backoff_ms * 2).min(MAX_BACKOFF_MS);
        }
        let why = out.errors.join("; ");
        if !why.is_empty() && why != self.last_error {
            crate::log::warn(&format!(
                "alert delivery failed ({} queued): {why}",
                self.queue.len()
            ));
            self.last_error = why;
        }
    }

    fn start_batch(&mut self, now: i64) {
        let seqs: Vec<u64> = self.queue.head(BATCH_SIZE).map(|(s, _)| s).collect();
        let body = encode_v2(self.queue.head(BATCH_SIZE).map(|(_, a)| a));
        match self
            .sender
            .submit(self.targets.clone(), "application/json", body)
        {
            Some(job) => self.in_flight = Some(InFlight { job, seqs }),
            None => self.retry_at = now + self.backoff_ms,
        }
    }

    pub fn metrics(&self) -> NotifierMetrics {
        NotifierMetrics {
            sent: self.sent,
            errors: self.errors,
            dropped: self.queue.dropped,
            relabel_dropped: self.relabel_dropped,
            queue_length: self.queue.len(),
            queue_capacity: self.queue.capacity(),
            alertmanagers: self.targets.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::config::AlertmanagerConfig;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::{Duration, Instant};

    fn alert(name: &str) -> OutgoingAlert {
        OutgoingAlert {
            labels: Labels::from_pairs([("alertname", name)]),
            annotations: Labels::new(),
            starts_at: 1000,
            ends_at: 0,
            generator_url: String::new(),
        }
    }

    fn cfg(port: u16) -> AlertingConfig {
        AlertingConfig {
            alertmanagers: vec![AlertmanagerConfig {
                targets: vec![format!("127.0.0.1:{port}")],
                timeout: Duration::from_secs(2),
                ..Default::default()
            }],
            alert_relabel_configs: Vec::new(),
        }
    }

    /// Polls with real elapsed time until `done` or 5 s.
    fn drive(n: &mut Notifier, start: Instant, done: impl Fn(&Notifier) -> bool) {
        while !done(n) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{:?}",
                n.metrics()
            );
            n.poll(start.elapsed().as_millis() as i64);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn unreachable_alertmanager_backs_off_exponentially_and_keeps_the_alerts() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut n = Notifier::new(&cfg(port), Labels::new(), None, 10, Rc::default()).unwrap();
        n.send(&[alert("a"), alert("b")]);
        let start = Instant::now();
        drive(&mut n, start, |n| n.metrics().errors >= 2);
        let m = n.metrics();
        assert_eq!((m.sent, m.queue_length), (0, 2));
        // The next attempt waits the backoff, not the in-flight poll interval.
        let now = start.elapsed().as_millis() as i64;
        let next = n.poll(now).unwrap();
        assert!(next - now > 500, "retry in {} ms", next - now);
    }

    #[test]
    fn accepted_batch_is_acked_and_carries_external_labels() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = vec![0; 8192];
            let mut got = Vec::new();
            while !String::from_utf8_lossy(&got).contains("}]") {
                let k = c.read(&mut buf).unwrap();
                if k == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..k]);
            }
            c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            String::from_utf8(got).unwrap()
        });
        let ext = Labels::from_pairs([("site", "pi"), ("alertname", "ignored")]);
        let mut n = Notifier::new(&cfg(port), ext, None, 10, Rc::default()).unwrap();
        n.send(&[alert("a")]);
        drive(&mut n, Instant::now(), |n| n.metrics().sent == 1);
        let req = server.join().unwrap();
        assert!(req.starts_with("POST /api/v2/alerts HTTP/1.1"), "{req}");
        assert!(
            req.contains(r#"{"labels":{"alertname":"a","site":"pi"}"#),
            "{req}"
        );
        assert_eq!(n.metrics().queue_length, 0);
        assert_eq!(n.poll(0), None);
    }

    #[test]
    fn alert_relabel_configs_rewrite_and_drop_after_external_labels() {
        let mut c = cfg(1);
        c.alert_relabel_configs = crate::relabel::parse_list(
            "- {source_labels: [alertname], regex: Noise, action: drop}\n\
             - {source_labels: [site], target_label: location, replacement: 'at-$1'}\n",
            "t.yml",
        )
        .unwrap();
        let ext = Labels::from_pairs([("site", "pi")]);
        let mut n = Notifier::new(&c, ext, None, 10, Rc::default()).unwrap();
        n.send(&[alert("Noise"), alert("Real")]);
        let m = n.metrics();
        assert_eq!((m.relabel_dropped, m.queue_length), (1, 1));
        let (_, a) = n.queue.head(1).next().unwrap();
        assert_eq!(a.labels.get("location"), Some("at-pi"));
    }

    #[test]
    fn without_alertmanagers_nothing_is_queued_or_started() {
        let mut n = Notifier::new(
            &AlertingConfig::default(),
            Labels::new(),
            None,
            10,
            Rc::default(),
        )
        .unwrap();
        n.send(&[alert("a")]);
        assert_eq!(n.poll(0), None);
        assert_eq!(n.sender.jobs_submitted(), 0);
        assert_eq!(n.metrics().queue_capacity, 10);
    }
}
