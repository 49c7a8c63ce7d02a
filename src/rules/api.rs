//! The `data` documents of `/api/v1/rules` and `/api/v1/alerts`, shaped as Prometheus 3 writes
//! them. The HTTP layer wraps them in the API envelope and parses the query parameters into
//! [`RulesFilter`].
//!
//! Owns: rendering groups, rules and alerts as JSON. Must not touch: routing, the envelope.
//! Deviation: `query` is the expression as written in the file; Prometheus prints its parsed
//! form (same meaning, possibly different spacing).

use super::file::RuleKind;
use super::group::{Alert, AlertState, Group};
use crate::http::json::{format_value, Json};
use crate::model::Labels;

/// `/api/v1/rules` parameters: `type`, `rule_name[]`, `rule_group[]`, `file[]`,
/// `exclude_alerts`.
#[derive(Clone, Debug, Default)]
pub struct RulesFilter {
    /// None: both kinds.
    pub kind: Option<RuleKind>,
    pub rule_names: Vec<String>,
    pub rule_groups: Vec<String>,
    pub files: Vec<String>,
    pub exclude_alerts: bool,
}

impl RulesFilter {
    /// From decoded query parameters; an unknown `type` is the API's `bad_data` error.
    pub fn from_params<'a>(
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<RulesFilter, String> {
        let mut f = RulesFilter::default();
        for (k, v) in params {
            match k {
                "type" => {
                    f.kind = match v {
                        "alert" => Some(RuleKind::Alerting),
                        "record" => Some(RuleKind::Recording),
                        "" => None,
                        other => return Err(format!("invalid query parameter type='{other}'")),
                    }
                }
                "rule_name[]" => f.rule_names.push(v.to_string()),
                "rule_group[]" => f.rule_groups.push(v.to_string()),
                "file[]" => f.files.push(v.to_string()),
                "exclude_alerts" => match v {
                    "true" => f.exclude_alerts = true,
                    "false" | "" => f.exclude_alerts = false,
                    other => {
                        return Err(format!("parsing exclude_alerts: invalid syntax: {other:?}"))
                    }
                },
                _ => {}
            }
        }
        Ok(f)
    }
}

