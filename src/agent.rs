//! The agent: wires the modules together and runs the single-threaded main loop.
//!
//! Owns: start-up, the collection schedule (monotonic clock), wall-clock step detection,
//! the store (opened from `--storage.tsdb.*`, fed every cycle, flushed on its schedule and at
//! shutdown), `/metrics` with promlet's self-metrics, the Prometheus HTTP API routes
//! (`/api/v1/...`, handlers in `http::api_v1`, the store as their Querier), `/-/healthy`,
//! `/-/ready`, `/-/reload`, `/-/quit`, reload (SIGHUP, HTTP) and shutdown (SIGTERM, SIGINT,
//! `/-/quit`), the rule groups of `rule_files` (evaluated on this thread at each group's
//! interval, reloaded with the configuration, `/api/v1/rules` and `/api/v1/alerts`), and the
//! scrape pools (created from `scrape_configs`, re-applied on reload, their target tasks on
//! the same executor) and `/api/v1/targets`.
//! Must not touch: business logic of other modules; it only calls them.
//!
//! Threads: one. Everything runs in `rt::block_on(executor.run(..))` on the main thread, which
//! itself waits in `epoll_wait` (src/rt.rs); signals arrive through `rt::Signals`' self-pipe,
//! read through that reactor. (The filesystem collector starts a short-lived helper only for
//! a network mount's `statfs`.) Why not async-io, used until this was written: its reactor
//! runs on a helper thread, so every event went helper `epoll_wait` -> futex wake of the work
//! thread, with `EPOLLONESHOT` re-arms and timerfd updates per wait; on a trivial request that
//! was about a third of the CPU (perf), and async-io itself ~19 KB of the binary.
//!
//! gzip decision: `/metrics` is gzipped when the client's `Accept-Encoding` allows it, as
//! node_exporter does; Prometheus always asks, curl and promtool do not. The CPU is paid only by
//! clients that ask for it, and on a device behind Wi-Fi or a metered uplink it saves ~50 KB per
//! scrape (~280 MB/day at 15 s). The encoder is our own (`http::deflate`: greedy LZ77 with one
//! 4-byte hash table, dynamic Huffman codes per block), not miniz_oxide's: measured side by side in
//! one run (`cargo bench --bench gzip`, x86_64, our crate at opt-level "z", miniz_oxide at 3,
//! repeated runs), on this VM's 52.6 KB /metrics text it takes 0.062-0.068 ms for ~9,980 bytes
//! against miniz_oxide level 1's 0.063-0.065 ms for ~10,400 (1.0-1.06x the time, 0.96x the bytes);
//! on a 243 KB query_range JSON body 0.23-0.27 ms for ~31-33 KB against 0.37-0.40 ms for ~35-36 KB
//! (0.62-0.70x the time, 0.90x the bytes). Fixed Huffman codes alone would be 13-16% larger than
//! miniz_oxide (17-34% larger than our dynamic codes), so each block takes whichever of dynamic,
//! fixed or stored is smallest, computed from its histogram. In the shipped binary (x86_64 musl,
//! gzipped minus plain /metrics CPU over 2,000 keep-alive scrapes each) gzip cost 0.26-0.29 ms per
//! scrape with miniz_oxide as it was used (11.7 KB on the wire; it compressed better and slower
//! there than level 1 does in the bench, unexplained) and 0.105-0.115 ms with ours (0.40x;
//! 12.5 KB). miniz_oxide stays for inflating scraped targets; its compressor is no longer
//! linked, and the stripped binary went from 1,647,488 to 1,645,824 bytes. The web UI page,
//! compressed once, is now 5.5 KB instead of 5.0 KB (it used level 10).
//!
//! Freshness decision: every `/metrics` request runs a fresh collection, as node_exporter does;
//! it is never answered from the agent's own scheduled collection (made for the store), even
//! when that one is only milliseconds old. Prometheus stamps a scraped sample with the scrape
//! time, so a cached value would carry a time up to one interval off, which skews `rate()`
//! and `irate()` by a varying amount; and because promlet's schedule and a scraper's are
//! independent, a reuse window short enough to keep that skew negligible (< 1 s) would almost
//! never hit in practice — it would mainly flatter back-to-back benchmarks. Cost is cut
//! instead where it is paid (kept-open files, one read per sysfs attribute, a reused gzip
//! compressor).
//!
//! Queries run synchronously on the work thread: while one runs, collection and other
//! requests wait. `--query.timeout` (checked by the engine as it evaluates) and
//! `--query.max-samples` bound that wait and the memory one query can take.

use crate::cli::{Args, LogFormat};
use crate::collect::{CollectorDef, CollectorOptions, Context, Driver};
use crate::config::Config;
use crate::expo::{self, MetricSet, MetricType};
use crate::http::api_v1::{self, ApiResponse, BuildInfo, MetricMetadata};
use crate::http::{self, Limits, Request, Response, Router, Server, ServerStats, Shutdown};
use crate::model::{Clock, StampAligner, StepDetector, SystemClock, Timestamp};
use crate::promql::EngineOpts;
use crate::rt::{Async, Timer};
use crate::tsdb::{Appender, OsFs, Querier, SharedStore, Store};
use async_executor::LocalExecutor;
use std::cell::RefCell;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The git revision and compiler recorded by build.rs, for `promlet_build_info`.
pub const REVISION: &str = env!("PROMLET_REVISION");
pub const RUSTC_VERSION: &str = env!("PROMLET_RUSTC_VERSION");

/// Collector option values: the table's defaults, then the config file, then flags.
pub fn collector_options(cfg: &Config, args: &Args) -> CollectorOptions {
    let mut opts = CollectorOptions::default();
    for (n, v) in cfg.collectors.options.iter().chain(&args.collector_options) {
        opts.set(n, v);
    }
    opts
}

/// Whether collector `d` runs: its default (unless defaults are disabled by flag or config),
/// then the config file's switch, then the flags' (the last word wins).
pub fn collector_enabled(d: &CollectorDef, cfg: &Config, args: &Args) -> bool {
    let disable_defaults = args.collectors_disable_defaults || cfg.collectors.disable_defaults;
    let mut on = d.default_enabled && !disable_defaults;
    for (n, v) in cfg
        .collectors
        .switches
        .iter()
        .chain(&args.collector_switches)
    {
        if n == d.name {
            on = *v;
        }
    }
    on
}

/// Builds the collector driver from the table, the config file and the flags (flags win).
pub fn build_driver(cfg: &Config, args: &Args) -> Result<Driver, String> {
    Driver::new(
        |d| collector_enabled(d, cfg, args),
        &collector_options(cfg, args),
    )
}

/// Loads the configuration named by the flags, or the embedded one.
pub fn load_config(args: &Args) -> Result<Config, String> {
    load_config_text(args).map(|(c, _)| c)
}

/// [`load_config`] plus the text it was parsed from (for `/api/v1/status/config`).
pub fn load_config_text(args: &Args) -> Result<(Config, String), String> {
    match &args.config_file {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("{}: cannot read: {e}", p.display()))?;
            let cfg = Config::parse(&text, &p.display().to_string()).map_err(|e| e.to_string())?;
            Ok((cfg, text))
        }
        None => Ok((
            Config::embedded(),
            crate::config::DEFAULT_CONFIG.to_string(),
        )),
    }
}

