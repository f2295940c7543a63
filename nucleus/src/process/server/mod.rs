//! The board's process server (Amoeba's `pro_exec` and segment server), which
//! the nucleus serves itself on the board's put-port through the declared
//! interface `amoeba_ipc::interfaces::process_server`. Its objects, all on that
//! one port: the board itself (object 0, named by the **host capability**
//! whose secret the pool's owner handed the board in its initrd), segments,
//! processes, and the programs of the boot bundle. With the right rights a
//! client anywhere creates segments, fills them (or has the board read them
//! from a file), makes processes from descriptors, and controls them.
//!
//! Requests come in through [`ProcessServer::handle`]; answers and the
//! transactions the server makes itself (reading a program's file, checking
//! a process's owner) go out as [`Action`]s, so that a reply may come later
//! (a `wait`, a segment filled from a file on another board). Its timers (the
//! owners' checks) run in [`ProcessServer::tick`].

#![forbid(unsafe_code)]

mod actions;
mod create;
mod load;
mod local;
mod owners;
mod report;
mod state;

pub use actions::Action;
pub use nucleus::server_requests::{Descriptor, ProcessOp};
pub use state::ProcessServer;
use state::{Object, OwnBytes};

use crate::memory::segments::{MAX_SEGMENT, Place, SegmentId};
use crate::process::thread::Pid;
use crate::process::{Core, Event, ProcessState, Subscriber};
use alloc::string::String;
use alloc::vec::Vec;
use amoeba_abi::syscall::EXIT_DESTROYED;
use amoeba_abi::{Capability, Check, Header, Port, Rights, Status};
use amoeba_ipc::interface::{Call, Objects};
use amoeba_ipc::interfaces::process::{
    HostInfo, ProcessDescriptor, ProcessReport, Quotas, SEGMENT_IO_MAX, SegmentSource,
};
use amoeba_ipc::interfaces::process_server;
use flip::ReqId;

/// `STD_AGE` calls a free-standing segment survives without being used.
pub const SEGMENT_LIFE: u8 = 6;

impl ProcessServer {
    /// Answers (now or later) a request to the process server's port.
    pub fn handle(
        &mut self,
        core: &mut Core,
        now: u64,
        disk: Option<&mut dyn DiskRanges>,
        req: ReqId,
        header: &Header,
        buf: &[u8],
    ) {
        let mut request = Request { server: self, core, now, disk, req, deferred: false };
        let (reply, data) = process_server::dispatch(&mut request, header, buf);
        if !request.deferred {
            self.actions.push_back(Action::Reply { req, header: reply, buf: data });
        }
    }

    /// The next thing for the RPC service to do.
    pub fn take_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The RPC service started load `load`'s transaction as `trans`.
    pub fn read_started(&mut self, load: u64, trans: flip::TransId) {
        self.loads.started(load, trans);
    }

    /// A transaction the server made ended (a read of a load, or an owner check).
    pub fn trans_done(
        &mut self,
        core: &mut Core,
        now: u64,
        trans: flip::TransId,
        result: Result<(Header, Vec<u8>), Status>,
    ) {
        if self.is_check(trans) {
            self.check_done(core, now, trans, &result);
        } else {
            self.loads.done(core, trans, result, &mut self.actions);
        }
    }
}

impl Subscriber for ProcessServer {
    fn notify(&mut self, _core: &mut Core, event: &Event, _now: u64) {
        if let Event::ProcessExited { pid, status, .. } = *event {
            self.forget_owner(pid);
            let (done, waiting): (Vec<_>, Vec<_>) = self.waits.drain(..).partition(|(p, _)| *p == pid);
            self.waits = waiting;
            for (_, req) in done {
                let (header, buf) =
                    process_server::wait::reply(status).unwrap_or_else(amoeba_ipc::interface::status_reply);
                self.actions.push_back(Action::Reply { req, header, buf });
            }
        }
    }
}

/// The board's disk server, as the process server sees it: it hands out
/// capabilities for ranges of the disk (behind the host capability's disk right).
pub trait DiskRanges {
    /// A capability with all rights for blocks `first .. first + count` (count 0:
    /// to the end).
    fn open(&mut self, first: u64, count: u64) -> Result<Capability, Status>;
}

