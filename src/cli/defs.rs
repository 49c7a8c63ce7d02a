//! The flag table: one row per flag, in `--help` order. `--help` is generated from it (and
//! from `collect::COLLECTORS` for the per-collector flags), so a flag cannot exist without its
//! documentation. Each row's setter parses the value into [`Args`]; tests sit at the bottom.

use super::{parse_duration_flag, Args, LogFormat};
use crate::log::Level;

/// Where a flag is listed in `--help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    Config,
    Web,
    Storage,
    Query,
    Logging,
    Paths,
    Collectors,
}

impl Category {
    pub fn title(self) -> &'static str {
        match self {
            Category::Config => "Configuration",
            Category::Web => "Web server",
            Category::Storage => "Storage",
            Category::Query => "Queries (PromQL, /api/v1)",
            Category::Logging => "Logging",
            Category::Paths => "Filesystem roots (as node_exporter)",
            Category::Collectors => "Collectors (node_exporter names)",
        }
    }
}

/// One flag. `value_name` is `None` for booleans, which also accept `--no-<name>`.
pub struct Flag {
    pub name: &'static str,
    pub value_name: Option<&'static str>,
    /// Shown in `--help`; the setter's starting value in [`Args::default`] must agree (a test
    /// checks every row).
    pub default: &'static str,
    pub category: Category,
    pub help: &'static str,
    pub set: fn(&mut Args, &str) -> Result<(), String>,
}

/// The default listen port, 9099. Prometheus uses 9090, Pushgateway 9091, Alertmanager 9093
/// (and 9094 for its cluster), node_exporter 9100, and 9100-9999 is the exporters' allocated
/// range; 9099 sits just below it, so promlet can run beside all of them during a migration.
pub const DEFAULT_LISTEN_ADDRESS: &str = ":9099";

/// Queries run on the one work thread, so collection and every other request wait while one
/// runs: 30 s instead of Prometheus's 2 m bounds that stall.
pub const DEFAULT_QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// 5 M samples are ~80 MB of 16-byte samples at most: a query cannot exhaust a 512 MB Pi
/// Zero (Prometheus's 50 M would be 800 MB). The default store holds fewer than 15 M in all.
pub const DEFAULT_QUERY_MAX_SAMPLES: usize = 5_000_000;

fn parse_count(v: &str) -> Result<usize, String> {
    v.parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("expected a positive integer, got {v:?}"))
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!("expected true or false, got {v:?}")),
    }
}

