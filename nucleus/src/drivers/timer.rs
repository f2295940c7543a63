//! The EL1 physical generic timer, ticking at `TICK_HZ` through the GIC.

use aarch64_cpu::registers::{CNTKCTL_EL1, CNTP_CTL_EL0, CNTP_TVAL_EL0, ReadWriteable, Writeable};
use core::sync::atomic::{AtomicU64, Ordering};

pub const TICK_HZ: u64 = 100;

static TICKS: AtomicU64 = AtomicU64::new(0);

pub fn init() {
    // User programs may read the virtual counter (for their own timing).
    CNTKCTL_EL1.modify(CNTKCTL_EL1::EL0VCTEN::SET);
    rearm();
    CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::SET + CNTP_CTL_EL0::IMASK::CLEAR);
    crate::drivers::gic::enable(crate::board::TIMER_INTID, arm_gic::Trigger::Level);
}

fn rearm() {
    let interval = crate::arch::cpu::counter_frequency() / TICK_HZ;
    CNTP_TVAL_EL0.set(interval);
}

/// Timer interrupt: count the tick and set the next one.
pub fn handle_interrupt() {
    TICKS.fetch_add(1, Ordering::Relaxed);
    rearm();
    crate::process::with(|kernel| kernel.tick());
}

/// Microseconds since the counter started, by the counter (finer than ticks).
pub fn uptime_micros() -> u64 {
    let frequency = crate::arch::cpu::counter_frequency().max(1);
    (crate::arch::cpu::counter() as u128 * 1_000_000 / frequency as u128) as u64
}

pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Milliseconds since the timer started, by ticks.
pub fn uptime_millis() -> u64 {
    ticks() * 1000 / TICK_HZ
}
