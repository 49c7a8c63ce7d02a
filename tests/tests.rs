//! promlet's integration tests, built as one binary. Each module's doc says what it covers.

mod common;

/// Parity with node_exporter 1.11: fixture trees vs its golden scrape, the golden file vs the
/// real binary, and this machine's families vs the real binary.
mod parity;

/// Truncated, empty, garbage and absent /proc files through the procfs collectors.
mod collect_bad_input;

/// Exact series equality with the live node_exporter for info and static families.
mod collect_live_exact;
