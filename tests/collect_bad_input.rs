//! Truncated, empty and garbage /proc files fed through `Roots`: every procfs collector must
//! return an error (never panic) on garbage, and never invent families on a truncated file.
//!
//! Each case copies the collector's files from shared/node-fixtures into a fresh temp tree,
//! checks that the intact copy collects fine, then damages one file at a time.

use crate::common::{self, TempDir};
use promlet::collect::{CollectError, CollectorOptions, Context, Roots, COLLECTORS};
use promlet::expo::MetricSet;
use std::collections::BTreeSet;
use std::path::Path;

/// Each procfs collector and the files it reads (relative to the fixture root).
const CASES: &[(&str, &[&str])] = &[
    (
        "conntrack",
        &[
            "proc/sys/net/netfilter/nf_conntrack_count",
            "proc/sys/net/netfilter/nf_conntrack_max",
            "proc/net/stat/nf_conntrack",
        ],
    ),
    ("diskstats", &["proc/diskstats"]),
    (
        "entropy",
        &[
            "proc/sys/kernel/random/entropy_avail",
            "proc/sys/kernel/random/poolsize",
        ],
    ),
    ("filefd", &["proc/sys/fs/file-nr"]),
    ("ipvs", &["proc/net/ip_vs_stats", "proc/net/ip_vs"]),
    ("kernel_hung", &["proc/sys/kernel/hung_task_detect_count"]),
    ("loadavg", &["proc/loadavg"]),
    ("mdadm", &["proc/mdstat"]),
    ("meminfo", &["proc/meminfo"]),
    (
        "netstat",
        &["proc/net/netstat", "proc/net/snmp", "proc/net/snmp6"],
    ),
    ("nfs", &["proc/net/rpc/nfs"]),
    ("nfsd", &["proc/net/rpc/nfsd"]),
    (
        "pressure",
        &[
            "proc/pressure/cpu",
            "proc/pressure/io",
            "proc/pressure/memory",
            "proc/pressure/irq",
        ],
    ),
    ("schedstat", &["proc/schedstat"]),
    ("sockstat", &["proc/net/sockstat", "proc/net/sockstat6"]),
    ("softnet", &["proc/net/softnet_stat"]),
    ("stat", &["proc/stat"]),
    ("udp_queues", &["proc/net/udp"]),
    ("vmstat", &["proc/vmstat"]),
    (
        "zfs",
        &[
            "proc/spl/kstat/zfs/arcstats",
            "proc/spl/kstat/zfs/pool1/io",
            "proc/spl/kstat/zfs/pool1/objset-1",
        ],
    ),
];

/// Files where an empty or text-garbage copy is legitimately "nothing to report", as in
/// node_exporter: snmp6 lines without an IPv6 counter name are skipped, and a zpool `io` file
/// without its `nread …` header has no I/O stats.
const LENIENT: &[&str] = &["proc/net/snmp6", "proc/spl/kstat/zfs/pool1/io"];

/// Text that is no /proc format at all.
const TEXT_GARBAGE: &str =
    "\u{1}\u{2}zz not a number: ~~ x y z\n\t\tqq 0x:: == 6e6e 66\n-- -- --\n";

fn roots(root: &Path) -> Roots {
    Roots {
        procfs: root.join("proc"),
        sysfs: root.join("sys"),
        rootfs: root.to_path_buf(),
        udev_data: root.join("udev/data"),
    }
}

/// Runs collector `name` over `root`: its result and the families it declared with samples.
fn run(name: &str, root: &Path) -> (Result<(), CollectError>, BTreeSet<String>) {
    let def = COLLECTORS
        .iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("collector {name} is not in COLLECTORS"));
    let mut c = (def.new)(&CollectorOptions::default()).unwrap();
    let mut set = MetricSet::new();
    let r = c.collect(
        &Context {
            roots: &roots(root),
            now_ms: 0,
        },
        &mut set,
    );
    let fams = set.samples().map(|s| s.family_name().to_string()).collect();
    (r, fams)
}

