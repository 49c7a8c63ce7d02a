//! Snappy block format (not the framed stream format), as remote-write 1.0 requires.
//!
//! Owns: [`compress`] and [`decompress`] of whole buffers. Must not touch: HTTP, protobuf.
//!
//! Format (github.com/google/snappy, format_description.txt): a varint of the uncompressed
//! length, then elements tagged by their low two bits: 00 literal (length-1 in the upper six
//! bits, or 60..63 meaning 1..4 little-endian length bytes follow), 01 copy with a 3-bit
//! length-4 and an 11-bit offset, 10 copy with length-1 in six bits and a 2-byte offset,
//! 11 the same with a 4-byte offset. Copies may overlap their output (run-length).
//!
//! The compressor is a greedy single-pass matcher over a 4-byte hash table (4096 entries,
//! offsets up to 65535), which is what the reference does per 64 KiB block. It is small,
//! allocates nothing besides its output, and on remote-write bodies (repeated label bytes)
//! lands near the reference's ratio; any valid decoder (Prometheus's) reads its output.

/// The hash table size (entries of u16 positions relative to the current block).
const TABLE_BITS: u32 = 12;
/// Blocks are compressed independently, as the reference does, so offsets fit 16 bits.
const BLOCK: usize = 1 << 16;

/// Decompression limit: remote-write bodies are bounded far below this.
pub const MAX_DECODED: usize = 64 << 20;

/// Appends the compressed form of `src` to `out`.
pub fn compress(src: &[u8], out: &mut Vec<u8>) {
    put_varint(out, src.len() as u64);
    let mut table = [0u16; 1 << TABLE_BITS];
    for block in src.chunks(BLOCK) {
        table.fill(0);
        compress_block(block, &mut table, out);
    }
}

fn hash(x: u32) -> usize {
    (x.wrapping_mul(0x1e35_a7bd) >> (32 - TABLE_BITS)) as usize
}

fn load32(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn compress_block(src: &[u8], table: &mut [u16], out: &mut Vec<u8>) {
    let n = src.len();
    let mut lit_start = 0;
    let mut i = 0;
    // Positions are stored +1 so 0 means "empty".
    while i + 4 <= n {
        let cur = load32(src, i);
        let h = hash(cur);
        let cand = table[h] as usize;
        table[h] = (i + 1) as u16;
        if cand > 0 && load32(src, cand - 1) == cur {
            let m = cand - 1;
            let mut len = 4;
            while i + len < n && src[m + len] == src[i + len] {
                len += 1;
            }
            emit_literal(&src[lit_start..i], out);
            emit_copy(i - m, len, out);
            i += len;
            lit_start = i;
            continue;
        }
        i += 1;
    }
    emit_literal(&src[lit_start..], out);
}

fn emit_literal(lit: &[u8], out: &mut Vec<u8>) {
    if lit.is_empty() {
        return;
    }
    let n = lit.len() - 1;
    if n < 60 {
        out.push((n as u8) << 2);
    } else {
        let bytes = (n.ilog2() / 8 + 1) as usize; // 1..=4
        out.push(((59 + bytes) as u8) << 2);
        out.extend_from_slice(&(n as u32).to_le_bytes()[..bytes]);
    }
    out.extend_from_slice(lit);
}

fn emit_copy(offset: usize, mut len: usize, out: &mut Vec<u8>) {
    // Long matches go out as 64-byte copies, keeping the tail at least 4 bytes.
    while len >= 68 {
        push_copy2(offset, 64, out);
        len -= 64;
    }
    if len > 64 {
        push_copy2(offset, 60, out);
        len -= 60;
    }
    if len < 12 && offset < 2048 {
        out.push((((offset >> 8) as u8) << 5) | (((len - 4) as u8) << 2) | 0b01);
        out.push(offset as u8);
    } else {
        push_copy2(offset, len, out);
    }
}

fn push_copy2(offset: usize, len: usize, out: &mut Vec<u8>) {
    out.push((((len - 1) as u8) << 2) | 0b10);
    out.extend_from_slice(&(offset as u16).to_le_bytes());
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The decoded length announced by a compressed buffer's preamble.
pub fn decoded_len(src: &[u8]) -> Result<usize, String> {
    let mut v: u64 = 0;
    for (i, &b) in src.iter().enumerate().take(5) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return usize::try_from(v).map_err(|_| "snappy: length too large".to_string());
        }
    }
    Err("snappy: bad length preamble".into())
}

