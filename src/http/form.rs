//! `application/x-www-form-urlencoded` and query-string decoding.
//!
//! Behaves like Go's `url.ParseQuery`, which Prometheus uses: pairs split on `&`, `+` is a
//! space, `%XX` escapes are decoded, a bad escape is an error (Prometheus answers 400), a pair
//! without `=` has an empty value, empty pairs are skipped, repeated names are kept in order.

/// Why a form or query string could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormError {
    /// `%` not followed by two hex digits; carries the offending text.
    BadEscape(String),
    /// The decoded bytes are not UTF-8.
    InvalidUtf8,
    /// A `;` separator, which Go rejects since 1.17 (it used to mean `&`).
    Semicolon,
}

impl std::fmt::Display for FormError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FormError::BadEscape(s) => write!(f, "invalid URL escape {s:?}"),
            FormError::InvalidUtf8 => f.write_str("invalid UTF-8 in form data"),
            FormError::Semicolon => f.write_str("invalid semicolon separator in query"),
        }
    }
}

impl std::error::Error for FormError {}

/// Decodes a form body or query string into (name, value) pairs, in order.
pub fn parse_urlencoded(s: &str) -> Result<Vec<(String, String)>, FormError> {
    let mut out = Vec::new();
    for pair in s.split('&') {
        if pair.is_empty() {
            continue;
        }
        if pair.contains(';') {
            return Err(FormError::Semicolon);
        }
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.push((decode(n, true)?, decode(v, true)?));
    }
    Ok(out)
}

/// Decodes `%XX` escapes (not `+`), as for a URL path.
pub fn percent_decode(s: &str) -> Result<String, FormError> {
    decode(s, false)
}

fn decode(s: &str, plus_is_space: bool) -> Result<String, FormError> {
    if !s.bytes().any(|b| b == b'%' || (plus_is_space && b == b'+')) {
        return Ok(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (
                    b.get(i + 1).and_then(|&c| hex(c)),
                    b.get(i + 2).and_then(|&c| hex(c)),
                ) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => {
                        let end = (i + 3).min(b.len());
                        return Err(FormError::BadEscape(
                            String::from_utf8_lossy(&b[i..end]).into_owned(),
                        ));
                    }
                }
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| FormError::InvalidUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &str) -> Vec<(String, String)> {
        parse_urlencoded(s).unwrap()
    }

    #[test]
    fn decodes_plus_escapes_and_keeps_repeated_names_in_order() {
        assert_eq!(
            pairs("query=rate(x%5B5m%5D)+%2B+1&match[]=a&&match[]=b&flag"),
            vec![
                ("query".into(), "rate(x[5m]) + 1".into()),
                ("match[]".into(), "a".into()),
                ("match[]".into(), "b".into()),
                ("flag".into(), String::new()),
            ]
        );
    }

    #[test]
    fn bad_escapes_and_semicolons_are_errors() {
        assert_eq!(
            parse_urlencoded("q=%zz"),
            Err(FormError::BadEscape("%zz".into()))
        );
        assert_eq!(
            parse_urlencoded("q=%4"),
            Err(FormError::BadEscape("%4".into()))
        );
        assert_eq!(parse_urlencoded("a=1;b=2"), Err(FormError::Semicolon));
        assert_eq!(parse_urlencoded("q=%ff"), Err(FormError::InvalidUtf8));
    }

    #[test]
    fn path_decoding_keeps_plus() {
        assert_eq!(percent_decode("/a+b%20c").unwrap(), "/a+b c");
        assert_eq!(percent_decode("%C3%A9").unwrap(), "é");
    }
}
