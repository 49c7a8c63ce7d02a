//! The store: series, their chunks, the byte budget, eviction, and persistence.
//!
//! Owns: [`Store`], which implements [`Appender`] and [`Querier`]. Must not touch: clocks (all
//! time comes in as arguments), PromQL, HTTP.
//!
//! # Rules
//! - **Budget.** [`Store::bytes_used`] (index + chunks + per-series tables, from allocation
//!   sizes) never stays above `retention_bytes`: after every growth the oldest sealed chunks are
//!   evicted in the order they were sealed (a ring). A series whose last sample is evicted leaves
//!   the index. New series are refused (`TooManySeries`) when `max_series` is reached, or when
//!   the index plus every series' worst-case open chunk would pass half the budget — that keeps
//!   eviction of sealed chunks always able to bring the store back under budget.
//! - **Order.** Samples of a series must have increasing timestamps. An equal timestamp with
//!   the bit-identical value is accepted and ignored; with another value it is refused
//!   (`DuplicateTimestamp`). An older timestamp is refused (`OutOfOrder`), however much older:
//!   the store cannot tell a late sample from a clock that was stepped back. The caller that
//!   owns the clock can: when the wall clock is behind the stored data it calls
//!   [`Store::discard_from`], which drops every sample at or after the corrected time in
//!   every series (they were stamped by a clock that was ahead), so appends at the corrected
//!   time are accepted again; the cut is written to disk before any later sample
//!   ([`Record::Cut`]). A clock stepped forward is just a large delta.
//! - **Idle series.** An open chunk whose newest sample is [`IDLE_SEAL_MS`] older than the
//!   newest sample in the store is sealed at the next `poll`, so its data takes its place in
//!   the eviction ring instead of pinning memory (and old segments) forever.
//! - **Persistence** (optional, see [`Store::open`]): on each flush the new bytes of every chunk
//!   go into the current segment file as framed records; nothing is rewritten in place. When a
//!   segment is full a new one starts; a chunk may continue across segments, but one begun
//!   [`REWRITE_AFTER_SEGS`] segments ago is written again whole. A segment is deleted once every
//!   chunk that began in it was evicted and no open chunk began in it. Samples appended after the last flush are lost in a
//!   crash; everything flushed is recovered.

use super::chunk::{
    Decoder, OpenChunk, PushError, SeekTable, CHUNK_MAX_BYTES, SEEK_POINTS, SEEK_POINT_BYTES,
};
use super::format::{self, ChunkEntry, Record, SeriesDef, Start};
use super::fs::Fs;
use super::index::{alloc_size, hash_labels, Index, SeriesId};
use super::{AppendError, Appender, LatestSink, PairsSink, Querier, SeriesSamples};
use crate::model::{Labels, Matcher, Sample, Timestamp};
use std::cell::Cell;
use std::collections::VecDeque;
use std::mem::size_of;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The newest stored sample this far ahead of the wall clock means the clock is behind the
/// data (the agent's rule; see `agent::State::observe_clock`).
pub const CLOCK_STEP_BACK_MS: i64 = 10 * 60 * 1000;
/// Open chunks idle this long (in sample time) are sealed so they can age out.
pub const IDLE_SEAL_MS: i64 = 60 * 60 * 1000;
/// Log lines about refused series are written at most this often (in sample time).
const LIMIT_LOG_EVERY_MS: i64 = 60 * 1000;
/// Persistence errors are logged at most once per this many failures in a row.
const ERROR_LOG_EVERY: u64 = 16;
const NO_SEG: u32 = u32::MAX;
/// A chunk continues across segment files for at most this many segments; after that its bytes
/// are written again whole, so an old segment is never pinned for long by one slow chunk.
/// Rewriting every open chunk at every new segment instead cost 10-20 % more flash writes.
const REWRITE_AFTER_SEGS: u32 = 4;

fn start_of(whole: bool, mint: Timestamp, first_seg: u32, cur: u32) -> Start {
    if whole {
        Start::New(mint)
    } else if first_seg == cur {
        Start::Continue
    } else {
        Start::ContinueFrom(first_seg)
    }
}

/// Whether a chunk's next entry must carry all its bytes (a new start) or only the new ones.
fn write_whole(first_seg: u32, persisted_bits: u32, cur: u32) -> bool {
    first_seg == NO_SEG || persisted_bits == 0 || cur.wrapping_sub(first_seg) >= REWRITE_AFTER_SEGS
}

/// The samples of a chunk older than `t`, re-encoded as an open chunk; None if there are none.
fn prefix_before(mint: Timestamp, bytes: &[u8], bit_len: u32, t: Timestamp) -> Option<OpenChunk> {
    let mut oc = OpenChunk::new();
    for s in Decoder::new(mint, bytes, bit_len).take_while(|s| s.t < t) {
        if oc.push(s.t, s.v).is_err() {
            break;
        }
    }
    (!oc.is_empty()).then_some(oc)
}

/// Index of the first sealed chunk ending at or after `t`. Queries mostly ask for recent data,
/// so the newest two chunks are looked at before a binary search (which, over chunks of
/// different series scattered in memory, was a twentieth of an instant query).
fn first_reaching(sealed: &VecDeque<Sealed>, t: Timestamp) -> usize {
    let n = sealed.len();
    match (n.checked_sub(1), n.checked_sub(2)) {
        (None, _) => 0,
        (Some(last), _) if sealed[last].maxt < t => n,
        (Some(last), Some(prev)) if sealed[prev].maxt < t => last,
        _ => sealed.partition_point(|c| c.maxt < t),
    }
}

/// Limits and intervals. `Default` suits a Raspberry Pi Zero.
#[derive(Clone, Debug)]
pub struct Options {
    /// Hard memory budget in bytes (`--storage.tsdb.retention.size`).
    pub retention_bytes: usize,
    /// Optional age limit in ms, relative to the newest sample (`--storage.tsdb.retention.time`).
    pub retention_ms: Option<i64>,
    /// `--storage.tsdb.max-series`.
    pub max_series: usize,
    /// `--storage.tsdb.flush-interval`.
    pub flush_interval: Duration,
    /// Size at which a new segment file starts; 0 picks budget / 16 (at least 64 KiB).
    pub segment_bytes: usize,
}

/// 16 MiB holds a day of ~1,000 node series at 15 s (about 1.2 bytes per sample).
pub const DEFAULT_RETENTION_BYTES: usize = 16 << 20;
pub const DEFAULT_MAX_SERIES: usize = 20_000;
/// Minutes, not seconds: each flush costs a few bytes of framing per active series.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(10 * 60);

impl Default for Options {
    fn default() -> Self {
        Options {
            retention_bytes: DEFAULT_RETENTION_BYTES,
            retention_ms: None,
            max_series: DEFAULT_MAX_SERIES,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            segment_bytes: 0,
        }
    }
}

impl Options {
    fn segment_bytes(&self) -> usize {
        if self.segment_bytes > 0 {
            self.segment_bytes
        } else {
            (self.retention_bytes / 16).max(64 << 10)
        }
    }
}

/// Counters behind the `promlet_tsdb_*` self-metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub samples_appended: u64,
    pub rejected_out_of_order: u64,
    pub rejected_duplicate: u64,
    pub rejected_too_many_series: u64,
    pub rejected_invalid: u64,
    /// Series cut back because the wall clock was behind their data.
    pub clock_step_resets: u64,
    /// Samples those cuts dropped.
    pub clock_step_discarded: u64,
    /// Calls of [`Store::discard_from`].
    pub clock_cuts: u64,
    pub chunks_evicted: u64,
    pub series_created: u64,
    pub series_removed: u64,
    pub corrupt_records: u64,
    pub persist_errors: u64,
    pub persist_writes: u64,
    pub bytes_written: u64,
    pub segments_deleted: u64,
    pub chunks_recovered: u64,
    pub samples_recovered: u64,
    /// Newest sample timestamp the last successful flush made durable (every sample appended
    /// before that flush with a timestamp up to this one survives a crash).
    pub persisted_until: Option<Timestamp>,
}

struct Sealed {
    /// The chunk's bytes, then its seek points ([`SeekTable::write`]): one allocation, so the
    /// points cost no allocation header and nothing while the chunk is small.
    buf: Box<[u8]>,
    mint: Timestamp,
    maxt: Timestamp,
    bit_len: u32,
    count: u16,
    /// Segment holding this chunk's first bytes, or NO_SEG if none yet.
    first_seg: u32,
    /// Bits of `data` already durable in `first_seg`.
    persisted_bits: u32,
    /// Counted in `Persist::live` (fully durable as a sealed chunk).
    counted: bool,
}

impl Sealed {
    fn bytes(&self) -> usize {
        alloc_size(self.buf.len())
    }

    /// The chunk's bytes (what is persisted).
    fn data(&self) -> &[u8] {
        &self.buf[..(self.bit_len as usize).div_ceil(8).min(self.buf.len())]
    }

    fn seeks(&self) -> SeekTable {
        SeekTable::read(&self.buf[self.data().len()..])
    }
}

/// A sealed chunk's buffer: its bytes followed by its seek points.
fn sealed_buf(bytes: &[u8], seeks: &SeekTable) -> Box<[u8]> {
    let mut buf = Vec::with_capacity(bytes.len() + SEEK_POINTS * SEEK_POINT_BYTES);
    buf.extend_from_slice(bytes);
    seeks.write(&mut buf);
    buf.into_boxed_slice()
}

#[derive(Default)]
struct SeriesData {
    head: OpenChunk,
    sealed: VecDeque<Sealed>,
    head_first_seg: u32,
    head_persisted_bits: u32,
    /// Segment in which this id's SeriesDef was last written.
    defined_seg: u32,
    /// What eviction took from this series (for the remote-write sender's loss count).
    evicted: Evicted,
}

/// What the eviction ring has taken from one series since the store started (not persisted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evicted {
    /// Samples in all evicted chunks.
    pub samples: u64,
    /// The newest evicted chunk's first and last timestamps and sample count (0s if none).
    pub last_mint: Timestamp,
    pub last_maxt: Timestamp,
    pub last_count: u16,
}

impl SeriesData {
    fn new() -> SeriesData {
        SeriesData {
            head_first_seg: NO_SEG,
            defined_seg: NO_SEG,
            ..SeriesData::default()
        }
    }
    fn last_t(&self) -> Option<Timestamp> {
        if !self.head.is_empty() {
            Some(self.head.state.last_t)
        } else {
            self.sealed.back().map(|c| c.maxt)
        }
    }
    fn is_empty(&self) -> bool {
        self.head.is_empty() && self.sealed.is_empty()
    }
}

/// Live sealed chunks per segment of their first bytes, in segment order. A sorted list:
/// segments number about 16 (retention / 16 each), new ones come last, deleted ones go first (a
/// `BTreeMap<u32, u32>` here was ~3 KB of code of its own).
#[derive(Default)]
struct LiveChunks(Vec<(u32, u32)>);

