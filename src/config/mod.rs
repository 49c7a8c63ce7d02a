//! The YAML configuration: loading, validation into typed structs, positioned errors.
//!
//! Must not touch: sockets, the TSDB.
