//! The Go `text/template` subset that rule labels and annotations use.
//!
//! Owns: parsing a template once at load time ([`Template::parse`]) and expanding it per alert
//! ([`Template::expand`]). Must not touch: the engine (queries go through a callback).
//!
//! Supported: text with `{{ }}` actions and `{{-`/`-}}` trimming, comments, variables (`$x :=`,
//! `$x =`, `$`), fields (`.Labels.job`, `$labels.job`, `.Value`), pipelines, parentheses,
//! `if`/`else if`/`else`/`end`, `with`/`else`, `range` (with one or two variables), and the
//! functions in [`FUNCS`]. Anything else (`define`, `template`, `block`, `call`, unknown
//! functions, undefined variables) is a load-time error, so a rule file that loads never hits
//! an unsupported construct at run time. Prometheus prepends
//! `{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL :=
//! .ExternalURL}}{{$value := .Value}}`; those four variables are predefined here.

use super::gofmt::{format_g, sprintf};
use crate::model::Labels;
use std::rc::Rc;
use std::sync::Arc;

/// The functions a template may call; anything else fails at load time.
pub const FUNCS: &[&str] = &[
    "and",
    "or",
    "not",
    "len",
    "index",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "print",
    "printf",
    "println",
    "urlquery",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "toTime",
    "title",
    "toUpper",
    "toLower",
    "stripPort",
    "stripDomain",
    "match",
    "reReplaceAll",
    "query",
    "first",
    "value",
    "label",
    "strvalue",
    "sortByLabel",
    "args",
    "externalURL",
    "pathPrefix",
    "safeHtml",
    "graphLink",
    "tableLink",
    "parseDuration",
];

/// One sample a `query` call returns.
#[derive(Clone, Debug, PartialEq)]
pub struct QuerySample {
    pub labels: Labels,
    /// The float value (0 for a native histogram sample).
    pub value: f64,
    /// A native histogram sample (recording rules store it as such).
    pub histogram: Option<Arc<crate::histogram::FloatHistogram>>,
}

/// The data an alert template sees as `.`.
#[derive(Clone, Debug, Default)]
pub struct AlertData {
    pub labels: Labels,
    pub external_labels: Labels,
    pub external_url: String,
    pub value: f64,
    /// The alert's native histogram value, when its sample is one (`$value` is then the
    /// histogram, printed as Go prints it; arithmetic on it fails as in Prometheus).
    pub histogram: Option<Arc<crate::histogram::FloatHistogram>>,
}

/// A template value at run time.
#[derive(Clone, Debug)]
pub enum TValue {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// A label map (`$labels`, `.Labels`), sorted by name.
    Map(Rc<Labels>),
    Samples(Rc<Vec<QuerySample>>),
    Sample(Rc<QuerySample>),
    Root(Rc<AlertData>),
    List(Vec<TValue>),
    /// A native histogram sample value.
    Hist(Arc<crate::histogram::FloatHistogram>),
}

/// A sample's template value: its histogram if it has one, else its float.
fn value_of(v: f64, h: &Option<Arc<crate::histogram::FloatHistogram>>) -> TValue {
    match h {
        Some(h) => TValue::Hist(h.clone()),
        None => TValue::Float(v),
    }
}

impl TValue {
    /// Go's `fmt.Sprint` rendering of the value.
    pub fn to_go_string(&self) -> String {
        match self {
            TValue::Nil => "<no value>".into(),
            TValue::Bool(b) => b.to_string(),
            TValue::Int(i) => i.to_string(),
            TValue::Float(f) => format_g(*f, None),
            TValue::Hist(h) => h.go_string(),
            TValue::Str(s) => s.clone(),
            TValue::Map(m) => {
                let items: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("map[{}]", items.join(" "))
            }
            TValue::Samples(s) => {
                let items: Vec<String> = s.iter().map(sample_string).collect();
                format!("[{}]", items.join(" "))
            }
            TValue::Sample(s) => sample_string(s),
            TValue::Root(r) => format!(
                "{{{} {} {} {}}}",
                TValue::Map(Rc::new(r.labels.clone())).to_go_string(),
                TValue::Map(Rc::new(r.external_labels.clone())).to_go_string(),
                r.external_url,
                format_g(r.value, None)
            ),
            TValue::List(l) => {
                let items: Vec<String> = l.iter().map(TValue::to_go_string).collect();
                format!("[{}]", items.join(" "))
            }
        }
    }

    /// Go template truthiness: false, 0, nil and empty things are false.
    fn truthy(&self) -> bool {
        match self {
            TValue::Nil => false,
            TValue::Bool(b) => *b,
            TValue::Int(i) => *i != 0,
            TValue::Float(f) => *f != 0.0,
            TValue::Str(s) => !s.is_empty(),
            TValue::Map(m) => !m.is_empty(),
            TValue::Samples(s) => !s.is_empty(),
            TValue::Sample(_) | TValue::Root(_) | TValue::Hist(_) => true,
            TValue::List(l) => !l.is_empty(),
        }
    }
}

fn sample_string(s: &QuerySample) -> String {
    format!(
        "{{{} {}}}",
        TValue::Map(Rc::new(s.labels.clone())).to_go_string(),
        format_g(s.value, None)
    )
}

/// A load-time error, printed like Go's: `template: NAME:LINE: what`.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateError(pub String);

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug)]
enum Operand {
    /// `.` followed by zero or more field names.
    Dot(Vec<String>),
    /// `$name` (or `$`) followed by field names.
    Var(String, Vec<String>),
    Func(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    Paren(Box<Pipeline>, Vec<String>),
}

#[derive(Clone, Debug)]
struct Pipeline {
    /// Declared (`:=`) or assigned (`=`) variables.
    vars: Vec<String>,
    declare: bool,
    cmds: Vec<Vec<Operand>>,
}

#[derive(Clone, Debug)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Vec<(Pipeline, Vec<Node>)>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
}

/// A parsed template.
#[derive(Clone, Debug)]
pub struct Template {
    name: String,
    nodes: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Field(String),
    Var(String),
    Str(String),
    Num(String),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
    Dot,
}

/// One `{{ }}` action or text piece before block structure is built.
enum Piece {
    Text(String),
    Action(Vec<Tok>, usize),
}

const PREDEFINED: &[&str] = &["$", "$labels", "$externalLabels", "$externalURL", "$value"];

struct Parser<'a> {
    name: &'a str,
    pieces: Vec<Piece>,
    at: usize,
    scopes: Vec<Vec<String>>,
}