/// Decodes `src` into `out` (cleared first). Every malformed input is an error, never a
/// panic; the declared length is capped at [`MAX_DECODED`].
pub fn decompress(src: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    let want = decoded_len(src)?;
    if want > MAX_DECODED {
        return Err(format!("snappy: decoded length {want} over the limit"));
    }
    let mut i = src
        .iter()
        .position(|&b| b < 0x80)
        .map_or(src.len(), |p| p + 1);
    out.reserve(want);
    let bad = |what: &str, at: usize| Err(format!("snappy: {what} at byte {at}"));
    while i < src.len() {
        let tag = src[i];
        i += 1;
        let (offset, len) = match tag & 3 {
            0 => {
                let mut len = (tag >> 2) as usize;
                if len >= 60 {
                    let extra = len - 59;
                    let Some(b) = src.get(i..i + extra) else {
                        return bad("truncated literal length", i);
                    };
                    let mut le = [0u8; 4];
                    le[..extra].copy_from_slice(b);
                    len = u32::from_le_bytes(le) as usize;
                    i += extra;
                }
                let len = len + 1;
                let Some(lit) = src.get(i..i.saturating_add(len)) else {
                    return bad("truncated literal", i);
                };
                if out.len() + len > want {
                    return bad("output longer than declared", i);
                }
                out.extend_from_slice(lit);
                i += len;
                continue;
            }
            1 => {
                let Some(&b) = src.get(i) else {
                    return bad("truncated copy", i);
                };
                i += 1;
                (
                    (((tag >> 5) as usize) << 8) | b as usize,
                    ((tag >> 2) & 7) as usize + 4,
                )
            }
            2 => {
                let Some(b) = src.get(i..i + 2) else {
                    return bad("truncated copy", i);
                };
                i += 2;
                (
                    u16::from_le_bytes([b[0], b[1]]) as usize,
                    (tag >> 2) as usize + 1,
                )
            }
            _ => {
                let Some(b) = src.get(i..i + 4) else {
                    return bad("truncated copy", i);
                };
                i += 4;
                (
                    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize,
                    (tag >> 2) as usize + 1,
                )
            }
        };
        if offset == 0 || offset > out.len() {
            return bad("copy offset out of range", i);
        }
        if out.len() + len > want {
            return bad("output longer than declared", i);
        }
        let start = out.len() - offset;
        for k in 0..len {
            let b = out[start + k];
            out.push(b);
        }
    }
    if out.len() != want {
        return Err(format!(
            "snappy: decoded {} bytes, preamble said {want}",
            out.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(data: &[u8]) -> Vec<u8> {
        let mut c = Vec::new();
        compress(data, &mut c);
        let mut d = Vec::new();
        decompress(&c, &mut d).unwrap();
        assert_eq!(d, data);
        c
    }

    #[test]
    fn round_trips_empty_short_repetitive_random_and_multi_block_inputs() {
        round_trip(b"");
        round_trip(b"a");
        round_trip(b"abcd");
        let rep = round_trip(&[b'x'; 10_000]);
        assert!(rep.len() < 500, "{}", rep.len()); // 64-byte copies, 3 bytes each
        let mut rng = fastrand::Rng::with_seed(7);
        let random: Vec<u8> = (0..200_000).map(|_| rng.u8(..)).collect();
        round_trip(&random);
        let text: Vec<u8> = (0..300_000u32)
            .flat_map(|i| format!("node_cpu_seconds_total{{cpu=\"{}\"}} ", i % 7).into_bytes())
            .collect();
        let c = round_trip(&text);
        assert!(c.len() * 10 < text.len(), "{} of {}", c.len(), text.len());
    }

    #[test]
    fn decodes_known_vectors_from_the_format_description() {
        // "Hello" as one literal: preamble 5, tag (5-1)<<2.
        let mut d = Vec::new();
        decompress(&[5, 4 << 2, b'H', b'e', b'l', b'l', b'o'], &mut d).unwrap();
        assert_eq!(d, b"Hello");
        // "abababab": literal "ab", then a 1-byte-offset copy of length 6 at offset 2
        // (overlapping: run-length).
        decompress(&[8, 1 << 2, b'a', b'b', ((6 - 4) << 2) | 1, 2], &mut d).unwrap();
        assert_eq!(d, b"abababab");
        // The same with a 2-byte-offset copy and a 4-byte-offset copy.
        decompress(&[8, 1 << 2, b'a', b'b', (5 << 2) | 2, 2, 0], &mut d).unwrap();
        assert_eq!(d, b"abababab");
        decompress(&[8, 1 << 2, b'a', b'b', (5 << 2) | 3, 2, 0, 0, 0], &mut d).unwrap();
        assert_eq!(d, b"abababab");
        // A literal with a 1-byte length (61 bytes).
        let mut src = vec![61, 60 << 2, 60];
        src.extend_from_slice(&[b'z'; 61]);
        decompress(&src, &mut d).unwrap();
        assert_eq!(d, vec![b'z'; 61]);
    }

    #[test]
    fn compressor_emits_the_expected_bytes_for_a_small_input() {
        let mut c = Vec::new();
        compress(b"abcdabcdabcd", &mut c);
        // Preamble 12, literal "abcd", copy offset 4 length 8 (1-byte-offset form).
        assert_eq!(
            c,
            vec![12, 3 << 2, b'a', b'b', b'c', b'd', ((8 - 4) << 2) | 1, 4]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut d = Vec::new();
        let mut rng = fastrand::Rng::with_seed(3);
        for n in 0..5000 {
            let len = rng.usize(0..64);
            let mut g: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            if n % 2 == 0 && !g.is_empty() {
                g[0] = rng.u8(0..100); // plausible preamble
            }
            let _ = decompress(&g, &mut d);
        }
        for bad in [
            &[][..],
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80],
            &[4, 1, 0],
            &[4, 0b01, 0],
            &[2, 0, b'a', 1, 9],
            &[0xff, 0xff, 0xff, 0xff, 0x0f],
            &[1, 0, b'a', 0, b'b'],
        ] {
            assert!(decompress(bad, &mut d).is_err(), "{bad:?}");
        }
    }
}
