//! `nfsd`: NFS server statistics from /proc/net/rpc/nfsd as `node_nfsd_*`. No NFS server
//! module (no such file) is `NotFound`.
//!
//! Lines: `rc` reply cache, `fh` file handles, `io` bytes, `th` threads, `ra` read-ahead cache,
//! `net`, `rpc`, `procN` per-procedure counters (see [`super::nfs`]), `proc4ops` NFSv4
//! operations, `wdeleg_getattr` (kernel 6.x). Unknown lines from newer kernels are skipped.

use super::nfs::{check_fixed, check_proc, value, V2, V3};
use super::util::{lines, split_once_byte, words, KeptFile};
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};

/// NFSv4 server operations exported, with their index in the `proc4ops` values (after the
/// count). node_exporter skips the unused ops 0-2 and PUTPUBFH/PUTROOTFH.
const V4_OPS: [(&str, usize); 36] = [
    ("Access", 4),
    ("Close", 5),
    ("Commit", 6),
    ("Create", 7),
    ("DelegPurge", 8),
    ("DelegReturn", 9),
    ("GetAttr", 10),
    ("GetFH", 11),
    ("Link", 12),
    ("Lock", 13),
    ("Lockt", 14),
    ("Locku", 15),
    ("Lookup", 16),
    ("LookupRoot", 17),
    ("Nverify", 18),
    ("Open", 19),
    ("OpenAttr", 20),
    ("OpenConfirm", 21),
    ("OpenDgrd", 22),
    ("PutFH", 23),
    ("Read", 26),
    ("ReadDir", 27),
    ("ReadLink", 28),
    ("Remove", 29),
    ("Rename", 30),
    ("Renew", 31),
    ("RestoreFH", 32),
    ("SaveFH", 33),
    ("SecInfo", 34),
    ("SetAttr", 35),
    ("SetClientID", 36),
    ("SetClientIDConfirm", 37),
    ("Verify", 38),
    ("Write", 39),
    ("RelLockOwner", 40),
    ("WdelegGetattr", usize::MAX),
];

pub struct Nfsd {
    buf: String,
    file: KeptFile,
}

impl Default for Nfsd {
    fn default() -> Self {
        Nfsd {
            buf: String::new(),
            file: KeptFile::new("net/rpc/nfsd"),
        }
    }
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::<Nfsd>::default())
}

/// The lines the collector uses, validated.
#[derive(Default)]
struct Lines<'a> {
    rc: Option<&'a str>,
    fh: Option<&'a str>,
    io: Option<&'a str>,
    th: Option<&'a str>,
    ra: Option<&'a str>,
    net: Option<&'a str>,
    rpc: Option<&'a str>,
    proc2: Option<&'a str>,
    proc3: Option<&'a str>,
    proc4ops: Option<&'a str>,
    wdeleg_getattr: Option<&'a str>,
}

