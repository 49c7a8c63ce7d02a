//! blackbox_exporter-compatible probes: is that host, port, name server or web page up?
//!
//! Owns: running one probe of a module against a target under a deadline ([`run`]), the
//! result in blackbox_exporter 0.28's metric names, help texts and label sets ([`Report`]),
//! target resolution with its preferred/fallback IP protocol, the default gateway
//! (`/proc/net/route`), and the schedule of `probes.jobs` ([`Scheduler`]) whose results go to
//! the TSDB like a collector's.
//! Must not touch: HTTP serving (the agent routes `/probe` here), TSDB internals (appends
//! through [`Appender`]), rules.
//!
//! Everything runs as tasks on the work thread: sockets are `Async<…>`, deadlines are
//! `Timer`s raced against the probe, so a probe never blocks collection and no probe or
//! lookup gets a thread.
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | modules in blackbox's format, built-ins, `probes:` |
//! | [`http`] | the HTTP prober: phases, redirects, status and body checks |
//! | [`tcp`] | the TCP prober: connect, `query_response` |
//! | [`dns`] | the DNS prober: one query, rcode and record checks |
//! | [`icmp`] | the ICMP echo prober (datagram or raw socket) |

pub mod config;
pub mod dns;
pub mod http;
pub mod icmp;
pub mod tcp;

use crate::expo::{MetricSet, MetricType};
use crate::model::{Clock, Timestamp};
pub use crate::net::split_host_port;
use crate::rt::Timer;
use crate::tsdb::Appender;
use async_executor::{LocalExecutor, Task};
use config::{IpChoice, Module, ProbeJob, Prober, ProbesConfig};
use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Used when neither the module nor the request says (blackbox_exporter's own default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Subtracted from Prometheus's scrape timeout header so the answer arrives in time
/// (blackbox's `--timeout-offset` default).
pub const TIMEOUT_OFFSET: Duration = Duration::from_millis(500);

/// One gauge of a probe's result.
#[derive(Clone, Debug, PartialEq)]
struct Gauge {
    name: &'static str,
    help: &'static str,
    /// blackbox's probes use at most one label (`phase`).
    label: Option<(&'static str, &'static str)>,
    value: f64,
}

/// The gauges one probe registers, in blackbox_exporter's names; written out sorted by name
/// and label value, as its registry gathers them. Probers register a gauge at the point
/// blackbox does, so the same failure exposes the same set of series.
#[derive(Clone, Debug, Default)]
pub struct Report {
    gauges: Vec<Gauge>,
    /// Log lines for `debug=true`; None: not kept.
    log: Option<Vec<String>>,
}

impl Report {
    pub fn new(debug: bool) -> Report {
        Report {
            gauges: Vec::new(),
            log: debug.then(Vec::new),
        }
    }

    fn find(&mut self, name: &str, label: Option<&str>) -> Option<&mut Gauge> {
        self.gauges
            .iter_mut()
            .find(|g| g.name == name && g.label.map(|l| l.1) == label)
    }

    /// Registers a gauge (value 0) unless it is there.
    pub fn register(&mut self, name: &'static str, help: &'static str) {
        if self.find(name, None).is_none() {
            self.gauges.push(Gauge {
                name,
                help,
                label: None,
                value: 0.0,
            });
        }
    }

    /// Sets a gauge, registering it if needed.
    pub fn set(&mut self, name: &'static str, help: &'static str, value: f64) {
        self.register(name, help);
        self.find(name, None).expect("registered").value = value;
    }

    /// Registers a labeled series (value 0) unless it is there.
    pub fn register_labeled(
        &mut self,
        name: &'static str,
        help: &'static str,
        label: &'static str,
        value_of_label: &'static str,
    ) {
        if self.find(name, Some(value_of_label)).is_none() {
            self.gauges.push(Gauge {
                name,
                help,
                label: Some((label, value_of_label)),
                value: 0.0,
            });
        }
    }

    /// Sets a labeled series, registering it if needed.
    pub fn set_labeled(
        &mut self,
        name: &'static str,
        help: &'static str,
        label: &'static str,
        value_of_label: &'static str,
        value: f64,
    ) {
        self.register_labeled(name, help, label, value_of_label);
        self.find(name, Some(value_of_label))
            .expect("registered")
            .value = value;
    }

    /// Adds to a labeled series, registering it if needed.
    pub fn add_labeled(
        &mut self,
        name: &'static str,
        help: &'static str,
        label: &'static str,
        value_of_label: &'static str,
        by: f64,
    ) {
        self.register_labeled(name, help, label, value_of_label);
        self.find(name, Some(value_of_label))
            .expect("registered")
            .value += by;
    }

    /// The value of a gauge, if registered.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.gauges
            .iter()
            .find(|g| g.name == name && g.label.is_none())
            .map(|g| g.value)
    }

    /// Adds a log line (kept only for `debug=true`).
    pub fn log(&mut self, line: impl FnOnce() -> String) {
        if let Some(l) = self.log.as_mut() {
            l.push(line());
        }
    }

    /// The log lines kept for `debug=true`.
    pub fn log_lines(&self) -> &[String] {
        self.log.as_deref().unwrap_or(&[])
    }

    /// Writes the gauges into `set`, each sample also labeled with `extra` (sorted by the
    /// caller; empty for `/probe`).
    pub fn write(&self, set: &mut MetricSet, extra: &[(&str, &str)]) {
        let mut order: Vec<&Gauge> = self.gauges.iter().collect();
        crate::sort::sort_by(&mut order, |a, b| {
            (a.name, a.label.map(|l| l.1)).cmp(&(b.name, b.label.map(|l| l.1)))
        });
        let mut last: Option<(&str, crate::expo::FamilyId)> = None;
        for g in order {
            let fam = match last {
                Some((n, id)) if n == g.name => id,
                _ => {
                    let id = set.family_static(g.name, g.help, MetricType::Gauge);
                    last = Some((g.name, id));
                    id
                }
            };
            let first = set.label_mark();
            let mut pushed = false;
            for (n, v) in extra {
                if let Some((ln, lv)) = g.label {
                    if !pushed && ln < *n {
                        set.push_label(ln, lv);
                        pushed = true;
                    }
                }
                set.push_label(n, v);
            }
            if let (Some((ln, lv)), false) = (g.label, pushed) {
                set.push_label(ln, lv);
            }
            set.push_sample(fam, "", first, g.value, None);
        }
    }
}

