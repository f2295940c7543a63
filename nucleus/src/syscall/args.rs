//! System call arguments, decoded once from the six argument registers
//! into a typed [`Call`]: numbers in range, flags known, lengths within
//! limits. What needs the caller's memory (pointers, capabilities) is
//! checked by the handlers, against the caller's own mappings.

#![forbid(unsafe_code)]

use crate::arch::exception::SYSCALL_ARGS;
use crate::arch::mmu::MapFlags;
use crate::group::{self, MAX_RESILIENCE};
use crate::process::Disposition;
use crate::process::server::{self, ProcessOp};
use crate::process::thread::Tid;
use crate::process::user_memory::UserRange;
use crate::rpc;
use amoeba_abi::syscall::{SIGNALS, Syscall};
use amoeba_abi::{Rights, Status};

/// Longest console write accepted in one call.
pub const MAX_CONSOLE_WRITE: u64 = 64 * 1024;
/// A group get-port is 48 bits.
const GET_PORT_BITS: u32 = 48;

/// `signal_action`'s actions.
const ACTION_DEFAULT: u64 = 0;
const ACTION_IGNORE: u64 = 1;
const ACTION_CATCH: u64 = 2;

/// A system call with its arguments.
#[derive(Clone, Copy, Debug)]
pub enum Call {
    Exit {
        status: i32,
    },
    ConsoleWrite(UserRange),
    Yield,
    ThreadCreate {
        entry: u64,
        stack_top: u64,
        arg: u64,
    },
    ThreadExit {
        value: u64,
    },
    ThreadJoin {
        tid: Tid,
    },
    FutexWait {
        word: u64,
        expected: u32,
    },
    FutexWake {
        word: u64,
        count: usize,
    },
    /// A catching disposition still has its handler checked against the
    /// caller's code.
    SignalAction {
        signal: u32,
        disposition: Disposition,
    },
    SignalRaise {
        tid: Tid,
        signal: u32,
    },
    SignalReturn,
    SegmentCreate {
        size: usize,
        cap_out: u64,
    },
    SegmentMap {
        cap: u64,
        va: usize,
        flags: MapFlags,
        needed: Rights,
    },
    SegmentUnmap {
        va: usize,
    },
    SegmentRead(SegmentCopy),
    SegmentWrite(SegmentCopy),
    SegmentDestroy {
        cap: u64,
    },
    Time,
    Sleep {
        micros: u64,
    },
    MemoryInfo {
        out: u64,
    },
    ProcessCreate {
        descriptor: UserRange,
        cap_out: u64,
        /// Where the board's host capability is (0: none given).
        host: u64,
    },
    ProcessControl {
        cap: u64,
        op: ProcessOp,
    },
    ProcessWait {
        cap: u64,
        status_out: u64,
    },
    ProcessInspect {
        cap: u64,
        out: u64,
    },
    Restrict {
        cap: u64,
        rights: Rights,
        out: u64,
    },
    Trans(rpc::TransArgs),
    GetRequest(rpc::GetRequestArgs),
    PutReply(rpc::PutReplyArgs),
    GroupCreate(group::CreateArgs),
    GroupJoin {
        cap: u64,
    },
    GroupSend {
        handle: u16,
        message: UserRange,
    },
    GroupReceive(group::ReceiveArgs),
    GroupLeave {
        handle: u16,
    },
    GroupInfo {
        handle: u16,
        out: u64,
    },
}

/// segment_read / segment_write: the segment, an offset into it, and the
/// caller's buffer.
#[derive(Clone, Copy, Debug)]
pub struct SegmentCopy {
    pub cap: u64,
    pub offset: u64,
    pub buffer: UserRange,
}

fn u32_arg(value: u64) -> Result<u32, Status> {
    u32::try_from(value).map_err(|_| Status::ArgBad)
}

fn u16_arg(value: u64) -> Result<u16, Status> {
    u16::try_from(value).map_err(|_| Status::ArgBad)
}

fn usize_arg(value: u64) -> Result<usize, Status> {
    usize::try_from(value).map_err(|_| Status::ArgBad)
}

fn signal_arg(value: u64) -> Result<u32, Status> {
    u32_arg(value).ok().filter(|&signal| signal != 0 && signal < SIGNALS).ok_or(Status::ArgBad)
}

fn disposition(action: u64, handler: u64) -> Result<Disposition, Status> {
    match action {
        ACTION_DEFAULT => Ok(Disposition::Default),
        ACTION_IGNORE => Ok(Disposition::Ignore),
        ACTION_CATCH => Ok(Disposition::Catch(handler)),
        _ => Err(Status::ArgBad),
    }
}

fn group_create(a: [u64; SYSCALL_ARGS]) -> Result<group::CreateArgs, Status> {
    let [get_port, resilience, cap_out, bb_threshold, min_reset_members, ..] = a;
    if get_port == 0 || get_port >> GET_PORT_BITS != 0 || resilience > MAX_RESILIENCE as u64 {
        return Err(Status::ArgBad);
    }
    Ok(group::CreateArgs {
        get_port,
        resilience: resilience as u16,
        cap_out,
        bb_threshold: u32_arg(bb_threshold)?,
        min_reset_members: u16::try_from(min_reset_members).map_err(|_| Status::ArgBad)?,
    })
}

