//! The flag table (one definition per flag; it generates `--help`), argument parsing and
//! subcommands.
//!
//! Owns: turning argv into a [`Command`] ([`parse`]) and the help text ([`help`]). Flags come
//! from [`defs::FLAGS`] plus, per row of `collect::COLLECTORS`, `--[no-]collector.<name>` and
//! `--collector.<option>=VALUE`. Both `--flag=value` and `--flag value` work.
//! Must not touch: business logic; the agent turns [`Args`] into running parts.
//!
//! Exit codes (documented in `--help`): 0 success, 1 runtime or config error, 2 usage error.

pub mod defs;
pub mod query;

use crate::collect::{CollectorDef, Roots, COLLECTORS};
use crate::log::Level;
use defs::FLAGS;
use std::fmt::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Exit code for a command-line mistake (unknown flag, bad value).
pub const EXIT_USAGE: i32 = 2;
/// Exit code for a runtime or configuration error.
pub const EXIT_FAILURE: i32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Logfmt,
    Json,
}

/// What the user typed for running the agent, checked for syntax only (no I/O).
#[derive(Clone, Debug)]
pub struct Args {
    pub config_file: Option<PathBuf>,
    pub listen_address: String,
    pub enable_lifecycle: bool,
    /// `--web.enable-push`: the Pushgateway-compatible PUT/POST/DELETE on /metrics/job/...
    pub enable_push: bool,
    /// `--web.enable-silences`: POST/DELETE on the silences API.
    pub enable_silences: bool,
    pub max_connections: usize,
    pub read_timeout: Duration,
    /// `--web.external-url`, without a trailing slash; None: `http://<hostname>:<port>`.
    pub external_url: Option<String>,
    pub storage_path: PathBuf,
    /// `--storage.tsdb.retention.size`, `.retention.time`, `.max-series`, `.flush-interval`.
    pub tsdb: crate::tsdb::Options,
    /// `--query.*`: limits of one query.
    pub query_timeout: Duration,
    pub query_max_samples: usize,
    pub query_lookback_delta: Duration,
    /// `--rules.alert.resend-delay`.
    pub rules_resend_delay: Duration,
    /// Every flag given, as (name, value) in order, for `/api/v1/status/flags`.
    pub given_flags: Vec<(String, String)>,
    pub log_level: Level,
    pub log_format: LogFormat,
    pub roots: Roots,
    pub collectors_disable_defaults: bool,
    /// `--collector.<name>` (true) / `--no-collector.<name>` (false), in order given.
    pub collector_switches: Vec<(String, bool)>,
    /// `--collector.<option>=VALUE`, in order given.
    pub collector_options: Vec<(String, String)>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            config_file: None,
            listen_address: defs::DEFAULT_LISTEN_ADDRESS.into(),
            enable_lifecycle: false,
            enable_push: false,
            enable_silences: false,
            max_connections: crate::http::server::MAX_CONNECTIONS,
            read_timeout: crate::http::server::READ_TIMEOUT,
            external_url: None,
            storage_path: "data/".into(),
            tsdb: crate::tsdb::Options::default(),
            query_timeout: defs::DEFAULT_QUERY_TIMEOUT,
            query_max_samples: defs::DEFAULT_QUERY_MAX_SAMPLES,
            query_lookback_delta: Duration::from_secs(5 * 60),
            rules_resend_delay: Duration::from_secs(60),
            given_flags: Vec::new(),
            log_level: Level::Info,
            log_format: LogFormat::Logfmt,
            roots: Roots::default(),
            collectors_disable_defaults: false,
            collector_switches: Vec::new(),
            collector_options: Vec::new(),
        }
    }
}

/// What to do.
#[derive(Debug)]
pub enum Command {
    Run(Box<Args>),
    /// `promlet check config FILE...`
    CheckConfig(Vec<PathBuf>),
    /// `promlet check rules [--ignore-unknown-fields] FILE...`
    CheckRules {
        files: Vec<PathBuf>,
        ignore_unknown_fields: bool,
    },
    /// `promlet test rules [--run REGEX]... [--ignore-unknown-fields] FILE...`
    TestRules {
        files: Vec<PathBuf>,
        run: Vec<String>,
        ignore_unknown_fields: bool,
    },
    /// `promlet query [...] EXPR`
    Query(query::QueryArgs),
    Help,
    Version,
}

/// A usage error, printed with the hint to try `--help`; exit [`EXIT_USAGE`].
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; see promlet --help", self.0)
    }
}