/// Runs `module` against `target` under `timeout`: the prober's gauges plus `probe_success`
/// and `probe_duration_seconds`, as blackbox_exporter reports them. A probe cut off by the
/// deadline keeps the gauges it registered so far and fails.
pub async fn run(module: &Module, target: &str, timeout: Duration, report: &mut Report) -> bool {
    let start = Instant::now();
    let deadline = start + timeout;
    let success = {
        let work = async {
            match module.prober {
                Prober::Http => http::probe(target, &module.http, report).await,
                Prober::Tcp => tcp::probe(target, &module.tcp, report).await,
                Prober::Dns => dns::probe(target, &module.dns, report).await,
                Prober::Icmp => icmp::probe(target, &module.icmp, report).await,
            }
        };
        futures_lite::future::or(work, async {
            Timer::at(deadline).await;
            false
        })
        .await
    };
    if Instant::now() >= deadline {
        report.log(|| format!("probe timed out after {timeout:?}"));
    }
    report.set(
        "probe_duration_seconds",
        "Returns how long the probe took to complete in seconds",
        start.elapsed().as_secs_f64(),
    );
    report.set(
        "probe_success",
        "Displays whether or not the probe was a success",
        if success { 1.0 } else { 0.0 },
    );
    report.log(|| format!("probe {}", if success { "succeeded" } else { "failed" }));
    success
}

/// blackbox's `probe_ip_addr_hash`: FNV-1a (32 bit) over the address bytes.
fn ip_hash(ip: IpAddr) -> f64 {
    let bytes: Vec<u8> = match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    h as f64
}