/// One request being answered: the server, the core, and whether the answer
/// was put off (`deferred`) until something happens.
struct Request<'a, 'd> {
    server: &'a mut ProcessServer,
    core: &'a mut Core,
    disk: Option<&'d mut dyn DiskRanges>,
    now: u64,
    req: ReqId,
    deferred: bool,
}

impl Request<'_, '_> {
    /// The answer comes later; the status returned now is not sent.
    fn defer(&mut self) -> Status {
        self.deferred = true;
        Status::NotNow
    }

    fn process(&self, call: &Call<'_>) -> Result<Pid, Status> {
        match self.server.object(self.core, call.object) {
            Some(Object::Process(pid)) => Ok(pid),
            _ => Err(Status::ArgBad),
        }
    }

    fn segment(&self, call: &Call<'_>) -> Result<SegmentId, Status> {
        match self.server.object(self.core, call.object) {
            Some(Object::Segment(id)) => Ok(id),
            _ => Err(Status::ArgBad),
        }
    }
}

impl Objects for Request<'_, '_> {
    fn port(&self) -> Port {
        self.server.port
    }

    fn check(&self, object: u32) -> Option<Check> {
        self.server.check(self.core, object)
    }

    fn describe(&mut self, object: u32) -> String {
        report::describe(self.server, self.core, object)
    }

    fn touch_object(&mut self, object: u32) {
        self.core.segments.touch(object);
    }

    /// Segments nobody owns, maps or touches die after [`SEGMENT_LIFE`]
    /// ages; processes never age (a running process is in use by
    /// definition, and an ended one's record goes by count).
    fn age_objects(&mut self) -> Result<u32, Status> {
        Ok(self.core.segments.age(SEGMENT_LIFE))
    }

    fn destroy_object(&mut self, object: u32) -> Result<(), Status> {
        match self.server.object(self.core, object) {
            Some(Object::Process(pid)) => match self.core.process_record(pid).ok_or(Status::CapBad)?.state {
                ProcessState::Exited(_) => Err(Status::NotFound),
                _ => {
                    self.core.exit_process(pid, EXIT_DESTROYED);
                    Ok(())
                }
            },
            Some(Object::Segment(id)) => {
                self.core.segments.destroy(id);
                Ok(())
            }
            Some(Object::Host | Object::BootProgram(_)) => Err(Status::Denied),
            None => Err(Status::CapBad),
        }
    }

    fn status_text(&self) -> String {
        report::status(self.server, self.core)
    }
}

impl process_server::Server for Request<'_, '_> {
    fn segment_create(&mut self, _: &Call<'_>, size: u64) -> Result<Capability, Status> {
        let size = usize::try_from(size).ok().filter(|&s| s > 0 && s <= MAX_SEGMENT).ok_or(Status::ArgBad)?;
        self.core.create_segment(size, None).map(|(_, capability)| capability)
    }

    fn segment_create_from(&mut self, _: &Call<'_>, source: SegmentSource) -> Result<Capability, Status> {
        let size = usize::try_from(source.size).ok().filter(|&s| s > 0 && s <= MAX_SEGMENT);
        let size = size.filter(|&s| source.length <= s as u64).ok_or(Status::ArgBad)?;
        let (id, capability) = self.core.create_segment(size, None)?;
        let filled = if source.source.port == self.server.port {
            // One of this board's objects: copied here and now, from where
            // it is to the new segment (never through the heap).
            let length = usize::try_from(source.length).map_err(|_| Status::ArgBad)?;
            match self.server.own_bytes(self.core, &source.source, source.offset, length) {
                Ok(OwnBytes::Program(bytes)) => load::fill(self.core, id, 0, bytes),
                Ok(OwnBytes::Segment(from, len)) => {
                    self.core.segments.copy(from, Place { segment: id, offset: 0 }, len)
                }
                Err(status) => Err(status),
            }
        } else if let Some(filled) = self.server.loads.fill_from_cache(self.core, id, &source) {
            filled
        } else if source.length == 0 {
            Ok(())
        } else if !self.server.loads.has_room() {
            Err(Status::NoSpace)
        } else {
            let load = load::Load::new(self.req, id, capability, source);
            self.server.loads.start(load, self.core, &mut self.server.actions);
            return Err(self.defer());
        };
        match filled {
            Ok(()) => Ok(capability),
            Err(status) => {
                self.core.segments.destroy(id);
                Err(status)
            }
        }
    }

