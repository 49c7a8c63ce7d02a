//! Gorilla-style compressed chunks: delta-of-delta timestamps and XOR floats in one bit stream.
//!
//! Owns: the bit layout of one chunk (documented in docs/tsdb-format.md), the encoder that
//! appends to an open chunk, and the decoder. Must not touch: series, budgets, files.
//!
//! The scheme follows Facebook's Gorilla paper (Pelkonen et al., VLDB 2015) as Prometheus's
//! XOR chunks do, with one change: the smallest non-zero timestamp bucket is 4 bits (-8..=7 ms)
//! instead of 14, because timer-driven collection jitters by a few milliseconds and that jitter
//! would otherwise cost 16 bits per sample (±2 ms of jitter costs 6 bits here). The chunk's first timestamp is kept outside
//! the bit stream (in the chunk's metadata, `mint`), so the stream starts with the raw value.
//!
//! A chunk never grows past [`CHUNK_MAX_BYTES`]: the encoder computes a sample's exact bit cost
//! first and reports "full" instead of writing a partial sample, so the caller seals the chunk
//! and starts a new one. Decoding never panics on damaged bytes; it stops and says so.

use crate::model::{Sample, Timestamp};

/// Upper bound of one chunk's bytes. Large enough that the per-chunk metadata (about 60 bytes
/// with the allocation header) stays under a tenth of a byte per sample; small enough that
/// eviction frees memory in small steps and a query decodes little it does not need.
pub const CHUNK_MAX_BYTES: usize = 512;
const CHUNK_MAX_BITS: u32 = (CHUNK_MAX_BYTES * 8) as u32;

/// Seek points kept beside each chunk (in memory only; recovery rebuilds them by decoding).
/// A point is taken at the first sample ending past each multiple of [`SEEK_EVERY_BITS`], so a
/// query starts decoding at most that many bits before its time range instead of at the
/// chunk's first sample (decoding from the start was 44 % of an instant query over 1,000
/// series). Each point taken costs [`SEEK_POINT_BYTES`] per chunk: 2 points add about 0.06
/// bytes per sample on node-like data (3 points cut another 15 % off a 1,000-series query
/// but cost 0.12 bytes per sample, past the store's budget of 1.4).
pub const SEEK_POINTS: usize = 2;
/// Bits between seek points: the chunk's bit budget cut into `SEEK_POINTS + 1` equal parts.
pub const SEEK_EVERY_BITS: u32 = CHUNK_MAX_BITS / (SEEK_POINTS as u32 + 1);

/// The decoder's state right after one sample: enough to resume decoding there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeekPoint {
    /// The value's bits as two halves (high first): 4-byte alignment keeps a point at 20 bytes.
    last_v: [u32; 2],
    /// The sample's timestamp minus the chunk's `mint`.
    t_off: u32,
    last_delta: u32,
    /// Bit position after the sample; 0 marks an unused slot (no sample ends at bit 0).
    pos: u16,
    leading: u8,
    trailing: u8,
}

/// Bytes of one seek point stored after a sealed chunk's bytes ([`SeekTable::write`]).
pub const SEEK_POINT_BYTES: usize = 20;

/// A chunk's seek points, in stream (and so time) order; unused slots are at the end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeekTable([SeekPoint; SEEK_POINTS]);

impl SeekTable {
    /// Number of points taken.
    fn len(&self) -> usize {
        self.0.iter().take_while(|p| p.pos != 0).count()
    }

    /// Called with the state after every sample, by the encoder and by [`SeekTable::build`]
    /// alike, so both take the same points. A sample whose offsets do not fit 32 bits (a
    /// chunk spanning more than 49 days) is not taken; a later one is.
    fn observe(&mut self, s: &XorState) {
        let n = self.len();
        if n == SEEK_POINTS || s.bit_len < (n as u32 + 1) * SEEK_EVERY_BITS {
            return;
        }
        let (Ok(t_off), Ok(last_delta), Ok(pos)) = (
            u32::try_from(s.last_t.wrapping_sub(s.mint)),
            u32::try_from(s.last_delta),
            u16::try_from(s.bit_len),
        ) else {
            return;
        };
        self.0[n] = SeekPoint {
            last_v: [(s.last_v >> 32) as u32, s.last_v as u32],
            t_off,
            last_delta,
            pos,
            leading: s.leading,
            trailing: s.trailing,
        };
    }

