//! Cache maintenance the nucleus needs.

/// Makes instructions written through the data side (a program just
/// loaded) visible to instruction fetches.
pub fn sync_instruction_cache() {
    // SAFETY: barriers and a whole instruction-cache invalidation; no
    // memory is changed.
    unsafe { core::arch::asm!("dsb ish", "ic iallu", "dsb ish", "isb", options(nostack)) };
}
