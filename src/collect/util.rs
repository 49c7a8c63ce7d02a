//! Small, allocation-light helpers the collectors share for reading /proc and /sys files.

use super::CollectError;
use std::io::Read;
use std::path::Path;

/// Reads `path` into `buf` (cleared first), mapping errors to `CollectError`.
pub fn read_into(path: &Path, buf: &mut String) -> Result<(), CollectError> {
    buf.clear();
    let mut f = std::fs::File::open(path).map_err(|e| CollectError::io(path, e))?;
    f.read_to_string(buf)
        .map_err(|e| CollectError::io(path, e))?;
    Ok(())
}

/// A /proc or /sys file kept open between collections and re-read from offset 0 with `pread`.
///
/// Why: opening a /proc file walks the path and allocates kernel objects; with the `fstat` and
/// `lseek` that `read_to_string` adds and the `close`, that is four syscalls per file per
/// scrape besides the reads, and most of a scrape's system time. procfs and sysfs regenerate
/// the content on every read at offset 0, so a kept descriptor sees fresh values.
///
/// The file is reopened when the root changes or a read fails: the kernel fails reads on an
/// entry that went away (module unloaded), and the reopen then reports `NotFound`. Limit: on a
/// regular file (a recorded tree under `--path.procfs`) that is replaced by rename, the old
/// content is read until the collector is rebuilt; in-place rewrites are seen.
pub struct KeptFile {
    rel: &'static str,
    /// Length and [`fingerprint`] of the root `path` is under, compared on every read instead
    /// of the root itself: a kept copy of the root is cold memory at the next scrape, and
    /// comparing with it was ~0.5 % of a scrape. (A collision needs another root of the same
    /// length with an equal hash: roots come from the command line and change only in tests.)
    root: (usize, u64),
    path: std::path::PathBuf,
    file: Option<std::fs::File>,
    /// When [`Self::read_optional`] last found the file absent (wall ms).
    absent_since: Option<i64>,
    /// Set by [`Self::short_read_ends`]: the longest record of this file.
    max_record: Option<usize>,
}

impl KeptFile {
    /// A file at `rel` under a root given at each read (`"meminfo"`, `"sys/fs/file-nr"`).
    pub fn new(rel: &'static str) -> Self {
        KeptFile {
            rel,
            root: (0, 0),
            path: Default::default(),
            file: None,
            absent_since: None,
            max_record: None,
        }
    }

    /// Declares that a read returning fewer bytes than asked, and fewer than the kernel's
    /// seq_file buffer (one page, 4096 bytes at least) minus `max_record`, got the whole file,
    /// which saves the read that would return 0 (about 30 syscalls per scrape; on
    /// /proc/net/udp each read walks the whole socket hash table).
    ///
    /// Why that holds: a seq_file read stops short only at the end of the records or when the
    /// next record does not fit in its buffer; so with `max_record` bounding every record
    /// (0 for files printed as one record: `single_open` files such as meminfo, and
    /// /proc/sys values, which are never split), a short read below that bound is the end.
    /// A regular file (a recorded tree) reads short only at its end.
    ///
    /// `max_record` 0 (one record) also covers files longer than a page (/proc/net/netstat is
    /// ~4.2 KB): seq_file grows its buffer until the single record fits, and hands it out
    /// from there, so any read shorter than asked got the rest of it.
    pub fn short_read_ends(mut self, max_record: usize) -> Self {
        self.max_record = Some(max_record);
        self
    }

    /// The full path of the last read, for error messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Points this file at `root` (closing the file kept under another root).
    fn set_root(&mut self, root: &Path) {
        let print = root_print(root);
        if self.root != print || self.path.as_os_str().is_empty() {
            self.root = print;
            self.path = root.join(self.rel);
            self.file = None;
        }
    }

    /// Reads the whole file under `root` into `buf` (cleared first).
    pub fn read(&mut self, root: &Path, buf: &mut String) -> Result<(), CollectError> {
        self.set_root(root);
        if let Some(f) = &self.file {
            if pread_string(f, buf, self.max_record).is_ok() {
                return Ok(());
            }
            self.file = None;
        }
        let f = std::fs::File::open(&self.path).map_err(|e| CollectError::io(&self.path, e))?;
        pread_string(&f, buf, self.max_record).map_err(|e| CollectError::io(&self.path, e))?;
        self.file = Some(f);
        Ok(())
    }

    /// Like [`Self::read`], and leaves a copy of the text for one [`Self::take_shared`] of the
    /// same collection (`now_ms`) and path on this thread: the `cpu` collector reads
    /// /proc/stat and the `stat` collector, which runs after it, parses the same text instead
    /// of reading it again (each read sums all CPUs' and interrupts' counters in the kernel:
    /// 8 µs here).
    pub fn read_and_share(
        &mut self,
        root: &Path,
        buf: &mut String,
        now_ms: i64,
    ) -> Result<(), CollectError> {
        let result = self.read(root, buf);
        SHARED.with(|sh| {
            let mut sh = sh.borrow_mut();
            sh.0 = None;
            if result.is_ok() {
                sh.1.clear();
                sh.1.extend_from_slice(self.path.as_os_str().as_encoded_bytes());
                sh.2.clear();
                sh.2.push_str(buf);
                sh.0 = Some(now_ms);
            }
        });
        result
    }

