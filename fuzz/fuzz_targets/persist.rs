//! Fuzzes every reader of what promlet left on disk: TSDB segments (recovery), the notify
//! queue file, push_groups.bin and silences.json. A damaged file must be skipped or set
//! aside with a log line; never a panic, hang or runaway allocation; the store recovered from
//! damage must still take and persist new samples.
//!
//! The first byte picks the reader and whether the fuzzer's bytes are the whole file or the
//! payloads of records we frame (length, CRC) ourselves, so the fuzzer gets past checksums to
//! the decoders. Records are separated by `|~|`, segment files by `\n--\n`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promlet::model::{Labels, MatchOp, Matcher};
use promlet::tsdb::format::{segment_header, segment_name, FRAME_MARK};
use promlet::tsdb::{Appender, Fs, Options, Querier, Store};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Files in memory: recovery reads them, flushes append to them.
#[derive(Default)]
struct MemFs(BTreeMap<PathBuf, Vec<u8>>);

impl Fs for MemFs {
    fn create_dir_all(&mut self, _: &Path) -> io::Result<()> {
        Ok(())
    }
    fn list(&mut self, dir: &Path) -> io::Result<Vec<String>> {
        Ok(self
            .0
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect())
    }
    fn read(&mut self, path: &Path) -> io::Result<Vec<u8>> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }
    fn append_sync(&mut self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.0
            .entry(path.to_path_buf())
            .or_default()
            .extend_from_slice(data);
        Ok(())
    }
    fn remove(&mut self, path: &Path) -> io::Result<()> {
        self.0.remove(path);
        Ok(())
    }
}

fn split<'a>(data: &'a [u8], sep: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.windows(sep.len()).position(|w| w == sep) {
            Some(i) => {
                rest = Some(&r[i + sep.len()..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

fn tsdb(data: &[u8], framed: bool) {
    let dir = Path::new("/data");
    let mut fs = MemFs::default();
    for (seq, seg) in split(data, b"\n--\n").enumerate().take(4) {
        let file = if framed {
            let mut f = segment_header().to_vec();
            for payload in split(seg, b"|~|") {
                f.push(FRAME_MARK);
                f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
                f.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
                f.extend_from_slice(payload);
            }
            f
        } else {
            seg.to_vec()
        };
        fs.0.insert(dir.join(segment_name(seq as u32)), file);
    }
    let opts = Options {
        retention_bytes: 1 << 20,
        max_series: 1000,
        ..Options::default()
    };
    let mut store = Store::open(opts, dir, Box::new(fs));
    // Whatever was recovered must be queryable and the store must keep working.
    let all = [Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap()];
    let got = store.select(&all, i64::MIN / 2, i64::MAX / 2);
    let newest = got
        .iter()
        .flat_map(|s| s.samples.last())
        .map(|s| s.t)
        .max()
        .unwrap_or(0);
    let t = newest.saturating_add(15_000);
    let labels = Labels::from_pairs([("__name__", "after_recovery"), ("job", "fuzz")]);
    store
        .append(&labels, t, 1.0)
        .expect("a fresh series must be accepted after recovery");
    store.flush(Instant::now());
    let back = store.select(
        &[Matcher::new(MatchOp::Equal, "__name__", "after_recovery").unwrap()],
        t,
        t,
    );
    assert_eq!(back.len(), 1, "the sample appended after recovery is gone");
}

fn frame_queue(data: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    for payload in split(data, b"|~|") {
        f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        f.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        f.extend_from_slice(payload);
    }
    f
}

/// A private scratch directory per fuzzing process (the file readers take a directory),
/// emptied before each input.
fn scratch() -> PathBuf {
    thread_local! {
        static DIR: PathBuf = {
            let base = std::env::var_os("TMPDIR").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
            let d = base.join(format!("promlet-fuzz-persist-{}", std::process::id()));
            std::fs::create_dir_all(&d).expect("scratch dir");
            d
        };
    }
    let d = DIR.with(|d| d.clone());
    for e in std::fs::read_dir(&d).expect("scratch dir").flatten() {
        let _ = std::fs::remove_file(e.path());
    }
    d
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let framed = mode & 0x80 != 0;
    match mode & 0x7f {
        0..=31 => tsdb(body, framed),
        32..=63 => {
            let dir = scratch();
            let file = if framed {
                frame_queue(body)
            } else {
                body.to_vec()
            };
            std::fs::write(dir.join("alert-queue.log"), file).unwrap();
            if let Ok(mut q) = promlet::notify::queue::Queue::open(&dir, 100) {
                assert!(q.len() <= 100, "queue holds {} > its capacity", q.len());
                let seqs: Vec<u64> = q.head(10).map(|(s, _)| s).collect();
                q.ack(&seqs);
            }
        }
        64..=95 => {
            let dir = scratch();
            let file = if framed {
                // Magic and a correct checksum, so the decoder sees the fuzzer's bytes.
                let mut f = b"PLPUSH01".to_vec();
                f.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
                f.extend_from_slice(body);
                f
            } else {
                body.to_vec()
            };
            std::fs::write(dir.join("push_groups.bin"), file).unwrap();
            let store =
                promlet::push::Store::open(&dir).expect("a damaged file is set aside, not fatal");
            let mut set = promlet::expo::MetricSet::new();
            store.write_metrics(&mut set);
        }
        _ => {
            let dir = scratch();
            std::fs::write(dir.join("silences.json"), body).unwrap();
            let s = promlet::notify::silence::SilenceStore::open(Some(dir));
            let _ = s.is_silenced(&Labels::from_pairs([("alertname", "x")]), 0);
        }
    }
});
