//! The HTTP/1.1 server on `Async<TcpListener>` + httparse, with limits and timeouts, and routing.
//!
//! Must not touch: evaluating anything itself; handlers call into other modules.

pub mod api_v1;
pub mod json;
