//! Alert notification: the Alertmanager queue and its delivery.
//!
//! Owns: [`OutgoingAlert`] (what rule evaluation hands over, shaped like Alertmanager's v2
//! `postableAlert`), its JSON, the `alerting:` config section ([`config`]), the persisted
//! bounded queue ([`queue`]), outbound HTTP as tasks on the work thread ([`sender`]) and the
//! [`Notifier`] that ties them together on the work thread ([`notifier`]).
//! Must not touch: rule evaluation (alerts arrive through [`Notifier::send`]), the TSDB, the
//! clock (time is passed in as ms since the epoch).
//!
//! Delivery differs from Prometheus's notifier in one deliberate way: Prometheus drops a batch
//! that no Alertmanager accepted; promlet keeps it (in memory and on disk) and retries with
//! exponential backoff, because a device whose uplink is down is exactly when alerts matter.
//! Alerts with the same label set replace each other in the queue (the newest state wins, as
//! Alertmanager would merge them anyway), so an outage of any length costs at most one queue
//! entry per distinct alert; the bound counts distinct alerts, and overflow drops the oldest
//! and is counted.

pub mod config;
pub mod dispatch;
pub mod notifier;
pub mod queue;
pub mod route;
pub mod sender;
pub mod silence;

pub use notifier::{Notifier, NotifierMetrics};

use crate::config::Config;
use crate::expo::{MetricSet, MetricType};
use crate::http::json::Json;
use crate::model::Labels;
use async_executor::LocalExecutor;
use dispatch::Dispatcher;
use sender::SharedSender;
use silence::SilenceStore;
use std::path::Path;
use std::rc::Rc;

/// Everything notification needs on the work thread: the Alertmanager notifier and the local
/// dispatcher, sharing one sender whose requests run on `ex`. State lives in `<storage>/notify/`.
pub struct Hub {
    pub notifier: Notifier,
    pub dispatcher: Dispatcher,
    sender: Rc<SharedSender>,
}

impl Hub {
    /// Opens the queue and silences under `storage/notify`; deliveries become tasks on `ex`.
    pub fn open(
        cfg: &Config,
        storage: &Path,
        external_url: String,
        ex: Rc<LocalExecutor<'static>>,
    ) -> std::io::Result<Hub> {
        let dir = storage.join("notify");
        let sender = Rc::new(SharedSender::on(ex));
        let external = Labels::from_pairs(cfg.global.external_labels.iter().cloned());
        let notifier = Notifier::new(
            &cfg.alerting,
            external,
            Some(&dir),
            notifier::DEFAULT_QUEUE_CAPACITY,
            sender.clone(),
        )?;
        let dispatcher = Dispatcher::new(
            cfg.notify.clone(),
            external_url,
            dir.clone(),
            sender.clone(),
            SilenceStore::open(Some(dir)),
        );
        Ok(Hub {
            notifier,
            dispatcher,
            sender,
        })
    }

    /// Takes a reloaded configuration; queued alerts, groups and silences stay.
    pub fn apply_config(&mut self, cfg: &Config) {
        self.notifier.apply_config(&cfg.alerting);
        self.dispatcher.apply_config(cfg.notify.clone());
    }

    /// Alerts from rule evaluation: to Alertmanager and to the local route tree.
    pub fn send(&mut self, alerts: &[OutgoingAlert], wall_ms: i64) {
        self.notifier.send(alerts);
        if self.dispatcher.is_enabled() {
            self.dispatcher.ingest(alerts, wall_ms);
        }
    }

    /// The wall clock stepped by `delta` ms (the local dispatcher schedules on wall time; the
    /// Alertmanager queue runs on the monotonic clock and needs nothing).
    pub fn shift_time(&mut self, delta: i64) {
        self.dispatcher.shift_time(delta);
    }

    /// Runs both on their deadlines; returns how long until either needs polling again.
    pub fn poll(&mut self, mono_ms: i64, wall_ms: i64) -> Option<std::time::Duration> {
        let a = self.notifier.poll(mono_ms).map(|t| t - mono_ms);
        let b = self.dispatcher.poll(wall_ms).map(|t| t - wall_ms);
        let ms = match (a, b) {
            (Some(a), Some(b)) => a.min(b),
            (x, y) => x.or(y)?,
        };
        Some(std::time::Duration::from_millis(ms.max(0) as u64))
    }

