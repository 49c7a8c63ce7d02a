//! PromQL parser: precedence climbing over the token stream, with Prometheus's type checks.
//!
//! Owns: grammar, operator precedence and associativity, static type checking, positioned
//! errors. Must not touch: evaluation.

use super::ast::*;
use super::functions::{self, Function};
use super::lexer::{lex, Tok, Token};
use super::ParseError;
use crate::model::{MatchOp, Matcher, METRIC_NAME};

/// Parses and type-checks a PromQL expression.
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    let toks = lex(input)?;
    let mut p = Parser {
        input,
        toks,
        pos: 0,
        parens: 0,
        in_braces: false,
        depth: 0,
        nodes: 0,
    };
    if p.peek() == &Tok::Eof {
        let mut e = ParseError::at(input, 0, "no expression found in input".into());
        if input.is_empty() {
            (e.line, e.col) = (0, 0);
        }
        return Err(e);
    }
    let e = p.expr(0)?;
    if p.peek() != &Tok::Eof {
        return Err(p.unexpected());
    }
    Ok(e)
}

/// Parses a series selector as used by `match[]` parameters (no offsets or ranges).
pub fn parse_selector(input: &str) -> Result<Vec<Matcher>, ParseError> {
    match parse(input)? {
        Expr::Vector(vs) if vs.offset == 0 && vs.at.is_none() => Ok(vs.matchers),
        _ => Err(ParseError::at(
            input,
            0,
            "expected a series selector".into(),
        )),
    }
}

struct Parser<'a> {
    input: &'a str,
    toks: Vec<Token>,
    pos: usize,
    /// Open parentheses, for Prometheus's "unclosed left parenthesis" at end of input.
    parens: usize,
    /// Inside a selector's `{...}`: Prometheus's lexer words an end of input there itself.
    in_braces: bool,
    /// Current recursion depth and operator count: both bound how deep the parser, the
    /// evaluator and the tree's drop may recurse, so a hostile query cannot blow the stack.
    depth: usize,
    nodes: usize,
}

/// Deepest nesting of sub-expressions a query may have.
pub const MAX_DEPTH: usize = 200;
/// Most operators, calls and aggregations a query may have.
pub const MAX_NODES: usize = 1000;

