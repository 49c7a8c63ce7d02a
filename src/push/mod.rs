//! The Pushgateway-compatible API: pushed groups, validation, persistence.
//!
//! Must not touch: scheduling, other modules' state.
