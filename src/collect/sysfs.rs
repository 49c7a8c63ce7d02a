//! Helpers for the many small sysfs files the hardware collectors read: one-value attribute
//! files, directory listings that tolerate dangling symlinks, and option parsing shared by the
//! collectors (booleans and node_exporter-style include/exclude regexes).
//!
//! Must not touch: hard-coded roots (callers pass full paths built from `Roots`).
//!
//! Policy (mirrors node_exporter): an attribute that cannot be *read* (absent, EACCES, EINVAL
//! from a driver that has no value right now) is skipped; an attribute that was read but does
//! not hold a number where one is required is a [`CollectErrorKind::Parse`], so garbage is reported
//! instead of silently exported.

use super::util::{fingerprint, split_once_byte, still_absent, AbsentPaths};
use super::{CollectError, CollectorOptions};
use regex_lite::Regex;
use std::borrow::Cow;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

/// Reads a small attribute file into `buf` and returns its content without the trailing
/// newline/whitespace. `None` when the file cannot be read. Bytes that are not UTF-8 are
/// replaced (U+FFFD), since label values must be UTF-8.
pub fn read_attr<'b>(path: &Path, buf: &'b mut Vec<u8>) -> Option<Cow<'b, str>> {
    buf.clear();
    let mut f = std::fs::File::open(path).ok()?;
    f.read_to_end(buf).ok()?;
    let s = String::from_utf8_lossy(buf);
    Some(match s {
        Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
        Cow::Owned(o) => Cow::Owned(o.trim().to_string()),
    })
}

/// Like [`read_attr`] but trims only newlines, as node_exporter does for hwmon attributes
/// (a label may end in a meaningful space).
pub fn read_attr_nl<'b>(path: &Path, buf: &'b mut Vec<u8>) -> Option<Cow<'b, str>> {
    buf.clear();
    let mut f = std::fs::File::open(path).ok()?;
    f.read_to_end(buf).ok()?;
    let s = String::from_utf8_lossy(buf);
    Some(match s {
        Cow::Borrowed(b) => Cow::Borrowed(b.trim_matches('\n')),
        Cow::Owned(o) => Cow::Owned(o.trim_matches('\n').to_string()),
    })
}

/// Reads a numeric attribute: `Ok(None)` when unreadable, `Err(Parse)` when it holds garbage.
pub fn read_num<T: FromStr>(path: &Path, buf: &mut Vec<u8>) -> Result<Option<T>, CollectError> {
    match read_attr(path, buf) {
        None => Ok(None),
        Some(s) => s
            .parse::<T>()
            .map(Some)
            .map_err(|_| CollectError::parse(path, format!("not a number: {:?}", short(&s)))),
    }
}

/// At most 40 characters of `s`, for error messages about garbage content.
pub fn short(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The entry names of directory `dir`, sorted, into `out`. A missing directory is
/// [`CollectErrorKind::NotFound`]; entries are not followed, so dangling symlinks are listed, not
/// errors.
pub fn list_dir(dir: &Path, out: &mut Vec<String>) -> Result<(), CollectError> {
    list_open_dir(&open_dir(dir)?, dir, out)
}

/// `dir` opened for listing (`O_DIRECTORY`); a missing directory is `NotFound`.
fn open_dir(dir: &Path) -> Result<std::fs::File, CollectError> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| CollectError::io(dir, e.into()))?;
    Ok(std::fs::File::from(fd))
}

/// The sorted entry names of the directory `fd` (which is `dir`, for errors), freshly opened
/// (read from its start), into `out`.
fn list_open_dir(
    fd: &std::fs::File,
    dir: &Path,
    out: &mut Vec<String>,
) -> Result<(), CollectError> {
    use rustix::fs::RawDir;
    use std::cell::RefCell;
    thread_local! {
        /// getdents64 buffer, reused by every listing on this (the work) thread.
        static BUF: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(8192));
    }
    let io_err = |e: rustix::io::Errno| CollectError::io(dir, e.into());
    // Reuse the Strings of the previous listing: a warmed-up walk allocates nothing here
    // (std's read_dir would allocate twice per entry).
    let mut n = 0;
    BUF.with(|b| {
        let mut buf = b.borrow_mut();
        let mut it = RawDir::new(fd, buf.spare_capacity_mut());
        while let Some(e) = it.next() {
            let e = e.map_err(io_err)?;
            let Ok(name) = e.file_name().to_str() else {
                continue;
            };
            if name == "." || name == ".." {
                continue;
            }
            // Slots are refilled in getdents order, not sorted order, so give each room for
            // typical sysfs names up front instead of growing it name by name.
            const SLOT: usize = 32;
            if n < out.len() {
                let slot = &mut out[n];
                slot.clear();
                slot.reserve(name.len().max(SLOT));
                slot.push_str(name);
            } else {
                let mut slot = String::with_capacity(name.len().max(SLOT));
                slot.push_str(name);
                out.push(slot);
            }
            n += 1;
        }
        Ok::<(), CollectError>(())
    })?;
    out.truncate(n);
    out.sort_unstable();
    Ok(())
}

