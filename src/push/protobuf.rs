//! Pushes in the protobuf exposition format (`application/vnd.google.protobuf;
//! proto=io.prometheus.client.MetricFamily; encoding=delimited`): what Go programs send through
//! client_golang's `push` package, and what the Pushgateway accepts besides text.
//!
//! Owns: decoding a stream of length-delimited `MetricFamily` messages into text 0.0.4, so
//! that one parser (and one set of validation rules) serves both formats.
//! Must not touch: grouping keys, storage (the caller hands the text to [`super::Store::push`]).
//!
//! Native histograms are refused (the TSDB and engine keep classic histograms only); a
//! histogram that has classic buckets too keeps them, as Prometheus does when it scrapes one.

use std::fmt::Write as _;

/// The `Content-Type` of a protobuf push, if `content_type` names one we can read.
pub fn is_delimited_protobuf(content_type: &str) -> bool {
    let mut parts = content_type.split(';').map(str::trim);
    let media = parts.next().unwrap_or("");
    if !media.eq_ignore_ascii_case("application/vnd.google.protobuf") {
        return false;
    }
    parts.any(|p| p.eq_ignore_ascii_case("encoding=delimited"))
}

/// Converts a delimited `MetricFamily` stream to text exposition, or says what is wrong.
pub fn to_text(mut body: &[u8]) -> Result<String, String> {
    let mut out = String::new();
    while !body.is_empty() {
        let len = read_varint(&mut body)? as usize;
        if len > body.len() {
            return Err("truncated MetricFamily message".into());
        }
        let (message, rest) = body.split_at(len);
        family_to_text(message, &mut out)?;
        body = rest;
    }
    Ok(out)
}

// Field numbers of io.prometheus.client's metrics.proto.
const FAMILY_NAME: u32 = 1;
const FAMILY_HELP: u32 = 2;
const FAMILY_TYPE: u32 = 3;
const FAMILY_METRIC: u32 = 4;
const METRIC_LABEL: u32 = 1;
const METRIC_GAUGE: u32 = 2;
const METRIC_COUNTER: u32 = 3;
const METRIC_SUMMARY: u32 = 4;
const METRIC_UNTYPED: u32 = 5;
const METRIC_TIMESTAMP_MS: u32 = 6;
const METRIC_HISTOGRAM: u32 = 7;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Summary,
    Untyped,
    Histogram,
    GaugeHistogram,
}

fn family_to_text(mut msg: &[u8], out: &mut String) -> Result<(), String> {
    let (mut name, mut help, mut kind) = (None, None, Kind::Counter);
    let mut metrics = Vec::new();
    while !msg.is_empty() {
        match read_field(&mut msg)? {
            (FAMILY_NAME, Value::Bytes(b)) => name = Some(utf8(b)?),
            (FAMILY_HELP, Value::Bytes(b)) => help = Some(utf8(b)?),
            (FAMILY_TYPE, Value::Varint(t)) => {
                kind = match t {
                    0 => Kind::Counter,
                    1 => Kind::Gauge,
                    2 => Kind::Summary,
                    3 => Kind::Untyped,
                    4 => Kind::Histogram,
                    5 => Kind::GaugeHistogram,
                    _ => return Err(format!("unknown metric type {t}")),
                }
            }
            (FAMILY_METRIC, Value::Bytes(b)) => metrics.push(b),
            _ => {} // unknown fields are skipped, as protobuf readers do
        }
    }
    let name = name.ok_or("MetricFamily without a name")?;
    if let Some(help) = help {
        let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    }
    let type_name = match kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Summary => "summary",
        Kind::Untyped => "untyped",
        Kind::Histogram => "histogram",
        Kind::GaugeHistogram => "gaugehistogram",
    };
    if kind == Kind::GaugeHistogram {
        return Err(format!("{name}: gauge histograms are not supported"));
    }
    let _ = writeln!(out, "# TYPE {name} {type_name}");
    for m in metrics {
        metric_to_text(name, kind, m, out)?;
    }
    Ok(())
}