impl LiveChunks {
    fn add(&mut self, seg: u32) {
        match self.0.binary_search_by_key(&seg, |&(s, _)| s) {
            Ok(i) => self.0[i].1 += 1,
            Err(i) => self.0.insert(i, (seg, 1)),
        }
    }

    /// One chunk of `seg` is gone (evicted or dropped with its series).
    fn release(&mut self, seg: u32) {
        if let Ok(i) = self.0.binary_search_by_key(&seg, |&(s, _)| s) {
            self.0[i].1 = self.0[i].1.saturating_sub(1);
        }
    }

    fn remove(&mut self, seg: u32) {
        if let Ok(i) = self.0.binary_search_by_key(&seg, |&(s, _)| s) {
            self.0.remove(i);
        }
    }

    /// The oldest segment that still holds a live chunk.
    fn first_live(&self) -> Option<u32> {
        self.0.iter().find(|&&(_, n)| n > 0).map(|&(s, _)| s)
    }
}

struct Persist {
    dir: PathBuf,
    fs: Box<dyn Fs>,
    seg: u32,
    seg_size: usize,
    /// Live sealed chunks per segment of their first bytes.
    live: LiveChunks,
    /// Segment files present.
    files: Vec<u32>,
    /// Chunks sealed since the last successful flush: (series, mint).
    pending: Vec<(SeriesId, Timestamp)>,
    needs_roll: bool,
    /// A [`Store::discard_from`] not yet written: the oldest `from` since the last flush.
    cut_from: Option<Timestamp>,
    next_flush: Option<Instant>,
    failures_in_row: u64,
}

/// The ring-buffer store. See the module docs for its rules.
pub struct Store {
    opts: Options,
    index: Index,
    hashes: Vec<u64>,
    data: Vec<SeriesData>,
    fifo: VecDeque<SeriesId>,
    chunk_bytes: usize,
    max_t: Option<Timestamp>,
    /// [`Self::oldest_t`] as last computed, kept exact as samples are pushed (a push can only
    /// lower it) and forgotten (`None`) whenever data is dropped or recovered: computing it
    /// walks every series, and `/metrics` asks each scrape (0.85 % of a scrape's CPU).
    oldest: Cell<Option<Option<Timestamp>>>,
    stats: Stats,
    last_limit_log: Option<Timestamp>,
    persist: Option<Persist>,
}

impl Store {
    /// A store that lives only in memory.
    pub fn new(opts: Options) -> Store {
        Store {
            opts,
            index: Index::new(),
            hashes: Vec::new(),
            data: Vec::new(),
            fifo: VecDeque::new(),
            chunk_bytes: 0,
            max_t: None,
            oldest: Cell::new(None),
            stats: Stats::default(),
            last_limit_log: None,
            persist: None,
        }
    }

    /// Opens (or creates) a persistent store under `dir`, recovering what the segment files
    /// hold. Damaged records are counted in [`Stats::corrupt_records`], logged and skipped; an
    /// unusable directory is logged and the store runs in memory. Never fails.
    pub fn open(opts: Options, dir: &Path, mut fs: Box<dyn Fs>) -> Store {
        let mut store = Store::new(opts);
        if let Err(e) = fs.create_dir_all(dir) {
            crate::log::error(&format!(
                "tsdb: cannot create {}: {e}; running without persistence",
                dir.display()
            ));
            store.stats.persist_errors += 1;
            return store;
        }
        let mut seqs: Vec<u32> = match fs.list(dir) {
            Ok(names) => names
                .iter()
                .filter_map(|n| format::parse_segment_name(n))
                .collect(),
            Err(e) => {
                crate::log::error(&format!(
                    "tsdb: cannot list {}: {e}; running without persistence",
                    dir.display()
                ));
                store.stats.persist_errors += 1;
                return store;
            }
        };
        seqs.sort_unstable();
        let mut replay = Replay {
            oldest_seg: seqs.first().copied().unwrap_or(0),
            ..Replay::default()
        };
        for &seq in &seqs {
            // Every segment defines the ids it uses (the writer re-sends definitions).
            replay.ids.clear();
            let path = dir.join(format::segment_name(seq));
            let buf = match fs.read(&path) {
                Ok(b) => b,
                Err(e) => {
                    crate::log::warn(&format!("tsdb: cannot read {}: {e}", path.display()));
                    store.stats.corrupt_records += 1;
                    continue;
                }
            };
            let res = format::read_records(&buf, |rec| store.replay_record(&mut replay, seq, rec));
            match res {
                Ok(d) if d.corrupt > 0 => {
                    crate::log::warn(&format!(
                        "tsdb: skipped {} damaged region(s) in {}",
                        d.corrupt,
                        path.display()
                    ));
                    store.stats.corrupt_records += d.corrupt;
                }
                Ok(_) => {}
                Err(why) => {
                    crate::log::warn(&format!("tsdb: skipping {}: {why}", path.display()));
                    store.stats.corrupt_records += 1;
                }
            }
        }
        store.finish_replay(replay);
        store.stats.persisted_until = store.max_t;
        let mut live = LiveChunks::default();
        for sd in &store.data {
            for c in &sd.sealed {
                if c.counted {
                    live.add(c.first_seg);
                }
            }
        }
        let Some(next_seg) = seqs.last().map_or(Some(0), |s| s.checked_add(1)) else {
            crate::log::error(&format!(
                "tsdb: segment numbers in {} are exhausted; running without persistence",
                dir.display()
            ));
            store.stats.persist_errors += 1;
            return store;
        };
        store.persist = Some(Persist {
            dir: dir.to_path_buf(),
            fs,
            // Always continue in a fresh segment: the last one may end in a torn record.
            seg: next_seg,
            seg_size: 0,
            live,
            files: seqs,
            pending: Vec::new(),
            needs_roll: false,
            cut_from: None,
            next_flush: None,
            failures_in_row: 0,
        });
        store
    }

