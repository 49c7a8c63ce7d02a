//! Text 0.0.4 and OpenMetrics 1.0 encoders for a [`MetricSet`].

use super::{MetricSet, MetricType, SampleRef};
use std::io::Write;

pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Formats a float the way Go's `strconv.FormatFloat(v, 'g', -1, 64)` does, which is what
/// node_exporter and Prometheus print: shortest round-trip digits, exponent form when the
/// decimal exponent is < -4 or >= 6 (Go's `%g` decides with precision 6 for shortest output).
pub fn format_float(v: f64, out: &mut Vec<u8>) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
        return;
    }
    if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
        return;
    }
    if v == 0.0 {
        out.extend_from_slice(if v.is_sign_negative() { b"-0" } else { b"0" });
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits as `d.ddde<exp>`.
    let mut buf = [0u8; 40];
    let mut cur = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cur, "{v:e}");
    let len = cur.position() as usize;
    let s = std::str::from_utf8(&buf[..len]).unwrap_or("0e0");
    let (mantissa, exp) = s.split_once('e').unwrap_or((s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        write_exp(mantissa, exp, out);
    } else {
        let _ = write!(out, "{v}");
    }
}

fn write_exp(mantissa: &str, exp: i32, out: &mut Vec<u8>) {
    out.extend_from_slice(mantissa.as_bytes());
    let sign = if exp < 0 { '-' } else { '+' };
    let _ = write!(out, "e{sign}{:02}", exp.unsigned_abs());
}

fn escape_into(s: &str, quote: bool, out: &mut Vec<u8>) {
    for b in s.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'"' if quote => out.extend_from_slice(b"\\\""),
            _ => out.push(b),
        }
    }
}

/// Family indices grouped by name (stable: first declaration wins HELP/TYPE), and the samples
/// of each group in declaration order.
fn grouped(set: &MetricSet) -> Vec<(usize, Vec<usize>)> {
    let mut fam_order: Vec<usize> = (0..set.families.len()).collect();
    crate::sort::sort_by(&mut fam_order, |&a, &b| {
        set.str(&set.families[a].name)
            .cmp(set.str(&set.families[b].name))
            .then(a.cmp(&b))
    });
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut slot = vec![0usize; set.families.len()];
    for &f in &fam_order {
        let same = groups
            .last()
            .map(|(g, _)| set.str(&set.families[*g].name) == set.str(&set.families[f].name))
            .unwrap_or(false);
        if !same {
            groups.push((f, Vec::new()));
        }
        slot[f] = groups.len() - 1;
    }
    for (i, s) in set.samples.iter().enumerate() {
        groups[slot[s.family as usize]].1.push(i);
    }
    groups
}

fn write_sample(s: SampleRef<'_>, name_suffix: &str, openmetrics: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(s.family_name().as_bytes());
    out.extend_from_slice(s.suffix().as_bytes());
    out.extend_from_slice(name_suffix.as_bytes());
    let mut first = true;
    for (n, v) in s.labels() {
        out.push(if first { b'{' } else { b',' });
        first = false;
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b"=\"");
        escape_into(v, true, out);
        out.push(b'"');
    }
    if !first {
        out.push(b'}');
    }
    out.push(b' ');
    format_float(s.value(), out);
    if let Some(ts) = s.timestamp() {
        if openmetrics {
            let _ = write!(out, " {}.{:03}", ts.div_euclid(1000), ts.rem_euclid(1000));
        } else {
            let _ = write!(out, " {ts}");
        }
    }
    out.push(b'\n');
}

/// Text format 0.0.4: families sorted by name, each contiguous with HELP and TYPE first.
pub fn encode_text(set: &MetricSet, out: &mut Vec<u8>) {
    for (fam, samples) in grouped(set) {
        let f = set.family_ref(super::FamilyId(fam as u32));
        if samples.is_empty() {
            continue;
        }
        // No help, no HELP line (as expfmt writes a family without one, e.g. /federate's).
        if !f.help.is_empty() {
            out.extend_from_slice(b"# HELP ");
            out.extend_from_slice(f.name.as_bytes());
            out.push(b' ');
            escape_into(f.help, false, out);
            out.push(b'\n');
        }
        out.extend_from_slice(b"# TYPE ");
        out.extend_from_slice(f.name.as_bytes());
        out.push(b' ');
        out.extend_from_slice(f.typ.as_text().as_bytes());
        out.push(b'\n');
        for i in samples {
            write_sample(
                SampleRef {
                    set,
                    rec: &set.samples[i],
                },
                "",
                false,
                out,
            );
        }
    }
}

