//! promlet's integration tests, built as one binary. Each module's doc says what it covers.

mod common;
mod promql_diff;
mod promqltest;