/// A directory listing kept between collections and redone only when the directory may have
/// changed: one `fstat` of the directory, kept open since the last listing, per collection
/// instead of `open`, two `getdents64` and `close` (and instead of a `stat` by path, whose
/// path walk costs several times the `fstat`).
///
/// Why that sees every change that matters: sysfs (kernfs) reports a directory's link count
/// as its number of subdirectories plus two, refreshed on every `fstat`, so a device directory
/// (`cpuN`, `clocksourceN`) that is registered or removed changes it; on a regular file system
/// (a recorded tree) creating or removing any entry changes the directory's mtime, and
/// removing the directory itself drops its link count to 0. The stamp compared is (device,
/// inode, link count, mtime). A swap that keeps all of them (one CPU removed and another
/// added between two collections, on sysfs, whose directory mtime is not kept up to date), or
/// another directory put in place of a removed one on sysfs, is still seen: the directory is
/// opened by path and listed again at least every
/// [`REPROBE_ABSENT_MS`](super::util::REPROBE_ABSENT_MS), and whenever the caller asks for
/// another path. A CPU going offline or online does not change the listing (its `cpuN`
/// directory stays); callers read `cpuN/online` each time.
#[derive(Debug, Default)]
pub struct KeptListing {
    names: Vec<String>,
    /// The directory listed last, kept open, and the length and
    /// [`fingerprint`](super::util::fingerprint) of its path (compared instead of the path
    /// itself, whose bytes are cold memory at the next collection).
    dir: Option<(std::fs::File, usize, u64)>,
    stamp: (u64, u64, u64, i64, i64),
    listed_at: i64,
    /// Counts the listings made, so callers can keep what they derive from the names (which
    /// entries are CPUs) until the next one.
    listings: u64,
}

impl KeptListing {
    /// The sorted entry names of `dir`, like [`list_dir`], from the last listing while the
    /// directory's stamp is unchanged.
    pub fn list(&mut self, dir: &Path, now_ms: i64) -> Result<&[String], CollectError> {
        let bytes = dir.as_os_str().as_encoded_bytes();
        let print = (bytes.len(), fingerprint(bytes));
        if let Some((fd, len, hash)) = &self.dir {
            if (*len, *hash) == print && still_absent(self.listed_at, now_ms) {
                // std's fstat, not rustix's: std's is linked anyway, so this adds no code.
                if fd.metadata().is_ok_and(|m| dir_stamp(&m) == self.stamp) {
                    return Ok(&self.names);
                }
            }
        }
        self.dir = None;
        let fd = open_dir(dir)?;
        let m = fd.metadata().map_err(|e| CollectError::io(dir, e))?;
        list_open_dir(&fd, dir, &mut self.names)?;
        self.stamp = dir_stamp(&m);
        self.dir = Some((fd, print.0, print.1));
        self.listed_at = now_ms;
        self.listings += 1;
        Ok(&self.names)
    }

    /// Like [`Self::list`], with the number of the listing the names are from: while it is
    /// unchanged, the names are the same.
    pub fn list_numbered(
        &mut self,
        dir: &Path,
        now_ms: i64,
    ) -> Result<(&[String], u64), CollectError> {
        self.list(dir, now_ms)?;
        Ok((&self.names, self.listings))
    }
}

/// The indexes of the entries of a [`KeptListing`] that a collector wants (the `cpuN` of
/// `/sys/devices/system/cpu`), each with what the collector keeps for it; picked again only
/// when the directory was listed again (checking ~20 names every scrape read them from
/// memory gone cold since the last).
#[derive(Debug, Default)]
pub struct ListingEntries<T> {
    listing: Option<u64>,
    pub entries: Vec<(usize, T)>,
}