impl Template {
    /// Parses `text`; `name` appears in errors (`__alert_HighLoad`).
    pub fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
        let pieces = split(name, text)?;
        let mut p = Parser {
            name,
            pieces,
            at: 0,
            scopes: vec![PREDEFINED.iter().map(|s| s.to_string()).collect()],
        };
        let (nodes, end) = p.block()?;
        if let Some((kw, line)) = end {
            return Err(p.err(line, &format!("unexpected {{{{{kw}}}}}")));
        }
        Ok(Template {
            name: name.to_string(),
            nodes,
        })
    }

    /// True when the template is plain text (nothing to expand).
    pub fn is_plain(&self) -> bool {
        self.nodes.iter().all(|n| matches!(n, Node::Text(_)))
    }

    /// Expands with `data` as `.`; `query` answers the `query` function. A run-time error
    /// becomes the text Prometheus produces: `<error expanding template: …>`.
    pub fn expand(
        &self,
        data: &AlertData,
        query: &mut dyn FnMut(&str) -> Result<Vec<QuerySample>, String>,
    ) -> String {
        match self.try_expand(data, query) {
            Ok(s) => s,
            Err(e) => format!("<error expanding template: {e}>"),
        }
    }

    /// Expands, returning the run-time error instead of embedding it.
    pub fn try_expand(
        &self,
        data: &AlertData,
        query: &mut dyn FnMut(&str) -> Result<Vec<QuerySample>, String>,
    ) -> Result<String, String> {
        let root = Rc::new(data.clone());
        let mut ex = Exec {
            name: &self.name,
            vars: vec![
                ("$".into(), TValue::Root(root.clone())),
                ("$labels".into(), TValue::Map(Rc::new(root.labels.clone()))),
                (
                    "$externalLabels".into(),
                    TValue::Map(Rc::new(root.external_labels.clone())),
                ),
                (
                    "$externalURL".into(),
                    TValue::Str(root.external_url.clone()),
                ),
                ("$value".into(), value_of(root.value, &root.histogram)),
            ],
            query,
            out: String::new(),
            steps: 0,
        };
        ex.run(&self.nodes, &TValue::Root(root))?;
        Ok(ex.out)
    }
}

fn line_at(text: &str, byte: usize) -> usize {
    text[..byte.min(text.len())].matches('\n').count() + 1
}

/// Splits text and actions, handling trim markers and comments, and lexes each action.
fn split(name: &str, text: &str) -> Result<Vec<Piece>, TemplateError> {
    let err = |line: usize, m: &str| TemplateError(format!("template: {name}:{line}: {m}"));
    let mut out = Vec::new();
    let mut rest = 0;
    let mut trim_next = false;
    while rest <= text.len() {
        let Some(open) = text[rest..].find("{{").map(|i| i + rest) else {
            let mut t = &text[rest..];
            if trim_next {
                t = t.trim_start();
            }
            if !t.is_empty() {
                out.push(Piece::Text(t.to_string()));
            }
            break;
        };
        let mut t = &text[rest..open];
        if trim_next {
            t = t.trim_start();
        }
        let mut inner_start = open + 2;
        let b = text.as_bytes();
        if b.get(inner_start) == Some(&b'-')
            && b.get(inner_start + 1).is_some_and(u8::is_ascii_whitespace)
        {
            t = t.trim_end();
            inner_start += 1;
        }
        if !t.is_empty() {
            out.push(Piece::Text(t.to_string()));
        }
        let line = line_at(text, open);
        let inner = &text[inner_start..];
        let trimmed = inner.trim_start();
        if trimmed.starts_with("/*") {
            let Some(end) = inner.find("*/") else {
                return Err(err(line, "unclosed comment"));
            };
            let after = inner[end + 2..].trim_start();
            let (close_trim, after) = match after.strip_prefix('-') {
                Some(a) => (true, a.trim_start()),
                None => (false, after),
            };
            if !after.starts_with("}}") {
                return Err(err(line, "comment ends before closing delimiter"));
            }
            trim_next = close_trim;
            rest = text.len() - after.len() + 2;
            continue;
        }
        let (toks, consumed, close_trim) = lex_action(inner).map_err(|m| err(line, &m))?;
        trim_next = close_trim;
        rest = inner_start + consumed;
        out.push(Piece::Action(toks, line));
    }
    Ok(out)
}

/// Lexes one action up to its `}}`; returns tokens, bytes consumed (including `}}`) and whether
/// the close had a trim marker.
fn lex_action(s: &str) -> Result<(Vec<Tok>, usize, bool), String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut toks = Vec::new();
    let mut parens = 0usize;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            if b[i] == b'\n' && parens == 0 {
                // Go allows newlines inside actions since 1.16; keep going.
            }
            i += 1;
        }
        if i >= b.len() {
            return Err("unclosed action".into());
        }
        if s[i..].starts_with("}}") {
            return Ok((toks, i + 2, false));
        }
        if b[i] == b'-' && i > 0 && b[i - 1].is_ascii_whitespace() && s[i + 1..].starts_with("}}") {
            return Ok((toks, i + 3, true));
        }
        let c = b[i];
        match c {
            b'|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            b'(' => {
                parens += 1;
                toks.push(Tok::LParen);
                i += 1;
            }
            b')' => {
                if parens == 0 {
                    return Err("unexpected right paren".into());
                }
                parens -= 1;
                toks.push(Tok::RParen);
                i += 1;
            }
            b',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            b':' if b.get(i + 1) == Some(&b'=') => {
                toks.push(Tok::Declare);
                i += 2;
            }
            b'=' => {
                toks.push(Tok::Assign);
                i += 1;
            }
            b'"' => {
                let mut v = String::new();
                let mut j = i + 1;
                let mut chars = s[j..].char_indices();
                let mut closed = false;
                while let Some((k, ch)) = chars.next() {
                    match ch {
                        '"' => {
                            j += k + 1;
                            closed = true;
                            break;
                        }
                        '\n' => return Err("unterminated quoted string".into()),
                        '\\' => match chars.next() {
                            Some((_, 'n')) => v.push('\n'),
                            Some((_, 't')) => v.push('\t'),
                            Some((_, 'r')) => v.push('\r'),
                            Some((_, '\\')) => v.push('\\'),
                            Some((_, '"')) => v.push('"'),
                            Some((_, '\'')) => v.push('\''),
                            _ => return Err("invalid syntax in quoted string".into()),
                        },
                        ch => v.push(ch),
                    }
                }
                if !closed {
                    return Err("unterminated quoted string".into());
                }
                toks.push(Tok::Str(v));
                i = j;
            }
            b'`' => {
                let Some(end) = s[i + 1..].find('`') else {
                    return Err("unterminated raw quoted string".into());
                };
                toks.push(Tok::Str(s[i + 1..i + 1 + end].to_string()));
                i += end + 2;
            }
            b'.' if !b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let j = ident_end(b, i + 1);
                if j == i + 1 {
                    toks.push(Tok::Dot);
                } else {
                    toks.push(Tok::Field(s[i + 1..j].to_string()));
                }
                i = j;
            }
            b'$' => {
                let j = ident_end(b, i + 1);
                toks.push(Tok::Var(s[i..j].to_string()));
                i = j;
            }
            c if c.is_ascii_digit() || c == b'-' || c == b'+' || c == b'.' => {
                let mut j = i + 1;
                while j < b.len()
                    && (b[j].is_ascii_alphanumeric()
                        || b[j] == b'.'
                        || b[j] == b'_'
                        || ((b[j] == b'-' || b[j] == b'+') && matches!(b[j - 1], b'e' | b'E')))
                {
                    j += 1;
                }
                toks.push(Tok::Num(s[i..j].to_string()));
                i = j;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let j = ident_end(b, i);
                toks.push(Tok::Ident(s[i..j].to_string()));
                i = j;
            }
            _ => {
                let ch = s[i..].chars().next().unwrap_or('?');
                return Err(format!("unexpected {ch:?} in command"));
            }
        }
    }
}

