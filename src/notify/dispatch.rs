//! Local alert dispatch: aggregation groups, dedup, inhibition and the receivers, as
//! Alertmanager's dispatcher and notification pipeline do them.
//!
//! Owns: [`Dispatcher`] (groups keyed by route and group labels, each flushed at `group_wait`,
//! then every `group_interval`, re-notifying after `repeat_interval`), the webhook payload
//! (version 4), running `exec` receivers (payload on stdin from an unlinked temp file, so a
//! command that does not read never blocks us; reaped by polling, killed at its timeout), and
//! `log` receivers. Must not touch: the clock (`now` is wall-clock ms passed in, the same clock
//! as the alerts' startsAt/endsAt), threads (webhooks go through the shared sender).
//!
//! Dedup follows Alertmanager's notification log per group and receiver: notify when a firing
//! alert is new since the last notification, when everything that was firing is resolved,
//! when a resolved alert is new (receivers with `send_resolved`), or when `repeat_interval`
//! has passed. Resolved alerts leave their group after the flush that reported them.

use super::route::{matches_all, Receiver, RouteConfig};
use super::sender::{SharedSender, Target};
use super::silence::SilenceStore;
use super::{rfc3339, OutgoingAlert};
use crate::http::json::Json;
use crate::model::Labels;
use crate::vecmap::VecMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

/// Alertmanager's label-set fingerprint: FNV-1a 64 over `name 0xff value 0xff`, sorted names.
pub fn fingerprint(l: &Labels) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut add = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    for (n, v) in l.iter() {
        n.bytes().for_each(&mut add);
        add(0xff);
        v.bytes().for_each(&mut add);
        add(0xff);
    }
    h
}

#[derive(Clone, Debug, Default)]
struct SentLog {
    /// Fingerprints, ascending.
    firing: Vec<u64>,
    resolved: Vec<u64>,
    at: i64,
}

/// Whether every element of `a` is in `b` (both ascending).
fn is_subset(a: &[u64], b: &[u64]) -> bool {
    a.iter().all(|x| b.binary_search(x).is_ok())
}

struct Group {
    route: usize,
    labels: Labels,
    alerts: VecMap<u64, OutgoingAlert>,
    next_flush: i64,
    flushed: bool,
    log: Option<SentLog>,
}

/// A group's identity: its route and group labels.
type GroupKey = (usize, Labels);

/// What a flush's notifications take back when one of them fails. Alertmanager logs a
/// notification only once it succeeded; likewise the group goes back to its log from before the
/// flush and gets back the resolved alerts the flush let go (re-creating the group if they were
/// its last), so its next flush notifies again, resolutions included.
struct Undo {
    key: GroupKey,
    log_before: Option<SentLog>,
    resolved: Vec<(u64, OutgoingAlert)>,
    /// When a re-created group flushes.
    next_flush: i64,
}

struct RunningExec {
    undo: Rc<Undo>,
    child: ExecChild,
    deadline: i64,
    what: String,
}

/// An exec receiver's process, started with posix_spawnp(3) as std's `Command` would (PATH
/// search, stdin from the payload, stdout to /dev/null, stderr inherited, SIGPIPE back to its
/// default): `Command` links its own environment map and fork/exec paths (~10 KB) for this one
/// call.
struct ExecChild {
    pid: libc::pid_t,
}

