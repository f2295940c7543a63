//! Small CPU primitives: interrupt masking, waiting, barriers, counters.

use aarch64_cpu::asm;
use aarch64_cpu::registers::{CNTFRQ_EL0, CNTPCT_EL0, DAIF, Readable, Writeable};

/// Masks IRQs and returns whether they were unmasked before.
#[inline]
pub fn disable_irqs() -> bool {
    let was_enabled = !DAIF.is_set(DAIF::I);
    DAIF.write(DAIF::D::Masked + DAIF::A::Masked + DAIF::I::Masked + DAIF::F::Masked);
    was_enabled
}

/// Unmasks IRQs (and SError/debug) again.
#[inline]
pub fn enable_irqs() {
    DAIF.write(DAIF::D::Unmasked + DAIF::A::Unmasked + DAIF::I::Unmasked + DAIF::F::Masked);
}

/// Restores the state returned by [`disable_irqs`].
#[inline]
pub fn restore_irqs(were_enabled: bool) {
    if were_enabled {
        enable_irqs();
    }
}

/// Sleeps until an interrupt is pending. Call it with IRQs masked after
/// checking for work: a pending interrupt still wakes `wfi`, so no wakeup is lost.
#[inline]
pub fn wait_for_interrupt() {
    asm::wfi();
}

/// Counter frequency in Hz, as the firmware set it (62.5 MHz on QEMU virt).
pub fn counter_frequency() -> u64 {
    CNTFRQ_EL0.get()
}

/// The free-running system counter.
pub fn counter() -> u64 {
    asm::barrier::isb(asm::barrier::SY);
    CNTPCT_EL0.get()
}