#[test]
fn procfs_collectors_reject_garbage_and_survive_truncation() {
    let Some(fixtures) = common::shared_dir("node-fixtures") else {
        return;
    };
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, files) in CASES {
        let tree = TempDir::new(&format!("bad-input-{name}"));
        for f in *files {
            let dst = tree.0.join(f);
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            std::fs::copy(fixtures.join(f), &dst).unwrap();
        }
        let (r, baseline) = run(name, &tree.0);
        assert!(
            r.is_ok(),
            "{name}: intact fixture copy fails: {:?}",
            r.err()
        );
        assert!(!baseline.is_empty(), "{name}: intact copy gave no samples");

        for f in *files {
            let path = tree.0.join(f);
            let good = std::fs::read(&path).unwrap();
            let lenient = LENIENT.contains(f);
            let mut variants: Vec<(String, Vec<u8>, bool)> = vec![
                ("empty".into(), Vec::new(), !lenient),
                ("text garbage".into(), TEXT_GARBAGE.into(), !lenient),
                (
                    "binary garbage (invalid UTF-8)".into(),
                    vec![0xff, 0xfe, 0x00, 0x9f, b'1', b' ', 0xc3],
                    true,
                ),
            ];
            // Cuts at several points, most of them inside a line.
            for frac in [1, 2, 3, 5, 7] {
                let cut = good.len() * frac / 8;
                if cut > 0 && cut < good.len() {
                    variants.push((
                        format!("truncated at {cut}/{}", good.len()),
                        good[..cut].to_vec(),
                        false,
                    ));
                }
            }
            for (what, bytes, must_fail) in variants {
                std::fs::write(&path, &bytes).unwrap();
                let outcome = std::panic::catch_unwind(|| run(name, &tree.0));
                checked += 1;
                match outcome {
                    Err(_) => failures.push(format!("{name}: {f} {what}: PANIC")),
                    Ok((Ok(()), _)) if must_fail => {
                        failures.push(format!("{name}: {f} {what}: accepted"))
                    }
                    Ok((Ok(()), fams)) => {
                        let invented: Vec<_> = fams.difference(&baseline).collect();
                        if !invented.is_empty() {
                            failures.push(format!("{name}: {f} {what}: invented {invented:?}"));
                        }
                    }
                    Ok((Err(e), _)) if e.is_not_found() => failures.push(format!(
                        "{name}: {f} {what}: reported as absent ({}), not as bad",
                        e.path().display()
                    )),
                    Ok((Err(_), _)) => {}
                }
            }
            std::fs::write(&path, &good).unwrap();
        }
    }
    println!(
        "bad input: {checked} damaged-file runs over {} collectors",
        CASES.len()
    );
    assert!(
        failures.is_empty(),
        "bad input handling:\n{}",
        failures.join("\n")
    );
}

#[test]
fn procfs_collectors_report_absent_sources_as_not_found() {
    let empty = TempDir::new("absent");
    for (name, _) in CASES {
        let (r, fams) = run(name, &empty.0);
        assert!(
            matches!(r, Err(ref e) if e.is_not_found()),
            "{name}: empty root gave {r:?}, want NotFound"
        );
        assert!(
            fams.is_empty(),
            "{name}: samples from an empty root: {fams:?}"
        );
    }
}

/// Steady-state collection allocates per file read (path strings), never per sample: after two
/// warm-up cycles, a cycle over the fixture trees allocates far fewer times than it has samples.
#[test]
fn procfs_collectors_do_not_allocate_per_sample_in_steady_state() {
    let Some(fixtures) = common::shared_dir("node-fixtures") else {
        return;
    };
    let tree = common::node_fixtures::NodeFixtures::new(&fixtures, "alloc");
    let roots = tree.roots();
    let names: Vec<&str> = CASES.iter().map(|(n, _)| *n).collect();
    let mut opts = CollectorOptions::default();
    opts.set("stat.softirq", "true");
    let mut driver = promlet::collect::Driver::new(|d| names.contains(&d.name), &opts).unwrap();
    let ctx = Context {
        roots: &roots,
        now_ms: 0,
    };
    let mut set = MetricSet::new();
    for _ in 0..2 {
        set.clear();
        driver.collect(&ctx, &mut set);
    }
    set.clear();
    let ((), allocs) = common::alloc_counter::count_allocations(|| driver.collect(&ctx, &mut set));
    let samples = set.sample_count();
    let files: usize = CASES.iter().map(|(_, f)| f.len()).sum();
    println!("steady state: {allocs} allocations for {samples} samples from {files}+ files");
    assert!(samples > 300, "only {samples} samples");
    assert!(
        (allocs as usize) < samples / 4,
        "{allocs} allocations for {samples} samples: something allocates per sample"
    );
}
