//! Group evaluation and alert state, as Prometheus's rule manager does it.
//!
//! Owns: [`Group`] (a [`GroupDef`] plus per-rule state), the pending → firing → inactive state
//! machine with `for` and `keep_firing_for`, `ALERTS` / `ALERTS_FOR_STATE` series, stale
//! markers for series a rule stopped producing, `limit`, `query_offset`, restoring `for`
//! progress from `ALERTS_FOR_STATE` after a restart, and choosing which alerts to send.
//! Must not touch: the engine (queries go through [`RuleBackend`]) or delivery (alerts leave
//! through a [`NotifyFn`]). Time comes in as an argument (ms since the epoch).

use super::file::{GroupDef, RuleDef, RuleKind};
use super::template::{AlertData, QuerySample};
use crate::model::{is_stale_nan, stale_nan, Labels, MatchOp, Matcher, METRIC_NAME};
use crate::promql::Expr;
use crate::tsdb::Querier;
use crate::vecmap::VecMap;
use std::sync::Arc;
use std::time::Duration;

/// Resolved alerts are kept this long so Alertmanager hears about the resolution (Prometheus:
/// 15m).
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;
/// `--rules.alert.for-outage-tolerance`: how far back restoring looks for `ALERTS_FOR_STATE`.
pub const OUTAGE_TOLERANCE_MS: i64 = 3600 * 1000;
/// `--rules.alert.for-grace-period`: the least time an alert stays pending after a restore.
pub const FOR_GRACE_PERIOD_MS: i64 = 10 * 60 * 1000;
/// `--rules.alert.resend-delay` default.
pub const DEFAULT_RESEND_DELAY_MS: i64 = 60 * 1000;

/// What rule evaluation needs from the outside: instant queries and a place for output.
pub trait RuleBackend {
    /// Evaluates `expr` (written as `text`) at `t` (ms). A vector gives its samples, a scalar one sample with no
    /// labels; a matrix or string is an error.
    fn query(&self, expr: &Expr, text: &str, t: i64) -> Result<Vec<QuerySample>, String>;
    /// Parses and evaluates a query written in a template.
    fn query_text(&self, text: &str, t: i64) -> Result<Vec<QuerySample>, String> {
        let e = crate::promql::parse(text).map_err(|e| e.to_string())?;
        self.query(&e, text, t)
    }
    /// Stores one sample of rule output. Refusals are the store's business (it counts them).
    fn append(&mut self, labels: &Labels, t: i64, v: f64);
    /// Stores one native histogram sample of rule output.
    fn append_histogram(&mut self, labels: &Labels, t: i64, h: &crate::histogram::FloatHistogram);
    /// Read access for restoring `for` state.
    fn querier(&self) -> &dyn Querier;
}

/// One alert handed to delivery (Alertmanager's v2 `postableAlert` shape); the type is
/// notify's, so the agent hands alerts over without converting.
pub use crate::notify::OutgoingAlert;

/// The seam to notification delivery: the rule's expression text and the alerts to send.
pub type NotifyFn<'a> = dyn FnMut(&str, &[OutgoingAlert]) + 'a;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One active (or recently resolved) alert. Times are ms; 0 means unset.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub state: AlertState,
    pub labels: Labels,
    pub annotations: Labels,
    pub value: f64,
    pub active_at: i64,
    pub fired_at: i64,
    pub resolved_at: i64,
    /// None: never sent.
    pub last_sent_at: Option<i64>,
    pub valid_until: i64,
    pub keep_firing_since: i64,
}

/// Health of a rule after its last evaluation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleHealth {
    /// None: never evaluated.
    pub last_error: Option<String>,
    pub evaluated: bool,
    pub last_eval_ms: i64,
    pub eval_duration: Duration,
}