/// The rule groups of the config's `rule_files` (globs relative to the config file's
/// directory); every error of every file, one per line.
pub fn load_rules(cfg: &Config, args: &Args) -> Result<Vec<crate::rules::GroupDef>, String> {
    if args.config_file.is_none() {
        // The embedded defaults ship the heartbeat ("dead man's switch") rule: it always
        // fires while rules run, so a receiver that stops hearing it knows the device is down.
        // And the uplink alert over the default probes (docs/probes.md).
        let mut groups = Vec::new();
        for (text, name) in [
            (HEARTBEAT_RULES, "<embedded heartbeat.yml>"),
            (UPLINK_RULES, "<embedded uplink.yml>"),
        ] {
            let file = crate::rules::RuleFile::parse(text, name, false).map_err(|errs| {
                errs.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            })?;
            groups.extend(file.groups);
        }
        return Ok(groups);
    }
    if cfg.rule_files.is_empty() {
        return Ok(Vec::new());
    }
    let base = args
        .config_file
        .as_ref()
        .and_then(|p| p.parent())
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let join = |errs: Vec<crate::rules::RuleError>| {
        errs.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let files =
        crate::rules::manager::expand_globs(&base, &cfg.rule_files).map_err(|e| join(vec![e]))?;
    crate::rules::manager::load_files(&files, false).map_err(join)
}

/// The rule group the embedded default configuration evaluates (docs/rules.md).
pub const HEARTBEAT_RULES: &str = include_str!("../examples/rules/heartbeat.yml");

/// The `UplinkDown` alert the embedded default configuration evaluates (docs/probes.md).
pub const UPLINK_RULES: &str = include_str!("../examples/rules/uplink.yml");

/// The engine's limits from the `--query.*` flags.
pub fn engine_options(args: &Args) -> EngineOpts {
    EngineOpts {
        timeout: args.query_timeout,
        max_samples: args.query_max_samples,
        lookback_delta: i64::try_from(args.query_lookback_delta.as_millis()).unwrap_or(i64::MAX),
        ..EngineOpts::default()
    }
}

/// Counters and gauges the agent keeps about itself.
#[derive(Debug, Default)]
pub struct SelfStats {
    pub clock_steps: u64,
    pub cycles: u64,
    pub append_errors: u64,
    pub last_reload_ok: bool,
    pub last_reload_success_s: f64,
    /// (route pattern, status) → count; bounded by the routing table.
    pub requests: Vec<(&'static str, u16, u64)>,
    /// Rule evaluations (one per rule per group evaluation) and the failed ones.
    pub rule_evaluations: u64,
    pub rule_evaluation_failures: u64,
    /// Alerts handed to the notify seam, and those dropped because none is attached.
    pub alerts_sent: u64,
    pub alerts_dropped: u64,
}

impl SelfStats {
    fn count_request(&mut self, route: &'static str, status: u16) {
        match self
            .requests
            .iter_mut()
            .find(|(r, s, _)| *r == route && *s == status)
        {
            Some(e) => e.2 += 1,
            None => self.requests.push((route, status, 1)),
        }
    }
}

/// Everything the handlers and the loop share, behind one `RefCell` on the one thread.
pub struct State {
    pub args: Args,
    pub config: Config,
    pub driver: Driver,
    /// Where each cycle's samples go. None until the TSDB is wired in: the cycle then only
    /// checks the clock. (Seam for the TSDB issue.)
    pub appender: Option<Box<dyn Appender>>,
    /// The store behind `appender`, for its self-metrics (and the query API).
    pub tsdb: Option<SharedStore>,
    /// Alert delivery (Alertmanager queue, local route tree, silences). None in unit tests.
    pub notify_hub: Option<Rc<RefCell<crate::notify::Hub>>>,
    /// Pushed groups (`--web.enable-push`); empty when pushing is off.
    pub push: crate::push::Store,
    /// The scrape pools (`scrape_configs`); None in unit tests without an executor.
    pub scrapes: Option<Rc<RefCell<crate::scrape::manager::Manager>>>,
    /// The remote_write queues; None in unit tests without an executor.
    pub remote: Option<Rc<RefCell<crate::remote::Manager>>>,
    /// Scheduled probes (`probes.jobs`); None in unit tests without an executor.
    pub probes: Option<crate::probe::Scheduler>,
    pub engine: EngineOpts,
    /// The text the running configuration was parsed from.
    pub config_text: String,
    pub stats: SelfStats,
    /// The rule groups of `rule_files`.
    pub rules: crate::rules::Manager,
    /// Where alerts to send go (the notify seam); None: counted and dropped.
    pub notify: Option<Box<crate::rules::NotifyFn<'static>>>,
    /// The URL alerts link back to (`generatorURL`).
    pub external_url: String,
    /// `--web.config.file`'s gate, for its self-metrics; None without a web config.
    pub web_gate: Option<Rc<crate::http::webconfig::Gate>>,
    steps: StepDetector,
    /// Whether the wall clock was observed before (the first observation is start-up).
    clock_seen: bool,
    /// Since when (monotonic) the clock has been behind the stored data at start-up.
    clock_behind_since: Option<Instant>,
    /// Puts cycle timestamps on the schedule's grid (compression; see `StampAligner`).
    stamps: StampAligner,
    /// Reused between /metrics requests and cycles so collections stop allocating.
    scrape_buf: MetricSet,
    cycle_buf: MetricSet,
    /// The /metrics text, encoded here and gzipped from here: kept between requests because
    /// a fresh ~64 KB buffer each time was an mmap, 16 page faults and an munmap per scrape.
    body_buf: Vec<u8>,
    boot_time_s: Option<f64>,
    /// Series the collection cycles stored, for staleness markers when one vanishes.
    vanished: VanishedSeries,
}

impl State {
    pub fn new(args: Args, config: Config, driver: Driver) -> State {
        let interval = config.global.scrape_interval;
        State {
            engine: engine_options(&args),
            args,
            config,
            driver,
            appender: None,
            tsdb: None,
            notify_hub: None,
            push: crate::push::Store::new(),
            scrapes: None,
            remote: None,
            probes: None,
            config_text: String::new(),
            rules: crate::rules::Manager::new(),
            notify: None,
            external_url: String::new(),
            web_gate: None,
            stats: SelfStats {
                last_reload_ok: true,
                last_reload_success_s: SystemClock.wall_ms() as f64 / 1000.0,
                ..SelfStats::default()
            },
            steps: StepDetector::new(step_tolerance(interval)),
            clock_seen: false,
            clock_behind_since: None,
            stamps: StampAligner::new(CYCLE_STAMP_TOLERANCE_MS),
            scrape_buf: MetricSet::new(),
            cycle_buf: MetricSet::new(),
            body_buf: Vec::new(),
            boot_time_s: read_boot_time(),
            vanished: VanishedSeries::default(),
        }
    }

    /// One scheduled cycle: check the wall clock against the monotonic one, then collect
    /// (self-metrics included, as Prometheus scraping promlet would store them) and append
    /// every sample to the store, stamped with the wall-clock time.
    pub fn cycle(&mut self, clock: &dyn Clock, server: &ServerStats) {
        let mono = clock.monotonic();
        let read_at = clock.wall_ms();
        let interval_ms = self.config.global.scrape_interval.as_millis() as i64;
        let now = self.stamps.stamp(read_at, interval_ms);
        self.stats.cycles += 1;
        self.observe_clock(mono, read_at);
        if self.appender.is_none() {
            return;
        }
        let mut set = std::mem::take(&mut self.cycle_buf);
        set.clear();
        let ctx = Context {
            roots: &self.args.roots,
            now_ms: now,
        };
        self.driver.collect(&ctx, &mut set);
        self.self_metrics(&mut set, server);
        if let Some(app) = self.appender.as_mut() {
            self.stats.append_errors += append_all(&set, now, app.as_mut());
            self.vanished.observe(&set);
            self.vanished.mark_stale(now, app.as_mut());
        }
        self.cycle_buf = set;
    }

    /// Checks the wall clock against the monotonic one (a step) and against the stored data
    /// (a clock behind it), and applies what that means. Called before anything is stamped,
    /// by the collection cycle and by the rule loop, so whichever runs first after a step
    /// sees it.
    ///
    /// - Any step moves the rules' alert times along, so `for` and resend delays measure time
    ///   that really passed.
    /// - A step back (NTP or an admin correcting a clock that was ahead) leaves the store
    ///   holding samples from the "future": they were stamped by the wrong clock, so the store
    ///   drops every sample newer than now ([`crate::tsdb::Store::discard_from`], logged with
    ///   counts), writes that at once, and the remote_write positions move back with it.
    ///   Without that every series would refuse samples until the wall clock caught up.
    /// - At start-up the clock may be behind the data with no step seen: either this boot's
    ///   clock is not set yet (a Pi without RTC, before NTP) and the data is right, or the
    ///   data was stamped by a clock that was ahead. Samples are refused (out of order) while
    ///   promlet waits up to [`CLOCK_BEHIND_GRACE`] for a step forward; if none comes, the
    ///   clock is trusted and the newer data dropped as above.
    pub fn observe_clock(&mut self, mono: Instant, wall: Timestamp) {
        let first = !self.clock_seen;
        self.clock_seen = true;
        let step = self.steps.observe(mono, wall);
        if let Some(step) = step {
            self.stats.clock_steps += 1;
            self.rules.shift_time(step);
            if let Some(hub) = &self.notify_hub {
                hub.borrow_mut().shift_time(step);
            }
            crate::log::warn(&format!(
                "wall clock stepped by {step} ms relative to the monotonic clock; \
                 samples are stamped with the new time from now on"
            ));
        }
        let Some(store) = self.tsdb.clone() else {
            return;
        };
        let newest = store.0.borrow().max_t();
        let ahead = newest.map_or(0, |n| n.saturating_sub(wall));
        if step.is_some_and(|s| s < 0) && ahead > 0 {
            self.clock_behind_since = None;
            self.discard_future(&store, wall, mono);
            return;
        }
        if ahead <= crate::tsdb::CLOCK_STEP_BACK_MS || !(first || self.clock_behind_since.is_some())
        {
            self.clock_behind_since = None;
            return;
        }
        let since = *self.clock_behind_since.get_or_insert_with(|| {
            crate::log::warn(&format!(
                "wall clock (t={wall}) is {ahead} ms behind the newest stored sample; samples \
                 are refused until it is set (waiting up to {} s), then the newer data is \
                 discarded",
                CLOCK_BEHIND_GRACE.as_secs()
            ));
            mono
        });
        if mono.saturating_duration_since(since) >= CLOCK_BEHIND_GRACE {
            self.clock_behind_since = None;
            self.discard_future(&store, wall, mono);
        }
    }

    /// Drops what the store holds after `wall`, makes that durable, and moves remote_write
    /// positions back (in that order: a crash in between leaves a cursor beyond the store's
    /// newest sample, which a queue clamps at start).
    fn discard_future(&mut self, store: &SharedStore, wall: Timestamp, mono: Instant) {
        let (series, samples) = store.0.borrow_mut().discard_from(wall.saturating_add(1));
        store.0.borrow_mut().flush(mono);
        if let Some(r) = &self.remote {
            r.borrow_mut().rewind(wall, mono);
        }
        crate::log::warn(&format!(
            "wall clock is behind the stored data: discarded {samples} samples in {series} \
             series stamped after t={wall} (by a clock that was ahead); newest sample now {}; \
             collection continues at the corrected time",
            store
                .0
                .borrow()
                .max_t()
                .map_or_else(|| "none".to_string(), |t| t.to_string())
        ));
    }

    /// Metadata of every family the last cycle stored and every scrape target's last body
    /// exposed (for `/api/v1/metadata`).
    fn metadata(&self) -> Vec<MetricMetadata> {
        let mut out: Vec<MetricMetadata> = self.cycle_buf.families().map(metric_metadata).collect();
        out.extend(self.target_metadata().into_iter().map(|(_, m)| m));
        out
    }

    /// (target labels, metadata) of every family each scrape target exposed, targets in
    /// configuration order, families sorted by name (for `/api/v1/targets/metadata`).
    fn target_metadata(&self) -> Vec<(crate::model::Labels, MetricMetadata)> {
        let mut out = Vec::new();
        if let Some(m) = &self.scrapes {
            let mut target_start = 0;
            let mut last: Option<crate::model::Labels> = None;
            m.borrow().for_each_family(&mut |target, fam| {
                if last.as_ref() != Some(target) {
                    crate::sort::sort_by(&mut out[target_start..], |a: &(_, MetricMetadata), b| {
                        a.1.metric.cmp(&b.1.metric)
                    });
                    target_start = out.len();
                    last = Some(target.clone());
                }
                out.push((target.clone(), metric_metadata(fam)));
            });
            crate::sort::sort_by(&mut out[target_start..], |a, b| a.1.metric.cmp(&b.1.metric));
        }
        out
    }

    /// Re-reads the configuration and rebuilds the collectors; on error keeps the running
    /// configuration. Logs either way.
    pub fn reload(&mut self) -> Result<(), String> {
        let result = load_config_text(&self.args).and_then(|(cfg, text)| {
            let driver = build_driver(&cfg, &self.args)?;
            let groups = load_rules(&cfg, &self.args)?;
            Ok((cfg, text, driver, groups))
        });
        match result {
            Ok((cfg, text, driver, groups)) => {
                self.rules.update(groups, cfg.global.evaluation_interval);
                self.steps.tolerance = step_tolerance(cfg.global.scrape_interval);
                if let Some(hub) = &self.notify_hub {
                    hub.borrow_mut().apply_config(&cfg);
                }
                self.config = cfg;
                self.config_text = text;
                self.driver = driver;
                // Unchanged jobs keep their targets and schedules; others restart.
                if let Some(m) = &self.scrapes {
                    crate::scrape::manager::Manager::apply_config(m, &self.config.scrape_configs);
                }
                // Queues with the same url and name keep their cursors.
                if let Some(r) = &self.remote {
                    r.borrow_mut().apply_config(
                        &self.config.remote_write,
                        &self.config.global.external_labels,
                    );
                }
                if let Some(p) = self.probes.as_mut() {
                    p.apply(&self.config.probes);
                }
                self.stats.last_reload_ok = true;
                self.stats.last_reload_success_s = SystemClock.wall_ms() as f64 / 1000.0;
                crate::log::info(&format!(
                    "completed loading of configuration file {}",
                    self.config_name()
                ));
                Ok(())
            }
            Err(e) => {
                self.stats.last_reload_ok = false;
                crate::log::error(&format!(
                    "error reloading configuration, keeping the running one: {e}"
                ));
                Err(e)
            }
        }
    }

    /// Evaluates the rule groups that are due at wall time `now` against the store; returns
    /// the next deadline (wall ms), if any group is scheduled.
    pub fn run_rules(&mut self, now: Timestamp) -> Option<Timestamp> {
        let mut store = self.tsdb.clone()?;
        let ext = crate::model::Labels::from_pairs(
            self.config
                .global
                .external_labels
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str())),
        );
        let ctx = crate::rules::EvalContext {
            external_labels: &ext,
            external_url: &self.external_url,
            resend_delay_ms: i64::try_from(self.args.rules_resend_delay.as_millis())
                .unwrap_or(60_000),
        };
        let before: Vec<i64> = self.rules.groups().iter().map(|g| g.last_eval_ms).collect();
        let mut sent = 0u64;
        let notify = &mut self.notify;
        let mut hand_over = |expr: &str, alerts: &[crate::rules::OutgoingAlert]| {
            sent += alerts.len() as u64;
            if let Some(n) = notify.as_mut() {
                n(expr, alerts);
            }
        };
        let mut backend = crate::rules::EngineBackend::new(&mut store, &self.engine);
        let errors = self.rules.run_due(now, &mut backend, &ctx, &mut hand_over);
        self.stats.rule_evaluations += self
            .rules
            .groups()
            .iter()
            .zip(&before)
            .filter(|(g, b)| g.last_eval_ms != **b)
            .map(|(g, _)| g.def.rules.len() as u64)
            .sum::<u64>();
        for (group, e) in &errors {
            crate::log::warn(&format!(
                "rule evaluation failed: group {group:?}, rule {:?}: {}",
                e.rule, e.msg
            ));
        }
        self.stats.rule_evaluation_failures += errors.len() as u64;
        if self.notify.is_some() {
            self.stats.alerts_sent += sent;
        } else {
            self.stats.alerts_dropped += sent;
        }
        self.rules.next_deadline()
    }

    /// What the API reads: the store, or nothing when none is attached (unit tests).
    fn querier(&self) -> &dyn Querier {
        match &self.tsdb {
            Some(s) => s,
            None => &NoStore,
        }
    }

    /// `/api/v1/status/runtimeinfo`: the fields that mean something here, as JSON values.
    fn runtime_info(&self) -> Vec<(String, String)> {
        let q = |s: &str| {
            let mut out = Vec::new();
            http::json::write_str(&mut out, s);
            String::from_utf8(out).unwrap_or_default()
        };
        let ts = |secs: f64| q(&crate::log::format_rfc3339_ms((secs * 1000.0) as i64));
        let start = ProcessStats::read_self(self.boot_time_s).start_time_s;
        let cwd = std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let given = |name: &str, default: &str| {
            self.args
                .given_flags
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map_or(default.to_string(), |(_, v)| v.clone())
        };
        let mut retention = given("storage.tsdb.retention.size", "16MB");
        if self.args.tsdb.retention_ms.is_some() {
            retention = format!(
                "{} or {retention}",
                given("storage.tsdb.retention.time", "")
            );
        }
        vec![
            ("startTime".into(), start.map_or("null".into(), ts)),
            ("CWD".into(), q(&cwd)),
            (
                "reloadConfigSuccess".into(),
                self.stats.last_reload_ok.to_string(),
            ),
            (
                "lastConfigTime".into(),
                ts(self.stats.last_reload_success_s),
            ),
            (
                "corruptionCount".into(),
                self.tsdb
                    .as_ref()
                    .map_or(0, |s| s.0.borrow().stats().corrupt_records)
                    .to_string(),
            ),
            ("storageRetention".into(), q(&retention)),
        ]
    }

    fn config_name(&self) -> String {
        match &self.args.config_file {
            Some(p) => p.display().to_string(),
            None => "<embedded>".into(),
        }
    }

    /// `/metrics`: a fresh collection (node_exporter semantics) plus self-metrics.
    fn render_metrics(&mut self, req: &Request, server: &ServerStats) -> Response {
        let mut set = std::mem::take(&mut self.scrape_buf);
        set.clear();
        let ctx = Context {
            roots: &self.args.roots,
            now_ms: SystemClock.wall_ms(),
        };
        self.driver.collect(&ctx, &mut set);
        self.self_metrics(&mut set, server);
        let resp = exposition_response(req, &set, &mut self.body_buf);
        self.scrape_buf = set;
        resp
    }

    /// `/federate`: the latest sample of each series matching any `match[]`, with external
    /// labels; encoded, negotiated and compressed as `/metrics` is.
    fn render_federate(&self, req: &Request) -> Response {
        let params = match req.params() {
            Ok(p) => p,
            Err(e) => return Response::text(400, format!("error parsing form values: {e}\n")),
        };
        let sets = match http::federate::matcher_sets(&params) {
            Ok(s) => s,
            Err(e) => return Response::text(400, format!("{e}\n")),
        };
        let mut set = MetricSet::new();
        http::federate::collect(
            self.querier(),
            &sets,
            &self.config.global.external_labels,
            SystemClock.wall_ms(),
            self.engine.lookback_delta,
            &mut set,
        );
        exposition_response(req, &set, &mut Vec::new())
    }

    fn self_metrics(&self, set: &mut MetricSet, server: &ServerStats) {
        if let Some(store) = &self.tsdb {
            store.0.borrow().write_metrics(set);
        }
        if let Some(hub) = &self.notify_hub {
            hub.borrow().write_metrics(set);
        }
        if let Some(remote) = &self.remote {
            remote.borrow().write_metrics(set);
        }
        // Pushed groups are exposed and stored like a Pushgateway scraped with honor_labels.
        self.push.write_metrics(set);
        if let Some(p) = &self.probes {
            let st = *p.stats.borrow();
            set.single_static(
                "promlet_probes_total",
                "Scheduled probes run (probes.jobs).",
                MetricType::Counter,
                st.probes as f64,
            );
            set.single_static(
                "promlet_probe_failures_total",
                "Scheduled probes whose probe_success was 0.",
                MetricType::Counter,
                st.failures as f64,
            );
        }
        let p = ProcessStats::read_self(self.boot_time_s);
        let g = MetricType::Gauge;
        if let Some(v) = p.cpu_seconds {
            set.single_static(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                MetricType::Counter,
                v,
            );
        }
        if let Some(v) = p.max_fds {
            set.single_static(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                g,
                v,
            );
        }
        if let Some(v) = p.open_fds {
            set.single_static("process_open_fds", "Number of open file descriptors.", g, v);
        }
        if let Some(v) = p.resident_bytes {
            set.single_static(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                g,
                v,
            );
        }
        if let Some(v) = p.start_time_s {
            set.single_static(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                g,
                v,
            );
        }
        if let Some(v) = p.virtual_bytes {
            set.single_static(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                g,
                v,
            );
        }
        if let Some(v) = p.virtual_max_bytes {
            set.single_static(
                "process_virtual_memory_max_bytes",
                "Maximum amount of virtual memory available in bytes.",
                g,
                v,
            );
        }
        if let Some(v) = p.threads {
            set.single_static(
                "promlet_threads",
                "Number of OS threads in the promlet process (the goal is 1: the work thread).",
                g,
                v,
            );
        }
        let f = set.family_static(
            "promlet_build_info",
            "A metric with a constant '1' value labeled by version, revision, and rustc with \
             which promlet was built.",
            g,
        );
        set.sample(
            f,
            &[
                ("revision", &REVISION),
                ("rustc", &RUSTC_VERSION),
                ("version", &crate::VERSION),
            ],
            1.0,
        );
        let s = &self.stats;
        set.single_static(
            "promlet_append_errors_total",
            "Samples of collection cycles the store refused (reasons in \
             promlet_tsdb_samples_rejected_total).",
            MetricType::Counter,
            s.append_errors as f64,
        );
        set.single_static(
            "promlet_collection_cycles_total",
            "Collection cycles run (each appends to the store).",
            MetricType::Counter,
            s.cycles as f64,
        );
        set.single_static(
            "promlet_clock_steps_total",
            "Wall-clock steps detected between collection cycles (e.g. NTP setting the clock \
             of a device without RTC).",
            MetricType::Counter,
            s.clock_steps as f64,
        );
        set.single_static(
            "promlet_rule_evaluations_total",
            "Rule evaluations (each rule of each group evaluation).",
            MetricType::Counter,
            s.rule_evaluations as f64,
        );
        set.single_static(
            "promlet_rule_evaluation_failures_total",
            "Rule evaluations that failed.",
            MetricType::Counter,
            s.rule_evaluation_failures as f64,
        );
        set.single_static(
            "promlet_rule_group_count",
            "Rule groups loaded from rule_files.",
            g,
            self.rules.groups().len() as f64,
        );
        set.single_static(
            "promlet_alerts_sent_total",
            "Alerts handed to notification delivery.",
            MetricType::Counter,
            s.alerts_sent as f64,
        );
        set.single_static(
            "promlet_alerts_dropped_total",
            "Alerts due for sending while no notification delivery is configured.",
            MetricType::Counter,
            s.alerts_dropped as f64,
        );
        set.single_static(
            "promlet_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful.",
            g,
            if s.last_reload_ok { 1.0 } else { 0.0 },
        );
        set.single_static(
            "promlet_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload.",
            g,
            s.last_reload_success_s,
        );
        if let Some(gate) = &self.web_gate {
            set.single_static(
                "promlet_web_auth_bcrypt_checks_total",
                "bcrypt password checks run for basic auth (cached successes are not counted).",
                MetricType::Counter,
                gate.bcrypt_checks() as f64,
            );
            let f = set.family_static(
                "promlet_web_auth_refused_unchecked_total",
                "Basic-auth requests refused without a bcrypt check: a recently failed \
                 user/password pair (401) or too many failing checks (429).",
                MetricType::Counter,
            );
            let (remembered, throttled) = gate.refused_unchecked();
            set.sample(f, &[("reason", &"remembered_failure")], remembered as f64);
            set.sample(f, &[("reason", &"throttled")], throttled as f64);
        }
        let f = set.family_static(
            "promlet_http_requests_total",
            "Counter of HTTP requests by route and status code.",
            MetricType::Counter,
        );
        for (route, code, n) in &s.requests {
            let route = if route.is_empty() { "other" } else { route };
            set.sample(f, &[("code", code), ("handler", &route)], *n as f64);
        }
        set.single_static(
            "promlet_http_connections",
            "Open HTTP connections.",
            g,
            server.open.get() as f64,
        );
        set.single_static(
            "promlet_http_connections_rejected_total",
            "Connections refused with 503 at --web.max-connections (all busy answering).",
            MetricType::Counter,
            server.rejected.get() as f64,
        );
        set.single_static(
            "promlet_http_connections_evicted_total",
            "Connections closed at --web.max-connections to make room (they were waiting \
             longest for request bytes).",
            MetricType::Counter,
            server.evicted.get() as f64,
        );
        set.single_static(
            "promlet_http_protocol_errors_total",
            "Requests refused by the HTTP layer (400 malformed, 411, 413 body too large, \
             431 header too large).",
            MetricType::Counter,
            server.protocol_errors.get() as f64,
        );
        set.single_static(
            "promlet_http_timeouts_total",
            "Connections closed by the read, idle or write timeout.",
            MetricType::Counter,
            server.timeouts.get() as f64,
        );
        if self.web_gate.is_some() {
            set.single_static(
                "promlet_http_tls_handshake_errors_total",
                "TLS handshakes that failed (bad or missing client certificate, protocol \
                 mismatch, plain HTTP on the TLS port, timeout).",
                MetricType::Counter,
                server.tls_handshake_errors.get() as f64,
            );
        }
    }
}

