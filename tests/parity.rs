//! Parity with node_exporter 1.11, measured three ways:
//!
//! 1. `fixture_families_match_node_exporter_golden_for_implemented_collectors`: every collector
//!    in `COLLECTORS` runs over the recorded trees in `shared/node-fixtures` and its families are
//!    compared with node_exporter's raw scrape of the same trees (TYPE, HELP, label names,
//!    every sample value exactly or within 1e-9 relative).
//! 2. `golden_file_still_describes_the_real_node_exporter_on_fixtures`: the real node_exporter
//!    runs over the same trees with the upstream end-to-end flags, so (1) compares against the
//!    binary, not just a file that might have drifted.
//! 3. `live_machine_promlet_has_95_percent_of_node_exporter_families_with_same_types_labels_and_values`:
//!    node_exporter with its defaults and promlet's default collectors on this machine's /proc
//!    and /sys. At least 95% of node_exporter's `node_*` families (minus [`LEFT_OUT`]) must be
//!    present with the same type and label names, and values that must agree do.
//!
//! Collectors promlet leaves out on purpose (their families do not count in (3)):
//! - `selinux`: probes the live host's selinuxfs and mountinfo, not files under `--path.*`;
//!   the Pi/router targets run without SELinux, and issue 2 does not ask for it.
//! - `textfile`: promlet takes foreign metrics through its scrape and push modules instead of
//!   a textfile directory.
//! - `systemd`: D-Bus, not a file; disabled in node_exporter here too (`--no-collector.systemd`).
//! - `node_exporter_build_info`: promlet exposes `promlet_build_info` instead.

use crate::common::exposition::{parse_text, values_agree, Families, ParsedFamily};
use crate::common::node_fixtures::NodeFixtures;
use crate::common::{self, ChildGuard};
use promlet::collect::{CollectorOptions, Context, Driver, Roots, COLLECTORS};
use promlet::expo::{encode_text, MetricSet};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};

/// Collectors promlet leaves out on purpose, with the reason (see the module docs).
const LEFT_OUT: &[(&str, &str)] = &[
    (
        "selinux",
        "probes live selinuxfs/mountinfo, not --path.* files; no SELinux on the targets",
    ),
    (
        "textfile",
        "foreign metrics come in through promlet's scrape and push modules",
    ),
    ("systemd", "D-Bus; disabled in node_exporter here too"),
    ("(build info)", "promlet exposes promlet_build_info instead"),
];

