//! The bounded, persisted queue of alerts waiting for an Alertmanager.
//!
//! Owns: the in-memory queue (oldest first, one entry per distinct label set) and its log file
//! `<dir>/alert-queue.log`. Must not touch: the network.
//!
//! The file is an append-only log of crc-checked records, `[len u32 LE][crc32 u32 LE][payload]`,
//! where a payload is `Put{seq, alert}` or `Done{seq}` (delivered or dropped). Opening replays
//! it (a torn or corrupt tail ends the replay and is counted) and rewrites it compacted; it is
//! compacted again whenever it holds many more records than live entries. Appends are not
//! fsynced (flash wear): a promlet restart loses nothing, a power cut may lose the last few
//! seconds of queue changes. Disk errors are logged once and the queue goes on in memory.

use super::OutgoingAlert;
use crate::model::Labels;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const FILE_NAME: &str = "alert-queue.log";
const TAG_PUT: u8 = 1;
const TAG_DONE: u8 = 2;
/// A record larger than this is corruption, not an alert.
const MAX_RECORD: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    seq: u64,
    alert: OutgoingAlert,
}

/// See the module doc.
pub struct Queue {
    entries: VecDeque<Entry>,
    capacity: usize,
    next_seq: u64,
    /// The log file; None when memory-only (or after a disk error).
    path: Option<PathBuf>,
    records_in_file: usize,
    /// Alerts dropped because the queue was full (oldest first).
    pub dropped: u64,
    /// Records skipped at open because their length or crc was wrong.
    pub corrupt_records: u64,
}

impl Queue {
    /// A queue kept only in memory.
    pub fn in_memory(capacity: usize) -> Queue {
        Queue {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            next_seq: 1,
            path: None,
            records_in_file: 0,
            dropped: 0,
            corrupt_records: 0,
        }
    }