/// The empty store the API sees when none is attached.
struct NoStore;

impl Querier for NoStore {
    fn select(
        &self,
        _: &[crate::model::Matcher],
        _: Timestamp,
        _: Timestamp,
    ) -> Vec<crate::tsdb::SeriesSamples> {
        Vec::new()
    }
    fn label_names(&self, _: &[crate::model::Matcher], _: Timestamp, _: Timestamp) -> Vec<String> {
        Vec::new()
    }
    fn label_values(
        &self,
        _: &str,
        _: &[crate::model::Matcher],
        _: Timestamp,
        _: Timestamp,
    ) -> Vec<String> {
        Vec::new()
    }
}

/// How long a wall clock found behind the stored data at start-up may take to be set (NTP
/// after boot on a device without RTC) before it is trusted and the newer data discarded.
pub const CLOCK_BEHIND_GRACE: Duration = Duration::from_secs(10 * 60);

/// Wall-clock movements beyond scheduling jitter and NTP slewing (500 ppm) count as steps.
fn step_tolerance(interval: Duration) -> Duration {
    Duration::from_secs(1) + interval / 1000
}

/// Appends every sample of `set` at `t`; returns how many the store refused. Refusals are
/// the store's business to count by reason; the agent only keeps the total.
pub fn append_all(set: &MetricSet, t: Timestamp, app: &mut dyn Appender) -> u64 {
    let mut errors = 0;
    let mut name = String::new();
    // Reused for every sample: the store finds existing series from these parts without
    // allocating (Appender::append_parts).
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for s in set.samples() {
        name.clear();
        name.push_str(s.family_name());
        name.push_str(s.suffix());
        pairs.clear();
        pairs.extend(s.labels());
        if app
            .append_parts(&name, &pairs, s.timestamp().unwrap_or(t), s.value())
            .is_err()
        {
            errors += 1;
        }
    }
    errors
}

fn metric_metadata(f: expo::FamilyRef<'_>) -> MetricMetadata {
    MetricMetadata {
        metric: f.name.to_string(),
        // Prometheus's metadata API says "unknown" where text 0.0.4 says "untyped".
        kind: match f.typ {
            MetricType::Untyped => "unknown",
            t => t.as_text(),
        }
        .to_string(),
        help: f.help.to_string(),
        unit: String::new(),
    }
}

/// Where alerts link to (`generatorURL`): `--web.external-url`, or like Prometheus,
/// `<scheme>://<hostname>:<port>` — reachable from the Alertmanager, unlike the listen
/// address (`0.0.0.0`).
fn external_url(flag: Option<&str>, scheme: &str, host: &str, port: u16) -> String {
    match flag {
        Some(u) => u.to_string(),
        None => format!("{scheme}://{host}:{port}"),
    }
}

fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// The series the collection cycles store, so that one which stops being reported (an
/// unmounted filesystem, an unplugged USB NIC, a disabled collector) gets a staleness marker
/// at once, as Prometheus writes one when a scraped series vanishes, instead of lingering
/// in queries for the 5-minute lookback.
///
/// Series are known by a hash of their name and labels, so a steady-state cycle allocates
/// nothing; the labels are built once, when a series first appears.
#[derive(Default)]
pub struct VanishedSeries {
    known: std::collections::HashMap<u64, (crate::model::Labels, u64)>,
    cycle: u64,
}

impl VanishedSeries {
    /// Notes every series in `set` as seen in a new cycle. Samples that carry their own
    /// timestamp are left out: Prometheus does not mark those stale either.
    pub fn observe(&mut self, set: &MetricSet) {
        use std::hash::{Hash, Hasher};
        self.cycle += 1;
        for s in set.samples() {
            if s.timestamp().is_some() {
                continue;
            }
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (s.family_name(), s.suffix()).hash(&mut h);
            for pair in s.labels() {
                pair.hash(&mut h);
            }
            let entry = self.known.entry(h.finish()).or_insert_with(|| {
                let mut name = s.family_name().to_string();
                name.push_str(s.suffix());
                let labels = crate::model::Labels::from_pairs(
                    std::iter::once((crate::model::METRIC_NAME, name.as_str())).chain(s.labels()),
                );
                (labels, 0)
            });
            entry.1 = self.cycle;
        }
    }

    /// Appends a staleness marker at `t` for every series the last cycle did not see, and
    /// forgets them; returns how many.
    pub fn mark_stale(&mut self, t: Timestamp, app: &mut dyn Appender) -> usize {
        let cycle = self.cycle;
        let mut marked = 0;
        self.known.retain(|_, (labels, seen)| {
            if *seen == cycle {
                return true;
            }
            let _ = app.append(labels, t, crate::model::stale_nan());
            marked += 1;
            false
        });
        marked
    }
}

/// `set` encoded in the format the request's `Accept` asks for, gzipped when its
/// `Accept-Encoding` allows. The text is encoded into `buf`, which keeps its capacity when the
/// body is gzipped (the usual case: Prometheus always asks) and is handed over otherwise.
fn exposition_response(req: &Request, set: &MetricSet, buf: &mut Vec<u8>) -> Response {
    buf.clear();
    let content_type = if wants_openmetrics(req.header("accept").unwrap_or("")) {
        expo::encode_openmetrics(set, buf);
        expo::CONTENT_TYPE_OPENMETRICS
    } else {
        expo::encode_text(set, buf);
        expo::CONTENT_TYPE_TEXT
    };
    let mut resp = Response::new(200).header("Content-Type", content_type);
    let body = if req
        .header("accept-encoding")
        .is_some_and(http::gzip::accepts_gzip)
    {
        resp = resp.header("Content-Encoding", "gzip");
        http::gzip::gzip(buf)
    } else {
        let body = std::mem::take(buf);
        // Room for a slightly longer body next time: with exactly this length, a body a few
        // bytes longer doubled the buffer (an mremap of ~64 KB) on the next scrape.
        buf.reserve(body.len() + body.len() / 8);
        body
    };
    resp.header("Vary", "Accept, Accept-Encoding").body(body)
}

/// Content negotiation as Prometheus's expfmt does it: the first acceptable type in order of
/// quality wins; OpenMetrics for `application/openmetrics-text` (version 1.0.0, 0.0.1 or
/// none), text 0.0.4 otherwise.
pub fn wants_openmetrics(accept: &str) -> bool {
    let mut ranges: Vec<(f32, usize, &str, Option<&str>)> = Vec::new();
    for (i, part) in accept.split(',').enumerate() {
        let mut it = part.split(';');
        let media = it.next().unwrap_or("").trim();
        let mut q = 1.0f32;
        let mut version = None;
        for param in it {
            let (k, v) = param.split_once('=').unwrap_or((param, ""));
            match k.trim() {
                "q" => q = v.trim().parse().unwrap_or(0.0),
                "version" => version = Some(v.trim()),
                _ => {}
            }
        }
        if q > 0.0 {
            ranges.push((q, i, media, version));
        }
    }
    crate::sort::sort_by(&mut ranges, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, _, media, version) in ranges {
        match media {
            "application/openmetrics-text"
                if matches!(version, None | Some("1.0.0") | Some("0.0.1")) =>
            {
                return true
            }
            "text/plain" if matches!(version, None | Some("0.0.4")) => return false,
            _ => {}
        }
    }
    false
}

/// The process's own numbers, from the real /proc/self (not `--path.procfs`, which may point
/// at a fixture tree).
#[derive(Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<f64>,
    pub virtual_bytes: Option<f64>,
    pub start_time_s: Option<f64>,
    pub open_fds: Option<f64>,
    pub max_fds: Option<f64>,
    pub virtual_max_bytes: Option<f64>,
    pub threads: Option<f64>,
}

/// Linux reports /proc times in USER_HZ, which is 100 on every architecture promlet targets.
const USER_HZ: f64 = 100.0;

/// What [`ProcessStats::read_self`] keeps between calls. A descriptor of /proc/self/...
/// keeps naming this process, the only one it is read for.
struct SelfFiles {
    buf: String,
    /// /proc/self/statm: sizes in pages. The kernel prints it from two counters, where stat
    /// (which has the same numbers) sums every thread's times and formats 52 fields: 1.3 us
    /// against 4.6 us per read here.
    statm: crate::collect::util::KeptFile,
    /// /proc/self/task: its link count is the number of threads plus 2.
    task_dir: Option<std::fs::File>,
    /// /proc/self/fd, for [`count_open_fds`]: `fstat` of a kept descriptor skips the path walk
    /// through /proc/self that `stat` does (1.0 against 3.1 us).
    fd_dir: Option<std::fs::File>,
    /// From /proc/self/stat at the first call: it does not change.
    start_ticks: Option<Option<f64>>,
}

thread_local! {
    static SELF_FILES: RefCell<SelfFiles> = RefCell::new(SelfFiles {
        buf: String::new(),
        statm: crate::collect::util::KeptFile::new("statm").short_read_ends(0),
        task_dir: None,
        fd_dir: None,
        start_ticks: None,
    });
}

/// `fstat` of the directory `path`, opened once and kept in `slot`.
fn fstat_kept(slot: &mut Option<std::fs::File>, path: &str) -> Option<std::fs::Metadata> {
    if slot.is_none() {
        *slot = std::fs::File::open(path).ok();
    }
    slot.as_ref()?.metadata().ok()
}

/// This process's CPU time (user + system, all threads), in seconds.
fn process_cpu_seconds() -> Option<f64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
}

impl ProcessStats {
    pub fn read_self(boot_time_s: Option<f64>) -> ProcessStats {
        let mut p = ProcessStats::default();
        let page_size = rustix::param::page_size() as f64;
        SELF_FILES.with(|cell| {
            let files = &mut *cell.borrow_mut();
            let start_ticks = *files.start_ticks.get_or_insert_with(|| {
                let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
                let mut from_stat = ProcessStats::default();
                from_stat.parse_stat(&stat, Some(0.0), page_size);
                from_stat.start_time_s.map(|s| s * USER_HZ)
            });
            if let (Some(start), Some(boot)) = (start_ticks, boot_time_s) {
                p.start_time_s = Some(boot + start / USER_HZ);
            }
            let root = std::path::Path::new("/proc/self");
            if files.statm.read(root, &mut files.buf).is_ok() {
                p.parse_statm(&files.buf, page_size);
            }
            p.threads = fstat_kept(&mut files.task_dir, "/proc/self/task")
                .map(|m| std::os::unix::fs::MetadataExt::nlink(&m).saturating_sub(2) as f64)
                .filter(|&n| n >= 1.0);
        });
        p.cpu_seconds = process_cpu_seconds();
        // The soft limits /proc/self/limits prints, from getrlimit(2): the kernel formats all 16
        // lines of that file for a read (6 us against 0.9 us for both calls, measured hot).
        let soft = |r| {
            let lim = rustix::process::getrlimit(r);
            Some(lim.current.unwrap_or(u64::MAX) as f64)
        };
        p.max_fds = soft(rustix::process::Resource::Nofile);
        p.virtual_max_bytes = soft(rustix::process::Resource::As);
        // A kernel never reports 0 resident pages for a running process, but qemu-user's
        // emulated /proc/self files may (its stat fills in only some fields); status has the
        // truth.
        if p.resident_bytes.is_none_or(|v| v == 0.0) || p.virtual_bytes.is_none_or(|v| v == 0.0) {
            if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
                p.parse_status_memory(&status);
            }
        }
        p.open_fds = count_open_fds().map(|n| n as f64);
        p
    }

    /// VmRSS, VmSize and Threads from /proc/self/status (the fallback where stat lacks them).
    fn parse_status_memory(&mut self, status: &str) {
        let field = |key: &str| {
            let line = status.lines().find(|l| l.starts_with(key))?;
            line[key.len()..]
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        };
        if let Some(kb) = field("VmRSS:") {
            self.resident_bytes = Some(kb * 1024.0);
        }
        if let Some(kb) = field("VmSize:") {
            self.virtual_bytes = Some(kb * 1024.0);
        }
        if let Some(n) = field("Threads:") {
            self.threads = Some(n);
        }
    }

    /// /proc/self/statm (proc(5)): total program size and resident set, in pages.
    fn parse_statm(&mut self, statm: &str, page_size: f64) {
        let mut f = statm
            .split_ascii_whitespace()
            .map(|v| v.parse::<f64>().ok());
        self.virtual_bytes = f.next().flatten().map(|pages| pages * page_size);
        self.resident_bytes = f.next().flatten().map(|pages| pages * page_size);
    }

    /// Fields of /proc/self/stat (proc(5)): CPU time, start time, threads, virtual size and
    /// resident pages (the same counters /proc/self/status prints as Threads, VmSize, VmRSS).
    fn parse_stat(&mut self, stat: &str, boot_time_s: Option<f64>, page_size: f64) {
        // The command name may contain spaces and parentheses: fields start after the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            return;
        };
        let mut f = [""; 22];
        for (slot, tok) in f.iter_mut().zip(rest.split_ascii_whitespace()) {
            *slot = tok;
        }
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
        // f[0] is field 3 (state): utime 14, stime 15, starttime 22.
        if let (Some(u), Some(s)) = (num(11), num(12)) {
            self.cpu_seconds = Some((u + s) / USER_HZ);
        }
        if let (Some(start), Some(boot)) = (num(19), boot_time_s) {
            self.start_time_s = Some(boot + start / USER_HZ);
        }
        // num_threads 20, vsize 23 (bytes), rss 24 (pages).
        self.threads = num(17);
        self.virtual_bytes = num(20);
        self.resident_bytes = num(21).map(|pages| pages * page_size);
    }
}

/// Open descriptors of this process. Linux 6.2+ reports the count as the size of
/// `/proc/self/fd`: one `statx` instead of listing ~120 entries (the listing was 4% of a
/// scrape's CPU). Older kernels report 0 there; then the directory is listed, not counting
/// the descriptor the listing itself holds, so both ways give the same number.
fn count_open_fds() -> Option<usize> {
    let size = SELF_FILES
        .with(|cell| fstat_kept(&mut cell.borrow_mut().fd_dir, "/proc/self/fd"))?
        .len() as usize;
    if size > 0 {
        return Some(size);
    }
    let listed = std::fs::read_dir("/proc/self/fd").ok()?.count();
    Some(listed.saturating_sub(1))
}

fn read_boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// File descriptors kept free of connections: listener, epoll and eventfd, signal pipe, the store's
/// segments, and the /proc and /sys files collectors keep open between cycles to save syscalls
/// (measured: 120 on a 2-CPU VM with two interfaces; netclass keeps ~20 per interface).
const RESERVED_FDS: u64 = 256;