    /// Like [`Self::read`], but takes the text another `KeptFile` of the same path left with
    /// [`Self::read_and_share`] in this collection, if any. Taken once: a second call in the
    /// same collection reads the file.
    pub fn take_shared(
        &mut self,
        root: &Path,
        buf: &mut String,
        now_ms: i64,
    ) -> Result<(), CollectError> {
        self.set_root(root);
        let taken = SHARED.with(|sh| {
            let mut sh = sh.borrow_mut();
            let fresh = sh.0 == Some(now_ms) && sh.1 == self.path.as_os_str().as_encoded_bytes();
            if fresh {
                sh.0 = None;
                std::mem::swap(buf, &mut sh.2);
            }
            fresh
        });
        if taken {
            return Ok(());
        }
        self.read(root, buf)
    }

    /// Reads an optional file: `Ok(false)` when it does not exist. An absent file is not
    /// probed again until [`REPROBE_ABSENT_MS`] after `now_ms` of the probe that missed it, so
    /// steady-state collections make no failed `open` for it.
    pub fn read_optional(
        &mut self,
        root: &Path,
        buf: &mut String,
        now_ms: i64,
    ) -> Result<bool, CollectError> {
        if self.root == root_print(root)
            && self.absent_since.is_some_and(|t| still_absent(t, now_ms))
        {
            return Ok(false);
        }
        match self.read(root, buf) {
            Ok(()) => {
                self.absent_since = None;
                Ok(true)
            }
            Err(ref e) if e.is_not_found() => {
                self.absent_since = Some(now_ms);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Reads a file holding one unsigned number.
    pub fn read_u64(&mut self, root: &Path, buf: &mut String) -> Result<u64, CollectError> {
        self.read(root, buf)?;
        buf.trim()
            .parse()
            .map_err(|_| CollectError::parse(&self.path, "expected one unsigned number"))
    }
}

/// What [`KeptFile`] compares to see whether the root changed.
fn root_print(root: &Path) -> (usize, u64) {
    let bytes = root.as_os_str().as_encoded_bytes();
    (bytes.len(), fingerprint(bytes))
}

thread_local! {
    /// (collection `now_ms`, path, text) left by [`KeptFile::read_and_share`] on this (the
    /// work) thread, until [`KeptFile::take_shared`] takes it.
    /// (The path as bytes: `PathBuf::new` is not const before Rust 1.91.)
    static SHARED: std::cell::RefCell<(Option<i64>, Vec<u8>, String)> =
        const { std::cell::RefCell::new((None, Vec::new(), String::new())) };
}

/// Reads all of `f` from offset 0 into `buf`, reusing its capacity; invalid UTF-8 is an error.
///
/// Reads go straight into the buffer's spare capacity (rustix initialises only what the
/// kernel wrote): zero-filling the whole capacity before each read was ~5% of a scrape's CPU.
/// The read returning 0 is the end: a seq_file (most of /proc) hands out at most one buffer
/// of records per read, so a short read is not the end there, unless `max_record` says when
/// it is (see [`KeptFile::short_read_ends`]).
fn pread_string(
    f: &std::fs::File,
    buf: &mut String,
    max_record: Option<usize>,
) -> std::io::Result<()> {
    /// The smallest seq_file buffer: one page of the smallest page size Linux has.
    const SEQ_BUF: usize = 4096;
    let mut bytes = std::mem::take(buf).into_bytes();
    bytes.clear();
    let result = loop {
        if bytes.capacity() - bytes.len() < 1024 {
            bytes.reserve(4096);
        }
        let asked = bytes.capacity() - bytes.len();
        let offset = bytes.len() as u64;
        match rustix::io::pread(f, rustix::buffer::spare_capacity(&mut bytes), offset) {
            Ok(0) => break Ok(()),
            Ok(n) if n < asked && max_record.is_some_and(|m| m == 0 || n + m < SEQ_BUF) => {
                break Ok(())
            }
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => break Err(std::io::Error::from(e)),
        }
    };
    match String::from_utf8(bytes) {
        Ok(s) => {
            *buf = s;
            result
        }
        Err(e) => {
            let mut bytes = e.into_bytes();
            bytes.clear();
            *buf = String::from_utf8(bytes).unwrap_or_default();
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            ))
        }
    }
}

/// How long an optional source found absent (no hwmon driver bound, no nf_conntrack or nfsd
/// module, no udev database entry) is taken as still absent: within this time a source that
/// appears (module loaded, driver bound) is picked up; before it, a steady-state scrape makes no
/// failed `open`/`stat` for it (they were ~17 per scrape here, ~5% of its CPU).
pub const REPROBE_ABSENT_MS: i64 = 2 * 60 * 1000;

/// Whether a source found absent at `since` (wall ms) is still taken as absent at `now_ms`. A
/// wall clock that stepped back re-probes at once rather than waiting out the step.
pub fn still_absent(since: i64, now_ms: i64) -> bool {
    now_ms >= since && now_ms - since < REPROBE_ABSENT_MS
}

/// Optional paths found absent, each taken as absent for [`REPROBE_ABSENT_MS`] after the probe
/// that missed it. Keyed by a hash of the path, so checking one allocates nothing; bounded, so
/// devices that come and go cannot grow it without limit.
#[derive(Debug, Default)]
pub struct AbsentPaths {
    entries: Vec<(u64, i64)>,
}

impl AbsentPaths {
    /// Most paths remembered; past it the set starts over (everything is re-probed once).
    const MAX: usize = 1024;