fn ident_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80) {
        i += 1;
    }
    i
}

/// How a block ended: `end`, or `else` (with the rest of the else action's tokens).
type BlockEnd = Option<(String, usize)>;

impl Parser<'_> {
    fn err(&self, line: usize, m: &str) -> TemplateError {
        TemplateError(format!("template: {}:{line}: {m}", self.name))
    }

    fn defined(&self, v: &str) -> bool {
        self.scopes.iter().any(|s| s.iter().any(|x| x == v))
    }

    /// Parses nodes until `{{end}}` or `{{else…}}` (returned, not consumed for else-if) or EOF.
    fn block(&mut self) -> Result<(Vec<Node>, BlockEnd), TemplateError> {
        let mut nodes = Vec::new();
        while self.at < self.pieces.len() {
            let i = self.at;
            self.at += 1;
            let (toks, line) = match &self.pieces[i] {
                Piece::Text(t) => {
                    nodes.push(Node::Text(t.clone()));
                    continue;
                }
                Piece::Action(toks, line) => (toks.clone(), *line),
            };
            let kw = match toks.first() {
                Some(Tok::Ident(k)) => k.as_str(),
                None => return Err(self.err(line, "missing value for command")),
                _ => "",
            };
            match kw {
                "end" => {
                    if toks.len() > 1 {
                        return Err(self.err(line, "unexpected token in end"));
                    }
                    return Ok((nodes, Some(("end".into(), line))));
                }
                "else" => {
                    // Leave the tokens for the caller (else if / else with).
                    self.at -= 1;
                    return Ok((nodes, Some(("else".into(), line))));
                }
                "if" | "with" | "range" => {
                    nodes.push(self.control(kw, &toks[1..], line)?);
                }
                "define" | "template" | "block" | "break" | "continue" => {
                    return Err(
                        self.err(line, &format!("{kw:?} is not supported in rule templates"))
                    );
                }
                _ => {
                    let p = self.pipeline(&toks, line, false)?;
                    nodes.push(Node::Action(p));
                }
            }
        }
        Ok((nodes, None))
    }

    fn control(&mut self, kw: &str, toks: &[Tok], line: usize) -> Result<Node, TemplateError> {
        self.scopes.push(Vec::new());
        let pipe = self.pipeline(toks, line, kw == "range")?;
        let (body, end) = self.block()?;
        let mut arms = vec![(pipe, body)];
        let mut else_body = Vec::new();
        let mut end = end;
        self.scopes.pop();
        loop {
            match end {
                None => return Err(self.err(line, "unexpected EOF")),
                Some((ref k, _)) if k == "end" => break,
                Some((_, eline)) => {
                    let Piece::Action(etoks, _) = &self.pieces[self.at] else {
                        return Err(self.err(eline, "unexpected else"));
                    };
                    let etoks = etoks.clone();
                    self.at += 1;
                    if etoks.len() == 1 {
                        let (b, e2) = self.block()?;
                        else_body = b;
                        match e2 {
                            Some((k, _)) if k == "end" => break,
                            Some((_, l)) => return Err(self.err(l, "expected end; found {{else}}")),
                            None => return Err(self.err(line, "unexpected EOF")),
                        }
                    }
                    match (&etoks[1], kw) {
                        (Tok::Ident(k), "if") if k == "if" => {
                            self.scopes.push(Vec::new());
                            let p = self.pipeline(&etoks[2..], eline, false)?;
                            let (b, e2) = self.block()?;
                            self.scopes.pop();
                            arms.push((p, b));
                            end = e2;
                        }
                        _ => return Err(self.err(eline, "unexpected token in else")),
                    }
                }
            }
        }
        Ok(match kw {
            "if" => Node::If(arms, else_body),
            "with" => {
                let (p, b) = arms.remove(0);
                Node::With(p, b, else_body)
            }
            _ => {
                let (p, b) = arms.remove(0);
                Node::Range(p, b, else_body)
            }
        })
    }

    fn pipeline(
        &mut self,
        toks: &[Tok],
        line: usize,
        range: bool,
    ) -> Result<Pipeline, TemplateError> {
        let mut vars = Vec::new();
        let mut declare = false;
        let mut k = 0;
        // Variable declarations: `$x :=`, `$i, $x :=` (range), `$x =`.
        let decl_end = toks
            .iter()
            .position(|t| matches!(t, Tok::Declare | Tok::Assign));
        if let Some(d) = decl_end {
            let head = &toks[..d];
            let ok = match head {
                [Tok::Var(_)] => true,
                [Tok::Var(_), Tok::Comma, Tok::Var(_)] => range,
                _ => false,
            };
            if ok {
                declare = toks[d] == Tok::Declare;
                for t in head {
                    if let Tok::Var(v) = t {
                        vars.push(v.clone());
                    }
                }
                k = d + 1;
            }
        }
        if !declare {
            for v in &vars {
                if !self.defined(v) {
                    return Err(self.err(line, &format!("undefined variable {v:?}")));
                }
            }
        }
        let (cmds, used) = self.commands(&toks[k..], line)?;
        if used != toks.len() - k {
            return Err(self.err(line, "unexpected right paren"));
        }
        if cmds.is_empty() {
            return Err(self.err(line, "missing value for command"));
        }
        if declare {
            if let Some(scope) = self.scopes.last_mut() {
                scope.extend(vars.iter().cloned());
            }
        }
        Ok(Pipeline {
            vars,
            declare,
            cmds,
        })
    }

    /// Commands separated by `|`, up to an unmatched `)` or the end; returns tokens used.
    fn commands(
        &mut self,
        toks: &[Tok],
        line: usize,
    ) -> Result<(Vec<Vec<Operand>>, usize), TemplateError> {
        let mut cmds = Vec::new();
        let mut cur = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            match &toks[i] {
                Tok::RParen => break,
                Tok::Pipe => {
                    if cur.is_empty() {
                        return Err(self.err(line, "missing command"));
                    }
                    cmds.push(std::mem::take(&mut cur));
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let (op, used) = self.operand(&toks[i..], line)?;
            cur.push(op);
            i += used;
        }
        if !cur.is_empty() {
            cmds.push(cur);
        } else if !cmds.is_empty() {
            return Err(self.err(line, "missing command"));
        }
        Ok((cmds, i))
    }

    fn operand(&mut self, toks: &[Tok], line: usize) -> Result<(Operand, usize), TemplateError> {
        let fields = |from: usize| -> (Vec<String>, usize) {
            let mut f = Vec::new();
            let mut j = from;
            while let Some(Tok::Field(n)) = toks.get(j) {
                f.push(n.clone());
                j += 1;
            }
            (f, j)
        };
        Ok(match &toks[0] {
            Tok::Dot => (Operand::Dot(Vec::new()), 1),
            Tok::Field(_) => {
                let (f, j) = fields(0);
                (Operand::Dot(f), j)
            }
            Tok::Var(v) => {
                if !self.defined(v) {
                    return Err(self.err(line, &format!("undefined variable {v:?}")));
                }
                let (f, j) = fields(1);
                (Operand::Var(v.clone(), f), j)
            }
            Tok::Str(s) => (Operand::Str(s.clone()), 1),
            Tok::Num(n) => (
                parse_number(n)
                    .ok_or_else(|| self.err(line, &format!("bad number syntax: {n:?}")))?,
                1,
            ),
            Tok::Ident(id) => match id.as_str() {
                "true" => (Operand::Bool(true), 1),
                "false" => (Operand::Bool(false), 1),
                "nil" => (Operand::Nil, 1),
                f if FUNCS.contains(&f) => (Operand::Func(f.to_string()), 1),
                f => return Err(self.err(line, &format!("function {f:?} not defined"))),
            },
            Tok::LParen => {
                let (cmds, used) = self.commands(&toks[1..], line)?;
                if toks.get(1 + used) != Some(&Tok::RParen) {
                    return Err(self.err(line, "unclosed left paren"));
                }
                if cmds.is_empty() {
                    return Err(self.err(line, "missing value for parenthesized pipeline"));
                }
                let (f, j) = fields(used + 2);
                let p = Pipeline {
                    vars: Vec::new(),
                    declare: false,
                    cmds,
                };
                (Operand::Paren(Box::new(p), f), j)
            }
            t => return Err(self.err(line, &format!("unexpected {t:?} in operand"))),
        })
    }
}