/// Raises the soft open-files limit to the hard one (as Go's runtime does for node_exporter
/// and Prometheus) and returns the soft limit now in force.
fn raise_fd_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let lim = getrlimit(Resource::Nofile);
    if let (Some(cur), Some(max)) = (lim.current, lim.maximum) {
        if cur < max {
            let _ = setrlimit(
                Resource::Nofile,
                rustix::process::Rlimit {
                    current: Some(max),
                    maximum: Some(max),
                },
            );
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// The connection cap that fits the fd limit: at the cap the server evicts slow clients,
/// which beats running into EMFILE, where it can accept no one.
fn connection_cap(requested: usize, fd_limit: u64) -> usize {
    let fit = fd_limit.saturating_sub(RESERVED_FDS).max(1);
    requested.min(usize::try_from(fit).unwrap_or(usize::MAX))
}

/// Listen backlog: std uses 128; a burst beyond it (many clients at once) makes the kernel
/// drop handshakes into SYN retries of 1 s and more. The kernel caps it at somaxconn.
const LISTEN_BACKLOG: i32 = 1024;

fn listen_port(addr: &str, port: &str) -> std::io::Result<u16> {
    port.parse().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("invalid port in address {addr:?}"),
        )
    })
}

/// A listen address as a socket address. A host name goes through the agent's own resolver
/// (localhost, /etc/hosts, DNS): std's `ToSocketAddrs` for strings would link musl's
/// getaddrinfo and its resolver (~20 KB of the static binary) for this one call.
fn listen_addr(addr: &str) -> std::io::Result<SocketAddr> {
    if let Ok(a) = addr.parse() {
        return Ok(a);
    }
    let invalid = |msg: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, msg);
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| invalid(format!("missing port in address {addr:?}")))?;
    let port = listen_port(addr, port)?;
    let lookup = crate::net::dns::resolve_host(host, port, Duration::from_secs(10));
    crate::rt::block_on(lookup).map_err(invalid)
}

/// `:9099` means every interface, as in Go: IPv6 dual-stack when the host has it.
fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let listener = match addr.strip_prefix(':') {
        Some(port) => {
            let port = listen_port(addr, port)?;
            TcpListener::bind((Ipv6Addr::UNSPECIFIED, port))
                .or_else(|_| TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))
        }
        None => TcpListener::bind(listen_addr(addr)?),
    }?;
    // Calling listen() again on a listening socket only changes its backlog (Linux).
    rustix::net::listen(&listener, LISTEN_BACKLOG)?;
    Ok(listener)
}

/// The agent's routing table over `state` (public so the HTTP fuzz target drives it from bytes).
pub fn routes(state: Rc<RefCell<State>>, server: Rc<ServerStats>, shutdown: Shutdown) -> Router {
    let lifecycle = state.borrow().args.enable_lifecycle;
    let mut r = Router::new();
    silence_routes(&mut r, &state);
    let st = state.clone();
    r.get("/metrics", move |req| {
        st.borrow_mut().render_metrics(req, &server)
    });
    let st = state.clone();
    r.route(GET_POST, "/federate", move |req| {
        st.borrow().render_federate(req)
    });
    r.get("/-/healthy", |_| {
        Response::text(200, "promlet is Healthy.\n")
    });
    r.get("/-/ready", |_| Response::text(200, "promlet is Ready.\n"));
    let st = state.clone();
    r.route(&["POST", "PUT"], "/-/reload", move |_| {
        if !lifecycle {
            return Response::text(403, "Lifecycle API is not enabled.\n");
        }
        match st.borrow_mut().reload() {
            Ok(()) => Response::text(200, ""),
            Err(e) => Response::text(500, format!("failed to reload config: {e}\n")),
        }
    });
    r.route(&["POST", "PUT"], "/-/quit", move |_| {
        if !lifecycle {
            return Response::text(403, "Lifecycle API is not enabled.\n");
        }
        crate::log::info("received termination request via /-/quit, exiting gracefully");
        shutdown.trigger();
        Response::text(200, "Requesting termination... Goodbye!\n")
    });
    api_routes(&mut r, &state);
    push_routes(&mut r, &state);
    let st = state.clone();
    r.route(GET_POST, "/probe", move |req| {
        probe_response(req, &st.borrow().config)
    });
    // The web UI: `/graph` is where alerts' generatorURLs point.
    let page = Rc::new(http::ui::Page::new());
    let p = page.clone();
    r.get("/", move |req| p.respond(req));
    r.get("/graph", move |req| page.respond(req));
    r
}

/// `/probe?target=…&module=…[&debug=true]`, blackbox_exporter's endpoint: runs the probe on
/// the work thread (the connection waits; nothing else does) and answers with its metrics.
/// The timeout is the module's, capped by Prometheus's scrape-timeout header minus
/// [`crate::probe::TIMEOUT_OFFSET`], as blackbox_exporter computes it.
pub fn probe_response(req: &Request, config: &Config) -> Response {
    let params = match req.params() {
        Ok(p) => p,
        Err(e) => return Response::text(400, format!("{e}\n")),
    };
    let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let module_name = get("module").unwrap_or_else(|| "http_2xx".into());
    let Some(module) = config.probes.module(&module_name) else {
        return Response::text(400, format!("Unknown module {module_name:?}\n"));
    };
    let Some(target) = get("target").filter(|t| !t.is_empty()) else {
        return Response::text(400, "Target parameter is missing\n");
    };
    let debug = get("debug").as_deref() == Some("true");
    let mut timeout = crate::probe::DEFAULT_TIMEOUT;
    if let Some(h) = req.header("x-prometheus-scrape-timeout-seconds") {
        match h.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && s > 0.0 => {
                timeout = Duration::from_secs_f64(s)
                    .saturating_sub(crate::probe::TIMEOUT_OFFSET)
                    .max(Duration::from_millis(100));
            }
            _ => {
                return Response::text(
                    400,
                    format!("Failed to parse timeout from Prometheus header: {h:?}\n"),
                )
            }
        }
    }
    if let Some(t) = module.timeout {
        timeout = timeout.min(t);
    }
    Response::later(async move {
        let mut report = crate::probe::Report::new(debug);
        crate::probe::run(&module, &target, timeout, &mut report).await;
        let mut set = MetricSet::new();
        report.write(&mut set, &[]);
        let mut body = Vec::new();
        expo::encode_text(&set, &mut body);
        if !debug {
            return Response::new(200)
                .header("Content-Type", expo::CONTENT_TYPE_TEXT)
                .body(body);
        }
        let mut text = String::from("Logs for the probe:\n");
        for line in report.log_lines() {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str("\n\n\nMetrics that would have been returned:\n");
        text.push_str(&String::from_utf8_lossy(&body));
        text.push_str(&format!(
            "\n\n\nModule configuration:\nmodule: {module_name}\nprober: {}\ntimeout: {}\n",
            module.prober.name(),
            crate::config::format_duration(timeout)
        ));
        Response::text(200, text)
    })
}

/// The Pushgateway API: PUT replaces a group, POST replaces the pushed families, DELETE
/// removes the group. Off unless `--web.enable-push` (state-changing endpoints, DESIGN §9).
fn push_routes(r: &mut Router, state: &Rc<RefCell<State>>) {
    let st = state.clone();
    r.route(&["PUT", "POST", "DELETE"], "/metrics/*", move |req| {
        if !st.borrow().args.enable_push {
            return Response::text(403, "Push API is not enabled.\n");
        }
        let rest = req.path.strip_prefix("/metrics/").unwrap_or("");
        let key = match crate::push::grouping_key(rest) {
            Ok(k) => k,
            Err(e) => return Response::text(400, format!("{e}\n")),
        };
        let mut state = st.borrow_mut();
        let now_s = SystemClock.wall_ms() as f64 / 1000.0;
        let method = match req.method.as_str() {
            "DELETE" => {
                state.push.delete(&key);
                return Response::text(202, "");
            }
            "PUT" => crate::push::Method::Replace,
            _ => crate::push::Method::Merge,
        };
        let body = match crate::push::body_as_text(
            req.header("content-type"),
            req.header("content-encoding"),
            &req.body,
        ) {
            Ok(b) => b,
            Err(e) => return Response::text(400, format!("{e}\n")),
        };
        match state.push.push(&key, method, &body, now_s) {
            Ok(()) => Response::text(200, ""),
            Err(e) => Response::text(400, format!("{e}\n")),
        }
    });
}

/// Form parameters of an API request, or the bad_data answer Prometheus gives when they
/// cannot be decoded.
fn api_params(req: &Request) -> Result<Vec<(String, String)>, Response> {
    req.params().map_err(|e| {
        let mut j = http::json::Json::new();
        j.begin_object();
        j.key("status").string("error");
        j.key("errorType").string("bad_data");
        j.key("error")
            .string(&format!("error parsing form values: {e}"));
        j.end_object();
        Response::new(400)
            .header("Content-Type", "application/json")
            .body(j.into_bytes())
    })
}

/// API bodies are gzipped when the client allows it (Grafana and Prometheus clients do), as
/// Prometheus does; small ones are not worth the header.
fn api_response(req: &Request, r: ApiResponse) -> Response {
    let gzip = r.body.len() > 1024
        && req
            .header("accept-encoding")
            .is_some_and(http::gzip::accepts_gzip);
    let mut resp: Response = r.into();
    if gzip {
        resp.body = http::gzip::gzip(&resp.body);
        resp = resp
            .header("Content-Encoding", "gzip")
            .header("Vary", "Accept-Encoding");
    }
    resp
}

type ApiHandler = dyn Fn(&Request, &[(String, String)], &State) -> ApiResponse;

/// Adds a route whose handler gets the request's form parameters and the state.
fn api_route(
    r: &mut Router,
    methods: &'static [&'static str],
    pattern: &'static str,
    state: &Rc<RefCell<State>>,
    f: impl Fn(&Request, &[(String, String)], &State) -> ApiResponse + 'static,
) {
    // Boxed so the wrapper below is compiled once, not once per route (2.9 KB for 20
    // routes on x86_64).
    let f: Box<ApiHandler> = Box::new(f);
    let st = state.clone();
    r.route(methods, pattern, move |req| {
        let params = match api_params(req) {
            Ok(p) => p,
            Err(resp) => return resp,
        };
        let resp = f(req, &params, &st.borrow());
        api_response(req, resp)
    });
}

const GET_POST: &[&str] = &["GET", "POST"];

