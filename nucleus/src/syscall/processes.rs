//! Process calls: create, control, wait, inspect, and restricting a
//! capability for an object the nucleus serves (process or segment).

#![forbid(unsafe_code)]

use crate::process::outcome::{AfterWake, Outcome};
use crate::process::server::{Descriptor, ProcessOp};
use crate::process::thread::{Pid, Wait};
use crate::process::user_memory::UserRange;
use crate::process::{Core, ProcessState};
use crate::services::Services;
use alloc::vec::Vec;
use amoeba_abi::syscall::{ProcessInfo, RIGHT_INSPECT};
use amoeba_abi::{Rights, Status};
use amoeba_ipc::interfaces::process::HOST_CREATE;

/// Bytes of an exit status written by `process_wait`.
const STATUS_LEN: u64 = 4;

/// process_create: a process from the board's bundle, for a caller that
/// presents the board's host capability with the create right (the same
/// capability the process server asks remote clients for).
pub fn create(
    services: &mut Services,
    core: &mut Core,
    pid: Pid,
    descriptor: UserRange,
    cap_out: u64,
    host: u64,
) -> Outcome {
    let result = (|| {
        if host == 0 {
            return Err(Status::Denied);
        }
        let host = core.read_user_capability(pid, host)?;
        services.processes.verify_host(core, &host, HOST_CREATE)?;
        core.check_capability_out(pid, cap_out)?;
        let bytes = core.copy_from_user(pid, descriptor.va, descriptor.len)?;
        let descriptor = Descriptor::parse(&bytes)?;
        let (child, cap) = services.processes.create(core, &descriptor, &host)?;
        core.copy_to_user(pid, cap_out, &cap.encode())?;
        Ok(child as u64)
    })();
    Outcome::from(result)
}

pub fn control(services: &mut Services, core: &mut Core, pid: Pid, cap: u64, op: ProcessOp) -> Outcome {
    let result =
        core.read_user_capability(pid, cap).and_then(|cap| services.processes.control(core, &cap, op));
    Outcome::of(result)
}

pub fn wait(services: &mut Services, core: &mut Core, pid: Pid, cap: u64, status_out: u64) -> Outcome {
    let target = core
        .read_user_capability(pid, cap)
        .and_then(|cap| services.processes.verify(core, &cap, Rights(RIGHT_INSPECT)))
        .and_then(|target| if target == pid { Err(Status::ArgBad) } else { Ok(target) })
        .and_then(|target| core.check_user(pid, status_out, STATUS_LEN, true).map(|_| target));
    match target {
        Err(status) => Outcome::Error(status),
        Ok(target) => match core.process_record(target).map(|p| p.state).unwrap_or(ProcessState::Exited(0)) {
            ProcessState::Exited(status) => {
                Outcome::of(core.copy_to_user(pid, status_out, &status.to_le_bytes()))
            }
            _ => Outcome::Blocked(
                core.block_current(Wait::ProcessExit(target), AfterWake::WriteStatus(status_out)),
            ),
        },
    }
}

pub fn inspect(services: &mut Services, core: &mut Core, pid: Pid, cap: u64, out: u64) -> Outcome {
    let result = (|| {
        let cap = core.read_user_capability(pid, cap)?;
        let info = services.processes.inspect(core, &cap)?;
        core.copy_to_user(pid, out, &encode_info(&info))
    })();
    Outcome::of(result)
}

/// The wire form of a [`ProcessInfo`] (little-endian, in field order).
fn encode_info(info: &ProcessInfo) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(&info.state.to_le_bytes());
    bytes.extend_from_slice(&info.exit_status.to_le_bytes());
    bytes.extend_from_slice(&info.threads.to_le_bytes());
    bytes.extend_from_slice(&info.segments.to_le_bytes());
    bytes.extend_from_slice(&info.pc.to_le_bytes());
    bytes.extend_from_slice(&info.mapped_bytes.to_le_bytes());
    bytes
}

pub fn restrict(
    services: &mut Services,
    core: &mut Core,
    pid: Pid,
    cap: u64,
    rights: Rights,
    out: u64,
) -> Outcome {
    let result = (|| {
        let cap = core.read_user_capability(pid, cap)?;
        core.check_capability_out(pid, out)?;
        // Processes and segments are objects of the same process server.
        let restricted = if core.process_record(cap.object).is_some() {
            services.processes.restrict(core, &cap, rights)?
        } else {
            core.segments.restrict(&cap, rights)?
        };
        core.copy_to_user(pid, out, &restricted.encode())
    })();
    Outcome::of(result)
}