fn parse_number(n: &str) -> Option<Operand> {
    let body = n.strip_prefix('+').unwrap_or(n);
    if let Ok(i) = body.parse::<i64>() {
        return Some(Operand::Int(i));
    }
    if let Some(h) = body.strip_prefix("0x") {
        return i64::from_str_radix(h, 16).ok().map(Operand::Int);
    }
    body.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Operand::Float)
}

/// Most actions one expansion may run (range over a huge query result); beyond, an error.
const MAX_STEPS: usize = 100_000;

struct Exec<'a> {
    name: &'a str,
    vars: Vec<(String, TValue)>,
    query: &'a mut dyn FnMut(&str) -> Result<Vec<QuerySample>, String>,
    out: String,
    steps: usize,
}

type R<T> = Result<T, String>;

impl Exec<'_> {
    fn fail<T>(&self, m: impl std::fmt::Display) -> R<T> {
        Err(format!("template: {}: {m}", self.name))
    }

    fn run(&mut self, nodes: &[Node], dot: &TValue) -> R<()> {
        for n in nodes {
            self.steps += 1;
            if self.steps > MAX_STEPS {
                return self.fail("too many template steps");
            }
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipeline(p, dot)?;
                    if p.vars.is_empty() {
                        self.out.push_str(&v.to_go_string());
                    }
                }
                Node::If(arms, else_body) => {
                    let mark = self.vars.len();
                    let mut done = false;
                    for (p, body) in arms {
                        let v = self.pipeline(p, dot)?;
                        if v.truthy() {
                            self.run(body, dot)?;
                            done = true;
                            break;
                        }
                    }
                    self.vars.truncate(mark);
                    if !done {
                        self.run(else_body, dot)?;
                    }
                }
                Node::With(p, body, else_body) => {
                    let mark = self.vars.len();
                    let v = self.pipeline(p, dot)?;
                    if v.truthy() {
                        self.run(body, &v)?;
                    } else {
                        self.run(else_body, dot)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::Range(p, body, else_body) => {
                    let mark = self.vars.len();
                    let bare = Pipeline {
                        vars: Vec::new(),
                        declare: false,
                        cmds: p.cmds.clone(),
                    };
                    let v = self.pipeline(&bare, dot)?;
                    let items: Vec<(TValue, TValue)> = match &v {
                        TValue::Samples(s) => s
                            .iter()
                            .enumerate()
                            .map(|(i, x)| {
                                (TValue::Int(i as i64), TValue::Sample(Rc::new(x.clone())))
                            })
                            .collect(),
                        TValue::List(l) => l
                            .iter()
                            .enumerate()
                            .map(|(i, x)| (TValue::Int(i as i64), x.clone()))
                            .collect(),
                        TValue::Map(m) => m
                            .iter()
                            .map(|(k, v)| (TValue::Str(k.into()), TValue::Str(v.into())))
                            .collect(),
                        TValue::Int(n) => {
                            (0..*n).map(|i| (TValue::Int(i), TValue::Int(i))).collect()
                        }
                        TValue::Nil => Vec::new(),
                        other => {
                            return self
                                .fail(format!("range can't iterate over {}", other.to_go_string()))
                        }
                    };
                    if items.is_empty() {
                        self.run(else_body, dot)?;
                    }
                    for (k, val) in items {
                        let inner = self.vars.len();
                        match p.vars.as_slice() {
                            [one] => self.vars.push((one.clone(), val.clone())),
                            [a, b] => {
                                self.vars.push((a.clone(), k));
                                self.vars.push((b.clone(), val.clone()));
                            }
                            _ => {}
                        }
                        self.run(body, &val)?;
                        self.vars.truncate(inner);
                    }
                    self.vars.truncate(mark);
                }
            }
        }
        Ok(())
    }

    fn var(&self, name: &str) -> R<TValue> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => self.fail(format!("undefined variable {name:?}")),
        }
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &TValue) -> R<TValue> {
        let mut val: Option<TValue> = None;
        for cmd in &p.cmds {
            val = Some(self.command(cmd, dot, val)?);
        }
        let v = val.unwrap_or(TValue::Nil);
        if let Some(name) = p.vars.first() {
            if p.declare {
                self.vars.push((name.clone(), v.clone()));
            } else if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                slot.1 = v.clone();
            }
        }
        Ok(v)
    }

    fn command(&mut self, cmd: &[Operand], dot: &TValue, piped: Option<TValue>) -> R<TValue> {
        if let Operand::Func(f) = &cmd[0] {
            if f == "and" || f == "or" {
                // Short-circuit as Go 1.18+ does.
                let want = f == "or";
                let mut last = TValue::Nil;
                let n = cmd.len() - 1 + usize::from(piped.is_some());
                if n == 0 {
                    return self.fail(format!(
                        "wrong number of args for {f}: want at least 1 got 0"
                    ));
                }
                for op in &cmd[1..] {
                    last = self.operand(op, dot)?;
                    if last.truthy() == want {
                        return Ok(last);
                    }
                }
                if let Some(p) = piped {
                    last = p;
                }
                return Ok(last);
            }
            let mut args = Vec::with_capacity(cmd.len());
            for op in &cmd[1..] {
                args.push(self.operand(op, dot)?);
            }
            if let Some(p) = piped {
                args.push(p);
            }
            return self.call(f, args);
        }
        if cmd.len() > 1 || piped.is_some() {
            return self.fail("can't give argument to non-function");
        }
        self.operand(&cmd[0], dot)
    }

    fn operand(&mut self, op: &Operand, dot: &TValue) -> R<TValue> {
        match op {
            Operand::Dot(f) => self.fields(dot.clone(), f),
            Operand::Var(v, f) => {
                let base = self.var(v)?;
                self.fields(base, f)
            }
            Operand::Func(f) => self.call(f, Vec::new()),
            Operand::Str(s) => Ok(TValue::Str(s.clone())),
            Operand::Int(i) => Ok(TValue::Int(*i)),
            Operand::Float(x) => Ok(TValue::Float(*x)),
            Operand::Bool(b) => Ok(TValue::Bool(*b)),
            Operand::Nil => self.fail("nil is not a command"),
            Operand::Paren(p, f) => {
                let v = self.pipeline(p, dot)?;
                self.fields(v, f)
            }
        }
    }

    fn fields(&self, mut v: TValue, names: &[String]) -> R<TValue> {
        for n in names {
            v = match (&v, n.as_str()) {
                // Prometheus expands alert templates with `missingkey=zero`: a missing
                // label is the empty string.
                (TValue::Map(m), key) => TValue::Str(m.get(key).unwrap_or("").to_string()),
                (TValue::Root(r), "Labels") => TValue::Map(Rc::new(r.labels.clone())),
                (TValue::Root(r), "ExternalLabels") => {
                    TValue::Map(Rc::new(r.external_labels.clone()))
                }
                (TValue::Root(r), "ExternalURL") => TValue::Str(r.external_url.clone()),
                (TValue::Root(r), "Value") => value_of(r.value, &r.histogram),
                (TValue::Sample(s), "Labels") => TValue::Map(Rc::new(s.labels.clone())),
                (TValue::Sample(s), "Value") => value_of(s.value, &s.histogram),
                (TValue::Nil, _) => {
                    return self.fail(format!("nil pointer evaluating interface {{}}.{n}"))
                }
                (other, _) => {
                    return self.fail(format!(
                        "can't evaluate field {n} in type {}",
                        match other {
                            TValue::Str(_) => "string",
                            TValue::Float(_) => "float64",
                            TValue::Int(_) => "int",
                            TValue::Bool(_) => "bool",
                            _ => "interface {}",
                        }
                    ))
                }
            };
        }
        Ok(v)
    }

    fn arity(&self, f: &str, args: &[TValue], n: usize) -> R<()> {
        if args.len() != n {
            return self.fail(format!(
                "wrong number of args for {f}: want {n} got {}",
                args.len()
            ));
        }
        Ok(())
    }

    fn float(&self, v: &TValue) -> R<f64> {
        match v {
            TValue::Float(f) => Ok(*f),
            TValue::Int(i) => Ok(*i as f64),
            TValue::Str(s) => s
                .parse::<f64>()
                .or_else(|_| crate::promql::engine::parse_go_float(s).ok_or(()))
                .or_else(|_| {
                    self.fail(format!("strconv.ParseFloat: parsing {s:?}: invalid syntax"))
                }),
            TValue::Hist(_) => {
                self.fail("can't convert *histogram.FloatHistogram to float".to_string())
            }
            other => self.fail(format!("can't convert {} to float", other.to_go_string())),
        }
    }

    fn string(&self, v: &TValue) -> R<String> {
        match v {
            TValue::Str(s) => Ok(s.clone()),
            other => self.fail(format!(
                "wrong type for value; expected string; got {}",
                other.to_go_string()
            )),
        }
    }

    fn call(&mut self, f: &str, args: Vec<TValue>) -> R<TValue> {
        let a = &args;
        Ok(match f {
            "not" => {
                self.arity(f, a, 1)?;
                TValue::Bool(!a[0].truthy())
            }
            "len" => {
                self.arity(f, a, 1)?;
                TValue::Int(match &a[0] {
                    TValue::Str(s) => s.len(),
                    TValue::Map(m) => m.len(),
                    TValue::Samples(s) => s.len(),
                    TValue::List(l) => l.len(),
                    other => return self.fail(format!("len of type {}", other.to_go_string())),
                } as i64)
            }
            "index" => {
                if a.is_empty() {
                    return self.fail("wrong number of args for index: want at least 1 got 0");
                }
                let mut v = a[0].clone();
                for k in &a[1..] {
                    v = match (&v, k) {
                        (TValue::Map(m), TValue::Str(key)) => match m.get(key) {
                            Some(s) => TValue::Str(s.into()),
                            None => TValue::Str(String::new()),
                        },
                        (TValue::Samples(s), TValue::Int(i)) => match s.get(*i as usize) {
                            Some(x) if *i >= 0 => TValue::Sample(Rc::new(x.clone())),
                            _ => {
                                return self
                                    .fail(format!("error calling index: index out of range: {i}"))
                            }
                        },
                        (TValue::List(l), TValue::Int(i)) => match l.get(*i as usize) {
                            Some(x) if *i >= 0 => x.clone(),
                            _ => {
                                return self
                                    .fail(format!("error calling index: index out of range: {i}"))
                            }
                        },
                        _ => return self.fail("error calling index: cannot index"),
                    };
                }
                v
            }
            "eq" | "ne" | "lt" | "le" | "gt" | "ge" => {
                if a.len() < 2 || (f != "eq" && a.len() != 2) {
                    return self.fail(format!("wrong number of args for {f}"));
                }
                if f == "eq" {
                    for b in &a[1..] {
                        if compare(&a[0], b).map_err(|e| {
                            format!("template: {}: error calling eq: {e}", self.name)
                        })? == Some(std::cmp::Ordering::Equal)
                        {
                            return Ok(TValue::Bool(true));
                        }
                    }
                    return Ok(TValue::Bool(false));
                }
                let ord = compare(&a[0], &a[1])
                    .map_err(|e| format!("template: {}: error calling {f}: {e}", self.name))?;
                use std::cmp::Ordering::*;
                TValue::Bool(match (f, ord) {
                    ("ne", o) => o != Some(Equal),
                    ("lt", Some(Less)) | ("le", Some(Less | Equal)) => true,
                    ("gt", Some(Greater)) | ("ge", Some(Greater | Equal)) => true,
                    _ => false,
                })
            }
            "print" => {
                // Go adds spaces between operands when neither is a string.
                let mut s = String::new();
                for (i, v) in a.iter().enumerate() {
                    if i > 0 && !matches!(v, TValue::Str(_)) && !matches!(a[i - 1], TValue::Str(_))
                    {
                        s.push(' ');
                    }
                    s.push_str(&v.to_go_string());
                }
                TValue::Str(s)
            }
            "println" => {
                let items: Vec<String> = a.iter().map(TValue::to_go_string).collect();
                TValue::Str(items.join(" ") + "\n")
            }
            "printf" => {
                if a.is_empty() {
                    return self.fail("wrong number of args for printf: want at least 1 got 0");
                }
                let fmt = self.string(&a[0])?;
                TValue::Str(sprintf(&fmt, &a[1..]))
            }
            "urlquery" => {
                let s: String = a.iter().map(TValue::to_go_string).collect();
                TValue::Str(url_query_escape(&s))
            }
            "humanize" => {
                self.arity(f, a, 1)?;
                TValue::Str(humanize(self.float(&a[0])?))
            }
            "humanize1024" => {
                self.arity(f, a, 1)?;
                TValue::Str(humanize1024(self.float(&a[0])?))
            }
            "humanizeDuration" => {
                self.arity(f, a, 1)?;
                TValue::Str(humanize_duration(self.float(&a[0])?))
            }
            "humanizePercentage" => {
                self.arity(f, a, 1)?;
                TValue::Str(format!(
                    "{}%",
                    format_g(self.float(&a[0])? * 100.0, Some(4))
                ))
            }
            "humanizeTimestamp" => {
                self.arity(f, a, 1)?;
                TValue::Str(humanize_timestamp(self.float(&a[0])?))
            }
            "toTime" => {
                self.arity(f, a, 1)?;
                TValue::Str(humanize_timestamp(self.float(&a[0])?))
            }
            "parseDuration" => {
                self.arity(f, a, 1)?;
                let s = self.string(&a[0])?;
                match crate::config::parse_duration(&s) {
                    Ok(d) => TValue::Float(d.as_secs_f64()),
                    Err(e) => return self.fail(e),
                }
            }
            "title" => {
                self.arity(f, a, 1)?;
                TValue::Str(title(&self.string(&a[0])?))
            }
            "toUpper" => {
                self.arity(f, a, 1)?;
                TValue::Str(self.string(&a[0])?.to_uppercase())
            }
            "toLower" => {
                self.arity(f, a, 1)?;
                TValue::Str(self.string(&a[0])?.to_lowercase())
            }
            "stripPort" => {
                self.arity(f, a, 1)?;
                let s = self.string(&a[0])?;
                TValue::Str(strip_port(&s))
            }
            "stripDomain" => {
                self.arity(f, a, 1)?;
                let s = self.string(&a[0])?;
                let (host, port) = match s.rsplit_once(':') {
                    Some((h, p)) if !h.contains(':') && !h.starts_with('[') => {
                        (h.to_string(), Some(p.to_string()))
                    }
                    _ => (s.clone(), None),
                };
                let host = if host.parse::<std::net::Ipv4Addr>().is_ok() || host.starts_with('[') {
                    host
                } else {
                    host.split('.').next().unwrap_or("").to_string()
                };
                TValue::Str(match port {
                    Some(p) => format!("{host}:{p}"),
                    None => host,
                })
            }
            "match" => {
                self.arity(f, a, 2)?;
                let re = regex_lite::Regex::new(&self.string(&a[0])?)
                    .or_else(|e| self.fail(format!("error calling match: {e}")))?;
                TValue::Bool(re.is_match(&self.string(&a[1])?))
            }
            "reReplaceAll" => {
                self.arity(f, a, 3)?;
                let re = regex_lite::Regex::new(&self.string(&a[0])?)
                    .or_else(|e| self.fail(format!("error calling reReplaceAll: {e}")))?;
                let repl = self.string(&a[1])?;
                TValue::Str(
                    re.replace_all(&self.string(&a[2])?, repl.as_str())
                        .into_owned(),
                )
            }
            "query" => {
                self.arity(f, a, 1)?;
                let q = self.string(&a[0])?;
                match (self.query)(&q) {
                    Ok(s) => TValue::Samples(Rc::new(s)),
                    Err(e) => return self.fail(format!("error calling query: {e}")),
                }
            }
            "first" => {
                self.arity(f, a, 1)?;
                match &a[0] {
                    TValue::Samples(s) => {
                        match s.first() {
                            Some(x) => TValue::Sample(Rc::new(x.clone())),
                            None => return self.fail(
                                "error calling first: first() called on vector with no elements",
                            ),
                        }
                    }
                    _ => return self.fail("error calling first: first() needs a query result"),
                }
            }
            "value" => {
                self.arity(f, a, 1)?;
                match &a[0] {
                    TValue::Sample(s) => TValue::Float(s.value),
                    _ => return self.fail("error calling value: value() needs a sample"),
                }
            }
            "strvalue" => {
                self.arity(f, a, 1)?;
                match &a[0] {
                    TValue::Sample(s) => {
                        TValue::Str(s.labels.get("__value__").unwrap_or("").into())
                    }
                    _ => return self.fail("error calling strvalue: strvalue() needs a sample"),
                }
            }
            "label" => {
                self.arity(f, a, 2)?;
                let name = self.string(&a[0])?;
                match &a[1] {
                    TValue::Sample(s) => TValue::Str(s.labels.get(&name).unwrap_or("").into()),
                    _ => return self.fail("error calling label: label() needs a sample"),
                }
            }
            "sortByLabel" => {
                self.arity(f, a, 2)?;
                let name = self.string(&a[0])?;
                match &a[1] {
                    TValue::Samples(s) => {
                        let mut v: Vec<QuerySample> = s.as_ref().clone();
                        crate::sort::sort_by(&mut v, |x, y| {
                            x.labels.get(&name).cmp(&y.labels.get(&name))
                        });
                        TValue::Samples(Rc::new(v))
                    }
                    _ => return self.fail("error calling sortByLabel: needs a query result"),
                }
            }
            "args" => {
                let mut m = Labels::new();
                // Go's args returns map[string]interface{}; values here keep their text form.
                for (i, v) in a.iter().enumerate() {
                    m.set(format!("arg{i}"), v.to_go_string());
                }
                TValue::Map(Rc::new(m))
            }
            "externalURL" => TValue::Str(self.var("$externalURL")?.to_go_string()),
            "pathPrefix" => TValue::Str(String::new()),
            "safeHtml" => {
                self.arity(f, a, 1)?;
                TValue::Str(self.string(&a[0])?)
            }
            "graphLink" | "tableLink" => {
                self.arity(f, a, 1)?;
                let tab = if f == "graphLink" { 0 } else { 1 };
                TValue::Str(format!(
                    "/graph?g0.expr={}&g0.tab={tab}",
                    url_query_escape(&self.string(&a[0])?)
                ))
            }
            other => return self.fail(format!("function {other:?} not defined")),
        })
    }
}

