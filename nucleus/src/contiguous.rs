//! Allocation of contiguous ranges of physical memory for segments: no
//! paging, no swapping, so a segment is one run of frames. Free ranges are
//! kept sorted and coalesced; allocation is best fit, which keeps large
//! runs intact longest.

use alloc::collections::BTreeMap;
use core::ops::Range;

/// The unit of allocation (one translation granule).
pub const FRAME_SIZE: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// Size zero or alignment not a power of two of at least a frame.
    BadRequest,
    /// No free run is large enough (the memory may be free but fragmented).
    NoSpace,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// The range is not frame aligned or lies outside managed memory.
    OutOfRange,
    /// Part of the range is already free: a double free.
    NotAllocated,
}

/// How free memory is split up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Fragmentation {
    pub free_bytes: usize,
    pub largest_free: usize,
    pub free_runs: usize,
}

impl Fragmentation {
    /// 0 when all free memory is one run, approaching 1 as it splinters:
    /// 1 - largest run / all free memory, in per mille.
    pub fn per_mille(&self) -> u32 {
        if self.free_bytes == 0 {
            return 0;
        }
        (1000 - (self.largest_free as u128 * 1000 / self.free_bytes as u128)) as u32
    }
}

pub struct ContiguousAllocator {
    /// Free runs: start -> length, never adjacent (always coalesced).
    free: BTreeMap<usize, usize>,
    managed: alloc::vec::Vec<Range<usize>>,
}

fn is_frame_aligned(value: usize) -> bool {
    value.is_multiple_of(FRAME_SIZE)
}

impl ContiguousAllocator {
    pub const fn new() -> Self {
        Self { free: BTreeMap::new(), managed: alloc::vec::Vec::new() }
    }

    /// Adds a range of free memory (shrunk inward to frame boundaries).
    pub fn add_range(&mut self, range: Range<usize>) {
        let start = range.start.next_multiple_of(FRAME_SIZE);
        let end = range.end - range.end % FRAME_SIZE;
        if end > start {
            self.managed.push(start..end);
            self.insert_free(start, end - start);
        }
    }

    /// Allocates `size` bytes (rounded up to frames) aligned to `align`.
    pub fn allocate(&mut self, size: usize, align: usize) -> Result<Range<usize>, AllocError> {
        if size == 0 || !align.is_power_of_two() || align < FRAME_SIZE {
            return Err(AllocError::BadRequest);
        }
        let size = size.checked_next_multiple_of(FRAME_SIZE).ok_or(AllocError::BadRequest)?;
        // Best fit: the smallest run that holds the aligned request.
        let mut best: Option<(usize, usize, usize)> = None; // (run start, run len, aligned start)
        for (&start, &len) in &self.free {
            let Some(aligned) = start.checked_next_multiple_of(align) else {
                continue;
            };
            let waste = aligned - start;
            if waste.checked_add(size).is_some_and(|need| need <= len)
                && best.is_none_or(|(_, best_len, _)| len < best_len)
            {
                best = Some((start, len, aligned));
            }
        }
        let (start, len, aligned) = best.ok_or(AllocError::NoSpace)?;
        self.free.remove(&start);
        if aligned > start {
            self.free.insert(start, aligned - start);
        }
        let end = aligned + size;
        if end < start + len {
            self.free.insert(end, start + len - end);
        }
        Ok(aligned..end)
    }

    /// Returns a range obtained from `allocate`.
    pub fn free(&mut self, range: Range<usize>) -> Result<(), FreeError> {
        if !is_frame_aligned(range.start) || !is_frame_aligned(range.end) || range.end <= range.start {
            return Err(FreeError::OutOfRange);
        }
        if !self.managed.iter().any(|m| m.start <= range.start && range.end <= m.end) {
            return Err(FreeError::OutOfRange);
        }
        // Refuse to free anything that overlaps a free run.
        if let Some((&start, &len)) = self.free.range(..range.end).next_back()
            && start + len > range.start
        {
            return Err(FreeError::NotAllocated);
        }
        self.insert_free(range.start, range.end - range.start);
        Ok(())
    }

    fn insert_free(&mut self, mut start: usize, mut len: usize) {
        // Merge with the run that ends where this one starts ...
        if let Some((&before, &before_len)) = self.free.range(..start).next_back()
            && before + before_len == start
        {
            self.free.remove(&before);
            start = before;
            len += before_len;
        }
        // ... and with the run that starts where this one ends.
        if let Some(after_len) = self.free.remove(&(start + len)) {
            len += after_len;
        }
        self.free.insert(start, len);
    }

