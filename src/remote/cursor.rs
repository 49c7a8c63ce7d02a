//! The durable position of one remote-write queue in the TSDB.
//!
//! Owns: the cursor file format, writing it crash-safely (temp file, fsync, rename) and
//! reading it back. Must not touch: the TSDB, HTTP, when to write (the queue decides).
//!
//! A position is "every sample with t <= `watermark` is sent, except for the listed series,
//! which are sent up to their own timestamp". The queue keeps an exact per-series position in
//! memory and decides which series to list; writing only the watermark plus those keeps the
//! file at 24 bytes + 16 per listed series, so writes cost little flash.
//!
//! ```text
//! "PLRWCUR" (7) | version 1 (1) | watermark i64 LE | n u32 LE | n × (key u64 LE, t i64 LE)
//! | CRC-32 (IEEE) LE of everything before
//! ```
//! Keys are [`series_key`]: FNV-1a 64 over the sorted label pairs, fixed by this format (not
//! the store's in-memory hash, which may change between versions).

use crate::model::Timestamp;
use std::io::Write;
use std::path::Path;

const MAGIC: &[u8; 7] = b"PLRWCUR";
const VERSION: u8 = 1;

/// A decoded cursor file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Position {
    pub watermark: Timestamp,
    /// Series that lag behind the watermark: (key, sent through).
    pub lagging: Vec<(u64, Timestamp)>,
}

/// The stable key of a series in the cursor file.
pub fn series_key<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h ^= u64::from(x);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for (n, v) in pairs {
        eat(n.as_bytes());
        eat(&[0xff]);
        eat(v.as_bytes());
        eat(&[0xfe]);
    }
    h
}

pub fn encode(p: &Position, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&p.watermark.to_le_bytes());
    out.extend_from_slice(&(p.lagging.len() as u32).to_le_bytes());
    for &(k, t) in &p.lagging {
        out.extend_from_slice(&k.to_le_bytes());
        out.extend_from_slice(&t.to_le_bytes());
    }
    let crc = crc32fast::hash(out);
    out.extend_from_slice(&crc.to_le_bytes());
}

pub fn decode(b: &[u8]) -> Result<Position, String> {
    if b.len() < 24 || &b[..7] != MAGIC {
        return Err("not a promlet remote-write cursor".into());
    }
    if b[7] != VERSION {
        return Err(format!("unknown cursor version {}", b[7]));
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err("checksum mismatch".into());
    }
    let i64_at = |i: usize| i64::from_le_bytes(body[i..i + 8].try_into().unwrap_or([0; 8]));
    let n = u32::from_le_bytes([body[16], body[17], body[18], body[19]]) as usize;
    if body.len() != 20 + n.saturating_mul(16) {
        return Err("length does not match the entry count".into());
    }
    let lagging = (0..n)
        .map(|k| {
            let at = 20 + k * 16;
            (i64_at(at) as u64, i64_at(at + 8))
        })
        .collect();
    Ok(Position {
        watermark: i64_at(8),
        lagging,
    })
}

/// Reads the cursor at `path`: Ok(None) if there is none.
pub fn load(path: &Path) -> Result<Option<Position>, String> {
    match std::fs::read(path) {
        Ok(b) => decode(&b).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new file: a temp
/// file beside it, fsync, rename over, fsync of the directory.
pub fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // Makes the rename durable; failure here only risks the previous cursor (duplicates).
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_any_flipped_bit() {
        let p = Position {
            watermark: 1_700_000_000_000,
            lagging: vec![(1, -5), (u64::MAX, 42)],
        };
        let mut b = Vec::new();
        encode(&p, &mut b);
        assert_eq!(b.len(), 7 + 1 + 8 + 4 + 2 * 16 + 4);
        assert_eq!(decode(&b).unwrap(), p);
        for i in 0..b.len() {
            for bit in 0..8 {
                let mut c = b.clone();
                c[i] ^= 1 << bit;
                assert!(decode(&c).is_err(), "byte {i} bit {bit}");
            }
        }
        for n in 0..b.len() {
            assert!(decode(&b[..n]).is_err());
        }
    }

    #[test]
    fn store_replaces_the_file_and_load_reads_it_back() {
        let dir = std::env::temp_dir().join(format!("promlet-cursor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("q.cursor");
        assert_eq!(load(&path).unwrap(), None);
        let mut b = Vec::new();
        for w in [1, 2] {
            let p = Position {
                watermark: w,
                lagging: vec![],
            };
            encode(&p, &mut b);
            store(&path, &b).unwrap();
            assert_eq!(load(&path).unwrap(), Some(p));
        }
        assert!(!path.with_extension("tmp").exists());
        std::fs::write(&path, b"junk").unwrap();
        assert!(load(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn series_key_is_fixed_fnv1a() {
        // Pinned: changing it would make every stored cursor miss (and resend the ring).
        assert_eq!(series_key([].into_iter()), 0xcbf2_9ce4_8422_2325);
        let a = series_key([("__name__", "up"), ("job", "a")].into_iter());
        let b = series_key([("__name__", "up"), ("job", "b")].into_iter());
        assert_ne!(a, b);
        assert_eq!(
            a,
            series_key([("__name__", "up"), ("job", "a")].into_iter())
        );
    }
}
