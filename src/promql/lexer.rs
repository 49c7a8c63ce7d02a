//! PromQL tokenizer: turns query text into tokens with byte positions.
//!
//! Owns: token shapes, number/duration/string literal decoding. Must not touch: grammar.

use super::ParseError;

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    Ident(String),
    Number(f64),
    /// Milliseconds.
    Duration(i64),
    Str(String),
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Assign,
    Colon,
    At,
    Eql,
    Neq,
    EqlRegex,
    NeqRegex,
    Lss,
    Lte,
    Gtr,
    Gte,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eof,
}

impl Tok {
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => s.clone(),
            Tok::Number(_) | Tok::Duration(_) => "number".into(),
            Tok::Str(_) => "string".into(),
            Tok::Eof => "end of input".into(),
            t => t.symbol().to_string(),
        }
    }
    fn symbol(&self) -> &'static str {
        match self {
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Comma => ",",
            Tok::Assign => "=",
            Tok::Colon => ":",
            Tok::At => "@",
            Tok::Eql => "==",
            Tok::Neq => "!=",
            Tok::EqlRegex => "=~",
            Tok::NeqRegex => "!~",
            Tok::Lss => "<",
            Tok::Lte => "<=",
            Tok::Gtr => ">",
            Tok::Gte => ">=",
            Tok::Add => "+",
            Tok::Sub => "-",
            Tok::Mul => "*",
            Tok::Div => "/",
            Tok::Mod => "%",
            Tok::Pow => "^",
            _ => "?",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

/// Splits `input` into tokens, ending with `Eof`.
pub fn lex(input: &str) -> Result<Vec<Token>, ParseError> {
    let b = input.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        let two = if i + 1 < b.len() { b[i + 1] } else { 0 };
        let (tok, len) = match c {
            b'{' => (Tok::LBrace, 1),
            b'}' => (Tok::RBrace, 1),
            b'(' => (Tok::LParen, 1),
            b')' => (Tok::RParen, 1),
            b'[' => (Tok::LBracket, 1),
            b']' => (Tok::RBracket, 1),
            b',' => (Tok::Comma, 1),
            b':' if !(two.is_ascii_alphabetic() || two == b'_' || two == b':') => (Tok::Colon, 1),
            b'@' => (Tok::At, 1),
            b'=' if two == b'=' => (Tok::Eql, 2),
            b'=' if two == b'~' => (Tok::EqlRegex, 2),
            b'=' => (Tok::Assign, 1),
            b'!' if two == b'=' => (Tok::Neq, 2),
            b'!' if two == b'~' => (Tok::NeqRegex, 2),
            b'<' if two == b'=' => (Tok::Lte, 2),
            b'<' => (Tok::Lss, 1),
            b'>' if two == b'=' => (Tok::Gte, 2),
            b'>' => (Tok::Gtr, 1),
            b'+' => (Tok::Add, 1),
            b'-' => (Tok::Sub, 1),
            b'*' => (Tok::Mul, 1),
            b'/' => (Tok::Div, 1),
            b'%' => (Tok::Mod, 1),
            b'^' => (Tok::Pow, 1),
            b'"' | b'\'' | b'`' => {
                let (s, n) = lex_string(input, i)?;
                (Tok::Str(s), n)
            }
            b'0'..=b'9' | b'.' => {
                let (t, n) = lex_number(input, i)?;
                (t, n)
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b':')
                {
                    j += 1;
                }
                let word = &input[i..j];
                let lower = word.to_ascii_lowercase();
                if lower == "inf" || lower == "nan" {
                    let v = if lower == "inf" {
                        f64::INFINITY
                    } else {
                        f64::NAN
                    };
                    (Tok::Number(v), j - i)
                } else if is_case_insensitive_keyword(&lower) {
                    // Keywords and aggregation operators are case-insensitive in PromQL.
                    (Tok::Ident(lower), j - i)
                } else {
                    (Tok::Ident(word.to_string()), j - i)
                }
            }
            _ => {
                let ch = input[i..].chars().next().unwrap_or('?');
                return Err(ParseError::at(
                    input,
                    i,
                    format!("unexpected character: '{ch}'"),
                ));
            }
        };
        i += len;
        out.push(Token { tok, start, end: i });
    }
    out.push(Token {
        tok: Tok::Eof,
        start: b.len(),
        end: b.len(),
    });
    Ok(out)
}