/// A rule's run-time state.
#[derive(Clone, Debug, Default)]
pub struct RuleState {
    pub health: RuleHealth,
    /// Alerting rules: alerts by a hash of their label set (as Prometheus keys them), so the
    /// labels are held once per alert.
    pub active: VecMap<u64, Alert>,
    /// Alerting rules: whether `for` state has been restored (until then no ALERTS output).
    pub restored: bool,
    /// Series written at the previous evaluation (for stale markers).
    prev_series: Vec<Labels>,
}

/// A group with its state.
#[derive(Clone, Debug)]
pub struct Group {
    pub def: GroupDef,
    pub interval: Duration,
    pub states: Vec<RuleState>,
    pub last_eval_ms: i64,
    pub last_duration: Duration,
    /// Restore `for` state after the first evaluation (true for groups new at start-up).
    pub should_restore: bool,
}

/// Things every evaluation needs besides the backend.
pub struct EvalContext<'a> {
    pub external_labels: &'a Labels,
    pub external_url: &'a str,
    pub resend_delay_ms: i64,
}

/// An error of one rule in one evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleEvalError {
    pub rule: String,
    pub msg: String,
}

impl Group {
    /// A group with fresh state; `default_interval` is the global `evaluation_interval`.
    pub fn new(def: GroupDef, default_interval: Duration) -> Group {
        let interval = def
            .interval
            .filter(|d| !d.is_zero())
            .unwrap_or(default_interval);
        let states = vec![RuleState::default(); def.rules.len()];
        Group {
            def,
            interval,
            states,
            last_eval_ms: 0,
            last_duration: Duration::ZERO,
            should_restore: true,
        }
    }

    /// Marks every alerting rule as restored (promtool does this: no outage logic).
    pub fn mark_restored(&mut self) {
        for s in &mut self.states {
            s.restored = true;
        }
        self.should_restore = false;
    }

    /// Takes over alert state from `old` for rules with the same name, expression and labels
    /// (on reload, as Prometheus's copyState does).
    pub fn copy_state(&mut self, old: &Group) {
        for (i, r) in self.def.rules.iter().enumerate() {
            if let Some(j) = old.def.rules.iter().position(|o| {
                o.kind == r.kind
                    && o.name == r.name
                    && o.expr_text == r.expr_text
                    && o.labels == r.labels
            }) {
                self.states[i] = old.states[j].clone();
            }
        }
        self.should_restore = false;
    }

    /// The wall clock stepped by `delta` ms: moves every stored time by the same amount, so
    /// `for`, `keep_firing_for`, the resend delay and resolved-alert retention keep measuring
    /// time that really passed (a clock set back by days would otherwise hold a pending alert
    /// for days; one set forward would fire every pending alert at once).
    pub fn shift_time(&mut self, delta: i64) {
        let shift = |t: &mut i64| {
            if *t != 0 {
                *t = t.saturating_add(delta);
            }
        };
        shift(&mut self.last_eval_ms);
        for st in &mut self.states {
            shift(&mut st.health.last_eval_ms);
            for a in st.active.values_mut() {
                shift(&mut a.active_at);
                shift(&mut a.fired_at);
                shift(&mut a.resolved_at);
                shift(&mut a.valid_until);
                shift(&mut a.keep_firing_since);
                if let Some(t) = a.last_sent_at.as_mut() {
                    *t = t.saturating_add(delta);
                }
            }
        }
    }

    /// When the next evaluation is due after `last` (ms), aligned like Prometheus: every
    /// `interval` from a per-group offset.
    pub fn next_eval_after(&self, now_ms: i64) -> i64 {
        let iv = self.interval.as_millis().max(1) as i64;
        let offset = (fnv(&self.def.name) % iv as u64) as i64;
        let base = now_ms - now_ms.rem_euclid(iv) + offset;
        if base > now_ms {
            base
        } else {
            base + iv
        }
    }

