//! System calls (`svc #0` from EL0): numbers and conventions are in
//! `amoeba::syscall`. Each call checks all of its arguments and answers a
//! bad one with an error status; blocking calls park the thread and finish
//! when it is woken.

use super::user_memory::BAD_ADDRESS;
use super::{Disposition, Kernel, Pid, ProcessState, ThreadState, Wait, loader, with};
use crate::arch::exception::TrapFrame;
use crate::arch::mmu::MapFlags;
use crate::memory::segments::Place;
use alloc::vec::Vec;
use amoeba::syscall::{self as abi, Syscall, error};
use amoeba::{Capability, Rights, Status};

/// Longest console write accepted in one call.
const MAX_CONSOLE_WRITE: u64 = 64 * 1024;
/// Longest process descriptor accepted.
const MAX_DESCRIPTOR: u64 = 4096;

/// What a call asks the dispatcher to do after its checks.
enum Outcome {
    Return(i64),
    /// Park the thread; the result comes from whoever wakes it.
    Block(Wait),
    /// The call blocked the thread itself (RPC); the result comes on wake-up.
    Blocked,
    /// Park the thread, then finish the call when it is woken.
    BlockThen(Wait, AfterWake),
}

/// The end of a blocking call, once its thread is woken.
enum AfterWake {
    /// Store the wake-up value (an exit status) at this user address, return 0.
    WriteStatus(u64),
}

fn rpc_outcome(outcome: crate::rpc::RpcOutcome) -> Outcome {
    match outcome {
        crate::rpc::RpcOutcome::Return(value) => Outcome::Return(value),
        crate::rpc::RpcOutcome::Blocked => Outcome::Blocked,
    }
}

fn done(result: Result<i64, Status>) -> Outcome {
    Outcome::Return(result.unwrap_or_else(error))
}

/// Handles the system call in `frame` for the current thread.
pub fn dispatch(frame: &mut TrapFrame) {
    let args = frame.syscall_args();
    let outcome = match Syscall::from_number(frame.syscall_number()) {
        None => Outcome::Return(error(Status::ComBad)),
        Some(Syscall::ConsoleWrite) => done(console_write(args[0], args[1])),
        Some(call) => with(|kernel| handle(kernel, call, args, frame)),
    };
    match outcome {
        Outcome::Return(value) => frame.set_syscall_result(value as u64),
        Outcome::Block(wait) => {
            with(|kernel| kernel.block_current(wait));
            super::schedule();
            frame.set_syscall_result(with(|kernel| kernel.current_thread().wake_result) as u64);
        }
        Outcome::Blocked => {
            super::schedule();
            frame.set_syscall_result(with(|kernel| kernel.current_thread().wake_result) as u64);
        }
        Outcome::BlockThen(wait, after) => {
            with(|kernel| kernel.block_current(wait));
            super::schedule();
            let value = with(|kernel| {
                let thread = kernel.current_thread();
                if core::mem::take(&mut thread.interrupted) {
                    return error(Status::Interrupted);
                }
                let value = thread.wake_result;
                let pid = kernel.current_pid().expect("a user thread has a process");
                match after {
                    AfterWake::WriteStatus(address) => kernel
                        .copy_to_user(pid, address, &(value as i32).to_le_bytes())
                        .map_or_else(error, |_| 0),
                }
            });
            frame.set_syscall_result(value as u64);
        }
    }
}

fn console_write(va: u64, len: u64) -> Result<i64, Status> {
    if len > MAX_CONSOLE_WRITE {
        return Err(Status::ArgBad);
    }
    let bytes = with(|kernel| {
        let pid = kernel.current_pid().ok_or(Status::NotFound)?;
        kernel.copy_from_user(pid, va, len)
    })?;
    crate::console::write_bytes(&bytes);
    Ok(len as i64)
}