fn is_case_insensitive_keyword(w: &str) -> bool {
    matches!(
        w,
        "and"
            | "or"
            | "unless"
            | "atan2"
            | "by"
            | "without"
            | "on"
            | "ignoring"
            | "group_left"
            | "group_right"
            | "bool"
            | "offset"
            | "sum"
            | "avg"
            | "min"
            | "max"
            | "count"
            | "group"
            | "stddev"
            | "stdvar"
            | "topk"
            | "bottomk"
            | "quantile"
            | "count_values"
    )
}

fn lex_string(input: &str, start: usize) -> Result<(String, usize), ParseError> {
    let b = input.as_bytes();
    let q = b[start];
    let mut out = String::new();
    let mut i = start + 1;
    loop {
        let Some(c) = input[i..].chars().next() else {
            return Err(ParseError::at(
                input,
                start,
                "unterminated quoted string".into(),
            ));
        };
        if c as u32 == q as u32 {
            return Ok((out, i + 1 - start));
        }
        if c == '\\' && q != b'`' {
            i += 1;
            let Some(e) = input[i..].chars().next() else {
                return Err(ParseError::at(
                    input,
                    start,
                    "unterminated quoted string".into(),
                ));
            };
            i += e.len_utf8();
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'a' => out.push('\x07'),
                'b' => out.push('\x08'),
                'f' => out.push('\x0c'),
                'v' => out.push('\x0b'),
                '\\' | '"' | '\'' => out.push(e),
                'x' | 'u' | 'U' => {
                    let n = match e {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex = input.get(i..i + n).unwrap_or("");
                    let v = u32::from_str_radix(hex, 16).ok().filter(|_| hex.len() == n);
                    let Some(v) = v else {
                        return Err(ParseError::at(input, i, "invalid escape sequence".into()));
                    };
                    i += n;
                    if e == 'x' {
                        // A \x escape is a raw byte; only ASCII can be kept in a Rust string.
                        // Bytes above ASCII cannot live in a Rust string on their own: they
                        // become private-use markers that the engine reports as invalid UTF-8.
                        if v < 0x80 {
                            out.push(v as u8 as char);
                        } else {
                            out.push(char::from_u32(0x10FF00 + v).unwrap_or('\u{FFFD}'));
                        }
                    } else {
                        match char::from_u32(v) {
                            Some(ch) => out.push(ch),
                            None => {
                                return Err(ParseError::at(
                                    input,
                                    i,
                                    "invalid unicode escape".into(),
                                ))
                            }
                        }
                    }
                }
                '0'..='7' => {
                    let oct = input.get(i - 1..i + 2).unwrap_or("");
                    match u32::from_str_radix(oct, 8) {
                        Ok(v) if oct.len() == 3 && v < 0x80 => out.push(v as u8 as char),
                        _ => {
                            return Err(ParseError::at(input, i, "invalid escape sequence".into()))
                        }
                    }
                    i += 2;
                }
                _ => {
                    return Err(ParseError::at(
                        input,
                        i,
                        format!("unknown escape sequence '{e}'"),
                    ))
                }
            }
            continue;
        }
        if c == '\n' && q != b'`' {
            return Err(ParseError::at(
                input,
                start,
                "unterminated quoted string".into(),
            ));
        }
        out.push(c);
        i += c.len_utf8();
    }
}

const UNITS: [(&str, i64); 7] = [
    ("ms", 1),
    ("s", 1000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 7 * 86_400_000),
    ("y", 365 * 86_400_000),
];

