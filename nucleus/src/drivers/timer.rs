//! The EL1 physical generic timer: a periodic tick at `TICK_HZ` through the
//! GIC for time slices, plus one-shot wake-ups at any microsecond in
//! between for every deadline (sleeps, RPC and group timers), so that no
//! wake-up waits for a tick. While the board idles, only every
//! `TICKS_PER_IDLE_TICK`-th tick interrupts (they are counted all the
//! same): nothing needs a time slice then, and each interrupt wakes QEMU on
//! the host. A leaf: it reports ticks and the time, and leaves what they
//! mean to the interrupt entry point.

#![forbid(unsafe_code)]

use crate::arch::timer as registers;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub const TICK_HZ: u64 = 100;
/// While idle, ticks interrupt this much less often (10 Hz).
const TICKS_PER_IDLE_TICK: u64 = 10;

static TICKS: AtomicU64 = AtomicU64::new(0);
/// Counter value of the next periodic tick.
static NEXT_TICK: AtomicU64 = AtomicU64::new(0);
/// Counter value of the earliest requested one-shot wake-up (u64::MAX: none).
static NEXT_WAKE: AtomicU64 = AtomicU64::new(u64::MAX);
/// Whether the board idles (nothing to run until an interrupt).
static IDLE: AtomicBool = AtomicBool::new(false);

fn tick_interval() -> u64 {
    crate::arch::cpu::counter_frequency() / TICK_HZ
}

pub fn init() {
    // User programs may read the virtual counter (for their own timing).
    registers::allow_user_counter();
    NEXT_TICK.store(crate::arch::cpu::counter() + tick_interval(), Ordering::Relaxed);
    program();
    registers::enable();
    crate::drivers::gic::enable(crate::board::TIMER_INTID, arm_gic::Trigger::Level);
}

/// Sets the compare value to whichever comes first: tick (while idle, the
/// tick that ends a whole idle interval) or wake-up.
fn program() {
    let mut tick = NEXT_TICK.load(Ordering::Relaxed);
    if IDLE.load(Ordering::Relaxed) {
        tick += (TICKS_PER_IDLE_TICK - 1) * tick_interval();
    }
    registers::set_compare(tick.min(NEXT_WAKE.load(Ordering::Relaxed)));
}

/// The board starts (`true`) or stops idling: while it idles, ticks come
/// [`TICKS_PER_IDLE_TICK`] times less often (IRQs masked by caller).
pub fn set_idle(idle: bool) {
    if IDLE.swap(idle, Ordering::Relaxed) != idle {
        program();
    }
}

/// The counter value at which [`uptime_micros`] first reads `micros`:
/// rounded up, since a deadline rounded down would fire a fraction of a
/// microsecond early, find itself not yet due, and wait for the next tick.
fn counter_at(micros: u64) -> u64 {
    // Whole seconds and the rest apart, in u64 (no software u128 division
    // on every settle of the services); saturating like the u128 form.
    let frequency = crate::arch::cpu::counter_frequency();
    let seconds = (micros / 1_000_000).saturating_mul(frequency);
    seconds.saturating_add(((micros % 1_000_000) * frequency).div_ceil(1_000_000))
}

/// Asks for a timer interrupt at `micros` since boot (IRQs masked by caller).
pub fn wake_at(micros: u64) {
    let at = counter_at(micros);
    if at < NEXT_WAKE.load(Ordering::Relaxed) {
        NEXT_WAKE.store(at, Ordering::Relaxed);
        program();
    }
}

/// Timer interrupt: counts ticks that are due, clears a passed wake-up,
/// and says whether a tick passed (the caller tells the scheduler).
pub fn handle_interrupt() -> bool {
    let now = crate::arch::cpu::counter();
    let mut next_tick = NEXT_TICK.load(Ordering::Relaxed);
    let mut ticked = false;
    while next_tick <= now {
        TICKS.fetch_add(1, Ordering::Relaxed);
        next_tick += tick_interval();
        ticked = true;
    }
    NEXT_TICK.store(next_tick, Ordering::Relaxed);
    if NEXT_WAKE.load(Ordering::Relaxed) <= now {
        NEXT_WAKE.store(u64::MAX, Ordering::Relaxed);
    }
    program();
    ticked
}

/// Microseconds since the counter started, by the counter (finer than ticks).
pub fn uptime_micros() -> u64 {
    let frequency = crate::arch::cpu::counter_frequency().max(1);
    let counter = crate::arch::cpu::counter();
    // Whole seconds and the rest apart, in u64: the same value as one u128
    // division, without its software routine on every system call.
    (counter / frequency) * 1_000_000 + (counter % frequency) * 1_000_000 / frequency
}

pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Milliseconds since the timer started, by ticks.
pub fn uptime_millis() -> u64 {
    ticks() * 1000 / TICK_HZ
}