fn handle(kernel: &mut Kernel, call: Syscall, a: [u64; 6], frame: &mut TrapFrame) -> Outcome {
    let Some(pid) = kernel.current_pid() else {
        return Outcome::Return(error(Status::SysErr));
    };
    match call {
        Syscall::Exit => {
            kernel.exit_process(pid, a[0] as i32);
            Outcome::Return(0)
        }
        Syscall::ConsoleWrite => Outcome::Return(error(Status::SysErr)), // handled without the lock
        Syscall::Yield => {
            kernel.need_resched = true;
            Outcome::Return(0)
        }
        Syscall::ThreadCreate => done(thread_create(kernel, pid, a[0], a[1], a[2])),
        Syscall::ThreadExit => {
            let current = kernel.current;
            kernel.current_thread().exit_value = a[0];
            kernel.kill_thread(current);
            Outcome::Return(0)
        }
        Syscall::ThreadJoin => thread_join(kernel, pid, a[0]),
        Syscall::FutexWait => match kernel.read_user_u32(pid, a[0]) {
            Err(status) => Outcome::Return(error(status)),
            Ok(value) if value != a[1] as u32 => Outcome::Return(error(Status::NotNow)),
            Ok(_) => {
                kernel.current_thread().wake_result = 0;
                Outcome::Block(Wait::Futex { pid, addr: a[0] })
            }
        },
        Syscall::FutexWake => done(
            kernel
                .read_user_u32(pid, a[0])
                .map(|_| kernel.wake_some(Wait::Futex { pid, addr: a[0] }, a[1] as usize) as i64),
        ),
        Syscall::SignalAction => done(signal_action(kernel, pid, a[0], a[1], a[2])),
        Syscall::SignalRaise => done(signal_raise(kernel, pid, a[0], a[1])),
        Syscall::SignalReturn => match kernel.current_thread().signal_saved.take() {
            Some(saved) => {
                // The interrupted state comes back whole, x0 included.
                *frame = *saved;
                Outcome::Return(frame.syscall_result() as i64)
            }
            None => Outcome::Return(error(Status::ArgBad)),
        },
        Syscall::SegmentCreate => done(segment_create(kernel, pid, a[0], a[1])),
        Syscall::SegmentMap => done(segment_map(kernel, pid, a[0], a[1], a[2])),
        Syscall::SegmentUnmap => done(
            usize::try_from(a[0])
                .map_err(|_| Status::ArgBad)
                .and_then(|va| kernel.unmap_segment(pid, va))
                .map(|_| 0),
        ),
        Syscall::SegmentRead => done(segment_copy(kernel, pid, a, false)),
        Syscall::SegmentWrite => done(segment_copy(kernel, pid, a, true)),
        Syscall::SegmentDestroy => done(kernel.read_user_capability(pid, a[0]).and_then(|cap| {
            let (id, _) = kernel.segments.lookup(&cap, Rights::DELETE)?;
            kernel.segments.destroy(id);
            Ok(0)
        })),
        Syscall::Time => Outcome::Return(crate::drivers::timer::uptime_micros() as i64),
        Syscall::Sleep => {
            if a[0] == 0 {
                kernel.need_resched = true;
                return Outcome::Return(0);
            }
            let tick_micros = 1_000_000 / crate::drivers::timer::TICK_HZ;
            // One tick more: the current tick is already partly gone.
            let ticks = a[0].div_ceil(tick_micros).min(u32::MAX as u64) + 1;
            kernel.current_thread().wake_result = 0;
            Outcome::Block(Wait::Sleep(kernel.ticks + ticks))
        }
        Syscall::MemoryInfo => {
            let info = kernel.segments.memory.fragmentation();
            let mut out = Vec::with_capacity(24);
            out.extend_from_slice(&(info.free_bytes as u64).to_le_bytes());
            out.extend_from_slice(&(info.largest_free as u64).to_le_bytes());
            out.extend_from_slice(&(info.free_runs as u64).to_le_bytes());
            done(kernel.copy_to_user(pid, a[0], &out).map(|_| 0))
        }
        Syscall::ProcessCreate => done(process_create(kernel, pid, a[0], a[1], a[2])),
        Syscall::ProcessControl => {
            done(kernel.read_user_capability(pid, a[0]).and_then(|cap| process_control(kernel, &cap, a[1])))
        }
        Syscall::ProcessWait => {
            let target = kernel
                .read_user_capability(pid, a[0])
                .and_then(|cap| kernel.process_for(&cap, Rights(abi::RIGHT_INSPECT)))
                .and_then(|target| if target == pid { Err(Status::ArgBad) } else { Ok(target) })
                .and_then(|target| kernel.check_user(pid, a[1], 4, true).map(|_| target));
            match target {
                Err(status) => Outcome::Return(error(status)),
                Ok(target) => match kernel.processes[&target].state {
                    ProcessState::Exited(status) => {
                        done(kernel.copy_to_user(pid, a[1], &status.to_le_bytes()).map(|_| 0))
                    }
                    _ => {
                        kernel.current_thread().interrupted = false;
                        Outcome::BlockThen(Wait::ProcessExit(target), AfterWake::WriteStatus(a[1]))
                    }
                },
            }
        }
        Syscall::ProcessInspect => done(process_inspect(kernel, pid, a[0], a[1])),
        Syscall::Restrict => done(restrict(kernel, pid, a[0], a[1], a[2])),
        Syscall::Trans => rpc_outcome(kernel.rpc_trans(pid, a)),
        Syscall::GetRequest => rpc_outcome(kernel.rpc_get_request(pid, a)),
        Syscall::PutReply => Outcome::Return(kernel.rpc_put_reply(pid, a)),
        Syscall::GroupCreate => done(kernel.group_create(pid, a)),
        Syscall::GroupJoin => match kernel.group_join(pid, a[0]) {
            Ok(Some(handle)) => Outcome::Return(handle),
            Ok(None) => Outcome::Blocked,
            Err(status) => Outcome::Return(error(status)),
        },
        Syscall::GroupSend => done(kernel.group_send(pid, a[0], a[1], a[2])),
        Syscall::GroupReceive => match kernel.group_receive(pid, a) {
            Ok(Some(value)) => Outcome::Return(value),
            Ok(None) => Outcome::Blocked,
            Err(status) => Outcome::Return(error(status)),
        },
        Syscall::GroupLeave => done(kernel.group_leave(pid, a[0])),
        Syscall::GroupInfo => done(kernel.group_info(pid, a[0], a[1])),
    }
}

