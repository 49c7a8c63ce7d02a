//! gzip (RFC 1952) framing around miniz_oxide's raw DEFLATE, for `Content-Encoding: gzip`.
//!
//! Only compression: promlet never needs to inflate request bodies yet. The CRC-32 is a
//! 1 KiB table built at compile time (crc32fast would add SIMD code we do not need for a
//! once-per-scrape checksum over ~60 KB).

/// Compression level: 1 (fastest). For /metrics text, level 1 already gets ~8x and higher
/// levels cost 2-4x the CPU for a few percent.
pub const LEVEL: u8 = 1;

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE), as gzip's trailer needs.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// A complete gzip member holding `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    gzip_level(data, LEVEL)
}

/// A complete gzip member holding `data`, compressed at `level` (1-10): for bodies compressed
/// once and served many times, where the best ratio is worth the one-off CPU.
pub fn gzip_level(data: &[u8], level: u8) -> Vec<u8> {
    let deflated = miniz_oxide::deflate::compress_to_vec(data, level);
    let mut out = Vec::with_capacity(deflated.len() + 18);
    // Magic, CM=deflate, no flags, no mtime, XFL=4 (fastest), OS=3 (Unix).
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3]);
    out.extend_from_slice(&deflated);
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// True if an `Accept-Encoding` value accepts gzip (q > 0).
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|part| {
        let mut it = part.split(';');
        let coding = it.next().unwrap_or("").trim();
        let q = it
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && q > 0.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn gzip_round_trips_through_miniz_inflate() {
        let text = "node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 1234.5\n".repeat(100);
        let gz = gzip(text.as_bytes());
        assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
        let body = &gz[10..gz.len() - 8];
        let inflated = miniz_oxide::inflate::decompress_to_vec(body).unwrap();
        assert_eq!(inflated, text.as_bytes());
        assert_eq!(
            gz[gz.len() - 8..gz.len() - 4],
            crc32(text.as_bytes()).to_le_bytes()
        );
        assert!(gz.len() < text.len() / 10);
    }

    #[test]
    fn accept_encoding_parsing_honours_q_zero() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("deflate, GZIP;q=0.5"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("identity"));
        assert!(accepts_gzip("*"));
    }
}
