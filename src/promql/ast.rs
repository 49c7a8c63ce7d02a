//! The PromQL syntax tree, its value types, and a printer whose output parses back to the same tree.
//!
//! Owns: node shapes and their textual form. Must not touch: evaluation or storage.

use super::engine::go_quote;
use crate::model::Matcher;
use std::fmt;

/// Byte range of a node in the query text, for error and annotation positions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// The four PromQL value types a node can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    Scalar,
    String,
    Vector,
    Matrix,
}

impl ValueType {
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::String => "string",
            ValueType::Vector => "instant vector",
            ValueType::Matrix => "range vector",
        }
    }
}

/// A fixed evaluation time from the `@` modifier.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AtModifier {
    /// Milliseconds since the epoch.
    Time(i64),
    Start,
    End,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VectorSelector {
    /// The metric name written before the braces, if any (it is also among `matchers`).
    pub name: Option<String>,
    pub matchers: Vec<Matcher>,
    /// Milliseconds; positive looks into the past.
    pub offset: i64,
    pub at: Option<AtModifier>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eql,
    Neq,
    Gtr,
    Lss,
    Gte,
    Lte,
    And,
    Or,
    Unless,
}

impl BinOp {
    pub fn as_str(self) -> &'static str {
        use BinOp::*;
        match self {
            Add => "+",
            Sub => "-",
            Mul => "*",
            Div => "/",
            Mod => "%",
            Pow => "^",
            Atan2 => "atan2",
            Eql => "==",
            Neq => "!=",
            Gtr => ">",
            Lss => "<",
            Gte => ">=",
            Lte => "<=",
            And => "and",
            Or => "or",
            Unless => "unless",
        }
    }
    /// Binding strength; higher binds tighter.
    pub fn precedence(self) -> u8 {
        use BinOp::*;
        match self {
            Or => 1,
            And | Unless => 2,
            Eql | Neq | Gtr | Lss | Gte | Lte => 3,
            Add | Sub => 4,
            Mul | Div | Mod | Atan2 => 5,
            Pow => 6,
        }
    }
    pub fn is_comparison(self) -> bool {
        use BinOp::*;
        matches!(self, Eql | Neq | Gtr | Lss | Gte | Lte)
    }
    pub fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cardinality {
    OneToOne,
    ManyToOne,
    OneToMany,
    ManyToMany,
}

/// `on`/`ignoring` and `group_left`/`group_right` of a binary operation between vectors.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorMatching {
    pub card: Cardinality,
    /// Labels listed in `on(...)` or `ignoring(...)`.
    pub labels: Vec<String>,
    /// True for `on`, false for `ignoring` (or nothing written).
    pub on: bool,
    /// Labels written in `group_left(...)`/`group_right(...)`.
    pub include: Vec<String>,
    /// Whether `on`/`ignoring` was written at all (for printing).
    pub explicit: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Quantile,
    CountValues,
}