/// Go's RFC 3339 with nanoseconds (trailing zeros dropped), UTC.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = crate::log::civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
    if milli != 0 {
        let f = format!("{milli:03}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

fn labels(j: &mut Json, l: &Labels) {
    j.begin_object();
    for (k, v) in l.iter() {
        j.key(k).string(v);
    }
    j.end_object();
}

fn pairs(j: &mut Json, l: &[(String, String)]) {
    j.begin_object();
    for (k, v) in l {
        j.key(k).string(v);
    }
    j.end_object();
}

fn seconds(j: &mut Json, d: std::time::Duration) {
    j.raw(&format!("{}", d.as_secs_f64()));
}

fn last_eval(j: &mut Json, evaluated: bool, ms: i64) {
    if evaluated {
        j.string(&rfc3339(ms));
    } else {
        j.string("0001-01-01T00:00:00Z");
    }
}

fn alert(j: &mut Json, a: &Alert) {
    j.begin_object();
    j.key("labels");
    labels(j, &a.labels);
    j.key("annotations");
    labels(j, &a.annotations);
    j.key("state").string(a.state.as_str());
    j.key("activeAt").string(&rfc3339(a.active_at));
    if a.keep_firing_since != 0 {
        j.key("keepFiringSince")
            .string(&rfc3339(a.keep_firing_since));
    }
    j.key("value").string(&format_exp_value(a.value));
    j.end_object();
}

/// Alert values are written with Go's `'e'` format (`1e+00`).
fn format_exp_value(v: f64) -> String {
    if v.is_finite() {
        crate::http::json::format_exp(v)
    } else {
        format_value(v)
    }
}

/// Writes the `data` object of `/api/v1/rules`.
pub fn write_rules(j: &mut Json, groups: &[Group], f: &RulesFilter) {
    j.begin_object().key("groups").begin_array();
    for g in groups {
        if !f.rule_groups.is_empty() && !f.rule_groups.contains(&g.def.name) {
            continue;
        }
        if !f.files.is_empty() && !f.files.contains(&g.def.file) {
            continue;
        }
        let chosen: Vec<usize> = (0..g.def.rules.len())
            .filter(|&i| {
                let r = &g.def.rules[i];
                f.kind.is_none_or(|k| k == r.kind)
                    && (f.rule_names.is_empty() || f.rule_names.contains(&r.name))
            })
            .collect();
        let filtered = f.kind.is_some() || !f.rule_names.is_empty();
        if filtered && chosen.is_empty() {
            continue;
        }
        j.begin_object();
        j.key("name").string(&g.def.name);
        j.key("file").string(&g.def.file);
        j.key("rules").begin_array();
        for i in chosen {
            let (r, s) = (&g.def.rules[i], &g.states[i]);
            j.begin_object();
            if r.kind == RuleKind::Alerting {
                let state = s
                    .active
                    .values()
                    .map(|a| a.state)
                    .max()
                    .unwrap_or(AlertState::Inactive);
                j.key("state").string(state.as_str());
            }
            j.key("name").string(&r.name);
            j.key("query").string(&r.expr_text);
            if r.kind == RuleKind::Alerting {
                j.key("duration").raw(&r.for_.as_secs().to_string());
                j.key("keepFiringFor")
                    .raw(&r.keep_firing_for.as_secs().to_string());
            }
            // Prometheus omits empty labels on recording rules only.
            if r.kind == RuleKind::Alerting || !r.labels.is_empty() {
                j.key("labels");
                pairs(j, &r.labels);
            }
            if r.kind == RuleKind::Alerting {
                j.key("annotations");
                pairs(j, &r.annotation_texts);
                if !f.exclude_alerts {
                    j.key("alerts").begin_array();
                    for a in s
                        .active
                        .values()
                        .filter(|a| a.state != AlertState::Inactive)
                    {
                        alert(j, a);
                    }
                    j.end_array();
                }
            }
            let health = match (&s.health.last_error, s.health.evaluated) {
                (Some(_), _) => "err",
                (None, true) => "ok",
                (None, false) => "unknown",
            };
            j.key("health").string(health);
            if let Some(e) = &s.health.last_error {
                j.key("lastError").string(e);
            }
            j.key("evaluationTime");
            seconds(j, s.health.eval_duration);
            j.key("lastEvaluation");
            last_eval(j, s.health.evaluated, s.health.last_eval_ms);
            j.key("type").string(if r.kind == RuleKind::Alerting {
                "alerting"
            } else {
                "recording"
            });
            j.end_object();
        }
        j.end_array();
        j.key("interval")
            .raw(&format!("{}", g.interval.as_secs_f64()));
        j.key("limit").raw(&g.def.limit.to_string());
        j.key("evaluationTime");
        seconds(j, g.last_duration);
        j.key("lastEvaluation");
        last_eval(j, g.last_eval_ms != 0, g.last_eval_ms);
        j.end_object();
    }
    j.end_array().end_object();
}

/// Writes the `data` object of `/api/v1/alerts`: pending and firing alerts of every rule.
pub fn write_alerts(j: &mut Json, groups: &[Group]) {
    j.begin_object().key("alerts").begin_array();
    for g in groups {
        for (_, a) in g.alerts() {
            if a.state != AlertState::Inactive {
                alert(j, a);
            }
        }
    }
    j.end_array().end_object();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::testing::MemStorage;
    use crate::promql::EngineOpts;
    use crate::rules::{EngineBackend, EvalContext, RuleFile};
    use std::time::Duration;

    fn evaluated_group() -> Group {
        let f = RuleFile::parse(
            "groups:\n- name: g\n  rules:\n  - record: r\n    expr: vector(2)\n  - alert: A\n    expr: vector(1)\n    for: 1m\n    labels: {sev: page}\n    annotations: {s: '{{ $value }}'}\n",
            "rules.yml",
            false,
        )
        .unwrap();
        let mut g = Group::new(f.groups[0].clone(), Duration::from_secs(60));
        g.mark_restored();
        let mut store = MemStorage::new();
        let opts = EngineOpts::default();
        let ext = Labels::new();
        let ctx = EvalContext {
            external_labels: &ext,
            external_url: "",
            resend_delay_ms: 60_000,
        };
        let mut b = EngineBackend::new(&mut store, &opts);
        let mut notify = |_: &str, _: &[crate::rules::OutgoingAlert]| {};
        g.eval(1_700_000_000_500, &mut b, &ctx, &mut notify);
        g
    }

    fn text(j: Json) -> String {
        String::from_utf8(j.into_bytes()).unwrap()
    }

    #[test]
    fn alerts_document_matches_prometheus_shape() {
        let g = evaluated_group();
        let mut j = Json::new();
        write_alerts(&mut j, std::slice::from_ref(&g));
        assert_eq!(
            text(j),
            r#"{"alerts":[{"labels":{"alertname":"A","sev":"page"},"annotations":{"s":"1"},"state":"pending","activeAt":"2023-11-14T22:13:20.5Z","value":"1e+00"}]}"#
        );
    }

    #[test]
    fn rules_document_lists_both_kinds_and_filters() {
        let g = evaluated_group();
        let mut j = Json::new();
        write_rules(&mut j, std::slice::from_ref(&g), &RulesFilter::default());
        let t = text(j);
        assert!(t.starts_with(r#"{"groups":[{"name":"g","file":"rules.yml","rules":[{"name":"r","query":"vector(2)","health":"ok","evaluationTime":"#), "{t}");
        assert!(t.contains(r#""state":"pending","name":"A","query":"vector(1)","duration":60,"keepFiringFor":0,"labels":{"sev":"page"},"annotations":{"s":"{{ $value }}"},"alerts":[{"#), "{t}");
        assert!(
            t.contains(r#""lastEvaluation":"2023-11-14T22:13:20.5Z","type":"alerting"}"#),
            "{t}"
        );
        assert!(
            t.contains(r#""interval":60,"limit":0,"evaluationTime":"#),
            "{t}"
        );
        let f = RulesFilter::from_params([("type", "record")]).unwrap();
        let mut j = Json::new();
        write_rules(&mut j, std::slice::from_ref(&g), &f);
        let t = text(j);
        assert!(
            t.contains(r#""name":"r""#) && !t.contains(r#""name":"A""#),
            "{t}"
        );
        let f = RulesFilter::from_params([("type", "alert"), ("exclude_alerts", "true")]).unwrap();
        let mut j = Json::new();
        write_rules(&mut j, std::slice::from_ref(&g), &f);
        assert!(!text(j).contains("\"alerts\""));
        assert!(RulesFilter::from_params([("type", "x")]).is_err());
    }

    #[test]
    fn rfc3339_drops_trailing_zeros() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_435_781_451_780), "2015-07-01T20:10:51.78Z");
    }
}
