//! The series index: interned label strings, series label sets, and postings lists.
//!
//! Owns: mapping a label set to a series id and back, and answering "which series match these
//! matchers". Must not touch: samples, chunks, files.
//!
//! Every string is stored once (an `Rc<str>` shared by the lookup map and the id table) and
//! reference-counted by the series that use it, so strings leave with their last series.
//! Postings are sorted `Vec<u32>` per (name, value) pair; an `=` matcher costs one hash lookup
//! plus the length of its own list, whatever the number of other series. Regex matchers scan the
//! distinct values of their label name, never the series.
//!
//! Memory is accounted from real allocation sizes: container capacities times element sizes,
//! plus [`alloc_size`] for every separate heap block (see its doc for the allocator model).

use crate::model::{Labels, MatchOp, Matcher};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::mem::size_of;
use std::rc::Rc;

/// Bytes the allocator really hands out for a request of `n` bytes: glibc's and musl's small
/// chunks carry an 8-byte header and are rounded to 16 bytes, with a 32-byte minimum.
pub fn alloc_size(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        ((n + 8 + 15) & !15).max(32)
    }
}

/// Bytes of a hash map's table: one slot of (K, V) plus one control byte per bucket.
/// hashbrown keeps buckets at the next power of two above capacity * 8 / 7.
fn map_bytes<K, V, S>(m: &HashMap<K, V, S>) -> usize {
    if m.capacity() == 0 {
        return 0;
    }
    let buckets = (m.capacity() * 8 / 7).next_power_of_two();
    alloc_size(buckets * (size_of::<(K, V)>() + 1) + 16)
}

fn vec_bytes<T>(v: &Vec<T>) -> usize {
    alloc_size(v.capacity() * size_of::<T>())
}

/// A hasher for keys that are already hashes (or small ids): the identity, mixed once.
#[derive(Default)]
pub struct IdHasher(u64);

