//! Go's `fmt` number formatting as rule templates print it (`%v`, `%.4g`, `%f`, `%d`, ...).
//!
//! Owns: rendering floats and the `printf` verbs templates use. Must not touch: anything else.
//! Only the verbs and flags rule files use in practice; an unknown verb renders as Go does
//! (`%!z(float64=1)`), never panics.

use super::template::TValue;

/// Go's `strconv.FormatFloat(v, 'g', prec, 64)`; `prec = None` is the shortest form (`%v`).
pub fn format_g(v: f64, prec: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let neg = v.is_sign_negative();
    let a = v.abs();
    // Decimal digits without trailing zeros, and the decimal point position.
    let (digits, dp) = if a == 0.0 {
        ("0".to_string(), 1)
    } else {
        let s = match prec {
            None => format!("{a:e}"),
            Some(p) => format!("{a:.*e}", p.max(1) - 1),
        };
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        let mut d: String = m.chars().filter(|c| *c != '.').collect();
        while d.len() > 1 && d.ends_with('0') {
            d.pop();
        }
        (d, e + 1)
    };
    let nd = digits.len() as i32;
    let eprec = match prec {
        None => 6,
        Some(p) => {
            let p = p.max(1) as i32;
            if p > nd && nd >= dp {
                nd
            } else {
                p
            }
        }
    };
    let exp = dp - 1;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if exp < -4 || exp >= eprec {
        out.push_str(&digits[..1]);
        if nd > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.unsigned_abs()));
    } else if dp <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-dp) as usize));
        out.push_str(&digits);
    } else if dp >= nd {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (dp - nd) as usize));
    } else {
        out.push_str(&digits[..dp as usize]);
        out.push('.');
        out.push_str(&digits[dp as usize..]);
    }
    out
}

/// Go's `%e` with a precision.
fn format_e(v: f64, prec: usize) -> String {
    if !v.is_finite() {
        return format_g(v, None);
    }
    let s = format!("{v:.prec$e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    format!(
        "{m}e{}{:02}",
        if e < 0 { '-' } else { '+' },
        e.unsigned_abs()
    )
}

fn format_f(v: f64, prec: usize) -> String {
    if !v.is_finite() {
        return format_g(v, None);
    }
    format!("{v:.prec$}")
}

fn type_name(v: &TValue) -> &'static str {
    match v {
        TValue::Nil => "<nil>",
        TValue::Bool(_) => "bool",
        TValue::Int(_) => "int",
        TValue::Float(_) => "float64",
        TValue::Str(_) => "string",
        TValue::Map(_) => "map[string]string",
        TValue::Samples(_) => "template.queryResult",
        TValue::Sample(_) => "*template.sample",
        TValue::Root(_) => "struct",
        TValue::List(_) => "[]interface {}",
        TValue::Hist(_) => "*histogram.FloatHistogram",
    }
}

/// Go's `fmt.Sprintf` for the verbs `v s d f F e g q x X t %`, with flags `-+0 ` and
/// width/precision.
pub fn sprintf(format: &str, args: &[TValue]) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut argi = 0;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut plus, mut zero, mut space) = (false, false, false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                '#' => {}
                _ => break,
            }
            chars.next();
        }
        let mut width = None;
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            width = Some(width.unwrap_or(0) * 10 + d as usize);
            chars.next();
        }
        let mut prec = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = 0;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                p = p * 10 + d as usize;
                chars.next();
            }
            prec = Some(p);
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        argi += 1;
        let num = match arg {
            TValue::Int(i) => Some(*i as f64),
            TValue::Float(f) => Some(*f),
            _ => None,
        };
        let mut body = match (verb, arg) {
            ('v', a) | ('s', a)
                if !matches!(a, TValue::Float(_) | TValue::Int(_)) || verb == 'v' =>
            {
                let s = a.to_go_string();
                match (verb, prec) {
                    ('s', Some(p)) => s.chars().take(p).collect(),
                    _ => s,
                }
            }
            ('d', TValue::Int(i)) => i.to_string(),
            ('f' | 'F', _) if num.is_some() => format_f(num.unwrap_or(0.0), prec.unwrap_or(6)),
            ('e', _) if num.is_some() => format_e(num.unwrap_or(0.0), prec.unwrap_or(6)),
            ('g', _) if num.is_some() => format_g(num.unwrap_or(0.0), prec),
            ('q', TValue::Str(s)) => crate::promql::engine::go_quote(s),
            ('x', TValue::Int(i)) => format!("{i:x}"),
            ('X', TValue::Int(i)) => format!("{i:X}"),
            ('x', TValue::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('t', TValue::Bool(b)) => b.to_string(),
            (v, a) => format!("%!{v}({}={})", type_name(a), a.to_go_string()),
        };
        if num.is_some() && matches!(verb, 'd' | 'f' | 'F' | 'e' | 'g' | 'v') {
            if plus && !body.starts_with('-') {
                body.insert(0, '+');
            } else if space && !body.starts_with('-') {
                body.insert(0, ' ');
            }
        }
        if let Some(w) = width {
            let len = body.chars().count();
            if len < w {
                let pad = w - len;
                if minus {
                    body.extend(std::iter::repeat_n(' ', pad));
                } else if zero && num.is_some() {
                    let sign = body.starts_with(['-', '+', ' ']);
                    let at = usize::from(sign);
                    body.insert_str(at, &"0".repeat(pad));
                } else {
                    body.insert_str(0, &" ".repeat(pad));
                }
            }
        }
        out.push_str(&body);
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[argi..]
            .iter()
            .map(|a| format!("{}={}", type_name(a), a.to_go_string()))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_g_switches_to_exponent_at_1e6() {
        assert_eq!(format_g(1.0, None), "1");
        assert_eq!(format_g(123456.0, None), "123456");
        assert_eq!(format_g(1e6, None), "1e+06");
        assert_eq!(format_g(1234567.0, None), "1.234567e+06");
        assert_eq!(format_g(0.0001, None), "0.0001");
        assert_eq!(format_g(0.00001, None), "1e-05");
        assert_eq!(format_g(-2.5, None), "-2.5");
    }

    #[test]
    fn precision_g_trims_zeros_like_go() {
        assert_eq!(format_g(1.0, Some(4)), "1");
        assert_eq!(format_g(1234.5678, Some(4)), "1235");
        assert_eq!(format_g(12345.0, Some(4)), "1.234e+04");
        assert_eq!(format_g(100000.0, Some(4)), "1e+05");
        assert_eq!(format_g(0.5, Some(4)), "0.5");
        assert_eq!(format_g(2.53846, Some(4)), "2.538");
        assert_eq!(format_g(0.0, Some(4)), "0");
    }

    #[test]
    fn sprintf_handles_common_verbs() {
        let f = TValue::Float(3.25159);
        assert_eq!(sprintf("%.2f", std::slice::from_ref(&f)), "3.25");
        assert_eq!(sprintf("%5.1f|", std::slice::from_ref(&f)), "  3.3|");
        assert_eq!(sprintf("%d%%", &[TValue::Int(42)]), "42%");
        assert_eq!(sprintf("%s=%v", &[TValue::Str("a".into()), f]), "a=3.25159");
        assert_eq!(sprintf("%d", &[TValue::Float(1.5)]), "%!d(float64=1.5)");
        assert_eq!(sprintf("%s", &[]), "%!s(MISSING)");
        assert_eq!(sprintf("%q", &[TValue::Str("x\"".into())]), "\"x\\\"\"");
        assert_eq!(sprintf("%e", &[TValue::Float(1234.5)]), "1.234500e+03");
    }
}