/// OpenMetrics 1.0: `unknown` for untyped, counters named without `_total` in metadata and with
/// it on samples, seconds timestamps, `# EOF` at the end.
pub fn encode_openmetrics(set: &MetricSet, out: &mut Vec<u8>) {
    for (fam, samples) in grouped(set) {
        let f = set.family_ref(super::FamilyId(fam as u32));
        if samples.is_empty() {
            continue;
        }
        let (meta_name, sample_suffix) = match f.typ {
            MetricType::Counter => (
                f.name.strip_suffix("_total").unwrap_or(f.name),
                if f.name.ends_with("_total") {
                    ""
                } else {
                    "_total"
                },
            ),
            _ => (f.name, ""),
        };
        let typ = match f.typ {
            MetricType::Untyped => "unknown",
            t => t.as_text(),
        };
        out.extend_from_slice(b"# TYPE ");
        out.extend_from_slice(meta_name.as_bytes());
        out.push(b' ');
        out.extend_from_slice(typ.as_bytes());
        if !f.help.is_empty() {
            out.extend_from_slice(b"\n# HELP ");
            out.extend_from_slice(meta_name.as_bytes());
            out.push(b' ');
            escape_into(f.help, true, out);
        }
        out.push(b'\n');
        for i in samples {
            let s = SampleRef {
                set,
                rec: &set.samples[i],
            };
            let suffix = if s.suffix().is_empty() {
                sample_suffix
            } else {
                ""
            };
            write_sample(s, suffix, true, out);
        }
    }
    out.extend_from_slice(b"# EOF\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(v: f64) -> String {
        let mut o = Vec::new();
        format_float(v, &mut o);
        String::from_utf8(o).unwrap()
    }

    #[test]
    fn floats_format_like_go() {
        assert_eq!(fmt(0.0), "0");
        assert_eq!(fmt(1.5), "1.5");
        assert_eq!(fmt(123456.0), "123456");
        assert_eq!(fmt(1234567.0), "1.234567e+06");
        assert_eq!(fmt(16430284000.0), "1.6430284e+10");
        assert_eq!(fmt(0.0001), "0.0001");
        assert_eq!(fmt(0.00001), "1e-05");
        assert_eq!(fmt(f64::INFINITY), "+Inf");
        assert_eq!(fmt(f64::NEG_INFINITY), "-Inf");
        assert_eq!(fmt(f64::NAN), "NaN");
        assert_eq!(fmt(-2.5e-7), "-2.5e-07");
    }

    #[test]
    fn text_groups_families_and_escapes() {
        let mut set = MetricSet::new();
        let b = set.family("b_total", "B \\ help\nline", MetricType::Counter);
        let a = set.family("a", "A \"quoted\"", MetricType::Gauge);
        set.sample(b, &[("x", &"q\"\\\n")], 1.0);
        set.sample(a, &[], 2.0);
        let b2 = set.family("b_total", "ignored", MetricType::Counter);
        set.sample(b2, &[("x", &7)], 3.0);
        let mut out = Vec::new();
        encode_text(&set, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# HELP a A \"quoted\"\n# TYPE a gauge\na 2\n\
             # HELP b_total B \\\\ help\\nline\n# TYPE b_total counter\nb_total{x=\"q\\\"\\\\\\n\"} 1\nb_total{x=\"7\"} 3\n"
        );
    }

    #[test]
    fn openmetrics_names_counters_and_ends_with_eof() {
        let mut set = MetricSet::new();
        let c = set.family("c_total", "C.", MetricType::Counter);
        set.sample_full(c, "", &[], 1.0, Some(1500));
        let u = set.family("u", "", MetricType::Untyped);
        set.sample(u, &[], 1.0);
        let mut out = Vec::new();
        encode_openmetrics(&set, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# TYPE c counter\n# HELP c C.\nc_total 1 1.500\n# TYPE u unknown\nu 1\n# EOF\n"
        );
    }

    #[test]
    fn text_omits_help_line_when_help_is_empty() {
        let mut set = MetricSet::new();
        let u = set.family("u", "", MetricType::Untyped);
        set.sample_full(u, "", &[], 2.0, Some(1500));
        let mut out = Vec::new();
        encode_text(&set, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# TYPE u untyped\nu 2 1500\n"
        );
    }

    #[test]
    fn clear_keeps_capacity_and_empties() {
        let mut set = MetricSet::new();
        set.single("x", "h", MetricType::Gauge, 1.0);
        set.clear();
        assert!(set.is_empty());
    }
}
