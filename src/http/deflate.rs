//! A DEFLATE (RFC 1951) compressor written for what promlet serves: Prometheus text and
//! OpenMetrics expositions and JSON API bodies, i.e. highly repetitive ASCII.
//!
//! Owns: LZ77 match finding, Huffman code construction and the block bit stream. Must not
//! touch: framing (gzip's header and trailer are [`super::gzip`]'s) or decompression (the
//! scrape client inflates with miniz_oxide).
//!
//! How: greedy LZ77 with one hash table of 4-byte prefixes (no chains: the newest position per
//! bucket is the only candidate), matches of 4..=258 bytes at distances up to 32 KiB. Of the
//! positions inside a match only the last two are inserted into the table (measured on /metrics
//! text: 2.4% smaller output at no measurable cost; inserting them all gives 5% smaller output
//! for 1.9x the time). The matching loop counts symbols as it goes and stores each token with
//! its symbols already resolved, so writing a token is two table loads and no branch (see
//! [`literal_token`]). Blocks end after [`BLOCK_TOKENS`] tokens;
//! each block is written as whichever of dynamic Huffman, fixed Huffman or stored is smallest,
//! computed exactly from the block's symbol histogram (cheap next to the matching). Why our own
//! and not miniz_oxide's compressor: see the gzip decision in `src/agent.rs`.

/// Hash table size (log2): 2^13 buckets of u16 positions = 16 KiB, reused between calls
/// (2^12 and 2^14 measured within noise of it on /metrics text, in time and size).
const HASH_BITS: u32 = 13;
/// Longest match DEFLATE can express.
const MAX_MATCH: usize = 258;
/// Shortest match we look for: the hash covers 4 bytes, and a 3-byte match rarely pays.
const MIN_MATCH: usize = 4;
/// Farthest back a match may reach.
const WINDOW: usize = 32 * 1024;
/// Tokens per block: bounds the token buffer (4 bytes each) and lets the Huffman codes follow
/// the data; a /metrics body of ~60 KB fits in one or two blocks.
pub const BLOCK_TOKENS: usize = 16 * 1024;

/// Per length symbol 257..=285: the smallest length it codes and its extra bits.
const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
/// Order in which the code-length code's lengths are sent (RFC 1951 §3.2.7).
const CL_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Length symbol (0-based from 257) of a match length 3..=258.
#[inline(always)]
const fn length_symbol_of(len: usize) -> usize {
    let l = len - 3;
    if l < 8 {
        l
    } else if l == 255 {
        28
    } else {
        let nb = (usize::BITS - 1 - l.leading_zeros()) as usize; // 3..=7
        4 * (nb - 1) + ((l >> (nb - 2)) & 3)
    }
}

/// Distance symbol 0..=29 of a distance 1..=32768.
#[inline(always)]
const fn distance_symbol_of(dist: usize) -> usize {
    let d = dist - 1;
    if d < 4 {
        d
    } else {
        let nb = (usize::BITS - 1 - d.leading_zeros()) as usize; // 2..=14
        2 * nb + ((d >> (nb - 1)) & 1)
    }
}

// Computed rather than tabulated (zlib keeps 256- and 512-byte tables): the same speed here
// (measured within noise) for ~770 bytes less in the binary.
#[inline(always)]
fn length_symbol(len: usize) -> usize {
    length_symbol_of(len)
}

/// Distance symbol of a distance 1..=32768, with its extra-bit count and value.
#[cfg(test)]
fn distance_symbol(dist: usize) -> (usize, u32, u32) {
    let s = distance_symbol_of(dist);
    let extra = (s.max(2) / 2 - 1) as u32;
    (s, extra, ((dist - 1) & ((1 << extra) - 1)) as u32)
}

/// The compressor state kept between calls: the hash table and the token buffer (80 KiB).
/// Fixed-size arrays, so indexing with a hash or a token count needs no bounds check.
pub struct Deflater {
    /// Per hash bucket, the newest position seen, modulo 2^16: half the cache lines of u32
    /// positions. A candidate is only a guess (its bytes are compared before use), so entries
    /// aliased from 64 KiB back only cost a failed comparison, never a wrong match.
    head: Box<[u16; 1 << HASH_BITS]>,
    tokens: Box<[u32; BLOCK_TOKENS + MIN_MATCH]>,
}

impl Default for Deflater {
    fn default() -> Self {
        Self::new()
    }
}

/// A zeroed boxed array, built on the heap (not on the stack first).
fn boxed_zeros<T: Copy + Default, const N: usize>() -> Box<[T; N]> {
    match vec![T::default(); N].into_boxed_slice().try_into() {
        Ok(b) => b,
        Err(_) => unreachable!("the length is N"),
    }
}

impl Deflater {
    pub fn new() -> Deflater {
        Deflater {
            head: boxed_zeros(),
            tokens: boxed_zeros(),
        }
    }

