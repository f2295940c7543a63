//! Signals between the threads of a process.
//!
//! [`catch`] registers a plain `fn(u32)`; the runtime registers its own
//! trampoline with the nucleus, which enters it on the interrupted thread's
//! stack (512 bytes below its stack pointer) with the interrupted state
//! saved in the nucleus. The trampoline calls the handler from a table and
//! ends with `signal_return`, which resumes the interrupted code.
//!
//! A handler may run between any two instructions of its thread: it must
//! not take locks that thread may hold (including the heap's: no
//! allocation). Printing is fine (it does not allocate). Atomics are the
//! way to talk to the rest of the program.

use super::sys;
use amoeba_abi::Status;
use amoeba_abi::syscall::SIGNALS;
use core::sync::atomic::{AtomicUsize, Ordering};

/// The registered handlers, as `fn(u32)` addresses (0 = none).
static HANDLERS: [AtomicUsize; SIGNALS as usize] = [const { AtomicUsize::new(0) }; SIGNALS as usize];

/// Where the nucleus enters a caught signal.
extern "C" fn trampoline(signal: u64) -> ! {
    let handler = HANDLERS.get(signal as usize).map_or(0, |slot| slot.load(Ordering::Acquire));
    if handler != 0 {
        // SAFETY: `catch` stores only `fn(u32)` pointers in the table.
        let handler: fn(u32) = unsafe { core::mem::transmute::<usize, fn(u32)>(handler) };
        handler(signal as u32);
    }
    // SAFETY: this is a signal handler, and nothing on its frames needs
    // dropping (`handler` has returned).
    let status = unsafe { sys::signal_return() };
    crate::println!("signal {signal}: signal_return failed: {status}");
    sys::exit(super::rt::PANIC_EXIT_STATUS)
}

fn check(signal: u32) -> Result<usize, Status> {
    if signal == 0 || signal >= SIGNALS {
        return Err(Status::ArgBad);
    }
    Ok(signal as usize)
}

/// Catches `signal` in every thread of this process with `handler`.
pub fn catch(signal: u32, handler: fn(u32)) -> Result<(), Status> {
    let index = check(signal)?;
    HANDLERS[index].store(handler as usize, Ordering::Release);
    let entry = trampoline as extern "C" fn(u64) -> ! as usize as u64;
    // SAFETY: the trampoline never returns and ends with signal_return; the
    // handler it calls is a safe fn.
    unsafe { sys::signal_action(signal, sys::SIGNAL_CATCH, entry) }
}

/// Ignores `signal`.
pub fn ignore(signal: u32) -> Result<(), Status> {
    check(signal)?;
    // SAFETY: no handler.
    unsafe { sys::signal_action(signal, sys::SIGNAL_IGNORE, 0) }
}

/// Restores the default action of `signal`: it ends the process with status
/// [`amoeba_abi::syscall::EXIT_SIGNAL_BASE`]` - signal`.
pub fn default(signal: u32) -> Result<(), Status> {
    check(signal)?;
    // SAFETY: no handler.
    unsafe { sys::signal_action(signal, sys::SIGNAL_DEFAULT, 0) }
}

/// Raises `signal` in thread `thread_id` of this process (for example
/// [`super::thread::JoinHandle::thread_id`]). A thread blocked in a system
/// call is woken to take it; the call then fails with
/// [`Status::Interrupted`] (the runtime's locks, joins and sleeps retry).
pub fn raise(thread_id: u32, signal: u32) -> Result<(), Status> {
    sys::signal_raise(thread_id, signal)
}
