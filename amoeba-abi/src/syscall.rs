//! The system call interface between user processes and the nucleus.
//!
//! A process calls `svc #0` with the call number in `x8` and up to six
//! arguments in `x0`..`x5`; the result comes back in `x0`: zero or a
//! positive value on success, a negative [`Status`] code on error. Every
//! pointer and length is checked by the nucleus against the caller's own
//! mapped segments; a bad one yields [`Status::RpcBadAddress`], never a
//! fault.
//!
//! Capabilities are passed by pointer to their 16-byte wire form.

use crate::Status;

/// System call numbers.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Syscall {
    /// exit(status): ends the whole process.
    Exit = 0,
    /// console_write(ptr, len) -> bytes written.
    ConsoleWrite = 1,
    /// yield(): lets another thread run.
    Yield = 2,
    /// thread_create(entry, stack_top, arg) -> thread id. `entry(arg)` runs on the new stack.
    ThreadCreate = 3,
    /// thread_exit(value): ends the calling thread.
    ThreadExit = 4,
    /// thread_join(thread id) -> the thread's exit value.
    ThreadJoin = 5,
    /// futex_wait(addr, expected): sleeps while the u32 at addr equals expected.
    FutexWait = 6,
    /// futex_wake(addr, count) -> threads woken.
    FutexWake = 7,
    /// signal_action(signal, action, handler): action 0 default, 1 ignore, 2 catch.
    SignalAction = 8,
    /// signal_raise(thread id, signal): a signal to a thread of the same process.
    SignalRaise = 9,
    /// signal_return(): ends a signal handler (the runtime's trampoline calls it).
    SignalReturn = 10,
    /// segment_create(size, cap_out) -> 0; writes the owner capability.
    SegmentCreate = 11,
    /// segment_map(cap, vaddr, flags): flags bit 0 write, bit 1 execute.
    SegmentMap = 12,
    /// segment_unmap(vaddr).
    SegmentUnmap = 13,
    /// segment_read(cap, offset, buf, len) -> bytes read.
    SegmentRead = 14,
    /// segment_write(cap, offset, buf, len) -> bytes written.
    SegmentWrite = 15,
    /// segment_destroy(cap).
    SegmentDestroy = 16,
    /// time() -> microseconds since boot.
    Time = 17,
    /// sleep(microseconds).
    Sleep = 18,
    /// memory_info(out): writes a [`MemoryInfo`].
    MemoryInfo = 19,
    /// process_create(descriptor, len, cap_out) -> process id; see [`ProcessDescriptor`].
    ProcessCreate = 20,
    /// process_control(cap, op): one of the `PROCESS_*` operations.
    ProcessControl = 21,
    /// process_wait(cap, status_out) -> 0: waits for the end of the process
    /// and writes its exit status (an `i32`) to `status_out`. Exit statuses
    /// may be negative ([`EXIT_FAULT`], ...), so they never travel in `x0`,
    /// where they could be mistaken for errors.
    ProcessWait = 22,
    /// process_inspect(cap, out): writes a [`ProcessInfo`].
    ProcessInspect = 23,
    /// restrict(cap, rights, cap_out): a capability with fewer rights, for
    /// objects the nucleus serves (segments, processes).
    Restrict = 24,
    /// trans(request header, request buffer, request length, reply header
    /// out, reply buffer, reply capacity) -> reply length. Headers are the
    /// 46-byte wire form of [`crate::Header`]; the request goes to the
    /// service whose put-port is in the request header, wherever it runs.
    /// An RPC failure comes back as a negative status. A signal ends the
    /// call with `Interrupted` and the nucleus gives the transaction up:
    /// no reply is written afterwards; the server ran it at most once.
    Trans = 25,
    /// get_request(get-port, request header out, buffer, capacity) ->
    /// request length. Serves put-port F(get-port): the nucleus only
    /// registers the port for a thread that knows the private get-port.
    GetRequest = 26,
    /// put_reply(reply header, buffer, length): answers the request this
    /// thread got last.
    PutReply = 27,
    /// group_create(get-port, resilience, capability out, BB threshold,
    /// minimum reset size) -> group handle: a new group on put-port
    /// F(get-port) with this process as its only member and sequencer; its
    /// owner capability is written to `capability out`. Messages longer than
    /// the BB threshold (0: the nucleus's default) go by the BB method. After
    /// a failure the group resets if that many members are left (0: a
    /// majority; fewer than a majority lets both sides of a partition go on).
    GroupCreate = 28,
    /// group_join(capability pointer) -> group handle, once the group has
    /// let us in; `CapBad` if the group refuses the capability (it must
    /// verify and carry the receive right, `sequencer::RIGHT_RECEIVE`).
    /// A signal ends the call with `Interrupted` while the join goes on in
    /// the nucleus; the same thread's next join with the same capability
    /// takes that member over (so a retry never makes a second member).
    GroupJoin = 29,
    /// group_send(handle, buffer, length): queues a message for the total
    /// order; `NotNow` while the group's send queue is full, `Denied` if the
    /// member's capability lacks the send right (`sequencer::RIGHT_SEND`).
    GroupSend = 30,
    /// group_receive(handle, buffer, capacity, info_out) -> length: the next
    /// message in the group's order; `info_out` gets a [`GroupMessageInfo`].
    GroupReceive = 31,
    /// group_leave(handle).
    GroupLeave = 32,
    /// group_info(handle, out): writes a [`GroupState`].
    GroupInfo = 33,
}

