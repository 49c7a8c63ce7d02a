//! `mdadm`: Linux software RAID from /proc/mdstat (`node_md_state`, `_disks`,
//! `_disks_required`, `_blocks`, `_blocks_synced`) and /sys/block/md*/md
//! (`node_md_degraded`, `node_md_raid_disks`). No /proc/mdstat (md driver not loaded) is
//! `NotFound`.
//!
//! An array in /proc/mdstat is a header line (`md0 : active raid1 sda1[0] sdb1[1](F)`), an
//! indented status line (`N blocks … [total/active] [UU]`), and optionally a bitmap line and a
//! sync line (`recovery = 8.5% (16775552/195310144)`, `resync=PENDING`).

use super::util::{lines, num, read_into, split_once_byte, words, KeptFile};
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};
use std::path::Path;

/// The `state` label values, in node_exporter's order.
const STATES: [&str; 5] = ["active", "inactive", "recovering", "resync", "check"];

pub struct Mdadm {
    mdstat: KeptFile,
    buf: String,
    small: String,
    path: std::path::PathBuf,
}

impl Default for Mdadm {
    fn default() -> Self {
        Mdadm {
            mdstat: KeptFile::new("mdstat"),
            buf: String::new(),
            small: String::new(),
            path: Default::default(),
        }
    }
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::<Mdadm>::default())
}

/// One array as /proc/mdstat describes it.
#[derive(Debug, PartialEq)]
struct Array<'a> {
    name: &'a str,
    /// Index into [`STATES`], or `None` for states node_exporter has no label for (reshape).
    state: Option<usize>,
    active: u32,
    failed: u32,
    spare: u32,
    required: u64,
    blocks: u64,
    synced: u64,
}

fn bad(path: &Path, what: String) -> CollectError {
    CollectError::parse(path, what)
}

/// Parses one array given its header line and the lines after it.
fn parse_array<'a>(
    header: &'a str,
    mut rest: super::util::Lines<'a>,
    path: &Path,
) -> Result<Array<'a>, CollectError> {
    let mut toks = words(header);
    let name = toks.next().unwrap_or("");
    if toks.next() != Some(":") {
        return Err(bad(path, format!("bad array line {header:?}")));
    }
    let activity = toks.next().unwrap_or("");
    if activity != "active" && activity != "inactive" {
        return Err(bad(path, format!("unknown array state in {header:?}")));
    }
    let (mut active, mut failed, mut spare, mut devices) = (0, 0, 0, 0u64);
    for t in toks.filter(|t| t.contains('[')) {
        devices += 1;
        if t.ends_with("(F)") {
            failed += 1;
        } else if t.ends_with("(S)") {
            spare += 1;
        } else {
            active += 1;
        }
    }
    let status = rest
        .next()
        .filter(|l| l.starts_with([' ', '\t']))
        .ok_or_else(|| bad(path, format!("{name}: no status line")))?;
    let mut stoks = words(status);
    let blocks = match (stoks.next(), stoks.next()) {
        (Some(n), Some("blocks")) => n
            .parse::<u64>()
            .map_err(|_| bad(path, format!("{name}: bad block count {n:?}")))?,
        _ => return Err(bad(path, format!("{name}: bad status line {status:?}"))),
    };
    // `[total/active]`, absent for raid0 and linear.
    let total = status
        .split_ascii_whitespace()
        .filter_map(|t| t.strip_prefix('[')?.strip_suffix(']')?.split_once('/'))
        .find_map(|(t, _)| t.parse::<u64>().ok());
    let mut sync = rest
        .next()
        .filter(|l| l.starts_with([' ', '\t']))
        .unwrap_or("");
    if sync.contains("bitmap") {
        sync = rest
            .next()
            .filter(|l| l.starts_with([' ', '\t']))
            .unwrap_or("");
    }
    let syncing = ["recovery", "resync", "check", "reshape"]
        .iter()
        .position(|k| sync.contains(k));
    let state = if activity == "inactive" {
        Some(1)
    } else {
        match syncing {
            None => Some(0),
            Some(0) => Some(2),
            Some(1) => Some(3),
            Some(2) => Some(4),
            Some(_) => None,
        }
    };
    let synced = if syncing.is_none() {
        blocks
    } else if sync.contains("PENDING") || sync.contains("DELAYED") {
        0
    } else {
        // `(16775552/195310144)`
        sync.split('(')
            .nth(1)
            .and_then(|s| split_once_byte(s, b'/'))
            .and_then(|(done, _)| done.parse::<u64>().ok())
            .ok_or_else(|| bad(path, format!("{name}: bad sync line {sync:?}")))?
    };
    let required = if activity == "inactive" {
        0
    } else {
        total.unwrap_or(devices)
    };
    Ok(Array {
        name,
        state,
        active,
        failed,
        spare,
        required,
        blocks,
        synced,
    })
}

