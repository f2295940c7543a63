//! The services the nucleus offers above its process core — RPC, group
//! membership, the process server, the disk server — behind one lock, and
//! the glue between them: each hears the core's events (a process ended, a wait was
//! interrupted) as a [`Subscriber`], requests to ports the nucleus serves
//! itself go to the process server or the disk server (whose replies may
//! come later, when the disk is done), and the network thread is woken when
//! their timers are due. The entry points (system calls, the network
//! thread, traps) reach the services only through [`with`].
//!
//! Lock order: this lock, then the core's. The core never takes this one.

#![forbid(unsafe_code)]

use crate::disk::DiskService;
use crate::group::Groups;
use crate::process::server::{Action, DiskRanges, ProcessServer};
use crate::process::{self, Core, Subscriber};
use crate::rpc::Rpc;
use crate::sync::IrqMutex;
use amoeba_abi::{Header, Status};

pub struct Services {
    pub rpc: Rpc,
    pub groups: Groups,
    pub processes: ProcessServer,
    /// The board's disk, if it has one.
    pub disk: Option<DiskService>,
}

static SERVICES: IrqMutex<Option<Services>> = IrqMutex::new(None);

/// Installs the services (after `process::init`).
pub fn init(services: Services) {
    *SERVICES.lock() = Some(services);
}

/// The time the services are given: µs since boot.
pub fn now() -> u64 {
    crate::drivers::timer::uptime_micros()
}

/// Runs `f` on the services and the core with IRQs masked; then the events
/// `f` caused reach every service before the locks go.
pub fn with<R>(f: impl FnOnce(&mut Services, &mut Core) -> R) -> R {
    let mut guard = SERVICES.lock();
    let services = guard.as_mut().expect("services::init ran");
    process::with(|core| {
        let result = f(services, core);
        services.settle(core, now());
        result
    })
}

impl Services {
    /// Hands out the core's events and answers the requests for ports the
    /// nucleus serves, until neither makes more; then sets the network
    /// thread's deadline.
    fn settle(&mut self, core: &mut Core, now: u64) {
        loop {
            let mut busy = self.processes.tick(core, now);
            while let Some(event) = core.take_event() {
                busy = true;
                let subscribers: [&mut dyn Subscriber; 3] =
                    [&mut self.rpc, &mut self.groups, &mut self.processes];
                for subscriber in subscribers {
                    subscriber.notify(core, &event, now);
                }
            }
            while let Some(request) = self.rpc.take_kernel_request() {
                busy = true;
                if let Some(disk) = self.disk.as_mut().filter(|disk| request.port == disk.port()) {
                    disk.accept(core, request); // answered by `answer_disk`, maybe later
                    continue;
                }
                if request.port == self.processes.port() {
                    let disk = self.disk.as_mut().map(|d| d as &mut dyn DiskRanges);
                    self.processes.handle(core, now, disk, request.req, &request.header, &request.buf);
                } else {
                    let header = Header::reply(Status::RpcNotFound);
                    self.rpc.reply_in_kernel(core, now, request.req, &header, &[]);
                }
            }
            while let Some(done) = self.rpc.take_kernel_result() {
                busy = true;
                self.processes.trans_done(core, now, done.id, done.result);
            }
            while let Some(action) = self.processes.take_action() {
                busy = true;
                match action {
                    Action::Reply { req, header, buf } => {
                        self.rpc.reply_in_kernel(core, now, req, &header, &buf)
                    }
                    Action::Read { load, header, buf } => {
                        let trans = self.rpc.start_kernel_trans(core, now, &header, &buf);
                        self.processes.read_started(load, trans);
                    }
                    Action::Check { check, header, buf } => {
                        let trans = self.rpc.start_kernel_trans(core, now, &header, &buf);
                        self.processes.check_started(check, trans);
                    }
                }
            }
            busy |= self.answer_disk(core, now);
            if !busy {
                break;
            }
        }
        self.update_network_deadline(core);
    }

    /// Hands the disk's finished operations to the disk server and sends
    /// the replies it has; whether there were any.
    fn answer_disk(&mut self, core: &mut Core, now: u64) -> bool {
        let Some(disk) = self.disk.as_mut() else {
            return false;
        };
        disk.poll(core);
        let mut answered = false;
        while let Some(reply) = disk.take_reply() {
            answered = true;
            self.rpc.reply_in_kernel(core, now, reply.req, &reply.header, &reply.buf);
        }
        answered
    }

    /// The earliest time the network thread must look at RPC, groups or the
    /// process server's owner checks.
    fn update_network_deadline(&self, core: &mut Core) {
        let deadline =
            [self.rpc.next_deadline(), self.groups.next_deadline(), self.processes.next_deadline()]
                .into_iter()
                .flatten()
                .min();
        core.set_network_deadline(deadline);
    }

    /// Whether the network thread has work: a service timer that is due.
    pub fn network_work_due(&self, core: &Core, now: u64) -> bool {
        core.network_deadline().is_some_and(|deadline| deadline <= now)
    }
}
