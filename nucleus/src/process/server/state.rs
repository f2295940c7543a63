//! The process server's state: its port and host secret, the boot programs
//! it serves, the answers and loads in progress; and what its object numbers
//! name.

#![forbid(unsafe_code)]

use super::actions::Action;
use super::load::Loads;
use crate::memory::segments::{Place, SegmentId};
use crate::process::thread::Pid;
use crate::process::{Core, RESERVED_OBJECTS_START};
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use amoeba_abi::{Capability, Check, GetPort, Port, Rights, Status};
use amoeba_ipc::interfaces::process::{OWNER_CHECK_PERIOD_US, OWNER_SILENCE_US};
use flip::ReqId;
use nucleus::load_meter::LoadMeter;
use nucleus::owner_watch::OwnerWatch;
use pool_control::bundle::Bundle;
use pool_control::secret::BoardSecret;

/// A program of the boot bundle, served as a read-only object.
pub(super) struct BootProgram {
    pub(super) name: String,
    pub(super) object: u32,
    pub(super) random: Check,
    pub(super) bytes: &'static [u8],
}

/// What an object number names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Object {
    Host,
    Process(Pid),
    Segment(SegmentId),
    BootProgram(usize),
}

pub struct ProcessServer {
    pub(super) port: Port,
    pub(super) host_random: Check,
    pub(super) boot_programs: Vec<BootProgram>,
    /// The bundle, for the `process_create` system call.
    pub(super) bundle: &'static [u8],
    /// `wait` requests, answered when their process ends.
    pub(super) waits: Vec<(Pid, ReqId)>,
    pub(super) loads: Loads,
    pub(super) load_meter: LoadMeter,
    pub(super) actions: VecDeque<Action>,
    /// Processes tied to an owner, and the checks of their owners.
    pub(super) owners: OwnerWatch<Capability>,
    /// When the owners next need attention (cached: looked at on every settle).
    pub(super) owners_due: Option<u64>,
}

impl ProcessServer {
    /// The server of this board: its get-port and host capability come from
    /// the board's `secret` (random ones without, so that nobody can use it).
    /// The caller has the RPC service serve the returned get-port.
    pub fn new(core: &mut Core, bundle: &'static [u8], secret: Option<BoardSecret>) -> (Self, GetPort) {
        let (get_port, host_random) = match secret {
            Some(secret) => (GetPort(Port(secret.get_port)), Check(secret.check)),
            None => (GetPort::random(core.rng()), core.random_check()),
        };
        let port = get_port.put_port();
        core.segments.port = port;
        let boot_programs = Bundle::parse(bundle)
            .map(|b| {
                b.entries()
                    .enumerate()
                    .map(|(index, (name, bytes))| BootProgram {
                        name: String::from(name),
                        object: RESERVED_OBJECTS_START + index as u32,
                        random: core.random_check(),
                        bytes,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let server = Self {
            port,
            host_random,
            boot_programs,
            bundle,
            waits: Vec::new(),
            loads: Loads::default(),
            load_meter: LoadMeter::default(),
            actions: VecDeque::new(),
            owners: OwnerWatch::new(OWNER_CHECK_PERIOD_US, OWNER_SILENCE_US),
            owners_due: None,
        };
        (server, get_port)
    }

    pub fn port(&self) -> Port {
        self.port
    }

    pub(super) fn object(&self, core: &Core, object: u32) -> Option<Object> {
        if object == 0 {
            return Some(Object::Host);
        }
        if core.process_record(object).is_some() {
            return Some(Object::Process(object));
        }
        if core.segments.check_of(object).is_some() {
            return Some(Object::Segment(object));
        }
        self.boot_programs.iter().position(|p| p.object == object).map(Object::BootProgram)
    }

    pub(super) fn check(&self, core: &Core, object: u32) -> Option<Check> {
        match self.object(core, object)? {
            Object::Host => Some(self.host_random),
            Object::Process(pid) => core.process_record(pid).map(|p| p.random),
            Object::Segment(id) => core.segments.check_of(id),
            Object::BootProgram(index) => Some(self.boot_programs[index].random),
        }
    }

    /// Where `len` bytes at `offset` of a segment or boot program of this
    /// board are (fewer at its end), for a holder of `capability` with the
    /// read right.
    pub(super) fn own_bytes(
        &self,
        core: &Core,
        capability: &Capability,
        offset: u64,
        len: usize,
    ) -> Result<OwnBytes, Status> {
        let random = self.check(core, capability.object).ok_or(Status::CapBad)?;
        let rights = amoeba_abi::verify(&random, capability).map_err(|_| Status::CapBad)?;
        if !rights.contains(Rights::READ) {
            return Err(Status::Denied);
        }
        let size = match self.object(core, capability.object) {
            Some(Object::BootProgram(index)) => {
                self.boot_programs.get(index).ok_or(Status::CapBad)?.bytes.len()
            }
            Some(Object::Segment(id)) => core.segments.get(id).ok_or(Status::CapBad)?.len(),
            _ => return Err(Status::ArgBad),
        };
        let start = usize::try_from(offset).ok().filter(|&s| s <= size).ok_or(Status::ArgBad)?;
        let end = start.saturating_add(len).min(size);
        match self.object(core, capability.object) {
            Some(Object::BootProgram(index)) => {
                let bytes = self.boot_programs.get(index).ok_or(Status::CapBad)?.bytes;
                Ok(OwnBytes::Program(bytes.get(start..end).ok_or(Status::ArgBad)?))
            }
            _ => Ok(OwnBytes::Segment(Place { segment: capability.object, offset: start }, end - start)),
        }
    }

    /// A copy of what [`ProcessServer::own_bytes`] names, on the heap
    /// (`NoSpace` when it has no room).
    pub(super) fn read_own(
        &self,
        core: &Core,
        capability: &Capability,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>, Status> {
        match self.own_bytes(core, capability, offset, len)? {
            OwnBytes::Program(bytes) => crate::heap::try_copy(bytes),
            OwnBytes::Segment(place, len) => crate::heap::try_copy(core.segments.bytes(place, len)?),
        }
    }
}

/// Bytes of one of the board's own objects, where they are.
pub(super) enum OwnBytes {
    /// Part of a boot program (in the initrd, for the board's lifetime).
    Program(&'static [u8]),
    /// Part of a segment: where it starts, and how long it is.
    Segment(Place, usize),
}
