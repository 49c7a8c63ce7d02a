//! The on-disk format: segment header, record framing, and the records themselves.
//!
//! Owns: bytes on disk (docs/tsdb-format.md draws them). Must not touch: the store's state.
//! Reading never panics: a bad frame is reported and skipped by scanning for the next marker.

use serde::{Deserialize, Serialize};

/// First bytes of every segment file: magic "PLTSDB" then the format version and a zero byte.
pub const SEGMENT_MAGIC: &[u8; 6] = b"PLTSDB";
pub const FORMAT_VERSION: u8 = 1;
pub const HEADER_LEN: usize = 8;

/// Byte that starts every frame; lets the reader find the next frame after damage.
pub const FRAME_MARK: u8 = 0xC5;
/// Marker, payload length (u32 LE), CRC-32 (IEEE, of the payload, u32 LE).
pub const FRAME_OVERHEAD: usize = 9;
/// Larger lengths are damage: the writer splits batches well below this.
pub const MAX_RECORD: usize = 1 << 20;
/// The writer starts a new record once a batch's payload passes this size, so one damaged
/// record loses at most this much.
pub const RECORD_TARGET: usize = 32 * 1024;

pub fn segment_header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..6].copy_from_slice(SEGMENT_MAGIC);
    h[6] = FORMAT_VERSION;
    h
}

/// Segment file name for a sequence number: 8 hex digits, so names sort like numbers.
pub fn segment_name(seq: u32) -> String {
    format!("{seq:08x}.seg")
}

pub fn parse_segment_name(name: &str) -> Option<u32> {
    let hex = name.strip_suffix(".seg")?;
    if hex.len() != 8 {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// A series definition, written in a segment before the first chunk entry that uses its id,
/// so every segment can be read on its own (older ones are deleted as the ring wraps).
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct SeriesDef<'a> {
    pub id: u32,
    #[serde(borrow)]
    pub labels: Vec<(&'a str, &'a str)>,
}

/// Where a chunk entry's bytes belong.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Copy)]
pub enum Start {
    /// A chunk starts here (offset 0) with this first timestamp.
    New(i64),
    /// Continues a chunk started earlier in this segment.
    Continue,
    /// Continues a chunk started in the given (older) segment. If that segment is gone, the
    /// chunk was evicted and deleted on purpose: the entry is skipped without counting damage.
    ContinueFrom(u32),
}

/// Bytes of one chunk's bit stream from byte `offset` on. A `Start::New` entry carries the
/// whole chunk so far; a continuation rewrites from `offset` (the last, partial byte of the
/// previous entry is sent again). `sealed` closes the chunk with its last timestamp and sample
/// count, so recovery need not decode sealed chunks.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct ChunkEntry<'a> {
    pub id: u32,
    pub start: Start,
    pub offset: u16,
    pub bit_len: u16,
    pub sealed: Option<(i64, u16)>,
    #[serde(borrow, serialize_with = "bytes_at_once")]
    pub bytes: &'a [u8],
}

/// Same bytes on disk as serde's default (length, then the bytes) but copied in one step
/// instead of one call per byte.
fn bytes_at_once<S: serde::Serializer>(b: &&[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(b)
}

/// One framed record. New kinds are added at the end (postcard tags variants by index).
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub enum Record<'a> {
    Batch {
        #[serde(borrow)]
        series: Vec<SeriesDef<'a>>,
        #[serde(borrow)]
        chunks: Vec<ChunkEntry<'a>>,
    },
    /// The wall clock was found behind the stored data: every sample at or after `from` read
    /// before this record is dropped (the writer dropped them when it wrote this).
    Cut { from: i64 },
}

/// Appends one framed record to `out`.
pub fn write_frame(out: &mut Vec<u8>, rec: &Record) {
    let start = out.len();
    out.extend_from_slice(&[FRAME_MARK, 0, 0, 0, 0, 0, 0, 0, 0]);
    // Serializing into a Vec cannot fail for these types.
    let mut out_taken = std::mem::take(out);
    out_taken = postcard::to_extend(rec, out_taken).unwrap_or_else(|_| Vec::new());
    *out = out_taken;
    let len = out.len() - start - FRAME_OVERHEAD;
    let crc = crc32fast::hash(&out[start + FRAME_OVERHEAD..]);
    out[start + 1..start + 5].copy_from_slice(&(len as u32).to_le_bytes());
    out[start + 5..start + 9].copy_from_slice(&crc.to_le_bytes());
}

