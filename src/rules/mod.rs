//! Recording and alerting rules.
//!
//! Owns: rule groups, evaluation schedule, alert state. Calls the engine through a query function.
//! Must not touch: the engine type, notify internals.
