//! The DNS prober: one query to the target name server, then rcode and record checks.
//!
//! Owns: the query blackbox_exporter sends (the module's name, type and RD bit, over the
//! module's transport — no TCP retry on truncation here, as blackbox counts what UDP
//! returned), `valid_rcodes`, the four `validate_*_rrs` regexp rules applied to each record's
//! text form, and the `probe_dns_*` gauges.
//! Must not touch: the TSDB. The wire format is [`crate::net::dns`]'s.

use super::config::{DnsModule, RrValidator};
use super::{resolve, split_host_port, Report};
use crate::net::dns::{encode_query_with, exchange, query_id, Rr, Timings, Transport};
use std::net::SocketAddr;

const DURATION: &str = "probe_dns_duration_seconds";
const DURATION_HELP: &str = "Duration of DNS request by phase";

/// Probes the name server `target` (`host[:port]`, port 53 by default).
pub async fn probe(target: &str, m: &DnsModule, r: &mut Report) -> bool {
    for p in ["resolve", "connect", "request"] {
        r.register_labeled(DURATION, DURATION_HELP, "phase", p);
    }
    r.register(
        "probe_dns_answer_rrs",
        "Returns number of entries in the answer resource record list",
    );
    r.register(
        "probe_dns_authority_rrs",
        "Returns number of entries in the authority resource record list",
    );
    r.register(
        "probe_dns_additional_rrs",
        "Returns number of entries in the additional resource record list",
    );
    r.register(
        "probe_dns_query_succeeded",
        "Displays whether or not the query was executed successfully",
    );
    let (host, port) = split_host_port(target);
    let Ok((ip, lookup)) = resolve(&host, m.ip, r).await else {
        return false;
    };
    r.add_labeled(DURATION, DURATION_HELP, "phase", "resolve", lookup);
    let server = SocketAddr::new(ip, port.unwrap_or(53));
    let id = query_id(&m.query_name, m.query_type);
    let query = match encode_query_with(id, &m.query_name, m.query_type, m.recursion_desired) {
        Ok(q) => q,
        Err(e) => {
            r.log(|| e);
            return false;
        }
    };
    let transport = if m.tcp {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    r.log(|| {
        format!(
            "making DNS query to {server}: {} type {}",
            m.query_name, m.query_type
        )
    });
    let mut t = Timings::default();
    let result = exchange(server, &query, id, transport, &mut t).await;
    r.add_labeled(
        DURATION,
        DURATION_HELP,
        "phase",
        "connect",
        t.connect.as_secs_f64(),
    );
    r.add_labeled(
        DURATION,
        DURATION_HELP,
        "phase",
        "request",
        t.request.as_secs_f64(),
    );
    let msg = match result {
        Ok(msg) => msg,
        Err(e) => {
            r.log(|| format!("error while sending a DNS query: {e}"));
            return false;
        }
    };
    r.set(
        "probe_dns_query_succeeded",
        "Displays whether or not the query was executed successfully",
        1.0,
    );
    r.set(
        "probe_dns_answer_rrs",
        "Returns number of entries in the answer resource record list",
        msg.answer.len() as f64,
    );
    r.set(
        "probe_dns_authority_rrs",
        "Returns number of entries in the authority resource record list",
        msg.authority.len() as f64,
    );
    r.set(
        "probe_dns_additional_rrs",
        "Returns number of entries in the additional resource record list",
        msg.additional.len() as f64,
    );
    if m.query_type == crate::net::dns::T_SOA {
        let serial = msg.answer.iter().rev().find_map(|rr| match rr.data {
            crate::net::dns::RData::Soa { serial, .. } => Some(serial),
            _ => None,
        });
        r.set(
            "probe_dns_serial",
            "Returns the serial number of the zone",
            serial.unwrap_or(0) as f64,
        );
    }
    let valid = if m.valid_rcodes.is_empty() {
        msg.rcode == 0
    } else {
        m.valid_rcodes.contains(&msg.rcode)
    };
    if !valid {
        r.log(|| format!("rcode {} is not one of the valid rcodes", msg.rcode));
        return false;
    }
    for (name, rrs, v) in [
        ("answer", &msg.answer, &m.answer),
        ("authority", &msg.authority, &m.authority),
        ("additional", &msg.additional, &m.additional),
    ] {
        if let Err(e) = valid_rrs(rrs, v) {
            r.log(|| format!("{name} RRs validation failed: {e}"));
            return false;
        }
    }
    true
}

/// blackbox's `validRRs`: each rule over each record's text.
fn valid_rrs(rrs: &[Rr], v: &RrValidator) -> Result<(), String> {
    if rrs.is_empty() && !v.fail_if_not_matches.is_empty() {
        return Err("fail_if_not_matches_regexp specified but no RRs returned".into());
    }
    if rrs.is_empty() && !v.fail_if_none_matches.is_empty() {
        return Err("fail_if_none_matches_regexp specified but no RRs returned".into());
    }
    let mut any = false;
    let mut all = true;
    for rr in rrs {
        let text = rr.to_text();
        if let Some(p) = v.fail_if_matches.iter().find(|p| p.0.is_match(&text)) {
            return Err(format!("{text:?} matched {:?}", p.0.as_str()));
        }
        if v.fail_if_all_match.iter().any(|p| !p.0.is_match(&text)) {
            all = false;
        }
        if let Some(p) = v.fail_if_not_matches.iter().find(|p| !p.0.is_match(&text)) {
            return Err(format!("{text:?} did not match {:?}", p.0.as_str()));
        }
        if v.fail_if_none_matches.iter().any(|p| p.0.is_match(&text)) {
            any = true;
        }
    }
    if !v.fail_if_all_match.is_empty() && all {
        return Err("all RRs matched".into());
    }
    if !v.fail_if_none_matches.is_empty() && !any {
        return Err("none of the RRs matched".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::dns::RData;
    use crate::probe::config::Pattern;
    use regex_lite::Regex;

    fn a(ip: [u8; 4]) -> Rr {
        Rr {
            name: "h.lan.".into(),
            typ: crate::net::dns::T_A,
            class: 1,
            ttl: 0,
            data: RData::A(ip.into()),
        }
    }

    fn p(s: &str) -> Vec<Pattern> {
        vec![Pattern(Regex::new(s).unwrap())]
    }

    #[test]
    fn record_rules_follow_blackbox() {
        let rrs = [a([10, 0, 0, 1]), a([10, 0, 0, 2])];
        let ok = |v: RrValidator, rrs: &[Rr]| valid_rrs(rrs, &v).is_ok();
        assert!(!ok(
            RrValidator {
                fail_if_matches: p("10.0.0.2$"),
                ..Default::default()
            },
            &rrs
        ));
        assert!(ok(
            RrValidator {
                fail_if_matches: p("10.0.0.3$"),
                ..Default::default()
            },
            &rrs
        ));
        assert!(!ok(
            RrValidator {
                fail_if_not_matches: p("10.0.0.1$"),
                ..Default::default()
            },
            &rrs
        ));
        assert!(ok(
            RrValidator {
                fail_if_not_matches: p("10.0.0"),
                ..Default::default()
            },
            &rrs
        ));
        assert!(!ok(
            RrValidator {
                fail_if_not_matches: p("x"),
                ..Default::default()
            },
            &[]
        ));
        assert!(!ok(
            RrValidator {
                fail_if_all_match: p("10"),
                ..Default::default()
            },
            &rrs
        ));
        assert!(ok(
            RrValidator {
                fail_if_all_match: p("0.1$"),
                ..Default::default()
            },
            &rrs
        ));
        assert!(ok(
            RrValidator {
                fail_if_none_matches: p("0.2$"),
                ..Default::default()
            },
            &rrs
        ));
        assert!(!ok(
            RrValidator {
                fail_if_none_matches: p("0.3$"),
                ..Default::default()
            },
            &rrs
        ));
    }
}