/// Resolves a probe's host with the module's IP protocol preference, registering
/// `probe_dns_lookup_time_seconds`, `probe_ip_protocol` and `probe_ip_addr_hash` as
/// blackbox's `chooseProtocol` does. Returns the address and the lookup time.
pub async fn resolve(
    host: &str,
    ip: IpChoice,
    report: &mut Report,
) -> Result<(IpAddr, f64), String> {
    const LOOKUP: &str = "probe_dns_lookup_time_seconds";
    const LOOKUP_HELP: &str = "Returns the time taken for probe dns lookup in seconds";
    report.register(
        "probe_ip_protocol",
        "Specifies whether probe ip protocol is IP4 or IP6",
    );
    report.register(LOOKUP, LOOKUP_HELP);
    report.register(
        "probe_ip_addr_hash",
        "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
    );
    let start = Instant::now();
    let found = candidates(host, ip).await;
    let took = start.elapsed().as_secs_f64();
    report.set(LOOKUP, LOOKUP_HELP, took);
    let addrs = found.map_err(|e| {
        report.log(|| format!("error resolving {host}: {e}"));
        e
    })?;
    let preferred = addrs.iter().find(|a| a.is_ipv4() == ip.prefer_v4);
    let chosen = match (preferred, addrs.first()) {
        (Some(a), _) => *a,
        (None, Some(a)) if ip.fallback => *a,
        _ => {
            let e = "unable to find ip; no fallback".to_string();
            report.log(|| e.clone());
            return Err(e);
        }
    };
    report.set(
        "probe_ip_protocol",
        "Specifies whether probe ip protocol is IP4 or IP6",
        if chosen.is_ipv4() { 4.0 } else { 6.0 },
    );
    report.set(
        "probe_ip_addr_hash",
        "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
        ip_hash(chosen),
    );
    report.log(|| format!("resolved {host} to {chosen}"));
    Ok((chosen, took))
}

/// Every address `host` has: a literal, /etc/hosts, else the preferred family's records (and
/// the other family's when those are empty and fallback is allowed).
async fn candidates(host: &str, ip: IpChoice) -> Result<Vec<IpAddr>, String> {
    use crate::net::dns::{lookup, Record, T_A, T_AAAA};
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(a) = host.parse::<IpAddr>() {
        return Ok(vec![a]);
    }
    let from_hosts = crate::net::dns::hosts_file_lookup(host);
    if !from_hosts.is_empty() {
        return Ok(from_hosts);
    }
    let order = if ip.prefer_v4 {
        [T_A, T_AAAA]
    } else {
        [T_AAAA, T_A]
    };
    let mut out = Vec::new();
    let mut last_err = None;
    for (i, qtype) in order.into_iter().enumerate() {
        if i == 1 && (!out.is_empty() || !ip.fallback) {
            break;
        }
        match lookup(host, qtype).await {
            Ok(records) => out.extend(records.into_iter().filter_map(|r| match r {
                Record::Addr(a) => Some(a),
                Record::Srv { .. } => None,
            })),
            Err(e) => last_err = Some(e),
        }
    }
    match (out.is_empty(), last_err) {
        (false, _) => Ok(out),
        (true, Some(e)) => Err(e),
        (true, None) => Err(format!("lookup {host}: no such host")),
    }
}

/// The default IPv4 gateway from the text of /proc/net/route (the lowest-metric default
/// route that is up and has a gateway).
pub fn default_gateway(route_table: &str) -> Option<Ipv4Addr> {
    let mut best: Option<(u32, Ipv4Addr)> = None;
    for line in route_table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let hex = |s: &str| u32::from_str_radix(s, 16).ok();
        let (Some(dest), Some(gw), Some(flags), Some(mask)) =
            (hex(f[1]), hex(f[2]), hex(f[3]), hex(f[7]))
        else {
            continue;
        };
        let metric: u32 = f[6].parse().unwrap_or(u32::MAX);
        // RTF_UP | RTF_GATEWAY; the fields are the kernel's native-endian words, which on
        // every Linux target promlet builds for is little-endian.
        if dest != 0 || mask != 0 || flags & 0x3 != 0x3 || gw == 0 {
            continue;
        }
        let ip = Ipv4Addr::from(gw.to_le_bytes());
        if best.is_none_or(|(m, _)| metric < m) {
            best = Some((metric, ip));
        }
    }
    best.map(|(_, ip)| ip)
}

/// Whether the gateway and resolv.conf target sources are on: `PROMLET_UPLINK_PROBES=off`
/// turns them off for sandboxes and test suites, where the machine's real gateway and
/// nameservers must not be probed (the embedded default configuration probes both).
pub fn uplink_sources_enabled() -> bool {
    std::env::var("PROMLET_UPLINK_PROBES").map_or(true, |v| v != "off")
}