impl Mdadm {
    fn mdstat(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        self.mdstat.read(&ctx.roots.procfs, &mut self.buf)?;
        let path = self.mdstat.path();
        if !self.buf.starts_with("Personalities") {
            return Err(bad(path, "no Personalities line".into()));
        }
        let state = out.family_static(
            "node_md_state",
            "Indicates the state of md-device.",
            MetricType::Gauge,
        );
        let disks = out.family_static(
            "node_md_disks",
            "Number of active/failed/spare disks of device.",
            MetricType::Gauge,
        );
        let required = out.family_static(
            "node_md_disks_required",
            "Total number of disks of device.",
            MetricType::Gauge,
        );
        let blocks = out.family_static(
            "node_md_blocks",
            "Total number of blocks on device.",
            MetricType::Gauge,
        );
        let synced = out.family_static(
            "node_md_blocks_synced",
            "Number of blocks synced on device.",
            MetricType::Gauge,
        );
        let mut lines = lines(&self.buf);
        while let Some(line) = lines.next() {
            if line.trim().is_empty()
                || line.starts_with([' ', '\t'])
                || line.starts_with("Personalities")
                || line.starts_with("unused")
            {
                continue;
            }
            let a = parse_array(line, lines.clone(), path)?;
            let dev = ("device", &a.name as &dyn crate::expo::LabelValue);
            for (i, s) in STATES.iter().enumerate() {
                let on = if a.state == Some(i) { 1.0 } else { 0.0 };
                out.sample(state, &[dev, ("state", s)], on);
            }
            out.sample(disks, &[dev, ("state", &"active")], a.active as f64);
            out.sample(disks, &[dev, ("state", &"failed")], a.failed as f64);
            out.sample(disks, &[dev, ("state", &"spare")], a.spare as f64);
            out.sample(required, &[dev], a.required as f64);
            out.sample(blocks, &[dev], a.blocks as f64);
            out.sample(synced, &[dev], a.synced as f64);
        }
        Ok(())
    }

    /// /sys/block/md*/md: `raid_disks` and `degraded` (only redundant levels have the latter).
    fn sysfs(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        let dir = ctx.roots.sys("block");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        let degraded = out.family_static(
            "node_md_degraded",
            "Number of degraded disks on device.",
            MetricType::Gauge,
        );
        let raid_disks = out.family_static(
            "node_md_raid_disks",
            "Number of raid disks on device.",
            MetricType::Gauge,
        );
        let mut p = std::mem::take(&mut self.path);
        let mut result = Ok(());
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str().filter(|n| n.starts_with("md")) else {
                continue;
            };
            p.as_mut_os_string().clear();
            p.push(&dir);
            p.push(name);
            p.push("md");
            if !p.is_dir() {
                continue;
            }
            p.push("raid_disks");
            let disks = read_into(&p, &mut self.small).and_then(|()| num(self.small.trim(), &p));
            p.set_file_name("degraded");
            let deg = match read_into(&p, &mut self.small) {
                Err(ref e) if e.is_not_found() => Ok(0.0),
                r => r.and_then(|()| num(self.small.trim(), &p)),
            };
            match (disks, deg) {
                (Ok(disks), Ok(deg)) => {
                    out.sample(degraded, &[("device", &name)], deg);
                    out.sample(raid_disks, &[("device", &name)], disks);
                }
                (Err(e), _) | (_, Err(e)) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.path = p;
        result
    }
}

impl Collector for Mdadm {
    fn name(&self) -> &'static str {
        "mdadm"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        self.mdstat(ctx, out)?;
        self.sysfs(ctx, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array(text: &str) -> Result<Array<'_>, CollectError> {
        let mut lines = lines(text);
        let header = lines.next().unwrap();
        parse_array(header, lines, Path::new("mdstat"))
    }

    #[test]
    fn recovering_array_reports_synced_blocks_from_the_sync_line() {
        let a = array(
            "md6 : active raid1 sdb2[2](F) sdc[1](S) sda2[0]\n      195310144 blocks [2/1] [U_]\n      [=>..]  recovery =  8.5% (16775552/195310144) finish=17.0min\n",
        )
        .unwrap();
        assert_eq!((a.state, a.active, a.failed, a.spare), (Some(2), 1, 1, 1));
        assert_eq!((a.required, a.blocks, a.synced), (2, 195310144, 16775552));
    }

    #[test]
    fn raid0_counts_devices_and_inactive_requires_none() {
        let a = array("md10 : active raid0 sda1[0] sdb1[1]\n       314159265 blocks 64k chunks\n")
            .unwrap();
        assert_eq!((a.required, a.synced), (2, 314159265));
        let a =
            array("md4 : inactive raid1 sda3[0](F) sdb3[1](S)\n      4883648 blocks [2/2] [UU]\n")
                .unwrap();
        assert_eq!((a.state, a.required, a.active), (Some(1), 0, 0));
    }

    #[test]
    fn pending_resync_has_nothing_synced_and_bitmap_lines_are_skipped() {
        let a = array("md11 : active (auto-read-only) raid1 sdb2[0] sdc2[1]\n      4190208 blocks super 1.2 [2/2] [UU]\n      resync=PENDING\n").unwrap();
        assert_eq!((a.state, a.synced), (Some(3), 0));
        let a = array("md7 : active raid6 sdb1[0] sde1[3]\n      7813735424 blocks super 1.2 level 6 [4/3] [U_UU]\n      bitmap: 0/30 pages [0KB], 65536KB chunk\n").unwrap();
        assert_eq!((a.state, a.synced), (Some(0), 7813735424));
    }

    #[test]
    fn missing_status_line_is_an_error() {
        assert!(array("md0 : active raid1 sda[0]\n").is_err());
        assert!(array("md0 : active raid1 sda[0]\nmd1 : active raid1 sdb[0]\n").is_err());
        assert!(array("md0 : busy raid1 sda[0]\n   10 blocks\n").is_err());
    }
}