impl std::error::Error for UsageError {}

pub(crate) fn parse_duration_flag(v: &str) -> Result<Duration, String> {
    crate::config::parse_duration(v)
}

/// How a `--name` resolved.
enum FlagKind<'a> {
    Static(&'a defs::Flag),
    CollectorSwitch(&'static str),
    CollectorOption(&'static str),
}

fn lookup(name: &str, collectors: &'static [CollectorDef]) -> Option<FlagKind<'static>> {
    if let Some(f) = FLAGS.iter().find(|f| f.name == name) {
        return Some(FlagKind::Static(f));
    }
    let rest = name.strip_prefix("collector.")?;
    if let Some(d) = collectors.iter().find(|d| d.name == rest) {
        return Some(FlagKind::CollectorSwitch(d.name));
    }
    collectors
        .iter()
        .flat_map(|d| d.options.iter())
        .find(|o| o.name == rest)
        .map(|o| FlagKind::CollectorOption(o.name))
}

fn is_bool(kind: &FlagKind<'_>) -> bool {
    match kind {
        FlagKind::Static(f) => f.value_name.is_none(),
        FlagKind::CollectorSwitch(_) => true,
        FlagKind::CollectorOption(_) => false,
    }
}

/// Parses argv (without the program name).
pub fn parse(argv: impl IntoIterator<Item = String>) -> Result<Command, UsageError> {
    parse_with(argv, COLLECTORS)
}

/// [`parse`] against a given collector table (tests use a small one).
pub fn parse_with(
    argv: impl IntoIterator<Item = String>,
    collectors: &'static [CollectorDef],
) -> Result<Command, UsageError> {
    let argv: Vec<String> = argv.into_iter().collect();
    let words: Vec<&str> = argv.iter().take(2).map(String::as_str).collect();
    if matches!(words.as_slice(), ["test", "rules"] | ["check", "rules"]) {
        return parse_rules_command(words[0] == "test", &argv[2..]);
    }
    let mut args = Args::default();
    let mut positional: Vec<String> = Vec::new();
    let mut it = argv.into_iter().peekable();
    // `query` has flags of its own (as promtool's subcommands do), so it parses the rest.
    if it.peek().map(String::as_str) == Some("query") {
        let rest: Vec<String> = it.skip(1).collect();
        if rest.iter().any(|a| a == "-h" || a == "--help") {
            return Ok(Command::Help);
        }
        return query::parse(&rest).map(Command::Query);
    }
    while let Some(arg) = it.next() {
        if arg == "--" {
            positional.extend(it.by_ref());
            break;
        }
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        if arg == "--version" {
            return Ok(Command::Version);
        }
        let Some(body) = arg.strip_prefix("--") else {
            if arg.starts_with('-') && arg.len() > 1 {
                return Err(UsageError(format!("unknown short flag {arg:?}")));
            }
            positional.push(arg);
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let (name, negated) = match lookup(name, collectors) {
            Some(_) => (name, false),
            None => match name.strip_prefix("no-") {
                Some(n) if lookup(n, collectors).is_some_and(|k| is_bool(&k)) => (n, true),
                _ => return Err(UsageError(format!("unknown flag --{name}"))),
            },
        };
        let kind =
            lookup(name, collectors).ok_or_else(|| UsageError(format!("unknown flag --{name}")))?;
        let value = if is_bool(&kind) {
            match (negated, inline) {
                (true, Some(_)) => {
                    return Err(UsageError(format!("--no-{name} takes no value")));
                }
                (true, None) => "false".to_string(),
                (false, Some(v)) => v,
                (false, None) => "true".to_string(),
            }
        } else {
            match inline {
                Some(v) => v,
                None => it
                    .next()
                    .ok_or_else(|| UsageError(format!("--{name} needs a value")))?,
            }
        };
        let bad = |e: String| UsageError(format!("invalid value for --{name}: {e}"));
        match kind {
            FlagKind::Static(f) => {
                (f.set)(&mut args, &value).map_err(bad)?;
                args.given_flags.push((name.to_string(), value));
            }
            FlagKind::CollectorSwitch(c) => {
                let on = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    v => return Err(bad(format!("expected true or false, got {v:?}"))),
                };
                args.collector_switches.push((c.to_string(), on));
            }
            FlagKind::CollectorOption(o) => args.collector_options.push((o.to_string(), value)),
        }
    }
    match positional.first().map(String::as_str) {
        None => Ok(Command::Run(Box::new(args))),
        Some("check") => match positional.get(1).map(String::as_str) {
            Some("config") if positional.len() > 2 => Ok(Command::CheckConfig(
                positional[2..].iter().map(PathBuf::from).collect(),
            )),
            Some("config") => Err(UsageError("check config needs at least one FILE".into())),
            _ => Err(UsageError(
                "unknown check; expected: check config FILE...".into(),
            )),
        },
        Some(other) => Err(UsageError(format!("unknown command {other:?}"))),
    }
}

/// `test rules` / `check rules`: promtool's flags for them, then files.
fn parse_rules_command(test: bool, rest: &[String]) -> Result<Command, UsageError> {
    let mut files = Vec::new();
    let mut run = Vec::new();
    let mut ignore_unknown_fields = false;
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--ignore-unknown-fields" => ignore_unknown_fields = true,
            "--run" if test => run.push(
                it.next()
                    .ok_or_else(|| UsageError("--run needs a value".into()))?
                    .clone(),
            ),
            r if test && r.starts_with("--run=") => run.push(r["--run=".len()..].to_string()),
            "-h" | "--help" => return Ok(Command::Help),
            f if f.starts_with('-') && f.len() > 1 => {
                return Err(UsageError(format!("unknown flag {f}")))
            }
            f => files.push(PathBuf::from(f)),
        }
    }
    let what = if test { "test" } else { "check" };
    if files.is_empty() {
        return Err(UsageError(format!("{what} rules needs at least one FILE")));
    }
    Ok(if test {
        Command::TestRules {
            files,
            run,
            ignore_unknown_fields,
        }
    } else {
        Command::CheckRules {
            files,
            ignore_unknown_fields,
        }
    })
}

/// Commands, for `--help`: usage and one line each.
const COMMANDS: &[(&str, &str)] = &[
    (
        "check config FILE...",
        "Check configuration files. Exit 0 when valid; else print FILE:LINE:COLUMN: what is wrong, exit 1.",
    ),
    (
        "check rules [--ignore-unknown-fields] FILE...",
        "Check rule files as promtool does. Exit 0 when valid; else print FILE:LINE:COLUMN: group, rule and reason, exit 1.",
    ),
    (
        "test rules [--run REGEX]... [--ignore-unknown-fields] FILE...",
        "Run rule unit tests in promtool's format. Exit 0 when every test group passes, else 1.",
    ),
    (query::USAGE, query::HELP),
];

fn push_wrapped(out: &mut String, text: &str, indent: usize, width: usize) {
    let mut col = indent;
    let mut first = true;
    for word in text.split_whitespace() {
        if !first && col + 1 + word.len() > width {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', indent));
            col = indent;
            first = true;
        }
        if !first {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += word.len();
        first = false;
    }
    out.push('\n');
}

fn push_flag(out: &mut String, usage: &str, help: &str) {
    let _ = write!(out, "  {usage}\n      ");
    push_wrapped(out, help, 6, 100);
}

/// The `--help` text, generated from the flag table and the collector table.
pub fn help() -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "usage: promlet [<flags>] [<command> ...]\n\n\
         A Prometheus-class monitoring agent for one small device: node metrics from /proc and\n\
         /sys served on /metrics (node_exporter's names), on one thread.\n\n\
         Commands:"
    );
    for (usage, help) in COMMANDS {
        push_flag(&mut out, usage, help);
    }
    out.push_str("\nFlags:\n");
    push_flag(&mut out, "-h, --help", "Show this help and exit.");
    push_flag(&mut out, "--version", "Show the version and exit.");
    let mut last = None;
    for f in FLAGS {
        if last != Some(f.category) {
            let _ = writeln!(out, "\n{}:", f.category.title());
            last = Some(f.category);
        }
        let usage = match f.value_name {
            Some(v) => format!("--{}={v}", f.name),
            None => format!("--[no-]{}", f.name),
        };
        let help = if f.default.is_empty() {
            f.help.to_string()
        } else {
            format!("{} (default: {})", f.help, f.default)
        };
        push_flag(&mut out, &usage, &help);
    }
    for d in COLLECTORS {
        let state = if d.default_enabled {
            "enabled"
        } else {
            "disabled"
        };
        push_flag(
            &mut out,
            &format!("--[no-]collector.{}", d.name),
            &format!("Enable the {} collector (default: {state}).", d.name),
        );
        for o in d.options {
            let help = if o.default.is_empty() {
                o.help.to_string()
            } else {
                format!("{} (default: {})", o.help, o.default)
            };
            push_flag(&mut out, &format!("--collector.{}=VALUE", o.name), &help);
        }
    }
    out.push_str(
        "\nSignals: SIGHUP reloads the configuration; SIGTERM and SIGINT shut down cleanly.\n\
         Exit codes: 0 success, 1 runtime or configuration error, 2 usage error.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(argv: &[&str]) -> Result<Command, UsageError> {
        parse(argv.iter().map(|s| s.to_string()))
    }

    #[test]
    fn unknown_flag_is_a_usage_error_naming_it() {
        let e = p(&["--web.listen-adress=:1"]).unwrap_err();
        assert_eq!(e.0, "unknown flag --web.listen-adress");
        assert!(p(&["-x"]).is_err());
        assert!(
            p(&["--no-web.listen-address"]).is_err(),
            "only booleans negate"
        );
    }

    #[test]
    fn missing_value_is_a_usage_error() {
        assert_eq!(
            p(&["--config.file"]).unwrap_err().0,
            "--config.file needs a value"
        );
    }

    #[test]
    fn help_and_version_short_circuit() {
        assert!(matches!(
            p(&["--log.level=debug", "--help"]),
            Ok(Command::Help)
        ));
        assert!(matches!(p(&["-h"]), Ok(Command::Help)));
        assert!(matches!(p(&["--version"]), Ok(Command::Version)));
    }

    #[test]
    fn check_config_takes_files() {
        match p(&["check", "config", "a.yml", "b.yml"]) {
            Ok(Command::CheckConfig(f)) => {
                assert_eq!(f, vec![PathBuf::from("a.yml"), "b.yml".into()])
            }
            other => panic!("{other:?}"),
        }
        assert!(p(&["check", "config"]).is_err());
        assert!(p(&["frobnicate"]).is_err());
    }

    #[test]
    fn query_subcommand_has_its_own_flags() {
        match p(&["query", "--range", "--step=15s", "rate(x[1m])"]) {
            Ok(Command::Query(q)) => {
                assert!(q.range);
                assert_eq!(q.step.as_deref(), Some("15s"));
                assert_eq!(q.expr, "rate(x[1m])");
            }
            other => panic!("{other:?}"),
        }
        assert!(p(&["query"]).is_err());
        assert!(matches!(p(&["query", "--help"]), Ok(Command::Help)));
        assert!(help().contains("query [--server=URL]"));
    }

    fn no_collector(
        _: &crate::collect::CollectorOptions,
    ) -> Result<Box<dyn crate::collect::Collector>, String> {
        Err("test table".into())
    }

    static TEST_TABLE: &[CollectorDef] = &[CollectorDef {
        name: "filesystem",
        default_enabled: true,
        options: &[crate::collect::CollectorOption {
            name: "filesystem.mount-points-exclude",
            default: "^/(dev|proc)($|/)",
            help: "Regexp of mount points to exclude.",
        }],
        new: no_collector,
    }];

    #[test]
    fn collector_switches_and_options_come_from_the_collector_table() {
        let argv = [
            "--no-collector.filesystem",
            "--collector.filesystem",
            "--collector.filesystem.mount-points-exclude=^/x",
            "--collector.filesystem=false",
        ];
        match parse_with(argv.iter().map(|s| s.to_string()), TEST_TABLE) {
            Ok(Command::Run(a)) => {
                assert_eq!(
                    a.collector_switches,
                    vec![
                        ("filesystem".to_string(), false),
                        ("filesystem".to_string(), true),
                        ("filesystem".to_string(), false)
                    ]
                );
                assert_eq!(
                    a.collector_options,
                    vec![(
                        "filesystem.mount-points-exclude".to_string(),
                        "^/x".to_string()
                    )]
                );
            }
            other => panic!("{other:?}"),
        }
        let bad = parse_with(["--collector.nosuch".to_string()], TEST_TABLE).unwrap_err();
        assert_eq!(bad.0, "unknown flag --collector.nosuch");
    }

    #[test]
    fn help_lists_every_flag_in_table_order() {
        let h = help();
        let mut at = 0;
        for f in FLAGS {
            let pos = h[at..]
                .find(f.name)
                .unwrap_or_else(|| panic!("--{} missing from help or out of order", f.name));
            at += pos;
        }
        assert!(h.contains("(default: :9099)"));
        for d in COLLECTORS {
            assert!(h.contains(&format!("--[no-]collector.{}", d.name)));
        }
    }
}
