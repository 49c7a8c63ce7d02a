//! `diskstats`: block device I/O from /proc/diskstats as `node_disk_*{device}`, plus
//! `node_disk_info` (with udev's path/wwn/model/serial/revision and sysfs `rotational`),
//! `node_disk_filesystem_info`, `node_disk_device_mapper_info` and the `node_disk_ata_*`
//! gauges from the udev database (`Roots::udev_data`, `b<major>:<minor>` files) when present.
//!
//! Known difference: `rotational` is the kernel's `queue/rotational`. node_exporter 1.11 reads
//! ~34 `queue/*` files through procfs and reports 0 when any one is missing (virtio disks have
//! no `io_timeout`, so it labels them `rotational="0"` although the kernel says 1). Reading one
//! file instead of 34 per device and scrape, and reporting what the kernel says, is worth that
//! difference in one label value of `node_disk_info`.
//!
//! Devices are filtered with `diskstats.device-exclude` (node_exporter's default skips
//! partitions, ram, loop and floppy devices) or `diskstats.device-include`.

use super::sysfs::KeptAttrs;
use super::util::{
    fingerprint, lines, num, option_regex, split_once_byte, words, AbsentPaths, KeptFile,
};
use super::{CollectError, Collector, CollectorOption, CollectorOptions, Context};
use crate::expo::{FamilyId, MetricSet, MetricType};
use std::fmt::Write;
use std::path::PathBuf;

pub const OPTIONS: &[CollectorOption] = &[
    CollectorOption {
        name: "diskstats.device-exclude",
        default: r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$",
        help: "Regexp of diskstats devices to exclude (mutually exclusive to device-include).",
    },
    CollectorOption {
        name: "diskstats.device-include",
        default: "",
        help: "Regexp of diskstats devices to include (mutually exclusive to device-exclude).",
    },
];

/// Seconds per diskstats tick (ms), spelled as node_exporter does so products match bit-for-bit.
const SECONDS_PER_TICK: f64 = 1.0 / 1000.0;
/// diskstats sectors are always 512 bytes, whatever the device's block size.
const SECTOR: f64 = 512.0;

/// The counters after major/minor/name, in file order: (metric, HELP, type, scale).
const STATS: [(&str, &str, MetricType, f64); 17] = [
    (
        "node_disk_reads_completed_total",
        "The total number of reads completed successfully.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_reads_merged_total",
        "The total number of reads merged.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_read_bytes_total",
        "The total number of bytes read successfully.",
        MetricType::Counter,
        SECTOR,
    ),
    (
        "node_disk_read_time_seconds_total",
        "The total number of seconds spent by all reads.",
        MetricType::Counter,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_writes_completed_total",
        "The total number of writes completed successfully.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_writes_merged_total",
        "The number of writes merged.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_written_bytes_total",
        "The total number of bytes written successfully.",
        MetricType::Counter,
        SECTOR,
    ),
    (
        "node_disk_write_time_seconds_total",
        "This is the total number of seconds spent by all writes.",
        MetricType::Counter,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_io_now",
        "The number of I/Os currently in progress.",
        MetricType::Gauge,
        1.0,
    ),
    (
        "node_disk_io_time_seconds_total",
        "Total seconds spent doing I/Os.",
        MetricType::Counter,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_io_time_weighted_seconds_total",
        "The weighted # of seconds spent doing I/Os.",
        MetricType::Counter,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_discards_completed_total",
        "The total number of discards completed successfully.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_discards_merged_total",
        "The total number of discards merged.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_discarded_sectors_total",
        "The total number of sectors discarded successfully.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_discard_time_seconds_total",
        "This is the total number of seconds spent by all discards.",
        MetricType::Counter,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_flush_requests_total",
        "The total number of flush requests completed successfully",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_flush_requests_time_seconds_total",
        "This is the total number of seconds spent by all flush requests.",
        MetricType::Counter,
        SECONDS_PER_TICK,
    ),
];

/// udev properties exported as `node_disk_ata_*` when `ID_ATA` is set.
const ATA: [(&str, &str, &str); 3] = [
    (
        "ID_ATA_WRITE_CACHE",
        "node_disk_ata_write_cache",
        "ATA disk has a write cache.",
    ),
    (
        "ID_ATA_WRITE_CACHE_ENABLED",
        "node_disk_ata_write_cache_enabled",
        "ATA disk has its write cache enabled.",
    ),
    (
        "ID_ATA_ROTATION_RATE_RPM",
        "node_disk_ata_rotation_rate_rpm",
        "ATA disk rotation rate in RPMs (0 for SSDs).",
    ),
];

enum Filter {
    Exclude(regex_lite::Regex),
    Include(regex_lite::Regex),
}

