//! What the local system calls ask of the process server: processes made
//! from the board's bundle by a descriptor (`process_create`), and the
//! process operations, waits and restrictions on capabilities the process
//! server issued.

#![forbid(unsafe_code)]

use super::state::ProcessServer;
use crate::arch::mmu::MapFlags;
use crate::memory::segments::SegmentId;
use crate::process::thread::{Pid, ThreadState};
use crate::process::{Core, ProcessState, loader};
use alloc::string::String;
use alloc::vec::Vec;
use amoeba_abi::syscall::{
    self as abi, EXIT_DESTROYED, HOST_CAPABILITY_NAME, MAP_EXECUTE, MAP_WRITE, ProcessInfo,
    SCHED_RUN_TO_COMPLETION, SIGNALS,
};
use amoeba_abi::{Capability, Rights, Status};
use amoeba_ipc::interfaces::process::Quotas;

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
    fn right(self) -> Rights {
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

/// `ProcessInfo::state` values.
const INFO_RUNNING: u32 = 0;
const INFO_STUNNED: u32 = 1;
const INFO_EXITED: u32 = 2;

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

impl ProcessServer {
    /// The owner capability of a process.
    pub fn capability(&self, core: &Core, pid: Pid) -> Option<Capability> {
        let process = core.processes.get(&pid)?;
        Some(Capability::owner(self.port, pid, process.random))
    }

    /// Checks that `cap` is this board's host capability with `needed` rights.
    pub fn verify_host(&self, _core: &Core, cap: &Capability, needed: Rights) -> Result<(), Status> {
        if cap.port != self.port || cap.object != 0 {
            return Err(Status::CapBad);
        }
        let rights = amoeba_abi::verify(&self.host_random, cap).map_err(|_| Status::CapBad)?;
        if !rights.contains(needed) {
            return Err(Status::Denied);
        }
        Ok(())
    }

    /// The process `cap` names, if it carries `needed` rights.
    pub fn verify(&self, core: &Core, cap: &Capability, needed: Rights) -> Result<Pid, Status> {
        if cap.port != self.port {
            return Err(Status::CapBad);
        }
        let process = core.processes.get(&cap.object).ok_or(Status::CapBad)?;
        let rights = amoeba_abi::verify(&process.random, cap).map_err(|_| Status::CapBad)?;
        if !rights.contains(needed) {
            return Err(Status::Denied);
        }
        Ok(cap.object)
    }

    /// A process capability restricted to `rights` (of those `cap` holds).
    pub fn restrict(&self, core: &Core, cap: &Capability, rights: Rights) -> Result<Capability, Status> {
        let pid = self.verify(core, cap, Rights::NONE)?;
        let random = core.processes.get(&pid).ok_or(Status::CapBad)?.random;
        let held = amoeba_abi::verify(&random, cap).map_err(|_| Status::CapBad)?;
        Capability::owner(self.port, pid, random)
            .restrict(Rights(held.bits() & rights.bits()))
            .map_err(|_| Status::CapBad)
    }

    /// Does `op` to the process `cap` names.
    pub fn control(&self, core: &mut Core, cap: &Capability, op: ProcessOp) -> Result<(), Status> {
        let pid = self.verify(core, cap, op.right())?;
        match op {
            ProcessOp::Stun => core.stun(pid),
            ProcessOp::Resume => core.resume(pid),
            ProcessOp::Destroy => match core.processes.get(&pid).ok_or(Status::CapBad)?.state {
                ProcessState::Exited(_) => Err(Status::NotFound),
                _ => {
                    core.exit_process(pid, EXIT_DESTROYED);
                    Ok(())
                }
            },
            ProcessOp::Signal(signal) => {
                let process = core.processes.get(&pid).ok_or(Status::CapBad)?;
                let first = *process.threads.first().ok_or(Status::NotFound)?;
                core.raise(first, signal)
            }
        }
    }

    /// Starts the process `descriptor` describes (its extra segments must
    /// be segments the descriptor's capabilities allow mapping so), for a
    /// caller that presented the host capability `host`.
    pub fn create(
        &self,
        core: &mut Core,
        descriptor: &Descriptor,
        host: &Capability,
    ) -> Result<(Pid, Capability), Status> {
        let extra = descriptor
            .segments
            .iter()
            .map(|segment| {
                let (flags, needed) = map_flags(segment.flags)?;
                let (id, _) = core.segments.lookup(&segment.capability, needed)?;
                Ok((id, segment.va, flags))
            })
            .collect::<Result<Vec<(SegmentId, usize, MapFlags)>, Status>>()?;
        let capabilities: &[(&str, Capability)] =
            if descriptor.pass_host { &[(HOST_CAPABILITY_NAME, *host)] } else { &[] };
        let what = loader::FromBundle {
            name: &descriptor.program,
            argument: descriptor.argument,
            capabilities,
            run_to_completion: descriptor.run_to_completion,
            extra: &extra,
            quotas: Quotas::DEFAULT,
        };
        let pid = loader::spawn_from_bundle(core, self.bundle, &what)?;
        Ok((pid, self.capability(core, pid).ok_or(Status::SysErr)?))
    }

    /// The state of the process `cap` names (which must carry the inspect
    /// right). The pc of a thread asking about its own process reads 0.
    pub fn inspect(&self, core: &Core, cap: &Capability) -> Result<ProcessInfo, Status> {
        let pid = self.verify(core, cap, Rights(abi::RIGHT_INSPECT))?;
        let process = core.processes.get(&pid).ok_or(Status::CapBad)?;
        let (state, exit_status) = match process.state {
            ProcessState::Running => (INFO_RUNNING, 0),
            ProcessState::Stunned => (INFO_STUNNED, 0),
            ProcessState::Exited(status) => (INFO_EXITED, status),
        };
        let pc = match process.threads.first() {
            Some(&tid) if tid == core.current() => 0,
            Some(tid) => {
                core.threads.get(tid).filter(|t| t.state != ThreadState::Dead).map_or(0, |t| t.user_pc)
            }
            None => 0,
        };
        Ok(ProcessInfo {
            state,
            exit_status,
            threads: process.threads.len() as u32,
            segments: process.mappings.len() as u32,
            pc,
            mapped_bytes: process.mappings.iter().map(|m| m.len as u64).sum(),
        })
    }
}