    /// Appends the points taken, [`SEEK_POINT_BYTES`] each (a sealed chunk keeps them after
    /// its bytes, in the same allocation).
    pub fn write(&self, out: &mut Vec<u8>) {
        for p in &self.0[..self.len()] {
            out.extend_from_slice(&p.last_v[0].to_le_bytes());
            out.extend_from_slice(&p.last_v[1].to_le_bytes());
            out.extend_from_slice(&p.t_off.to_le_bytes());
            out.extend_from_slice(&p.last_delta.to_le_bytes());
            out.extend_from_slice(&p.pos.to_le_bytes());
            out.extend_from_slice(&[p.leading, p.trailing]);
        }
    }

    /// The table [`SeekTable::write`] wrote; extra or partial records are ignored.
    pub fn read(bytes: &[u8]) -> SeekTable {
        let mut t = SeekTable::default();
        for (slot, r) in t.0.iter_mut().zip(bytes.chunks_exact(SEEK_POINT_BYTES)) {
            let u32_at = |i: usize| u32::from_le_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]]);
            *slot = SeekPoint {
                last_v: [u32_at(0), u32_at(4)],
                t_off: u32_at(8),
                last_delta: u32_at(12),
                pos: u16::from_le_bytes([r[16], r[17]]),
                leading: r[18],
                trailing: r[19],
            };
        }
        t
    }

    /// The seek points of a chunk's bytes (for chunks recovered from disk), found by decoding.
    pub fn build(mint: Timestamp, bytes: &[u8], bit_len: u32) -> SeekTable {
        let mut table = SeekTable::default();
        let mut d = Decoder::new(mint, bytes, bit_len);
        while d.next().is_some() {
            table.observe(&d.state);
        }
        table
    }

    /// The last point whose sample is older than `t`: decoding from there loses nothing at or
    /// after `t`.
    fn last_before(&self, mint: Timestamp, t: Timestamp) -> Option<&SeekPoint> {
        self.0
            .iter()
            .take_while(|p| p.pos != 0 && mint.wrapping_add(p.t_off as i64) < t)
            .last()
    }
}

/// Encoder state of an open chunk. Everything needed to continue appending, all derivable by
/// decoding the chunk's bytes (which is how recovery rebuilds it).
#[derive(Clone, Debug, PartialEq)]
pub struct XorState {
    pub mint: Timestamp,
    pub last_t: Timestamp,
    pub last_delta: i64,
    pub last_v: u64,
    /// Leading zeros of the current XOR window; `u8::MAX` before the first window.
    pub leading: u8,
    pub trailing: u8,
    pub count: u16,
    pub bit_len: u32,
}

impl XorState {
    fn empty() -> XorState {
        XorState {
            mint: 0,
            last_t: 0,
            last_delta: 0,
            last_v: 0,
            leading: u8::MAX,
            trailing: 0,
            count: 0,
            bit_len: 0,
        }
    }
}

/// Up to six (value, bit count) pieces of one encoded sample, written only if all fit.
struct Pieces {
    parts: [(u64, u8); 6],
    len: usize,
    bits: u32,
}

impl Pieces {
    fn new() -> Pieces {
        Pieces {
            parts: [(0, 0); 6],
            len: 0,
            bits: 0,
        }
    }
    fn push(&mut self, value: u64, n: u8) {
        self.parts[self.len] = (value, n);
        self.len += 1;
        self.bits += n as u32;
    }
}

/// An open chunk: its bytes grow (by doubling, capped at [`CHUNK_MAX_BYTES`]) as samples come.
#[derive(Clone, Debug)]
pub struct OpenChunk {
    pub bytes: Vec<u8>,
    pub state: XorState,
    /// Where a reader may start decoding; taken as samples are pushed.
    pub seeks: SeekTable,
}

/// Why [`OpenChunk::push`] did not take a sample.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// The sample does not fit; seal this chunk and start a new one.
    Full,
}

impl Default for OpenChunk {
    fn default() -> Self {
        OpenChunk::new()
    }
}