/// Go's template comparison: same basic kind required (int vs float is an error).
fn compare(a: &TValue, b: &TValue) -> Result<Option<std::cmp::Ordering>, String> {
    Ok(match (a, b) {
        (TValue::Int(x), TValue::Int(y)) => Some(x.cmp(y)),
        (TValue::Float(x), TValue::Float(y)) => x.partial_cmp(y),
        (TValue::Str(x), TValue::Str(y)) => Some(x.cmp(y)),
        (TValue::Bool(x), TValue::Bool(y)) => Some(x.cmp(y)),
        (TValue::Nil, _) | (_, TValue::Nil) => return Err("invalid type for comparison".into()),
        _ => return Err("incompatible types for comparison".into()),
    })
}

fn strip_port(s: &str) -> String {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            return rest[..end].to_string();
        }
    }
    match s.rsplit_once(':') {
        Some((h, _)) if !h.contains(':') => h.to_string(),
        _ => s.to_string(),
    }
}

fn url_query_escape(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                o.push(b as char)
            }
            b' ' => o.push('+'),
            b => o.push_str(&format!("%{b:02X}")),
        }
    }
    o
}

/// Go's deprecated `strings.Title`: upper-cases the first letter of each word.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        let is_sep = !(c.is_alphanumeric() || c == '_' || c == '\'');
        if !prev_letter && !is_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = !is_sep;
    }
    out
}

