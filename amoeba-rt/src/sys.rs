//! System calls: the raw `svc #0` and one typed wrapper per call.
//!
//! The ABI is in [`amoeba_abi::syscall`]: call number in `x8`, arguments in
//! `x0`..`x5`, result in `x0` (negative = [`Status`] error). The nucleus
//! preserves every other register. Wrappers that take plain addresses, and
//! could make the nucleus write into memory Rust owns or run code anywhere,
//! are `unsafe`; the rest are safe and take references and slices.

use alloc::vec::Vec;
use amoeba_abi::syscall::{self as abi, Syscall, result};
use amoeba_abi::{Capability, GetPort, HEADER_LEN, Header, Status};
use core::sync::atomic::AtomicU32;

/// Issues system call `call` with six arguments and returns the raw result
/// (negative = error status).
///
/// # Safety
///
/// The nucleus checks every pointer against the process's mappings, but a
/// valid pointer may still name memory Rust code owns: the caller must make
/// sure whatever the call writes, maps, unmaps or starts does not break the
/// program's memory safety.
#[inline(always)]
pub unsafe fn syscall(call: Syscall, args: [u64; 6]) -> i64 {
    // SAFETY: forwarded to the caller.
    unsafe { raw(call as u64, args) }
}

/// Like [`syscall`] with any number, including ones the nucleus does not
/// know (it must answer those with [`Status::ComBad`]).
///
/// # Safety
///
/// As for [`syscall`].
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[inline(always)]
pub unsafe fn raw(number: u64, args: [u64; 6]) -> i64 {
    let ret: i64;
    // SAFETY: `svc #0` traps to the nucleus, which returns the result in x0
    // and restores every other register; memory effects are the caller's
    // responsibility (the asm is not `nomem`, so the compiler assumes any).
    unsafe {
        core::arch::asm!(
            "svc #0",
            inlateout("x0") args[0] => ret,
            in("x1") args[1],
            in("x2") args[2],
            in("x3") args[3],
            in("x4") args[4],
            in("x5") args[5],
            in("x8") number,
            options(nostack),
        );
    }
    ret
}

/// Host stand-in: system calls exist only on the nucleus.
///
/// # Safety
///
/// Always safe; it panics.
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub unsafe fn raw(number: u64, args: [u64; 6]) -> i64 {
    let _ = args;
    panic!("system call {number}: the amoeba user runtime only runs on the nucleus (aarch64-unknown-none)")
}

/// A call that only reads its arguments as values (no pointers).
fn call(call: Syscall, args: [u64; 6]) -> Result<u64, Status> {
    // SAFETY: callers pass no pointers, or pointers to memory the nucleus
    // only reads (documented at each use).
    result(unsafe { syscall(call, args) })
}

fn ptr<T>(r: *const T) -> u64 {
    r as usize as u64
}

/// exit(status): ends the whole process with `status`.
pub fn exit(status: i32) -> ! {
    loop {
        // Sign-extended, like every status.
        let _ = call(Syscall::Exit, [status as i64 as u64, 0, 0, 0, 0, 0]);
    }
}

/// console_write: writes `bytes` to the board's console; returns the number
/// of bytes written.
pub fn console_write(bytes: &[u8]) -> Result<usize, Status> {
    // The nucleus only reads the buffer.
    call(Syscall::ConsoleWrite, [ptr(bytes.as_ptr()), bytes.len() as u64, 0, 0, 0, 0]).map(|n| n as usize)
}

/// yield: lets another thread run.
pub fn yield_now() {
    let _ = call(Syscall::Yield, [0; 6]);
}

/// time: microseconds since the board booted.
pub fn time() -> u64 {
    call(Syscall::Time, [0; 6]).unwrap_or(0)
}

/// sleep: blocks for at least `micros` microseconds. Ends early with
/// [`Status::Interrupted`] if a signal arrives.
pub fn sleep(micros: u64) -> Result<(), Status> {
    call(Syscall::Sleep, [micros, 0, 0, 0, 0, 0]).map(drop)
}

