//! `nfs`: NFS client statistics from /proc/net/rpc/nfs as `node_nfs_*`. No NFS client module
//! (no such file) is `NotFound`.
//!
//! The file is `<key> <values…>` lines: `net` (packets, udp, tcp, tcp connections), `rpc`
//! (calls, retransmissions, auth refreshes) and `procN` (a count, then one counter per
//! procedure of protocol version N, in the order of the `V2`, `V3` and `V4_CLIENT` tables).

use super::util::{lines, split_once_byte, words, KeptFile};
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};
use std::path::Path;

/// NFSv2 procedures, in /proc order (kernel `nfs_procedures`).
pub(crate) const V2: [&str; 18] = [
    "Null", "GetAttr", "SetAttr", "Root", "Lookup", "ReadLink", "Read", "WrCache", "Write",
    "Create", "Remove", "Rename", "Link", "SymLink", "MkDir", "RmDir", "ReadDir", "FsStat",
];

/// NFSv3 procedures, in /proc order.
pub(crate) const V3: [&str; 22] = [
    "Null",
    "GetAttr",
    "SetAttr",
    "Lookup",
    "Access",
    "ReadLink",
    "Read",
    "Write",
    "Create",
    "MkDir",
    "SymLink",
    "MkNod",
    "Remove",
    "RmDir",
    "Rename",
    "Link",
    "ReadDir",
    "ReadDirPlus",
    "FsStat",
    "FsInfo",
    "PathConf",
    "Commit",
];

/// NFSv4 client operations, in /proc order; older kernels print fewer (the rest read 0).
const V4_CLIENT: [&str; 59] = [
    "Null",
    "Read",
    "Write",
    "Commit",
    "Open",
    "OpenConfirm",
    "OpenNoattr",
    "OpenDowngrade",
    "Close",
    "Setattr",
    "FsInfo",
    "Renew",
    "SetClientID",
    "SetClientIDConfirm",
    "Lock",
    "Lockt",
    "Locku",
    "Access",
    "Getattr",
    "Lookup",
    "LookupRoot",
    "Remove",
    "Rename",
    "Link",
    "Symlink",
    "Create",
    "Pathconf",
    "StatFs",
    "ReadLink",
    "ReadDir",
    "ServerCaps",
    "DelegReturn",
    "GetACL",
    "SetACL",
    "FsLocations",
    "ReleaseLockowner",
    "Secinfo",
    "FsidPresent",
    "ExchangeID",
    "CreateSession",
    "DestroySession",
    "Sequence",
    "GetLeaseTime",
    "ReclaimComplete",
    "GetDeviceInfo",
    "LayoutGet",
    "LayoutCommit",
    "LayoutReturn",
    "SecinfoNoName",
    "TestStateID",
    "FreeStateID",
    "GetDeviceList",
    "BindConnToSession",
    "DestroyClientID",
    "Seek",
    "Allocate",
    "DeAllocate",
    "LayoutStats",
    "Clone",
];

/// The `n`th value of a line's values, or an error naming the line.
pub(crate) fn value(values: &str, n: usize, key: &str, path: &Path) -> Result<u64, CollectError> {
    let tok = values
        .split_ascii_whitespace()
        .nth(n)
        .ok_or_else(|| CollectError::parse(path, format!("{key} line has no value {n}")))?;
    tok.parse()
        .map_err(|_| CollectError::parse(path, format!("{key}: bad number {tok:?}")))
}

/// Checks a `procN` line: every value an integer, the leading count equal to the number of
/// values after it and at least `min`.
pub(crate) fn check_proc(
    values: &str,
    min: usize,
    key: &str,
    path: &Path,
) -> Result<usize, CollectError> {
    let count = value(values, 0, key, path)? as usize;
    let n = words(values).count() - 1;
    if count != n || count < min {
        return Err(CollectError::parse(
            path,
            format!("{key}: count {count}, {n} values"),
        ));
    }
    for tok in words(values) {
        tok.parse::<u64>()
            .map_err(|_| CollectError::parse(path, format!("{key}: bad number {tok:?}")))?;
    }
    Ok(count)
}

/// Requires exactly `n` integer values.
pub(crate) fn check_fixed(
    values: &str,
    n: usize,
    key: &str,
    path: &Path,
) -> Result<(), CollectError> {
    let got = words(values).count();
    if got != n {
        return Err(CollectError::parse(
            path,
            format!("{key}: {got} values, want {n}"),
        ));
    }
    for i in 0..n {
        value(values, i, key, path)?;
    }
    Ok(())
}

pub struct Nfs {
    buf: String,
    file: KeptFile,
}