/// Prometheus's `humanize`: SI prefixes, 4 significant digits.
pub fn humanize(mut v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format_g(v, Some(4));
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", format_g(v, Some(4)))
}

/// Prometheus's `humanize1024`: binary prefixes (ki, Mi, …).
pub fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return format_g(v, Some(4));
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", format_g(v, Some(4)))
}

/// Prometheus's `humanizeDuration` of seconds: `1d 2h 3m 4s`, or `1.5s`, `250ms`.
pub fn humanize_duration(mut v: f64) -> String {
    if !v.is_finite() {
        return format_g(v, Some(4));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let d = v as i64;
        let (days, hours, minutes, seconds) = (d / 86_400, (d / 3600) % 24, (d / 60) % 60, d % 60);
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}s", format_g(v, Some(4)));
    }
    if v == 0.0 {
        return "0s".into();
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", format_g(v, Some(4)))
}

/// Prometheus's `humanizeTimestamp`: Go's `time.Time.String()` in UTC.
pub fn humanize_timestamp(v: f64) -> String {
    if !v.is_finite() {
        return format_g(v, Some(4));
    }
    // Prometheus goes through model.Time: nanoseconds truncated to milliseconds.
    let ns = v * 1e9;
    if ns >= i64::MAX as f64 || ns <= i64::MIN as f64 {
        return format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            format_g(v, None)
        );
    }
    let ms = (ns as i64) / 1_000_000;
    let secs = ms.div_euclid(1000);
    let nanos = ms.rem_euclid(1000) * 1_000_000;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = crate::log::civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push_str(" +0000 UTC");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> AlertData {
        AlertData {
            labels: Labels::from_pairs([("instance", "host:9100"), ("job", "node")]),
            external_labels: Labels::from_pairs([("site", "attic")]),
            external_url: "http://pi:9090".into(),
            value: 0.25,
            histogram: None,
        }
    }

    #[test]
    fn histogram_value_prints_like_go_and_refuses_arithmetic() {
        let h = crate::rules::notation::parse_histogram("{{count:2 sum:3 buckets:[2]}}").unwrap();
        let d = AlertData {
            histogram: Some(Arc::new(h)),
            value: 0.0,
            ..data()
        };
        let mut q = |_: &str| -> Result<Vec<QuerySample>, String> { Ok(vec![]) };
        let tpl = Template::parse("__alert_T", "{{ $value }}|{{ .Value }}").unwrap();
        assert_eq!(
            tpl.expand(&d, &mut q),
            "{count:2, sum:3, (0.5,1]:2}|{count:2, sum:3, (0.5,1]:2}"
        );
        let tpl = Template::parse("__alert_T", "{{ humanize $value }}").unwrap();
        assert!(tpl
            .expand(&d, &mut q)
            .contains("can't convert *histogram.FloatHistogram to float"));
    }

    fn expand(t: &str) -> String {
        let tpl = Template::parse("__alert_T", t).unwrap_or_else(|e| panic!("{t}: {e}"));
        let mut q = |q: &str| -> Result<Vec<QuerySample>, String> {
            match q {
                "up" => Ok(vec![
                    QuerySample {
                        labels: Labels::from_pairs([("__name__", "up"), ("job", "a")]),
                        value: 1.0,
                        histogram: None,
                    },
                    QuerySample {
                        labels: Labels::from_pairs([("__name__", "up"), ("job", "b")]),
                        value: 0.0,
                        histogram: None,
                    },
                ]),
                "none" => Ok(vec![]),
                _ => Err("bad query".into()),
            }
        };
        tpl.expand(&data(), &mut q)
    }

    fn load_err(t: &str) -> String {
        Template::parse("__alert_T", t).unwrap_err().0
    }

    #[test]
    fn variables_and_fields_expand() {
        assert_eq!(
            expand("{{ $labels.instance }} of {{ .Labels.job }}"),
            "host:9100 of node"
        );
        assert_eq!(expand("{{ $value }} {{ .Value }}"), "0.25 0.25");
        assert_eq!(
            expand("{{ $externalLabels.site }} {{ $externalURL }}"),
            "attic http://pi:9090"
        );
        assert_eq!(expand("[{{ $labels.missing }}]"), "[]");
        assert_eq!(expand("{{ $x := 3 }}{{ $x }}{{ $x = 4 }}{{ $x }}"), "34");
    }

    #[test]
    fn humanize_functions_match_prometheus() {
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize(1234567.0), "1.235M");
        assert_eq!(humanize(1000.0), "1k");
        assert_eq!(humanize(12.5), "12.5");
        assert_eq!(humanize(0.0012), "1.2m");
        assert_eq!(humanize(-1500.0), "-1.5k");
        assert_eq!(humanize(f64::INFINITY), "+Inf");
        assert_eq!(humanize1024(1024.0), "1ki");
        assert_eq!(humanize1024(1073741824.0), "1Gi");
        assert_eq!(humanize1024(0.5), "0.5");
        assert_eq!(humanize_duration(0.0), "0s");
        assert_eq!(humanize_duration(3.5), "3.5s");
        assert_eq!(humanize_duration(90061.0), "1d 1h 1m 1s");
        assert_eq!(humanize_duration(3600.0), "1h 0m 0s");
        assert_eq!(humanize_duration(61.0), "1m 1s");
        assert_eq!(humanize_duration(0.25), "250ms");
        assert_eq!(humanize_duration(-90.0), "-1m 30s");
        assert_eq!(expand("{{ humanizePercentage 0.1234 }}"), "12.34%");
        assert_eq!(expand("{{ humanizePercentage $value }}"), "25%");
        assert_eq!(
            humanize_timestamp(1435065584.128),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(humanize_timestamp(0.0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(expand("{{ \"1234567\" | humanize }}"), "1.235M");
    }

    #[test]
    fn control_flow_and_comparisons() {
        assert_eq!(
            expand("{{ if gt $value 0.5 }}hi{{ else if gt $value 0.2 }}mid{{ else }}lo{{ end }}"),
            "mid"
        );
        assert_eq!(
            expand("{{ if eq $labels.job \"node\" \"x\" }}y{{ end }}"),
            "y"
        );
        assert_eq!(expand("{{ with $labels.job }}[{{ . }}]{{ end }}"), "[node]");
        assert_eq!(
            expand("{{ with $labels.nope }}x{{ else }}none{{ end }}"),
            "none"
        );
        assert_eq!(
            expand("{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}"),
            "instance=host:9100;job=node;"
        );
        assert_eq!(
            expand("{{ if and true (not false) }}ok{{ end }}{{ or \"\" \"b\" }}"),
            "okb"
        );
        assert_eq!(
            expand("{{ len $labels }} {{ index $labels \"job\" }}"),
            "2 node"
        );
        assert_eq!(expand("{{- \"a\" -}}  \n  {{ \"b\" }}"), "ab");
        assert_eq!(expand("a{{/* note */}}b"), "ab");
        // Go compares int with float as an error, not a conversion.
        assert!(expand("{{ if gt $value 1 }}x{{ end }}").starts_with("<error expanding template:"));
    }

    #[test]
    fn query_first_value_label() {
        assert_eq!(expand("{{ query \"up\" | first | value }}"), "1");
        assert_eq!(
            expand("{{ with query \"up\" }}{{ . | first | label \"job\" }}{{ end }}"),
            "a"
        );
        assert_eq!(
            expand("{{ range query \"up\" }}{{ .Labels.job }}={{ .Value }} {{ end }}"),
            "a=1 b=0 "
        );
        assert_eq!(
            expand("{{ with query \"none\" }}x{{ else }}empty{{ end }}"),
            "empty"
        );
        assert!(expand("{{ query \"none\" | first }}")
            .contains("first() called on vector with no elements"));
    }

    #[test]
    fn strings_regex_printf() {
        assert_eq!(expand("{{ printf \"%.1f%%\" 12.345 }}"), "12.3%");
        assert_eq!(
            expand(
                "{{ $labels.job | toUpper }} {{ \"hello world\" | title }} {{ toLower \"AB\" }}"
            ),
            "NODE Hello World ab"
        );
        assert_eq!(
            expand("{{ reReplaceAll \":.*\" \"\" $labels.instance }}"),
            "host"
        );
        assert_eq!(
            expand("{{ reReplaceAll \"(.*):(.*)\" \"$2-$1\" $labels.instance }}"),
            "9100-host"
        );
        assert_eq!(
            expand("{{ if match \"^host\" $labels.instance }}m{{ end }}"),
            "m"
        );
        assert_eq!(expand("{{ (args 1 \"x\").arg1 }}"), "x");
        assert_eq!(expand("{{ stripPort $labels.instance }}"), "host");
    }

    #[test]
    fn unsupported_constructs_fail_at_load() {
        assert_eq!(
            load_err("{{ $label.foo }}"),
            "template: __alert_T:1: undefined variable \"$label\""
        );
        assert_eq!(
            load_err("{{ nosuch 1 }}"),
            "template: __alert_T:1: function \"nosuch\" not defined"
        );
        assert_eq!(
            load_err("{{ $labels.x "),
            "template: __alert_T:1: unclosed action"
        );
        assert_eq!(
            load_err("{{ if true }}x"),
            "template: __alert_T:1: unexpected EOF"
        );
        assert!(load_err("{{ define \"x\" }}{{ end }}").contains("not supported"));
        assert!(load_err("{{ call .X }}").contains("not defined"));
        assert!(load_err("{{ end }}").contains("unexpected {{end}}"));
        assert!(load_err("a\n{{ $y }}").starts_with("template: __alert_T:2:"));
        // A variable declared inside a block is not visible after it.
        assert!(
            load_err("{{ if true }}{{ $z := 1 }}{{ end }}{{ $z }}").contains("undefined variable")
        );
    }
}
