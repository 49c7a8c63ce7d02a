//! `vmstat`: the /proc/vmstat fields selected by `vmstat.fields`, as untyped
//! `node_vmstat_<field>` (node_exporter's names and HELP).

use super::util::{
    find_below_0x21, num, option_regex, split_at_byte, words, FieldSelection, KeptFile,
};
use super::{CollectError, Collector, CollectorOption, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};

pub const OPTIONS: &[CollectorOption] = &[CollectorOption {
    name: "vmstat.fields",
    default: "^(oom_kill|pgpg|pswp|pg.*fault).*",
    help: "Regexp of fields to return for vmstat collector.",
}];

pub struct Vmstat {
    buf: String,
    file: KeptFile,
    fields: FieldSelection,
}

pub fn new(opts: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    let re = option_regex("vmstat.fields", opts.get("vmstat.fields"))?;
    Ok(Box::new(Vmstat {
        buf: String::new(),
        // One "name value\n" line per record: names stay under 40 bytes, values under 21, so
        // 64 bounds a record and lets the ~3.9 KB file end at its first read.
        file: KeptFile::new("vmstat").short_read_ends(64),
        fields: FieldSelection::new(re),
    }))
}

impl Collector for Vmstat {
    fn name(&self) -> &'static str {
        "vmstat"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        self.file.read(&ctx.roots.procfs, &mut self.buf)?;
        let path = self.file.path();
        self.fields.restart();
        let mut lines = 0;
        for line in split_at_byte(&self.buf, b'\n') {
            let Some((field, value)) = field_and_value(line) else {
                if line.trim().is_empty() {
                    continue;
                }
                return Err(CollectError::parse(path, format!("bad line {line:?}")));
            };
            lines += 1;
            let describe = |f: &str| {
                (
                    format!("node_vmstat_{f}"),
                    format!("/proc/vmstat information field {f}."),
                )
            };
            // Only selected values are parsed (~10 of ~170 lines by default).
            if let Some((name, help)) = self.fields.get(field, describe) {
                out.single_static(name, help, MetricType::Untyped, num(value, path)?);
            }
        }
        if lines == 0 {
            return Err(CollectError::parse(path, "empty"));
        }
        Ok(())
    }
}

/// The two whitespace-separated tokens of `line`, `None` unless there are exactly two. The
/// kernel's `field value` (one space) is taken in one pass over the bytes; anything else goes
/// through the general tokenizer.
fn field_and_value(line: &str) -> Option<(&str, &str)> {
    let b = line.as_bytes();
    // Bytes below 0x21 include all ASCII whitespace: one space and no other such byte is
    // the kernel's layout (anything else, control bytes too, takes the general way).
    let sp = find_below_0x21(b, 0);
    if sp > 0 && sp + 1 < b.len() && b[sp] == b' ' && find_below_0x21(b, sp + 1) == b.len() {
        return Some((&line[..sp], &line[sp + 1..]));
    }
    let mut toks = words(line);
    match (toks.next(), toks.next(), toks.next()) {
        (Some(field), Some(value), None) => Some((field, value)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::util::testing::run;

    #[test]
    fn default_fields_pick_faults_paging_swapping_and_oom_kills() {
        let vmstat = "nr_free_pages 10\npgfault 5\npgmajfault 1\npswpin 2\noom_kill 0\npgpgin 3\nworkingset_refault_anon 4\n";
        let (r, text) = run(
            &mut *new(&CollectorOptions::default()).unwrap(),
            &[("proc/vmstat", vmstat)],
        );
        r.unwrap();
        for f in ["pgfault", "pgmajfault", "pswpin", "oom_kill", "pgpgin"] {
            assert!(text.contains(&format!("node_vmstat_{f} ")), "{f} missing");
        }
        assert!(!text.contains("nr_free_pages") && !text.contains("workingset"));
        assert!(text.contains("# HELP node_vmstat_pgfault /proc/vmstat information field pgfault.\n# TYPE node_vmstat_pgfault untyped\n"));
    }

    #[test]
    fn field_and_value_takes_exactly_two_tokens_however_spaced() {
        assert_eq!(field_and_value("pgfault 5"), Some(("pgfault", "5")));
        assert_eq!(field_and_value(" pgfault\t5 \r"), Some(("pgfault", "5")));
        assert_eq!(field_and_value("pgfault  5"), Some(("pgfault", "5")));
        assert_eq!(field_and_value("pgfault 5 6"), None);
        assert_eq!(field_and_value("pgfault"), None);
        assert_eq!(field_and_value("pgfault "), None);
        assert_eq!(field_and_value(""), None);
        assert_eq!(
            field_and_value("nr_zone_write_pending 1234567890123"),
            Some(("nr_zone_write_pending", "1234567890123"))
        );
        assert_eq!(field_and_value("a\x01b 5"), Some(("a\x01b", "5")));
        assert_eq!(field_and_value("ab 5\x01"), Some(("ab", "5\x01")));
        assert_eq!(field_and_value("a\x0bb 5"), Some(("a\x0bb", "5")));
    }

    #[test]
    fn garbage_is_an_error_in_a_selected_value_only() {
        let collect = |text: &str| {
            run(
                &mut *new(&CollectorOptions::default()).unwrap(),
                &[("proc/vmstat", text)],
            )
            .0
        };
        assert!(collect("pgfault 5\nnr_free_pages x\n").is_ok());
        assert!(collect("pgfault x\nnr_free_pages 1\n").is_err());
    }

    #[test]
    fn vmstat_malformed_line_is_an_error() {
        let (r, _) = run(
            &mut *new(&CollectorOptions::default()).unwrap(),
            &[("proc/vmstat", "pgfault 5\npgmajfault 1 2\n")],
        );
        assert!(r.is_err());
    }
}
