//! The performance monitor's instructions-retired counter, for costs that do
//! not depend on the host: under QEMU's `-icount` the PMU's INST_RETIRED event
//! counts the instructions the board executed, exactly and repeatably (time a
//! board spends in `wfi` retires none). Without `-icount` QEMU has no such
//! event and the counter stays at zero; nothing depends on it but measurement.
//!
//! Event counter 0 counts INST_RETIRED at EL0 and EL1; user programs may read
//! it (not write it), as they read the virtual counter, to time their own work.

use core::arch::asm;

/// PMU event number of "instruction architecturally executed".
const INST_RETIRED: u64 = 0x08;
/// PMCR_EL0.E: the counters count.
const PMCR_ENABLE: u64 = 1 << 0;
/// PMUSERENR_EL0.ER: EL0 may read the event counters.
const USER_READ_EVENTS: u64 = 1 << 3;

/// Starts event counter 0 on INST_RETIRED and lets EL0 read it.
pub fn init() {
    // SAFETY: writes to PMU registers of this core only; nothing else in the
    // nucleus uses the PMU. A filter of zero counts at EL0 and EL1.
    unsafe {
        asm!("msr pmevtyper0_el0, {}", in(reg) INST_RETIRED, options(nomem, nostack));
        asm!("msr pmevcntr0_el0, xzr", options(nomem, nostack));
        asm!("msr pmcntenset_el0, {}", in(reg) 1u64, options(nomem, nostack));
        asm!("msr pmcr_el0, {}", in(reg) PMCR_ENABLE, options(nomem, nostack));
        asm!("msr pmuserenr_el0, {}", in(reg) USER_READ_EVENTS, options(nomem, nostack));
        asm!("isb", options(nomem, nostack));
    }
}

/// Instructions retired so far (a 32-bit counter: differences of readings
/// less than 2^32 instructions apart are exact with `wrapping_sub`).
#[inline(always)]
pub fn instructions() -> u32 {
    let count: u64;
    // SAFETY: reads a PMU register of this core.
    unsafe { asm!("mrs {}, pmevcntr0_el0", out(reg) count, options(nomem, nostack, preserves_flags)) };
    count as u32
}
