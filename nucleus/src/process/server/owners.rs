//! The process server's side of process owners (`set_owner`): the checks the
//! owner watch (`nucleus::owner_watch`) asks for go out as touches of the
//! owner's capability (`STD_TOUCH`, which every server answers), their
//! answers come back as verdicts, and a process whose owner is gone or silent
//! is destroyed like one whose capability was used to destroy it.

#![forbid(unsafe_code)]

use super::actions::Action;
use super::state::ProcessServer;
use crate::process::Core;
use crate::process::thread::Pid;
use alloc::vec::Vec;
use amoeba_abi::syscall::EXIT_DESTROYED;
use amoeba_abi::{Capability, Header, Status};
use amoeba_ipc::interfaces::standard;
use flip::TransId;
use nucleus::owner_watch::{Step, Verdict};

/// Heap a check needs while it is out (its request and short reply).
const CHECK_BYTES: usize = 512;

impl ProcessServer {
    /// Ties process `pid` to `owner` (or unties it).
    pub(super) fn set_owner(&mut self, pid: Pid, owner: Option<Capability>, now: u64) {
        self.owners.set(pid, owner, now);
        self.owners_due = self.owners.next_deadline();
    }

    /// Whether process `pid` has an owner its board checks.
    pub(super) fn is_owned(&self, pid: Pid) -> bool {
        self.owners.is_owned(pid)
    }

    /// Process `pid` ended.
    pub(super) fn forget_owner(&mut self, pid: Pid) {
        self.owners.forget(pid);
    }

    /// Sends the checks that are due and ends the processes whose owners
    /// have been silent too long; whether it did anything.
    pub fn tick(&mut self, core: &mut Core, now: u64) -> bool {
        if self.owners_due.is_none_or(|due| now < due) {
            return false;
        }
        let steps = self.owners.due(now);
        let busy = !steps.is_empty();
        for step in steps {
            match step {
                Step::Check { tag, owner, .. } => {
                    // STD_TOUCH takes no arguments: the capability and command are all.
                    match crate::heap::admit(CHECK_BYTES) {
                        Ok(()) => {
                            let header = Header::request(&owner, standard::STD_TOUCH);
                            self.actions.push_back(Action::Check { check: tag, header, buf: Vec::new() });
                        }
                        Err(_) => self.owners.not_sent(tag, now),
                    }
                }
                Step::End { pid } => end(core, pid, "its owner has not answered"),
            }
        }
        self.owners_due = self.owners.next_deadline();
        busy
    }

    /// The RPC service started check `check` as transaction `trans`.
    pub fn check_started(&mut self, check: u64, trans: TransId) {
        self.owners.started(check, trans.0);
    }

    /// When [`ProcessServer::tick`] next has work.
    pub fn next_deadline(&self) -> Option<u64> {
        self.owners_due
    }

    /// Whether transaction `trans` is an owner check.
    pub(super) fn is_check(&self, trans: TransId) -> bool {
        self.owners.is_check(trans.0)
    }

    /// Owner check `trans` ended with `result`.
    pub(super) fn check_done(
        &mut self,
        core: &mut Core,
        now: u64,
        trans: TransId,
        result: &Result<(Header, Vec<u8>), Status>,
    ) {
        let verdict = match result {
            Ok((header, _)) if matches!(header.status(), Status::CapBad | Status::NotFound) => Verdict::Gone,
            Ok(_) => Verdict::Alive,
            Err(_) => Verdict::Unreachable,
        };
        if let Some(pid) = self.owners.answered(trans.0, verdict, now) {
            end(core, pid, "its owner is gone");
        }
        self.owners_due = self.owners.next_deadline();
    }
}

fn end(core: &mut Core, pid: Pid, why: &str) {
    if let Some(process) = core.processes.get(&pid).filter(|p| !p.has_exited()) {
        crate::println!("process server: process {pid} ({}) ended: {why}", process.name);
        core.exit_process(pid, EXIT_DESTROYED);
    }
}
