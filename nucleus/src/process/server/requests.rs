//! What the local system calls ask of the process server, decoded from
//! their raw form: process operations, mapping flags, and the process
//! descriptor of `process_create`. Pure functions of their input, in the
//! library so that host tests reach them; `local.rs` acts on them.

#![forbid(unsafe_code)]

use crate::call_types::MapFlags;
use alloc::string::String;
use alloc::vec::Vec;
use amoeba_abi::syscall::{self as abi, MAP_EXECUTE, MAP_WRITE, SCHED_RUN_TO_COMPLETION, SIGNALS};
use amoeba_abi::{Capability, Rights, Status};

/// What a process capability lets its holder do to the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessOp {
    Stun,
    Resume,
    Destroy,
    /// Raise this signal (1..SIGNALS) in the process's first thread.
    Signal(u32),
}

impl ProcessOp {
    /// The operation a `PROCESS_*` number names.
    pub fn decode(op: u64) -> Result<Self, Status> {
        match op {
            abi::PROCESS_STUN => Ok(ProcessOp::Stun),
            abi::PROCESS_RESUME => Ok(ProcessOp::Resume),
            abi::PROCESS_DESTROY => Ok(ProcessOp::Destroy),
            op if op > abi::PROCESS_SIGNAL_BASE && op < abi::PROCESS_SIGNAL_BASE + SIGNALS as u64 => {
                Ok(ProcessOp::Signal((op - abi::PROCESS_SIGNAL_BASE) as u32))
            }
            _ => Err(Status::ArgBad),
        }
    }

    /// The right the capability must carry.
    pub fn right(self) -> Rights {
        Rights(match self {
            ProcessOp::Stun | ProcessOp::Resume => abi::RIGHT_STUN,
            ProcessOp::Destroy => abi::RIGHT_DESTROY,
            ProcessOp::Signal(_) => abi::RIGHT_SIGNAL,
        })
    }
}

/// Whether a descriptor's scheduling field asks for run-to-completion.
pub fn is_run_to_completion(scheduling: u32) -> bool {
    scheduling == SCHED_RUN_TO_COMPLETION
}

/// One extra segment a new process gets mapped, besides its program's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtraSegment {
    pub capability: Capability,
    pub va: usize,
    /// `MAP_WRITE` | `MAP_EXECUTE`.
    pub flags: u64,
}

/// A process descriptor (see `amoeba_abi::syscall::ProcessDescriptor`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub argument: u64,
    pub run_to_completion: bool,
    pub program: String,
    pub segments: Vec<ExtraSegment>,
    /// The child gets the host capability it was made with (`SPAWN_PASS_HOST`).
    pub pass_host: bool,
}

/// Longest encoded descriptor accepted.
pub const MAX_DESCRIPTOR: u64 = 4096;
const DESCRIPTOR_FIXED: usize = 24;
const DESCRIPTOR_SEGMENT: usize = 32;

/// The little-endian u32 at `at` (0 past the end: callers check lengths first).
fn read_u32(bytes: &[u8], at: usize) -> u32 {
    bytes.get(at..at + 4).and_then(|b| b.try_into().ok()).map_or(0, u32::from_le_bytes)
}

/// The little-endian u64 at `at` (0 past the end: callers check lengths first).
fn read_u64(bytes: &[u8], at: usize) -> u64 {
    bytes.get(at..at + 8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes)
}

