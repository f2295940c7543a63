//! Time: microseconds and sleeping through the nucleus, and the generic
//! timer's virtual counter read directly at EL0 for fine measurements.

use super::sys;
use amoeba_abi::Status;
use core::time::Duration;

/// Microseconds since the board booted (the `time` system call).
pub fn now_us() -> u64 {
    sys::time()
}

/// Sleeps at least `micros` microseconds. The nucleus wakes a sleeper at
/// its deadline (a one-shot timer, not the next tick); this goes back to
/// sleep until the deadline has passed, also after a signal was handled.
pub fn sleep_us(micros: u64) {
    let deadline = now_us().saturating_add(micros);
    loop {
        let now = now_us();
        if now >= deadline {
            return;
        }
        match sys::sleep(deadline - now) {
            Ok(()) | Err(Status::Interrupted) => {}
            Err(_) => return,
        }
    }
}

/// Sleeps at least `duration`.
pub fn sleep(duration: Duration) {
    sleep_us(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX));
}

/// The virtual counter (`cntvct_el0`): ticks at [`ticks_per_second`], the
/// same on every thread and process of a board.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[inline(always)]
pub fn ticks() -> u64 {
    let ticks: u64;
    // SAFETY: the nucleus lets EL0 read the virtual counter
    // (CNTKCTL_EL1.EL0VCTEN); the `isb` keeps the read from being hoisted
    // above earlier instructions.
    unsafe {
        core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) ticks, options(nomem, nostack, preserves_flags))
    };
    ticks
}

/// The counter frequency (`cntfrq_el0`), in ticks per second.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn ticks_per_second() -> u64 {
    let frequency: u64;
    // SAFETY: readable at EL0 whenever a counter is (see `ticks`).
    unsafe {
        core::arch::asm!("mrs {}, cntfrq_el0", out(reg) frequency, options(nomem, nostack, preserves_flags))
    };
    frequency
}

/// Host stand-in: the counter exists only on the nucleus's boards.
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub fn ticks() -> u64 {
    panic!("the virtual counter is only readable on the nucleus (aarch64-unknown-none)")
}

/// Host stand-in: the counter exists only on the nucleus's boards.
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub fn ticks_per_second() -> u64 {
    panic!("the virtual counter is only readable on the nucleus (aarch64-unknown-none)")
}

/// Instructions the board has retired (the PMU's INST_RETIRED event counter,
/// which the nucleus lets EL0 read): the low 32 bits, so take differences with
/// `wrapping_sub`. It counts every instruction of the board (all processes and
/// the nucleus, not in `wfi`), and only under QEMU's `-icount`; zero otherwise.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[inline(always)]
pub fn instructions() -> u32 {
    let count: u64;
    // SAFETY: the nucleus sets PMUSERENR_EL0.ER, so EL0 may read event counters.
    unsafe {
        core::arch::asm!("isb", "mrs {}, pmevcntr0_el0", out(reg) count, options(nomem, nostack, preserves_flags))
    };
    count as u32
}

/// Host stand-in: the PMU exists only on the nucleus's boards.
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub fn instructions() -> u32 {
    panic!("the instruction counter is only readable on the nucleus (aarch64-unknown-none)")
}

/// `ticks` of the counter in nanoseconds.
pub fn ticks_to_nanos(ticks: u64) -> u64 {
    let frequency = ticks_per_second().max(1);
    (ticks as u128 * 1_000_000_000 / frequency as u128) as u64
}