/// The targets of a job right now: its list, plus the gateway and nameservers when asked.
pub fn job_targets(job: &ProbeJob) -> Vec<String> {
    let mut out = job.targets.clone();
    if !uplink_sources_enabled() {
        return out;
    }
    if job.default_gateway {
        let table = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
        if let Some(gw) = default_gateway(&table) {
            out.push(gw.to_string());
        }
    }
    if job.resolv_conf_nameservers {
        let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        for ns in crate::net::dns::resolv_conf_nameservers(&text) {
            out.push(match ns.ip() {
                IpAddr::V4(a) => a.to_string(),
                IpAddr::V6(a) => format!("[{a}]"),
            });
        }
    }
    out.dedup();
    out
}

/// What the scheduler works with.
pub struct Env {
    pub ex: Rc<LocalExecutor<'static>>,
    pub app: Rc<RefCell<dyn Appender>>,
    pub clock: Rc<dyn Clock>,
}

/// Counters for promlet's self-metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct SchedulerStats {
    pub probes: u64,
    pub failures: u64,
    pub append_errors: u64,
}

/// Runs `probes.jobs`: one task per job, probing all its targets at once every interval and
/// appending each result with `job`, `instance` (= target), `target` and `module` labels plus
/// the job's own.
pub struct Scheduler {
    env: Rc<Env>,
    jobs: Vec<(ProbeJob, Task<()>)>,
    pub stats: Rc<RefCell<SchedulerStats>>,
}

impl Scheduler {
    pub fn new(env: Env) -> Scheduler {
        Scheduler {
            env: Rc::new(env),
            jobs: Vec::new(),
            stats: Rc::default(),
        }
    }

    /// Starts, keeps or stops job tasks to match `cfg` (a changed job restarts).
    pub fn apply(&mut self, cfg: &ProbesConfig) {
        let mut old = std::mem::take(&mut self.jobs);
        for job in &cfg.jobs {
            let module = cfg.module(&job.module);
            if let Some(i) = old.iter().position(|(j, _)| j == job) {
                self.jobs.push(old.remove(i));
                continue;
            }
            let Some(module) = module else { continue };
            let task = crate::task::spawn(
                &self.env.ex,
                job_loop(
                    self.env.clone(),
                    job.clone(),
                    Rc::new(module),
                    self.stats.clone(),
                ),
            );
            self.jobs.push((job.clone(), task));
        }
        // Dropping the rest cancels their tasks.
    }

    pub fn job_count(&self) -> usize {
        self.jobs.len()
    }
}

