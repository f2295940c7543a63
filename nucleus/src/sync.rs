//! Locks for a single-core nucleus: a spin lock that also masks IRQs while
//! held, so an interrupt handler never spins on a lock its own CPU holds.

use crate::arch::cpu;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

pub struct IrqMutex<T> {
    inner: spin::Mutex<T>,
}

impl<T> IrqMutex<T> {
    pub const fn new(value: T) -> Self {
        Self { inner: spin::Mutex::new(value) }
    }

    /// Takes the lock with IRQs masked. On one core with IRQs masked
    /// nobody else can release a lock that is already held, so taking it
    /// twice (a lock-order bug) panics instead of hanging.
    pub fn lock(&self) -> IrqMutexGuard<'_, T> {
        let irqs_were_enabled = cpu::disable_irqs();
        let Some(guard) = self.inner.try_lock() else {
            panic!("an IrqMutex was taken while already held (deadlock)");
        };
        IrqMutexGuard { guard: Some(guard), irqs_were_enabled }
    }
}

pub struct IrqMutexGuard<'a, T> {
    guard: Option<spin::MutexGuard<'a, T>>,
    irqs_were_enabled: bool,
}

impl<T> Deref for IrqMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_ref().expect("guard is present until drop")
    }
}

impl<T> DerefMut for IrqMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_mut().expect("guard is present until drop")
    }
}

impl<T> Drop for IrqMutexGuard<'_, T> {
    fn drop(&mut self) {
        // Release the lock before IRQs come back on.
        self.guard = None;
        cpu::restore_irqs(self.irqs_were_enabled);
    }
}

/// The raw lock under the kernel heap: a spin lock that masks IRQs while
/// held, like [`IrqMutex`]. Interrupt handlers allocate (a wake-up grows a
/// run queue); with a plain spin lock, one that interrupted a thread inside
/// the allocator would spin for ever on the lock that thread holds.
pub struct IrqRawMutex {
    inner: spin::Mutex<()>,
    /// Whether IRQs were on when the holder took the lock (one holder at a time).
    irqs_were_enabled: AtomicBool,
}

// SAFETY: mutual exclusion comes from the inner spin lock; the IRQ state is
// only touched by the holder, between taking and releasing it.
unsafe impl lock_api::RawMutex for IrqRawMutex {
    const INIT: Self = Self {
        inner: <spin::Mutex<()> as lock_api::RawMutex>::INIT,
        irqs_were_enabled: AtomicBool::new(false),
    };
    type GuardMarker = lock_api::GuardNoSend;

    fn lock(&self) {
        // One core, IRQs masked: a lock already held can never be released.
        assert!(self.try_lock(), "the kernel heap was entered while in use (deadlock)");
    }

    fn try_lock(&self) -> bool {
        let were_enabled = cpu::disable_irqs();
        if <spin::Mutex<()> as lock_api::RawMutex>::try_lock(&self.inner) {
            self.irqs_were_enabled.store(were_enabled, Ordering::Relaxed);
            true
        } else {
            cpu::restore_irqs(were_enabled);
            false
        }
    }

    unsafe fn unlock(&self) {
        let were_enabled = self.irqs_were_enabled.load(Ordering::Relaxed);
        // SAFETY: lock_api calls this only for the holder of the lock.
        unsafe { <spin::Mutex<()> as lock_api::RawMutex>::unlock(&self.inner) };
        cpu::restore_irqs(were_enabled);
    }
}