impl IdHasher {
    fn mix(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Eight bytes per step (FxHash's word-at-a-time mixing); the tail is zero-padded and
        // tagged with its length.
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.mix(u64::from_le_bytes(b));
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            let mut b = [0u8; 8];
            b[..tail.len()].copy_from_slice(tail);
            self.mix(u64::from_le_bytes(b) ^ ((tail.len() as u64) << 60));
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.mix(v as u64);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// FxHash-style hash of a label set's strings, with separators so ("ab","c") != ("a","bc").
pub fn hash_labels(labels: &Labels) -> u64 {
    hash_pairs(labels.iter())
}

/// [`hash_labels`] of sorted (name, value) pairs, without a `Labels`.
pub fn hash_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut h = IdHasher(0);
    for (n, v) in pairs {
        h.write(n.as_bytes());
        h.write(&[0xff]);
        h.write(v.as_bytes());
        h.write(&[0xfe]);
    }
    h.0
}

/// Series id: an index into the store's per-series tables, reused after a series leaves.
pub type SeriesId = u32;

#[derive(Default)]
pub struct Index {
    syms: Vec<Option<Rc<str>>>,
    sym_refs: Vec<u32>,
    sym_ids: HashMap<Rc<str>, u32>,
    free_syms: Vec<u32>,
    /// Label set of each series as (name, value) symbol pairs; empty for a free id.
    series: Vec<Box<[(u32, u32)]>>,
    free_series: Vec<u32>,
    /// Sorted ids of every live series: the postings of "all".
    live: Vec<u32>,
    /// Live series ids in label order, and each id's position there (`u32::MAX` for a free
    /// id): a query orders its selection by these ranks instead of comparing label strings
    /// (that sort was a tenth of an instant query over 1,000 series). Kept up to date on
    /// insert and remove, which cost O(series) then; series come and go rarely.
    by_labels: Vec<u32>,
    rank: Vec<u32>,
    by_hash: IdMap<u64, u32>,
    /// Series whose label hash collided with another's (64-bit collisions: practically never).
    collided: Vec<(u64, u32)>,
    postings: IdMap<(u32, u32), Vec<u32>>,
    /// Distinct value symbols of each label name, for regex matchers and label_values.
    values: IdMap<u32, Vec<u32>>,
    /// Bytes of separately allocated blocks (strings, label boxes, postings lists).
    block_bytes: usize,
}

impl Index {
    pub fn new() -> Index {
        Index::default()
    }

    pub fn series_count(&self) -> usize {
        self.live.len()
    }

    /// Real bytes held by the index.
    pub fn bytes(&self) -> usize {
        self.block_bytes
            + vec_bytes(&self.syms)
            + vec_bytes(&self.sym_refs)
            + map_bytes(&self.sym_ids)
            + vec_bytes(&self.free_syms)
            + vec_bytes(&self.series)
            + vec_bytes(&self.free_series)
            + vec_bytes(&self.live)
            + vec_bytes(&self.by_labels)
            + vec_bytes(&self.rank)
            + map_bytes(&self.by_hash)
            + vec_bytes(&self.collided)
            + map_bytes(&self.postings)
            + map_bytes(&self.values)
    }

    /// True if `id` names a live series.
    pub fn is_live(&self, id: SeriesId) -> bool {
        self.series.get(id as usize).is_some_and(|p| !p.is_empty())
    }

    pub fn sym(&self, s: &str) -> Option<u32> {
        self.sym_ids.get(s).copied()
    }

    pub fn str_of(&self, sym: u32) -> &str {
        self.syms[sym as usize].as_deref().unwrap_or("")
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.sym_ids.get(s) {
            self.sym_refs[id as usize] += 1;
            return id;
        }
        let rc: Rc<str> = Rc::from(s);
        // Rc<str> is one block: two counters and the bytes.
        self.block_bytes += alloc_size(16 + s.len());
        let id = match self.free_syms.pop() {
            Some(id) => {
                self.syms[id as usize] = Some(rc.clone());
                self.sym_refs[id as usize] = 1;
                id
            }
            None => {
                self.syms.push(Some(rc.clone()));
                self.sym_refs.push(1);
                (self.syms.len() - 1) as u32
            }
        };
        self.sym_ids.insert(rc, id);
        id
    }

    fn release(&mut self, id: u32) {
        let r = &mut self.sym_refs[id as usize];
        *r -= 1;
        if *r == 0 {
            if let Some(rc) = self.syms[id as usize].take() {
                self.block_bytes -= alloc_size(16 + rc.len());
                self.sym_ids.remove(&*rc);
            }
            self.free_syms.push(id);
        }
    }

    pub fn labels_of(&self, id: SeriesId) -> Labels {
        Labels::from_sorted_pairs(
            self.series[id as usize]
                .iter()
                .map(|&(n, v)| (self.str_of(n), self.str_of(v))),
        )
    }

    /// Orders two series as their label sets order (`Labels`' `Ord`) without building them:
    /// equal symbols are equal strings, so only differing pairs compare bytes (sorting 1,000
    /// selected series by built label sets was a tenth of an instant query).
    pub fn cmp_labels(&self, a: SeriesId, b: SeriesId) -> std::cmp::Ordering {
        let (pa, pb) = (&self.series[a as usize], &self.series[b as usize]);
        for (&(an, av), &(bn, bv)) in pa.iter().zip(pb.iter()) {
            let o = if an != bn {
                self.str_of(an).cmp(self.str_of(bn))
            } else if av != bv {
                self.str_of(av).cmp(self.str_of(bv))
            } else {
                continue;
            };
            if o.is_ne() {
                return o;
            }
        }
        pa.len().cmp(&pb.len())
    }

    /// Orders series ids as their label sets order (`Labels`' `Ord`), by their ranks.
    pub fn sort_by_labels(&self, ids: &mut [SeriesId]) {
        if ids.len() == self.by_labels.len() {
            // Every live series (an ids list has no duplicates): the order is the index's own.
            ids.copy_from_slice(&self.by_labels);
        } else {
            ids.sort_unstable_by_key(|&id| self.rank.get(id as usize).copied());
        }
    }

    fn rerank_from(&mut self, at: usize) {
        for (i, &id) in self.by_labels.iter().enumerate().skip(at) {
            self.rank[id as usize] = i as u32;
        }
    }

    /// The (name, value) string pairs of a series, in label order, without allocating.
    pub fn pairs_of(&self, id: SeriesId) -> impl Iterator<Item = (&str, &str)> {
        self.series[id as usize]
            .iter()
            .map(|&(n, v)| (self.str_of(n), self.str_of(v)))
    }

    fn same_labels(&self, id: SeriesId, labels: &Labels) -> bool {
        let pairs = &self.series[id as usize];
        pairs.len() == labels.len()
            && pairs
                .iter()
                .zip(labels.iter())
                .all(|(&(n, v), (ln, lv))| self.str_of(n) == ln && self.str_of(v) == lv)
    }

    /// [`Index::lookup`] for label pairs already sorted by name, unique, without empty values.
    pub fn lookup_pairs(&self, pairs: &[(&str, &str)], hash: u64) -> Option<SeriesId> {
        let same = |id: SeriesId| {
            let own = &self.series[id as usize];
            own.len() == pairs.len()
                && own
                    .iter()
                    .zip(pairs)
                    .all(|(&(n, v), &(ln, lv))| self.str_of(n) == ln && self.str_of(v) == lv)
        };
        let &id = self.by_hash.get(&hash)?;
        if same(id) {
            return Some(id);
        }
        self.collided
            .iter()
            .find(|&&(h, c)| h == hash && same(c))
            .map(|&(_, c)| c)
    }

    /// Finds the series with exactly these labels; `hash` is [`hash_labels`] of them.
    pub fn lookup(&self, labels: &Labels, hash: u64) -> Option<SeriesId> {
        let &id = self.by_hash.get(&hash)?;
        if self.same_labels(id, labels) {
            return Some(id);
        }
        self.collided
            .iter()
            .find(|&&(h, c)| h == hash && self.same_labels(c, labels))
            .map(|&(_, c)| c)
    }

    /// Adds a series that [`Index::lookup`] did not find.
    pub fn insert(&mut self, labels: &Labels, hash: u64) -> SeriesId {
        let pairs: Box<[(u32, u32)]> = labels
            .iter()
            .map(|(n, v)| (self.intern(n), self.intern(v)))
            .collect();
        self.block_bytes += alloc_size(pairs.len() * 8);
        let id = match self.free_series.pop() {
            Some(id) => id,
            None => {
                self.series.push(Box::new([]));
                (self.series.len() - 1) as u32
            }
        };
        for &(n, v) in pairs.iter() {
            let list = self.postings.entry((n, v)).or_default();
            let before = alloc_size(list.capacity() * 4);
            if list.is_empty() {
                let vals = self.values.entry(n).or_default();
                let vb = alloc_size(vals.capacity() * 4);
                vals.push(v);
                self.block_bytes = self.block_bytes + alloc_size(vals.capacity() * 4) - vb;
            }
            let at = list.partition_point(|&x| x < id);
            list.insert(at, id);
            self.block_bytes = self.block_bytes + alloc_size(list.capacity() * 4) - before;
        }
        self.series[id as usize] = pairs;
        let at = self.live.partition_point(|&x| x < id);
        self.live.insert(at, id);
        let at = self
            .by_labels
            .partition_point(|&x| self.cmp_labels(x, id).is_lt());
        self.by_labels.insert(at, id);
        self.rank.resize(self.series.len(), u32::MAX);
        self.rerank_from(at);
        match self.by_hash.entry(hash) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(id);
            }
            std::collections::hash_map::Entry::Occupied(_) => self.collided.push((hash, id)),
        }
        id
    }