/// Written by `group_receive` next to the message (16 bytes,
/// little-endian, in this order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupMessageInfo {
    /// Position in the group's total order.
    pub sequence: u64,
    /// The sending member's id; for membership changes, the member that
    /// joined or left; for a reset, the new sequencer.
    pub sender: u32,
    /// 1 if more entries are waiting.
    pub more: u8,
    /// [`GROUP_MESSAGE`], [`GROUP_MEMBER_JOINED`], [`GROUP_MEMBER_LEFT`] or
    /// [`GROUP_RESET`].
    pub kind: u8,
    /// How many members the group has right after this entry.
    pub members: u16,
}

/// A group entry that is an application message.
pub const GROUP_MESSAGE: u8 = 0;
/// A group entry that says a member joined (`sender`); no data.
pub const GROUP_MEMBER_JOINED: u8 = 1;
/// A group entry that says a member left or was removed (`sender`); no data.
pub const GROUP_MEMBER_LEFT: u8 = 2;
/// A group entry that says the group was reset after a failure; the data
/// is the ids of the members it dropped, each a little-endian `u32`.
pub const GROUP_RESET: u8 = 3;

impl GroupMessageInfo {
    /// The wire form the nucleus writes.
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.sequence.to_le_bytes());
        out[8..12].copy_from_slice(&self.sender.to_le_bytes());
        out[12] = self.more;
        out[13] = self.kind;
        out[14..].copy_from_slice(&self.members.to_le_bytes());
        out
    }

    /// Reads the wire form.
    pub fn decode(bytes: &[u8; 16]) -> Self {
        let [s0, s1, s2, s3, s4, s5, s6, s7, f0, f1, f2, f3, more, kind, m0, m1] = *bytes;
        GroupMessageInfo {
            sequence: u64::from_le_bytes([s0, s1, s2, s3, s4, s5, s6, s7]),
            sender: u32::from_le_bytes([f0, f1, f2, f3]),
            more,
            kind,
            members: u16::from_le_bytes([m0, m1]),
        }
    }
}

/// Written by `group_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupState {
    /// The next sequence number this member expects.
    pub expected: u64,
    /// This member's id.
    pub member_id: u32,
    /// The sequencer's member id.
    pub sequencer_id: u32,
    /// Members in the current view.
    pub members: u32,
    /// Incarnation of the group (grows with every reset).
    pub incarnation: u32,
}

impl Syscall {
    /// Every call, in number order.
    pub const ALL: [Syscall; 34] = [
        Syscall::Exit,
        Syscall::ConsoleWrite,
        Syscall::Yield,
        Syscall::ThreadCreate,
        Syscall::ThreadExit,
        Syscall::ThreadJoin,
        Syscall::FutexWait,
        Syscall::FutexWake,
        Syscall::SignalAction,
        Syscall::SignalRaise,
        Syscall::SignalReturn,
        Syscall::SegmentCreate,
        Syscall::SegmentMap,
        Syscall::SegmentUnmap,
        Syscall::SegmentRead,
        Syscall::SegmentWrite,
        Syscall::SegmentDestroy,
        Syscall::Time,
        Syscall::Sleep,
        Syscall::MemoryInfo,
        Syscall::ProcessCreate,
        Syscall::ProcessControl,
        Syscall::ProcessWait,
        Syscall::ProcessInspect,
        Syscall::Restrict,
        Syscall::Trans,
        Syscall::GetRequest,
        Syscall::PutReply,
        Syscall::GroupCreate,
        Syscall::GroupJoin,
        Syscall::GroupSend,
        Syscall::GroupReceive,
        Syscall::GroupLeave,
        Syscall::GroupInfo,
    ];

    /// The call with this number.
    pub fn from_number(number: u64) -> Option<Syscall> {
        Syscall::ALL.get(usize::try_from(number).ok()?).copied()
    }
}

/// Segment mapping flag: writable.
pub const MAP_WRITE: u64 = 1 << 0;
/// Segment mapping flag: executable.
pub const MAP_EXECUTE: u64 = 1 << 1;

