//! Reassembly of fragmented messages with a set of received byte ranges.
//!
//! Memory is bounded by the message: the buffer (allocated fallibly, so a frame never
//! makes the nucleus run out of heap) and at most one range per fragment slot, so
//! tiny or overlapping forged fragments cannot grow the range list beyond what an
//! honest sender's fragments would need.

use alloc::vec::Vec;

use crate::wire::MAX_FRAGMENT;

/// A message being reassembled: a buffer of the total length and the (sorted,
/// disjoint, non-adjacent) byte ranges received so far.
#[derive(Debug, Clone)]
pub(crate) struct Reassembly {
    /// The message, zero where nothing arrived yet.
    buf: Vec<u8>,
    /// Received byte ranges, `[start, end)`.
    have: Vec<(u32, u32)>,
    /// Most ranges `have` may hold; a fragment that would need more is refused.
    max_ranges: usize,
    /// When a fragment last brought new data.
    pub(crate) last_activity: u64,
}

impl Reassembly {
    /// An empty message of `total` bytes; `None` if the memory is not available.
    pub(crate) fn try_new(total: u32, now: u64) -> Option<Reassembly> {
        // One range per full-size fragment, plus one: what any split of the message
        // into honest fragments, in any order, can need.
        let max_ranges = (total as usize).div_ceil(MAX_FRAGMENT) + 1;
        Reassembly::with_range_limit(total, now, max_ranges)
    }

    fn with_range_limit(total: u32, now: u64, max_ranges: usize) -> Option<Reassembly> {
        let mut buf = Vec::new();
        buf.try_reserve_exact(total as usize).ok()?;
        buf.resize(total as usize, 0);
        Some(Reassembly { buf, have: Vec::new(), max_ranges, last_activity: now })
    }

    pub(crate) fn total(&self) -> u32 {
        self.buf.len() as u32
    }

    /// Insert a fragment; false if it does not fit (wrong total), brought nothing new,
    /// or would split the message into more ranges than allowed.
    pub(crate) fn insert(&mut self, off: u32, data: &[u8], now: u64) -> bool {
        let start = off as u64;
        let end = start + data.len() as u64;
        if end > self.buf.len() as u64 || data.is_empty() {
            return false;
        }
        let (start, end) = (start as u32, end as u32);
        if self.covered(start, end) {
            return false;
        }
        // Merge [start, end) into the range set.
        let mut s = start;
        let mut e = end;
        let mut out = Vec::new();
        if out.try_reserve_exact(self.have.len() + 1).is_err() {
            return false;
        }
        let mut placed = false;
        for &(a, b) in &self.have {
            if b < s {
                out.push((a, b));
            } else if a > e {
                if !placed {
                    out.push((s, e));
                    placed = true;
                }
                out.push((a, b));
            } else {
                s = s.min(a);
                e = e.max(b);
            }
        }
        if !placed {
            out.push((s, e));
        }
        if out.len() > self.max_ranges {
            return false;
        }
        self.have = out;
        self.buf[start as usize..end as usize].copy_from_slice(data);
        self.last_activity = now;
        true
    }

    fn covered(&self, s: u32, e: u32) -> bool {
        self.have.iter().any(|&(a, b)| a <= s && e <= b)
    }

    pub(crate) fn is_complete(&self) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        self.have.len() == 1 && self.have[0] == (0, self.buf.len() as u32)
    }

    /// Missing ranges as (offset, length), at most `max`; the flag says "truncated".
    pub(crate) fn missing(&self, max: usize) -> (Vec<(u32, u32)>, bool) {
        let mut out = Vec::new();
        let mut pos = 0u32;
        let total = self.buf.len() as u32;
        for &(a, b) in self.have.iter().chain(core::iter::once(&(total, total))) {
            if a > pos {
                if out.len() == max {
                    return (out, true);
                }
                out.push((pos, a - pos));
            }
            pos = b;
        }
        (out, false)
    }

    pub(crate) fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    #[test]
    fn basic() {
        let mut r = Reassembly::try_new(10, 0).unwrap();
        assert_eq!(r.missing(8), (vec![(0, 10)], false));
        assert!(r.insert(3, &[3, 4], 1));
        assert!(!r.insert(3, &[3, 4], 1));
        assert!(!r.insert(9, &[1, 2], 1));
        assert!(r.insert(8, &[8, 9], 1));
        assert_eq!(r.missing(8), (vec![(0, 3), (5, 3)], false));
        assert_eq!(r.missing(1), (vec![(0, 3)], true));
        assert!(r.insert(0, &[0, 1, 2], 1));
        assert!(r.insert(5, &[5, 6, 7], 1));
        assert!(r.is_complete());
        assert_eq!(r.into_vec(), vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn range_list_stays_bounded() {
        // Forged one-byte fragments at every other offset of a 1 MiB message: an
        // unbounded range list would grow to half a million entries (4 MiB).
        let total = 1u32 << 20;
        let mut r = Reassembly::try_new(total, 0).unwrap();
        let limit = (total as usize).div_ceil(MAX_FRAGMENT) + 1;
        let accepted = (0..total / 2).filter(|k| r.insert(k * 2, &[1], 0)).count();
        assert_eq!(accepted, limit);
        assert_eq!(r.missing(usize::MAX).0.len(), limit);
        // Honest full-size fragments, in any order, always fit.
        let mut r = Reassembly::try_new(total, 0).unwrap();
        let n = (total as usize).div_ceil(MAX_FRAGMENT) as u32;
        let order: Vec<u32> = (0..n).step_by(2).chain((1..n).step_by(2)).collect();
        for i in order {
            let s = i * MAX_FRAGMENT as u32;
            let e = (s + MAX_FRAGMENT as u32).min(total);
            assert!(r.insert(s, &vec![7; (e - s) as usize], 0));
        }
        assert!(r.is_complete());
    }

    proptest! {
        #[test]
        fn any_order_reassembles(total in 1u32..3000, frag in 1u32..700, order in proptest::collection::vec(any::<u32>(), 0..40), dups in 0usize..5) {
            let msg: Vec<u8> = (0..total).map(|i| (i * 7 + 3) as u8).collect();
            let n = total.div_ceil(frag);
            let mut idx: Vec<u32> = (0..n).collect();
            for (i, o) in order.iter().enumerate() {
                let a = i % n as usize;
                let b = (*o % n) as usize;
                idx.swap(a, b);
            }
            for d in 0..dups.min(n as usize) { idx.push(idx[d]); }
            let mut r = Reassembly::with_range_limit(total, 0, usize::MAX).unwrap();
            for (k, &i) in idx.iter().enumerate() {
                let s = i * frag;
                let e = (s + frag).min(total);
                r.insert(s, &msg[s as usize..e as usize], 0);
                let (m, _) = r.missing(usize::MAX);
                let missing: u32 = m.iter().map(|x| x.1).sum();
                prop_assert!(missing <= total);
                if k + 1 < n as usize { prop_assert!(!r.is_complete() || dups > 0 || n == 1 || missing == 0); }
            }
            prop_assert!(r.is_complete());
            prop_assert_eq!(r.missing(8), (vec![], false));
            prop_assert_eq!(r.into_vec(), msg);
        }
    }
}