/// The Prometheus HTTP API v1 over the agent's store.
fn api_routes(r: &mut Router, state: &Rc<RefCell<State>>) {
    api_route(r, GET_POST, "/api/v1/query", state, |_, p, st| {
        api_v1::query(p, st.querier(), SystemClock.wall_ms(), &st.engine)
    });
    api_route(r, &["GET"], "/api/v1/targets", state, |_, p, st| {
        let get = |k: &str| {
            p.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
        };
        let body = match &st.scrapes {
            Some(m) => m.borrow().targets_json(get("state"), get("scrapePool")),
            None => br#"{"status":"success","data":{"activeTargets":[],"droppedTargets":[],"droppedTargetCounts":{}}}"#.to_vec(),
        };
        ApiResponse { status: 200, body }
    });
    api_route(r, GET_POST, "/api/v1/query_range", state, |_, p, st| {
        api_v1::query_range(p, st.querier(), SystemClock.wall_ms(), &st.engine)
    });
    api_route(r, GET_POST, "/api/v1/series", state, |_, p, st| {
        api_v1::series(p, st.querier())
    });
    api_route(r, GET_POST, "/api/v1/labels", state, |_, p, st| {
        api_v1::labels(p, st.querier())
    });
    api_route(r, &["GET"], "/api/v1/label/*", state, |req, p, st| {
        let name = req
            .path
            .strip_prefix("/api/v1/label/")
            .and_then(|rest| rest.strip_suffix("/values"))
            .unwrap_or("");
        api_v1::label_values(name, p, st.querier())
    });
    api_route(r, &["GET"], "/api/v1/metadata", state, |_, p, st| {
        api_v1::metadata(p, &st.metadata())
    });
    api_route(
        r,
        &["GET"],
        "/api/v1/targets/metadata",
        state,
        |_, p, st| api_v1::targets_metadata(p, &st.target_metadata()),
    );
    api_route(r, &["GET"], "/api/v1/scrape_pools", state, |_, _, st| {
        let names = match &st.scrapes {
            Some(m) => m.borrow().pool_names(),
            None => Vec::new(),
        };
        api_v1::scrape_pools(&names)
    });
    api_route(r, &["GET"], "/api/v1/alertmanagers", state, |_, _, st| {
        let urls: Vec<String> = st
            .config
            .alerting
            .alertmanagers
            .iter()
            .flat_map(|am| {
                am.targets
                    .iter()
                    .map(move |t| format!("{}://{t}{}/api/v2/alerts", am.scheme, am.path_prefix))
            })
            .collect();
        api_v1::alertmanagers(&urls)
    });
    api_route(r, GET_POST, "/api/v1/query_exemplars", state, |_, p, _| {
        api_v1::query_exemplars(p)
    });
    api_route(r, &["GET"], "/api/v1/status/walreplay", state, |_, _, _| {
        api_v1::status_walreplay()
    });
    api_route(r, GET_POST, "/api/v1/format_query", state, |_, p, _| {
        api_v1::format_query(p)
    });
    api_route(r, &["GET"], "/api/v1/status/buildinfo", state, |_, _, _| {
        api_v1::buildinfo(&BuildInfo {
            version: crate::VERSION.into(),
            revision: REVISION.into(),
            // The toolchain, in the field clients know as the Go version.
            go_version: RUSTC_VERSION.into(),
            ..BuildInfo::default()
        })
    });
    api_route(r, &["GET"], "/api/v1/status/config", state, |_, _, st| {
        api_v1::status_config(&st.config_text)
    });
    api_route(r, &["GET"], "/api/v1/status/flags", state, |_, _, st| {
        api_v1::status_flags(&flag_values(&st.args))
    });
    api_route(
        r,
        &["GET"],
        "/api/v1/status/runtimeinfo",
        state,
        |_, _, st| api_v1::status_runtimeinfo(&st.runtime_info()),
    );
    api_route(r, &["GET"], "/api/v1/rules", state, |_, p, st| {
        let filter = crate::rules::api::RulesFilter::from_params(
            p.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        match filter {
            Ok(f) => api_success(|j| crate::rules::api::write_rules(j, st.rules.groups(), &f)),
            Err(e) => api_bad_data(&e),
        }
    });
    api_route(r, &["GET"], "/api/v1/alerts", state, |_, _, st| {
        api_success(|j| crate::rules::api::write_alerts(j, st.rules.groups()))
    });
    api_route(r, &["GET"], "/api/v1/status/tsdb", state, |_, p, st| {
        api_v1::status_tsdb(p, st.querier(), SystemClock.wall_ms())
    });
}

/// `{"status":"success","data":…}` with the data written by `f`.
fn api_success(f: impl FnOnce(&mut http::json::Json)) -> ApiResponse {
    let mut j = http::json::Json::new();
    j.begin_object();
    j.key("status").string("success");
    j.key("data");
    f(&mut j);
    j.end_object();
    ApiResponse {
        status: 200,
        body: j.into_bytes(),
    }
}

/// The API's `bad_data` error (400).
fn api_bad_data(msg: &str) -> ApiResponse {
    let mut j = http::json::Json::new();
    j.begin_object();
    j.key("status").string("error");
    j.key("errorType").string("bad_data");
    j.key("error").string(msg);
    j.end_object();
    ApiResponse {
        status: 400,
        body: j.into_bytes(),
    }
}

/// Every flag of the table with the value in force (the last one given, else its default),
/// sorted by name as Prometheus lists them.
fn flag_values(args: &Args) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = crate::cli::defs::FLAGS
        .iter()
        .map(|f| {
            let given = args.given_flags.iter().rev().find(|(n, _)| n == f.name);
            let v = given.map_or(f.default, |(_, v)| v.as_str());
            (f.name.to_string(), v.to_string())
        })
        .collect();
    out.sort_unstable();
    out
}