/// An address inside an executable mapping of `pid`.
fn is_code(kernel: &Kernel, pid: Pid, va: u64) -> bool {
    kernel.processes[&pid].mapping_for(va, 4).is_some_and(|m| m.flags.execute) && va.is_multiple_of(4)
}

fn thread_create(kernel: &mut Kernel, pid: Pid, entry: u64, stack_top: u64, arg: u64) -> Result<i64, Status> {
    if !is_code(kernel, pid, entry) {
        return Err(BAD_ADDRESS);
    }
    let sp = stack_top & !0xf;
    // The stack must be writable memory of the process just below `sp`.
    kernel.check_user(pid, sp.checked_sub(16).ok_or(BAD_ADDRESS)?, 16, true)?;
    Ok(kernel.spawn_user_thread(pid, entry, sp, [arg, 0, 0, 0])? as i64)
}

fn thread_join(kernel: &mut Kernel, pid: Pid, tid: u64) -> Outcome {
    let Ok(tid) = u32::try_from(tid) else {
        return Outcome::Return(error(Status::ArgBad));
    };
    if tid == kernel.current {
        return Outcome::Return(error(Status::ArgBad));
    }
    let process = kernel.processes.get_mut(&pid).expect("current process exists");
    if let Some(value) = process.exited_threads.remove(&tid) {
        return Outcome::Return(value as i64);
    }
    if !process.threads.contains(&tid) {
        return Outcome::Return(error(Status::NotFound));
    }
    // The woken joiner gets the value; drop the record kept for late joiners.
    Outcome::Block(Wait::Join(tid))
}

fn signal_action(
    kernel: &mut Kernel,
    pid: Pid,
    signal: u64,
    action: u64,
    handler: u64,
) -> Result<i64, Status> {
    if signal == 0 || signal >= abi::SIGNALS as u64 {
        return Err(Status::ArgBad);
    }
    let disposition = match action {
        0 => Disposition::Default,
        1 => Disposition::Ignore,
        2 if is_code(kernel, pid, handler) => Disposition::Catch(handler),
        2 => return Err(BAD_ADDRESS),
        _ => return Err(Status::ArgBad),
    };
    kernel.processes.get_mut(&pid).expect("current process exists").signals[signal as usize] = disposition;
    Ok(0)
}