impl Collector for Nfsd {
    fn name(&self) -> &'static str {
        "nfsd"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        self.file.read(&ctx.roots.procfs, &mut self.buf)?;
        let path = self.file.path();
        let mut l = Lines::default();
        for line in lines(&self.buf).filter(|l| !l.trim().is_empty()) {
            let (key, values) = split_once_byte(line, b' ').unwrap_or((line, ""));
            let slot = match key {
                "rc" => {
                    check_fixed(values, 3, key, path)?;
                    &mut l.rc
                }
                "fh" => {
                    check_fixed(values, 5, key, path)?;
                    &mut l.fh
                }
                "io" => {
                    check_fixed(values, 2, key, path)?;
                    &mut l.io
                }
                // Threads, then (old kernels) a histogram of floats that is not exported.
                "th" => {
                    value(values, 0, key, path)?;
                    &mut l.th
                }
                "ra" => {
                    check_fixed(values, 12, key, path)?;
                    &mut l.ra
                }
                "net" => {
                    check_fixed(values, 4, key, path)?;
                    &mut l.net
                }
                "rpc" => {
                    check_fixed(values, 5, key, path)?;
                    &mut l.rpc
                }
                "proc2" => {
                    check_proc(values, V2.len(), key, path)?;
                    &mut l.proc2
                }
                "proc3" => {
                    check_proc(values, V3.len(), key, path)?;
                    &mut l.proc3
                }
                "proc4ops" => {
                    check_proc(values, 39, key, path)?;
                    &mut l.proc4ops
                }
                "wdeleg_getattr" => {
                    check_fixed(values, 1, key, path)?;
                    &mut l.wdeleg_getattr
                }
                // proc4 (null/compound counts) and lines newer kernels add.
                _ if key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
                {
                    continue
                }
                _ => return Err(CollectError::parse(path, format!("bad line {line:?}"))),
            };
            *slot = Some(values);
        }
        let Some(rpc) = l.rpc else {
            return Err(CollectError::parse(path, "no rpc line"));
        };
        // Absent lines read as zeros, as in node_exporter (its parser leaves the struct zeroed).
        let v = |values: Option<&str>, n: usize| -> f64 {
            values
                .and_then(|s| words(s).nth(n))
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(0) as f64
        };
        let c = MetricType::Counter;
        out.single_static(
            "node_nfsd_reply_cache_hits_total",
            "Total number of NFSd Reply Cache hits (client lost server response).",
            c,
            v(l.rc, 0),
        );
        out.single_static(
            "node_nfsd_reply_cache_misses_total",
            "Total number of NFSd Reply Cache an operation that requires caching (idempotent).",
            c,
            v(l.rc, 1),
        );
        out.single_static(
            "node_nfsd_reply_cache_nocache_total",
            "Total number of NFSd Reply Cache non-idempotent operations (rename/delete/…).",
            c,
            v(l.rc, 2),
        );
        out.single_static(
            "node_nfsd_file_handles_stale_total",
            "Total number of NFSd stale file handles",
            c,
            v(l.fh, 0),
        );
        out.single_static(
            "node_nfsd_disk_bytes_read_total",
            "Total NFSd bytes read.",
            c,
            v(l.io, 0),
        );
        out.single_static(
            "node_nfsd_disk_bytes_written_total",
            "Total NFSd bytes written.",
            c,
            v(l.io, 1),
        );
        out.single_static(
            "node_nfsd_server_threads",
            "Total number of NFSd kernel threads that are running.",
            MetricType::Gauge,
            v(l.th, 0),
        );
        out.single_static(
            "node_nfsd_read_ahead_cache_size_blocks",
            "How large the read ahead cache is in blocks.",
            MetricType::Gauge,
            v(l.ra, 0),
        );
        out.single_static(
            "node_nfsd_read_ahead_cache_not_found_total",
            "Total number of NFSd read ahead cache not found.",
            c,
            v(l.ra, 11),
        );
        let packets = out.family_static(
            "node_nfsd_packets_total",
            "Total NFSd network packets (sent+received) by protocol type.",
            c,
        );
        out.sample(packets, &[("proto", &"udp")], v(l.net, 1));
        out.sample(packets, &[("proto", &"tcp")], v(l.net, 2));
        out.single_static(
            "node_nfsd_connections_total",
            "Total number of NFSd TCP connections.",
            c,
            v(l.net, 3),
        );
        let errors = out.family_static(
            "node_nfsd_rpc_errors_total",
            "Total number of NFSd RPC errors by error type.",
            c,
        );
        out.sample(errors, &[("error", &"fmt")], v(Some(rpc), 2));
        out.sample(errors, &[("error", &"auth")], v(Some(rpc), 3));
        out.sample(errors, &[("error", &"cInt")], v(Some(rpc), 4));
        out.single_static(
            "node_nfsd_server_rpcs_total",
            "Total number of NFSd RPCs.",
            c,
            v(Some(rpc), 0),
        );
        let requests = out.family_static(
            "node_nfsd_requests_total",
            "Total number NFSd Requests by method and protocol.",
            c,
        );
        // v2 and v3 without the Null procedure, as node_exporter exports them.
        for (i, name) in V2.iter().enumerate().skip(1) {
            out.sample(
                requests,
                &[("method", name), ("proto", &"2")],
                v(l.proc2, i + 1),
            );
        }
        for (i, name) in V3.iter().enumerate().skip(1) {
            out.sample(
                requests,
                &[("method", name), ("proto", &"3")],
                v(l.proc3, i + 1),
            );
        }
        for (name, i) in V4_OPS {
            let n = if i == usize::MAX {
                v(l.wdeleg_getattr, 0)
            } else {
                v(l.proc4ops, i)
            };
            out.sample(requests, &[("method", &name), ("proto", &"4")], n);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::util::testing::run;

    #[test]
    fn server_lines_map_to_node_exporter_names_and_new_lines_are_skipped() {
        let ops = format!(
            "proc4ops 40 {}\n",
            (1..=40)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let file = format!("rc 0 6 18622\nth 8 0 0.000 0.000\nnet 972 55 917 1\nrpc 18628 3 1 2 0\n{ops}future_line 1 2\n");
        let (r, text) = run(&mut Nfsd::default(), &[("proc/net/rpc/nfsd", &file)]);
        r.unwrap();
        assert!(text.contains("node_nfsd_rpc_errors_total{error=\"auth\"} 2\n"));
        assert!(text.contains("node_nfsd_server_threads 8\n"));
        // Access is op 3: the 4th value after the count.
        assert!(text.contains("node_nfsd_requests_total{method=\"Access\",proto=\"4\"} 4\n"));
        assert!(text.contains("node_nfsd_requests_total{method=\"RelLockOwner\",proto=\"4\"} 40\n"));
        assert!(!text.contains("PutRootFH"));
        assert!(!text.contains("method=\"Null\""));
    }

    #[test]
    fn missing_rpc_line_is_an_error() {
        let (r, _) = run(&mut Nfsd::default(), &[("proc/net/rpc/nfsd", "rc 0 6 1\n")]);
        assert!(r.is_err());
    }
}