/// thread_create: starts a thread of this process at `entry(arg)` with its
/// stack pointer at `stack_top`; returns the thread id.
///
/// # Safety
///
/// `entry` must be an `extern "C" fn(u64) -> !` that never returns (ending
/// with [`thread_exit`]) and is sound to call with `arg`; the memory below
/// `stack_top` must be free for the new thread's exclusive use for as long
/// as it runs.
pub unsafe fn thread_create(entry: u64, stack_top: u64, arg: u64) -> Result<u32, Status> {
    // SAFETY: forwarded to the caller.
    result(unsafe { syscall(Syscall::ThreadCreate, [entry, stack_top, arg, 0, 0, 0]) }).map(|tid| tid as u32)
}

/// thread_exit: ends the calling thread with `value` (for [`thread_join`]).
/// The last thread to end ends the process with status 0.
pub fn thread_exit(value: u64) -> ! {
    loop {
        let _ = call(Syscall::ThreadExit, [value, 0, 0, 0, 0, 0]);
    }
}

/// thread_join: waits for thread `tid` of this process to end and returns
/// its exit value. May end early with [`Status::Interrupted`] (a signal).
pub fn thread_join(tid: u32) -> Result<u64, Status> {
    call(Syscall::ThreadJoin, [tid as u64, 0, 0, 0, 0, 0])
}

/// futex_wait: sleeps while `word` holds `expected`. Returns at once with
/// [`Status::NotNow`] if it does not; [`Status::Interrupted`] if a signal
/// came; `Ok` when woken (possibly spuriously: callers re-check).
pub fn futex_wait(word: &AtomicU32, expected: u32) -> Result<(), Status> {
    // The nucleus only reads the word.
    call(Syscall::FutexWait, [ptr(word.as_ptr()), expected as u64, 0, 0, 0, 0]).map(drop)
}

/// futex_wake: wakes up to `count` threads waiting on `word`; returns how
/// many it woke.
pub fn futex_wake(word: &AtomicU32, count: u32) -> Result<u32, Status> {
    call(Syscall::FutexWake, [ptr(word.as_ptr()), count as u64, 0, 0, 0, 0]).map(|n| n as u32)
}

/// signal_action action: the default (end the process).
pub const SIGNAL_DEFAULT: u64 = 0;
/// signal_action action: ignore.
pub const SIGNAL_IGNORE: u64 = 1;
/// signal_action action: catch with a handler.
pub const SIGNAL_CATCH: u64 = 2;

/// signal_action: sets what `signal` does to this process; with
/// [`SIGNAL_CATCH`], the nucleus enters `handler` with x0 = the signal, on
/// the interrupted thread's stack (512 bytes below its stack pointer).
///
/// # Safety
///
/// With [`SIGNAL_CATCH`], `handler` must be an `extern "C" fn(u64) -> !`
/// that ends with [`signal_return`] and is sound to run at any point of any
/// thread (see [`crate::signal`], which provides one).
pub unsafe fn signal_action(signal: u32, action: u64, handler: u64) -> Result<(), Status> {
    // SAFETY: forwarded to the caller.
    result(unsafe { syscall(Syscall::SignalAction, [signal as u64, action, handler, 0, 0, 0]) }).map(drop)
}

/// signal_raise: raises `signal` in thread `tid` of this process.
pub fn signal_raise(tid: u32, signal: u32) -> Result<(), Status> {
    call(Syscall::SignalRaise, [tid as u64, signal as u64, 0, 0, 0, 0]).map(drop)
}

/// signal_return: ends a signal handler, resuming the interrupted code with
/// all its registers. Outside a handler it fails with an error.
///
/// # Safety
///
/// Inside a handler it does not return: the handler's stack frames are
/// abandoned without running destructors, so nothing on them may need one.
pub unsafe fn signal_return() -> Status {
    // SAFETY: forwarded to the caller.
    match result(unsafe { syscall(Syscall::SignalReturn, [0; 6]) }) {
        Ok(_) => Status::SysErr,
        Err(status) => status,
    }
}

