//! Locks for a single-core nucleus: a spin lock that also masks IRQs while
//! held, so an interrupt handler never spins on a lock its own CPU holds.

use crate::arch::cpu;
use core::ops::{Deref, DerefMut};

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