    /// The newest timestamp ever appended (or recovered), if any.
    pub fn max_t(&self) -> Option<Timestamp> {
        self.max_t
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn series_count(&self) -> usize {
        self.index.series_count()
    }

    /// Samples currently held.
    pub fn sample_count(&self) -> u64 {
        self.data
            .iter()
            .map(|sd| {
                sd.head.state.count as u64 + sd.sealed.iter().map(|c| c.count as u64).sum::<u64>()
            })
            .sum()
    }

    /// Bytes of compressed sample data (chunk payloads only, no metadata).
    pub fn chunk_payload_bytes(&self) -> u64 {
        self.data
            .iter()
            .map(|sd| {
                sd.head.bytes.len() as u64
                    + sd.sealed.iter().map(|c| c.data().len() as u64).sum::<u64>()
            })
            .sum()
    }

    /// Oldest sample timestamp held, if any.
    pub fn oldest_t(&self) -> Option<Timestamp> {
        if let Some(known) = self.oldest.get() {
            return known;
        }
        let oldest = self.compute_oldest_t();
        self.oldest.set(Some(oldest));
        oldest
    }

    fn compute_oldest_t(&self) -> Option<Timestamp> {
        self.data
            .iter()
            .filter_map(|sd| {
                sd.sealed.front().map(|c| c.mint).or(if sd.head.is_empty() {
                    None
                } else {
                    Some(sd.head.state.mint)
                })
            })
            .min()
    }

    /// Real bytes held: index, chunk payloads with their allocation headers, chunk metadata,
    /// and the per-series tables. This is what the budget limits.
    pub fn bytes_used(&self) -> usize {
        self.index.bytes()
            + self.chunk_bytes
            + alloc_size(self.data.capacity() * size_of::<SeriesData>())
            + alloc_size(self.hashes.capacity() * 8)
            + alloc_size(self.fifo.capacity() * 4)
            + self.persist.as_ref().map_or(0, |p| {
                alloc_size(p.pending.capacity() * size_of::<(SeriesId, Timestamp)>())
            })
    }

    /// `chunk_bytes` recomputed from scratch; tests compare it with the running count.
    #[cfg(test)]
    fn recount_chunk_bytes(&self) -> usize {
        self.data
            .iter()
            .map(|sd| {
                Self::series_fixed_bytes(sd) + sd.sealed.iter().map(Sealed::bytes).sum::<usize>()
            })
            .sum()
    }

    fn series_fixed_bytes(sd: &SeriesData) -> usize {
        alloc_size(sd.head.bytes.capacity())
            + alloc_size(sd.sealed.capacity() * size_of::<Sealed>())
    }

    fn get_or_create(&mut self, labels: &Labels, t: Timestamp) -> Result<SeriesId, AppendError> {
        let hash = hash_labels(labels);
        if let Some(id) = self.index.lookup(labels, hash) {
            return Ok(id);
        }
        if labels.name().is_none_or(|n| n.is_empty()) {
            self.stats.rejected_invalid += 1;
            return Err(AppendError::InvalidLabels(format!(
                "series {labels} has no metric name"
            )));
        }
        let n = self.index.series_count();
        let worst_heads = (n + 1) * alloc_size(CHUNK_MAX_BYTES);
        if n >= self.opts.max_series
            || (self.index.bytes() + worst_heads) * 2 > self.opts.retention_bytes
        {
            self.stats.rejected_too_many_series += 1;
            if self
                .last_limit_log
                .is_none_or(|l| t.saturating_sub(l) >= LIMIT_LOG_EVERY_MS || t < l)
            {
                self.last_limit_log = Some(t);
                crate::log::warn(&format!(
                    "tsdb: series limit reached ({n} series, max {}, budget {} bytes); \
                     refusing new series such as {labels} ({} refused so far)",
                    self.opts.max_series,
                    self.opts.retention_bytes,
                    self.stats.rejected_too_many_series
                ));
            }
            return Err(AppendError::TooManySeries);
        }
        let id = self.index.insert(labels, hash);
        let i = id as usize;
        if i == self.data.len() {
            self.data.push(SeriesData::new());
            self.hashes.push(hash);
        } else {
            self.data[i] = SeriesData::new();
            self.hashes[i] = hash;
        }
        self.stats.series_created += 1;
        Ok(id)
    }

    fn remove_series(&mut self, id: SeriesId) {
        self.oldest.set(None);
        let i = id as usize;
        self.chunk_bytes -= Self::series_fixed_bytes(&self.data[i]);
        self.data[i] = SeriesData::new();
        self.index.remove(id, self.hashes[i]);
        self.stats.series_removed += 1;
    }

    /// Seals the open chunk of `id` into the eviction ring.
    fn seal_head(&mut self, id: SeriesId) {
        let sd = &mut self.data[id as usize];
        if sd.head.is_empty() {
            return;
        }
        let before = Self::series_fixed_bytes(sd);
        let head = std::mem::take(&mut sd.head);
        let c = Sealed {
            buf: sealed_buf(&head.bytes, &head.seeks),
            mint: head.state.mint,
            maxt: head.state.last_t,
            bit_len: head.state.bit_len,
            count: head.state.count,
            first_seg: if sd.head_persisted_bits > 0 {
                sd.head_first_seg
            } else {
                NO_SEG
            },
            persisted_bits: sd.head_persisted_bits,
            counted: false,
        };
        sd.head_persisted_bits = 0;
        sd.head_first_seg = NO_SEG;
        let cb = c.bytes();
        let mint = c.mint;
        sd.sealed.push_back(c);
        self.chunk_bytes = self.chunk_bytes + Self::series_fixed_bytes(sd) + cb - before;
        self.fifo.push_back(id);
        if let Some(p) = &mut self.persist {
            p.pending.push((id, mint));
        }
    }

    /// Evicts the oldest sealed chunk; false if there is none.
    fn evict_oldest(&mut self) -> bool {
        self.oldest.set(None);
        while let Some(id) = self.fifo.pop_front() {
            let sd = &mut self.data[id as usize];
            let Some(c) = sd.sealed.pop_front() else {
                // Left behind by a clock-step reset that dropped newer chunks.
                continue;
            };
            self.chunk_bytes -= c.bytes();
            self.stats.chunks_evicted += 1;
            sd.evicted = Evicted {
                samples: sd.evicted.samples + u64::from(c.count),
                last_mint: c.mint,
                last_maxt: c.maxt,
                last_count: c.count,
            };
            if let Some(p) = &mut self.persist {
                if c.counted {
                    p.live.release(c.first_seg);
                }
            }
            if sd.is_empty() {
                self.remove_series(id);
            }
            return true;
        }
        false
    }

    fn enforce_budget(&mut self) {
        while self.bytes_used() > self.opts.retention_bytes {
            if !self.evict_oldest() {
                break;
            }
        }
    }

    /// Drops every sample of `id` at or after `t` and returns how many went. Samples older
    /// than `t` in a chunk that also holds newer ones are kept: the chunk is re-encoded up to
    /// `t` as the new head, written whole at the next flush (same first timestamp, so recovery
    /// takes it in place of the old copy).
    fn truncate_series(&mut self, id: SeriesId, t: Timestamp) -> u64 {
        self.oldest.set(None);
        let sd = &mut self.data[id as usize];
        let before = Self::series_fixed_bytes(sd);
        let mut freed = 0;
        let mut dropped = u64::from(sd.head.state.count);
        let head_prefix = if sd.head.is_empty() {
            None
        } else {
            let h = &sd.head;
            prefix_before(h.state.mint, &h.bytes, h.state.bit_len, t)
        };
        sd.head = OpenChunk::new();
        sd.head_persisted_bits = 0;
        sd.head_first_seg = NO_SEG;
        let mut kept = head_prefix;
        while sd.sealed.back().is_some_and(|c| c.maxt >= t) {
            if let Some(c) = sd.sealed.pop_back() {
                dropped += u64::from(c.count);
                if kept.is_none() && c.mint < t {
                    kept = prefix_before(c.mint, c.data(), c.bit_len, t);
                }
                freed += c.bytes();
                if let Some(p) = &mut self.persist {
                    if c.counted {
                        p.live.release(c.first_seg);
                    }
                }
            }
        }
        if let Some(oc) = kept {
            dropped -= u64::from(oc.state.count);
            sd.head = oc;
        }
        self.chunk_bytes = self.chunk_bytes + Self::series_fixed_bytes(sd) - before - freed;
        dropped
    }

    /// Recovery found a chunk starting before its series' previous data ends: files written
    /// before [`Record::Cut`] existed, when a series stepped back on its own.
    fn reset_from(&mut self, id: SeriesId, t: Timestamp) {
        self.stats.clock_step_resets += 1;
        self.stats.clock_step_discarded += self.truncate_series(id, t);
    }

    /// The wall clock is behind the stored data (it was stepped back, or the data was stamped
    /// by a clock that was ahead): drops every sample at or after `from` in every series, so
    /// appends at the corrected time are accepted again. Series left empty leave the index;
    /// the newest timestamp is recomputed. Durable at the next flush ([`Record::Cut`] is
    /// written before any sample appended after this call). Returns (series cut, samples
    /// dropped) for the caller, who knows why, to log.
    pub fn discard_from(&mut self, from: Timestamp) -> (u64, u64) {
        let ids: Vec<SeriesId> = self
            .index
            .select(&[])
            .into_iter()
            .filter(|&id| self.data[id as usize].last_t().is_some_and(|l| l >= from))
            .collect();
        let (mut series, mut samples) = (0u64, 0u64);
        for id in ids {
            samples += self.truncate_series(id, from);
            series += 1;
            if self.data[id as usize].is_empty() {
                self.remove_series(id);
            }
        }
        self.recompute_max_t();
        if let Some(p) = &mut self.persist {
            p.cut_from = Some(p.cut_from.map_or(from, |c| c.min(from)));
        }
        self.stats.clock_cuts += 1;
        self.stats.clock_step_resets += series;
        self.stats.clock_step_discarded += samples;
        (series, samples)
    }

    fn recompute_max_t(&mut self) {
        self.max_t = self.data.iter().filter_map(SeriesData::last_t).max();
    }

    fn push_sample(&mut self, id: SeriesId, t: Timestamp, v: f64) {
        let sd = &mut self.data[id as usize];
        let before = alloc_size(sd.head.bytes.capacity());
        let pushed = match sd.head.push(t, v) {
            Ok(()) => true,
            Err(PushError::Full) => false,
        };
        let sd = if pushed {
            sd
        } else {
            self.seal_head(id);
            let sd = &mut self.data[id as usize];
            // An empty chunk always takes one sample.
            let _ = sd.head.push(t, v);
            sd
        };
        let after = alloc_size(sd.head.bytes.capacity());
        if pushed {
            self.chunk_bytes = self.chunk_bytes + after - before;
        } else {
            self.chunk_bytes += after;
        }
        self.max_t = Some(self.max_t.map_or(t, |m| m.max(t)));
        if let Some(known) = self.oldest.get() {
            self.oldest.set(Some(Some(known.map_or(t, |o| o.min(t)))));
        }
    }

    /// Housekeeping and persistence, driven by the caller's loop: seals idle chunks, applies
    /// time retention, flushes when the flush interval has passed. Returns when to call again.
    pub fn poll(&mut self, now: Instant) -> Instant {
        let due = match &self.persist {
            Some(p) => p.next_flush.is_none_or(|d| now >= d),
            None => true,
        };
        if due {
            self.housekeep();
            self.flush(now);
        }
        match &self.persist {
            Some(p) => p.next_flush.unwrap_or(now + self.opts.flush_interval),
            None => now + self.opts.flush_interval,
        }
    }

    fn housekeep(&mut self) {
        let Some(max_t) = self.max_t else { return };
        let idle: Vec<SeriesId> = self
            .index
            .select(&[])
            .into_iter()
            .filter(|&id| {
                let h = &self.data[id as usize].head;
                !h.is_empty() && h.state.last_t < max_t.saturating_sub(IDLE_SEAL_MS)
            })
            .collect();
        for id in idle {
            self.seal_head(id);
        }
        if let Some(ret) = self.opts.retention_ms {
            let cutoff = max_t.saturating_sub(ret);
            while let Some(&id) = self.fifo.front() {
                let old = self.data[id as usize]
                    .sealed
                    .front()
                    .is_none_or(|c| c.maxt < cutoff);
                if !old || !self.evict_oldest() {
                    break;
                }
            }
        }
        self.enforce_budget();
    }

    /// Writes everything not yet durable and schedules the next flush at `now` + interval.
    /// Errors are counted and logged; the data stays in memory and the next flush retries.
    pub fn flush(&mut self, now: Instant) {
        let Some(mut p) = self.persist.take() else {
            return;
        };
        p.next_flush = Some(now + self.opts.flush_interval);
        if p.needs_roll || p.seg_size >= self.opts.segment_bytes() {
            p.seg = p.seg.wrapping_add(1);
            p.seg_size = 0;
            p.needs_roll = false;
        }
        let cur = p.seg;
        let mut out = Vec::new();
        if p.seg_size == 0 {
            out.extend_from_slice(&format::segment_header());
        }
        // Before any sample: everything below was appended after the cut.
        if let Some(from) = p.cut_from {
            format::write_frame(&mut out, &Record::Cut { from });
        }
        // What to mark durable once the write succeeds.
        let mut done_sealed: Vec<(SeriesId, usize, bool)> = Vec::new();
        let mut done_heads: Vec<(SeriesId, bool)> = Vec::new();
        let mut defined: Vec<SeriesId> = Vec::new();
        {
            let mut batch = BatchWriter::new(&mut out);
            let pending = std::mem::take(&mut p.pending);
            for &(id, mint) in &pending {
                let sd = &self.data[id as usize];
                let Some(pos) = sd.sealed.iter().rposition(|c| c.mint == mint) else {
                    continue; // Evicted (or reset) before it was written.
                };
                let c = &sd.sealed[pos];
                let whole = write_whole(c.first_seg, c.persisted_bits, cur);
                let offset = if whole {
                    0
                } else {
                    (c.persisted_bits / 8) as usize
                };
                batch.define(&self.index, id, sd.defined_seg != cur, &mut defined);
                batch.push(ChunkEntry {
                    id,
                    start: start_of(whole, c.mint, c.first_seg, cur),
                    offset: offset as u16,
                    bit_len: c.bit_len as u16,
                    sealed: Some((c.maxt, c.count)),
                    bytes: &c.data()[offset..],
                });
                done_sealed.push((id, pos, whole));
            }
            p.pending = pending;
            for id in self.index.select(&[]) {
                let sd = &self.data[id as usize];
                let h = &sd.head;
                if h.is_empty() {
                    continue;
                }
                let whole = write_whole(sd.head_first_seg, sd.head_persisted_bits, cur);
                if !whole && sd.head_persisted_bits == h.state.bit_len {
                    continue;
                }
                let offset = if whole {
                    0
                } else {
                    (sd.head_persisted_bits / 8) as usize
                };
                batch.define(&self.index, id, sd.defined_seg != cur, &mut defined);
                batch.push(ChunkEntry {
                    id,
                    start: start_of(whole, h.state.mint, sd.head_first_seg, cur),
                    offset: offset as u16,
                    bit_len: h.state.bit_len as u16,
                    sealed: None,
                    bytes: &h.bytes[offset..],
                });
                done_heads.push((id, whole));
            }
            batch.finish();
        }
        let header_only = if p.seg_size == 0 {
            format::HEADER_LEN
        } else {
            0
        };
        if out.len() <= header_only {
            // Nothing to write: do not create an empty segment. All is durable already.
            self.stats.persisted_until = self.max_t;
            self.persist = Some(p);
            return;
        }
        let path = p.dir.join(format::segment_name(cur));
        match p.fs.append_sync(&path, &out) {
            Ok(()) => {
                if p.seg_size == 0 && !p.files.contains(&cur) {
                    p.files.push(cur);
                }
                p.seg_size += out.len();
                p.failures_in_row = 0;
                p.cut_from = None;
                self.stats.persist_writes += 1;
                self.stats.bytes_written += out.len() as u64;
                self.stats.persisted_until = self.max_t;
                p.pending.clear();
                for id in defined {
                    self.data[id as usize].defined_seg = cur;
                }
                for (id, pos, whole) in done_sealed {
                    let c = &mut self.data[id as usize].sealed[pos];
                    if whole {
                        c.first_seg = cur;
                    }
                    c.persisted_bits = c.bit_len;
                    if !c.counted {
                        c.counted = true;
                        p.live.add(c.first_seg);
                    }
                }
                for (id, whole) in done_heads {
                    let sd = &mut self.data[id as usize];
                    if whole {
                        sd.head_first_seg = cur;
                    }
                    sd.head_persisted_bits = sd.head.state.bit_len;
                }
                self.delete_dead_segments(&mut p);
            }
            Err(e) => {
                self.stats.persist_errors += 1;
                if p.failures_in_row % ERROR_LOG_EVERY == 0 {
                    crate::log::error(&format!(
                        "tsdb: writing {} failed: {e}; keeping data in memory and retrying \
                         ({} failures so far)",
                        path.display(),
                        self.stats.persist_errors
                    ));
                }
                p.failures_in_row += 1;
                // While the disk stays full, forget seals of chunks already evicted, so the
                // list stays bounded by what memory holds.
                let data = &self.data;
                p.pending
                    .retain(|&(id, mint)| data[id as usize].sealed.iter().any(|c| c.mint == mint));
                // An existing segment may now end in a torn record: the reader skips it, so
                // the next flush just appends after it. A new segment may hold a torn header:
                // remove it and start that segment again (roll if it cannot be removed).
                if p.seg_size == 0 {
                    match p.fs.remove(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(_) => {
                            p.needs_roll = true;
                            if !p.files.contains(&cur) {
                                p.files.push(cur);
                            }
                        }
                    }
                }
            }
        }
        self.persist = Some(p);
    }

    /// Deletes segments older than every live chunk's first bytes. Only a prefix of the files
    /// goes: a chunk's continuation entries may sit in any segment after its first.
    fn delete_dead_segments(&mut self, p: &mut Persist) {
        let min_head = self
            .data
            .iter()
            .filter(|sd| !sd.head.is_empty() && sd.head_first_seg != NO_SEG)
            .map(|sd| sd.head_first_seg)
            .min()
            .unwrap_or(p.seg);
        let min_sealed = p.live.first_live().unwrap_or(p.seg);
        let keep_from = min_head.min(min_sealed).min(p.seg);
        let mut deleted = 0;
        for &seq in &p.files {
            if seq >= keep_from {
                break;
            }
            let path = p.dir.join(format::segment_name(seq));
            if let Err(e) = p.fs.remove(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    crate::log::warn(&format!("tsdb: cannot delete {}: {e}", path.display()));
                    break;
                }
            }
            self.stats.segments_deleted += 1;
            p.live.remove(seq);
            deleted += 1;
        }
        p.files.drain(..deleted);
    }