impl Filter {
    fn ignored(&self, dev: &str) -> bool {
        match self {
            Filter::Exclude(re) => re.is_match(dev),
            Filter::Include(re) => !re.is_match(dev),
        }
    }
}

/// The filter's verdict per line of /proc/diskstats as last read: the kernel lists the same
/// devices in the same order on every read, so one comparison of the name replaces a regex
/// run per device and scrape (regex matching was ~1 % of a scrape's CPU here). The name is
/// compared by length and [`fingerprint`] (kept inline: a kept copy of each name was cold
/// memory at the next scrape, ~0.3 % of one); see there for why a hash is safe here.
#[derive(Default)]
struct Verdicts(Vec<((usize, u64), bool)>);

impl Verdicts {
    fn ignored(&mut self, filter: &Filter, line: usize, dev: &str) -> bool {
        let print = (dev.len(), fingerprint(dev.as_bytes()));
        if !matches!(self.0.get(line), Some((p, _)) if *p == print) {
            // Lines are visited in order, so this slot and the ones after it are redone.
            self.0.truncate(line);
            self.0.push((print, filter.ignored(dev)));
        }
        self.0[line].1
    }
}

pub struct Diskstats {
    filter: Filter,
    verdicts: Verdicts,
    buf: String,
    file: KeptFile,
    udev: String,
    name: String,
    path: PathBuf,
    /// Each device's `queue/rotational`, kept open between scrapes (see `KeptAttrs`).
    rotational: KeptAttrs,
    attr: Vec<u8>,
    /// udev database entries found missing (devices udev does not manage).
    no_udev: AbsentPaths,
}

pub fn new(opts: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    let include = opts.get("diskstats.device-include");
    let filter = if include.is_empty() {
        let ex = opts.get("diskstats.device-exclude");
        Filter::Exclude(option_regex("diskstats.device-exclude", ex)?)
    } else {
        Filter::Include(option_regex("diskstats.device-include", include)?)
    };
    Ok(Box::new(Diskstats {
        filter,
        verdicts: Verdicts::default(),
        buf: String::new(),
        file: KeptFile::new("diskstats").short_read_ends(1024),
        udev: String::new(),
        name: String::new(),
        path: PathBuf::new(),
        rotational: KeptAttrs::new(1, 64),
        attr: Vec::new(),
        no_udev: AbsentPaths::default(),
    }))
}

/// The value of `E:<key>=` in a udev database file, or "".
fn udev_prop<'a>(db: &'a str, key: &str) -> &'a str {
    lines(db)
        .filter_map(|l| l.strip_prefix("E:"))
        .find_map(|l| {
            let (k, v) = split_once_byte(l, b'=')?;
            (k == key).then_some(v)
        })
        .unwrap_or("")
}

struct Families {
    info: FamilyId,
    stats: [FamilyId; STATS.len()],
    fs: FamilyId,
    dm: FamilyId,
    ata: [FamilyId; ATA.len()],
}

impl Families {
    fn declare(out: &mut MetricSet) -> Self {
        Families {
            info: out.family_static(
                "node_disk_info",
                "Info of /sys/block/<block_device>.",
                MetricType::Gauge,
            ),
            stats: STATS.map(|(n, h, t, _)| out.family_static(n, h, t)),
            fs: out.family_static(
                "node_disk_filesystem_info",
                "Info about disk filesystem.",
                MetricType::Gauge,
            ),
            dm: out.family_static(
                "node_disk_device_mapper_info",
                "Info about disk device mapper.",
                MetricType::Gauge,
            ),
            ata: ATA.map(|(_, n, h)| out.family_static(n, h, MetricType::Gauge)),
        }
    }
}

impl Diskstats {
    /// Reads `base` + `rel` into `into`; "" when absent or unreadable (optional sources).
    /// Opens the file directly: a `CollectError` would copy the path for every device
    /// without udev data or a queue directory.
    /// A file found missing is not opened again until [`AbsentPaths`] says to re-probe it.
    fn read_optional(
        path: &mut PathBuf,
        base: &std::path::Path,
        rel: &str,
        into: &mut String,
        absent: &mut AbsentPaths,
        now_ms: i64,
    ) {
        use std::io::Read;
        path.as_mut_os_string().clear();
        path.push(base);
        path.push(rel);
        into.clear();
        if absent.skip(path, now_ms) {
            return;
        }
        let ok = std::fs::File::open(&*path).and_then(|mut f| f.read_to_string(into));
        match ok {
            Ok(_) => absent.record(path, true, now_ms),
            Err(e) => {
                if e.kind() == std::io::ErrorKind::NotFound {
                    absent.record(path, false, now_ms);
                }
                into.clear();
            }
        }
    }
}