impl Descriptor {
    /// Decodes the wire form `amoeba_rt::process::encode_descriptor` writes.
    pub fn parse(bytes: &[u8]) -> Result<Self, Status> {
        if bytes.len() < DESCRIPTOR_FIXED || bytes.len() as u64 > MAX_DESCRIPTOR {
            return Err(Status::ArgBad);
        }
        let scheduling = read_u32(bytes, 8);
        let name_len = read_u32(bytes, 12) as usize;
        let segment_count = read_u32(bytes, 16) as usize;
        let flags = read_u32(bytes, 20);
        let needed = DESCRIPTOR_FIXED
            .checked_add(name_len)
            .and_then(|n| n.checked_add(segment_count.checked_mul(DESCRIPTOR_SEGMENT)?))
            .ok_or(Status::ArgBad)?;
        if needed != bytes.len() || scheduling > SCHED_RUN_TO_COMPLETION || flags & !abi::SPAWN_PASS_HOST != 0
        {
            return Err(Status::ArgBad);
        }
        let name = bytes.get(DESCRIPTOR_FIXED..DESCRIPTOR_FIXED + name_len).ok_or(Status::ArgBad)?;
        let program = String::from(core::str::from_utf8(name).map_err(|_| Status::ArgBad)?);
        let segments = (0..segment_count)
            .map(|index| {
                let at = DESCRIPTOR_FIXED + name_len + index * DESCRIPTOR_SEGMENT;
                let capability =
                    bytes.get(at..at + 16).and_then(Capability::from_slice).ok_or(Status::ArgBad)?;
                let va = usize::try_from(read_u64(bytes, at + 16)).map_err(|_| Status::ArgBad)?;
                Ok(ExtraSegment { capability, va, flags: read_u64(bytes, at + 24) })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        Ok(Self {
            argument: read_u64(bytes, 0),
            run_to_completion: is_run_to_completion(scheduling),
            program,
            segments,
            pass_host: flags & abi::SPAWN_PASS_HOST != 0,
        })
    }
}

/// Mapping flags from `MAP_*` bits, and the segment rights they need.
pub fn map_flags(flags: u64) -> Result<(MapFlags, Rights), Status> {
    if flags & !(MAP_WRITE | MAP_EXECUTE) != 0 {
        return Err(Status::ArgBad);
    }
    let write = flags & MAP_WRITE != 0;
    let needed = if write { Rights(Rights::READ.bits() | Rights::MODIFY.bits()) } else { Rights::READ };
    Ok((MapFlags { write, execute: flags & MAP_EXECUTE != 0 }, needed))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use amoeba_abi::{Check, Port};
    use proptest::prelude::*;
    use std::vec;

    /// The wire form `amoeba_rt::process::encode_descriptor` writes.
    fn encode(descriptor: &Descriptor, scheduling: u32, flags: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&descriptor.argument.to_le_bytes());
        bytes.extend_from_slice(&scheduling.to_le_bytes());
        bytes.extend_from_slice(&(descriptor.program.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&(descriptor.segments.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&flags.to_le_bytes());
        bytes.extend_from_slice(descriptor.program.as_bytes());
        for segment in &descriptor.segments {
            bytes.extend_from_slice(&segment.capability.encode());
            bytes.extend_from_slice(&(segment.va as u64).to_le_bytes());
            bytes.extend_from_slice(&segment.flags.to_le_bytes());
        }
        bytes
    }

    fn sample() -> Descriptor {
        let capability = Capability::owner(Port([1, 2, 3, 4, 5, 6]), 42, Check([9; 6]));
        Descriptor {
            argument: 0xdead_beef,
            run_to_completion: true,
            program: String::from("hello"),
            segments: vec![ExtraSegment { capability, va: 0x4000_0000, flags: MAP_WRITE }],
            pass_host: true,
        }
    }

    #[test]
    fn a_descriptor_reads_back_as_written() {
        let descriptor = sample();
        let bytes = encode(&descriptor, SCHED_RUN_TO_COMPLETION, abi::SPAWN_PASS_HOST);
        assert_eq!(Descriptor::parse(&bytes), Ok(descriptor));
        let plain =
            Descriptor { run_to_completion: false, pass_host: false, segments: Vec::new(), ..sample() };
        assert_eq!(Descriptor::parse(&encode(&plain, abi::SCHED_PREEMPTIVE, 0)), Ok(plain));
    }

    #[test]
    fn malformed_descriptors_are_refused() {
        let good = encode(&sample(), SCHED_RUN_TO_COMPLETION, abi::SPAWN_PASS_HOST);
        let with = |at: usize, value: u32| {
            let mut bytes = good.clone();
            bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
            bytes
        };
        let mut not_utf8 = good.clone();
        not_utf8[24] = 0xff;
        let cases = [
            ("too short", good[..23].to_vec()),
            ("cut", good[..good.len() - 1].to_vec()),
            ("trailing byte", [good.as_slice(), &[0]].concat()),
            ("too long", vec![0; MAX_DESCRIPTOR as usize + 1]),
            ("unknown scheduling", with(8, 2)),
            ("name longer than sent", with(12, 6)),
            ("name length that wraps", with(12, u32::MAX)),
            ("more segments than sent", with(16, 2)),
            ("segment count that overflows", with(16, u32::MAX)),
            ("unknown flag", with(20, abi::SPAWN_PASS_HOST | 2)),
            ("name not UTF-8", not_utf8),
        ];
        for (what, bytes) in cases {
            assert_eq!(Descriptor::parse(&bytes), Err(Status::ArgBad), "{what}");
        }
    }

    #[test]
    fn each_operation_needs_its_own_right() {
        assert_eq!(ProcessOp::Stun.right(), Rights(abi::RIGHT_STUN));
        assert_eq!(ProcessOp::Resume.right(), Rights(abi::RIGHT_STUN));
        assert_eq!(ProcessOp::Destroy.right(), Rights(abi::RIGHT_DESTROY));
        assert_eq!(ProcessOp::Signal(3).right(), Rights(abi::RIGHT_SIGNAL));
    }

    proptest! {
        /// Any bytes give a descriptor or `ArgBad`, never a panic; what
        /// parses is no longer than the limit.
        #[test]
        fn parsing_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            match Descriptor::parse(&bytes) {
                Ok(_) => prop_assert!(bytes.len() >= 24 && bytes.len() as u64 <= MAX_DESCRIPTOR),
                Err(status) => prop_assert_eq!(status, Status::ArgBad),
            }
        }

        /// Any descriptor that fits reads back as written.
        #[test]
        fn descriptors_round_trip(
            argument in any::<u64>(),
            program in "[a-z0-9/_-]{0,40}",
            segments in proptest::collection::vec((any::<u32>(), any::<u64>(), 0u64..4), 0..8),
            run_to_completion in any::<bool>(),
            pass_host in any::<bool>(),
        ) {
            let segments = segments
                .into_iter()
                .map(|(object, va, flags)| ExtraSegment {
                    capability: Capability::owner(Port([7; 6]), object & 0x00ff_ffff, Check([3; 6])),
                    va: va as usize,
                    flags,
                })
                .collect();
            let descriptor = Descriptor { argument, run_to_completion, program, segments, pass_host };
            let scheduling = if run_to_completion { SCHED_RUN_TO_COMPLETION } else { abi::SCHED_PREEMPTIVE };
            let flags = if pass_host { abi::SPAWN_PASS_HOST } else { 0 };
            prop_assert_eq!(Descriptor::parse(&encode(&descriptor, scheduling, flags)), Ok(descriptor));
        }
    }
}