    fn replay_record(&mut self, r: &mut Replay, seg: u32, rec: Record) {
        match rec {
            Record::Batch { series, chunks } => {
                for def in series {
                    let labels = Labels::from_pairs(def.labels.iter().copied());
                    let t = self.max_t.unwrap_or(0);
                    match self.get_or_create(&labels, t) {
                        Ok(id) => {
                            r.ids.insert(def.id, id);
                        }
                        Err(_) => {
                            r.ids.remove(&def.id);
                        }
                    }
                }
                for e in chunks {
                    self.replay_chunk(r, seg, e);
                }
            }
            Record::Cut { from } => self.replay_cut(r, from),
        }
    }

    /// Applies a [`Record::Cut`] to everything recovered so far: sealed chunks as
    /// [`Store::discard_from`] does, chunks still being rebuilt by truncating them to their
    /// samples before `from`. A truncated chunk keeps its segment: its bytes are a prefix of
    /// what that segment holds (the encoder is a stream), so later continuations still fit.
    fn replay_cut(&mut self, r: &mut Replay, from: Timestamp) {
        for i in 0..r.heads.len() {
            let Some(raw) = r.heads[i].take() else {
                continue;
            };
            let Some(oc) = OpenChunk::from_bytes(raw.mint, &raw.bytes, raw.bit_len) else {
                r.inconsistent += 1;
                continue;
            };
            if oc.state.count > 0 && oc.state.last_t < from {
                r.heads[i] = Some(raw);
                continue;
            }
            if let Some(p) = prefix_before(raw.mint, &raw.bytes, raw.bit_len, from) {
                r.heads[i] = Some(RawHead {
                    mint: raw.mint,
                    bit_len: p.state.bit_len,
                    bytes: p.bytes,
                    seg: raw.seg,
                });
            }
            r.spare.push(raw.bytes);
        }
        let ids: Vec<SeriesId> = self
            .index
            .select(&[])
            .into_iter()
            .filter(|&id| self.data[id as usize].last_t().is_some_and(|l| l >= from))
            .collect();
        for id in ids {
            let first_seg = self.data[id as usize]
                .sealed
                .iter()
                .rev()
                .take_while(|c| c.maxt >= from)
                .last()
                .map_or(NO_SEG, |c| c.first_seg);
            self.truncate_series(id, from);
            // A kept prefix of a sealed chunk continues as that chunk's rebuilt head.
            let sd = &mut self.data[id as usize];
            if !sd.head.is_empty() {
                let oc = std::mem::take(&mut sd.head);
                let before = alloc_size(oc.bytes.capacity());
                self.chunk_bytes -= before;
                r.put_head(
                    id,
                    RawHead {
                        mint: oc.state.mint,
                        bit_len: oc.state.bit_len,
                        bytes: oc.bytes,
                        seg: first_seg,
                    },
                );
            }
        }
        self.recompute_max_t();
        for h in r.heads.iter().flatten() {
            if let Some(oc) = OpenChunk::from_bytes(h.mint, &h.bytes, h.bit_len) {
                self.max_t = Some(
                    self.max_t
                        .map_or(oc.state.last_t, |m| m.max(oc.state.last_t)),
                );
            }
        }
    }

    fn replay_chunk(&mut self, r: &mut Replay, seg: u32, e: ChunkEntry) {
        let Some(&id) = r.ids.get(&e.id) else {
            r.inconsistent += 1;
            return;
        };
        let raw = match e.start {
            Start::New(mint) => {
                if e.offset != 0 {
                    r.inconsistent += 1;
                    return;
                }
                if let Some(old) = r.take_head(id) {
                    // The same chunk rewritten whole (new segment) replaces the old copy;
                    // a different chunk means the old one's seal entry was lost: keep it.
                    if old.mint != mint {
                        self.adopt_raw_head(id, old, r);
                    }
                }
                let mut bytes = r.spare.pop().unwrap_or_default();
                bytes.clear();
                bytes.extend_from_slice(e.bytes);
                RawHead {
                    mint,
                    bytes,
                    bit_len: e.bit_len as u32,
                    seg,
                }
            }
            _ => {
                let Some(mut raw) = r.take_head(id) else {
                    match e.start {
                        // Its beginning was deleted with an evicted segment: expected.
                        Start::ContinueFrom(s) if s < r.oldest_seg => {}
                        _ => r.inconsistent += 1,
                    }
                    return;
                };
                if raw.bytes.len() < e.offset as usize {
                    r.inconsistent += 1;
                    return;
                }
                raw.bytes.truncate(e.offset as usize);
                raw.bytes.extend_from_slice(e.bytes);
                raw.bit_len = e.bit_len as u32;
                raw
            }
        };
        if raw.bytes.len() != (raw.bit_len as usize).div_ceil(8)
            || raw.bytes.len() > CHUNK_MAX_BYTES
        {
            r.inconsistent += 1;
            return;
        }
        match e.sealed {
            Some((maxt, count)) => {
                let c = Sealed {
                    buf: sealed_buf(
                        &raw.bytes,
                        &SeekTable::build(raw.mint, &raw.bytes, raw.bit_len),
                    ),
                    mint: raw.mint,
                    maxt,
                    bit_len: raw.bit_len,
                    count,
                    first_seg: raw.seg,
                    persisted_bits: raw.bit_len,
                    counted: true,
                };
                r.spare.push(raw.bytes);
                self.insert_sealed(id, c);
            }
            None => {
                r.put_head(id, raw);
            }
        }
    }

    /// Adds a recovered sealed chunk after the series' others, applying the same ordering
    /// rules as appends: an exact repeat is ignored, an overlap keeps the newer chunk.
    fn insert_sealed(&mut self, id: SeriesId, c: Sealed) {
        self.oldest.set(None);
        let sd = &mut self.data[id as usize];
        if c.maxt < c.mint || c.count == 0 {
            return;
        }
        if let Some(last) = sd.sealed.back() {
            if last.mint == c.mint && last.maxt >= c.maxt {
                return; // Written again after a failed or repeated flush.
            }
            if last.maxt >= c.mint {
                self.reset_from(id, c.mint);
            }
        }
        let sd = &mut self.data[id as usize];
        let before = Self::series_fixed_bytes(sd);
        let cb = c.bytes();
        self.stats.chunks_recovered += 1;
        self.stats.samples_recovered += c.count as u64;
        sd.sealed.push_back(c);
        self.chunk_bytes = self.chunk_bytes + Self::series_fixed_bytes(sd) + cb - before;
        self.fifo.push_back(id);
        let maxt = sd.sealed.back().map(|c| c.maxt);
        if let Some(m) = maxt {
            self.max_t = Some(self.max_t.map_or(m, |x| x.max(m)));
        }
    }

    fn adopt_raw_head(&mut self, id: SeriesId, raw: RawHead, r: &mut Replay) {
        match OpenChunk::from_bytes(raw.mint, &raw.bytes, raw.bit_len) {
            Some(oc) if oc.state.count > 0 => {
                let c = Sealed {
                    mint: oc.state.mint,
                    maxt: oc.state.last_t,
                    bit_len: oc.state.bit_len,
                    count: oc.state.count,
                    buf: sealed_buf(&oc.bytes, &oc.seeks),
                    first_seg: raw.seg,
                    persisted_bits: raw.bit_len,
                    counted: true,
                };
                self.insert_sealed(id, c);
            }
            _ => r.inconsistent += 1,
        }
    }

