//! The one answer every system call gives: done with a value, failed with
//! a status, or blocked until someone wakes the thread.

#![forbid(unsafe_code)]

use super::Core;
use amoeba_abi::Status;
use amoeba_abi::syscall::error;

/// How a system call ends.
#[must_use]
pub enum Outcome {
    /// Done: this (non-negative) value goes back to the caller.
    Done(u64),
    /// Failed: the caller gets this status.
    Error(Status),
    /// The thread is parked; the call ends when it is woken.
    Blocked(Parked),
}

impl Outcome {
    /// An outcome with no value (0 on success).
    pub fn of<T>(result: Result<T, Status>) -> Outcome {
        match result {
            Ok(_) => Outcome::Done(0),
            Err(status) => Outcome::Error(status),
        }
    }
}

impl Outcome {
    /// A raw result (negative: an error status) as an outcome.
    pub fn from_raw(value: i64) -> Outcome {
        match u64::try_from(value) {
            Ok(value) => Outcome::Done(value),
            Err(_) => Outcome::Error(Status::from_i32_lossy(value as i32)),
        }
    }
}

impl From<Result<u64, Status>> for Outcome {
    fn from(result: Result<u64, Status>) -> Outcome {
        match result {
            Ok(value) => Outcome::Done(value),
            Err(status) => Outcome::Error(status),
        }
    }
}

/// What ends a blocked call once its thread is woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterWake {
    /// Return what the waker handed over (a value or an error status).
    ReturnWakeResult,
    /// Store the waker's value (an exit status) as an `i32` at this user
    /// address and return 0 — unless a signal cut the wait short.
    WriteStatus(u64),
}

/// Proof that the current thread was blocked (only
/// [`Core::block_current`] makes one), and how its call ends.
#[must_use]
pub struct Parked {
    then: AfterWake,
}

impl Parked {
    pub(super) fn new(then: AfterWake) -> Self {
        Self { then }
    }

    /// The call's result for the woken current thread (raw: a negative
    /// value is an error status).
    pub fn finish(self, core: &mut Core) -> u64 {
        let thread = core.current_thread();
        let interrupted = core::mem::take(&mut thread.interrupted);
        let value = thread.wake_result;
        match self.then {
            AfterWake::ReturnWakeResult => value as u64,
            AfterWake::WriteStatus(_) if interrupted => error(Status::Interrupted) as u64,
            AfterWake::WriteStatus(address) => {
                let Some(pid) = core.current_pid() else {
                    return error(Status::SysErr) as u64;
                };
                match core.copy_to_user(pid, address, &(value as i32).to_le_bytes()) {
                    Ok(()) => 0,
                    Err(status) => error(status) as u64,
                }
            }
        }
    }
}