impl<T: Default> ListingEntries<T> {
    /// Brings the entries up to date with `names` of listing number `listing`, keeping the
    /// names `wanted` says yes to.
    pub fn update(&mut self, listing: u64, names: &[String], wanted: impl Fn(&str) -> bool) {
        if self.listing == Some(listing) {
            return;
        }
        self.listing = Some(listing);
        self.entries.clear();
        for (i, name) in names.iter().enumerate() {
            if wanted(name) {
                self.entries.push((i, T::default()));
            }
        }
    }
}

/// What [`KeptListing`] compares to see whether a directory may have changed.
fn dir_stamp(m: &std::fs::Metadata) -> (u64, u64, u64, i64, i64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino(), m.nlink(), m.mtime(), m.mtime_nsec())
}

/// A sysfs class directory (`/sys/class/thermal`, `/sys/class/watchdog`, ...) that is listed
/// at most every [`REPROBE_ABSENT_MS`](super::util::REPROBE_ABSENT_MS) while it is empty: a device without such hardware
/// (most VMs, many boards) then makes no `open`/`getdents`/`close` for it per scrape, and a
/// driver bound later is seen within that time.
#[derive(Debug, Default)]
pub struct ClassDir {
    empty_since: Option<i64>,
}

impl ClassDir {
    /// Lists `dir` into `out` like [`list_dir`], or leaves `out` empty while the directory
    /// counts as still empty at `now_ms`.
    pub fn list(
        &mut self,
        dir: &Path,
        out: &mut Vec<String>,
        now_ms: i64,
    ) -> Result<(), CollectError> {
        if self.empty_since.is_some_and(|t| still_absent(t, now_ms)) {
            out.clear();
            return Ok(());
        }
        self.empty_since = None;
        list_dir(dir, out)?;
        if out.is_empty() {
            self.empty_since = Some(now_ms);
        }
        Ok(())
    }
}

/// A boolean collector option: `true`/`1`/`yes` are on.
pub fn opt_bool(opts: &CollectorOptions, name: &str) -> bool {
    matches!(
        opts.get(name).trim().to_ascii_lowercase().as_str(),
        "true" | "1" | "yes" | "on"
    )
}

/// An optional regex option (empty = unset). Go's `regexp.MatchString` is unanchored, and
/// node_exporter's patterns carry their own `^…$`, so the regex is used as written.
pub fn opt_regex(opts: &CollectorOptions, name: &str) -> Result<Option<Regex>, String> {
    let v = opts.get(name);
    if v.is_empty() {
        return Ok(None);
    }
    Regex::new(v)
        .map(Some)
        .map_err(|e| format!("--collector.{name}: invalid regular expression {v:?}: {e}"))
}

/// node_exporter's device filter: an include regex or an exclude regex (mutually exclusive).
#[derive(Debug, Default)]
pub struct DeviceFilter {
    include: Option<Regex>,
    exclude: Option<Regex>,
}

impl DeviceFilter {
    /// Builds the filter from the options `include` and `exclude`; both set is an error, as in
    /// node_exporter.
    pub fn from_opts(
        opts: &CollectorOptions,
        include: &str,
        exclude: &str,
    ) -> Result<Self, String> {
        let inc = opt_regex(opts, include)?;
        let exc = opt_regex(opts, exclude)?;
        if inc.is_some() && exc.is_some() {
            return Err(format!(
                "--collector.{include} and --collector.{exclude} are mutually exclusive"
            ));
        }
        Ok(DeviceFilter {
            include: inc,
            exclude: exc,
        })
    }

    pub fn ignored(&self, name: &str) -> bool {
        if let Some(r) = &self.include {
            return !r.is_match(name);
        }
        if let Some(r) = &self.exclude {
            return r.is_match(name);
        }
        false
    }
}

/// Parses a kernel CPU list such as `1,3-5,9` into `out`; an empty string is an empty list.
pub fn parse_cpu_list(s: &str, out: &mut Vec<u32>) -> Result<(), String> {
    out.clear();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let bad = || format!("bad CPU list entry {:?}", short(part));
        match split_once_byte(part, b'-') {
            Some((a, b)) => {
                let a: u32 = a.trim().parse().map_err(|_| bad())?;
                let b: u32 = b.trim().parse().map_err(|_| bad())?;
                if b < a || b - a > 65_536 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.trim().parse().map_err(|_| bad())?),
        }
    }
    Ok(())
}

