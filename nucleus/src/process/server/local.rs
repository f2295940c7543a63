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
use alloc::vec::Vec;
use amoeba_abi::syscall::{self as abi, EXIT_DESTROYED, HOST_CAPABILITY_NAME, ProcessInfo};
use amoeba_abi::{Capability, Rights, Status};
use amoeba_ipc::interfaces::process::Quotas;
use nucleus::server_requests::{Descriptor, ProcessOp, map_flags};

/// `ProcessInfo::state` values.
const INFO_RUNNING: u32 = 0;
const INFO_STUNNED: u32 = 1;
const INFO_EXITED: u32 = 2;

impl ProcessServer {
    /// The owner capability of a process.
    pub fn capability(&self, core: &Core, pid: Pid) -> Option<Capability> {
        let process = core.process_record(pid)?;
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
        let process = core.process_record(cap.object).ok_or(Status::CapBad)?;
        let rights = amoeba_abi::verify(&process.random, cap).map_err(|_| Status::CapBad)?;
        if !rights.contains(needed) {
            return Err(Status::Denied);
        }
        Ok(cap.object)
    }

    /// A process capability restricted to `rights` (of those `cap` holds).
    pub fn restrict(&self, core: &Core, cap: &Capability, rights: Rights) -> Result<Capability, Status> {
        let pid = self.verify(core, cap, Rights::NONE)?;
        let random = core.process_record(pid).ok_or(Status::CapBad)?.random;
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
            ProcessOp::Destroy => match core.process_record(pid).ok_or(Status::CapBad)?.state {
                ProcessState::Exited(_) => Err(Status::NotFound),
                _ => {
                    core.exit_process(pid, EXIT_DESTROYED);
                    Ok(())
                }
            },
            ProcessOp::Signal(signal) => {
                let process = core.process_record(pid).ok_or(Status::CapBad)?;
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
        let process = core.process_record(pid).ok_or(Status::CapBad)?;
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
