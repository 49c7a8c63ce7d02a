//! The command line of the real binary: --help from the flag table, --version, usage errors
//! (exit 2), and `promlet check config` (exit 0, or 1 with FILE:LINE:COLUMN).

use crate::common;
use crate::common::TempDir;
use std::process::{Command, Output};

fn promlet(args: &[&str]) -> Output {
    Command::new(common::promlet_bin())
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_lists_flags_and_default_port() {
    let out = promlet(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--config.file=FILE",
        "--web.listen-address=ADDR",
        "--[no-]web.enable-lifecycle",
        "--storage.tsdb.path=DIR",
        "--log.level=LEVEL",
        "--log.format=FORMAT",
        "--path.procfs=DIR",
        "--path.sysfs=DIR",
        "--path.rootfs=DIR",
        "--path.udev.data=DIR",
        "--version",
        "check config FILE...",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
    assert!(help.contains("(default: :9099)"));
}

#[test]
fn version_prints_version() {
    let out = promlet(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let v = String::from_utf8(out.stdout).unwrap();
    assert!(v.starts_with(&format!("promlet, version {}", env!("CARGO_PKG_VERSION"))));
}

#[test]
fn unknown_flag_is_a_clear_error_with_exit_2() {
    let out = promlet(&["--web.listen-adress=:1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err,
        "promlet: error: unknown flag --web.listen-adress; see promlet --help\n"
    );
    let out = promlet(&["--log.level=loud"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value for --log.level"));
}

#[test]
fn check_config_accepts_good_and_positions_errors() {
    let dir = TempDir::new("check");
    let good = dir.0.join("good.yml");
    std::fs::write(
        &good,
        "global:\n  scrape_interval: 30s\n  external_labels:\n    site: home\n",
    )
    .unwrap();
    let out = promlet(&["check", "config", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{:?}", out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS"));

    let typo = dir.0.join("typo.yml");
    std::fs::write(
        &typo,
        "global:\n  scrape_interval: 30s\n  extrnal_labels: {}\n",
    )
    .unwrap();
    let out = promlet(&[
        "check",
        "config",
        good.to_str().unwrap(),
        typo.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with(&format!(
            "{}:3:3: unknown key \"extrnal_labels\" in global",
            typo.display()
        )),
        "{err}"
    );

    let missing = dir.0.join("missing.yml");
    let out = promlet(&["check", "config", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

/// The embedded default config is itself a valid file for `check config`.
#[test]
fn embedded_default_config_passes_check_config() {
    let dir = TempDir::new("embedded");
    let p = dir.0.join("default.yml");
    std::fs::write(&p, promlet::config::DEFAULT_CONFIG).unwrap();
    let out = promlet(&["check", "config", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{:?}", out);
}
