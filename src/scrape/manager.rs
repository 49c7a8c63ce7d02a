//! Scrape pools: one per job, their targets from discovery, one task per target on the work
//! thread, reload, and the `/api/v1/targets` document.
//!
//! Owns: [`Manager`] (pools keyed by job name), target groups per discovery source
//! (`static_configs`, `file_sd_configs` re-read when a file's mtime changes, polled on the
//! work thread: no inotify thread; `dns_sd_configs` through [`super::dns`]), the per-target
//! scrape loop and its schedule (each target at a fixed offset within its interval, from a
//! hash of its labels, so many targets never scrape at once).
//! Must not touch: TSDB internals (appends through [`Appender`]), PromQL, HTTP serving.
//!
//! Kubernetes, Consul and cloud discoveries are deliberately absent: they are the central
//! Prometheus's job; a device scrapes what runs on it (static, files, DNS).

use super::client::{self, Request};
use super::config::{Auth, ScrapeConfig};
use super::dns;
use super::parse::SCRAPE_ACCEPT;
use super::target::{populate, start_offset, Health, ScrapeState, TargetSpec};
use crate::config::format_duration;
use crate::config::yaml::{self, Node, Value};
use crate::http::json::Json;
use crate::log;
use crate::model::{Clock, Labels};
use crate::rt::Timer;
use crate::tsdb::Appender;
use async_executor::{LocalExecutor, Task};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

/// How often file_sd files are checked for a changed mtime (a `stat` each).
pub const FILE_SD_POLL: Duration = Duration::from_secs(5);

/// The shared handles a manager works with.
pub struct Env {
    pub ex: Rc<LocalExecutor<'static>>,
    pub app: Rc<RefCell<dyn Appender>>,
    pub clock: Rc<dyn Clock>,
    /// The store's `--storage.tsdb.max-series` (0: none): a target without `sample_limit`
    /// cannot usefully send more samples than that, so its parse stops there
    /// ([`ScrapeState::series_cap`]).
    pub series_cap: usize,
}

struct Active {
    spec: Rc<TargetSpec>,
    state: Rc<RefCell<ScrapeState>>,
    _task: Task<()>,
}

struct Dropped {
    discovered: Labels,
}

struct FileWatch {
    pattern: String,
    /// Matching paths and their mtimes at the last read.
    seen: Vec<(PathBuf, Option<SystemTime>)>,
    refresh: Duration,
    last_read: Option<Instant>,
}

struct Pool {
    cfg: Rc<ScrapeConfig>,
    /// Target groups by source (`static`, `file:<path>`, `dns:<n>`): discovered label sets.
    groups: Vec<(String, Vec<Labels>)>,
    active: Vec<Active>,
    dropped: Vec<Dropped>,
    files: Vec<FileWatch>,
    dns_tasks: Vec<Task<()>>,
}

/// All scrape pools.
pub struct Manager {
    env: Rc<Env>,
    pools: Vec<Pool>,
    _file_task: Option<Task<()>>,
}

impl Manager {
    /// A manager with no pools; [`Manager::apply_config`] creates them.
    pub fn new(env: Env) -> Rc<RefCell<Manager>> {
        let env = Rc::new(env);
        let m = Rc::new(RefCell::new(Manager {
            env: env.clone(),
            pools: Vec::new(),
            _file_task: None,
        }));
        let weak = Rc::downgrade(&m);
        let clock = env.clock.clone();
        let task = crate::task::spawn(&env.ex, async move {
            loop {
                Timer::after(FILE_SD_POLL).await;
                let Some(m) = weak.upgrade() else { return };
                let now = clock.monotonic();
                Manager::poll_files(&m, now);
            }
        });
        m.borrow_mut()._file_task = Some(task);
        m
    }

