//! Starting programs on the boards from the host, the way any client does: through
//! each board's process server, with the board's host capability that the pool's
//! owner holds (`amoeba_client::exec` does the work; the ELF files come from the host's
//! build). Waiting for a process, stunning, signalling and destroying it go through
//! its process capability.

use crate::pool::Pool;
use amoeba_abi::syscall::HOST_CAPABILITY_NAME;
use amoeba_abi::{Capability, Status};
use amoeba_client::exec::{Exec, Program};
use amoeba_ipc::interfaces::process::{HOST_CREATE, HOST_INFO, HostInfo, ProcessReport};
use amoeba_ipc::interfaces::{process_server, standard};
use anyhow::{Context, Result};
use std::time::{Duration, Instant};

/// A process the host started.
#[derive(Clone, Copy, Debug)]
pub struct Started {
    /// The board (index in the pool).
    pub board: usize,
    /// Its process id on that board.
    pub pid: u32,
    /// Its owner capability.
    pub capability: Capability,
}

impl Pool {
    /// The ELF file of `program` (one of the pool's programs).
    pub fn program_bytes(&self, program: &str) -> Result<Vec<u8>> {
        let (_, path) = self
            .programs()
            .iter()
            .find(|(name, _)| name == program)
            .with_context(|| format!("no program {program} (see programs/src/bin)"))?;
        std::fs::read(path)
            .with_context(|| format!("reading {} (build it with `just build`)", path.display()))
    }

    /// Starts `program` on board `board` with the numeric `argument`; its output
    /// goes to the board's console.
    pub fn exec(&self, board: usize, program: &str, argument: u64) -> Result<Started> {
        self.exec_with(board, program, &Exec::new(program, &[program]).with_argument(argument))
    }

    /// Board `board`'s host capability restricted to starting processes: what a
    /// program that starts processes on its own board needs as its `HOST`.
    pub fn host_create_capability(&self, board: usize) -> Capability {
        self.host_capability(board).restrict(HOST_CREATE).unwrap_or_default()
    }

    /// Like [`Pool::exec_scheduled`], with the board's host capability restricted
    /// to the create right as `HOST` (`amoeba_abi::syscall::HOST_CAPABILITY_NAME`), so
    /// that the program may start processes on its board, and restricted to the
    /// info right as `HOSTINFO`.
    pub fn exec_spawning(
        &self,
        board: usize,
        program: &str,
        argument: u64,
        scheduling: u32,
    ) -> Result<Started> {
        let info = self.host_capability(board).restrict(HOST_INFO).unwrap_or_default();
        let exec = Exec::new(program, &[program])
            .with_argument(argument)
            .with_scheduling(scheduling)
            .with_capability(HOST_CAPABILITY_NAME, self.host_create_capability(board))
            .with_capability("HOSTINFO", info);
        self.exec_with(board, program, &exec)
    }

    /// Starts `program` on board `board` with `argument` and `scheduling`
    /// (`SCHED_PREEMPTIVE` or `SCHED_RUN_TO_COMPLETION`).
    pub fn exec_scheduled(
        &self,
        board: usize,
        program: &str,
        argument: u64,
        scheduling: u32,
    ) -> Result<Started> {
        let exec = Exec::new(program, &[program]).with_argument(argument).with_scheduling(scheduling);
        self.exec_with(board, program, &exec)
    }

    /// Starts `program` on board `board` with `argument`, handing it `capability`
    /// (named `ARG` in its capability environment: `amoeba_rt::exec_capability`).
    pub fn exec_with_capability(
        &self,
        board: usize,
        program: &str,
        argument: u64,
        capability: Capability,
    ) -> Result<Started> {
        let exec = Exec::new(program, &[program]).with_argument(argument).with_capability("ARG", capability);
        self.exec_with(board, program, &exec)
    }

    /// Starts `program` on board `board` as `exec` says (argv, environment,
    /// capabilities, scheduling).
    pub fn exec_with(&self, board: usize, program: &str, exec: &Exec) -> Result<Started> {
        let bytes = self.program_bytes(program)?;
        let host = self.host_capability(board);
        let capability = amoeba_client::exec::exec(&mut *self.rpc(), &host, Program::Bytes(&bytes), exec)
            .map_err(|error| anyhow::anyhow!("starting {program} on board {board}: {error}"))?;
        Ok(Started { board, pid: capability.object, capability })
    }

    /// Waits up to `timeout` for the process to end; its exit status.
    pub fn wait_process(&self, started: &Started, timeout: Duration) -> Option<i32> {
        // A client of its own, so that a long wait does not hold up other calls.
        let mut client = crate::rpc_client::RpcClient::new(self.new_host_port().ok()?);
        client.deadline = Some(Instant::now() + timeout);
        process_server::Client::new(&mut client).wait(&started.capability).ok()
    }

    /// Stun, resume, signal or destroy a process through a capability for it.
    pub fn control(&self, capability: &Capability, operation: Control) -> Result<(), Status> {
        let mut rpc = self.rpc();
        let mut processes = process_server::Client::new(&mut *rpc);
        match operation {
            Control::Stun => processes.stun(capability),
            Control::Resume => processes.resume(capability),
            Control::Signal(signal) => processes.signal(capability, signal),
            Control::Destroy => standard::Client::new(&mut *rpc).destroy(capability),
        }
    }

    /// What the process server says about a process.
    pub fn inspect(&self, capability: &Capability) -> Result<ProcessReport, Status> {
        process_server::Client::new(&mut *self.rpc()).inspect(capability)
    }

    /// Board `board`'s load and memory.
    pub fn board_info(&self, board: usize) -> Result<HostInfo, Status> {
        process_server::Client::new(&mut *self.rpc()).info(&self.host_capability(board))
    }
}

/// What [`Pool::control`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Freeze.
    Stun,
    /// Thaw.
    Resume,
    /// Raise a signal.
    Signal(u32),
    /// End it.
    Destroy,
}