/// Which node_exporter collector emits a family: the longest matching prefix wins.
/// `(driver)` marks the per-collector self-metrics that `collect::Driver` adds.
const OWNERS: &[(&str, &str)] = &[
    ("node_arp_", "arp"),
    ("node_bcache_", "bcache"),
    ("node_bcachefs_", "bcachefs"),
    ("node_bonding_", "bonding"),
    ("node_boot_time_seconds", "stat"),
    ("node_btrfs_", "btrfs"),
    ("node_buddyinfo_", "buddyinfo"),
    ("node_cgroups_", "cgroups"),
    ("node_context_switches_total", "stat"),
    ("node_cooling_device_", "thermal_zone"),
    ("node_cpu_", "cpu"),
    ("node_cpu_frequency_", "cpufreq"),
    ("node_cpu_scaling_", "cpufreq"),
    ("node_cpu_vulnerabilities_", "cpu_vulnerabilities"),
    ("node_disk_", "diskstats"),
    ("node_dmi_", "dmi"),
    ("node_drbd_", "drbd"),
    ("node_edac_", "edac"),
    ("node_entropy_", "entropy"),
    ("node_exporter_build_info", "(build info)"),
    ("node_fibrechannel_", "fibrechannel"),
    ("node_filefd_", "filefd"),
    ("node_filesystem_", "filesystem"),
    ("node_forks_total", "stat"),
    ("node_hwmon_", "hwmon"),
    ("node_infiniband_", "infiniband"),
    ("node_interrupts_", "interrupts"),
    ("node_intr_total", "stat"),
    ("node_ipvs_", "ipvs"),
    ("node_kernel_hung_", "kernel_hung"),
    ("node_ksmd_", "ksmd"),
    ("node_lnstat_", "lnstat"),
    ("node_load", "loadavg"),
    ("node_md_", "mdadm"),
    ("node_memory_", "meminfo"),
    ("node_memory_numa_", "meminfo_numa"),
    ("node_mountstats_", "mountstats"),
    ("node_netstat_", "netstat"),
    ("node_network_", "netclass"),
    ("node_network_receive_", "netdev"),
    ("node_network_transmit_", "netdev"),
    ("node_network_transmit_queue_length", "netclass"),
    ("node_network_address_info", "netdev"),
    ("node_nf_conntrack_", "conntrack"),
    ("node_nfs_", "nfs"),
    ("node_nfsd_", "nfsd"),
    ("node_nvme_", "nvme"),
    ("node_os_", "os"),
    ("node_pcidevice_", "pcidevice"),
    ("node_power_supply_", "powersupplyclass"),
    ("node_pressure_", "pressure"),
    ("node_processes_", "processes"),
    ("node_procs_", "stat"),
    ("node_qdisc_", "qdisc"),
    ("node_rapl_", "rapl"),
    ("node_schedstat_", "schedstat"),
    ("node_scrape_collector_", "(driver)"),
    ("node_selinux_", "selinux"),
    ("node_slabinfo_", "slabinfo"),
    ("node_sockstat_", "sockstat"),
    ("node_softirqs_functions_total", "softirqs"),
    ("node_softirqs_total", "stat"),
    ("node_softnet_", "softnet"),
    ("node_sysctl_", "sysctl"),
    ("node_systemd_", "systemd"),
    ("node_tape_", "tapestats"),
    ("node_textfile_", "textfile"),
    ("node_thermal_zone_", "thermal_zone"),
    ("node_time_", "time"),
    ("node_timex_", "timex"),
    ("node_udp_queues", "udp_queues"),
    ("node_uname_", "uname"),
    ("node_vmstat_", "vmstat"),
    ("node_watchdog_", "watchdog"),
    ("node_wifi_", "wifi"),
    ("node_xfrm_", "xfrm"),
    ("node_xfs_", "xfs"),
    ("node_zfs_", "zfs"),
    ("node_zoneinfo_", "zoneinfo"),
];

/// The collector that emits `family`, or `?` when the table does not know it.
fn owner(family: &str) -> &'static str {
    OWNERS
        .iter()
        .filter(|(p, _)| family.starts_with(p))
        .max_by_key(|(p, _)| p.len())
        .map(|(_, c)| *c)
        .unwrap_or("?")
}

/// Collectors whose output the fixture trees cannot drive, with the reason.
const FIXTURE_NOT_COMPARABLE: &[(&str, &str)] = &[
    ("filesystem", "statfs(2); disabled in the e2e run"),
    ("timex", "adjtimex(2); disabled in the e2e run"),
    ("uname", "uname(2); disabled in the e2e run"),
    (
        "netdev",
        "e2e reads the live host's lo over netlink; no proc/net/dev in the tree",
    ),
    (
        "wifi",
        "e2e feeds nl80211 data as JSON through a hidden test flag",
    ),
];

/// Families whose values come from the clock or the checkout, not the trees.
const FIXTURE_CLOCK_FAMILIES: &[&str] = &[
    "node_time_seconds",
    "node_time_zone_offset_seconds",
    "node_textfile_mtime_seconds",
    "node_scrape_collector_duration_seconds",
];

/// Collector options equal to the flags of node_exporter's end-to-end run (fixtures README).
/// Options a collector does not declare are ignored.
const E2E_OPTIONS: &[(&str, &str)] = &[
    ("arp.device-exclude", "nope"),
    ("arp.netlink", "false"),
    ("bcache.priorityStats", "true"),
    ("cpu.info", "true"),
    ("cpu.info.bugs-include", "^(cpu_meltdown|spectre_.*|mds)$"),
    ("cpu.info.flags-include", "^(aes|avx.?|constant_tsc)$"),
    ("hwmon.chip-include", "(applesmc|coretemp|hwmon4|nct6779)"),
    ("netclass.ignore-invalid-speed", "true"),
    ("netclass.ignored-devices", "(dmz|int)"),
    ("netdev.device-include", "lo"),
    ("stat.softirq", "true"),
];