    /// Creates, keeps or replaces pools for `cfgs` (a reload). A pool whose config is
    /// unchanged keeps its targets and their schedules; removed targets get stale markers.
    pub fn apply_config(this: &Rc<RefCell<Manager>>, cfgs: &[ScrapeConfig]) {
        let mut m = this.borrow_mut();
        let env = m.env.clone();
        let now = env.clock.monotonic();
        // Pools gone or changed: stop every target (stale markers).
        let mut old = std::mem::take(&mut m.pools);
        let mut kept = Vec::new();
        let mut changed = Vec::new();
        for cfg in cfgs {
            if let Some(i) = old.iter().position(|p| *p.cfg == *cfg) {
                kept.push(old.remove(i));
                changed.push(false);
                continue;
            }
            changed.push(true);
            let mut pool = Pool {
                cfg: Rc::new(cfg.clone()),
                groups: Vec::new(),
                active: Vec::new(),
                dropped: Vec::new(),
                files: cfg
                    .file_sd_configs
                    .iter()
                    .flat_map(|f| {
                        f.files.iter().map(|p| FileWatch {
                            pattern: p.clone(),
                            seen: Vec::new(),
                            refresh: f.refresh_interval,
                            last_read: None,
                        })
                    })
                    .collect(),
                dns_tasks: Vec::new(),
            };
            let static_targets: Vec<Labels> = cfg
                .static_configs
                .iter()
                .flat_map(|s| {
                    s.targets.iter().map(|t| {
                        let mut l = Labels::from_pairs(s.labels.iter().cloned());
                        l.set("__address__".into(), t.clone());
                        l
                    })
                })
                .collect();
            pool.groups.push(("static".into(), static_targets));
            // A changed pool with the same job replaces the old one: the old targets are
            // stopped (and marked stale) by sync when no longer present.
            if let Some(i) = old.iter().position(|p| p.cfg.job_name == cfg.job_name) {
                let prev = old.remove(i);
                pool.active = prev.active;
                pool.dropped = prev.dropped;
            }
            kept.push(pool);
        }
        for p in old {
            stop_all(&env, p.active);
        }
        m.pools = kept;
        for (i, restart) in changed.into_iter().enumerate() {
            let pool = &mut m.pools[i];
            if restart | read_files(pool, now, restart) {
                sync_pool(&env, pool, restart);
            }
        }
        // DNS discovery tasks for pools that have none yet.
        let weak = Rc::downgrade(this);
        for i in 0..m.pools.len() {
            if !m.pools[i].dns_tasks.is_empty() {
                continue;
            }
            let cfg = m.pools[i].cfg.clone();
            for (n, d) in cfg.dns_sd_configs.iter().enumerate() {
                let weak = weak.clone();
                let job = cfg.job_name.clone();
                let d = d.clone();
                let task = crate::task::spawn(&env.ex, async move {
                    loop {
                        let groups = dns::discover(&d).await;
                        let Some(m) = weak.upgrade() else { return };
                        match groups {
                            Ok(targets) => {
                                Manager::set_group(&m, &job, &format!("dns:{n}"), targets)
                            }
                            Err(e) => {
                                log::warn(&format!("dns_sd_configs of job {job:?}: {e}"));
                            }
                        }
                        drop(m);
                        Timer::after(d.refresh_interval).await;
                    }
                });
                m.pools[i].dns_tasks.push(task);
            }
        }
    }

    /// Replaces one discovery source's targets in `job`'s pool and resyncs it.
    pub fn set_group(this: &Rc<RefCell<Manager>>, job: &str, source: &str, targets: Vec<Labels>) {
        let mut m = this.borrow_mut();
        let env = m.env.clone();
        let Some(pool) = m.pools.iter_mut().find(|p| p.cfg.job_name == job) else {
            return;
        };
        match pool.groups.iter_mut().find(|(s, _)| s == source) {
            Some((_, g)) if *g == targets => return,
            Some((_, g)) => *g = targets,
            None => pool.groups.push((source.to_string(), targets)),
        }
        sync_pool(&env, pool, false);
    }

    /// Re-reads file_sd files whose mtime changed (or whose refresh interval passed).
    pub fn poll_files(this: &Rc<RefCell<Manager>>, now: Instant) {
        let mut m = this.borrow_mut();
        let env = m.env.clone();
        for pool in &mut m.pools {
            if read_files(pool, now, false) {
                sync_pool(&env, pool, false);
            }
        }
    }

    /// Active targets' (job, labels, health, last error), for tests and self-metrics.
    pub fn snapshot(&self) -> Vec<(String, Labels, Health, String)> {
        let mut out = Vec::new();
        for p in &self.pools {
            for a in &p.active {
                let s = a.state.borrow();
                out.push((
                    p.cfg.job_name.clone(),
                    a.spec.labels.clone(),
                    s.health,
                    s.last_error.clone(),
                ));
            }
        }
        out
    }

    /// The `data` of `/api/v1/targets` wrapped in the success envelope. `state` is `active`,
    /// `dropped`, `any` or empty (any); `pool` filters by job when non-empty.
    /// Job names of the scrape pools, in configuration order.
    pub fn pool_names(&self) -> Vec<String> {
        self.pools.iter().map(|p| p.cfg.job_name.clone()).collect()
    }