    fn process_create(
        &mut self,
        call: &Call<'_>,
        descriptor: ProcessDescriptor,
    ) -> Result<Capability, Status> {
        if !descriptor.quotas.within(&Quotas::CEILING) {
            return Err(Status::ArgBad);
        }
        if !descriptor.quotas.within(&Quotas::DEFAULT) && call.rights != Rights::ALL {
            return Err(Status::Denied); // more than the default takes the board's owner
        }
        let pid = create::create_process(self.core, self.server.port, &descriptor)?;
        self.server.capability(self.core, pid).ok_or(Status::SysErr)
    }

    fn info(&mut self, _: &Call<'_>) -> Result<HostInfo, Status> {
        Ok(report::host_info(self.server, self.core, self.now))
    }

    fn processes(&mut self, _: &Call<'_>) -> Result<Vec<ProcessReport>, Status> {
        Ok(self
            .core
            .process_records()
            .into_iter()
            .map(|(pid, process)| report::process_report(self.core, pid, process, self.server.is_owned(pid)))
            .collect())
    }

    fn process_capability(&mut self, _: &Call<'_>, pid: u32) -> Result<Capability, Status> {
        self.server.capability(self.core, pid).ok_or(Status::NotFound)
    }

    fn disk(&mut self, _: &Call<'_>, index: u32, first: u64, count: u32) -> Result<Capability, Status> {
        if index != 0 {
            return Err(Status::NotFound); // one disk per board
        }
        self.disk.as_mut().ok_or(Status::NoMedium)?.open(first, u64::from(count))
    }

    fn boot_program(&mut self, _: &Call<'_>, name: String) -> Result<Capability, Status> {
        let program = self.server.boot_programs.iter().find(|p| p.name == name).ok_or(Status::NotFound)?;
        let owner = Capability::owner(self.server.port, program.object, program.random);
        owner.restrict(Rights::READ).map_err(|_| Status::SysErr)
    }

    fn segment_write(&mut self, call: &Call<'_>, offset: u64, data: &[u8]) -> Result<(), Status> {
        let id = self.segment(call)?;
        if data.len() > SEGMENT_IO_MAX {
            return Err(Status::ArgBad);
        }
        let offset = usize::try_from(offset).map_err(|_| Status::ArgBad)?;
        load::fill(self.core, id, offset, data)
    }

    fn read(&mut self, call: &Call<'_>, offset: u64, size: u32) -> Result<Vec<u8>, Status> {
        let size = (size as usize).min(SEGMENT_IO_MAX);
        self.server.read_own(self.core, &call.capability, offset, size)
    }

    fn stun(&mut self, call: &Call<'_>) -> Result<(), Status> {
        let pid = self.process(call)?;
        self.core.stun(pid)
    }

    fn resume(&mut self, call: &Call<'_>) -> Result<(), Status> {
        let pid = self.process(call)?;
        self.core.resume(pid)
    }

    fn signal(&mut self, call: &Call<'_>, signal: u32) -> Result<(), Status> {
        let pid = self.process(call)?;
        let process = self.core.process_record(pid).ok_or(Status::NotFound)?;
        let first = *process.threads.first().ok_or(Status::NotFound)?;
        self.core.raise(first, signal)
    }

    fn inspect(&mut self, call: &Call<'_>) -> Result<ProcessReport, Status> {
        let pid = self.process(call)?;
        let process = self.core.process_record(pid).ok_or(Status::NotFound)?;
        Ok(report::process_report(self.core, pid, process, self.server.is_owned(pid)))
    }

    fn wait(&mut self, call: &Call<'_>) -> Result<i32, Status> {
        let pid = self.process(call)?;
        match self.core.process_record(pid).ok_or(Status::NotFound)?.state {
            ProcessState::Exited(status) => Ok(status),
            _ => {
                self.server.waits.push((pid, self.req));
                Err(self.defer())
            }
        }
    }

    fn set_owner(&mut self, call: &Call<'_>, owner: Option<Capability>) -> Result<(), Status> {
        let pid = self.process(call)?;
        if self.core.process_record(pid).ok_or(Status::NotFound)?.has_exited() {
            return Err(Status::NotFound);
        }
        self.server.set_owner(pid, owner, self.now);
        Ok(())
    }
}