impl Call {
    /// Decodes call `number` with arguments `a` (x0..x5).
    pub fn decode(number: u64, a: [u64; SYSCALL_ARGS]) -> Result<Call, Status> {
        let call = Syscall::from_number(number).ok_or(Status::ComBad)?;
        Ok(match call {
            Syscall::Exit => Call::Exit { status: a[0] as i32 },
            Syscall::ConsoleWrite if a[1] > MAX_CONSOLE_WRITE => return Err(Status::ArgBad),
            Syscall::ConsoleWrite => Call::ConsoleWrite(UserRange::new(a[0], a[1])),
            Syscall::Yield => Call::Yield,
            Syscall::ThreadCreate => Call::ThreadCreate { entry: a[0], stack_top: a[1], arg: a[2] },
            Syscall::ThreadExit => Call::ThreadExit { value: a[0] },
            Syscall::ThreadJoin => Call::ThreadJoin { tid: u32_arg(a[0])? },
            Syscall::FutexWait => Call::FutexWait { word: a[0], expected: a[1] as u32 },
            Syscall::FutexWake => Call::FutexWake { word: a[0], count: a[1] as usize },
            Syscall::SignalAction => {
                Call::SignalAction { signal: signal_arg(a[0])?, disposition: disposition(a[1], a[2])? }
            }
            Syscall::SignalRaise => Call::SignalRaise { tid: u32_arg(a[0])?, signal: u32_arg(a[1])? },
            Syscall::SignalReturn => Call::SignalReturn,
            Syscall::SegmentCreate => Call::SegmentCreate { size: usize_arg(a[0])?, cap_out: a[1] },
            Syscall::SegmentMap => {
                let (flags, needed) = server::map_flags(a[2])?;
                Call::SegmentMap { cap: a[0], va: usize_arg(a[1])?, flags, needed }
            }
            Syscall::SegmentUnmap => Call::SegmentUnmap { va: usize_arg(a[0])? },
            Syscall::SegmentRead => Call::SegmentRead(segment_copy(a)),
            Syscall::SegmentWrite => Call::SegmentWrite(segment_copy(a)),
            Syscall::SegmentDestroy => Call::SegmentDestroy { cap: a[0] },
            Syscall::Time => Call::Time,
            Syscall::Sleep => Call::Sleep { micros: a[0] },
            Syscall::MemoryInfo => Call::MemoryInfo { out: a[0] },
            Syscall::ProcessCreate if a[1] > server::MAX_DESCRIPTOR => return Err(Status::ArgBad),
            Syscall::ProcessCreate => {
                Call::ProcessCreate { descriptor: UserRange::new(a[0], a[1]), cap_out: a[2], host: a[3] }
            }
            Syscall::ProcessControl => Call::ProcessControl { cap: a[0], op: ProcessOp::decode(a[1])? },
            Syscall::ProcessWait => Call::ProcessWait { cap: a[0], status_out: a[1] },
            Syscall::ProcessInspect => Call::ProcessInspect { cap: a[0], out: a[1] },
            Syscall::Restrict => {
                let rights = Rights(u8::try_from(a[1]).map_err(|_| Status::ArgBad)?);
                Call::Restrict { cap: a[0], rights, out: a[2] }
            }
            Syscall::Trans => Call::Trans(rpc::TransArgs {
                header: a[0],
                request: UserRange::new(a[1], a[2]),
                reply_header: a[3],
                reply: UserRange::new(a[4], a[5]),
            }),
            Syscall::GetRequest => Call::GetRequest(rpc::GetRequestArgs {
                get_port: a[0],
                header_out: a[1],
                buffer: UserRange::new(a[2], a[3]),
            }),
            Syscall::PutReply => {
                Call::PutReply(rpc::PutReplyArgs { header: a[0], reply: UserRange::new(a[1], a[2]) })
            }
            Syscall::GroupCreate => Call::GroupCreate(group_create(a)?),
            Syscall::GroupJoin => Call::GroupJoin { cap: a[0] },
            Syscall::GroupSend => {
                Call::GroupSend { handle: u16_arg(a[0])?, message: UserRange::new(a[1], a[2]) }
            }
            Syscall::GroupReceive => Call::GroupReceive(group::ReceiveArgs {
                handle: u16_arg(a[0])?,
                buffer: UserRange::new(a[1], a[2]),
                info_out: a[3],
            }),
            Syscall::GroupLeave => Call::GroupLeave { handle: u16_arg(a[0])? },
            Syscall::GroupInfo => Call::GroupInfo { handle: u16_arg(a[0])?, out: a[1] },
        })
    }
}

fn segment_copy(a: [u64; SYSCALL_ARGS]) -> SegmentCopy {
    SegmentCopy { cap: a[0], offset: a[1], buffer: UserRange::new(a[2], a[3]) }
}
