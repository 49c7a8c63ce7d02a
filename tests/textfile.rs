//! The textfile collector against node_exporter 1.11: its own test cases (inputs and expected
//! `.out` files in shared/node-fixtures/textfile/) and the real node_exporter binary run over
//! the same directories. Compared family by family, sample line by sample line.

use crate::common::{self, TempDir};
use promlet::collect::textfile::Textfile;
use promlet::collect::{Collector, Context, Roots};
use promlet::expo::{encode_text, MetricSet};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// node_exporter's cases: (name of the `.out` file, directory or glob under textfile/).
const CASES: &[(&str, &str)] = &[
    ("client_side_timestamp", "client_side_timestamp"),
    ("different_metric_types", "different_metric_types"),
    ("glob_extra_dimension", "*_extra_dimension"),
    ("histogram", "histogram"),
    ("histogram_extra_dimension", "histogram_extra_dimension"),
    ("inconsistent_metrics", "inconsistent_metrics"),
    (
        "metrics_merge_different_help",
        "metrics_merge_different_help",
    ),
    ("metrics_merge_empty_help", "metrics_merge_empty_help"),
    ("metrics_merge_no_help", "metrics_merge_no_help"),
    ("metrics_merge_same_help", "metrics_merge_same_help"),
    ("no_metric_files", "no_metric_files"),
    ("nonexistent_path", "nonexistent_path"),
    ("summary", "summary"),
    ("summary_extra_dimension", "summary_extra_dimension"),
    ("two_metric_files", "two_metric_files"),
];

fn collect(dir: &str) -> String {
    let mut c = Textfile::new(dir);
    let roots = Roots::default();
    let ctx = Context {
        roots: &roots,
        now_ms: 0,
    };
    let mut set = MetricSet::new();
    c.collect(&ctx, &mut set).unwrap();
    let mut out = Vec::new();
    encode_text(&set, &mut out);
    String::from_utf8(out).unwrap()
}

/// Splits an exposition into families: name → its lines (HELP, TYPE, samples) in order.
fn families(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut fams: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            current = rest.split(' ').next().unwrap_or("").to_string();
        }
        fams.entry(current.clone())
            .or_default()
            .push(line.to_string());
    }
    fams
}

fn diff(case: &str, want: &str, got: &str) -> Vec<String> {
    let (w, g) = (families(want), families(got));
    let mut problems = Vec::new();
    for name in w
        .keys()
        .chain(g.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        if w.get(name) != g.get(name) {
            problems.push(format!(
                "{case}: family {name}\n  want: {:#?}\n  got:  {:#?}",
                w.get(name),
                g.get(name)
            ));
        }
    }
    problems
}