/// Sysfs attribute files kept open between collections and re-read with `pread` at offset 0
/// (sysfs regenerates an attribute on every read from the start).
///
/// Why: for per-interface attributes, the `open`/`close` path walk costs several times the
/// read itself (measured here: 88 netclass attributes, 834 µs of CPU per cycle opened each
/// time, 98 µs kept open). A device that disappears fails its reads (ENODEV) and is dropped at
/// the end of the cycle in which it was not seen. At most `budget` files stay open, so a
/// router with hundreds of VLAN interfaces cannot exhaust the descriptor limit; attributes
/// beyond the budget are opened per read as before.
pub struct KeptAttrs {
    devices: Vec<KeptDevice>,
    attrs: usize,
    budget: usize,
    open: usize,
    chunk: Vec<u8>,
    /// Attributes this device does not have (`thermal_throttle` on a VM, `online` of cpu0):
    /// not probed again on every cycle.
    absent: AbsentPaths,
    /// Wall-clock ms of the current cycle, from [`Self::begin_cycle`].
    now_ms: i64,
}

struct KeptDevice {
    /// Length and [`fingerprint`] of the device name, compared instead of the name: a kept
    /// copy of each name was cold memory at the next scrape (see [`fingerprint`] for why a
    /// hash is safe here).
    name: (usize, u64),
    seen: bool,
    files: Vec<Option<std::fs::File>>,
}

impl KeptAttrs {
    /// `attrs` attribute slots per device, at most `budget` open files in all.
    pub fn new(attrs: usize, budget: usize) -> Self {
        KeptAttrs {
            devices: Vec::new(),
            attrs,
            budget,
            open: 0,
            chunk: vec![0; 4096],
            absent: AbsentPaths::default(),
            now_ms: 0,
        }
    }

    /// Starts a collection cycle at wall-clock `now_ms`: devices not touched until
    /// [`Self::end_cycle`] are dropped.
    pub fn begin_cycle(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
        self.devices.iter_mut().for_each(|d| d.seen = false);
    }

    /// Closes the files of devices that were not read in this cycle.
    pub fn end_cycle(&mut self) {
        let open = &mut self.open;
        self.devices.retain(|d| {
            if !d.seen {
                *open -= d.files.iter().filter(|f| f.is_some()).count();
            }
            d.seen
        });
    }

    /// Whether `device` has attribute files kept open from earlier cycles: it was a directory
    /// with attributes then, so a caller can skip checking that again.
    pub fn has_open_files(&self, device: &str) -> bool {
        let name = device_print(device);
        self.devices
            .iter()
            .any(|d| d.name == name && d.files.iter().any(Option::is_some))
    }

    /// Reads attribute `slot` of `device` (its file is `path`) like [`read_attr`]: trimmed,
    /// `None` when unreadable.
    pub fn read<'b>(
        &mut self,
        device: &str,
        slot: usize,
        path: &Path,
        buf: &'b mut Vec<u8>,
    ) -> Option<Cow<'b, str>> {
        let name = device_print(device);
        let di = match self.devices.iter().position(|d| d.name == name) {
            Some(i) => i,
            None => {
                self.devices.push(KeptDevice {
                    name,
                    seen: false,
                    files: (0..self.attrs).map(|_| None).collect(),
                });
                self.devices.len() - 1
            }
        };
        let dev = &mut self.devices[di];
        dev.seen = true;
        let kept = &mut dev.files[slot];
        let mut ok = false;
        if let Some(f) = kept {
            match pread_all(f, &mut self.chunk, buf) {
                Ok(()) => ok = true,
                // The driver refuses this attribute right now (EINVAL for `speed` on a link
                // that is down): the file is still the device's, so keep it; reopening it on
                // every cycle only to be refused again cost an open, two reads and a close.
                Err(e) if e.raw_os_error() != Some(ENODEV) => return None,
                Err(_) => {
                    *kept = None;
                    self.open -= 1;
                }
            }
        }
        if !ok {
            if self.absent.skip(path, self.now_ms) {
                return None;
            }
            let f = match std::fs::File::open(path) {
                Ok(f) => {
                    self.absent.record(path, true, self.now_ms);
                    f
                }
                Err(e) => {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        self.absent.record(path, false, self.now_ms);
                    }
                    return None;
                }
            };
            let read = pread_all(&f, &mut self.chunk, buf);
            if self.open < self.budget
                && read.as_ref().err().and_then(|e| e.raw_os_error()) != Some(ENODEV)
            {
                *kept = Some(f);
                self.open += 1;
            }
            read.ok()?;
        }
        let s = String::from_utf8_lossy(buf);
        Some(match s {
            Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
            Cow::Owned(o) => Cow::Owned(o.trim().to_string()),
        })
    }
}

