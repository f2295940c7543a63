//! Kernel heap: `talc` over a range of RAM just above the nucleus image.

use crate::board;
use crate::sync::IrqRawMutex;
use core::ops::Range;
use talc::{TalcLock, source::Manual};

/// Behind a lock that masks IRQs: interrupt handlers allocate too.
#[global_allocator]
static ALLOCATOR: TalcLock<IrqRawMutex, Manual> = TalcLock::new(Manual);

/// Gives the allocator the physical range `heap` (must be unused RAM inside
/// the boot mapping). Returns the size actually claimed.
pub fn init(heap: Range<usize>) -> usize {
    let base = board::phys_to_virt(heap.start) as *mut u8;
    let size = heap.end - heap.start;
    // SAFETY: the caller hands over RAM that nothing else uses (the range lies
    // between the kernel image and the initrd/device tree, checked in main)
    // and that stays mapped for the life of the board.
    let claimed = unsafe { ALLOCATOR.lock().claim(base, size) };
    if claimed.is_some() { size } else { 0 }
}
