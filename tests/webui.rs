//! The web UI in a real headless Chromium: `/graph?g0.expr=...` runs the query from the URL,
//! fills the table with the instant result and draws one SVG path per series of the range
//! result; the alerts, rules, targets and status tabs render what the API serves. The page's
//! wire behaviour (gzip, ETag/304) is checked with a plain HTTP client.

use crate::common;
use crate::common::{Agent, TempDir};
use std::path::{Path, PathBuf};
use std::process::Command;

const CONFIG: &str = "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  external_labels:\n    site: attic\nrule_files: ['rules/*.yml']\nscrape_configs:\n  - job_name: nowhere\n    static_configs:\n      - targets: ['127.0.0.1:1']\n";

const RULES: &str = "groups:\n- name: node\n  rules:\n  - record: node_load1:doubled\n    expr: node_load1 * 2\n  - alert: AlwaysFiring\n    expr: vector(1)\n    annotations:\n      summary: 'on {{ $externalLabels.site }}'\n";

/// Debian's `chromium` on PATH, or the missing-prerequisite report.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
        .or_else(|| common::missing("chromium (apt-get install chromium)"))
}

/// Runs headless Chromium on `url` with `extra` mode args (`--dump-dom`, `--screenshot=`),
/// giving the page's scripts 5 s of virtual time; returns stdout.
fn run_chromium(chromium: &Path, url: &str, extra: &[&str]) -> String {
    let profile = TempDir::new("chromium");
    let out = Command::new("timeout")
        .arg("90")
        .arg(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
            "--window-size=1200,800",
        ])
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium {url}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of attribute `attr` in the first tag that contains `marker`.
fn attr<'a>(dom: &'a str, marker: &str, attr: &str) -> Option<&'a str> {
    let at = dom.find(marker)?;
    let tag_end = at + dom[at..].find('>')?;
    let tag_start = dom[..at].rfind('<')?;
    let tag = &dom[tag_start..tag_end];
    let v = tag.split(&format!(" {attr}=\"")).nth(1)?;
    v.split('"').next()
}

fn mem_total_bytes() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("MemTotal in /proc/meminfo");
    kb * 1024
}

fn start_agent() -> Agent {
    let dir = TempDir::new("webui");
    std::fs::create_dir_all(dir.0.join("rules")).unwrap();
    std::fs::write(dir.0.join("promlet.yml"), CONFIG).unwrap();
    std::fs::write(dir.0.join("rules/a.yml"), RULES).unwrap();
    let arg = format!("--config.file={}", dir.0.join("promlet.yml").display());
    Agent::start_in(dir, &[&arg])
}

/// The query from the URL runs on load: the table shows MemTotal as /proc/meminfo gives it and
/// the graph has one drawn path for the one series. Also leaves a screenshot in target/.
#[test]
fn graph_url_runs_query_into_table_and_svg() {
    let Some(chromium) = chromium() else { return };
    let agent = start_agent();
    // Two collections, so the range query has a line, not a dot.
    agent.eventually("two samples of node_memory_MemTotal_bytes", |a| {
        let (_, _, body) = a.get(
            "/api/v1/query?query=count_over_time(node_memory_MemTotal_bytes%5B1m%5D)",
            "",
        );
        let body = String::from_utf8_lossy(&body);
        // `"value":[<time>,"<count>"]`
        let count = body
            .split("\"value\":[")
            .nth(1)
            .and_then(|v| v.split('"').nth(1))
            .and_then(|n| n.parse::<f64>().ok());
        count.is_some_and(|n| n >= 2.0)
    });
    let url = format!(
        "http://127.0.0.1:{}/graph?g0.expr=node_memory_MemTotal_bytes&g0.range_input=5m",
        agent.port
    );
    let dom = run_chromium(&chromium, &url, &["--dump-dom"]);
    assert!(
        dom.contains("data-query-done=\"1\""),
        "query never finished:\n{dom}"
    );
    let err = attr(&dom, "id=\"error\"", "class").map(|_| {
        let at = dom.find("id=\"error\"").unwrap();
        let text = &dom[at + dom[at..].find('>').unwrap() + 1..];
        &text[..text.find('<').unwrap()]
    });
    assert_eq!(err, Some(""), "the page shows an error");
    // The table row: series name and the exact value.
    let want = format!(
        "<td class=\"m\">node_memory_MemTotal_bytes</td><td class=\"v\">{}</td>",
        mem_total_bytes()
    );
    assert!(dom.contains(&want), "table lacks {want}:\n{dom}");
    // The graph: one series, one <path class="series"> per series, with points drawn.
    assert_eq!(attr(&dom, "id=\"graph\"", "data-series"), Some("1"));
    let points: usize = attr(&dom, "id=\"graph\"", "data-points")
        .unwrap()
        .parse()
        .unwrap();
    assert!(points >= 2, "{points} points drawn");
    assert_eq!(dom.matches("class=\"series\"").count(), 1);
    let d = attr(&dom, "class=\"series\"", "d").unwrap();
    assert!(
        d.starts_with('M') && d.matches('L').count() == points - 1,
        "path {d} for {points} points"
    );
    assert!(dom.contains("node_memory_MemTotal_bytes</div>"), "legend");

    // A bad expression shows the engine's parse error instead of a table.
    let bad = run_chromium(
        &chromium,
        &format!("http://127.0.0.1:{}/graph?g0.expr=sum(", agent.port),
        &["--dump-dom"],
    );
    let at = bad.find("id=\"error\"").expect("error element");
    let shown = &bad[at + bad[at..].find('>').unwrap() + 1..];
    let shown = &shown[..shown.find('<').unwrap()];
    assert!(shown.starts_with("bad_data: "), "error shown: {shown:?}");
    assert!(
        bad.contains("<tbody></tbody>"),
        "no rows for a failed query"
    );

    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/webui-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        &chromium,
        &url,
        &[&format!("--screenshot={}", shot.display())],
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 5000);
}