    fn finish_replay(&mut self, mut r: Replay) {
        self.oldest.set(None);
        let heads: Vec<(SeriesId, RawHead)> = std::mem::take(&mut r.heads)
            .into_iter()
            .enumerate()
            .filter_map(|(id, h)| h.map(|h| (id as SeriesId, h)))
            .collect();
        for (id, raw) in heads {
            let Some(oc) = OpenChunk::from_bytes(raw.mint, &raw.bytes, raw.bit_len) else {
                r.inconsistent += 1;
                continue;
            };
            if oc.state.count == 0 || !self.index.is_live(id) {
                continue;
            }
            if self.data[id as usize]
                .last_t()
                .is_some_and(|t| t >= oc.state.mint)
            {
                self.reset_from(id, oc.state.mint);
            }
            self.stats.samples_recovered += oc.state.count as u64;
            let sd = &mut self.data[id as usize];
            let before = Self::series_fixed_bytes(sd);
            self.max_t = Some(
                self.max_t
                    .map_or(oc.state.last_t, |m| m.max(oc.state.last_t)),
            );
            sd.head = oc;
            sd.head_first_seg = raw.seg;
            sd.head_persisted_bits = raw.bit_len;
            self.chunk_bytes = self.chunk_bytes + Self::series_fixed_bytes(sd) - before;
        }
        let empty: Vec<SeriesId> = self
            .index
            .select(&[])
            .into_iter()
            .filter(|&id| self.data[id as usize].is_empty())
            .collect();
        for id in empty {
            self.remove_series(id);
        }
        // Only now: evicting mid-replay could free an id that a later entry still names.
        self.enforce_budget();
        if r.inconsistent > 0 {
            crate::log::warn(&format!(
                "tsdb: {} chunk entries could not be applied during recovery (damage or a \
                 missing predecessor); their chunks were dropped",
                r.inconsistent
            ));
            self.stats.corrupt_records += r.inconsistent;
        }
    }