fn metric_to_text(name: &str, kind: Kind, mut msg: &[u8], out: &mut String) -> Result<(), String> {
    let mut labels = String::new();
    let mut timestamp = None;
    let mut body = None;
    while !msg.is_empty() {
        match read_field(&mut msg)? {
            (METRIC_LABEL, Value::Bytes(pair)) => {
                let (n, v) = label_pair(pair)?;
                if !labels.is_empty() {
                    labels.push(',');
                }
                let _ = write!(labels, "{n}=\"{}\"", escape_label_value(v));
            }
            (
                f @ (METRIC_GAUGE | METRIC_COUNTER | METRIC_SUMMARY | METRIC_UNTYPED),
                Value::Bytes(b),
            )
            | (f @ METRIC_HISTOGRAM, Value::Bytes(b)) => body = Some((f, b)),
            (METRIC_TIMESTAMP_MS, Value::Varint(t)) => timestamp = Some(t as i64),
            _ => {}
        }
    }
    let ts = timestamp.map(|t| format!(" {t}")).unwrap_or_default();
    let want = match kind {
        Kind::Counter => METRIC_COUNTER,
        Kind::Gauge => METRIC_GAUGE,
        Kind::Summary => METRIC_SUMMARY,
        Kind::Untyped => METRIC_UNTYPED,
        Kind::Histogram | Kind::GaugeHistogram => METRIC_HISTOGRAM,
    };
    let Some((field, mut b)) = body else {
        return Err(format!("{name}: metric without a value"));
    };
    if field != want {
        return Err(format!(
            "{name}: metric value does not match the family type"
        ));
    }
    let sample = |out: &mut String, suffix: &str, extra: &str, v: f64| {
        let sep = if labels.is_empty() || extra.is_empty() {
            ""
        } else {
            ","
        };
        let all = format!("{labels}{sep}{extra}");
        let braces = if all.is_empty() {
            String::new()
        } else {
            format!("{{{all}}}")
        };
        let _ = writeln!(out, "{name}{suffix}{braces} {}{ts}", float(v));
    };
    match kind {
        Kind::Counter | Kind::Gauge | Kind::Untyped => {
            // Counter, Gauge and Untyped all keep their value in field 1.
            let mut value = 0.0;
            while !b.is_empty() {
                if let (1, Value::Fixed64(v)) = read_field(&mut b)? {
                    value = f64::from_bits(v);
                }
            }
            sample(out, "", "", value);
        }
        Kind::Summary => {
            let (mut count, mut sum) = (0.0, 0.0);
            let mut quantiles = Vec::new();
            while !b.is_empty() {
                match read_field(&mut b)? {
                    (1, Value::Varint(c)) => count = c as f64,
                    (2, Value::Fixed64(s)) => sum = f64::from_bits(s),
                    (3, Value::Bytes(mut q)) => {
                        let (mut at, mut v) = (0.0, 0.0);
                        while !q.is_empty() {
                            match read_field(&mut q)? {
                                (1, Value::Fixed64(x)) => at = f64::from_bits(x),
                                (2, Value::Fixed64(x)) => v = f64::from_bits(x),
                                _ => {}
                            }
                        }
                        quantiles.push((at, v));
                    }
                    _ => {}
                }
            }
            for (at, v) in quantiles {
                sample(out, "", &format!("quantile=\"{}\"", float(at)), v);
            }
            sample(out, "_sum", "", sum);
            sample(out, "_count", "", count);
        }
        Kind::Histogram | Kind::GaugeHistogram => {
            let (mut count, mut sum, mut native) = (0.0, 0.0, false);
            let mut buckets = Vec::new();
            while !b.is_empty() {
                match read_field(&mut b)? {
                    (1, Value::Varint(c)) => count = c as f64,
                    (4, Value::Fixed64(c)) => count = f64::from_bits(c),
                    (2, Value::Fixed64(s)) => sum = f64::from_bits(s),
                    (3, Value::Bytes(mut bucket)) => {
                        let (mut le, mut n) = (f64::INFINITY, 0.0);
                        while !bucket.is_empty() {
                            match read_field(&mut bucket)? {
                                (1, Value::Varint(c)) => n = c as f64,
                                (4, Value::Fixed64(c)) => n = f64::from_bits(c),
                                (2, Value::Fixed64(x)) => le = f64::from_bits(x),
                                _ => {}
                            }
                        }
                        buckets.push((le, n));
                    }
                    // schema, zero bucket, spans, deltas, counts: a native histogram.
                    (5..=14, _) => native = true,
                    _ => {}
                }
            }
            if buckets.is_empty() && native {
                return Err(format!("{name}: native histograms are not supported"));
            }
            let has_inf = buckets.last().is_some_and(|(le, _)| *le == f64::INFINITY);
            for (le, n) in buckets {
                sample(out, "_bucket", &format!("le=\"{}\"", float(le)), n);
            }
            if !has_inf {
                sample(out, "_bucket", "le=\"+Inf\"", count);
            }
            sample(out, "_sum", "", sum);
            sample(out, "_count", "", count);
        }
    }
    Ok(())
}

fn label_pair(mut msg: &[u8]) -> Result<(&str, &str), String> {
    let (mut name, mut value) = ("", "");
    while !msg.is_empty() {
        match read_field(&mut msg)? {
            (1, Value::Bytes(b)) => name = utf8(b)?,
            (2, Value::Bytes(b)) => value = utf8(b)?,
            _ => {}
        }
    }
    Ok((name, value))
}

