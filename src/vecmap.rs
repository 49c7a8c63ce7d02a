//! An ordered map kept as a sorted `Vec` of pairs, for the small maps that need key order.
//!
//! Owns: [`VecMap`]. Why not `BTreeMap`: every `BTreeMap<K, V>` instantiation brings its own
//! node code (insert, removal with rebalancing, iterators, drop), 6–8 KB of the release binary
//! per key/value pair; this one is a binary search over a slice plus `Vec::insert`/`remove`.
//! Meant for maps of a handful to a few hundred entries (alert groups, the alerts of one
//! group, pushed groups), where a memmove costs no more than a tree walk. Must not hold maps
//! that grow to many thousands of entries through single inserts (each is O(n)).

use std::borrow::Borrow;

/// A map ordered by key. Iteration is in ascending key order, as a `BTreeMap`'s.
#[derive(Clone, Debug, PartialEq)]
pub struct VecMap<K, V> {
    items: Vec<(K, V)>,
}

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        VecMap { items: Vec::new() }
    }
}

impl<K: Ord, V> VecMap<K, V> {
    pub const fn new() -> Self {
        VecMap { items: Vec::new() }
    }

    fn find<Q: Ord + ?Sized>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        self.items.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| &self.items[i].1)
    }

    pub fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| &mut self.items[i].1)
    }

    pub fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.find(key).is_ok()
    }

    /// Inserts or replaces; returns the value replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.items[i].1, value)),
            Err(i) => {
                self.items.insert(i, (key, value));
                None
            }
        }
    }

    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| self.items.remove(i).1)
    }

    /// The value under `key`, inserting `make()` first if there is none.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(&key) {
            Ok(i) => i,
            Err(i) => {
                self.items.insert(i, (key, make()));
                i
            }
        };
        &mut self.items[i].1
    }

    /// Inserts entries whose keys are not in the map yet (and distinct), in one O(n log n)
    /// sort instead of one memmove each: for maps that take many new keys at once.
    pub fn insert_new(&mut self, entries: Vec<(K, V)>) {
        if entries.is_empty() {
            return;
        }
        self.items.extend(entries);
        crate::sort::sort_by(&mut self.items, |a, b| a.0.cmp(&b.0));
        debug_assert!(self.items.windows(2).all(|w| w[0].0 < w[1].0));
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.items.retain_mut(|(k, v)| keep(k, v));
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + ExactSizeIterator {
        self.items.iter().map(|(k, v)| (k, v))
    }

    pub fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = (&K, &mut V)> {
        self.items.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator {
        self.items.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.items.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> {
        self.items.iter_mut().map(|(_, v)| v)
    }
}

impl<K: Ord, V, Q: Ord + ?Sized> std::ops::Index<&Q> for VecMap<K, V>
where
    K: Borrow<Q>,
{
    type Output = V;
    fn index(&self, key: &Q) -> &V {
        self.get(key).expect("no entry for the key in VecMap")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_keys_sorted_and_unique_like_a_btreemap() {
        let mut m = VecMap::new();
        for k in [5, 1, 9, 3, 1] {
            m.insert(k, k * 10);
        }
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), [1, 3, 5, 9]);
        assert_eq!(m.insert(3, 31), Some(30));
        assert_eq!((m.get(&3), m.get(&4), m[&9]), (Some(&31), None, 90));
        assert_eq!(m.remove(&1), Some(10));
        assert_eq!(m.remove(&1), None);
        *m.get_or_insert_with(4, || 0) += 1;
        *m.get_or_insert_with(4, || 100) += 1;
        assert_eq!(m.get(&4), Some(&2));
        m.insert_new(vec![(8, 80), (0, 0)]);
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), [0, 3, 4, 5, 8, 9]);
        m.retain(|k, _| *k != 5 && *k != 0 && *k != 8);
        let pairs: Vec<(i32, i32)> = m.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(pairs, [(3, 31), (4, 2), (9, 90)]);
        assert_eq!(m.len(), 3);
        m.clear();
        assert!(m.is_empty());
    }

    #[test]
    fn looks_up_through_borrowed_keys() {
        let mut m: VecMap<String, u8> = VecMap::new();
        m.insert("b".into(), 2);
        m.insert("a".into(), 1);
        assert!(m.contains_key("a"));
        assert_eq!(m.get("b"), Some(&2));
        *m.get_mut("a").unwrap() = 7;
        assert_eq!(m.values().copied().collect::<Vec<_>>(), [7, 2]);
    }
}
