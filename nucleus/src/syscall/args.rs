//! System call arguments, decoded once from the six argument registers
//! into a typed [`Call`]: numbers in range, flags known, lengths within
//! limits. What needs the caller's memory (pointers, capabilities) is
//! checked by the handlers, against the caller's own mappings.
//!
//! Decoding is a pure function of the registers, so it lives in the
//! library and is tested on the host; the kernel's `syscall` module hands
//! each decoded call to its handler.

#![forbid(unsafe_code)]

use crate::call_types::{
    Disposition, GetRequestArgs, GroupCreateArgs, GroupReceiveArgs, MAX_RESILIENCE, MapFlags, PutReplyArgs,
    SYSCALL_ARGS, Tid, TransArgs, UserRange,
};
use crate::server_requests::{self as server, ProcessOp};
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    Trans(TransArgs),
    GetRequest(GetRequestArgs),
    PutReply(PutReplyArgs),
    GroupCreate(GroupCreateArgs),
    GroupJoin {
        cap: u64,
    },
    GroupSend {
        handle: u16,
        message: UserRange,
    },
    GroupReceive(GroupReceiveArgs),
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

fn group_create(a: [u64; SYSCALL_ARGS]) -> Result<GroupCreateArgs, Status> {
    let [get_port, resilience, cap_out, bb_threshold, min_reset_members, ..] = a;
    if get_port == 0 || get_port >> GET_PORT_BITS != 0 || resilience > MAX_RESILIENCE as u64 {
        return Err(Status::ArgBad);
    }
    Ok(GroupCreateArgs {
        get_port,
        resilience: resilience as u16,
        cap_out,
        bb_threshold: u32_arg(bb_threshold)?,
        min_reset_members: u16::try_from(min_reset_members).map_err(|_| Status::ArgBad)?,
    })
}