/// How far from its scheduled time a cycle may run and still get the scheduled timestamp.
const CYCLE_STAMP_TOLERANCE_MS: i64 = 25;
/// Alertmanager's `/api/v2/silences` subset over the local route tree's silences; writes need
/// `--web.enable-silences`.
fn silence_routes(r: &mut Router, state: &Rc<RefCell<State>>) {
    let (hub, writable) = {
        let st = state.borrow();
        (st.notify_hub.clone(), st.args.enable_silences)
    };
    let Some(hub) = hub else { return };
    let handler = move |req: &Request| {
        let now = SystemClock.wall_ms();
        let (status, body) = hub.borrow_mut().dispatcher.silences_mut().handle(
            &req.method,
            &req.path,
            &req.body,
            now,
            writable,
        );
        let ctype = if status == 200 {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        Response::new(status)
            .header("Content-Type", ctype)
            .body(body)
    };
    let h = Rc::new(handler);
    let h2 = h.clone();
    r.route(&["GET", "POST"], "/api/v2/silences", move |req| h(req));
    r.route(&["GET", "DELETE"], "/api/v2/silence/*", move |req| h2(req));
}

/// Alert delivery on its own deadlines; polled at least every second so alerts handed over
/// by rule evaluation leave within a second.
async fn notify_loop(hub: Rc<RefCell<crate::notify::Hub>>) {
    let start = Instant::now();
    loop {
        let mono = start.elapsed().as_millis() as i64;
        let (wait, delivered) = {
            let mut h = hub.borrow_mut();
            (h.poll(mono, SystemClock.wall_ms()), h.delivery_finished())
        };
        let wait = wait.map_or(Duration::from_secs(1), |w| w.min(Duration::from_secs(1)));
        // A finished POST is collected at once rather than at the next deadline.
        let timer = async {
            Timer::after(wait.max(Duration::from_millis(10))).await;
        };
        futures_lite::future::or(timer, delivered).await;
    }
}

/// The collection schedule on the monotonic clock. Falls behind gracefully: a late tick runs
/// once and the schedule restarts from now (no burst of catch-up cycles).
async fn collection_loop(state: Rc<RefCell<State>>, server: Rc<ServerStats>) {
    let mut next = Instant::now();
    loop {
        Timer::at(next).await;
        let interval = {
            let mut st = state.borrow_mut();
            st.cycle(&SystemClock, &server);
            st.config.global.scrape_interval
        };
        next += interval;
        let now = Instant::now();
        if next < now {
            next = now + interval;
        }
    }
}

/// Rule evaluation, scheduled on the wall clock (rule groups are aligned to wall time, as in
/// Prometheus). Sleeps until the earliest group deadline, at most a second, so groups a reload
/// adds are scheduled promptly and a wall-clock step is noticed.
async fn rules_loop(state: Rc<RefCell<State>>) {
    loop {
        let wait = {
            let mut st = state.borrow_mut();
            if st.rules.groups().is_empty() {
                None
            } else {
                st.observe_clock(Instant::now(), SystemClock.wall_ms());
                st.run_rules(SystemClock.wall_ms())
                    .map(|next| next - SystemClock.wall_ms())
            }
        };
        let ms = wait.unwrap_or(1000).clamp(1, 1000);
        Timer::after(Duration::from_millis(ms as u64)).await;
    }
}

/// Housekeeping and flushes of the TSDB, on the deadlines it asks for.
async fn tsdb_loop(store: SharedStore) {
    loop {
        let next = store.0.borrow_mut().poll(Instant::now());
        Timer::at(next).await;
    }
}

async fn signal_loop(signals: crate::rt::Signals, state: Rc<RefCell<State>>, shutdown: Shutdown) {
    loop {
        match signals.recv().await {
            Ok(libc::SIGHUP) => {
                crate::log::info("received SIGHUP, reloading configuration");
                let _ = state.borrow_mut().reload();
            }
            Ok(sig @ (libc::SIGTERM | libc::SIGINT)) => {
                let name = if sig == libc::SIGTERM {
                    "SIGTERM"
                } else {
                    "SIGINT"
                };
                crate::log::info(&format!("received {name}, exiting gracefully"));
                shutdown.trigger();
            }
            Ok(_) => {}
            Err(e) => {
                // The pipe cannot fail short of a bug; stop rather than spin on the error.
                crate::log::warn(&format!("signal handling failed: {e}"));
                return;
            }
        }
    }
}

/// Runs the agent until SIGTERM/SIGINT or `/-/quit`; returns the process exit code.
pub fn run(args: Args) -> i32 {
    crate::log::set_level(args.log_level);
    crate::log::set_json(args.log_format == LogFormat::Json);
    let fail = |msg: String| {
        crate::log::error(&msg);
        crate::cli::EXIT_FAILURE
    };
    let (config, config_text) = match load_config_text(&args) {
        Ok(c) => c,
        Err(e) => return fail(format!("error loading config: {e}")),
    };
    if let Err(e) = std::fs::create_dir_all(&args.storage_path) {
        return fail(format!(
            "cannot create storage directory {}: {e}",
            args.storage_path.display()
        ));
    }
    let driver = match build_driver(&config, &args) {
        Ok(d) => d,
        Err(e) => return fail(format!("error building collectors: {e}")),
    };
    let rule_groups = match load_rules(&config, &args) {
        Ok(g) => g,
        Err(e) => return fail(format!("error loading rules:\n{e}")),
    };
    // Signals before the socket: once the port accepts, SIGTERM must mean a clean exit.
    let signals = match crate::rt::Signals::new(&[libc::SIGHUP, libc::SIGTERM, libc::SIGINT]) {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot install signal handlers: {e}")),
    };
    // The web config before the socket: a bad file must stop start-up, not lock users out.
    let gate = match &args.web_config_file {
        None => None,
        Some(path) => match crate::http::webconfig::Gate::open(path) {
            Ok(g) => Some(Rc::new(g)),
            Err(e) => return fail(format!("error loading web config: {e}")),
        },
    };
    let tls_settings = gate
        .as_ref()
        .and_then(|g| g.current().ok())
        .and_then(|c| c.tls);
    #[cfg(not(feature = "tls"))]
    if tls_settings.is_some() {
        return fail(format!(
            "error loading web config: {}: tls_server_config needs a promlet built with the \
             `tls` feature (cargo build --release --features tls)",
            args.web_config_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ));
    }
    #[cfg(feature = "tls")]
    let server_tls = match &tls_settings {
        None => None,
        Some(t) => match crate::tls::ServerTls::new(t) {
            Ok(s) => Some(Rc::new(s)),
            Err(e) => return fail(format!("error loading web config: TLS: {e}")),
        },
    };
    let listener = match bind(&args.listen_address).and_then(Async::new) {
        Ok(l) => l,
        Err(e) => return fail(format!("cannot listen on {}: {e}", args.listen_address)),
    };
    let fd_limit = raise_fd_limit();
    let max_connections = connection_cap(args.max_connections, fd_limit);
    if max_connections < args.max_connections {
        crate::log::warn(&format!(
            "open-files limit {fd_limit} allows only {max_connections} connections \
             (--web.max-connections={})",
            args.max_connections
        ));
    }
    let limits = Limits {
        max_connections,
        read_timeout: args.read_timeout,
        ..Limits::default()
    };
    let local = listener
        .get_ref()
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let collectors: Vec<&str> = driver.names().collect();
    crate::log::info(&format!(
        "starting promlet {} (revision {REVISION}); config {}; collectors: {}",
        crate::VERSION,
        args.config_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<embedded>".into()),
        if collectors.is_empty() {
            "none".to_string()
        } else {
            collectors.join(",")
        }
    ));
    let started = Instant::now();
    let store = SharedStore::new(Store::open(
        args.tsdb.clone(),
        &args.storage_path,
        Box::new(OsFs),
    ));
    {
        let st = store.0.borrow();
        crate::log::info(&format!(
            "TSDB opened in {} ms: {} series, {} samples recovered, {} damaged records skipped",
            started.elapsed().as_millis(),
            st.series_count(),
            st.stats().samples_recovered,
            st.stats().corrupt_records
        ));
    }
    let scheme = if tls_settings.is_some() {
        "https"
    } else {
        "http"
    };
    let port = listener.get_ref().local_addr().map_or(0, |a| a.port());
    let external_url = external_url(args.external_url.as_deref(), scheme, &host_name(), port);
    // 'static so scrape pools can spawn their target tasks on it, and notification its POSTs.
    let ex: Rc<LocalExecutor<'static>> = Rc::new(LocalExecutor::new());
    let hub = match crate::notify::Hub::open(
        &config,
        &args.storage_path,
        external_url.clone(),
        ex.clone(),
    ) {
        Ok(h) => Rc::new(RefCell::new(h)),
        Err(e) => return fail(format!("cannot open the alert queue: {e}")),
    };
    let push = if args.enable_push {
        match crate::push::Store::open(&args.storage_path) {
            Ok(p) => p,
            Err(e) => return fail(format!("cannot open the pushed groups: {e}")),
        }
    } else {
        crate::push::Store::new()
    };
    let mut state = State::new(args, config, driver);
    state.push = push;
    state.notify_hub = Some(hub.clone());
    // Rule evaluation hands its alerts to the hub: the Alertmanager queue and the local routes.
    let to_hub = hub.clone();
    state.notify = Some(Box::new(move |_expr, alerts| {
        to_hub.borrow_mut().send(alerts, SystemClock.wall_ms());
    }));
    state.config_text = config_text;
    state.appender = Some(Box::new(store.clone()));
    state.tsdb = Some(store.clone());
    {
        use crate::scrape::manager::{Env, Manager};
        let app: Rc<RefCell<dyn Appender>> = store.0.clone();
        let mgr = Manager::new(Env {
            ex: ex.clone(),
            app,
            clock: Rc::new(SystemClock),
            series_cap: state.args.tsdb.max_series,
        });
        Manager::apply_config(&mgr, &state.config.scrape_configs);
        state.scrapes = Some(mgr);
        let app: Rc<RefCell<dyn Appender>> = store.0.clone();
        let mut probes = crate::probe::Scheduler::new(crate::probe::Env {
            ex: ex.clone(),
            app,
            clock: Rc::new(SystemClock),
        });
        probes.apply(&state.config.probes);
        state.probes = Some(probes);
    }
    // remote_write: one task per queue on the same executor, cursors under the data dir.
    let remote = Rc::new(RefCell::new(crate::remote::Manager::new(
        ex.clone(),
        store.clone(),
        Some(state.args.storage_path.join("remote_write")),
    )));
    remote.borrow_mut().apply_config(
        &state.config.remote_write,
        &state.config.global.external_labels,
    );
    state.remote = Some(remote.clone());
    state.external_url = external_url;
    state.web_gate = gate.clone();
    let interval = state.config.global.evaluation_interval;
    state.rules.update(rule_groups, interval);
    let state = Rc::new(RefCell::new(state));
    let shutdown = Shutdown::new();
    let server = Server::new(limits);
    #[cfg(feature = "tls")]
    let server = match (server_tls, gate.clone()) {
        (Some(tls), Some(gate)) => server.with_tls(Rc::new(move || {
            let now = gate.current()?.tls;
            tls.config_for(now.as_ref())
        })),
        _ => server,
    };
    let router = routes(state.clone(), server.stats(), shutdown.clone());
    let counted = {
        let state = state.clone();
        move |req: &Request| {
            // With a web config, every endpoint needs credentials (as exporter-toolkit).
            if let Some(gate) = &gate {
                if let crate::http::webconfig::Verdict::Refuse(resp) =
                    gate.check(req, Instant::now())
                {
                    state.borrow_mut().stats.count_request("", resp.status);
                    return gate.finish(resp);
                }
            }
            let (route, resp) = router.dispatch(req);
            state.borrow_mut().stats.count_request(route, resp.status);
            match &gate {
                Some(gate) => gate.finish(resp),
                None => resp,
            }
        }
    };
    crate::log::info(&format!("listening on {local}"));
    let result = crate::rt::block_on(ex.run(async {
        use crate::task::spawn;
        spawn(&ex, collection_loop(state.clone(), server.stats())).detach();
        spawn(&ex, tsdb_loop(store.clone())).detach();
        spawn(&ex, rules_loop(state.clone())).detach();
        spawn(&ex, notify_loop(hub.clone())).detach();
        spawn(&ex, signal_loop(signals, state.clone(), shutdown.clone())).detach();
        server.serve(listener, counted, shutdown.wait()).await
    }));
    // Make everything collected so far durable before exiting, and where each queue got to.
    store.0.borrow_mut().flush(Instant::now());
    remote.borrow().persist_all();
    match result {
        Ok(()) => {
            crate::log::info("see you next time!");
            0
        }
        Err(e) => fail(format!("http server failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;
    use crate::tsdb::AppendError;
    use std::cell::Cell;

    fn unused(_: &CollectorOptions) -> Result<Box<dyn crate::collect::Collector>, String> {
        Err("unused".into())
    }

    fn def(name: &'static str, default_enabled: bool) -> CollectorDef {
        CollectorDef {
            name,
            default_enabled,
            options: &[],
            new: unused,
        }
    }

    #[test]
    fn flags_override_config_which_overrides_collector_defaults() {
        let (cpu, wifi) = (def("cpu", true), def("wifi", false));
        let mut cfg = Config::default();
        let mut args = Args::default();
        assert!(collector_enabled(&cpu, &cfg, &args));
        assert!(!collector_enabled(&wifi, &cfg, &args));
        cfg.collectors.switches = vec![("cpu".into(), false), ("wifi".into(), true)];
        assert!(!collector_enabled(&cpu, &cfg, &args));
        assert!(collector_enabled(&wifi, &cfg, &args));
        args.collector_switches = vec![("cpu".into(), true), ("wifi".into(), false)];
        assert!(collector_enabled(&cpu, &cfg, &args));
        assert!(!collector_enabled(&wifi, &cfg, &args));
        let mut cfg = Config::default();
        cfg.collectors.disable_defaults = true;
        assert!(!collector_enabled(&cpu, &cfg, &Args::default()));

        cfg.collectors.options = vec![("a.b".into(), "config".into()), ("a.c".into(), "c".into())];
        args.collector_options = vec![("a.b".into(), "flag".into())];
        let o = collector_options(&cfg, &args);
        assert_eq!((o.get("a.b"), o.get("a.c")), ("flag", "c"));
    }

    #[test]
    fn embedded_config_probes_the_uplink_and_logs_uplink_down() {
        let cfg = Config::embedded();
        let jobs: Vec<&str> = cfg
            .probes
            .jobs
            .iter()
            .map(|j| j.job_name.as_str())
            .collect();
        assert_eq!(jobs, ["uplink_gateway", "uplink_dns"]);
        assert!(cfg.probes.jobs[0].default_gateway);
        assert!(cfg.probes.jobs[1].resolv_conf_nameservers);
        assert!(cfg.probes.module("dns_uplink").is_some());
        let groups = load_rules(&cfg, &Args::default()).unwrap();
        let names: Vec<&str> = groups
            .iter()
            .flat_map(|g| g.rules.iter().map(|r| r.name.as_str()))
            .collect();
        assert_eq!(names, ["Heartbeat", "UplinkDown"]);
        let mut alert = crate::model::Labels::new();
        alert.set("alertname".into(), "UplinkDown".into());
        let routes = cfg.notify.matching(&alert);
        assert_eq!(routes.len(), 1);
        let receiver = cfg
            .notify
            .receiver(&cfg.notify.routes[routes[0]].receiver)
            .unwrap();
        assert_eq!(receiver.name, "log");
    }

    #[test]
    fn connection_cap_leaves_room_for_own_fds() {
        assert_eq!(connection_cap(512, 20_000), 512);
        assert_eq!(connection_cap(512, 512), 256);
        assert_eq!(connection_cap(512, 10), 1);
    }

    #[test]
    fn negotiation_follows_expfmt() {
        assert!(!wants_openmetrics(""));
        assert!(!wants_openmetrics("*/*"));
        assert!(wants_openmetrics(
            "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1"
        ));
        assert!(!wants_openmetrics(
            "application/openmetrics-text;version=1.0.0;q=0.3,text/plain;version=0.0.4;q=0.4"
        ));
        assert!(!wants_openmetrics(
            "application/openmetrics-text;version=2.0.0"
        ));
        assert!(wants_openmetrics("application/openmetrics-text"));
    }

    #[test]
    fn process_stat_and_status_parse() {
        let mut p = ProcessStats::default();
        p.parse_stat(
            "42 (prom let) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 2 0 1000 2097152 128",
            Some(1_700_000_000.0),
            4096.0,
        );
        assert_eq!(p.cpu_seconds, Some(3.0));
        assert_eq!(p.start_time_s, Some(1_700_000_010.0));
        assert_eq!(p.virtual_bytes, Some(2048.0 * 1024.0));
        assert_eq!(p.resident_bytes, Some(512.0 * 1024.0));
        assert_eq!(p.threads, Some(2.0));
    }

    /// The soft limit of `name` in /proc/self/limits; "unlimited" is u64::MAX, as Go's procfs
    /// reports it (client_golang's values) and as the getrlimit path does.
    fn parse_limit(limits: &str, name: &str) -> Option<f64> {
        let line = limits.lines().find(|l| l.starts_with(name))?;
        let soft = line[name.len()..].split_whitespace().next()?;
        if soft == "unlimited" {
            return Some(u64::MAX as f64);
        }
        soft.parse().ok()
    }

    #[test]
    fn process_limits_are_the_soft_limits_proc_self_limits_shows() {
        let p = ProcessStats::read_self(None);
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
        assert_eq!(p.max_fds, parse_limit(&limits, "Max open files"));
        assert_eq!(
            p.virtual_max_bytes,
            parse_limit(&limits, "Max address space")
        );
        assert!(p.max_fds.unwrap() >= 3.0);
    }

    #[test]
    fn process_statm_gives_sizes_in_pages() {
        let mut p = ProcessStats::default();
        p.parse_statm("765 403 375 5 0 123 0\n", 4096.0);
        assert_eq!(p.virtual_bytes, Some(765.0 * 4096.0));
        assert_eq!(p.resident_bytes, Some(403.0 * 4096.0));
        let mut bad = ProcessStats::default();
        bad.parse_statm("x", 4096.0);
        assert_eq!((bad.virtual_bytes, bad.resident_bytes), (None, None));
    }

    #[test]
    fn read_self_counts_threads_and_cpu_and_keeps_the_start_time() {
        let a = ProcessStats::read_self(Some(1_000.0));
        let helper = std::thread::spawn(|| ProcessStats::read_self(Some(1_000.0)));
        let b = helper.join().unwrap();
        // This thread and the helper, at least (the test harness runs others).
        assert!(b.threads.unwrap() >= 2.0, "{b:?}");
        assert!(a.cpu_seconds.unwrap() > 0.0);
        // Read once per thread from stat, and the same process: the same start time (within
        // the 10 ms ticks qemu-user's emulated stat may count from the reading thread's start).
        let (sa, sb) = (a.start_time_s.unwrap(), b.start_time_s.unwrap());
        assert!((sa - sb).abs() < 1.0, "{sa} vs {sb}");
        assert!(sa > 1_000.0);
        assert_eq!(
            ProcessStats::read_self(Some(1_000.0)).start_time_s,
            Some(sa)
        );
    }

    /// Under qemu-user /proc/self/stat reports 0 resident pages; status fills them in.
    #[test]
    fn status_fills_memory_that_stat_reports_as_zero() {
        let mut p = ProcessStats::default();
        p.parse_stat(
            "42 (promlet) S 1 42 42 0 -1 0 0 0 0 0 5 3 0 0 20 0 2 0 100 0 0 0",
            None,
            4096.0,
        );
        assert_eq!(p.resident_bytes, Some(0.0));
        p.parse_status_memory(
            "Name:\tpromlet\nVmSize:\t  10240 kB\nVmRSS:\t    2048 kB\nThreads:\t2\n",
        );
        assert_eq!(p.resident_bytes, Some(2048.0 * 1024.0));
        assert_eq!(p.virtual_bytes, Some(10240.0 * 1024.0));
        assert_eq!(p.threads, Some(2.0));
    }

    #[test]
    fn read_self_sees_this_process() {
        let p = ProcessStats::read_self(read_boot_time());
        assert!(p.resident_bytes.unwrap() > 0.0);
        assert!(p.threads.unwrap() >= 1.0);
        assert!(p.open_fds.unwrap() >= 3.0);
        // The count matches a listing (which holds one descriptor more while it runs). Other
        // tests open files in parallel, so a few tries may be needed to see a quiet moment.
        let agrees = (0..50).any(|_| {
            let counted = count_open_fds();
            let listed = std::fs::read_dir("/proc/self/fd").unwrap().count();
            counted == Some(listed - 1)
        });
        assert!(agrees, "statx count never matched a listing");
        assert!(p.start_time_s.unwrap() > 1.5e9);
        // stat's vsize and rss are the counters status prints as VmSize and VmRSS (kB).
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let kb = |key: &str| {
            let line = status.lines().find(|l| l.starts_with(key)).unwrap();
            line[key.len()..]
                .trim()
                .trim_end_matches(" kB")
                .parse::<f64>()
                .unwrap()
                * 1024.0
        };
        let near = |a: f64, b: f64| (a - b).abs() <= 0.2 * b;
        assert!(near(p.virtual_bytes.unwrap(), kb("VmSize:")), "{p:?}");
        assert!(near(p.resident_bytes.unwrap(), kb("VmRSS:")), "{p:?}");
    }

    /// Records appends; refuses every second one to check the error count.
    #[derive(Default)]
    struct Recorder(Vec<(String, i64, f64)>, Cell<u32>);

    impl Appender for Recorder {
        fn append(&mut self, l: &Labels, t: Timestamp, v: f64) -> Result<(), AppendError> {
            self.1.set(self.1.get() + 1);
            if self.1.get() % 2 == 0 {
                return Err(AppendError::OutOfOrder);
            }
            self.0.push((l.to_string(), t, v));
            Ok(())
        }
    }

    #[test]
    fn external_url_is_the_flag_or_hostname_and_port() {
        assert_eq!(external_url(None, "http", "pi", 9099), "http://pi:9099");
        assert_eq!(external_url(None, "https", "pi", 9099), "https://pi:9099");
        assert_eq!(
            external_url(Some("https://mon.example/pi"), "http", "pi", 9099),
            "https://mon.example/pi"
        );
        assert!(!host_name().is_empty());
    }

    #[test]
    fn series_that_stop_being_collected_get_one_staleness_marker() {
        #[derive(Default)]
        struct All(Vec<(String, i64, f64)>);
        impl Appender for All {
            fn append(&mut self, l: &Labels, t: Timestamp, v: f64) -> Result<(), AppendError> {
                self.0.push((l.to_string(), t, v));
                Ok(())
            }
        }
        let cycle = |mounts: &[&str]| {
            let mut set = MetricSet::new();
            let f = set.family_static("node_filesystem_size_bytes", "h", MetricType::Gauge);
            for m in mounts {
                set.sample(f, &[("mountpoint", m)], 1.0);
            }
            let t = set.family_static("textfile_stamped", "h", MetricType::Gauge);
            if mounts.len() == 2 {
                set.sample_full(t, "", &[], 1.0, Some(5));
            }
            set
        };
        let mut vanished = VanishedSeries::default();
        let mut app = All::default();
        vanished.observe(&cycle(&["/", "/mnt/usb"]));
        assert_eq!(vanished.mark_stale(1000, &mut app), 0);
        vanished.observe(&cycle(&["/"]));
        assert_eq!(vanished.mark_stale(2000, &mut app), 1);
        assert_eq!(app.0.len(), 1);
        let (series, t, v) = &app.0[0];
        assert_eq!(
            series,
            "node_filesystem_size_bytes{mountpoint=\"/mnt/usb\"}"
        );
        assert_eq!(*t, 2000);
        assert!(crate::model::is_stale_nan(*v));
        // Gone once, marked once; back again, tracked again.
        vanished.observe(&cycle(&["/"]));
        assert_eq!(vanished.mark_stale(3000, &mut app), 0);
        vanished.observe(&cycle(&["/", "/mnt/usb"]));
        assert_eq!(vanished.mark_stale(4000, &mut app), 0);
        vanished.observe(&cycle(&[]));
        assert_eq!(vanished.mark_stale(5000, &mut app), 2);
    }

    #[test]
    fn append_all_names_series_and_counts_refusals() {
        let mut set = MetricSet::new();
        let f = set.family_static("node_x", "h", MetricType::Gauge);
        set.sample(f, &[("cpu", &0)], 1.5);
        set.sample(f, &[("cpu", &1)], 2.5);
        let h = set.family_static("h", "h", MetricType::Summary);
        set.sample_full(h, "_sum", &[], 3.0, Some(77));
        let mut rec = Recorder::default();
        assert_eq!(append_all(&set, 1000, &mut rec), 1);
        assert_eq!(
            rec.0,
            vec![
                ("node_x{cpu=\"0\"}".to_string(), 1000, 1.5),
                ("h_sum".to_string(), 77, 3.0)
            ]
        );
    }

    #[test]
    fn cycle_stores_collectors_and_self_metrics_for_the_api() {
        let args = Args::default();
        let cfg = Config::embedded();
        let driver = build_driver(&cfg, &args).unwrap();
        let mut st = State::new(args, cfg, driver);
        let store = SharedStore::new(Store::new(Default::default()));
        st.appender = Some(Box::new(store.clone()));
        st.tsdb = Some(store);
        let clock = FakeClock {
            mono: Cell::new(Instant::now()),
            wall: Cell::new(1_000_000),
        };
        let server = ServerStats::default();
        st.cycle(&clock, &server);
        let names = st.querier().label_values("__name__", &[], 0, 2_000_000);
        for n in [
            "node_load1",
            "promlet_collection_cycles_total",
            "promlet_tsdb_series",
            "process_resident_memory_bytes",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} not stored: {names:?}");
        }
        assert_eq!(st.stats.append_errors, 0);
        assert!(st
            .metadata()
            .iter()
            .any(|m| m.metric == "node_load1" && m.kind == "gauge"));
    }

    /// A clock whose wall time can be stepped.
    struct FakeClock {
        mono: Cell<Instant>,
        wall: Cell<Timestamp>,
    }

    impl Clock for FakeClock {
        fn monotonic(&self) -> Instant {
            self.mono.get()
        }
        fn wall_ms(&self) -> Timestamp {
            self.wall.get()
        }
    }

    #[test]
    fn cycle_counts_a_wall_clock_step_and_keeps_going() {
        let args = Args::default();
        let cfg = Config::embedded();
        let driver = build_driver(&cfg, &args).unwrap();
        let mut st = State::new(args, cfg, driver);
        let clock = FakeClock {
            mono: Cell::new(Instant::now()),
            wall: Cell::new(1_000_000),
        };
        let server = ServerStats::default();
        let tick = |days: i64| {
            clock.mono.set(clock.mono.get() + Duration::from_secs(15));
            clock
                .wall
                .set(clock.wall.get() + 15_000 + days * 86_400_000);
        };
        st.cycle(&clock, &server);
        tick(0);
        st.cycle(&clock, &server);
        assert_eq!(st.stats.clock_steps, 0);
        tick(400);
        st.cycle(&clock, &server);
        tick(0);
        st.cycle(&clock, &server);
        assert_eq!(st.stats.clock_steps, 1);
        assert_eq!(st.stats.cycles, 4);
    }

    /// A state whose cycles append to an in-memory store holding one sample of every series
    /// the cycle writes at `stored_at`.
    fn state_with_data_at(stored_at: Timestamp, clock: &FakeClock) -> (State, SharedStore) {
        let args = Args::default();
        let cfg = Config::embedded();
        let driver = build_driver(&cfg, &args).unwrap();
        let mut st = State::new(args, cfg, driver);
        let store = SharedStore::new(Store::new(crate::tsdb::Options::default()));
        st.appender = Some(Box::new(store.clone()));
        st.tsdb = Some(store.clone());
        let wall = clock.wall.get();
        clock.wall.set(stored_at);
        st.cycle(clock, &ServerStats::default());
        clock.wall.set(wall);
        // A new process: nothing observed yet.
        let (args, cfg) = (Args::default(), Config::embedded());
        let driver = build_driver(&cfg, &args).unwrap();
        let mut fresh = State::new(args, cfg, driver);
        fresh.appender = Some(Box::new(store.clone()));
        fresh.tsdb = Some(store.clone());
        (fresh, store)
    }

    fn held(store: &SharedStore, from: Timestamp, to: Timestamp) -> usize {
        store
            .select(&[], from, to)
            .iter()
            .map(|s| s.samples.len())
            .sum()
    }

    /// Start-up with the clock behind the data, then NTP sets it (a Pi without RTC): the
    /// history is kept, the cycles before the clock is set are refused, collection resumes
    /// after the step.
    #[test]
    fn startup_clock_behind_the_data_keeps_history_when_ntp_sets_it() {
        let truth = 1_760_000_000_000;
        let clock = FakeClock {
            mono: Cell::new(Instant::now()),
            wall: Cell::new(1_000_000), // 1970
        };
        let (mut st, store) = state_with_data_at(truth, &clock);
        let history = held(&store, truth, truth);
        assert!(history > 100);
        let server = ServerStats::default();
        st.cycle(&clock, &server);
        assert!(
            st.stats.append_errors > 0,
            "1970 samples must not be stored"
        );
        assert_eq!(held(&store, truth, truth), history);
        clock.mono.set(clock.mono.get() + Duration::from_secs(30));
        clock.wall.set(truth + 60_000);
        st.cycle(&clock, &server);
        assert_eq!(st.stats.clock_steps, 1);
        assert_eq!(held(&store, truth, truth), history, "true history lost");
        assert!(held(&store, truth + 60_000, truth + 60_000) >= history);
        assert_eq!(held(&store, 0, truth - 1), 0);
    }

    /// Start-up with the clock behind the data and no step within the grace period (the data
    /// was stamped by a clock that was ahead): the clock is trusted, the newer data dropped,
    /// and collection continues at the clock's time.
    #[test]
    fn startup_clock_behind_the_data_is_trusted_after_the_grace_period() {
        let truth = 1_760_000_000_000;
        let clock = FakeClock {
            mono: Cell::new(Instant::now()),
            wall: Cell::new(truth),
        };
        let (mut st, store) = state_with_data_at(truth + 3 * 86_400_000, &clock);
        let server = ServerStats::default();
        let mut stored_before_grace = 0;
        for _ in 0..CLOCK_BEHIND_GRACE.as_secs() / 15 {
            st.cycle(&clock, &server);
            stored_before_grace = held(&store, truth, clock.wall.get());
            clock.mono.set(clock.mono.get() + Duration::from_secs(15));
            clock.wall.set(clock.wall.get() + 15_000);
        }
        assert_eq!(stored_before_grace, 0, "stored while waiting for the clock");
        st.cycle(&clock, &server);
        assert_eq!(st.stats.clock_steps, 0);
        assert_eq!(
            held(&store, truth + 86_400_000, i64::MAX),
            0,
            "future data kept"
        );
        assert!(held(&store, truth, clock.wall.get()) > 100);
        assert!(store.0.borrow().stats().clock_step_discarded > 100);
    }

    #[test]
    fn listen_addresses_parse_literals_resolve_localhost_and_reject_a_bad_port() {
        assert_eq!(
            listen_addr("127.0.0.1:9099").unwrap(),
            "127.0.0.1:9099".parse().unwrap()
        );
        assert_eq!(
            listen_addr("[::1]:80").unwrap(),
            "[::1]:80".parse().unwrap()
        );
        assert_eq!(
            listen_addr("localhost:9099").unwrap(),
            "127.0.0.1:9099".parse().unwrap()
        );
        assert!(listen_addr("127.0.0.1").is_err());
        assert!(listen_addr("localhost:http").is_err());
        assert!(bind(":notaport").is_err());
        let l = bind("localhost:0").unwrap();
        assert!(l.local_addr().unwrap().ip().is_loopback());
    }
}