/// Parses a duration like `1h30m` (no sign, no fraction); None if malformed.
pub fn parse_duration(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: i64 = 0;
    let mut last_unit = usize::MAX;
    if b.is_empty() {
        return None;
    }
    while i < b.len() {
        let ds = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if ds == i {
            return None;
        }
        let n: i64 = s[ds..i].parse().ok()?;
        let us = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[us..i];
        let idx = UNITS.iter().position(|(u, _)| *u == unit)?;
        // Units must go from largest to smallest, each at most once.
        if last_unit != usize::MAX && idx >= last_unit {
            return None;
        }
        last_unit = idx;
        total = total.checked_add(n.checked_mul(UNITS[idx].1)?)?;
    }
    Some(total)
}

fn lex_number(input: &str, start: usize) -> Result<(Tok, usize), ParseError> {
    let b = input.as_bytes();
    let mut j = start;
    // Greedy scan of anything that can belong to a number or duration literal.
    if b[j] == b'0' && j + 1 < b.len() && (b[j + 1] == b'x' || b[j + 1] == b'X') {
        j += 2;
        while j < b.len() && (b[j].is_ascii_hexdigit() || b[j] == b'_') {
            j += 1;
        }
        let digits: String = input[start + 2..j].chars().filter(|c| *c != '_').collect();
        return match u64::from_str_radix(&digits, 16) {
            Ok(v) => Ok((Tok::Number(v as f64), j - start)),
            Err(_) => Err(ParseError::at(
                input,
                start,
                format!("bad number or duration syntax: \"{}\"", &input[start..j]),
            )),
        };
    }
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'.' || b[j] == b'_') {
        // Allow a sign only right after an exponent marker.
        j += 1;
        if j < b.len()
            && (b[j] == b'+' || b[j] == b'-')
            && (b[j - 1] == b'e' || b[j - 1] == b'E')
            && input[start..j - 1]
                .bytes()
                .all(|c| c.is_ascii_digit() || c == b'.' || c == b'_')
        {
            j += 1;
        }
    }
    let text = &input[start..j];
    let bad = || {
        ParseError::at(
            input,
            start,
            format!("bad number or duration syntax: \"{text}\""),
        )
    };
    // Underscores only between digits.
    if text.contains('_') {
        let tb = text.as_bytes();
        for (k, &c) in tb.iter().enumerate() {
            if c == b'_'
                && !(k > 0
                    && tb[k - 1].is_ascii_digit()
                    && k + 1 < tb.len()
                    && tb[k + 1].is_ascii_digit())
            {
                return Err(bad());
            }
        }
    }
    let clean: String = text.chars().filter(|c| *c != '_').collect();
    if clean.bytes().all(|c| c.is_ascii_digit() || c == b'.')
        || clean.bytes().any(|c| c == b'e' || c == b'E')
            && !clean
                .bytes()
                .any(|c| matches!(c, b's' | b'm' | b'h' | b'd' | b'w' | b'y'))
    {
        return clean
            .parse::<f64>()
            .map(|v| (Tok::Number(v), j - start))
            .map_err(|_| bad());
    }
    match parse_duration(&clean) {
        Some(d) => Ok((Tok::Duration(d), j - start)),
        None => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_descending_units() {
        assert_eq!(parse_duration("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration("5m1ms"), Some(300_001));
        assert_eq!(parse_duration("1m1h"), None);
        assert_eq!(parse_duration("1.5m"), None);
    }

    #[test]
    fn numbers_accept_hex_exponents_and_underscores() {
        let t = lex("0x1F 1e3 1_000 .5 2.").unwrap();
        let v: Vec<_> = t.iter().map(|t| t.tok.clone()).collect();
        assert_eq!(
            v,
            vec![
                Tok::Number(31.0),
                Tok::Number(1000.0),
                Tok::Number(1000.0),
                Tok::Number(0.5),
                Tok::Number(2.0),
                Tok::Eof
            ]
        );
    }
}