    /// The path's [`fingerprint`] (its bytes, length included): SipHash over the path's
    /// components cost several times as much, per device and scrape.
    fn key(path: &Path) -> u64 {
        fingerprint(path.as_os_str().as_encoded_bytes())
    }

    /// True while `path` counts as absent at `now_ms`: skip probing it.
    pub fn skip(&self, path: &Path, now_ms: i64) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        let k = Self::key(path);
        self.entries
            .iter()
            .any(|&(e, since)| e == k && still_absent(since, now_ms))
    }

    /// Records that probing `path` at `now_ms` found it (`present`) or not.
    pub fn record(&mut self, path: &Path, present: bool, now_ms: i64) {
        if present && self.entries.is_empty() {
            return;
        }
        let k = Self::key(path);
        let at = self.entries.iter().position(|&(e, _)| e == k);
        match (at, present) {
            (Some(i), true) => {
                self.entries.swap_remove(i);
            }
            (Some(i), false) => self.entries[i].1 = now_ms,
            (None, true) => {}
            (None, false) => {
                if self.entries.len() >= Self::MAX {
                    self.entries.clear();
                }
                self.entries.push((k, now_ms));
            }
        }
    }
}

/// Reads a one-value sysfs file and trims it; `None` when absent or unreadable.
pub fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Parses a sysfs/procfs number; `None` on garbage.
pub fn parse_f64(s: &str) -> Option<f64> {
    s.trim().parse().ok()
}

/// `s` split at every `sep` (an ASCII byte), as `s.split(sep as char)` gives it, by a plain
/// byte scan: at opt-level "z" str's char searcher calls libc `memcmp` for every separator it
/// finds, which made the splitting of /proc/net/* and /proc/vmstat a visible share of a scrape.
pub fn split_at_byte(s: &str, sep: u8) -> SplitAtByte<'_> {
    debug_assert!(sep.is_ascii());
    SplitAtByte {
        s,
        pos: 0,
        sep,
        done: false,
    }
}

/// The iterator of [`split_at_byte`]: a struct with an index loop rather than an iterator
/// adapter chain, which opt-level "z" leaves as calls per byte.
#[derive(Clone)]
pub struct SplitAtByte<'a> {
    s: &'a str,
    pos: usize,
    sep: u8,
    done: bool,
}

impl<'a> Iterator for SplitAtByte<'a> {
    type Item = &'a str;

    #[cfg_attr(promlet_speed, optimize(speed))]
    fn next(&mut self) -> Option<&'a str> {
        if self.done {
            return None;
        }
        let bytes = self.s.as_bytes();
        let start = self.pos;
        let i = find_byte(bytes, start, self.sep);
        if i == bytes.len() {
            self.done = true;
        }
        self.pos = i + 1;
        Some(ascii_bounded(self.s, start, i))
    }
}

/// A byte of 1 in every lane of a `u64`, and the top bit of every lane (for scanning 8 bytes
/// at a time: /proc text is mostly long runs of digits and padding spaces, and the byte loops
/// this replaces were ~2 % of a scrape).
const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The 8 bytes at `i` as a little-endian word (byte `i` lowest), if there are 8.
#[inline(always)]
fn word_at(bytes: &[u8], i: usize) -> Option<u64> {
    let chunk: [u8; 8] = bytes.get(i..i.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}

/// The index of the first `sep` in `bytes` at or after `i`, or `bytes.len()`.
///
/// 8 bytes at a time: `x - ONES & !x & HIGHS` flags the zero lanes of `x` (here: the bytes
/// equal to `sep`); a borrow only runs from a flagged lane upwards, so the lowest flag is
/// exact.
#[inline(always)]
fn find_byte(bytes: &[u8], mut i: usize, sep: u8) -> usize {
    let pattern = ONES * u64::from(sep);
    while let Some(w) = word_at(bytes, i) {
        let x = w ^ pattern;
        let zero = x.wrapping_sub(ONES) & !x & HIGHS;
        if zero != 0 {
            return i + (zero.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < bytes.len() && bytes[i] != sep {
        i += 1;
    }
    i
}

/// The index of the first byte below 0x21 (space, ASCII whitespace, control bytes) in
/// `bytes` at or after `i`, or `bytes.len()`; 8 bytes at a time as [`find_byte`] (`x - 0x21`
/// borrows out of exactly the lanes below 0x21 that do not have their top bit set).
#[inline(always)]
pub fn find_below_0x21(bytes: &[u8], mut i: usize) -> usize {
    while let Some(w) = word_at(bytes, i) {
        let low = w.wrapping_sub(ONES * 0x21) & !w & HIGHS;
        if low != 0 {
            return i + (low.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < bytes.len() && bytes[i] >= 0x21 {
        i += 1;
    }
    i
}

/// `s[start..end]` where both ends are known to be char boundaries (0, `s.len()`, or next to
/// an ASCII byte), without the boundary checks of `&s[start..end]`: at opt-level "z" those
/// are an out-of-line call per piece (~0.5 % of a scrape across the splitters here).
fn ascii_bounded(s: &str, start: usize, end: usize) -> &str {
    let bytes = s.as_bytes();
    debug_assert!(s.is_char_boundary(start) && s.is_char_boundary(end));
    match bytes.get(start..end) {
        // SAFETY: `bytes` is valid UTF-8 and both ends are char boundaries (callers cut only
        // at ASCII bytes or the ends), so the piece is valid UTF-8 too.
        Some(piece) => unsafe { std::str::from_utf8_unchecked(piece) },
        None => "",
    }
}

/// `s` split at runs of ASCII whitespace, exactly as `s.split_ascii_whitespace()` gives it,
/// by a byte loop: std's version yields (and filters out) an empty piece per extra space,
/// and /proc aligns its columns with long runs of spaces (/proc/net/snmp6: ~25 per line).
pub fn words(s: &str) -> Words<'_> {
    Words { s, pos: 0 }
}

/// The iterator of [`words`].
#[derive(Clone)]
pub struct Words<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    #[cfg_attr(promlet_speed, optimize(speed))]
    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.s.as_bytes();
        let mut i = self.pos;
        // Whitespace: runs of spaces 8 bytes at a time, anything else byte by byte.
        loop {
            if let Some(w) = word_at(bytes, i) {
                let not_space = w ^ (ONES * u64::from(b' '));
                if not_space == 0 {
                    i += 8;
                    continue;
                }
                i += (not_space.trailing_zeros() / 8) as usize;
            }
            if i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
                continue;
            }
            break;
        }
        if i == bytes.len() {
            self.pos = i;
            return None;
        }
        let start = i;
        // The word: up to the first byte below 0x21 (all ASCII whitespace is); such a byte
        // that is not whitespace (a control byte) is part of the word.
        loop {
            i = find_below_0x21(bytes, i);
            if i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += 1;
                continue;
            }
            break;
        }
        self.pos = i;
        Some(ascii_bounded(self.s, start, i))
    }
}

/// `s` split into lines exactly as `s.lines()` gives them (at `\n`, a `\r` before it
/// dropped, no empty last line after a final `\n`), by a byte loop: std's goes through the
/// char searcher and a naive `memchr` at opt-level "z".
pub fn lines(s: &str) -> Lines<'_> {
    Lines { s, pos: 0 }
}

/// The iterator of [`lines`].
#[derive(Clone)]
pub struct Lines<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a str;

    #[cfg_attr(promlet_speed, optimize(speed))]
    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.s.as_bytes();
        let start = self.pos;
        if start >= bytes.len() {
            return None;
        }
        let i = find_byte(bytes, start, b'\n');
        self.pos = i + 1;
        let mut end = i;
        if i < bytes.len() && end > start && bytes[end - 1] == b'\r' {
            end -= 1;
        }
        Some(ascii_bounded(self.s, start, end))
    }
}

