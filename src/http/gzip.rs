//! gzip (RFC 1952) framing around our own raw DEFLATE ([`super::deflate`]), for
//! `Content-Encoding: gzip`.
//!
//! Only compression: the scrape client inflates targets' bodies with miniz_oxide.

use super::deflate::Deflater;

/// CRC-32 (IEEE), as gzip's trailer needs (crc32fast: already in the tree for the store and
/// the notify queue; its folded CRC is ~8x faster than a byte table over a 60 KB body).
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

thread_local! {
    /// The compressor state reused between calls (all callers are on the work thread): its
    /// hash table and token buffer (80 KiB) are allocated once, not per scrape (a fresh
    /// compressor per call was measured to cost more CPU than compressing, see `agent.rs`).
    static DEFLATER: std::cell::RefCell<Option<Deflater>> = const { std::cell::RefCell::new(None) };
}

/// A complete gzip member holding `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    const HEADER: usize = 10;
    let mut out = Vec::with_capacity(HEADER + data.len() / 4 + 64);
    // Magic, CM=deflate, no flags, no mtime, XFL=4 (fastest), OS=3 (Unix).
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3]);
    DEFLATER.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(Deflater::new)
            .compress(data, &mut out)
    });
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
    fn a_reused_compressor_round_trips_across_sizes() {
        let big = "node_network_info{device=\"eth0\"} 1\n".repeat(5000);
        for text in [&big[..], "", &big[..100], &big[..]] {
            let gz = gzip(text.as_bytes());
            let inflated = miniz_oxide::inflate::decompress_to_vec(&gz[10..gz.len() - 8]).unwrap();
            assert_eq!(inflated, text.as_bytes(), "{} bytes", text.len());
        }
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