/// segment_create: a new zeroed segment of at least `size` bytes; returns
/// its owner capability. The segment lives until destroyed or until this
/// process exits.
pub fn segment_create(size: u64) -> Result<Capability, Status> {
    let mut out = [0u8; Capability::LEN];
    // SAFETY: the nucleus writes 16 bytes into `out`, a local array.
    result(unsafe { syscall(Syscall::SegmentCreate, [size, ptr(out.as_mut_ptr()), 0, 0, 0, 0]) })?;
    Ok(Capability::decode(&out))
}

/// segment_map: maps the segment `cap` names at `address` (page aligned,
/// not overlapping another mapping) with [`abi::MAP_WRITE`] /
/// [`abi::MAP_EXECUTE`] flags.
///
/// Safe: the nucleus refuses to map over existing memory, so this only adds
/// memory that Rust code can reach through raw pointers alone.
pub fn segment_map(cap: &Capability, address: u64, flags: u64) -> Result<(), Status> {
    let wire = cap.encode();
    // The nucleus only reads the capability.
    call(Syscall::SegmentMap, [ptr(wire.as_ptr()), address, flags, 0, 0, 0]).map(drop)
}

/// segment_unmap: removes the mapping that starts at `address`.
///
/// # Safety
///
/// Nothing may still use the memory of that mapping (it may be the heap,
/// the stack or the program itself).
pub unsafe fn segment_unmap(address: u64) -> Result<(), Status> {
    // SAFETY: forwarded to the caller.
    result(unsafe { syscall(Syscall::SegmentUnmap, [address, 0, 0, 0, 0, 0]) }).map(drop)
}

/// segment_read: copies `buf.len()` bytes from offset `offset` of segment
/// `cap` into `buf`; returns the bytes read.
pub fn segment_read(cap: &Capability, offset: u64, buf: &mut [u8]) -> Result<usize, Status> {
    let wire = cap.encode();
    // SAFETY: the nucleus writes at most `buf.len()` bytes into `buf`.
    let raw = unsafe {
        syscall(
            Syscall::SegmentRead,
            [ptr(wire.as_ptr()), offset, ptr(buf.as_mut_ptr()), buf.len() as u64, 0, 0],
        )
    };
    result(raw).map(|n| n as usize)
}

/// segment_write: copies `buf` to offset `offset` of segment `cap`; returns
/// the bytes written.
pub fn segment_write(cap: &Capability, offset: u64, buf: &[u8]) -> Result<usize, Status> {
    let wire = cap.encode();
    // The nucleus only reads `buf` (the segment may be mapped here too, but
    // that memory is only reachable through raw pointers).
    call(Syscall::SegmentWrite, [ptr(wire.as_ptr()), offset, ptr(buf.as_ptr()), buf.len() as u64, 0, 0])
        .map(|n| n as usize)
}

/// segment_destroy: destroys the segment; its memory is freed once no
/// process maps it any more.
pub fn segment_destroy(cap: &Capability) -> Result<(), Status> {
    let wire = cap.encode();
    call(Syscall::SegmentDestroy, [ptr(wire.as_ptr()), 0, 0, 0, 0, 0]).map(drop)
}

/// memory_info: the board's free segment memory.
pub fn memory_info() -> Result<abi::MemoryInfo, Status> {
    let mut info = abi::MemoryInfo::default();
    // SAFETY: the nucleus writes one `MemoryInfo` (24 bytes, repr(C)) into
    // the local `info`; any bytes are a valid value.
    result(unsafe { syscall(Syscall::MemoryInfo, [ptr(&raw mut info), 0, 0, 0, 0, 0]) })?;
    Ok(info)
}