fn device_print(device: &str) -> (usize, u64) {
    (device.len(), fingerprint(device.as_bytes()))
}

/// What the kernel answers reads of an attribute whose device was unregistered.
const ENODEV: i32 = 19;

/// Reads all of `f` from offset 0 into `buf` (cleared first), reusing its capacity. Reads
/// go through `chunk` (zeroed once, reused) so nothing is re-zeroed per read.
///
/// A read shorter than `chunk` is the end: sysfs produces an attribute whole in one `show`
/// call (at most a page) and hands it out from offset 0, and a regular file (a recorded tree)
/// reads short only at its end. That saves the second, empty read per attribute (about 120
/// syscalls per scrape here).
fn pread_all(f: &std::fs::File, chunk: &mut [u8], buf: &mut Vec<u8>) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    buf.clear();
    loop {
        let n = match f.read_at(chunk, buf.len() as u64) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(&chunk[..n]);
        if n < chunk.len() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_list_expands_ranges_and_rejects_garbage() {
        let mut v = Vec::new();
        parse_cpu_list("1,3-5,9\n", &mut v).unwrap();
        assert_eq!(v, [1, 3, 4, 5, 9]);
        parse_cpu_list("", &mut v).unwrap();
        assert!(v.is_empty());
        assert!(parse_cpu_list("1,x-3", &mut v).is_err());
        assert!(parse_cpu_list("5-1", &mut v).is_err());
    }

    #[test]
    fn kept_listing_sees_added_and_removed_entries_and_relists_after_the_reprobe_time() {
        let s = crate::collect::fixtures::Scratch::new("listing");
        s.write("d/cpu0/online", b"1\n");
        let dir = s.dir.join("d");
        let mut l = KeptListing::default();
        assert_eq!(l.list(&dir, 0).unwrap(), ["cpu0"]);
        std::fs::create_dir(dir.join("cpu1")).unwrap();
        assert_eq!(l.list(&dir, 1).unwrap(), ["cpu0", "cpu1"]);
        s.write("d/isolated", b"\n");
        assert_eq!(l.list(&dir, 2).unwrap(), ["cpu0", "cpu1", "isolated"]);
        std::fs::remove_dir(dir.join("cpu1")).unwrap();
        assert_eq!(l.list(&dir, 3).unwrap(), ["cpu0", "isolated"]);
        // A change the stamp cannot show (here: forged by editing the kept names) lasts at
        // most until the re-probe time.
        l.names.push("ghost".into());
        assert_eq!(l.list(&dir, 4).unwrap().len(), 3);
        let later = 3 + crate::collect::util::REPROBE_ABSENT_MS;
        assert_eq!(l.list(&dir, later).unwrap(), ["cpu0", "isolated"]);
        assert!(l
            .list(&s.dir.join("missing"), later)
            .unwrap_err()
            .is_not_found());
        // The directory is kept open between listings: one removed and another put in its
        // place (same names, same mtime second) is seen at once, since the kept one's link
        // count drops to 0; another path is listed at once too.
        assert_eq!(l.list(&dir, later).unwrap(), ["cpu0", "isolated"]);
        std::fs::rename(&dir, s.dir.join("old")).unwrap();
        std::fs::remove_dir_all(s.dir.join("old")).unwrap();
        s.write("d/cpu0/online", b"1\n")
            .write("d/cpu7/online", b"1\n");
        assert_eq!(l.list(&dir, later + 1).unwrap(), ["cpu0", "cpu7"]);
        s.write("e/x", b"\n");
        assert_eq!(l.list(&s.dir.join("e"), later + 2).unwrap(), ["x"]);
    }

    #[test]
    fn kept_attrs_see_rewrites_respect_the_budget_and_drop_vanished_devices() {
        let s = crate::collect::fixtures::Scratch::new("kept");
        s.write("a/x", b"1\n")
            .write("a/y", b"2\n")
            .write("b/x", b"3\n");
        let mut k = KeptAttrs::new(2, 2);
        let mut buf = Vec::new();
        k.begin_cycle(0);
        assert_eq!(
            k.read("a", 0, &s.dir.join("a/x"), &mut buf).as_deref(),
            Some("1")
        );
        assert_eq!(
            k.read("a", 1, &s.dir.join("a/y"), &mut buf).as_deref(),
            Some("2")
        );
        // Budget reached: b/x is read but not kept.
        assert_eq!(
            k.read("b", 0, &s.dir.join("b/x"), &mut buf).as_deref(),
            Some("3")
        );
        k.end_cycle();
        assert_eq!(k.open, 2);
        // An in-place rewrite is seen through the kept descriptor.
        s.write("a/x", b"10\n");
        k.begin_cycle(0);
        assert_eq!(
            k.read("a", 0, &s.dir.join("a/x"), &mut buf).as_deref(),
            Some("10")
        );
        k.end_cycle();
        // Device a was read in the last cycle, b was not: b is dropped.
        assert_eq!(k.devices.len(), 1);
        k.begin_cycle(0);
        k.end_cycle();
        assert_eq!(k.open, 0);
        assert!(k.read("z", 0, &s.dir.join("z/none"), &mut buf).is_none());
        // A file that opens but refuses reads (here a directory: EISDIR; in sysfs EINVAL for
        // `speed` on a down link) stays open and reads as None on every cycle.
        for _ in 0..2 {
            k.begin_cycle(0);
            assert!(k.read("a", 0, &s.dir.join("a"), &mut buf).is_none());
            k.end_cycle();
            assert_eq!(k.open, 1);
        }
    }

    #[test]
    fn device_filter_include_wins_and_both_is_an_error() {
        let mut o = CollectorOptions::default();
        o.set("t.inc", "^lo$");
        let f = DeviceFilter::from_opts(&o, "t.inc", "t.exc").unwrap();
        assert!(!f.ignored("lo"));
        assert!(f.ignored("eth0"));
        o.set("t.exc", "x");
        assert!(DeviceFilter::from_opts(&o, "t.inc", "t.exc").is_err());
    }

    #[test]
    fn kept_attrs_reprobe_an_absent_attribute_only_after_the_reprobe_time() {
        use crate::collect::util::REPROBE_ABSENT_MS;
        let s = crate::collect::fixtures::Scratch::new("kept-absent");
        s.write("cpu0/topology/core_id", b"0\n");
        let path = s.dir.join("cpu0/thermal_throttle/core_throttle_count");
        let mut k = KeptAttrs::new(1, 8);
        let mut buf = Vec::new();
        let t0 = 5_000_000;
        k.begin_cycle(t0);
        assert_eq!(k.read("cpu0", 0, &path, &mut buf), None);
        k.end_cycle();
        s.write("cpu0/thermal_throttle/core_throttle_count", b"7\n");
        k.begin_cycle(t0 + REPROBE_ABSENT_MS - 1);
        assert_eq!(k.read("cpu0", 0, &path, &mut buf), None);
        k.end_cycle();
        k.begin_cycle(t0 + REPROBE_ABSENT_MS);
        assert_eq!(k.read("cpu0", 0, &path, &mut buf).as_deref(), Some("7"));
        k.end_cycle();
    }

    /// An empty class directory is listed again only after the re-probe time; a device that
    /// appears (a driver bound) is then listed, and a non-empty directory is listed every time.
    #[test]
    fn empty_class_dir_is_relisted_only_after_the_reprobe_time() {
        use crate::collect::util::REPROBE_ABSENT_MS;
        let s = crate::collect::fixtures::Scratch::new("classdir");
        let class = s.dir.join("sys/class/thermal");
        std::fs::create_dir_all(&class).unwrap();
        let mut d = ClassDir::default();
        let mut names = vec!["stale".to_string()];
        let t0 = 9_000_000;
        d.list(&class, &mut names, t0).unwrap();
        assert!(names.is_empty());
        s.write("sys/class/thermal/thermal_zone0/temp", b"42000\n");
        d.list(&class, &mut names, t0 + REPROBE_ABSENT_MS - 1)
            .unwrap();
        assert!(names.is_empty());
        d.list(&class, &mut names, t0 + REPROBE_ABSENT_MS).unwrap();
        assert_eq!(names, ["thermal_zone0"]);
        s.write("sys/class/thermal/cooling_device0/cur_state", b"0\n");
        d.list(&class, &mut names, t0 + REPROBE_ABSENT_MS + 1)
            .unwrap();
        assert_eq!(names, ["cooling_device0", "thermal_zone0"]);
        // A missing class directory is still an error (the driver's NotFound handling).
        assert!(ClassDir::default()
            .list(&s.dir.join("sys/class/none"), &mut names, t0)
            .is_err());
    }
}
