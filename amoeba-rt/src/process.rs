//! New processes from the programs of the board's bundle, and control of
//! processes through their capabilities.

use super::sys;
use alloc::vec::Vec;
use amoeba_abi::syscall::{
    DescriptorSegment, PROCESS_DESTROY, PROCESS_RESUME, PROCESS_SIGNAL_BASE, PROCESS_STUN, ProcessInfo,
    SCHED_PREEMPTIVE, SCHED_RUN_TO_COMPLETION, SPAWN_PASS_HOST,
};
use amoeba_abi::{Capability, Status};

/// Length of the fixed part of an encoded process descriptor.
pub const DESCRIPTOR_FIXED_LEN: usize = 24;
/// Length of one encoded extra segment.
pub const DESCRIPTOR_SEGMENT_LEN: usize = 32;

/// Encodes a process descriptor for `process_create`, little endian: the
/// fixed part (`argument: u64, scheduling: u32, name_len: u32,
/// segment_count: u32, flags: u32`), the program name, then each extra
/// segment (`capability [16], address: u64, flags: u64`). No `SPAWN_*` flags.
pub fn encode_descriptor(
    argument: u64,
    scheduling: u32,
    name: &[u8],
    segments: &[DescriptorSegment],
) -> Vec<u8> {
    encode_descriptor_with_flags(argument, scheduling, name, segments, 0)
}

/// [`encode_descriptor`] with `SPAWN_*` `flags`.
pub fn encode_descriptor_with_flags(
    argument: u64,
    scheduling: u32,
    name: &[u8],
    segments: &[DescriptorSegment],
    flags: u32,
) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(DESCRIPTOR_FIXED_LEN + name.len() + segments.len() * DESCRIPTOR_SEGMENT_LEN);
    out.extend_from_slice(&argument.to_le_bytes());
    out.extend_from_slice(&scheduling.to_le_bytes());
    out.extend_from_slice(&(name.len() as u32).to_le_bytes());
    out.extend_from_slice(&(segments.len() as u32).to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(name);
    for segment in segments {
        out.extend_from_slice(&segment.capability);
        out.extend_from_slice(&segment.address.to_le_bytes());
        out.extend_from_slice(&segment.flags.to_le_bytes());
    }
    out
}

pub use amoeba_abi::syscall::HOST_CAPABILITY_NAME;

/// Describes a process to start: `Builder::new("hello").argument(7).spawn()`.
///
/// Starting a process takes the board's host capability with the create right:
/// by default the `HOST` of this process's capability environment
/// ([`HOST_CAPABILITY_NAME`]); a process started without one gets `Denied`.
#[derive(Clone, Debug)]
pub struct Builder<'a> {
    name: &'a str,
    argument: u64,
    scheduling: u32,
    segments: Vec<DescriptorSegment>,
    host: Option<Capability>,
    pass_host: bool,
}

impl<'a> Builder<'a> {
    /// Program `name` of the board's bundle, argument 0, preemptive.
    pub fn new(name: &'a str) -> Builder<'a> {
        Builder {
            name,
            argument: 0,
            scheduling: SCHED_PREEMPTIVE,
            segments: Vec::new(),
            host: super::env::capability(HOST_CAPABILITY_NAME),
            pass_host: false,
        }
    }

    /// Starts it with `host` (a host capability of this board with the create
    /// right) instead of the environment's `HOST`; `None`: with none at all.
    pub fn host(mut self, host: Option<Capability>) -> Self {
        self.host = host;
        self
    }

    /// Hands the host capability on to the new process as its `HOST`, so that
    /// it may start processes too.
    pub fn pass_host(mut self, yes: bool) -> Self {
        self.pass_host = yes;
        self
    }

    /// The value the first thread gets in `x2` (`main`'s argument).
    pub fn argument(mut self, argument: u64) -> Self {
        self.argument = argument;
        self
    }

    /// Run-to-completion scheduling of the new process's threads (a thread
    /// keeps the processor until it blocks or exits) instead of time slices.
    pub fn run_to_completion(mut self, yes: bool) -> Self {
        self.scheduling = if yes { SCHED_RUN_TO_COMPLETION } else { SCHED_PREEMPTIVE };
        self
    }

    /// Maps segment `cap` into the new process at `address` with `MAP_*`
    /// `flags`, besides the program's own segments.
    pub fn map_segment(mut self, cap: &Capability, address: u64, flags: u64) -> Self {
        self.segments.push(DescriptorSegment { capability: cap.encode(), address, flags });
        self
    }

    /// The encoded descriptor.
    pub fn descriptor(&self) -> Vec<u8> {
        let flags = if self.pass_host { SPAWN_PASS_HOST } else { 0 };
        encode_descriptor_with_flags(
            self.argument,
            self.scheduling,
            self.name.as_bytes(),
            &self.segments,
            flags,
        )
    }

    /// Starts the process on this board.
    pub fn spawn(&self) -> Result<Process, Status> {
        let (pid, cap) = sys::process_create(&self.descriptor(), self.host.as_ref())?;
        Ok(Process { pid, cap })
    }
}

/// Starts program `name` of the board's bundle with `argument`.
pub fn spawn(name: &str, argument: u64) -> Result<Process, Status> {
    Builder::new(name).argument(argument).spawn()
}

/// A process known by capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Process {
    /// The process id on its board.
    pub pid: u32,
    /// The capability (the owner's from `spawn`).
    pub cap: Capability,
}