/// process_create: starts a process from an encoded descriptor (see
/// [`crate::process::encode_descriptor`]) with `host`, the board's host
/// capability with the create right (`None`: without one, which the nucleus
/// refuses with `Denied`); returns its process id and owner capability.
pub fn process_create(descriptor: &[u8], host: Option<&Capability>) -> Result<(u32, Capability), Status> {
    let mut out = [0u8; Capability::LEN];
    let host = host.map(Capability::encode);
    let host_ptr = host.as_ref().map_or(0, |wire| ptr(wire.as_ptr()));
    // SAFETY: the nucleus reads the descriptor and the host capability and
    // writes 16 bytes into the local `out`.
    let raw = unsafe {
        syscall(
            Syscall::ProcessCreate,
            [ptr(descriptor.as_ptr()), descriptor.len() as u64, ptr(out.as_mut_ptr()), host_ptr, 0, 0],
        )
    };
    let pid = result(raw)?;
    Ok((pid as u32, Capability::decode(&out)))
}

/// process_control: one of the `PROCESS_*` operations on process `cap`.
pub fn process_control(cap: &Capability, op: u64) -> Result<(), Status> {
    let wire = cap.encode();
    call(Syscall::ProcessControl, [ptr(wire.as_ptr()), op, 0, 0, 0, 0]).map(drop)
}

/// process_wait: waits for process `cap` to end; returns its exit status.
/// May end early with [`Status::Interrupted`] (a signal).
///
/// Exit statuses are negative for faults ([`abi::EXIT_FAULT`]), destruction
/// and signals, and collide with error codes (`EXIT_FAULT` is
/// `Status::Interrupted`'s -11), so a negative result is settled with
/// process_inspect: if the process has exited, it is its status.
pub fn process_wait(cap: &Capability) -> Result<i32, Status> {
    let wire = cap.encode();
    let mut status = [0u8; 4];
    // SAFETY: the nucleus reads the capability and writes 4 bytes into the
    // local `status`.
    let raw =
        unsafe { syscall(Syscall::ProcessWait, [ptr(wire.as_ptr()), ptr(status.as_mut_ptr()), 0, 0, 0, 0]) };
    result(raw)?;
    Ok(i32::from_le_bytes(status))
}

/// [`abi::ProcessInfo::state`] of a running process.
pub const PROCESS_RUNNING: u32 = 0;
/// [`abi::ProcessInfo::state`] of a stunned process.
pub const PROCESS_STUNNED: u32 = 1;
/// [`abi::ProcessInfo::state`] of a process that has exited.
pub const PROCESS_EXITED: u32 = 2;

/// process_inspect: the state of process `cap`.
pub fn process_inspect(cap: &Capability) -> Result<abi::ProcessInfo, Status> {
    let wire = cap.encode();
    let mut info = abi::ProcessInfo::default();
    // SAFETY: the nucleus writes one `ProcessInfo` (32 bytes, repr(C)) into
    // the local `info`; any bytes are a valid value.
    let raw =
        unsafe { syscall(Syscall::ProcessInspect, [ptr(wire.as_ptr()), ptr(&raw mut info), 0, 0, 0, 0]) };
    result(raw)?;
    Ok(info)
}

/// restrict: a capability for the same nucleus object (segment or process)
/// with only `rights` of those `cap` has.
pub fn restrict(cap: &Capability, rights: u8) -> Result<Capability, Status> {
    let wire = cap.encode();
    let mut out = [0u8; Capability::LEN];
    // SAFETY: the nucleus reads the capability and writes 16 bytes into the
    // local `out`.
    let raw = unsafe {
        syscall(Syscall::Restrict, [ptr(wire.as_ptr()), rights as u64, ptr(out.as_mut_ptr()), 0, 0, 0])
    };
    result(raw)?;
    Ok(Capability::decode(&out))
}

/// trans: sends `request` with `buf` to the service whose put-port is in
/// the request header, wherever it runs, and waits for the reply: returns
/// the reply header and the reply's length (at most `reply.len()` bytes
/// are stored in `reply`). An RPC failure is an error status; the server's
/// own outcome is the reply header's status.
///
/// A signal to the calling thread ends the call with
/// [`Status::Interrupted`]: the nucleus gives the transaction up, so nothing
/// is written into `reply` afterwards, and the server has run the request
/// at most once. The call is not retried here: FLIP's at-most-once holds
/// per transaction, and a retry would be a new transaction the server could
/// run a second time; only the caller knows whether the request may be
/// repeated.
pub fn trans(request: &Header, buf: &[u8], reply: &mut [u8]) -> Result<(Header, usize), Status> {
    // SAFETY: `reply` is valid for `reply.len()` bytes of writes.
    unsafe { trans_raw(request, buf, reply.as_mut_ptr(), reply.len()) }
}

