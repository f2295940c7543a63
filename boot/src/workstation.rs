//! The user's workstation on a running pool (the `boot` commands other than
//! `up` talk to the pool that `up` started in the same run directory): the
//! host capabilities `up` saved, a client on the switch, and a terminal
//! server so that programs' output comes back here.

use crate::host_port::HostPort;
use crate::rpc_client::RpcClient;
use crate::tty_server::{Sink, TtyServer};
use amoeba::Capability;
use amoeba::exec::{Exec, Program};
use amoeba::interfaces::process_server;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// The file in the run directory that holds the boards' host capabilities
/// (readable by the pool's owner only).
pub const HOSTS_FILE: &str = "hosts";

/// Writes `hosts` (board id, host capability) for later commands, mode 0600.
pub fn save_hosts(run_dir: &Path, hosts: &[(u16, Capability)]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = run_dir.join(HOSTS_FILE);
    let _ = std::fs::remove_file(&path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    for (board, capability) in hosts {
        writeln!(file, "board {board} {capability}")?;
    }
    Ok(())
}

fn load_hosts(run_dir: &Path) -> Result<Vec<(u16, Capability)>> {
    let path = run_dir.join(HOSTS_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("no pool is running in {} (start one with `just up`)", run_dir.display()))?;
    text.lines()
        .map(|line| {
            let mut words = line.split_whitespace();
            let (Some("board"), Some(id), Some(capability)) = (words.next(), words.next(), words.next())
            else {
                bail!("{}: bad line {line:?}", path.display());
            };
            let capability = capability.parse().map_err(|e| anyhow::anyhow!("{}: {e:?}", path.display()))?;
            Ok((id.parse()?, capability))
        })
        .collect()
}

pub struct Workstation {
    hosts: Vec<(u16, Capability)>,
    rpc: RpcClient,
    tty: TtyServer,
}

impl Workstation {
    /// Connects to the pool running in `run_dir`.
    pub fn connect(run_dir: &Path) -> Result<Self> {
        let hosts = load_hosts(run_dir)?;
        let socket = run_dir.join("host.sock");
        let port = || {
            HostPort::connect(&socket).with_context(|| {
                format!("no pool is running in {} (start one with `just up`)", run_dir.display())
            })
        };
        Ok(Workstation { hosts, rpc: RpcClient::new(port()?), tty: TtyServer::start(port()?) })
    }

    /// Board `board`'s host capability.
    pub fn host_capability(&self, board: u16) -> Result<Capability> {
        self.hosts
            .iter()
            .find(|(id, _)| *id == board)
            .map(|(_, capability)| *capability)
            .with_context(|| format!("the pool has no board {board}"))
    }

    /// Runs `program` on board `board` with its output on this terminal; waits
    /// for its exit status unless `detach`.
    pub fn run(&mut self, board: u16, program: &str, exec: Exec, detach: bool) -> Result<Option<i32>> {
        let host = self.host_capability(board)?;
        let bytes = program_bytes(program)?;
        let terminal = self.tty.terminal(Sink::Stdout { prefix: String::new() });
        let exec = exec
            .with_capability("STDOUT", terminal.capability)
            .with_capability("STDERR", terminal.capability);
        let process = amoeba::exec::exec(&mut self.rpc, &host, Program::Bytes(&bytes), &exec)
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
    crate::default_programs()
        .into_iter()
        .find(|(name, _)| name == program)
        .map(|(_, path)| path)
        .with_context(|| format!("no program {program} (the programs are in programs/src/bin)"))
}

fn program_bytes(program: &str) -> Result<Vec<u8>> {
    let path = program_path(program)?;
    std::fs::read(&path).with_context(|| format!("reading {} (build it with `just build`)", path.display()))
}