/// Text-format spelling of a float that the parser reads back to the same bits.
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v:?}")
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('"', "\\\"")
}

fn utf8(b: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(b).map_err(|_| "string field is not UTF-8".to_string())
}

enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32,
}

fn read_field<'a>(buf: &mut &'a [u8]) -> Result<(u32, Value<'a>), String> {
    let key = read_varint(buf)?;
    let field = u32::try_from(key >> 3).map_err(|_| "field number out of range")?;
    let value = match key & 7 {
        0 => Value::Varint(read_varint(buf)?),
        1 => Value::Fixed64(u64::from_le_bytes(
            take(buf, 8)?.try_into().unwrap_or([0; 8]),
        )),
        2 => {
            let len = read_varint(buf)?;
            let len = usize::try_from(len).map_err(|_| "length out of range")?;
            Value::Bytes(take(buf, len)?)
        }
        5 => {
            take(buf, 4)?;
            Value::Fixed32
        }
        w => return Err(format!("unsupported protobuf wire type {w}")),
    };
    Ok((field, value))
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if buf.len() < n {
        return Err("truncated protobuf field".into());
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn read_varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&byte, rest) = buf.split_first().ok_or("truncated varint")?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint longer than 10 bytes".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut n: u64, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn bytes(field: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(field << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }
    fn double(field: u64, v: f64, out: &mut Vec<u8>) {
        varint(field << 3 | 1, out);
        out.extend_from_slice(&v.to_le_bytes());
    }
    fn uint(field: u64, v: u64, out: &mut Vec<u8>) {
        varint(field << 3, out);
        varint(v, out);
    }
    fn delimited(families: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in families {
            varint(f.len() as u64, &mut out);
            out.extend_from_slice(f);
        }
        out
    }

    #[test]
    fn gauge_with_labels_and_escapes_becomes_text() {
        let mut pair = Vec::new();
        bytes(1, b"path", &mut pair);
        bytes(2, b"C:\\x \"q\"", &mut pair);
        let mut gauge = Vec::new();
        double(1, 4.5, &mut gauge);
        let mut metric = Vec::new();
        bytes(1, &pair, &mut metric);
        bytes(2, &gauge, &mut metric);
        let mut fam = Vec::new();
        bytes(1, b"disk_free", &mut fam);
        bytes(2, b"Free\nbytes.", &mut fam);
        uint(3, 1, &mut fam);
        bytes(4, &metric, &mut fam);
        let text = to_text(&delimited(&[fam])).unwrap();
        assert_eq!(
            text,
            "# HELP disk_free Free\\nbytes.\n# TYPE disk_free gauge\n\
             disk_free{path=\"C:\\\\x \\\"q\\\"\"} 4.5\n"
        );
    }

    #[test]
    fn histogram_gets_its_inf_bucket_sum_and_count() {
        let mut bucket = Vec::new();
        uint(1, 2, &mut bucket);
        double(2, 0.5, &mut bucket);
        let mut hist = Vec::new();
        uint(1, 3, &mut hist);
        double(2, 1.25, &mut hist);
        bytes(3, &bucket, &mut hist);
        let mut metric = Vec::new();
        bytes(7, &hist, &mut metric);
        uint(6, 1000, &mut metric);
        let mut fam = Vec::new();
        bytes(1, b"h", &mut fam);
        uint(3, 4, &mut fam);
        bytes(4, &metric, &mut fam);
        assert_eq!(
            to_text(&delimited(&[fam])).unwrap(),
            "# TYPE h histogram\nh_bucket{le=\"0.5\"} 2.0 1000\nh_bucket{le=\"+Inf\"} 3.0 1000\n\
             h_sum 1.25 1000\nh_count 3.0 1000\n"
        );
    }

    #[test]
    fn native_only_histograms_are_refused() {
        let mut hist = Vec::new();
        uint(1, 3, &mut hist);
        uint(5, 3, &mut hist); // schema
        let mut metric = Vec::new();
        bytes(7, &hist, &mut metric);
        let mut fam = Vec::new();
        bytes(1, b"h", &mut fam);
        uint(3, 4, &mut fam);
        bytes(4, &metric, &mut fam);
        let e = to_text(&delimited(&[fam])).unwrap_err();
        assert!(e.contains("native histograms"), "{e}");
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        assert!(to_text(&[0x05, 0x0a]).is_err());
        assert!(to_text(&[0xff; 12]).is_err());
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for len in 0..200 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng as u8
                })
                .collect();
            let _ = to_text(&junk);
        }
    }

    #[test]
    fn content_type_must_say_delimited() {
        assert!(is_delimited_protobuf(
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
        ));
        assert!(!is_delimited_protobuf(
            "application/vnd.google.protobuf; encoding=text"
        ));
        assert!(!is_delimited_protobuf("text/plain; version=0.0.4"));
    }
}