fn signal_raise(kernel: &mut Kernel, pid: Pid, tid: u64, signal: u64) -> Result<i64, Status> {
    let tid = u32::try_from(tid).map_err(|_| Status::ArgBad)?;
    let signal = u32::try_from(signal).map_err(|_| Status::ArgBad)?;
    if kernel.threads.get(&tid).and_then(|t| t.process) != Some(pid) {
        return Err(Status::NotFound);
    }
    kernel.raise(tid, signal)?;
    Ok(0)
}

fn segment_create(kernel: &mut Kernel, pid: Pid, size: u64, cap_out: u64) -> Result<i64, Status> {
    // Check the output first, so a bad pointer creates nothing.
    kernel.check_user(pid, cap_out, Capability::LEN as u64, true)?;
    let size = usize::try_from(size).map_err(|_| Status::ArgBad)?;
    let random = kernel.random_check();
    let (_, cap) = kernel.segments.create(size, 0, Some(pid), random)?;
    kernel.copy_to_user(pid, cap_out, &cap.encode())?;
    Ok(0)
}

fn map_flags(flags: u64) -> Result<(MapFlags, Rights), Status> {
    if flags & !(abi::MAP_WRITE | abi::MAP_EXECUTE) != 0 {
        return Err(Status::ArgBad);
    }
    let write = flags & abi::MAP_WRITE != 0;
    let needed = if write { Rights(Rights::READ.bits() | Rights::MODIFY.bits()) } else { Rights::READ };
    Ok((MapFlags { write, execute: flags & abi::MAP_EXECUTE != 0 }, needed))
}

fn segment_map(kernel: &mut Kernel, pid: Pid, cap_ptr: u64, va: u64, flags: u64) -> Result<i64, Status> {
    let cap = kernel.read_user_capability(pid, cap_ptr)?;
    let (flags, needed) = map_flags(flags)?;
    let (id, _) = kernel.segments.lookup(&cap, needed)?;
    let va = usize::try_from(va).map_err(|_| Status::ArgBad)?;
    kernel.map_segment(pid, id, va, flags)?;
    Ok(0)
}