/// [`trans`] with the reply appended to `reply`, in room for up to `limit`
/// bytes that is never zeroed first: a client stub's reply room is sized for
/// the largest reply its command may bring (32 KiB for most), and zeroing
/// it on every call cost more than the call itself. `reply` grows by the
/// reply's length only.
pub fn trans_appending(
    request: &Header,
    buf: &[u8],
    reply: &mut Vec<u8>,
    limit: usize,
) -> Result<Header, Status> {
    reply.try_reserve(limit).map_err(|_| Status::NoSpace)?;
    let room = reply.spare_capacity_mut();
    let limit = limit.min(room.len());
    // SAFETY: the spare capacity is valid for `limit` bytes of writes (u8
    // has no invalid values, so writing into uninitialised room is sound).
    let (header, len) = unsafe { trans_raw(request, buf, room.as_mut_ptr().cast::<u8>(), limit)? };
    // The nucleus never says it stored more than it was given room for; a
    // figure beyond that would be its bug, not a reason to read garbage.
    let stored = len.min(limit);
    // SAFETY: the nucleus initialised the first `stored` bytes of the spare
    // capacity (it returns how many it wrote, at most `limit`).
    unsafe { reply.set_len(reply.len() + stored) };
    Ok(header)
}

/// trans with the reply written at `reply`.
///
/// # Safety
/// `reply` must be valid for `reply_len` bytes of writes.
unsafe fn trans_raw(
    request: &Header,
    buf: &[u8],
    reply: *mut u8,
    reply_len: usize,
) -> Result<(Header, usize), Status> {
    let header = request.encode();
    let mut header_out = [0u8; HEADER_LEN];
    // SAFETY: the nucleus reads the request header and buffer, and writes
    // at most HEADER_LEN bytes into the local `header_out` and at most
    // `reply_len` bytes at `reply` (valid for them, by the caller's promise).
    let raw = unsafe {
        syscall(
            Syscall::Trans,
            [
                ptr(header.as_ptr()),
                ptr(buf.as_ptr()),
                buf.len() as u64,
                ptr(header_out.as_mut_ptr()),
                ptr(reply.cast_const()),
                reply_len as u64,
            ],
        )
    };
    let len = result(raw)?;
    let header = Header::decode(&header_out).map_err(|_| Status::SysErr)?;
    Ok((header, len as usize))
}

/// get_request: waits for a request to put-port `F(get)` (the nucleus
/// registers the port for this thread, which proves it knows the private
/// get-port); returns the request header and the request's length (at most
/// `buf.len()` bytes are stored in `buf`). Answer with [`put_reply`].
pub fn get_request(get: &GetPort, buf: &mut [u8]) -> Result<(Header, usize), Status> {
    let port = get.0.0;
    let mut header_out = [0u8; HEADER_LEN];
    // SAFETY: the nucleus reads the 6-byte port, and writes at most
    // HEADER_LEN bytes into the local `header_out` and at most `buf.len()`
    // bytes into `buf`.
    let raw = unsafe {
        syscall(
            Syscall::GetRequest,
            [ptr(port.as_ptr()), ptr(header_out.as_mut_ptr()), ptr(buf.as_mut_ptr()), buf.len() as u64, 0, 0],
        )
    };
    let len = result(raw)?;
    let header = Header::decode(&header_out).map_err(|_| Status::SysErr)?;
    Ok((header, len as usize))
}

/// put_reply: answers the request this thread got last from
/// [`get_request`].
pub fn put_reply(header: &Header, buf: &[u8]) -> Result<(), Status> {
    let header = header.encode();
    // The nucleus only reads the header and the buffer.
    call(Syscall::PutReply, [ptr(header.as_ptr()), ptr(buf.as_ptr()), buf.len() as u64, 0, 0, 0]).map(drop)
}
