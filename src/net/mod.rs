//! Small async network clients shared by the modules that go out on the network (scrape,
//! probe): the DNS resolver, and splitting `host:port`.
//!
//! Owns: wire formats and exchanges that are not HTTP (the HTTP client is
//! [`crate::scrape::client`]).
//! Must not touch: the TSDB, configuration, metrics: callers turn results into those.

pub mod dns;

/// Splits `host:port`, `[v6]:port` or a bare host (port None).
pub fn split_host_port(target: &str) -> (String, Option<u16>) {
    if let Some(rest) = target.strip_prefix('[') {
        if let Some((h, p)) = rest.split_once(']') {
            return (
                h.to_string(),
                p.strip_prefix(':').and_then(|p| p.parse().ok()),
            );
        }
    }
    match target.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(port) => (h.to_string(), Some(port)),
            Err(_) => (target.to_string(), None),
        },
        _ => (target.to_string(), None),
    }
}