impl AggOp {
    pub fn from_name(s: &str) -> Option<AggOp> {
        use AggOp::*;
        Some(match s {
            "sum" => Sum,
            "avg" => Avg,
            "min" => Min,
            "max" => Max,
            "count" => Count,
            "group" => Group,
            "stddev" => Stddev,
            "stdvar" => Stdvar,
            "topk" => Topk,
            "bottomk" => Bottomk,
            "quantile" => Quantile,
            "count_values" => CountValues,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        use AggOp::*;
        match self {
            Sum => "sum",
            Avg => "avg",
            Min => "min",
            Max => "max",
            Count => "count",
            Group => "group",
            Stddev => "stddev",
            Stdvar => "stdvar",
            Topk => "topk",
            Bottomk => "bottomk",
            Quantile => "quantile",
            CountValues => "count_values",
        }
    }
    /// The type of the parameter before the vector, if the operator takes one.
    pub fn param_type(self) -> Option<ValueType> {
        match self {
            AggOp::Topk | AggOp::Bottomk | AggOp::Quantile => Some(ValueType::Scalar),
            AggOp::CountValues => Some(ValueType::String),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Number(f64, Span),
    Str(String, Span),
    Vector(VectorSelector),
    Matrix {
        vs: VectorSelector,
        /// Milliseconds.
        range: i64,
        span: Span,
    },
    Subquery {
        expr: Box<Expr>,
        range: i64,
        /// None means the default subquery step.
        step: Option<i64>,
        offset: i64,
        at: Option<AtModifier>,
        span: Span,
    },
    Paren(Box<Expr>, Span),
    Neg(Box<Expr>, Span),
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        return_bool: bool,
        matching: Option<VectorMatching>,
        span: Span,
    },
    Aggregate {
        op: AggOp,
        expr: Box<Expr>,
        param: Option<Box<Expr>>,
        grouping: Vec<String>,
        without: bool,
        /// Whether a `by`/`without` clause was written (for printing).
        has_grouping: bool,
        span: Span,
    },
    Call {
        func: &'static super::functions::Function,
        args: Vec<Expr>,
        span: Span,
    },
}

impl Expr {
    pub fn value_type(&self) -> ValueType {
        match self {
            Expr::Number(..) => ValueType::Scalar,
            Expr::Str(..) => ValueType::String,
            Expr::Vector(_) => ValueType::Vector,
            Expr::Matrix { .. } | Expr::Subquery { .. } => ValueType::Matrix,
            Expr::Paren(e, _) | Expr::Neg(e, _) => e.value_type(),
            Expr::Binary { lhs, rhs, .. } => {
                if lhs.value_type() == ValueType::Scalar && rhs.value_type() == ValueType::Scalar {
                    ValueType::Scalar
                } else {
                    ValueType::Vector
                }
            }
            Expr::Aggregate { .. } => ValueType::Vector,
            Expr::Call { func, .. } => func.ret,
        }
    }

    pub fn span(&self) -> Span {
        match self {
            Expr::Number(_, s) | Expr::Str(_, s) | Expr::Paren(_, s) | Expr::Neg(_, s) => *s,
            Expr::Vector(vs) => vs.span,
            Expr::Matrix { span, .. }
            | Expr::Subquery { span, .. }
            | Expr::Binary { span, .. }
            | Expr::Aggregate { span, .. }
            | Expr::Call { span, .. } => *span,
        }
    }

    /// Visits every node, parents before children.
    pub fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Subquery { expr, .. } | Expr::Paren(expr, _) | Expr::Neg(expr, _) => expr.walk(f),
            Expr::Binary { lhs, rhs, .. } => {
                lhs.walk(f);
                rhs.walk(f);
            }
            Expr::Aggregate { expr, param, .. } => {
                if let Some(p) = param {
                    p.walk(f);
                }
                expr.walk(f);
            }
            Expr::Call { args, .. } => args.iter().for_each(|a| a.walk(f)),
            _ => {}
        }
    }
}

/// Formats milliseconds as a Prometheus duration (`1h30m`, `500ms`, `0s`).
pub fn format_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    if rest < 0 {
        out.push('-');
        rest = -rest;
    }
    let units: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    for (u, n) in units {
        if rest >= n {
            out.push_str(&format!("{}{u}", rest / n));
            rest %= n;
        }
    }
    out
}

/// A label name as written in PromQL: bare if it is a valid legacy name, quoted otherwise.
fn label_name(s: &str) -> String {
    let valid = !s.is_empty()
        && s.chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    if valid {
        s.to_string()
    } else {
        go_quote(s)
    }
}

fn is_metric_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().enumerate().all(|(i, c)| {
            c == '_' || c == ':' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
        })
}

fn write_modifiers(
    f: &mut fmt::Formatter<'_>,
    offset: i64,
    at: &Option<AtModifier>,
) -> fmt::Result {
    if let Some(at) = at {
        match at {
            AtModifier::Time(t) => write!(f, " @ {}", format_float_secs(*t))?,
            AtModifier::Start => f.write_str(" @ start()")?,
            AtModifier::End => f.write_str(" @ end()")?,
        }
    }
    if offset != 0 {
        write!(f, " offset {}", format_duration(offset))?;
    }
    Ok(())
}