async fn job_loop(
    env: Rc<Env>,
    job: ProbeJob,
    module: Rc<Module>,
    stats: Rc<RefCell<SchedulerStats>>,
) {
    let mut next = Instant::now();
    // Last outcome per target, so a change is logged once rather than every interval.
    let mut last: Vec<(String, bool)> = Vec::new();
    loop {
        Timer::at(next).await;
        let at: Timestamp = env.clock.wall_ms();
        let targets = job_targets(&job);
        let probes: Vec<_> = targets
            .iter()
            .map(|t| {
                let module = module.clone();
                let t = t.clone();
                let timeout = job.timeout;
                env.ex.spawn(async move {
                    // Logs are kept so a failure can say why (in promlet's log, on change).
                    let mut r = Report::new(true);
                    let ok = run(&module, &t, timeout, &mut r).await;
                    (t, r, ok)
                })
            })
            .collect();
        let mut set = MetricSet::new();
        for p in probes {
            let (target, report, ok) = p.await;
            let before = last.iter().find(|(t, _)| *t == target).map(|(_, ok)| *ok);
            if before != Some(ok) {
                let why = report
                    .log_lines()
                    .iter()
                    .rev()
                    .nth(1)
                    .cloned()
                    .unwrap_or_default();
                let msg = format!(
                    "probe job={} module={} target={} {}",
                    job.job_name,
                    job.module,
                    target,
                    if ok {
                        "succeeds".to_string()
                    } else {
                        format!("fails: {why}")
                    }
                );
                if ok {
                    crate::log::info(&msg)
                } else {
                    crate::log::warn(&msg)
                }
                last.retain(|(t, _)| *t != target);
                last.push((target.clone(), ok));
            }
            let mut labels: Vec<(&str, &str)> = vec![
                ("instance", &target),
                ("job", &job.job_name),
                ("module", &job.module),
                ("target", &target),
            ];
            // The job's own labels win over the generated ones.
            for (n, v) in &job.labels {
                labels.retain(|(have, _)| have != n);
                labels.push((n, v));
            }
            crate::sort::sort(&mut labels);
            report.write(&mut set, &labels);
            let mut s = stats.borrow_mut();
            s.probes += 1;
            if !ok {
                s.failures += 1;
            }
        }
        let errors = crate::agent::append_all(&set, at, &mut *env.app.borrow_mut());
        stats.borrow_mut().append_errors += errors;
        next += job.interval;
        let now = Instant::now();
        if next < now {
            next = now + job.interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uplink_sources_can_be_switched_off_for_sandboxes() {
        // The test binaries run with it off (tests/common sets it for spawned agents; here it is
        // set for this process): then only a job's own targets remain.
        std::env::set_var("PROMLET_UPLINK_PROBES", "off");
        let job = ProbeJob {
            job_name: "uplink_gateway".into(),
            module: "icmp".into(),
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(5),
            targets: vec!["127.0.0.1".into()],
            default_gateway: true,
            resolv_conf_nameservers: true,
            labels: Vec::new(),
        };
        assert_eq!(job_targets(&job), ["127.0.0.1"]);
    }

    #[test]
    fn default_gateway_comes_from_the_lowest_metric_default_route() {
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(default_gateway(table), Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(default_gateway("Iface\n"), None);
        assert_eq!(default_gateway("garbage\nx y z\n"), None);
    }

    #[test]
    fn ip_hash_matches_blackbox_for_loopback() {
        // blackbox_exporter 0.28 reports probe_ip_addr_hash 3.668918509e+09 for 127.0.0.1.
        assert_eq!(ip_hash(IpAddr::V4(Ipv4Addr::LOCALHOST)), 3668918509.0);
    }

    #[test]
    fn host_port_splitting() {
        assert_eq!(split_host_port("a:80"), ("a".into(), Some(80)));
        assert_eq!(split_host_port("[::1]:53"), ("::1".into(), Some(53)));
        assert_eq!(split_host_port("::1"), ("::1".into(), None));
        assert_eq!(split_host_port("host"), ("host".into(), None));
    }

    #[test]
    fn report_writes_sorted_with_labels_merged_in_order() {
        let mut r = Report::new(false);
        r.set("probe_success", "s", 1.0);
        r.add_labeled("probe_x_seconds", "x", "phase", "resolve", 0.5);
        r.add_labeled("probe_x_seconds", "x", "phase", "connect", 0.25);
        r.add_labeled("probe_x_seconds", "x", "phase", "connect", 0.25);
        let mut set = MetricSet::new();
        r.write(&mut set, &[("instance", "h"), ("target", "h")]);
        let mut out = Vec::new();
        crate::expo::encode_text(&set, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "# HELP probe_success s\n# TYPE probe_success gauge\nprobe_success{instance=\"h\",target=\"h\"} 1\n\
# HELP probe_x_seconds x\n# TYPE probe_x_seconds gauge\n\
probe_x_seconds{instance=\"h\",phase=\"connect\",target=\"h\"} 0.5\n\
probe_x_seconds{instance=\"h\",phase=\"resolve\",target=\"h\"} 0.5\n"
        );
    }

    #[test]
    fn literal_addresses_resolve_without_dns_and_respect_no_fallback() {
        let mut r = Report::new(false);
        let v4 = IpChoice {
            prefer_v4: true,
            fallback: false,
        };
        let got = crate::rt::block_on(resolve("127.0.0.1", v4, &mut r)).unwrap();
        assert_eq!(got.0, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(r.value("probe_ip_protocol"), Some(4.0));
        let mut r = Report::new(false);
        assert!(crate::rt::block_on(resolve("::1", v4, &mut r)).is_err());
        assert_eq!(r.value("probe_ip_protocol"), Some(0.0));
    }
}