/// `s.split_once(sep as char)` for an ASCII `sep`, by a byte loop (see [`lines`]).
pub fn split_once_byte(s: &str, sep: u8) -> Option<(&str, &str)> {
    debug_assert!(sep.is_ascii());
    let bytes = s.as_bytes();
    let i = find_byte(bytes, 0, sep);
    (i < bytes.len()).then(|| (ascii_bounded(s, 0, i), ascii_bounded(s, i + 1, bytes.len())))
}

/// Parses a decimal u64 as `str::parse::<u64>` does (an optional `+`, then digits; empty,
/// anything else or overflow is `None`), by a byte loop: std's radix-generic parser goes
/// through `char::to_digit` calls at opt-level "z".
#[cfg_attr(promlet_speed, optimize(speed))]
pub fn parse_u64(tok: &str) -> Option<u64> {
    let digits = match tok.as_bytes() {
        [b'+', rest @ ..] => rest,
        all => all,
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    let mut i = 0;
    while i < digits.len() {
        let d = digits[i].wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d))?;
        i += 1;
    }
    Some(n)
}

/// Parses a decimal token as f64 the way Go's `ParseFloat` accepts /proc numbers.
pub fn num(tok: &str, path: &Path) -> Result<f64, CollectError> {
    // /proc counters are non-negative integers: the integer parser is several times cheaper
    // than the float one, and `as f64` rounds to the same nearest double ("-0" and anything
    // else that is not a plain u64 takes the float parser).
    if let Some(n) = parse_u64(tok) {
        return Ok(n as f64);
    }
    tok.parse()
        .map_err(|_| CollectError::parse(path, format!("bad number {tok:?}")))
}

/// Parses a hexadecimal token (`0000588a`) as u64.
pub fn hex(tok: &str, path: &Path) -> Result<u64, CollectError> {
    u64::from_str_radix(tok, 16)
        .map_err(|_| CollectError::parse(path, format!("bad hex number {tok:?}")))
}

/// Compiles a collector option regex with node_exporter's semantics: Go's `MatchString` is an
/// unanchored search, so patterns anchor themselves with `^`/`$` where they mean to.
pub fn option_regex(option: &str, pattern: &str) -> Result<regex_lite::Regex, String> {
    regex_lite::Regex::new(pattern).map_err(|e| format!("--collector.{option}: {e}"))
}

/// Parses a boolean option (`true`/`false`, as kingpin's bool flags print).
pub fn option_bool(option: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" | "" => Ok(false),
        v => Err(format!(
            "--collector.{option}: want true or false, got {v:?}"
        )),
    }
}

/// Which fields of a key/value file (`vmstat`, `netstat`) a `fields` regex selects, with the
/// metric name and HELP of each selected field. The regex runs once per new field name.
///
/// Later reads are matched by position first: these files list the same fields in the same
/// order on every read, so the field at visit position `i` is checked (length and
/// [`fingerprint`]) against the name seen there last time, and only a mismatch (a kernel that added a field, a module
/// loaded) falls back to the hash map. Call [`Self::restart`] before each read pass.
pub struct FieldSelection {
    pattern: regex_lite::Regex,
    seen: std::collections::HashMap<Box<str>, Option<u32>>,
    /// Interned (see [`intern`]), so the metric set takes them as literals, uncopied.
    selected: Vec<(&'static str, &'static str)>,
    /// Fields in the order the last pass visited them: length and [`fingerprint`] of the
    /// name (not the name: the kept names, one allocation each, are cold memory at the next
    /// scrape, and comparing with them was most of the remaining parse CPU), and selection.
    by_position: Vec<(u32, u64, Option<u32>)>,
    position: usize,
}