fn format_float_secs(ms: i64) -> String {
    let s = ms as f64 / 1000.0;
    format!("{s:.3}")
}

/// A number as Prometheus prints literals: shortest digits, never an exponent.
pub fn format_number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

impl fmt::Display for VectorSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms: Vec<&Matcher> = Vec::new();
        let mut name_written = false;
        if let Some(n) = &self.name {
            if is_metric_name(n) {
                f.write_str(n)?;
                name_written = true;
            }
        }
        for m in &self.matchers {
            if name_written
                && m.name == crate::model::METRIC_NAME
                && m.op == crate::model::MatchOp::Equal
                && Some(&m.value) == self.name.as_ref()
            {
                continue;
            }
            ms.push(m);
        }
        if !ms.is_empty() || !name_written {
            f.write_str("{")?;
            for (i, m) in ms.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(
                    f,
                    "{}{}{}",
                    label_name(&m.name),
                    m.op.as_str(),
                    go_quote(&m.value)
                )?;
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}

fn write_labels(f: &mut fmt::Formatter<'_>, ls: &[String]) -> fmt::Result {
    f.write_str("(")?;
    for (i, l) in ls.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        f.write_str(&label_name(l))?;
    }
    f.write_str(")")
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Number(v, _) => f.write_str(&format_number(*v)),
            Expr::Str(s, _) => f.write_str(&go_quote(s)),
            Expr::Vector(vs) => {
                write!(f, "{vs}")?;
                write_modifiers(f, vs.offset, &vs.at)
            }
            Expr::Matrix { vs, range, .. } => {
                write!(f, "{vs}[{}]", format_duration(*range))?;
                write_modifiers(f, vs.offset, &vs.at)
            }
            Expr::Subquery {
                expr,
                range,
                step,
                offset,
                at,
                ..
            } => {
                write!(f, "{expr}[{}:", format_duration(*range))?;
                if let Some(s) = step {
                    f.write_str(&format_duration(*s))?;
                }
                f.write_str("]")?;
                write_modifiers(f, *offset, at)
            }
            Expr::Paren(e, _) => write!(f, "({e})"),
            Expr::Neg(e, _) => write!(f, "-{e}"),
            Expr::Binary {
                op,
                lhs,
                rhs,
                return_bool,
                matching,
                ..
            } => {
                write!(f, "{lhs} {}", op.as_str())?;
                if *return_bool {
                    f.write_str(" bool")?;
                }
                if let Some(m) = matching {
                    if !m.labels.is_empty() || m.on {
                        f.write_str(if m.on { " on " } else { " ignoring " })?;
                        write_labels(f, &m.labels)?;
                        match m.card {
                            Cardinality::ManyToOne => {
                                f.write_str(" group_left ")?;
                                write_labels(f, &m.include)?;
                            }
                            Cardinality::OneToMany => {
                                f.write_str(" group_right ")?;
                                write_labels(f, &m.include)?;
                            }
                            _ => {}
                        }
                    }
                }
                write!(f, " {rhs}")
            }
            Expr::Aggregate {
                op,
                expr,
                param,
                grouping,
                without,
                has_grouping,
                ..
            } => {
                let _ = has_grouping;
                f.write_str(op.as_str())?;
                if *without || !grouping.is_empty() {
                    f.write_str(if *without { " without " } else { " by " })?;
                    write_labels(f, grouping)?;
                    f.write_str(" ")?;
                }
                f.write_str("(")?;
                if let Some(p) = param {
                    write!(f, "{p}, ")?;
                }
                write!(f, "{expr})")
            }
            Expr::Call { func, args, .. } => {
                write!(f, "{}(", func.name)?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
        }
    }
}