    /// Completes when an outbound POST finishes, so the caller polls at once (see
    /// [`SharedSender::finished`]).
    pub fn delivery_finished(&self) -> impl std::future::Future<Output = ()> + 'static {
        self.sender.finished()
    }

    /// Self-metrics (see [`notifier`] for the names and why they are promlet_ ones).
    pub fn write_metrics(&self, set: &mut MetricSet) {
        let m = self.notifier.metrics();
        let d = self.dispatcher.metrics();
        let c = MetricType::Counter;
        let g = MetricType::Gauge;
        let rows = [
            (
                "promlet_notifications_sent_total",
                "Alerts an Alertmanager accepted.",
                c,
                m.sent,
            ),
            (
                "promlet_notifications_errors_total",
                "Alerts in POSTs to Alertmanager that failed, per target.",
                c,
                m.errors,
            ),
            (
                "promlet_notifications_dropped_total",
                "Alerts dropped from a full Alertmanager queue.",
                c,
                m.dropped,
            ),
            (
                "promlet_notifications_queue_length",
                "Alerts waiting for an Alertmanager.",
                g,
                m.queue_length as u64,
            ),
            (
                "promlet_notifications_queue_capacity",
                "Capacity of the Alertmanager queue (distinct alerts).",
                g,
                m.queue_capacity as u64,
            ),
            (
                "promlet_notifications_alertmanagers_discovered",
                "Alertmanager targets configured.",
                g,
                m.alertmanagers as u64,
            ),
            (
                "promlet_local_notifications_total",
                "Notifications to local receivers (per integration).",
                c,
                d.notifications,
            ),
            (
                "promlet_local_notifications_failed_total",
                "Local notifications that failed (webhook error, command failure or timeout).",
                c,
                d.failed,
            ),
            (
                "promlet_local_alerts_silenced_total",
                "Alerts muted by a silence at a flush.",
                c,
                d.silenced,
            ),
            (
                "promlet_local_alerts_inhibited_total",
                "Alerts muted by an inhibit rule at a flush.",
                c,
                d.inhibited,
            ),
            (
                "promlet_local_alert_groups",
                "Aggregation groups of the local route tree.",
                g,
                d.groups as u64,
            ),
        ];
        for (name, help, typ, v) in rows {
            set.single_static(name, help, typ, v as f64);
        }
    }
}

/// One alert handed to delivery. Times are ms since the epoch; `ends_at` 0 means unset.
/// Rule evaluation produces these (`rules` re-exports this type).
#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingAlert {
    pub labels: Labels,
    pub annotations: Labels,
    pub starts_at: i64,
    pub ends_at: i64,
    pub generator_url: String,
}

/// Renders alerts as the JSON array that Alertmanager's `POST /api/v2/alerts` takes.
pub fn encode_v2<'a>(alerts: impl IntoIterator<Item = &'a OutgoingAlert>) -> Vec<u8> {
    let mut j = Json::new();
    j.begin_array();
    for a in alerts {
        j.begin_object();
        j.key("labels");
        label_object(&mut j, &a.labels);
        j.key("annotations");
        label_object(&mut j, &a.annotations);
        if a.starts_at != 0 {
            j.key("startsAt").string(&rfc3339(a.starts_at));
        }
        if a.ends_at != 0 {
            j.key("endsAt").string(&rfc3339(a.ends_at));
        }
        j.key("generatorURL").string(&a.generator_url);
        j.end_object();
    }
    j.end_array();
    j.into_bytes()
}

fn label_object(j: &mut Json, l: &Labels) {
    j.begin_object();
    for (n, v) in l.iter() {
        j.key(n).string(v);
    }
    j.end_object();
}

/// RFC 3339 in UTC with milliseconds, as Alertmanager accepts it.
pub fn rfc3339(ms: i64) -> String {
    crate::log::format_rfc3339_ms(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_795_309_323_456), "2026-11-22T01:02:03.456Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn v2_json_has_alertmanagers_field_names_and_omits_unset_end() {
        let a = OutgoingAlert {
            labels: Labels::from_pairs([("alertname", "Up"), ("job", "a\"b")]),
            annotations: Labels::from_pairs([("summary", "x")]),
            starts_at: 1000,
            ends_at: 0,
            generator_url: "http://h/graph".into(),
        };
        let s = String::from_utf8(encode_v2([&a])).unwrap();
        assert_eq!(
            s,
            r#"[{"labels":{"alertname":"Up","job":"a\"b"},"annotations":{"summary":"x"},"startsAt":"1970-01-01T00:00:01.000Z","generatorURL":"http://h/graph"}]"#
        );
    }
}
