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

/// `promlet check config FILE...`: every file is checked; exit 1 if any is invalid.
fn check_config(files: &[std::path::PathBuf]) -> i32 {
    let mut code = 0;
    for f in files {
        match Config::load(f) {
            Ok(_) => println!("{}: SUCCESS", f.display()),
            Err(e) => {
                eprintln!("{e}");
                code = cli::EXIT_FAILURE;
            }
        }
    }
    code
}
