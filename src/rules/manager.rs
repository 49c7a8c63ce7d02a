//! The set of rule groups the agent runs: loading `rule_files` globs, the per-group schedule,
//! and reloads that keep alert state.
//!
//! Owns: [`Manager`]. Must not touch: the clock (the caller passes wall-clock ms), the engine
//! and delivery (through [`RuleBackend`] and [`NotifyFn`]). The agent calls
//! [`Manager::next_deadline`] to know when to wake and [`Manager::run_due`] when it does.

use super::file::{GroupDef, RuleError, RuleFile};
use super::group::{EvalContext, Group, NotifyFn, RuleBackend, RuleEvalError};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Most files one `rule_files` glob may expand to; a glob matching more is an error rather
/// than a surprise load of thousands of files on a small device.
pub const MAX_RULE_FILES: usize = 1000;

/// Expands `rule_files` patterns (relative to `base`): `*` and `?` in any path component.
/// A pattern without wildcards names one file, which must exist.
pub fn expand_globs(base: &Path, patterns: &[String]) -> Result<Vec<PathBuf>, RuleError> {
    let mut out = Vec::new();
    for p in patterns {
        let files = glob(base, p);
        if !p.contains(['*', '?']) && !files.iter().all(|f| f.is_file()) {
            return Err(RuleError {
                file: p.clone(),
                pos: None,
                context: String::new(),
                msg: "no such rule file".into(),
            });
        }
        if files.len() > MAX_RULE_FILES {
            return Err(RuleError {
                file: p.clone(),
                pos: None,
                context: String::new(),
                msg: format!("matches more than {MAX_RULE_FILES} files"),
            });
        }
        for f in files {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

/// Loads every file; all errors of all files are returned together.
pub fn load_files(
    files: &[PathBuf],
    ignore_unknown_fields: bool,
) -> Result<Vec<GroupDef>, Vec<RuleError>> {
    let mut groups = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        match RuleFile::load(f, ignore_unknown_fields) {
            Ok(rf) => groups.extend(rf.groups),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(groups)
    } else {
        Err(errors)
    }
}

/// `*` and `?` in path components; directories read in sorted order.
pub fn glob(base: &Path, pattern: &str) -> Vec<PathBuf> {
    let full = if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        base.join(pattern)
    };
    if !pattern.contains(['*', '?']) {
        return vec![full];
    }
    let mut cur = vec![PathBuf::new()];
    for comp in full.components() {
        let c = comp.as_os_str().to_string_lossy().to_string();
        let mut next = Vec::new();
        for p in &cur {
            if !c.contains(['*', '?']) {
                next.push(p.join(&c));
                continue;
            }
            let dir = if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.clone()
            };
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut names: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| !n.starts_with('.') || c.starts_with('.'))
                .collect();
            names.sort_unstable();
            for n in names {
                if wildcard(&c, &n) {
                    next.push(p.join(n));
                }
            }
        }
        cur = next;
    }
    cur
}

