//! The free list: the holes of the data area as coalesced runs of blocks. It lives only
//! in memory; mount rebuilds it as the complement of the committed files' runs.

use alloc::collections::BTreeMap;

/// Free runs of blocks, keyed by first block, never adjacent or overlapping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FreeMap {
    holes: BTreeMap<u64, u64>,
    total: u64,
}

impl FreeMap {
    /// Return `len` blocks at `start` to the free list, merging with neighbours.
    /// Returns false (and changes nothing) if any of them is already free.
    #[must_use]
    pub fn release(&mut self, start: u64, len: u64) -> bool {
        if len == 0 {
            return true;
        }
        let end = start + len;
        let before = self.holes.range(..end).next_back().map(|(&s, &l)| (s, l));
        if before.is_some_and(|(s, l)| s + l > start) {
            return false;
        }
        let (mut new_start, mut new_len) = (start, len);
        if let Some((s, l)) = before.filter(|&(s, l)| s + l == start) {
            self.holes.remove(&s);
            new_start = s;
            new_len += l;
        }
        if let Some(l) = self.holes.remove(&end) {
            new_len += l;
        }
        self.holes.insert(new_start, new_len);
        self.total += len;
        true
    }

    /// Take `len` blocks at `start` off the free list; they must all be free (else
    /// false, and nothing changes).
    #[must_use]
    pub fn take(&mut self, start: u64, len: u64) -> bool {
        if len == 0 {
            return true;
        }
        let Some((&s, &l)) = self.holes.range(..=start).next_back() else { return false };
        if s + l < start + len {
            return false;
        }
        self.holes.remove(&s);
        if start > s {
            self.holes.insert(s, start - s);
        }
        if s + l > start + len {
            self.holes.insert(start + len, s + l - start - len);
        }
        self.total -= len;
        true
    }

    /// Are all `len` blocks at `start` free?
    pub fn contains(&self, start: u64, len: u64) -> bool {
        len == 0 || self.holes.range(..=start).next_back().is_some_and(|(&s, &l)| s + l >= start + len)
    }

    /// The smallest hole of at least `len` blocks (the lowest one among equals).
    pub fn best_fit(&self, len: u64) -> Option<u64> {
        self.holes.iter().filter(|&(_, &l)| l >= len).min_by_key(|&(&s, &l)| (l, s)).map(|(&s, _)| s)
    }

    /// Blocks in the largest hole.
    pub fn largest(&self) -> u64 {
        self.holes.values().copied().max().unwrap_or(0)
    }

    /// Free blocks in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The holes as (start, length), in block order.
    pub fn holes(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.holes.iter().map(|(&s, &l)| (s, l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    #[test]
    fn release_merges_and_refuses_double_free() {
        let mut f = FreeMap::default();
        assert!(f.release(10, 5));
        assert!(f.release(20, 5));
        assert!(f.release(15, 5));
        assert_eq!(f.holes().collect::<Vec<_>>(), [(10, 15)]);
        assert!(!f.release(12, 1));
        assert!(!f.release(5, 6));
        assert!(!f.release(24, 3));
        assert_eq!(f.total(), 15);
        assert!(f.take(12, 3));
        assert_eq!(f.holes().collect::<Vec<_>>(), [(10, 2), (15, 10)]);
        assert!(!f.take(11, 2));
        assert!(!f.take(24, 2));
        assert!(f.contains(15, 10) && f.contains(10, 0));
        assert!(!f.contains(14, 2) && !f.contains(24, 2));
        assert_eq!(f.best_fit(2), Some(10));
        assert_eq!(f.best_fit(3), Some(15));
        assert_eq!(f.best_fit(11), None);
        assert_eq!(f.largest(), 10);
    }

    proptest! {
        /// Against a bitmap model.
        #[test]
        fn matches_a_bitmap(ops in proptest::collection::vec((any::<bool>(), 0u64..64, 1u64..8), 0..80)) {
            let mut f = FreeMap::default();
            let mut model = [false; 72];
            for (free, start, len) in ops {
                let range = start as usize..(start + len) as usize;
                if free {
                    let ok = model[range.clone()].iter().all(|b| !b);
                    prop_assert_eq!(f.release(start, len), ok);
                    if ok { model[range].fill(true); }
                } else {
                    let ok = model[range.clone()].iter().all(|b| *b);
                    prop_assert_eq!(f.take(start, len), ok);
                    if ok { model[range].fill(false); }
                }
                let mut bits = [false; 72];
                let mut last_end = None;
                for (s, l) in f.holes() {
                    prop_assert!(last_end.is_none_or(|e| e < s), "holes adjacent or overlapping");
                    bits[s as usize..(s + l) as usize].fill(true);
                    last_end = Some(s + l);
                }
                prop_assert_eq!(bits, model);
                prop_assert_eq!(f.total(), model.iter().filter(|b| **b).count() as u64);
            }
        }
    }
}