impl Call {
    /// Whether the call acts on the nucleus's services (RPC, groups, the
    /// process server) rather than on the core alone (threads, futexes,
    /// signals, memory, time). Only these take the services' lock and settle
    /// them: a core call then costs the same whatever the services hold (a
    /// core event it causes, such as a process ending, wakes the network
    /// thread, which hands it to the services at once).
    pub fn needs_services(&self) -> bool {
        // Exhaustive: a new call must say where it goes.
        match self {
            Call::ProcessCreate { .. }
            | Call::ProcessControl { .. }
            | Call::ProcessWait { .. }
            | Call::ProcessInspect { .. }
            | Call::Restrict { .. }
            | Call::Trans(_)
            | Call::GetRequest(_)
            | Call::PutReply(_)
            | Call::GroupCreate(_)
            | Call::GroupJoin { .. }
            | Call::GroupSend { .. }
            | Call::GroupReceive(_)
            | Call::GroupLeave { .. }
            | Call::GroupInfo { .. } => true,
            Call::Exit { .. }
            | Call::ConsoleWrite(_)
            | Call::Yield
            | Call::ThreadCreate { .. }
            | Call::ThreadExit { .. }
            | Call::ThreadJoin { .. }
            | Call::FutexWait { .. }
            | Call::FutexWake { .. }
            | Call::SignalAction { .. }
            | Call::SignalRaise { .. }
            | Call::SignalReturn
            | Call::SegmentCreate { .. }
            | Call::SegmentMap { .. }
            | Call::SegmentUnmap { .. }
            | Call::SegmentRead(_)
            | Call::SegmentWrite(_)
            | Call::SegmentDestroy { .. }
            | Call::Time
            | Call::Sleep { .. }
            | Call::MemoryInfo { .. } => false,
        }
    }

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
            Syscall::Trans => Call::Trans(TransArgs {
                header: a[0],
                request: UserRange::new(a[1], a[2]),
                reply_header: a[3],
                reply: UserRange::new(a[4], a[5]),
            }),
            Syscall::GetRequest => Call::GetRequest(GetRequestArgs {
                get_port: a[0],
                header_out: a[1],
                buffer: UserRange::new(a[2], a[3]),
            }),
            Syscall::PutReply => {
                Call::PutReply(PutReplyArgs { header: a[0], reply: UserRange::new(a[1], a[2]) })
            }
            Syscall::GroupCreate => Call::GroupCreate(group_create(a)?),
            Syscall::GroupJoin => Call::GroupJoin { cap: a[0] },
            Syscall::GroupSend => {
                Call::GroupSend { handle: u16_arg(a[0])?, message: UserRange::new(a[1], a[2]) }
            }
            Syscall::GroupReceive => Call::GroupReceive(GroupReceiveArgs {
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

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use amoeba_abi::syscall::{
        MAP_EXECUTE, MAP_WRITE, PROCESS_DESTROY, PROCESS_RESUME, PROCESS_SIGNAL_BASE, PROCESS_STUN,
    };
    use proptest::prelude::*;

    /// The system call a decoded call is (exhaustive: a new call must be
    /// named here).
    fn syscall_of(call: &Call) -> Syscall {
        match call {
            Call::Exit { .. } => Syscall::Exit,
            Call::ConsoleWrite(_) => Syscall::ConsoleWrite,
            Call::Yield => Syscall::Yield,
            Call::ThreadCreate { .. } => Syscall::ThreadCreate,
            Call::ThreadExit { .. } => Syscall::ThreadExit,
            Call::ThreadJoin { .. } => Syscall::ThreadJoin,
            Call::FutexWait { .. } => Syscall::FutexWait,
            Call::FutexWake { .. } => Syscall::FutexWake,
            Call::SignalAction { .. } => Syscall::SignalAction,
            Call::SignalRaise { .. } => Syscall::SignalRaise,
            Call::SignalReturn => Syscall::SignalReturn,
            Call::SegmentCreate { .. } => Syscall::SegmentCreate,
            Call::SegmentMap { .. } => Syscall::SegmentMap,
            Call::SegmentUnmap { .. } => Syscall::SegmentUnmap,
            Call::SegmentRead(_) => Syscall::SegmentRead,
            Call::SegmentWrite(_) => Syscall::SegmentWrite,
            Call::SegmentDestroy { .. } => Syscall::SegmentDestroy,
            Call::Time => Syscall::Time,
            Call::Sleep { .. } => Syscall::Sleep,
            Call::MemoryInfo { .. } => Syscall::MemoryInfo,
            Call::ProcessCreate { .. } => Syscall::ProcessCreate,
            Call::ProcessControl { .. } => Syscall::ProcessControl,
            Call::ProcessWait { .. } => Syscall::ProcessWait,
            Call::ProcessInspect { .. } => Syscall::ProcessInspect,
            Call::Restrict { .. } => Syscall::Restrict,
            Call::Trans(_) => Syscall::Trans,
            Call::GetRequest(_) => Syscall::GetRequest,
            Call::PutReply(_) => Syscall::PutReply,
            Call::GroupCreate(_) => Syscall::GroupCreate,
            Call::GroupJoin { .. } => Syscall::GroupJoin,
            Call::GroupSend { .. } => Syscall::GroupSend,
            Call::GroupReceive(_) => Syscall::GroupReceive,
            Call::GroupLeave { .. } => Syscall::GroupLeave,
            Call::GroupInfo { .. } => Syscall::GroupInfo,
        }
    }

    fn decode(call: Syscall, a: [u64; SYSCALL_ARGS]) -> Result<Call, Status> {
        Call::decode(call as u64, a)
    }

    #[test]
    fn every_number_decodes_to_its_own_call() {
        // All ones is a valid argument set for every call: signal 1, action
        // ignore, map flag write, op stun, port 1, resilience 1, rights 1.
        for (number, syscall) in Syscall::ALL.iter().enumerate() {
            let call = Call::decode(number as u64, [1; SYSCALL_ARGS])
                .unwrap_or_else(|status| panic!("{syscall:?} refused: {status:?}"));
            assert_eq!(syscall_of(&call), *syscall);
        }
    }

    #[test]
    fn numbers_past_the_table_are_bad_commands() {
        let count = Syscall::ALL.len() as u64;
        for number in [count, count + 1, 0x100, u64::from(u32::MAX) + 1, u64::MAX] {
            assert_eq!(Call::decode(number, [0; SYSCALL_ARGS]), Err(Status::ComBad), "{number}");
        }
    }

    #[test]
    fn console_writes_are_bounded() {
        let at_limit = decode(Syscall::ConsoleWrite, [0x1000, MAX_CONSOLE_WRITE, 0, 0, 0, 0]);
        assert_eq!(at_limit, Ok(Call::ConsoleWrite(UserRange::new(0x1000, MAX_CONSOLE_WRITE))));
        for len in [MAX_CONSOLE_WRITE + 1, u64::MAX] {
            assert_eq!(decode(Syscall::ConsoleWrite, [0x1000, len, 0, 0, 0, 0]), Err(Status::ArgBad));
        }
    }

    #[test]
    fn process_descriptors_are_bounded() {
        let at_limit = decode(Syscall::ProcessCreate, [0x1000, server::MAX_DESCRIPTOR, 0x2000, 0, 0, 0]);
        assert_eq!(
            at_limit,
            Ok(Call::ProcessCreate {
                descriptor: UserRange::new(0x1000, server::MAX_DESCRIPTOR),
                cap_out: 0x2000,
                host: 0
            })
        );
        let over = decode(Syscall::ProcessCreate, [0x1000, server::MAX_DESCRIPTOR + 1, 0x2000, 0, 0, 0]);
        assert_eq!(over, Err(Status::ArgBad));
    }

    #[test]
    fn signal_actions_need_a_real_signal_and_a_known_action() {
        let action =
            |signal, action, handler| decode(Syscall::SignalAction, [signal, action, handler, 0, 0, 0]);
        assert_eq!(
            action(2, ACTION_CATCH, 0x4000),
            Ok(Call::SignalAction { signal: 2, disposition: Disposition::Catch(0x4000) })
        );
        assert_eq!(
            action(1, ACTION_DEFAULT, 9),
            Ok(Call::SignalAction { signal: 1, disposition: Disposition::Default })
        );
        assert_eq!(
            action(u64::from(SIGNALS) - 1, ACTION_IGNORE, 0),
            Ok(Call::SignalAction { signal: SIGNALS - 1, disposition: Disposition::Ignore })
        );
        for signal in [0, u64::from(SIGNALS), 1 << 32, u64::MAX] {
            assert_eq!(action(signal, ACTION_IGNORE, 0), Err(Status::ArgBad), "signal {signal}");
        }
        for unknown in [3, 4, u64::MAX] {
            assert_eq!(action(1, unknown, 0), Err(Status::ArgBad), "action {unknown}");
        }
    }

    #[test]
    fn mapping_flags_ask_for_the_rights_they_use() {
        let map = |flags| decode(Syscall::SegmentMap, [7, 0x40_0000, flags, 0, 0, 0]);
        let read_modify = Rights(Rights::READ.bits() | Rights::MODIFY.bits());
        let cases = [
            (0, MapFlags { write: false, execute: false }, Rights::READ),
            (MAP_WRITE, MapFlags { write: true, execute: false }, read_modify),
            (MAP_EXECUTE, MapFlags { write: false, execute: true }, Rights::READ),
            (MAP_WRITE | MAP_EXECUTE, MapFlags { write: true, execute: true }, read_modify),
        ];
        for (bits, flags, needed) in cases {
            assert_eq!(map(bits), Ok(Call::SegmentMap { cap: 7, va: 0x40_0000, flags, needed }));
        }
        for unknown in [1 << 2, 1 << 63, MAP_WRITE | 1 << 8] {
            assert_eq!(map(unknown), Err(Status::ArgBad), "flags {unknown:#x}");
        }
    }

    #[test]
    fn process_operations_name_a_known_operation_or_a_real_signal() {
        let control = |op| decode(Syscall::ProcessControl, [5, op, 0, 0, 0, 0]);
        let ops = [
            (PROCESS_STUN, ProcessOp::Stun),
            (PROCESS_RESUME, ProcessOp::Resume),
            (PROCESS_DESTROY, ProcessOp::Destroy),
            (PROCESS_SIGNAL_BASE + 1, ProcessOp::Signal(1)),
            (PROCESS_SIGNAL_BASE + u64::from(SIGNALS) - 1, ProcessOp::Signal(SIGNALS - 1)),
        ];
        for (number, op) in ops {
            assert_eq!(control(number), Ok(Call::ProcessControl { cap: 5, op }));
        }
        for bad in [0, 4, PROCESS_SIGNAL_BASE, PROCESS_SIGNAL_BASE + u64::from(SIGNALS), u64::MAX] {
            assert_eq!(control(bad), Err(Status::ArgBad), "op {bad:#x}");
        }
    }

    #[test]
    fn narrow_arguments_that_do_not_fit_are_refused() {
        let too_wide_u32 = u64::from(u32::MAX) + 1;
        let too_wide_u16 = u64::from(u16::MAX) + 1;
        let refused = [
            decode(Syscall::ThreadJoin, [too_wide_u32, 0, 0, 0, 0, 0]),
            decode(Syscall::SignalRaise, [too_wide_u32, 1, 0, 0, 0, 0]),
            decode(Syscall::SignalRaise, [1, too_wide_u32, 0, 0, 0, 0]),
            decode(Syscall::Restrict, [1, 0x100, 2, 0, 0, 0]),
            decode(Syscall::GroupSend, [too_wide_u16, 1, 1, 0, 0, 0]),
            decode(Syscall::GroupReceive, [too_wide_u16, 1, 1, 1, 0, 0]),
            decode(Syscall::GroupLeave, [too_wide_u16, 0, 0, 0, 0, 0]),
            decode(Syscall::GroupInfo, [too_wide_u16, 1, 0, 0, 0, 0]),
        ];
        for (index, result) in refused.iter().enumerate() {
            assert_eq!(*result, Err(Status::ArgBad), "case {index}");
        }
        assert_eq!(
            decode(Syscall::Restrict, [1, 0xff, 2, 0, 0, 0]),
            Ok(Call::Restrict { cap: 1, rights: Rights(0xff), out: 2 })
        );
        assert_eq!(
            decode(Syscall::GroupLeave, [u64::from(u16::MAX), 0, 0, 0, 0, 0]),
            Ok(Call::GroupLeave { handle: u16::MAX })
        );
    }

    #[test]
    fn group_creation_checks_port_resilience_and_counts() {
        let create = |a: [u64; SYSCALL_ARGS]| decode(Syscall::GroupCreate, a);
        let max_port = (1 << GET_PORT_BITS) - 1;
        let resilience = u64::from(MAX_RESILIENCE);
        assert_eq!(
            create([max_port, resilience, 0x3000, 512, 2, 0]),
            Ok(Call::GroupCreate(GroupCreateArgs {
                get_port: max_port,
                resilience: MAX_RESILIENCE,
                cap_out: 0x3000,
                bb_threshold: 512,
                min_reset_members: 2,
            }))
        );
        let refused = [
            [0, 1, 0x3000, 0, 0, 0],                       // no port
            [max_port + 1, 1, 0x3000, 0, 0, 0],            // wider than 48 bits
            [1, resilience + 1, 0x3000, 0, 0, 0],          // too resilient
            [1, 1, 0x3000, u64::from(u32::MAX) + 1, 0, 0], // threshold too wide
            [1, 1, 0x3000, 0, u64::from(u16::MAX) + 1, 0], // member count too wide
            [1, u64::MAX, 0x3000, 0, 0, 0],                // resilience that wraps
        ];
        for (index, a) in refused.into_iter().enumerate() {
            assert_eq!(create(a), Err(Status::ArgBad), "case {index}");
        }
    }

    #[test]
    fn exit_status_is_the_low_word_as_signed() {
        assert_eq!(decode(Syscall::Exit, [(-7i64) as u64, 0, 0, 0, 0, 0]), Ok(Call::Exit { status: -7 }));
        assert_eq!(decode(Syscall::Exit, [0x1_0000_0003, 0, 0, 0, 0, 0]), Ok(Call::Exit { status: 3 }));
    }

    proptest! {
        /// Decoding is total: any registers give a call or a status, never a
        /// panic, and only numbers in the table give a call.
        #[test]
        fn decoding_never_panics(number in prop_oneof![0u64..64, any::<u64>()], a in any::<[u64; SYSCALL_ARGS]>()) {
            let decoded = Call::decode(number, a);
            if number >= Syscall::ALL.len() as u64 {
                prop_assert_eq!(decoded, Err(Status::ComBad));
            }
            if let Ok(call) = decoded {
                prop_assert_eq!(syscall_of(&call) as u64, number);
            }
        }

        /// Pointers and lengths of user memory pass through untouched, however
        /// wild: the decoder never reads them, and the handlers check them
        /// against the caller's mappings (with checked arithmetic).
        #[test]
        fn user_ranges_are_passed_on_as_given(a in any::<[u64; SYSCALL_ARGS]>()) {
            prop_assert_eq!(
                decode(Syscall::Trans, a),
                Ok(Call::Trans(TransArgs {
                    header: a[0],
                    request: UserRange::new(a[1], a[2]),
                    reply_header: a[3],
                    reply: UserRange::new(a[4], a[5]),
                }))
            );
            prop_assert_eq!(
                decode(Syscall::GetRequest, a),
                Ok(Call::GetRequest(GetRequestArgs { get_port: a[0], header_out: a[1], buffer: UserRange::new(a[2], a[3]) }))
            );
            prop_assert_eq!(
                decode(Syscall::PutReply, a),
                Ok(Call::PutReply(PutReplyArgs { header: a[0], reply: UserRange::new(a[1], a[2]) }))
            );
            let copy = SegmentCopy { cap: a[0], offset: a[1], buffer: UserRange::new(a[2], a[3]) };
            prop_assert_eq!(decode(Syscall::SegmentRead, a), Ok(Call::SegmentRead(copy)));
            prop_assert_eq!(decode(Syscall::SegmentWrite, a), Ok(Call::SegmentWrite(copy)));
        }

        /// A console write is accepted exactly when its length is within the
        /// limit, whatever its address.
        #[test]
        fn console_write_length_decides(va in any::<u64>(), len in prop_oneof![0..=2 * MAX_CONSOLE_WRITE, any::<u64>()]) {
            let decoded = decode(Syscall::ConsoleWrite, [va, len, 0, 0, 0, 0]);
            if len <= MAX_CONSOLE_WRITE {
                prop_assert_eq!(decoded, Ok(Call::ConsoleWrite(UserRange::new(va, len))));
            } else {
                prop_assert_eq!(decoded, Err(Status::ArgBad));
            }
        }

        /// Mapping flags are accepted exactly when no unknown bit is set.
        #[test]
        fn only_known_mapping_flags_pass(flags in any::<u64>()) {
            let decoded = decode(Syscall::SegmentMap, [1, 0x1000, flags, 0, 0, 0]);
            prop_assert_eq!(decoded.is_ok(), flags & !(MAP_WRITE | MAP_EXECUTE) == 0);
        }
    }
}