    /// Evaluates every rule at `t` (ms), appends output through `backend`, and hands alerts
    /// due for sending to `notify`. Returns the rules that failed (evaluation continues past a
    /// failing rule, as in Prometheus).
    pub fn eval(
        &mut self,
        t: i64,
        backend: &mut dyn RuleBackend,
        ctx: &EvalContext<'_>,
        notify: &mut NotifyFn<'_>,
    ) -> Vec<RuleEvalError> {
        let started = std::time::Instant::now();
        let offset = self.def.query_offset.unwrap_or_default().as_millis() as i64;
        let qt = t - offset;
        let mut errors = Vec::new();
        for i in 0..self.def.rules.len() {
            let rule_started = std::time::Instant::now();
            let rule = &self.def.rules[i];
            let state = &mut self.states[i];
            let out = match rule.kind {
                RuleKind::Recording => {
                    eval_recording(rule, &self.def.labels, self.def.limit, qt, backend)
                }
                RuleKind::Alerting => eval_alerting(
                    rule,
                    state,
                    &self.def.labels,
                    self.def.limit,
                    t,
                    qt,
                    backend,
                    ctx,
                ),
            };
            let mut written = Vec::new();
            match out {
                Ok(samples) => {
                    for (l, v, h) in &samples {
                        match h {
                            Some(h) => backend.append_histogram(l, qt, h),
                            None => backend.append(l, qt, *v),
                        }
                        written.push(l.clone());
                    }
                    state.health.last_error = None;
                }
                Err(e) => {
                    state.health.last_error = Some(e.clone());
                    errors.push(RuleEvalError {
                        rule: rule.name.clone(),
                        msg: e,
                    });
                }
            }
            // Series produced last time but not now get a stale marker.
            written.sort_unstable();
            for old in std::mem::take(&mut state.prev_series) {
                if written.binary_search(&old).is_err() {
                    backend.append(&old, qt, stale_nan());
                }
            }
            state.prev_series = written;
            state.health.evaluated = true;
            state.health.last_eval_ms = t;
            state.health.eval_duration = rule_started.elapsed();
            if rule.kind == RuleKind::Alerting {
                send_alerts(rule, state, t, self.interval, ctx, notify);
            }
        }
        if self.should_restore {
            self.restore_for_state(t, backend.querier());
            self.should_restore = false;
        }
        self.last_eval_ms = t;
        self.last_duration = started.elapsed();
        errors
    }

    /// Restores `ActiveAt` of pending alerts from `ALERTS_FOR_STATE` (Prometheus's
    /// RestoreForState): time spent pending before the outage counts, the outage does not, and
    /// an alert always stays pending at least the grace period after a restart.
    pub fn restore_for_state(&mut self, t: i64, q: &dyn Querier) {
        for (rule, state) in self.def.rules.iter().zip(self.states.iter_mut()) {
            if rule.kind != RuleKind::Alerting {
                continue;
            }
            let hold = rule.for_.as_millis() as i64;
            if hold < FOR_GRACE_PERIOD_MS {
                state.restored = true;
                continue;
            }
            for a in state.active.values_mut() {
                // Equality matchers cannot fail to build.
                let matchers: Vec<Matcher> = std::iter::once((METRIC_NAME, "ALERTS_FOR_STATE"))
                    .chain(a.labels.iter())
                    .filter_map(|(n, v)| Matcher::new(MatchOp::Equal, n, v).ok())
                    .collect();
                let found = q.select(&matchers, t - OUTAGE_TOLERANCE_MS, t);
                // The series with exactly the alert's labels (plus the name).
                let Some(series) = found.iter().find(|s| s.labels.len() == a.labels.len() + 1)
                else {
                    continue;
                };
                let Some(last) = series.samples.last() else {
                    continue;
                };
                if is_stale_nan(last.v) {
                    continue;
                }
                let down_at = last.t.div_euclid(1000) * 1000;
                let mut active_at = (last.v as i64) * 1000;
                let remaining = hold - (down_at - active_at);
                if remaining <= 0 {
                    // It was firing when we went down; the next evaluation decides.
                } else if remaining < FOR_GRACE_PERIOD_MS {
                    active_at = t + FOR_GRACE_PERIOD_MS - hold;
                } else {
                    active_at += t - down_at;
                }
                a.active_at = active_at;
            }
            state.restored = true;
        }
    }