/// What reading a segment found wrong.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadDamage {
    /// Damaged regions skipped (torn tail, bad CRC, bad length, undecodable payload).
    pub corrupt: u64,
}

/// Calls `f` with every intact record of a segment's bytes (after the header), skipping damage.
/// Returns `None` if the header is not ours or has another version.
pub fn read_records<'a>(
    buf: &'a [u8],
    mut f: impl FnMut(Record<'a>),
) -> Result<ReadDamage, String> {
    if buf.len() < HEADER_LEN || &buf[..6] != SEGMENT_MAGIC {
        return Err("not a promlet segment (bad magic)".into());
    }
    if buf[6] != FORMAT_VERSION {
        return Err(format!(
            "segment format version {} (this build reads {FORMAT_VERSION})",
            buf[6]
        ));
    }
    let mut damage = ReadDamage::default();
    let mut pos = HEADER_LEN;
    let mut in_damage = false;
    while pos < buf.len() {
        match frame_at(buf, pos) {
            Some((payload, next)) => match postcard::from_bytes::<Record<'a>>(payload) {
                Ok(rec) => {
                    f(rec);
                    pos = next;
                    in_damage = false;
                }
                Err(_) => {
                    damage.corrupt += 1;
                    pos = next;
                    in_damage = false;
                }
            },
            None => {
                if !in_damage {
                    damage.corrupt += 1;
                    in_damage = true;
                }
                pos += 1;
                while pos < buf.len() && buf[pos] != FRAME_MARK {
                    pos += 1;
                }
            }
        }
    }
    Ok(damage)
}

fn frame_at(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let head = buf.get(pos..pos + FRAME_OVERHEAD)?;
    if head[0] != FRAME_MARK {
        return None;
    }
    let len = u32::from_le_bytes(head[1..5].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(head[5..9].try_into().ok()?);
    if len > MAX_RECORD {
        return None;
    }
    let end = pos + FRAME_OVERHEAD + len;
    let payload = buf.get(pos + FRAME_OVERHEAD..end)?;
    (crc32fast::hash(payload) == crc).then_some((payload, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_segment() -> Vec<u8> {
        let mut buf = segment_header().to_vec();
        for i in 0..3u32 {
            write_frame(
                &mut buf,
                &Record::Batch {
                    series: vec![SeriesDef {
                        id: i,
                        labels: vec![("__name__", "up")],
                    }],
                    chunks: vec![ChunkEntry {
                        id: i,
                        start: Start::New(1000),
                        offset: 0,
                        bit_len: 64,
                        sealed: None,
                        bytes: &[1, 2, 3, 4, 5, 6, 7, 8],
                    }],
                },
            );
        }
        buf
    }

    fn ids(buf: &[u8]) -> (Vec<u32>, ReadDamage) {
        let mut ids = Vec::new();
        let d = read_records(buf, |r| match r {
            Record::Batch { series, .. } => ids.push(series[0].id),
            Record::Cut { .. } => {}
        })
        .unwrap();
        (ids, d)
    }

    #[test]
    fn records_roundtrip_through_frames() {
        let (got, d) = ids(&sample_segment());
        assert_eq!(got, vec![0, 1, 2]);
        assert_eq!(d.corrupt, 0);
    }

    #[test]
    fn flipped_byte_skips_only_that_record() {
        let buf = sample_segment();
        let one = (buf.len() - HEADER_LEN) / 3;
        for at in HEADER_LEN..buf.len() {
            let mut b = buf.clone();
            b[at] ^= 0x40;
            let (got, d) = ids(&b);
            let hit = (at - HEADER_LEN) / one;
            let want: Vec<u32> = (0..3).filter(|&i| i != hit as u32).collect();
            assert_eq!(got, want, "flip at {at}");
            assert_eq!(d.corrupt, 1);
        }
    }

    #[test]
    fn torn_tail_is_counted_and_earlier_records_survive() {
        let buf = sample_segment();
        for cut in HEADER_LEN..buf.len() {
            let (got, d) = ids(&buf[..cut]);
            assert!(got.len() <= 3);
            assert!(got.iter().enumerate().all(|(i, &id)| id == i as u32));
            assert!(d.corrupt <= 1);
        }
    }

    #[test]
    fn other_version_is_refused_with_a_reason() {
        let mut buf = sample_segment();
        buf[6] = 9;
        assert!(read_records(&buf, |_| {})
            .unwrap_err()
            .contains("version 9"));
    }
}
