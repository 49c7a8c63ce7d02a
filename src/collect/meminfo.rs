//! `meminfo`: /proc/meminfo as `node_memory_<Field>_bytes` (kB fields) and
//! `node_memory_HugePages_*` (counts), for the fields node_exporter 1.11 exports.
//!
//! Not procfs's `Meminfo`: that builds a HashMap per read (DESIGN.md §4). This reads into a
//! reused buffer and looks each line's key up in a static table.

use super::util::{fingerprint, lines, num, split_once_byte, words, KeptFile};
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};

/// One exported field: the key in /proc/meminfo, the metric name, its HELP.
struct Field {
    key: &'static str,
    name: &'static str,
    help: &'static str,
}

macro_rules! fields {
    ($(($key:literal, $suffix:literal)),* $(,)?) => {
        &[$(Field {
            key: $key,
            name: concat!("node_memory_", $suffix),
            help: concat!("Memory information field ", $suffix, "."),
        }),*]
    };
}

/// The fields node_exporter 1.11 maps (its meminfo_linux.go); other keys are ignored, as there.
const FIELDS: &[Field] = fields![
    ("Active", "Active_bytes"),
    ("Active(anon)", "Active_anon_bytes"),
    ("Active(file)", "Active_file_bytes"),
    ("AnonHugePages", "AnonHugePages_bytes"),
    ("AnonPages", "AnonPages_bytes"),
    ("Bounce", "Bounce_bytes"),
    ("Buffers", "Buffers_bytes"),
    ("Cached", "Cached_bytes"),
    ("CmaFree", "CmaFree_bytes"),
    ("CmaTotal", "CmaTotal_bytes"),
    ("CommitLimit", "CommitLimit_bytes"),
    ("Committed_AS", "Committed_AS_bytes"),
    ("DirectMap1G", "DirectMap1G_bytes"),
    ("DirectMap2M", "DirectMap2M_bytes"),
    ("DirectMap4k", "DirectMap4k_bytes"),
    ("Dirty", "Dirty_bytes"),
    ("HardwareCorrupted", "HardwareCorrupted_bytes"),
    ("Hugepagesize", "Hugepagesize_bytes"),
    ("Inactive", "Inactive_bytes"),
    ("Inactive(anon)", "Inactive_anon_bytes"),
    ("Inactive(file)", "Inactive_file_bytes"),
    ("KernelStack", "KernelStack_bytes"),
    ("Mapped", "Mapped_bytes"),
    ("MemAvailable", "MemAvailable_bytes"),
    ("MemFree", "MemFree_bytes"),
    ("MemTotal", "MemTotal_bytes"),
    ("Mlocked", "Mlocked_bytes"),
    ("NFS_Unstable", "NFS_Unstable_bytes"),
    ("PageTables", "PageTables_bytes"),
    ("Percpu", "Percpu_bytes"),
    ("SReclaimable", "SReclaimable_bytes"),
    ("SUnreclaim", "SUnreclaim_bytes"),
    ("Shmem", "Shmem_bytes"),
    ("ShmemHugePages", "ShmemHugePages_bytes"),
    ("ShmemPmdMapped", "ShmemPmdMapped_bytes"),
    ("Slab", "Slab_bytes"),
    ("SwapCached", "SwapCached_bytes"),
    ("SwapFree", "SwapFree_bytes"),
    ("SwapTotal", "SwapTotal_bytes"),
    ("Unevictable", "Unevictable_bytes"),
    ("VmallocChunk", "VmallocChunk_bytes"),
    ("VmallocTotal", "VmallocTotal_bytes"),
    ("VmallocUsed", "VmallocUsed_bytes"),
    ("Writeback", "Writeback_bytes"),
    ("WritebackTmp", "WritebackTmp_bytes"),
    ("Zswap", "Zswap_bytes"),
    ("Zswapped", "Zswapped_bytes"),
    ("HugePages_Free", "HugePages_Free"),
    ("HugePages_Rsvd", "HugePages_Rsvd"),
    ("HugePages_Surp", "HugePages_Surp"),
    ("HugePages_Total", "HugePages_Total"),
];

pub struct Meminfo {
    buf: String,
    file: KeptFile,
    /// Per line of the last read: the key's length and [`fingerprint`], and its index in
    /// [`FIELDS`]. The kernel prints the same keys in the same order on every read, so one
    /// hash of the key replaces a search of the table (~50 string compares for a key it
    /// lacks); a changed line falls back to the search.
    by_line: Vec<(u32, u64, Option<u8>)>,
}