    /// Removes a series (it has no samples left); its id may be reused.
    pub fn remove(&mut self, id: SeriesId, hash: u64) {
        let pairs = std::mem::take(&mut self.series[id as usize]);
        self.block_bytes -= alloc_size(pairs.len() * 8);
        for &(n, v) in pairs.iter() {
            if let Some(list) = self.postings.get_mut(&(n, v)) {
                let before = alloc_size(list.capacity() * 4);
                if let Ok(at) = list.binary_search(&id) {
                    list.remove(at);
                }
                if list.is_empty() {
                    self.block_bytes -= before;
                    self.postings.remove(&(n, v));
                    if let Some(vals) = self.values.get_mut(&n) {
                        vals.retain(|&x| x != v);
                        if vals.is_empty() {
                            self.block_bytes -= alloc_size(vals.capacity() * 4);
                            self.values.remove(&n);
                        }
                    }
                } else {
                    // Lists only shrink their length; capacity (and bytes) stay.
                }
            }
            self.release(n);
            self.release(v);
        }
        if let Ok(at) = self.live.binary_search(&id) {
            self.live.remove(at);
        }
        if let Some(&at) = self.rank.get(id as usize) {
            let at = at as usize;
            if at < self.by_labels.len() {
                self.by_labels.remove(at);
                self.rerank_from(at);
            }
            self.rank[id as usize] = u32::MAX;
        }
        if self.by_hash.get(&hash) == Some(&id) {
            self.by_hash.remove(&hash);
            if let Some(pos) = self.collided.iter().position(|&(h, _)| h == hash) {
                let (_, other) = self.collided.swap_remove(pos);
                self.by_hash.insert(hash, other);
            }
        } else {
            self.collided.retain(|&(_, c)| c != id);
        }
        self.free_series.push(id);
    }

