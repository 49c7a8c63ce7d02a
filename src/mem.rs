//! Word-at-a-time `memcmp` and `bcmp` for the static musl builds.
//!
//! Owns: those two C symbols, on musl targets only, and the comparisons behind them. Must not
//! touch: anything else (no allocation, no I/O; they run inside every slice comparison).
//!
//! Why: the release binaries are linked by zig, whose compiler_rt supplies the C string
//! routines, and its `memcmp` and `bcmp` compare one byte per loop iteration. Rust calls `bcmp`
//! for every `==` on strings and slices of unknown length (field names, paths, label values)
//! and `memcmp` for every ordering: 2.6 % of a `/metrics` scrape's CPU went to those two loops.
//! compiler_rt's definitions are weak, so these strong ones replace them at link time. glibc
//! builds (tests on the host) keep glibc's vectorised routines: the exports are musl-only, the
//! comparisons themselves are tested everywhere.

/// The 8 bytes at `p` as a big-endian word: comparing two such words orders them as their
/// bytes compare lexicographically.
///
/// # Safety
/// `p..p + 8` must be readable.
#[inline(always)]
unsafe fn word_be(p: *const u8) -> u64 {
    u64::from_be_bytes(p.cast::<[u8; 8]>().read_unaligned())
}

/// `memcmp(3)`: the sign of the first differing byte pair (as unsigned bytes), 0 if none.
///
/// # Safety
/// `a..a + n` and `b..b + n` must be readable.
#[inline(always)]
pub unsafe fn compare(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i + 8 <= n {
        let (x, y) = (word_be(a.add(i)), word_be(b.add(i)));
        if x != y {
            return if x < y { -1 } else { 1 };
        }
        i += 8;
    }
    while i < n {
        let (x, y) = (*a.add(i), *b.add(i));
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// `bcmp(3)`: 0 if the `n` bytes are equal, 1 otherwise.
///
/// # Safety
/// `a..a + n` and `b..b + n` must be readable.
#[inline(always)]
pub unsafe fn differ(a: *const u8, b: *const u8, n: usize) -> i32 {
    if n >= 8 {
        let mut i = 0;
        while i + 8 < n {
            if word_be(a.add(i)) != word_be(b.add(i)) {
                return 1;
            }
            i += 8;
        }
        // The last word may overlap the one before: every byte is still compared.
        return i32::from(word_be(a.add(n - 8)) != word_be(b.add(n - 8)));
    }
    let mut i = 0;
    while i < n {
        if *a.add(i) != *b.add(i) {
            return 1;
        }
        i += 1;
    }
    0
}

/// The C `memcmp` symbol of the static build.
///
/// # Safety
/// As `memcmp(3)`: both ranges readable.
#[cfg(target_env = "musl")]
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    compare(a, b, n)
}

/// The C `bcmp` symbol of the static build.
///
/// # Safety
/// As `bcmp(3)`: both ranges readable.
#[cfg(target_env = "musl")]
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    differ(a, b, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &[u8], b: &[u8]) -> i32 {
        assert_eq!(a.len(), b.len());
        // SAFETY: both slices hold `a.len()` bytes.
        unsafe { compare(a.as_ptr(), b.as_ptr(), a.len()) }
    }

    fn ne(a: &[u8], b: &[u8]) -> i32 {
        // SAFETY: both slices hold `a.len()` bytes.
        unsafe { differ(a.as_ptr(), b.as_ptr(), a.len()) }
    }

    #[test]
    fn compare_and_differ_agree_with_slice_order_at_every_length_and_position() {
        let base: Vec<u8> = (0..40u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(3))
            .collect();
        for n in 0..=base.len() {
            let a = &base[..n];
            assert_eq!(cmp(a, a), 0, "n {n}");
            assert_eq!(ne(a, a), 0, "n {n}");
            for at in 0..n {
                for delta in [1u8, 0x80, 0xff] {
                    let mut b = a.to_vec();
                    b[at] = b[at].wrapping_add(delta);
                    let want = a.cmp(&b[..]) as i32;
                    assert_eq!(cmp(a, &b).signum(), want, "n {n} at {at} delta {delta}");
                    assert_eq!(cmp(&b, a).signum(), -want, "n {n} at {at} delta {delta}");
                    assert_eq!(ne(a, &b), 1, "n {n} at {at}");
                    assert_eq!(ne(&b, a), 1, "n {n} at {at}");
                }
            }
        }
    }

    #[test]
    fn compare_orders_bytes_as_unsigned() {
        assert!(cmp(b"a\x80", b"a\x7f") > 0);
        assert!(cmp(b"abcdefgh\x00", b"abcdefgh\xff") < 0);
        assert!(cmp(b"\xffbcdefgh", b"\x00bcdefgh") > 0);
        assert_eq!(
            cmp(b"\x05", b"\x03"),
            2,
            "memcmp's byte difference below a word"
        );
    }

    #[test]
    fn unaligned_ranges_compare_like_aligned_ones() {
        let buf: Vec<u8> = b"node_network_receive_bytes_total{device=\"eth0\"}".repeat(2);
        let half = buf.len() / 2;
        for off in 0..8 {
            let n = half - off;
            assert_eq!(cmp(&buf[off..off + n], &buf[half + off..half + off + n]), 0);
            assert_eq!(ne(&buf[off..off + n], &buf[half + off..half + off + n]), 0);
            assert_ne!(ne(&buf[off..off + n], &buf[off + 1..off + 1 + n]), 0);
        }
    }
}
