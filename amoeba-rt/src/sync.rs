//! Locks built on the nucleus's futexes: a thread that must wait sleeps in
//! `futex_wait` on a 32-bit word; the thread that changes the word wakes it
//! with `futex_wake`. Uncontended operations make no system call.

use super::sys;
use core::cell::UnsafeCell;
use core::fmt;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
/// Locked, and some thread may be sleeping on the word.
const CONTENDED: u32 = 2;

/// A mutual-exclusion lock protecting a `T` (futex-based).
pub struct Mutex<T: ?Sized> {
    state: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to the value to one thread at a time, so
// sharing the mutex is sound when the value itself may move between threads.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}
// SAFETY: moving the mutex moves the value.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub const fn new(value: T) -> Mutex<T> {
        Mutex { state: AtomicU32::new(UNLOCKED), value: UnsafeCell::new(value) }
    }

    /// The value, consuming the mutex.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks, sleeping while another thread holds the lock.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if self.state.compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_contended();
        }
        MutexGuard { mutex: self }
    }

    #[cold]
    fn lock_contended(&self) {
        // Mark the lock contended; whoever held it wakes a sleeper on unlock.
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            // Returns at once if the word changed (NotNow), or early on a
            // signal (Interrupted): either way, try again.
            let _ = sys::futex_wait(&self.state, CONTENDED);
        }
    }

    /// Locks if nobody holds the lock.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| MutexGuard { mutex: self })
    }

    /// The value, through exclusive access to the mutex (no locking).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    fn unlock(&self) {
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            let _ = sys::futex_wake(&self.state, 1);
        }
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.try_lock() {
            Some(guard) => f.debug_struct("Mutex").field("value", &&*guard).finish(),
            None => f.write_str("Mutex { <locked> }"),
        }
    }
}

/// Access to the value of a locked [`Mutex`]; unlocks when dropped.
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
}

// SAFETY: a guard gives `&T` access from whichever thread holds it.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this thread holds the lock.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard exists only while this thread holds the lock, and
        // `&mut self` makes this the only reference through it.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}

/// A counting semaphore (futex-based).
pub struct Semaphore {
    count: AtomicU32,
    /// Threads that may be sleeping in `acquire`.
    waiters: AtomicU32,
}

impl Semaphore {
    /// A semaphore with `permits` available.
    pub const fn new(permits: u32) -> Semaphore {
        Semaphore { count: AtomicU32::new(permits), waiters: AtomicU32::new(0) }
    }

    /// Takes a permit, sleeping until one is available.
    pub fn acquire(&self) {
        loop {
            if self.try_acquire() {
                return;
            }
            self.waiters.fetch_add(1, Ordering::SeqCst);
            // Sleeps only while the count is still 0; a `release` between
            // the check above and this call changed it, so this returns.
            let _ = sys::futex_wait(&self.count, 0);
            self.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Takes a permit if one is available.
    pub fn try_acquire(&self) -> bool {
        let mut count = self.count.load(Ordering::Relaxed);
        while count > 0 {
            match self.count.compare_exchange_weak(count, count - 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => count = now,
            }
        }
        false
    }

    /// Returns a permit, waking a sleeping `acquire`.
    pub fn release(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _ = sys::futex_wake(&self.count, 1);
        }
    }

    /// Permits available now.
    pub fn available(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore").field("available", &self.available()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncontended_mutex_needs_no_system_call() {
        let mutex = Mutex::new(5u64);
        *mutex.lock() += 1;
        assert!(mutex.try_lock().is_some());
        let guard = mutex.lock();
        assert!(mutex.try_lock().is_none());
        drop(guard);
        assert_eq!(mutex.into_inner(), 6);
    }

    #[test]
    fn semaphore_counts_without_waiting() {
        let semaphore = Semaphore::new(2);
        semaphore.acquire();
        assert!(semaphore.try_acquire());
        assert!(!semaphore.try_acquire());
        assert_eq!(semaphore.available(), 0);
    }
}