impl ExecChild {
    fn spawn(command: &[String], stdin: &std::fs::File) -> std::io::Result<ExecChild> {
        use std::ffi::CString;
        use std::os::fd::AsRawFd;
        let args = command
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "nul byte in command")
            })?;
        let Some(program) = args.first() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "empty command",
            ));
        };
        let mut argv: Vec<*mut libc::c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
        argv.push(std::ptr::null_mut());
        // A copy of the environment taken under std's lock: reading `environ` directly would
        // race with a `set_var` on another thread (tests do that), as std's Command avoids too.
        let env: Vec<CString> = std::env::vars_os()
            .filter_map(|(k, v)| {
                let mut kv = k.into_encoded_bytes();
                kv.push(b'=');
                kv.extend_from_slice(v.as_encoded_bytes());
                CString::new(kv).ok()
            })
            .collect();
        let mut envp: Vec<*mut libc::c_char> = env.iter().map(|e| e.as_ptr().cast_mut()).collect();
        envp.push(std::ptr::null_mut());
        let mut pid: libc::pid_t = 0;
        // SAFETY: the file actions and attributes are initialised before use and destroyed
        // after; argv and envp are NULL-terminated arrays of C strings that outlive the call.
        let r = unsafe {
            let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
            let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
            libc::posix_spawn_file_actions_init(&mut actions);
            libc::posix_spawnattr_init(&mut attr);
            libc::posix_spawn_file_actions_adddup2(&mut actions, stdin.as_raw_fd(), 0);
            libc::posix_spawn_file_actions_addopen(
                &mut actions,
                1,
                c"/dev/null".as_ptr(),
                libc::O_WRONLY,
                0,
            );
            let mut default: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut default);
            libc::sigaddset(&mut default, libc::SIGPIPE);
            libc::posix_spawnattr_setsigdefault(&mut attr, &default);
            let mut mask: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut mask);
            libc::posix_spawnattr_setsigmask(&mut attr, &mask);
            libc::posix_spawnattr_setflags(
                &mut attr,
                (libc::POSIX_SPAWN_SETSIGDEF | libc::POSIX_SPAWN_SETSIGMASK) as libc::c_short,
            );
            let r = libc::posix_spawnp(
                &mut pid,
                program.as_ptr(),
                &actions,
                &attr,
                argv.as_ptr(),
                envp.as_ptr(),
            );
            libc::posix_spawnattr_destroy(&mut attr);
            libc::posix_spawn_file_actions_destroy(&mut actions);
            r
        };
        if r != 0 {
            return Err(std::io::Error::from_raw_os_error(r));
        }
        Ok(ExecChild { pid })
    }

    /// The exit status once the process ended, without blocking.
    fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.wait_with(libc::WNOHANG)
    }

    fn wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.wait_with(0)
    }

    fn wait_with(
        &mut self,
        flags: libc::c_int,
    ) -> std::io::Result<Option<std::process::ExitStatus>> {
        use std::os::unix::process::ExitStatusExt;
        let mut status: libc::c_int = 0;
        loop {
            // SAFETY: waits for our own child, writing its status into a local.
            let r = unsafe { libc::waitpid(self.pid, &mut status, flags) };
            match r {
                0 => return Ok(None),
                r if r > 0 => return Ok(Some(std::process::ExitStatus::from_raw(status))),
                _ => {
                    let e = std::io::Error::last_os_error();
                    if e.kind() != std::io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
    }

    fn kill(&mut self) -> std::io::Result<()> {
        // SAFETY: signals our own child, which has not been reaped yet (kill comes before wait).
        if unsafe { libc::kill(self.pid, libc::SIGKILL) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Counters for /metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DispatchMetrics {
    pub notifications: u64,
    pub failed: u64,
    pub inhibited: u64,
    pub silenced: u64,
    pub groups: usize,
}

/// See the module doc.
pub struct Dispatcher {
    cfg: RouteConfig,
    groups: VecMap<(usize, Labels), Group>,
    execs: Vec<RunningExec>,
    webhooks_in_flight: Vec<(u64, String, Rc<Undo>)>,
    sender: Rc<SharedSender>,
    silences: SilenceStore,
    external_url: String,
    temp_dir: PathBuf,
    metrics: DispatchMetrics,
}

/// How often to look at running commands and webhook outcomes.
const CHILD_POLL_MS: i64 = 100;

impl Dispatcher {
    /// `temp_dir` holds exec payloads for an instant (they are unlinked once opened).
    pub fn new(
        cfg: RouteConfig,
        external_url: String,
        temp_dir: PathBuf,
        sender: Rc<SharedSender>,
        silences: SilenceStore,
    ) -> Dispatcher {
        Dispatcher {
            cfg,
            groups: VecMap::new(),
            execs: Vec::new(),
            webhooks_in_flight: Vec::new(),
            sender,
            silences,
            external_url,
            temp_dir,
            metrics: DispatchMetrics::default(),
        }
    }

    /// Takes a reloaded tree; groups of routes that no longer exist are dropped.
    pub fn apply_config(&mut self, cfg: RouteConfig) {
        let n = cfg.routes.len();
        self.cfg = cfg;
        self.groups.retain(|(r, _), _| *r < n);
    }

    /// The silences applied to routing (the agent serves `/api/v2/silences` from them).
    pub fn silences_mut(&mut self) -> &mut SilenceStore {
        &mut self.silences
    }

    /// The wall clock stepped by `delta` ms: group schedules and logs move with it, so a
    /// clock set back by days does not hold every group's next notification for days (nor
    /// does one set forward flush them all at once). Silences keep their absolute times.
    pub fn shift_time(&mut self, delta: i64) {
        let shift = |t: &mut i64| {
            if *t != 0 {
                *t = t.saturating_add(delta);
            }
        };
        for g in self.groups.values_mut() {
            shift(&mut g.next_flush);
            if let Some(log) = g.log.as_mut() {
                shift(&mut log.at);
            }
            for a in g.alerts.values_mut() {
                shift(&mut a.starts_at);
                shift(&mut a.ends_at);
            }
        }
        for e in &mut self.execs {
            shift(&mut e.deadline);
        }
    }

    pub fn is_enabled(&self) -> bool {
        !self.cfg.routes.is_empty()
    }

    pub fn metrics(&self) -> DispatchMetrics {
        DispatchMetrics {
            groups: self.groups.len(),
            ..self.metrics
        }
    }

    /// Routes alerts into their groups.
    pub fn ingest(&mut self, alerts: &[OutgoingAlert], now: i64) {
        for a in alerts {
            let fp = fingerprint(&a.labels);
            for r in self.cfg.matching(&a.labels) {
                let route = &self.cfg.routes[r];
                let labels = match &route.group_by {
                    None => a.labels.clone(),
                    Some(names) => Labels::from_pairs(
                        names
                            .iter()
                            .filter_map(|n| a.labels.get(n).map(|v| (n.clone(), v.to_string()))),
                    ),
                };
                let wait = route.group_wait.as_millis() as i64;
                let g = self
                    .groups
                    .get_or_insert_with((r, labels.clone()), || Group {
                        route: r,
                        labels,
                        alerts: VecMap::new(),
                        next_flush: now + wait,
                        flushed: false,
                        log: None,
                    });
                // An alert that started long enough ago needs no group_wait (Alertmanager).
                if !g.flushed && a.starts_at + wait <= now {
                    g.next_flush = g.next_flush.min(now);
                }
                g.alerts.insert(fp, a.clone());
            }
        }
    }

    /// Flushes due groups, reaps commands, collects webhook outcomes; returns the next
    /// deadline (None: nothing pending).
    pub fn poll(&mut self, now: i64) -> Option<i64> {
        self.reap(now);
        let due: Vec<(usize, Labels)> = self
            .groups
            .iter()
            .filter(|(_, g)| g.next_flush <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            self.flush(&k, now);
        }
        let mut next = self.groups.values().map(|g| g.next_flush).min();
        if !self.execs.is_empty() || !self.webhooks_in_flight.is_empty() {
            let soon = now + CHILD_POLL_MS;
            next = Some(next.map_or(soon, |n| n.min(soon)));
        }
        next
    }

    fn is_inhibited(&self, a: &OutgoingAlert, now: i64) -> bool {
        self.cfg.inhibit_rules.iter().any(|rule| {
            matches_all(&rule.target, &a.labels)
                && self
                    .groups
                    .values()
                    .flat_map(|g| g.alerts.values())
                    .any(|s| {
                        is_firing(s, now)
                        && matches_all(&rule.source, &s.labels)
                        // An alert matching both sides does not inhibit itself.
                        && !(matches_all(&rule.target, &s.labels) && s.labels == a.labels)
                        && rule
                            .equal
                            .iter()
                            .all(|n| s.labels.get(n) == a.labels.get(n))
                    })
        })
    }

    fn flush(&mut self, key: &(usize, Labels), now: i64) {
        let Some(g) = self.groups.get(key) else {
            return;
        };
        let route = self.cfg.routes[g.route].clone();
        // Ascending, as the alerts are.
        let mut firing = Vec::new();
        let mut resolved = Vec::new();
        let mut shown: Vec<(u64, &OutgoingAlert)> = Vec::new();
        let (mut inhibited, mut silenced) = (0, 0);
        for (fp, a) in g.alerts.iter() {
            if is_firing(a, now) {
                if self.silences.is_silenced(&a.labels, now) {
                    silenced += 1;
                    continue;
                }
                if self.is_inhibited(a, now) {
                    inhibited += 1;
                    continue;
                }
                firing.push(*fp);
            } else {
                resolved.push(*fp);
            }
            shown.push((*fp, a));
        }
        let receiver = self.cfg.receiver(&route.receiver).cloned();
        let repeat = route.repeat_interval.as_millis() as i64;
        let send_resolved_any = receiver.as_ref().is_some_and(|r| {
            r.webhooks.iter().any(|w| w.send_resolved)
                || r.execs.iter().any(|e| e.send_resolved)
                || r.logs.iter().any(|l| l.send_resolved)
        });
        let needs = match &g.log {
            None => !firing.is_empty(),
            Some(log) if !is_subset(&firing, &log.firing) => true,
            Some(log) if firing.is_empty() => !log.firing.is_empty(),
            Some(log) if send_resolved_any && !is_subset(&resolved, &log.resolved) => true,
            Some(log) => log.at + repeat <= now,
        };
        let mut jobs = Vec::new();
        if needs {
            if let Some(r) = &receiver {
                let group_key = format!("{}:{}", route.key, labels_text(&g.labels));
                jobs = self.payloads(r, &group_key, &g.labels, &shown, now);
            }
        }
        let group_interval = route.group_interval.as_millis() as i64;
        let undo = Rc::new(Undo {
            key: key.clone(),
            log_before: g.log.clone(),
            resolved: if jobs.is_empty() {
                Vec::new()
            } else {
                resolved
                    .iter()
                    .map(|fp| (*fp, g.alerts[fp].clone()))
                    .collect()
            },
            next_flush: now + group_interval,
        });
        let resolved_now: Vec<u64> = resolved.clone();
        let g = self.groups.get_mut(key).expect("looked up above");
        g.flushed = true;
        g.next_flush = now + group_interval;
        if needs {
            g.log = Some(SentLog {
                firing,
                resolved,
                at: now,
            });
        }
        for fp in resolved_now {
            g.alerts.remove(&fp);
        }
        if g.alerts.is_empty() {
            self.groups.remove(key);
        }
        self.metrics.inhibited += inhibited;
        self.metrics.silenced += silenced;
        for job in jobs {
            self.deliver(job, now, &undo);
        }
    }

    /// One payload per integration (send_resolved and max_alerts differ between them).
    fn payloads(
        &self,
        r: &Receiver,
        group_key: &str,
        group_labels: &Labels,
        shown: &[(u64, &OutgoingAlert)],
        now: i64,
    ) -> Vec<Delivery> {
        let body = |send_resolved: bool, max: usize| -> Option<Vec<u8>> {
            let alerts: Vec<&(u64, &OutgoingAlert)> = shown
                .iter()
                .filter(|(_, a)| send_resolved || is_firing(a, now))
                .collect();
            if alerts.is_empty() {
                return None;
            }
            Some(webhook_payload(
                &r.name,
                group_key,
                group_labels,
                &alerts,
                max,
                &self.external_url,
                now,
            ))
        };
        let mut out = Vec::new();
        for w in &r.webhooks {
            if let Some(b) = body(w.send_resolved, w.max_alerts) {
                out.push(Delivery::Webhook {
                    target: Target::cached(w.url.clone(), None, w.timeout, &w.tls_client),
                    body: b,
                });
            }
        }
        for e in &r.execs {
            if let Some(b) = body(e.send_resolved, 0) {
                out.push(Delivery::Exec {
                    command: e.command.clone(),
                    timeout: e.timeout,
                    body: b,
                });
            }
        }
        for l in &r.logs {
            let firing = shown.iter().filter(|(_, a)| is_firing(a, now)).count();
            let resolved = shown.len() - firing;
            if firing == 0 && (!l.send_resolved || resolved == 0) {
                continue;
            }
            let mut names: Vec<&str> = shown
                .iter()
                .filter_map(|(_, a)| a.labels.get("alertname"))
                .collect();
            crate::sort::sort_by(&mut names, |a, b| a.cmp(b));
            names.dedup();
            out.push(Delivery::Log(format!(
                "notification receiver={} group={group_key} status={} firing={firing} resolved={} alertnames={}",
                r.name,
                if firing > 0 { "firing" } else { "resolved" },
                if l.send_resolved { resolved } else { 0 },
                names.join(",")
            )));
        }
        out
    }

    fn deliver(&mut self, d: Delivery, now: i64, undo: &Rc<Undo>) {
        self.metrics.notifications += 1;
        match d {
            Delivery::Log(line) => crate::log::info(&line),
            Delivery::Webhook { target, body } => {
                let url = target.url.clone();
                match self.sender.submit(vec![target], "application/json", body) {
                    Some(id) => self.webhooks_in_flight.push((id, url, undo.clone())),
                    None => {
                        self.metrics.failed += 1;
                        self.undo(undo);
                        crate::log::warn(&format!(
                            "webhook {url}: sender busy, notification dropped"
                        ));
                    }
                }
            }
            Delivery::Exec {
                command,
                timeout,
                body,
            } => match self.spawn(&command, &body) {
                Ok(child) => self.execs.push(RunningExec {
                    undo: undo.clone(),
                    child,
                    deadline: now + timeout.as_millis() as i64,
                    what: command.join(" "),
                }),
                Err(e) => {
                    self.metrics.failed += 1;
                    self.undo(undo);
                    crate::log::warn(&format!("exec {}: {e}", command.join(" ")));
                }
            },
        }
    }

    fn spawn(&mut self, command: &[String], body: &[u8]) -> std::io::Result<ExecChild> {
        // Numbered per process, not per dispatcher: two dispatchers (tests run in parallel)
        // sharing a directory must not write, read and remove each other's payloads.
        static PAYLOAD_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        std::fs::create_dir_all(&self.temp_dir)?;
        let seq = PAYLOAD_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self
            .temp_dir
            .join(format!("exec-payload-{}-{seq}", std::process::id()));
        std::fs::write(&path, body)?;
        let stdin = std::fs::File::open(&path);
        let _ = std::fs::remove_file(&path);
        ExecChild::spawn(command, &stdin?)
    }

    /// A failed notification is not logged as sent (see [`Undo`]): delivery is at least once,
    /// per group, for resolutions as for firing alerts.
    fn undo(&mut self, u: &Undo) {
        if u.key.0 >= self.cfg.routes.len() {
            return; // the route went away in a reload
        }
        let g = self.groups.get_or_insert_with(u.key.clone(), || Group {
            route: u.key.0,
            labels: u.key.1.clone(),
            alerts: VecMap::new(),
            next_flush: u.next_flush,
            flushed: true,
            log: None,
        });
        g.log = u.log_before.clone();
        for (fp, a) in &u.resolved {
            // A newer state of the alert, ingested since, wins.
            g.alerts.get_or_insert_with(*fp, || a.clone());
        }
    }

    fn reap(&mut self, now: i64) {
        let mut failed: Vec<Rc<Undo>> = Vec::new();
        self.execs.retain_mut(|e| match e.child.try_wait() {
            Ok(Some(status)) => {
                if !status.success() {
                    failed.push(e.undo.clone());
                    crate::log::warn(&format!("exec {}: {status}", e.what));
                }
                false
            }
            Ok(None) if now >= e.deadline => {
                let _ = e.child.kill();
                let _ = e.child.wait();
                failed.push(e.undo.clone());
                crate::log::warn(&format!("exec {}: killed at its timeout", e.what));
                false
            }
            Ok(None) => true,
            Err(_) => false,
        });
        let sender = &self.sender;
        self.webhooks_in_flight
            .retain(|(id, url, undo)| match sender.take(*id) {
                Some(o) => {
                    if o.delivered == 0 {
                        failed.push(undo.clone());
                        crate::log::warn(&format!("webhook {url}: {}", o.errors.join("; ")));
                    }
                    false
                }
                None => true,
            });
        self.metrics.failed += failed.len() as u64;
        for u in failed {
            self.undo(&u);
        }
    }
}

enum Delivery {
    Webhook {
        target: Target,
        body: Vec<u8>,
    },
    Exec {
        command: Vec<String>,
        timeout: Duration,
        body: Vec<u8>,
    },
    Log(String),
}

fn is_firing(a: &OutgoingAlert, now: i64) -> bool {
    a.ends_at == 0 || a.ends_at > now
}

fn labels_text(l: &Labels) -> String {
    let parts: Vec<String> = l.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", parts.join(","))
}

/// Alertmanager's webhook body (version 4).
fn webhook_payload(
    receiver: &str,
    group_key: &str,
    group_labels: &Labels,
    alerts: &[&(u64, &OutgoingAlert)],
    max_alerts: usize,
    external_url: &str,
    now: i64,
) -> Vec<u8> {
    let any_firing = alerts.iter().any(|(_, a)| is_firing(a, now));
    let status = if any_firing { "firing" } else { "resolved" };
    let common = |pick: fn(&OutgoingAlert) -> &Labels| -> Labels {
        let first = pick(alerts[0].1);
        Labels::from_pairs(
            first
                .iter()
                .filter(|(n, v)| alerts.iter().all(|(_, a)| pick(a).get(n) == Some(*v))),
        )
    };
    let shown = if max_alerts > 0 {
        &alerts[..alerts.len().min(max_alerts)]
    } else {
        alerts
    };
    let mut j = Json::new();
    j.begin_object();
    j.key("receiver").string(receiver);
    j.key("status").string(status);
    j.key("alerts").begin_array();
    for (fp, a) in shown {
        j.begin_object();
        j.key("status").string(if is_firing(a, now) {
            "firing"
        } else {
            "resolved"
        });
        j.key("labels");
        label_object(&mut j, &a.labels);
        j.key("annotations");
        label_object(&mut j, &a.annotations);
        j.key("startsAt").string(&rfc3339(a.starts_at));
        // Go's zero time for a firing alert, as Alertmanager writes it.
        let ends = if is_firing(a, now) {
            "0001-01-01T00:00:00Z".to_string()
        } else {
            rfc3339(a.ends_at)
        };
        j.key("endsAt").string(&ends);
        j.key("generatorURL").string(&a.generator_url);
        j.key("fingerprint").string(&format!("{fp:016x}"));
        j.end_object();
    }
    j.end_array();
    j.key("groupLabels");
    label_object(&mut j, group_labels);
    j.key("commonLabels");
    label_object(&mut j, &common(|a| &a.labels));
    j.key("commonAnnotations");
    label_object(&mut j, &common(|a| &a.annotations));
    j.key("externalURL").string(external_url);
    j.key("version").string("4");
    j.key("groupKey").string(group_key);
    j.key("truncatedAlerts")
        .raw(&(alerts.len() - shown.len()).to_string());
    j.end_object();
    j.into_bytes()
}

fn label_object(j: &mut Json, l: &Labels) {
    j.begin_object();
    for (n, v) in l.iter() {
        j.key(n).string(v);
    }
    j.end_object();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const CFG: &str = "notify:
  route:
    receiver: logs
    group_by: [alertname]
    group_wait: 10s
    group_interval: 1m
    repeat_interval: 5m
  inhibit_rules:
  - source_matchers: ['severity=\"critical\"']
    target_matchers: ['severity=\"warning\"']
    equal: [host]
  receivers:
  - name: logs
    log_configs: [{}]
";

    fn alert(name: &str, host: &str, sev: &str, starts: i64, ends: i64) -> OutgoingAlert {
        OutgoingAlert {
            labels: Labels::from_pairs([("alertname", name), ("host", host), ("severity", sev)]),
            annotations: Labels::from_pairs([("summary", "s")]),
            starts_at: starts,
            ends_at: ends,
            generator_url: "http://g".into(),
        }
    }

    fn dispatcher() -> Dispatcher {
        let cfg = Config::parse(CFG, "t.yml").unwrap().notify;
        Dispatcher::new(
            cfg,
            "http://pi:9099".into(),
            std::env::temp_dir(),
            Rc::default(),
            SilenceStore::open(None),
        )
    }

    #[test]
    fn fingerprint_matches_alertmanagers() {
        // Read back from a real Alertmanager 0.33 (tests/notify.rs posts this label set).
        let l = Labels::from_pairs([
            ("alertname", "DiskFull"),
            ("severity", "critical"),
            ("site", "garage"),
        ]);
        assert_eq!(format!("{:016x}", fingerprint(&l)), "03be8e24c1a0ff6c");
    }

    #[test]
    fn group_wait_then_group_interval_then_repeat_interval() {
        let mut d = dispatcher();
        let t0 = 1_000_000;
        d.ingest(&[alert("A", "h1", "info", t0, t0 + 600_000)], t0);
        assert_eq!(d.poll(t0), Some(t0 + 10_000), "waits group_wait");
        assert_eq!(d.metrics().notifications, 0);
        d.poll(t0 + 10_000);
        assert_eq!(d.metrics().notifications, 1);
        // Same alert again: deduplicated at the next group_interval.
        d.ingest(&[alert("A", "h1", "info", t0, t0 + 600_000)], t0 + 20_000);
        assert_eq!(d.poll(t0 + 20_000), Some(t0 + 70_000));
        d.poll(t0 + 70_000);
        assert_eq!(d.metrics().notifications, 1);
        // A new alert in the group goes out at the next interval.
        d.ingest(&[alert("A", "h2", "info", t0, t0 + 600_000)], t0 + 80_000);
        d.poll(t0 + 130_000);
        assert_eq!(d.metrics().notifications, 2);
        // Nothing new: repeated once repeat_interval (5m) has passed since the last one.
        d.poll(t0 + 190_000);
        d.poll(t0 + 250_000);
        d.poll(t0 + 310_000);
        d.poll(t0 + 370_000);
        assert_eq!(d.metrics().notifications, 2);
        d.poll(t0 + 430_000);
        assert_eq!(d.metrics().notifications, 3);
    }

    /// A wall clock set back by 3 days: the group's repeat comes after 5 minutes of real
    /// time, not after 3 days (and one set forward does not repeat at once).
    #[test]
    fn group_schedules_follow_a_wall_clock_step() {
        let day3 = 3 * 86_400_000;
        for step in [-day3, day3] {
            let mut d = dispatcher();
            let t0 = 1_000_000_000;
            d.ingest(&[alert("A", "h1", "info", t0, 0)], t0);
            d.poll(t0 + 10_000);
            assert_eq!(d.metrics().notifications, 1);
            d.shift_time(step);
            let t = t0 + step;
            for m in 1..5 {
                d.ingest(&[alert("A", "h1", "info", t, 0)], t + m * 60_000);
                d.poll(t + 10_000 + m * 60_000);
            }
            assert_eq!(d.metrics().notifications, 1, "step {step}: repeated early");
            d.ingest(&[alert("A", "h1", "info", t, 0)], t + 310_000);
            d.poll(t + 310_000);
            d.poll(t + 370_000);
            assert_eq!(d.metrics().notifications, 2, "step {step}: repeat missing");
        }
    }

    #[test]
    fn resolution_is_notified_and_ends_the_group() {
        let mut d = dispatcher();
        let t0 = 1_000_000;
        d.ingest(&[alert("A", "h1", "info", t0 - 60_000, 0)], t0);
        d.poll(t0);
        assert_eq!(d.metrics().notifications, 1, "old alert skips group_wait");
        d.ingest(
            &[alert("A", "h1", "info", t0 - 60_000, t0 + 5_000)],
            t0 + 10_000,
        );
        d.poll(t0 + 60_000);
        assert_eq!(d.metrics().notifications, 2);
        assert_eq!(d.metrics().groups, 0);
        assert_eq!(d.poll(t0 + 120_000), None);
    }

    #[test]
    fn inhibited_alerts_are_muted_while_the_source_fires() {
        let mut d = dispatcher();
        let t0 = 1_000_000;
        d.ingest(
            &[
                alert("Disk", "h1", "warning", t0, 0),
                alert("Down", "h1", "critical", t0, 0),
                alert("Disk2", "h2", "warning", t0, 0),
            ],
            t0,
        );
        d.poll(t0 + 10_000);
        let m = d.metrics();
        assert_eq!((m.inhibited, m.notifications), (1, 2));
    }

    #[test]
    fn silenced_alerts_are_muted_until_the_silence_expires() {
        let mut d = dispatcher();
        let t0 = 1_795_309_323_000; // 2026-11-22T01:02:03Z
        let body = br#"{"matchers":[{"name":"host","value":"h1","isRegex":false}],"startsAt":"2026-11-22T01:00:00Z","endsAt":"2026-11-22T01:05:00Z","createdBy":"t","comment":"c"}"#;
        let (st, _) = d
            .silences_mut()
            .handle("POST", "/api/v2/silences", body, t0, true);
        assert_eq!(st, 200);
        d.ingest(&[alert("A", "h1", "info", t0, 0)], t0);
        d.poll(t0 + 10_000);
        assert_eq!((d.metrics().silenced, d.metrics().notifications), (1, 0));
        // 01:05:00 is 177 s after t0: the next flush after that notifies.
        d.poll(t0 + 190_000);
        assert_eq!(d.metrics().notifications, 1);
    }

    #[test]
    fn failed_command_is_notified_again_at_the_next_flush() {
        let cfg = Config::parse(
            "notify:\n  route: {receiver: r, group_wait: 0s, group_interval: 1s, repeat_interval: 1h}\n  \
             receivers: [{name: r, exec_configs: [{command: ['false']}]}]\n",
            "t.yml",
        )
        .unwrap()
        .notify;
        let mut d = Dispatcher::new(
            cfg,
            String::new(),
            std::env::temp_dir(),
            Rc::default(),
            SilenceStore::open(None),
        );
        let t0 = 1_000_000;
        d.ingest(&[alert("A", "h", "info", t0, 0)], t0);
        d.poll(t0);
        assert_eq!(d.metrics().notifications, 1);
        let start = std::time::Instant::now();
        while d.metrics().failed == 0 {
            assert!(start.elapsed().as_secs() < 5);
            std::thread::sleep(std::time::Duration::from_millis(10));
            d.poll(t0 + 10);
        }
        d.poll(t0 + 1000);
        assert_eq!(
            d.metrics().notifications,
            2,
            "not retried at group_interval"
        );
    }

    /// Before: a group whose last alert resolved was gone after the flush, so a resolution
    /// that failed to go out was never retried.
    #[test]
    fn failed_resolution_is_notified_again_at_the_next_flush() {
        let flag = std::env::temp_dir().join(format!("promlet-fail-flag-{}", std::process::id()));
        let _ = std::fs::remove_file(&flag);
        let cfg = Config::parse(
            &format!(
                "notify:\n  route: {{receiver: r, group_wait: 0s, group_interval: 1s, repeat_interval: 1h}}\n  \
                 receivers: [{{name: r, exec_configs: [{{command: [sh, -c, 'cat >/dev/null; test ! -e \"$0\"', '{}'], send_resolved: true}}]}}]\n",
                flag.display()
            ),
            "t.yml",
        )
        .unwrap()
        .notify;
        let mut d = Dispatcher::new(
            cfg,
            String::new(),
            std::env::temp_dir(),
            Rc::default(),
            SilenceStore::open(None),
        );
        let settle = |d: &mut Dispatcher, now: i64| {
            let start = std::time::Instant::now();
            while !d.execs.is_empty() {
                assert!(start.elapsed().as_secs() < 5);
                std::thread::sleep(std::time::Duration::from_millis(5));
                d.poll(now);
            }
        };
        let t0 = 1_000_000;
        d.ingest(&[alert("A", "h", "info", t0 - 60_000, 0)], t0);
        d.poll(t0);
        settle(&mut d, t0);
        assert_eq!((d.metrics().notifications, d.metrics().failed), (1, 0));
        // The resolution fails (the command exits 1 while the flag exists).
        std::fs::write(&flag, "").unwrap();
        d.ingest(&[alert("A", "h", "info", t0 - 60_000, t0 + 500)], t0 + 600);
        d.poll(t0 + 1000);
        settle(&mut d, t0 + 1000);
        assert_eq!((d.metrics().notifications, d.metrics().failed), (2, 1));
        assert_eq!(d.metrics().groups, 1, "the failed resolution was dropped");
        // The next flush sends it again, and this time it goes out.
        std::fs::remove_file(&flag).unwrap();
        d.poll(t0 + 2000);
        settle(&mut d, t0 + 2000);
        assert_eq!((d.metrics().notifications, d.metrics().failed), (3, 1));
        assert_eq!(d.metrics().groups, 0);
        assert_eq!(d.poll(t0 + 3000), None);
    }

    #[test]
    fn webhook_payload_is_alertmanagers_version_4() {
        let a = alert("A", "h1", "info", 1000, 0);
        let b = alert("A", "h2", "info", 1000, 1500);
        let (fa, fb) = (fingerprint(&a.labels), fingerprint(&b.labels));
        let body = webhook_payload(
            "hook",
            "{}:{alertname=\"A\"}",
            &Labels::from_pairs([("alertname", "A")]),
            &[&(fa, &a), &(fb, &b)],
            0,
            "http://pi:9099",
            2000,
        );
        let s = String::from_utf8(body).unwrap();
        for want in [
            r#"{"receiver":"hook","status":"firing","alerts":[{"status":"firing""#,
            r#""endsAt":"0001-01-01T00:00:00Z""#,
            r#"{"status":"resolved","labels":{"alertname":"A","host":"h2","severity":"info"}"#,
            r#""groupLabels":{"alertname":"A"},"commonLabels":{"alertname":"A","severity":"info"},"commonAnnotations":{"summary":"s"}"#,
            r#""externalURL":"http://pi:9099","version":"4","groupKey":"{}:{alertname=\"A\"}","truncatedAlerts":0}"#,
        ] {
            assert!(s.contains(want), "{want} not in {s}");
        }
    }

    fn stdin_file(text: &str) -> std::fs::File {
        let path = std::env::temp_dir().join(format!(
            "promlet-exec-test-{}-{}",
            std::process::id(),
            text.len()
        ));
        std::fs::write(&path, text).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }

    fn wait_done(c: &mut ExecChild) -> std::process::ExitStatus {
        for _ in 0..500 {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("child did not exit");
    }

    #[test]
    fn exec_child_reads_the_payload_on_stdin_and_reports_its_exit_status() {
        // The child gets this process's environment: one of our variables, checked by name.
        let (name, value) = std::env::vars()
            .find(|(k, v)| {
                k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') && !v.is_empty()
            })
            .expect("an environment variable");
        let script =
            r#"read x; eval "v=\$$1"; [ "$x" = payload ] && [ "$v" = "$2" ] && exit 3; exit 1"#;
        let cmd = ["sh", "-c", script, "sh", &name, &value].map(String::from);
        let mut c = ExecChild::spawn(&cmd, &stdin_file("payload\n")).unwrap();
        let status = wait_done(&mut c);
        assert_eq!(status.code(), Some(3));
        assert_eq!(status.to_string(), "exit status: 3");
    }

    #[test]
    fn exec_child_of_a_missing_program_fails_to_spawn_and_a_killed_one_reports_the_signal() {
        let missing = ["/nonexistent/promlet-no-such-program".to_string()];
        let e = ExecChild::spawn(&missing, &stdin_file("")).err().unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        let cmd = ["sleep", "5"].map(String::from);
        let mut c = ExecChild::spawn(&cmd, &stdin_file("x")).unwrap();
        assert!(c.try_wait().unwrap().is_none());
        c.kill().unwrap();
        let status = c.wait().unwrap().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}
