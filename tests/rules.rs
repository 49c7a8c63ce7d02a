//! Rule files and rule unit tests against the real promtool: `promlet check rules` accepts and
//! rejects what `promtool check rules` does (our corpus in tests/data/rules-check plus the
//! rule files in ../shared/promtool-rule-tests), and `promlet test rules` gives the outcome the
//! shared README lists for every promtool rule-test file.

use crate::common;
use crate::common::{Prometheus, TempDir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Files promtool accepts that we reject on purpose: Go template builtins outside the subset
/// rule files use (`call`, `html`, `js`) are load-time errors here (issue 5: "anything else is
/// a load-time error, not a runtime surprise").
const DELIBERATE_REJECTS: &[&str] = &["tmplcall.yml"];

fn promlet(dir: &Path, args: &[&str]) -> Output {
    Command::new(common::promlet_bin())
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn yml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    v.sort();
    v
}

/// `promlet check rules` and `promtool check rules` agree on every file of both corpora.
#[test]
fn check_rules_agrees_with_promtool() {
    let Some(promtool) = common::stack_bin("promtool") else {
        return;
    };
    let Some(shared) = common::shared_dir("promtool-rule-tests") else {
        return;
    };
    let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rules-check");
    let mut files = yml_files(&ours);
    for f in [
        "rules-bad.yml",
        "rules_duplicates.yml",
        "features.yml",
        "bad-rules-syntax.yml",
        "bad-rules-error.yml",
        "rules.yml",
        "rules_extrafields.yml",
        "at-modifier.yml",
        "negative-offset.yml",
    ] {
        files.push(shared.join(f));
    }
    let (mut accepted, mut rejected) = (0, 0);
    let mut mismatches = Vec::new();
    for f in &files {
        let dir = f.parent().unwrap();
        let name = f.file_name().unwrap().to_str().unwrap();
        let theirs = Command::new(&promtool)
            .current_dir(dir)
            .args(["check", "rules", name])
            .output()
            .unwrap();
        let mine = promlet(dir, &["check", "rules", name]);
        let (t_ok, m_ok) = (theirs.status.success(), mine.status.success());
        if m_ok {
            accepted += 1;
        } else {
            rejected += 1;
            // Every rejection names the file and, when about a rule, where.
            let err = String::from_utf8_lossy(&mine.stderr);
            assert!(err.starts_with(name), "{name}: {err}");
        }
        let expected = if DELIBERATE_REJECTS.contains(&name) {
            !t_ok
        } else {
            t_ok
        };
        if m_ok != expected {
            mismatches.push(format!(
                "{name}: promtool {}, promlet {}: {}",
                if t_ok { "accepts" } else { "rejects" },
                if m_ok { "accepts" } else { "rejects" },
                String::from_utf8_lossy(&mine.stderr)
            ));
        }
    }
    eprintln!(
        "check rules: {} files, {accepted} accepted, {rejected} rejected",
        files.len()
    );
    assert!(accepted >= 15 && rejected >= 25, "{accepted} / {rejected}");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// Positioned errors: file:line:col, group, rule index, rule name and the reason.
#[test]
fn check_rules_errors_are_positioned() {
    let Some(shared) = common::shared_dir("promtool-rule-tests") else {
        return;
    };
    let out = promlet(&shared, &["check", "rules", "bad-rules-syntax.yml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "bad-rules-syntax.yml:7:15: group \"bad-syntax\", rule 1, \"x\": could not parse expression: 1:7: parse error: unexpected end of input\n"
    );
    let out = promlet(&shared, &["check", "rules", "rules-bad.yml"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "rules-bad.yml:12:11: group \"alerts\", rule 1, \"InstanceDown\": annotation \"summary\": template: __alert_InstanceDown:1: undefined variable \"$label\"\n"
    );
    let out = promlet(&shared, &["check", "rules", "rules.yml"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "rules.yml: SUCCESS: 5 rules found\n"
    );
}

/// (file, extra args, expected exit code, text the output must contain).
const RULE_TESTS: &[(&str, &[&str], i32, &str)] = &[
    ("unittest.yml", &[], 0, "SUCCESS"),
    ("long-period.yml", &[], 0, "SUCCESS"),
    ("start-time-test.yml", &[], 0, "SUCCESS"),
    ("no-test-group-interval.yml", &[], 0, "SUCCESS"),
    ("at-modifier-test.yml", &[], 0, "SUCCESS"),
    ("negative-offset-test.yml", &[], 0, "SUCCESS"),
    (
        "rules_run.yml",
        &[],
        1,
        "    name: wrong test,\n    expr: \"test\", time: 0s,\n        exp: {__name__=\"test\"} 1E+00\n        got: {__name__=\"test\"} 0E+00\n",
    ),
    ("rules_run.yml", &["--run", "correct"], 0, "SUCCESS"),
    ("rules_run_fuzzy.yml", &["--run", "correct"], 0, "SUCCESS"),
    (
        "rules_run_fuzzy.yml",
        &["--run", "wrong"],
        1,
        "got: {__name__=\"test_low\"} 2.9999999999999987E+00",
    ),
    (
        "rules_run_no_fuzzy.yml",
        &[],
        1,
        "got: {__name__=\"test_low\"} 2.9999999999999996E+00",
    ),
    (
        "rules_run_extrafields.yml",
        &[],
        1,
        "rules_extrafields.yml:7:5: field namespace not found",
    ),
    (
        "rules_run_extrafields.yml",
        &["--ignore-unknown-fields"],
        0,
        "SUCCESS",
    ),
    (
        "failing.yml",
        &[],
        1,
        "    name: Failing alert test,\n    alertname: InstanceDown, time: 5m, \n        exp:[], \n        got:[\n            0:\n              Labels:{alertname=\"InstanceDown\", job=\"test\", severity=\"page\"}\n              Annotations:{description=\" of job test has been down for more than 5 minutes.\", summary=\"Instance  down\"}\n            ]\n",
    ),
    ("bad-input-series.yml", &[], 1, "FAILED"),
    (
        "bad-promql.yml",
        &[],
        1,
        "expr: \"join_1 + on(a) join_2\", time: 0s, err: found duplicate series",
    ),
    (
        "bad-rules-syntax-test.yml",
        &[],
        1,
        "bad-rules-syntax.yml:7:15: group \"bad-syntax\", rule 1, \"x\": could not parse expression",
    ),
    (
        "bad-rules-error-test.yml",
        &[],
        1,
        "rule: joined, time: 0s, err: found duplicate series",
    ),
];

/// Every promtool rule-test file gives promtool's outcome (exit code and the failure text
/// where it matters); the real promtool is run on each file too, to confirm the expectation.
#[test]
fn test_rules_gives_promtools_outcomes() {
    let Some(shared) = common::shared_dir("promtool-rule-tests") else {
        return;
    };
    let promtool = common::stack_bin("promtool");
    let mut failures = Vec::new();
    for (file, extra, code, needle) in RULE_TESTS {
        let mut args = vec!["test", "rules"];
        args.extend_from_slice(extra);
        args.push(file);
        let out = promlet(&shared, &args);
        let text = String::from_utf8_lossy(&out.stdout);
        if out.status.code() != Some(*code) || !text.contains(needle) {
            failures.push(format!(
                "{file} {extra:?}: exit {:?}, want {code} and {needle:?} in:\n{text}",
                out.status.code()
            ));
        }
        // start_timestamp is newer than promtool 3.5, which rejects that file.
        if let (Some(p), false) = (&promtool, *file == "start-time-test.yml") {
            let theirs = Command::new(p)
                .current_dir(&shared)
                .args(&args)
                .output()
                .unwrap();
            assert_eq!(theirs.status.code(), Some(*code), "promtool on {file}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Failures on native histograms print exactly what promtool prints: every expectation below
/// is wrong on purpose, so both tools show what they got (histograms in the series notation,
/// floats from histogram functions, dropped samples as nil).
#[test]
fn native_histogram_failures_print_like_promtool() {
    const QUERIES: &[(&str, &str)] = &[
        ("-h", "2m"),
        ("h{a=\"1\"} - ignoring(a) h{a=\"2\"}", "2m"),
        ("h * 2", "2m"),
        ("2 / h", "2m"),
        ("sum(h) + sum(g)", "3m"),
        ("avg(h)", "2m"),
        ("histogram_quantile(0.7, h)", "2m"),
        ("histogram_fraction(0.5, 2, h)", "2m"),
        ("histogram_stddev(h)", "2m"),
        ("increase(h[3m])", "3m"),
        ("rate(h[5m])", "3m"),
        ("delta(g[3m])", "3m"),
        ("irate(h[3m])", "3m"),
        ("sum_over_time(h[3m])", "3m"),
        ("avg_over_time(h[3m])", "3m"),
        ("h == h", "3m"),
        ("last_over_time(h[2m])", "3m"),
        ("histogram_count(h)", "3m"),
        ("count(h)", "3m"),
    ];
    let mut doc = String::from(
        "evaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n      \
         - series: h{a=\"1\"}\n        values: \"{{schema:1 sum:3 count:2 buckets:[1 1] z_bucket:1 \
         z_bucket_w:0.001}}+{{schema:1 sum:1 count:1 buckets:[1]}}x3\"\n      \
         - series: h{a=\"2\"}\n        values: \"{{schema:0 sum:5 count:4 buckets:[2 2] offset:1 \
         n_buckets:[1]}}x3\"\n      - series: g\n        values: \"{{sum:5 count:4 buckets:[2 2] \
         counter_reset_hint:gauge}}x3\"\n    promql_expr_test:\n",
    );
    for (q, t) in QUERIES {
        doc.push_str(&format!(
            "      - expr: '{q}'\n        eval_time: {t}\n        exp_samples:\n          \
             - labels: '{{}}'\n            histogram: '{{{{count:1}}}}'\n"
        ));
    }
    let tmp = TempDir::new("nh-failures");
    std::fs::write(tmp.0.join("nh.yml"), &doc).unwrap();
    let ours = promlet(&tmp.0, &["test", "rules", "nh.yml"]);
    let ours_text = String::from_utf8_lossy(&ours.stdout).to_string();
    assert_eq!(ours.status.code(), Some(1), "{ours_text}");
    // Checked without promtool too: a few lines promtool 3.5.3 prints for this file.
    for want in [
        "got: {} {{z_bucket:1 z_bucket_w:0.001 counter_reset_hint:not_reset buckets:[3 -1 -2] n_buckets:[-1]}}",
        "got: {a=\"1\"} 9.771599684342459E-01, {a=\"2\"} 2.6390158215457884E+00",
        "got: {a=\"1\"} {{schema:1 count:3 sum:3 z_bucket_w:0.001 counter_reset_hint:gauge buckets:[3]}}, {a=\"2\"} {{counter_reset_hint:gauge}}",
    ] {
        assert!(ours_text.contains(want), "missing {want:?} in:\n{ours_text}");
    }
    if let Some(p) = common::stack_bin("promtool") {
        let theirs = Command::new(p)
            .current_dir(&tmp.0)
            .args(["test", "rules", "nh.yml"])
            .output()
            .unwrap();
        assert_eq!(theirs.status.code(), Some(1));
        // promtool writes the failures to stderr and blank lines to stdout.
        let lines = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with("Unit Testing:"))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(
            lines(&ours_text),
            lines(&String::from_utf8_lossy(&theirs.stderr))
        );
    }
}

/// Our own rule tests (tests/data/rule-tests: group labels, query_offset, limit, `for`,
/// keep_firing_for, stale markers, ALERTS / ALERTS_FOR_STATE, group_eval_order and template
/// output of every function) pass with the real promtool and with promlet; a one-character
/// change to an expected annotation makes both fail.
#[test]
fn own_rule_tests_pass_in_promtool_and_promlet() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rule-tests");
    let promtool = common::stack_bin("promtool");
    let tests: Vec<PathBuf> = yml_files(&dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with("-test.yml"))
        .collect();
    assert!(tests.len() >= 2);
    for t in &tests {
        let name = t.file_name().unwrap().to_str().unwrap();
        let out = promlet(&dir, &["test", "rules", name]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        if let Some(p) = &promtool {
            let theirs = Command::new(p)
                .current_dir(&dir)
                .args(["test", "rules", name])
                .output()
                .unwrap();
            assert_eq!(theirs.status.code(), Some(0), "promtool on {name}");
        }
    }
    let tmp = TempDir::new("rule-tests-mutated");
    let text = std::fs::read_to_string(dir.join("edge-test.yml")).unwrap();
    assert!(text.contains("12.35k"));
    std::fs::write(
        tmp.0.join("edge-test.yml"),
        text.replace("12.35k", "12.34k"),
    )
    .unwrap();
    std::fs::copy(dir.join("edge-rules.yml"), tmp.0.join("edge-rules.yml")).unwrap();
    let out = promlet(&tmp.0, &["test", "rules", "edge-test.yml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("h=\"123u 0 50ms 1 12.35k\""));
    if let Some(p) = &promtool {
        let theirs = Command::new(p)
            .current_dir(&tmp.0)
            .args(["test", "rules", "edge-test.yml"])
            .output()
            .unwrap();
        assert_eq!(theirs.status.code(), Some(1));
    }
}

/// Replaces the values of time-dependent keys so two documents can be compared.
fn normalize_times(doc: &str) -> String {
    let mut out = doc.to_string();
    for key in [
        "\"evaluationTime\":",
        "\"lastEvaluation\":",
        "\"activeAt\":",
    ] {
        let mut res = String::new();
        let mut rest = out.as_str();
        while let Some(i) = rest.find(key) {
            res.push_str(&rest[..i + key.len()]);
            rest = &rest[i + key.len()..];
            let end = if let Some(r) = rest.strip_prefix('"') {
                r.find('"').map(|e| e + 2).unwrap_or(rest.len())
            } else {
                rest.find([',', '}']).unwrap_or(rest.len())
            };
            res.push_str("\"T\"");
            rest = &rest[end..];
        }
        res.push_str(rest);
        out = res;
    }
    out
}

/// `/api/v1/rules` and `/api/v1/alerts` documents equal a real Prometheus 3.5's for the same
/// rule file (rules over constants, so both sides see the same data), times aside.
#[test]
fn rules_and_alerts_documents_match_prometheus() {
    use promlet::http::json::Json;
    use promlet::rules::api::{write_alerts, write_rules, RulesFilter};
    let tmp = TempDir::new("rules-api");
    let rules = "groups:\n- name: consts\n  interval: 1s\n  limit: 10\n  rules:\n  - record: two\n    expr: vector(2)\n    labels: {kind: const}\n  - alert: Always\n    expr: vector(1)\n    labels: {severity: '{{ if gt $value 0.5 }}page{{ end }}'}\n    annotations: {summary: 'value {{ $value | humanize }}'}\n  - alert: Slow\n    expr: vector(3) > 1\n    for: 1h\n    keep_firing_for: 5m\n  - alert: Never\n    expr: vector(1) > 5\n- name: second\n  interval: 1s\n  rules:\n  - record: three\n    expr: vector(3)\n";
    std::fs::write(tmp.0.join("rules.yml"), rules).unwrap();
    let Some(prom) = Prometheus::launch_in(
        tmp,
        "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n",
        &[],
    ) else {
        return;
    };
    let port = prom.port;
    // Wait until both groups have been evaluated twice.
    let mut theirs = String::new();
    for _ in 0..100 {
        let (_, _, body) = common::http_get(port, "/api/v1/rules", "");
        theirs = String::from_utf8(body).unwrap();
        if theirs.contains("\"state\":\"firing\"") && !theirs.contains("0001-01-01") {
            std::thread::sleep(std::time::Duration::from_millis(1500));
            let (_, _, body) = common::http_get(port, "/api/v1/rules", "");
            theirs = String::from_utf8(body).unwrap();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (_, _, alerts_body) = common::http_get(port, "/api/v1/alerts", "");
    let their_alerts = String::from_utf8(alerts_body).unwrap();

    let files = promlet::rules::manager::expand_globs(&prom.dir.0, &["rules.yml".into()]).unwrap();
    let mut defs = promlet::rules::manager::load_files(&files, false).unwrap();
    for d in &mut defs {
        d.file = "rules.yml".into();
    }
    let mut m = promlet::rules::Manager::new();
    m.update(defs, std::time::Duration::from_secs(60));
    let mut store = promlet::promql::testing::MemStorage::new();
    let opts = promlet::promql::EngineOpts::default();
    let ext = promlet::model::Labels::new();
    let ctx = promlet::rules::EvalContext {
        external_labels: &ext,
        external_url: "",
        resend_delay_ms: 60_000,
    };
    let mut b = promlet::rules::EngineBackend::new(&mut store, &opts);
    let mut notify = |_: &str, _: &[promlet::rules::OutgoingAlert]| {};
    let mut now = 1_700_000_000_000;
    m.run_due(now, &mut b, &ctx, &mut notify);
    for _ in 0..3 {
        now = m.next_deadline().unwrap();
        assert!(m.run_due(now, &mut b, &ctx, &mut notify).is_empty());
    }
    let mut j = Json::new();
    write_rules(&mut j, m.groups(), &RulesFilter::default());
    let ours = format!(
        "{{\"status\":\"success\",\"data\":{}}}",
        String::from_utf8(j.into_bytes()).unwrap()
    );
    assert_eq!(normalize_times(&ours), normalize_times(&theirs));
    let mut j = Json::new();
    write_alerts(&mut j, m.groups());
    let ours = format!(
        "{{\"status\":\"success\",\"data\":{}}}",
        String::from_utf8(j.into_bytes()).unwrap()
    );
    // Prometheus lists alerts in map order; compare as sorted lists of alert objects.
    let split = |s: &str| {
        let mut v: Vec<String> = normalize_times(s)
            .split("{\"labels\"")
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    assert_eq!(split(&ours), split(&their_alerts));
}

/// `promlet check config` also loads the rule files the config names (globs relative to the
/// config file), as `promtool check config` does, and reports their errors with positions.
#[test]
fn check_config_checks_rule_files() {
    let Some(shared) = common::shared_dir("promtool-rule-tests") else {
        return;
    };
    let tmp = TempDir::new("check-config-rules");
    std::fs::create_dir_all(tmp.0.join("rules")).unwrap();
    std::fs::copy(shared.join("rules.yml"), tmp.0.join("rules/a.yml")).unwrap();
    std::fs::write(tmp.0.join("good.yml"), "rule_files: ['rules/*.yml']\n").unwrap();
    let out = promlet(&tmp.0, &["check", "config", "good.yml"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "good.yml: SUCCESS: 2 rule groups found\n"
    );
    std::fs::copy(shared.join("rules-bad.yml"), tmp.0.join("rules/b.yml")).unwrap();
    let out = promlet(&tmp.0, &["check", "config", "good.yml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .starts_with("rules/b.yml:12:11: group \"alerts\", rule 1, \"InstanceDown\""));
    std::fs::write(tmp.0.join("missing.yml"), "rule_files: [nope.yml]\n").unwrap();
    let out = promlet(&tmp.0, &["check", "config", "missing.yml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "nope.yml: no such rule file\n"
    );
}