    /// Calls `f` for every series matching `matchers` with samples in `[mint, maxt]`, in label
    /// order, reusing one sample buffer. Decodes only chunks overlapping the range.
    /// Visits every series holding samples, in id order, for readers that keep their own
    /// per-series position (the remote-write sender). Cheap: a view only borrows.
    pub fn for_each_series(&self, f: &mut dyn FnMut(SeriesView<'_>)) {
        for (i, sd) in self.data.iter().enumerate() {
            if !sd.is_empty() {
                f(SeriesView {
                    store: self,
                    id: i as SeriesId,
                });
            }
        }
    }

    fn select_each_inner(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        f: &mut dyn FnMut(&Labels, &[Sample]),
    ) {
        let mut buf = Vec::new();
        for (labels, id) in self.sorted_in_range(matchers, mint, maxt) {
            buf.clear();
            self.samples_into(id, mint, maxt, &mut buf);
            if !buf.is_empty() {
                f(&labels, &buf);
            }
        }
    }

    /// Series matching `matchers` with samples in `[mint, maxt]`, with their label sets, in
    /// label order.
    fn sorted_in_range(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<(Labels, SeriesId)> {
        let mut ids = self.ids_in_range(matchers, mint, maxt);
        self.index.sort_by_labels(&mut ids);
        ids.into_iter()
            .map(|id| (self.index.labels_of(id), id))
            .collect()
    }

    fn overlaps(&self, id: SeriesId, mint: Timestamp, maxt: Timestamp) -> bool {
        let sd = &self.data[id as usize];
        if !sd.head.is_empty() && sd.head.state.mint <= maxt && sd.head.state.last_t >= mint {
            return true;
        }
        // Sealed chunks are in time order: only the first one ending at or after `mint` can
        // be the earliest overlap.
        let first = sd.sealed.partition_point(|c| c.maxt < mint);
        sd.sealed.get(first).is_some_and(|c| c.mint <= maxt)
    }

    fn samples_into(&self, id: SeriesId, mint: Timestamp, maxt: Timestamp, out: &mut Vec<Sample>) {
        let sd = &self.data[id as usize];
        let first = first_reaching(&sd.sealed, mint);
        let chunks = sd
            .sealed
            .range(first..)
            .map(|c| (c.mint, c.maxt, c.data(), c.bit_len, c.seeks()));
        let head = (!sd.head.is_empty()).then(|| {
            (
                sd.head.state.mint,
                sd.head.state.last_t,
                &sd.head.bytes[..],
                sd.head.state.bit_len,
                sd.head.seeks,
            )
        });
        for (cmin, cmax, bytes, bits, seeks) in chunks.chain(head) {
            if cmin > maxt {
                break;
            }
            if cmax < mint {
                continue;
            }
            Decoder::starting_near(cmin, bytes, bits, &seeks, mint).push_range(mint, maxt, out);
        }
    }

    /// The newest sample of series `id` in `[mint, maxt]`. Only the one chunk that can hold
    /// it is read: the open chunk's state when its last sample is at or before `maxt` (a query
    /// at "now"), else a decode from the chunk's last seek point at or before `maxt`.
    fn latest_in(&self, id: SeriesId, mint: Timestamp, maxt: Timestamp) -> Option<Sample> {
        let sd = &self.data[id as usize];
        let head = &sd.head;
        let s = if !head.is_empty() && head.state.mint <= maxt {
            if head.state.last_t <= maxt {
                Some(Sample {
                    t: head.state.last_t,
                    v: f64::from_bits(head.state.last_v),
                })
            } else {
                Decoder::starting_near(
                    head.state.mint,
                    &head.bytes,
                    head.state.bit_len,
                    &head.seeks,
                    maxt.saturating_add(1),
                )
                .last_at_or_before(maxt)
            }
        } else {
            // Sealed chunks are in time order: the newest one starting at or before `maxt`.
            let i = sd.sealed.partition_point(|c| c.mint <= maxt);
            let c = sd.sealed.get(i.checked_sub(1)?)?;
            if c.maxt < mint {
                return None;
            }
            Decoder::starting_near(
                c.mint,
                c.data(),
                c.bit_len,
                &c.seeks(),
                maxt.saturating_add(1),
            )
            .last_at_or_before(maxt)
        };
        s.filter(|s| s.t >= mint)
    }

    fn ids_in_range(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<SeriesId> {
        let mut ids = self.index.select(matchers);
        ids.retain(|&id| self.overlaps(id, mint, maxt));
        ids
    }
}

#[derive(Default)]
struct Replay {
    /// Persisted series id → store id.
    ids: super::index::IdMap<u32, SeriesId>,
    /// Chunks being rebuilt, by store id.
    heads: Vec<Option<RawHead>>,
    /// Byte buffers of finished chunks, reused for the next ones.
    spare: Vec<Vec<u8>>,
    /// The oldest segment file present.
    oldest_seg: u32,
    inconsistent: u64,
}

impl Replay {
    fn take_head(&mut self, id: SeriesId) -> Option<RawHead> {
        self.heads.get_mut(id as usize).and_then(Option::take)
    }
    fn put_head(&mut self, id: SeriesId, raw: RawHead) {
        let i = id as usize;
        if i >= self.heads.len() {
            self.heads.resize_with(i + 1, || None);
        }
        self.heads[i] = Some(raw);
    }
}

struct RawHead {
    mint: Timestamp,
    bytes: Vec<u8>,
    bit_len: u32,
    seg: u32,
}

/// Collects chunk entries into records of about [`format::RECORD_TARGET`] bytes.
struct BatchWriter<'o, 'a> {
    out: &'o mut Vec<u8>,
    series: Vec<SeriesDef<'a>>,
    chunks: Vec<ChunkEntry<'a>>,
    size: usize,
}

impl<'o, 'a> BatchWriter<'o, 'a> {
    fn new(out: &'o mut Vec<u8>) -> Self {
        BatchWriter {
            out,
            series: Vec::new(),
            chunks: Vec::new(),
            size: 0,
        }
    }

    fn define(&mut self, index: &'a Index, id: SeriesId, needed: bool, defined: &mut Vec<u32>) {
        // A record may be lost to damage, so a definition goes in the same record as the
        // first entry using it within this flush.
        if needed && !defined.contains(&id) {
            if self.size >= format::RECORD_TARGET {
                self.finish();
            }
            let labels: Vec<(&str, &str)> = index.pairs_of(id).collect();
            self.size += labels
                .iter()
                .map(|(n, v)| n.len() + v.len() + 2)
                .sum::<usize>();
            self.series.push(SeriesDef { id, labels });
            defined.push(id);
        }
    }

    fn push(&mut self, e: ChunkEntry<'a>) {
        self.size += e.bytes.len() + 12;
        self.chunks.push(e);
        if self.size >= format::RECORD_TARGET {
            self.finish();
        }
    }

    fn finish(&mut self) {
        if self.chunks.is_empty() && self.series.is_empty() {
            return;
        }
        let rec = Record::Batch {
            series: std::mem::take(&mut self.series),
            chunks: std::mem::take(&mut self.chunks),
        };
        format::write_frame(self.out, &rec);
        self.size = 0;
    }
}

/// Label pairs [`Store::append_parts`] sorts on the stack; more fall back to a `Labels`.
const MAX_STACK_LABELS: usize = 32;

/// One series as [`Store::for_each_series`] shows it.
pub struct SeriesView<'a> {
    store: &'a Store,
    id: SeriesId,
}

impl<'a> SeriesView<'a> {
    /// The label pairs, sorted by name, without allocating.
    pub fn pairs(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.store.index.pairs_of(self.id)
    }

    /// The newest sample's timestamp.
    pub fn last_t(&self) -> Option<Timestamp> {
        self.store.data[self.id as usize].last_t()
    }

    /// A lower bound on the first timestamp after `after` (from chunk bounds, no decoding);
    /// None if the series holds nothing newer than `after`.
    pub fn first_after(&self, after: Timestamp) -> Option<Timestamp> {
        let sd = &self.store.data[self.id as usize];
        let i = sd.sealed.partition_point(|c| c.maxt <= after);
        let mint = match sd.sealed.get(i) {
            Some(c) => c.mint,
            None if !sd.head.is_empty() && sd.head.state.last_t > after => sd.head.state.mint,
            None => return None,
        };
        Some(mint.max(after.saturating_add(1)))
    }

    /// Appends to `out` the samples with `after < t <= upto`, oldest first, decoding only the
    /// chunks that reach past `after`.
    pub fn samples_after(&self, after: Timestamp, upto: Timestamp, out: &mut Vec<Sample>) {
        if after < upto {
            self.store
                .samples_into(self.id, after.saturating_add(1), upto, out);
        }
    }

    /// How many samples have `t > after` (decodes at most the chunk `after` falls in).
    pub fn count_after(&self, after: Timestamp) -> u64 {
        let sd = &self.store.data[self.id as usize];
        let first = sd.sealed.partition_point(|c| c.maxt <= after);
        let sealed = sd
            .sealed
            .range(first..)
            .map(|c| (c.mint, c.data(), c.bit_len, c.count));
        let head = (!sd.head.is_empty() && sd.head.state.last_t > after).then(|| {
            (
                sd.head.state.mint,
                &sd.head.bytes[..],
                sd.head.state.bit_len,
                sd.head.state.count,
            )
        });
        sealed
            .chain(head)
            .map(|(mint, bytes, bits, count)| {
                if mint > after {
                    u64::from(count)
                } else {
                    Decoder::new(mint, bytes, bits)
                        .filter(|s| s.t > after)
                        .count() as u64
                }
            })
            .sum()
    }

    /// What eviction has taken from this series.
    pub fn evicted(&self) -> Evicted {
        self.store.data[self.id as usize].evicted
    }
}

impl Appender for Store {
    fn append(&mut self, labels: &Labels, t: Timestamp, v: f64) -> Result<(), AppendError> {
        let id = self.get_or_create(labels, t)?;
        self.append_to(id, t, v)
    }

    /// Finds an existing series from unsorted parts without allocating: the pairs are put in
    /// `Labels` order on the stack (empty values dropped, the last of equal names kept).
    fn append_parts(
        &mut self,
        name: &str,
        pairs: &[(&str, &str)],
        t: Timestamp,
        v: f64,
    ) -> Result<(), AppendError> {
        if pairs.len() < MAX_STACK_LABELS && !name.is_empty() {
            let mut buf = [("", ""); MAX_STACK_LABELS];
            buf[0] = (crate::model::METRIC_NAME, name);
            let mut n = 1;
            for &(ln, lv) in pairs {
                if let Some(i) = buf[..n].iter().position(|&(x, _)| x == ln) {
                    buf[i].1 = lv; // a later duplicate replaces, as Labels::set does
                } else {
                    buf[n] = (ln, lv);
                    n += 1;
                }
            }
            let mut sorted = [("", ""); MAX_STACK_LABELS];
            let mut m = 0;
            for &p in buf[..n].iter().filter(|p| !p.1.is_empty()) {
                sorted[m] = p;
                m += 1;
            }
            let sorted = &mut sorted[..m];
            sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
            let hash = super::index::hash_pairs(sorted.iter().copied());
            if let Some(id) = self.index.lookup_pairs(sorted, hash) {
                return self.append_to(id, t, v);
            }
        }
        // A new series (or an unusual one): the general path.
        let labels = Labels::from_pairs(
            std::iter::once((crate::model::METRIC_NAME, name)).chain(pairs.iter().copied()),
        );
        self.append(&labels, t, v)
    }
}

impl Store {
    fn append_to(&mut self, id: SeriesId, t: Timestamp, v: f64) -> Result<(), AppendError> {
        if let Some(last) = self.data[id as usize].last_t() {
            if t == last {
                let sd = &self.data[id as usize];
                let same = !sd.head.is_empty() && sd.head.state.last_v == v.to_bits();
                if same {
                    return Ok(());
                }
                self.stats.rejected_duplicate += 1;
                return Err(AppendError::DuplicateTimestamp);
            }
            if t < last {
                self.stats.rejected_out_of_order += 1;
                return Err(AppendError::OutOfOrder);
            }
        }
        self.push_sample(id, t, v);
        self.stats.samples_appended += 1;
        self.enforce_budget();
        Ok(())
    }
}

impl Querier for Store {
    fn select(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<SeriesSamples> {
        // One pass over the matching series in label order: decode, and build a label set
        // (moved into the result, never cloned) only for series with samples in range.
        let mut ids = self.index.select(matchers);
        self.index.sort_by_labels(&mut ids);
        let mut out = Vec::with_capacity(ids.len());
        let mut buf = Vec::new();
        for id in ids {
            buf.clear();
            self.samples_into(id, mint, maxt, &mut buf);
            if !buf.is_empty() {
                out.push(SeriesSamples {
                    labels: self.index.labels_of(id),
                    samples: buf.as_slice().to_vec(),
                });
            }
        }
        out
    }

    fn select_each(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        f: &mut dyn FnMut(&Labels, &[Sample]),
    ) {
        self.select_each_inner(matchers, mint, maxt, f)
    }

    fn select_latest(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        f: &mut LatestSink<'_>,
    ) -> bool {
        let mut ids = self.index.select(matchers);
        self.index.sort_by_labels(&mut ids);
        // One pairs buffer for every series: the strings stay the index's.
        let mut pairs = Vec::new();
        for id in ids {
            let Some(s) = self.latest_in(id, mint, maxt) else {
                continue;
            };
            pairs.clear();
            pairs.extend(self.index.pairs_of(id));
            if !f(&pairs, s) {
                break;
            }
        }
        true
    }

    fn select_pairs_each(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        f: &mut PairsSink<'_>,
    ) -> bool {
        let mut ids = self.index.select(matchers);
        self.index.sort_by_labels(&mut ids);
        // One pairs buffer and one sample buffer for every series.
        let (mut pairs, mut buf) = (Vec::new(), Vec::new());
        for id in ids {
            buf.clear();
            self.samples_into(id, mint, maxt, &mut buf);
            if buf.is_empty() {
                continue;
            }
            pairs.clear();
            pairs.extend(self.index.pairs_of(id));
            if !f(&pairs, &buf) {
                break;
            }
        }
        true
    }

    fn label_names(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<String> {
        let mut names: Vec<String> = if matchers.is_empty() {
            self.index.names().map(str::to_owned).collect()
        } else {
            let mut v: Vec<String> = self
                .ids_in_range(matchers, mint, maxt)
                .into_iter()
                .flat_map(|id| self.index.pairs_of(id).map(|(n, _)| n.to_owned()))
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        names.sort_unstable();
        names
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<String> {
        let mut vals: Vec<String> = if matchers.is_empty() {
            self.index.values_of(name).map(str::to_owned).collect()
        } else {
            self.ids_in_range(matchers, mint, maxt)
                .into_iter()
                .filter_map(|id| {
                    self.index
                        .pairs_of(id)
                        .find(|(n, _)| *n == name)
                        .map(|(_, v)| v.to_owned())
                })
                .collect()
        };
        vals.sort_unstable();
        vals.dedup();
        vals
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{is_stale_nan, stale_nan, MatchOp};

    fn lbl(name: &str, inst: &str) -> Labels {
        Labels::from_pairs([("__name__", name), ("instance", inst)])
    }

    fn eq(n: &str, v: &str) -> Matcher {
        Matcher::new(MatchOp::Equal, n, v).unwrap()
    }

    /// Regression (chaos test `chaos_wall_clock_jumps_three_days_both_ways`): a clock stepped
    /// forward and back dropped the whole chunk holding the jump, true history included.
    #[test]
    fn discard_from_keeps_the_older_samples_of_the_chunk_it_cuts() {
        let mut st = Store::new(Options::default());
        let l = lbl("m", "a");
        let day3 = 3 * 86_400_000;
        for i in 0..20 {
            st.append(&l, i * 15_000, i as f64).unwrap();
        }
        for i in 0..5 {
            st.append(&l, day3 + i * 15_000, 100.0).unwrap();
        }
        // Back to true time: refused until the caller says the clock was behind.
        assert_eq!(
            st.append(&l, 20 * 15_000, 20.0),
            Err(AppendError::OutOfOrder)
        );
        assert_eq!(st.discard_from(20 * 15_000), (1, 5));
        assert_eq!(st.max_t(), Some(19 * 15_000));
        st.append(&l, 20 * 15_000, 20.0).unwrap();
        let got = st.select(&[eq("__name__", "m")], 0, i64::MAX);
        let ts: Vec<i64> = got[0].samples.iter().map(|s| s.t).collect();
        assert_eq!(ts, (0..21).map(|i| i * 15_000).collect::<Vec<_>>());
        assert_eq!(st.stats().clock_step_resets, 1);
        assert_eq!(st.stats().clock_step_discarded, 5);
        assert_eq!(st.chunk_bytes, st.recount_chunk_bytes());
    }

    #[test]
    fn select_returns_samples_in_range_sorted_by_labels() {
        let mut st = Store::new(Options::default());
        for i in 0..2000i64 {
            st.append(&lbl("up", "b"), i * 15_000, i as f64).unwrap();
            st.append(&lbl("up", "a"), i * 15_000 + 3, -(i as f64))
                .unwrap();
        }
        let got = st.select(&[eq("__name__", "up")], 15_000 * 100, 15_000 * 200);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].labels.get("instance"), Some("a"));
        assert_eq!(got[1].samples.len(), 101);
        assert_eq!(
            got[1].samples[0],
            Sample {
                t: 1_500_000,
                v: 100.0
            }
        );
        assert_eq!(got[0].samples.len(), 100);
        assert!(st.select(&[eq("instance", "c")], 0, i64::MAX).is_empty());
        assert!(st.select(&[], 40_000_000, 50_000_000).is_empty());
        assert_eq!(
            st.label_values("instance", &[], 0, i64::MAX),
            vec!["a", "b"]
        );
        assert_eq!(
            st.label_names(&[], 0, i64::MAX),
            vec!["__name__", "instance"]
        );
    }

    #[test]
    fn append_parts_finds_the_same_series_as_labels() {
        let mut st = Store::new(Options::default());
        let names = ["a", "b", "c", "__name__", "zz"];
        let values = ["", "1", "2"];
        let mut rng = fastrand::Rng::with_seed(1);
        for t in 1..3000 {
            let pairs: Vec<(&str, &str)> = (0..rng.usize(0..5))
                .map(|_| (names[rng.usize(0..5)], values[rng.usize(0..3)]))
                .collect();
            let labels =
                Labels::from_pairs(std::iter::once(("__name__", "m")).chain(pairs.iter().copied()));
            let via_labels = st.series_count();
            if t % 2 == 0 {
                let _ = st.append(&labels, t, 1.0);
            } else {
                let _ = st.append_parts("m", &pairs, t, 1.0);
            }
            // Either way the sample lands in the series `labels` names.
            let got = st.select(&[], t, t);
            let hit = got.iter().find(|s| s.labels == labels);
            if labels.name().is_some() {
                assert!(hit.is_some(), "{labels} at {t} (series {via_labels})");
            }
        }
    }

    #[test]
    fn out_of_order_and_duplicates_are_refused_and_counted() {
        let mut st = Store::new(Options::default());
        let l = lbl("x", "a");
        st.append(&l, 10_000, 1.0).unwrap();
        assert_eq!(st.append(&l, 10_000, 1.0), Ok(()));
        assert_eq!(
            st.append(&l, 10_000, 2.0),
            Err(AppendError::DuplicateTimestamp)
        );
        assert_eq!(st.append(&l, 9_000, 2.0), Err(AppendError::OutOfOrder));
        assert_eq!(st.stats().rejected_duplicate, 1);
        assert_eq!(st.stats().rejected_out_of_order, 1);
        assert_eq!(st.sample_count(), 1);
        assert!(matches!(
            st.append(&Labels::from_pairs([("job", "x")]), 1, 1.0),
            Err(AppendError::InvalidLabels(_))
        ));
    }

    #[test]
    fn oldest_t_stays_exact_across_pushes_older_series_and_discards() {
        let mut st = Store::new(Options::default());
        assert_eq!(st.oldest_t(), None);
        st.append(&lbl("m", "a"), 5_000, 1.0).unwrap();
        assert_eq!(st.oldest_t(), Some(5_000));
        st.append(&lbl("m", "a"), 6_000, 1.0).unwrap();
        // A new series whose first sample is older than everything held.
        st.append(&lbl("m", "b"), 1_000, 1.0).unwrap();
        assert_eq!(st.oldest_t(), Some(1_000));
        assert_eq!(st.oldest_t(), st.compute_oldest_t());
        // Dropping data can raise it: series b goes entirely.
        st.discard_from(900);
        assert_eq!(st.oldest_t(), None);
        st.append(&lbl("m", "c"), 2_000, 1.0).unwrap();
        assert_eq!(st.oldest_t(), Some(2_000));
        assert_eq!(st.oldest_t(), st.compute_oldest_t());
    }

    #[test]
    fn staleness_markers_are_stored_exactly() {
        let mut st = Store::new(Options::default());
        let l = lbl("x", "a");
        st.append(&l, 1, 5.0).unwrap();
        st.append(&l, 2, stale_nan()).unwrap();
        st.append(&l, 3, f64::NAN).unwrap();
        let s = &st.select(&[], 0, 10)[0].samples;
        assert!(is_stale_nan(s[1].v));
        assert!(s[2].v.is_nan() && !is_stale_nan(s[2].v));
    }

    #[test]
    fn budget_is_never_exceeded_and_oldest_data_goes_first() {
        let budget = 256 << 10;
        let mut st = Store::new(Options {
            retention_bytes: budget,
            ..Options::default()
        });
        let mut rng = 7u64;
        for i in 0..40_000i64 {
            for s in 0..20 {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                st.append(&lbl("m", &s.to_string()), i * 15_000, (rng >> 40) as f64)
                    .unwrap();
            }
            assert!(st.bytes_used() <= budget, "{} > {budget}", st.bytes_used());
            if i % 1000 == 0 {
                assert_eq!(st.chunk_bytes, st.recount_chunk_bytes());
            }
            if i % 997 == 0 {
                // Asked often, as /metrics does, so the kept value must follow evictions.
                assert_eq!(st.oldest_t(), st.compute_oldest_t(), "append {i}");
            }
        }
        assert!(st.stats().chunks_evicted > 0);
        let all = st.select(&[], 0, i64::MAX);
        assert_eq!(all.len(), 20);
        // The newest samples are all there; the oldest are gone.
        for s in &all {
            assert_eq!(s.samples.last().unwrap().t, 39_999 * 15_000);
            assert!(s.samples[0].t > 0);
            assert!(s.samples.windows(2).all(|w| w[0].t < w[1].t));
        }
        assert!(
            st.bytes_used() > budget * 8 / 10,
            "budget is used, not wasted"
        );
    }

    /// Every window's selection equals the full selection cut to the window: the seek points of
    /// open, sealed and recovered chunks start decoding early enough, also after the ring
    /// wrapped around and evicted the oldest chunks.
    fn assert_windows_match_full_decode(st: &Store, step: i64) {
        let all = st.select(&[], i64::MIN, i64::MAX);
        let first = all.iter().map(|s| s.samples[0].t).min().unwrap();
        let last = all
            .iter()
            .map(|s| s.samples.last().unwrap().t)
            .max()
            .unwrap();
        let mut mint = first - step;
        while mint <= last + step {
            for width in [0, 299_999, 3_600_000] {
                let maxt = mint + width;
                let want: Vec<SeriesSamples> = all
                    .iter()
                    .map(|s| SeriesSamples {
                        labels: s.labels.clone(),
                        samples: s
                            .samples
                            .iter()
                            .copied()
                            .filter(|p| p.t >= mint && p.t <= maxt)
                            .collect(),
                    })
                    .filter(|s| !s.samples.is_empty())
                    .collect();
                assert_eq!(st.select(&[], mint, maxt), want, "[{mint}, {maxt}]");
                assert_latest_matches_select(st, &[], mint, maxt);
            }
            mint += step;
        }
    }

    /// `select_latest` yields, in the same order, each selected series' labels and newest
    /// sample in the window, bit for bit (stale markers too).
    fn assert_latest_matches_select(st: &Store, ms: &[Matcher], mint: Timestamp, maxt: Timestamp) {
        let want: Vec<(Labels, i64, u64)> = st
            .select(ms, mint, maxt)
            .into_iter()
            .map(|s| {
                let last = *s.samples.last().unwrap();
                (s.labels, last.t, last.v.to_bits())
            })
            .collect();
        let mut got = Vec::new();
        assert!(st.select_latest(ms, mint, maxt, &mut |pairs, s| {
            got.push((
                Labels::from_pairs(pairs.iter().copied()),
                s.t,
                s.v.to_bits(),
            ));
            true
        }));
        assert_eq!(got, want, "latest in [{mint}, {maxt}]");
    }

    #[test]
    fn select_latest_reads_open_and_sealed_chunks_and_stops_when_asked() {
        let mut st = Store::new(Options::default());
        let mut v = 0.0;
        for i in 0..2_000i64 {
            for s in 0..4 {
                v += ((i * 7 + s * 13) % 17) as f64;
                // Series 3 goes stale at i = 1500 and stays so for 100 samples.
                let x = if s == 3 && (1500..1600).contains(&i) {
                    stale_nan()
                } else {
                    v
                };
                st.append(&lbl("m", &s.to_string()), i * 15_000 + s, x)
                    .unwrap();
            }
        }
        assert!(st.data.iter().all(|sd| sd.sealed.len() > 2));
        // Windows ending before, inside and after each chunk, of lookback width and wider.
        let mut maxt = -30_000;
        while maxt <= 2_001 * 15_000 {
            for width in [0, 1, 14_999, 300_000, 10_000_000] {
                assert_latest_matches_select(&st, &[], maxt - width, maxt);
                assert_latest_matches_select(&st, &[eq("instance", "3")], maxt - width, maxt);
            }
            maxt += 7_001;
        }
        let mut seen = 0;
        assert!(st.select_latest(&[], 0, i64::MAX, &mut |_, _| {
            seen += 1;
            seen < 2
        }));
        assert_eq!(seen, 2);
    }

    #[test]
    fn select_latest_names_the_series_now_holding_a_reused_id() {
        let mut st = Store::new(Options {
            retention_bytes: 128 << 10,
            ..Options::default()
        });
        for i in 0..100 {
            st.append(&lbl("gone", "a"), i * 15_000, i as f64).unwrap();
        }
        let id_of = |st: &Store, l: &Labels| st.index.lookup(l, hash_labels(l));
        let gone_id = id_of(&st, &lbl("gone", "a")).unwrap();
        let mut t = 100 * 15_000;
        while st.series_count() != 8 {
            for s in 0..8 {
                st.append(&lbl("stay", &s.to_string()), t, (t % 977) as f64)
                    .unwrap();
            }
            t += 15_000;
            if t % (15 * 60_000) == 0 {
                st.poll(Instant::now());
            }
            assert!(t < 1_000_000_000, "the idle series never left");
        }
        // The freed id goes to the next new series; the latest sample carries its labels.
        st.append(&lbl("new", "b"), t, 5.0).unwrap();
        assert_eq!(id_of(&st, &lbl("new", "b")), Some(gone_id));
        let mut got = Vec::new();
        st.select_latest(&[], 0, i64::MAX, &mut |pairs, s| {
            got.push((Labels::from_pairs(pairs.iter().copied()), s.v));
            true
        });
        assert_eq!(got.len(), 9);
        assert!(got.iter().all(|(l, _)| l.get("__name__") != Some("gone")));
        assert!(got.contains(&(lbl("new", "b"), 5.0)));
        assert_latest_matches_select(&st, &[], 0, i64::MAX);
        assert_latest_matches_select(&st, &[], t - 300_000, t - 1);
    }

    #[test]
    fn queries_through_seek_points_match_a_full_decode_after_eviction_and_recovery() {
        use crate::tsdb::OsFs;
        let dir = std::env::temp_dir().join(format!("promlet-seek-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let opts = Options {
            retention_bytes: 64 << 10,
            ..Options::default()
        };
        let mut st = Store::open(opts.clone(), &dir, Box::new(OsFs));
        let mut v = 0.0;
        for i in 0..6_000i64 {
            for s in 0..6 {
                v += ((i * 7 + s * 13) % 17) as f64;
                st.append(&lbl("m", &s.to_string()), i * 15_000 + s, v)
                    .unwrap();
            }
        }
        assert!(st.stats().chunks_evicted > 0, "the ring wrapped around");
        let chunks_with_points = st
            .data
            .iter()
            .flat_map(|sd| sd.sealed.iter())
            .filter(|c| c.seeks() != SeekTable::default())
            .count();
        assert!(chunks_with_points > 0);
        assert_windows_match_full_decode(&st, 97_001);
        st.flush(Instant::now());
        let before = st.select(&[], i64::MIN, i64::MAX);
        drop(st);
        let st = Store::open(opts, &dir, Box::new(OsFs));
        assert_eq!(st.select(&[], i64::MIN, i64::MAX), before);
        // Recovered chunks got the same seek points as those taken while appending.
        assert!(st
            .data
            .iter()
            .flat_map(|sd| sd.sealed.iter())
            .all(|c| c.seeks() == SeekTable::build(c.mint, c.data(), c.bit_len)));
        assert_windows_match_full_decode(&st, 97_001);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn series_without_samples_leave_the_index() {
        let budget = 128 << 10;
        let mut st = Store::new(Options {
            retention_bytes: budget,
            ..Options::default()
        });
        // A short-lived series, sealed when idle, then pushed out by a long-lived one.
        for i in 0..100 {
            st.append(&lbl("gone", "a"), i * 15_000, i as f64).unwrap();
        }
        let mut t = 100 * 15_000;
        loop {
            for s in 0..8 {
                st.append(&lbl("stay", &s.to_string()), t, (t % 977) as f64)
                    .unwrap();
            }
            t += 15_000;
            if t % (15 * 60_000) == 0 {
                st.poll(Instant::now());
            }
            if st.series_count() == 8 {
                break;
            }
            assert!(t < 1_000_000_000, "the idle series never left");
        }
        assert!(st.select(&[eq("__name__", "gone")], 0, i64::MAX).is_empty());
        assert_eq!(st.chunk_bytes, st.recount_chunk_bytes());
        assert!(st.label_values("__name__", &[], 0, i64::MAX) == vec!["stay"]);
        assert!(st.stats().series_removed >= 1);
    }

    #[test]
    fn max_series_refuses_new_series_but_keeps_existing() {
        let mut st = Store::new(Options {
            max_series: 3,
            ..Options::default()
        });
        for i in 0..5 {
            let r = st.append(&lbl("m", &i.to_string()), 1000, 1.0);
            assert_eq!(r.is_ok(), i < 3);
        }
        assert_eq!(st.stats().rejected_too_many_series, 2);
        assert!(st.append(&lbl("m", "0"), 2000, 1.0).is_ok());
    }

    #[test]
    fn discard_from_cuts_every_series_even_those_not_appended_again() {
        let mut st = Store::new(Options::default());
        let (a, b, gone) = (lbl("m", "a"), lbl("m", "b"), lbl("m", "gone"));
        let day = 86_400_000;
        let t0 = 1_700_000_000_000;
        for i in 0..1000 {
            st.append(&a, t0 + 3 * day + i * 15_000, 1.0).unwrap();
            st.append(&b, t0 - 1000 + i * 15_000, 1.0).unwrap();
        }
        st.append(&gone, t0 + 3 * day, 1.0).unwrap();
        // NTP corrects a clock that was three days ahead: `b` keeps what is older than t0,
        // `gone` (never appended again) leaves the index, the newest sample is recomputed, so
        // idle sealing and retention time work from the true time again.
        let (series, samples) = st.discard_from(t0);
        assert_eq!((series, samples), (3, 1000 + 999 + 1));
        assert_eq!(st.series_count(), 1);
        assert_eq!(st.max_t(), Some(t0 - 1000));
        st.append(&a, t0, 2.0).unwrap();
        st.append(&a, t0 + 15_000, 3.0).unwrap();
        let got = st.select(&[eq("instance", "a")], 0, i64::MAX);
        assert_eq!(
            got[0].samples,
            vec![
                Sample { t: t0, v: 2.0 },
                Sample {
                    t: t0 + 15_000,
                    v: 3.0
                }
            ]
        );
        // Forward by days is just a long gap.
        st.append(&a, t0 + 30 * day, 4.0).unwrap();
        assert_eq!(
            st.select(&[eq("instance", "a")], 0, i64::MAX)[0]
                .samples
                .len(),
            3
        );
        assert_eq!(st.chunk_bytes, st.recount_chunk_bytes());
    }

    /// A cut is durable: the discarded samples stay gone after a restart, what was appended
    /// after the cut is there, and a crash before the flush that writes the cut leaves the
    /// old state (the cut and the samples after it are written together).
    #[test]
    fn discard_from_survives_restart_and_is_atomic_with_later_samples() {
        use crate::tsdb::OsFs;
        let dir = std::env::temp_dir().join(format!("promlet-cut-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let now = Instant::now();
        let (a, gone) = (lbl("m", "a"), lbl("m", "gone"));
        let future = 1_000_000_000;
        let mut st = Store::open(Options::default(), &dir, Box::new(OsFs));
        for i in 0..300 {
            st.append(&a, i * 15_000, 1.0).unwrap();
        }
        for i in 0..200 {
            st.append(&a, future + i * 15_000, 2.0).unwrap();
            st.append(&gone, future + i * 15_000, 2.0).unwrap();
        }
        st.flush(now);
        let before = st.select(&[], i64::MIN, i64::MAX);
        // Cut, append at the corrected time, but "crash" before flushing.
        st.discard_from(300 * 15_000);
        st.append(&a, 300 * 15_000, 3.0).unwrap();
        drop(st);
        let st = Store::open(Options::default(), &dir, Box::new(OsFs));
        assert_eq!(st.select(&[], i64::MIN, i64::MAX), before);
        drop(st);
        // Again, this time flushed; then more appends and seals, flushed in a later segment.
        let mut st = Store::open(Options::default(), &dir, Box::new(OsFs));
        st.discard_from(300 * 15_000);
        for i in 300..700 {
            st.append(&a, i * 15_000, 3.0).unwrap();
            if i == 310 {
                st.flush(now);
            }
        }
        st.flush(now);
        let want = st.select(&[], i64::MIN, i64::MAX);
        assert_eq!(want.len(), 1);
        assert_eq!(want[0].samples.len(), 700);
        drop(st);
        let st = Store::open(Options::default(), &dir, Box::new(OsFs));
        assert_eq!(st.stats().corrupt_records, 0);
        assert_eq!(st.select(&[], i64::MIN, i64::MAX), want);
        assert_eq!(st.max_t(), Some(699 * 15_000));
        assert_eq!(st.chunk_bytes, st.recount_chunk_bytes());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A torn flush that kept the cut but lost the chunks written after it: recovery truncates
    /// the rebuilt chunks itself (the open one of `a`, the sealed one of `b` that straddles
    /// the cut), and the chunk continuations the restarted writer appends to those truncated
    /// chunks read back exactly.
    #[test]
    fn a_cut_whose_chunks_were_torn_off_recovers_and_continues() {
        use crate::tsdb::OsFs;
        let dir = std::env::temp_dir().join(format!("promlet-cut-torn-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let now = Instant::now();
        let (a, b) = (lbl("m", "a"), lbl("m", "b"));
        let cut = 100 * 15_000;
        let mut st = Store::open(Options::default(), &dir, Box::new(OsFs));
        for i in 0..100 {
            st.append(&a, i * 15_000, (i % 7) as f64).unwrap();
            st.append(&b, i * 15_000, (i % 5) as f64).unwrap();
        }
        for i in 0..10 {
            st.append(&a, cut + 1_000_000 + i * 15_000, 9.0).unwrap();
        }
        for i in 0..600 {
            st.append(&b, cut + 1_000_000 + i * 15_000, i as f64)
                .unwrap();
        }
        st.flush(now);
        let seg = dir.join(format::segment_name(0));
        let cut_at = std::fs::read(&seg).unwrap().len();
        st.discard_from(cut);
        let want = st.select(&[], i64::MIN, i64::MAX);
        assert_eq!(want.len(), 2);
        assert!(want.iter().all(|s| s.samples.len() == 100));
        st.flush(now);
        drop(st);
        // Keep what the first flush wrote and the frame holding the cut; tear off the rest.
        let bytes = std::fs::read(&seg).unwrap();
        let len = u32::from_le_bytes(bytes[cut_at + 1..cut_at + 5].try_into().unwrap()) as usize;
        assert!(len < 16, "the cut is the first frame of its flush");
        std::fs::write(&seg, &bytes[..cut_at + format::FRAME_OVERHEAD + len]).unwrap();
        let mut st = Store::open(Options::default(), &dir, Box::new(OsFs));
        assert_eq!(st.stats().corrupt_records, 0);
        assert_eq!(st.select(&[], i64::MIN, i64::MAX), want);
        assert_eq!(st.max_t(), Some(99 * 15_000));
        for i in 100..130 {
            st.append(&a, i * 15_000, 1.0).unwrap();
            st.append(&b, i * 15_000, 2.0).unwrap();
        }
        st.flush(now);
        let want = st.select(&[], i64::MIN, i64::MAX);
        drop(st);
        let st = Store::open(Options::default(), &dir, Box::new(OsFs));
        assert_eq!(st.stats().corrupt_records, 0);
        assert_eq!(st.select(&[], i64::MIN, i64::MAX), want);
        assert_eq!(st.chunk_bytes, st.recount_chunk_bytes());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn retention_time_drops_old_chunks() {
        let mut st = Store::new(Options {
            retention_ms: Some(3_600_000),
            ..Options::default()
        });
        for i in 0..(6 * 240) {
            st.append(&lbl("m", "a"), i * 15_000, (i % 13) as f64)
                .unwrap();
        }
        st.poll(Instant::now());
        let s = &st.select(&[], 0, i64::MAX)[0].samples;
        let newest = s.last().unwrap().t;
        // Only whole chunks go, so up to one chunk older than the limit may remain.
        assert!(s[0].t >= newest - 3_600_000 - 15_000 * CHUNK_MAX_BYTES as i64 * 4);
        assert!(s[0].t > 0);
    }
}

#[cfg(test)]
mod replay_tests {
    use super::*;
    use crate::tsdb::fs::OsFs;

    /// Records that pass the CRC but say nonsense (a bug in an older writer, or a crafted file)
    /// never panic recovery, and the store keeps working afterwards.
    #[test]
    fn recovery_survives_nonsense_records_without_panicking() {
        let dir = std::env::temp_dir().join(format!("promlet-replay-fuzz-{}", std::process::id()));
        let mut rng = fastrand::Rng::with_seed(5);
        for round in 0..150 {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            for seg in 0..rng.u32(1..4) {
                let mut buf = format::segment_header().to_vec();
                for _ in 0..rng.usize(1..6) {
                    let payload: Vec<Vec<u8>> = (0..rng.usize(0..6))
                        .map(|_| (0..rng.usize(0..40)).map(|_| rng.u8(..)).collect())
                        .collect();
                    let names = ["__name__", "a", "", "b"];
                    let series = (0..rng.usize(0..4))
                        .map(|_| SeriesDef {
                            id: rng.u32(0..5),
                            labels: (0..rng.usize(0..3))
                                .map(|_| (names[rng.usize(0..4)], names[rng.usize(0..4)]))
                                .collect(),
                        })
                        .collect();
                    let chunks = payload
                        .iter()
                        .map(|bytes| ChunkEntry {
                            id: rng.u32(0..6),
                            start: match rng.u8(0..3) {
                                0 => Start::New(rng.i64(..)),
                                1 => Start::Continue,
                                _ => Start::ContinueFrom(rng.u32(..)),
                            },
                            offset: rng.u16(0..64),
                            bit_len: if rng.bool() {
                                (bytes.len() * 8) as u16
                            } else {
                                rng.u16(..)
                            },
                            sealed: rng.bool().then(|| (rng.i64(..), rng.u16(..))),
                            bytes,
                        })
                        .collect();
                    format::write_frame(&mut buf, &Record::Batch { series, chunks });
                    if rng.u8(0..4) == 0 {
                        let from = rng.i64(..);
                        format::write_frame(&mut buf, &Record::Cut { from });
                    }
                }
                std::fs::write(dir.join(format::segment_name(seg)), &buf).unwrap();
            }
            let mut st = Store::open(Options::default(), &dir, Box::new(OsFs));
            assert_eq!(st.chunk_bytes, st.recount_chunk_bytes(), "round {round}");
            let all = st.select(&[], i64::MIN, i64::MAX);
            let _ = st.label_names(&[], i64::MIN, i64::MAX);
            let l = Labels::from_pairs([("__name__", "after")]);
            st.append(&l, 1, 1.0).unwrap();
            st.flush(Instant::now());
            assert!(
                st.select(&[], i64::MIN, i64::MAX).len() <= all.len() + 1,
                "round {round}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
