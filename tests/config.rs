//! Config files as users write them: positioned errors for typos at any depth, YAML syntax
//! errors, and hostile input (truncations, garbage, deep nesting) that must give an error,
//! never a panic.

use crate::common::TempDir;
use promlet::config::{Config, DEFAULT_CONFIG};

const FULL: &str = "\
# A prometheus.yml-shaped promlet config.
global:
  scrape_interval: 15s
  scrape_timeout: 5s
  evaluation_interval: 30s
  external_labels:
    site: \"home\"
    device: 'pi-zero'
collectors:
  disable_defaults: false
";

fn err(text: &str) -> String {
    Config::parse(text, "p.yml").unwrap_err().to_string()
}

#[test]
fn full_file_loads_from_disk() {
    let dir = TempDir::new("cfg");
    let p = dir.0.join("promlet.yml");
    std::fs::write(&p, FULL).unwrap();
    let c = Config::load(&p).unwrap();
    assert_eq!(c.global.scrape_timeout, std::time::Duration::from_secs(5));
    assert_eq!(c.global.external_labels.len(), 2);
}

/// `remote_write` (the last section to arrive) loads, and a typo inside it, or an https URL
/// in a build without outbound TLS, is an error at its position.
#[test]
fn remote_write_loads_and_its_mistakes_are_positioned_errors() {
    let text = format!("{FULL}remote_write:\n  - url: http://x/\n");
    let c = Config::parse(&text, "p.yml").unwrap();
    assert_eq!(c.remote_write[0].url, "http://x/");
    let text = format!("{FULL}remote_write:\n  - url: http://x/\n    queue_config:\n      max_sample_per_send: 1\n");
    assert!(
        err(&text).starts_with("p.yml:14:7: unknown key \"max_sample_per_send\" in queue_config"),
        "{}",
        err(&text)
    );
    let text = format!("{FULL}remote_write:\n  - url: https://x/\n");
    assert!(
        err(&text).starts_with(
            "p.yml:12:10: \"https://x/\": https needs a promlet built with the `tls` feature"
        ),
        "{}",
        err(&text)
    );
}

#[test]
fn yaml_syntax_errors_are_positioned() {
    let e = err("global:\n\tscrape_interval: 15s\n");
    assert!(e.starts_with("p.yml:2:"), "{e}");
    let e = err("global:\n  scrape_interval: \"15s\n");
    assert!(e.starts_with("p.yml:"), "{e}");
    let e = err("global:\n  external_labels:\n    a: [b\n");
    assert!(e.starts_with("p.yml:"), "{e}");
}

#[test]
fn wrong_types_are_positioned() {
    assert_eq!(
        err("global:\n  scrape_interval: [15s]\n"),
        "p.yml:2:20: scrape_interval must be a string, not a sequence"
    );
    assert_eq!(
        err("global:\n  external_labels:\n    a: {b: c}\n"),
        "p.yml:3:8: a label value must be a string, not a mapping"
    );
    assert_eq!(
        err("collectors:\n  disable_defaults: maybe\n"),
        "p.yml:2:21: disable_defaults must be true or false, not \"maybe\""
    );
    assert_eq!(
        err("- a\n- b\n"),
        "p.yml:1:1: the top level must be a mapping, not a sequence"
    );
}

/// Every prefix of a valid file, garbage bytes and deep nesting give Ok or a positioned Err;
/// none panics.
#[test]
fn truncated_garbage_and_deeply_nested_input_never_panic() {
    for text in [FULL, DEFAULT_CONFIG] {
        for end in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
            let _ = Config::parse(&text[..end], "t.yml");
        }
    }
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..200 {
        let bytes: Vec<u8> = (0..64)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                b" \n:-[]{}&*!|>'\"#%@`,?abc0"[(seed % 25) as usize]
            })
            .collect();
        let text = String::from_utf8(bytes).unwrap();
        if let Err(e) = Config::parse(&text, "g.yml") {
            assert!(e.to_string().starts_with("g.yml:"), "{e}");
        }
    }
    let deep = format!("global: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    assert!(Config::parse(&deep, "d.yml").is_err());
    let dir = TempDir::new("cfg-bin");
    let p = dir.0.join("bin.yml");
    std::fs::write(&p, [0xff, 0xfe, 0x00, 0x01]).unwrap();
    let e = Config::load(&p).unwrap_err().to_string();
    assert!(e.contains("bin.yml"), "{e}");
}
