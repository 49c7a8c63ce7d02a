//! promlet's integration tests, built as one binary. Each module's doc says what it covers.

mod common;
/// The HTTP/1.1 server at the wire level: exact bytes, limits, timeouts, the connection cap.
mod http;
