//! PromQL: lexer, parser (AST with byte positions) and evaluation engine.
//!
//! Owns: the language and its evaluation limits. Reads data only through the TSDB query interface.
//! Must not touch: TSDB internals, HTTP.
//!
//! Scope: Prometheus 3.x float semantics. Native histograms and experimental features
//! (`limitk`, `info`, `fill()`, duration expressions, ...) are rejected with an error.

pub mod ast;
pub mod engine;
pub mod functions;
pub mod lexer;
pub mod parser;
pub mod testing;

pub use ast::Expr;
pub use engine::{instant_query, range_query, EngineOpts, EvalError, QueryResult, Value};
pub use parser::{parse, parse_selector};

/// A syntax or type error with its position, printed like Prometheus's
/// (`1:14: parse error: unexpected "}"`).
#[derive(Clone, Debug, PartialEq)]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

impl ParseError {
    pub(crate) fn at(input: &str, byte: usize, msg: String) -> ParseError {
        let before = &input[..byte.min(input.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
        ParseError { line, col, msg }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: parse error: {}", self.line, self.col, self.msg)
    }
}

impl std::error::Error for ParseError {}