    /// Appends the raw DEFLATE stream (final block included) of `data` to `out`.
    pub fn compress(&mut self, data: &[u8], out: &mut Vec<u8>) {
        // Cleared per call, front to back: the output depends on `data` alone, and between
        // scrapes other processes evict the table, so 256 sequential line writes first cost
        // less than the same misses in hash order.
        self.head.fill(0);
        let mut w = BitWriter::new(out);
        let mut pos = 0;
        loop {
            let start = pos;
            let mut freq = Histogram::new();
            let n;
            (pos, n) = self.find_matches(data, pos, &mut freq);
            let last = pos == data.len();
            write_block(
                &mut w,
                &data[start..pos],
                &self.tokens[..n],
                &mut freq,
                last,
            );
            if last {
                break;
            }
        }
        w.finish();
    }

    /// Tokenises `data` from `pos` until the block is full or the input ends; returns where
    /// it stopped and the number of tokens (layout: [`literal_token`]).
    ///
    /// Not inlined: in its own function the loop keeps its state in registers (inlined into
    /// `gzip` it spilled the token count and the input pointer to the stack every token).
    #[inline(never)]
    #[cfg_attr(promlet_speed, optimize(speed))]
    fn find_matches(
        &mut self,
        data: &[u8],
        mut pos: usize,
        freq: &mut Histogram,
    ) -> (usize, usize) {
        let end = data.len();
        // Positions whose 4-byte prefix can be read.
        let hash_end = end.saturating_sub(MIN_MATCH - 1);
        let head = &mut *self.head;
        let tokens = &mut *self.tokens;
        let mut n = 0;
        while pos < hash_end && n < BLOCK_TOKENS {
            let cur = read_u32(data, pos);
            let h = hash(cur);
            // Positions modulo 2^16: an entry from 64 KiB or more back aliases to a nearer
            // position whose bytes are then compared like any candidate's.
            let here = pos as u16;
            let dist = here.wrapping_sub(head[h]) as usize;
            head[h] = here;
            let t;
            if dist.wrapping_sub(1) < WINDOW && dist <= pos && read_u32(data, pos - dist) == cur {
                let max = (end - pos).min(MAX_MATCH);
                let len = MIN_MATCH
                    + common_prefix(
                        data,
                        pos - dist + MIN_MATCH,
                        pos + MIN_MATCH,
                        max - MIN_MATCH,
                    );
                let ds = distance_symbol_of(dist);
                freq.dist[ds] += 1;
                t = match_token(len, dist, ds);
                // The match's last two positions go into the table (not the ones inside it):
                // on /metrics text 3.6% fewer tokens, i.e. smaller and no slower.
                let after = pos + len;
                if after <= hash_end {
                    head[hash(read_u32(data, after - 2))] = (after - 2) as u16;
                    head[hash(read_u32(data, after - 1))] = (after - 1) as u16;
                }
                pos = after;
            } else {
                t = literal_token(cur as u8);
                pos += 1;
            }
            // Literals and lengths counted by token symbol: no length symbol in this loop.
            freq.sym[(t & SYM_MASK) as usize] += 1;
            tokens[n] = t;
            n += 1;
        }
        if pos >= hash_end {
            // The last 1-3 bytes: too short to hash, sent as literals.
            for &b in &data[pos..] {
                let t = literal_token(b);
                freq.sym[(t & SYM_MASK) as usize] += 1;
                tokens[n] = t;
                n += 1;
            }
            pos = end;
        }
        (pos, n)
    }
}

// A token is one u32: bits 0..9 its symbol (a literal byte 0..=255, or 256 + length - 3 for a
// match), bits 9..14 the distance symbol (NO_DISTANCE for a literal), bits 14..27 the
// distance's extra-bit value.
// Literals and matches then take the same table lookups in `write_tokens`: no branch there.
const SYM_MASK: u32 = 511;
const NO_DISTANCE: u32 = 30;

#[inline(always)]
fn literal_token(b: u8) -> u32 {
    NO_DISTANCE << 9 | b as u32
}

#[inline(always)]
fn match_token(len: usize, dist: usize, ds: usize) -> u32 {
    let extra = ds.max(2) / 2 - 1;
    (((dist - 1) & ((1 << extra) - 1)) as u32) << 14 | (ds as u32) << 9 | (256 + len - 3) as u32
}

#[inline(always)]
fn read_u32(data: &[u8], i: usize) -> u32 {
    // One bounds check for the four bytes (indexing each byte checked each).
    let mut w = [0u8; 4];
    w.copy_from_slice(&data[i..i + 4]);
    u32::from_le_bytes(w)
}

