//! One stable sort for the whole crate, for binary size.
//!
//! `slice::sort_by` is generic: every element type and comparator gets its own copy of std's
//! driftsort, about 3.7 KB of x86_64 code each at opt-level "z" (33 copies were 125 KB of the
//! stripped binary). [`sort_by`] instead sorts a list of positions with the single non-generic
//! instantiation in [`sort_positions`] and then moves the elements into that order, so a call
//! site adds only its comparator and a short permutation loop.
//!
//! The result is the same as `slice::sort_by`: stable, O(n log n). Up to [`STACK_LEN`] elements
//! sort without allocating; longer slices allocate one `usize` per element, which is fine for
//! the per-query, per-scrape and config-time orderings this is meant for. Owns nothing else.

use std::cmp::Ordering;

/// Slices up to this long keep their positions on the stack (512 bytes on 64-bit).
const STACK_LEN: usize = 64;

/// Sorts `v` stably by `cmp`, like `v.sort_by(cmp)`.
pub fn sort_by<T>(v: &mut [T], mut cmp: impl FnMut(&T, &T) -> Ordering) {
    let n = v.len();
    if n < 2 {
        return;
    }
    let mut stack = [0usize; STACK_LEN];
    let mut heap = Vec::new();
    let order: &mut [usize] = if n <= STACK_LEN {
        &mut stack[..n]
    } else {
        heap.resize(n, 0);
        &mut heap
    };
    {
        let v: &[T] = v;
        sort_positions(order, &mut |a, b| cmp(&v[a], &v[b]));
    }
    permute(v, order);
}

/// Sorts `v` stably by the key `f` returns, like `v.sort_by_key(f)`.
pub fn sort_by_key<T, K: Ord>(v: &mut [T], mut f: impl FnMut(&T) -> K) {
    sort_by(v, |a, b| f(a).cmp(&f(b)));
}

/// Sorts `v` stably in ascending order, like `v.sort()`.
pub fn sort<T: Ord>(v: &mut [T]) {
    sort_by(v, T::cmp);
}

/// Fills `order` with 0..len sorted stably by `cmp` on positions: the one instantiation of
/// std's stable sort that every [`sort_by`] shares.
#[inline(never)]
fn sort_positions(order: &mut [usize], cmp: &mut dyn FnMut(usize, usize) -> Ordering) {
    for (i, slot) in order.iter_mut().enumerate() {
        *slot = i;
    }
    order.sort_by(|&a, &b| cmp(a, b));
}

/// Rearranges `v` so that the new `v[i]` is the old `v[order[i]]`, following each cycle of the
/// permutation with swaps. `order` is used up (every entry ends as its own index).
fn permute<T>(v: &mut [T], order: &mut [usize]) {
    for start in 0..order.len() {
        let mut at = start;
        // The old v[start] travels along the cycle until the slot that wants it.
        while order[at] != start {
            let from = order[at];
            order[at] = at;
            v.swap(at, from);
            at = from;
        }
        order[at] = at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_like_std_and_keeps_equal_elements_in_order() {
        let mut rng = fastrand::Rng::with_seed(7);
        for n in [
            0,
            1,
            2,
            3,
            10,
            STACK_LEN - 1,
            STACK_LEN,
            STACK_LEN + 1,
            1000,
        ] {
            // Few distinct keys, so stability matters; the second field records the input order.
            let input: Vec<(u8, usize)> = (0..n).map(|i| (rng.u8(0..5), i)).collect();
            let mut ours = input.clone();
            sort_by_key(&mut ours, |a| a.0);
            let mut std_sorted = input.clone();
            std_sorted.sort_by_key(|a| a.0);
            assert_eq!(ours, std_sorted, "n = {n}");
        }
    }

    #[test]
    fn sort_by_key_and_sort_order_owned_values() {
        let mut words = vec![
            "pear".to_string(),
            "fig".into(),
            "apple".into(),
            "kiwi".into(),
        ];
        sort_by_key(&mut words, |w| w.len());
        assert_eq!(words, ["fig", "pear", "kiwi", "apple"]);
        sort(&mut words);
        assert_eq!(words, ["apple", "fig", "kiwi", "pear"]);
    }

    #[test]
    fn reversed_and_already_sorted_inputs() {
        let mut v: Vec<u32> = (0..200).rev().collect();
        sort(&mut v);
        assert!(v.iter().copied().eq(0..200));
        sort(&mut v);
        assert!(v.iter().copied().eq(0..200));
    }
}
