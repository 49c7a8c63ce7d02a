//! The TSDB under injected file-system faults: disk full, torn writes, flipped bits.
//! Faults come from a wrapper around the real file system (`OsFs`), on a real temp dir.

use crate::common::TempDir;
use promlet::model::{Labels, MatchOp, Matcher};
use promlet::tsdb::{Appender, Fs, Options, OsFs, Querier, Store};
use std::cell::RefCell;
use std::io;
use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

#[derive(Default)]
struct Faults {
    /// Fail every append with ENOSPC.
    disk_full: bool,
    /// Write only this many bytes of the next append, then fail.
    tear_next_at: Option<usize>,
    appends_failed: u64,
}

struct FaultyFs {
    inner: OsFs,
    faults: Rc<RefCell<Faults>>,
}

impl Fs for FaultyFs {
    fn create_dir_all(&mut self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list(&mut self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn read(&mut self, path: &Path) -> io::Result<Vec<u8>> {
        self.inner.read(path)
    }
    fn append_sync(&mut self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut f = self.faults.borrow_mut();
        if f.disk_full {
            f.appends_failed += 1;
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        if let Some(n) = f.tear_next_at.take() {
            f.appends_failed += 1;
            self.inner.append_sync(path, &data[..n.min(data.len())])?;
            return Err(io::Error::from_raw_os_error(5)); // EIO after a partial write
        }
        self.inner.append_sync(path, data)
    }
    fn remove(&mut self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
}

fn labels(i: usize) -> Labels {
    Labels::from_pairs([("__name__", "m".to_string()), ("i", i.to_string())])
}

fn opts() -> Options {
    Options {
        retention_bytes: 1 << 20,
        segment_bytes: 32 << 10,
        ..Options::default()
    }
}

fn count_samples(st: &Store) -> usize {
    st.select(&[], i64::MIN, i64::MAX)
        .iter()
        .map(|s| s.samples.len())
        .sum()
}

/// Disk full: ingestion goes on in memory, errors are counted, and once space returns the next
/// flush writes everything, so a restart recovers it.
#[test]
fn tsdb_disk_full_keeps_ingesting_and_recovers_when_space_returns() {
    let dir = TempDir::new("enospc");
    let faults = Rc::new(RefCell::new(Faults::default()));
    let fs = FaultyFs {
        inner: OsFs,
        faults: faults.clone(),
    };
    let mut st = Store::open(opts(), &dir, Box::new(fs));
    let now = Instant::now();
    let mut t = 1_000_000;
    for _ in 0..200 {
        for i in 0..20 {
            st.append(&labels(i), t, (t % 1000) as f64).unwrap();
        }
        t += 15_000;
    }
    st.flush(now);
    faults.borrow_mut().disk_full = true;
    for round in 0..5 {
        for _ in 0..300 {
            for i in 0..20 {
                st.append(&labels(i), t, (t % 777) as f64).unwrap();
            }
            t += 15_000;
        }
        st.flush(now);
        assert_eq!(st.stats().persist_errors, round + 1);
    }
    assert_eq!(count_samples(&st), 20 * 1700, "ingestion went on in memory");
    faults.borrow_mut().disk_full = false;
    st.flush(now);
    assert_eq!(st.stats().persist_errors, 5);
    let want = st.select(&[], i64::MIN, i64::MAX);
    drop(st);
    let st2 = Store::open(opts(), &dir, Box::new(OsFs));
    assert_eq!(st2.select(&[], i64::MIN, i64::MAX), want);
}

/// A write torn part-way (power cut, EIO) leaves a damaged tail; the store appends its retry
/// after it (or restarts a torn new segment), and recovery counts the damage, skips it, and
/// loses nothing that was flushed.
#[test]
fn tsdb_torn_write_is_skipped_and_retried() {
    for cut in [1usize, 9, 50, 400] {
        let dir = TempDir::new("torn");
        let faults = Rc::new(RefCell::new(Faults::default()));
        let fs = FaultyFs {
            inner: OsFs,
            faults: faults.clone(),
        };
        let mut st = Store::open(opts(), &dir, Box::new(fs));
        let now = Instant::now();
        let mut t = 5_000;
        for round in 0..4 {
            for _ in 0..100 {
                for i in 0..10 {
                    st.append(&labels(i), t, (t / 3) as f64).unwrap();
                }
                t += 15_000;
            }
            if round == 1 {
                faults.borrow_mut().tear_next_at = Some(cut);
            }
            st.flush(now);
        }
        st.flush(now);
        assert_eq!(faults.borrow().appends_failed, 1);
        assert_eq!(st.stats().persist_errors, 1);
        let want = st.select(&[], i64::MIN, i64::MAX);
        drop(st);
        let st2 = Store::open(opts(), &dir, Box::new(OsFs));
        // The torn segment is counted as damage if it still exists (it may already have been
        // deleted as dead once its chunks were rewritten into a newer segment).
        assert!(st2.stats().corrupt_records <= 1, "cut at {cut}");
        assert_eq!(st2.select(&[], i64::MIN, i64::MAX), want, "cut at {cut}");
    }
}

/// Bit flips anywhere in the files never panic and never stop the store from opening; a flip
/// costs at most the series data in the damaged record.
#[test]
fn tsdb_bit_flips_are_detected_counted_and_skipped() {
    let dir = TempDir::new("flip");
    let mut st = Store::open(opts(), &dir, Box::new(OsFs));
    let now = Instant::now();
    let mut t = 0;
    for _ in 0..6 {
        for _ in 0..60 {
            for i in 0..10 {
                st.append(&labels(i), t, (t % 91) as f64).unwrap();
            }
            t += 15_000;
        }
        st.flush(now);
    }
    let total = count_samples(&st);
    drop(st);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let pristine: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let mut rng = fastrand::Rng::with_seed(11);
    for _ in 0..60 {
        let which = rng.usize(..files.len());
        let mut bytes = pristine[which].clone();
        let at = rng.usize(..bytes.len());
        bytes[at] ^= 1 << rng.u8(..8);
        std::fs::write(&files[which], &bytes).unwrap();
        let st2 = Store::open(opts(), &dir, Box::new(OsFs));
        assert!(st2.stats().corrupt_records >= 1, "flip at {at} detected");
        let got = count_samples(&st2);
        assert!(
            got < total && got + 60 * 10 * 6 >= total,
            "{got} of {total}"
        );
        // The store still works after a damaged start.
        let m = Matcher::new(MatchOp::Equal, "i", "3").unwrap();
        assert!(st2.select(&[m], 0, i64::MAX).len() <= 1);
        drop(st2);
        std::fs::write(&files[which], &pristine[which]).unwrap();
        // Re-opening creates a new (empty) segment only when it writes; none was written here.
    }
    // A file that is not a segment at all, and an unreadable version, are skipped too.
    std::fs::write(dir.join("ffffffff.seg"), b"garbage").unwrap();
    let st3 = Store::open(opts(), &dir, Box::new(OsFs));
    assert_eq!(count_samples(&st3), total);
    assert_eq!(st3.stats().corrupt_records, 1);
}
