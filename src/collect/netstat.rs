//! `netstat`: /proc/net/netstat, /proc/net/snmp and /proc/net/snmp6 counters selected by
//! `netstat.fields`, as untyped `node_netstat_<Proto>_<Field>` (node_exporter's names and HELP).
//!
//! netstat and snmp come in line pairs (`Proto: names…` then `Proto: values…`); snmp6 has one
//! `Proto6Field value` per line and may be absent (IPv6 disabled).

use super::util::{
    fingerprint, num, option_regex, split_at_byte, split_once_byte, words, FieldSelection, KeptFile,
};
use super::{CollectError, Collector, CollectorOption, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};
use std::path::Path;

pub const OPTIONS: &[CollectorOption] = &[CollectorOption {
    name: "netstat.fields",
    default: "^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts|TCPOFOQueue|TCPRcvQDrop)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$",
    help: "Regexp of fields to return for netstat collector.",
}];

pub struct Netstat {
    /// /proc/net/netstat, /proc/net/snmp, /proc/net/snmp6.
    files: [KeptFile; 3],
    parser: Parser,
}

/// The parsing state, apart from the files so a file's path can be borrowed while parsing.
struct Parser {
    buf: String,
    key: String,
    fields: FieldSelection,
    /// Per header line of a pass over netstat and snmp: the fingerprint of the line as last
    /// read ([`header_fingerprint`]) and the selection of each of its fields. The kernel
    /// prints the same header lines on every read, so one check of the line replaces a
    /// lookup per field (~300 per scrape).
    headers: Vec<(HeaderFingerprint, Vec<Option<u32>>)>,
    /// Header lines seen so far in this pass.
    header_no: usize,
}

pub fn new(opts: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    let re = option_regex("netstat.fields", opts.get("netstat.fields"))?;
    Ok(Box::new(Netstat {
        files: [
            KeptFile::new("net/netstat").short_read_ends(0),
            KeptFile::new("net/snmp").short_read_ends(0),
            KeptFile::new("net/snmp6").short_read_ends(0),
        ],
        parser: Parser {
            buf: String::new(),
            key: String::new(),
            fields: FieldSelection::new(re),
            headers: Vec::new(),
            header_no: 0,
        },
    }))
}

fn describe(key: &str) -> (String, String) {
    // HELP spells the field without the underscore: "Statistic TcpActiveOpens."
    let (proto, field) = split_once_byte(key, b'_').unwrap_or((key, ""));
    (
        format!("node_netstat_{key}"),
        format!("Statistic {proto}{field}."),
    )
}

/// Length and 64-bit hash of a header line ([`fingerprint`]).
type HeaderFingerprint = (usize, u64);

/// Identifies a header line without keeping it: comparing the fresh line with a kept copy
/// read that ~2 KB copy from memory gone cold between scrapes (a quarter of this collector's
/// user-space CPU), while the fresh line is in cache anyway (it was just read and scanned).
/// See [`fingerprint`] for why a hash is safe here.
fn header_fingerprint(line: &str) -> HeaderFingerprint {
    (line.len(), fingerprint(line.as_bytes()))
}

/// `line.split_once(": ")`, by a byte scan for the kernel's `Proto: ...` (std's substring
/// searcher sets up a two-way search per line).
fn proto_and_rest(line: &str) -> Option<(&str, &str)> {
    match split_once_byte(line, b':') {
        Some((proto, rest)) if rest.starts_with(' ') => Some((proto, &rest[1..])),
        _ => line.split_once(": "),
    }
}

impl Parser {
    /// Emits `proto_field` if selected; its value is parsed only then.
    fn emit(
        &mut self,
        proto: &str,
        field: &str,
        value: &str,
        path: &Path,
        out: &mut MetricSet,
    ) -> Result<(), CollectError> {
        self.key.clear();
        self.key.push_str(proto);
        self.key.push('_');
        self.key.push_str(field);
        if let Some((name, help)) = self.fields.get(&self.key, describe) {
            out.single_static(name, help, MetricType::Untyped, num(value, path)?);
        }
        Ok(())
    }

    /// The buffer holds a file of `Proto: names` / `Proto: values` line pairs.
    fn paired(&mut self, path: &Path, out: &mut MetricSet) -> Result<(), CollectError> {
        let buf = std::mem::take(&mut self.buf);
        let result = self.paired_lines(&buf, path, out);
        self.buf = buf;
        result
    }

