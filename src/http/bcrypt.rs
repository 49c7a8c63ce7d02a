//! bcrypt password verification (`$2a$`, `$2b$`, `$2y$`), for `basic_auth_users` in the web
//! config file.
//!
//! Owns: Blowfish with the "expensive key schedule" (Provos and Mazières, 1999), bcrypt's
//! base64 alphabet, parsing a hash string and comparing in constant time.
//! Must not touch: caching (a check costs ~70 ms at cost 10 by design; the web config layer
//! caches successes) or hashing new passwords (users make hashes with `htpasswd -B` and the like).
//!
//! Written here rather than taken from the `bcrypt` crate: it is ~200 lines plus pi's digits as
//! data (src/http/blowfish_pi.rs), with no dependency (the crate pulls base64, blowfish, cipher,
//! zeroize and getrandom for hashing we do not do).
//!
//! `$2a$` and `$2y$` are verified as `$2b$`: the password plus its NUL terminator, cut at 72
//! bytes, which is what OpenBSD, Go's x/crypto/bcrypt and libxcrypt do for passwords under
//! 256 bytes. The buggy `$2x$` is refused.

use super::blowfish_pi;

/// The 64 characters of bcrypt's base64 (not RFC 4648's order), no padding.
const ALPHABET: &[u8; 64] = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// The text bcrypt encrypts 64 times with the password-derived key: six 32-bit words.
const MAGIC: &[u8; 24] = b"OrpheanBeholderScryDoubt";
/// Costs outside this range are refused: below 4 is not bcrypt, above 31 overflows, and a
/// hash above [`MAX_COST`] would let a config file stall the one work thread for minutes.
pub const MIN_COST: u32 = 4;
pub const MAX_COST: u32 = 16;

/// A parsed hash string: `$2b$10$` + 22 characters of salt + 31 of hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hash {
    pub cost: u32,
    salt: [u8; 16],
    /// The first 23 bytes of the encrypted magic text (the 24th is not stored by bcrypt).
    digest: [u8; 23],
}

impl Hash {
    /// Parses `$2a$`/`$2b$`/`$2y$` hashes; the error says what is wrong.
    pub fn parse(s: &str) -> Result<Hash, String> {
        let b = s.as_bytes();
        if b.len() != 60 {
            return Err(format!(
                "bcrypt hash must be 60 characters ($2b$NN$ + 53), got {}",
                b.len()
            ));
        }
        if !(b.starts_with(b"$2a$") || b.starts_with(b"$2b$") || b.starts_with(b"$2y$")) {
            return Err("not a bcrypt hash: expected $2a$, $2b$ or $2y$".into());
        }
        if b[6] != b'$' || !b[4].is_ascii_digit() || !b[5].is_ascii_digit() {
            return Err("bcrypt hash: expected a two-digit cost after the version".into());
        }
        let cost = u32::from(b[4] - b'0') * 10 + u32::from(b[5] - b'0');
        if !(MIN_COST..=MAX_COST).contains(&cost) {
            return Err(format!(
                "bcrypt cost {cost} is outside {MIN_COST}..={MAX_COST} (each step doubles the \
                 time of a check; 10 takes ~70 ms)"
            ));
        }
        let mut salt = [0u8; 16];
        decode_base64(&b[7..29], &mut salt).ok_or("bcrypt hash: invalid salt characters")?;
        let mut digest = [0u8; 23];
        decode_base64(&b[29..], &mut digest).ok_or("bcrypt hash: invalid hash characters")?;
        Ok(Hash { cost, salt, digest })
    }

    /// True if `password` hashes to this hash. Takes 2^cost key schedules; compares in
    /// constant time.
    pub fn verify(&self, password: &[u8]) -> bool {
        let got = digest(self.cost, &self.salt, password);
        constant_time_eq(&got[..23], &self.digest)
    }
}

/// `a == b` without an early exit, so timing does not tell how many bytes matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold back into an early-exit compare.
    std::hint::black_box(diff) == 0
}

/// Blowfish state: the P-array and four S-boxes.
struct Blowfish {
    p: [u32; 18],
    s: [[u32; 256]; 4],
}

/// Reads the next big-endian word from `data`, wrapping around at its end (Blowfish's
/// `stream2word`).
fn next_word(data: &[u8], at: &mut usize) -> u32 {
    let mut w = 0u32;
    for _ in 0..4 {
        w = (w << 8) | u32::from(data[*at]);
        *at = (*at + 1) % data.len();
    }
    w
}

