//! gzip (RFC 1952) framing around miniz_oxide's raw DEFLATE, for `Content-Encoding: gzip`.
//!
//! Only compression: promlet never needs to inflate request bodies yet.

use miniz_oxide::deflate::core::{
    compress, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush, TDEFLStatus,
};
use miniz_oxide::DataFormat;

/// Compression level: 1 (fastest). For /metrics text, level 1 already gets ~8x and higher
/// levels cost 2-4x the CPU for a few percent.
pub const LEVEL: u8 = 1;

/// CRC-32 (IEEE), as gzip's trailer needs (crc32fast: already in the tree for the store and
/// the notify queue; its folded CRC is ~8x faster than a byte table over a 60 KB body).
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// A complete gzip member holding `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    gzip_level(data, LEVEL)
}

thread_local! {
    /// The DEFLATE state reused between calls (all callers are on the work thread). Why: a new
    /// compressor is ~300 KB of tables, and allocating, zeroing and page-faulting them on every
    /// scrape cost more CPU than the compression itself (measured, gzipped minus plain
    /// /metrics scrape of 61 KB: 0.75 ms -> ~0.15 ms of CPU). Kept resident: that many bytes
    /// of RSS, once.
    static COMPRESSOR: std::cell::RefCell<Option<(u8, Box<CompressorOxide>)>> =
        const { std::cell::RefCell::new(None) };
}

/// A complete gzip member holding `data`, compressed at `level` (1-10): for bodies compressed
/// once and served many times, where the best ratio is worth the one-off CPU.
pub fn gzip_level(data: &[u8], level: u8) -> Vec<u8> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let d = match slot.as_mut() {
            Some((l, d)) => {
                d.reset();
                if *l != level {
                    d.set_format_and_level(DataFormat::Raw, level);
                    *l = level;
                }
                d
            }
            None => {
                let flags = create_comp_flags_from_zip_params(level.into(), 0, 0);
                &mut slot
                    .insert((level, Box::new(CompressorOxide::new(flags))))
                    .1
            }
        };
        gzip_with(d, data)
    })
}

/// Header, raw DEFLATE of `data` straight into the output buffer, trailer.
fn gzip_with(d: &mut CompressorOxide, data: &[u8]) -> Vec<u8> {
    const HEADER: usize = 10;
    let mut out = Vec::with_capacity(HEADER + data.len() / 4 + 64);
    // Magic, CM=deflate, no flags, no mtime, XFL=4 (fastest), OS=3 (Unix).
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3]);
    out.resize(out.capacity(), 0);
    let (mut pos, mut input) = (HEADER, data);
    loop {
        let (status, used, written) = compress(d, input, &mut out[pos..], TDEFLFlush::Finish);
        pos += written;
        input = &input[used..];
        match status {
            TDEFLStatus::Done => break,
            TDEFLStatus::Okay => {
                if out.len() - pos < 64 {
                    out.resize(out.len() * 2, 0);
                }
            }
            // Only reachable through a bug in the compressor: an empty body is still valid
            // HTTP, and the client's gzip check reports it.
            _ => break,
        }
    }
    out.truncate(pos);
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
    fn a_reused_compressor_round_trips_across_levels_and_sizes() {
        let big = "node_network_info{device=\"eth0\"} 1\n".repeat(5000);
        for (text, level) in [(&big[..], 1), ("", 6), (&big[..100], 6), (&big[..], 1)] {
            let gz = gzip_level(text.as_bytes(), level);
            let inflated = miniz_oxide::inflate::decompress_to_vec(&gz[10..gz.len() - 8]).unwrap();
            assert_eq!(
                inflated,
                text.as_bytes(),
                "level {level}, {} bytes",
                text.len()
            );
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