/// node_exporter's flags for the e2e run over `collector/fixtures` (fixtures README), minus
/// the listen address.
const E2E_FLAGS: &[&str] = &[
    "--path.rootfs=collector/fixtures",
    "--path.procfs=collector/fixtures/proc",
    "--path.sysfs=collector/fixtures/sys",
    "--path.udev.data=collector/fixtures/udev/data",
    "--collector.arp",
    "--collector.bcache",
    "--collector.bcachefs",
    "--collector.bonding",
    "--collector.btrfs",
    "--collector.buddyinfo",
    "--collector.cgroups",
    "--collector.conntrack",
    "--collector.cpu_vulnerabilities",
    "--collector.dmi",
    "--collector.drbd",
    "--collector.edac",
    "--collector.entropy",
    "--collector.fibrechannel",
    "--collector.filefd",
    "--collector.hwmon",
    "--collector.infiniband",
    "--collector.interrupts",
    "--collector.ipvs",
    "--collector.kernel_hung",
    "--collector.ksmd",
    "--collector.lnstat",
    "--collector.loadavg",
    "--collector.mdadm",
    "--collector.meminfo",
    "--collector.meminfo_numa",
    "--collector.mountstats",
    "--collector.netdev",
    "--collector.netstat",
    "--collector.nfs",
    "--collector.nfsd",
    "--collector.pcidevice",
    "--collector.pressure",
    "--collector.processes",
    "--collector.qdisc",
    "--collector.rapl",
    "--collector.schedstat",
    "--collector.slabinfo",
    "--collector.sockstat",
    "--collector.softirqs",
    "--collector.stat",
    "--collector.sysctl",
    "--collector.textfile",
    "--collector.thermal_zone",
    "--collector.udp_queues",
    "--collector.vmstat",
    "--collector.watchdog",
    "--collector.wifi",
    "--collector.xfrm",
    "--collector.xfs",
    "--collector.zfs",
    "--collector.zoneinfo",
    "--no-collector.filesystem",
    "--no-collector.selinux",
    "--no-collector.timex",
    "--no-collector.uname",
    "--no-collector.systemd",
    "--collector.cpu.info",
    "--collector.arp.device-exclude=nope",
    "--collector.bcache.priorityStats",
    "--collector.cpu.info.bugs-include=^(cpu_meltdown|spectre_.*|mds)$",
    "--collector.cpu.info.flags-include=^(aes|avx.?|constant_tsc)$",
    "--collector.hwmon.chip-include=(applesmc|coretemp|hwmon4|nct6779)",
    "--collector.netclass.ignore-invalid-speed",
    "--collector.netclass.ignored-devices=(dmz|int)",
    "--collector.netdev.device-include=lo",
    "--collector.qdisc.device-include=(wlan0|eth0)",
    "--collector.qdisc.fixtures=collector/fixtures/qdisc/",
    "--collector.stat.softirq",
    "--collector.sysctl.include-info=kernel.seccomp.actions_avail",
    "--collector.sysctl.include=fs.file-nr",
    "--collector.sysctl.include=fs.file-nr:total,current,max",
    "--collector.sysctl.include=kernel.threads-max",
    "--collector.textfile.directory=collector/fixtures/textfile/two_metric_files/",
    "--collector.wifi.fixtures=collector/fixtures/wifi",
    "--no-collector.arp.netlink",
];

