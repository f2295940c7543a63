//! Thread, futex, signal, time and console calls.

#![forbid(unsafe_code)]

use crate::process::outcome::{AfterWake, Outcome};
use crate::process::thread::{Pid, Tid, Wait};
use crate::process::user_memory::{BAD_ADDRESS, UserRange};
use crate::process::{self, Core, Disposition};
use amoeba_abi::Status;

/// A user stack must have this much writable memory right below its top.
const STACK_PROBE: u64 = 16;
/// A stack top is rounded down to this alignment.
const STACK_ALIGN: u64 = 16;
/// Instructions are 4-byte aligned.
const INSTRUCTION: u64 = 4;

/// Most bytes one `console_write` takes (the caller writes the rest with
/// further calls): the copy is made on the kernel heap.
const CONSOLE_WRITE_MAX: u64 = 4096;

pub fn console_write(range: UserRange) -> Outcome {
    let len = range.len.min(CONSOLE_WRITE_MAX);
    let bytes = process::with(|core| {
        let pid = core.current_pid().ok_or(Status::NotFound)?;
        // The whole range must be the caller's, even the part written later.
        core.check_user(pid, range.va, range.len, false)?;
        core.copy_from_user(pid, range.va, len)
    });
    match bytes {
        Ok(bytes) => {
            crate::console::write_bytes(&bytes);
            Outcome::Done(len)
        }
        Err(status) => Outcome::Error(status),
    }
}

/// An address inside an executable mapping of `pid`.
pub fn is_code(core: &Core, pid: Pid, va: u64) -> bool {
    core.processes.get(&pid).and_then(|p| p.mapping_for(va, INSTRUCTION)).is_some_and(|m| m.flags.execute)
        && va.is_multiple_of(INSTRUCTION)
}

pub fn create(core: &mut Core, pid: Pid, entry: u64, stack_top: u64, arg: u64) -> Outcome {
    let result = (|| {
        if !is_code(core, pid, entry) {
            return Err(BAD_ADDRESS);
        }
        let sp = stack_top & !(STACK_ALIGN - 1);
        // The stack must be writable memory of the process just below `sp`.
        core.check_user(pid, sp.checked_sub(STACK_PROBE).ok_or(BAD_ADDRESS)?, STACK_PROBE, true)?;
        Ok(core.spawn_user_thread(pid, entry, sp, [arg, 0, 0, 0])? as u64)
    })();
    Outcome::from(result)
}

pub fn exit(core: &mut Core, value: u64) -> Outcome {
    let current = core.current();
    core.current_thread().exit_value = value;
    core.kill_thread(current);
    Outcome::Done(0)
}

pub fn join(core: &mut Core, pid: Pid, tid: Tid) -> Outcome {
    if tid == core.current() {
        return Outcome::Error(Status::ArgBad);
    }
    let Some(process) = core.processes.get_mut(&pid) else {
        return Outcome::Error(Status::NotFound);
    };
    if let Some(value) = process.exited_threads.remove(&tid) {
        return Outcome::Done(value);
    }
    if !process.threads.contains(&tid) {
        return Outcome::Error(Status::NotFound);
    }
    Outcome::Blocked(core.block_current(Wait::Join(tid), AfterWake::ReturnWakeResult))
}

pub fn futex_wait(core: &mut Core, pid: Pid, word: u64, expected: u32) -> Outcome {
    match core.read_user_u32(pid, word) {
        Err(status) => Outcome::Error(status),
        Ok(value) if value != expected => Outcome::Error(Status::NotNow),
        Ok(_) => {
            Outcome::Blocked(core.block_current(Wait::Futex { pid, addr: word }, AfterWake::ReturnWakeResult))
        }
    }
}

pub fn futex_wake(core: &mut Core, pid: Pid, word: u64, count: usize) -> Outcome {
    Outcome::from(
        core.read_user_u32(pid, word)
            .map(|_| core.wake_some(Wait::Futex { pid, addr: word }, count, 0) as u64),
    )
}

pub fn signal_action(core: &mut Core, pid: Pid, signal: u32, disposition: Disposition) -> Outcome {
    if let Disposition::Catch(handler) = disposition
        && !is_code(core, pid, handler)
    {
        return Outcome::Error(BAD_ADDRESS);
    }
    let slot = core.processes.get_mut(&pid).and_then(|p| p.signals.get_mut(signal as usize));
    match slot {
        Some(slot) => {
            *slot = disposition;
            Outcome::Done(0)
        }
        None => Outcome::Error(Status::ArgBad),
    }
}

pub fn signal_raise(core: &mut Core, pid: Pid, tid: Tid, signal: u32) -> Outcome {
    if core.threads.get(&tid).and_then(|t| t.process) != Some(pid) {
        return Outcome::Error(Status::NotFound);
    }
    Outcome::of(core.raise(tid, signal))
}

/// Sleeps until `micros` after `now`, to the microsecond (a one-shot timer
/// deadline, not the next tick).
pub fn sleep(core: &mut Core, now: u64, micros: u64) -> Outcome {
    if micros == 0 {
        core.request_resched();
        return Outcome::Done(0);
    }
    Outcome::Blocked(core.sleep_until(now.saturating_add(micros)))
}