#[inline(always)]
fn hash(v: u32) -> usize {
    (v.wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize
}

/// How many bytes from `a` and `b` agree, up to `max` (`a < b`; the ranges may overlap, as an
/// LZ77 match may).
#[inline(always)]
fn common_prefix(data: &[u8], a: usize, b: usize, max: usize) -> usize {
    // Both ranges checked once here, not per 8-byte read.
    let (Some(x), Some(y)) = (data.get(a..a + max), data.get(b..b + max)) else {
        return 0;
    };
    let mut n = 0;
    while n + 8 <= max {
        let diff = read_u64(x, n) ^ read_u64(y, n);
        if diff != 0 {
            return n + (diff.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    while n < max && x[n] == y[n] {
        n += 1;
    }
    n
}

#[inline(always)]
fn read_u64(data: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&data[i..i + 8]);
    u64::from_le_bytes(w)
}

/// Symbol counts of one block. Literal/length symbols 286 and 287 never occur but are part of
/// the fixed code, whose canonical codes count them.
struct Histogram {
    /// Per token symbol (see [`literal_token`]), folded into `lit` by [`Histogram::fold`].
    sym: [u32; 512],
    lit: [u32; 288],
    dist: [u32; 30],
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            sym: [0; 512],
            lit: [0; 288],
            dist: [0; 30],
        }
    }

    /// `lit` from `sym`: literals as they are, match lengths summed per length symbol.
    fn fold(&mut self) {
        self.lit[..256].copy_from_slice(&self.sym[..256]);
        for len in 3..=MAX_MATCH {
            self.lit[257 + length_symbol(len)] += self.sym[256 + len - 3];
        }
    }
}

/// A Huffman code: per symbol its length and its bit-reversed code (DEFLATE sends codes
/// most-significant bit first into a least-significant-bit-first stream).
struct Code<const N: usize> {
    len: [u8; N],
    bits: [u16; N],
}

// The work is in functions over slices, not in the const-generic methods: one copy of the
// code instead of one per alphabet size (measured: the generic versions cost ~KBs of binary).
impl<const N: usize> Code<N> {
    fn from_lengths(len: [u8; N]) -> Code<N> {
        let mut bits = [0u16; N];
        canonical_codes(&len, &mut bits);
        Code { len, bits }
    }

    /// A length-limited Huffman code for `freq`; always at least two symbols with a length so
    /// every decoder accepts the code as complete.
    fn build(freq: &[u32; N], max_bits: u8) -> Code<N> {
        let mut len = [0u8; N];
        huffman_lengths_into(freq, max_bits, &mut len);
        Code::from_lengths(len)
    }

    /// Bits needed to code the histogram `freq` with this code.
    fn cost(&self, freq: &[u32; N]) -> u64 {
        cost(freq, &self.len)
    }
}

fn cost(freq: &[u32], len: &[u8]) -> u64 {
    freq.iter()
        .zip(len)
        .map(|(&f, &l)| f as u64 * l as u64)
        .sum()
}

/// Canonical codes (RFC 1951 §3.2.2) for the lengths `len`, bit-reversed into `bits`.
fn canonical_codes(len: &[u8], bits: &mut [u16]) {
    let mut count = [0u16; 16];
    for &l in len {
        count[l as usize & 15] += 1;
    }
    count[0] = 0;
    let mut next = [0u16; 16];
    let mut code = 0u16;
    for b in 1..16 {
        code = (code + count[b - 1]) << 1;
        next[b] = code;
    }
    for (out, &l) in bits.iter_mut().zip(len) {
        if l > 0 {
            let l = l as usize & 15;
            *out = next[l].reverse_bits() >> (16 - l);
            next[l] += 1;
        }
    }
}

#[cfg(test)]
fn huffman_lengths<const N: usize>(freq: &[u32; N], max_bits: u8) -> [u8; N] {
    let mut lens = [0u8; N];
    huffman_lengths_into(freq, max_bits, &mut lens);
    lens
}

/// Code lengths (≤ `max_bits`) of a Huffman code for `freq` (Moffat and Katajainen's in-place
/// construction over the symbols sorted by frequency, then the overflow moved down and Kraft's
/// sum repaired, as zlib and miniz do).
/// `freq` and `lens` have the same length, at most 288.
#[cfg_attr(promlet_speed, optimize(speed))]
fn huffman_lengths_into(freq: &[u32], max_bits: u8, lens: &mut [u8]) {
    const MAX: usize = 288;
    // Sort keys: frequency above, symbol below (symbols < 2^9; frequencies < 2^23 since a
    // block has at most BLOCK_TOKENS + 4 tokens).
    let mut keys = [0u32; MAX];
    let mut n = 0;
    for (sym, &f) in freq.iter().enumerate() {
        if f > 0 {
            keys[n] = f << 9 | sym as u32;
            n += 1;
        }
    }
    // Fewer than two used symbols: pad with unused ones so the code is complete.
    let mut sym = 0;
    while n < 2 {
        if !keys[..n].iter().any(|k| k & 511 == sym) {
            keys[n] = sym;
            n += 1;
        }
        sym += 1;
    }
    let keys = &mut keys[..n];
    keys.sort_unstable();
    let mut a = [0u32; MAX];
    for (w, k) in a.iter_mut().zip(keys.iter()) {
        *w = (k >> 9).max(1);
    }
    let a = &mut a[..n];
    // Phase 1: internal node weights, parents as indices.
    a[0] += a[1];
    let (mut root, mut leaf) = (0, 2);
    for next in 1..n - 1 {
        if leaf >= n || a[root] < a[leaf] {
            a[next] = a[root];
            a[root] = next as u32;
            root += 1;
        } else {
            a[next] = a[leaf];
            leaf += 1;
        }
        if leaf >= n || (root < next && a[root] < a[leaf]) {
            a[next] += a[root];
            a[root] = next as u32;
            root += 1;
        } else {
            a[next] += a[leaf];
            leaf += 1;
        }
    }
    // Phase 2: internal node depths.
    a[n - 2] = 0;
    for next in (0..n - 2).rev() {
        a[next] = a[a[next] as usize] + 1;
    }
    // Phase 3: leaf depths, counted per length.
    let mut count = [0u32; 64];
    let (mut avail, mut used, mut depth) = (1i64, 0i64, 0usize);
    let mut root = n as i64 - 2;
    while avail > 0 {
        while root >= 0 && a[root as usize] as usize == depth {
            used += 1;
            root -= 1;
        }
        count[depth.min(63)] += (avail - used) as u32;
        avail = 2 * used;
        depth += 1;
        used = 0;
    }
    // Limit: move overflowing leaves to max_bits, then shorten the code until it is complete.
    let max = max_bits as usize;
    for d in max + 1..64 {
        count[max] += count[d];
        count[d] = 0;
    }
    let kraft =
        |count: &[u32; 64]| -> u64 { (1..=max).map(|d| (count[d] as u64) << (max - d)).sum() };
    let mut total = kraft(&count);
    while total > 1 << max {
        count[max] -= 1;
        if let Some(d) = (1..max).rev().find(|&d| count[d] != 0) {
            count[d] -= 1;
            count[d + 1] += 2;
        }
        total -= 1;
    }
    // The most frequent symbols (end of the sorted keys) get the shortest codes.
    let mut it = keys.iter().rev();
    for (d, &c) in count.iter().enumerate().take(max + 1).skip(1) {
        for _ in 0..c {
            if let Some(k) = it.next() {
                lens[(k & 511) as usize] = d as u8;
            }
        }
    }
}

/// Fixed Huffman code lengths (RFC 1951 §3.2.6).
fn fixed_lengths() -> ([u8; 288], [u8; 30]) {
    let mut lit = [8u8; 288];
    lit[144..256].fill(9);
    lit[256..280].fill(7);
    (lit, [5; 30])
}

/// The code-length sequence of a dynamic block header, run-length coded: (symbol 0..=18,
/// extra-bit value) pairs, at most 286 + 30.
struct HeaderRuns {
    runs: [(u8, u8); 316],
    n: usize,
}

impl HeaderRuns {
    fn new(lens: &[u8]) -> HeaderRuns {
        let mut h = HeaderRuns {
            runs: [(0, 0); 316],
            n: 0,
        };
        let mut i = 0;
        while i < lens.len() {
            let l = lens[i];
            let run = lens[i..].iter().take_while(|&&x| x == l).count();
            let mut r = run;
            if l == 0 {
                while r >= 11 {
                    let k = r.min(138);
                    h.push(18, k - 11);
                    r -= k;
                }
                if r >= 3 {
                    h.push(17, r - 3);
                    r = 0;
                }
            } else {
                h.push(l, 0);
                r -= 1;
                while r >= 3 {
                    let k = r.min(6);
                    h.push(16, k - 3);
                    r -= k;
                }
            }
            for _ in 0..r {
                h.push(l, 0);
            }
            i += run;
        }
        h
    }

    fn push(&mut self, sym: u8, extra: usize) {
        self.runs[self.n] = (sym, extra as u8);
        self.n += 1;
    }
}

/// Extra bits of code-length symbols 16, 17, 18.
fn cl_extra_bits(sym: u8) -> u32 {
    match sym {
        16 => 2,
        17 => 3,
        18 => 7,
        _ => 0,
    }
}

/// Writes one block of `tokens` (covering `input`) as the smallest of stored, fixed or dynamic.
fn write_block(w: &mut BitWriter, input: &[u8], tokens: &[u32], freq: &mut Histogram, last: bool) {
    freq.fold();
    freq.lit[256] = 1; // end of block
    let extra: u64 = (0..29)
        .map(|s| freq.lit[257 + s] as u64 * LEN_EXTRA[s] as u64)
        .chain((0..30).map(|s| freq.dist[s] as u64 * (s.max(2) as u64 / 2 - 1)))
        .sum();

    // Dynamic: codes, header and data bits.
    let lit = Code::build(&freq.lit, 15);
    let dist = Code::build(&freq.dist, 15);
    let hlit = 257
        + lit.len[257..]
            .iter()
            .rposition(|&l| l > 0)
            .map_or(0, |i| i + 1);
    let hdist = 1 + dist.len.iter().rposition(|&l| l > 0).unwrap_or(0);
    let mut all = [0u8; 316];
    all[..hlit].copy_from_slice(&lit.len[..hlit]);
    all[hlit..hlit + hdist].copy_from_slice(&dist.len[..hdist]);
    let runs = HeaderRuns::new(&all[..hlit + hdist]);
    let mut cl_freq = [0u32; 19];
    for &(s, _) in &runs.runs[..runs.n] {
        cl_freq[s as usize] += 1;
    }
    let cl = Code::build(&cl_freq, 7);
    let hclen = 4.max(1 + CL_ORDER.iter().rposition(|&s| cl.len[s] > 0).unwrap_or(0));
    let header_bits = 5
        + 5
        + 4
        + 3 * hclen as u64
        + runs.runs[..runs.n]
            .iter()
            .map(|&(s, _)| cl.len[s as usize] as u64 + cl_extra_bits(s) as u64)
            .sum::<u64>();
    let dynamic = header_bits + lit.cost(&freq.lit) + dist.cost(&freq.dist) + extra;

    // The fixed code's cost needs only its lengths; its codes are built only if it is chosen.
    let (fixed_lit_len, fixed_dist_len) = fixed_lengths();
    let fixed = cost(&freq.lit, &fixed_lit_len) + cost(&freq.dist, &fixed_dist_len) + extra;

    let chunks = input.len().div_ceil(0xffff).max(1) as u64;
    // Per stored chunk: header bits padded to a byte, LEN and NLEN.
    let stored = 8 * (input.len() as u64 + 5 * chunks);

    if stored <= fixed.min(dynamic) {
        w.reserve(input.len() + 5 * chunks as usize);
        let mut chunks = input.chunks(0xffff).peekable();
        if input.is_empty() {
            w.put(last as u64, 3);
            w.stored(&[]);
        }
        while let Some(chunk) = chunks.next() {
            let final_chunk = last && chunks.peek().is_none();
            w.put(final_chunk as u64, 3);
            w.stored(chunk);
        }
    } else if fixed <= dynamic {
        w.reserve((3 + fixed).div_ceil(8) as usize);
        w.put(last as u64 | 1 << 1, 3);
        let fixed_lit = Code::from_lengths(fixed_lit_len);
        let fixed_dist = Code::from_lengths(fixed_dist_len);
        write_tokens(w, tokens, &fixed_lit, &fixed_dist);
    } else {
        w.reserve((3 + dynamic).div_ceil(8) as usize);
        w.put(last as u64 | 2 << 1, 3);
        w.put((hlit - 257) as u64, 5);
        w.put((hdist - 1) as u64, 5);
        w.put((hclen - 4) as u64, 4);
        for &s in &CL_ORDER[..hclen] {
            w.put(cl.len[s] as u64, 3);
        }
        for &(s, x) in &runs.runs[..runs.n] {
            let s = s as usize;
            let n = cl.len[s] as u32;
            w.put(
                cl.bits[s] as u64 | (x as u64) << n,
                n + cl_extra_bits(s as u8),
            );
        }
        write_tokens(w, tokens, &lit, &dist);
    }
}

/// The coded tokens and the end-of-block symbol. `w` must have room for them (reserved from
/// the block's exact cost).
#[cfg_attr(promlet_speed, optimize(speed))]
fn write_tokens(w: &mut BitWriter, tokens: &[u32], lit: &Code<288>, dist: &Code<30>) {
    // Per token symbol, the whole code (Huffman code, then a length's extra bits) as
    // `bits << 8 | bit count`; per distance symbol its code as `bits << 16 | code length << 8
    // | code length + extra-bit count`, all zero for NO_DISTANCE. A token costs two table
    // loads, no branch.
    let mut sym_code = [0u32; 512];
    for (b, c) in sym_code[..256].iter_mut().enumerate() {
        *c = (lit.bits[b] as u32) << 8 | lit.len[b] as u32;
    }
    for (i, c) in sym_code[256..].iter_mut().enumerate() {
        let len = i + 3;
        let ls = length_symbol(len.min(MAX_MATCH));
        let n = lit.len[257 + ls] as u32;
        let bits = lit.bits[257 + ls] as u32 | ((len - LEN_BASE[ls] as usize) as u32) << n;
        *c = bits << 8 | (n + LEN_EXTRA[ls] as u32);
    }
    let mut dist_code = [0u32; 32];
    for (ds, c) in dist_code[..30].iter_mut().enumerate() {
        let extra = (ds.max(2) / 2 - 1) as u32;
        let n = dist.len[ds] as u32;
        *c = (dist.bits[ds] as u32) << 16 | n << 8 | (n + extra);
    }
    // The bit writer's state in locals (the output as a plain slice), so the loop keeps it in
    // registers instead of going through the Vec after every store.
    let (mut bits, mut nbits, mut pos) = (w.bits, w.nbits, w.pos);
    let out = &mut w.out[..];
    for &t in tokens {
        let c = sym_code[(t & SYM_MASK) as usize];
        let d = dist_code[((t >> 9) & 31) as usize];
        let (c_n, d_n) = (c & 0xff, (d >> 8) & 0xff);
        let v = (c >> 8) as u64 | ((d >> 16) as u64 | ((t >> 14) as u64) << d_n) << c_n;
        // At most 7 pending + 20 (length) + 28 (distance) bits: below 64.
        bits |= v << nbits;
        // Both counts in one add off the `nbits` chain (each low byte is below 128).
        nbits += (c + d) & 0xff;
        debug_assert!(pos + 8 <= out.len(), "write_tokens: room was reserved");
        if let Some(dst) = out.get_mut(pos..pos + 8) {
            dst.copy_from_slice(&bits.to_le_bytes());
        }
        let bytes = nbits / 8;
        pos += bytes as usize;
        nbits -= bytes * 8;
        bits >>= bytes * 8;
    }
    (w.bits, w.nbits, w.pos) = (bits, nbits, pos);
    w.put(lit.bits[256] as u64, lit.len[256] as u32);
}

/// LSB-first bit output into a byte buffer that [`BitWriter::reserve`] grows ahead of time,
/// so each write is one unaligned 8-byte store.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    /// Bytes written so far (`out` may be longer: reserved, zero-filled room).
    pos: usize,
    bits: u64,
    nbits: u32,
}