impl OpenChunk {
    pub fn new() -> OpenChunk {
        OpenChunk {
            bytes: Vec::new(),
            state: XorState::empty(),
            seeks: SeekTable::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.state.count == 0
    }

    /// Appends a sample whose timestamp is strictly greater than the last one.
    pub fn push(&mut self, t: Timestamp, v: f64) -> Result<(), PushError> {
        let s = &self.state;
        let vb = v.to_bits();
        let mut p = Pieces::new();
        let (mut leading, mut trailing) = (s.leading, s.trailing);
        if s.count == 0 {
            p.push(vb, 64);
        } else {
            let delta = t.wrapping_sub(s.last_t);
            let dod = delta.wrapping_sub(s.last_delta);
            match dod {
                0 => p.push(0, 1),
                -8..=7 => {
                    p.push(0b10, 2);
                    p.push(dod as u64 & 0xf, 4);
                }
                -8192..=8191 => {
                    p.push(0b110, 3);
                    p.push(dod as u64 & 0x3fff, 14);
                }
                -524_288..=524_287 => {
                    p.push(0b1110, 4);
                    p.push(dod as u64 & 0xf_ffff, 20);
                }
                _ => {
                    p.push(0b1111, 4);
                    p.push(dod as u64, 64);
                }
            }
            let x = vb ^ s.last_v;
            if x == 0 {
                p.push(0, 1);
            } else {
                let lz = (x.leading_zeros() as u8).min(31);
                let tz = x.trailing_zeros() as u8;
                if s.leading != u8::MAX && lz >= s.leading && tz >= s.trailing {
                    let sig = 64 - s.leading - s.trailing;
                    p.push(0b10, 2);
                    p.push(x >> s.trailing, sig);
                } else {
                    let sig = 64 - lz - tz;
                    p.push(0b11, 2);
                    p.push(lz as u64, 5);
                    // 64 significant bits are written as 0: 6 bits hold 0..=63.
                    p.push((sig & 63) as u64, 6);
                    p.push(x >> tz, sig);
                    leading = lz;
                    trailing = tz;
                }
            }
        }
        if s.bit_len + p.bits > CHUNK_MAX_BITS {
            return Err(PushError::Full);
        }
        let need = (s.bit_len + p.bits).div_ceil(8) as usize;
        if need > self.bytes.capacity() {
            // Doubling keeps reallocations to a handful per chunk, never one per sample.
            let target = (self.bytes.capacity() * 2)
                .clamp(16, CHUNK_MAX_BYTES)
                .max(need);
            self.bytes.reserve_exact(target - self.bytes.len());
        }
        let mut bit_len = self.state.bit_len;
        for &(value, n) in &p.parts[..p.len] {
            write_bits(&mut self.bytes, &mut bit_len, value, n);
        }
        let s = &mut self.state;
        if s.count == 0 {
            s.mint = t;
        } else {
            s.last_delta = t.wrapping_sub(s.last_t);
        }
        s.last_t = t;
        s.last_v = vb;
        s.leading = leading;
        s.trailing = trailing;
        s.count += 1;
        s.bit_len = bit_len;
        self.seeks.observe(&self.state);
        Ok(())
    }

    /// Rebuilds an open chunk from persisted bytes by decoding them; `None` if they are damaged.
    pub fn from_bytes(mint: Timestamp, bytes: &[u8], bit_len: u32) -> Option<OpenChunk> {
        if bytes.len() > CHUNK_MAX_BYTES || (bit_len as usize).div_ceil(8) != bytes.len() {
            return None;
        }
        let mut it = Decoder::new(mint, bytes, bit_len);
        let mut seeks = SeekTable::default();
        while it.next().is_some() {
            seeks.observe(&it.state);
        }
        if it.failed {
            return None;
        }
        let mut v = Vec::with_capacity(bytes.len().next_power_of_two().clamp(16, CHUNK_MAX_BYTES));
        v.extend_from_slice(bytes);
        Some(OpenChunk {
            bytes: v,
            state: it.state,
            seeks,
        })
    }
}

fn write_bits(buf: &mut Vec<u8>, bit_len: &mut u32, value: u64, n: u8) {
    let mut remaining = n as u32;
    while remaining > 0 {
        let used = *bit_len % 8;
        if used == 0 {
            buf.push(0);
        }
        let free = 8 - used;
        let take = free.min(remaining);
        let shift = remaining - take;
        let chunk = ((value >> shift) & ((1u64 << take) - 1)) as u8;
        let last = buf.len() - 1;
        buf[last] |= chunk << (free - take);
        remaining -= take;
        *bit_len += take;
    }
}

/// Reads samples back out of a chunk's bytes. Stops at `bit_len`; sets `failed` (and stops)
/// when the bytes cannot be a valid chunk, instead of panicking.
pub struct Decoder<'a> {
    bytes: &'a [u8],
    pos: u32,
    end: u32,
    pub state: XorState,
    pub failed: bool,
}