/// process_control operation: freeze every thread.
pub const PROCESS_STUN: u64 = 1;
/// process_control operation: let a stunned process run again.
pub const PROCESS_RESUME: u64 = 2;
/// process_control operation: kill the process and free its memory.
pub const PROCESS_DESTROY: u64 = 3;
/// process_control operation: raise [`SIGNAL_TERMINATE`]-style signal n: `op = PROCESS_SIGNAL_BASE + n`.
pub const PROCESS_SIGNAL_BASE: u64 = 0x100;

/// Process capability right: inspect state, registers and segments.
pub const RIGHT_INSPECT: u8 = 0x02;
/// Process capability right: stun and resume.
pub const RIGHT_STUN: u8 = 0x04;
/// Process capability right: destroy.
pub const RIGHT_DESTROY: u8 = 0x08;
/// Process capability right: send signals.
pub const RIGHT_SIGNAL: u8 = 0x10;

/// Group capability right: join the group and receive its messages.
pub const GROUP_RIGHT_RECEIVE: u8 = 0x02;
/// Group capability right: send to the group (as a member).
pub const GROUP_RIGHT_SEND: u8 = 0x04;

/// Number of signals; signal 0 is not used.
pub const SIGNALS: u32 = 32;

/// Scheduling of a process's threads: time slices between them.
pub const SCHED_PREEMPTIVE: u32 = 0;
/// Scheduling of a process's threads: a thread runs until it blocks or exits;
/// other processes still get their time slices.
pub const SCHED_RUN_TO_COMPLETION: u32 = 1;

/// Exit status of a process killed by a fault (bad access, undefined instruction, ...).
pub const EXIT_FAULT: i32 = -11;
/// Exit status of a process destroyed through its capability.
pub const EXIT_DESTROYED: i32 = -9;
/// Exit status of a process ended by signal `n` it did not catch: `EXIT_SIGNAL_BASE - n`.
pub const EXIT_SIGNAL_BASE: i32 = -64;

/// Written by `memory_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryInfo {
    /// Bytes free for segments.
    pub free_bytes: u64,
    /// The largest contiguous free run.
    pub largest_free: u64,
    /// Number of free runs.
    pub free_runs: u64,
}

/// Written by `process_inspect`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    /// 0 running, 1 stunned, 2 exited.
    pub state: u32,
    /// Exit status once exited.
    pub exit_status: i32,
    /// Live threads.
    pub threads: u32,
    /// Mapped segments.
    pub segments: u32,
    /// Program counter of the first live thread (0 if none).
    pub pc: u64,
    /// Bytes of memory the process's mappings cover.
    pub mapped_bytes: u64,
}

/// The fixed part of a process descriptor passed to `process_create`,
/// followed by `name_len` bytes of program name (found in the board's
/// bundle) and `segment_count` [`DescriptorSegment`]s to map into the new
/// process in addition to the program's own.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessDescriptor {
    /// Passed to the new process's first thread in `x2`.
    pub argument: u64,
    /// [`SCHED_PREEMPTIVE`] or [`SCHED_RUN_TO_COMPLETION`].
    pub scheduling: u32,
    /// Length of the program name that follows.
    pub name_len: u32,
    /// Number of extra segments after the name.
    pub segment_count: u32,
    /// `SPAWN_*` bits.
    pub flags: u32,
}

/// [`ProcessDescriptor::flags`]: the new process gets the host capability it was
/// created with, as `HOST` in its capability environment (so that it may start
/// processes in turn).
pub const SPAWN_PASS_HOST: u32 = 1;

/// The name in a capability environment of the board's host capability, which
/// `process_create` needs (with the create right).
pub const HOST_CAPABILITY_NAME: &str = "HOST";

/// One extra segment of a [`ProcessDescriptor`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DescriptorSegment {
    /// The segment's capability (wire form).
    pub capability: [u8; 16],
    /// Where to map it.
    pub address: u64,
    /// [`MAP_WRITE`] | [`MAP_EXECUTE`].
    pub flags: u64,
}

/// The value of an error status as a syscall result.
pub const fn error(status: Status) -> i64 {
    status as i32 as i64
}

/// A syscall result split into success value and error status.
pub fn result(raw: i64) -> Result<u64, Status> {
    if raw < 0 { Err(Status::from_i32_lossy(raw as i32)) } else { Ok(raw as u64) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_dense_and_round_trip() {
        for (number, call) in Syscall::ALL.iter().enumerate() {
            assert_eq!(*call as u64, number as u64);
            assert_eq!(Syscall::from_number(number as u64), Some(*call));
        }
        assert_eq!(Syscall::from_number(Syscall::ALL.len() as u64), None);
        assert_eq!(Syscall::from_number(u64::MAX), None);
    }

    #[test]
    fn results_split_errors() {
        assert_eq!(result(5), Ok(5));
        assert_eq!(result(error(Status::RpcBadAddress)), Err(Status::RpcBadAddress));
    }
}
