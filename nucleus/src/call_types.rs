//! The plain data system calls decode into: thread and process ids, user
//! memory ranges, mapping flags, signal dispositions, and the arguments of
//! the RPC and group calls. They live in the library, below every layer of
//! the kernel, so that the decoder (`syscall/args.rs`) and its host tests can
//! name them; the kernel's modules re-export each where it is used.

#![forbid(unsafe_code)]

/// Arguments a system call takes in registers (x0..x5).
pub const SYSCALL_ARGS: usize = 6;

pub type Tid = u32;
pub type Pid = u32;

/// A range of a process's memory as a system call names it (not checked
/// yet: checking needs the process's mappings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserRange {
    pub va: u64,
    pub len: u64,
}

impl UserRange {
    pub fn new(va: u64, len: u64) -> Self {
        Self { va, len }
    }
}

/// How a user mapping may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapFlags {
    pub write: bool,
    pub execute: bool,
}

/// What a signal does to a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    Default,
    Ignore,
    Catch(u64),
}

/// `trans`: the request (header and buffer) and where the reply goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransArgs {
    pub header: u64,
    pub request: UserRange,
    pub reply_header: u64,
    pub reply: UserRange,
}

/// `get_request`: the get-port (6 bytes) and where the request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetRequestArgs {
    pub get_port: u64,
    pub header_out: u64,
    pub buffer: UserRange,
}

/// `put_reply`: the reply header and buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutReplyArgs {
    pub header: u64,
    pub reply: UserRange,
}

/// The highest resilience degree a group may ask for.
pub const MAX_RESILIENCE: u16 = 16;

/// `group_create`: the group's get-port (48 bits, not 0), its resilience,
/// where the owner capability goes, the BB threshold (0: the default), and
/// how many members a reset needs (0: a majority).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupCreateArgs {
    pub get_port: u64,
    pub resilience: u16,
    pub cap_out: u64,
    pub bb_threshold: u32,
    pub min_reset_members: u16,
}

/// `group_receive`: the member, where the entry goes and its info.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupReceiveArgs {
    pub handle: u16,
    pub buffer: UserRange,
    pub info_out: u64,
}