impl Collector for Diskstats {
    fn name(&self) -> &'static str {
        "diskstats"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        self.file.read(&ctx.roots.procfs, &mut self.buf)?;
        let path = self.file.path();
        // Validate the whole file first: garbage gives an error, not a partial device list.
        // The counters of devices the filter skips are counted, not parsed (not exported).
        let mut devices = 0;
        for line in lines(&self.buf).filter(|l| !l.trim().is_empty()) {
            let mut toks = words(line);
            let (Some(maj), Some(min), Some(dev)) = (toks.next(), toks.next(), toks.next()) else {
                return Err(CollectError::parse(path, format!("short line {line:?}")));
            };
            let line_no = devices;
            devices += 1;
            if maj.parse::<u32>().is_err() || min.parse::<u32>().is_err() {
                return Err(CollectError::parse(
                    path,
                    format!("bad device numbers in {line:?}"),
                ));
            }
            let ignored = self.verdicts.ignored(&self.filter, line_no, dev);
            let mut n = 0;
            for t in toks {
                if !ignored {
                    num(t, path)?;
                }
                n += 1;
            }
            if n < 11 {
                return Err(CollectError::parse(
                    path,
                    format!("{n} counters, want at least 11: {line:?}"),
                ));
            }
        }
        if devices == 0 {
            return Err(CollectError::parse(path, "no devices"));
        }

        let fams = Families::declare(out);
        let Diskstats {
            verdicts,
            buf,
            udev,
            name,
            path: scratch,
            rotational: kept,
            attr,
            no_udev,
            ..
        } = self;
        kept.begin_cycle(ctx.now_ms);
        let lines = lines(buf).filter(|l| !l.trim().is_empty());
        for (line_no, line) in lines.enumerate() {
            let mut toks = words(line);
            let (maj, min, dev) = (
                toks.next().unwrap_or(""),
                toks.next().unwrap_or(""),
                toks.next().unwrap_or(""),
            );
            // Decided by the validation pass above for this very line.
            if verdicts.0[line_no].1 {
                continue;
            }
            name.clear();
            let _ = write!(name, "b{maj}:{min}");
            Self::read_optional(
                scratch,
                &ctx.roots.udev_data,
                name,
                udev,
                no_udev,
                ctx.now_ms,
            );
            name.clear();
            let _ = write!(name, "block/{dev}/queue/rotational");
            scratch.as_mut_os_string().clear();
            scratch.push(&ctx.roots.sysfs);
            scratch.push(&*name);
            let rotational = kept
                .read(dev, 0, scratch, attr)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);