    /// Calls `f` with each active target's labels and every family its last scrape exposed.
    pub fn for_each_family(&self, f: &mut dyn FnMut(&Labels, crate::expo::FamilyRef<'_>)) {
        for a in self.pools.iter().flat_map(|p| &p.active) {
            for fam in a.state.borrow().families() {
                f(&a.spec.labels, fam);
            }
        }
    }

    pub fn targets_json(&self, state: &str, pool: &str) -> Vec<u8> {
        let (show_active, show_dropped) = match state {
            "active" => (true, false),
            "dropped" => (false, true),
            _ => (true, true),
        };
        let mut j = Json::new();
        j.begin_object().key("status").string("success");
        j.key("data").begin_object();
        let pools = self
            .pools
            .iter()
            .filter(|p| pool.is_empty() || p.cfg.job_name == pool);
        if show_active {
            j.key("activeTargets").begin_array();
            for p in pools.clone() {
                for a in &p.active {
                    let s = a.state.borrow();
                    j.begin_object();
                    j.key("discoveredLabels");
                    labels_obj(&mut j, &a.spec.discovered);
                    j.key("labels");
                    labels_obj(&mut j, &a.spec.labels);
                    j.key("scrapePool").string(&p.cfg.job_name);
                    j.key("scrapeUrl").string(&a.spec.url);
                    j.key("globalUrl").string(&a.spec.url);
                    j.key("lastError").string(&s.last_error);
                    j.key("lastScrape").string(&rfc3339(s.last_scrape_ms));
                    j.key("lastScrapeDuration")
                        .raw(&format!("{}", s.last_duration.as_secs_f64()));
                    j.key("health").string(s.health.as_str());
                    j.key("scrapeInterval")
                        .string(&format_duration(p.cfg.scrape_interval));
                    j.key("scrapeTimeout")
                        .string(&format_duration(p.cfg.scrape_timeout));
                    j.end_object();
                }
            }
            j.end_array();
        }
        if show_dropped {
            j.key("droppedTargets").begin_array();
            for p in pools.clone() {
                for d in &p.dropped {
                    j.begin_object();
                    j.key("discoveredLabels");
                    labels_obj(&mut j, &d.discovered);
                    j.key("scrapePool").string(&p.cfg.job_name);
                    j.end_object();
                }
            }
            j.end_array();
            j.key("droppedTargetCounts").begin_object();
            for p in pools {
                j.key(&p.cfg.job_name).raw(&p.dropped.len().to_string());
            }
            j.end_object();
        }
        j.end_object().end_object();
        j.into_bytes()
    }
}

fn labels_obj(j: &mut Json, l: &Labels) {
    j.begin_object();
    for (n, v) in l.iter() {
        j.key(n).string(v);
    }
    j.end_object();
}

/// Stops targets and writes stale markers for everything they reported.
fn stop_all(env: &Env, active: Vec<Active>) {
    let t = env.clock.wall_ms();
    for a in active {
        drop(a._task);
        a.state
            .borrow_mut()
            .mark_all_stale(t, &mut *env.app.borrow_mut());
    }
}

/// Recomputes a pool's targets from its groups; starts new ones, stops vanished ones.
/// `restart`: the config changed, so even unchanged targets restart with it.
fn sync_pool(env: &Env, pool: &mut Pool, restart: bool) {
    let mut wanted: Vec<TargetSpec> = Vec::new();
    let mut dropped = Vec::new();
    for (_, group) in &pool.groups {
        for discovered in group {
            match populate(&pool.cfg, discovered) {
                Ok(Some(spec)) => {
                    if !wanted.iter().any(|w| w.labels == spec.labels) {
                        wanted.push(spec);
                    }
                }
                Ok(None) => dropped.push(Dropped {
                    discovered: discovered.clone(),
                }),
                Err(e) => {
                    log::warn(&format!(
                        "job {:?}: dropping target: {e}",
                        pool.cfg.job_name
                    ));
                    dropped.push(Dropped {
                        discovered: discovered.clone(),
                    });
                }
            }
        }
    }
    pool.dropped = dropped;
    let old = std::mem::take(&mut pool.active);
    let mut gone = Vec::new();
    for a in old {
        match wanted.iter().position(|w| *w == *a.spec) {
            Some(i) if !restart => {
                wanted.remove(i);
                pool.active.push(a);
            }
            _ => gone.push(a),
        }
    }
    // A restarted target with the same labels keeps its series (no stale markers between).
    let mut carried: Vec<Active> = Vec::new();
    for a in gone {
        if wanted.iter().any(|w| w.labels == a.spec.labels) {
            carried.push(a);
        } else {
            stop_all(env, vec![a]);
        }
    }
    for spec in wanted {
        let state = match carried.iter().position(|c| c.spec.labels == spec.labels) {
            Some(i) => carried.remove(i).state,
            None => {
                let mut st = ScrapeState::new(&spec);
                st.series_cap = env.series_cap;
                Rc::new(RefCell::new(st))
            }
        };
        let spec = Rc::new(spec);
        let task = crate::task::spawn(
            &env.ex,
            target_loop(
                pool.cfg.clone(),
                spec.clone(),
                state.clone(),
                env.app.clone(),
                env.clock.clone(),
            ),
        );
        pool.active.push(Active {
            spec,
            state,
            _task: task,
        });
    }
}

/// Re-reads the pool's file_sd files if any changed; returns whether groups changed.
fn read_files(pool: &mut Pool, now: Instant, force: bool) -> bool {
    let mut changed = false;
    for fw in &mut pool.files {
        let paths = expand_glob(&fw.pattern);
        let current: Vec<(PathBuf, Option<SystemTime>)> = paths
            .into_iter()
            .map(|p| {
                let m = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
                (p, m)
            })
            .collect();
        let due = fw
            .last_read
            .is_none_or(|t| now.saturating_duration_since(t) >= fw.refresh);
        if !force && !due && current == fw.seen {
            continue;
        }
        fw.last_read = Some(now);
        // Drop the groups of files that no longer match, then read every current file.
        let prefix = format!("file:{}:", fw.pattern);
        let before: Vec<(String, Vec<Labels>)> = pool
            .groups
            .iter()
            .filter(|(s, _)| s.starts_with(&prefix))
            .cloned()
            .collect();
        pool.groups.retain(|(s, _)| !s.starts_with(&prefix));
        for (path, _) in &current {
            let key = format!("{prefix}{}", path.display());
            match read_file_sd(path) {
                Ok(targets) => pool.groups.push((key, targets)),
                Err(e) => {
                    // Keep what the file gave before: a half-written file loses nothing.
                    log::warn(&format!("file_sd {}: {e}", path.display()));
                    if let Some(prev) = before.iter().find(|(s, _)| *s == key) {
                        pool.groups.push(prev.clone());
                    }
                }
            }
        }
        let after: Vec<&(String, Vec<Labels>)> = pool
            .groups
            .iter()
            .filter(|(s, _)| s.starts_with(&prefix))
            .collect();
        if after.len() != before.len() || after.iter().zip(&before).any(|(a, b)| *a != b) {
            changed = true;
        }
        fw.seen = current;
    }
    changed
}

/// Files matching `pattern`, where only the last path component may hold `*` and `?`.
fn expand_glob(pattern: &str) -> Vec<PathBuf> {
    let p = Path::new(pattern);
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !name.contains(['*', '?']) {
        return if p.exists() {
            vec![p.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| wildcard(name.as_bytes(), n.as_bytes()))
        })
        .map(|e| e.path())
        .collect();
    out.sort_unstable();
    out
}

fn wildcard(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => wildcard(&p[1..], s) || (!s.is_empty() && wildcard(p, &s[1..])),
        (Some(b'?'), Some(_)) => wildcard(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => wildcard(&p[1..], &s[1..]),
        _ => false,
    }
}

/// Reads one file_sd file (JSON or YAML: JSON is read by the YAML parser) into discovered
/// label sets, each with `__meta_filepath`.
pub fn read_file_sd(path: &Path) -> Result<Vec<Labels>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let root =
        yaml::parse(&text).map_err(|e| format!("{}:{}: {}", e.pos.line, e.pos.col, e.msg))?;
    let bad = |n: &Node, m: &str| format!("{}:{}: {m}", n.pos.line, n.pos.col);
    let groups: &[Node] = match &root.value {
        Value::Seq(items) => items,
        _ if root.is_null() => &[],
        Value::Map(m) if m.is_empty() => &[],
        _ => {
            return Err(bad(
                &root,
                "a file_sd file must hold a list of target groups",
            ))
        }
    };
    let scalar = |n: &Node| match &n.value {
        Value::Scalar { text, .. } => Some(text.clone()),
        _ => None,
    };
    let mut out = Vec::new();
    for g in groups {
        let Value::Map(entries) = &g.value else {
            return Err(bad(g, "a target group must be a mapping"));
        };
        let mut targets = Vec::new();
        let mut labels = Vec::new();
        for (k, v) in entries {
            match scalar(k).as_deref() {
                Some("targets") => {
                    let Value::Seq(items) = &v.value else {
                        return Err(bad(v, "targets must be a list"));
                    };
                    for it in items {
                        targets
                            .push(scalar(it).ok_or_else(|| bad(it, "a target must be a string"))?);
                    }
                }
                Some("labels") => {
                    let Value::Map(ls) = &v.value else {
                        if v.is_null() {
                            continue;
                        }
                        return Err(bad(v, "labels must be a mapping"));
                    };
                    for (ln, lv) in ls {
                        let name = scalar(ln).unwrap_or_default();
                        if !crate::config::is_label_name(&name) {
                            return Err(bad(ln, &format!("{name:?} is not a valid label name")));
                        }
                        labels.push((
                            name,
                            scalar(lv).ok_or_else(|| bad(lv, "a label value must be a string"))?,
                        ));
                    }
                }
                _ => {
                    return Err(bad(
                        k,
                        "unknown key in a target group (expected targets, labels)",
                    ))
                }
            }
        }
        for t in targets {
            let mut l = Labels::from_pairs(labels.iter().cloned());
            l.set("__address__".into(), t);
            l.set("__meta_filepath".into(), path.display().to_string());
            out.push(l);
        }
    }
    Ok(out)
}

