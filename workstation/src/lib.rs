//! The user's workstation on a running pool: the commands people type (`ps`,
//! `hosts`, `ax`, `ls`, `put`, `log`, `top`, ...) talk to the pool that `up`
//! started in the same run directory, with the capabilities `up` saved there
//! (the boards' host capabilities, the servers', its log server's), a client
//! on the switch, and a terminal server so that programs' output comes back
//! here and their input comes from here.

mod files;
mod logs;
mod processes;
mod programs;
mod services;
pub mod top;

pub use files::{Masks, write_out};
pub use logs::{LOGS_DIR, log_file, print_log};
pub use processes::{Action, Target, hosts, ps, stop_or_resume};
pub use programs::{AxOptions, Ending, GRACE, INTERRUPTED_STATUS, Interrupts, ended_by_interrupt};
pub use services::{services, services_table};

use amoeba_abi::Capability;
use amoeba_client::exec::{Exec, Program};
use amoeba_ipc::interfaces::process_server;
use anyhow::{Context, Result, bail};
use host_station::host_port::HostPort;
use host_station::rpc_client::RpcClient;
use host_station::tty_server::{Sink, TtyServer};
use std::path::{Path, PathBuf};

pub use pool_system::capabilities_file::{CAPABILITIES_FILE, save as save_capabilities};

pub(crate) fn load_capabilities(run_dir: &Path) -> Result<Vec<(String, Capability)>> {
    let path = run_dir.join(CAPABILITIES_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("no pool is running in {} (start one with `just up`)", run_dir.display()))?;
    text.lines()
        .map(|line| {
            let Some((name, capability)) = line.split_once(' ') else {
                bail!("{}: bad line {line:?}", path.display());
            };
            let capability = capability.parse().map_err(|e| anyhow::anyhow!("{}: {e:?}", path.display()))?;
            Ok((String::from(name), capability))
        })
        .collect()
}

/// The boards among saved capabilities: (id, host capability).
fn boards(capabilities: &[(String, Capability)]) -> Vec<(u16, Capability)> {
    capabilities
        .iter()
        .filter_map(|(name, capability)| Some((name.strip_prefix("board")?.parse().ok()?, *capability)))
        .collect()
}

pub struct Workstation {
    capabilities: Vec<(String, Capability)>,
    rpc: RpcClient,
    tty: Option<TtyServer>,
    socket: PathBuf,
    run_dir: PathBuf,
}

impl Workstation {
    /// Connects to the pool running in `run_dir`.
    pub fn connect(run_dir: &Path) -> Result<Self> {
        let capabilities = load_capabilities(run_dir)?;
        let socket = run_dir.join("host.sock");
        let port = HostPort::connect(&socket).with_context(|| {
            format!("no pool is running in {} (start one with `just up`)", run_dir.display())
        })?;
        Ok(Workstation {
            capabilities,
            rpc: RpcClient::new(port),
            tty: None,
            socket,
            run_dir: run_dir.to_path_buf(),
        })
    }

    /// The run directory of the pool.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Another station on the switch (for a client of its own).
    pub fn new_port(&self) -> Result<HostPort> {
        HostPort::connect(&self.socket)
    }

    /// A capability `up` saved.
    pub fn capability(&self, name: &str) -> Option<Capability> {
        self.capabilities.iter().find(|(n, _)| n == name).map(|(_, c)| *c)
    }

    /// Board `board`'s host capability.
    pub fn host_capability(&self, board: u16) -> Result<Capability> {
        self.capability(&format!("board{board}")).with_context(|| format!("the pool has no board {board}"))
    }

    /// Every board: (id, host capability).
    pub fn boards(&self) -> Vec<(u16, Capability)> {
        boards(&self.capabilities)
    }

    /// The client on the switch.
    pub fn rpc(&mut self) -> &mut RpcClient {
        &mut self.rpc
    }

    /// The terminal server (started on first use).
    fn tty(&mut self) -> Result<&TtyServer> {
        let tty = match self.tty.take() {
            Some(tty) => tty,
            None => TtyServer::start(HostPort::connect(&self.socket)?),
        };
        Ok(self.tty.insert(tty))
    }

    /// Runs `program` on board `board` with its output on this terminal; waits
    /// for its exit status unless `detach`.
    pub fn run(&mut self, board: u16, program: &str, exec: Exec, detach: bool) -> Result<Option<i32>> {
        let host = self.host_capability(board)?;
        let bytes = program_bytes(program)?;
        // Detached, it writes to its board's console: this terminal goes with `run`.
        let exec = if detach {
            exec
        } else {
            let terminal = self.tty()?.terminal(Sink::Stdout { prefix: String::new() });
            exec.with_capability("STDOUT", terminal.capability).with_capability("STDERR", terminal.capability)
        };
        let process = amoeba_client::exec::exec(&mut self.rpc, &host, Program::Bytes(&bytes), &exec)
            .map_err(|error| anyhow::anyhow!("starting {program} on board {board}: {error}"))?;
        if detach {
            println!("{program}: process {} on board {board}, capability {process}", process.object);
            return Ok(None);
        }
        let status = process_server::Client::new(&mut self.rpc)
            .wait(&process)
            .map_err(|status| anyhow::anyhow!("waiting for {program}: {status}"))?;
        Ok(Some(status))
    }
}

/// The ELF file of one of the user programs (as `just build` makes them).
pub fn program_path(program: &str) -> Result<PathBuf> {
    qemu_pool::default_programs()
        .into_iter()
        .find(|(name, _)| name == program)
        .map(|(_, path)| path)
        .with_context(|| format!("no program {program} (the programs are in programs/src/bin)"))
}

fn program_bytes(program: &str) -> Result<Vec<u8>> {
    let path = program_path(program)?;
    std::fs::read(&path).with_context(|| format!("reading {} (build it with `just build`)", path.display()))
}