fn binop_of(t: &Tok) -> Option<BinOp> {
    Some(match t {
        Tok::Add => BinOp::Add,
        Tok::Sub => BinOp::Sub,
        Tok::Mul => BinOp::Mul,
        Tok::Div => BinOp::Div,
        Tok::Mod => BinOp::Mod,
        Tok::Pow => BinOp::Pow,
        Tok::Eql => BinOp::Eql,
        Tok::Neq => BinOp::Neq,
        Tok::Gtr => BinOp::Gtr,
        Tok::Lss => BinOp::Lss,
        Tok::Gte => BinOp::Gte,
        Tok::Lte => BinOp::Lte,
        Tok::Ident(s) => match s.as_str() {
            "and" => BinOp::And,
            "or" => BinOp::Or,
            "unless" => BinOp::Unless,
            "atan2" => BinOp::Atan2,
            _ => return None,
        },
        _ => return None,
    })
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)].tok
    }
    fn peek_at(&self, k: usize) -> &Tok {
        &self.toks[(self.pos + k).min(self.toks.len() - 1)].tok
    }
    fn start(&self) -> usize {
        self.toks[self.pos.min(self.toks.len() - 1)].start
    }
    fn prev_end(&self) -> usize {
        if self.pos == 0 {
            0
        } else {
            self.toks[(self.pos - 1).min(self.toks.len() - 1)].end
        }
    }
    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        match t {
            Tok::LParen => self.parens += 1,
            Tok::RParen => self.parens = self.parens.saturating_sub(1),
            _ => {}
        }
        // Advances past the end too, so that `pos -= 1` after reading Eof stays on Eof.
        self.pos += 1;
        t
    }
    fn err(&self, at: usize, msg: impl Into<String>) -> ParseError {
        ParseError::at(self.input, at, msg.into())
    }
    fn unexpected(&self) -> ParseError {
        self.unexpected_in("")
    }

    /// Like Prometheus: `unexpected <token>[ in <context>, expected <what>]`.
    fn unexpected_in(&self, context: &str) -> ParseError {
        let t = &self.toks[self.pos.min(self.toks.len() - 1)];
        let msg = match &t.tok {
            // Prometheus's lexer reports stray closing brackets itself.
            Tok::RBrace => return self.err(t.start, "unexpected character: '}'"),
            Tok::RParen if self.parens == 0 => {
                return self.err(t.end, "unexpected right parenthesis ')'")
            }
            Tok::RBracket => return self.err(t.start, "unexpected right bracket ']'"),
            Tok::Eof if self.in_braces => {
                return self.err(t.start, "unexpected end of input inside braces")
            }
            Tok::Eof if self.parens > 0 && context.is_empty() => {
                "unclosed left parenthesis".to_string()
            }
            Tok::Eof => "unexpected end of input".to_string(),
            Tok::Ident(s) => format!("unexpected identifier \"{s}\""),
            Tok::Number(_) | Tok::Duration(_) => {
                format!("unexpected number \"{}\"", &self.input[t.start..t.end])
            }
            Tok::Str(_) => format!(
                "unexpected string {}",
                super::engine::go_quote(&self.input[t.start..t.end])
            ),
            other => format!("unexpected \"{}\"", other.describe()),
        };
        self.err(t.start, format!("{msg}{context}"))
    }
    fn expect(&mut self, t: Tok) -> Result<(), ParseError> {
        if *self.peek() == t {
            self.next();
            return Ok(());
        }
        // Prometheus's wording for input that ends inside a bracket pair.
        if *self.peek() == Tok::Eof {
            let msg = match t {
                Tok::RParen => Some("unclosed left parenthesis"),
                Tok::RBracket => Some("unclosed left bracket"),
                Tok::RBrace => Some("unexpected end of input inside braces"),
                _ => None,
            };
            if let Some(m) = msg {
                return Err(self.err(self.start(), m));
            }
        }
        Err(self.unexpected())
    }
    fn is_ident(&self, s: &str) -> bool {
        matches!(self.peek(), Tok::Ident(i) if i == s)
    }

    fn expr(&mut self, min_prec: u8) -> Result<Expr, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(
                self.start(),
                format!("expression nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        let r = self.expr_inner(min_prec);
        self.depth -= 1;
        r
    }

    /// Counts a composite node; fails past [`MAX_NODES`].
    fn count_node(&mut self) -> Result<(), ParseError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(self.err(
                self.start(),
                format!("query has more than {MAX_NODES} operators"),
            ));
        }
        Ok(())
    }

    fn expr_inner(&mut self, min_prec: u8) -> Result<Expr, ParseError> {
        let mut lhs = self.unary()?;
        while let Some(op) = binop_of(self.peek()) {
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            let op_pos = self.start();
            self.next();
            let mut return_bool = false;
            if self.is_ident("bool") {
                self.next();
                return_bool = true;
            }
            let mut matching: Option<VectorMatching> = None;
            if self.is_ident("on") || self.is_ident("ignoring") {
                let on = self.is_ident("on");
                self.next();
                let labels = self.label_list()?;
                matching = Some(VectorMatching {
                    card: Cardinality::OneToOne,
                    labels,
                    on,
                    include: vec![],
                    explicit: true,
                });
            }
            if self.is_ident("group_left") || self.is_ident("group_right") {
                let left = self.is_ident("group_left");
                let gpos = self.start();
                self.next();
                let include = if *self.peek() == Tok::LParen {
                    self.label_list()?
                } else {
                    vec![]
                };
                let m = matching.get_or_insert(VectorMatching {
                    card: Cardinality::OneToOne,
                    labels: vec![],
                    on: false,
                    include: vec![],
                    explicit: false,
                });
                if !m.explicit {
                    return Err(self.err(gpos, "unexpected <group_left/group_right>: grouping modifiers need on() or ignoring()".to_string()));
                }
                m.card = if left {
                    Cardinality::ManyToOne
                } else {
                    Cardinality::OneToMany
                };
                m.include = include;
            }
            // `^` is right-associative, everything else left-associative.
            let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs = self.expr(next_min)?;
            self.count_node()?;
            lhs = self.binary(op, lhs, rhs, return_bool, matching, op_pos)?;
        }
        Ok(lhs)
    }

    fn binary(
        &self,
        op: BinOp,
        lhs: Expr,
        rhs: Expr,
        return_bool: bool,
        mut matching: Option<VectorMatching>,
        op_pos: usize,
    ) -> Result<Expr, ParseError> {
        let lt = lhs.value_type();
        let rt = rhs.value_type();
        let span = Span {
            start: lhs.span().start,
            end: rhs.span().end,
        };
        let at = span.start;
        if return_bool && !op.is_comparison() {
            return Err(self.err(
                op_pos,
                "bool modifier can only be used on comparison operators",
            ));
        }
        for t in [lt, rt] {
            if t != ValueType::Scalar && t != ValueType::Vector {
                return Err(self.err(
                    at,
                    "binary expression must contain only scalar and instant vector types",
                ));
            }
        }
        let both_vectors = lt == ValueType::Vector && rt == ValueType::Vector;
        if op.is_comparison() && lt == ValueType::Scalar && rt == ValueType::Scalar && !return_bool
        {
            return Err(self.err(op_pos, "comparisons between scalars must use BOOL modifier"));
        }
        if op.is_set() {
            if !both_vectors {
                return Err(self.err(
                    at,
                    format!(
                        "set operator \"{}\" not allowed in binary scalar expression",
                        op.as_str()
                    ),
                ));
            }
            if let Some(m) = &matching {
                if m.card == Cardinality::ManyToOne || m.card == Cardinality::OneToMany {
                    return Err(self.err(
                        at,
                        format!("no grouping allowed for \"{}\" operation", op.as_str()),
                    ));
                }
            }
        }
        if matching.is_some() && !both_vectors {
            return Err(self.err(at, "vector matching only allowed between instant vectors"));
        }
        if both_vectors {
            let m = matching.get_or_insert(VectorMatching {
                card: Cardinality::OneToOne,
                labels: vec![],
                on: false,
                include: vec![],
                explicit: false,
            });
            if op.is_set() {
                m.card = Cardinality::ManyToMany;
            }
            if m.on {
                for l in &m.include {
                    if m.labels.contains(l) {
                        return Err(self.err(
                            at,
                            format!("label \"{l}\" must not occur in ON and GROUP clause at once"),
                        ));
                    }
                }
            }
        }
        Ok(Expr::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
            return_bool,
            matching,
            span,
        })
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        match self.peek() {
            Tok::Sub | Tok::Add => {
                let neg = *self.peek() == Tok::Sub;
                let start = self.start();
                self.next();
                self.count_node()?;
                // Unary operators bind like `*`: tighter than `+`, looser than `^`.
                let e = self.expr(BinOp::Pow.precedence())?;
                let t = e.value_type();
                if t != ValueType::Scalar && t != ValueType::Vector {
                    return Err(self.err(
                        start,
                        format!(
                            "unary expression only allowed on expressions of type scalar or instant vector, got \"{}\"",
                            t.name()
                        ),
                    ));
                }
                let span = Span {
                    start,
                    end: e.span().end,
                };
                if !neg {
                    return Ok(e);
                }
                Ok(match e {
                    Expr::Number(v, _) => Expr::Number(-v, span),
                    e => Expr::Neg(Box::new(e), span),
                })
            }
            _ => {
                let p = self.primary()?;
                self.postfix(p)
            }
        }
    }

    fn duration(&mut self) -> Result<i64, ParseError> {
        match self.next() {
            Tok::Duration(d) => Ok(d),
            Tok::Number(v) if v.is_finite() && v >= 0.0 => Ok((v * 1000.0).round() as i64),
            _ => {
                self.pos -= 1;
                Err(self.unexpected())
            }
        }
    }

    fn postfix(&mut self, mut e: Expr) -> Result<Expr, ParseError> {
        loop {
            match self.peek().clone() {
                Tok::LBracket => {
                    let bpos = self.start();
                    self.next();
                    let range = self.duration()?;
                    if *self.peek() == Tok::Colon {
                        self.next();
                        self.count_node()?;
                        let step = if *self.peek() == Tok::RBracket {
                            None
                        } else {
                            Some(self.duration()?)
                        };
                        self.expect(Tok::RBracket)?;
                        let t = e.value_type();
                        if t != ValueType::Vector {
                            return Err(self.err(
                                bpos,
                                format!(
                                    "subquery is only allowed on instant vector, got {} instead",
                                    t.name()
                                ),
                            ));
                        }
                        if range <= 0 {
                            return Err(self.err(bpos, "subquery range must be positive"));
                        }
                        if step == Some(0) {
                            return Err(self.err(bpos, "zero step in subquery"));
                        }
                        let span = Span {
                            start: e.span().start,
                            end: self.prev_end(),
                        };
                        e = Expr::Subquery {
                            expr: Box::new(e),
                            range,
                            step,
                            offset: 0,
                            at: None,
                            span,
                        };
                    } else {
                        self.expect(Tok::RBracket)?;
                        let vs = match e {
                            Expr::Vector(vs) if vs.offset == 0 && vs.at.is_none() => vs,
                            Expr::Vector(_) => {
                                return Err(
                                    self.err(bpos, "no offset or @ modifiers allowed before range")
                                )
                            }
                            _ => {
                                return Err(
                                    self.err(bpos, "ranges only allowed for vector selectors")
                                )
                            }
                        };
                        if range <= 0 {
                            return Err(self.err(bpos, "range must be positive"));
                        }
                        let span = Span {
                            start: vs.span.start,
                            end: self.prev_end(),
                        };
                        e = Expr::Matrix { vs, range, span };
                    }
                }
                Tok::Ident(s) if s == "offset" => {
                    let opos = self.start();
                    self.next();
                    let sign = match self.peek() {
                        Tok::Sub => {
                            self.next();
                            -1
                        }
                        Tok::Add => {
                            self.next();
                            1
                        }
                        _ => 1,
                    };
                    let d = self.duration().map_err(|_| {
                        self.unexpected_in(" in offset, expected number or duration")
                    })? * sign;
                    let end = self.prev_end();
                    let slot = match &mut e {
                        Expr::Vector(vs) => &mut vs.offset,
                        Expr::Matrix { vs, .. } => &mut vs.offset,
                        Expr::Subquery { offset, .. } => offset,
                        _ => {
                            return Err(self.err(opos, "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery"))
                        }
                    };
                    if *slot != 0 {
                        return Err(self.err(opos, "offset may not be set multiple times"));
                    }
                    *slot = d;
                    set_end(&mut e, end);
                }
                Tok::At => {
                    let apos = self.start();
                    self.next();
                    let at = match self.next() {
                        Tok::Number(v) => AtModifier::Time(secs_to_ms(v, self, apos)?),
                        Tok::Duration(d) => AtModifier::Time(d),
                        Tok::Sub => match self.next() {
                            Tok::Number(v) => AtModifier::Time(secs_to_ms(-v, self, apos)?),
                            Tok::Duration(d) => AtModifier::Time(-d),
                            _ => {
                                self.pos -= 1;
                                return Err(self.unexpected());
                            }
                        },
                        Tok::Add => match self.next() {
                            Tok::Number(v) => AtModifier::Time(secs_to_ms(v, self, apos)?),
                            _ => {
                                self.pos -= 1;
                                return Err(self.unexpected());
                            }
                        },
                        Tok::Ident(s) if s == "start" || s == "end" => {
                            self.expect(Tok::LParen)?;
                            self.expect(Tok::RParen)?;
                            if s == "start" {
                                AtModifier::Start
                            } else {
                                AtModifier::End
                            }
                        }
                        _ => {
                            self.pos -= 1;
                            return Err(self.unexpected_in(" in @, expected timestamp"));
                        }
                    };
                    let end = self.prev_end();
                    let slot = match &mut e {
                        Expr::Vector(vs) => &mut vs.at,
                        Expr::Matrix { vs, .. } => &mut vs.at,
                        Expr::Subquery { at, .. } => at,
                        _ => {
                            return Err(self.err(apos, "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery"))
                        }
                    };
                    if slot.is_some() {
                        return Err(self.err(apos, "@ <timestamp> may not be set multiple times"));
                    }
                    *slot = Some(at);
                    set_end(&mut e, end);
                }
                _ => return Ok(e),
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let start = self.start();
        match self.peek().clone() {
            Tok::Number(v) => {
                self.next();
                Ok(Expr::Number(
                    v,
                    Span {
                        start,
                        end: self.prev_end(),
                    },
                ))
            }
            Tok::Duration(d) => {
                self.next();
                Ok(Expr::Number(
                    d as f64 / 1000.0,
                    Span {
                        start,
                        end: self.prev_end(),
                    },
                ))
            }
            Tok::Str(s) => {
                self.next();
                Ok(Expr::Str(
                    s,
                    Span {
                        start,
                        end: self.prev_end(),
                    },
                ))
            }
            Tok::LParen => {
                self.next();
                self.count_node()?;
                let e = self.expr(0)?;
                self.expect(Tok::RParen)?;
                Ok(Expr::Paren(
                    Box::new(e),
                    Span {
                        start,
                        end: self.prev_end(),
                    },
                ))
            }
            Tok::LBrace => self.selector(None, start),
            Tok::Ident(name) => {
                if let Some(op) = AggOp::from_name(&name) {
                    if matches!(self.peek_at(1), Tok::LParen)
                        || matches!(self.peek_at(1), Tok::Ident(k) if k == "by" || k == "without")
                    {
                        self.next();
                        return self.aggregate(op, start);
                    }
                }
                if matches!(self.peek_at(1), Tok::LParen) {
                    if let Some(f) = functions::lookup(&name) {
                        self.next();
                        return self.call(f, start);
                    }
                    // Prometheus names an unknown function only once its call parsed, so
                    // errors inside the call (an unclosed parenthesis) come first.
                    if functions::UNSUPPORTED.contains(&name.as_str()) {
                        self.next();
                        self.call_args()?;
                        return Err(self.err(
                            start,
                            format!("function \"{name}\" is not supported (native histograms and experimental functions are out of scope)"),
                        ));
                    }
                    if !is_keyword(&name) {
                        self.next();
                        self.call_args()?;
                        return Err(
                            self.err(start, format!("unknown function with name \"{name}\""))
                        );
                    }
                }
                if is_keyword(&name) {
                    return Err(self.unexpected());
                }
                self.next();
                self.selector(Some(name), start)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn label_name(&mut self) -> Result<String, ParseError> {
        match self.next() {
            Tok::Ident(s) if !s.contains(':') => Ok(s),
            Tok::Str(s) => Ok(s),
            // `inf`/`nan` lex as numbers but are fine label names.
            Tok::Number(_) => {
                let t = &self.toks[self.pos - 1];
                let text = &self.input[t.start..t.end];
                if text.bytes().all(|c| c.is_ascii_alphabetic()) {
                    Ok(text.to_string())
                } else {
                    self.pos -= 1;
                    Err(self.unexpected())
                }
            }
            _ => {
                self.pos -= 1;
                Err(self.unexpected())
            }
        }
    }

    /// `(a, b, "c")`, trailing comma allowed.
    fn label_list(&mut self) -> Result<Vec<String>, ParseError> {
        self.expect(Tok::LParen)?;
        let mut out = Vec::new();
        loop {
            if *self.peek() == Tok::RParen {
                self.next();
                return Ok(out);
            }
            out.push(self.label_name()?);
            match self.peek() {
                Tok::Comma => {
                    self.next();
                }
                Tok::RParen => {}
                _ => return Err(self.unexpected_in(" in grouping opts, expected \",\" or \")\"")),
            }
        }
    }

    fn selector(&mut self, name: Option<String>, start: usize) -> Result<Expr, ParseError> {
        let mut matchers = Vec::new();
        let mut metric_name = name.clone();
        if let Some(n) = &name {
            matchers.push(self.matcher(MatchOp::Equal, METRIC_NAME, n.clone(), start)?);
        }
        if *self.peek() == Tok::LBrace {
            self.next();
            self.in_braces = true;
            loop {
                if *self.peek() == Tok::RBrace {
                    self.next();
                    self.in_braces = false;
                    break;
                }
                let lpos = self.start();
                // A lone quoted string is the metric name (Prometheus 3 UTF-8 syntax).
                if let Tok::Str(s) = self.peek().clone() {
                    if matches!(self.peek_at(1), Tok::Comma | Tok::RBrace) {
                        self.next();
                        if metric_name.is_some() {
                            return Err(self.err(lpos, "metric name must not be set twice"));
                        }
                        metric_name = Some(s.clone());
                        matchers.push(self.matcher(MatchOp::Equal, METRIC_NAME, s, lpos)?);
                        if *self.peek() == Tok::Comma {
                            self.next();
                        }
                        continue;
                    }
                }
                let lname = self.label_name()?;
                let op = match self.next() {
                    Tok::Assign => MatchOp::Equal,
                    Tok::Neq => MatchOp::NotEqual,
                    Tok::EqlRegex => MatchOp::Regex,
                    Tok::NeqRegex => MatchOp::NotRegex,
                    _ => {
                        self.pos -= 1;
                        return Err(self.unexpected_in(
                            " in label matching, expected label matching operator",
                        ));
                    }
                };
                let value = match self.next() {
                    Tok::Str(s) => s,
                    _ => {
                        self.pos -= 1;
                        return Err(self.unexpected_in(" in label matching, expected string"));
                    }
                };
                if lname == METRIC_NAME && name.is_some() {
                    return Err(self.err(lpos, "metric name must not be set twice"));
                }
                matchers.push(self.matcher(op, &lname, value, lpos)?);
                match self.peek() {
                    Tok::Comma => {
                        self.next();
                    }
                    Tok::RBrace => {}
                    _ => {
                        return Err(
                            self.unexpected_in(" in label matching, expected \",\" or \"}\"")
                        )
                    }
                }
            }
        }
        if matchers.iter().all(|m| m.matches_empty()) {
            return Err(self.err(
                start,
                "vector selector must contain at least one non-empty matcher",
            ));
        }
        Ok(Expr::Vector(VectorSelector {
            name: metric_name,
            matchers,
            offset: 0,
            at: None,
            span: Span {
                start,
                end: self.prev_end(),
            },
        }))
    }

    /// `( expr, ... )` of a function call; a trailing comma is allowed, as in Prometheus.
    fn call_args(&mut self) -> Result<Vec<Expr>, ParseError> {
        self.expect(Tok::LParen)?;
        let mut args = Vec::new();
        if *self.peek() != Tok::RParen {
            loop {
                args.push(self.expr(0)?);
                if *self.peek() == Tok::Comma {
                    self.next();
                    if *self.peek() == Tok::RParen {
                        break;
                    }
                } else {
                    break;
                }
            }
        }
        self.expect(Tok::RParen)?;
        Ok(args)
    }

    fn matcher(
        &self,
        op: MatchOp,
        name: &str,
        value: String,
        pos: usize,
    ) -> Result<Matcher, ParseError> {
        Matcher::new(op, name, value)
            .map_err(|e| self.err(pos, format!("error parsing regexp: {e}")))
    }

    fn aggregate(&mut self, op: AggOp, start: usize) -> Result<Expr, ParseError> {
        self.count_node()?;
        let mut grouping = Vec::new();
        let mut without = false;
        let mut has_grouping = false;
        if self.is_ident("by") || self.is_ident("without") {
            without = self.is_ident("without");
            self.next();
            grouping = self.label_list()?;
            has_grouping = true;
        }
        let mut args = self.call_args()?;
        if !has_grouping && (self.is_ident("by") || self.is_ident("without")) {
            without = self.is_ident("without");
            self.next();
            grouping = self.label_list()?;
            has_grouping = true;
        }
        let want = if op.param_type().is_some() { 2 } else { 1 };
        if args.len() != want {
            return Err(self.err(
                start,
                format!(
                    "wrong number of arguments for aggregate expression provided, expected {want}, got {}",
                    args.len()
                ),
            ));
        }
        let expr = args.pop().unwrap_or(Expr::Number(0.0, Span::default()));
        let param = args.pop();
        if expr.value_type() != ValueType::Vector {
            return Err(self.err(
                expr.span().start,
                format!(
                    "expected type instant vector in aggregation expression, got {}",
                    expr.value_type().name()
                ),
            ));
        }
        if let (Some(p), Some(t)) = (&param, op.param_type()) {
            if p.value_type() != t {
                return Err(self.err(
                    p.span().start,
                    format!(
                        "expected type {} in aggregation parameter, got {}",
                        t.name(),
                        p.value_type().name()
                    ),
                ));
            }
        }
        Ok(Expr::Aggregate {
            op,
            expr: Box::new(expr),
            param: param.map(Box::new),
            grouping,
            without,
            has_grouping,
            span: Span {
                start,
                end: self.prev_end(),
            },
        })
    }

    fn call(&mut self, f: &'static Function, start: usize) -> Result<Expr, ParseError> {
        self.count_node()?;
        let args = self.call_args()?;
        let span = Span {
            start,
            end: self.prev_end(),
        };
        let n = args.len();
        let min = f.args.len() - f.optional;
        let max = if f.variadic { usize::MAX } else { f.args.len() };
        if n < min || n > max {
            let expected = if f.optional > 0 || f.variadic {
                format!("at least {min}")
            } else {
                format!("{min}")
            };
            return Err(self.err(
                start,
                format!(
                    "expected {expected} argument(s) in call to \"{}\", got {n}",
                    f.name
                ),
            ));
        }
        for (i, a) in args.iter().enumerate() {
            let want = f.args[i.min(f.args.len() - 1)];
            let got = a.value_type();
            if got != want {
                return Err(self.err(
                    a.span().start,
                    format!(
                        "expected type {} in call to function \"{}\", got {}",
                        want.name(),
                        f.name,
                        got.name()
                    ),
                ));
            }
        }
        Ok(Expr::Call {
            func: f,
            args,
            span,
        })
    }
}

fn secs_to_ms(v: f64, p: &Parser<'_>, pos: usize) -> Result<i64, ParseError> {
    if !v.is_finite() || v.abs() > 9.2e15 {
        return Err(p.err(pos, "timestamp out of bounds for @ modifier"));
    }
    Ok((v * 1000.0).round() as i64)
}

fn set_end(e: &mut Expr, end: usize) {
    match e {
        Expr::Vector(vs) => vs.span.end = end,
        Expr::Matrix { span, .. } | Expr::Subquery { span, .. } => span.end = end,
        _ => {}
    }
}

fn is_keyword(s: &str) -> bool {
    matches!(
        s,
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
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(q: &str) -> String {
        parse(q)
            .map(|e| e.to_string())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn power_is_right_associative_and_unary_minus_binds_below_it() {
        assert_eq!(rt("2 ^ 3 ^ 2"), "2 ^ 3 ^ 2");
        assert_eq!(rt("1e6 + 0.5 - 1e-7"), "1000000 + 0.5 - 0.0000001");
        assert_eq!(
            rt("a / ignoring(x) group_left(y) b > bool on() c"),
            "a / ignoring (x) group_left (y) b > bool on () c"
        );
        match parse("2 ^ 3 ^ 2").unwrap() {
            Expr::Binary { rhs, .. } => assert!(matches!(*rhs, Expr::Binary { .. })),
            e => panic!("{e:?}"),
        }
        match parse("-a ^ 2").unwrap() {
            Expr::Neg(inner, _) => assert!(matches!(*inner, Expr::Binary { .. })),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn selectors_modifiers_and_subqueries_round_trip() {
        let q = "sum by (job) (rate(foo{a=~\"b.*\", c!=\"d\"}[5m] offset -1m @ 100)) / on(job) group_left(x) bar[10m:1m] @ end()";
        let e = parse(q);
        assert!(e.is_err(), "matrix in binary op must be rejected");
        let q = "sum by (job) (rate(foo{a=~\"b.*\"}[5m] offset -1m @ 100.000))";
        let printed = rt(q);
        assert_eq!(rt(&printed), printed);
        assert!(printed.contains("@ 100.000 offset -1m"), "{printed}");
    }

    #[test]
    fn errors_carry_line_and_column() {
        // Messages as Prometheus 3.5's parser words them (checked against promtool).
        for (q, want) in [
            (
                "foo{a=\"b\"}}",
                "1:11: parse error: unexpected character: '}'",
            ),
            (
                "1 > 2",
                "1:3: parse error: comparisons between scalars must use BOOL modifier",
            ),
            (
                "foo offset",
                "1:11: parse error: unexpected end of input in offset, expected number or duration",
            ),
            ("bad{", "1:5: parse error: unexpected end of input inside braces"),
            ("up{a=", "1:6: parse error: unexpected end of input inside braces"),
            ("up{a=\"b\"", "1:9: parse error: unexpected end of input inside braces"),
            ("up{a=\"b\",", "1:10: parse error: unexpected end of input inside braces"),
            ("{", "1:2: parse error: unexpected end of input inside braces"),
            ("up{a", "1:5: parse error: unexpected end of input inside braces"),
            ("up(", "1:4: parse error: unclosed left parenthesis"),
            ("", "unknown position: parse error: no expression found in input"),
            (" ", "1:1: parse error: no expression found in input"),
            ("up()", "1:1: parse error: unknown function with name \"up\""),
            (
                "up{a \"b\"}",
                "1:6: parse error: unexpected string \"\\\"b\\\"\" in label matching, expected label matching operator",
            ),
            (
                "up{a=b}",
                "1:6: parse error: unexpected identifier \"b\" in label matching, expected string",
            ),
            (
                "up{a=\"b\"=}",
                "1:9: parse error: unexpected \"=\" in label matching, expected \",\" or \"}\"",
            ),
            (
                "up{a=\"b\" or",
                "1:10: parse error: unexpected identifier \"or\" in label matching, expected \",\" or \"}\"",
            ),
            ("up{\"a\"", "1:7: parse error: unexpected end of input inside braces"),
            (
                "sum by (a (foo)",
                "1:11: parse error: unexpected \"(\" in grouping opts, expected \",\" or \")\"",
            ),
            (
                "foo @ bar",
                "1:7: parse error: unexpected identifier \"bar\" in @, expected timestamp",
            ),
            (
                "sum(foo))",
                "1:10: parse error: unexpected right parenthesis ')'",
            ),
            ("foo]", "1:4: parse error: unexpected right bracket ']'"),
        ] {
            assert_eq!(parse(q).unwrap_err().to_string(), want, "{q}");
        }
        assert_eq!(
            parse("sum(").unwrap_err().to_string(),
            "1:5: parse error: unclosed left parenthesis"
        );
        assert!(parse("1 > 2").is_err());
        assert!(parse("foo and 1").is_err());
        assert!(parse("{a=\"\"}").is_err());
        assert!(parse("rate(foo)").is_err());
    }

    #[test]
    fn hostile_queries_fail_cleanly_instead_of_overflowing_the_stack() {
        let deep = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(parse(&deep).unwrap_err().msg.contains("nested"));
        let long = vec!["x"; 5000].join(" + ");
        assert!(parse(&long).unwrap_err().msg.contains("operators"));
        let neg = format!("{}1", "-".repeat(100_000));
        assert!(parse(&neg).is_err());
        // Within limits, deep trees still evaluate and print.
        let ok = format!("{}1{}", "(".repeat(150), ")".repeat(150));
        assert_eq!(parse(&ok).unwrap().to_string(), ok);
    }

    #[test]
    fn truncated_and_mangled_queries_never_panic() {
        let qs = [
            "sum by (job) (rate(foo{a=~\"b.*\", c!=\"d\"}[5m] offset -1m @ 100))",
            "histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))[30m:1m] @ end()",
            "a / on(x) group_left(y) b > bool 3 unless c or d and e",
            "label_replace(up, \"a\", \"$1\", \"b\", \"(.*)\") ^ -2 % 0x1F",
            "{\"utf8.name\", `raw`=~'x'} offset 1h30m",
        ];
        for q in qs {
            for (i, _) in q.char_indices() {
                let _ = parse(&q[..i]);
                let _ = parse(&q[i..]);
                let mut m = q.to_string();
                m.insert(i, '(');
                let _ = parse(&m);
            }
        }
    }

    #[test]
    fn aggregation_grouping_before_or_after_and_utf8_names() {
        assert_eq!(rt("sum(foo) by (a,)"), "sum by (a) (foo)");
        assert_eq!(
            rt("{\"my.metric\", \"a b\"=\"c\"}"),
            "{__name__=\"my.metric\", \"a b\"=\"c\"}"
        );
        assert_eq!(rt("topk(3, foo) without (x)"), "topk without (x) (3, foo)");
    }
}