pub const FLAGS: &[Flag] = &[
    Flag {
        name: "config.file",
        value_name: Some("FILE"),
        default: "",
        category: Category::Config,
        help: "Configuration file (prometheus.yml shape). Without it, the embedded defaults apply.",
        set: |a, v| {
            a.config_file = (!v.is_empty()).then(|| v.into());
            Ok(())
        },
    },
    Flag {
        name: "web.listen-address",
        value_name: Some("ADDR"),
        default: DEFAULT_LISTEN_ADDRESS,
        category: Category::Web,
        help: "Address to listen on for /metrics, the API and the lifecycle endpoints. \
               \":PORT\" means all interfaces.",
        set: |a, v| {
            a.listen_address = v.into();
            Ok(())
        },
    },
    Flag {
        name: "web.enable-lifecycle",
        value_name: None,
        default: "false",
        category: Category::Web,
        help: "Enable shutdown and reload via HTTP (POST/PUT /-/quit, /-/reload).",
        set: |a, v| {
            a.enable_lifecycle = parse_bool(v)?;
            Ok(())
        },
    },
    Flag {
        name: "web.enable-push",
        value_name: None,
        default: "false",
        category: Category::Web,
        help: "Accept Pushgateway-style pushes (PUT/POST/DELETE /metrics/job/...); pushed groups \
               are kept under --storage.tsdb.path and exposed on /metrics.",
        set: |a, v| {
            a.enable_push = parse_bool(v)?;
            Ok(())
        },
    },
    Flag {
        name: "web.enable-silences",
        value_name: None,
        default: "false",
        category: Category::Web,
        help: "Allow creating and expiring silences of the local route tree via HTTP \
               (POST /api/v2/silences, DELETE /api/v2/silence/ID). Listing is always allowed.",
        set: |a, v| {
            a.enable_silences = parse_bool(v)?;
            Ok(())
        },
    },
    Flag {
        name: "web.max-connections",
        value_name: Some("N"),
        default: "512",
        category: Category::Web,
        help: "Maximum simultaneous connections (lowered to fit the open-files limit). At the \
               cap the connection waiting longest for its request is closed; if all are busy \
               answering, new ones get 503.",
        set: |a, v| {
            a.max_connections = v
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("expected a positive integer, got {v:?}"))?;
            Ok(())
        },
    },
    Flag {
        name: "web.read-timeout",
        value_name: Some("DURATION"),
        default: "10s",
        category: Category::Web,
        help: "Maximum time for a request to arrive and for its response to be written.",
        set: |a, v| {
            a.read_timeout = parse_duration_flag(v)?;
            Ok(())
        },
    },
    Flag {
        name: "web.external-url",
        value_name: Some("URL"),
        default: "",
        category: Category::Web,
        help: "The URL under which promlet is reached from outside (behind a reverse proxy, by \
               DNS name); alerts link to it (generatorURL). Default: http://<hostname>:<port>.",
        set: |a, v| {
            if !v.is_empty() && !v.starts_with("http://") && !v.starts_with("https://") {
                return Err(format!("{v:?} is not an http:// or https:// URL"));
            }
            a.external_url = (!v.is_empty()).then(|| v.trim_end_matches('/').to_string());
            Ok(())
        },
    },
    Flag {
        name: "storage.tsdb.path",
        value_name: Some("DIR"),
        default: "data/",
        category: Category::Storage,
        help: "Base directory for stored metrics. Created at start-up; promlet refuses to start \
               if it cannot be.",
        set: |a, v| {
            a.storage_path = v.into();
            Ok(())
        },
    },
    Flag {
        name: "storage.tsdb.retention.size",
        value_name: Some("SIZE"),
        default: "16MB",
        category: Category::Storage,
        help: "Memory budget of the TSDB, index included (units B, KB, MB, GB; powers of 1024). \
               When full, the oldest chunks are evicted. At least 64KB.",
        set: |a, v| {
            let n = crate::tsdb::parse_size(v)?;
            if n < 64 << 10 {
                return Err(format!("must be at least 64KB, got {v:?}"));
            }
            a.tsdb.retention_bytes = n;
            Ok(())
        },
    },
    Flag {
        name: "storage.tsdb.retention.time",
        value_name: Some("DURATION"),
        default: "0",
        category: Category::Storage,
        help: "Also drop samples older than this, relative to the newest sample (0: keep what \
               fits in the size budget).",
        set: |a, v| {
            let d = parse_duration_flag(v)?;
            a.tsdb.retention_ms = (!d.is_zero()).then_some(d.as_millis() as i64);
            Ok(())
        },
    },
    Flag {
        name: "storage.tsdb.max-series",
        value_name: Some("N"),
        default: "20000",
        category: Category::Storage,
        help: "Refuse new series beyond this many (counted in \
               promlet_tsdb_samples_rejected_total{reason=\"too_many_series\"}).",
        set: |a, v| {
            a.tsdb.max_series = v
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("expected a positive integer, got {v:?}"))?;
            Ok(())
        },
    },
    Flag {
        name: "storage.tsdb.flush-interval",
        value_name: Some("DURATION"),
        default: "10m",
        category: Category::Storage,
        help: "How often new samples are written to --storage.tsdb.path. Samples since the last \
               flush are lost in a crash; shorter intervals write more to flash.",
        set: |a, v| {
            let d = parse_duration_flag(v)?;
            if d < std::time::Duration::from_millis(100) {
                return Err(format!("must be at least 100ms, got {v:?}"));
            }
            a.tsdb.flush_interval = d;
            Ok(())
        },
    },
    Flag {
        name: "query.timeout",
        value_name: Some("DURATION"),
        default: "30s",
        category: Category::Query,
        help: "Maximum time one query may take; it then fails with errorType \"timeout\" (503). \
               Queries run on the work thread, so collection waits while one runs.",
        set: |a, v| {
            a.query_timeout = parse_duration_flag(v)?;
            if a.query_timeout.is_zero() {
                return Err("must be positive".into());
            }
            Ok(())
        },
    },
    Flag {
        name: "query.max-samples",
        value_name: Some("N"),
        default: "5000000",
        category: Category::Query,
        help: "Maximum samples one query may hold in memory (about 16 bytes each); beyond it the \
               query fails with errorType \"execution\" (422).",
        set: |a, v| {
            a.query_max_samples = parse_count(v)?;
            Ok(())
        },
    },
    Flag {
        name: "query.lookback-delta",
        value_name: Some("DURATION"),
        default: "5m",
        category: Category::Query,
        help: "How far back an instant selector looks for the latest sample.",
        set: |a, v| {
            a.query_lookback_delta = parse_duration_flag(v)?;
            if a.query_lookback_delta.is_zero() {
                return Err("must be positive".into());
            }
            Ok(())
        },
    },
    Flag {
        name: "rules.alert.resend-delay",
        value_name: Some("DURATION"),
        default: "1m",
        category: Category::Query,
        help: "Minimum time between resending a firing alert to the notifier.",
        set: |a, v| {
            a.rules_resend_delay = parse_duration_flag(v)?;
            Ok(())
        },
    },
    Flag {
        name: "log.level",
        value_name: Some("LEVEL"),
        default: "info",
        category: Category::Logging,
        help: "Only log messages at or above this level: debug, info, warn, error.",
        set: |a, v| {
            a.log_level = Level::parse(v)
                .ok_or_else(|| format!("expected debug, info, warn or error, got {v:?}"))?;
            Ok(())
        },
    },
    Flag {
        name: "log.format",
        value_name: Some("FORMAT"),
        default: "logfmt",
        category: Category::Logging,
        help: "Log line format: logfmt or json.",
        set: |a, v| {
            a.log_format = match v {
                "logfmt" => LogFormat::Logfmt,
                "json" => LogFormat::Json,
                _ => return Err(format!("expected logfmt or json, got {v:?}")),
            };
            Ok(())
        },
    },
    Flag {
        name: "path.procfs",
        value_name: Some("DIR"),
        default: "/proc",
        category: Category::Paths,
        help: "procfs mountpoint read by the collectors.",
        set: |a, v| {
            a.roots.procfs = v.into();
            Ok(())
        },
    },
    Flag {
        name: "path.sysfs",
        value_name: Some("DIR"),
        default: "/sys",
        category: Category::Paths,
        help: "sysfs mountpoint read by the collectors.",
        set: |a, v| {
            a.roots.sysfs = v.into();
            Ok(())
        },
    },
    Flag {
        name: "path.rootfs",
        value_name: Some("DIR"),
        default: "/",
        category: Category::Paths,
        help: "Root filesystem mountpoint (for the filesystem collector in a container).",
        set: |a, v| {
            a.roots.rootfs = v.into();
            Ok(())
        },
    },
    Flag {
        name: "path.udev.data",
        value_name: Some("DIR"),
        default: "/run/udev/data",
        category: Category::Paths,
        help: "udev data path (device properties for diskstats).",
        set: |a, v| {
            a.roots.udev_data = v.into();
            Ok(())
        },
    },
    Flag {
        name: "collector.disable-defaults",
        value_name: None,
        default: "false",
        category: Category::Collectors,
        help: "Disable every collector that is on by default; enable the ones you want with \
               --collector.<name>.",
        set: |a, v| {
            a.collectors_disable_defaults = parse_bool(v)?;
            Ok(())
        },
    },
];