/// Rewrites `<dir>/collector/fixtures/...` in label values and HELP to `collector/fixtures/...`,
/// which is what node_exporter printed with `<dir>` as its cwd.
fn strip_link_prefix(fams: &mut Families, prefix: &str) {
    for f in fams.values_mut() {
        f.help = f.help.replace(prefix, "");
        for s in &mut f.samples {
            for (_, v) in &mut s.labels {
                if v.contains(prefix) {
                    *v = v.replace(prefix, "");
                }
            }
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// One collection by promlet's driver, encoded as text and parsed back (so the encoder is part
/// of what is compared).
fn promlet_scrape(driver: &mut Driver, roots: &Roots) -> (Families, String) {
    let mut set = MetricSet::new();
    driver.collect(
        &Context {
            roots,
            now_ms: now_ms(),
        },
        &mut set,
    );
    let mut out = Vec::new();
    encode_text(&set, &mut out);
    let text = String::from_utf8(out).expect("promlet's exposition is UTF-8");
    let fams = parse_text(&text).unwrap_or_else(|e| panic!("promlet's own exposition: {e}"));
    (fams, text)
}

/// The differences between one expected and one actual family, as messages (empty = equal).
fn family_diffs(want: &ParsedFamily, got: &ParsedFamily, compare_values: bool) -> Vec<String> {
    let mut d = Vec::new();
    let name = &want.name;
    if want.typ != got.typ {
        d.push(format!(
            "{name}: TYPE {} != node_exporter's {}",
            got.typ, want.typ
        ));
    }
    if want.help != got.help {
        d.push(format!(
            "{name}: HELP {:?} != node_exporter's {:?}",
            got.help, want.help
        ));
    }
    let want_s: BTreeMap<String, f64> = want.samples.iter().map(|s| (s.key(), s.value)).collect();
    let got_s: BTreeMap<String, f64> = got.samples.iter().map(|s| (s.key(), s.value)).collect();
    for (k, v) in &want_s {
        match got_s.get(k) {
            None => d.push(format!("missing sample {k} {v}")),
            Some(g) if compare_values && !values_agree(*v, *g) => {
                d.push(format!("{k}: value {g} != node_exporter's {v}"))
            }
            _ => {}
        }
    }
    for (k, v) in &got_s {
        if !want_s.contains_key(k) {
            d.push(format!("extra sample {k} {v}"));
        }
    }
    d
}

#[derive(Default)]
struct Row {
    total: usize,
    matched: usize,
    mismatches: Vec<String>,
}

fn load(path: &Path) -> Families {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_text(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (a) See the module docs.
#[test]
fn fixture_families_match_node_exporter_golden_for_implemented_collectors() {
    let Some(fixtures) = common::shared_dir("node-fixtures") else {
        return;
    };
    let golden = load(&fixtures.join("node_exporter-1.11.1-on-fixtures.prom"));
    // Upstream's expected output: the reference for the NVMe namespace families that
    // Debian's build lacks (fixtures README, "Comparison result").
    let upstream = load(&fixtures.join("e2e-output.txt"));

    let link = NodeFixtures::new(&fixtures, "parity-a");
    let roots = link.roots();
    let mut opts = CollectorOptions::default();
    for (k, v) in E2E_OPTIONS {
        opts.set(k, v);
    }
    let mut driver = Driver::new(|_| true, &opts).expect("every collector builds");
    let (mut ours, _) = promlet_scrape(&mut driver, &roots);
    strip_link_prefix(&mut ours, &link.prefix());

    let implemented: Vec<&str> = COLLECTORS.iter().map(|d| d.name).collect();
    let skipped = |c: &str| FIXTURE_NOT_COMPARABLE.iter().find(|(n, _)| *n == c);
    let mut rows: BTreeMap<&str, Row> = BTreeMap::new();
    for c in &implemented {
        if skipped(c).is_none() {
            rows.insert(c, Row::default());
        }
    }

    // Every golden family of an implemented collector must be there and equal.
    for (name, want) in &golden {
        let c = owner(name);
        let Some(row) = rows.get_mut(c) else { continue };
        if FIXTURE_CLOCK_FAMILIES.contains(&name.as_str()) {
            continue;
        }
        row.total += 1;
        match ours.get(name) {
            None => row.mismatches.push(format!("{name}: missing")),
            Some(got) => {
                let d = family_diffs(want, got, true);
                if d.is_empty() {
                    row.matched += 1;
                } else {
                    row.mismatches.extend(d);
                }
            }
        }
    }
    // Families promlet has and the golden file does not: wrong unless upstream has them.
    for (name, got) in &ours {
        let c = owner(name);
        if golden.contains_key(name) || FIXTURE_CLOCK_FAMILIES.contains(&name.as_str()) {
            continue;
        }
        let Some(row) = rows.get_mut(c) else { continue };
        row.total += 1;
        match upstream.get(name) {
            Some(want) if family_diffs(want, got, true).is_empty() => row.matched += 1,
            Some(want) => row.mismatches.extend(family_diffs(want, got, true)),
            None => row
                .mismatches
                .push(format!("{name}: not in node_exporter's output")),
        }
    }
    // Each implemented collector must succeed where node_exporter did.
    let ok = |f: &Families, c: &str| {
        f.get("node_scrape_collector_success").and_then(|fam| {
            fam.samples
                .iter()
                .find(|s| s.label("collector") == Some(c))
                .map(|s| s.value)
        })
    };
    for (c, row) in rows.iter_mut() {
        let want = ok(&golden, c).unwrap_or(0.0);
        if ok(&ours, c) != Some(want) {
            row.mismatches.push(format!(
                "node_scrape_collector_success{{collector={c:?}}} = {:?}, node_exporter: {want}",
                ok(&ours, c)
            ));
        }
    }

    println!("\nfixture parity (promlet vs node_exporter 1.11.1 over shared/node-fixtures)");
    println!("{:<18} {:>9} {:>10}", "collector", "families", "mismatches");
    let (mut fam_total, mut fam_matched, mut bad) = (0, 0, 0);
    for (c, row) in &rows {
        println!(
            "{:<18} {:>4}/{:<4} {:>10}",
            c,
            row.matched,
            row.total,
            row.mismatches.len()
        );
        for m in row.mismatches.iter().take(20) {
            println!("    {m}");
        }
        fam_total += row.total;
        fam_matched += row.matched;
        bad += row.mismatches.len();
    }
    for (c, why) in FIXTURE_NOT_COMPARABLE {
        if implemented.contains(c) {
            println!("{c:<18} not compared: {why}");
        }
    }
    println!(
        "total: {fam_matched}/{fam_total} families match over {} collectors; {bad} mismatches",
        rows.len()
    );
    assert!(
        !rows.is_empty(),
        "COLLECTORS is empty: nothing was compared"
    );
    assert_eq!(bad, 0, "fixture parity mismatches (see the table above)");
}

/// Starts node_exporter on a free port with `args`, in `cwd`, and returns one scrape.
fn node_exporter_scrape(args: &[&str], cwd: &Path) -> Option<(ChildGuard, u16, Families)> {
    let bin = common::stack_bin("prometheus-node-exporter")?;
    let port = common::free_port();
    let child = ChildGuard::spawn(
        Command::new(bin)
            .args(args)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .current_dir(cwd)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    assert!(common::wait_for_port(port), "node_exporter did not listen");
    let fams = scrape_port(port);
    Some((child, port, fams))
}

fn scrape_port(port: u16) -> Families {
    let (status, _, body) = common::http_get(port, "/metrics", "");
    assert_eq!(status, 200, "node_exporter /metrics");
    parse_text(&String::from_utf8_lossy(&body)).expect("node_exporter's exposition parses")
}

/// Families whose values depend on this host or the moment, not on the fixture trees
/// (upstream's `skip_re` plus the durations): compared by TYPE, HELP and label names only.
fn host_dependent(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "go_",
        "process_",
        "promhttp_",
        "node_exporter_build_info",
        "node_scrape_collector_duration_seconds",
        "node_textfile_mtime_seconds",
        "node_time_seconds",
        "node_time_zone_offset_seconds",
        // netdev reads the live host's lo over netlink in the e2e run.
        "node_network_receive_",
        "node_network_transmit_",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) && name != "node_network_transmit_queue_length"
}

/// (b) See the module docs.
#[test]
fn golden_file_still_describes_the_real_node_exporter_on_fixtures() {
    let Some(fixtures) = common::shared_dir("node-fixtures") else {
        return;
    };
    let golden = load(&fixtures.join("node_exporter-1.11.1-on-fixtures.prom"));
    let link = NodeFixtures::new(&fixtures, "parity-b");
    let Some((_child, _port, live)) = node_exporter_scrape(E2E_FLAGS, &link.dir) else {
        return;
    };
    let mut diffs = Vec::new();
    let names: BTreeSet<&String> = golden.keys().chain(live.keys()).collect();
    let mut compared = 0;
    for name in names {
        match (golden.get(name), live.get(name)) {
            (Some(_), None) => diffs.push(format!("{name}: in golden file, not in node_exporter")),
            (None, Some(_)) => diffs.push(format!("{name}: in node_exporter, not in golden file")),
            (Some(want), Some(got)) => {
                compared += 1;
                if host_dependent(name) {
                    if want.typ != got.typ
                        || want.help != got.help
                        || want.label_name_sets() != got.label_name_sets()
                    {
                        diffs.push(format!("{name}: TYPE/HELP/label names changed"));
                    }
                } else {
                    diffs.extend(family_diffs(want, got, true));
                }
            }
            (None, None) => unreachable!(),
        }
    }
    println!(
        "golden vs real node_exporter on fixtures: {compared} families compared, {} differences",
        diffs.len()
    );
    for d in diffs.iter().take(40) {
        println!("    {d}");
    }
    assert!(compared > 1000, "suspiciously few families: {compared}");
    assert!(
        diffs.is_empty(),
        "the golden file no longer describes node_exporter"
    );
}

/// Gauges whose value is fixed while the machine runs: must be equal, not just close.
const MUST_AGREE_EXACTLY: &[&str] = &[
    "node_memory_MemTotal_bytes",
    "node_memory_SwapTotal_bytes",
    "node_boot_time_seconds",
    "node_filefd_maximum",
    "node_entropy_pool_size_bits",
    "node_nf_conntrack_entries_limit",
];

/// Counters must not go backwards: each promlet reading lies between node_exporter's readings
/// taken before and after it (node_exporter's `ne_before <= promlet <= ne_after`).
fn counter_between(before: f64, ours: f64, after: f64, jitter: f64) -> bool {
    let slack = 1e-9 * after.abs().max(1.0) + jitter;
    before - slack <= ours && ours <= after + slack
}

/// (c) See the module docs.
#[test]
fn live_machine_promlet_has_95_percent_of_node_exporter_families_with_same_types_labels_and_values()
{
    let tmp = std::env::temp_dir();
    let roots = Roots::default();
    let mut driver = Driver::new(|d| d.default_enabled, &CollectorOptions::default())
        .expect("default collectors build");
    let Some((_child, port, ne1)) = node_exporter_scrape(&["--no-collector.systemd"], &tmp) else {
        return;
    };
    let (ours1, _) = promlet_scrape(&mut driver, &roots);
    let ne2 = scrape_port(port);
    let (ours2, _) = promlet_scrape(&mut driver, &roots);

    let implemented: BTreeSet<&str> = COLLECTORS.iter().map(|d| d.name).collect();
    let left_out = |c: &str| LEFT_OUT.iter().any(|(n, _)| *n == c);

    #[derive(Default)]
    struct LiveRow {
        total: usize,
        matched: usize,
        missing: Vec<String>,
        shape: Vec<String>,
        values: Vec<String>,
        /// node_exporter series (name + label values) of matched families, and how many of
        /// them promlet also has. Informational: label values legitimately differ in places
        /// (`node_scrape_collector_*{collector}` for left-out collectors).
        series: usize,
        series_found: usize,
        missing_series: Vec<String>,
    }
    let mut rows: BTreeMap<&str, LiveRow> = BTreeMap::new();
    for (name, want) in ne1.iter().filter(|(n, _)| n.starts_with("node_")) {
        let c = owner(name);
        if left_out(c) {
            continue;
        }
        let row = rows.entry(c).or_default();
        row.total += 1;
        let Some(got) = ours1.get(name) else {
            row.missing.push(name.clone());
            continue;
        };
        if want.typ != got.typ || want.label_name_sets() != got.label_name_sets() {
            row.shape.push(format!(
                "{name}: {} {:?} != node_exporter's {} {:?}",
                got.typ,
                got.label_name_sets(),
                want.typ,
                want.label_name_sets()
            ));
            continue;
        }
        row.matched += 1;
        // Values that must agree.
        let after = ne2.get(name);
        let later = ours2.get(name);
        for s in &want.samples {
            let k = s.key();
            let find = |f: Option<&ParsedFamily>| {
                f.and_then(|f| f.samples.iter().find(|x| x.key() == k))
                    .map(|x| x.value)
            };
            row.series += 1;
            let Some(p1) = find(Some(got)) else {
                row.missing_series.push(k);
                continue;
            };
            row.series_found += 1;
            let (Some(n2), Some(p2)) = (find(after), find(later)) else {
                continue;
            };
            if MUST_AGREE_EXACTLY.contains(&name.as_str()) && p1 != s.value {
                row.values
                    .push(format!("{k}: {p1} != node_exporter's {}", s.value));
            }
            // The kernel's per-CPU idle and iowait times may step back a little (proc(5);
            // node_exporter's cpu collector logs "jumped backwards" for it): allow 1 s there.
            let jitter = match s.label("mode") {
                Some("idle" | "iowait") if name == "node_cpu_seconds_total" => 1.0,
                _ => 0.0,
            };
            if want.typ == "counter"
                && !(counter_between(s.value, p1, n2, jitter)
                    && counter_between(n2, p2, f64::INFINITY, jitter))
            {
                row.values.push(format!(
                    "{k}: counter out of order: node_exporter {} / promlet {p1} / node_exporter {n2} / promlet {p2}",
                    s.value
                ));
            }
        }
    }

    println!(
        "\nlive parity (promlet default collectors vs node_exporter 1.11.1 --no-collector.systemd)"
    );
    println!(
        "{:<18} {:<16} {:>9} {:>8} {:>6} {:>7} {:>11}",
        "collector", "promlet", "families", "missing", "shape", "values", "series"
    );
    let (mut total, mut matched, mut value_bad) = (0, 0, 0);
    let (mut series, mut series_found) = (0, 0);
    for (c, row) in &rows {
        let state = if implemented.contains(c) || *c == "(driver)" {
            "implemented"
        } else {
            "NOT IMPLEMENTED"
        };
        println!(
            "{:<18} {:<16} {:>4}/{:<4} {:>8} {:>6} {:>7} {:>5}/{:<5}",
            c,
            state,
            row.matched,
            row.total,
            row.missing.len(),
            row.shape.len(),
            row.values.len(),
            row.series_found,
            row.series
        );
        for m in row.shape.iter().chain(&row.values).take(10) {
            println!("    {m}");
        }
        if implemented.contains(c) {
            for m in row.missing.iter().take(10) {
                println!("    missing {m}");
            }
            if *c != "(driver)" {
                for m in row.missing_series.iter().take(5) {
                    println!("    missing series {m}");
                }
            }
        }
        total += row.total;
        matched += row.matched;
        value_bad += row.values.len();
        series += row.series;
        series_found += row.series_found;
    }
    for (c, why) in LEFT_OUT {
        println!("{c:<18} left out on purpose: {why}");
    }
    let pct = 100.0 * matched as f64 / total.max(1) as f64;
    println!("live parity: {matched}/{total} node_* families = {pct:.1}% (need >= 95%); {value_bad} value disagreements; {series_found}/{series} node_exporter series of those families present");
    assert!(
        total > 50,
        "node_exporter showed only {total} node_* families"
    );
    assert_eq!(
        value_bad, 0,
        "values that must agree do not (see the table)"
    );
    assert!(
        pct >= 95.0,
        "live parity {pct:.1}% < 95% (collectors marked NOT IMPLEMENTED above count as missing)"
    );
}

/// The comparison itself must see every kind of difference, or the tables above prove nothing.
#[test]
fn parity_comparison_reports_type_help_label_and_value_differences() {
    let base = "# HELP node_x Some help.\n# TYPE node_x gauge\nnode_x{a=\"1\"} 5\n";
    let want = &parse_text(base).unwrap()["node_x"];
    assert!(family_diffs(want, want, true).is_empty());
    for (changed, what) in [
        (base.replace("gauge", "counter"), "TYPE"),
        (base.replace("Some help.", "Other help."), "HELP"),
        (base.replace("a=\"1\"", "b=\"1\""), "missing sample"),
        (base.replace("} 5", "} 5.0000001"), "value"),
        (format!("{base}node_x{{a=\"2\"}} 1\n"), "extra sample"),
    ] {
        let got = &parse_text(&changed).unwrap()["node_x"];
        let d = family_diffs(want, got, true);
        assert!(
            d.iter().any(|m| m.contains(what)),
            "{what} change not reported: {d:?}"
        );
    }
    // Within 1e-9 relative is equal (Go and Rust may round a division differently).
    let close = parse_text(&base.replace("} 5", "} 5.000000000001")).unwrap();
    assert!(family_diffs(want, &close["node_x"], true).is_empty());
    // The owner table attributes families to the collector that emits them.
    assert_eq!(owner("node_cpu_scaling_frequency_hertz"), "cpufreq");
    assert_eq!(owner("node_network_transmit_queue_length"), "netclass");
    assert_eq!(owner("node_network_transmit_bytes_total"), "netdev");
    assert_eq!(owner("node_memory_numa_MemFree"), "meminfo_numa");
}

/// `promtool check metrics` over `text`: its exit code and its sorted, deduplicated findings.
fn promtool_check(promtool: &Path, text: &str) -> (i32, Vec<String>) {
    use std::io::Write;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .chain(String::from_utf8_lossy(&out.stdout).lines())
        .map(str::to_string)
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines.sort();
    lines.dedup();
    (out.status.code().unwrap_or(-1), lines)
}

/// promtool (the real one) accepts every collector's fixture output, and its lint findings
/// are ones node_exporter's own output over the same trees also gets (names kept for
/// compatibility, like `node_memory_MemTotal_bytes` in camelCase).
#[test]
fn promtool_finds_nothing_in_collector_output_beyond_node_exporters_own_lint() {
    let Some(fixtures) = common::shared_dir("node-fixtures") else {
        return;
    };
    let Some(promtool) = common::stack_bin("promtool") else {
        return;
    };
    let link = NodeFixtures::new(&fixtures, "promtool");
    let mut opts = CollectorOptions::default();
    for (k, v) in E2E_OPTIONS {
        opts.set(k, v);
    }
    let mut driver = Driver::new(|_| true, &opts).expect("every collector builds");
    let (_, ours) = promlet_scrape(&mut driver, &link.roots());
    let golden = std::fs::read_to_string(fixtures.join("node_exporter-1.11.1-on-fixtures.prom"))
        .expect("golden file");
    let (code, findings) = promtool_check(&promtool, &ours);
    let (_, theirs) = promtool_check(&promtool, &golden);
    let extra: Vec<&String> = findings.iter().filter(|f| !theirs.contains(f)).collect();
    println!(
        "promtool check metrics: exit {code}, {} findings, {} not also found in node_exporter's output",
        findings.len(),
        extra.len()
    );
    for e in extra.iter().take(20) {
        println!("    {e}");
    }
    // 0 = clean, 3 = lint findings only; 1 would be a parse error.
    assert!(code == 0 || code == 3, "promtool exit {code}: {findings:?}");
    assert!(
        extra.is_empty(),
        "lint findings node_exporter does not have"
    );
}