    /// Alerts of every alerting rule (for /api/v1/alerts and tests), with their rule.
    pub fn alerts(&self) -> impl Iterator<Item = (&RuleDef, &Alert)> {
        self.def
            .rules
            .iter()
            .zip(&self.states)
            .flat_map(|(r, s)| s.active.values().map(move |a| (r, a)))
    }
}

/// A hash of a label set, stable within the process.
fn labels_hash(l: &Labels) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (n, v) in l.iter() {
        n.hash(&mut h);
        v.hash(&mut h);
    }
    h.finish()
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn merge_labels(base: &mut Labels, group: &Labels) {
    for (n, v) in group.iter() {
        base.set(n.to_string(), v.to_string());
    }
}

/// One output sample of a rule: labels, float value, or a native histogram instead.
type RuleOutput = (Labels, f64, Option<Arc<crate::histogram::FloatHistogram>>);

fn eval_recording(
    rule: &RuleDef,
    group_labels: &Labels,
    limit: usize,
    qt: i64,
    backend: &dyn RuleBackend,
) -> Result<Vec<RuleOutput>, String> {
    let res = backend.query(&rule.expr, &rule.expr_text, qt)?;
    let mut out: Vec<RuleOutput> = Vec::with_capacity(res.len());
    for s in res {
        let mut l = s.labels;
        l.set(METRIC_NAME.into(), rule.name.clone());
        merge_labels(&mut l, group_labels);
        for (n, v) in &rule.labels {
            if v.is_empty() {
                l.remove(n);
            } else {
                l.set(n.clone(), v.clone());
            }
        }
        out.push((l, s.value, s.histogram));
    }
    let mut seen: Vec<&Labels> = out.iter().map(|(l, _, _)| l).collect();
    seen.sort_unstable();
    if seen.windows(2).any(|w| w[0] == w[1]) {
        return Err(
            "vector contains metrics with the same labelset after applying rule labels".into(),
        );
    }
    if limit > 0 && out.len() > limit {
        return Err(format!(
            "exceeded limit of {limit} with {} series",
            out.len()
        ));
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn eval_alerting(
    rule: &RuleDef,
    state: &mut RuleState,
    group_labels: &Labels,
    limit: usize,
    t: i64,
    qt: i64,
    backend: &dyn RuleBackend,
    ctx: &EvalContext<'_>,
) -> Result<Vec<RuleOutput>, String> {
    let res = backend.query(&rule.expr, &rule.expr_text, qt)?;
    let mut fresh: Vec<(u64, Alert)> = Vec::with_capacity(res.len());
    for s in res {
        let data = AlertData {
            labels: s.labels.clone(),
            external_labels: ctx.external_labels.clone(),
            external_url: ctx.external_url.to_string(),
            value: s.value,
            histogram: s.histogram.clone(),
        };
        let mut query = |q: &str| backend.query_text(q, qt);
        let mut labels = s.labels.clone();
        labels.remove(METRIC_NAME);
        merge_labels(&mut labels, group_labels);
        for ((n, _), tpl) in rule.labels.iter().zip(&rule.label_templates) {
            let v = tpl.expand(&data, &mut query);
            if v.is_empty() {
                labels.remove(n);
            } else {
                labels.set(n.clone(), v);
            }
        }
        labels.set("alertname".into(), rule.name.clone());
        let mut annotations = Labels::new();
        for (n, tpl) in &rule.annotations {
            annotations.set(n.clone(), tpl.expand(&data, &mut query));
        }
        let key = labels_hash(&labels);
        fresh.push((
            key,
            Alert {
                state: AlertState::Pending,
                labels,
                annotations,
                value: s.value,
                active_at: t,
                fired_at: 0,
                resolved_at: 0,
                last_sent_at: None,
                valid_until: 0,
                keep_firing_since: 0,
            },
        ));
    }
    crate::sort::sort_by(&mut fresh, |a, b| a.0.cmp(&b.0));
    if fresh.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(
            "vector contains metrics with the same labelset after applying alert labels".into(),
        );
    }
    let result_keys: Vec<u64> = fresh.iter().map(|(k, _)| *k).collect();
    let mut new_alerts = Vec::new();
    for (k, a) in fresh {
        match state.active.get_mut(&k) {
            Some(old) if old.state != AlertState::Inactive => {
                old.value = a.value;
                old.annotations = a.annotations;
            }
            Some(old) => *old = a,
            None => new_alerts.push((k, a)),
        }
    }
    state.active.insert_new(new_alerts);
    let hold = rule.for_.as_millis() as i64;
    let keep = rule.keep_firing_for.as_millis() as i64;
    let mut out = Vec::new();
    let mut active_pending = 0usize;
    let mut remove = Vec::new();
    for (k, a) in state.active.iter_mut() {
        if result_keys.binary_search(k).is_err() {
            let mut keep_firing = false;
            if a.state == AlertState::Firing && keep > 0 {
                if a.keep_firing_since == 0 {
                    a.keep_firing_since = t;
                }
                keep_firing = t - a.keep_firing_since < keep;
            }
            if a.state == AlertState::Pending
                || (a.resolved_at != 0 && t - a.resolved_at > RESOLVED_RETENTION_MS)
            {
                remove.push(*k);
            }
            if a.state != AlertState::Inactive && !keep_firing {
                a.state = AlertState::Inactive;
                a.resolved_at = t;
            }
            if !keep_firing {
                continue;
            }
        } else {
            a.keep_firing_since = 0;
        }
        active_pending += 1;
        if a.state == AlertState::Pending && t - a.active_at >= hold {
            a.state = AlertState::Firing;
            a.fired_at = t;
        }
        if state.restored {
            let mut l = a.labels.clone();
            l.set(METRIC_NAME.into(), "ALERTS".into());
            l.set("alertstate".into(), a.state.as_str().into());
            out.push((l, 1.0, None));
            let mut f = a.labels.clone();
            f.set(METRIC_NAME.into(), "ALERTS_FOR_STATE".into());
            out.push((f, (a.active_at.div_euclid(1000)) as f64, None));
        }
    }
    // `remove` is ascending, as the map is.
    if !remove.is_empty() {
        state.active.retain(|k, _| remove.binary_search(k).is_err());
    }
    if limit > 0 && active_pending > limit {
        state.active.clear();
        return Err(format!(
            "exceeded limit of {limit} with {active_pending} alerts"
        ));
    }
    Ok(out)
}

/// Prometheus's `needsSending` + `sendAlerts`: firing alerts every resend delay, resolved ones
/// once more after resolving; `endsAt` is the resolve time or 4 intervals ahead.
fn send_alerts(
    rule: &RuleDef,
    state: &mut RuleState,
    t: i64,
    interval: Duration,
    ctx: &EvalContext<'_>,
    notify: &mut NotifyFn<'_>,
) {
    let delta = ctx.resend_delay_ms.max(interval.as_millis() as i64);
    let mut out = Vec::new();
    for a in state.active.values_mut() {
        let due = a.state != AlertState::Pending
            && match a.last_sent_at {
                None => true,
                Some(sent) => a.resolved_at > sent || sent + ctx.resend_delay_ms < t,
            };
        if !due {
            continue;
        }
        a.last_sent_at = Some(t);
        a.valid_until = t + 4 * delta;
        out.push(OutgoingAlert {
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            starts_at: a.fired_at,
            ends_at: if a.resolved_at != 0 {
                a.resolved_at
            } else {
                a.valid_until
            },
            generator_url: format!(
                "{}/graph?g0.expr={}&g0.tab=1",
                ctx.external_url,
                query_escape(&rule.expr_text)
            ),
        });
    }
    if !out.is_empty() {
        notify(&rule.expr_text, &out);
    }
}

/// Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                o.push(b as char)
            }
            b' ' => o.push('+'),
            b => o.push_str(&format!("%{b:02X}")),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::testing::MemStorage;
    use crate::promql::EngineOpts;
    use crate::rules::{EngineBackend, RuleFile};
    use crate::tsdb::Appender;

    const MIN: i64 = 60_000;

    fn group(yaml: &str) -> Group {
        let f = RuleFile::parse(yaml, "t.yml", false).unwrap();
        Group::new(f.groups[0].clone(), Duration::from_secs(60))
    }

    fn up(store: &mut MemStorage, t: i64, v: f64) {
        store
            .append(
                &Labels::from_pairs([("__name__", "up"), ("job", "j")]),
                t,
                v,
            )
            .unwrap();
    }

    struct Run {
        store: MemStorage,
        opts: EngineOpts,
        sent: Vec<OutgoingAlert>,
        ext: Labels,
    }

    impl Run {
        fn new() -> Run {
            Run {
                store: MemStorage::new(),
                opts: EngineOpts::default(),
                sent: Vec::new(),
                ext: Labels::new(),
            }
        }
        fn eval(&mut self, g: &mut Group, t: i64) -> Vec<RuleEvalError> {
            let ctx = EvalContext {
                external_labels: &self.ext,
                external_url: "http://pi:9099",
                resend_delay_ms: DEFAULT_RESEND_DELAY_MS,
            };
            let mut b = EngineBackend::new(&mut self.store, &self.opts);
            let sent = &mut self.sent;
            let mut notify = |_: &str, a: &[OutgoingAlert]| sent.extend_from_slice(a);
            g.eval(t, &mut b, &ctx, &mut notify)
        }
        fn state(g: &Group) -> Option<(AlertState, i64)> {
            g.alerts().next().map(|(_, a)| (a.state, a.active_at))
        }
    }

    const DOWN_30M: &str =
        "groups:\n- name: g\n  rules:\n  - alert: Down\n    expr: up == 0\n    for: 30m\n";

    fn alerts_series(store: &MemStorage, t: i64) -> usize {
        let m = [Matcher::new(MatchOp::Equal, METRIC_NAME, "ALERTS").unwrap()];
        crate::tsdb::Querier::select(store, &m, t, t).len()
    }

    #[test]
    fn for_progress_survives_a_restart_minus_the_outage() {
        let mut run = Run::new();
        let mut g = group(DOWN_30M);
        for m in 0..=10 {
            up(&mut run.store, m * MIN, 0.0);
            run.eval(&mut g, m * MIN);
        }
        assert_eq!(Run::state(&g), Some((AlertState::Pending, 0)));
        // Restart after a 10-minute outage: fresh state, restored from ALERTS_FOR_STATE.
        let mut g = group(DOWN_30M);
        up(&mut run.store, 20 * MIN, 0.0);
        run.eval(&mut g, 20 * MIN);
        // 10 minutes were spent pending before the outage; 20 remain from now.
        assert_eq!(Run::state(&g), Some((AlertState::Pending, 10 * MIN)));
        for m in 21..=40 {
            up(&mut run.store, m * MIN, 0.0);
            run.eval(&mut g, m * MIN);
            let want = if m < 40 {
                AlertState::Pending
            } else {
                AlertState::Firing
            };
            assert_eq!(Run::state(&g).unwrap().0, want, "minute {m}");
        }
    }

    #[test]
    fn restore_keeps_at_least_the_grace_period() {
        let mut run = Run::new();
        let yaml = DOWN_30M.replace("30m", "15m");
        let mut g = group(&yaml);
        for m in 0..=10 {
            up(&mut run.store, m * MIN, 0.0);
            run.eval(&mut g, m * MIN);
        }
        let mut g = group(&yaml);
        up(&mut run.store, 12 * MIN, 0.0);
        run.eval(&mut g, 12 * MIN);
        // 5 minutes would remain; the grace period makes it 10 from the restart.
        assert_eq!(
            Run::state(&g),
            Some((AlertState::Pending, 12 * MIN + 10 * MIN - 15 * MIN))
        );
    }

    #[test]
    fn no_alerts_series_before_restore() {
        let mut run = Run::new();
        let mut g = group(DOWN_30M);
        up(&mut run.store, 0, 0.0);
        run.eval(&mut g, 0);
        assert_eq!(alerts_series(&run.store, 0), 0);
        up(&mut run.store, MIN, 0.0);
        run.eval(&mut g, MIN);
        assert_eq!(alerts_series(&run.store, MIN), 1);
    }

    #[test]
    fn notifications_carry_times_and_generator_url_and_resend() {
        let mut run = Run::new();
        let mut g = group("groups:\n- name: g\n  rules:\n  - alert: Down\n    expr: up == 0\n    annotations:\n      s: '{{ $labels.job }} down'\n");
        g.mark_restored();
        up(&mut run.store, MIN, 0.0);
        run.eval(&mut g, MIN);
        assert_eq!(run.sent.len(), 1);
        let a = &run.sent[0];
        assert_eq!(a.starts_at, MIN);
        assert_eq!(a.ends_at, MIN + 4 * MIN);
        assert_eq!(
            a.generator_url,
            "http://pi:9099/graph?g0.expr=up+%3D%3D+0&g0.tab=1"
        );
        assert_eq!(a.labels.get("alertname"), Some("Down"));
        assert_eq!(a.annotations.get("s"), Some("j down"));
        // Not resent within the resend delay, resent after it.
        up(&mut run.store, 2 * MIN, 0.0);
        run.eval(&mut g, 2 * MIN);
        assert_eq!(run.sent.len(), 1);
        up(&mut run.store, 3 * MIN, 0.0);
        run.eval(&mut g, 3 * MIN);
        assert_eq!(run.sent.len(), 2);
        // Resolved: sent once more with endsAt = the resolve time.
        up(&mut run.store, 4 * MIN, 1.0);
        run.eval(&mut g, 4 * MIN);
        assert_eq!(run.sent.len(), 3);
        assert_eq!(run.sent[2].ends_at, 4 * MIN);
        assert_eq!(run.sent[2].starts_at, MIN);
        assert_eq!(Run::state(&g).unwrap().0, AlertState::Inactive);
        // Forgotten after the resolved retention.
        for m in 5..=21 {
            up(&mut run.store, m * MIN, 1.0);
            run.eval(&mut g, m * MIN);
        }
        assert_eq!(Run::state(&g), None);
    }

    #[test]
    fn alert_limit_clears_state_and_errors() {
        let mut run = Run::new();
        let mut g =
            group("groups:\n- name: g\n  limit: 1\n  rules:\n  - alert: Down\n    expr: up == 0\n");
        g.mark_restored();
        up(&mut run.store, 0, 0.0);
        let k = Labels::from_pairs([("__name__", "up"), ("job", "k")]);
        run.store.append(&k, 0, 0.0).unwrap();
        let errs = run.eval(&mut g, 0);
        assert_eq!(errs[0].msg, "exceeded limit of 1 with 2 alerts");
        assert_eq!(Run::state(&g), None);
        assert!(g.states[0].health.last_error.is_some());
    }

    #[test]
    fn duplicate_alert_labelsets_are_an_error() {
        let mut run = Run::new();
        let mut g = group(
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    labels:\n      job: same\n",
        );
        up(&mut run.store, 0, 0.0);
        let k = Labels::from_pairs([("__name__", "up"), ("job", "k")]);
        run.store.append(&k, 0, 0.0).unwrap();
        let errs = run.eval(&mut g, 0);
        assert!(errs[0]
            .msg
            .contains("same labelset after applying alert labels"));
    }

    #[test]
    fn next_eval_is_aligned_to_the_interval_with_a_stable_offset() {
        let g = group(DOWN_30M);
        let a = g.next_eval_after(1_000_000);
        assert!(a > 1_000_000 && a <= 1_000_000 + MIN);
        assert_eq!(g.next_eval_after(a) - a, MIN);
        assert_eq!(g.next_eval_after(a - 1), a);
    }
}
