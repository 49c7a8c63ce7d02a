//! A tiny append-only JSON writer and reader (no serde), and the number/time formats of
//! Prometheus's API.
//!
//! Owns: escaping, float/timestamp rendering, parsing documents into [`Value`].
//! Must not touch: what the documents contain.

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
    /// A timestamp in seconds as a JSON number ([`format_ts`]), written in place: one per
    /// point of a query result, so no temporary string.
    pub fn ts(&mut self, ms: i64) -> &mut Self {
        self.sep();
        push_ts(&mut self.buf, ms);
        self
    }
    /// A sample value as a JSON string ([`format_value`]), written in place. Its characters
    /// (digits, sign, `.`, `e`, `NaN`, `Inf`) never need escaping.
    pub fn value(&mut self, v: f64) -> &mut Self {
        self.sep();
        self.buf.push(b'"');
        push_value(&mut self.buf, v);
        self.buf.push(b'"');
        self
    }
    /// The API's point, `[<ts>,"<value>"]`, as one element written in one go: a result
    /// holds one per series or step, and the container calls cost more than the bytes.
    pub fn point(&mut self, ms: i64, v: f64) -> &mut Self {
        self.sep();
        self.buf.push(b'[');
        push_ts(&mut self.buf, ms);
        self.buf.extend_from_slice(b",\"");
        push_value(&mut self.buf, v);
        self.buf.extend_from_slice(b"\"]");
        self
    }
    /// An object of string members (a label set), written in one go like [`Json::point`].
    pub fn string_object<'a>(
        &mut self,
        members: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> &mut Self {
        self.sep();
        self.buf.push(b'{');
        for (i, (k, v)) in members.enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            write_str(&mut self.buf, k);
            self.buf.push(b':');
            write_str(&mut self.buf, v);
        }
        self.buf.push(b'}');
        self
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Bytes that may need an escape: control characters, `"`, `\`, the HTML characters and
/// 0xE2 (the first byte of U+2028/U+2029). A lookup per byte instead of a chain of compares:
/// label values are scanned for these in every answer.
static NEEDS_CHECK: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b'&' as usize] = true;
    t[0xe2] = true;
    t
};

/// Escapes a string as JSON, like Go's encoding/json (HTML characters escaped too).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    // Runs of bytes that need no escape are copied whole: label values rarely need any.
    let (mut i, mut run) = (0, 0);
    loop {
        while i < b.len() && !NEEDS_CHECK[b[i] as usize] {
            i += 1;
        }
        let Some(&c) = b.get(i) else {
            break;
        };
        let (esc, len): (&[u8], usize) = match c {
            b'"' => (b"\\\"", 1),
            b'\\' => (b"\\\\", 1),
            b'\n' => (b"\\n", 1),
            b'\r' => (b"\\r", 1),
            b'\t' => (b"\\t", 1),
            b'<' => (b"\\u003c", 1),
            b'>' => (b"\\u003e", 1),
            b'&' => (b"\\u0026", 1),
            // U+2028 and U+2029 are E2 80 A8 and E2 80 A9 in UTF-8.
            0xe2 if b.get(i + 1) == Some(&0x80) && b.get(i + 2) == Some(&0xa8) => (b"\\u2028", 3),
            0xe2 if b.get(i + 1) == Some(&0x80) && b.get(i + 2) == Some(&0xa9) => (b"\\u2029", 3),
            c if c < 0x20 => (&[], 1),
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&b[run..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(c >> 4) as usize]);
            out.push(HEX[(c & 15) as usize]);
        } else {
            out.extend_from_slice(esc);
        }
        i += len;
        run = i;
    }
    out.extend_from_slice(&b[run..]);
    out.push(b'"');
}

/// A sample value as the API writes it: `NaN`, `+Inf`, `-Inf`, else Go's `'f', -1` with the
/// exponent form for |v| < 1e-6 or |v| >= 1e21.
pub fn format_value(v: f64) -> String {
    let mut out = Vec::new();
    push_value(&mut out, v);
    String::from_utf8(out).unwrap_or_default()
}

/// [`format_value`] appended to `out`.
pub fn push_value(out: &mut Vec<u8>, v: f64) {
    use std::io::Write;
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else if v != 0.0 && !(1e-6..1e21).contains(&v.abs()) {
        out.extend_from_slice(format_exp(v).as_bytes());
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        // Whole numbers (counters, most gauges) without the formatting machinery; the same
        // digits `{}` writes, "-0" included.
        if v.is_sign_negative() {
            out.push(b'-');
        }
        push_u64(out, v.abs() as u64);
    } else {
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{v}");
    }
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
    let mut out = Vec::new();
    push_ts(&mut out, ms);
    String::from_utf8(out).unwrap_or_default()
}

/// Decimal digits of `n`, written without `fmt` (a few percent of a 1,000-series answer),
/// two at a time from a table (half the divisions).
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    while n >= 100 {
        let d = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&PAIRS[d..d + 2]);
    }
    if n >= 10 {
        let d = n as usize * 2;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&PAIRS[d..d + 2]);
    } else {
        i -= 1;
        digits[i] = b'0' + n as u8;
    }
    out.extend_from_slice(&digits[i..]);
}

/// [`format_ts`] appended to `out`.
pub fn push_ts(out: &mut Vec<u8>, ms: i64) {
    if ms < 0 {
        out.push(b'-');
    }
    let a = ms.unsigned_abs();
    push_u64(out, a / 1000);
    let frac = a % 1000;
    if frac != 0 {
        // Milliseconds as three digits, trailing zeros dropped: .5, .25, .125.
        let digits = [frac / 100, frac / 10 % 10, frac % 10].map(|d| b'0' + d as u8);
        let keep = if frac % 100 == 0 {
            1
        } else if frac % 10 == 0 {
            2
        } else {
            3
        };
        out.push(b'.');
        out.extend_from_slice(&digits[..keep]);
    }
}

/// A parsed JSON document: API answers (`promlet query`, tests) and request bodies
/// (silences). Object keys keep their order; `get` finds the first of duplicates.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Value>),
    Obj(Vec<(String, Value)>),
}

/// Nesting beyond this is refused (API answers nest 5 deep, silences 3), so hostile input
/// cannot overflow the stack.
const MAX_DEPTH: usize = 64;

impl Value {
    /// Parses a whole document; errors name the byte offset.
    pub fn parse(s: &str) -> Result<Value, String> {
        let mut r = Reader {
            b: s.as_bytes(),
            i: 0,
        };
        let v = r.value(0)?;
        r.ws();
        if r.i != r.b.len() {
            return Err(format!("trailing data at byte {}", r.i));
        }
        Ok(v)
    }
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Obj(p) => p.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Arr(a) => Some(a),
            _ => None,
        }
    }
    /// Compact JSON text.
    pub fn write(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Num(n) => {
                out.push_str(&n.to_string());
            }
            Value::Str(s) => {
                let mut q = Vec::new();
                write_str(&mut q, s);
                out.push_str(&String::from_utf8_lossy(&q));
            }
            Value::Arr(a) => {
                out.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Value::Obj(p) => {
                out.push('{');
                for (i, (k, v)) in p.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    Value::Str(k.clone()).write(out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && b" \t\r\n".contains(&self.b[self.i]) {
            self.i += 1;
        }
    }
    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.i))
    }
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return self.err("nesting too deep");
        }
        self.ws();
        match self.b.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut p = Vec::new();
                if self.eat(b'}') {
                    return Ok(Value::Obj(p));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    if !self.eat(b':') {
                        return self.err("expected ':'");
                    }
                    p.push((k, self.value(depth + 1)?));
                    if self.eat(b'}') {
                        return Ok(Value::Obj(p));
                    }
                    if !self.eat(b',') {
                        return self.err("expected ',' or '}'");
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut a = Vec::new();
                if self.eat(b']') {
                    return Ok(Value::Arr(a));
                }
                loop {
                    a.push(self.value(depth + 1)?);
                    if self.eat(b']') {
                        return Ok(Value::Arr(a));
                    }
                    if !self.eat(b',') {
                        return self.err("expected ',' or ']'");
                    }
                }
            }
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(_) => {
                let st = self.i;
                while self.i < self.b.len() && !b",]} \t\r\n".contains(&self.b[self.i]) {
                    self.i += 1;
                }
                match &self.b[st..self.i] {
                    b"null" => Ok(Value::Null),
                    b"true" => Ok(Value::Bool(true)),
                    b"false" => Ok(Value::Bool(false)),
                    w => match std::str::from_utf8(w).ok().and_then(|w| w.parse().ok()) {
                        Some(n) => Ok(Value::Num(n)),
                        None => self.err("invalid value"),
                    },
                }
            }
            None => self.err("unexpected end"),
        }
    }
    fn string(&mut self) -> Result<String, String> {
        if self.b.get(self.i) != Some(&b'"') {
            return self.err("expected a string");
        }
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            match self.b.get(self.i) {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    self.i += 1;
                    return String::from_utf8(out).map_err(|_| "invalid UTF-8".to_string());
                }
                Some(b'\\') => {
                    let c = self.b.get(self.i + 1).copied();
                    self.i += 2;
                    let ch = match c {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            let hex = |r: &mut Self| -> Option<u32> {
                                let h = std::str::from_utf8(r.b.get(r.i..r.i + 4)?).ok()?;
                                r.i += 4;
                                u32::from_str_radix(h, 16).ok()
                            };
                            let Some(mut cp) = hex(self) else {
                                return self.err("bad \\u escape");
                            };
                            if (0xD800..0xDC00).contains(&cp)
                                && self.b.get(self.i..self.i + 2) == Some(b"\\u")
                            {
                                self.i += 2;
                                let lo = hex(self).unwrap_or(0);
                                cp = 0x10000
                                    + ((cp - 0xD800) << 10)
                                    + (lo.wrapping_sub(0xDC00) & 0x3FF);
                            }
                            char::from_u32(cp).unwrap_or('\u{FFFD}')
                        }
                        _ => return self.err("bad escape"),
                    };
                    let mut tmp = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                }
                Some(&c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
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
    fn whole_values_write_the_same_digits_as_the_formatter() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut vals = vec![
            -0.0,
            1e15 - 1.0,
            1e15,
            -1e15 + 1.0,
            9_007_199_254_740_993.0,
            7.0,
        ];
        for _ in 0..2000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let mag = 10f64.powi((rng % 16) as i32);
            vals.push(
                ((rng >> 11) as f64 / (1u64 << 53) as f64 * mag).round()
                    * if rng & 1 == 0 { 1.0 } else { -1.0 },
            );
        }
        for v in vals {
            assert_eq!(format_value(v), format!("{v}"), "{v:e}");
        }
        assert_eq!(format_value(-0.0), "-0");
        assert_eq!(format_ts(0), "0");
        assert_eq!(format_ts(i64::MAX), "9223372036854775.807");
    }

    #[test]
    fn timestamps_drop_trailing_zeros() {
        assert_eq!(format_ts(1_435_781_451_781), "1435781451.781");
        assert_eq!(format_ts(1_435_781_451_780), "1435781451.78");
        assert_eq!(format_ts(1_435_781_451_000), "1435781451");
        assert_eq!(format_ts(-1500), "-1.5");
        assert_eq!(format_ts(1_005), "1.005");
        assert_eq!(format_ts(-50), "-0.05");
    }

    #[test]
    fn points_write_in_place_like_the_formatters() {
        let mut j = Json::new();
        j.begin_array()
            .ts(1_500)
            .value(0.25)
            .value(f64::NAN)
            .value(1e-9);
        j.end_array();
        assert_eq!(j.into_bytes(), br#"[1.5,"0.25","NaN","1e-09"]"#);
    }

    #[test]
    fn points_and_string_objects_write_what_the_element_calls_write() {
        let mut a = Json::new();
        a.begin_array();
        a.begin_array().ts(1_500).value(0.25).end_array();
        a.begin_object()
            .key("a")
            .string("<x>")
            .key("b")
            .string("")
            .end_object();
        a.begin_object().end_object();
        a.end_array();
        let mut b = Json::new();
        b.begin_array();
        b.point(1_500, 0.25);
        b.string_object([("a", "<x>"), ("b", "")].into_iter());
        b.string_object(std::iter::empty());
        b.end_array();
        assert_eq!(a.into_bytes(), b.into_bytes());
        for n in [0, 9, 10, 99, 100, 101, 999, 1000, 12345, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
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

    #[test]
    fn strings_escape_like_go_and_keep_other_unicode() {
        let mut out = Vec::new();
        write_str(
            &mut out,
            "a\"b\\c\nd\re\tf<g>h&i\u{1}j\u{1f}k\u{2028}l\u{2029}m\u{2027}né😀\u{7f}",
        );
        // Go escapes the HTML characters and U+2028/2029 but passes other non-ASCII through.
        let want = "\"a\\\"b\\\\c\\nd\\re\\tf\\u003cg\\u003eh\\u0026i\\u0001j\\u001fk\\u2028l\\u2029m\u{2027}né😀\u{7f}\"";
        assert_eq!(String::from_utf8(out).unwrap(), want);
        let mut out = Vec::new();
        write_str(&mut out, "");
        assert_eq!(out, b"\"\"");
    }

    #[test]
    fn reader_handles_escapes_and_refuses_garbage() {
        let v = Value::parse(r#" {"a":"x\"\u00e9\ud83d\ude00","b":[true,null,-1.5e3]} "#).unwrap();
        assert_eq!(v.get("a").unwrap().as_str(), Some("x\"é😀"));
        let mut s = String::new();
        v.get("b").unwrap().write(&mut s);
        assert_eq!(s, "[true,null,-1500]");
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "\"abc",
            "[1] x",
            &"[".repeat(1000),
        ] {
            assert!(Value::parse(bad).is_err(), "{bad}");
        }
    }
}