impl Process {
    /// Waits for the process to end; returns its exit status (negative
    /// statuses: [`amoeba_abi::syscall::EXIT_FAULT`], `EXIT_DESTROYED`,
    /// `EXIT_SIGNAL_BASE - n`). Retries when a signal interrupts the wait.
    pub fn wait(&self) -> Result<i32, Status> {
        loop {
            match sys::process_wait(&self.cap) {
                Err(Status::Interrupted) => continue,
                other => return other,
            }
        }
    }

    /// Its state, threads, mappings and program counter.
    pub fn inspect(&self) -> Result<ProcessInfo, Status> {
        sys::process_inspect(&self.cap)
    }

    /// Freezes all its threads.
    pub fn stun(&self) -> Result<(), Status> {
        sys::process_control(&self.cap, PROCESS_STUN)
    }

    /// Lets a stunned process run again.
    pub fn resume(&self) -> Result<(), Status> {
        sys::process_control(&self.cap, PROCESS_RESUME)
    }

    /// Kills it and frees its memory.
    pub fn destroy(&self) -> Result<(), Status> {
        sys::process_control(&self.cap, PROCESS_DESTROY)
    }

    /// Raises `signal` in it.
    pub fn signal(&self, signal: u32) -> Result<(), Status> {
        sys::process_control(&self.cap, PROCESS_SIGNAL_BASE + signal as u64)
    }

    /// The same process with only `rights` (`RIGHT_*` of
    /// [`amoeba_abi::syscall`]) of those this capability has.
    pub fn restrict(&self, rights: u8) -> Result<Process, Status> {
        Ok(Process { pid: self.pid, cap: sys::restrict(&self.cap, rights)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amoeba_abi::syscall::{MAP_WRITE, ProcessDescriptor};
    use amoeba_abi::{Check, Port};

    #[test]
    fn descriptor_layout() {
        let cap = Capability::owner(Port([1, 2, 3, 4, 5, 6]), 0x0a0b0c, Check([9; 6]));
        let descriptor = Builder::new("nop")
            .argument(0x1122_3344_5566_7788)
            .run_to_completion(true)
            .map_segment(&cap, 0x2000_0000, MAP_WRITE)
            .descriptor();
        assert_eq!(descriptor.len(), DESCRIPTOR_FIXED_LEN + 3 + DESCRIPTOR_SEGMENT_LEN);
        assert_eq!(core::mem::size_of::<ProcessDescriptor>(), DESCRIPTOR_FIXED_LEN);
        assert_eq!(core::mem::size_of::<DescriptorSegment>(), DESCRIPTOR_SEGMENT_LEN);
        assert_eq!(&descriptor[0..8], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(&descriptor[8..12], &SCHED_RUN_TO_COMPLETION.to_le_bytes());
        assert_eq!(&descriptor[12..16], &3u32.to_le_bytes());
        assert_eq!(&descriptor[16..20], &1u32.to_le_bytes());
        assert_eq!(&descriptor[20..24], &[0; 4]);
        assert_eq!(&descriptor[24..27], b"nop");
        assert_eq!(&descriptor[27..43], &cap.encode());
        assert_eq!(&descriptor[43..51], &0x2000_0000u64.to_le_bytes());
        assert_eq!(&descriptor[51..59], &MAP_WRITE.to_le_bytes());
    }

    #[test]
    fn plain_descriptor() {
        let descriptor = encode_descriptor(0, SCHED_PREEMPTIVE, b"hello", &[]);
        assert_eq!(descriptor.len(), 29);
        assert_eq!(
            &descriptor[..24],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }
}
