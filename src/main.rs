//! The `promlet` binary: parse the command line, dispatch, exit with a meaningful code
//! (0 success, 1 runtime or configuration error, 2 usage error).

use promlet::cli::{self, Command};
use promlet::config::Config;

fn main() {
    let code = match cli::parse(std::env::args().skip(1)) {
        Err(e) => {
            eprintln!("promlet: error: {e}");
            cli::EXIT_USAGE
        }
        Ok(Command::Help) => {
            print!("{}", cli::help());
            0
        }
        Ok(Command::Version) => {
            println!(
                "promlet, version {} (revision: {})\n  rustc: {}",
                promlet::VERSION,
                promlet::agent::REVISION,
                promlet::agent::RUSTC_VERSION
            );
            0
        }
        Ok(Command::CheckConfig(files)) => check_config(&files),
        Ok(Command::CheckWebConfig(files)) => check_web_config(&files),
        Ok(Command::CheckRules {
            files,
            ignore_unknown_fields,
        }) => check_rules(&files, ignore_unknown_fields),
        Ok(Command::TestRules {
            files,
            run,
            ignore_unknown_fields,
        }) => promlet::rules::unittest::run_files(
            &files,
            &promlet::rules::unittest::TestOptions {
                run,
                ignore_unknown_fields,
            },
            &mut std::io::stdout(),
        ),
        Ok(Command::Query(q)) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            cli::query::run(&q, now)
        }
        Ok(Command::Run(args)) => promlet::agent::run(*args),
    };
    std::process::exit(code);
}

/// `promlet check web-config FILE...`: the file, and with `tls_server_config` that its
/// certificate, key and CA files load; exit 1 if any file is invalid.
fn check_web_config(files: &[std::path::PathBuf]) -> i32 {
    let mut code = 0;
    for f in files {
        let checked = promlet::http::webconfig::WebConfig::load(f)
            .map_err(|e| e.to_string())
            .and_then(|c| match &c.tls {
                None => Ok(c),
                #[cfg(feature = "tls")]
                Some(t) => promlet::tls::ServerTls::new(t)
                    .map(|_| c)
                    .map_err(|e| format!("{}: TLS: {e}", f.display())),
                #[cfg(not(feature = "tls"))]
                Some(_) => Err(format!(
                    "{}: tls_server_config needs a promlet built with the `tls` feature",
                    f.display()
                )),
            });
        match checked {
            Ok(c) => println!(
                "{}: SUCCESS: {} users, TLS {}",
                f.display(),
                c.users.len(),
                if c.tls.is_some() { "on" } else { "off" }
            ),
            Err(e) => {
                eprintln!("{e}");
                code = cli::EXIT_FAILURE;
            }
        }
    }
    code
}

/// `promlet check config FILE...`: every file is checked; exit 1 if any is invalid.
fn check_config(files: &[std::path::PathBuf]) -> i32 {
    let mut code = 0;
    for f in files {
        match Config::load(f) {
            Ok(cfg) if !cfg.rule_files.is_empty() => {
                // As promtool check config: the rule files it names are checked too.
                let base = f.parent().unwrap_or(std::path::Path::new("."));
                let loaded = promlet::rules::manager::expand_globs(base, &cfg.rule_files)
                    .map_err(|e| vec![e])
                    .and_then(|files| promlet::rules::manager::load_files(&files, false));
                match loaded {
                    Ok(groups) => println!(
                        "{}: SUCCESS: {} rule groups found",
                        f.display(),
                        groups.len()
                    ),
                    Err(errs) => {
                        for e in errs {
                            eprintln!("{e}");
                        }
                        code = cli::EXIT_FAILURE;
                    }
                }
            }
            Ok(_) => println!("{}: SUCCESS", f.display()),
            Err(e) => {
                eprintln!("{e}");
                code = cli::EXIT_FAILURE;
            }
        }
    }
    code
}

/// `promlet check rules FILE...`: like `promtool check rules`; exit 1 if any file is invalid.
fn check_rules(files: &[std::path::PathBuf], ignore_unknown_fields: bool) -> i32 {
    let mut code = 0;
    for f in files {
        match promlet::rules::RuleFile::load(f, ignore_unknown_fields) {
            Ok(rf) => println!("{}: SUCCESS: {} rules found", f.display(), rf.rule_count()),
            Err(errs) => {
                for e in errs {
                    eprintln!("{e}");
                }
                code = cli::EXIT_FAILURE;
            }
        }
    }
    code
}
