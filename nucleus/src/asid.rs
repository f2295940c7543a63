//! Address-space ids (ASIDs) for user translation tables: a process gets
//! one when it is created and gives it back when its address space is gone
//! (after the TLB entries tagged with it were invalidated), so a board
//! never runs out however many processes come and go.
//!
//! Id 0 is never handed out: it tags the empty table of threads without a
//! user address space. Fresh ids are used first, then the ids given back
//! longest ago, so an id rests as long as possible between two owners.

#![forbid(unsafe_code)]

use alloc::collections::VecDeque;

#[derive(Clone, Debug)]
pub struct AsidAllocator {
    /// The highest id handed out.
    last: u16,
    /// The next id never handed out yet (`last + 1` when all were).
    next_fresh: u32,
    /// Ids given back, oldest first.
    free: VecDeque<u16>,
}

impl AsidAllocator {
    /// Ids 1 to `last`.
    pub fn new(last: u16) -> Self {
        Self { last, next_fresh: 1, free: VecDeque::new() }
    }

    /// An id no live address space has, or `None` when all `last` are taken.
    pub fn allocate(&mut self) -> Option<u16> {
        if self.next_fresh <= u32::from(self.last) {
            let asid = self.next_fresh as u16;
            self.next_fresh += 1;
            return Some(asid);
        }
        self.free.pop_front()
    }

    /// Gives `asid` back. The caller has invalidated the TLB entries tagged
    /// with it: the next owner must not see the old owner's translations.
    pub fn release(&mut self, asid: u16) {
        debug_assert!(asid != 0 && u32::from(asid) < self.next_fresh, "asid {asid} was never handed out");
        debug_assert!(!self.free.contains(&asid), "asid {asid} released twice");
        self.free.push_back(asid);
    }

    /// Ids handed out and not given back.
    pub fn in_use(&self) -> usize {
        (self.next_fresh - 1) as usize - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn hands_out_every_id_once_then_none() {
        let mut asids = AsidAllocator::new(5);
        let ids: BTreeSet<u16> = (0..5).map(|_| asids.allocate().unwrap()).collect();
        assert_eq!(ids, (1..=5).collect());
        assert_eq!(asids.allocate(), None);
        assert_eq!(asids.in_use(), 5);
    }

    #[test]
    fn a_released_id_comes_back_after_the_fresh_ones_oldest_first() {
        let mut asids = AsidAllocator::new(4);
        let first = asids.allocate().unwrap();
        let second = asids.allocate().unwrap();
        asids.release(second);
        asids.release(first);
        assert_eq!(asids.allocate(), Some(3), "fresh ids first");
        assert_eq!(asids.allocate(), Some(4));
        assert_eq!(asids.allocate(), Some(second), "then the one released longest ago");
        assert_eq!(asids.allocate(), Some(first));
        assert_eq!(asids.allocate(), None);
    }

    #[test]
    fn seventy_thousand_cycles_through_the_full_space() {
        let mut asids = AsidAllocator::new(u16::MAX);
        for _ in 0..70_000 {
            let asid = asids.allocate().expect("an id is free");
            assert_ne!(asid, 0);
            asids.release(asid);
        }
        assert_eq!(asids.in_use(), 0);
    }

    proptest! {
        /// Under any order of allocations and releases, no id is held twice
        /// and an id is refused only when all are held.
        #[test]
        fn never_two_owners(ops in proptest::collection::vec(any::<Option<u8>>(), 1..400), last in 1u16..20) {
            let mut asids = AsidAllocator::new(last);
            let mut held: std::vec::Vec<u16> = std::vec::Vec::new();
            for op in ops {
                match op {
                    None => match asids.allocate() {
                        Some(asid) => {
                            prop_assert!(asid >= 1 && asid <= last);
                            prop_assert!(!held.contains(&asid));
                            held.push(asid);
                        }
                        None => prop_assert_eq!(held.len(), last as usize),
                    },
                    Some(pick) if !held.is_empty() => {
                        let asid = held.remove(pick as usize % held.len());
                        asids.release(asid);
                    }
                    Some(_) => {}
                }
                prop_assert_eq!(asids.in_use(), held.len());
            }
        }
    }
}