#[cfg(test)]
mod tests {
    use super::super::{parse, Command};
    use super::*;

    fn run_args(argv: &[&str]) -> Args {
        match parse(argv.iter().map(|s| s.to_string())) {
            Ok(Command::Run(a)) => *a,
            other => panic!("{argv:?}: {other:?}"),
        }
    }

    #[test]
    fn every_flag_default_matches_args_default() {
        let base = format!("{:?}", Args::default());
        for f in FLAGS {
            let mut a = Args::default();
            (f.set)(&mut a, f.default).unwrap_or_else(|e| panic!("{}: {e}", f.name));
            assert_eq!(format!("{a:?}"), base, "default of --{} disagrees", f.name);
        }
    }

    #[test]
    fn tsdb_flags_set_the_store_options() {
        let a = run_args(&[
            "--storage.tsdb.retention.size=64MB",
            "--storage.tsdb.retention.time=2d",
            "--storage.tsdb.max-series=500",
            "--storage.tsdb.flush-interval=30s",
        ]);
        assert_eq!(a.tsdb.retention_bytes, 64 << 20);
        assert_eq!(a.tsdb.retention_ms, Some(2 * 86_400_000));
        assert_eq!(a.tsdb.max_series, 500);
        assert_eq!(a.tsdb.flush_interval, std::time::Duration::from_secs(30));
        for bad in [
            "--storage.tsdb.retention.size=1KB",
            "--storage.tsdb.retention.size=12",
            "--storage.tsdb.max-series=0",
            "--storage.tsdb.flush-interval=1ms",
        ] {
            assert!(parse([bad.to_string()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_file_flag() {
        let a = run_args(&["--config.file=/etc/promlet.yml"]);
        assert_eq!(a.config_file.as_deref(), Some("/etc/promlet.yml".as_ref()));
    }

    #[test]
    fn listen_address_flag_takes_separate_value() {
        assert_eq!(
            run_args(&["--web.listen-address", "127.0.0.1:1"]).listen_address,
            "127.0.0.1:1"
        );
    }

    #[test]
    fn enable_lifecycle_flag_and_negation() {
        assert!(run_args(&["--web.enable-lifecycle"]).enable_lifecycle);
        assert!(
            !run_args(&["--web.enable-lifecycle", "--no-web.enable-lifecycle"]).enable_lifecycle
        );
        assert!(run_args(&["--web.enable-lifecycle=true"]).enable_lifecycle);
    }

    #[test]
    fn max_connections_flag_rejects_zero() {
        assert_eq!(run_args(&["--web.max-connections=8"]).max_connections, 8);
        assert!(parse(["--web.max-connections=0".to_string()]).is_err());
    }

    #[test]
    fn read_timeout_flag_uses_prometheus_durations() {
        assert_eq!(
            run_args(&["--web.read-timeout=1m30s"]).read_timeout,
            std::time::Duration::from_secs(90)
        );
    }

    #[test]
    fn external_url_must_be_http_and_loses_its_trailing_slash() {
        assert_eq!(
            run_args(&["--web.external-url=https://pi.example/promlet/"]).external_url,
            Some("https://pi.example/promlet".to_string())
        );
        assert_eq!(run_args(&[]).external_url, None);
        assert!(parse(["--web.external-url=pi:9099".to_string()]).is_err());
    }

    #[test]
    fn log_flags() {
        let a = run_args(&["--log.level=debug", "--log.format", "json"]);
        assert_eq!(a.log_level, Level::Debug);
        assert_eq!(a.log_format, LogFormat::Json);
        assert!(parse(["--log.format=xml".to_string()]).is_err());
    }

    #[test]
    fn query_flags_and_given_flags() {
        let a = run_args(&[
            "--storage.tsdb.max-series=7",
            "--query.timeout=1s",
            "--query.max-samples=1000",
            "--query.lookback-delta=1m",
        ]);
        assert_eq!(a.query_timeout, std::time::Duration::from_secs(1));
        assert_eq!(a.query_max_samples, 1000);
        assert_eq!(a.query_lookback_delta, std::time::Duration::from_secs(60));
        assert_eq!(a.given_flags.len(), 4);
        assert_eq!(
            a.given_flags[0],
            ("storage.tsdb.max-series".into(), "7".into())
        );
        for bad in [
            "--query.timeout=0s",
            "--query.max-samples=0",
            "--query.lookback-delta=x",
        ] {
            assert!(parse([bad.to_string()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn path_flags_fill_roots() {
        let a = run_args(&["--path.procfs=/p", "--path.sysfs=/s", "--path.rootfs=/r"]);
        assert_eq!(a.roots.procfs, std::path::Path::new("/p"));
        assert_eq!(a.roots.sysfs, std::path::Path::new("/s"));
        assert_eq!(a.roots.rootfs, std::path::Path::new("/r"));
    }
}
