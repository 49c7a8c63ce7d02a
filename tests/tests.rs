//! promlet's integration tests, built as one binary. Each module's doc says what it covers.

mod common;

/// The exposition parser cross-checked with the real promtool.
mod expo_parse;

/// The textfile collector against node_exporter (expected outputs and the real binary).
mod textfile;