/// One target's scrape loop: waits for its slot, scrapes, hands the result to its state.
async fn target_loop(
    cfg: Rc<ScrapeConfig>,
    spec: Rc<TargetSpec>,
    state: Rc<RefCell<ScrapeState>>,
    app: Rc<RefCell<dyn Appender>>,
    clock: Rc<dyn Clock>,
) {
    let interval = cfg.scrape_interval;
    let iv = interval.as_millis().max(1) as i64;
    let offset = start_offset(&spec, interval).as_millis() as i64;
    // The first slot: the next wall-clock instant at `offset` within the interval, so a
    // target keeps its phase across restarts; then the monotonic clock takes over.
    let wait = (offset - clock.wall_ms().rem_euclid(iv)).rem_euclid(iv);
    let mut next = clock.monotonic() + Duration::from_millis(wait as u64);
    let authorization = match &cfg.auth {
        Auth::None => None,
        Auth::Basic { username, password } => Some(format!(
            "Basic {}",
            base64(format!("{username}:{password}").as_bytes())
        )),
        Auth::Header {
            scheme,
            credentials,
        } => Some(format!("{scheme} {credentials}")),
    };
    let timeout_header = format!(
        "X-Prometheus-Scrape-Timeout-Seconds: {}\r\n",
        cfg.scrape_timeout.as_secs_f64()
    );
    // https (`__scheme__` may come from relabeling): the TLS settings are read once per target
    // start (config load or reload); if they do not load, every scrape reports why.
    let tls = tls_for(&cfg, &spec);
    loop {
        Timer::at(next).await;
        let start = clock.monotonic();
        let t = clock.wall_ms();
        let (mut raw, mut body) = {
            let mut s = state.borrow_mut();
            (std::mem::take(&mut s.raw), std::mem::take(&mut s.body))
        };
        let https = spec.url.starts_with("https://");
        let fetched = match resolve(&spec.address, https, cfg.scrape_timeout).await {
            Ok(_) if tls.is_err() => Err(tls.as_ref().err().cloned().unwrap_or_default()),
            Ok(addr) => {
                let req = Request {
                    method: "GET",
                    addr,
                    host: &spec.address,
                    target: &spec.path,
                    accept: SCRAPE_ACCEPT,
                    authorization: authorization.as_deref(),
                    extra_headers: &timeout_header,
                    body: &[],
                    timeout: cfg.scrape_timeout,
                    body_limit: cfg.body_size_limit,
                    gzip: !addr.ip().is_loopback(),
                };
                let tls = tls.as_ref().ok().and_then(Option::as_ref);
                client::send_with_tls(&req, tls, &mut raw, &mut body).await
            }
            Err(e) => Err(e),
        };
        let took = clock.monotonic().saturating_duration_since(start);
        {
            let mut s = state.borrow_mut();
            s.raw = raw;
            s.body = body;
            s.finish(&cfg, &spec, fetched, t, took, &mut *app.borrow_mut());
        }
        next += interval;
        let now = clock.monotonic();
        while next <= now {
            next += interval; // missed slots are skipped, not bunched up
        }
    }
}