/// Each of node_exporter's textfile cases gives its expected `.out`, family by family. The
/// upstream test runs from the repo with relative `fixtures/textfile/...` paths and pins
/// every mtime to 1; we run on absolute paths, so those two are mapped before comparing.
#[test]
fn textfile_cases_match_node_exporter_expected_output() {
    let Some(root) = common::shared_dir("node-fixtures/textfile") else {
        return;
    };
    let root = root.canonicalize().unwrap();
    let prefix = format!("{}/", root.display());
    let mut problems = Vec::new();
    for (case, dir) in CASES {
        let want = std::fs::read_to_string(root.join(format!("{case}.out"))).unwrap();
        let got = collect(&format!("{prefix}{dir}"));
        let got = got.replace(&prefix, "fixtures/textfile/");
        let got: String = got
            .lines()
            .map(|l| match l.strip_prefix("node_textfile_mtime_seconds{") {
                Some(rest) => {
                    let (labels, _) = rest.rsplit_once(' ').unwrap();
                    format!("node_textfile_mtime_seconds{{{labels} 1\n")
                }
                None => format!("{l}\n"),
            })
            .collect();
        problems.extend(diff(case, &want, &got));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The real node_exporter 1.11 with only the textfile collector, over the same directories:
/// identical textfile families (real mtimes this time, no mapping at all).
#[test]
fn textfile_cases_match_real_node_exporter() {
    let Some(root) = common::shared_dir("node-fixtures/textfile") else {
        return;
    };
    let Some(exporter) = common::stack_bin("prometheus-node-exporter") else {
        return;
    };
    let root = root.canonicalize().unwrap();
    let mut problems = Vec::new();
    for (case, dir) in CASES {
        let dir = format!("{}/{dir}", root.display());
        let theirs = scrape_node_exporter(&exporter, &dir);
        let ours = collect(&dir);
        problems.extend(diff(case, &theirs, &ours));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Runs node_exporter with only the textfile collector and returns its textfile families.
fn scrape_node_exporter(exporter: &Path, dir: &str) -> String {
    let port = common::free_port();
    let _child = common::ChildGuard::spawn(
        Command::new(exporter)
            .arg("--collector.disable-defaults")
            .arg("--collector.textfile")
            // No go_/process_ metrics: a fixture has a family named go_goroutines.
            .arg("--web.disable-exporter-metrics")
            .arg(format!("--collector.textfile.directory={dir}"))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    assert!(common::wait_for_port(port), "node_exporter did not start");
    let (status, _, body) = common::http_get(port, "/metrics", "");
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let skip = ["node_exporter_build_info", "node_scrape_collector_"];
    families(&text)
        .into_iter()
        .filter(|(name, _)| !skip.iter().any(|s| name.starts_with(s)))
        .flat_map(|(_, lines)| lines)
        .map(|l| l + "\n")
        .collect()
}

/// A half-written file (cut mid-line) and a FIFO are skipped with the error metric set; the
/// good file beside them still shows, and the collector keeps working once the file is whole again.
#[test]
fn half_written_file_is_skipped_without_poisoning_others() {
    let dir = TempDir::new("textfile");
    std::fs::write(
        dir.join("good.prom"),
        "# HELP good_total Good.\n# TYPE good_total counter\ngood_total 3\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("half.prom"),
        "# TYPE half gauge\nhalf{x=\"1\"} 1\nhalf{x=\"2",
    )
    .unwrap();
    std::fs::write(dir.join("ignored.prom.tmp"), "garbage {{{\n").unwrap();
    // A FIFO named *.prom must not block the collector (nobody ever writes to it).
    let fifo = Command::new("mkfifo").arg(dir.join("pipe.prom")).status();
    assert!(fifo.map(|s| s.success()).unwrap_or(false), "mkfifo failed");
    let d = dir.to_str().unwrap();
    let out = collect(d);
    assert!(out.contains("good_total 3\n"), "{out}");
    assert!(!out.contains("half"), "{out}");
    assert!(out.contains("node_textfile_scrape_error 1\n"), "{out}");
    assert!(
        out.contains(&format!(
            "node_textfile_mtime_seconds{{file=\"{d}/good.prom\"}}"
        )),
        "{out}"
    );
    assert!(
        !out.contains("half.prom"),
        "no mtime for a failed file: {out}"
    );
    std::fs::remove_file(dir.join("pipe.prom")).unwrap();
    std::fs::write(
        dir.join("half.prom"),
        "# TYPE half gauge\nhalf{x=\"1\"} 1\nhalf{x=\"2\"} 2\n",
    )
    .unwrap();
    let out = collect(d);
    assert!(out.contains("half{x=\"2\"} 2\n"), "{out}");
    assert!(out.contains("node_textfile_scrape_error 0\n"), "{out}");
}

/// Conflicts across files and Go's regrouping quirks, each in its own directory, against the
/// real node_exporter: type clash, different label names, duplicate series, HELP on one side
/// only, metadata-only families, summaries/histograms out of order, fractional and negative
/// counts, an explicit +Inf bucket that disagrees with _count.
#[test]
fn textfile_conflicts_match_real_node_exporter() {
    let Some(exporter) = common::stack_bin("prometheus-node-exporter") else {
        return;
    };
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("types", &[("a.prom", "# TYPE x counter\nx 1\n"), ("b.prom", "# TYPE x gauge\nx{f=\"b\"} 2\n")]),
        ("labels", &[("a.prom", "x{a=\"1\"} 1\n"), ("b.prom", "x{b=\"1\"} 2\n")]),
        ("dups", &[("a.prom", "x{a=\"1\"} 1\ny 1\ny 5\n"), ("b.prom", "x{a=\"1\"} 2\nz 1\n")]),
        ("help_second", &[("a.prom", "x{f=\"a\"} 1\n"), ("b.prom", "# HELP x Has help.\nx{f=\"b\"} 2\n")]),
        ("help_first", &[("a.prom", "# HELP x Has help.\nx{f=\"a\"} 1\n"), ("b.prom", "x{f=\"b\"} 2\n")]),
        ("help_three", &[("a.prom", "# HELP x A.\nx{f=\"a\"} 1\n"), ("b.prom", "# HELP x B.\nx{f=\"b\"} 2\n"), ("c.prom", "# HELP x A.\nx{f=\"c\"} 3\n")]),
        ("meta_only", &[("a.prom", "# HELP only_meta x\n# TYPE only_meta gauge\nreal 1\n")]),
        ("empty_file", &[("a.prom", ""), ("b.prom", "# just a comment\n")]),
        ("regroup", &[("a.prom", "# TYPE s summary\ns{quantile=\"0.9\"} 2\ns{quantile=\"0.5\"} 1\ns 7\ns_count 3.7\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 5\nh_sum 1\nh_bucket{le=\"0.5\"} 0\n")]),
        ("fractional", &[("a.prom", "# TYPE h histogram\nh_bucket{x=\"1\",le=\"1\"} 1.5\nh_count{x=\"1\"} 2\nh_bucket{x=\"2\",le=\"1\"} 1\nh_count{x=\"2\"} 2\nh_sum{x=\"2\"} 0.25\n")]),
        ("explicit_inf", &[("a.prom", "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 7\nh_count 5\nh_sum 1.5\n")]),
        ("negative", &[("a.prom", "# TYPE g gauge\ng -1\n# TYPE c counter\nc -5\n# TYPE s summary\ns_count -3\n")]),
        ("escapes", &[("a.prom", "# HELP e Back\\\\slash and\\nnewline \"quoted\".\ne{v=\"a\\\"b\\\\c\\nd\"} 1\n")]),
        ("bad_and_good", &[("a.prom", "x 1\nx{\n"), ("b.prom", "y 2\n"), ("c.prom.tmp", "z 3\n")]),
    ];
    let base = TempDir::new("textfile-diff");
    let mut problems = Vec::new();
    for (case, files) in cases {
        let dir = base.join(case);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, body) in *files {
            std::fs::write(dir.join(name), body).unwrap();
        }
        let dir = dir.to_str().unwrap();
        let theirs = scrape_node_exporter(&exporter, dir);
        assert!(
            theirs.contains("node_textfile_scrape_error"),
            "{case}: {theirs}"
        );
        problems.extend(diff(case, &theirs, &collect(dir)));
    }
    // The default, an empty directory option: nothing read, no error.
    let theirs = scrape_node_exporter(&exporter, "");
    assert_eq!(
        theirs,
        "# HELP node_textfile_scrape_error 1 if there was an error opening or reading a file, 0 otherwise\n\
         # TYPE node_textfile_scrape_error gauge\nnode_textfile_scrape_error 0\n"
    );
    problems.extend(diff("default empty directory", &theirs, &collect("")));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The whole agent: the promlet binary started with `--collector.textfile.directory` and only
/// the textfile collector serves, over HTTP, the same textfile families as node_exporter for
/// every upstream case.
#[test]
fn promlet_binary_serves_what_node_exporter_serves() {
    let Some(root) = common::shared_dir("node-fixtures/textfile") else {
        return;
    };
    let Some(exporter) = common::stack_bin("prometheus-node-exporter") else {
        return;
    };
    let root = root.canonicalize().unwrap();
    let storage = TempDir::new("textfile-bin");
    let mut problems = Vec::new();
    for (case, dir) in CASES {
        let dir = format!("{}/{dir}", root.display());
        let theirs = scrape_node_exporter(&exporter, &dir);
        let port = common::free_port();
        let _promlet = common::ChildGuard::spawn(
            Command::new(common::promlet_bin())
                .arg("--collector.disable-defaults")
                .arg("--collector.textfile")
                .arg(format!("--collector.textfile.directory={dir}"))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    storage.join(case).display()
                ))
                .arg("--log.level=error")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null()),
        );
        assert!(common::wait_for_port(port), "promlet did not start");
        let (status, _, body) = common::http_get(port, "/metrics", "");
        assert_eq!(status, 200);
        let ours: String = families(&String::from_utf8(body).unwrap())
            .into_iter()
            .filter(|(name, _)| {
                !["process_", "promlet_", "node_scrape_collector_"]
                    .iter()
                    .any(|p| name.starts_with(p))
            })
            .flat_map(|(_, lines)| lines)
            .map(|l| l + "\n")
            .collect();
        problems.extend(diff(case, &theirs, &ours));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
