//! The `promlet` binary: parse the command line, dispatch, exit with a meaningful code
//! (0 success, 1 runtime or configuration error, 2 usage error).

use promlet::cli::{self, Command};
use promlet::config::Config;

/// Release builds (`scripts/cross-test.sh`, `release_build`) have no unwind tables
/// (`-C force-unwind-tables=no`) and abort on panic, so libunwind could neither walk a single
/// frame (std's panic hook would print an empty backtrace for `RUST_BACKTRACE=1`) nor unwind.
/// Defining every libunwind entry point std refers to lets the linker leave libunwind, and the
/// printf it logs through, out of the binary. The panic message and its location are printed
/// as before. The list is what std's objects refer to (`nm -u` on the LTO object), which
/// differs between the DWARF unwinder and ARM's EHABI one.
#[cfg(all(
    promlet_no_unwind_tables,
    any(target_arch = "x86_64", target_arch = "arm")
))]
mod no_unwind {
    use std::ffi::{c_int, c_void};

    /// `_URC_END_OF_STACK`: the walk ends before the first frame.
    #[no_mangle]
    extern "C" fn _Unwind_Backtrace(_trace: *mut c_void, _arg: *mut c_void) -> c_int {
        5
    }

    /// The rest are only reached through a frame visited by `_Unwind_Backtrace` or through
    /// std's personality routine during unwinding; neither happens here.
    macro_rules! unreachable_entry {
        ($($name:ident),*) => {$(
            #[no_mangle]
            extern "C" fn $name() -> usize {
                std::process::abort()
            }
        )*};
    }
    unreachable_entry!(
        _Unwind_GetDataRelBase,
        _Unwind_GetTextRelBase,
        _Unwind_GetLanguageSpecificData,
        _Unwind_GetRegionStart
    );
    #[cfg(target_arch = "x86_64")]
    unreachable_entry!(
        _Unwind_GetIP,
        _Unwind_GetIPInfo,
        _Unwind_SetGR,
        _Unwind_SetIP
    );
    #[cfg(target_arch = "arm")]
    unreachable_entry!(
        _Unwind_VRS_Get,
        _Unwind_VRS_Set,
        __gnu_unwind_frame,
        // The personality routines named by the C library's own unwind index entries.
        __aeabi_unwind_cpp_pr0,
        __aeabi_unwind_cpp_pr1,
        __aeabi_unwind_cpp_pr2
    );
}

/// musl's `pthread_setname_np` formats `/proc/self/task/%d/comm` with snprintf for other
/// threads, which alone keeps printf (~8 KB) in release builds. std names a thread only from
/// inside it (the filesystem collector's `promlet-statfs` helper), which is a plain
/// `prctl(PR_SET_NAME)`.
#[cfg(promlet_no_unwind_tables)]
#[no_mangle]
extern "C" fn pthread_setname_np(
    thread: libc::pthread_t,
    name: *const libc::c_char,
) -> libc::c_int {
    // SAFETY: pthread_self has no preconditions; PR_SET_NAME reads a NUL-terminated string,
    // which std passes (it copies at most 15 bytes of it).
    unsafe {
        if thread != libc::pthread_self() {
            return libc::ENOSYS;
        }
        if libc::prctl(libc::PR_SET_NAME, name) != 0 {
            return *libc::__errno_location();
        }
    }
    0
}

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
