//! The board's process server: it makes processes (from the programs of
//! the board's bundle), names each by a capability on its own put-port, and
//! does what those capabilities allow — stun, resume, signal, destroy,
//! inspect, restrict. It answers the system calls, the host's pool-control
//! frames, and RPC to its put-port (which the nucleus serves itself), and
//! tells whoever asked for a process over the network when it exits.

#![forbid(unsafe_code)]

use super::thread::{Pid, ThreadState};
use super::{Core, Event, ProcessState, Subscriber, loader};
use crate::arch::mmu::MapFlags;
use crate::memory::segments::SegmentId;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use amoeba::cmd::{PS_RESUME, PS_SIGNAL, PS_STUN, STD_DESTROY, STD_INFO};
use amoeba::syscall::{
    self as abi, EXIT_DESTROYED, MAP_EXECUTE, MAP_WRITE, ProcessInfo, SCHED_RUN_TO_COMPLETION, SIGNALS,
};
use amoeba::{Capability, GetPort, Header, Port, Rights, Status};
use pool_control::Mac;

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

/// A process exited that someone on the network asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitNotice {
    pub to: Mac,
    pub pid: Pid,
    pub status: i32,
}

/// One extra segment a new process gets mapped, besides its program's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtraSegment {
    pub capability: Capability,
    pub va: usize,
    /// `MAP_WRITE` | `MAP_EXECUTE`.
    pub flags: u64,
}

/// A process descriptor (see `amoeba::syscall::ProcessDescriptor`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub argument: u64,
    pub run_to_completion: bool,
    pub program: String,
    pub segments: Vec<ExtraSegment>,
}

/// `ProcessInfo::state` values.
const INFO_RUNNING: u32 = 0;
const INFO_STUNNED: u32 = 1;
const INFO_EXITED: u32 = 2;

/// Longest encoded descriptor accepted.
pub const MAX_DESCRIPTOR: u64 = 4096;
const DESCRIPTOR_FIXED: usize = 24;
const DESCRIPTOR_SEGMENT: usize = 32;

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

