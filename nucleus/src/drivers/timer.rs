//! The EL1 physical generic timer: a periodic tick at `TICK_HZ` through the
//! GIC for time slices, plus one-shot wake-ups at any microsecond in
//! between for every deadline (sleeps, RPC and group timers), so that no
//! wake-up waits for a tick. While the board idles there is no tick at all,
//! only the wake-ups (the ticks passed meanwhile are counted when it stops
//! idling): nothing needs a time slice then, each interrupt would wake QEMU
//! on the host, and interrupts that come with the host's time rather than
//! with work would land in the instruction counts (`just bench
//! --instructions`) by the host's timing. For the same reason the services'
//! wake-up is set exactly, later as well as earlier, so that a timer pushed
//! back by traffic (a member hearing its sequencer) interrupts nobody. A
//! leaf: it reports ticks and the time, and leaves what they mean to the
//! interrupt entry point.

#![forbid(unsafe_code)]

use crate::arch::timer as registers;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub const TICK_HZ: u64 = 100;

static TICKS: AtomicU64 = AtomicU64::new(0);
/// Counter value of the next periodic tick.
static NEXT_TICK: AtomicU64 = AtomicU64::new(0);
/// Counter value of the earliest requested one-shot wake-up (u64::MAX: none).
static NEXT_WAKE: AtomicU64 = AtomicU64::new(u64::MAX);
/// Counter value of the services' wake-up (u64::MAX: none), set exactly.
static SERVICES_WAKE: AtomicU64 = AtomicU64::new(u64::MAX);
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

/// Sets the compare value to whichever comes first: a wake-up or (unless
/// the board idles) the tick. With neither, the compare value is the
/// counter's end, which it never reaches.
fn program() {
    let wake = NEXT_WAKE.load(Ordering::Relaxed).min(SERVICES_WAKE.load(Ordering::Relaxed));
    let tick = if IDLE.load(Ordering::Relaxed) { u64::MAX } else { NEXT_TICK.load(Ordering::Relaxed) };
    registers::set_compare(tick.min(wake));
}

/// Counts the ticks due by the counter value `now`; whether there were any.
fn count_ticks(now: u64) -> bool {
    let mut next_tick = NEXT_TICK.load(Ordering::Relaxed);
    if next_tick > now {
        return false;
    }
    let interval = tick_interval().max(1);
    let passed = (now - next_tick) / interval + 1;
    TICKS.fetch_add(passed, Ordering::Relaxed);
    next_tick += passed * interval;
    NEXT_TICK.store(next_tick, Ordering::Relaxed);
    true
}

/// The board starts (`true`) or stops idling: while it idles, there are no
/// ticks; the ones that passed are counted when it stops (IRQs masked by
/// caller).
pub fn set_idle(idle: bool) {
    if IDLE.swap(idle, Ordering::Relaxed) != idle {
        if !idle {
            count_ticks(crate::arch::cpu::counter());
        }
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

/// Sets the services' wake-up to `micros` since boot, or to none, whether
/// earlier or later than before (IRQs masked by caller).
pub fn set_services_wake(micros: Option<u64>) {
    let at = micros.map_or(u64::MAX, counter_at);
    if SERVICES_WAKE.swap(at, Ordering::Relaxed) != at {
        program();
    }
}

/// Timer interrupt: counts ticks that are due, clears passed wake-ups,
/// and says whether a tick passed (the caller tells the scheduler and sets
/// the wake-ups still ahead).
pub fn handle_interrupt() -> bool {
    let now = crate::arch::cpu::counter();
    let ticked = count_ticks(now);
    for wake in [&NEXT_WAKE, &SERVICES_WAKE] {
        if wake.load(Ordering::Relaxed) <= now {
            wake.store(u64::MAX, Ordering::Relaxed);
        }
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