/// segment_read / segment_write: a[0] cap, a[1] offset, a[2] buffer, a[3] length.
fn segment_copy(kernel: &mut Kernel, pid: Pid, a: [u64; 6], write: bool) -> Result<i64, Status> {
    let cap = kernel.read_user_capability(pid, a[0])?;
    let needed = if write { Rights::MODIFY } else { Rights::READ };
    let (id, segment) = kernel.segments.lookup(&cap, needed)?;
    let (offset, len) = (a[1], a[3]);
    let end = offset.checked_add(len).ok_or(Status::ArgBad)?;
    if end > segment.len() as u64 {
        return Err(Status::ArgBad);
    }
    if len == 0 {
        return Ok(0);
    }
    let segment_place = Place { segment: id, offset: offset as usize };
    // The user buffer is checked before anything is copied.
    let user = kernel.user_place(pid, a[2], len, !write)?;
    let (from, to) = if write { (user, segment_place) } else { (segment_place, user) };
    kernel.segments.copy(from, to, len as usize)?;
    Ok(len as i64)
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn process_create(
    kernel: &mut Kernel,
    pid: Pid,
    descriptor: u64,
    len: u64,
    cap_out: u64,
) -> Result<i64, Status> {
    const FIXED: usize = 24;
    const SEGMENT: usize = 32;
    if len > MAX_DESCRIPTOR || (len as usize) < FIXED {
        return Err(Status::ArgBad);
    }
    kernel.check_user(pid, cap_out, Capability::LEN as u64, true)?;
    let bytes = kernel.copy_from_user(pid, descriptor, len)?;
    let argument = read_u64(&bytes, 0);
    let scheduling = read_u32(&bytes, 8);
    let name_len = read_u32(&bytes, 12) as usize;
    let segment_count = read_u32(&bytes, 16) as usize;
    let needed = FIXED
        .checked_add(name_len)
        .and_then(|n| n.checked_add(segment_count.checked_mul(SEGMENT)?))
        .ok_or(Status::ArgBad)?;
    if needed != bytes.len() || scheduling > abi::SCHED_RUN_TO_COMPLETION {
        return Err(Status::ArgBad);
    }
    let name = core::str::from_utf8(&bytes[FIXED..FIXED + name_len]).map_err(|_| Status::ArgBad)?;
    let mut extra = Vec::new();
    for index in 0..segment_count {
        let at = FIXED + name_len + index * SEGMENT;
        let cap = Capability::from_slice(&bytes[at..at + 16]).ok_or(Status::ArgBad)?;
        let (flags, needed) = map_flags(read_u64(&bytes, at + 24))?;
        let (id, _) = kernel.segments.lookup(&cap, needed)?;
        let va = usize::try_from(read_u64(&bytes, at + 16)).map_err(|_| Status::ArgBad)?;
        extra.push((id, va, flags));
    }
    let run_to_completion = super::is_run_to_completion(scheduling);
    let child = loader::spawn_from_bundle(kernel, name, argument, None, run_to_completion, &extra)?;
    let cap = kernel.process_capability(child).ok_or(Status::SysErr)?;
    kernel.copy_to_user(pid, cap_out, &cap.encode())?;
    Ok(child as i64)
}

/// stun, resume, destroy or signal the process `cap` names.
pub fn process_control(kernel: &mut Kernel, cap: &Capability, op: u64) -> Result<i64, Status> {
    match op {
        abi::PROCESS_STUN => kernel.stun(kernel.process_for(cap, Rights(abi::RIGHT_STUN))?)?,
        abi::PROCESS_RESUME => kernel.resume(kernel.process_for(cap, Rights(abi::RIGHT_STUN))?)?,
        abi::PROCESS_DESTROY => kernel.destroy(kernel.process_for(cap, Rights(abi::RIGHT_DESTROY))?)?,
        op if op > abi::PROCESS_SIGNAL_BASE && op < abi::PROCESS_SIGNAL_BASE + abi::SIGNALS as u64 => {
            let target = kernel.process_for(cap, Rights(abi::RIGHT_SIGNAL))?;
            let first = *kernel.processes[&target].threads.first().ok_or(Status::NotFound)?;
            kernel.raise(first, (op - abi::PROCESS_SIGNAL_BASE) as u32)?;
        }
        _ => return Err(Status::ArgBad),
    }
    Ok(0)
}

fn process_inspect(kernel: &mut Kernel, pid: Pid, cap_ptr: u64, out: u64) -> Result<i64, Status> {
    let cap = kernel.read_user_capability(pid, cap_ptr)?;
    let target = kernel.process_for(&cap, Rights(abi::RIGHT_INSPECT))?;
    let process = &kernel.processes[&target];
    let (state, status) = match process.state {
        ProcessState::Running => (0u32, 0i32),
        ProcessState::Stunned => (1, 0),
        ProcessState::Exited(status) => (2, status),
    };
    let first = process.threads.first().copied();
    let threads = process.threads.len() as u32;
    let segments = process.mappings.len() as u32;
    let mapped: u64 = process.mappings.iter().map(|m| m.len as u64).sum();
    let pc = match first {
        Some(tid) if tid == kernel.current => 0,
        Some(tid) => {
            kernel.threads.get(&tid).filter(|t| t.state != ThreadState::Dead).map_or(0, |t| t.user_pc)
        }
        None => 0,
    };
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(&state.to_le_bytes());
    bytes.extend_from_slice(&status.to_le_bytes());
    bytes.extend_from_slice(&threads.to_le_bytes());
    bytes.extend_from_slice(&segments.to_le_bytes());
    bytes.extend_from_slice(&pc.to_le_bytes());
    bytes.extend_from_slice(&mapped.to_le_bytes());
    kernel.copy_to_user(pid, out, &bytes)?;
    Ok(0)
}

fn restrict(kernel: &mut Kernel, pid: Pid, cap_ptr: u64, rights: u64, out: u64) -> Result<i64, Status> {
    let cap = kernel.read_user_capability(pid, cap_ptr)?;
    let rights = Rights(u8::try_from(rights).map_err(|_| Status::ArgBad)?);
    kernel.check_user(pid, out, Capability::LEN as u64, true)?;
    let restricted = if cap.port == kernel.process_port {
        kernel.restrict_process(&cap, rights)?
    } else {
        kernel.segments.restrict(&cap, rights)?
    };
    kernel.copy_to_user(pid, out, &restricted.encode())?;
    Ok(0)
}
