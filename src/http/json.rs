//! A tiny append-only JSON writer (no serde) and the number/time formats of Prometheus's API.
//!
//! Owns: escaping and float/timestamp rendering. Must not touch: what the documents contain.

/// Appends JSON text to a byte buffer, placing commas itself.
#[derive(Default)]
pub struct Json {
    pub buf: Vec<u8>,
    /// Whether each open container already holds an element.
    stack: Vec<bool>,
    /// A key was just written, so the next value needs no comma.
    after_key: bool,
}

impl Json {
    pub fn new() -> Json {
        Json::default()
    }

    fn sep(&mut self) {
        if self.after_key {
            self.after_key = false;
            return;
        }
        if let Some(has) = self.stack.last_mut() {
            if *has {
                self.buf.push(b',');
            }
            *has = true;
        }
    }

    pub fn begin_object(&mut self) -> &mut Self {
        self.sep();
        self.buf.push(b'{');
        self.stack.push(false);
        self
    }
    pub fn end_object(&mut self) -> &mut Self {
        self.buf.push(b'}');
        self.stack.pop();
        self
    }
    pub fn begin_array(&mut self) -> &mut Self {
        self.sep();
        self.buf.push(b'[');
        self.stack.push(false);
        self
    }
    pub fn end_array(&mut self) -> &mut Self {
        self.buf.push(b']');
        self.stack.pop();
        self
    }
    pub fn key(&mut self, k: &str) -> &mut Self {
        self.sep();
        write_str(&mut self.buf, k);
        self.buf.push(b':');
        self.after_key = true;
        self
    }
    pub fn string(&mut self, s: &str) -> &mut Self {
        self.sep();
        write_str(&mut self.buf, s);
        self
    }
    /// Writes pre-rendered JSON (a number, `true`, `null`).
    pub fn raw(&mut self, s: &str) -> &mut Self {
        self.sep();
        self.buf.extend_from_slice(s.as_bytes());
        self
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Escapes a string as JSON, like Go's encoding/json (HTML characters escaped too).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '<' => out.extend_from_slice(b"\\u003c"),
            '>' => out.extend_from_slice(b"\\u003e"),
            '&' => out.extend_from_slice(b"\\u0026"),
            '\u{2028}' => out.extend_from_slice(b"\\u2028"),
            '\u{2029}' => out.extend_from_slice(b"\\u2029"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// A sample value as the API writes it: `NaN`, `+Inf`, `-Inf`, else Go's `'f', -1` with the
/// exponent form for |v| < 1e-6 or |v| >= 1e21.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        return format_exp(v);
    }
    format!("{v}")
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`: shortest mantissa, at least two exponent digits.
pub fn format_exp(v: f64) -> String {
    let s = format!("{v:e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    let sign = if e < 0 { '-' } else { '+' };
    format!("{m}e{sign}{:02}", e.abs())
}

/// Milliseconds as the API's float seconds: `1435781451.781`, `1435781451.78`, `1435781451`.
pub fn format_ts(ms: i64) -> String {
    let neg = ms < 0;
    let a = ms.unsigned_abs();
    let secs = a / 1000;
    let frac = a % 1000;
    let mut s = if neg {
        format!("-{secs}")
    } else {
        secs.to_string()
    };
    if frac != 0 {
        let f = format!("{frac:03}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_use_go_formatting_rules() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.5), "0.5");
        assert_eq!(format_value(1e-7), "1e-07");
        assert_eq!(format_value(1e21), "1e+21");
        assert_eq!(format_value(123456789.0), "123456789");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(0.0), "0");
    }

    #[test]
    fn timestamps_drop_trailing_zeros() {
        assert_eq!(format_ts(1_435_781_451_781), "1435781451.781");
        assert_eq!(format_ts(1_435_781_451_780), "1435781451.78");
        assert_eq!(format_ts(1_435_781_451_000), "1435781451");
        assert_eq!(format_ts(-1500), "-1.5");
    }

    #[test]
    fn writer_places_commas_and_escapes() {
        let mut j = Json::new();
        j.begin_object();
        j.key("a").string("x<y");
        j.key("b").begin_array();
        j.raw("1").raw("2");
        j.begin_object().end_object();
        j.end_array();
        j.key("c").raw("null");
        j.end_object();
        assert_eq!(
            String::from_utf8(j.into_bytes()).unwrap(),
            r#"{"a":"x\u003cy","b":[1,2,{}],"c":null}"#
        );
    }
}