impl<'a> Decoder<'a> {
    pub fn new(mint: Timestamp, bytes: &'a [u8], bit_len: u32) -> Decoder<'a> {
        let end = bit_len.min((bytes.len() * 8) as u32);
        let mut state = XorState::empty();
        state.mint = mint;
        Decoder {
            bytes,
            pos: 0,
            end,
            state,
            failed: bit_len != end,
        }
    }

    /// A decoder that yields every sample at or after `from`, and perhaps some before it: it
    /// starts at the last seek point older than `from` instead of at the chunk's first sample.
    /// `seeks` must be the table of these bytes (one taken with them, or [`SeekTable::build`]).
    pub fn starting_near(
        mint: Timestamp,
        bytes: &'a [u8],
        bit_len: u32,
        seeks: &SeekTable,
        from: Timestamp,
    ) -> Decoder<'a> {
        let mut d = Decoder::new(mint, bytes, bit_len);
        if let Some(p) = seeks.last_before(mint, from) {
            if !d.failed && u32::from(p.pos) <= d.end {
                d.pos = p.pos.into();
                d.state = XorState {
                    mint,
                    last_t: mint.wrapping_add(p.t_off as i64),
                    last_delta: p.last_delta as i64,
                    last_v: (u64::from(p.last_v[0]) << 32) | u64::from(p.last_v[1]),
                    leading: p.leading,
                    trailing: p.trailing,
                    // Counts from the seek point: only the encoder needs the true count.
                    count: 1,
                    bit_len: p.pos.into(),
                };
            }
        }
        d
    }

    /// The 64 bits starting at bit `pos`, zeros past the end of the bytes. Reading a word at
    /// a time instead of bit by bit made chunk decoding (half of an instant query over many
    /// series) several times faster; checking against `end` stays with the caller.
    #[inline(always)]
    fn window(&self) -> u64 {
        let i = (self.pos / 8) as usize;
        let shift = self.pos % 8;
        let (hi, lo) = match self.bytes.get(i..i + 9) {
            Some(b) => (
                u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
                b[8],
            ),
            None => {
                let mut b = [0u8; 9];
                let tail = self.bytes.get(i..).unwrap_or(&[]);
                b[..tail.len()].copy_from_slice(tail);
                (
                    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
                    b[8],
                )
            }
        };
        (hi << shift) | (lo as u64 >> (8 - shift))
    }

    /// Consumes `n` bits if that many remain before `end`.
    #[inline(always)]
    fn consume(&mut self, n: u32) -> Option<()> {
        if self.end - self.pos < n {
            return None;
        }
        self.pos += n;
        Some(())
    }

    /// Reads `n` bits (0..=64), most significant first; None if fewer than `n` remain.
    #[inline(always)]
    fn bits(&mut self, n: u32) -> Option<u64> {
        let w = self.window();
        self.consume(n)?;
        Some(match n {
            0 => 0,
            64 => w,
            _ => w >> (64 - n),
        })
    }

    #[inline(always)]
    fn next_inner(&mut self) -> Option<Sample> {
        if self.state.count == 0 {
            let v = self.bits(64)?;
            let s = &mut self.state;
            s.last_t = s.mint;
            s.last_v = v;
            s.count = 1;
            s.bit_len = self.pos;
            return Some(Sample {
                t: s.mint,
                v: f64::from_bits(v),
            });
        }
        // Timestamp: a prefix of up to four 1 bits picks the payload width; all but the
        // 64-bit case are read from one window together with their prefix. `w` then holds the
        // next `valid` bits, so the value usually needs no second load.
        let mut w = self.window();
        let mut valid = 64;
        let dod: i64 = if w >> 63 == 0 {
            // The common case: a regular interval.
            self.consume(1)?;
            w <<= 1;
            valid = 63;
            0
        } else {
            let dod = match (!w).leading_zeros() {
                1 => {
                    self.consume(6)?;
                    ((w << 2) as i64) >> 60
                }
                2 => {
                    self.consume(17)?;
                    ((w << 3) as i64) >> 50
                }
                3 => {
                    self.consume(24)?;
                    ((w << 4) as i64) >> 44
                }
                _ => {
                    self.consume(4)?;
                    self.bits(64)? as i64
                }
            };
            w = self.window();
            dod
        };
        // Value: '0' same, '10' + bits in the previous window, '11' + 5 + 6 bits + a new window.
        let (mut leading, mut trailing) = (self.state.leading, self.state.trailing);
        let x = if w >> 63 == 0 {
            self.consume(1)?;
            0
        } else if (w >> 62) & 1 == 0 {
            if leading == u8::MAX {
                self.failed = true;
                return None;
            }
            let sig = 64 - leading as u32 - trailing as u32;
            if 2 + sig <= valid {
                self.consume(2 + sig)?;
                ((w << 2) >> (64 - sig)) << trailing
            } else {
                self.consume(2)?;
                self.bits(sig)? << trailing
            }
        } else {
            let lz = ((w >> 57) & 31) as u8;
            let sig = match ((w >> 51) & 63) as u8 {
                0 => 64,
                s => s,
            };
            if lz as u32 + sig as u32 > 64 {
                // Only an error if those 13 bits are really there.
                self.consume(13)?;
                self.failed = true;
                return None;
            }
            leading = lz;
            trailing = 64 - lz - sig;
            if 13 + sig as u32 <= valid {
                self.consume(13 + sig as u32)?;
                ((w << 13) >> (64 - sig as u32)) << trailing
            } else {
                self.consume(13)?;
                self.bits(sig as u32)? << trailing
            }
        };
        let s = &mut self.state;
        let delta = s.last_delta.wrapping_add(dod);
        let t = s.last_t.wrapping_add(delta);
        s.last_delta = delta;
        s.last_t = t;
        s.last_v ^= x;
        s.leading = leading;
        s.trailing = trailing;
        s.count = s.count.saturating_add(1);
        s.bit_len = self.pos;
        Some(Sample {
            t,
            v: f64::from_bits(s.last_v),
        })
    }

