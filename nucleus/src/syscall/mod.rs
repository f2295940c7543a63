//! System calls (`svc #0` from EL0), one of the nucleus' entry points:
//! numbers and conventions are in `amoeba_abi::syscall`. The arguments are
//! decoded once into a typed [`Call`]; each handler checks what needs the
//! caller's memory and answers with one [`Outcome`] — done, error, or
//! blocked until the thread is woken. A bad argument is an error status,
//! never a kernel fault.

#![forbid(unsafe_code)]

mod memory;
mod processes;
mod threads;

use crate::arch::exception::TrapFrame;
use crate::process::outcome::Outcome;
use crate::process::sched::schedule;
use crate::process::{self, Core};
use crate::services::{self, Services};
use amoeba_abi::Status;
use amoeba_abi::syscall::error;
use nucleus::syscall_args::Call;

/// Handles the system call in `frame` for the current thread.
pub fn dispatch(frame: &mut TrapFrame) {
    let outcome = match Call::decode(frame.syscall_number(), frame.syscall_args()) {
        Err(status) => Outcome::Error(status),
        // Printing takes the console, not the nucleus' locks.
        Ok(Call::ConsoleWrite(range)) => threads::console_write(range),
        Ok(Call::SignalReturn) => process::with(|core| core.signal_return(frame))
            .map_or(Outcome::Error(Status::ArgBad), Outcome::Done),
        Ok(call) if call.needs_services() => {
            services::with(|services, core| handle_service_call(services, core, call))
        }
        Ok(call) => process::with(|core| handle_core_call(core, call)),
    };
    let value = match outcome {
        Outcome::Done(value) => value,
        Outcome::Error(status) => error(status) as u64,
        Outcome::Blocked(parked) => {
            schedule();
            // Finishing touches the core alone (see `Parked`).
            process::with(|core| parked.finish(core))
        }
    };
    frame.set_syscall_result(value);
}

/// A call on the core alone: threads, futexes, signals, memory, time.
fn handle_core_call(core: &mut Core, call: Call) -> Outcome {
    let Some(pid) = core.current_pid() else {
        return Outcome::Error(Status::SysErr);
    };
    let now = services::now();
    match call {
        Call::Exit { status } => {
            core.exit_process(pid, status);
            Outcome::Done(0)
        }
        Call::Yield => {
            core.request_resched();
            Outcome::Done(0)
        }
        Call::ThreadCreate { entry, stack_top, arg } => threads::create(core, pid, entry, stack_top, arg),
        Call::ThreadExit { value } => threads::exit(core, value),
        Call::ThreadJoin { tid } => threads::join(core, pid, tid),
        Call::FutexWait { word, expected } => threads::futex_wait(core, pid, word, expected),
        Call::FutexWake { word, count } => threads::futex_wake(core, pid, word, count),
        Call::SignalAction { signal, disposition } => threads::signal_action(core, pid, signal, disposition),
        Call::SignalRaise { tid, signal } => threads::signal_raise(core, pid, tid, signal),
        Call::Time => Outcome::Done(now),
        Call::Sleep { micros } => threads::sleep(core, now, micros),
        Call::SegmentCreate { size, cap_out } => memory::create(core, pid, size, cap_out),
        Call::SegmentMap { cap, va, flags, needed } => memory::map(core, pid, cap, va, flags, needed),
        Call::SegmentUnmap { va } => Outcome::of(core.unmap_segment(pid, va)),
        Call::SegmentRead(copy) => memory::copy(core, pid, &copy, false),
        Call::SegmentWrite(copy) => memory::copy(core, pid, &copy, true),
        Call::SegmentDestroy { cap } => memory::destroy(core, pid, cap),
        Call::MemoryInfo { out } => memory::info(core, pid, out),
        // Handled by `dispatch` itself or by `handle_service_call`.
        _ => Outcome::Error(Status::SysErr),
    }
}

/// A call on the services (see [`Call::needs_services`]); they settle
/// before the lock goes.
fn handle_service_call(services: &mut Services, core: &mut Core, call: Call) -> Outcome {
    let Some(pid) = core.current_pid() else {
        return Outcome::Error(Status::SysErr);
    };
    let now = services::now();
    match call {
        Call::ProcessCreate { descriptor, cap_out, host } => {
            processes::create(services, core, pid, descriptor, cap_out, host)
        }
        Call::ProcessControl { cap, op } => processes::control(services, core, pid, cap, op),
        Call::ProcessWait { cap, status_out } => processes::wait(services, core, pid, cap, status_out),
        Call::ProcessInspect { cap, out } => processes::inspect(services, core, pid, cap, out),
        Call::Restrict { cap, rights, out } => processes::restrict(services, core, pid, cap, rights, out),
        Call::Trans(args) => services.rpc.trans(core, now, &args),
        Call::GetRequest(args) => services.rpc.get_request(core, now, &args),
        Call::PutReply(args) => services.rpc.put_reply(core, now, &args),
        Call::GroupCreate(args) => services.groups.create(core, now, &args),
        Call::GroupJoin { cap } => services.groups.join(core, now, cap),
        Call::GroupSend { handle, message } => services.groups.send(core, now, handle, message),
        Call::GroupReceive(args) => services.groups.receive(core, &args),
        Call::GroupLeave { handle } => services.groups.leave(core, now, handle),
        Call::GroupInfo { handle, out } => services.groups.info(core, handle, out),
        // The core's calls go to `handle_core_call`.
        _ => Outcome::Error(Status::SysErr),
    }
}
