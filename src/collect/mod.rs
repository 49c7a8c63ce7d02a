//! Native node metrics from /proc and /sys, named as node_exporter names them.
//!
//! Owns: one reader per node_exporter collector (`cpu`, `meminfo`, ...), the table of
//! collectors with their default on/off state, and the driver that runs the enabled ones and
//! adds `node_scrape_collector_duration_seconds` / `node_scrape_collector_success`.
//! Must not touch: the network, the TSDB, hard-coded `/proc` or `/sys` paths (every path is
//! built from [`Roots`], so recorded fixture trees and `--path.*` work).
//!
//! A source that does not exist on this device (no hwmon on a VM, no conntrack module) makes its
//! collector fail with [`CollectError::NotFound`]: success 0, logged once at debug, not per scrape.

pub mod textfile;
pub mod util;

use crate::expo::{MetricSet, MetricType};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the filesystems are, from `--path.procfs`, `--path.sysfs`, `--path.rootfs`,
/// `--path.udev.data`.
#[derive(Clone, Debug)]
pub struct Roots {
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub rootfs: PathBuf,
    pub udev_data: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            procfs: "/proc".into(),
            sysfs: "/sys".into(),
            rootfs: "/".into(),
            udev_data: "/run/udev/data".into(),
        }
    }
}

impl Roots {
    pub fn proc(&self, rel: &str) -> PathBuf {
        self.procfs.join(rel)
    }
    pub fn sys(&self, rel: &str) -> PathBuf {
        self.sysfs.join(rel)
    }
    pub fn root(&self, rel: &str) -> PathBuf {
        self.rootfs.join(rel.trim_start_matches('/'))
    }
}

/// Why a collector produced nothing (or only part).
#[derive(Debug)]
pub enum CollectError {
    /// The source is absent on this device; reported as success 0 without an error log.
    NotFound(PathBuf),
    /// The source exists but could not be read.
    Io(PathBuf, std::io::Error),
    /// The source was read but its content made no sense (truncated, garbage).
    Parse(PathBuf, String),
}

impl CollectError {
    /// Maps an I/O error on `path` to `NotFound` or `Io`.
    pub fn io(path: &Path, e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::NotFound {
            CollectError::NotFound(path.to_path_buf())
        } else {
            CollectError::Io(path.to_path_buf(), e)
        }
    }
    pub fn parse(path: &Path, what: impl Into<String>) -> Self {
        CollectError::Parse(path.to_path_buf(), what.into())
    }
}

impl std::fmt::Display for CollectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CollectError::NotFound(p) => write!(f, "{}: not present on this system", p.display()),
            CollectError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            CollectError::Parse(p, w) => write!(f, "{}: {w}", p.display()),
        }
    }
}

impl std::error::Error for CollectError {}

/// What a collector gets for one run.
pub struct Context<'a> {
    pub roots: &'a Roots,
    /// Wall-clock time of this collection, in ms (for `node_time_seconds`).
    pub now_ms: i64,
}

/// One node_exporter collector.
pub trait Collector {
    /// The collector name as node_exporter spells it (`cpu`, `meminfo`, ...).
    fn name(&self) -> &'static str;
    /// Reads the source and appends families to `out`.
    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError>;
}

/// A collector option, named as node_exporter's flag without the `--collector.` prefix
/// (`filesystem.mount-points-exclude`); the flag table turns each into `--collector.<name>`.
pub struct CollectorOption {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

/// Option values given by flags or the config file, keyed by [`CollectorOption::name`].
#[derive(Clone, Debug, Default)]
pub struct CollectorOptions {
    values: std::collections::BTreeMap<String, String>,
}

impl CollectorOptions {
    pub fn set(&mut self, name: &str, value: &str) {
        self.values.insert(name.to_string(), value.to_string());
    }
    /// The value of `name`, or the default declared in the collector table.
    pub fn get(&self, name: &str) -> &str {
        if let Some(v) = self.values.get(name) {
            return v;
        }
        COLLECTORS
            .iter()
            .flat_map(|d| d.options.iter())
            .find(|o| o.name == name)
            .map(|o| o.default)
            .unwrap_or("")
    }
}

/// One row of the collector table: name, on by default, options, constructor. The constructor
/// validates options (e.g. compiles regexes) and fails with a message naming the option.
pub struct CollectorDef {
    pub name: &'static str,
    pub default_enabled: bool,
    pub options: &'static [CollectorOption],
    pub new: fn(&CollectorOptions) -> Result<Box<dyn Collector>, String>,
}

/// Every collector promlet has, in `--help` order. Collectors are added here as they land.
pub const COLLECTORS: &[CollectorDef] = &[CollectorDef {
    name: "textfile",
    default_enabled: true,
    options: textfile::OPTIONS,
    new: textfile::new,
}];

/// Runs the enabled collectors and reports per-collector duration and success.
pub struct Driver {
    collectors: Vec<Box<dyn Collector>>,
    /// Collectors whose source was missing at the last run; used to log only on change.
    missing: Vec<bool>,
}

impl Driver {
    /// Builds the collectors whose names `enabled` says yes to.
    pub fn new(
        enabled: impl Fn(&CollectorDef) -> bool,
        opts: &CollectorOptions,
    ) -> Result<Self, String> {
        let mut collectors = Vec::new();
        for d in COLLECTORS.iter().filter(|d| enabled(d)) {
            collectors.push((d.new)(opts).map_err(|e| format!("collector {}: {e}", d.name))?);
        }
        let missing = vec![false; collectors.len()];
        Ok(Driver {
            collectors,
            missing,
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.collectors.iter().map(|c| c.name())
    }

    /// One full collection cycle into `out`.
    pub fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) {
        let dur = out.family(
            "node_scrape_collector_duration_seconds",
            "node_exporter: Duration of a collector scrape.",
            MetricType::Gauge,
        );
        let ok = out.family(
            "node_scrape_collector_success",
            "node_exporter: Whether a collector succeeded.",
            MetricType::Gauge,
        );
        for (i, c) in self.collectors.iter_mut().enumerate() {
            let start = Instant::now();
            let result = c.collect(ctx, out);
            let secs = start.elapsed().as_secs_f64();
            let name = c.name();
            let success = match result {
                Ok(()) => {
                    self.missing[i] = false;
                    1.0
                }
                Err(CollectError::NotFound(p)) => {
                    if !self.missing[i] {
                        crate::log::debug(&format!(
                            "collector {name}: {} not present; reporting success 0",
                            p.display()
                        ));
                        self.missing[i] = true;
                    }
                    0.0
                }
                Err(e) => {
                    crate::log::error(&format!("collector {name} failed: {e}"));
                    0.0
                }
            };
            out.sample(dur, &[("collector", &name)], secs);
            out.sample(ok, &[("collector", &name)], success);
        }
    }
}
