//! Fuzzes the configuration and rule-file parsers (YAML into our structs): any text either
//! loads or gives an error; never a panic, hang or runaway allocation. The first byte picks
//! the parser so one corpus serves both.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promlet::config::Config;
use promlet::rules::RuleFile;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Err(e) = Config::parse(text, "fuzz.yml") {
                // Errors are shown to users: they must render.
                let _ = e.to_string();
            }
        }
        1 => {
            let _ = RuleFile::parse(text, "fuzz.rules.yml", false)
                .map_err(|es| es.iter().map(|e| e.to_string()).collect::<Vec<_>>());
        }
        _ => {
            let _ = RuleFile::parse(text, "fuzz.rules.yml", true);
        }
    }
});