/// Each tab renders its API: the firing alert, both rules, the down target with its error, and
/// build info, flags and the config YAML.
#[test]
fn tabs_render_alerts_rules_targets_status() {
    let Some(chromium) = chromium() else { return };
    let agent = start_agent();
    agent.eventually("AlwaysFiring firing", |a| {
        String::from_utf8_lossy(&a.get("/api/v1/alerts", "").2).contains("\"firing\"")
    });
    agent.eventually("target scraped", |a| {
        String::from_utf8_lossy(&a.get("/api/v1/targets", "").2).contains("\"down\"")
    });
    let tab = |name: &str| {
        let dom = run_chromium(
            &chromium,
            &format!("http://127.0.0.1:{}/#{name}", agent.port),
            &["--dump-dom"],
        );
        let start = dom
            .find(&format!("<section id=\"p-{name}\" data-loaded=\"1\">"))
            .unwrap_or_else(|| panic!("tab {name} not loaded:\n{dom}"));
        let end = start + dom[start..].find("</section>").unwrap();
        dom[start..end].to_string()
    };
    let alerts = tab("alerts");
    assert!(alerts.contains("alertname=\"AlwaysFiring\""), "{alerts}");
    assert!(
        alerts.contains("<span class=\"firing\">firing</span>"),
        "{alerts}"
    );
    assert!(alerts.contains("summary=\"on attic\""), "{alerts}");

    let rules = tab("rules");
    assert!(rules.contains("node_load1:doubled"), "{rules}");
    assert!(rules.contains("AlwaysFiring (alert)"), "{rules}");
    assert!(
        rules.contains("href=\"graph?g0.expr=node_load1%20*%202\""),
        "{rules}"
    );

    let targets = tab("targets");
    assert!(targets.contains("http://127.0.0.1:1/metrics"), "{targets}");
    assert!(
        targets.contains("<span class=\"down\">down</span>"),
        "{targets}"
    );
    assert!(targets.contains("job=\"nowhere\""), "{targets}");

    let status = tab("status");
    assert!(status.contains(env!("CARGO_PKG_VERSION")), "{status}");
    assert!(
        status.contains(&format!("127.0.0.1:{}", agent.port)),
        "flags: {status}"
    );
    assert!(status.contains("site: attic"), "config: {status}");
}

/// The page on the wire: the same bytes at `/` and `/graph`, gzip when accepted, a 304 on a
/// matching `If-None-Match`.
#[test]
fn page_served_gzipped_with_etag_revalidation() {
    let agent = Agent::start(&[]);
    let (status, head, plain) = agent.get("/graph?g0.expr=up", "");
    assert_eq!(status, 200);
    assert!(head
        .to_ascii_lowercase()
        .contains("content-type: text/html"));
    assert_eq!(plain, promlet::http::ui::INDEX_HTML.as_bytes());
    let (status, head, gz) = agent.get("/", "Accept-Encoding: gzip\r\n");
    assert_eq!(status, 200);
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("content-encoding: gzip"), "{head}");
    assert!(
        gz.len() < plain.len() / 2,
        "{} vs {}",
        gz.len(),
        plain.len()
    );
    let inflated = miniz_oxide::inflate::decompress_to_vec(&gz[10..gz.len() - 8]).unwrap();
    assert_eq!(inflated, plain);
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("ETag: "))
        .expect("ETag header")
        .trim()
        .to_string();
    let (status, _, body) = agent.get("/", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(status, 304);
    assert!(body.is_empty());
}