    fn paired_lines(
        &mut self,
        text: &str,
        path: &Path,
        out: &mut MetricSet,
    ) -> Result<(), CollectError> {
        let mut lines = split_at_byte(text, b'\n')
            .map(|l| match l.as_bytes().last() {
                Some(b'\r') => &l[..l.len() - 1],
                _ => l,
            })
            .filter(|l| !l.trim().is_empty());
        let mut pairs = 0;
        while let Some(names) = lines.next() {
            let values = lines
                .next()
                .ok_or_else(|| CollectError::parse(path, "header line without values"))?;
            let (proto, names) = proto_and_rest(names)
                .ok_or_else(|| CollectError::parse(path, format!("bad header {names:?}")))?;
            let (vproto, values) = proto_and_rest(values)
                .ok_or_else(|| CollectError::parse(path, format!("bad values {values:?}")))?;
            if proto != vproto {
                return Err(CollectError::parse(
                    path,
                    format!("{proto} header, {vproto} values"),
                ));
            }
            let slot = self.header_no;
            self.header_no += 1;
            let print = header_fingerprint(names);
            if self.headers.get(slot).is_none_or(|(p, _)| *p != print) {
                let mut selection = Vec::new();
                for n in names.split(' ') {
                    self.key.clear();
                    self.key.push_str(proto);
                    self.key.push('_');
                    self.key.push_str(n);
                    selection.push(self.fields.lookup(&self.key, describe));
                }
                let entry = (print, selection);
                match self.headers.get_mut(slot) {
                    Some(e) => *e = entry,
                    None => self.headers.push(entry),
                }
            }
            // Only selected values are parsed (~30 of ~300 by default). The selection has one
            // entry per header field, so counting values against it checks the line's length
            // without scanning both lines for spaces first.
            let selection = &self.headers[slot].1;
            let mut count = 0;
            for v in split_at_byte(values, b' ') {
                match selection.get(count) {
                    Some(Some(idx)) => {
                        let (name, help) = self.fields.selected(*idx);
                        out.single_static(name, help, MetricType::Untyped, num(v, path)?);
                    }
                    Some(None) => {}
                    None => {
                        count += 1; // One value too many.
                        break;
                    }
                }
                count += 1;
            }
            if count != selection.len() {
                return Err(CollectError::parse(
                    path,
                    format!("field count mismatch in {proto}"),
                ));
            }
            pairs += 1;
        }
        if pairs == 0 {
            return Err(CollectError::parse(path, "empty"));
        }
        Ok(())
    }

    /// The buffer holds /proc/net/snmp6.
    fn snmp6(&mut self, path: &Path, out: &mut MetricSet) -> Result<(), CollectError> {
        let buf = std::mem::take(&mut self.buf);
        let mut result = Ok(());
        for line in split_at_byte(&buf, b'\n') {
            let mut toks = words(line);
            let (Some(stat), Some(value)) = (toks.next(), toks.next()) else {
                continue;
            };
            // "Ip6InReceives" -> protocol "Ip6", field "InReceives"; lines without a 6 are skipped.
            let Some(six) = stat.bytes().position(|c| c == b'6') else {
                continue;
            };
            if let Err(e) = self.emit(&stat[..=six], &stat[six + 1..], value, path, out) {
                result = Err(e);
                break;
            }
        }
        self.buf = buf;
        result
    }
}