impl Blowfish {
    fn initial() -> Blowfish {
        Blowfish {
            p: blowfish_pi::P,
            s: blowfish_pi::S,
        }
    }

    #[inline(always)]
    fn f(&self, x: u32) -> u32 {
        let [a, b, c, d] = x.to_be_bytes();
        (self.s[0][a as usize].wrapping_add(self.s[1][b as usize]) ^ self.s[2][c as usize])
            .wrapping_add(self.s[3][d as usize])
    }

    #[inline(always)]
    fn encrypt(&self, mut l: u32, mut r: u32) -> (u32, u32) {
        l ^= self.p[0];
        for i in (1..17).step_by(2) {
            r ^= self.f(l) ^ self.p[i];
            l ^= self.f(r) ^ self.p[i + 1];
        }
        (r ^ self.p[17], l)
    }

    /// XORs the 18 key words into the P-array (Blowfish's `expandstate` first half).
    fn mix_key(&mut self, key: &[u32; 18]) {
        for (p, k) in self.p.iter_mut().zip(key) {
            *p ^= k;
        }
    }

    /// Replaces P and S with successive encryptions of a running block, each first XORed
    /// with the next 64 bits of the salt (`expandstate`'s second half).
    fn rekey_salted(&mut self, salt: &[u32; 4]) {
        let (mut l, mut r) = (0u32, 0u32);
        let mut j = 0;
        for i in (0..18).step_by(2) {
            (l, r) = self.encrypt(l ^ salt[j], r ^ salt[j + 1]);
            j ^= 2;
            self.p[i] = l;
            self.p[i + 1] = r;
        }
        for b in 0..4 {
            for i in (0..256).step_by(2) {
                (l, r) = self.encrypt(l ^ salt[j], r ^ salt[j + 1]);
                j ^= 2;
                self.s[b][i] = l;
                self.s[b][i + 1] = r;
            }
        }
    }

    /// The unsalted rekeying (`expand0state`'s second half): the hot loop of bcrypt,
    /// 2 × 2^cost × 521 encryptions.
    fn rekey(&mut self) {
        let (mut l, mut r) = (0u32, 0u32);
        for i in (0..18).step_by(2) {
            (l, r) = self.encrypt(l, r);
            self.p[i] = l;
            self.p[i + 1] = r;
        }
        for b in 0..4 {
            for i in (0..256).step_by(2) {
                (l, r) = self.encrypt(l, r);
                self.s[b][i] = l;
                self.s[b][i + 1] = r;
            }
        }
    }
}

/// The first 18 words of `data` repeated cyclically (Blowfish's `stream2word` over a key).
fn key_words(data: &[u8]) -> [u32; 18] {
    let mut at = 0;
    let mut out = [0u32; 18];
    for w in out.iter_mut() {
        *w = next_word(data, &mut at);
    }
    out
}

/// bcrypt's raw output: the magic text encrypted 64 times under the eksblowfish state.
fn digest(cost: u32, salt: &[u8; 16], password: &[u8]) -> [u8; 24] {
    // The key is the password with its C string terminator, cut at 72 bytes.
    let mut key = [0u8; 73];
    let n = password.len().min(72);
    key[..n].copy_from_slice(&password[..n]);
    let key = key_words(&key[..(n + 1).min(72)]);
    let salt_key = key_words(salt);
    let salt_words = [salt_key[0], salt_key[1], salt_key[2], salt_key[3]];

    let mut bf = Blowfish::initial();
    bf.mix_key(&key);
    bf.rekey_salted(&salt_words);
    for _ in 0..(1u64 << cost) {
        bf.mix_key(&key);
        bf.rekey();
        bf.mix_key(&salt_key);
        bf.rekey();
    }
    let mut words = [0u32; 6];
    let mut at = 0;
    for w in words.iter_mut() {
        *w = next_word(MAGIC, &mut at);
    }
    for _ in 0..64 {
        for pair in words.chunks_exact_mut(2) {
            (pair[0], pair[1]) = bf.encrypt(pair[0], pair[1]);
        }
    }
    let mut out = [0u8; 24];
    for (o, w) in out.chunks_exact_mut(4).zip(words) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

/// Decodes bcrypt base64 into exactly `out.len()` bytes; None on a character outside the
/// alphabet. Trailing bits beyond `out` are ignored (as every implementation does for the salt).
fn decode_base64(text: &[u8], out: &mut [u8]) -> Option<()> {
    let mut acc = 0u32;
    let mut bits = 0;
    let mut n = 0;
    for &c in text {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            if n < out.len() {
                out[n] = (acc >> bits) as u8;
                n += 1;
            }
        }
    }
    (n == out.len()).then_some(())
}