    fn postings_of(&self, name: u32, value: u32) -> &[u32] {
        self.postings
            .get(&(name, value))
            .map(|v| v.as_slice())
            .unwrap_or(&[])
    }

    /// Sorted ids of the series matching every matcher (all series for no matchers), with the
    /// semantics of Prometheus's PostingsForMatchers: a missing label is the empty string.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<SeriesId> {
        let mut include: Option<Vec<u32>> = None;
        let mut exclude: Vec<u32> = Vec::new();
        for m in matchers {
            let name = self.sym(&m.name);
            if m.matches_empty() {
                // Matches series without the label, so only the values it rejects subtract.
                let Some(name) = name else { continue };
                if m.op == MatchOp::NotEqual {
                    if let Some(v) = self.sym(&m.value) {
                        exclude.extend_from_slice(self.postings_of(name, v));
                    }
                    continue;
                }
                for &v in self.values.get(&name).map(|v| v.as_slice()).unwrap_or(&[]) {
                    if !m.matches(self.str_of(v)) {
                        exclude.extend_from_slice(self.postings_of(name, v));
                    }
                }
                continue;
            }
            let Some(name) = name else {
                return Vec::new();
            };
            let list: Vec<u32> = if m.op == MatchOp::Equal {
                match self.sym(&m.value) {
                    Some(v) => self.postings_of(name, v).to_vec(),
                    None => return Vec::new(),
                }
            } else if let Some(alts) = literal_alternatives(m) {
                // `=~"a|b|c"` is a set of `=`: look each up instead of testing every value.
                let mut u = Vec::new();
                for alt in alts.split('|') {
                    if let Some(v) = self.sym(alt) {
                        u.extend_from_slice(self.postings_of(name, v));
                    }
                }
                u.sort_unstable();
                u.dedup();
                u
            } else {
                let mut u = Vec::new();
                for &v in self.values.get(&name).map(|v| v.as_slice()).unwrap_or(&[]) {
                    if m.matches(self.str_of(v)) {
                        u.extend_from_slice(self.postings_of(name, v));
                    }
                }
                u.sort_unstable();
                u.dedup();
                u
            };
            include = Some(match include {
                None => list,
                Some(prev) => intersect(&prev, &list),
            });
            if include.as_ref().is_some_and(|l| l.is_empty()) {
                return Vec::new();
            }
        }
        let mut out = include.unwrap_or_else(|| self.live.clone());
        if !exclude.is_empty() {
            exclude.sort_unstable();
            out.retain(|id| exclude.binary_search(id).is_err());
        }
        out
    }

    /// Distinct values of label `name` (unsorted).
    pub fn values_of(&self, name: &str) -> impl Iterator<Item = &str> {
        self.sym(name)
            .and_then(|n| self.values.get(&n))
            .into_iter()
            .flatten()
            .map(|&v| self.str_of(v))
    }

    /// Distinct label names in use (unsorted).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(|&n| self.str_of(n))
    }
}

