//! Fuzzes the exposition parser: any byte string, both formats, both name schemes, tight
//! limits or none. Properties: never panics; an error leaves the caller's set exactly as it
//! was; a success adds exactly the samples it reports; a text body we accept and re-encode
//! with legacy names parses again to the same number of samples.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promlet::expo::{encode_text, MetricSet, MetricType};
use promlet::scrape::parse::{Format, Limits, NameScheme, Options, Parser};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let opts = Options {
        format: if mode & 1 == 0 {
            Format::Text
        } else {
            Format::OpenMetrics
        },
        names: if mode & 2 == 0 {
            NameScheme::Legacy
        } else {
            NameScheme::Utf8
        },
        limits: if mode & 4 == 0 {
            Limits::default()
        } else {
            Limits {
                max_samples: 5,
                max_labels: 3,
                max_line_len: 64,
            }
        },
    };
    let mut set = MetricSet::new();
    set.single("before", "kept", MetricType::Gauge, 1.0);
    let mut before = Vec::new();
    encode_text(&set, &mut before);
    let mut parser = Parser::new();
    match parser.parse(body, &opts, &mut set) {
        Err(_) => {
            let mut after = Vec::new();
            encode_text(&set, &mut after);
            assert_eq!(before, after, "a failed parse changed the set");
            assert_eq!(set.sample_count(), 1);
        }
        Ok(stats) => {
            assert_eq!(set.sample_count(), 1 + stats.samples);
            if opts.format == Format::Text && opts.names == NameScheme::Legacy {
                // Our encoder's output must be valid input for our parser.
                let mut text = Vec::new();
                encode_text(&set, &mut text);
                let mut again = MetricSet::new();
                let reparsed = parser.parse(
                    &text,
                    &Options {
                        limits: Limits::NONE,
                        ..opts
                    },
                    &mut again,
                );
                let reparsed = reparsed.unwrap_or_else(|e| {
                    panic!(
                        "re-encoded body does not parse: {e}\n{}",
                        String::from_utf8_lossy(&text)
                    )
                });
                assert_eq!(reparsed.samples, set.sample_count());
            }
        }
    }
});
