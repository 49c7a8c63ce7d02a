//! Small async network clients shared by the modules that go out on the network (scrape,
//! probe): today the DNS resolver.
//!
//! Owns: wire formats and exchanges that are not HTTP (the HTTP client is
//! [`crate::scrape::client`]).
//! Must not touch: the TSDB, configuration, metrics: callers turn results into those.

pub mod dns;
