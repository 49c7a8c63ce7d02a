//! The series value notation of promqltest `load` blocks and promtool `input_series`:
//! `metric{a="b"}` selectors and `1+2x3 _ stale _x2` value lists.
//!
//! Owns: expanding that notation into labels and per-step values. Used by `promlet test rules`
//! and by the promqltest conformance runner (tests/promqltest.rs). Must not touch: storage.
//! Native histograms (`{{…}}`) are not supported: they give the error "histogram".

use crate::model::{stale_nan, Labels};
use crate::promql::lexer::{lex, Tok};

pub fn parse_number(s: &str) -> Option<f64> {
    let l = s.to_ascii_lowercase();
    let (neg, body) = match l.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, l.strip_prefix('+').unwrap_or(&l)),
    };
    let v = match body {
        "inf" => f64::INFINITY,
        "nan" => f64::NAN,
        b if b.starts_with("0x") => i64::from_str_radix(&b[2..], 16).ok()? as f64,
        b if b.starts_with("0o") => i64::from_str_radix(&b[2..], 8).ok()? as f64,
        b if b.starts_with("0b") => i64::from_str_radix(&b[2..], 2).ok()? as f64,
        b => b.parse::<f64>().ok()?,
    };
    Some(if neg { -v } else { v })
}

/// Splits `metric{labels} values...` into the label set and the rest of the line.
pub fn parse_series(line: &str) -> Result<(Labels, String), String> {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'{' {
        i += 1;
    }
    if i < b.len() && b[i] == b'{' {
        let mut in_q = false;
        let mut esc = false;
        while i < b.len() {
            let c = b[i];
            i += 1;
            if esc {
                esc = false;
                continue;
            }
            match c {
                b'\\' if in_q => esc = true,
                b'"' => in_q = !in_q,
                b'}' if !in_q => break,
                _ => {}
            }
        }
    }
    let metric = &line[..i];
    let rest = line[i..].trim().to_string();
    let toks = lex(metric).map_err(|e| e.to_string())?;
    let mut labels = Labels::new();
    let mut k = 0;
    // Past the end reads as Eof, so malformed input is an error, never an index panic.
    let tok = |i: usize| toks.get(i).map(|t| &t.tok).unwrap_or(&Tok::Eof);
    if let Tok::Ident(n) = tok(0) {
        labels.set("__name__".into(), n.clone());
        k = 1;
    }
    if *tok(k) == Tok::LBrace {
        k += 1;
        loop {
            match tok(k) {
                Tok::RBrace => break,
                Tok::Comma => k += 1,
                Tok::Ident(n) | Tok::Str(n) if *tok(k + 1) == Tok::Assign => {
                    let Tok::Str(v) = tok(k + 2) else {
                        return Err(format!("bad label value in {metric}"));
                    };
                    labels.set(n.clone(), v.clone());
                    k += 3;
                }
                Tok::Str(n) => {
                    labels.set("__name__".into(), n.clone());
                    k += 1;
                }
                t => return Err(format!("unexpected {t:?} in {metric}")),
            }
        }
    }
    Ok((labels, rest))
}

/// Expands the value notation (`1+2x3 _ stale _x2 ...`). Histograms give Err("histogram").
pub fn parse_values(s: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for item in s.split_whitespace() {
        if item.contains("{{") || item.contains("}}") {
            return Err("histogram".into());
        }
        if item == "_" {
            out.push(None);
            continue;
        }
        if let Some(n) = item.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|_| format!("bad item {item}"))?;
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        if item == "stale" {
            out.push(Some(stale_nan()));
            continue;
        }
        if let Some(n) = item.strip_prefix("stalex") {
            let n: usize = n.parse().map_err(|_| format!("bad item {item}"))?;
            out.extend(std::iter::repeat_n(Some(stale_nan()), n + 1));
            continue;
        }
        // a[+-]bxN or axN or a
        let (head, times) = match item.rfind('x') {
            Some(p) if item[p + 1..].bytes().all(|c| c.is_ascii_digit()) && p + 1 < item.len() => (
                &item[..p],
                Some(item[p + 1..].parse::<usize>().map_err(|e| e.to_string())?),
            ),
            _ => (item, None),
        };
        let hb = head.as_bytes();
        let mut split = None;
        for j in 1..hb.len() {
            if (hb[j] == b'+' || hb[j] == b'-') && !matches!(hb[j - 1], b'e' | b'E') {
                split = Some(j);
            }
        }
        match (split, times) {
            (Some(j), Some(n)) => {
                let a = parse_number(&head[..j]).ok_or(format!("bad number in {item}"))?;
                let d = parse_number(&head[j + 1..]).ok_or(format!("bad number in {item}"))?;
                let d = if hb[j] == b'-' { -d } else { d };
                let mut v = a;
                for _ in 0..=n {
                    out.push(Some(v));
                    v += d;
                }
            }
            (None, Some(n)) => {
                let a = parse_number(head).ok_or(format!("bad number in {item}"))?;
                out.extend(std::iter::repeat_n(Some(a), n + 1));
            }
            (None, None) => out.push(Some(parse_number(head).ok_or(format!("bad item {item}"))?)),
            (Some(_), None) => return Err(format!("bad item {item}")),
        }
    }
    Ok(out)
}