impl FieldSelection {
    pub fn new(pattern: regex_lite::Regex) -> Self {
        FieldSelection {
            pattern,
            seen: Default::default(),
            selected: Vec::new(),
            by_position: Vec::new(),
            position: 0,
        }
    }

    /// Starts a pass over the file(s): positions count from here.
    pub fn restart(&mut self) {
        self.position = 0;
    }

    /// The (metric name, HELP) for `field`, or `None` when the regex rejects it. `describe`
    /// builds them the first time a selected field is seen.
    pub fn get(
        &mut self,
        field: &str,
        describe: impl FnOnce(&str) -> (String, String),
    ) -> Option<(&'static str, &'static str)> {
        let pos = self.position;
        self.position += 1;
        let print = (field.len() as u32, fingerprint(field.as_bytes()));
        let idx = match self.by_position.get(pos) {
            Some(&(len, hash, idx)) if (len, hash) == print => idx,
            _ => {
                let idx = self.lookup(field, describe);
                // Bounded by the number of fields in the file(s) (position grows by one per
                // field of a pass and restarts at 0).
                if pos < self.by_position.len() {
                    self.by_position[pos] = (print.0, print.1, idx);
                } else {
                    self.by_position.push((print.0, print.1, idx));
                }
                idx
            }
        }?;
        Some(self.selected(idx))
    }

    /// The selection index of `field` (for [`Self::selected`]), or `None` when the regex
    /// rejects it; by name, for callers that cache the indices of a whole header line.
    pub fn lookup(
        &mut self,
        field: &str,
        describe: impl FnOnce(&str) -> (String, String),
    ) -> Option<u32> {
        if let Some(i) = self.seen.get(field) {
            return *i;
        }
        let idx = if self.pattern.is_match(field) {
            let (name, help) = describe(field);
            self.selected.push((intern(name), intern(help)));
            Some(self.selected.len() as u32 - 1)
        } else {
            None
        };
        self.seen.insert(field.into(), idx);
        idx
    }

    /// The (metric name, HELP) of a selection index from [`Self::lookup`].
    pub fn selected(&self, idx: u32) -> (&'static str, &'static str) {
        self.selected[idx as usize]
    }
}

/// `text` as a `&'static str`, leaked once per distinct text in the process: the family names
/// and HELP texts collectors build from field names (netstat, vmstat), so `MetricSet` keeps
/// them as pointers like literals instead of copying ~100 of them into its arena every scrape
/// (0.8 % of a scrape). Bounded by the distinct field names the selection regexes accept in
/// the files read (the kernel's own names: a few KB).
pub fn intern(text: String) -> &'static str {
    static INTERNED: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut interned = INTERNED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(&known) = interned.iter().find(|&&t| t == text) {
        return known;
    }
    let leaked: &'static str = Box::leak(text.into_boxed_str());
    interned.push(leaked);
    leaked
}

/// The (metric name, HELP) texts a collector builds from two parts of a file (protocol and
/// key, direction and column), each built and [`intern`]ed once, then found by position: a
/// file lists the same parts in the same order on every read, so the entry at visit
/// position `i` is checked against the parts' [`fingerprint`]s (kept inline, not the texts:
/// those are cold memory at the next scrape, and comparing with them in a search over all
/// entries was ~0.4 % of a scrape). A miss searches all entries by hash, then builds. Call
/// [`Self::restart`] before each pass. See [`fingerprint`] for why a hash is safe here.
#[derive(Default)]
pub struct KnownTexts {
    by_position: Vec<(u64, &'static str, &'static str)>,
    position: usize,
}

impl KnownTexts {
    /// Entries kept at most (a kernel's own lines need a few dozen); past it texts are built
    /// and interned (once) but not remembered by position.
    const MAX: usize = 256;

    /// Starts a pass: positions count from here.
    pub fn restart(&mut self) {
        self.position = 0;
    }

    /// The texts for parts `a` and `b`; `build` makes them the first time.
    pub fn get(
        &mut self,
        a: &str,
        b: &str,
        build: impl FnOnce(&str, &str) -> (String, String),
    ) -> (&'static str, &'static str) {
        let key = fingerprint(a.as_bytes()) ^ fingerprint(b.as_bytes()).rotate_left(31);
        let pos = self.position;
        self.position += 1;
        if let Some(&(k, name, help)) = self.by_position.get(pos) {
            if k == key {
                return (name, help);
            }
        }
        let entries = &mut self.by_position;
        if let Some(at) = entries.iter().position(|e| e.0 == key) {
            // Moved: swapped to this position, the entry that was here is kept too.
            let now_at = if pos < entries.len() {
                entries.swap(pos, at);
                pos
            } else {
                at
            };
            return (entries[now_at].1, entries[now_at].2);
        }
        let (name, help) = build(a, b);
        let entry = (key, intern(name), intern(help));
        if pos < entries.len() {
            let displaced = std::mem::replace(&mut entries[pos], entry);
            if entries.len() < Self::MAX {
                entries.push(displaced);
            }
        } else if entries.len() < Self::MAX {
            entries.push(entry);
        }
        (entry.1, entry.2)
    }
}