            let db = udev.as_str();
            let mut serial = udev_prop(db, "SCSI_IDENT_SERIAL");
            if serial.is_empty() {
                serial = udev_prop(db, "ID_SERIAL_SHORT");
            }
            if serial.is_empty() {
                serial = udev_prop(db, "ID_SERIAL");
            }
            out.sample(
                fams.info,
                &[
                    ("device", &dev),
                    ("major", &maj),
                    ("minor", &min),
                    ("model", &udev_prop(db, "ID_MODEL")),
                    ("path", &udev_prop(db, "ID_PATH")),
                    ("revision", &udev_prop(db, "ID_REVISION")),
                    ("rotational", &rotational),
                    ("serial", &serial),
                    ("wwn", &udev_prop(db, "ID_WWN")),
                ],
                1.0,
            );
            for ((tok, (.., scale)), fam) in toks.zip(STATS).zip(fams.stats) {
                // Validated above; `num` takes the integer parser first (same value).
                let v = num(tok, path).unwrap_or(0.0);
                out.sample(fam, &[("device", &dev)], v * scale);
            }
            let fs_type = udev_prop(db, "ID_FS_TYPE");
            if !fs_type.is_empty() {
                out.sample(
                    fams.fs,
                    &[
                        ("device", &dev),
                        ("type", &fs_type),
                        ("usage", &udev_prop(db, "ID_FS_USAGE")),
                        ("uuid", &udev_prop(db, "ID_FS_UUID")),
                        ("version", &udev_prop(db, "ID_FS_VERSION")),
                    ],
                    1.0,
                );
            }
            let dm_name = udev_prop(db, "DM_NAME");
            if !dm_name.is_empty() {
                out.sample(
                    fams.dm,
                    &[
                        ("device", &dev),
                        ("lv_layer", &udev_prop(db, "DM_LV_LAYER")),
                        ("lv_name", &udev_prop(db, "DM_LV_NAME")),
                        ("name", &dm_name),
                        ("uuid", &udev_prop(db, "DM_UUID")),
                        ("vg_name", &udev_prop(db, "DM_VG_NAME")),
                    ],
                    1.0,
                );
            }
            if !udev_prop(db, "ID_ATA").is_empty() {
                for ((key, ..), fam) in ATA.iter().zip(fams.ata) {
                    if let Ok(v) = udev_prop(db, key).parse::<f64>() {
                        out.sample(fam, &[("device", &dev)], v);
                    }
                }
            }
        }
        kept.end_cycle();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::util::testing::run;

    const LINE14: &str =
        "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11\n   8       1 sda1 1 2 3 4 5 6 7 8 9 10 11\n";

    #[test]
    fn default_exclude_drops_partitions_and_scales_sectors_and_ticks() {
        let mut c = new(&CollectorOptions::default()).unwrap();
        let (r, text) = run(&mut *c, &[("proc/diskstats", LINE14)]);
        r.unwrap();
        assert!(!text.contains("sda1"));
        assert!(text.contains("node_disk_read_bytes_total{device=\"sda\"} 1536\n"));
        assert!(text.contains("node_disk_read_time_seconds_total{device=\"sda\"} 0.004\n"));
        // 11 counters: no discard or flush families.
        assert!(!text.contains("node_disk_discards_completed_total"));
        assert!(text.contains(
            "node_disk_info{device=\"sda\",major=\"8\",minor=\"0\",model=\"\",path=\"\",revision=\"\",rotational=\"0\",serial=\"\",wwn=\"\"} 1\n"
        ));
    }

    #[test]
    fn udev_data_fills_info_and_ata_families() {
        let udev = "S:disk/by-id/x\nE:ID_MODEL=Disk_One\nE:ID_SERIAL=long\nE:ID_SERIAL_SHORT=short\nE:ID_ATA=1\nE:ID_ATA_ROTATION_RATE_RPM=7200\nE:ID_FS_TYPE=ext4\n";
        let mut c = new(&CollectorOptions::default()).unwrap();
        let (r, text) = run(
            &mut *c,
            &[
                ("proc/diskstats", LINE14),
                ("udev/b8:0", udev),
                ("sys/block/sda/queue/rotational", "1\n"),
            ],
        );
        r.unwrap();
        assert!(text.contains("model=\"Disk_One\""));
        assert!(text.contains("rotational=\"1\",serial=\"short\""));
        assert!(text.contains("node_disk_ata_rotation_rate_rpm{device=\"sda\"} 7200\n"));
        assert!(text.contains("node_disk_filesystem_info{device=\"sda\",type=\"ext4\",usage=\"\",uuid=\"\",version=\"\"} 1\n"));
        // ID_ATA_WRITE_CACHE is absent: no sample.
        assert!(!text.contains("node_disk_ata_write_cache{"));
    }

    #[test]
    fn filter_is_applied_afresh_when_a_line_names_another_device() {
        let mut c = new(&CollectorOptions::default()).unwrap();
        let (r, text) = run(&mut *c, &[("proc/diskstats", LINE14)]);
        r.unwrap();
        assert!(text.contains("device=\"sda\"") && !text.contains("device=\"sda1\""));
        // Same positions, other devices: loop0 is excluded by default, dm-1 is not.
        let swapped = "7 0 loop0 1 2 3 4 5 6 7 8 9 10 11\n253 1 dm-1 1 2 3 4 5 6 7 8 9 10 11\n";
        let (r, text) = run(&mut *c, &[("proc/diskstats", swapped)]);
        r.unwrap();
        assert!(
            !text.contains("loop0") && text.contains("device=\"dm-1\""),
            "{text}"
        );
        // Garbage in an excluded device's counters is not parsed; in a kept one it is an error.
        let (r, _) = run(
            &mut *c,
            &[("proc/diskstats", &swapped.replace("0 1 2", "0 x 2"))],
        );
        r.unwrap();
        let (r, _) = run(
            &mut *c,
            &[("proc/diskstats", &swapped.replace("1 1 2", "1 x 2"))],
        );
        assert!(r.is_err());
    }

    #[test]
    fn include_replaces_exclude_and_short_lines_are_errors() {
        let mut opts = CollectorOptions::default();
        opts.set("diskstats.device-include", "^sda1$");
        let mut c = new(&opts).unwrap();
        let (r, text) = run(&mut *c, &[("proc/diskstats", LINE14)]);
        r.unwrap();
        assert!(text.contains("device=\"sda1\"") && !text.contains("device=\"sda\""));
        let (r, _) = run(&mut *c, &[("proc/diskstats", "8 0 sda 1 2 3\n")]);
        assert!(r.is_err());
        opts.set("diskstats.device-include", "(");
        assert!(
            new(&opts).is_err(),
            "a bad regex is rejected when the collector is built"
        );
    }
}