    /// Appends the samples with `mint <= t <= maxt` to `out` and stops after `maxt`: the
    /// query path, with the whole per-sample loop in one function.
    pub fn push_range(mut self, mint: Timestamp, maxt: Timestamp, out: &mut Vec<Sample>) {
        while !self.failed && self.pos < self.end {
            let Some(s) = self.next_inner() else {
                self.failed = true;
                return;
            };
            if s.t > maxt {
                return;
            }
            if s.t >= mint {
                out.push(s);
            }
        }
    }

    /// The newest sample at or before `maxt`, for a decoder made by [`Decoder::starting_near`]
    /// with `from = maxt + 1`: a seek point's own sample counts (decoding resumes after it),
    /// so a point just before `maxt` leaves almost nothing to decode. Damaged bytes end the
    /// walk there, as in [`Decoder::push_range`].
    pub fn last_at_or_before(mut self, maxt: Timestamp) -> Option<Sample> {
        let mut last = (self.state.count > 0 && self.state.last_t <= maxt).then(|| Sample {
            t: self.state.last_t,
            v: f64::from_bits(self.state.last_v),
        });
        while !self.failed && self.pos < self.end {
            match self.next_inner() {
                Some(s) if s.t <= maxt => last = Some(s),
                Some(_) => break,
                None => self.failed = true,
            }
        }
        last
    }
}

