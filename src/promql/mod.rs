//! PromQL: lexer, parser (AST with byte positions) and evaluation engine.
//!
//! Owns: the language and its evaluation limits. Reads data only through the TSDB query interface.
//! Must not touch: TSDB internals, HTTP.
//!
//! ```text
//!  text ─► lexer ─► parser (precedence climbing, type checks) ─► ast::Expr ─► engine ─► Value
//!                                                                   ▲            │
//!                                                      ast Display (round-trips) tsdb::Querier
//! ```
//!
//! Scope: Prometheus 3.x semantics, as its own promqltest suite and a real Prometheus 3.5
//! check them (tests/promqltest.rs, tests/promql_diff.rs): left-open ranges, 5 m lookback,
//! staleness markers, `@`/`offset`, subqueries, delayed `__name__` removal, every aggregation,
//! operator and float function.
//!
//! Native histograms ([`crate::histogram`]) are values like floats (`VecSample::h`,
//! `Series::hpoints`), matching promtool 3.5.3: selection, unary minus, `+`/`-` between
//! histograms, `*`/`/` by scalars, `==`/`!=`, `sum`/`avg` (`count`/`group` count them, the
//! other aggregations ignore them with an info), `histogram_count/sum/avg/stddev/stdvar`,
//! native `histogram_quantile`/`histogram_fraction`, `rate`/`increase`/`delta`/`irate`/`idelta`
//! with counter-reset correction (subqueries re-detect resets from values),
//! `sum/avg/count/last/present_over_time`, `changes`, `resets`; float functions drop them.
//! Only the in-memory test store holds histograms: the ring TSDB stores floats.
//! Not yet: `count_values` over histograms, reconciling mismatched custom bucket bounds and
//! the trim operators (`</`, `>/`) of newer Prometheus versions.
//!
//! **Not supported** (a parse error, never a wrong answer): experimental functions
//! (`histogram_quantiles`, `limitk`, `limit_ratio`, `info`, `first_over_time`,
//! `mad_over_time`, `ts_of_*`, `sort_by_label*`, `double_exponential_smoothing`,
//! `start()`/`end()`/`range()`/`step()` as functions) and experimental syntax (duration
//! expressions, `anchored`/`smoothed`, `fill()` modifiers).
//!
//! Limits ([`EngineOpts`]): timeout, max samples (fetched and produced), lookback delta; the
//! parser bounds nesting depth and operator count so no query can exhaust the stack.

pub mod ast;
pub mod engine;
pub mod functions;
pub mod lexer;
pub mod parser;
pub mod testing;

pub use ast::Expr;
pub use engine::{
    instant_query, instant_selector_each, range_query, EngineOpts, EvalError, QueryResult, Value,
};
pub use parser::{parse, parse_selector};

/// A syntax or type error with its position, printed like Prometheus's
/// (`1:14: parse error: unexpected "}"`). One pointer wide (fields read through `Deref`): every
/// parser function returns it, and a 40-byte error in each `Result` cost code size.
#[derive(Clone, Debug, PartialEq)]
pub struct ParseError(Box<ParseErrorAt>);

/// The fields of a [`ParseError`].
#[derive(Clone, Debug, PartialEq)]
pub struct ParseErrorAt {
    /// 1-based; 0 when there is no position to name (an empty query, as Prometheus says).
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

impl ParseError {
    pub(crate) fn at(input: &str, byte: usize, msg: String) -> ParseError {
        let before = &input[..byte.min(input.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
        ParseError(Box::new(ParseErrorAt { line, col, msg }))
    }
}

impl std::ops::Deref for ParseError {
    type Target = ParseErrorAt;
    fn deref(&self) -> &ParseErrorAt {
        &self.0
    }
}

impl std::ops::DerefMut for ParseError {
    fn deref_mut(&mut self) -> &mut ParseErrorAt {
        &mut self.0
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            return write!(f, "unknown position: parse error: {}", self.msg);
        }
        write!(f, "{}:{}: parse error: {}", self.line, self.col, self.msg)
    }
}

impl std::error::Error for ParseError {}