impl Collector for Netstat {
    fn name(&self) -> &'static str {
        "netstat"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        let root = &ctx.roots.procfs;
        let [netstat, snmp, snmp6] = &mut self.files;
        let p = &mut self.parser;
        p.fields.restart();
        p.header_no = 0;
        netstat.read(root, &mut p.buf)?;
        p.paired(netstat.path(), out)?;
        snmp.read(root, &mut p.buf)?;
        p.paired(snmp.path(), out)?;
        match snmp6.read(root, &mut p.buf) {
            // IPv6 disabled.
            Err(ref e) if e.is_not_found() => Ok(()),
            r => {
                r?;
                p.snmp6(snmp6.path(), out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::util::testing::run;

    #[test]
    fn proto_and_rest_splits_like_split_once_colon_space() {
        for line in [
            "Tcp: 1 2", "Tcp:1: 2", "Tcp:", "Tcp: ", "a:b:c: d", "none", ": x", "::  ",
        ] {
            assert_eq!(proto_and_rest(line), line.split_once(": "), "{line:?}");
        }
    }

    fn collector() -> Box<dyn Collector> {
        new(&CollectorOptions::default()).unwrap()
    }

    #[test]
    fn default_fields_select_and_name_like_node_exporter() {
        let (r, text) = run(
            &mut *collector(),
            &[
                (
                    "proc/net/netstat",
                    "TcpExt: SyncookiesSent TW\nTcpExt: 1 2\n",
                ),
                ("proc/net/snmp", "Tcp: ActiveOpens MaxConn\nTcp: 5 -1\n"),
                ("proc/net/snmp6", "Ip6InOctets 7\nIcmp6InMsgs 8\n"),
            ],
        );
        r.unwrap();
        assert!(text.contains(
            "# HELP node_netstat_TcpExt_SyncookiesSent Statistic TcpExtSyncookiesSent.\n"
        ));
        assert!(text.contains(
            "# TYPE node_netstat_Tcp_ActiveOpens untyped\nnode_netstat_Tcp_ActiveOpens 5\n"
        ));
        assert!(text.contains("node_netstat_Ip6_InOctets 7\n"));
        assert!(text.contains("node_netstat_Icmp6_InMsgs 8\n"));
        assert!(
            !text.contains("TcpExt_TW"),
            "TW is not in the default fields"
        );
    }

    #[test]
    fn missing_snmp6_is_fine_but_a_field_count_mismatch_is_not() {
        let base = [
            ("proc/net/netstat", "TcpExt: A\nTcpExt: 1\n"),
            ("proc/net/snmp", "Tcp: A B\nTcp: 1 2\n"),
        ];
        assert!(run(&mut *collector(), &base).0.is_ok());
        let bad = [("proc/net/netstat", "TcpExt: A B\nTcpExt: 1\n"), base[1]];
        assert!(run(&mut *collector(), &bad).0.is_err());
        // More values than names, on a fresh collector and on one that knows the header.
        let extra = [("proc/net/netstat", "TcpExt: A\nTcpExt: 1 2\n"), base[1]];
        assert!(run(&mut *collector(), &extra).0.is_err());
        let mut warm = collector();
        assert!(run(&mut *warm, &base).0.is_ok());
        assert!(run(&mut *warm, &extra).0.is_err());
        assert!(run(&mut *warm, &bad).0.is_err());
        assert!(run(&mut *warm, &base).0.is_ok());
    }

    #[test]
    fn garbage_is_an_error_in_a_selected_value_only() {
        let collect = |netstat: &str, snmp6: &str| {
            let files = [
                ("proc/net/netstat", netstat),
                ("proc/net/snmp", "Tcp: ActiveOpens\nTcp: 5\n"),
                ("proc/net/snmp6", snmp6),
            ];
            run(&mut *collector(), &files).0
        };
        let ok6 = "Ip6InOctets 7\nIp6Unselected x\n";
        assert!(collect("TcpExt: TW SyncookiesSent\nTcpExt: x 1\n", ok6).is_ok());
        assert!(collect("TcpExt: TW SyncookiesSent\nTcpExt: 1 x\n", ok6).is_err());
        let ok = "TcpExt: TW\nTcpExt: 1\n";
        assert!(collect(ok, "Ip6InOctets  x\n").is_err());
    }

    /// The per-line selection cache follows a header line that changes between reads (a
    /// kernel with another field order, a recorded tree rewritten in place).
    #[test]
    fn a_changed_header_line_is_selected_afresh() {
        use crate::collect::fixtures::{run, Scratch};
        let s = Scratch::new("netstat-headers");
        s.write("proc/net/snmp", b"Tcp: ActiveOpens MaxConn\nTcp: 5 -1\n");
        s.write(
            "proc/net/netstat",
            b"TcpExt: SyncookiesSent TW\nTcpExt: 1 2\n",
        );
        let mut c = collector();
        let text = run(c.as_mut(), &s.roots()).unwrap();
        assert!(
            text.contains("node_netstat_TcpExt_SyncookiesSent 1\n"),
            "{text}"
        );
        s.write(
            "proc/net/netstat",
            b"TcpExt: TW SyncookiesSent\nTcpExt: 2 7\n",
        );
        let text = run(c.as_mut(), &s.roots()).unwrap();
        assert!(
            text.contains("node_netstat_TcpExt_SyncookiesSent 7\n"),
            "{text}"
        );
        assert!(text.contains("node_netstat_Tcp_ActiveOpens 5\n"), "{text}");
    }
}