/// The TLS settings for an https target; Ok(None) for http.
fn tls_for(cfg: &ScrapeConfig, spec: &TargetSpec) -> Result<Option<client::ClientTls>, String> {
    if !spec.url.starts_with("https://") {
        return Ok(None);
    }
    client::client_tls(&cfg.tls_config).map(Some)
}

/// `host:port` to a socket address: IP literals directly, names through [`dns`].
async fn resolve(address: &str, https: bool, timeout: Duration) -> Result<SocketAddr, String> {
    if let Ok(a) = address.parse::<SocketAddr>() {
        return Ok(a);
    }
    let (host, port) = crate::net::split_host_port(address);
    let port = match port {
        Some(p) => p,
        // No port: the scheme's, as Prometheus 3 connects (it no longer writes one into
        // `instance`).
        None if !host.contains(':') || address.starts_with('[') => {
            if https {
                443
            } else {
                80
            }
        }
        None => return Err(format!("address {address:?} has a bad port")),
    };
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    dns::resolve_host(&host, port, timeout).await
}

pub(crate) fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Formats wall ms as RFC 3339 UTC with ms (`0001-01-01T00:00:00Z` before the first scrape,
/// as Prometheus's zero time).
pub fn rfc3339(ms: i64) -> String {
    if ms == 0 {
        return "0001-01-01T00:00:00Z".into();
    }
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = crate::log::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        ms.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(0), "0001-01-01T00:00:00Z");
    }

    /// Before: a target written without a port ("pi.lan", "[::1]") was an error; Prometheus 3
    /// connects to the scheme's port.
    #[test]
    fn addresses_without_a_port_use_the_scheme_port() {
        let r = |a: &str, https: bool| {
            crate::rt::block_on(resolve(a, https, Duration::from_secs(1))).map(|s| s.to_string())
        };
        assert_eq!(r("127.0.0.1", false).unwrap(), "127.0.0.1:80");
        assert_eq!(r("127.0.0.1", true).unwrap(), "127.0.0.1:443");
        assert_eq!(r("[::1]", false).unwrap(), "[::1]:80");
        assert_eq!(r("[::1]:9100", false).unwrap(), "[::1]:9100");
        assert_eq!(r("127.0.0.1:9100", true).unwrap(), "127.0.0.1:9100");
        assert!(r("127.0.0.1:http", false).unwrap_err().contains("bad port"));
        assert!(r("127.0.0.1:99999", false)
            .unwrap_err()
            .contains("bad port"));
    }

    #[test]
    fn base64_pads_like_rfc4648() {
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
    }

    #[test]
    fn wildcards_match_the_last_component() {
        assert!(wildcard(b"*.json", b"a.json"));
        assert!(!wildcard(b"*.json", b"a.yml"));
        assert!(wildcard(b"t?.y*", b"t1.yaml"));
    }

    #[test]
    fn file_sd_reads_json_and_yaml_and_rejects_garbage() {
        let dir = std::env::temp_dir().join(format!("promlet-filesd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let j = dir.join("a.json");
        std::fs::write(
            &j,
            r#"[{"targets": ["127.0.0.1:1", "127.0.0.1:2"], "labels": {"env": "x"}}]"#,
        )
        .unwrap();
        let t = read_file_sd(&j).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].get("__address__"), Some("127.0.0.1:2"));
        assert_eq!(t[0].get("env"), Some("x"));
        assert_eq!(t[0].get("__meta_filepath"), Some(j.to_str().unwrap()));
        let y = dir.join("b.yml");
        std::fs::write(&y, "- targets: ['h:1']\n").unwrap();
        assert_eq!(read_file_sd(&y).unwrap().len(), 1);
        std::fs::write(&y, "- targets: ['h:1']\n  lables: {}\n").unwrap();
        assert!(read_file_sd(&y)
            .unwrap_err()
            .starts_with("2:3: unknown key"));
        std::fs::write(&y, "[{\"targets\": [").unwrap();
        assert!(read_file_sd(&y).is_err());
        let mut g = expand_glob(&format!("{}/*.json", dir.display()));
        g.sort_unstable();
        assert_eq!(g, vec![j.clone()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
