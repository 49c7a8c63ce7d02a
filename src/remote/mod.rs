//! `remote_write` with store-and-forward: samples leave the device from the TSDB itself.
//!
//! Owns: the `remote_write:` config ([`config`]), the wire format (hand-written protobuf in
//! [`proto`], snappy block compression in [`snappy`]), each queue's durable cursor
//! ([`cursor`]) and sender task ([`queue`]), the [`Manager`] that applies configurations
//! (keeping a queue's cursor while its url and name stay the same) and the
//! `prometheus_remote_storage_*` / `promlet_remote_write_*` self-metrics.
//! Must not touch: what the TSDB holds (read only, through `Store::for_each_series`), other
//! modules' outbound traffic. Runs on the work thread: one task per queue on the agent's
//! `LocalExecutor`, the HTTP exchange through `scrape::client` (no thread, no pool).
//!
//! Unlike Prometheus's WAL-tailing queue (which loses what it had not sent when the WAL is
//! truncated or the process restarts: prometheus#8809, #13539), the backlog here is whatever
//! the ring still holds after each series' position, and the position survives restarts.
//! docs/remote-write.md describes the guarantees and the measured costs.

pub mod config;
pub mod cursor;
pub mod proto;
pub mod queue;
pub mod snappy;

use crate::expo::{MetricSet, MetricType};
use crate::model::Timestamp;
use crate::tsdb::SharedStore;
use async_executor::{LocalExecutor, Task};
use config::RemoteWriteConfig;
use queue::Queue;
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

struct Running {
    queue: Rc<RefCell<Queue>>,
    _task: Task<()>,
}

/// The configured queues and their tasks.
pub struct Manager {
    ex: Rc<LocalExecutor<'static>>,
    store: SharedStore,
    /// Where cursors live (`<storage>/remote_write`); None: in memory only (tests).
    dir: Option<PathBuf>,
    running: Vec<Running>,
}

impl Manager {
    pub fn new(
        ex: Rc<LocalExecutor<'static>>,
        store: SharedStore,
        dir: Option<PathBuf>,
    ) -> Manager {
        Manager {
            ex,
            store,
            dir,
            running: Vec::new(),
        }
    }

    /// Starts or stops queues to match `cfgs`. A queue whose url and name are unchanged keeps
    /// its position and its task; other changes to it apply from its next batch.
    ///
    /// A new queue without a cursor starts after the newest sample the store holds now
    /// (the ring's history is not sent, as Prometheus does not send its WAL's past).
    pub fn apply_config(&mut self, cfgs: &[RemoteWriteConfig], external: &[(String, String)]) {
        let start_after = self.store.0.borrow().max_t().unwrap_or(i64::MIN);
        let mut old = std::mem::take(&mut self.running);
        for cfg in cfgs {
            let same = old
                .iter()
                .position(|r| r.queue.borrow().cfg.identity() == cfg.identity());
            if let Some(i) = same {
                // The task reads its settings from the queue at every batch, so a changed
                // configuration applies in place: no send is cancelled (which could repeat a
                // batch the receiver already took).
                let r = old.swap_remove(i);
                {
                    let mut q = r.queue.borrow_mut();
                    if *q.cfg != *cfg || q.external() != external {
                        q.reconfigure(cfg.clone(), external.to_vec());
                    }
                }
                self.running.push(r);
                continue;
            }
            let queue = Rc::new(RefCell::new(Queue::new(
                cfg.clone(),
                external.to_vec(),
                self.dir.as_deref(),
                start_after,
            )));
            crate::log::info(&format!("remote_write: starting queue for {}", cfg.url));
            self.spawn(queue);
        }
        for r in old {
            let mut q = r.queue.borrow_mut();
            q.persist(Instant::now(), true);
            crate::log::info(&format!("remote_write: stopped queue for {}", q.cfg.url));
        }
    }

    fn spawn(&mut self, queue: Rc<RefCell<Queue>>) {
        let task = crate::task::spawn(&self.ex, queue::run(queue.clone(), self.store.clone()));
        self.running.push(Running { queue, _task: task });
    }

    /// Writes every cursor now (shutdown).
    pub fn persist_all(&self) {
        for r in &self.running {
            r.queue.borrow_mut().persist(Instant::now(), true);
        }
    }

    /// The TSDB discarded every sample after `t` (the wall clock was behind them): every
    /// queue's position moves back to `t` at most, so the samples appended at the corrected
    /// time are sent, and the cursors are written now.
    pub fn rewind(&mut self, t: Timestamp, now: Instant) {
        for r in &self.running {
            let mut q = r.queue.borrow_mut();
            q.rewind(t);
            q.persist(now, true);
        }
    }