/// A regex with its verdicts on the names it was last asked about: device names repeat every
/// scrape, and regex_lite runs its NFA for each call (even for the default `^$`, 0.2 % of a
/// scrape for four interfaces).
pub struct RememberedRegex {
    re: regex_lite::Regex,
    /// Length and [`fingerprint`] of each name, and the verdict (kept copies of the names
    /// were cold memory at the next scrape; see [`fingerprint`] for why a hash is safe here).
    verdicts: Vec<((usize, u64), bool)>,
}

impl RememberedRegex {
    /// Names remembered at most: past this the list starts over (a host with that many
    /// devices pays one regex run per device, as without the list).
    const MAX: usize = 64;

    pub fn new(re: regex_lite::Regex) -> Self {
        RememberedRegex {
            re,
            verdicts: Vec::new(),
        }
    }

    pub fn is_match(&mut self, name: &str) -> bool {
        let print = (name.len(), fingerprint(name.as_bytes()));
        if let Some(&(_, v)) = self.verdicts.iter().find(|(n, _)| *n == print) {
            return v;
        }
        let v = self.re.is_match(name);
        if self.verdicts.len() >= Self::MAX {
            self.verdicts.clear();
        }
        self.verdicts.push((print, v));
        v
    }
}

/// A 64-bit hash of `bytes` (multiply-xorshift per 8-byte word), for recognizing a field name
/// or header line seen at the same place in the last read without keeping (and reading
/// back) the text itself.
///
/// Why a hash is safe here: the texts are the kernel's own field names (or a recorded
/// tree's), not chosen to collide, and they change only with another kernel, module or
/// tree. Callers also compare the length, so a wrong match needs a changed name of the same
/// length with an equal hash: about 2^-64 per change. Even then the effect is a value under
/// the previous name, never a crash.
#[cfg_attr(promlet_speed, optimize(speed))]
pub fn fingerprint(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mix = |h: u64, w: u64| {
        let x = (h ^ w).wrapping_mul(K);
        x ^ (x >> 29)
    };
    let mut words = bytes.chunks_exact(8);
    let mut h = bytes.len() as u64;
    for w in &mut words {
        h = mix(h, u64::from_le_bytes(w.try_into().unwrap_or_default()));
    }
    // The last 1..7 bytes in one or two loads, not byte by byte (nor `copy_from_slice` into
    // a word: that is a memcpy call per short name). Each form holds every byte of the tail,
    // and the length is in `h`, so distinct texts of one length give distinct words.
    let rest = words.remainder();
    let n = rest.len();
    let half = |i: usize| {
        rest.get(i..i + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let tail = match (n, word_at(bytes, bytes.len().wrapping_sub(8))) {
        (0, _) => 0,
        // The last 8 bytes, shifted down to the tail's: as if loaded byte by byte.
        (_, Some(last)) => last >> (8 * (8 - n)),
        (4.., None) => u64::from(half(0)) | u64::from(half(n - 4)) << 32,
        (_, None) => {
            u64::from(rest[0]) | u64::from(rest[n / 2]) << 8 | u64::from(rest[n - 1]) << 16
        }
    };
    mix(h, tail)
}

/// Test helper: runs a collector over a temp procfs/sysfs tree built from `(path, content)`
/// pairs (paths relative to the tree root, e.g. `proc/meminfo`).
#[cfg(test)]
pub(crate) mod testing {
    use crate::collect::{CollectError, Collector, Context, Roots};
    use crate::expo::{encode_text, MetricSet};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// The collector's result and its text exposition.
    pub fn run(
        c: &mut dyn Collector,
        files: &[(&str, &str)],
    ) -> (Result<(), CollectError>, String) {
        static N: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "promlet-unit-{}-{}-{}",
            c.name(),
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        for (path, content) in files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        let roots = Roots {
            procfs: root.join("proc"),
            sysfs: root.join("sys"),
            rootfs: root.clone(),
            udev_data: root.join("udev"),
        };
        let mut set = MetricSet::new();
        let r = c.collect(
            &Context {
                roots: &roots,
                now_ms: 0,
            },
            &mut set,
        );
        let _ = std::fs::remove_dir_all(&root);
        let mut out = Vec::new();
        encode_text(&set, &mut out);
        (r, String::from_utf8(out).unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_split_ascii_whitespace() {
        for s in [
            "",
            " ",
            "a",
            "a b",
            "  a   b  ",
            "a\tb\n",
            "Ip6InReceives                   \t3795\n",
            "\r\n\x0c x\x0by \u{a0}z\t",
            "ä ö\tü",
            // Long runs and words, crossing the 8-byte steps at every offset.
            "Ip6InReceives                   \t3795\nIp6InHdrErrors                  \t0\n",
            "MemTotal:       24684092 kB\nMemFree:         14322836 kB\n",
            "abcdefgh\x01ijklmnop\x0bqrs\x1ftuv  \t\t\n\r\x0c        w\x00x",
            "            \u{a0}\u{a0}\u{a0}\u{a0}          \u{2003}x",
        ] {
            for from in 0..s.len().min(9) {
                let Some(s) = s.get(from..) else { continue };
                let want: Vec<&str> = s.split_ascii_whitespace().collect();
                assert_eq!(words(s).collect::<Vec<_>>(), want, "{s:?}");
                assert_eq!(words(s).count(), want.len(), "{s:?}");
            }
        }
    }

    #[test]
    fn lines_and_split_once_byte_match_std() {
        for s in [
            "",
            "\n",
            "\n\n",
            "a",
            "a\n",
            "a\r\nb\r\n",
            "a\rb\n\r",
            "\r\n",
            "x\r",
            "MemTotal: 1 kB\nä: ö\n\nlast",
            "a rather long first line: with a colon\r\nand a second one without\n\n\n",
            "ÿÿÿÿÿÿÿÿÿÿÿÿ:ÿ\nÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿ\r\n",
        ] {
            let want: Vec<&str> = s.lines().collect();
            assert_eq!(lines(s).collect::<Vec<_>>(), want, "{s:?}");
            for line in want {
                assert_eq!(
                    split_once_byte(line, b':'),
                    line.split_once(':'),
                    "{line:?}"
                );
            }
        }
        assert_eq!(split_once_byte("a:b:c", b':'), Some(("a", "b:c")));
        assert_eq!(split_once_byte(":", b':'), Some(("", "")));
    }

    #[test]
    fn split_at_byte_splits_like_str_split() {
        for s in ["", "\n", "a", "a\nb", "a\n\nb\n", "\nä\n"] {
            let want: Vec<&str> = s.split('\n').collect();
            assert_eq!(split_at_byte(s, b'\n').collect::<Vec<_>>(), want, "{s:?}");
        }
    }

    #[test]
    fn parse_u64_accepts_and_rejects_like_str_parse() {
        for s in [
            "",
            "0",
            "+",
            "+7",
            "-7",
            "-0",
            "12345",
            " 1",
            "1 ",
            "1\n",
            "0x10",
            "1.0",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999",
            "00000000000000000000001",
            "１",
        ] {
            assert_eq!(parse_u64(s), s.parse::<u64>().ok(), "{s:?}");
        }
    }

    #[test]
    fn field_selection_matches_unanchored_like_go() {
        let re = option_regex("x", "pg.*fault").unwrap();
        let mut sel = FieldSelection::new(re);
        let d = |f: &str| (format!("node_{f}"), format!("help {f}"));
        assert_eq!(
            sel.get("xpgmajfault", d),
            Some(("node_xpgmajfault", "help xpgmajfault"))
        );
        assert_eq!(sel.get("nr_free", d), None);
        // Second lookup hits the cache and returns the same description.
        assert_eq!(
            sel.get("xpgmajfault", |_| unreachable!()).map(|x| x.0),
            Some("node_xpgmajfault")
        );
        // A new pass in the same order is answered by position; a field inserted in between
        // shifts the positions and is still answered right, by name.
        sel.restart();
        assert_eq!(
            sel.get("xpgmajfault", d).map(|x| x.0),
            Some("node_xpgmajfault")
        );
        assert_eq!(sel.get("nr_free", d), None);
        sel.restart();
        assert_eq!(sel.get("new_field", d), None);
        assert_eq!(
            sel.get("xpgmajfault", |_| unreachable!()).map(|x| x.0),
            Some("node_xpgmajfault")
        );
        assert_eq!(sel.get("nr_free", |_| unreachable!()), None);
    }

    /// Same-length names that differ in one byte, in any word or in the tail, or only in
    /// trailing zero bytes, get different fingerprints; so does a swapped word order.
    #[test]
    fn fingerprint_tells_apart_same_length_names() {
        let base = b"pgmajfault_abcdefghijklmnopq".to_vec();
        let f0 = fingerprint(&base);
        for i in 0..base.len() {
            let mut other = base.clone();
            other[i] ^= 1;
            assert_ne!(fingerprint(&other), f0, "byte {i}");
        }
        assert_ne!(fingerprint(b"ab"), fingerprint(b"ab\0"));
        assert_ne!(
            fingerprint(b"aaaaaaaabbbbbbbb"),
            fingerprint(b"bbbbbbbbaaaaaaaa")
        );
        assert_eq!(fingerprint(&base), f0);
        // Every short length, every byte flipped: the tail loads cover all bytes.
        for len in 1..=16 {
            let name: Vec<u8> = (0..len).map(|i| b'a' + i as u8).collect();
            let f = fingerprint(&name);
            for i in 0..len {
                let mut other = name.clone();
                other[i] ^= 0x20;
                assert_ne!(fingerprint(&other), f, "len {len} byte {i}");
            }
        }
    }

    #[test]
    fn kept_file_sees_new_content_and_reports_removal() {
        let dir = std::env::temp_dir().join(format!("promlet-kept-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut f = KeptFile::new("value");
        let mut buf = String::new();
        assert!(matches!(
            f.read(&dir, &mut buf),
            Err(ref e) if e.is_not_found()
        ));
        std::fs::write(dir.join("value"), "1 2 3\n").unwrap();
        f.read(&dir, &mut buf).unwrap();
        assert_eq!(buf, "1 2 3\n");
        std::fs::write(dir.join("value"), "42\n").unwrap();
        assert_eq!(f.read_u64(&dir, &mut buf).unwrap(), 42);
        std::fs::write(dir.join("value"), [0xff, 0xfe]).unwrap();
        assert!(f.read(&dir, &mut buf).is_err());
        assert!(buf.is_empty());
        // A long file needs several preads.
        let long = "x".repeat(100_000);
        std::fs::write(dir.join("value"), &long).unwrap();
        f.read(&dir, &mut buf).unwrap();
        assert_eq!(buf.len(), long.len());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn hex_and_num_reject_garbage() {
        let p = Path::new("f");
        assert_eq!(hex("0000588a", p).unwrap(), 0x588a);
        assert!(hex("zz", p).is_err());
        assert!(num("1.5", p).is_ok());
        assert!(num("", p).is_err());
    }

    /// Reading with the short-read rule gets the same bytes as reading to a 0-byte read, for
    /// files around the seq_file buffer size and over several reads of one kept descriptor.
    #[test]
    fn short_read_rule_reads_whole_files_of_any_size() {
        let s = crate::collect::fixtures::Scratch::new("short-read");
        let root = s.dir.clone();
        for len in [0, 1, 100, 1023, 4095, 4096, 4097, 9000, 20_000] {
            let content: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            s.write("f", content.as_bytes());
            for max_record in [None, Some(0), Some(128)] {
                let mut k = KeptFile::new("f");
                if let Some(m) = max_record {
                    k = k.short_read_ends(m);
                }
                let mut buf = String::new();
                for _ in 0..2 {
                    k.read(&root, &mut buf).unwrap();
                    assert_eq!(buf.len(), len, "{len} bytes, {max_record:?}");
                    assert_eq!(buf, content);
                }
            }
        }
    }

    /// On this kernel's /proc, a read that stops at the short-read rule yields the same lines
    /// (names; the values move) as reading until a read returns 0.
    #[test]
    fn short_read_rule_matches_reading_to_the_end_on_real_proc() {
        let root = Path::new("/proc");
        for (rel, max_record) in [
            ("vmstat", 128),
            ("meminfo", 0),
            ("stat", 0),
            ("net/dev", 512),
            ("net/softnet_stat", 512),
            ("diskstats", 1024),
            ("net/netstat", 0),
            ("net/snmp", 0),
        ] {
            let (mut whole, mut short) = (String::new(), String::new());
            if KeptFile::new(rel).read(root, &mut whole).is_err() {
                continue;
            }
            KeptFile::new(rel)
                .short_read_ends(max_record)
                .read(root, &mut short)
                .unwrap();
            // First word of each line; numbers (softnet's hex counters) count as one shape.
            let names = |t: &str| -> Vec<String> {
                t.lines()
                    .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
                    .map(|w| {
                        if w.bytes().all(|b| b.is_ascii_hexdigit()) {
                            "#".to_string()
                        } else {
                            w
                        }
                    })
                    .collect()
            };
            assert_eq!(names(&whole), names(&short), "{rel}");
        }
    }

    #[test]
    fn split_at_byte_matches_str_split() {
        for s in [
            "",
            " ",
            "a",
            "a b",
            " a  b ",
            "Tcp: 1 2 3",
            "\n\nx\n",
            "Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens\nTcp: 1 200 120000 -1 5\n",
            "ünïcödé ✓ separators ÿÿÿÿÿÿÿÿ\n\u{80}\u{ff} \u{2020}\n",
        ] {
            for sep in [b' ', b'\n', b':', 0x7f] {
                let ours: Vec<&str> = split_at_byte(s, sep).collect();
                let std: Vec<&str> = s.split(sep as char).collect();
                assert_eq!(ours, std, "{s:?} at {sep}");
            }
        }
    }

    #[test]
    fn known_texts_build_once_and_follow_reordered_parts() {
        let mut built = 0;
        let mut t = KnownTexts::default();
        let mut make = |a: &str, b: &str| {
            built += 1;
            (format!("n_{a}_{b}"), format!("h {a}{b}"))
        };
        for order in [["rx", "tx"], ["rx", "tx"], ["tx", "rx"], ["rx", "tx"]] {
            t.restart();
            for dir in order {
                for col in ["bytes", "packets"] {
                    let (name, help) = t.get(dir, col, &mut make);
                    assert_eq!(name, format!("n_{dir}_{col}"));
                    assert_eq!(help, format!("h {dir}{col}"));
                }
            }
        }
        // Swapped parts are other texts.
        t.restart();
        assert_eq!(t.get("bytes", "rx", &mut make).0, "n_bytes_rx");
        assert_eq!(built, 5);
    }

    #[test]
    fn remembered_regex_gives_the_regex_verdict_and_survives_many_names() {
        let mut r = RememberedRegex::new(regex_lite::Regex::new("^(veth|docker)").unwrap());
        for round in 0..3 {
            assert!(r.is_match("veth12"), "round {round}");
            assert!(!r.is_match("eth0"), "round {round}");
            assert!(r.is_match("docker0"), "round {round}");
        }
        // More names than it remembers: verdicts stay right after it starts over.
        for i in 0..200 {
            let name = format!("veth{i}");
            assert!(r.is_match(&name));
            assert!(!r.is_match(&format!("x{i}")));
        }
        assert!(r.verdicts.len() <= RememberedRegex::MAX);
        assert!(!r.is_match("eth0"));
    }

    #[test]
    fn intern_leaks_each_distinct_text_once() {
        let a = intern("node_test_intern_a".to_string());
        let b = intern(String::from("node_test_intern_a"));
        assert_eq!(a, "node_test_intern_a");
        assert!(std::ptr::eq(a, b), "the same text is one allocation");
        let c = intern("node_test_intern_b".to_string());
        assert_eq!(c, "node_test_intern_b");
        assert!(!std::ptr::eq(a, c));
    }
}
