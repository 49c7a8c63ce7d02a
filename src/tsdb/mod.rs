//! The fixed-size ring-buffer time-series store (issue "Ring-buffer TSDB").
//!
//! Owns: series index, compressed chunks, retention by bytes and time, the on-disk format.
//! Must not touch: PromQL, HTTP, clocks (time comes in as arguments).