/// Shell-style match of `*` (any run) and `?` (one character).
pub fn wildcard(p: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (p.chars().collect(), s.chars().collect());
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// All groups with their schedules.
#[derive(Default)]
pub struct Manager {
    groups: Vec<Group>,
    /// Next evaluation time (wall ms) per group; None until the first `run_due`.
    next: Vec<Option<i64>>,
    /// Whether groups created from now on restore `for` state (only at start-up).
    started: bool,
}

impl Manager {
    pub fn new() -> Manager {
        Manager::default()
    }

    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// Replaces the group set. A group with the same file and name as before keeps its alert
    /// state (rules matched by name, expression and labels) and its schedule. Groups that are
    /// new after start-up do not restore `for` state (as Prometheus: only at start-up).
    pub fn update(&mut self, defs: Vec<GroupDef>, default_interval: Duration) {
        let mut old: Vec<(Group, Option<i64>)> = std::mem::take(&mut self.groups)
            .into_iter()
            .zip(std::mem::take(&mut self.next))
            .collect();
        for def in defs {
            let mut g = Group::new(def, default_interval);
            let mut next = None;
            if let Some(i) = old
                .iter()
                .position(|(o, _)| o.def.file == g.def.file && o.def.name == g.def.name)
            {
                let (o, n) = old.remove(i);
                g.copy_state(&o);
                g.last_eval_ms = o.last_eval_ms;
                g.last_duration = o.last_duration;
                if o.interval == g.interval {
                    next = n;
                }
            } else if self.started {
                g.mark_restored();
            }
            self.groups.push(g);
            self.next.push(next);
        }
        self.started = true;
    }

    /// The wall clock stepped by `delta` ms: every group's alert times move with it
    /// ([`Group::shift_time`]). Schedules need nothing: `run_due` realigns them.
    pub fn shift_time(&mut self, delta: i64) {
        for g in &mut self.groups {
            g.shift_time(delta);
        }
    }

    /// The earliest time (wall ms) a group is due, if any group exists and has been scheduled.
    pub fn next_deadline(&self) -> Option<i64> {
        self.next.iter().flatten().copied().min()
    }

    /// Evaluates every group whose time has come, at its aligned slot time (the latest slot not
    /// after `now`; missed slots are skipped, not replayed). A wall clock that stepped back by
    /// more than an interval reschedules from `now`.
    pub fn run_due(
        &mut self,
        now_ms: i64,
        backend: &mut dyn RuleBackend,
        ctx: &EvalContext<'_>,
        notify: &mut NotifyFn<'_>,
    ) -> Vec<(String, RuleEvalError)> {
        let mut errors = Vec::new();
        for (g, next) in self.groups.iter_mut().zip(self.next.iter_mut()) {
            let iv = g.interval.as_millis().max(1) as i64;
            let due = match *next {
                None => {
                    *next = Some(g.next_eval_after(now_ms));
                    continue;
                }
                Some(n) if now_ms < n - iv => {
                    *next = Some(g.next_eval_after(now_ms));
                    continue;
                }
                Some(n) if now_ms < n => continue,
                Some(n) => n + (now_ms - n) / iv * iv,
            };
            for e in g.eval(due, backend, ctx, notify) {
                errors.push((g.def.name.clone(), e));
            }
            *next = Some(due + iv);
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;
    use crate::promql::testing::MemStorage;
    use crate::promql::EngineOpts;
    use crate::rules::group::AlertState;
    use crate::rules::EngineBackend;
    use crate::tsdb::{Appender, Querier};

    fn defs(yaml: &str) -> Vec<GroupDef> {
        RuleFile::parse(yaml, "r.yml", false).unwrap().groups
    }

    /// The evaluation context every test here uses: no external URL, a 1 m resend delay.
    fn test_context(external_labels: &Labels) -> EvalContext<'_> {
        EvalContext {
            external_labels,
            external_url: "",
            resend_delay_ms: 60_000,
        }
    }

    #[test]
    fn groups_run_at_their_interval_and_skip_missed_slots() {
        let mut m = Manager::new();
        m.update(
            defs("groups:\n- name: fast\n  interval: 10s\n  rules:\n  - record: one\n    expr: vector(1)\n"),
            Duration::from_secs(60),
        );
        let mut store = MemStorage::new();
        let opts = EngineOpts::default();
        let ext = Labels::new();
        let ctx = test_context(&ext);
        let mut notify = |_: &str, _: &[crate::rules::OutgoingAlert]| {};
        let mut b = EngineBackend::new(&mut store, &opts);
        assert!(m.run_due(1_000_000, &mut b, &ctx, &mut notify).is_empty());
        let first = m.next_deadline().unwrap();
        assert!(first > 1_000_000 && first <= 1_010_000);
        m.run_due(first, &mut b, &ctx, &mut notify);
        assert_eq!(m.next_deadline(), Some(first + 10_000));
        // 35 s late: one evaluation at the latest slot, then the next slot.
        m.run_due(first + 45_000, &mut b, &ctx, &mut notify);
        assert_eq!(m.next_deadline(), Some(first + 50_000));
        let matchers =
            [
                crate::model::Matcher::new(crate::model::MatchOp::Equal, "__name__", "one")
                    .unwrap(),
            ];
        let s = store.select(&matchers, 0, i64::MAX);
        let times: Vec<i64> = s[0].samples.iter().map(|p| p.t).collect();
        assert_eq!(times, vec![first, first + 40_000]);
    }

    #[test]
    fn reload_keeps_alert_state_of_unchanged_rules() {
        let yaml = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: vector(1)\n    for: 1h\n";
        let mut m = Manager::new();
        m.update(defs(yaml), Duration::from_secs(60));
        let mut store = MemStorage::new();
        store
            .append(&Labels::from_pairs([("__name__", "x")]), 0, 1.0)
            .unwrap();
        let opts = EngineOpts::default();
        let ext = Labels::new();
        let ctx = test_context(&ext);
        let mut notify = |_: &str, _: &[crate::rules::OutgoingAlert]| {};
        let mut b = EngineBackend::new(&mut store, &opts);
        m.run_due(0, &mut b, &ctx, &mut notify);
        let t = m.next_deadline().unwrap();
        m.run_due(t, &mut b, &ctx, &mut notify);
        let active_at = m.groups()[0].alerts().next().unwrap().1.active_at;
        m.update(defs(yaml), Duration::from_secs(60));
        assert_eq!(
            m.groups()[0].alerts().next().unwrap().1.active_at,
            active_at
        );
        assert_eq!(m.next_deadline(), Some(t + 60_000));
        // A changed expression starts fresh.
        m.update(
            defs(&yaml.replace("vector(1)", "vector(2)")),
            Duration::from_secs(60),
        );
        assert!(m.groups()[0].alerts().next().is_none());
    }

    /// A pending `for: 10m` alert keeps counting real time across wall-clock steps: set back
    /// by 3 days it fires 10 minutes after it became active, not 3 days later; set forward by
    /// 3 days it does not fire at once.
    #[test]
    fn for_duration_counts_real_time_across_clock_steps() {
        let yaml = "groups:\n- name: g\n  interval: 1m\n  rules:\n  - alert: A\n    expr: vector(1)\n    for: 10m\n";
        let opts = EngineOpts::default();
        let ext = Labels::new();
        let ctx = test_context(&ext);
        let day3 = 3 * 86_400_000;
        for step in [-day3, day3] {
            let mut m = Manager::new();
            m.update(defs(yaml), Duration::from_secs(60));
            let mut store = MemStorage::new();
            let mut notify = |_: &str, _: &[crate::rules::OutgoingAlert]| {};
            let mut b = EngineBackend::new(&mut store, &opts);
            let t0 = 1_760_000_000_000;
            // Slots at 0..=5 minutes on the old clock, then the clock steps.
            let mut t = t0;
            for _ in 0..6 {
                m.run_due(t, &mut b, &ctx, &mut notify);
                t = m.next_deadline().unwrap();
            }
            let state = |m: &Manager| m.groups()[0].alerts().next().unwrap().1.state;
            assert_eq!(state(&m), AlertState::Pending);
            m.shift_time(step);
            let mut t = t + step;
            let mut fired_after = None;
            for i in 6..20 {
                m.run_due(t, &mut b, &ctx, &mut notify);
                if state(&m) == AlertState::Firing {
                    fired_after = Some(i);
                    break;
                }
                t = m.next_deadline().unwrap();
            }
            // The first call only schedules; active from the second, firing 10 slots later.
            assert_eq!(fired_after, Some(11), "step {step}");
        }
    }

    #[test]
    fn globs_expand_sorted_and_missing_literal_files_are_errors() {
        let dir = std::env::temp_dir().join(format!("promlet-glob-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("rules")).unwrap();
        for n in ["b.yml", "a.yml", "c.txt"] {
            std::fs::write(dir.join("rules").join(n), "groups: []\n").unwrap();
        }
        let files = expand_globs(&dir, &["rules/*.yml".to_string()]).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["a.yml", "b.yml"]);
        assert!(expand_globs(&dir, &["rules/none.yml".to_string()]).is_err());
        assert!(expand_globs(&dir, &["nowhere/*.yml".to_string()])
            .unwrap()
            .is_empty());
        let _ = std::fs::remove_dir_all(&dir);
        assert!(wildcard("*.y?l", "x.yml"));
        assert!(!wildcard("a*", "ba"));
    }
}