impl BitWriter<'_> {
    fn new(out: &mut Vec<u8>) -> BitWriter<'_> {
        let pos = out.len();
        BitWriter {
            out,
            pos,
            bits: 0,
            nbits: 0,
        }
    }

    /// Room for `bytes` more output, plus slack for the 8-byte stores.
    fn reserve(&mut self, bytes: usize) {
        let need = self.pos + bytes + 16;
        // In chunks from a static: `resize(need, 0)` compiles to a byte-at-a-time loop at
        // opt-level "z" (measured: ~5% of the time for a 60 KB body), a slice copy to memcpy.
        static ZEROS: [u8; 256] = [0; 256];
        while self.out.len() < need {
            let k = (need - self.out.len()).min(ZEROS.len());
            self.out.extend_from_slice(&ZEROS[..k]);
        }
    }

    /// Appends the low `n` bits of `v` (`n` ≤ 56; the bits above `n` must be zero).
    #[inline(always)]
    fn put(&mut self, v: u64, n: u32) {
        self.bits |= v << self.nbits;
        self.nbits += n;
        if let Some(dst) = self.out.get_mut(self.pos..self.pos + 8) {
            dst.copy_from_slice(&self.bits.to_le_bytes());
        }
        let bytes = self.nbits / 8;
        self.pos += bytes as usize;
        self.nbits -= bytes * 8;
        // nbits was at most 7 + 56, so the shift is below 64.
        self.bits >>= bytes * 8;
    }

    /// Pads to a byte, then a stored chunk: LEN, NLEN and the bytes.
    fn stored(&mut self, chunk: &[u8]) {
        if self.nbits > 0 {
            self.put(0, 8 - self.nbits);
        }
        let len = chunk.len() as u16;
        self.reserve(4 + chunk.len());
        self.out[self.pos..self.pos + 2].copy_from_slice(&len.to_le_bytes());
        self.out[self.pos + 2..self.pos + 4].copy_from_slice(&(!len).to_le_bytes());
        self.out[self.pos + 4..self.pos + 4 + chunk.len()].copy_from_slice(chunk);
        self.pos += 4 + chunk.len();
    }

    /// Flushes the last partial byte and trims `out` to what was written.
    fn finish(mut self) {
        if self.nbits > 0 {
            self.reserve(1);
            self.put(0, 8 - self.nbits);
        }
        self.out.truncate(self.pos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Smallest distance per distance symbol.
    const DIST_BASE: [u16; 30] = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
        2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
    ];

    fn deflate(d: &mut Deflater, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        d.compress(data, &mut out);
        out
    }

    /// Compresses `data`, inflates it with miniz_oxide and requires the same bytes back.
    fn round_trip(d: &mut Deflater, data: &[u8], what: &str) -> usize {
        let z = deflate(d, data);
        let back = miniz_oxide::inflate::decompress_to_vec(&z).unwrap_or_else(|e| {
            std::fs::write("/tmp/coll1-fail.bin", data).ok();
            std::fs::write("/tmp/coll1-fail.z", &z).ok();
            panic!(
                "{what}: {} bytes: inflate failed: {:?} after {} bytes",
                data.len(),
                e.status,
                e.output.len()
            )
        });
        if back != data {
            let at = back.iter().zip(data).take_while(|(a, b)| a == b).count();
            std::fs::write("/tmp/coll1-fail.bin", data).ok();
            std::fs::write("/tmp/coll1-fail.z", &z).ok();
            panic!(
                "{what}: {} bytes differ after inflate at {at} (got {} bytes); block type {}",
                data.len(),
                back.len(),
                (z[0] >> 1) & 3,
            );
        }
        z.len()
    }

    fn random_bytes(rng: &mut fastrand::Rng, n: usize, alphabet: u8) -> Vec<u8> {
        (0..n).map(|_| rng.u8(..alphabet)).collect()
    }

    #[test]
    fn symbol_tables_match_rfc_1951() {
        for len in 3..=258 {
            let s = length_symbol(len);
            assert_eq!(s, length_symbol_of(len));
            let base = LEN_BASE[s] as usize;
            assert!(
                len >= base && len - base < 1 << LEN_EXTRA[s],
                "length {len}"
            );
            assert!(s == 28 || len < LEN_BASE[s + 1] as usize || (s == 27 && len == 258));
        }
        assert_eq!(length_symbol(258), 28);
        assert_eq!(length_symbol(257), 27);
        // Distance symbols per RFC 1951 §3.2.5: the table against the direct computation.
        for dist in 1..=WINDOW {
            let (s, n, v) = distance_symbol(dist);
            assert_eq!(s, distance_symbol_of(dist), "distance {dist}");
            assert_eq!(dist, DIST_BASE[s] as usize + v as usize, "distance {dist}");
            assert!(
                v < 1 << n && n == (s.max(2) / 2 - 1) as u32,
                "distance {dist}"
            );
        }
    }

    #[test]
    fn huffman_lengths_are_limited_and_complete() {
        // Fibonacci frequencies make the unlimited code as deep as the symbol count.
        let mut freq = [0u32; 30];
        let (mut a, mut b) = (1u32, 1u32);
        for f in freq.iter_mut() {
            *f = a;
            (a, b) = (b, a + b);
        }
        for max in [7u8, 9, 15] {
            let lens = huffman_lengths(&freq, max);
            assert!(lens.iter().all(|&l| (1..=max).contains(&l)), "{lens:?}");
            let kraft: u64 = lens.iter().map(|&l| 1u64 << (15 - l)).sum();
            assert_eq!(kraft, 1 << 15, "max {max}: {lens:?}");
        }
        // One used symbol still gets a complete two-symbol code.
        let mut one = [0u32; 19];
        one[7] = 5;
        let lens = huffman_lengths(&one, 7);
        assert_eq!(lens[7], 1);
        assert_eq!(lens.iter().filter(|&&l| l == 1).count(), 2);
    }

    #[test]
    fn match_tokens_carry_the_distance_extra_bits() {
        for dist in 1..=WINDOW {
            let ds = distance_symbol_of(dist);
            for len in [MIN_MATCH, 100, MAX_MATCH] {
                let t = match_token(len, dist, ds);
                assert_eq!((t & SYM_MASK) as usize, 256 + len - 3);
                assert_eq!(((t >> 9) & 31) as usize, ds);
                assert_eq!(DIST_BASE[ds] as usize + (t >> 14) as usize, dist, "{dist}");
            }
        }
        assert_eq!((literal_token(b'x') >> 9) & 31, NO_DISTANCE);
    }

    #[test]
    fn positions_aliased_64_kib_apart_never_make_wrong_matches() {
        // Hash-table positions are kept modulo 2^16: a repeat exactly 64 KiB back aliases to
        // distance 0 and one 64 KiB + d back to distance d, whose bytes differ here.
        let mut rng = fastrand::Rng::with_seed(5);
        let mut d = Deflater::new();
        let chunk = random_bytes(&mut rng, 300, 255);
        for gap in [0x10000 - 300, 0x10000 - 299, 0x10000 - 290, 0x10000 + 7] {
            let mut data = chunk.clone();
            data.extend(random_bytes(&mut rng, gap, 255));
            data.extend(&chunk);
            data.extend(random_bytes(&mut rng, 5, 255));
            round_trip(&mut d, &data, "64 KiB alias");
        }
        // Text over 64 KiB: its lines repeat at all distances, aliased ones included.
        let text = "node_network_receive_bytes_total{device=\"eth0\"} 123456789\n".repeat(3000);
        let z = round_trip(&mut d, text.as_bytes(), "text over 64 KiB");
        assert!(z < text.len() / 50, "{z}");
    }

    #[test]
    fn output_does_not_depend_on_earlier_inputs() {
        let text = "m{a=\"1\"} 1\nm{a=\"2\"} 2\n".repeat(200);
        let fresh = deflate(&mut Deflater::new(), text.as_bytes());
        let mut d = Deflater::new();
        deflate(&mut d, &b"m{a=\"3\"} 9\n".repeat(9000));
        assert_eq!(deflate(&mut d, text.as_bytes()), fresh);
    }

    #[test]
    fn matches_ending_at_the_input_end_round_trip() {
        // The match's last positions are hashed only while 4 bytes can be read there.
        let mut d = Deflater::new();
        for n in 1..80 {
            let data: Vec<u8> = b"abcdefg".iter().cycle().take(n).copied().collect();
            round_trip(&mut d, &data, "cycle of 7");
            let data: Vec<u8> = b"ab".iter().cycle().take(n).copied().collect();
            round_trip(&mut d, &data, "cycle of 2");
        }
    }

    #[test]
    fn empty_and_tiny_inputs_round_trip() {
        let mut d = Deflater::new();
        assert_eq!(deflate(&mut d, b""), [3, 0], "one empty fixed block");
        for data in [
            &b"x"[..],
            b"ab",
            b"abc",
            b"abcd",
            b"abcdabcd",
            b"\0\0\0\0\0",
        ] {
            round_trip(&mut d, data, "tiny");
        }
    }

    #[test]
    fn long_runs_and_overlapping_matches_round_trip() {
        let mut d = Deflater::new();
        for n in [257, 258, 259, 260, 261, 262, 516, 517, 1000, 70_000] {
            let z = round_trip(&mut d, &vec![b'a'; n], "run");
            assert!(z < 20 + n / 100, "{n} equal bytes took {z}");
        }
        // Distance 2 and 3 overlaps.
        round_trip(&mut d, &b"ab".repeat(5000), "period 2");
        round_trip(&mut d, &b"xyz".repeat(5000), "period 3");
    }

    #[test]
    fn matches_at_the_window_edge_round_trip() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut d = Deflater::new();
        let chunk = random_bytes(&mut rng, 64, 255);
        for gap in [WINDOW - 65, WINDOW - 64, WINDOW - 63, WINDOW, WINDOW + 1] {
            let mut data = chunk.clone();
            data.extend(random_bytes(&mut rng, gap, 255));
            data.extend(&chunk);
            data.extend(random_bytes(&mut rng, 10, 255));
            round_trip(&mut d, &data, "window edge");
        }
        // A repeat exactly 32768 back is found; one 32769 back must not be used.
        let mut data = random_bytes(&mut rng, WINDOW, 255);
        data.extend_from_within(..1000);
        let z = round_trip(&mut d, &data, "distance 32768");
        assert!(z < WINDOW + 200, "{z}");
    }

    #[test]
    fn sizes_around_block_boundaries_round_trip() {
        let mut rng = fastrand::Rng::with_seed(11);
        let mut d = Deflater::new();
        // Incompressible bytes make one token per byte, so these sizes straddle blocks.
        for n in [
            BLOCK_TOKENS - 4,
            BLOCK_TOKENS - 1,
            BLOCK_TOKENS,
            BLOCK_TOKENS + 1,
            BLOCK_TOKENS + 3,
            2 * BLOCK_TOKENS + 2,
            0xffff,
            0x10000,
            0x10001,
            200_000,
        ] {
            let data = random_bytes(&mut rng, n, 255);
            let z = round_trip(&mut d, &data, "random");
            // Stored blocks: at most 5 bytes of framing per 64 KiB chunk and block.
            assert!(
                z <= n + 5 * (n / BLOCK_TOKENS + n / 0xffff + 2),
                "{n} random bytes took {z}"
            );
        }
        // Text whose matches end blocks mid-stream.
        let mut text = Vec::new();
        for i in 0..40_000 {
            text.extend_from_slice(
                format!("m{{i=\"{}\"}} {}\n", i % 97, rng.u32(..1000)).as_bytes(),
            );
        }
        round_trip(&mut d, &text, "text across blocks");
    }

    #[test]
    fn random_inputs_of_many_sizes_and_alphabets_round_trip() {
        let mut rng = fastrand::Rng::with_seed(2024);
        let mut d = Deflater::new();
        for i in 0..400 {
            let n = match i % 4 {
                0 => rng.usize(..64),
                1 => rng.usize(..4096),
                2 => rng.usize(..70_000),
                _ => rng.usize(..300_000),
            };
            let alphabet = [1u8, 2, 4, 16, 64, 255][rng.usize(..6)];
            let mut data = random_bytes(&mut rng, n, alphabet);
            // Splice in copies of earlier stretches, at all distances and lengths.
            for _ in 0..rng.usize(..20) {
                if data.len() > 16 {
                    let from = rng.usize(..data.len() - 8);
                    let len = rng.usize(1..(data.len() - from).min(600));
                    let to = rng.usize(..data.len() - len);
                    data.copy_within(from..from + len, to);
                }
            }
            round_trip(&mut d, &data, &format!("case {i}, alphabet {alphabet}"));
        }
    }

    #[test]
    fn node_expositions_round_trip_and_compress_well() {
        let mut d = Deflater::new();
        // This machine's own /metrics text, from the agent's collectors and encoder.
        let driver = crate::collect::Driver::new(|c| c.default_enabled, &Default::default());
        let mut driver = driver.expect("default collectors");
        let mut set = crate::expo::MetricSet::new();
        let roots = crate::collect::Roots::default();
        driver.collect(
            &crate::collect::Context {
                roots: &roots,
                now_ms: 1_700_000_000_000,
            },
            &mut set,
        );
        let mut text = Vec::new();
        crate::expo::encode_text(&set, &mut text);
        let mut om = Vec::new();
        crate::expo::encode_openmetrics(&set, &mut om);
        let mut bodies = vec![("real /metrics", text), ("real OpenMetrics", om)];
        // node_exporter's own scrapes of the recorded fixture trees (shared test data).
        let dir = std::env::var_os("PROMLET_SHARED")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
            .join("node-fixtures");
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        for f in ["node_exporter-1.11.1-on-fixtures.prom", "e2e-output.txt"] {
            match std::fs::read(dir.join(f)) {
                Ok(body) => bodies.push((f, body)),
                Err(e) if ci => panic!("CI=true and test data {f} is missing: {e}"),
                Err(e) => eprintln!("SKIPPED {f}: {e} (set PROMLET_SHARED)"),
            }
        }
        for (what, body) in &bodies {
            assert!(body.len() > 10_000, "{what}: {} bytes", body.len());
            let z = round_trip(&mut d, body, what);
            assert!(z * 4 < body.len(), "{what}: {} -> {z}", body.len());
        }
    }
}