    /// The queues' self-metrics, with Prometheus's names and `remote_name`/`url` labels.
    pub fn write_metrics(&self, set: &mut MetricSet) {
        if self.running.is_empty() {
            return;
        }
        let c = MetricType::Counter;
        let g = MetricType::Gauge;
        type Get = fn(&queue::QueueStats) -> f64;
        let rows: [(&str, &str, MetricType, Get); 11] = [
            ("prometheus_remote_storage_samples_total", "Samples sent to remote storage (acknowledged).", c, |s| s.samples as f64),
            ("prometheus_remote_storage_samples_failed_total", "Samples in batches the remote storage refused for good (non-retryable 4xx).", c, |s| s.failed as f64),
            ("prometheus_remote_storage_samples_retried_total", "Samples in batches sent again after a retryable failure.", c, |s| s.retried as f64),
            ("prometheus_remote_storage_samples_dropped_total", "Samples dropped by write_relabel_configs.", c, |s| s.dropped as f64),
            ("prometheus_remote_storage_bytes_total", "Compressed request body bytes acknowledged by remote storage.", c, |s| s.bytes as f64),
            ("prometheus_remote_storage_queue_highest_sent_timestamp_seconds", "Newest sample timestamp acknowledged by remote storage.", g, |s| if s.highest_sent_ms == i64::MIN { 0.0 } else { s.highest_sent_ms as f64 / 1000.0 }),
            ("prometheus_remote_storage_samples_pending", "Samples held in the TSDB and not yet sent (same as promlet_remote_write_backlog_samples).", g, |s| s.backlog as f64),
            ("promlet_remote_write_backlog_samples", "Samples held in the TSDB and not yet sent, at the last batch.", g, |s| s.backlog as f64),
            ("promlet_remote_write_lost_samples_total", "Samples evicted from the TSDB ring before they were sent.", c, |s| s.lost as f64),
            ("promlet_remote_write_cursor_writes_total", "Cursor file writes.", c, |s| s.cursor_writes as f64),
            ("promlet_remote_write_cursor_write_errors_total", "Cursor file writes that failed.", c, |s| s.cursor_write_errors as f64),
        ];
        for (name, help, typ, get) in rows {
            let f = set.family_static(name, help, typ);
            for r in &self.running {
                let q = r.queue.borrow();
                let rn = queue_name(&q.cfg);
                set.sample(
                    f,
                    &[("remote_name", &rn), ("url", &q.cfg.url)],
                    get(&q.stats),
                );
            }
        }
        let newest = self.store.0.borrow().max_t();
        set.single_static(
            "prometheus_remote_storage_highest_timestamp_in_seconds",
            "Newest sample timestamp in the TSDB (what remote storage could have).",
            g,
            newest.map_or(0.0, |t| t as f64 / 1000.0),
        );
    }
}

/// Prometheus's `remote_name` label: the configured name, else a hash of the config.
fn queue_name(cfg: &RemoteWriteConfig) -> String {
    if cfg.name.is_empty() {
        format!("{:06x}", queue::queue_id(cfg) & 0xff_ffff)
    } else {
        cfg.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::{Options, Store};

    fn cfgs(yaml: &str) -> Vec<RemoteWriteConfig> {
        crate::config::Config::parse(yaml, "t")
            .unwrap()
            .remote_write
    }

    #[test]
    fn reload_keeps_the_queue_and_its_position_while_url_and_name_stay() {
        let ex = Rc::new(LocalExecutor::new());
        let store = SharedStore::new(Store::new(Options::default()));
        let mut m = Manager::new(ex, store, None);
        let a = cfgs("remote_write: [{url: 'http://127.0.0.1:1/w', name: a}]");
        m.apply_config(&a, &[]);
        let first = m.running[0].queue.clone();
        // Unchanged: the same queue and task.
        m.apply_config(&a, &[]);
        assert!(Rc::ptr_eq(&first, &m.running[0].queue));
        // Same identity, other settings and external labels: the same queue state, new config.
        let a2 = cfgs(
            "remote_write: [{url: 'http://127.0.0.1:1/w', name: a, queue_config: {max_samples_per_send: 7}}]",
        );
        m.apply_config(&a2, &[("site".into(), "x".into())]);
        assert!(Rc::ptr_eq(&first, &m.running[0].queue));
        assert_eq!(first.borrow().cfg.queue.max_samples_per_send, 7);
        assert_eq!(first.borrow().external(), &[("site".into(), "x".into())]);
        // Another name is another queue; the old one is gone.
        let b = cfgs("remote_write: [{url: 'http://127.0.0.1:1/w', name: b}]");
        m.apply_config(&b, &[]);
        assert_eq!(m.running.len(), 1);
        assert!(!Rc::ptr_eq(&first, &m.running[0].queue));
        m.apply_config(&[], &[]);
        assert!(m.running.is_empty());
    }

    #[test]
    fn metrics_use_prometheus_names_with_remote_name_and_url() {
        let ex = Rc::new(LocalExecutor::new());
        let store = SharedStore::new(Store::new(Options::default()));
        let mut m = Manager::new(ex, store, None);
        m.apply_config(
            &cfgs("remote_write: [{url: 'http://127.0.0.1:1/w', name: up}]"),
            &[],
        );
        let mut set = MetricSet::new();
        m.write_metrics(&mut set);
        let mut text = Vec::new();
        crate::expo::encode_text(&set, &mut text);
        let text = String::from_utf8(text).unwrap();
        for want in [
            "prometheus_remote_storage_samples_total{remote_name=\"up\",url=\"http://127.0.0.1:1/w\"} 0",
            "prometheus_remote_storage_samples_failed_total{",
            "prometheus_remote_storage_samples_retried_total{",
            "prometheus_remote_storage_bytes_total{",
            "prometheus_remote_storage_queue_highest_sent_timestamp_seconds{",
            "promlet_remote_write_backlog_samples{",
            "promlet_remote_write_lost_samples_total{",
            "prometheus_remote_storage_highest_timestamp_in_seconds 0",
        ] {
            assert!(text.contains(want), "{want} missing:\n{text}");
        }
    }
}