impl Iterator for Decoder<'_> {
    type Item = Sample;
    fn next(&mut self) -> Option<Sample> {
        if self.failed || self.pos >= self.end {
            return None;
        }
        let r = self.next_inner();
        if r.is_none() {
            // Bits remain but no whole sample could be read: the bytes or the length are wrong.
            self.failed = true;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{is_stale_nan, stale_nan};

    fn sign_extend(v: u64, bits: u32) -> i64 {
        let shift = 64 - bits;
        ((v << shift) as i64) >> shift
    }

    fn roundtrip(samples: &[(i64, f64)]) -> Vec<Sample> {
        let mut c = OpenChunk::new();
        for &(t, v) in samples {
            c.push(t, v).unwrap();
        }
        let d = Decoder::new(c.state.mint, &c.bytes, c.state.bit_len);
        d.collect()
    }

    #[test]
    fn chunk_roundtrips_bit_exact_values_including_stale_nan() {
        let input = [
            (1000, 1.0),
            (16_000, 1.0),
            (31_003, 2.5),
            (45_999, stale_nan()),
            (61_000, f64::NAN),
            (76_000, -0.0),
            (91_000, f64::INFINITY),
            (91_001, 1e300),
            (10_000_000_000, f64::MIN_POSITIVE),
            (10_000_000_001, 123456.789),
        ];
        let out = roundtrip(&input);
        assert_eq!(out.len(), input.len());
        for (o, i) in out.iter().zip(input.iter()) {
            assert_eq!(o.t, i.0);
            assert_eq!(o.v.to_bits(), i.1.to_bits());
        }
        assert!(is_stale_nan(out[3].v));
    }

    #[test]
    fn chunk_reports_full_and_never_exceeds_max_bytes() {
        let mut c = OpenChunk::new();
        let mut n = 0;
        let mut rng = 0x1234_5678_9abc_def0u64;
        loop {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            match c.push(n * 15_000 + (rng % 7) as i64, f64::from_bits(rng >> 2)) {
                Ok(()) => n += 1,
                Err(PushError::Full) => break,
            }
        }
        assert!(c.bytes.len() <= CHUNK_MAX_BYTES);
        assert!(c.bytes.capacity() <= CHUNK_MAX_BYTES);
        let back: Vec<_> = Decoder::new(c.state.mint, &c.bytes, c.state.bit_len).collect();
        assert_eq!(back.len() as i64, n);
    }

    #[test]
    fn constant_series_at_regular_interval_costs_two_bits_per_sample() {
        let mut c = OpenChunk::new();
        for i in 0..1000 {
            c.push(i * 15_000, 42.0).unwrap();
        }
        // 64 bits for the first value, 24 + 1 for the second, then 2 bits each.
        assert_eq!(c.state.bit_len, 64 + 25 + 998 * 2);
    }

    #[test]
    fn from_bytes_rebuilds_state_and_continues_identically() {
        let mut a = OpenChunk::new();
        for i in 0..50 {
            a.push(i * 15_000 + i % 3, (i * i) as f64 * 0.25).unwrap();
        }
        let mut b = OpenChunk::from_bytes(a.state.mint, &a.bytes, a.state.bit_len).unwrap();
        assert_eq!(a.state, b.state);
        a.push(50 * 15_000, 7.0).unwrap();
        b.push(50 * 15_000, 7.0).unwrap();
        assert_eq!(a.bytes, b.bytes);
    }

    /// The decoder as first written, one bit at a time: the word-at-a-time decoder must
    /// agree with it sample for sample, on valid chunks and on garbage.
    fn decode_bitwise(mint: Timestamp, bytes: &[u8], bit_len: u32) -> (Vec<(i64, u64)>, bool) {
        let end = bit_len.min((bytes.len() * 8) as u32);
        let mut pos = 0u32;
        let bit = |pos: &mut u32| -> Option<u64> {
            if *pos >= end {
                return None;
            }
            let b = bytes[(*pos / 8) as usize] >> (7 - *pos % 8) & 1;
            *pos += 1;
            Some(b as u64)
        };
        let bits = |pos: &mut u32, n: u8| -> Option<u64> {
            let mut out = 0u64;
            for _ in 0..n {
                out = (out << 1) | bit(pos)?;
            }
            Some(out)
        };
        let mut out = Vec::new();
        if bit_len != end {
            return (out, true);
        }
        let (mut t, mut delta, mut v) = (mint, 0i64, 0u64);
        let (mut leading, mut trailing) = (u8::MAX, 0u8);
        while pos < end {
            let step = (|| -> Result<(), ()> {
                if out.is_empty() {
                    v = bits(&mut pos, 64).ok_or(())?;
                    return Ok(());
                }
                let mut ones = 0;
                while ones < 4 && bits(&mut pos, 1).ok_or(())? == 1 {
                    ones += 1;
                }
                let dod = match ones {
                    0 => 0,
                    1 => sign_extend(bits(&mut pos, 4).ok_or(())?, 4),
                    2 => sign_extend(bits(&mut pos, 14).ok_or(())?, 14),
                    3 => sign_extend(bits(&mut pos, 20).ok_or(())?, 20),
                    _ => bits(&mut pos, 64).ok_or(())? as i64,
                };
                let x = if bits(&mut pos, 1).ok_or(())? == 0 {
                    0
                } else if bits(&mut pos, 1).ok_or(())? == 0 {
                    if leading == u8::MAX {
                        return Err(());
                    }
                    bits(&mut pos, 64 - leading - trailing).ok_or(())? << trailing
                } else {
                    let lz = bits(&mut pos, 5).ok_or(())? as u8;
                    let sig = match bits(&mut pos, 6).ok_or(())? as u8 {
                        0 => 64,
                        s => s,
                    };
                    if lz + sig > 64 {
                        return Err(());
                    }
                    leading = lz;
                    trailing = 64 - lz - sig;
                    bits(&mut pos, sig).ok_or(())? << trailing
                };
                delta = delta.wrapping_add(dod);
                t = t.wrapping_add(delta);
                v ^= x;
                Ok(())
            })();
            if step.is_err() {
                return (out, true);
            }
            out.push((t, v));
        }
        (out, false)
    }

    fn decode_fast(mint: Timestamp, bytes: &[u8], bit_len: u32) -> (Vec<(i64, u64)>, bool) {
        let mut d = Decoder::new(mint, bytes, bit_len);
        let out: Vec<(i64, u64)> = d.by_ref().map(|s| (s.t, s.v.to_bits())).collect();
        // The query path's loop yields the same samples, and respects its bounds.
        let mut ranged = Vec::new();
        Decoder::new(mint, bytes, bit_len).push_range(i64::MIN, i64::MAX, &mut ranged);
        assert!(ranged
            .iter()
            .map(|s| (s.t, s.v.to_bits()))
            .eq(out.iter().copied()));
        if let (Some(a), Some(b)) = (out.get(1), out.get(out.len().saturating_sub(2))) {
            ranged.clear();
            Decoder::new(mint, bytes, bit_len).push_range(a.0, b.0, &mut ranged);
            let want = out.iter().filter(|s| s.0 >= a.0 && s.0 <= b.0);
            // Stops at the first sample after maxt (timestamps only grow in valid chunks).
            assert!(ranged.len() <= want.count());
        }
        (out, d.failed)
    }

    #[test]
    fn word_decoder_agrees_with_bitwise_decoder_on_chunks_and_garbage() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..300 {
            let mut c = OpenChunk::new();
            let mut t = 1_000_000i64;
            let mut v = 0.0f64;
            loop {
                let r = next();
                t += match round % 3 {
                    0 => 15_000,
                    1 => 15_000 + (r % 9) as i64 - 4,
                    _ => (r % 3_000_000) as i64 + 1,
                };
                v = match r % 5 {
                    0 => v,
                    1 => v + (r % 17) as f64,
                    2 => f64::from_bits(r >> 1),
                    3 => stale_nan(),
                    _ => v * 0.5 + 1.0,
                };
                if c.push(t, v).is_err() {
                    break;
                }
            }
            let (m, b) = (c.state.mint, c.bytes.clone());
            let bits = c.state.bit_len;
            let want = decode_bitwise(m, &b, bits);
            assert!(!want.1);
            assert_eq!(decode_fast(m, &b, bits), want);
            // Cut short at every tenth bit, and with flipped bytes.
            for cut in (0..bits).step_by(10) {
                assert_eq!(decode_fast(m, &b, cut), decode_bitwise(m, &b, cut));
            }
            let mut g = b.clone();
            let at = (next() as usize) % g.len();
            g[at] ^= next() as u8 | 1;
            assert_eq!(decode_fast(m, &g, bits), decode_bitwise(m, &g, bits));
        }
    }

    /// A full chunk of jittered timestamps and counter-like values, and its samples.
    fn full_chunk(seed: u64) -> (OpenChunk, Vec<Sample>) {
        let mut rng = seed;
        let mut c = OpenChunk::new();
        let (mut t, mut v) = (1_000_000i64, 0.0f64);
        let mut all = Vec::new();
        loop {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            t += 15_000 + (rng % 5) as i64 - 2;
            v += (rng % 17) as f64;
            if c.push(t, v).is_err() {
                return (c, all);
            }
            all.push(Sample { t, v });
        }
    }

    fn from_time(
        c: &OpenChunk,
        seeks: &SeekTable,
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<Sample> {
        let mut out = Vec::new();
        Decoder::starting_near(c.state.mint, &c.bytes, c.state.bit_len, seeks, mint)
            .push_range(mint, maxt, &mut out);
        out
    }

    fn in_range(all: &[Sample], mint: Timestamp, maxt: Timestamp) -> Vec<Sample> {
        all.iter()
            .copied()
            .filter(|s| s.t >= mint && s.t <= maxt)
            .collect()
    }

    #[test]
    fn seek_points_are_taken_once_per_stretch_of_bits_and_rebuilt_identically() {
        let (c, all) = full_chunk(3);
        assert_eq!(c.seeks.len(), SEEK_POINTS);
        for (k, p) in c.seeks.0.iter().enumerate() {
            let boundary = (k as u32 + 1) * SEEK_EVERY_BITS;
            // The first sample ending at or past the boundary (a sample is < 160 bits).
            assert!(u32::from(p.pos) >= boundary && u32::from(p.pos) < boundary + 160);
            assert!(all.iter().any(|s| s.t == c.state.mint + p.t_off as i64));
        }
        let (m, b, bits) = (c.state.mint, &c.bytes, c.state.bit_len);
        assert_eq!(SeekTable::build(m, b, bits), c.seeks);
        assert_eq!(OpenChunk::from_bytes(m, b, bits).unwrap().seeks, c.seeks);
        let mut stored = Vec::new();
        c.seeks.write(&mut stored);
        assert_eq!(stored.len(), SEEK_POINTS * SEEK_POINT_BYTES);
        assert_eq!(SeekTable::read(&stored), c.seeks);
        assert_eq!(SeekTable::read(&stored[..SEEK_POINT_BYTES + 3]).len(), 1);
        assert_eq!(SeekTable::read(&[]), SeekTable::default());
        // A chunk of a few samples has none.
        let mut small = OpenChunk::new();
        small.push(0, 1.0).unwrap();
        small.push(15_000, 2.0).unwrap();
        assert_eq!(small.seeks.len(), 0);
    }

    #[test]
    fn last_at_or_before_is_the_newest_sample_up_to_the_time_with_or_without_points() {
        for seed in [3, 11, 12345] {
            let (c, all) = full_chunk(seed);
            let mut times: Vec<i64> = vec![i64::MIN, all[0].t - 1, i64::MAX];
            for p in &c.seeks.0 {
                let t = c.state.mint + p.t_off as i64;
                times.extend([t - 1, t, t + 1]);
            }
            times.extend(all.iter().flat_map(|s| [s.t - 1, s.t, s.t + 1]));
            for &maxt in &times {
                let want = all.iter().copied().rfind(|s| s.t <= maxt);
                let from = maxt.saturating_add(1);
                let (m, b, bits) = (c.state.mint, &c.bytes[..], c.state.bit_len);
                for seeks in [c.seeks, SeekTable::default()] {
                    let d = Decoder::starting_near(m, b, bits, &seeks, from);
                    assert_eq!(d.last_at_or_before(maxt), want, "seed {seed} {maxt}");
                }
            }
            // A length cutting a sample: the last whole sample before the cut, as iterating says.
            let cut = c.state.bit_len / 2 + 3;
            let d = |bits| Decoder::new(c.state.mint, &c.bytes, bits);
            assert_eq!(d(cut).last_at_or_before(i64::MAX), d(cut).last());
            // A length past the bytes is refused outright.
            assert_eq!(d(c.state.bit_len + 4096).last_at_or_before(i64::MAX), None);
        }
    }

    #[test]
    fn decoding_from_a_seek_point_yields_exactly_the_samples_in_range() {
        for seed in [3, 11, 12345] {
            let (c, all) = full_chunk(seed);
            let (first, last) = (all[0].t, all[all.len() - 1].t);
            let mut starts = vec![i64::MIN, first - 1, first, first + 1, last, last + 1];
            for p in &c.seeks.0 {
                let t = c.state.mint + p.t_off as i64;
                // On a point, just before and just after it.
                starts.extend([t - 1, t, t + 1]);
            }
            // Between points, everywhere.
            starts.extend(all.iter().step_by(7).map(|s| s.t + 3));
            for &mint in &starts {
                for maxt in [mint, mint.saturating_add(300_000), i64::MAX] {
                    assert_eq!(
                        from_time(&c, &c.seeks, mint, maxt),
                        in_range(&all, mint, maxt),
                        "seed {seed} [{mint}, {maxt}]"
                    );
                }
            }
            // Starting after the last sample skips to the last point, not past the end.
            let p = c.seeks.last_before(c.state.mint, last + 1).unwrap();
            assert_eq!(p, &c.seeks.0[SEEK_POINTS - 1]);
            let d = Decoder::starting_near(c.state.mint, &c.bytes, c.state.bit_len, &c.seeks, last);
            assert_eq!(d.pos, u32::from(p.pos));
            // Exactly on the second point: decoding starts at the first (older than it).
            let on = c.state.mint + c.seeks.0[1].t_off as i64;
            let d = Decoder::starting_near(c.state.mint, &c.bytes, c.state.bit_len, &c.seeks, on);
            assert_eq!(d.pos, u32::from(c.seeks.0[0].pos));
            assert!(from_time(&c, &c.seeks, last + 1, i64::MAX).is_empty());
        }
    }

    #[test]
    fn seek_points_are_skipped_where_offsets_do_not_fit_and_ignored_on_cut_bytes() {
        // Sixty days between samples: offsets past u32 milliseconds take no point.
        let mut c = OpenChunk::new();
        let mut all = Vec::new();
        for i in 0..400i64 {
            let t = i * 60 * 86_400_000;
            if c.push(t, i as f64).is_err() {
                break;
            }
            all.push(Sample { t, v: i as f64 });
        }
        assert_eq!(c.seeks.len(), 0);
        assert_eq!(from_time(&c, &c.seeks, all[50].t, i64::MAX), all[50..]);
        // A table whose points lie past the given length is not used.
        let (c, all) = full_chunk(5);
        let short = c.seeks.0[0].pos as u32 - 1;
        let mut out = Vec::new();
        Decoder::starting_near(c.state.mint, &c.bytes, short, &c.seeks, i64::MAX).push_range(
            i64::MIN,
            i64::MAX,
            &mut out,
        );
        let n = out.len();
        assert!(n > 0 && out[..] == all[..n]);
    }

    #[test]
    fn decoder_stops_on_garbage_without_panicking() {
        let mut rng = 99u64;
        for len in 0..200usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (rng >> 33) as u8
                })
                .collect();
            let bits = (len * 8) as u32;
            let _ = Decoder::new(0, &bytes, bits).count();
            let _ = Decoder::new(0, &bytes, bits + 9).count();
            let _ = OpenChunk::from_bytes(0, &bytes, bits);
        }
    }
}