#[cfg(test)]
fn encode_base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors: the first is from OpenBSD's regression tests (also in John the Ripper's);
    /// the others were made with glibc/libxcrypt's crypt(3) on this machine (Python's
    /// `crypt.crypt`), covering the empty password, `$2y$`, a password over 72 bytes (cut)
    /// and UTF-8 bytes.
    const VECTORS: &[(&str, &str)] = &[
        (
            "U*U",
            "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
        ),
        (
            "",
            "$2b$04$abcdefghijklmnopqrstuubyCG3zY1GIXMyxfivm.ClDiInHzxjiq",
        ),
        (
            "password",
            "$2y$10$saltsaltsaltsaltsaltsu2fE6IJ7L1HhjdQmAKB.R6F1r9A9qZ9e",
        ),
        (
            "été",
            "$2b$06$zzzzzzzzzzzzzzzzzzzzzuRR2StVVkUyUmqX.KLuemMbv6kok3EEC",
        ),
    ];

    #[test]
    fn blowfish_tables_are_pis_digits_at_both_ends() {
        assert_eq!(blowfish_pi::P[0], 0x243f6a88);
        assert_eq!(blowfish_pi::P[17], 0x8979fb1b);
        assert_eq!(blowfish_pi::S[0][0], 0xd1310ba6);
        assert_eq!(blowfish_pi::S[3][255], 0x3ac372e6);
    }

    #[test]
    fn blowfish_encrypts_the_schneier_test_vector() {
        // Eric Young's Blowfish test set: key 00..00, plaintext 00..00 -> 4EF997456198DD78.
        let mut bf = Blowfish::initial();
        let key = [0u8; 8];
        let mut k = 0;
        for p in bf.p.iter_mut() {
            *p ^= next_word(&key, &mut k);
        }
        let (mut l, mut r) = (0, 0);
        for i in (0..18).step_by(2) {
            (l, r) = bf.encrypt(l, r);
            bf.p[i] = l;
            bf.p[i + 1] = r;
        }
        for b in 0..4 {
            for i in (0..256).step_by(2) {
                (l, r) = bf.encrypt(l, r);
                bf.s[b][i] = l;
                bf.s[b][i + 1] = r;
            }
        }
        assert_eq!(bf.encrypt(0, 0), (0x4ef99745, 0x6198dd78));
    }

    #[test]
    fn known_hashes_verify_and_other_passwords_do_not() {
        for (pw, h) in VECTORS {
            let hash = Hash::parse(h).unwrap();
            assert!(hash.verify(pw.as_bytes()), "{pw:?} {h}");
            assert!(!hash.verify(format!("{pw}x").as_bytes()), "{pw:?}x");
            // The digest re-encodes to the stored text.
            let d = digest(hash.cost, &hash.salt, pw.as_bytes());
            assert_eq!(encode_base64(&d[..23]), h[29..]);
        }
    }

    #[test]
    fn passwords_are_cut_at_72_bytes() {
        let h =
            Hash::parse("$2b$05$0123456789./ABCDEFGHI.U/8lxp/odNZ4kOX7bU9GBYCyvvUBcCu").unwrap();
        assert!(h.verify("x".repeat(80).as_bytes()));
        assert!(h.verify("x".repeat(72).as_bytes()));
        assert!(!h.verify("x".repeat(71).as_bytes()));
    }

    #[test]
    fn malformed_hashes_are_refused_with_a_reason() {
        let ok = "$2b$04$abcdefghijklmnopqrstuubyCG3zY1GIXMyxfivm.ClDiInHzxjiq";
        assert!(Hash::parse(&ok[..59])
            .unwrap_err()
            .contains("60 characters"));
        assert!(Hash::parse(&ok.replace("$2b$", "$2x$"))
            .unwrap_err()
            .contains("$2b$"));
        assert!(Hash::parse(&ok.replace("$04$", "$32$"))
            .unwrap_err()
            .contains("cost 32"));
        assert!(Hash::parse(&ok.replace("$04$", "$0a$"))
            .unwrap_err()
            .contains("two-digit"));
        assert!(Hash::parse(&ok.replace("abc", "ab!"))
            .unwrap_err()
            .contains("salt"));
        assert!(Hash::parse("plaintext").is_err());
    }

    #[test]
    fn constant_time_eq_compares_whole_slices() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