impl Default for Nfs {
    fn default() -> Self {
        Nfs {
            buf: String::new(),
            file: KeptFile::new("net/rpc/nfs"),
        }
    }
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::<Nfs>::default())
}

impl Collector for Nfs {
    fn name(&self) -> &'static str {
        "nfs"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        self.file.read(&ctx.roots.procfs, &mut self.buf)?;
        let path = self.file.path();
        // Validate every line before emitting anything.
        let (mut net, mut rpc) = (None, None);
        let mut procs: [Option<&str>; 3] = [None; 3];
        for line in lines(&self.buf).filter(|l| !l.trim().is_empty()) {
            let (key, values) = split_once_byte(line, b' ').unwrap_or((line, ""));
            match key {
                "net" => {
                    check_fixed(values, 4, key, path)?;
                    net = Some(values);
                }
                "rpc" => {
                    check_fixed(values, 3, key, path)?;
                    rpc = Some(values);
                }
                "proc2" => {
                    check_proc(values, V2.len(), key, path)?;
                    procs[0] = Some(values);
                }
                "proc3" => {
                    check_proc(values, V3.len(), key, path)?;
                    procs[1] = Some(values);
                }
                "proc4" => {
                    check_proc(values, 0, key, path)?;
                    procs[2] = Some(values);
                }
                _ => return Err(CollectError::parse(path, format!("unknown line {key:?}"))),
            }
        }
        let (Some(net), Some(rpc)) = (net, rpc) else {
            return Err(CollectError::parse(path, "no net or rpc line"));
        };
        let v = |values: &str, n: usize| value(values, n, "", path).map(|x| x as f64);
        let packets = out.family_static(
            "node_nfs_packets_total",
            "Total NFSd network packets (sent+received) by protocol type.",
            MetricType::Counter,
        );
        out.sample(packets, &[("protocol", &"udp")], v(net, 1)?);
        out.sample(packets, &[("protocol", &"tcp")], v(net, 2)?);
        out.single_static(
            "node_nfs_connections_total",
            "Total number of NFSd TCP connections.",
            MetricType::Counter,
            v(net, 3)?,
        );
        out.single_static(
            "node_nfs_rpcs_total",
            "Total number of RPCs performed.",
            MetricType::Counter,
            v(rpc, 0)?,
        );
        out.single_static(
            "node_nfs_rpc_retransmissions_total",
            "Number of RPC transmissions performed.",
            MetricType::Counter,
            v(rpc, 1)?,
        );
        out.single_static(
            "node_nfs_rpc_authentication_refreshes_total",
            "Number of RPC authentication refreshes performed.",
            MetricType::Counter,
            v(rpc, 2)?,
        );
        let requests = out.family_static(
            "node_nfs_requests_total",
            "Number of NFS procedures invoked.",
            MetricType::Counter,
        );
        let tables: [(&str, &[&str]); 3] = [("2", &V2), ("3", &V3), ("4", &V4_CLIENT)];
        for ((proto, names), values) in tables.into_iter().zip(procs) {
            // node_exporter reports every procedure of every version, 0 when the line is absent.
            let values = values.unwrap_or("0");
            let mut toks = words(values).skip(1);
            for name in names {
                let n: f64 = toks.next().and_then(|t| t.parse().ok()).unwrap_or(0.0);
                out.sample(requests, &[("method", name), ("proto", &proto)], n);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::util::testing::run;

    #[test]
    fn short_v4_lines_pad_with_zeros_and_all_versions_are_reported() {
        let file = "net 1 2 3 4\nrpc 5 6 7\nproc4 2 8 9\n";
        let (r, text) = run(&mut Nfs::default(), &[("proc/net/rpc/nfs", file)]);
        r.unwrap();
        assert!(text.contains("node_nfs_requests_total{method=\"Read\",proto=\"4\"} 9\n"));
        assert!(text.contains("node_nfs_requests_total{method=\"Clone\",proto=\"4\"} 0\n"));
        assert!(text.contains("node_nfs_requests_total{method=\"Null\",proto=\"2\"} 0\n"));
        assert!(text.contains("node_nfs_packets_total{protocol=\"tcp\"} 3\n"));
        assert!(text.contains("node_nfs_rpc_retransmissions_total 6\n"));
    }

    #[test]
    fn count_mismatch_or_unknown_line_is_an_error() {
        let bad_count = "net 1 2 3 4\nrpc 5 6 7\nproc4 3 8 9\n";
        assert!(run(&mut Nfs::default(), &[("proc/net/rpc/nfs", bad_count)])
            .0
            .is_err());
        let unknown = "net 1 2 3 4\nrpc 5 6 7\nfoo 1\n";
        assert!(run(&mut Nfs::default(), &[("proc/net/rpc/nfs", unknown)])
            .0
            .is_err());
    }
}
