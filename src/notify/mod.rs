//! Alert notification: routing, grouping, silences, local receivers, the Alertmanager queue.
//!
//! Must not touch: rule evaluation.
