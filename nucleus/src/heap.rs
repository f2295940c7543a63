//! Kernel heap: `talc` over a range of RAM just above the nucleus image,
//! with a count of the bytes in use so that the nucleus can refuse work
//! before the heap runs out rather than stop when it does.
//!
//! In front of talc, freed small blocks (up to [`LARGEST_CACHED`] bytes, in
//! classes of 16) are kept on a list per class, at most [`CACHED_PER_CLASS`]
//! each, and handed out again first: the small allocations that every frame
//! and call makes (boxes, tree nodes, short vectors) then cost a few
//! instructions, always the same, instead of a search whose length follows
//! the heap's history (which made a remote call's instruction count differ
//! from boot to boot). Cached blocks count as in use.
//!
//! The rule: every allocation that a process or a frame from the wire can
//! make the nucleus do is either fallible (`try_reserve`, [`try_copy`]) or
//! admitted first by [`can_spend`], which keeps [`RESERVE`] bytes free for
//! the small bookkeeping that follows (tree nodes, queue slots, boxes of a
//! few hundred bytes). A request that does not fit gets `NoSpace`.

use crate::board;
use crate::sync::{IrqMutex, IrqRawMutex};
use alloc::vec::Vec;
use amoeba_abi::Status;
use core::alloc::{GlobalAlloc, Layout};
use core::ops::Range;
use core::sync::atomic::{AtomicUsize, Ordering};
use talc::{TalcLock, source::Manual};

/// Heap bytes kept free for the nucleus's own bookkeeping: work for a
/// process starts only if it leaves at least this much.
pub const RESERVE: usize = 2 << 20;

/// Size classes of the cache: 16, 32, ... `LARGEST_CACHED` bytes.
const CLASS_BYTES: usize = 16;
const LARGEST_CACHED: usize = 512;
const CLASSES: usize = LARGEST_CACHED / CLASS_BYTES;
/// Freed blocks kept per class (at most ~260 KiB in all).
const CACHED_PER_CLASS: usize = 32;

/// The class of `layout` (0 for 1..=16 bytes), if its blocks are cached.
fn class_of(layout: Layout) -> Option<usize> {
    (layout.size() <= LARGEST_CACHED && layout.align() <= CLASS_BYTES)
        .then(|| layout.size().max(1).div_ceil(CLASS_BYTES) - 1)
}

/// The layout talc gives every block of `class`, whatever size was asked.
fn class_layout(class: usize) -> Layout {
    // A multiple of 16 no larger than LARGEST_CACHED, aligned to 16: valid.
    Layout::from_size_align((class + 1) * CLASS_BYTES, CLASS_BYTES).unwrap_or(Layout::new::<u128>())
}

/// Freed blocks of one class, linked through their first word.
#[derive(Clone, Copy)]
struct FreeList {
    head: *mut u8,
    len: usize,
}

/// The free lists, one per class.
struct SizeClasses([FreeList; CLASSES]);

// SAFETY: the lists hold blocks nobody else references (freed to us); they
// are reached only under the `IrqMutex`, on the one core.
unsafe impl Send for SizeClasses {}

/// talc behind a lock that masks IRQs (interrupt handlers allocate too),
/// the free lists in front of it, and the bytes talc has handed out.
struct CountingHeap {
    talc: TalcLock<IrqRawMutex, Manual>,
    cache: IrqMutex<SizeClasses>,
    in_use: AtomicUsize,
    size: AtomicUsize,
}

#[global_allocator]
static ALLOCATOR: CountingHeap = CountingHeap {
    talc: TalcLock::new(Manual),
    cache: IrqMutex::new(SizeClasses([FreeList { head: core::ptr::null_mut(), len: 0 }; CLASSES])),
    in_use: AtomicUsize::new(0),
    size: AtomicUsize::new(0),
};

impl CountingHeap {
    /// A block of `layout` from talc, counted.
    fn talc_alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: `layout` has a non-zero size (callers: the `GlobalAlloc`
        // methods, whose contract says so, and class layouts of 16+ bytes).
        let pointer = unsafe { self.talc.alloc(layout) };
        if !pointer.is_null() {
            self.in_use.fetch_add(layout.size(), Ordering::Relaxed);
        }
        pointer
    }

    /// Gives a block of `layout` back to talc.
    ///
    /// # Safety
    /// `pointer` came from [`Self::talc_alloc`] with `layout` and is not used again.
    unsafe fn talc_free(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: as the caller promises.
        unsafe { self.talc.dealloc(pointer, layout) };
        self.in_use.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    /// A cached block of `class`, if one is kept.
    fn take_cached(&self, class: usize) -> Option<*mut u8> {
        let mut cache = self.cache.lock();
        let list = &mut cache.0[class];
        if list.head.is_null() {
            return None;
        }
        let block = list.head;
        // SAFETY: `block` is a free block of 16+ bytes, aligned to 16, whose
        // first word `keep` wrote: the next block of the list.
        list.head = unsafe { block.cast::<*mut u8>().read() };
        list.len -= 1;
        Some(block)
    }

    /// Keeps a freed block of `class` (false: the list is full).
    ///
    /// # Safety
    /// `block` is a block of `class_layout(class)` from talc, not used again.
    unsafe fn keep(&self, class: usize, block: *mut u8) -> bool {
        let mut cache = self.cache.lock();
        let list = &mut cache.0[class];
        if list.len >= CACHED_PER_CLASS {
            return false;
        }
        // SAFETY: the block is ours now, 16+ bytes and aligned to 16.
        unsafe { block.cast::<*mut u8>().write(list.head) };
        list.head = block;
        list.len += 1;
        true
    }
}

// SAFETY: a cached class's blocks all come from talc with that class's
// layout (16-byte multiples, 16-byte aligned), at least as large and as
// aligned as any layout of the class, and go back to talc with it; a block
// is on a free list only between its `dealloc` and its next `alloc`. Other
// layouts are forwarded to talc unchanged.
unsafe impl GlobalAlloc for CountingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class_of(layout) {
            Some(class) => self.take_cached(class).unwrap_or_else(|| self.talc_alloc(class_layout(class))),
            None => self.talc_alloc(layout),
        }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        match class_of(layout) {
            // SAFETY: it came from `alloc` with a layout of this class.
            Some(class) => unsafe {
                if !self.keep(class, pointer) {
                    self.talc_free(pointer, class_layout(class));
                }
            },
            // SAFETY: it came from talc with `layout` (the caller's contract).
            None => unsafe { self.talc_free(pointer, layout) },
        }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return core::ptr::null_mut();
        };
        match (class_of(layout), class_of(new_layout)) {
            // The block already has room for the new size.
            (Some(old), Some(new)) if old == new => pointer,
            (None, None) => {
                // SAFETY: forwarded unchanged (the caller upholds `realloc`'s contract).
                let moved = unsafe { self.talc.realloc(pointer, layout, new_size) };
                if !moved.is_null() {
                    self.in_use.fetch_add(new_size, Ordering::Relaxed);
                    self.in_use.fetch_sub(layout.size(), Ordering::Relaxed);
                }
                moved
            }
            _ => {
                // SAFETY: `new_layout` has a non-zero size (realloc's contract).
                let moved = unsafe { self.alloc(new_layout) };
                if !moved.is_null() {
                    // SAFETY: both blocks are valid for the smaller size and
                    // distinct; the old one is freed once copied.
                    unsafe {
                        core::ptr::copy_nonoverlapping(pointer, moved, layout.size().min(new_size));
                        self.dealloc(pointer, layout);
                    }
                }
                moved
            }
        }
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