impl Default for Meminfo {
    fn default() -> Self {
        Meminfo {
            buf: String::new(),
            file: KeptFile::new("meminfo").short_read_ends(0),
            by_line: Vec::new(),
        }
    }
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::<Meminfo>::default())
}

impl Collector for Meminfo {
    fn name(&self) -> &'static str {
        "meminfo"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        self.file.read(&ctx.roots.procfs, &mut self.buf)?;
        let path = self.file.path();
        let mut saw_total = false;
        let mut line_no = 0;
        for line in lines(&self.buf) {
            if line.trim().is_empty() {
                continue;
            }
            let (key, rest) = split_once_byte(line, b':')
                .ok_or_else(|| CollectError::parse(path, format!("no ':' in {line:?}")))?;
            let mut toks = words(rest);
            let value = num(toks.next().unwrap_or(""), path)?;
            let value = match toks.next() {
                None => value,
                Some("kB") => value * 1024.0,
                Some(unit) => {
                    return Err(CollectError::parse(path, format!("unknown unit {unit:?}")))
                }
            };
            saw_total |= key == "MemTotal";
            let print = (key.len() as u32, fingerprint(key.as_bytes()));
            let field = match self.by_line.get(line_no) {
                Some(&(len, hash, field)) if (len, hash) == print => field,
                _ => {
                    // FIELDS has fewer than 256 entries (a unit test checks).
                    let field = FIELDS.iter().position(|f| f.key == key).map(|i| i as u8);
                    // Bounded by the number of lines of the file.
                    if line_no < self.by_line.len() {
                        self.by_line[line_no] = (print.0, print.1, field);
                    } else {
                        self.by_line.push((print.0, print.1, field));
                    }
                    field
                }
            };
            line_no += 1;
            if let Some(f) = field.map(|i| &FIELDS[usize::from(i)]) {
                out.single_static(f.name, f.help, MetricType::Gauge, value);
            }
        }
        if !saw_total {
            return Err(CollectError::parse(path, "no MemTotal line"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::util::testing::run;

    #[test]
    fn kb_fields_become_bytes_and_hugepage_counts_stay_counts() {
        let (r, text) = run(
            &mut Meminfo::default(),
            &[(
                "proc/meminfo",
                "MemTotal: 2 kB\nActive(anon): 1 kB\nHugePages_Total: 3\nKReclaimable: 9 kB\n",
            )],
        );
        r.unwrap();
        assert!(text.contains("node_memory_MemTotal_bytes 2048\n"));
        assert!(text.contains("node_memory_Active_anon_bytes 1024\n"));
        assert!(text.contains("node_memory_HugePages_Total 3\n"));
        // Fields node_exporter 1.11 does not map are not exported.
        assert!(!text.contains("KReclaimable"));
    }

    #[test]
    fn fields_found_by_line_position_follow_a_changed_file() {
        assert!(FIELDS.len() < 256);
        let mut c = Meminfo::default();
        let (r, text) = run(
            &mut c,
            &[("proc/meminfo", "MemTotal: 2 kB\nMemFree: 1 kB\n")],
        );
        r.unwrap();
        assert!(text.contains("node_memory_MemFree_bytes 1024\n"));
        // Same position, another key (a known one, then one the table lacks).
        let (r, text) = run(
            &mut c,
            &[("proc/meminfo", "MemTotal: 2 kB\nCached: 3 kB\n")],
        );
        r.unwrap();
        assert!(text.contains("node_memory_Cached_bytes 3072\n"));
        assert!(!text.contains("MemFree"));
        let (r, text) = run(&mut c, &[("proc/meminfo", "MemTotal: 2 kB\nNew: 3 kB\n")]);
        r.unwrap();
        assert!(!text.contains("Cached") && !text.contains("New"));
        assert!(text.contains("node_memory_MemTotal_bytes 2048\n"));
    }

    #[test]
    fn unknown_unit_or_missing_memtotal_is_an_error() {
        let mut c = Meminfo::default();
        assert!(run(&mut c, &[("proc/meminfo", "MemTotal: 2 MB\n")])
            .0
            .is_err());
        assert!(run(&mut c, &[("proc/meminfo", "MemFree: 2 kB\n")])
            .0
            .is_err());
    }
}
