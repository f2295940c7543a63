//! Kernel heap: `talc` over a range of RAM just above the nucleus image,
//! with a count of the bytes in use so that the nucleus can refuse work
//! before the heap runs out rather than stop when it does.
//!
//! The rule: every allocation that a process or a frame from the wire can
//! make the nucleus do is either fallible (`try_reserve`, [`try_copy`]) or
//! admitted first by [`can_spend`], which keeps [`RESERVE`] bytes free for
//! the small bookkeeping that follows (tree nodes, queue slots, boxes of a
//! few hundred bytes). A request that does not fit gets `NoSpace`.

use crate::board;
use crate::sync::IrqRawMutex;
use alloc::vec::Vec;
use amoeba_abi::Status;
use core::alloc::{GlobalAlloc, Layout};
use core::ops::Range;
use core::sync::atomic::{AtomicUsize, Ordering};
use talc::{TalcLock, source::Manual};

/// Heap bytes kept free for the nucleus's own bookkeeping: work for a
/// process starts only if it leaves at least this much.
pub const RESERVE: usize = 2 << 20;

/// talc behind a lock that masks IRQs (interrupt handlers allocate too),
/// and the bytes it has handed out.
struct CountingHeap {
    talc: TalcLock<IrqRawMutex, Manual>,
    in_use: AtomicUsize,
    size: AtomicUsize,
}

#[global_allocator]
static ALLOCATOR: CountingHeap =
    CountingHeap { talc: TalcLock::new(Manual), in_use: AtomicUsize::new(0), size: AtomicUsize::new(0) };

// SAFETY: every method forwards to talc's own `GlobalAlloc` with the same
// arguments, which upholds the contract; the counter is only bookkeeping.
unsafe impl GlobalAlloc for CountingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged (the caller upholds `alloc`'s contract).
        let pointer = unsafe { self.talc.alloc(layout) };
        if !pointer.is_null() {
            self.in_use.fetch_add(layout.size(), Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged (the caller upholds `dealloc`'s contract).
        unsafe { self.talc.dealloc(pointer, layout) };
        self.in_use.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged (the caller upholds `alloc_zeroed`'s contract).
        let pointer = unsafe { self.talc.alloc_zeroed(layout) };
        if !pointer.is_null() {
            self.in_use.fetch_add(layout.size(), Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged (the caller upholds `realloc`'s contract).
        let moved = unsafe { self.talc.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            self.in_use.fetch_add(new_size, Ordering::Relaxed);
            self.in_use.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        moved
    }
}

/// Gives the allocator the physical range `heap` (must be unused RAM inside
/// the boot mapping). Returns the size actually claimed.
pub fn init(heap: Range<usize>) -> usize {
    let base = board::phys_to_virt(heap.start) as *mut u8;
    let size = heap.end - heap.start;
    // SAFETY: the caller hands over RAM that nothing else uses (the range lies
    // between the kernel image and the initrd/device tree, checked in main)
    // and that stays mapped for the life of the board.
    let claimed = unsafe { ALLOCATOR.talc.lock().claim(base, size) };
    let size = if claimed.is_some() { size } else { 0 };
    ALLOCATOR.size.store(size, Ordering::Relaxed);
    size
}

/// Heap bytes not handed out (an upper bound on what one allocation can
/// get: the free bytes may be split).
pub fn free_bytes() -> usize {
    ALLOCATOR.size.load(Ordering::Relaxed).saturating_sub(ALLOCATOR.in_use.load(Ordering::Relaxed))
}

/// Whether the nucleus may spend `bytes` of heap on a request and still
/// keep [`RESERVE`] free.
pub fn can_spend(bytes: usize) -> bool {
    free_bytes() >= bytes.saturating_add(RESERVE)
}

/// [`can_spend`] as a status: `NoSpace` when the heap cannot take `bytes`.
pub fn admit(bytes: usize) -> Result<(), Status> {
    if can_spend(bytes) { Ok(()) } else { Err(Status::NoSpace) }
}

/// A copy of `bytes` on the heap, or `NoSpace` (never a panic).
pub fn try_copy(bytes: &[u8]) -> Result<Vec<u8>, Status> {
    admit(bytes.len())?;
    let mut copy = Vec::new();
    copy.try_reserve_exact(bytes.len()).map_err(|_| Status::NoSpace)?;
    copy.extend_from_slice(bytes);
    Ok(copy)
}