impl Descriptor {
    /// Decodes the wire form `amoeba::user::process::encode_descriptor` writes.
    pub fn parse(bytes: &[u8]) -> Result<Self, Status> {
        if bytes.len() < DESCRIPTOR_FIXED || bytes.len() as u64 > MAX_DESCRIPTOR {
            return Err(Status::ArgBad);
        }
        let scheduling = read_u32(bytes, 8);
        let name_len = read_u32(bytes, 12) as usize;
        let segment_count = read_u32(bytes, 16) as usize;
        let needed = DESCRIPTOR_FIXED
            .checked_add(name_len)
            .and_then(|n| n.checked_add(segment_count.checked_mul(DESCRIPTOR_SEGMENT)?))
            .ok_or(Status::ArgBad)?;
        if needed != bytes.len() || scheduling > SCHED_RUN_TO_COMPLETION {
            return Err(Status::ArgBad);
        }
        let name = &bytes[DESCRIPTOR_FIXED..DESCRIPTOR_FIXED + name_len];
        let program = String::from(core::str::from_utf8(name).map_err(|_| Status::ArgBad)?);
        let segments = (0..segment_count)
            .map(|index| {
                let at = DESCRIPTOR_FIXED + name_len + index * DESCRIPTOR_SEGMENT;
                let capability = Capability::from_slice(&bytes[at..at + 16]).ok_or(Status::ArgBad)?;
                let va = usize::try_from(read_u64(bytes, at + 16)).map_err(|_| Status::ArgBad)?;
                Ok(ExtraSegment { capability, va, flags: read_u64(bytes, at + 24) })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        Ok(Self {
            argument: read_u64(bytes, 0),
            run_to_completion: is_run_to_completion(scheduling),
            program,
            segments,
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

pub struct ProcessServer {
    /// The put-port every process capability of this board names.
    port: Port,
    /// The programs processes are made from.
    bundle: &'static [u8],
    /// Who asked for a process over the network, to be told of its exit.
    notify: BTreeMap<Pid, Mac>,
    exit_notices: VecDeque<ExitNotice>,
}

impl ProcessServer {
    /// A server for the programs of `bundle`, on a fresh random get-port
    /// (the nucleus' secret), which the caller has the RPC service serve.
    pub fn new(core: &mut Core, bundle: &'static [u8]) -> (Self, GetPort) {
        let get_port = GetPort::random(core.rng());
        let server = Self {
            port: get_port.put_port(),
            bundle,
            notify: BTreeMap::new(),
            exit_notices: VecDeque::new(),
        };
        (server, get_port)
    }

    pub fn port(&self) -> Port {
        self.port
    }

    /// The owner capability of a process.
    pub fn capability(&self, core: &Core, pid: Pid) -> Option<Capability> {
        let process = core.processes.get(&pid)?;
        Some(Capability::owner(self.port, pid, process.random))
    }

    /// The process `cap` names, if it carries `needed` rights.
    pub fn verify(&self, core: &Core, cap: &Capability, needed: Rights) -> Result<Pid, Status> {
        if cap.port != self.port {
            return Err(Status::CapBad);
        }
        let process = core.processes.get(&cap.object).ok_or(Status::CapBad)?;
        let rights = amoeba::verify(&process.random, cap).map_err(|_| Status::CapBad)?;
        if !rights.contains(needed) {
            return Err(Status::Denied);
        }
        Ok(cap.object)
    }

    /// A process capability restricted to `rights` (of those `cap` holds).
    pub fn restrict(&self, core: &Core, cap: &Capability, rights: Rights) -> Result<Capability, Status> {
        let pid = self.verify(core, cap, Rights::NONE)?;
        let random = core.processes[&pid].random;
        let held = amoeba::verify(&random, cap).map_err(|_| Status::CapBad)?;
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
            ProcessOp::Destroy => match core.processes[&pid].state {
                ProcessState::Exited(_) => Err(Status::NotFound),
                _ => {
                    core.exit_process(pid, EXIT_DESTROYED);
                    Ok(())
                }
            },
            ProcessOp::Signal(signal) => {
                let first = *core.processes[&pid].threads.first().ok_or(Status::NotFound)?;
                core.raise(first, signal)
            }
        }
    }

    /// Starts `program` of the bundle; `notify` hears of its exit.
    pub fn exec(
        &mut self,
        core: &mut Core,
        program: &str,
        argument: u64,
        capability: Option<Capability>,
        run_to_completion: bool,
        notify: Option<Mac>,
    ) -> Result<(Pid, Capability), Status> {
        let pid = loader::spawn_from_bundle(
            core,
            self.bundle,
            program,
            argument,
            capability,
            run_to_completion,
            &[],
        )?;
        if let Some(to) = notify {
            self.notify.insert(pid, to);
        }
        Ok((pid, self.capability(core, pid).ok_or(Status::SysErr)?))
    }

    /// Starts the process `descriptor` describes (its extra segments must
    /// be segments the descriptor's capabilities allow mapping so).
    pub fn create(&self, core: &mut Core, descriptor: &Descriptor) -> Result<(Pid, Capability), Status> {
        let extra = descriptor
            .segments
            .iter()
            .map(|segment| {
                let (flags, needed) = map_flags(segment.flags)?;
                let (id, _) = core.segments.lookup(&segment.capability, needed)?;
                Ok((id, segment.va, flags))
            })
            .collect::<Result<Vec<(SegmentId, usize, MapFlags)>, Status>>()?;
        let pid = loader::spawn_from_bundle(
            core,
            self.bundle,
            &descriptor.program,
            descriptor.argument,
            None,
            descriptor.run_to_completion,
            &extra,
        )?;
        Ok((pid, self.capability(core, pid).ok_or(Status::SysErr)?))
    }

    /// The state of the process `cap` names (which must carry the inspect
    /// right). The pc of a thread asking about its own process reads 0.
    pub fn inspect(&self, core: &Core, cap: &Capability) -> Result<ProcessInfo, Status> {
        let pid = self.verify(core, cap, Rights(abi::RIGHT_INSPECT))?;
        let process = &core.processes[&pid];
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

    /// Answers a request (header and buffer) to the process server's
    /// put-port: standard info and destroy, and stun, resume, signal (none
    /// of which takes a buffer yet).
    pub fn handle(&mut self, core: &mut Core, request: &Header, _buf: &[u8]) -> (Header, Vec<u8>) {
        let capability = request.capability();
        let result = match request.command {
            STD_INFO => {
                self.verify(core, &capability, Rights::NONE).map(|pid| describe(core, pid).into_bytes())
            }
            STD_DESTROY => self.control(core, &capability, ProcessOp::Destroy).map(|_| Vec::new()),
            PS_STUN => self.control(core, &capability, ProcessOp::Stun).map(|_| Vec::new()),
            PS_RESUME => self.control(core, &capability, ProcessOp::Resume).map(|_| Vec::new()),
            PS_SIGNAL => ProcessOp::decode(abi::PROCESS_SIGNAL_BASE + request.extra as u64)
                .and_then(|op| self.control(core, &capability, op))
                .map(|_| Vec::new()),
            _ => Err(Status::ComBad),
        };
        match result {
            Ok(buf) => (Header::reply(Status::Ok), buf),
            Err(status) => (Header::reply(status), Vec::new()),
        }
    }

    /// The next exit to tell someone on the network of.
    pub fn take_exit_notice(&mut self) -> Option<ExitNotice> {
        self.exit_notices.pop_front()
    }

    pub fn has_exit_notices(&self) -> bool {
        !self.exit_notices.is_empty()
    }
}

/// One line about a process, for STD_INFO.
fn describe(core: &Core, pid: Pid) -> String {
    let process = &core.processes[&pid];
    let state = match process.state {
        ProcessState::Running => String::from("running"),
        ProcessState::Stunned => String::from("stunned"),
        ProcessState::Exited(status) => alloc::format!("exited with status {status}"),
    };
    alloc::format!("process {pid} ({}): {state}, {} threads", process.name, process.threads.len())
}

impl Subscriber for ProcessServer {
    fn notify(&mut self, _core: &mut Core, event: &Event, _now: u64) {
        if let Event::ProcessExited { pid, status, .. } = *event
            && let Some(to) = self.notify.remove(&pid)
        {
            self.exit_notices.push_back(ExitNotice { to, pid, status });
        }
    }
}