    pub fn fragmentation(&self) -> Fragmentation {
        Fragmentation {
            free_bytes: self.free.values().sum(),
            largest_free: self.free.values().copied().max().unwrap_or(0),
            free_runs: self.free.len(),
        }
    }
}

impl Default for ContiguousAllocator {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    const MIB: usize = 1 << 20;

    fn allocator(size: usize) -> ContiguousAllocator {
        let mut a = ContiguousAllocator::new();
        a.add_range(0x4000_0000..0x4000_0000 + size);
        a
    }

    #[test]
    fn allocations_are_contiguous_aligned_and_disjoint() {
        let mut a = allocator(16 * MIB);
        let x = a.allocate(5000, FRAME_SIZE).unwrap();
        assert_eq!(x.end - x.start, 8192);
        let y = a.allocate(2 * MIB, 2 * MIB).unwrap();
        assert_eq!(y.start % (2 * MIB), 0);
        assert!(x.end <= y.start || y.end <= x.start);
    }

    #[test]
    fn freeing_coalesces_back_to_one_run() {
        let mut a = allocator(16 * MIB);
        let before = a.fragmentation();
        let ranges: Vec<_> = (0..8).map(|_| a.allocate(MIB, FRAME_SIZE).unwrap()).collect();
        for range in ranges.iter().step_by(2) {
            a.free(range.clone()).unwrap();
        }
        let holes = a.fragmentation();
        assert!(holes.free_runs > 1 && holes.per_mille() > 0);
        for range in ranges.iter().skip(1).step_by(2) {
            a.free(range.clone()).unwrap();
        }
        assert_eq!(a.fragmentation(), before);
        assert_eq!(a.fragmentation().per_mille(), 0);
    }

    #[test]
    fn fragmented_memory_refuses_a_large_run_that_total_free_would_hold() {
        let mut a = allocator(4 * MIB);
        let ranges: Vec<_> = (0..4).map(|_| a.allocate(MIB, FRAME_SIZE).unwrap()).collect();
        a.free(ranges[0].clone()).unwrap();
        a.free(ranges[2].clone()).unwrap();
        assert_eq!(a.fragmentation().free_bytes, 2 * MIB);
        assert_eq!(a.allocate(2 * MIB, FRAME_SIZE), Err(AllocError::NoSpace));
        assert_eq!(a.fragmentation().per_mille(), 500);
    }

    #[test]
    fn bad_requests_and_bad_frees_are_errors() {
        let mut a = allocator(MIB);
        assert_eq!(a.allocate(0, FRAME_SIZE), Err(AllocError::BadRequest));
        assert_eq!(a.allocate(4096, 3), Err(AllocError::BadRequest));
        assert_eq!(a.allocate(usize::MAX, FRAME_SIZE), Err(AllocError::BadRequest));
        assert_eq!(a.allocate(2 * MIB, FRAME_SIZE), Err(AllocError::NoSpace));
        let x = a.allocate(8192, FRAME_SIZE).unwrap();
        assert_eq!(a.free(x.start + 1..x.end), Err(FreeError::OutOfRange));
        assert_eq!(a.free(0..4096), Err(FreeError::OutOfRange));
        a.free(x.clone()).unwrap();
        assert_eq!(a.free(x), Err(FreeError::NotAllocated));
    }

    proptest! {
        /// Any sequence of allocations and frees keeps ranges disjoint, inside
        /// managed memory, and accounts for every byte.
        #[test]
        fn accounting_holds(ops in proptest::collection::vec((1usize..64, 0u32..4, any::<bool>()), 1..200)) {
            let total = 8 * MIB;
            let mut a = allocator(total);
            let mut live: Vec<Range<usize>> = Vec::new();
            for (pages, align_shift, free_one) in ops {
                if free_one && !live.is_empty() {
                    let range = live.swap_remove(pages % live.len());
                    a.free(range).unwrap();
                } else if let Ok(range) = a.allocate(pages * FRAME_SIZE, FRAME_SIZE << align_shift) {
                    prop_assert_eq!(range.start % (FRAME_SIZE << align_shift), 0);
                    prop_assert!(live.iter().all(|r| r.end <= range.start || range.end <= r.start));
                    live.push(range);
                }
                let used: usize = live.iter().map(|r| r.end - r.start).sum();
                prop_assert_eq!(a.fragmentation().free_bytes + used, total);
            }
        }
    }
}