/// The value of a `=~` matcher that is only literal alternatives (`a|b|c`, no empty one), as
/// PromQL queries over label sets often are; `None` otherwise.
fn literal_alternatives(m: &Matcher) -> Option<&str> {
    let v = m.value.as_str();
    let literal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '/' | ',');
    (m.op == MatchOp::Regex
        && !v.is_empty()
        && v.chars().all(|c| c == '|' || literal(c))
        && v.split('|').all(|alt| !alt.is_empty()))
    .then_some(v)
}

fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(ix: &mut Index, pairs: &[(&str, &str)]) -> SeriesId {
        let l = Labels::from_pairs(pairs.iter().copied());
        let h = hash_labels(&l);
        assert_eq!(ix.lookup(&l, h), None);
        ix.insert(&l, h)
    }

    fn m(op: MatchOp, n: &str, v: &str) -> Matcher {
        Matcher::new(op, n, v).unwrap()
    }

    #[test]
    fn cmp_labels_orders_like_built_label_sets() {
        let mut ix = Index::new();
        let sets: &[&[(&str, &str)]] = &[
            &[("__name__", "up"), ("job", "web")],
            &[("__name__", "up"), ("job", "api")],
            &[("__name__", "up")],
            &[("__name__", "cpu"), ("job", "api"), ("mode", "idle")],
            &[("__name__", "cpu"), ("job", "api")],
            &[("a", "z"), ("job", "api")],
            &[("__name__", "up"), ("instance", "host10"), ("job", "api")],
            &[("__name__", "up"), ("instance", "host9"), ("job", "api")],
        ];
        let mut ids: Vec<SeriesId> = sets.iter().map(|p| add(&mut ix, p)).collect();
        let mut by_labels = ids.clone();
        by_labels.sort_by_key(|&id| ix.labels_of(id));
        ids.sort_by(|&a, &b| ix.cmp_labels(a, b));
        assert_eq!(ids, by_labels);
    }

    #[test]
    fn label_order_is_kept_through_inserts_and_removals() {
        let mut ix = Index::new();
        let mut rng = 17u64;
        let mut live: Vec<(SeriesId, Labels)> = Vec::new();
        for round in 0..600 {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if rng >> 62 == 0 && !live.is_empty() {
                let (id, l) = live.swap_remove((rng >> 20) as usize % live.len());
                ix.remove(id, hash_labels(&l));
            } else {
                let l = Labels::from_pairs([
                    ("__name__", format!("m{}", (rng >> 30) % 3)),
                    ("instance", format!("h{}", (rng >> 40) % 50)),
                    ("job", format!("j{round}")),
                ]);
                let h = hash_labels(&l);
                live.push((ix.insert(&l, h), l));
            }
            let mut want: Vec<SeriesId> = live.iter().map(|(id, _)| *id).collect();
            want.sort_by_key(|&id| ix.labels_of(id));
            let mut all = ix.select(&[]);
            ix.sort_by_labels(&mut all);
            assert_eq!(all, want);
            // A part of them, in id order, comes back in label order too.
            let mut some: Vec<SeriesId> = want.iter().copied().filter(|id| id % 3 == 0).collect();
            some.sort_unstable();
            ix.sort_by_labels(&mut some);
            let part: Vec<SeriesId> = want.iter().copied().filter(|id| id % 3 == 0).collect();
            assert_eq!(some, part);
        }
    }

    #[test]
    fn select_follows_prometheus_matcher_semantics() {
        let mut ix = Index::new();
        let a = add(&mut ix, &[("__name__", "up"), ("job", "api")]);
        let b = add(&mut ix, &[("__name__", "up"), ("job", "web")]);
        let c = add(&mut ix, &[("__name__", "up")]);
        let d = add(&mut ix, &[("__name__", "cpu"), ("job", "api")]);
        let sel = |ms: &[Matcher]| ix.select(ms);
        assert_eq!(sel(&[m(MatchOp::Equal, "job", "api")]), vec![a, d]);
        assert_eq!(
            sel(&[
                m(MatchOp::Equal, "__name__", "up"),
                m(MatchOp::NotEqual, "job", "api")
            ]),
            vec![b, c]
        );
        assert_eq!(sel(&[m(MatchOp::Regex, "job", "a.*|w.b")]), vec![a, b, d]);
        assert_eq!(sel(&[m(MatchOp::Regex, "job", "ap")]), Vec::<u32>::new());
        assert_eq!(
            sel(&[m(MatchOp::Regex, "job", "web|api|nope")]),
            vec![a, b, d]
        );
        assert_eq!(sel(&[m(MatchOp::Regex, "job", "web|")]), vec![b, c]);
        assert_eq!(
            sel(&[
                m(MatchOp::Equal, "__name__", "up"),
                m(MatchOp::NotRegex, "job", ".+")
            ]),
            vec![c]
        );
        assert_eq!(sel(&[m(MatchOp::Equal, "job", "")]), vec![c]);
        assert_eq!(sel(&[m(MatchOp::NotEqual, "job", "")]), vec![a, b, d]);
        assert_eq!(sel(&[m(MatchOp::Equal, "nope", "x")]), Vec::<u32>::new());
        assert_eq!(sel(&[]), vec![a, b, c, d]);
    }

    #[test]
    fn removed_series_release_strings_and_bytes() {
        let mut ix = Index::new();
        let empty = ix.bytes();
        let l = Labels::from_pairs([("__name__", "x"), ("only_here", "value")]);
        let h = hash_labels(&l);
        let id = ix.insert(&l, h);
        assert!(ix.bytes() > empty);
        assert!(ix.sym("only_here").is_some());
        ix.remove(id, h);
        assert_eq!(ix.lookup(&l, h), None);
        assert_eq!(ix.sym("only_here"), None);
        assert_eq!(ix.block_bytes, 0);
        assert_eq!(ix.select(&[]), Vec::<u32>::new());
        let id2 = ix.insert(&l, h);
        assert_eq!(ix.lookup(&l, h), Some(id2));
    }

    #[test]
    fn hash_collisions_still_find_the_right_series() {
        let mut ix = Index::new();
        let l1 = Labels::from_pairs([("__name__", "a")]);
        let l2 = Labels::from_pairs([("__name__", "b")]);
        let a = ix.insert(&l1, 7);
        assert_eq!(ix.lookup(&l2, 7), None);
        let b = ix.insert(&l2, 7);
        assert_eq!(ix.lookup(&l1, 7), Some(a));
        assert_eq!(ix.lookup(&l2, 7), Some(b));
        ix.remove(a, 7);
        assert_eq!(ix.lookup(&l2, 7), Some(b));
        assert_eq!(ix.lookup(&l1, 7), None);
    }
}