    /// Opens (or creates) the queue persisted in `dir`, replaying what an earlier run left.
    pub fn open(dir: &Path, capacity: usize) -> io::Result<Queue> {
        std::fs::create_dir_all(dir)?;
        let mut q = Queue::in_memory(capacity);
        let path = dir.join(FILE_NAME);
        match File::open(&path) {
            Ok(mut f) => {
                let mut buf = Vec::new();
                f.read_to_end(&mut buf)?;
                q.replay(&buf);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        q.path = Some(path);
        q.compact()?;
        Ok(q)
    }

    fn replay(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            let Some((payload, rest)) = split_record(buf) else {
                self.corrupt_records += 1;
                break;
            };
            buf = rest;
            match decode_payload(payload) {
                Some((seq, Some(alert))) => {
                    self.next_seq = self.next_seq.max(seq + 1);
                    self.insert(Entry { seq, alert });
                }
                Some((seq, None)) => {
                    self.next_seq = self.next_seq.max(seq + 1);
                    self.entries.retain(|e| e.seq != seq);
                }
                None => self.corrupt_records += 1,
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Queues `alert`, replacing a queued alert with the same labels; when full, drops the
    /// oldest entry (counted in [`Queue::dropped`]).
    pub fn push(&mut self, alert: OutgoingAlert) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut rec = Vec::with_capacity(128);
        encode_put(&mut rec, seq, &alert);
        self.append(&rec);
        if let Some(old) = self.insert(Entry { seq, alert }) {
            self.append_done(old);
        }
    }

    /// Inserts, replacing an entry with equal labels or dropping the oldest when full; returns
    /// the sequence number that left the queue.
    fn insert(&mut self, e: Entry) -> Option<u64> {
        if let Some(i) = self
            .entries
            .iter()
            .position(|x| x.alert.labels == e.alert.labels)
        {
            let old = self.entries.remove(i).map(|x| x.seq);
            self.entries.push_back(e);
            return old;
        }
        let mut gone = None;
        if self.entries.len() >= self.capacity {
            gone = self.entries.pop_front().map(|x| x.seq);
            self.dropped += 1;
        }
        self.entries.push_back(e);
        gone
    }

    /// Up to `max` of the oldest entries: their sequence numbers and alerts.
    pub fn head(&self, max: usize) -> impl Iterator<Item = (u64, &OutgoingAlert)> {
        self.entries.iter().take(max).map(|e| (e.seq, &e.alert))
    }

    /// Removes delivered entries. Entries replaced since they were read have a new sequence
    /// number and stay queued.
    pub fn ack(&mut self, seqs: &[u64]) {
        for &seq in seqs {
            if let Some(i) = self.entries.iter().position(|e| e.seq == seq) {
                self.entries.remove(i);
                self.append_done(seq);
            }
        }
        if self.records_in_file > 4 * self.entries.len() + 256 {
            if let Err(e) = self.compact() {
                self.disk_failed(&e);
            }
        }
    }

    fn append_done(&mut self, seq: u64) {
        let mut rec = Vec::with_capacity(17);
        frame(&mut rec, |p| {
            p.push(TAG_DONE);
            p.extend_from_slice(&seq.to_le_bytes());
        });
        self.append(&rec);
    }

    /// Opens, appends, closes: queue changes are rare, and a descriptor held for the whole
    /// run would come out of the agent's fd budget (the connection cap is computed from it).
    fn append(&mut self, rec: &[u8]) {
        let Some(path) = &self.path else { return };
        let r = OpenOptions::new()
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(rec));
        match r {
            Ok(()) => self.records_in_file += 1,
            Err(e) => self.disk_failed(&e),
        }
    }

    fn disk_failed(&mut self, e: &io::Error) {
        if let Some(p) = &self.path {
            crate::log::warn(&format!(
                "alert queue {}: {e}; the queue goes on in memory only",
                p.display()
            ));
        }
        self.path = None;
    }

    /// Rewrites the log with only the live entries (write a temp file, fsync, rename).
    fn compact(&mut self) -> io::Result<()> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        let tmp = path.with_extension("tmp");
        let mut buf = Vec::new();
        for e in &self.entries {
            encode_put(&mut buf, e.seq, &e.alert);
        }
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        self.records_in_file = self.entries.len();
        Ok(())
    }
}

/// Appends one framed record whose payload `fill` writes.
fn frame(out: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    fill(out);
    let len = (out.len() - start - 8) as u32;
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn split_record(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(buf.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(buf.get(4..8)?.try_into().ok()?);
    if len > MAX_RECORD {
        return None;
    }
    let payload = buf.get(8..8 + len)?;
    (crc32fast::hash(payload) == crc).then_some((payload, &buf[8 + len..]))
}

fn encode_put(out: &mut Vec<u8>, seq: u64, a: &OutgoingAlert) {
    frame(out, |p| {
        p.push(TAG_PUT);
        p.extend_from_slice(&seq.to_le_bytes());
        put_labels(p, &a.labels);
        put_labels(p, &a.annotations);
        p.extend_from_slice(&a.starts_at.to_le_bytes());
        p.extend_from_slice(&a.ends_at.to_le_bytes());
        put_str(p, &a.generator_url);
    });
}

fn put_labels(p: &mut Vec<u8>, l: &Labels) {
    p.extend_from_slice(&(l.len() as u32).to_le_bytes());
    for (n, v) in l.iter() {
        put_str(p, n);
        put_str(p, v);
    }
}

fn put_str(p: &mut Vec<u8>, s: &str) {
    p.extend_from_slice(&(s.len() as u32).to_le_bytes());
    p.extend_from_slice(s.as_bytes());
}

/// A payload's sequence number and, for `Put`, its alert. None: malformed.
fn decode_payload(p: &[u8]) -> Option<(u64, Option<OutgoingAlert>)> {
    let mut r = Reader(p);
    let tag = r.bytes(1)?[0];
    let seq = u64::from_le_bytes(r.bytes(8)?.try_into().ok()?);
    match tag {
        TAG_DONE if r.0.is_empty() => Some((seq, None)),
        TAG_PUT => {
            let labels = r.labels()?;
            let annotations = r.labels()?;
            let starts_at = i64::from_le_bytes(r.bytes(8)?.try_into().ok()?);
            let ends_at = i64::from_le_bytes(r.bytes(8)?.try_into().ok()?);
            let generator_url = r.string()?;
            r.0.is_empty().then_some((
                seq,
                Some(OutgoingAlert {
                    labels,
                    annotations,
                    starts_at,
                    ends_at,
                    generator_url,
                }),
            ))
        }
        _ => None,
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<usize> {
        Some(u32::from_le_bytes(self.bytes(4)?.try_into().ok()?) as usize)
    }
    fn string(&mut self) -> Option<String> {
        let n = self.u32()?;
        String::from_utf8(self.bytes(n)?.to_vec()).ok()
    }
    fn labels(&mut self) -> Option<Labels> {
        let n = self.u32()?;
        let mut pairs = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            pairs.push((self.string()?, self.string()?));
        }
        Some(Labels::from_pairs(pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(name: &str, ends_at: i64) -> OutgoingAlert {
        OutgoingAlert {
            labels: Labels::from_pairs([("alertname", name)]),
            annotations: Labels::from_pairs([("summary", "s")]),
            starts_at: 1000,
            ends_at,
            generator_url: "http://x/graph?g0.expr=up".into(),
        }
    }

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("promlet-queue-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// Queue bytes per alert: its strings plus 45 bytes of framing and times plus 8 per label
    /// or annotation pair. A typical rule alert (4 labels, 2 annotations, a 90-byte
    /// generatorURL) costs 339 bytes on disk.
    #[test]
    fn record_size_is_the_strings_plus_fixed_overhead() {
        let a = OutgoingAlert {
            labels: Labels::from_pairs([
                ("alertname", "HighCPU"),
                ("instance", "pi.local:9099"),
                ("job", "node"),
                ("severity", "warning"),
            ]),
            annotations: Labels::from_pairs([
                ("summary", "CPU busy on pi.local:9099"),
                ("description", "CPU has been above 90% for 10 minutes (value 93.2%)."),
            ]),
            starts_at: 1,
            ends_at: 2,
            generator_url: "http://pi.local:9099/graph?g0.expr=100+-+avg+by+(instance)(rate(node_cpu_seconds_total[5m]))".into(),
        };
        let strings: usize = a
            .labels
            .iter()
            .chain(a.annotations.iter())
            .map(|(n, v)| n.len() + v.len())
            .sum::<usize>()
            + a.generator_url.len();
        let mut rec = Vec::new();
        encode_put(&mut rec, 1, &a);
        assert_eq!(rec.len(), strings + 45 + 8 * 6);
        assert_eq!(rec.len(), 339);
    }

    #[test]
    fn same_labels_replace_and_overflow_drops_the_oldest() {
        let mut q = Queue::in_memory(2);
        q.push(alert("a", 0));
        q.push(alert("b", 0));
        q.push(alert("a", 5000));
        assert_eq!(q.len(), 2);
        let names: Vec<_> = q.head(9).map(|(_, a)| a.labels.get("alertname")).collect();
        assert_eq!(names, [Some("b"), Some("a")]);
        q.push(alert("c", 0));
        assert_eq!(q.dropped, 1);
        assert_eq!(
            q.head(1).next().unwrap().1.labels.get("alertname"),
            Some("a")
        );
    }

    #[test]
    fn ack_keeps_entries_replaced_while_in_flight() {
        let mut q = Queue::in_memory(10);
        q.push(alert("a", 0));
        let seqs: Vec<u64> = q.head(10).map(|(s, _)| s).collect();
        q.push(alert("a", 9000));
        q.ack(&seqs);
        assert_eq!(q.len(), 1);
        assert_eq!(q.head(1).next().unwrap().1.ends_at, 9000);
    }

    #[test]
    fn reopened_queue_holds_what_was_not_acked() {
        let dir = tempdir("reopen");
        {
            let mut q = Queue::open(&dir, 10).unwrap();
            q.push(alert("a", 0));
            q.push(alert("b", 0));
            q.push(alert("c", 0));
            let first: Vec<u64> = q.head(1).map(|(s, _)| s).collect();
            q.ack(&first);
            q.push(alert("b", 7000));
        }
        let mut q = Queue::open(&dir, 10).unwrap();
        let got: Vec<_> = q.head(9).map(|(_, a)| a.clone()).collect();
        assert_eq!(got, [alert("c", 0), alert("b", 7000)]);
        // New sequence numbers continue after the replayed ones.
        q.push(alert("d", 0));
        let seqs: Vec<u64> = q.head(9).map(|(s, _)| s).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn corrupt_tail_is_counted_and_the_rest_survives() {
        let dir = tempdir("corrupt");
        {
            let mut q = Queue::open(&dir, 10).unwrap();
            q.push(alert("a", 0));
            q.push(alert("b", 0));
        }
        let path = dir.join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0xff; // flip a byte inside the last record
        bytes.extend_from_slice(&[1, 2, 3]); // and a torn partial record
        std::fs::write(&path, &bytes).unwrap();
        let q = Queue::open(&dir, 10).unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(q.corrupt_records, 1);
        // Garbage of every length never panics.
        for len in 0..bytes.len() {
            let mut g = Queue::in_memory(10);
            g.replay(&bytes[..len]);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
