//! The agent: wires the modules together and runs the single-threaded main loop.
//!
//! Owns: start-up, schedules (monotonic clock), self-metrics, reload and shutdown.
