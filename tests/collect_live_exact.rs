//! Exact series equality with the real node_exporter 1.11 on this machine, for the families
//! whose label values and values do not change between two scrapes a moment apart: info
//! metrics (uname, os, network info, mount info, clocksources) and static sizes and
//! properties. The family-level parity test cannot see a wrong label *value*; this one can.

use crate::common::exposition::{parse_text, Families};
use crate::common::{self, ChildGuard};
use promlet::collect::{CollectorOptions, Context, Driver, Roots};
use promlet::expo::{encode_text, MetricSet};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};

/// Families compared series by series, value by value.
const STATIC_FAMILIES: &[&str] = &[
    "node_uname_info",
    "node_os_info",
    "node_os_version",
    "node_network_info",
    "node_network_mtu_bytes",
    "node_network_speed_bytes",
    "node_network_flags",
    "node_network_iface_id",
    "node_network_protocol_type",
    "node_network_transmit_queue_length",
    // netclass's other attributes: from the rtnetlink dump (or skipped where the kernel
    // refuses them, e.g. carrier of a device that is down) or from sysfs.
    "node_network_up",
    "node_network_carrier",
    "node_network_dormant",
    "node_network_carrier_changes_total",
    "node_network_carrier_up_changes_total",
    "node_network_carrier_down_changes_total",
    "node_network_iface_link",
    "node_network_iface_link_mode",
    "node_network_net_dev_group",
    "node_network_address_assign_type",
    "node_network_device_id",
    "node_network_name_assign_type",
    "node_filesystem_mount_info",
    "node_filesystem_size_bytes",
    "node_filesystem_files",
    "node_time_clocksource_available_info",
    "node_time_clocksource_current_info",
    "node_time_zone_offset_seconds",
    "node_timex_tick_seconds",
    "node_timex_status",
    "node_cpu_online",
    "node_thermal_zone_temp",
    "node_dmi_info",
];

/// Same series, values may differ: promlet reports `ro` mounts as read-only where
/// node_exporter 1.11 does not (docs/collectors-sysfs.md, "Known differences").
const SAME_SERIES_ONLY: &[&str] = &["node_filesystem_readonly"];

fn series(f: &Families, name: &str) -> BTreeMap<String, f64> {
    f.get(name)
        .map(|fam| fam.samples.iter().map(|s| (s.key(), s.value)).collect())
        .unwrap_or_default()
}

#[test]
fn static_series_equal_node_exporter_on_this_machine() {
    let Some(bin) = common::stack_bin("prometheus-node-exporter") else {
        return;
    };
    let port = common::free_port();
    let _child = ChildGuard::spawn(
        Command::new(bin)
            .arg("--no-collector.systemd")
            // Debian patches this default; promlet uses upstream's (docs/collectors-sysfs.md).
            .arg("--collector.filesystem.mount-points-exclude=^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    assert!(common::wait_for_port(port), "node_exporter did not listen");
    let (status, _, body) = common::http_get(port, "/metrics", "");
    assert_eq!(status, 200);
    let ne = parse_text(&String::from_utf8_lossy(&body)).expect("node_exporter's exposition");

    let roots = Roots::default();
    let mut driver = Driver::new(|d| d.default_enabled, &CollectorOptions::default()).unwrap();
    let mut set = MetricSet::new();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    driver.collect(
        &Context {
            roots: &roots,
            now_ms,
        },
        &mut set,
    );
    let mut out = Vec::new();
    encode_text(&set, &mut out);
    let ours = parse_text(&String::from_utf8(out).unwrap()).unwrap();

    let mut compared = 0;
    let mut diffs = Vec::new();
    for name in STATIC_FAMILIES {
        let (want, got) = (series(&ne, name), series(&ours, name));
        compared += want.len();
        if want != got {
            diffs.push(format!(
                "{name}:\n  node_exporter {want:?}\n  promlet       {got:?}"
            ));
        }
    }
    for name in SAME_SERIES_ONLY {
        let (want, got) = (series(&ne, name), series(&ours, name));
        if !want.keys().eq(got.keys()) {
            diffs.push(format!("{name}: series differ: {want:?} vs {got:?}"));
        }
    }
    println!("{compared} static series compared exactly with node_exporter");
    assert!(
        compared >= 10,
        "node_exporter showed only {compared} static series"
    );
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}
